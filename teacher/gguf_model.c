/* A GGUF file (ours or llama.cpp's; qwen2 or llama) opened as a dense model: the config comes
 * from the architecture's metadata keys, the weights stay in the mapped file in their stored
 * type (F32/F16/BF16 as dtypes, block types through weight.qtype), and the forward pass is the
 * one of dense.c.
 *
 * Llama GGUF files hold q/k rows permuted for llama.cpp's adjacent-pair RoPE (convert_hf_to_gguf
 * permute(): within each head, row 2i is HF row i and row 2i+1 is HF row i + hd/2). Rotating
 * adjacent pairs of the permuted projections (ROPE_PAIRS_INTERLEAVED) is the same rotation as
 * rotate_half on the HF layout, and q·k does not change when both are permuted alike, so no
 * weight is copied. Qwen2 files keep the HF layout (llama.cpp's NEOX RoPE). Llama 3 frequency
 * scaling arrives baked into rope_freqs.weight: inv_freq[i] / rope_freqs[i]. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/gguf.h"
#include "core/error.h"
#include "teacher/dense.h"

static void close_gguf(void *p) {
    gguf_close(p);
    free(p);
}

/* A required (or optional, when def >= 0) positive integer "{arch}.{name}". */
static int arch_int(const gguf_file *g, const char *arch, const char *name, int64_t def,
                    int64_t hi, int *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    int64_t v = def;
    int r = gguf_get_int(g, key, &v);
    if (r < 0) return R1_EINPUT;
    if (r == 0 && def < 0) return err_fail(R1_EINPUT, g->path, "missing metadata key \"%s\"", key);
    if (v < 1 || v > hi)
        return err_fail(R1_EINPUT, g->path, "\"%s\" = %" PRId64 " is outside [1, %" PRId64 "]", key,
                        v, hi);
    *out = (int)v;
    return R1_OK;
}

static int arch_float(const gguf_file *g, const char *arch, const char *name, double def,
                      double lo, double hi, double *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    double v = def;
    if (gguf_get_float(g, key, &v) < 0) return R1_EINPUT;
    if (!(v >= lo && v <= hi))
        return err_fail(R1_EINPUT, g->path, "\"%s\" = %g is outside [%g, %g]", key, v, lo, hi);
    *out = v;
    return R1_OK;
}

/* model_config from the metadata: what llama.cpp's llama_model::load_hparams reads for these
 * two architectures. */
static int config_from_gguf(model_config *c, const gguf_file *g) {
    memset(c, 0, sizeof *c);
    char *arch = NULL;
    int r = gguf_get_str(g, "general.architecture", &arch);
    if (r <= 0) {
        if (r == 0) err_fail(R1_EINPUT, g->path, "missing metadata key \"general.architecture\"");
        return R1_EINPUT;
    }
    if (strcmp(arch, "qwen2") == 0) {
        c->arch = ARCH_QWEN2;
    } else if (strcmp(arch, "llama") == 0) {
        c->arch = ARCH_LLAMA;
    } else {
        err_fail(R1_EINPUT, g->path, "unsupported architecture \"%s\"", arch);
        free(arch);
        return err_hint("GGUF models of architecture qwen2 and llama can be read");
    }
    snprintf(c->model_type, sizeof c->model_type, "%s", arch);
    const int big = 1 << 24;
    int rc = arch_int(g, arch, "embedding_length", -1, big, &c->hidden_size);
    if (!rc) rc = arch_int(g, arch, "block_count", -1, 1 << 16, &c->num_layers);
    if (!rc) rc = arch_int(g, arch, "feed_forward_length", -1, big, &c->intermediate_size);
    if (!rc) rc = arch_int(g, arch, "attention.head_count", -1, 1 << 16, &c->num_heads);
    if (!rc)
        rc = arch_int(g, arch, "attention.head_count_kv", c->num_heads, 1 << 16, &c->num_kv_heads);
    if (!rc) rc = arch_int(g, arch, "context_length", 2048, 1 << 30, &c->max_position_embeddings);
    if (!rc)
        rc = arch_int(g, arch, "attention.key_length",
                      c->num_heads ? c->hidden_size / c->num_heads : 1, 1 << 16, &c->head_dim);
    int vdim = 0, rot = 0;
    if (!rc) rc = arch_int(g, arch, "attention.value_length", c->head_dim, 1 << 16, &vdim);
    if (!rc) rc = arch_int(g, arch, "rope.dimension_count", c->head_dim, 1 << 16, &rot);
    if (!rc)
        rc = arch_float(g, arch, "attention.layer_norm_rms_epsilon", 1e-6, 0, 1, &c->rms_norm_eps);
    c->rope.type = ROPE_DEFAULT;
    if (!rc) rc = arch_float(g, arch, "rope.freq_base", 10000.0, 1e-3, 1e12, &c->rope.theta);
    if (!rc && (vdim != c->head_dim || rot != c->head_dim || c->head_dim % 2))
        rc = err_fail(R1_EINPUT, g->path,
                      "head sizes key %d, value %d, rotary %d: only equal, even "
                      "sizes are supported",
                      c->head_dim, vdim, rot);
    if (!rc && c->num_heads % c->num_kv_heads)
        rc = err_fail(R1_EINPUT, g->path, "head_count %d is not a multiple of head_count_kv %d",
                      c->num_heads, c->num_kv_heads);
    char key[128], *scaling = NULL;
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (!rc && gguf_get_str(g, key, &scaling) < 0) rc = R1_EINPUT;
    if (!rc && scaling && strcmp(scaling, "none") != 0) {
        rc = err_fail(R1_EINPUT, g->path, "rope scaling \"%s\" is not supported", scaling);
        err_hint("supported: no scaling, and Llama 3 scaling through rope_freqs.weight");
    }
    free(scaling);
    free(arch);
    if (rc) return rc;
    const gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2)
        return err_fail(R1_EINPUT, g->path, "missing 2-D tensor \"token_embd.weight\"");
    c->vocab_size = emb->ne[1];
    c->tie_word_embeddings = gguf_find_tensor(g, "output.weight") == NULL;
    c->attention_bias = gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    int64_t id;
    c->bos_id = c->pad_id = -1;
    if (gguf_get_int(g, "tokenizer.ggml.bos_token_id", &id) == 1) c->bos_id = (int)id;
    if (gguf_get_int(g, "tokenizer.ggml.eos_token_id", &id) == 1) c->eos_ids[c->n_eos++] = (int)id;
    if (gguf_get_int(g, "tokenizer.ggml.padding_token_id", &id) == 1) c->pad_id = (int)id;
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "gguf");
    err_clear();
    return R1_OK;
}

/* A view of tensor `name` with PyTorch shape [rows, cols] (rows == 0: a vector [cols]). */
static int gguf_weight(weight *w, const gguf_file *g, const char *name, int64_t rows,
                       int64_t cols) {
    memset(w, 0, sizeof *w);
    const gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t) return err_fail(R1_EINPUT, g->path, "missing tensor \"%s\"", name);
    const int want_dims = rows == 0 ? 1 : 2;
    if (t->n_dims != want_dims || t->ne[0] != cols || (rows && t->ne[1] != rows)) {
        err_fail(R1_EINPUT, g->path, "tensor \"%s\" has ne [%" PRId64 ", %" PRId64 "] (%d-D), "
                 "but the metadata implies [%" PRId64 ", %" PRId64 "]", name, t->ne[0], t->ne[1],
                 t->n_dims, cols, rows ? rows : 1);
        return err_hint("the tensors do not belong to this file's metadata");
    }
    const quant_info *qi = quant_type_info(t->type);
    switch (t->type) {
    case QUANT_F32: w->dt = DTYPE_F32; break;
    case QUANT_F16: w->dt = DTYPE_F16; break;
    case QUANT_BF16: w->dt = DTYPE_BF16; break;
    default:
        if (!qi->dequant) {
            err_fail(R1_EINPUT, g->path,
                     "tensor \"%s\" has type %s, which this toolkit cannot read", name, qi->name);
            return err_hint("readable types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, "
                            "Q5_K, Q6_K (re-export with --quant q4_k_m for example)");
        }
        w->dt = DTYPE_U8;
        w->qtype = t->type;
    }
    w->rows = rows == 0 ? 1 : rows;
    w->cols = cols;
    w->data = t->data;
    return R1_OK;
}

static int load_layer(dense_model *m, const gguf_file *g, int i) {
    const model_config *c = &m->base.cfg;
    dense_layer *L = &m->layers[i];
    const int64_t d = c->hidden_size, qd = (int64_t)c->num_heads * c->head_dim,
                  kvd = (int64_t)c->num_kv_heads * c->head_dim, ff = c->intermediate_size;
    char n[GGUF_MAX_NAME + 16];
#define W(field, suffix, rows, cols)                                                             \
    snprintf(n, sizeof n, "blk.%d.%s", i, suffix);                                               \
    TRY(gguf_weight(&L->field, g, n, rows, cols))
    W(attn_norm, "attn_norm.weight", 0, d);
    W(wq, "attn_q.weight", qd, d);
    W(wk, "attn_k.weight", kvd, d);
    W(wv, "attn_v.weight", kvd, d);
    if (c->attention_bias) {
        W(bq, "attn_q.bias", 0, qd);
        W(bk, "attn_k.bias", 0, kvd);
        W(bv, "attn_v.bias", 0, kvd);
    }
    W(wo, "attn_output.weight", d, qd);
    W(mlp_norm, "ffn_norm.weight", 0, d);
    W(wg, "ffn_gate.weight", ff, d);
    W(wu, "ffn_up.weight", ff, d);
    W(wd, "ffn_down.weight", d, ff);
#undef W
    return R1_OK;
}

/* Divides the rotary frequencies by rope_freqs.weight (llama.cpp's freq_factors). */
static int apply_freq_factors(rope_table *r, const gguf_file *g) {
    const gguf_tensor *t = gguf_find_tensor(g, "rope_freqs.weight");
    if (!t) return R1_OK;
    if (t->type != QUANT_F32 || t->n_dims != 1 || t->ne[0] != r->dim / 2)
        return err_fail(R1_EINPUT, g->path, "rope_freqs.weight must be F32 [%d] (head size / 2), "
                        "found %s [%" PRId64 "]", r->dim / 2, quant_type_name(t->type), t->ne[0]);
    const float *f = (const float *)t->data;
    for (int i = 0; i < r->dim / 2; i++) {
        if (!(f[i] > 0))
            return err_fail(R1_EINPUT, g->path, "rope_freqs.weight[%d] = %g is not positive", i,
                            f[i]);
        r->inv_freq[i] /= f[i];
    }
    return R1_OK;
}

int gguf_model_open(teacher_model **out, const char *path, backend *be) {
    *out = NULL;
    gguf_file *g = xcalloc(1, sizeof *g);
    int rc = gguf_open(g, path);
    if (rc) {
        free(g);
        return rc;
    }
    model_config cfg;
    rc = config_from_gguf(&cfg, g);
    if (rc) {
        close_gguf(g);
        return rc;
    }
    dense_model *m = dense_new(&cfg, be);
    m->source = g;
    m->close_source = close_gguf;
    const model_config *c = &cfg;
    rc = gguf_weight(&m->embed, g, "token_embd.weight", c->vocab_size, c->hidden_size);
    if (!rc) rc = gguf_weight(&m->final_norm, g, "output_norm.weight", 0, c->hidden_size);
    if (!rc) {
        if (c->tie_word_embeddings)
            m->lm_head = m->embed;
        else
            rc = gguf_weight(&m->lm_head, g, "output.weight", c->vocab_size, c->hidden_size);
    }
    for (int i = 0; i < c->num_layers && !rc; i++) rc = load_layer(m, g, i);
    if (!rc) rc = dense_upload(m);
    if (!rc) {
        rope_init(&m->rope, &c->rope, c->head_dim,
                  c->arch == ARCH_LLAMA ? ROPE_PAIRS_INTERLEAVED : ROPE_PAIRS_HALF);
        rc = apply_freq_factors(&m->rope, g);
    }
    if (rc) {
        dense_free(m);
        return rc;
    }
    *out = &m->base;
    return R1_OK;
}
