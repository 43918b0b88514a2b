/*
 * revocation_store.h - the revocations table (sql/003_revocations.sql) as
 * the worker and tokenctl use it: load what still matters into a
 * revocation set, and record one revocation with its notification.
 */
#ifndef TOKEND_REVOCATION_STORE_H
#define TOKEND_REVOCATION_STORE_H

#include <stdint.h>

#include "tokend/db_conn.h"
#include "tokend/revocation_set.h"

/* Records a revocation and announces it, as one statement: the INSERT
 * (ignored when the jti is revoked already, then nothing is announced) and
 * pg_notify(channel, '*revoke <jti> <exp> <origin>') go out when it
 * commits. Parameters: $1 jti (32 hex digits), $2 client_id, $3 exp (Unix
 * seconds), $4 the notify channel, $5 the origin (admin_event_origin of
 * the instance whose workers know already, or "-"). Shared with tokenctl,
 * which runs it over its own connection. */
#define REVOCATION_INSERT_SQL                                                                      \
    "WITH added AS (INSERT INTO revocations (jti, client_id, expires_at)"                          \
    " VALUES ($1, $2, to_timestamp($3::bigint)) ON CONFLICT (jti) DO NOTHING RETURNING jti)"       \
    " SELECT pg_notify($4, '*revoke ' || jti || ' ' || $3::bigint || ' ' || $5) FROM added"

/* Kept this long past exp + leeway: entries expire on the monotonic clock,
 * tokens on the wall clock, and a wall clock stepped back by less than this
 * still finds the jti revoked while the token verifies. */
#define REVOCATION_KEEP_MARGIN_S 60

/* How long a revoked jti must be kept, in ms from `now_wall_ms`: until
 * exp + leeway has passed (then the verifier calls the token expired), and
 * REVOCATION_KEEP_MARGIN_S more. <= 0 when there is nothing to keep. */
int64_t revocation_keep_ms(int64_t expires_at_s, int64_t leeway_s, int64_t now_wall_ms);

/* Adds every revocation whose token is not yet expired (with `leeway_s`,
 * by the worker's clock) to `set`. TK_OK; TK_UNAVAILABLE / TK_ERROR as db_conn_query (database
 * down, or the table missing: run tokenctl migrate); TK_ERROR when out of
 * memory part way (some were added: the caller must load again). */
int revocation_store_load(struct db_conn *db, struct revocation_set *set, int64_t leeway_s,
                          int64_t now_wall_ms);

/* Records that the token `jti` of `client_id`, expiring at `expires_at_s`,
 * is revoked, and notifies `channel` on behalf of `origin`. TK_OK (also
 * when it was revoked already), or the database's status as
 * db_conn_query. */
int revocation_store_record(struct db_conn *db, const char *jti, const char *client_id,
                            int64_t expires_at_s, const char *channel, const char *origin);

/* Announces an already recorded revocation again, with no origin, so that
 * every flusher (this instance's too) passes it on. For a worker that
 * could not publish its own event. TK_OK or the database's status. */
int revocation_store_announce(struct db_conn *db, const char *jti, int64_t expires_at_s,
                              const char *channel);

#endif
