/*
 * client_store.c - the worker's read path to the clients table.
 *
 * One prepared statement, one index lookup on the primary key.
 *
 * tokens_not_before_s is the later of the second after the client's last
 * revoke-all and the second it was created: a token issued before the
 * client row existed was issued to an earlier client with the same id
 * (deleted, then added again), and must not come back to life. Lists come
 * back joined with single spaces (array_to_string) so the record carries
 * the same form the scope and audience code parses. The strings are copied
 * into the request arena; the caller copies what it keeps into its cache.
 */
#include <stdlib.h>
#include <string.h>

#include "tokend/client_store.h"
#include "tokend/logging.h"
#include "tokend/status.h"

static const char lookup_sql[] =
    "SELECT secret_hash, array_to_string(allowed_scopes, ' '),"
    " array_to_string(default_scopes, ' '), array_to_string(audiences, ' '),"
    " coalesce(token_ttl_s, 0), enabled, 'client_credentials' = ANY(grant_types),"
    " greatest(coalesce(floor(extract(epoch FROM tokens_not_before))::bigint + 1, 0),"
    " floor(extract(epoch FROM created_at))::bigint)"
    " FROM clients WHERE client_id = $1";

static const char *copy_field(PGresult *res, int column, struct arena *arena)
{
    return arena_strndup(arena, PQgetvalue(res, 0, column), (size_t)PQgetlength(res, 0, column));
}

int client_store_lookup(struct db_conn *conn, const char *client_id, struct arena *arena,
                        struct client_record *record)
{
    const char *params[1] = {client_id};
    PGresult *res = NULL;
    int rc = db_conn_query(conn, "tokend_client_lookup", lookup_sql, 1, params, &res);
    if (rc != TK_OK) {
        return rc;
    }
    if (PQntuples(res) == 0) {
        rc = TK_NOT_FOUND;
        goto done;
    }
    if (PQnfields(res) != 8) {
        log_error("database: unexpected answer to the client lookup");
        rc = TK_ERROR;
        goto done;
    }
    struct client_record found = {
        .client_id = arena_strndup(arena, client_id, strlen(client_id)),
        .secret_hash = copy_field(res, 0, arena),
        .allowed_scopes = copy_field(res, 1, arena),
        .default_scopes = copy_field(res, 2, arena),
        .audiences = copy_field(res, 3, arena),
        .token_ttl_s = strtoll(PQgetvalue(res, 0, 4), NULL, 10),
        .enabled = PQgetvalue(res, 0, 5)[0] == 't',
        .client_credentials_allowed = PQgetvalue(res, 0, 6)[0] == 't',
        .tokens_not_before_s = strtoll(PQgetvalue(res, 0, 7), NULL, 10),
    };
    if (found.client_id == NULL || found.secret_hash == NULL || found.allowed_scopes == NULL ||
        found.default_scopes == NULL || found.audiences == NULL) {
        rc = TK_ERROR;
        goto done;
    }
    *record = found;
    rc = TK_OK;
done:
    PQclear(res);
    return rc;
}
