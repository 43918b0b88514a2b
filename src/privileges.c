/*
 * privileges.c - deciding on and switching to the account tokend serves
 * as (see privileges.h for the policy).
 *
 * Why refuse root without `user`: a worker parses untrusted input; if it
 * ever misbehaves it should hold as little as possible. An operator who
 * really wants root says `user = root`, so the choice is visible in the
 * configuration rather than the accident of how tokend was started.
 *
 * The order of the switch matters: supplementary groups and the gid can
 * only be changed while still root, so they go first and setuid last. A
 * process that changed its ids becomes non-dumpable (no core files, no
 * ptrace by the new user), which suits one that holds private keys; the
 * parent-death signal is reset by the switch too, which is why the master
 * switches before it forks any child.
 *
 * Failure: privileges_plan changes nothing. privileges_drop may fail
 * half-way (after setgid, before setuid); the caller exits then.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tokend/logging.h"
#include "tokend/privileges.h"
#include "tokend/status.h"

static const char *config_name(const struct tokend_config *config)
{
    return config->path != NULL && config->path[0] != '\0' ? config->path : "the configuration";
}

/* Not root: say so when the configuration asks for another account. */
static void warn_ignored(const struct tokend_config *config)
{
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (config->user[0] != '\0') {
        struct passwd *pw = getpwnam(config->user);
        if (pw == NULL || pw->pw_uid != uid) {
            log_warn("%s: user = %s is ignored: tokend was not started as root and keeps running "
                     "as uid %d",
                     config_name(config), config->user, (int)uid);
        }
    }
    if (config->group[0] != '\0') {
        struct group *gr = getgrnam(config->group);
        if (gr == NULL || gr->gr_gid != gid) {
            log_warn("%s: group = %s is ignored: tokend was not started as root and keeps running "
                     "as gid %d",
                     config_name(config), config->group, (int)gid);
        }
    }
}

int privileges_plan(const struct tokend_config *config, struct service_account *out, char *error,
                    size_t error_size)
{
    memset(out, 0, sizeof(*out));
    out->uid = geteuid();
    out->gid = getegid();
    if (out->uid != 0) {
        warn_ignored(config);
        return TK_OK;
    }
    if (config->user[0] == '\0') {
        snprintf(error, error_size,
                 "%s: tokend was started as root and `user` is not set: set `user` (and "
                 "`group`) to the account it should serve as, or `user = root` if running as "
                 "root is really meant",
                 config_name(config));
        return TK_INVALID;
    }
    errno = 0;
    struct passwd *pw = getpwnam(config->user);
    if (pw == NULL) {
        snprintf(error, error_size, "%s: key 'user': no such user '%s'%s%s", config_name(config),
                 config->user, errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
        return TK_INVALID;
    }
    if (pw->pw_uid == 0) {
        return TK_OK; /* `user = root`: stays root, nothing to switch */
    }
    out->uid = pw->pw_uid;
    out->gid = pw->pw_gid;
    snprintf(out->user, sizeof(out->user), "%s", config->user);
    if (config->group[0] != '\0') {
        errno = 0;
        struct group *gr = getgrnam(config->group);
        if (gr == NULL) {
            snprintf(error, error_size, "%s: key 'group': no such group '%s'%s%s",
                     config_name(config), config->group, errno != 0 ? ": " : "",
                     errno != 0 ? strerror(errno) : "");
            return TK_INVALID;
        }
        out->gid = gr->gr_gid;
        snprintf(out->group, sizeof(out->group), "%s", config->group);
    } else {
        struct group *gr = getgrgid(out->gid);
        snprintf(out->group, sizeof(out->group), "%s", gr != NULL ? gr->gr_name : "");
    }
    out->switch_needed = true;
    return TK_OK;
}

int privileges_drop(const struct service_account *account, char *error, size_t error_size)
{
    if (!account->switch_needed) {
        return TK_OK;
    }
    if (initgroups(account->user, account->gid) != 0) {
        snprintf(error, error_size, "cannot set the groups of user %s: %s", account->user,
                 strerror(errno));
        return TK_ERROR;
    }
    if (setgid(account->gid) != 0) {
        snprintf(error, error_size, "cannot switch to gid %d: %s", (int)account->gid,
                 strerror(errno));
        return TK_ERROR;
    }
    if (setuid(account->uid) != 0) {
        snprintf(error, error_size, "cannot switch to user %s (uid %d): %s", account->user,
                 (int)account->uid, strerror(errno));
        return TK_ERROR;
    }
    if (getuid() != account->uid || geteuid() != account->uid || getgid() != account->gid ||
        getegid() != account->gid) {
        snprintf(error, error_size, "switching to user %s left other ids in place", account->user);
        return TK_ERROR;
    }
    /* gid 0 may be the chosen group itself; uid 0 never is here. */
    bool regained_group = account->gid != 0 && (setgid(0) == 0 || setegid(0) == 0);
    if (setuid(0) == 0 || seteuid(0) == 0 || regained_group) {
        snprintf(error, error_size,
                 "after switching to user %s the process could become root "
                 "again; refusing to serve",
                 account->user);
        return TK_ERROR;
    }
    return TK_OK;
}
