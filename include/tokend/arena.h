/*
 * arena.h - a request's allocations come from one arena, freed at once when
 * the request finishes (arena_reset). Blocks are kept between requests, so a
 * steady-state worker allocates nothing from malloc on the hot path.
 */
#ifndef TOKEND_ARENA_H
#define TOKEND_ARENA_H

#include <stddef.h>

struct arena_block;

struct arena {
    struct arena_block *first; /* blocks in allocation order */
    struct arena_block *current;
    size_t block_size;
};

/* Prepares an empty arena whose blocks hold at least block_size bytes.
 * Allocates nothing yet. Cannot fail. */
void arena_init(struct arena *arena, size_t block_size);

/* Returns `size` bytes aligned for any type, or NULL when out of memory
 * (the arena is unchanged then). */
void *arena_alloc(struct arena *arena, size_t size);

/* Copies `len` bytes of `text` plus a NUL. NULL when out of memory. */
char *arena_strndup(struct arena *arena, const char *text, size_t len);

/* Forgets every allocation but keeps the memory for reuse. Cannot fail. */
void arena_reset(struct arena *arena);

/* Returns all memory to malloc. The arena may be arena_init'ed again. */
void arena_free(struct arena *arena);

#endif
