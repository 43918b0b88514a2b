"""tokenctl against a real PostgreSQL: migrations, client administration,
key generation, and how it fails (exit status, one line on stderr).

Client tests share the migrated `tokend` database and use distinct client
ids; migration tests each make a fresh database.
"""

import base64
import hashlib
import hmac
import os
import re
import select
import stat
import subprocess
import time

import psycopg2
import pytest

from conftest import SQL_DIR, free_port

SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{43}\n$")
MIGRATION_FILES = sorted(p.name for p in SQL_DIR.glob("[0-9]*_*.sql"))


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secret_matches(secret, stored):
    """Checks a secret against pbkdf2-sha256$iter$salt$key independently of
    the C code."""
    scheme, iterations, salt, key = stored.split("$")
    assert scheme == "pbkdf2-sha256"
    derived = hashlib.pbkdf2_hmac("sha256", secret.encode(), b64url_decode(salt),
                                  int(iterations), len(b64url_decode(key)))
    return hmac.compare_digest(derived, b64url_decode(key))


def assert_one_error_line(result, message=None, status=1):
    """Exit `status`, nothing on stdout, exactly one 'tokenctl: ' line on
    stderr (equal to `message` when given)."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tokenctl: "), result.stderr
    if message is not None:
        assert lines[0] == "tokenctl: " + message


def client_row(pg, client_id):
    rows = pg.psql("SELECT secret_hash, allowed_scopes, default_scopes, audiences, token_ttl_s,"
                   " grant_types, enabled, created_at, updated_at FROM clients"
                   " WHERE client_id = %s", (client_id,))
    if not rows:
        return None
    keys = ("secret_hash", "allowed_scopes", "default_scopes", "audiences", "token_ttl_s",
            "grant_types", "enabled", "created_at", "updated_at")
    return dict(zip(keys, rows[0]))


def add_client(tokenctl, client_id, *options):
    result = tokenctl("client", "add", client_id, *options)
    assert result.returncode == 0, result.stderr
    assert SECRET_RE.match(result.stdout), result.stdout
    return result.stdout.strip()


def show(tokenctl, client_id):
    result = tokenctl("client", "show", client_id)
    assert result.returncode == 0, result.stderr
    fields = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition(": ")
        if not sep:  # "key:" with an empty value
            key, value = line.rstrip(":"), ""
        fields[key] = value
    return result, fields


# ---------------------------------------------------------------------------
# migrate
# ---------------------------------------------------------------------------

def test_sql_directory_has_migrations():
    assert MIGRATION_FILES and MIGRATION_FILES[0] == "001_schema_migrations_and_clients.sql"


def test_migrate_twice(pg, tokenctl):
    url = pg.create_database("migrate_twice")
    first = tokenctl("migrate", db=url)
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    assert first.stdout.splitlines() == [f"applied {name[:-4]}" for name in MIGRATION_FILES]
    assert first.stdout.splitlines()[0] == "applied 001_schema_migrations_and_clients"

    second = tokenctl("migrate", db=url)
    assert (second.returncode, second.stdout, second.stderr) == (0, "schema is up to date\n", "")

    rows = pg.psql("SELECT version, name FROM schema_migrations ORDER BY version",
                   dbname="migrate_twice")
    assert rows == [(int(name[:3]), name[4:-4]) for name in MIGRATION_FILES]
    columns = pg.psql("SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                      " WHERE table_name = 'clients' ORDER BY ordinal_position",
                      dbname="migrate_twice")
    assert [c[0] for c in columns] == [
        "client_id", "secret_hash", "allowed_scopes", "default_scopes", "audiences",
        "token_ttl_s", "grant_types", "enabled", "created_at", "updated_at",
        "tokens_not_before"]


def test_migrate_sql_dir_option_and_env(pg, tokenctl, tmp_path):
    url = pg.create_database("migrate_options")
    empty = tmp_path / "empty"
    empty.mkdir()
    # --sql-dir wins over TOKEND_SQL_DIR (which the helper points at sql/).
    result = tokenctl("migrate", "--sql-dir", empty, db=url)
    assert_one_error_line(result, f"no migration files (NNN_name.sql) in {empty}")
    result = tokenctl("migrate", db=url, env={"TOKEND_SQL_DIR": str(empty)})
    assert_one_error_line(result, f"no migration files (NNN_name.sql) in {empty}")
    result = tokenctl("migrate", "--sql-dir", SQL_DIR, db=url, env={"TOKEND_SQL_DIR": str(empty)})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("round_number", range(3))
def test_concurrent_migrates_on_fresh_database(pg, tokenctl, round_number):
    dbname = f"migrate_concurrent_{round_number}"
    url = pg.create_database(dbname)
    processes = [tokenctl.popen("migrate", db=url) for _ in range(4)]
    outputs = [p.communicate(timeout=60) for p in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
        assert stderr == ""
    applied = [line for stdout, _ in outputs for line in stdout.splitlines()
               if line.startswith("applied ")]
    assert sorted(applied) == [f"applied {name[:-4]}" for name in MIGRATION_FILES]
    up_to_date = [stdout for stdout, _ in outputs if stdout == "schema is up to date\n"]
    assert len(up_to_date) == 3
    count = pg.psql("SELECT count(*), count(DISTINCT version) FROM schema_migrations",
                    dbname=dbname)
    assert count == [(len(MIGRATION_FILES), len(MIGRATION_FILES))]


def make_sql_dir(tmp_path, files):
    directory = tmp_path / "sql"
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def real_migration(number=1):
    name = MIGRATION_FILES[number - 1]
    return name, (SQL_DIR / name).read_text()


@pytest.mark.parametrize("files, message", [
    ({"001_a.sql": "SELECT 1;", "003_c.sql": "SELECT 1;"},
     "{dir}: migration version 002 is missing (next is 003_c.sql)"),
    ({"002_b.sql": "SELECT 1;"}, "{dir}: migration version 001 is missing (next is 002_b.sql)"),
    ({"001_a.sql": "SELECT 1;", "001_b.sql": "SELECT 1;"},
     "{dir}: 001_a.sql and 001_b.sql have the same version"),
    ({"001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"},
     "{dir}: 0001_b.sql and 001_a.sql have the same version"),
    ({"001_a.sql": "SELECT 1;", "schema.sql": "SELECT 1;"},
     "{dir}/schema.sql: a migration file must be named NNN_name.sql"),
    ({"001_a b.sql": "SELECT 1;"}, "{dir}/001_a b.sql: a migration file must be named NNN_name.sql"),
    ({"01_a.sql": "SELECT 1;"}, "{dir}/01_a.sql: a migration file must be named NNN_name.sql"),
    ({"README": "not sql", ".001_hidden.sql": "x"}, "no migration files (NNN_name.sql) in {dir}"),
])
def test_migrate_rejects_bad_directory_before_touching_database(pg, tokenctl, tmp_path, files,
                                                                message):
    url = pg.create_database("migrate_bad_dir")
    directory = make_sql_dir(tmp_path, files)
    result = tokenctl("migrate", "--sql-dir", directory, db=url)
    assert_one_error_line(result, message.format(dir=directory))
    assert pg.psql("SELECT to_regclass('schema_migrations')", dbname="migrate_bad_dir") == [(None,)]


def test_migrate_failure_rolls_back_that_file_only(pg, tokenctl, tmp_path):
    url = pg.create_database("migrate_failure")
    name, text = real_migration()
    directory = make_sql_dir(tmp_path, {
        name: text,
        "002_broken.sql": "CREATE TABLE half_done (x integer);\n\nCRATE TABLE broken (x int);\n"})
    result = tokenctl("migrate", "--sql-dir", directory, db=url)
    assert result.returncode == 1
    assert result.stdout == f"applied {name[:-4]}\n"
    assert result.stderr == ('tokenctl: migration 002_broken.sql failed at line 3: '
                             'syntax error at or near "CRATE"\n')
    assert pg.psql("SELECT version FROM schema_migrations", dbname="migrate_failure") == [(1,)]
    assert pg.psql("SELECT to_regclass('half_done')", dbname="migrate_failure") == [(None,)]

    (directory / "002_broken.sql").write_text("CREATE TABLE half_done (x integer);\n")
    result = tokenctl("migrate", "--sql-dir", directory, db=url)
    assert (result.returncode, result.stdout) == (0, "applied 002_broken\n")


def test_migrate_refuses_file_that_commits(pg, tokenctl, tmp_path):
    url = pg.create_database("migrate_commit")
    name, text = real_migration()
    directory = make_sql_dir(tmp_path, {name: text,
                                        "002_commits.sql": "CREATE TABLE t (x int);\nCOMMIT;\n"})
    result = tokenctl("migrate", "--sql-dir", directory, db=url)
    assert result.returncode == 1
    assert result.stderr.startswith("tokenctl: migration 002_commits.sql ended its transaction")
    assert pg.psql("SELECT max(version) FROM schema_migrations", dbname="migrate_commit") == [(1,)]


def test_migrate_refuses_history_that_disagrees(pg, tokenctl, tmp_path):
    url = pg.create_database("migrate_history")
    name, text = real_migration()
    newer = make_sql_dir(tmp_path, {name: text, "002_extra.sql": "CREATE TABLE extra (x int);"})
    assert tokenctl("migrate", "--sql-dir", newer, db=url).returncode == 0

    # An older tokenctl (its directory lacks 002) must not pretend all is well.
    older = tmp_path / "older"
    older.mkdir()
    (older / name).write_text(text)
    result = tokenctl("migrate", "--sql-dir", older, db=url)
    assert_one_error_line(result, f"the database has migration 002_extra, which is not in {older}"
                                  " (is this tokenctl older than the database?)")

    renamed = tmp_path / "renamed"
    renamed.mkdir()
    (renamed / name).write_text(text)
    (renamed / "002_other.sql").write_text("SELECT 1;")
    result = tokenctl("migrate", "--sql-dir", renamed, db=url)
    assert_one_error_line(
        result, f"the database applied version 002 as 'extra' but {renamed} has 002_other.sql")


def test_client_commands_on_unmigrated_database(pg, tokenctl):
    url = pg.create_database("not_migrated")
    result = tokenctl("client", "list", db=url)
    assert_one_error_line(result, "the database has no clients table: run 'tokenctl migrate'")


# ---------------------------------------------------------------------------
# client add
# ---------------------------------------------------------------------------

def test_client_add_prints_only_the_secret(pg, tokenctl, migrated_db):
    result = tokenctl("client", "add", "svc-add", "--scopes", "read write",
                      "--default-scopes", "read", "--audience",
                      "https://api.example.com urn:example:other", "--ttl", "900")
    assert result.returncode == 0, result.stderr
    assert SECRET_RE.match(result.stdout), repr(result.stdout)
    assert result.stderr == ""
    secret = result.stdout.strip()

    row = client_row(pg, "svc-add")
    assert row["secret_hash"].startswith("pbkdf2-sha256$1000$")
    assert secret not in row["secret_hash"]
    assert secret_matches(secret, row["secret_hash"])
    assert not secret_matches(secret + "x", row["secret_hash"])
    assert row["allowed_scopes"] == ["read", "write"]
    assert row["default_scopes"] == ["read"]
    assert row["audiences"] == ["https://api.example.com", "urn:example:other"]
    assert row["token_ttl_s"] == 900
    assert row["grant_types"] == ["client_credentials"]
    assert row["enabled"] is True


def test_client_add_minimal_and_normalised(pg, tokenctl, migrated_db):
    add_client(tokenctl, "svc-minimal", "--scopes", "  read  write read ")
    row = client_row(pg, "svc-minimal")
    assert row["allowed_scopes"] == ["read", "write"]
    assert (row["default_scopes"], row["audiences"], row["token_ttl_s"]) == ([], [], None)

    add_client(tokenctl, "svc-no-scopes", "--scopes", "")
    assert client_row(pg, "svc-no-scopes")["allowed_scopes"] == []


def test_client_add_uses_config_iterations_and_default(pg, tokenctl, migrated_db, tmp_path):
    config = tmp_path / "iter.conf"
    config.write_text("secret_hash_iterations = 2000\n")
    result = tokenctl("client", "add", "svc-iter", "--scopes", "a", config=config)
    assert result.returncode == 0, result.stderr
    assert client_row(pg, "svc-iter")["secret_hash"].startswith("pbkdf2-sha256$2000$")

    empty = tmp_path / "empty.conf"
    empty.write_text("")
    result = tokenctl("client", "add", "svc-iter-default", "--scopes", "a", config=empty)
    assert result.returncode == 0, result.stderr
    assert client_row(pg, "svc-iter-default")["secret_hash"].startswith("pbkdf2-sha256$10000$")


def test_client_add_longest_id(pg, tokenctl, migrated_db):
    client_id = "!~" + "x" * 126
    add_client(tokenctl, client_id, "--scopes", "a")
    assert client_row(pg, client_id) is not None


def test_client_add_duplicate(pg, tokenctl, migrated_db):
    add_client(tokenctl, "svc-dup", "--scopes", "a")
    before = client_row(pg, "svc-dup")
    result = tokenctl("client", "add", "svc-dup", "--scopes", "b")
    assert_one_error_line(result, "client 'svc-dup' already exists")
    assert client_row(pg, "svc-dup") == before


# Values that must be refused before any database access: --db points at a
# closed port, so touching the database would show as a connection error.
BAD_VALUES = [
    (("client", "add", "a b", "--scopes", "x"),
     "invalid client id: use 1 to 128 printable ASCII characters without spaces"),
    (("client", "add", "x" * 129, "--scopes", "x"),
     "invalid client id: use 1 to 128 printable ASCII characters without spaces"),
    (("client", "add", "", "--scopes", "x"),
     "invalid client id: use 1 to 128 printable ASCII characters without spaces"),
    (("client", "add", "cl\u00efent", "--scopes", "x"),
     "invalid client id: use 1 to 128 printable ASCII characters without spaces"),
    (("client", "add", "tab\tid", "--scopes", "x"),
     "invalid client id: use 1 to 128 printable ASCII characters without spaces"),
    (("client", "add", "svc", "--scopes", 'read "quoted"'),
     "scopes: '\"quoted\"' is not a valid scope (printable ASCII except space, '\"' and '\\')"),
    (("client", "add", "svc", "--scopes", "read\twrite"),
     "scopes: 'read?write' is not a valid scope (printable ASCII except space, '\"' and '\\')"),
    (("client", "add", "svc", "--scopes", "back\\slash"),
     "scopes: 'back\\slash' is not a valid scope (printable ASCII except space, '\"' and '\\')"),
    (("client", "add", "svc", "--scopes", "read", "--default-scopes", "read write"),
     "default scope 'write' is not one of the scopes"),
    (("client", "add", "svc", "--scopes", "read", "--default-scopes", "r\u00e9ad"),
     "default scopes: 'r??ad' is not a valid scope (printable ASCII except space, '\"' and '\\')"),
    (("client", "add", "svc", "--scopes", "a", "--ttl", "0"),
     "ttl must be a whole number of seconds from 1 to 86400"),
    (("client", "add", "svc", "--scopes", "a", "--ttl", "86401"),
     "ttl must be a whole number of seconds from 1 to 86400"),
    (("client", "add", "svc", "--scopes", "a", "--ttl", "abc"),
     "ttl must be a whole number of seconds from 1 to 86400"),
    (("client", "add", "svc", "--scopes", "a", "--ttl=-5"),
     "ttl must be a whole number of seconds from 1 to 86400"),
    (("client", "add", "svc", "--scopes", "a", "--ttl", "1.5"),
     "ttl must be a whole number of seconds from 1 to 86400"),
    (("client", "add", "svc", "--scopes", "a", "--ttl", ""),
     "ttl must be a whole number of seconds from 1 to 86400"),
    (("client", "add", "svc", "--scopes", "a", "--audience", "https://x\x01y"),
     "audiences: only printable ASCII without '\"' and '\\' is allowed, separated by spaces"),
    (("client", "add", "svc", "--scopes", "a", "--audience", "1http://x"),
     "audience '1http://x' is neither a plain name nor an absolute URI"),
    (("client", "add", "svc", "--scopes", "a", "--audience", "ok https:"),
     "audience 'https:' is neither a plain name nor an absolute URI"),
    (("client", "add", "svc", "--scopes", "a", "--audience", "x" * 513),
     "audience '" + "x" * 64 + "...' is longer than 512 bytes"),
    (("client", "set-scopes", "svc", "--scopes", "a", "--default-scopes", "b"),
     "default scope 'b' is not one of the scopes"),
    (("client", "set-scopes", "svc", "--scopes", "a\x7f"),
     "scopes: 'a?' is not a valid scope (printable ASCII except space, '\"' and '\\')"),
    (("client", "show", "has space"),
     "invalid client id: use 1 to 128 printable ASCII characters without spaces"),
    (("client", "delete", ""),
     "invalid client id: use 1 to 128 printable ASCII characters without spaces"),
    (("client", "rotate-secret", "x" * 129),
     "invalid client id: use 1 to 128 printable ASCII characters without spaces"),
]


@pytest.mark.parametrize("args, message", BAD_VALUES)
def test_bad_values_rejected_without_touching_database(tokenctl, args, message):
    result = tokenctl(*args, db=f"postgresql://postgres@127.0.0.1:{free_port()}/tokend")
    assert_one_error_line(result, message)


USAGE_ERRORS = [
    ((), "no command given"),
    (("frobnicate",), "unknown command 'frobnicate'"),
    (("client",), "'client' needs a subcommand"),
    (("client", "frob", "x"), "unknown command 'client frob'"),
    (("client", "add", "svc"), "client add needs --scopes"),
    (("client", "add", "--scopes", "a"), "client add: missing client ID"),
    (("client", "show", "a", "b"), "unexpected argument 'b'"),
    (("client", "add", "a", "b", "c", "d", "e", "--scopes", "x"), "unexpected argument 'b'"),
    (("migrate", "now"), "unexpected argument 'now'"),
    (("client", "show", "--", "a", "--db", "x"), "unexpected argument '--db'"),
    (("client", "list", "--ttl", "5"), "client list does not take --ttl"),
    (("migrate", "--scopes", "a"), "migrate does not take --scopes"),
    (("client", "add", "svc", "--scopes"), "option '--scopes' needs a value"),
    (("client", "add", "svc", "--scopes", "a", "--scopes", "b"), "option --scopes given twice"),
    (("--bogus", "client", "list"), "unknown option '--bogus'"),
    (("-x", "client", "list"), "unknown option '-x'"),
    (("key", "generate", "--alg", "ES256"), "key generate needs --out"),
    (("key", "generate", "--out", "/tmp/x"), "key generate needs --alg"),
]


@pytest.mark.parametrize("args, message", USAGE_ERRORS)
def test_usage_errors_exit_2(tokenctl, args, message):
    result = tokenctl(*args, db=None)
    assert_one_error_line(result, message + " (see tokenctl --help)", status=2)


def test_help_and_version(tokenctl):
    result = tokenctl("--help", db=None, config=None)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: tokenctl ")
    for word in ("migrate", "client add", "rotate-secret", "set-scopes", "key generate"):
        assert word in result.stdout
    result = tokenctl("--version", db=None, config=None)
    assert result.returncode == 0
    assert re.fullmatch(r"tokenctl \(tokend\) \d+\.\d+\.\d+\n", result.stdout)


def test_options_may_follow_the_command(pg, tokenctl, migrated_db):
    result = subprocess.run([tokenctl.binary, "client", "add", "svc-late-db", "--scopes", "a",
                             "--db", pg.url, "-c", tokenctl.config_path],
                            capture_output=True, text=True, timeout=60, env=tokenctl.env())
    assert result.returncode == 0, result.stderr
    assert client_row(pg, "svc-late-db") is not None


def test_double_dash_allows_id_starting_with_dash(pg, tokenctl, migrated_db):
    add_client(tokenctl, "--scopes", "a", "--", "-dash-id")
    assert client_row(pg, "-dash-id") is not None
    result = tokenctl("client", "show", "--", "-dash-id")
    assert result.returncode == 0 and "client_id: -dash-id\n" in result.stdout
    result = tokenctl("client", "show", "-dash-id")
    assert_one_error_line(result, "unknown option '-d' (see tokenctl --help)", status=2)


def test_options_after_command_even_with_posixly_correct(pg, tokenctl, migrated_db):
    result = tokenctl("client", "add", "svc-posix", "--scopes", "a",
                      env={"POSIXLY_CORRECT": "1"})
    assert result.returncode == 0, result.stderr
    assert client_row(pg, "svc-posix")["allowed_scopes"] == ["a"]


# ---------------------------------------------------------------------------
# list / show
# ---------------------------------------------------------------------------

def test_list_and_show(pg, tokenctl, migrated_db):
    add_client(tokenctl, "list-a", "--scopes", "read write", "--default-scopes", "read",
               "--audience", "https://api.example.com", "--ttl", "60")
    add_client(tokenctl, "list-b", "--scopes", "admin")
    assert tokenctl("client", "disable", "list-b").returncode == 0

    result = tokenctl("client", "list")
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert re.split(r"  +", lines[0]) == ["ID", "ENABLED", "SCOPES", "DEFAULT_SCOPES",
                                          "AUDIENCES", "TTL"]
    rows = {cells[0]: cells for cells in (re.split(r"  +", line) for line in lines[1:])}
    assert rows["list-a"] == ["list-a", "yes", "read write", "read", "https://api.example.com",
                              "60"]
    assert rows["list-b"] == ["list-b", "no", "admin", "-", "-", "default"]
    ids = [cells[0] for cells in (re.split(r"  +", line) for line in lines[1:])]
    assert ids == sorted(ids)
    assert "pbkdf2" not in result.stdout

    result, fields = show(tokenctl, "list-a")
    assert result.stderr == ""
    stored = client_row(pg, "list-a")["secret_hash"]
    assert "pbkdf2" not in result.stdout and stored not in result.stdout
    assert fields["client_id"] == "list-a"
    assert fields["enabled"] == "yes"
    assert fields["scopes"] == "read write"
    assert fields["default_scopes"] == "read"
    assert fields["audiences"] == "https://api.example.com"
    assert fields["ttl"] == "60"
    assert fields["grant_types"] == "client_credentials"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fields["created_at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fields["updated_at"])

    _, fields = show(tokenctl, "list-b")
    assert (fields["enabled"], fields["default_scopes"], fields["audiences"], fields["ttl"]) == \
        ("no", "", "", "default")


def test_list_empty_database_prints_header(pg, tokenctl):
    url = pg.create_database("list_empty")
    assert tokenctl("migrate", db=url).returncode == 0
    result = tokenctl("client", "list", db=url)
    assert result.returncode == 0
    assert re.split(r"  +", result.stdout.strip()) == ["ID", "ENABLED", "SCOPES",
                                                      "DEFAULT_SCOPES", "AUDIENCES", "TTL"]


# ---------------------------------------------------------------------------
# changes
# ---------------------------------------------------------------------------

def test_rotate_secret(pg, tokenctl, migrated_db):
    old_secret = add_client(tokenctl, "svc-rotate", "--scopes", "a")
    before = client_row(pg, "svc-rotate")
    result = tokenctl("client", "rotate-secret", "svc-rotate")
    assert result.returncode == 0 and result.stderr == ""
    assert SECRET_RE.match(result.stdout)
    new_secret = result.stdout.strip()
    after = client_row(pg, "svc-rotate")
    assert new_secret != old_secret
    assert after["secret_hash"] != before["secret_hash"]
    assert secret_matches(new_secret, after["secret_hash"])
    assert not secret_matches(old_secret, after["secret_hash"])
    assert after["updated_at"] > before["updated_at"]
    assert after["created_at"] == before["created_at"]


def test_secret_that_cannot_be_printed_is_reported(pg, tokenctl, migrated_db):
    read_end, write_end = os.pipe()
    os.close(read_end)  # writing the secret gets EPIPE
    try:
        result = subprocess.run(tokenctl.command("client", "add", "svc-epipe", "--scopes", "a"),
                                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
                                env=tokenctl.env())
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert result.stderr == ("tokenctl: cannot write the new secret to standard output (Broken "
                             "pipe); it is lost: run 'tokenctl client rotate-secret svc-epipe'\n")
    assert client_row(pg, "svc-epipe") is not None


def test_set_scopes(pg, tokenctl, migrated_db):
    add_client(tokenctl, "svc-scopes", "--scopes", "a b", "--default-scopes", "a")
    before = client_row(pg, "svc-scopes")

    result = tokenctl("client", "set-scopes", "svc-scopes", "--scopes", "a b c",
                      "--default-scopes", "b c")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    row = client_row(pg, "svc-scopes")
    assert (row["allowed_scopes"], row["default_scopes"]) == (["a", "b", "c"], ["b", "c"])
    assert row["updated_at"] > before["updated_at"]

    # Without --default-scopes the defaults stay...
    assert tokenctl("client", "set-scopes", "svc-scopes", "--scopes", "b c d").returncode == 0
    row = client_row(pg, "svc-scopes")
    assert (row["allowed_scopes"], row["default_scopes"]) == (["b", "c", "d"], ["b", "c"])

    # ...and must still fit the new scopes.
    result = tokenctl("client", "set-scopes", "svc-scopes", "--scopes", "c d")
    assert_one_error_line(result, "client 'svc-scopes' has default scopes that are not among "
                                  "the new scopes; give the default scopes too")
    assert client_row(pg, "svc-scopes")["allowed_scopes"] == ["b", "c", "d"]

    result = tokenctl("client", "set-scopes", "svc-scopes", "--scopes", "c d",
                      "--default-scopes", "")
    assert result.returncode == 0, result.stderr
    row = client_row(pg, "svc-scopes")
    assert (row["allowed_scopes"], row["default_scopes"]) == (["c", "d"], [])


def test_disable_enable_delete(pg, tokenctl, migrated_db):
    add_client(tokenctl, "svc-state", "--scopes", "a")
    before = client_row(pg, "svc-state")
    result = tokenctl("client", "disable", "svc-state")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    row = client_row(pg, "svc-state")
    assert row["enabled"] is False and row["updated_at"] > before["updated_at"]
    assert show(tokenctl, "svc-state")[1]["enabled"] == "no"

    assert tokenctl("client", "disable", "svc-state").returncode == 0  # already disabled: fine
    assert tokenctl("client", "enable", "svc-state").returncode == 0
    assert client_row(pg, "svc-state")["enabled"] is True

    result = tokenctl("client", "delete", "svc-state")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert client_row(pg, "svc-state") is None
    assert_one_error_line(tokenctl("client", "show", "svc-state"), "no client 'svc-state'")


@pytest.mark.parametrize("args", [
    ("show",), ("rotate-secret",), ("set-scopes", "--scopes", "a"), ("disable",), ("enable",),
    ("delete",)])
def test_unknown_client(pg, tokenctl, migrated_db, args):
    result = tokenctl("client", args[0], "ghost", *args[1:])
    assert_one_error_line(result, "no client 'ghost'")
    assert client_row(pg, "ghost") is None


def notifications(listener, expected):
    """(channel, payload) of what `listener` receives: until `expected`
    have come (10 s at most), then whatever else comes within 0.3 s."""
    payloads = []
    deadline = time.monotonic() + 10
    while len(payloads) < expected and time.monotonic() < deadline:
        select.select([listener], [], [], 0.5)
        listener.poll()
        while listener.notifies:
            note = listener.notifies.pop(0)
            payloads.append((note.channel, note.payload))
    time.sleep(0.3)
    listener.poll()
    return payloads + [(n.channel, n.payload) for n in listener.notifies]


def test_changes_are_notified(pg, tokenctl, migrated_db):
    listener = psycopg2.connect(pg.url)
    listener.autocommit = True
    try:
        listener.cursor().execute("LISTEN tokend_clients")
        add_client(tokenctl, "svc-notify", "--scopes", "a")
        tokenctl("client", "rotate-secret", "svc-notify")
        tokenctl("client", "set-scopes", "svc-notify", "--scopes", "a b")
        tokenctl("client", "disable", "svc-notify")
        tokenctl("client", "enable", "svc-notify")
        tokenctl("client", "delete", "svc-notify")
        tokenctl("client", "delete", "svc-notify")      # fails: no notification
        tokenctl("client", "add", "bad id", "--scopes", "a")  # refused: none either
        assert notifications(listener, 6) == [("tokend_clients", "svc-notify")] * 6
    finally:
        listener.close()


def test_changes_go_to_the_configured_notify_channel(pg, tokenctl, migrated_db, tmp_path):
    """notify_channel in the config: tokenctl's notices go there, and none
    to the default channel."""
    conf = tmp_path / "channel.conf"
    conf.write_text("notify_channel = fleet_a\n")
    listener = psycopg2.connect(pg.url)
    listener.autocommit = True
    try:
        listener.cursor().execute("LISTEN fleet_a")
        listener.cursor().execute("LISTEN tokend_clients")
        result = tokenctl("client", "add", "svc-channel", "--scopes", "a", config=conf)
        assert result.returncode == 0, result.stderr
        result = tokenctl("client", "disable", "svc-channel", config=conf)
        assert result.returncode == 0, result.stderr
        assert notifications(listener, 2) == [("fleet_a", "svc-channel")] * 2
    finally:
        listener.close()


# ---------------------------------------------------------------------------
# where the database comes from, and when it is not there
# ---------------------------------------------------------------------------

def test_no_database_configured(tokenctl, tmp_path):
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    result = tokenctl("client", "list", db=None, config=empty)
    assert_one_error_line(result,
                          "no database: use --db, DATABASE_URL or database_url in the config")
    result = tokenctl("migrate", db=None, config=empty)
    assert_one_error_line(result,
                          "no database: use --db, DATABASE_URL or database_url in the config")


def test_database_from_env_and_config(pg, tokenctl, migrated_db, tmp_path):
    result = tokenctl("client", "list", db=None, env={"DATABASE_URL": pg.url})
    assert result.returncode == 0, result.stderr

    config = tmp_path / "db.conf"
    config.write_text(f"database_url = {pg.url}\nsecret_hash_iterations = 1000\n")
    result = tokenctl("client", "list", db=None, config=config)
    assert result.returncode == 0, result.stderr

    # --db beats DATABASE_URL, which beats the config.
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/tokend"
    result = tokenctl("client", "list", db=pg.url, env={"DATABASE_URL": closed})
    assert result.returncode == 0, result.stderr
    result = tokenctl("client", "list", db=None, config=config, env={"DATABASE_URL": closed})
    assert_one_error_line(result)
    assert "cannot connect to the database" in result.stderr


def test_password_from_config_file(pg, tokenctl, migrated_db, tmp_path):
    pg.psql("DROP ROLE IF EXISTS tokenctl_pw")
    pg.psql("CREATE ROLE tokenctl_pw LOGIN PASSWORD 'pw-Secret-123'")
    pg.psql("GRANT SELECT ON clients TO tokenctl_pw")
    url = pg.url_for(user="tokenctl_pw")

    result = tokenctl("client", "list", db=url, config=tmp_path / "missing.conf")
    assert_one_error_line(result)
    assert "missing.conf" in result.stderr

    no_password = tmp_path / "nopw.conf"
    no_password.write_text("")
    result = tokenctl("client", "list", db=url, config=no_password)
    assert_one_error_line(result)
    assert result.stderr.startswith("tokenctl: cannot connect to the database: ")

    password_file = tmp_path / "db.password"
    password_file.write_text("pw-Secret-123\n")
    password_file.chmod(0o600)
    config = tmp_path / "pw.conf"
    config.write_text(f"database_password_file = {password_file}\n")
    result = tokenctl("client", "list", db=url, config=config)
    assert result.returncode == 0, result.stderr
    assert "pw-Secret-123" not in result.stdout + result.stderr

    password_file.write_text("wrong-password\n")
    result = tokenctl("client", "list", db=url, config=config)
    assert_one_error_line(result)
    assert "password authentication failed" in result.stderr
    assert "wrong-password" not in result.stderr


def test_database_unreachable(tokenctl):
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/tokend"
    for args in (("client", "list"), ("client", "add", "svc", "--scopes", "a"), ("migrate",)):
        started = time.monotonic()
        result = tokenctl(*args, db=closed, timeout=20)
        assert time.monotonic() - started < 5
        assert_one_error_line(result)
        assert result.stderr.startswith("tokenctl: cannot connect to the database: ")
        assert "Connection refused" in result.stderr


def test_bad_database_url(tokenctl):
    result = tokenctl("client", "list", db="postgresql://[bad")
    assert_one_error_line(result)
    assert result.stderr.startswith("tokenctl: bad database URL: ")


def test_database_restarted(pg, tokenctl, migrated_db):
    add_client(tokenctl, "svc-restart", "--scopes", "a")
    pg.stop()
    try:
        result = tokenctl("client", "show", "svc-restart", timeout=20)
        assert_one_error_line(result)
        assert result.stderr.startswith("tokenctl: cannot connect to the database: ")
    finally:
        pg.start()
    _, fields = show(tokenctl, "svc-restart")
    assert fields["client_id"] == "svc-restart"


# ---------------------------------------------------------------------------
# key generate
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["ES256", "RS256", "HS256"])
def test_key_generate(tokenctl, tmp_path, alg):
    path = tmp_path / f"{alg}.key"
    # No database, no config: neither is needed.
    result = tokenctl("key", "generate", "--alg", alg, "--out", path, db=None, config=None)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    content = path.read_bytes()
    if alg == "HS256":
        assert re.fullmatch(rb"[A-Za-z0-9_-]{43}\n", content)
    else:
        assert content.startswith(b"-----BEGIN PRIVATE KEY-----\n")
        check = subprocess.run(["openssl", "pkey", "-in", path, "-noout", "-text"],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        expected = "ASN1 OID: prime256v1" if alg == "ES256" else "Private-Key: (2048 bit"
        assert expected in check.stdout

    result = tokenctl("key", "generate", "--alg", alg, "--out", path, db=None, config=None)
    assert_one_error_line(result, f"{path} already exists; refusing to overwrite it")
    assert path.read_bytes() == content


def test_key_generate_es256_loads_with_openssl(tokenctl, tmp_path):
    path = tmp_path / "signing.pem"
    assert tokenctl("key", "generate", "--alg", "ES256", "--out", path).returncode == 0
    check = subprocess.run(["openssl", "pkey", "-in", path, "-noout"], capture_output=True,
                           timeout=30)
    assert check.returncode == 0, check.stderr


def test_key_generate_errors(tokenctl, tmp_path):
    result = tokenctl("key", "generate", "--alg", "ES512", "--out", tmp_path / "k", db=None)
    assert_one_error_line(result, "unknown algorithm 'ES512': use ES256, RS256 or HS256")
    assert not (tmp_path / "k").exists()

    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    result = tokenctl("key", "generate", "--alg", "HS256", "--out", dangling, db=None)
    assert_one_error_line(result, f"{dangling} already exists; refusing to overwrite it")
    assert not (tmp_path / "nowhere").exists()

    result = tokenctl("key", "generate", "--alg", "ES256", "--out", tmp_path / "no/such/dir/k",
                      db=None)
    assert_one_error_line(result)
    assert "No such file or directory" in result.stderr
