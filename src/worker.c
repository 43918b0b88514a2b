/*
 * worker.c - one pre-forked worker process.
 *
 * Owns, for its whole life: the client cache, the (lazy) database
 * connection and the handler context. Keys and configuration are inherited
 * from the master, already loaded and read-only.
 *
 * Signals: the master forks with SIGTERM, SIGINT and SIGHUP blocked; the
 * worker installs handlers that only set `stop_requested` and lets the
 * transport unblock them while it waits for work, so a request in flight is
 * always finished. PR_SET_PDEATHSIG makes an orphaned worker (its master
 * killed with SIGKILL) stop too instead of serving forever unsupervised.
 *
 * Housekeeping between requests: the cache's periodic sweep of expired
 * entries, run when `cache_sweep_interval` has passed (one clock read),
 * admin events published since the last request (one atomic load when
 * there are none), and a heartbeat in the worker's stats slot. SIGUSR1
 * (sent by a worker that published an admin event) only interrupts the
 * transport's wait, so an idle worker applies the event at once.
 *
 * Shared counters: the worker claims a stats slot in the segment at start
 * and, after every request, copies its cache and token counters there
 * (plain stores into its own slot; see instance_stats.h).
 *
 * Standalone (`tokend --worker`, spawned by mod_fcgid): the same loop with
 * three differences. The transport is libfcgi whatever `transport` says,
 * because mod_fcgid sends one request at a time on a connection of its own
 * and counts the process busy until the answer, so the event loop's many
 * connections would never be used. Nobody reaps the process for the
 * instance, so it retires its own stats slot when it stops (one that is
 * killed is retired by the flusher, which looks for dead slot owners every
 * second). And the number of workers is Apache's to decide, so /health
 * expects only the one answering.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tokend/cache_admin.h"
#include "tokend/child_process.h"
#include "tokend/client_cache.h"
#include "tokend/db_conn.h"
#include "tokend/event_transport.h"
#include "tokend/fcgi_transport.h"
#include "tokend/handler_context.h"
#include "tokend/instance_stats.h"
#include "tokend/logging.h"
#include "tokend/monotonic_clock.h"
#include "tokend/revocation_view.h"
#include "tokend/router.h"
#include "tokend/status.h"
#include "tokend/worker.h"

static volatile sig_atomic_t stop_requested;

struct worker_state {
    struct handler_context handlers;
    int64_t next_sweep_ms;
    int64_t sweep_interval_ms;
};

/* Copies this worker's counters into its stats slot. */
static void publish_stats(struct handler_context *h)
{
    struct stats_slot *slot = h->stats;
    if (slot == NULL) {
        return;
    }
    cache_admin_publish_stats(h);
    stats_set(slot, STAT_TOKENS_ISSUED, h->token_stats.issued);
    stats_set(slot, STAT_QUEUE_ENQUEUED, h->token_stats.issued);
    stats_set(slot, STAT_QUEUE_FULL, h->token_stats.queue_full);
    stats_add(slot, STAT_REQUESTS, 1);
}

static void handle_request(void *context, const struct http_request *req,
                           struct http_response *resp)
{
    struct worker_state *state = context;
    if (cache_admin_pending(&state->handlers)) {
        cache_admin_apply(&state->handlers);
    }
    router_handle(&state->handlers, req, resp);
    publish_stats(&state->handlers);
}

static void on_wake_signal(int signo)
{
    (void)signo; /* interrupting the wait is all it is for */
}

static void between_requests(void *context)
{
    struct worker_state *state = context;
    if (cache_admin_pending(&state->handlers)) {
        cache_admin_apply(&state->handlers);
    }
    stats_gauge_set(state->handlers.stats, GAUGE_HEARTBEAT_MS, stats_wall_ms());
    int64_t now = monotonic_ms();
    if (now >= state->next_sweep_ms) {
        cache_admin_sweep(&state->handlers);
        cache_admin_publish_stats(&state->handlers);
        state->next_sweep_ms = now + state->sweep_interval_ms;
    }
}

int worker_main(const struct tokend_config *config, const struct key_set *keys,
                const struct admin_token *admin_token, int listen_fd, struct shm_segment *segment,
                enum worker_launch launch)
{
    sigset_t stop_signals, wait_mask;
    if (!child_process_setup("tokend-worker", &stop_requested, &stop_signals, &wait_mask)) {
        return 0; /* the master died between fork and setup */
    }
    /* SIGUSR1 (admin event published) is blocked but while waiting. */
    struct sigaction wake = {.sa_handler = on_wake_signal};
    sigemptyset(&wake.sa_mask);
    sigaction(SIGUSR1, &wake, NULL);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    sigdelset(&wait_mask, SIGUSR1);
    struct token_queue *queue = &segment->queue;

    token_queue_set_producer_pid(queue, getpid());
    int status = 1;
    struct client_cache_options cache_options = {
        .max_entries = (size_t)config->cache_max_entries,
        .ttl_ms = config->cache_ttl_s * 1000,
        .negative_ttl_ms = config->cache_negative_ttl_s * 1000,
    };
    struct client_cache *cache = client_cache_create(&cache_options);
    struct db_conn *db = db_conn_create(config->database_url, config->database_password,
                                        config->db_timeout_ms, config->db_retry_interval_ms);
    struct worker_state *state = calloc(1, sizeof(*state));
    if (cache == NULL || db == NULL || state == NULL ||
        handler_context_init(&state->handlers, config, keys, cache, db, queue) != TK_OK) {
        log_error("worker start-up failed: out of memory");
        goto done;
    }
    state->handlers.segment = segment;
    state->handlers.worker_count = launch == WORKER_FORKED ? config_worker_count(config) : 1;
    state->handlers.admin_token = admin_token;
    state->handlers.events_applied = admin_event_published(segment->events);
    state->handlers.stats = stats_slot_claim(segment->stats, getpid(), STAT_ROLE_WORKER,
                                             state->handlers.events_applied);
    if (state->handlers.stats == NULL) {
        log_warn("every stats slot of segment %s is taken: this worker's counters are not shared",
                 segment->name);
    }
    /* After the ring position above: see revocation_view.c. A failure here
     * is retried when introspection first needs the set. */
    revocation_view_ready(&state->handlers);
    rate_limit_init(&state->handlers.admin_limit, config->admin_rate_limit,
                    2 * config->admin_rate_limit, monotonic_ms());
    rate_limit_init(&state->handlers.admin_refused_limit, config->admin_rate_limit,
                    2 * config->admin_rate_limit, monotonic_ms());
    state->sweep_interval_ms = config->cache_sweep_interval_s * 1000;
    state->next_sweep_ms = monotonic_ms() + state->sweep_interval_ms;

    struct fcgi_transport_options transport = {
        .listen_fd = listen_fd,
        .io_timeout_ms = config->io_timeout_ms,
        .handler = handle_request,
        .between_requests = between_requests,
        .context = state,
        .stop = &stop_requested,
        .wait_mask = &wait_mask,
    };
    /* Set up: the master may now stop the worker this one replaces. */
    child_process_ready();
    if (launch == WORKER_FORKED && strcmp(config->transport, "event") == 0) {
        struct event_transport_options event = {
            .listen_fd = listen_fd,
            .io_timeout_ms = config->io_timeout_ms,
            .handler = handle_request,
            .between_requests = between_requests,
            .context = state,
            .stop = &stop_requested,
            .wait_mask = &wait_mask,
            .max_connections = config->max_connections,
            .idle_timeout_ms = config->keepalive_timeout_ms,
            .read_timeout_ms = config->read_timeout_ms,
            .max_params_bytes = (size_t)config->max_params_bytes,
        };
        status = event_transport_run(&event) == TK_OK ? 0 : 1;
    } else {
        status = fcgi_transport_run(&transport) == TK_OK ? 0 : 1;
    }
done:
    if (launch == WORKER_STANDALONE) {
        stats_retire_pid(segment->stats, getpid()); /* no master will */
    }
    if (state != NULL) {
        handler_context_free(&state->handlers);
        free(state);
    }
    db_conn_destroy(db);
    client_cache_destroy(cache);
    return status;
}
