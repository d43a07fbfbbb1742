/* The GPU sampler (teacher/sampler_device.h) against the CPU's sampler_pick, and the engine on
 * the GPU against the engine on the CPU.
 *
 * Rows of logits of several kinds (flat, peaked, normal at several scales, many exact ties,
 * -inf entries, a whole row of one value, a 150k-entry near-constant row whose top bucket needs
 * the refinement path, top-k reaching into the e^-48 tail) under several settings (temperature,
 * top-k, top-p, both), each with random uniforms, u = 0 and u = 1 - 2^-10: the GPU must pick
 * the CPU's token every time (sampler_device.h bounds the chance of a legitimate rounding
 * difference below 1e-9 per row, far below what these few thousand rows could show). Not
 * u = 1 - 2^-53: t = u S then sits within the sums' rounding of S itself, where the CPU's
 * sequential sum and the GPU's exact one may legitimately end on different tiny-weight ids.
 * A row's token must not depend on the batch it is sampled in. Then engine_run on the fixture
 * models: cuda-fp32 gives the CPU engine's greedy tokens, and its sampled ones but for at most
 * one sample in 18 (float32 logits differ by ~1e-6 from the CPU's); bf16 is reported. Also
 * prints the time of one sampling step for 1 and 64 rows of 152064 logits. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vector>

extern "C" {
#include "core/backend.h"
#include "core/backend_cuda.h"
#include "core/error.h"
#include "core/hash.h"
#include "teacher/engine.h"
#include "teacher/sampler.h"
#include "teacher/sampler_device.h"
#include "teacher/teacher.h"
#include "tests/unit/testing.h"
}

static uint64_t rng_state;
static uint64_t rng_next(void) { return hash_splitmix64(&rng_state); }
static double rng_u(void) { return (double)(rng_next() >> 11) * 0x1.0p-53; }
static float rng_normal(void) {
    double u = rng_u() + 0x1p-60, v = rng_u();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static backend *gpu;

enum { KIND_NORMAL1, KIND_NORMAL5, KIND_FLAT, KIND_PEAKED, KIND_TIES, KIND_NEG_INF,
       KIND_CONSTANT, KIND_NEAR_CONSTANT, KIND_COUNT };
static const char *kind_names[] = {"normal(1)", "normal(5)", "flat", "peaked", "ties",
                                   "-inf entries", "constant", "near-constant"};

static void fill_row(float *l, int V, int kind) {
    for (int i = 0; i < V; i++) {
        switch (kind) {
        case KIND_NORMAL1: l[i] = rng_normal(); break;
        case KIND_NORMAL5: l[i] = 5 * rng_normal(); break;
        case KIND_FLAT: l[i] = 0.05f * rng_normal(); break;
        case KIND_PEAKED: l[i] = (rng_next() % 1000 == 0 ? 25.0f : 0.0f) + rng_normal(); break;
        case KIND_TIES: l[i] = (float)(int)(3 * rng_normal()) * 0.5f; break;
        case KIND_NEG_INF: l[i] = rng_next() % 3 == 0 ? -INFINITY : 2 * rng_normal(); break;
        case KIND_CONSTANT: l[i] = 1.5f; break;
        case KIND_NEAR_CONSTANT: l[i] = 3.0f + 1e-5f * rng_normal(); break;
        }
    }
    if (kind == KIND_TIES) l[V / 2] = l[V / 3] = 9.0f; /* two equal maxima */
}

struct setting {
    double T, P;
    int K;
};

/* Samples n rows on the GPU and on the CPU; returns mismatches (and prints the first few). */
static int compare_rows(const std::vector<float> &l, int n, int V, const setting &st,
                        const std::vector<double> &u, const char *what) {
    sampler_device *sd;
    EXPECT(sampler_device_open(&sd, gpu, n, V) == R1_OK);
    float *dl = (float *)gpu->alloc(gpu, sizeof(float) * l.size());
    gpu->upload(gpu, dl, l.data(), sizeof(float) * l.size());
    std::vector<int> got(n);
    sampler_params p = {st.T, st.P, st.K};
    sampler_device_pick(sd, got.data(), dl, n, &p, u.data());
    sampler_work ws;
    sampler_work_init(&ws, V);
    int bad = 0;
    for (int r = 0; r < n; r++) {
        const int want = sampler_pick(&p, l.data() + (size_t)r * V, V, u[r], &ws);
        if (want != got[r] && bad++ < 5)
            fprintf(stderr, "    %s row %d (T %g, top-p %g, top-k %d, u %.17g): GPU %d, CPU %d\n",
                    what, r, st.T, st.P, st.K, u[r], got[r], want);
    }
    sampler_work_free(&ws);
    gpu->release(gpu, dl);
    sampler_device_close(sd);
    return bad;
}

/* n rows of V logits of one kind, the draws 0, just under 1, then random: how many rows'
 * tokens differ from the CPU's (the first few printed). */
static int check_rows(int V, int n, int kind, const setting &st) {
    std::vector<float> l((size_t)n * V);
    std::vector<double> u(n);
    for (int r = 0; r < n; r++) {
        fill_row(l.data() + (size_t)r * V, V, kind);
        u[r] = r == 0 ? 0.0 : r == 1 ? 1.0 - 0x1p-10 : rng_u();
    }
    char what[64];
    snprintf(what, sizeof what, "V %d %s", V, kind_names[kind]);
    const int b = compare_rows(l, n, V, st, u, what);
    EXPECT_MSG(b == 0, "%s: %d of %d rows differ", what, b, n);
    return b;
}

static void test_pick_vs_cpu(void) {
    const setting settings[] = {{0.6, 0.95, 0}, {1.0, 1.0, 0}, {0.7, 0.9, 50}, {1.3, 1.0, 20},
                                {0.6, 0.5, 0},  {0.0, 1.0, 0}, {2.0, 0.99, 7}, {0.05, 0.8, 0},
                                {1.0, 1.0, 1},  {0.9, 0.3, 3}};
    const int vocabs[] = {40, 1000, 32003};
    int rows = 0, bad = 0;
    for (int V : vocabs)
        for (int kind = 0; kind < KIND_COUNT; kind++)
            for (const setting &st : settings) {
                bad += check_rows(V, 24, kind, st);
                rows += 24;
            }
    fprintf(stderr, "    %d rows of 40 to 32003 logits: %d differ from the CPU\n", rows, bad);
}

/* 152064 logits: the refinement path (near-constant rows: one coarse bucket holds them all),
 * and top-k reaching into the tail bucket of peaked rows. */
static void test_pick_large(void) {
    const int V = 152064, n = 6;
    const setting settings[] = {{0.6, 0.95, 0}, {1.0, 1.0, 0}, {0.6, 1.0, 100000},
                                {0.8, 0.9, 5000}, {1.0, 0.999999, 0}};
    const int kinds[] = {KIND_NEAR_CONSTANT, KIND_PEAKED, KIND_FLAT, KIND_NORMAL1, KIND_TIES};
    int bad = 0, rows = 0;
    for (int kind : kinds)
        for (const setting &st : settings) {
            bad += check_rows(V, n, kind, st);
            rows += n;
        }
    fprintf(stderr, "    %d rows of 152064 logits: %d differ from the CPU\n", rows, bad);
}

/* The same row alone and at every position of a batch of other rows: the same token. */
static void test_batch_invariance(void) {
    const int V = 50000, n = 33;
    std::vector<float> l((size_t)n * V);
    for (int r = 0; r < n; r++) fill_row(l.data() + (size_t)r * V, V, r % 2 ? KIND_FLAT : KIND_NORMAL1);
    std::vector<double> u(n);
    for (auto &x : u) x = rng_u();
    sampler_device *sd;
    EXPECT(sampler_device_open(&sd, gpu, n, V) == R1_OK);
    float *dl = (float *)gpu->alloc(gpu, sizeof(float) * l.size());
    gpu->upload(gpu, dl, l.data(), sizeof(float) * l.size());
    sampler_params p = {0.6, 0.95, 0};
    std::vector<int> batch(n);
    sampler_device_pick(sd, batch.data(), dl, n, &p, u.data());
    for (int r = 0; r < n; r++) {
        int alone;
        sampler_device_pick(sd, &alone, dl + (size_t)r * V, 1, &p, &u[r]);
        EXPECT_MSG(alone == batch[r], "row %d: %d alone, %d in the batch", r, alone, batch[r]);
    }
    gpu->release(gpu, dl);
    sampler_device_close(sd);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_timing(void) {
    const int V = 152064;
    for (int n : {1, 64})
        for (int kind : {KIND_FLAT, KIND_NORMAL5}) {
            std::vector<float> l((size_t)n * V);
            for (int r = 0; r < n; r++) fill_row(l.data() + (size_t)r * V, V, kind);
            std::vector<double> u(n, 0.5);
            std::vector<int> tok(n);
            sampler_device *sd;
            EXPECT(sampler_device_open(&sd, gpu, n, V) == R1_OK);
            float *dl = (float *)gpu->alloc(gpu, sizeof(float) * l.size());
            gpu->upload(gpu, dl, l.data(), sizeof(float) * l.size());
            sampler_params p = {0.6, 0.95, 0};
            sampler_device_pick(sd, tok.data(), dl, n, &p, u.data());
            const int reps = 20;
            double t0 = now();
            for (int i = 0; i < reps; i++) sampler_device_pick(sd, tok.data(), dl, n, &p, u.data());
            const double us = (now() - t0) / reps * 1e6;
            fprintf(stderr, "    %d rows x %d logits (%s), T 0.6 top-p 0.95: %.1f us per step "
                            "(with the copy of the ids)\n",
                    n, V, kind_names[kind], us);
            gpu->release(gpu, dl);
            sampler_device_close(sd);
        }
}

/* ---- the engine -------------------------------------------------------------------------------- */

struct run_ctx {
    std::vector<std::vector<int>> prompts;
    int samples, next;
    std::vector<engine_request> reqs;
    std::vector<std::vector<int>> out; /* [prompt * samples + sample] */
};

static int next_req(void *ctx, engine_request *req) {
    run_ctx *c = (run_ctx *)ctx;
    if (c->next >= (int)c->prompts.size() * c->samples) return 0;
    const int k = c->next++, p = k / c->samples;
    char id[32];
    snprintf(id, sizeof id, "prompt-%d", p);
    *req = engine_request{c->prompts[p].data(), (int)c->prompts[p].size(),
                          sampler_stream(id, strlen(id)), k % c->samples, (void *)(intptr_t)k};
    return 1;
}

static int done_req(void *ctx, const engine_result *res) {
    run_ctx *c = (run_ctx *)ctx;
    c->out[(intptr_t)res->req->user].assign(res->tokens, res->tokens + res->n_tokens);
    return R1_OK;
}

static std::vector<std::vector<int>> run_engine(const char *dir, backend *be, double T,
                                                const std::vector<std::vector<int>> &prompts,
                                                int samples, int batch) {
    teacher_model *m;
    if (teacher_open(&m, dir, be)) {
        err_print();
        exit(1);
    }
    run_ctx c;
    c.prompts = prompts;
    c.samples = samples;
    c.next = 0;
    c.out.assign(prompts.size() * samples, {});
    const int eos = -1;
    engine_config ec = {};
    ec.max_batch = batch;
    ec.max_len = 64;
    ec.max_new_tokens = 24;
    ec.prefill_chunk = 16;
    ec.sp = sampler_params{T, 0.95, 0};
    ec.seed = 7;
    ec.eos = &eos;
    ec.n_eos = 0;
    engine_io io = {next_req, done_req, NULL, &c};
    EXPECT(engine_run(m, &ec, &io, NULL) == R1_OK);
    teacher_close(m);
    return c.out;
}

static void test_engine(void) {
    const char *dirs[] = {"tests/fixtures/qwen2-tied", "tests/fixtures/llama3-bf16"};
    backend *fp32 = backend_cuda(0, BACKEND_CUDA_FP32);
    EXPECT(fp32 != NULL);
    for (const char *dir : dirs) {
        std::vector<std::vector<int>> prompts; /* fixed, so the outcome is too */
        uint64_t h = 12345;
        for (int p = 0; p < 6; p++) {
            std::vector<int> t(3 + 5 * p);
            for (auto &x : t) {
                h = h * 6364136223846793005ull + 1442695040888963407ull;
                x = 4 + (int)((h >> 33) % 300);
            }
            prompts.push_back(t);
        }
        for (double T : {0.0, 0.8}) {
            const auto want = run_engine(dir, backend_cpu(), T, prompts, 3, 5);
            const auto got = run_engine(dir, fp32, T, prompts, 3, 5);
            const auto got_b2 = run_engine(dir, fp32, T, prompts, 3, 2);
            int differ = 0;
            for (size_t i = 0; i < want.size(); i++) differ += want[i] != got[i];
            /* Greedy: every token. Sampled: the logits differ by ~1e-6, which moves a cumulative
             * boundary past u * S with a chance of ~1e-4 per token; one sample of 18 may. */
            EXPECT_MSG(differ <= (T == 0 ? 0 : 1),
                       "%s T %g: %d of %zu samples on cuda-fp32 differ from the CPU", dir, T,
                       differ, want.size());
            EXPECT_MSG(got == got_b2, "%s T %g: cuda-fp32 samples depend on the batch size", dir, T);
            const auto bf = run_engine(dir, gpu, T, prompts, 3, 5);
            int bdiff = 0;
            for (size_t i = 0; i < want.size(); i++) bdiff += want[i] != bf[i];
            fprintf(stderr, "    %s T %g: cuda-fp32 %d/%zu samples equal the CPU's; bf16 %d/%zu\n",
                    dir, T, (int)want.size() - differ, want.size(), (int)want.size() - bdiff,
                    want.size());
        }
    }
    fp32->destroy(fp32);
}

int main(void) {
    rng_state = testing_seed();
    gpu = backend_cuda(0, BACKEND_CUDA_BF16);
    if (!gpu) {
        err_print();
        fprintf(stderr, "test_sampler_cuda needs a Hopper GPU\n");
        return 1;
    }
    RUN_NAMED(test_pick_vs_cpu);
    RUN_NAMED(test_pick_large);
    RUN_NAMED(test_batch_invariance);
    RUN_NAMED(test_engine);
    RUN_NAMED(test_timing);
    gpu->destroy(gpu);
    TESTS_DONE();
}
