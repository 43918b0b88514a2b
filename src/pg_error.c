/*
 * pg_error.c - one printable line out of a PostgreSQL message, and the
 * split between connection failures and SQL errors.
 */
#include <ctype.h>
#include <string.h>

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
