/*
 * admin_events.c - publishing and applying admin events (see
 * admin_events.h for the model).
 *
 * Publishing: lock, seq = published + 1, fill events[seq % SIZE] (its `seq`
 * stored last, release), store published = seq (release), unlock. A
 * publisher that dies holding the lock leaves it EOWNERDEAD; the next one
 * marks it consistent and goes on: at worst the dead publisher's entry was
 * half written and never published, and it is simply overwritten.
 *
 * Applying (lock-free, like a seqlock): for each sequence s after the
 * reader's, copy the entry, then check that its `seq` still equals s. If a
 * publisher lapped the reader meanwhile the check fails, and the reader
 * clears instead of applying a wrong event.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "tokend/admin_events.h"
#include "tokend/status.h"

void admin_event_origin(const struct admin_event_ring *ring, char out[ADMIN_EVENT_ORIGIN_SIZE])
{
    snprintf(out, ADMIN_EVENT_ORIGIN_SIZE, "%016llx", (unsigned long long)ring->origin);
}

int admin_event_ring_format(struct admin_event_ring *ring)
{
    memset(ring, 0, sizeof(*ring));
    if (RAND_bytes((unsigned char *)&ring->origin, sizeof(ring->origin)) != 1) {
        return TK_ERROR;
    }
    pthread_mutexattr_t attr;
    if (pthread_mutexattr_init(&attr) != 0) {
        return TK_ERROR;
    }
    int rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0) {
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    }
    if (rc == 0) {
        rc = pthread_mutex_init(&ring->lock, &attr);
    }
    pthread_mutexattr_destroy(&attr);
    return rc == 0 ? TK_OK : TK_ERROR;
}

static int ring_lock(struct admin_event_ring *ring)
{
    int rc = pthread_mutex_lock(&ring->lock);
    if (rc == EOWNERDEAD) {
        rc = pthread_mutex_consistent(&ring->lock);
    }
    return rc == 0 ? TK_OK : TK_ERROR;
}

static int publish(struct admin_event_ring *ring, enum admin_event_type type, const char *subject,
                   size_t subject_len, int64_t expires_at_s, uint64_t *seq)
{
    if (ring_lock(ring) != TK_OK) {
        return TK_ERROR;
    }
    uint64_t next = atomic_load_explicit(&ring->published, memory_order_relaxed) + 1;
    struct admin_event *event = &ring->events[next & (ADMIN_EVENT_RING_SIZE - 1)];
    atomic_store_explicit(&event->seq, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    event->type = (int32_t)type;
    event->expires_at_s = expires_at_s;
    memset(event->subject, 0, sizeof(event->subject));
    if (subject_len > 0) {
        memcpy(event->subject, subject, subject_len);
    }
    atomic_store_explicit(&event->seq, next, memory_order_release);
    atomic_store_explicit(&ring->published, next, memory_order_release);
    pthread_mutex_unlock(&ring->lock);
    if (seq != NULL) {
        *seq = next;
    }
    return TK_OK;
}

int admin_event_publish(struct admin_event_ring *ring, enum admin_event_type type,
                        const char *client_id, uint64_t *seq)
{
    size_t id_len = client_id != NULL ? strlen(client_id) : 0;
    if (id_len >= TOKEN_RECORD_CLIENT_ID_SIZE || type == ADMIN_EVENT_REVOKE ||
        (type == ADMIN_EVENT_INVALIDATE && (client_id == NULL || id_len == 0))) {
        return TK_INVALID;
    }
    return publish(ring, type, client_id, id_len, 0, seq);
}

int admin_event_publish_revoke(struct admin_event_ring *ring, const char *jti, int64_t expires_at_s,
                               uint64_t *seq)
{
    size_t jti_len = jti != NULL ? strlen(jti) : 0;
    if (jti_len == 0 || jti_len >= TOKEN_RECORD_JTI_SIZE) {
        return TK_INVALID;
    }
    return publish(ring, ADMIN_EVENT_REVOKE, jti, jti_len, expires_at_s, seq);
}

size_t admin_events_apply(struct admin_event_ring *ring, uint64_t *applied,
                          admin_event_apply_fn apply, void *context)
{
    uint64_t newest = admin_event_published(ring);
    uint64_t from = *applied;
    if (newest == from) {
        return 0;
    }
    size_t calls = 0;
    bool lost = newest < from || newest - from > ADMIN_EVENT_RING_SIZE;
    for (uint64_t s = from + 1; !lost && s <= newest; s++) {
        struct admin_event *slot = &ring->events[s & (ADMIN_EVENT_RING_SIZE - 1)];
        if (atomic_load_explicit(&slot->seq, memory_order_acquire) != s) {
            lost = true;
            break;
        }
        struct admin_event copy;
        copy.type = slot->type;
        copy.expires_at_s = slot->expires_at_s;
        memcpy(copy.subject, slot->subject, sizeof(copy.subject));
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&slot->seq, memory_order_relaxed) != s) {
            lost = true;
            break;
        }
        copy.subject[sizeof(copy.subject) - 1] = '\0';
        apply(context, (enum admin_event_type)copy.type, copy.subject, copy.expires_at_s);
        calls++;
    }
    if (lost) {
        apply(context, ADMIN_EVENT_CLEAR, "", 0);
        calls++;
    }
    *applied = newest;
    return calls;
}
