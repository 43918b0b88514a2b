/*
 * unit_test.h - the few macros tokend's C unit tests use. Each test file is
 * its own program: it RUNs its test functions and returns
 * unit_test_finish(), which prints "N passed, N failed" and exits non-zero
 * when any check failed. A failing check prints file:line and the values.
 */
#ifndef TOKEND_UNIT_TEST_H
#define TOKEND_UNIT_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int unit_checks_failed;
static int unit_tests_passed;
static int unit_tests_failed;
static int unit_current_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);               \
            unit_checks_failed++;                                                                  \
            unit_current_failed = 1;                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(actual, expected)                                                                \
    do {                                                                                           \
        long long unit_a_ = (long long)(actual), unit_e_ = (long long)(expected);                  \
        if (unit_a_ != unit_e_) {                                                                  \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__,        \
                    #actual, unit_a_, #expected, unit_e_);                                         \
            unit_checks_failed++;                                                                  \
            unit_current_failed = 1;                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_STR(actual, expected)                                                                \
    do {                                                                                           \
        const char *unit_a_ = (actual), *unit_e_ = (expected);                                     \
        if (unit_a_ == NULL || unit_e_ == NULL ? unit_a_ != unit_e_                                \
                                               : strcmp(unit_a_, unit_e_) != 0) {                  \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #actual, \
                    unit_a_ ? unit_a_ : "(null)", unit_e_ ? unit_e_ : "(null)");                   \
            unit_checks_failed++;                                                                  \
            unit_current_failed = 1;                                                               \
        }                                                                                          \
    } while (0)

#define RUN(test_function)                                                                         \
    do {                                                                                           \
        unit_current_failed = 0;                                                                   \
        test_function();                                                                           \
        if (unit_current_failed) {                                                                 \
            unit_tests_failed++;                                                                   \
            printf("not ok - %s\n", #test_function);                                               \
        } else {                                                                                   \
            unit_tests_passed++;                                                                   \
            printf("ok - %s\n", #test_function);                                                   \
        }                                                                                          \
    } while (0)

static inline int unit_test_finish(void)
{
    printf("%d passed, %d failed\n", unit_tests_passed, unit_tests_failed);
    return unit_tests_failed == 0 && unit_checks_failed == 0 ? 0 : 1;
}

#endif
