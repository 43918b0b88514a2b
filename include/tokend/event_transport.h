/*
 * event_transport.h - the event-driven FastCGI transport: each worker
 * process runs one epoll loop over many non-blocking connections, parsing
 * with fcgi_protocol and answering through the same handler callback as
 * the libfcgi transport (fcgi_transport.h), so worker.c can run either.
 *
 * Signals as in fcgi_transport: the stop signals stay blocked except inside
 * epoll_pwait, which unblocks them with `wait_mask` while waiting; a
 * handler is never interrupted.
 */
#ifndef TOKEND_EVENT_TRANSPORT_H
#define TOKEND_EVENT_TRANSPORT_H

#include <signal.h>
#include <stddef.h>

#include "tokend/fcgi_transport.h"

/* Defaults used when the matching option is 0. */
#define EVENT_TRANSPORT_DEFAULT_MAX_CONNECTIONS 1024
#define EVENT_TRANSPORT_DEFAULT_MAX_PARAMS      (16 * 1024)           /* raw PARAMS bytes */
#define EVENT_TRANSPORT_DEFAULT_MAX_BODY        HTTP_REQUEST_MAX_BODY /* 8 KiB, then 413 */
#define EVENT_TRANSPORT_DEFAULT_IDLE_TIMEOUT_MS 60000
/* Requests served from one connection in a row before the others get a
 * turn. (#ifndef: benchmarks build variants with -D.) */
#ifndef EVENT_TRANSPORT_REQUESTS_PER_TURN
#define EVENT_TRANSPORT_REQUESTS_PER_TURN 8
#endif
/* Connections accepted per wakeup of the listening socket. */
#ifndef EVENT_TRANSPORT_ACCEPTS_PER_TURN
#define EVENT_TRANSPORT_ACCEPTS_PER_TURN 8
#endif

struct event_transport_options {
    /* the same fields as struct fcgi_transport_options */
    int listen_fd;     /* shared, non-blocking listening socket */
    int io_timeout_ms; /* writing an answer: no progress for this long closes the connection;
                          also the grace for requests in flight after a stop */
    transport_handler_fn handler;
    transport_idle_fn between_requests; /* may be NULL; called once per loop turn */
    void *context;
    volatile sig_atomic_t *stop; /* set by the signal handler */
    const sigset_t *wait_mask;   /* the signal mask while waiting (stop signals unblocked) */

    /* limits; 0 means the default above */
    int max_connections;     /* per worker; when reached the worker stops accepting
                                until one closes (the listening socket is left to other
                                workers and the backlog) */
    size_t max_params_bytes; /* larger PARAMS: 431 */
    size_t max_body_bytes;   /* larger body: req.body_too_large (413); <= HTTP_REQUEST_MAX_BODY */
    int idle_timeout_ms;     /* a kept connection with no request in progress */
    int read_timeout_ms;     /* from the first byte of a request (or the accept) to its last;
                                0: io_timeout_ms */
};

/* Serves requests until *stop is set, then stops accepting, answers the
 * requests already complete, closes idle connections, lets requests still
 * arriving finish for at most io_timeout_ms, and returns TK_OK. Returns
 * TK_ERROR when the loop cannot start (out of memory, epoll) or the
 * listening socket fails (logged). */
int event_transport_run(const struct event_transport_options *options);

#endif
