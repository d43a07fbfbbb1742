/* Hugging Face directory -> GGUF (convert_hf_to_gguf.py + llama-quantize in one pass).
 *
 *   model.embed_tokens.weight                 token_embd.weight
 *   model.layers.N.input_layernorm.weight     blk.N.attn_norm.weight
 *   model.layers.N.self_attn.{q,k,v}_proj.*   blk.N.attn_{q,k,v}.{weight,bias}
 *   model.layers.N.self_attn.o_proj.weight    blk.N.attn_output.weight
 *   model.layers.N.post_attention_layernorm   blk.N.ffn_norm.weight
 *   model.layers.N.mlp.{gate,up,down}_proj    blk.N.ffn_{gate,up,down}.weight
 *   model.norm.weight                         output_norm.weight
 *   lm_head.weight                            output.weight (omitted when tied: llama.cpp
 *                                             reuses token_embd)
 *   (llama3 rope scaling)                     rope_freqs.weight, F32 [head_dim / 2]
 *
 * Llama q/k rows (and biases) are permuted for llama.cpp's adjacent-pair RoPE: within each head
 * of size hd, GGUF row 2j + t is HF row t * hd/2 + j (convert_hf_to_gguf LlamaModel.permute).
 * Qwen2 uses NEOX RoPE and keeps the HF layout. 1-D tensors are F32; 2-D weights take the type
 * export_tensor_type chooses. Rows are read in their stored dtype, checked finite, quantized in
 * parallel and streamed to the file, so memory stays at a few rows per thread. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convert/convert.h"
#include "convert/gguf.h"
#include "convert/vocab.h"
#include "core/config.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "core/weight.h"

typedef struct {
    char gguf[GGUF_MAX_NAME];
    char hf[128];
    int64_t rows, cols;     /* PyTorch shape; rows 0 for vectors */
    int permute_heads;      /* llama q/k: the head count to permute rows over, else 0 */
    int layer;
    quant_type type;
    int fallback;
    const float *f32;       /* rope_freqs: computed values instead of a checkpoint tensor */
} plan_tensor;

typedef struct {
    plan_tensor *t;
    int n, cap;
} plan;

static plan_tensor *plan_add(plan *p, const char *gguf, const char *hf, int64_t rows, int64_t cols,
                             int layer) {
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->t = xrealloc(p->t, sizeof *p->t * (size_t)p->cap);
    }
    plan_tensor *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->gguf, sizeof t->gguf, "%s", gguf);
    snprintf(t->hf, sizeof t->hf, "%s", hf);
    t->rows = rows;
    t->cols = cols;
    t->layer = layer;
    return t;
}

/* The source row of GGUF row r of a permuted llama q/k projection. */
static int64_t permuted_row(int64_t r, int64_t rows, int heads) {
    const int64_t hd = rows / heads, h = r / hd, k = r % hd;
    return h * hd + (k % 2) * (hd / 2) + k / 2;
}

/* convert_hf_to_gguf's llama3 rope factors: 1 for short wavelengths, `factor` for long ones,
 * 1 / ((1 - s) / factor + s) between. */
static float *llama3_rope_factors(const model_config *c) {
    const int half = c->head_dim / 2;
    float *f = xmalloc(sizeof(float) * (size_t)half);
    const double pi = 3.14159265358979323846, old = c->rope.original_max_position;
    const double low_wl = old / c->rope.low_freq_factor, high_wl = old / c->rope.high_freq_factor;
    for (int i = 0; i < half; i++) {
        float freq = 1.0f / powf((float)c->rope.theta, (float)(2 * i) / (float)c->head_dim);
        double wl = 2 * pi / freq;
        if (wl < high_wl)
            f[i] = 1.0f;
        else if (wl > low_wl)
            f[i] = (float)c->rope.factor;
        else {
            double s = (old / wl - c->rope.low_freq_factor) /
                       (c->rope.high_freq_factor - c->rope.low_freq_factor);
            f[i] = (float)(1.0 / ((1 - s) / c->rope.factor + s));
        }
    }
    return f;
}

static int check_config(const model_config *c, const char *dir) {
    if (c->arch != ARCH_QWEN2 && c->arch != ARCH_LLAMA) {
        err_fail(R1_EINPUT, dir, "cannot export model_type \"%s\" to GGUF", c->model_type);
        return err_hint("export supports qwen2 and llama models (the R1-Distill students)");
    }
    if (c->rope.type == ROPE_YARN || (c->rope.type == ROPE_LLAMA3 && c->arch != ARCH_LLAMA)) {
        err_fail(R1_EINPUT, dir, "%s rope scaling on a %s model is not supported by the export",
                 c->rope.type == ROPE_YARN ? "yarn" : "llama3", c->model_type);
        return err_hint("supported: no rope scaling, and llama3 scaling on llama models");
    }
    return R1_OK;
}

static void build_plan(plan *p, const model_config *c) {
    const int64_t d = c->hidden_size, qd = (int64_t)c->num_heads * c->head_dim,
                  kvd = (int64_t)c->num_kv_heads * c->head_dim, ff = c->intermediate_size;
    const int llama = c->arch == ARCH_LLAMA;
    plan_add(p, "token_embd.weight", "model.embed_tokens.weight", c->vocab_size, d, -1);
    for (int i = 0; i < c->num_layers; i++) {
        char g[GGUF_MAX_NAME], h[128];
#define T(gs, hs, rows, cols)                                                                      \
    (snprintf(g, sizeof g, "blk.%d.%s", i, gs),                                                    \
     snprintf(h, sizeof h, "model.layers.%d.%s", i, hs), plan_add(p, g, h, rows, cols, i))
        T("attn_norm.weight", "input_layernorm.weight", 0, d);
        T("attn_q.weight", "self_attn.q_proj.weight", qd, d)->permute_heads =
            llama ? c->num_heads : 0;
        T("attn_k.weight", "self_attn.k_proj.weight", kvd, d)->permute_heads =
            llama ? c->num_kv_heads : 0;
        T("attn_v.weight", "self_attn.v_proj.weight", kvd, d);
        if (c->attention_bias) {
            T("attn_q.bias", "self_attn.q_proj.bias", 0, qd)->permute_heads =
                llama ? c->num_heads : 0;
            T("attn_k.bias", "self_attn.k_proj.bias", 0, kvd)->permute_heads =
                llama ? c->num_kv_heads : 0;
            T("attn_v.bias", "self_attn.v_proj.bias", 0, kvd);
        }
        T("attn_output.weight", "self_attn.o_proj.weight", d, qd);
        T("ffn_norm.weight", "post_attention_layernorm.weight", 0, d);
        T("ffn_gate.weight", "mlp.gate_proj.weight", ff, d);
        T("ffn_up.weight", "mlp.up_proj.weight", ff, d);
        T("ffn_down.weight", "mlp.down_proj.weight", d, ff);
#undef T
    }
    plan_add(p, "output_norm.weight", "model.norm.weight", 0, d, -1);
    if (!c->tie_word_embeddings)
        plan_add(p, "output.weight", "lm_head.weight", c->vocab_size, d, -1);
}

static void put_metadata(gguf_writer *w, const model_config *c, const export_options *o,
                         const char *name) {
    const char *arch = c->arch == ARCH_LLAMA ? "llama" : "qwen2";
    char k[96];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    gguf_put_str(w, "general.architecture", arch);
    gguf_put_str(w, "general.type", "model");
    gguf_put_str(w, "general.name", name);
    gguf_put_u32(w, "general.file_type", export_file_type(o->quant));
    gguf_put_u32(w, "general.quantization_version", 2);
    gguf_put_u32(w, KEY("context_length"), (uint32_t)c->max_position_embeddings);
    gguf_put_u32(w, KEY("embedding_length"), (uint32_t)c->hidden_size);
    gguf_put_u32(w, KEY("block_count"), (uint32_t)c->num_layers);
    gguf_put_u32(w, KEY("feed_forward_length"), (uint32_t)c->intermediate_size);
    gguf_put_u32(w, KEY("attention.head_count"), (uint32_t)c->num_heads);
    gguf_put_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->num_kv_heads);
    gguf_put_f32(w, KEY("rope.freq_base"), (float)c->rope.theta);
    gguf_put_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)c->rms_norm_eps);
    gguf_put_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim);
    gguf_put_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim);
    gguf_put_u32(w, KEY("rope.dimension_count"), (uint32_t)c->head_dim);
    if (c->arch == ARCH_LLAMA) gguf_put_u32(w, KEY("vocab_size"), (uint32_t)c->vocab_size);
#undef KEY
}

enum { CHUNK_ROWS = 256 };

/* Streams one tensor: rows in chunks, converted to f32, permuted, checked, quantized. */
static int write_tensor(gguf_writer *w, const plan_tensor *t, const weight *src,
                        const char *shard) {
    const int64_t rows = t->rows ? t->rows : 1, cols = t->cols;
    if (t->f32) {
        uint8_t *out = xmalloc(quant_row_bytes(t->type, cols));
        quant_quantize_row(out, t->f32, t->type, cols);
        gguf_write_data(w, out, quant_row_bytes(t->type, cols));
        free(out);
        return R1_OK;
    }
    /* a vector is permuted over its elements like the rows of its weight */
    const int vec_perm = t->rows == 0 && t->permute_heads;
    const size_t row_bytes = quant_row_bytes(t->type, cols);
    uint8_t *out = xmalloc(row_bytes * CHUNK_ROWS);
    float *buf = xmalloc(sizeof(float) * (size_t)cols * CHUNK_ROWS);
    int rc = R1_OK;
    for (int64_t r0 = 0; r0 < rows && !rc; r0 += CHUNK_ROWS) {
        const int64_t nr = rows - r0 < CHUNK_ROWS ? rows - r0 : CHUNK_ROWS;
        int64_t bad_row = -1;
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < nr; r++) {
            float *x = buf + r * cols;
            const int64_t sr = t->permute_heads && !vec_perm
                                   ? permuted_row(r0 + r, rows, t->permute_heads)
                                   : r0 + r;
            weight_rows_to_f32(x, src, sr, 1);
            if (vec_perm) {
                float *tmp = xmalloc(sizeof(float) * (size_t)cols);
                for (int64_t j = 0; j < cols; j++)
                    tmp[j] = x[permuted_row(j, cols, t->permute_heads)];
                memcpy(x, tmp, sizeof(float) * (size_t)cols);
                free(tmp);
            }
            int finite = 1;
            for (int64_t j = 0; j < cols; j++) finite &= isfinite(x[j]) != 0;
            if (!finite) {
#pragma omp critical
                if (bad_row < 0 || sr < bad_row) bad_row = sr;
                continue;
            }
            quant_quantize_row(out + (size_t)r * row_bytes, x, t->type, cols);
        }
        if (bad_row >= 0) {
            rc = err_fail(R1_EINPUT, shard, "tensor \"%s\" row %lld holds NaN or infinity", t->hf,
                          (long long)bad_row);
            err_hint("the checkpoint is damaged (a diverged run?): export an earlier one");
            break;
        }
        gguf_write_data(w, out, row_bytes * (size_t)nr);
    }
    free(out);
    free(buf);
    return rc;
}

static const char *base_name(const char *path, char *buf, size_t n) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t s = len;
    while (s > 0 && path[s - 1] != '/') s--;
    snprintf(buf, n, "%.*s", (int)(len - s), path + s);
    return buf;
}

int export_gguf(const export_options *o) {
    model_config c;
    TRY(model_config_load(&c, o->model));
    TRY(check_config(&c, o->model));
    safetensors st;
    TRY(safetensors_open(&st, o->model));
    plan p = {0};
    build_plan(&p, &c);
    float *factors = NULL;
    if (c.rope.type == ROPE_LLAMA3) {
        factors = llama3_rope_factors(&c);
        plan_tensor *t =
            plan_add(&p, "rope_freqs.weight", "(llama3 rope_scaling)", 0, c.head_dim / 2, -1);
        t->f32 = factors;
    }
    weight *src = xcalloc((size_t)p.n, sizeof *src);
    gguf_writer *w = gguf_writer_new();
    char namebuf[256];
    put_metadata(w, &c, o, o->name ? o->name : base_name(o->model, namebuf, sizeof namebuf));
    int rc = vocab_put(w, o->model, &c, o->pre);
    int counts[QUANT_TYPE_LIMIT] = {0}, n_fallback = 0;
    for (int i = 0; i < p.n && !rc; i++) {
        plan_tensor *t = &p.t[i];
        if (!t->f32) {
            char why[160];
            snprintf(why, sizeof why, "config.json (%s)", t->gguf);
            rc = weight_load(&src[i], &st, t->hf, t->rows, t->cols, NULL, why);
            if (rc) break;
        }
        if (t->rows == 0) {
            t->type = QUANT_F32;
        } else {
            export_tensor et = {t->gguf, t->cols, t->layer, c.num_layers, c.tie_word_embeddings,
                                c.num_layers == 80};
            t->type = export_tensor_type(o->quant, &et, &t->fallback);
            n_fallback += t->fallback;
        }
        int64_t ne[2] = {t->cols, t->rows ? t->rows : 1};
        gguf_add_tensor(w, t->gguf, t->type, t->rows ? 2 : 1, ne);
        counts[t->type]++;
    }
    if (!rc) rc = gguf_write_begin(w, o->out);
    const time_t start = time(NULL);
    time_t last = start;
    for (int i = 0; i < p.n && !rc; i++) {
        const plan_tensor *t = &p.t[i];
        const st_tensor *st_t = t->f32 ? NULL : safetensors_find(&st, t->hf);
        if (o->verbose)
            fprintf(stderr, "export: %-28s %-6s %s\n", t->gguf, quant_type_name(t->type),
                    t->fallback ? "(shape fallback)" : "");
        rc = write_tensor(w, t, &src[i], st_t ? safetensors_shard_path(&st, st_t) : o->model);
        if (!o->verbose && time(NULL) - last >= 10) {
            last = time(NULL);
            fprintf(stderr, "export: %d/%d tensors, %lds\n", i + 1, p.n, (long)(last - start));
        }
    }
    if (!rc) {
        rc = gguf_write_end(w);
    } else {
        gguf_write_abort(w);
    }
    if (!rc) {
        fprintf(stderr, "export: wrote %s (%s, %d tensors:", o->out, export_quant_name(o->quant),
                p.n);
        for (int t = 0; t < QUANT_TYPE_LIMIT; t++)
            if (counts[t]) fprintf(stderr, " %d %s", counts[t], quant_type_name(t));
        fprintf(stderr, ")\n");
        if (n_fallback)
            fprintf(stderr, "export: %d tensors have rows that are not a multiple of the block "
                    "size and use llama.cpp's fallback type\n", n_fallback);
    }
    gguf_writer_free(w);
    free(src);
    free(p.t);
    free(factors);
    safetensors_close(&st);
    return rc;
}
