/*
 * http_form.h - application/x-www-form-urlencoded parsing (bodies and query
 * strings), as RFC 6749 Appendix B and the WHATWG URL standard describe it:
 * pairs separated by '&', name and value separated by the first '=', '+'
 * means space, %XX is a byte. Bad percent-encoding (a '%' not followed by
 * two hex digits) and NUL bytes, decoded or raw, are errors; so are more
 * than HTTP_FORM_MAX_PARAMS pairs. Empty pairs ("a=1&&b=2") are skipped.
 *
 * Decoded strings live in the caller's arena and are NUL-terminated.
 */
#ifndef TOKEND_HTTP_FORM_H
#define TOKEND_HTTP_FORM_H

#include <stddef.h>

#include "tokend/arena.h"

#define HTTP_FORM_MAX_PARAMS 32

struct http_form_param {
    const char *name;
    const char *value; /* "" for "name" or "name=" */
};

struct http_form {
    struct http_form_param params[HTTP_FORM_MAX_PARAMS];
    size_t count;
};

/* Parses `len` bytes of `text` (need not be NUL-terminated). Returns TK_OK,
 * TK_INVALID with *error set to a static human-readable reason, or TK_ERROR
 * when the arena is out of memory. `form` is fully written in every case
 * (count 0 on error). */
int http_form_parse(const char *text, size_t len, struct arena *arena, struct http_form *form,
                    const char **error);

/* What http_form_get found. */
enum http_form_lookup {
    HTTP_FORM_ABSENT = 0,   /* no pair with that name, or only empty values */
    HTTP_FORM_ONE = 1,      /* exactly one non-empty value, stored in *value */
    HTTP_FORM_REPEATED = 2, /* the name appears more than once */
};

/* Looks `name` up. RFC 6749 §3.1: a parameter sent without a value is
 * treated as omitted, and a parameter must not be included more than once
 * (any repetition counts, even with empty values). Cannot fail. */
enum http_form_lookup http_form_get(const struct http_form *form, const char *name,
                                    const char **value);

/* Decodes one form-urlencoded component ('+' and %XX) into the arena.
 * Returns TK_OK, TK_INVALID (bad escape or NUL byte; *error set), or
 * TK_ERROR (out of memory). Shared with the Basic-auth decoder. */
int http_form_decode_component(const char *text, size_t len, struct arena *arena, char **out,
                               const char **error);

#endif
