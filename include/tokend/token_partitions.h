/*
 * token_partitions.h - upkeep of the tokens table (sql/002_tokens.sql):
 * creating its day partitions ahead of time, dropping the ones past
 * retention or before a date, and counting its rows.
 *
 * Used by tokenctl and by the flusher, each over its own synchronous libpq
 * connection. The partition work itself is done by the SQL functions
 * tokend_ensure_token_partitions(days_ahead) and
 * tokend_drop_token_partitions(before_day); this module only calls them.
 * Those functions take a transaction-scoped advisory lock, so any number of
 * processes on any number of hosts may call these at once: they queue, and
 * each one finds done what another already did. Lock waits are bounded by
 * the functions' lock_timeout (1 s).
 *
 * Days are UTC days by the database's clock.
 *
 * Every function taking `error` writes one line there on failure (at least
 * TOKEN_PARTITIONS_ERROR_SIZE bytes is enough for any message). Codes:
 *   TK_OK          done;
 *   TK_INVALID     a malformed argument, or (maintain, purge) `conn` is
 *                  inside a transaction; nothing was sent to the database;
 *   TK_UNAVAILABLE the connection failed or was lost, or a lock on tokens
 *                  could not be had within the lock timeout (busy table:
 *                  nothing was changed by that call, the connection is
 *                  still usable, try again later);
 *   TK_ERROR       anything else (the schema is missing, an SQL error, out
 *                  of memory).
 * A call that fails changes nothing, except that token_partitions_maintain
 * keeps the partitions it created before its drop step failed (and says so
 * in *result).
 */
#ifndef TOKEND_TOKEN_PARTITIONS_H
#define TOKEND_TOKEN_PARTITIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#define TOKEN_PARTITIONS_ERROR_SIZE         512
#define TOKEN_PARTITIONS_DAYS_AHEAD_MAX     366
#define TOKEN_PARTITIONS_RETENTION_MIN_DAYS 1 /* a token lives up to a day */
#define TOKEN_PARTITIONS_RETENTION_MAX_DAYS 36500
#define TOKEN_PARTITIONS_DATE_LEN           10 /* "YYYY-MM-DD" */

/* What one call did. */
struct token_partitions_result {
    int created_partitions;
    int dropped_partitions;
    int64_t deleted_rows; /* rows deleted from tokens_default */
};

/* True when `date` is exactly "YYYY-MM-DD" naming a real day of the
 * Gregorian calendar, years 0001 to 9999 ("2024-02-29" yes, "2026-02-30",
 * "2026-13-01", "2026-1-01", " 2026-01-01" and "yesterday" no). NULL is
 * false. Cannot fail. */
bool token_partitions_date_valid(const char *date);

/* The periodic upkeep: makes sure the partitions of today and of the next
 * `days_ahead` days exist (0..TOKEN_PARTITIONS_DAYS_AHEAD_MAX), then drops
 * the partitions whose whole day is older than today - `retention_days`
 * (TOKEN_PARTITIONS_RETENTION_MIN_DAYS..TOKEN_PARTITIONS_RETENTION_MAX_DAYS)
 * and deletes the rows of tokens_default issued before that day. The two
 * steps are two transactions: `conn` must be idle (not inside a
 * transaction), so the locks last only as long as each step.
 * *result is zeroed first and then filled in as the steps complete, also
 * when a later step fails. Codes as above. */
int token_partitions_maintain(PGconn *conn, int days_ahead, int retention_days,
                              struct token_partitions_result *result, char *error,
                              size_t error_size);

/* Drops every day partition before `date` ("YYYY-MM-DD", checked with
 * token_partitions_date_valid; TK_INVALID otherwise) and deletes the rows of
 * tokens_default issued before date 00:00 UTC, in one transaction. A date
 * in the future drops today's partition too: the caller decides whether
 * that is wanted. `conn` must be idle. *result is zeroed, then filled on
 * TK_OK. Codes as above. */
int token_partitions_purge_before(PGconn *conn, const char *date,
                                  struct token_partitions_result *result, char *error,
                                  size_t error_size);

/* Counts the rows of tokens (every partition), only those of `client_id`
 * when it is not NULL (any string: an unknown client counts 0). *count is 0
 * unless TK_OK. Codes as above. */
int token_partitions_count_tokens(PGconn *conn, const char *client_id, int64_t *count, char *error,
                                  size_t error_size);

#endif
