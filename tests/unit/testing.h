/* A minimal test harness: each test binary is a list of functions, each failed expectation is
 * printed with file and line, and the binary exits non-zero if any failed. */
#ifndef R1_TESTS_TESTING_H
#define R1_TESTS_TESTING_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int testing_failures;
static const char *testing_current;

#define EXPECT(cond)                                                                         \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "  FAIL %s (%s:%d): %s\n", testing_current, __FILE__, __LINE__,  \
                    #cond);                                                                  \
            testing_failures++;                                                              \
        }                                                                                    \
    } while (0)

#define EXPECT_MSG(cond, ...)                                                                \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "  FAIL %s (%s:%d): %s: ", testing_current, __FILE__, __LINE__,  \
                    #cond);                                                                  \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, "\n");                                                           \
            testing_failures++;                                                              \
        }                                                                                    \
    } while (0)

#define EXPECT_EQ_INT(a, b)                                                                  \
    EXPECT_MSG((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a), (long long)(b))

#define EXPECT_STREQ(a, b)                                                                   \
    EXPECT_MSG(strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a), (b))

#define EXPECT_NEAR(a, b, tol)                                                               \
    EXPECT_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %g)", (double)(a), \
               (double)(b), (double)(tol))

#define RUN(fn)                                                                              \
    do {                                                                                     \
        testing_current = #fn;                                                               \
        int before_ = testing_failures;                                                      \
        fn();                                                                                \
        fprintf(stderr, "  %s %s\n", testing_failures == before_ ? "ok  " : "FAIL", #fn);    \
    } while (0)

/* RUN with the name printed first, so that an error that exits (a fatal CUDA error) shows
 * which test it was in. */
#define RUN_NAMED(fn)                                                                        \
    do {                                                                                     \
        fprintf(stderr, "  ... %s\n", #fn);                                                  \
        RUN(fn);                                                                             \
    } while (0)

#define TESTS_DONE() return testing_failures ? 1 : 0

/* The seed of a test's fresh random inputs: R1_TEST_SEED, else the clock. Printed, so that a
 * failing run can be repeated. */
static inline uint64_t testing_seed(void) {
    const char *s = getenv("R1_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    fprintf(stderr, "  seed %llu (R1_TEST_SEED=%llu repeats this run)\n", (unsigned long long)seed,
            (unsigned long long)seed);
    return seed;
}

/* Relative L2 error ||a - b|| / ||b||. */
static inline double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

#endif
