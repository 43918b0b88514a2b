"""Every issued token is recorded in PostgreSQL exactly once (issue 3).

A worker puts each token's record into the shared-memory queue before it
answers; the flusher writes the queue to the `tokens` table. These tests
issue tokens through nginx, read the jti and claims out of every 200
answer, and check that the table ends up holding exactly those jtis - none
missing, none extra, none twice, each row equal to its token's claims -
through the failures the design promises to survive: many concurrent
clients, the flusher killed, PostgreSQL restarted or away until the queue
is full, SIGTERM under load, everything killed with tokens still queued,
and a segment that another instance holds or that was made for another
queue_capacity.

Each test uses clients of its own, so the rows it counts (by client_id) are
its own even in the shared `tokend` database. Each test starts a stack of
its own; segment_stack stops every process it started and removes the
instance's shared-memory segment even when the test fails; a test that
stops PostgreSQL starts it again in a `finally`.
"""

import os
import re
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import (TokenTraffic, answers_of, assert_stored_exactly, issue,
                      kill_tokend_hard, segment_name, segment_path, segment_stack,
                      token_row_count, wait_for_rows, wait_until)

# Drain fast: whatever is queued is written at least every 100 ms. And a
# generous db_timeout_ms, so that a loaded machine does not turn a slow
# connect into an outage the tests did not make (they count outage lines).
FAST_FLUSH = {"flush_interval_ms": "100", "db_timeout_ms": "5000"}
# After PostgreSQL comes back the flusher may still sit out part of its
# backoff (doubling from 100 ms up to 10 s); outages here last a few
# seconds, so the rows are in well within this.
DRAIN_TIMEOUT_S = 30.0
# The shape of every line tokend logs (src/logging.c).
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ tokend\[\d+\] (debug|info|warn|error): ")


def assert_queue_full_answer(answer):
    """A 503 for a full queue: the OAuth error, Retry-After, and no token."""
    assert answer.status == 503, answer
    assert answer.body["error"] == "temporarily_unavailable", answer
    assert answer.response.headers.get("Retry-After") == "1", answer
    assert answer.response.headers.get("Cache-Control") == "no-store", answer
    assert b"access_token" not in answer.response.body, answer


def lines_of(log, pid, text):
    """The log lines that process `pid` wrote containing `text`."""
    return [line for line in log.splitlines() if f"tokend[{pid}] " in line and text in line]


def start_tokend_expecting_failure(tokend, config_path, timeout_s=20):
    """Runs tokend -c config_path, which must exit by itself; returns
    (exit code, log). Should it keep running, its whole process group is
    killed and the test fails."""
    log_path = config_path.with_suffix(".log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(tokend.binary), "-c", str(config_path)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        raise AssertionError(f"tokend -c {config_path} kept running:\n{log_path.read_text()}")
    return code, log_path.read_text(errors="replace")


def write_config_variant(tokend, name, **changes):
    """A copy of tokend's configuration with some keys changed."""
    settings = dict(tokend.settings, **changes)
    path = tokend.base_dir / name
    path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
    return path


def warm_up(stack, pg, client):
    """One token, then waits until it is stored: the (single) worker has the
    client cached and the queue is empty."""
    answer = issue(stack.port, *client)
    assert answer.status == 200, answer
    wait_for_rows(pg, [client[0]], 1)
    return answer


# ---------------------------------------------------------------------------
# the normal case
# ---------------------------------------------------------------------------

def test_concurrent_clients_every_token_stored_once(build_dir, pg, keys, make_client):
    """2000 tokens from 8 threads, two clients, several scopes and
    audiences: exactly 2000 rows, the answered jtis, each row matching."""
    first = make_client("persist-many-a", scopes="read write admin", default_scopes="read",
                        audience="https://a.example https://b.example")
    second = make_client("persist-many-b", scopes="read write", default_scopes="read write")
    variants = [
        (first, {}),
        (first, {"scope": "write admin", "audience": "https://b.example"}),
        (first, {"scope": "admin", "resource": "https://a.example"}),
        (second, {}),
        (second, {"scope": "write"}),
    ]
    total = 2000
    with segment_stack(build_dir, pg, keys, workers=2, settings=FAST_FLUSH) as stack:
        def one(index):
            client, params = variants[index % len(variants)]
            return issue(stack.port, *client, params=params)

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(one, range(total)))
        bad = [a for a in answers if a.status != 200]
        assert not bad, f"{len(bad)} of {total} not 200, e.g. {bad[:3]}"
        # The variants really differ in what is stored.
        assert {(a.claims["client_id"], a.claims["scope"], a.claims["aud"])
                for a in answers} == {
            (first[0], "read", "https://a.example"),
            (first[0], "write admin", "https://b.example"),
            (first[0], "admin", "https://a.example"),
            (second[0], "read write", stack.issuer),
            (second[0], "write", stack.issuer)}

        clients = [first[0], second[0]]
        wait_for_rows(pg, clients, total)
        assert_stored_exactly(pg, clients, answers)
        # Nothing arrives late, either.
        time.sleep(0.3)
        assert token_row_count(pg, clients) == total
        log = stack.tokend.log()
        assert "gave up slot" not in log, log
        assert stack.tokend.stop() == 0
        assert "stopped; every issued token is in the database" in stack.tokend.log()


# ---------------------------------------------------------------------------
# the flusher killed
# ---------------------------------------------------------------------------

def test_flusher_killed_under_load_loses_and_duplicates_nothing(build_dir, pg, keys,
                                                                make_client):
    """kill -9 of the flusher, three times, while tokens are issued and
    written in small batches: each is replaced, and every answered token is
    stored exactly once (a batch the killed flusher had sent but not
    released is sent again and not stored twice)."""
    client = make_client("persist-flusher")
    settings = dict(FAST_FLUSH, flush_batch="20")
    with segment_stack(build_dir, pg, keys, workers=2, settings=settings) as stack:
        tokend = stack.tokend
        killed = []
        with TokenTraffic(stack.port, *client, threads=3) as traffic:
            for _ in range(3):
                flusher = wait_until(tokend.flusher_pid, 5.0, message="a flusher")
                # Let this flusher write a few batches first.
                rows = token_row_count(pg, [client[0]])
                wait_until(lambda: token_row_count(pg, [client[0]]) >= rows + 40, 10,
                           message="the flusher to write")
                os.kill(flusher, signal.SIGKILL)
                killed.append(flusher)
                wait_until(lambda: tokend.flusher_pid() not in (None, flusher), 5.0,
                           message=f"a flusher replacing {flusher}")
            ok_at_last_kill = traffic.ok_count()
            wait_until(lambda: traffic.ok_count() >= ok_at_last_kill + 100, 10,
                       message="traffic after the last kill")
            results = traffic.stop()

        answers = answers_of(results)
        assert len(answers) == len(results), [r for r in results if isinstance(r[2], str)][:5]
        assert {a.status for a in answers} == {200}, [a for a in answers if a.status != 200][:5]
        log = tokend.log()
        for pid in killed:
            assert re.search(rf"error: flusher {pid} killed by signal 9\b", log), log

        wait_for_rows(pg, [client[0]], len(answers), DRAIN_TIMEOUT_S)
        assert_stored_exactly(pg, [client[0]], answers)
        assert tokend.stop() == 0


def test_worker_killed_under_load_loses_no_answered_token(build_dir, pg, keys, make_client):
    """kill -9 of a worker while it issues tokens: every token answered with
    200 is stored once. The only rows beyond them are of requests the dead
    worker had recorded but not answered (those clients got a 502), and a
    slot it had claimed but not filled does not stall the queue."""
    client = make_client("persist-worker")
    with segment_stack(build_dir, pg, keys, workers=2, settings=FAST_FLUSH) as stack:
        tokend = stack.tokend
        with TokenTraffic(stack.port, *client, threads=4) as traffic:
            wait_until(lambda: traffic.ok_count() >= 100, 10, message="traffic before the kill")
            victim = tokend.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: len(tokend.worker_pids()) == 2 and
                       victim not in tokend.worker_pids(), 5.0, message="a replacement worker")
            ok_at_replacement = traffic.ok_count()
            wait_until(lambda: traffic.ok_count() >= ok_at_replacement + 100, 10,
                       message="traffic after the replacement")
            results = traffic.stop()

        answers = answers_of(results)
        assert len(answers) == len(results), [r for r in results if isinstance(r[2], str)][:5]
        assert {a.status for a in answers} <= {200, 502}, \
            [a for a in answers if a.status not in (200, 502)][:5]
        answered = {a.jti for a in answers if a.status == 200}
        lost_answers = sum(1 for a in answers if a.status == 502)

        def all_stored():
            stored = [row[0] for row in pg.psql(
                "SELECT jti::text FROM tokens WHERE client_id = %s", (client[0],))]
            return answered <= set(stored) and stored
        stored = wait_until(all_stored, DRAIN_TIMEOUT_S, interval_s=0.1,
                            message="every answered token stored")
        assert len(stored) == len(set(stored)), "a jti stored twice"
        assert len(stored) - len(answered) <= lost_answers, (len(stored), len(answered),
                                                             lost_answers)
        assert tokend.stop() == 0
        assert "stopped; every issued token is in the database" in tokend.log()


# ---------------------------------------------------------------------------
# PostgreSQL away
# ---------------------------------------------------------------------------

def test_postgresql_restart_under_load(build_dir, pg, keys, make_client):
    """PostgreSQL stops and starts while tokens are issued: the cached client
    is served throughout (the queue holds its tokens), the flusher logs the
    outage once and the recovery once, and every answered token is stored."""
    client = make_client("persist-pgrestart")
    # One worker, so the client warm_up caches is cached where it is served.
    with segment_stack(build_dir, pg, keys, workers=1, settings=FAST_FLUSH) as stack:
        tokend = stack.tokend
        warmed = warm_up(stack, pg, client)
        flusher = tokend.flusher_pid()
        with TokenTraffic(stack.port, *client, threads=2) as traffic:
            wait_until(lambda: traffic.ok_count() >= 20, 10, message="traffic before the stop")
            try:
                pg.stop()
                ok_at_stop = traffic.ok_count()
                wait_until(lambda: traffic.ok_count() >= ok_at_stop + 50, 10,
                           message="tokens while PostgreSQL is down")
                time.sleep(0.5)  # the flusher tries, and fails, a few times
                ok_during = traffic.ok_count() - ok_at_stop
            finally:
                pg.start()
            ok_at_start = traffic.ok_count()
            wait_until(lambda: traffic.ok_count() >= ok_at_start + 50, 10,
                       message="tokens after PostgreSQL is back")
            results = traffic.stop()

        answers = [warmed] + answers_of(results)
        assert len(answers) == len(results) + 1, \
            [r for r in results if isinstance(r[2], str)][:5]
        assert {a.status for a in answers} == {200}, [a for a in answers if a.status != 200][:5]
        assert ok_during >= 50

        wait_for_rows(pg, [client[0]], len(answers), DRAIN_TIMEOUT_S)
        assert_stored_exactly(pg, [client[0]], answers)

        assert tokend.flusher_pid() == flusher, "the flusher was not restarted"
        log = tokend.log()
        assert len(lines_of(log, flusher, "warn: database unavailable")) == 1, log
        assert len(lines_of(log, flusher, "info: database reachable again")) == 1, log
        # Every line is one of tokend's. (A "WARNING:  there is already a
        # transaction in progress" from libpq means the flusher sent BEGIN
        # inside a transaction left open: src/flusher.c write_batch treats a
        # BEGIN that reconnected as a failure without ending that
        # transaction, and backs off once more before writing.)
        strays = [line for line in log.splitlines() if not LOG_LINE.match(line)]
        assert not strays, strays
        assert "gave up slot" not in log, log
        assert tokend.stop() == 0


def test_full_queue_answers_503_and_recovers(build_dir, pg, keys, make_client):
    """queue_capacity = 16 and PostgreSQL down: exactly 16 more tokens are
    handed out, then 503 temporarily_unavailable with Retry-After and no
    token, until PostgreSQL is back and the flusher makes room; every token
    answered is stored."""
    client = make_client("persist-full")
    # flush_batch below the capacity: with the default (1000) the flusher
    # would write only every flush_interval_ms, and 16 tokens can be issued
    # faster than that even when PostgreSQL is up.
    settings = dict(FAST_FLUSH, queue_capacity="16", queue_full_wait_ms="20", flush_batch="4")
    with segment_stack(build_dir, pg, keys, workers=1, settings=settings) as stack:
        tokend = stack.tokend
        answers = [warm_up(stack, pg, client)]
        try:
            pg.stop()
            while len(answers) < 1 + 40:
                started = time.monotonic()
                answer = issue(stack.port, *client)
                elapsed = time.monotonic() - started
                answers.append(answer)
                if answer.status != 200:
                    break
            successes = sum(1 for a in answers[1:] if a.status == 200)
            assert successes == 16, f"{successes} tokens before the first 503: {answers[-1]!r}"
            assert_queue_full_answer(answers[-1])
            assert elapsed < 2.0, f"a full queue took {elapsed:.2f}s to answer"
            # Still full: every further request is refused the same way.
            for _ in range(5):
                answer = issue(stack.port, *client)
                answers.append(answer)
                assert_queue_full_answer(answer)
        finally:
            pg.start()

        # The flusher writes the 16 and makes room: 200 again soon.
        def served():
            answer = issue(stack.port, *client)
            answers.append(answer)
            if answer.status != 200:
                assert_queue_full_answer(answer)
            return answer.status == 200
        wait_until(served, DRAIN_TIMEOUT_S, interval_s=0.2,
                   message="a 200 after PostgreSQL restarted")
        for _ in range(20):
            answer = issue(stack.port, *client)
            answers.append(answer)
            assert answer.status == 200, answer

        ok = [a for a in answers if a.status == 200]
        wait_for_rows(pg, [client[0]], len(ok), DRAIN_TIMEOUT_S)
        assert_stored_exactly(pg, [client[0]], answers)
        assert tokend.stop() == 0


# ---------------------------------------------------------------------------
# stopping
# ---------------------------------------------------------------------------

def test_sigterm_under_load_drains_the_queue(build_dir, pg, keys, make_client):
    """SIGTERM while tokens are issued and none is written yet (a flush
    interval of a minute, batches as large as the queue): tokend exits 0
    with every answered token in the table - all of them written by the
    drain after the workers stopped - and removes its segment (whose name is
    the one derived from `listen`)."""
    client = make_client("persist-sigterm")
    settings = dict(FAST_FLUSH, queue_capacity="8192", flush_batch="8192",
                    flush_interval_ms="60000")
    with segment_stack(build_dir, pg, keys, workers=2, settings=settings) as stack:
        tokend = stack.tokend
        assert "shm_name" not in tokend.settings
        segment = segment_path(segment_name(tokend))
        assert segment.exists(), f"no {segment}"
        with TokenTraffic(stack.port, *client, threads=3) as traffic:
            wait_until(lambda: traffic.ok_count() >= 300, 15, message="traffic before SIGTERM")
            # Nothing written yet: whatever ends up stored, the drain wrote.
            assert token_row_count(pg, [client[0]]) == 0
            os.kill(tokend.pid, signal.SIGTERM)
            exit_code = tokend.proc.wait(timeout=30)
            results = traffic.stop()

        assert exit_code == 0, tokend.log()[-2000:]
        answers = answers_of(results)
        statuses = {a.status for a in answers}
        # Requests that reach the socket after the workers are gone: 502.
        assert statuses <= {200, 502}, [a for a in answers if a.status not in (200, 502)][:5]
        assert len(answers) == len(results), [r for r in results if isinstance(r[2], str)][:5]
        # Stored before tokend exited: no waiting here.
        assert_stored_exactly(pg, [client[0]], answers)
        assert not segment.exists(), f"{segment} left behind"
        log = tokend.log()
        assert log.rstrip().endswith("info: stopped; every issued token is in the database"), \
            log[-1000:]
        assert "still busy after shutdown_timeout" not in log


def test_direct_copy_meeting_a_stored_token_falls_back_and_stores_once(build_dir, pg, keys,
                                                                         make_client):
    """After a successful batch the flusher COPYs straight into tokens. If a
    record of a batch is stored already all the same (here: put there by
    hand while it sat in the queue), that COPY fails on the primary key; the
    flusher must roll back and write the batch the tolerant way, so every
    token ends up stored exactly once."""
    client = make_client("persist-direct")
    # Batches of 4, and otherwise a flush only every minute: what is queued
    # below stays queued until the stop.
    settings = dict(FAST_FLUSH, flush_interval_ms="60000", flush_batch="4")
    with segment_stack(build_dir, pg, keys, workers=1, settings=settings) as stack:
        tokend = stack.tokend
        answers = [issue(stack.port, *client) for _ in range(4)]
        assert {a.status for a in answers} == {200}, answers
        wait_for_rows(pg, [client[0]], 4)  # a full batch: written at once
        queued = [issue(stack.port, *client) for _ in range(3)]
        assert {a.status for a in queued} == {200}, queued
        assert token_row_count(pg, [client[0]]) == 4
        claims = queued[1].claims
        pg.psql("INSERT INTO tokens (jti, client_id, scope, audience, issued_at, expires_at)"
                " VALUES (%s, %s, %s, %s, to_timestamp(%s), to_timestamp(%s))",
                (claims["jti"], claims["client_id"], claims["scope"], claims["aud"],
                 claims["iat"], claims["exp"]))
        assert tokend.stop() == 0  # the drain writes the 3 queued
        assert_stored_exactly(pg, [client[0]], answers + queued)
        log = tokend.log()
        assert "a batch held tokens already stored; writing it again without them" in log, log
        assert log.rstrip().endswith("every issued token is in the database"), log[-800:]


def test_sigterm_while_postgresql_is_down_drains_once_it_is_back(build_dir, pg, keys,
                                                                 make_client):
    """SIGTERM with a backlog of many batches queued and PostgreSQL down: the
    stopping flusher keeps retrying, and when PostgreSQL is back (within
    shutdown_timeout) writes every batch, not just the first, then exits."""
    client = make_client("persist-sigterm-down")
    settings = dict(FAST_FLUSH, flush_batch="20", shutdown_timeout="30s")
    with segment_stack(build_dir, pg, keys, workers=1, settings=settings) as stack:
        tokend = stack.tokend
        segment = segment_path(segment_name(tokend))
        answers = [warm_up(stack, pg, client)]
        try:
            pg.stop()
            with ThreadPoolExecutor(max_workers=4) as pool:
                answers += list(pool.map(lambda _: issue(stack.port, *client), range(150)))
            assert {a.status for a in answers} == {200}, [a for a in answers if a.status != 200]
            os.kill(tokend.pid, signal.SIGTERM)
            wait_until(lambda: not tokend.worker_pids(), 10, message="the workers to exit")
            time.sleep(0.5)  # the flusher has its SIGTERM and fails to write
            assert tokend.running(), "tokend gave up on the queue"
        finally:
            pg.start()
        exit_code = tokend.proc.wait(timeout=40)
        assert exit_code == 0, tokend.log()[-2000:]
        assert_stored_exactly(pg, [client[0]], answers)
        assert not segment.exists(), f"{segment} left behind"
        log = tokend.log()
        assert log.rstrip().endswith("info: stopped; every issued token is in the database"), \
            log[-1000:]


def test_sigterm_with_postgresql_away_past_shutdown_timeout_keeps_the_segment(
        build_dir, pg, keys, make_client):
    """PostgreSQL stays away longer than shutdown_timeout: tokend still exits
    0, says how many tokens it leaves in which segment, and keeps it; the
    next start re-attaches it and writes them."""
    client = make_client("persist-sigterm-away")
    settings = dict(FAST_FLUSH, shutdown_timeout="1s")
    with segment_stack(build_dir, pg, keys, workers=1, settings=settings) as stack:
        tokend = stack.tokend
        name = segment_name(tokend)
        answers = [warm_up(stack, pg, client)]
        queued = 12
        try:
            pg.stop()
            for _ in range(queued):
                answers.append(issue(stack.port, *client))
            assert {a.status for a in answers} == {200}, answers
            assert tokend.stop() == 0, tokend.log()[-2000:]
            assert segment_path(name).exists(), "the segment holding the tokens is gone"
        finally:
            pg.start()
        log = tokend.log()
        assert re.search(rf"warn: stopped with {queued} token\(s\) still queued in shared memory "
                         rf"segment {re.escape(name)}; the next start writes them", log), log
        assert token_row_count(pg, [client[0]]) == 1

        log_before = len(log)
        tokend.start()
        assert re.search(rf"re-attached shared memory segment {re.escape(name)} left by a "
                         rf"previous run; its {queued} queued token\(s\)",
                         tokend.log()[log_before:]), tokend.log()[log_before:]
        wait_for_rows(pg, [client[0]], len(answers), DRAIN_TIMEOUT_S)
        assert_stored_exactly(pg, [client[0]], answers)
        assert tokend.stop() == 0
        assert not segment_path(name).exists()


def test_everything_killed_with_tokens_queued_then_restarted(build_dir, pg, keys, make_client):
    """kill -9 of the master and all its children while PostgreSQL is down
    and tokens sit in the queue: the segment stays; the next start with the
    same configuration re-attaches it, says how many tokens it holds, and
    writes them - once each, also those already in the table."""
    client = make_client("persist-crash")
    with segment_stack(build_dir, pg, keys, workers=1, settings=FAST_FLUSH) as stack:
        tokend = stack.tokend
        name = segment_name(tokend)
        answers = [warm_up(stack, pg, client)]
        queued = 25
        try:
            pg.stop()
            for _ in range(queued):
                answers.append(issue(stack.port, *client))
            assert {a.status for a in answers} == {200}, answers
            kill_tokend_hard(tokend)
            assert segment_path(name).exists(), "the killed instance's segment is gone"
        finally:
            pg.start()

        # As if the killed flusher had committed the first 10 and died before
        # releasing them: they are sent again and must not be stored twice.
        for answer in answers[1:11]:
            claims = answer.claims
            pg.psql("INSERT INTO tokens (jti, client_id, scope, audience, issued_at, expires_at)"
                    " VALUES (%s, %s, %s, %s, to_timestamp(%s), to_timestamp(%s))",
                    (claims["jti"], claims["client_id"], claims["scope"], claims["aud"],
                     claims["iat"], claims["exp"]))
        assert token_row_count(pg, [client[0]]) == 11

        log_before = len(tokend.log())
        tokend.start()
        log = tokend.log()[log_before:]
        assert re.search(rf"warn: re-attached shared memory segment {re.escape(name)} left by a "
                         rf"previous run; its {queued} queued token\(s\) will be written", log), log
        wait_for_rows(pg, [client[0]], 1 + queued, DRAIN_TIMEOUT_S)
        assert_stored_exactly(pg, [client[0]], answers)

        # And it serves and records as usual.
        answers.append(issue(stack.port, *client))
        assert answers[-1].status == 200, answers[-1]
        wait_for_rows(pg, [client[0]], 2 + queued)
        assert_stored_exactly(pg, [client[0]], answers)
        assert tokend.stop() == 0
        assert not segment_path(name).exists()
        assert "stopped; every issued token is in the database" in tokend.log()[log_before:]


# ---------------------------------------------------------------------------
# segments that are not ours to take
# ---------------------------------------------------------------------------

def test_segment_in_use_by_a_running_instance_is_refused(build_dir, pg, keys, make_client):
    client = make_client("persist-inuse")
    name = f"/tokend.persist-{uuid.uuid4().hex[:12]}"
    with segment_stack(build_dir, pg, keys, workers=1,
                       settings=dict(FAST_FLUSH, shm_name=name)) as stack:
        tokend = stack.tokend
        before = issue(stack.port, *client)
        assert before.status == 200
        other_socket = tokend.base_dir / "other.sock"
        config = write_config_variant(tokend, "other.conf", listen=f"unix:{other_socket}")
        code, log = start_tokend_expecting_failure(tokend, config)
        assert code == 1, log
        assert re.search(rf"error: shared memory segment {re.escape(name)} is in use by another "
                         r"running tokend", log), log
        assert not other_socket.exists(), "the refused instance left its socket behind"
        # The first instance is untouched: it serves and records.
        assert segment_path(name).exists()
        after = issue(stack.port, *client)
        assert after.status == 200
        wait_for_rows(pg, [client[0]], 2)
        assert_stored_exactly(pg, [client[0]], [before, after])
        assert tokend.stop() == 0
        assert not segment_path(name).exists()


def test_leftover_segment_of_another_capacity_or_layout_is_refused(build_dir, pg, keys,
                                                                   make_client):
    """A segment a killed instance left with queued tokens: a tokend with
    another queue_capacity, or finding another layout version in it, refuses
    to start and leaves it as it is; the right configuration then writes its
    tokens."""
    client = make_client("persist-mismatch")
    name = f"/tokend.persist-{uuid.uuid4().hex[:12]}"
    settings = dict(FAST_FLUSH, shm_name=name, queue_capacity="16")
    with segment_stack(build_dir, pg, keys, workers=1, settings=settings) as stack:
        tokend = stack.tokend
        path = segment_path(name)
        answers = [warm_up(stack, pg, client)]
        try:
            pg.stop()
            for _ in range(5):
                answers.append(issue(stack.port, *client))
            assert {a.status for a in answers} == {200}, answers
            kill_tokend_hard(tokend)
        finally:
            pg.start()
        original = path.read_bytes()

        # Another queue_capacity: refused, naming the segment and the capacity.
        config = write_config_variant(tokend, "capacity32.conf", queue_capacity="32")
        code, log = start_tokend_expecting_failure(tokend, config)
        assert code == 1, log
        assert re.search(rf"error: shared memory segment {re.escape(name)} has {len(original)} "
                         rf"bytes; this tokend needs \d+ for queue_capacity 32", log), log
        assert path.read_bytes() == original, "the refused start changed the segment"

        # Same size, another layout version in the header: refused too.
        tampered = bytearray(original)
        assert int.from_bytes(tampered[8:12], "little") == 3  # layout_version (shm_segment.h)
        tampered[8:12] = (99).to_bytes(4, "little")
        path.write_bytes(bytes(tampered))
        code, log = start_tokend_expecting_failure(tokend, tokend.config_path)
        assert code == 1, log
        assert re.search(rf"error: shared memory segment {re.escape(name)} was made by pid \d+ "
                         r"with layout 99, queue_capacity 16, \d+ bytes; this tokend needs "
                         r"layout 3, queue_capacity 16", log), log
        assert path.read_bytes() == bytes(tampered), "the refused start changed the segment"
        assert token_row_count(pg, [client[0]]) == 1
        path.write_bytes(original)

        # The configuration that made it takes it over and writes its tokens.
        log_before = len(tokend.log())
        tokend.start()
        assert re.search(rf"re-attached shared memory segment {re.escape(name)} left by a "
                         r"previous run; its 5 queued token\(s\)", tokend.log()[log_before:]), \
            tokend.log()[log_before:]
        wait_for_rows(pg, [client[0]], len(answers), DRAIN_TIMEOUT_S)
        assert_stored_exactly(pg, [client[0]], answers)
        assert tokend.stop() == 0
        assert not path.exists()
