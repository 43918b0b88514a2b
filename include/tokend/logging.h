/*
 * logging.h - one line per event on stderr: time, program, pid, level, text.
 *
 *   2026-11-23T01:30:00Z tokend[1234] error: worker 1240 killed by signal 9
 *
 * Never pass a secret, a token or a password to these functions.
 */
#ifndef TOKEND_LOGGING_H
#define TOKEND_LOGGING_H

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Sets the program name shown in each line (default "tokend"). Cannot fail. */
void log_set_program(const char *name);

/* Lines below `level` are dropped. Cannot fail. */
void log_set_level(enum log_level level);

/* Parses "debug", "info", "warn", "error". Returns TK_OK or TK_INVALID. */
int log_level_parse(const char *text, enum log_level *out);

/* Writes one line with a single write(2) so lines of processes sharing
 * stderr never interleave. Cannot fail (a failed write is ignored). */
void log_message(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_message(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_message(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_message(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_message(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
