/* Decode throughput of a dense model on a backend: the inner loop of `generate` (prefill a
 * batch of prompts as one ragged batch, then one token per sequence per step), greedy, with the
 * logits kept in backend memory and the token picked there (backend argmax).
 *
 *   build/bench/decode --model DIR --device cuda --batch 64 --prompt 64 --new 128
 *
 * Prints one JSON line per measurement on stdout (progress on stderr):
 *   {"kind": "decode", "device", "batch", "prompt", "new", "load_s", "prefill_s", "decode_s",
 *    "decode_tok_s" (batch * (new - 1) / decode_s: the steps after the prefill's token),
 *    "e2e_tok_s" (batch * new / (prefill_s + decode_s): what transformers' generate reports)}
 * --linear-bench adds {"kind": "linear", "rows", "cols", "n", "path", "gbps"} for the decode
 * GEMV shapes of the model (bf16, n = 1), through the GEMV kernel and through cuBLASLt, timed
 * as replayed CUDA graphs over weight copies larger than L2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/backend_cuda.h"
#include "core/cli.h"
#include "core/dtype.h"
#include "core/error.h"
#include "teacher/teacher.h"

static const char *opt_model, *opt_device;
static int64_t opt_batch, opt_prompt, opt_new, opt_warmup;
static int opt_linear;

static const cli_opt opts[] = {
    {"model", OPT_STRING, &opt_model, NULL, 0, "DIR", "model directory (not needed for --linear-bench)"},
    {"device", OPT_STRING, &opt_device, "cuda", 0, "DEV", "cpu, cuda (bf16), cuda-fp32, cuda:N"},
    {"batch", OPT_INT, &opt_batch, "1", 0, "B", "sequences decoded together"},
    {"prompt", OPT_INT, &opt_prompt, "64", 0, "P", "prompt tokens per sequence (random ids)"},
    {"new", OPT_INT, &opt_new, "128", 0, "T", "new tokens per sequence (the prefill makes the first)"},
    {"warmup", OPT_INT, &opt_warmup, "2", 0, "N",
     "untimed runs first (two let the timed run replay recorded graphs throughout)"},
    {"linear-bench", OPT_FLAG, &opt_linear, NULL, 0, NULL,
     "time the Qwen2.5-7B decode GEMV shapes (GEMV kernel vs cuBLASLt) instead"},
};
static const cli_spec spec = {
    .command = "decode",
    .summary = "Greedy decode throughput of a dense model on a backend.",
    .opts = opts,
    .n_opts = sizeof opts / sizeof *opts,
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static backend *make_backend(void) {
    backend *be;
    if (backend_open(&be, opt_device)) err_exit();
    return be;
}

/* One generation: prefill all prompts as one ragged batch, then new - 1 decode steps. */
static void generate(teacher_model *m, const int *prompts, int B, int P, int T, double *prefill_s,
                     double *decode_s) {
    backend *be = m->be;
    const int V = (int)m->cfg.vocab_size, n = B * P;
    int *slot = xmalloc(sizeof(int) * n), *pos = xmalloc(sizeof(int) * n);
    int *rows = xmalloc(sizeof(int) * B), *next = xmalloc(sizeof(int) * B);
    for (int i = 0; i < n; i++) slot[i] = i / P, pos[i] = i % P;
    for (int b = 0; b < B; b++) rows[b] = b * P + P - 1;
    int *dnext = be->alloc(be, sizeof(int) * B);
    double t0 = now();
    token_layout tl = {.n = n, .slot = slot, .pos = pos};
    if (m->forward(m, prompts, &tl, rows, B, NULL)) err_exit();
    be->argmax(be, dnext, m->logits, B, V);
    be->download(be, next, dnext, sizeof(int) * B);
    double t1 = now();
    for (int b = 0; b < B; b++) slot[b] = b, rows[b] = b;
    for (int s = 1; s < T; s++) {
        for (int b = 0; b < B; b++) pos[b] = P + s - 1;
        token_layout st = {.n = B, .slot = slot, .pos = pos};
        if (m->forward(m, next, &st, rows, B, NULL)) err_exit();
        be->argmax(be, dnext, m->logits, B, V);
        be->download(be, next, dnext, sizeof(int) * B);
    }
    double t2 = now();
    *prefill_s = t1 - t0;
    *decode_s = t2 - t1;
    be->release(be, dnext);
    free(slot), free(pos), free(rows), free(next);
}

static void bench_decode(void) {
    backend *be = make_backend();
    const int B = (int)opt_batch, P = (int)opt_prompt, T = (int)opt_new;
    if (B < 1 || P < 1 || T < 1) die(R1_EINPUT, "--batch/--prompt/--new", "must be positive");
    double t0 = now();
    teacher_model *m;
    if (teacher_open(&m, opt_model, be)) err_exit();
    const double load_s = now() - t0;
    fprintf(stderr, "decode: %s on %s loaded in %.1f s\n", opt_model, be->name, load_s);
    if (m->cache_init(m, B, P + T)) err_exit();
    int *prompts = xmalloc(sizeof(int) * B * P);
    uint64_t h = 12345;
    for (int i = 0; i < B * P; i++) {
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        prompts[i] = (int)((h >> 33) % (uint64_t)m->cfg.vocab_size);
    }
    double pf, dc;
    for (int w = 0; w < opt_warmup; w++) generate(m, prompts, B, P, T < 4 ? T : 4, &pf, &dc);
    generate(m, prompts, B, P, T, &pf, &dc);
    const double dtok = T > 1 ? B * (T - 1) / dc : 0, etok = B * T / (pf + dc);
    fprintf(stderr, "decode: batch %d prompt %d new %d: prefill %.1f ms, %.1f tokens/s decoding, "
                    "%.1f tokens/s end to end\n",
            B, P, T, pf * 1e3, dtok, etok);
    printf("{\"kind\": \"decode\", \"device\": \"%s\", \"model\": \"%s\", \"batch\": %d, "
           "\"prompt\": %d, \"new\": %d, \"load_s\": %.3f, \"prefill_s\": %.6f, \"decode_s\": "
           "%.6f, \"decode_tok_s\": %.2f, \"e2e_tok_s\": %.2f}\n",
           opt_device, opt_model, B, P, T, load_s, pf, dc, dtok, etok);
    fflush(stdout);
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
                double t0 = now();
                if (!be->graph_begin(be, 0x6c696e656172ull + s)) {
                    for (int c = 0; c < copies; c++) be->linear(be, y, x, &w[c], NULL, 1);
                    be->graph_end(be);
                }
                be->sync(be);
                double t = now() - t0;
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
    cli_parse(&spec, argc, argv, NULL, NULL);
    if (opt_linear) {
        bench_linear();
    } else {
        if (!opt_model) die(R1_EINPUT, "--model", "is required");
        bench_decode();
    }
    return 0;
}
