/*
 * test_file_read.c - unit tests of whole-file reading (src/file_read.c).
 *
 * Every failure class is checked with its exact status and "PATH: reason"
 * message and with `out` left all zero: a missing file, a path through a
 * non-directory, a symlink loop, an unreadable file (only when not root,
 * since root reads anything), a directory, a FIFO without a writer (which
 * must not block), a character device, and a file one byte over the limit.
 * Also: the exact limit, a zero limit, the appended NUL, embedded NUL bytes,
 * the mode of the descriptor read, a file whose st_size is 0 but which has
 * content (procfs, when present: the growth path), the two newline
 * strippers, and free on a zeroed, a filled and an already freed struct.
 * Temporary files live in a mkdtemp directory removed at the end.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokend/file_read.h"
#include "tokend/status.h"
#include "unit_test.h"

#define ERR_SIZE 512

static char temp_dir[128];

static const char *in_dir(const char *name)
{
    static char slots[4][256];
    static unsigned next;
    char *slot = slots[next++ % 4];
    snprintf(slot, sizeof(slots[0]), "%s/%s", temp_dir, name);
    return slot;
}

/* Writes `len` bytes to `path` with exactly `mode` (umask notwithstanding). */
static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    if (fd < 0) {
        return;
    }
    CHECK_INT(write(fd, data, len), len);
    CHECK_INT(fchmod(fd, mode), 0);
    CHECK_INT(close(fd), 0);
}

static bool is_zeroed(const struct file_contents *contents)
{
    return contents->data == NULL && contents->len == 0 && contents->mode == 0 &&
           contents->size == 0;
}

/* Reads `path` expecting `rc` and exactly "PATH: reason", with `out` zeroed. */
static void expect_failure(const char *path, size_t max_bytes, int rc, const char *reason)
{
    struct file_contents contents;
    char error[ERR_SIZE] = "";
    char expected[ERR_SIZE];
    memset(&contents, 0xa5, sizeof(contents));
    CHECK_INT(file_read_all(path, max_bytes, &contents, error, sizeof(error)), rc);
    snprintf(expected, sizeof(expected), "%s: %s", path, reason);
    CHECK_STR(error, expected);
    CHECK(is_zeroed(&contents));
    file_read_free(&contents);
}

/* ---- tests ---- */

static void test_reads_whole_file(void)
{
    struct file_contents contents;
    char error[ERR_SIZE] = "untouched";
    const char *path = in_dir("text");
    write_file(path, "hello\nworld", 11, 0640);

    CHECK_INT(file_read_all(path, 1024, &contents, error, sizeof(error)), TK_OK);
    CHECK_STR(error, "untouched");
    CHECK_INT(contents.len, 11);
    CHECK(contents.data != NULL && memcmp(contents.data, "hello\nworld", 11) == 0);
    /* The NUL is appended but not counted. */
    CHECK(contents.data != NULL && contents.data[11] == '\0');
    CHECK_STR(contents.data, "hello\nworld");
    CHECK(contents.size > contents.len);
    /* The mode is that of the file read, type bits included. */
    CHECK(S_ISREG(contents.mode));
    CHECK_INT(contents.mode & 07777, 0640);
    CHECK(!file_read_has_nul(&contents));
    file_read_free(&contents);
    CHECK(is_zeroed(&contents));

    write_file(path, "x", 1, 0600);
    CHECK_INT(file_read_all(path, 1024, &contents, error, sizeof(error)), TK_OK);
    CHECK_INT(contents.mode & 07777, 0600);
    CHECK_STR(contents.data, "x");
    file_read_free(&contents);

    write_file(path, "", 0, 0444);
    CHECK_INT(file_read_all(path, 1024, &contents, error, sizeof(error)), TK_OK);
    CHECK_INT(contents.len, 0);
    CHECK(contents.data != NULL && contents.data[0] == '\0');
    CHECK_INT(contents.mode & 07777, 0444);
    file_read_free(&contents);

    /* A symlink is followed: the bytes and the mode are the target's. */
    write_file(path, "target", 6, 0600);
    CHECK_INT(symlink(path, in_dir("link")), 0);
    CHECK_INT(file_read_all(in_dir("link"), 1024, &contents, error, sizeof(error)), TK_OK);
    CHECK_STR(contents.data, "target");
    CHECK(S_ISREG(contents.mode));
    CHECK_INT(contents.mode & 07777, 0600);
    file_read_free(&contents);
    unlink(in_dir("link"));
    unlink(path);
}

static void test_limit(void)
{
    struct file_contents contents;
    char error[ERR_SIZE] = "";
    char bytes[101];
    memset(bytes, 'b', sizeof(bytes));
    const char *path = in_dir("limit");

    /* Exactly max_bytes is accepted... */
    write_file(path, bytes, 100, 0600);
    CHECK_INT(file_read_all(path, 100, &contents, error, sizeof(error)), TK_OK);
    CHECK_INT(contents.len, 100);
    CHECK(contents.data != NULL && contents.data[100] == '\0');
    CHECK_INT(strspn(contents.data, "b"), 100);
    file_read_free(&contents);

    /* ...one byte more is not. */
    write_file(path, bytes, 101, 0600);
    expect_failure(path, 100, TK_INVALID, "larger than 100 bytes");
    CHECK_INT(file_read_all(path, 101, &contents, error, sizeof(error)), TK_OK);
    CHECK_INT(contents.len, 101);
    file_read_free(&contents);

    /* A zero limit admits only an empty file. */
    write_file(path, "", 0, 0600);
    CHECK_INT(file_read_all(path, 0, &contents, error, sizeof(error)), TK_OK);
    CHECK_INT(contents.len, 0);
    CHECK(contents.data != NULL && contents.data[0] == '\0');
    file_read_free(&contents);
    write_file(path, "z", 1, 0600);
    expect_failure(path, 0, TK_INVALID, "larger than 0 bytes");
    unlink(path);
}

/* procfs files are regular files whose st_size is 0: the buffer starts
 * empty and must grow while the limit still holds. */
static void test_file_longer_than_its_size(void)
{
    const char *path = "/proc/self/status";
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != 0) {
        printf("# skipped: %s is not a size-0 regular file here\n", path);
        return;
    }
    struct file_contents contents;
    char error[ERR_SIZE] = "";
    CHECK_INT(file_read_all(path, 1024 * 1024, &contents, error, sizeof(error)), TK_OK);
    CHECK(contents.len > 16);
    CHECK(contents.data != NULL && strncmp(contents.data, "Name:", 5) == 0);
    CHECK(contents.data != NULL && strlen(contents.data) == contents.len);
    CHECK(contents.size > contents.len);
    file_read_free(&contents);

    expect_failure(path, 16, TK_INVALID, "larger than 16 bytes");
}

static void test_nul_bytes(void)
{
    struct file_contents contents;
    char error[ERR_SIZE] = "";
    const char *path = in_dir("nul");

    write_file(path, "a\0b", 3, 0600);
    CHECK_INT(file_read_all(path, 3, &contents, error, sizeof(error)), TK_OK);
    CHECK_INT(contents.len, 3);
    CHECK(contents.data != NULL && memcmp(contents.data, "a\0b", 4) == 0);
    CHECK(file_read_has_nul(&contents));
    file_read_free(&contents);

    write_file(path, "ab\0", 3, 0600);
    CHECK_INT(file_read_all(path, 3, &contents, error, sizeof(error)), TK_OK);
    CHECK(file_read_has_nul(&contents));
    file_read_free(&contents);

    /* The appended NUL does not count. */
    write_file(path, "abc", 3, 0600);
    CHECK_INT(file_read_all(path, 3, &contents, error, sizeof(error)), TK_OK);
    CHECK(!file_read_has_nul(&contents));
    file_read_free(&contents);

    memset(&contents, 0, sizeof(contents));
    CHECK(!file_read_has_nul(&contents));
    unlink(path);
}

static void test_failures(void)
{
    expect_failure(in_dir("missing"), 100, TK_INVALID, "cannot read: No such file or directory");

    write_file(in_dir("plain"), "p", 1, 0600);
    expect_failure(in_dir("plain/child"), 100, TK_INVALID, "cannot read: Not a directory");

    CHECK_INT(symlink("loop", in_dir("loop")), 0);
    expect_failure(in_dir("loop"), 100, TK_INVALID,
                   "cannot read: Too many levels of symbolic links");
    unlink(in_dir("loop"));

    if (geteuid() != 0) {
        write_file(in_dir("secret"), "s", 1, 0000);
        expect_failure(in_dir("secret"), 100, TK_INVALID, "cannot read: Permission denied");
        unlink(in_dir("secret"));
    } else {
        printf("# skipped: permission denied (running as root)\n");
    }

    expect_failure(temp_dir, 100, TK_INVALID, "not a regular file");
    expect_failure("/dev/null", 100, TK_INVALID, "not a regular file");

    /* A FIFO without a writer: refused at once rather than waited on, also
     * through a symlink. */
    CHECK_INT(mkfifo(in_dir("fifo"), 0600), 0);
    expect_failure(in_dir("fifo"), 100, TK_INVALID, "not a regular file");
    CHECK_INT(symlink(in_dir("fifo"), in_dir("fifo-link")), 0);
    expect_failure(in_dir("fifo-link"), 100, TK_INVALID, "not a regular file");
    unlink(in_dir("fifo-link"));
    unlink(in_dir("fifo"));

    /* A file fstat already shows over the limit is refused before any read. */
    write_file(in_dir("plain"), "0123456789", 10, 0600);
    expect_failure(in_dir("plain"), 9, TK_INVALID, "larger than 9 bytes");
    unlink(in_dir("plain"));

    /* A short error buffer gets the message truncated, still terminated. */
    struct file_contents contents;
    char small[8];
    CHECK_INT(file_read_all("/nonexistent/x", 1, &contents, small, sizeof(small)), TK_INVALID);
    CHECK_STR(small, "/nonexi");
    CHECK(is_zeroed(&contents));
}

/* Reads `text` from a file, applies `strip` and expects `want` (`want_len`
 * bytes, NUL-terminated right after). */
static void expect_strip(void (*strip)(struct file_contents *), const char *text, const char *want,
                         size_t want_len)
{
    struct file_contents contents;
    char error[ERR_SIZE] = "";
    const char *path = in_dir("strip");
    write_file(path, text, strlen(text), 0600);
    CHECK_INT(file_read_all(path, 64, &contents, error, sizeof(error)), TK_OK);
    strip(&contents);
    CHECK_INT(contents.len, want_len);
    CHECK(contents.data != NULL && contents.data[contents.len] == '\0');
    CHECK_STR(contents.data, want);
    file_read_free(&contents);
    unlink(path);
}

static void test_strip(void)
{
    /* One "\n" only. */
    expect_strip(file_read_strip_newline, "", "", 0);
    expect_strip(file_read_strip_newline, "\n", "", 0);
    expect_strip(file_read_strip_newline, "a", "a", 1);
    expect_strip(file_read_strip_newline, "a\n", "a", 1);
    expect_strip(file_read_strip_newline, "a\n\n", "a\n", 2);
    expect_strip(file_read_strip_newline, "a\r\n", "a\r", 2);
    expect_strip(file_read_strip_newline, "a\r", "a\r", 2);
    expect_strip(file_read_strip_newline, "a \n", "a ", 2);

    /* One "\r\n", else one "\n". */
    expect_strip(file_read_strip_line_ending, "", "", 0);
    expect_strip(file_read_strip_line_ending, "\n", "", 0);
    expect_strip(file_read_strip_line_ending, "\r\n", "", 0);
    expect_strip(file_read_strip_line_ending, "a", "a", 1);
    expect_strip(file_read_strip_line_ending, "a\n", "a", 1);
    expect_strip(file_read_strip_line_ending, "a\r\n", "a", 1);
    expect_strip(file_read_strip_line_ending, "a\r", "a\r", 2);
    expect_strip(file_read_strip_line_ending, "a\n\n", "a\n", 2);
    expect_strip(file_read_strip_line_ending, "a\r\r\n", "a\r", 2);
    expect_strip(file_read_strip_line_ending, "a\n\r\n", "a\n", 2);
    expect_strip(file_read_strip_line_ending, "a\r\n\n", "a\r\n", 3);

    /* Nothing to do on a zeroed struct. */
    struct file_contents contents;
    memset(&contents, 0, sizeof(contents));
    file_read_strip_newline(&contents);
    file_read_strip_line_ending(&contents);
    CHECK(is_zeroed(&contents));
}

static void test_free(void)
{
    struct file_contents contents;
    memset(&contents, 0, sizeof(contents));
    file_read_free(&contents);
    CHECK(is_zeroed(&contents));

    char error[ERR_SIZE] = "";
    write_file(in_dir("free"), "secret\n", 7, 0600);
    CHECK_INT(file_read_all(in_dir("free"), 64, &contents, error, sizeof(error)), TK_OK);
    CHECK(!is_zeroed(&contents));
    file_read_free(&contents);
    CHECK(is_zeroed(&contents));
    /* Twice is harmless: the first call zeroed the struct. */
    file_read_free(&contents);
    CHECK(is_zeroed(&contents));
    unlink(in_dir("free"));
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(temp_dir, sizeof(temp_dir), "%s/test_file_read.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(temp_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    /* A read that blocks (a FIFO opened without O_NONBLOCK) fails the run
     * instead of hanging it. */
    alarm(60);
    RUN(test_reads_whole_file);
    RUN(test_limit);
    RUN(test_file_longer_than_its_size);
    RUN(test_nul_bytes);
    RUN(test_failures);
    RUN(test_strip);
    RUN(test_free);
    rmdir(temp_dir);
    return unit_test_finish();
}
