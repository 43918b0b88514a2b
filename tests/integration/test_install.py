"""What `make install` lays out, and the systemd units it installs run
against a real tokend (issue 7).

systemd does not run in the test container, so the units are checked the
ways that need no PID 1: `systemd-analyze verify` parses them (every key
and value, the binaries they name), and their command lines, read from
the installed files, are run the way systemd would run them: ExecStart
with $NOTIFY_SOCKET pointing at a socket of the test (tokend must send
READY=1 from its main pid once its workers serve, RELOADING=1/READY=1
around a reload, STOPPING=1), User= emulated with setpriv when the suite
runs as root, ExecReload lines in order with $MAINPID, KillSignal to stop;
tokend.socket through systemd-socket-activate, which passes the socket
exactly as systemd does (LISTEN_FDS, LISTEN_PID, fd 3)."""

import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import (
    REPO_ROOT, START_TIMEOUT_S, STOP_TIMEOUT_S, Nginx, _spawn, _terminate, child_pids, free_port,
    issue, process_name, run, segment_path, service_user, shm_name_for_listen, wait_until)

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
SETPRIV = shutil.which("setpriv")
UNITS = ("tokend.service", "tokend-flusher.service", "tokend.socket")
DIRS = ("prefix", "bindir", "sbindir", "sysconfdir", "pkgdatadir", "mandir", "docdir",
        "systemdsystemunitdir", "sysusersdir")


@pytest.fixture(scope="module")
def installed(build_dir, tmp_path_factory):
    """`make install DESTDIR=<tmp>` of the build under test: (destdir, dirs),
    dirs mapping each installation directory variable to its value."""
    destdir = tmp_path_factory.mktemp("destdir")
    run(["make", "-s", "-C", build_dir, "install", f"DESTDIR={destdir}"], timeout=300)
    printed = run(["make", "-s", "-C", build_dir, "--eval", "print-%: ; @echo '$*=$($*)'",
                   *[f"print-{name}" for name in DIRS]]).stdout
    dirs = dict(line.split("=", 1) for line in printed.splitlines())
    assert set(dirs) == set(DIRS), printed
    return destdir, dirs


def at(installed, dir_name, *parts):
    destdir, dirs = installed
    return Path(str(destdir) + dirs[dir_name]).joinpath(*parts)


def test_make_install_layout(installed):
    destdir, dirs = installed
    for program in (at(installed, "sbindir", "tokend"), at(installed, "bindir", "tokenctl")):
        assert os.access(program, os.X_OK), program
    assert run([at(installed, "sbindir", "tokend"), "-v"]).stdout.startswith("tokend ")
    expected = {
        at(installed, "sysconfdir", "tokend.conf.example"): REPO_ROOT / "etc/tokend.conf.example",
        at(installed, "mandir", "man8", "tokend.8"): REPO_ROOT / "man/tokend.8",
        at(installed, "mandir", "man5", "tokend.conf.5"): REPO_ROOT / "man/tokend.conf.5",
        at(installed, "mandir", "man1", "tokenctl.1"): REPO_ROOT / "man/tokenctl.1",
        at(installed, "pkgdatadir", "nginx", "tokend.conf"): REPO_ROOT / "nginx-conf/tokend.conf",
        at(installed, "docdir", "README.md"): REPO_ROOT / "README.md",
        at(installed, "systemdsystemunitdir", "tokend.socket"): REPO_ROOT / "systemd/tokend.socket",
        at(installed, "sysusersdir", "tokend.conf"): REPO_ROOT / "systemd/sysusers.d/tokend.conf",
    }
    for sql in (REPO_ROOT / "sql").glob("*.sql"):
        expected[at(installed, "pkgdatadir", "sql", sql.name)] = sql
    for conf in (REPO_ROOT / "apache-conf").glob("*.conf"):
        expected[at(installed, "pkgdatadir", "apache", conf.name)] = conf
    for path, source in expected.items():
        assert path.read_bytes() == source.read_bytes(), path
    # The .service files carry the installed paths, and nothing else
    # differs from their templates.
    for unit in ("tokend.service", "tokend-flusher.service"):
        text = at(installed, "systemdsystemunitdir", unit).read_text()
        template = (REPO_ROOT / "systemd" / f"{unit}.in").read_text()
        assert not re.search(r"@[a-z]+@", text), unit
        assert text == template.replace("@sbindir@", dirs["sbindir"]).replace(
            "@sysconfdir@", dirs["sysconfdir"])
        assert f"ExecStart={dirs['sbindir']}/tokend " in text
    # Nothing else was installed.
    files = {p for p in Path(destdir).rglob("*") if p.is_file()}
    programs = {at(installed, "sbindir", "tokend"), at(installed, "bindir", "tokenctl")}
    units = {at(installed, "systemdsystemunitdir", u) for u in UNITS}
    assert files == set(expected) | programs | units, sorted(map(str, files))


def test_man_pages_format_cleanly(installed):
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff not installed")
    for page in ("man8/tokend.8", "man5/tokend.conf.5", "man1/tokenctl.1"):
        result = run([groff, "-man", "-Tutf8", "-ww", "-z", at(installed, "mandir", page)],
                     check=False)
        assert result.returncode == 0 and result.stderr == "", (page, result.stderr)


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verifies_the_units(installed, tmp_path):
    """systemd-analyze verify prints nothing for a good unit; a bad key or
    value, or a command that does not exist, is a line of output. The
    installed copies name their binaries at their final paths, so the
    copies checked here point into DESTDIR."""
    destdir, _ = installed
    copies = []
    for unit in UNITS:
        text = at(installed, "systemdsystemunitdir", unit).read_text()
        for name in ("sbindir", "sysconfdir"):
            path = installed[1][name]
            text = text.replace(f"={path}/", f"={destdir}{path}/")
        copy = tmp_path / unit
        copy.write_text(text)
        copies.append(copy)
    result = run([SYSTEMD_ANALYZE, "verify", "--man=no", *copies], check=False)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result
    # The check can fail: a misspelt value is reported.
    broken = tmp_path / "tokend.service"
    broken.write_text(broken.read_text().replace("Type=notify", "Type=notfy"))
    result = run([SYSTEMD_ANALYZE, "verify", "--man=no", broken], check=False)
    assert "Failed to parse service type" in result.stdout + result.stderr


# ---------------------------------------------------------------------------
# the units' command lines against a real tokend
# ---------------------------------------------------------------------------

def unit_settings(path):
    """The [Service]/[Socket] assignments of a unit file: key -> list of
    values (ExecReload may be given several times)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


class NotifySocket:
    """The socket systemd listens on for sd_notify messages ($NOTIFY_SOCKET),
    recording each message with the pid that sent it (SCM_CREDENTIALS, as
    systemd checks NotifyAccess=main)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(str(path))
        os.chmod(path, 0o777)  # the service may run as another user
        self.messages = []  # (pid, {key: value})
        self.seen = 0

    def _receive(self, timeout_s):
        self.sock.settimeout(timeout_s)
        data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", payload[:12])[0]
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append((pid, fields))

    def next_with(self, key, timeout_s=START_TIMEOUT_S):
        """The next message (after the ones returned before) that sets
        `key`; (pid, fields)."""
        deadline = time.monotonic() + timeout_s
        while True:
            while self.seen < len(self.messages):
                pid, fields = self.messages[self.seen]
                self.seen += 1
                if key in fields:
                    return pid, fields
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key} notification in {timeout_s}s: {self.messages}")
            try:
                self._receive(left)
            except socket.timeout:
                pass

    def close(self):
        self.sock.close()


@contextmanager
def service_dir(keys):
    """A directory for one instance with the ES256 key, both owned by the
    account the unit runs tokend as (User=): the service user when the
    suite runs as root, else ourselves. Yields (dir, key, run_as), run_as
    being the command prefix that plays User=."""
    base = Path(tempfile.mkdtemp(prefix="tokend-unit-"))
    key = base / "key.pem"
    shutil.copy(keys["ES256"], key)
    os.chmod(key, 0o600)
    run_as = []
    try:
        if os.geteuid() == 0:
            if SETPRIV is None:
                pytest.skip("setpriv (util-linux) not installed")
            entry = pwd.getpwnam(service_user())
            for path in (base, key):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            run_as = [SETPRIV, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                      "--init-groups", "--"]
        os.chmod(base, 0o755)
        yield base, key, run_as
    finally:
        shutil.rmtree(base, ignore_errors=True)


def write_config(base, key, pg, issuer, **extra):
    config = base / "tokend.conf"
    settings = {"listen": f"unix:{base / 'tokend.sock'}", "listen_mode": "0666", "workers": "2",
                "issuer": issuer, "database_url": pg.url, "signing_key_file": str(key),
                "db_timeout_ms": "5000", "shutdown_timeout": "10s", **extra}
    config.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    os.chmod(config, 0o644)
    return config


def command_of(installed, line, config, mainpid=None):
    """A unit's command line with the installed tokend and configuration
    replaced by the ones of the test (and $MAINPID by `mainpid`)."""
    destdir, dirs = installed
    line = line.replace(f"{dirs['sysconfdir']}/tokend.conf", str(config))
    line = line.replace(f"{dirs['sbindir']}/tokend", f"{destdir}{dirs['sbindir']}/tokend")
    if mainpid is not None:
        line = line.replace("$MAINPID", str(mainpid))
    assert "$" not in line, line
    return shlex.split(line)


def worker_pids(pid):
    return sorted(p for p in child_pids(pid) if process_name(p) == "tokend-worker")


def test_tokend_service_command_lines(installed, pg, keys, make_client, tmp_path):
    unit = unit_settings(at(installed, "systemdsystemunitdir", "tokend.service"))
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert unit["User"] == ["tokend"] and unit["KillMode"] == ["mixed"]
    assert len(unit["ExecReload"]) == 2 and unit["ExecReload"][1] == "/bin/kill -HUP $MAINPID"
    kill_signal = getattr(signal, unit["KillSignal"][0])
    client = make_client("unit")
    port = free_port()
    with service_dir(keys) as (base, key, run_as):
        config = write_config(base, key, pg, f"http://127.0.0.1:{port}")
        notify = NotifySocket(base / "notify")
        proc = _spawn(run_as + command_of(installed, unit["ExecStart"][0], config),
                      base / "tokend.log", env={**os.environ, "NOTIFY_SOCKET": str(notify.path)})
        nginx = Nginx(tmp_path / "nginx", port, base / "tokend.sock")
        try:
            pid, ready = notify.next_with("READY")
            assert pid == proc.pid, "READY=1 must come from the main process"
            assert len(worker_pids(proc.pid)) == 2, "READY=1 before the workers run"
            assert "serving" in ready["STATUS"]
            nginx.start()
            assert issue(port, *client).status == 200

            # systemctl reload: the check, then SIGHUP; both as User=.
            old = worker_pids(proc.pid)
            for line in unit["ExecReload"]:
                result = run(run_as + command_of(installed, line, config, proc.pid), check=False)
                assert result.returncode == 0, (line, result.stderr)
            pid, reloading = notify.next_with("RELOADING")
            assert pid == proc.pid and int(reloading["MONOTONIC_USEC"]) > 0
            pid, ready = notify.next_with("READY", timeout_s=30)
            assert pid == proc.pid
            wait_until(lambda: not set(old) & set(worker_pids(proc.pid)) and
                       len(worker_pids(proc.pid)) == 2, 30, message="the workers replaced")
            assert issue(port, *client).status == 200

            # A broken configuration fails the reload's first command, so
            # systemctl reload fails and the SIGHUP is never sent.
            text = config.read_text()
            config.write_text(text + "workers = many\n")
            result = run(run_as + command_of(installed, unit["ExecReload"][0], config, proc.pid),
                         check=False)
            assert result.returncode == 1 and "key 'workers'" in result.stderr, result
            config.write_text(text)

            # systemctl stop: KillSignal to the main process.
            proc.send_signal(kill_signal)
            pid, _ = notify.next_with("STOPPING")
            assert pid == proc.pid
            code, by_itself = _terminate(proc, kill_signal, timeout_s=STOP_TIMEOUT_S)
            assert (code, by_itself) == (0, True)
            assert not (base / "tokend.sock").exists()
        finally:
            nginx.stop()
            _terminate(proc, signal.SIGTERM)
            notify.close()
            segment = segment_path(shm_name_for_listen(f"unix:{base / 'tokend.sock'}"))
            if segment.exists():
                segment.unlink()


def test_tokend_flusher_service_command_line(installed, pg, keys, tmp_path):
    unit = unit_settings(at(installed, "systemdsystemunitdir", "tokend-flusher.service"))
    assert unit["Type"] == ["notify"] and "ExecReload" not in unit
    with service_dir(keys) as (base, key, run_as):
        config = write_config(base, key, pg, "https://auth.example.com", queue_capacity="16")
        segment = segment_path(shm_name_for_listen(f"unix:{base / 'tokend.sock'}"))
        notify = NotifySocket(base / "notify")
        proc = _spawn(run_as + command_of(installed, unit["ExecStart"][0], config),
                      base / "flusher.log", env={**os.environ, "NOTIFY_SOCKET": str(notify.path)})
        try:
            pid, ready = notify.next_with("READY")
            assert pid == proc.pid and segment.exists()
            proc.send_signal(getattr(signal, unit["KillSignal"][0]))
            assert notify.next_with("STOPPING")[0] == proc.pid
            assert _terminate(proc, signal.SIGTERM) == (0, True)
            assert not segment.exists()
        finally:
            _terminate(proc, signal.SIGKILL)
            notify.close()
            if segment.exists():
                segment.unlink()


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate not installed")
def test_tokend_socket_activation(installed, pg, keys, make_client, tmp_path):
    socket_unit = unit_settings(at(installed, "systemdsystemunitdir", "tokend.socket"))
    assert socket_unit["ListenStream"] == ["/run/tokend/tokend.sock"]
    service = unit_settings(at(installed, "systemdsystemunitdir", "tokend.service"))
    client = make_client("socket-unit")
    port = free_port()
    with service_dir(keys) as (base, key, run_as):
        # The unit's path is the system's; the test's socket lives in its
        # directory. `listen` points elsewhere to show it is ignored.
        sock = base / "activated.sock"
        config = write_config(base, key, pg, f"http://127.0.0.1:{port}",
                              listen=f"unix:{base / 'ignored.sock'}")
        proc = _spawn([SOCKET_ACTIVATE, "-l", sock, *run_as,
                       *command_of(installed, service["ExecStart"][0], config)],
                      base / "tokend.log")
        nginx = Nginx(tmp_path / "nginx", port, sock)
        segment = segment_path(shm_name_for_listen(f"unix:{sock}"))
        try:
            wait_until(sock.exists, START_TIMEOUT_S, message="the activation socket")
            nginx.start()
            # The first connection starts tokend, which takes it from fd 3.
            assert issue(port, *client).status == 200
            log = (base / "tokend.log").read_text()
            assert (f"using the FastCGI socket passed by systemd (listen = "
                    f"unix:{base / 'ignored.sock'} is ignored)") in log, log
            assert process_name(proc.pid) == "tokend" and len(worker_pids(proc.pid)) == 2
            assert not (base / "ignored.sock").exists() and segment.exists()
            nginx.stop()
            assert _terminate(proc, signal.SIGTERM) == (0, True)
            # The socket is systemd's: tokend leaves it in place.
            assert sock.exists() and not segment.exists()
        finally:
            nginx.stop()
            _terminate(proc, signal.SIGKILL)
            if segment.exists():
                segment.unlink()
