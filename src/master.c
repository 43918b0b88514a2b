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
 *   SIGHUP   reload (below).
 *
 * Reload: the configuration file, the keys and the admin token are read
 * again as one unit (server_settings_load). Any problem is one error line
 * naming the file and the problem, and nothing changes: the running
 * workers keep serving with what they have. On success the settings that
 * only a restart can change (RESTART_ONLY below: the socket, the segment,
 * the account) keep their running values, each with a warning; then
 *   - the flusher, if anything it reads changed (flusher_settings_differ),
 *     is told to hand over (SIGUSR2: it finishes its batch and exits,
 *     leaving the queue) and a new one is started;
 *   - the workers are replaced one at a time: a new worker is forked into
 *     the slot and, once it reports ready on its readiness pipe
 *     (child_process_ready), the one it replaces gets SIGTERM and finishes
 *     what it has, exactly as on a stop, while the others serve. The
 *     replaced workers are kept in `retiring` until they are reaped.
 *   - `workers` may grow or shrink: extra slots get new workers, surplus
 *     workers are stopped.
 * A new worker that does not become ready within READY_TIMEOUT_MS ends the
 * reload there (logged); a stop signal arriving meanwhile ends it too. The
 * reload runs synchronously: SIGCHLD and SIGHUP stay pending and are
 * handled right after it.
 *
 * systemd (Type=notify): READY=1 once the first workers reported ready,
 * RELOADING=1 ... READY=1 around a reload, STOPPING=1 at the stop.
 *
 * The master never serves requests and takes no part in the queue protocol
 * (it only reads the queue's depth to decide whether the segment may go).
 * Children inherit the listening socket, the settings current when they
 * are forked and the mapping of the segment.
 *
 * Ownership: the master owns the current settings (replaced on reload,
 * freed on return), the slot array, the retiring list and the readiness
 * pipes' read ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tokend/child_process.h"
#include "tokend/flusher.h"
#include "tokend/instance_stats.h"
#include "tokend/logging.h"
#include "tokend/monotonic_clock.h"
#include "tokend/master.h"
#include "tokend/service_notify.h"
#include "tokend/status.h"
#include "tokend/worker.h"

#define RESTART_BACKOFF_MIN_MS 100
#define RESTART_BACKOFF_MAX_MS 10000
#define HEALTHY_LIFETIME_MS    1000
/* How long a new child may take from fork to ready (it opens nothing
 * remote before that: the database connection is lazy). */
#define READY_TIMEOUT_MS 10000
/* Beyond shutdown_timeout, for the flusher to say it gave up. */
#define FLUSHER_GRACE_MS 2000

enum child_kind { CHILD_WORKER, CHILD_FLUSHER };

struct child_slot {
    enum child_kind kind;
    pid_t pid;    /* 0 when not running */
    int ready_fd; /* read end of its readiness pipe while awaited, else -1 */
    int64_t started_ms;
    int64_t restart_at_ms;
    int backoff_ms;
};

struct master_state {
    struct server_settings *settings; /* current; a reload replaces it */
    struct shm_segment *segment;
    int listen_fd;
    struct child_slot *slots; /* slots[0] is the flusher, the rest workers */
    int slot_count;
    int slot_capacity;
    pid_t *retiring; /* workers replaced by a reload, finishing their requests */
    int retiring_count;
    int retiring_capacity;
    sigset_t handled;
};

static const struct tokend_config *config_of(const struct master_state *master)
{
    return &master->settings->config;
}

static void close_ready_fd(struct child_slot *slot)
{
    if (slot->ready_fd >= 0) {
        close(slot->ready_fd);
        slot->ready_fd = -1;
    }
}

/* Forks the child of `slot` with a readiness pipe, whose read end stays in
 * slot->ready_fd. On fork failure the slot is scheduled for a retry. */
static void spawn_child(struct master_state *master, struct child_slot *slot)
{
    int pipe_fds[2] = {-1, -1};
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
        pipe_fds[0] = pipe_fds[1] = -1; /* then it counts as ready at once */
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork failed: %s; retrying", strerror(errno));
        slot->backoff_ms = slot->backoff_ms == 0 ? RESTART_BACKOFF_MIN_MS : slot->backoff_ms;
        slot->restart_at_ms = monotonic_ms() + slot->backoff_ms;
        if (pipe_fds[0] >= 0) {
            close(pipe_fds[0]);
            close(pipe_fds[1]);
        }
        return;
    }
    if (pid == 0) {
        signal(SIGCHLD, SIG_DFL);
        sigset_t unblock;
        sigemptyset(&unblock);
        sigaddset(&unblock, SIGCHLD);
        sigaddset(&unblock, SIGHUP);
        sigprocmask(SIG_UNBLOCK, &unblock, NULL);
        for (int i = 0; i < master->slot_count; i++) {
            if (master->slots[i].ready_fd >= 0) {
                close(master->slots[i].ready_fd); /* other children's pipes */
            }
        }
        if (pipe_fds[0] >= 0) {
            close(pipe_fds[0]);
        }
        child_process_set_ready_fd(pipe_fds[1]);
        const struct server_settings *settings = master->settings;
        if (slot->kind == CHILD_FLUSHER) {
            close(master->listen_fd);
            _exit(flusher_main(&settings->config, master->segment));
        }
        _exit(worker_main(&settings->config, &settings->keys, &settings->admin_token,
                          master->listen_fd, master->segment, WORKER_FORKED));
    }
    if (pipe_fds[1] >= 0) {
        close(pipe_fds[1]);
    }
    close_ready_fd(slot);
    slot->ready_fd = pipe_fds[0];
    slot->pid = pid;
    slot->started_ms = monotonic_ms();
    slot->restart_at_ms = 0;
}

/* Waits until the child of `slot` reports ready (true), or dies or lets
 * `deadline_ms` pass first (false). Closes the pipe either way. */
static bool wait_ready(struct child_slot *slot, int64_t deadline_ms)
{
    bool ready = slot->ready_fd < 0; /* no pipe: nothing to wait for */
    while (!ready && slot->ready_fd >= 0) {
        int64_t left = deadline_ms - monotonic_ms();
        if (left <= 0) {
            break;
        }
        struct pollfd pfd = {.fd = slot->ready_fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
        if (n < 0 && errno != EINTR) {
            break;
        }
        if (n <= 0) {
            continue;
        }
        char byte;
        ssize_t got = read(slot->ready_fd, &byte, 1);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        ready = got == 1;
        break; /* a byte, or end of file: the child died before it was ready */
    }
    close_ready_fd(slot);
    return ready;
}

static struct child_slot *slot_of(struct master_state *master, pid_t pid)
{
    for (int i = 0; i < master->slot_count; i++) {
        if (master->slots[i].pid == pid) {
            return &master->slots[i];
        }
    }
    return NULL;
}

/* Removes `pid` from the retiring list; false when it is not there. */
static bool retiring_remove(struct master_state *master, pid_t pid)
{
    for (int i = 0; i < master->retiring_count; i++) {
        if (master->retiring[i] == pid) {
            master->retiring[i] = master->retiring[--master->retiring_count];
            return true;
        }
    }
    return false;
}

/* Sends SIGTERM to a worker a reload replaced and remembers it until it is
 * reaped. Should the list not grow, the worker still stops; it is then
 * reaped as an unknown child and its stats slot retired by the flusher. */
static void retire_worker(struct master_state *master, pid_t pid)
{
    kill(pid, SIGTERM);
    if (master->retiring_count == master->retiring_capacity) {
        int capacity = master->retiring_capacity == 0 ? 8 : master->retiring_capacity * 2;
        pid_t *bigger = realloc(master->retiring, (size_t)capacity * sizeof(*bigger));
        if (bigger == NULL) {
            log_warn("out of memory tracking replaced worker %d", (int)pid);
            return;
        }
        master->retiring = bigger;
        master->retiring_capacity = capacity;
    }
    master->retiring[master->retiring_count++] = pid;
}

static void log_exit(const char *what, pid_t pid, int status, const char *then)
{
    if (WIFSIGNALED(status)) {
        log_error("%s %d killed by signal %d (%s)%s", what, (int)pid, WTERMSIG(status),
                  strsignal(WTERMSIG(status)), then);
    } else {
        log_error("%s %d exited with status %d%s", what, (int)pid, WEXITSTATUS(status), then);
    }
}

/* Reaps every exited child. When `restart` is set, schedules restarts. */
static int reap_children(struct master_state *master, bool restart)
{
    int reaped = 0;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        /* Its counters join the retired totals; a replacement starts at 0. */
        stats_retire_pid(master->segment->stats, pid);
        if (retiring_remove(master, pid)) {
            reaped++;
            bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (clean) {
                log_info("worker %d (replaced by a reload) finished and exited", (int)pid);
            } else {
                log_exit("replaced worker", pid, status, "");
            }
            continue;
        }
        struct child_slot *slot = slot_of(master, pid);
        if (slot == NULL) {
            continue;
        }
        reaped++;
        slot->pid = 0;
        close_ready_fd(slot);
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
        char then[48];
        snprintf(then, sizeof(then), "; restarting in %d ms", slot->backoff_ms);
        log_exit(slot->kind == CHILD_FLUSHER ? "flusher" : "worker", pid, status, then);
    }
    return reaped;
}

/* Live children of `kind`; workers include the retiring ones. */
static int live_children(const struct master_state *master, enum child_kind kind)
{
    int live = kind == CHILD_WORKER ? master->retiring_count : 0;
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
    for (int i = 0; kind == CHILD_WORKER && i < master->retiring_count; i++) {
        kill(master->retiring[i], signo);
    }
}

/* Sleeps until a child exits or `left_ms` passes. */
static void wait_for_child_exit(int64_t left_ms)
{
    sigset_t child;
    sigemptyset(&child);
    sigaddset(&child, SIGCHLD);
    struct timespec wait = {.tv_sec = left_ms / 1000, .tv_nsec = (left_ms % 1000) * 1000000};
    sigtimedwait(&child, NULL, &wait);
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
    int64_t grace_ms = kind == CHILD_FLUSHER ? FLUSHER_GRACE_MS : 0;
    int64_t deadline = monotonic_ms() + config_of(master)->shutdown_timeout_ms + grace_ms;
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
                    stats_retire_pid(master->segment->stats, master->slots[i].pid);
                    master->slots[i].pid = 0;
                }
            }
            while (kind == CHILD_WORKER && master->retiring_count > 0) {
                pid_t pid = master->retiring[--master->retiring_count];
                waitpid(pid, NULL, 0);
                stats_retire_pid(master->segment->stats, pid);
            }
            return false;
        }
        wait_for_child_exit(left);
    }
}

/* ---- reload ---- */

/* True when a stop signal waits: a reload in progress gives way to it. */
static bool stop_pending(void)
{
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    return sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1;
}

static void swap_strings(char **a, char **b)
{
    char *keep = *a;
    *a = *b;
    *b = keep;
}

/* The settings a running instance cannot take over: the socket is bound
 * and the segment sized and named once, and the account was switched to
 * for good. A changed value is logged and the running one kept (moved
 * into `fresh`). */
static void keep_restart_only_settings(struct tokend_config *fresh, struct tokend_config *running)
{
    const char *path = fresh->path;
    static const char need_restart[] = "reload: %s changed in %s; that needs a restart, keeping %s";
    struct {
        const char *key;
        char **fresh_value, **running_value;
    } strings[] = {
        {"listen", &fresh->listen, &running->listen},
        {"shm_name", &fresh->shm_name, &running->shm_name},
        {"user", &fresh->user, &running->user},
        {"group", &fresh->group, &running->group},
    };
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if (strcmp(*strings[i].fresh_value, *strings[i].running_value) != 0) {
            char kept[300];
            snprintf(kept, sizeof(kept), "%s = \"%.250s\"", strings[i].key,
                     *strings[i].running_value);
            log_warn(need_restart, strings[i].key, path, kept);
            swap_strings(strings[i].fresh_value, strings[i].running_value);
        }
    }
    struct {
        const char *key;
        int *fresh_value, *running_value;
    } numbers[] = {
        {"listen_backlog", &fresh->listen_backlog, &running->listen_backlog},
        {"queue_capacity", &fresh->queue_capacity, &running->queue_capacity},
    };
    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        if (*numbers[i].fresh_value != *numbers[i].running_value) {
            char kept[64];
            snprintf(kept, sizeof(kept), "%s = %d", numbers[i].key, *numbers[i].running_value);
            log_warn(need_restart, numbers[i].key, path, kept);
            *numbers[i].fresh_value = *numbers[i].running_value;
        }
    }
    if (fresh->listen_mode != running->listen_mode) {
        char kept[64];
        snprintf(kept, sizeof(kept), "listen_mode = %04o", running->listen_mode);
        log_warn(need_restart, "listen_mode", path, kept);
        fresh->listen_mode = running->listen_mode;
    }
}

/* Makes room for `workers` worker slots. Returns TK_OK or TK_ERROR. */
static int ensure_slots(struct master_state *master, int workers)
{
    int needed = workers + 1;
    if (needed <= master->slot_capacity) {
        return TK_OK;
    }
    struct child_slot *bigger = realloc(master->slots, (size_t)needed * sizeof(*bigger));
    if (bigger == NULL) {
        return TK_ERROR;
    }
    for (int i = master->slot_capacity; i < needed; i++) {
        bigger[i] = (struct child_slot){.kind = CHILD_WORKER, .ready_fd = -1};
    }
    master->slots = bigger;
    master->slot_capacity = needed;
    return TK_OK;
}

/* Waits for `pid` to exit, up to `timeout_ms`. Returns true when it did. */
static bool wait_for_exit(pid_t pid, int64_t timeout_ms)
{
    int64_t deadline = monotonic_ms() + timeout_ms;
    for (;;) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            return true;
        }
        int64_t left = deadline - monotonic_ms();
        if (left <= 0) {
            return false;
        }
        wait_for_child_exit(left > 100 ? 100 : left);
    }
}

/* Has the flusher hand over and starts a new one with the current
 * settings. Returns true when the new one reported ready. */
static bool replace_flusher(struct master_state *master)
{
    struct child_slot *slot = &master->slots[0];
    pid_t old = slot->pid;
    if (old != 0) {
        kill(old, SIGUSR2);
        int64_t timeout = config_of(master)->shutdown_timeout_ms + FLUSHER_GRACE_MS;
        if (!wait_for_exit(old, timeout)) {
            /* Safe at any point: an unreleased batch is written again. */
            log_warn("reload: flusher %d did not hand over in time; killing it", (int)old);
            kill(old, SIGKILL);
            waitpid(old, NULL, 0);
        }
        stats_retire_pid(master->segment->stats, old);
        slot->pid = 0;
    }
    slot->backoff_ms = 0;
    spawn_child(master, slot);
    return slot->pid != 0 && wait_ready(slot, monotonic_ms() + READY_TIMEOUT_MS);
}

/* Forks a successor into worker slot `slot` and, once it is ready, stops
 * the worker it replaces. Returns true when the successor serves; false
 * leaves the old worker in the slot. */
static bool replace_worker(struct master_state *master, struct child_slot *slot)
{
    pid_t old = slot->pid;
    slot->pid = 0;
    slot->backoff_ms = 0;
    spawn_child(master, slot);
    if (slot->pid == 0) {
        slot->pid = old; /* fork failed (logged) */
        return false;
    }
    if (!wait_ready(slot, monotonic_ms() + READY_TIMEOUT_MS)) {
        log_error("reload: new worker %d did not become ready within %d s", (int)slot->pid,
                  READY_TIMEOUT_MS / 1000);
        kill(slot->pid, SIGKILL);
        waitpid(slot->pid, NULL, 0);
        stats_retire_pid(master->segment->stats, slot->pid);
        slot->pid = old;
        return false;
    }
    if (old != 0) {
        retire_worker(master, old);
    }
    return true;
}

static void reload(struct master_state *master)
{
    const char *path = config_of(master)->path;
    service_notify("RELOADING=1\nSTATUS=reloading %s", path);
    log_info("SIGHUP: reloading %s", path);
    char error[CONFIG_ERROR_SIZE];
    struct server_settings *fresh = calloc(1, sizeof(*fresh));
    int rc = fresh != NULL ? server_settings_load(fresh, path, error, sizeof(error)) : TK_ERROR;
    if (fresh == NULL) {
        snprintf(error, sizeof(error), "out of memory");
    }
    int workers = rc == TK_OK ? config_worker_count(&fresh->config) : 0;
    if (rc == TK_OK && ensure_slots(master, workers) != TK_OK) {
        server_settings_free(fresh);
        snprintf(error, sizeof(error), "out of memory");
        rc = TK_ERROR;
    }
    if (rc != TK_OK) {
        log_error("reload failed, the running workers keep the previous settings: %s", error);
        service_notify("READY=1\nSTATUS=reload failed: %s", error);
        free(fresh);
        return;
    }
    keep_restart_only_settings(&fresh->config, &master->settings->config);
    bool flusher_changed = flusher_settings_differ(&fresh->config, &master->settings->config);
    server_settings_free(master->settings);
    free(master->settings);
    master->settings = fresh;  /* every child forked from here on gets these */
    path = fresh->config.path; /* the old copy is gone */
    log_set_level(fresh->config.log_level);

    const char *flusher_outcome = "kept";
    if (flusher_changed) {
        flusher_outcome = replace_flusher(master) ? "replaced" : "replaced, not ready yet";
    }
    int old_workers = master->slot_count - 1;
    if (workers > old_workers) {
        master->slot_count = workers + 1; /* the new slots are filled below */
    }
    int replaced = 0;
    bool complete = true;
    for (int i = 1; i <= workers; i++) {
        if (stop_pending()) {
            complete = false;
            break;
        }
        if (!replace_worker(master, &master->slots[i])) {
            complete = false;
            break;
        }
        replaced++;
    }
    if (complete && workers < old_workers) {
        for (int i = workers + 1; i <= old_workers; i++) {
            if (master->slots[i].pid != 0) {
                retire_worker(master, master->slots[i].pid);
            }
            close_ready_fd(&master->slots[i]);
            master->slots[i] = (struct child_slot){.kind = CHILD_WORKER, .ready_fd = -1};
        }
        master->slot_count = workers + 1;
    }
    /* SIGCHLD taken while waiting above may belong to any child. */
    reap_children(master, true);
    if (complete) {
        log_info("reloaded %s: %d worker(s) started with the new settings, old ones finishing "
                 "their requests; flusher %s",
                 path, replaced, flusher_outcome);
    } else {
        log_error("reload of %s stopped after %d of %d worker(s); the others keep running and "
                  "their replacements will use the new settings",
                  path, replaced, workers);
    }
    service_notify("READY=1\nSTATUS=serving with %d workers (reloaded)", workers);
}

/* ---- the loop ---- */

int master_run(struct server_settings *settings, struct shm_segment *segment, int listen_fd,
               const char *unix_path_to_remove)
{
    struct master_state master = {.settings = settings, .segment = segment, .listen_fd = listen_fd};
    char *socket_path = unix_path_to_remove != NULL ? strdup(unix_path_to_remove) : NULL;
    int workers = config_worker_count(config_of(&master));
    /* The master holds the segment alone (shm_segment.c): any slot still
     * occupied belongs to an instance that crashed, whatever process has
     * its pid now. Its counts stay in the totals. */
    stats_retire_all(segment->stats);
    if ((unix_path_to_remove != NULL && socket_path == NULL) ||
        ensure_slots(&master, workers) != TK_OK) {
        log_error("out of memory");
        free(socket_path);
        server_settings_free(settings);
        free(settings);
        return 1;
    }
    master.slot_count = workers + 1;
    master.slots[0].kind = CHILD_FLUSHER;
    sigemptyset(&master.handled);
    sigaddset(&master.handled, SIGCHLD);
    sigaddset(&master.handled, SIGTERM);
    sigaddset(&master.handled, SIGINT);
    sigaddset(&master.handled, SIGHUP);
    sigprocmask(SIG_BLOCK, &master.handled, NULL);
    /* Children start with SIGUSR1 (admin wake-up) and SIGUSR2 (flusher
     * hand-over) blocked until they take them; the master takes neither. */
    sigset_t child_signals;
    sigemptyset(&child_signals);
    sigaddset(&child_signals, SIGUSR1);
    sigaddset(&child_signals, SIGUSR2);
    sigprocmask(SIG_BLOCK, &child_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (int i = 0; i < master.slot_count; i++) {
        spawn_child(&master, &master.slots[i]);
    }
    int64_t ready_deadline = monotonic_ms() + READY_TIMEOUT_MS;
    int ready = 0;
    for (int i = 1; i < master.slot_count; i++) {
        ready += wait_ready(&master.slots[i], ready_deadline);
    }
    wait_ready(&master.slots[0], ready_deadline);
    log_info("started %d workers and the flusher (pid %d is the master)", workers, (int)getpid());
    service_notify("READY=1\nSTATUS=serving with %d of %d workers ready", ready, workers);

    for (;;) {
        int64_t now = monotonic_ms();
        int64_t next_restart = -1;
        for (int i = 0; i < master.slot_count; i++) {
            struct child_slot *slot = &master.slots[i];
            if (slot->pid == 0 && slot->restart_at_ms <= now) {
                spawn_child(&master, slot);
                close_ready_fd(slot); /* a restart is not awaited */
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
            reload(&master);
        }
    }
    service_notify("STOPPING=1\nSTATUS=stopping");
    stop_children(&master, CHILD_WORKER);
    close(listen_fd);
    if (socket_path != NULL) {
        unlink(socket_path);
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
    free(master.retiring);
    free(socket_path);
    server_settings_free(master.settings);
    free(master.settings);
    return 0;
}
