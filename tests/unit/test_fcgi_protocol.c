/*
 * test_fcgi_protocol.c - the FastCGI parser and reply builders.
 *
 * Request streams are built by a small encoder written here (records with
 * padding, pairs with one- and four-byte lengths), then fed whole, byte by
 * byte and in random splits: every way must give the same event log. Each
 * refusal, limit and protocol error is checked for its exact event and
 * reason; the builders are checked byte for byte against records computed
 * by hand.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokend/buffer.h"
#include "tokend/fcgi_protocol.h"
#include "tokend/status.h"
#include "unit_test.h"

/* ---- encoder ---- */

static void put_record(struct buffer *out, uint8_t type, uint16_t id, const void *content,
                       size_t len, uint8_t padding)
{
    uint8_t header[8] = {
        1, type, (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(len >> 8), (uint8_t)len, padding, 0};
    buffer_append(out, header, sizeof(header));
    buffer_append(out, content, len);
    for (uint8_t i = 0; i < padding; i++) {
        buffer_append(out, "\xEE", 1); /* padding is junk the parser must skip */
    }
}

static void put_begin(struct buffer *out, uint16_t id, uint16_t role, uint8_t flags,
                      uint8_t padding)
{
    uint8_t body[8] = {(uint8_t)(role >> 8), (uint8_t)role, flags, 0, 0, 0, 0, 0};
    put_record(out, FCGI_REC_BEGIN_REQUEST, id, body, sizeof(body), padding);
}

static void put_length(struct buffer *out, size_t len, bool force_long)
{
    if (len < 128 && !force_long) {
        uint8_t byte = (uint8_t)len;
        buffer_append(out, &byte, 1);
        return;
    }
    uint8_t bytes[4] = {(uint8_t)(0x80 | (len >> 24)), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                        (uint8_t)len};
    buffer_append(out, bytes, 4);
}

/* Appends one encoded pair to `pairs` (raw stream bytes, not records). */
static void put_pair_n(struct buffer *pairs, const char *name, size_t name_len, const char *value,
                       size_t value_len)
{
    put_length(pairs, name_len, false);
    put_length(pairs, value_len, false);
    buffer_append(pairs, name, name_len);
    buffer_append(pairs, value, value_len);
}

static void put_pair(struct buffer *pairs, const char *name, const char *value)
{
    put_pair_n(pairs, name, strlen(name), value, strlen(value));
}

/* A stream: records of at most `chunk` bytes, each padded with `padding`,
 * then the empty record. */
static void put_stream(struct buffer *out, uint8_t type, uint16_t id, const void *data, size_t len,
                       size_t chunk, uint8_t padding)
{
    const char *bytes = data;
    while (len > 0) {
        size_t n = len < chunk ? len : chunk;
        put_record(out, type, id, bytes, n, padding);
        bytes += n;
        len -= n;
    }
    put_record(out, type, id, NULL, 0, padding);
}

/* The usual nginx params of a token request, plus long names and values. */
static void put_token_params(struct buffer *pairs, const char *content_length)
{
    put_pair(pairs, "REQUEST_METHOD", "POST");
    put_pair(pairs, "DOCUMENT_URI", "/oauth/token");
    put_pair(pairs, "REQUEST_URI", "/oauth/token?x=1");
    put_pair(pairs, "SCRIPT_NAME", "/oauth/token");
    put_pair(pairs, "PATH_INFO", "");
    put_pair(pairs, "QUERY_STRING", "x=1");
    put_pair(pairs, "CONTENT_TYPE", "application/x-www-form-urlencoded");
    if (content_length != NULL) {
        put_pair(pairs, "CONTENT_LENGTH", content_length);
    }
    put_pair(pairs, "HTTP_AUTHORIZATION", "Basic Y2xpZW50OnNlY3JldA==");
    char long_name[200];
    char long_value[300];
    memset(long_name, 'N', sizeof(long_name));
    memset(long_value, 'v', sizeof(long_value));
    memcpy(long_name, "HTTP_X_", 7);
    put_pair_n(pairs, long_name, sizeof(long_name), "short", 5);
    put_pair_n(pairs, "HTTP_X_LONG_VALUE", 17, long_value, sizeof(long_value));
}

static const char token_body[] = "grant_type=client_credentials&scope=read%20write";

/* A whole token request: params in records of 100 bytes (so pairs straddle
 * records), STDIN in records of 16 bytes, everything padded. */
static void put_token_request(struct buffer *out, uint16_t id, uint8_t flags)
{
    struct buffer pairs;
    buffer_init(&pairs);
    char length[16];
    snprintf(length, sizeof(length), "%zu", strlen(token_body));
    put_token_params(&pairs, length);
    put_begin(out, id, FCGI_ROLE_RESPONDER, flags, 0);
    put_stream(out, FCGI_REC_PARAMS, id, pairs.data, pairs.len, 100, 3);
    put_stream(out, FCGI_REC_STDIN, id, token_body, strlen(token_body), 16, 7);
    buffer_free(&pairs);
}

/* A request with the given params stream and body. */
static void put_request(struct buffer *out, uint16_t id, uint8_t flags, const struct buffer *pairs,
                        const char *body, size_t body_len)
{
    put_begin(out, id, FCGI_ROLE_RESPONDER, flags, 0);
    put_stream(out, FCGI_REC_PARAMS, id, pairs->data, pairs->len, 65535, 0);
    put_stream(out, FCGI_REC_STDIN, id, body, body_len, 65535, 0);
}

/* ---- driving the parser ---- */

/* Appends a full description of one event to `log`. */
static void log_event(struct buffer *log, int rc, const struct fcgi_event *event)
{
    buffer_printf(log,
                  "rc=%d type=%d id=%u keep=%d reported=%d status=%u role=%u asked=%u "
                  "rtype=%u error=%s\n",
                  rc, (int)event->type, event->request_id, event->keep_conn,
                  event->request_reported, event->protocol_status, event->role, event->asked_values,
                  event->record_type, event->error ? event->error : "-");
    size_t cursor = 0;
    struct fcgi_param param;
    size_t count = 0;
    while (fcgi_params_next(&event->params, &cursor, &param)) {
        buffer_printf(log, "  param %zu:", param.name_len);
        buffer_append(log, param.name, param.name_len);
        buffer_printf(log, " %zu:", param.value_len);
        buffer_append(log, param.value, param.value_len);
        buffer_append(log, "\n", 1);
        count++;
    }
    CHECK_INT(count, event->params.count);
    buffer_printf(log, "  body %d len=%zu stdin=%llu large=%d mismatch=%d:", event->body != NULL,
                  event->body_len, (unsigned long long)event->stdin_len, event->body_too_large,
                  event->body_length_mismatch);
    if (event->body != NULL) {
        buffer_append(log, event->body, event->body_len);
        CHECK(event->body[event->body_len] == '\0');
    }
    buffer_append(log, "\n", 1);
}

/* Feeds `data` cut at the given split points (sorted, strictly inside) and
 * logs every event; answers requests at once (request_done). */
static void run_splits(const struct fcgi_parser_limits *limits, const char *data, size_t len,
                       const size_t *cuts, size_t cut_count, struct buffer *log)
{
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, limits);
    size_t start = 0;
    for (size_t c = 0; c <= cut_count; c++) {
        size_t end = c < cut_count ? cuts[c] : len;
        size_t pos = start;
        do {
            size_t consumed = 12345;
            struct fcgi_event event;
            int rc = fcgi_parser_feed(&parser, data + pos, end - pos, &consumed, &event);
            CHECK(consumed <= end - pos);
            if (rc != TK_OK) {
                CHECK_INT(consumed <= end - pos, 1);
                log_event(log, rc, &event);
                goto done;
            }
            pos += consumed;
            if (event.type == FCGI_EVENT_NONE) {
                CHECK_INT(pos, end);
                break;
            }
            log_event(log, rc, &event);
            fcgi_parser_request_done(&parser);
        } while (pos < end);
        start = end;
    }
    buffer_printf(log, "at_rest=%d\n", fcgi_parser_at_rest(&parser));
done:
    fcgi_parser_free(&parser);
}

static void run_whole(const struct fcgi_parser_limits *limits, const struct buffer *stream,
                      struct buffer *log)
{
    run_splits(limits, stream->data, stream->len, NULL, 0, log);
}

static uint64_t prng_state;

static uint64_t prng_next(void)
{
    prng_state ^= prng_state << 13;
    prng_state ^= prng_state >> 7;
    prng_state ^= prng_state << 17;
    return prng_state;
}

/* Whole, byte by byte and `rounds` random splittings must log alike. */
static void check_split_invariance(const struct fcgi_parser_limits *limits,
                                   const struct buffer *stream, int rounds)
{
    struct buffer whole;
    struct buffer other;
    buffer_init(&whole);
    buffer_init(&other);
    run_whole(limits, stream, &whole);

    size_t *cuts = malloc((stream->len + 1) * sizeof(*cuts));
    CHECK(cuts != NULL);
    if (cuts == NULL) {
        goto done;
    }
    for (size_t i = 1; i < stream->len; i++) {
        cuts[i - 1] = i;
    }
    run_splits(limits, stream->data, stream->len, cuts, stream->len > 0 ? stream->len - 1 : 0,
               &other);
    CHECK_INT(other.len, whole.len);
    CHECK(other.len == whole.len && memcmp(other.data, whole.data, whole.len) == 0);

    for (int round = 0; round < rounds; round++) {
        size_t count = 0;
        size_t at = 0;
        while (stream->len > 1) {
            at += 1 + prng_next() % (round % 2 == 0 ? 7 : 200);
            if (at >= stream->len) {
                break;
            }
            cuts[count++] = at;
        }
        buffer_reset(&other);
        run_splits(limits, stream->data, stream->len, cuts, count, &other);
        if (other.len != whole.len || memcmp(other.data, whole.data, whole.len) != 0) {
            fprintf(stderr, "round %d differs:\n%s\n---- whole:\n%s\n", round, other.data,
                    whole.data);
            CHECK(0);
            break;
        }
    }
done:
    free(cuts);
    buffer_free(&whole);
    buffer_free(&other);
}

/* Feeds the whole stream to a fresh parser; returns the first event. */
static int first_event(struct fcgi_conn_parser *parser, const struct buffer *stream,
                       size_t *consumed, struct fcgi_event *event)
{
    return fcgi_parser_feed(parser, stream->data, stream->len, consumed, event);
}

static const char *param(const struct fcgi_event *event, const char *name)
{
    const char *value = NULL;
    int rc = fcgi_params_get(&event->params, name, &value);
    return rc == TK_OK ? value : NULL;
}

/* ---- tests ---- */

static void test_token_request(void)
{
    struct buffer stream;
    buffer_init(&stream);
    put_token_request(&stream, 1, 0);
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, NULL);
    CHECK(fcgi_parser_at_rest(&parser));
    size_t consumed = 0;
    struct fcgi_event event;
    CHECK_INT(first_event(&parser, &stream, &consumed, &event), TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_REQUEST);
    CHECK_INT(consumed, stream.len);
    CHECK_INT(event.request_id, 1);
    CHECK_INT(event.keep_conn, 0);
    CHECK_INT(event.params.count, 11);
    CHECK_STR(param(&event, "REQUEST_METHOD"), "POST");
    CHECK_STR(param(&event, "DOCUMENT_URI"), "/oauth/token");
    CHECK_STR(param(&event, "REQUEST_URI"), "/oauth/token?x=1");
    CHECK_STR(param(&event, "SCRIPT_NAME"), "/oauth/token");
    CHECK_STR(param(&event, "PATH_INFO"), "");
    CHECK_STR(param(&event, "QUERY_STRING"), "x=1");
    CHECK_STR(param(&event, "CONTENT_TYPE"), "application/x-www-form-urlencoded");
    CHECK_STR(param(&event, "CONTENT_LENGTH"), "48");
    CHECK_STR(param(&event, "HTTP_AUTHORIZATION"), "Basic Y2xpZW50OnNlY3JldA==");
    const char *value = param(&event, "HTTP_X_LONG_VALUE");
    CHECK(value != NULL && strlen(value) == 300 && value[0] == 'v' && value[299] == 'v');
    char long_name[201];
    memset(long_name, 'N', 200);
    memcpy(long_name, "HTTP_X_", 7);
    long_name[200] = '\0';
    CHECK_STR(param(&event, long_name), "short");
    /* lookups compare lengths: prefixes and extensions do not match */
    CHECK_INT(fcgi_params_get(&event.params, "REQUEST_METHO", NULL), TK_NOT_FOUND);
    CHECK_INT(fcgi_params_get(&event.params, "REQUEST_METHODS", NULL), TK_NOT_FOUND);
    CHECK_INT(fcgi_params_get(&event.params, "", NULL), TK_NOT_FOUND);
    CHECK_INT(fcgi_params_get(&event.params, "REQUEST_METHOD", NULL), TK_OK);
    const char *absent = "sentinel";
    CHECK_INT(fcgi_params_get(&event.params, "HTTP_COOKIE", &absent), TK_NOT_FOUND);
    CHECK(absent == NULL);
    CHECK_STR(event.body, token_body);
    CHECK_INT(event.body_len, strlen(token_body));
    CHECK_INT(event.stdin_len, strlen(token_body));
    CHECK_INT(event.body_too_large, 0);
    CHECK_INT(event.body_length_mismatch, 0);
    CHECK(!fcgi_parser_at_rest(&parser));

    /* order of iteration is the order sent */
    size_t cursor = 0;
    struct fcgi_param first;
    CHECK(fcgi_params_next(&event.params, &cursor, &first));
    CHECK_STR(first.name, "REQUEST_METHOD");
    CHECK_INT(first.name_len, 14);
    CHECK_STR(first.value, "POST");
    CHECK_INT(first.value_len, 4);

    fcgi_parser_request_done(&parser);
    CHECK(fcgi_parser_at_rest(&parser));
    /* nothing more: an empty feed is NONE */
    CHECK_INT(fcgi_parser_feed(&parser, "", 0, &consumed, &event), TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_NONE);
    CHECK_INT(consumed, 0);
    fcgi_parser_free(&parser);
    buffer_free(&stream);
}

/* The same stream fed whole, byte by byte and in random pieces. */
static void test_split_invariance(void)
{
    struct buffer stream;
    buffer_init(&stream);
    prng_state = 0x9E3779B97F4A7C15ull;

    /* a plain request, then one with keep-conn */
    put_token_request(&stream, 1, 0);
    check_split_invariance(NULL, &stream, 300);
    buffer_reset(&stream);
    put_token_request(&stream, 7, FCGI_FLAG_KEEP_CONN);
    put_token_request(&stream, 7, FCGI_FLAG_KEEP_CONN);
    check_split_invariance(NULL, &stream, 300);

    /* management records between and inside requests, a refusal, an abort */
    buffer_reset(&stream);
    struct buffer names;
    buffer_init(&names);
    put_pair(&names, "FCGI_MAX_CONNS", "");
    put_pair(&names, "FCGI_MPXS_CONNS", "");
    put_record(&stream, FCGI_REC_GET_VALUES, 0, names.data, names.len, 5);
    put_record(&stream, 200, 0, "abc", 3, 1);
    put_begin(&stream, 1, FCGI_ROLE_RESPONDER, FCGI_FLAG_KEEP_CONN, 2);
    put_record(&stream, FCGI_REC_PARAMS, 1, names.data, 10, 0);
    put_begin(&stream, 2, FCGI_ROLE_RESPONDER, 0, 0);
    put_record(&stream, FCGI_REC_PARAMS, 2, "xx", 2, 0);
    put_record(&stream, FCGI_REC_GET_VALUES, 0, names.data, names.len, 0);
    put_record(&stream, FCGI_REC_PARAMS, 1, names.data + 10, names.len - 10, 0);
    put_record(&stream, FCGI_REC_PARAMS, 1, NULL, 0, 0);
    put_record(&stream, FCGI_REC_STDIN, 1, "body", 4, 4);
    put_record(&stream, FCGI_REC_STDIN, 1, NULL, 0, 255);
    put_begin(&stream, 3, FCGI_ROLE_FILTER, 0, 0);
    put_begin(&stream, 4, FCGI_ROLE_RESPONDER, 0, 0);
    put_record(&stream, FCGI_REC_ABORT_REQUEST, 4, NULL, 0, 0);
    put_record(&stream, FCGI_REC_ABORT_REQUEST, 1, NULL, 0, 0);
    put_token_request(&stream, 1, 0);
    check_split_invariance(NULL, &stream, 300);

    /* limits hit */
    struct fcgi_parser_limits small = {.max_params_bytes = 100, .max_body_bytes = 10};
    check_split_invariance(&small, &stream, 100);

    /* ending in a protocol error */
    put_record(&stream, FCGI_REC_STDOUT, 1, "x", 1, 0);
    put_token_request(&stream, 1, 0);
    check_split_invariance(NULL, &stream, 100);
    buffer_free(&names);
    buffer_free(&stream);
}

static void test_back_to_back(void)
{
    struct buffer stream;
    buffer_init(&stream);
    put_token_request(&stream, 1, FCGI_FLAG_KEEP_CONN);
    size_t first_len = stream.len;
    struct buffer pairs;
    buffer_init(&pairs);
    put_pair(&pairs, "REQUEST_METHOD", "GET");
    put_pair(&pairs, "DOCUMENT_URI", "/.well-known/jwks.json");
    put_request(&stream, 1, FCGI_FLAG_KEEP_CONN, &pairs, NULL, 0);

    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, NULL);
    size_t consumed = 0;
    struct fcgi_event event;
    CHECK_INT(first_event(&parser, &stream, &consumed, &event), TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_REQUEST);
    CHECK_INT(event.keep_conn, 1);
    CHECK_INT(consumed, first_len); /* stops right after the first request */
    CHECK_STR(param(&event, "REQUEST_METHOD"), "POST");
    fcgi_parser_request_done(&parser);

    CHECK_INT(
        fcgi_parser_feed(&parser, stream.data + consumed, stream.len - consumed, &consumed, &event),
        TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_REQUEST);
    CHECK_INT(consumed, stream.len - first_len);
    CHECK_INT(event.request_id, 1);
    CHECK_STR(param(&event, "REQUEST_METHOD"), "GET");
    CHECK_STR(param(&event, "DOCUMENT_URI"), "/.well-known/jwks.json");
    CHECK_INT(fcgi_params_get(&event.params, "CONTENT_LENGTH", NULL), TK_NOT_FOUND);
    CHECK(event.body == NULL);
    CHECK_INT(event.body_len, 0);
    CHECK_INT(event.stdin_len, 0);
    CHECK_INT(event.body_length_mismatch, 0);
    fcgi_parser_request_done(&parser);
    CHECK(fcgi_parser_at_rest(&parser));

    /* a request with no params at all */
    buffer_reset(&stream);
    buffer_reset(&pairs);
    put_request(&stream, 3, 0, &pairs, "x", 1);
    CHECK_INT(fcgi_parser_feed(&parser, stream.data, stream.len, &consumed, &event), TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_REQUEST);
    CHECK_INT(event.params.count, 0);
    CHECK_INT(fcgi_params_get(&event.params, "REQUEST_METHOD", NULL), TK_NOT_FOUND);
    CHECK_STR(event.body, "x");
    fcgi_parser_free(&parser);
    buffer_free(&pairs);
    buffer_free(&stream);
}

/* Feeds one stream to `parser` and expects one event of `type`, consuming
 * everything. */
static void expect_event(struct fcgi_conn_parser *parser, const struct buffer *stream,
                         enum fcgi_event_type type, struct fcgi_event *event)
{
    size_t consumed = 0;
    int rc = fcgi_parser_feed(parser, stream->data, stream->len, &consumed, event);
    CHECK_INT(rc, TK_OK);
    CHECK_INT(event->type, type);
    CHECK_INT(consumed, stream->len);
}

static void test_abort(void)
{
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, NULL);
    struct fcgi_event event;
    struct buffer stream;
    buffer_init(&stream);
    struct buffer pairs;
    buffer_init(&pairs);
    put_pair(&pairs, "REQUEST_METHOD", "POST");

    /* while PARAMS arrive: the request is dropped, its leftovers skipped */
    put_begin(&stream, 5, FCGI_ROLE_RESPONDER, FCGI_FLAG_KEEP_CONN, 0);
    put_record(&stream, FCGI_REC_PARAMS, 5, pairs.data, pairs.len, 0);
    put_record(&stream, FCGI_REC_ABORT_REQUEST, 5, NULL, 0, 0);
    expect_event(&parser, &stream, FCGI_EVENT_ABORT, &event);
    CHECK_INT(event.request_id, 5);
    CHECK_INT(event.keep_conn, 1);
    CHECK_INT(event.request_reported, 0);
    CHECK(fcgi_parser_at_rest(&parser));
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_PARAMS, 5, NULL, 0, 0);
    put_record(&stream, FCGI_REC_STDIN, 5, "abc", 3, 0);
    put_record(&stream, FCGI_REC_STDIN, 5, NULL, 0, 0);
    put_record(&stream, FCGI_REC_ABORT_REQUEST, 5, NULL, 0, 0);
    expect_event(&parser, &stream, FCGI_EVENT_NONE, &event);

    /* after the request was reported: only reported */
    buffer_reset(&stream);
    put_request(&stream, 5, 0, &pairs, "a", 1);
    expect_event(&parser, &stream, FCGI_EVENT_REQUEST, &event);
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_ABORT_REQUEST, 5, NULL, 0, 0);
    expect_event(&parser, &stream, FCGI_EVENT_ABORT, &event);
    CHECK_INT(event.request_id, 5);
    CHECK_INT(event.request_reported, 1);
    CHECK_INT(event.keep_conn, 0);
    CHECK(!fcgi_parser_at_rest(&parser));

    /* after the answer: an ABORT crossing it is ignored */
    fcgi_parser_request_done(&parser);
    expect_event(&parser, &stream, FCGI_EVENT_NONE, &event);
    CHECK(fcgi_parser_at_rest(&parser));

    /* for an id never begun: a protocol error */
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_ABORT_REQUEST, 9, NULL, 0, 0);
    size_t consumed = 0;
    CHECK_INT(fcgi_parser_feed(&parser, stream.data, stream.len, &consumed, &event), TK_INVALID);
    CHECK_INT(event.type, FCGI_EVENT_PROTOCOL_ERROR);
    CHECK_STR(event.error, "abort_request for an unknown request id");
    fcgi_parser_free(&parser);
    buffer_free(&pairs);
    buffer_free(&stream);
}

/* Decodes a GET_VALUES_RESULT record the way a web server would. */
static int decode_values_result(const struct buffer *record, char *text, size_t text_size)
{
    const uint8_t *bytes = (const uint8_t *)record->data;
    if (record->len < 8 || bytes[0] != 1 || bytes[1] != FCGI_REC_GET_VALUES_RESULT ||
        bytes[2] != 0 || bytes[3] != 0) {
        return -1;
    }
    size_t len = (size_t)bytes[4] << 8 | bytes[5];
    if (record->len != 8 + len + bytes[6]) {
        return -1;
    }
    size_t pos = 8;
    size_t out = 0;
    text[0] = '\0';
    while (pos < 8 + len) {
        size_t name_len = bytes[pos++];
        size_t value_len = bytes[pos++];
        if (name_len > 127 || value_len > 127 || pos + name_len + value_len > 8 + len ||
            out + name_len + value_len + 3 > text_size) {
            return -1;
        }
        out += (size_t)snprintf(text + out, text_size - out, "%.*s=%.*s;", (int)name_len,
                                (const char *)bytes + pos, (int)value_len,
                                (const char *)bytes + pos + name_len);
        pos += name_len + value_len;
    }
    return 0;
}

static void test_get_values(void)
{
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, NULL);
    struct fcgi_event event;
    struct buffer stream;
    struct buffer names;
    struct buffer reply;
    buffer_init(&stream);
    buffer_init(&names);
    buffer_init(&reply);
    put_pair(&names, "FCGI_MAX_CONNS", "");
    put_pair(&names, "X_UNKNOWN", "");
    put_pair(&names, "FCGI_MAX_REQS", "");
    put_pair(&names, "FCGI_MPXS_CONNS", "");
    put_pair(&names, "FCGI_MAX_CONN", ""); /* a prefix, not known */
    put_record(&stream, FCGI_REC_GET_VALUES, 0, names.data, names.len, 3);
    expect_event(&parser, &stream, FCGI_EVENT_GET_VALUES, &event);
    CHECK_INT(event.asked_values,
              FCGI_VALUE_MAX_CONNS | FCGI_VALUE_MAX_REQS | FCGI_VALUE_MPXS_CONNS);
    CHECK_INT(event.params.count, 5);
    CHECK_INT(fcgi_params_get(&event.params, "X_UNKNOWN", NULL), TK_OK);
    CHECK_INT(event.request_id, 0);

    struct fcgi_server_values values = {.max_conns = 10, .max_reqs = 50};
    fcgi_append_get_values_result(&reply, event.asked_values, &values);
    static const char expected[] = "\x01\x0a\x00\x00\x00\x35\x00\x00"
                                   "\x0e\x02"
                                   "FCGI_MAX_CONNS10"
                                   "\x0d\x02"
                                   "FCGI_MAX_REQS50"
                                   "\x0f\x01"
                                   "FCGI_MPXS_CONNS0";
    CHECK_INT(reply.len, sizeof(expected) - 1);
    CHECK(reply.len == sizeof(expected) - 1 && memcmp(reply.data, expected, reply.len) == 0);
    char text[200];
    CHECK_INT(decode_values_result(&reply, text, sizeof(text)), 0);
    CHECK_STR(text, "FCGI_MAX_CONNS=10;FCGI_MAX_REQS=50;FCGI_MPXS_CONNS=0;");

    /* only some asked; large numbers */
    buffer_reset(&reply);
    values.max_reqs = 4294967295u;
    fcgi_append_get_values_result(&reply, FCGI_VALUE_MAX_REQS, &values);
    CHECK_INT(decode_values_result(&reply, text, sizeof(text)), 0);
    CHECK_STR(text, "FCGI_MAX_REQS=4294967295;");

    /* an empty query gets an empty answer */
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_GET_VALUES, 0, NULL, 0, 0);
    expect_event(&parser, &stream, FCGI_EVENT_GET_VALUES, &event);
    CHECK_INT(event.asked_values, 0);
    CHECK_INT(event.params.count, 0);
    buffer_reset(&reply);
    fcgi_append_get_values_result(&reply, 0, &values);
    CHECK_INT(reply.len, 8);
    CHECK(memcmp(reply.data, "\x01\x0a\x00\x00\x00\x00\x00\x00", 8) == 0);

    /* a GET_VALUES split across feeds, byte by byte */
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_GET_VALUES, 0, names.data, names.len, 3);
    size_t consumed = 0;
    for (size_t i = 0; i < stream.len; i++) {
        CHECK_INT(fcgi_parser_feed(&parser, stream.data + i, 1, &consumed, &event), TK_OK);
        CHECK_INT(consumed, 1);
        CHECK_INT(event.type, i + 1 == stream.len ? FCGI_EVENT_GET_VALUES : FCGI_EVENT_NONE);
    }
    CHECK_INT(event.params.count, 5);
    CHECK_INT(event.asked_values, 7);

    /* a malformed query */
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_GET_VALUES, 0,
               "\x0e\x00"
               "FCGI_MAX",
               10, 0);
    CHECK_INT(fcgi_parser_feed(&parser, stream.data, stream.len, &consumed, &event), TK_INVALID);
    CHECK_STR(event.error, "malformed name-value pair in get_values");

    /* with a request id: an error */
    fcgi_parser_reset(&parser);
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_GET_VALUES, 1, names.data, names.len, 0);
    CHECK_INT(fcgi_parser_feed(&parser, stream.data, stream.len, &consumed, &event), TK_INVALID);
    CHECK_STR(event.error, "management record with a request id");
    fcgi_parser_free(&parser);
    buffer_free(&stream);
    buffer_free(&names);
    buffer_free(&reply);
}

static void test_unknown_type(void)
{
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, NULL);
    struct fcgi_event event;
    struct buffer stream;
    struct buffer reply;
    buffer_init(&stream);
    buffer_init(&reply);
    put_record(&stream, 42, 0, "some content", 12, 4);
    expect_event(&parser, &stream, FCGI_EVENT_UNKNOWN_TYPE, &event);
    CHECK_INT(event.record_type, 42);
    fcgi_append_unknown_type(&reply, event.record_type);
    CHECK_INT(reply.len, 16);
    CHECK(memcmp(reply.data,
                 "\x01\x0b\x00\x00\x00\x08\x00\x00"
                 "\x2a\x00\x00\x00\x00\x00\x00\x00",
                 16) == 0);

    /* any type with the null request id but GET_VALUES is a management
     * record we do not understand, as in libfcgi */
    buffer_reset(&stream);
    put_begin(&stream, 0, FCGI_ROLE_RESPONDER, 0, 0);
    expect_event(&parser, &stream, FCGI_EVENT_UNKNOWN_TYPE, &event);
    CHECK_INT(event.record_type, FCGI_REC_BEGIN_REQUEST);
    buffer_reset(&stream);
    put_record(&stream, 0, 0, NULL, 0, 0);
    expect_event(&parser, &stream, FCGI_EVENT_UNKNOWN_TYPE, &event);
    CHECK_INT(event.record_type, 0);
    CHECK(fcgi_parser_at_rest(&parser));
    fcgi_parser_free(&parser);
    buffer_free(&stream);
    buffer_free(&reply);
}

static void test_unknown_role(void)
{
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, NULL);
    struct fcgi_event event;
    struct buffer stream;
    struct buffer pairs;
    struct buffer reply;
    buffer_init(&stream);
    buffer_init(&pairs);
    buffer_init(&reply);
    put_pair(&pairs, "REQUEST_METHOD", "GET");
    put_begin(&stream, 3, FCGI_ROLE_AUTHORIZER, 0, 0);
    expect_event(&parser, &stream, FCGI_EVENT_REFUSED, &event);
    CHECK_INT(event.request_id, 3);
    CHECK_INT(event.protocol_status, FCGI_STATUS_UNKNOWN_ROLE);
    CHECK_INT(event.role, FCGI_ROLE_AUTHORIZER);
    CHECK_INT(event.keep_conn, 0);
    fcgi_append_end_request(&reply, event.request_id, 0, event.protocol_status);
    CHECK_INT(reply.len, 16);
    CHECK(memcmp(reply.data,
                 "\x01\x03\x00\x03\x00\x08\x00\x00"
                 "\x00\x00\x00\x00\x03\x00\x00\x00",
                 16) == 0);

    /* the refused request's streams are skipped */
    buffer_reset(&stream);
    put_stream(&stream, FCGI_REC_PARAMS, 3, pairs.data, pairs.len, 5, 1);
    put_stream(&stream, FCGI_REC_STDIN, 3, "body", 4, 2, 0);
    put_stream(&stream, FCGI_REC_DATA, 3, "data", 4, 2, 0);
    expect_event(&parser, &stream, FCGI_EVENT_NONE, &event);
    CHECK(fcgi_parser_at_rest(&parser));

    /* the id is usable again by a new BEGIN_REQUEST */
    buffer_reset(&stream);
    put_request(&stream, 3, 0, &pairs, NULL, 0);
    expect_event(&parser, &stream, FCGI_EVENT_REQUEST, &event);
    CHECK_STR(param(&event, "REQUEST_METHOD"), "GET");

    /* FILTER and an undefined role too */
    fcgi_parser_reset(&parser);
    buffer_reset(&stream);
    put_begin(&stream, 4, FCGI_ROLE_FILTER, FCGI_FLAG_KEEP_CONN, 0);
    expect_event(&parser, &stream, FCGI_EVENT_REFUSED, &event);
    CHECK_INT(event.protocol_status, FCGI_STATUS_UNKNOWN_ROLE);
    CHECK_INT(event.keep_conn, 1);
    buffer_reset(&stream);
    put_begin(&stream, 5, 0x0101, 0, 0);
    expect_event(&parser, &stream, FCGI_EVENT_REFUSED, &event);
    CHECK_INT(event.role, 0x0101);
    fcgi_parser_free(&parser);
    buffer_free(&stream);
    buffer_free(&pairs);
    buffer_free(&reply);
}

static void test_cant_mpx(void)
{
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, NULL);
    struct fcgi_event event;
    struct buffer stream;
    struct buffer pairs;
    buffer_init(&stream);
    buffer_init(&pairs);
    put_pair(&pairs, "REQUEST_METHOD", "POST");
    put_pair(&pairs, "CONTENT_LENGTH", "2");

    put_begin(&stream, 1, FCGI_ROLE_RESPONDER, FCGI_FLAG_KEEP_CONN, 0);
    put_record(&stream, FCGI_REC_PARAMS, 1, pairs.data, 7, 0);
    put_begin(&stream, 2, FCGI_ROLE_AUTHORIZER, FCGI_FLAG_KEEP_CONN, 0);
    size_t consumed = 0;
    CHECK_INT(fcgi_parser_feed(&parser, stream.data, stream.len, &consumed, &event), TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_REFUSED);
    CHECK_INT(consumed, stream.len);
    CHECK_INT(event.request_id, 2);
    CHECK_INT(event.protocol_status, FCGI_STATUS_CANT_MPX_CONN); /* busy wins over the role */

    /* request 2's records are skipped while request 1 completes */
    buffer_reset(&stream);
    put_stream(&stream, FCGI_REC_PARAMS, 2, pairs.data, pairs.len, 65535, 0);
    put_record(&stream, FCGI_REC_PARAMS, 1, pairs.data + 7, pairs.len - 7, 0);
    put_record(&stream, FCGI_REC_PARAMS, 1, NULL, 0, 0);
    put_stream(&stream, FCGI_REC_STDIN, 2, "zz", 2, 65535, 0);
    put_record(&stream, FCGI_REC_ABORT_REQUEST, 2, NULL, 0, 0);
    put_stream(&stream, FCGI_REC_STDIN, 1, "ok", 2, 1, 0);
    expect_event(&parser, &stream, FCGI_EVENT_REQUEST, &event);
    CHECK_INT(event.request_id, 1);
    CHECK_STR(event.body, "ok");
    CHECK_STR(param(&event, "CONTENT_LENGTH"), "2");

    /* while request 1 waits for its answer, a new BEGIN is refused too */
    buffer_reset(&stream);
    put_begin(&stream, 3, FCGI_ROLE_RESPONDER, 0, 0);
    expect_event(&parser, &stream, FCGI_EVENT_REFUSED, &event);
    CHECK_INT(event.request_id, 3);
    CHECK_INT(event.protocol_status, FCGI_STATUS_CANT_MPX_CONN);
    CHECK_STR(param(&event, "REQUEST_METHOD"), NULL); /* the event only */

    /* a BEGIN for the active id is a protocol error */
    buffer_reset(&stream);
    put_begin(&stream, 1, FCGI_ROLE_RESPONDER, 0, 0);
    CHECK_INT(fcgi_parser_feed(&parser, stream.data, stream.len, &consumed, &event), TK_INVALID);
    CHECK_STR(event.error, "begin_request for the active request id");
    fcgi_parser_free(&parser);
    buffer_free(&stream);
    buffer_free(&pairs);
}

static void test_params_limit(void)
{
    struct fcgi_parser_limits limits = {.max_params_bytes = 64};
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, &limits);
    struct fcgi_event event;
    struct buffer stream;
    struct buffer pairs;
    buffer_init(&stream);
    buffer_init(&pairs);

    /* exactly at the limit: accepted (2 + 12 + 50 = 64 bytes) */
    char value[51];
    memset(value, 'a', 50);
    value[50] = '\0';
    put_pair(&pairs, "HTTP_X_VALUE", value);
    CHECK_INT(pairs.len, 64);
    put_begin(&stream, 1, FCGI_ROLE_RESPONDER, FCGI_FLAG_KEEP_CONN, 0);
    put_stream(&stream, FCGI_REC_PARAMS, 1, pairs.data, pairs.len, 10, 0);
    put_stream(&stream, FCGI_REC_STDIN, 1, NULL, 0, 1, 0);
    expect_event(&parser, &stream, FCGI_EVENT_REQUEST, &event);
    CHECK_STR(param(&event, "HTTP_X_VALUE"), value);
    fcgi_parser_request_done(&parser);

    /* one byte over: reported only once the request is complete */
    buffer_reset(&stream);
    put_pair(&pairs, "A", "");
    put_begin(&stream, 1, FCGI_ROLE_RESPONDER, FCGI_FLAG_KEEP_CONN, 0);
    put_stream(&stream, FCGI_REC_PARAMS, 1, pairs.data, pairs.len, 10, 0);
    size_t consumed = 0;
    CHECK_INT(fcgi_parser_feed(&parser, stream.data, stream.len, &consumed, &event), TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_NONE);
    buffer_reset(&stream);
    put_stream(&stream, FCGI_REC_STDIN, 1, "body", 4, 1, 0);
    expect_event(&parser, &stream, FCGI_EVENT_PARAMS_TOO_LARGE, &event);
    CHECK_INT(event.request_id, 1);
    CHECK_INT(event.keep_conn, 1);
    CHECK_INT(event.params.count, 0);
    CHECK(event.body == NULL);
    fcgi_parser_request_done(&parser);
    CHECK(fcgi_parser_at_rest(&parser));

    /* a malformed pair past the limit is never looked at; the connection
     * stays usable */
    buffer_reset(&stream);
    buffer_reset(&pairs);
    put_pair(&pairs, "REQUEST_METHOD", "GET");
    put_begin(&stream, 2, FCGI_ROLE_RESPONDER, 0, 0);
    put_record(&stream, FCGI_REC_PARAMS, 2, value, 50, 0);
    put_record(&stream, FCGI_REC_PARAMS, 2, value, 50, 0);
    put_record(&stream, FCGI_REC_PARAMS, 2, NULL, 0, 0);
    put_record(&stream, FCGI_REC_STDIN, 2, NULL, 0, 0);
    put_request(&stream, 3, 0, &pairs, NULL, 0);
    CHECK_INT(fcgi_parser_feed(&parser, stream.data, stream.len, &consumed, &event), TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_PARAMS_TOO_LARGE);
    CHECK_INT(event.request_id, 2);
    fcgi_parser_request_done(&parser);
    size_t rest = stream.len - consumed;
    CHECK_INT(fcgi_parser_feed(&parser, stream.data + consumed, rest, &consumed, &event), TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_REQUEST);
    CHECK_INT(consumed, rest);
    CHECK_STR(param(&event, "REQUEST_METHOD"), "GET");
    fcgi_parser_free(&parser);

    /* the default limit is 16 KiB */
    fcgi_parser_init(&parser, NULL);
    CHECK_INT(parser.max_params_bytes, 16384);
    CHECK_INT(parser.max_body_bytes, 8192);
    buffer_reset(&stream);
    buffer_reset(&pairs);
    char *big = malloc(16384);
    CHECK(big != NULL);
    if (big != NULL) {
        memset(big, 'b', 16384);
        put_pair_n(&pairs, "HTTP_BIG", 8, big, 16384 - 8 - 1 - 4);
        CHECK_INT(pairs.len, 16384);
        put_request(&stream, 1, 0, &pairs, NULL, 0);
        expect_event(&parser, &stream, FCGI_EVENT_REQUEST, &event);
        CHECK_INT(strlen(param(&event, "HTTP_BIG")), 16384 - 13);
        fcgi_parser_request_done(&parser);
        buffer_reset(&stream);
        buffer_append(&pairs,
                      "\x01\x00"
                      "A",
                      3);
        put_request(&stream, 1, 0, &pairs, NULL, 0);
        expect_event(&parser, &stream, FCGI_EVENT_PARAMS_TOO_LARGE, &event);
    }
    free(big);
    fcgi_parser_free(&parser);
    buffer_free(&stream);
    buffer_free(&pairs);
}

/* One request with the given CONTENT_LENGTH (NULL: none) and body. */
static void feed_body(const char *content_length, const char *body, size_t body_len,
                      struct buffer *log_out, struct fcgi_event *copy)
{
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, NULL);
    struct buffer stream;
    struct buffer pairs;
    buffer_init(&stream);
    buffer_init(&pairs);
    put_pair(&pairs, "REQUEST_METHOD", "POST");
    if (content_length != NULL) {
        put_pair(&pairs, "CONTENT_LENGTH", content_length);
    }
    put_begin(&stream, 1, FCGI_ROLE_RESPONDER, 0, 0);
    put_stream(&stream, FCGI_REC_PARAMS, 1, pairs.data, pairs.len, 65535, 0);
    put_stream(&stream, FCGI_REC_STDIN, 1, body, body_len, 3000, 6);
    struct fcgi_event event;
    expect_event(&parser, &stream, FCGI_EVENT_REQUEST, &event);
    *copy = event;
    buffer_reset(log_out);
    if (event.body != NULL) {
        buffer_append(log_out, event.body, event.body_len);
        CHECK(event.body[event.body_len] == '\0');
    }
    copy->body = event.body != NULL ? log_out->data : NULL;
    copy->params.data = NULL;
    fcgi_parser_free(&parser);
    buffer_free(&stream);
    buffer_free(&pairs);
}

static void test_body_limits(void)
{
    char *body = malloc(20000);
    CHECK(body != NULL);
    if (body == NULL) {
        return;
    }
    for (size_t i = 0; i < 20000; i++) {
        body[i] = (char)('a' + i % 26);
    }
    struct buffer kept;
    buffer_init(&kept);
    struct fcgi_event event;

    /* exactly 8192 bytes: kept whole */
    feed_body("8192", body, 8192, &kept, &event);
    CHECK_INT(event.body_len, 8192);
    CHECK(event.body != NULL && memcmp(event.body, body, 8192) == 0);
    CHECK_INT(event.stdin_len, 8192);
    CHECK_INT(event.body_too_large, 0);
    CHECK_INT(event.body_length_mismatch, 0);

    /* 8193: consumed to the end, then reported too large, without a body */
    feed_body("8193", body, 8193, &kept, &event);
    CHECK_INT(event.body_too_large, 1);
    CHECK_INT(event.body_length_mismatch, 0);
    CHECK(event.body == NULL);
    CHECK_INT(event.body_len, 0);
    CHECK_INT(event.stdin_len, 8193);

    /* far more, without CONTENT_LENGTH (chunked upstream) */
    feed_body(NULL, body, 20000, &kept, &event);
    CHECK_INT(event.body_too_large, 1);
    CHECK_INT(event.stdin_len, 20000);
    CHECK_INT(event.body_length_mismatch, 0);

    /* announced too large, little sent */
    feed_body("9000", body, 10, &kept, &event);
    CHECK_INT(event.body_too_large, 1);
    CHECK_INT(event.body_length_mismatch, 1);
    CHECK(event.body == NULL);

    /* announced in 20 digits: saturates, too large */
    feed_body("99999999999999999999999", body, 10, &kept, &event);
    CHECK_INT(event.body_too_large, 1);

    /* CONTENT_LENGTH disagreeing with STDIN: STDIN wins, flagged */
    feed_body("10", body, 5, &kept, &event);
    CHECK_INT(event.body_too_large, 0);
    CHECK_INT(event.body_length_mismatch, 1);
    CHECK_INT(event.body_len, 5);
    CHECK(event.body != NULL && memcmp(event.body, body, 5) == 0);
    feed_body("3", body, 5, &kept, &event);
    CHECK_INT(event.body_length_mismatch, 1);
    CHECK_INT(event.body_len, 5);
    feed_body("abc", body, 3, &kept, &event);
    CHECK_INT(event.body_length_mismatch, 1);
    feed_body("-3", body, 3, &kept, &event);
    CHECK_INT(event.body_length_mismatch, 1);
    feed_body(" 3", body, 3, &kept, &event);
    CHECK_INT(event.body_length_mismatch, 1);
    feed_body("003", body, 3, &kept, &event);
    CHECK_INT(event.body_length_mismatch, 0);
    CHECK_INT(event.body_len, 3);
    /* empty or absent CONTENT_LENGTH announces nothing */
    feed_body("", body, 3, &kept, &event);
    CHECK_INT(event.body_length_mismatch, 0);
    CHECK_INT(event.body_len, 3);
    feed_body(NULL, NULL, 0, &kept, &event);
    CHECK_INT(event.body_length_mismatch, 0);
    CHECK(event.body == NULL);
    feed_body("0", NULL, 0, &kept, &event);
    CHECK_INT(event.body_length_mismatch, 0);
    CHECK(event.body == NULL);
    feed_body("0", body, 1, &kept, &event);
    CHECK_INT(event.body_length_mismatch, 1);

    /* a body may hold NUL bytes */
    feed_body("3", "a\0b", 3, &kept, &event);
    CHECK_INT(event.body_len, 3);
    CHECK(event.body != NULL && memcmp(event.body, "a\0b", 4) == 0);

    /* a smaller configured body limit */
    struct fcgi_parser_limits limits = {.max_body_bytes = 4};
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, &limits);
    struct buffer stream;
    struct buffer pairs;
    buffer_init(&stream);
    buffer_init(&pairs);
    put_request(&stream, 1, 0, &pairs, "abcd", 4);
    expect_event(&parser, &stream, FCGI_EVENT_REQUEST, &event);
    CHECK_STR(event.body, "abcd");
    fcgi_parser_request_done(&parser);
    buffer_reset(&stream);
    put_request(&stream, 1, 0, &pairs, "abcde", 5);
    expect_event(&parser, &stream, FCGI_EVENT_REQUEST, &event);
    CHECK_INT(event.body_too_large, 1);
    CHECK(event.body == NULL);
    fcgi_parser_free(&parser);
    buffer_free(&stream);
    buffer_free(&pairs);
    buffer_free(&kept);
    free(body);
}

/* Feeds a stream to a fresh parser; expects the protocol error `reason`
 * and that the parser then stays failed until reset. */
static void check_protocol_error(const struct buffer *stream, const char *reason)
{
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, NULL);
    size_t pos = 0;
    struct fcgi_event event;
    int rc;
    do {
        size_t consumed = 0;
        rc = fcgi_parser_feed(&parser, stream->data + pos, stream->len - pos, &consumed, &event);
        pos += consumed;
        fcgi_parser_request_done(&parser);
    } while (rc == TK_OK && event.type != FCGI_EVENT_NONE);
    CHECK_INT(rc, TK_INVALID);
    CHECK_INT(event.type, FCGI_EVENT_PROTOCOL_ERROR);
    CHECK_STR(event.error, reason);
    CHECK(!fcgi_parser_at_rest(&parser));

    /* failed for good: consumes nothing, same answer */
    size_t consumed = 99;
    struct buffer good;
    buffer_init(&good);
    put_token_request(&good, 1, 0);
    CHECK_INT(fcgi_parser_feed(&parser, good.data, good.len, &consumed, &event), TK_INVALID);
    CHECK_INT(consumed, 0);
    CHECK_INT(event.type, FCGI_EVENT_PROTOCOL_ERROR);
    CHECK_STR(event.error, reason);

    /* until reset */
    fcgi_parser_reset(&parser);
    CHECK(fcgi_parser_at_rest(&parser));
    CHECK_INT(fcgi_parser_feed(&parser, good.data, good.len, &consumed, &event), TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_REQUEST);
    buffer_free(&good);
    fcgi_parser_free(&parser);
}

static void test_protocol_errors(void)
{
    struct buffer stream;
    struct buffer pairs;
    buffer_init(&stream);
    buffer_init(&pairs);
    put_pair(&pairs, "REQUEST_METHOD", "GET");

    /* bad version, even split in the header */
    buffer_append(&stream, "\x02\x01\x00\x01\x00\x08\x00\x00", 8);
    check_protocol_error(&stream, "unsupported fastcgi version");
    buffer_reset(&stream);
    buffer_append(&stream, "\x00\x01\x00\x01\x00\x08\x00\x00", 8);
    check_protocol_error(&stream, "unsupported fastcgi version");

    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_STDOUT, 1, "x", 1, 0);
    check_protocol_error(&stream, "record type sent only by applications");
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_END_REQUEST, 1, "12345678", 8, 0);
    check_protocol_error(&stream, "record type sent only by applications");
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_STDERR, 1, NULL, 0, 0);
    check_protocol_error(&stream, "record type sent only by applications");
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_GET_VALUES_RESULT, 1, NULL, 0, 0);
    check_protocol_error(&stream, "management record with a request id");
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_UNKNOWN_TYPE, 1, "12345678", 8, 0);
    check_protocol_error(&stream, "management record with a request id");
    buffer_reset(&stream);
    put_record(&stream, 12, 1, NULL, 0, 0);
    check_protocol_error(&stream, "unknown record type");
    buffer_reset(&stream);
    put_record(&stream, 0, 1, NULL, 0, 0);
    check_protocol_error(&stream, "unknown record type");

    /* records for ids never begun */
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_PARAMS, 1, NULL, 0, 0);
    check_protocol_error(&stream, "record for an unknown request id");
    buffer_reset(&stream);
    put_begin(&stream, 1, FCGI_ROLE_RESPONDER, 0, 0);
    put_record(&stream, FCGI_REC_STDIN, 2, NULL, 0, 0);
    check_protocol_error(&stream, "record for an unknown request id");
    /* ... and for an id whose request is over but not in the ignored list
     * any more (nine later refusals pushed it out) */
    buffer_reset(&stream);
    put_request(&stream, 1, FCGI_FLAG_KEEP_CONN, &pairs, NULL, 0);
    for (uint16_t id = 10; id < 10 + FCGI_PARSER_IGNORED_IDS; id++) {
        put_begin(&stream, id, FCGI_ROLE_AUTHORIZER, 0, 0);
    }
    put_record(&stream, FCGI_REC_STDIN, 1, NULL, 0, 0);
    check_protocol_error(&stream, "record for an unknown request id");

    /* stream order */
    buffer_reset(&stream);
    put_begin(&stream, 1, FCGI_ROLE_RESPONDER, 0, 0);
    put_record(&stream, FCGI_REC_PARAMS, 1, pairs.data, pairs.len, 0);
    put_record(&stream, FCGI_REC_STDIN, 1, "x", 1, 0);
    check_protocol_error(&stream, "stdin before the end of the params stream");
    buffer_reset(&stream);
    put_begin(&stream, 1, FCGI_ROLE_RESPONDER, 0, 0);
    put_stream(&stream, FCGI_REC_PARAMS, 1, pairs.data, pairs.len, 100, 0);
    put_record(&stream, FCGI_REC_PARAMS, 1, NULL, 0, 0);
    check_protocol_error(&stream, "params after the end of the params stream");
    buffer_reset(&stream);
    put_begin(&stream, 1, FCGI_ROLE_RESPONDER, 0, 0);
    put_stream(&stream, FCGI_REC_PARAMS, 1, pairs.data, pairs.len, 100, 0);
    put_record(&stream, FCGI_REC_DATA, 1, "d", 1, 0);
    check_protocol_error(&stream, "data record for a responder request");

    /* STDIN after the request was reported (check_protocol_error answers
     * each request at once, so feed by hand here) */
    buffer_reset(&stream);
    put_request(&stream, 1, 0, &pairs, "x", 1);
    put_record(&stream, FCGI_REC_STDIN, 1, "y", 1, 0);
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, NULL);
    size_t consumed = 0;
    struct fcgi_event event;
    CHECK_INT(fcgi_parser_feed(&parser, stream.data, stream.len, &consumed, &event), TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_REQUEST);
    const char *body = event.body;
    size_t rest = stream.len - consumed;
    CHECK_INT(fcgi_parser_feed(&parser, stream.data + consumed, rest, &consumed, &event),
              TK_INVALID);
    CHECK_STR(event.error, "stdin after the end of the stdin stream");
    CHECK_STR(body, "x"); /* the reported request stays valid */
    fcgi_parser_free(&parser);

    /* BEGIN_REQUEST bodies */
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_BEGIN_REQUEST, 1, "\x00\x01\x00\x00\x00\x00\x00", 7, 0);
    check_protocol_error(&stream, "begin_request body is not 8 bytes");
    buffer_reset(&stream);
    put_record(&stream, FCGI_REC_BEGIN_REQUEST, 1, "\x00\x01\x00\x00\x00\x00\x00\x00\x00", 9, 0);
    check_protocol_error(&stream, "begin_request body is not 8 bytes");

    /* name-value pairs: truncated value, truncated name, truncated
     * four-byte length, a length alone */
    static const struct {
        const char *bytes;
        size_t len;
    } bad_pairs[] = {
        {"\x01\x05"
         "AVAL",
         6},
        {"\x05\x00"
         "ABC",
         5},
        {"\x80\x00\x00", 3},
        {"\x01\x80\x00\x00", 4},
        {"\x01", 1},
        {"\x01\x01"
         "AB"
         "\x7f",
         5},
        {"\x01\xff\xff\xff\xff"
         "A",
         6},
        {"\xff\xff\xff\xff\x00"
         "A",
         6},
    };
    for (size_t i = 0; i < sizeof(bad_pairs) / sizeof(bad_pairs[0]); i++) {
        buffer_reset(&stream);
        put_begin(&stream, 1, FCGI_ROLE_RESPONDER, 0, 0);
        put_stream(&stream, FCGI_REC_PARAMS, 1, bad_pairs[i].bytes, bad_pairs[i].len, 2, 1);
        put_stream(&stream, FCGI_REC_STDIN, 1, NULL, 0, 1, 0);
        check_protocol_error(&stream, "malformed name-value pair in params");
    }
    buffer_free(&stream);
    buffer_free(&pairs);
}

static void test_odd_params(void)
{
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, NULL);
    struct fcgi_event event;
    struct buffer stream;
    struct buffer pairs;
    buffer_init(&stream);
    buffer_init(&pairs);

    put_pair_n(&pairs, "HTTP_X_NUL", 10, "a\0b", 3);       /* value with NUL */
    put_pair_n(&pairs, "REQUEST_METHOD\0X", 16, "PUT", 3); /* name with NUL */
    put_pair(&pairs, "HTTP_AUTHORIZATION", "Basic first");
    put_pair(&pairs, "HTTP_AUTHORIZATION", "Basic second");
    put_pair(&pairs, "", "empty name");
    /* four-byte lengths for short strings are accepted */
    put_length(&pairs, 14, true);
    put_length(&pairs, 3, true);
    buffer_append(&pairs,
                  "REQUEST_METHOD"
                  "GET",
                  17);
    put_pair(&pairs, "EMPTY", "");
    put_pair_n(&pairs, "CONTENT_LENGTH", 14, "0\0", 2);
    put_request(&stream, 1, 0, &pairs, NULL, 0);
    expect_event(&parser, &stream, FCGI_EVENT_REQUEST, &event);
    CHECK_INT(event.params.count, 8);
    /* a CONTENT_LENGTH with a NUL announces nothing sensible */
    CHECK_INT(event.body_length_mismatch, 1);
    CHECK_INT(event.body_too_large, 0);

    const char *value = "sentinel";
    CHECK_INT(fcgi_params_get(&event.params, "HTTP_X_NUL", &value), TK_INVALID);
    CHECK(value == NULL);
    CHECK_INT(fcgi_params_get(&event.params, "HTTP_X_NUL", NULL), TK_INVALID);
    /* "REQUEST_METHOD\0X" never matches "REQUEST_METHOD" */
    CHECK_STR(param(&event, "REQUEST_METHOD"), "GET");
    CHECK_INT(fcgi_params_count(&event.params, "REQUEST_METHOD"), 1);
    /* the last occurrence wins; count shows the repetition */
    CHECK_STR(param(&event, "HTTP_AUTHORIZATION"), "Basic second");
    CHECK_INT(fcgi_params_count(&event.params, "HTTP_AUTHORIZATION"), 2);
    CHECK_INT(fcgi_params_count(&event.params, "HTTP_COOKIE"), 0);
    CHECK_STR(param(&event, ""), "empty name");
    CHECK_STR(param(&event, "EMPTY"), "");

    size_t cursor = 0;
    struct fcgi_param item;
    CHECK(fcgi_params_next(&event.params, &cursor, &item));
    CHECK_INT(item.value_len, 3);
    CHECK(memcmp(item.value, "a\0b", 4) == 0);
    CHECK(fcgi_params_next(&event.params, &cursor, &item));
    CHECK_INT(item.name_len, 16);
    CHECK(memcmp(item.name, "REQUEST_METHOD\0X", 17) == 0);
    for (int i = 0; i < 6; i++) {
        CHECK(fcgi_params_next(&event.params, &cursor, &item));
    }
    CHECK(!fcgi_params_next(&event.params, &cursor, &item));

    /* an empty view */
    struct fcgi_params none = {0};
    cursor = 0;
    CHECK(!fcgi_params_next(&none, &cursor, &item));
    CHECK_INT(fcgi_params_get(&none, "A", NULL), TK_NOT_FOUND);
    CHECK_INT(fcgi_params_count(&none, "A"), 0);
    fcgi_parser_free(&parser);
    buffer_free(&stream);
    buffer_free(&pairs);
}

/* Zero-length records, maximal padding and content, feeding that stops
 * after each event. */
static void test_records_edges(void)
{
    struct fcgi_conn_parser parser;
    fcgi_parser_init(&parser, NULL);
    struct fcgi_event event;
    struct buffer stream;
    struct buffer pairs;
    buffer_init(&stream);
    buffer_init(&pairs);
    put_pair(&pairs, "REQUEST_METHOD", "POST");
    char *big = malloc(65535);
    CHECK(big != NULL);
    if (big == NULL) {
        return;
    }
    memset(big, 'z', 65535);
    put_begin(&stream, 65535, FCGI_ROLE_RESPONDER, 0xff, 255);
    put_record(&stream, FCGI_REC_PARAMS, 65535, pairs.data, pairs.len, 255);
    put_record(&stream, FCGI_REC_PARAMS, 65535, NULL, 0, 255);
    put_record(&stream, FCGI_REC_STDIN, 65535, big, 65535, 255);
    put_record(&stream, FCGI_REC_STDIN, 65535, NULL, 0, 255);
    size_t consumed = 0;
    /* all but the last padding byte: no event yet */
    CHECK_INT(fcgi_parser_feed(&parser, stream.data, stream.len - 1, &consumed, &event), TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_NONE);
    CHECK_INT(consumed, stream.len - 1);
    CHECK(!fcgi_parser_at_rest(&parser));
    CHECK_INT(fcgi_parser_feed(&parser, stream.data + stream.len - 1, 1, &consumed, &event), TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_REQUEST);
    CHECK_INT(consumed, 1);
    CHECK_INT(event.request_id, 65535);
    CHECK_INT(event.keep_conn, 1);
    CHECK_INT(event.stdin_len, 65535);
    CHECK_INT(event.body_too_large, 1);
    fcgi_parser_request_done(&parser);
    CHECK(fcgi_parser_at_rest(&parser));

    /* a header cut in the middle is not at rest */
    CHECK_INT(fcgi_parser_feed(&parser, stream.data, 3, &consumed, &event), TK_OK);
    CHECK_INT(event.type, FCGI_EVENT_NONE);
    CHECK(!fcgi_parser_at_rest(&parser));
    fcgi_parser_reset(&parser);
    CHECK(fcgi_parser_at_rest(&parser));
    free(big);
    fcgi_parser_free(&parser);
    buffer_free(&stream);
    buffer_free(&pairs);
}

static void test_builders(void)
{
    struct buffer out;
    buffer_init(&out);

    fcgi_append_stdout(&out, 1, "x", 0);
    CHECK_INT(out.len, 0);

    fcgi_append_response(&out, 0x0102, "Status: 200 OK\r\n\r\nok", 20, 0);
    static const char expected[] = "\x01\x06\x01\x02\x00\x14\x00\x00"
                                   "Status: 200 OK\r\n\r\nok"
                                   "\x01\x06\x01\x02\x00\x00\x00\x00"
                                   "\x01\x03\x01\x02\x00\x08\x00\x00"
                                   "\x00\x00\x00\x00\x00\x00\x00\x00";
    CHECK_INT(out.len, sizeof(expected) - 1);
    CHECK(out.len == sizeof(expected) - 1 && memcmp(out.data, expected, out.len) == 0);

    buffer_reset(&out);
    fcgi_append_end_request(&out, 7, 0x01020304u, FCGI_STATUS_OVERLOADED);
    CHECK_INT(out.len, 16);
    CHECK(memcmp(out.data,
                 "\x01\x03\x00\x07\x00\x08\x00\x00"
                 "\x01\x02\x03\x04\x02\x00\x00\x00",
                 16) == 0);

    buffer_reset(&out);
    fcgi_append_stdout_end(&out, 65535);
    CHECK_INT(out.len, 8);
    CHECK(memcmp(out.data, "\x01\x06\xff\xff\x00\x00\x00\x00", 8) == 0);

    /* 70000 bytes: 65535 + 4465 */
    char *data = malloc(70000);
    CHECK(data != NULL);
    if (data != NULL) {
        for (size_t i = 0; i < 70000; i++) {
            data[i] = (char)(i * 7);
        }
        buffer_reset(&out);
        fcgi_append_response(&out, 1, data, 70000, 3);
        CHECK_INT(out.len, 8 + 65535 + 8 + 4465 + 8 + 16);
        const char *p = out.data;
        CHECK(memcmp(p, "\x01\x06\x00\x01\xff\xff\x00\x00", 8) == 0);
        CHECK(memcmp(p + 8, data, 65535) == 0);
        p += 8 + 65535;
        CHECK(memcmp(p, "\x01\x06\x00\x01\x11\x71\x00\x00", 8) == 0); /* 4465 = 0x1171 */
        CHECK(memcmp(p + 8, data + 65535, 4465) == 0);
        p += 8 + 4465;
        CHECK(memcmp(p, "\x01\x06\x00\x01\x00\x00\x00\x00", 8) == 0);
        p += 8;
        CHECK(memcmp(p,
                     "\x01\x03\x00\x01\x00\x08\x00\x00"
                     "\x00\x00\x00\x03\x00\x00\x00\x00",
                     16) == 0);

        /* exactly 65535: one record; 65536: two */
        buffer_reset(&out);
        fcgi_append_stdout(&out, 1, data, 65535);
        CHECK_INT(out.len, 8 + 65535);
        buffer_reset(&out);
        fcgi_append_stdout(&out, 1, data, 65536);
        CHECK_INT(out.len, 8 + 65535 + 8 + 1);
        CHECK(memcmp(out.data + 8 + 65535, "\x01\x06\x00\x01\x00\x01\x00\x00", 8) == 0);
    }
    free(data);
    CHECK(!buffer_failed(&out));
    buffer_free(&out);
}

int main(void)
{
    RUN(test_token_request);
    RUN(test_split_invariance);
    RUN(test_back_to_back);
    RUN(test_abort);
    RUN(test_get_values);
    RUN(test_unknown_type);
    RUN(test_unknown_role);
    RUN(test_cant_mpx);
    RUN(test_params_limit);
    RUN(test_body_limits);
    RUN(test_protocol_errors);
    RUN(test_odd_params);
    RUN(test_records_edges);
    RUN(test_builders);
    return unit_test_finish();
}
