/*
 * fcgi_transport.c - serving FastCGI requests with libfcgi, one connection
 * at a time per worker process.
 *
 * libfcgi's FCGX_Accept_r would block in accept(2) itself, where a stop
 * signal can either be lost (SA_RESTART) or break a request in flight
 * (EINTR in the middle of a read). So the worker does the waiting:
 *
 *   - stop signals stay blocked all the time except inside epoll_pwait /
 *     ppoll, which unblock them atomically while waiting; a signal that
 *     arrives during a request is delivered at the next wait and the loop
 *     ends after that request;
 *   - with no connection, it waits on the shared listening socket in an
 *     epoll set with EPOLLEXCLUSIVE (one idle worker is woken per
 *     connection, not all of them) and accepts with accept4 on the
 *     non-blocking socket (EAGAIN: another worker won the race);
 *   - the accepted (blocking) connection is given to libfcgi by setting
 *     FCGX_Request.ipcFd, and keepConnection is set so that the
 *     FCGX_Finish_r inside FCGX_Accept_r does not close it; libfcgi then
 *     reads BEGIN_REQUEST and PARAMS and sets keepConnection from the
 *     web server's FCGI_KEEP_CONN flag;
 *   - after a request FCGX_Finish_r closes the connection unless the web
 *     server asked to keep it; a kept connection is waited on with ppoll.
 *
 * libfcgi's own accept path only runs if a connection breaks during
 * BEGIN_REQUEST/PARAMS; there the non-blocking listening socket makes it
 * return at once (-EAGAIN) instead of blocking.
 *
 * Each connection gets SO_RCVTIMEO/SO_SNDTIMEO of io_timeout_ms, so a peer
 * that stops mid-record cannot hold a worker forever. The request body is
 * read only up to HTTP_REQUEST_MAX_BODY; a larger announced length is
 * refused unread. The answer is serialized into one buffer and handed to
 * libfcgi with one FCGX_PutStr.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "tokend/arena.h"
#include "tokend/buffer.h"
#include "tokend/fcgi_transport.h"
#include "tokend/logging.h"
#include "tokend/status.h"

struct transport_state {
    const struct fcgi_transport_options *options;
    FCGX_Request fcgi;
    struct arena arena;
    struct http_response response;
    struct buffer output;
    char body[HTTP_REQUEST_MAX_BODY + 1];
    int epoll_fd;
    bool listen_is_tcp; /* TCP_NODELAY only means something there */
};

static void set_io_timeouts(int fd, int timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Waits for a new connection or for a kept one to become readable.
 * Returns TK_OK when state->fcgi.ipcFd is ready for FCGX_Accept_r,
 * TK_DECLINED when a stop was requested or nothing is ready yet (retry),
 * TK_ERROR when the listening socket is broken. */
static int wait_for_connection(struct transport_state *state)
{
    const struct fcgi_transport_options *options = state->options;
    if (state->fcgi.ipcFd >= 0) {
        struct pollfd pfd = {.fd = state->fcgi.ipcFd, .events = POLLIN};
        int ready = ppoll(&pfd, 1, NULL, options->wait_mask);
        if (ready <= 0 || *options->stop) {
            return TK_DECLINED;
        }
        return TK_OK;
    }
    struct epoll_event event;
    int ready = epoll_pwait(state->epoll_fd, &event, 1, -1, options->wait_mask);
    if (ready < 0 && errno != EINTR) {
        log_error("waiting for connections failed: %s", strerror(errno));
        return TK_ERROR;
    }
    if (ready <= 0 || *options->stop) {
        return TK_DECLINED;
    }
    int fd = accept4(options->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED ||
            errno == EPROTO) {
            return TK_DECLINED;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            log_error("accept: %s", strerror(errno));
            usleep(10000); /* let descriptors or memory free up instead of spinning */
            return TK_DECLINED;
        }
        log_error("accept on the FastCGI socket failed: %s", strerror(errno));
        return TK_ERROR;
    }
    if (state->listen_is_tcp) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    set_io_timeouts(fd, options->io_timeout_ms);
    state->fcgi.ipcFd = fd;
    return TK_OK;
}

/* The request path: nginx's DOCUMENT_URI (normalised the way its
 * `location` matched it: "//" merged, %XX decoded), else REQUEST_URI
 * (Apache) without the query, else SCRIPT_NAME + PATH_INFO as CGI defines
 * it. */
static const char *request_path(struct transport_state *state)
{
    FCGX_ParamArray env = state->fcgi.envp;
    const char *document = FCGX_GetParam("DOCUMENT_URI", env);
    if (document != NULL && document[0] != '\0') {
        return document;
    }
    const char *uri = FCGX_GetParam("REQUEST_URI", env);
    if (uri != NULL && uri[0] != '\0') {
        size_t len = strcspn(uri, "?");
        const char *path = arena_strndup(&state->arena, uri, len);
        return path != NULL ? path : "";
    }
    const char *script = FCGX_GetParam("SCRIPT_NAME", env);
    const char *info = FCGX_GetParam("PATH_INFO", env);
    struct buffer joined;
    buffer_init(&joined);
    buffer_printf(&joined, "%s%s", script != NULL ? script : "", info != NULL ? info : "");
    const char *path = joined.failed ? NULL : arena_strndup(&state->arena, joined.data, joined.len);
    buffer_free(&joined);
    return path != NULL ? path : "";
}

/* Reads the body into state->body. Sets body_too_large instead of reading
 * when more than the limit is announced or arrives. */
static void read_body(struct transport_state *state, struct http_request *req)
{
    const char *length_text = FCGX_GetParam("CONTENT_LENGTH", state->fcgi.envp);
    char *end = NULL;
    unsigned long long announced = 0;
    if (length_text != NULL && length_text[0] != '\0') {
        errno = 0;
        announced = strtoull(length_text, &end, 10);
        if (errno != 0 || *end != '\0' || announced > HTTP_REQUEST_MAX_BODY) {
            req->body_too_large = true;
            return;
        }
    }
    size_t want = length_text != NULL && length_text[0] != '\0' ? (size_t)announced
                                                                : HTTP_REQUEST_MAX_BODY + 1;
    int got = want > 0 ? FCGX_GetStr(state->body, (int)want, state->fcgi.in) : 0;
    if (got < 0) {
        got = 0;
    }
    if ((size_t)got > HTTP_REQUEST_MAX_BODY) {
        req->body_too_large = true;
        return;
    }
    state->body[got] = '\0';
    req->body = got > 0 || want > 0 ? state->body : NULL;
    req->body_len = (size_t)got;
}

static void serve_one(struct transport_state *state)
{
    FCGX_ParamArray env = state->fcgi.envp;
    const char *method = FCGX_GetParam("REQUEST_METHOD", env);
    const char *query = FCGX_GetParam("QUERY_STRING", env);
    struct http_request req = {
        .method = method != NULL ? method : "",
        .path = request_path(state),
        .query = query != NULL ? query : "",
        .content_type = FCGX_GetParam("CONTENT_TYPE", env),
        .authorization = FCGX_GetParam("HTTP_AUTHORIZATION", env),
        .arena = &state->arena,
    };
    read_body(state, &req);
    http_response_reset(&state->response);
    state->options->handler(state->options->context, &req, &state->response);

    buffer_reset(&state->output);
    http_response_serialize(&state->response, &state->output);
    size_t len = state->output.len;
    if (strcmp(req.method, "HEAD") == 0) {
        /* Headers only: cut after the blank line. */
        const char *blank = strstr(state->output.data, "\r\n\r\n");
        len = blank != NULL ? (size_t)(blank - state->output.data) + 4 : len;
    }
    if (!buffer_failed(&state->output)) {
        FCGX_PutStr(state->output.data, (int)len, state->fcgi.out);
    }
    arena_reset(&state->arena);
}

int fcgi_transport_run(const struct fcgi_transport_options *options)
{
    struct transport_state *state = calloc(1, sizeof(*state));
    if (state == NULL) {
        log_error("out of memory starting the FastCGI transport");
        return TK_ERROR;
    }
    int rc = TK_ERROR;
    state->options = options;
    state->epoll_fd = -1;
    struct sockaddr_storage listen_addr;
    socklen_t listen_addr_len = sizeof(listen_addr);
    state->listen_is_tcp =
        getsockname(options->listen_fd, (struct sockaddr *)&listen_addr, &listen_addr_len) == 0 &&
        (listen_addr.ss_family == AF_INET || listen_addr.ss_family == AF_INET6);
    arena_init(&state->arena, 16384);
    http_response_init(&state->response);
    buffer_init(&state->output);
    if (FCGX_Init() != 0) {
        log_error("libfcgi initialisation failed");
        goto done;
    }
    FCGX_InitRequest(&state->fcgi, options->listen_fd, FCGI_FAIL_ACCEPT_ON_INTR);
    state->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event interest = {.events = EPOLLIN | EPOLLEXCLUSIVE};
    if (state->epoll_fd < 0 ||
        epoll_ctl(state->epoll_fd, EPOLL_CTL_ADD, options->listen_fd, &interest) != 0) {
        log_error("epoll on the FastCGI socket: %s", strerror(errno));
        goto done;
    }
    while (!*options->stop) {
        if (options->between_requests != NULL) {
            options->between_requests(options->context);
        }
        int waited = wait_for_connection(state);
        if (waited == TK_ERROR) {
            goto done;
        }
        if (waited != TK_OK) {
            continue;
        }
        /* Keep the FCGX_Finish_r inside FCGX_Accept_r from closing the
         * connection we just handed over; BEGIN_REQUEST sets it for real. */
        state->fcgi.keepConnection = 1;
        if (FCGX_Accept_r(&state->fcgi) < 0) {
            /* The connection broke before a complete request; libfcgi has
             * closed it. */
            continue;
        }
        serve_one(state);
        FCGX_Finish_r(&state->fcgi);
    }
    rc = TK_OK;
done:
    if (state->fcgi.ipcFd >= 0) {
        FCGX_Free(&state->fcgi, 1);
    }
    if (state->epoll_fd >= 0) {
        close(state->epoll_fd);
    }
    arena_free(&state->arena);
    http_response_free(&state->response);
    buffer_free(&state->output);
    free(state);
    return rc;
}
