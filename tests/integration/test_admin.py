"""The operator's view of, and hand on, a whole tokend instance (issue 5):
/admin/cache/{stats,clear,invalidate,cleanup}, /admin/queue/stats, /health
and /metrics, through nginx running the shipped server block.

What the tests hold the endpoints to:
  - the counters: what every worker counted adds up to exactly what the
    test sent (tokens, refusals by OAuth error, cache lookups, queue), in
    the JSON and in /metrics alike;
  - the actions: clear, invalidate and cleanup reach every worker of the
    instance, idle ones included, before the answer says "complete"; bad
    input is refused with a 4xx and changes nothing;
  - access: no admin_token_file -> 403, a missing, wrong or malformed token
    -> 401 with a Bearer challenge, the per-worker rate limit -> 429 with
    Retry-After; /health needs no token; the shipped nginx block lets
    /admin/ and /metrics be reached from loopback only;
  - the fleet: a client disabled with tokenctl is refused by every worker of
    two instances sharing one PostgreSQL within 2 s, and ?scope=fleet takes
    an admin action to the other instance;
  - /metrics passes a strict Prometheus text-format parser
    (prometheus_text.py); /health flips to 503 while PostgreSQL is stopped
    and back to 200 when it returns.

"Every worker" is checked, not assumed: token requests are sent in
concurrent bursts until each worker's own entry in /admin/cache/stats shows
it served some (its cache lookups went up), and per-worker figures are read
from those entries. Those stacks run the shipped block without its
kept-connection lines (SPREAD below), so that bursts reach every worker.

Each test starts the stacks it needs (fresh shared-memory segments, so the
counters start at zero) and uses clients of its own. The flusher's LISTEN
connection clears every client cache once when it comes up (it may have
missed notices); tests that look at cache sizes wait for that first event
(tokend_admin_events_total >= 1) before warming the caches. A test that
stops PostgreSQL starts it again in a `finally`.
"""

import http.client
import json
import math
import os
import re
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import prometheus_text
from conftest import (HTTP_TIMEOUT_S, REPO_ROOT, clean_env, run, segment_stack,
                      token_row_count, wait_until)

JSON_TYPE = "application/json"
# nginx without kept FastCGI connections for the stacks whose every worker
# must serve: a kept connection always reaches the worker that accepted it,
# so through a warm pool a burst may never reach the others. Without the
# pool every request is a new connection, accepted by whichever worker is
# free.
SPREAD = "off"
CACHE_COUNTERS = ("hits", "misses", "negative_hits", "evictions", "expirations")
# Generous deadlines for things that happen "soon" (a flusher connecting,
# records being written): a loaded machine must not fail the suite.
SOON_S = 20.0
# The promise of issue 5: a client disabled with tokenctl stops getting
# tokens from every worker of every host within this many seconds.
FLEET_PROPAGATION_S = 2.0


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def admin_token(build_dir, tmp_path_factory):
    """(path, token): an admin token made by `tokenctl admin-token generate`."""
    path = tmp_path_factory.mktemp("admin") / "admin.token"
    run([build_dir / "tokenctl", "admin-token", "generate", "--out", path], env=clean_env())
    token = path.read_text()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}\n", token), token
    return path, token.strip()


def admin_settings(admin_token, **more):
    """tokend settings with the admin endpoints enabled and a rate limit
    that the tests' own polling never reaches (the limit has a test)."""
    return {"admin_token_file": str(admin_token[0]), "admin_rate_limit": "1000", **more}


class Admin:
    """Admin requests to one stack, with the admin token unless told
    otherwise. `answered` counts the requests tokend answered through this
    object: tokend counts those in its `requests` too."""

    def __init__(self, stack, token):
        self.stack = stack
        self.token = token
        self.answered = 0

    def request(self, method, path, token="default", headers=None):
        all_headers = {}
        token = self.token if token == "default" else token
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        all_headers.update(headers or {})
        resp = self.stack.request(method, path, "" if method == "POST" else None, all_headers)
        self.answered += 1
        return resp

    def stats(self, query=""):
        resp = self.request("GET", "/admin/cache/stats" + query)
        assert resp.status == 200, resp
        assert resp.headers.get("Content-Type") == JSON_TYPE, resp
        return resp.json()

    def workers(self):
        """{pid: that worker's entry} from /admin/cache/stats."""
        entries = self.stats()["workers"]
        by_pid = {entry["pid"]: entry for entry in entries}
        assert len(by_pid) == len(entries), f"a pid appears twice: {entries}"
        return by_pid

    def queue(self):
        resp = self.request("GET", "/admin/queue/stats")
        assert resp.status == 200, resp
        return resp.json()

    def metrics(self):
        resp = self.request("GET", "/metrics")
        assert resp.status == 200, resp
        return prometheus_text.parse(resp.body.decode("utf-8", errors="strict"))

    def metric(self, name, **labels):
        return prometheus_text.sample_value(self.metrics(), name, **labels)

    def act(self, action, query=""):
        """POST /admin/cache/ACTION[?query]."""
        return self.request("POST", f"/admin/cache/{action}" + (f"?{query}" if query else ""))

    def wait_listening(self):
        """Waits for the flusher's LISTEN connection: when it comes up it
        publishes one clear (it may have missed notices), the first admin
        event of a fresh instance. Warm caches only after this."""
        wait_until(lambda: self.metric("tokend_admin_events_total") >= 1, SOON_S,
                   interval_s=0.1, message="the flusher's LISTEN connection (its first clear)")


def cache_of(worker):
    return worker["caches"]["clients"]


def lookups(cache):
    return cache["hits"] + cache["misses"] + cache["negative_hits"]


def send_tokens(stack, credentials, threads=8):
    """Token requests for each (client_id, secret) in `credentials`, sent
    `threads` at a time; returns the answers in the same order."""
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda creds: stack.token(*creds), credentials))


def until_every_worker_served(stack, admin, make_batch, max_rounds=30):
    """Sends the token requests make_batch() returns, in concurrent bursts,
    until every worker's cache lookups went up since the start (so each
    served some). Returns (pairs of (credentials, answer), workers before,
    workers after). Fails when the workers change or one never serves."""
    before = admin.workers()
    pairs = []
    for _ in range(max_rounds):
        batch = make_batch()
        pairs += list(zip(batch, send_tokens(stack, batch)))
        after = admin.workers()
        assert set(after) == set(before), f"the workers changed: {before} -> {after}"
        if all(lookups(cache_of(after[pid])) > lookups(cache_of(before[pid])) for pid in after):
            return pairs, before, after
    raise AssertionError(f"after {max_rounds} bursts some worker served nothing: {after}")


def assert_oauth_error(resp, status, error):
    assert resp.status == status, resp
    assert resp.headers.get("Content-Type") == JSON_TYPE, resp
    body = resp.json()
    assert body["error"] == error, resp
    assert isinstance(body.get("error_description"), str), resp
    return body


def assert_refused_by_every_worker(stack, admin, creds, status, error):
    """Bursts of token requests for creds until every worker served some:
    every single answer must be the refusal."""
    pairs, _, _ = until_every_worker_served(stack, admin, lambda: [creds] * 16)
    wrong = [resp for _, resp in pairs
             if resp.status != status or resp.json().get("error") != error]
    assert not wrong, f"{len(wrong)} of {len(pairs)} answers were not {status} {error}: " \
                      f"{wrong[:3]}"


def unknown_client():
    return (f"unknown-{uuid.uuid4().hex[:12]}", "no-such-secret")


# ---------------------------------------------------------------------------
# 1. the counters add up across workers
# ---------------------------------------------------------------------------

def test_stats_totals_are_the_sum_of_what_was_sent(build_dir, pg, keys, make_client,
                                                   admin_token):
    """With 2 workers: N tokens, M wrong secrets and K unknown clients, sent
    concurrently. Per-worker entries sum to the totals; the totals, /metrics
    and /admin/queue/stats equal what was sent."""
    good = make_client("stats")
    bad_secret = (good[0], "not-the-secret")
    unknown = unknown_client()
    with segment_stack(build_dir, pg, keys, workers=2, keepalive=SPREAD,
                       settings=admin_settings(admin_token)) as stack:
        admin = Admin(stack, admin_token[1])
        admin.wait_listening()
        # 6 good : 2 bad secret : 2 unknown, interleaved, per burst.
        batch = [good] * 6 + [bad_secret] * 2 + [unknown] * 2
        pairs, _, _ = until_every_worker_served(stack, admin, lambda: batch * 3)
        n = sum(1 for creds, _ in pairs if creds == good)
        m = sum(1 for creds, _ in pairs if creds == bad_secret)
        k = sum(1 for creds, _ in pairs if creds == unknown)
        for creds, resp in pairs:
            if creds == good:
                assert resp.status == 200, resp
            else:
                assert_oauth_error(resp, 401, "invalid_client")

        answered_before = admin.answered
        stats = admin.stats()
        workers = stats["workers"]
        pids = [w["pid"] for w in workers]
        assert len(workers) == 2 and len(set(pids)) == 2, workers
        assert sorted(pids) == sorted(stack.tokend.worker_pids())
        assert stats["live_workers"] == 2
        assert stats["retired_processes"] == 0
        for worker in workers:
            assert worker["uptime_s"] > 0, worker
            assert lookups(cache_of(worker)) > 0, f"worker {worker['pid']} served nothing"

        # Every request tokend answered, token or admin, on some worker.
        assert sum(w["requests"] for w in workers) == n + m + k + answered_before
        totals = stats["caches"]["clients"]
        for name in CACHE_COUNTERS + ("size",):
            assert totals[name] == sum(cache_of(w)[name] for w in workers), (name, stats)
        # One lookup per token request; a wrong secret is a hit (the client
        # exists), an unknown client a miss the first time on each worker and
        # a negative hit after.
        assert lookups(totals) == n + m + k, stats
        assert totals["evictions"] == 0 and totals["expirations"] == 0, stats
        for worker in workers:
            cache = cache_of(worker)
            # Nothing expired or was evicted: a worker missed each client
            # once, and holds exactly what it missed (the good client, the
            # unknown one as a negative entry).
            assert cache["misses"] == cache["size"], worker
            assert 1 <= cache["size"] <= 2, worker
            expected_rate = (cache["hits"] + cache["negative_hits"]) / lookups(cache)
            assert cache["hit_rate"] == pytest.approx(expected_rate, abs=1e-4), worker
        assert totals["hit_rate"] == pytest.approx(
            (totals["hits"] + totals["negative_hits"]) / lookups(totals), abs=1e-4)

        families = admin.metrics()

        def value(name, **labels):
            return prometheus_text.sample_value(families, name, **labels)

        assert value("tokend_tokens_issued_total") == n
        assert value("tokend_token_errors_total", error="invalid_client") == m + k
        assert prometheus_text.family_total(families, "tokend_token_errors_total") == m + k
        assert value("tokend_token_request_duration_seconds_count") == n + m + k
        assert value("tokend_token_request_duration_seconds_bucket", le="+Inf") == n + m + k
        assert value("tokend_token_request_duration_seconds_sum") > 0
        # The stats request just above was answered (and counted) too.
        assert value("tokend_requests_total") == n + m + k + answered_before + 1
        for result, key in (("hit", "hits"), ("miss", "misses"),
                            ("negative_hit", "negative_hits")):
            assert value("tokend_cache_lookups_total", cache="clients",
                         result=result) == totals[key], result
        assert value("tokend_cache_entries", cache="clients") == totals["size"]
        assert value("tokend_workers") == 2
        assert value("tokend_queue_enqueued_total") == n

        queue = admin.queue()
        assert queue["enqueued"] == n, queue
        assert queue["queue_full"] == 0, queue
        assert queue["flusher"] == {"pid": stack.tokend.flusher_pid()}, queue
        queue = wait_until(lambda: (lambda q: q if q["flushed"] == n else None)(admin.queue()),
                           SOON_S, interval_s=0.2, message=f"{n} records flushed")
        assert queue["depth"] == 0, queue
        assert queue["oldest_age_s"] == 0, queue
        assert queue["enqueued"] == n, queue
        assert queue["batches"] >= 1 and queue["flush_errors"] == 0, queue
        assert queue["database_up"] is True, queue
        assert queue["capacity"] > 0, queue
        # And they are in PostgreSQL: the counters describe real records.
        assert token_row_count(pg, [good[0]]) == n


def test_totals_keep_what_a_killed_worker_counted(build_dir, pg, keys, make_client,
                                                  admin_token):
    """A worker killed with SIGKILL is replaced: its counts stay in the
    totals (retired), the replacement starts from zero, and admin actions
    wait for the live workers only."""
    good = make_client("stats-kill")
    with segment_stack(build_dir, pg, keys, workers=2, keepalive=SPREAD,
                       settings=admin_settings(admin_token)) as stack:
        admin = Admin(stack, admin_token[1])
        admin.wait_listening()
        pairs, _, before = until_every_worker_served(stack, admin, lambda: [good] * 16)
        assert {resp.status for _, resp in pairs} == {200}
        sent = len(pairs)
        totals_before = admin.stats()["caches"]["clients"]

        victim = sorted(before)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(stack.tokend.worker_pids()) == 2 and
                   victim not in stack.tokend.worker_pids(), SOON_S,
                   message="the killed worker to be replaced")
        stats = wait_until(lambda: (lambda st: st if st["retired_processes"] == 1 and
                                    st["live_workers"] == 2 else None)(admin.stats()),
                           SOON_S, interval_s=0.2, message="the dead worker's slot retired")
        by_pid = {w["pid"]: w for w in stats["workers"]}
        assert sorted(by_pid) == sorted(stack.tokend.worker_pids()), stats
        assert victim not in by_pid
        replacement = next(w for pid, w in by_pid.items() if pid not in before)
        assert lookups(cache_of(replacement)) == 0, replacement
        assert cache_of(replacement)["size"] == 0, replacement
        totals = stats["caches"]["clients"]
        for name in ("hits", "misses", "negative_hits"):
            assert totals[name] == totals_before[name], (name, totals_before, totals)
        # The size is a gauge: only live workers' entries count.
        assert totals["size"] == sum(cache_of(w)["size"] for w in stats["workers"])

        answered_before = admin.answered
        families = admin.metrics()
        assert prometheus_text.sample_value(families, "tokend_tokens_issued_total") == sent
        assert prometheus_text.sample_value(
            families, "tokend_token_request_duration_seconds_count") == sent
        assert prometheus_text.sample_value(families, "tokend_requests_total") == \
            sent + answered_before
        assert prometheus_text.sample_value(families, "tokend_processes_retired_total") == 1
        assert_complete(admin.act("clear"), "clear", 2)


# ---------------------------------------------------------------------------
# 2. clear / invalidate / cleanup reach every worker
# ---------------------------------------------------------------------------

def warm(stack, admin, clients, expected_size):
    """Requests for every client until each worker served each of them;
    then every worker holds `expected_size` entries."""
    for creds in clients:
        until_every_worker_served(stack, admin, lambda: [creds] * 16)
    workers = admin.workers()
    for worker in workers.values():
        assert cache_of(worker)["size"] == expected_size, worker
    return workers


def assert_complete(resp, action, workers, **fields):
    """A 200 answer saying every one of `workers` workers applied it."""
    assert resp.status == 200, resp
    assert resp.headers.get("Content-Type") == JSON_TYPE, resp
    body = resp.json()
    assert body["action"] == action, body
    # The cache acted on: invalidate is the client cache's; clear names the
    # one cache asked for, else "all" (clients and introspection answers),
    # as cleanup always does.
    default_cache = "clients" if action == "invalidate" else "all"
    assert body["cache"] == fields.pop("cache", default_cache), body
    assert body["scope"] == fields.pop("scope", "instance"), body
    assert body["complete"] is True, body
    assert body["workers"] == workers and body["applied"] == workers, body
    assert body["pending_workers"] == [], body
    assert isinstance(body["seq"], int) and body["seq"] >= 1, body
    for key, value in fields.items():
        assert body[key] == value, (key, body)
    return body


def test_clear_invalidate_and_cleanup_reach_every_worker(build_dir, pg, keys, make_client,
                                                         admin_token):
    a = make_client("admin-a")
    b = make_client("admin-b")
    settings = admin_settings(admin_token, admin_timeout_ms="2000", cache_negative_ttl="1s",
                              cache_sweep_interval="3600s")
    with segment_stack(build_dir, pg, keys, workers=2, keepalive=SPREAD,
                       settings=settings) as stack:
        admin = Admin(stack, admin_token[1])
        admin.wait_listening()

        # clear: both workers hold a and b; afterwards neither holds
        # anything. The worker that does not take the admin request has no
        # traffic at all meanwhile: it is woken (SIGUSR1) to apply the event,
        # or the answer would be a 202 naming it after admin_timeout_ms.
        warm(stack, admin, [a, b], 2)
        body = assert_complete(admin.act("clear"), "clear", 2)
        workers = admin.workers()
        assert len(workers) == 2
        for worker in workers.values():
            assert cache_of(worker)["size"] == 0, worker
            assert worker["events_applied"] >= body["seq"], worker

        # clear?cache=clients: the client cache only.
        warm(stack, admin, [a, b], 2)
        assert_complete(admin.act("clear", "cache=clients"), "clear", 2, cache="clients")
        for worker in admin.workers().values():
            assert cache_of(worker)["size"] == 0, worker

        # invalidate a: every worker drops a and keeps b.
        warm(stack, admin, [a, b], 2)
        body = assert_complete(admin.act("invalidate", f"client_id={a[0]}"), "invalidate", 2,
                               client_id=a[0])
        workers = admin.workers()
        for worker in workers.values():
            assert cache_of(worker)["size"] == 1, worker
            assert worker["events_applied"] >= body["seq"], worker
        # b is still cached on every worker: no misses for it ...
        _, before, after = until_every_worker_served(stack, admin, lambda: [b] * 16)
        for pid in after:
            assert cache_of(after[pid])["misses"] == cache_of(before[pid])["misses"], after[pid]
        # ... and a is gone from every worker: exactly one miss on each.
        pairs, before, after = until_every_worker_served(stack, admin, lambda: [a] * 16)
        assert {resp.status for _, resp in pairs} == {200}
        for pid in after:
            assert cache_of(after[pid])["misses"] == cache_of(before[pid])["misses"] + 1, \
                after[pid]
            assert cache_of(after[pid])["size"] == 2, after[pid]

        # cleanup: unknown clients leave negative entries on every worker,
        # which expire after cache_negative_ttl (1 s); the periodic sweep is
        # an hour away, so only the cleanup can drop them.
        unknown = [unknown_client() for _ in range(3)]
        pairs, _, with_negatives = until_every_worker_served(stack, admin, lambda: unknown * 4)
        for _, resp in pairs:
            assert_oauth_error(resp, 401, "invalid_client")
        negatives = {pid: cache_of(w)["size"] - 2 for pid, w in with_negatives.items()}
        assert all(count >= 1 for count in negatives.values()), with_negatives
        time.sleep(1.5)  # the negative entries expire
        assert_complete(admin.act("cleanup"), "cleanup", 2)
        for worker in admin.workers().values():
            assert cache_of(worker)["size"] == 2, worker  # a and b (ttl 600 s) stay
        # The entries dropped count as expirations, also after more traffic.
        _, _, after = until_every_worker_served(stack, admin, lambda: [b] * 16)
        for pid, worker in after.items():
            assert cache_of(worker)["size"] == 2, worker
            assert cache_of(worker)["expirations"] == \
                cache_of(with_negatives[pid])["expirations"] + negatives[pid], worker


def test_an_idle_instance_applies_an_action_at_once(build_dir, pg, keys, make_client,
                                                    admin_token):
    """Neither worker has served anything since the caches were warmed and
    a quiet second passed: the action still completes (every worker is woken
    to apply it), not a 202 after admin_timeout_ms."""
    a = make_client("admin-idle")
    settings = admin_settings(admin_token, admin_timeout_ms="2000")
    with segment_stack(build_dir, pg, keys, workers=2, keepalive=SPREAD,
                       settings=settings) as stack:
        admin = Admin(stack, admin_token[1])
        admin.wait_listening()
        warm(stack, admin, [a], 1)
        time.sleep(1.0)
        for action, query in (("invalidate", f"client_id={a[0]}"), ("cleanup", ""),
                              ("clear", "")):
            extra = {"client_id": a[0]} if action == "invalidate" else {}
            assert_complete(admin.act(action, query), action, 2, **extra)
        for worker in admin.workers().values():
            assert cache_of(worker)["size"] == 0, worker


def test_cleanup_counts_its_expirations_on_every_worker_when_complete(build_dir, pg, keys,
                                                                       admin_token, migrated_db):
    """Once a cleanup is complete, every worker's entry shows the entries
    it dropped as expirations, not only a smaller size."""
    settings = admin_settings(admin_token, cache_negative_ttl="1s",
                              cache_sweep_interval="3600s")
    with segment_stack(build_dir, pg, keys, workers=2, keepalive=SPREAD,
                       settings=settings) as stack:
        admin = Admin(stack, admin_token[1])
        admin.wait_listening()
        unknown = [unknown_client() for _ in range(3)]
        _, _, before = until_every_worker_served(stack, admin, lambda: unknown * 4)
        assert all(cache_of(w)["size"] >= 1 for w in before.values()), before
        time.sleep(1.5)  # the negative entries expire
        assert_complete(admin.act("cleanup"), "cleanup", 2)
        after = admin.workers()
        for pid, worker in after.items():
            assert cache_of(worker)["size"] == 0, worker
            assert cache_of(worker)["expirations"] == \
                cache_of(before[pid])["expirations"] + cache_of(before[pid])["size"], worker


# ---------------------------------------------------------------------------
# 3. bad admin input changes nothing
# ---------------------------------------------------------------------------

BAD_INPUT = [
    # (method, path, status, error, Allow)
    ("POST", "/admin/cache/clear?cache=tokens", 400, "invalid_request", None),
    ("POST", "/admin/cache/clear?everything=1", 400, "invalid_request", None),
    ("POST", "/admin/cache/clear?scope=galaxy", 400, "invalid_request", None),
    ("POST", "/admin/cache/clear?cache=clients&cache=clients", 400, "invalid_request", None),
    ("POST", "/admin/cache/cleanup?client_id=CLIENT", 400, "invalid_request", None),
    ("POST", "/admin/cache/invalidate", 400, "invalid_request", None),
    ("POST", "/admin/cache/invalidate?client_id=", 400, "invalid_request", None),
    ("POST", "/admin/cache/invalidate?cache=clients", 400, "invalid_request", None),
    ("POST", "/admin/cache/invalidate?client_id=CLIENT&client_id=CLIENT", 400,
     "invalid_request", None),
    ("POST", "/admin/cache/invalidate?client_id=CLIENT&bogus=1", 400, "invalid_request", None),
    ("POST", "/admin/cache/invalidate?client_id=" + "x" * 200, 400, "invalid_request", None),
    ("GET", "/admin/cache/clear", 405, "method_not_allowed", "POST"),
    ("GET", "/admin/cache/invalidate?client_id=CLIENT", 405, "method_not_allowed", "POST"),
    ("GET", "/admin/cache/cleanup", 405, "method_not_allowed", "POST"),
    ("POST", "/admin/cache/stats", 405, "method_not_allowed", "GET, HEAD"),
    ("POST", "/admin/queue/stats", 405, "method_not_allowed", "GET, HEAD"),
    ("GET", "/admin/cache/stats?cache=tokens", 400, "invalid_request", None),
    ("GET", "/admin/cache/stats?scope=fleet", 400, "invalid_request", None),
    ("GET", "/admin/queue/stats?depth=1", 400, "invalid_request", None),
    ("GET", "/admin/cache/flush", 404, "not_found", None),
    ("POST", "/admin/cache/invalidate/CLIENT", 404, "not_found", None),
]


def test_bad_admin_input_is_refused_and_changes_nothing(build_dir, pg, keys, make_client,
                                                        admin_token):
    a = make_client("admin-bad")
    with segment_stack(build_dir, pg, keys, workers=2, keepalive=SPREAD,
                       settings=admin_settings(admin_token)) as stack:
        admin = Admin(stack, admin_token[1])
        admin.wait_listening()
        before = warm(stack, admin, [a], 1)
        events_before = admin.metric("tokend_admin_events_total")

        wrong = []
        for method, path, status, error, allow in BAD_INPUT:
            path = path.replace("CLIENT", a[0])
            resp = admin.request(method, path)
            body = resp.json() if resp.headers.get("Content-Type") == JSON_TYPE else None
            if (resp.status, (body or {}).get("error"), resp.headers.get("Allow")) != \
                    (status, error, allow) or not isinstance(body.get("error_description"), str):
                wrong.append((method, path, resp))
        assert not wrong, "\n".join(f"{m} {p}: {r}" for m, p, r in wrong)

        # No event was published and no worker's cache changed ...
        assert admin.metric("tokend_admin_events_total") == events_before
        after = admin.workers()
        assert set(after) == set(before)
        for pid, worker in after.items():
            assert cache_of(worker) == cache_of(before[pid]), worker
            assert worker["events_applied"] == before[pid]["events_applied"], worker
        # ... so a is still cached on every worker: no miss for it.
        _, before, after = until_every_worker_served(stack, admin, lambda: [a] * 16)
        for pid in after:
            assert cache_of(after[pid])["misses"] == cache_of(before[pid])["misses"], after[pid]
        # The good forms of the same requests work (the refusals above were
        # about the input, not something else).
        assert admin.stats("?cache=clients")["caches"]["clients"]["size"] == 2
        assert_complete(admin.act("invalidate", f"client_id={a[0]}"), "invalidate", 2,
                        client_id=a[0])


# ---------------------------------------------------------------------------
# 4. who may use the admin endpoints
# ---------------------------------------------------------------------------

ADMIN_PATHS = [("GET", "/admin/cache/stats"), ("GET", "/admin/queue/stats"),
               ("POST", "/admin/cache/clear"), ("POST", "/admin/cache/cleanup"),
               ("POST", "/admin/cache/invalidate?client_id=someone"), ("GET", "/metrics")]


def test_without_admin_token_file_the_admin_endpoints_are_403(build_dir, pg, keys,
                                                               admin_token, migrated_db):
    with segment_stack(build_dir, pg, keys, workers=1) as stack:
        admin = Admin(stack, admin_token[1])
        for method, path in ADMIN_PATHS:
            for token in (None, admin_token[1]):
                resp = admin.request(method, path, token=token)
                # tokend's own JSON, not nginx's refusal of an address.
                assert_oauth_error(resp, 403, "admin_disabled")
        health = stack.request("GET", "/health")
        assert health.status in (200, 503) and "status" in health.json(), health
        assert stack.request("GET", "/health?live").status == 200


def test_admin_token_is_required_and_checked(build_dir, pg, keys, admin_token, migrated_db):
    token = admin_token[1]
    with segment_stack(build_dir, pg, keys, workers=1,
                       settings=admin_settings(admin_token)) as stack:
        admin = Admin(stack, token)
        for method, path in ADMIN_PATHS:
            # No Authorization: a bare Bearer challenge.
            resp = admin.request(method, path, token=None)
            assert resp.status == 401, (path, resp)
            assert resp.headers.get("Content-Type") == JSON_TYPE, resp
            assert "error" in resp.json(), resp
            challenge = resp.headers.get("WWW-Authenticate", "")
            assert re.match(r"Bearer( |$)", challenge), resp
            assert "invalid_token" not in challenge, resp

            # A wrong token of the right shape and length.
            wrong = ("A" if token[0] != "A" else "B") + token[1:]
            resp = admin.request(method, path, token=wrong)
            assert_oauth_error(resp, 401, "invalid_token")
            assert re.match(r'Bearer .*error="invalid_token"',
                            resp.headers.get("WWW-Authenticate", "")), resp

        for bad in (token + "x", token[:-1], token.lower() if token.lower() != token
                    else token.upper()):
            assert_oauth_error(admin.request("GET", "/admin/cache/stats", token=bad), 401,
                               "invalid_token")
        for header in (f"Basic {token}", "Basic YWRtaW46YWRtaW4=", f"Bearer {token} extra",
                       f"Bearer {token},", f"Token {token}", "Bearer", f"Bearer\t{token}",
                       f"Bearer {token}, realm=x"):
            resp = admin.request("GET", "/admin/cache/stats", token=None,
                                 headers={"Authorization": header})
            assert resp.status == 401, (header, resp)
            assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer"), (header, resp)
            assert resp.json()["error"] != "", resp

        # The scheme is case-insensitive; the token is not.
        for header in (f"Bearer {token}", f"bearer {token}", f"BEARER {token}"):
            resp = admin.request("GET", "/admin/cache/stats", token=None,
                                 headers={"Authorization": header})
            assert resp.status == 200, (header, resp)
        for method, path in ADMIN_PATHS:
            assert admin.request(method, path).status == 200, path

        # Refused actions published nothing: only the flusher's first clear
        # and the four accepted actions above (clear, cleanup, invalidate)
        # are events. (The flusher's clear may or may not have come yet.)
        events = admin.metric("tokend_admin_events_total")
        assert events in (3, 4), events

        # /health needs no token, and ignores a wrong one.
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token-wrong-token"}):
            resp = stack.request("GET", "/health", headers=headers)
            assert resp.status in (200, 503) and resp.json()["status"] in ("ok", "unavailable")
            assert stack.request("GET", "/health?live", headers=headers).status == 200


def test_admin_rate_limit_per_worker(build_dir, pg, keys, admin_token, migrated_db):
    """admin_rate_limit = 1 per second (a burst of twice that): a quick run
    of admin requests gets 429 with Retry-After after the first couple;
    /health is not limited; after Retry-After the admin is let in again."""
    settings = admin_settings(admin_token, admin_rate_limit="1")
    with segment_stack(build_dir, pg, keys, workers=1, settings=settings) as stack:
        admin = Admin(stack, admin_token[1])
        started = time.monotonic()
        answers = [admin.request("GET", "/admin/cache/stats") for _ in range(10)]
        elapsed = time.monotonic() - started
        statuses = [resp.status for resp in answers]
        assert statuses[0] == 200, answers
        assert set(statuses) == {200, 429}, answers
        # At most the burst plus what refilled meanwhile got through.
        assert statuses.count(200) <= 2 + math.ceil(elapsed), (elapsed, statuses)
        limited = [resp for resp in answers if resp.status == 429]
        for resp in limited:
            assert_oauth_error(resp, 429, "rate_limited")
            assert re.fullmatch(r"[1-9][0-9]*", resp.headers.get("Retry-After", "")), resp
        # /metrics is an admin endpoint: limited too; and requests without
        # the token count against the same limit. (A few tries each: the
        # bucket refills one request a second.)
        assert 429 in [admin.request("GET", "/metrics").status for _ in range(5)]
        assert 429 in [admin.request("GET", "/admin/cache/stats", token=None).status
                       for _ in range(5)]
        # /health is open and unlimited.
        for _ in range(5):
            assert stack.request("GET", "/health?live").status == 200
        retry_after = int(limited[-1].headers["Retry-After"])
        time.sleep(retry_after + 0.2)
        assert admin.request("GET", "/admin/cache/stats").status == 200


# ---------------------------------------------------------------------------
# 5. two instances on one PostgreSQL
# ---------------------------------------------------------------------------

def test_fleet_disabled_client_refused_everywhere_within_2s(build_dir, pg, keys, tokenctl,
                                                            make_client, admin_token):
    """Two instances (own sockets, own segments) share the database. A
    client disabled with tokenctl is refused by every worker of both within
    2 s although every worker had it cached; an admin invalidate with
    ?scope=fleet on one instance reaches the other's workers."""
    disabled_by_tokenctl = make_client("fleet-tokenctl")
    changed_in_db = make_client("fleet-db")
    settings = admin_settings(admin_token, cache_ttl="600s")
    instance = {"workers": 2, "keepalive": SPREAD, "settings": settings}
    with segment_stack(build_dir, pg, keys, **instance) as stack_a, \
            segment_stack(build_dir, pg, keys, **instance) as stack_b:
        assert stack_a.tokend.socket_path != stack_b.tokend.socket_path
        admins = [Admin(stack_a, admin_token[1]), Admin(stack_b, admin_token[1])]
        for admin in admins:
            admin.wait_listening()
        for admin in admins:
            warm(admin.stack, admin, [disabled_by_tokenctl, changed_in_db], 2)

        # A change made behind tokend's back (no NOTIFY): every worker keeps
        # serving the client from its cache - what the notices are for.
        pg.psql("UPDATE clients SET enabled = false WHERE client_id = %s", (changed_in_db[0],))
        for admin in admins:
            pairs, _, _ = until_every_worker_served(admin.stack, admin,
                                                    lambda: [changed_in_db] * 16)
            assert {resp.status for _, resp in pairs} == {200}, pairs[:3]
        # ?scope=fleet on instance A: A's workers have applied it when it
        # answers; B's flusher hears the NOTIFY and B's workers follow.
        resp = admins[0].act("invalidate", f"client_id={changed_in_db[0]}&scope=fleet")
        assert_complete(resp, "invalidate", 2, scope="fleet", client_id=changed_in_db[0],
                        fleet_notified=True)
        assert_refused_by_every_worker(stack_a, admins[0], changed_in_db, 400,
                                       "unauthorized_client")
        wait_until(lambda: stack_b.token(*changed_in_db).status == 400, SOON_S, interval_s=0.1,
                   message="instance B to hear the fleet invalidate")
        assert_refused_by_every_worker(stack_b, admins[1], changed_in_db, 400,
                                       "unauthorized_client")

        # tokenctl: within 2 s of its commit, every worker of both refuses.
        for admin in admins:
            pairs, _, _ = until_every_worker_served(admin.stack, admin,
                                                    lambda: [disabled_by_tokenctl] * 16)
            assert {resp.status for _, resp in pairs} == {200}, pairs[:3]
        result = tokenctl("client", "disable", disabled_by_tokenctl[0])
        assert result.returncode == 0, result.stderr
        time.sleep(FLEET_PROPAGATION_S)
        for admin in admins:
            assert_refused_by_every_worker(admin.stack, admin, disabled_by_tokenctl, 400,
                                           "unauthorized_client")
        # And `enable` brings it back the same way (no TTL to wait out).
        result = tokenctl("client", "enable", disabled_by_tokenctl[0])
        assert result.returncode == 0, result.stderr
        time.sleep(FLEET_PROPAGATION_S)
        for admin in admins:
            pairs, _, _ = until_every_worker_served(admin.stack, admin,
                                                    lambda: [disabled_by_tokenctl] * 16)
            assert {resp.status for _, resp in pairs} == {200}, pairs[:3]


def test_tokenctl_notifies_on_the_configured_notify_channel(build_dir, pg, keys, tokenctl,
                                                            make_client, admin_token,
                                                            tmp_path):
    """notify_channel set to something else, in tokend's config and in the
    config tokenctl reads (the same on every host, as the example config
    says): a client disabled with tokenctl is still refused within 2 s."""
    channel = "tokend_it_custom"
    client = make_client("fleet-channel")
    control = make_client("fleet-channel-control")
    config = tmp_path / "tokenctl.conf"
    config.write_text(f"secret_hash_iterations = 1000\nnotify_channel = {channel}\n")
    settings = admin_settings(admin_token, notify_channel=channel, cache_ttl="600s")
    with segment_stack(build_dir, pg, keys, workers=1, settings=settings) as stack:
        admin = Admin(stack, admin_token[1])
        admin.wait_listening()
        warm(stack, admin, [client, control], 2)
        # tokend does listen on the configured channel: a notice sent there
        # by hand makes it forget a client at once ...
        pg.psql("UPDATE clients SET enabled = false WHERE client_id = %s", (control[0],))
        pg.psql("SELECT pg_notify(%s, %s)", (channel, control[0]))
        wait_until(lambda: stack.token(*control).status == 400, FLEET_PROPAGATION_S,
                   interval_s=0.05, message="the hand-made notice to be heard")
        # ... and tokenctl, given the same notify_channel in its config,
        # sends its notice there (not on the default channel).
        result = tokenctl("client", "disable", client[0], config=config)
        assert result.returncode == 0, result.stderr
        time.sleep(FLEET_PROPAGATION_S)
        assert_oauth_error(stack.token(*client), 400, "unauthorized_client")


# ---------------------------------------------------------------------------
# 6. /metrics in the Prometheus text format
# ---------------------------------------------------------------------------

EXPECTED_FAMILIES = {
    "tokend_requests_total": "counter",
    "tokend_cache_lookups_total": "counter",
    "tokend_cache_evictions_total": "counter",
    "tokend_cache_expirations_total": "counter",
    "tokend_cache_entries": "gauge",
    "tokend_tokens_issued_total": "counter",
    "tokend_token_errors_total": "counter",
    "tokend_token_request_duration_seconds": "histogram",
    "tokend_queue_depth": "gauge",
    "tokend_queue_capacity": "gauge",
    "tokend_queue_oldest_age_seconds": "gauge",
    "tokend_queue_enqueued_total": "counter",
    "tokend_queue_full_total": "counter",
    "tokend_flushed_total": "counter",
    "tokend_flush_batches_total": "counter",
    "tokend_flush_errors_total": "counter",
    "tokend_flush_last_duration_seconds": "gauge",
    "tokend_database_up": "gauge",
    "tokend_workers": "gauge",
    "tokend_flusher_up": "gauge",
    "tokend_processes_retired_total": "counter",
    "tokend_admin_events_total": "counter",
    "tokend_introspections_total": "counter",
    "tokend_introspection_refused_total": "counter",
    "tokend_revocations_total": "counter",
    "tokend_revoked_tokens": "gauge",
}
TOKEN_ERRORS = ("invalid_request", "invalid_client", "unauthorized_client",
                "unsupported_grant_type", "invalid_scope", "invalid_target",
                "temporarily_unavailable", "server_error", "other")


def test_metrics_parse_strictly_and_count_what_happened(build_dir, pg, keys, make_client,
                                                        admin_token):
    client = make_client("metrics")
    with segment_stack(build_dir, pg, keys, workers=2,
                       settings=admin_settings(admin_token)) as stack:
        admin = Admin(stack, admin_token[1])
        # 3 tokens, 1 invalid_scope, 1 unsupported_grant_type, 1 wrong
        # secret, 1 GET on the token endpoint (405: "other", no latency).
        for _ in range(3):
            assert stack.token(*client).status == 200
        assert_oauth_error(stack.token(*client, params={"scope": "admin"}), 400, "invalid_scope")
        assert_oauth_error(stack.token(*client, params={"grant_type": "password"}), 400,
                           "unsupported_grant_type")
        assert_oauth_error(stack.token(client[0], "wrong"), 401, "invalid_client")
        assert stack.request("GET", "/oauth/token").status == 405
        wait_until(lambda: admin.metric("tokend_flushed_total") == 3 and
                   admin.metric("tokend_database_up") == 1, SOON_S, interval_s=0.2,
                   message="the tokens flushed and the database up")

        resp = admin.request("GET", "/metrics")
        assert resp.status == 200, resp
        assert resp.headers.get("Content-Type").replace(" ", "").startswith(
            "text/plain;version=0.0.4"), resp
        assert resp.headers.get("Cache-Control") == "no-store", resp
        text = resp.body.decode("utf-8", errors="strict")
        families = prometheus_text.parse(text)

        def value(name, **labels):
            return prometheus_text.sample_value(families, name, **labels)


        assert {name: f.type for name, f in families.items()} == EXPECTED_FAMILIES
        for name, family in families.items():
            assert name.startswith("tokend_"), name
            assert family.help, f"{name} has no HELP text"
            assert family.samples, f"{name} has no samples"
            assert (family.type == "counter") == name.endswith("_total"), name
        # Labels are fixed strings: no client id ever shows up.
        assert client[0] not in text

        assert value("tokend_tokens_issued_total") == 3
        errors = {s.labels["error"]: s.value for s in families["tokend_token_errors_total"].samples}
        assert errors == {e: 0 for e in TOKEN_ERRORS} | {
            "invalid_scope": 1, "unsupported_grant_type": 1, "invalid_client": 1, "other": 1}

        histogram = families["tokend_token_request_duration_seconds"]
        buckets = [(s.labels["le"], s.value) for s in histogram.samples
                   if s.name.endswith("_bucket")]
        assert len(buckets) >= 2 and buckets[-1][0] == "+Inf", buckets
        bounds = [float(le) for le, _ in buckets]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), buckets
        counts = [count for _, count in buckets]
        assert counts == sorted(counts), buckets  # cumulative
        # Six POSTs reached the token endpoint; the GET was refused before.
        assert value("tokend_token_request_duration_seconds_count") == 6
        assert counts[-1] == 6
        assert 0 < value("tokend_token_request_duration_seconds_sum") < 6 * HTTP_TIMEOUT_S

        assert value("tokend_workers") == 2
        assert value("tokend_flusher_up") == 1
        assert value("tokend_database_up") == 1
        assert value("tokend_queue_depth") == 0
        assert value("tokend_queue_oldest_age_seconds") == 0
        assert value("tokend_queue_enqueued_total") == 3
        assert value("tokend_flushed_total") == 3
        assert value("tokend_flush_batches_total") >= 1
        assert value("tokend_flush_errors_total") == 0
        assert value("tokend_queue_full_total") == 0
        assert value("tokend_processes_retired_total") == 0
        assert value("tokend_queue_capacity") == admin.queue()["capacity"]
        # A cache lookup per request that got as far as its client: not the
        # unsupported grant_type (refused on its shape) nor the GET.
        lookups_total = prometheus_text.family_total(families, "tokend_cache_lookups_total")
        assert lookups_total == 5

        # HEAD: the same headers, no body.
        head = admin.request("HEAD", "/metrics")
        assert head.status == 200 and head.body == b"", head
        # Counters never go down from one scrape to the next.
        again = admin.metrics()
        for name, family in families.items():
            if family.type == "counter":
                for sample in family.samples:
                    assert prometheus_text.sample_value(again, sample.name, **sample.labels) \
                        >= sample.value, sample


# ---------------------------------------------------------------------------
# 7. /health follows PostgreSQL
# ---------------------------------------------------------------------------

def test_health_flips_to_503_while_postgresql_is_stopped(build_dir, pg, keys, admin_token,
                                                         migrated_db):
    interval_ms = 3000
    settings = admin_settings(admin_token, health_db_interval_ms=str(interval_ms),
                              db_retry_interval_ms="200")
    with segment_stack(build_dir, pg, keys, workers=2, settings=settings) as stack:
        def health():
            resp = stack.request("GET", "/health")
            assert resp.status in (200, 503), resp
            assert resp.headers.get("Content-Type") == JSON_TYPE, resp
            assert resp.headers.get("Cache-Control") == "no-store", resp
            return resp

        def live():
            resp = stack.request("GET", "/health?live")
            assert resp.status == 200, resp
            assert resp.json()["status"] == "live", resp

        resp = wait_until(lambda: (lambda r: r if r.status == 200 else None)(health()), SOON_S,
                          interval_s=0.2, message="/health 200 on a fresh stack")
        body = resp.json()
        assert body["status"] == "ok" and body["reasons"] == [], body
        assert body["checks"]["workers"] == {"ok": True, "running": 2, "expected": 2}, body
        assert body["checks"]["database"]["ok"] is True, body
        assert body["checks"]["flusher"]["ok"] is True, body
        assert body["checks"]["queue"]["ok"] is True, body
        # It needs no token and names no pid.
        assert "pid" not in resp.body.decode()
        live()

        try:
            pg.stop()
            resp = wait_until(lambda: (lambda r: r if r.status == 503 else None)(health()),
                              interval_ms / 1000 + 15, interval_s=0.2,
                              message="/health 503 with PostgreSQL stopped")
            body = resp.json()
            assert body["status"] == "unavailable", body
            assert any("database" in reason for reason in body["reasons"]), body
            assert body["checks"]["database"]["ok"] is False, body
            # Only the database is the matter.
            assert body["checks"]["workers"]["ok"] is True, body
            assert body["checks"]["queue"]["ok"] is True, body
            live()
            admin = Admin(stack, admin_token[1])
            assert admin.metric("tokend_database_up") == 0
            assert admin.queue()["database_up"] is False
            # A fleet action cannot reach the other hosts now: 503, though
            # this instance's part was done.
            resp = admin.act("clear", "scope=fleet")
            assert resp.status == 503, resp
            assert resp.headers.get("Retry-After") == "1", resp
            body = resp.json()
            assert body["fleet_notified"] is False and body["complete"] is True, body
            events_while_down = admin.metric("tokend_admin_events_total")
        finally:
            pg.start()

        resp = wait_until(lambda: (lambda r: r if r.status == 200 else None)(health()), 30,
                          interval_s=0.2, message="/health 200 after PostgreSQL is back")
        assert resp.json()["status"] == "ok"
        live()
        # The flusher's LISTEN connection was lost with the server: once it
        # listens again it clears the caches once (notices sent meanwhile
        # are lost), which shows as one more admin event.
        wait_until(lambda: admin.metric("tokend_admin_events_total") == events_while_down + 1,
                   SOON_S, message="the clear after the LISTEN connection came back")


def test_health_takes_no_other_query(build_dir, pg, keys, migrated_db):
    with segment_stack(build_dir, pg, keys, workers=1) as stack:
        assert_oauth_error(stack.request("GET", "/health?verbose=1"), 400, "invalid_request")
        resp = stack.request("POST", "/health", "", {"Content-Type": "application/json"})
        assert_oauth_error(resp, 405, "method_not_allowed")
        assert resp.headers.get("Allow") == "GET, HEAD"


# ---------------------------------------------------------------------------
# 8. the shipped nginx block
# ---------------------------------------------------------------------------

def shipped_locations():
    """{location argument: [directives]} of nginx-conf/tokend.conf, with
    comments stripped ("= /metrics" for an exact match)."""
    text = (REPO_ROOT / "nginx-conf" / "tokend.conf").read_text()
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    locations = {}
    for match in re.finditer(r"location\s+([^{]+?)\s*\{([^}]*)\}", text):
        directives = [" ".join(d.split()) for d in match.group(2).split(";") if d.strip()]
        locations[" ".join(match.group(1).split())] = directives
    return locations


def test_shipped_nginx_block_keeps_admin_and_metrics_on_loopback():
    locations = shipped_locations()
    for location in ("/admin/", "= /metrics"):
        directives = locations[location]
        access = [d for d in directives if d.split()[0] in ("allow", "deny")]
        # Loopback only, the deny last (nginx applies the first match).
        assert access == ["allow 127.0.0.1", "allow ::1", "deny all"], (location, directives)
        assert "fastcgi_pass tokend" in directives, (location, directives)
    # /health is open; the OAuth endpoints too.
    for location in ("= /health", "= /oauth/token"):
        assert not [d for d in locations[location] if d.split()[0] in ("allow", "deny")]


def request_from(source_ip, port, method, path, headers=None):
    """One request to 127.0.0.1:port from the local address source_ip."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S,
                                      source_address=(source_ip, 0))
    try:
        conn.request(method, path, body="" if method == "POST" else None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def test_admin_through_nginx_from_loopback_only(build_dir, pg, keys, admin_token,
                                                migrated_db):
    """From 127.0.0.1 (allowed) the admin endpoints answer; from 127.0.0.2
    (loopback interface, but not an allowed address) nginx refuses them
    with its JSON 403 while /health still answers."""
    with segment_stack(build_dir, pg, keys, workers=1,
                       settings=admin_settings(admin_token)) as stack:
        auth = {"Authorization": f"Bearer {admin_token[1]}"}
        for path in ("/admin/cache/stats", "/admin/queue/stats", "/metrics"):
            status, _, body = request_from("127.0.0.1", stack.port, "GET", path, auth)
            assert status == 200, (path, body)
        status, _, body = request_from("127.0.0.1", stack.port, "POST", "/admin/cache/clear",
                                       auth)
        assert status == 200 and json.loads(body)["complete"] is True, body

        for method, path in (("GET", "/admin/cache/stats"), ("GET", "/admin/queue/stats"),
                             ("POST", "/admin/cache/clear"), ("GET", "/admin/anything"),
                             ("GET", "/metrics")):
            status, headers, body = request_from("127.0.0.2", stack.port, method, path, auth)
            assert status == 403, (path, body)
            assert json.loads(body)["error"] == "forbidden", (path, body)
        status, _, body = request_from("127.0.0.2", stack.port, "GET", "/health?live")
        assert status == 200, body
