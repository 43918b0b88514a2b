/*
 * revocation_store.c - the worker's reads and writes of the revocations
 * table, over its db_conn (prepared statements, values only as
 * parameters).
 *
 * Loading reads every row whose token is still live, give or take the
 * leeway: the set needs nothing older, since the verifier refuses an
 * expired token by itself. Rows come back as (jti, exp seconds); a row
 * whose jti is not one tokend could have issued is skipped (the table's
 * CHECK already rules that out).
 *
 * Recording is REVOCATION_INSERT_SQL: the row and its notification commit
 * together, so no instance hears of a revocation that is not in the table,
 * and a worker that loads after hearing finds it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "tokend/revocation_store.h"
#include "tokend/status.h"

/* An hour of margin, as the purge keeps: the worker's clock, not the
 * database's, decides what is still needed (revocation_keep_ms). */
static const char load_sql[] = "SELECT jti, extract(epoch FROM expires_at)::bigint FROM revocations"
                               " WHERE expires_at > now() - interval '1 hour'";

int64_t revocation_keep_ms(int64_t expires_at_s, int64_t leeway_s, int64_t now_wall_ms)
{
    if (leeway_s < 0) {
        leeway_s = 0;
    }
    /* Seconds since the epoch fit easily; clamp absurd values from the
     * table or the wire instead of overflowing. */
    if (expires_at_s > INT64_MAX / 2000 || expires_at_s < -(INT64_MAX / 2000)) {
        return expires_at_s > 0 ? INT64_MAX / 2 : 0;
    }
    return (expires_at_s + leeway_s + REVOCATION_KEEP_MARGIN_S) * 1000 - now_wall_ms;
}

int revocation_store_load(struct db_conn *db, struct revocation_set *set, int64_t leeway_s,
                          int64_t now_wall_ms)
{
    PGresult *res = NULL;
    int rc = db_conn_query(db, "tokend_revocations_load", load_sql, 0, NULL, &res);
    if (rc != TK_OK) {
        return rc;
    }
    int rows = PQntuples(res);
    for (int row = 0; row < rows && rc == TK_OK; row++) {
        int64_t expires_at_s = strtoll(PQgetvalue(res, row, 1), NULL, 10);
        int added = revocation_set_add(set, PQgetvalue(res, row, 0),
                                       revocation_keep_ms(expires_at_s, leeway_s, now_wall_ms));
        if (added == TK_ERROR) {
            rc = TK_ERROR;
        }
    }
    PQclear(res);
    return rc;
}

int revocation_store_record(struct db_conn *db, const char *jti, const char *client_id,
                            int64_t expires_at_s, const char *channel, const char *origin)
{
    char exp_text[24];
    snprintf(exp_text, sizeof(exp_text), "%lld", (long long)expires_at_s);
    const char *params[] = {jti, client_id, exp_text, channel, origin};
    PGresult *res = NULL;
    int rc = db_conn_query(db, "tokend_revocation_record", REVOCATION_INSERT_SQL, 5, params, &res);
    PQclear(res);
    return rc;
}

int revocation_store_announce(struct db_conn *db, const char *jti, int64_t expires_at_s,
                              const char *channel)
{
    char exp_text[24];
    snprintf(exp_text, sizeof(exp_text), "%lld", (long long)expires_at_s);
    const char *params[] = {channel, jti, exp_text};
    PGresult *res = NULL;
    int rc = db_conn_query(db, "tokend_revocation_announce",
                           "SELECT pg_notify($1, '*revoke ' || $2 || ' ' || $3 || ' -')", 3, params,
                           &res);
    PQclear(res);
    return rc;
}
