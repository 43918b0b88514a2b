/*
 * config.c - reads tokend's `key = value` configuration file.
 *
 * Every key is one row of `config_keys`: its name, how its value is parsed
 * (string, decimal, octal, duration, log level, secret file), where it is
 * stored in struct tokend_config and the range it must fall in. Adding a key
 * means adding a field, a row here, a test and a paragraph in
 * etc/tokend.conf.example.
 *
 * The text is parsed one line at a time into a stack copy (lines are capped
 * at CONFIG_LINE_MAX bytes); the first problem stops the parse and is
 * reported as "FILE:LINE: key 'K': reason". Messages never repeat a value:
 * database_url may well carry a password. Duplicate keys are detected per
 * call, so one file cannot set a key twice but a second file may override the
 * first.
 *
 * Ownership: every string in the config is a heap copy owned by the config
 * and freed by config_free; a string is replaced by freeing the old copy. The
 * database password is the only secret the config holds: it is read from
 * database_password_file (at most CONFIG_SECRET_FILE_MAX bytes, no NUL byte)
 * and wiped before it is freed, as is every buffer it passed through. Both
 * that file and the config file itself (at most CONFIG_FILE_MAX bytes) are
 * read with file_read_all: regular files only, opened non-blocking so a FIFO
 * or a device can never stall the parse; its "PATH: reason" messages are
 * passed on as they are.
 *
 * Failure: on TK_INVALID or TK_ERROR the config may be partly updated but is
 * always consistent enough for config_free; callers discard it.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "tokend/config.h"
#include "tokend/shm_segment.h"
#include "tokend/file_read.h"
#include "tokend/status.h"

#define CONFIG_LINE_MAX        4096
#define CONFIG_FILE_MAX        (1024 * 1024)
#define CONFIG_SECRET_FILE_MAX (64 * 1024)
#define CONFIG_VERIFY_KEYS_MAX 7
#define CONFIG_KID_MAX         64
#define CONFIG_REASON_SIZE     (CONFIG_ERROR_SIZE - 64)

#define MS_PER_S   INT64_C(1000)
#define MS_PER_MIN (60 * MS_PER_S)
#define MS_PER_H   (60 * MS_PER_MIN)
#define MS_PER_D   (24 * MS_PER_H)

enum config_kind {
    KIND_STRING,          /* char *, optionally validated by `check` */
    KIND_INT,             /* int, strict decimal */
    KIND_UINT,            /* unsigned, strict decimal */
    KIND_OCTAL,           /* unsigned, octal digits */
    KIND_DURATION_INT_MS, /* int, milliseconds */
    KIND_DURATION_I64_S,  /* int64_t, whole seconds */
    KIND_LOG_LEVEL,       /* enum log_level */
    KIND_PASSWORD_FILE,   /* file whose content becomes database_password */
};

/* Returns NULL when `value` is acceptable, else the reason it is not. */
typedef const char *(*config_check_fn)(const char *value);

struct config_key {
    const char *name;
    enum config_kind kind;
    size_t offset;
    int64_t min;          /* numbers: the value; durations: milliseconds */
    int64_t max;          /* likewise */
    int64_t bare_unit_ms; /* durations: the unit of a number without suffix */
    config_check_fn check;
};

static const char *check_listen(const char *value);
static const char *check_shm_name(const char *value);
static const char *check_transport(const char *value);
static const char *check_audience(const char *value);
static const char *check_token_typ(const char *value);
static const char *check_signing_alg(const char *value);
static const char *check_kid(const char *value);
static const char *check_verify_key_files(const char *value);
static const char *check_notify_channel(const char *value);
static const char *check_account_name(const char *value);

#define FIELD(name) offsetof(struct tokend_config, name)

static const struct config_key config_keys[] = {
    {"listen", KIND_STRING, FIELD(listen), 0, 0, 0, check_listen},
    {"listen_mode", KIND_OCTAL, FIELD(listen_mode), 0, 0777, 0, NULL},
    {"listen_backlog", KIND_INT, FIELD(listen_backlog), 1, 65535, 0, NULL},
    {"workers", KIND_INT, FIELD(workers), 0, 1024, 0, NULL},
    {"user", KIND_STRING, FIELD(user), 0, 0, 0, check_account_name},
    {"group", KIND_STRING, FIELD(group), 0, 0, 0, check_account_name},
    {"io_timeout_ms", KIND_DURATION_INT_MS, FIELD(io_timeout_ms), 100, MS_PER_H, 1, NULL},
    {"transport", KIND_STRING, FIELD(transport), 0, 0, 0, check_transport},
    {"max_connections", KIND_INT, FIELD(max_connections), 1, 1000000, 0, NULL},
    {"keepalive_timeout_ms", KIND_DURATION_INT_MS, FIELD(keepalive_timeout_ms), 100, MS_PER_H, 1,
     NULL},
    {"read_timeout_ms", KIND_DURATION_INT_MS, FIELD(read_timeout_ms), 100, MS_PER_H, 1, NULL},
    {"max_params_bytes", KIND_INT, FIELD(max_params_bytes), 1024, 1024 * 1024, 0, NULL},
    {"shutdown_timeout", KIND_DURATION_INT_MS, FIELD(shutdown_timeout_ms), MS_PER_S, MS_PER_H,
     MS_PER_S, NULL},
    {"log_level", KIND_LOG_LEVEL, FIELD(log_level), 0, 0, 0, NULL},
    {"issuer", KIND_STRING, FIELD(issuer), 0, 0, 0, NULL},
    {"default_audience", KIND_STRING, FIELD(default_audience), 0, 0, 0, check_audience},
    {"token_ttl", KIND_DURATION_I64_S, FIELD(token_ttl_s), MS_PER_S, MS_PER_D, MS_PER_S, NULL},
    {"token_typ", KIND_STRING, FIELD(token_typ), 0, 0, 0, check_token_typ},
    {"signing_alg", KIND_STRING, FIELD(signing_alg), 0, 0, 0, check_signing_alg},
    {"signing_key_file", KIND_STRING, FIELD(signing_key_file), 0, 0, 0, NULL},
    {"signing_kid", KIND_STRING, FIELD(signing_kid), 0, 0, 0, check_kid},
    {"hmac_key_file", KIND_STRING, FIELD(hmac_key_file), 0, 0, 0, NULL},
    {"verify_key_files", KIND_STRING, FIELD(verify_key_files), 0, 0, 0, check_verify_key_files},
    {"database_url", KIND_STRING, FIELD(database_url), 0, 0, 0, NULL},
    {"database_password_file", KIND_PASSWORD_FILE, FIELD(database_password), 0, 0, 0, NULL},
    {"db_timeout_ms", KIND_DURATION_INT_MS, FIELD(db_timeout_ms), 100, 60 * MS_PER_S, 1, NULL},
    {"db_retry_interval_ms", KIND_DURATION_INT_MS, FIELD(db_retry_interval_ms), 0, 60 * MS_PER_S, 1,
     NULL},
    {"secret_hash_iterations", KIND_UINT, FIELD(secret_hash_iterations), 1000, 10000000, 0, NULL},
    {"shm_name", KIND_STRING, FIELD(shm_name), 0, 0, 0, check_shm_name},
    {"queue_capacity", KIND_INT, FIELD(queue_capacity), TOKEN_QUEUE_MIN_CAPACITY,
     TOKEN_QUEUE_MAX_CAPACITY, 0, NULL},
    {"queue_full_wait_ms", KIND_DURATION_INT_MS, FIELD(queue_full_wait_ms), 0, 10 * MS_PER_S, 1,
     NULL},
    {"flush_batch", KIND_INT, FIELD(flush_batch), 1, 100000, 0, NULL},
    {"flush_interval_ms", KIND_DURATION_INT_MS, FIELD(flush_interval_ms), 10, 60 * MS_PER_S, 1,
     NULL},
    {"token_retention_days", KIND_INT, FIELD(token_retention_days), 1, 3650, 0, NULL},
    {"cache_ttl", KIND_DURATION_I64_S, FIELD(cache_ttl_s), MS_PER_S, MS_PER_D, MS_PER_S, NULL},
    {"cache_negative_ttl", KIND_DURATION_I64_S, FIELD(cache_negative_ttl_s), MS_PER_S, MS_PER_H,
     MS_PER_S, NULL},
    {"cache_max_entries", KIND_INT, FIELD(cache_max_entries), 1, 10000000, 0, NULL},
    {"cache_sweep_interval", KIND_DURATION_I64_S, FIELD(cache_sweep_interval_s), MS_PER_S, MS_PER_H,
     MS_PER_S, NULL},
    {"clock_skew", KIND_DURATION_I64_S, FIELD(clock_skew_s), 0, 10 * MS_PER_MIN, MS_PER_S, NULL},
    {"introspect_cache_ttl", KIND_DURATION_I64_S, FIELD(introspect_cache_ttl_s), MS_PER_S, MS_PER_D,
     MS_PER_S, NULL},
    {"introspect_negative_ttl", KIND_DURATION_I64_S, FIELD(introspect_negative_ttl_s), MS_PER_S,
     MS_PER_H, MS_PER_S, NULL},
    {"introspect_cache_max_entries", KIND_INT, FIELD(introspect_cache_max_entries), 1, 10000000, 0,
     NULL},
    {"admin_token_file", KIND_STRING, FIELD(admin_token_file), 0, 0, 0, NULL},
    {"admin_timeout_ms", KIND_DURATION_INT_MS, FIELD(admin_timeout_ms), 10, 60 * MS_PER_S, 1, NULL},
    {"admin_rate_limit", KIND_INT, FIELD(admin_rate_limit), 1, 100000, 0, NULL},
    {"health_queue_high_water", KIND_INT, FIELD(health_queue_high_water), 1, 100, 0, NULL},
    {"health_db_interval_ms", KIND_DURATION_INT_MS, FIELD(health_db_interval_ms), 1000, MS_PER_H, 1,
     NULL},
    {"notify_channel", KIND_STRING, FIELD(notify_channel), 0, 0, 0, check_notify_channel},
};

#define CONFIG_KEY_COUNT (sizeof(config_keys) / sizeof(config_keys[0]))

/* State of one config_load_text call. */
struct config_parser {
    struct tokend_config *config;
    const char *name;
    size_t line;
    size_t first_line[CONFIG_KEY_COUNT]; /* 0 = key not seen yet */
    char *error;
};

/* ---- helpers ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static char **string_field(struct tokend_config *config, const struct config_key *key)
{
    return (char **)((char *)config + key->offset);
}

/* Replaces *field by a copy of value. Returns TK_OK or TK_ERROR (unchanged). */
static int replace_string(char **field, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL) {
        return TK_ERROR;
    }
    free(*field);
    *field = copy;
    return TK_OK;
}

static void free_password(struct tokend_config *config)
{
    if (config->database_password != NULL) {
        OPENSSL_cleanse(config->database_password, strlen(config->database_password));
        free(config->database_password);
        config->database_password = NULL;
    }
}

/* Strict decimal: one or more digits, nothing else. A value too large for
 * uint64_t saturates to UINT64_MAX so the caller's range check reports it.
 * Returns false on any character that is not a digit. */
static bool parse_decimal(const char *text, uint64_t *out)
{
    uint64_t value = 0;
    if (*text == '\0') {
        return false;
    }
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        unsigned digit = (unsigned)(*p - '0');
        value = value > (UINT64_MAX - digit) / 10 ? UINT64_MAX : value * 10 + digit;
    }
    *out = value;
    return true;
}

/* Same for octal digits. */
static bool parse_octal(const char *text, uint64_t *out)
{
    uint64_t value = 0;
    if (*text == '\0') {
        return false;
    }
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '7') {
            return false;
        }
        value = value > (UINT64_MAX >> 3) ? UINT64_MAX : (value << 3) | (uint64_t)(*p - '0');
    }
    *out = value;
    return true;
}

/* Writes `ms` in its largest whole unit ("1h", "60s" -> "1m", "100ms"). */
static void format_duration(int64_t ms, char *out, size_t size)
{
    static const struct {
        const char *suffix;
        int64_t ms;
    } units[] = {{"d", MS_PER_D}, {"h", MS_PER_H}, {"m", MS_PER_MIN}, {"s", MS_PER_S}};
    if (ms == 0) {
        snprintf(out, size, "0");
        return;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms % units[i].ms == 0) {
            snprintf(out, size, "%" PRId64 "%s", ms / units[i].ms, units[i].suffix);
            return;
        }
    }
    snprintf(out, size, "%" PRId64 "ms", ms);
}

int config_parse_duration_ms(const char *text, int64_t default_unit_ms, int64_t *out_ms)
{
    static const struct {
        const char *suffix;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", MS_PER_S}, {"m", MS_PER_MIN}, {"h", MS_PER_H}, {"d", MS_PER_D}};
    if (text == NULL || default_unit_ms <= 0) {
        return TK_INVALID;
    }
    const char *p = text;
    int64_t value = 0;
    if (*p < '0' || *p > '9') {
        return TK_INVALID;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        int digit = *p - '0';
        if (value > (INT64_MAX - digit) / 10) {
            return TK_INVALID;
        }
        value = value * 10 + digit;
    }
    int64_t unit_ms = 0;
    if (*p == '\0') {
        unit_ms = default_unit_ms;
    } else {
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            if (strcmp(p, units[i].suffix) == 0) {
                unit_ms = units[i].ms;
                break;
            }
        }
        if (unit_ms == 0) {
            return TK_INVALID;
        }
    }
    if (value > INT64_MAX / unit_ms) {
        return TK_INVALID;
    }
    *out_ms = value * unit_ms;
    return TK_OK;
}

/* ---- value checks of string keys ---- */

static const char *check_transport(const char *value)
{
    return strcmp(value, "event") == 0 || strcmp(value, "libfcgi") == 0
               ? NULL
               : "must be event or libfcgi";
}

static const char *check_notify_channel(const char *value)
{
    /* A plain PostgreSQL identifier, so it can go into LISTEN unquoted. */
    size_t len = strlen(value);
    bool ok = len >= 1 && len <= 63 && ((value[0] >= 'a' && value[0] <= 'z') || value[0] == '_');
    for (size_t i = 1; ok && i < len; i++) {
        char c = value[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    }
    return ok ? NULL : "must be 1 to 63 of [a-z0-9_], not starting with a digit";
}

/* A user or group name as useradd/groupadd accept it; "" = not set. */
static const char *check_account_name(const char *value)
{
    size_t len = strlen(value);
    if (len == 0) {
        return NULL;
    }
    if (len > 32 || value[0] == '-' ||
        strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != len) {
        return "expected a user or group name: 1 to 32 of A-Z a-z 0-9 . _ -, not starting with '-'";
    }
    return NULL;
}

static const char *check_audience(const char *value)
{
    /* An issued token's audience must fit its queue record. */
    return strlen(value) < TOKEN_RECORD_AUDIENCE_SIZE ? NULL : "at most 255 bytes";
}

static const char *check_shm_name(const char *value)
{
    return value[0] == '\0' || shm_segment_name_valid(value)
               ? NULL
               : "expected '/' followed by 1 to 199 of A-Z a-z 0-9 . _ -";
}

static const char *check_listen(const char *value)
{
    static const char reason[] = "expected unix:/absolute/path or host:port";
    if (strncmp(value, "unix:", 5) == 0) {
        const char *path = value + 5;
        if (path[0] != '/') {
            return reason;
        }
        if (strlen(path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
            return "unix socket path too long";
        }
        return NULL;
    }
    const char *colon = strrchr(value, ':');
    uint64_t port;
    if (colon == NULL || colon == value || !parse_decimal(colon + 1, &port) || port < 1 ||
        port > 65535) {
        return reason;
    }
    return NULL;
}

static const char *check_token_typ(const char *value)
{
    if (strcmp(value, "at+jwt") == 0 || strcmp(value, "JWT") == 0) {
        return NULL;
    }
    return "must be at+jwt or JWT";
}

static const char *check_signing_alg(const char *value)
{
    if (value[0] == '\0' || strcmp(value, "ES256") == 0 || strcmp(value, "RS256") == 0 ||
        strcmp(value, "HS256") == 0) {
        return NULL;
    }
    return "must be ES256, RS256, HS256 or \"\"";
}

/* "" keeps the default (the key's RFC 7638 thumbprint). */
static const char *check_kid(const char *value)
{
    size_t len = strlen(value);
    if (len > CONFIG_KID_MAX) {
        return "longer than 64 characters";
    }
    if (strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != len) {
        return "may only contain A-Z a-z 0-9 . _ -";
    }
    return NULL;
}

static const char *check_verify_key_files(const char *value)
{
    size_t count = 0;
    const char *p = value;
    for (;;) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        count++;
        while (*p != '\0' && *p != ' ' && *p != '\t') {
            p++;
        }
    }
    if (count > CONFIG_VERIFY_KEYS_MAX) {
        return "at most 7 files";
    }
    return NULL;
}

/* ---- secret file ---- */

/* Reads the password file at `path` into a new string (one trailing newline
 * stripped). Returns TK_OK, TK_INVALID with `reason` ("PATH: why"), or
 * TK_ERROR (out of memory). Every intermediate buffer is wiped. */
static int read_secret_file(const char *path, char **out, char *reason, size_t reason_size)
{
    struct file_contents contents;
    int rc = file_read_all(path, CONFIG_SECRET_FILE_MAX, &contents, reason, reason_size);
    if (rc != TK_OK) {
        goto done;
    }
    rc = TK_INVALID;
    if ((contents.mode & S_IRWXO) != 0) {
        snprintf(reason, reason_size, "%s: readable by others (chmod o-rwx it)", path);
        goto done;
    }
    if (file_read_has_nul(&contents)) {
        snprintf(reason, reason_size, "%s: contains a NUL byte", path);
        goto done;
    }
    file_read_strip_newline(&contents);
    char *secret = malloc(contents.len + 1);
    if (secret == NULL) {
        snprintf(reason, reason_size, "%s: out of memory", path);
        rc = TK_ERROR;
        goto done;
    }
    memcpy(secret, contents.data, contents.len + 1);
    *out = secret;
    rc = TK_OK;
done:
    file_read_free(&contents);
    return rc;
}

/* ---- applying one value ---- */

/* Stores `value` for `key`. Returns TK_OK, TK_INVALID with `reason`, or
 * TK_ERROR (out of memory, `reason` says so). */
static int apply_value(struct tokend_config *config, const struct config_key *key,
                       const char *value, char *reason, size_t reason_size)
{
    void *field = (char *)config + key->offset;
    uint64_t number;
    int64_t ms;
    char low[32], high[32];

    switch (key->kind) {
    case KIND_STRING: {
        const char *problem = key->check != NULL ? key->check(value) : NULL;
        if (problem != NULL) {
            snprintf(reason, reason_size, "%s", problem);
            return TK_INVALID;
        }
        if (replace_string(string_field(config, key), value) != TK_OK) {
            snprintf(reason, reason_size, "out of memory");
            return TK_ERROR;
        }
        return TK_OK;
    }
    case KIND_INT:
    case KIND_UINT:
    case KIND_OCTAL:
        if (key->kind == KIND_OCTAL ? !parse_octal(value, &number)
                                    : !parse_decimal(value, &number)) {
            snprintf(reason, reason_size,
                     key->kind == KIND_OCTAL ? "expected an octal number such as 0660"
                                             : "expected a decimal number");
            return TK_INVALID;
        }
        if (number < (uint64_t)key->min || number > (uint64_t)key->max) {
            if (key->kind == KIND_OCTAL) {
                snprintf(reason, reason_size, "must be at most %04" PRIo64, (uint64_t)key->max);
            } else {
                snprintf(reason, reason_size, "must be between %" PRId64 " and %" PRId64, key->min,
                         key->max);
            }
            return TK_INVALID;
        }
        if (key->kind == KIND_INT) {
            *(int *)field = (int)number;
        } else {
            *(unsigned *)field = (unsigned)number;
        }
        return TK_OK;
    case KIND_DURATION_INT_MS:
    case KIND_DURATION_I64_S:
        if (config_parse_duration_ms(value, key->bare_unit_ms, &ms) != TK_OK) {
            snprintf(reason, reason_size, "expected a duration such as %s",
                     key->bare_unit_ms == 1 ? "500ms or 2s" : "30s or 5m");
            return TK_INVALID;
        }
        if (ms < key->min || ms > key->max) {
            format_duration(key->min, low, sizeof(low));
            format_duration(key->max, high, sizeof(high));
            snprintf(reason, reason_size, "must be between %s and %s", low, high);
            return TK_INVALID;
        }
        if (key->kind == KIND_DURATION_INT_MS) {
            *(int *)field = (int)ms;
        } else {
            if (ms % MS_PER_S != 0) {
                snprintf(reason, reason_size, "must be a whole number of seconds");
                return TK_INVALID;
            }
            *(int64_t *)field = ms / MS_PER_S;
        }
        return TK_OK;
    case KIND_LOG_LEVEL:
        if (log_level_parse(value, (enum log_level *)field) != TK_OK) {
            snprintf(reason, reason_size, "must be debug, info, warn or error");
            return TK_INVALID;
        }
        return TK_OK;
    case KIND_PASSWORD_FILE: {
        char *secret = NULL;
        if (value[0] != '\0') {
            int rc = read_secret_file(value, &secret, reason, reason_size);
            if (rc != TK_OK) {
                return rc;
            }
        }
        free_password(config);
        config->database_password = secret;
        return TK_OK;
    }
    }
    snprintf(reason, reason_size, "internal error: unknown key kind");
    return TK_ERROR;
}

/* ---- lines ---- */

static const struct config_key *find_key(const char *name, size_t *index)
{
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
        if (strcmp(config_keys[i].name, name) == 0) {
            *index = i;
            return &config_keys[i];
        }
    }
    return NULL;
}

static int key_error(struct config_parser *parser, const char *key, const char *reason, int rc)
{
    snprintf(parser->error, CONFIG_ERROR_SIZE, "%s:%zu: key '%s': %s", parser->name, parser->line,
             key, reason);
    return rc;
}

/* Parses one NUL-terminated line in place. Returns TK_OK, TK_INVALID or
 * TK_ERROR with parser->error set. */
static int parse_line(struct config_parser *parser, char *line)
{
    char *p = line;
    while (is_space(*p)) {
        p++;
    }
    if (*p == '\0' || *p == '#') {
        return TK_OK;
    }

    /* The key runs up to '='; a comment before it means there is no '='. */
    char *key_name = p;
    char *equals = NULL;
    for (char *q = p; *q != '\0'; q++) {
        if (*q == '=') {
            equals = q;
            break;
        }
        if (*q == '#' && is_space(q[-1])) {
            break;
        }
    }
    char *key_end = equals;
    while (key_end != NULL && key_end > key_name && is_space(key_end[-1])) {
        key_end--;
    }
    if (equals == NULL || key_end == key_name) {
        snprintf(parser->error, CONFIG_ERROR_SIZE, "%s:%zu: expected 'key = value'", parser->name,
                 parser->line);
        return TK_INVALID;
    }
    *key_end = '\0';

    size_t index;
    const struct config_key *key = find_key(key_name, &index);
    if (key == NULL) {
        snprintf(parser->error, CONFIG_ERROR_SIZE, "%s:%zu: unknown key '%.100s'", parser->name,
                 parser->line, key_name);
        return TK_INVALID;
    }
    if (parser->first_line[index] != 0) {
        char reason[64];
        snprintf(reason, sizeof(reason), "given twice, first on line %zu",
                 parser->first_line[index]);
        return key_error(parser, key->name, reason, TK_INVALID);
    }
    parser->first_line[index] = parser->line;

    char *value = equals + 1;
    while (is_space(*value)) {
        value++;
    }
    if (*value == '"') {
        value++;
        char *close = strchr(value, '"');
        if (close == NULL) {
            return key_error(parser, key->name, "unterminated quote", TK_INVALID);
        }
        *close = '\0';
        char *rest = close + 1;
        while (is_space(*rest)) {
            rest++;
        }
        if (*rest != '\0' && !(*rest == '#' && is_space(rest[-1]))) {
            return key_error(parser, key->name, "unexpected text after the closing quote",
                             TK_INVALID);
        }
    } else {
        char *end = value;
        while (*end != '\0' && !(*end == '#' && is_space(end[-1]))) {
            end++;
        }
        while (end > value && is_space(end[-1])) {
            end--;
        }
        *end = '\0';
    }

    char reason[CONFIG_REASON_SIZE];
    int rc = apply_value(parser->config, key, value, reason, sizeof(reason));
    if (rc != TK_OK) {
        return key_error(parser, key->name, reason, rc);
    }
    return TK_OK;
}

/* ---- public ---- */

int config_init_defaults(struct tokend_config *config)
{
    memset(config, 0, sizeof(*config));
    config->listen_mode = 0660;
    config->listen_backlog = 1024;
    config->workers = 0;
    config->io_timeout_ms = 30000;
    config->shutdown_timeout_ms = 30000;
    config->log_level = LOG_LEVEL_INFO;
    config->token_ttl_s = 3600;
    config->database_password = NULL;
    config->db_timeout_ms = 2000;
    config->db_retry_interval_ms = 1000;
    config->secret_hash_iterations = 10000;
    config->cache_ttl_s = 600;
    config->cache_negative_ttl_s = 30;
    config->cache_max_entries = 5000;
    config->cache_sweep_interval_s = 60;
    config->clock_skew_s = 30;
    config->introspect_cache_ttl_s = 300;
    config->introspect_negative_ttl_s = 60;
    config->introspect_cache_max_entries = 10000;
    config->max_connections = 1024;
    config->keepalive_timeout_ms = 60000;
    config->read_timeout_ms = 10000;
    config->max_params_bytes = 16384;
    config->queue_capacity = 65536;
    config->queue_full_wait_ms = 50;
    config->flush_batch = 1000;
    config->flush_interval_ms = 1000;
    config->token_retention_days = 30;
    config->admin_timeout_ms = 2000;
    config->admin_rate_limit = 20;
    config->health_queue_high_water = 90;
    config->health_db_interval_ms = 10000;

    const struct {
        char **field;
        const char *value;
    } strings[] = {
        {&config->path, ""},
        {&config->listen, "unix:/run/tokend/tokend.sock"},
        {&config->shm_name, ""},
        {&config->transport, "event"},
        {&config->user, ""},
        {&config->group, ""},
        {&config->admin_token_file, ""},
        {&config->notify_channel, "tokend_clients"},
        {&config->issuer, ""},
        {&config->default_audience, ""},
        {&config->token_typ, "at+jwt"},
        {&config->signing_alg, ""},
        {&config->signing_key_file, ""},
        {&config->signing_kid, ""},
        {&config->hmac_key_file, ""},
        {&config->verify_key_files, ""},
        {&config->database_url, ""},
    };
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if (replace_string(strings[i].field, strings[i].value) != TK_OK) {
            return TK_ERROR;
        }
    }
    return TK_OK;
}

int config_load_text(struct tokend_config *config, const char *text, size_t len, const char *name,
                     char error[CONFIG_ERROR_SIZE])
{
    struct config_parser parser = {.config = config, .name = name, .error = error};
    char line[CONFIG_LINE_MAX + 1];
    size_t pos = 0;

    error[0] = '\0';
    while (pos < len) {
        parser.line++;
        const char *start = text + pos;
        const char *newline = memchr(start, '\n', len - pos);
        size_t line_len = newline != NULL ? (size_t)(newline - start) : len - pos;
        pos += line_len + (newline != NULL ? 1 : 0);

        if (line_len > CONFIG_LINE_MAX) {
            snprintf(error, CONFIG_ERROR_SIZE, "%s:%zu: line longer than %d bytes", name,
                     parser.line, CONFIG_LINE_MAX);
            return TK_INVALID;
        }
        if (memchr(start, '\0', line_len) != NULL) {
            snprintf(error, CONFIG_ERROR_SIZE, "%s:%zu: NUL byte in line", name, parser.line);
            return TK_INVALID;
        }
        memcpy(line, start, line_len);
        line[line_len] = '\0';
        int rc = parse_line(&parser, line);
        if (rc != TK_OK) {
            return rc;
        }
    }
    return TK_OK;
}

int config_load_file(struct tokend_config *config, const char *path, char error[CONFIG_ERROR_SIZE])
{
    struct file_contents text;

    error[0] = '\0';
    if (replace_string(&config->path, path) != TK_OK) {
        snprintf(error, CONFIG_ERROR_SIZE, "%s: out of memory", path);
        return TK_ERROR;
    }
    /* Any file that cannot be read in full is TK_ERROR, as config.h says;
     * TK_INVALID is kept for what the text says. */
    if (file_read_all(path, CONFIG_FILE_MAX, &text, error, CONFIG_ERROR_SIZE) != TK_OK) {
        return TK_ERROR;
    }
    int rc = config_load_text(config, text.data, text.len, path, error);
    /* Wiped: database_url may carry a password. */
    file_read_free(&text);
    return rc;
}

static int server_error(const struct tokend_config *config, char error[CONFIG_ERROR_SIZE],
                        const char *key, const char *reason)
{
    const char *path = config->path != NULL ? config->path : "";
    snprintf(error, CONFIG_ERROR_SIZE, "%s%skey '%s': %s", path, path[0] != '\0' ? ": " : "", key,
             reason);
    return TK_INVALID;
}

static bool is_empty(const char *text)
{
    return text == NULL || text[0] == '\0';
}

int config_check_server(const struct tokend_config *config, char error[CONFIG_ERROR_SIZE])
{
    const char *issuer = config->issuer;
    error[0] = '\0';
    if (is_empty(issuer)) {
        return server_error(config, error, "issuer", "required, e.g. https://auth.example.com");
    }
    size_t scheme_len = strncmp(issuer, "https://", 8) == 0  ? 8
                        : strncmp(issuer, "http://", 7) == 0 ? 7
                                                             : 0;
    if (scheme_len == 0) {
        return server_error(config, error, "issuer", "must start with https:// or http://");
    }
    if (issuer[scheme_len] == '\0' || issuer[scheme_len] == '/') {
        return server_error(config, error, "issuer", "must name a host after the scheme");
    }
    if (strpbrk(issuer, "?#") != NULL) {
        return server_error(config, error, "issuer", "must not contain '?' or '#'");
    }
    for (const char *p = issuer; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            return server_error(config, error, "issuer",
                                "must not contain spaces or control characters");
        }
    }
    if (issuer[strlen(issuer) - 1] == '/') {
        return server_error(config, error, "issuer", "must not end with '/'");
    }
    if (strlen(issuer) > CONFIG_ISSUER_MAX_LEN) {
        /* Every token carries it; introspection holds it in a fixed field. */
        return server_error(config, error, "issuer", "must be at most 511 bytes");
    }
    if (is_empty(config->database_url)) {
        return server_error(config, error, "database_url", "required");
    }
    if (config->signing_alg == NULL || check_signing_alg(config->signing_alg) != NULL) {
        return server_error(config, error, "signing_alg", "must be ES256, RS256, HS256 or \"\"");
    }
    if (strcmp(config->signing_alg, "HS256") == 0) {
        if (is_empty(config->hmac_key_file)) {
            return server_error(config, error, "hmac_key_file",
                                "required when signing_alg is HS256");
        }
    } else if (is_empty(config->signing_key_file)) {
        return server_error(config, error, "signing_key_file", "required");
    }
    if (config->token_typ == NULL || check_token_typ(config->token_typ) != NULL) {
        return server_error(config, error, "token_typ", "must be at+jwt or JWT");
    }
    if (!token_queue_capacity_valid((uint64_t)config->queue_capacity)) {
        return server_error(config, error, "queue_capacity",
                            "must be a power of two from 16 to 16777216");
    }
    return TK_OK;
}

void config_free(struct tokend_config *config)
{
    free_password(config);
    char **strings[] = {
        &config->path,
        &config->listen,
        &config->issuer,
        &config->default_audience,
        &config->token_typ,
        &config->signing_alg,
        &config->signing_key_file,
        &config->signing_kid,
        &config->hmac_key_file,
        &config->verify_key_files,
        &config->database_url,
        &config->shm_name,
        &config->transport,
        &config->user,
        &config->group,
        &config->admin_token_file,
        &config->notify_channel,
    };
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        free(*strings[i]);
        *strings[i] = NULL;
    }
}

int config_worker_count(const struct tokend_config *config)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return config->workers > 0 ? config->workers : (cpus > 0 ? (int)cpus : 1);
}
