/*
 * test_admin_token.c - the admin bearer token (src/admin_token.c).
 *
 * Loading: a 0600 file loads and keeps exactly SHA-256 of the token (checked
 * against a digest computed outside this code); modes open to group or
 * others are refused with the mode and "chmod 600" in the message; lengths
 * just inside and outside 32..256; characters outside the b64token
 * alphabet and '=' anywhere but the end; one "\n" or "\r\n" stripped and
 * nothing more; missing, directory and oversized files are TK_ERROR; on
 * every failure `out` is zero and the message never quotes the file.
 * Checking: every header form the grammar accepts or refuses, right and
 * wrong tokens of the same and of other lengths, an unset token.
 * Generating: 43 base64url characters, two calls differ, small buffers
 * refused; the file variant makes a 0600 file that loads, and never
 * replaces or follows anything. Files live in a mkdtemp directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokend/admin_token.h"
#include "tokend/status.h"
#include "unit_test.h"

#define ERR_SIZE 512

/* Every b64token character class, with trailing padding: 56 characters. */
static const char token_text[] = "mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==";
/* SHA-256(token_text), computed with Python's hashlib. */
static const unsigned char token_digest[32] =
    "\xde\x1b\x07\x9a\xbc\x04\x0b\x7b\xc5\xd8\x1c\x7f\xe7\x0c\xf3\xc8"
    "\x8c\x4a\xa5\xb9\xfc\xac\xf9\x42\xfc\x87\x2b\x66\xe6\x4e\x36\xb2";

static char temp_dir[128];
static struct admin_token token; /* token_text, loaded by main */

static const char *in_dir(const char *name)
{
    static char slots[4][256];
    static unsigned next;
    char *slot = slots[next++ % 4];
    snprintf(slot, sizeof(slots[0]), "%s/%s", temp_dir, name);
    return slot;
}

/* Writes `len` bytes to `path` with exactly `mode` (umask notwithstanding). */
static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    if (fd < 0) {
        return;
    }
    CHECK_INT(write(fd, data, len), len);
    CHECK_INT(fchmod(fd, mode), 0);
    CHECK_INT(close(fd), 0);
}

static bool is_zeroed(const struct admin_token *t)
{
    static const struct admin_token zero;
    return memcmp(t, &zero, sizeof(zero)) == 0;
}

/* Loads `contents` written with `mode`; expects TK_OK and that the loaded
 * token accepts "Bearer " + `expected_token`. */
static void expect_loads(const char *contents, size_t len, mode_t mode, const char *expected_token)
{
    const char *path = in_dir("good");
    struct admin_token loaded;
    char error[ERR_SIZE] = "untouched";
    char header[ADMIN_TOKEN_MAX_LEN + 16];
    write_file(path, contents, len, mode);
    memset(&loaded, 0xa5, sizeof(loaded));
    CHECK_INT(admin_token_load(path, &loaded, error, sizeof(error)), TK_OK);
    CHECK_STR(error, "untouched");
    CHECK(loaded.set);
    snprintf(header, sizeof(header), "Bearer %s", expected_token);
    CHECK_INT(admin_token_check(&loaded, header), ADMIN_AUTH_OK);
    unlink(path);
}

/* Loads `contents` written with `mode` to in_dir("bad"); expects `rc`,
 * "PATH: " + `reason`, a zeroed token, and no trace of the contents in the
 * message. */
static void expect_refused(const char *contents, size_t len, mode_t mode, int rc,
                           const char *reason)
{
    const char *path = in_dir("bad");
    struct admin_token loaded;
    char error[ERR_SIZE] = "";
    char expected[ERR_SIZE];
    write_file(path, contents, len, mode);
    memset(&loaded, 0xa5, sizeof(loaded));
    CHECK_INT(admin_token_load(path, &loaded, error, sizeof(error)), rc);
    snprintf(expected, sizeof(expected), "%s: %s", path, reason);
    CHECK_STR(error, expected);
    CHECK(is_zeroed(&loaded));
    if (len >= 8) {
        char first[9];
        memcpy(first, contents, 8);
        first[8] = '\0';
        CHECK(strstr(error, first) == NULL);
    }
    unlink(path);
}

static void check_header(const char *header, enum admin_auth_result expected)
{
    enum admin_auth_result got = admin_token_check(&token, header);
    if (got != expected) {
        fprintf(stderr, "header \"%s\" gave %d\n", header != NULL ? header : "(null)", (int)got);
    }
    CHECK_INT(got, expected);
}

/* ---- loading ---- */

static void test_load_keeps_only_the_digest(void)
{
    const char *path = in_dir("token");
    struct admin_token loaded;
    char error[ERR_SIZE] = "untouched";
    write_file(path, token_text, strlen(token_text), 0600);
    CHECK_INT(admin_token_load(path, &loaded, error, sizeof(error)), TK_OK);
    CHECK(loaded.set);
    CHECK(memcmp(loaded.digest, token_digest, sizeof(token_digest)) == 0);
    unlink(path);

    /* Read-only for the owner is fine too. */
    expect_loads(token_text, strlen(token_text), 0400, token_text);
}

static void test_load_refuses_open_modes(void)
{
    const mode_t modes[] = {0640, 0604, 0660, 0606, 0602, 0620, 0610, 0601, 0644, 0777};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        char reason[ERR_SIZE];
        snprintf(reason, sizeof(reason),
                 "admin token file has mode %04o, open to group or others (chmod 600 %s)",
                 (unsigned)modes[i], in_dir("bad"));
        expect_refused(token_text, strlen(token_text), modes[i], TK_INVALID, reason);
    }
}

static void test_load_lengths(void)
{
    char text[ADMIN_TOKEN_MAX_LEN + 2];
    memset(text, 'k', sizeof(text));

    text[ADMIN_TOKEN_MIN_LEN] = '\0';
    expect_loads(text, ADMIN_TOKEN_MIN_LEN, 0600, text);
    text[ADMIN_TOKEN_MIN_LEN] = 'k';
    expect_refused(text, ADMIN_TOKEN_MIN_LEN - 1, 0600, TK_INVALID,
                   "admin token is 31 characters; it needs 32 to 256");

    text[ADMIN_TOKEN_MAX_LEN] = '\0';
    expect_loads(text, ADMIN_TOKEN_MAX_LEN, 0600, text);
    text[ADMIN_TOKEN_MAX_LEN] = 'k';
    expect_refused(text, ADMIN_TOKEN_MAX_LEN + 1, 0600, TK_INVALID,
                   "admin token is 257 characters; it needs 32 to 256");

    expect_refused("", 0, 0600, TK_INVALID, "admin token is 0 characters; it needs 32 to 256");
    expect_refused("\n", 1, 0600, TK_INVALID, "admin token is 0 characters; it needs 32 to 256");
    expect_refused("\r\n", 2, 0600, TK_INVALID, "admin token is 0 characters; it needs 32 to 256");
}

static void test_load_bad_characters(void)
{
    const char *outside = "admin token has a character outside A-Z a-z 0-9 - . _ ~ + / = at "
                          "position ";
    const char *padding = "admin token has '=' at position ";
    struct {
        const char *text;
        size_t len;
        const char *reason;
        const char *position;
    } cases[] = {
        {"SECRETSECRETSECRETSECRET with space", 35, outside, "25"},
        {" SECRETSECRETSECRETSECRETSECRETSECRET", 37, outside, "1"},
        {"SECRETSECRETSECRETSECRETSECRETSECRET ", 37, outside, "37"},
        {"SECRETSECRETSECRETSECRET\tSECRETSECRET", 37, outside, "25"},
        {"SECRETSECRETSECRETSECRETSECRET!!", 32, outside, "31"},
        {"SECRETSECRETSECRETSECRETSECRET%3D", 33, outside, "31"},
        {"SECRETSECRETSECRETSECRETSECRET\"x\"", 33, outside, "31"},
        {"SECRETSECRETSECRETSECRET,SECRETSECRET", 37, outside, "25"},
        {"SECRETSECRETSECRETSECRET\xc3\xa9SECRET", 32, outside, "25"},   /* non-ASCII */
        {"SECRETSECRETSECRETSECRET\0SECRETSECRET", 37, outside, "25"},   /* NUL byte */
        {"SECRETSECRETSECRETSECRETSECRETSECRET\r", 37, outside, "37"},   /* lone CR stays */
        {"SECRETSECRETSECRETSECRETSECRETSECRET\n\n", 38, outside, "37"}, /* one \n stripped */
        {"SECRETSECRETSECRETSECRETSECRETSECRET\r\n\r\n", 40, outside, "37"},
        {"SECRETSECRETSECRETSECRETSECRETSECRET\nsecond line", 48, outside, "37"},
        {"SECRETSECRETSECRETSECRETSECRETSECRET==\n=", 40, outside, "39"},
        /* '=' anywhere but at the end: the first '=' of the run is named. */
        {"SECRETSECRETSECRETSECRET=SECRETSECRET", 37, padding, "25"},
        {"SECRETSECRETSECRETSECRET===SECRETSECRET", 39, padding, "25"},
        {"=SECRETSECRETSECRETSECRETSECRETSECRET", 37, padding, "1"},
        {"================================", 32, padding, "1"},
        {"SECRETSECRETSECRETSECRETSECRETSECRET=A=", 39, padding, "37"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char reason[ERR_SIZE];
        snprintf(reason, sizeof(reason), "%s%s%s", cases[i].reason, cases[i].position,
                 cases[i].reason == padding ? "; '=' may only end it" : "");
        expect_refused(cases[i].text, cases[i].len, 0600, TK_INVALID, reason);
    }
}

static void test_load_strips_one_line_ending(void)
{
    char text[128];
    snprintf(text, sizeof(text), "%s\n", token_text);
    expect_loads(text, strlen(text), 0600, token_text);
    snprintf(text, sizeof(text), "%s\r\n", token_text);
    expect_loads(text, strlen(text), 0600, token_text);

    /* What is stripped is not part of the token. */
    struct admin_token loaded;
    char error[ERR_SIZE];
    snprintf(text, sizeof(text), "%s\r\n", token_text);
    write_file(in_dir("crlf"), text, strlen(text), 0600);
    CHECK_INT(admin_token_load(in_dir("crlf"), &loaded, error, sizeof(error)), TK_OK);
    CHECK(memcmp(loaded.digest, token_digest, sizeof(token_digest)) == 0);
    unlink(in_dir("crlf"));
}

static void test_load_io_errors(void)
{
    struct admin_token loaded;
    char error[ERR_SIZE] = "";
    char expected[ERR_SIZE];
    const char *missing = in_dir("missing");

    memset(&loaded, 0xa5, sizeof(loaded));
    CHECK_INT(admin_token_load(missing, &loaded, error, sizeof(error)), TK_ERROR);
    snprintf(expected, sizeof(expected), "%s: cannot read: %s", missing, strerror(ENOENT));
    CHECK_STR(error, expected);
    CHECK(is_zeroed(&loaded));

    memset(&loaded, 0xa5, sizeof(loaded));
    CHECK_INT(admin_token_load(temp_dir, &loaded, error, sizeof(error)), TK_ERROR);
    snprintf(expected, sizeof(expected), "%s: not a regular file", temp_dir);
    CHECK_STR(error, expected);
    CHECK(is_zeroed(&loaded));

    static char huge[4097];
    memset(huge, 'h', sizeof(huge));
    const char *path = in_dir("huge");
    write_file(path, huge, sizeof(huge), 0600);
    memset(&loaded, 0xa5, sizeof(loaded));
    CHECK_INT(admin_token_load(path, &loaded, error, sizeof(error)), TK_ERROR);
    snprintf(expected, sizeof(expected), "%s: larger than 4096 bytes", path);
    CHECK_STR(error, expected);
    CHECK(is_zeroed(&loaded));
    unlink(path);
}

/* ---- checking ---- */

static void test_check_accepts_the_token(void)
{
    check_header("Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==", ADMIN_AUTH_OK);
    check_header("bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==", ADMIN_AUTH_OK);
    check_header("BEARER mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==", ADMIN_AUTH_OK);
    check_header("bEaReR mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==", ADMIN_AUTH_OK);
    check_header("Bearer    mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==",
                 ADMIN_AUTH_OK);
    check_header("Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==   ",
                 ADMIN_AUTH_OK);
}

static void test_check_missing(void)
{
    check_header(NULL, ADMIN_AUTH_MISSING);
    check_header("", ADMIN_AUTH_MISSING);
}

static void test_check_malformed(void)
{
    static const char *const headers[] = {
        " ",
        "Bearer",
        "bearer",
        "Bearer ",
        "Bearer     ",
        "Beare mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==",
        "BearermF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==",
        "Bearer: mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==",
        "Bearerx mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==",
        " Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==",
        "Bearer\tmF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==",
        "Bearer \tmF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==",
        "Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==\t",
        "Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==\r\n",
        "Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789== x",
        "Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==,",
        "Bearer mF_9.B5f-4.1JqM+/~ abcdefghijklmnopqrstuvwxyz0123456789==",
        "Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==x",
        "Bearer mF_9.B5f-4.1JqM+/~abcdefghijklm=nopqrstuvwxyz0123456789==",
        "Bearer =mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==",
        "Bearer ==",
        "Bearer \"mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==\"",
        "Bearer mF_9!B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==",
        "Bearer mF_9%2EB5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==",
        "Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==\x01",
        "Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==\x7f",
        "Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz\xc3\xa9",
        "Bearer realm=\"admin\"",
        "Basic bWY6eA==",
        "Token mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        check_header(headers[i], ADMIN_AUTH_MALFORMED);
    }
}

static void test_check_length_limit(void)
{
    char header[7 + ADMIN_TOKEN_MAX_LEN + 2];
    memcpy(header, "Bearer ", 7);
    memset(header + 7, 'q', ADMIN_TOKEN_MAX_LEN + 1);

    /* ADMIN_TOKEN_MAX_LEN characters are well-formed (and wrong here)... */
    header[7 + ADMIN_TOKEN_MAX_LEN] = '\0';
    check_header(header, ADMIN_AUTH_WRONG);
    /* ...one more, even a padding '=', is malformed. */
    header[7 + ADMIN_TOKEN_MAX_LEN] = 'q';
    header[7 + ADMIN_TOKEN_MAX_LEN + 1] = '\0';
    check_header(header, ADMIN_AUTH_MALFORMED);
    header[7 + ADMIN_TOKEN_MAX_LEN] = '=';
    check_header(header, ADMIN_AUTH_MALFORMED);

    /* A 1-character token is well-formed (and wrong). */
    check_header("Bearer x", ADMIN_AUTH_WRONG);
    check_header("Bearer x=", ADMIN_AUTH_WRONG);

    /* And a stored token of the maximum length is accepted. */
    char text[ADMIN_TOKEN_MAX_LEN + 1];
    memset(text, '~', ADMIN_TOKEN_MAX_LEN);
    text[ADMIN_TOKEN_MAX_LEN] = '\0';
    expect_loads(text, ADMIN_TOKEN_MAX_LEN, 0600, text);
}

static void test_check_wrong_token(void)
{
    /* Same length, differing at the start, in the middle, at the end. */
    check_header("Bearer nF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==",
                 ADMIN_AUTH_WRONG);
    check_header("Bearer mF_9.B5f-4.1JqM+/~abcdefghijklMnopqrstuvwxyz0123456789==",
                 ADMIN_AUTH_WRONG);
    check_header("Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz012345678A==",
                 ADMIN_AUTH_WRONG);
    /* The token is case-sensitive, unlike the scheme. */
    check_header("Bearer MF_9.B5F-4.1JQM+/~ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789==",
                 ADMIN_AUTH_WRONG);
    /* Other lengths: a prefix, one padding more or less, an extension. */
    check_header("Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789", ADMIN_AUTH_WRONG);
    check_header("Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789=",
                 ADMIN_AUTH_WRONG);
    check_header("Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789===",
                 ADMIN_AUTH_WRONG);
    check_header("Bearer mF_9", ADMIN_AUTH_WRONG);
    check_header("Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789AA==",
                 ADMIN_AUTH_WRONG);
}

/* Every byte value inside a token: accepted exactly when RFC 6750 lists
 * it, in the header and in the file alike. */
static void test_alphabet_byte_by_byte(void)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789-._~+/";
    char text[ADMIN_TOKEN_MIN_LEN + 1];
    char header[64];
    for (int c = 1; c < 256; c++) {
        bool listed = strchr(alphabet, c) != NULL;
        memset(text, 'a', ADMIN_TOKEN_MIN_LEN);
        text[ADMIN_TOKEN_MIN_LEN] = '\0';
        text[10] = (char)c;
        snprintf(header, sizeof(header), "Bearer %s", text);
        enum admin_auth_result got = admin_token_check(&token, header);
        if (got != (listed ? ADMIN_AUTH_WRONG : ADMIN_AUTH_MALFORMED)) {
            fprintf(stderr, "byte 0x%02x in a header gave %d\n", (unsigned)c, (int)got);
            CHECK(false);
        }
        if (listed) {
            expect_loads(text, ADMIN_TOKEN_MIN_LEN, 0600, text);
        } else {
            expect_refused(text, ADMIN_TOKEN_MIN_LEN, 0600, TK_INVALID,
                           c == '=' ? "admin token has '=' at position 11; '=' may only end it"
                                    : "admin token has a character outside A-Z a-z 0-9 - . _ ~ "
                                      "+ / = at position 11");
        }
    }
}

/* All 32 bytes of the digest count. */
static void test_check_compares_the_whole_digest(void)
{
    const char *right = "Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==";
    for (size_t i = 0; i < sizeof(token.digest); i++) {
        struct admin_token altered = token;
        altered.digest[i] ^= 0x01;
        CHECK_INT(admin_token_check(&altered, right), ADMIN_AUTH_WRONG);
    }
    CHECK_INT(admin_token_check(&token, right), ADMIN_AUTH_OK);
}

static void test_check_without_token(void)
{
    static const struct admin_token unset;
    const char *right = "Bearer mF_9.B5f-4.1JqM+/~abcdefghijklmnopqrstuvwxyz0123456789==";
    CHECK_INT(admin_token_check(&unset, right), ADMIN_AUTH_WRONG);
    CHECK_INT(admin_token_check(&unset, "Bearer x"), ADMIN_AUTH_WRONG);
    CHECK_INT(admin_token_check(&unset, "Bearer"), ADMIN_AUTH_MALFORMED);
    CHECK_INT(admin_token_check(&unset, NULL), ADMIN_AUTH_MISSING);

    /* Without `set`, even the right digest opens nothing. */
    struct admin_token digest_not_set = {.set = false};
    memcpy(digest_not_set.digest, token_digest, sizeof(token_digest));
    CHECK_INT(admin_token_check(&digest_not_set, right), ADMIN_AUTH_WRONG);
}

/* ---- generating ---- */

static bool all_base64url(const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        char c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_')) {
            return false;
        }
    }
    return true;
}

static void test_generate(void)
{
    char first[ADMIN_TOKEN_GENERATED_SIZE];
    char second[ADMIN_TOKEN_GENERATED_SIZE + 8];
    CHECK_INT(admin_token_generate(first, sizeof(first)), TK_OK);
    CHECK_INT(admin_token_generate(second, sizeof(second)), TK_OK);
    CHECK_INT(strlen(first), 43);
    CHECK_INT(strlen(second), 43);
    CHECK(all_base64url(first));
    CHECK(all_base64url(second));
    CHECK(strcmp(first, second) != 0);

    /* A generated token loads and opens. */
    char line[ADMIN_TOKEN_GENERATED_SIZE + 1];
    snprintf(line, sizeof(line), "%s\n", first);
    expect_loads(line, strlen(line), 0600, first);

    /* Too small a buffer: refused, left "" (or untouched when size 0). */
    char small[ADMIN_TOKEN_GENERATED_SIZE - 1];
    memset(small, 'x', sizeof(small));
    CHECK_INT(admin_token_generate(small, sizeof(small)), TK_ERROR);
    CHECK_INT(small[0], '\0');
    small[0] = 'x';
    CHECK_INT(admin_token_generate(small, 0), TK_ERROR);
    CHECK_INT(small[0], 'x');
}

static void test_generate_file(void)
{
    const char *path = in_dir("generated");
    char error[ERR_SIZE] = "untouched";
    char expected[ERR_SIZE];
    struct stat st;

    /* 0600 even when the umask would allow more. */
    mode_t old_umask = umask(0);
    CHECK_INT(admin_token_generate_file(path, error, sizeof(error)), TK_OK);
    umask(old_umask);
    CHECK_STR(error, "untouched");
    CHECK_INT(stat(path, &st), 0);
    CHECK_INT(st.st_mode & 07777, 0600);
    CHECK_INT(st.st_size, 44);

    char content[64] = "";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_INT(read(fd, content, sizeof(content) - 1), 44);
    close(fd);
    CHECK_INT(content[43], '\n');
    content[43] = '\0';
    CHECK(all_base64url(content));

    struct admin_token loaded;
    char header[7 + sizeof(content)];
    CHECK_INT(admin_token_load(path, &loaded, error, sizeof(error)), TK_OK);
    snprintf(header, sizeof(header), "Bearer %s", content);
    CHECK_INT(admin_token_check(&loaded, header), ADMIN_AUTH_OK);

    /* Never replaces a file. */
    CHECK_INT(admin_token_generate_file(path, error, sizeof(error)), TK_ERROR);
    snprintf(expected, sizeof(expected), "%s: cannot create: %s", path, strerror(EEXIST));
    CHECK_STR(error, expected);
    char again[64] = "";
    fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_INT(read(fd, again, sizeof(again) - 1), 44);
    close(fd);
    again[43] = '\0';
    CHECK_STR(again, content);
    unlink(path);

    /* Never follows a symlink, even a dangling one. */
    const char *link = in_dir("dangling");
    const char *target = in_dir("target");
    CHECK_INT(symlink(target, link), 0);
    CHECK_INT(admin_token_generate_file(link, error, sizeof(error)), TK_ERROR);
    CHECK(access(target, F_OK) != 0);
    unlink(link);

    /* A missing directory: an error, nothing created. */
    const char *nowhere = in_dir("no/such/dir");
    CHECK_INT(admin_token_generate_file(nowhere, error, sizeof(error)), TK_ERROR);
    snprintf(expected, sizeof(expected), "%s: cannot create: %s", nowhere, strerror(ENOENT));
    CHECK_STR(error, expected);
}

int main(void)
{
    snprintf(temp_dir, sizeof(temp_dir), "%s/test_admin_token.XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(temp_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char error[ERR_SIZE] = "";
    write_file(in_dir("main-token"), token_text, strlen(token_text), 0600);
    if (admin_token_load(in_dir("main-token"), &token, error, sizeof(error)) != TK_OK) {
        fprintf(stderr, "cannot load the test token: %s\n", error);
        return 1;
    }
    unlink(in_dir("main-token"));

    RUN(test_load_keeps_only_the_digest);
    RUN(test_load_refuses_open_modes);
    RUN(test_load_lengths);
    RUN(test_load_bad_characters);
    RUN(test_load_strips_one_line_ending);
    RUN(test_load_io_errors);
    RUN(test_check_accepts_the_token);
    RUN(test_check_missing);
    RUN(test_check_malformed);
    RUN(test_check_length_limit);
    RUN(test_check_wrong_token);
    RUN(test_alphabet_byte_by_byte);
    RUN(test_check_compares_the_whole_digest);
    RUN(test_check_without_token);
    RUN(test_generate);
    RUN(test_generate_file);

    if (rmdir(temp_dir) != 0) {
        fprintf(stderr, "cannot remove %s: %s\n", temp_dir, strerror(errno));
        unit_checks_failed++;
    }
    return unit_test_finish();
}
