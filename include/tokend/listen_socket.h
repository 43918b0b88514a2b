/*
 * listen_socket.h - the FastCGI listening socket: bound from the `listen`
 * setting ("unix:/path" or "host:port"), inherited on fd 0 from
 * spawn-fcgi (or any launcher that passes a listening socket there), or
 * passed by systemd socket activation.
 */
#ifndef TOKEND_LISTEN_SOCKET_H
#define TOKEND_LISTEN_SOCKET_H

#include <stdbool.h>
#include <stddef.h>

/* True when fd 0 is a listening socket. Cannot fail. */
bool listen_socket_inherited(void);

/* The socket systemd passed by socket activation: when LISTEN_PID is this
 * process and LISTEN_FDS is 1, fd 3 (made non-blocking). Returns the fd;
 * TK_DECLINED when systemd passed nothing to this process; TK_ERROR with
 * `error` when it passed more than one socket or not a listening one.
 * Removes LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from the environment
 * in every case. */
int listen_socket_from_systemd(char *error, size_t error_size);

/* Takes over the inherited socket on fd 0 (made non-blocking). Returns 0,
 * or TK_ERROR with `error` set. */
int listen_socket_adopt_inherited(char *error, size_t error_size);

/* Binds and listens. For unix sockets a stale socket file is replaced (a
 * live one, answering connect, is an error) and the mode is set. Returns
 * the fd, or TK_ERROR with `error` set. */
int listen_socket_open(const char *spec, unsigned mode, int backlog, char *error,
                       size_t error_size);

/* Writes the address `fd` is bound to in `listen` syntax ("unix:/path",
 * "127.0.0.1:9000", "[::1]:9000") into `out`. Returns TK_OK or TK_ERROR
 * (getsockname failed, or an unnamed socket). */
int listen_socket_describe(int fd, char *out, size_t out_size);

/* The unix socket path of `spec`, or NULL for TCP. Cannot fail. */
const char *listen_socket_unix_path(const char *spec);

#endif
