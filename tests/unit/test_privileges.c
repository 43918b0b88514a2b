/*
 * test_privileges.c - the account decision and the switch
 * (src/privileges.c). As any user: not root means no switch, whatever the
 * configuration says. As root (CI): `user` is required, `user = root`
 * means no switch, unknown users and groups are refused with the key
 * named, the login group is the default; and a forked child switches to
 * `nobody` and can then neither become root again nor keep root's ids.
 */
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tokend/config.h"
#include "tokend/privileges.h"
#include "tokend/status.h"
#include "unit_test.h"

/* Plans for a configuration of `text` named "test.conf". */
static int plan(const char *text, struct service_account *account, char *error, size_t size)
{
    struct tokend_config config;
    char config_error[CONFIG_ERROR_SIZE];
    CHECK_INT(config_init_defaults(&config), TK_OK);
    CHECK_INT(config_load_text(&config, text, strlen(text), "test.conf", config_error), TK_OK);
    free(config.path);
    config.path = strdup("test.conf");
    error[0] = '\0';
    int rc = privileges_plan(&config, account, error, size);
    config_free(&config);
    return rc;
}

static void test_not_root_stays(void)
{
    if (geteuid() == 0) {
        return;
    }
    struct service_account account;
    char error[512];
    CHECK_INT(plan("user = nobody\ngroup = nogroup\n", &account, error, sizeof(error)), TK_OK);
    CHECK(!account.switch_needed);
    CHECK_INT(account.uid, geteuid());
    CHECK_INT(plan("", &account, error, sizeof(error)), TK_OK);
    CHECK(!account.switch_needed);
    struct service_account untouched = account;
    CHECK_INT(privileges_drop(&account, error, sizeof(error)), TK_OK);
    CHECK_INT(geteuid(), untouched.uid);
}

static void test_root_plans(void)
{
    if (geteuid() != 0) {
        return;
    }
    struct service_account account;
    char error[512];
    CHECK_INT(plan("", &account, error, sizeof(error)), TK_INVALID);
    CHECK_STR(error, "test.conf: tokend was started as root and `user` is not set: set `user` "
                     "(and `group`) to the account it should serve as, or `user = root` if "
                     "running as root is really meant");
    CHECK_INT(plan("user = root\n", &account, error, sizeof(error)), TK_OK);
    CHECK(!account.switch_needed);
    CHECK_INT(plan("user = no-such-user-x\n", &account, error, sizeof(error)), TK_INVALID);
    CHECK_STR(error, "test.conf: key 'user': no such user 'no-such-user-x'");
    CHECK_INT(plan("user = nobody\ngroup = no-such-group-x\n", &account, error, sizeof(error)),
              TK_INVALID);
    CHECK_STR(error, "test.conf: key 'group': no such group 'no-such-group-x'");

    struct passwd *nobody = getpwnam("nobody");
    CHECK(nobody != NULL);
    if (nobody == NULL) {
        return;
    }
    CHECK_INT(plan("user = nobody\n", &account, error, sizeof(error)), TK_OK);
    CHECK(account.switch_needed);
    CHECK_INT(account.uid, nobody->pw_uid);
    CHECK_INT(account.gid, nobody->pw_gid); /* the login group */
    CHECK_STR(account.user, "nobody");
    CHECK_INT(plan("user = nobody\ngroup = root\n", &account, error, sizeof(error)), TK_OK);
    CHECK_INT(account.gid, 0);
    CHECK_STR(account.group, "root");
}

static void test_root_switches_for_good(void)
{
    if (geteuid() != 0 || getpwnam("nobody") == NULL) {
        return;
    }
    struct service_account account;
    char error[512];
    CHECK_INT(plan("user = nobody\n", &account, error, sizeof(error)), TK_OK);
    pid_t pid = fork();
    if (pid == 0) {
        /* Exit codes: 0 ok, 1 the switch failed, 2 some id is wrong, 3 root came back. */
        if (privileges_drop(&account, error, sizeof(error)) != TK_OK) {
            _exit(1);
        }
        gid_t groups[64];
        int count = getgroups(64, groups);
        for (int i = 0; i < count; i++) {
            if (groups[i] == 0) {
                _exit(2);
            }
        }
        if (getuid() != account.uid || geteuid() != account.uid || getgid() != account.gid) {
            _exit(2);
        }
        _exit(setuid(0) == 0 || seteuid(0) == 0 ? 3 : 0);
    }
    int status = -1;
    CHECK_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_INT(WEXITSTATUS(status), 0);
    CHECK_INT(geteuid(), 0); /* the parent is untouched */
}

int main(void)
{
    RUN(test_not_root_stays);
    RUN(test_root_plans);
    RUN(test_root_switches_for_good);
    return unit_test_finish();
}
