/*
 * revocation_view.h - what one worker knows of revoked tokens: its
 * revocation set, read from the revocations table at start, kept current
 * by ADMIN_EVENT_REVOKE events, and read again whenever events may have
 * been missed (an ADMIN_EVENT_CLEAR: the ring overflowed, or a flusher
 * (re)subscribed after its LISTEN connection was down).
 *
 * Until the table has been read, and again while a reading is due (the
 * set may lack a revocation), the worker cannot say a token is not
 * revoked, so introspection answers 503 rather than "active". A reading
 * that fails is retried at most once per db_retry_interval_ms. The set
 * only grows between readings (entries leave when their token expires), so
 * nothing known is lost.
 */
#ifndef TOKEND_REVOCATION_VIEW_H
#define TOKEND_REVOCATION_VIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "tokend/handler_context.h"

/* True when the set can be trusted: it was read from the table and no
 * reading is due since (reading it now if one is due and the last failure
 * is long enough ago). */
bool revocation_view_ready(struct handler_context *ctx);

/* The same, without a call when nothing is due (the hot path). */
static inline bool revocation_view_trusted(struct handler_context *ctx)
{
    return (ctx->revocations_loaded && !ctx->revocations_stale) || revocation_view_ready(ctx);
}

/* An ADMIN_EVENT_CLEAR: read the table again before the next answer that
 * needs it. */
void revocation_view_mark_stale(struct handler_context *ctx);

/* `jti` (of a token expiring at `expires_at_s`) is revoked: remember it and
 * drop its cached introspection answer. */
void revocation_view_add(struct handler_context *ctx, const char *jti, int64_t expires_at_s);

/* True when `jti` is revoked. */
bool revocation_view_contains(struct handler_context *ctx, const char *jti);

#endif
