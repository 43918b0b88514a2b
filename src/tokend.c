/*
 * tokend.c - the daemon's entry point.
 *
 *   tokend [-c FILE] [-t]
 *
 * Reads the configuration, loads the signing keys (once, before forking, so
 * every worker shares the parsed keys and a bad key stops the start with a
 * clear message), opens the shared-memory segment (creating it, or taking
 * over one a crashed instance left with its queued tokens), takes the
 * FastCGI socket from fd 0 when a launcher such as spawn-fcgi passed one
 * there or binds `listen` itself, and hands over to the master. With -t it only checks the
 * configuration and keys, like `nginx -t`, and exits 0 or 1.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#include "tokend/config.h"
#include "tokend/key_set.h"
#include "tokend/listen_socket.h"
#include "tokend/logging.h"
#include "tokend/master.h"
#include "tokend/shm_segment.h"
#include "tokend/status.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tokend [-c FILE] [-t]\n"
            "  -c FILE   configuration file (default %s/tokend.conf)\n"
            "  -t        check the configuration and keys, then exit\n"
            "  -v        print the version\n",
            TOKEND_SYSCONFDIR);
}

int main(int argc, char **argv)
{
    const char *config_path = TOKEND_SYSCONFDIR "/tokend.conf";
    bool test_only = false;
    static const struct option long_options[] = {
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'v'}, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:thv", long_options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 't':
            test_only = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'v':
            printf("tokend %s\n", PACKAGE_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    log_set_program("tokend");

    int status = 1;
    struct tokend_config config;
    struct key_set keys;
    memset(&keys, 0, sizeof(keys));
    char error[CONFIG_ERROR_SIZE];
    if (config_init_defaults(&config) != TK_OK) {
        log_error("out of memory");
        return 1;
    }
    if (config_load_file(&config, config_path, error) != TK_OK ||
        config_check_server(&config, error) != TK_OK) {
        log_error("%s", error);
        goto done;
    }
    log_set_level(config.log_level);
    if (key_set_load(&keys, &config, error, sizeof(error)) != TK_OK) {
        log_error("%s", error);
        goto done;
    }
    if (test_only) {
        const struct signing_key *signing = key_set_signing(&keys);
        fprintf(stderr,
                "tokend: configuration %s is valid: signing with %s key \"%s\", %zu key(s) "
                "in the JWKS\n",
                config_path, jws_alg_name(signing->alg), signing->kid, keys.count);
        status = 0;
        goto done;
    }

    int listen_fd;
    const char *bound_path = NULL;
    if (listen_socket_inherited()) {
        listen_fd = listen_socket_adopt_inherited(error, sizeof(error));
        log_info("using the FastCGI socket inherited on fd 0 (listen = %s is ignored)",
                 config.listen);
    } else {
        listen_fd = listen_socket_open(config.listen, config.listen_mode, config.listen_backlog,
                                       error, sizeof(error));
        bound_path = listen_socket_unix_path(config.listen);
        if (listen_fd >= 0) {
            log_info("listening on %s", config.listen);
        }
    }
    if (listen_fd < 0) {
        log_error("%s", error);
        goto done;
    }

    char segment_name[SHM_SEGMENT_NAME_MAX + 1];
    if (config.shm_name[0] != '\0') {
        snprintf(segment_name, sizeof(segment_name), "%s", config.shm_name);
    } else {
        shm_segment_name_for_listen(config.listen, segment_name);
    }
    struct shm_segment segment;
    if (shm_segment_open(&segment, segment_name, (uint64_t)config.queue_capacity, SHM_SEGMENT_OWN,
                         error, sizeof(error)) != TK_OK) {
        log_error("%s", error);
        close(listen_fd);
        if (bound_path != NULL) {
            unlink(bound_path);
        }
        goto done;
    }
    if (!segment.created) {
        log_warn("re-attached shared memory segment %s left by a previous run; its %llu queued "
                 "token(s) will be written to the database",
                 segment.name, (unsigned long long)token_queue_depth(&segment.queue));
    }

    status = master_run(&config, &keys, &segment, listen_fd, bound_path);
    shm_segment_close(&segment);
done:
    key_set_free(&keys);
    config_free(&config);
    return status;
}
