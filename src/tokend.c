/*
 * tokend.c - the daemon's entry point.
 *
 *   tokend [-c FILE] [-t]        master: workers + flusher (the usual way)
 *   tokend --flusher [-c FILE]   only the flusher, as its own service
 *   tokend --worker [-c FILE]    one worker on the socket passed on fd 0
 *
 * Master mode reads the configuration, loads the signing keys (once, before
 * forking, so every worker shares the parsed keys and a bad key stops the
 * start with a clear message), takes the FastCGI socket from fd 0 when a
 * launcher such as spawn-fcgi passed one there or binds `listen` itself,
 * opens the shared-memory segment (creating it, or taking over one a crashed
 * instance left with its queued tokens), and hands over to the master.
 * With -t it only checks the configuration and keys, like `nginx -t`.
 *
 * Flusher mode is for layouts where something else spawns the workers
 * (Apache's mod_fcgid): it owns the segment and drains it into PostgreSQL
 * in the foreground until SIGTERM, then writes what is left, and removes
 * the segment if it ends empty.
 *
 * Worker mode is what that something else starts: one worker process, no
 * master and no prefork, serving the listening socket the process manager
 * passed on fd 0 (mod_fcgid creates one per process and sends it one request
 * at a time). It attaches to the segment of the flusher service, found by
 * the same name the flusher uses (`shm_name`, else derived from `listen`
 * of the shared configuration file), and refuses to start when there is no
 * such segment or no live flusher in it: tokens it issued would otherwise
 * wait in shared memory with nobody to write them.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#include "tokend/config.h"
#include "tokend/flusher.h"
#include "tokend/admin_token.h"
#include "tokend/key_set.h"
#include "tokend/listen_socket.h"
#include "tokend/logging.h"
#include "tokend/master.h"
#include "tokend/shm_segment.h"
#include "tokend/status.h"
#include "tokend/worker.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tokend [-c FILE] [-t]\n"
            "       tokend --flusher [-c FILE]\n"
            "       tokend --worker [-c FILE]\n"
            "  -c FILE     configuration file (default %s/tokend.conf)\n"
            "  -t          check the configuration and keys, then exit\n"
            "  --flusher   run only the flusher (when another program spawns the workers)\n"
            "  --worker    run one worker on the socket passed on fd 0 (mod_fcgid), attached\n"
            "              to the segment of a running `tokend --flusher`\n"
            "  -v          print the version\n",
            TOKEND_SYSCONFDIR);
}

/* The instance's segment name. Unless shm_name is set, it comes from the
 * socket actually served: `listen`, or the address of the socket inherited
 * on fd 0 (`listen_fd` >= 0), so two spawn-fcgi instances sharing one
 * config file still get a segment each. The flusher service and the
 * mod_fcgid workers pass -1: they share a segment though each mod_fcgid
 * process has a socket of its own. Cannot fail. */
static void segment_name(const struct tokend_config *config, int listen_fd,
                         char name[SHM_SEGMENT_NAME_MAX + 1])
{
    char address[CONFIG_ERROR_SIZE];
    if (config->shm_name[0] != '\0') {
        snprintf(name, SHM_SEGMENT_NAME_MAX + 1, "%s", config->shm_name);
    } else if (listen_fd >= 0 &&
               listen_socket_describe(listen_fd, address, sizeof(address)) == TK_OK) {
        shm_segment_name_for_listen(address, name);
    } else {
        shm_segment_name_for_listen(config->listen, name);
    }
}

/* Opens the instance's segment as its owner. Returns TK_OK or TK_ERROR
 * (logged). */
static int open_segment(const struct tokend_config *config, int listen_fd,
                        struct shm_segment *segment)
{
    char name[SHM_SEGMENT_NAME_MAX + 1];
    char error[CONFIG_ERROR_SIZE];
    segment_name(config, listen_fd, name);
    if (shm_segment_open(segment, name, (uint64_t)config->queue_capacity, SHM_SEGMENT_OWN, error,
                         sizeof(error)) != TK_OK) {
        log_error("%s", error);
        return TK_ERROR;
    }
    if (!segment->created) {
        log_warn("re-attached shared memory segment %s left by a previous run; its %llu queued "
                 "token(s) will be written to the database",
                 segment->name, (unsigned long long)token_queue_depth(&segment->queue));
    }
    return TK_OK;
}

static int run_master(const struct tokend_config *config, const struct key_set *keys,
                      const struct admin_token *admin_token)
{
    /* From here on a stop signal waits for the master loop, which stops
     * cleanly (removing the socket), however early it comes. */
    sigset_t handled;
    sigemptyset(&handled);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    sigaddset(&handled, SIGCHLD);
    sigprocmask(SIG_BLOCK, &handled, NULL);
    char error[CONFIG_ERROR_SIZE];
    bool inherited = listen_socket_inherited();
    int listen_fd;
    const char *bound_path = NULL;
    if (inherited) {
        listen_fd = listen_socket_adopt_inherited(error, sizeof(error));
        log_info("using the FastCGI socket inherited on fd 0 (listen = %s is ignored)",
                 config->listen);
    } else {
        listen_fd = listen_socket_open(config->listen, config->listen_mode, config->listen_backlog,
                                       error, sizeof(error));
        bound_path = listen_socket_unix_path(config->listen);
        if (listen_fd >= 0) {
            log_info("listening on %s", config->listen);
        }
    }
    if (listen_fd < 0) {
        log_error("%s", error);
        return 1;
    }
    /* The socket first: a second instance is refused with the clearer
     * message about its socket before it looks at any segment. */
    struct shm_segment segment;
    if (open_segment(config, inherited ? listen_fd : -1, &segment) != TK_OK) {
        close(listen_fd);
        if (bound_path != NULL) {
            unlink(bound_path);
        }
        return 1;
    }
    int status = master_run(config, keys, admin_token, &segment, listen_fd, bound_path);
    shm_segment_close(&segment);
    return status;
}

static int run_flusher_service(const struct tokend_config *config)
{
    struct shm_segment segment;
    if (open_segment(config, -1, &segment) != TK_OK) {
        return 1;
    }
    log_info("flusher running for shared memory segment %s", segment.name);
    int status = flusher_main(config, &segment);
    uint64_t left = token_queue_depth(&segment.queue);
    if (status == 0 && left == 0) {
        shm_segment_unlink(segment.name);
        log_info("stopped; every issued token is in the database");
    } else {
        log_warn("stopped with %llu token(s) still queued in shared memory segment %s; the next "
                 "start writes them to the database",
                 (unsigned long long)left, segment.name);
    }
    shm_segment_close(&segment);
    return status;
}

/* True when a live process holds a flusher stats slot of the segment. A
 * flusher killed with SIGKILL leaves its slot behind until a new flusher
 * retires it, hence the pid check. Cannot fail. */
static bool flusher_running(const struct shm_segment *segment)
{
    for (size_t i = 0; i < INSTANCE_STATS_SLOTS; i++) {
        const struct stats_slot *slot = &segment->stats->slots[i];
        pid_t pid = atomic_load_explicit(&slot->pid, memory_order_acquire);
        if (pid > 0 &&
            atomic_load_explicit(&slot->role, memory_order_relaxed) == STAT_ROLE_FLUSHER &&
            (kill(pid, 0) == 0 || errno == EPERM)) {
            return true;
        }
    }
    return false;
}

/* One worker for a process manager (mod_fcgid): the socket on fd 0, the
 * flusher service's segment. Returns the exit status. */
static int run_worker_service(const struct tokend_config *config, const struct key_set *keys,
                              const struct admin_token *admin_token)
{
    char error[CONFIG_ERROR_SIZE];
    if (!listen_socket_inherited()) {
        log_error("--worker serves the FastCGI socket its process manager (mod_fcgid) passes "
                  "on fd 0, and fd 0 is not a listening socket; to serve `listen`, run tokend "
                  "without --worker");
        return 1;
    }
    int listen_fd = listen_socket_adopt_inherited(error, sizeof(error));
    if (listen_fd < 0) {
        log_error("%s", error);
        return 1;
    }
    char name[SHM_SEGMENT_NAME_MAX + 1];
    segment_name(config, -1, name);
    struct shm_segment segment;
    if (shm_segment_open(&segment, name, (uint64_t)config->queue_capacity, SHM_SEGMENT_ATTACH,
                         error, sizeof(error)) != TK_OK) {
        log_error("%s", error);
        return 1;
    }
    if (!flusher_running(&segment)) {
        log_error("shared memory segment %s has no running flusher: start `tokend --flusher` "
                  "with this configuration first",
                  segment.name);
        shm_segment_close(&segment);
        return 1;
    }
    if (strcmp(config->transport, "event") == 0) {
        log_info("transport = event is not used by --worker: the process manager sends one "
                 "request at a time, so this worker serves its socket with libfcgi (set "
                 "transport = libfcgi to say so)");
    }
    int status = worker_main(config, keys, admin_token, listen_fd, &segment, WORKER_STANDALONE);
    shm_segment_close(&segment);
    return status;
}

int main(int argc, char **argv)
{
    const char *config_path = TOKEND_SYSCONFDIR "/tokend.conf";
    bool test_only = false;
    bool flusher_only = false;
    bool worker_only = false;
    enum { OPTION_FLUSHER = 256, OPTION_WORKER };
    static const struct option long_options[] = {{"help", no_argument, NULL, 'h'},
                                                 {"version", no_argument, NULL, 'v'},
                                                 {"flusher", no_argument, NULL, OPTION_FLUSHER},
                                                 {"worker", no_argument, NULL, OPTION_WORKER},
                                                 {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:thv", long_options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 't':
            test_only = true;
            break;
        case OPTION_FLUSHER:
            flusher_only = true;
            break;
        case OPTION_WORKER:
            worker_only = true;
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
    if (optind != argc || test_only + flusher_only + worker_only > 1) {
        usage(stderr);
        return 2;
    }
    log_set_program("tokend");

    int status = 1;
    struct tokend_config config;
    struct key_set keys;
    memset(&keys, 0, sizeof(keys));
    struct admin_token admin_token;
    memset(&admin_token, 0, sizeof(admin_token));
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
    if (flusher_only) {
        status = run_flusher_service(&config); /* needs no signing key */
        goto done;
    }
    if (key_set_load(&keys, &config, error, sizeof(error)) != TK_OK) {
        log_error("%s", error);
        goto done;
    }
    if (config.admin_token_file[0] != '\0' &&
        admin_token_load(config.admin_token_file, &admin_token, error, sizeof(error)) != TK_OK) {
        log_error("admin_token_file: %s", error);
        goto done;
    }
    if (test_only) {
        const struct signing_key *signing = key_set_signing(&keys);
        fprintf(stderr,
                "tokend: configuration %s is valid: signing with %s key \"%s\", %zu key(s) "
                "in the JWKS; admin endpoints %s\n",
                config_path, jws_alg_name(signing->alg), signing->kid, keys.count,
                admin_token.set ? "enabled" : "disabled (no admin_token_file)");
        status = 0;
        goto done;
    }
    status = worker_only ? run_worker_service(&config, &keys, &admin_token)
                         : run_master(&config, &keys, &admin_token);
done:
    key_set_free(&keys);
    config_free(&config);
    return status;
}
