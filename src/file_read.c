/*
 * file_read.c - reads one whole small file into memory for the config
 * loader and the key loaders, so the checks every such read needs are
 * written once.
 *
 * Why each check:
 *   - Regular files only, tested with fstat on the descriptor that is then
 *     read (not stat on the path): what is checked is what is read, with no
 *     window for the path to be swapped in between. The same goes for the
 *     mode handed back, which the key loaders check for 0600.
 *   - O_NONBLOCK: opening a FIFO without a writer would otherwise block
 *     start-up forever before the regular-file check could refuse it. It
 *     changes nothing for a regular file. O_NOCTTY: a terminal named by
 *     mistake never becomes the controlling terminal.
 *   - A cap: a file larger than st_size says is refused early; the read
 *     itself also stops one byte past the cap, because a file can grow while
 *     it is read and some regular files (procfs) report size 0.
 *
 * Invariants: on success data[len] == '\0' and len <= max_bytes; size is the
 * allocation at data, len + 1 <= size. The buffer starts at the size fstat
 * reports (plus the byte that detects growth and the NUL) and, only if the
 * file turns out longer, doubles up to max_bytes + 2. A grown buffer is
 * copied by hand, never realloc'ed, so the old one can be wiped first:
 * files read here hold passwords, private keys and database URLs.
 *
 * Ownership: the caller owns out->data and releases it with
 * file_read_free(), which wipes all `size` bytes. Failure: `out` is zeroed,
 * every intermediate buffer wiped and freed, the descriptor closed, and
 * `error` says "PATH: reason".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "tokend/file_read.h"
#include "tokend/status.h"

/* Wipes and frees `size` bytes at `data` (NULL allowed). */
static void wipe_free(char *data, size_t size)
{
    if (data != NULL) {
        OPENSSL_cleanse(data, size);
        free(data);
    }
}

int file_read_all(const char *path, size_t max_bytes, struct file_contents *out, char *error,
                  size_t error_size)
{
    int rc = TK_INVALID;
    char *data = NULL;
    size_t size = 0;
    size_t len = 0;
    /* The largest buffer needed: max_bytes, one byte to notice more, the NUL. */
    const size_t size_limit = max_bytes + 2;

    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(error, error_size, "%s: cannot read: %s", path, strerror(errno));
        goto done;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(error, error_size, "%s: cannot read: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(error, error_size, "%s: not a regular file", path);
        goto done;
    }
    if (st.st_size < 0 || (uintmax_t)st.st_size > max_bytes) {
        snprintf(error, error_size, "%s: larger than %zu bytes", path, max_bytes);
        goto done;
    }
    size = (size_t)st.st_size + 2;
    data = malloc(size);
    if (data == NULL) {
        snprintf(error, error_size, "%s: out of memory", path);
        rc = TK_ERROR;
        goto done;
    }
    for (;;) {
        if (len + 1 == size) { /* full but for the NUL */
            if (len > max_bytes) {
                snprintf(error, error_size, "%s: larger than %zu bytes", path, max_bytes);
                goto done;
            }
            size_t bigger_size = size <= size_limit / 2 ? size * 2 : size_limit;
            char *bigger = malloc(bigger_size);
            if (bigger == NULL) {
                snprintf(error, error_size, "%s: out of memory", path);
                rc = TK_ERROR;
                goto done;
            }
            memcpy(bigger, data, len);
            wipe_free(data, size);
            data = bigger;
            size = bigger_size;
        }
        ssize_t got = read(fd, data + len, size - 1 - len);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            snprintf(error, error_size, "%s: cannot read: %s", path, strerror(errno));
            goto done;
        }
        if (got == 0) {
            break;
        }
        len += (size_t)got;
    }
    /* The loop ends only on EOF with room to spare, so len <= max_bytes. */
    data[len] = '\0';
    out->data = data;
    out->len = len;
    out->mode = st.st_mode;
    out->size = size;
    data = NULL;
    rc = TK_OK;
done:
    wipe_free(data, size);
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

bool file_read_has_nul(const struct file_contents *contents)
{
    return contents->data != NULL && memchr(contents->data, '\0', contents->len) != NULL;
}

void file_read_strip_newline(struct file_contents *contents)
{
    if (contents->len > 0 && contents->data[contents->len - 1] == '\n') {
        contents->len--;
        contents->data[contents->len] = '\0';
    }
}

void file_read_strip_line_ending(struct file_contents *contents)
{
    if (contents->len > 0 && contents->data[contents->len - 1] == '\n') {
        contents->len--;
        if (contents->len > 0 && contents->data[contents->len - 1] == '\r') {
            contents->len--;
        }
        contents->data[contents->len] = '\0';
    }
}

void file_read_free(struct file_contents *contents)
{
    wipe_free(contents->data, contents->size);
    memset(contents, 0, sizeof(*contents));
}
