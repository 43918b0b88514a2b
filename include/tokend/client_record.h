/*
 * client_record.h - what tokend knows of one OAuth client, as read from the
 * clients table. Strings are space-separated lists where plural.
 */
#ifndef TOKEND_CLIENT_RECORD_H
#define TOKEND_CLIENT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLIENT_ID_MAX_LEN 128

struct client_record {
    const char *client_id;
    const char *secret_hash;    /* secret_hash.h format */
    const char *allowed_scopes; /* "" for none */
    const char *default_scopes; /* "" for none */
    const char *audiences;      /* allowed audiences, first is the default; "" = config default */
    int64_t token_ttl_s;        /* 0 = the configured default */
    /* Tokens of this client with iat < tokens_not_before_s are revoked
     * (`tokenctl client revoke-all`, or issued before the client was
     * created, to a deleted client of the same id); 0 = none. */
    int64_t tokens_not_before_s;
    bool enabled;
    bool client_credentials_allowed; /* grant_types contains client_credentials */
};

/* True for an id the registry can hold: 1 to CLIENT_ID_MAX_LEN printable
 * ASCII characters without space (the clients table's CHECK). The token
 * endpoint refuses anything else before any lookup; tokenctl before any
 * change. Cannot fail. */
static inline bool client_id_valid(const char *client_id)
{
    size_t len = 0;
    for (; client_id[len] != '\0'; len++) {
        unsigned char c = (unsigned char)client_id[len];
        if (c < 0x21 || c > 0x7E || len >= CLIENT_ID_MAX_LEN) {
            return false;
        }
    }
    return len > 0;
}

#endif
