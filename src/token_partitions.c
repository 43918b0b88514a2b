/*
 * token_partitions.c - upkeep of the tokens table's day partitions and the
 * count of its rows, over a caller's synchronous libpq connection.
 *
 * Where the logic lives: the partition rules (names, UTC day bounds, moving
 * rows out of tokens_default before attaching a day, the advisory lock that
 * serialises every host's flusher and tokenctl, the lock timeout) are the
 * SQL functions of sql/002_tokens.sql. This file validates arguments, calls
 * those functions with one statement each and reads back their counts, so
 * tokenctl and the flusher share one implementation and a change to the
 * rules is a migration, not a redeploy of every host.
 *
 * Rules this file keeps:
 * - Values travel only as PQexecParams parameters; no value is pasted into
 *   SQL text. Arguments are validated here first, so a bad one never
 *   reaches the database.
 * - maintain and purge refuse a connection inside a transaction: the SQL
 *   functions take ACCESS EXCLUSIVE locks on tokens when they create or drop
 *   a partition, and those must end with the function's own statement, not
 *   with some longer transaction of the caller that would stall every
 *   insert meanwhile.
 * - Each statement is its own transaction (autocommit). maintain runs two:
 *   create ahead, then drop old; a failure of the second keeps the first,
 *   which is the more urgent (a missing day only sends rows to
 *   tokens_default, an undropped day only costs disk).
 *
 * Ownership: the caller owns the connection and keeps it open; this file
 * keeps no state. Failure: a status code from status.h and one line in
 * `error`; the connection stays usable unless the failure was the
 * connection's own (TK_UNAVAILABLE with PQstatus(conn) == CONNECTION_BAD).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokend/pg_error.h"
#include "tokend/status.h"
#include "tokend/token_partitions.h"

#define SQLSTATE_LOCK_NOT_AVAILABLE "55P03"
#define SQLSTATE_UNDEFINED_TABLE    "42P01"
#define SQLSTATE_UNDEFINED_FUNCTION "42883"

static const char ensure_sql[] = "SELECT tokend_ensure_token_partitions($1::integer)";
static const char drop_retention_sql[] =
    "SELECT dropped_partitions, deleted_rows FROM tokend_drop_token_partitions("
    "(now() AT TIME ZONE 'UTC')::date - $1::integer)";
static const char drop_before_sql[] =
    "SELECT dropped_partitions, deleted_rows FROM tokend_drop_token_partitions($1::date)";
static const char count_all_sql[] = "SELECT count(*) FROM tokens";
static const char count_client_sql[] = "SELECT count(*) FROM tokens WHERE client_id = $1";

/* ---- dates ---- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int digits_value(const char *text, size_t count)
{
    int value = 0;
    for (size_t i = 0; i < count; i++) {
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

bool token_partitions_date_valid(const char *date)
{
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (date == NULL || strnlen(date, TOKEN_PARTITIONS_DATE_LEN + 1) != TOKEN_PARTITIONS_DATE_LEN ||
        date[4] != '-' || date[7] != '-') {
        return false;
    }
    for (size_t i = 0; i < TOKEN_PARTITIONS_DATE_LEN; i++) {
        if (i != 4 && i != 7 && !is_digit(date[i])) {
            return false;
        }
    }
    int year = digits_value(date, 4), month = digits_value(date + 5, 2);
    int day = digits_value(date + 8, 2);
    if (year < 1 || month < 1 || month > 12 || day < 1) {
        return false;
    }
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int last_day = month == 2 && leap ? 29 : month_days[month - 1];
    return day <= last_day;
}

/* ---- talking to the database ---- */

/* Turns a failed result into a status code and a message. */
static int query_failure(PGconn *conn, const PGresult *res, char *error, size_t error_size)
{
    char message[400];
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    pg_error_first_line(message, sizeof(message), primary != NULL ? primary : PQerrorMessage(conn));
    if (pg_error_is_connection_failure(conn, res)) {
        snprintf(error, error_size, "database unavailable: %s", message);
        return TK_UNAVAILABLE;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (strcmp(state, SQLSTATE_LOCK_NOT_AVAILABLE) == 0) {
        snprintf(error, error_size,
                 "the tokens table is busy (no lock within the lock timeout); nothing was "
                 "changed, try again");
        return TK_UNAVAILABLE;
    }
    if (strcmp(state, SQLSTATE_UNDEFINED_TABLE) == 0 ||
        strcmp(state, SQLSTATE_UNDEFINED_FUNCTION) == 0) {
        snprintf(error, error_size, "the database has no tokens table: run 'tokenctl migrate'");
        return TK_ERROR;
    }
    if (strncmp(state, "22", 2) == 0) {
        snprintf(error, error_size, "invalid value: %s", message);
        return TK_INVALID;
    }
    snprintf(error, error_size, "database error: %s", message);
    return TK_ERROR;
}

/* Partition changes must not run inside a caller's transaction (see the
 * design block). TK_OK when `conn` is idle. */
static int require_idle(PGconn *conn, char *error, size_t error_size)
{
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(error, error_size, "database unavailable: the connection is closed");
        return TK_UNAVAILABLE;
    }
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
        snprintf(error, error_size, "partition upkeep needs a connection outside any transaction");
        return TK_INVALID;
    }
    return TK_OK;
}

/* Parses a non-negative whole number as PostgreSQL prints it. */
static int parse_count(const char *text, int64_t *value)
{
    char *end = NULL;
    if (text == NULL || !is_digit(text[0])) {
        return TK_ERROR;
    }
    errno = 0;
    long long parsed = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0') {
        return TK_ERROR;
    }
    *value = parsed;
    return TK_OK;
}

/* Runs one parameterised SELECT that must answer one row of `columns`
 * counts, and stores them in values[]. */
static int select_counts(PGconn *conn, const char *sql, const char *param, int columns,
                         int64_t *values, char *error, size_t error_size)
{
    const char *params[1] = {param};
    PGresult *res = PQexecParams(conn, sql, param != NULL ? 1 : 0, NULL, params, NULL, NULL, 0);
    int rc = TK_OK;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = query_failure(conn, res, error, error_size);
        goto done;
    }
    if (PQntuples(res) != 1 || PQnfields(res) != columns) {
        rc = TK_ERROR;
    }
    for (int column = 0; rc == TK_OK && column < columns; column++) {
        rc = parse_count(PQgetvalue(res, 0, column), &values[column]);
    }
    if (rc != TK_OK) {
        snprintf(error, error_size, "unexpected answer from the database to '%.60s'", sql);
    }
done:
    PQclear(res);
    return rc;
}

/* Runs one of the drop statements and stores its counts in *result. */
static int drop_partitions(PGconn *conn, const char *sql, const char *param,
                           struct token_partitions_result *result, char *error, size_t error_size)
{
    int64_t counts[2];
    int rc = select_counts(conn, sql, param, 2, counts, error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    result->dropped_partitions = (int)counts[0];
    result->deleted_rows = counts[1];
    return TK_OK;
}

/* ---- public ---- */

int token_partitions_maintain(PGconn *conn, int days_ahead, int retention_days,
                              struct token_partitions_result *result, char *error,
                              size_t error_size)
{
    char days_ahead_text[16], retention_text[16];
    int64_t created;
    memset(result, 0, sizeof(*result));
    if (days_ahead < 0 || days_ahead > TOKEN_PARTITIONS_DAYS_AHEAD_MAX) {
        snprintf(error, error_size, "days ahead must be from 0 to %d",
                 TOKEN_PARTITIONS_DAYS_AHEAD_MAX);
        return TK_INVALID;
    }
    if (retention_days < TOKEN_PARTITIONS_RETENTION_MIN_DAYS ||
        retention_days > TOKEN_PARTITIONS_RETENTION_MAX_DAYS) {
        snprintf(error, error_size, "retention must be from %d to %d days",
                 TOKEN_PARTITIONS_RETENTION_MIN_DAYS, TOKEN_PARTITIONS_RETENTION_MAX_DAYS);
        return TK_INVALID;
    }
    int rc = require_idle(conn, error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    snprintf(days_ahead_text, sizeof(days_ahead_text), "%d", days_ahead);
    rc = select_counts(conn, ensure_sql, days_ahead_text, 1, &created, error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    result->created_partitions = (int)created;
    snprintf(retention_text, sizeof(retention_text), "%d", retention_days);
    return drop_partitions(conn, drop_retention_sql, retention_text, result, error, error_size);
}

int token_partitions_purge_before(PGconn *conn, const char *date,
                                  struct token_partitions_result *result, char *error,
                                  size_t error_size)
{
    memset(result, 0, sizeof(*result));
    if (!token_partitions_date_valid(date)) {
        snprintf(error, error_size, "the date must be a calendar date written YYYY-MM-DD");
        return TK_INVALID;
    }
    int rc = require_idle(conn, error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    struct token_partitions_result dropped = {0};
    rc = drop_partitions(conn, drop_before_sql, date, &dropped, error, error_size);
    if (rc == TK_OK) {
        *result = dropped;
    }
    return rc;
}

int token_partitions_count_tokens(PGconn *conn, const char *client_id, int64_t *count, char *error,
                                  size_t error_size)
{
    *count = 0;
    int64_t counted;
    int rc = select_counts(conn, client_id != NULL ? count_client_sql : count_all_sql, client_id, 1,
                           &counted, error, error_size);
    if (rc == TK_OK) {
        *count = counted;
    }
    return rc;
}
