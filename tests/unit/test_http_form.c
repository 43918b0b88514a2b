/*
 * test_http_form.c - form-urlencoded parsing: splitting, decoding, every
 * malformed input with its exact error, and the RFC 6749 §3.1 lookup rules.
 */
#include <ctype.h>
#include <string.h>

#include "tokend/arena.h"
#include "tokend/http_form.h"
#include "tokend/status.h"
#include "unit_test.h"

static struct arena arena;

/* Parses a NUL-terminated literal; the form is poisoned first so that a
 * field the parser forgot to write shows up. */
static int parse(const char *text, struct http_form *form, const char **error)
{
    memset(form, 0xA5, sizeof(*form));
    *error = NULL;
    return http_form_parse(text, strlen(text), &arena, form, error);
}

/* An error string fit for an RFC 6749 error_description: short, lowercase,
 * no characters outside %x20-21 / %x23-5B / %x5D-7E. */
static int is_clean_error(const char *error)
{
    if (error == NULL || strlen(error) == 0 || strlen(error) > 64) {
        return 0;
    }
    for (const char *p = error; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\' || isupper(c)) {
            return 0;
        }
    }
    return 1;
}

static void check_invalid(const char *text, size_t len, const char *expected_error)
{
    struct http_form form;
    const char *error = NULL;
    memset(&form, 0xA5, sizeof(form));
    int rc = http_form_parse(text, len, &arena, &form, &error);
    if (rc != TK_INVALID) {
        fprintf(stderr, "accepted \"%.*s\"\n", (int)len, text);
    }
    CHECK_INT(rc, TK_INVALID);
    CHECK_INT(form.count, 0);
    CHECK(form.params[0].name == NULL);
    CHECK_STR(error, expected_error);
    CHECK(is_clean_error(error));
}

static void test_token_request_body(void)
{
    struct http_form form;
    const char *error = NULL;
    CHECK_INT(parse("grant_type=client_credentials&scope=read%20write", &form, &error), TK_OK);
    CHECK_INT(form.count, 2);
    CHECK_STR(form.params[0].name, "grant_type");
    CHECK_STR(form.params[0].value, "client_credentials");
    CHECK_STR(form.params[1].name, "scope");
    CHECK_STR(form.params[1].value, "read write");
    CHECK(error == NULL);

    CHECK_INT(parse("grant_type=client_credentials&client_id=s6BhdRkqt3&client_secret="
                    "7Fjfp0ZBr1KtDRbnfVdmIw&scope=read+write+admin%3Aall",
                    &form, &error),
              TK_OK);
    CHECK_INT(form.count, 4);
    CHECK_STR(form.params[1].name, "client_id");
    CHECK_STR(form.params[1].value, "s6BhdRkqt3");
    CHECK_STR(form.params[2].name, "client_secret");
    CHECK_STR(form.params[2].value, "7Fjfp0ZBr1KtDRbnfVdmIw");
    CHECK_STR(form.params[3].value, "read write admin:all");
}

static void test_decoding(void)
{
    struct http_form form;
    const char *error = NULL;
    CHECK_INT(parse("a+b=c+d&plus=%2B&sp=%20&eq=%3D&amp=%26&pct=%25", &form, &error), TK_OK);
    CHECK_INT(form.count, 6);
    CHECK_STR(form.params[0].name, "a b");
    CHECK_STR(form.params[0].value, "c d");
    CHECK_STR(form.params[1].value, "+");
    CHECK_STR(form.params[2].value, " ");
    CHECK_STR(form.params[3].value, "=");
    CHECK_STR(form.params[4].value, "&");
    CHECK_STR(form.params[5].value, "%");

    /* Both hex cases; any byte but NUL; raw high bytes pass through. */
    CHECK_INT(parse("x=%2f%2F%7e%7E%01%ff%C3%A9&caf\xc3\xa9=\x80", &form, &error), TK_OK);
    CHECK_INT(form.count, 2);
    CHECK_STR(form.params[0].value, "//~~\x01\xff\xc3\xa9");
    CHECK_STR(form.params[1].name, "caf\xc3\xa9");
    CHECK_STR(form.params[1].value, "\x80");

    /* Names are decoded too, and an encoded '=' or '&' does not split. */
    CHECK_INT(parse("sc%6Fpe=a%3Db%26c=d", &form, &error), TK_OK);
    CHECK_INT(form.count, 1);
    CHECK_STR(form.params[0].name, "scope");
    CHECK_STR(form.params[0].value, "a=b&c=d");

    /* "%%" style: the escape after a decoded '%' is not re-decoded. */
    CHECK_INT(parse("v=%2541", &form, &error), TK_OK);
    CHECK_STR(form.params[0].value, "%41");
}

static void test_splitting(void)
{
    struct http_form form;
    const char *error = NULL;

    CHECK_INT(parse("a=b=c", &form, &error), TK_OK);
    CHECK_INT(form.count, 1);
    CHECK_STR(form.params[0].name, "a");
    CHECK_STR(form.params[0].value, "b=c");

    CHECK_INT(parse("flag&empty=&x=1", &form, &error), TK_OK);
    CHECK_INT(form.count, 3);
    CHECK_STR(form.params[0].name, "flag");
    CHECK_STR(form.params[0].value, "");
    CHECK_STR(form.params[1].name, "empty");
    CHECK_STR(form.params[1].value, "");
    CHECK_STR(form.params[2].value, "1");

    /* Empty pairs are skipped wherever they are. */
    CHECK_INT(parse("&&a=1&&&b=2&", &form, &error), TK_OK);
    CHECK_INT(form.count, 2);
    CHECK_STR(form.params[0].name, "a");
    CHECK_STR(form.params[1].name, "b");
    CHECK_INT(parse("&&&", &form, &error), TK_OK);
    CHECK_INT(form.count, 0);
    CHECK_INT(parse("", &form, &error), TK_OK);
    CHECK_INT(form.count, 0);
    CHECK_INT(http_form_parse(NULL, 0, &arena, &form, &error), TK_OK);
    CHECK_INT(form.count, 0);

    /* Only `len` bytes are read; the text need not be NUL-terminated. */
    CHECK_INT(http_form_parse("a=1&b=2", 3, &arena, &form, &error), TK_OK);
    CHECK_INT(form.count, 1);
    CHECK_STR(form.params[0].value, "1");
    char unterminated[3] = {'k', '=', 'v'};
    CHECK_INT(http_form_parse(unterminated, sizeof(unterminated), &arena, &form, &error), TK_OK);
    CHECK_INT(form.count, 1);
    CHECK_STR(form.params[0].name, "k");
    CHECK_STR(form.params[0].value, "v");
    /* A truncation inside an escape makes it bad. */
    check_invalid("a=%41", 4, "malformed percent-encoding");
}

static void test_empty_name(void)
{
    check_invalid("=x", 2, "empty parameter name");
    check_invalid("=", 1, "empty parameter name");
    check_invalid("a=1&=2", 6, "empty parameter name");
    check_invalid("&=&", 3, "empty parameter name");
    check_invalid("a=1&==", 6, "empty parameter name");
}

static void test_bad_percent_encoding(void)
{
    static const char *const bad[] = {
        "%",     "%4",    "%zz",    "%4g",    "%g4",         "a=%",   "a=%4",
        "a=%zz", "a=%4g", "a=%%41", "a=%+41", "a=% 4",       "a=%-1", "a%=1",
        "%=1",   "a=1%",  "a=x%2",  "a=%0x2", "a=%\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        check_invalid(bad[i], strlen(bad[i]), "malformed percent-encoding");
    }
    /* A bad escape in a later pair spoils the whole form. */
    check_invalid("grant_type=client_credentials&scope=%zz", 39, "malformed percent-encoding");
}

static void test_nul_bytes(void)
{
    check_invalid("a=%00", 5, "nul byte in form data");
    check_invalid("a%00=b", 6, "nul byte in form data");
    check_invalid("a=b\0c", 5, "nul byte in form data");
    check_invalid("\0=b", 3, "nul byte in form data");
    check_invalid("a=1&\0", 5, "nul byte in form data");
}

static void test_parameter_limit(void)
{
    char text[512];
    struct http_form form;
    const char *error = NULL;
    size_t len = 0;
    for (int i = 0; i < HTTP_FORM_MAX_PARAMS; i++) {
        len += (size_t)snprintf(text + len, sizeof(text) - len, "p%d=%d&", i, i);
    }
    /* Exactly the maximum, with a trailing empty pair that does not count. */
    CHECK_INT(http_form_parse(text, len, &arena, &form, &error), TK_OK);
    CHECK_INT(form.count, HTTP_FORM_MAX_PARAMS);
    CHECK_STR(form.params[HTTP_FORM_MAX_PARAMS - 1].name, "p31");
    CHECK_STR(form.params[HTTP_FORM_MAX_PARAMS - 1].value, "31");
    /* Empty pairs never count. */
    memcpy(text + len, "&&&&", 4);
    CHECK_INT(http_form_parse(text, len + 4, &arena, &form, &error), TK_OK);
    CHECK_INT(form.count, HTTP_FORM_MAX_PARAMS);
    /* One more is too many, even a bare name. */
    memcpy(text + len, "x", 1);
    check_invalid(text, len + 1, "too many parameters");
    memcpy(text + len, "x=1", 3);
    check_invalid(text, len + 3, "too many parameters");
}

static void test_get(void)
{
    struct http_form form;
    const char *error = NULL;
    const char *value = NULL;

    CHECK_INT(parse("grant_type=client_credentials&scope=read&Scope=x&empty=&bare", &form, &error),
              TK_OK);
    CHECK_INT(http_form_get(&form, "grant_type", &value), HTTP_FORM_ONE);
    CHECK_STR(value, "client_credentials");
    CHECK(value == form.params[0].value);
    /* Names are case-sensitive. */
    CHECK_INT(http_form_get(&form, "scope", &value), HTTP_FORM_ONE);
    CHECK_STR(value, "read");
    CHECK_INT(http_form_get(&form, "Scope", &value), HTTP_FORM_ONE);
    CHECK_STR(value, "x");
    CHECK_INT(http_form_get(&form, "SCOPE", &value), HTTP_FORM_ABSENT);
    CHECK(value == NULL);
    /* A parameter without a value is treated as omitted. */
    value = "sentinel";
    CHECK_INT(http_form_get(&form, "empty", &value), HTTP_FORM_ABSENT);
    CHECK(value == NULL);
    value = "sentinel";
    CHECK_INT(http_form_get(&form, "bare", &value), HTTP_FORM_ABSENT);
    CHECK(value == NULL);
    CHECK_INT(http_form_get(&form, "client_id", &value), HTTP_FORM_ABSENT);
    CHECK_INT(http_form_get(&form, "", &value), HTTP_FORM_ABSENT);
    /* The value pointer is optional. */
    CHECK_INT(http_form_get(&form, "grant_type", NULL), HTTP_FORM_ONE);
}

static void test_get_repeated(void)
{
    static const char *const repeated[] = {
        "scope=a&scope=b", "scope=a&scope=a",       "scope=&scope=a",
        "scope=a&scope=",  "scope=&scope=",         "scope&scope",
        "scope&scope=a",   "scope=a&x=1&sc%6Fpe=b", "scope+=a&scope=b&scope=c",
    };
    for (size_t i = 0; i < sizeof(repeated) / sizeof(repeated[0]); i++) {
        struct http_form form;
        const char *error = NULL;
        const char *value = "sentinel";
        CHECK_INT(parse(repeated[i], &form, &error), TK_OK);
        enum http_form_lookup found = http_form_get(&form, "scope", &value);
        if (found != HTTP_FORM_REPEATED) {
            fprintf(stderr, "not repeated in \"%s\"\n", repeated[i]);
        }
        CHECK_INT(found, HTTP_FORM_REPEATED);
        CHECK(value == NULL);
    }
    /* "scope " is another name than "scope". */
    struct http_form form;
    const char *error = NULL;
    const char *value = NULL;
    CHECK_INT(parse("scope+=a&scope=b", &form, &error), TK_OK);
    CHECK_INT(http_form_get(&form, "scope", &value), HTTP_FORM_ONE);
    CHECK_STR(value, "b");
    CHECK_INT(http_form_get(&form, "scope ", &value), HTTP_FORM_ONE);
    CHECK_STR(value, "a");
}

static void test_decode_component(void)
{
    char *out = NULL;
    const char *error = NULL;
    CHECK_INT(http_form_decode_component("a+b%20c%3a", 10, &arena, &out, &error), TK_OK);
    CHECK_STR(out, "a b c:");
    CHECK_INT(http_form_decode_component("", 0, &arena, &out, &error), TK_OK);
    CHECK_STR(out, "");
    CHECK_INT(http_form_decode_component("abc", 2, &arena, &out, &error), TK_OK);
    CHECK_STR(out, "ab");
    /* '&' and '=' have no meaning inside one component. */
    CHECK_INT(http_form_decode_component("a=b&c", 5, &arena, &out, &error), TK_OK);
    CHECK_STR(out, "a=b&c");

    out = (char *)"untouched";
    CHECK_INT(http_form_decode_component("%4", 2, &arena, &out, &error), TK_INVALID);
    CHECK_STR(error, "malformed percent-encoding");
    CHECK_STR(out, "untouched");
    CHECK_INT(http_form_decode_component("ab%00", 5, &arena, &out, &error), TK_INVALID);
    CHECK_STR(error, "nul byte in form data");
    CHECK_STR(out, "untouched");
    /* The length bounds the escape too: "%41" cut to "%4". */
    CHECK_INT(http_form_decode_component("%41", 2, &arena, &out, &error), TK_INVALID);
    CHECK_STR(out, "untouched");
}

/* Error strings never echo the input, whatever it holds. */
static void test_errors_do_not_echo_input(void)
{
    static const char *const inputs[] = {
        "client_secret=TOPSECRET%zz",
        "client_secret=TOPSECRET%00",
        "=TOPSECRET",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        struct http_form form;
        const char *error = NULL;
        CHECK_INT(parse(inputs[i], &form, &error), TK_INVALID);
        CHECK(is_clean_error(error));
        CHECK(error != NULL && strstr(error, "TOPSECRET") == NULL);
    }
}

static void test_arena_reuse(void)
{
    struct http_form form;
    const char *error = NULL;
    for (int round = 0; round < 100; round++) {
        arena_reset(&arena);
        CHECK_INT(parse("grant_type=client_credentials&scope=a+b+c", &form, &error), TK_OK);
        CHECK_STR(form.params[1].value, "a b c");
    }
    /* A body much larger than one arena block. */
    static char big[20000];
    memcpy(big, "v=", 2);
    memset(big + 2, 'x', sizeof(big) - 2);
    CHECK_INT(http_form_parse(big, sizeof(big), &arena, &form, &error), TK_OK);
    CHECK_INT(form.count, 1);
    CHECK_INT(strlen(form.params[0].value), sizeof(big) - 2);
}

int main(void)
{
    arena_init(&arena, 4096);
    RUN(test_token_request_body);
    RUN(test_decoding);
    RUN(test_splitting);
    RUN(test_empty_name);
    RUN(test_bad_percent_encoding);
    RUN(test_nul_bytes);
    RUN(test_parameter_limit);
    RUN(test_get);
    RUN(test_get_repeated);
    RUN(test_decode_component);
    RUN(test_errors_do_not_echo_input);
    RUN(test_arena_reuse);
    arena_free(&arena);
    return unit_test_finish();
}
