/*
 * tokend.c - the daemon's entry point.
 *
 *   tokend [-c FILE] [-t]        master: workers + flusher (the usual way)
 *   tokend --flusher [-c FILE]   only the flusher, as its own service
 *   tokend --worker [-c FILE]    one worker on the socket passed on fd 0
 *
 * Master mode reads the configuration, loads the signing keys (once, before
 * forking, so every worker shares the parsed keys and a bad key stops the
 * start with a clear message), takes the FastCGI socket from systemd
 * (socket activation) or from fd 0 when a launcher such as spawn-fcgi
 * passed one there, or binds `listen` itself, opens the shared-memory
 * segment (creating it, or taking over one a crashed instance left with
 * its queued tokens), and hands over to the master.
 * With -t it only checks the configuration and keys, like `nginx -t`.
 *
 * Privileges (privileges.h): started as root, tokend first checks in a
 * short-lived child that the configured `user` can read the configuration
 * and keys (every reload reads them again as that user), then binds the
 * socket and opens the segment as root, gives both to the user, and
 * switches to it for good before any worker or the flusher is forked.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"

#include "tokend/config.h"
#include "tokend/flusher.h"
#include "tokend/listen_socket.h"
#include "tokend/logging.h"
#include "tokend/master.h"
#include "tokend/privileges.h"
#include "tokend/server_settings.h"
#include "tokend/service_notify.h"
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

/* Started as root with a `user` to switch to: can that user read the
 * configuration and the keys? Every reload reads them again as that user,
 * so a file only root can read would make every reload fail. Checked in a
 * child that switches and loads, before anything is bound or created; the
 * child logs the problem. Returns TK_OK or TK_ERROR. */
static int check_readable_by(const char *config_path, const struct service_account *account)
{
    if (!account->switch_needed) {
        return TK_OK;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
        return TK_ERROR;
    }
    if (pid == 0) {
        char error[CONFIG_ERROR_SIZE];
        struct server_settings again;
        if (privileges_drop(account, error, sizeof(error)) != TK_OK) {
            log_error("%s", error);
            _exit(1);
        }
        if (server_settings_load(&again, config_path, error, sizeof(error)) != TK_OK) {
            log_error("as user %s: %s (tokend serves as %s and reads its configuration and keys "
                      "again as %s on every reload: keys must belong to %s with mode 0600, the "
                      "configuration must be readable by it)",
                      account->user, error, account->user, account->user, account->user);
            _exit(1);
        }
        server_settings_free(&again);
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? TK_OK : TK_ERROR;
}

/* Gives what root created to the account tokend switches to, so it can
 * still remove the socket and the segment when it stops. */
static int give_to_account(const struct service_account *account, const char *socket_path,
                           const struct shm_segment *segment)
{
    if (!account->switch_needed) {
        return TK_OK;
    }
    if (socket_path != NULL && chown(socket_path, account->uid, account->gid) != 0) {
        log_error("%s: cannot give the socket to user %s: %s", socket_path, account->user,
                  strerror(errno));
        return TK_ERROR;
    }
    if (fchown(segment->fd, account->uid, account->gid) != 0) {
        log_error("shared memory segment %s: cannot give it to user %s: %s", segment->name,
                  account->user, strerror(errno));
        return TK_ERROR;
    }
    return TK_OK;
}

/* Switches to the account; logs and returns TK_ERROR if that fails. */
static int switch_account(const struct service_account *account)
{
    char error[CONFIG_ERROR_SIZE];
    if (privileges_drop(account, error, sizeof(error)) != TK_OK) {
        log_error("%s", error);
        return TK_ERROR;
    }
    if (account->switch_needed) {
        log_info("serving as user %s, group %s", account->user, account->group);
    }
    return TK_OK;
}

/* The listening socket: from systemd, from fd 0, or bound from `listen`.
 * Sets *bound_path when tokend created a unix socket file itself. Returns
 * the fd, or TK_ERROR (logged). */
static int take_listen_socket(const struct tokend_config *config, bool *inherited,
                              const char **bound_path)
{
    char error[CONFIG_ERROR_SIZE];
    *bound_path = NULL;
    *inherited = true;
    int listen_fd = listen_socket_from_systemd(error, sizeof(error));
    if (listen_fd >= 0) {
        log_info("using the FastCGI socket passed by systemd (listen = %s is ignored)",
                 config->listen);
        return listen_fd;
    }
    if (listen_fd == TK_ERROR) {
        log_error("%s", error);
        return TK_ERROR;
    }
    if (listen_socket_inherited()) {
        listen_fd = listen_socket_adopt_inherited(error, sizeof(error));
        if (listen_fd >= 0) {
            log_info("using the FastCGI socket inherited on fd 0 (listen = %s is ignored)",
                     config->listen);
        }
    } else {
        *inherited = false;
        listen_fd = listen_socket_open(config->listen, config->listen_mode, config->listen_backlog,
                                       error, sizeof(error));
        if (listen_fd >= 0) {
            *bound_path = listen_socket_unix_path(config->listen);
            log_info("listening on %s", config->listen);
        }
    }
    if (listen_fd < 0) {
        log_error("%s", error);
        return TK_ERROR;
    }
    return listen_fd;
}

/* Takes ownership of `settings`. */
static int run_master(struct server_settings *settings, const struct service_account *account)
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
    const struct tokend_config *config = &settings->config;
    bool inherited;
    const char *bound_path;
    int listen_fd = take_listen_socket(config, &inherited, &bound_path);
    if (listen_fd < 0) {
        goto fail;
    }
    /* The socket first: a second instance is refused with the clearer
     * message about its socket before it looks at any segment. */
    struct shm_segment segment;
    if (open_segment(config, inherited ? listen_fd : -1, &segment) != TK_OK) {
        goto fail_socket;
    }
    if (give_to_account(account, bound_path, &segment) != TK_OK ||
        switch_account(account) != TK_OK) {
        if (segment.created) {
            shm_segment_unlink(segment.name);
        }
        shm_segment_close(&segment);
        goto fail_socket;
    }
    int status = master_run(settings, &segment, listen_fd, bound_path);
    shm_segment_close(&segment);
    return status;
fail_socket:
    close(listen_fd);
    if (bound_path != NULL) {
        unlink(bound_path);
    }
fail:
    server_settings_free(settings);
    free(settings);
    return 1;
}

static int run_flusher_service(const struct tokend_config *config,
                               const struct service_account *account)
{
    /* A stop signal from here on is taken by the flusher's loop (which
     * writes what is queued first), however early it comes; SIGHUP is
     * ignored there (a restart applies new settings). */
    sigset_t handled;
    sigemptyset(&handled);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    sigprocmask(SIG_BLOCK, &handled, NULL);
    struct shm_segment segment;
    if (open_segment(config, -1, &segment) != TK_OK) {
        return 1;
    }
    if (give_to_account(account, NULL, &segment) != TK_OK || switch_account(account) != TK_OK) {
        if (segment.created) {
            shm_segment_unlink(segment.name);
        }
        shm_segment_close(&segment);
        return 1;
    }
    log_info("flusher running for shared memory segment %s", segment.name);
    service_notify("READY=1\nSTATUS=flushing shared memory segment %s", segment.name);
    int status = flusher_main(config, &segment);
    service_notify("STOPPING=1");
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

/* tokend --flusher: the configuration without keys (it signs nothing). */
static int flusher_service(const char *config_path)
{
    struct tokend_config config;
    char error[CONFIG_ERROR_SIZE];
    struct service_account account;
    int status = 1;
    if (config_init_defaults(&config) != TK_OK) {
        log_error("out of memory");
        return 1;
    }
    if (config_load_file(&config, config_path, error) != TK_OK ||
        config_check_server(&config, error) != TK_OK ||
        privileges_plan(&config, &account, error, sizeof(error)) != TK_OK) {
        log_error("%s", error);
        goto done;
    }
    log_set_level(config.log_level);
    status = run_flusher_service(&config, &account);
done:
    config_free(&config);
    return status;
}

/* tokend -t: what a start would check, and nothing more. */
static int test_configuration(const char *config_path, const struct server_settings *settings,
                              const struct service_account *account)
{
    if (check_readable_by(config_path, account) != TK_OK) {
        return 1;
    }
    const struct signing_key *signing = key_set_signing(&settings->keys);
    char serving_as[128] = "";
    if (account->switch_needed) {
        snprintf(serving_as, sizeof(serving_as), "; serves as user %s, group %s", account->user,
                 account->group);
    }
    fprintf(stderr,
            "tokend: configuration %s is valid: signing with %s key \"%s\", %zu key(s) "
            "in the JWKS; admin endpoints %s%s\n",
            config_path, jws_alg_name(signing->alg), signing->kid, settings->keys.count,
            settings->admin_token.set ? "enabled" : "disabled (no admin_token_file)", serving_as);
    return 0;
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
 * flusher service's segment, as the configured user when started as root.
 * Returns the exit status. */
static int run_worker_service(const struct server_settings *settings,
                              const struct service_account *account)
{
    const struct tokend_config *config = &settings->config;
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
    if (switch_account(account) != TK_OK) {
        shm_segment_close(&segment);
        return 1;
    }
    if (strcmp(config->transport, "event") == 0) {
        log_info("transport = event is not used by --worker: the process manager sends one "
                 "request at a time, so this worker serves its socket with libfcgi (set "
                 "transport = libfcgi to say so)");
    }
    int status = worker_main(config, &settings->keys, &settings->admin_token, listen_fd, &segment,
                             WORKER_STANDALONE);
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
    service_notify_init();
    if (flusher_only) {
        return flusher_service(config_path); /* needs no signing key */
    }

    char error[CONFIG_ERROR_SIZE];
    struct service_account account;
    struct server_settings *settings = calloc(1, sizeof(*settings));
    if (settings == NULL) {
        log_error("out of memory");
        return 1;
    }
    if (server_settings_load(settings, config_path, error, sizeof(error)) != TK_OK) {
        log_error("%s", error);
        free(settings);
        return 1;
    }
    log_set_level(settings->config.log_level);
    int status = 1;
    if (privileges_plan(&settings->config, &account, error, sizeof(error)) != TK_OK) {
        log_error("%s", error);
        goto done;
    }
    if (test_only) {
        status = test_configuration(config_path, settings, &account);
        goto done;
    }
    if (check_readable_by(config_path, &account) != TK_OK) {
        goto done;
    }
    if (worker_only) {
        status = run_worker_service(settings, &account);
        goto done;
    }
    return run_master(settings, &account); /* takes the settings */
done:
    server_settings_free(settings);
    free(settings);
    return status;
}
