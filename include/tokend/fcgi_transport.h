/*
 * fcgi_transport.h - the libfcgi transport: one FastCGI connection at a
 * time per worker process, FCGX_Accept_r reading the request.
 *
 * The worker waits for a connection itself (epoll with EPOLLEXCLUSIVE on the
 * shared listening socket, or poll on a kept connection) with its stop
 * signals unblocked only while waiting, then hands the connection to libfcgi.
 * So a stop signal never interrupts a request in flight, and an idle worker
 * stops at once.
 */
#ifndef TOKEND_FCGI_TRANSPORT_H
#define TOKEND_FCGI_TRANSPORT_H

#include <signal.h>

#include "tokend/http_request.h"
#include "tokend/http_response.h"

typedef void (*transport_handler_fn)(void *context, const struct http_request *req,
                                     struct http_response *resp);
/* Called between requests (housekeeping such as cache sweeps). */
typedef void (*transport_idle_fn)(void *context);

struct fcgi_transport_options {
    int listen_fd;
    int io_timeout_ms; /* SO_RCVTIMEO/SO_SNDTIMEO on each connection */
    transport_handler_fn handler;
    transport_idle_fn between_requests; /* may be NULL */
    void *context;
    volatile sig_atomic_t *stop; /* set by the signal handler */
    const sigset_t *wait_mask;   /* the signal mask while waiting (stop signals unblocked) */
};

/* Serves requests until *stop is set. Returns TK_OK on a requested stop, or
 * TK_ERROR when the listening socket fails (logged). */
int fcgi_transport_run(const struct fcgi_transport_options *options);

#endif
