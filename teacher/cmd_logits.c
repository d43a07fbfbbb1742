/* r1-distill logits: run a model causally over token ids and write every position's logits. */
#include <stdio.h>
#include <stdlib.h>

#include "core/cli.h"
#include "core/error.h"
#include "core/fileio.h"
#include "teacher/teacher.h"
#include "teacher/tensor_parallel.h"

static const char *opt_model, *opt_tokens, *opt_out, *opt_device;
static int64_t opt_top, opt_tp;

static const cli_opt logits_opts[] = {
    {"model", OPT_STRING, &opt_model, NULL, CLI_REQUIRED, "DIR",
     "model directory (config.json + safetensors) or .gguf file"},
    {"tokens", OPT_STRING, &opt_tokens, NULL, CLI_REQUIRED, "IDS",
     "comma-separated token ids, run at positions 0..T-1"},
    {"out", OPT_STRING, &opt_out, NULL, 0, "FILE",
     "write float32 little-endian logits, row-major [T, vocab]"},
    {"top", OPT_INT, &opt_top, "5", 0, "K", "how many of the last position's top ids to print"},
    {"device", OPT_STRING, &opt_device, "cpu", 0, "DEV",
     "cpu, cuda (bf16 weights), cuda-fp32 (float32 throughout), cuda:N, auto"},
    {"tp", OPT_INT, &opt_tp, "1", 0, "N",
     "split a deepseek_v3 model over N GPUs (tensor and expert parallel; teacher/tensor_parallel.h)"},
};

static const cli_spec logits_spec = {
    .command = "logits",
    .summary = "Run a model over token ids and print the top ids of the last position.",
    .opts = logits_opts,
    .n_opts = sizeof logits_opts / sizeof *logits_opts,
};

/* Indices of the k largest values, largest first (ties: lower index first). */
static void top_k(const float *v, int64_t n, int k, int *idx) {
    for (int j = 0; j < k; j++) idx[j] = -1;
    for (int64_t i = 0; i < n; i++) {
        int j = k;
        while (j > 0 && (idx[j - 1] < 0 || v[i] > v[idx[j - 1]])) j--;
        if (j >= k) continue;
        for (int t = k - 1; t > j; t--) idx[t] = idx[t - 1];
        idx[j] = (int)i;
    }
}

int cmd_logits(int argc, char **argv) {
    cli_parse(&logits_spec, argc, argv, NULL, NULL);
    int n;
    int *tokens = cli_parse_int_list("--tokens", opt_tokens, &n);
    backend *be;
    teacher_model *m;
    if (teacher_open_device(&m, &be, opt_model, opt_device, (int)opt_tp)) err_exit();
    float *logits;
    if (teacher_logits_all(m, tokens, n, &logits)) err_exit();
    const int64_t V = m->cfg.vocab_size;
    if (opt_out && file_write_atomic(opt_out, logits, sizeof(float) * (size_t)n * (size_t)V))
        err_exit();
    int k = opt_top < 1 ? 1 : opt_top > V ? (int)V : (int)opt_top;
    int *idx = xmalloc(sizeof(int) * (size_t)k);
    const float *last = logits + (size_t)(n - 1) * V;
    top_k(last, V, k, idx);
    printf("position %d top-%d:\n", n - 1, k);
    for (int j = 0; j < k; j++) printf("  %8d  %.6f\n", idx[j], last[idx[j]]);
    free(idx);
    free(logits);
    free(tokens);
    teacher_close(m);
    be->destroy(be);
    return 0;
}
