/* DeepSeek-V3 on the GPU against the CPU: the MoE ops op by op, then the whole model.
 *
 *   linear_segments  every expert over its rows: the CPU's values (fp32 mode 1e-5; bf16 mode
 *                    1e-2 where x is rounded to bf16) for BF16 and FP8 (128 x 128 scale blocks)
 *                    experts at DeepSeek-V3's shapes (the tensor-core path) and for small
 *                    shapes (the generic path), with empty experts and experts of more than 64
 *                    rows; each row also equals a plain linear of it bit for bit
 *   combine_rows     exact (the CPU's order and rounding)
 *   routing          moe_device_route against moe_route on the host: the same experts and
 *                    weights within 1e-6 (CUDA's expf is within 2 ulp of glibc's), every
 *                    assignment's row in its expert's segment, comb in ascending expert id
 *   FP8 linear       the skinny kernel on FP8 weights at n 1..64 against the CPU
 *   MLA products     mla_q_absorb and mla_v_up against the CPU (fp32 1e-5, bf16 1e-2) at
 *                    DeepSeek-V3's shapes (bf16 mode: the per-head grouped fast path; FP8 128 x
 *                    128 blocks and BF16) and at the fixtures' (the direct kernels), 1..300
 *                    tokens; a token's result does not depend on the others in the batch
 *   many tables      one recorded pass over 90 weight arrays (a DeepSeek-R1 forward has ~300)
 *                    records and replays, equal to its eager run bit for bit
 *   models           tests/fixtures/deepseek-{yarn,fp8,qnull} in both modes: logits against
 *                    the CPU (fp32 1e-5, bf16 3e-2) and transformers (fp32 1e-4, argmax);
 *                    incremental decoding equals the full forward; replayed graphs equal eager
 *                    runs bit for bit; 16 greedy tokens equal the CPU's in fp32 mode. */
#include <algorithm>
#include <vector>

#include "tests/cuda/backend_testing.cuh"
extern "C" {
#include "teacher/moe_device.h"
#include "teacher/moe_router.h"
#include "teacher/teacher.h"
#include "tests/unit/fixture.h"
}

static int check_close(const char *what, const float *got, const float *want, size_t n,
                       double tol) {
    double num = 0, den = 0;
    size_t nan_at = n;
    for (size_t i = 0; i < n; i++) {
        if (got[i] != got[i] && nan_at == n) nan_at = i;
        const double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    const double e = den > 0 ? sqrt(num / den) : sqrt(num);
    const bool ok = nan_at == n && (tol == 0 ? num == 0 : e <= tol);
    EXPECT_MSG(ok, "%s: relative L2 %.3g (tolerance %.3g)%s", what, e, tol,
               nan_at < n ? ", NaN or unwritten output" : "");
    return ok;
}

/* ---- linear_segments ------------------------------------------------------------------------ */

static void segments_case(int mode, int E, int64_t rows, int64_t cols, dtype dt, int block,
                          const std::vector<int> &counts, const char *name) {
    backend *g = gpus[mode];
    std::vector<host_weight> hw;
    for (int e = 0; e < E; e++)
        hw.push_back(make_weight(rows, cols, dt, 1.0f / sqrtf((float)cols), block));
    std::vector<weight> cw(E), gw(E);
    for (int e = 0; e < E; e++) {
        cw[e] = hw[e].w;
        gw[e] = upload_copy(g, hw[e]);
    }
    std::vector<int> seg(E + 1, 0);
    for (int e = 0; e < E; e++) seg[e + 1] = seg[e] + counts[e];
    const int n = seg[E];
    std::vector<float> x = randn((size_t)n * cols, 1.0f), want((size_t)n * rows);
    cpu->linear_segments(cpu, want.data(), x.data(), cw.data(), seg.data(), E, n);
    float *dx = (float *)dev_put(g, x.data(), sizeof(float) * x.size());
    float *dy = (float *)g->alloc(g, sizeof(float) * want.size());
    int *dseg = (int *)dev_put(g, seg.data(), sizeof(int) * seg.size());
    std::vector<uint32_t> nan(want.size(), 0x7fc0deadu);
    g->upload(g, dy, nan.data(), sizeof(float) * nan.size());
    g->linear_segments(g, dy, dx, gw.data(), dseg, E, n);
    std::vector<float> got = dev_get(g, dy, want.size());
    char what[160];
    snprintf(what, sizeof what, "linear_segments [%s] %s: %d experts of [%lld x %lld] %s, %d rows",
             mode_names[mode], name, E, (long long)rows, (long long)cols, dtype_name(dt), n);
    check_close(what, got.data(), want.data(), want.size(), mode == 0 ? 1e-5 : 1e-2);
    /* a row's value does not depend on the other rows of its expert: each alone, as a linear */
    for (int e = 0; e < E && mode == 1; e++) {
        if (counts[e] == 0) continue;
        const int r = seg[e] + counts[e] - 1;
        float *d1 = (float *)g->alloc(g, sizeof(float) * rows);
        std::vector<int> one = {0};
        for (int k = 0; k < E; k++) one.push_back(k < e ? 0 : 1);
        int *dseg1 = (int *)dev_put(g, one.data(), sizeof(int) * one.size());
        g->linear_segments(g, d1, dx + (size_t)r * cols, gw.data(), dseg1, E, 1);
        std::vector<float> alone = dev_get(g, d1, rows);
        EXPECT_MSG(memcmp(alone.data(), got.data() + (size_t)r * rows, sizeof(float) * rows) == 0,
                   "%s: row %d alone differs from the same row among its expert's %d", what, r,
                   counts[e]);
        g->release(g, d1);
        g->release(g, dseg1);
    }
    g->release(g, dx);
    g->release(g, dy);
    g->release(g, dseg);
    for (auto &w : gw) g->unload_weight(g, &w);
}

static void test_linear_segments(void) {
    for (int mode = 0; mode < 2; mode++) {
        /* DeepSeek-V3 expert shapes, 8 experts: empty ones, one row, many, more than 64 */
        const std::vector<int> counts = {3, 0, 1, 70, 0, 12, 2, 64};
        segments_case(mode, 8, 2048, 7168, DTYPE_F8_E4M3, 128, counts, "gate_proj");
        segments_case(mode, 8, 7168, 2048, DTYPE_F8_E4M3, 128, counts, "down_proj");
        segments_case(mode, 8, 2048, 7168, DTYPE_BF16, 0, counts, "bf16 gate_proj");
        /* small shapes, the fixtures' 16 x 16 blocks: the generic path */
        segments_case(mode, 5, 24, 64, DTYPE_F8_E4M3, 16, {2, 0, 5, 1, 3}, "fixture-like");
        segments_case(mode, 3, 40, 24, DTYPE_F32, 0, {0, 4, 1}, "f32");
    }
}

/* FP8 weights through linear at decode batch sizes (the skinny kernel in bf16 mode). */
static void test_fp8_linear(void) {
    for (int mode = 0; mode < 2; mode++)
        for (int n : {1, 3, 8, 33, 64}) {
            backend *g = gpus[mode];
            host_weight hw = make_weight(1536, 7168, DTYPE_F8_E4M3, 0.02f, 128);
            weight gw = upload_copy(g, hw);
            std::vector<float> x = randn((size_t)n * 7168, 1.0f), want((size_t)n * 1536);
            cpu->linear(cpu, want.data(), x.data(), &hw.w, NULL, n);
            float *dx = (float *)dev_put(g, x.data(), sizeof(float) * x.size());
            float *dy = (float *)g->alloc(g, sizeof(float) * want.size());
            g->linear(g, dy, dx, &gw, NULL, n);
            std::vector<float> got = dev_get(g, dy, want.size());
            char what[96];
            snprintf(what, sizeof what, "linear [%s] FP8 [1536 x 7168], 128 x 128 blocks, n %d",
                     mode_names[mode], n);
            check_close(what, got.data(), want.data(), want.size(), mode == 0 ? 1e-5 : 1e-2);
            g->release(g, dx);
            g->release(g, dy);
            g->unload_weight(g, &gw);
        }
}

/* ---- MLA products ---------------------------------------------------------------------------- */

static void mla_case(int mode, int H, int nope, int v, int lat, dtype dt, int br, int n,
                     const char *name) {
    backend *g = gpus[mode];
    host_weight hw = make_weight((int64_t)H * (nope + v), lat, dt, 1.0f / sqrtf((float)lat), br);
    weight gw = upload_copy(g, hw);
    const int qk = nope + 64; /* q rows hold a rope part after each head's nope part */
    std::vector<float> q = randn((size_t)n * H * qk, 1.0f), want((size_t)n * H * lat);
    cpu->mla_q_absorb(cpu, want.data(), q.data(), qk, &hw.w, n, H, nope, v);
    float *dq = (float *)dev_put(g, q.data(), sizeof(float) * q.size());
    float *dl = (float *)g->alloc(g, sizeof(float) * want.size());
    g->mla_q_absorb(g, dl, dq, qk, &gw, n, H, nope, v);
    std::vector<float> got = dev_get(g, dl, want.size());
    char what[160];
    snprintf(what, sizeof what, "mla_q_absorb [%s] %s: %d heads, nope %d, lat %d, %s, %d tokens",
             mode_names[mode], name, H, nope, lat, dtype_name(dt), n);
    check_close(what, got.data(), want.data(), want.size(), mode == 0 ? 1e-5 : 1e-2);
    if (n > 1) { /* the last token alone gives the same bits */
        g->mla_q_absorb(g, dl, dq + (size_t)(n - 1) * H * qk, qk, &gw, 1, H, nope, v);
        std::vector<float> alone = dev_get(g, dl, (size_t)H * lat);
        EXPECT_MSG(memcmp(alone.data(), got.data() + (size_t)(n - 1) * H * lat,
                          sizeof(float) * H * lat) == 0,
                   "%s: the last token alone differs from it in the batch", what);
    }

    std::vector<float> o = randn((size_t)n * H * lat, 1.0f), want_o((size_t)n * H * v);
    cpu->mla_v_up(cpu, want_o.data(), o.data(), &hw.w, n, H, nope, v);
    float *dol = (float *)dev_put(g, o.data(), sizeof(float) * o.size());
    float *dout = (float *)g->alloc(g, sizeof(float) * want_o.size());
    g->mla_v_up(g, dout, dol, &gw, n, H, nope, v);
    std::vector<float> got_o = dev_get(g, dout, want_o.size());
    snprintf(what, sizeof what, "mla_v_up [%s] %s: %d heads, v %d, lat %d, %s, %d tokens",
             mode_names[mode], name, H, v, lat, dtype_name(dt), n);
    check_close(what, got_o.data(), want_o.data(), want_o.size(), mode == 0 ? 1e-5 : 1e-2);
    g->release(g, dq);
    g->release(g, dl);
    g->release(g, dol);
    g->release(g, dout);
    g->unload_weight(g, &gw);
}

static void test_mla_products(void) {
    for (int mode = 0; mode < 2; mode++) {
        for (int n : {1, 5, 64, 300})
            mla_case(mode, 128, 128, 128, 512, DTYPE_F8_E4M3, 128, n, "DeepSeek-V3");
        mla_case(mode, 16, 128, 128, 512, DTYPE_BF16, 0, 7, "bf16 weights");
        mla_case(mode, 4, 16, 16, 32, DTYPE_F8_E4M3, 16, 9, "fixture-like");
    }
}

/* ---- many weight arrays in one recorded pass ------------------------------------------------ */

static void test_many_expert_tables(void) {
    backend *g = gpus[1];
    const int A = 90, E = 2, R = 64, C = 64, n = 2;
    std::vector<host_weight> hw;
    std::vector<std::vector<weight>> gw(A);
    for (int a = 0; a < A; a++)
        for (int e = 0; e < E; e++) {
            hw.push_back(make_weight(R, C, DTYPE_BF16, 0.1f));
            gw[a].push_back(upload_copy(g, hw.back()));
        }
    const int seg[3] = {0, 1, 2};
    std::vector<float> x = randn((size_t)n * C, 1.0f);
    int *dseg = (int *)dev_put(g, seg, sizeof seg);
    float *dx = (float *)dev_put(g, x.data(), sizeof(float) * x.size());
    float *dy = (float *)g->alloc(g, sizeof(float) * (size_t)A * n * R);
    long rep0, rec0, rep1, rec1;
    backend_cuda_graph_stats(g, &rep0, &rec0);
    std::vector<std::vector<float>> runs;
    for (int run = 0; run < 3; run++) { /* eager, recorded, replayed */
        g->zero(g, dy, (size_t)A * n * R);
        if (!g->graph_begin(g, 0x7461626c6573ull)) {
            for (int a = 0; a < A; a++)
                g->linear_segments(g, dy + (size_t)a * n * R, dx, gw[a].data(), dseg, E, n);
            g->graph_end(g);
        }
        runs.push_back(dev_get(g, dy, (size_t)A * n * R));
    }
    backend_cuda_graph_stats(g, &rep1, &rec1);
    EXPECT_MSG(rec1 - rec0 == 1 && rep1 - rep0 >= 1, "recordings %ld, replays %ld", rec1 - rec0,
               rep1 - rep0);
    EXPECT(runs[0] == runs[1] && runs[0] == runs[2]);
    std::vector<float> want((size_t)n * R);
    std::vector<weight> cw = {hw[2 * (A - 1)].w, hw[2 * (A - 1) + 1].w};
    cpu->linear_segments(cpu, want.data(), x.data(), cw.data(), seg, E, n);
    check_close("many tables: the last array against the CPU", runs[2].data() + (size_t)(A - 1) * n * R,
                want.data(), want.size(), 1e-2);
    g->release(g, dseg);
    g->release(g, dx);
    g->release(g, dy);
    for (auto &v : gw)
        for (auto &w : v) g->unload_weight(g, &w);
}

static void test_combine_rows(void) {
    for (int mode = 0; mode < 2; mode++) {
        backend *g = gpus[mode];
        const int n = 9, K = 4, width = 300, rows = n * K;
        std::vector<float> src = randn((size_t)rows * width, 1.0f), d0 = randn((size_t)n * width, 1.0f);
        std::vector<int> idx(n * K);
        std::vector<float> sc(n * K);
        for (int i = 0; i < n * K; i++) idx[i] = (int)(rng_next() % rows), sc[i] = rng_uniform();
        std::vector<float> want = d0;
        cpu->combine_rows(cpu, want.data(), src.data(), idx.data(), sc.data(), n, K, width);
        float *ds = (float *)dev_put(g, src.data(), 4 * src.size());
        float *dd = (float *)dev_put(g, d0.data(), 4 * d0.size());
        int *di = (int *)dev_put(g, idx.data(), 4 * idx.size());
        float *dsc = (float *)dev_put(g, sc.data(), 4 * sc.size());
        g->combine_rows(g, dd, ds, di, dsc, n, K, width);
        std::vector<float> got = dev_get(g, dd, want.size());
        char what[64];
        snprintf(what, sizeof what, "combine_rows [%s]", mode_names[mode]);
        check_close(what, got.data(), want.data(), want.size(), 0.0);
        for (void *p : {(void *)ds, (void *)dd, (void *)di, (void *)dsc}) g->release(g, p);
    }
}

/* ---- routing ----------------------------------------------------------------------------------- */

static void route_case(const moe_router &r, int n) {
    backend *g = gpus[1];
    const int E = r.n_experts, K = r.top_k;
    std::vector<float> logits = randn((size_t)n * E, 2.0f), bias = randn(E, 0.1f);
    std::vector<int> idx((size_t)n * K);
    std::vector<float> w((size_t)n * K), scratch(moe_route_scratch_floats(&r));
    for (int i = 0; i < n; i++)
        moe_route(&idx[(size_t)i * K], &w[(size_t)i * K], &logits[(size_t)i * E], bias.data(), &r,
                  scratch.data());
    moe_dispatch d;
    d.rows = (int *)g->alloc(g, sizeof(int) * n * K);
    d.comb = (int *)g->alloc(g, sizeof(int) * n * K);
    d.comb_w = (float *)g->alloc(g, sizeof(float) * n * K);
    d.seg = (int *)g->alloc(g, sizeof(int) * (E + 1));
    d.counters = (int *)g->alloc(g, sizeof(int) * E);
    float *dl = (float *)dev_put(g, logits.data(), 4 * logits.size());
    float *db = (float *)dev_put(g, bias.data(), 4 * bias.size());
    moe_device_route(g, &d, dl, db, n, &r);
    std::vector<int> rows(n * K), comb(n * K), seg(E + 1);
    std::vector<float> comb_w(n * K);
    g->download(g, rows.data(), d.rows, 4 * rows.size());
    g->download(g, comb.data(), d.comb, 4 * comb.size());
    g->download(g, comb_w.data(), d.comb_w, 4 * comb_w.size());
    g->download(g, seg.data(), d.seg, 4 * seg.size());
    int bad = 0;
    EXPECT(seg[0] == 0 && seg[E] == n * K);
    for (int i = 0; i < n; i++) {
        std::vector<std::pair<int, float>> want;
        for (int k = 0; k < K; k++) want.push_back({idx[(size_t)i * K + k], w[(size_t)i * K + k]});
        std::sort(want.begin(), want.end());
        for (int k = 0; k < K; k++) {
            const int pos = comb[(size_t)i * K + k], e = want[k].first;
            /* the weights within CUDA's expf error (2 ulp) of glibc's */
            const bool ok = pos >= seg[e] && pos < seg[e + 1] && rows[pos] == i &&
                            fabsf(comb_w[(size_t)i * K + k] - want[k].second) <=
                                1e-6f * fabsf(want[k].second);
            if (!ok && bad++ < 5)
                fprintf(stderr, "    token %d, expert %d (weight %.9g): row %d, segment [%d, %d), "
                                "device weight %.9g\n",
                        i, e, want[k].second, pos, seg[e], seg[e + 1], comb_w[(size_t)i * K + k]);
        }
    }
    EXPECT_MSG(bad == 0, "routing %d tokens over %d experts (%d groups, top %d): %d assignments "
                         "differ from moe_route", n, E, r.n_group, K, bad);
    for (void *p : {(void *)d.rows, (void *)d.comb, (void *)d.comb_w, (void *)d.seg,
                    (void *)d.counters, (void *)dl, (void *)db})
        g->release(g, p);
}

static void test_routing(void) {
    moe_router v3 = {256, 8, 4, 8, 1, 2.5f};  /* DeepSeek-V3 */
    moe_router fix = {8, 2, 1, 2, 1, 2.5f};   /* the fixtures' */
    moe_router flat = {16, 1, 1, 3, 0, 1.0f}; /* one group, no renormalisation */
    route_case(v3, 64);
    route_case(v3, 300);
    route_case(fix, 17);
    route_case(flat, 5);
}

/* ---- the model ---------------------------------------------------------------------------------- */

static const char *fixtures[] = {"tests/fixtures/deepseek-yarn", "tests/fixtures/deepseek-fp8",
                                 "tests/fixtures/deepseek-qnull"};

static void test_forward(void) {
    for (auto dir : fixtures) {
        ref_logits ref = fixture_load(dir);
        teacher_model *mc = open_model(dir, cpu);
        float *lc;
        EXPECT(teacher_logits_all(mc, ref.tokens, ref.n, &lc) == R1_OK);
        const long V = ref.vocab;
        for (int mode = 0; mode < 2; mode++) {
            teacher_model *mg = open_model(dir, gpus[mode]);
            float *lg;
            EXPECT(teacher_logits_all(mg, ref.tokens, ref.n, &lg) == R1_OK);
            char what[128];
            snprintf(what, sizeof what, "%s [%s] logits vs the CPU", dir, mode_names[mode]);
            check_close(what, lg, lc, (size_t)ref.n * V, mode == 0 ? 1e-5 : 3e-2);
            if (mode == 0) {
                snprintf(what, sizeof what, "%s [fp32] logits vs transformers", dir);
                check_close(what, lg, ref.logits, (size_t)ref.n * V, 1e-4);
                int agree = 0;
                for (int t = 0; t < ref.n; t++) agree += argmax_f32(lg + (size_t)t * V, V) == ref.argmax[t];
                EXPECT_MSG(agree == ref.n, "%s [fp32]: argmax agrees with transformers at %d of %d",
                           dir, agree, ref.n);
            }
            /* incremental: prefill 5, then one token at a time into slot 1 of 2 */
            EXPECT(mg->cache_init(mg, 2, ref.n) == R1_OK);
            std::vector<int> slot(ref.n, 1), pos(ref.n);
            for (int i = 0; i < ref.n; i++) pos[i] = i;
            std::vector<float> step(V);
            const int k = 5;
            int last = k - 1;
            token_layout pre = {k, slot.data(), pos.data()};
            EXPECT(mg->forward(mg, ref.tokens, &pre, &last, 1, step.data()) == R1_OK);
            double worst = 0;
            for (int t = k - 1; t < ref.n; t++) {
                if (t >= k) {
                    token_layout one = {1, &slot[t], &pos[t]};
                    int row = 0;
                    EXPECT(mg->forward(mg, &ref.tokens[t], &one, &row, 1, step.data()) == R1_OK);
                }
                double num = 0, den = 0;
                for (long j = 0; j < V; j++) {
                    const double dd = (double)step[j] - lg[(size_t)t * V + j];
                    num += dd * dd;
                    den += (double)lg[(size_t)t * V + j] * lg[(size_t)t * V + j];
                }
                worst = fmax(worst, sqrt(num / den));
            }
            EXPECT_MSG(worst <= (mode == 0 ? 1e-5 : 2e-2),
                       "%s [%s]: incremental decoding vs the full forward: relative L2 %.3g", dir,
                       mode_names[mode], worst);
            fprintf(stderr, "    %s [%s]: incremental vs full %.3g\n", dir, mode_names[mode], worst);
            free(lg);
            teacher_close(mg);
        }
        free(lc);
        teacher_close(mc);
        fixture_free(&ref);
    }
}

/* Greedy tokens with the logits on the device (argmax there); graphs on. */
static std::vector<int> greedy(teacher_model *m, const int *prompt, int np, int steps) {
    const int V = (int)m->cfg.vocab_size;
    std::vector<int> out;
    std::vector<int> slot(np, 0), pos(np);
    for (int i = 0; i < np; i++) pos[i] = i;
    EXPECT(m->cache_init(m, 1, np + steps) == R1_OK);
    std::vector<float> logits(V);
    for (int s = 0; s < steps; s++) {
        int row = s == 0 ? np - 1 : 0, p = np + s - 1, z = 0;
        token_layout tl = s == 0 ? token_layout{np, slot.data(), pos.data()} : token_layout{1, &z, &p};
        const int *toks = s == 0 ? prompt : &out.back();
        EXPECT(m->forward(m, toks, &tl, &row, 1, logits.data()) == R1_OK);
        out.push_back(argmax_f32(logits.data(), V));
    }
    return out;
}

static void test_greedy_and_graphs(void) {
    const int np = 4, steps = 14;
    for (auto dir : fixtures) {
        ref_logits ref = fixture_load(dir);
        teacher_model *mc = open_model(dir, cpu);
        const int st = std::min(steps, (int)mc->cfg.max_position_embeddings - np);
        std::vector<int> want = greedy(mc, ref.tokens, np, st);
        for (int mode = 0; mode < 2; mode++) {
            backend *g = gpus[mode];
            teacher_model *mg = open_model(dir, g);
            long rep0, rec0, rep1, rec1;
            backend_cuda_graph_stats(g, &rep0, &rec0);
            std::vector<int> on = greedy(mg, ref.tokens, np, st);
            backend_cuda_graph_stats(g, &rep1, &rec1);
            backend_cuda_set_graphs(g, 0);
            std::vector<int> off = greedy(mg, ref.tokens, np, st);
            backend_cuda_set_graphs(g, 1);
            EXPECT_MSG(rep1 - rep0 >= st - 3, "%s [%s]: %d decode steps made %ld replays", dir,
                       mode_names[mode], st, rep1 - rep0);
            EXPECT_MSG(on == off, "%s [%s]: greedy tokens differ with and without graphs", dir,
                       mode_names[mode]);
            if (mode == 0)
                EXPECT_MSG(on == want, "%s [fp32]: %d greedy tokens differ from the CPU's", dir, st);
            else
                fprintf(stderr, "    %s [bf16]: %s the CPU's %d greedy tokens\n", dir,
                        on == want ? "equals" : "differs from", st);
            teacher_close(mg);
        }
        teacher_close(mc);
        fixture_free(&ref);
    }
}

int main(void) {
    if (open_backends("test_deepseek_cuda")) return 1;
    RUN_NAMED(test_combine_rows);
    RUN_NAMED(test_routing);
    RUN_NAMED(test_fp8_linear);
    RUN_NAMED(test_linear_segments);
    RUN_NAMED(test_mla_products);
    RUN_NAMED(test_many_expert_tables);
    RUN_NAMED(test_forward);
    RUN_NAMED(test_greedy_and_graphs);
    for (int mode = 0; mode < 2; mode++) gpus[mode]->destroy(gpus[mode]);
    TESTS_DONE();
}
