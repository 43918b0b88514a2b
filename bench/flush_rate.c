/*
 * flush_rate.c - how many rows per second tokend's flusher writes to
 * PostgreSQL, measured on the real flusher_main() and the real queue.
 *
 * Built by bench/flush-rate together with the tokend sources it needs (see
 * the cc line there); not part of the autotools build.
 *
 * One run:
 *   1. Creates a private shared-memory segment (SHM_SEGMENT_OWN, a unique
 *      name, capacity the smallest power of two >= rows) and pushes `rows`
 *      synthetic records into its ring through token_queue_push, exactly as
 *      a worker would: unique random 32-hex-digit jtis, client ids, scopes
 *      and audiences of realistic length (the same shape raw_copy.c sends),
 *      issued_at = now, expires_at = now + 3600.
 *   2. Forks. The child runs flusher_main() with a config from
 *      config_init_defaults() plus database_url, flush_batch and
 *      flush_interval_ms from the command line, and exits with its status.
 *   3. The parent only watches token_queue_depth() (every 1 ms) until it
 *      is 0, i.e. until the last batch was committed and released, and
 *      reaps the child. It sends SIGTERM once fewer than a batch of records
 *      are left: the flusher then writes the rest at once (as it does when
 *      draining) instead of waiting flush_interval_ms for a partial batch,
 *      and returns 0 when the queue is empty.
 *
 * Two rates come out, on one "RESULT key=value ..." line, with the CPU
 * time the flusher process used (cpu_s, from wait4):
 *   total   rows / (fork .. queue empty): includes the child's start-up
 *           (connecting, the partition maintenance it runs first, creating
 *           its staging table) and the first batch;
 *   steady  rows still queued at the first decrease of the depth / (that
 *           moment .. queue empty): the flusher's sustained rate once it
 *           is running, comparable with raw_copy.c's steady figure.
 *
 * Failure: any set-up error, a child that exits before the queue is empty,
 * a queue that does not empty within --timeout-s, or SIGINT/SIGTERM prints a
 * message and exits 1 (the child is killed first). The segment is unlinked right after
 * it is created, so nothing stays in /dev/shm whatever happens.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tokend/config.h"
#include "tokend/flusher.h"
#include "tokend/logging.h"
#include "tokend/shm_segment.h"
#include "tokend/status.h"
#include "tokend/token_queue.h"

/* Between depth readings. Finer polling buys no precision worth having
 * (a run lasts seconds) and costs CPU the flusher and PostgreSQL share:
 * at 100 us the poll loop alone took a noticeable share of a core. */
#define POLL_INTERVAL_NS 1000000L
#define TOKEN_TTL_S      3600

/* Record shape; keep in step with raw_copy.c. */
static const char *const client_names[] = {
    "billing-service", "orders-api",        "inventory-sync", "mobile-gateway",
    "reporting-batch", "partner-acme-prod", "search-indexer", "notifications-worker"};
static const char *const scopes[] = {"read", "read write", "orders:read orders:write",
                                     "inventory:read reports:read profile"};
static const char *const audiences[] = {"https://api.example.com",
                                        "https://orders.internal.example.com/v2"};

struct options {
    const char *database_url;
    long rows;
    int batch;
    int interval_ms;
    int db_timeout_ms; /* 0 = the config default */
    int timeout_s;
};

static volatile sig_atomic_t interrupted;

static void on_interrupt(int signo)
{
    (void)signo;
    interrupted = 1;
}

static double now_s(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static double cpu_seconds(const struct rusage *usage)
{
    return (double)(usage->ru_utime.tv_sec + usage->ru_stime.tv_sec) +
           (double)(usage->ru_utime.tv_usec + usage->ru_stime.tv_usec) / 1e6;
}

static void usage(void)
{
    fprintf(stderr, "usage: flush_rate --db URL --rows N --batch B [--interval-ms MS]\n"
                    "                  [--db-timeout-ms MS] [--timeout-s S]\n");
}

static int parse_long(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        return TK_INVALID;
    }
    *out = value;
    return TK_OK;
}

static int parse_options(int argc, char **argv, struct options *options)
{
    static const struct option long_options[] = {{"db", required_argument, NULL, 'd'},
                                                 {"rows", required_argument, NULL, 'n'},
                                                 {"batch", required_argument, NULL, 'b'},
                                                 {"interval-ms", required_argument, NULL, 'i'},
                                                 {"db-timeout-ms", required_argument, NULL, 'T'},
                                                 {"timeout-s", required_argument, NULL, 't'},
                                                 {NULL, 0, NULL, 0}};
    *options = (struct options){.interval_ms = 1000, .timeout_s = 600};
    int opt;
    while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        long value = 0;
        int rc = TK_OK;
        switch (opt) {
        case 'd':
            options->database_url = optarg;
            break;
        case 'n':
            rc = parse_long(optarg, 1, TOKEN_QUEUE_MAX_CAPACITY, &value);
            options->rows = value;
            break;
        case 'b':
            rc = parse_long(optarg, 1, 100000, &value);
            options->batch = (int)value;
            break;
        case 'i':
            rc = parse_long(optarg, 10, 60000, &value);
            options->interval_ms = (int)value;
            break;
        case 'T':
            rc = parse_long(optarg, 100, 60000, &value);
            options->db_timeout_ms = (int)value;
            break;
        case 't':
            rc = parse_long(optarg, 1, 86400, &value);
            options->timeout_s = (int)value;
            break;
        default:
            return TK_INVALID;
        }
        if (rc != TK_OK) {
            fprintf(stderr, "flush_rate: bad value '%s'\n", optarg);
            return TK_INVALID;
        }
    }
    if (optind != argc || options->database_url == NULL || options->rows == 0 ||
        options->batch == 0) {
        return TK_INVALID;
    }
    return TK_OK;
}

static uint64_t capacity_for(long rows)
{
    uint64_t capacity = TOKEN_QUEUE_MIN_CAPACITY;
    while (capacity < (uint64_t)rows) {
        capacity <<= 1;
    }
    return capacity;
}

/* Pushes `rows` records. Returns TK_OK or TK_ERROR (message printed). */
static int fill_queue(struct token_queue *queue, long rows)
{
    static const char hex[] = "0123456789abcdef";
    int64_t issued_at = (int64_t)time(NULL);
    int32_t self = (int32_t)getpid();
    struct token_record record;
    for (long i = 0; i < rows; i++) {
        unsigned char random[16];
        if (getrandom(random, sizeof(random), 0) != (ssize_t)sizeof(random)) {
            perror("flush_rate: getrandom");
            return TK_ERROR;
        }
        memset(&record, 0, sizeof(record));
        for (size_t j = 0; j < sizeof(random); j++) {
            record.jti[2 * j] = hex[random[j] >> 4];
            record.jti[2 * j + 1] = hex[random[j] & 15];
        }
        size_t n_clients = sizeof(client_names) / sizeof(client_names[0]);
        snprintf(record.client_id, sizeof(record.client_id), "%s-%02ld",
                 client_names[(size_t)i % n_clients], (i / (long)n_clients) % 16);
        snprintf(record.scope, sizeof(record.scope), "%s",
                 scopes[(size_t)i % (sizeof(scopes) / sizeof(scopes[0]))]);
        snprintf(record.audience, sizeof(record.audience), "%s",
                 audiences[(size_t)i % (sizeof(audiences) / sizeof(audiences[0]))]);
        record.issued_at_s = issued_at;
        record.expires_at_s = issued_at + TOKEN_TTL_S;
        record.worker_pid = self;
        int rc = token_queue_push(queue, &record, 0);
        if (rc != TK_OK) {
            fprintf(stderr, "flush_rate: token_queue_push of record %ld failed (%d)\n", i, rc);
            return TK_ERROR;
        }
    }
    return TK_OK;
}

/* Child: the flusher, as the master would start it. Never returns. */
static void run_flusher(const struct options *options, struct shm_segment *segment)
{
    struct tokend_config config;
    if (config_init_defaults(&config) != TK_OK) {
        _exit(1);
    }
    free(config.database_url);
    config.database_url = strdup(options->database_url);
    if (config.database_url == NULL) {
        _exit(1);
    }
    config.flush_batch = options->batch;
    config.flush_interval_ms = options->interval_ms;
    if (options->db_timeout_ms > 0) {
        config.db_timeout_ms = options->db_timeout_ms;
    }
    log_set_program("flush_rate-flusher");
    int status = flusher_main(&config, segment);
    config_free(&config);
    _exit(status);
}

static void stop_child(pid_t child)
{
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
}

int main(int argc, char **argv)
{
    struct options options;
    if (parse_options(argc, argv, &options) != TK_OK) {
        usage();
        return 2;
    }
    int status = 1;
    char name[64];
    snprintf(name, sizeof(name), "/tokend-flushbench.%ld.%ld", (long)getpid(), (long)time(NULL));
    uint64_t capacity = capacity_for(options.rows);
    struct shm_segment segment;
    char error[256];
    if (shm_segment_open(&segment, name, capacity, SHM_SEGMENT_OWN, error, sizeof(error)) !=
        TK_OK) {
        fprintf(stderr, "flush_rate: %s\n", error);
        return 1;
    }
    shm_segment_unlink(name); /* the mapping lives on; nothing is left behind */
    token_queue_set_producer_pid(&segment.queue, getpid());
    if (fill_queue(&segment.queue, options.rows) != TK_OK) {
        goto done;
    }
    uint64_t queued = token_queue_depth(&segment.queue);
    if (queued != (uint64_t)options.rows) {
        fprintf(stderr, "flush_rate: queue holds %llu records, not %ld\n",
                (unsigned long long)queued, options.rows);
        goto done;
    }
    fflush(NULL);

    double started = now_s();
    pid_t child = fork();
    if (child < 0) {
        perror("flush_rate: fork");
        goto done;
    }
    if (child == 0) {
        run_flusher(&options, &segment);
    }
    /* Interrupted, the parent takes its flusher down with it: a flusher
     * left draining on its own would outlive the benchmark's database. */
    struct sigaction interrupt_action = {.sa_handler = on_interrupt};
    sigemptyset(&interrupt_action.sa_mask);
    sigaction(SIGINT, &interrupt_action, NULL);
    sigaction(SIGTERM, &interrupt_action, NULL);

    double first_release = 0;
    uint64_t rows_after_first = 0;
    double finished = 0;
    bool stop_sent = false;
    bool reaped = false;
    int child_status = 0;
    struct rusage usage;
    double deadline = started + options.timeout_s;
    for (;;) {
        uint64_t depth = token_queue_depth(&segment.queue);
        double now = now_s();
        if (first_release == 0 && depth < queued) {
            first_release = now;
            rows_after_first = depth;
        }
        if (depth == 0) {
            finished = now;
            break;
        }
        if (!stop_sent && depth < (uint64_t)options.batch) {
            /* The last, partial batch: a stop request has the flusher write
             * it at once instead of after flush_interval_ms. */
            kill(child, SIGTERM);
            stop_sent = true;
        }
        if (wait4(child, &child_status, WNOHANG, &usage) == child) {
            /* After a stop request it may have emptied the queue and left
             * between the reading above and this one. */
            reaped = true;
            depth = token_queue_depth(&segment.queue);
            if (depth == 0) {
                finished = now_s();
                break;
            }
            fprintf(stderr, "flush_rate: the flusher exited with %llu rows still queued\n",
                    (unsigned long long)depth);
            goto done;
        }
        if (now > deadline || interrupted) {
            fprintf(stderr, "flush_rate: %s with %llu rows still queued\n",
                    interrupted ? "interrupted" : "timed out", (unsigned long long)depth);
            stop_child(child);
            goto done;
        }
        struct timespec pause = {.tv_sec = 0, .tv_nsec = POLL_INTERVAL_NS};
        nanosleep(&pause, NULL);
    }

    if (!stop_sent) {
        kill(child, SIGTERM);
    }
    if (!reaped && wait4(child, &child_status, 0, &usage) != child) {
        perror("flush_rate: wait4");
        goto done;
    }
    if (!WIFEXITED(child_status) || WEXITSTATUS(child_status) != 0) {
        fprintf(stderr, "flush_rate: the flusher did not exit 0 (status 0x%x)\n", child_status);
        goto done;
    }
    if (first_release == 0) { /* emptied before a decrease was seen */
        first_release = finished;
        rows_after_first = 0;
    }
    double total_s = finished - started;
    double steady_s = finished - first_release;
    printf("RESULT rows=%ld batch=%d total_s=%.4f rows_per_s=%.0f first_release_s=%.4f "
           "steady_rows=%llu steady_s=%.4f steady_rows_per_s=%.0f cpu_s=%.3f\n",
           options.rows, options.batch, total_s, (double)options.rows / total_s,
           first_release - started, (unsigned long long)rows_after_first, steady_s,
           steady_s > 0 ? (double)rows_after_first / steady_s : 0.0, cpu_seconds(&usage));
    status = 0;
done:
    shm_segment_close(&segment);
    return status;
}
