/* Our block formats against llama.cpp's own: for every type, rows of test data quantized by us
 * and by ggml's reference quantizer (quantize_row_*_ref, what llama-quantize runs without an
 * importance matrix) must be the same bytes, and ggml's dequantizer must read our blocks to the
 * same floats as ours. libggml-base.so comes from node-llama-cpp (tests/e2e/lib/llamacpp.sh).
 *
 *   quants_vs_ggml LIBGGML_BASE_SO        prints one line per type; exit 1 on any difference */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quants.h"

typedef void (*quant_fn)(const float *, void *, int64_t);
typedef void (*dequant_fn)(const void *, float *, int64_t);

static uint64_t rng = 7;
static double uniform(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}
static float gauss(void) {
    double u = uniform(), v = uniform();
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    static const struct {
        quant_type t;
        const char *q, *dq;
    } types[] = {
        {QUANT_Q8_0, "quantize_row_q8_0_ref", "dequantize_row_q8_0"},
        {QUANT_Q4_0, "quantize_row_q4_0_ref", "dequantize_row_q4_0"},
        {QUANT_Q4_1, "quantize_row_q4_1_ref", "dequantize_row_q4_1"},
        {QUANT_Q5_0, "quantize_row_q5_0_ref", "dequantize_row_q5_0"},
        {QUANT_Q5_1, "quantize_row_q5_1_ref", "dequantize_row_q5_1"},
        {QUANT_Q4_K, "quantize_row_q4_K_ref", "dequantize_row_q4_K"},
        {QUANT_Q5_K, "quantize_row_q5_K_ref", "dequantize_row_q5_K"},
        {QUANT_Q6_K, "quantize_row_q6_K_ref", "dequantize_row_q6_K"},
    };
    enum { N = 256 * 64 };
    float *x = malloc(sizeof(float) * N), *a = malloc(sizeof(float) * N),
          *b = malloc(sizeof(float) * N);
    unsigned char *qa = malloc(N * 2), *qb = malloc(N * 2);
    /* rows of different characters, 256 values each: Gaussian at several scales, outliers,
     * all-positive, constant, zero, tiny, and a sparse row */
    for (int r = 0; r < N / 256; r++) {
        float *row = x + r * 256;
        const int kind = r % 8;
        const float scale = (float)pow(10.0, (r % 5) - 3);
        for (int i = 0; i < 256; i++) {
            float g = gauss() * scale;
            switch (kind) {
            case 0: case 1: row[i] = g; break;
            case 2: row[i] = i % 37 == 0 ? 20 * g : g; break;
            case 3: row[i] = fabsf(g) + scale; break;
            case 4: row[i] = scale; break;
            case 5: row[i] = 0; break;
            case 6: row[i] = g * 1e-6f; break;
            default: row[i] = i % 13 == 0 ? g : 0; break;
            }
        }
    }
    int bad = 0;
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        quant_fn gq = (quant_fn)dlsym(lib, types[k].q);
        dequant_fn gd = (dequant_fn)dlsym(lib, types[k].dq);
        if (!gq || !gd) {
            fprintf(stderr, "%s or %s missing from %s\n", types[k].q, types[k].dq, argv[1]);
            return 1;
        }
        const quant_type t = types[k].t;
        const size_t nb = quant_row_bytes(t, N);
        quant_quantize_row(qa, x, t, N);
        gq(x, qb, N);
        size_t diff = 0;
        for (size_t i = 0; i < nb; i++) diff += qa[i] != qb[i];
        quant_dequantize_row(a, qa, t, N);
        gd(qa, b, N);
        size_t fdiff = 0;
        for (int i = 0; i < N; i++) fdiff += memcmp(&a[i], &b[i], 4) != 0;
        printf("%-5s %zu of %zu bytes differ from ggml's quantizer, %zu of %d values differ "
               "from ggml's dequantizer\n", quant_type_name(t), diff, nb, fdiff, N);
        bad |= diff != 0 || fdiff != 0;
    }
    return bad;
}
