/*
 * test_client_cache.c - SipHash-2-4 against the reference vectors, and the
 * client cache's counting, TTL boundaries, LRU order, replacement, deep
 * copies and remembered secrets, under a clock the tests move by hand.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokend/client_cache.h"
#include "tokend/siphash.h"
#include "tokend/status.h"
#include "unit_test.h"

#include "cache_stats_check.h"

static int64_t test_now_ms;

static int64_t test_clock(void *context)
{
    (void)context;
    return test_now_ms;
}

static struct client_cache *new_cache(size_t max_entries, int64_t ttl_ms, int64_t negative_ttl_ms)
{
    struct client_cache_options options = {
        .max_entries = max_entries,
        .ttl_ms = ttl_ms,
        .negative_ttl_ms = negative_ttl_ms,
        .clock = test_clock,
    };
    return client_cache_create(&options);
}

static struct client_record make_record(const char *client_id)
{
    struct client_record record = {
        .client_id = client_id,
        .secret_hash = "$pbkdf2-sha256$i=1$c2FsdA$aGFzaA",
        .allowed_scopes = "read write",
        .default_scopes = "read",
        .audiences = "https://api.example",
        .token_ttl_s = 300,
        .enabled = true,
        .client_credentials_allowed = true,
    };
    return record;
}

static int put_id(struct client_cache *cache, const char *client_id)
{
    struct client_record record = make_record(client_id);
    return client_cache_put(cache, &record, NULL);
}

static void check_stats(const struct client_cache *cache, uint64_t hits, uint64_t misses,
                        uint64_t negative_hits, uint64_t evictions, uint64_t expirations,
                        uint64_t size)
{
    check_cache_stats(client_cache_get_stats(cache), hits, misses, negative_hits, evictions,
                      expirations, size);
}

/* ---- SipHash ---- */

static void test_siphash_reference_vectors(void)
{
    /* vectors_sip64 from the reference implementation: key 00..0f, message
     * 00..len-1, output as little-endian bytes. */
    static const struct {
        size_t len;
        const char *hex;
    } vectors[] = {
        {0, "310e0edd47db6f72"},  {1, "fd67dc93c539f874"},  {2, "5a4fa9d909806c0d"},
        {3, "2d7efbd796666785"},  {4, "b7877127e09427cf"},  {5, "8da699cd64557618"},
        {6, "cee3fe586e46c9cb"},  {7, "37d1018bf50002ab"},  {8, "6224939a79f5f593"},
        {9, "b0e4a90bdf82009e"},  {15, "e545be4961ca29a1"}, {16, "db9bc2577fcc2a3f"},
        {31, "42c341d8fa92d832"}, {32, "ce7cf2722f512771"}, {63, "724506eb4c328a95"},
    };
    uint8_t key[SIPHASH_KEY_SIZE];
    uint8_t message[64];
    for (size_t i = 0; i < sizeof(key); i++) {
        key[i] = (uint8_t)i;
    }
    for (size_t i = 0; i < sizeof(message); i++) {
        message[i] = (uint8_t)i;
    }
    for (size_t v = 0; v < sizeof(vectors) / sizeof(vectors[0]); v++) {
        uint64_t hash = siphash24(key, message, vectors[v].len);
        char hex[17];
        for (int b = 0; b < 8; b++) {
            snprintf(hex + 2 * b, 3, "%02x", (unsigned)(hash >> (8 * b)) & 0xffu);
        }
        CHECK_STR(hex, vectors[v].hex);
    }
    /* An empty message may come with a NULL pointer. */
    CHECK(siphash24(key, NULL, 0) == UINT64_C(0x726fdb47dd0e0e31));
}

static void test_siphash_key_matters(void)
{
    uint8_t key_a[SIPHASH_KEY_SIZE] = {0};
    uint8_t key_b[SIPHASH_KEY_SIZE] = {0};
    key_b[15] = 1;
    CHECK(siphash24(key_a, "client", 6) != siphash24(key_b, "client", 6));
    CHECK(siphash24(key_a, "client", 6) == siphash24(key_a, "client", 6));
}

/* ---- creation ---- */

static void test_invalid_options(void)
{
    CHECK(client_cache_create(NULL) == NULL);
    CHECK(new_cache(0, 1000, 1000) == NULL);
    CHECK(new_cache(10, 0, 1000) == NULL);
    CHECK(new_cache(10, -5, 1000) == NULL);
    CHECK(new_cache(10, 1000, 0) == NULL);
    CHECK(new_cache(10, 1000, -1) == NULL);
    CHECK(new_cache(SIZE_MAX, 1000, 1000) == NULL);

    struct client_cache *cache = new_cache(1, 1, 1);
    CHECK(cache != NULL);
    check_stats(cache, 0, 0, 0, 0, 0, 0);
    client_cache_destroy(cache);
    client_cache_destroy(NULL);
}

static void test_default_clock(void)
{
    struct client_cache_options options = {
        .max_entries = 4, .ttl_ms = 60000, .negative_ttl_ms = 60000};
    struct client_cache *cache = client_cache_create(&options);
    CHECK(cache != NULL);
    if (cache == NULL) {
        return;
    }
    CHECK_INT(put_id(cache, "a"), TK_OK);
    CHECK_INT(client_cache_lookup(cache, "a", NULL), CLIENT_CACHE_HIT);
    client_cache_destroy(cache);
}

/* ---- counting ---- */

static void test_hit_miss_negative_counting(void)
{
    test_now_ms = 1000;
    struct client_cache *cache = new_cache(8, 100, 50);
    struct client_cache_entry *entry = (struct client_cache_entry *)&entry;

    CHECK_INT(client_cache_lookup(cache, "alpha", &entry), CLIENT_CACHE_MISS);
    CHECK(entry == NULL);
    check_stats(cache, 0, 1, 0, 0, 0, 0);

    struct client_cache_entry *put_entry = NULL;
    struct client_record record = make_record("alpha");
    CHECK_INT(client_cache_put(cache, &record, &put_entry), TK_OK);
    CHECK(put_entry != NULL);
    check_stats(cache, 0, 1, 0, 0, 0, 1);

    CHECK_INT(client_cache_lookup(cache, "alpha", &entry), CLIENT_CACHE_HIT);
    CHECK(entry == put_entry);
    const struct client_record *held = client_cache_entry_record(entry);
    CHECK(held != NULL);
    if (held != NULL) {
        CHECK_STR(held->client_id, "alpha");
        CHECK_STR(held->secret_hash, record.secret_hash);
        CHECK_STR(held->allowed_scopes, "read write");
        CHECK_STR(held->default_scopes, "read");
        CHECK_STR(held->audiences, "https://api.example");
        CHECK_INT(held->token_ttl_s, 300);
        CHECK(held->enabled);
        CHECK(held->client_credentials_allowed);
    }
    check_stats(cache, 1, 1, 0, 0, 0, 1);

    CHECK_INT(client_cache_put_negative(cache, "ghost"), TK_OK);
    entry = (struct client_cache_entry *)&entry;
    CHECK_INT(client_cache_lookup(cache, "ghost", &entry), CLIENT_CACHE_NEGATIVE);
    CHECK(entry == NULL);
    check_stats(cache, 1, 1, 1, 0, 0, 2);

    /* Ids are compared exactly: a prefix or an extension is another id. */
    CHECK_INT(client_cache_lookup(cache, "alph", NULL), CLIENT_CACHE_MISS);
    CHECK_INT(client_cache_lookup(cache, "alphaa", NULL), CLIENT_CACHE_MISS);
    CHECK_INT(client_cache_lookup(cache, "", NULL), CLIENT_CACHE_MISS);
    CHECK_INT(client_cache_lookup(cache, NULL, NULL), CLIENT_CACHE_MISS);
    check_stats(cache, 1, 5, 1, 0, 0, 2);

    CHECK_INT(client_cache_lookup(cache, "alpha", NULL), CLIENT_CACHE_HIT);
    CHECK_INT(client_cache_lookup(cache, "ghost", NULL), CLIENT_CACHE_NEGATIVE);
    check_stats(cache, 2, 5, 2, 0, 0, 2);
    client_cache_destroy(cache);
}

static void test_bad_put_arguments(void)
{
    test_now_ms = 0;
    struct client_cache *cache = new_cache(4, 100, 100);
    struct client_cache_entry *entry = (struct client_cache_entry *)&entry;
    struct client_record no_id = make_record(NULL);
    CHECK_INT(client_cache_put(cache, &no_id, &entry), TK_INVALID);
    CHECK(entry == NULL);
    CHECK_INT(client_cache_put(cache, NULL, NULL), TK_INVALID);
    CHECK_INT(client_cache_put_negative(cache, NULL), TK_INVALID);
    check_stats(cache, 0, 0, 0, 0, 0, 0);
    CHECK(client_cache_entry_record(NULL) == NULL);
    client_cache_destroy(cache);
}

/* ---- TTL ---- */

static void test_ttl_boundary(void)
{
    test_now_ms = 1000;
    struct client_cache *cache = new_cache(8, 100, 50);
    CHECK_INT(put_id(cache, "alpha"), TK_OK);

    test_now_ms = 1099; /* t + T - 1: still fresh; a lookup does not extend the TTL */
    CHECK_INT(client_cache_lookup(cache, "alpha", NULL), CLIENT_CACHE_HIT);
    check_stats(cache, 1, 0, 0, 0, 0, 1);

    test_now_ms = 1100; /* t + T: expired and dropped */
    struct client_cache_entry *entry = (struct client_cache_entry *)&entry;
    CHECK_INT(client_cache_lookup(cache, "alpha", &entry), CLIENT_CACHE_MISS);
    CHECK(entry == NULL);
    check_stats(cache, 1, 1, 0, 0, 1, 0);

    /* Gone, so the next lookup is a plain miss, not another expiration. */
    CHECK_INT(client_cache_lookup(cache, "alpha", NULL), CLIENT_CACHE_MISS);
    check_stats(cache, 1, 2, 0, 0, 1, 0);
    client_cache_destroy(cache);
}

static void test_negative_ttl(void)
{
    test_now_ms = 5000;
    struct client_cache *cache = new_cache(8, 100, 50);
    CHECK_INT(client_cache_put_negative(cache, "ghost"), TK_OK);
    CHECK_INT(put_id(cache, "alpha"), TK_OK);

    test_now_ms = 5049;
    CHECK_INT(client_cache_lookup(cache, "ghost", NULL), CLIENT_CACHE_NEGATIVE);
    check_stats(cache, 0, 0, 1, 0, 0, 2);

    test_now_ms = 5050; /* negative TTL over, positive TTL not */
    CHECK_INT(client_cache_lookup(cache, "ghost", NULL), CLIENT_CACHE_MISS);
    CHECK_INT(client_cache_lookup(cache, "alpha", NULL), CLIENT_CACHE_HIT);
    check_stats(cache, 1, 1, 1, 0, 1, 1);
    client_cache_destroy(cache);
}

static void test_huge_ttl_does_not_overflow(void)
{
    test_now_ms = 1000;
    struct client_cache *cache = new_cache(2, INT64_MAX, INT64_MAX);
    CHECK_INT(put_id(cache, "alpha"), TK_OK);
    test_now_ms = INT64_MAX - 1;
    CHECK_INT(client_cache_lookup(cache, "alpha", NULL), CLIENT_CACHE_HIT);
    client_cache_destroy(cache);
}

/* ---- LRU ---- */

static void test_lru_order(void)
{
    test_now_ms = 0;
    struct client_cache *cache = new_cache(3, 1000, 1000);
    CHECK_INT(put_id(cache, "first"), TK_OK);
    CHECK_INT(put_id(cache, "second"), TK_OK);
    CHECK_INT(put_id(cache, "third"), TK_OK);
    check_stats(cache, 0, 0, 0, 0, 0, 3);

    CHECK_INT(client_cache_lookup(cache, "first", NULL), CLIENT_CACHE_HIT);
    CHECK_INT(put_id(cache, "fourth"), TK_OK);
    check_stats(cache, 1, 0, 0, 1, 0, 3);

    CHECK_INT(client_cache_lookup(cache, "second", NULL), CLIENT_CACHE_MISS);
    CHECK_INT(client_cache_lookup(cache, "first", NULL), CLIENT_CACHE_HIT);
    CHECK_INT(client_cache_lookup(cache, "third", NULL), CLIENT_CACHE_HIT);
    CHECK_INT(client_cache_lookup(cache, "fourth", NULL), CLIENT_CACHE_HIT);
    /* Now oldest to newest: first, third, fourth. */
    CHECK_INT(put_id(cache, "fifth"), TK_OK);
    CHECK_INT(client_cache_lookup(cache, "first", NULL), CLIENT_CACHE_MISS);
    check_stats(cache, 4, 2, 0, 2, 0, 3);

    /* A negative hit counts as use too. Replacing "third" by a negative
     * entry makes it newest; two hits make it oldest again, and a negative
     * hit saves it, so the next put evicts "fourth". */
    CHECK_INT(client_cache_put_negative(cache, "third"), TK_OK);
    CHECK_INT(client_cache_lookup(cache, "fourth", NULL), CLIENT_CACHE_HIT);
    CHECK_INT(client_cache_lookup(cache, "fifth", NULL), CLIENT_CACHE_HIT);
    CHECK_INT(client_cache_lookup(cache, "third", NULL), CLIENT_CACHE_NEGATIVE);
    CHECK_INT(put_id(cache, "sixth"), TK_OK);
    CHECK_INT(client_cache_lookup(cache, "fourth", NULL), CLIENT_CACHE_MISS);
    CHECK_INT(client_cache_lookup(cache, "third", NULL), CLIENT_CACHE_NEGATIVE);
    CHECK_INT(client_cache_lookup(cache, "fifth", NULL), CLIENT_CACHE_HIT);
    CHECK_INT(client_cache_lookup(cache, "sixth", NULL), CLIENT_CACHE_HIT);
    check_stats(cache, 8, 3, 2, 3, 0, 3);
    client_cache_destroy(cache);
}

static void test_single_entry_cache(void)
{
    test_now_ms = 0;
    struct client_cache *cache = new_cache(1, 1000, 1000);
    CHECK_INT(put_id(cache, "a"), TK_OK);
    CHECK_INT(put_id(cache, "b"), TK_OK);
    CHECK_INT(client_cache_lookup(cache, "a", NULL), CLIENT_CACHE_MISS);
    CHECK_INT(client_cache_lookup(cache, "b", NULL), CLIENT_CACHE_HIT);
    CHECK_INT(put_id(cache, "b"), TK_OK); /* replacement, not eviction */
    CHECK_INT(client_cache_put_negative(cache, "c"), TK_OK);
    CHECK_INT(client_cache_lookup(cache, "c", NULL), CLIENT_CACHE_NEGATIVE);
    check_stats(cache, 1, 1, 1, 2, 0, 1);
    client_cache_destroy(cache);
}

/* ---- replacement ---- */

static void test_replacement(void)
{
    test_now_ms = 0;
    struct client_cache *cache = new_cache(2, 100, 50);
    CHECK_INT(put_id(cache, "alpha"), TK_OK);
    CHECK_INT(put_id(cache, "beta"), TK_OK);

    /* positive -> negative, in a full cache: no eviction */
    CHECK_INT(client_cache_put_negative(cache, "alpha"), TK_OK);
    check_stats(cache, 0, 0, 0, 0, 0, 2);
    CHECK_INT(client_cache_lookup(cache, "alpha", NULL), CLIENT_CACHE_NEGATIVE);
    CHECK_INT(client_cache_lookup(cache, "beta", NULL), CLIENT_CACHE_HIT);

    /* negative -> positive */
    struct client_record record = make_record("alpha");
    record.allowed_scopes = "admin";
    struct client_cache_entry *entry = NULL;
    CHECK_INT(client_cache_put(cache, &record, &entry), TK_OK);
    check_stats(cache, 1, 0, 1, 0, 0, 2);
    struct client_cache_entry *found = NULL;
    CHECK_INT(client_cache_lookup(cache, "alpha", &found), CLIENT_CACHE_HIT);
    CHECK(found == entry);
    CHECK_STR(client_cache_entry_record(found)->allowed_scopes, "admin");

    /* positive -> positive resets the TTL */
    test_now_ms = 90;
    record.allowed_scopes = "read";
    CHECK_INT(client_cache_put(cache, &record, &entry), TK_OK);
    test_now_ms = 189;
    CHECK_INT(client_cache_lookup(cache, "alpha", &found), CLIENT_CACHE_HIT);
    CHECK_STR(client_cache_entry_record(found)->allowed_scopes, "read");
    test_now_ms = 190;
    CHECK_INT(client_cache_lookup(cache, "alpha", NULL), CLIENT_CACHE_MISS);

    /* negative -> negative resets the negative TTL */
    test_now_ms = 1000;
    CHECK_INT(client_cache_put_negative(cache, "ghost"), TK_OK);
    test_now_ms = 1040;
    CHECK_INT(client_cache_put_negative(cache, "ghost"), TK_OK);
    test_now_ms = 1089;
    CHECK_INT(client_cache_lookup(cache, "ghost", NULL), CLIENT_CACHE_NEGATIVE);
    test_now_ms = 1090;
    CHECK_INT(client_cache_lookup(cache, "ghost", NULL), CLIENT_CACHE_MISS);

    /* "beta" expired at 100 and was never looked up since: still held. */
    check_stats(cache, 3, 2, 2, 0, 2, 1);
    client_cache_destroy(cache);
}

static void test_put_from_own_entry(void)
{
    /* Re-putting the record an entry holds must copy before the old entry
     * goes away. */
    test_now_ms = 0;
    struct client_cache *cache = new_cache(2, 100, 100);
    struct client_cache_entry *entry = NULL;
    CHECK_INT(put_id(cache, "alpha"), TK_OK);
    CHECK_INT(client_cache_lookup(cache, "alpha", &entry), CLIENT_CACHE_HIT);
    struct client_cache_entry *replaced = NULL;
    CHECK_INT(client_cache_put(cache, client_cache_entry_record(entry), &replaced), TK_OK);
    CHECK_STR(client_cache_entry_record(replaced)->client_id, "alpha");
    CHECK_STR(client_cache_entry_record(replaced)->default_scopes, "read");
    CHECK_INT(client_cache_put_negative(cache, client_cache_entry_record(replaced)->client_id),
              TK_OK);
    CHECK_INT(client_cache_lookup(cache, "alpha", NULL), CLIENT_CACHE_NEGATIVE);
    check_stats(cache, 1, 0, 1, 0, 0, 1);
    client_cache_destroy(cache);
}

/* ---- remove, clear, sweep ---- */

static void test_remove(void)
{
    test_now_ms = 0;
    struct client_cache *cache = new_cache(4, 100, 100);
    CHECK_INT(put_id(cache, "alpha"), TK_OK);
    CHECK_INT(client_cache_put_negative(cache, "ghost"), TK_OK);
    CHECK(client_cache_remove(cache, "alpha"));
    CHECK(!client_cache_remove(cache, "alpha"));
    CHECK(client_cache_remove(cache, "ghost"));
    CHECK(!client_cache_remove(cache, "nobody"));
    CHECK(!client_cache_remove(cache, NULL));
    check_stats(cache, 0, 0, 0, 0, 0, 0);
    CHECK_INT(client_cache_lookup(cache, "alpha", NULL), CLIENT_CACHE_MISS);
    CHECK_INT(client_cache_lookup(cache, "ghost", NULL), CLIENT_CACHE_MISS);

    /* The LRU list survives removal from its middle and ends. */
    CHECK_INT(put_id(cache, "a"), TK_OK);
    CHECK_INT(put_id(cache, "b"), TK_OK);
    CHECK_INT(put_id(cache, "c"), TK_OK);
    CHECK_INT(put_id(cache, "d"), TK_OK);
    CHECK(client_cache_remove(cache, "b"));
    CHECK(client_cache_remove(cache, "d"));
    CHECK(client_cache_remove(cache, "a"));
    CHECK_INT(put_id(cache, "e"), TK_OK);
    CHECK_INT(put_id(cache, "f"), TK_OK);
    CHECK_INT(put_id(cache, "g"), TK_OK);
    CHECK_INT(put_id(cache, "h"), TK_OK); /* evicts "c", the oldest left */
    CHECK_INT(client_cache_lookup(cache, "c", NULL), CLIENT_CACHE_MISS);
    CHECK_INT(client_cache_lookup(cache, "e", NULL), CLIENT_CACHE_HIT);
    check_stats(cache, 1, 3, 0, 1, 0, 4);
    client_cache_destroy(cache);
}

static void test_clear(void)
{
    test_now_ms = 0;
    struct client_cache *cache = new_cache(4, 100, 100);
    CHECK_INT(put_id(cache, "alpha"), TK_OK);
    CHECK_INT(put_id(cache, "beta"), TK_OK);
    CHECK_INT(client_cache_put_negative(cache, "ghost"), TK_OK);
    CHECK_INT(client_cache_lookup(cache, "alpha", NULL), CLIENT_CACHE_HIT);
    test_now_ms = 500; /* everything is stale, but clear does not count that */
    client_cache_clear(cache);
    check_stats(cache, 1, 0, 0, 0, 0, 0);
    CHECK_INT(client_cache_lookup(cache, "beta", NULL), CLIENT_CACHE_MISS);
    check_stats(cache, 1, 1, 0, 0, 0, 0);
    client_cache_clear(cache); /* empty is fine */
    CHECK_INT(put_id(cache, "alpha"), TK_OK);
    CHECK_INT(client_cache_lookup(cache, "alpha", NULL), CLIENT_CACHE_HIT);
    check_stats(cache, 2, 1, 0, 0, 0, 1);
    client_cache_destroy(cache);
}

static void test_sweep(void)
{
    test_now_ms = 0;
    struct client_cache *cache = new_cache(8, 100, 30);
    CHECK_INT(client_cache_sweep(cache), 0);
    CHECK_INT(put_id(cache, "a"), TK_OK);                    /* expires at 100 */
    CHECK_INT(client_cache_put_negative(cache, "n"), TK_OK); /* expires at 30 */

    test_now_ms = 29;
    CHECK_INT(client_cache_sweep(cache), 0);
    check_stats(cache, 0, 0, 0, 0, 0, 2);

    test_now_ms = 30;
    CHECK_INT(client_cache_sweep(cache), 1);
    check_stats(cache, 0, 0, 0, 0, 1, 1);

    test_now_ms = 50;
    CHECK_INT(put_id(cache, "b"), TK_OK);                    /* expires at 150 */
    CHECK_INT(client_cache_put_negative(cache, "m"), TK_OK); /* expires at 80 */
    test_now_ms = 79;
    CHECK_INT(client_cache_sweep(cache), 0);
    check_stats(cache, 0, 0, 0, 0, 1, 3);

    test_now_ms = 100;
    CHECK_INT(client_cache_sweep(cache), 2);
    check_stats(cache, 0, 0, 0, 0, 3, 1);
    CHECK_INT(client_cache_lookup(cache, "b", NULL), CLIENT_CACHE_HIT);
    CHECK_INT(client_cache_lookup(cache, "a", NULL), CLIENT_CACHE_MISS);
    CHECK_INT(client_cache_lookup(cache, "m", NULL), CLIENT_CACHE_MISS);
    check_stats(cache, 1, 2, 0, 0, 3, 1);

    test_now_ms = 1000;
    CHECK_INT(client_cache_sweep(cache), 1);
    CHECK_INT(client_cache_sweep(cache), 0);
    check_stats(cache, 1, 2, 0, 0, 4, 0);
    client_cache_destroy(cache);
}

/* ---- secrets ---- */

static void test_secret_memory(void)
{
    test_now_ms = 0;
    struct client_cache *cache = new_cache(4, 100, 100);
    struct client_cache_entry *entry = NULL;
    struct client_record record = make_record("alpha");
    CHECK_INT(client_cache_put(cache, &record, &entry), TK_OK);

    /* nothing remembered */
    CHECK(!client_cache_secret_matches(cache, entry, "s3cret-value"));
    CHECK(!client_cache_secret_matches(cache, entry, ""));
    CHECK(!client_cache_secret_matches(cache, NULL, "s3cret-value"));

    client_cache_remember_secret(cache, entry, "s3cret-value");
    CHECK(client_cache_secret_matches(cache, entry, "s3cret-value"));
    CHECK(!client_cache_secret_matches(cache, entry, "s3cret-valuf"));
    CHECK(!client_cache_secret_matches(cache, entry, "s3cret-valu"));   /* prefix */
    CHECK(!client_cache_secret_matches(cache, entry, "s3cret-value ")); /* extension */
    CHECK(!client_cache_secret_matches(cache, entry, ""));
    CHECK(!client_cache_secret_matches(cache, entry, NULL));

    /* Remembering another secret replaces the first. */
    client_cache_remember_secret(cache, entry, "other");
    CHECK(client_cache_secret_matches(cache, entry, "other"));
    CHECK(!client_cache_secret_matches(cache, entry, "s3cret-value"));

    /* An empty secret can be remembered and matches only itself. */
    client_cache_remember_secret(cache, entry, "");
    CHECK(client_cache_secret_matches(cache, entry, ""));
    CHECK(!client_cache_secret_matches(cache, entry, "other"));

    /* Remembering NULL forgets. */
    client_cache_remember_secret(cache, entry, NULL);
    CHECK(!client_cache_secret_matches(cache, entry, ""));

    /* Found again by lookup, the memory is still there. */
    client_cache_remember_secret(cache, entry, "s3cret-value");
    struct client_cache_entry *found = NULL;
    CHECK_INT(client_cache_lookup(cache, "alpha", &found), CLIENT_CACHE_HIT);
    CHECK(found == entry);
    CHECK(client_cache_secret_matches(cache, found, "s3cret-value"));

    /* A re-put forgets the secret. */
    CHECK_INT(client_cache_put(cache, &record, &entry), TK_OK);
    CHECK(!client_cache_secret_matches(cache, entry, "s3cret-value"));
    client_cache_destroy(cache);
}

static void test_secret_digest_is_per_cache(void)
{
    /* Two caches hold different HMAC keys: the same secret gives different
     * digests, yet each cache matches its own. */
    test_now_ms = 0;
    struct client_cache *cache_a = new_cache(2, 100, 100);
    struct client_cache *cache_b = new_cache(2, 100, 100);
    struct client_cache_entry *entry_a = NULL;
    struct client_cache_entry *entry_b = NULL;
    CHECK_INT(put_id(cache_a, "alpha"), TK_OK);
    CHECK_INT(put_id(cache_b, "alpha"), TK_OK);
    CHECK_INT(client_cache_lookup(cache_a, "alpha", &entry_a), CLIENT_CACHE_HIT);
    CHECK_INT(client_cache_lookup(cache_b, "alpha", &entry_b), CLIENT_CACHE_HIT);
    client_cache_remember_secret(cache_a, entry_a, "s3cret");
    client_cache_remember_secret(cache_b, entry_b, "s3cret");
    CHECK(client_cache_secret_matches(cache_a, entry_a, "s3cret"));
    CHECK(client_cache_secret_matches(cache_b, entry_b, "s3cret"));
    CHECK(!client_cache_secret_matches(cache_a, entry_b, "s3cret"));
    CHECK(!client_cache_secret_matches(cache_b, entry_a, "s3cret"));
    client_cache_destroy(cache_a);
    client_cache_destroy(cache_b);
}

/* ---- copies ---- */

static void test_deep_copy(void)
{
    test_now_ms = 0;
    struct client_cache *cache = new_cache(4, 100, 100);
    char *client_id = strdup("alpha");
    char *secret_hash = strdup("$pbkdf2-sha256$i=1$x$y");
    char *allowed = strdup("read write");
    char *defaults = strdup("read");
    char *audiences = strdup("aud1 aud2");
    struct client_record record = {
        .client_id = client_id,
        .secret_hash = secret_hash,
        .allowed_scopes = allowed,
        .default_scopes = defaults,
        .audiences = audiences,
        .token_ttl_s = 60,
        .enabled = false,
        .client_credentials_allowed = true,
    };
    CHECK_INT(client_cache_put(cache, &record, NULL), TK_OK);
    memset(client_id, 'X', strlen(client_id));
    memset(secret_hash, 'X', strlen(secret_hash));
    memset(allowed, 'X', strlen(allowed));
    memset(defaults, 'X', strlen(defaults));
    memset(audiences, 'X', strlen(audiences));
    free(client_id);
    free(secret_hash);
    free(allowed);
    free(defaults);
    free(audiences);
    record.token_ttl_s = 999;

    struct client_cache_entry *entry = NULL;
    CHECK_INT(client_cache_lookup(cache, "alpha", &entry), CLIENT_CACHE_HIT);
    const struct client_record *held = client_cache_entry_record(entry);
    CHECK(held != NULL);
    if (held != NULL) {
        CHECK_STR(held->client_id, "alpha");
        CHECK_STR(held->secret_hash, "$pbkdf2-sha256$i=1$x$y");
        CHECK_STR(held->allowed_scopes, "read write");
        CHECK_STR(held->default_scopes, "read");
        CHECK_STR(held->audiences, "aud1 aud2");
        CHECK_INT(held->token_ttl_s, 60);
        CHECK(!held->enabled);
        CHECK(held->client_credentials_allowed);
    }

    /* Empty strings stay empty, NULL optional strings stay NULL. */
    struct client_record sparse = {.client_id = "sparse", .allowed_scopes = "", .audiences = ""};
    CHECK_INT(client_cache_put(cache, &sparse, &entry), TK_OK);
    held = client_cache_entry_record(entry);
    CHECK_STR(held->client_id, "sparse");
    CHECK(held->secret_hash == NULL);
    CHECK_STR(held->allowed_scopes, "");
    CHECK(held->default_scopes == NULL);
    CHECK_STR(held->audiences, "");
    CHECK_INT(held->token_ttl_s, 0);

    /* The negative id is copied too. */
    char *ghost = strdup("ghost");
    CHECK_INT(client_cache_put_negative(cache, ghost), TK_OK);
    ghost[0] = 'h';
    free(ghost);
    CHECK_INT(client_cache_lookup(cache, "ghost", NULL), CLIENT_CACHE_NEGATIVE);
    CHECK_INT(client_cache_lookup(cache, "hhost", NULL), CLIENT_CACHE_MISS);
    client_cache_destroy(cache);
}

/* ---- volume and chains ---- */

static void test_many_entries(void)
{
    test_now_ms = 0;
    struct client_cache *cache = new_cache(1000, 1000000, 1000000);
    char id[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(id, sizeof(id), "client-%d", i);
        if (i % 7 == 0) {
            CHECK_INT(client_cache_put_negative(cache, id), TK_OK);
        } else {
            CHECK_INT(put_id(cache, id), TK_OK);
        }
    }
    check_stats(cache, 0, 0, 0, 9000, 0, 1000);
    /* Exactly the last 1000 survive. */
    int hits = 0, negatives = 0, misses = 0;
    for (int i = 0; i < 10000; i++) {
        snprintf(id, sizeof(id), "client-%d", i);
        enum client_cache_result result = client_cache_lookup(cache, id, NULL);
        if (i < 9000) {
            misses += result == CLIENT_CACHE_MISS;
        } else if (i % 7 == 0) {
            negatives += result == CLIENT_CACHE_NEGATIVE;
        } else {
            hits += result == CLIENT_CACHE_HIT;
        }
    }
    CHECK_INT(misses, 9000);
    CHECK_INT(negatives + hits, 1000);
    CHECK_INT(negatives, 143); /* multiples of 7 in 9000..9999 */
    check_stats(cache, 857, 9000, 143, 9000, 0, 1000);

    test_now_ms = 1000000;
    CHECK_INT(client_cache_sweep(cache), 1000);
    check_stats(cache, 857, 9000, 143, 9000, 1000, 0);
    client_cache_destroy(cache);
}

static void test_chains_in_small_tables(void)
{
    /* With 2..8 buckets and hundreds of ids, many lookups walk a chain of
     * several entries, and evictions unlink entries from chain middles. */
    char id[32];
    for (size_t max_entries = 1; max_entries <= 4; max_entries++) {
        test_now_ms = 0;
        struct client_cache *cache = new_cache(max_entries, 1000, 1000);
        for (int i = 0; i < 500; i++) {
            snprintf(id, sizeof(id), "id%d", i);
            CHECK_INT(put_id(cache, id), TK_OK);
            /* The newest max_entries ids are all there, with their own
             * records; looked up oldest first so the LRU order stays the
             * age order. */
            int oldest_back = i < (int)max_entries - 1 ? i : (int)max_entries - 1;
            for (int back = oldest_back; back >= 0; back--) {
                snprintf(id, sizeof(id), "id%d", i - back);
                struct client_cache_entry *entry = NULL;
                CHECK_INT(client_cache_lookup(cache, id, &entry), CLIENT_CACHE_HIT);
                if (entry != NULL) {
                    CHECK_STR(client_cache_entry_record(entry)->client_id, id);
                }
            }
            /* and the one just before them is gone */
            if (i >= (int)max_entries) {
                snprintf(id, sizeof(id), "id%d", i - (int)max_entries);
                CHECK_INT(client_cache_lookup(cache, id, NULL), CLIENT_CACHE_MISS);
            }
            /* Every so often remove one from inside a chain and put it back
             * (it becomes newest, which the next put does not mind). */
            if (i % 5 == 0 && i >= 1 && max_entries > 2) {
                snprintf(id, sizeof(id), "id%d", i - 1);
                CHECK(client_cache_remove(cache, id));
                CHECK_INT(client_cache_lookup(cache, id, NULL), CLIENT_CACHE_MISS);
                CHECK_INT(put_id(cache, id), TK_OK);
            }
        }
        const struct cache_stats *stats = client_cache_get_stats(cache);
        CHECK_INT(stats->size, max_entries);
        CHECK_INT(stats->evictions, 500 - max_entries);
        client_cache_destroy(cache);
    }
}

int main(void)
{
    RUN(test_siphash_reference_vectors);
    RUN(test_siphash_key_matters);
    RUN(test_invalid_options);
    RUN(test_default_clock);
    RUN(test_hit_miss_negative_counting);
    RUN(test_bad_put_arguments);
    RUN(test_ttl_boundary);
    RUN(test_negative_ttl);
    RUN(test_huge_ttl_does_not_overflow);
    RUN(test_lru_order);
    RUN(test_single_entry_cache);
    RUN(test_replacement);
    RUN(test_put_from_own_entry);
    RUN(test_remove);
    RUN(test_clear);
    RUN(test_sweep);
    RUN(test_secret_memory);
    RUN(test_secret_digest_is_per_cache);
    RUN(test_deep_copy);
    RUN(test_many_entries);
    RUN(test_chains_in_small_tables);
    return unit_test_finish();
}
