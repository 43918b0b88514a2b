/*
 * buffer.h - a growable byte buffer for building answers, JSON and JWTs.
 *
 * Once an append fails (out of memory) the buffer is marked failed and every
 * later append is a no-op; callers check buffer_failed() once at the end
 * instead of after every append.
 */
#ifndef TOKEND_BUFFER_H
#define TOKEND_BUFFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buffer {
    char *data; /* always NUL-terminated when len > 0 and not failed */
    size_t len;
    size_t cap;
    bool failed;
};

/* Empty buffer, no allocation yet. Cannot fail. */
void buffer_init(struct buffer *buf);
/* Keeps the allocation, empties the content and clears `failed`. */
void buffer_reset(struct buffer *buf);
void buffer_free(struct buffer *buf);

void buffer_append(struct buffer *buf, const void *data, size_t len);
void buffer_append_str(struct buffer *buf, const char *text);
void buffer_printf(struct buffer *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends `text` as a JSON string literal with quotes, escaping ", \ and
 * control characters (bytes >= 0x80 pass through unchanged). */
void buffer_append_json_string(struct buffer *buf, const char *text);
/* Appends the base64url (no padding) encoding of `data`. */
void buffer_append_base64url(struct buffer *buf, const uint8_t *data, size_t len);

static inline bool buffer_failed(const struct buffer *buf)
{
    return buf->failed;
}

#endif
