/*
 * fuzz_fcgi_protocol.c - libFuzzer harness for the FastCGI parser
 * (fcgi_parser_*, fcgi_params_*) and the reply builders.
 *
 * Input layout: byte 0 picks the limits (bit 0: max_params_bytes 64, bit 1:
 * max_body_bytes 16, else the defaults), byte 1 seeds the split points,
 * the rest is the byte stream a web server would send.
 *
 * The stream is fed three ways (whole, byte by byte when short, and in
 * pieces whose sizes come from the seed), answering every request at once
 * as the event loop would. Each way must give the same event log, byte for
 * byte. Every event is checked:
 *   - consumed never exceeds what was given; NONE means all was consumed;
 *   - after a protocol error the parser consumes nothing and repeats the
 *     same error; the error text is short, lowercase and printable;
 *   - params: every name and value is NUL-terminated at its length, the
 *     count matches, fcgi_params_get returns the LAST occurrence (by
 *     pointer) or TK_INVALID exactly when that value holds a NUL,
 *     fcgi_params_count agrees with the iteration;
 *   - body: at most the limit, NUL-terminated, NULL exactly when STDIN was
 *     empty or too large, body_too_large whenever STDIN exceeded the limit;
 *   - GET_VALUES bits match the names; the built replies are well-formed
 *     records (decoded back here), a response carries the data exactly.
 * Round trip: every REQUEST is re-encoded by the harness's own encoder
 * (canonical lengths, other record sizes, padding) and parsed by a fresh
 * parser, which must report the identical event.
 * Any violation abort()s so libFuzzer records the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokend/buffer.h"
#include "tokend/fcgi_protocol.h"
#include "tokend/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A STDIN re-encoded for a too-large body is this long at most. */
#define MAX_REENCODED_STDIN (1u << 20)

struct run {
    struct fcgi_parser_limits limits;
    struct buffer log;
    bool failed; /* a protocol error was reported */
};

/* ---- encoder (independent of the parser's code) ---- */

static void put_record(struct buffer *out, uint8_t type, uint16_t id, const void *content,
                       size_t len, uint8_t padding)
{
    uint8_t header[8] = {
        1, type, (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(len >> 8), (uint8_t)len, padding, 0};
    buffer_append(out, header, sizeof(header));
    buffer_append(out, content, len);
    static const uint8_t junk[255] = {0x5a};
    buffer_append(out, junk, padding);
}

static void put_stream(struct buffer *out, uint8_t type, uint16_t id, const char *bytes, size_t len,
                       size_t chunk, uint8_t padding)
{
    while (len > 0) {
        size_t n = len < chunk ? len : chunk;
        put_record(out, type, id, bytes, n, padding);
        bytes += n;
        len -= n;
    }
    put_record(out, type, id, NULL, 0, padding);
}

static void put_length(struct buffer *out, size_t len)
{
    if (len < 128) {
        uint8_t byte = (uint8_t)len;
        buffer_append(out, &byte, 1);
        return;
    }
    uint8_t bytes[4] = {(uint8_t)(0x80 | (len >> 24)), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                        (uint8_t)len};
    buffer_append(out, bytes, 4);
}

/* ---- checks ---- */

static void require_clean_error(const char *error)
{
    REQUIRE(error != NULL);
    size_t len = strnlen(error, 65);
    REQUIRE(len > 0 && len <= 64);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)error[i];
        REQUIRE(c >= 0x20 && c <= 0x7e && !(c >= 'A' && c <= 'Z'));
    }
}

static void require_params(const struct fcgi_params *params)
{
    size_t cursor = 0;
    size_t count = 0;
    struct fcgi_param param;
    while (fcgi_params_next(params, &cursor, &param)) {
        REQUIRE(param.name[param.name_len] == '\0');
        REQUIRE(param.value[param.value_len] == '\0');
        count++;
    }
    REQUIRE(count == params->count);
    REQUIRE(cursor == params->len);

    /* lookups, for names a C string can spell */
    cursor = 0;
    while (fcgi_params_next(params, &cursor, &param)) {
        if (memchr(param.name, '\0', param.name_len) != NULL) {
            continue;
        }
        size_t inner = 0;
        size_t matches = 0;
        struct fcgi_param other;
        struct fcgi_param last = param;
        while (fcgi_params_next(params, &inner, &other)) {
            if (other.name_len == param.name_len &&
                memcmp(other.name, param.name, param.name_len) == 0) {
                last = other;
                matches++;
            }
        }
        REQUIRE(matches >= 1);
        REQUIRE(fcgi_params_count(params, param.name) == matches);
        const char *value = "sentinel";
        int rc = fcgi_params_get(params, param.name, &value);
        if (memchr(last.value, '\0', last.value_len) != NULL) {
            REQUIRE(rc == TK_INVALID);
            REQUIRE(value == NULL);
        } else {
            REQUIRE(rc == TK_OK);
            REQUIRE(value == last.value);
            REQUIRE(strlen(value) == last.value_len);
        }
        REQUIRE(fcgi_params_get(params, param.name, NULL) == rc);
    }
}

/* Decodes records built by the builders: all well-formed and unpadded.
 * Appends STDOUT content to `stdout_data`; returns how many records. */
static size_t decode_reply(const struct buffer *reply, struct buffer *stdout_data,
                           uint8_t *last_type)
{
    const uint8_t *bytes = (const uint8_t *)reply->data;
    size_t pos = 0;
    size_t records = 0;
    while (pos < reply->len) {
        REQUIRE(reply->len - pos >= 8);
        REQUIRE(bytes[pos] == 1 && bytes[pos + 6] == 0 && bytes[pos + 7] == 0);
        size_t len = (size_t)bytes[pos + 4] << 8 | bytes[pos + 5];
        REQUIRE(reply->len - pos - 8 >= len);
        if (bytes[pos + 1] == FCGI_REC_STDOUT && stdout_data != NULL) {
            buffer_append(stdout_data, bytes + pos + 8, len);
        }
        *last_type = bytes[pos + 1];
        pos += 8 + len;
        records++;
    }
    return records;
}

static void require_get_values_reply(unsigned asked)
{
    struct buffer reply;
    buffer_init(&reply);
    struct fcgi_server_values values = {.max_conns = 1000, .max_reqs = 4294967295u};
    fcgi_append_get_values_result(&reply, asked, &values);
    uint8_t type = 0;
    REQUIRE(decode_reply(&reply, NULL, &type) == 1);
    REQUIRE(type == FCGI_REC_GET_VALUES_RESULT);
    const uint8_t *bytes = (const uint8_t *)reply.data;
    size_t pos = 8;
    unsigned seen = 0;
    while (pos < reply.len) {
        size_t name_len = bytes[pos];
        size_t value_len = bytes[pos + 1];
        const char *name = (const char *)bytes + pos + 2;
        if (name_len == 14 && memcmp(name, "FCGI_MAX_CONNS", 14) == 0) {
            REQUIRE(value_len == 4 && memcmp(name + 14, "1000", 4) == 0);
            seen |= FCGI_VALUE_MAX_CONNS;
        } else if (name_len == 13 && memcmp(name, "FCGI_MAX_REQS", 13) == 0) {
            REQUIRE(value_len == 10 && memcmp(name + 13, "4294967295", 10) == 0);
            seen |= FCGI_VALUE_MAX_REQS;
        } else {
            REQUIRE(name_len == 15 && memcmp(name, "FCGI_MPXS_CONNS", 15) == 0);
            REQUIRE(value_len == 1 && name[15] == '0');
            seen |= FCGI_VALUE_MPXS_CONNS;
        }
        pos += 2 + name_len + value_len;
    }
    REQUIRE(pos == reply.len);
    REQUIRE(seen == asked);
    REQUIRE(!buffer_failed(&reply));
    buffer_free(&reply);
}

static void require_response_reply(uint16_t id, const char *body, size_t len)
{
    struct buffer reply;
    struct buffer carried;
    buffer_init(&reply);
    buffer_init(&carried);
    fcgi_append_response(&reply, id, body, len, 0);
    uint8_t type = 0;
    size_t records = decode_reply(&reply, &carried, &type);
    REQUIRE(records == (len + 65534) / 65535 + 2);
    REQUIRE(type == FCGI_REC_END_REQUEST);
    REQUIRE(carried.len == len && (len == 0 || memcmp(carried.data, body, len) == 0));
    REQUIRE(!buffer_failed(&reply));
    buffer_free(&reply);
    buffer_free(&carried);
}

static void require_event(const struct run *run, const struct fcgi_event *event)
{
    size_t max_body =
        run->limits.max_body_bytes > 0 ? run->limits.max_body_bytes : FCGI_PARSER_DEFAULT_MAX_BODY;
    switch (event->type) {
    case FCGI_EVENT_REQUEST:
        REQUIRE(event->request_id != 0);
        require_params(&event->params);
        REQUIRE(event->body_len <= max_body);
        REQUIRE((event->body == NULL) == (event->stdin_len == 0 || event->body_too_large));
        if (event->body != NULL) {
            REQUIRE(event->body[event->body_len] == '\0');
            REQUIRE(event->body_len == event->stdin_len);
        } else {
            REQUIRE(event->body_len == 0);
        }
        REQUIRE(event->stdin_len <= max_body || event->body_too_large);
        require_response_reply(event->request_id, event->body, event->body_len);
        break;
    case FCGI_EVENT_PARAMS_TOO_LARGE:
        REQUIRE(event->request_id != 0);
        REQUIRE(event->params.count == 0 && event->body == NULL);
        break;
    case FCGI_EVENT_ABORT:
        REQUIRE(event->request_id != 0);
        break;
    case FCGI_EVENT_REFUSED:
        REQUIRE(event->request_id != 0);
        REQUIRE(event->protocol_status == FCGI_STATUS_CANT_MPX_CONN ||
                (event->protocol_status == FCGI_STATUS_UNKNOWN_ROLE &&
                 event->role != FCGI_ROLE_RESPONDER));
        break;
    case FCGI_EVENT_GET_VALUES: {
        require_params(&event->params);
        unsigned asked = 0;
        size_t cursor = 0;
        struct fcgi_param param;
        while (fcgi_params_next(&event->params, &cursor, &param)) {
            if (param.name_len == 14 && memcmp(param.name, "FCGI_MAX_CONNS", 14) == 0) {
                asked |= FCGI_VALUE_MAX_CONNS;
            } else if (param.name_len == 13 && memcmp(param.name, "FCGI_MAX_REQS", 13) == 0) {
                asked |= FCGI_VALUE_MAX_REQS;
            } else if (param.name_len == 15 && memcmp(param.name, "FCGI_MPXS_CONNS", 15) == 0) {
                asked |= FCGI_VALUE_MPXS_CONNS;
            }
        }
        REQUIRE(asked == event->asked_values);
        require_get_values_reply(asked);
        break;
    }
    case FCGI_EVENT_UNKNOWN_TYPE: {
        struct buffer reply;
        buffer_init(&reply);
        fcgi_append_unknown_type(&reply, event->record_type);
        REQUIRE(reply.len == 16 && (uint8_t)reply.data[8] == event->record_type);
        buffer_free(&reply);
        break;
    }
    case FCGI_EVENT_PROTOCOL_ERROR:
        require_clean_error(event->error);
        break;
    default:
        REQUIRE(0);
    }
}

/* A full description of an event, for comparing runs. */
static void log_event(struct buffer *log, int rc, const struct fcgi_event *event)
{
    buffer_printf(log, "%d %d %u %d %d %u %u %u %u %s %zu %llu %d %d|", rc, (int)event->type,
                  event->request_id, event->keep_conn, event->request_reported,
                  event->protocol_status, event->role, event->asked_values, event->record_type,
                  event->error != NULL ? event->error : "-", event->body_len,
                  (unsigned long long)event->stdin_len, event->body_too_large,
                  event->body_length_mismatch);
    size_t cursor = 0;
    struct fcgi_param param;
    while (fcgi_params_next(&event->params, &cursor, &param)) {
        buffer_printf(log, "%zu:", param.name_len);
        buffer_append(log, param.name, param.name_len);
        buffer_printf(log, "%zu:", param.value_len);
        buffer_append(log, param.value, param.value_len);
    }
    buffer_append(log, "|", 1);
    if (event->body != NULL) {
        buffer_append(log, event->body, event->body_len);
    }
    buffer_append(log, "\n", 1);
}

/* ---- round trip ---- */

static void round_trip(const struct run *run, const struct fcgi_event *event, uint8_t shape)
{
    if (event->stdin_len > MAX_REENCODED_STDIN) {
        return;
    }
    struct buffer pairs;
    struct buffer stream;
    struct buffer expected;
    struct buffer got;
    buffer_init(&pairs);
    buffer_init(&stream);
    buffer_init(&expected);
    buffer_init(&got);
    size_t cursor = 0;
    struct fcgi_param param;
    while (fcgi_params_next(&event->params, &cursor, &param)) {
        put_length(&pairs, param.name_len);
        put_length(&pairs, param.value_len);
        buffer_append(&pairs, param.name, param.name_len);
        buffer_append(&pairs, param.value, param.value_len);
    }
    char *filler = NULL;
    const char *stdin_bytes = event->body;
    if (event->body == NULL && event->stdin_len > 0) {
        filler = malloc((size_t)event->stdin_len);
        REQUIRE(filler != NULL);
        memset(filler, 'f', (size_t)event->stdin_len);
        stdin_bytes = filler;
    }
    uint8_t begin[8] = {0, FCGI_ROLE_RESPONDER, event->keep_conn ? FCGI_FLAG_KEEP_CONN : 0};
    put_record(&stream, FCGI_REC_BEGIN_REQUEST, event->request_id, begin, sizeof(begin), shape & 7);
    put_stream(&stream, FCGI_REC_PARAMS, event->request_id, pairs.data, pairs.len,
               1 + (shape >> 3) * 7, shape & 1 ? 0 : 9);
    put_stream(&stream, FCGI_REC_STDIN, event->request_id, stdin_bytes, (size_t)event->stdin_len,
               65535 - shape, shape >> 4);
    REQUIRE(!buffer_failed(&stream));

    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, &run->limits);
    size_t consumed = 0;
    struct fcgi_event again;
    int rc = fcgi_parser_feed(&parser, stream.data, stream.len, &consumed, &again);
    REQUIRE(rc == TK_OK);
    REQUIRE(consumed == stream.len);
    log_event(&expected, TK_OK, event);
    log_event(&got, rc, &again);
    REQUIRE(expected.len == got.len && memcmp(expected.data, got.data, got.len) == 0);
    fcgi_parser_free(&parser);
    free(filler);
    buffer_free(&pairs);
    buffer_free(&stream);
    buffer_free(&expected);
    buffer_free(&got);
}

/* ---- feeding ---- */

/* Feeds one piece, draining its events into the run's log. */
static void feed_piece(struct run *run, struct fcgi_conn_parser *parser, const uint8_t *piece,
                       size_t len, bool check_round_trip)
{
    size_t pos = 0;
    while (!run->failed) {
        size_t consumed = SIZE_MAX;
        struct fcgi_event event;
        memset(&event, 0xA5, sizeof(event));
        int rc = fcgi_parser_feed(parser, piece + pos, len - pos, &consumed, &event);
        REQUIRE(consumed <= len - pos);
        pos += consumed;
        if (rc != TK_OK) {
            REQUIRE(rc == TK_INVALID || rc == TK_ERROR);
            REQUIRE(event.type == FCGI_EVENT_PROTOCOL_ERROR);
            require_event(run, &event);
            log_event(&run->log, rc, &event);
            /* failed for good: nothing consumed, the same answer */
            struct fcgi_event repeat;
            size_t none = SIZE_MAX;
            REQUIRE(fcgi_parser_feed(parser, piece, len, &none, &repeat) == rc);
            REQUIRE(none == 0 && repeat.type == FCGI_EVENT_PROTOCOL_ERROR);
            REQUIRE(repeat.error == event.error);
            REQUIRE(!fcgi_parser_at_rest(parser));
            run->failed = true;
            return;
        }
        REQUIRE(event.type != FCGI_EVENT_PROTOCOL_ERROR);
        if (event.type == FCGI_EVENT_NONE) {
            REQUIRE(pos == len);
            return;
        }
        REQUIRE(consumed > 0);
        require_event(run, &event);
        log_event(&run->log, rc, &event);
        if (event.type == FCGI_EVENT_REQUEST && check_round_trip) {
            round_trip(run, &event, (uint8_t)(pos * 31 + len));
        }
        if (event.type == FCGI_EVENT_REQUEST || event.type == FCGI_EVENT_PARAMS_TOO_LARGE) {
            fcgi_parser_request_done(parser);
            REQUIRE(fcgi_parser_at_rest(parser));
        }
    }
}

static uint32_t next_random(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 16;
}

/* mode 0: whole; 1: byte by byte; 2: pieces from the seed */
static void run_stream(struct run *run, const uint8_t *stream, size_t len, int mode, uint8_t seed)
{
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, &run->limits);
    buffer_init(&run->log);
    run->failed = false;
    uint32_t state = seed * 2654435761u + (uint32_t)len;
    size_t pos = 0;
    if (mode == 0) {
        feed_piece(run, &parser, stream, len, true);
    }
    while (mode != 0 && pos < len && !run->failed) {
        size_t piece = 1;
        if (mode == 2) {
            uint32_t r = next_random(&state);
            piece = 1 + (seed & 0x80 ? r % 4096 : r % 17);
        }
        if (piece > len - pos) {
            piece = len - pos;
        }
        feed_piece(run, &parser, stream + pos, piece, false);
        pos += piece;
    }
    if (!run->failed) {
        buffer_printf(&run->log, "end at_rest=%d\n", fcgi_parser_at_rest(&parser));
    }
    REQUIRE(!buffer_failed(&run->log));
    fcgi_parser_free(&parser);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    struct run whole = {0};
    whole.limits.max_params_bytes = data[0] & 1 ? 64 : 0;
    whole.limits.max_body_bytes = data[0] & 2 ? 16 : 0;
    uint8_t seed = data[1];
    const uint8_t *stream = data + 2;
    size_t len = size - 2;

    run_stream(&whole, stream, len, 0, seed);
    for (int mode = 1; mode <= 2; mode++) {
        if (mode == 1 && len > 4096) {
            continue;
        }
        struct run split = {.limits = whole.limits};
        run_stream(&split, stream, len, mode, seed);
        if (split.log.len != whole.log.len ||
            memcmp(split.log.data, whole.log.data, whole.log.len) != 0) {
            fprintf(stderr, "mode %d differs:\n%.*s\n---- whole:\n%.*s\n", mode, (int)split.log.len,
                    split.log.data, (int)whole.log.len, whole.log.data);
            abort();
        }
        buffer_free(&split.log);
    }
    buffer_free(&whole.log);
    return 0;
}
