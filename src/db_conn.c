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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "tokend/db_conn.h"
#include "tokend/logging.h"
#include "tokend/monotonic_clock.h"
#include "tokend/pg_error.h"
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
    unsigned long generation; /* connections made so far */
    char last_sqlstate[6];    /* of the last server error, "" after a success */
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
            /* Non-blocking sends too: a full socket buffer waits in
             * poll(2) under the deadline instead of blocking. */
            conn->generation++;
            PQsetNoticeProcessor(conn->pg, pg_error_log_notice, NULL);
            return PQsetnonblocking(conn->pg, 1) == 0 ? TK_OK : TK_UNAVAILABLE;
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
        char detail[256];
        pg_error_first_line(detail, sizeof(detail),
                            conn->pg != NULL ? PQerrorMessage(conn->pg) : NULL);
        log_warn("database unavailable (%s)%s%s", what, detail[0] != '\0' ? ": " : "", detail);
        conn->outage_logged = true;
    }
    db_conn_close(conn);
    conn->down_until_ms = monotonic_ms() + conn->retry_interval_ms;
}

/* Connects when there is no usable connection. Returns TK_OK, or
 * TK_UNAVAILABLE (during the retry pause, or the connect failed: logged). */
static int ensure_connected(struct db_conn *conn, int64_t now, int64_t deadline)
{
    if (conn->pg != NULL && PQstatus(conn->pg) == CONNECTION_OK) {
        return TK_OK;
    }
    if (conn->pg == NULL && now < conn->down_until_ms) {
        return TK_UNAVAILABLE;
    }
    db_conn_close(conn);
    if (connect_with_deadline(conn, deadline) != TK_OK) {
        note_failure(conn, monotonic_ms() >= deadline ? "connect timed out" : "connect");
        return TK_UNAVAILABLE;
    }
    return TK_OK;
}

static void note_success(struct db_conn *conn)
{
    if (conn->outage_logged) {
        log_info("database reachable again");
        conn->outage_logged = false;
    }
}

/* Collects the result of the command just sent and sorts it into the
 * closed set of outcomes; `what` names the command in log lines. */
static int finish_command(struct db_conn *conn, int64_t deadline, const char *what,
                          PGresult **result)
{
    PGresult *res = NULL;
    int rc = collect_result(conn->pg, deadline, &res);
    conn->last_sqlstate[0] = '\0';
    if (rc == TK_UNAVAILABLE) {
        PQclear(res);
        note_failure(conn, monotonic_ms() >= deadline ? "timed out" : what);
        return TK_UNAVAILABLE;
    }
    if (rc == TK_ERROR) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(conn->last_sqlstate, sizeof(conn->last_sqlstate), "%s", state ? state : "");
        char detail[256];
        pg_error_first_line(detail, sizeof(detail), PQresultErrorMessage(res));
        log_error("database: %s failed: %s", what, detail);
        PQclear(res);
        return TK_ERROR;
    }
    note_success(conn);
    if (result != NULL) {
        *result = res;
    } else {
        PQclear(res);
    }
    return TK_OK;
}

int db_conn_query(struct db_conn *conn, const char *statement_name, const char *sql,
                  int param_count, const char *const *params, PGresult **result)
{
    *result = NULL;
    int64_t now = monotonic_ms();
    int64_t deadline = now + conn->timeout_ms;
    if (ensure_connected(conn, now, deadline) != TK_OK) {
        return TK_UNAVAILABLE;
    }
    if (!is_prepared(conn, statement_name)) {
        if (!PQsendPrepare(conn->pg, statement_name, sql, param_count, NULL)) {
            note_failure(conn, "prepare");
            return TK_UNAVAILABLE;
        }
        int rc = finish_command(conn, deadline, statement_name, NULL);
        if (rc != TK_OK) {
            return rc;
        }
        if (conn->prepared_count < DB_MAX_PREPARED) {
            conn->prepared[conn->prepared_count++] = statement_name;
        }
    }
    if (!PQsendQueryPrepared(conn->pg, statement_name, param_count, params, NULL, NULL, 0)) {
        note_failure(conn, "query");
        return TK_UNAVAILABLE;
    }
    return finish_command(conn, deadline, statement_name, result);
}

int db_conn_exec(struct db_conn *conn, const char *sql, PGresult **result)
{
    if (result != NULL) {
        *result = NULL;
    }
    int64_t now = monotonic_ms();
    int64_t deadline = now + conn->timeout_ms;
    if (ensure_connected(conn, now, deadline) != TK_OK) {
        return TK_UNAVAILABLE;
    }
    if (!PQsendQuery(conn->pg, sql)) {
        note_failure(conn, "send");
        return TK_UNAVAILABLE;
    }
    return finish_command(conn, deadline, "command", result);
}

int db_conn_copy_in(struct db_conn *conn, const char *copy_sql, const char *data, size_t len)
{
    int64_t now = monotonic_ms();
    int64_t deadline = now + conn->timeout_ms;
    if (ensure_connected(conn, now, deadline) != TK_OK) {
        return TK_UNAVAILABLE;
    }
    PGconn *pg = conn->pg;
    if (!PQsendQuery(pg, copy_sql)) {
        goto unavailable;
    }
    /* Wait for the server to enter COPY IN. */
    for (;;) {
        if (PQflush(pg) < 0) {
            goto unavailable;
        }
        if (!PQisBusy(pg)) {
            break;
        }
        if (wait_socket(pg, POLLIN, deadline) != TK_OK || PQconsumeInput(pg) == 0) {
            goto unavailable;
        }
    }
    PGresult *start = PQgetResult(pg);
    ExecStatusType status = start != NULL ? PQresultStatus(start) : PGRES_FATAL_ERROR;
    if (status != PGRES_COPY_IN) {
        bool answered = start != NULL;
        if (answered) {
            char detail[256];
            pg_error_first_line(detail, sizeof(detail), PQresultErrorMessage(start));
            log_error("database: COPY refused: %s", detail);
        }
        PQclear(start);
        /* drain the rest of this command's results */
        PGresult *rest;
        while ((rest = PQgetResult(pg)) != NULL) {
            PQclear(rest);
        }
        if (!answered || PQstatus(pg) != CONNECTION_OK) {
            goto unavailable;
        }
        return TK_ERROR;
    }
    PQclear(start);
    size_t sent = 0;
    while (sent < len) {
        size_t chunk = len - sent > 65536 ? 65536 : len - sent;
        int put = PQputCopyData(pg, data + sent, (int)chunk);
        if (put < 0) {
            goto unavailable;
        }
        if (put == 0) {
            if (wait_socket(pg, POLLOUT, deadline) != TK_OK) {
                goto unavailable;
            }
            continue;
        }
        sent += chunk;
    }
    int ended;
    while ((ended = PQputCopyEnd(pg, NULL)) == 0) {
        if (wait_socket(pg, POLLOUT, deadline) != TK_OK) {
            goto unavailable;
        }
    }
    if (ended < 0) {
        goto unavailable;
    }
    return finish_command(conn, deadline, "COPY", NULL);
unavailable:
    note_failure(conn, monotonic_ms() >= deadline ? "timed out" : "COPY");
    return TK_UNAVAILABLE;
}

const char *db_conn_last_sqlstate(const struct db_conn *conn)
{
    return conn->last_sqlstate;
}

unsigned long db_conn_generation(const struct db_conn *conn)
{
    return conn->generation;
}
