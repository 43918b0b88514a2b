/*
 * fuzz_admin_token.c - libFuzzer harness for admin_token_check, the
 * Authorization: Bearer check in front of the admin endpoints.
 *
 * The stored token is fixed (FUZZ_TOKEN, which the dictionary and the seed
 * corpus also hold, so the fuzzer reaches the accepting path). Each input
 * is used two ways:
 *  1. as the header value (a NUL-terminated copy, so an embedded NUL ends
 *     it as it would in a request): the result is one of the four values;
 *     MISSING exactly when the value is empty; OK exactly when the value is
 *     "Bearer" in any case, one or more spaces, FUZZ_TOKEN itself, and
 *     nothing but spaces after it, which this file checks on its own; with
 *     no token set the answer is never OK, and the form is judged alike;
 *  2. as the token inside "Bearer " + input + " " (up to the input's first
 *     NUL, where a header would end; spaces around it belong to the frame):
 *     the answer must be what an independent reading of RFC 6750's
 *     b64token says (MALFORMED unless the input is 1..ADMIN_TOKEN_MAX_LEN
 *     characters of that grammar), and OK exactly when it is FUZZ_TOKEN.
 * Buffers are heap blocks of exactly the size needed so that ASan sees any
 * read past them.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tokend/admin_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FUZZ_TOKEN     "fuzz-admin-token_0123456789.ABCDEFGHIJ~+/xyz=="
#define FUZZ_TOKEN_LEN (sizeof(FUZZ_TOKEN) - 1)

static struct admin_token token;
static const struct admin_token unset;

/* The stored form of FUZZ_TOKEN, as struct admin_token documents it. */
static void set_up_token(void)
{
    unsigned int digest_len = 0;
    REQUIRE(EVP_Digest(FUZZ_TOKEN, FUZZ_TOKEN_LEN, token.digest, &digest_len, EVP_sha256(), NULL) ==
            1);
    REQUIRE(digest_len == sizeof(token.digest));
    token.set = true;
}

static bool in_alphabet(unsigned char c)
{
    return c != '\0' &&
           strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/", c) !=
               NULL;
}

/* RFC 6750: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=",
 * here also at most ADMIN_TOKEN_MAX_LEN long. */
static bool is_b64token(const uint8_t *text, size_t len)
{
    size_t i = 0;
    while (i < len && in_alphabet(text[i])) {
        i++;
    }
    if (i == 0) {
        return false;
    }
    while (i < len && text[i] == '=') {
        i++;
    }
    return i == len && len <= ADMIN_TOKEN_MAX_LEN;
}

/* True when `header` is "Bearer" (any case), 1*SP, FUZZ_TOKEN, *SP. */
static bool is_bearer_fuzz_token(const char *header)
{
    static const char scheme[] = "bearer";
    for (size_t i = 0; i < 6; i++) {
        char c = header[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (c != scheme[i]) {
            return false;
        }
    }
    const char *cursor = header + 6;
    if (*cursor != ' ') {
        return false;
    }
    while (*cursor == ' ') {
        cursor++;
    }
    if (strncmp(cursor, FUZZ_TOKEN, FUZZ_TOKEN_LEN) != 0) {
        return false;
    }
    cursor += FUZZ_TOKEN_LEN;
    while (*cursor == ' ') {
        cursor++;
    }
    return *cursor == '\0';
}

static bool is_result(enum admin_auth_result result)
{
    return result == ADMIN_AUTH_OK || result == ADMIN_AUTH_MISSING ||
           result == ADMIN_AUTH_MALFORMED || result == ADMIN_AUTH_WRONG;
}

/* 1: the input as the header value. */
static void fuzz_header(const uint8_t *data, size_t size)
{
    char *header = malloc(size + 1);
    REQUIRE(header != NULL);
    memcpy(header, data, size);
    header[size] = '\0';

    enum admin_auth_result result = admin_token_check(&token, header);
    REQUIRE(is_result(result));
    REQUIRE((result == ADMIN_AUTH_MISSING) == (header[0] == '\0'));
    REQUIRE((result == ADMIN_AUTH_OK) == is_bearer_fuzz_token(header));

    enum admin_auth_result without = admin_token_check(&unset, header);
    REQUIRE(without != ADMIN_AUTH_OK);
    /* The form is judged the same whether or not a token is set. */
    REQUIRE((without == ADMIN_AUTH_WRONG) ==
            (result == ADMIN_AUTH_OK || result == ADMIN_AUTH_WRONG));
    free(header);
}

/* 2: the input as the token in a well-formed frame. */
static void fuzz_token(const uint8_t *data, size_t size)
{
    /* A NUL would end the header there: the token is what comes before. */
    const uint8_t *nul = memchr(data, '\0', size);
    if (nul != NULL) {
        size = (size_t)(nul - data);
    }
    size_t header_size = 7 + size + 2;
    char *header = malloc(header_size);
    REQUIRE(header != NULL);
    memcpy(header, "Bearer ", 7);
    memcpy(header + 7, data, size);
    header[7 + size] = ' ';
    header[7 + size + 1] = '\0';

    enum admin_auth_result result = admin_token_check(&token, header);
    /* Spaces the input starts or ends with belong to the frame's 1*SP and
     * *SP; the token is what lies between them. */
    const uint8_t *text = data;
    size_t len = size;
    while (len > 0 && text[0] == ' ') {
        text++;
        len--;
    }
    while (len > 0 && text[len - 1] == ' ') {
        len--;
    }
    if (!is_b64token(text, len)) {
        REQUIRE(result == ADMIN_AUTH_MALFORMED);
    } else if (len == FUZZ_TOKEN_LEN && memcmp(text, FUZZ_TOKEN, len) == 0) {
        REQUIRE(result == ADMIN_AUTH_OK);
    } else {
        REQUIRE(result == ADMIN_AUTH_WRONG);
    }
    free(header);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!token.set) {
        set_up_token();
    }
    fuzz_header(data, size);
    fuzz_token(data, size);
    return 0;
}
