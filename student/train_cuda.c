/* The CUDA training step of a Qwen2 / Llama student: parameter layout, activation memory, the
 * forward and backward of a packed micro-batch, and the AdamW step (see student/train_cuda.h;
 * the state in and out is student/train_cuda_state.c's).
 *
 * Each line of a layer's forward mirrors transformers' modeling_qwen2.py (and teacher/dense.c);
 * the backward walks the same lines in reverse. Activation gradients assign, parameter gradients
 * accumulate, the residual-stream gradient `dx` collects the two branches (rmsnorm_backward adds
 * into it). */
#ifdef R1_HAVE_CUDA

#include "student/train_cuda_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rope.h"
#include "student/student.h"

/* ---- memory -------------------------------------------------------------------------------------- */

typedef struct {
    size_t total;
} mem_plan;

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

/* Each allocation is counted by dev_alloc; cuda_student_bytes replays the same sizes. */
static void *dev_alloc(cuda_student *s, mem_plan *p, size_t bytes) {
    bytes = round_up(bytes ? bytes : 1, 256);
    if (p) {
        p->total += bytes;
        return NULL;
    }
    void *ptr;
    R1_CUDA_CHECK(cudaMalloc(&ptr, bytes));
    s->allocs = xrealloc(s->allocs, sizeof(void *) * (size_t)(s->n_allocs + 1));
    s->allocs[s->n_allocs++] = ptr;
    s->bytes += bytes;
    return ptr;
}

/* ---- the parameter table ----------------------------------------------------------------------------- */

/* Closes bucket k at *off: pads it to a multiple of R * PARAM_ALIGN elements. */
static void bucket_close(cuda_student *s, size_t *off, int k) {
    const size_t start = k ? s->b_off[k - 1] + s->b_len[k - 1] : 0;
    *off = round_up(*off, (size_t)PARAM_ALIGN * (size_t)s->R);
    s->b_off[k] = start;
    s->b_len[k] = *off - start;
    s->b_p0[k + 1] = s->n_params;
}

static void add_param(cuda_student *s, size_t *off, const char *name, int64_t rows, int64_t cols,
                      int decay, int align) {
    if (align) *off = round_up(*off, PARAM_ALIGN);
    cuda_param *p = &s->params[s->n_params++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->rows = rows;
    p->cols = cols;
    p->offset = *off;
    p->decay = decay;
    *off += (size_t)rows * (size_t)cols;
}

/* Lays out the tensors; q, k, v (weights and biases) and gate, up are consecutive with no
 * padding between them, so each group is one matrix for the fused GEMMs. */
static void layout_params(cuda_student *s) {
    const model_config *c = &s->cfg;
    const int d = s->d;
    s->params = xcalloc((size_t)(3 + 12 * s->L), sizeof *s->params);
    s->lp = xcalloc((size_t)s->L, sizeof *s->lp);
    s->n_buckets = s->L + 2;
    s->b_off = xcalloc((size_t)s->n_buckets, sizeof *s->b_off);
    s->b_len = xcalloc((size_t)s->n_buckets, sizeof *s->b_len);
    s->b_p0 = xcalloc((size_t)s->n_buckets + 1, sizeof *s->b_p0);
    size_t off = 0;
    char n[96];
    add_param(s, &off, "model.embed_tokens.weight", s->V, d, 1, 1);
    s->off_embed = s->params[0].offset;
    bucket_close(s, &off, 0);
    for (int l = 0; l < s->L; l++) {
        layer_params *lp = &s->lp[l];
#define P(field, suffix, rows, cols, decay, align)                                             \
    snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                                   \
    add_param(s, &off, n, rows, cols, decay, align);                                          \
    if (field) *(field) = s->params[s->n_params - 1].offset
        P(&lp->attn_norm, "input_layernorm.weight", 1, d, 0, 1);
        P(&lp->wqkv, "self_attn.q_proj.weight", s->qd, d, 1, 1);
        P((size_t *)NULL, "self_attn.k_proj.weight", s->kvd, d, 1, 0);
        P((size_t *)NULL, "self_attn.v_proj.weight", s->kvd, d, 1, 0);
        if (c->attention_bias) {
            P(&lp->bqkv, "self_attn.q_proj.bias", 1, s->qd, 0, 1);
            P((size_t *)NULL, "self_attn.k_proj.bias", 1, s->kvd, 0, 0);
            P((size_t *)NULL, "self_attn.v_proj.bias", 1, s->kvd, 0, 0);
        }
        P(&lp->wo, "self_attn.o_proj.weight", d, s->qd, 1, 1);
        P(&lp->mlp_norm, "post_attention_layernorm.weight", 1, d, 0, 1);
        P(&lp->wgu, "mlp.gate_proj.weight", s->ff, d, 1, 1);
        P((size_t *)NULL, "mlp.up_proj.weight", s->ff, d, 1, 0);
        P(&lp->wd, "mlp.down_proj.weight", d, s->ff, 1, 1);
#undef P
        bucket_close(s, &off, 1 + l);
    }
    add_param(s, &off, "model.norm.weight", 1, d, 0, 1);
    s->off_final_norm = s->params[s->n_params - 1].offset;
    if (c->tie_word_embeddings) {
        s->off_lm_head = s->off_embed;
    } else {
        add_param(s, &off, "lm_head.weight", s->V, d, 1, 1);
        s->off_lm_head = s->params[s->n_params - 1].offset;
    }
    bucket_close(s, &off, s->L + 1);
    s->total = off;
    s->local = s->total / (size_t)s->R;
    const int hb = s->o.host_buckets;
    s->k_dev = !s->o.host_optimizer ? 0 : hb < 0 || hb > s->n_buckets ? s->n_buckets : hb;
    s->state_base = s->k_dev < s->n_buckets ? s->b_off[s->k_dev] / (size_t)s->R : s->local;
}

static void free_layout(cuda_student *s) {
    free(s->params);
    free(s->lp);
    free(s->b_off);
    free(s->b_len);
    free(s->b_p0);
}

/* ---- creation ------------------------------------------------------------------------------------------ */

static int check_config(const model_config *c, const cuda_student_opts *o) {
    if (c->arch != ARCH_QWEN2 && c->arch != ARCH_LLAMA)
        return err_fail(R1_EINPUT, "config.json", "model_type %s: the CUDA trainer takes qwen2 and llama",
                        c->model_type);
    if (c->num_heads % c->num_kv_heads)
        return err_fail(R1_EINPUT, "config.json", "num_attention_heads %d is not a multiple of num_key_value_heads %d",
                        c->num_heads, c->num_kv_heads);
    if (c->head_dim > 128 || c->head_dim % 2)
        return err_fail(R1_EINPUT, "config.json", "head_dim %d: the CUDA attention takes even head sizes up to 128",
                        c->head_dim);
    if (c->mlp_bias)
        return err_fail(R1_EINPUT, "config.json", "mlp_bias is not supported by the CUDA trainer");
    if (o->max_tokens <= 0)
        return err_fail(R1_EINPUT, "max_tokens", "must be positive (got %d)", o->max_tokens);
    if (o->recompute < RECOMPUTE_NONE || o->recompute > RECOMPUTE_KEEP_ATTN)
        return err_fail(R1_EINPUT, "recompute", "unknown mode %d", o->recompute);
    if (o->zero_stage < 0 || o->zero_stage > 3)
        return err_fail(R1_EINPUT, "zero_stage", "ZeRO stages are 1, 2 and 3 (got %d)",
                        o->zero_stage);
    if (o->n_ranks > 1 && (!o->comm || cuda_comm_size(o->comm) != o->n_ranks))
        return err_fail(R1_EINPUT, "n_ranks", "%d ranks need a communicator of that size",
                        o->n_ranks);
    return R1_OK;
}

static void set_dims(cuda_student *s, const model_config *c, const cuda_student_opts *o) {
    s->cfg = *c;
    s->o = *o;
    s->d = c->hidden_size;
    s->H = c->num_heads;
    s->KV = c->num_kv_heads;
    s->hd = c->head_dim;
    s->ff = c->intermediate_size;
    s->qd = s->H * s->hd;
    s->kvd = s->KV * s->hd;
    s->qkvd = s->qd + 2 * s->kvd;
    s->L = c->num_layers;
    s->V = (int)c->vocab_size;
    s->N = o->max_tokens;
    s->tile_rows = attn_tile_rows(o->attn, s->hd);
    s->eps = (float)c->rms_norm_eps;
    s->gsize = o->grad_f32 ? 4 : 2;
    s->R = o->n_ranks > 1 ? o->n_ranks : 1;
    s->comm = s->R > 1 ? o->comm : NULL;
    s->rank = s->comm ? cuda_comm_rank(s->comm) : 0;
    s->zero2 = s->R > 1 && o->zero_stage >= 2; /* ZeRO-3 shards the gradients as ZeRO-2 does */
    s->zero3 = s->R > 1 && o->zero_stage == 3;
    s->ends_shared = s->zero2 && !c->tie_word_embeddings;
    slots_forget(s);
    if (s->o.ce_chunk <= 0) {
        long long chunk = (1ll << 28) / s->V; /* about 1 GiB of float32 logits */
        chunk = chunk < 16 ? 16 : chunk;
        s->o.ce_chunk = (int)(chunk < s->N ? chunk : s->N);
    }
}

/* A bump pointer over one allocation; with base NULL it only measures. */
typedef struct {
    char *base;
    size_t used;
} bump;

static void *bump_take(bump *b, size_t bytes) {
    void *ptr = b->base ? b->base + b->used : NULL;
    b->used += round_up(bytes ? bytes : 1, 256);
    return ptr;
}

/* The largest layer bucket (all are the same size), in elements. */
static size_t biggest_layer(const cuda_student *s) {
    size_t b = 0;
    for (int k = 1; k <= s->L; k++) b = s->b_len[k] > b ? s->b_len[k] : b;
    return b;
}

/* ZeRO-3: the slot bucket k is gathered into: the layers' two in turn, the ends' third. */
static int slot_of(const cuda_student *s, int k) {
    return k == 0 || k == s->L + 1 ? 2 : (k - 1) & 1;
}

/* Whether the backward re-runs each layer's forward (ALL, KEEP_ATTN): the layers then share one
 * set of buffers, but for KEEP_ATTN's attention output and statistics. */
static int recompute_layers(const cuda_student *s) {
    return s->o.recompute == RECOMPUTE_ALL || s->o.recompute == RECOMPUTE_KEEP_ATTN;
}

/* What is dead while the loss runs: the backward's activation gradients (dx is cleared after
 * the loss) and, when recomputing, the shared layer buffers, which the backward refills for the
 * last layer before reading them. Returns where the part the attention's backward may borrow
 * starts. */
static size_t take_backward_scratch(cuda_student *s, bump *b) {
    const size_t N = (size_t)s->N, d = (size_t)s->d, bf = sizeof(r1_bf16), f = sizeof(float);
    const int shared_layer = recompute_layers(s), shared_norms = s->o.recompute != RECOMPUTE_NONE;
    layer_acts *a = &s->acts[0];
    /* first what the attention's backward reads or writes, or what comes after it reads */
    s->dx = bump_take(b, N * d * bf);
    s->datt = bump_take(b, N * (size_t)s->qd * bf);
    s->dqkv = bump_take(b, N * (size_t)s->qkvd * bf);
    s->delta = bump_take(b, N * (size_t)s->H * f);
    if (shared_layer) {
        a->rstd1 = bump_take(b, N * f);
        a->qkv = bump_take(b, N * (size_t)s->qkvd * bf);
        if (s->o.recompute == RECOMPUTE_ALL) { /* KEEP_ATTN: each layer's own (alloc_all) */
            a->att = bump_take(b, N * (size_t)s->qd * bf);
            a->lse = bump_take(b, N * (size_t)s->H * f);
        }
    }
    if (shared_norms) a->h1 = bump_take(b, N * d * bf);
    /* then the MLP's, which the layer's backward is done with when the attention's starts: from
     * here to the end of the allocation (which the loss's chunk may stretch), the attention
     * backward keeps its dS (alloc_all) */
    const size_t spent = b->used;
    s->dact = bump_take(b, N * (size_t)s->ff * bf);
    if (shared_layer) {
        a->xmid = bump_take(b, N * d * bf);
        a->rstd2 = bump_take(b, N * f);
        a->gu = bump_take(b, N * 2 * (size_t)s->ff * bf);
    }
    if (shared_norms) {
        a->h2 = bump_take(b, N * d * bf);
        a->act = bump_take(b, N * (size_t)s->ff * bf);
    }
    return spent;
}

static void take_loss_scratch(cuda_student *s, bump *b) {
    const size_t chunk = (size_t)s->o.ce_chunk, d = (size_t)s->d;
    s->ce.chunk = s->o.ce_chunk;
    s->ce.logits = bump_take(b, chunk * (size_t)s->V * sizeof(float));
    s->ce.h = bump_take(b, chunk * d * sizeof(r1_bf16));
    s->ce.dh = bump_take(b, chunk * d * sizeof(r1_bf16));
    s->ce.row_loss = bump_take(b, chunk * sizeof(float));
}

/* Allocates (or, with p, only counts) every device buffer. */
static void alloc_all(cuda_student *s, mem_plan *p) {
    const size_t N = (size_t)s->N, d = (size_t)s->d, bf = sizeof(r1_bf16), f = sizeof(float);
    const size_t T = s->total, layer = biggest_layer(s), e = s->b_len[0], h = s->b_len[s->L + 1];
    if (!s->zero3) {
        s->w = dev_alloc(s, p, T * bf);
    } else {
        s->w_piece = dev_alloc(s, p, s->local * bf);
        for (int j = 0; j < 2; j++) s->w_slot[j] = dev_alloc(s, p, layer * bf);
        /* the ends: one slot for both (untied), or each bucket whole (tied, below) */
        if (!whole_held(s, 0)) s->w_slot[2] = dev_alloc(s, p, (e > h ? e : h) * bf);
    }
    for (int k = 0; k < s->n_buckets; k++) {
        /* ZeRO-3: a whole copy of the bucket's own, or its slot */
        r1_bf16 *own = s->zero3 && whole_held(s, k) ? dev_alloc(s, p, s->b_len[k] * bf) : NULL;
        if (s->wb)
            s->wb[k] = !s->zero3 ? s->w + s->b_off[k] : own ? own : s->w_slot[slot_of(s, k)];
    }
    const size_t state = s->local - s->state_base;
    if (state) {
        s->w_lo = dev_alloc(s, p, state * sizeof(uint16_t));
        s->adam_m = dev_alloc(s, p, state * f);
        s->adam_v = dev_alloc(s, p, state * f);
    }
    if (!s->zero2) {
        s->grad = dev_alloc(s, p, T * s->gsize);
    } else {
        s->grad = dev_alloc(s, p, s->local * s->gsize);
        s->gs_embed = dev_alloc(s, p, (s->ends_shared && h > e ? h : e) * s->gsize);
        s->gs_head = s->ends_shared ? s->gs_embed : dev_alloc(s, p, h * s->gsize);
        for (int j = 0; j < 2; j++) s->gs_layer[j] = dev_alloc(s, p, layer * s->gsize);
    }
    if (s->gb)
        for (int k = 0; k < s->n_buckets; k++)
            s->gb[k] = !s->zero2         ? (char *)s->grad + s->b_off[k] * s->gsize
                       : k == 0          ? (char *)s->gs_embed
                       : k == s->L + 1   ? (char *)s->gs_head
                                         : (char *)s->gs_layer[(k - 1) & 1];

    /* the loss's logits chunk lies over the backward's scratch: one allocation for both */
    bump bw = {0}, ls = {0};
    take_backward_scratch(s, &bw);
    take_loss_scratch(s, &ls);
    const size_t shared = bw.used > ls.used ? bw.used : ls.used;
    bw.base = ls.base = dev_alloc(s, p, shared);
    bw.used = ls.used = 0;
    const size_t spent = take_backward_scratch(s, &bw);
    take_loss_scratch(s, &ls);
    /* the attention backward's dS (the wgmma kernels at head_dim 128 keep it where it fits) in
     * what the MLP's backward scratch and the loss's chunk leave: no memory of its own */
    const int keep_ds = !s->o.attn_recompute_ds;
    s->ds_scratch = keep_ds && bw.base ? bw.base + spent : NULL;
    s->ds_bytes = keep_ds ? shared - spent : 0;

    for (int l = 0; l <= s->L; l++) s->x[l] = dev_alloc(s, p, N * d * bf);
    /* each layer keeps its own set, less what the mode recomputes into the shared one */
    const int rc = s->o.recompute;
    for (int i = 0; i < s->L; i++) {
        layer_acts *a = &s->acts[i];
        if (recompute_layers(s)) {
            if (i > 0) *a = s->acts[0];
            if (rc == RECOMPUTE_KEEP_ATTN) {
                a->att = dev_alloc(s, p, N * (size_t)s->qd * bf);
                a->lse = dev_alloc(s, p, N * (size_t)s->H * f);
            }
            continue;
        }
        const int own = rc == RECOMPUTE_NONE; /* the norms' and SwiGLU's outputs */
        a->h1 = own ? dev_alloc(s, p, N * d * bf) : s->acts[0].h1;
        a->rstd1 = dev_alloc(s, p, N * f);
        a->qkv = dev_alloc(s, p, N * (size_t)s->qkvd * bf);
        a->att = dev_alloc(s, p, N * (size_t)s->qd * bf);
        a->lse = dev_alloc(s, p, N * (size_t)s->H * f);
        a->xmid = dev_alloc(s, p, N * d * bf);
        a->h2 = own ? dev_alloc(s, p, N * d * bf) : s->acts[0].h2;
        a->rstd2 = dev_alloc(s, p, N * f);
        a->gu = dev_alloc(s, p, N * 2 * (size_t)s->ff * bf);
        a->act = own ? dev_alloc(s, p, N * (size_t)s->ff * bf) : s->acts[0].act;
    }
    s->hf = dev_alloc(s, p, N * d * bf);
    s->rstdf = dev_alloc(s, p, N * f);
    s->dh = dev_alloc(s, p, N * d * bf);
    /* the column sums of RMSNorm's dw and of the qkv bias's gradient, one at a time */
    const size_t rms = rmsnorm_backward_scratch_floats(s->N, s->d),
                 bias = bias_backward_scratch_floats(s->N, s->qkvd);
    s->sum_scratch = dev_alloc(s, p, (rms > bias ? rms : bias) * f);

    s->max_tiles = N / ATTN_TILE + N + 1;
    const size_t I = sizeof(int);
    s->d_tokens = dev_alloc(s, p, N * I);
    s->d_targets = dev_alloc(s, p, N * I);
    s->d_rows = dev_alloc(s, p, N * I);
    s->d_pos = dev_alloc(s, p, N * I);
    s->d_tiles_q = dev_alloc(s, p, ATTN_TILE_INTS * s->max_tiles * I);
    s->d_tiles_kv = dev_alloc(s, p, ATTN_TILE_INTS * s->max_tiles * I);
    s->d_eids = dev_alloc(s, p, N * I);
    s->d_eoff = dev_alloc(s, p, (N + 1) * I);
    s->d_epos = dev_alloc(s, p, N * I);
    s->rope_cs = dev_alloc(s, p, N * (size_t)s->hd * f);
    s->loss = dev_alloc(s, p, f);
    s->norm_partials = dev_alloc(s, p, GRAD_NORM_PARTIALS * f);
    s->norm_out = dev_alloc(s, p, 2 * f);
    if (p) p->total += GEMM_WORKSPACE;
}

size_t cuda_student_bytes(const model_config *cfg, const cuda_student_opts *o) {
    cuda_student s;
    memset(&s, 0, sizeof s);
    set_dims(&s, cfg, o);
    layout_params(&s);
    s.x = xcalloc((size_t)s.L + 1, sizeof *s.x);
    s.acts = xcalloc((size_t)s.L, sizeof *s.acts);
    mem_plan p = {0};
    alloc_all(&s, &p);
    free(s.x);
    free(s.acts);
    free_layout(&s);
    return p.total;
}

void cuda_mem_text(char *buf, size_t len, size_t bytes) {
    const double mib = (double)bytes / 1048576.0;
    if (mib < 1024) snprintf(buf, len, "%.0f MiB", mib);
    else snprintf(buf, len, "%.1f GiB", mib / 1024);
}

size_t cuda_student_budget(const cuda_student_opts *o) {
    size_t free_b = 0, total_b = 0;
    R1_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return o->mem_limit && o->mem_limit < free_b ? o->mem_limit : free_b;
}

recompute_mode cuda_student_fit_recompute(const model_config *cfg, const cuda_student_opts *o) {
    const size_t budget = cuda_student_budget(o);
    cuda_student_opts t = *o;
    for (int i = 0; i < RECOMPUTE_MODES; i++) {
        t.recompute = recompute_fastest_first[i];
        if (cuda_student_bytes(cfg, &t) <= budget) return recompute_fastest_first[i];
    }
    return RECOMPUTE_ALL;
}

void cuda_student_fit_shards(const model_config *cfg, cuda_student_opts *o, int pick_recompute) {
    enum { STAGES = 3, MODES = RECOMPUTE_MODES };
    CHECK(o->n_ranks > 1 && o->comm);
    const int n_modes = pick_recompute ? MODES : 1, n = n_modes * STAGES;
    const size_t budget = cuda_student_budget(o);
    /* candidate i: the mode i / STAGES, stage 1 + i % STAGES; fastest first (a stage more costs
     * a few percent, recomputing more a quarter) */
    float unfit[MODES * STAGES];
    cuda_student_opts t = *o;
    for (int i = 0; i < n; i++) {
        if (pick_recompute) t.recompute = (int)recompute_fastest_first[i / STAGES];
        t.zero_stage = 1 + i % STAGES;
        unfit[i] = cuda_student_bytes(cfg, &t) > budget;
    }
    /* the budgets differ between ranks, the choice must not: count the ranks each candidate
     * does not fit */
    cuda_comm_all_reduce_host(o->comm, unfit, (size_t)n);
    int pick = n - 1; /* none fits: the least memory, and create says why */
    for (int i = n - 1; i >= 0; i--)
        if (unfit[i] == 0) pick = i;
    if (pick_recompute) o->recompute = (int)recompute_fastest_first[pick / STAGES];
    o->zero_stage = 1 + pick % STAGES;
}

int cuda_student_fit_offload(const model_config *cfg, const cuda_student_opts *o) {
    const int n_buckets = cfg->num_layers + 2;
    /* filling the GPU is a choice here, not a need: leave some of its free memory free unless
     * the caller named the budget */
    const size_t budget = cuda_student_budget(o);
    const size_t reserve = o->mem_limit ? 0 : (size_t)OFFLOAD_RESERVE_MIB << 20;
    cuda_student_opts t = *o;
    t.host_optimizer = 1;
    /* unfit[k]: the ranks whose budget k buckets on the host do not fit. The ranks' budgets
     * differ, their choice must not: each rank gathers the buckets' new weights from the others
     * after its own update, so all must split the buckets alike. */
    float *unfit = xmalloc(sizeof(float) * (size_t)n_buckets);
    for (int k = 0; k < n_buckets; k++) {
        t.host_buckets = k;
        unfit[k] = cuda_student_bytes(cfg, &t) + reserve > budget;
    }
    if (o->n_ranks > 1) cuda_comm_all_reduce_host(o->comm, unfit, (size_t)n_buckets);
    /* each bucket more on the host takes its state off the device, so the first that fits
     * is the fewest */
    int k = 0;
    while (k < n_buckets && unfit[k] != 0) k++;
    free(unfit);
    return k;
}

int cuda_student_create(cuda_student **out, const model_config *cfg, const cuda_student_opts *o) {
    TRY(check_config(cfg, o));
    const size_t need = cuda_student_bytes(cfg, o), budget = cuda_student_budget(o);
    if (need > budget) {
        const int limited = o->mem_limit && o->mem_limit == budget;
        char need_s[32], budget_s[32];
        cuda_mem_text(need_s, sizeof need_s, need);
        cuda_mem_text(budget_s, sizeof budget_s, budget);
        err_fail(R1_ERUNTIME, "cuda", "the student needs %s of GPU memory; %s %s", need_s, budget_s,
                 limited ? "are allowed (--gpu-mem)" : "are free");
        return err_hint("%sfewer tokens per micro-batch, or more GPUs",
                        o->recompute == RECOMPUTE_ALL ? "" : "use --recompute, ");
    }
    cuda_student *s = xcalloc(1, sizeof *s);
    set_dims(s, cfg, o);
    layout_params(s);
    s->x = xcalloc((size_t)s->L + 1, sizeof *s->x);
    s->acts = xcalloc((size_t)s->L, sizeof *s->acts);
    R1_CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    R1_CUDA_CHECK(cudaStreamCreateWithFlags(&s->comm_stream, cudaStreamNonBlocking));
    R1_CUDA_CHECK(cudaEventCreateWithFlags(&s->ev_main, cudaEventDisableTiming));
    R1_CUDA_CHECK(cudaEventCreateWithFlags(&s->ev_comm, cudaEventDisableTiming));
    for (int j = 0; j < 4; j++) {
        R1_CUDA_CHECK(cudaEventCreateWithFlags(&s->gs_free[j], cudaEventDisableTiming));
        R1_CUDA_CHECK(cudaEventRecord(s->gs_free[j], s->comm_stream));
    }
    for (int j = 0; j < 3; j++)
        R1_CUDA_CHECK(cudaEventCreateWithFlags(&s->slot_ready[j], cudaEventDisableTiming));
    s->gb = xcalloc((size_t)s->n_buckets, sizeof *s->gb);
    s->wb = xcalloc((size_t)s->n_buckets, sizeof *s->wb);
    alloc_all(s, NULL);
    s->gemm = r1_gemm_create(GEMM_WORKSPACE);
    s->stage_ints = 8 * (size_t)s->N + 2 * ATTN_TILE_INTS * s->max_tiles + 8;
    R1_CUDA_CHECK(cudaMallocHost((void **)&s->stage, s->stage_ints * sizeof(int)));
    R1_CUDA_CHECK(cudaEventCreateWithFlags(&s->staged, cudaEventDisableTiming));
    R1_CUDA_CHECK(cudaEventRecord(s->staged, s->stream));

    /* cos/sin for every position a document of max_tokens can reach */
    rope_table rt;
    rope_init(&rt, &cfg->rope, s->hd, ROPE_PAIRS_HALF);
    float *cs = xmalloc(sizeof(float) * (size_t)s->N * s->hd);
    rope_cs_table(cs, rt.inv_freq, rt.attn_factor, s->hd, s->N);
    R1_CUDA_CHECK(cudaMemcpy(s->rope_cs, cs, sizeof(float) * (size_t)s->N * s->hd,
                             cudaMemcpyHostToDevice));
    free(cs);
    rope_free(&rt);

    const size_t T = s->total, Lc = s->local - s->state_base;
    /* the whole buckets (all of w without ZeRO-3) and ZeRO-3's pieces */
    for (int k = 0; k < s->n_buckets; k++)
        if (whole_held(s, k))
            R1_CUDA_CHECK(cudaMemsetAsync(s->wb[k], 0, s->b_len[k] * sizeof(r1_bf16), s->stream));
    if (s->w_piece)
        R1_CUDA_CHECK(cudaMemsetAsync(s->w_piece, 0, s->local * sizeof(r1_bf16), s->stream));
    if (s->o.host_optimizer) R1_CUDA_CHECK(cudaMallocHost(&s->xfer, XFER_BYTES));
    if (Lc) {
        R1_CUDA_CHECK(cudaMemsetAsync(s->w_lo, 0, Lc * sizeof(uint16_t), s->stream));
        R1_CUDA_CHECK(cudaMemsetAsync(s->adam_m, 0, Lc * sizeof(float), s->stream));
        R1_CUDA_CHECK(cudaMemsetAsync(s->adam_v, 0, Lc * sizeof(float), s->stream));
    }
    R1_CUDA_CHECK(cudaMemsetAsync(s->grad, 0, (s->zero2 ? s->local : T) * s->gsize, s->stream));
    R1_CUDA_CHECK(cudaMemsetAsync(s->loss, 0, sizeof(float), s->stream));
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
    *out = s;
    return R1_OK;
}

void cuda_student_destroy(cuda_student *s) {
    if (!s) return;
    cudaStreamSynchronize(s->comm_stream);
    cudaStreamSynchronize(s->stream);
    for (int i = 0; i < s->n_allocs; i++) cudaFree(s->allocs[i]);
    free(s->allocs);
    if (s->stage) cudaFreeHost(s->stage);
    if (s->xfer) cudaFreeHost(s->xfer);
    cudaEventDestroy(s->staged);
    r1_gemm_destroy(s->gemm);
    cudaEventDestroy(s->ev_main);
    cudaEventDestroy(s->ev_comm);
    for (int j = 0; j < 4; j++) cudaEventDestroy(s->gs_free[j]);
    for (int j = 0; j < 3; j++) cudaEventDestroy(s->slot_ready[j]);
    free(s->gb);
    free(s->wb);
    cudaStreamDestroy(s->comm_stream);
    cudaStreamDestroy(s->stream);
    free(s->x);
    free(s->acts);
    free_layout(s);
    free(s);
}

int cuda_student_n_params(const cuda_student *s) { return s->n_params; }
const cuda_param *cuda_student_param(const cuda_student *s, int i) { return &s->params[i]; }
cudaStream_t cuda_student_stream(const cuda_student *s) { return s->stream; }
int cuda_student_step_count(const cuda_student *s) { return s->step; }
int cuda_student_zero_stage(const cuda_student *s) {
    return s->R == 1 ? 0 : s->zero3 ? 3 : s->zero2 ? 2 : 1;
}

size_t cuda_student_allocated(const cuda_student *s) { return s->bytes + GEMM_WORKSPACE; }

size_t cuda_student_numel(const cuda_student *s) {
    size_t t = 0;
    for (int i = 0; i < s->n_params; i++) t += (size_t)(s->params[i].rows * s->params[i].cols);
    return t;
}

/* ---- the micro-batch --------------------------------------------------------------------------------- */

/* Validates the batch and queues its arrays to the device: tokens, targets, the counted rows,
 * positions (restarting per document), the attention tiles and the embedding-gradient plan. */
static int batch_upload(cuda_student *s, const cuda_batch *b) {
    if (b->n <= 0 || b->n > s->N)
        return err_fail(R1_EINPUT, "batch", "%d tokens; this student takes 1 to %d per micro-batch",
                        b->n, s->N);
    if (b->n_docs <= 0 || b->cu_seqlens[0] != 0 || b->cu_seqlens[b->n_docs] != b->n)
        return err_fail(R1_EINPUT, "batch", "document bounds must run from 0 to %d tokens", b->n);
    for (int i = 0; i < b->n_docs; i++)
        if (b->cu_seqlens[i + 1] < b->cu_seqlens[i])
            return err_fail(R1_EINPUT, "batch", "document %d ends before it starts", i);
    for (int i = 0; i < b->n; i++) {
        if (b->tokens[i] < 0 || b->tokens[i] >= s->V)
            return err_fail(R1_EINPUT, "batch", "token %d at position %d is outside the vocabulary [0, %d)",
                            b->tokens[i], i, s->V);
        if (b->targets[i] < -1 || b->targets[i] >= s->V)
            return err_fail(R1_EINPUT, "batch", "target %d at position %d is outside [-1, %d)",
                            b->targets[i], i, s->V);
    }
    const int n = b->n;
    const int nt = attn_tiles_count(b->cu_seqlens, b->n_docs, s->tile_rows);
    CHECK((size_t)nt <= s->max_tiles);
    /* the previous batch's copies have left the staging buffer */
    R1_CUDA_CHECK(cudaEventSynchronize(s->staged));
    int *st = s->stage;
    int *tok = st, *tgt = tok + n, *rows = tgt + n, *pos = rows + n, *tq = pos + n;
    int *tk = tq + ATTN_TILE_INTS * nt, *eids = tk + ATTN_TILE_INTS * nt, *eoff = eids + n;
    int *epos = eoff + n + 1;
    CHECK((size_t)(epos + n - st) <= s->stage_ints);
    memcpy(tok, b->tokens, sizeof(int) * n);
    memcpy(tgt, b->targets, sizeof(int) * n);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (b->targets[i] >= 0) rows[m++] = i;
    for (int dcount = 0; dcount < b->n_docs; dcount++)
        for (int i = b->cu_seqlens[dcount]; i < b->cu_seqlens[dcount + 1]; i++)
            pos[i] = i - b->cu_seqlens[dcount];
    s->ds_slots = attn_tiles_build(tq, tk, b->cu_seqlens, b->n_docs, s->tile_rows);
    const int u = embed_backward_plan(eids, eoff, epos, b->tokens, n);
    const enum cudaMemcpyKind h2d = cudaMemcpyHostToDevice;
    R1_CUDA_CHECK(cudaMemcpyAsync(s->d_tokens, tok, sizeof(int) * n, h2d, s->stream));
    R1_CUDA_CHECK(cudaMemcpyAsync(s->d_targets, tgt, sizeof(int) * n, h2d, s->stream));
    if (m) R1_CUDA_CHECK(cudaMemcpyAsync(s->d_rows, rows, sizeof(int) * m, h2d, s->stream));
    R1_CUDA_CHECK(cudaMemcpyAsync(s->d_pos, pos, sizeof(int) * n, h2d, s->stream));
    if (nt) {
        const size_t list = sizeof(int) * ATTN_TILE_INTS * nt;
        R1_CUDA_CHECK(cudaMemcpyAsync(s->d_tiles_q, tq, list, h2d, s->stream));
        R1_CUDA_CHECK(cudaMemcpyAsync(s->d_tiles_kv, tk, list, h2d, s->stream));
    }
    R1_CUDA_CHECK(cudaMemcpyAsync(s->d_eids, eids, sizeof(int) * u, h2d, s->stream));
    R1_CUDA_CHECK(cudaMemcpyAsync(s->d_eoff, eoff, sizeof(int) * (u + 1), h2d, s->stream));
    R1_CUDA_CHECK(cudaMemcpyAsync(s->d_epos, epos, sizeof(int) * n, h2d, s->stream));
    R1_CUDA_CHECK(cudaEventRecord(s->staged, s->stream));
    s->n = n;
    s->m = m;
    s->n_tiles = nt;
    s->n_eids = u;
    return R1_OK;
}

static attn_shape attn_of(const cuda_student *s) {
    attn_shape a;
    memset(&a, 0, sizeof a);
    a.n = s->n;
    a.n_heads = s->H;
    a.n_kv_heads = s->KV;
    a.head_dim = s->hd;
    a.scale = 1.0f / sqrtf((float)s->hd);
    a.tile_rows = s->tile_rows;
    a.n_tiles = s->n_tiles;
    a.tiles_q = s->d_tiles_q;
    a.tiles_kv = s->d_tiles_kv;
    a.impl = s->o.attn;
    a.ds_slots = s->ds_slots;
    a.ds_scratch = s->ds_scratch;
    a.ds_scratch_bytes = s->ds_bytes;
    return a;
}

/* The bf16 weights of the parameter at element offset off, in bucket k. */
#define W(k, off) (s->wb[k] + ((size_t)(off) - s->b_off[k]))
/* Where the gradient of the parameter at element offset off, in bucket k, is written. */
#define G(k, off) ((void *)(s->gb[k] + ((size_t)(off) - s->b_off[k]) * s->gsize))

/* One decoder layer's forward from s->x[l] into a; writes s->x[l + 1] unless recomputing
 * (write_out 0), when KEEP_ATTN's layer already holds its attention output and lse. */
static void layer_forward(cuda_student *s, int l, layer_acts *a, int write_out) {
    const layer_params *p = &s->lp[l];
    const int k = 1 + l; /* its bucket */
    const int n = s->n, d = s->d;
    const attn_shape at = attn_of(s);
    cudaStream_t st = s->stream;
    /* h = self.input_layernorm(hidden_states) */
    rmsnorm_forward_cuda(a->h1, a->rstd1, s->x[l], W(k, p->attn_norm), n, d, s->eps, st);
    /* q, k, v = q_proj(h), k_proj(h), v_proj(h): one GEMM over [Wq; Wk; Wv] */
    linear_forward(s->gemm, a->qkv, 0, s->qkvd, a->h1, d, W(k, p->wqkv),
                   s->cfg.attention_bias ? W(k, p->bqkv) : NULL, NULL, n, d, s->qkvd, st);
    /* q, k = apply_rotary_pos_emb(q, k, cos, sin): the H + KV heads at the row's start */
    rope_forward_cuda(a->qkv, s->qkvd, s->H + s->KV, s->hd, s->hd, s->rope_cs, s->d_pos, n, st);
    /* attn_output = softmax(q k^T * scale + causal mask) v */
    if (write_out || s->o.recompute != RECOMPUTE_KEEP_ATTN)
        attention_forward_cuda(a->att, a->lse, a->qkv, &at, st);
    /* hidden_states = residual + o_proj(attn_output): the residual enters as C (beta = 1) */
    linear_forward(s->gemm, a->xmid, 0, d, a->att, s->qd, W(k, p->wo), NULL, s->x[l], n, s->qd,
                   d, st);
    /* h = self.post_attention_layernorm(hidden_states) */
    rmsnorm_forward_cuda(a->h2, a->rstd2, a->xmid, W(k, p->mlp_norm), n, d, s->eps, st);
    /* gate, up = gate_proj(h), up_proj(h): one GEMM over [Wg; Wu] */
    linear_forward(s->gemm, a->gu, 0, 2 * s->ff, a->h2, d, W(k, p->wgu), NULL, NULL, n, d,
                   2 * s->ff, st);
    /* hidden_states = residual + down_proj(act_fn(gate) * up); recomputing, the backward makes
     * act itself (layer_backward) */
    if (write_out) {
        swiglu_forward_cuda(a->act, a->gu, n, s->ff, st);
        linear_forward(s->gemm, s->x[l + 1], 0, d, a->act, s->ff, W(k, p->wd), NULL, a->xmid, n,
                       s->ff, d, st);
    }
}

/* RECOMPUTE_CHEAP: the shared outputs of layer l's norms, recomputed from the kept products by
 * layer_forward's own kernels (so the same bits; rstd is rewritten equal). SwiGLU's output is
 * made by the backward (layer_backward). */
static void layer_refill(cuda_student *s, int l, layer_acts *a) {
    const layer_params *p = &s->lp[l];
    const int k = 1 + l; /* its bucket */
    const int n = s->n, d = s->d;
    rmsnorm_forward_cuda(a->h1, a->rstd1, s->x[l], W(k, p->attn_norm), n, d, s->eps, s->stream);
    rmsnorm_forward_cuda(a->h2, a->rstd2, a->xmid, W(k, p->mlp_norm), n, d, s->eps, s->stream);
}

/* The backward of layer l; s->dx holds the gradient of its output and receives its input's. */
static void layer_backward(cuda_student *s, int l, layer_acts *a) {
    const layer_params *p = &s->lp[l];
    const int k = 1 + l; /* its bucket */
    const int n = s->n, d = s->d, ff = s->ff, f32 = s->o.grad_f32;
    attn_shape at = attn_of(s);
    /* a layer that keeps its own [gate | up] is done with it once its MLP's backward is: where it
     * is larger than the shared scratch, the attention's dS goes there instead */
    const size_t own_gu = (size_t)s->N * 2 * (size_t)ff * sizeof(r1_bf16);
    if (at.ds_scratch && !recompute_layers(s) && own_gu > at.ds_scratch_bytes) {
        at.ds_scratch = a->gu;
        at.ds_scratch_bytes = own_gu;
    }
    cudaStream_t st = s->stream;
    r1_gemm *g = s->gemm;
    /* x_out = xmid + act Wd^T; act = silu(gate) * up, and the gradient of [gate | up] replaces
     * gu. Recomputing, act is not kept: SwiGLU's backward makes it on the way (the forward's
     * bits) before the product that reads it. */
    linear_backward_x(g, s->dact, 0, s->dx, d, W(k, p->wd), n, ff, d, st);
    if (s->o.recompute == RECOMPUTE_NONE)
        swiglu_backward_cuda(a->gu, s->dact, a->gu, n, ff, st);
    else
        swiglu_backward_refill_cuda(a->gu, a->act, s->dact, a->gu, n, ff, st);
    linear_backward_w(g, G(k, p->wd), f32, 1, s->dx, d, a->act, ff, n, ff, d, st);
    /* [gate | up] = h2 [Wg; Wu]^T */
    linear_backward_x(g, s->dh, 0, a->gu, 2 * ff, W(k, p->wgu), n, d, 2 * ff, st);
    linear_backward_w(g, G(k, p->wgu), f32, 1, a->gu, 2 * ff, a->h2, d, n, d, 2 * ff, st);
    /* h2 = rmsnorm(xmid): dx += */
    rmsnorm_backward_cuda(s->dx, G(k, p->mlp_norm), f32, s->sum_scratch, s->dh, a->xmid,
                          W(k, p->mlp_norm), a->rstd2, n, d, st);
    /* xmid = x + att Wo^T */
    linear_backward_x(g, s->datt, 0, s->dx, d, W(k, p->wo), n, s->qd, d, st);
    linear_backward_w(g, G(k, p->wo), f32, 1, s->dx, d, a->att, s->qd, n, s->qd, d, st);
    /* att = attention(qkv) */
    attention_backward_cuda(s->dqkv, s->delta, s->datt, a->qkv, a->att, a->lse, &at, st);
    /* RoPE's transpose on dq, dk */
    rope_backward_cuda(s->dqkv, s->qkvd, s->H + s->KV, s->hd, s->hd, s->rope_cs, s->d_pos, n, st);
    /* qkv = h1 [Wq; Wk; Wv]^T + b */
    linear_backward_x(g, s->dh, 0, s->dqkv, s->qkvd, W(k, p->wqkv), n, d, s->qkvd, st);
    linear_backward_w(g, G(k, p->wqkv), f32, 1, s->dqkv, s->qkvd, a->h1, d, n, d, s->qkvd, st);
    if (s->cfg.attention_bias)
        bias_backward(G(k, p->bqkv), f32, s->sum_scratch, s->dqkv, s->qkvd, n, s->qkvd, st);
    /* h1 = rmsnorm(x): dx += */
    rmsnorm_backward_cuda(s->dx, G(k, p->attn_norm), f32, s->sum_scratch, s->dh, s->x[l],
                          W(k, p->attn_norm), a->rstd1, n, d, st);
}

/* The bucket of lm_head: the embedding's when tied. */
static int head_bucket(const cuda_student *s) {
    return s->cfg.tie_word_embeddings ? 0 : s->L + 1;
}

/* ZeRO-3: queues the all-gather of bucket k's weights into its slot unless the bucket is
 * whole here or the slot holds it already (k outside the buckets: nothing). Ranks make the same
 * calls in the same order (an idle rank too, see forward_backward), so they skip the same
 * gathers and their collectives match. */
static void bucket_gather(cuda_student *s, int k) {
    if (k < 0 || k >= s->n_buckets || whole_held(s, k)) return;
    const int j = slot_of(s, k);
    if (s->slot_bucket[j] == k) return;
    cuda_comm_all_gather(s->comm, w_mine(s, k), s->wb[k], piece_len(s, k), COMM_BF16,
                         comm_begin(s)); /* behind the last reads of the slot's previous bucket */
    R1_CUDA_CHECK(cudaEventRecord(s->slot_ready[j], s->comm_stream));
    s->slot_bucket[j] = k;
}

static void layer_gather(cuda_student *s, int l) {
    if (l >= 0 && l < s->L) bucket_gather(s, 1 + l);
}

/* ZeRO-3: the main stream waits for bucket k's weights in its slot. */
static void bucket_ready(cuda_student *s, int k) {
    if (whole_held(s, k)) return;
    CHECK(s->slot_bucket[slot_of(s, k)] == k);
    R1_CUDA_CHECK(cudaStreamWaitEvent(s->stream, s->slot_ready[slot_of(s, k)], 0));
}

/* The forward into s->hf; idle: only the collectives (a rank without a micro-batch). ZeRO-3
 * gathers layer l + 2 while layer l + 1 runs, and an untied head into the embedding's slot once
 * the embedding has been read. */
static void model_forward(cuda_student *s, int idle) {
    wait_comm(s); /* the previous update's all-gathered weights */
    bucket_gather(s, 0);
    layer_gather(s, 0);
    layer_gather(s, 1);
    if (!idle) {
        bucket_ready(s, 0);
        embed_forward(s->x[0], W(0, s->off_embed), s->d_tokens, s->n, s->d, s->stream);
    }
    bucket_gather(s, s->L + 1);
    for (int l = 0; l < s->L; l++) {
        if (!idle) {
            bucket_ready(s, 1 + l);
            layer_forward(s, l, &s->acts[l], 1);
        }
        layer_gather(s, l + 2);
    }
    if (!idle) {
        bucket_ready(s, s->L + 1);
        rmsnorm_forward_cuda(s->hf, s->rstdf, s->x[s->L], W(s->L + 1, s->off_final_norm), s->n,
                             s->d, s->eps, s->stream);
    }
}

int cuda_student_forward(cuda_student *s, const cuda_batch *b, float inv_count) {
    TRY(batch_upload(s, b));
    model_forward(s, 0);
    linear_cross_entropy(s->gemm, s->loss, NULL, NULL, s->o.grad_f32, s->hf,
                         W(head_bucket(s), s->off_lm_head), s->d_targets, s->d_rows, s->m, s->n,
                         s->d, s->V, inv_count, &s->ce, s->stream);
    return R1_OK;
}

void cuda_student_forward_idle(cuda_student *s) { model_forward(s, 1); }

/* ZeRO-2: the scratch of bucket k, and its event (embedding, head, the layers' two in turn;
 * the embedding takes the head's when they share it). */
static int gs_slot(const cuda_student *s, int k) {
    return k == 0 ? (s->ends_shared ? 1 : 0) : k == s->L + 1 ? 1 : 2 + ((k - 1) & 1);
}

/* ZeRO-2: before bucket k's backward writes, its scratch is emptied by the last reduction
 * that read it (on comm_stream) and then cleared, since the backward adds into it. */
static void scratch_take(cuda_student *s, int k) {
    R1_CUDA_CHECK(cudaStreamWaitEvent(s->stream, s->gs_free[gs_slot(s, k)], 0));
    R1_CUDA_CHECK(cudaMemsetAsync(s->gb[k], 0, s->b_len[k] * s->gsize, s->stream));
}

/* Queues the reduce-scatter of bucket k's gradients behind what the main stream has queued;
 * ZeRO-2 then adds this rank's piece into its sum, which frees the scratch. */
static void bucket_reduce(cuda_student *s, int k) {
    cudaStream_t cs = comm_begin(s);
    const size_t P = piece_len(s, k);
    cuda_comm_reduce_scatter(s->comm, s->gb[k], P, s->o.grad_f32 ? COMM_F32 : COMM_BF16, cs);
    if (!s->zero2) return;
    grad_accumulate(gpiece(s, k), s->gb[k] + (size_t)s->rank * P * s->gsize, s->o.grad_f32, P,
                    cs);
    R1_CUDA_CHECK(cudaEventRecord(s->gs_free[gs_slot(s, k)], cs));
}

/* The forward and backward of micro-batch b, reducing the gradients when `reduce`. b NULL: a
 * rank without a micro-batch, which queues the same collectives in the same order, over zero
 * gradients. */
static int forward_backward(cuda_student *s, const cuda_batch *b, float inv_count, int reduce) {
    const int idle = b == NULL;
    if (!idle) TRY(batch_upload(s, b));
    model_forward(s, idle);
    const int n = s->n, d = s->d, f32 = s->o.grad_f32, khead = head_bucket(s);
    cudaStream_t st = s->stream;
    /* ZeRO-2 reduces every micro-batch; a tied embedding's gradients build up over the whole
     * backward, from the loss on (an untied one's come at the end, into the head's scratch) */
    if (s->zero2) {
        reduce = 1;
        scratch_take(s, s->L + 1);
        if (!s->ends_shared) scratch_take(s, 0);
    }
    if (!idle) {
        /* logits = lm_head(norm(x)); the loss and dh of the final norm's output (into s->dh) */
        linear_cross_entropy(s->gemm, s->loss, s->dh, G(khead, s->off_lm_head), f32, s->hf,
                             W(khead, s->off_lm_head), s->d_targets, s->d_rows, s->m, n, d, s->V,
                             inv_count, &s->ce, st);
        R1_CUDA_CHECK(cudaMemsetAsync(s->dx, 0, sizeof(r1_bf16) * (size_t)n * d, st));
        rmsnorm_backward_cuda(s->dx, G(s->L + 1, s->off_final_norm), f32, s->sum_scratch, s->dh,
                              s->x[s->L], W(s->L + 1, s->off_final_norm), s->rstdf, n, d, st);
    }
    /* ZeRO-3: the rest of the backward reads no weights of the ends, so an untied embedding
     * can come back into their slot for the next forward */
    bucket_gather(s, 0);
    /* each bucket's gradients are complete once the backward has left it: the head's now,
     * layer l's after its backward, the embedding's (with a tied head's) at the end. ZeRO-3:
     * the forward left the last two layers in the slots; layer l's backward frees its slot for
     * layer l - 2. */
    if (reduce) bucket_reduce(s, s->L + 1);
    for (int l = s->L - 1; l >= 0; l--) {
        if (!idle) {
            bucket_ready(s, 1 + l);
            if (recompute_layers(s)) layer_forward(s, l, &s->acts[l], 0);
            if (s->o.recompute == RECOMPUTE_CHEAP) layer_refill(s, l, &s->acts[l]);
        }
        if (s->zero2) scratch_take(s, 1 + l);
        if (!idle) layer_backward(s, l, &s->acts[l]);
        if (reduce) bucket_reduce(s, 1 + l);
        layer_gather(s, l - 2);
    }
    if (s->ends_shared) scratch_take(s, 0); /* once the head's reduction has emptied it */
    if (!idle)
        embed_backward(G(0, s->off_embed), f32, s->dx, s->d_eids, s->d_eoff, s->d_epos,
                       s->n_eids, d, st);
    if (reduce) bucket_reduce(s, 0);
    return R1_OK;
}

int cuda_student_forward_backward(cuda_student *s, const cuda_batch *b, float inv_count) {
    return forward_backward(s, b, inv_count, 0);
}

int cuda_student_forward_backward_last(cuda_student *s, const cuda_batch *b, float inv_count) {
    return forward_backward(s, b, inv_count, s->R > 1);
}

void cuda_student_reduce_grads(cuda_student *s) {
    if (s->R > 1) forward_backward(s, NULL, 0, 1);
}

void cuda_student_zero_grad(cuda_student *s) {
    wait_comm(s);
    R1_CUDA_CHECK(cudaMemsetAsync(s->grad, 0, (s->zero2 ? s->local : s->total) * s->gsize,
                                  s->stream));
}

float cuda_student_take_loss(cuda_student *s) {
    if (s->R > 1) {
        cuda_comm_all_reduce(s->comm, s->loss, 1, COMM_F32, comm_begin(s));
        wait_comm(s);
    }
    float v;
    R1_CUDA_CHECK(cudaMemcpyAsync(&v, s->loss, sizeof v, cudaMemcpyDeviceToHost, s->stream));
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
    R1_CUDA_CHECK(cudaMemsetAsync(s->loss, 0, sizeof(float), s->stream));
    return v;
}

/* The global norm and clip factor into norm_out[0, 1]. On one GPU the padding between tensors
 * holds zero gradients, so the flat norm is the tensors' norm; with shards each rank sums its
 * reduced pieces and the partial sums are added over ranks (1024 floats, a fixed order). */
static void norm_queue(cuda_student *s, float max_grad_norm) {
    cudaStream_t st = s->stream;
    wait_comm(s); /* the reduce-scatters */
    if (s->R == 1) {
        grad_sqnorm_partials(s->norm_partials, 0, s->grad, s->o.grad_f32, s->total, st);
    } else {
        for (int k = 0; k < s->n_buckets; k++)
            grad_sqnorm_partials(s->norm_partials, k > 0, gpiece(s, k), s->o.grad_f32,
                                 piece_len(s, k), st);
        cuda_comm_all_reduce(s->comm, s->norm_partials, GRAD_NORM_PARTIALS, COMM_F32,
                             comm_begin(s));
        wait_comm(s);
    }
    grad_norm_finish(s->norm_out, s->norm_partials, max_grad_norm, st);
}

float cuda_student_grad_norm(cuda_student *s, float max_grad_norm) {
    norm_queue(s, max_grad_norm);
    float v;
    R1_CUDA_CHECK(cudaMemcpyAsync(&v, s->norm_out, sizeof v, cudaMemcpyDeviceToHost, s->stream));
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
    return v;
}

void cuda_student_update(cuda_student *s, const cuda_optim *o) {
    cudaStream_t st = s->stream;
    s->step++;
    const adamw_config c = {o->lr, o->beta1, o->beta2, o->eps, o->weight_decay};
    const adamw_scalars with_decay = adamw_scalars_for(&c, s->step, 1),
                        without = adamw_scalars_for(&c, s->step, 0);
    for (int k = s->k_dev; k < s->n_buckets; k++) {
        /* AdamW on the tensors' parts inside this rank's piece. Decay is per tensor, so one
         * launch takes each run of consecutive tensors that agree on it (the alignment padding
         * between them is never read by the model: updating it changes nothing). */
        const size_t lo = piece_global(s, k), hi = lo + piece_len(s, k), base = piece_local(s, k);
        for (int i = s->b_p0[k], j; i < s->b_p0[k + 1]; i = j + 1) {
            const cuda_param *p = &s->params[i];
            for (j = i; j + 1 < s->b_p0[k + 1] && s->params[j + 1].decay == p->decay; j++) {}
            const cuda_param *q = &s->params[j];
            const size_t t0 = p->offset, t1 = q->offset + (size_t)(q->rows * q->cols);
            const size_t a = t0 > lo ? t0 : lo, b = t1 < hi ? t1 : hi;
            if (a >= b) continue;
            const size_t at = base + (a - lo); /* in the local arrays */
            adamw_update_cuda(w_mine(s, k) + (a - lo), s->w_lo + at, s->adam_m + at,
                              s->adam_v + at, (char *)gpiece(s, k) + (a - lo) * s->gsize,
                              s->o.grad_f32, b - a, p->decay ? with_decay : without,
                              s->norm_out + 1, st);
        }
        /* every rank gets the bucket's new bf16 weights (the next forward waits for them),
         * except ZeRO-3's layers, which the forward gathers */
        if (s->R > 1 && whole_held(s, k))
            cuda_comm_all_gather(s->comm, w_mine(s, k), s->wb[k], piece_len(s, k), COMM_BF16,
                                 comm_begin(s));
    }
    slots_forget(s);
}

void cuda_student_step(cuda_student *s, const cuda_optim *o, float *grad_norm) {
    norm_queue(s, o->max_grad_norm);
    cuda_student_update(s, o);
    if (grad_norm) {
        R1_CUDA_CHECK(cudaMemcpyAsync(grad_norm, s->norm_out, sizeof(float), cudaMemcpyDeviceToHost,
                                      s->stream));
        R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
    }
}

#endif /* R1_HAVE_CUDA */
