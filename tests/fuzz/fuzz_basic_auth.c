/*
 * fuzz_basic_auth.c - libFuzzer harness for basic_auth_decode and for the
 * base64 codecs it is built on.
 *
 * Each input is used three ways:
 *  1. as an Authorization header value (NUL-terminated copy): the result is
 *     one of TK_OK / TK_INVALID / TK_DECLINED; on TK_OK both strings are
 *     NUL-terminated, bounded, free of control bytes and the id non-empty;
 *     otherwise the outputs are untouched and the error is a clean static
 *     string;
 *  2. as raw credentials: "Basic " + base64(input) must decode to the text
 *     before and after the first ':' whenever the input holds no byte that
 *     form-decoding or the control check would change or refuse, and must
 *     be refused when the input has no ':';
 *  3. as base64 text and as bytes, for both alphabets: every text a decoder
 *     accepts re-encodes to exactly itself (decoders are canonical), and
 *     decode(encode(bytes)) == bytes, with the lengths the size macros give.
 * Buffers are heap blocks of exactly the size needed so that ASan sees any
 * write past them. Each input gets a fresh arena, freed at the end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokend/arena.h"
#include "tokend/base64.h"
#include "tokend/basic_auth.h"
#include "tokend/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char sentinel[] = "sentinel";

static int is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

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

static void require_clean_credential(const char *text)
{
    size_t len = strnlen(text, BASIC_AUTH_MAX_HEADER);
    REQUIRE(len < BASIC_AUTH_MAX_HEADER); /* NUL-terminated well within bounds */
    for (size_t i = 0; i < len; i++) {
        REQUIRE(!is_control((unsigned char)text[i]));
    }
}

/* 1: the input as a header value. */
static void fuzz_header(const uint8_t *data, size_t size, struct arena *arena)
{
    char *header = malloc(size + 1);
    REQUIRE(header != NULL);
    memcpy(header, data, size);
    header[size] = '\0';

    const char *id = sentinel;
    const char *secret = sentinel;
    const char *error = NULL;
    int rc = basic_auth_decode(header, arena, &id, &secret, &error);
    if (rc == TK_OK) {
        REQUIRE(strlen(header) <= BASIC_AUTH_MAX_HEADER);
        REQUIRE(id != sentinel && secret != sentinel);
        REQUIRE(id[0] != '\0');
        require_clean_credential(id);
        require_clean_credential(secret);
    } else {
        /* libFuzzer aborts on a failed malloc, so TK_ERROR cannot happen. */
        REQUIRE(rc == TK_INVALID || rc == TK_DECLINED);
        REQUIRE(id == sentinel && secret == sentinel);
        require_clean_error(error);
    }
    free(header);
}

/* 2: the input as the credentials inside a well-formed Basic header. */
static void fuzz_credentials(const uint8_t *data, size_t size, struct arena *arena)
{
    if (size > (BASIC_AUTH_MAX_HEADER - 6) / 4 * 3) {
        return;
    }
    char *header = malloc(6 + BASE64_ENCODED_SIZE(size));
    REQUIRE(header != NULL);
    memcpy(header, "Basic ", 6);
    REQUIRE(base64_encode(data, size, header + 6, BASE64_ENCODED_SIZE(size)) >= 0);

    const char *id = sentinel;
    const char *secret = sentinel;
    const char *error = NULL;
    int rc = basic_auth_decode(header, arena, &id, &secret, &error);

    const uint8_t *colon = memchr(data, ':', size);
    int plain = 1; /* nothing that decoding would change or refuse */
    for (size_t i = 0; i < size; i++) {
        plain &= !is_control(data[i]) && data[i] != '%' && data[i] != '+';
    }
    if (colon == NULL || colon == data) {
        REQUIRE(rc == TK_INVALID);
    } else if (plain) {
        REQUIRE(rc == TK_OK);
        size_t id_len = (size_t)(colon - data);
        REQUIRE(strlen(id) == id_len && memcmp(id, data, id_len) == 0);
        REQUIRE(strlen(secret) == size - id_len - 1);
        REQUIRE(memcmp(secret, colon + 1, size - id_len - 1) == 0);
    }
    if (rc != TK_OK) {
        REQUIRE(rc == TK_INVALID);
        REQUIRE(id == sentinel && secret == sentinel);
        require_clean_error(error);
    }
    free(header);
}

typedef int (*decode_fn)(const char *text, size_t len, uint8_t *out, size_t out_size);
typedef int (*encode_fn)(const uint8_t *data, size_t len, char *out, size_t out_size);

/* 3a: any text the decoder accepts is canonical. */
static void round_trip_text(const uint8_t *data, size_t size, decode_fn decode, encode_fn encode)
{
    static const size_t tail_bytes[4] = {0, 0, 1, 2};
    size_t max_decoded = size / 4 * 3 + tail_bytes[size % 4];
    uint8_t *bytes = malloc(max_decoded == 0 ? 1 : max_decoded);
    REQUIRE(bytes != NULL);
    int n = decode((const char *)data, size, bytes, max_decoded);
    if (n >= 0) {
        REQUIRE((size_t)n <= max_decoded);
        /* Exactly the room the canonical re-encoding needs. */
        char *text = malloc(size + 1);
        REQUIRE(text != NULL);
        REQUIRE(encode(bytes, (size_t)n, text, size + 1) == (int)size);
        REQUIRE(memcmp(text, data, size) == 0 && text[size] == '\0');
        free(text);
        /* One byte less room than the output is refused. */
        if (n > 0) {
            REQUIRE(decode((const char *)data, size, bytes, (size_t)n - 1) < 0);
        }
    } else {
        REQUIRE(n == TK_INVALID);
    }
    free(bytes);
}

/* 3b: decode(encode(bytes)) == bytes. */
static void round_trip_bytes(const uint8_t *data, size_t size, decode_fn decode, encode_fn encode,
                             size_t encoded_size)
{
    char *text = malloc(encoded_size);
    REQUIRE(text != NULL);
    if (encoded_size > 1) {
        REQUIRE(encode(data, size, text, encoded_size - 1) == TK_INVALID);
    }
    int n = encode(data, size, text, encoded_size);
    REQUIRE(n >= 0 && (size_t)n == encoded_size - 1 && strlen(text) == (size_t)n);
    uint8_t *bytes = malloc(size == 0 ? 1 : size);
    REQUIRE(bytes != NULL);
    REQUIRE(decode(text, (size_t)n, bytes, size) == (int)size);
    REQUIRE(memcmp(bytes, data, size) == 0);
    free(bytes);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena arena;
    arena_init(&arena, 1024);

    fuzz_header(data, size, &arena);
    fuzz_credentials(data, size, &arena);

    round_trip_text(data, size, base64_decode, base64_encode);
    round_trip_text(data, size, base64url_decode, base64url_encode);
    round_trip_bytes(data, size, base64_decode, base64_encode, BASE64_ENCODED_SIZE(size));
    round_trip_bytes(data, size, base64url_decode, base64url_encode, BASE64URL_ENCODED_SIZE(size));

    arena_free(&arena);
    return 0;
}
