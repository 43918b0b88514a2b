/*
 * siphash.c - SipHash-2-4 as specified by Aumasson and Bernstein ("SipHash:
 * a fast short-input PRF", 2012): 2 compression rounds per 8-byte word, 4
 * finalization rounds, 64-bit output.
 *
 * The message is read as little-endian 64-bit words whatever the host byte
 * order, so a key and message give the same hash on every machine (and the
 * paper's test vectors hold everywhere). The last word carries the remaining
 * 0..7 bytes and the message length modulo 256 in its top byte.
 *
 * Pure function of its inputs: no state, no allocation, cannot fail. The
 * caller owns the key; nothing here copies or keeps it beyond the call.
 */
#include <stddef.h>
#include <stdint.h>

#include "tokend/siphash.h"

#define ROTATE_LEFT(x, bits) (((x) << (bits)) | ((x) >> (64 - (bits))))

struct sip_state {
    uint64_t v0, v1, v2, v3;
};

static uint64_t load_le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static void sip_round(struct sip_state *s)
{
    s->v0 += s->v1;
    s->v1 = ROTATE_LEFT(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = ROTATE_LEFT(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = ROTATE_LEFT(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = ROTATE_LEFT(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = ROTATE_LEFT(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = ROTATE_LEFT(s->v2, 32);
}

static void sip_compress(struct sip_state *s, uint64_t word)
{
    s->v3 ^= word;
    sip_round(s);
    sip_round(s);
    s->v0 ^= word;
}

uint64_t siphash24(const uint8_t key[SIPHASH_KEY_SIZE], const void *data, size_t len)
{
    const uint8_t *in = data;
    const uint64_t k0 = load_le64(key);
    const uint64_t k1 = load_le64(key + 8);
    struct sip_state s = {
        .v0 = k0 ^ UINT64_C(0x736f6d6570736575),
        .v1 = k1 ^ UINT64_C(0x646f72616e646f6d),
        .v2 = k0 ^ UINT64_C(0x6c7967656e657261),
        .v3 = k1 ^ UINT64_C(0x7465646279746573),
    };

    /* Indexing rather than pointer arithmetic: data may be NULL when len is 0. */
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        sip_compress(&s, load_le64(in + i));
    }

    uint64_t last = (uint64_t)(len & 0xff) << 56;
    switch (len % 8) {
    case 7:
        last |= (uint64_t)in[i + 6] << 48;
        /* fall through */
    case 6:
        last |= (uint64_t)in[i + 5] << 40;
        /* fall through */
    case 5:
        last |= (uint64_t)in[i + 4] << 32;
        /* fall through */
    case 4:
        last |= (uint64_t)in[i + 3] << 24;
        /* fall through */
    case 3:
        last |= (uint64_t)in[i + 2] << 16;
        /* fall through */
    case 2:
        last |= (uint64_t)in[i + 1] << 8;
        /* fall through */
    case 1:
        last |= (uint64_t)in[i];
        break;
    case 0:
        break;
    }
    sip_compress(&s, last);

    s.v2 ^= 0xff;
    sip_round(&s);
    sip_round(&s);
    sip_round(&s);
    sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}
