/*
 * scope.c - settling the scopes of a token request (RFC 6749 §3.3).
 *
 * A scope list is scope-tokens separated by one or more spaces (0x20 only);
 * a scope-token is 1*( %x21 / %x23-5B / %x5D-7E ), i.e. printable ASCII
 * without space, '"' and '\'. Leading and trailing spaces are tolerated. Tabs,
 * control characters, DEL and every non-ASCII byte make a list malformed.
 *
 * Settling: a requested list must be well-formed as a whole and every token
 * must appear in the client's allowed list; the granted string lists each
 * token once, in the order first requested, joined by single spaces. With no
 * request the client's default list is granted the same way (deduplicated,
 * in order). Matching is exact, token by token: "read" is not in
 * "readonly write".
 *
 * Invariants: the granted string is never longer than the list it was built
 * from, so it is one arena allocation sized by that list. Error messages only
 * ever echo a well-formed token (the whole request is validated before any
 * token is looked up), truncated to SCOPE_ECHO_MAX bytes, so a client cannot
 * inject quotes, control bytes or a long string into a log line or response.
 *
 * Ownership: every string handed out (granted list, error text) lives in the
 * caller's arena or is static; nothing here is freed by the caller. On
 * failure *granted is NULL and *error names the problem; the arena may hold
 * an unused allocation, reclaimed with the rest of the request.
 *
 * Malformed *defaults* are a broken client record, not a bad request: they
 * settle to TK_ERROR rather than ever reaching a token.
 */
#include <stdio.h>
#include <string.h>

#include "tokend/scope.h"
#include "tokend/status.h"

/* At most this many bytes of an offending scope are echoed in an error. */
#define SCOPE_ECHO_MAX 64

static bool is_scope_char(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

/* True when every byte of `text` is a space or a scope-token character. An
 * empty or all-space list passes; callers that need a token check for one. */
static bool list_chars_valid(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        if (*p != ' ' && !is_scope_char(*p)) {
            return false;
        }
    }
    return true;
}

/* Advances *cursor past the next space-separated token and returns it in
 * token/token_len. False when only spaces (or nothing) remain. */
static bool next_token(const char **cursor, const char **token, size_t *token_len)
{
    const char *p = *cursor;
    while (*p == ' ') {
        p++;
    }
    if (*p == '\0') {
        *cursor = p;
        return false;
    }
    const char *start = p;
    while (*p != ' ' && *p != '\0') {
        p++;
    }
    *token = start;
    *token_len = (size_t)(p - start);
    *cursor = p;
    return true;
}

static bool list_contains_token(const char *list, const char *token, size_t token_len)
{
    const char *cursor = list;
    const char *candidate;
    size_t candidate_len;
    while (next_token(&cursor, &candidate, &candidate_len)) {
        if (candidate_len == token_len && memcmp(candidate, token, token_len) == 0) {
            return true;
        }
    }
    return false;
}

bool scope_list_valid(const char *text)
{
    if (text == NULL || !list_chars_valid(text)) {
        return false;
    }
    /* Well-formed characters only; it is a list if any of them is not a space. */
    return text[strspn(text, " ")] != '\0';
}

bool scope_list_contains(const char *list, const char *scope)
{
    if (list == NULL || scope == NULL || scope[0] == '\0') {
        return false;
    }
    return list_contains_token(list, scope, strlen(scope));
}

/* Builds the "not allowed" message for a well-formed token. */
static const char *not_allowed_message(struct arena *arena, const char *token, size_t token_len)
{
    static const char format[] = "scope '%.*s' is not allowed for this client";
    int echo_len = (int)(token_len > SCOPE_ECHO_MAX ? SCOPE_ECHO_MAX : token_len);
    size_t size = sizeof(format) + SCOPE_ECHO_MAX;
    char *message = arena_alloc(arena, size);
    if (message == NULL) {
        return NULL;
    }
    snprintf(message, size, format, echo_len, token);
    return message;
}

int scope_settle(const char *requested, const char *allowed, const char *defaults,
                 struct arena *arena, const char **granted, const char **error)
{
    const char *source = requested;
    *granted = NULL;
    *error = NULL;

    if (allowed == NULL) {
        allowed = "";
    }
    if (requested == NULL) {
        source = defaults != NULL ? defaults : "";
        if (!list_chars_valid(source)) {
            *error = "client default scope is malformed";
            return TK_ERROR;
        }
    } else if (!scope_list_valid(requested)) {
        *error = "malformed scope";
        return TK_INVALID;
    }

    /* Deduplicated tokens with single separators never outgrow the source. */
    char *out = arena_alloc(arena, strlen(source) + 1);
    if (out == NULL) {
        *error = "out of memory";
        return TK_ERROR;
    }
    size_t out_len = 0;
    out[0] = '\0';

    const char *cursor = source;
    const char *token;
    size_t token_len;
    while (next_token(&cursor, &token, &token_len)) {
        if (requested != NULL && !list_contains_token(allowed, token, token_len)) {
            *error = not_allowed_message(arena, token, token_len);
            if (*error == NULL) {
                *error = "out of memory";
                return TK_ERROR;
            }
            return TK_INVALID;
        }
        if (list_contains_token(out, token, token_len)) {
            continue;
        }
        if (out_len > 0) {
            out[out_len++] = ' ';
        }
        memcpy(out + out_len, token, token_len);
        out_len += token_len;
        out[out_len] = '\0';
    }
    *granted = out;
    return TK_OK;
}
