/*
 * privileges.h - the account tokend serves as.
 *
 * Started as root, tokend does what needs root (reading the configuration
 * and keys, binding the socket, creating the shared-memory segment), then
 * switches to the configured `user` and `group` for good before it forks a
 * worker or serves anything. Started as root without `user` it refuses to
 * run, unless `user = root` says that is meant. Started as anyone else it
 * stays who it is.
 */
#ifndef TOKEND_PRIVILEGES_H
#define TOKEND_PRIVILEGES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "tokend/config.h"

#define PRIVILEGES_NAME_MAX 32

struct service_account {
    bool switch_needed; /* started as root, and `user` is not root */
    uid_t uid;
    gid_t gid;
    char user[PRIVILEGES_NAME_MAX + 1];
    char group[PRIVILEGES_NAME_MAX + 1];
};

/* Decides what tokend runs as, from the effective uid and the `user` and
 * `group` settings:
 *   - root, `user` unset: TK_INVALID, `error` says to set `user`;
 *   - root, `user` names an unknown user or `group` an unknown group:
 *     TK_INVALID naming it;
 *   - root, `user` = root (uid 0): no switch;
 *   - root otherwise: switch_needed, with uid, gid (`group`, else the
 *     user's login group) and the names filled in;
 *   - not root: no switch; a `user` or `group` other than the current
 *     ones is ignored with a warning in the log.
 * `error` names the configuration file. Returns TK_OK or TK_INVALID. */
int privileges_plan(const struct tokend_config *config, struct service_account *out, char *error,
                    size_t error_size);

/* Switches the process to `account` for good: supplementary groups of the
 * user (initgroups), then gid, then uid; then verifies that real and
 * effective ids are the new ones and that setuid(0) and setgid(0) fail.
 * Does nothing when !switch_needed. Returns TK_OK, or TK_ERROR with
 * `error` (the process must then exit: its ids may be half changed). */
int privileges_drop(const struct service_account *account, char *error, size_t error_size);

#endif
