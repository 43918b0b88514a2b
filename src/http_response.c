/*
 * http_response.c - building and serializing a handler's answer.
 *
 * Handlers set a status, maybe headers, and a body; the transport calls
 * http_response_serialize once to get the bytes to send. If any buffer ran
 * out of memory along the way the whole answer becomes a fixed 500, so a
 * half-built token or header can never leave the process.
 */
#include <stdio.h>
#include <string.h>

#include "tokend/http_response.h"

static const char json_type[] = "application/json";

void http_response_init(struct http_response *resp)
{
    resp->status = 0;
    resp->content_type = json_type;
    resp->oauth_error = NULL;
    buffer_init(&resp->headers);
    buffer_init(&resp->body);
}

void http_response_reset(struct http_response *resp)
{
    resp->status = 0;
    resp->content_type = json_type;
    resp->oauth_error = NULL;
    buffer_reset(&resp->headers);
    buffer_reset(&resp->body);
}

void http_response_free(struct http_response *resp)
{
    buffer_free(&resp->headers);
    buffer_free(&resp->body);
}

void http_response_add_header(struct http_response *resp, const char *name, const char *value)
{
    buffer_append_str(&resp->headers, name);
    buffer_append(&resp->headers, ": ", 2);
    buffer_append_str(&resp->headers, value);
    buffer_append(&resp->headers, "\r\n", 2);
}

void http_response_json(struct http_response *resp, int status, const char *json)
{
    resp->status = status;
    resp->content_type = json_type;
    buffer_reset(&resp->body);
    buffer_append_str(&resp->body, json);
}

void http_response_oauth_error(struct http_response *resp, int status, const char *error,
                               const char *description)
{
    resp->status = status;
    resp->content_type = json_type;
    resp->oauth_error = error;
    buffer_reset(&resp->body);
    buffer_append_str(&resp->body, "{\"error\":");
    buffer_append_json_string(&resp->body, error);
    if (description != NULL) {
        buffer_append_str(&resp->body, ",\"error_description\":");
        buffer_append_json_string(&resp->body, description);
    }
    buffer_append(&resp->body, "}", 1);
    http_response_no_store(resp);
}

void http_response_no_store(struct http_response *resp)
{
    http_response_add_header(resp, "Cache-Control", "no-store");
    http_response_add_header(resp, "Pragma", "no-cache");
}

const char *http_status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

void http_response_serialize(const struct http_response *resp, struct buffer *out)
{
    static const char failed[] =
        "Status: 500 Internal Server Error\r\nContent-Type: application/json\r\n"
        "Cache-Control: no-store\r\n\r\n"
        "{\"error\":\"server_error\",\"error_description\":\"internal error\"}";
    if (resp->headers.failed || resp->body.failed || resp->status == 0) {
        buffer_append(out, failed, sizeof(failed) - 1);
        return;
    }
    buffer_printf(out, "Status: %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", resp->status,
                  http_status_reason(resp->status), resp->content_type, resp->body.len);
    buffer_append(out, resp->headers.data, resp->headers.len);
    buffer_append(out, "\r\n", 2);
    buffer_append(out, resp->body.data, resp->body.len);
}
