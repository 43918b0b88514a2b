"""The four deployments of README's "Deploying" part, as test_deployment.py
starts them: tokend's master or spawn-fcgi behind nginx, tokend's master
behind Apache's mod_proxy_fcgi, and Apache's mod_fcgid running
`tokend --worker` processes beside the `tokend --flusher` service.

Apache comes from Debian's packages and runs the SHIPPED site files
(apache-conf/, rewritten for a free 127.0.0.1 port and the test's paths by
scripts/apache-conf-for), like conftest.Nginx runs nginx-conf/tokend.conf.
When the suite runs as root, everything that README runs as an unprivileged
user runs as conftest.service_user(): Apache's children (hence mod_fcgid's
tokend processes), tokend under spawn-fcgi -u, and the flusher service.
Those get copies of the key and the admin token they can read (tokend
wants them mode 0600), and a directory they can traverse.

Every process is stopped by the context manager that started it (and, for
an interrupted run, by an atexit backstop), so nothing outlives a test.
"""

import atexit
import grp
import http.client
import os
import pwd
import re
import shutil
import signal
import tempfile
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

from conftest import (
    HTTP_TIMEOUT_S, REPO_ROOT, SPAWN_FCGI, START_TIMEOUT_S, STOP_TIMEOUT_S, TRANSPORT, Nginx,
    Response, Tokend, _spawn, _terminate, child_pids, clean_env, free_port, process_name, run,
    segment_path, service_user, wait_until, wait_until_serving)

APACHE2 = shutil.which("apache2") or "/usr/sbin/apache2"
APACHE_CONF_FOR = REPO_ROOT / "scripts" / "apache-conf-for"
# mod_proxy_fcgi's connection reuse is only safe with the event transport
# (see apache-conf/tokend-proxy-fcgi.conf), like nginx's kept connections.
DEFAULT_APACHE_REUSE = "off" if TRANSPORT == "libfcgi" else "shipped"


def group_of(user):
    """The name of `user`'s primary group."""
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def hand_over(path, directory, user):
    """A copy of the secret file `path` in `directory`, mode 0600, owned by
    `user` (None: by us), for a process running as that user."""
    copy = Path(directory) / Path(path).name
    shutil.copyfile(path, copy)
    os.chmod(copy, 0o600)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(copy, entry.pw_uid, entry.pw_gid)
    return copy


def request_from(source, port, method, path, headers=None, timeout=HTTP_TIMEOUT_S):
    """One request to 127.0.0.1:port from the local address `source` (any
    127.x.y.z is ours on Linux: a client the web server must not take for
    127.0.0.1)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


# -- Apache --

class Apache:
    """Apache 2.4 running a shipped site: scripts/apache-conf-for writes
    <dir>/apache2.conf around apache-conf/tokend-<layout>.conf. `layout`
    "proxy-fcgi" (target: tokend's socket path; `reuse` "shipped", "on",
    "off", None = DEFAULT_APACHE_REUSE) or "fcgid" (target: the command
    mod_fcgid runs). Children run as `user` when we are root."""

    def __init__(self, base_dir, port, layout, target, reuse=None, user=None):
        self.base_dir = Path(base_dir)
        self.port = port
        self.layout = layout
        self.target = str(target)
        self.reuse = (DEFAULT_APACHE_REUSE if reuse is None else reuse) \
            if layout == "proxy-fcgi" else None
        self.user = user
        self.conf_path = self.base_dir / "apache2.conf"
        self.site_path = self.base_dir / "tokend.conf"
        self.error_log = self.base_dir / "logs" / "error.log"
        self.proc = None

    def configure(self):
        env = clean_env()
        if self.user is not None:
            env.update(APACHE_RUN_USER=self.user, APACHE_RUN_GROUP=group_of(self.user))
        args = [APACHE_CONF_FOR, self.layout, f"127.0.0.1:{self.port}", self.target,
                self.base_dir] + ([self.reuse] if self.reuse else [])
        run(args, env=env)

    def start(self):
        self.configure()
        self.proc = _spawn([APACHE2, "-f", self.conf_path, "-DFOREGROUND"],
                           self.base_dir / "apache2.stderr", env=clean_env(LANG="C"))
        try:
            wait_until_serving(self.proc, self.port, self.log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """SIGTERM: Apache stops its children, and mod_fcgid its processes."""
        if self.proc is not None:
            _terminate(self.proc, signal.SIGTERM)

    def log(self):
        text = ""
        for path in (self.base_dir / "apache2.stderr", self.error_log):
            try:
                text += path.read_text(errors="replace")
            except OSError:
                pass
        return text


# -- tokend under spawn-fcgi, started as README says --

_detached_to_kill = []


@atexit.register
def _kill_leftover_detached():
    # Backstop for interrupted sessions; SpawnedMaster.stop normally does this.
    for pid in _detached_to_kill:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def _gone(pid):
    """True once `pid` has exited (a zombie waiting for its reaper counts)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class SpawnedMaster:
    """tokend started with README's exact spawn-fcgi line, the test's paths
    in it:

        spawn-fcgi -s SOCKET -u USER -g GROUP -- TOKEND -c CONF

    spawn-fcgi binds the socket, drops to USER:GROUP, starts tokend's master
    with the socket on fd 0 and exits, printing the master's pid (-u/-g are
    left out when we are not root: only root can change user). The master
    is not our child; it is stopped by pid. `tokend` is the Tokend whose
    configuration it runs (its `listen` is never bound)."""

    def __init__(self, tokend, user=None):
        self.tokend = tokend
        self.user = user
        self.socket_path = tokend.base_dir / "spawned.sock"
        self.pid = None

    def command(self):
        drop = ["-u", self.user, "-g", group_of(self.user)] if self.user else []
        return [SPAWN_FCGI, "-s", self.socket_path, *drop, "--", self.tokend.binary,
                "-c", self.tokend.config_path]

    def start(self):
        self.tokend.write_config()
        result = run(self.command(), env=clean_env())
        found = re.search(r"child spawned successfully: PID: (\d+)", result.stdout + result.stderr)
        assert found, f"spawn-fcgi said: {result.stdout}{result.stderr}"
        self.pid = int(found.group(1))
        _detached_to_kill.append(self.pid)
        try:
            wait_until(lambda: _gone(self.pid) or len(self.worker_pids()) == self.tokend.workers,
                       START_TIMEOUT_S, message=f"{self.tokend.workers} workers under spawn-fcgi")
            assert not _gone(self.pid), "tokend exited at start (spawn-fcgi sends its log nowhere)"
        except BaseException:
            self.stop()
            raise
        return self

    def worker_pids(self):
        return [p for p in child_pids(self.pid) if process_name(p) == "tokend-worker"]

    def owner(self):
        """The user the master runs as."""
        return pwd.getpwuid(os.stat(f"/proc/{self.pid}").st_uid).pw_name

    def stop(self):
        """SIGTERM to the master, as a service manager would; SIGKILL to its
        session when it does not stop in time."""
        if self.pid is None or _gone(self.pid):
            return
        os.kill(self.pid, signal.SIGTERM)
        try:
            wait_until(lambda: _gone(self.pid), STOP_TIMEOUT_S, message="tokend to stop")
        except AssertionError:
            os.killpg(self.pid, signal.SIGKILL)
            raise
        finally:
            if self.pid in _detached_to_kill:
                _detached_to_kill.remove(self.pid)


# -- the mod_fcgid layout's flusher service --

class FlusherService:
    """`tokend --flusher -c CONF` in the foreground, as `user` (README: the
    same user as Apache's, since the workers open its segment)."""

    def __init__(self, binary, config_path, log_path, user=None):
        self.binary = binary
        self.config_path = config_path
        self.log_path = log_path
        self.user = user
        self.proc = None
        self.final_log = None  # the log once stopped (its directory may be gone)

    def start(self, segment):
        ids = {}
        if self.user is not None:
            ids = {"user": self.user, "group": group_of(self.user), "extra_groups": []}
        self.proc = _spawn([self.binary, "--flusher", "-c", self.config_path], self.log_path,
                           cwd="/", env=clean_env(), **ids)
        wait_until(lambda: self.proc.poll() is not None or
                   "flusher running for shared memory segment" in self.log(),
                   START_TIMEOUT_S, message="the flusher service to start")
        assert self.proc.poll() is None, f"tokend --flusher exited:\n{self.log()}"
        assert segment_path(segment).exists()
        return self

    def stop(self):
        """SIGTERM: it writes what is queued and exits 0. Returns the exit code."""
        if self.proc is None:
            return None
        code, _ = _terminate(self.proc, signal.SIGTERM)
        self.final_log = self.log()
        return code

    def log(self):
        if self.final_log is not None:
            return self.final_log
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""


# -- the four deployments --

class Site:
    """One running deployment: .port, .issuer, .layout, the parts (.tokend
    configuration, .web server, .spawned or .flusher where they exist) and
    .logs() for failure messages."""

    def __init__(self, layout, port, issuer, tokend, web, spawned=None, flusher=None):
        self.layout = layout
        self.port = port
        self.issuer = issuer
        self.tokend = tokend
        self.web = web
        self.spawned = spawned
        self.flusher = flusher

    def logs(self):
        parts = [f"--- web server:\n{self.web.log()[-3000:]}"]
        if self.spawned is None:
            parts.append(f"--- tokend:\n{self.tokend.log()[-3000:]}")
        if self.flusher is not None:
            parts.append(f"--- flusher:\n{self.flusher.log()[-3000:]}")
        return "\n".join(parts)


LAYOUTS = ("nginx-master", "nginx-spawn-fcgi", "apache-proxy-fcgi", "apache-fcgid")


@contextmanager
def deployment(layout, build_dir, pg, key_path, *, admin_token_path=None, alg="ES256",
               workers=2, settings=None, start_flusher=True):
    """Starts tokend and its web server as `layout` (one of LAYOUTS) says,
    with the key at `key_path` and the admin token file `admin_token_path`
    (copies for the service user), in a fresh directory (apache-fcgid
    without its flusher service when `start_flusher` is false); yields a Site;
    stops everything (web server first, then tokend or the flusher) and
    removes the directory and the shared-memory segment."""
    assert layout in LAYOUTS, layout
    user = service_user()
    base_dir = Path(tempfile.mkdtemp(prefix=f"tokend-{layout}-"))
    os.chmod(base_dir, 0o755)  # the service user reaches sockets and files in it
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    runs_as_user = layout in ("nginx-spawn-fcgi", "apache-fcgid")
    secrets_dir = base_dir / "secrets"
    secrets_dir.mkdir(mode=0o755)
    owner = user if runs_as_user else None
    extra = dict(settings or {})
    if admin_token_path is not None:
        extra["admin_token_file"] = str(hand_over(admin_token_path, secrets_dir, owner))
        extra.setdefault("admin_rate_limit", "1000")
    shm_name = f"/tokend.it-{layout}-{uuid.uuid4().hex[:8]}"
    extra.setdefault("shm_name", shm_name)
    binary = build_dir / "tokend"
    if layout == "apache-fcgid":
        # Apache's user runs it: a copy it can surely reach.
        (base_dir / "bin").mkdir(mode=0o755)
        binary = base_dir / "bin" / "tokend"
        shutil.copy2(build_dir / "tokend", binary)
        os.chmod(binary, 0o755)
    tokend = Tokend(binary, base_dir / "tokend", issuer=issuer, database_url=pg.url, alg=alg,
                    key_path=hand_over(key_path, secrets_dir, owner), workers=workers,
                    settings=extra)
    os.chmod(tokend.base_dir, 0o755)
    try:
        with ExitStack() as stack:
            spawned = flusher = None
            if layout == "nginx-master":
                stack.callback(tokend.stop)
                tokend.start()
                web = Nginx(base_dir / "nginx", port, tokend.socket_path)
            elif layout == "nginx-spawn-fcgi":
                tokend.settings["listen"] = f"unix:{tokend.base_dir / 'ignored.sock'}"
                spawned = SpawnedMaster(tokend, user)
                stack.callback(spawned.stop)
                spawned.start()
                web = Nginx(base_dir / "nginx", port, spawned.socket_path)
            elif layout == "apache-proxy-fcgi":
                stack.callback(tokend.stop)
                tokend.start()
                web = Apache(base_dir / "apache", port, "proxy-fcgi", tokend.socket_path,
                             user=user)
            else:
                tokend.write_config()
                if start_flusher:
                    flusher = FlusherService(binary, tokend.config_path,
                                             base_dir / "flusher.log", user)
                    stack.callback(flusher.stop)
                    flusher.start(tokend.settings["shm_name"])
                web = Apache(base_dir / "apache", port, "fcgid",
                             f"{binary} --worker -c {tokend.config_path}", user=user)
            web.base_dir.mkdir(parents=True)
            os.chmod(web.base_dir, 0o755)
            stack.callback(web.stop)
            web.start()
            yield Site(layout, port, issuer, tokend, web, spawned, flusher)
    finally:
        try:
            segment_path(tokend.settings["shm_name"]).unlink()
        except FileNotFoundError:
            pass
        shutil.rmtree(base_dir, ignore_errors=True)
