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
 * Weights stay memory-mapped views in their stored dtype (BF16, or FP8 e4m3 with 128x128 block
 * scales); the backend dequantizes the rows it is about to use. Layers numbered
 * num_hidden_layers and up (the multi-token-prediction modules) are never loaded. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/safetensors.h"
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
    float *gate_bias;        /* [E] e_score_correction_bias, as float32 (host) */
    ds_mlp *experts;         /* [E] */
} ds_layer;

typedef struct {
    teacher_model base;
    safetensors st;
    weight embed;            /* [vocab, d] */
    weight final_norm;       /* [d] */
    weight lm_head;          /* [vocab, d] */
    ds_layer *layers;
    rope_table rope;         /* qk_rope_head_dim rotated dims, interleaved pairs */
    float softmax_scale;
    moe_router router;
    float *kv_cache;         /* [layers][slots][len][kv_lora_rank]  normed latent c */
    float *pe_cache;         /* [layers][slots][len][qk_rope_head_dim]  rotated k_pe */
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

static int load_mlp(loader *ld, ds_mlp *mlp, const char *prefix, int64_t ff, const char *ff_why) {
    const int64_t d = ld->m->base.cfg.hidden_size;
    char why[128];
    snprintf(why, sizeof why, "%s, hidden_size", ff_why);
    TRY(load(ld, &mlp->w1, prefix, "gate_proj.weight", ff, d, why));
    TRY(load(ld, &mlp->w3, prefix, "up_proj.weight", ff, d, why));
    snprintf(why, sizeof why, "hidden_size, %s", ff_why);
    return load(ld, &mlp->w2, prefix, "down_proj.weight", d, ff, why);
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
    } else {
        TRY(load(ld, &L->wq_a, pa, "q_a_proj.weight", c->q_lora_rank, d, "q_lora_rank, hidden_size"));
        TRY(load(ld, &L->q_norm, pa, "q_a_layernorm.weight", 0, c->q_lora_rank, "q_lora_rank"));
        TRY(load(ld, &L->wq_b, pa, "q_b_proj.weight", H * qk, c->q_lora_rank,
                 "num_attention_heads x (qk_nope_head_dim + qk_rope_head_dim), q_lora_rank"));
    }
    TRY(load(ld, &L->wkv_a, pa, "kv_a_proj_with_mqa.weight", c->kv_lora_rank + c->qk_rope_head_dim,
             d, "kv_lora_rank + qk_rope_head_dim, hidden_size"));
    TRY(load(ld, &L->kv_norm, pa, "kv_a_layernorm.weight", 0, c->kv_lora_rank, "kv_lora_rank"));
    TRY(load(ld, &L->wkv_b, pa, "kv_b_proj.weight", H * (c->qk_nope_head_dim + c->v_head_dim),
             c->kv_lora_rank, "num_attention_heads x (qk_nope_head_dim + v_head_dim), kv_lora_rank"));
    TRY(load(ld, &L->wo, pa, "o_proj.weight", d, H * c->v_head_dim,
             "hidden_size, num_attention_heads x v_head_dim"));
    TRY(load(ld, &L->ffn_norm, p, "post_attention_layernorm.weight", 0, d, "hidden_size"));

    /* model.py Block: MLP for layer_id < n_dense_layers, MoE after */
    L->moe = l >= c->first_k_dense_replace;
    if (!L->moe) return load_mlp(ld, &L->mlp, pm, c->intermediate_size, "intermediate_size");

    const int E = c->n_routed_experts;
    TRY(load(ld, &L->gate, pm, "gate.weight", E, d, "n_routed_experts, hidden_size"));
    weight bias;
    TRY(load(ld, &bias, pm, "gate.e_score_correction_bias", 0, E, "n_routed_experts"));
    L->gate_bias = xmalloc(sizeof(float) * (size_t)E);
    weight_rows_to_f32(L->gate_bias, &bias, 0, 1);
    if (c->n_shared_experts > 0) {
        char sp[96];
        snprintf(sp, sizeof sp, "%sshared_experts.", pm);
        TRY(load_mlp(ld, &L->mlp, sp, (int64_t)c->n_shared_experts * c->moe_intermediate_size,
                     "n_shared_experts x moe_intermediate_size"));
    }
    L->experts = xcalloc((size_t)E, sizeof *L->experts);
    for (int e = 0; e < E; e++) {
        char ep[96];
        snprintf(ep, sizeof ep, "%sexperts.%d.", pm, e);
        TRY(load_mlp(ld, &L->experts[e], ep, c->moe_intermediate_size, "moe_intermediate_size"));
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
    const size_t tokens = (size_t)c->num_layers * slots * len;
    m->kv_cache = be->alloc(be, sizeof(float) * tokens * c->kv_lora_rank);
    m->pe_cache = be->alloc(be, sizeof(float) * tokens * c->qk_rope_head_dim);
    tm->cache_slots = slots;
    tm->cache_len = len;
    return R1_OK;
}

/* model.py's kv_cache + pe_cache: kv_lora_rank + qk_rope_head_dim values per token per layer,
 * float32 in this backend. */
static size_t ds_cache_bytes(const teacher_model *tm) {
    const model_config *c = &tm->cfg;
    return sizeof(float) * (size_t)c->num_layers * (c->kv_lora_rank + c->qk_rope_head_dim);
}

/* ---- forward ------------------------------------------------------------------------------- */

/* Activations of one forward call, [n, ...] each. */
typedef struct {
    float *x, *h;        /* [n, d] residual stream, normed input */
    float *qa;           /* [n, q_lora] */
    float *q;            /* [n, H, nope + rope] */
    float *ckv;          /* [n, lat + rope] kv_a_proj_with_mqa output */
    float *kv, *kpe;     /* [n, lat], [n, rope] */
    float *q_lat, *o_lat;/* [n, H, lat] */
    float *o;            /* [n, H, v] */
    float *g, *u;        /* [n, ff] MLP hidden (largest of the widths in use) */
    float *y, *s;        /* [n, d] MoE routed sum, shared-expert output */
    float *xe, *ye;      /* [n, d] one expert's gathered rows and outputs */
    float *router;       /* [n, E] router logits */
} ds_acts;

/* out = down(silu(gate(h)) * up(h)): model.py MLP.forward / Expert.forward */
static void mlp_forward(backend *be, float *out, const float *h, const ds_mlp *mlp, float *g,
                        float *u, int n) {
    const int ff = (int)mlp->w1.rows;
    be->linear(be, g, h, &mlp->w1, NULL, n);
    be->linear(be, u, h, &mlp->w3, NULL, n);
    be->swiglu(be, g, g, u, n, ff, ff);
    be->linear(be, out, g, &mlp->w2, NULL, n);
}

/* x += MoE(h): model.py MoE.forward. Tokens are grouped by expert; experts run in ascending
 * id over their tokens and add w * out into y, so each token's sum runs over its own experts in
 * ascending id whatever else is in the batch (transformers' index_add_ order). */
static void moe_forward(ds_model *m, const ds_layer *L, ds_acts *a, int n) {
    backend *be = m->base.be;
    const model_config *c = &m->base.cfg;
    const moe_router *r = &m->router;
    const int d = c->hidden_size, E = r->n_experts, K = r->top_k;

    /* Gate.forward: router logits in float32, then the routing decision on the host */
    be->linear(be, a->router, a->h, &L->gate, NULL, n);
    float *logits = xmalloc(sizeof(float) * (size_t)n * E);
    be->download(be, logits, a->router, sizeof(float) * (size_t)n * E);
    int *idx = xmalloc(sizeof(int) * (size_t)n * K);
    float *w = xmalloc(sizeof(float) * (size_t)n * K);
    float *scratch = xmalloc(sizeof(float) * moe_route_scratch_floats(r));
    for (int i = 0; i < n; i++)
        moe_route(idx + (size_t)i * K, w + (size_t)i * K, logits + (size_t)i * E, L->gate_bias, r,
                  scratch);

    /* Tokens of each expert, in token order (counting sort by expert id). */
    int *start = xcalloc((size_t)E + 1, sizeof(int));
    for (size_t j = 0; j < (size_t)n * K; j++) start[idx[j] + 1]++;
    for (int e = 0; e < E; e++) start[e + 1] += start[e];
    int *fill = xmalloc(sizeof(int) * (size_t)E);
    memcpy(fill, start, sizeof(int) * (size_t)E);
    int *rows = xmalloc(sizeof(int) * ((size_t)n * K + 1));
    float *rw = xmalloc(sizeof(float) * ((size_t)n * K + 1));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++) {
            const int e = idx[(size_t)i * K + k], at = fill[e]++;
            rows[at] = i;
            rw[at] = w[(size_t)i * K + k];
        }

    be->zero(be, a->y, (size_t)n * d);
    for (int e = 0; e < E; e++) {
        const int cnt = start[e + 1] - start[e];
        if (cnt == 0) continue;
        be->gather_rows(be, a->xe, a->h, rows + start[e], cnt, d);
        mlp_forward(be, a->ye, a->xe, &L->experts[e], a->g, a->u, cnt);
        be->scatter_add_rows(be, a->y, a->ye, rows + start[e], rw + start[e], cnt, d);
    }
    /* (y + shared_experts(x)), then the residual */
    if (c->n_shared_experts > 0) {
        mlp_forward(be, a->s, a->h, &L->mlp, a->g, a->u, n);
        be->add(be, a->y, a->s, (size_t)n * d);
    }
    be->add(be, a->x, a->y, (size_t)n * d);
    free(logits);
    free(idx);
    free(w);
    free(scratch);
    free(start);
    free(fill);
    free(rows);
    free(rw);
}

/* x += MLA(h): model.py MLA.forward, attn_impl="absorb". */
static void mla_forward(ds_model *m, int l, const token_layout *tl, ds_acts *a) {
    backend *be = m->base.be;
    const model_config *c = &m->base.cfg;
    const ds_layer *L = &m->layers[l];
    const int n = tl->n, H = c->num_heads, nope = c->qk_nope_head_dim, rope = c->qk_rope_head_dim,
              qk = nope + rope, lat = c->kv_lora_rank, v = c->v_head_dim;
    const size_t per_layer = (size_t)m->base.cache_slots * m->base.cache_len;
    float *kvc = m->kv_cache + (size_t)l * per_layer * lat;
    float *pec = m->pe_cache + (size_t)l * per_layer * rope;

    /* q = wq(x) if q_lora_rank == 0 else wq_b(q_norm(wq_a(x))) */
    if (c->q_lora_rank == 0) {
        be->linear(be, a->q, a->h, &L->wq, NULL, n);
    } else {
        be->linear(be, a->qa, a->h, &L->wq_a, NULL, n);
        be->rmsnorm(be, a->qa, a->qa, &L->q_norm, n, c->q_lora_rank, LORA_NORM_EPS);
        be->linear(be, a->q, a->qa, &L->wq_b, NULL, n);
    }
    /* q_pe = apply_rotary_emb(q_pe, freqs_cis): the last qk_rope_head_dim of each head */
    be->rope(be, a->q, &m->rope, tl->pos, n, H * qk, H, qk, nope);

    /* kv, k_pe = split(wkv_a(x)); kv_cache = kv_norm(kv); pe_cache = rope(k_pe) */
    be->linear(be, a->ckv, a->h, &L->wkv_a, NULL, n);
    be->copy_strided(be, a->kv, lat, a->ckv, lat + rope, n, lat);
    be->copy_strided(be, a->kpe, rope, a->ckv + lat, lat + rope, n, rope);
    be->rmsnorm(be, a->kv, a->kv, &L->kv_norm, n, lat, LORA_NORM_EPS);
    be->rope(be, a->kpe, &m->rope, tl->pos, n, rope, 1, rope, 0);
    be->kv_store(be, kvc, a->kv, tl, lat, m->base.cache_len);
    be->kv_store(be, pec, a->kpe, tl, rope, m->base.cache_len);

    /* q_nope absorbed through W_UK, attention over the latent cache, W_UV, then wo */
    be->mla_q_absorb(be, a->q_lat, a->q, qk, &L->wkv_b, n, H, nope, v);
    be->mla_attention(be, a->o_lat, a->q_lat, a->q + nope, qk, kvc, pec, tl, m->base.cache_len, H,
                      lat, rope, m->softmax_scale);
    be->mla_v_up(be, a->o, a->o_lat, &L->wkv_b, n, H, nope, v);
    be->linear(be, a->h, a->o, &L->wo, NULL, n);
    be->add(be, a->x, a->h, (size_t)n * c->hidden_size);
}

static int ds_forward(teacher_model *tm, const int *tokens, const token_layout *tl,
                      const int *out_rows, int n_out, float *logits) {
    ds_model *m = (ds_model *)tm;
    const model_config *c = &tm->cfg;
    backend *be = tm->be;
    const int n = tl->n, d = c->hidden_size, H = c->num_heads;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return err_fail(R1_EINPUT, "tokens", "token id %d is outside the vocabulary [0, %lld)",
                            tokens[i], (long long)c->vocab_size);
        if (tl->slot[i] < 0 || tl->slot[i] >= tm->cache_slots)
            return err_fail(R1_EINPUT, "tokens", "cache slot %d is outside [0, %d)", tl->slot[i],
                            tm->cache_slots);
        if (tl->pos[i] < 0 || tl->pos[i] >= tm->cache_len)
            return err_fail(R1_EINPUT, "tokens", "position %d is past the cache length %d",
                            tl->pos[i], tm->cache_len);
    }
    for (int i = 0; i < n_out; i++)
        CHECK(out_rows[i] >= 0 && out_rows[i] < n);

    int ff = c->intermediate_size;
    if (c->n_routed_experts > 0) {
        if (c->moe_intermediate_size > ff) ff = c->moe_intermediate_size;
        if (c->n_shared_experts * c->moe_intermediate_size > ff)
            ff = c->n_shared_experts * c->moe_intermediate_size;
    }
    const int qk = c->qk_nope_head_dim + c->qk_rope_head_dim, lat = c->kv_lora_rank,
              rope = c->qk_rope_head_dim;
#define A(field, count) a.field = be->alloc(be, sizeof(float) * (size_t)n * (size_t)(count) + 1)
    ds_acts a;
    A(x, d); A(h, d); A(qa, c->q_lora_rank); A(q, H * qk); A(ckv, lat + rope); A(kv, lat);
    A(kpe, rope); A(q_lat, H * lat); A(o_lat, H * lat); A(o, H * c->v_head_dim); A(g, ff);
    A(u, ff); A(y, d); A(s, d); A(xe, d); A(ye, d); A(router, c->n_routed_experts);
#undef A
    const float eps = (float)c->rms_norm_eps;

    be->embed(be, a.x, &m->embed, tokens, n);
    for (int l = 0; l < c->num_layers; l++) {
        const ds_layer *L = &m->layers[l];
        /* x = x + attn(attn_norm(x)) */
        be->rmsnorm(be, a.h, a.x, &L->attn_norm, n, d, eps);
        mla_forward(m, l, tl, &a);
        /* x = x + ffn(ffn_norm(x)) */
        be->rmsnorm(be, a.h, a.x, &L->ffn_norm, n, d, eps);
        if (L->moe) {
            moe_forward(m, L, &a, n);
        } else {
            mlp_forward(be, a.y, a.h, &L->mlp, a.g, a.u, n);
            be->add(be, a.x, a.y, (size_t)n * d);
        }
    }
    /* Only the requested rows reach the head: a decode step needs one row per sequence. */
    be->gather_rows(be, a.h, a.x, out_rows, n_out, d);
    be->rmsnorm(be, a.x, a.h, &m->final_norm, n_out, d, eps);
    be->linear(be, logits, a.x, &m->lm_head, NULL, n_out);

    float *bufs[] = {a.x, a.h, a.qa, a.q, a.ckv, a.kv, a.kpe, a.q_lat, a.o_lat, a.o,
                     a.g, a.u, a.y, a.s, a.xe, a.ye, a.router};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be->release(be, bufs[i]);
    return R1_OK;
}

/* ---- open / close -------------------------------------------------------------------------- */

static void ds_destroy(teacher_model *tm) {
    ds_model *m = (ds_model *)tm;
    if (m->kv_cache) tm->be->release(tm->be, m->kv_cache);
    if (m->pe_cache) tm->be->release(tm->be, m->pe_cache);
    for (int l = 0; m->layers && l < tm->cfg.num_layers; l++) {
        free(m->layers[l].gate_bias);
        free(m->layers[l].experts);
    }
    free(m->layers);
    rope_free(&m->rope);
    safetensors_close(&m->st);
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
