/*
 * test_introspection_cache.c - the introspection cache's key helper against
 * SHA-256 test vectors, and its counting, TTL and token-expiry boundaries,
 * LRU order, replacement, copy semantics, revocation by jti, clear, sweep and
 * behaviour with many entries, under a clock the tests move by hand.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokend/introspection_cache.h"
#include "tokend/status.h"
#include "unit_test.h"

#include "cache_stats_check.h"

static int64_t test_now_ms;

static int64_t test_clock(void *context)
{
    (void)context;
    return test_now_ms;
}

static struct introspection_cache *new_cache(size_t max_entries, int64_t ttl_ms,
                                             int64_t negative_ttl_ms)
{
    struct introspection_cache_options options = {
        .max_entries = max_entries,
        .ttl_ms = ttl_ms,
        .negative_ttl_ms = negative_ttl_ms,
        .clock = test_clock,
    };
    return introspection_cache_create(&options);
}

struct test_key {
    uint8_t bytes[INTROSPECTION_CACHE_KEY_SIZE];
};

static struct test_key key_for(const char *token)
{
    struct test_key key;
    CHECK_INT(introspection_cache_key(token, strlen(token), key.bytes), TK_OK);
    return key;
}

static struct introspection_entry_data make_data(const char *jti, const char *sub)
{
    struct introspection_entry_data data = {.active = true, .iat = 1700000000, .exp = 1700000300};
    snprintf(data.jti, sizeof(data.jti), "%s", jti);
    snprintf(data.client_id, sizeof(data.client_id), "client-a");
    snprintf(data.sub, sizeof(data.sub), "%s", sub);
    snprintf(data.scope, sizeof(data.scope), "read write");
    snprintf(data.aud, sizeof(data.aud), "https://api.example");
    return data;
}

/* Puts a token whose jti is `jti`, living longer than any TTL used here. */
static int put_token(struct introspection_cache *cache, const char *token, const char *jti)
{
    struct test_key key = key_for(token);
    struct introspection_entry_data data = make_data(jti, token);
    return introspection_cache_put(cache, key.bytes, &data, INT64_C(1) << 40);
}

static enum introspection_cache_result lookup_token(struct introspection_cache *cache,
                                                    const char *token,
                                                    struct introspection_entry_data *out)
{
    struct test_key key = key_for(token);
    return introspection_cache_lookup(cache, key.bytes, out);
}

static void check_stats(const struct introspection_cache *cache, uint64_t hits, uint64_t misses,
                        uint64_t negative_hits, uint64_t evictions, uint64_t expirations,
                        uint64_t size)
{
    check_cache_stats(introspection_cache_get_stats(cache), hits, misses, negative_hits, evictions,
                      expirations, size);
}

static void hex(const uint8_t *bytes, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    }
}

/* ---- key helper ---- */

static void test_key_is_sha256(void)
{
    /* FIPS 180-2 / NIST example vectors. */
    static const struct {
        const char *message;
        const char *hex;
    } vectors[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        uint8_t key[INTROSPECTION_CACHE_KEY_SIZE];
        char text[2 * INTROSPECTION_CACHE_KEY_SIZE + 1];
        CHECK_INT(introspection_cache_key(vectors[i].message, strlen(vectors[i].message), key),
                  TK_OK);
        hex(key, sizeof(key), text);
        CHECK_STR(text, vectors[i].hex);
    }

    /* The length counts, not a terminator: "abc" hashed as 2 bytes is "ab". */
    uint8_t ab[INTROSPECTION_CACHE_KEY_SIZE], abc_prefix[INTROSPECTION_CACHE_KEY_SIZE];
    CHECK_INT(introspection_cache_key("ab", 2, ab), TK_OK);
    CHECK_INT(introspection_cache_key("abc", 2, abc_prefix), TK_OK);
    CHECK(memcmp(ab, abc_prefix, sizeof(ab)) == 0);

    /* NULL with a length is refused, and the key is zeroed. */
    uint8_t refused[INTROSPECTION_CACHE_KEY_SIZE];
    memset(refused, 0xaa, sizeof(refused));
    CHECK_INT(introspection_cache_key(NULL, 5, refused), TK_ERROR);
    static const uint8_t zero[INTROSPECTION_CACHE_KEY_SIZE];
    CHECK(memcmp(refused, zero, sizeof(zero)) == 0);
}

/* ---- creation ---- */

static void test_invalid_options(void)
{
    CHECK(introspection_cache_create(NULL) == NULL);
    CHECK(new_cache(0, 1000, 1000) == NULL);
    CHECK(new_cache(1, 0, 1000) == NULL);
    CHECK(new_cache(1, -5, 1000) == NULL);
    CHECK(new_cache(1, 1000, 0) == NULL);
    CHECK(new_cache(1, 1000, -1) == NULL);
    CHECK(new_cache(SIZE_MAX, 1000, 1000) == NULL);
    introspection_cache_destroy(NULL); /* allowed */
}

static void test_default_clock(void)
{
    struct introspection_cache_options options = {
        .max_entries = 4, .ttl_ms = 60000, .negative_ttl_ms = 60000};
    struct introspection_cache *cache = introspection_cache_create(&options);
    CHECK(cache != NULL);
    if (cache == NULL) {
        return;
    }
    CHECK_INT(put_token(cache, "tok", "j1"), TK_OK);
    CHECK_INT(lookup_token(cache, "tok", NULL), INTROSPECTION_CACHE_HIT);
    introspection_cache_destroy(cache);
}

/* ---- lookup and counting ---- */

static void test_hit_miss_negative_counting(void)
{
    test_now_ms = 1000;
    struct introspection_cache *cache = new_cache(8, 10000, 10000);
    check_stats(cache, 0, 0, 0, 0, 0, 0);

    struct introspection_entry_data out;
    CHECK_INT(lookup_token(cache, "a", &out), INTROSPECTION_CACHE_MISS);
    check_stats(cache, 0, 1, 0, 0, 0, 0);

    CHECK_INT(put_token(cache, "a", "jti-a"), TK_OK);
    check_stats(cache, 0, 1, 0, 0, 0, 1);
    CHECK_INT(lookup_token(cache, "a", &out), INTROSPECTION_CACHE_HIT);
    CHECK(out.active);
    CHECK_STR(out.jti, "jti-a");
    CHECK_STR(out.client_id, "client-a");
    CHECK_STR(out.sub, "a");
    CHECK_STR(out.scope, "read write");
    CHECK_STR(out.aud, "https://api.example");
    CHECK_INT(out.iat, 1700000000);
    CHECK_INT(out.exp, 1700000300);
    check_stats(cache, 1, 1, 0, 0, 0, 1);

    struct test_key b = key_for("b");
    CHECK_INT(introspection_cache_put_negative(cache, b.bytes), TK_OK);
    check_stats(cache, 1, 1, 0, 0, 0, 2);
    memset(&out, 0x5a, sizeof(out));
    CHECK_INT(introspection_cache_lookup(cache, b.bytes, &out), INTROSPECTION_CACHE_NEGATIVE);
    CHECK(!out.active);
    CHECK_STR(out.jti, "");
    check_stats(cache, 1, 1, 1, 0, 0, 2);

    /* A miss zeroes *out too, and a NULL out is allowed everywhere. */
    memset(&out, 0x5a, sizeof(out));
    CHECK_INT(lookup_token(cache, "c", &out), INTROSPECTION_CACHE_MISS);
    CHECK(!out.active);
    CHECK_STR(out.sub, "");
    CHECK_INT(out.exp, 0);
    CHECK_INT(lookup_token(cache, "a", NULL), INTROSPECTION_CACHE_HIT);
    CHECK_INT(introspection_cache_lookup(cache, b.bytes, NULL), INTROSPECTION_CACHE_NEGATIVE);
    CHECK_INT(introspection_cache_lookup(cache, NULL, NULL), INTROSPECTION_CACHE_MISS);
    check_stats(cache, 2, 3, 2, 0, 0, 2);

    /* A key one bit away from a cached one is a different key. */
    struct test_key near = key_for("a");
    near.bytes[INTROSPECTION_CACHE_KEY_SIZE - 1] ^= 1;
    CHECK_INT(introspection_cache_lookup(cache, near.bytes, NULL), INTROSPECTION_CACHE_MISS);
    check_stats(cache, 2, 4, 2, 0, 0, 2);
    introspection_cache_destroy(cache);
}

static void test_bad_put_arguments(void)
{
    test_now_ms = 0;
    struct introspection_cache *cache = new_cache(4, 10000, 10000);
    struct test_key key = key_for("t");
    struct introspection_entry_data data = make_data("jti-1", "first");
    CHECK_INT(introspection_cache_put(cache, key.bytes, &data, 5000), TK_OK);

    struct introspection_entry_data bad = make_data("jti-2", "second");
    CHECK_INT(introspection_cache_put(cache, NULL, &bad, 5000), TK_INVALID);
    CHECK_INT(introspection_cache_put(cache, key.bytes, NULL, 5000), TK_INVALID);
    CHECK_INT(introspection_cache_put(cache, key.bytes, &bad, 0), TK_INVALID);
    CHECK_INT(introspection_cache_put(cache, key.bytes, &bad, -1), TK_INVALID);
    CHECK_INT(introspection_cache_put_negative(cache, NULL), TK_INVALID);

    bad.active = false;
    CHECK_INT(introspection_cache_put(cache, key.bytes, &bad, 5000), TK_INVALID);
    bad.active = true;

    /* Each string field without its terminator is refused. */
    struct introspection_entry_data unterminated = bad;
    memset(unterminated.jti, 'j', sizeof(unterminated.jti));
    CHECK_INT(introspection_cache_put(cache, key.bytes, &unterminated, 5000), TK_INVALID);
    unterminated = bad;
    memset(unterminated.client_id, 'c', sizeof(unterminated.client_id));
    CHECK_INT(introspection_cache_put(cache, key.bytes, &unterminated, 5000), TK_INVALID);
    unterminated = bad;
    memset(unterminated.sub, 's', sizeof(unterminated.sub));
    CHECK_INT(introspection_cache_put(cache, key.bytes, &unterminated, 5000), TK_INVALID);
    unterminated = bad;
    memset(unterminated.scope, 's', sizeof(unterminated.scope));
    CHECK_INT(introspection_cache_put(cache, key.bytes, &unterminated, 5000), TK_INVALID);
    unterminated = bad;
    memset(unterminated.aud, 'a', sizeof(unterminated.aud));
    CHECK_INT(introspection_cache_put(cache, key.bytes, &unterminated, 5000), TK_INVALID);

    /* Full-length strings that are terminated are fine. */
    struct introspection_entry_data full = bad;
    memset(full.jti, 'j', sizeof(full.jti) - 1);
    full.jti[sizeof(full.jti) - 1] = '\0';
    struct test_key other = key_for("other");
    CHECK_INT(introspection_cache_put(cache, other.bytes, &full, 5000), TK_OK);

    /* Nothing refused touched the first entry. */
    struct introspection_entry_data out;
    CHECK_INT(introspection_cache_lookup(cache, key.bytes, &out), INTROSPECTION_CACHE_HIT);
    CHECK_STR(out.jti, "jti-1");
    CHECK_STR(out.sub, "first");
    CHECK_INT(introspection_cache_lookup(cache, other.bytes, &out), INTROSPECTION_CACHE_HIT);
    CHECK_INT(strlen(out.jti), sizeof(out.jti) - 1);
    check_stats(cache, 2, 0, 0, 0, 0, 2);
    introspection_cache_destroy(cache);
}

static void test_copies_in_and_out(void)
{
    test_now_ms = 0;
    struct introspection_cache *cache = new_cache(4, 10000, 10000);
    struct test_key key = key_for("t");
    struct introspection_entry_data data = make_data("jti-1", "alice");
    CHECK_INT(introspection_cache_put(cache, key.bytes, &data, 5000), TK_OK);
    snprintf(data.sub, sizeof(data.sub), "mallory");
    key.bytes[0] ^= 0xff; /* the caller's key buffer is not kept either */

    struct test_key same = key_for("t");
    struct introspection_entry_data out;
    CHECK_INT(introspection_cache_lookup(cache, same.bytes, &out), INTROSPECTION_CACHE_HIT);
    CHECK_STR(out.sub, "alice");
    snprintf(out.sub, sizeof(out.sub), "eve");
    CHECK_INT(introspection_cache_lookup(cache, same.bytes, &out), INTROSPECTION_CACHE_HIT);
    CHECK_STR(out.sub, "alice");
    introspection_cache_destroy(cache);
}

/* ---- lifetimes ---- */

static void test_ttl_boundary(void)
{
    test_now_ms = 5000;
    struct introspection_cache *cache = new_cache(4, 1000, 100000);
    struct test_key key = key_for("t");
    struct introspection_entry_data data = make_data("j", "s");
    /* The token outlives the TTL: the TTL decides. */
    CHECK_INT(introspection_cache_put(cache, key.bytes, &data, 60000), TK_OK);

    test_now_ms = 5999;
    CHECK_INT(introspection_cache_lookup(cache, key.bytes, NULL), INTROSPECTION_CACHE_HIT);
    test_now_ms = 6000;
    CHECK_INT(introspection_cache_lookup(cache, key.bytes, NULL), INTROSPECTION_CACHE_MISS);
    check_stats(cache, 1, 1, 0, 0, 1, 0);
    /* Dropped, so a second look is a plain miss, not another expiration. */
    CHECK_INT(introspection_cache_lookup(cache, key.bytes, NULL), INTROSPECTION_CACHE_MISS);
    check_stats(cache, 1, 2, 0, 0, 1, 0);
    introspection_cache_destroy(cache);
}

static void test_token_expiry_caps_ttl(void)
{
    test_now_ms = 5000;
    struct introspection_cache *cache = new_cache(4, 300000, 100000);
    struct test_key key = key_for("t");
    struct introspection_entry_data data = make_data("j", "s");
    /* The token has 250 ms left: a cached answer must not outlive it. */
    CHECK_INT(introspection_cache_put(cache, key.bytes, &data, 250), TK_OK);

    test_now_ms = 5249;
    CHECK_INT(introspection_cache_lookup(cache, key.bytes, NULL), INTROSPECTION_CACHE_HIT);
    test_now_ms = 5250;
    CHECK_INT(introspection_cache_lookup(cache, key.bytes, NULL), INTROSPECTION_CACHE_MISS);
    check_stats(cache, 1, 1, 0, 0, 1, 0);

    /* Equal lifetimes: both bounds agree. */
    CHECK_INT(introspection_cache_put(cache, key.bytes, &data, 300000), TK_OK);
    test_now_ms = 5250 + 299999;
    CHECK_INT(introspection_cache_lookup(cache, key.bytes, NULL), INTROSPECTION_CACHE_HIT);
    test_now_ms = 5250 + 300000;
    CHECK_INT(introspection_cache_lookup(cache, key.bytes, NULL), INTROSPECTION_CACHE_MISS);
    check_stats(cache, 2, 2, 0, 0, 2, 0);
    introspection_cache_destroy(cache);
}

static void test_negative_ttl(void)
{
    test_now_ms = 100;
    struct introspection_cache *cache = new_cache(4, 100000, 500);
    struct test_key key = key_for("bogus");
    CHECK_INT(introspection_cache_put_negative(cache, key.bytes), TK_OK);
    test_now_ms = 599;
    CHECK_INT(introspection_cache_lookup(cache, key.bytes, NULL), INTROSPECTION_CACHE_NEGATIVE);
    test_now_ms = 600;
    CHECK_INT(introspection_cache_lookup(cache, key.bytes, NULL), INTROSPECTION_CACHE_MISS);
    check_stats(cache, 0, 1, 1, 0, 1, 0);
    introspection_cache_destroy(cache);
}

static void test_huge_lifetimes_do_not_overflow(void)
{
    test_now_ms = INT64_MAX - 10;
    struct introspection_cache *cache = new_cache(4, INT64_MAX, INT64_MAX);
    struct test_key positive = key_for("p"), negative = key_for("n");
    struct introspection_entry_data data = make_data("j", "s");
    CHECK_INT(introspection_cache_put(cache, positive.bytes, &data, INT64_MAX), TK_OK);
    CHECK_INT(introspection_cache_put_negative(cache, negative.bytes), TK_OK);
    test_now_ms = INT64_MAX - 1;
    CHECK_INT(introspection_cache_lookup(cache, positive.bytes, NULL), INTROSPECTION_CACHE_HIT);
    CHECK_INT(introspection_cache_lookup(cache, negative.bytes, NULL),
              INTROSPECTION_CACHE_NEGATIVE);
    introspection_cache_destroy(cache);
}

static void test_replacement(void)
{
    test_now_ms = 0;
    struct introspection_cache *cache = new_cache(4, 1000, 200);
    struct test_key key = key_for("t");
    struct introspection_entry_data first = make_data("jti-1", "first");
    struct introspection_entry_data second = make_data("jti-2", "second");
    struct introspection_entry_data out;

    CHECK_INT(introspection_cache_put(cache, key.bytes, &first, 100000), TK_OK);
    /* Negative replaces positive, with its own TTL. */
    CHECK_INT(introspection_cache_put_negative(cache, key.bytes), TK_OK);
    CHECK_INT(introspection_cache_get_stats(cache)->size, 1);
    CHECK_INT(introspection_cache_lookup(cache, key.bytes, &out), INTROSPECTION_CACHE_NEGATIVE);

    /* Positive replaces negative. */
    test_now_ms = 150;
    CHECK_INT(introspection_cache_put(cache, key.bytes, &first, 100000), TK_OK);
    test_now_ms = 250; /* past the negative TTL counted from 0 */
    CHECK_INT(introspection_cache_lookup(cache, key.bytes, &out), INTROSPECTION_CACHE_HIT);
    CHECK_STR(out.jti, "jti-1");

    /* Positive replaces positive: new data, new deadline from now. */
    test_now_ms = 900;
    CHECK_INT(introspection_cache_put(cache, key.bytes, &second, 100000), TK_OK);
    test_now_ms = 1899;
    CHECK_INT(introspection_cache_lookup(cache, key.bytes, &out), INTROSPECTION_CACHE_HIT);
    CHECK_STR(out.jti, "jti-2");
    CHECK_STR(out.sub, "second");
    /* Replacing is neither an eviction nor an expiration. */
    check_stats(cache, 2, 0, 1, 0, 0, 1);
    introspection_cache_destroy(cache);
}

/* ---- LRU ---- */

static void test_lru_order(void)
{
    test_now_ms = 0;
    struct introspection_cache *cache = new_cache(3, 100000, 100000);
    CHECK_INT(put_token(cache, "a", "ja"), TK_OK);
    CHECK_INT(put_token(cache, "b", "jb"), TK_OK);
    struct test_key c = key_for("c");
    CHECK_INT(introspection_cache_put_negative(cache, c.bytes), TK_OK);
    check_stats(cache, 0, 0, 0, 0, 0, 3);

    /* Oldest to newest: a b c. Touch a, so b is the oldest. */
    CHECK_INT(lookup_token(cache, "a", NULL), INTROSPECTION_CACHE_HIT);
    CHECK_INT(put_token(cache, "d", "jd"), TK_OK);
    check_stats(cache, 1, 0, 0, 1, 0, 3);
    CHECK_INT(lookup_token(cache, "b", NULL), INTROSPECTION_CACHE_MISS);

    /* Now c a d. A negative hit also counts as use: touch c, evicts a. */
    CHECK_INT(introspection_cache_lookup(cache, c.bytes, NULL), INTROSPECTION_CACHE_NEGATIVE);
    CHECK_INT(put_token(cache, "e", "je"), TK_OK);
    check_stats(cache, 1, 1, 1, 2, 0, 3);
    CHECK_INT(lookup_token(cache, "a", NULL), INTROSPECTION_CACHE_MISS);

    /* d c e: a replacing put does not evict and refreshes recency of d. */
    CHECK_INT(put_token(cache, "d", "jd2"), TK_OK);
    check_stats(cache, 1, 2, 1, 2, 0, 3);
    CHECK_INT(put_token(cache, "f", "jf"), TK_OK); /* evicts c */
    CHECK_INT(introspection_cache_lookup(cache, c.bytes, NULL), INTROSPECTION_CACHE_MISS);
    CHECK_INT(lookup_token(cache, "d", NULL), INTROSPECTION_CACHE_HIT);
    CHECK_INT(lookup_token(cache, "e", NULL), INTROSPECTION_CACHE_HIT);
    CHECK_INT(lookup_token(cache, "f", NULL), INTROSPECTION_CACHE_HIT);
    check_stats(cache, 4, 3, 1, 3, 0, 3);
    introspection_cache_destroy(cache);
}

static void test_single_entry_cache(void)
{
    test_now_ms = 0;
    struct introspection_cache *cache = new_cache(1, 100000, 100000);
    CHECK_INT(put_token(cache, "a", "ja"), TK_OK);
    CHECK_INT(put_token(cache, "b", "jb"), TK_OK);
    CHECK_INT(lookup_token(cache, "a", NULL), INTROSPECTION_CACHE_MISS);
    CHECK_INT(lookup_token(cache, "b", NULL), INTROSPECTION_CACHE_HIT);
    CHECK_INT(put_token(cache, "b", "jb"), TK_OK);
    check_stats(cache, 1, 1, 0, 1, 0, 1);
    introspection_cache_destroy(cache);
}

/* ---- revocation, clear, sweep ---- */

static void test_remove_jti(void)
{
    test_now_ms = 0;
    struct introspection_cache *cache = new_cache(16, 100000, 100000);
    /* Several token strings can carry one jti (or the resource server sends
     * one token with different padding): each has its own key. */
    CHECK_INT(put_token(cache, "t1", "revoked"), TK_OK);
    CHECK_INT(put_token(cache, "t2", "revoked"), TK_OK);
    CHECK_INT(put_token(cache, "t3", "revoked"), TK_OK);
    CHECK_INT(put_token(cache, "t4", "kept"), TK_OK);
    CHECK_INT(put_token(cache, "t5", "revoked-not"), TK_OK); /* a prefix is not a match */
    CHECK_INT(put_token(cache, "t6", "revoke"), TK_OK);
    struct test_key negative = key_for("t7");
    CHECK_INT(introspection_cache_put_negative(cache, negative.bytes), TK_OK);
    check_stats(cache, 0, 0, 0, 0, 0, 7);

    CHECK_INT(introspection_cache_remove_jti(cache, "revoked"), 3);
    check_stats(cache, 0, 0, 0, 0, 0, 4);
    CHECK_INT(lookup_token(cache, "t1", NULL), INTROSPECTION_CACHE_MISS);
    CHECK_INT(lookup_token(cache, "t2", NULL), INTROSPECTION_CACHE_MISS);
    CHECK_INT(lookup_token(cache, "t3", NULL), INTROSPECTION_CACHE_MISS);
    struct introspection_entry_data out;
    CHECK_INT(lookup_token(cache, "t4", &out), INTROSPECTION_CACHE_HIT);
    CHECK_STR(out.jti, "kept");
    CHECK_INT(lookup_token(cache, "t5", &out), INTROSPECTION_CACHE_HIT);
    CHECK_STR(out.jti, "revoked-not");
    CHECK_INT(lookup_token(cache, "t6", &out), INTROSPECTION_CACHE_HIT);
    CHECK_STR(out.jti, "revoke");
    CHECK_INT(introspection_cache_lookup(cache, negative.bytes, NULL),
              INTROSPECTION_CACHE_NEGATIVE);
    check_stats(cache, 3, 3, 1, 0, 0, 4);

    /* Again: nothing left to remove. Empty and NULL jtis never match (the
     * negative entry's jti is empty). */
    CHECK_INT(introspection_cache_remove_jti(cache, "revoked"), 0);
    CHECK_INT(introspection_cache_remove_jti(cache, ""), 0);
    CHECK_INT(introspection_cache_remove_jti(cache, NULL), 0);
    CHECK_INT(introspection_cache_remove_jti(cache, "unknown"), 0);
    check_stats(cache, 3, 3, 1, 0, 0, 4);

    /* Removal keeps the structure sound: the slots are reusable. */
    CHECK_INT(put_token(cache, "t1", "again"), TK_OK);
    CHECK_INT(lookup_token(cache, "t1", &out), INTROSPECTION_CACHE_HIT);
    CHECK_STR(out.jti, "again");
    introspection_cache_destroy(cache);
}

/* A client changed: every positive answer for its tokens goes, others
 * stay, negative entries (client "") are never matched. */
static void test_remove_client(void)
{
    test_now_ms = 0;
    struct introspection_cache *cache = new_cache(16, 100000, 100000);
    struct introspection_entry_data data = make_data("j1", "sub");
    struct test_key k1 = key_for("c1"), k2 = key_for("c2"), k3 = key_for("c3");
    CHECK_INT(introspection_cache_put(cache, k1.bytes, &data, 100000), TK_OK);
    snprintf(data.jti, sizeof(data.jti), "j2");
    CHECK_INT(introspection_cache_put(cache, k2.bytes, &data, 100000), TK_OK);
    snprintf(data.client_id, sizeof(data.client_id), "client-b");
    CHECK_INT(introspection_cache_put(cache, k3.bytes, &data, 100000), TK_OK);
    struct test_key negative = key_for("c4");
    CHECK_INT(introspection_cache_put_negative(cache, negative.bytes), TK_OK);

    CHECK_INT(introspection_cache_remove_client(cache, "client-a"), 2);
    CHECK_INT(introspection_cache_lookup(cache, k1.bytes, NULL), INTROSPECTION_CACHE_MISS);
    CHECK_INT(introspection_cache_lookup(cache, k2.bytes, NULL), INTROSPECTION_CACHE_MISS);
    CHECK_INT(introspection_cache_lookup(cache, k3.bytes, NULL), INTROSPECTION_CACHE_HIT);
    CHECK_INT(introspection_cache_lookup(cache, negative.bytes, NULL),
              INTROSPECTION_CACHE_NEGATIVE);
    CHECK_INT(introspection_cache_remove_client(cache, "client-a"), 0);
    CHECK_INT(introspection_cache_remove_client(cache, ""), 0);
    CHECK_INT(introspection_cache_remove_client(cache, NULL), 0);
    CHECK_INT(introspection_cache_remove_client(cache, "client-"), 0);
    check_stats(cache, 1, 2, 1, 0, 0, 2);
    introspection_cache_destroy(cache);
}

static void test_clear(void)
{
    test_now_ms = 0;
    struct introspection_cache *cache = new_cache(8, 100000, 100000);
    CHECK_INT(put_token(cache, "a", "ja"), TK_OK);
    CHECK_INT(put_token(cache, "b", "jb"), TK_OK);
    struct test_key c = key_for("c");
    CHECK_INT(introspection_cache_put_negative(cache, c.bytes), TK_OK);
    CHECK_INT(lookup_token(cache, "a", NULL), INTROSPECTION_CACHE_HIT);
    introspection_cache_clear(cache);
    /* Counters other than size are kept; clearing is not eviction. */
    check_stats(cache, 1, 0, 0, 0, 0, 0);
    CHECK_INT(lookup_token(cache, "a", NULL), INTROSPECTION_CACHE_MISS);
    CHECK_INT(lookup_token(cache, "b", NULL), INTROSPECTION_CACHE_MISS);
    CHECK_INT(introspection_cache_lookup(cache, c.bytes, NULL), INTROSPECTION_CACHE_MISS);
    /* Usable again after a clear, and clearing an empty cache is fine. */
    CHECK_INT(put_token(cache, "a", "ja"), TK_OK);
    CHECK_INT(lookup_token(cache, "a", NULL), INTROSPECTION_CACHE_HIT);
    introspection_cache_clear(cache);
    introspection_cache_clear(cache);
    check_stats(cache, 2, 3, 0, 0, 0, 0);
    introspection_cache_destroy(cache);
}

static void test_sweep(void)
{
    test_now_ms = 0;
    struct introspection_cache *cache = new_cache(8, 1000, 300);
    struct introspection_entry_data data = make_data("j", "s");
    struct test_key short_lived = key_for("short"), long_lived = key_for("long"),
                    capped = key_for("capped"), negative = key_for("negative");
    CHECK_INT(introspection_cache_put(cache, long_lived.bytes, &data, 100000), TK_OK); /* 1000 */
    CHECK_INT(introspection_cache_put(cache, capped.bytes, &data, 400), TK_OK);        /* 400 */
    CHECK_INT(introspection_cache_put_negative(cache, negative.bytes), TK_OK);         /* 300 */
    CHECK_INT(introspection_cache_put(cache, short_lived.bytes, &data, 100), TK_OK);   /* 100 */

    test_now_ms = 99;
    CHECK_INT(introspection_cache_sweep(cache), 0);
    check_stats(cache, 0, 0, 0, 0, 0, 4);
    test_now_ms = 300; /* short and negative are due, capped not yet */
    CHECK_INT(introspection_cache_sweep(cache), 2);
    check_stats(cache, 0, 0, 0, 0, 2, 2);
    CHECK_INT(introspection_cache_lookup(cache, capped.bytes, NULL), INTROSPECTION_CACHE_HIT);
    CHECK_INT(introspection_cache_lookup(cache, long_lived.bytes, NULL), INTROSPECTION_CACHE_HIT);
    CHECK_INT(introspection_cache_lookup(cache, short_lived.bytes, NULL), INTROSPECTION_CACHE_MISS);
    CHECK_INT(introspection_cache_lookup(cache, negative.bytes, NULL), INTROSPECTION_CACHE_MISS);
    /* Swept entries were already counted: these are plain misses. */
    check_stats(cache, 2, 2, 0, 0, 2, 2);

    test_now_ms = 1000;
    CHECK_INT(introspection_cache_sweep(cache), 2);
    CHECK_INT(introspection_cache_sweep(cache), 0);
    check_stats(cache, 2, 2, 0, 0, 4, 0);
    introspection_cache_destroy(cache);
}

/* ---- scale ---- */

#define MANY 10000

static struct test_key many_key(const char *prefix, int i)
{
    char token[64];
    snprintf(token, sizeof(token), "%s-%d", prefix, i);
    return key_for(token);
}

/* 10k entries in 32k buckets: by the birthday bound hundreds of buckets hold
 * more than one entry, so chains are exercised whatever the random SipHash
 * key. Keys that share all but their last byte check that the whole key is
 * compared, not a prefix. */
static void test_many_entries(void)
{
    test_now_ms = 0;
    struct introspection_cache *cache = new_cache(MANY, 100000, 100000);
    struct introspection_entry_data data = make_data("", "s");
    struct introspection_entry_data out;
    uint64_t hits = 0, misses = 0, evictions = 0;

    for (int i = 0; i < MANY; i++) {
        struct test_key key = many_key("old", i);
        snprintf(data.jti, sizeof(data.jti), "old-%d", i);
        CHECK_INT(introspection_cache_put(cache, key.bytes, &data, 100000), TK_OK);
    }
    check_stats(cache, 0, 0, 0, 0, 0, MANY);
    int wrong = 0;
    for (int i = 0; i < MANY; i++) {
        struct test_key key = many_key("old", i);
        char expected[33];
        snprintf(expected, sizeof(expected), "old-%d", i);
        if (introspection_cache_lookup(cache, key.bytes, &out) != INTROSPECTION_CACHE_HIT ||
            strcmp(out.jti, expected) != 0) {
            wrong++;
        }
        hits++;
    }
    CHECK_INT(wrong, 0);
    check_stats(cache, hits, misses, 0, evictions, 0, MANY);

    /* Revoke a few scattered jtis. */
    CHECK_INT(introspection_cache_remove_jti(cache, "old-0"), 1);
    CHECK_INT(introspection_cache_remove_jti(cache, "old-4999"), 1);
    CHECK_INT(introspection_cache_remove_jti(cache, "old-9999"), 1);
    CHECK_INT(lookup_token(cache, "old-4999", NULL), INTROSPECTION_CACHE_MISS);
    CHECK_INT(lookup_token(cache, "old-5000", NULL), INTROSPECTION_CACHE_HIT);
    misses++;
    hits++;
    check_stats(cache, hits, misses, 0, evictions, 0, MANY - 3);

    /* 256 keys equal but for the last byte, into a full cache. */
    struct test_key base = many_key("base", 0);
    for (int b = 0; b < 256; b++) {
        struct test_key key = base;
        key.bytes[INTROSPECTION_CACHE_KEY_SIZE - 1] = (uint8_t)b;
        snprintf(data.jti, sizeof(data.jti), "near-%d", b);
        CHECK_INT(introspection_cache_put(cache, key.bytes, &data, 100000), TK_OK);
    }
    evictions += 256 - 3;
    check_stats(cache, hits, misses, 0, evictions, 0, MANY);
    wrong = 0;
    for (int b = 0; b < 256; b++) {
        struct test_key key = base;
        key.bytes[INTROSPECTION_CACHE_KEY_SIZE - 1] = (uint8_t)b;
        char expected[33];
        snprintf(expected, sizeof(expected), "near-%d", b);
        if (introspection_cache_lookup(cache, key.bytes, &out) != INTROSPECTION_CACHE_HIT ||
            strcmp(out.jti, expected) != 0) {
            wrong++;
        }
        hits++;
    }
    CHECK_INT(wrong, 0);

    /* A new generation pushes every old entry out, oldest first. */
    for (int i = 0; i < MANY; i++) {
        struct test_key key = many_key("new", i);
        snprintf(data.jti, sizeof(data.jti), "new-%d", i);
        CHECK_INT(introspection_cache_put(cache, key.bytes, &data, 100000), TK_OK);
    }
    evictions += MANY;
    check_stats(cache, hits, misses, 0, evictions, 0, MANY);
    int found_old = 0, missing_new = 0;
    for (int i = 0; i < MANY; i++) {
        struct test_key old_key = many_key("old", i), new_key = many_key("new", i);
        if (introspection_cache_lookup(cache, old_key.bytes, NULL) != INTROSPECTION_CACHE_MISS) {
            found_old++;
        }
        if (introspection_cache_lookup(cache, new_key.bytes, NULL) != INTROSPECTION_CACHE_HIT) {
            missing_new++;
        }
    }
    misses += MANY;
    hits += MANY;
    CHECK_INT(found_old, 0);
    CHECK_INT(missing_new, 0);
    check_stats(cache, hits, misses, 0, evictions, 0, MANY);

    /* Everything expires together and sweep finds all of it. */
    test_now_ms = 100000;
    CHECK_INT(introspection_cache_sweep(cache), MANY);
    check_stats(cache, hits, misses, 0, evictions, MANY, 0);
    introspection_cache_destroy(cache);
}

int main(void)
{
    RUN(test_key_is_sha256);
    RUN(test_invalid_options);
    RUN(test_default_clock);
    RUN(test_hit_miss_negative_counting);
    RUN(test_bad_put_arguments);
    RUN(test_copies_in_and_out);
    RUN(test_ttl_boundary);
    RUN(test_token_expiry_caps_ttl);
    RUN(test_negative_ttl);
    RUN(test_huge_lifetimes_do_not_overflow);
    RUN(test_replacement);
    RUN(test_lru_order);
    RUN(test_single_entry_cache);
    RUN(test_remove_jti);
    RUN(test_remove_client);
    RUN(test_clear);
    RUN(test_sweep);
    RUN(test_many_entries);
    return unit_test_finish();
}
