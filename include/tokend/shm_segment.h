/*
 * shm_segment.h - the instance's POSIX shared-memory segment.
 *
 * One segment per tokend instance, named by the `shm_name` setting
 * (/dev/shm/<name> on Linux), mode 0600. Layout (version 1):
 *
 *   [ header | token queue (control + slots) ]
 *
 * The header records the magic, layout version, record and slot sizes, the
 * queue capacity and total size it was made with, and the creator's pid.
 * Attaching to a segment made with different sizes or another layout is an
 * error naming the segment; it is never reused silently.
 *
 * The owner (the master, or `tokend --flusher`) holds an exclusive flock on
 * the segment for as long as it and its children live, so a second instance
 * cannot take over a live segment, while a segment left by a crashed
 * instance (no lock holder) is re-attached with its queue intact.
 */
#ifndef TOKEND_SHM_SEGMENT_H
#define TOKEND_SHM_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tokend/admin_events.h"
#include "tokend/instance_stats.h"
#include "tokend/token_queue.h"

#define SHM_SEGMENT_MAGIC          UINT64_C(0x31514e454b4f5424) /* "$TOKENQ1" */
#define SHM_SEGMENT_LAYOUT_VERSION 3
#define SHM_SEGMENT_NAME_MAX       200

struct shm_segment_header {
    _Atomic uint64_t magic; /* written last when formatting */
    uint32_t layout_version;
    uint32_t header_size;
    uint32_t record_size;
    uint32_t slot_size;
    uint64_t queue_capacity;
    uint64_t segment_size;
    int32_t creator_pid;
    uint32_t reserved;
    int64_t created_at_s;
};

struct shm_segment {
    char name[SHM_SEGMENT_NAME_MAX + 1];
    int fd;
    void *base;
    size_t size;
    struct shm_segment_header *header;
    struct token_queue queue;
    struct stats_region *stats;      /* per-process counters, after the queue */
    struct admin_event_ring *events; /* admin events, after the stats */
    bool created;                    /* this open formatted a new segment */
};

/* What opening found, for the caller to log. */
enum shm_segment_mode {
    SHM_SEGMENT_OWN,    /* create or re-attach, and hold the owner lock */
    SHM_SEGMENT_ATTACH, /* attach to an existing segment (mod_fcgid workers) */
};

/* True for a valid name: "/" followed by 1..199 of [A-Za-z0-9._-].
 * Inline so the configuration parser can check names without linking the
 * segment code. Cannot fail. */
static inline bool shm_segment_name_valid(const char *name)
{
    size_t len = 0;
    if (name[0] != '/') {
        return false;
    }
    for (const char *p = name + 1; *p != '\0'; p++, len++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return len >= 1 && len <= SHM_SEGMENT_NAME_MAX - 1;
}

/* The segment name used when shm_name is "": "/tokend." followed by the
 * `listen` setting with every character outside [A-Za-z0-9._-] replaced by
 * '_' (a long one is cut and ends in a hash of the whole), so instances
 * with different sockets never share a segment while a restarted instance
 * finds its own again. Cannot fail. */
void shm_segment_name_for_listen(const char *listen, char out[SHM_SEGMENT_NAME_MAX + 1]);

/* Opens the segment `name` for a queue of `queue_capacity` slots. OWN
 * creates it (shm_open O_CREAT, mode 0600, the whole size reserved with
 * posix_fallocate so a full /dev/shm fails here and not later with SIGBUS)
 * or re-attaches a leftover one, and takes the owner lock: another live
 * owner is an error. ATTACH requires an existing, fully formatted segment.
 * Any layout or size mismatch is an error. Returns TK_OK, or TK_INVALID /
 * TK_ERROR with `error` naming the segment; nothing stays open on failure.
 */
int shm_segment_open(struct shm_segment *segment, const char *name, uint64_t queue_capacity,
                     enum shm_segment_mode mode, char *error, size_t error_size);

/* Unmaps and closes (releasing the owner lock if held by this process and
 * no child still has it). Cannot fail. */
void shm_segment_close(struct shm_segment *segment);

/* Removes the segment's name; mappings stay valid. Returns TK_OK or
 * TK_ERROR (errno set). */
int shm_segment_unlink(const char *name);

#endif
