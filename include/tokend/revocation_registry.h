/*
 * revocation_registry.h - tokenctl's revocation of one token by its jti
 * (`tokenctl tokens revoke JTI`), over tokenctl's libpq connection. (Every
 * token of a client, `client revoke-all`, is a client change:
 * client_registry_revoke_all.)
 */
#ifndef TOKEND_REVOCATION_REGISTRY_H
#define TOKEND_REVOCATION_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

/* Writes `jti` as tokend does (32 lowercase hex digits) into `out` (33
 * bytes), accepting that form in any case or the hyphenated UUID form.
 * False for anything else. */
bool revocation_jti_normalize(const char *jti, char out[33]);

/* Revokes the recorded token `jti` (normalised already): looks up its
 * client and expiry in the tokens table, then records and announces the
 * revocation on `channel` (REVOCATION_INSERT_SQL). Sets `client_id` (its
 * size `client_id_size`). TK_OK (also when it was revoked already),
 * TK_NOT_FOUND (no such token recorded: `error` says so), TK_UNAVAILABLE or
 * TK_ERROR with `error` set. */
int revocation_registry_revoke_token(PGconn *conn, const char *jti, const char *channel,
                                     char *client_id, size_t client_id_size, char *error,
                                     size_t error_size);

#endif
