/*
 * client_registry.h - administering the clients table (tokenctl's side):
 * synchronous libpq, parameterised statements only, every change in one
 * statement that also sends NOTIFY <notify_channel>, '<client_id>' so running
 * servers drop their cached copy.
 *
 * Lists (scopes, audiences) cross this interface as space-separated strings
 * ("" for none); they are stored as text arrays with single spaces between
 * items, each item once, in the order first given.
 *
 * Every function taking `error` writes one line there on failure (never a
 * secret or a hash). Codes:
 *   TK_OK          done;
 *   TK_NOT_FOUND   no client with that id (nothing changed);
 *   TK_INVALID     the values are malformed or break a table constraint
 *                  (nothing changed);
 *   TK_DECLINED    client_registry_add only: the id is taken;
 *   TK_UNAVAILABLE the database could not be reached or the connection was
 *                  lost;
 *   TK_ERROR       anything else (SQL error, schema missing, out of memory).
 */
#ifndef TOKEND_CLIENT_REGISTRY_H
#define TOKEND_CLIENT_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "tokend/client_record.h"

#define CLIENT_REGISTRY_TTL_MAX_S  86400
#define CLIENT_REGISTRY_ERROR_SIZE 512

/* What an administrator sets when adding a client. */
struct client_registry_settings {
    const char *client_id;
    const char *allowed_scopes; /* "" for none */
    const char *default_scopes; /* "" for none; must be a subset of allowed_scopes */
    const char *audiences;      /* "" for none (the server's default audience) */
    int64_t token_ttl_s;        /* 0 = the server's default, else 1..86400 */
};

/* A client as `client show` and `client list` see it: never the hash.
 * Strings are heap copies owned by the entry. */
struct client_registry_entry {
    char *client_id;
    char *allowed_scopes;
    char *default_scopes;
    char *audiences;
    char *grant_types;
    int64_t token_ttl_s; /* 0 = the server's default */
    bool enabled;
    char *created_at; /* "2026-01-31T12:00:00Z" */
    char *updated_at;
};

/* Opens a connection. `url` is a libpq URI or conninfo string; `password`
 * (may be NULL) is used unless the URL carries one; `connect_timeout_s`
 * applies unless the URL sets connect_timeout. Returns TK_OK with *out, or
 * TK_UNAVAILABLE (unreachable, refused, authentication failed) or TK_INVALID
 * (unparsable URL) with `error`; *out is NULL then. Close with PQfinish. */
int client_registry_connect(const char *url, const char *password, int connect_timeout_s,
                            PGconn **out, char *error, size_t error_size);

/* Checks a scope list ("" allowed) and, when `default_scopes` is not NULL,
 * that it is a well-formed subset. Returns TK_OK or TK_INVALID with `error`
 * naming the first offending scope. */
int client_registry_check_scopes(const char *allowed_scopes, const char *default_scopes,
                                 char *error, size_t error_size);

/* Checks an audience list ("" allowed): items are plain names or absolute
 * URIs (scheme ":" ...), printable ASCII, at most 512 bytes each. Returns
 * TK_OK or TK_INVALID with `error`. */
int client_registry_check_audiences(const char *audiences, char *error, size_t error_size);

/* Checks everything in `settings` as the functions above do, plus the TTL.
 * Returns TK_OK or TK_INVALID with `error`. Touches no database. */
int client_registry_check_settings(const struct client_registry_settings *settings, char *error,
                                   size_t error_size);

/* Inserts a new, enabled client with `secret_hash` (secret_hash.h form).
 * Validates first (TK_INVALID); an existing id is TK_DECLINED. */
int client_registry_add(PGconn *conn, const struct client_registry_settings *settings,
                        const char *secret_hash, char *error, size_t error_size);

/* Reads one client into *out (free with client_registry_entry_free).
 * TK_OK, TK_NOT_FOUND, TK_INVALID (malformed id), TK_UNAVAILABLE, TK_ERROR;
 * *out is zeroed unless TK_OK. */
int client_registry_get(PGconn *conn, const char *client_id, struct client_registry_entry *out,
                        char *error, size_t error_size);

/* Reads every client ordered by id into a heap array (free with
 * client_registry_entries_free). TK_OK (possibly *count == 0),
 * TK_UNAVAILABLE, TK_ERROR; *entries is NULL unless TK_OK. */
int client_registry_list(PGconn *conn, struct client_registry_entry **entries, size_t *count,
                         char *error, size_t error_size);

/* Replaces the secret hash. TK_OK, TK_NOT_FOUND, TK_INVALID, TK_UNAVAILABLE,
 * TK_ERROR. */
int client_registry_update_secret(PGconn *conn, const char *client_id, const char *secret_hash,
                                  char *error, size_t error_size);

/* Replaces the allowed scopes and, unless `default_scopes` is NULL, the
 * default scopes. Kept defaults that are not all in the new allowed scopes
 * are TK_INVALID (the table's subset constraint). Other codes as above. */
int client_registry_set_scopes(PGconn *conn, const char *client_id, const char *allowed_scopes,
                               const char *default_scopes, char *error, size_t error_size);

/* Enables or disables the client (a disabled client gets no tokens).
 * Setting the state it already has is TK_OK. Codes as above. */
int client_registry_set_enabled(PGconn *conn, const char *client_id, bool enabled, char *error,
                                size_t error_size);

/* Deletes the client. Codes as above. */
int client_registry_delete(PGconn *conn, const char *client_id, char *error, size_t error_size);

/* Sets the client's tokens_not_before to now (`tokenctl client
 * revoke-all`): every token it was issued until now is inactive. Announced
 * like every change, so each worker forgets the client and its cached
 * introspection answers. TK_OK, TK_NOT_FOUND, TK_INVALID (bad id) or an
 * error as above. */
int client_registry_revoke_all(PGconn *conn, const char *client_id, char *error, size_t error_size);

/* Makes this session's change notices go to `channel` (the config's
 * notify_channel) instead of tokend_clients. TK_OK or TK_ERROR (error set). */
int client_registry_set_notify_channel(PGconn *conn, const char *channel, char *error,
                                       size_t error_size);

/* Frees the entry's strings and zeroes it. NULL fields allowed. Cannot fail. */
void client_registry_entry_free(struct client_registry_entry *entry);

/* Frees `count` entries and the array. NULL allowed. Cannot fail. */
void client_registry_entries_free(struct client_registry_entry *entries, size_t count);

#endif
