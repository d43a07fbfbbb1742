/* The training loop's GPU side: the CPU trainer's model (student_model: tensor table, float32
 * weights) and batches (student_batch) driven through the CUDA step of student/train_cuda.h, on
 * one GPU or as one rank of a data-parallel run.
 *
 * The host model stays the source of truth for names and checkpoints: weights and moments go to
 * the GPU by tensor name when the run starts or resumes, and come back by name when a checkpoint
 * is written, so a checkpoint from either device resumes on the other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backend_cuda.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/sysmem.h"
#include "student/train.h"

#ifdef R1_HAVE_CUDA
#include "core/cuda_comm.h"
#include "student/train_cuda.h"

struct gpu_trainer {
    cuda_student *s;
    cuda_comm *comm;
    int n;                  /* tensors */
    int *host_t;            /* [n] the host layout's tensor that is cuda tensor i */
    int *cuda_t;            /* [n] the cuda tensor that is the host layout's tensor i */
    size_t *host_off;       /* [n] its offset in the host layout */
    /* the bucket last gathered for a checkpoint (gpu_trainer_values) */
    int got_kind, got_bucket, got_valid;
    float *got;
    size_t got_cap;
    int *cu;                /* [max_tokens + 1] document bounds of the current micro-batch */
    int max_tokens;
    recompute_mode recompute;
    /* offloading: the float32 master weights and moments of this rank's pieces of the host
     * buckets, packed (cuda_student_host_runs) */
    float *host_w, *host_m, *host_v;
};

/* cuda_student_put_state's reader: kind k's values from the source, by host tensor. */
typedef struct {
    const gpu_trainer *g;
    const student_source *src;
    source_kind k;
} source_reader;

static void read_source(void *ctx, int i, size_t c0, size_t cnt, float *dst) {
    const source_reader *r = ctx;
    student_source_read(r->src, r->k, r->g->host_t[i], c0, cnt, dst);
}

/* The device's share of kind k (the moments: zeros where the source has none). */
static void put_state(gpu_trainer *g, const student_source *src, cuda_tensor_kind kind,
                      source_kind k) {
    source_reader r = {g, src, k};
    const int zeros = k != SOURCE_PARAMS && !student_source_has(src, k);
    cuda_student_put_state(g->s, kind, zeros ? NULL : read_source, &r);
}

/* Offloading: refuses a run whose host state would not fit its hosts' memory, before any rank
 * fills its share. Ranks on one host share its memory, so each adds up the needs of the ranks
 * whose host name hashes as its own; then every rank learns whether any host fell short, so
 * that none goes on alone into the collectives. */
static int check_host_memory(gpu_trainer *g, size_t mine) {
    const size_t have = host_memory_available();
    double need = (double)mine;
    int sharing = 1;
    float any_short = 0;
    if (g->comm) {
        const int R = cuda_comm_size(g->comm), me = cuda_comm_rank(g->comm);
        char name[256] = "";
        (void)gethostname(name, sizeof name - 1);
        float *v = xcalloc(TRAIN_HOST_ENTRY * (size_t)R, sizeof(float));
        train_host_entry(v + TRAIN_HOST_ENTRY * (size_t)me, name, mine);
        cuda_comm_all_reduce_host(g->comm, v, TRAIN_HOST_ENTRY * (size_t)R);
        need = train_host_need(v, R, me, &sharing);
        free(v);
    }
    const int short_here = have && need > (double)have;
    any_short = (float)short_here;
    if (g->comm) cuda_comm_all_reduce_host(g->comm, &any_short, 1);
    if (!short_here && any_short == 0) return R1_OK;
    if (!short_here)
        return err_fail(R1_ERUNTIME, "offload", "another host of this run has too little memory "
                        "for its ranks' optimizer state (its ranks say how much)");
    err_fail(R1_ERUNTIME, "offload", "the float32 master weights and AdamW moments on the host "
             "need %.1f GiB (%d rank%s on this host); %.1f GiB are available",
             need / 1073741824.0, sharing, sharing == 1 ? "" : "s", have / 1073741824.0);
    return err_hint("keep the state on the GPU (no --offload-optimizer or --offload-all), shard "
                    "it over more GPUs or hosts, or use a host with more memory");
}

/* cuda_student_host_runs' visitor: a run's master weights, and moments where the source has
 * them (zeros otherwise), into the host's packed arrays. */
typedef struct {
    gpu_trainer *g;
    const student_source *src;
} host_fill;

static void fill_run(void *ctx, int i, size_t c0, size_t cnt, size_t at) {
    const host_fill *f = ctx;
    const int t = f->g->host_t[i];
    student_source_read(f->src, SOURCE_PARAMS, t, c0, cnt, f->g->host_w + at);
    if (!student_source_has(f->src, SOURCE_EXP_AVG)) return;
    student_source_read(f->src, SOURCE_EXP_AVG, t, c0, cnt, f->g->host_m + at);
    student_source_read(f->src, SOURCE_EXP_AVG_SQ, t, c0, cnt, f->g->host_v + at);
}

/* Offloading: the host's share of the state, from the source, and the bf16 weights made from
 * it on every rank. */
static int put_host_state(gpu_trainer *g, const student_source *src) {
    const size_t n = cuda_student_host_numel(g->s);
    TRY(check_host_memory(g, 3 * sizeof(float) * n));
    /* zero pages until written: a fresh run's moments cost nothing until the first update */
    g->host_w = xcalloc_large(n ? n : 1, sizeof(float));
    g->host_m = xcalloc_large(n ? n : 1, sizeof(float));
    g->host_v = xcalloc_large(n ? n : 1, sizeof(float));
    host_fill f = {g, src};
    cuda_student_host_runs(g->s, fill_run, &f);
    cuda_student_set_host_state(g->s, g->host_w, g->host_m, g->host_v);
    cuda_student_put_weights(g->s);
    return R1_OK;
}

int gpu_trainer_open(gpu_trainer **out, const student_model *m, const student_source *src,
                     int64_t step, const gpu_trainer_opts *go, const train_dist *dist,
                     char *desc, size_t desc_len) {
    *out = NULL;
    /* one GPU per rank: the one asked for, else the local rank's (wrapping, so a launcher that
     * shows each process only its own GPU works too) */
    int n_dev = 0;
    int rc = backend_cuda_probe(0, &n_dev);
    if (n_dev == 0) return rc;
    err_clear();
    const int dev = dist->gpu >= 0 ? dist->gpu : dist->local_rank % n_dev;
    TRY(backend_cuda_probe(dev, NULL));
    R1_CUDA_CHECK(cudaSetDevice(dev));
    struct cudaDeviceProp prop;
    R1_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));

    gpu_trainer *g = xcalloc(1, sizeof *g);
    if (dist->n_ranks > 1) {
        rc = cuda_comm_create(&g->comm, dist->rank, dist->n_ranks, dist->id_file, 600.0);
        if (rc) {
            free(g);
            return rc;
        }
    }
    const int max_tokens = go->max_tokens, grad_f32 = go->grad_f32;
    cuda_student_opts o = {.max_tokens = max_tokens, .recompute = go->recompute,
                           .grad_f32 = grad_f32, .ce_chunk = 0, .attn = ATTN_AUTO,
                           .n_ranks = dist->n_ranks, .comm = g->comm, .mem_limit = go->mem_limit,
                           .host_optimizer = go->offload != OFFLOAD_NONE, .host_buckets = -1,
                           .zero_stage = go->zero_stage};
    /* every mode gives the same bits, so ranks that choose differently still agree. So does
     * any split of the optimizer state (the GPU's AdamW computes the host's bits), but the
     * ranks gather the host buckets' weights, and ZeRO stages issue different collectives:
     * the ranks choose those together. */
    const int pick_zero = dist->n_ranks > 1 && go->zero_stage == 0;
    if (pick_zero)
        cuda_student_fit_shards(&m->cfg, &o, go->recompute == RECOMPUTE_AUTO);
    else if (go->recompute == RECOMPUTE_AUTO)
        o.recompute = cuda_student_fit_recompute(&m->cfg, &o);
    if (go->offload == OFFLOAD_FIT) {
        o.host_buckets = cuda_student_fit_offload(&m->cfg, &o);
        /* with --zero auto, the stage that leaves the fewest buckets to the hosts (the lowest
         * of those), as the option keeps on the GPUs what fits. For a 7B on two GPUs limited to
         * 38 GiB that is ZeRO-3 with 74% on the hosts instead of ZeRO-1 with 90%: the same
         * speed (the higher stage's gathers cost what the hosts' update saves), 15% less host
         * memory (README) */
        for (int z = o.zero_stage + 1; pick_zero && z <= 3; z++) {
            cuda_student_opts t = o;
            t.zero_stage = z;
            const int k = cuda_student_fit_offload(&m->cfg, &t);
            if (k < o.host_buckets) {
                o.zero_stage = z;
                o.host_buckets = k;
            }
        }
    }
    g->recompute = (recompute_mode)o.recompute;
    rc = cuda_student_create(&g->s, &m->cfg, &o);
    if (rc) {
        cuda_comm_destroy(g->comm);
        free(g);
        return rc;
    }
    g->max_tokens = max_tokens;
    g->cu = xmalloc(sizeof(int) * ((size_t)max_tokens + 1));
    g->n = cuda_student_n_params(g->s);
    g->host_t = xmalloc(sizeof(int) * (size_t)g->n);
    g->cuda_t = xmalloc(sizeof(int) * (size_t)g->n);
    g->host_off = xmalloc(sizeof(size_t) * (size_t)g->n);
    /* the two tables name the same tensors (core/dense_layout.h on the host side) */
    if (g->n != m->n_tensors) rc = err_fail(R1_ERUNTIME, "cuda", "the CUDA student has %d tensors, "
                                            "the model %d", g->n, m->n_tensors);
    for (int i = 0; i < g->n && !rc; i++) {
        const cuda_param *p = cuda_student_param(g->s, i);
        const student_tensor *t = student_model_find(m, p->name);
        if (!t || t->numel != (size_t)(p->rows * p->cols)) {
            rc = err_fail(R1_ERUNTIME, "cuda", "tensor %s: not in the model's layout, or another "
                          "size", p->name);
        } else {
            g->host_t[i] = (int)(t - m->tensors);
            g->cuda_t[g->host_t[i]] = i;
            g->host_off[i] = t->offset;
        }
    }
    /* offloading: the host's share first, then the state the GPU keeps, each read straight
     * from the files */
    if (!rc && go->offload) rc = put_host_state(g, src);
    if (rc) {
        gpu_trainer_close(g);
        return rc;
    }
    put_state(g, src, CUDA_MASTER, SOURCE_PARAMS);
    put_state(g, src, CUDA_ADAM_M, SOURCE_EXP_AVG);
    put_state(g, src, CUDA_ADAM_V, SOURCE_EXP_AVG_SQ);
    cuda_student_set_step(g->s, (int)step);
    cuda_student_zero_grad(g->s);
    /* ranks finish reading their state at different times; meeting here keeps the first step's
     * time (its logged tokens/s) from counting a wait for the slowest reader */
    if (g->comm) cuda_comm_barrier(g->comm);
    if (desc) {
        char mem[32];
        cuda_mem_text(mem, sizeof mem, cuda_student_bytes(&m->cfg, &o));
        static const char *const mode[] = {
            [RECOMPUTE_NONE] = "no recomputation", [RECOMPUTE_ALL] = "recomputing",
            [RECOMPUTE_CHEAP] = "recomputing norms and SwiGLU",
            [RECOMPUTE_KEEP_ATTN] = "recomputing all but the attention"};
        char how[96];
        snprintf(how, sizeof how, "%s%s", mode[g->recompute],
                 go->recompute == RECOMPUTE_AUTO ? ", the fastest that fits" : "");
        /* the share of the parameters whose state the hosts keep: this rank's pieces, as many
         * as every rank's but for the padding */
        char off[96] = "";
        const double ranks = dist->n_ranks > 1 ? dist->n_ranks : 1;
        if (go->offload)
            snprintf(off, sizeof off, "; optimizer state on the host%s for %.0f%% of the "
                     "parameters", ranks > 1 ? "s" : "",
                     100.0 * (double)cuda_student_host_numel(g->s) * ranks /
                         (double)cuda_student_numel(g->s));
        if (dist->n_ranks > 1)
            snprintf(desc, desc_len, "cuda, %d GPUs (this rank: GPU %d, %s), ZeRO-%d%s; %s per "
                     "GPU, %s; %s gradients%s", dist->n_ranks, dev, prop.name,
                     cuda_student_zero_stage(g->s),
                     !pick_zero                    ? ""
                     : go->offload == OFFLOAD_FIT ? " (the fewest buckets on the hosts)"
                                                  : " (the lowest that fits)",
                     mem, how, grad_f32 ? "float32" : "bf16", off);
        else
            snprintf(desc, desc_len, "cuda (GPU %d, %s); %s, %s; %s gradients%s", dev,
                     prop.name, mem, how, grad_f32 ? "float32" : "bf16", off);
    }
    *out = g;
    return R1_OK;
}

recompute_mode gpu_trainer_recompute(const gpu_trainer *g) { return g->recompute; }

/* The CPU batch's per-token document starts become document bounds. */
static cuda_batch to_cuda(gpu_trainer *g, const student_batch *b) {
    CHECK(b->n >= 1 && b->n <= g->max_tokens);
    int nd = 0;
    for (int i = 0; i < b->n; i++)
        if (b->doc_start[i] == i) g->cu[nd++] = i;
    g->cu[nd] = b->n;
    cuda_batch cb = {.n = b->n, .n_docs = nd, .tokens = b->tokens, .targets = b->targets,
                     .cu_seqlens = g->cu};
    return cb;
}

int gpu_trainer_micro(gpu_trainer *g, const student_batch *b, float scale, int last) {
    cuda_batch cb = to_cuda(g, b);
    return last ? cuda_student_forward_backward_last(g->s, &cb, scale)
                : cuda_student_forward_backward(g->s, &cb, scale);
}

void gpu_trainer_reduce_only(gpu_trainer *g) { cuda_student_reduce_grads(g->s); }

int gpu_trainer_reduces_each_micro(const gpu_trainer *g) {
    return cuda_student_zero_stage(g->s) >= 2;
}

int gpu_trainer_eval(gpu_trainer *g, const student_batch *b, float scale) {
    cuda_batch cb = to_cuda(g, b);
    return cuda_student_forward(g->s, &cb, scale);
}

void gpu_trainer_eval_idle(gpu_trainer *g) { cuda_student_forward_idle(g->s); }

double gpu_trainer_take_loss(gpu_trainer *g) { return cuda_student_take_loss(g->s); }

void gpu_trainer_zero_grad(gpu_trainer *g) { cuda_student_zero_grad(g->s); }

double gpu_trainer_grad_norm(gpu_trainer *g, double max_norm) {
    return cuda_student_grad_norm(g->s, (float)max_norm);
}

void gpu_trainer_update(gpu_trainer *g, const adamw_config *c) {
    cuda_optim o = {c->lr, c->beta1, c->beta2, c->eps, c->weight_decay, 0.0f};
    cuda_student_update(g->s, &o);
}

void gpu_trainer_get(gpu_trainer *g, float *params, float *exp_avg, float *exp_avg_sq) {
    float *bases[3] = {params, exp_avg, exp_avg_sq};
    const cuda_tensor_kind kinds[3] = {CUDA_MASTER, CUDA_ADAM_M, CUDA_ADAM_V};
    for (int k = 0; k < 3; k++) {
        float **p = NULL;
        if (bases[k]) {
            p = xmalloc(sizeof(float *) * (size_t)g->n);
            for (int i = 0; i < g->n; i++) p[i] = bases[k] + g->host_off[i];
        }
        cuda_student_get_state(g->s, kinds[k], p);
        free(p);
    }
}

/* checkpoint_values' read: the tensor's values from its bucket, gathered when the writer moves
 * on to another bucket or kind. Every rank asks in the same order, so the gathers match. */
static void read_gathered(void *ctx, source_kind k, int i, float *dst) {
    static const cuda_tensor_kind kind[SOURCE_KINDS] = {CUDA_MASTER, CUDA_ADAM_M, CUDA_ADAM_V};
    gpu_trainer *g = ctx;
    const int c = g->cuda_t[i], b = cuda_student_bucket_of(g->s, c);
    size_t start, len;
    cuda_student_bucket(g->s, b, &start, &len);
    if (g->got_kind != (int)k || g->got_bucket != b) {
        if (dst && len > g->got_cap) {
            free(g->got);
            g->got = xmalloc(sizeof(float) * len);
            g->got_cap = len;
        }
        cuda_student_get_bucket(g->s, kind[k], b, dst ? g->got : NULL);
        g->got_kind = (int)k;
        g->got_bucket = b;
        g->got_valid = dst != NULL;
    }
    if (!dst) return;
    CHECK(g->got_valid); /* a rank that takes part never asks for values afterwards */
    const cuda_param *p = cuda_student_param(g->s, c);
    f32_copy(dst, g->got + (p->offset - start), (size_t)(p->rows * p->cols));
}

checkpoint_values gpu_trainer_values(gpu_trainer *g, int with_state) {
    g->got_kind = g->got_bucket = -1;
    return (checkpoint_values){read_gathered, g, with_state};
}

void gpu_trainer_values_end(gpu_trainer *g) {
    free(g->got);
    g->got = NULL;
    g->got_cap = 0;
}

void gpu_trainer_get_grads(gpu_trainer *g, float *grads) {
    for (int i = 0; i < g->n; i++) cuda_student_download(g->s, CUDA_GRAD, i, grads + g->host_off[i]);
}

/* The step, for host_update_piece. */
typedef struct {
    const gpu_trainer *g;
    const adamw_config *c;
    int64_t step;
    float coef;
} host_step;

static void host_update_piece(void *ctx, int i, size_t c0, size_t cnt, size_t at,
                              const void *grad, int grad_f32, uint16_t *w) {
    const host_step *h = ctx;
    const gpu_trainer *g = h->g;
    adamw_update_staged(g->host_w + at, grad, grad_f32, h->coef, g->host_m + at, g->host_v + at,
                        cnt, h->c, h->step, cuda_student_param(g->s, i)->decay, w);
}

void gpu_trainer_host_update(gpu_trainer *g, const adamw_config *c, int64_t step, double norm,
                             double max_norm) {
    CHECK(g->host_m);
    /* the tensors whose state the GPU keeps, queued first so that they run under the host's */
    gpu_trainer_update(g, c);
    CHECK(cuda_student_step_count(g->s) == step);
    host_step h = {g, c, step, grad_clip_coef(norm, max_norm)};
    cuda_student_host_update(g->s, host_update_piece, &h);
}

void gpu_trainer_close(gpu_trainer *g) {
    if (!g) return;
    cuda_student_destroy(g->s);
    cuda_comm_destroy(g->comm);
    free(g->host_t);
    free(g->cuda_t);
    free(g->host_off);
    free(g->got);
    free(g->cu);
    free(g->host_w);
    free(g->host_m);
    free(g->host_v);
    free(g);
}

#else /* built without CUDA: the loop never gets past gpu_trainer_open */

struct gpu_trainer {
    int unused;
};

int gpu_trainer_open(gpu_trainer **out, const student_model *m, const student_source *src,
                     int64_t step, const gpu_trainer_opts *go, const train_dist *dist,
                     char *desc, size_t desc_len) {
    *out = NULL;
    return backend_cuda_probe(0, NULL);
}
recompute_mode gpu_trainer_recompute(const gpu_trainer *g) {
    CHECK(!"no CUDA in this build");
    return RECOMPUTE_NONE;
}
checkpoint_values gpu_trainer_values(gpu_trainer *g, int with_state) {
    CHECK(!"no CUDA in this build");
    return (checkpoint_values){NULL, NULL, 0};
}
void gpu_trainer_values_end(gpu_trainer *g) { CHECK(!"no CUDA in this build"); }
int gpu_trainer_micro(gpu_trainer *g, const student_batch *b, float scale, int last) {
    CHECK(!"no CUDA in this build");
    return R1_ERUNTIME;
}
void gpu_trainer_reduce_only(gpu_trainer *g) { CHECK(!"no CUDA in this build"); }
int gpu_trainer_reduces_each_micro(const gpu_trainer *g) {
    CHECK(!"no CUDA in this build");
    return 0;
}
int gpu_trainer_eval(gpu_trainer *g, const student_batch *b, float scale) {
    CHECK(!"no CUDA in this build");
    return R1_ERUNTIME;
}
void gpu_trainer_eval_idle(gpu_trainer *g) { CHECK(!"no CUDA in this build"); }
double gpu_trainer_take_loss(gpu_trainer *g) {
    CHECK(!"no CUDA in this build");
    return 0;
}
void gpu_trainer_zero_grad(gpu_trainer *g) { CHECK(!"no CUDA in this build"); }
double gpu_trainer_grad_norm(gpu_trainer *g, double max_norm) {
    CHECK(!"no CUDA in this build");
    return 0;
}
void gpu_trainer_update(gpu_trainer *g, const adamw_config *c) { CHECK(!"no CUDA in this build"); }
void gpu_trainer_host_update(gpu_trainer *g, const adamw_config *c, int64_t step, double norm,
                             double max_norm) {
    CHECK(!"no CUDA in this build");
}
void gpu_trainer_get(gpu_trainer *g, float *params, float *exp_avg, float *exp_avg_sq) {
    CHECK(!"no CUDA in this build");
}
void gpu_trainer_get_grads(gpu_trainer *g, float *grads) { CHECK(!"no CUDA in this build"); }
void gpu_trainer_close(gpu_trainer *g) { free(g); }

#endif /* R1_HAVE_CUDA */
