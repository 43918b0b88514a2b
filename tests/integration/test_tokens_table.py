"""The tokens table (sql/002_tokens.sql) against a real PostgreSQL: its
shape, day partitions and default partition, idempotent inserts, the
partition upkeep functions (also two at once), `tokenctl tokens count` and
`tokenctl tokens purge`, and src/token_partitions.c called directly.

Tests that change partitions or rows work in a fresh database of their own,
so they neither see nor disturb what other tests record in the shared
`tokend` database. Days are UTC days by the database's clock; a test that
needs "today" asks the database.
"""

import ctypes
import datetime
import os
import shutil
import threading
import time
import uuid

import psycopg2
import psycopg2.errors
import pytest

from conftest import REPO_ROOT, free_port, run

COLUMNS = [
    # name, type, nullable, default
    ("jti", "uuid", "NO", None),
    ("client_id", "text", "NO", None),
    ("scope", "text", "NO", "''::text"),
    ("audience", "text", "NO", None),
    ("issued_at", "timestamp with time zone", "NO", None),
    ("expires_at", "timestamp with time zone", "NO", None),
]
DATE_MESSAGE = "--before must be a calendar date written YYYY-MM-DD"
BUSY_MESSAGE = ("the tokens table is busy (no lock within the lock timeout); nothing was "
                "changed, try again")
TK_OK, TK_INVALID, TK_UNAVAILABLE = 0, -2, -5


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def connect(pg, dbname):
    """An autocommit connection whose session time zone is UTC, so bounds
    and timestamps read back in one spelling."""
    conn = psycopg2.connect(pg.url_for(dbname), connect_timeout=10)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
    return conn


def query(pg, dbname, sql, params=None):
    conn = connect(pg, dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else cur.rowcount
    finally:
        conn.close()


def fresh_db(pg, tokenctl, dbname, env=None):
    """A new database with every migration applied; returns its URL."""
    url = pg.create_database(dbname)
    result = tokenctl("migrate", db=url, env=env)
    assert result.returncode == 0, result.stderr
    return url


def db_today(pg, dbname):
    return query(pg, dbname, "SELECT (now() AT TIME ZONE 'UTC')::date")[0][0]


def partition_name(day):
    return "tokens_p" + day.strftime("%Y%m%d")


def bound(day):
    return f"FOR VALUES FROM ('{day} 00:00:00+00') TO ('{day + datetime.timedelta(days=1)} " \
           "00:00:00+00')"


def partitions(pg, dbname):
    """{partition name: its bound} of the tokens table."""
    rows = query(pg, dbname,
                 "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
                 " JOIN pg_class c ON c.oid = i.inhrelid"
                 " WHERE i.inhparent = 'tokens'::regclass")
    return dict(rows)


def expected_partitions(first_day, days_ahead):
    days = [first_day + datetime.timedelta(days=n) for n in range(days_ahead + 1)]
    return {**{partition_name(day): bound(day) for day in days},
            "tokens_default": "DEFAULT"}


def insert_token(cur, client_id, issued_at, jti=None, on_conflict=True):
    """Inserts one record as the flusher will (ON CONFLICT DO NOTHING);
    returns the number of rows inserted."""
    sql = ("INSERT INTO tokens (jti, client_id, scope, audience, issued_at, expires_at)"
           " VALUES (%s, %s, 'read', 'https://api.example.com', %s::timestamptz,"
           " %s::timestamptz + interval '1 hour')")
    if on_conflict:
        sql += " ON CONFLICT DO NOTHING"
    cur.execute(sql, (str(jti or uuid.uuid4()), client_id, issued_at, issued_at))
    return cur.rowcount


def rows_by_partition(pg, dbname):
    """{partition name: number of rows}."""
    return dict(query(pg, dbname,
                      "SELECT tableoid::regclass::text, count(*) FROM tokens GROUP BY 1"))


def create_day_partition(cur, day):
    """A day partition made by hand, named and bounded like the ones the
    SQL functions make (they only make today's and later ones)."""
    cur.execute(f"CREATE TABLE {partition_name(day)} PARTITION OF tokens "
                f"FOR VALUES FROM ('{day} 00:00:00+00') "
                f"TO ('{day + datetime.timedelta(days=1)} 00:00:00+00')")


def assert_one_error_line(result, message=None, status=1):
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tokenctl: "), result.stderr
    if message is not None:
        assert lines[0] == "tokenctl: " + message


def closed_db():
    """A URL nobody listens on: touching it shows as a connection error."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/tokend"


# ---------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------

def test_migrate_creates_partitioned_table(pg, tokenctl, migrated_db):
    columns = query(pg, "tokend",
                    "SELECT column_name, data_type, is_nullable, column_default"
                    " FROM information_schema.columns WHERE table_name = 'tokens'"
                    " ORDER BY ordinal_position")
    # Exactly these: nothing (such as the JWT) that would let a reader
    # present a token.
    assert columns == COLUMNS
    assert query(pg, "tokend", "SELECT pg_get_partkeydef('tokens'::regclass)") == \
        [("RANGE (issued_at)",)]
    indexes = dict(query(pg, "tokend",
                         "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tokens'"))
    assert indexes == {
        "tokens_pkey": "CREATE UNIQUE INDEX tokens_pkey ON ONLY public.tokens USING btree "
                       "(jti, issued_at)",
        "tokens_client_id_issued_at_idx": "CREATE INDEX tokens_client_id_issued_at_idx ON ONLY "
                                          "public.tokens USING btree (client_id, issued_at)",
    }
    assert query(pg, "tokend", "SELECT contype FROM pg_constraint"
                               " WHERE conrelid = 'tokens'::regclass ORDER BY conname") == [("p",)]
    functions = query(pg, "tokend",
                      "SELECT p.oid::regprocedure::text, pg_get_function_result(p.oid)"
                      " FROM pg_proc p WHERE proname IN ('tokend_ensure_token_partitions',"
                      " 'tokend_drop_token_partitions') ORDER BY 1")
    assert functions == [("tokend_drop_token_partitions(date)", "record"),
                         ("tokend_ensure_token_partitions(integer)", "integer")]


def test_fresh_install_has_partitions_from_today(pg, tokenctl):
    # tokenctl's session in a far-east time zone: the days must still be
    # UTC days with UTC midnight bounds.
    before = db_today(pg, "postgres")
    fresh_db(pg, tokenctl, "tokens_fresh", env={"PGTZ": "Pacific/Kiritimati"})
    after = db_today(pg, "tokens_fresh")
    found = partitions(pg, "tokens_fresh")
    assert found in (expected_partitions(before, 2), expected_partitions(after, 2))
    # Every day partition carries the parent's indexes.
    for name in found:
        indexes = query(pg, "tokens_fresh",
                        "SELECT indexdef FROM pg_indexes WHERE tablename = %s ORDER BY 1",
                        (name,))
        assert [row[0].split(" USING ")[1] for row in indexes] == [
            "btree (client_id, issued_at)", "btree (jti, issued_at)"], name


# ---------------------------------------------------------------------------
# rows
# ---------------------------------------------------------------------------

def test_same_record_twice_keeps_one_row(pg, tokenctl):
    fresh_db(pg, tokenctl, "tokens_idempotent")
    today = db_today(pg, "tokens_idempotent")
    conn = connect(pg, "tokens_idempotent")
    try:
        with conn.cursor() as cur:
            for issued_at in (f"{today} 12:00:00.123456+00", "2001-02-03 04:05:06+00"):
                jti = uuid.uuid4()
                assert insert_token(cur, "svc-a", issued_at, jti) == 1
                # The flusher re-sends the batch after a crash: same record.
                assert insert_token(cur, "svc-a", issued_at, jti) == 0
                cur.execute("SELECT count(*) FROM tokens WHERE jti = %s", (str(jti),))
                assert cur.fetchone() == (1,)
                # Without ON CONFLICT the key refuses the copy outright.
                with pytest.raises(psycopg2.errors.UniqueViolation):
                    insert_token(cur, "svc-a", issued_at, jti, on_conflict=False)
    finally:
        conn.close()
    assert rows_by_partition(pg, "tokens_idempotent") == {partition_name(today): 1,
                                                          "tokens_default": 1}


def test_day_without_partition_goes_to_default_then_moves(pg, tokenctl):
    dbname = "tokens_default_rows"
    fresh_db(pg, tokenctl, dbname)
    today = db_today(pg, dbname)
    later = today + datetime.timedelta(days=10)
    conn = connect(pg, dbname)
    try:
        with conn.cursor() as cur:
            future_jti = uuid.uuid4()
            insert_token(cur, "svc", "2020-01-01 00:00:00+00")
            insert_token(cur, "svc", f"{today} 00:00:00+00")
            insert_token(cur, "svc", f"{later} 23:59:59.999999+00", future_jti)
            insert_token(cur, "svc", f"{later + datetime.timedelta(days=1)} 00:00:00+00")
            assert rows_by_partition(pg, dbname) == {"tokens_default": 3,
                                                     partition_name(today): 1}

            # Creating day +10 moves its row out of the default partition.
            cur.execute("SELECT tokend_ensure_token_partitions(10)")
            assert cur.fetchone() == (8,)  # days +3 .. +10
            assert rows_by_partition(pg, dbname) == {"tokens_default": 2,
                                                     partition_name(today): 1,
                                                     partition_name(later): 1}
            assert partitions(pg, dbname) == expected_partitions(today, 10)
            # The moved row still meets its key: a re-send adds nothing.
            assert insert_token(cur, "svc", f"{later} 23:59:59.999999+00", future_jti) == 0

            cur.execute("SELECT tokend_ensure_token_partitions(10)")
            assert cur.fetchone() == (0,)

            for bad in (-1, 367, None):
                with pytest.raises(psycopg2.errors.InvalidParameterValue):
                    cur.execute("SELECT tokend_ensure_token_partitions(%s)", (bad,))
    finally:
        conn.close()


def test_ensure_recreates_a_dropped_default_partition(pg, tokenctl):
    dbname = "tokens_no_default"
    fresh_db(pg, tokenctl, dbname)
    query(pg, dbname, "DROP TABLE tokens_default")
    assert query(pg, dbname, "SELECT tokend_ensure_token_partitions(2)") == [(0,)]
    assert partitions(pg, dbname)["tokens_default"] == "DEFAULT"


# ---------------------------------------------------------------------------
# tokenctl tokens count
# ---------------------------------------------------------------------------

def test_tokens_count(pg, tokenctl):
    dbname = "tokens_count"
    url = fresh_db(pg, tokenctl, dbname)
    result = tokenctl("tokens", "count", db=url)
    assert (result.returncode, result.stdout, result.stderr) == (0, "0\n", "")

    today = db_today(pg, dbname)
    conn = connect(pg, dbname)
    try:
        with conn.cursor() as cur:
            for issued_at in (f"{today} 01:00:00+00", "2020-05-05 05:05:05+00",
                              f"{today + datetime.timedelta(days=1)} 01:00:00+00"):
                insert_token(cur, "svc-count-a", issued_at)
            for issued_at in (f"{today} 02:00:00+00", "2021-01-01 00:00:00+00"):
                insert_token(cur, "svc-count-b", issued_at)
    finally:
        conn.close()

    for args, expected in ((("tokens", "count"), "5\n"),
                           (("tokens", "count", "--client", "svc-count-a"), "3\n"),
                           (("--client=svc-count-b", "tokens", "count"), "2\n"),
                           (("tokens", "count", "--client", "ghost"), "0\n")):
        result = tokenctl(*args, db=url)
        assert (result.returncode, result.stdout, result.stderr) == (0, expected, ""), args


def test_tokens_count_on_shared_database(tokenctl, migrated_db):
    result = tokenctl("tokens", "count")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.strip().isdigit() and result.stdout.endswith("\n")


@pytest.mark.parametrize("args, message, status", [
    (("tokens", "count", "--client", "a b"),
     "invalid client id: use 1 to 128 printable ASCII characters without spaces", 1),
    (("tokens", "count", "--client", ""),
     "invalid client id: use 1 to 128 printable ASCII characters without spaces", 1),
    (("tokens", "count", "--client", "x" * 129),
     "invalid client id: use 1 to 128 printable ASCII characters without spaces", 1),
    (("tokens", "count", "--before", "2026-01-01"),
     "tokens count does not take --before (see tokenctl --help)", 2),
    (("tokens", "count", "extra"), "unexpected argument 'extra' (see tokenctl --help)", 2),
    (("tokens",), "'tokens' needs a subcommand (see tokenctl --help)", 2),
    (("tokens", "list"), "unknown command 'tokens list' (see tokenctl --help)", 2),
    (("tokens", "purge"), "tokens purge needs --before (see tokenctl --help)", 2),
    (("tokens", "purge", "--before"), "option '--before' needs a value (see tokenctl --help)", 2),
    (("tokens", "purge", "--before", "2026-01-01", "--client", "a"),
     "tokens purge does not take --client (see tokenctl --help)", 2),
])
def test_tokens_command_line_errors(tokenctl, args, message, status):
    result = tokenctl(*args, db=closed_db())
    assert_one_error_line(result, message, status)


def test_tokens_commands_on_unmigrated_database(pg, tokenctl):
    url = pg.create_database("tokens_unmigrated")
    for args in (("tokens", "count"), ("tokens", "count", "--client", "a"),
                 ("tokens", "purge", "--before", "2026-01-01")):
        result = tokenctl(*args, db=url)
        assert_one_error_line(result, "the database has no tokens table: run 'tokenctl migrate'")


def test_tokens_commands_database_unreachable(tokenctl):
    for args in (("tokens", "count"), ("tokens", "purge", "--before", "2024-02-29")):
        result = tokenctl(*args, db=closed_db(), timeout=20)
        assert_one_error_line(result)
        assert result.stderr.startswith("tokenctl: cannot connect to the database: ")


# ---------------------------------------------------------------------------
# tokenctl tokens purge
# ---------------------------------------------------------------------------

def make_history(pg, dbname):
    """Day partitions 2020-01-01 .. 2020-01-03 with rows, and rows in the
    default partition on both sides of 2020-01-03."""
    conn = connect(pg, dbname)
    try:
        with conn.cursor() as cur:
            for day in range(1, 4):
                create_day_partition(cur, datetime.date(2020, 1, day))
            for issued_at in ("2020-01-01 00:00:00+00", "2020-01-01 23:59:59.999999+00",
                              "2020-01-02 12:00:00+00",
                              "2020-01-03 00:00:00+00",          # first instant kept
                              "2019-06-01 10:00:00+00",          # default, deleted
                              "2020-01-02 18:59:59-05",          # 23:59:59 UTC, p20200102
                              "2019-12-31 23:59:59.999999+00",   # default, deleted
                              "2020-01-04 00:00:00+00",          # default, kept
                              "2020-01-03 20:00:00-05",          # 01-04 01:00 UTC, kept
                              "2020-01-04 23:59:59.999999+00",   # default, kept
                              "2020-01-04 20:00:00-05"):         # 01-05 01:00 UTC, kept
                insert_token(cur, "svc-purge", issued_at)
    finally:
        conn.close()


def test_tokens_purge(pg, tokenctl):
    dbname = "tokens_purge"
    url = fresh_db(pg, tokenctl, dbname)
    make_history(pg, dbname)
    today = db_today(pg, dbname)
    assert rows_by_partition(pg, dbname) == {"tokens_p20200101": 2, "tokens_p20200102": 2,
                                             "tokens_p20200103": 1, "tokens_default": 6}

    # The session's time zone must not shift the UTC day.
    result = tokenctl("tokens", "purge", "--before", "2020-01-03", db=url,
                      env={"PGTZ": "America/New_York"})
    assert (result.returncode, result.stdout, result.stderr) == \
        (0, "dropped 2 partitions, deleted 2 rows\n", "")
    assert rows_by_partition(pg, dbname) == {"tokens_p20200103": 1, "tokens_default": 4}
    assert query(pg, dbname, "SELECT min(issued_at)::text FROM tokens") == \
        [("2020-01-03 00:00:00+00",)]
    assert set(partitions(pg, dbname)) == set(expected_partitions(today, 2)) | {
        "tokens_p20200103"}

    result = tokenctl("tokens", "purge", "--before", "2020-01-03", db=url)
    assert (result.returncode, result.stdout) == (0, "dropped 0 partitions, deleted 0 rows\n")

    result = tokenctl("--before=2020-01-05", "tokens", "purge", db=url,
                      env={"PGTZ": "Asia/Tokyo"})
    assert (result.returncode, result.stdout) == (0, "dropped 1 partitions, deleted 3 rows\n")
    assert query(pg, dbname, "SELECT tableoid::regclass::text, issued_at::text FROM tokens") == \
        [("tokens_default", "2020-01-05 01:00:00+00")]
    result = tokenctl("tokens", "purge", "--before", "2020-01-06", db=url)
    assert (result.returncode, result.stdout) == (0, "dropped 0 partitions, deleted 1 rows\n")
    assert rows_by_partition(pg, dbname) == {}
    assert set(partitions(pg, dbname)) == set(expected_partitions(today, 2))
    # Inserts still find a home for every day.
    conn = connect(pg, dbname)
    try:
        with conn.cursor() as cur:
            assert insert_token(cur, "svc-purge", "2020-01-01 00:00:00+00") == 1
    finally:
        conn.close()


@pytest.mark.parametrize("date", [
    "2026-02-30", "2026-13-01", "yesterday", "2025-02-29", "1900-02-29", "2026-04-31",
    "2026-00-10", "2026-01-00", "2026-01-32", "0000-01-01", "2026-1-01", "2026-01-1",
    "20260101", "2026/01/01", "2026-01-01T00:00:00", "2026-01-01 ", " 2026-01-01",
    "+026-01-01", "2026-01-0a", "", "2026-01-01\n", "\u0662026-01-01",
])
def test_tokens_purge_rejects_bad_dates_before_touching_database(tokenctl, date):
    result = tokenctl("tokens", "purge", "--before", date, db=closed_db())
    assert_one_error_line(result, DATE_MESSAGE)


def test_tokens_purge_bad_date_leaves_database_alone(pg, tokenctl):
    dbname = "tokens_purge_bad"
    url = fresh_db(pg, tokenctl, dbname)
    make_history(pg, dbname)
    before = (partitions(pg, dbname), rows_by_partition(pg, dbname))
    for date in ("2026-02-30", "2026-13-01", "yesterday"):
        assert_one_error_line(tokenctl("tokens", "purge", "--before", date, db=url),
                              DATE_MESSAGE)
    assert (partitions(pg, dbname), rows_by_partition(pg, dbname)) == before


@pytest.mark.parametrize("date", ["2024-02-29", "2000-02-29", "0001-01-01", "9999-12-31",
                                  "2026-12-31"])
def test_tokens_purge_accepts_real_dates(tokenctl, date):
    # Valid, so it gets as far as connecting (to nothing).
    result = tokenctl("tokens", "purge", "--before", date, db=closed_db())
    assert_one_error_line(result)
    assert result.stderr.startswith("tokenctl: cannot connect to the database: ")


def test_tokens_purge_gives_up_on_a_busy_table(pg, tokenctl):
    dbname = "tokens_purge_busy"
    url = fresh_db(pg, tokenctl, dbname)
    make_history(pg, dbname)
    before = rows_by_partition(pg, dbname)
    reader = connect(pg, dbname)
    try:
        reader.autocommit = False
        with reader.cursor() as cur:  # a long report holding ACCESS SHARE
            cur.execute("SELECT count(*) FROM tokens")
        started = time.monotonic()
        result = tokenctl("tokens", "purge", "--before", "2020-01-03", db=url, timeout=30)
        elapsed = time.monotonic() - started
        assert_one_error_line(result, BUSY_MESSAGE)
        assert 0.9 <= elapsed < 10  # lock_timeout is 1 s
    finally:
        reader.rollback()
        reader.close()
    assert rows_by_partition(pg, dbname) == before
    result = tokenctl("tokens", "purge", "--before", "2020-01-03", db=url)
    assert result.stdout == "dropped 2 partitions, deleted 2 rows\n", result.stderr


# ---------------------------------------------------------------------------
# two maintainers at once (two hosts' flushers)
# ---------------------------------------------------------------------------

def run_concurrently(functions, timeout_s=60):
    """Runs each function in its own thread, all released at once; returns
    their results in order, re-raising the first exception."""
    barrier = threading.Barrier(len(functions))
    results, errors = [None] * len(functions), []

    def body(index, function):
        try:
            barrier.wait(timeout=timeout_s)
            results[index] = function()
        except BaseException as error:  # noqa: B902 - re-raised below
            errors.append(error)

    threads = [threading.Thread(target=body, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s)
    assert not any(thread.is_alive() for thread in threads), "a maintainer hung"
    if errors:
        raise errors[0]
    return results


def test_two_maintainers_at_once(pg, tokenctl):
    dbname = "tokens_concurrent"
    fresh_db(pg, tokenctl, dbname)
    today = db_today(pg, dbname)
    setup = connect(pg, dbname)
    with setup.cursor() as cur:
        for day in range(1, 11):
            create_day_partition(cur, datetime.date(2020, 1, day))
    setup.close()
    conns = [connect(pg, dbname) for _ in range(3)]
    try:
        def call(conn, sql, params):
            def function():
                with conn.cursor() as cur:
                    cur.execute(sql, params)
                    return cur.fetchone()
            return function

        def insert_rows(conn, days_ahead):
            def function():
                inserted = 0
                with conn.cursor() as cur:
                    for n in range(days_ahead - 4, days_ahead + 1):
                        day = today + datetime.timedelta(days=n)
                        inserted += insert_token(cur, "svc-race", f"{day} 06:00:00+00")
                return inserted
            return function

        for round_number in range(5):
            days_ahead = 2 + 5 * (round_number + 1)
            ensure = "SELECT tokend_ensure_token_partitions(%s)"
            results = run_concurrently([call(conns[0], ensure, (days_ahead,)),
                                        call(conns[1], ensure, (days_ahead,)),
                                        insert_rows(conns[2], days_ahead)])
            assert sorted(r[0] for r in results[:2]) == [0, 5], results
            assert results[2] == 5

            before_day = datetime.date(2020, 1, 1 + 2 * (round_number + 1))
            drop = "SELECT dropped_partitions, deleted_rows FROM tokend_drop_token_partitions(%s)"
            results = run_concurrently([call(conns[0], drop, (before_day,)),
                                        call(conns[1], drop, (before_day,))])
            assert sorted(results) == [(0, 0), (2, 0)], results
        assert partitions(pg, dbname) == expected_partitions(today, 27)
        assert rows_by_partition(pg, dbname).get("tokens_default") is None
        assert query(pg, dbname, "SELECT count(*) FROM tokens") == [(25,)]
    finally:
        for conn in conns:
            conn.close()


# ---------------------------------------------------------------------------
# src/token_partitions.c, called directly (the flusher's way in)
# ---------------------------------------------------------------------------

class PartitionsResult(ctypes.Structure):
    _fields_ = [("created_partitions", ctypes.c_int), ("dropped_partitions", ctypes.c_int),
                ("deleted_rows", ctypes.c_int64)]


def pkg_config(*args):
    return run(["pkg-config", *args, "libpq"]).stdout.split()


@pytest.fixture(scope="module")
def partitions_lib(tmp_path_factory):
    """src/token_partitions.c built as a shared library, with the libpq
    functions the tests need to hand it a connection."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None or shutil.which("pkg-config") is None:
        pytest.skip("needs a C compiler and pkg-config to build src/token_partitions.c")
    library = tmp_path_factory.mktemp("token_partitions") / "libtoken_partitions.so"
    run([cc, "-shared", "-fPIC", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
         f"-I{REPO_ROOT / 'include'}", *pkg_config("--cflags"),
         REPO_ROOT / "src" / "token_partitions.c", REPO_ROOT / "src" / "pg_error.c",
         REPO_ROOT / "src" / "logging.c",
         "-o", library, *pkg_config("--libs")])
    lib = ctypes.CDLL(str(library))
    error = (ctypes.c_char_p, ctypes.c_size_t)
    result = ctypes.POINTER(PartitionsResult)
    signatures = {
        "PQconnectdb": (ctypes.c_void_p, (ctypes.c_char_p,)),
        "PQfinish": (None, (ctypes.c_void_p,)),
        "PQexec": (ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_char_p)),
        "PQclear": (None, (ctypes.c_void_p,)),
        "PQstatus": (ctypes.c_int, (ctypes.c_void_p,)),
        "token_partitions_date_valid": (ctypes.c_bool, (ctypes.c_char_p,)),
        "token_partitions_maintain": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                                     result, *error)),
        "token_partitions_purge_before": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_char_p,
                                                         result, *error)),
        "token_partitions_count_tokens": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_char_p,
                                                         ctypes.POINTER(ctypes.c_int64),
                                                         *error)),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


class CConnection:
    """One libpq connection driven through the C module."""

    def __init__(self, lib, url):
        self.lib = lib
        self.conn = lib.PQconnectdb(url.encode())
        assert self.conn and lib.PQstatus(self.conn) == 0, "CONNECTION_OK expected"

    def close(self):
        self.lib.PQfinish(self.conn)

    def exec(self, sql):
        self.lib.PQclear(self.lib.PQexec(self.conn, sql.encode()))

    def maintain(self, days_ahead, retention_days):
        result, error = PartitionsResult(), ctypes.create_string_buffer(512)
        rc = self.lib.token_partitions_maintain(self.conn, days_ahead, retention_days,
                                                ctypes.byref(result), error, len(error))
        return rc, (result.created_partitions, result.dropped_partitions,
                    result.deleted_rows), error.value.decode()

    def purge_before(self, date):
        result, error = PartitionsResult(), ctypes.create_string_buffer(512)
        rc = self.lib.token_partitions_purge_before(self.conn, date.encode(),
                                                    ctypes.byref(result), error, len(error))
        return rc, (result.created_partitions, result.dropped_partitions,
                    result.deleted_rows), error.value.decode()

    def count(self, client_id=None):
        count, error = ctypes.c_int64(-1), ctypes.create_string_buffer(512)
        rc = self.lib.token_partitions_count_tokens(
            self.conn, client_id.encode() if client_id is not None else None,
            ctypes.byref(count), error, len(error))
        return rc, count.value, error.value.decode()


def test_c_date_valid(partitions_lib):
    valid = partitions_lib.token_partitions_date_valid
    for date in ("2024-02-29", "2000-02-29", "2026-12-31", "0001-01-01", "9999-12-31",
                 "2026-04-30"):
        assert valid(date.encode()) is True, date
    for date in ("2026-02-30", "2026-13-01", "yesterday", "2025-02-29", "1900-02-29",
                 "2100-02-29", "2026-04-31", "0000-01-01", "2026-00-01", "2026-01-00",
                 "2026-1-01", "2026-01-01x", "2026-01-0", "", "2026_01_01"):
        assert valid(date.encode()) is False, date
    assert valid(None) is False


def test_c_maintain_purge_count(pg, tokenctl, partitions_lib):
    dbname = "tokens_c_module"
    url = fresh_db(pg, tokenctl, dbname)
    today = db_today(pg, dbname)
    yesterday = today - datetime.timedelta(days=1)
    setup = connect(pg, dbname)
    with setup.cursor() as cur:
        create_day_partition(cur, datetime.date(2020, 1, 1))
        create_day_partition(cur, yesterday)
        insert_token(cur, "svc-c", "2020-01-01 01:00:00+00")
        insert_token(cur, "svc-c", f"{yesterday} 01:00:00+00")
        insert_token(cur, "svc-c", "2019-01-01 01:00:00+00")   # default partition
        insert_token(cur, "svc-other", f"{today} 01:00:00+00")
    setup.close()

    conn = CConnection(partitions_lib, url)
    try:
        assert conn.count() == (TK_OK, 4, "")
        assert conn.count("svc-c") == (TK_OK, 3, "")
        assert conn.count("nobody") == (TK_OK, 0, "")

        # Create +3 and +4; keep yesterday (retention 1 day), drop 2020-01-01
        # and the 2019 row of the default partition.
        assert conn.maintain(4, 1) == (TK_OK, (2, 1, 1), "")
        assert conn.maintain(4, 1) == (TK_OK, (0, 0, 0), "")
        assert set(partitions(pg, dbname)) == set(expected_partitions(today, 4)) | {
            partition_name(yesterday)}
        assert conn.count() == (TK_OK, 2, "")

        assert conn.purge_before(str(today)) == (TK_OK, (0, 1, 0), "")
        assert conn.count() == (TK_OK, 1, "")

        # Refused before anything is sent.
        assert conn.maintain(-1, 1) == (TK_INVALID, (0, 0, 0), "days ahead must be from 0 to 366")
        assert conn.maintain(367, 1)[0] == TK_INVALID
        assert conn.maintain(2, 0) == (TK_INVALID, (0, 0, 0),
                                       "retention must be from 1 to 36500 days")
        assert conn.maintain(2, 36501)[0] == TK_INVALID
        assert conn.purge_before("2026-02-30") == (
            TK_INVALID, (0, 0, 0), "the date must be a calendar date written YYYY-MM-DD")

        # Inside a caller's transaction: refused, the transaction untouched.
        conn.exec("BEGIN")
        assert conn.maintain(2, 1) == (
            TK_INVALID, (0, 0, 0), "partition upkeep needs a connection outside any transaction")
        assert conn.purge_before("2020-01-01")[0] == TK_INVALID
        conn.exec("ROLLBACK")
        assert conn.maintain(2, 1) == (TK_OK, (0, 0, 0), "")
    finally:
        conn.close()


def test_c_maintain_twice_at_once(pg, tokenctl, partitions_lib):
    dbname = "tokens_c_concurrent"
    url = fresh_db(pg, tokenctl, dbname)
    today = db_today(pg, dbname)
    setup = connect(pg, dbname)
    with setup.cursor() as cur:
        for day in range(1, 5):
            create_day_partition(cur, datetime.date(2020, 1, day))
    setup.close()
    conns = [CConnection(partitions_lib, url) for _ in range(2)]
    try:
        results = run_concurrently([lambda c=c: c.maintain(30, 7) for c in conns])
        # They serialise on the advisory lock: one does the work, the other
        # finds nothing left to do. On a loaded machine the first can hold
        # the lock longer than the functions' 1 s lock_timeout; the second
        # then reports the table busy having changed nothing (as documented:
        # run it again), and a second try finds nothing left to do.
        for i, (rc, counts, message) in enumerate(results):
            if rc != TK_OK:
                assert (counts, message.startswith("the tokens table is busy")) == \
                    ((0, 0, 0), True), results
                results[i] = conns[i].maintain(30, 7)
        assert [rc for rc, _, _ in results] == [TK_OK, TK_OK], results
        created = sorted(counts[0] for _, counts, _ in results)
        dropped = sorted(counts[1] for _, counts, _ in results)
        assert (created, dropped) == ([0, 28], [0, 4]), results
        assert partitions(pg, dbname) == expected_partitions(today, 30)
    finally:
        for conn in conns:
            conn.close()


def test_c_connection_lost(pg, tokenctl, partitions_lib):
    dbname = "tokens_c_lost"
    url = fresh_db(pg, tokenctl, dbname)
    conn = CConnection(partitions_lib, url)
    try:
        query(pg, "postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                              " WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,))
        time.sleep(0.2)
        rc, _, message = conn.maintain(2, 1)
        assert rc == TK_UNAVAILABLE
        assert message.startswith("database unavailable: ")
        rc, count, message = conn.count()
        assert (rc, count) == (TK_UNAVAILABLE, 0)
    finally:
        conn.close()
