/*
 * fcgi_protocol.h - the FastCGI 1.0 wire protocol, independent of any
 * socket: an incremental parser for the bytes a web server sends on one
 * connection, and builders for the records tokend sends back.
 *
 * The parser never reads or writes a file descriptor. The event loop reads
 * whatever arrived and hands it to fcgi_parser_feed, which consumes bytes
 * until it has one event to report and then stops, telling how many bytes
 * it consumed; the loop keeps the rest for the next call. So the loop can
 * stop reading a connection after one complete request and resume once the
 * answer has been written.
 *
 * One request at a time per connection (FCGI_MPXS_CONNS = 0): a second
 * BEGIN_REQUEST while one is in progress is refused with CANT_MPX_CONN and
 * the current request carries on. Only the RESPONDER role is served.
 *
 * The constants below carry their own names (FCGI_REC_*, FCGI_STATUS_*,
 * FCGI_ROLE_*) so that this header can sit next to libfcgi's fastcgi.h,
 * whose macros use the specification's names.
 */
#ifndef TOKEND_FCGI_PROTOCOL_H
#define TOKEND_FCGI_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokend/buffer.h"
#include "tokend/http_request.h"

/* ---- wire constants (FastCGI specification 1.0, section 8) ---- */

#define FCGI_PROTOCOL_VERSION   1
#define FCGI_RECORD_HEADER_LEN  8
#define FCGI_RECORD_MAX_CONTENT 65535
#define FCGI_FLAG_KEEP_CONN     1

enum fcgi_record_type {
    FCGI_REC_BEGIN_REQUEST = 1,
    FCGI_REC_ABORT_REQUEST = 2,
    FCGI_REC_END_REQUEST = 3,
    FCGI_REC_PARAMS = 4,
    FCGI_REC_STDIN = 5,
    FCGI_REC_STDOUT = 6,
    FCGI_REC_STDERR = 7,
    FCGI_REC_DATA = 8,
    FCGI_REC_GET_VALUES = 9,
    FCGI_REC_GET_VALUES_RESULT = 10,
    FCGI_REC_UNKNOWN_TYPE = 11,
};

enum fcgi_role {
    FCGI_ROLE_RESPONDER = 1,
    FCGI_ROLE_AUTHORIZER = 2,
    FCGI_ROLE_FILTER = 3,
};

/* protocolStatus of END_REQUEST. */
enum fcgi_protocol_status {
    FCGI_STATUS_REQUEST_COMPLETE = 0,
    FCGI_STATUS_CANT_MPX_CONN = 1,
    FCGI_STATUS_OVERLOADED = 2,
    FCGI_STATUS_UNKNOWN_ROLE = 3,
};

/* GET_VALUES variables tokend knows, as bits of fcgi_event.asked_values. */
#define FCGI_VALUE_MAX_CONNS  0x1u /* "FCGI_MAX_CONNS" */
#define FCGI_VALUE_MAX_REQS   0x2u /* "FCGI_MAX_REQS" */
#define FCGI_VALUE_MPXS_CONNS 0x4u /* "FCGI_MPXS_CONNS", always answered "0" */

/* ---- parameters (name-value pairs) ---- */

/* A read-only view of decoded name-value pairs, stored compactly in the
 * parser's own memory (no allocation per pair). Names and values may hold
 * any bytes; each is followed by a NUL that is not part of it. */
struct fcgi_params {
    const char *data; /* internal encoding; use the functions below */
    size_t len;
    size_t count; /* number of pairs, repeated names included */
};

struct fcgi_param {
    const char *name; /* name[name_len] == '\0' */
    size_t name_len;
    const char *value; /* value[value_len] == '\0' */
    size_t value_len;
};

/* Looks `name` up, comparing lengths and bytes (so a stored name holding a
 * NUL never matches). When the name occurs more than once the LAST
 * occurrence wins (a later fastcgi_param overrides an included one, as
 * PHP-FPM reads them); fcgi_params_count tells whether it repeats.
 * Returns TK_OK with *value set to the NUL-terminated value (it lives as
 * long as the params), TK_NOT_FOUND when absent, TK_INVALID when that value
 * holds a NUL byte (a CGI value must not; the caller answers 400). *value
 * is NULL on every failure. `value` may be NULL to test presence only. */
int fcgi_params_get(const struct fcgi_params *params, const char *name, const char **value);

/* How many pairs are named `name` (length-aware). Cannot fail. */
size_t fcgi_params_count(const struct fcgi_params *params, const char *name);

/* Iterates in the order the web server sent the pairs. Start with
 * *cursor = 0; returns false (and leaves *param alone) after the last pair.
 * Cannot fail. */
bool fcgi_params_next(const struct fcgi_params *params, size_t *cursor, struct fcgi_param *param);

/* ---- the parser ---- */

#define FCGI_PARSER_DEFAULT_MAX_PARAMS (16 * 1024)           /* raw PARAMS stream bytes */
#define FCGI_PARSER_DEFAULT_MAX_BODY   HTTP_REQUEST_MAX_BODY /* STDIN bytes kept */
/* Request ids whose leftover records are skipped (refused, aborted or
 * finished requests); the oldest is forgotten when full. */
#define FCGI_PARSER_IGNORED_IDS 8

struct fcgi_parser_limits {
    size_t max_params_bytes; /* 0: FCGI_PARSER_DEFAULT_MAX_PARAMS */
    size_t max_body_bytes;   /* 0: FCGI_PARSER_DEFAULT_MAX_BODY */
};

enum fcgi_event_type {
    FCGI_EVENT_NONE = 0, /* every byte given was consumed; feed more */
    /* A complete RESPONDER request: BEGIN_REQUEST, the PARAMS stream and
     * the STDIN stream up to its empty record. Answer it (STDOUT records
     * then END_REQUEST, see fcgi_append_response), then call
     * fcgi_parser_request_done. */
    FCGI_EVENT_REQUEST,
    /* Same moment as REQUEST (after the empty STDIN record), but the PARAMS
     * stream exceeded max_params_bytes and was discarded: no params, no
     * body. Answer 431 (or close), then call fcgi_parser_request_done. */
    FCGI_EVENT_PARAMS_TOO_LARGE,
    /* ABORT_REQUEST for the current request. request_reported false: the
     * request was still arriving and the parser has dropped it; send
     * END_REQUEST(request_id, 0, REQUEST_COMPLETE) (and close unless
     * keep_conn). request_reported true: REQUEST was already delivered;
     * just finish its answer as usual. */
    FCGI_EVENT_ABORT,
    /* A BEGIN_REQUEST that must be refused: send END_REQUEST(request_id, 0,
     * protocol_status). FCGI_STATUS_CANT_MPX_CONN when another request is in
     * progress (it carries on); FCGI_STATUS_UNKNOWN_ROLE for a role other
     * than RESPONDER (then close unless keep_conn). The refused id's other
     * records are skipped. */
    FCGI_EVENT_REFUSED,
    /* GET_VALUES: answer with fcgi_append_get_values_result(asked_values). */
    FCGI_EVENT_GET_VALUES,
    /* A management record (request id 0) of a type other than GET_VALUES:
     * answer with fcgi_append_unknown_type(record_type). */
    FCGI_EVENT_UNKNOWN_TYPE,
    /* The peer broke the protocol; `error` says how. Close the connection:
     * the parser refuses everything until fcgi_parser_reset. */
    FCGI_EVENT_PROTOCOL_ERROR,
};

/* One event. Only the fields listed for its type are meaningful; the rest
 * are zero. Pointers live as said per field. */
struct fcgi_event {
    enum fcgi_event_type type;
    uint16_t request_id; /* REQUEST, PARAMS_TOO_LARGE, ABORT, REFUSED */
    bool keep_conn;      /* same four: the BEGIN_REQUEST's FCGI_KEEP_CONN flag */
    /* REQUEST: the params, valid until fcgi_parser_request_done, _reset or
     * _free. GET_VALUES: the names asked (values as sent, normally empty),
     * valid until the next fcgi_parser_feed, _reset or _free. */
    struct fcgi_params params;
    /* REQUEST. The body is the STDIN stream ("STDIN wins" over
     * CONTENT_LENGTH), NUL-terminated at body_len, valid as long as the
     * params; NULL when STDIN was empty or the body is too large. */
    const char *body;
    size_t body_len;           /* <= max_body_bytes */
    uint64_t stdin_len;        /* STDIN bytes received, discarded ones included */
    bool body_too_large;       /* stdin_len or CONTENT_LENGTH > max_body_bytes: answer 413 */
    bool body_length_mismatch; /* CONTENT_LENGTH is set but not a decimal number or
                                  not stdin_len: answer 400 (after the 413 check) */
    bool request_reported;     /* ABORT */
    uint8_t protocol_status;   /* REFUSED: enum fcgi_protocol_status */
    uint16_t role;             /* REFUSED: the role asked */
    unsigned asked_values;     /* GET_VALUES: FCGI_VALUE_* bits of the names asked */
    uint8_t record_type;       /* UNKNOWN_TYPE: the type to echo */
    const char *error;         /* PROTOCOL_ERROR: static text, lowercase, no secrets */
};

/* Everything below is the parser's private state; it is in the header only
 * so that a connection can embed the parser without an allocation. */
struct fcgi_conn_parser {
    size_t max_params_bytes;
    size_t max_body_bytes;

    /* the record being read */
    uint8_t header[FCGI_RECORD_HEADER_LEN];
    size_t header_have;  /* bytes of header[] filled; 8 once the body is being read */
    uint8_t record_type; /* from header[] */
    uint16_t record_id;
    size_t content_len;
    size_t content_left;
    size_t padding_left;
    int sink; /* where content bytes go (enum in fcgi_protocol.c) */
    uint8_t begin_body[8];
    size_t begin_have;

    /* the request in progress */
    int state; /* enum in fcgi_protocol.c */
    uint16_t request_id;
    bool keep_conn;
    bool params_too_large;
    size_t params_raw_len; /* raw PARAMS bytes received */
    size_t params_len;     /* decoded pairs at store[0..params_len) */
    size_t params_count;
    size_t body_len; /* body at store[params_len..params_len + body_len) */
    uint64_t stdin_len;
    char *store;
    size_t store_cap;

    /* GET_VALUES content: raw, then decoded after it */
    char *management;
    size_t management_have;

    uint16_t ignored_ids[FCGI_PARSER_IGNORED_IDS]; /* oldest first */
    size_t ignored_count;

    const char *error; /* set once the parser has failed */
    int error_rc;
};

/* Prepares an idle parser for a new connection. `limits` may be NULL for
 * the defaults. Allocates nothing. Cannot fail. */
void fcgi_parser_init(struct fcgi_conn_parser *parser, const struct fcgi_parser_limits *limits);

/* Forgets the connection (state, failure, ignored ids, any request) so the
 * parser can serve a new one; keeps a small allocation for reuse. Every
 * pointer handed out before becomes invalid. Cannot fail. */
void fcgi_parser_reset(struct fcgi_conn_parser *parser);

/* Frees everything. The parser may be fcgi_parser_init'ed again. */
void fcgi_parser_free(struct fcgi_conn_parser *parser);

/* Consumes bytes from `data` (len may be 0) until one event is complete,
 * and reports it. Records may be split anywhere across calls.
 *
 * Returns TK_OK with *event set: FCGI_EVENT_NONE when all `len` bytes were
 * consumed without completing an event, otherwise the event, with
 * *consumed the bytes up to and including the record that completed it;
 * call again with the rest.
 * Returns TK_INVALID on a protocol error (event FCGI_EVENT_PROTOCOL_ERROR
 * with its reason) and TK_ERROR when out of memory (same event, reason
 * "out of memory"). The parser is then failed: every later call returns the
 * same code and event and consumes nothing, until fcgi_parser_reset. A
 * request already reported stays valid until request_done/reset/free.
 *
 * Feeding while a reported request waits for fcgi_parser_request_done is
 * allowed (management records, ABORT and refused BEGINs are reported), but
 * a loop that stops reading until it has answered never needs to. */
int fcgi_parser_feed(struct fcgi_conn_parser *parser, const void *data, size_t len,
                     size_t *consumed, struct fcgi_event *event);

/* The answer to the reported REQUEST or PARAMS_TOO_LARGE has been queued
 * (END_REQUEST included): the parser is ready for the next BEGIN_REQUEST,
 * and the request's params and body are invalid from now on. Leftover
 * records of that id (an ABORT racing the answer) are skipped. A no-op when
 * no request is reported. Cannot fail. */
void fcgi_parser_request_done(struct fcgi_conn_parser *parser);

/* True when the parser is between records with no request in progress or
 * reported, i.e. the peer closing the connection here is a clean close.
 * Cannot fail. */
bool fcgi_parser_at_rest(const struct fcgi_conn_parser *parser);

/* ---- reply builders ----
 *
 * Each appends complete records to `out`. Records are not padded (padding
 * is optional in FastCGI 1.0). They cannot fail except by exhausting
 * memory, which marks the buffer failed (check buffer_failed once at the
 * end; the content is then incomplete and the connection must be closed). */

/* STDOUT records carrying `data`, at most FCGI_RECORD_MAX_CONTENT bytes
 * each; nothing when len is 0 (an empty STDOUT record would end the
 * stream). */
void fcgi_append_stdout(struct buffer *out, uint16_t request_id, const void *data, size_t len);

/* The empty STDOUT record that ends the stream. */
void fcgi_append_stdout_end(struct buffer *out, uint16_t request_id);

void fcgi_append_end_request(struct buffer *out, uint16_t request_id, uint32_t app_status,
                             enum fcgi_protocol_status protocol_status);

/* A whole answer in one go: the STDOUT records of `data`, the empty STDOUT
 * record, END_REQUEST(app_status, REQUEST_COMPLETE). */
void fcgi_append_response(struct buffer *out, uint16_t request_id, const void *data, size_t len,
                          uint32_t app_status);

struct fcgi_server_values {
    unsigned max_conns; /* FCGI_MAX_CONNS */
    unsigned max_reqs;  /* FCGI_MAX_REQS */
};

/* GET_VALUES_RESULT with the asked variables tokend knows (FCGI_VALUE_*
 * bits of `asked`), in the order MAX_CONNS, MAX_REQS, MPXS_CONNS ("0").
 * An empty record when none was asked. */
void fcgi_append_get_values_result(struct buffer *out, unsigned asked,
                                   const struct fcgi_server_values *values);

/* UNKNOWN_TYPE naming the management record type not understood. */
void fcgi_append_unknown_type(struct buffer *out, uint8_t record_type);

#endif
