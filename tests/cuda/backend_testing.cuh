/* What the CUDA inference tests (test_backend_cuda, test_deepseek_cuda) share: fresh random
 * inputs from a printed seed, the CPU backend and the GPU backend in both modes, device buffers
 * to and from host vectors, host weights in any dtype with their GPU copies, and models.
 *
 * Include inside nothing (it is C++); it includes the C headers it needs. */
#ifndef R1_TESTS_CUDA_BACKEND_TESTING_CUH
#define R1_TESTS_CUDA_BACKEND_TESTING_CUH

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

extern "C" {
#include "core/backend.h"
#include "core/backend_cuda.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/hash.h"
#include "teacher/teacher.h"
#include "tests/unit/testing.h"
}

/* ---- randomness ------------------------------------------------------------------------------ */

static uint64_t rng_state;
static uint64_t rng_next(void) { return hash_splitmix64(&rng_state); }
static float rng_uniform(void) { return (float)((rng_next() >> 40) * 0x1p-24); } /* [0, 1) */
static float rng_normal(void) {
    float u = rng_uniform() + 0x1p-25f, v = rng_uniform();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}
static std::vector<float> randn(size_t n, float scale) {
    std::vector<float> v(n);
    for (auto &x : v) x = rng_normal() * scale;
    return v;
}

/* ---- the backends ---------------------------------------------------------------------------- */

static backend *cpu;
static backend *gpus[2]; /* [BACKEND_CUDA_FP32], [BACKEND_CUDA_BF16] */
static const char *mode_names[2] = {"fp32", "bf16"};

/* Seeds the inputs and opens the backends; 0, or 1 (said on stderr) without a usable GPU. */
static int open_backends(const char *test) {
    rng_state = testing_seed();
    cpu = backend_cpu();
    for (int mode = 0; mode < 2; mode++) {
        gpus[mode] = backend_cuda(0, mode);
        if (!gpus[mode]) {
            err_print();
            fprintf(stderr, "%s needs a Hopper GPU\n", test);
            return 1;
        }
    }
    return 0;
}

static void *dev_put(backend *be, const void *host, size_t bytes) {
    void *d = be->alloc(be, bytes);
    be->upload(be, d, host, bytes);
    return d;
}
static std::vector<float> dev_get(backend *be, const float *d, size_t n) {
    std::vector<float> h(n);
    be->download(be, h.data(), d, sizeof(float) * n);
    return h;
}

/* ---- weights --------------------------------------------------------------------------------- */

/* A host weight with its own storage, in dtype dt (values rounded to it); FP8 with scales of
 * block x block blocks (16 unless said: small shapes then have several). */
struct host_weight {
    weight w;
    std::vector<uint8_t> bytes;
    std::vector<float> scales;
};
static host_weight make_weight(int64_t rows, int64_t cols, dtype dt, float scale,
                               int block = 16) {
    host_weight h;
    memset(&h.w, 0, sizeof h.w);
    std::vector<float> f = randn((size_t)(rows * cols), dt == DTYPE_F8_E4M3 ? 100.0f : scale);
    h.bytes.resize(f.size() * dtype_size(dt));
    dtype_from_f32(h.bytes.data(), f.data(), dt, f.size());
    if (dt == DTYPE_F8_E4M3) {
        h.scales.resize((size_t)(((rows + block - 1) / block) * ((cols + block - 1) / block)));
        for (auto &v : h.scales) v = scale / 100.0f * (0.5f + rng_uniform());
        h.w.scale_inv = h.scales.data();
        h.w.block_rows = block;
        h.w.block_cols = block;
    }
    h.w.dt = dt;
    h.w.rows = rows;
    h.w.cols = cols;
    h.w.data = h.bytes.data();
    return h;
}
/* h's weight on backend be (a failure ends the test: nothing after it could run). */
static weight upload_copy(backend *be, const host_weight &h) {
    weight w = h.w;
    if (be->upload_weight(be, &w)) {
        err_print();
        exit(1);
    }
    return w;
}

/* The model in dir on backend be (a failure ends the test). */
static teacher_model *open_model(const char *dir, backend *be) {
    teacher_model *m = NULL;
    if (teacher_open(&m, dir, be)) {
        err_print();
        exit(1);
    }
    return m;
}

#endif
