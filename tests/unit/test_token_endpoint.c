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
    teardown();
    return unit_test_finish();
}
