/*
 * file_read.h - reading a whole small file (the config file, the database
 * password file, key files) into memory, safely: regular files only, a size
 * cap, the permission bits of the very bytes read, and a wipe on free.
 *
 * Every failure is reported as "PATH: reason" with one of these reasons:
 *     cannot read: <strerror>      (open, fstat or read failed)
 *     not a regular file           (directory, FIFO, device, socket)
 *     larger than N bytes          (N = max_bytes)
 *     out of memory
 * Callers that add their own checks on the contents use the same form
 * (e.g. "PATH: contains a NUL byte").
 */
#ifndef TOKEND_FILE_READ_H
#define TOKEND_FILE_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A file's contents. All zero means "nothing read" and is safe to free. */
struct file_contents {
    char *data;  /* len bytes followed by a NUL (not counted); NULL when nothing was read */
    size_t len;  /* bytes of the file; data may hold NUL bytes before data[len] */
    mode_t mode; /* st_mode from fstat on the descriptor the bytes were read from */
    size_t size; /* bytes allocated at data; all of them are wiped by file_read_free */
};

/* Reads the whole file at `path` into `out`: regular files only (opened
 * O_RDONLY|O_CLOEXEC|O_NOCTTY|O_NONBLOCK, so a FIFO or a device can never
 * block the caller; checked with fstat on the same descriptor), at most
 * `max_bytes` bytes (which must be below SIZE_MAX / 2), a NUL appended.
 * out->mode is the st_mode of that descriptor, so a permission check on it
 * concerns exactly the bytes read.
 * Returns TK_OK, TK_INVALID (missing, unreadable, not a regular file,
 * larger than max_bytes; `error` = "PATH: reason" as listed above), or
 * TK_ERROR (out of memory; `error` = "PATH: out of memory"). On failure
 * `out` is all zero and nothing stays allocated; every buffer the bytes
 * passed through has been wiped. */
int file_read_all(const char *path, size_t max_bytes, struct file_contents *out, char *error,
                  size_t error_size);

/* True when the contents hold a NUL byte (before the appended one). Cannot
 * fail; false for a zeroed struct. */
bool file_read_has_nul(const struct file_contents *contents);

/* Drops one trailing "\n" (nothing else: not "\r", not a second "\n") and
 * moves the terminating NUL down. Cannot fail; no-op on a zeroed struct. */
void file_read_strip_newline(struct file_contents *contents);

/* Drops one trailing "\r\n" or, failing that, one trailing "\n", and moves
 * the terminating NUL down. Cannot fail; no-op on a zeroed struct. */
void file_read_strip_line_ending(struct file_contents *contents);

/* Wipes all `size` bytes (OPENSSL_cleanse), frees them and zeroes the
 * struct. Cannot fail; safe on a zeroed struct and when called twice. */
void file_read_free(struct file_contents *contents);

#endif
