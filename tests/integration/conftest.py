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
