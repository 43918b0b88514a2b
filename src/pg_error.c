/*
 * pg_error.c - one printable line out of a PostgreSQL message, the split
 * between connection failures and SQL errors, and server notices routed to
 * our log.
 */
#include <ctype.h>
#include <string.h>

#include "tokend/logging.h"
#include "tokend/pg_error.h"

void pg_error_first_line(char *out, size_t out_size, const char *text)
{
    size_t len = text != NULL ? strcspn(text, "\n") : 0;
    while (len > 0 && isspace((unsigned char)text[len - 1])) {
        len--;
    }
    size_t n = 0;
    for (; n < len && n + 1 < out_size; n++) {
        out[n] = iscntrl((unsigned char)text[n]) ? ' ' : text[n];
    }
    if (out_size > 0) {
        out[n] = '\0';
    }
}

bool pg_error_is_connection_failure(PGconn *conn, const PGresult *res)
{
    if (res == NULL || PQstatus(conn) == CONNECTION_BAD) {
        return true;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state == NULL) {
        return true; /* libpq's own error: the connection, not the SQL */
    }
    return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
           strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
           strcmp(state, "53300") == 0;
}

void pg_error_log_notice(void *arg, const char *message)
{
    (void)arg;
    char line[256];
    pg_error_first_line(line, sizeof(line), message);
    if (strncmp(line, "WARNING", 7) == 0) {
        log_warn("database: %s", line);
    } else {
        log_debug("database: %s", line);
    }
}
