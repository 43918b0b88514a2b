/*
 * scope.h - settling the scopes of a token request (RFC 6749 §3.3).
 *
 * A scope string is a list of scope-tokens separated by spaces; each token is
 * 1*( %x21 / %x23-5B / %x5D-7E ). The requested set must be a subset of the
 * allowed set; with no request the client's default set is granted. The
 * granted string lists each scope once, in the order first requested (or in
 * the default list's order), separated by single spaces.
 */
#ifndef TOKEND_SCOPE_H
#define TOKEND_SCOPE_H

#include <stdbool.h>

#include "tokend/arena.h"

/* True when `text` is a well-formed, non-empty scope list (single or
 * multiple spaces between tokens are accepted, no leading/trailing checks
 * beyond that; tabs and other characters are not). Cannot fail. */
bool scope_list_valid(const char *text);

/* True when `scope` is one token of the space-separated `list`. */
bool scope_list_contains(const char *list, const char *scope);

/* requested: the client's `scope` parameter or NULL when absent.
 * allowed, defaults: space-separated lists from the client record ("" for none).
 * On TK_OK *granted is an arena string ("" when nothing was requested and
 * the client has no default). TK_INVALID: a requested token is malformed
 * or not allowed; *error names the problem without echoing more than the
 * offending scope. TK_ERROR: out of memory. */
int scope_settle(const char *requested, const char *allowed, const char *defaults,
                 struct arena *arena, const char **granted, const char **error);

#endif
