/*
 * fuzz_http_form.c - libFuzzer harness for http_form_parse, http_form_get
 * and http_form_decode_component.
 *
 * The input is handed over as is (libFuzzer's buffer is exactly `size`
 * bytes and not NUL-terminated, so reading past the length is caught by
 * ASan). Every input gets a fresh arena, freed at the end.
 *
 * Beyond "does not crash", the harness checks the parser against a small
 * reference model written in a different shape (one pass over the raw
 * bytes): the verdict (TK_OK or TK_INVALID) must match, the pair count and
 * every decoded byte must match, each decoded string must be NUL-terminated
 * exactly at its expected length (so no NUL inside), errors must be clean
 * static strings, and http_form_get must agree with a count of the names.
 * Any violation abort()s so libFuzzer records the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokend/arena.h"
#include "tokend/http_form.h"
#include "tokend/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20; /* ASCII lowercase */
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Reference decoding of one raw component: returns the decoded length and
 * writes it to `out` (at least `len` bytes), or -1 if the component is
 * invalid (bad escape, or a NUL raw or decoded). */
static long reference_decode(const unsigned char *raw, size_t len, unsigned char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = raw[i];
        if (c == '%') {
            if (len - i < 3 || hex_digit(raw[i + 1]) < 0 || hex_digit(raw[i + 2]) < 0) {
                return -1;
            }
            c = hex_digit(raw[i + 1]) * 16 + hex_digit(raw[i + 2]);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == 0) {
            return -1;
        }
        out[o++] = (unsigned char)c;
    }
    return (long)o;
}

/* The decoded string must equal the reference and end exactly there. */
static void require_decoded(const char *decoded, const unsigned char *raw, size_t raw_len,
                            unsigned char *scratch)
{
    long expected = reference_decode(raw, raw_len, scratch);
    REQUIRE(expected >= 0);
    REQUIRE(decoded != NULL);
    REQUIRE(strnlen(decoded, raw_len + 1) == (size_t)expected);
    REQUIRE(memcmp(decoded, scratch, (size_t)expected) == 0);
}

/* Short, lowercase, printable, and without '"' or '\' (RFC 6749
 * error_description). */
static void require_clean_error(const char *error)
{
    REQUIRE(error != NULL);
    size_t len = strnlen(error, 65);
    REQUIRE(len > 0 && len <= 64);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)error[i];
        REQUIRE(c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' && !(c >= 'A' && c <= 'Z'));
    }
}

/* Walks the raw pairs the way the header describes and compares them with
 * the parsed form; returns whether the reference accepts the input. When
 * `form` is NULL only the verdict is computed. */
static int reference_check(const unsigned char *text, size_t size, const struct http_form *form,
                           unsigned char *scratch)
{
    size_t count = 0;
    size_t start = 0;
    while (start < size) {
        const unsigned char *amp = memchr(text + start, '&', size - start);
        size_t end = amp != NULL ? (size_t)(amp - text) : size;
        const unsigned char *pair = text + start;
        size_t pair_len = end - start;
        start = end + 1;
        if (pair_len == 0) {
            continue;
        }
        const unsigned char *equals = memchr(pair, '=', pair_len);
        size_t name_len = equals != NULL ? (size_t)(equals - pair) : pair_len;
        const unsigned char *value = equals != NULL ? equals + 1 : pair + pair_len;
        size_t value_len = equals != NULL ? pair_len - name_len - 1 : 0;
        if (name_len == 0 || count == HTTP_FORM_MAX_PARAMS ||
            reference_decode(pair, name_len, scratch) < 0 ||
            reference_decode(value, value_len, scratch) < 0) {
            return 0;
        }
        if (form != NULL) {
            REQUIRE(count < form->count);
            require_decoded(form->params[count].name, pair, name_len, scratch);
            require_decoded(form->params[count].value, value, value_len, scratch);
        }
        count++;
    }
    if (form != NULL) {
        REQUIRE(count == form->count);
    }
    return 1;
}

static void require_consistent_lookups(const struct http_form *form)
{
    for (size_t i = 0; i < form->count; i++) {
        const char *name = form->params[i].name;
        REQUIRE(name[0] != '\0');
        size_t matches = 0;
        for (size_t j = 0; j < form->count; j++) {
            matches += strcmp(form->params[j].name, name) == 0;
        }
        const char *value = "sentinel";
        enum http_form_lookup found = http_form_get(form, name, &value);
        if (matches > 1) {
            REQUIRE(found == HTTP_FORM_REPEATED);
            REQUIRE(value == NULL);
        } else if (form->params[i].value[0] != '\0') {
            REQUIRE(found == HTTP_FORM_ONE);
            REQUIRE(value == form->params[i].value);
        } else {
            REQUIRE(found == HTTP_FORM_ABSENT);
            REQUIRE(value == NULL);
        }
        REQUIRE(http_form_get(form, name, NULL) == found);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena arena;
    arena_init(&arena, 1024);
    unsigned char *scratch = malloc(size + 1);
    REQUIRE(scratch != NULL);
    const char *text = (const char *)data;

    struct http_form form;
    memset(&form, 0xA5, sizeof(form));
    const char *error = NULL;
    int rc = http_form_parse(text, size, &arena, &form, &error);
    if (rc == TK_OK) {
        REQUIRE(form.count <= HTTP_FORM_MAX_PARAMS);
        REQUIRE(reference_check(data, size, &form, scratch));
        require_consistent_lookups(&form);
    } else {
        /* libFuzzer aborts on a failed malloc, so TK_ERROR cannot happen. */
        REQUIRE(rc == TK_INVALID);
        REQUIRE(form.count == 0);
        require_clean_error(error);
        REQUIRE(!reference_check(data, size, NULL, scratch));
    }

    /* The whole input as one component. */
    char *decoded = (char *)"sentinel";
    const char *sentinel = decoded;
    error = NULL;
    rc = http_form_decode_component(text, size, &arena, &decoded, &error);
    if (rc == TK_OK) {
        require_decoded(decoded, data, size, scratch);
    } else {
        REQUIRE(rc == TK_INVALID);
        REQUIRE(decoded == sentinel);
        require_clean_error(error);
        REQUIRE(reference_decode(data, size, scratch) < 0);
    }

    free(scratch);
    arena_free(&arena);
    return 0;
}
