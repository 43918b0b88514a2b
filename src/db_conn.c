/*
 * db_conn.c - one PostgreSQL connection per worker, with a deadline.
 *
 * The worker is single-threaded and serves one request at a time, so a
 * blocking libpq call would freeze it for as long as the database stalls.
 * Instead every step (connect, prepare, execute) uses libpq's asynchronous
 * API and waits in poll(2) until a deadline of `timeout_ms` after the query
 * started. When anything fails - refused connection, timeout, broken
 * connection - the connection is closed (PQfinish; the server notices the
 * dropped socket and ends the backend) and `down_until_ms` starts a pause of
 * `retry_interval_ms` during which queries fail fast with TK_UNAVAILABLE.
 *
 * Outage logging: the first failure after a success logs one warning, the
 * first success after failures logs one info line; retries in between are
 * silent, so an outage does not flood the log.
 *
 * Prepared statements are created once per connection; the names prepared
 * so far are remembered in `prepared` and forgotten when it closes.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "tokend/db_conn.h"
#include "tokend/logging.h"
#include "tokend/monotonic_clock.h"
#include "tokend/status.h"

#define DB_MAX_PREPARED 16

struct db_conn {
    char *conninfo;
    char *password; /* NULL when the conninfo or ~/.pgpass provides it */
    int timeout_ms;
    int retry_interval_ms;
    PGconn *pg;
    int64_t down_until_ms;
    bool outage_logged;
    const char *prepared[DB_MAX_PREPARED]; /* statement names (static strings) */
    int prepared_count;
};

struct db_conn *db_conn_create(const char *conninfo, const char *password, int timeout_ms,
                               int retry_interval_ms)
{
    struct db_conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        return NULL;
    }
    conn->conninfo = strdup(conninfo);
    conn->password = password != NULL ? strdup(password) : NULL;
    if (conn->conninfo == NULL || (password != NULL && conn->password == NULL)) {
        db_conn_destroy(conn);
        return NULL;
    }
    conn->timeout_ms = timeout_ms;
    conn->retry_interval_ms = retry_interval_ms;
    return conn;
}

static void db_conn_close(struct db_conn *conn)
{
    if (conn->pg != NULL) {
        PQfinish(conn->pg);
        conn->pg = NULL;
    }
    conn->prepared_count = 0;
}

void db_conn_destroy(struct db_conn *conn)
{
    if (conn == NULL) {
        return;
    }
    db_conn_close(conn);
    free(conn->conninfo);
    if (conn->password != NULL) {
        OPENSSL_cleanse(conn->password, strlen(conn->password));
        free(conn->password);
    }
    free(conn);
}

/* Waits until the socket is ready for `events` or the deadline passes.
 * Returns TK_OK or TK_UNAVAILABLE. */
static int wait_socket(PGconn *pg, short events, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - monotonic_ms();
        if (left <= 0) {
            return TK_UNAVAILABLE;
        }
        struct pollfd pfd = {.fd = PQsocket(pg), .events = events};
        if (pfd.fd < 0) {
            return TK_UNAVAILABLE;
        }
        int ready = poll(&pfd, 1, (int)left);
        if (ready > 0) {
            return TK_OK;
        }
        if (ready < 0 && errno != EINTR) {
            return TK_UNAVAILABLE;
        }
    }
}

static int connect_with_deadline(struct db_conn *conn, int64_t deadline_ms)
{
    const char *keywords[] = {"dbname", "password", "application_name", NULL};
    const char *values[] = {conn->conninfo, conn->password, "tokend", NULL};
    if (conn->password == NULL) {
        keywords[1] = "application_name";
        values[1] = "tokend";
        keywords[2] = NULL;
        values[2] = NULL;
    }
    conn->pg = PQconnectStartParams(keywords, values, 1);
    if (conn->pg == NULL || PQstatus(conn->pg) == CONNECTION_BAD) {
        return TK_UNAVAILABLE;
    }
    PostgresPollingStatusType state = PGRES_POLLING_WRITING;
    for (;;) {
        if (state == PGRES_POLLING_OK) {
            return TK_OK;
        }
        if (state == PGRES_POLLING_FAILED) {
            return TK_UNAVAILABLE;
        }
        short events = state == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        if (wait_socket(conn->pg, events, deadline_ms) != TK_OK) {
            return TK_UNAVAILABLE;
        }
        state = PQconnectPoll(conn->pg);
    }
}

/* Sends what libpq has buffered and collects the final result of the
 * command in flight. Returns TK_OK with *result, TK_UNAVAILABLE or
 * TK_ERROR (server error; *result holds it). */
static int collect_result(PGconn *pg, int64_t deadline_ms, PGresult **result)
{
    int flushed;
    while ((flushed = PQflush(pg)) == 1) {
        if (wait_socket(pg, POLLOUT | POLLIN, deadline_ms) != TK_OK) {
            return TK_UNAVAILABLE;
        }
        if (PQconsumeInput(pg) == 0) {
            return TK_UNAVAILABLE;
        }
    }
    if (flushed < 0) {
        return TK_UNAVAILABLE;
    }
    PGresult *last = NULL;
    for (;;) {
        while (PQisBusy(pg)) {
            if (wait_socket(pg, POLLIN, deadline_ms) != TK_OK || PQconsumeInput(pg) == 0) {
                PQclear(last);
                return TK_UNAVAILABLE;
            }
        }
        PGresult *next = PQgetResult(pg);
        if (next == NULL) {
            break;
        }
        PQclear(last);
        last = next;
    }
    if (last == NULL) {
        return TK_UNAVAILABLE;
    }
    *result = last;
    ExecStatusType status = PQresultStatus(last);
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
        return TK_OK;
    }
    return PQstatus(pg) == CONNECTION_OK ? TK_ERROR : TK_UNAVAILABLE;
}

static bool is_prepared(const struct db_conn *conn, const char *name)
{
    for (int i = 0; i < conn->prepared_count; i++) {
        if (strcmp(conn->prepared[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static void note_failure(struct db_conn *conn, const char *what)
{
    if (!conn->outage_logged) {
        const char *detail = conn->pg != NULL ? PQerrorMessage(conn->pg) : "";
        log_warn("database unavailable (%s)%s%s", what, *detail != '\0' ? ": " : "", detail);
        conn->outage_logged = true;
    }
    db_conn_close(conn);
    conn->down_until_ms = monotonic_ms() + conn->retry_interval_ms;
}

int db_conn_query(struct db_conn *conn, const char *statement_name, const char *sql,
                  int param_count, const char *const *params, PGresult **result)
{
    *result = NULL;
    int64_t now = monotonic_ms();
    if (conn->pg == NULL && now < conn->down_until_ms) {
        return TK_UNAVAILABLE;
    }
    int64_t deadline = now + conn->timeout_ms;
    PGresult *res = NULL;
    int rc;
    const char *step = "connect";
    if (conn->pg == NULL || PQstatus(conn->pg) != CONNECTION_OK) {
        db_conn_close(conn);
        if (connect_with_deadline(conn, deadline) != TK_OK) {
            goto unavailable;
        }
    }
    if (!is_prepared(conn, statement_name)) {
        step = "prepare";
        if (!PQsendPrepare(conn->pg, statement_name, sql, param_count, NULL)) {
            goto unavailable;
        }
        rc = collect_result(conn->pg, deadline, &res);
        if (rc == TK_UNAVAILABLE) {
            goto unavailable;
        }
        if (rc == TK_ERROR) {
            log_error("database: preparing %s failed: %s", statement_name,
                      PQresultErrorMessage(res));
            PQclear(res);
            return TK_ERROR;
        }
        PQclear(res);
        res = NULL;
        if (conn->prepared_count < DB_MAX_PREPARED) {
            conn->prepared[conn->prepared_count++] = statement_name;
        }
    }
    step = "query";
    if (!PQsendQueryPrepared(conn->pg, statement_name, param_count, params, NULL, NULL, 0)) {
        goto unavailable;
    }
    rc = collect_result(conn->pg, deadline, &res);
    if (rc == TK_UNAVAILABLE) {
        goto unavailable;
    }
    if (rc == TK_ERROR) {
        log_error("database: %s failed: %s", statement_name, PQresultErrorMessage(res));
        PQclear(res);
        return TK_ERROR;
    }
    if (conn->outage_logged) {
        log_info("database reachable again");
        conn->outage_logged = false;
    }
    *result = res;
    return TK_OK;

unavailable:
    PQclear(res);
    note_failure(conn, monotonic_ms() >= deadline ? "timed out" : step);
    return TK_UNAVAILABLE;
}
