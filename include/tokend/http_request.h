/*
 * http_request.h - one parsed request as the handlers see it, whatever
 * transport carried it. Every string is NUL-terminated and lives until the
 * request finishes (in the transport's buffers or the request arena).
 */
#ifndef TOKEND_HTTP_REQUEST_H
#define TOKEND_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "tokend/arena.h"

/* Bodies above this are refused with 413 without being read. */
#define HTTP_REQUEST_MAX_BODY 8192

struct http_request {
    const char *method;        /* "GET", "POST", ... never NULL */
    const char *path;          /* "/oauth/token", without the query; never NULL */
    const char *query;         /* after '?', "" when none */
    const char *content_type;  /* NULL when absent */
    const char *authorization; /* Authorization header value or NULL */
    const char *body;          /* NULL when none was sent */
    size_t body_len;
    bool body_too_large; /* more than HTTP_REQUEST_MAX_BODY bytes were announced or sent */
    struct arena *arena; /* for the handler's allocations; reset after the request */
};

#endif
