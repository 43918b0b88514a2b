/*
 * config.h - tokend's configuration: one plain `key = value` file.
 *
 * Syntax: one setting per line; '#' starts a comment (only at the start of a
 * line or after whitespace); blank lines are ignored; whitespace around key
 * and value is trimmed; a value may be wrapped in double quotes to keep
 * leading/trailing spaces or a '#'. A key given twice is an error, as is an
 * unknown key or a bad value: the message names file, line and key.
 *
 * Durations take an optional unit: ms, s, m, h, d. Without one, a key whose
 * name ends in _ms counts milliseconds and every other duration counts
 * seconds. Secrets (database password, HMAC key) are read from files named
 * by *_file keys so they never sit in the config itself.
 *
 * Every key, its default and its meaning: etc/tokend.conf.example and
 * tokend.conf(5). The defaults here and there must agree.
 */
#ifndef TOKEND_CONFIG_H
#define TOKEND_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "tokend/logging.h"

#define CONFIG_ERROR_SIZE     512
#define CONFIG_ISSUER_MAX_LEN 511 /* bytes; the iss claim of every token */

struct tokend_config {
    char *path; /* file the config came from, or "" */

    /* transport and processes */
    char *listen;         /* "unix:/path" or "host:port"; default unix:/run/tokend/tokend.sock */
    unsigned listen_mode; /* unix socket permissions, default 0660 */
    int listen_backlog;   /* default 1024 */
    int workers;          /* 0 = number of online CPUs (default) */
    char *user;           /* started as root: switch to this user; "" = not set (default) */
    char *group;          /* and this group; "" = the user's login group (default) */
    int io_timeout_ms;    /* send/receive timeout on a FastCGI connection, default 30000 */
    char *transport;      /* "event" (event_transport.c, default) or "libfcgi" */
    int max_connections;  /* event transport: connections per worker, default 1024 */
    int keepalive_timeout_ms; /* event transport: idle kept connection, default 60000 */
    int read_timeout_ms;      /* event transport: first byte to last of a request, default 10000 */
    int max_params_bytes;     /* event transport: raw PARAMS stream, larger is 431, default 16384 */
    int shutdown_timeout_ms;  /* SIGTERM -> SIGKILL grace for children, default 30 s */
    enum log_level log_level; /* default info */

    /* tokens */
    char *issuer;           /* required by the server: "https://auth.example.com" */
    char *default_audience; /* aud when the client has none; "" (default) = the issuer */
    int64_t token_ttl_s;    /* default lifetime, default 3600 */
    char *token_typ;        /* "at+jwt" (default, RFC 9068) or "JWT" */
    char *signing_alg;      /* "ES256" | "RS256" | "HS256"; "" = from the key (default) */
    char *signing_key_file; /* PEM private key (ES256/RS256) */
    char *signing_kid;      /* "" = RFC 7638 thumbprint (default) */
    char *hmac_key_file;    /* HS256 secret key, >= 32 bytes */
    char *verify_key_files; /* space-separated PEM keys also published in the JWKS */

    /* database */
    char *database_url;       /* libpq URI or conninfo */
    char *database_password;  /* read from database_password_file, or NULL */
    int db_timeout_ms;        /* connect + query deadline, default 2000 */
    int db_retry_interval_ms; /* after a failure, answer 503 without retrying for this long, default
                                 1000 */
    unsigned
        secret_hash_iterations; /* PBKDF2 iterations for new secrets (tokenctl), default 10000 */

    /* token queue and flusher */
    char *shm_name;           /* shared-memory segment; "" (default) = derived from listen */
    int queue_capacity;       /* records, a power of two, default 65536 */
    int queue_full_wait_ms;   /* how long a worker waits on a full queue before 503, default 50 */
    int flush_batch;          /* records per COPY transaction, default 1000 */
    int flush_interval_ms;    /* flush whatever is queued at least this often, default 1000 */
    int token_retention_days; /* token rows older than this are dropped, default 30 */

    /* admin, health and fleet */
    char *admin_token_file;      /* Bearer token for /admin/ and /metrics; "" = admin disabled */
    int admin_timeout_ms;        /* how long an admin action waits for every worker, 2000 */
    int admin_rate_limit;        /* admin requests per second per worker (burst twice), 20 */
    int health_queue_high_water; /* /health fails above this % of queue_capacity, 90 */
    int health_db_interval_ms;   /* /health fails when the database was not reached for
                                    this long, 10000 */
    char *notify_channel;        /* PostgreSQL channel of client changes, "tokend_clients" */

    /* per-worker client cache */
    int64_t cache_ttl_s;            /* default 600 */
    int64_t cache_negative_ttl_s;   /* default 30 */
    int cache_max_entries;          /* default 5000 */
    int64_t cache_sweep_interval_s; /* default 60 */

    /* introspection (RFC 7662) and revocation (RFC 7009) */
    int64_t clock_skew_s;              /* leeway on exp/iat of introspected tokens, default 30 */
    int64_t introspect_cache_ttl_s;    /* positive answers (capped by exp), default 300 */
    int64_t introspect_negative_ttl_s; /* inactive answers, default 60 */
    int introspect_cache_max_entries;  /* default 10000 */
};

/* Fills every field with its default (strings are heap copies). Returns
 * TK_OK or TK_ERROR (out of memory; the config is then safe to free). */
int config_init_defaults(struct tokend_config *config);

/* Reads and applies the file at `path` over the current values. Returns
 * TK_OK, TK_INVALID with `error` ("FILE:LINE: key 'K': reason"), or
 * TK_ERROR (file unreadable; error says why). On failure the config may be
 * partly updated; callers discard it. */
int config_load_file(struct tokend_config *config, const char *path, char error[CONFIG_ERROR_SIZE]);

/* Same as config_load_file for text in memory; `name` is used in messages.
 * *_file keys are still read from disk. */
int config_load_text(struct tokend_config *config, const char *text, size_t len, const char *name,
                     char error[CONFIG_ERROR_SIZE]);

/* Checks what the server needs beyond syntax: issuer set and an https:// or
 * http:// URL without a trailing slash, database_url set, a signing key (or
 * HS256 with hmac_key_file), token_typ valid, queue_capacity a power of
 * two, shm_name well-formed. Returns TK_OK or TK_INVALID
 * with `error`. Does not open any file. */
int config_check_server(const struct tokend_config *config, char error[CONFIG_ERROR_SIZE]);

/* Frees every string (the password is wiped first). Cannot fail. */
void config_free(struct tokend_config *config);

/* Parses a duration: digits with an optional unit (ms, s, m, h, d). Bare
 * numbers are in `default_unit_ms` (1 for _ms keys, 1000 otherwise).
 * Returns TK_OK with milliseconds, or TK_INVALID. Exposed for tests. */
int config_parse_duration_ms(const char *text, int64_t default_unit_ms, int64_t *out_ms);

/* `workers`, or the number of online CPUs when it is 0. */
int config_worker_count(const struct tokend_config *config);

#endif
