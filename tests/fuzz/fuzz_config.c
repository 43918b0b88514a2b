/*
 * fuzz_config.c - libFuzzer harness for the configuration parser.
 *
 * Feeds the input as config text over fresh defaults, runs the server check
 * on whatever was accepted, and frees the config. Any crash, sanitizer report
 * or leak is a bug in src/config.c or src/file_read.c. database_password_file
 * makes the parser read the file the input names through file_read_all, which
 * only reads regular files, opened non-blocking, and config.c caps it at
 * 64 KiB, so no input can hang or exhaust memory.
 */
#include <stddef.h>
#include <stdint.h>

#include "tokend/config.h"
#include "tokend/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tokend_config config;
    char error[CONFIG_ERROR_SIZE];
    if (config_init_defaults(&config) == TK_OK &&
        config_load_text(&config, (const char *)data, size, "fuzz.conf", error) == TK_OK) {
        (void)config_check_server(&config, error);
    }
    config_free(&config);
    return 0;
}
