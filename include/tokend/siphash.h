/*
 * siphash.h - SipHash-2-4 (Aumasson & Bernstein), a keyed hash for hash
 * tables whose keys an attacker chooses (client ids from requests): with a
 * per-process random key, nobody can aim many keys at one bucket.
 */
#ifndef TOKEND_SIPHASH_H
#define TOKEND_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_SIZE 16

/* Cannot fail. */
uint64_t siphash24(const uint8_t key[SIPHASH_KEY_SIZE], const void *data, size_t len);

#endif
