/*
 * token_queue.h - the bounded multi-producer / single-consumer ring of
 * issued-token records in shared memory. Workers push (before answering a
 * client), the flusher peeks a batch, writes it to PostgreSQL, and only
 * then releases it.
 *
 * The ring's memory is a region of the instance's shared-memory segment;
 * struct token_queue is one process's view of it (pointers plus the
 * consumer's private bookkeeping). The protocol is described at the top of
 * token_queue.c.
 */
#ifndef TOKEND_TOKEN_QUEUE_H
#define TOKEND_TOKEN_QUEUE_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TOKEN_RECORD_JTI_SIZE       33  /* 32 hex digits + NUL */
#define TOKEN_RECORD_CLIENT_ID_SIZE 129 /* CLIENT_ID_MAX_LEN + NUL */
#define TOKEN_RECORD_SCOPE_SIZE     512 /* granted scopes, at most 511 bytes */
#define TOKEN_RECORD_AUDIENCE_SIZE  256 /* at most 255 bytes */

#define TOKEN_QUEUE_MIN_CAPACITY 16
#define TOKEN_QUEUE_MAX_CAPACITY (1u << 24)

/* One issued token, as the flusher writes it. Never the JWT itself. */
struct token_record {
    char jti[TOKEN_RECORD_JTI_SIZE];
    char client_id[TOKEN_RECORD_CLIENT_ID_SIZE];
    char scope[TOKEN_RECORD_SCOPE_SIZE];
    char audience[TOKEN_RECORD_AUDIENCE_SIZE];
    int64_t issued_at_s;
    int64_t expires_at_s;
    int32_t worker_pid;
};

/* Shared: the two positions, each on its own cache line. */
struct token_queue_control {
    alignas(64) _Atomic uint64_t enqueue_pos; /* next position producers claim */
    alignas(64) _Atomic uint64_t dequeue_pos; /* first position not yet released */
    alignas(64) _Atomic uint64_t skipped;     /* slots abandoned by dead producers */
};

/* Shared: one ring slot. */
struct token_queue_slot {
    alignas(64) _Atomic uint64_t sequence; /* p: free for p; p+1: published; see token_queue.c */
    _Atomic uint64_t owner;                /* (uint32 position, int32 pid) of the last claim */
    struct token_record record;
};

/* One process's view. The stall_* fields are the consumer's own. */
struct token_queue {
    struct token_queue_control *control;
    struct token_queue_slot *slots;
    uint64_t capacity; /* a power of two */
    uint64_t mask;
    uint64_t stall_position; /* consumer: head slot seen claimed but unpublished */
    int64_t stall_since_ms;
    int64_t stale_claim_ms; /* consumer: give up on a live producer after this */
    pid_t self_pid;         /* this process, recorded as a claim's owner */
};

/* True for a power of two in [MIN, MAX]. Inline so the configuration
 * parser can check it without linking the queue. Cannot fail. */
static inline bool token_queue_capacity_valid(uint64_t capacity)
{
    return capacity >= TOKEN_QUEUE_MIN_CAPACITY && capacity <= TOKEN_QUEUE_MAX_CAPACITY &&
           (capacity & (capacity - 1)) == 0;
}

/* Bytes of shared memory a queue of `capacity` slots needs (control and
 * slots, 64-byte aligned). */
size_t token_queue_region_size(uint64_t capacity);

/* Writes an empty queue into `region` (token_queue_region_size bytes,
 * 64-byte aligned, zeroed). Cannot fail. */
void token_queue_format(void *region, uint64_t capacity);

/* Sets up this process's view of a formatted region. Cannot fail. */
void token_queue_attach(struct token_queue *queue, void *region, uint64_t capacity);

/* A forked child calls this before it produces: claims record the owner's
 * pid, read once here so the hot path makes no system call. */
void token_queue_set_producer_pid(struct token_queue *queue, pid_t pid);

/* A claimed slot, between token_queue_claim and token_queue_publish. */
struct token_queue_claim {
    uint64_t position;
    struct token_record *record; /* fill this in place */
};

/* Producer, step 1: claims the next slot. When the ring is full, retries
 * for up to `full_wait_ms` (sleeping 1 ms between tries). Returns TK_OK
 * with *claim, or TK_UNAVAILABLE when the ring stayed full (nothing
 * claimed). A claimed slot must be published promptly: the consumer waits
 * for it, and gives it up when this process dies or stalls for
 * stale_claim_ms. */
int token_queue_claim(struct token_queue *queue, int full_wait_ms, struct token_queue_claim *claim);

/* Producer, step 2: publishes the filled record. Returns TK_OK once the
 * flusher will write it, or TK_DECLINED when the consumer had already given
 * the slot up (this process stalled): only TK_OK means the token may be
 * handed out. */
int token_queue_publish(struct token_queue *queue, const struct token_queue_claim *claim);

/* Producer: claim, copy `record`, publish. Returns what those return. */
int token_queue_push(struct token_queue *queue, const struct token_record *record,
                     int full_wait_ms);

/* Called for each record of a batch, in ring order, with the record where
 * it lies in the ring (valid until the batch is released). */
typedef void (*token_queue_visit_fn)(void *context, const struct token_record *record);

/* Consumer. Hands up to `max` published records from the head to `visit`
 * without releasing them, in ring order. Stops at the first slot that is
 * free, or claimed by a live producer that has not published yet. A slot
 * claimed by a producer that no longer exists (or that stalled longer than
 * stale_claim_ms) is given up and skipped: its token was never answered.
 * *span receives how many positions the batch covers (records plus skipped
 * slots), for token_queue_release. Returns the number of records. Only the
 * one consumer may call it. */
size_t token_queue_visit(struct token_queue *queue, size_t max, token_queue_visit_fn visit,
                         void *context, uint64_t *span);

/* Consumer. token_queue_visit that copies the records into `out`. */
size_t token_queue_peek(struct token_queue *queue, struct token_record *out, size_t max,
                        uint64_t *span);

/* Consumer. Frees the first `span` positions after their records are safely
 * stored, and advances the head. Cannot fail. */
void token_queue_release(struct token_queue *queue, uint64_t span);

/* Records claimed or published and not yet released. Cannot fail. */
uint64_t token_queue_depth(const struct token_queue *queue);

#endif
