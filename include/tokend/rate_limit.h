/*
 * rate_limit.h - a token bucket for one process (a worker's admin
 * endpoints): `burst` requests at once, then `per_second` on average.
 * Not shared between processes and not locked: each worker has its own.
 * Times are milliseconds from the caller's clock (monotonic_ms()).
 */
#ifndef TOKEND_RATE_LIMIT_H
#define TOKEND_RATE_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct rate_limit {
    double tokens;   /* requests allowed right now, 0..burst */
    double per_ms;   /* tokens added per millisecond */
    double burst;    /* the most tokens the bucket holds */
    int64_t last_ms; /* when tokens was last brought up to date */
};

/* Sets up a full bucket at `now_ms`. A burst below 1 is taken as 1; a
 * per_second of 0 or less (or NaN) means the bucket never refills. Cannot
 * fail. */
void rate_limit_init(struct rate_limit *rl, double per_second, int burst, int64_t now_ms);

/* Refills the bucket for the time since the last call (a clock that went
 * backwards refills nothing), then takes one token. Returns true when one
 * was available. Otherwise returns false and, when retry_after_s is not
 * NULL, sets *retry_after_s to the whole seconds (rounded up, at least 1,
 * INT_MAX when the bucket never refills) until one token will be there.
 * *retry_after_s is left alone on true. Cannot fail. */
bool rate_limit_take(struct rate_limit *rl, int64_t now_ms, int *retry_after_s);

#endif
