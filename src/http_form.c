/*
 * http_form.c - application/x-www-form-urlencoded parsing for the token
 * endpoint's body (RFC 6749 Appendix B, WHATWG URL "urlencoded parser").
 *
 * The input is split on '&'; empty pairs are skipped; each pair splits at
 * its first '=' into name and value, and each side is decoded on its own
 * ('+' is a space, %XX a byte). Stricter than WHATWG on purpose: a '%' not
 * followed by two hex digits, a NUL byte (raw or %00), an empty name and
 * more than HTTP_FORM_MAX_PARAMS pairs are errors rather than passed
 * through, so nothing downstream ever sees an ambiguous or truncated string.
 *
 * Ownership: decoded strings are NUL-terminated copies in the caller's
 * arena; a decoded string is never longer than its encoded form, so each
 * component costs one allocation of (encoded length + 1). The parser keeps
 * no state between calls.
 *
 * Failure: TK_INVALID comes with a static, lowercase reason that never
 * quotes the input (it goes straight into an RFC 6749 error_description,
 * whose character set excludes '"' and '\'); TK_ERROR means the arena could
 * not grow. On any failure the form is left empty (count 0) and whatever
 * was already allocated stays in the arena until its reset.
 */
#include <stdbool.h>
#include <string.h>

#include "tokend/arena.h"
#include "tokend/http_form.h"
#include "tokend/status.h"

static const char error_bad_escape[] = "malformed percent-encoding";
static const char error_nul_byte[] = "nul byte in form data";
static const char error_empty_name[] = "empty parameter name";
static const char error_too_many[] = "too many parameters";
static const char error_no_memory[] = "out of memory";

static void set_error(const char **error, const char *reason)
{
    if (error != NULL) {
        *error = reason;
    }
}

/* Value of one hex digit, or -1. */
static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int http_form_decode_component(const char *text, size_t len, struct arena *arena, char **out,
                               const char **error)
{
    char *decoded = arena_alloc(arena, len + 1);
    if (decoded == NULL) {
        set_error(error, error_no_memory);
        return TK_ERROR;
    }
    const unsigned char *in = (const unsigned char *)text;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = in[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int high = i + 1 < len ? hex_value(in[i + 1]) : -1;
            int low = i + 2 < len ? hex_value(in[i + 2]) : -1;
            if (high < 0 || low < 0) {
                set_error(error, error_bad_escape);
                return TK_INVALID;
            }
            c = (unsigned char)(high << 4 | low);
            i += 2;
        }
        if (c == '\0') {
            set_error(error, error_nul_byte);
            return TK_INVALID;
        }
        decoded[o++] = (char)c;
    }
    decoded[o] = '\0';
    *out = decoded;
    return TK_OK;
}

int http_form_parse(const char *text, size_t len, struct arena *arena, struct http_form *form,
                    const char **error)
{
    int rc = TK_OK;
    memset(form, 0, sizeof(*form));

    size_t pair_start = 0;
    while (pair_start < len) {
        const char *pair = text + pair_start;
        const char *amp = memchr(pair, '&', len - pair_start);
        size_t pair_len = amp != NULL ? (size_t)(amp - pair) : len - pair_start;
        pair_start += pair_len + 1;
        if (pair_len == 0) {
            continue;
        }

        const char *equals = memchr(pair, '=', pair_len);
        size_t name_len = equals != NULL ? (size_t)(equals - pair) : pair_len;
        if (name_len == 0) {
            set_error(error, error_empty_name);
            rc = TK_INVALID;
            goto fail;
        }
        if (form->count == HTTP_FORM_MAX_PARAMS) {
            set_error(error, error_too_many);
            rc = TK_INVALID;
            goto fail;
        }

        char *name = NULL;
        char *value = NULL;
        rc = http_form_decode_component(pair, name_len, arena, &name, error);
        if (rc != TK_OK) {
            goto fail;
        }
        if (equals != NULL) {
            rc = http_form_decode_component(equals + 1, pair_len - name_len - 1, arena, &value,
                                            error);
            if (rc != TK_OK) {
                goto fail;
            }
        }
        form->params[form->count].name = name;
        form->params[form->count].value = value != NULL ? value : "";
        form->count++;
    }
    return TK_OK;

fail:
    memset(form, 0, sizeof(*form));
    return rc;
}

enum http_form_lookup http_form_get(const struct http_form *form, const char *name,
                                    const char **value)
{
    const char *found = NULL;
    size_t matches = 0;
    for (size_t i = 0; i < form->count; i++) {
        if (strcmp(form->params[i].name, name) == 0) {
            found = form->params[i].value;
            matches++;
        }
    }

    enum http_form_lookup result = HTTP_FORM_ABSENT;
    if (matches > 1) {
        result = HTTP_FORM_REPEATED;
    } else if (matches == 1 && found[0] != '\0') {
        result = HTTP_FORM_ONE;
    }
    if (value != NULL) {
        *value = result == HTTP_FORM_ONE ? found : NULL;
    }
    return result;
}
