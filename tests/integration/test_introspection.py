"""Token introspection (RFC 7662) and revocation (RFC 7009), issue 6,
through nginx running the shipped server block, against a real PostgreSQL.

What the tests hold tokend to:
  - a fresh token introspects as active with exactly its own claims; every
    token that is not one tokend issued and still honours (a bad signature,
    alg none, HS256 keyed with the public key's bytes, another issuer, an
    unknown kid, expired, truncated, garbage) is {"active":false} and
    nothing more, and the reason is counted in /metrics;
  - only an authenticated client with the tokend:introspect scope may ask;
    malformed requests get RFC 6749 JSON errors;
  - the validation cache counts a miss, then hits, and negative hits for
    inactive tokens, in /admin/cache/stats and /metrics as cache
    "introspection"; a cached active answer is refused once the token
    expires or is revoked;
  - revocation: a client revokes its own token (a row in `revocations`,
    inactive on every worker at once, on a second instance sharing the
    database within 2 s, and on an instance started later); another
    client's token or an invalid one answers 200 with no effect;
    `tokenctl tokens revoke` and `tokenctl client revoke-all` do the same
    from the command line; a disabled client's tokens are inactive until
    it is enabled again.

Tokens are forged with the instance's own ES256 key file (the keys fixture)
where a test needs our signature on claims tokend would never issue.
"""

import base64
import hashlib
import hmac
import json
import time
import urllib.parse

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

import prometheus_text
from conftest import (FORM, basic_header, clean_env, run, segment_stack, token_row_count,
                      wait_until)

# The promise of issue 6: a revoked token is inactive everywhere within this.
REVOCATION_PROPAGATION_S = 2.0
SOON_S = 20.0
INTROSPECT_SCOPE = "tokend:introspect"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_json(value):
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def split(token):
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(header))),
            json.loads(base64.urlsafe_b64decode(pad(payload))), signature)


def sign_es256(key_path, header, claims):
    """A compact JWS signed with the ES256 key in `key_path`."""
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return signing_input.decode() + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def form_post(stack, path, pairs, client=None, auth="basic", headers=None):
    all_headers = {"Content-Type": FORM}
    pairs = list(pairs)
    if client is not None and auth == "basic":
        all_headers["Authorization"] = basic_header(*client)
    elif client is not None:
        pairs += [("client_id", client[0]), ("client_secret", client[1])]
    all_headers.update(headers or {})
    return stack.request("POST", path, urllib.parse.urlencode(pairs), all_headers)


def introspect(stack, token, client, **kwargs):
    return form_post(stack, "/oauth/introspect", [("token", token)], client, **kwargs)


def revoke(stack, token, client, **kwargs):
    return form_post(stack, "/oauth/revoke", [("token", token)], client, **kwargs)


def is_active(stack, token, client):
    resp = introspect(stack, token, client)
    assert resp.status == 200, resp
    body = resp.json()
    if body["active"]:
        return True
    assert body == {"active": False}, body  # no reason is ever given
    return False


def new_token(stack, client, **params):
    resp = stack.token(*client, params=params or None)
    assert resp.status == 200, resp
    return resp.json()["access_token"]


class Admin:
    def __init__(self, stack, token):
        self.stack = stack
        self.token = token

    def get(self, path):
        resp = self.stack.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
        assert resp.status == 200, resp
        return resp

    def metrics(self):
        return prometheus_text.parse(self.get("/metrics").body.decode())

    def sample(self, name, **labels):
        return prometheus_text.sample_value(self.metrics(), name, **labels)

    def introspection_cache(self):
        return self.get("/admin/cache/stats?cache=introspection").json()["caches"]


@pytest.fixture(scope="module")
def admin_token(build_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("admin") / "admin.token"
    run([build_dir / "tokenctl", "admin-token", "generate", "--out", path], env=clean_env())
    return path, path.read_text().strip()


def settings(admin_token, **more):
    return {"admin_token_file": str(admin_token[0]), "admin_rate_limit": "1000", **more}


@pytest.fixture(scope="module")
def resource_server(make_client):
    """A client allowed to introspect."""
    return make_client("rs", scopes=INTROSPECT_SCOPE, default_scopes=None)


@pytest.fixture(scope="module")
def app(make_client):
    """A client that gets tokens."""
    return make_client("app", scopes="read write", default_scopes="read",
                       audience="https://api.example")


@pytest.fixture(scope="module")
def stack(build_dir, pg, keys, admin_token, migrated_db):
    """Two workers, nginx without kept connections so requests reach both."""
    with segment_stack(build_dir, pg, keys, workers=2, keepalive="off",
                       settings=settings(admin_token)) as running:
        yield running


def wait_for_listener(admin):
    """The flusher's LISTEN connection is up once it published its first
    CLEAR (see test_admin.py)."""
    wait_until(lambda: admin.sample("tokend_admin_events_total") >= 1, SOON_S,
               message="the flusher to LISTEN")


# ---------------------------------------------------------------------------
# introspection
# ---------------------------------------------------------------------------

def test_fresh_token_is_active_with_its_claims(stack, app, resource_server):
    token = new_token(stack, app, scope="read write")
    _, claims, _ = split(token)
    for auth in ("basic", "post"):
        resp = introspect(stack, token, resource_server, auth=auth)
        assert resp.status == 200, resp
        assert resp.headers.get("Content-Type", "").startswith("application/json")
        assert resp.headers.get("Cache-Control") == "no-store"
        body = resp.json()
        assert body == {
            "active": True, "scope": "read write", "client_id": app[0], "sub": app[0],
            "aud": "https://api.example", "iss": stack.issuer, "exp": claims["exp"],
            "iat": claims["iat"], "jti": claims["jti"], "token_type": "Bearer",
        }
    # A hint is accepted and changes nothing.
    resp = form_post(stack, "/oauth/introspect",
                     [("token", token), ("token_type_hint", "refresh_token")], resource_server)
    assert resp.status == 200 and resp.json()["active"] is True


def test_discovery_names_the_endpoints(stack):
    meta = stack.request("GET", "/.well-known/oauth-authorization-server").json()
    assert meta["introspection_endpoint"] == stack.issuer + "/oauth/introspect"
    assert meta["revocation_endpoint"] == stack.issuer + "/oauth/revoke"
    for name in ("introspection_endpoint_auth_methods_supported",
                 "revocation_endpoint_auth_methods_supported"):
        assert meta[name] == ["client_secret_basic", "client_secret_post"]


@pytest.mark.parametrize("path", ["/oauth/introspect", "/oauth/revoke"])
def test_requests_are_checked(stack, app, resource_server, path):
    token = new_token(stack, app)

    def error_of(resp, status, error):
        assert resp.status == status, resp
        assert resp.json()["error"] == error, resp
        return resp

    # No client, a wrong secret, an unknown client: 401 invalid_client.
    error_of(form_post(stack, path, [("token", token)]), 401, "invalid_client")
    resp = error_of(form_post(stack, path, [("token", token)], (resource_server[0], "wrong")),
                    401, "invalid_client")
    assert resp.headers.get("WWW-Authenticate", "").startswith("Basic")
    error_of(form_post(stack, path, [("token", token)], ("nobody", "x"), auth="post"),
             401, "invalid_client")
    # Malformed requests: 400 invalid_request, in JSON.
    error_of(form_post(stack, path, [], resource_server), 400, "invalid_request")
    error_of(form_post(stack, path, [("token", token), ("token", token)], resource_server),
             400, "invalid_request")
    error_of(form_post(stack, path, [("token", token)], resource_server,
                       headers={"Content-Type": "application/json"}), 400, "invalid_request")
    error_of(form_post(stack, path, [("token", "x" * 9000)], resource_server),
             413, "invalid_request")
    # Over nginx's own limit: nginx refuses it, in the same JSON shape.
    error_of(form_post(stack, path, [("token", "x" * (1024 * 1024))], resource_server),
             413, "invalid_request")
    resp = stack.request("GET", path)
    assert resp.status == 405 and "POST" in resp.headers.get("Allow", "")
    # Nothing was revoked by any of it.
    assert is_active(stack, token, resource_server)


def test_introspection_needs_the_permission(stack, app, make_client):
    token = new_token(stack, app)
    resp = introspect(stack, token, app)
    assert resp.status == 403, resp
    assert resp.json()["error"] == "unauthorized_client"
    assert "tokend:introspect" in resp.json()["error_description"]


def test_forged_and_broken_tokens_are_inactive(stack, keys, app, resource_server, admin_token):
    admin = Admin(stack, admin_token[1])
    token = new_token(stack, app)
    header, claims, signature = split(token)
    head, body, _ = token.split(".")
    jwks = stack.request("GET", "/.well-known/jwks.json").json()
    public_pem = serialization.load_pem_private_key(
        keys["ES256"].read_bytes(), password=None).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    hs_header = b64url_json({**header, "alg": "HS256"})
    hs_input = f"{hs_header}.{body}".encode()
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    now = int(time.time())
    forged = {
        "bad_signature": f"{head}.{body}.{flipped}",
        "bad_signature/claims": f"{head}.{b64url_json({**claims, 'scope': 'admin'})}.{signature}",
        "bad_alg/none": f"{b64url_json({**header, 'alg': 'none'})}.{body}.",
        "bad_alg/hs256-public-key":
            f"{hs_header}.{body}.{b64url(hmac.new(public_pem, hs_input, hashlib.sha256).digest())}",
        "wrong_issuer": sign_es256(keys["ES256"], header, {**claims, "iss": "https://evil.example"}),
        "unknown_key": sign_es256(keys["ES256"], {**header, "kid": "not-our-kid"}, claims),
        "expired": sign_es256(keys["ES256"], header,
                              {**claims, "iat": now - 7200, "exp": now - 3600}),
        "malformed/truncated": token[: len(token) // 2],
        "malformed/two-parts": f"{head}.{body}",
        "malformed/garbage": "x" * 7000,
        "malformed/binary": "\x01\xff.\x7f." * 10,
    }
    assert jwks["keys"][0]["kid"] == header["kid"]
    before = {reason: admin.sample("tokend_introspections_total", result="inactive", reason=reason)
              for reason in ("bad_signature", "bad_alg", "wrong_issuer", "unknown_key", "expired",
                             "malformed")}
    for name, forgery in forged.items():
        assert not is_active(stack, forgery, resource_server), name
    expected = {"bad_signature": 2, "bad_alg": 2, "wrong_issuer": 1, "unknown_key": 1,
                "expired": 1, "malformed": 4}
    for reason, count in expected.items():
        after = admin.sample("tokend_introspections_total", result="inactive", reason=reason)
        assert after - before[reason] == count, reason
    # The genuine token is untouched by all of it.
    assert is_active(stack, token, resource_server)


def test_validation_cache_counts(build_dir, pg, keys, admin_token, app, resource_server):
    """One worker, so every request meets the same cache."""
    with segment_stack(build_dir, pg, keys, workers=1,
                       settings=settings(admin_token)) as single:
        admin = Admin(single, admin_token[1])
        token = new_token(single, app)
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        start = admin.introspection_cache()["introspection"]
        assert is_active(single, token, resource_server)      # miss, cached
        assert is_active(single, token, resource_server)      # hit
        assert is_active(single, token, resource_server)      # hit
        assert not is_active(single, forged, resource_server)  # miss, cached negatively
        assert not is_active(single, forged, resource_server)  # negative hit
        now = admin.introspection_cache()["introspection"]
        assert now["misses"] - start["misses"] == 2
        assert now["hits"] - start["hits"] == 2
        assert now["negative_hits"] - start["negative_hits"] == 1
        assert now["size"] - start["size"] == 2
        samples = {s.labels["result"]: s.value
                   for s in admin.metrics()["tokend_cache_lookups_total"].samples
                   if s.labels["cache"] == "introspection"}
        assert samples == {"hit": now["hits"], "negative_hit": now["negative_hits"],
                           "miss": now["misses"]}
        assert admin.sample("tokend_cache_entries", cache="introspection") == now["size"]
        assert admin.sample("tokend_introspections_total", result="inactive",
                            reason="cached_inactive") >= 1
        # Clearing only the introspection cache leaves the client cache.
        clients_before = admin.get("/admin/cache/stats").json()["caches"]["clients"]["size"]
        resp = single.request("POST", "/admin/cache/clear?cache=introspection", "",
                              {"Authorization": f"Bearer {admin_token[1]}"})
        assert resp.status == 200 and resp.json()["cache"] == "introspection", resp
        caches = admin.get("/admin/cache/stats").json()["caches"]
        assert caches["introspection"]["size"] == 0
        assert caches["clients"]["size"] == clients_before > 0


def test_cached_answer_ends_with_the_token(build_dir, pg, keys, admin_token, make_client,
                                           resource_server):
    short = make_client("short", ttl=2)
    with segment_stack(build_dir, pg, keys, workers=1,
                       settings=settings(admin_token, clock_skew="0s")) as single:
        admin = Admin(single, admin_token[1])
        token = new_token(single, short)
        exp = split(token)[1]["exp"]
        assert is_active(single, token, resource_server)
        assert is_active(single, token, resource_server)
        hits = admin.introspection_cache()["introspection"]["hits"]
        assert hits >= 1  # the answer came from the cache
        wait_until(lambda: time.time() >= exp + 0.2, 10, message="the token to expire")
        assert not is_active(single, token, resource_server)


# ---------------------------------------------------------------------------
# revocation
# ---------------------------------------------------------------------------

def test_client_revokes_its_own_token(stack, pg, app, resource_server, admin_token):
    admin = Admin(stack, admin_token[1])
    token = new_token(stack, app)
    claims = split(token)[1]
    for _ in range(4):  # cached on both workers
        assert is_active(stack, token, resource_server)
    revoked_before = admin.sample("tokend_revocations_total", result="revoked")
    resp = revoke(stack, token, app)
    assert resp.status == 200, resp
    assert resp.headers.get("Cache-Control") == "no-store"
    rows = pg.psql("SELECT client_id, extract(epoch FROM expires_at)::bigint FROM revocations"
                   " WHERE jti = %s", (claims["jti"],))
    assert rows == [(app[0], claims["exp"])]
    # Inactive at once, on every worker (each request may meet either).
    for _ in range(8):
        assert not is_active(stack, token, resource_server)
    assert admin.sample("tokend_revocations_total", result="revoked") == revoked_before + 1
    # Revoking again: 200, nothing more.
    assert revoke(stack, token, app, auth="post").status == 200
    assert len(pg.psql("SELECT 1 FROM revocations WHERE jti = %s", (claims["jti"],))) == 1


def test_revoking_what_is_not_yours_changes_nothing(stack, pg, app, make_client,
                                                    resource_server, admin_token):
    admin = Admin(stack, admin_token[1])
    other = make_client("other")
    token = new_token(stack, app)
    jti = split(token)[1]["jti"]
    not_owner = admin.sample("tokend_revocations_total", result="not_owner")
    inactive = admin.sample("tokend_revocations_total", result="inactive")
    assert revoke(stack, token, other).status == 200
    assert revoke(stack, "not-a-token", other).status == 200
    assert revoke(stack, token[:-3] + "abc", app).status == 200
    assert is_active(stack, token, resource_server)
    assert pg.psql("SELECT 1 FROM revocations WHERE jti = %s", (jti,)) == []
    assert admin.sample("tokend_revocations_total", result="not_owner") == not_owner + 1
    assert admin.sample("tokend_revocations_total", result="inactive") == inactive + 2


def test_revocation_reaches_a_second_instance(build_dir, pg, keys, admin_token, app,
                                              resource_server, stack):
    """Two instances sharing PostgreSQL (as two hosts would): revoked on
    one, inactive on the other within 2 s; an instance started afterwards
    reads it from the table. All three serve one issuer, as the hosts of
    one service do."""
    same_issuer = settings(admin_token, issuer=stack.issuer)
    with segment_stack(build_dir, pg, keys, workers=2, keepalive="off",
                       settings=same_issuer) as other:
        wait_for_listener(Admin(other, admin_token[1]))
        wait_for_listener(Admin(stack, admin_token[1]))
        token = new_token(stack, app)
        for _ in range(4):
            assert is_active(other, token, resource_server)
        assert revoke(stack, token, app).status == 200
        revoked_at = time.monotonic()
        wait_until(lambda: not is_active(other, token, resource_server),
                   REVOCATION_PROPAGATION_S + 1, interval_s=0.05,
                   message="the revocation to reach the other instance")
        assert time.monotonic() - revoked_at <= REVOCATION_PROPAGATION_S
        for _ in range(6):
            assert not is_active(other, token, resource_server)
    with segment_stack(build_dir, pg, keys, workers=2, keepalive="off",
                       settings=same_issuer) as later:
        for _ in range(4):
            assert not is_active(later, token, resource_server)
        assert is_active(later, new_token(stack, app), resource_server)


def test_tokenctl_tokens_revoke(stack, pg, tokenctl, app, resource_server, admin_token):
    wait_for_listener(Admin(stack, admin_token[1]))
    token = new_token(stack, app)
    jti = split(token)[1]["jti"]
    assert is_active(stack, token, resource_server)
    wait_until(lambda: token_row_count(pg, [app[0]]) > 0 and
               pg.psql("SELECT 1 FROM tokens WHERE jti = %s::uuid", (jti,)) != [],
               SOON_S, message="the token's row")
    result = tokenctl("tokens", "revoke", jti.upper())
    assert result.returncode == 0, result.stderr
    wait_until(lambda: not is_active(stack, token, resource_server), REVOCATION_PROPAGATION_S,
               message="tokenctl's revocation to reach the workers")
    # Unknown and malformed jtis: clear errors, exit 1, nothing written.
    count = pg.psql("SELECT count(*) FROM revocations")[0][0]
    unknown = tokenctl("tokens", "revoke", "0" * 32)
    assert unknown.returncode == 1 and "no token with jti" in unknown.stderr
    bad = tokenctl("tokens", "revoke", "xyz")
    assert bad.returncode == 1 and "invalid jti" in bad.stderr
    missing = tokenctl("tokens", "revoke")
    assert missing.returncode == 2 and "missing JTI" in missing.stderr
    assert pg.psql("SELECT count(*) FROM revocations")[0][0] == count


def test_tokenctl_client_revoke_all(stack, tokenctl, make_client, resource_server, admin_token):
    wait_for_listener(Admin(stack, admin_token[1]))
    victim = make_client("victim")
    tokens = [new_token(stack, victim) for _ in range(3)]
    for token in tokens:
        assert is_active(stack, token, resource_server)
    result = tokenctl("client", "revoke-all", victim[0])
    assert result.returncode == 0, result.stderr
    wait_until(lambda: not any(is_active(stack, t, resource_server) for t in tokens),
               REVOCATION_PROPAGATION_S, message="revoke-all to reach the workers")
    # Tokens issued from the next second on are good (the second of the
    # revoke-all itself counts as revoked).
    time.sleep(1.1)
    fresh = new_token(stack, victim)
    assert is_active(stack, fresh, resource_server)
    assert tokenctl("client", "revoke-all", "no-such-client").returncode == 1


def test_disabled_client_tokens_are_inactive_until_enabled(stack, tokenctl, make_client,
                                                           resource_server, admin_token):
    wait_for_listener(Admin(stack, admin_token[1]))
    owner = make_client("owner")
    token = new_token(stack, owner)
    assert is_active(stack, token, resource_server)
    assert tokenctl("client", "disable", owner[0]).returncode == 0
    wait_until(lambda: not is_active(stack, token, resource_server), REVOCATION_PROPAGATION_S,
               message="the disabled client's token to turn inactive")
    assert tokenctl("client", "enable", owner[0]).returncode == 0
    wait_until(lambda: is_active(stack, token, resource_server), REVOCATION_PROPAGATION_S,
               message="the token to be active again")


@pytest.mark.parametrize("alg", ["RS256", "HS256"])
def test_other_algorithms(build_dir, pg, keys, admin_token, app, resource_server, alg):
    """RS256 and HS256 instances (HS256 is what resource servers that cannot
    verify a JWT themselves meet): genuine tokens are active, a token whose
    header claims another algorithm is not."""
    with segment_stack(build_dir, pg, keys, alg=alg, workers=1,
                       settings=settings(admin_token)) as single:
        token = new_token(single, app)
        header, claims, signature = split(token)
        assert header["alg"] == alg
        assert is_active(single, token, resource_server)
        other = "HS256" if alg == "RS256" else "RS256"
        head = b64url_json({**header, "alg": other})
        assert not is_active(single, f"{head}.{token.split('.')[1]}.{signature}", resource_server)
        flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
        assert not is_active(single, f"{token.rsplit('.', 1)[0]}.{flipped}", resource_server)
        assert is_active(single, token, resource_server)


def test_never_active_without_the_revocations(build_dir, pg, keys, admin_token, app,
                                              resource_server, stack, make_client):
    """A worker that could not read the revocations table (PostgreSQL down
    when it started) cannot know whether a token was revoked: it answers
    503, never "active", and serves normally once the database is back."""
    token = new_token(stack, app)
    revoked = new_token(stack, app)
    assert revoke(stack, revoked, app).status == 200
    pg.stop()
    try:
        with segment_stack(build_dir, pg, keys, workers=1,
                           settings=settings(admin_token, issuer=stack.issuer,
                                             db_retry_interval_ms="200")) as cold:
            for candidate in (token, revoked):
                resp = introspect(cold, candidate, resource_server)
                assert resp.status == 503, resp
                assert resp.json()["error"] == "temporarily_unavailable"
                assert resp.headers.get("Retry-After")
            pg.start()
            wait_until(lambda: introspect(cold, token, resource_server).status == 200, SOON_S,
                       interval_s=0.2, message="introspection to work again")
            assert is_active(cold, token, resource_server)
            assert not is_active(cold, revoked, resource_server)
    finally:
        if not pg.running:
            pg.start()
    # The module's stack lost its database connections with the restart:
    # let every worker reconnect before the next test asks for new clients.
    # Each probe is a client no worker has cached, so authenticating it
    # takes a query (403 then: it may not introspect); a worker still
    # waiting out its retry pause answers 503.
    def reaches_database():
        return introspect(stack, "x", make_client("probe")).status == 403

    wait_until(lambda: all(reaches_database() for _ in range(8)), SOON_S, interval_s=0.2,
               message="the shared stack to reach PostgreSQL again")


def test_expired_revocations_are_purged_with_the_partitions(build_dir, pg, keys, admin_token,
                                                            migrated_db):
    """The flusher's partition maintenance (at start, then hourly) deletes
    revocations whose token expired over an hour ago, and keeps the rest."""
    old, recent, live = ("a" * 32, "b" * 32, "c" * 32)
    pg.psql("DELETE FROM revocations WHERE jti IN (%s, %s, %s)", (old, recent, live))
    pg.psql("INSERT INTO revocations (jti, client_id, expires_at) VALUES"
            " (%s, 'x', now() - interval '2 hours'), (%s, 'x', now() - interval '10 minutes'),"
            " (%s, 'x', now() + interval '1 hour')", (old, recent, live))
    with segment_stack(build_dir, pg, keys, workers=1, settings=settings(admin_token)):
        wait_until(lambda: pg.psql("SELECT 1 FROM revocations WHERE jti = %s", (old,)) == [],
                   SOON_S, message="the old revocation to be purged")
        kept = pg.psql("SELECT jti FROM revocations WHERE jti IN (%s, %s) ORDER BY jti",
                       (recent, live))
        assert [row[0] for row in kept] == [recent, live]


def test_client_ids_that_look_like_commands(stack, tokenctl, make_client, resource_server,
                                            admin_token):
    """Client ids may start with '*' like the notify channel's commands;
    their changes still reach every worker."""
    wait_for_listener(Admin(stack, admin_token[1]))
    star = make_client("*star")
    token = new_token(stack, star)
    assert is_active(stack, token, resource_server)
    assert tokenctl("client", "disable", star[0]).returncode == 0
    wait_until(lambda: not is_active(stack, token, resource_server), REVOCATION_PROPAGATION_S,
               message="the '*' client's change to reach the workers")


def test_a_deleted_and_re_added_client_does_not_revive_old_tokens(stack, tokenctl, make_client,
                                                                  resource_server, admin_token):
    wait_for_listener(Admin(stack, admin_token[1]))
    gone = make_client("gone")
    token = new_token(stack, gone)
    assert is_active(stack, token, resource_server)
    assert tokenctl("client", "delete", gone[0]).returncode == 0
    wait_until(lambda: not is_active(stack, token, resource_server), REVOCATION_PROPAGATION_S,
               message="the deleted client's token to turn inactive")
    time.sleep(1.1)  # the new client is created in a later second than the token
    result = tokenctl("client", "add", gone[0], "--scopes", "read write")
    assert result.returncode == 0, result.stderr
    again = (gone[0], result.stdout.strip())
    # Workers that cached the deleted id as unknown forget it when the
    # add's notice arrives (within moments), as for any client change.
    issued = wait_until(lambda: (lambda r: r if r.status == 200 else None)(stack.token(*again)),
                        REVOCATION_PROPAGATION_S, message="the re-added client to get a token")
    fresh = issued.json()["access_token"]
    assert is_active(stack, fresh, resource_server)
    assert not is_active(stack, token, resource_server)
