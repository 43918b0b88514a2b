/*
 * pg_error.h - making sense of PostgreSQL's errors for tokend's logs and
 * tokenctl's messages: one printable line out of a multi-line message, and
 * whether a failure was the connection's (worth retrying) or the SQL's.
 */
#ifndef TOKEND_PG_ERROR_H
#define TOKEND_PG_ERROR_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

/* Copies the first line of `text` (NULL allowed) into `out`, trailing
 * white space dropped and control characters replaced by spaces, cut to
 * fit. Cannot fail. */
void pg_error_first_line(char *out, size_t out_size, const char *text);

/* True when a failed command failed because of the connection or the
 * server's state (no result, connection lost, SQLSTATE class 08, admin or
 * crash shutdown 57P01-57P03, too many connections 53300) rather than the
 * SQL itself. Cannot fail. */
bool pg_error_is_connection_failure(PGconn *conn, const PGresult *res);

/* A libpq notice processor (PQsetNoticeProcessor) that sends server
 * notices to our log instead of libpq's default, a bare line on stderr:
 * WARNINGs as warnings, the rest (NOTICE, "terminating connection due to
 * administrator command", ...) as debug lines. */
void pg_error_log_notice(void *arg, const char *message);

#endif
