/*
 * client_listener.h - the flusher's LISTEN connection: client changes made
 * anywhere (tokenctl, another host's admin action) become admin events in
 * this instance's segment.
 */
#ifndef TOKEND_CLIENT_LISTENER_H
#define TOKEND_CLIENT_LISTENER_H

#include <stdint.h>

#include "tokend/admin_events.h"

struct client_listener;

/* NULL when out of memory. Nothing is connected until the first poll. */
struct client_listener *client_listener_create(const char *conninfo, const char *password,
                                               const char *channel, int timeout_ms);

void client_listener_destroy(struct client_listener *listener);

/* Moves the connection along without blocking (connect, LISTEN, read) and
 * publishes what it heard into `ring`: a payload "*clear" or "*cleanup" as
 * that event, any other payload as ADMIN_EVENT_INVALIDATE of that client
 * id. Each time LISTEN takes effect (the first time, and after every lost
 * connection) it publishes one ADMIN_EVENT_CLEAR, since notices sent while
 * nobody listened are lost. Call it often (every flusher turn). */
void client_listener_poll(struct client_listener *listener, struct admin_event_ring *ring,
                          int64_t now_ms);

#endif
