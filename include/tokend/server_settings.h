/*
 * server_settings.h - everything a tokend server process is given at
 * start and again on each reload: the configuration, the signing and
 * verifying keys, and the admin token. Loading it is all-or-nothing, so a
 * reload either has a complete new set or keeps the old one.
 */
#ifndef TOKEND_SERVER_SETTINGS_H
#define TOKEND_SERVER_SETTINGS_H

#include <stddef.h>

#include "tokend/admin_token.h"
#include "tokend/config.h"
#include "tokend/key_set.h"

struct server_settings {
    struct tokend_config config;
    struct key_set keys;
    struct admin_token admin_token; /* all zero when admin_token_file is "" */
};

/* Reads the configuration file at `path` over the defaults, checks what a
 * server needs (config_check_server), then loads the keys and, when
 * admin_token_file is set, the admin token. Returns TK_OK; or TK_INVALID /
 * TK_ERROR with `error` holding one line that names the file and the
 * problem ("FILE:LINE: key 'K': reason", "PATH: reason",
 * "admin_token_file: PATH: reason"). On failure `settings` holds nothing
 * and needs no server_settings_free. */
int server_settings_load(struct server_settings *settings, const char *path, char *error,
                         size_t error_size);

/* Frees the configuration and the keys and wipes the admin token digest.
 * Cannot fail; freeing twice is harmless. */
void server_settings_free(struct server_settings *settings);

#endif
