/*
 * test_rate_limit.c - the token bucket (src/rate_limit.c), driven by a
 * clock the test sets: a full burst then refusal with the seconds until the
 * next token, refill over time and its cap at the burst, rates whose
 * per-millisecond value is not exact in binary, a clock that goes
 * backwards, and the edge settings (burst below 1, no refill).
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "tokend/rate_limit.h"
#include "unit_test.h"

#define NOT_SET (-12345)

/* Takes tokens at `now_ms` until refused; returns how many were given and
 * leaves the refusal's retry-after in *retry_after_s. */
static int drain(struct rate_limit *rl, int64_t now_ms, int *retry_after_s)
{
    int taken = 0;
    *retry_after_s = NOT_SET;
    while (taken < 1000 && rate_limit_take(rl, now_ms, retry_after_s)) {
        taken++;
    }
    return taken;
}

static void test_burst_then_refusal(void)
{
    struct rate_limit rl;
    int retry = NOT_SET;
    rate_limit_init(&rl, 0.25, 5, 1000); /* one token every 4 s */
    for (int i = 0; i < 5; i++) {
        CHECK(rate_limit_take(&rl, 1000, &retry));
        CHECK_INT(retry, NOT_SET); /* left alone on success */
    }
    CHECK(!rate_limit_take(&rl, 1000, &retry));
    CHECK_INT(retry, 4);
    /* Refused again a little later: the wait shrinks, rounded up. */
    CHECK(!rate_limit_take(&rl, 2000, &retry)); /* 3 s to go */
    CHECK_INT(retry, 3);
    CHECK(!rate_limit_take(&rl, 2500, &retry)); /* 2.5 s to go */
    CHECK_INT(retry, 3);
    CHECK(!rate_limit_take(&rl, 4999, &retry)); /* 1 ms to go */
    CHECK_INT(retry, 1);
    CHECK(rate_limit_take(&rl, 5000, &retry));
    CHECK(!rate_limit_take(&rl, 5000, &retry));
    CHECK_INT(retry, 4);

    /* A NULL retry_after_s is allowed. */
    CHECK(!rate_limit_take(&rl, 5000, NULL));
}

static void test_fast_rate_retry_is_at_least_one_second(void)
{
    struct rate_limit rl;
    int retry = NOT_SET;
    rate_limit_init(&rl, 50, 2, 0); /* a token every 20 ms */
    CHECK_INT(drain(&rl, 0, &retry), 2);
    CHECK_INT(retry, 1);
    CHECK(!rate_limit_take(&rl, 19, &retry));
    CHECK_INT(retry, 1);
    CHECK(rate_limit_take(&rl, 20, &retry));

    /* A token due in a picosecond is still reported as a second away. */
    rate_limit_init(&rl, 1e12, 1, 0);
    CHECK_INT(drain(&rl, 0, &retry), 1);
    CHECK_INT(retry, 1);
    CHECK_INT(drain(&rl, 1, &retry), 1);
}

static void test_refill_over_time(void)
{
    struct rate_limit rl;
    int retry = NOT_SET;
    rate_limit_init(&rl, 2, 4, 0); /* a token every 500 ms */
    CHECK_INT(drain(&rl, 0, &retry), 4);

    /* Tokens come back at the rate... */
    CHECK_INT(drain(&rl, 499, &retry), 0);
    CHECK_INT(drain(&rl, 500, &retry), 1);
    CHECK_INT(drain(&rl, 1500, &retry), 2);
    /* ...fractions carry over between calls... */
    CHECK_INT(drain(&rl, 1750, &retry), 0);
    CHECK_INT(drain(&rl, 2000, &retry), 1);
    /* ...and never beyond the burst, however long the pause. */
    CHECK_INT(drain(&rl, 2000 + 3600 * 1000, &retry), 4);
    CHECK_INT(retry, 1);
    CHECK_INT(drain(&rl, INT64_MAX, &retry), 4);
}

/* Rates whose per-millisecond value is not exact in binary still give a
 * token exactly when it is due, and report it due within the second. */
static void test_inexact_rates(void)
{
    static const int intervals_ms[] = {3, 7, 10, 30, 70, 100, 300, 333, 700, 1000, 3000, 7000};
    for (size_t i = 0; i < sizeof(intervals_ms) / sizeof(intervals_ms[0]); i++) {
        int interval = intervals_ms[i];
        struct rate_limit rl;
        int retry = NOT_SET;
        rate_limit_init(&rl, 1000.0 / interval, 1, 0);
        CHECK(rate_limit_take(&rl, 0, &retry));
        for (int64_t k = 1; k <= 5; k++) {
            CHECK(!rate_limit_take(&rl, k * interval - 1, &retry));
            if (!rate_limit_take(&rl, k * interval, &retry)) {
                fprintf(stderr, "interval %d ms: no token at %lld ms\n", interval,
                        (long long)(k * interval));
                CHECK(false);
            }
        }
        CHECK(!rate_limit_take(&rl, 5 * interval, &retry));
        CHECK_INT(retry, (interval + 999) / 1000);
    }
}

static void test_clock_going_backwards(void)
{
    struct rate_limit rl;
    int retry = NOT_SET;
    rate_limit_init(&rl, 1, 3, 10000); /* a token a second */
    CHECK_INT(drain(&rl, 10000, &retry), 3);

    /* An earlier time refills nothing, whatever the distance... */
    CHECK_INT(drain(&rl, 9000, &retry), 0);
    CHECK_INT(retry, 1);
    CHECK_INT(drain(&rl, 0, &retry), 0);
    CHECK_INT(drain(&rl, -5000, &retry), 0);
    /* ...and refilling resumes from there: no lock-out until the old time. */
    CHECK_INT(drain(&rl, -4001, &retry), 0);
    CHECK_INT(drain(&rl, -4000, &retry), 1);
    CHECK_INT(drain(&rl, -1000, &retry), 3);

    /* A partly refilled bucket keeps its fraction across a step back. */
    rate_limit_init(&rl, 1, 1, 0);
    CHECK_INT(drain(&rl, 0, &retry), 1);
    CHECK_INT(drain(&rl, 600, &retry), 0); /* 0.6 token */
    CHECK_INT(drain(&rl, 100, &retry), 0); /* back: still 0.6 */
    CHECK_INT(retry, 1);
    CHECK_INT(drain(&rl, 499, &retry), 0); /* 0.999 */
    CHECK_INT(drain(&rl, 500, &retry), 1);
}

static void test_edge_settings(void)
{
    struct rate_limit rl;
    int retry = NOT_SET;

    /* A burst below 1 is 1: one request is always possible. */
    rate_limit_init(&rl, 1, 0, 0);
    CHECK_INT(drain(&rl, 0, &retry), 1);
    rate_limit_init(&rl, 1, -7, 0);
    CHECK_INT(drain(&rl, 0, &retry), 1);
    CHECK_INT(drain(&rl, 5000, &retry), 1);

    /* No refill: the burst and then nothing, ever. */
    rate_limit_init(&rl, 0, 2, 0);
    CHECK_INT(drain(&rl, 0, &retry), 2);
    CHECK_INT(retry, INT_MAX);
    CHECK_INT(drain(&rl, INT64_MAX, &retry), 0);
    CHECK_INT(retry, INT_MAX);
    rate_limit_init(&rl, -1, 1, 0);
    CHECK_INT(drain(&rl, 0, &retry), 1);
    CHECK_INT(drain(&rl, 1000000, &retry), 0);
    CHECK_INT(retry, INT_MAX);

    /* The extremes of the clock: no overflow either way. */
    rate_limit_init(&rl, 1, 1, INT64_MAX);
    CHECK_INT(drain(&rl, INT64_MAX, &retry), 1);
    CHECK_INT(drain(&rl, INT64_MIN, &retry), 0);
    CHECK_INT(retry, 1);
    CHECK_INT(drain(&rl, INT64_MAX, &retry), 1);

    /* A rate so slow the wait overflows an int is capped at INT_MAX. */
    rate_limit_init(&rl, 1e-12, 1, 0);
    CHECK_INT(drain(&rl, 0, &retry), 1);
    CHECK_INT(retry, INT_MAX);
}

int main(void)
{
    RUN(test_burst_then_refusal);
    RUN(test_fast_rate_retry_is_at_least_one_second);
    RUN(test_refill_over_time);
    RUN(test_inexact_rates);
    RUN(test_clock_going_backwards);
    RUN(test_edge_settings);
    return unit_test_finish();
}
