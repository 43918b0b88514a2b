"""Shared fixtures of tokend's integration suite.

The suite drives the real programs (tokenctl, later tokend behind nginx)
against a real PostgreSQL. Everything runs in private temporary directories
on free localhost ports, so the suite needs no system service and leaves
nothing behind, even when a test fails.

Sections of this file:
  1. paths and settings            REPO_ROOT, PG_BIN, build_dir fixture
  2. helpers                       free_port, wait_for_port,
                                   wait_for_unix_socket, run
  3. PostgreSQL                    PgCluster, the session-scoped `pg` fixture
  4. tokenctl                      the `tokenctl` fixture, migrated databases
  (add tokend / nginx fixtures as new sections below, reusing the helpers)

Settings from the environment:
  TOKEND_BUILD_DIR   where the built binaries are (default: the repo root)
  TOKEND_PG_BIN      PostgreSQL's bin directory (default: version 15's)
  TOKEND_TEST_USER   the non-root user PostgreSQL runs as when the suite
                     runs as root (default: tokend-test, else postgres;
                     tokend-test is created with useradd when neither exists)

Run:  TOKEND_BUILD_DIR=/path/to/build /usr/bin/python3 -m pytest tests/integration
"""

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

# ---------------------------------------------------------------------------
# 1. paths and settings
# ---------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = REPO_ROOT / "sql"
PG_BIN = Path(os.environ.get("TOKEND_PG_BIN", "/usr/lib/postgresql/15/bin"))
# Every subprocess gets a deadline: a hung test is a failed test.
COMMAND_TIMEOUT_S = 60
# The FastCGI transport every tokend under test uses unless a test says
# otherwise: scripts/test runs the suite once per transport. With libfcgi,
# nginx runs the shipped block without kept connections (see
# nginx-conf/tokend.conf for why).
TRANSPORT = os.environ.get("TOKEND_TRANSPORT", "event")
assert TRANSPORT in ("event", "libfcgi"), f"TOKEND_TRANSPORT={TRANSPORT!r}"
DEFAULT_NGINX_KEEPALIVE = "off" if TRANSPORT == "libfcgi" else "shipped"
# tokend refuses to run as root without `user`; the suite (root in CI)
# says `user = root` so the files it makes need no chown. The tests of the
# switch to another user (test_service.py) set `user` themselves.
RUN_AS_ROOT = {"user": "root"} if os.geteuid() == 0 else {}
# Environment variables that would change what the programs under test do.
SCRUBBED_ENV = ("DATABASE_URL", "TOKEND_SQL_DIR", "PGHOST", "PGPORT", "PGUSER",
                "PGDATABASE", "PGPASSWORD", "PGSERVICE", "PGOPTIONS")


def clean_env(**extra):
    """os.environ without the variables above, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def build_dir():
    """Directory holding the built tokend and tokenctl binaries."""
    path = Path(os.environ.get("TOKEND_BUILD_DIR", REPO_ROOT)).resolve()
    if not (path / "tokenctl").is_file():
        pytest.fail(f"no tokenctl in {path}: build first and set TOKEND_BUILD_DIR")
    return path


# ---------------------------------------------------------------------------
# 2. helpers
# ---------------------------------------------------------------------------

def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, host="127.0.0.1", timeout_s=30.0):
    """Waits until a TCP connect to host:port succeeds; raises on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")
            time.sleep(0.05)


def wait_until_serving(proc, port, log):
    """Waits until 127.0.0.1:port accepts connections (a web server just
    started as `proc`). Raises RuntimeError with log() if proc exits
    first, or the connection error after START_TIMEOUT_S."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}:\n{log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_for_unix_socket(path, timeout_s=30.0):
    """Waits until a connect to the unix socket at `path` succeeds."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(path))
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {path} after {timeout_s}s")
            time.sleep(0.05)


def run(args, check=True, timeout=COMMAND_TIMEOUT_S, **kwargs):
    """subprocess.run with text output captured and a deadline; on failure
    (check=True) the exception message carries stdout and stderr."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} exited {result.returncode}\n"
                           f"stdout: {result.stdout}\nstderr: {result.stderr}")
    return result


def service_user():
    """The user to run servers as: None when not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("TOKEND_TEST_USER")
    candidates = [wanted] if wanted else ["tokend-test", "postgres"]
    for name in candidates:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    name = candidates[0]
    run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name])
    return name


def as_user(user, args):
    """`args` run as `user` (or as is when user is None)."""
    return list(args) if user is None else ["runuser", "-u", user, "--", *args]


# ---------------------------------------------------------------------------
# 3. PostgreSQL
# ---------------------------------------------------------------------------

class PgCluster:
    """A private PostgreSQL cluster: data, socket and log in one temp dir.

    Listens on 127.0.0.1:<port> and on a unix socket in <base>/socket.
    Authentication: trust for the superuser `postgres` (and on the socket),
    scram-sha-256 for every other role over TCP, so tests can also exercise
    passwords. fsync is off: the data is thrown away anyway.
    """

    SUPERUSER = "postgres"

    def __init__(self, base_dir, user, dbname="tokend"):
        self.base_dir = Path(base_dir)
        self.user = user
        self.dbname = dbname
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "socket"
        self.log_file = self.base_dir / "postgresql.log"
        self.port = free_port()
        self.running = False

    # -- lifecycle --

    def _pg(self, tool, *args, check=True, timeout=COMMAND_TIMEOUT_S):
        return run(as_user(self.user, [PG_BIN / tool, *args]), check=check, timeout=timeout,
                   cwd=self.base_dir, env=clean_env(LC_ALL="C"))

    def init(self):
        self.socket_dir.mkdir()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._pg("initdb", "-D", self.data_dir, "-U", self.SUPERUSER, "-E", "UTF8",
                 "--no-locale", "--no-sync", "--auth=trust")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# tokend integration tests\n"
                       "listen_addresses = '127.0.0.1'\n"
                       f"port = {self.port}\n"
                       f"unix_socket_directories = '{self.socket_dir}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                       "max_connections = 100\n")
        with open(self.data_dir / "pg_hba.conf", "w") as hba:
            hba.write("local all all trust\n"
                      f"host all {self.SUPERUSER} 127.0.0.1/32 trust\n"
                      "host all all 127.0.0.1/32 scram-sha-256\n")

    def start(self):
        """Starts the server and waits until it accepts connections."""
        result = self._pg("pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-w",
                          "-t", "60", "start", check=False, timeout=90)
        if result.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start:\n{result.stderr}\n{self.log_tail()}")
        self.running = True
        wait_for_port(self.port)

    def stop(self, mode="fast"):
        """Stops the server (fast: disconnects clients, clean shutdown)."""
        if self.running:
            self._pg("pg_ctl", "-D", self.data_dir, "-m", mode, "-w", "-t", "60", "stop",
                     check=False, timeout=90)
            self.running = False

    def destroy(self):
        """Stops the server at once and removes every file. Idempotent."""
        self.stop(mode="immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    # -- access --

    def url_for(self, dbname=None, user=None, password=None):
        user = user or self.SUPERUSER
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname or self.dbname}"

    @property
    def url(self):
        """URL of the `tokend` database as the superuser."""
        return self.url_for()

    def connect(self, dbname=None):
        conn = psycopg2.connect(self.url_for(dbname), connect_timeout=10)
        conn.autocommit = True
        return conn

    def psql(self, sql, params=None, dbname=None):
        """Runs one statement; returns its rows as a list of tuples ([] when
        it returns none)."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description is not None else []
        finally:
            conn.close()

    def create_database(self, dbname):
        """Creates an empty database (dropping one of that name first) and
        returns its URL."""
        self.psql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)', dbname="postgres")
        self.psql(f'CREATE DATABASE "{dbname}"', dbname="postgres")
        return self.url_for(dbname)


_clusters_to_destroy = []


@atexit.register
def _destroy_leftover_clusters():
    # Backstop for interrupted sessions; the fixture normally does this.
    for cluster in _clusters_to_destroy:
        cluster.destroy()


@pytest.fixture(scope="session")
def pg():
    """A running private PostgreSQL with an empty database `tokend`.

    .url, .port, .psql(sql, params), .stop(), .start(), .create_database(name).
    Tests that stop it must start it again (use try/finally)."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL server binaries not in {PG_BIN}: "
                    "apt-get install postgresql-15 (or set TOKEND_PG_BIN)")
    base_dir = tempfile.mkdtemp(prefix="tokend-pg-")
    cluster = PgCluster(base_dir, service_user())
    _clusters_to_destroy.append(cluster)
    try:
        cluster.init()
        cluster.start()
        cluster.psql(f'CREATE DATABASE "{cluster.dbname}"', dbname="postgres")
        yield cluster
    finally:
        cluster.destroy()
        _clusters_to_destroy.remove(cluster)


# ---------------------------------------------------------------------------
# 4. tokenctl
# ---------------------------------------------------------------------------

class Tokenctl:
    """Runs the tokenctl binary.

    By default every call gets `--db <the pg fixture's tokend database>` and
    `-c <a config with secret_hash_iterations = 1000>` (so no system config
    leaks in), with DATABASE_URL and friends removed from the environment and
    TOKEND_SQL_DIR pointing at the repository's sql/. Pass db=None or
    config=None to leave those options out, db="URL" for another database.
    Returns the CompletedProcess (text stdout/stderr, returncode)."""

    def __init__(self, binary, default_db, config_path):
        self.binary = binary
        self.default_db = default_db
        self.config_path = config_path

    def __call__(self, *args, db="default", config="default", env=None, timeout=COMMAND_TIMEOUT_S):
        return subprocess.run(self.command(*args, db=db, config=config), capture_output=True,
                              text=True, timeout=timeout, env=self.env(env))

    def command(self, *args, db="default", config="default"):
        cmd = [str(self.binary)]
        if config == "default":
            config = self.config_path
        if config is not None:
            cmd += ["-c", str(config)]
        if db == "default":
            db = self.default_db
        if db is not None:
            cmd += ["--db", db]
        return cmd + [str(a) for a in args]

    def env(self, extra=None):
        return clean_env(**{"TOKEND_SQL_DIR": str(SQL_DIR), **(extra or {})})

    def popen(self, *args, db="default", config="default"):
        return subprocess.Popen(self.command(*args, db=db, config=config),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env())


@pytest.fixture(scope="session")
def tokenctl_config(tmp_path_factory):
    """A minimal config file for tokenctl (cheap secret hashing)."""
    path = tmp_path_factory.mktemp("tokenctl") / "tokend.conf"
    path.write_text("# written by conftest.py\nsecret_hash_iterations = 1000\n")
    return path


@pytest.fixture(scope="session")
def tokenctl(build_dir, pg, tokenctl_config):
    """tokenctl("client", "list") runs `tokenctl -c CONF --db PG_URL client list`."""
    return Tokenctl(build_dir / "tokenctl", pg.url, tokenctl_config)


@pytest.fixture(scope="session")
def migrated_db(pg, tokenctl):
    """The pg fixture's `tokend` database with every migration applied."""
    result = tokenctl("migrate")
    assert result.returncode == 0, result.stderr
    return pg.url


# ---------------------------------------------------------------------------
# 5. tokend, nginx, spawn-fcgi
# ---------------------------------------------------------------------------
#
# A "stack" is what a deployment runs: tokend (started by its own master or
# by spawn-fcgi) on a unix socket in a private directory, and nginx with the
# SHIPPED server block (nginx-conf/tokend.conf, rewritten by
# scripts/nginx-conf-for) on a free 127.0.0.1 port, talking to the pg
# fixture's database. Every process is started in its own session and is
# stopped by the fixture that started it (and, should the test run be
# interrupted, by an atexit backstop), so nothing outlives the suite.

import base64 as _base64
import http.client
import json
import re
import signal
import threading
import urllib.parse
import uuid
from contextlib import contextmanager

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SPAWN_FCGI = shutil.which("spawn-fcgi") or "/usr/bin/spawn-fcgi"
NGINX_CONF_FOR = REPO_ROOT / "scripts" / "nginx-conf-for"
# Deadline of every HTTP exchange with the stack: a hang is a failure.
HTTP_TIMEOUT_S = 10
# How long a process gets to start or to stop before the test fails.
START_TIMEOUT_S = 20
STOP_TIMEOUT_S = 30

_processes_to_kill = []


@atexit.register
def _kill_leftover_processes():
    # Backstop for interrupted sessions; the fixtures normally stop these.
    for proc in _processes_to_kill:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass


def _spawn(args, log_path, **kwargs):
    """Popen in a new session (so a backstop can kill the whole group), stdin
    from /dev/null, stdout and stderr appended to log_path."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([str(a) for a in args], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True, **kwargs)
    _processes_to_kill.append(proc)
    return proc


def _terminate(proc, sig=signal.SIGTERM, timeout_s=STOP_TIMEOUT_S):
    """Sends `sig` to proc and waits; SIGKILLs its process group when it does
    not exit in time. Returns the exit code (negative: killed by a signal),
    and whether it exited by itself."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
    try:
        return proc.wait(timeout=timeout_s), True
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        return proc.wait(timeout=10), False
    finally:
        if proc in _processes_to_kill:
            _processes_to_kill.remove(proc)


def child_pids(pid):
    """The pids of pid's children (from /proc; [] when it is gone)."""
    children = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children += [int(p) for p in f.read().split()]
    except OSError:
        return []
    return sorted(children)


def process_name(pid):
    """The process's name (/proc/PID/comm): tokend's children call
    themselves tokend-worker and tokend-flusher. "" when it is gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def wait_until(predicate, timeout_s, interval_s=0.05, message="condition"):
    """Polls predicate() until it returns something truthy (and returns
    that); raises AssertionError after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
        time.sleep(interval_s)


# -- keys --

@pytest.fixture(scope="session")
def keys(tokenctl, tmp_path_factory):
    """{"ES256": path, "RS256": path, "HS256": path}: signing keys made by
    `tokenctl key generate` (mode 0600)."""
    directory = tmp_path_factory.mktemp("keys")
    paths = {}
    for alg in ("ES256", "RS256", "HS256"):
        path = directory / f"{alg.lower()}.key"
        result = tokenctl("key", "generate", "--alg", alg, "--out", path, db=None)
        assert result.returncode == 0, result.stderr
        paths[alg] = path
    return paths


# -- tokend --

class Tokend:
    """tokend with a generated configuration, started as a subprocess.

    The configuration: listen = unix:<dir>/tokend.sock (mode 0666), `workers`,
    `issuer`, the database URL, the signing key (HS256 through hmac_key_file),
    db_timeout_ms = 5000 (a loaded CI machine can take over a second to
    connect), shutdown_timeout = 10s, transport = TRANSPORT, `user = root` when
    the suite runs as root (RUN_AS_ROOT), then `settings` (a dict of
    further keys, which may override those). stderr (the log) goes to
    <dir>/tokend.log."""

    def __init__(self, binary, base_dir, *, issuer, database_url, alg, key_path, workers=2,
                 settings=None):
        self.binary = Path(binary)
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path = self.base_dir / "tokend.sock"
        self.config_path = self.base_dir / "tokend.conf"
        self.log_path = self.base_dir / "tokend.log"
        self.workers = workers
        self.alg = alg
        self.key_path = Path(key_path)
        self.proc = None
        self.started_at = None
        values = {
            "listen": f"unix:{self.socket_path}",
            "listen_mode": "0666",
            "workers": str(workers),
            "issuer": issuer,
            "database_url": database_url,
            "db_timeout_ms": "5000",
            "shutdown_timeout": "10s",
            "transport": TRANSPORT,
            **RUN_AS_ROOT,
        }
        if alg == "HS256":
            values.update(signing_alg="HS256", hmac_key_file=str(key_path))
        else:
            values.update(signing_key_file=str(key_path))
        values.update(settings or {})
        self.settings = values

    def write_config(self):
        lines = ["# written by tests/integration/conftest.py"]
        lines += [f"{key} = {value}" for key, value in self.settings.items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def command(self):
        return [self.binary, "-c", self.config_path]

    def start(self):
        """Starts tokend and waits until its socket accepts connections and
        all its workers run."""
        self.write_config()
        self.proc = _spawn(self.command(), self.log_path, cwd=self.base_dir)
        try:
            wait_until(lambda: self.proc.poll() is not None or self.socket_path.exists(),
                       START_TIMEOUT_S, message=f"{self.socket_path} to appear")
            wait_until(lambda: self.proc.poll() is not None or
                       len(self.worker_pids()) == self.workers,
                       START_TIMEOUT_S, message=f"{self.workers} workers")
            if self.proc.poll() is not None:
                raise RuntimeError(f"tokend exited {self.proc.returncode} at start:\n{self.log()}")
            self.started_at = time.monotonic()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pid(self):
        """The master's pid."""
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def worker_pids(self):
        if not self.running():
            return []
        return [p for p in child_pids(self.proc.pid) if process_name(p) == "tokend-worker"]

    def flusher_pid(self):
        """The flusher's pid, or None."""
        if not self.running():
            return None
        found = [p for p in child_pids(self.proc.pid) if process_name(p) == "tokend-flusher"]
        return found[0] if found else None

    def stop(self, sig=signal.SIGTERM):
        """Sends `sig` (SIGTERM) to the master and waits for it to exit;
        returns its exit code (None when it was not started)."""
        if self.proc is None:
            return None
        code, _ = _terminate(self.proc, sig)
        return code

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class SpawnFcgi(Tokend):
    """tokend started the way README's spawn-fcgi section says:
    `spawn-fcgi -n -s SOCK -M 0666 -- tokend -c CONF`. spawn-fcgi creates
    the socket, passes it on fd 0 and (with -n) execs tokend in place, so
    the process started is tokend's master. The configured `listen` points
    elsewhere, to show that it is ignored."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.settings["listen"] = f"unix:{self.base_dir / 'ignored.sock'}"

    def command(self):
        return [SPAWN_FCGI, "-n", "-s", self.socket_path, "-M", "0666", "--",
                self.binary, "-c", self.config_path]


# -- nginx --

class Nginx:
    """nginx running the shipped server block: scripts/nginx-conf-for writes
    <dir>/nginx.conf, which includes <dir>/tokend.conf (nginx-conf/tokend.conf
    with its @listen/@socket lines rewritten). `keepalive`: "shipped" (the
    shipped kept-connection lines), "off" (fastcgi_keep_conn off, no
    upstream pool) or a number K (`keepalive K;`, keep-conn on); None means
    DEFAULT_NGINX_KEEPALIVE, the right one for TRANSPORT."""

    def __init__(self, base_dir, port, socket_path, keepalive=None):
        self.base_dir = Path(base_dir)
        self.port = port
        self.socket_path = Path(socket_path)
        self.keepalive = DEFAULT_NGINX_KEEPALIVE if keepalive is None else str(keepalive)
        self.conf_path = self.base_dir / "nginx.conf"
        self.server_conf_path = self.base_dir / "tokend.conf"
        self.error_log = self.base_dir / "logs" / "error.log"
        self.proc = None

    def configure(self):
        run([NGINX_CONF_FOR, f"127.0.0.1:{self.port}", self.socket_path, self.base_dir,
             self.keepalive])

    def start(self):
        self.configure()
        self.proc = _spawn([NGINX, "-e", self.error_log, "-p", self.base_dir,
                            "-c", self.conf_path, "-g", "daemon off;"],
                           self.base_dir / "nginx.stderr")
        try:
            wait_until_serving(self.proc, self.port,
                               lambda: (self.base_dir / "nginx.stderr").read_text())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if self.proc is not None:
            _terminate(self.proc, signal.SIGTERM)

    def log(self):
        try:
            return self.error_log.read_text(errors="replace")
        except OSError:
            return ""


class Stack:
    """tokend + nginx. .url, .port, .issuer, .tokend, .nginx, .request()."""

    def __init__(self, tokend, nginx, issuer):
        self.tokend = tokend
        self.nginx = nginx
        self.issuer = issuer
        self.port = nginx.port
        self.url = f"http://127.0.0.1:{nginx.port}"

    def request(self, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT_S):
        return http_request(self.port, method, path, body, headers, timeout)

    def token(self, *args, **kwargs):
        return token_request(self.port, *args, **kwargs)


@contextmanager
def running_stack(build_dir, pg, keys, *, alg="ES256", workers=2, settings=None,
                  launcher="master", keepalive=None, database_url=None):
    """Starts tokend (launcher "master" or "spawn-fcgi") and nginx in a fresh
    directory; stops both (nginx first) and removes the directory on exit,
    even when the body raised. The database defaults to the pg fixture's."""
    base_dir = Path(tempfile.mkdtemp(prefix="tokend-it-"))
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    cls = SpawnFcgi if launcher == "spawn-fcgi" else Tokend
    tokend = cls(build_dir / "tokend", base_dir / "tokend", issuer=issuer,
                 database_url=database_url or pg.url, alg=alg, key_path=keys[alg],
                 workers=workers, settings=settings)
    nginx = Nginx(base_dir / "nginx", port, tokend.socket_path, keepalive=keepalive)
    try:
        tokend.start()
        nginx.start()
        yield Stack(tokend, nginx, issuer)
    finally:
        nginx.stop()
        tokend.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


# -- HTTP --

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive .get()
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {dict(self.headers)} {self.body[:300]!r}>"


def http_request(port, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT_S):
    """One request on a new connection to 127.0.0.1:port; returns a
    Response. A body that is neither str nor bytes (an iterable of chunks)
    is sent with Transfer-Encoding: chunked. Raises on a timeout or a broken
    connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        chunked = body is not None and not isinstance(body, (str, bytes))
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


FORM = "application/x-www-form-urlencoded"


def basic_header(client_id, secret):
    """Authorization: Basic as RFC 6749 §2.3.1 says: id and secret each
    form-urlencoded, then base64."""
    raw = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
    return "Basic " + _base64.b64encode(raw.encode()).decode()


def token_request(port, client_id=None, secret=None, *, auth="basic", params=None,
                  headers=None, timeout=HTTP_TIMEOUT_S):
    """POST /oauth/token with grant_type=client_credentials (unless params
    sets grant_type; a None value drops a parameter), client authentication
    by `auth` ("basic" or "post"), and `params` as a dict or a list of pairs."""
    pairs = [("grant_type", "client_credentials")]
    extra = list(params.items()) if isinstance(params, dict) else list(params or [])
    names = {name for name, _ in extra}
    pairs = [p for p in pairs if p[0] not in names] + [p for p in extra if p[1] is not None]
    all_headers = {"Content-Type": FORM}
    if client_id is not None and auth == "basic":
        all_headers["Authorization"] = basic_header(client_id, secret)
    elif client_id is not None and auth == "post":
        pairs += [("client_id", client_id), ("client_secret", secret)]
    all_headers.update(headers or {})
    body = urllib.parse.urlencode(pairs)
    return http_request(port, "POST", "/oauth/token", body, all_headers, timeout)


# -- clients --

@pytest.fixture(scope="session")
def make_client(tokenctl, migrated_db):
    """make_client(prefix, scopes=..., default_scopes=..., audience=None,
    ttl=None) registers a new client under a unique id with `tokenctl client
    add` and returns (id, secret)."""
    def make(prefix="it", scopes="read write", default_scopes="read", audience=None, ttl=None):
        client_id = f"{prefix}-{uuid.uuid4().hex[:12]}"
        args = ["client", "add", client_id, "--scopes", scopes]
        if default_scopes is not None:
            args += ["--default-scopes", default_scopes]
        if audience is not None:
            args += ["--audience", audience]
        if ttl is not None:
            args += ["--ttl", str(ttl)]
        result = tokenctl(*args)
        assert result.returncode == 0, result.stderr
        return client_id, result.stdout.strip()
    return make


@pytest.fixture(scope="module")
def client(make_client):
    """A client allowed "read write" with default scope "read": (id, secret)."""
    return make_client("client")


class Traffic:
    """Background threads sending valid token requests through nginx in a
    loop until stop() (or max_seconds), recording (start, end, status) per
    request; status is the exception's class name when no answer came."""

    def __init__(self, port, client_id, secret, threads=2, max_seconds=30):
        self.port = port
        self.client_id = client_id
        self.secret = secret
        self.results = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def _one_request(self):
        """What one request leaves in the results: its status."""
        return token_request(self.port, self.client_id, self.secret).status

    def _loop(self):
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            start = time.monotonic()
            try:
                outcome = self._one_request()
            except Exception as exc:  # noqa: BLE001 - recorded and asserted on
                outcome = type(exc).__name__
            with self._lock:
                self.results.append((start, time.monotonic(), outcome))

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=HTTP_TIMEOUT_S + 5)
        assert not any(t.is_alive() for t in self._threads), "traffic thread hung"
        return list(self.results)

    def __exit__(self, *exc):
        self.stop()

    def count(self):
        with self._lock:
            return len(self.results)


# ---------------------------------------------------------------------------
# 6. persistence helpers
# ---------------------------------------------------------------------------
#
# For tests of the token records (issue 3): every token tokend answers with
# must end up as exactly one row of `tokens`. These helpers read the jti and
# claims out of each answered JWT, read the rows back, and know where the
# shared-memory segment of an instance lives so a test can look at it and
# never leaves one behind.

SHM_DIR = Path("/dev/shm")


def jwt_claims(token):
    """The payload of a compact JWS as a dict (no signature check: the
    token-server tests do that)."""
    payload = token.split(".")[1]
    return json.loads(_base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def canonical_jti(jti):
    """A jti in PostgreSQL's uuid spelling (tokend writes 32 hex digits)."""
    return str(uuid.UUID(jti))


def shm_name_for_listen(listen):
    """The segment name tokend derives from `listen` when shm_name is empty;
    the same computation as shm_segment_name_for_listen in
    src/shm_segment.c."""
    keep = 120
    digest = 1469598103934665603
    for byte in listen.encode():
        digest = ((digest ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    plain = "".join(c if re.fullmatch(r"[A-Za-z0-9._-]", c) else "_" for c in listen[:keep])
    name = "/tokend." + plain
    if len(listen.encode()) > keep:
        name += f"-{digest:016x}"
    return name


def segment_name(tokend):
    """The shared-memory segment a Tokend uses (its shm_name, else the one
    derived from its listen)."""
    return tokend.settings.get("shm_name") or shm_name_for_listen(tokend.settings["listen"])


def segment_path(name):
    return SHM_DIR / name.lstrip("/")


@contextmanager
def segment_stack(build_dir, pg, keys, **kwargs):
    """running_stack, and afterwards the removal of the instance's segment
    should a test (or a failure) leave it behind."""
    names = []
    try:
        with running_stack(build_dir, pg, keys, **kwargs) as stack:
            names.append(segment_name(stack.tokend))
            yield stack
    finally:
        for name in names:
            try:
                segment_path(name).unlink()
            except FileNotFoundError:
                pass


def kill_tokend_hard(tokend, timeout_s=10.0):
    """kill -9 of the master and every child at once (its process group),
    then waits until none of them exists any more, so the segment's lock is
    free. Returns the pids that were killed."""
    pids = [tokend.pid] + child_pids(tokend.pid)
    os.killpg(tokend.pid, signal.SIGKILL)
    assert tokend.stop() == -signal.SIGKILL
    wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") and process_name(pid)
                               for pid in pids),
               timeout_s, message=f"tokend processes {pids} to be gone")
    return pids


class Issued:
    """One answer of the token endpoint: status, parsed JSON (or None), and
    for a 200 the token's claims with a canonical jti."""

    def __init__(self, response):
        self.status = response.status
        self.response = response
        try:
            self.body = response.json()
        except ValueError:
            self.body = None
        self.claims = None
        if self.status == 200:
            self.claims = jwt_claims(self.body["access_token"])
            self.claims["jti"] = canonical_jti(self.claims["jti"])

    @property
    def jti(self):
        return self.claims["jti"] if self.claims else None

    def __repr__(self):
        return repr(self.response)


def issue(port, client_id, secret, **kwargs):
    """One token request (token_request's arguments) as an Issued."""
    return Issued(token_request(port, client_id, secret, **kwargs))


class TokenTraffic(Traffic):
    """Like Traffic, but keeps every answer (an Issued, or the exception's
    class name when none came) so the tokens can be matched with rows:
    .results is a list of (start, end, Issued-or-str)."""

    def __init__(self, port, client_id, secret, threads=2, max_seconds=30, params=None):
        super().__init__(port, client_id, secret, threads=threads, max_seconds=max_seconds)
        self.params = params

    def _one_request(self):
        """What one request leaves in the results: the whole answer."""
        return issue(self.port, self.client_id, self.secret, params=self.params)

    def ok_count(self):
        with self._lock:
            return sum(1 for r in self.results if not isinstance(r[2], str) and r[2].status == 200)


def answers_of(results):
    """The Issued answers among TokenTraffic results (exceptions dropped)."""
    return [r[2] for r in results if not isinstance(r[2], str)]


TOKEN_ROWS_SQL = ("SELECT jti::text, client_id, scope, audience,"
                  " extract(epoch FROM issued_at)::bigint, extract(epoch FROM expires_at)::bigint"
                  " FROM tokens WHERE client_id = ANY(%s)")


def token_rows(pg, client_ids):
    """Every row of `tokens` for these clients: a list of (jti, client_id,
    scope, audience, issued_at, expires_at) with times as epoch seconds."""
    return pg.psql(TOKEN_ROWS_SQL, (list(client_ids),))


def token_row_count(pg, client_ids):
    return pg.psql("SELECT count(*) FROM tokens WHERE client_id = ANY(%s)",
                   (list(client_ids),))[0][0]


def wait_for_rows(pg, client_ids, expected, timeout_s=20.0):
    """Polls until the clients have `expected` rows; fails on timeout or
    when there are more (a row that should not exist)."""
    def enough():
        count = token_row_count(pg, client_ids)
        assert count <= expected, f"{count} rows for {expected} tokens answered"
        return count == expected
    wait_until(enough, timeout_s, interval_s=0.1,
               message=f"{expected} rows in tokens for {sorted(client_ids)}")


def assert_stored_exactly(pg, client_ids, answered):
    """The rows of these clients are exactly the tokens of the 200 answers
    in `answered` (Issued objects): same jtis, no duplicates, and each row's
    columns equal to its token's claims."""
    expected = {a.jti: a.claims for a in answered if a.status == 200}
    assert len(expected) == sum(1 for a in answered if a.status == 200), "a jti was issued twice"
    rows = token_rows(pg, client_ids)
    stored = {canonical_jti(row[0]): row for row in rows}
    assert len(stored) == len(rows), "a jti is stored twice"
    missing = expected.keys() - stored.keys()
    extra = stored.keys() - expected.keys()
    assert not missing and not extra, (
        f"{len(expected)} answered, {len(stored)} stored; missing {len(missing)} "
        f"(e.g. {sorted(missing)[:3]}), not answered {len(extra)} (e.g. {sorted(extra)[:3]})")
    for jti, claims in expected.items():
        _, client_id, scope, audience, issued_at, expires_at = stored[jti]
        assert (client_id, scope, audience, issued_at, expires_at) == (
            claims["client_id"], claims["scope"], claims["aud"], claims["iat"], claims["exp"]), \
            (stored[jti], claims)
    # And the table itself agrees (one row per jti, whatever the partition).
    count, distinct = pg.psql("SELECT count(*), count(DISTINCT jti) FROM tokens"
                              " WHERE client_id = ANY(%s)", (list(client_ids),))[0]
    assert count == distinct == len(expected)
