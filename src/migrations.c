/*
 * migrations.c - the schema migration runner behind `tokenctl migrate`.
 *
 * The directory is the source of truth for what the schema should be; the
 * schema_migrations table records what the database already has. A run:
 *
 *   1. scans the directory (names, order, no gap, no duplicate) before it
 *      touches the database, so a broken install changes nothing;
 *   2. takes a session advisory lock (MIGRATIONS_LOCK_KEY), so concurrent
 *      runs against one database serialise: the bootstrap CREATE TABLE and
 *      every "is it applied?" decision happen under the lock;
 *   3. creates schema_migrations if missing, reads the applied versions and
 *      refuses to go on when they disagree with the directory (another name
 *      for a version, a version the directory lacks, a hole);
 *   4. runs each pending file with its schema_migrations row in one
 *      transaction, so a version is recorded exactly when its file took
 *      effect; a failed file is rolled back and ends the run;
 *   5. releases the lock (closing the connection would release it too).
 *
 * Ownership: the caller owns the connection; everything allocated here is
 * freed before returning. Failure: one line in `error` and a status code
 * (see migrations.h); migrations committed before a failure stay applied.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokend/migrations.h"
#include "tokend/status.h"

/* "tokendmg" in ASCII: a fixed key every tokend installation agrees on. */
#define MIGRATIONS_LOCK_KEY   "8390042714202467687"
#define MIGRATION_FILE_MAX    (16 * 1024 * 1024)
#define MIGRATION_VERSION_MAX 999999

/* Copies the first line of `text` into `out` (truncated to fit, trailing
 * spaces dropped); control characters become spaces so `out` is one line. */
static void copy_one_line(char *out, size_t out_size, const char *text)
{
    size_t len = 0;
    if (out_size == 0) {
        return;
    }
    while (text != NULL && text[len] != '\0' && text[len] != '\n' && len + 1 < out_size) {
        out[len] = iscntrl((unsigned char)text[len]) ? ' ' : text[len];
        len++;
    }
    while (len > 0 && out[len - 1] == ' ') {
        len--;
    }
    out[len] = '\0';
}

/* True when the connection is gone or the server refuses work for now. */
static bool connection_failed(PGconn *conn, const PGresult *res)
{
    if (PQstatus(conn) == CONNECTION_BAD) {
        return true;
    }
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state == NULL) {
        return res == NULL; /* libpq could not even build a result */
    }
    return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
           strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

/* The server's primary message, or libpq's own first line. */
static void result_message(PGconn *conn, const PGresult *res, char *out, size_t out_size)
{
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    copy_one_line(out, out_size, primary != NULL ? primary : PQerrorMessage(conn));
}

/* Formats the failure of `what` and returns TK_UNAVAILABLE or TK_ERROR. */
static int query_failure(PGconn *conn, const PGresult *res, const char *what, char *error,
                         size_t error_size)
{
    char message[512];
    result_message(conn, res, message, sizeof(message));
    if (connection_failed(conn, res)) {
        snprintf(error, error_size, "database connection lost while %s: %s", what, message);
        return TK_UNAVAILABLE;
    }
    snprintf(error, error_size, "%s failed: %s", what, message);
    return TK_ERROR;
}

/* Runs `sql` without parameters; TK_OK when it succeeded. */
static int run_command(PGconn *conn, const char *sql, const char *what, char *error,
                       size_t error_size)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int rc = TK_OK;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        rc = query_failure(conn, res, what, error, error_size);
    }
    PQclear(res);
    return rc;
}

/* Parses "NNN_name.sql". Returns false when the name does not fit. */
static bool parse_file_name(const char *file_name, struct migration *out)
{
    size_t digits = strspn(file_name, "0123456789");
    if (digits < 3 || file_name[digits] != '_') {
        return false;
    }
    long version = 0;
    for (size_t i = 0; i < digits; i++) {
        version = version * 10 + (file_name[i] - '0');
        if (version > MIGRATION_VERSION_MAX) {
            return false;
        }
    }
    const char *name = file_name + digits + 1;
    size_t name_len = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789_-");
    if (version < 1 || name_len == 0 || name_len > MIGRATION_NAME_MAX ||
        strcmp(name + name_len, ".sql") != 0 || strlen(file_name) >= sizeof(out->file_name)) {
        return false;
    }
    out->version = (int)version;
    memcpy(out->name, name, name_len);
    out->name[name_len] = '\0';
    strcpy(out->file_name, file_name);
    return true;
}

static int compare_versions(const void *a, const void *b)
{
    const struct migration *left = a, *right = b;
    if (left->version != right->version) {
        return left->version < right->version ? -1 : 1;
    }
    return strcmp(left->file_name, right->file_name);
}

static bool ends_with(const char *text, const char *suffix)
{
    size_t text_len = strlen(text), suffix_len = strlen(suffix);
    return text_len >= suffix_len && strcmp(text + text_len - suffix_len, suffix) == 0;
}

int migrations_scan(const char *sql_dir, struct migration_list *out, char *error, size_t error_size)
{
    struct migration *items = NULL;
    size_t count = 0, capacity = 0;
    int rc = TK_ERROR;
    out->items = NULL;
    out->count = 0;

    DIR *dir = opendir(sql_dir);
    if (dir == NULL) {
        snprintf(error, error_size, "cannot read migrations directory %s: %s", sql_dir,
                 strerror(errno));
        return TK_ERROR;
    }
    for (;;) {
        errno = 0;
        struct dirent *entry = readdir(dir);
        if (entry == NULL) {
            if (errno != 0) {
                snprintf(error, error_size, "cannot read migrations directory %s: %s", sql_dir,
                         strerror(errno));
                goto done;
            }
            break;
        }
        if (entry->d_name[0] == '.' || !ends_with(entry->d_name, ".sql")) {
            continue;
        }
        if (count == capacity) {
            size_t new_capacity = capacity == 0 ? 16 : capacity * 2;
            struct migration *grown = realloc(items, new_capacity * sizeof(*items));
            if (grown == NULL) {
                snprintf(error, error_size, "out of memory reading %s", sql_dir);
                goto done;
            }
            items = grown;
            capacity = new_capacity;
        }
        if (!parse_file_name(entry->d_name, &items[count])) {
            char shown[MIGRATION_NAME_MAX + 32];
            copy_one_line(shown, sizeof(shown), entry->d_name);
            snprintf(error, error_size, "%s/%s: a migration file must be named NNN_name.sql",
                     sql_dir, shown);
            rc = TK_INVALID;
            goto done;
        }
        count++;
    }
    if (count == 0) {
        snprintf(error, error_size, "no migration files (NNN_name.sql) in %s", sql_dir);
        rc = TK_INVALID;
        goto done;
    }
    qsort(items, count, sizeof(*items), compare_versions);
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && items[i].version == items[i - 1].version) {
            snprintf(error, error_size, "%s: %s and %s have the same version", sql_dir,
                     items[i - 1].file_name, items[i].file_name);
            rc = TK_INVALID;
            goto done;
        }
        if (items[i].version != (int)i + 1) {
            snprintf(error, error_size, "%s: migration version %03zu is missing (next is %s)",
                     sql_dir, i + 1, items[i].file_name);
            rc = TK_INVALID;
            goto done;
        }
    }
    out->items = items;
    out->count = count;
    items = NULL;
    rc = TK_OK;
done:
    free(items);
    closedir(dir);
    return rc;
}

void migrations_list_free(struct migration_list *list)
{
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

/* Reads the whole file into a NUL-terminated heap string (*text). */
static int read_migration(const char *sql_dir, const struct migration *migration, char **text,
                          char *error, size_t error_size)
{
    char path[PATH_MAX];
    char *data = NULL;
    int rc = TK_ERROR;
    *text = NULL;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", sql_dir, migration->file_name) >=
        sizeof(path)) {
        snprintf(error, error_size, "migration path too long: %s", sql_dir);
        return TK_ERROR;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(error, error_size, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > MIGRATION_FILE_MAX) {
        snprintf(error, error_size, "%s: not a regular file of at most %d bytes", path,
                 MIGRATION_FILE_MAX);
        goto done;
    }
    size_t size = (size_t)st.st_size, got = 0;
    data = malloc(size + 1);
    if (data == NULL) {
        snprintf(error, error_size, "out of memory reading %s", path);
        goto done;
    }
    while (got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            snprintf(error, error_size, "cannot read %s: %s", path,
                     n < 0 ? strerror(errno) : "file shrank while reading");
            goto done;
        }
        got += (size_t)n;
    }
    data[size] = '\0';
    if (memchr(data, '\0', size) != NULL) {
        snprintf(error, error_size, "%s: contains a NUL byte", path);
        goto done;
    }
    *text = data;
    data = NULL;
    rc = TK_OK;
done:
    free(data);
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* Line (1-based) of the character at 1-based `position` in `text`, which
 * PostgreSQL counts in characters, not bytes. 0 when out of range. */
static int line_of_position(const char *text, long position)
{
    int line = 1;
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        if ((*p & 0xC0) == 0x80) {
            continue; /* UTF-8 continuation byte */
        }
        if (++chars == position) {
            return line;
        }
        if (*p == '\n') {
            line++;
        }
    }
    return 0;
}

/* Runs one migration and records it, in one transaction. */
static int apply_one(PGconn *conn, const char *sql_dir, const struct migration *migration,
                     char *error, size_t error_size)
{
    char *sql = NULL;
    char what[MIGRATION_NAME_MAX + 64];
    PGresult *res = NULL;
    int rc = read_migration(sql_dir, migration, &sql, error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    snprintf(what, sizeof(what), "migration %s", migration->file_name);
    rc = run_command(conn, "BEGIN", what, error, error_size);
    if (rc != TK_OK) {
        goto done;
    }

    res = PQexec(conn, sql);
    ExecStatusType status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY) {
        const char *position =
            res != NULL ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
        int line = position != NULL ? line_of_position(sql, atol(position)) : 0;
        if (line > 0 && !connection_failed(conn, res)) {
            char message[512];
            result_message(conn, res, message, sizeof(message));
            snprintf(error, error_size, "migration %s failed at line %d: %s", migration->file_name,
                     line, message);
            rc = TK_ERROR;
        } else {
            rc = query_failure(conn, res, what, error, error_size);
        }
        goto done;
    }
    if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
        snprintf(error, error_size,
                 "migration %s ended its transaction itself (remove BEGIN/COMMIT from it); "
                 "it was not recorded",
                 migration->file_name);
        rc = TK_ERROR;
        goto done;
    }
    PQclear(res);

    char version[16];
    snprintf(version, sizeof(version), "%d", migration->version);
    const char *params[2] = {version, migration->name};
    res = PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                       NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = query_failure(conn, res, what, error, error_size);
        goto done;
    }
    rc = run_command(conn, "COMMIT", what, error, error_size);
done:
    PQclear(res);
    if (rc != TK_OK && PQtransactionStatus(conn) != PQTRANS_IDLE &&
        PQstatus(conn) == CONNECTION_OK) {
        PQclear(PQexec(conn, "ROLLBACK"));
    }
    free(sql);
    return rc;
}

/* Creates schema_migrations when missing and checks its rows against the
 * directory. On TK_OK *applied_count is how many leading versions are in. */
static int check_history(PGconn *conn, const struct migration_list *list, const char *sql_dir,
                         size_t *applied_count, char *error, size_t error_size)
{
    /* Checking first (under the lock) keeps a NOTICE "already exists" away. */
    int rc = run_command(conn,
                         "DO $$ BEGIN IF to_regclass('schema_migrations') IS NULL THEN "
                         "CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
                         "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()); "
                         "END IF; END $$",
                         "creating schema_migrations", error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    PGresult *res = PQexec(conn, "SELECT version, name FROM schema_migrations ORDER BY version");
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = query_failure(conn, res, "reading schema_migrations", error, error_size);
        goto done;
    }
    int rows = PQntuples(res);
    for (int row = 0; row < rows; row++) {
        long version = atol(PQgetvalue(res, row, 0));
        const char *name = PQgetvalue(res, row, 1);
        char shown[MIGRATION_NAME_MAX + 1];
        copy_one_line(shown, sizeof(shown), name);
        if (version < 1 || (size_t)version > list->count) {
            snprintf(error, error_size,
                     "the database has migration %03ld_%s, which is not in %s "
                     "(is this tokenctl older than the database?)",
                     version, shown, sql_dir);
            rc = TK_INVALID;
            goto done;
        }
        const struct migration *expected = &list->items[version - 1];
        if (strcmp(expected->name, name) != 0) {
            snprintf(error, error_size, "the database applied version %03ld as '%s' but %s has %s",
                     version, shown, sql_dir, expected->file_name);
            rc = TK_INVALID;
            goto done;
        }
        if (version != row + 1) {
            snprintf(error, error_size,
                     "the database has migration %03ld but not %03d; refusing to apply out of "
                     "order",
                     version, row + 1);
            rc = TK_INVALID;
            goto done;
        }
    }
    *applied_count = (size_t)rows;
    rc = TK_OK;
done:
    PQclear(res);
    return rc;
}

int migrations_apply(PGconn *conn, const char *sql_dir, migrations_applied_fn on_applied,
                     void *context, char *error, size_t error_size)
{
    struct migration_list list;
    size_t applied = 0;
    int done_count = 0;
    int rc = migrations_scan(sql_dir, &list, error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        char message[512];
        copy_one_line(message, sizeof(message), PQerrorMessage(conn));
        snprintf(error, error_size, "no database connection: %s", message);
        migrations_list_free(&list);
        return TK_UNAVAILABLE;
    }
    rc = run_command(conn, "SELECT pg_advisory_lock(" MIGRATIONS_LOCK_KEY ")",
                     "waiting for the migration lock", error, error_size);
    if (rc != TK_OK) {
        migrations_list_free(&list);
        return rc;
    }
    rc = check_history(conn, &list, sql_dir, &applied, error, error_size);
    for (size_t i = applied; rc == TK_OK && i < list.count; i++) {
        rc = apply_one(conn, sql_dir, &list.items[i], error, error_size);
        if (rc == TK_OK) {
            done_count++;
            if (on_applied != NULL) {
                on_applied(&list.items[i], context);
            }
        }
    }
    if (PQstatus(conn) == CONNECTION_OK) {
        PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" MIGRATIONS_LOCK_KEY ")"));
    }
    migrations_list_free(&list);
    return rc == TK_OK ? done_count : rc;
}
