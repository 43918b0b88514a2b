/*
 * flusher.c - the process that moves issued tokens from the shared-memory
 * queue into PostgreSQL.
 *
 * Loop: when the queue holds flush_batch records (or half its capacity, if
 * that is less), or flush_interval_ms has passed since the last flush and
 * it holds any, turn up to flush_batch records into COPY text (read from
 * their ring slots in place) and write them in one transaction, one of two
 * ways:
 *
 *   direct:  BEGIN; COPY tokens FROM STDIN; COMMIT;
 *   staged:  BEGIN; COPY tokend_staging FROM STDIN;   -- temporary table
 *            INSERT INTO tokens SELECT * FROM tokend_staging
 *              ON CONFLICT DO NOTHING; COMMIT;
 *
 * and release the records from the queue only after COMMIT answered
 * "COMMIT" on the same connection that ran BEGIN (db_conn_generation
 * unchanged). Anything else - a lost connection, a timeout, an SQL error, a
 * crash of this process anywhere in between - leaves the records in the
 * queue to be sent again.
 *
 * A re-sent batch may hold records the server did commit, so it must skip
 * them: that is the staged way (the primary key is (jti, issued_at), and a
 * re-sent record carries the same issued_at). It costs the server about
 * half as much again as a plain COPY (bench/RESULTS.md), so it is used only
 * when a batch can be a re-send: the first batch after start (a
 * predecessor may have died between COMMIT and release) and every batch
 * after a failed write, until one succeeds. Otherwise the direct way; and
 * should a direct COPY still meet a stored jti (unique violation), the
 * transaction is rolled back and the batch goes the staged way. Either way
 * a record is stored exactly once.
 *
 * While PostgreSQL is away the queue holds the tokens and the flusher
 * retries with exponential backoff (100 ms doubling to 10 s); db_conn logs
 * one line when the outage starts and one when it ends. Every database step
 * has a deadline (five times db_timeout_ms: a step moves a whole batch), so
 * nothing hangs.
 *
 * Once an hour (and at start) it keeps the day partitions of `tokens`:
 * creates today's and the next three days', drops those older than
 * token_retention_days, through the SQL functions of sql/002_tokens.sql, and
 * purges the revocations of tokens long expired (sql/003_revocations.sql).
 *
 * Instance duties besides flushing (each turn of the loop, which comes
 * round every POLL_INTERVAL_MS at least):
 *   - its stats slot (instance_stats.h): records flushed, batches, failed
 *     batches, the last batch's duration, whether and when the database
 *     last answered, the age of the oldest queued record, a heartbeat;
 *   - when it has written nothing for a third of health_db_interval_ms it
 *     pings the database (SELECT 1), so /health knows the database is
 *     there even when no tokens are issued;
 *   - once a second it retires the stats slots of processes that died
 *     without the master noticing (the mod_fcgid layout has no master);
 *   - the LISTEN connection (client_listener.c) turns client changes from
 *     tokenctl and other hosts into admin events for this instance.
 *
 * SIGTERM/SIGINT: flush whatever is queued, regardless of batch size and
 * interval, and exit 0 once the queue is empty; give up after
 * shutdown_timeout (exit 1), leaving the rest in the segment for the next
 * start. The master sends it only after every worker has exited, so nothing
 * new arrives while draining.
 *
 * SIGUSR2 (hand over): a reload changed what the flusher uses. Finish the
 * batch in progress, then exit 0 at once, leaving the queue to the
 * successor the master starts next (workers go on issuing meanwhile, so
 * draining could never end). The successor writes its first batch the
 * tolerant way, like any new flusher. Ignored once a stop began.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "tokend/buffer.h"
#include "tokend/child_process.h"
#include "tokend/client_listener.h"
#include "tokend/db_conn.h"
#include "tokend/flusher.h"
#include "tokend/instance_stats.h"
#include "tokend/logging.h"
#include "tokend/monotonic_clock.h"
#include "tokend/status.h"

#define POLL_INTERVAL_MS        5
#define BACKOFF_MIN_MS          100
#define BACKOFF_MAX_MS          10000
#define MAINTENANCE_INTERVAL_MS (3600 * 1000)
#define PARTITION_DAYS_AHEAD    3
#define RETIRE_INTERVAL_MS      1000
#define OLDEST_INTERVAL_MS      200

/* Every batch goes in one of two ways (see the design block). */
enum batch_mode {
    BATCH_DIRECT, /* COPY straight into tokens: no record can be stored already */
    BATCH_STAGED, /* COPY into a staging table, INSERT ... ON CONFLICT DO NOTHING */
};

static const char direct_copy_sql[] =
    "COPY tokens (jti, client_id, scope, audience, issued_at, expires_at) FROM STDIN";
static const char staging_sql[] =
    "CREATE TEMPORARY TABLE IF NOT EXISTS tokend_staging (jti uuid, client_id text,"
    " scope text, audience text, issued_at timestamptz, expires_at timestamptz)"
    " ON COMMIT DELETE ROWS";
static const char staged_copy_sql[] = "COPY tokend_staging FROM STDIN";
static const char staged_insert_sql[] =
    "INSERT INTO tokens (jti, client_id, scope, audience, issued_at, expires_at)"
    " SELECT jti, client_id, scope, audience, issued_at, expires_at FROM tokend_staging"
    " ON CONFLICT DO NOTHING";
static const char unique_violation[] = "23505";

/* A time in COPY's text form, remembered for the last second formatted:
 * the records of a batch share a handful of seconds. */
struct timestamp_text {
    int64_t seconds;
    char text[32];
    size_t len;
};

struct flusher_state {
    const struct tokend_config *config;
    struct token_queue *queue;
    struct stats_slot *stats; /* this process's slot, or NULL */
    int64_t last_db_ok_ms;    /* monotonic: the last working database contact */
    int64_t next_retire_ms;
    int64_t next_oldest_ms;
    struct db_conn *db;
    struct buffer copy_data;         /* the batch in COPY text form */
    struct timestamp_text issued_at; /* formatting caches */
    struct timestamp_text expires_at;
    bool uncertain;                   /* the head may hold records stored already */
    bool duplicate;                   /* the last write failed on a stored jti */
    unsigned long staging_generation; /* connection the staging table exists on; 0 = none */
    uint64_t batch_trigger;           /* depth that starts a flush before the interval */
    int64_t last_flush_ms;
    int64_t next_maintenance_ms;
    int backoff_ms;
};

static volatile sig_atomic_t stop_requested;
static bool handover_requested;

/* Appends `text` as a COPY text-format field: backslash, tab, newline and
 * carriage return escaped (the only bytes with meaning there). */
static void append_copy_field(struct buffer *out, const char *text)
{
    const char *run = text;
    for (const char *p = text; *p != '\0'; p++) {
        const char *escape = NULL;
        switch (*p) {
        case '\\':
            escape = "\\\\";
            break;
        case '\t':
            escape = "\\t";
            break;
        case '\n':
            escape = "\\n";
            break;
        case '\r':
            escape = "\\r";
            break;
        default:
            continue;
        }
        buffer_append(out, run, (size_t)(p - run));
        buffer_append_str(out, escape);
        run = p + 1;
    }
    buffer_append_str(out, run);
}

/* Appends `seconds` since the epoch as "YYYY-MM-DD HH:MM:SS+00". */
static void append_timestamp(struct buffer *out, struct timestamp_text *cache, int64_t seconds)
{
    if (cache->len == 0 || cache->seconds != seconds) {
        time_t t = (time_t)seconds;
        struct tm utc;
        if (gmtime_r(&t, &utc) == NULL) {
            memset(&utc, 0, sizeof(utc));
        }
        cache->len = strftime(cache->text, sizeof(cache->text), "%Y-%m-%d %H:%M:%S+00", &utc);
        cache->seconds = seconds;
    }
    buffer_append(out, cache->text, cache->len);
}

/* token_queue_visit callback: one record as one COPY line, read from its
 * ring slot in place. */
static void append_copy_line(void *context, const struct token_record *record)
{
    struct flusher_state *state = context;
    struct buffer *out = &state->copy_data;
    append_copy_field(out, record->jti);
    buffer_append(out, "\t", 1);
    append_copy_field(out, record->client_id);
    buffer_append(out, "\t", 1);
    append_copy_field(out, record->scope);
    buffer_append(out, "\t", 1);
    append_copy_field(out, record->audience);
    buffer_append(out, "\t", 1);
    append_timestamp(out, &state->issued_at, record->issued_at_s);
    buffer_append(out, "\t", 1);
    append_timestamp(out, &state->expires_at, record->expires_at_s);
    buffer_append(out, "\n", 1);
}

/* One transaction for the batch in copy_data. Returns TK_OK only when
 * COMMIT succeeded on the connection that began the transaction; TK_ERROR
 * with db_conn_last_sqlstate() for a server error. */
static int write_batch(struct flusher_state *state, enum batch_mode mode)
{
    struct db_conn *db = state->db;
    /* BEGIN first: it is what (re)connects, so everything after it runs on
     * the connection it opened, or fails. */
    int rc = db_conn_exec(db, "BEGIN", NULL);
    if (rc != TK_OK) {
        return rc;
    }
    unsigned long generation = db_conn_generation(db);
    bool created_staging = false;
    if (mode == BATCH_STAGED && state->staging_generation != generation) {
        /* A new connection: its temporary staging table does not exist yet.
         * Created inside the transaction, it is gone again if this
         * transaction fails, hence the reset below. */
        rc = db_conn_exec(db, staging_sql, NULL);
        created_staging = rc == TK_OK;
        state->staging_generation = created_staging ? generation : 0;
    }
    if (rc == TK_OK) {
        rc = db_conn_copy_in(db, mode == BATCH_DIRECT ? direct_copy_sql : staged_copy_sql,
                             state->copy_data.data, state->copy_data.len);
    }
    if (rc == TK_OK && mode == BATCH_STAGED) {
        rc = db_conn_exec(db, staged_insert_sql, NULL);
    }
    PGresult *commit = NULL;
    if (rc == TK_OK) {
        rc = db_conn_exec(db, "COMMIT", &commit);
    }
    if (rc == TK_OK &&
        (db_conn_generation(db) != generation || strcmp(PQcmdStatus(commit), "COMMIT") != 0)) {
        log_error("flusher: the batch was not committed (%s)", PQcmdStatus(commit));
        rc = TK_ERROR;
    }
    PQclear(commit);
    state->duplicate = rc == TK_ERROR && strcmp(db_conn_last_sqlstate(db), unique_violation) == 0;
    if (rc != TK_OK) {
        if (created_staging) {
            state->staging_generation = 0;
        }
        if (rc == TK_ERROR && db_conn_generation(db) == generation) {
            /* A server error on a connection still open: end the
             * transaction. (TK_UNAVAILABLE closed the connection, which
             * ends it by itself.) */
            db_conn_exec(db, "ROLLBACK", NULL);
        }
    }
    return rc;
}

static void maintain_partitions(struct flusher_state *state)
{
    char sql[320];
    /* Each function in FROM runs once (a (f()).* in the select list would
     * call it once per output column). */
    snprintf(sql, sizeof(sql),
             "SELECT created, dropped.dropped_partitions FROM "
             "tokend_ensure_token_partitions(%d) AS created, "
             "tokend_drop_token_partitions((now() AT TIME ZONE 'UTC')::date - %d) AS dropped",
             PARTITION_DAYS_AHEAD, state->config->token_retention_days);
    PGresult *res = NULL;
    int rc = db_conn_exec(state->db, sql, &res);
    if (rc == TK_OK && PQntuples(res) == 1) {
        int created = atoi(PQgetvalue(res, 0, 0));
        int dropped = atoi(PQgetvalue(res, 0, 1));
        if (created > 0 || dropped > 0) {
            log_info("tokens partitions: %d created, %d dropped (older than %d days)", created,
                     dropped, state->config->token_retention_days);
        }
    }
    PQclear(res);
    /* Revocations of tokens long expired go with the old partitions, in a
     * statement of their own: a database not yet migrated to 003 keeps its
     * partitions maintained (the failure is logged by db_conn). */
    res = NULL;
    if (db_conn_exec(state->db, "SELECT tokend_purge_revocations()", &res) == TK_OK &&
        PQntuples(res) == 1 && atoll(PQgetvalue(res, 0, 0)) > 0) {
        log_info("revocations: %lld of tokens expired over an hour ago purged",
                 atoll(PQgetvalue(res, 0, 0)));
    }
    PQclear(res);
    /* On failure try again in a minute rather than an hour. */
    state->next_maintenance_ms =
        monotonic_ms() + (rc == TK_OK ? MAINTENANCE_INTERVAL_MS : 60 * 1000);
}

/* Records a stop (SIGTERM, SIGINT) or hand-over (SIGUSR2) signal taken
 * from `signals` by sigtimedwait. */
static void take_signal(int signo)
{
    if (signo == SIGUSR2) {
        handover_requested = true;
    } else if (signo > 0) {
        stop_requested = 1;
    }
}

/* Sleeps `ms`. Before a stop request a stop or hand-over signal ends the
 * sleep early; after it the full time is slept (a drain that keeps failing
 * backs off like any retry). */
static void pause_ms(const sigset_t *signals, int ms)
{
    struct timespec wait = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    if (stop_requested) {
        nanosleep(&wait, NULL);
        return;
    }
    take_signal(sigtimedwait(signals, NULL, &wait));
}

/* Takes a pending stop or hand-over signal without waiting: a flusher busy
 * with back-to-back batches never pauses. */
static void poll_signals(const sigset_t *signals)
{
    static const struct timespec no_wait = {0, 0};
    if (!stop_requested) {
        take_signal(sigtimedwait(signals, NULL, &no_wait));
    }
}

/* Records whether the database just answered. */
static void database_answered(struct flusher_state *state, bool up)
{
    stats_gauge_set(state->stats, GAUGE_DB_UP, up ? 1 : 0);
    if (up) {
        state->last_db_ok_ms = monotonic_ms();
        stats_gauge_set(state->stats, GAUGE_DB_LAST_OK_MS, stats_wall_ms());
    }
}

/* The instance duties of one turn (see the design block). */
static void instance_duties(struct flusher_state *state, struct shm_segment *segment,
                            struct client_listener *listener)
{
    int64_t now = monotonic_ms();
    stats_gauge_set(state->stats, GAUGE_HEARTBEAT_MS, stats_wall_ms());
    if (listener != NULL) {
        client_listener_poll(listener, segment->events, now);
    }
    if (now >= state->next_retire_ms) {
        stats_retire_dead(segment->stats);
        state->next_retire_ms = now + RETIRE_INTERVAL_MS;
    }
    if (now >= state->next_oldest_ms) {
        struct token_record head;
        uint64_t span = 0;
        bool any = token_queue_depth(state->queue) > 0 &&
                   token_queue_peek(state->queue, &head, 1, &span) == 1;
        stats_gauge_set(state->stats, GAUGE_QUEUE_OLDEST_S, any ? head.issued_at_s : 0);
        state->next_oldest_ms = now + OLDEST_INTERVAL_MS;
    }
    if (!stop_requested && token_queue_depth(state->queue) == 0 &&
        now - state->last_db_ok_ms >= state->config->health_db_interval_ms / 3) {
        int rc = db_conn_exec(state->db, "SELECT 1", NULL);
        database_answered(state, rc == TK_OK);
        if (rc != TK_OK) {
            state->last_db_ok_ms = now; /* next ping after another interval */
        }
    }
}

/* One turn of the loop. Returns true when the queue is empty. */
static bool flush_once(struct flusher_state *state, const sigset_t *stop_signals)
{
    const struct tokend_config *config = state->config;
    int64_t now = monotonic_ms();
    uint64_t depth = token_queue_depth(state->queue);
    if (depth == 0) {
        state->last_flush_ms = now;
        return true;
    }
    bool due = stop_requested || depth >= state->batch_trigger ||
               now - state->last_flush_ms >= config->flush_interval_ms;
    if (!due) {
        return false;
    }
    uint64_t span = 0;
    buffer_reset(&state->copy_data);
    size_t count = token_queue_visit(state->queue, (size_t)config->flush_batch, append_copy_line,
                                     state, &span);
    if (count == 0) {
        if (span > 0) {
            token_queue_release(state->queue, span); /* only abandoned slots */
        } else {
            pause_ms(stop_signals, 1); /* a producer is publishing the head slot */
        }
        return false;
    }
    if (buffer_failed(&state->copy_data)) {
        log_error("flusher: out of memory building a batch");
        pause_ms(stop_signals, BACKOFF_MAX_MS);
        return false;
    }
    int64_t started_ms = monotonic_ms();
    int rc = write_batch(state, state->uncertain ? BATCH_STAGED : BATCH_DIRECT);
    if (rc == TK_ERROR && !state->uncertain && state->duplicate) {
        /* Some record is stored already after all: send the batch again
         * the way that skips those. */
        log_warn("flusher: a batch held tokens already stored; writing it again without them");
        rc = write_batch(state, BATCH_STAGED);
    }
    if (rc == TK_OK) {
        token_queue_release(state->queue, span);
        stats_add(state->stats, STAT_FLUSHED, count);
        stats_add(state->stats, STAT_FLUSH_BATCHES, 1);
        stats_gauge_set(state->stats, GAUGE_LAST_FLUSH_US, (monotonic_ms() - started_ms) * 1000);
        database_answered(state, true);
        state->last_flush_ms = monotonic_ms();
        state->backoff_ms = 0;
        state->uncertain = false;
        return false;
    }
    /* Whether the server committed before the failure is unknown: the next
     * write of these records must tolerate copies already stored. */
    stats_add(state->stats, STAT_FLUSH_ERRORS, 1);
    database_answered(state, rc == TK_ERROR); /* an SQL error: the server is there */
    state->uncertain = true;
    state->backoff_ms = state->backoff_ms == 0 ? BACKOFF_MIN_MS : state->backoff_ms * 2;
    if (state->backoff_ms > BACKOFF_MAX_MS) {
        state->backoff_ms = BACKOFF_MAX_MS;
    }
    pause_ms(stop_signals, state->backoff_ms);
    return false;
}

int flusher_main(const struct tokend_config *config, struct shm_segment *segment)
{
    struct token_queue *queue = &segment->queue;
    /* Stop signals stay blocked and are taken synchronously in pause_ms. */
    sigset_t stop_signals, unused_wait_mask;
    if (!child_process_setup("tokend-flusher", &stop_requested, &stop_signals, &unused_wait_mask)) {
        stop_requested = 1; /* the master is gone: drain and leave */
    }
    sigaddset(&stop_signals, SIGUSR2); /* hand over: blocked, taken like the stop signals */
    sigprocmask(SIG_BLOCK, &stop_signals, NULL);

    struct flusher_state state = {.config = config, .queue = queue};
    buffer_init(&state.copy_data);
    state.stats = stats_slot_claim(segment->stats, getpid(), STAT_ROLE_FLUSHER,
                                   admin_event_published(segment->events));
    if (state.stats == NULL) {
        log_warn("flusher: every stats slot of segment %s is taken; its counters are not shared",
                 segment->name);
    }
    struct client_listener *listener =
        client_listener_create(config->database_url, config->database_password,
                               config->notify_channel, config->db_timeout_ms);
    int status = 1;
    /* A batch is one COPY of up to flush_batch rows: it gets five times the
     * deadline of a worker's single-row query before it counts as lost. */
    state.db = db_conn_create(config->database_url, config->database_password,
                              config->db_timeout_ms * 5, 0);
    /* A predecessor may have committed the head batch and died before
     * releasing it: the first batch is written the tolerant way. */
    state.uncertain = true;
    if (state.db == NULL) {
        log_error("flusher start-up failed: out of memory");
        goto done;
    }
    state.last_flush_ms = monotonic_ms();
    /* A full batch starts a flush at once; with a queue smaller than two
     * batches, half the queue does, so a small queue does not fill up
     * between intervals while the database is fine. */
    state.batch_trigger = (uint64_t)config->flush_batch;
    if (state.batch_trigger > queue->capacity / 2) {
        state.batch_trigger = queue->capacity / 2;
    }
    uint64_t leftover = token_queue_depth(queue);
    if (leftover > 0) {
        log_info("flusher: %llu queued token(s) to write", (unsigned long long)leftover);
    }
    child_process_ready();
    int64_t drain_deadline_ms = -1;
    for (;;) {
        poll_signals(&stop_signals);
        if (handover_requested && !stop_requested) {
            log_info("flusher: handing over to its successor with %llu token(s) queued",
                     (unsigned long long)token_queue_depth(queue));
            status = 0;
            goto done;
        }
        instance_duties(&state, segment, listener);
        if (monotonic_ms() >= state.next_maintenance_ms && !stop_requested) {
            maintain_partitions(&state);
        }
        bool empty = flush_once(&state, &stop_signals);
        if (empty && stop_requested) {
            break;
        }
        if (stop_requested && drain_deadline_ms < 0) {
            drain_deadline_ms = monotonic_ms() + config->shutdown_timeout_ms;
        }
        if (drain_deadline_ms >= 0 && monotonic_ms() >= drain_deadline_ms) {
            /* The database stayed away: leave the rest in the segment for
             * the next start rather than hold it (and its lock) forever. */
            log_warn("flusher: could not write every queued token within shutdown_timeout");
            status = 1;
            goto done;
        }
        if (empty || !stop_requested) {
            int64_t since = monotonic_ms() - state.last_flush_ms;
            bool batch_waiting = token_queue_depth(queue) >= state.batch_trigger;
            if (!batch_waiting && since < config->flush_interval_ms) {
                pause_ms(&stop_signals, POLL_INTERVAL_MS);
            }
        }
    }
    status = 0;
done:
    buffer_free(&state.copy_data);
    db_conn_destroy(state.db);
    client_listener_destroy(listener);
    return status;
}

bool flusher_settings_differ(const struct tokend_config *a, const struct tokend_config *b)
{
    const char *password_a = a->database_password != NULL ? a->database_password : "";
    const char *password_b = b->database_password != NULL ? b->database_password : "";
    return strcmp(a->database_url, b->database_url) != 0 ||
           strlen(password_a) != strlen(password_b) ||
           CRYPTO_memcmp(password_a, password_b, strlen(password_a)) != 0 ||
           a->db_timeout_ms != b->db_timeout_ms || a->flush_batch != b->flush_batch ||
           a->flush_interval_ms != b->flush_interval_ms ||
           a->token_retention_days != b->token_retention_days ||
           a->health_db_interval_ms != b->health_db_interval_ms ||
           strcmp(a->notify_channel, b->notify_channel) != 0 ||
           a->shutdown_timeout_ms != b->shutdown_timeout_ms || a->log_level != b->log_level;
}
