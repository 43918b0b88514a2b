/*
 * secret_file.c - creating a file that holds a secret.
 *
 * O_EXCL: an existing file, or a symlink planted at the path, is never
 * written through. The mode is set at creation, so the file is never more
 * open than 0600 (umask can only narrow it). The bytes are fsync'ed before
 * success is reported; a write, sync or close that fails removes the file,
 * so a half-written secret is never left for a server to load.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tokend/secret_file.h"
#include "tokend/status.h"

int secret_file_create(const char *path, const void *data, size_t len, char *error,
                       size_t error_size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        snprintf(error, error_size, "%s: cannot create: %s", path, strerror(errno));
        return TK_ERROR;
    }
    const uint8_t *cursor = data;
    size_t left = len;
    while (left > 0) {
        ssize_t written = write(fd, cursor, left);
        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written <= 0) {
            snprintf(error, error_size, "%s: cannot write: %s", path,
                     written < 0 ? strerror(errno) : "short write");
            goto fail;
        }
        cursor += written;
        left -= (size_t)written;
    }
    if (fsync(fd) != 0) {
        snprintf(error, error_size, "%s: cannot sync: %s", path, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(error, error_size, "%s: cannot close: %s", path, strerror(errno));
        goto fail;
    }
    return TK_OK;
fail:
    if (fd >= 0) {
        close(fd);
    }
    unlink(path);
    return TK_ERROR;
}
