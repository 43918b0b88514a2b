/*
 * test_scope.c - scope list syntax (RFC 6749 §3.3) and scope settlement:
 * subset checks, order, deduplication, defaults, and exactly what an error
 * message may echo back.
 */
#include <stdbool.h>
#include <string.h>

#include "tokend/arena.h"
#include "tokend/scope.h"
#include "tokend/status.h"
#include "unit_test.h"

static struct arena test_arena;

/* Runs scope_settle and checks its code, granted string and error text
 * exactly (NULL where the contract says nothing is set). */
static void check_settle(int line, const char *requested, const char *allowed, const char *defaults,
                         int expected_rc, const char *expected_granted, const char *expected_error)
{
    const char *granted = "untouched";
    const char *error = "untouched";
    int rc = scope_settle(requested, allowed, defaults, &test_arena, &granted, &error);
    if (rc != expected_rc) {
        fprintf(stderr, "  (check_settle called from line %d)\n", line);
    }
    CHECK_INT(rc, expected_rc);
    CHECK_STR(granted, expected_granted);
    CHECK_STR(error, expected_error);
}

#define SETTLE_OK(requested, allowed, defaults, expected)                                          \
    check_settle(__LINE__, requested, allowed, defaults, TK_OK, expected, NULL)
#define SETTLE_FAIL(requested, allowed, defaults, rc, expected_error)                              \
    check_settle(__LINE__, requested, allowed, defaults, rc, NULL, expected_error)

static void test_list_valid(void)
{
    CHECK(scope_list_valid("read"));
    CHECK(scope_list_valid("read write"));
    CHECK(scope_list_valid("read   write"));
    CHECK(scope_list_valid("  read write  "));
    CHECK(scope_list_valid("!"));
    CHECK(scope_list_valid("#$%&'()*+,-./0123456789:;<=>?@[]^_`{|}~"));
    CHECK(scope_list_valid("urn:example:read https://api.example.com/x.y"));

    CHECK(!scope_list_valid(NULL));
    CHECK(!scope_list_valid(""));
    CHECK(!scope_list_valid(" "));
    CHECK(!scope_list_valid("    "));
    CHECK(!scope_list_valid("a\"b"));
    CHECK(!scope_list_valid("a\\b"));
    CHECK(!scope_list_valid("read\twrite"));
    CHECK(!scope_list_valid("read\nwrite"));
    CHECK(!scope_list_valid("read\rwrite"));
    CHECK(!scope_list_valid("read\x7f"));
    CHECK(!scope_list_valid("read\x01"));
    CHECK(!scope_list_valid("caf\xc3\xa9"));
    CHECK(!scope_list_valid("\x80"));
    CHECK(!scope_list_valid("\xff read"));
}

static void test_list_contains(void)
{
    CHECK(scope_list_contains("read write", "read"));
    CHECK(scope_list_contains("read write", "write"));
    CHECK(scope_list_contains("  read   write  ", "write"));
    CHECK(scope_list_contains("read", "read"));

    CHECK(!scope_list_contains("readonly write", "read"));
    CHECK(!scope_list_contains("write readonly", "read"));
    CHECK(!scope_list_contains("xread write", "read"));
    CHECK(!scope_list_contains("read write", "rea"));
    CHECK(!scope_list_contains("read write", "read write"));
    CHECK(!scope_list_contains("read write", "Read"));
    CHECK(!scope_list_contains("read write", ""));
    CHECK(!scope_list_contains("read write", " "));
    CHECK(!scope_list_contains("", "read"));
    CHECK(!scope_list_contains("   ", "read"));
    CHECK(!scope_list_contains(NULL, "read"));
    CHECK(!scope_list_contains("read", NULL));
}

static void test_settle_subset(void)
{
    SETTLE_OK("read", "read write admin", "", "read");
    SETTLE_OK("read write", "read write admin", "", "read write");
    SETTLE_OK("admin read write", "read write admin", "", "admin read write");
    /* Request order, not allowed-list order. */
    SETTLE_OK("write read", "read write", "", "write read");
    /* Separators normalised to one space, edges trimmed. */
    SETTLE_OK("  write    read  ", "read write", "", "write read");
    /* A request overrides the defaults entirely. */
    SETTLE_OK("write", "read write", "read", "write");
}

static void test_settle_dedupe(void)
{
    SETTLE_OK("read read", "read write", "", "read");
    SETTLE_OK("write read write read", "read write", "", "write read");
    SETTLE_OK(" read  write read ", "read write", "", "read write");
    /* A token that is a prefix of an earlier one is not a duplicate. */
    SETTLE_OK("readonly read", "read readonly", "", "readonly read");
    SETTLE_OK("read readonly read", "read readonly", "", "read readonly");
}

static void test_settle_not_allowed(void)
{
    SETTLE_FAIL("delete", "read write", "", TK_INVALID,
                "scope 'delete' is not allowed for this client");
    SETTLE_FAIL("read delete", "read write", "", TK_INVALID,
                "scope 'delete' is not allowed for this client");
    /* The first offending token is named. */
    SETTLE_FAIL("x read y", "read write", "", TK_INVALID,
                "scope 'x' is not allowed for this client");
    /* Exact matching: a prefix of an allowed scope is not allowed. */
    SETTLE_FAIL("read", "readonly write", "", TK_INVALID,
                "scope 'read' is not allowed for this client");
    SETTLE_FAIL("Read", "read", "", TK_INVALID, "scope 'Read' is not allowed for this client");
    SETTLE_FAIL("read", "", "", TK_INVALID, "scope 'read' is not allowed for this client");
    SETTLE_FAIL("read", NULL, "", TK_INVALID, "scope 'read' is not allowed for this client");
    /* Being a default does not make a scope requestable. */
    SETTLE_FAIL("admin", "read", "admin", TK_INVALID,
                "scope 'admin' is not allowed for this client");
}

static void test_settle_malformed(void)
{
    static const char *const malformed[] = {
        "",         " ",           "    ",      "a\"b",      "read \"",  "a\\b",
        "read\\",   "read\twrite", "\tread",    "read\n",    "read\x7f", "\x7f",
        "read\x01", "caf\xc3\xa9", "read \xff", "\x80 read", "read\rx",
    };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        SETTLE_FAIL(malformed[i], "read write a\"b a\\b", "read", TK_INVALID, "malformed scope");
    }
    /* Malformed anywhere wins over not-allowed earlier in the list, so the
     * message never has to echo bytes a client chose freely. */
    SETTLE_FAIL("delete read\"", "read", "", TK_INVALID, "malformed scope");
}

static void test_settle_defaults(void)
{
    SETTLE_OK(NULL, "read write admin", "read write", "read write");
    SETTLE_OK(NULL, "read write", "write read", "write read");
    SETTLE_OK(NULL, "read write", "read read write read", "read write");
    SETTLE_OK(NULL, "read write", "  read   write ", "read write");
    SETTLE_OK(NULL, "read write", "", "");
    SETTLE_OK(NULL, "read write", "   ", "");
    SETTLE_OK(NULL, "read write", NULL, "");
    SETTLE_OK(NULL, "", "", "");
    /* A broken client record is an internal error, never a granted scope. */
    SETTLE_FAIL(NULL, "read", "read\twrite", TK_ERROR, "client default scope is malformed");
    SETTLE_FAIL(NULL, "read", "a\"b", TK_ERROR, "client default scope is malformed");
}

static void test_settle_long_scope_truncated(void)
{
    char requested[201];
    memset(requested, 'x', 200);
    requested[200] = '\0';
    char expected[128];
    snprintf(expected, sizeof(expected), "scope '%.64s' is not allowed for this client", requested);
    CHECK_INT(strlen(expected), strlen("scope '' is not allowed for this client") + 64);
    SETTLE_FAIL(requested, "read", "", TK_INVALID, expected);

    /* Exactly 64 bytes is echoed whole; 65 loses its last byte. */
    char sixty_four[65];
    memset(sixty_four, 'y', 64);
    sixty_four[64] = '\0';
    snprintf(expected, sizeof(expected), "scope '%s' is not allowed for this client", sixty_four);
    SETTLE_FAIL(sixty_four, "read", "", TK_INVALID, expected);

    char sixty_five[66];
    memset(sixty_five, 'z', 64);
    sixty_five[64] = 'Q';
    sixty_five[65] = '\0';
    snprintf(expected, sizeof(expected), "scope '%.64s' is not allowed for this client",
             sixty_five);
    CHECK(strchr(expected, 'Q') == NULL);
    SETTLE_FAIL(sixty_five, "read", "", TK_INVALID, expected);

    /* A long allowed scope is granted whole. */
    SETTLE_OK(requested, requested, "", requested);
}

static void test_settle_many_tokens(void)
{
    /* Grants of many tokens fit the one allocation sized by the request. */
    char requested[4096];
    char expected[4096];
    size_t used = 0;
    size_t expected_used = 0;
    for (int i = 0; i < 200; i++) {
        used += (size_t)snprintf(requested + used, sizeof(requested) - used, "  s%d ", i % 50);
        if (i < 50) {
            expected_used +=
                (size_t)snprintf(expected + expected_used, sizeof(expected) - expected_used,
                                 "%ss%d", i > 0 ? " " : "", i);
        }
    }
    char allowed[1024];
    size_t allowed_used = 0;
    for (int i = 49; i >= 0; i--) {
        allowed_used +=
            (size_t)snprintf(allowed + allowed_used, sizeof(allowed) - allowed_used, "s%d ", i);
    }
    SETTLE_OK(requested, allowed, "", expected);
}

int main(void)
{
    arena_init(&test_arena, 256);
    RUN(test_list_valid);
    RUN(test_list_contains);
    RUN(test_settle_subset);
    RUN(test_settle_dedupe);
    RUN(test_settle_not_allowed);
    RUN(test_settle_malformed);
    RUN(test_settle_defaults);
    RUN(test_settle_long_scope_truncated);
    RUN(test_settle_many_tokens);
    arena_free(&test_arena);
    return unit_test_finish();
}
