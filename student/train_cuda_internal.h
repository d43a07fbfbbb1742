/* The CUDA student's state, shared by the files that make it up (not an interface: callers use
 * student/train_cuda.h): student/train_cuda.c builds the layout and runs the step,
 * student/train_cuda_state.c moves parameters and optimizer state between the host and the
 * GPUs. */
#ifndef R1_TRAIN_CUDA_INTERNAL_H
#define R1_TRAIN_CUDA_INTERNAL_H
#ifdef R1_HAVE_CUDA

#include "student/cuda/kernels.h"
#include "student/train_cuda.h"

enum { PARAM_ALIGN = 128 }; /* elements: 256 bytes of bf16, 512 of float32 */
#define GEMM_WORKSPACE (32u << 20)
#define XFER_BYTES ((size_t)64 << 20) /* pinned staging: the offload, checkpoint gathers */

typedef struct {
    size_t attn_norm, wqkv, bqkv, wo, mlp_norm, wgu, wd; /* element offsets */
} layer_params;

typedef struct {                        /* a layer's activations, bf16 unless noted */
    r1_bf16 *h1;                        /* [n, d]     input_layernorm(x) */
    float *rstd1;                       /* [n] */
    r1_bf16 *qkv;                       /* [n, qkvd]  after RoPE */
    r1_bf16 *att;                       /* [n, qd]    attention output, before o_proj */
    float *lse;                         /* [H, n] */
    r1_bf16 *xmid;                      /* [n, d]     x + o_proj(att) */
    r1_bf16 *h2;                        /* [n, d]     post_attention_layernorm(xmid) */
    float *rstd2;                       /* [n] */
    r1_bf16 *gu;                        /* [n, 2 ff]  [gate | up]; its gradient in the backward */
    r1_bf16 *act;                       /* [n, ff]    silu(gate) * up */
} layer_acts;

struct cuda_student {
    model_config cfg;
    cuda_student_opts o;
    int d, H, KV, hd, ff, qd, kvd, qkvd, L, V, N;
    float eps;

    /* parameters: flat arrays, tensors at the offsets of `params` */
    int n_params;
    cuda_param *params;
    layer_params *lp;
    size_t off_embed, off_final_norm, off_lm_head, total;
    /* The float32 master weights are split (core/dtype.h, f32_split_hi): w, every rank's whole
     * copy, holds their upper halves, which are the bf16 working weights the products read, and
     * w_lo their low 16 bits: 2 bytes per parameter for the master beside w, not 4. */
    r1_bf16 *w;                         /* [total]; NULL with ZeRO-3 */
    uint16_t *w_lo;                     /* [local - state_base]: this rank's pieces (everything
                                           on one GPU but what the host holds) */
    float *adam_m, *adam_v;             /* [local - state_base] */

    /* buckets and shards: bucket 0 is the embedding, 1 + l layer l, L + 1 the head (final norm,
     * untied lm_head); rank `rank` of R owns the rank-th of the R equal pieces of each */
    int R, rank;
    cuda_comm *comm;
    int n_buckets;
    size_t *b_off, *b_len;              /* [n_buckets] element ranges, multiples of R * 128 */
    int *b_p0;                          /* [n_buckets + 1] the parameters of bucket k: b_p0[k].. */
    size_t local;                       /* total / R */
    /* host_optimizer: buckets [0, k_dev) have their optimizer state on the host, the rest here,
     * from element state_base of the local arrays on (both 0 without host_optimizer). The
     * host's float32 master weights and moments of this rank's pieces of those buckets, the
     * caller's, packed in the order of cuda_student_host_runs (host_m NULL: not given yet). */
    int k_dev;
    size_t state_base;
    float *host_w, *host_m, *host_v;
    cudaStream_t comm_stream;           /* every NCCL call, in issue order */
    cudaEvent_t ev_main, ev_comm;
    int comm_pending;                   /* comm_stream holds work the main stream has not waited for */
    /* bf16 weights. wb[k]: where bucket k's whole weights are read, at b_off[k] of w, except
     * with ZeRO-3, where every rank keeps w_piece, the upper halves of its pieces of every
     * bucket ([local]), and slots that buckets are all-gathered into when needed (slot_of):
     * two layer-sized ones that the layers take in turn, one layer ahead of the forward and of
     * the backward, and for an untied head a third that the embedding and the head take in
     * turn. A tied embedding, read at both ends of the step, stays whole on every rank with the
     * head bucket (all-gathered after each update, as ZeRO-1 does). slot_bucket[j]: the bucket
     * slot j holds (-1: none, or stale). */
    int zero3;
    r1_bf16 **wb;                       /* [n_buckets] */
    r1_bf16 *w_piece, *w_slot[3];
    int slot_bucket[3];
    cudaEvent_t slot_ready[3];          /* slot j's last all-gather done */
    /* Gradients. ZeRO-1 and one GPU: grad is [total], every bucket at b_off. ZeRO-2: grad is
     * [local], the sum of this rank's reduced pieces, and each bucket's backward writes into
     * scratch (the embedding's and the head's, the layers' two in turn), which a reduce-scatter
     * then empties into grad. An untied head's gradients are reduced before the embedding's
     * are written, so the two share one scratch (ends_shared). gb[k]: where bucket k's
     * gradients are written. */
    void *grad;
    size_t gsize;
    int zero2, ends_shared;
    char **gb;                          /* [n_buckets] */
    void *gs_embed, *gs_head, *gs_layer[2];
    cudaEvent_t gs_free[4];             /* the scratch of gs_slot(k) emptied: embed, head, 2 layers */
    int step;

    /* activations */
    r1_bf16 **x;        /* [L + 1] of [N, d]: the residual stream entering each layer; x[L] last */
    layer_acts *acts;   /* [L], or [1] when recomputing */
    r1_bf16 *hf;        /* [N, d] final norm */
    float *rstdf;       /* [N] */
    r1_bf16 *dx, *dh, *datt, *dqkv, *dact;
    float *delta, *sum_scratch;
    ce_scratch ce;

    /* the current micro-batch */
    int n, m, n_tiles, n_eids;
    int *d_tokens, *d_targets, *d_rows, *d_pos, *d_tiles_q, *d_tiles_kv, *d_eids, *d_eoff,
        *d_epos;
    int *stage;         /* pinned host staging for the batch arrays */
    void *xfer;         /* pinned staging: host_optimizer's weights and gradients, checkpoint
                         * gathers (made on their first use without host_optimizer) */
    size_t stage_ints, max_tiles;
    int ds_slots;       /* the batch's dS slots per head (attn_tiles_build) */
    void *ds_scratch;   /* the attention backward's dS: scratch the MLP's backward is done with */
    size_t ds_bytes;
    int tile_rows;      /* attention tile height of the kernels o.attn picks for hd */
    cudaEvent_t staged;

    float *rope_cs;     /* [N][hd / 2][2] */
    float *loss, *norm_partials, *norm_out;
    r1_gemm *gemm;
    cudaStream_t stream;
    void **allocs;
    int n_allocs;
    size_t bytes;
};

/* ZeRO-3: the slots hold nothing current (new weights, or none yet). */
static inline void slots_forget(cuda_student *s) {
    for (int j = 0; j < 3; j++) s->slot_bucket[j] = -1;
}

/* Whether every rank keeps bucket k's whole bf16 weights: all of them, except with ZeRO-3,
 * where only a tied embedding and its head bucket are. */
static inline int whole_held(const cuda_student *s, int k) {
    return !s->zero3 || (s->cfg.tie_word_embeddings && (k == 0 || k == s->L + 1));
}

/* Collectives are all on comm_stream, in issue order. comm_stream waits for what the main stream
 * has queued so far. */
static inline cudaStream_t comm_begin(cuda_student *s) {
    R1_CUDA_CHECK(cudaEventRecord(s->ev_main, s->stream));
    R1_CUDA_CHECK(cudaStreamWaitEvent(s->comm_stream, s->ev_main, 0));
    s->comm_pending = 1;
    return s->comm_stream;
}

/* The main stream waits for every collective queued so far. */
static inline void wait_comm(cuda_student *s) {
    if (!s->comm_pending) return;
    R1_CUDA_CHECK(cudaEventRecord(s->ev_comm, s->comm_stream));
    R1_CUDA_CHECK(cudaStreamWaitEvent(s->stream, s->ev_comm, 0));
    s->comm_pending = 0;
}

/* This rank's piece of bucket k: where it starts in the flat arrays, its length, and where it
 * starts in the local master / moment arrays. */
static inline size_t piece_len(const cuda_student *s, int k) { return s->b_len[k] / (size_t)s->R; }
static inline size_t piece_global(const cuda_student *s, int k) {
    return s->b_off[k] + (size_t)s->rank * piece_len(s, k);
}
static inline size_t piece_local(const cuda_student *s, int k) {
    return s->b_off[k] / (size_t)s->R - s->state_base;
}
/* This rank's piece of bucket k's bf16 weights: inside the whole copy, or in w_piece (ZeRO-3). */
static inline r1_bf16 *w_mine(const cuda_student *s, int k) {
    return s->zero3 ? s->w_piece + s->b_off[k] / (size_t)s->R : s->w + piece_global(s, k);
}
/* This rank's piece of bucket k's reduced gradients: inside the whole array (ZeRO-1, one GPU),
 * or in the local one (ZeRO-2 and -3). */
static inline void *gpiece(const cuda_student *s, int k) {
    return s->zero2 ? (char *)s->grad + s->b_off[k] / (size_t)s->R * s->gsize
                    : (char *)s->grad + piece_global(s, k) * s->gsize;
}

#endif /* R1_HAVE_CUDA */
#endif /* R1_TRAIN_CUDA_INTERNAL_H */
