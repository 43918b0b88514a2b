/*
 * client_record.h - what tokend knows of one OAuth client, as read from the
 * clients table. Strings are space-separated lists where plural.
 */
#ifndef TOKEND_CLIENT_RECORD_H
#define TOKEND_CLIENT_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#define CLIENT_ID_MAX_LEN 128

struct client_record {
    const char *client_id;
    const char *secret_hash;    /* secret_hash.h format */
    const char *allowed_scopes; /* "" for none */
    const char *default_scopes; /* "" for none */
    const char *audiences;      /* allowed audiences, first is the default; "" = config default */
    int64_t token_ttl_s;        /* 0 = the configured default */
    bool enabled;
    bool client_credentials_allowed; /* grant_types contains client_credentials */
};

#endif
