/*
 * test_secret_hash.c - secret generation, the stored hash format, PBKDF2
 * known answers, and strict rejection of every malformed stored hash.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "tokend/base64.h"
#include "tokend/secret_hash.h"
#include "tokend/status.h"
#include "unit_test.h"

#define PREFIX "pbkdf2-sha256$"

/*
 * Known answers. RFC 7914 §11 gives PBKDF2-HMAC-SHA256 vectors, but with
 * 4-byte salts ("salt", "NaCl") that the stored format rejects (the salt must
 * be 16 bytes), and the first one also uses c=1, below the minimum. So the
 * RFC vector is used as a format check (it must be TK_INVALID), and the
 * answers the verifier must accept were computed with two independent
 * implementations, which agree with each other and, for the RFC inputs, with
 * the RFC's own output 4ddcd8f6...6b34ab56:
 *   python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha256', b'Password',
 *       bytes(range(16)), 80000, 32).hex())"
 *   openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt pass:Password
 *       -kdfopt hexsalt:000102030405060708090a0b0c0d0e0f -kdfopt iter:80000 PBKDF2
 *   -> dcbc5570822a10a88ae3e18f15e9a33638affc01ad3e83d8eda6de0b8b14b24f
 * and for P="correct horse battery staple", salt 16 x 0xff, c=1000:
 *   -> 865928369fe32cdc68cae77dd429b60ab3542a55111bcc64554343807ec4324e
 */
#define KAT1_SALT "AAECAwQFBgcICQoLDA0ODw"
#define KAT1_KEY  "3LxVcIIqEKiK4-GPFemjNjiv_AGtPoPY7abeC4sUsk8"
#define KAT1      PREFIX "80000$" KAT1_SALT "$" KAT1_KEY
#define KAT2_SALT "_____________________w"
#define KAT2_KEY  "hlkoNp_jLNxoyud91Cm2CrNUKlURG8xkVUNDgH7EMk4"
#define KAT2      PREFIX "1000$" KAT2_SALT "$" KAT2_KEY
#define KAT2_PASS "correct horse battery staple"

static bool is_base64url(const char *text)
{
    return text[strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")] ==
           '\0';
}

static void test_generate(void)
{
    char first[SECRET_GENERATED_SIZE];
    char second[SECRET_GENERATED_SIZE];
    uint8_t decoded[32];

    CHECK_INT(secret_generate(first), TK_OK);
    CHECK_INT(secret_generate(second), TK_OK);
    CHECK_INT(strlen(first), 43);
    CHECK_INT(strlen(second), 43);
    CHECK(is_base64url(first));
    CHECK(is_base64url(second));
    CHECK(strcmp(first, second) != 0);
    CHECK_INT(base64url_decode(first, strlen(first), decoded, sizeof(decoded)), 32);
}

/* Checks the shape of a freshly made hash: prefix, iterations, field sizes. */
static void check_hash_shape(const char *hash, const char *expected_head)
{
    size_t head_len = strlen(expected_head);
    CHECK(strncmp(hash, expected_head, head_len) == 0);
    CHECK_INT(strlen(hash), head_len + 22 + 1 + 43);
    if (strlen(hash) == head_len + 22 + 1 + 43) {
        CHECK_INT(hash[head_len + 22], '$');
        char salt[23];
        memcpy(salt, hash + head_len, 22);
        salt[22] = '\0';
        CHECK(is_base64url(salt));
        CHECK(is_base64url(hash + head_len + 23));
    }
}

static void test_round_trip(void)
{
    const char *secret = "s3cr3t-value_with.some~chars";
    char hash[SECRET_HASH_MAX_LEN];

    CHECK_INT(secret_hash_create(secret, SECRET_HASH_DEFAULT_ITERATIONS, hash), TK_OK);
    check_hash_shape(hash, PREFIX "10000$");
    CHECK_INT(secret_hash_verify(secret, hash), TK_OK);

    /* A generated secret round-trips too. */
    char generated[SECRET_GENERATED_SIZE];
    CHECK_INT(secret_generate(generated), TK_OK);
    CHECK_INT(secret_hash_create(generated, SECRET_HASH_MIN_ITERATIONS, hash), TK_OK);
    check_hash_shape(hash, PREFIX "1000$");
    CHECK_INT(secret_hash_verify(generated, hash), TK_OK);

    /* So does an empty secret: hashing does not judge secret policy. */
    CHECK_INT(secret_hash_create("", SECRET_HASH_MIN_ITERATIONS, hash), TK_OK);
    CHECK_INT(secret_hash_verify("", hash), TK_OK);
    CHECK_INT(secret_hash_verify("x", hash), TK_DECLINED);
}

static void test_wrong_secrets(void)
{
    const char *secret = "correct-secret-0123456789";
    char hash[SECRET_HASH_MAX_LEN];

    CHECK_INT(secret_hash_create(secret, SECRET_HASH_MIN_ITERATIONS, hash), TK_OK);
    CHECK_INT(secret_hash_verify(secret, hash), TK_OK);
    CHECK_INT(secret_hash_verify("some-other-secret", hash), TK_DECLINED);
    CHECK_INT(secret_hash_verify("correct-secret-0123456788", hash), TK_DECLINED);
    CHECK_INT(secret_hash_verify("Correct-secret-0123456789", hash), TK_DECLINED);
    CHECK_INT(secret_hash_verify("correct-secret-012345678", hash), TK_DECLINED);
    CHECK_INT(secret_hash_verify("correct", hash), TK_DECLINED);
    CHECK_INT(secret_hash_verify("correct-secret-01234567890", hash), TK_DECLINED);
    CHECK_INT(secret_hash_verify("", hash), TK_DECLINED);
    CHECK_INT(secret_hash_verify(NULL, hash), TK_INVALID);
}

static void test_salts_differ(void)
{
    char first[SECRET_HASH_MAX_LEN];
    char second[SECRET_HASH_MAX_LEN];

    CHECK_INT(secret_hash_create("same", SECRET_HASH_MIN_ITERATIONS, first), TK_OK);
    CHECK_INT(secret_hash_create("same", SECRET_HASH_MIN_ITERATIONS, second), TK_OK);
    CHECK(strcmp(first, second) != 0);
    /* The salt fields themselves differ, not just the keys. */
    CHECK(strncmp(first, second, strlen(PREFIX "1000$") + 22) != 0);
    CHECK_INT(secret_hash_verify("same", first), TK_OK);
    CHECK_INT(secret_hash_verify("same", second), TK_OK);
}

static void test_known_answers(void)
{
    CHECK_INT(secret_hash_verify("Password", KAT1), TK_OK);
    CHECK_INT(secret_hash_verify("password", KAT1), TK_DECLINED);
    CHECK_INT(secret_hash_verify(KAT2_PASS, KAT2), TK_OK);
    CHECK_INT(secret_hash_verify("correct horse battery stapl", KAT2), TK_DECLINED);
    CHECK_INT(secret_hash_verify("Password", KAT2), TK_DECLINED);

    /* Same salt and key, other iteration count: a different derived key. */
    CHECK_INT(secret_hash_verify("Password", PREFIX "80001$" KAT1_SALT "$" KAT1_KEY), TK_DECLINED);
    CHECK_INT(secret_hash_verify("Password", PREFIX "79999$" KAT1_SALT "$" KAT1_KEY), TK_DECLINED);
    /* One bit of the salt flipped (A=0 -> B=1 in the first sextet). */
    CHECK_INT(secret_hash_verify("Password", PREFIX "80000$BAECAwQFBgcICQoLDA0ODw$" KAT1_KEY),
              TK_DECLINED);
    /* Last byte of the key changed (...sUsk8 -> ...sUsk4: 0x4f -> 0x4e). */
    CHECK_INT(secret_hash_verify("Password", PREFIX "80000$" KAT1_SALT
                                                    "$3LxVcIIqEKiK4-GPFemjNjiv_AGtPoPY7abeC4sUsk4"),
              TK_DECLINED);

    /* RFC 7914 §11 vectors: right key, but 4-byte salts (and c=1) the stored
     * format does not allow. */
    CHECK_INT(secret_hash_verify("Password", PREFIX "80000$TmFDbA$"
                                                    "TdzY9guYviGDDO5e8icB-WQaRBjQTAQUrv8Ih2s0q1Y"),
              TK_INVALID);
    CHECK_INT(secret_hash_verify("passwd", PREFIX "1$c2FsdA$"
                                                  "VawEblbjCJ_sFpHCJUS2BflBhSFt3gRl5oudV8INrLw"),
              TK_INVALID);
}

static void test_create_iterations(void)
{
    char hash[SECRET_HASH_MAX_LEN];
    static const unsigned bad_iterations[] = {0, 1, 999, SECRET_HASH_MAX_ITERATIONS + 1,
                                              4294967295u};

    for (size_t i = 0; i < sizeof(bad_iterations) / sizeof(bad_iterations[0]); i++) {
        memcpy(hash, "garbage", 8);
        CHECK_INT(secret_hash_create("secret", bad_iterations[i], hash), TK_INVALID);
        CHECK_STR(hash, "");
    }
    memcpy(hash, "garbage", 8);
    CHECK_INT(secret_hash_create(NULL, SECRET_HASH_DEFAULT_ITERATIONS, hash), TK_INVALID);
    CHECK_STR(hash, "");

    CHECK_INT(secret_hash_create("secret", 1000, hash), TK_OK);
    check_hash_shape(hash, PREFIX "1000$");
    CHECK_INT(secret_hash_verify("secret", hash), TK_OK);
    CHECK_INT(secret_hash_create("secret", 1001, hash), TK_OK);
    check_hash_shape(hash, PREFIX "1001$");
    CHECK_INT(secret_hash_verify("secret", hash), TK_OK);
}

/* The upper bound itself is accepted (about 2 s of PBKDF2, run once). */
static void test_verify_max_iterations(void)
{
    CHECK_INT(secret_hash_verify(KAT2_PASS, PREFIX "10000000$" KAT2_SALT "$" KAT2_KEY),
              TK_DECLINED);
}

static void test_malformed(void)
{
    /* Each is KAT2 with one defect, checked with KAT2's own password so that
     * a lenient parser that computed anyway would answer TK_OK. */
    static const char *const malformed[] = {
        /* prefix */
        "",
        "pbkdf2-sha256",
        "pbkdf2-sha256$",
        "pbkdf2-sha1$1000$" KAT2_SALT "$" KAT2_KEY,
        "pbkdf2_sha256$1000$" KAT2_SALT "$" KAT2_KEY,
        "PBKDF2-SHA256$1000$" KAT2_SALT "$" KAT2_KEY,
        " pbkdf2-sha256$1000$" KAT2_SALT "$" KAT2_KEY,
        "$pbkdf2-sha256$1000$" KAT2_SALT "$" KAT2_KEY,
        "1000$" KAT2_SALT "$" KAT2_KEY,
        /* missing fields */
        PREFIX "1000",
        PREFIX "1000$",
        PREFIX "1000$" KAT2_SALT,
        PREFIX "1000$" KAT2_SALT "$",
        PREFIX "1000$$" KAT2_KEY,
        PREFIX "$" KAT2_SALT "$" KAT2_KEY,
        PREFIX KAT2_SALT "$" KAT2_KEY,
        PREFIX "1000$" KAT2_KEY,
        /* extra fields */
        KAT2 "$",
        KAT2 "$x",
        KAT2 "$" KAT2_KEY,
        PREFIX "1000$1000$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "1000$" KAT2_SALT "$" KAT2_SALT "$" KAT2_KEY,
        /* iterations */
        PREFIX "0$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "1$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "999$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "10000001$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "99999999$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "01000$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "001000$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "-5$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "-1000$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "+1000$" KAT2_SALT "$" KAT2_KEY,
        PREFIX " 1000$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "1000 $" KAT2_SALT "$" KAT2_KEY,
        PREFIX "abc$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "1000a$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "1e3$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "0x3e8$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "1000.0$" KAT2_SALT "$" KAT2_KEY,
        /* 2^32 + 1000 and 2^64 + 1000: wrap to 1000 if parsed with overflow */
        PREFIX "4294968296$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "18446744073709552616$" KAT2_SALT "$" KAT2_KEY,
        PREFIX "99999999999999999999999999999999$" KAT2_SALT "$" KAT2_KEY,
        /* bad base64url */
        PREFIX "1000$////////////////////w$" KAT2_KEY,
        PREFIX "1000$" KAT2_SALT "$hlkoNp/jLNxoyud91Cm2CrNUKlURG8xkVUNDgH7EMk4",
        PREFIX "1000$" KAT2_SALT "$hlkoNp_jLNxoyud91Cm2CrNUKlURG8xkVUNDgH7EM+4",
        PREFIX "1000$" KAT2_SALT "$hlkoNp_jLNxoyud91Cm2CrNUKlURG8xkVUNDgH7EMk*",
        PREFIX "1000$" KAT2_SALT "$hlkoNp_jLNxoyud91Cm2CrNUKlURG8xkVUNDgH7EM k",
        PREFIX "1000$_____________________*$" KAT2_KEY,
        PREFIX "1000$_____________________w==$" KAT2_KEY,
        PREFIX "1000$" KAT2_SALT "$" KAT2_KEY "=",
        /* non-zero trailing bits: same bytes, non-canonical spelling */
        PREFIX "1000$_____________________x$" KAT2_KEY,
        PREFIX "1000$" KAT2_SALT "$hlkoNp_jLNxoyud91Cm2CrNUKlURG8xkVUNDgH7EMk5",
        /* salt of the wrong length: 15, 17 and 4 bytes, and 21 chars (no length) */
        PREFIX "1000$____________________$" KAT2_KEY,
        PREFIX "1000$______________________8$" KAT2_KEY,
        PREFIX "1000$TmFDbA$" KAT2_KEY,
        PREFIX "1000$____________________w$" KAT2_KEY,
        /* key of the wrong length: 31, 33 and 64 bytes, and 45 chars (no length) */
        PREFIX "1000$" KAT2_SALT "$hlkoNp_jLNxoyud91Cm2CrNUKlURG8xkVUNDgH7EMg",
        PREFIX "1000$" KAT2_SALT "$" KAT2_KEY "A",
        PREFIX "1000$" KAT2_SALT "$hlkoNp_jLNxoyud91Cm2CrNUKlURG8xkVUNDgH7EMk6GWSg2n-Ms3GjK533"
               "UKbYKs1QqVREbzGRVQ0OAfsQyTg",
        PREFIX "1000$" KAT2_SALT "$" KAT2_KEY "AA",
        /* trailing bytes */
        KAT2 " ",
        KAT2 "\n",
        /* longer than SECRET_HASH_MAX_LEN */
        KAT2 "$" KAT2 "$" KAT2,
    };

    /* The unmodified base is good, so each failure below is its defect's. */
    CHECK_INT(secret_hash_verify(KAT2_PASS, KAT2), TK_OK);
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        int rc = secret_hash_verify(KAT2_PASS, malformed[i]);
        if (rc != TK_INVALID) {
            fprintf(stderr, "  malformed[%zu] = \"%s\"\n", i, malformed[i]);
        }
        CHECK_INT(rc, TK_INVALID);
    }
    CHECK_INT(secret_hash_verify(KAT2_PASS, NULL), TK_INVALID);
}

int main(void)
{
    RUN(test_generate);
    RUN(test_round_trip);
    RUN(test_wrong_secrets);
    RUN(test_salts_differ);
    RUN(test_known_answers);
    RUN(test_create_iterations);
    RUN(test_verify_max_iterations);
    RUN(test_malformed);
    return unit_test_finish();
}
