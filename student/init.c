#include "student/init.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "core/dense_layout.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/safetensors.h"

/* splitmix64 stream and Box-Muller normals: deterministic on every platform. The stream's state
 * is a counter, so its k-th value is known without drawing the k - 1 before it: blocks of a
 * tensor are filled in parallel with the bits one thread would give. */
static double uniform01(uint64_t *s) {
    return ((double)(hash_splitmix64(s) >> 11) + 0.5) * 0x1p-53;
}

/* x[0, n) from the stream at state s0; each pair of values draws two numbers, so an odd n
 * draws one more than it writes. */
static void fill_normal(float *x, size_t n, double stddev, uint64_t s0) {
    enum { BLOCK = 1 << 18 }; /* even, so every block starts on a pair */
    const int64_t n_blocks = (int64_t)((n + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) if (n_blocks > 1)
    for (int64_t b = 0; b < n_blocks; b++) {
        const size_t lo = (size_t)b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
        uint64_t s = s0 + (uint64_t)lo * HASH_GOLDEN64;
        for (size_t i = lo; i < hi; i += 2) {
            double u = uniform01(&s), v = uniform01(&s), r = sqrt(-2.0 * log(u));
            x[i] = (float)(stddev * r * cos(2 * M_PI * v));
            if (i + 1 < n) x[i + 1] = (float)(stddev * r * sin(2 * M_PI * v));
        }
    }
}

/* What the writer needs to make tensor j when it reaches it: nothing is held but one tensor. */
typedef struct {
    const dense_tensor *t;
    const uint64_t *state; /* [n] the stream's state where tensor j's values start */
    double stddev;
    dtype dt;
    float *f32;            /* the float32 values of narrower types, before conversion */
} init_fill;

static void fill_tensor(void *ctx, int j, void *dst) {
    const init_fill *f = ctx;
    if (!dst) return;
    const dense_tensor *t = &f->t[j];
    const size_t k = dense_numel(t);
    float *x = f->dt == DTYPE_F32 ? dst : f->f32;
    if (t->role == TENSOR_NORM)
        for (size_t i = 0; i < k; i++) x[i] = 1.0f;
    else if (t->role == TENSOR_BIAS)
        memset(x, 0, sizeof(float) * k);
    else
        fill_normal(x, k, f->stddev, f->state[j]);
    if (f->dt != DTYPE_F32) dtype_from_f32(dst, x, f->dt, k);
}

int init_model_weights(const char *dir, const model_config *c, double stddev, uint64_t seed, dtype dt) {
    dense_tensor *t;
    int n;
    TRY(dense_layout(c, &t, &n));
    st_entry *e = xcalloc((size_t)n, sizeof *e);
    uint64_t *state = xmalloc(sizeof(uint64_t) * (size_t)n);
    /* the random tensors draw from one stream in layout order; each starts where the last ended */
    uint64_t s = seed ^ 0x5deece66dull;
    size_t largest = 0;
    for (int i = 0; i < n; i++) {
        const size_t k = dense_numel(&t[i]);
        state[i] = s;
        if (t[i].role != TENSOR_NORM && t[i].role != TENSOR_BIAS)
            s += (uint64_t)((k + 1) & ~(size_t)1) * HASH_GOLDEN64;
        if (k > largest) largest = k;
        e[i].name = t[i].name;
        e[i].dt = dt;
        e[i].ndim = t[i].ndim;
        e[i].shape[0] = t[i].shape[0];
        e[i].shape[1] = t[i].shape[1];
    }
    init_fill f = {t, state, stddev, dt, dt == DTYPE_F32 ? NULL : xmalloc(sizeof(float) * largest)};
    int rc = safetensors_write_dir_fill(dir, e, n, (size_t)5 << 30, fill_tensor, &f);
    free(f.f32);
    free(state);
    free(e);
    free(t);
    return rc;
}

static const char *opt_config, *opt_out, *opt_tokenizer, *opt_dtype;
static int64_t opt_seed;
static double opt_std;

static const cli_opt init_opts[] = {
    {"config", OPT_STRING, &opt_config, NULL, CLI_REQUIRED, "FILE", "config.json of a qwen2 or llama model"},
    {"out", OPT_STRING, &opt_out, NULL, CLI_REQUIRED, "DIR", "model directory to write"},
    {"tokenizer", OPT_STRING, &opt_tokenizer, NULL, 0, "DIR",
     "copy tokenizer.json and tokenizer_config.json from here"},
    {"seed", OPT_INT, &opt_seed, "0", 0, "S", "random seed"},
    {"std", OPT_FLOAT, &opt_std, "0.02", 0, "X", "standard deviation of the normal init (transformers' initializer_range)"},
    {"dtype", OPT_STRING, &opt_dtype, "f32", 0, "f32|bf16|f16", "storage dtype"},
};

static const cli_spec init_spec = {
    .command = "init",
    .summary = "Write a randomly initialised Qwen2/Llama model directory from a config.json.",
    .opts = init_opts,
    .n_opts = sizeof init_opts / sizeof *init_opts,
};

int cmd_init(int argc, char **argv) {
    cli_parse(&init_spec, argc, argv, NULL, NULL);
    dtype dt = strcmp(opt_dtype, "bf16") == 0 ? DTYPE_BF16 : strcmp(opt_dtype, "f16") == 0 ? DTYPE_F16
               : strcmp(opt_dtype, "f32") == 0 ? DTYPE_F32 : DTYPE_COUNT;
    if (dt == DTYPE_COUNT) die(R1_EINPUT, "--dtype", "expected f32, bf16 or f16, got \"%s\"", opt_dtype);
    if (!(opt_std > 0 && opt_std < 10)) die(R1_EINPUT, "--std", "must be in (0, 10)");
    model_config c;
    if (model_config_load(&c, opt_config)) err_exit();
    if (c.arch == ARCH_DEEPSEEK_V3) die(R1_EINPUT, opt_config, "init makes qwen2 and llama models only");
    if (dir_create(opt_out)) err_exit();
    char *text;
    size_t len;
    if (file_read_all(opt_config, 16u << 20, &text, &len)) err_exit();
    char *cfg_out = path_join(opt_out, "config.json");
    if (file_write_atomic(cfg_out, text, len)) err_exit();
    free(cfg_out);
    free(text);
    if (opt_tokenizer && (file_copy_into(opt_tokenizer, opt_out, "tokenizer.json", 1) ||
                          file_copy_into(opt_tokenizer, opt_out, "tokenizer_config.json", 0)))
        err_exit();
    if (init_model_weights(opt_out, &c, opt_std, (uint64_t)opt_seed, dt)) err_exit();
    fprintf(stderr, "init: wrote %s (%s, seed %lld)\n", opt_out, opt_dtype, (long long)opt_seed);
    return 0;
}
