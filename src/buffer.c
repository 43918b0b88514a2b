/*
 * buffer.c - growable byte buffer with sticky failure.
 *
 * Capacity grows by doubling; a failed growth sets `failed` and leaves the
 * content as it was, and every later append is ignored, so builders append
 * freely and check once. data is kept NUL-terminated for convenience.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokend/base64.h"
#include "tokend/buffer.h"

void buffer_init(struct buffer *buf)
{
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    buf->failed = false;
}

void buffer_reset(struct buffer *buf)
{
    buf->len = 0;
    buf->failed = false;
    if (buf->data != NULL) {
        buf->data[0] = '\0';
    }
}

void buffer_free(struct buffer *buf)
{
    free(buf->data);
    buffer_init(buf);
}

/* Makes room for `extra` more bytes plus a NUL. False on failure. */
static bool buffer_reserve(struct buffer *buf, size_t extra)
{
    if (buf->failed) {
        return false;
    }
    if (extra > SIZE_MAX / 2 - buf->len) {
        buf->failed = true;
        return false;
    }
    size_t need = buf->len + extra + 1;
    if (need <= buf->cap) {
        return true;
    }
    size_t cap = buf->cap < 256 ? 256 : buf->cap;
    while (cap < need) {
        cap *= 2;
    }
    char *data = realloc(buf->data, cap);
    if (data == NULL) {
        buf->failed = true;
        return false;
    }
    buf->data = data;
    buf->cap = cap;
    return true;
}

void buffer_append(struct buffer *buf, const void *data, size_t len)
{
    if (!buffer_reserve(buf, len)) {
        return;
    }
    if (len > 0) {
        memcpy(buf->data + buf->len, data, len);
    }
    buf->len += len;
    buf->data[buf->len] = '\0';
}

void buffer_append_str(struct buffer *buf, const char *text)
{
    buffer_append(buf, text, strlen(text));
}

void buffer_printf(struct buffer *buf, const char *fmt, ...)
{
    if (buf->failed) {
        return;
    }
    va_list args;
    va_start(args, fmt);
    char small[256];
    int needed = vsnprintf(small, sizeof(small), fmt, args);
    va_end(args);
    if (needed < 0) {
        buf->failed = true;
        return;
    }
    if ((size_t)needed < sizeof(small)) {
        buffer_append(buf, small, (size_t)needed);
        return;
    }
    if (!buffer_reserve(buf, (size_t)needed)) {
        return;
    }
    va_start(args, fmt);
    vsnprintf(buf->data + buf->len, (size_t)needed + 1, fmt, args);
    va_end(args);
    buf->len += (size_t)needed;
}

void buffer_append_json_string(struct buffer *buf, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    buffer_append(buf, "\"", 1);
    const char *run = text;
    for (const char *p = text; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        buffer_append(buf, run, (size_t)(p - run));
        char escape[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            escape[1] = (char)c;
            buffer_append(buf, escape, 2);
        } else if (c == '\n') {
            buffer_append(buf, "\\n", 2);
        } else {
            buffer_append(buf, escape, sizeof(escape));
        }
        run = p + 1;
    }
    buffer_append_str(buf, run);
    buffer_append(buf, "\"", 1);
}

void buffer_append_base64url(struct buffer *buf, const uint8_t *data, size_t len)
{
    size_t room = BASE64URL_ENCODED_SIZE(len);
    if (!buffer_reserve(buf, room)) {
        return;
    }
    int written = base64url_encode(data, len, buf->data + buf->len, room + 1);
    if (written < 0) {
        buf->failed = true;
        return;
    }
    buf->len += (size_t)written;
}
