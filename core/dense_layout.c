#include "core/dense_layout.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"

/* Appends a tensor; layer >= 0 prefixes "model.layers.<layer>." to the name. */
static void add(dense_tensor *t, int *n, tensor_role role, int layer, const char *name, int64_t a,
                int64_t b) {
    dense_tensor *x = &t[(*n)++];
    if (layer >= 0)
        snprintf(x->name, sizeof x->name, "model.layers.%d.%s", layer, name);
    else
        snprintf(x->name, sizeof x->name, "%s", name);
    x->role = role;
    x->layer = layer;
    x->ndim = b ? 2 : 1;
    x->shape[0] = a;
    x->shape[1] = b;
}

int dense_layout(const model_config *c, dense_tensor **out, int *n_out) {
    if (c->arch != ARCH_QWEN2 && c->arch != ARCH_LLAMA)
        return err_fail(R1_EINPUT, c->model_type, "not a dense qwen2/llama model");
    const int64_t d = c->hidden_size, qd = (int64_t)c->num_heads * c->head_dim,
                  kvd = (int64_t)c->num_kv_heads * c->head_dim, ff = c->intermediate_size;
    dense_tensor *t = xcalloc((size_t)c->num_layers * 12 + 3, sizeof *t);
    int n = 0;
    add(t, &n, TENSOR_EMBED, -1, "model.embed_tokens.weight", c->vocab_size, d);
    for (int l = 0; l < c->num_layers; l++) {
#define L(role, suffix, a, b) add(t, &n, role, l, suffix, a, b)
        L(TENSOR_NORM, "input_layernorm.weight", d, 0);
        L(TENSOR_LINEAR, "self_attn.q_proj.weight", qd, d);
        if (c->attention_bias) L(TENSOR_BIAS, "self_attn.q_proj.bias", qd, 0);
        L(TENSOR_LINEAR, "self_attn.k_proj.weight", kvd, d);
        if (c->attention_bias) L(TENSOR_BIAS, "self_attn.k_proj.bias", kvd, 0);
        L(TENSOR_LINEAR, "self_attn.v_proj.weight", kvd, d);
        if (c->attention_bias) L(TENSOR_BIAS, "self_attn.v_proj.bias", kvd, 0);
        L(TENSOR_LINEAR, "self_attn.o_proj.weight", d, qd);
        L(TENSOR_NORM, "post_attention_layernorm.weight", d, 0);
        L(TENSOR_LINEAR, "mlp.gate_proj.weight", ff, d);
        L(TENSOR_LINEAR, "mlp.up_proj.weight", ff, d);
        L(TENSOR_LINEAR, "mlp.down_proj.weight", d, ff);
#undef L
    }
    add(t, &n, TENSOR_NORM, -1, "model.norm.weight", d, 0);
    if (!c->tie_word_embeddings) add(t, &n, TENSOR_HEAD, -1, "lm_head.weight", c->vocab_size, d);
    *out = t;
    *n_out = n;
    return R1_OK;
}
