/*
 * test_token_queue.c - the shared-memory token ring and its segment.
 *
 * Real processes: producers are forked children sharing the segment with
 * the parent, which plays the flusher. Checked: every record arrives
 * exactly once and in each producer's order; a full ring refuses after the
 * wait; a producer that dies between claim and publish is skipped; a
 * stalled producer is given up after stale_claim_ms and its late publish is
 * refused; segments with another layout are refused; a second owner is
 * refused; a leftover segment keeps its queue.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tokend/monotonic_clock.h"
#include "tokend/shm_segment.h"
#include "tokend/status.h"
#include "tokend/token_queue.h"

#include "unit_test.h"

static char segment_name[64];

static void fill(struct token_record *record, int producer, int sequence)
{
    memset(record, 0, sizeof(*record));
    snprintf(record->jti, sizeof(record->jti), "%08x%08x%016x", producer, sequence, 0);
    snprintf(record->client_id, sizeof(record->client_id), "producer-%d", producer);
    snprintf(record->scope, sizeof(record->scope), "read write");
    snprintf(record->audience, sizeof(record->audience), "https://api.example.com");
    record->issued_at_s = 1700000000 + sequence;
    record->expires_at_s = record->issued_at_s + 3600;
    record->worker_pid = (int32_t)getpid();
}

static int open_segment(struct shm_segment *segment, uint64_t capacity)
{
    char error[512];
    int rc =
        shm_segment_open(segment, segment_name, capacity, SHM_SEGMENT_OWN, error, sizeof(error));
    if (rc != TK_OK) {
        fprintf(stderr, "open: %s\n", error);
    }
    return rc;
}

static void test_push_peek_release_in_order(void)
{
    struct shm_segment segment;
    CHECK_INT(open_segment(&segment, 16), TK_OK);
    CHECK(segment.created);
    struct token_queue *queue = &segment.queue;
    struct token_record record, out[32];
    for (int i = 0; i < 10; i++) {
        fill(&record, 1, i);
        CHECK_INT(token_queue_push(queue, &record, 0), TK_OK);
    }
    CHECK_INT(token_queue_depth(queue), 10);
    uint64_t span = 0;
    CHECK_INT(token_queue_peek(queue, out, 4, &span), 4);
    CHECK_INT(span, 4);
    CHECK_STR(out[0].client_id, "producer-1");
    CHECK_INT(out[3].issued_at_s, 1700000003);
    /* not released: peeking again gives the same records */
    CHECK_INT(token_queue_peek(queue, out, 32, &span), 10);
    CHECK_INT(span, 10);
    CHECK_INT(out[0].issued_at_s, 1700000000);
    token_queue_release(queue, 4);
    CHECK_INT(token_queue_depth(queue), 6);
    CHECK_INT(token_queue_peek(queue, out, 32, &span), 6);
    CHECK_INT(out[0].issued_at_s, 1700000004);
    token_queue_release(queue, span);
    CHECK_INT(token_queue_depth(queue), 0);
    CHECK_INT(token_queue_peek(queue, out, 32, &span), 0);
    CHECK_INT(span, 0);
    shm_segment_close(&segment);
    shm_segment_unlink(segment_name);
}

static void test_full_ring_refuses_after_wait(void)
{
    struct shm_segment segment;
    CHECK_INT(open_segment(&segment, 16), TK_OK);
    struct token_queue *queue = &segment.queue;
    struct token_record record, out[16];
    for (int i = 0; i < 16; i++) {
        fill(&record, 2, i);
        CHECK_INT(token_queue_push(queue, &record, 0), TK_OK);
    }
    fill(&record, 2, 16);
    int64_t started = monotonic_ms();
    CHECK_INT(token_queue_push(queue, &record, 30), TK_UNAVAILABLE);
    CHECK(monotonic_ms() - started >= 30); /* it did wait before refusing */
    CHECK_INT(token_queue_depth(queue), 16);
    /* freeing space lets the next push in, and nothing was overwritten */
    uint64_t span;
    CHECK_INT(token_queue_peek(queue, out, 1, &span), 1);
    token_queue_release(queue, span);
    CHECK_INT(token_queue_push(queue, &record, 0), TK_OK);
    CHECK_INT(token_queue_peek(queue, out, 16, &span), 16);
    for (int i = 0; i < 16; i++) {
        CHECK_INT(out[i].issued_at_s, 1700000001 + i);
    }
    shm_segment_close(&segment);
    shm_segment_unlink(segment_name);
}

/* Several producer processes against one consumer, through a ring much
 * smaller than what is pushed, so producers also wait on a full ring. */
static void test_many_producers_exactly_once_in_order(void)
{
    enum { PRODUCERS = 4, PER_PRODUCER = 20000, CAPACITY = 256 };
    struct shm_segment segment;
    CHECK_INT(open_segment(&segment, CAPACITY), TK_OK);
    pid_t children[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++) {
        children[p] = fork();
        if (children[p] == 0) {
            token_queue_set_producer_pid(&segment.queue, getpid());
            struct token_record record;
            for (int i = 0; i < PER_PRODUCER; i++) {
                fill(&record, p, i);
                if (token_queue_push(&segment.queue, &record, 10000) != TK_OK) {
                    _exit(1);
                }
            }
            _exit(0);
        }
    }
    int next[PRODUCERS] = {0};
    int received = 0, out_of_order = 0, foreign = 0;
    static struct token_record batch[100];
    int64_t deadline = monotonic_ms() + 60000;
    while (received < PRODUCERS * PER_PRODUCER && monotonic_ms() < deadline) {
        uint64_t span;
        size_t n = token_queue_peek(&segment.queue, batch, 100, &span);
        for (size_t i = 0; i < n; i++) {
            int producer = -1, sequence = -1;
            if (sscanf(batch[i].client_id, "producer-%d", &producer) != 1 || producer < 0 ||
                producer >= PRODUCERS) {
                foreign++;
                continue;
            }
            sequence = (int)(batch[i].issued_at_s - 1700000000);
            if (sequence != next[producer]) {
                out_of_order++;
            }
            next[producer] = sequence + 1;
            received++;
        }
        token_queue_release(&segment.queue, span);
        if (n == 0) {
            usleep(100);
        }
    }
    for (int p = 0; p < PRODUCERS; p++) {
        int status = -1;
        waitpid(children[p], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK_INT(next[p], PER_PRODUCER);
    }
    CHECK_INT(received, PRODUCERS * PER_PRODUCER);
    CHECK_INT(out_of_order, 0);
    CHECK_INT(foreign, 0);
    CHECK_INT(token_queue_depth(&segment.queue), 0);
    CHECK_INT(atomic_load(&segment.queue.control->skipped), 0);
    shm_segment_close(&segment);
    shm_segment_unlink(segment_name);
}

static void test_dead_producer_is_skipped(void)
{
    struct shm_segment segment;
    CHECK_INT(open_segment(&segment, 16), TK_OK);
    struct token_queue *queue = &segment.queue;
    struct token_record record, out[16];
    fill(&record, 3, 0);
    CHECK_INT(token_queue_push(queue, &record, 0), TK_OK);
    pid_t child = fork();
    if (child == 0) {
        token_queue_set_producer_pid(&segment.queue, getpid());
        struct token_queue_claim claim;
        /* claim a slot, start filling it, and die before publishing */
        if (token_queue_claim(&segment.queue, 0, &claim) == TK_OK) {
            strcpy(claim.record->client_id, "never-published");
        }
        _exit(0);
    }
    waitpid(child, NULL, 0);
    fill(&record, 3, 2);
    CHECK_INT(token_queue_push(queue, &record, 0), TK_OK);
    CHECK_INT(token_queue_depth(queue), 3);
    uint64_t span;
    size_t n = token_queue_peek(queue, out, 16, &span);
    CHECK_INT(n, 2);
    CHECK_INT(span, 3);
    CHECK_INT(out[0].issued_at_s, 1700000000);
    CHECK_INT(out[1].issued_at_s, 1700000002);
    CHECK_INT(atomic_load(&queue->control->skipped), 1);
    token_queue_release(queue, span);
    CHECK_INT(token_queue_depth(queue), 0);
    /* the ring keeps working across the skipped slot's next laps */
    for (int lap = 0; lap < 3; lap++) {
        for (int i = 0; i < 16; i++) {
            fill(&record, 4, lap * 16 + i);
            CHECK_INT(token_queue_push(queue, &record, 0), TK_OK);
        }
        CHECK_INT(token_queue_peek(queue, out, 16, &span), 16);
        CHECK_INT(out[15].issued_at_s, 1700000000 + lap * 16 + 15);
        token_queue_release(queue, span);
    }
    shm_segment_close(&segment);
    shm_segment_unlink(segment_name);
}

static void test_stalled_producer_is_given_up_and_its_publish_refused(void)
{
    struct shm_segment segment;
    CHECK_INT(open_segment(&segment, 16), TK_OK);
    struct token_queue *queue = &segment.queue;
    queue->stale_claim_ms = 100;
    int to_child[2], from_child[2];
    CHECK(pipe(to_child) == 0 && pipe(from_child) == 0);
    pid_t child = fork();
    if (child == 0) {
        token_queue_set_producer_pid(&segment.queue, getpid());
        struct token_queue_claim claim;
        char go;
        int rc = token_queue_claim(&segment.queue, 0, &claim);
        char ready = rc == TK_OK ? 'c' : 'x';
        if (write(from_child[1], &ready, 1) != 1 || read(to_child[0], &go, 1) != 1) {
            _exit(3);
        }
        fill(claim.record, 5, 0);
        _exit(token_queue_publish(&segment.queue, &claim) == TK_DECLINED ? 0 : 2);
    }
    char ready = 0;
    CHECK(read(from_child[0], &ready, 1) == 1 && ready == 'c');
    struct token_record out[16];
    uint64_t span = 99;
    /* alive and within its time: the consumer waits for it */
    CHECK_INT(token_queue_peek(queue, out, 16, &span), 0);
    CHECK_INT(span, 0);
    usleep(150 * 1000);
    CHECK_INT(token_queue_peek(queue, out, 16, &span), 0);
    CHECK_INT(span, 1); /* given up */
    token_queue_release(queue, span);
    char go = 'g';
    CHECK(write(to_child[1], &go, 1) == 1);
    int status = -1;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* its publish was refused */
    CHECK_INT(token_queue_peek(queue, out, 16, &span), 0);
    close(to_child[0]);
    close(to_child[1]);
    close(from_child[0]);
    close(from_child[1]);
    shm_segment_close(&segment);
    shm_segment_unlink(segment_name);
}

static void test_segment_layout_and_ownership(void)
{
    char error[512];
    struct shm_segment owner, other;
    CHECK_INT(open_segment(&owner, 16), TK_OK);
    struct token_record record;
    fill(&record, 6, 0);
    CHECK_INT(token_queue_push(&owner.queue, &record, 0), TK_OK);

    /* another owner while this one lives */
    CHECK_INT(shm_segment_open(&other, segment_name, 16, SHM_SEGMENT_OWN, error, sizeof(error)),
              TK_INVALID);
    CHECK(strstr(error, segment_name) != NULL && strstr(error, "in use") != NULL);
    /* a different capacity */
    CHECK_INT(shm_segment_open(&other, segment_name, 32, SHM_SEGMENT_ATTACH, error, sizeof(error)),
              TK_INVALID);
    CHECK(strstr(error, segment_name) != NULL);
    /* the same layout attaches and sees the queue */
    CHECK_INT(shm_segment_open(&other, segment_name, 16, SHM_SEGMENT_ATTACH, error, sizeof(error)),
              TK_OK);
    CHECK_INT(token_queue_depth(&other.queue), 1);
    shm_segment_close(&other);

    /* the owner goes away without unlinking: the next owner re-attaches it */
    shm_segment_close(&owner);
    CHECK_INT(open_segment(&owner, 16), TK_OK);
    CHECK(!owner.created);
    CHECK_INT(token_queue_depth(&owner.queue), 1);
    shm_segment_close(&owner);

    /* a header from another layout version is refused, never reused */
    CHECK_INT(shm_segment_open(&owner, segment_name, 16, SHM_SEGMENT_ATTACH, error, sizeof(error)),
              TK_OK);
    owner.header->layout_version = 99;
    shm_segment_close(&owner);
    CHECK_INT(shm_segment_open(&owner, segment_name, 16, SHM_SEGMENT_OWN, error, sizeof(error)),
              TK_INVALID);
    CHECK(strstr(error, "layout 99") != NULL);
    shm_segment_unlink(segment_name);

    /* attach to nothing, bad names, bad capacities */
    CHECK_INT(shm_segment_open(&other, segment_name, 16, SHM_SEGMENT_ATTACH, error, sizeof(error)),
              TK_ERROR);
    CHECK_INT(shm_segment_open(&other, "no-slash", 16, SHM_SEGMENT_OWN, error, sizeof(error)),
              TK_INVALID);
    CHECK_INT(shm_segment_open(&other, "/a/b", 16, SHM_SEGMENT_OWN, error, sizeof(error)),
              TK_INVALID);
    CHECK_INT(shm_segment_open(&other, segment_name, 24, SHM_SEGMENT_OWN, error, sizeof(error)),
              TK_INVALID);
    CHECK_INT(shm_segment_open(&other, segment_name, 8, SHM_SEGMENT_OWN, error, sizeof(error)),
              TK_INVALID);
}

int main(void)
{
    snprintf(segment_name, sizeof(segment_name), "/tokend-unit-%d", (int)getpid());
    RUN(test_push_peek_release_in_order);
    RUN(test_full_ring_refuses_after_wait);
    RUN(test_many_producers_exactly_once_in_order);
    RUN(test_dead_producer_is_skipped);
    RUN(test_stalled_producer_is_given_up_and_its_publish_refused);
    RUN(test_segment_layout_and_ownership);
    shm_segment_unlink(segment_name);
    return unit_test_finish();
}
