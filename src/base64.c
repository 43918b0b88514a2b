/*
 * base64.c - RFC 4648 base64 (standard alphabet, '=' padding) and base64url
 * (URL-safe alphabet, no padding) encoders and strict decoders.
 *
 * Strictness: a decoder accepts exactly the strings its encoder produces, so
 * every accepted text is canonical (encode(decode(text)) == text). That
 * means: no whitespace or characters outside the alphabet; for the standard
 * alphabet a length that is a multiple of 4 and '=' only as one or two
 * trailing pad characters; for base64url no '=' at all and never a length
 * of 4n+1; and in both, the unused low bits of the last character are zero.
 *
 * Timing: these codecs carry secrets (client secrets, derived keys, the
 * Basic credentials), so no branch and no memory access may depend on a
 * character's value in a way that timing could reveal. Encoding looks the
 * character up in a 64-byte table aligned to 64 bytes: one cache line, so
 * every lookup touches the same line whatever the value (and it is the
 * encoder the token endpoint runs for every JWT, where masks cost five
 * times as much). Decoding maps characters with masks instead, since a
 * 256-entry table would span several lines. The time taken depends on the
 * length and on whether the input is valid, not on which characters it
 * holds.
 *
 * Ownership: callers provide every buffer; nothing is allocated. On failure
 * the encoders leave `out` untouched; the decoders may have written part of
 * `out` (the header says its contents are then undefined).
 */
#include <limits.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include "tokend/base64.h"
#include "tokend/status.h"

/* The two alphabets differ only in the characters for 62 and 63. */
struct base64_alphabet {
    unsigned int char62;
    unsigned int char63;
    const char *chars; /* the 64 characters, one cache line */
};

static const alignas(64) char standard_chars[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const alignas(64) char url_chars[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static const struct base64_alphabet standard_alphabet = {'+', '/', standard_chars};
static const struct base64_alphabet url_alphabet = {'-', '_', url_chars};

/* Constant-time comparisons on small unsigned values (both < 256): each
 * yields 0xFF when true and 0 when false, without a branch. */
static unsigned int mask_lt(unsigned int x, unsigned int y)
{
    return ((x - y) >> 8) & 0xFF;
}

static unsigned int mask_ge(unsigned int x, unsigned int y)
{
    return mask_lt(x, y) ^ 0xFF;
}

static unsigned int mask_eq(unsigned int x, unsigned int y)
{
    return (((0U - (x ^ y)) >> 8) & 0xFF) ^ 0xFF;
}

/* Maps a 6-bit value to its character (one cache line, see above). */
static inline char encode_sextet(unsigned int value, const struct base64_alphabet *alphabet)
{
    return alphabet->chars[value & 0x3F];
}

/* Maps a character to its 6-bit value, or to 0xFF when it is not in the
 * alphabet ('=' included). */
static unsigned int decode_sextet(unsigned char c, const struct base64_alphabet *alphabet)
{
    unsigned int x = c;
    unsigned int upper = mask_ge(x, 'A') & mask_lt(x, 'Z' + 1);
    unsigned int lower = mask_ge(x, 'a') & mask_lt(x, 'z' + 1);
    unsigned int digit = mask_ge(x, '0') & mask_lt(x, '9' + 1);
    unsigned int is62 = mask_eq(x, alphabet->char62);
    unsigned int is63 = mask_eq(x, alphabet->char63);
    unsigned int value = (upper & (x - 'A')) | (lower & (x - 'a' + 26)) | (digit & (x - '0' + 52)) |
                         (is62 & 62) | (is63 & 63);
    unsigned int valid = upper | lower | digit | is62 | is63;
    return value | (valid ^ 0xFF);
}

/* Length of the unpadded encoding of `len` bytes, or SIZE_MAX when it would
 * not fit in an int (the codecs return lengths as int). */
static size_t unpadded_length(size_t len)
{
    if (len > (size_t)INT_MAX / 4 * 3) {
        return SIZE_MAX;
    }
    static const size_t tail_chars[3] = {0, 2, 3};
    return len / 3 * 4 + tail_chars[len % 3];
}

/* Encodes `len` bytes; `padded` selects '=' padding to a multiple of 4. */
static int encode(const uint8_t *data, size_t len, char *out, size_t out_size,
                  const struct base64_alphabet *alphabet, int padded)
{
    size_t text_len = unpadded_length(len);
    if (text_len == SIZE_MAX) {
        return TK_INVALID;
    }
    if (padded) {
        text_len = (text_len + 3) / 4 * 4;
    }
    if (out == NULL || out_size <= text_len) {
        return TK_INVALID;
    }

    size_t i = 0;
    size_t o = 0;
    for (; len - i >= 3; i += 3) {
        uint32_t group = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[o++] = encode_sextet(group >> 18, alphabet);
        out[o++] = encode_sextet((group >> 12) & 0x3F, alphabet);
        out[o++] = encode_sextet((group >> 6) & 0x3F, alphabet);
        out[o++] = encode_sextet(group & 0x3F, alphabet);
    }
    if (len - i == 1) {
        uint32_t group = (uint32_t)data[i] << 16;
        out[o++] = encode_sextet(group >> 18, alphabet);
        out[o++] = encode_sextet((group >> 12) & 0x3F, alphabet);
    } else if (len - i == 2) {
        uint32_t group = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        out[o++] = encode_sextet(group >> 18, alphabet);
        out[o++] = encode_sextet((group >> 12) & 0x3F, alphabet);
        out[o++] = encode_sextet((group >> 6) & 0x3F, alphabet);
    }
    while (o < text_len) {
        out[o++] = '=';
    }
    out[o] = '\0';
    return (int)o;
}

/* Decodes `len` alphabet characters (padding already removed). Rejects a
 * length of 4n+1, characters outside the alphabet and non-zero trailing
 * bits. */
static int decode_unpadded(const char *text, size_t len, uint8_t *out, size_t out_size,
                           const struct base64_alphabet *alphabet)
{
    if (len % 4 == 1) {
        return TK_INVALID;
    }
    static const size_t tail_bytes[4] = {0, 0, 1, 2};
    size_t out_len = len / 4 * 3 + tail_bytes[len % 4];
    if (out_len > (size_t)INT_MAX || out_len > out_size) {
        return TK_INVALID;
    }

    const unsigned char *in = (const unsigned char *)text;
    unsigned int invalid = 0; /* bit 0x80 set once any character or trailing bit is bad */
    size_t i = 0;
    size_t o = 0;
    for (; len - i >= 4; i += 4) {
        unsigned int a = decode_sextet(in[i], alphabet);
        unsigned int b = decode_sextet(in[i + 1], alphabet);
        unsigned int c = decode_sextet(in[i + 2], alphabet);
        unsigned int d = decode_sextet(in[i + 3], alphabet);
        invalid |= a | b | c | d;
        uint32_t group = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
        out[o++] = (uint8_t)(group >> 16);
        out[o++] = (uint8_t)(group >> 8);
        out[o++] = (uint8_t)group;
    }
    if (len - i == 2) {
        unsigned int a = decode_sextet(in[i], alphabet);
        unsigned int b = decode_sextet(in[i + 1], alphabet);
        invalid |= a | b | (mask_eq(b & 0x0F, 0) ^ 0xFF);
        out[o++] = (uint8_t)(a << 2 | b >> 4);
    } else if (len - i == 3) {
        unsigned int a = decode_sextet(in[i], alphabet);
        unsigned int b = decode_sextet(in[i + 1], alphabet);
        unsigned int c = decode_sextet(in[i + 2], alphabet);
        invalid |= a | b | c | (mask_eq(c & 0x03, 0) ^ 0xFF);
        out[o++] = (uint8_t)(a << 2 | b >> 4);
        out[o++] = (uint8_t)(b << 4 | c >> 2);
    }
    if (invalid & 0x80) {
        return TK_INVALID;
    }
    return (int)o;
}

int base64url_encode(const uint8_t *data, size_t len, char *out, size_t out_size)
{
    return encode(data, len, out, out_size, &url_alphabet, 0);
}

int base64_encode(const uint8_t *data, size_t len, char *out, size_t out_size)
{
    return encode(data, len, out, out_size, &standard_alphabet, 1);
}

int base64_decode(const char *text, size_t len, uint8_t *out, size_t out_size)
{
    if (len % 4 != 0) {
        return TK_INVALID;
    }
    /* At most two trailing pad characters; any other '=' is outside the
     * alphabet and rejected by decode_unpadded, and so is a third one. */
    size_t unpadded = len;
    for (int pad = 0; pad < 2 && unpadded > 0 && text[unpadded - 1] == '='; pad++) {
        unpadded--;
    }
    return decode_unpadded(text, unpadded, out, out_size, &standard_alphabet);
}

int base64url_decode(const char *text, size_t len, uint8_t *out, size_t out_size)
{
    return decode_unpadded(text, len, out, out_size, &url_alphabet);
}
