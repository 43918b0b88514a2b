/*
 * basic_auth.c - decodes `Authorization: Basic <base64>` into an OAuth
 * client_id and client_secret (RFC 7617, RFC 6749 §2.3.1).
 *
 * Grammar accepted (RFC 7235 credentials, narrowed to what Basic needs):
 *
 *     [OWS] scheme [ 1*SP base64 ] [OWS]        OWS = SP / HTAB
 *
 * The scheme is an RFC 7230 token compared case-insensitively with "Basic".
 * A different well-formed scheme ("Bearer x", "Digest ...", "Negotiate") is
 * TK_DECLINED so the caller may try another decoder; its parameters are not
 * looked at. Everything else is TK_INVALID: control bytes anywhere in the
 * header, a scheme that is not a token or is not followed by a space, a
 * token that starts with "Basic" but is longer ("BasicQWxh..." is a Basic
 * header with its space missing, not another scheme), Basic without
 * credentials, and credentials that are not strict padded base64.
 *
 * The decoded text splits at its FIRST ':'; client_id and secret are then
 * each form-urldecoded as RFC 6749 §2.3.1 requires ('+' is a space, %3A a
 * colon inside the id), and must be free of control bytes (< 0x20, 0x7f)
 * both before and after that decoding. The client_id must not be empty;
 * an empty secret passes (authentication will refuse it).
 *
 * Ownership and secrets: the base64-decoded text holds the secret, so it
 * lives in a stack buffer that is wiped before returning. The decoded
 * strings are allocated from the caller's arena and returned only on TK_OK;
 * on failure the secret's arena copy is wiped. (explicit_bzero rather than
 * OPENSSL_cleanse: this module does not link libcrypto.)
 *
 * Failure: outputs are untouched unless TK_OK; *error is set on every other
 * result to a static lowercase reason that never quotes the header (it
 * becomes an RFC 6749 error_description).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tokend/base64.h"
#include "tokend/ascii.h"
#include "tokend/basic_auth.h"
#include "tokend/http_form.h"
#include "tokend/status.h"

static const char error_too_long[] = "authorization header too long";
static const char error_malformed[] = "malformed authorization header";
static const char error_other_scheme[] = "authorization scheme is not basic";
static const char error_no_credentials[] = "missing basic credentials";
static const char error_bad_base64[] = "basic credentials are not valid base64";
static const char error_no_colon[] = "missing colon in basic credentials";
static const char error_empty_id[] = "empty client_id in basic credentials";
static const char error_bad_escape[] = "malformed percent-encoding in basic credentials";
static const char error_control[] = "control character in basic credentials";
static const char error_no_memory[] = "out of memory";

static const char basic_scheme[] = "basic";
#define BASIC_SCHEME_LEN (sizeof(basic_scheme) - 1)

static void set_error(const char **error, const char *reason)
{
    if (error != NULL) {
        *error = reason;
    }
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* RFC 7230 tchar: the characters an auth-scheme token may hold. */
static bool is_token_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool has_control(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (is_control((unsigned char)text[i])) {
            return true;
        }
    }
    return false;
}

/* Form-urldecodes one credential part into the arena and checks the result
 * for control bytes. */
static int decode_part(const char *text, size_t len, struct arena *arena, char **out,
                       const char **error)
{
    const char *ignored = NULL;
    int rc = http_form_decode_component(text, len, arena, out, &ignored);
    if (rc == TK_ERROR) {
        set_error(error, error_no_memory);
        return rc;
    }
    if (rc != TK_OK) {
        set_error(error, error_bad_escape); /* includes %00 */
        return rc;
    }
    if (has_control(*out, strlen(*out))) {
        set_error(error, error_control);
        return TK_INVALID;
    }
    return TK_OK;
}

int basic_auth_decode(const char *header, struct arena *arena, const char **client_id,
                      const char **client_secret, const char **error)
{
    /* Credentials are at most BASIC_AUTH_MAX_HEADER base64 chars. */
    char decoded[BASIC_AUTH_MAX_HEADER / 4 * 3];
    size_t decoded_len = 0;
    char *id = NULL;
    char *secret = NULL;
    int rc = TK_INVALID;

    if (header == NULL) {
        set_error(error, error_malformed);
        goto fail;
    }
    size_t header_len = strnlen(header, BASIC_AUTH_MAX_HEADER + 1);
    if (header_len > BASIC_AUTH_MAX_HEADER) {
        set_error(error, error_too_long);
        goto fail;
    }
    for (size_t i = 0; i < header_len; i++) {
        if (is_control((unsigned char)header[i]) && header[i] != '\t') {
            set_error(error, error_malformed);
            goto fail;
        }
    }

    size_t start = 0;
    size_t end = header_len;
    while (start < end && is_ows(header[start])) {
        start++;
    }
    while (end > start && is_ows(header[end - 1])) {
        end--;
    }
    size_t scheme_end = start;
    while (scheme_end < end && is_token_char((unsigned char)header[scheme_end])) {
        scheme_end++;
    }
    size_t scheme_len = scheme_end - start;
    if (scheme_len == 0 || (scheme_end < end && header[scheme_end] != ' ')) {
        set_error(error, error_malformed);
        goto fail;
    }
    if (scheme_len < BASIC_SCHEME_LEN ||
        !ascii_equal_ignore_case(header + start, basic_scheme, BASIC_SCHEME_LEN)) {
        set_error(error, error_other_scheme);
        rc = TK_DECLINED;
        goto fail;
    }
    if (scheme_len != BASIC_SCHEME_LEN) {
        set_error(error, error_malformed);
        goto fail;
    }

    size_t credentials = scheme_end;
    while (credentials < end && header[credentials] == ' ') {
        credentials++;
    }
    if (credentials == end) {
        set_error(error, error_no_credentials);
        goto fail;
    }
    int n =
        base64_decode(header + credentials, end - credentials, (uint8_t *)decoded, sizeof(decoded));
    if (n < 0) {
        set_error(error, error_bad_base64);
        goto fail;
    }
    decoded_len = (size_t)n;

    const char *colon = memchr(decoded, ':', decoded_len);
    if (colon == NULL) {
        set_error(error, error_no_colon);
        goto fail;
    }
    size_t id_len = (size_t)(colon - decoded);
    if (id_len == 0) {
        set_error(error, error_empty_id);
        goto fail;
    }
    if (has_control(decoded, decoded_len)) {
        set_error(error, error_control);
        goto fail;
    }
    rc = decode_part(decoded, id_len, arena, &id, error);
    if (rc != TK_OK) {
        goto fail;
    }
    rc = decode_part(colon + 1, decoded_len - id_len - 1, arena, &secret, error);
    if (rc != TK_OK) {
        goto fail;
    }

    explicit_bzero(decoded, sizeof(decoded));
    *client_id = id;
    *client_secret = secret;
    return TK_OK;

fail:
    explicit_bzero(decoded, sizeof(decoded));
    if (secret != NULL) {
        explicit_bzero(secret, strlen(secret));
    }
    return rc;
}
