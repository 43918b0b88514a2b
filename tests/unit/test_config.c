/*
 * test_config.c - unit tests of the configuration parser (src/config.c).
 *
 * Every error class is checked with its exact message, every key with a
 * non-default value, and etc/tokend.conf.example both as shipped (all
 * commented out) and with every setting uncommented: the second run proves
 * the defaults written in the example are the defaults in the code. The
 * example is found through $srcdir (set by automake's test driver), "." when
 * unset. Temporary files live in a mkdtemp directory removed at the end.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokend/config.h"
#include "tokend/status.h"
#include "unit_test.h"

/* Every key the parser knows; the example file must document each one. */
static const char *const known_keys[] = {
    "listen",
    "listen_mode",
    "listen_backlog",
    "workers",
    "io_timeout_ms",
    "shutdown_timeout",
    "log_level",
    "issuer",
    "default_audience",
    "token_ttl",
    "token_typ",
    "signing_alg",
    "signing_key_file",
    "signing_kid",
    "hmac_key_file",
    "verify_key_files",
    "database_url",
    "database_password_file",
    "db_timeout_ms",
    "db_retry_interval_ms",
    "secret_hash_iterations",
    "cache_ttl",
    "cache_negative_ttl",
    "cache_max_entries",
    "cache_sweep_interval",
    "shm_name",
    "transport",
    "max_connections",
    "keepalive_timeout_ms",
    "read_timeout_ms",
    "max_params_bytes",
    "queue_capacity",
    "queue_full_wait_ms",
    "flush_batch",
    "flush_interval_ms",
    "token_retention_days",
    "admin_token_file",
    "admin_timeout_ms",
    "admin_rate_limit",
    "health_queue_high_water",
    "health_db_interval_ms",
    "notify_channel",
    "user",
    "group",
};
#define KNOWN_KEY_COUNT (sizeof(known_keys) / sizeof(known_keys[0]))

static char temp_dir[128];

/* Loads `text` over fresh defaults; returns the status, leaves the error in
 * `error` and the config in `config` (the caller frees it). */
static int load(struct tokend_config *config, const char *text, char error[CONFIG_ERROR_SIZE])
{
    CHECK_INT(config_init_defaults(config), TK_OK);
    return config_load_text(config, text, strlen(text), "test.conf", error);
}

/* Loads `text` and expects TK_INVALID with exactly `expected`. */
static void expect_error(const char *text, const char *expected)
{
    struct tokend_config config;
    char error[CONFIG_ERROR_SIZE];
    CHECK_INT(load(&config, text, error), TK_INVALID);
    CHECK_STR(error, expected);
    config_free(&config);
}

/* Loads `key = value` and expects TK_INVALID with "test.conf:1: key 'K': reason". */
static void expect_bad_value(const char *key, const char *value, const char *reason)
{
    char text[512], expected[CONFIG_ERROR_SIZE];
    snprintf(text, sizeof(text), "%s = %s\n", key, value);
    snprintf(expected, sizeof(expected), "test.conf:1: key '%s': %s", key, reason);
    expect_error(text, expected);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *file = fopen(path, "wb");
    CHECK(file != NULL);
    if (file == NULL) {
        return;
    }
    CHECK_INT(fwrite(data, 1, len, file), len);
    CHECK_INT(fclose(file), 0);
    CHECK_INT(chmod(path, 0600), 0); /* secrets must not be readable by others */
}

static char *read_whole_file(const char *path, size_t *len)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        return NULL;
    }
    size_t capacity = 65536, used = 0;
    char *text = malloc(capacity);
    size_t got;
    while (text != NULL && (got = fread(text + used, 1, capacity - used - 1, file)) > 0) {
        used += got;
        if (used + 1 == capacity) {
            char *bigger = realloc(text, capacity * 2);
            if (bigger == NULL) {
                free(text);
                text = NULL;
                break;
            }
            text = bigger;
            capacity *= 2;
        }
    }
    fclose(file);
    if (text != NULL) {
        text[used] = '\0';
        *len = used;
    }
    return text;
}

static void example_path(char *path, size_t size)
{
    const char *srcdir = getenv("srcdir");
    snprintf(path, size, "%s/etc/tokend.conf.example", srcdir != NULL ? srcdir : ".");
}

/* ---- tests ---- */

static void test_defaults(void)
{
    struct tokend_config config;
    CHECK_INT(config_init_defaults(&config), TK_OK);
    CHECK_STR(config.path, "");
    CHECK_STR(config.listen, "unix:/run/tokend/tokend.sock");
    CHECK_INT(config.listen_mode, 0660);
    CHECK_INT(config.listen_backlog, 1024);
    CHECK_INT(config.workers, 0);
    CHECK_INT(config.io_timeout_ms, 30000);
    CHECK_INT(config.shutdown_timeout_ms, 30000);
    CHECK_INT(config.log_level, LOG_LEVEL_INFO);
    CHECK_STR(config.issuer, "");
    CHECK_STR(config.default_audience, "");
    CHECK_INT(config.token_ttl_s, 3600);
    CHECK_STR(config.token_typ, "at+jwt");
    CHECK_STR(config.signing_alg, "");
    CHECK_STR(config.signing_key_file, "");
    CHECK_STR(config.signing_kid, "");
    CHECK_STR(config.hmac_key_file, "");
    CHECK_STR(config.verify_key_files, "");
    CHECK_STR(config.database_url, "");
    CHECK(config.database_password == NULL);
    CHECK_INT(config.db_timeout_ms, 2000);
    CHECK_INT(config.db_retry_interval_ms, 1000);
    CHECK_INT(config.secret_hash_iterations, 10000);
    CHECK_INT(config.cache_ttl_s, 600);
    CHECK_INT(config.cache_negative_ttl_s, 30);
    CHECK_INT(config.cache_max_entries, 5000);
    CHECK_INT(config.cache_sweep_interval_s, 60);
    CHECK_STR(config.shm_name, "");
    CHECK_STR(config.transport, "event");
    CHECK_INT(config.max_connections, 1024);
    CHECK_INT(config.keepalive_timeout_ms, 60000);
    CHECK_INT(config.read_timeout_ms, 10000);
    CHECK_INT(config.max_params_bytes, 16384);
    CHECK_STR(config.admin_token_file, "");
    CHECK_INT(config.admin_timeout_ms, 2000);
    CHECK_INT(config.admin_rate_limit, 20);
    CHECK_INT(config.health_queue_high_water, 90);
    CHECK_INT(config.health_db_interval_ms, 10000);
    CHECK_STR(config.notify_channel, "tokend_clients");
    CHECK_STR(config.user, "");
    CHECK_STR(config.group, "");
    CHECK_INT(config.queue_capacity, 65536);
    CHECK_INT(config.queue_full_wait_ms, 50);
    CHECK_INT(config.flush_batch, 1000);
    CHECK_INT(config.flush_interval_ms, 1000);
    CHECK_INT(config.token_retention_days, 30);
    config_free(&config);
    CHECK(config.listen == NULL);
    CHECK(config.path == NULL);
    config_free(&config); /* freeing twice is harmless */
}

static void test_every_key(void)
{
    char password_path[256], text[4096];
    snprintf(password_path, sizeof(password_path), "%s/every-key-password", temp_dir);
    write_file(password_path, "pw\n", 3);
    snprintf(text, sizeof(text),
             "listen = 127.0.0.1:9000\n"
             "listen_mode = 0600\n"
             "listen_backlog = 65535\n"
             "workers = 1024\n"
             "user = tokend\n"
             "group = tokend-keys\n"
             "io_timeout_ms = 1500\n"
             "shutdown_timeout = 45\n"
             "log_level = debug\n"
             "issuer = https://auth.example.com\n"
             "default_audience = https://api.example.com\n"
             "token_ttl = 15m\n"
             "token_typ = JWT\n"
             "signing_alg = ES256\n"
             "signing_key_file = /etc/tokend/key.pem\n"
             "signing_kid = key-2026.01_a\n"
             "hmac_key_file = /etc/tokend/hmac.key\n"
             "verify_key_files = /a.pem /b.pem\n"
             "database_url = postgresql://tokend@db/tokend\n"
             "database_password_file = %s\n"
             "db_timeout_ms = 5s\n"
             "db_retry_interval_ms = 0\n"
             "secret_hash_iterations = 600000\n"
             "cache_ttl = 1d\n"
             "cache_negative_ttl = 2m\n"
             "cache_max_entries = 10000000\n"
             "cache_sweep_interval = 1h\n"
             "shm_name = /tokend-test.1\n"
             "queue_capacity = 1024\n"
             "queue_full_wait_ms = 2s\n"
             "flush_batch = 5000\n"
             "flush_interval_ms = 250\n"
             "token_retention_days = 7\n",
             password_path);
    struct tokend_config config;
    char error[CONFIG_ERROR_SIZE];
    CHECK_INT(load(&config, text, error), TK_OK);
    CHECK_STR(error, "");
    CHECK_STR(config.listen, "127.0.0.1:9000");
    CHECK_INT(config.listen_mode, 0600);
    CHECK_INT(config.listen_backlog, 65535);
    CHECK_INT(config.workers, 1024);
    CHECK_STR(config.user, "tokend");
    CHECK_STR(config.group, "tokend-keys");
    CHECK_INT(config.io_timeout_ms, 1500);
    CHECK_INT(config.shutdown_timeout_ms, 45000);
    CHECK_INT(config.log_level, LOG_LEVEL_DEBUG);
    CHECK_STR(config.issuer, "https://auth.example.com");
    CHECK_STR(config.default_audience, "https://api.example.com");
    CHECK_INT(config.token_ttl_s, 900);
    CHECK_STR(config.token_typ, "JWT");
    CHECK_STR(config.signing_alg, "ES256");
    CHECK_STR(config.signing_key_file, "/etc/tokend/key.pem");
    CHECK_STR(config.signing_kid, "key-2026.01_a");
    CHECK_STR(config.hmac_key_file, "/etc/tokend/hmac.key");
    CHECK_STR(config.verify_key_files, "/a.pem /b.pem");
    CHECK_STR(config.database_url, "postgresql://tokend@db/tokend");
    CHECK_STR(config.database_password, "pw");
    CHECK_INT(config.db_timeout_ms, 5000);
    CHECK_INT(config.db_retry_interval_ms, 0);
    CHECK_INT(config.secret_hash_iterations, 600000);
    CHECK_INT(config.cache_ttl_s, 86400);
    CHECK_INT(config.cache_negative_ttl_s, 120);
    CHECK_INT(config.cache_max_entries, 10000000);
    CHECK_INT(config.cache_sweep_interval_s, 3600);
    CHECK_STR(config.shm_name, "/tokend-test.1");
    CHECK_INT(config.queue_capacity, 1024);
    CHECK_INT(config.queue_full_wait_ms, 2000);
    CHECK_INT(config.flush_batch, 5000);
    CHECK_INT(config.flush_interval_ms, 250);
    CHECK_INT(config.token_retention_days, 7);
    CHECK_INT(config_check_server(&config, error), TK_OK);
    config_free(&config);
    unlink(password_path);
}

static void test_other_values(void)
{
    struct tokend_config config;
    char error[CONFIG_ERROR_SIZE];
    CHECK_INT(load(&config,
                   "listen = unix:/tmp/t.sock\nlisten_mode = 777\nlog_level = ERROR\n"
                   "signing_alg = HS256\nsigning_alg2 = x\n",
                   error),
              TK_INVALID);
    CHECK_STR(error, "test.conf:5: unknown key 'signing_alg2'");
    CHECK_STR(config.listen, "unix:/tmp/t.sock");
    CHECK_INT(config.listen_mode, 0777);
    CHECK_INT(config.log_level, LOG_LEVEL_ERROR);
    CHECK_STR(config.signing_alg, "HS256");
    config_free(&config);

    CHECK_INT(load(&config,
                   "listen = [::1]:1\nsigning_alg = RS256\nlog_level = warn\ntoken_typ = at+jwt\n"
                   "signing_alg = \"\"\n",
                   error),
              TK_INVALID);
    CHECK_STR(error, "test.conf:5: key 'signing_alg': given twice, first on line 2");
    CHECK_STR(config.listen, "[::1]:1");
    CHECK_INT(config.log_level, LOG_LEVEL_WARN);
    config_free(&config);

    /* Empty strings and boundaries. */
    CHECK_INT(load(&config,
                   "signing_alg = \"\"\nsigning_kid =\nverify_key_files = /1 /2 /3 /4 /5 /6 /7\n"
                   "listen_mode = 0\nlisten_backlog = 1\nio_timeout_ms = 100\n"
                   "shutdown_timeout = 1h\ntoken_ttl = 1s\ndb_timeout_ms = 60s\n"
                   "db_retry_interval_ms = 60000\nsecret_hash_iterations = 1000\n"
                   "cache_ttl = 86400\ncache_negative_ttl = 3600\ncache_max_entries = 1\n"
                   "cache_sweep_interval = 1s\nworkers = 0007\n",
                   error),
              TK_OK);
    CHECK_STR(config.signing_alg, "");
    CHECK_STR(config.signing_kid, "");
    CHECK_STR(config.verify_key_files, "/1 /2 /3 /4 /5 /6 /7");
    CHECK_INT(config.listen_mode, 0);
    CHECK_INT(config.listen_backlog, 1);
    CHECK_INT(config.io_timeout_ms, 100);
    CHECK_INT(config.shutdown_timeout_ms, 3600000);
    CHECK_INT(config.token_ttl_s, 1);
    CHECK_INT(config.db_timeout_ms, 60000);
    CHECK_INT(config.db_retry_interval_ms, 60000);
    CHECK_INT(config.secret_hash_iterations, 1000);
    CHECK_INT(config.cache_ttl_s, 86400);
    CHECK_INT(config.cache_negative_ttl_s, 3600);
    CHECK_INT(config.cache_max_entries, 1);
    CHECK_INT(config.cache_sweep_interval_s, 1);
    CHECK_INT(config.workers, 7);
    config_free(&config);

    /* shutdown_timeout is stored in ms, so sub-second values are whole. */
    CHECK_INT(load(&config, "shutdown_timeout = 1500ms\n", error), TK_OK);
    CHECK_INT(config.shutdown_timeout_ms, 1500);
    config_free(&config);

    /* A second load may override what the first set. */
    CHECK_INT(load(&config, "workers = 3\n", error), TK_OK);
    CHECK_INT(
        config_load_text(&config, "workers = 4\n", strlen("workers = 4\n"), "second.conf", error),
        TK_OK);
    CHECK_INT(config.workers, 4);
    config_free(&config);
}

static void test_syntax_errors(void)
{
    expect_error("workers = 2\nbogus = 1\n", "test.conf:2: unknown key 'bogus'");
    expect_error("Workers = 2\n", "test.conf:1: unknown key 'Workers'");
    expect_error("work ers = 2\n", "test.conf:1: unknown key 'work ers'");
    expect_error("\n\nworkers 2\n", "test.conf:3: expected 'key = value'");
    expect_error("= 2\n", "test.conf:1: expected 'key = value'");
    expect_error("workers # = 2\n", "test.conf:1: expected 'key = value'");
    expect_error("workers = 2\n# c\nworkers = 3\n",
                 "test.conf:3: key 'workers': given twice, first on line 1");
    expect_error("issuer = \"https://a\n", "test.conf:1: key 'issuer': unterminated quote");
    expect_error("issuer = \"", "test.conf:1: key 'issuer': unterminated quote");
    expect_error("issuer = \"a\" b\n",
                 "test.conf:1: key 'issuer': unexpected text after the closing quote");
    expect_error("issuer = \"a\"#b\n",
                 "test.conf:1: key 'issuer': unexpected text after the closing quote");

    /* NUL anywhere, even in a comment. */
    static const char with_nul[] = "workers = 2\n# a\0b\n";
    struct tokend_config config;
    char error[CONFIG_ERROR_SIZE];
    CHECK_INT(config_init_defaults(&config), TK_OK);
    CHECK_INT(config_load_text(&config, with_nul, sizeof(with_nul) - 1, "nul.conf", error),
              TK_INVALID);
    CHECK_STR(error, "nul.conf:2: NUL byte in line");
    config_free(&config);

    /* 4096 bytes is the longest line; the newline does not count. */
    char *text = malloc(4100);
    CHECK(text != NULL);
    if (text == NULL) {
        return;
    }
    memset(text, ' ', 4100);
    memcpy(text, "# long", 6);
    memcpy(text + 4096, "\n", 2);
    CHECK_INT(load(&config, text, error), TK_OK);
    config_free(&config);
    text[4096] = '\0';
    CHECK_INT(load(&config, text, error), TK_OK);
    config_free(&config);
    memcpy(text + 4096, "x\n", 3);
    CHECK_INT(load(&config, text, error), TK_INVALID);
    CHECK_STR(error, "test.conf:1: line longer than 4096 bytes");
    config_free(&config);
    memcpy(text, "\n#", 2);
    memcpy(text + 4097, "x", 2); /* second line: 4097 bytes, no newline */
    CHECK_INT(load(&config, text, error), TK_INVALID);
    CHECK_STR(error, "test.conf:2: line longer than 4096 bytes");
    config_free(&config);
    free(text);

    /* An unknown key is cut in the message, not the program. */
    char long_key[300];
    memset(long_key, 'k', 200);
    memcpy(long_key + 200, " = 1\n", 6);
    char expected[CONFIG_ERROR_SIZE];
    snprintf(expected, sizeof(expected), "test.conf:1: unknown key '%.100s'", long_key);
    expect_error(long_key, expected);
}

static void test_bad_values(void)
{
    const char *decimal = "expected a decimal number";
    expect_bad_value("workers", "-1", decimal);
    expect_bad_value("workers", "+1", decimal);
    expect_bad_value("workers", "1x", decimal);
    expect_bad_value("workers", "1 2", decimal);
    expect_bad_value("workers", "0x10", decimal);
    expect_bad_value("workers", "\"\"", decimal);
    expect_bad_value("workers", "1025", "must be between 0 and 1024");
    expect_bad_value("workers", "99999999999999999999", "must be between 0 and 1024");
    expect_bad_value("workers", "18446744073709551615", "must be between 0 and 1024");
    expect_bad_value("listen_backlog", "0", "must be between 1 and 65535");
    expect_bad_value("listen_backlog", "65536", "must be between 1 and 65535");
    expect_bad_value("secret_hash_iterations", "999", "must be between 1000 and 10000000");
    expect_bad_value("secret_hash_iterations", "10000001", "must be between 1000 and 10000000");
    expect_bad_value("secret_hash_iterations", "4294968296", "must be between 1000 and 10000000");
    expect_bad_value("cache_max_entries", "0", "must be between 1 and 10000000");
    expect_bad_value("cache_max_entries", "10000001", "must be between 1 and 10000000");

    const char *octal = "expected an octal number such as 0660";
    expect_bad_value("listen_mode", "0680", octal);
    expect_bad_value("listen_mode", "rw", octal);
    expect_bad_value("listen_mode", "", octal);
    expect_bad_value("listen_mode", "1000", "must be at most 0777");
    expect_bad_value("listen_mode", "77777777777777777777777", "must be at most 0777");
    expect_bad_value("listen_mode", "7777777777777777777777", "must be at most 0777");

    const char *ms_duration = "expected a duration such as 500ms or 2s";
    const char *s_duration = "expected a duration such as 30s or 5m";
    expect_bad_value("io_timeout_ms", "99", "must be between 100ms and 1h");
    expect_bad_value("io_timeout_ms", "3600001", "must be between 100ms and 1h");
    expect_bad_value("io_timeout_ms", "1 s", ms_duration);
    expect_bad_value("io_timeout_ms", "1S", ms_duration);
    expect_bad_value("shutdown_timeout", "0", "must be between 1s and 1h");
    expect_bad_value("shutdown_timeout", "61m", "must be between 1s and 1h");
    expect_bad_value("shutdown_timeout", "-1", s_duration);
    expect_bad_value("token_ttl", "0", "must be between 1s and 1d");
    expect_bad_value("token_ttl", "86401", "must be between 1s and 1d");
    expect_bad_value("token_ttl", "1500ms", "must be a whole number of seconds");
    expect_bad_value("token_ttl", "999999999999999999d", s_duration);
    expect_bad_value("token_ttl", "1.5h", s_duration);
    expect_bad_value("db_timeout_ms", "99ms", "must be between 100ms and 1m");
    expect_bad_value("db_timeout_ms", "61s", "must be between 100ms and 1m");
    expect_bad_value("db_retry_interval_ms", "60001", "must be between 0 and 1m");
    expect_bad_value("cache_ttl", "2d", "must be between 1s and 1d");
    expect_bad_value("cache_ttl", "2500ms", "must be a whole number of seconds");
    expect_bad_value("cache_negative_ttl", "3601", "must be between 1s and 1h");
    expect_bad_value("cache_negative_ttl", "", s_duration);
    expect_bad_value("cache_sweep_interval", "500ms", "must be between 1s and 1h");
    expect_bad_value("shm_name", "tokend",
                     "expected '/' followed by 1 to 199 of A-Z a-z 0-9 . _ -");
    expect_bad_value("shm_name", "/a/b", "expected '/' followed by 1 to 199 of A-Z a-z 0-9 . _ -");
    expect_bad_value("queue_capacity", "8", "must be between 16 and 16777216");
    expect_bad_value("transport", "fcgi", "must be event or libfcgi");
    expect_bad_value("read_timeout_ms", "99", "must be between 100ms and 1h");
    expect_bad_value("notify_channel", "Tokend",
                     "must be 1 to 63 of [a-z0-9_], not starting with a digit");
    expect_bad_value("notify_channel", "1x",
                     "must be 1 to 63 of [a-z0-9_], not starting with a digit");
    expect_bad_value("notify_channel", "a;drop",
                     "must be 1 to 63 of [a-z0-9_], not starting with a digit");
    expect_bad_value("health_queue_high_water", "101", "must be between 1 and 100");
    static const char account_reason[] =
        "expected a user or group name: 1 to 32 of A-Z a-z 0-9 . _ -, not starting with '-'";
    expect_bad_value("user", "tok end", account_reason);
    expect_bad_value("user", "-tokend", account_reason);
    expect_bad_value("user", "tokend;root", account_reason);
    expect_bad_value("group", "abcdefghijklmnopqrstuvwxyz0123456", account_reason);
    expect_bad_value("admin_rate_limit", "0", "must be between 1 and 100000");
    expect_bad_value("max_params_bytes", "1023", "must be between 1024 and 1048576");
    expect_bad_value("max_connections", "0", "must be between 1 and 1000000");
    expect_bad_value("flush_batch", "0", "must be between 1 and 100000");
    expect_bad_value("token_retention_days", "0", "must be between 1 and 3650");
    char long_audience[300];
    memset(long_audience, 'a', 256);
    long_audience[256] = '\0';
    expect_bad_value("default_audience", long_audience, "at most 255 bytes");
    expect_bad_value("cache_sweep_interval", "1001ms", "must be a whole number of seconds");

    expect_bad_value("log_level", "verbose", "must be debug, info, warn or error");
    expect_bad_value("log_level", "", "must be debug, info, warn or error");
    expect_bad_value("token_typ", "at+JWT", "must be at+jwt or JWT");
    expect_bad_value("token_typ", "", "must be at+jwt or JWT");
    expect_bad_value("signing_alg", "es256", "must be ES256, RS256, HS256 or \"\"");
    expect_bad_value("signing_alg", "none", "must be ES256, RS256, HS256 or \"\"");
    expect_bad_value("signing_kid", "a/b", "may only contain A-Z a-z 0-9 . _ -");
    expect_bad_value("signing_kid", "\"a b\"", "may only contain A-Z a-z 0-9 . _ -");
    expect_bad_value("signing_kid",
                     "12345678901234567890123456789012345678901234567890123456789012345",
                     "longer than 64 characters");
    expect_bad_value("verify_key_files", "/1 /2 /3 /4 /5 /6 /7 /8", "at most 7 files");

    const char *listen = "expected unix:/absolute/path or host:port";
    expect_bad_value("listen", "", listen);
    expect_bad_value("listen", "unix:", listen);
    expect_bad_value("listen", "unix:relative.sock", listen);
    expect_bad_value("listen", "localhost", listen);
    expect_bad_value("listen", ":9000", listen);
    expect_bad_value("listen", "localhost:0", listen);
    expect_bad_value("listen", "localhost:65536", listen);
    expect_bad_value("listen", "localhost:http", listen);
    char long_path[200];
    memset(long_path, 'a', sizeof(long_path));
    memcpy(long_path, "unix:/", 6);
    long_path[5 + 108] = '\0'; /* "/" + 107 characters: no room for the NUL */
    expect_bad_value("listen", long_path, "unix socket path too long");
    long_path[5 + 107] = '\0';
    struct tokend_config config;
    char error[CONFIG_ERROR_SIZE], text[256];
    snprintf(text, sizeof(text), "listen = %s\n", long_path);
    CHECK_INT(load(&config, text, error), TK_OK);
    config_free(&config);
}

static void test_durations(void)
{
    int64_t ms = -1;
    CHECK_INT(config_parse_duration_ms("0", 1000, &ms), TK_OK);
    CHECK_INT(ms, 0);
    CHECK_INT(config_parse_duration_ms("5", 1000, &ms), TK_OK);
    CHECK_INT(ms, 5000);
    CHECK_INT(config_parse_duration_ms("5", 1, &ms), TK_OK);
    CHECK_INT(ms, 5);
    CHECK_INT(config_parse_duration_ms("5ms", 1000, &ms), TK_OK);
    CHECK_INT(ms, 5);
    CHECK_INT(config_parse_duration_ms("5s", 1, &ms), TK_OK);
    CHECK_INT(ms, 5000);
    CHECK_INT(config_parse_duration_ms("2m", 1, &ms), TK_OK);
    CHECK_INT(ms, 120000);
    CHECK_INT(config_parse_duration_ms("1h", 1, &ms), TK_OK);
    CHECK_INT(ms, 3600000);
    CHECK_INT(config_parse_duration_ms("1d", 1, &ms), TK_OK);
    CHECK_INT(ms, 86400000);
    CHECK_INT(config_parse_duration_ms("9223372036854775807ms", 1, &ms), TK_OK);
    CHECK_INT(ms, INT64_MAX);

    ms = -1;
    CHECK_INT(config_parse_duration_ms("5x", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("s", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("99999999999999999999", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("9223372036854775808ms", 1, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("9223372036854775807", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("106751991167301d", 1, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("-5", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("+5", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms(" 5", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("5 s", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("5s ", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("5ss", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("5msx", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("1.5s", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("5S", 1000, &ms), TK_INVALID);
    CHECK_INT(config_parse_duration_ms("5", 0, &ms), TK_INVALID);
    CHECK_INT(ms, -1); /* untouched on failure */
}

static void test_comments_and_quotes(void)
{
    struct tokend_config config;
    char error[CONFIG_ERROR_SIZE];
    CHECK_INT(load(&config,
                   "# comment\n"
                   "   # indented comment\n"
                   "\n"
                   "  \t \r\n"
                   "issuer = \"a # b\"\n"
                   "  database_url\t=\tpostgresql://x#y   # trailing comment\r\n"
                   "default_audience = \"  padded  \"   # comment\n"
                   "signing_key_file = key#1.pem\n"
                   "hmac_key_file = #not a value\n"
                   "verify_key_files=\"\"\n"
                   "token_typ=JWT",
                   error),
              TK_OK);
    CHECK_STR(error, "");
    CHECK_STR(config.issuer, "a # b");
    CHECK_STR(config.database_url, "postgresql://x#y");
    CHECK_STR(config.default_audience, "  padded  ");
    CHECK_STR(config.signing_key_file, "key#1.pem");
    CHECK_STR(config.hmac_key_file, "");
    CHECK_STR(config.verify_key_files, "");
    CHECK_STR(config.token_typ, "JWT");
    config_free(&config);

    /* '=' inside a value and quotes not at the start are kept as they are. */
    CHECK_INT(load(&config, "database_url = host=db user=\"tokend\" dbname=t\n", error), TK_OK);
    CHECK_STR(config.database_url, "host=db user=\"tokend\" dbname=t");
    config_free(&config);

    /* Empty text is a valid (empty) config. */
    CHECK_INT(config_init_defaults(&config), TK_OK);
    CHECK_INT(config_load_text(&config, "", 0, "empty.conf", error), TK_OK);
    config_free(&config);
}

static void test_password_file(void)
{
    struct tokend_config config;
    char path[256], text[1024], error[CONFIG_ERROR_SIZE], expected[CONFIG_ERROR_SIZE];
    snprintf(path, sizeof(path), "%s/password", temp_dir);

    write_file(path, "s3cret\n", 7);
    snprintf(text, sizeof(text), "database_password_file = %s\n", path);
    CHECK_INT(load(&config, text, error), TK_OK);
    CHECK_STR(config.database_password, "s3cret");
    /* A second file replaces the first password; "" removes it. */
    write_file(path, "two\n\n", 5);
    CHECK_INT(config_load_text(&config, text, strlen(text), "second.conf", error), TK_OK);
    CHECK_STR(config.database_password, "two\n");
    CHECK_INT(config_load_text(&config, "database_password_file = \"\"",
                               strlen("database_password_file = \"\""), "third.conf", error),
              TK_OK);
    CHECK(config.database_password == NULL);
    config_free(&config);

    write_file(path, "no newline", 10);
    CHECK_INT(load(&config, text, error), TK_OK);
    CHECK_STR(config.database_password, "no newline");
    config_free(&config);

    write_file(path, "", 0);
    CHECK_INT(load(&config, text, error), TK_OK);
    CHECK_STR(config.database_password, "");
    config_free(&config);

    write_file(path, "s3cret\n", 7);
    CHECK_INT(chmod(path, 0644), 0);
    CHECK_INT(load(&config, text, error), TK_INVALID);
    snprintf(expected, sizeof(expected),
             "test.conf:1: key 'database_password_file': %s: readable by others (chmod o-rwx it)",
             path);
    CHECK_STR(error, expected);
    config_free(&config);
    CHECK_INT(chmod(path, 0640), 0); /* group-readable is allowed (root:tokend 0640) */
    CHECK_INT(load(&config, text, error), TK_OK);
    config_free(&config);

    write_file(path, "a\0b", 3);
    CHECK_INT(load(&config, text, error), TK_INVALID);
    snprintf(expected, sizeof(expected),
             "test.conf:1: key 'database_password_file': %s: contains a NUL byte", path);
    CHECK_STR(error, expected);
    config_free(&config);

    /* 64 KiB is the limit. */
    char *big = malloc(65537);
    CHECK(big != NULL);
    if (big != NULL) {
        memset(big, 'p', 65537);
        write_file(path, big, 65536);
        CHECK_INT(load(&config, text, error), TK_OK);
        CHECK(config.database_password != NULL && strlen(config.database_password) == 65536);
        config_free(&config);
        write_file(path, big, 65537);
        CHECK_INT(load(&config, text, error), TK_INVALID);
        snprintf(expected, sizeof(expected),
                 "test.conf:1: key 'database_password_file': %s: larger than 65536 bytes", path);
        CHECK_STR(error, expected);
        config_free(&config);
        free(big);
    }
    unlink(path);

    snprintf(text, sizeof(text), "\ndatabase_password_file = %s/missing\n", temp_dir);
    CHECK_INT(load(&config, text, error), TK_INVALID);
    snprintf(expected, sizeof(expected),
             "test.conf:2: key 'database_password_file': %s/missing: cannot read: "
             "No such file or directory",
             temp_dir);
    CHECK_STR(error, expected);
    CHECK(config.database_password == NULL);
    config_free(&config);

    snprintf(text, sizeof(text), "database_password_file = %s\n", temp_dir);
    CHECK_INT(load(&config, text, error), TK_INVALID);
    snprintf(expected, sizeof(expected),
             "test.conf:1: key 'database_password_file': %s: not a regular file", temp_dir);
    CHECK_STR(error, expected);
    config_free(&config);

    CHECK_INT(load(&config, "database_password_file = /dev/zero\n", error), TK_INVALID);
    CHECK_STR(error, "test.conf:1: key 'database_password_file': /dev/zero: not a regular file");
    config_free(&config);

    /* A FIFO without a writer must not block the parse. */
    snprintf(path, sizeof(path), "%s/fifo", temp_dir);
    CHECK_INT(mkfifo(path, 0600), 0);
    snprintf(text, sizeof(text), "database_password_file = %s\n", path);
    CHECK_INT(load(&config, text, error), TK_INVALID);
    snprintf(expected, sizeof(expected),
             "test.conf:1: key 'database_password_file': %s: not a regular file", path);
    CHECK_STR(error, expected);
    config_free(&config);
    unlink(path);
}

static void test_load_file(void)
{
    struct tokend_config config;
    char path[256], error[CONFIG_ERROR_SIZE], expected[CONFIG_ERROR_SIZE];
    snprintf(path, sizeof(path), "%s/tokend.conf", temp_dir);
    write_file(path, "workers = 2\nlisten_backlog = 0\n",
               strlen("workers = 2\nlisten_backlog = 0\n"));
    CHECK_INT(config_init_defaults(&config), TK_OK);
    CHECK_INT(config_load_file(&config, path, error), TK_INVALID);
    snprintf(expected, sizeof(expected), "%s:2: key 'listen_backlog': must be between 1 and 65535",
             path);
    CHECK_STR(error, expected);
    CHECK_STR(config.path, path);
    CHECK_INT(config.workers, 2);
    config_free(&config);

    write_file(path, "workers = 2\n", strlen("workers = 2\n"));
    CHECK_INT(config_init_defaults(&config), TK_OK);
    CHECK_INT(config_load_file(&config, path, error), TK_OK);
    CHECK_STR(error, "");
    CHECK_INT(config.workers, 2);
    config_free(&config);

    /* 1 MiB is the limit; a larger file is not read at all. */
    size_t big_len = 1024 * 1024 + 1;
    char *big = malloc(big_len);
    CHECK(big != NULL);
    if (big != NULL) {
        memset(big, '\n', big_len);
        write_file(path, big, big_len - 1);
        CHECK_INT(config_init_defaults(&config), TK_OK);
        CHECK_INT(config_load_file(&config, path, error), TK_OK);
        config_free(&config);
        write_file(path, big, big_len);
        CHECK_INT(config_init_defaults(&config), TK_OK);
        CHECK_INT(config_load_file(&config, path, error), TK_ERROR);
        snprintf(expected, sizeof(expected), "%s: larger than 1048576 bytes", path);
        CHECK_STR(error, expected);
        config_free(&config);
        free(big);
    }
    unlink(path);

    CHECK_INT(config_init_defaults(&config), TK_OK);
    CHECK_INT(config_load_file(&config, path, error), TK_ERROR);
    snprintf(expected, sizeof(expected), "%s: cannot read: No such file or directory", path);
    CHECK_STR(error, expected);
    config_free(&config);

    CHECK_INT(config_init_defaults(&config), TK_OK);
    CHECK_INT(config_load_file(&config, temp_dir, error), TK_ERROR);
    snprintf(expected, sizeof(expected), "%s: not a regular file", temp_dir);
    CHECK_STR(error, expected);
    config_free(&config);

    /* A FIFO without a writer must not block start-up either. */
    snprintf(path, sizeof(path), "%s/fifo.conf", temp_dir);
    CHECK_INT(mkfifo(path, 0600), 0);
    CHECK_INT(config_init_defaults(&config), TK_OK);
    CHECK_INT(config_load_file(&config, path, error), TK_ERROR);
    snprintf(expected, sizeof(expected), "%s: not a regular file", path);
    CHECK_STR(error, expected);
    config_free(&config);
    unlink(path);
}

/* Sets the fields config_check_server needs; the caller frees. */
static void server_config(struct tokend_config *config)
{
    char error[CONFIG_ERROR_SIZE];
    CHECK_INT(load(config,
                   "issuer = https://auth.example.com\n"
                   "database_url = postgresql:///tokend\n"
                   "signing_key_file = /etc/tokend/key.pem\n",
                   error),
              TK_OK);
}

static void set_string(char **field, const char *value)
{
    free(*field);
    *field = strdup(value);
    CHECK(*field != NULL);
}

static void expect_check(const char *field_name, const char *value, const char *expected)
{
    struct tokend_config config;
    char error[CONFIG_ERROR_SIZE];
    server_config(&config);
    char **field = strcmp(field_name, "issuer") == 0             ? &config.issuer
                   : strcmp(field_name, "database_url") == 0     ? &config.database_url
                   : strcmp(field_name, "signing_key_file") == 0 ? &config.signing_key_file
                   : strcmp(field_name, "signing_alg") == 0      ? &config.signing_alg
                   : strcmp(field_name, "token_typ") == 0        ? &config.token_typ
                                                                 : NULL;
    CHECK(field != NULL);
    if (field != NULL) {
        set_string(field, value);
        CHECK_INT(config_check_server(&config, error), expected == NULL ? TK_OK : TK_INVALID);
        CHECK_STR(error, expected == NULL ? "" : expected);
    }
    config_free(&config);
}

static void test_check_server(void)
{
    struct tokend_config config;
    char error[CONFIG_ERROR_SIZE];

    CHECK_INT(config_init_defaults(&config), TK_OK);
    CHECK_INT(config_check_server(&config, error), TK_INVALID);
    CHECK_STR(error, "key 'issuer': required, e.g. https://auth.example.com");
    config_free(&config);

    server_config(&config);
    CHECK_INT(config_check_server(&config, error), TK_OK);
    CHECK_STR(error, "");
    config_free(&config);

    expect_check("issuer", "http://localhost:8080", NULL);
    expect_check("issuer", "https://example.com/tenant/a", NULL);
    expect_check("issuer", "ftp://auth.example.com",
                 "key 'issuer': must start with https:// or http://");
    expect_check("issuer", "auth.example.com", "key 'issuer': must start with https:// or http://");
    expect_check("issuer", "HTTPS://auth.example.com",
                 "key 'issuer': must start with https:// or http://");
    expect_check("issuer", "https://", "key 'issuer': must name a host after the scheme");
    expect_check("issuer", "https:///x", "key 'issuer': must name a host after the scheme");
    expect_check("issuer", "https://auth.example.com/", "key 'issuer': must not end with '/'");
    expect_check("issuer", "https://a.example.com/t/", "key 'issuer': must not end with '/'");
    expect_check("issuer", "https://a.example.com?x=1",
                 "key 'issuer': must not contain '?' or '#'");
    expect_check("issuer", "https://a.example.com#f", "key 'issuer': must not contain '?' or '#'");
    char issuer[CONFIG_ISSUER_MAX_LEN + 2];
    memset(issuer, 'a', sizeof(issuer) - 1);
    issuer[sizeof(issuer) - 1] = '\0';
    memcpy(issuer, "https://", 8);
    expect_check("issuer", issuer, "key 'issuer': must be at most 511 bytes");
    issuer[CONFIG_ISSUER_MAX_LEN] = '\0'; /* 511 bytes: fine */
    expect_check("issuer", issuer, NULL);
    expect_check("issuer", "https://a.example.com/a b",
                 "key 'issuer': must not contain spaces or control characters");
    expect_check("database_url", "", "key 'database_url': required");
    expect_check("signing_key_file", "", "key 'signing_key_file': required");
    expect_check("signing_alg", "none", "key 'signing_alg': must be ES256, RS256, HS256 or \"\"");
    expect_check("token_typ", "jwt", "key 'token_typ': must be at+jwt or JWT");
    expect_check("token_typ", "JWT", NULL);

    /* HS256 needs hmac_key_file and not signing_key_file. */
    CHECK_INT(load(&config,
                   "issuer = https://a.example.com\ndatabase_url = x\nsigning_alg = HS256\n",
                   error),
              TK_OK);
    CHECK_INT(config_check_server(&config, error), TK_INVALID);
    CHECK_STR(error, "key 'hmac_key_file': required when signing_alg is HS256");
    set_string(&config.hmac_key_file, "/etc/tokend/hmac.key");
    CHECK_INT(config_check_server(&config, error), TK_OK);
    set_string(&config.signing_alg, "ES256");
    CHECK_INT(config_check_server(&config, error), TK_INVALID);
    CHECK_STR(error, "key 'signing_key_file': required");
    config_free(&config);

    /* With a file behind the config, the message names it. */
    char path[256], expected[CONFIG_ERROR_SIZE];
    snprintf(path, sizeof(path), "%s/server.conf", temp_dir);
    write_file(path, "issuer = https://a.example.com/\n",
               strlen("issuer = https://a.example.com/\n"));
    CHECK_INT(config_init_defaults(&config), TK_OK);
    CHECK_INT(config_load_file(&config, path, error), TK_OK);
    CHECK_INT(config_check_server(&config, error), TK_INVALID);
    snprintf(expected, sizeof(expected), "%s: key 'issuer': must not end with '/'", path);
    CHECK_STR(error, expected);
    config_free(&config);
    unlink(path);
}

/* The example as shipped parses and documents every key as "#key = ". */
static void test_example_file(void)
{
    char path[256], error[CONFIG_ERROR_SIZE];
    example_path(path, sizeof(path));
    size_t len = 0;
    char *text = read_whole_file(path, &len);
    CHECK(text != NULL);
    if (text == NULL) {
        fprintf(stderr, "cannot read %s (is $srcdir set?)\n", path);
        return;
    }
    struct tokend_config config;
    CHECK_INT(config_init_defaults(&config), TK_OK);
    CHECK_INT(config_load_file(&config, path, error), TK_OK);
    CHECK_STR(error, "");
    config_free(&config);

    for (size_t i = 0; i < KNOWN_KEY_COUNT; i++) {
        char pattern[64];
        snprintf(pattern, sizeof(pattern), "\n#%s = ", known_keys[i]);
        if (strstr(text, pattern) == NULL) {
            fprintf(stderr, "example lacks \"#%s = \"\n", known_keys[i]);
            CHECK(strstr(text, pattern) != NULL);
        }
    }

    /* Uncomment every "#key = value" line: it must parse, and every value but
     * the three example ones must be the default. */
    size_t uncommented = 0;
    for (char *line = text; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (line[0] == '#') {
            for (size_t i = 0; i < KNOWN_KEY_COUNT; i++) {
                size_t key_len = strlen(known_keys[i]);
                if (strncmp(line + 1, known_keys[i], key_len) == 0 &&
                    strncmp(line + 1 + key_len, " = ", 3) == 0) {
                    line[0] = ' ';
                    uncommented++;
                    break;
                }
            }
        }
        line = next != NULL ? next + 1 : NULL;
    }
    CHECK_INT(uncommented, KNOWN_KEY_COUNT);
    struct tokend_config defaults;
    CHECK_INT(config_init_defaults(&defaults), TK_OK);
    CHECK_INT(config_init_defaults(&config), TK_OK);
    CHECK_INT(config_load_text(&config, text, len, "example", error), TK_OK);
    CHECK_STR(error, "");
    CHECK_STR(config.issuer, "https://auth.example.com");
    CHECK_STR(config.database_url, "postgresql://tokend@localhost/tokend");
    CHECK_STR(config.signing_key_file, "/etc/tokend/signing-key.pem");
    CHECK_INT(config_check_server(&config, error), TK_OK);
    CHECK_STR(config.listen, defaults.listen);
    CHECK_INT(config.listen_mode, defaults.listen_mode);
    CHECK_INT(config.listen_backlog, defaults.listen_backlog);
    CHECK_INT(config.workers, defaults.workers);
    CHECK_INT(config.io_timeout_ms, defaults.io_timeout_ms);
    CHECK_INT(config.shutdown_timeout_ms, defaults.shutdown_timeout_ms);
    CHECK_INT(config.log_level, defaults.log_level);
    CHECK_STR(config.default_audience, defaults.default_audience);
    CHECK_INT(config.token_ttl_s, defaults.token_ttl_s);
    CHECK_STR(config.token_typ, defaults.token_typ);
    CHECK_STR(config.signing_alg, defaults.signing_alg);
    CHECK_STR(config.signing_kid, defaults.signing_kid);
    CHECK_STR(config.hmac_key_file, defaults.hmac_key_file);
    CHECK_STR(config.verify_key_files, defaults.verify_key_files);
    CHECK(config.database_password == NULL);
    CHECK_INT(config.db_timeout_ms, defaults.db_timeout_ms);
    CHECK_INT(config.db_retry_interval_ms, defaults.db_retry_interval_ms);
    CHECK_INT(config.secret_hash_iterations, defaults.secret_hash_iterations);
    CHECK_INT(config.cache_ttl_s, defaults.cache_ttl_s);
    CHECK_INT(config.cache_negative_ttl_s, defaults.cache_negative_ttl_s);
    CHECK_INT(config.cache_max_entries, defaults.cache_max_entries);
    CHECK_INT(config.cache_sweep_interval_s, defaults.cache_sweep_interval_s);
    CHECK_STR(config.shm_name, defaults.shm_name);
    CHECK_STR(config.transport, defaults.transport);
    CHECK_INT(config.max_connections, defaults.max_connections);
    CHECK_INT(config.keepalive_timeout_ms, defaults.keepalive_timeout_ms);
    CHECK_INT(config.read_timeout_ms, defaults.read_timeout_ms);
    CHECK_INT(config.max_params_bytes, defaults.max_params_bytes);
    CHECK_STR(config.admin_token_file, defaults.admin_token_file);
    CHECK_INT(config.admin_timeout_ms, defaults.admin_timeout_ms);
    CHECK_INT(config.admin_rate_limit, defaults.admin_rate_limit);
    CHECK_INT(config.health_queue_high_water, defaults.health_queue_high_water);
    CHECK_INT(config.health_db_interval_ms, defaults.health_db_interval_ms);
    CHECK_STR(config.notify_channel, defaults.notify_channel);
    CHECK_STR(config.user, defaults.user);
    CHECK_STR(config.group, defaults.group);
    CHECK_INT(config.queue_capacity, defaults.queue_capacity);
    CHECK_INT(config.queue_full_wait_ms, defaults.queue_full_wait_ms);
    CHECK_INT(config.flush_batch, defaults.flush_batch);
    CHECK_INT(config.flush_interval_ms, defaults.flush_interval_ms);
    CHECK_INT(config.token_retention_days, defaults.token_retention_days);
    config_free(&config);
    config_free(&defaults);
    free(text);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(temp_dir, sizeof(temp_dir), "%s/test_config.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(temp_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_defaults);
    RUN(test_every_key);
    RUN(test_other_values);
    RUN(test_syntax_errors);
    RUN(test_bad_values);
    RUN(test_durations);
    RUN(test_comments_and_quotes);
    RUN(test_password_file);
    RUN(test_load_file);
    RUN(test_check_server);
    RUN(test_example_file);
    rmdir(temp_dir);
    return unit_test_finish();
}
