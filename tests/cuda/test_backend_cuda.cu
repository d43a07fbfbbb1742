/* The CUDA backend against the CPU backend (the reference), op by op and as a whole model.
 *
 * Every op (the DeepSeek MLA and MoE data-movement ops too) runs on fresh random inputs (the seed is printed; R1_TEST_SEED=N repeats a run) in
 * both modes, with its output poisoned (NaN) first so that an element the op fails to write is
 * reported by index. Tolerances are relative L2 errors ||gpu - cpu|| / ||cpu||:
 *   exact (0)   copies and conversions: embed, gather_rows, add, kv_store, argmax, zero,
 *               copy_strided, scatter_add_rows (the CPU's order and rounding)
 *   1e-5        float32 arithmetic in another order: rmsnorm, rope, swiglu, attention (bf16
 *               caches are rounded the same way for the CPU, so the arithmetic is what is
 *               compared), linear in fp32 mode and bf16-mode GEMV on bf16 weights
 *               mla_q_absorb/v_up/attention on bf16 and FP8 weights
 *   1e-2        bf16 rounding of activations or float32 weights (bf16-mode cuBLASLt path)
 * rope_store_kv equals its four separate ops bit for bit; the skinny tensor-core kernel on BF16
 * weights (opt-in) gives the CPU's values and a token the same bits whatever the batch.
 * The whole dense forward on tests/fixtures/{qwen2-tied,llama3-bf16}: fp32 mode within 1e-5 of
 * the CPU and 1e-4 of transformers with transformers' argmax; both modes give the CPU's argmax
 * wherever the CPU's top-2 margin exceeds 4x the row's largest error; bf16 mode is within 3e-2
 * of the CPU; incremental
 * decoding equals the full forward; 32 greedy tokens equal the CPU's in fp32 mode; replayed
 * CUDA graphs give bit-identical logits to eager runs; device argmax equals host argmax.
 * Failures print the op, its shape, the error, the worst element and the first unwritten one. */
#include <algorithm>
#include <vector>

#include "tests/cuda/backend_testing.cuh"
extern "C" {
#include "core/rope.h"
#include "teacher/teacher.h"
#include "tests/unit/fixture.h"
}

static int rng_int(int n) { return (int)(rng_next() % (uint64_t)n); }

static float *dev_floats(backend *be, const std::vector<float> &h) {
    return (float *)dev_put(be, h.data(), sizeof(float) * h.size());
}
static int *dev_ints(backend *be, const std::vector<int> &h) {
    return (int *)dev_put(be, h.data(), sizeof(int) * h.size());
}
static float *dev_poisoned(backend *be, size_t n) {
    std::vector<uint32_t> nan(n, 0x7fc0deadu);
    return (float *)dev_put(be, nan.data(), sizeof(float) * n);
}

/* ---- comparison with diagnostics --------------------------------------------------------- */

static double worst_seen[2][16];
static const char *worst_name[16];
static int n_worst;

static void note_worst(int mode, const char *op, double e) {
    int k = 0;
    while (k < n_worst && strcmp(worst_name[k], op) != 0) k++;
    if (k == n_worst && n_worst < 16) worst_name[n_worst++] = op;
    if (k < 16 && e > worst_seen[mode][k]) worst_seen[mode][k] = e;
}

/* got vs want over n elements; a NaN in got where want is a number is an unwritten element. */
static int check_close(int mode, const char *op, const char *shape, const float *got,
                       const float *want, size_t n, double tol) {
    double num = 0, den = 0, maxerr = 0;
    size_t maxi = 0;
    long first_nan = -1, n_nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) && !isnan(want[i])) {
            if (first_nan < 0) first_nan = (long)i;
            n_nan++;
            continue;
        }
        if (isnan(want[i])) continue;
        const double d = (double)got[i] - (double)want[i];
        num += d * d;
        den += (double)want[i] * want[i];
        if (fabs(d) > maxerr) maxerr = fabs(d), maxi = i;
    }
    const double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    const int ok = n_nan == 0 && rel <= tol;
    note_worst(mode, op, rel);
    if (!ok) {
        fprintf(stderr, "  FAIL %s [%s] %s: rel L2 %.3g (tol %.1g), max |err| %.3g at %zu (got "
                        "%.9g, want %.9g)",
                op, mode_names[mode], shape, rel, tol, maxerr, maxi, got[maxi], want[maxi]);
        if (n_nan)
            fprintf(stderr, "; %ld of %zu elements unwritten or NaN, first at %ld", n_nan, n,
                    first_nan);
        fprintf(stderr, "\n");
        testing_failures++;
    }
    return ok;
}

/* ---- ops ------------------------------------------------------------------------------------ */

static void test_embed(void) {
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        for (dtype dt : {DTYPE_BF16, DTYPE_F32, DTYPE_F16}) {
            const int V = 300, D = 72, n = 9;
            host_weight hw = make_weight(V, D, dt, 1.0f);
            weight gw = upload_copy(g, hw);
            std::vector<int> ids(n);
            for (auto &id : ids) id = rng_int(V);
            ids[0] = V - 1;
            std::vector<float> want((size_t)n * D);
            cpu->embed(cpu, want.data(), &hw.w, ids.data(), n);
            int *dids = dev_ints(g, ids);
            float *out = dev_poisoned(g, want.size());
            g->embed(g, out, &gw, dids, n);
            std::vector<float> got = dev_get(g, out, want.size());
            char shape[64];
            snprintf(shape, sizeof shape, "[%d x %d] %s table, %d ids", V, D, dtype_name(dt), n);
            /* bf16 storage rounds float32 (and f16) tables */
            check_close(mode, "embed", shape, got.data(), want.data(), want.size(),
                        mode == 1 && dt != DTYPE_BF16 ? 1e-2 : 0.0);
            g->release(g, out);
            g->release(g, dids);
            g->unload_weight(g, &gw);
        }
    }
}

static void test_rmsnorm(void) {
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        const int shapes[][2] = {{1, 64}, {3, 96}, {17, 3584}, {2, 7168}, {5, 33}};
        for (auto &s : shapes) {
            const int n = s[0], d = s[1];
            host_weight gain = make_weight(0 + 1, d, DTYPE_BF16, 1.0f);
            weight gg = upload_copy(g, gain);
            std::vector<float> x = randn((size_t)n * d, 3.0f), want(x.size());
            cpu->rmsnorm(cpu, want.data(), x.data(), &gain.w, n, d, 1e-6f);
            float *dx = dev_floats(g, x), *out = dev_poisoned(g, x.size());
            g->rmsnorm(g, out, dx, &gg, n, d, 1e-6f);
            std::vector<float> got = dev_get(g, out, x.size());
            char shape[64];
            snprintf(shape, sizeof shape, "n %d d %d", n, d);
            check_close(mode, "rmsnorm", shape, got.data(), want.data(), want.size(), 1e-5);
            g->rmsnorm(g, dx, dx, &gg, n, d, 1e-6f); /* in place */
            got = dev_get(g, dx, x.size());
            snprintf(shape, sizeof shape, "n %d d %d in place", n, d);
            check_close(mode, "rmsnorm", shape, got.data(), want.data(), want.size(), 1e-5);
            g->release(g, dx);
            g->release(g, out);
            g->unload_weight(g, &gg);
        }
    }
}

/* One linear case: y = x W^T (+ b), or y0 + that for linear_add. */
static void linear_case(int mode, int64_t rows, int64_t cols, int n, dtype wdt, int with_bias,
                        int accumulate) {
    backend *g = gpus[mode];
    host_weight hw = make_weight(rows, cols, wdt, 1.0f / sqrtf((float)cols));
    host_weight hb = make_weight(1, rows, DTYPE_F32, 0.5f);
    weight gw = upload_copy(g, hw), gb = upload_copy(g, hb);
    std::vector<float> x = randn((size_t)n * cols, 1.0f);
    std::vector<float> y0 = randn((size_t)n * rows, 1.0f), want = y0;
    if (accumulate)
        cpu->linear_add(cpu, want.data(), x.data(), &hw.w, with_bias ? &hb.w : NULL, n);
    else
        cpu->linear(cpu, want.data(), x.data(), &hw.w, with_bias ? &hb.w : NULL, n);
    float *dx = dev_floats(g, x);
    float *dy = accumulate ? dev_floats(g, y0) : dev_poisoned(g, y0.size());
    if (accumulate)
        g->linear_add(g, dy, dx, &gw, with_bias ? &gb : NULL, n);
    else
        g->linear(g, dy, dx, &gw, with_bias ? &gb : NULL, n);
    std::vector<float> got = dev_get(g, dy, want.size());
    /* the GEMV (n <= 4) keeps x in float32; cuBLASLt in bf16 mode rounds it to bf16; bf16
     * mode also rounds float32 weights */
    const int gemm = n > 4;
    const double tol = mode == 0 ? 1e-5 : (gemm || wdt != DTYPE_BF16) ? 1e-2 : 1e-5;
    char shape[128];
    snprintf(shape, sizeof shape, "y[%d, %lld] %s x[%d, %lld] @ W^T (%s%s, %s)",
             n, (long long)rows, accumulate ? "+=" : "=", n, (long long)cols, dtype_name(wdt),
             with_bias ? " + bias" : "", gemm ? "cuBLASLt" : "GEMV");
    check_close(mode, accumulate ? "linear_add" : "linear", shape, got.data(), want.data(),
                want.size(), tol);
    if (mode == 1 && n > 5 && n <= 64 && gw.dt == DTYPE_BF16 && cols % 32 == 0) {
        /* the skinny tensor-core kernel (opt-in for BF16; a [1, cols] weight is stored as an
         * F32 vector and never takes it): the CPU's values, and a token's result does not
         * depend on the batch */
        backend_cuda_set_skinny_bf16(g, 1);
        float *dn = accumulate ? dev_floats(g, y0) : dev_poisoned(g, y0.size());
        if (accumulate) g->linear_add(g, dn, dx, &gw, with_bias ? &gb : NULL, n);
        else g->linear(g, dn, dx, &gw, with_bias ? &gb : NULL, n);
        std::vector<float> sk = dev_get(g, dn, want.size());
        char sk_shape[160];
        snprintf(sk_shape, sizeof sk_shape, "%s, skinny kernel", shape);
        check_close(mode, accumulate ? "linear_add" : "linear", sk_shape, sk.data(), want.data(),
                    want.size(), 1e-2);
        if (!accumulate) {
            float *d5 = dev_poisoned(g, (size_t)5 * rows);
            g->linear(g, d5, dx, &gw, with_bias ? &gb : NULL, 5);
            std::vector<float> five = dev_get(g, d5, (size_t)5 * rows);
            EXPECT_MSG(memcmp(five.data(), sk.data(), sizeof(float) * 5 * rows) == 0,
                       "linear [bf16] %s: tokens 0-4 alone differ from the same tokens in the "
                       "batch of %d (the tensor-core kernel must not depend on the batch)", shape, n);
            g->release(g, d5);
        }
        g->release(g, dn);
        backend_cuda_set_skinny_bf16(g, 0);
    }
    if (n > 1 && n <= 4 && !accumulate) {
        /* the GEMV's result for a token does not depend on the others in the batch */
        float *d1 = dev_poisoned(g, (size_t)rows);
        g->linear(g, d1, dx, &gw, with_bias ? &gb : NULL, 1);
        std::vector<float> one = dev_get(g, d1, (size_t)rows);
        if (memcmp(one.data(), got.data(), sizeof(float) * rows) != 0) {
            fprintf(stderr, "  FAIL linear [%s] %s: token 0 alone differs from token 0 in the "
                            "batch of %d (GEMV must not depend on the batch)\n",
                    mode_names[mode], shape, n);
            testing_failures++;
        }
        g->release(g, d1);
    }
    g->release(g, dx);
    g->release(g, dy);
    g->unload_weight(g, &gw);
    g->unload_weight(g, &gb);
}

static void test_linear(void) {
    /* (rows, cols): fixture shapes; rows not a multiple of 8; columns not a multiple of 8 (bf16
     * generic path) or of 4 (both generic); a Qwen2.5-7B attention shape */
    const int64_t shapes[][2] = {{16, 64}, {13, 96}, {160, 96}, {96, 160}, {29, 36},
                                 {21, 37}, {1, 64},  {512, 3584}};
    const int ns[] = {1, 2, 3, 4, 5, 17, 64};
    for (int mode = 0; mode < 2; mode++)
        for (auto &s : shapes)
            for (int n : ns)
                for (dtype dt : {DTYPE_BF16, DTYPE_F32}) {
                    if (s[0] * s[1] > 100000 && n > 5) continue; /* keep the CPU side fast */
                    const int bias = rng_int(2), acc = rng_int(3) == 0;
                    linear_case(mode, s[0], s[1], n, dt, bias, acc);
                }
    /* FP8 block-scaled weights (DeepSeek's): dequantized on the fly */
    for (int mode = 0; mode < 2; mode++)
        for (int n : {1, 3, 5, 17}) {
            linear_case(mode, 160, 96, n, DTYPE_F8_E4M3, 1, 0);
            linear_case(mode, 512, 3584, n, DTYPE_F8_E4M3, 0, n == 3);
        }
    /* the decode shapes of Qwen2.5-7B, at decode batch sizes */
    for (int mode = 0; mode < 2; mode++) {
        linear_case(mode, 3584, 3584, 1, DTYPE_BF16, 1, 0);
        linear_case(mode, 18944, 3584, 4, DTYPE_BF16, 0, 0);
        linear_case(mode, 3584, 18944, 2, DTYPE_BF16, 0, 1);
        linear_case(mode, 3584, 18944, 5, DTYPE_BF16, 0, 1);
    }
    /* decode batches up to 64 (bf16 mode: the skinny tensor-core kernel, split-K on the
     * narrow matrices) */
    for (int mode = 0; mode < 2; mode++) {
        linear_case(mode, 3584, 18944, 64, DTYPE_BF16, 0, 1);
        linear_case(mode, 3584, 3584, 33, DTYPE_BF16, 1, 0);
        linear_case(mode, 512, 3584, 64, DTYPE_BF16, 1, 0);
        linear_case(mode, 18944, 3584, 17, DTYPE_BF16, 0, 0);
        linear_case(mode, 1000, 256, 64, DTYPE_BF16, 0, 0);
        linear_case(mode, 77, 8192, 40, DTYPE_BF16, 1, 1);
    }
}

/* q, k, v-like weights of one input in one call: the CPU's values, and bit for bit the values
 * of separate linear calls on the GPU. */
static void test_linear_multi(void) {
    const int64_t rows[3] = {96, 32, 40};
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        for (int n : {1, 3, 4, 5, 9}) {
            for (dtype dt : {DTYPE_BF16, DTYPE_F32}) {
                const int64_t cols = 64;
                host_weight hw[3] = {make_weight(rows[0], cols, dt, 0.125f),
                                     make_weight(rows[1], cols, dt, 0.125f),
                                     make_weight(rows[2], cols, dt, 0.125f)};
                host_weight hb[2] = {make_weight(1, rows[0], DTYPE_F32, 0.5f),
                                     make_weight(1, rows[2], DTYPE_F32, 0.5f)};
                weight gw[3] = {upload_copy(g, hw[0]), upload_copy(g, hw[1]), upload_copy(g, hw[2])};
                weight gb[2] = {upload_copy(g, hb[0]), upload_copy(g, hb[1])};
                std::vector<float> x = randn((size_t)n * cols, 1.0f);
                std::vector<float> want[3];
                float *hy[3];
                for (int j = 0; j < 3; j++) {
                    want[j].resize((size_t)n * rows[j]);
                    hy[j] = want[j].data();
                }
                const weight *hws[3] = {&hw[0].w, &hw[1].w, &hw[2].w};
                const weight *hbs[3] = {&hb[0].w, NULL, &hb[1].w}; /* k without bias */
                cpu->linear_multi(cpu, 3, hy, x.data(), hws, hbs, n);
                float *dx = dev_floats(g, x), *dy[3], *ds[3];
                for (int j = 0; j < 3; j++) {
                    dy[j] = dev_poisoned(g, want[j].size());
                    ds[j] = dev_poisoned(g, want[j].size());
                }
                const weight *gws[3] = {&gw[0], &gw[1], &gw[2]};
                const weight *gbs[3] = {&gb[0], NULL, &gb[1]};
                g->linear_multi(g, 3, dy, dx, gws, gbs, n);
                for (int j = 0; j < 3; j++) g->linear(g, ds[j], dx, gws[j], gbs[j], n);
                for (int j = 0; j < 3; j++) {
                    std::vector<float> got = dev_get(g, dy[j], want[j].size());
                    std::vector<float> sep = dev_get(g, ds[j], want[j].size());
                    char shape[96];
                    snprintf(shape, sizeof shape, "matrix %d of 3: [%lld x 64] %s, n %d", j,
                             (long long)rows[j], dtype_name(dt), n);
                    const double tol = mode == 0 ? 1e-5 : (n > 4 || dt != DTYPE_BF16) ? 1e-2 : 1e-5;
                    check_close(mode, "linear_multi", shape, got.data(), want[j].data(),
                                want[j].size(), tol);
                    EXPECT_MSG(memcmp(got.data(), sep.data(), sizeof(float) * got.size()) == 0,
                               "linear_multi [%s] %s: differs from a separate linear call",
                               mode_names[mode], shape);
                }
                g->release(g, dx);
                for (int j = 0; j < 3; j++) g->release(g, dy[j]), g->release(g, ds[j]);
                for (int j = 0; j < 3; j++) g->unload_weight(g, &gw[j]);
                for (int j = 0; j < 2; j++) g->unload_weight(g, &gb[j]);
            }
        }
    }
}

static void test_rope(void) {
    rope_config def = {};
    def.type = ROPE_DEFAULT;
    def.theta = 1e6;
    rope_config l3 = {};
    l3.type = ROPE_LLAMA3;
    l3.theta = 500000;
    l3.factor = 8;
    l3.low_freq_factor = 1;
    l3.high_freq_factor = 4;
    l3.original_max_position = 8192;
    rope_config yarn = {};
    yarn.type = ROPE_YARN;
    yarn.theta = 10000;
    yarn.factor = 40;
    yarn.original_max_position = 4096;
    yarn.beta_fast = 32;
    yarn.beta_slow = 1;
    yarn.mscale = 1;
    yarn.mscale_all_dim = 0.707;
    struct {
        const rope_config *cfg;
        rope_layout layout;
        int dim, n_heads, head_stride, off;
        const char *name;
    } cases[] = {
        {&def, ROPE_PAIRS_HALF, 128, 28, 128, 0, "qwen2 q"},
        {&def, ROPE_PAIRS_HALF, 16, 2, 16, 0, "fixture k"},
        {&l3, ROPE_PAIRS_HALF, 128, 8, 128, 0, "llama3 k"},
        {&yarn, ROPE_PAIRS_INTERLEAVED, 64, 16, 192, 128, "deepseek q_pe"},
    };
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        for (auto &c : cases) {
            rope_table r;
            rope_init(&r, c.cfg, c.dim, c.layout);
            const int n = 11, row_stride = c.n_heads * c.head_stride;
            std::vector<int> pos(n);
            for (auto &p : pos) p = rng_int(32768);
            pos[0] = 0;
            std::vector<float> x = randn((size_t)n * row_stride, 1.0f), want = x;
            cpu->rope(cpu, want.data(), &r, pos.data(), n, row_stride, c.n_heads, c.head_stride,
                      c.off);
            float *dx = dev_floats(g, x);
            int *dpos = dev_ints(g, pos);
            g->rope(g, dx, &r, dpos, n, row_stride, c.n_heads, c.head_stride, c.off);
            std::vector<float> got = dev_get(g, dx, x.size());
            char shape[96];
            snprintf(shape, sizeof shape, "%s: %d tokens x %d heads, dim %d, positions < 32768",
                     c.name, n, c.n_heads, c.dim);
            check_close(mode, "rope", shape, got.data(), want.data(), want.size(), 1e-5);
            g->release(g, dx);
            g->release(g, dpos);
            rope_free(&r);
        }
    }
}

static void test_swiglu(void) {
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        const int n = 7, d = 160;
        /* separate gate and up halves of one [n, 2d] buffer, out elsewhere */
        std::vector<float> gu = randn((size_t)n * 2 * d, 3.0f), want((size_t)n * d);
        cpu->swiglu(cpu, want.data(), gu.data(), gu.data() + d, n, d, 2 * d);
        float *dgu = dev_floats(g, gu), *out = dev_poisoned(g, want.size());
        g->swiglu(g, out, dgu, dgu + d, n, d, 2 * d);
        std::vector<float> got = dev_get(g, out, want.size());
        check_close(mode, "swiglu", "n 7 d 160 stride 320", got.data(), want.data(), want.size(),
                    1e-5);
        /* in place into gate, as the dense model calls it */
        std::vector<float> gate = randn((size_t)n * d, 3.0f), up = randn((size_t)n * d, 1.0f);
        std::vector<float> want2 = gate;
        cpu->swiglu(cpu, want2.data(), want2.data(), up.data(), n, d, d);
        float *dg = dev_floats(g, gate), *du = dev_floats(g, up);
        g->swiglu(g, dg, dg, du, n, d, d);
        got = dev_get(g, dg, want2.size());
        check_close(mode, "swiglu", "n 7 d 160 in place", got.data(), want2.data(), want2.size(),
                    1e-5);
        g->release(g, dgu);
        g->release(g, out);
        g->release(g, dg);
        g->release(g, du);
    }
}

static void test_add_gather(void) {
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        const size_t n = 12345;
        std::vector<float> x = randn(n, 1.0f), y = randn(n, 1.0f), want = x;
        cpu->add(cpu, want.data(), y.data(), n);
        float *dx = dev_floats(g, x), *dy = dev_floats(g, y);
        g->add(g, dx, dy, n);
        std::vector<float> got = dev_get(g, dx, n);
        check_close(mode, "add", "12345 elements", got.data(), want.data(), n, 0.0);
        const int rows = 40, d = 96, m = 5;
        std::vector<float> src = randn((size_t)rows * d, 1.0f), want2((size_t)m * d);
        std::vector<int> idx = {39, 0, 7, 7, 21};
        cpu->gather_rows(cpu, want2.data(), src.data(), idx.data(), m, d);
        float *ds = dev_floats(g, src), *out = dev_poisoned(g, want2.size());
        int *di = dev_ints(g, idx);
        g->gather_rows(g, out, ds, di, m, d);
        got = dev_get(g, out, want2.size());
        check_close(mode, "gather", "5 of 40 rows of 96", got.data(), want2.data(), want2.size(),
                    0.0);
        for (void *p : {(void *)dx, (void *)dy, (void *)ds, (void *)out, (void *)di})
            g->release(g, p);
    }
}

/* Host caches rounded to what the GPU stores, so both sides attend over the same values. */
static std::vector<float> cache_values(int mode, size_t n) {
    std::vector<float> c = randn(n, 1.0f);
    if (mode == 1)
        for (auto &v : c) v = round_bf16(v);
    return c;
}
static void *dev_cache(backend *g, int mode, const std::vector<float> &c) {
    if (mode == 0) return dev_floats(g, c);
    std::vector<uint16_t> b(c.size());
    for (size_t i = 0; i < c.size(); i++) b[i] = f32_to_bf16(c[i]);
    return dev_put(g, b.data(), 2 * b.size());
}

static void test_memory_ops(void) {
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        /* zero */
        float *dz = dev_floats(g, randn(1000, 1.0f));
        g->zero(g, dz, 1000);
        std::vector<float> got = dev_get(g, dz, 1000), want(1000, 0.0f);
        check_close(mode, "zero", "1000 elements", got.data(), want.data(), 1000, 0.0);
        /* copy_strided: columns 3..3+24 of [9, 40] rows into [9, 30] rows at column 5 */
        const int n = 9, width = 24;
        std::vector<float> src = randn((size_t)n * 40, 1.0f), dst0 = randn((size_t)n * 30, 1.0f);
        std::vector<float> want2 = dst0;
        cpu->copy_strided(cpu, want2.data() + 5, 30, src.data() + 3, 40, n, width);
        float *ds = dev_floats(g, src), *dd = dev_floats(g, dst0);
        g->copy_strided(g, dd + 5, 30, ds + 3, 40, n, width);
        got = dev_get(g, dd, want2.size());
        check_close(mode, "copy_strided", "9 rows of 24 between strides 40 and 30", got.data(),
                    want2.data(), want2.size(), 0.0);
        /* scatter_add_rows with repeated destinations: the same order as the CPU, bit for bit */
        const int m = 12, w = 200, rows_out = 5;
        std::vector<float> ysrc = randn((size_t)m * w, 1.0f), acc0 = randn((size_t)rows_out * w, 1.0f);
        std::vector<int> rows(m);
        std::vector<float> sc(m);
        for (int i = 0; i < m; i++) rows[i] = rng_int(rows_out), sc[i] = rng_uniform();
        std::vector<float> want3 = acc0;
        cpu->scatter_add_rows(cpu, want3.data(), ysrc.data(), rows.data(), sc.data(), m, w);
        float *dy = dev_floats(g, ysrc), *da = dev_floats(g, acc0), *dsc = dev_floats(g, sc);
        int *dr = dev_ints(g, rows);
        g->scatter_add_rows(g, da, dy, dr, dsc, m, w);
        got = dev_get(g, da, want3.size());
        check_close(mode, "scatter_add", "12 rows of 200 into 5", got.data(), want3.data(),
                    want3.size(), 0.0);
        for (void *p : {(void *)dz, (void *)ds, (void *)dd, (void *)dy, (void *)da, (void *)dsc,
                        (void *)dr})
            g->release(g, p);
    }
}

/* DeepSeek's absorbed MLA ops at fixture-like and V3-like sizes, for bf16, f32 and FP8
 * (16 x 16 block-scaled) kv_b_proj weights. */
static void test_mla(void) {
    struct {
        int H, nope, v, lat, pe, n, slots, max_seq;
        const char *name;
    } cases[] = {
        {4, 16, 16, 32, 8, 5, 2, 40, "fixture-sized"},
        {16, 128, 128, 512, 64, 9, 3, 300, "V3 head sizes, 16 heads"},
        /* 128 heads over up to 3000 positions: the tensor-core attention cuts each token's
         * positions into splits and merges them */
        {128, 128, 128, 512, 64, 3, 2, 3000, "V3, 128 heads, long context"},
    };
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        for (auto &c : cases)
            for (dtype dt : {DTYPE_BF16, DTYPE_F32, DTYPE_F8_E4M3}) {
                char shape[128];
                snprintf(shape, sizeof shape, "%s, %s kv_b_proj, %d tokens", c.name,
                         dtype_name(dt), c.n);
                host_weight hw = make_weight((int64_t)c.H * (c.nope + c.v), c.lat, dt, 0.1f);
                weight gw = upload_copy(g, hw);
                /* bf16 mode stores F32 weights as bf16, and at V3 head sizes runs q_absorb and
                 * v_up on the grouped tensor-core path, which rounds the activations to bf16
                 * (core/cuda/mla_cuda.cu); elsewhere the direct kernels keep float32 inputs */
                const bool fast = mode == 1 && dt == DTYPE_BF16 && c.nope % 32 == 0;
                const double wtol = mode == 1 && (dt == DTYPE_F32 || fast) ? 1e-2 : 1e-5;
                /* q_absorb from q rows of stride nope + pe (q_nope then q_pe, as the model lays
                 * them out) */
                const int qs = c.nope + c.pe;
                std::vector<float> q = randn((size_t)c.n * c.H * qs, 1.0f);
                std::vector<float> want((size_t)c.n * c.H * c.lat);
                cpu->mla_q_absorb(cpu, want.data(), q.data(), qs, &hw.w, c.n, c.H, c.nope, c.v);
                float *dq = dev_floats(g, q), *dql = dev_poisoned(g, want.size());
                g->mla_q_absorb(g, dql, dq, qs, &gw, c.n, c.H, c.nope, c.v);
                std::vector<float> got = dev_get(g, dql, want.size());
                check_close(mode, "mla_q_absorb", shape, got.data(), want.data(), want.size(), wtol);
                /* v_up */
                std::vector<float> ol = randn((size_t)c.n * c.H * c.lat, 1.0f);
                std::vector<float> want2((size_t)c.n * c.H * c.v);
                cpu->mla_v_up(cpu, want2.data(), ol.data(), &hw.w, c.n, c.H, c.nope, c.v);
                float *dol = dev_floats(g, ol), *dout = dev_poisoned(g, want2.size());
                g->mla_v_up(g, dout, dol, &gw, c.n, c.H, c.nope, c.v);
                got = dev_get(g, dout, want2.size());
                check_close(mode, "mla_v_up", shape, got.data(), want2.data(), want2.size(), wtol);
                /* attention over the latent cache, from the q_lat above and q_pe in q */
                if (dt == DTYPE_BF16) {
                    const size_t rows = (size_t)c.slots * c.max_seq;
                    std::vector<float> kvc = cache_values(mode, rows * c.lat);
                    std::vector<float> pec = cache_values(mode, rows * c.pe);
                    for (auto &v : kvc) v *= 0.2f; /* scores of order 1 */
                    if (mode == 1)
                        for (auto &v : kvc) v = round_bf16(v);
                    std::vector<int> slot(c.n), pos(c.n);
                    for (int i = 0; i < c.n; i++)
                        slot[i] = rng_int(c.slots), pos[i] = rng_int(c.max_seq);
                    pos[0] = c.max_seq - 1;
                    token_layout htl = {c.n, slot.data(), pos.data()};
                    const float scale = 1.0f / sqrtf((float)(c.nope + c.pe));
                    std::vector<float> want3((size_t)c.n * c.H * c.lat);
                    cpu->mla_attention(cpu, want3.data(), want.data(), q.data() + c.nope, qs,
                                       kvc.data(), pec.data(), &htl, c.max_seq, c.H, c.lat, c.pe,
                                       scale);
                    void *dkv = dev_cache(g, mode, kvc), *dpe = dev_cache(g, mode, pec);
                    int *dslot = dev_ints(g, slot), *dpos = dev_ints(g, pos);
                    float *dqlw = dev_floats(g, want), *datt = dev_poisoned(g, want3.size());
                    token_layout tl = {c.n, dslot, dpos};
                    g->mla_attention(g, datt, dqlw, dq + c.nope, qs, dkv, dpe, &tl, c.max_seq,
                                     c.H, c.lat, c.pe, scale);
                    got = dev_get(g, datt, want3.size());
                    /* bf16 mode at V3 widths: the tensor-core kernel rounds q and P to bf16 */
                    const bool tc = mode == 1 && c.lat == 512 && c.pe == 64 && c.H % 16 == 0;
                    check_close(mode, "mla_attention", shape, got.data(), want3.data(),
                                want3.size(), tc ? 1e-2 : 1e-5);
                    for (void *p : {dkv, dpe, (void *)dslot, (void *)dpos, (void *)dqlw,
                                    (void *)datt})
                        g->release(g, p);
                }
                for (void *p : {(void *)dq, (void *)dql, (void *)dol, (void *)dout}) g->release(g, p);
                g->unload_weight(g, &gw);
            }
    }
}

static void test_argmax(void) {
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        const int n = 6, d = 152064;
        std::vector<float> x = randn((size_t)n * d, 1.0f);
        x[(size_t)0 * d + 5000] = 9.0f; /* ties: the lower index wins */
        x[(size_t)0 * d + 9000] = 9.0f;
        x[(size_t)1 * d + 0] = NAN; /* NaN never wins */
        x[(size_t)1 * d + 77] = 8.0f;
        for (int j = 0; j < d; j++) x[(size_t)2 * d + j] = NAN; /* all NaN: index 0 */
        x[(size_t)3 * d + d - 1] = 50.0f;                         /* the last element */
        for (int j = 0; j < d; j++) x[(size_t)4 * d + j] = -INFINITY;
        x[(size_t)4 * d + 123] = NAN;
        std::vector<int> want(n), got(n);
        cpu->argmax(cpu, want.data(), x.data(), n, d);
        float *dx = dev_floats(g, x);
        int *dout = (int *)dev_put(g, std::vector<int>(n, -7).data(), sizeof(int) * n);
        g->argmax(g, dout, dx, n, d);
        g->download(g, got.data(), dout, sizeof(int) * n);
        for (int i = 0; i < n; i++)
            EXPECT_MSG(got[i] == want[i], "argmax [%s] row %d of %d x %d: got %d, want %d",
                       mode_names[mode], i, n, d, got[i], want[i]);
        g->release(g, dx);
        g->release(g, dout);
    }
}

/* rope_store_kv: bit for bit the separate rope, rope, kv_store, kv_store on the GPU, and the
 * CPU's fused op within rope's tolerance. */
static void test_rope_store_kv(void) {
    rope_config def = {};
    def.type = ROPE_DEFAULT;
    def.theta = 1e6;
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        const int H = 28, KV = 4, hd = 128, slots = 3, max_seq = 40, n = 9;
        const int qd = H * hd, kvd = KV * hd;
        rope_table r;
        rope_init(&r, &def, hd, ROPE_PAIRS_HALF);
        std::vector<int> slot = {0, 0, 0, 1, 2, 2, 2, 2, 1}, pos = {0, 1, 2, 39, 5, 6, 7, 8, 17};
        std::vector<float> q = randn((size_t)n * qd, 1.0f), k = randn((size_t)n * kvd, 1.0f),
                           v = randn((size_t)n * kvd, 1.0f);
        const size_t es = mode == 0 ? 4 : 2, cache_bytes = (size_t)slots * max_seq * kvd * es;
        std::vector<uint8_t> poison(cache_bytes, 0xff);
        int *dslot = dev_ints(g, slot), *dpos = dev_ints(g, pos);
        token_layout tl = {n, dslot, dpos};
        float *q1 = dev_floats(g, q), *k1 = dev_floats(g, k), *v1 = dev_floats(g, v);
        float *q2 = dev_floats(g, q), *k2 = dev_floats(g, k);
        void *kc1 = dev_put(g, poison.data(), cache_bytes), *vc1 = dev_put(g, poison.data(), cache_bytes);
        void *kc2 = dev_put(g, poison.data(), cache_bytes), *vc2 = dev_put(g, poison.data(), cache_bytes);
        g->rope_store_kv(g, q1, k1, v1, kc1, vc1, &r, &tl, H, KV, hd, max_seq);
        g->rope(g, q2, &r, dpos, n, qd, H, hd, 0);
        g->rope(g, k2, &r, dpos, n, kvd, KV, hd, 0);
        g->kv_store(g, kc2, k2, &tl, kvd, max_seq);
        g->kv_store(g, vc2, v1, &tl, kvd, max_seq);
        std::vector<uint8_t> a(cache_bytes), b(cache_bytes);
        std::vector<float> fq1 = dev_get(g, q1, q.size()), fq2 = dev_get(g, q2, q.size());
        std::vector<float> fk1 = dev_get(g, k1, k.size()), fk2 = dev_get(g, k2, k.size());
        EXPECT_MSG(memcmp(fq1.data(), fq2.data(), 4 * q.size()) == 0 &&
                       memcmp(fk1.data(), fk2.data(), 4 * k.size()) == 0,
                   "rope_store_kv [%s]: q or k differ from separate rope calls", mode_names[mode]);
        for (int c = 0; c < 2; c++) {
            g->download(g, a.data(), c ? vc1 : kc1, cache_bytes);
            g->download(g, b.data(), c ? vc2 : kc2, cache_bytes);
            EXPECT_MSG(memcmp(a.data(), b.data(), cache_bytes) == 0,
                       "rope_store_kv [%s]: the %s cache differs from kv_store's", mode_names[mode],
                       c ? "v" : "k");
        }
        /* against the CPU (float32 caches) */
        std::vector<float> cq = q, ck = k, ckc((size_t)slots * max_seq * kvd, 0.0f), cvc = ckc;
        token_layout ctl = {n, slot.data(), pos.data()};
        cpu->rope_store_kv(cpu, cq.data(), ck.data(), v.data(), ckc.data(), cvc.data(), &r, &ctl,
                           H, KV, hd, max_seq);
        check_close(mode, "rope_store_kv", "q: 9 tokens x 28 heads x 128", fq1.data(), cq.data(),
                    cq.size(), 1e-5);
        check_close(mode, "rope_store_kv", "k: 9 tokens x 4 heads x 128", fk1.data(), ck.data(),
                    ck.size(), 1e-5);
        for (void *p : {(void *)dslot, (void *)dpos, (void *)q1, (void *)k1, (void *)v1,
                        (void *)q2, (void *)k2, kc1, vc1, kc2, vc2})
            g->release(g, p);
        rope_free(&r);
    }
}

static void test_kv_store(void) {
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        const int slots = 3, max_seq = 20, width = 32, n = 7;
        const size_t es = mode == 0 ? 4 : 2, total = (size_t)slots * max_seq * width;
        std::vector<int> slot = {2, 0, 0, 1, 2, 2, 0}, pos = {19, 0, 1, 5, 3, 4, 18};
        std::vector<float> src = randn((size_t)n * width, 1.0f);
        std::vector<uint8_t> poison(total * es, 0xff);
        void *dc = dev_put(g, poison.data(), poison.size());
        float *ds = dev_floats(g, src);
        int *dslot = dev_ints(g, slot), *dpos = dev_ints(g, pos);
        token_layout tl = {n, dslot, dpos};
        g->kv_store(g, dc, ds, &tl, width, max_seq);
        std::vector<uint8_t> got(total * es);
        g->download(g, got.data(), dc, got.size());
        long bad = 0, first = -1;
        for (size_t s = 0; s < (size_t)slots; s++)
            for (size_t p = 0; p < (size_t)max_seq; p++) {
                int tok = -1;
                for (int i = 0; i < n; i++)
                    if (slot[i] == (int)s && pos[i] == (int)p) tok = i;
                for (size_t j = 0; j < (size_t)width; j++) {
                    const size_t e = (s * max_seq + p) * width + j;
                    uint8_t want[4];
                    if (tok < 0) memset(want, 0xff, es);
                    else if (mode == 0) memcpy(want, &src[(size_t)tok * width + j], 4);
                    else {
                        uint16_t b = f32_to_bf16(src[(size_t)tok * width + j]);
                        memcpy(want, &b, 2);
                    }
                    if (memcmp(&got[e * es], want, es) != 0) {
                        if (first < 0) first = (long)e;
                        bad++;
                    }
                }
            }
        EXPECT_MSG(bad == 0, "kv_store [%s] 7 tokens into 3 slots x 20 x 32: %ld elements wrong "
                             "(stored value or an element outside the stored rows), first at %ld",
                   mode_names[mode], bad, first);
        for (void *p : {dc, (void *)ds, (void *)dslot, (void *)dpos}) g->release(g, p);
    }
}

struct att_case {
    int H, KV, hd, slots, max_seq;
    std::vector<int> slot, pos;
    const char *name;
};

static void attention_case(int mode, const att_case &c) {
    backend *g = gpus[mode];
    const int n = (int)c.slot.size();
    const size_t cache_n = (size_t)c.slots * c.max_seq * c.KV * c.hd;
    std::vector<float> kc = cache_values(mode, cache_n), vc = cache_values(mode, cache_n);
    std::vector<float> q = randn((size_t)n * c.H * c.hd, 1.0f), want((size_t)n * c.H * c.hd);
    token_layout htl = {n, c.slot.data(), c.pos.data()};
    const float scale = 1.0f / sqrtf((float)c.hd);
    cpu->attention(cpu, want.data(), q.data(), kc.data(), vc.data(), &htl, c.max_seq, c.H, c.KV,
                   c.hd, c.hd, scale);
    void *dk = dev_cache(g, mode, kc), *dv = dev_cache(g, mode, vc);
    float *dq = dev_floats(g, q), *out = dev_poisoned(g, want.size());
    int *dslot = dev_ints(g, c.slot), *dpos = dev_ints(g, c.pos);
    token_layout tl = {n, dslot, dpos};
    g->attention(g, out, dq, dk, dv, &tl, c.max_seq, c.H, c.KV, c.hd, c.hd, scale);
    std::vector<float> got = dev_get(g, out, want.size());
    char shape[160];
    snprintf(shape, sizeof shape, "%s: %d tokens, %d heads / %d KV heads, head_dim %d, max_seq %d",
             c.name, n, c.H, c.KV, c.hd, c.max_seq);
    check_close(mode, "attention", shape, got.data(), want.data(), want.size(), 1e-5);
    for (void *p : {dk, dv, (void *)dq, (void *)out, (void *)dslot, (void *)dpos})
        g->release(g, p);
}

static void test_attention(void) {
    std::vector<att_case> cases;
    auto seq = [](int from, int count) {
        std::vector<int> v(count);
        for (int i = 0; i < count; i++) v[i] = from + i;
        return v;
    };
    /* prefill of one sequence (positions 0..39), the fixtures' head shapes */
    cases.push_back({6, 2, 16, 1, 40, std::vector<int>(40, 0), seq(0, 40), "qwen2 fixture prefill"});
    cases.push_back({4, 2, 16, 2, 40, std::vector<int>(40, 1), seq(0, 40), "llama fixture prefill"});
    /* one decode token at the end of a long cache: many splits, all used */
    cases.push_back({28, 4, 128, 1, 4096, {0}, {4095}, "qwen7b decode, full 4096"});
    /* a short position in a long cache: most splits empty */
    cases.push_back({12, 2, 128, 2, 4096, {1}, {100}, "qwen1.5b decode, pos 100 of 4096"});
    /* a decode batch over slots, varied positions */
    cases.push_back({32, 8, 128, 5, 600, {0, 1, 2, 3, 4}, {0, 599, 63, 64, 300}, "llama8b decode batch"});
    /* 12 heads per KV head: two head chunks of 8 and 4 */
    cases.push_back({12, 1, 64, 2, 300, {1, 0, 0}, {299, 17, 18}, "group 12, head_dim 64"});
    /* plain multi-head attention */
    cases.push_back({8, 8, 32, 3, 130, {2, 2, 0}, {64, 65, 129}, "MHA head_dim 32"});
    /* a ragged batch: a 24-token prefill in slot 2 beside two decode tokens */
    {
        att_case c = {28, 4, 128, 3, 512, std::vector<int>(24, 2), seq(100, 24), "ragged batch"};
        c.slot.push_back(0), c.pos.push_back(511);
        c.slot.push_back(1), c.pos.push_back(7);
        cases.push_back(c);
    }
    for (int mode = 0; mode < 2; mode++)
        for (auto &c : cases) attention_case(mode, c);
}

static void test_transfers(void) {
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        /* small (pinned staging) and large (direct) writes, read back */
        for (size_t n : {(size_t)1, (size_t)1000, (size_t)(5 << 20)}) {
            std::vector<float> h = randn(n, 1.0f), orig = h;
            float *d = dev_floats(g, h);
            /* the caller may reuse its buffer as soon as the write returns */
            std::fill(h.begin(), h.end(), -7.0f);
            std::vector<float> back = dev_get(g, d, n);
            EXPECT_MSG(memcmp(back.data(), orig.data(), sizeof(float) * n) == 0,
                       "write/read round trip of %zu floats [%s]", n, mode_names[mode]);
            g->release(g, d);
        }
    }
    EXPECT(backend_cuda(1000, BACKEND_CUDA_FP32) == NULL && err_status() == R1_EINPUT);
    EXPECT(backend_cuda(0, 7) == NULL && err_status() == R1_EINPUT);
}

/* ---- the dense model ------------------------------------------------------------------------ */

static const char *fixtures[] = {"tests/fixtures/qwen2-tied", "tests/fixtures/llama3-bf16"};

static int top2_margin(const float *v, long n, int *top) {
    int a = 0, b = -1;
    for (long i = 1; i < n; i++) {
        if (v[i] > v[a]) b = a, a = (int)i;
        else if (b < 0 || v[i] > v[b]) b = (int)i;
    }
    *top = a;
    return b;
}

static void test_forward_vs_cpu(void) {
    for (auto dir : fixtures) {
        ref_logits ref = fixture_load(dir);
        teacher_model *mc = open_model(dir, cpu);
        float *lc;
        EXPECT(teacher_logits_all(mc, ref.tokens, ref.n, &lc) == R1_OK);
        for (int mode = 0; mode < 2; mode++) {
            teacher_model *mg = open_model(dir, gpus[mode]);
            float *lg;
            EXPECT(teacher_logits_all(mg, ref.tokens, ref.n, &lg) == R1_OK);
            const long V = ref.vocab;
            double worst = 0, worst_ref = 0;
            for (int t = 0; t < ref.n; t++) {
                const float *g = lg + (size_t)t * V, *c = lc + (size_t)t * V;
                char shape[96];
                snprintf(shape, sizeof shape, "%s position %d of %d", dir, t, ref.n);
                check_close(mode, "forward", shape, g, c, (size_t)V, mode == 0 ? 1e-5 : 3e-2);
                const double e = rel_l2(g, c, (size_t)V), er = rel_l2(g, ref.logits + (size_t)t * V, V);
                worst = e > worst ? e : worst;
                worst_ref = er > worst_ref ? er : worst_ref;
                double maxerr = 0;
                for (long j = 0; j < V; j++) maxerr = fmax(maxerr, fabs((double)g[j] - c[j]));
                int top, second = top2_margin(c, V, &top);
                const double margin = c[top] - c[second];
                if (margin > 4 * maxerr)
                    EXPECT_MSG(argmax_f32(g, V) == top,
                               "%s [%s] position %d: argmax %d, CPU %d (margin %.3g, max err %.3g)",
                               dir, mode_names[mode], t, argmax_f32(g, V), top, margin, maxerr);
                if (mode == 0) {
                    EXPECT_MSG(er <= 1e-4, "%s [fp32] position %d: rel L2 %.3g vs transformers",
                               dir, t, er);
                    EXPECT_MSG(argmax_f32(g, V) == ref.argmax[t],
                               "%s [fp32] position %d: argmax vs transformers", dir, t);
                }
            }
            fprintf(stderr, "    %s [%s]: worst rel L2 %.3g vs CPU, %.3g vs transformers\n", dir,
                    mode_names[mode], worst, worst_ref);
            free(lg);
            teacher_close(mg);
        }
        free(lc);
        teacher_close(mc);
        fixture_free(&ref);
    }
}

/* Prefill 7 tokens, then one at a time (the GEMV path): equal to the full forward. */
static void test_incremental(void) {
    for (auto dir : fixtures)
        for (int mode = 0; mode < 2; mode++) {
            ref_logits ref = fixture_load(dir);
            teacher_model *m = open_model(dir, gpus[mode]);
            float *full;
            EXPECT(teacher_logits_all(m, ref.tokens, ref.n, &full) == R1_OK);
            const int k = 7, V = (int)ref.vocab;
            EXPECT(m->cache_init(m, 2, ref.n) == R1_OK);
            std::vector<int> slot(ref.n, 1), pos(ref.n);
            for (int i = 0; i < ref.n; i++) pos[i] = i;
            std::vector<float> step(V);
            int last = k - 1;
            token_layout pre = {k, slot.data(), pos.data()};
            EXPECT(m->forward(m, ref.tokens, &pre, &last, 1, step.data()) == R1_OK);
            for (int t = k - 1; t < ref.n; t++) {
                if (t >= k) {
                    token_layout one = {1, &slot[t], &pos[t]};
                    int row = 0;
                    EXPECT(m->forward(m, &ref.tokens[t], &one, &row, 1, step.data()) == R1_OK);
                }
                char shape[96];
                snprintf(shape, sizeof shape, "%s position %d: incremental vs full", dir, t);
                check_close(mode, "decode", shape, step.data(), full + (size_t)t * V, V,
                            mode == 0 ? 1e-5 : 2e-2);
            }
            free(full);
            teacher_close(m);
            fixture_free(&ref);
        }
}

/* Greedy decoding: prefill `prompt`, then `steps` tokens; returns the tokens. With
 * device_argmax the logits stay on the device and the backend picks the token. */
static std::vector<int> greedy(teacher_model *m, const int *prompt, int np, int steps,
                               int device_argmax, std::vector<float> *margins) {
    const int V = (int)m->cfg.vocab_size;
    std::vector<int> out;
    std::vector<float> logits(V);
    std::vector<int> slot(np, 0), pos(np);
    for (int i = 0; i < np; i++) pos[i] = i;
    EXPECT(m->cache_init(m, 1, np + steps) == R1_OK);
    backend *be = m->be;
    int *dtok = device_argmax ? (int *)be->alloc(be, sizeof(int)) : NULL;
    for (int s = 0; s < steps; s++) {
        int row = s == 0 ? np - 1 : 0, p = np + s - 1, z = 0;
        token_layout tl = s == 0 ? token_layout{np, slot.data(), pos.data()} : token_layout{1, &z, &p};
        const int *toks = s == 0 ? prompt : &out.back();
        EXPECT(m->forward(m, toks, &tl, &row, 1, device_argmax ? NULL : logits.data()) == R1_OK);
        int next;
        if (device_argmax) {
            be->argmax(be, dtok, m->logits, 1, V);
            be->download(be, &next, dtok, sizeof(int));
        } else {
            int second = top2_margin(logits.data(), V, &next);
            if (margins) margins->push_back(logits[next] - logits[second]);
        }
        out.push_back(next);
    }
    if (dtok) be->release(be, dtok);
    return out;
}

static void test_greedy(void) {
    const int np = 8, steps = 32;
    for (auto dir : fixtures) {
        ref_logits ref = fixture_load(dir);
        teacher_model *mc = open_model(dir, cpu);
        std::vector<float> margins;
        std::vector<int> want = greedy(mc, ref.tokens, np, steps, 0, &margins);
        for (int mode = 0; mode < 2; mode++) {
            teacher_model *mg = open_model(dir, gpus[mode]);
            std::vector<int> got = greedy(mg, ref.tokens, np, steps, 0, NULL);
            std::vector<int> dev = greedy(mg, ref.tokens, np, steps, 1, NULL);
            int first = -1;
            for (int s = 0; s < steps && first < 0; s++)
                if (got[s] != want[s]) first = s;
            if (mode == 0)
                EXPECT_MSG(first < 0, "%s [fp32]: greedy token %d is %d, CPU %d (CPU top-2 margin "
                                      "%.3g)",
                           dir, first, first < 0 ? 0 : got[first], first < 0 ? 0 : want[first],
                           first < 0 ? 0.0 : margins[first]);
            else
                fprintf(stderr, "    %s [bf16]: %s the CPU's 32 greedy tokens%s\n", dir,
                        first < 0 ? "equals" : "differs from",
                        first < 0 ? "" : " (allowed in bf16; see the logits checks)");
            EXPECT_MSG(dev == got, "%s [%s]: device argmax tokens differ from host argmax", dir,
                       mode_names[mode]);
            teacher_close(mg);
        }
        teacher_close(mc);
        fixture_free(&ref);
    }
}

/* Two sequences decoded together for 12 steps with graphs on (eager, record, then replays) and
 * off: bit-identical logits, and replays happened. Each in the batch also within tolerance of
 * the same sequence decoded alone. */
static void decode_pair(teacher_model *m, const int *toks, int steps, std::vector<float> &logits) {
    const int V = (int)m->cfg.vocab_size, np = 5;
    EXPECT(m->cache_init(m, 2, np + steps) == R1_OK);
    std::vector<int> slot(2 * np), pos(2 * np), rows = {np - 1, 2 * np - 1};
    for (int i = 0; i < 2 * np; i++) slot[i] = i / np, pos[i] = i % np;
    logits.assign((size_t)(steps + 1) * 2 * V, 0);
    token_layout pre = {2 * np, slot.data(), pos.data()};
    EXPECT(m->forward(m, toks, &pre, rows.data(), 2, logits.data()) == R1_OK);
    for (int s = 0; s < steps; s++) {
        int sl[2] = {0, 1}, ps[2] = {np + s, np + s}, r[2] = {0, 1};
        int t[2] = {toks[2 * np + 2 * s], toks[2 * np + 2 * s + 1]};
        token_layout tl = {2, sl, ps};
        EXPECT(m->forward(m, t, &tl, r, 2, logits.data() + (size_t)(s + 1) * 2 * V) == R1_OK);
    }
}

static void test_graphs(void) {
    const int steps = 12;
    ref_logits ref = fixture_load(fixtures[1]);
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        teacher_model *m = open_model(fixtures[1], g);
        std::vector<float> on, off;
        long rep0, rec0, rep1, rec1;
        backend_cuda_graph_stats(g, &rep0, &rec0);
        backend_cuda_set_graphs(g, 1);
        decode_pair(m, ref.tokens, steps, on);
        backend_cuda_graph_stats(g, &rep1, &rec1);
        EXPECT_MSG(rep1 - rep0 >= steps - 2 && rec1 - rec0 >= 1,
                   "[%s] %d decode steps made %ld replays and %ld recordings (want >= %d and >= 1)",
                   mode_names[mode], steps, rep1 - rep0, rec1 - rec0, steps - 2);
        backend_cuda_set_graphs(g, 0);
        decode_pair(m, ref.tokens, steps, off);
        backend_cuda_set_graphs(g, 1);
        size_t first = on.size();
        for (size_t i = 0; i < on.size() && first == on.size(); i++)
            if (memcmp(&on[i], &off[i], 4) != 0) first = i;
        EXPECT_MSG(first == on.size(), "[%s] graph replay vs eager: logits differ first at %zu "
                                       "(step %zu): %.9g vs %.9g",
                   mode_names[mode], first, first / (2 * (size_t)ref.vocab),
                   first < on.size() ? on[first] : 0.0, first < on.size() ? off[first] : 0.0);
        teacher_close(m);
    }
    fixture_free(&ref);
}

int main(void) {
    if (open_backends("test_backend_cuda")) return 1;
    RUN_NAMED(test_transfers);
    RUN_NAMED(test_embed);
    RUN_NAMED(test_rmsnorm);
    RUN_NAMED(test_rope);
    RUN_NAMED(test_swiglu);
    RUN_NAMED(test_add_gather);
    RUN_NAMED(test_memory_ops);
    RUN_NAMED(test_argmax);
    RUN_NAMED(test_kv_store);
    RUN_NAMED(test_rope_store_kv);
    RUN_NAMED(test_linear);
    RUN_NAMED(test_linear_multi);
    RUN_NAMED(test_attention);
    RUN_NAMED(test_mla);
    RUN_NAMED(test_forward_vs_cpu);
    RUN_NAMED(test_incremental);
    RUN_NAMED(test_greedy);
    RUN_NAMED(test_graphs);
    fprintf(stderr, "  worst relative L2 error per op (fp32 mode / bf16 mode):\n");
    for (int k = 0; k < n_worst; k++)
        fprintf(stderr, "    %-12s %.3g / %.3g\n", worst_name[k], worst_seen[0][k],
                worst_seen[1][k]);
    for (int mode = 0; mode < 2; mode++) gpus[mode]->destroy(gpus[mode]);
    TESTS_DONE();
}
