"""tokend when things go wrong: the database stops or never answers, a
worker is killed under traffic, the master is told to stop while requests
are in flight, nginx keeps FastCGI connections alive.

Each test starts a stack of its own (these tests stop or damage it) and
every request has a deadline, so a hang fails the test instead of stalling
the suite.
"""

import os
import re
import signal
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import (FORM, HTTP_TIMEOUT_S, Traffic, basic_header, run, running_stack,
                      wait_until)


def assert_oauth_error(resp, status, error):
    assert resp.status == status, resp
    assert resp.headers.get("Content-Type") == "application/json", resp
    assert resp.json()["error"] == error, resp
    return resp.json()


# ---------------------------------------------------------------------------
# database outages
# ---------------------------------------------------------------------------

def test_database_down_and_back(build_dir, pg, keys, make_client):
    """Cached clients keep getting tokens while PostgreSQL is down; others
    get a prompt 503 with Retry-After; service resumes after the restart."""
    cached = make_client("dbdown-cached")
    uncached = make_client("dbdown-uncached")
    after = make_client("dbdown-after")
    settings = {"db_retry_interval_ms": "1000", "db_timeout_ms": "3000"}
    # One worker, so "cached" means cached in the worker that answers.
    with running_stack(build_dir, pg, keys, workers=1, settings=settings) as stack:
        assert stack.token(*cached).status == 200
        try:
            pg.stop()
            # Served from the cache: no database needed.
            for _ in range(3):
                assert stack.token(*cached).status == 200
                assert stack.token(*cached, auth="post").status == 200
            # A wrong secret for a cached client is still refused.
            assert_oauth_error(stack.token(cached[0], "wrong"), 401, "invalid_client")

            # Not cached: 503 at once, not a hang until nginx gives up (504).
            for client in (uncached, ("never-registered", "whatever")):
                for _ in range(3):
                    started = time.monotonic()
                    resp = stack.token(*client)
                    elapsed = time.monotonic() - started
                    assert_oauth_error(resp, 503, "temporarily_unavailable")
                    assert resp.headers.get("Retry-After") == "1"
                    assert resp.headers.get("Cache-Control") == "no-store"
                    assert elapsed < HTTP_TIMEOUT_S
            # The discovery documents need no database.
            assert stack.request("GET", "/.well-known/jwks.json").status == 200
        finally:
            pg.start()

        # Back: within a few retry intervals an uncached client is served.
        def served():
            return stack.token(*after).status == 200
        wait_until(served, 5.0, interval_s=0.2, message="a 200 after PostgreSQL restarted")
        assert stack.token(*uncached).status == 200
        assert stack.token(*cached).status == 200

        # One line per outage and process (the worker and the flusher each
        # have a connection), not one per request or retry. The flusher
        # reconnects on its own backoff (up to 10 s) to write the tokens
        # queued meanwhile, so its "back" line may come a little later.
        def outage_lines():
            log = stack.tokend.log()
            down = re.findall(r"tokend\[(\d+)\] warn: database unavailable", log)
            back = re.findall(r"tokend\[(\d+)\] info: database reachable again", log)
            return log, down, back
        wait_until(lambda: sorted(outage_lines()[2]) == sorted(outage_lines()[1]), 15,
                   message="every process to report the database back")
        log, down, back = outage_lines()
        assert down and len(down) == len(set(down)), log
        assert sorted(back) == sorted(down), log


def test_database_that_never_answers(build_dir, pg, keys, make_client):
    """A database that accepts the connection and then says nothing: the
    answer is a 503 within db_timeout_ms, not a request stuck until nginx's
    fastcgi_read_timeout (which would be a 504)."""
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(16)  # the kernel completes connects; nobody ever reads
    url = f"postgresql://postgres@127.0.0.1:{blackhole.getsockname()[1]}/tokend"
    try:
        with running_stack(build_dir, pg, keys, workers=1, database_url=url,
                           settings={"db_timeout_ms": "500"}) as stack:
            started = time.monotonic()
            resp = stack.token("some-client", "some-secret")
            elapsed = time.monotonic() - started
            assert_oauth_error(resp, 503, "temporarily_unavailable")
            assert elapsed < HTTP_TIMEOUT_S
            # Within db_retry_interval_ms the next one does not even try.
            resp = stack.token("other-client", "some-secret")
            assert_oauth_error(resp, 503, "temporarily_unavailable")
            assert re.search(r"warn: database unavailable \((connect )?timed out\)",
                         stack.tokend.log()), stack.tokend.log()
    finally:
        blackhole.close()


# ---------------------------------------------------------------------------
# a worker killed under traffic
# ---------------------------------------------------------------------------

def test_worker_killed_under_traffic_is_replaced(build_dir, pg, keys, client):
    with running_stack(build_dir, pg, keys, workers=2) as stack:
        tokend = stack.tokend
        assert stack.token(*client).status == 200
        # A worker that ran at least a second is replaced without back-off.
        time.sleep(max(0.0, 1.2 - (time.monotonic() - tokend.started_at)))
        workers = tokend.worker_pids()
        assert len(workers) == 2
        victim, survivor = workers

        with Traffic(stack.port, *client, threads=2) as traffic:
            wait_until(lambda: traffic.count() >= 20, 10, message="traffic before the kill")
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)

            def replaced():
                pids = tokend.worker_pids()
                return len(pids) == 2 and victim not in pids and pids
            new_workers = wait_until(replaced, 5.0, message="a replacement worker")
            replaced_at = time.monotonic()
            count_at_replacement = traffic.count()
            wait_until(lambda: traffic.count() >= count_at_replacement + 50, 10,
                       message="traffic after the replacement")
            results = traffic.stop()

        assert survivor in new_workers, "the other worker was left alone"
        wait_until(lambda: re.search(rf"worker {victim} killed by signal 9\b", tokend.log()),
                   5.0, message=f"the log line about worker {victim}")

        before = [r for r in results if r[1] < killed_at]
        during = [r for r in results if r[1] >= killed_at and r[0] <= replaced_at]
        after = [r for r in results if r[0] > replaced_at]
        assert before and after
        assert {r[2] for r in before} == {200}, before
        # Requests the killed worker was serving may fail with 502, nothing else.
        assert {r[2] for r in during} <= {200, 502}, during
        assert {r[2] for r in after} == {200}, [r for r in after if r[2] != 200][:5]
        assert tokend.running()


def test_master_killed_stops_its_workers_and_a_restart_takes_over(build_dir, pg, keys, client):
    """kill -9 of the master: its workers do not serve on unsupervised
    (PR_SET_PDEATHSIG), and a new tokend with the same configuration starts
    on the socket file the dead one left behind."""
    with running_stack(build_dir, pg, keys, workers=2) as stack:
        tokend = stack.tokend
        workers = tokend.worker_pids()
        assert stack.token(*client).status == 200
        os.kill(tokend.pid, signal.SIGKILL)
        assert tokend.stop() == -signal.SIGKILL

        def all_gone():
            return not any(os.path.exists(f"/proc/{pid}") for pid in workers)
        wait_until(all_gone, 5.0, message=f"workers {workers} to exit after their master")
        assert tokend.socket_path.exists(), "a killed master cannot clean up"

        tokend.start()
        assert stack.token(*client).status == 200
        assert tokend.stop() == 0


def test_second_instance_does_not_steal_a_live_socket(build_dir, pg, keys, client):
    with running_stack(build_dir, pg, keys, workers=1) as stack:
        tokend = stack.tokend
        result = run([tokend.binary, "-c", tokend.config_path], check=False, timeout=20)
        assert result.returncode == 1, result.stderr
        assert str(tokend.socket_path) in result.stderr, result.stderr
        # The first instance still owns the socket and serves.
        assert tokend.socket_path.exists()
        assert stack.token(*client).status == 200


def test_sighup_reloads(build_dir, pg, keys, client):
    """SIGHUP replaces the workers and tokend keeps answering (the reload
    itself is tested in test_service.py)."""
    with running_stack(build_dir, pg, keys, workers=2) as stack:
        tokend = stack.tokend
        workers = tokend.worker_pids()
        os.kill(tokend.pid, signal.SIGHUP)
        wait_until(lambda: "] info: reloaded " in tokend.log(), 30, message="the reload")
        for _ in range(5):
            assert stack.token(*client).status == 200
        wait_until(lambda: not set(workers) & set(tokend.worker_pids()), 30,
                   message="the old workers to exit")
        assert tokend.stop() == 0


# ---------------------------------------------------------------------------
# SIGTERM with requests in flight
# ---------------------------------------------------------------------------

FCGI_BEGIN_REQUEST, FCGI_END_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT = 1, 3, 4, 5, 6


def fcgi_record(record_type, content, request_id=1):
    return struct.pack(">BBHHBB", 1, record_type, request_id, len(content), 0, 0) + content


def fcgi_params(params):
    out = b""
    for name, value in params.items():
        for item in (name.encode(), value.encode()):
            out += bytes([len(item)]) if len(item) < 128 else struct.pack(">I", len(item) | 1 << 31)
        out += name.encode() + value.encode()
    return out


def fcgi_read_response(sock):
    """Reads records until END_REQUEST; returns the STDOUT bytes."""
    stdout, buffer = b"", b""
    while True:
        while len(buffer) < 8:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError("connection closed before END_REQUEST")
            buffer += chunk
        _, record_type, _, length, padding, _ = struct.unpack(">BBHHBB", buffer[:8])
        while len(buffer) < 8 + length + padding:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError("connection closed inside a record")
            buffer += chunk
        content, buffer = buffer[8:8 + length], buffer[8 + length + padding:]
        if record_type == FCGI_STDOUT:
            stdout += content
        elif record_type == FCGI_END_REQUEST:
            return stdout


def test_sigterm_lets_requests_in_flight_finish(build_dir, pg, keys, client):
    client_id, secret = client
    count_sql = "SELECT count(*) FROM tokens WHERE client_id = %s"
    rows_before = pg.psql(count_sql, (client_id,))[0][0]
    with running_stack(build_dir, pg, keys, workers=2) as stack:
        tokend = stack.tokend
        assert stack.token(client_id, secret).status == 200

        # A request in flight straight on tokend's socket: headers sent, the
        # body only half, so a worker is inside the request.
        body = b"grant_type=client_credentials&scope=write"
        inflight = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        inflight.settimeout(HTTP_TIMEOUT_S)
        inflight.connect(str(tokend.socket_path))
        params = {"REQUEST_METHOD": "POST", "REQUEST_URI": "/oauth/token",
                  "CONTENT_TYPE": FORM, "CONTENT_LENGTH": str(len(body)),
                  "HTTP_AUTHORIZATION": basic_header(client_id, secret)}
        inflight.sendall(fcgi_record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", 1, 0)) +
                         fcgi_record(FCGI_PARAMS, fcgi_params(params)) +
                         fcgi_record(FCGI_PARAMS, b"") +
                         fcgi_record(FCGI_STDIN, body[:10]))
        try:
            with Traffic(stack.port, client_id, secret, threads=2) as traffic:
                wait_until(lambda: traffic.count() >= 20, 10, message="traffic before SIGTERM")
                time.sleep(0.2)  # the worker has long read the parameters
                stopped_at = time.monotonic()
                os.kill(tokend.pid, signal.SIGTERM)

                # The idle worker leaves at once; the busy one and the master stay.
                wait_until(lambda: len(tokend.worker_pids()) == 1, 5,
                           message="the idle worker to exit")
                time.sleep(0.3)
                assert tokend.running(), "the master did not wait for the request in flight"

                inflight.sendall(fcgi_record(FCGI_STDIN, body[10:]) + fcgi_record(FCGI_STDIN, b""))
                answer = fcgi_read_response(inflight)
                exit_code = tokend.proc.wait(timeout=15)
                results = traffic.stop()
        finally:
            inflight.close()

        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"Status: 200"), answer[:300]
        assert b'"scope":"write"' in payload and b'"access_token":"' in payload, payload[:300]

        assert exit_code == 0
        assert not tokend.socket_path.exists(), "the socket file is removed"
        log = tokend.log()
        assert "received SIGTERM; stopping workers" in log
        assert log.rstrip().endswith("info: stopped; every issued token is in the database"), \
            log[-500:]
        assert "still busy after shutdown_timeout" not in log
        # Every token answered is in PostgreSQL once tokend has exited: the
        # flusher drained the queue after the workers stopped.
        answered = 2 + sum(1 for r in results if r[2] == 200)
        assert pg.psql(count_sql, (client_id,))[0][0] - rows_before == answered

        # Through nginx: every request answered before the stop, or started
        # well before it, got its token; the only failures are 502s for
        # requests that reached a socket no longer served.
        statuses = {r[2] for r in results}
        assert statuses <= {200, 502}, statuses
        early = [r for r in results if r[0] < stopped_at - 0.1 or r[1] < stopped_at]
        assert early and {r[2] for r in early} == {200}, [r for r in early if r[2] != 200][:5]


# ---------------------------------------------------------------------------
# nginx keeping FastCGI connections alive
# ---------------------------------------------------------------------------

def connected_unix_sockets(path):
    """How many accepted (server-side) connections on the unix socket `path`
    exist right now, from /proc/net/unix (state 03 = connected)."""
    count = 0
    with open("/proc/net/unix") as table:
        next(table)
        for line in table:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == str(path) and fields[5] == "03":
                count += 1
    return count


def test_keepalive_below_worker_count_never_hangs(build_dir, pg, keys, client):
    """README: with fastcgi_keep_conn on, a keepalive pool smaller than
    `workers` is safe. 2 workers, keepalive 1, 8 concurrent clients."""
    with running_stack(build_dir, pg, keys, workers=2, keepalive=1) as stack:
        conf = stack.nginx.server_conf_path.read_text()
        assert "keepalive 1;" in conf and "fastcgi_keep_conn on;" in conf

        def one(_):
            started = time.monotonic()
            try:
                status = stack.token(*client).status
            except Exception as exc:  # noqa: BLE001 - reported below
                status = type(exc).__name__
            return status, time.monotonic() - started

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(one, range(200)))
        bad = [r for r in results if r[0] != 200]
        assert not bad, f"{len(bad)} of 200 failed, e.g. {bad[:5]}"

        # The pool is really in use: one idle kept connection stays open.
        wait_until(lambda: connected_unix_sockets(stack.tokend.socket_path) == 1, 5,
                   message="exactly one kept-alive FastCGI connection")
        # And a worker pinned by it leaves the other free for new requests.
        for _ in range(20):
            assert stack.token(*client).status == 200
