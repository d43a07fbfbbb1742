/* DeepSeek-V3 / R1: multi-head latent attention (MLA) and a mixture of experts with shared
 * experts (DeepSeek's inference/model.py; transformers' modeling_deepseek_v3.py).
 *
 *   x = embed(tokens)
 *   for each layer:
 *       h = rmsnorm(x)                                    # attn_norm / input_layernorm
 *       q = h Wq^T  or  rmsnorm(h Wq_a^T) Wq_b^T          # per head: q_nope (nope), q_pe (rope)
 *       c, k_pe = split(h Wkv_a^T)                        # kv_a_proj_with_mqa: latent, shared key
 *       c = rmsnorm(c); q_pe, k_pe = rope(q_pe), rope(k_pe)
 *       cache[pos] = c, k_pe                              # kv_lora_rank + qk_rope_head_dim floats
 *       q_lat = q_nope W_UK                               # absorbed: attend in the latent space
 *       o_lat = softmax(scale (q_lat . c_t + q_pe . k_pe_t)) c_t
 *       x += (o_lat W_UV^T) Wo^T
 *       h = rmsnorm(x)                                    # ffn_norm / post_attention_layernorm
 *       x += mlp(h)                   for layers < first_k_dense_replace
 *       x += sum_k w_k expert_k(h) + shared(h)            after (routing: teacher/moe_router.h)
 *   logits = rmsnorm(x) Wlm^T
 *
 * The absorbed formulation (model.py attn_impl="absorb") serves both prefill and decode: every
 * token attends over the latent cache, so one code path is exact for both. It equals
 * transformers' expanded form (k = [c W_UK^T, k_pe], v = c W_UV^T) up to float rounding.
 *
 * Weights are views in their stored dtype (BF16, or FP8 e4m3 with 128x128 block scales): the CPU
 * dequantizes the rows it is about to use where they are mapped; a device backend gets its own
 * copy (upload_weight). Layers numbered num_hidden_layers and up (the multi-token-prediction
 * modules) are never loaded.
 *
 * The MoE runs as grouped products on every backend: the router's choice puts each (token,
 * expert) assignment into its expert's segment of rows (teacher/moe_device.h describes the
 * arrays), linear_segments runs every expert over its rows, combine_rows adds each token's
 * outputs in ascending expert id. The CPU routes on the host (moe_router.h); a device backend
 * routes in its own memory (moe_device.h), so a forward pass makes no host round trip and a
 * decode step can be recorded and replayed like dense.c's. Per-forward buffers are kept
 * between passes (grown in powers of two), as in dense.c.
 *
 * Tensor and expert parallelism (a backend in a group of tp ranks, core/backend.h tp_rank,
 * tp_size; teacher/tensor_parallel.c starts the ranks): rank r holds heads [r H/tp, (r+1) H/tp)
 * of q/q_b, kv_b and o_proj, the same share of every dense MLP's and the shared experts'
 * hidden units (gate/up rows, down columns), and routed experts [r E/tp, (r+1) E/tp); the
 * embedding, norms, q_a, kv_a, the router and the head are whole on every rank, and so is the
 * latent cache (each rank's heads read all of it). Every rank routes every token; a layer's
 * attention output and its MLP or MoE output are partial sums that one all_reduce each adds up
 * into the residual stream, which is therefore the same on every rank. With tp 1 the forward is
 * exactly the single-device one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "teacher/forward_batch.h"
#include "teacher/moe_device.h"
#include "teacher/moe_router.h"
#include "teacher/teacher.h"

/* q_a_layernorm and kv_a_layernorm are built without an eps argument in both references
 * (model.py RMSNorm(q_lora_rank); DeepseekV3RMSNorm(config.q_lora_rank)), so they use the
 * default 1e-6 whatever rms_norm_eps says. */
#define LORA_NORM_EPS 1e-6f

typedef struct {
    weight w1, w3, w2; /* gate_proj, up_proj [ff, d]; down_proj [d, ff] */
} ds_mlp;

typedef struct {
    weight attn_norm;        /* [d] input_layernorm */
    weight wq;               /* [H*qk, d] q_proj (q_lora_rank 0) */
    weight wq_a;             /* [q_lora, d] q_a_proj */
    weight q_norm;           /* [q_lora] q_a_layernorm */
    weight wq_b;             /* [H*qk, q_lora] q_b_proj */
    weight wkv_a;            /* [lat + rope, d] kv_a_proj_with_mqa */
    weight kv_norm;          /* [lat] kv_a_layernorm */
    weight wkv_b;            /* [H*(nope + v), lat] kv_b_proj */
    weight wo;               /* [d, H*v] o_proj */
    weight ffn_norm;         /* [d] post_attention_layernorm */
    int moe;                 /* 0: dense mlp; 1: gate + experts + shared */
    ds_mlp mlp;              /* dense MLP, or the shared experts (width n_shared * moe_inter) */
    weight gate;             /* [E, d] mlp.gate.weight */
    float *gate_bias_host;   /* [E] e_score_correction_bias, as float32 */
    weight gate_bias;        /* a 1-D F32 view of it (in backend memory once uploaded) */
    weight *w1, *w3, *w2;    /* [E / tp] each: this rank's experts' gate_proj, up_proj, down_proj */
} ds_layer;

typedef struct {
    teacher_model base;
    safetensors st;
    weight embed;            /* [vocab, d] */
    weight final_norm;       /* [d] */
    weight lm_head;          /* [vocab, d] */
    ds_layer *layers;
    int tp, tp_rank;         /* the backend's tensor-parallel group (1 and 0 alone) */
    int heads;               /* this rank's attention heads: num_heads / tp */
    int e0, experts;         /* this rank's routed experts: e0 .. e0 + experts - 1 */
    void **owned;            /* host copies of column shards, freed once uploaded */
    int n_owned;
    rope_table rope;         /* qk_rope_head_dim rotated dims, interleaved pairs */
    float softmax_scale;
    moe_router router;
    void *kv_cache;          /* [layers][slots][len][kv_lora_rank]  normed latent c */
    void *pe_cache;          /* [layers][slots][len][qk_rope_head_dim]  rotated k_pe */
    /* per-forward buffers (backend memory), kept between passes */
    int cap_n, cap_out;
    float *x, *h;            /* [n, d] residual stream, normed input */
    float *qa;               /* [n, q_lora] */
    float *q;                /* [n, H, nope + rope] */
    float *ckv;              /* [n, lat + rope] kv_a_proj_with_mqa output */
    float *kv, *kpe;         /* [n, lat], [n, rope] */
    float *q_lat, *o_lat;    /* [n, H, lat] */
    float *o;                /* [n, H, v] */
    float *g, *u;            /* [n, ff] dense MLP / shared experts hidden */
    float *y, *s;            /* [n, d] MoE routed sum, shared-expert output */
    float *router_logits;    /* [n, E] */
    float *xe, *ye;          /* [n K, d] the assignments' inputs and outputs */
    float *ge, *ue;          /* [n K, moe_inter] */
    float *logits;           /* [cap_out, vocab] */
    int *idx;                /* [4 cap_n]: tokens, slots, positions, output rows */
    int *host_idx;
    moe_dispatch disp;       /* backend memory; filled on the host for the CPU */
    int *host_route;         /* [n K] expert ids, host path */
    float *host_w;           /* [n K] weights, host path */
    float *host_logits;      /* [n, E] router logits, host path */
} ds_model;

/* ---- loading ------------------------------------------------------------------------------- */

typedef struct {
    ds_model *m;
    const int *fp8_block;
    char name[256];
    char why[160];
} loader;

/* Loads "<prefix><suffix>" with the given shape (rows 0 = vector); `why` names the config
 * fields that imply it. */
static int load(loader *ld, weight *w, const char *prefix, const char *suffix, int64_t rows,
                int64_t cols, const char *why) {
    snprintf(ld->name, sizeof ld->name, "%s%s", prefix, suffix);
    snprintf(ld->why, sizeof ld->why, "config.json %s", why);
    return weight_load(w, &ld->m->st, ld->name, rows, cols, ld->fp8_block, ld->why);
}

/* This rank's share of a weight's rows (a head or hidden-unit range; a view) or columns (a
 * copy): the tp equal parts deepseek_tp_check made sure exist. */
static int shard_rows(loader *ld, weight *w) {
    const ds_model *m = ld->m;
    if (m->tp == 1) return R1_OK;
    const int64_t part = w->rows / m->tp;
    return weight_rows_slice(w, w, m->tp_rank * part, part, ld->name);
}

static int shard_cols(loader *ld, weight *w) {
    ds_model *m = ld->m;
    if (m->tp == 1) return R1_OK;
    const int64_t part = w->cols / m->tp;
    void *owned;
    TRY(weight_cols_copy(w, &owned, w, m->tp_rank * part, part, ld->name));
    m->owned = xrealloc(m->owned, sizeof(void *) * (size_t)(m->n_owned + 1));
    m->owned[m->n_owned++] = owned;
    return R1_OK;
}

/* A dense MLP or the shared experts: split across ranks by hidden unit (experts are whole). */
static int load_mlp(loader *ld, ds_mlp *mlp, const char *prefix, int64_t ff, const char *ff_why,
                    int split) {
    const int64_t d = ld->m->base.cfg.hidden_size;
    char why[128];
    snprintf(why, sizeof why, "%s, hidden_size", ff_why);
    TRY(load(ld, &mlp->w1, prefix, "gate_proj.weight", ff, d, why));
    if (split) TRY(shard_rows(ld, &mlp->w1));
    TRY(load(ld, &mlp->w3, prefix, "up_proj.weight", ff, d, why));
    if (split) TRY(shard_rows(ld, &mlp->w3));
    snprintf(why, sizeof why, "hidden_size, %s", ff_why);
    TRY(load(ld, &mlp->w2, prefix, "down_proj.weight", d, ff, why));
    return split ? shard_cols(ld, &mlp->w2) : R1_OK;
}

static int load_layer(loader *ld, int l) {
    ds_model *m = ld->m;
    const model_config *c = &m->base.cfg;
    ds_layer *L = &m->layers[l];
    const int64_t d = c->hidden_size, H = c->num_heads, qk = c->qk_nope_head_dim + c->qk_rope_head_dim;
    char p[48], pa[64], pm[64];
    snprintf(p, sizeof p, "model.layers.%d.", l);
    snprintf(pa, sizeof pa, "%sself_attn.", p);
    snprintf(pm, sizeof pm, "%smlp.", p);

    TRY(load(ld, &L->attn_norm, p, "input_layernorm.weight", 0, d, "hidden_size"));
    if (c->q_lora_rank == 0) {
        TRY(load(ld, &L->wq, pa, "q_proj.weight", H * qk, d,
                 "num_attention_heads x (qk_nope_head_dim + qk_rope_head_dim), hidden_size"));
        TRY(shard_rows(ld, &L->wq));
    } else {
        TRY(load(ld, &L->wq_a, pa, "q_a_proj.weight", c->q_lora_rank, d, "q_lora_rank, hidden_size"));
        TRY(load(ld, &L->q_norm, pa, "q_a_layernorm.weight", 0, c->q_lora_rank, "q_lora_rank"));
        TRY(load(ld, &L->wq_b, pa, "q_b_proj.weight", H * qk, c->q_lora_rank,
                 "num_attention_heads x (qk_nope_head_dim + qk_rope_head_dim), q_lora_rank"));
        TRY(shard_rows(ld, &L->wq_b));
    }
    TRY(load(ld, &L->wkv_a, pa, "kv_a_proj_with_mqa.weight", c->kv_lora_rank + c->qk_rope_head_dim,
             d, "kv_lora_rank + qk_rope_head_dim, hidden_size"));
    TRY(load(ld, &L->kv_norm, pa, "kv_a_layernorm.weight", 0, c->kv_lora_rank, "kv_lora_rank"));
    TRY(load(ld, &L->wkv_b, pa, "kv_b_proj.weight", H * (c->qk_nope_head_dim + c->v_head_dim),
             c->kv_lora_rank, "num_attention_heads x (qk_nope_head_dim + v_head_dim), kv_lora_rank"));
    TRY(shard_rows(ld, &L->wkv_b));
    TRY(load(ld, &L->wo, pa, "o_proj.weight", d, H * c->v_head_dim,
             "hidden_size, num_attention_heads x v_head_dim"));
    TRY(shard_cols(ld, &L->wo));
    TRY(load(ld, &L->ffn_norm, p, "post_attention_layernorm.weight", 0, d, "hidden_size"));

    /* model.py Block: MLP for layer_id < n_dense_layers, MoE after */
    L->moe = l >= c->first_k_dense_replace;
    if (!L->moe) return load_mlp(ld, &L->mlp, pm, c->intermediate_size, "intermediate_size", 1);

    const int E = c->n_routed_experts;
    TRY(load(ld, &L->gate, pm, "gate.weight", E, d, "n_routed_experts, hidden_size"));
    weight bias;
    TRY(load(ld, &bias, pm, "gate.e_score_correction_bias", 0, E, "n_routed_experts"));
    L->gate_bias_host = xmalloc(sizeof(float) * (size_t)E);
    weight_rows_to_f32(L->gate_bias_host, &bias, 0, 1);
    L->gate_bias = (weight){.dt = DTYPE_F32, .rows = 1, .cols = E, .data = L->gate_bias_host};
    if (c->n_shared_experts > 0) {
        char sp[96];
        snprintf(sp, sizeof sp, "%sshared_experts.", pm);
        TRY(load_mlp(ld, &L->mlp, sp, (int64_t)c->n_shared_experts * c->moe_intermediate_size,
                     "n_shared_experts x moe_intermediate_size", 1));
    }
    const int El = m->experts;
    L->w1 = xcalloc((size_t)El, sizeof *L->w1);
    L->w3 = xcalloc((size_t)El, sizeof *L->w3);
    L->w2 = xcalloc((size_t)El, sizeof *L->w2);
    for (int j = 0; j < El; j++) {
        char ep[96];
        snprintf(ep, sizeof ep, "%sexperts.%d.", pm, m->e0 + j);
        ds_mlp ex;
        TRY(load_mlp(ld, &ex, ep, c->moe_intermediate_size, "moe_intermediate_size", 0));
        L->w1[j] = ex.w1, L->w3[j] = ex.w3, L->w2[j] = ex.w2;
    }
    return R1_OK;
}

/* ---- cache --------------------------------------------------------------------------------- */

static int ds_cache_init(teacher_model *tm, int slots, int len) {
    ds_model *m = (ds_model *)tm;
    const model_config *c = &tm->cfg;
    backend *be = tm->be;
    if (m->kv_cache) be->release(be, m->kv_cache);
    if (m->pe_cache) be->release(be, m->pe_cache);
    const size_t tokens = (size_t)c->num_layers * slots * len, es = dtype_size(be->cache_dtype);
    m->kv_cache = be->alloc(be, es * tokens * c->kv_lora_rank);
    m->pe_cache = be->alloc(be, es * tokens * c->qk_rope_head_dim);
    tm->cache_slots = slots;
    tm->cache_len = len;
    return R1_OK;
}

/* model.py's kv_cache + pe_cache: kv_lora_rank + qk_rope_head_dim values per token per layer,
 * in the backend's cache type. */
static size_t ds_cache_bytes(const teacher_model *tm) {
    const model_config *c = &tm->cfg;
    return dtype_size(tm->be->cache_dtype) * (size_t)c->num_layers *
           (c->kv_lora_rank + c->qk_rope_head_dim);
}

/* ---- forward ------------------------------------------------------------------------------- */

static void release_buffers(ds_model *m) {
    backend *be = m->base.be;
    float *bufs[] = {m->x, m->h, m->qa, m->q, m->ckv, m->kv, m->kpe, m->q_lat, m->o_lat,
                     m->o, m->g, m->u, m->y, m->s, m->router_logits, m->xe, m->ye, m->ge,
                     m->ue, m->logits, m->disp.comb_w};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) be->release(be, bufs[i]);
    int *ibufs[] = {m->idx, m->disp.rows, m->disp.seg, m->disp.comb, m->disp.counters};
    for (size_t i = 0; i < sizeof ibufs / sizeof *ibufs; i++)
        if (ibufs[i]) be->release(be, ibufs[i]);
    free(m->host_idx);
    free(m->host_route);
    free(m->host_w);
    free(m->host_logits);
    m->x = m->h = m->qa = m->q = m->ckv = m->kv = m->kpe = m->q_lat = m->o_lat = m->o = NULL;
    m->g = m->u = m->y = m->s = m->router_logits = m->xe = m->ye = m->ge = m->ue = NULL;
    m->logits = NULL;
    memset(&m->disp, 0, sizeof m->disp);
    m->idx = m->host_idx = m->host_route = NULL;
    m->host_w = m->host_logits = NULL;
    m->cap_n = m->cap_out = 0;
}

/* The widest MLP hidden layer in use (dense layers, shared experts) on one of tp ranks. */
static int dense_ff(const model_config *c, int tp) {
    int ff = c->first_k_dense_replace > 0 ? c->intermediate_size : 0;
    if (c->n_routed_experts > 0 && c->n_shared_experts * c->moe_intermediate_size > ff)
        ff = c->n_shared_experts * c->moe_intermediate_size;
    return ff > 0 ? ff / tp : 1;
}

/* Buffers for n tokens and n_out output rows (powers of two, so passes of one shape keep their
 * addresses, which a recorded graph needs). */
static void reserve_buffers(ds_model *m, int n, int n_out) {
    const model_config *c = &m->base.cfg;
    backend *be = m->base.be;
    const int need = n > n_out ? n : n_out;
    if (need <= m->cap_n && n_out <= m->cap_out) return;
    const int cn = forward_capacity(m->cap_n, need), co = forward_capacity(m->cap_out, n_out);
    release_buffers(m);
    const size_t N = (size_t)cn, f = sizeof(float), H = (size_t)m->heads;
    const size_t qk = (size_t)(c->qk_nope_head_dim + c->qk_rope_head_dim),
                 lat = (size_t)c->kv_lora_rank, rope = (size_t)c->qk_rope_head_dim,
                 d = (size_t)c->hidden_size;
    const size_t E = c->n_routed_experts > 0 ? (size_t)c->n_routed_experts : 1,
                 K = c->n_routed_experts > 0 ? (size_t)c->num_experts_per_tok : 1,
                 mff = c->moe_intermediate_size > 0 ? (size_t)c->moe_intermediate_size : 1;
#define A(field, count) m->field = be->alloc(be, f * (count) + 16)
    A(x, N * d); A(h, N * d); A(qa, N * (c->q_lora_rank > 0 ? c->q_lora_rank : 1));
    A(q, N * H * qk); A(ckv, N * (lat + rope)); A(kv, N * lat); A(kpe, N * rope);
    A(q_lat, N * H * lat); A(o_lat, N * H * lat); A(o, N * H * c->v_head_dim);
    A(g, N * dense_ff(c, m->tp)); A(u, N * dense_ff(c, m->tp)); A(y, N * d); A(s, N * d);
    A(router_logits, N * E); A(xe, N * K * d); A(ye, N * K * d); A(ge, N * K * mff);
    A(ue, N * K * mff); A(logits, (size_t)co * c->vocab_size); A(disp.comb_w, N * K);
#undef A
    m->idx = be->alloc(be, sizeof(int) * 4 * N);
    m->disp.rows = be->alloc(be, sizeof(int) * N * K);
    m->disp.comb = be->alloc(be, sizeof(int) * N * K);
    m->disp.seg = be->alloc(be, sizeof(int) * (E + 1));
    m->disp.counters = be->alloc(be, sizeof(int) * E);
    m->host_idx = xmalloc(sizeof(int) * 4 * N);
    m->host_route = xmalloc(sizeof(int) * N * K);
    m->host_w = xmalloc(sizeof(float) * N * K);
    m->host_logits = xmalloc(sizeof(float) * N * E);
    m->cap_n = cn;
    m->cap_out = co;
}

/* y = x @ w^T, or y += x @ w^T when add. */
static void linear_to(backend *be, float *y, const float *x, const weight *w, int n, int add) {
    if (add) be->linear_add(be, y, x, w, NULL, n);
    else be->linear(be, y, x, w, NULL, n);
}

/* A layer's attention or MLP output reaches the residual stream x in two steps. In a group each
 * rank's output is a partial sum: rank 0 adds its part to x, the other ranks write theirs over x
 * (this flag says which), and reduce_residual's all_reduce then leaves x plus every rank's part
 * on every rank. Alone, rank 0 simply adds and nothing is reduced. */
static int adds_to_residual(const ds_model *m) { return m->tp_rank == 0; }

static void reduce_residual(ds_model *m, int n) {
    if (m->tp > 1) m->base.be->all_reduce(m->base.be, m->x, (size_t)n * m->base.cfg.hidden_size);
}

/* out = down(silu(gate(h)) * up(h)) (+ out when add): model.py MLP.forward / Expert.forward */
static void mlp_forward(backend *be, float *out, const float *h, const ds_mlp *mlp, float *g,
                        float *u, int n, int add) {
    const int ff = (int)mlp->w1.rows;
    float *const ys[] = {g, u};
    const weight *const ws[] = {&mlp->w1, &mlp->w3};
    be->linear_multi(be, 2, ys, h, ws, NULL, n);
    be->swiglu(be, g, g, u, n, ff, ff);
    linear_to(be, out, g, &mlp->w2, n, add);
}

/* The routing of n tokens on the host (the CPU backend, whose memory is host memory): the
 * dispatch arrays moe_device.h describes, with each expert's rows in token order. */
static void route_on_host(ds_model *m, const ds_layer *L, int n) {
    backend *be = m->base.be;
    const moe_router *r = &m->router;
    const int E = r->n_experts, K = r->top_k;
    float *logits = m->host_logits;
    be->download(be, logits, m->router_logits, sizeof(float) * (size_t)n * E);
    float *scratch = xmalloc(sizeof(float) * moe_route_scratch_floats(r));
    for (int i = 0; i < n; i++)
        moe_route(m->host_route + (size_t)i * K, m->host_w + (size_t)i * K,
                  logits + (size_t)i * E, L->gate_bias_host, r, scratch);
    free(scratch);
    int *seg = m->disp.seg, *rows = m->disp.rows, *comb = m->disp.comb;
    float *comb_w = m->disp.comb_w;
    memset(seg, 0, sizeof(int) * ((size_t)E + 1));
    for (size_t j = 0; j < (size_t)n * K; j++) seg[m->host_route[j] + 1]++;
    for (int e = 0; e < E; e++) seg[e + 1] += seg[e];
    int *fill = xmalloc(sizeof(int) * (size_t)E);
    memcpy(fill, seg, sizeof(int) * (size_t)E);
    for (int i = 0; i < n; i++) {
        const int *ei = m->host_route + (size_t)i * K;
        for (int k = 0; k < K; k++) {
            const int at = fill[ei[k]]++;
            rows[at] = i;
            int rank = 0; /* the token's experts are distinct: rank by id */
            for (int j = 0; j < K; j++) rank += ei[j] < ei[k];
            comb[(size_t)i * K + rank] = at;
            comb_w[(size_t)i * K + rank] = m->host_w[(size_t)i * K + k];
        }
    }
    free(fill);
}

/* x += MoE(h): model.py MoE.forward. Each token's routed sum runs over its experts in
 * ascending id (transformers' index_add_ order), whatever else is in the batch. */
static void moe_forward(ds_model *m, const ds_layer *L, int n) {
    backend *be = m->base.be;
    const model_config *c = &m->base.cfg;
    const moe_router *r = &m->router;
    const int d = c->hidden_size, K = r->top_k, nk = n * K,
              ff = c->moe_intermediate_size;

    /* Gate.forward: router logits in float32, then the routing decision */
    be->linear(be, m->router_logits, m->h, &L->gate, NULL, n);
    if (be->host_memory) route_on_host(m, L, n);
    else moe_device_route(be, &m->disp, m->router_logits, L->gate_bias.data, n, r);

    /* every expert (of this rank) over its rows, then each token's outputs in expert order;
     * in a group the rows of other ranks' experts stay zero here */
    const int *seg = m->disp.seg + m->e0;
    be->gather_rows(be, m->xe, m->h, m->disp.rows, nk, d);
    be->linear_segments(be, m->ge, m->xe, L->w1, seg, m->experts, nk);
    be->linear_segments(be, m->ue, m->xe, L->w3, seg, m->experts, nk);
    be->swiglu(be, m->ge, m->ge, m->ue, nk, ff, ff);
    if (m->tp > 1) be->zero(be, m->ye, (size_t)nk * d);
    be->linear_segments(be, m->ye, m->ge, L->w2, seg, m->experts, nk);
    be->zero(be, m->y, (size_t)n * d);
    be->combine_rows(be, m->y, m->ye, m->disp.comb, m->disp.comb_w, n, K, d);
    /* (y + shared_experts(x)), then the residual */
    if (c->n_shared_experts > 0) {
        mlp_forward(be, m->s, m->h, &L->mlp, m->g, m->u, n, 0);
        be->add(be, m->y, m->s, (size_t)n * d);
    }
    if (adds_to_residual(m)) be->add(be, m->x, m->y, (size_t)n * d);
    else be->copy_strided(be, m->x, d, m->y, d, n, d);
    reduce_residual(m, n);
}

/* x += MLA(h): model.py MLA.forward, attn_impl="absorb". */
static void mla_forward(ds_model *m, int l, const token_layout *tl) {
    backend *be = m->base.be;
    const model_config *c = &m->base.cfg;
    const ds_layer *L = &m->layers[l];
    const int n = tl->n, H = m->heads, nope = c->qk_nope_head_dim, rope = c->qk_rope_head_dim,
              qk = nope + rope, lat = c->kv_lora_rank, v = c->v_head_dim;
    const size_t per_layer = (size_t)m->base.cache_slots * m->base.cache_len,
                 es = dtype_size(be->cache_dtype);
    void *kvc = (char *)m->kv_cache + (size_t)l * per_layer * lat * es;
    void *pec = (char *)m->pe_cache + (size_t)l * per_layer * rope * es;

    /* q = wq(x) if q_lora_rank == 0 else wq_b(q_norm(wq_a(x))); kv, k_pe = wkv_a(x) */
    if (c->q_lora_rank == 0) {
        float *const ys[] = {m->q, m->ckv};
        const weight *const ws[] = {&L->wq, &L->wkv_a};
        be->linear_multi(be, 2, ys, m->h, ws, NULL, n);
    } else {
        float *const ys[] = {m->qa, m->ckv};
        const weight *const ws[] = {&L->wq_a, &L->wkv_a};
        be->linear_multi(be, 2, ys, m->h, ws, NULL, n);
        be->rmsnorm(be, m->qa, m->qa, &L->q_norm, n, c->q_lora_rank, LORA_NORM_EPS);
        be->linear(be, m->q, m->qa, &L->wq_b, NULL, n);
    }
    /* q_pe = apply_rotary_emb(q_pe, freqs_cis): the last qk_rope_head_dim of each head */
    be->rope(be, m->q, &m->rope, tl->pos, n, H * qk, H, qk, nope);

    /* kv_cache = kv_norm(kv); pe_cache = rope(k_pe) */
    be->copy_strided(be, m->kv, lat, m->ckv, lat + rope, n, lat);
    be->copy_strided(be, m->kpe, rope, m->ckv + lat, lat + rope, n, rope);
    be->rmsnorm(be, m->kv, m->kv, &L->kv_norm, n, lat, LORA_NORM_EPS);
    be->rope(be, m->kpe, &m->rope, tl->pos, n, rope, 1, rope, 0);
    be->kv_store(be, kvc, m->kv, tl, lat, m->base.cache_len);
    be->kv_store(be, pec, m->kpe, tl, rope, m->base.cache_len);

    /* q_nope absorbed through W_UK, attention over the latent cache, W_UV, then wo */
    be->mla_q_absorb(be, m->q_lat, m->q, qk, &L->wkv_b, n, H, nope, v);
    be->mla_attention(be, m->o_lat, m->q_lat, m->q + nope, qk, kvc, pec, tl, m->base.cache_len, H,
                      lat, rope, m->softmax_scale);
    be->mla_v_up(be, m->o, m->o_lat, &L->wkv_b, n, H, nope, v);
    /* x += wo(o), summed over the group's heads */
    linear_to(be, m->x, m->o, &L->wo, n, adds_to_residual(m));
    reduce_residual(m, n);
}

static int ds_forward(teacher_model *tm, const int *tokens, const token_layout *tl,
                      const int *out_rows, int n_out, float *logits) {
    ds_model *m = (ds_model *)tm;
    const model_config *c = &tm->cfg;
    backend *be = tm->be;
    const int n = tl->n, d = c->hidden_size;
    TRY(forward_batch_check(tm, tokens, tl, out_rows, n_out));
    reserve_buffers(m, n, n_out);
    float *out = logits && be->host_memory ? logits : m->logits;
    forward_batch_upload(be, m->idx, m->host_idx, tokens, tl, out_rows, n_out);
    const int *ids = m->idx, *rows = m->idx + 3 * n;
    const token_layout btl = {.n = n, .slot = m->idx + n, .pos = m->idx + 2 * n};

    uint64_t key = forward_graph_key(0x44533376ull, tm, n, n_out, m->x, m->kv_cache, out);
    if (!be->graph_begin(be, key ? key : 1)) {
        const float eps = (float)c->rms_norm_eps;
        be->embed(be, m->x, &m->embed, ids, n);
        for (int l = 0; l < c->num_layers; l++) {
            const ds_layer *L = &m->layers[l];
            /* x = x + attn(attn_norm(x)) */
            be->rmsnorm(be, m->h, m->x, &L->attn_norm, n, d, eps);
            mla_forward(m, l, &btl);
            /* x = x + ffn(ffn_norm(x)) */
            be->rmsnorm(be, m->h, m->x, &L->ffn_norm, n, d, eps);
            if (L->moe) moe_forward(m, L, n);
            else {
                mlp_forward(be, m->x, m->h, &L->mlp, m->g, m->u, n, adds_to_residual(m));
                reduce_residual(m, n);
            }
        }
        /* Only the requested rows reach the head: a decode step needs one row per sequence. */
        be->gather_rows(be, m->h, m->x, rows, n_out, d);
        be->rmsnorm(be, m->x, m->h, &m->final_norm, n_out, d, eps);
        be->linear(be, out, m->x, &m->lm_head, NULL, n_out);
        be->graph_end(be);
    }
    tm->logits = out;
    if (logits && out != logits)
        be->download(be, logits, out, sizeof(float) * (size_t)n_out * c->vocab_size);
    return R1_OK;
}

/* Every weight view of the model, for upload and unload (the lm_head only when untied). */
static int model_weights(ds_model *m, weight **out) {
    const model_config *c = &m->base.cfg;
    int k = 0;
    out[k++] = &m->embed;
    out[k++] = &m->final_norm;
    if (!c->tie_word_embeddings) out[k++] = &m->lm_head;
    for (int l = 0; l < c->num_layers; l++) {
        ds_layer *L = &m->layers[l];
        weight *ws[] = {&L->attn_norm, &L->wq,      &L->wq_a,      &L->q_norm,  &L->wq_b,
                        &L->wkv_a,     &L->kv_norm, &L->wkv_b,     &L->wo,      &L->ffn_norm,
                        &L->mlp.w1,    &L->mlp.w3,  &L->mlp.w2,    &L->gate,    &L->gate_bias};
        for (size_t j = 0; j < sizeof ws / sizeof *ws; j++)
            if (ws[j]->data) out[k++] = ws[j];
        for (int e = 0; L->w1 && e < m->experts; e++) {
            weight *ew[] = {&L->w1[e], &L->w3[e], &L->w2[e]};
            for (int j = 0; j < 3; j++)
                if (ew[j]->data) out[k++] = ew[j];
        }
    }
    return k;
}

static weight **weight_list(ds_model *m, int *n) {
    const model_config *c = &m->base.cfg;
    const size_t per = 15 + 3 * (size_t)(c->n_routed_experts > 0 ? c->n_routed_experts : 0);
    weight **ws = xmalloc(sizeof(weight *) * (3 + per * (size_t)c->num_layers));
    *n = model_weights(m, ws);
    return ws;
}

/* ---- open / close -------------------------------------------------------------------------- */

static void free_owned(ds_model *m) {
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    m->owned = NULL;
    m->n_owned = 0;
}

static void ds_destroy(teacher_model *tm) {
    ds_model *m = (ds_model *)tm;
    backend *be = tm->be;
    if (m->kv_cache) be->release(be, m->kv_cache);
    if (m->pe_cache) be->release(be, m->pe_cache);
    release_buffers(m);
    if (m->layers) {
        int nw;
        weight **ws = weight_list(m, &nw);
        for (int i = 0; i < nw; i++)
            if (ws[i]->device) be->unload_weight(be, ws[i]);
        free(ws);
    }
    for (int l = 0; m->layers && l < tm->cfg.num_layers; l++) {
        free(m->layers[l].gate_bias_host);
        free(m->layers[l].w1);
        free(m->layers[l].w3);
        free(m->layers[l].w2);
    }
    free(m->layers);
    free_owned(m);
    rope_free(&m->rope);
    safetensors_close(&m->st);
}

int deepseek_tp_check(const model_config *c, int tp, const char *where) {
    if (tp == 1) return R1_OK;
    const int64_t shared = c->n_routed_experts > 0 ? (int64_t)c->n_shared_experts *
                                                         c->moe_intermediate_size : 0,
                  dense = c->first_k_dense_replace > 0 ? c->intermediate_size : 0;
    const struct {
        int64_t n;
        const char *what;
    } parts[] = {{c->num_heads, "num_attention_heads"},
                 {c->n_routed_experts, "n_routed_experts"},
                 {dense, "intermediate_size"},
                 {shared, "n_shared_experts x moe_intermediate_size"}};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        if (parts[i].n % tp != 0) {
            err_fail(R1_EINPUT, where, "%s = %lld does not split into %d equal tensor-parallel "
                     "parts", parts[i].what, (long long)parts[i].n, tp);
            return err_hint("choose a --tp that divides the attention heads, the routed experts "
                            "and the MLP widths");
        }
    if (!c->fp8) return R1_OK;
    /* a rank's rows (heads of q/kv_b, hidden units of gate/up) and columns (of o_proj, down)
     * must be whole FP8 scale blocks */
    const int64_t hl = c->num_heads / tp, br = c->fp8_block[0], bc = c->fp8_block[1];
    const struct {
        int64_t n, block;
        const char *what;
    } blocks[] = {{hl * (c->qk_nope_head_dim + c->qk_rope_head_dim), br, "q_proj rows"},
                  {hl * (c->qk_nope_head_dim + c->v_head_dim), br, "kv_b_proj rows"},
                  {hl * c->v_head_dim, bc, "o_proj columns"},
                  {dense / tp, br, "dense MLP gate/up rows"},
                  {dense / tp, bc, "dense MLP down_proj columns"},
                  {shared / tp, br, "shared-expert gate/up rows"},
                  {shared / tp, bc, "shared-expert down_proj columns"}};
    for (size_t i = 0; i < sizeof blocks / sizeof *blocks; i++)
        if (blocks[i].n % blocks[i].block != 0) {
            err_fail(R1_EINPUT, where, "with --tp %d a rank holds %lld %s, not a whole number of "
                     "FP8 scale blocks of %lld", tp, (long long)blocks[i].n, blocks[i].what,
                     (long long)blocks[i].block);
            return err_hint("a shard must not split a weight_block_size block; DeepSeek-V3/R1 "
                            "split at --tp 2, 4 or 8");
        }
    return R1_OK;
}

/* transformers' yarn_apply_mscale: qk_head_dim^-0.5, times mscale^2 with mscale =
 * yarn_get_mscale(factor, mscale_all_dim) when the rope is scaled and mscale_all_dim is set
 * (model.py: softmax_scale *= mscale ** 2 once max_seq_len > original_seq_len, with its
 * `mscale`, which equals mscale_all_dim in DeepSeek's configs). */
float deepseek_softmax_scale(const model_config *c) {
    double s = 1.0 / sqrt((double)(c->qk_nope_head_dim + c->qk_rope_head_dim));
    if (c->rope.type != ROPE_DEFAULT && c->rope.mscale_all_dim != 0.0) {
        double ms = yarn_get_mscale(c->rope.factor, c->rope.mscale_all_dim);
        s *= ms * ms;
    }
    return (float)s;
}

int deepseek_open(teacher_model **out, const char *path, const model_config *cfg, backend *be) {
    *out = NULL;
    ds_model *m = xcalloc(1, sizeof *m);
    m->base.cfg = *cfg;
    m->base.be = be;
    m->base.forward = ds_forward;
    m->base.cache_init = ds_cache_init;
    m->base.cache_bytes_per_token = ds_cache_bytes;
    m->base.destroy = ds_destroy;
    int rc = safetensors_open(&m->st, path);
    if (rc) {
        free(m);
        return rc;
    }
    const model_config *c = &m->base.cfg;
    m->tp = be->tp_size;
    m->tp_rank = be->tp_rank;
    rc = deepseek_tp_check(c, m->tp, path);
    if (rc) {
        safetensors_close(&m->st);
        free(m);
        return rc;
    }
    m->heads = c->num_heads / m->tp;
    m->experts = c->n_routed_experts / m->tp;
    m->e0 = m->tp_rank * m->experts;
    loader ld = {.m = m, .fp8_block = c->fp8 ? c->fp8_block : NULL};
    m->layers = xcalloc((size_t)c->num_layers, sizeof *m->layers);
    rc = load(&ld, &m->embed, "", "model.embed_tokens.weight", c->vocab_size, c->hidden_size,
              "vocab_size, hidden_size");
    if (!rc) rc = load(&ld, &m->final_norm, "", "model.norm.weight", 0, c->hidden_size, "hidden_size");
    if (!rc) {
        if (c->tie_word_embeddings)
            m->lm_head = m->embed;
        else
            rc = load(&ld, &m->lm_head, "", "lm_head.weight", c->vocab_size, c->hidden_size,
                      "vocab_size, hidden_size");
    }
    for (int l = 0; l < c->num_layers && !rc; l++) rc = load_layer(&ld, l);
    if (!rc) { /* weights to the backend's memory (nothing to do on the CPU) */
        int nw;
        weight **ws = weight_list(m, &nw);
        for (int i = 0; i < nw && !rc; i++) rc = be->upload_weight(be, ws[i]);
        free(ws);
        if (!rc && !be->host_memory) { /* the device has its own copies of the column shards */
            be->sync(be);
            free_owned(m);
        }
        if (!rc && c->tie_word_embeddings) m->lm_head = m->embed;
    }
    if (!rc && c->n_routed_experts > 0 && !be->host_memory && !moe_device_supported(be))
        rc = err_fail(R1_EINPUT, path, "the %s backend cannot route experts in its memory",
                      be->name);
    if (rc) {
        ds_destroy(&m->base);
        free(m);
        return rc;
    }
    rope_init(&m->rope, &c->rope, c->qk_rope_head_dim,
              c->rope_interleave ? ROPE_PAIRS_INTERLEAVED : ROPE_PAIRS_HALF);
    m->softmax_scale = deepseek_softmax_scale(c);
    if (c->n_routed_experts > 0) moe_router_from_config(&m->router, c);
    *out = &m->base;
    return R1_OK;
}
