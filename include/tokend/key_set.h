/*
 * key_set.h - the keys a tokend instance knows: the signing key first, then
 * previous keys that still verify (verify_key_files). The JWKS document is
 * rendered once at load; serving it is a copy.
 */
#ifndef TOKEND_KEY_SET_H
#define TOKEND_KEY_SET_H

#include <stddef.h>

#include "tokend/buffer.h"
#include "tokend/config.h"
#include "tokend/signing_key.h"

#define KEY_SET_MAX 8

struct key_set {
    struct signing_key keys[KEY_SET_MAX]; /* keys[0] signs */
    size_t count;
    struct buffer jwks_json; /* {"keys":[...]} with every public key */
};

/* Loads the keys the config names. Returns TK_OK or TK_INVALID with
 * `error`; on failure the set holds nothing. */
int key_set_load(struct key_set *set, const struct tokend_config *config, char *error,
                 size_t error_size);

/* The key that signs new tokens. */
static inline const struct signing_key *key_set_signing(const struct key_set *set)
{
    return &set->keys[0];
}

void key_set_free(struct key_set *set);

#endif
