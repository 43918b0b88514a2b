/*
 * fcgi_protocol.c - the FastCGI 1.0 wire protocol without sockets: an
 * incremental parser for what a web server sends on one connection, and
 * the builders of what tokend sends back.
 *
 * Parsing works on two levels.
 *
 *   Records. Every record is an 8-byte header, contentLength bytes of
 *   content and paddingLength bytes of padding. The parser collects the
 *   header (it may arrive one byte at a time), decides from it where the
 *   content goes (the "sink": discarded, the 8-byte BEGIN_REQUEST body,
 *   the GET_VALUES buffer, the PARAMS store, the body) and rejects at once
 *   what can never be valid, then streams content and skips padding. Only
 *   when the last padding byte is consumed is the record "finished" and an
 *   event reported, so *consumed always ends on a record boundary and the
 *   caller may stop there.
 *
 *   Requests. One request at a time per connection:
 *
 *     IDLE --BEGIN(RESPONDER)--> PARAMS --empty PARAMS--> STDIN
 *       ^                                                   |
 *       |                                             empty STDIN:
 *       +------ fcgi_parser_request_done <--- REPORTED <-- REQUEST event
 *
 *   An ABORT_REQUEST while PARAMS or STDIN drops the request (back to
 *   IDLE); while REPORTED it is only reported. A BEGIN_REQUEST while not
 *   IDLE is refused with CANT_MPX_CONN, a non-RESPONDER role with
 *   UNKNOWN_ROLE. The spec says an inactive request id's records are
 *   ignored; we ignore them only for ids we know to be over (refused,
 *   aborted, answered: the small `ignored_ids` list), because the web server
 *   has usually sent a refused request's PARAMS and STDIN already, and an
 *   ABORT may cross our END_REQUEST. A record for any other id is a
 *   protocol error. A BEGIN_REQUEST takes its id off the list.
 *
 * Decisions the specification leaves open:
 *   - A record with request id 0 is a management record; GET_VALUES is the
 *     only one understood, every other type gets UNKNOWN_TYPE (as libfcgi).
 *     With a non-zero id, the types only applications send (END_REQUEST,
 *     STDOUT, STDERR), management types and undefined types are errors.
 *   - STDIN must follow the end of PARAMS (the Responder role marshals its
 *     inputs sequentially); STDIN first is an error. DATA is an error for a
 *     Responder. A BEGIN_REQUEST body must be exactly 8 bytes; an
 *     ABORT_REQUEST's content is ignored.
 *   - The PARAMS stream is kept raw and decoded once complete, since pairs
 *     may straddle records. More than max_params_bytes: the rest of PARAMS
 *     and all of STDIN are skipped and PARAMS_TOO_LARGE is reported when
 *     the request is complete, so the web server still gets an answer on a
 *     connection that stays usable. A malformed pair (lengths past the end
 *     of the stream) is a protocol error. Four-byte lengths of small values
 *     are accepted.
 *   - A value with a NUL byte (CGI values must not have one) does not fail
 *     the request: fcgi_params_get returns TK_INVALID for it, so only a
 *     request that needs that value is refused (400).
 *   - STDIN wins over CONTENT_LENGTH for the body. The first
 *     max_body_bytes are kept; more are counted and discarded until the
 *     empty STDIN record, then the request is reported body_too_large.
 *     CONTENT_LENGTH above the limit also sets body_too_large; one that is
 *     not a plain decimal number, or differs from what STDIN carried, sets
 *     body_length_mismatch (a Responder must not act on a short body).
 *
 * Storage and ownership: the parser owns `store`, one malloc'd block
 * holding the decoded params followed by the body (+ NUL). Decoded pairs
 * keep the spec's length prefix verbatim, then name, NUL, value, NUL, so
 * lookups compare lengths and hand out values as C strings in place; the
 * decoded form is at most twice the raw stream (two NULs per pair of at
 * least two bytes). The store grows only before a request is reported, so
 * pointers handed out stay valid until fcgi_parser_request_done. GET_VALUES
 * content goes to a separate block (`management`, raw then decoded), freed
 * by the next feed. A large store is freed between requests.
 *
 * Failure: a protocol error or out-of-memory marks the parser failed with
 * a static reason; it then consumes nothing until fcgi_parser_reset.
 *
 * Builders append whole records to a struct buffer, unpadded, with at most
 * FCGI_RECORD_MAX_CONTENT bytes of content each; out of memory is the
 * buffer's sticky failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokend/fcgi_protocol.h"
#include "tokend/status.h"

/* A store bigger than this is freed between requests rather than kept. */
#define STORE_KEEP_BYTES 4096

enum parser_state {
    STATE_IDLE = 0,
    STATE_PARAMS,
    STATE_STDIN,
    STATE_REPORTED,
};

enum content_sink {
    SINK_DISCARD = 0,
    SINK_BEGIN,
    SINK_MANAGEMENT,
    SINK_PARAMS,
    SINK_STDIN,
};

/* ---- name-value pairs ---- */

/* Reads one length (one byte below 0x80, else four bytes with the top bit
 * cleared) at raw[*pos], not past `end`. False when truncated. */
static bool read_length(const uint8_t *raw, size_t end, size_t *pos, size_t *length)
{
    if (*pos >= end) {
        return false;
    }
    uint8_t first = raw[*pos];
    if ((first & 0x80) == 0) {
        *length = first;
        *pos += 1;
        return true;
    }
    if (end - *pos < 4) {
        return false;
    }
    *length = ((size_t)(first & 0x7f) << 24) | ((size_t)raw[*pos + 1] << 16) |
              ((size_t)raw[*pos + 2] << 8) | (size_t)raw[*pos + 3];
    *pos += 4;
    return true;
}

/* One pair at raw[pos..end): its prefix ends at name_at, the value starts
 * at name_at + name_len, the next pair at value_at + value_len. */
struct pair_span {
    size_t name_at;
    size_t name_len;
    size_t value_len;
};

static bool read_pair(const uint8_t *raw, size_t end, size_t pos, struct pair_span *span)
{
    size_t name_len;
    size_t value_len;
    if (!read_length(raw, end, &pos, &name_len) || !read_length(raw, end, &pos, &value_len)) {
        return false;
    }
    if (name_len > end - pos || value_len > end - pos - name_len) {
        return false;
    }
    span->name_at = pos;
    span->name_len = name_len;
    span->value_len = value_len;
    return true;
}

/* Checks that raw[0..raw_len) is a sequence of whole pairs and counts them.
 * The decoded form then takes raw_len + 2 * count bytes. */
static bool count_pairs(const uint8_t *raw, size_t raw_len, size_t *count)
{
    size_t pos = 0;
    size_t pairs = 0;
    while (pos < raw_len) {
        struct pair_span span;
        if (!read_pair(raw, raw_len, pos, &span)) {
            return false;
        }
        pos = span.name_at + span.name_len + span.value_len;
        pairs++;
    }
    *count = pairs;
    return true;
}

/* Writes the decoded form of validated pairs: per pair the raw prefix,
 * name, NUL, value, NUL. `out` must not overlap `raw`. */
static void decode_pairs(const uint8_t *raw, size_t raw_len, char *out)
{
    size_t pos = 0;
    while (pos < raw_len) {
        struct pair_span span;
        if (!read_pair(raw, raw_len, pos, &span)) {
            return; /* cannot happen: count_pairs validated the stream */
        }
        size_t prefix_len = span.name_at - pos;
        memcpy(out, raw + pos, prefix_len);
        out += prefix_len;
        memcpy(out, raw + span.name_at, span.name_len);
        out += span.name_len;
        *out++ = '\0';
        memcpy(out, raw + span.name_at + span.name_len, span.value_len);
        out += span.value_len;
        *out++ = '\0';
        pos = span.name_at + span.name_len + span.value_len;
    }
}

bool fcgi_params_next(const struct fcgi_params *params, size_t *cursor, struct fcgi_param *param)
{
    if (params->data == NULL || *cursor >= params->len) {
        return false;
    }
    const uint8_t *data = (const uint8_t *)params->data;
    size_t pos = *cursor;
    size_t name_len = 0;
    size_t value_len = 0;
    /* The decoded form was built from validated pairs; these cannot fail. */
    if (!read_length(data, params->len, &pos, &name_len) ||
        !read_length(data, params->len, &pos, &value_len) ||
        name_len + value_len + 2 > params->len - pos) {
        return false;
    }
    param->name = params->data + pos;
    param->name_len = name_len;
    param->value = params->data + pos + name_len + 1;
    param->value_len = value_len;
    *cursor = pos + name_len + 1 + value_len + 1;
    return true;
}

static bool param_named(const struct fcgi_param *param, const char *name, size_t name_len)
{
    return param->name_len == name_len && memcmp(param->name, name, name_len) == 0;
}

int fcgi_params_get(const struct fcgi_params *params, const char *name, const char **value)
{
    size_t name_len = strlen(name);
    size_t cursor = 0;
    struct fcgi_param param;
    struct fcgi_param last = {0};
    bool found = false;
    while (fcgi_params_next(params, &cursor, &param)) {
        if (param_named(&param, name, name_len)) {
            last = param;
            found = true;
        }
    }
    if (value != NULL) {
        *value = NULL;
    }
    if (!found) {
        return TK_NOT_FOUND;
    }
    if (memchr(last.value, '\0', last.value_len) != NULL) {
        return TK_INVALID;
    }
    if (value != NULL) {
        *value = last.value;
    }
    return TK_OK;
}

size_t fcgi_params_count(const struct fcgi_params *params, const char *name)
{
    size_t name_len = strlen(name);
    size_t cursor = 0;
    size_t count = 0;
    struct fcgi_param param;
    while (fcgi_params_next(params, &cursor, &param)) {
        count += param_named(&param, name, name_len);
    }
    return count;
}

/* ---- parser helpers ---- */

static bool ignored_contains(const struct fcgi_conn_parser *parser, uint16_t id)
{
    for (size_t i = 0; i < parser->ignored_count; i++) {
        if (parser->ignored_ids[i] == id) {
            return true;
        }
    }
    return false;
}

static void ignored_remove(struct fcgi_conn_parser *parser, uint16_t id)
{
    for (size_t i = 0; i < parser->ignored_count; i++) {
        if (parser->ignored_ids[i] == id) {
            memmove(&parser->ignored_ids[i], &parser->ignored_ids[i + 1],
                    (parser->ignored_count - i - 1) * sizeof(parser->ignored_ids[0]));
            parser->ignored_count--;
            return;
        }
    }
}

static void ignored_add(struct fcgi_conn_parser *parser, uint16_t id)
{
    ignored_remove(parser, id); /* re-added as the newest */
    if (parser->ignored_count == FCGI_PARSER_IGNORED_IDS) {
        memmove(&parser->ignored_ids[0], &parser->ignored_ids[1],
                (FCGI_PARSER_IGNORED_IDS - 1) * sizeof(parser->ignored_ids[0]));
        parser->ignored_count--;
    }
    parser->ignored_ids[parser->ignored_count++] = id;
}

/* Makes room for `need` bytes in the store. False when out of memory (the
 * store is unchanged). */
static bool store_reserve(struct fcgi_conn_parser *parser, size_t need)
{
    if (need <= parser->store_cap) {
        return true;
    }
    size_t cap = parser->store_cap < 1024 ? 1024 : parser->store_cap;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            return false;
        }
        cap *= 2;
    }
    char *store = realloc(parser->store, cap);
    if (store == NULL) {
        return false;
    }
    parser->store = store;
    parser->store_cap = cap;
    return true;
}

static void release_management(struct fcgi_conn_parser *parser)
{
    free(parser->management);
    parser->management = NULL;
    parser->management_have = 0;
}

/* Forgets the request in progress (not the store's memory). */
static void clear_request(struct fcgi_conn_parser *parser)
{
    parser->state = STATE_IDLE;
    parser->request_id = 0;
    parser->keep_conn = false;
    parser->params_too_large = false;
    parser->params_raw_len = 0;
    parser->params_len = 0;
    parser->params_count = 0;
    parser->body_len = 0;
    parser->stdin_len = 0;
}

static void release_large_store(struct fcgi_conn_parser *parser)
{
    if (parser->store_cap > STORE_KEEP_BYTES) {
        free(parser->store);
        parser->store = NULL;
        parser->store_cap = 0;
    }
}

/* Marks the parser failed and reports it. Returns rc. */
static int parser_fail(struct fcgi_conn_parser *parser, int rc, const char *reason,
                       struct fcgi_event *event)
{
    parser->error = reason;
    parser->error_rc = rc;
    memset(event, 0, sizeof(*event));
    event->type = FCGI_EVENT_PROTOCOL_ERROR;
    event->error = reason;
    return rc;
}

static int out_of_memory(struct fcgi_conn_parser *parser, struct fcgi_event *event)
{
    return parser_fail(parser, TK_ERROR, "out of memory", event);
}

/* ---- records ---- */

/* The header is complete: validates it and picks the content's sink. */
static int start_record(struct fcgi_conn_parser *parser, struct fcgi_event *event)
{
    const uint8_t *header = parser->header;
    if (header[0] != FCGI_PROTOCOL_VERSION) {
        return parser_fail(parser, TK_INVALID, "unsupported fastcgi version", event);
    }
    uint8_t type = header[1];
    uint16_t id = (uint16_t)(header[2] << 8 | header[3]);
    parser->record_type = type;
    parser->record_id = id;
    parser->content_len = (size_t)header[4] << 8 | header[5];
    parser->content_left = parser->content_len;
    parser->padding_left = header[6];
    parser->sink = SINK_DISCARD;
    bool current = parser->state != STATE_IDLE && id == parser->request_id;

    if (id == 0) {
        if (type == FCGI_REC_GET_VALUES) {
            release_management(parser);
            if (parser->content_len > 0) {
                /* raw content, then room for its decoded form (<= 2x) */
                parser->management = malloc(parser->content_len * 3 + 1);
                if (parser->management == NULL) {
                    return out_of_memory(parser, event);
                }
            }
            parser->sink = SINK_MANAGEMENT;
        }
        return TK_OK; /* any other type: UNKNOWN_TYPE once skipped */
    }

    switch (type) {
    case FCGI_REC_BEGIN_REQUEST:
        if (parser->content_len != sizeof(parser->begin_body)) {
            return parser_fail(parser, TK_INVALID, "begin_request body is not 8 bytes", event);
        }
        if (current) {
            return parser_fail(parser, TK_INVALID, "begin_request for the active request id",
                               event);
        }
        parser->begin_have = 0;
        parser->sink = SINK_BEGIN;
        return TK_OK;
    case FCGI_REC_ABORT_REQUEST:
        if (!current && !ignored_contains(parser, id)) {
            return parser_fail(parser, TK_INVALID, "abort_request for an unknown request id",
                               event);
        }
        return TK_OK;
    case FCGI_REC_PARAMS:
    case FCGI_REC_STDIN:
    case FCGI_REC_DATA:
        if (ignored_contains(parser, id)) {
            return TK_OK;
        }
        if (!current) {
            return parser_fail(parser, TK_INVALID, "record for an unknown request id", event);
        }
        if (type == FCGI_REC_DATA) {
            return parser_fail(parser, TK_INVALID, "data record for a responder request", event);
        }
        if (type == FCGI_REC_PARAMS) {
            if (parser->state != STATE_PARAMS) {
                return parser_fail(parser, TK_INVALID, "params after the end of the params stream",
                                   event);
            }
            parser->sink = SINK_PARAMS;
            return TK_OK;
        }
        if (parser->state == STATE_PARAMS) {
            return parser_fail(parser, TK_INVALID, "stdin before the end of the params stream",
                               event);
        }
        if (parser->state != STATE_STDIN) {
            return parser_fail(parser, TK_INVALID, "stdin after the end of the stdin stream",
                               event);
        }
        parser->sink = SINK_STDIN;
        return TK_OK;
    case FCGI_REC_END_REQUEST:
    case FCGI_REC_STDOUT:
    case FCGI_REC_STDERR:
        return parser_fail(parser, TK_INVALID, "record type sent only by applications", event);
    case FCGI_REC_GET_VALUES:
    case FCGI_REC_GET_VALUES_RESULT:
    case FCGI_REC_UNKNOWN_TYPE:
        return parser_fail(parser, TK_INVALID, "management record with a request id", event);
    default:
        return parser_fail(parser, TK_INVALID, "unknown record type", event);
    }
}

/* Content bytes of the current record. */
static int take_content(struct fcgi_conn_parser *parser, const uint8_t *bytes, size_t len,
                        struct fcgi_event *event)
{
    switch (parser->sink) {
    case SINK_BEGIN:
        memcpy(parser->begin_body + parser->begin_have, bytes, len);
        parser->begin_have += len;
        return TK_OK;
    case SINK_MANAGEMENT:
        memcpy(parser->management + parser->management_have, bytes, len);
        parser->management_have += len;
        return TK_OK;
    case SINK_PARAMS:
        if (parser->params_too_large) {
            return TK_OK;
        }
        if (len > parser->max_params_bytes - parser->params_raw_len) {
            parser->params_too_large = true; /* skip the rest of the request */
            return TK_OK;
        }
        if (!store_reserve(parser, parser->params_raw_len + len)) {
            return out_of_memory(parser, event);
        }
        memcpy(parser->store + parser->params_raw_len, bytes, len);
        parser->params_raw_len += len;
        return TK_OK;
    case SINK_STDIN: {
        parser->stdin_len += len;
        size_t room = parser->max_body_bytes - parser->body_len;
        size_t keep = len < room ? len : room;
        if (parser->params_too_large || keep == 0) {
            return TK_OK;
        }
        size_t at = parser->params_len + parser->body_len;
        if (!store_reserve(parser, at + keep + 1)) {
            return out_of_memory(parser, event);
        }
        memcpy(parser->store + at, bytes, keep);
        parser->body_len += keep;
        return TK_OK;
    }
    default:
        return TK_OK;
    }
}

/* The PARAMS stream ended: replaces the raw stream by its decoded form. */
static int end_params(struct fcgi_conn_parser *parser, struct fcgi_event *event)
{
    parser->state = STATE_STDIN;
    if (parser->params_too_large || parser->params_raw_len == 0) {
        return TK_OK;
    }
    size_t raw_len = parser->params_raw_len;
    size_t count;
    if (!count_pairs((const uint8_t *)parser->store, raw_len, &count)) {
        return parser_fail(parser, TK_INVALID, "malformed name-value pair in params", event);
    }
    size_t decoded_len = raw_len + 2 * count;
    if (!store_reserve(parser, raw_len + decoded_len)) {
        return out_of_memory(parser, event);
    }
    decode_pairs((const uint8_t *)parser->store, raw_len, parser->store + raw_len);
    memmove(parser->store, parser->store + raw_len, decoded_len);
    parser->params_len = decoded_len;
    parser->params_count = count;
    return TK_OK;
}

/* CONTENT_LENGTH as a plain decimal number (saturating). False when it is
 * not one. */
static bool parse_decimal(const char *text, uint64_t *number)
{
    uint64_t value = 0;
    if (*text == '\0') {
        return false;
    }
    for (; *text != '\0'; text++) {
        if (*text < '0' || *text > '9') {
            return false;
        }
        unsigned digit = (unsigned)(*text - '0');
        value = value > (UINT64_MAX - digit) / 10 ? UINT64_MAX : value * 10 + digit;
    }
    *number = value;
    return true;
}

/* The STDIN stream ended: the request is complete. */
static void report_request(struct fcgi_conn_parser *parser, struct fcgi_event *event)
{
    parser->state = STATE_REPORTED;
    event->request_id = parser->request_id;
    event->keep_conn = parser->keep_conn;
    if (parser->params_too_large) {
        event->type = FCGI_EVENT_PARAMS_TOO_LARGE;
        return;
    }
    event->type = FCGI_EVENT_REQUEST;
    event->params.data = parser->params_len > 0 ? parser->store : NULL;
    event->params.len = parser->params_len;
    event->params.count = parser->params_count;
    event->stdin_len = parser->stdin_len;

    const char *length_text = NULL;
    uint64_t announced = 0;
    bool has_announced = false;
    int rc = fcgi_params_get(&event->params, "CONTENT_LENGTH", &length_text);
    if (rc == TK_INVALID) {
        event->body_length_mismatch = true;
    } else if (rc == TK_OK && length_text[0] != '\0') {
        has_announced = parse_decimal(length_text, &announced);
        event->body_length_mismatch = !has_announced || announced != parser->stdin_len;
    }
    event->body_too_large = parser->stdin_len > parser->max_body_bytes ||
                            (has_announced && announced > parser->max_body_bytes);
    if (!event->body_too_large && parser->body_len > 0) {
        /* store_reserve left room for the NUL. */
        parser->store[parser->params_len + parser->body_len] = '\0';
        event->body = parser->store + parser->params_len;
        event->body_len = parser->body_len;
    }
}

static unsigned known_value_bit(const struct fcgi_param *param)
{
    if (param_named(param, "FCGI_MAX_CONNS", strlen("FCGI_MAX_CONNS"))) {
        return FCGI_VALUE_MAX_CONNS;
    }
    if (param_named(param, "FCGI_MAX_REQS", strlen("FCGI_MAX_REQS"))) {
        return FCGI_VALUE_MAX_REQS;
    }
    if (param_named(param, "FCGI_MPXS_CONNS", strlen("FCGI_MPXS_CONNS"))) {
        return FCGI_VALUE_MPXS_CONNS;
    }
    return 0;
}

static int report_get_values(struct fcgi_conn_parser *parser, struct fcgi_event *event)
{
    size_t raw_len = parser->management_have;
    size_t count = 0;
    if (!count_pairs((const uint8_t *)parser->management, raw_len, &count)) {
        return parser_fail(parser, TK_INVALID, "malformed name-value pair in get_values", event);
    }
    event->type = FCGI_EVENT_GET_VALUES;
    if (raw_len == 0) {
        return TK_OK;
    }
    char *decoded = parser->management + raw_len;
    decode_pairs((const uint8_t *)parser->management, raw_len, decoded);
    event->params.data = decoded;
    event->params.len = raw_len + 2 * count;
    event->params.count = count;
    size_t cursor = 0;
    struct fcgi_param param;
    while (fcgi_params_next(&event->params, &cursor, &param)) {
        event->asked_values |= known_value_bit(&param);
    }
    return TK_OK;
}

static void handle_begin(struct fcgi_conn_parser *parser, struct fcgi_event *event)
{
    uint16_t id = parser->record_id;
    uint16_t role = (uint16_t)(parser->begin_body[0] << 8 | parser->begin_body[1]);
    bool keep_conn = (parser->begin_body[2] & FCGI_FLAG_KEEP_CONN) != 0;
    ignored_remove(parser, id);
    if (parser->state != STATE_IDLE || role != FCGI_ROLE_RESPONDER) {
        event->type = FCGI_EVENT_REFUSED;
        event->request_id = id;
        event->keep_conn = keep_conn;
        event->role = role;
        event->protocol_status =
            parser->state != STATE_IDLE ? FCGI_STATUS_CANT_MPX_CONN : FCGI_STATUS_UNKNOWN_ROLE;
        ignored_add(parser, id);
        return;
    }
    clear_request(parser);
    parser->state = STATE_PARAMS;
    parser->request_id = id;
    parser->keep_conn = keep_conn;
}

static void handle_abort(struct fcgi_conn_parser *parser, struct fcgi_event *event)
{
    uint16_t id = parser->record_id;
    if (ignored_contains(parser, id)) {
        return; /* refused, aborted or answered already */
    }
    /* start_record let only the current request's id through. */
    event->type = FCGI_EVENT_ABORT;
    event->request_id = id;
    event->keep_conn = parser->keep_conn;
    event->request_reported = parser->state == STATE_REPORTED;
    if (!event->request_reported) {
        clear_request(parser);
        ignored_add(parser, id);
    }
}

/* The record's last byte is in: acts on it, maybe filling *event. */
static int finish_record(struct fcgi_conn_parser *parser, struct fcgi_event *event)
{
    if (parser->record_id == 0) {
        if (parser->record_type == FCGI_REC_GET_VALUES) {
            return report_get_values(parser, event);
        }
        event->type = FCGI_EVENT_UNKNOWN_TYPE;
        event->record_type = parser->record_type;
        return TK_OK;
    }
    switch (parser->record_type) {
    case FCGI_REC_BEGIN_REQUEST:
        handle_begin(parser, event);
        return TK_OK;
    case FCGI_REC_ABORT_REQUEST:
        handle_abort(parser, event);
        return TK_OK;
    case FCGI_REC_PARAMS:
        if (parser->sink == SINK_PARAMS && parser->content_len == 0) {
            return end_params(parser, event);
        }
        return TK_OK;
    case FCGI_REC_STDIN:
        if (parser->sink == SINK_STDIN && parser->content_len == 0) {
            report_request(parser, event);
        }
        return TK_OK;
    default:
        return TK_OK; /* an ignored id's DATA */
    }
}

/* ---- parser API ---- */

void fcgi_parser_init(struct fcgi_conn_parser *parser, const struct fcgi_parser_limits *limits)
{
    memset(parser, 0, sizeof(*parser));
    parser->max_params_bytes = FCGI_PARSER_DEFAULT_MAX_PARAMS;
    parser->max_body_bytes = FCGI_PARSER_DEFAULT_MAX_BODY;
    if (limits != NULL && limits->max_params_bytes > 0) {
        parser->max_params_bytes = limits->max_params_bytes;
    }
    if (limits != NULL && limits->max_body_bytes > 0) {
        parser->max_body_bytes = limits->max_body_bytes;
    }
    parser->state = STATE_IDLE;
    parser->sink = SINK_DISCARD;
}

void fcgi_parser_reset(struct fcgi_conn_parser *parser)
{
    release_management(parser);
    release_large_store(parser);
    clear_request(parser);
    parser->header_have = 0;
    parser->content_left = 0;
    parser->padding_left = 0;
    parser->sink = SINK_DISCARD;
    parser->ignored_count = 0;
    parser->error = NULL;
    parser->error_rc = TK_OK;
}

void fcgi_parser_free(struct fcgi_conn_parser *parser)
{
    release_management(parser);
    free(parser->store);
    parser->store = NULL;
    parser->store_cap = 0;
    fcgi_parser_reset(parser);
}

void fcgi_parser_request_done(struct fcgi_conn_parser *parser)
{
    if (parser->state != STATE_REPORTED) {
        return;
    }
    ignored_add(parser, parser->request_id);
    clear_request(parser);
    release_large_store(parser);
}

bool fcgi_parser_at_rest(const struct fcgi_conn_parser *parser)
{
    return parser->error == NULL && parser->header_have == 0 && parser->state == STATE_IDLE;
}

int fcgi_parser_feed(struct fcgi_conn_parser *parser, const void *data, size_t len,
                     size_t *consumed, struct fcgi_event *event)
{
    const uint8_t *bytes = data;
    size_t pos = 0;
    int rc = TK_OK;
    memset(event, 0, sizeof(*event));
    *consumed = 0;
    if (parser->error != NULL) {
        event->type = FCGI_EVENT_PROTOCOL_ERROR;
        event->error = parser->error;
        return parser->error_rc;
    }
    if (parser->header_have < FCGI_RECORD_HEADER_LEN) {
        release_management(parser); /* the last GET_VALUES event is over */
    }
    while (pos < len) {
        size_t available = len - pos;
        if (parser->header_have < FCGI_RECORD_HEADER_LEN) {
            size_t want = FCGI_RECORD_HEADER_LEN - parser->header_have;
            size_t n = want < available ? want : available;
            memcpy(parser->header + parser->header_have, bytes + pos, n);
            parser->header_have += n;
            pos += n;
            if (parser->header_have < FCGI_RECORD_HEADER_LEN) {
                break;
            }
            rc = start_record(parser, event);
        } else if (parser->content_left > 0) {
            size_t n = parser->content_left < available ? parser->content_left : available;
            rc = take_content(parser, bytes + pos, n, event);
            parser->content_left -= n;
            pos += n;
        } else {
            size_t n = parser->padding_left < available ? parser->padding_left : available;
            parser->padding_left -= n;
            pos += n;
        }
        if (rc != TK_OK) {
            break;
        }
        if (parser->content_left == 0 && parser->padding_left == 0) {
            parser->header_have = 0;
            rc = finish_record(parser, event);
            if (rc != TK_OK || event->type != FCGI_EVENT_NONE) {
                break;
            }
        }
    }
    *consumed = pos;
    return rc;
}

/* ---- builders ---- */

static void append_header(struct buffer *out, uint8_t type, uint16_t request_id, size_t content_len)
{
    uint8_t header[FCGI_RECORD_HEADER_LEN] = {
        FCGI_PROTOCOL_VERSION,
        type,
        (uint8_t)(request_id >> 8),
        (uint8_t)request_id,
        (uint8_t)(content_len >> 8),
        (uint8_t)content_len,
        0, /* no padding */
        0,
    };
    buffer_append(out, header, sizeof(header));
}

void fcgi_append_stdout(struct buffer *out, uint16_t request_id, const void *data, size_t len)
{
    const char *bytes = data;
    while (len > 0) {
        size_t chunk = len < FCGI_RECORD_MAX_CONTENT ? len : FCGI_RECORD_MAX_CONTENT;
        append_header(out, FCGI_REC_STDOUT, request_id, chunk);
        buffer_append(out, bytes, chunk);
        bytes += chunk;
        len -= chunk;
    }
}

void fcgi_append_stdout_end(struct buffer *out, uint16_t request_id)
{
    append_header(out, FCGI_REC_STDOUT, request_id, 0);
}

void fcgi_append_end_request(struct buffer *out, uint16_t request_id, uint32_t app_status,
                             enum fcgi_protocol_status protocol_status)
{
    uint8_t body[8] = {
        (uint8_t)(app_status >> 24),
        (uint8_t)(app_status >> 16),
        (uint8_t)(app_status >> 8),
        (uint8_t)app_status,
        (uint8_t)protocol_status,
        0,
        0,
        0,
    };
    append_header(out, FCGI_REC_END_REQUEST, request_id, sizeof(body));
    buffer_append(out, body, sizeof(body));
}

void fcgi_append_response(struct buffer *out, uint16_t request_id, const void *data, size_t len,
                          uint32_t app_status)
{
    fcgi_append_stdout(out, request_id, data, len);
    fcgi_append_stdout_end(out, request_id);
    fcgi_append_end_request(out, request_id, app_status, FCGI_STATUS_REQUEST_COMPLETE);
}

/* Appends one pair with lengths below 128 to content[*len]. */
static void put_short_pair(uint8_t *content, size_t *len, const char *name, const char *value)
{
    size_t name_len = strlen(name);
    size_t value_len = strlen(value);
    content[(*len)++] = (uint8_t)name_len;
    content[(*len)++] = (uint8_t)value_len;
    memcpy(content + *len, name, name_len);
    *len += name_len;
    memcpy(content + *len, value, value_len);
    *len += value_len;
}

void fcgi_append_get_values_result(struct buffer *out, unsigned asked,
                                   const struct fcgi_server_values *values)
{
    /* three names of at most 15 bytes, values of at most 10 digits */
    uint8_t content[3 * (2 + 15 + 10)];
    size_t len = 0;
    char number[16];
    if (asked & FCGI_VALUE_MAX_CONNS) {
        snprintf(number, sizeof(number), "%u", values->max_conns);
        put_short_pair(content, &len, "FCGI_MAX_CONNS", number);
    }
    if (asked & FCGI_VALUE_MAX_REQS) {
        snprintf(number, sizeof(number), "%u", values->max_reqs);
        put_short_pair(content, &len, "FCGI_MAX_REQS", number);
    }
    if (asked & FCGI_VALUE_MPXS_CONNS) {
        put_short_pair(content, &len, "FCGI_MPXS_CONNS", "0");
    }
    append_header(out, FCGI_REC_GET_VALUES_RESULT, 0, len);
    buffer_append(out, content, len);
}

void fcgi_append_unknown_type(struct buffer *out, uint8_t record_type)
{
    uint8_t body[8] = {record_type, 0, 0, 0, 0, 0, 0, 0};
    append_header(out, FCGI_REC_UNKNOWN_TYPE, 0, sizeof(body));
    buffer_append(out, body, sizeof(body));
}
