/* Decode throughput of a model on a backend: the inner loop of `generate` (prefill a batch of
 * prompts as one ragged batch, then one token per sequence per step), sampling with the
 * engine's algorithm and random streams (teacher/sampler.h): on a GPU the logits stay in device
 * memory and the token is chosen there (teacher/sampler_device.h); on the CPU by sampler_pick.
 *
 *   build/bench/decode --model DIR --device cuda --batch 64 --prompt 64 --new 128
 *       [--temperature 0.6 --top-p 0.95 --top-k 0] [--profile]
 *
 * Prints one JSON line per measurement on stdout (progress on stderr):
 *   {"kind": "decode", "device", "tp", "batch", "prompt", "new", "load_s", "prefill_s", "decode_s",
 *    "decode_tok_s" (batch * (new - 1) / decode_s: the steps after the prefill's token),
 *    "e2e_tok_s" (batch * new / (prefill_s + decode_s): what transformers' generate reports),
 *    "temperature", "top_p", "top_k"}
 * --tp N splits a deepseek_v3 model over N GPUs (teacher/tensor_parallel.h); this binary then
 * also serves as its follower ranks (argv[1] "tp-rank").
 * --profile then runs the generation once more with per-op GPU timing (eager, no graphs) and
 * prints the table on stderr.
 * --linear-bench adds {"kind": "linear", "rows", "cols", "n", "path", "gbps"} for the decode
 * GEMV shapes of the model (bf16, n = 1), through the GEMV kernel and through cuBLASLt, timed
 * as replayed CUDA graphs over weight copies larger than L2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend_cuda.h"
#include "core/cli.h"
#include "core/clock.h"
#include "core/dtype.h"
#include "core/error.h"
#include "teacher/sampler.h"
#include "teacher/sampler_device.h"
#include "teacher/teacher.h"
#include "teacher/tensor_parallel.h"

static const char *opt_model, *opt_device, *opt_profile_json;
static int64_t opt_batch, opt_prompt, opt_new, opt_warmup, opt_top_k, opt_tp;
static double opt_temperature, opt_top_p;
static int opt_linear, opt_profile;

static const cli_opt opts[] = {
    {"model", OPT_STRING, &opt_model, NULL, 0, "DIR", "model directory (not needed for --linear-bench)"},
    {"device", OPT_STRING, &opt_device, "cuda", 0, "DEV", "cpu, cuda (bf16), cuda-fp32, cuda:N"},
    {"tp", OPT_INT, &opt_tp, "1", 0, "N", "GPUs a deepseek_v3 model is split over"},
    {"batch", OPT_INT, &opt_batch, "1", 0, "B", "sequences decoded together"},
    {"prompt", OPT_INT, &opt_prompt, "64", 0, "P", "prompt tokens per sequence (random ids)"},
    {"new", OPT_INT, &opt_new, "128", 0, "T", "new tokens per sequence (the prefill makes the first)"},
    {"warmup", OPT_INT, &opt_warmup, "2", 0, "N",
     "untimed runs first (two let the timed run replay recorded graphs throughout)"},
    {"temperature", OPT_FLOAT, &opt_temperature, "0.6", 0, "T", "sampling temperature; 0 is greedy"},
    {"top-p", OPT_FLOAT, &opt_top_p, "0.95", 0, "P", "nucleus mass; 1 turns it off"},
    {"top-k", OPT_INT, &opt_top_k, "0", 0, "K", "top-k; 0 turns it off"},
    {"profile", OPT_FLAG, &opt_profile, NULL, 0, NULL,
     "then one more run with per-op GPU times (stderr)"},
    {"profile-json", OPT_STRING, &opt_profile_json, NULL, 0, "FILE",
     "with --profile: also write the per-op times as JSON lines to FILE"},
    {"linear-bench", OPT_FLAG, &opt_linear, NULL, 0, NULL,
     "time the Qwen2.5-7B decode GEMV shapes (GEMV kernel vs cuBLASLt) instead"},
};
static const cli_spec spec = {
    .command = "decode",
    .summary = "Decode throughput of a model on a backend, sampling as generate does.",
    .opts = opts,
    .n_opts = sizeof opts / sizeof *opts,
};

static backend *make_backend(void) {
    backend *be;
    if (backend_open(&be, opt_device)) err_exit();
    return be;
}

/* The token of each of B rows: on the device when the backend samples there, else on the host
 * from downloaded logits (the CPU engine's path). Uniforms: seed 0, stream b, sample 0. */
static void pick(teacher_model *m, sampler_device *sd, float *host_logits, int B, int step,
                 int *next) {
    const sampler_params sp = {opt_temperature, opt_top_p, (int)opt_top_k};
    double *u = xmalloc(sizeof(double) * B);
    for (int b = 0; b < B; b++) u[b] = sampler_uniform(0, (uint64_t)b, 0, (uint64_t)step);
    if (sd) {
        sampler_device_pick(sd, next, m->logits, B, &sp, u);
    } else {
        const int V = (int)m->cfg.vocab_size;
#pragma omp parallel
        {
            sampler_work ws;
            sampler_work_init(&ws, V);
#pragma omp for
            for (int b = 0; b < B; b++)
                next[b] = sampler_pick(&sp, host_logits + (size_t)b * V, V, u[b], &ws);
            sampler_work_free(&ws);
        }
    }
    free(u);
}

/* One generation: prefill all prompts as one ragged batch, then new - 1 decode steps. */
static void generate(teacher_model *m, sampler_device *sd, const int *prompts, int B, int P,
                     int T, double *prefill_s, double *decode_s) {
    const int V = (int)m->cfg.vocab_size, n = B * P;
    int *slot = xmalloc(sizeof(int) * n), *pos = xmalloc(sizeof(int) * n);
    int *rows = xmalloc(sizeof(int) * B), *next = xmalloc(sizeof(int) * B);
    float *host = sd ? NULL : xmalloc(sizeof(float) * (size_t)B * V);
    for (int i = 0; i < n; i++) slot[i] = i / P, pos[i] = i % P;
    for (int b = 0; b < B; b++) rows[b] = b * P + P - 1;
    double t0 = clock_seconds();
    token_layout tl = {.n = n, .slot = slot, .pos = pos};
    if (m->forward(m, prompts, &tl, rows, B, host)) err_exit();
    pick(m, sd, host, B, 0, next);
    double t1 = clock_seconds();
    for (int b = 0; b < B; b++) slot[b] = b, rows[b] = b;
    for (int s = 1; s < T; s++) {
        for (int b = 0; b < B; b++) pos[b] = P + s - 1;
        token_layout st = {.n = B, .slot = slot, .pos = pos};
        if (m->forward(m, next, &st, rows, B, host)) err_exit();
        pick(m, sd, host, B, s, next);
    }
    double t2 = clock_seconds();
    *prefill_s = t1 - t0;
    *decode_s = t2 - t1;
    free(slot), free(pos), free(rows), free(next), free(host);
}

static void bench_decode(void) {
    backend *be;
    const int B = (int)opt_batch, P = (int)opt_prompt, T = (int)opt_new;
    if (B < 1 || P < 1 || T < 1) die(R1_EINPUT, "--batch/--prompt/--new", "must be positive");
    double t0 = clock_seconds();
    teacher_model *m;
    if (teacher_open_device(&m, &be, opt_model, opt_device, (int)opt_tp)) err_exit();
    const double load_s = clock_seconds() - t0;
    fprintf(stderr, "decode: %s on %s loaded in %.1f s\n", opt_model, be->name, load_s);
    if (m->cache_init(m, B, P + T)) err_exit();
    int *prompts = xmalloc(sizeof(int) * B * P);
    uint64_t h = 12345;
    for (int i = 0; i < B * P; i++) {
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        prompts[i] = (int)((h >> 33) % (uint64_t)m->cfg.vocab_size);
    }
    sampler_device *sd = NULL;
    if (sampler_device_supported(be) && sampler_device_open(&sd, be, B, (int)m->cfg.vocab_size))
        err_exit();
    double pf, dc;
    for (int w = 0; w < opt_warmup; w++) generate(m, sd, prompts, B, P, T < 4 ? T : 4, &pf, &dc);
    generate(m, sd, prompts, B, P, T, &pf, &dc);
    const double dtok = T > 1 ? B * (T - 1) / dc : 0, etok = B * T / (pf + dc);
    fprintf(stderr, "decode: batch %d prompt %d new %d: prefill %.1f ms, %.1f tokens/s decoding, "
                    "%.1f tokens/s end to end\n",
            B, P, T, pf * 1e3, dtok, etok);
    printf("{\"kind\": \"decode\", \"device\": \"%s\", \"tp\": %d, \"model\": \"%s\", "
           "\"batch\": %d, \"prompt\": %d, \"new\": %d, \"load_s\": %.3f, \"prefill_s\": %.6f, \"decode_s\": "
           "%.6f, \"decode_tok_s\": %.2f, \"e2e_tok_s\": %.2f, \"temperature\": %g, "
           "\"top_p\": %g, \"top_k\": %d}\n",
           opt_device, (int)opt_tp, opt_model, B, P, T, load_s, pf, dc, dtok, etok, opt_temperature, opt_top_p,
           (int)opt_top_k);
    fflush(stdout);
    if (opt_profile && backend_cuda_is(be)) {
        backend_cuda_profile(be, 1);
        generate(m, sd, prompts, B, P, T, &pf, &dc);
        fprintf(stderr, "decode: profiled run (eager): prefill %.1f ms, %.1f ms per decode step\n",
                pf * 1e3, T > 1 ? dc * 1e3 / (T - 1) : 0.0);
        backend_cuda_profile_report(be, stderr);
        if (opt_profile_json) {
            FILE *f = fopen(opt_profile_json, "w");
            if (!f) die(R1_ERUNTIME, opt_profile_json, "cannot write");
            fprintf(f, "{\"kind\": \"profiled_run\", \"batch\": %d, \"prompt\": %d, \"new\": %d, "
                       "\"prefill_ms\": %.3f, \"step_ms\": %.4f}\n",
                    B, P, T, pf * 1e3, T > 1 ? dc * 1e3 / (T - 1) : 0.0);
            backend_cuda_profile_json(be, f);
            fclose(f);
        }
        backend_cuda_profile(be, 0);
    }
    sampler_device_close(sd);
    free(prompts);
    teacher_close(m);
    be->destroy(be);
}

/* bf16 weights [rows, cols], enough copies to exceed the 50-60 MB L2, each timed as one linear
 * per copy inside a replayed graph. */
static void bench_linear(void) {
    backend *be = make_backend();
    if (strcmp(be->name, "cuda-bf16") != 0)
        die(R1_EINPUT, "--linear-bench", "needs a bf16 CUDA device (--device cuda)");
    const int64_t shapes[][2] = {{3584, 3584}, {512, 3584}, {18944, 3584}, {3584, 18944},
                                 {152064, 3584}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t rows = shapes[s][0], cols = shapes[s][1];
        const size_t bytes = (size_t)rows * cols * 2;
        int copies = (int)((1u << 30) / bytes) + 1; /* ~1 GiB per replay: timer noise < 1% */
        if (copies > 512) copies = 512;
        uint16_t *host = xmalloc(bytes);
        uint64_t h = 7;
        for (size_t i = 0; i < (size_t)rows * cols; i++) {
            h = h * 6364136223846793005ull + 1442695040888963407ull;
            host[i] = f32_to_bf16(((float)(h >> 40) / 16777216.0f - 0.5f) * 0.05f);
        }
        weight *w = xcalloc(copies, sizeof(weight));
        for (int c = 0; c < copies; c++) {
            w[c] = (weight){.dt = DTYPE_BF16, .rows = rows, .cols = cols, .data = host};
            if (be->upload_weight(be, &w[c])) err_exit();
        }
        free(host);
        float *xh = xmalloc(sizeof(float) * cols);
        for (int64_t j = 0; j < cols; j++) xh[j] = (float)((j * 37) % 101) / 101.0f - 0.5f;
        float *x = be->alloc(be, sizeof(float) * cols), *y = be->alloc(be, sizeof(float) * rows);
        be->upload(be, x, xh, sizeof(float) * cols);
        for (int path = 0; path < 2; path++) {
            backend_cuda_set_gemv_max(be, path == 0 ? 4 : 0);
            const int reps = 6;
            double best = 1e9;
            for (int r = 0; r < reps; r++) {
                be->sync(be);
                double t0 = clock_seconds();
                if (!be->graph_begin(be, 0x6c696e656172ull + s)) {
                    for (int c = 0; c < copies; c++) be->linear(be, y, x, &w[c], NULL, 1);
                    be->graph_end(be);
                }
                be->sync(be);
                double t = clock_seconds() - t0;
                if (r >= 3 && t < best) best = t; /* runs 3.. are replays */
            }
            const double gbps = (double)bytes * copies / best / 1e9;
            fprintf(stderr, "linear: [%lld x %lld] bf16, n 1, %s: %.0f GB/s\n", (long long)rows,
                    (long long)cols, path == 0 ? "GEMV" : "cuBLASLt", gbps);
            printf("{\"kind\": \"linear\", \"rows\": %lld, \"cols\": %lld, \"n\": 1, \"path\": "
                   "\"%s\", \"gbps\": %.1f}\n",
                   (long long)rows, (long long)cols, path == 0 ? "gemv" : "cublaslt", gbps);
            fflush(stdout);
        }
        for (int c = 0; c < copies; c++) be->unload_weight(be, &w[c]);
        free(w);
        be->release(be, x);
        be->release(be, y);
        free(xh);
    }
    backend_cuda_set_gemv_max(be, 4);
    be->destroy(be);
}

int main(int argc, char **argv) {
    err_set_command("bench decode");
    if (argc > 1 && strcmp(argv[1], "tp-rank") == 0) return cmd_tp_rank(argc - 1, argv + 1);
    cli_parse(&spec, argc, argv, NULL, NULL);
    if (opt_linear) {
        bench_linear();
    } else {
        if (!opt_model) die(R1_EINPUT, "--model", "is required");
        bench_decode();
    }
    return 0;
}
