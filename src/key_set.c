/*
 * key_set.c - the keys one tokend instance knows, and its JWKS document.
 *
 * keys[0] signs new tokens: it comes from signing_key_file (ES256/RS256,
 * private key required) or hmac_key_file (HS256). The keys after it come
 * from verify_key_files, public or private PEM files of keys that were
 * rotated out but whose tokens are still live: they are only published.
 *
 * Invariants after a successful load: 1 <= count <= KEY_SET_MAX; every kid
 * is distinct (a verifier picks the key by kid, so a duplicate would make
 * the choice ambiguous); jwks_json holds {"keys":[...]} with the public JWK
 * of every ES256/RS256 key in set order (signing key first), HS256 keys
 * never appear. The document is rendered once here; serving it is a copy.
 *
 * HS256 is used only when signing_alg says "HS256" (as config_check_server
 * requires); otherwise the algorithm follows from signing_key_file's key.
 *
 * Ownership: the set owns its keys and the JSON buffer; key_set_free()
 * releases them. Failure: key_set_load() frees whatever it loaded and
 * returns TK_INVALID with a message, leaving an empty set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokend/buffer.h"
#include "tokend/config.h"
#include "tokend/key_set.h"
#include "tokend/signing_key.h"
#include "tokend/status.h"

static const char *or_empty(const char *text)
{
    return text != NULL ? text : "";
}

static bool is_list_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int load_signing_key(struct key_set *set, const struct tokend_config *config, char *error,
                            size_t error_size)
{
    const char *alg_name = or_empty(config->signing_alg);
    const char *key_file = or_empty(config->signing_key_file);
    const char *hmac_file = or_empty(config->hmac_key_file);
    enum jws_alg alg = 0;

    if (alg_name[0] != '\0' && jws_alg_parse(alg_name, &alg) != TK_OK) {
        snprintf(error, error_size, "signing_alg '%s' is not ES256, RS256 or HS256", alg_name);
        return TK_INVALID;
    }
    if (alg == JWS_ALG_HS256) {
        if (hmac_file[0] == '\0') {
            snprintf(error, error_size, "signing_alg HS256 needs hmac_key_file");
            return TK_INVALID;
        }
        return signing_key_load_hmac(&set->keys[0], hmac_file, config->signing_kid, error,
                                     error_size);
    }
    if (key_file[0] == '\0') {
        snprintf(error, error_size, "no signing_key_file configured");
        return TK_INVALID;
    }
    return signing_key_load_pem(&set->keys[0], key_file, alg, config->signing_kid, true, error,
                                error_size);
}

/* Loads each whitespace-separated path of verify_key_files after keys[0]. */
static int load_verify_keys(struct key_set *set, const char *list, char *error, size_t error_size)
{
    const char *cursor = list;
    for (;;) {
        while (is_list_space(*cursor)) {
            cursor++;
        }
        if (*cursor == '\0') {
            return TK_OK;
        }
        const char *end = cursor;
        while (*end != '\0' && !is_list_space(*end)) {
            end++;
        }
        if (set->count == KEY_SET_MAX) {
            snprintf(error, error_size, "verify_key_files: at most %d keys", KEY_SET_MAX - 1);
            return TK_INVALID;
        }
        char *path = strndup(cursor, (size_t)(end - cursor));
        if (path == NULL) {
            snprintf(error, error_size, "verify_key_files: out of memory");
            return TK_INVALID;
        }
        struct signing_key *key = &set->keys[set->count];
        int rc = signing_key_load_pem(key, path, 0, NULL, false, error, error_size);
        if (rc == TK_OK) {
            set->count++;
            for (size_t i = 0; i + 1 < set->count; i++) {
                if (strcmp(set->keys[i].kid, key->kid) == 0) {
                    snprintf(error, error_size, "%s: kid '%s' is already used by another key", path,
                             key->kid);
                    rc = TK_INVALID;
                    break;
                }
            }
        }
        free(path);
        if (rc != TK_OK) {
            return TK_INVALID;
        }
        cursor = end;
    }
}

static int render_jwks(struct key_set *set, char *error, size_t error_size)
{
    struct buffer *out = &set->jwks_json;
    bool first = true;
    buffer_append_str(out, "{\"keys\":[");
    for (size_t i = 0; i < set->count; i++) {
        if (set->keys[i].alg == JWS_ALG_HS256) {
            continue; /* a shared secret is never published */
        }
        if (!first) {
            buffer_append(out, ",", 1);
        }
        if (signing_key_append_jwk(&set->keys[i], out) != TK_OK) {
            snprintf(error, error_size, "cannot render the JWK of key '%s'", set->keys[i].kid);
            return TK_INVALID;
        }
        first = false;
    }
    buffer_append_str(out, "]}");
    if (buffer_failed(out)) {
        snprintf(error, error_size, "out of memory rendering the JWKS");
        return TK_INVALID;
    }
    return TK_OK;
}

int key_set_load(struct key_set *set, const struct tokend_config *config, char *error,
                 size_t error_size)
{
    memset(set, 0, sizeof(*set));
    buffer_init(&set->jwks_json);

    if (load_signing_key(set, config, error, error_size) != TK_OK) {
        goto fail;
    }
    set->count = 1;
    if (load_verify_keys(set, or_empty(config->verify_key_files), error, error_size) != TK_OK ||
        render_jwks(set, error, error_size) != TK_OK) {
        goto fail;
    }
    return TK_OK;
fail:
    key_set_free(set);
    return TK_INVALID;
}

void key_set_free(struct key_set *set)
{
    for (size_t i = 0; i < KEY_SET_MAX; i++) {
        signing_key_free(&set->keys[i]);
    }
    set->count = 0;
    buffer_free(&set->jwks_json);
}
