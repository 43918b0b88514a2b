"""tokend behind nginx (the shipped server block), with real processes.

What a client and an operator see: tokens issued with client_secret_basic
and client_secret_post through nginx to tokend started by its own master and
by spawn-fcgi, their JWT verified independently with python3-cryptography
against the published JWKS, the discovery documents, every RFC 6749 error
with its exact status and `error`, garbage that must never produce a 5xx,
and `tokend -t`.

Servers are module-scoped (one per signing algorithm and launch mode) and
share the session's PostgreSQL; each test uses clients of its own where it
changes them. Resilience (database outage, killed workers, SIGTERM,
keep-alive) is in test_resilience.py.
"""

import base64
import hashlib
import hmac
import json
import os
import random
import re
import string
import time
import urllib.parse

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from conftest import FORM, RUN_AS_ROOT, basic_header, run, running_stack

JTI_RE = re.compile(r"^[0-9a-f]{32}$")
JSON_TYPE = "application/json"


# ---------------------------------------------------------------------------
# JWT and JWK helpers, independent of the C code
# ---------------------------------------------------------------------------

def b64url_decode(text):
    assert re.fullmatch(r"[A-Za-z0-9_-]*", text), f"not unpadded base64url: {text!r}"
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_int(text):
    return int.from_bytes(b64url_decode(text), "big")


def b64url_encode(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def split_jwt(token):
    """(header, claims, signing_input bytes, signature bytes)."""
    parts = token.split(".")
    assert len(parts) == 3, f"a JWS compact serialization has 3 parts: {token!r}"
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    return header, claims, f"{parts[0]}.{parts[1]}".encode(), b64url_decode(parts[2])


def jwk_thumbprint(jwk):
    """RFC 7638: SHA-256 of the required members in lexicographic order."""
    if jwk["kty"] == "EC":
        members = {"crv": jwk["crv"], "kty": "EC", "x": jwk["x"], "y": jwk["y"]}
    else:
        members = {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url_encode(hashlib.sha256(canonical).digest())


def jwk_public_key(jwk):
    if jwk["kty"] == "EC":
        assert jwk["crv"] == "P-256"
        return ec.EllipticCurvePublicNumbers(b64url_int(jwk["x"]), b64url_int(jwk["y"]),
                                             ec.SECP256R1()).public_key()
    assert jwk["kty"] == "RSA"
    return rsa.RSAPublicNumbers(b64url_int(jwk["e"]), b64url_int(jwk["n"])).public_key()


def verify_signature(alg, signing_input, signature, jwk=None, hmac_key=None):
    """Raises InvalidSignature (or AssertionError) unless the signature is
    right."""
    if alg == "ES256":
        assert len(signature) == 64, "ES256 signatures are raw R||S, 64 bytes (RFC 7518 3.4)"
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                   int.from_bytes(signature[32:], "big"))
        jwk_public_key(jwk).verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    elif alg == "RS256":
        jwk_public_key(jwk).verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "HS256":
        expected = hmac.new(hmac_key, signing_input, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise InvalidSignature("HS256 MAC mismatch")
    else:
        raise AssertionError(f"unexpected alg {alg}")


def hmac_key_bytes(path):
    """The HS256 key: the file's bytes minus one trailing newline."""
    raw = path.read_bytes()
    return raw[:-1] if raw.endswith(b"\n") else raw


def fetch_jwks(stack):
    resp = stack.request("GET", "/.well-known/jwks.json")
    assert resp.status == 200, resp
    return resp.json()


def check_token_response(stack, resp, client_id, *, scope="read", aud=None, ttl=3600,
                         hmac_key=None):
    """Checks a successful token answer the way a client and a resource
    server would, the signature included; returns the claims."""
    assert resp.status == 200, resp
    assert resp.headers.get("Content-Type") == JSON_TYPE
    assert resp.headers.get("Cache-Control") == "no-store"
    assert resp.headers.get("Pragma") == "no-cache"
    body = resp.json()
    expected_keys = {"access_token", "token_type", "expires_in"} | ({"scope"} if scope else set())
    assert set(body) == expected_keys, body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == ttl
    if scope:
        assert body["scope"] == scope

    header, claims, signing_input, signature = split_jwt(body["access_token"])
    alg = stack.tokend.alg
    assert header["typ"] == "at+jwt"
    assert header["alg"] == alg
    assert isinstance(header["kid"], str) and header["kid"]

    if alg == "HS256":
        verify_signature(alg, signing_input, signature, hmac_key=hmac_key)
    else:
        jwks = fetch_jwks(stack)
        assert jwks["keys"][0]["kid"] == header["kid"], "the signing key is the JWKS's first"
        verify_signature(alg, signing_input, signature, jwk=jwks["keys"][0])
        # A tampered payload must not verify: the check above can fail.
        tampered = signing_input[:-2] + (b"A" if signing_input[-2:-1] != b"A" else b"B") + \
            signing_input[-1:]
        with pytest.raises(InvalidSignature):
            verify_signature(alg, tampered, signature, jwk=jwks["keys"][0])

    expected_claims = {"iss", "sub", "aud", "client_id", "iat", "exp", "jti"} | \
        ({"scope"} if scope else set())
    assert set(claims) == expected_claims, claims
    assert claims["iss"] == stack.issuer
    assert claims["sub"] == client_id
    assert claims["client_id"] == client_id
    assert claims["aud"] == (aud or stack.issuer)
    if scope:
        assert claims["scope"] == scope
    now = time.time()
    assert isinstance(claims["iat"], int) and abs(claims["iat"] - now) < 60
    assert claims["exp"] - claims["iat"] == ttl
    assert JTI_RE.match(claims["jti"]), claims["jti"]
    return claims


def assert_oauth_error(resp, status, error):
    """The RFC 6749 5.2 JSON error: exact status and `error`, a description."""
    assert resp.status == status, resp
    assert resp.headers.get("Content-Type") == JSON_TYPE, resp
    body = resp.json()
    assert body["error"] == error, body
    assert isinstance(body.get("error_description"), str) and body["error_description"], body
    return body


# ---------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def es256(build_dir, pg, keys, migrated_db):
    """tokend (own master, 2 workers, ES256) behind nginx."""
    with running_stack(build_dir, pg, keys, alg="ES256") as stack:
        yield stack


@pytest.fixture(scope="module")
def spawned(build_dir, pg, keys, migrated_db):
    """tokend started by spawn-fcgi (2 workers, ES256) behind nginx."""
    with running_stack(build_dir, pg, keys, alg="ES256", launcher="spawn-fcgi") as stack:
        yield stack


@pytest.fixture(scope="module")
def rs256(build_dir, pg, keys, migrated_db):
    with running_stack(build_dir, pg, keys, alg="RS256") as stack:
        yield stack


@pytest.fixture(scope="module")
def hs256(build_dir, pg, keys, migrated_db):
    with running_stack(build_dir, pg, keys, alg="HS256") as stack:
        yield stack


# ---------------------------------------------------------------------------
# issuing tokens
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("launch", ["es256", "spawned"])
@pytest.mark.parametrize("auth", ["basic", "post"])
def test_issue_es256_token(request, launch, auth, client):
    stack = request.getfixturevalue(launch)
    client_id, secret = client
    first = check_token_response(stack, stack.token(client_id, secret, auth=auth), client_id)
    # The second request is served from a worker's cache; same answer shape,
    # a fresh jti.
    second = check_token_response(stack, stack.token(client_id, secret, auth=auth), client_id)
    assert first["jti"] != second["jti"]


@pytest.mark.parametrize("auth", ["basic", "post"])
def test_issue_rs256_token(rs256, client, auth):
    client_id, secret = client
    check_token_response(rs256, rs256.token(client_id, secret, auth=auth), client_id)


@pytest.mark.parametrize("auth", ["basic", "post"])
def test_issue_hs256_token(hs256, keys, client, auth):
    client_id, secret = client
    key = hmac_key_bytes(keys["HS256"])
    check_token_response(hs256, hs256.token(client_id, secret, auth=auth), client_id,
                         hmac_key=key)
    # Signed with exactly the file's key, not e.g. with the trailing newline.
    resp = hs256.token(client_id, secret)
    _, _, signing_input, signature = split_jwt(resp.json()["access_token"])
    with pytest.raises(InvalidSignature):
        verify_signature("HS256", signing_input, signature, hmac_key=keys["HS256"].read_bytes())


def test_spawn_fcgi_uses_the_passed_socket(spawned):
    """Under spawn-fcgi the master takes the socket from fd 0, ignores
    `listen`, and still supervises its own workers."""
    assert not (spawned.tokend.base_dir / "ignored.sock").exists()
    assert "using the FastCGI socket inherited on fd 0" in spawned.tokend.log()
    assert len(spawned.tokend.worker_pids()) == 2


def test_own_master_runs_the_configured_workers(es256):
    assert len(es256.tokend.worker_pids()) == 2
    assert (f"started 2 workers and the flusher (pid {es256.tokend.pid} is the master)"
            in es256.tokend.log())
    assert os.stat(es256.tokend.socket_path).st_mode & 0o777 == 0o666


@pytest.mark.parametrize("requested, granted", [
    ("write", "write"),
    ("read write", "read write"),
    ("write read", "write read"),
    ("read read", "read"),
    ("  write  ", "write"),
    ("", "read"),  # a parameter without a value counts as omitted: the default
])
def test_requested_scopes(es256, client, requested, granted):
    client_id, secret = client
    resp = es256.token(client_id, secret, params={"scope": requested})
    check_token_response(es256, resp, client_id, scope=granted)


def test_client_without_default_scopes_gets_no_scope(es256, make_client):
    client_id, secret = make_client("nodefault", scopes="read", default_scopes=None)
    check_token_response(es256, es256.token(client_id, secret), client_id, scope=None)


def test_client_audiences_and_ttl(es256, make_client):
    client_id, secret = make_client("aud", audience="https://api.example.com https://b.example",
                                    ttl=120)
    check_token_response(es256, es256.token(client_id, secret), client_id,
                         aud="https://api.example.com", ttl=120)
    for name in ("resource", "audience"):
        resp = es256.token(client_id, secret, params={name: "https://b.example"})
        check_token_response(es256, resp, client_id, aud="https://b.example", ttl=120)
        resp = es256.token(client_id, secret, params={name: "https://evil.example"})
        assert_oauth_error(resp, 400, "invalid_target")
        # The issuer is not one of this client's audiences.
        resp = es256.token(client_id, secret, params={name: es256.issuer})
        assert_oauth_error(resp, 400, "invalid_target")


def test_default_audience_is_the_issuer(es256, client):
    client_id, secret = client
    resp = es256.token(client_id, secret, params={"resource": es256.issuer})
    check_token_response(es256, resp, client_id, aud=es256.issuer)


def test_client_id_with_reserved_characters_in_basic(es256, make_client):
    """RFC 6749 2.3.1: id and secret are form-urlencoded before base64; an id
    with ':', '+' and '%' must round-trip."""
    client_id, secret = make_client("odd:id+with%")
    check_token_response(es256, es256.token(client_id, secret), client_id)
    check_token_response(es256, es256.token(client_id, secret, auth="post"), client_id)


def test_client_id_needing_json_escapes(es256, make_client):
    """An id with '"' and '\\' (tokenctl allows any printable ASCII) must come
    back intact in the JSON claims."""
    client_id, secret = make_client('q"uo\\te')
    claims = check_token_response(es256, es256.token(client_id, secret), client_id)
    assert claims["sub"] == client_id


def test_scope_with_punctuation(es256, make_client):
    client_id, secret = make_client("punct", scopes="api:read files/write!", default_scopes=None)
    resp = es256.token(client_id, secret, params={"scope": "files/write! api:read"})
    check_token_response(es256, resp, client_id, scope="files/write! api:read")


def test_basic_scheme_is_case_insensitive(es256, client):
    client_id, secret = client
    value = basic_header(client_id, secret).split(" ", 1)[1]
    for scheme in ("basic", "BASIC", "bAsIc"):
        resp = es256.token(headers={"Authorization": f"{scheme} {value}"})
        check_token_response(es256, resp, client_id)


def test_chunked_request_body(es256, client):
    """HTTP/1.1 chunked uploads: nginx buffers them; tokend must see the
    whole body, and the 8 KiB limit still holds."""
    client_id, secret = client
    headers = {"Content-Type": FORM, "Authorization": basic_header(client_id, secret)}
    body = [b"grant_type=client_", b"credentials&scope=", b"write"]
    resp = es256.request("POST", "/oauth/token", iter(body), headers)
    check_token_response(es256, resp, client_id, scope="write")
    big = [b"grant_type=client_credentials&pad=", b"x" * 9000]
    resp = es256.request("POST", "/oauth/token", iter(big), headers)
    assert_oauth_error(resp, 413, "invalid_request")


def test_query_string_is_not_read(es256, client):
    """Parameters belong in the body; a query string neither authenticates
    nor counts as a second client authentication."""
    client_id, secret = client
    query = urllib.parse.urlencode({"client_id": client_id, "client_secret": secret,
                                    "grant_type": "client_credentials"})
    resp = es256.request("POST", f"/oauth/token?{query}", "", {"Content-Type": FORM})
    assert_oauth_error(resp, 400, "invalid_request")  # no grant_type in the body
    resp = es256.request("POST", f"/oauth/token?{query}", "grant_type=client_credentials",
                         {"Content-Type": FORM})
    assert_oauth_error(resp, 401, "invalid_client")
    resp = es256.request("POST", f"/oauth/token?{query}", "grant_type=client_credentials",
                         {"Content-Type": FORM, "Authorization": basic_header(client_id, secret)})
    check_token_response(es256, resp, client_id)


# ---------------------------------------------------------------------------
# discovery documents
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, alg", [("es256", "ES256"), ("rs256", "RS256"),
                                       ("hs256", "HS256")])
def test_metadata_document(request, name, alg):
    stack = request.getfixturevalue(name)
    resp = stack.request("GET", "/.well-known/oauth-authorization-server")
    assert resp.status == 200, resp
    assert resp.headers.get("Content-Type") == JSON_TYPE
    assert resp.headers.get("Cache-Control") == "public, max-age=300"
    assert resp.json() == {
        "issuer": stack.issuer,
        "token_endpoint": f"{stack.issuer}/oauth/token",
        "jwks_uri": f"{stack.issuer}/.well-known/jwks.json",
        "introspection_endpoint": f"{stack.issuer}/oauth/introspect",
        "revocation_endpoint": f"{stack.issuer}/oauth/revoke",
        "response_types_supported": [],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic",
                                                       "client_secret_post"],
        "access_token_signing_alg_values_supported": [alg],
    }


@pytest.mark.parametrize("name, alg", [("es256", "ES256"), ("rs256", "RS256")])
def test_jwks_publishes_the_signing_key(request, keys, client, name, alg):
    stack = request.getfixturevalue(name)
    resp = stack.request("GET", "/.well-known/jwks.json")
    assert resp.status == 200, resp
    assert resp.headers.get("Content-Type") == JSON_TYPE
    assert resp.headers.get("Cache-Control") == "public, max-age=300"
    jwks = resp.json()
    assert len(jwks["keys"]) == 1
    jwk = jwks["keys"][0]
    assert (jwk["alg"], jwk["use"]) == (alg, "sig")
    assert jwk["kid"] == jwk_thumbprint(jwk), "kid is the RFC 7638 thumbprint"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk), "no private members"
    # The published key is the public half of the configured key file.
    private = serialization.load_pem_private_key(keys[alg].read_bytes(), password=None)
    published = jwk_public_key(jwk).public_numbers()
    assert published == private.public_key().public_numbers()
    # And it is the key tokens name.
    client_id, secret = client
    header, _, _, _ = split_jwt(stack.token(client_id, secret).json()["access_token"])
    assert header["kid"] == jwk["kid"]


def test_jwks_during_a_key_rotation(build_dir, pg, keys, client):
    """verify_key_files: the old key is published after the signing key,
    tokens are signed with the new one, the metadata lists both algs."""
    settings = {"verify_key_files": str(keys["ES256"])}
    with running_stack(build_dir, pg, keys, alg="RS256", settings=settings) as stack:
        jwks = fetch_jwks(stack)
        assert [(k["kty"], k["alg"]) for k in jwks["keys"]] == [("RSA", "RS256"), ("EC", "ES256")]
        assert all(k["kid"] == jwk_thumbprint(k) for k in jwks["keys"])
        client_id, secret = client
        check_token_response(stack, stack.token(client_id, secret), client_id)
        metadata = stack.request("GET", "/.well-known/oauth-authorization-server").json()
        assert metadata["access_token_signing_alg_values_supported"] == ["RS256", "ES256"]


def test_jwks_never_publishes_an_hmac_key(hs256, client):
    assert fetch_jwks(hs256) == {"keys": []}


def test_head_jwks(es256):
    resp = es256.request("HEAD", "/.well-known/jwks.json")
    assert resp.status == 200, resp
    assert resp.body == b""
    assert resp.headers.get("Content-Type") == JSON_TYPE
    get = es256.request("GET", "/.well-known/jwks.json")
    assert int(resp.headers.get("Content-Length")) == len(get.body)


# ---------------------------------------------------------------------------
# errors through nginx
# ---------------------------------------------------------------------------

def raw_post(stack, body, headers):
    return stack.request("POST", "/oauth/token", body, headers)


def test_wrong_content_type(es256, client):
    client_id, secret = client
    for content_type in ("text/plain", "application/json", "multipart/form-data",
                         "application/x-www-form-urlencodedX"):
        resp = raw_post(es256, "grant_type=client_credentials",
                        {"Content-Type": content_type,
                         "Authorization": basic_header(client_id, secret)})
        assert_oauth_error(resp, 400, "invalid_request")
    # No content type at all.
    resp = raw_post(es256, "grant_type=client_credentials",
                    {"Authorization": basic_header(client_id, secret)})
    assert_oauth_error(resp, 400, "invalid_request")
    # Parameters and case are fine.
    resp = raw_post(es256, "grant_type=client_credentials",
                    {"Content-Type": "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
                     "Authorization": basic_header(client_id, secret)})
    assert resp.status == 200, resp


@pytest.mark.parametrize("body", [
    "grant_type=client_credentials&scope=%zz",
    "grant_type=client_credentials&scope=%4",
    "grant_type=client_credentials%",
    "grant_type=client_credentials&scope=read%00",
    "grant_type=client_credentials&=x",
])
def test_malformed_form(es256, client, body):
    client_id, secret = client
    resp = raw_post(es256, body, {"Content-Type": FORM,
                                  "Authorization": basic_header(client_id, secret)})
    assert_oauth_error(resp, 400, "invalid_request")


@pytest.mark.parametrize("body", [
    "grant_type=client_credentials&scope=read&scope=write",
    "grant_type=client_credentials&grant_type=client_credentials",
    "grant_type=client_credentials&resource=a&resource=b",
    "grant_type=client_credentials&resource=https://a.example&audience=https://a.example",
])
def test_repeated_or_conflicting_parameters(es256, client, body):
    client_id, secret = client
    resp = raw_post(es256, body, {"Content-Type": FORM,
                                  "Authorization": basic_header(client_id, secret)})
    assert_oauth_error(resp, 400, "invalid_request")


def test_repeated_client_id_in_body(es256, client):
    client_id, secret = client
    resp = es256.token(params=[("client_id", client_id), ("client_id", client_id),
                               ("client_secret", secret)])
    assert_oauth_error(resp, 400, "invalid_request")


def test_missing_grant_type(es256, client):
    client_id, secret = client
    resp = es256.token(client_id, secret, params={"grant_type": None, "scope": "read"})
    assert_oauth_error(resp, 400, "invalid_request")
    resp = raw_post(es256, "", {"Content-Type": FORM,
                                "Authorization": basic_header(client_id, secret)})
    assert_oauth_error(resp, 400, "invalid_request")
    # RFC 6749 3.1: a parameter without a value counts as omitted.
    resp = es256.token(client_id, secret, params={"grant_type": ""})
    assert_oauth_error(resp, 400, "invalid_request")


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "refresh_token",
                                        "client_credentials ", "CLIENT_CREDENTIALS"])
def test_unsupported_grant_type(es256, client, grant_type):
    client_id, secret = client
    resp = es256.token(client_id, secret, params={"grant_type": grant_type})
    assert_oauth_error(resp, 400, "unsupported_grant_type")


def test_basic_and_body_credentials_together(es256, client):
    client_id, secret = client
    resp = es256.token(client_id, secret, params={"client_secret": secret})
    assert_oauth_error(resp, 400, "invalid_request")
    # A body client_id that names another client than the header.
    resp = es256.token(client_id, secret, params={"client_id": "someone-else"})
    assert_oauth_error(resp, 400, "invalid_request")
    # The same client_id in both places is allowed.
    resp = es256.token(client_id, secret, params={"client_id": client_id})
    assert resp.status == 200, resp


def test_missing_credentials(es256, client):
    client_id, secret = client
    for params in ({}, {"client_id": client_id}, {"client_secret": secret}):
        resp = es256.token(params=params)
        assert_oauth_error(resp, 401, "invalid_client")
        assert resp.headers.get("WWW-Authenticate") is None, "no header was used"


def test_wrong_secret(es256, client):
    client_id, secret = client
    # Warm the cache with the right secret first: a wrong one must still fail.
    assert es256.token(client_id, secret).status == 200
    for wrong in ("x" + secret[1:], secret + "x", "", secret.upper()):
        resp = es256.token(client_id, wrong)
        assert_oauth_error(resp, 401, "invalid_client")
        assert resp.headers.get("WWW-Authenticate") == 'Basic realm="tokend"'
        resp = es256.token(client_id, wrong, auth="post")
        assert_oauth_error(resp, 401, "invalid_client")
        assert resp.headers.get("WWW-Authenticate") is None


def test_unknown_client(es256, client):
    _, secret = client
    for attempt in range(2):  # the second answer comes from the negative cache
        resp = es256.token("no-such-client", secret)
        assert_oauth_error(resp, 401, "invalid_client")
        assert resp.headers.get("WWW-Authenticate") == 'Basic realm="tokend"'
        resp = es256.token("no-such-client", secret, auth="post")
        assert_oauth_error(resp, 401, "invalid_client")
    resp = es256.token("x" * 300, secret)  # longer than any stored id
    assert_oauth_error(resp, 401, "invalid_client")


@pytest.mark.parametrize("auth", ["basic", "post"])
@pytest.mark.parametrize("raw_id", [b"\xff", b"a\xc3\x28b", b"caf\xe9"])
def test_client_id_that_is_not_utf8(es256, client, auth, raw_id):
    """An unknown client is an unknown client, whatever bytes its id has:
    401 invalid_client, not a 503 that tells it to retry (and not an error
    line in the log per request)."""
    _, secret = client
    if auth == "basic":
        credentials = urllib.parse.quote_from_bytes(raw_id).encode() + b":" + secret.encode()
        headers = {"Content-Type": FORM,
                   "Authorization": "Basic " + base64.b64encode(credentials).decode()}
        body = "grant_type=client_credentials"
    else:
        headers = {"Content-Type": FORM}
        body = "grant_type=client_credentials&client_id=" + \
            urllib.parse.quote_from_bytes(raw_id) + "&client_secret=" + secret
    resp = raw_post(es256, body, headers)
    assert_oauth_error(resp, 401, "invalid_client")


@pytest.mark.parametrize("authorization", [
    "Basic",
    "Basic ",
    "Basic !!!!",
    "Basic " + base64.b64encode(b"no-colon-here").decode(),
    "Basic " + base64.b64encode(b":secret-without-id").decode(),
    "Basic " + base64.b64encode(b"id:secre").decode().rstrip("="),  # padding missing
    "BasicaWQ6c2VjcmV0",
    "Bearer abc.def.ghi",
    "Digest username=\"x\"",
    "Basic " + base64.b64encode(b"id\x01:secret").decode(),
])
def test_malformed_authorization(es256, authorization):
    resp = raw_post(es256, "grant_type=client_credentials",
                    {"Content-Type": FORM, "Authorization": authorization})
    assert_oauth_error(resp, 401, "invalid_client")
    assert resp.headers.get("WWW-Authenticate") == 'Basic realm="tokend"'


def test_disabled_client(es256, tokenctl, make_client):
    # A fresh id no worker has seen, so no cache hides the change.
    client_id, secret = make_client("disabled")
    result = tokenctl("client", "disable", client_id)
    assert result.returncode == 0, result.stderr
    for auth in ("basic", "post"):
        assert_oauth_error(es256.token(client_id, secret, auth=auth), 400, "unauthorized_client")
    # The secret is checked first: a wrong one says nothing about the state.
    assert_oauth_error(es256.token(client_id, "wrong"), 401, "invalid_client")


def test_client_without_the_client_credentials_grant(es256, pg, make_client):
    client_id, secret = make_client("nogrant")
    pg.psql("UPDATE clients SET grant_types = '{authorization_code}' WHERE client_id = %s",
            (client_id,))
    assert_oauth_error(es256.token(client_id, secret), 400, "unauthorized_client")
    assert_oauth_error(es256.token(client_id, "wrong"), 401, "invalid_client")


def test_disabled_client_after_cache_ttl(build_dir, pg, keys, tokenctl, make_client):
    """A client in use, then disabled: refused once the workers' cache entry
    expires (cache_ttl = 1s), and served again after `enable`."""
    client_id, secret = make_client("ttl")
    with running_stack(build_dir, pg, keys, workers=1, settings={"cache_ttl": "1s"}) as stack:
        assert stack.token(client_id, secret).status == 200
        assert tokenctl("client", "disable", client_id).returncode == 0
        time.sleep(1.3)
        assert_oauth_error(stack.token(client_id, secret), 400, "unauthorized_client")
        assert tokenctl("client", "enable", client_id).returncode == 0
        time.sleep(1.3)
        assert stack.token(client_id, secret).status == 200


@pytest.mark.parametrize("scope", ["admin", "read admin", "rea", "read\twrite", "r\"x",
                                   "read\u00e9"])
def test_scope_not_allowed_or_malformed(es256, client, scope):
    client_id, secret = client
    assert_oauth_error(es256.token(client_id, secret, params={"scope": scope}), 400,
                       "invalid_scope")


def test_get_token_endpoint_is_405(es256):
    for method in ("GET", "PUT", "DELETE"):
        resp = es256.request(method, "/oauth/token")
        assert_oauth_error(resp, 405, "method_not_allowed")
        assert resp.headers.get("Allow") == "POST"
    resp = es256.request("POST", "/.well-known/jwks.json", "", {"Content-Type": FORM})
    assert_oauth_error(resp, 405, "method_not_allowed")
    assert resp.headers.get("Allow") == "GET, HEAD"


@pytest.mark.parametrize("path", ["/", "/oauth/token/", "/oauth/authorize", "/.well-known/",
                                  "/.well-known/openid-configuration", "/jwks.json"])
def test_unknown_path_is_json_404(es256, path):
    for method in ("GET", "POST"):
        resp = es256.request(method, path, "" if method == "POST" else None,
                             {"Content-Type": FORM} if method == "POST" else None)
        assert resp.status == 404, resp
        assert resp.headers.get("Content-Type") == JSON_TYPE
        assert resp.json() == {"error": "not_found", "error_description": "no such endpoint"}


def test_body_over_8k_is_json_413(es256, client):
    client_id, secret = client
    headers = {"Content-Type": FORM, "Authorization": basic_header(client_id, secret)}
    body = "grant_type=client_credentials&pad=" + "x" * (9000 - 34)
    assert len(body) == 9000
    resp = raw_post(es256, body, headers)
    assert_oauth_error(resp, 413, "invalid_request")
    # The limit is exactly 8192 bytes.
    base = "grant_type=client_credentials&pad="
    at_limit = base + "x" * (8192 - len(base))
    assert raw_post(es256, at_limit, headers).status == 200
    assert_oauth_error(raw_post(es256, at_limit + "x", headers), 413, "invalid_request")


def test_error_answers_are_not_cached(es256, client):
    client_id, _ = client
    resp = es256.token(client_id, "wrong")
    assert resp.status == 401
    assert resp.headers.get("Cache-Control") == "no-store"


# ---------------------------------------------------------------------------
# garbage must never produce a 5xx
# ---------------------------------------------------------------------------

ALLOWED_GARBAGE_STATUSES = {200, 400, 401, 413}


def garbage_requests(client_id, secret, count=200, seed=20261123):
    """(body bytes, headers) pairs: random bytes, mutated valid bodies, huge
    scopes, many parameters, encoded NULs and control bytes, odd
    Authorization headers. Header values stay printable so that nginx, not
    tokend, never has to reject them."""
    rng = random.Random(seed)
    valid = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "read write",
                                    "client_id": client_id, "client_secret": secret})
    printable = string.printable.replace("\r", "").replace("\n", "").replace("\x0b", "") \
        .replace("\x0c", "")

    def mutate(text):
        chars = list(text)
        for _ in range(rng.randint(1, 8)):
            op = rng.randrange(4)
            pos = rng.randrange(len(chars) + 1)
            if op == 0 and chars:
                del chars[min(pos, len(chars) - 1)]
            elif op == 1:
                chars.insert(pos, rng.choice("%&=+;\x00 \xff" + string.ascii_letters))
            elif op == 2:
                chars.insert(pos, "%" + rng.choice(["00", "0", "zz", "25", "3D", "26", "ff",
                                                    "C3%A9", "E2%80", ""]))
            elif chars:
                chars[min(pos, len(chars) - 1)] = chr(rng.randrange(256))
        return "".join(chars).encode("latin-1")

    def odd_authorization():
        kind = rng.randrange(8)
        if kind == 0:
            return basic_header(client_id, secret)
        if kind == 1:
            return "Basic " + base64.b64encode(bytes(rng.randrange(256) for _ in range(
                rng.randint(0, 80)))).decode()
        if kind == 2:
            return "Basic " + "".join(rng.choice(string.ascii_letters + "+/=")
                                      for _ in range(rng.randint(0, 200)))
        if kind == 3:
            raw = f"{client_id}%3A{rng.choice(['%00', '%0a', '%', '%zz', '+', '%C3'])}:{secret}"
            return "Basic " + base64.b64encode(raw.encode()).decode()
        if kind == 4:
            return rng.choice(["Basic", "basic", "BASIC", "Bearer", "", " ", "Basic  ",
                               "Negotiate abc", "Basic ====", "Basic a", "Basic\t"]) + \
                rng.choice(["", base64.b64encode(b"a:b").decode()])
        if kind == 5:
            return "".join(rng.choice(printable) for _ in range(rng.randint(1, 3000)))
        if kind == 6:
            return "Basic " + base64.b64encode(("x" * rng.randint(100, 2000) + ":" +
                                                secret).encode()).decode()
        return "".join(chr(rng.randrange(0x20, 0x100)) for _ in range(rng.randint(1, 200)))

    out = []
    for i in range(count):
        kind = i % 8
        headers = {"Content-Type": FORM}
        if kind == 0:
            body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 2000)))
        elif kind == 1:
            body = mutate(valid)
        elif kind == 2:
            scope = " ".join(rng.choice(["read", "write", "x" * rng.randint(1, 500)])
                             for _ in range(rng.randint(1, 40)))
            body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": scope,
                                           "client_id": client_id,
                                           "client_secret": secret}).encode()[:8000]
        elif kind == 3:
            n = rng.randint(20, 400)
            body = "&".join(f"p{j}={j}" for j in range(n)).encode() + b"&" + valid.encode()
            body = body[:8100]
        elif kind == 4:
            field = rng.choice(["grant_type", "scope", "client_id", "client_secret", "resource"])
            body = (valid + f"&{field}=a%00b").encode() if field != "grant_type" else \
                b"grant_type=client_credentials%00&" + valid.encode()
        elif kind == 5 and i % 16 == 5:
            body = b"grant_type=client_credentials&scope=read"
            headers["Authorization"] = odd_authorization()
        elif kind == 5:
            # a client id with arbitrary bytes (often not UTF-8)
            raw_id = bytes(rng.randrange(1, 256) for _ in range(rng.randint(1, 40)))
            body = b"grant_type=client_credentials&client_secret=x&client_id=" + \
                urllib.parse.quote_from_bytes(raw_id).encode()
        elif kind == 6:
            body = mutate(valid)
            headers["Content-Type"] = rng.choice([
                FORM, FORM + ";", FORM + "; charset=latin1", "application/x-www-form-urlencoded ,",
                "", "*/*", FORM.upper(), "text/html", FORM + "\t; q=1", "x" * 500])
        else:
            body = bytes(rng.randrange(256) for _ in range(rng.randint(8193, 12000)))
        out.append((body, headers))
    return out


def test_garbage_never_gets_a_server_error(es256, client):
    client_id, secret = client
    workers_before = es256.tokend.worker_pids()
    failures = []
    statuses = {}
    for body, headers in garbage_requests(client_id, secret):
        resp = raw_post(es256, body, headers)
        statuses[resp.status] = statuses.get(resp.status, 0) + 1
        try:
            parsed = resp.json()
            ok = resp.status in ALLOWED_GARBAGE_STATUSES and (
                "access_token" in parsed if resp.status == 200 else "error" in parsed)
        except ValueError:
            ok = False
        if not ok:
            failures.append((body[:200], headers, resp))
    bad_statuses = sorted({resp.status for _, _, resp in failures})
    assert not failures, \
        f"{len(failures)} bad answers (statuses {bad_statuses}), first ones: {failures[:3]}"
    # Each kind of answer was reached, so the inputs exercise every layer.
    assert {200, 400, 401, 413} <= set(statuses), statuses
    # No worker crashed and was quietly replaced.
    assert es256.tokend.worker_pids() == workers_before
    assert "killed by signal" not in es256.tokend.log()
    assert "exited with status" not in es256.tokend.log()


# ---------------------------------------------------------------------------
# tokend -t
# ---------------------------------------------------------------------------

def write_config(path, lines):
    root_lines = [f"{k} = {v}" for k, v in RUN_AS_ROOT.items()]
    path.write_text("\n".join(lines + root_lines) + "\n")
    return path


def tokend_t(build_dir, config):
    return run([build_dir / "tokend", "-t", "-c", config], check=False)


def test_config_test_valid(build_dir, keys, tmp_path, pg):
    conf = write_config(tmp_path / "tokend.conf", [
        "issuer = https://auth.example.com",
        f"database_url = {pg.url}",
        f"signing_key_file = {keys['ES256']}",
    ])
    result = tokend_t(build_dir, conf)
    assert result.returncode == 0, result.stderr
    assert f"configuration {conf} is valid" in result.stderr
    assert "ES256" in result.stderr
    assert result.stdout == ""


def test_config_test_unknown_key(build_dir, keys, tmp_path, pg):
    conf = write_config(tmp_path / "tokend.conf", [
        "# a comment",
        "issuer = https://auth.example.com",
        f"database_url = {pg.url}",
        "cache_tll = 5",
        f"signing_key_file = {keys['ES256']}",
    ])
    result = tokend_t(build_dir, conf)
    assert result.returncode == 1, result.stderr
    assert f"{conf}:4:" in result.stderr and "cache_tll" in result.stderr, result.stderr
    assert "valid" not in result.stderr


def test_config_test_repeated_key(build_dir, keys, tmp_path, pg):
    conf = write_config(tmp_path / "tokend.conf", [
        "issuer = https://auth.example.com",
        f"database_url = {pg.url}",
        f"signing_key_file = {keys['ES256']}",
        "workers = 2",
        "workers = 3",
    ])
    result = tokend_t(build_dir, conf)
    assert result.returncode == 1, result.stderr
    assert f"{conf}:5: key 'workers'" in result.stderr, result.stderr


@pytest.mark.parametrize("alg", ["ES256", "HS256"])
def test_config_test_key_file_readable_by_others(build_dir, keys, tmp_path, pg, alg):
    key = tmp_path / f"open-{alg}.key"
    key.write_bytes(keys[alg].read_bytes())
    os.chmod(key, 0o644)
    key_lines = [f"signing_key_file = {key}"] if alg == "ES256" else \
        ["signing_alg = HS256", f"hmac_key_file = {key}"]
    conf = write_config(tmp_path / "tokend.conf", [
        "issuer = https://auth.example.com", f"database_url = {pg.url}", *key_lines])
    result = tokend_t(build_dir, conf)
    assert result.returncode == 1, result.stderr
    assert str(key) in result.stderr, result.stderr
    assert "chmod 600" in result.stderr, result.stderr
    # The same key with mode 0600 passes.
    os.chmod(key, 0o600)
    assert tokend_t(build_dir, conf).returncode == 0


def test_start_fails_cleanly_on_a_bad_config(build_dir, tmp_path):
    """Not only -t: a start with a bad configuration exits 1 at once."""
    conf = write_config(tmp_path / "tokend.conf", ["issuer = https://auth.example.com"])
    result = run([build_dir / "tokend", "-c", conf], check=False, timeout=20)
    assert result.returncode == 1, result.stderr
    assert "database_url" in result.stderr, result.stderr
