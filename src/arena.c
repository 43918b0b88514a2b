/*
 * arena.c - bump allocator for everything one request needs.
 *
 * Blocks form a singly linked list; arena_reset rewinds every block but keeps
 * them, so after the first few requests a worker's arena serves from memory
 * it already owns. A request larger than the block size gets a dedicated
 * block of its own size, appended after the current one and also kept.
 * Invariant: `current` is NULL or a block in the list; every block before it
 * is full as far as this request is concerned.
 */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokend/arena.h"

struct arena_block {
    struct arena_block *next;
    size_t size; /* usable bytes in data[] */
    size_t used;
    alignas(max_align_t) unsigned char data[];
};

void arena_init(struct arena *arena, size_t block_size)
{
    arena->first = NULL;
    arena->current = NULL;
    arena->block_size = block_size < 256 ? 256 : block_size;
}

static size_t align_up(size_t size)
{
    const size_t align = alignof(max_align_t);
    return (size + align - 1) & ~(align - 1);
}

static struct arena_block *block_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(struct arena_block)) {
        return NULL;
    }
    struct arena_block *block = malloc(sizeof(*block) + size);
    if (block == NULL) {
        return NULL;
    }
    block->next = NULL;
    block->size = size;
    block->used = 0;
    return block;
}

void *arena_alloc(struct arena *arena, size_t size)
{
    if (size > SIZE_MAX / 2) {
        return NULL;
    }
    size = align_up(size == 0 ? 1 : size);
    struct arena_block *block = arena->current;
    /* Walk forward through kept blocks for one with room. */
    while (block != NULL && block->size - block->used < size) {
        if (block->next == NULL) {
            break;
        }
        block = block->next;
        block->used = 0;
    }
    if (block == NULL || block->size - block->used < size) {
        struct arena_block *fresh = block_new(size > arena->block_size ? size : arena->block_size);
        if (fresh == NULL) {
            return NULL;
        }
        if (block == NULL) {
            fresh->next = arena->first;
            arena->first = fresh;
        } else {
            fresh->next = block->next;
            block->next = fresh;
        }
        block = fresh;
    }
    arena->current = block;
    void *result = block->data + block->used;
    block->used += size;
    return result;
}

char *arena_strndup(struct arena *arena, const char *text, size_t len)
{
    char *copy = arena_alloc(arena, len + 1);
    if (copy == NULL) {
        return NULL;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    return copy;
}

void arena_reset(struct arena *arena)
{
    if (arena->first != NULL) {
        arena->first->used = 0;
    }
    arena->current = arena->first;
}

void arena_free(struct arena *arena)
{
    struct arena_block *block = arena->first;
    while (block != NULL) {
        struct arena_block *next = block->next;
        free(block);
        block = next;
    }
    arena->first = NULL;
    arena->current = NULL;
}
