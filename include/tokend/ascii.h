/*
 * ascii.h - locale-independent ASCII comparisons for protocol tokens
 * (HTTP auth schemes and the like), where strncasecmp's dependence on the
 * locale would be wrong.
 */
#ifndef TOKEND_ASCII_H
#define TOKEND_ASCII_H

#include <stdbool.h>
#include <stddef.h>

/* True when the first `len` bytes of `text` equal the lowercase `lower`,
 * ignoring ASCII case. Stops at the first difference, so a shorter `text`
 * (its NUL) is simply unequal. */
static inline bool ascii_equal_ignore_case(const char *text, const char *lower, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c - 'A' + 'a');
        }
        if (c != (unsigned char)lower[i]) {
            return false;
        }
    }
    return true;
}

#endif
