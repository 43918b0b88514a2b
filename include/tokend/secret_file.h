/*
 * secret_file.h - writing a new file that holds a secret (a generated key
 * or admin token): created with O_EXCL and mode 0600, synced, removed
 * again if writing fails.
 */
#ifndef TOKEND_SECRET_FILE_H
#define TOKEND_SECRET_FILE_H

#include <stddef.h>

/* Writes `len` bytes of `data` to a new file at `path` with mode 0600.
 * Never replaces anything (a symlink included). TK_OK, or TK_ERROR with
 * `error` naming the path and the reason; nothing is left behind then. */
int secret_file_create(const char *path, const void *data, size_t len, char *error,
                       size_t error_size);

#endif
