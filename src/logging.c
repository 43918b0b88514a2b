/*
 * logging.c - one line per event on stderr.
 *
 * Each line is formatted into a stack buffer and written with one write(2),
 * so the master, workers and flusher can share stderr (a terminal, a
 * journald stream, a file) without lines interleaving. Lines longer than the
 * buffer are cut and end in "...". Newlines inside a message are replaced by
 * spaces so one event is always one line. Logging never fails the caller.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "tokend/logging.h"
#include "tokend/status.h"

static const char *log_program = "tokend";
static enum log_level log_threshold = LOG_LEVEL_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_program(const char *name)
{
    log_program = name;
}

void log_set_level(enum log_level level)
{
    log_threshold = level;
}

int log_level_parse(const char *text, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return TK_OK;
        }
    }
    return TK_INVALID;
}

void log_message(enum log_level level, const char *fmt, ...)
{
    if (level < log_threshold) {
        return;
    }
    char line[1024];
    struct timespec now;
    struct tm utc;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &utc);
    int prefix = snprintf(line, sizeof(line),
                          "%04d-%02d-%02dT%02d:%02d:%02dZ %s[%d] %s: ", utc.tm_year + 1900,
                          utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                          log_program, (int)getpid(), level_names[level]);
    if (prefix < 0) {
        return;
    }
    size_t len = (size_t)prefix;
    va_list args;
    va_start(args, fmt);
    int body = vsnprintf(line + len, sizeof(line) - len - 1, fmt, args);
    va_end(args);
    if (body < 0) {
        return;
    }
    if ((size_t)body >= sizeof(line) - len - 1) {
        len = sizeof(line) - 5;
        memcpy(line + len, "...", 3);
        len += 3;
    } else {
        len += (size_t)body;
    }
    for (size_t i = (size_t)prefix; i < len; i++) {
        if (line[i] == '\n' || line[i] == '\r') {
            line[i] = ' ';
        }
    }
    line[len++] = '\n';
    ssize_t written = write(STDERR_FILENO, line, len);
    (void)written;
}
