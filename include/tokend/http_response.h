/*
 * http_response.h - what a handler fills: status, extra headers, body.
 *
 * The response owns two buffers that are reused from request to request.
 * Content-Type defaults to application/json. Serialization produces the
 * CGI/FastCGI form ("Status: 200 OK\r\nHeader: v\r\n\r\nbody").
 */
#ifndef TOKEND_HTTP_RESPONSE_H
#define TOKEND_HTTP_RESPONSE_H

#include "tokend/buffer.h"

struct http_response {
    int status;               /* 0 until a handler sets it */
    const char *content_type; /* static string; default application/json */
    const char *oauth_error;  /* the error code http_response_oauth_error set, or NULL;
                                 must be a static string (it is counted after the answer) */
    struct buffer headers;    /* "Name: value\r\n" lines beyond Status and Content-Type */
    struct buffer body;
};

/* Cannot fail. */
void http_response_init(struct http_response *resp);
/* Empties the response for the next request, keeping its memory. */
void http_response_reset(struct http_response *resp);
void http_response_free(struct http_response *resp);

/* Adds one header line. `name` and `value` must not contain CR or LF (they
 * are always our own constants or numbers). */
void http_response_add_header(struct http_response *resp, const char *name, const char *value);

/* Cache-Control: no-store and Pragma: no-cache, for answers that carry or
 * describe tokens (RFC 6749 §5.1). */
void http_response_no_store(struct http_response *resp);

/* Sets status and a JSON body copied from `json`. */
void http_response_json(struct http_response *resp, int status, const char *json);

/* An RFC 6749 §5.2 error: {"error":..., "error_description":...}, with
 * Cache-Control: no-store and Pragma: no-cache. `description` may be NULL. */
void http_response_oauth_error(struct http_response *resp, int status, const char *error,
                               const char *description);

/* Writes the whole answer in CGI form into `out` (appended). When the
 * response buffers failed (out of memory) a fixed 500 answer is written
 * instead. Cannot fail beyond `out` itself failing. */
void http_response_serialize(const struct http_response *resp, struct buffer *out);

/* "OK", "Bad Request", ... for the statuses tokend uses. */
const char *http_status_reason(int status);

#endif
