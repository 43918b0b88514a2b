"""The deployments README describes, end to end, with the shipped web
server configurations (webservers.py starts them):

  nginx-master        nginx + tokend's own master on a unix socket
  nginx-spawn-fcgi    nginx + tokend started by README's exact spawn-fcgi line
  apache-proxy-fcgi   Apache mod_proxy_fcgi + tokend's own master
  apache-fcgid        Apache mod_fcgid spawning `tokend --worker` processes,
                      `tokend --flusher` as the flusher service

Behind each, what a client and an operator do on day one: get a token with
client_credentials, check its signature against /.well-known/jwks.json
(python3-cryptography, no JWT library), find its row in PostgreSQL, read
the admin cache statistics from loopback, and be refused them from
another address. Then what is particular to a layout: who runs the
processes, and `tokend --worker` refusing to run without its flusher.
"""

import json
import os
import pwd
import socket
import subprocess
import uuid

import pytest
from cryptography.exceptions import InvalidSignature

from conftest import (
    COMMAND_TIMEOUT_S, RUN_AS_ROOT, TRANSPORT, assert_stored_exactly, child_pids, http_request, issue,
    process_name, segment_path, service_user, wait_for_rows, wait_until)
from test_admin import admin_token  # noqa: F401 - fixture
from test_token_server import b64url_encode, split_jwt, verify_signature
from webservers import LAYOUTS, FlusherService, deployment, request_from

# A loopback address that is not 127.0.0.1: the shipped configurations let
# only 127.0.0.1 and ::1 reach /admin/ and /metrics.
OTHER_ADDRESS = "127.0.0.2"


def check_token_against_jwks(site, issued, client_id):
    """The token verifies with the JWKS key its kid names, and only as
    issued; its claims name this deployment and client."""
    token = issued.body["access_token"]
    header, claims, signing_input, signature = split_jwt(token)
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt", header
    jwks = http_request(site.port, "GET", "/.well-known/jwks.json")
    assert jwks.status == 200, jwks
    keys = [k for k in jwks.json()["keys"] if k["kid"] == header["kid"]]
    assert len(keys) == 1, (header, jwks.json())
    verify_signature("ES256", signing_input, signature, jwk=keys[0])
    # The check can fail: the same signature over other claims does not verify.
    forged_claims = b64url_encode(json.dumps({**claims, "scope": "admin"}).encode())
    forged_input = f"{token.split('.')[0]}.{forged_claims}".encode()
    with pytest.raises(InvalidSignature):
        verify_signature("ES256", forged_input, signature, jwk=keys[0])
    assert claims["iss"] == site.issuer
    assert claims["client_id"] == claims["sub"] == client_id
    assert claims["exp"] - claims["iat"] == 3600


@pytest.mark.parametrize("layout", LAYOUTS)
def test_token_jwks_row_and_admin_stats(layout, build_dir, pg, keys, make_client, admin_token):
    client_id, secret = make_client(f"deploy-{layout}")
    with deployment(layout, build_dir, pg, keys["ES256"],
                    admin_token_path=admin_token[0]) as site:
        issued = issue(site.port, client_id, secret)
        assert issued.status == 200, f"{issued!r}\n{site.logs()}"
        assert issued.body["token_type"] == "Bearer"
        check_token_against_jwks(site, issued, client_id)

        # The flusher writes it within about flush_interval_ms.
        wait_for_rows(pg, [client_id], 1)
        assert_stored_exactly(pg, [client_id], [issued])

        bearer = {"Authorization": f"Bearer {admin_token[1]}"}
        stats = http_request(site.port, "GET", "/admin/cache/stats", headers=bearer)
        assert stats.status == 200, f"{stats!r}\n{site.logs()}"
        body = stats.json()
        assert body["caches"]["clients"]["misses"] >= 1, body  # our client, first seen
        assert body["live_workers"] >= 1, body
        assert http_request(site.port, "GET", "/admin/cache/stats").status == 401

        # The web server refuses another address before tokend sees it.
        for path in ("/admin/cache/stats", "/metrics"):
            refused = request_from(OTHER_ADDRESS, site.port, "GET", path, headers=bearer)
            assert refused.status == 403, refused
            assert refused.headers.get("Content-Type") == "application/json", refused
            assert refused.json()["error"] == "forbidden", refused
        # ... and still answers it the rest.
        health = request_from(OTHER_ADDRESS, site.port, "GET", "/health?live")
        assert health.status == 200, health
        unknown = http_request(site.port, "GET", "/index.html")
        assert unknown.status == 404 and unknown.json()["error"] == "not_found", unknown


def test_spawn_fcgi_readme_line(build_dir, pg, keys, make_client):
    """README's spawn-fcgi line: tokend's master takes the socket from fd 0
    (its own `listen` stays unbound), runs as the user spawn-fcgi dropped
    to, and pre-forks its workers."""
    client = make_client("deploy-spawned")
    with deployment("nginx-spawn-fcgi", build_dir, pg, keys["ES256"]) as site:
        spawned = site.spawned
        assert issue(site.port, *client).status == 200
        assert not (site.tokend.base_dir / "ignored.sock").exists()
        assert len(spawned.worker_pids()) == 2
        user = service_user() or pwd.getpwuid(os.getuid()).pw_name
        assert spawned.owner() == user
        assert os.getsid(spawned.pid) == spawned.pid, "spawn-fcgi detaches it"


def test_fcgid_runs_single_workers_under_apache(build_dir, pg, keys, make_client):
    """Under mod_fcgid the tokend processes are Apache's children, each a
    lone `tokend --worker` (no master, no workers of its own), attached to
    the flusher service's segment; with `transport = event` in the shared
    configuration they say they use libfcgi."""
    client = make_client("deploy-fcgid")
    with deployment("apache-fcgid", build_dir, pg, keys["ES256"]) as site:
        answers = [issue(site.port, *client) for _ in range(3)]
        assert [a.status for a in answers] == [200] * 3, site.logs()
        workers = [p for p in _all_pids() if process_name(p) == "tokend-worker"
                   and f"{site.tokend.config_path}" in _cmdline(p)]
        assert workers, site.logs()
        for pid in workers:
            assert "--worker" in _cmdline(pid)
            assert "apache2" in _cmdline(_parent(pid)), _cmdline(_parent(pid))
            assert child_pids(pid) == []
        wait_for_rows(pg, [client[0]], 3)
        assert_stored_exactly(pg, [client[0]], answers)
        health = http_request(site.port, "GET", "/health")
        assert health.status == 200, health
        if TRANSPORT == "event":
            wait_until(lambda: "transport = event is not used by --worker" in site.web.log(),
                       5, message="the worker's transport line in Apache's error log")
    assert site.flusher.proc.returncode == 0, site.flusher.log()
    assert "every issued token is in the database" in site.flusher.log()


def test_fcgid_without_the_flusher_service(build_dir, pg, keys, make_client):
    """Apache started before the flusher service: every worker mod_fcgid
    starts exits at once, Apache's error log says why, and the client gets
    a JSON 500, never a token that nobody would record."""
    client = make_client("deploy-no-flusher")
    with deployment("apache-fcgid", build_dir, pg, keys["ES256"], start_flusher=False) as site:
        refused = issue(site.port, *client)
        assert refused.status == 500, refused
        assert refused.body["error"] == "server_error", refused
        wait_until(lambda: "(start `tokend --flusher`, which creates it, first)" in site.web.log(),
                   5, message="the worker's reason in Apache's error log")
        wait_until(lambda: not [p for p in _all_pids()
                                if f"{site.tokend.config_path}" in _cmdline(p)],
                   5, message="no tokend process left running")


def test_worker_needs_its_socket_and_a_running_flusher(build_dir, pg, keys, tmp_path):
    """`tokend --worker` on its own: it serves the socket on fd 0 while the
    flusher service runs, and stops at once, saying why, without a socket
    on fd 0, without the flusher's segment, or when the flusher that made
    the segment is dead (killed, its segment left behind)."""
    shm_name = f"/tokend.it-worker-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "tokend.conf"
    config.write_text(f"issuer = https://auth.example.com\ndatabase_url = {pg.url}\n"
                      f"signing_key_file = {keys['ES256']}\nshm_name = {shm_name}\n"
                      f"transport = {TRANSPORT}\nflush_interval_ms = 100\n"
                      + "".join(f"{k} = {v}\n" for k, v in RUN_AS_ROOT.items()))
    command = [build_dir / "tokend", "--worker", "-c", config]
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "worker.sock"))
    listener.listen(8)

    def worker_exits():
        return subprocess.run(command, stdin=listener.fileno(), capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S)

    try:
        no_socket = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                                   text=True, timeout=COMMAND_TIMEOUT_S)
        assert no_socket.returncode == 1
        assert "fd 0 is not a listening socket" in no_socket.stderr, no_socket.stderr

        no_segment = worker_exits()
        assert no_segment.returncode == 1
        assert f"shared memory segment {shm_name}: No such file or directory (start " \
               "`tokend --flusher`" in no_segment.stderr, no_segment.stderr

        flusher = FlusherService(build_dir / "tokend", config, tmp_path / "flusher.log")
        try:
            flusher.start(shm_name)
            worker = subprocess.Popen(command, stdin=listener.fileno(), stderr=subprocess.PIPE,
                                      text=True, start_new_session=True)
            try:
                env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REQUEST_METHOD": "GET",
                       "REQUEST_URI": "/health", "QUERY_STRING": ""}
                def health():
                    return subprocess.run(["cgi-fcgi", "-bind", "-connect",
                                           tmp_path / "worker.sock"],
                                          env=env, capture_output=True, timeout=20).stdout

                # Ready once the flusher has reached the database (it
                # reports that in the segment, which /health reads).
                out = wait_until(lambda: (lambda o: o if o.startswith(b"Status: 200") else None)(
                    health()), 15, interval_s=0.2, message="the worker's /health to be 200")
                assert b'"status":"ok"' in out, out[:400]
                worker.terminate()
                assert worker.wait(timeout=COMMAND_TIMEOUT_S) == 0
            finally:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
            flusher.proc.kill()  # SIGKILL: the segment stays, its flusher slot too
            flusher.proc.wait(timeout=COMMAND_TIMEOUT_S)
        finally:
            flusher.stop()
        dead_flusher = worker_exits()
        assert dead_flusher.returncode == 1
        assert f"shared memory segment {shm_name} has no running flusher: start `tokend " \
               "--flusher`" in dead_flusher.stderr, dead_flusher.stderr
    finally:
        listener.close()
        try:
            segment_path(shm_name).unlink()
        except FileNotFoundError:
            pass


def _all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])
