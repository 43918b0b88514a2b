/*
 * raw_copy.c - the yardstick for bench/flush-rate: the same rows as
 * flush_rate.c, written by the plainest libpq program that keeps one
 * transaction per batch. The default mode, `direct`, is the raw COPY the
 * flusher is compared with:
 *
 *   BEGIN;
 *   COPY tokens (jti, client_id, scope, audience, issued_at, expires_at) FROM STDIN;
 *   COMMIT;
 *
 * No staging table, no ON CONFLICT, blocking libpq calls: what the database
 * itself can take. (The flusher writes the same way, except for a batch
 * that may be a re-send: see src/flusher.c.) Two more modes measure what
 * the tolerant way a re-send needs costs:
 *
 *   staged          COPY into a temporary ON COMMIT DELETE ROWS table, then
 *                   INSERT INTO tokens SELECT ... ON CONFLICT DO NOTHING; COMMIT
 *                   (the shape of the flusher's staged batches)
 *   staged-plain    the same without ON CONFLICT DO NOTHING
 *
 * Rows: unique random 32-hex-digit jtis made before timing starts (the
 * flusher's records are queued before its timing starts too), the same
 * client ids, scopes and audiences as flush_rate.c, issued_at = now,
 * expires_at = now + 3600 (as timestamptz text for `direct`, as epoch
 * seconds for the staged modes, as the flusher sends them). Each batch's
 * COPY text is built inside the timed loop, as the flusher builds its own.
 *
 * Prints one "RESULT key=value ..." line with two rates and the CPU time
 * this process used:
 *   total   rows / (connect .. last COMMIT), like flush_rate's total;
 *   steady  rows after the first batch / (first COMMIT .. last COMMIT),
 *           like flush_rate's steady figure.
 * Any error prints libpq's message and exits 1 (the open transaction dies
 * with the connection).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

#include <libpq-fe.h>

#define TOKEN_TTL_S 3600
#define JTI_SIZE    33

/* What one mode sends. */
struct copy_mode {
    const char *name;
    const char *setup_sql; /* once per connection, or NULL */
    const char *copy_sql;
    const char *finish_sql; /* ends the transaction */
    bool epoch_timestamps;  /* bigint seconds instead of timestamptz text */
};

static const char staging_sql[] =
    "CREATE TEMPORARY TABLE IF NOT EXISTS tokend_staging ("
    " jti uuid, client_id text, scope text, audience text, issued_at bigint,"
    " expires_at bigint) ON COMMIT DELETE ROWS";

static const struct copy_mode modes[] = {
    {"direct", NULL,
     "COPY tokens (jti, client_id, scope, audience, issued_at, expires_at) FROM STDIN", "COMMIT",
     false},
    {"staged", staging_sql, "COPY tokend_staging FROM STDIN",
     "INSERT INTO tokens (jti, client_id, scope, audience, issued_at, expires_at)"
     " SELECT jti, client_id, scope, audience, to_timestamp(issued_at), to_timestamp(expires_at)"
     " FROM tokend_staging ON CONFLICT DO NOTHING; COMMIT",
     true},
    {"staged-plain", staging_sql, "COPY tokend_staging FROM STDIN",
     "INSERT INTO tokens (jti, client_id, scope, audience, issued_at, expires_at)"
     " SELECT jti, client_id, scope, audience, to_timestamp(issued_at), to_timestamp(expires_at)"
     " FROM tokend_staging; COMMIT",
     true},
};

/* Record shape; keep in step with flush_rate.c. */
static const char *const client_names[] = {
    "billing-service", "orders-api",        "inventory-sync", "mobile-gateway",
    "reporting-batch", "partner-acme-prod", "search-indexer", "notifications-worker"};
static const char *const scopes[] = {"read", "read write", "orders:read orders:write",
                                     "inventory:read reports:read profile"};
static const char *const audiences[] = {"https://api.example.com",
                                        "https://orders.internal.example.com/v2"};

static double now_s(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static double cpu_now_s(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

static int parse_long(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        return -1;
    }
    *out = value;
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: raw_copy --db URL --rows N --batch B [--mode direct|staged|staged-plain]\n");
}

/* Runs commands that return no rows (the last one's status counts).
 * Returns 0 or -1 (message printed). */
static int exec_command(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc != 0) {
        fprintf(stderr, "raw_copy: %s: %s", sql, PQerrorMessage(pg));
    }
    PQclear(res);
    return rc;
}

/* One COPY of `len` bytes. Returns 0 or -1 (message printed). */
static int copy_rows(PGconn *pg, const char *copy_sql, const char *data, size_t len)
{
    PGresult *res = PQexec(pg, copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        fprintf(stderr, "raw_copy: COPY: %s", PQerrorMessage(pg));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    if (PQputCopyData(pg, data, (int)len) != 1 || PQputCopyEnd(pg, NULL) != 1) {
        fprintf(stderr, "raw_copy: sending COPY data: %s", PQerrorMessage(pg));
        return -1;
    }
    int rc = 0;
    while ((res = PQgetResult(pg)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            fprintf(stderr, "raw_copy: COPY: %s", PQerrorMessage(pg));
            rc = -1;
        }
        PQclear(res);
    }
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option long_options[] = {{"db", required_argument, NULL, 'd'},
                                                 {"rows", required_argument, NULL, 'n'},
                                                 {"batch", required_argument, NULL, 'b'},
                                                 {"mode", required_argument, NULL, 'm'},
                                                 {NULL, 0, NULL, 0}};
    const struct copy_mode *mode = &modes[0];
    const char *database_url = NULL;
    long rows = 0;
    long batch = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case 'd':
            database_url = optarg;
            break;
        case 'n':
            bad = parse_long(optarg, 1, 1L << 24, &rows);
            break;
        case 'b':
            bad = parse_long(optarg, 1, 100000, &batch);
            break;
        case 'm':
            mode = NULL;
            for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
                if (strcmp(optarg, modes[i].name) == 0) {
                    mode = &modes[i];
                }
            }
            bad = mode == NULL ? -1 : 0;
            break;
        default:
            bad = -1;
        }
        if (bad != 0) {
            usage();
            return 2;
        }
    }
    if (optind != argc || database_url == NULL || rows == 0 || batch == 0) {
        usage();
        return 2;
    }

    int status = 1;
    PGconn *pg = NULL;
    char *data = NULL;
    char(*jtis)[JTI_SIZE] = calloc((size_t)rows, JTI_SIZE);
    /* A row is at most 32 + 3 x 60 + 2 x 22 + 6 separators bytes. */
    size_t data_size = (size_t)batch * 320;
    data = malloc(data_size);
    if (jtis == NULL || data == NULL) {
        fprintf(stderr, "raw_copy: out of memory\n");
        goto done;
    }
    static const char hex[] = "0123456789abcdef";
    for (long i = 0; i < rows; i++) {
        unsigned char random[16];
        if (getrandom(random, sizeof(random), 0) != (ssize_t)sizeof(random)) {
            perror("raw_copy: getrandom");
            goto done;
        }
        for (size_t j = 0; j < sizeof(random); j++) {
            jtis[i][2 * j] = hex[random[j] >> 4];
            jtis[i][2 * j + 1] = hex[random[j] & 15];
        }
    }
    time_t issued_at = time(NULL);
    time_t expires_at = issued_at + TOKEN_TTL_S;
    char issued_text[32];
    char expires_text[32];
    if (mode->epoch_timestamps) {
        snprintf(issued_text, sizeof(issued_text), "%lld", (long long)issued_at);
        snprintf(expires_text, sizeof(expires_text), "%lld", (long long)expires_at);
    } else {
        struct tm tm_utc;
        strftime(issued_text, sizeof(issued_text), "%Y-%m-%d %H:%M:%S+00",
                 gmtime_r(&issued_at, &tm_utc));
        strftime(expires_text, sizeof(expires_text), "%Y-%m-%d %H:%M:%S+00",
                 gmtime_r(&expires_at, &tm_utc));
    }

    double started = now_s();
    double cpu_started = cpu_now_s();
    pg = PQconnectdb(database_url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "raw_copy: connect: %s", PQerrorMessage(pg));
        goto done;
    }
    if (mode->setup_sql != NULL && exec_command(pg, mode->setup_sql) != 0) {
        goto done;
    }
    const size_t n_clients = sizeof(client_names) / sizeof(client_names[0]);
    double first_commit = 0;
    long rows_after_first = 0;
    for (long first = 0; first < rows; first += batch) {
        long end = first + batch < rows ? first + batch : rows;
        size_t len = 0;
        for (long i = first; i < end; i++) {
            int n = snprintf(data + len, data_size - len, "%s\t%s-%02ld\t%s\t%s\t%s\t%s\n", jtis[i],
                             client_names[(size_t)i % n_clients], (i / (long)n_clients) % 16,
                             scopes[(size_t)i % (sizeof(scopes) / sizeof(scopes[0]))],
                             audiences[(size_t)i % (sizeof(audiences) / sizeof(audiences[0]))],
                             issued_text, expires_text);
            if (n < 0 || (size_t)n >= data_size - len) {
                fprintf(stderr, "raw_copy: row %ld does not fit\n", i);
                goto done;
            }
            len += (size_t)n;
        }
        if (exec_command(pg, "BEGIN") != 0 || copy_rows(pg, mode->copy_sql, data, len) != 0 ||
            exec_command(pg, mode->finish_sql) != 0) {
            goto done;
        }
        if (first == 0) {
            first_commit = now_s();
            rows_after_first = rows - end;
        }
    }
    double finished = now_s();
    double total_s = finished - started;
    double steady_s = finished - first_commit;
    printf("RESULT mode=%s rows=%ld batch=%ld total_s=%.4f rows_per_s=%.0f first_release_s=%.4f "
           "steady_rows=%ld steady_s=%.4f steady_rows_per_s=%.0f cpu_s=%.3f\n",
           mode->name, rows, batch, total_s, (double)rows / total_s, first_commit - started,
           rows_after_first, steady_s, steady_s > 0 ? (double)rows_after_first / steady_s : 0.0,
           cpu_now_s() - cpu_started);
    status = 0;
done:
    PQfinish(pg);
    free(data);
    free(jtis);
    return status;
}
