/*
 * admin_token.c - the shared secret that opens the admin endpoints: loading
 * it from `admin_token_file`, checking a request's Bearer header against
 * it, and generating a new one for `tokenctl admin-token generate`.
 *
 * Grammar of the header (RFC 6750 §2.1, narrowed to what we need):
 *
 *     "Bearer" 1*SP b64token *SP
 *     b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
 *
 * The scheme is matched case-insensitively (RFC 7235 §2.1). Nothing else is
 * tolerated: no leading whitespace, no tab, no second token, no auth-params.
 * A web server has already folded or refused anything stranger, so a
 * request that still carries it is not from a well-behaved admin client.
 *
 * Invariants: a loaded `struct admin_token` holds only SHA-256 of the token
 * (set == true); the token's characters are never kept. A digest, not the
 * text, is compared, so the comparison is always 32 bytes with
 * CRYPTO_memcmp: its time depends neither on the first differing byte nor
 * on the stored token's length (hashing the presented token takes time
 * that depends only on what the caller sent). An unset token accepts
 * nothing.
 *
 * Ownership and secrets: the file is read with file_read_all and released
 * with file_read_free, which wipes every byte it held; a generated token
 * lives in caller or stack buffers that are wiped (OPENSSL_cleanse) once
 * written. Error messages name the file and what is wrong with it, never
 * its contents; admin_token_check logs nothing at all.
 *
 * Failure: admin_token_load leaves `out` all zero unless TK_OK; TK_ERROR is
 * "the file could not be read", TK_INVALID "it was read and is
 * unacceptable". admin_token_check cannot fail: if hashing fails it
 * answers ADMIN_AUTH_WRONG (closed, never open). admin_token_generate_file
 * never replaces a file (O_EXCL) and removes one it created but could not
 * write completely.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "tokend/ascii.h"
#include "tokend/admin_token.h"
#include "tokend/secret_file.h"
#include "tokend/secret_hash.h"
#include "tokend/file_read.h"
#include "tokend/status.h"

#define ADMIN_TOKEN_FILE_MAX 4096 /* far above ADMIN_TOKEN_MAX_LEN plus a line ending */

_Static_assert(SECRET_GENERATED_SIZE == ADMIN_TOKEN_GENERATED_SIZE,
               "a generated token is made like a client secret");
_Static_assert(ADMIN_TOKEN_GENERATED_LEN >= ADMIN_TOKEN_MIN_LEN, "a generated token must load");

static const char bearer_scheme[] = "bearer";
#define BEARER_SCHEME_LEN (sizeof(bearer_scheme) - 1)

/* The b64token characters before any '='. */
static bool is_b64token_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

/* Length of the longest b64token at the start of text[0..len): 0 when
 * there is none (first byte not in the alphabet, '=' included). */
static size_t b64token_span(const char *text, size_t len)
{
    size_t i = 0;
    while (i < len && is_b64token_char((unsigned char)text[i])) {
        i++;
    }
    if (i == 0) {
        return 0;
    }
    while (i < len && text[i] == '=') {
        i++;
    }
    return i;
}

/* SHA-256 of text[0..len). Returns TK_OK or TK_ERROR (OpenSSL failure,
 * queue cleared). */
static int sha256(const char *text, size_t len, unsigned char digest[32])
{
    unsigned int digest_len = 0;
    if (EVP_Digest(text, len, digest, &digest_len, EVP_sha256(), NULL) != 1 || digest_len != 32) {
        ERR_clear_error();
        return TK_ERROR;
    }
    return TK_OK;
}

int admin_token_load(const char *path, struct admin_token *out, char *error, size_t error_size)
{
    struct file_contents file;
    int rc = TK_INVALID;

    memset(out, 0, sizeof(*out));
    /* file_read_all words every failure as "PATH: reason" and leaves `file`
     * zeroed; whatever the reason, the token could not be read. */
    if (file_read_all(path, ADMIN_TOKEN_FILE_MAX, &file, error, error_size) != TK_OK) {
        return TK_ERROR;
    }
    if ((file.mode & 077) != 0) {
        snprintf(error, error_size,
                 "%s: admin token file has mode %04o, open to group or others (chmod 600 %s)", path,
                 (unsigned)(file.mode & 07777), path);
        goto done;
    }
    file_read_strip_line_ending(&file);
    if (file.len < ADMIN_TOKEN_MIN_LEN || file.len > ADMIN_TOKEN_MAX_LEN) {
        snprintf(error, error_size, "%s: admin token is %zu characters; it needs %d to %d", path,
                 file.len, ADMIN_TOKEN_MIN_LEN, ADMIN_TOKEN_MAX_LEN);
        goto done;
    }
    size_t valid = b64token_span(file.data, file.len);
    if (valid != file.len) {
        unsigned char stop = (unsigned char)file.data[valid];
        if (stop == '=' || is_b64token_char(stop)) {
            /* Padding with more after it (or nothing before it): point
             * at the first '=' of that run. */
            size_t padding = valid;
            while (padding > 0 && file.data[padding - 1] == '=') {
                padding--;
            }
            snprintf(error, error_size,
                     "%s: admin token has '=' at position %zu; '=' may only end it", path,
                     padding + 1);
        } else {
            snprintf(error, error_size,
                     "%s: admin token has a character outside A-Z a-z 0-9 - . _ ~ + / = at "
                     "position %zu",
                     path, valid + 1);
        }
        goto done;
    }
    if (sha256(file.data, file.len, out->digest) != TK_OK) {
        snprintf(error, error_size, "%s: cannot compute SHA-256 of the admin token", path);
        rc = TK_ERROR;
        goto done;
    }
    out->set = true;
    rc = TK_OK;
done:
    file_read_free(&file);
    if (rc != TK_OK) {
        OPENSSL_cleanse(out, sizeof(*out));
    }
    return rc;
}

enum admin_auth_result admin_token_check(const struct admin_token *token, const char *authorization)
{
    if (authorization == NULL || authorization[0] == '\0') {
        return ADMIN_AUTH_MISSING;
    }
    if (!ascii_equal_ignore_case(authorization, bearer_scheme, BEARER_SCHEME_LEN)) {
        return ADMIN_AUTH_MALFORMED;
    }
    const char *cursor = authorization + BEARER_SCHEME_LEN;
    if (*cursor != ' ') {
        return ADMIN_AUTH_MALFORMED; /* "Bearer", "Bearerx", "Bearer\tx" */
    }
    while (*cursor == ' ') {
        cursor++;
    }
    const char *given = cursor;
    size_t given_len = b64token_span(given, strlen(given));
    cursor += given_len;
    while (*cursor == ' ') {
        cursor++;
    }
    if (given_len == 0 || given_len > ADMIN_TOKEN_MAX_LEN || *cursor != '\0') {
        return ADMIN_AUTH_MALFORMED;
    }
    if (!token->set) {
        return ADMIN_AUTH_WRONG;
    }

    unsigned char digest[32];
    enum admin_auth_result result = ADMIN_AUTH_WRONG;
    if (sha256(given, given_len, digest) == TK_OK &&
        CRYPTO_memcmp(digest, token->digest, sizeof(digest)) == 0) {
        result = ADMIN_AUTH_OK;
    }
    OPENSSL_cleanse(digest, sizeof(digest));
    return result;
}

int admin_token_generate(char *out, size_t out_size)
{
    /* The same as a client secret: 32 random bytes, base64url. */
    if (out_size < ADMIN_TOKEN_GENERATED_SIZE) {
        if (out_size > 0) {
            out[0] = '\0';
        }
        return TK_ERROR;
    }
    return secret_generate(out);
}

int admin_token_generate_file(const char *path, char *error, size_t error_size)
{
    char line[ADMIN_TOKEN_GENERATED_SIZE]; /* the token, then "\n" where its NUL was */
    int rc = TK_ERROR;

    if (admin_token_generate(line, sizeof(line)) != TK_OK) {
        snprintf(error, error_size, "%s: cannot generate a random admin token", path);
        goto done;
    }
    line[ADMIN_TOKEN_GENERATED_LEN] = '\n';
    rc = secret_file_create(path, line, sizeof(line), error, error_size);
done:
    OPENSSL_cleanse(line, sizeof(line));
    return rc;
}
