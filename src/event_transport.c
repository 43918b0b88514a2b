/*
 * event_transport.c - serving FastCGI from one epoll loop per worker over
 * many non-blocking connections.
 *
 * Loop turn: wait (epoll_pwait, stop signals unblocked only there), drive
 * every ready connection, accept a few new ones, sweep the timers.
 *
 *   - The listening socket is in the epoll set with EPOLLEXCLUSIVE, so one
 *     worker is woken per new connection. At most
 *     EVENT_TRANSPORT_ACCEPTS_PER_TURN accepts per wakeup (accept4,
 *     non-blocking; EAGAIN means another worker won).
 *   - max_connections: when a worker holds that many it takes the
 *     listening socket out of its epoll set (other workers and the kernel
 *     backlog take the new connections) and puts it back once one closes.
 *     A refused connection would look like a dead server to nginx; a
 *     waiting one is served as soon as there is room.
 *     The soft RLIMIT_NOFILE is raised to max_connections + a few spare
 *     descriptors when the hard limit allows. If accept still runs out of
 *     descriptors (EMFILE/ENFILE/ENOBUFS/ENOMEM) the listening socket also
 *     leaves the set, for ACCEPT_RETRY_MS or until a connection closes,
 *     so the level-triggered socket cannot spin the loop.
 *   - A connection is level-triggered and in exactly one phase:
 *       IDLE     between requests, EPOLLIN, deadline idle_timeout_ms;
 *       READING  a request (or the first bytes after accept) is arriving,
 *                EPOLLIN, deadline read_timeout_ms from its first byte,
 *                NOT extended by progress: a peer that trickles half a
 *                record cannot hold the connection;
 *       WRITING  an answer did not fit the socket: EPOLLOUT only, nothing
 *                more is read until it is written; deadline io_timeout_ms,
 *                extended by each write that makes progress.
 *     A deadline passing closes the connection.
 *   - Input is read into the connection's own buffer and fed to the
 *     fcgi_protocol parser, which stops after each event. A complete
 *     request goes to the handler at once; its answer (STDOUT records,
 *     END_REQUEST) is built in the connection's output buffer and written
 *     with one write(2) when it fits. Management answers (GET_VALUES,
 *     UNKNOWN_TYPE, refusals) are queued and written with the next write.
 *   - Fairness: after EVENT_TRANSPORT_REQUESTS_PER_TURN requests in a row
 *     the connection goes on the `pending` list and the loop turns (epoll
 *     timeout 0 while anything is pending), so one pipelining peer cannot
 *     starve the others.
 *   - Timers: a binary min-heap of connections by deadline (each
 *     connection has one deadline, its heap index stored in it): O(log n)
 *     to set, O(1) to find the next, swept once per turn with monotonic_ms.
 *   - Stop (*stop set): the listening socket leaves the epoll set, idle
 *     connections with no unread input are closed (one with input waiting
 *     carries a request sent just before: it is read and served), requests
 *     already complete are answered and written, a connection whose answer
 *     is written is closed, and whatever is still arriving or writing
 *     io_timeout_ms later is closed. Then TK_OK. A web server may still
 *     pick a kept connection in the instant it is closed; nginx repeats
 *     such a request on another connection when fastcgi_next_upstream
 *     allows it (the shipped block does: nginx-conf/tokend.conf).
 *
 * Ownership: the loop owns every connection (calloc'ed at accept, freed at
 * close, with its parser and output buffer) and one arena and response
 * reused by all requests (a handler runs one request at a time).
 *
 * Failure: a broken or misbehaving connection is closed and logged at
 * debug level; it never stops the loop. Out of memory while building an
 * answer closes that connection. Only epoll or the listening socket
 * failing ends the loop with TK_ERROR.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tokend/arena.h"
#include "tokend/buffer.h"
#include "tokend/event_transport.h"
#include "tokend/fcgi_protocol.h"
#include "tokend/logging.h"
#include "tokend/monotonic_clock.h"
#include "tokend/status.h"

#define INPUT_BUFFER_SIZE 16384
#define EPOLL_EVENTS      64
#define ACCEPT_RETRY_MS   100
/* Descriptors a worker needs besides its connections (listening socket,
 * epoll, database, log, ...). */
#define SPARE_DESCRIPTORS 64
/* epoll data for the listening socket; connections use their pointer. */
#define LISTEN_TAG NULL

enum conn_phase {
    PHASE_IDLE,
    PHASE_READING,
    PHASE_WRITING,
};

struct conn {
    int fd;
    enum conn_phase phase;
    bool close_after_write; /* the request did not ask FCGI_KEEP_CONN */
    bool pending;           /* on the pending list */
    int64_t deadline_ms;
    size_t heap_index;
    struct conn *prev, *next;                 /* all connections */
    struct conn *pending_prev, *pending_next; /* served its share, has input left */
    struct fcgi_conn_parser parser;
    struct buffer out;
    size_t out_sent;
    size_t in_start, in_len;
    char in[INPUT_BUFFER_SIZE];
};

struct loop {
    const struct event_transport_options *options;
    int epoll_fd;
    bool listening; /* the listening socket is in the epoll set */
    bool stopping;
    int64_t stop_deadline_ms;
    int64_t accept_retry_ms; /* out of descriptors: listen again at this time */
    int max_connections;
    int idle_timeout_ms;
    int read_timeout_ms;
    int write_timeout_ms;
    struct fcgi_parser_limits limits;
    struct fcgi_server_values values;

    size_t count;
    struct conn *all;
    struct conn *pending_head, *pending_tail;
    struct conn **heap;
    size_t heap_len;

    struct arena arena;
    struct http_response response;
    struct buffer serialized;
};

/* ---- the timer heap ---- */

static void heap_swap(struct loop *loop, size_t a, size_t b)
{
    struct conn *tmp = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = tmp;
    loop->heap[a]->heap_index = a;
    loop->heap[b]->heap_index = b;
}

static void heap_fix(struct loop *loop, size_t i)
{
    while (i > 0 && loop->heap[(i - 1) / 2]->deadline_ms > loop->heap[i]->deadline_ms) {
        heap_swap(loop, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t smallest = i, left = 2 * i + 1, right = 2 * i + 2;
        if (left < loop->heap_len &&
            loop->heap[left]->deadline_ms < loop->heap[smallest]->deadline_ms) {
            smallest = left;
        }
        if (right < loop->heap_len &&
            loop->heap[right]->deadline_ms < loop->heap[smallest]->deadline_ms) {
            smallest = right;
        }
        if (smallest == i) {
            return;
        }
        heap_swap(loop, i, smallest);
        i = smallest;
    }
}

static void set_deadline(struct loop *loop, struct conn *conn, int64_t deadline_ms)
{
    conn->deadline_ms = deadline_ms;
    heap_fix(loop, conn->heap_index);
}

static void heap_remove(struct loop *loop, struct conn *conn)
{
    size_t i = conn->heap_index;
    loop->heap_len--;
    if (i != loop->heap_len) {
        heap_swap(loop, i, loop->heap_len);
        heap_fix(loop, i);
    }
}

/* ---- connections ---- */

static void pending_remove(struct loop *loop, struct conn *conn)
{
    if (!conn->pending) {
        return;
    }
    if (conn->pending_prev != NULL) {
        conn->pending_prev->pending_next = conn->pending_next;
    } else {
        loop->pending_head = conn->pending_next;
    }
    if (conn->pending_next != NULL) {
        conn->pending_next->pending_prev = conn->pending_prev;
    } else {
        loop->pending_tail = conn->pending_prev;
    }
    conn->pending = false;
    conn->pending_prev = conn->pending_next = NULL;
}

static void pending_add(struct loop *loop, struct conn *conn)
{
    if (conn->pending) {
        return;
    }
    conn->pending = true;
    conn->pending_next = NULL;
    conn->pending_prev = loop->pending_tail;
    if (loop->pending_tail != NULL) {
        loop->pending_tail->pending_next = conn;
    } else {
        loop->pending_head = conn;
    }
    loop->pending_tail = conn;
}

static void set_listening(struct loop *loop, bool on)
{
    if (loop->listening == on) {
        return;
    }
    struct epoll_event interest = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = LISTEN_TAG};
    int rc = epoll_ctl(loop->epoll_fd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, loop->options->listen_fd,
                       &interest);
    if (rc != 0) {
        log_error("epoll on the FastCGI socket: %s", strerror(errno));
        return;
    }
    loop->listening = on;
}

static void conn_close(struct loop *loop, struct conn *conn)
{
    pending_remove(loop, conn);
    heap_remove(loop, conn);
    if (conn->prev != NULL) {
        conn->prev->next = conn->next;
    } else {
        loop->all = conn->next;
    }
    if (conn->next != NULL) {
        conn->next->prev = conn->prev;
    }
    close(conn->fd); /* also leaves the epoll set */
    fcgi_parser_free(&conn->parser);
    buffer_free(&conn->out);
    free(conn);
    loop->count--;
    if (!loop->stopping && loop->count < (size_t)loop->max_connections) {
        set_listening(loop, true);
    }
}

static void conn_watch(struct loop *loop, struct conn *conn, uint32_t events)
{
    struct epoll_event interest = {.events = events, .data.ptr = conn};
    epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, conn->fd, &interest);
}

/* Accepts up to EVENT_TRANSPORT_ACCEPTS_PER_TURN connections. TK_ERROR
 * when the listening socket is broken. */
static int accept_some(struct loop *loop)
{
    for (int i = 0; i < EVENT_TRANSPORT_ACCEPTS_PER_TURN; i++) {
        if (loop->count >= (size_t)loop->max_connections) {
            set_listening(loop, false);
            return TK_OK;
        }
        int fd = accept4(loop->options->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED || errno == EPROTO) {
                return TK_OK;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Level-triggered, the socket would wake us at once again:
                 * leave it until a connection closes or ACCEPT_RETRY_MS. */
                log_error("accept: %s", strerror(errno));
                set_listening(loop, false);
                loop->accept_retry_ms = monotonic_ms() + ACCEPT_RETRY_MS;
                return TK_OK;
            }
            log_error("accept on the FastCGI socket failed: %s", strerror(errno));
            return TK_ERROR;
        }
        struct conn *conn = malloc(sizeof(*conn));
        if (conn == NULL) {
            log_error("out of memory accepting a FastCGI connection");
            free(conn);
            close(fd);
            return TK_OK;
        }
        memset(conn, 0, offsetof(struct conn, in));
        conn->fd = fd;
        conn->phase = PHASE_READING;
        fcgi_parser_init(&conn->parser, &loop->limits);
        buffer_init(&conn->out);
        struct epoll_event interest = {.events = EPOLLIN, .data.ptr = conn};
        if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &interest) != 0) {
            log_error("epoll on a FastCGI connection: %s", strerror(errno));
            close(fd);
            free(conn);
            return TK_OK;
        }
        conn->next = loop->all;
        if (loop->all != NULL) {
            loop->all->prev = conn;
        }
        loop->all = conn;
        loop->count++;
        conn->heap_index = loop->heap_len;
        loop->heap[loop->heap_len++] = conn;
        set_deadline(loop, conn, monotonic_ms() + loop->read_timeout_ms);
    }
    return TK_OK;
}

/* ---- requests ---- */

/* A parameter's value, "" when absent, and *bad set when it holds a NUL. */
static const char *param(const struct fcgi_params *params, const char *name, bool *bad)
{
    const char *value = NULL;
    int rc = fcgi_params_get(params, name, &value);
    if (rc == TK_INVALID) {
        *bad = true;
    }
    return rc == TK_OK ? value : NULL;
}

/* The request path, chosen as fcgi_transport.c does: DOCUMENT_URI, else
 * REQUEST_URI without the query, else SCRIPT_NAME + PATH_INFO. */
static const char *request_path(struct loop *loop, const struct fcgi_params *params, bool *bad)
{
    const char *document = param(params, "DOCUMENT_URI", bad);
    if (document != NULL && document[0] != '\0') {
        return document;
    }
    const char *uri = param(params, "REQUEST_URI", bad);
    if (uri != NULL && uri[0] != '\0') {
        const char *path = arena_strndup(&loop->arena, uri, strcspn(uri, "?"));
        return path != NULL ? path : "";
    }
    const char *script = param(params, "SCRIPT_NAME", bad);
    const char *info = param(params, "PATH_INFO", bad);
    size_t script_len = script != NULL ? strlen(script) : 0;
    size_t info_len = info != NULL ? strlen(info) : 0;
    char *path = arena_alloc(&loop->arena, script_len + info_len + 1);
    if (path == NULL) {
        return "";
    }
    memcpy(path, script != NULL ? script : "", script_len);
    memcpy(path + script_len, info != NULL ? info : "", info_len);
    path[script_len + info_len] = '\0';
    return path;
}

/* Runs the handler for a REQUEST (or answers PARAMS_TOO_LARGE) and
 * appends the whole FastCGI answer to conn->out. */
static void answer_request(struct loop *loop, struct conn *conn, const struct fcgi_event *event)
{
    struct http_response *resp = &loop->response;
    http_response_reset(resp);
    bool head = false;
    if (event->type == FCGI_EVENT_PARAMS_TOO_LARGE) {
        http_response_json(resp, 431,
                           "{\"error\":\"invalid_request\",\"error_description\":"
                           "\"request header fields too large\"}");
    } else {
        bool bad = false;
        const char *method = param(&event->params, "REQUEST_METHOD", &bad);
        const char *query = param(&event->params, "QUERY_STRING", &bad);
        struct http_request req = {
            .method = method != NULL ? method : "",
            .path = request_path(loop, &event->params, &bad),
            .query = query != NULL ? query : "",
            .content_type = param(&event->params, "CONTENT_TYPE", &bad),
            .authorization = param(&event->params, "HTTP_AUTHORIZATION", &bad),
            .body = event->body,
            .body_len = event->body_len,
            .body_too_large = event->body_too_large,
            .arena = &loop->arena,
        };
        head = strcmp(req.method, "HEAD") == 0;
        if (bad) {
            http_response_oauth_error(resp, 400, "invalid_request",
                                      "a request parameter holds a NUL byte");
        } else if (!event->body_too_large && event->body_length_mismatch) {
            http_response_oauth_error(resp, 400, "invalid_request",
                                      "Content-Length does not match the body");
        } else {
            loop->options->handler(loop->options->context, &req, resp);
        }
    }
    buffer_reset(&loop->serialized);
    http_response_serialize(resp, &loop->serialized);
    size_t len = loop->serialized.len;
    if (head && !buffer_failed(&loop->serialized)) {
        /* Headers only: cut after the blank line. */
        const char *blank = memmem(loop->serialized.data, len, "\r\n\r\n", 4);
        len = blank != NULL ? (size_t)(blank - loop->serialized.data) + 4 : len;
    }
    if (buffer_failed(&loop->serialized)) {
        conn->out.failed = true;
    } else {
        fcgi_append_response(&conn->out, event->request_id, loop->serialized.data, len, 0);
    }
    arena_reset(&loop->arena);
}

/* Writes what conn->out holds. TK_OK: all written; TK_DECLINED: the
 * socket is full, wait for EPOLLOUT; TK_ERROR: close the connection. */
static int flush_output(struct loop *loop, struct conn *conn)
{
    if (buffer_failed(&conn->out)) {
        log_error("out of memory answering a FastCGI request");
        return TK_ERROR;
    }
    bool progress = false;
    while (conn->out_sent < conn->out.len) {
        ssize_t n = send(conn->fd, conn->out.data + conn->out_sent, conn->out.len - conn->out_sent,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (progress || conn->phase != PHASE_WRITING) {
                set_deadline(loop, conn, monotonic_ms() + loop->write_timeout_ms);
            }
            if (conn->phase != PHASE_WRITING) {
                conn->phase = PHASE_WRITING;
                conn_watch(loop, conn, EPOLLOUT);
            }
            return TK_DECLINED;
        }
        if (n <= 0) {
            log_debug("writing a FastCGI answer: %s", n < 0 ? strerror(errno) : "closed");
            return TK_ERROR;
        }
        conn->out_sent += (size_t)n;
        progress = true;
    }
    buffer_reset(&conn->out);
    conn->out_sent = 0;
    if (conn->phase == PHASE_WRITING) {
        conn->phase = PHASE_READING; /* conn_drive sets the right phase next */
        conn_watch(loop, conn, EPOLLIN);
    }
    return TK_OK;
}

/* Parses the buffered input until it is used up or a request has been
 * answered. Returns TK_OK (more may follow), TK_DECLINED when a request
 * was answered, TK_ERROR to close. */
static int parse_input(struct loop *loop, struct conn *conn)
{
    while (conn->in_len > 0) {
        size_t consumed = 0;
        struct fcgi_event event;
        int rc = fcgi_parser_feed(&conn->parser, conn->in + conn->in_start, conn->in_len, &consumed,
                                  &event);
        if (rc != TK_OK) {
            log_debug("closing a FastCGI connection: %s", event.error);
            return TK_ERROR;
        }
        conn->in_start += consumed;
        conn->in_len -= consumed;
        switch (event.type) {
        case FCGI_EVENT_NONE:
            break;
        case FCGI_EVENT_REQUEST:
        case FCGI_EVENT_PARAMS_TOO_LARGE:
            answer_request(loop, conn, &event);
            fcgi_parser_request_done(&conn->parser);
            conn->close_after_write = conn->close_after_write || !event.keep_conn;
            return TK_DECLINED;
        case FCGI_EVENT_ABORT:
            if (!event.request_reported) {
                fcgi_append_end_request(&conn->out, event.request_id, 0,
                                        FCGI_STATUS_REQUEST_COMPLETE);
                if (!event.keep_conn) {
                    conn->close_after_write = true;
                    return TK_DECLINED;
                }
            }
            break;
        case FCGI_EVENT_REFUSED:
            fcgi_append_end_request(&conn->out, event.request_id, 0, event.protocol_status);
            if (event.protocol_status != FCGI_STATUS_CANT_MPX_CONN && !event.keep_conn) {
                conn->close_after_write = true;
                return TK_DECLINED;
            }
            break;
        case FCGI_EVENT_GET_VALUES:
            fcgi_append_get_values_result(&conn->out, event.asked_values, &loop->values);
            break;
        case FCGI_EVENT_UNKNOWN_TYPE:
            fcgi_append_unknown_type(&conn->out, event.record_type);
            break;
        case FCGI_EVENT_PROTOCOL_ERROR:
            return TK_ERROR;
        }
    }
    return TK_OK;
}

/* Reads, parses, answers and writes on one connection until it would block,
 * it is closed, or it has served its share of requests this turn. */
static void conn_drive(struct loop *loop, struct conn *conn)
{
    pending_remove(loop, conn);
    int served = 0;
    bool drained = false; /* the last read returned less than it asked for */
    for (;;) {
        if (conn->phase == PHASE_WRITING) {
            return; /* EPOLLOUT resumes it */
        }
        int parsed = parse_input(loop, conn);
        if (parsed == TK_ERROR) {
            conn_close(loop, conn);
            return;
        }
        if (conn->out.len > 0 || buffer_failed(&conn->out)) {
            int flushed = flush_output(loop, conn);
            if (flushed == TK_ERROR) {
                conn_close(loop, conn);
                return;
            }
            if (flushed == TK_DECLINED) {
                return;
            }
        }
        if (conn->close_after_write) {
            conn_close(loop, conn);
            return;
        }
        if (parsed == TK_DECLINED) {
            served++;
            /* the next request's read deadline starts now */
            conn->phase = PHASE_READING;
            set_deadline(loop, conn, monotonic_ms() + loop->read_timeout_ms);
            if (loop->stopping && fcgi_parser_at_rest(&conn->parser) && conn->in_len == 0) {
                conn_close(loop, conn);
                return;
            }
            if (served >= EVENT_TRANSPORT_REQUESTS_PER_TURN) {
                pending_add(loop, conn); /* the rest next turn */
                return;
            }
            continue;
        }
        /* all input used: become idle or keep reading */
        if (fcgi_parser_at_rest(&conn->parser)) {
            if (conn->phase != PHASE_IDLE) {
                conn->phase = PHASE_IDLE;
                set_deadline(loop, conn, monotonic_ms() + loop->idle_timeout_ms);
            }
            if (loop->stopping) {
                conn_close(loop, conn);
                return;
            }
        } else if (conn->phase == PHASE_IDLE) {
            conn->phase = PHASE_READING; /* the rest of a record held back */
            set_deadline(loop, conn, monotonic_ms() + loop->read_timeout_ms);
        }
        if (drained) {
            /* A short read emptied the socket: reading again would almost
             * always cost a system call to learn EAGAIN. Level-triggered
             * epoll reports the connection again if more has arrived. */
            return;
        }
        ssize_t n = read(conn->fd, conn->in, sizeof(conn->in));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            if (n < 0 || !fcgi_parser_at_rest(&conn->parser)) {
                log_debug("FastCGI connection closed mid-request: %s",
                          n < 0 ? strerror(errno) : "end of file");
            }
            conn_close(loop, conn);
            return;
        }
        conn->in_start = 0;
        conn->in_len = (size_t)n;
        drained = (size_t)n < sizeof(conn->in);
        if (conn->phase == PHASE_IDLE) {
            conn->phase = PHASE_READING;
            set_deadline(loop, conn, monotonic_ms() + loop->read_timeout_ms);
        }
    }
}

/* ---- the loop ---- */

/* True when bytes the loop has not read yet wait on an idle connection:
 * the web server picked it for a request just before the stop, and that
 * request is served rather than cut off by a close. */
static bool input_waiting(const struct conn *conn)
{
    char byte;
    return recv(conn->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static void begin_stop(struct loop *loop)
{
    loop->stopping = true;
    loop->stop_deadline_ms = monotonic_ms() + loop->options->io_timeout_ms;
    set_listening(loop, false);
    struct conn *conn = loop->all;
    while (conn != NULL) {
        struct conn *next = conn->next;
        if (conn->phase == PHASE_IDLE && conn->in_len == 0 && !conn->pending &&
            !input_waiting(conn)) {
            conn_close(loop, conn);
        }
        conn = next;
    }
}

static void sweep_timers(struct loop *loop)
{
    int64_t now = monotonic_ms();
    while (loop->heap_len > 0 && loop->heap[0]->deadline_ms <= now) {
        struct conn *conn = loop->heap[0];
        log_debug("closing a FastCGI connection: %s timeout", conn->phase == PHASE_IDLE ? "idle"
                                                              : conn->phase == PHASE_WRITING
                                                                  ? "write"
                                                                  : "read");
        conn_close(loop, conn);
    }
}

static int wait_timeout_ms(const struct loop *loop)
{
    if (loop->pending_head != NULL) {
        return 0;
    }
    int64_t next = -1;
    if (loop->heap_len > 0) {
        next = loop->heap[0]->deadline_ms;
    }
    if (loop->stopping && (next < 0 || loop->stop_deadline_ms < next)) {
        next = loop->stop_deadline_ms;
    }
    if (loop->accept_retry_ms > 0 && (next < 0 || loop->accept_retry_ms < next)) {
        next = loop->accept_retry_ms;
    }
    if (next < 0) {
        return -1;
    }
    int64_t wait = next - monotonic_ms();
    return wait < 0 ? 0 : wait > 60000 ? 60000 : (int)wait;
}

static int run_loop(struct loop *loop)
{
    const struct event_transport_options *options = loop->options;
    struct epoll_event events[EPOLL_EVENTS];
    for (;;) {
        if (*options->stop && !loop->stopping) {
            begin_stop(loop);
        }
        if (loop->stopping && (loop->count == 0 || monotonic_ms() >= loop->stop_deadline_ms)) {
            return TK_OK;
        }
        if (loop->accept_retry_ms > 0 && monotonic_ms() >= loop->accept_retry_ms) {
            loop->accept_retry_ms = 0;
            if (!loop->stopping && loop->count < (size_t)loop->max_connections) {
                set_listening(loop, true);
            }
        }
        if (options->between_requests != NULL) {
            options->between_requests(options->context);
        }
        int ready = epoll_pwait(loop->epoll_fd, events, EPOLL_EVENTS, wait_timeout_ms(loop),
                                options->wait_mask);
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            log_error("waiting for FastCGI connections failed: %s", strerror(errno));
            return TK_ERROR;
        }
        /* Drive the connections first, so that one closed here can never
         * be named by a later event of this batch: closes only happen in
         * conn_drive, and each connection appears at most once. */
        bool accept_ready = false;
        for (int i = 0; i < ready; i++) {
            struct conn *conn = events[i].data.ptr;
            if (conn == LISTEN_TAG) {
                accept_ready = true;
                continue;
            }
            if (conn->phase == PHASE_WRITING) {
                int flushed = flush_output(loop, conn);
                if (flushed == TK_ERROR) {
                    conn_close(loop, conn);
                    continue;
                }
                if (flushed == TK_DECLINED) {
                    continue;
                }
            }
            conn_drive(loop, conn);
        }
        /* Connections that used their share last turn; the ones this
         * turn added wait for the next. */
        struct conn *last = loop->pending_tail;
        while (loop->pending_head != NULL) {
            struct conn *conn = loop->pending_head;
            bool was_last = conn == last;
            conn_drive(loop, conn);
            if (was_last) {
                break;
            }
        }
        if (accept_ready && loop->listening && !*options->stop) {
            if (accept_some(loop) != TK_OK) {
                return TK_ERROR;
            }
        }
        sweep_timers(loop);
    }
}

/* Raises the soft descriptor limit so that max_connections can be reached
 * (up to the hard limit; logged when that is too low). */
static void raise_descriptor_limit(int max_connections)
{
    struct rlimit limit;
    rlim_t wanted = (rlim_t)max_connections + SPARE_DESCRIPTORS;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= wanted) {
        return;
    }
    limit.rlim_cur =
        limit.rlim_max == RLIM_INFINITY || limit.rlim_max >= wanted ? wanted : limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur < wanted) {
        log_warn("descriptor limit %llu is below max_connections + %d",
                 (unsigned long long)limit.rlim_cur, SPARE_DESCRIPTORS);
    }
}

int event_transport_run(const struct event_transport_options *options)
{
    struct loop loop = {
        .options = options,
        .epoll_fd = -1,
        .max_connections = options->max_connections > 0 ? options->max_connections
                                                        : EVENT_TRANSPORT_DEFAULT_MAX_CONNECTIONS,
        .idle_timeout_ms = options->idle_timeout_ms > 0 ? options->idle_timeout_ms
                                                        : EVENT_TRANSPORT_DEFAULT_IDLE_TIMEOUT_MS,
        .read_timeout_ms =
            options->read_timeout_ms > 0 ? options->read_timeout_ms : options->io_timeout_ms,
        .write_timeout_ms = options->io_timeout_ms,
        .limits =
            {
                .max_params_bytes = options->max_params_bytes > 0
                                        ? options->max_params_bytes
                                        : EVENT_TRANSPORT_DEFAULT_MAX_PARAMS,
                .max_body_bytes =
                    options->max_body_bytes > 0 && options->max_body_bytes <= HTTP_REQUEST_MAX_BODY
                        ? options->max_body_bytes
                        : EVENT_TRANSPORT_DEFAULT_MAX_BODY,
            },
    };
    raise_descriptor_limit(loop.max_connections);
    loop.values.max_conns = (unsigned)loop.max_connections;
    loop.values.max_reqs = (unsigned)loop.max_connections;
    arena_init(&loop.arena, 16384);
    http_response_init(&loop.response);
    buffer_init(&loop.serialized);
    int rc = TK_ERROR;
    loop.heap = calloc((size_t)loop.max_connections, sizeof(*loop.heap));
    if (loop.heap == NULL) {
        log_error("out of memory starting the FastCGI event loop");
        goto done;
    }
    loop.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (loop.epoll_fd < 0) {
        log_error("epoll_create1: %s", strerror(errno));
        goto done;
    }
    set_listening(&loop, true);
    if (!loop.listening) {
        goto done;
    }
    rc = run_loop(&loop);
done:
    while (loop.all != NULL) {
        loop.stopping = true; /* do not re-add the listening socket */
        conn_close(&loop, loop.all);
    }
    if (loop.epoll_fd >= 0) {
        close(loop.epoll_fd);
    }
    free(loop.heap);
    arena_free(&loop.arena);
    http_response_free(&loop.response);
    buffer_free(&loop.serialized);
    return rc;
}
