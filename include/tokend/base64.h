/*
 * base64.h - RFC 4648 base64 (standard alphabet, padded) and base64url
 * (URL alphabet, unpadded) codecs. Decoders are strict: any character
 * outside the alphabet, bad padding or non-zero trailing bits is an error.
 */
#ifndef TOKEND_BASE64_H
#define TOKEND_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed to encode `len` bytes, including the terminating NUL. */
#define BASE64_ENCODED_SIZE(len)    ((((len) + 2) / 3) * 4 + 1)
#define BASE64URL_ENCODED_SIZE(len) (((len)*4 + 2) / 3 + 1)

/* Writes the unpadded base64url encoding and a NUL into `out`. Returns the
 * encoded length, or TK_INVALID if `out_size` is too small (out unchanged). */
int base64url_encode(const uint8_t *data, size_t len, char *out, size_t out_size);

/* Writes the padded standard encoding and a NUL. Same contract. */
int base64_encode(const uint8_t *data, size_t len, char *out, size_t out_size);

/* Decodes padded standard base64. Returns the decoded length, or TK_INVALID
 * for malformed input or a too-small `out` (out contents then undefined). */
int base64_decode(const char *text, size_t len, uint8_t *out, size_t out_size);

/* Decodes unpadded base64url (padding is rejected). Same contract. */
int base64url_decode(const char *text, size_t len, uint8_t *out, size_t out_size);

#endif
