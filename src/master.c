/*
 * master.c - the supervisor process.
 *
 * It forks the flusher and `workers` workers, then sleeps in sigtimedwait
 * with every signal it cares about blocked, so signal handling is plain
 * sequential code:
 *
 *   SIGCHLD  reap; a child that died is restarted. If it lived less than a
 *            second the restart waits (100 ms, doubling to 10 s) so a child
 *            that cannot start does not fork-loop; one that ran a while is
 *            replaced at once. Each death is one log line with pid and
 *            signal or exit status.
 *   SIGTERM, SIGINT
 *            graceful stop, in the order that loses nothing: SIGTERM to
 *            every worker (each finishes its request in flight, and so its
 *            enqueue, and exits), wait up to shutdown_timeout, SIGKILL what
 *            is left; then SIGTERM to the flusher, which writes everything
 *            still queued and exits, again within shutdown_timeout. If the
 *            queue is empty at the end the shared-memory segment is
 *            removed; otherwise it stays, says so, and the next start
 *            flushes it. The unix socket we created is removed; exit 0.
 *   SIGHUP   logged and ignored for now (no reload yet).
 *
 * The master never serves requests and takes no part in the queue protocol
 * (it only reads the queue's depth to decide whether the segment may go).
 * Children inherit the listening socket, the loaded keys and the mapping of
 * the segment.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tokend/flusher.h"
#include "tokend/instance_stats.h"
#include "tokend/logging.h"
#include "tokend/monotonic_clock.h"
#include "tokend/master.h"
#include "tokend/status.h"
#include "tokend/worker.h"

#define RESTART_BACKOFF_MIN_MS 100
#define RESTART_BACKOFF_MAX_MS 10000
#define HEALTHY_LIFETIME_MS    1000

enum child_kind { CHILD_WORKER, CHILD_FLUSHER };

struct worker_slot {
    enum child_kind kind;
    pid_t pid; /* 0 when not running */
    int64_t started_ms;
    int64_t restart_at_ms;
    int backoff_ms;
};

struct master_state {
    const struct tokend_config *config;
    const struct key_set *keys;
    const struct admin_token *admin_token;
    struct shm_segment *segment;
    int listen_fd;
    struct worker_slot *slots; /* slots[0] is the flusher, the rest workers */
    int slot_count;
    sigset_t handled;
};

static void spawn_worker(struct master_state *master, struct worker_slot *slot)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork failed: %s; retrying", strerror(errno));
        slot->backoff_ms = slot->backoff_ms == 0 ? RESTART_BACKOFF_MIN_MS : slot->backoff_ms;
        slot->restart_at_ms = monotonic_ms() + slot->backoff_ms;
        return;
    }
    if (pid == 0) {
        signal(SIGCHLD, SIG_DFL);
        sigset_t unblock;
        sigemptyset(&unblock);
        sigaddset(&unblock, SIGCHLD);
        sigaddset(&unblock, SIGHUP);
        sigprocmask(SIG_UNBLOCK, &unblock, NULL);
        if (slot->kind == CHILD_FLUSHER) {
            close(master->listen_fd);
            _exit(flusher_main(master->config, master->segment));
        }
        _exit(worker_main(master->config, master->keys, master->admin_token, master->listen_fd,
                          master->segment, WORKER_FORKED));
    }
    slot->pid = pid;
    slot->started_ms = monotonic_ms();
    slot->restart_at_ms = 0;
}

static struct worker_slot *slot_of(struct master_state *master, pid_t pid)
{
    for (int i = 0; i < master->slot_count; i++) {
        if (master->slots[i].pid == pid) {
            return &master->slots[i];
        }
    }
    return NULL;
}

/* Reaps every exited child. When `restart` is set, schedules restarts. */
static int reap_children(struct master_state *master, bool restart)
{
    int reaped = 0;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct worker_slot *slot = slot_of(master, pid);
        if (slot == NULL) {
            continue;
        }
        reaped++;
        slot->pid = 0;
        /* Its counters join the retired totals; a replacement starts at 0. */
        stats_retire_pid(master->segment->stats, pid);
        if (!restart) {
            continue;
        }
        int64_t now = monotonic_ms();
        if (now - slot->started_ms < HEALTHY_LIFETIME_MS) {
            slot->backoff_ms =
                slot->backoff_ms == 0 ? RESTART_BACKOFF_MIN_MS : slot->backoff_ms * 2;
            if (slot->backoff_ms > RESTART_BACKOFF_MAX_MS) {
                slot->backoff_ms = RESTART_BACKOFF_MAX_MS;
            }
        } else {
            slot->backoff_ms = 0;
        }
        slot->restart_at_ms = now + slot->backoff_ms;
        const char *what = slot->kind == CHILD_FLUSHER ? "flusher" : "worker";
        if (WIFSIGNALED(status)) {
            log_error("%s %d killed by signal %d (%s); restarting in %d ms", what, (int)pid,
                      WTERMSIG(status), strsignal(WTERMSIG(status)), slot->backoff_ms);
        } else {
            log_error("%s %d exited with status %d; restarting in %d ms", what, (int)pid,
                      WEXITSTATUS(status), slot->backoff_ms);
        }
    }
    return reaped;
}

static int live_children(const struct master_state *master, enum child_kind kind)
{
    int live = 0;
    for (int i = 0; i < master->slot_count; i++) {
        live += master->slots[i].kind == kind && master->slots[i].pid != 0;
    }
    return live;
}

static void signal_children(const struct master_state *master, enum child_kind kind, int signo)
{
    for (int i = 0; i < master->slot_count; i++) {
        if (master->slots[i].kind == kind && master->slots[i].pid != 0) {
            kill(master->slots[i].pid, signo);
        }
    }
}

/* SIGTERM to every child of `kind`, then waits for them up to
 * shutdown_timeout and kills what is left. Returns true when all of them
 * stopped by themselves. */
static bool stop_children(struct master_state *master, enum child_kind kind)
{
    const char *what = kind == CHILD_FLUSHER ? "flusher" : "worker(s)";
    signal_children(master, kind, SIGTERM);
    /* The flusher gives up by itself after shutdown_timeout; the grace lets
     * it say so before it would be killed. */
    int64_t grace_ms = kind == CHILD_FLUSHER ? 2000 : 0;
    int64_t deadline = monotonic_ms() + master->config->shutdown_timeout_ms + grace_ms;
    sigset_t child;
    sigemptyset(&child);
    sigaddset(&child, SIGCHLD);
    for (;;) {
        reap_children(master, false);
        int live = live_children(master, kind);
        if (live == 0) {
            return true;
        }
        int64_t left = deadline - monotonic_ms();
        if (left <= 0) {
            log_warn("%d %s still busy after shutdown_timeout; killing", live, what);
            signal_children(master, kind, SIGKILL);
            for (int i = 0; i < master->slot_count; i++) {
                if (master->slots[i].kind == kind && master->slots[i].pid != 0) {
                    waitpid(master->slots[i].pid, NULL, 0);
                    master->slots[i].pid = 0;
                }
            }
            return false;
        }
        struct timespec wait = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000};
        sigtimedwait(&child, NULL, &wait);
    }
}

int master_run(const struct tokend_config *config, const struct key_set *keys,
               const struct admin_token *admin_token, struct shm_segment *segment, int listen_fd,
               const char *unix_path_to_remove)
{
    struct master_state master = {.config = config,
                                  .keys = keys,
                                  .admin_token = admin_token,
                                  .segment = segment,
                                  .listen_fd = listen_fd};
    int workers = config_worker_count(config);
    /* The master holds the segment alone (shm_segment.c): any slot still
     * occupied belongs to an instance that crashed, whatever process has
     * its pid now. Its counts stay in the totals. */
    stats_retire_all(segment->stats);
    master.slot_count = workers + 1;
    master.slots = calloc((size_t)master.slot_count, sizeof(*master.slots));
    if (master.slots == NULL) {
        log_error("out of memory");
        return 1;
    }
    master.slots[0].kind = CHILD_FLUSHER;
    for (int i = 1; i < master.slot_count; i++) {
        master.slots[i].kind = CHILD_WORKER;
    }
    sigemptyset(&master.handled);
    sigaddset(&master.handled, SIGCHLD);
    sigaddset(&master.handled, SIGTERM);
    sigaddset(&master.handled, SIGINT);
    sigaddset(&master.handled, SIGHUP);
    sigprocmask(SIG_BLOCK, &master.handled, NULL);
    /* Children start with SIGUSR1 (admin wake-up) blocked until a worker
     * has its handler; the master itself never takes it. */
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, SIGUSR1);
    sigprocmask(SIG_BLOCK, &wake, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (int i = 0; i < master.slot_count; i++) {
        spawn_worker(&master, &master.slots[i]);
    }
    log_info("started %d workers and the flusher (pid %d is the master)", workers, (int)getpid());

    for (;;) {
        int64_t now = monotonic_ms();
        int64_t next_restart = -1;
        for (int i = 0; i < master.slot_count; i++) {
            struct worker_slot *slot = &master.slots[i];
            if (slot->pid == 0 && slot->restart_at_ms <= now) {
                spawn_worker(&master, slot);
            }
            if (slot->pid == 0 && (next_restart < 0 || slot->restart_at_ms < next_restart)) {
                next_restart = slot->restart_at_ms;
            }
        }
        siginfo_t info;
        int signo;
        if (next_restart >= 0) {
            int64_t left = next_restart - monotonic_ms();
            left = left < 1 ? 1 : left;
            struct timespec wait = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000};
            signo = sigtimedwait(&master.handled, &info, &wait);
        } else {
            signo = sigwaitinfo(&master.handled, &info);
        }
        if (signo == SIGCHLD) {
            reap_children(&master, true);
        } else if (signo == SIGTERM || signo == SIGINT) {
            log_info("received %s; stopping workers", signo == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        } else if (signo == SIGHUP) {
            log_warn("SIGHUP received; reloading is not supported yet, ignored");
        }
    }
    stop_children(&master, CHILD_WORKER);
    close(listen_fd);
    if (unix_path_to_remove != NULL) {
        unlink(unix_path_to_remove);
    }
    bool drained = stop_children(&master, CHILD_FLUSHER);
    uint64_t left = token_queue_depth(&segment->queue);
    if (drained && left == 0) {
        shm_segment_unlink(segment->name);
        log_info("stopped; every issued token is in the database");
    } else {
        log_warn("stopped with %llu token(s) still queued in shared memory segment %s; the "
                 "next start writes them to the database",
                 (unsigned long long)left, segment->name);
    }
    free(master.slots);
    return 0;
}
