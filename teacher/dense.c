/* Qwen2 and Llama: pre-norm decoder with grouped-query attention, rotary embeddings and a
 * SwiGLU MLP (transformers' modeling_qwen2.py / modeling_llama.py).
 *
 *   x = embed(tokens)
 *   for each layer:
 *       h = rmsnorm(x)                       # input_layernorm
 *       q, k, v = h Wq^T + bq, h Wk^T + bk, h Wv^T + bv
 *       q, k = rope(q), rope(k)              # rotate_half layout
 *       x += attention(q, K, V) Wo^T         # causal, KV heads shared by groups of heads
 *       h = rmsnorm(x)                       # post_attention_layernorm
 *       x += (silu(h Wg^T) * (h Wu^T)) Wd^T
 *   logits = rmsnorm(x) Wlm^T                # lm_head, or embed_tokens when tied
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "teacher/dense.h"

static int load_layer(dense_model *m, int i) {
    const model_config *c = &m->base.cfg;
    dense_layer *L = &m->layers[i];
    const int64_t d = c->hidden_size, qd = (int64_t)c->num_heads * c->head_dim,
                  kvd = (int64_t)c->num_kv_heads * c->head_dim, ff = c->intermediate_size;
    char n[256], why[128];
#define W(field, suffix, rows, cols, what)                                                       \
    snprintf(n, sizeof n, "model.layers.%d.%s", i, suffix);                                     \
    snprintf(why, sizeof why, "config.json %s", what);                                          \
    TRY(weight_load(&L->field, &m->st, n, rows, cols, NULL, why))
    W(attn_norm, "input_layernorm.weight", 0, d, "hidden_size");
    W(wq, "self_attn.q_proj.weight", qd, d, "num_attention_heads x head_dim, hidden_size");
    W(wk, "self_attn.k_proj.weight", kvd, d, "num_key_value_heads x head_dim, hidden_size");
    W(wv, "self_attn.v_proj.weight", kvd, d, "num_key_value_heads x head_dim, hidden_size");
    if (c->attention_bias) {
        W(bq, "self_attn.q_proj.bias", 0, qd, "num_attention_heads x head_dim");
        W(bk, "self_attn.k_proj.bias", 0, kvd, "num_key_value_heads x head_dim");
        W(bv, "self_attn.v_proj.bias", 0, kvd, "num_key_value_heads x head_dim");
    }
    W(wo, "self_attn.o_proj.weight", d, qd, "hidden_size, num_attention_heads x head_dim");
    W(mlp_norm, "post_attention_layernorm.weight", 0, d, "hidden_size");
    W(wg, "mlp.gate_proj.weight", ff, d, "intermediate_size, hidden_size");
    W(wu, "mlp.up_proj.weight", ff, d, "intermediate_size, hidden_size");
    W(wd, "mlp.down_proj.weight", d, ff, "hidden_size, intermediate_size");
#undef W
    return R1_OK;
}

static int dense_cache_init(teacher_model *tm, int slots, int len) {
    dense_model *m = (dense_model *)tm;
    const model_config *c = &tm->cfg;
    backend *be = tm->be;
    if (m->k_cache) be->release(be, m->k_cache);
    if (m->v_cache) be->release(be, m->v_cache);
    size_t per = (size_t)slots * len * c->num_kv_heads * c->head_dim * c->num_layers;
    m->k_cache = be->alloc(be, per * sizeof(float));
    m->v_cache = be->alloc(be, per * sizeof(float));
    tm->cache_slots = slots;
    tm->cache_len = len;
    return R1_OK;
}

static size_t dense_cache_bytes(const teacher_model *tm) {
    const model_config *c = &tm->cfg;
    return 2 * sizeof(float) * (size_t)c->num_layers * c->num_kv_heads * c->head_dim;
}

static int dense_forward(teacher_model *tm, const int *tokens, const token_layout *tl,
                         const int *out_rows, int n_out, float *logits) {
    dense_model *m = (dense_model *)tm;
    const model_config *c = &tm->cfg;
    backend *be = tm->be;
    const int n = tl->n, d = c->hidden_size, H = c->num_heads, KV = c->num_kv_heads,
              hd = c->head_dim, ff = c->intermediate_size;
    const int qd = H * hd, kvd = KV * hd;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return err_fail(R1_EINPUT, "tokens", "token id %d is outside the vocabulary [0, %lld)",
                            tokens[i], (long long)c->vocab_size);
        if (tl->slot[i] < 0 || tl->slot[i] >= tm->cache_slots || tl->pos[i] < 0 ||
            tl->pos[i] >= tm->cache_len)
            return err_fail(R1_EINPUT, "tokens", "position %d is past the cache length %d",
                            tl->pos[i], tm->cache_len);
    }
    float *x = be->alloc(be, sizeof(float) * (size_t)n * d);
    float *h = be->alloc(be, sizeof(float) * (size_t)n * d);
    float *q = be->alloc(be, sizeof(float) * (size_t)n * qd);
    float *k = be->alloc(be, sizeof(float) * (size_t)n * kvd);
    float *v = be->alloc(be, sizeof(float) * (size_t)n * kvd);
    float *att = be->alloc(be, sizeof(float) * (size_t)n * qd);
    float *g = be->alloc(be, sizeof(float) * (size_t)n * ff);
    float *u = be->alloc(be, sizeof(float) * (size_t)n * ff);
    const size_t layer_cache = (size_t)tm->cache_slots * tm->cache_len * kvd;
    const float eps = (float)c->rms_norm_eps, scale = 1.0f / sqrtf((float)hd);

    be->embed(be, x, &m->embed, tokens, n);
    for (int l = 0; l < c->num_layers; l++) {
        const dense_layer *L = &m->layers[l];
        float *kc = m->k_cache + l * layer_cache, *vc = m->v_cache + l * layer_cache;
        be->rmsnorm(be, h, x, &L->attn_norm, n, d, eps);
        be->linear(be, q, h, &L->wq, c->attention_bias ? &L->bq : NULL, n);
        be->linear(be, k, h, &L->wk, c->attention_bias ? &L->bk : NULL, n);
        be->linear(be, v, h, &L->wv, c->attention_bias ? &L->bv : NULL, n);
        be->rope(be, q, &m->rope, tl->pos, n, qd, H, hd, 0);
        be->rope(be, k, &m->rope, tl->pos, n, kvd, KV, hd, 0);
        be->kv_store(be, kc, k, tl, kvd, tm->cache_len);
        be->kv_store(be, vc, v, tl, kvd, tm->cache_len);
        be->attention(be, att, q, kc, vc, tl, tm->cache_len, H, KV, hd, hd, scale);
        be->linear(be, h, att, &L->wo, NULL, n);
        be->add(be, x, h, (size_t)n * d);
        be->rmsnorm(be, h, x, &L->mlp_norm, n, d, eps);
        be->linear(be, g, h, &L->wg, NULL, n);
        be->linear(be, u, h, &L->wu, NULL, n);
        be->swiglu(be, g, g, u, n, ff, ff);
        be->linear(be, h, g, &L->wd, NULL, n);
        be->add(be, x, h, (size_t)n * d);
    }
    /* Only the requested rows reach the head: a decode step needs one row per sequence. */
    for (int i = 0; i < n_out; i++) memcpy(h + (size_t)i * d, x + (size_t)out_rows[i] * d, sizeof(float) * d);
    be->rmsnorm(be, x, h, &m->final_norm, n_out, d, eps);
    be->linear(be, logits, x, &m->lm_head, NULL, n_out);

    float *bufs[] = {x, h, q, k, v, att, g, u};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be->release(be, bufs[i]);
    return R1_OK;
}

static void dense_destroy(teacher_model *tm) {
    dense_model *m = (dense_model *)tm;
    if (m->k_cache) tm->be->release(tm->be, m->k_cache);
    if (m->v_cache) tm->be->release(tm->be, m->v_cache);
    m->k_cache = m->v_cache = NULL;
    free(m->layers);
    m->layers = NULL;
    rope_free(&m->rope);
    safetensors_close(&m->st);
    if (m->close_source) m->close_source(m->source);
    m->close_source = NULL;
}

dense_model *dense_new(const model_config *cfg, backend *be) {
    dense_model *m = xcalloc(1, sizeof *m);
    m->base.cfg = *cfg;
    m->base.be = be;
    m->base.forward = dense_forward;
    m->base.cache_init = dense_cache_init;
    m->base.cache_bytes_per_token = dense_cache_bytes;
    m->base.destroy = dense_destroy;
    m->layers = xcalloc((size_t)cfg->num_layers, sizeof *m->layers);
    return m;
}

void dense_free(dense_model *m) {
    dense_destroy(&m->base);
    free(m);
}

int dense_open(teacher_model **out, const char *path, const model_config *cfg, backend *be) {
    dense_model *m = dense_new(cfg, be);
    int rc = safetensors_open(&m->st, path);
    if (rc) {
        dense_free(m);
        return rc;
    }
    const model_config *c = cfg;
    rc = weight_load(&m->embed, &m->st, "model.embed_tokens.weight", c->vocab_size, c->hidden_size,
                     NULL, "config.json vocab_size, hidden_size");
    if (!rc)
        rc = weight_load(&m->final_norm, &m->st, "model.norm.weight", 0, c->hidden_size, NULL,
                         "config.json hidden_size");
    if (!rc) {
        if (c->tie_word_embeddings)
            m->lm_head = m->embed;
        else
            rc = weight_load(&m->lm_head, &m->st, "lm_head.weight", c->vocab_size, c->hidden_size,
                             NULL, "config.json vocab_size, hidden_size (untied)");
    }
    for (int i = 0; i < c->num_layers && !rc; i++) rc = load_layer(m, i);
    if (rc) {
        dense_free(m);
        return rc;
    }
    rope_init(&m->rope, &c->rope, c->head_dim, ROPE_PAIRS_HALF);
    *out = &m->base;
    return R1_OK;
}
