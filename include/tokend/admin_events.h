/*
 * admin_events.h - the ring of admin events in the shared segment: how an
 * admin action taken on one worker (or heard by the flusher from another
 * host) reaches every worker of the instance.
 *
 * Publishers (a worker answering POST /admin/cache/..., the flusher turning
 * a PostgreSQL notification into an event) append under a robust
 * process-shared mutex and then advance `published`. Each worker keeps the
 * sequence number it has applied in its stats slot; before its next request
 * it compares that with `published` (one atomic load when nothing is
 * pending) and applies what is new. A worker that fell more than
 * ADMIN_EVENT_RING_SIZE events behind cannot know what it missed and clears
 * its caches instead, which is always safe: the cache refills from the
 * database.
 */
#ifndef TOKEND_ADMIN_EVENTS_H
#define TOKEND_ADMIN_EVENTS_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tokend/token_queue.h"

#define ADMIN_EVENT_RING_SIZE 256 /* a power of two */

enum admin_event_type {
    ADMIN_EVENT_CLEAR = 1,      /* empty the client cache */
    ADMIN_EVENT_INVALIDATE = 2, /* forget one client (client_id) */
    ADMIN_EVENT_CLEANUP = 3,    /* drop expired entries now */
    ADMIN_EVENT_REVOKE = 4,     /* a token was revoked (subject = jti, expires_at_s = its exp) */
};

struct admin_event {
    _Atomic uint64_t seq; /* the sequence number this entry holds; written last */
    int32_t type;         /* enum admin_event_type */
    int32_t reserved;
    int64_t expires_at_s;                      /* REVOKE: the revoked token's exp (Unix seconds) */
    char subject[TOKEN_RECORD_CLIENT_ID_SIZE]; /* INVALIDATE: client id; REVOKE: jti */
};

/* "<16 hex digits>\0": the ring's random origin, see admin_event_origin. */
#define ADMIN_EVENT_ORIGIN_SIZE 17

struct admin_event_ring {
    pthread_mutex_t lock;                   /* robust, process-shared; publishers only */
    uint64_t origin;                        /* random, set when formatted */
    alignas(64) _Atomic uint64_t published; /* sequence of the newest event; 0 = none */
    struct admin_event events[ADMIN_EVENT_RING_SIZE];
};

/* Writes this ring's origin as 16 hex digits: a random number drawn when
 * the segment was made, which tells this instance's own notices (a
 * revocation its worker published already) from other instances'. */
void admin_event_origin(const struct admin_event_ring *ring, char out[ADMIN_EVENT_ORIGIN_SIZE]);

/* Initialises an empty ring (segment creation). TK_OK or TK_ERROR. */
int admin_event_ring_format(struct admin_event_ring *ring);

/* Appends one event; `client_id` only for ADMIN_EVENT_INVALIDATE (at most
 * TOKEN_RECORD_CLIENT_ID_SIZE - 1 bytes, else TK_INVALID). Sets *seq to its
 * sequence number. TK_OK, TK_INVALID or TK_ERROR (the lock failed). */
int admin_event_publish(struct admin_event_ring *ring, enum admin_event_type type,
                        const char *client_id, uint64_t *seq);

/* Appends an ADMIN_EVENT_REVOKE for `jti` (1 to TOKEN_RECORD_JTI_SIZE - 1
 * bytes, else TK_INVALID) of a token that expires at `expires_at_s`.
 * Otherwise as admin_event_publish. */
int admin_event_publish_revoke(struct admin_event_ring *ring, const char *jti, int64_t expires_at_s,
                               uint64_t *seq);

static inline uint64_t admin_event_published(struct admin_event_ring *ring)
{
    return atomic_load_explicit(&ring->published, memory_order_acquire);
}

/* `subject` is "" when the event has none; expires_at_s is 0 but for
 * ADMIN_EVENT_REVOKE. */
typedef void (*admin_event_apply_fn)(void *context, enum admin_event_type type, const char *subject,
                                     int64_t expires_at_s);

/* Applies the events after *applied, oldest first, and advances *applied to
 * the newest. If some were overwritten before this process read them,
 * applies one ADMIN_EVENT_CLEAR in their place. Returns how many calls of
 * `apply` were made. */
size_t admin_events_apply(struct admin_event_ring *ring, uint64_t *applied,
                          admin_event_apply_fn apply, void *context);

#endif
