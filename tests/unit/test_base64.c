/*
 * test_base64.c - known answers (RFC 4648 §10, RFC 7617) and every way a
 * strict decoder must refuse its input, for both alphabets.
 */
#include <stdint.h>
#include <string.h>

#include "tokend/base64.h"
#include "tokend/status.h"
#include "unit_test.h"

#define STD_ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
#define URL_ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

struct vector {
    const char *plain;
    const char *standard;
    const char *url;
};

/* RFC 4648 §10; base64url is the same text without the padding. */
static const struct vector rfc4648_vectors[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

/* Decodes with the given decoder into a generous buffer. */
static int decode_std(const char *text, uint8_t *out)
{
    return base64_decode(text, strlen(text), out, 256);
}

static int decode_url(const char *text, uint8_t *out)
{
    return base64url_decode(text, strlen(text), out, 256);
}

static void test_rfc4648_vectors(void)
{
    for (size_t i = 0; i < sizeof(rfc4648_vectors) / sizeof(rfc4648_vectors[0]); i++) {
        const struct vector *v = &rfc4648_vectors[i];
        size_t len = strlen(v->plain);
        char text[32];
        uint8_t bytes[32];

        CHECK_INT(base64_encode((const uint8_t *)v->plain, len, text, sizeof(text)),
                  strlen(v->standard));
        CHECK_STR(text, v->standard);
        CHECK_INT(base64url_encode((const uint8_t *)v->plain, len, text, sizeof(text)),
                  strlen(v->url));
        CHECK_STR(text, v->url);

        memset(bytes, 0xAA, sizeof(bytes));
        CHECK_INT(base64_decode(v->standard, strlen(v->standard), bytes, sizeof(bytes)), len);
        CHECK(memcmp(bytes, v->plain, len) == 0);
        memset(bytes, 0xAA, sizeof(bytes));
        CHECK_INT(base64url_decode(v->url, strlen(v->url), bytes, sizeof(bytes)), len);
        CHECK(memcmp(bytes, v->plain, len) == 0);
    }
}

static void test_rfc7617_example(void)
{
    const char *plain = "Aladdin:open sesame";
    char text[64];
    uint8_t bytes[64];
    CHECK_INT(base64_encode((const uint8_t *)plain, strlen(plain), text, sizeof(text)), 28);
    CHECK_STR(text, "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    CHECK_INT(decode_std("QWxhZGRpbjpvcGVuIHNlc2FtZQ==", bytes), 19);
    CHECK(memcmp(bytes, plain, 19) == 0);
}

/* The 48 bytes whose encoding is the whole alphabet, in order. */
static const uint8_t alphabet_bytes[48] = {
    0x00, 0x10, 0x83, 0x10, 0x51, 0x87, 0x20, 0x92, 0x8b, 0x30, 0xd3, 0x8f, 0x41, 0x14, 0x93, 0x51,
    0x55, 0x97, 0x61, 0x96, 0x9b, 0x71, 0xd7, 0x9f, 0x82, 0x18, 0xa3, 0x92, 0x59, 0xa7, 0xa2, 0x9a,
    0xab, 0xb2, 0xdb, 0xaf, 0xc3, 0x1c, 0xb3, 0xd3, 0x5d, 0xb7, 0xe3, 0x9e, 0xbb, 0xf3, 0xdf, 0xbf,
};

static void test_whole_alphabet(void)
{
    char text[80];
    uint8_t bytes[64];
    CHECK_INT(base64_encode(alphabet_bytes, sizeof(alphabet_bytes), text, sizeof(text)), 64);
    CHECK_STR(text, STD_ALPHABET);
    CHECK_INT(base64url_encode(alphabet_bytes, sizeof(alphabet_bytes), text, sizeof(text)), 64);
    CHECK_STR(text, URL_ALPHABET);
    CHECK_INT(decode_std(STD_ALPHABET, bytes), 48);
    CHECK(memcmp(bytes, alphabet_bytes, 48) == 0);
    CHECK_INT(decode_url(URL_ALPHABET, bytes), 48);
    CHECK(memcmp(bytes, alphabet_bytes, 48) == 0);

    /* The alphabets differ exactly in 62 and 63. */
    static const uint8_t high_bits[3] = {0xfb, 0xef, 0xff};
    CHECK_INT(base64_encode(high_bits, 3, text, sizeof(text)), 4);
    CHECK_STR(text, "++//");
    CHECK_INT(base64url_encode(high_bits, 3, text, sizeof(text)), 4);
    CHECK_STR(text, "--__");
    CHECK_INT(decode_std("--__", bytes), TK_INVALID);
    CHECK_INT(decode_url("++//", bytes), TK_INVALID);
    CHECK_INT(decode_std("+/8=", bytes), 2);
    CHECK_INT(bytes[0], 0xfb);
    CHECK_INT(bytes[1], 0xff);
    CHECK_INT(decode_url("-_8", bytes), 2);
    CHECK_INT(bytes[0], 0xfb);
    CHECK_INT(bytes[1], 0xff);
}

static void test_round_trip_all_lengths(void)
{
    uint8_t data[256];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(255 - i);
    }
    for (size_t len = 0; len <= sizeof(data); len++) {
        char text[BASE64_ENCODED_SIZE(256)];
        uint8_t back[256];
        int n = base64_encode(data, len, text, sizeof(text));
        CHECK_INT(n, BASE64_ENCODED_SIZE(len) - 1);
        CHECK_INT(strlen(text), n);
        CHECK_INT(base64_decode(text, (size_t)n, back, sizeof(back)), len);
        CHECK(memcmp(back, data, len) == 0);

        n = base64url_encode(data, len, text, sizeof(text));
        CHECK_INT(n, BASE64URL_ENCODED_SIZE(len) - 1);
        CHECK_INT(strlen(text), n);
        CHECK_INT(base64url_decode(text, (size_t)n, back, sizeof(back)), len);
        CHECK(memcmp(back, data, len) == 0);
    }
}

static void test_size_macros(void)
{
    CHECK_INT(BASE64_ENCODED_SIZE(0), 1);
    CHECK_INT(BASE64_ENCODED_SIZE(1), 5);
    CHECK_INT(BASE64_ENCODED_SIZE(3), 5);
    CHECK_INT(BASE64_ENCODED_SIZE(4), 9);
    CHECK_INT(BASE64URL_ENCODED_SIZE(0), 1);
    CHECK_INT(BASE64URL_ENCODED_SIZE(1), 3);
    CHECK_INT(BASE64URL_ENCODED_SIZE(2), 4);
    CHECK_INT(BASE64URL_ENCODED_SIZE(3), 5);
    CHECK_INT(BASE64URL_ENCODED_SIZE(32), 44); /* a 32-byte secret: 43 chars + NUL */
}

static void test_encode_buffer_too_small(void)
{
    char text[8];
    memset(text, '#', sizeof(text));
    /* "foo" needs 4 chars + NUL. */
    CHECK_INT(base64_encode((const uint8_t *)"foo", 3, text, 4), TK_INVALID);
    CHECK(memcmp(text, "########", 8) == 0);
    CHECK_INT(base64_encode((const uint8_t *)"foo", 3, text, 5), 4);
    CHECK_STR(text, "Zm9v");

    memset(text, '#', sizeof(text));
    /* "f" needs 2 chars + NUL unpadded, 4 + NUL padded. */
    CHECK_INT(base64url_encode((const uint8_t *)"f", 1, text, 2), TK_INVALID);
    CHECK(memcmp(text, "########", 8) == 0);
    CHECK_INT(base64_encode((const uint8_t *)"f", 1, text, 4), TK_INVALID);
    CHECK(memcmp(text, "########", 8) == 0);
    CHECK_INT(base64url_encode((const uint8_t *)"f", 1, text, 3), 2);
    CHECK_STR(text, "Zg");

    /* Even the empty string needs room for its NUL. */
    CHECK_INT(base64_encode((const uint8_t *)"", 0, text, 0), TK_INVALID);
    CHECK_INT(base64url_encode((const uint8_t *)"", 0, NULL, 0), TK_INVALID);
    CHECK_INT(base64_encode((const uint8_t *)"", 0, text, 1), 0);
    CHECK_STR(text, "");
}

static void test_decode_buffer_too_small(void)
{
    uint8_t bytes[8];
    CHECK_INT(base64_decode("Zm9vYmFy", 8, bytes, 5), TK_INVALID);
    CHECK_INT(base64_decode("Zm9vYmFy", 8, bytes, 6), 6);
    CHECK_INT(base64_decode("Zm9vYmE=", 8, bytes, 4), TK_INVALID);
    CHECK_INT(base64_decode("Zm9vYmE=", 8, bytes, 5), 5);
    CHECK_INT(base64url_decode("Zm9vYmE", 7, bytes, 4), TK_INVALID);
    CHECK_INT(base64url_decode("Zm9vYmE", 7, bytes, 5), 5);
    CHECK_INT(base64_decode("", 0, NULL, 0), 0);
    CHECK_INT(base64url_decode("", 0, NULL, 0), 0);
}

static void test_decode_standard_malformed(void)
{
    uint8_t bytes[256];
    static const char *const bad[] = {
        "Z",              /* length not a multiple of 4 */
        "Zg",             /* unpadded */
        "Zg=",            /* short padding */
        "Zm9vYg=",        /* short padding */
        "Zm9vYg===",      /* too long */
        "Z===",           /* three pad characters */
        "====",           /* padding only */
        "==",             /* padding only, short */
        "=Zg=",           /* '=' at the start */
        "Z=g=",           /* '=' in the middle */
        "Zg=a",           /* '=' not trailing */
        "Zg==Zm9v",       /* padding before more data */
        "Zg==Zg==",       /* two padded groups */
        "Zh==",           /* non-zero trailing bits (one byte) */
        "Zm9=",           /* non-zero trailing bits (two bytes) */
        "Zm/=",           /* non-zero trailing bits, 63 */
        "Zm 9",           /* space */
        " Zm9",           /* leading space */
        "Zm9v\n",         /* newline */
        "Zm9vYg==\n",     /* trailing newline */
        "Zm\tv",          /* tab */
        "Zm9-",           /* url alphabet */
        "Zm9_",           /* url alphabet */
        "Zm9v\x80\x80==", /* high bytes */
        "Zm9.",           /* punctuation */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = decode_std(bad[i], bytes);
        if (rc != TK_INVALID) {
            fprintf(stderr, "accepted \"%s\"\n", bad[i]);
        }
        CHECK_INT(rc, TK_INVALID);
    }
    /* NUL inside the given length. */
    CHECK_INT(base64_decode("Zm9v\0Zg=", 8, bytes, sizeof(bytes)), TK_INVALID);
    CHECK_INT(base64_decode("Zm\0v", 4, bytes, sizeof(bytes)), TK_INVALID);
    /* The length is honoured: a valid prefix of a longer string. */
    CHECK_INT(base64_decode("Zm9vXXX", 4, bytes, sizeof(bytes)), 3);

    /* Every byte outside the alphabet, in every position of a group. */
    for (int c = 0; c < 256; c++) {
        if (c != 0 && strchr(STD_ALPHABET "=", c) != NULL) {
            continue;
        }
        for (int pos = 0; pos < 4; pos++) {
            char text[5] = "AAAA";
            text[pos] = (char)c;
            CHECK_INT(base64_decode(text, 4, bytes, sizeof(bytes)), TK_INVALID);
        }
    }
    /* Every alphabet character is accepted in every position. */
    for (const char *p = STD_ALPHABET; *p != '\0'; p++) {
        char text[9] = "AAAAAAAA";
        text[1] = *p;
        text[6] = *p;
        CHECK_INT(base64_decode(text, 8, bytes, sizeof(bytes)), 6);
    }
}

static void test_decode_url_malformed(void)
{
    uint8_t bytes[256];
    static const char *const bad[] = {
        "Z",                         /* 4n+1 */
        "Zm9vY",                     /* 4n+1 */
        "Zm9vYmFyZ", "Zg==",         /* padding */
        "Zg=",                       /* padding */
        "Zm8=",                      /* padding */
        "Zm9v====",  "=",    "Zh",   /* non-zero trailing bits (one byte) */
        "Zm9",                       /* non-zero trailing bits (two bytes) */
        "Zm_",                       /* non-zero trailing bits, 63 */
        "Zm9vYh",                    /* non-zero trailing bits after a full group */
        "++//",                      /* standard alphabet */
        "Zm9/",      "Zm9+", "Zm 9", /* space */
        "Zm9v\n",                    /* newline */
        "Zm9\x80",                   /* high byte */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = decode_url(bad[i], bytes);
        if (rc != TK_INVALID) {
            fprintf(stderr, "accepted \"%s\"\n", bad[i]);
        }
        CHECK_INT(rc, TK_INVALID);
    }
    CHECK_INT(base64url_decode("Zm\0v", 4, bytes, sizeof(bytes)), TK_INVALID);
    CHECK_INT(decode_url("Zm8", bytes), 2);
    CHECK_INT(decode_url("Zg", bytes), 1);

    for (int c = 0; c < 256; c++) {
        if (c != 0 && strchr(URL_ALPHABET, c) != NULL) {
            continue;
        }
        for (int pos = 0; pos < 4; pos++) {
            char text[5] = "AAAA";
            text[pos] = (char)c;
            CHECK_INT(base64url_decode(text, 4, bytes, sizeof(bytes)), TK_INVALID);
        }
    }
    for (const char *p = URL_ALPHABET; *p != '\0'; p++) {
        char text[9] = "AAAAAAAA";
        text[1] = *p;
        text[6] = *p;
        CHECK_INT(base64url_decode(text, 8, bytes, sizeof(bytes)), 6);
    }
}

/* Only the canonical text decodes: for one and two trailing bytes, exactly
 * one of the 16 (resp. 4) final characters sharing the meaningful bits is
 * accepted. */
static void test_trailing_bits_exhaustive(void)
{
    uint8_t bytes[4];
    int accepted_std = 0;
    int accepted_url = 0;
    for (const char *p = STD_ALPHABET; *p != '\0'; p++) {
        char padded[5] = {'Q', *p, '=', '=', '\0'};
        char unpadded[3] = {'Q', *p, '\0'};
        if (base64_decode(padded, 4, bytes, sizeof(bytes)) == 1) {
            accepted_std++;
        }
        if (*p != '+' && *p != '/' && base64url_decode(unpadded, 2, bytes, sizeof(bytes)) == 1) {
            accepted_url++;
        }
    }
    CHECK_INT(accepted_std, 4); /* A, Q, g, w */
    CHECK_INT(accepted_url, 4);

    accepted_std = 0;
    for (const char *p = STD_ALPHABET; *p != '\0'; p++) {
        char padded[5] = {'Q', 'Q', *p, '=', '\0'};
        if (base64_decode(padded, 4, bytes, sizeof(bytes)) == 2) {
            accepted_std++;
        }
    }
    CHECK_INT(accepted_std, 16);
}

int main(void)
{
    RUN(test_rfc4648_vectors);
    RUN(test_rfc7617_example);
    RUN(test_whole_alphabet);
    RUN(test_round_trip_all_lengths);
    RUN(test_size_macros);
    RUN(test_encode_buffer_too_small);
    RUN(test_decode_buffer_too_small);
    RUN(test_decode_standard_malformed);
    RUN(test_decode_url_malformed);
    RUN(test_trailing_bits_exhaustive);
    return unit_test_finish();
}
