/*
 * server_settings.c - loading a server's configuration, keys and admin
 * token as one unit.
 *
 * The same function serves the start (tokend.c), the check a started
 * tokend makes after switching to its `user` (can that account read
 * everything again?), and every SIGHUP reload (master.c), so all three
 * apply exactly the same checks and report problems the same way.
 *
 * Ownership: the caller owns the struct; strings and keys inside are
 * freed by server_settings_free. Failure: whatever was loaded is freed
 * before returning, so a failed load never leaves half a set behind.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "tokend/server_settings.h"
#include "tokend/status.h"

int server_settings_load(struct server_settings *settings, const char *path, char *error,
                         size_t error_size)
{
    char config_error[CONFIG_ERROR_SIZE];
    memset(settings, 0, sizeof(*settings));
    int rc = config_init_defaults(&settings->config);
    if (rc != TK_OK) {
        snprintf(error, error_size, "%s: out of memory", path);
        goto fail;
    }
    rc = config_load_file(&settings->config, path, config_error);
    if (rc == TK_OK) {
        rc = config_check_server(&settings->config, config_error);
    }
    if (rc != TK_OK) {
        snprintf(error, error_size, "%s", config_error);
        goto fail;
    }
    rc = key_set_load(&settings->keys, &settings->config, error, error_size);
    if (rc != TK_OK) {
        goto fail;
    }
    if (settings->config.admin_token_file[0] != '\0') {
        char token_error[CONFIG_ERROR_SIZE];
        rc = admin_token_load(settings->config.admin_token_file, &settings->admin_token,
                              token_error, sizeof(token_error));
        if (rc != TK_OK) {
            snprintf(error, error_size, "admin_token_file: %s", token_error);
            goto fail;
        }
    }
    return TK_OK;
fail:
    server_settings_free(settings);
    return rc;
}

void server_settings_free(struct server_settings *settings)
{
    key_set_free(&settings->keys);
    config_free(&settings->config);
    OPENSSL_cleanse(&settings->admin_token, sizeof(settings->admin_token));
}
