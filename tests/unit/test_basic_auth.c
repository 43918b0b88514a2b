/*
 * test_basic_auth.c - the Authorization: Basic decoder: RFC 7617's example,
 * scheme matching, RFC 6749 §2.3.1 form-decoding of the credentials, and
 * every malformed header with its exact return code and error.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "tokend/arena.h"
#include "tokend/base64.h"
#include "tokend/basic_auth.h"
#include "tokend/status.h"
#include "unit_test.h"

static struct arena arena;
static const char sentinel[] = "untouched";

/* "Basic " + base64(credentials); `credentials_len` allows NUL bytes. */
static const char *basic_header(const char *credentials, size_t credentials_len)
{
    static char header[BASIC_AUTH_MAX_HEADER + 64];
    memcpy(header, "Basic ", 6);
    CHECK(base64_encode((const uint8_t *)credentials, credentials_len, header + 6,
                        sizeof(header) - 6) >= 0);
    return header;
}

static void check_ok(const char *header, const char *expected_id, const char *expected_secret)
{
    const char *id = sentinel;
    const char *secret = sentinel;
    const char *error = NULL;
    int rc = basic_auth_decode(header, &arena, &id, &secret, &error);
    if (rc != TK_OK) {
        fprintf(stderr, "refused \"%s\": %s\n", header, error ? error : "(null)");
    }
    CHECK_INT(rc, TK_OK);
    CHECK_STR(id, expected_id);
    CHECK_STR(secret, expected_secret);
}

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

static void check_refused(const char *header, int expected_rc, const char *expected_error)
{
    const char *id = sentinel;
    const char *secret = sentinel;
    const char *error = NULL;
    int rc = basic_auth_decode(header, &arena, &id, &secret, &error);
    if (rc != expected_rc) {
        fprintf(stderr, "header \"%s\" gave %d\n", header ? header : "(null)", rc);
    }
    CHECK_INT(rc, expected_rc);
    CHECK_STR(error, expected_error);
    CHECK(is_clean_error(error));
    /* Outputs are untouched unless TK_OK. */
    CHECK(id == sentinel);
    CHECK(secret == sentinel);
}

static void check_invalid_credentials(const char *credentials, size_t len,
                                      const char *expected_error)
{
    check_refused(basic_header(credentials, len), TK_INVALID, expected_error);
}

static void test_rfc7617_example(void)
{
    check_ok("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin", "open sesame");
    /* The same through the encoder. */
    const char *header = basic_header("Aladdin:open sesame", 19);
    CHECK_STR(header, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
}

static void test_scheme_case_and_whitespace(void)
{
    check_ok("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin", "open sesame");
    check_ok("BASIC QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin", "open sesame");
    check_ok("bAsIc QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin", "open sesame");
    check_ok("Basic    QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin", "open sesame");
    check_ok("  Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin", "open sesame");
    check_ok("\tBasic QWxhZGRpbjpvcGVuIHNlc2FtZQ== \t ", "Aladdin", "open sesame");
    check_ok("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==   ", "Aladdin", "open sesame");
}

static void test_rfc6749_form_decoding(void)
{
    /* my%3Aclient:s%2Bcret */
    check_ok("Basic bXklM0FjbGllbnQ6cyUyQmNyZXQ=", "my:client", "s+cret");
    /* a+b:c+d: a literal '+' is a space */
    check_ok("Basic YStiOmMrZA==", "a b", "c d");
    check_ok("Basic Kzor", " ", " "); /* "+:+" */
    /* The split is at the first raw ':'; later ones belong to the secret. */
    check_ok("Basic aWQ6c2U6Y3JldA==", "id", "se:cret"); /* id:se:cret */
    /* An empty secret decodes (authentication will refuse it). */
    check_ok("Basic Y2xpZW50Og==", "client", ""); /* client: */
    /* UTF-8 passes: caf%C3%A9:x */
    check_ok("Basic Y2FmJUMzJUE5Ong=", "caf\xc3\xa9", "x");
    check_ok(basic_header("s6BhdRkqt3:gX1fBat3bV", 21), "s6BhdRkqt3", "gX1fBat3bV");
}

static void test_other_schemes_declined(void)
{
    check_refused("Bearer x", TK_DECLINED, "authorization scheme is not basic");
    check_refused("Bearer mF_9.B5f-4.1JqM", TK_DECLINED, "authorization scheme is not basic");
    check_refused("Digest username=\"Mufasa\", realm=\"x\"", TK_DECLINED,
                  "authorization scheme is not basic");
    check_refused("Negotiate", TK_DECLINED, "authorization scheme is not basic");
    check_refused("  bearer   x  ", TK_DECLINED, "authorization scheme is not basic");
    check_refused("Bas x", TK_DECLINED, "authorization scheme is not basic");
    check_refused("Basi", TK_DECLINED, "authorization scheme is not basic");
    check_refused("X-Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", TK_DECLINED,
                  "authorization scheme is not basic");
}

static void test_malformed_header(void)
{
    const char *malformed = "malformed authorization header";
    check_refused(NULL, TK_INVALID, malformed);
    check_refused("", TK_INVALID, malformed);
    check_refused("   ", TK_INVALID, malformed);
    check_refused("\t", TK_INVALID, malformed);
    check_refused("@@@ x", TK_INVALID, malformed);
    check_refused(": x", TK_INVALID, malformed);
    check_refused("\"Basic\" QWxhZGRpbjpvcGVuIHNlc2FtZQ==", TK_INVALID, malformed);
    check_refused("Bearer,x", TK_INVALID, malformed);
    check_refused("Bearer=x", TK_INVALID, malformed);
    check_refused("Basic=QWxh", TK_INVALID, malformed);
    check_refused("Basic:QWxh", TK_INVALID, malformed);
    /* A token that starts with Basic is a Basic header missing its space. */
    check_refused("Basicxyz", TK_INVALID, malformed);
    check_refused("BasicQWxhZGRpbjpvcGVuIHNlc2FtZQ==", TK_INVALID, malformed);
    check_refused("basic1 QWxh", TK_INVALID, malformed);
    /* The separator is one or more spaces, not a tab. */
    check_refused("Basic\tQWxhZGRpbjpvcGVuIHNlc2FtZQ==", TK_INVALID, malformed);
    /* Control bytes anywhere, whatever the scheme. */
    check_refused("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n", TK_INVALID, malformed);
    check_refused("Basic QWxh\x01ZGRp", TK_INVALID, malformed);
    check_refused("Bearer x\x7f", TK_INVALID, malformed);
    check_refused("Bearer\x01x", TK_INVALID, malformed);
    check_refused("\x1b[31mBasic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", TK_INVALID, malformed);
}

static void test_missing_credentials(void)
{
    check_refused("Basic", TK_INVALID, "missing basic credentials");
    check_refused("basic", TK_INVALID, "missing basic credentials");
    check_refused("Basic ", TK_INVALID, "missing basic credentials");
    check_refused("Basic    \t ", TK_INVALID, "missing basic credentials");
}

static void test_bad_base64(void)
{
    const char *bad = "basic credentials are not valid base64";
    check_refused("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ", TK_INVALID, bad);    /* no padding */
    check_refused("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=", TK_INVALID, bad);   /* short padding */
    check_refused("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ===", TK_INVALID, bad); /* extra padding */
    check_refused("Basic QWxhZGRpbjpvcGVuIHNlc2FtZR==", TK_INVALID, bad);  /* trailing bits */
    check_refused("Basic QWxhZGRp bjpvcGVuIHNlc2FtZQ==", TK_INVALID, bad); /* inner space */
    check_refused("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ== x", TK_INVALID, bad);
    check_refused("Basic \tQWxhZGRpbjpvcGVuIHNlc2FtZQ==", TK_INVALID, bad);
    check_refused("Basic bXklM0FjbGllbnQ6cyUyQmNyZXQ-", TK_INVALID, bad); /* url alphabet */
    check_refused("Basic !!!!", TK_INVALID, bad);
    check_refused("Basic ====", TK_INVALID, bad);
    check_refused("Basic realm=\"x\"", TK_INVALID, bad);
    check_refused("Basic \xc3\xa9\xc3\xa9", TK_INVALID, bad);
}

static void test_bad_credentials(void)
{
    check_invalid_credentials("Aladdin", 7, "missing colon in basic credentials");
    check_invalid_credentials("", 0, "missing basic credentials");
    check_invalid_credentials("my%3Aclient", 11, "missing colon in basic credentials");
    check_invalid_credentials(":secret", 7, "empty client_id in basic credentials");
    check_invalid_credentials(":", 1, "empty client_id in basic credentials");

    const char *escape = "malformed percent-encoding in basic credentials";
    check_invalid_credentials("my%3Gclient:x", 13, escape);
    check_ok(basic_header("my%3client:x", 12), "my<lient", "x"); /* %3c is a valid escape */
    check_invalid_credentials("id:%zz", 6, escape);
    check_invalid_credentials("id%:x", 5, escape);
    check_invalid_credentials("id:a%", 5, escape);
    check_invalid_credentials("id:%1", 5, escape);
    check_invalid_credentials("id:%00", 6, escape);
    check_invalid_credentials("id%00:x", 7, escape);
}

static void test_control_characters(void)
{
    const char *control = "control character in basic credentials";
    /* Raw in the decoded text. */
    check_invalid_credentials("id\x01:x", 5, control);
    check_invalid_credentials("id:x\x7f", 5, control);
    check_invalid_credentials("id:a\tb", 6, control);
    check_invalid_credentials("id:a\nb", 6, control);
    check_invalid_credentials("id\0x:y", 6, control);
    check_invalid_credentials("id:\0", 4, control);
    /* After percent-decoding. */
    check_invalid_credentials("id:%0A", 6, control);
    check_invalid_credentials("id:%0d%0a", 9, control);
    check_invalid_credentials("id%7F:x", 7, control);
    check_invalid_credentials("id:%01", 6, control);
    check_invalid_credentials("id:%1F", 6, control);
    check_invalid_credentials("%09:x", 5, control);
    /* Just outside the control range passes. */
    check_ok(basic_header("id%20:%7E", 9), "id ", "~");
    check_ok(basic_header("id:\x80\xff", 5), "id", "\x80\xff");
}

static void test_header_length_limit(void)
{
    /* 762 bytes of credentials encode to 1016 base64 characters. */
    char credentials[762];
    memset(credentials, 'c', sizeof(credentials));
    credentials[0] = 'i';
    credentials[1] = 'd';
    credentials[2] = ':';
    char header[BASIC_AUTH_MAX_HEADER + 2];
    memcpy(header, "Basic   ", 8);
    CHECK_INT(base64_encode((const uint8_t *)credentials, sizeof(credentials), header + 8,
                            sizeof(header) - 8),
              1016);
    CHECK_INT(strlen(header), BASIC_AUTH_MAX_HEADER);

    const char *id = NULL;
    const char *secret = NULL;
    const char *error = NULL;
    CHECK_INT(basic_auth_decode(header, &arena, &id, &secret, &error), TK_OK);
    CHECK_STR(id, "id");
    CHECK_INT(strlen(secret), sizeof(credentials) - 3);

    /* One byte more, even harmless whitespace, is too long. */
    strcat(header, " ");
    CHECK_INT(strlen(header), BASIC_AUTH_MAX_HEADER + 1);
    check_refused(header, TK_INVALID, "authorization header too long");

    static char huge[100000];
    memset(huge, 'A', sizeof(huge) - 1);
    memcpy(huge, "Basic ", 6);
    check_refused(huge, TK_INVALID, "authorization header too long");
}

static void test_errors_do_not_echo_input(void)
{
    const char *id = sentinel;
    const char *secret = sentinel;
    const char *error = NULL;
    CHECK_INT(basic_auth_decode(basic_header("TOPSECRET", 9), &arena, &id, &secret, &error),
              TK_INVALID);
    CHECK(error != NULL && strstr(error, "TOPSECRET") == NULL);
    CHECK_INT(basic_auth_decode("Basic VE9QU0VDUkVU", &arena, &id, &secret, &error), TK_INVALID);
    CHECK(error != NULL && strstr(error, "VE9QU0VDUkVU") == NULL);
    CHECK(id == sentinel && secret == sentinel);
}

int main(void)
{
    arena_init(&arena, 4096);
    RUN(test_rfc7617_example);
    RUN(test_scheme_case_and_whitespace);
    RUN(test_rfc6749_form_decoding);
    RUN(test_other_schemes_declined);
    RUN(test_malformed_header);
    RUN(test_missing_credentials);
    RUN(test_bad_base64);
    RUN(test_bad_credentials);
    RUN(test_control_characters);
    RUN(test_header_length_limit);
    RUN(test_errors_do_not_echo_input);
    arena_free(&arena);
    return unit_test_finish();
}
