/*
 * basic_auth.h - decoder for an `Authorization: Basic ...` header carrying
 * OAuth client credentials (RFC 7617, RFC 6749 §2.3.1).
 *
 * The scheme name is case-insensitive; one or more spaces separate it from
 * the base64 credentials (strict standard alphabet with padding; surrounding
 * whitespace tolerated). The decoded text splits at the FIRST ':' into
 * client_id and secret, and each part is then form-urldecoded as RFC 6749
 * §2.3.1 requires. An empty client_id, a missing ':', bad base64, bad
 * percent-encoding, NUL or control bytes are errors. An empty secret is
 * allowed by the decoder (it will simply fail authentication).
 */
#ifndef TOKEND_BASIC_AUTH_H
#define TOKEND_BASIC_AUTH_H

#include "tokend/arena.h"

/* Longest credentials header we accept; longer is TK_INVALID. */
#define BASIC_AUTH_MAX_HEADER 1024

/* Decodes `header` (the Authorization value). Returns TK_OK with both
 * strings in the arena; TK_DECLINED when the scheme is not Basic (the caller
 * may support other schemes); TK_INVALID with *error set to a static reason;
 * TK_ERROR when out of memory. Outputs are untouched unless TK_OK. */
int basic_auth_decode(const char *header, struct arena *arena, const char **client_id,
                      const char **client_secret, const char **error);

#endif
