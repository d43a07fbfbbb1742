/* Whole-file quantization types and the per-tensor type mix (llama.cpp src/llama-quant.cpp,
 * llama_tensor_get_type and tensor_type_fallback, for dense qwen2 / llama models). */
#include <string.h>

#include "convert/convert.h"
#include "core/error.h"

static const struct {
    const char *name;
    uint32_t file_type;   /* llama_ftype */
    quant_type base;      /* the default tensor type */
} quants[EXPORT_QUANT_COUNT] = {
    [EXPORT_F32] = {"f32", 0, QUANT_F32},         [EXPORT_F16] = {"f16", 1, QUANT_F16},
    [EXPORT_BF16] = {"bf16", 32, QUANT_BF16},     [EXPORT_Q8_0] = {"q8_0", 7, QUANT_Q8_0},
    [EXPORT_Q4_0] = {"q4_0", 2, QUANT_Q4_0},      [EXPORT_Q4_K_M] = {"q4_k_m", 15, QUANT_Q4_K},
    [EXPORT_Q5_K_M] = {"q5_k_m", 17, QUANT_Q5_K}, [EXPORT_Q6_K] = {"q6_k", 18, QUANT_Q6_K},
};

int export_quant_parse(const char *name, export_quant *out) {
    for (int i = 0; i < EXPORT_QUANT_COUNT; i++)
        if (strcmp(name, quants[i].name) == 0) {
            *out = (export_quant)i;
            return 0;
        }
    return -1;
}

const char *export_quant_name(export_quant q) { return quants[q].name; }
uint32_t export_file_type(export_quant q) { return quants[q].file_type; }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* llama.cpp's use_more_bits: the first and last eighth of the layers and every third between. */
static int use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static int divides(int64_t ne0, quant_type t) { return ne0 % quant_type_info(t)->block == 0; }

quant_type export_tensor_type(export_quant q, const export_tensor *t, int *fallback) {
    if (fallback) *fallback = 0;
    const quant_type base = quants[q].base;
    if (q == EXPORT_F32 || q == EXPORT_F16 || q == EXPORT_BF16) return base;
    quant_type type = base;
    const int is_output = strcmp(t->name, "output.weight") == 0 ||
                          (t->tied && strcmp(t->name, "token_embd.weight") == 0);
    if (is_output) {
        if (!divides(t->ne0, base))
            type = QUANT_Q8_0;
        else if (base != QUANT_Q8_0)
            type = QUANT_Q6_K;
    } else if (ends_with(t->name, ".attn_v.weight")) {
        if ((q == EXPORT_Q4_K_M || q == EXPORT_Q5_K_M) && use_more_bits(t->layer, t->n_layers))
            type = QUANT_Q6_K;
        if (t->big_model && type == QUANT_Q4_K) type = QUANT_Q5_K;
    } else if (ends_with(t->name, ".ffn_down.weight")) {
        if ((q == EXPORT_Q4_K_M || q == EXPORT_Q5_K_M) && use_more_bits(t->layer, t->n_layers))
            type = QUANT_Q6_K;
    }
    if (divides(t->ne0, type)) return type;
    if (fallback) *fallback = 1;
    switch (type) {
    case QUANT_Q4_K: type = QUANT_Q5_0; break;
    case QUANT_Q5_K: type = QUANT_Q5_1; break;
    case QUANT_Q6_K: type = QUANT_Q8_0; break;
    default: type = QUANT_F16; break;
    }
    return divides(t->ne0, type) ? type : QUANT_F16;
}
