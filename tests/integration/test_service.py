"""tokend as operators run it (issue 7): reload on SIGHUP and the switch to
an unprivileged account.

Reload: under steady traffic through nginx, SIGHUP replaces every worker
without one failed request, and a changed setting (token_ttl) is what the
new workers use; a configuration or key error keeps the old workers
serving and is one log line naming the file and the problem; settings
that need a restart keep their value and say so.

Privileges (these tests need root, as CI has): tokend started as root
switches its master, workers and flusher to `user`/`group`, whether it
runs its own master, `--flusher`, or under spawn-fcgi; root without
`user`, a key file open to others, and a key the user cannot read are
refused with messages that say how to fix them."""

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import (
    COMMAND_TIMEOUT_S, START_TIMEOUT_S, Nginx, SpawnFcgi, Tokend, TokenTraffic, answers_of,
    assert_stored_exactly, basic_header, free_port, issue, process_name, run, running_stack,
    segment_name, segment_path, service_user, shm_name_for_listen, wait_for_rows, wait_until)

# A reload forks and waits for a few processes; on a loaded 2-core machine
# that can take a while, but never this long.
RELOAD_TIMEOUT_S = 30
# Requests the traffic must have made between two reloads, so each reload
# happens while requests are in flight.
REQUESTS_BETWEEN_RELOADS = 40


def reload_and_wait(tokend, done_lines, failed=False):
    """SIGHUP to the master; waits until the log has `done_lines` lines of
    the outcome ("reloaded ..." or, with failed=True, "reload failed")."""
    marker = "reload failed" if failed else "] info: reloaded "
    os.kill(tokend.pid, signal.SIGHUP)
    wait_until(lambda: tokend.log().count(marker) >= done_lines, RELOAD_TIMEOUT_S,
               message=f"{done_lines} x {marker!r} in the log")


def wait_replaced(tokend, old_pids, workers):
    """Waits until none of `old_pids` runs and `workers` workers do;
    returns the new pids."""
    def replaced():
        pids = set(tokend.worker_pids())
        return not (pids & set(old_pids)) and len(pids) == workers and pids
    return sorted(wait_until(replaced, RELOAD_TIMEOUT_S, message=f"workers {old_pids} replaced"))


def log_lines(tokend, text):
    return [line for line in tokend.log().splitlines() if text in line]


# ---------------------------------------------------------------------------
# reload
# ---------------------------------------------------------------------------

def test_reload_under_load_fails_no_request_and_applies_the_new_settings(
        build_dir, pg, keys, make_client):
    client = make_client("reload")  # no ttl of its own: token_ttl applies
    settings = {"token_ttl": "3600", "flush_interval_ms": "200"}
    with running_stack(build_dir, pg, keys, workers=2, settings=settings) as stack:
        tokend = stack.tokend
        generations = [sorted(tokend.worker_pids())]
        flushers = [tokend.flusher_pid()]
        changed_at = None
        with TokenTraffic(stack.port, *client, threads=4, max_seconds=120) as traffic:
            wait_until(lambda: traffic.ok_count() >= REQUESTS_BETWEEN_RELOADS, RELOAD_TIMEOUT_S,
                       message="traffic to flow")
            for n in (1, 2, 3):
                if n == 2:
                    # token_ttl is the workers'; flush_interval_ms the flusher's.
                    tokend.settings.update(token_ttl="120", flush_interval_ms="100")
                    tokend.write_config()
                before = traffic.count()
                reload_and_wait(tokend, n)
                generations.append(wait_replaced(tokend, generations[-1], 2))
                flushers.append(tokend.flusher_pid())
                if n == 2:
                    changed_at = time.monotonic()
                wait_until(lambda: traffic.count() >= before + REQUESTS_BETWEEN_RELOADS,
                           RELOAD_TIMEOUT_S, message="traffic after the reload")
            results = traffic.stop()
        log = tokend.log()

    failed = [r for r in results if isinstance(r[2], str) or r[2].status != 200]
    assert not failed, f"{len(failed)} of {len(results)} requests failed, e.g. {failed[:3]}"
    for older, newer in zip(generations, generations[1:]):
        assert not set(older) & set(newer), generations
    # The flusher is replaced only by the reload that changed its settings.
    assert flushers[0] == flushers[1] and flushers[2] == flushers[3], flushers
    assert flushers[1] != flushers[2], flushers
    assert "flusher: handing over to its successor" in log, log
    # Every answer started after the second reload finished carries the new
    # lifetime, and the first ones the old.
    answers = answers_of(results)
    assert answers[0].body["expires_in"] == 3600
    later = [r[2] for r in results if r[0] > changed_at]
    assert later, "no request after the second reload"
    assert {(a.body["expires_in"], a.claims["exp"] - a.claims["iat"]) for a in later} == {(120, 120)}
    # No worker died on its own, and every token is stored exactly once.
    assert "killed by signal" not in log and "exited with status" not in log, log
    wait_for_rows(pg, [client[0]], len(answers))
    assert_stored_exactly(pg, [client[0]], answers)


WRK = shutil.which("wrk")
WRK_SECONDS = 8


@pytest.mark.skipif(WRK is None, reason="wrk not installed (scripts/deps installs it)")
def test_reload_under_full_load_fails_no_request(build_dir, pg, keys, make_client, tmp_path):
    """The same with wrk driving as many requests as the machine takes
    (thousands a second) over kept connections: a worker replaced by a
    reload closes kept connections nginx may be about to use, and nginx
    sends such a request again on another connection thanks to the
    shipped block's fastcgi_next_upstream (without it this test sees 502s)."""
    client_id, secret = make_client("reload-wrk")
    script = tmp_path / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.body = "grant_type=client_credentials"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        f'wrk.headers["Authorization"] = "{basic_header(client_id, secret)}"\n'
        "done = function(summary, latency, requests)\n"
        "  local e = summary.errors\n"
        '  io.write(string.format("RESULT requests=%d non2xx=%d connect=%d read=%d write=%d '
        'timeout=%d\\n", summary.requests, e.status, e.connect, e.read, e.write, e.timeout))\n'
        "end\n")
    with running_stack(build_dir, pg, keys, workers=2) as stack:
        tokend = stack.tokend
        pids = sorted(tokend.worker_pids())
        wrk = subprocess.Popen([WRK, "-t1", "-c8", f"-d{WRK_SECONDS}s", "-s", script,
                                f"{stack.url}/oauth/token"], stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(1)
            for n in (1, 2, 3):
                reload_and_wait(tokend, n)
                pids = wait_replaced(tokend, pids, 2)
            assert wrk.poll() is None, "the reloads took longer than the load lasted"
            output, _ = wrk.communicate(timeout=WRK_SECONDS + 60)
        finally:
            if wrk.poll() is None:
                wrk.kill()
                wrk.wait()
        assert wrk.returncode == 0, output
    result = re.search(r"^RESULT (.*)$", output, re.M)
    assert result, output
    counts = {k: int(v) for k, v in (item.split("=") for item in result.group(1).split())}
    assert counts["requests"] > 100, counts
    assert {k: v for k, v in counts.items() if k != "requests"} == dict.fromkeys(
        ("non2xx", "connect", "read", "write", "timeout"), 0), counts


def test_reload_errors_keep_the_old_workers_serving(build_dir, pg, keys, make_client, tmp_path):
    client = make_client("reload-bad")
    open_key = tmp_path / "open.pem"
    shutil.copy(keys["ES256"], open_key)
    os.chmod(open_key, 0o644)
    with running_stack(build_dir, pg, keys, workers=2, settings={"token_ttl": "3600"}) as stack:
        tokend = stack.tokend
        config = str(tokend.config_path)
        good = dict(tokend.settings)
        pids = sorted(tokend.worker_pids())
        cases = [
            ({"tokne_ttl": "5"}, rf"{re.escape(config)}:\d+: unknown key 'tokne_ttl'"),
            ({"token_ttl": "forever"}, rf"{re.escape(config)}:\d+: key 'token_ttl': "),
            ({"signing_key_file": str(open_key), "token_ttl": "60"},
             rf"{re.escape(str(open_key))}: .*chmod 600 {re.escape(str(open_key))}"),
            ({"signing_key_file": str(tmp_path / "absent.pem")},
             rf"{re.escape(str(tmp_path / 'absent.pem'))}: cannot read: No such file"),
        ]
        for n, (change, pattern) in enumerate(cases, start=1):
            tokend.settings = dict(good, **change)
            tokend.write_config()
            reload_and_wait(tokend, n, failed=True)
            lines = log_lines(tokend, "reload failed")
            assert len(lines) == n, lines
            assert re.search(r"error: reload failed, the running workers keep the previous "
                             r"settings: " + pattern, lines[-1]), lines[-1]
            # Nothing changed: same workers, old settings, still answering.
            assert sorted(tokend.worker_pids()) == pids
            answer = issue(stack.port, *client)
            assert answer.status == 200 and answer.body["expires_in"] == 3600, answer
        # Fixed again, the next reload goes through.
        tokend.settings = dict(good, token_ttl="90")
        tokend.write_config()
        reload_and_wait(tokend, 1)
        wait_replaced(tokend, pids, 2)
        answer = issue(stack.port, *client)
        assert answer.status == 200 and answer.body["expires_in"] == 90, answer


def test_reload_keeps_what_needs_a_restart(build_dir, pg, keys, make_client):
    client = make_client("reload-restart")
    with running_stack(build_dir, pg, keys, workers=1) as stack:
        tokend = stack.tokend
        listen = tokend.settings["listen"]
        other = tokend.base_dir / "other.sock"
        tokend.settings.update(listen=f"unix:{other}", queue_capacity="1024", workers="2")
        tokend.write_config()
        reload_and_wait(tokend, 1)
        log = tokend.log()
        config = tokend.config_path
        assert (f"reload: listen changed in {config}; that needs a restart, keeping "
                f"listen = \"{listen}\"") in log, log
        assert (f"reload: queue_capacity changed in {config}; that needs a restart, keeping "
                "queue_capacity = 65536") in log, log
        # `workers` is not one of them: there are two now.
        wait_until(lambda: len(tokend.worker_pids()) == 2, RELOAD_TIMEOUT_S, message="2 workers")
        assert not other.exists()
        assert issue(stack.port, *client).status == 200
        # The segment is still the one named after the running `listen`.
        assert segment_path(shm_name_for_listen(listen)).exists()


# ---------------------------------------------------------------------------
# privileges (root only)
# ---------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def ids_of(pid):
    """(uid, gid, groups) of a process from /proc/PID/status: every uid and
    gid field (real, effective, saved, filesystem) must agree."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    uids, gids = set(fields["Uid"]), set(fields["Gid"])
    assert len(uids) == 1 and len(gids) == 1, (pid, fields["Uid"], fields["Gid"])
    return int(uids.pop()), int(gids.pop()), {int(g) for g in fields["Groups"]}


@pytest.fixture
def account():
    """The unprivileged account the tests switch to: (name, uid, gid)."""
    name = service_user()
    entry = pwd.getpwnam(name)
    return name, entry.pw_uid, entry.pw_gid


@contextmanager
def owned_dir(account):
    """A fresh directory owned by the account (tokend must remove its socket
    there as that user), with the ES256 test key copied in as `key.pem`,
    owned by the account with mode 0600."""
    _, uid, gid = account
    base = Path(tempfile.mkdtemp(prefix="tokend-priv-"))
    try:
        os.chown(base, uid, gid)
        os.chmod(base, 0o755)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def owned_key(base, keys, account, mode=0o600, owner=None):
    _, uid, gid = account
    key = base / "key.pem"
    shutil.copy(keys["ES256"], key)
    os.chown(key, *(owner or (uid, gid)))
    os.chmod(key, mode)
    return key


def make_tokend(cls, build_dir, base, pg, key, account, port=None, **settings):
    name, uid, gid = account
    tokend = cls(build_dir / "tokend", base / "tokend", issuer=f"http://127.0.0.1:{port or 1}",
                 database_url=pg.url, alg="ES256", key_path=key, workers=2,
                 settings={"user": name, **settings})
    os.chown(tokend.base_dir, uid, gid)
    return tokend


@needs_root
@pytest.mark.parametrize("launcher", ["master", "spawn-fcgi"])
def test_started_as_root_everything_runs_as_the_user(build_dir, pg, keys, make_client, account,
                                                     launcher):
    name, uid, gid = account
    client = make_client("priv")
    with owned_dir(account) as base:
        key = owned_key(base, keys, account)
        port = free_port()
        cls = SpawnFcgi if launcher == "spawn-fcgi" else Tokend
        tokend = make_tokend(cls, build_dir, base, pg, key, account, port)
        nginx = Nginx(base / "nginx", port, tokend.socket_path)
        try:
            tokend.start()
            nginx.start()
            flusher = wait_until(tokend.flusher_pid, START_TIMEOUT_S, message="the flusher")
            processes = [tokend.pid, flusher, *tokend.worker_pids()]
            assert [process_name(p) for p in processes[1:]] == \
                ["tokend-flusher"] + ["tokend-worker"] * 2
            for pid in processes:
                got_uid, got_gid, groups = ids_of(pid)
                assert (got_uid, got_gid) == (uid, gid), (pid, process_name(pid))
                assert 0 not in groups, (pid, groups)
            assert f"serving as user {name}" in tokend.log()
            answer = issue(port, *client)
            assert answer.status == 200, answer
            # spawn-fcgi's socket names the segment, not the ignored `listen`.
            segment = segment_path(shm_name_for_listen(f"unix:{tokend.socket_path}"))
            assert segment.stat().st_uid == uid
            if launcher == "master":
                assert tokend.socket_path.stat().st_uid == uid
            # A reload reads everything again as the user, and works.
            old = tokend.worker_pids()
            reload_and_wait(tokend, 1)
            for pid in wait_replaced(tokend, old, 2):
                assert ids_of(pid)[:2] == (uid, gid)
            assert issue(port, *client).status == 200
            nginx.stop()
            assert tokend.stop() == 0, tokend.log()
            assert not segment.exists(), "the user removes the segment root made"
            if launcher == "master":
                assert not tokend.socket_path.exists(), "the user removes the socket root made"
        finally:
            nginx.stop()
            tokend.stop()
            segment = segment_path(shm_name_for_listen(f"unix:{tokend.socket_path}"))
            if segment.exists():
                segment.unlink()


@needs_root
def test_flusher_service_started_as_root_runs_as_the_user(build_dir, pg, keys, account):
    name, uid, gid = account
    with owned_dir(account) as base:
        config = base / "flusher.conf"
        listen = f"unix:{base / 'unused.sock'}"
        config.write_text("issuer = https://auth.example.com\n"
                          f"database_url = {pg.url}\nsigning_key_file = {base / 'absent.pem'}\n"
                          f"listen = {listen}\nqueue_capacity = 16\nuser = {name}\n")
        segment = segment_path(shm_name_for_listen(listen))
        service = subprocess.Popen([build_dir / "tokend", "--flusher", "-c", config],
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            wait_until(lambda: service.poll() is not None or segment.exists(), START_TIMEOUT_S,
                       message="the flusher service's segment")
            wait_until(lambda: service.poll() is not None or ids_of(service.pid)[0] == uid,
                       START_TIMEOUT_S, message="the switch to the user")
            assert service.poll() is None
            assert ids_of(service.pid)[:2] == (uid, gid)
            assert segment.stat().st_uid == uid
            service.send_signal(signal.SIGTERM)
            assert service.wait(timeout=COMMAND_TIMEOUT_S) == 0
        finally:
            if service.poll() is None:
                service.kill()
                service.wait()
            if segment.exists():
                segment.unlink()
        assert not segment.exists()
        assert f"serving as user {name}" in service.stderr.read()


def start_expecting_failure(tokend):
    """Runs `tokend -c CONF` (and -t) and returns their (exit codes, stderr)."""
    tokend.write_config()
    test = run([tokend.binary, "-t", "-c", tokend.config_path], check=False)
    start = run([tokend.binary, "-c", tokend.config_path], check=False, timeout=START_TIMEOUT_S)
    return (test.returncode, start.returncode), test.stderr + start.stderr


@needs_root
def test_root_without_user_is_refused(build_dir, pg, keys, account):
    with owned_dir(account) as base:
        key = owned_key(base, keys, account)
        tokend = make_tokend(Tokend, build_dir, base, pg, key, account)
        del tokend.settings["user"]
        codes, err = start_expecting_failure(tokend)
        assert codes == (1, 1), err
        message = (f"{tokend.config_path}: tokend was started as root and `user` is not set: "
                   "set `user` (and `group`) to the account it should serve as, or "
                   "`user = root` if running as root is really meant")
        assert err.count(message) == 2, err
        assert not tokend.socket_path.exists()


@needs_root
def test_key_file_open_to_others_is_refused(build_dir, pg, keys, account):
    with owned_dir(account) as base:
        key = owned_key(base, keys, account, mode=0o644)
        tokend = make_tokend(Tokend, build_dir, base, pg, key, account)
        codes, err = start_expecting_failure(tokend)
        assert codes == (1, 1), err
        assert err.count(f"{key}: private key is readable by group or others "
                         f"(chmod 600 {key})") == 2, err
        assert not tokend.socket_path.exists()


@needs_root
def test_key_file_the_user_cannot_read_is_refused(build_dir, pg, keys, account):
    name = account[0]
    with owned_dir(account) as base:
        key = owned_key(base, keys, account, owner=(0, 0))  # root's, mode 0600
        tokend = make_tokend(Tokend, build_dir, base, pg, key, account)
        codes, err = start_expecting_failure(tokend)
        assert codes == (1, 1), err
        assert err.count(f"as user {name}: {key}: cannot read: Permission denied (tokend "
                         f"serves as {name} and reads its configuration and keys again as "
                         f"{name} on every reload") == 2, err
        assert not tokend.socket_path.exists()
        assert not segment_path(segment_name(tokend)).exists()
