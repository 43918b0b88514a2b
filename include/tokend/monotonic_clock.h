/*
 * monotonic_clock.h - milliseconds on CLOCK_MONOTONIC, for deadlines,
 * backoffs and TTLs (never for timestamps shown to anyone). A vDSO call on
 * Linux: no system call.
 */
#ifndef TOKEND_MONOTONIC_CLOCK_H
#define TOKEND_MONOTONIC_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Cannot fail. */
static inline int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

#endif
