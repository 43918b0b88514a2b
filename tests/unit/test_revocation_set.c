/*
 * test_revocation_set.c - the revoked-jti set: membership, lifetimes (an
 * entry lasts as long as its token, never less than a longer one added
 * before), no eviction however many are added, argument checks, sweep;
 * and revocation_keep_ms's arithmetic is tested where it lives
 * (revocation_store.c is not linked here).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tokend/revocation_set.h"
#include "tokend/status.h"
#include "unit_test.h"

static int64_t test_now_ms;

static int64_t test_clock(void *context)
{
    (void)context;
    return test_now_ms;
}

static void test_membership_and_lifetime(void)
{
    test_now_ms = 1000;
    struct revocation_set *set = revocation_set_create(test_clock, NULL);
    CHECK(set != NULL);
    CHECK(!revocation_set_contains(set, "0123456789abcdef0123456789abcdef"));
    CHECK_INT(revocation_set_add(set, "0123456789abcdef0123456789abcdef", 500), TK_OK);
    CHECK(revocation_set_contains(set, "0123456789abcdef0123456789abcdef"));
    CHECK(!revocation_set_contains(set, "0123456789abcdef0123456789abcdee"));
    CHECK(!revocation_set_contains(set, "0123456789abcdef"));
    CHECK_INT((int)revocation_set_size(set), 1);
    test_now_ms = 1499;
    CHECK(revocation_set_contains(set, "0123456789abcdef0123456789abcdef"));
    test_now_ms = 1500;
    CHECK(!revocation_set_contains(set, "0123456789abcdef0123456789abcdef"));
    CHECK_INT((int)revocation_set_size(set), 0);

    /* Adding again keeps the longer lifetime. */
    CHECK_INT(revocation_set_add(set, "a", 1000), TK_OK);
    CHECK_INT(revocation_set_add(set, "a", 10), TK_OK);
    test_now_ms += 500;
    CHECK(revocation_set_contains(set, "a"));
    CHECK_INT(revocation_set_add(set, "a", 5000), TK_OK);
    test_now_ms += 4000;
    CHECK(revocation_set_contains(set, "a"));
    CHECK_INT((int)revocation_set_size(set), 1);
    revocation_set_destroy(set);
}

static void test_bad_arguments(void)
{
    struct revocation_set *set = revocation_set_create(test_clock, NULL);
    CHECK_INT(revocation_set_add(set, "", 1000), TK_INVALID);
    CHECK_INT(revocation_set_add(set, NULL, 1000), TK_INVALID);
    char too_long[40];
    memset(too_long, 'a', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    CHECK_INT(revocation_set_add(set, too_long, 1000), TK_INVALID);
    /* Already expired: nothing to remember, and that is not an error. */
    CHECK_INT(revocation_set_add(set, "b", 0), TK_OK);
    CHECK_INT(revocation_set_add(set, "c", -5), TK_OK);
    CHECK(!revocation_set_contains(set, "b"));
    CHECK(!revocation_set_contains(set, NULL));
    CHECK_INT((int)revocation_set_size(set), 0);
    revocation_set_destroy(set);
    revocation_set_destroy(NULL);
}

/* Far more than the expected size: nothing is ever evicted. */
static void test_never_evicts(void)
{
    test_now_ms = 0;
    struct revocation_set *set = revocation_set_create(test_clock, NULL);
    char jti[33];
    for (int i = 0; i < 50000; i++) {
        snprintf(jti, sizeof(jti), "%032x", (unsigned)i);
        CHECK_INT(revocation_set_add(set, jti, 1000 + i), TK_OK);
    }
    CHECK_INT((int)revocation_set_size(set), 50000);
    for (int i = 0; i < 50000; i += 997) {
        snprintf(jti, sizeof(jti), "%032x", (unsigned)i);
        CHECK(revocation_set_contains(set, jti));
    }
    /* The sweep drops exactly those whose time is up. */
    test_now_ms = 1000 + 25000;
    CHECK_INT((int)revocation_set_sweep(set), 25001);
    CHECK_INT((int)revocation_set_size(set), 24999);
    snprintf(jti, sizeof(jti), "%032x", 25001u);
    CHECK(revocation_set_contains(set, jti));
    snprintf(jti, sizeof(jti), "%032x", 25000u);
    CHECK(!revocation_set_contains(set, jti));
    revocation_set_destroy(set);
}

int main(void)
{
    RUN(test_membership_and_lifetime);
    RUN(test_bad_arguments);
    RUN(test_never_evicts);
    return unit_test_finish();
}
