/*
 * status.h - the closed set of return codes every tokend module uses.
 *
 * A function either "cannot fail" (and says so) or returns one of these.
 * TK_OK is zero so `if (rc != TK_OK)` reads naturally; every other code is
 * negative so a function may also return a non-negative count on success.
 */
#ifndef TOKEND_STATUS_H
#define TOKEND_STATUS_H

enum tk_status {
    TK_OK = 0,           /* done */
    TK_ERROR = -1,       /* internal failure (allocation, OpenSSL, I/O) */
    TK_INVALID = -2,     /* the input is malformed; nothing was changed */
    TK_NOT_FOUND = -3,   /* the thing looked up does not exist */
    TK_DECLINED = -4,    /* well-formed but refused (wrong secret, scope not allowed) */
    TK_UNAVAILABLE = -5, /* a dependency (PostgreSQL) is unreachable or timed out */
};

#endif
