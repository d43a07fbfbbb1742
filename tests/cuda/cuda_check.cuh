/* Helpers shared by the CUDA tests: fresh random inputs, poisoned and guarded device buffers,
 * and a comparison that prints what a failure needs for diagnosis (op, shape, relative L2 error,
 * worst element, first NaN or unwritten element, first element out of tolerance).
 *
 * Inputs are drawn fresh on every run from a seed printed at the start (R1_TEST_SEED=<n>
 * repeats a run). Outputs are poisoned with NaN before a kernel writes them, so an element the
 * kernel never wrote fails as NaN; 256 guard bytes after each output catch writes past its end.
 * References are computed on the host in double from the same bf16-rounded inputs. */
#ifndef R1_TESTS_CUDA_CHECK_CUH
#define R1_TESTS_CUDA_CHECK_CUH

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "student/cuda/kernels.h"
#ifndef _Noreturn
#define _Noreturn __attribute__((noreturn))
#endif
extern "C" {
#include "core/dtype.h"
#include "core/error.h"
#include "core/hash.h"
}

static int g_failures, g_checks;
static uint64_t g_rng;

static inline void rng_seed_from_env(void) {
    const char *s = getenv("R1_TEST_SEED");
    g_rng = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)clock();
    printf("seed %llu (R1_TEST_SEED=%llu repeats this run)\n", (unsigned long long)g_rng,
           (unsigned long long)g_rng);
}
static inline uint64_t rng_next(void) { return hash_splitmix64(&g_rng); }
static inline double urand(void) { return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0); }
/* uniform in [-a, a) */
static inline float frand(float a) { return (float)((2.0 * urand() - 1.0) * a); }
static inline int irand(int n) { return (int)(rng_next() % (uint64_t)n); }

/* n bf16 values uniform in [-a, a); f (if not NULL) receives them as floats. */
static inline uint16_t *rand_bf16(size_t n, float a, float **f) {
    uint16_t *h = (uint16_t *)xmalloc(sizeof(uint16_t) * (n ? n : 1));
    float *v = f ? (float *)xmalloc(sizeof(float) * (n ? n : 1)) : NULL;
    for (size_t i = 0; i < n; i++) {
        h[i] = f32_to_bf16(frand(a));
        if (v) v[i] = bf16_to_f32(h[i]);
    }
    if (f) *f = v;
    return h;
}
static inline float *rand_f32(size_t n, float a) {
    float *v = (float *)xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = frand(a);
    return v;
}

/* ---- device buffers ------------------------------------------------------------------------- */

enum { GUARD = 256 };

/* bytes of device memory, NaN-poisoned (all bits set), followed by GUARD bytes of 0xA5 */
static inline void *dev_poison(size_t bytes) {
    void *p;
    R1_CUDA_CHECK(cudaMalloc(&p, bytes + GUARD));
    R1_CUDA_CHECK(cudaMemset(p, 0xFF, bytes));
    R1_CUDA_CHECK(cudaMemset((char *)p + bytes, 0xA5, GUARD));
    return p;
}
static inline void *dev_upload(const void *h, size_t bytes) {
    void *p = dev_poison(bytes);
    R1_CUDA_CHECK(cudaMemcpy(p, h, bytes, cudaMemcpyHostToDevice));
    return p;
}
/* Fails the check if the guard after `bytes` was written. */
static inline int guard_ok(const char *op, const void *p, size_t bytes) {
    unsigned char g[GUARD];
    R1_CUDA_CHECK(cudaMemcpy(g, (const char *)p + bytes, GUARD, cudaMemcpyDeviceToHost));
    for (int i = 0; i < GUARD; i++)
        if (g[i] != 0xA5) {
            printf("  FAIL %s: wrote past the end of its output (guard byte %d is 0x%02x)\n", op, i,
                   g[i]);
            g_failures++;
            return 0;
        }
    return 1;
}
static inline float *download_bf16(const void *d, size_t n) {
    uint16_t *h = (uint16_t *)xmalloc(sizeof(uint16_t) * (n ? n : 1));
    R1_CUDA_CHECK(cudaMemcpy(h, d, sizeof(uint16_t) * n, cudaMemcpyDeviceToHost));
    float *f = (float *)xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) f[i] = bf16_to_f32(h[i]);
    free(h);
    return f;
}
static inline float *download_f32(const void *d, size_t n) {
    float *f = (float *)xmalloc(sizeof(float) * (n ? n : 1));
    R1_CUDA_CHECK(cudaMemcpy(f, d, sizeof(float) * n, cudaMemcpyDeviceToHost));
    return f;
}
static inline float *download(const void *d, size_t n, int f32) {
    return f32 ? download_f32(d, n) : download_bf16(d, n);
}
static inline void sync_check(const char *what) {
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        printf("  FAIL %s: the device reported %s (a kernel faulted)\n", what, cudaGetErrorString(e));
        exit(1);
    }
}

/* ---- comparison ----------------------------------------------------------------------------- */

/* Passes when there is no NaN, ||got - want|| / ||want|| <= tol, and every element is within
 * 16 tol (|want| + rms(want)) of its reference (a local error the L2 norm would average away).
 * cols > 0 prints indices as (row, col). */
static inline int compare(const char *op, const char *shape, const float *got, const double *want,
                   size_t n, int cols, double tol) {
    g_checks++;
    double num = 0, den = 0, maxerr = 0;
    size_t imax = 0, first_nan = (size_t)-1, first_bad = (size_t)-1, nbad = 0, nnan = 0;
    for (size_t i = 0; i < n; i++) den += want[i] * want[i];
    const double rms = n ? sqrt(den / (double)n) : 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)got[i] - want[i];
        if (isnan(got[i]) || isinf(got[i])) {
            if (nnan++ == 0) first_nan = i;
            continue;
        }
        num += d * d;
        if (fabs(d) > maxerr) {
            maxerr = fabs(d);
            imax = i;
        }
        if (!(fabs(d) <= 16 * tol * (fabs(want[i]) + rms))) {
            if (nbad++ == 0) first_bad = i;
        }
    }
    const double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    const int ok = nnan == 0 && rel <= tol && nbad == 0;
    char at[64] = "";
    if (cols > 0)
        snprintf(at, sizeof at, " (row %zu, col %zu)", imax / (size_t)cols, imax % (size_t)cols);
    printf("  %s %-26s %-44s rel_l2 %.2e (tol %.0e)  max_err %.3e at %zu%s\n", ok ? "ok  " : "FAIL",
           op, shape, rel, tol, maxerr, imax, at);
    if (nnan)
        printf("       %zu NaN/inf (unwritten or overflow); first at %zu%s\n", nnan, first_nan,
               cols > 0 ? "" : "");
    if (nnan && cols > 0)
        printf("       first NaN at (row %zu, col %zu)\n", first_nan / (size_t)cols,
               first_nan % (size_t)cols);
    if (nbad) {
        const size_t b = first_bad;
        printf("       %zu elements out of tolerance; first at %zu", nbad, b);
        if (cols > 0) printf(" (row %zu, col %zu)", b / (size_t)cols, b % (size_t)cols);
        printf(": got %.6g want %.6g\n", (double)got[b], want[b]);
    }
    if (!ok) g_failures++;
    return ok;
}

/* Bitwise equality of two device results; ok and fail say what equality means here. */
static inline int equal_bits(const char *op, const char *shape, const void *a, const void *b,
                             size_t bytes, const char *ok_says, const char *fail_says) {
    g_checks++;
    unsigned char *x = (unsigned char *)xmalloc(bytes), *y = (unsigned char *)xmalloc(bytes);
    R1_CUDA_CHECK(cudaMemcpy(x, a, bytes, cudaMemcpyDeviceToHost));
    R1_CUDA_CHECK(cudaMemcpy(y, b, bytes, cudaMemcpyDeviceToHost));
    size_t i = 0;
    while (i < bytes && x[i] == y[i]) i++;
    const int ok = i == bytes;
    printf("  %s %-26s %-44s %s\n", ok ? "ok  " : "FAIL", op, shape, ok ? ok_says : fail_says);
    if (!ok) {
        printf("       first differing byte %zu of %zu\n", i, bytes);
        g_failures++;
    }
    free(x);
    free(y);
    return ok;
}

/* The determinism checks: a second run gives the first one's bits. */
static inline int same_bits(const char *op, const char *shape, const void *a, const void *b,
                     size_t bytes) {
    return equal_bits(op, shape, a, b, bytes, "bit-identical on a second run",
                      "differs between two runs");
}

static inline double *dvec(size_t n) { return (double *)xcalloc(n ? n : 1, sizeof(double)); }

#endif
