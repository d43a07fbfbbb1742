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
#include "teacher/forward_batch.h"

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
    m->k_cache = be->alloc(be, per * dtype_size(be->cache_dtype));
    m->v_cache = be->alloc(be, per * dtype_size(be->cache_dtype));
    tm->cache_slots = slots;
    tm->cache_len = len;
    return R1_OK;
}

static size_t dense_cache_bytes(const teacher_model *tm) {
    const model_config *c = &tm->cfg;
    return 2 * dtype_size(tm->be->cache_dtype) * (size_t)c->num_layers * c->num_kv_heads *
           c->head_dim;
}

static void release_buffers(dense_model *m) {
    backend *be = m->base.be;
    float *bufs[] = {m->x, m->h, m->q, m->att, m->k, m->v, m->g, m->u, m->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) be->release(be, bufs[i]);
    if (m->idx) be->release(be, m->idx);
    free(m->host_idx);
    m->x = m->h = m->q = m->att = m->k = m->v = m->g = m->u = m->logits = NULL;
    m->idx = m->host_idx = NULL;
    m->cap_n = m->cap_out = 0;
}

/* Makes the per-forward buffers hold n rows (tokens, and output rows), rounded up to a power
 * of two so that growing batches reallocate rarely. */
static void reserve_buffers(dense_model *m, int n) {
    if (n <= m->cap_n) return;
    const model_config *c = &m->base.cfg;
    backend *be = m->base.be;
    const int cn = forward_capacity(m->cap_n, n);
    release_buffers(m);
    const size_t f = sizeof(float), N = (size_t)cn, qd = (size_t)c->num_heads * c->head_dim,
                 kvd = (size_t)c->num_kv_heads * c->head_dim;
    m->x = be->alloc(be, f * N * c->hidden_size);
    m->h = be->alloc(be, f * N * c->hidden_size);
    m->q = be->alloc(be, f * N * qd);
    m->att = be->alloc(be, f * N * qd);
    m->k = be->alloc(be, f * N * kvd);
    m->v = be->alloc(be, f * N * kvd);
    m->g = be->alloc(be, f * N * c->intermediate_size);
    m->u = be->alloc(be, f * N * c->intermediate_size);
    m->idx = be->alloc(be, sizeof(int) * 4 * N);
    m->host_idx = xmalloc(sizeof(int) * 4 * N);
    m->cap_n = cn;
}

/* The logits buffer for n_out rows (only when they cannot go straight to the caller). */
static void reserve_logits(dense_model *m, int n_out) {
    if (n_out <= m->cap_out) return;
    backend *be = m->base.be;
    const int co = forward_capacity(m->cap_out, n_out);
    if (m->logits) be->release(be, m->logits);
    m->logits = be->alloc(be, sizeof(float) * (size_t)co * (size_t)m->base.cfg.vocab_size);
    m->cap_out = co;
}

static int dense_forward(teacher_model *tm, const int *tokens, const token_layout *tl,
                         const int *out_rows, int n_out, float *logits) {
    dense_model *m = (dense_model *)tm;
    const model_config *c = &tm->cfg;
    backend *be = tm->be;
    const int n = tl->n, d = c->hidden_size, H = c->num_heads, KV = c->num_kv_heads,
              hd = c->head_dim, ff = c->intermediate_size;
    const int kvd = KV * hd;
    TRY(forward_batch_check(tm, tokens, tl, out_rows, n_out));
    reserve_buffers(m, n > n_out ? n : n_out); /* x and h also hold the output rows */
    /* The head writes straight into the caller's array when that is backend memory too. */
    if (!(logits && be->host_memory)) reserve_logits(m, n_out);
    float *out = logits && be->host_memory ? logits : m->logits;
    /* Token ids, slots, positions and output rows go to backend memory in one copy. */
    forward_batch_upload(be, m->idx, m->host_idx, tokens, tl, out_rows, n_out);
    const int *ids = m->idx, *rows = m->idx + 3 * n;
    const token_layout btl = {.n = n, .slot = m->idx + n, .pos = m->idx + 2 * n};

    uint64_t key = forward_graph_key(0, tm, n, n_out, m->x, m->k_cache, out);
    if (!be->graph_begin(be, key ? key : 1)) {
        float *x = m->x, *h = m->h, *q = m->q, *k = m->k, *v = m->v, *att = m->att, *g = m->g,
              *u = m->u;
        const size_t layer_cache = (size_t)tm->cache_slots * tm->cache_len * kvd *
                                   dtype_size(be->cache_dtype);
        const float eps = (float)c->rms_norm_eps, scale = 1.0f / sqrtf((float)hd);
        be->embed(be, x, &m->embed, ids, n);
        for (int l = 0; l < c->num_layers; l++) {
            const dense_layer *L = &m->layers[l];
            void *kc = (char *)m->k_cache + l * layer_cache, *vc = (char *)m->v_cache + l * layer_cache;
            be->rmsnorm(be, h, x, &L->attn_norm, n, d, eps);
            {   /* q, k, v = h Wq^T + bq, h Wk^T + bk, h Wv^T + bv */
                float *const ys[] = {q, k, v};
                const weight *const ws[] = {&L->wq, &L->wk, &L->wv};
                const weight *const bs[] = {&L->bq, &L->bk, &L->bv};
                be->linear_multi(be, 3, ys, h, ws, c->attention_bias ? bs : NULL, n);
            }
            /* q, k = rope(q), rope(k); the cache takes k and v */
            be->rope_store_kv(be, q, k, v, kc, vc, &m->rope, &btl, H, KV, hd, tm->cache_len);
            be->attention(be, att, q, kc, vc, &btl, tm->cache_len, H, KV, hd, hd, scale);
            be->linear_add(be, x, att, &L->wo, NULL, n);       /* x += o_proj(att) */
            be->rmsnorm(be, h, x, &L->mlp_norm, n, d, eps);
            {   /* g, u = h Wg^T, h Wu^T */
                float *const ys[] = {g, u};
                const weight *const ws[] = {&L->wg, &L->wu};
                be->linear_multi(be, 2, ys, h, ws, NULL, n);
            }
            be->swiglu(be, g, g, u, n, ff, ff);
            be->linear_add(be, x, g, &L->wd, NULL, n);         /* x += down_proj(mlp) */
        }
        /* Only the requested rows reach the head: a decode step needs one row per sequence. */
        be->gather_rows(be, h, x, rows, n_out, d);
        be->rmsnorm(be, x, h, &m->final_norm, n_out, d, eps);
        be->linear(be, out, x, &m->lm_head, NULL, n_out);
        be->graph_end(be);
    }
    tm->logits = out;
    if (logits && out != logits)
        be->download(be, logits, out, sizeof(float) * (size_t)n_out * c->vocab_size);
    return R1_OK;
}

/* Every weight view of the model, for upload and unload; the lm_head only when it is not the
 * embedding itself. */
static int model_weights(dense_model *m, weight **out) {
    int k = 0;
    out[k++] = &m->embed;
    out[k++] = &m->final_norm;
    if (!m->base.cfg.tie_word_embeddings) out[k++] = &m->lm_head;
    for (int i = 0; i < m->base.cfg.num_layers; i++) {
        dense_layer *L = &m->layers[i];
        weight *ws[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->bq, &L->bk,
                        &L->bv, &L->wo, &L->mlp_norm, &L->wg, &L->wu, &L->wd};
        for (size_t j = 0; j < sizeof ws / sizeof *ws; j++)
            if (ws[j]->data) out[k++] = ws[j];
    }
    return k;
}

static weight **weight_list(dense_model *m, int *n) {
    weight **ws = xmalloc(sizeof(weight *) * (3 + 12 * (size_t)m->base.cfg.num_layers));
    *n = model_weights(m, ws);
    return ws;
}

static void dense_destroy(teacher_model *tm) {
    dense_model *m = (dense_model *)tm;
    backend *be = tm->be;
    if (m->k_cache) be->release(be, m->k_cache);
    if (m->v_cache) be->release(be, m->v_cache);
    release_buffers(m);
    if (m->layers) {
        int n;
        weight **ws = weight_list(m, &n);
        for (int i = 0; i < n; i++)
            if (ws[i]->device) be->unload_weight(be, ws[i]);
        free(ws);
    }
    free(m->layers);
    m->layers = NULL;
    m->k_cache = m->v_cache = NULL;
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

int dense_upload(dense_model *m) {
    backend *be = m->base.be;
    int nw, rc = R1_OK;
    weight **ws = weight_list(m, &nw);
    for (int i = 0; i < nw && !rc; i++) {
        weight *w = ws[i];
        if (!w->qtype || be->host_memory) {
            rc = be->upload_weight(be, w);
            continue;
        }
        /* GGUF blocks reach a device backend as float32 rows, which it converts to its own
         * storage type; the CPU backend reads the blocks as they are */
        weight f = *w;
        float *rows = xmalloc(sizeof(float) * (size_t)w->rows * (size_t)w->cols);
        weight_rows_to_f32(rows, w, 0, w->rows);
        f.dt = DTYPE_F32;
        f.qtype = 0;
        f.data = rows;
        rc = be->upload_weight(be, &f);
        free(rows);
        if (!rc) *w = f;
    }
    free(ws);
    if (!rc && m->base.cfg.tie_word_embeddings) m->lm_head = m->embed;
    return rc;
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
    if (!rc) rc = dense_upload(m); /* weights to the backend's memory (nothing to do on the CPU) */
    if (rc) {
        dense_free(m);
        return rc;
    }
    rope_init(&m->rope, &c->rope, c->head_dim, ROPE_PAIRS_HALF);
    *out = &m->base;
    return R1_OK;
}
