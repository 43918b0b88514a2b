/*
 * client_listener.c - a non-blocking libpq connection that LISTENs on
 * notify_channel for the flusher (see client_listener.h).
 *
 * States, moved only by client_listener_poll():
 *   IDLE        no connection; at retry_at_ms start one (PQconnectStartParams)
 *   CONNECTING  PQconnectPoll whenever the socket is ready, until OK
 *               or failure or timeout_ms
 *   SUBSCRIBING "LISTEN channel" sent; waiting for its result
 *   LISTENING   reading notifications as they arrive
 * Any failure closes the connection and goes back to IDLE with a backoff
 * (100 ms doubling to 10 s). One log line when the connection is lost or
 * cannot be made, and one when listening again, not one per retry.
 *
 * The channel is a plain identifier checked by the config (no quoting
 * needed); payloads are never logged (they are client ids, not secrets,
 * but there is no need). Nothing here blocks: poll(2) with timeout 0 says
 * whether the socket is ready.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tokend/client_listener.h"
#include "tokend/logging.h"
#include "tokend/pg_error.h"
#include "tokend/status.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000

enum listener_state { IDLE, CONNECTING, SUBSCRIBING, LISTENING };

struct client_listener {
    char *conninfo;
    char *password;
    char listen_sql[96];
    int timeout_ms;
    enum listener_state state;
    PGconn *conn;
    PostgresPollingStatusType polling;
    int64_t deadline_ms;
    int64_t retry_at_ms;
    int backoff_ms;
    bool failing; /* an outage has been logged */
};

struct client_listener *client_listener_create(const char *conninfo, const char *password,
                                               const char *channel, int timeout_ms)
{
    struct client_listener *listener = calloc(1, sizeof(*listener));
    if (listener == NULL) {
        return NULL;
    }
    listener->conninfo = strdup(conninfo);
    listener->password = password != NULL ? strdup(password) : NULL;
    if (listener->conninfo == NULL || (password != NULL && listener->password == NULL)) {
        client_listener_destroy(listener);
        return NULL;
    }
    snprintf(listener->listen_sql, sizeof(listener->listen_sql), "LISTEN %s", channel);
    listener->timeout_ms = timeout_ms;
    return listener;
}

static void close_conn(struct client_listener *listener)
{
    if (listener->conn != NULL) {
        PQfinish(listener->conn);
        listener->conn = NULL;
    }
}

void client_listener_destroy(struct client_listener *listener)
{
    if (listener == NULL) {
        return;
    }
    close_conn(listener);
    free(listener->conninfo);
    if (listener->password != NULL) {
        memset(listener->password, 0, strlen(listener->password));
        free(listener->password);
    }
    free(listener);
}

static void fail(struct client_listener *listener, int64_t now_ms, const char *what)
{
    if (!listener->failing) {
        const char *detail = listener->conn != NULL ? PQerrorMessage(listener->conn) : "";
        size_t len = strcspn(detail, "\n");
        log_warn("flusher: LISTEN connection %s%s%.*s; retrying (client changes from other "
                 "hosts and tokenctl wait until it is back)",
                 what, len > 0 ? ": " : "", (int)len, detail);
        listener->failing = true;
    }
    close_conn(listener);
    listener->state = IDLE;
    listener->backoff_ms = listener->backoff_ms == 0 ? BACKOFF_MIN_MS : listener->backoff_ms * 2;
    if (listener->backoff_ms > BACKOFF_MAX_MS) {
        listener->backoff_ms = BACKOFF_MAX_MS;
    }
    listener->retry_at_ms = now_ms + listener->backoff_ms;
}

/* True when the connection's socket is ready for `events` right now. */
static bool socket_ready(PGconn *conn, short events)
{
    struct pollfd pfd = {.fd = PQsocket(conn), .events = events};
    return pfd.fd >= 0 && poll(&pfd, 1, 0) > 0;
}

static void start_connect(struct client_listener *listener, int64_t now_ms)
{
    /* TCP keepalives, so a connection that died without a word (a NAT
     * timeout, a failover) is noticed in about a minute rather than the
     * kernel's two hours: until then no notice arrives and no resubscribe
     * CLEAR has the workers read the revocations again. The password last:
     * without one the list simply ends there. */
    const char *keywords[] = {"dbname",
                              "keepalives",
                              "keepalives_idle",
                              "keepalives_interval",
                              "keepalives_count",
                              listener->password != NULL ? "password" : NULL,
                              NULL};
    const char *values[] = {listener->conninfo, "1", "30", "10", "3", listener->password, NULL};
    listener->conn = PQconnectStartParams(keywords, values, 1);
    if (listener->conn != NULL) {
        PQsetNoticeProcessor(listener->conn, pg_error_log_notice, NULL);
    }
    if (listener->conn == NULL || PQstatus(listener->conn) == CONNECTION_BAD ||
        PQsetnonblocking(listener->conn, 1) != 0) {
        fail(listener, now_ms, "could not be made");
        return;
    }
    listener->state = CONNECTING;
    listener->polling = PGRES_POLLING_WRITING;
    listener->deadline_ms = now_ms + listener->timeout_ms;
}

/* "*revoke <jti> <exp> <origin>" (REVOCATION_INSERT_SQL): an
 * ADMIN_EVENT_REVOKE, unless `origin` is this instance's own ring (its
 * worker published the event already; applying it twice would only take a
 * second slot of the ring). A malformed one is ignored: the row is in the
 * revocations table, and workers read it when they next reload. */
static void publish_revoke(struct admin_event_ring *ring, const char *args)
{
    char jti[TOKEN_RECORD_JTI_SIZE];
    size_t jti_len = strcspn(args, " ");
    if (jti_len == 0 || jti_len >= sizeof(jti) || args[jti_len] != ' ') {
        return;
    }
    memcpy(jti, args, jti_len);
    jti[jti_len] = '\0';
    char *end = NULL;
    errno = 0;
    long long expires_at_s = strtoll(args + jti_len + 1, &end, 10);
    if (errno != 0 || end == args + jti_len + 1 || (*end != '\0' && *end != ' ')) {
        return;
    }
    char own[ADMIN_EVENT_ORIGIN_SIZE];
    admin_event_origin(ring, own);
    if (*end == ' ' && strcmp(end + 1, own) == 0) {
        return;
    }
    admin_event_publish_revoke(ring, jti, (int64_t)expires_at_s, NULL);
}

/* Payloads: "*clear", "*clear <cache>", "*cleanup", "*revoke ...", and
 * anything else is a client id (tokenctl's changes). Client ids may start
 * with '*' too: one that is not a command (no command has a space but
 * *revoke and *clear <cache>, and ids have none) is invalidated like any
 * other, and the id "*cleanup" is invalidated as well as swept ("*clear"
 * clears every cache, which forgets it anyway). */
static void publish(struct admin_event_ring *ring, const char *payload)
{
    if (strncmp(payload, "*revoke ", 8) == 0) {
        publish_revoke(ring, payload + 8);
    } else if (strcmp(payload, "*clear") == 0 || payload[0] == '\0') {
        admin_event_publish(ring, ADMIN_EVENT_CLEAR, NULL, NULL);
    } else if (strncmp(payload, "*clear ", 7) == 0) {
        /* One cache by name (a name no worker knows clears both: safe). */
        admin_event_publish(ring, ADMIN_EVENT_CLEAR, payload + 7, NULL);
    } else {
        if (strcmp(payload, "*cleanup") == 0) {
            admin_event_publish(ring, ADMIN_EVENT_CLEANUP, NULL, NULL);
        }
        /* An id too long to be a client's cannot be cached either:
         * TK_INVALID, nothing to do. */
        admin_event_publish(ring, ADMIN_EVENT_INVALIDATE, payload, NULL);
    }
}

void client_listener_poll(struct client_listener *listener, struct admin_event_ring *ring,
                          int64_t now_ms)
{
    switch (listener->state) {
    case IDLE:
        if (now_ms >= listener->retry_at_ms) {
            start_connect(listener, now_ms);
        }
        return;
    case CONNECTING: {
        short want = listener->polling == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        if (!socket_ready(listener->conn, want)) {
            if (now_ms >= listener->deadline_ms) {
                fail(listener, now_ms, "timed out connecting");
            }
            return;
        }
        listener->polling = PQconnectPoll(listener->conn);
        if (listener->polling == PGRES_POLLING_FAILED) {
            fail(listener, now_ms, "could not be made");
        } else if (listener->polling == PGRES_POLLING_OK) {
            if (PQsendQuery(listener->conn, listener->listen_sql) != 1) {
                fail(listener, now_ms, "could not send LISTEN");
                return;
            }
            listener->state = SUBSCRIBING;
            listener->deadline_ms = now_ms + listener->timeout_ms;
        }
        return;
    }
    case SUBSCRIBING:
    case LISTENING:
        break;
    }
    if (PQflush(listener->conn) < 0) {
        fail(listener, now_ms, "was lost");
        return;
    }
    if (socket_ready(listener->conn, POLLIN) && PQconsumeInput(listener->conn) != 1) {
        fail(listener, now_ms, "was lost");
        return;
    }
    if (listener->state == SUBSCRIBING) {
        if (PQisBusy(listener->conn)) {
            if (now_ms >= listener->deadline_ms) {
                fail(listener, now_ms, "timed out on LISTEN");
            }
            return;
        }
        bool ok = true;
        PGresult *result;
        while ((result = PQgetResult(listener->conn)) != NULL) {
            ok = ok && PQresultStatus(result) == PGRES_COMMAND_OK;
            PQclear(result);
        }
        if (!ok) {
            fail(listener, now_ms, "refused LISTEN");
            return;
        }
        listener->state = LISTENING;
        listener->backoff_ms = 0;
        if (listener->failing) {
            log_info("flusher: LISTEN connection back; client caches cleared once for what "
                     "may have been missed");
            listener->failing = false;
        }
        /* Notices sent while nobody listened are lost: start clean. */
        admin_event_publish(ring, ADMIN_EVENT_CLEAR, NULL, NULL);
    }
    PGnotify *notify;
    while ((notify = PQnotifies(listener->conn)) != NULL) {
        publish(ring, notify->extra != NULL ? notify->extra : "");
        PQfreemem(notify);
    }
    if (PQstatus(listener->conn) == CONNECTION_BAD) {
        fail(listener, now_ms, "was lost");
    }
}
