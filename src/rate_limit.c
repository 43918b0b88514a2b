/*
 * rate_limit.c - a token bucket: how often one worker lets the admin
 * endpoints run, so a wrong or leaked admin token cannot be used to keep a
 * worker busy or to guess at speed.
 *
 * Invariants: 0 <= tokens <= burst and burst >= 1 after init; per_ms >= 0
 * (0: never refills). The bucket is brought up to date lazily, on each
 * take, from the time elapsed since last_ms: no timer, no system call.
 *
 * Clock: callers pass monotonic_ms(), which never goes backwards. Should a
 * time earlier than last_ms arrive anyway, nothing is refilled and last_ms
 * moves back to it. Keeping the later last_ms instead would refill nothing
 * until the clock caught up again, locking the admin out for as long as the
 * step back was; moving it back can at worst hand out once more the tokens
 * of the interval repeated, and never more than `burst`.
 *
 * Arithmetic is in doubles; a tolerance of 1e-9 token absorbs the rounding
 * of rates such as 3 per second, so a token that is due is never reported
 * as a second away.
 *
 * Ownership: the caller owns the struct (one per process, no locking).
 * Failure: nothing here can fail.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokend/rate_limit.h"

#define TOKEN_EPSILON 1e-9

void rate_limit_init(struct rate_limit *rl, double per_second, int burst, int64_t now_ms)
{
    rl->burst = burst < 1 ? 1.0 : (double)burst;
    rl->per_ms = per_second > 0 ? per_second / 1000.0 : 0.0; /* NaN > 0 is false */
    rl->tokens = rl->burst;
    rl->last_ms = now_ms;
}

bool rate_limit_take(struct rate_limit *rl, int64_t now_ms, int *retry_after_s)
{
    if (now_ms > rl->last_ms) {
        /* In doubles: the difference of two int64 values may not fit one. */
        double refill = ((double)now_ms - (double)rl->last_ms) * rl->per_ms;
        rl->tokens = rl->burst - rl->tokens > refill ? rl->tokens + refill : rl->burst;
    }
    rl->last_ms = now_ms;

    if (rl->tokens >= 1.0 - TOKEN_EPSILON) {
        rl->tokens = rl->tokens > 1.0 ? rl->tokens - 1.0 : 0.0;
        return true;
    }
    if (retry_after_s != NULL) {
        double wait_s = rl->per_ms > 0 ? (1.0 - rl->tokens) / rl->per_ms / 1000.0 : 0.0;
        if (rl->per_ms <= 0 || wait_s >= (double)INT_MAX) {
            *retry_after_s = INT_MAX;
        } else {
            int whole_s = (int)wait_s; /* wait_s >= 0: truncation rounds down */
            if ((double)whole_s < wait_s - TOKEN_EPSILON) {
                whole_s++;
            }
            *retry_after_s = whole_s < 1 ? 1 : whole_s;
        }
    }
    return false;
}
