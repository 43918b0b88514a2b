/*
 * service_notify.h - telling systemd how the service is doing (the
 * sd_notify protocol of Type=notify units), without libsystemd: one
 * datagram of "KEY=VALUE" lines to the socket named by $NOTIFY_SOCKET.
 * Outside systemd (no $NOTIFY_SOCKET) every call does nothing.
 */
#ifndef TOKEND_SERVICE_NOTIFY_H
#define TOKEND_SERVICE_NOTIFY_H

/* Takes $NOTIFY_SOCKET and removes it from the environment, so no child
 * speaks for the service. Call once, early. Cannot fail. */
void service_notify_init(void);

/* Sends one message, e.g. "READY=1\nSTATUS=serving with 4 workers".
 * "RELOADING=1" gets MONOTONIC_USEC added, as systemd wants. Errors are
 * ignored (logged at debug level): systemd's view is not worth stopping
 * for. Cannot fail. */
void service_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
