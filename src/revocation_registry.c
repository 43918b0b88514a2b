/*
 * revocation_registry.c - `tokenctl tokens revoke JTI`.
 *
 * The token is looked up in the tokens table (every issued token is
 * recorded there by the flusher within about a second) for its client and
 * expiry, then revoked with the statement the workers use
 * (REVOCATION_INSERT_SQL): the row and the NOTIFY that tells every
 * instance commit together. Values travel only as parameters. A token that
 * is not (yet) recorded cannot be revoked from here: the message says so,
 * since its client and expiry are unknown.
 *
 * Failure: one line in `error`, never more than the jti and client id.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "tokend/pg_error.h"
#include "tokend/revocation_registry.h"
#include "tokend/revocation_store.h"
#include "tokend/status.h"

static const char find_sql[] = "SELECT client_id, extract(epoch FROM expires_at)::bigint"
                               " FROM tokens WHERE jti = $1::uuid LIMIT 1";

bool revocation_jti_normalize(const char *jti, char out[33])
{
    size_t n = 0;
    size_t len = strlen(jti);
    bool hyphenated = len == 36;
    if (len != 32 && !hyphenated) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)jti[i];
        if (hyphenated && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (c != '-') {
                return false;
            }
            continue;
        }
        if (!isxdigit(c)) {
            return false;
        }
        out[n++] = (char)tolower(c);
    }
    out[n] = '\0';
    return n == 32;
}

/* Runs one statement; TK_OK with *result, else the failure in `error`. */
static int run(PGconn *conn, const char *sql, int count, const char *const *params,
               PGresult **result, char *error, size_t error_size)
{
    PGresult *res = PQexecParams(conn, sql, count, NULL, params, NULL, NULL, 0);
    ExecStatusType status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    *result = NULL;
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
        *result = res;
        return TK_OK;
    }
    char message[400];
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    pg_error_first_line(message, sizeof(message), primary != NULL ? primary : PQerrorMessage(conn));
    int rc = pg_error_is_connection_failure(conn, res) ? TK_UNAVAILABLE : TK_ERROR;
    snprintf(error, error_size, "%s%s", rc == TK_UNAVAILABLE ? "database unavailable: " : "",
             message);
    PQclear(res);
    return rc;
}

int revocation_registry_revoke_token(PGconn *conn, const char *jti, const char *channel,
                                     char *client_id, size_t client_id_size, char *error,
                                     size_t error_size)
{
    client_id[0] = '\0';
    const char *find_params[] = {jti};
    PGresult *found = NULL;
    int rc = run(conn, find_sql, 1, find_params, &found, error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    if (PQntuples(found) == 0) {
        snprintf(error, error_size,
                 "no token with jti %s is recorded (tokend records a token within about a "
                 "second of issuing it; check the jti)",
                 jti);
        PQclear(found);
        return TK_NOT_FOUND;
    }
    snprintf(client_id, client_id_size, "%s", PQgetvalue(found, 0, 0));
    /* Origin "-": no instance knows yet, every flusher passes it on. */
    const char *params[] = {jti, client_id, PQgetvalue(found, 0, 1), channel, "-"};
    PGresult *inserted = NULL;
    rc = run(conn, REVOCATION_INSERT_SQL, 5, params, &inserted, error, error_size);
    PQclear(inserted);
    PQclear(found);
    return rc;
}
