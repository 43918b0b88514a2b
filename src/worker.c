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
 * entries, run when `cache_sweep_interval` has passed (one clock read).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tokend/child_process.h"
#include "tokend/client_cache.h"
#include "tokend/db_conn.h"
#include "tokend/event_transport.h"
#include "tokend/fcgi_transport.h"
#include "tokend/handler_context.h"
#include "tokend/logging.h"
#include "tokend/monotonic_clock.h"
#include "tokend/router.h"
#include "tokend/status.h"
#include "tokend/worker.h"

static volatile sig_atomic_t stop_requested;

struct worker_state {
    struct handler_context handlers;
    int64_t next_sweep_ms;
    int64_t sweep_interval_ms;
};

static void handle_request(void *context, const struct http_request *req,
                           struct http_response *resp)
{
    struct worker_state *state = context;
    router_handle(&state->handlers, req, resp);
}

static void between_requests(void *context)
{
    struct worker_state *state = context;
    int64_t now = monotonic_ms();
    if (now >= state->next_sweep_ms) {
        client_cache_sweep(state->handlers.cache);
        state->next_sweep_ms = now + state->sweep_interval_ms;
    }
}

int worker_main(const struct tokend_config *config, const struct key_set *keys, int listen_fd,
                struct token_queue *queue)
{
    sigset_t stop_signals, wait_mask;
    if (!child_process_setup("tokend-worker", &stop_requested, &stop_signals, &wait_mask)) {
        return 0; /* the master died between fork and setup */
    }

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
    if (strcmp(config->transport, "event") == 0) {
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
    if (state != NULL) {
        handler_context_free(&state->handlers);
        free(state);
    }
    db_conn_destroy(db);
    client_cache_destroy(cache);
    return status;
}
