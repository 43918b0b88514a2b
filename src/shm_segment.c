/*
 * shm_segment.c - creating, re-attaching and checking the shared segment.
 *
 * Creation order matters because another process may attach at any time:
 * the file is sized and reserved, every region formatted, and only then is
 * the header's magic stored with release ordering. Layout (each region
 * 64-byte aligned): header | token queue | per-process stats slots
 * (instance_stats.h) | admin event ring (admin_events.h). An attacher that reads
 * the magic with acquire ordering therefore sees a complete segment, and a
 * half-made one (its creator died while formatting) has no magic and is
 * re-formatted by the next owner, which is safe because it holds no record.
 *
 * Ownership: the owner holds flock(LOCK_EX) on the descriptor. flock locks
 * belong to the open file description, which fork shares, so the lock
 * lasts while the master or any of its children is alive, and vanishes by
 * itself when they are all gone, however they died. The master is the
 * only process that creates or unlinks; it does not use the queue itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tokend/shm_segment.h"
#include "tokend/status.h"

static size_t header_region_size(void)
{
    return (sizeof(struct shm_segment_header) + 63) & ~(size_t)63;
}

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* Layout: header | token queue | stats region | admin event ring. */
static size_t stats_offset_for(uint64_t capacity)
{
    return header_region_size() + align64(token_queue_region_size(capacity));
}

static size_t events_offset_for(uint64_t capacity)
{
    return stats_offset_for(capacity) + align64(sizeof(struct stats_region));
}

static size_t segment_size_for(uint64_t capacity)
{
    return events_offset_for(capacity) + align64(sizeof(struct admin_event_ring));
}

void shm_segment_name_for_listen(const char *listen, char out[SHM_SEGMENT_NAME_MAX + 1])
{
    static const char prefix[] = "/tokend.";
    const size_t keep = 120;                       /* characters of `listen` kept before hashing */
    uint64_t hash = UINT64_C(1469598103934665603); /* FNV-1a: naming, not security */
    size_t len = strlen(listen);
    for (size_t i = 0; i < len; i++) {
        hash = (hash ^ (unsigned char)listen[i]) * UINT64_C(1099511628211);
    }
    size_t at = sizeof(prefix) - 1;
    memcpy(out, prefix, at);
    for (size_t i = 0; i < len && i < keep; i++) {
        char c = listen[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '_' || c == '-';
        out[at++] = plain ? c : '_';
    }
    if (len > keep) {
        at += (size_t)snprintf(out + at, SHM_SEGMENT_NAME_MAX + 1 - at, "-%016llx",
                               (unsigned long long)hash);
    }
    out[at] = '\0';
}

static void format_segment(struct shm_segment *segment, uint64_t capacity)
{
    struct shm_segment_header *header = segment->header;
    header->layout_version = SHM_SEGMENT_LAYOUT_VERSION;
    header->header_size = sizeof(*header);
    header->record_size = sizeof(struct token_record);
    header->slot_size = sizeof(struct token_queue_slot);
    header->queue_capacity = capacity;
    header->segment_size = segment->size;
    header->creator_pid = (int32_t)getpid();
    header->created_at_s = (int64_t)time(NULL);
    token_queue_format((char *)segment->base + header_region_size(), capacity);
    stats_region_format(
        (struct stats_region *)((char *)segment->base + stats_offset_for(capacity)));
    admin_event_ring_format(
        (struct admin_event_ring *)((char *)segment->base + events_offset_for(capacity)));
    atomic_store_explicit(&header->magic, SHM_SEGMENT_MAGIC, memory_order_release);
}

/* Checks a formatted header against what this build and config expect. */
static int check_layout(const struct shm_segment *segment, uint64_t capacity, char *error,
                        size_t error_size)
{
    const struct shm_segment_header *header = segment->header;
    if (header->layout_version != SHM_SEGMENT_LAYOUT_VERSION ||
        header->header_size != sizeof(*header) ||
        header->record_size != sizeof(struct token_record) ||
        header->slot_size != sizeof(struct token_queue_slot) ||
        header->queue_capacity != capacity || header->segment_size != segment->size) {
        snprintf(error, error_size,
                 "shared memory segment %s was made by pid %d with layout %u, queue_capacity "
                 "%llu, %llu bytes; this tokend needs layout %u, queue_capacity %llu, %zu bytes. "
                 "Use the same queue_capacity and version as the instance that made it (its "
                 "queued tokens are not flushed yet), or another shm_name",
                 segment->name, (int)header->creator_pid, header->layout_version,
                 (unsigned long long)header->queue_capacity,
                 (unsigned long long)header->segment_size, SHM_SEGMENT_LAYOUT_VERSION,
                 (unsigned long long)capacity, segment->size);
        return TK_INVALID;
    }
    return TK_OK;
}

int shm_segment_open(struct shm_segment *segment, const char *name, uint64_t queue_capacity,
                     enum shm_segment_mode mode, char *error, size_t error_size)
{
    memset(segment, 0, sizeof(*segment));
    segment->fd = -1;
    segment->base = MAP_FAILED;
    if (!shm_segment_name_valid(name)) {
        snprintf(error, error_size, "shm_name '%s' must be '/' and 1 to 199 of [A-Za-z0-9._-]",
                 name);
        return TK_INVALID;
    }
    if (!token_queue_capacity_valid(queue_capacity)) {
        snprintf(error, error_size, "queue_capacity %llu is not a power of two in [%u, %u]",
                 (unsigned long long)queue_capacity, TOKEN_QUEUE_MIN_CAPACITY,
                 TOKEN_QUEUE_MAX_CAPACITY);
        return TK_INVALID;
    }
    snprintf(segment->name, sizeof(segment->name), "%s", name);
    segment->size = segment_size_for(queue_capacity);
    int rc = TK_ERROR;
    int flags = O_RDWR | O_CLOEXEC | (mode == SHM_SEGMENT_OWN ? O_CREAT : 0);
    segment->fd = shm_open(name, flags, 0600);
    if (segment->fd < 0) {
        snprintf(error, error_size, "shared memory segment %s: %s%s", name, strerror(errno),
                 mode == SHM_SEGMENT_ATTACH && errno == ENOENT
                     ? " (start `tokend --flusher`, which creates it, first)"
                     : "");
        goto fail;
    }
    if (mode == SHM_SEGMENT_OWN && flock(segment->fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(error, error_size,
                 "shared memory segment %s is in use by another running tokend (shm_name must "
                 "differ between instances on one host)",
                 name);
        rc = TK_INVALID;
        goto fail;
    }
    struct stat st;
    if (fstat(segment->fd, &st) != 0) {
        snprintf(error, error_size, "shared memory segment %s: %s", name, strerror(errno));
        goto fail;
    }
    bool fresh = st.st_size == 0;
    if (mode == SHM_SEGMENT_OWN && fresh) {
        int err = posix_fallocate(segment->fd, 0, (off_t)segment->size);
        if (err != 0) {
            snprintf(error, error_size,
                     "shared memory segment %s: cannot reserve %zu bytes: %s (lower "
                     "queue_capacity or enlarge /dev/shm)",
                     name, segment->size, strerror(err));
            shm_unlink(name);
            goto fail;
        }
    } else if ((size_t)st.st_size != segment->size) {
        snprintf(error, error_size,
                 "shared memory segment %s has %lld bytes; this tokend needs %zu for "
                 "queue_capacity %llu (use the queue_capacity of the instance that made it, or "
                 "another shm_name)",
                 name, (long long)st.st_size, segment->size, (unsigned long long)queue_capacity);
        rc = TK_INVALID;
        goto fail;
    }
    segment->base = mmap(NULL, segment->size, PROT_READ | PROT_WRITE, MAP_SHARED, segment->fd, 0);
    if (segment->base == MAP_FAILED) {
        snprintf(error, error_size, "shared memory segment %s: mmap: %s", name, strerror(errno));
        goto fail;
    }
    segment->header = segment->base;
    uint64_t magic = atomic_load_explicit(&segment->header->magic, memory_order_acquire);
    if (magic == 0 && mode == SHM_SEGMENT_OWN) {
        /* New, or its creator died while formatting (no record in it yet). */
        format_segment(segment, queue_capacity);
        segment->created = true;
    } else if (magic != SHM_SEGMENT_MAGIC) {
        snprintf(error, error_size, "shared memory segment %s is not a tokend segment%s", name,
                 magic == 0 ? " (not formatted yet)" : "");
        rc = TK_INVALID;
        goto fail;
    } else if (check_layout(segment, queue_capacity, error, error_size) != TK_OK) {
        rc = TK_INVALID;
        goto fail;
    }
    token_queue_attach(&segment->queue, (char *)segment->base + header_region_size(),
                       queue_capacity);
    segment->stats =
        (struct stats_region *)((char *)segment->base + stats_offset_for(queue_capacity));
    segment->events =
        (struct admin_event_ring *)((char *)segment->base + events_offset_for(queue_capacity));
    return TK_OK;
fail:
    shm_segment_close(segment);
    return rc;
}

void shm_segment_close(struct shm_segment *segment)
{
    if (segment->base != MAP_FAILED && segment->base != NULL) {
        munmap(segment->base, segment->size);
    }
    if (segment->fd >= 0) {
        close(segment->fd);
    }
    segment->base = MAP_FAILED;
    segment->header = NULL;
    segment->fd = -1;
}

int shm_segment_unlink(const char *name)
{
    return shm_unlink(name) == 0 ? TK_OK : TK_ERROR;
}
