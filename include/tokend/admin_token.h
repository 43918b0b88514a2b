/*
 * admin_token.h - the bearer token that guards the admin endpoints
 * (/admin/..., /metrics): loaded once from the file named by
 * `admin_token_file`, kept in memory only as its SHA-256, and checked
 * against each request's `Authorization: Bearer <token>` header.
 *
 * A token is ADMIN_TOKEN_MIN_LEN..ADMIN_TOKEN_MAX_LEN characters of the
 * RFC 6750 b64token alphabet: one or more of A-Z a-z 0-9 - . _ ~ + /
 * followed by zero or more '='. The token itself is never logged, never
 * put into an error message and never kept after loading.
 */
#ifndef TOKEND_ADMIN_TOKEN_H
#define TOKEND_ADMIN_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define ADMIN_TOKEN_MIN_LEN 32
#define ADMIN_TOKEN_MAX_LEN 256
/* A generated token: 32 random bytes as unpadded base64url. */
#define ADMIN_TOKEN_GENERATED_LEN  43
#define ADMIN_TOKEN_GENERATED_SIZE (ADMIN_TOKEN_GENERATED_LEN + 1) /* with the NUL */

/* All zero means "no admin token": admin_token_check then accepts nothing. */
struct admin_token {
    unsigned char digest[32]; /* SHA-256 of the token's characters */
    bool set;
};

/* Reads the token from the file at `path`: a regular file of at most 4 KiB
 * that neither group nor others may access in any way (mode & 077 == 0),
 * one trailing "\n" or "\r\n" dropped, then exactly one token as above.
 * Returns TK_OK with `out` filled; TK_INVALID when the mode or the contents
 * are wrong; TK_ERROR when the file cannot be read as a small regular file
 * (missing, unreadable, a directory or FIFO, over 4 KiB, out of memory).
 * On failure `out` is all zero and `error` holds one line starting with
 * "PATH: " that says why (never quoting the contents). Every copy of the
 * file's bytes is wiped before returning. */
int admin_token_load(const char *path, struct admin_token *out, char *error, size_t error_size);

enum admin_auth_result {
    ADMIN_AUTH_OK,        /* the header carries the configured token */
    ADMIN_AUTH_MISSING,   /* no Authorization header, or an empty one */
    ADMIN_AUTH_MALFORMED, /* not exactly "Bearer" 1*SP b64token *SP */
    ADMIN_AUTH_WRONG,     /* well-formed, but not the configured token */
};

/* Checks `authorization`, the raw Authorization header value (NULL when the
 * request has none). Accepted form, and nothing else:
 *     "Bearer" (any case)  1*SP  b64token (1..ADMIN_TOKEN_MAX_LEN chars)  *SP
 * No leading whitespace, no tabs, no second token, no control bytes.
 * A well-formed header is ADMIN_AUTH_OK only when SHA-256 of its token
 * equals the stored digest, compared with CRYPTO_memcmp (the time taken
 * does not depend on where the two differ, nor on the stored token's
 * length); with no token set (or if hashing fails) it is ADMIN_AUTH_WRONG.
 * Cannot fail otherwise; logs nothing. */
enum admin_auth_result admin_token_check(const struct admin_token *token,
                                         const char *authorization);

/* Writes a fresh token (RAND_bytes, 32 bytes, unpadded base64url: exactly
 * ADMIN_TOKEN_GENERATED_LEN characters) and a NUL into `out`. Returns TK_OK,
 * or TK_ERROR when `out_size` < ADMIN_TOKEN_GENERATED_SIZE or the random
 * generator fails; `out` is then "" (when out_size > 0). */
int admin_token_generate(char *out, size_t out_size);

/* Creates `path` (O_CREAT|O_EXCL, mode 0600: never replaces a file, never
 * more open than 0600) holding a fresh token and "\n", synced to disk.
 * Returns TK_OK, or TK_ERROR with "PATH: reason" in `error`; a file that was
 * created but not completely written is removed. */
int admin_token_generate_file(const char *path, char *error, size_t error_size);

#endif
