/*
 * test_token_endpoint.c - the token endpoint and router as a handler: a
 * request struct in, a response struct out, no socket and no database.
 *
 * The client cache is filled by hand, and the database connection points at
 * a port nobody listens on, so a cache miss shows the 503 path. Issued
 * tokens are decoded and their claims checked; signature verification of
 * the JWS itself is covered by test_jwt_issuer.
 *
 * Introspection and revocation are driven the same way: tokens come from
 * the token endpoint (or are forged from one), the resource server "rs"
 * holds the scope tokend:introspect, and the wall clock is a variable the
 * tests move (the validation cache's own TTLs run on the monotonic clock,
 * so moving it past a token's exp tests the re-check on every hit, not the
 * cache's expiry). With the database down the worker has never read the
 * revocations table, so introspection answers 503 until a test sets
 * ctx.revocations_loaded; a revocation cannot be recorded (503). The worker
 * claims a stats slot in the test segment so each inactive answer can be
 * tied to its reason, which the answer itself never tells.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokend/base64.h"
#include "tokend/client_cache.h"
#include "tokend/config.h"
#include "tokend/db_conn.h"
#include "tokend/handler_context.h"
#include "tokend/instance_stats.h"
#include "tokend/introspect_endpoint.h"
#include "tokend/introspection_cache.h"
#include "tokend/jwt_issuer.h"
#include "tokend/key_set.h"
#include "tokend/revocation_set.h"
#include "tokend/revocation_view.h"
#include "tokend/router.h"
#include "tokend/secret_hash.h"
#include "tokend/shm_segment.h"
#include "tokend/status.h"

#include "unit_test.h"

static const char good_secret[] = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-x";

static struct tokend_config config;
static struct key_set keys;
static struct client_cache *cache;
static struct db_conn *db;
static struct handler_context ctx;
static struct arena arena;
static struct http_response resp;
static struct shm_segment segment;
static char segment_name[64];
static char workdir[] = "/tmp/tokend-test-endpoint-XXXXXX";

/* The wall clock of the handlers: START_S unless a test moves it (and
 * puts it back). */
#define START_S INT64_C(1700000000)
static int64_t clock_now_s = START_S;

static int64_t test_clock(void)
{
    return clock_now_s;
}

/* Caches `record` (with the hash of good_secret) as the database would. */
static void put_record(struct client_record record)
{
    char hash[SECRET_HASH_MAX_LEN];
    CHECK_INT(secret_hash_create(good_secret, SECRET_HASH_MIN_ITERATIONS, hash), TK_OK);
    record.secret_hash = hash;
    CHECK_INT(client_cache_put(cache, &record, NULL), TK_OK);
}

static void put_client(const char *id, const char *allowed, const char *defaults,
                       const char *audiences, int64_t ttl, bool enabled, bool grant)
{
    put_record((struct client_record){
        .client_id = id,
        .allowed_scopes = allowed,
        .default_scopes = defaults,
        .audiences = audiences,
        .token_ttl_s = ttl,
        .enabled = enabled,
        .client_credentials_allowed = grant,
    });
}

static void setup(void)
{
    CHECK(mkdtemp(workdir) != NULL);
    char key_path[256], error[CONFIG_ERROR_SIZE];
    snprintf(key_path, sizeof(key_path), "%s/es256.pem", workdir);
    CHECK_INT(signing_key_generate(JWS_ALG_ES256, key_path, error, sizeof(error)), TK_OK);
    CHECK_INT(config_init_defaults(&config), TK_OK);
    char text[1024];
    /* Port 1 on loopback: nothing listens, connections are refused at once. */
    snprintf(text, sizeof(text),
             "issuer = https://auth.example.com\n"
             "database_url = postgresql://nobody@127.0.0.1:1/none\n"
             "signing_key_file = %s\n"
             "token_ttl = 1h\n",
             key_path);
    CHECK_INT(config_load_text(&config, text, strlen(text), "test", error), TK_OK);
    CHECK_INT(config_check_server(&config, error), TK_OK);
    CHECK_INT(key_set_load(&keys, &config, error, sizeof(error)), TK_OK);
    struct client_cache_options options = {
        .max_entries = 100, .ttl_ms = 600000, .negative_ttl_ms = 30000};
    cache = client_cache_create(&options);
    db = db_conn_create(config.database_url, NULL, 500, 1000);
    CHECK(cache != NULL && db != NULL);
    snprintf(segment_name, sizeof(segment_name), "/tokend-unit-endpoint-%d", (int)getpid());
    CHECK_INT(shm_segment_open(&segment, segment_name, 16, SHM_SEGMENT_OWN, error, sizeof(error)),
              TK_OK);
    CHECK_INT(handler_context_init(&ctx, &config, &keys, cache, db, &segment.queue), TK_OK);
    ctx.now_s = test_clock;
    ctx.stats = stats_slot_claim(segment.stats, getpid(), STAT_ROLE_WORKER, 0);
    CHECK(ctx.stats != NULL);
    arena_init(&arena, 4096);
    http_response_init(&resp);
    put_client("svc", "read write admin", "read", "", 0, true, true);
    put_client("aud-client", "read", "", "https://api.one https://api.two", 120, true, true);
    put_client("off", "read", "read", "", 0, false, true);
    put_client("nogrant", "read", "read", "", 0, true, false);
    put_client("id:with+odd", "read", "read", "", 0, true, true);
    put_client("rs", "tokend:introspect", "", "", 0, true, false);
    put_client("rs-off", "tokend:introspect", "", "", 0, false, false);
    put_client("victim", "read", "read", "", 0, true, true);
}

static void teardown(void)
{
    handler_context_free(&ctx);
    http_response_free(&resp);
    arena_free(&arena);
    client_cache_destroy(cache);
    db_conn_destroy(db);
    key_set_free(&keys);
    config_free(&config);
    shm_segment_close(&segment);
    shm_segment_unlink(segment_name);
    char path[256];
    snprintf(path, sizeof(path), "%s/es256.pem", workdir);
    unlink(path);
    rmdir(workdir);
}

/* Sends a request through the router. `auth` is the raw Authorization
 * header or NULL; `body` NULL means no body. */
static void send_request(const char *method, const char *path, const char *content_type,
                         const char *auth, const char *body)
{
    arena_reset(&arena);
    http_response_reset(&resp);
    struct http_request req = {
        .method = method,
        .path = path,
        .query = "",
        .content_type = content_type,
        .authorization = auth,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
        .arena = &arena,
    };
    router_handle(&ctx, &req, &resp);
}

static void post_form(const char *auth, const char *body)
{
    send_request("POST", "/oauth/token", "application/x-www-form-urlencoded", auth, body);
}

static const char *basic(const char *id, const char *secret)
{
    static char header[512];
    char plain[256];
    snprintf(plain, sizeof(plain), "%s:%s", id, secret);
    strcpy(header, "Basic ");
    base64_encode((const uint8_t *)plain, strlen(plain), header + 6, sizeof(header) - 6);
    return header;
}

static bool has_header(const char *line)
{
    return resp.headers.data != NULL && strstr(resp.headers.data, line) != NULL;
}

/* The `error` member of the JSON body, or "" (static copy). */
static const char *error_code(void)
{
    static char code[64];
    code[0] = '\0';
    cJSON *json = cJSON_Parse(resp.body.data);
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(json, "error");
    if (cJSON_IsString(error)) {
        snprintf(code, sizeof(code), "%s", error->valuestring);
    }
    if (cJSON_GetObjectItemCaseSensitive(json, "error_description") == NULL) {
        snprintf(code, sizeof(code), "(no description)");
    }
    cJSON_Delete(json);
    return code;
}

static void expect_error(int status, const char *error)
{
    CHECK_INT(resp.status, status);
    CHECK_STR(error_code(), error);
    CHECK(has_header("Cache-Control: no-store\r\n"));
}

/* Decodes the claims of a compact JWS (the caller deletes them), or NULL. */
static cJSON *decode_claims(const char *token)
{
    const char *first = strchr(token, '.');
    const char *second = first != NULL ? strchr(first + 1, '.') : NULL;
    if (second == NULL) {
        return NULL;
    }
    uint8_t payload[2048];
    int len =
        base64url_decode(first + 1, (size_t)(second - first - 1), payload, sizeof(payload) - 1);
    if (len <= 0) {
        return NULL;
    }
    payload[len] = '\0';
    return cJSON_Parse((const char *)payload);
}

/* Decodes the access token's claims from the response body. */
static cJSON *token_claims(void)
{
    cJSON *json = cJSON_Parse(resp.body.data);
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(json, "access_token");
    cJSON *claims = cJSON_IsString(token) ? decode_claims(token->valuestring) : NULL;
    cJSON_Delete(json);
    return claims;
}

static const char *claim_string(const cJSON *claims, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static double claim_number(const cJSON *claims, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, name);
    return cJSON_IsNumber(item) ? item->valuedouble : -1;
}

/* Empties the token queue (as the flusher would) and returns how many
 * records it held; the last one is copied to *last when given. */
static size_t drain_queue(struct token_record *last)
{
    struct token_record records[16];
    uint64_t span = 0;
    size_t count = token_queue_peek(&segment.queue, records, 16, &span);
    token_queue_release(&segment.queue, span);
    if (count > 0 && last != NULL) {
        *last = records[count - 1];
    }
    return count;
}

static void test_basic_auth_success(void)
{
    drain_queue(NULL);
    post_form(basic("svc", good_secret), "grant_type=client_credentials");
    CHECK_INT(resp.status, 200);
    CHECK(has_header("Cache-Control: no-store\r\n"));
    CHECK(has_header("Pragma: no-cache\r\n"));
    cJSON *body = cJSON_Parse(resp.body.data);
    CHECK_STR(cJSON_GetObjectItem(body, "token_type")->valuestring, "Bearer");
    CHECK_INT(cJSON_GetObjectItem(body, "expires_in")->valueint, 3600);
    CHECK_STR(cJSON_GetObjectItem(body, "scope")->valuestring, "read");
    cJSON_Delete(body);
    cJSON *claims = token_claims();
    CHECK(claims != NULL);
    CHECK_STR(claim_string(claims, "iss"), "https://auth.example.com");
    CHECK_STR(claim_string(claims, "sub"), "svc");
    CHECK_STR(claim_string(claims, "client_id"), "svc");
    CHECK_STR(claim_string(claims, "aud"), "https://auth.example.com");
    CHECK_STR(claim_string(claims, "scope"), "read");
    CHECK(claim_number(claims, "iat") == 1700000000);
    CHECK(claim_number(claims, "exp") == 1700003600);
    const char *jti = claim_string(claims, "jti");
    CHECK(jti != NULL && strlen(jti) == 32);
    /* the token was recorded in the queue before the answer */
    struct token_record record;
    CHECK_INT(drain_queue(&record), 1);
    CHECK_STR(record.jti, jti);
    CHECK_STR(record.client_id, "svc");
    CHECK_STR(record.scope, "read");
    CHECK_STR(record.audience, "https://auth.example.com");
    CHECK_INT(record.issued_at_s, 1700000000);
    CHECK_INT(record.expires_at_s, 1700003600);
    CHECK_INT(record.worker_pid, getpid());
    cJSON_Delete(claims);
}

static void test_full_queue_answers_503_and_hands_out_nothing(void)
{
    drain_queue(NULL);
    for (int i = 0; i < 16; i++) {
        post_form(basic("svc", good_secret), "grant_type=client_credentials");
        CHECK_INT(resp.status, 200);
    }
    uint64_t before = ctx.token_stats.queue_full;
    post_form(basic("svc", good_secret), "grant_type=client_credentials");
    expect_error(503, "temporarily_unavailable");
    CHECK(has_header("Retry-After: 1\r\n"));
    CHECK(strstr(resp.body.data, "access_token") == NULL);
    CHECK_INT(ctx.token_stats.queue_full, before + 1);
    CHECK_INT(drain_queue(NULL), 16);
    post_form(basic("svc", good_secret), "grant_type=client_credentials");
    CHECK_INT(resp.status, 200);
    CHECK_INT(drain_queue(NULL), 1);
}

static void test_failed_requests_record_nothing(void)
{
    drain_queue(NULL);
    post_form(basic("svc", "wrong"), "grant_type=client_credentials");
    post_form(basic("svc", good_secret), "grant_type=client_credentials&scope=delete");
    post_form(basic("off", good_secret), "grant_type=client_credentials");
    CHECK_INT(drain_queue(NULL), 0);
}

static void test_post_auth_and_scopes(void)
{
    post_form(NULL, "grant_type=client_credentials&client_id=svc&client_secret=s3cr3t-s3cr3t-"
                    "s3cr3t-s3cr3t-s3cr3t-s3cr3t-x&scope=write+read+write");
    CHECK_INT(resp.status, 200);
    cJSON *claims = token_claims();
    CHECK_STR(claim_string(claims, "scope"), "write read");
    cJSON_Delete(claims);
    /* the verified secret is now remembered: a hit needs no PBKDF2 */
    struct client_cache_entry *entry = NULL;
    CHECK_INT(client_cache_lookup(cache, "svc", &entry), CLIENT_CACHE_HIT);
    CHECK(client_cache_secret_matches(cache, entry, good_secret));
    CHECK(!client_cache_secret_matches(cache, entry, "s3cr3t"));
}

static void test_form_encoded_basic_credentials(void)
{
    /* RFC 6749 §2.3.1: id and secret are form-encoded before base64. */
    char header[512], plain[256];
    snprintf(plain, sizeof(plain), "id%%3Awith%%2Bodd:%s", good_secret);
    strcpy(header, "Basic ");
    base64_encode((const uint8_t *)plain, strlen(plain), header + 6, sizeof(header) - 6);
    post_form(header, "grant_type=client_credentials");
    CHECK_INT(resp.status, 200);
    cJSON *claims = token_claims();
    CHECK_STR(claim_string(claims, "client_id"), "id:with+odd");
    cJSON_Delete(claims);
}

static void test_client_authentication_errors(void)
{
    uint64_t misses_before = client_cache_get_stats(cache)->misses;
    post_form(basic("svc", "wrong"), "grant_type=client_credentials");
    expect_error(401, "invalid_client");
    CHECK(has_header("WWW-Authenticate: Basic realm=\"tokend\"\r\n"));

    post_form("Basic !!!notbase64", "grant_type=client_credentials");
    expect_error(401, "invalid_client");
    CHECK(has_header("WWW-Authenticate: Basic"));

    post_form("Bearer abc", "grant_type=client_credentials");
    expect_error(401, "invalid_client");

    post_form(NULL, "grant_type=client_credentials");
    expect_error(401, "invalid_client");
    CHECK(!has_header("WWW-Authenticate"));

    post_form(NULL, "grant_type=client_credentials&client_id=svc");
    expect_error(401, "invalid_client");

    post_form(NULL, "grant_type=client_credentials&client_id=svc&client_secret=nope");
    expect_error(401, "invalid_client");
    CHECK(!has_header("WWW-Authenticate"));

    post_form(basic("svc", good_secret), "grant_type=client_credentials&client_secret=x");
    expect_error(400, "invalid_request");

    post_form(basic("svc", good_secret), "grant_type=client_credentials&client_id=other");
    expect_error(400, "invalid_request");

    post_form(basic("svc", good_secret), "grant_type=client_credentials&client_id=svc");
    CHECK_INT(resp.status, 200);

    post_form(NULL, "grant_type=client_credentials&client_id=svc&client_id=svc&client_secret=x");
    expect_error(400, "invalid_request");

    /* ids no client can have never reach the cache or the database (which
     * is down here: a lookup would answer 503) */
    post_form(NULL, "grant_type=client_credentials&client_id=%FF&client_secret=x");
    expect_error(401, "invalid_client");
    post_form(NULL, "grant_type=client_credentials&client_id=a+b&client_secret=x");
    expect_error(401, "invalid_client");
    post_form(basic("caf\xc3\xa9", good_secret), "grant_type=client_credentials");
    expect_error(401, "invalid_client");
    char long_id[200];
    memset(long_id, 'x', 129);
    long_id[129] = '\0';
    post_form(basic(long_id, good_secret), "grant_type=client_credentials");
    expect_error(401, "invalid_client");
    CHECK_INT(client_cache_get_stats(cache)->misses, misses_before);
}

static void test_request_shape_errors(void)
{
    send_request("POST", "/oauth/token", "application/json", basic("svc", good_secret),
                 "grant_type=client_credentials");
    expect_error(400, "invalid_request");
    send_request("POST", "/oauth/token", NULL, basic("svc", good_secret),
                 "grant_type=client_credentials");
    expect_error(400, "invalid_request");
    send_request("POST", "/oauth/token", "application/x-www-form-urlencoded; charset=UTF-8",
                 basic("svc", good_secret), "grant_type=client_credentials");
    CHECK_INT(resp.status, 200);

    post_form(basic("svc", good_secret), "grant_type=client_credentials&scope=%zz");
    expect_error(400, "invalid_request");
    post_form(basic("svc", good_secret), NULL);
    expect_error(400, "invalid_request");
    post_form(basic("svc", good_secret), "scope=read");
    expect_error(400, "invalid_request");
    post_form(basic("svc", good_secret),
              "grant_type=client_credentials&grant_type=client_credentials");
    expect_error(400, "invalid_request");
    post_form(basic("svc", good_secret), "grant_type=password");
    expect_error(400, "unsupported_grant_type");
    post_form(basic("svc", good_secret), "grant_type=client_credentials&scope=read&scope=write");
    expect_error(400, "invalid_request");

    arena_reset(&arena);
    http_response_reset(&resp);
    struct http_request big = {.method = "POST",
                               .path = "/oauth/token",
                               .query = "",
                               .content_type = "application/x-www-form-urlencoded",
                               .body_too_large = true,
                               .arena = &arena};
    router_handle(&ctx, &big, &resp);
    expect_error(413, "invalid_request");
}

static void test_client_permissions_and_scope(void)
{
    post_form(basic("off", good_secret), "grant_type=client_credentials");
    expect_error(400, "unauthorized_client");
    post_form(basic("off", "wrong"), "grant_type=client_credentials");
    expect_error(401, "invalid_client"); /* no hint about a disabled client without its secret */
    post_form(basic("nogrant", good_secret), "grant_type=client_credentials");
    expect_error(400, "unauthorized_client");
    post_form(basic("svc", good_secret), "grant_type=client_credentials&scope=read+delete");
    expect_error(400, "invalid_scope");
    post_form(basic("svc", good_secret), "grant_type=client_credentials&scope=re%22ad");
    expect_error(400, "invalid_scope");
}

static void test_audience(void)
{
    post_form(basic("aud-client", good_secret), "grant_type=client_credentials");
    CHECK_INT(resp.status, 200);
    cJSON *body = cJSON_Parse(resp.body.data);
    CHECK_INT(cJSON_GetObjectItem(body, "expires_in")->valueint, 120);
    CHECK(cJSON_GetObjectItem(body, "scope") == NULL); /* no scope requested, no default */
    cJSON_Delete(body);
    cJSON *claims = token_claims();
    CHECK_STR(claim_string(claims, "aud"), "https://api.one");
    CHECK(cJSON_GetObjectItem(claims, "scope") == NULL);
    CHECK(claim_number(claims, "exp") == 1700000120);
    cJSON_Delete(claims);

    post_form(basic("aud-client", good_secret),
              "grant_type=client_credentials&resource=https%3A%2F%2Fapi.two");
    CHECK_INT(resp.status, 200);
    claims = token_claims();
    CHECK_STR(claim_string(claims, "aud"), "https://api.two");
    cJSON_Delete(claims);

    post_form(basic("aud-client", good_secret),
              "grant_type=client_credentials&audience=https://evil");
    expect_error(400, "invalid_target");
    post_form(basic("aud-client", good_secret),
              "grant_type=client_credentials&audience=https://api.one&resource=https://api.one");
    expect_error(400, "invalid_request");
    post_form(basic("svc", good_secret), "grant_type=client_credentials&audience=https://other");
    expect_error(400, "invalid_target");
}

static void test_unknown_client_with_database_down(void)
{
    post_form(basic("unknown", good_secret), "grant_type=client_credentials");
    expect_error(503, "temporarily_unavailable");
    CHECK(has_header("Retry-After: 1\r\n"));
    /* a cached client is unaffected */
    post_form(basic("svc", good_secret), "grant_type=client_credentials");
    CHECK_INT(resp.status, 200);
    /* a negative entry answers without the database */
    CHECK_INT(client_cache_put_negative(cache, "ghost"), TK_OK);
    post_form(basic("ghost", good_secret), "grant_type=client_credentials");
    expect_error(401, "invalid_client");
}

static void test_router(void)
{
    send_request("GET", "/oauth/token", NULL, NULL, NULL);
    CHECK_INT(resp.status, 405);
    CHECK(has_header("Allow: POST\r\n"));
    send_request("GET", "/nope", NULL, NULL, NULL);
    CHECK_INT(resp.status, 404);
    CHECK_STR(error_code(), "not_found");
    send_request("POST", "/.well-known/jwks.json", NULL, NULL, NULL);
    CHECK_INT(resp.status, 405);
    CHECK(has_header("Allow: GET, HEAD\r\n"));
    send_request("GET", "/.well-known/jwks.json", NULL, NULL, NULL);
    CHECK_INT(resp.status, 200);
    cJSON *jwks = cJSON_Parse(resp.body.data);
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(jwks, "keys"), 0);
    CHECK_STR(cJSON_GetObjectItem(first, "kid")->valuestring, key_set_signing(&keys)->kid);
    cJSON_Delete(jwks);
    send_request("GET", "/.well-known/oauth-authorization-server", NULL, NULL, NULL);
    CHECK_INT(resp.status, 200);
    cJSON *meta = cJSON_Parse(resp.body.data);
    CHECK_STR(cJSON_GetObjectItem(meta, "issuer")->valuestring, "https://auth.example.com");
    CHECK_STR(cJSON_GetObjectItem(meta, "token_endpoint")->valuestring,
              "https://auth.example.com/oauth/token");
    CHECK_STR(cJSON_GetObjectItem(meta, "jwks_uri")->valuestring,
              "https://auth.example.com/.well-known/jwks.json");
    cJSON_Delete(meta);
}

static void test_issuer_path_prefix(void)
{
    /* With issuer https://auth.example.com/tenant-a the endpoints are
     * advertised under /tenant-a and answered there (and without it, for a
     * web server that strips the prefix). */
    const char *saved_prefix = ctx.path_prefix;
    size_t saved_len = ctx.path_prefix_len;
    ctx.path_prefix = "/tenant-a";
    ctx.path_prefix_len = strlen(ctx.path_prefix);
    send_request("GET", "/tenant-a/.well-known/jwks.json", NULL, NULL, NULL);
    CHECK_INT(resp.status, 200);
    send_request("GET", "/.well-known/jwks.json", NULL, NULL, NULL);
    CHECK_INT(resp.status, 200);
    send_request("GET", "/tenant-ab/.well-known/jwks.json", NULL, NULL, NULL);
    CHECK_INT(resp.status, 404);
    send_request("GET", "/tenant-a", NULL, NULL, NULL);
    CHECK_INT(resp.status, 404);
    ctx.path_prefix = saved_prefix;
    ctx.path_prefix_len = saved_len;
}

static void test_serialization(void)
{
    post_form(basic("svc", "wrong"), "grant_type=client_credentials");
    struct buffer out;
    buffer_init(&out);
    http_response_serialize(&resp, &out);
    CHECK(strncmp(out.data, "Status: 401 Unauthorized\r\nContent-Type: application/json\r\n", 58) ==
          0);
    const char *blank = strstr(out.data, "\r\n\r\n");
    CHECK(blank != NULL && strcmp(blank + 4, resp.body.data) == 0);
    buffer_free(&out);
}

/* --- POST /oauth/introspect and POST /oauth/revoke --- */

#define TOKEN_SIZE 2048
#define FORM_TYPE  "application/x-www-form-urlencoded"

/* Issues a token to `client` (extra form parameters in `params`, "" for
 * none) into `token`, and empties the queue so that tests never fill it. */
static void issue_token(const char *client, const char *params, char token[TOKEN_SIZE])
{
    char body[256];
    snprintf(body, sizeof(body), "grant_type=client_credentials%s", params);
    post_form(basic(client, good_secret), body);
    CHECK_INT(resp.status, 200);
    token[0] = '\0';
    cJSON *json = cJSON_Parse(resp.body.data);
    const cJSON *access = cJSON_GetObjectItemCaseSensitive(json, "access_token");
    if (cJSON_IsString(access)) {
        snprintf(token, TOKEN_SIZE, "%s", access->valuestring);
    }
    cJSON_Delete(json);
    CHECK(token[0] != '\0');
    drain_queue(NULL);
}

/* The string claim `name` of `token` into `out` ("" when absent). */
static void token_claim(const char *token, const char *name, char *out, size_t size)
{
    cJSON *claims = decode_claims(token);
    const char *value = claim_string(claims, name);
    snprintf(out, size, "%s", value != NULL ? value : "");
    cJSON_Delete(claims);
}

static int64_t token_exp(const char *token)
{
    cJSON *claims = decode_claims(token);
    int64_t exp = (int64_t)claim_number(claims, "exp");
    cJSON_Delete(claims);
    return exp;
}

/* POSTs `body` as a form to `path` as `client` (Basic, good secret; NULL:
 * no Authorization header). */
static void post_as(const char *path, const char *client, const char *body)
{
    send_request("POST", path, FORM_TYPE, client != NULL ? basic(client, good_secret) : NULL, body);
}

/* Introspects `token` as `client`. Tokens are base64url and dots, which
 * need no form encoding. */
static void introspect_as(const char *client, const char *token)
{
    char body[TOKEN_SIZE + 16];
    snprintf(body, sizeof(body), "token=%s", token);
    post_as("/oauth/introspect", client, body);
}

static void introspect(const char *token)
{
    introspect_as("rs", token);
}

static void revoke_as(const char *client, const char *token)
{
    char body[TOKEN_SIZE + 16];
    snprintf(body, sizeof(body), "token=%s", token);
    post_as("/oauth/revoke", client, body);
}

static uint64_t counted(enum stat_counter counter)
{
    return ctx.stats != NULL ? atomic_load(&ctx.stats->counters[counter]) : 0;
}

/* A copy of the validation cache's counters, taken before a request. */
static struct cache_stats icache(void)
{
    return *introspection_cache_get_stats(ctx.introspection);
}

/* True when the answer is exactly {"active":false}, not to be stored;
 * prints the answer otherwise. */
static bool answered_inactive(void)
{
    bool ok = resp.status == 200 && resp.body.data != NULL &&
              strcmp(resp.body.data, "{\"active\":false}") == 0 &&
              has_header("Cache-Control: no-store\r\n");
    if (!ok) {
        fprintf(stderr, "expected 200 {\"active\":false}, got %d %s\n", resp.status,
                resp.body.data != NULL ? resp.body.data : "");
    }
    return ok;
}

/* Introspects `token` as "rs": true when the answer is {"active":false}
 * and `reason` was counted for it. */
static bool inactive_because(const char *token, enum stat_counter reason)
{
    uint64_t before = counted(reason);
    introspect(token);
    bool ok = answered_inactive();
    if (counted(reason) != before + 1) {
        fprintf(stderr, "reason %s was not counted\n", stat_counter_name(reason));
        ok = false;
    }
    return ok;
}

/* True when the answer is 200 active, not to be stored, with
 * token_type Bearer and exactly the claims of `token`: every other member
 * is a claim of the token with the same value, and every claim is there.
 * Prints what differs otherwise. */
static bool answered_active(const char *token)
{
    bool ok = resp.status == 200 && has_header("Cache-Control: no-store\r\n");
    cJSON *answer = cJSON_Parse(resp.body.data);
    cJSON *claims = decode_claims(token);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(answer, "token_type");
    ok = ok && claims != NULL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "active")) &&
         cJSON_IsString(type) && strcmp(type->valuestring, "Bearer") == 0;
    const cJSON *member = NULL;
    cJSON_ArrayForEach(member, answer)
    {
        if (strcmp(member->string, "active") != 0 && strcmp(member->string, "token_type") != 0 &&
            !cJSON_Compare(member, cJSON_GetObjectItemCaseSensitive(claims, member->string),
                           true)) {
            fprintf(stderr, "answer member \"%s\" is not the token's\n", member->string);
            ok = false;
        }
    }
    cJSON_ArrayForEach(member, claims)
    {
        if (cJSON_GetObjectItemCaseSensitive(answer, member->string) == NULL) {
            fprintf(stderr, "claim \"%s\" missing from the answer\n", member->string);
            ok = false;
        }
    }
    if (!ok) {
        fprintf(stderr, "answer: %d %s\n", resp.status,
                resp.body.data != NULL ? resp.body.data : "");
    }
    cJSON_Delete(answer);
    cJSON_Delete(claims);
    return ok;
}

/* `token` with its header replaced by `header_json` and, when `signature`
 * is not NULL, its signature by that text. */
static void forge(const char *token, const char *header_json, const char *signature,
                  char out[TOKEN_SIZE])
{
    char header[512];
    CHECK(base64url_encode((const uint8_t *)header_json, strlen(header_json), header,
                           sizeof(header)) > 0);
    const char *payload = strchr(token, '.');
    const char *sig = payload != NULL ? strchr(payload + 1, '.') : NULL;
    CHECK(sig != NULL);
    if (sig == NULL) {
        out[0] = '\0';
        return;
    }
    if (signature == NULL) {
        snprintf(out, TOKEN_SIZE, "%s%s", header, payload);
    } else {
        snprintf(out, TOKEN_SIZE, "%s%.*s.%s", header, (int)(sig - payload), payload, signature);
    }
}

/* A token with these claims signed by our own signing key (for claims the
 * token endpoint never issues). */
static void sign_token(const char *iss, const char *sub, const char *client, int64_t iat,
                       char out[TOKEN_SIZE])
{
    char jti[JWT_JTI_SIZE];
    CHECK_INT(jwt_new_jti(jti), TK_OK);
    struct jwt_claims claims = {.iss = iss,
                                .sub = sub,
                                .aud = "https://auth.example.com",
                                .client_id = client,
                                .scope = "read",
                                .iat = iat,
                                .exp = iat + 3600,
                                .jti = jti};
    struct buffer jws;
    buffer_init(&jws);
    CHECK_INT(jwt_issuer_build(key_set_signing(&keys), "at+jwt", &claims, &jws), TK_OK);
    snprintf(out, TOKEN_SIZE, "%s", jws.data != NULL ? jws.data : "");
    buffer_free(&jws);
}

static void test_introspect_needs_the_revocations(void)
{
    /* The worker never read the revocations table (the database is down):
     * it cannot tell a revoked token from an active one, so it answers
     * 503, even for a token it could refuse on its face, and caches
     * nothing. */
    char token[TOKEN_SIZE];
    issue_token("svc", "", token);
    ctx.revocations_loaded = false;
    uint64_t unavailable = counted(STAT_INTROSPECT_UNAVAILABLE);
    struct cache_stats before = icache();
    introspect(token);
    expect_error(503, "temporarily_unavailable");
    CHECK(has_header("Retry-After: 1\r\n"));
    CHECK(strstr(resp.body.data, "active") == NULL);
    introspect("not-a-jwt");
    expect_error(503, "temporarily_unavailable");
    revoke_as("svc", token);
    expect_error(503, "temporarily_unavailable");
    /* Introspection answers are counted; the revocation is counted as one. */
    CHECK_INT(counted(STAT_INTROSPECT_UNAVAILABLE), unavailable + 2);
    CHECK_INT(icache().size, before.size);
    CHECK_INT(icache().negative_hits, before.negative_hits);

    ctx.revocations_loaded = true;
    introspect(token);
    CHECK(answered_active(token));
    /* Events may have been missed and the table cannot be read again: the
     * set may lack a revocation, so nothing is active, not even a cached
     * answer, until it is read. */
    ctx.revocations_stale = true;
    ctx.revocations_retry_ms = 0;
    char other[TOKEN_SIZE];
    issue_token("svc", "", other);
    introspect(other);
    expect_error(503, "temporarily_unavailable");
    introspect(token); /* cached */
    expect_error(503, "temporarily_unavailable");
    ctx.revocations_stale = false;
    introspect(token);
    CHECK(answered_active(token));
    introspect(other);
    CHECK(answered_active(other));
}

static void test_introspect_active_token(void)
{
    ctx.revocations_loaded = true;
    char token[TOKEN_SIZE];
    issue_token("svc", "&scope=read+write", token);
    uint64_t active = counted(STAT_INTROSPECT_ACTIVE);
    struct cache_stats before = icache();
    introspect(token);
    CHECK(answered_active(token));
    CHECK(has_header("Pragma: no-cache\r\n"));
    CHECK(strstr(resp.body.data, "\"scope\":\"read write\"") != NULL);
    CHECK(strstr(resp.body.data, "\"exp\":1700003600") != NULL);
    CHECK_INT(counted(STAT_INTROSPECT_ACTIVE), active + 1);
    CHECK_INT(icache().misses, before.misses + 1);
    CHECK_INT(icache().size, before.size + 1);

    /* The second time from the cache, with the same answer. */
    char first[1024];
    snprintf(first, sizeof(first), "%s", resp.body.data);
    introspect(token);
    CHECK(answered_active(token));
    CHECK_STR(resp.body.data, first);
    CHECK_INT(icache().hits, before.hits + 1);
    CHECK_INT(icache().misses, before.misses + 1);

    /* client_secret_post, and a token_type_hint (accepted, not trusted) */
    char body[TOKEN_SIZE + 128];
    snprintf(body, sizeof(body),
             "token=%s&token_type_hint=refresh_token&client_id=rs&"
             "client_secret=%s",
             token, good_secret);
    post_as("/oauth/introspect", NULL, body);
    CHECK(answered_active(token));

    /* A token with an audience of its own. */
    char aud_token[TOKEN_SIZE];
    issue_token("aud-client", "&scope=read&resource=https%3A%2F%2Fapi.two", aud_token);
    introspect(aud_token);
    CHECK(answered_active(aud_token));
    CHECK(strstr(resp.body.data, "\"aud\":\"https://api.two\"") != NULL);

    /* A token with no scope (none asked for, no default): no scope member,
     * like the token itself. */
    char unscoped[TOKEN_SIZE];
    issue_token("aud-client", "", unscoped);
    introspect(unscoped);
    CHECK(answered_active(unscoped));
    CHECK(strstr(resp.body.data, "\"scope\"") == NULL);

    /* A subject that is not the client (the verifier allows it; the
     * token endpoint issues none today): each is answered as it is. */
    char user_token[TOKEN_SIZE];
    sign_token("https://auth.example.com", "user-42", "svc", START_S, user_token);
    introspect(user_token);
    CHECK(answered_active(user_token));
    CHECK(strstr(resp.body.data, "\"sub\":\"user-42\"") != NULL);

    /* The caller's own token is no different. */
    char own[TOKEN_SIZE];
    put_client("rs2", "tokend:introspect read", "read", "", 0, true, true);
    issue_token("rs2", "", own);
    introspect_as("rs2", own);
    CHECK(answered_active(own));
}

static void test_introspect_forged_tokens(void)
{
    ctx.revocations_loaded = true;
    char token[TOKEN_SIZE], forged[TOKEN_SIZE], header[256], kid[SIGNING_KID_MAX + 1];
    issue_token("svc", "", token);
    snprintf(kid, sizeof(kid), "%s", key_set_signing(&keys)->kid);
    size_t len = strlen(token);
    const char *sig = strrchr(token, '.') + 1;

    /* one signature character changed (not the last, whose low bits are
     * padding) */
    snprintf(forged, sizeof(forged), "%s", token);
    forged[len - 10] = forged[len - 10] == 'A' ? 'B' : 'A';
    CHECK(inactive_because(forged, STAT_INTROSPECT_BAD_SIGNATURE));

    /* the signature cut short */
    snprintf(forged, sizeof(forged), "%.*s", (int)(len - 4), token);
    introspect(forged);
    CHECK(answered_inactive());

    /* no signature at all, and no signature segment */
    snprintf(forged, sizeof(forged), "%.*s", (int)(sig - token), token);
    introspect(forged);
    CHECK(answered_inactive());
    snprintf(forged, sizeof(forged), "%.*s", (int)(sig - token - 1), token);
    CHECK(inactive_because(forged, STAT_INTROSPECT_MALFORMED));

    /* not base64url */
    snprintf(forged, sizeof(forged), "%s", token);
    forged[3] = '*';
    CHECK(inactive_because(forged, STAT_INTROSPECT_MALFORMED));

    /* alg none with our kid and no signature; the key's alg with an
     * unknown kid; HS256 with the EC key's kid (its public key as an HMAC
     * secret) */
    snprintf(header, sizeof(header), "{\"alg\":\"none\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", kid);
    forge(token, header, "", forged);
    CHECK(inactive_because(forged, STAT_INTROSPECT_BAD_ALG));
    forge(token, "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"someone-else\"}", NULL, forged);
    CHECK(inactive_because(forged, STAT_INTROSPECT_UNKNOWN_KEY));
    snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", kid);
    forge(token, header, NULL, forged);
    CHECK(inactive_because(forged, STAT_INTROSPECT_BAD_ALG));

    /* a payload with more scope under the original signature */
    char payload[512], encoded[768];
    snprintf(payload, sizeof(payload),
             "{\"iss\":\"https://auth.example.com\",\"sub\":\"svc\",\"aud\":\"https://"
             "auth.example.com\",\"client_id\":\"svc\",\"scope\":\"read write admin\","
             "\"iat\":%lld,\"exp\":%lld,\"jti\":\"0123456789abcdef0123456789abcdef\"}",
             (long long)START_S, (long long)START_S + 3600);
    CHECK(base64url_encode((const uint8_t *)payload, strlen(payload), encoded, sizeof(encoded)) >
          0);
    const char *dot = strchr(token, '.');
    snprintf(forged, sizeof(forged), "%.*s.%s.%s", (int)(dot - token), token, encoded, sig);
    CHECK(inactive_because(forged, STAT_INTROSPECT_BAD_SIGNATURE));

    /* signed with our key, for another issuer */
    sign_token("https://evil.example.com", "svc", "svc", START_S, forged);
    CHECK(inactive_because(forged, STAT_INTROSPECT_WRONG_ISSUER));

    /* Each verdict is final and was cached: asked again, it is a negative
     * hit, and the same answer. */
    struct cache_stats before = icache();
    uint64_t cached = counted(STAT_INTROSPECT_CACHED_INACTIVE);
    introspect(forged);
    CHECK(answered_inactive());
    CHECK_INT(icache().negative_hits, before.negative_hits + 1);
    CHECK_INT(counted(STAT_INTROSPECT_CACHED_INACTIVE), cached + 1);
    snprintf(forged, sizeof(forged), "%s", token);
    forged[len - 10] = forged[len - 10] == 'A' ? 'B' : 'A';
    CHECK(inactive_because(forged, STAT_INTROSPECT_CACHED_INACTIVE));
    CHECK_INT(icache().negative_hits, before.negative_hits + 2);

    /* The original token was never disturbed. */
    introspect(token);
    CHECK(answered_active(token));
}

static void test_introspect_expiry(void)
{
    ctx.revocations_loaded = true;
    char cached[TOKEN_SIZE], fresh_before[TOKEN_SIZE], fresh_after[TOKEN_SIZE];
    issue_token("svc", "", cached);
    issue_token("svc", "", fresh_before);
    issue_token("svc", "", fresh_after);
    int64_t exp = token_exp(cached);
    CHECK_INT(exp, START_S + 3600);
    CHECK_INT(config.clock_skew_s, 30);
    introspect(cached);
    CHECK(answered_active(cached));

    /* One second inside exp + clock_skew: still active, from the cache and
     * when decided afresh. */
    clock_now_s = exp + 29;
    struct cache_stats before = icache();
    introspect(cached);
    CHECK(answered_active(cached));
    CHECK_INT(icache().hits, before.hits + 1);
    introspect(fresh_before);
    CHECK(answered_active(fresh_before));

    /* At exp + clock_skew: the cached answer is refused on its hit, and
     * turned into a negative one. */
    clock_now_s = exp + 30;
    before = icache();
    CHECK(inactive_because(cached, STAT_INTROSPECT_EXPIRED));
    CHECK_INT(icache().hits, before.hits + 1);
    CHECK(inactive_because(cached, STAT_INTROSPECT_CACHED_INACTIVE));
    CHECK_INT(icache().negative_hits, before.negative_hits + 1);
    CHECK(inactive_because(fresh_after, STAT_INTROSPECT_EXPIRED));
    CHECK(inactive_because(fresh_after, STAT_INTROSPECT_CACHED_INACTIVE));

    /* Revoking an expired token of one's own changes nothing: 200. */
    uint64_t inactive = counted(STAT_REVOKE_INACTIVE);
    revoke_as("svc", fresh_after);
    CHECK_INT(resp.status, 200);
    CHECK_STR(resp.body.data, "{}");
    CHECK_INT(counted(STAT_REVOKE_INACTIVE), inactive + 1);
    clock_now_s = START_S;
}

static void test_introspect_not_yet_valid(void)
{
    ctx.revocations_loaded = true;
    char token[TOKEN_SIZE];
    issue_token("svc", "", token);
    /* iat - clock_skew is one second in the future: inactive, and not
     * cached (the clock will catch up), so asking again decides again. */
    clock_now_s = START_S - 31;
    struct cache_stats before = icache();
    CHECK(inactive_because(token, STAT_INTROSPECT_NOT_YET_VALID));
    CHECK(inactive_because(token, STAT_INTROSPECT_NOT_YET_VALID));
    CHECK_INT(icache().size, before.size);
    CHECK_INT(icache().negative_hits, before.negative_hits);
    /* At iat - clock_skew, and later, it is active. */
    clock_now_s = START_S - 30;
    introspect(token);
    CHECK(answered_active(token));
    CHECK_INT(icache().misses, before.misses + 3);
    clock_now_s = START_S + 60;
    introspect(token);
    CHECK(answered_active(token));
    clock_now_s = START_S;
}

static void test_introspect_revoked_token(void)
{
    ctx.revocations_loaded = true;
    char token[TOKEN_SIZE], other[TOKEN_SIZE], jti[64];
    issue_token("svc", "", token);
    issue_token("svc", "", other);
    introspect(token);
    CHECK(answered_active(token));
    introspect(other);
    CHECK(answered_active(other));

    /* A revocation (as an ADMIN_EVENT_REVOKE applies it) drops the cached
     * answer; the token is decided again, revoked, and that is final. */
    token_claim(token, "jti", jti, sizeof(jti));
    struct cache_stats before = icache();
    revocation_view_add(&ctx, jti, token_exp(token));
    CHECK_INT(icache().size, before.size - 1);
    CHECK(inactive_because(token, STAT_INTROSPECT_REVOKED));
    CHECK(inactive_because(token, STAT_INTROSPECT_CACHED_INACTIVE));

    /* A jti in the revoked set is refused even when its answer is still
     * cached: the hit is re-checked against the set. */
    token_claim(other, "jti", jti, sizeof(jti));
    CHECK_INT(revocation_set_add(ctx.revoked, jti, 3600 * 1000), TK_OK);
    before = icache();
    CHECK(inactive_because(other, STAT_INTROSPECT_REVOKED));
    CHECK_INT(icache().hits, before.hits + 1);

    /* The owner revoking it again changes nothing: 200. */
    revoke_as("svc", other);
    CHECK_INT(resp.status, 200);
    CHECK_STR(resp.body.data, "{}");
}

static void test_introspect_client_disabled(void)
{
    ctx.revocations_loaded = true;
    char cached[TOKEN_SIZE], fresh[TOKEN_SIZE];
    issue_token("victim", "", cached);
    issue_token("victim", "", fresh);
    introspect(cached);
    CHECK(answered_active(cached));

    /* Disabled: a token not cached is inactive, and not cached (an
     * operator may enable the client again). */
    put_client("victim", "read", "read", "", 0, false, true);
    struct cache_stats before = icache();
    CHECK(inactive_because(fresh, STAT_INTROSPECT_CLIENT_GONE));
    CHECK(inactive_because(fresh, STAT_INTROSPECT_CLIENT_GONE));
    CHECK_INT(icache().size, before.size);
    /* The cached answer goes when the change reaches the worker (an
     * ADMIN_EVENT_INVALIDATE drops the client's answers). */
    CHECK_INT(introspection_cache_remove_client(ctx.introspection, "victim"), 1);
    CHECK(inactive_because(cached, STAT_INTROSPECT_CLIENT_GONE));

    /* A client the cache knows to be gone. */
    char ghost[TOKEN_SIZE];
    CHECK_INT(client_cache_put_negative(cache, "ghost"), TK_OK);
    sign_token("https://auth.example.com", "ghost", "ghost", START_S, ghost);
    CHECK(inactive_because(ghost, STAT_INTROSPECT_CLIENT_GONE));
    /* One the cache does not know: the database is needed, and down. */
    char unknown[TOKEN_SIZE];
    sign_token("https://auth.example.com", "nobody-cached", "nobody-cached", START_S, unknown);
    before = icache();
    uint64_t unavailable = counted(STAT_INTROSPECT_UNAVAILABLE);
    introspect(unknown);
    expect_error(503, "temporarily_unavailable");
    CHECK_INT(counted(STAT_INTROSPECT_UNAVAILABLE), unavailable + 1);
    CHECK_INT(icache().size, before.size);

    /* Enabled again: its tokens are back while they last. */
    put_client("victim", "read", "read", "", 0, true, true);
    introspect(cached);
    CHECK(answered_active(cached));
    introspect(fresh);
    CHECK(answered_active(fresh));
}

static void test_introspect_client_revoke_all(void)
{
    ctx.revocations_loaded = true;
    char cached[TOKEN_SIZE], fresh[TOKEN_SIZE], later[TOKEN_SIZE];
    issue_token("victim", "", cached);
    issue_token("victim", "", fresh);
    introspect(cached);
    CHECK(answered_active(cached));

    /* revoke-all in the second after START_S: every token issued up to
     * then (iat < tokens_not_before_s) is revoked, for good. */
    put_record((struct client_record){.client_id = "victim",
                                      .allowed_scopes = "read",
                                      .default_scopes = "read",
                                      .audiences = "",
                                      .tokens_not_before_s = START_S + 1,
                                      .enabled = true,
                                      .client_credentials_allowed = true});
    CHECK(introspection_cache_remove_client(ctx.introspection, "victim") >= 1);
    CHECK(inactive_because(cached, STAT_INTROSPECT_CLIENT_REVOKED));
    CHECK(inactive_because(fresh, STAT_INTROSPECT_CLIENT_REVOKED));
    CHECK(inactive_because(fresh, STAT_INTROSPECT_CACHED_INACTIVE));

    /* A token issued from tokens_not_before_s on is active. */
    clock_now_s = START_S + 1;
    issue_token("victim", "", later);
    introspect(later);
    CHECK(answered_active(later));
    clock_now_s = START_S;
    put_client("victim", "read", "read", "", 0, true, true);
}

static void test_introspect_request_errors(void)
{
    ctx.revocations_loaded = true;
    char token[TOKEN_SIZE], body[2 * TOKEN_SIZE + 64];
    issue_token("svc", "", token);
    uint64_t refused = counted(STAT_INTROSPECT_REFUSED);
    struct cache_stats before = icache();

    /* a client without tokend:introspect (even one allowed "read write
     * admin") */
    introspect_as("svc", token);
    expect_error(403, "unauthorized_client");
    CHECK(strstr(resp.body.data, "active") == NULL);
    /* a disabled client, and a wrong secret for it */
    introspect_as("rs-off", token);
    expect_error(400, "unauthorized_client");
    snprintf(body, sizeof(body), "token=%s", token);
    send_request("POST", "/oauth/introspect", FORM_TYPE, basic("rs", "wrong"), body);
    expect_error(401, "invalid_client");
    CHECK(has_header("WWW-Authenticate: Basic realm=\"tokend\"\r\n"));
    /* no credentials */
    introspect_as(NULL, token);
    expect_error(401, "invalid_client");
    /* an unknown client, with the database down */
    introspect_as("stranger", token);
    expect_error(503, "temporarily_unavailable");

    /* missing (an empty value is an omitted parameter, RFC 6749 §3.1),
     * repeated */
    post_as("/oauth/introspect", "rs", "");
    expect_error(400, "invalid_request");
    post_as("/oauth/introspect", "rs", "token=");
    expect_error(400, "invalid_request");
    post_as("/oauth/introspect", "rs", "token_type_hint=access_token");
    expect_error(400, "invalid_request");
    snprintf(body, sizeof(body), "token=%s&token=%s", token, token);
    post_as("/oauth/introspect", "rs", body);
    expect_error(400, "invalid_request");
    snprintf(body, sizeof(body), "token=%s&token_type_hint=a&token_type_hint=b", token);
    post_as("/oauth/introspect", "rs", body);
    expect_error(400, "invalid_request");
    post_as("/oauth/introspect", "rs", "token=%zz");
    expect_error(400, "invalid_request");

    /* not a form */
    snprintf(body, sizeof(body), "token=%s", token);
    send_request("POST", "/oauth/introspect", "application/json", basic("rs", good_secret), body);
    expect_error(400, "invalid_request");
    send_request("POST", "/oauth/introspect", NULL, basic("rs", good_secret), body);
    expect_error(400, "invalid_request");

    arena_reset(&arena);
    http_response_reset(&resp);
    struct http_request big = {.method = "POST",
                               .path = "/oauth/introspect",
                               .query = "",
                               .content_type = FORM_TYPE,
                               .authorization = basic("rs", good_secret),
                               .body_too_large = true,
                               .arena = &arena};
    router_handle(&ctx, &big, &resp);
    expect_error(413, "invalid_request");

    send_request("GET", "/oauth/introspect", NULL, basic("rs", good_secret), NULL);
    CHECK_INT(resp.status, 405);
    CHECK(has_header("Allow: POST\r\n"));

    /* None of these looked at the token. */
    CHECK_INT(counted(STAT_INTROSPECT_REFUSED), refused + 14);
    CHECK_INT(icache().misses, before.misses);
    CHECK_INT(icache().size, before.size);
}

static void test_revoke(void)
{
    ctx.revocations_loaded = true;
    char token[TOKEN_SIZE], jti[64];
    issue_token("svc", "", token);
    token_claim(token, "jti", jti, sizeof(jti));

    /* Another client's token: 200 {}, and nothing changed. */
    uint64_t not_owner = counted(STAT_REVOKE_NOT_OWNER);
    revoke_as("victim", token);
    CHECK_INT(resp.status, 200);
    CHECK_STR(resp.body.data, "{}");
    CHECK(has_header("Cache-Control: no-store\r\n"));
    CHECK_INT(counted(STAT_REVOKE_NOT_OWNER), not_owner + 1);
    CHECK(!revocation_set_contains(ctx.revoked, jti));
    introspect(token);
    CHECK(answered_active(token));

    /* A token not valid yet here (issued by a host whose clock is ahead):
     * another client's is not revoked; the owner's is (here the database
     * cannot record it: 503, where an inactive token would get 200). */
    char future[TOKEN_SIZE];
    sign_token("https://auth.example.com", "svc", "svc", clock_now_s + 600, future);
    introspect(future);
    CHECK(answered_inactive());
    revoke_as("victim", future);
    CHECK_INT(resp.status, 200);
    CHECK_INT(counted(STAT_REVOKE_NOT_OWNER), not_owner + 2);
    revoke_as("svc", future);
    expect_error(503, "temporarily_unavailable");

    /* An invalid token: 200 {}. */
    uint64_t inactive = counted(STAT_REVOKE_INACTIVE);
    revoke_as("svc", "not-a-token");
    CHECK_INT(resp.status, 200);
    CHECK_STR(resp.body.data, "{}");
    CHECK_INT(counted(STAT_REVOKE_INACTIVE), inactive + 1);

    /* The caller's own active token: the database cannot record it, so
     * 503 and the token stays active (here and in the revoked set). */
    uint64_t unavailable = counted(STAT_REVOKE_UNAVAILABLE);
    uint64_t revoked = counted(STAT_REVOKE_REVOKED);
    revoke_as("svc", token);
    expect_error(503, "temporarily_unavailable");
    CHECK(has_header("Retry-After: 1\r\n"));
    CHECK_INT(counted(STAT_REVOKE_UNAVAILABLE), unavailable + 1);
    CHECK_INT(counted(STAT_REVOKE_REVOKED), revoked);
    CHECK(!revocation_set_contains(ctx.revoked, jti));
    introspect(token);
    CHECK(answered_active(token));

    /* Refused requests. */
    uint64_t refused = counted(STAT_REVOKE_REFUSED);
    revoke_as(NULL, token);
    expect_error(401, "invalid_client");
    post_as("/oauth/revoke", "svc", "token_type_hint=access_token");
    expect_error(400, "invalid_request");
    revoke_as("off", token);
    expect_error(400, "unauthorized_client");
    char body[TOKEN_SIZE + 16];
    snprintf(body, sizeof(body), "token=%s", token);
    send_request("POST", "/oauth/revoke", "text/plain", basic("svc", good_secret), body);
    expect_error(400, "invalid_request");
    CHECK_INT(counted(STAT_REVOKE_REFUSED), refused + 4);

    send_request("GET", "/oauth/revoke", NULL, basic("svc", good_secret), NULL);
    CHECK_INT(resp.status, 405);
    CHECK(has_header("Allow: POST\r\n"));
    introspect(token);
    CHECK(answered_active(token));
}

int main(void)
{
    setup();
    RUN(test_basic_auth_success);
    RUN(test_full_queue_answers_503_and_hands_out_nothing);
    RUN(test_failed_requests_record_nothing);
    RUN(test_post_auth_and_scopes);
    RUN(test_form_encoded_basic_credentials);
    RUN(test_client_authentication_errors);
    RUN(test_request_shape_errors);
    RUN(test_client_permissions_and_scope);
    RUN(test_audience);
    RUN(test_unknown_client_with_database_down);
    RUN(test_router);
    RUN(test_issuer_path_prefix);
    RUN(test_serialization);
    RUN(test_introspect_needs_the_revocations);
    RUN(test_introspect_active_token);
    RUN(test_introspect_forged_tokens);
    RUN(test_introspect_expiry);
    RUN(test_introspect_not_yet_valid);
    RUN(test_introspect_revoked_token);
    RUN(test_introspect_client_disabled);
    RUN(test_introspect_client_revoke_all);
    RUN(test_introspect_request_errors);
    RUN(test_revoke);
    teardown();
    return unit_test_finish();
}
