/* CUDA training kernels of the student trainer: the C-callable launchers.
 *
 * One file per layer (student/cuda/<layer>.cu, after llm.c's llmc/<layer>.cuh): a kernels section and
 * a launchers section. Every launcher takes a stream, checks its arguments (a bad shape is a bug
 * in the caller: CHECK aborts with file and line), launches asynchronously and ends with a
 * launch check. Nothing here synchronises the device unless it says so.
 *
 * Conventions (llm.c):
 * - outputs first, then inputs, weights, sizes, stream;
 * - row-major throughout; a linear weight is [out, in] as PyTorch stores it;
 * - activations and weights are bf16, statistics (rstd, logsumexp) float32;
 * - activation gradients ASSIGN (=), parameter gradients ACCUMULATE (+=), except where a
 *   function says otherwise (rmsnorm_backward adds into the residual-stream gradient);
 * - a parameter gradient buffer is bf16 or float32, chosen by a `grad_f32` flag;
 * - every reduction runs in a fixed order: the same inputs give bit-identical outputs.
 *
 * The CPU reference each kernel is checked against lives in tests/cuda/test_train_kernels.cu;
 * docs/cuda-training.md gives each kernel's FLOPs and bytes. */
#ifndef R1_STUDENT_CUDA_KERNELS_H
#define R1_STUDENT_CUDA_KERNELS_H

#ifdef R1_HAVE_CUDA

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "student/adamw.h"

#ifdef __CUDACC__
#include <cuda_bf16.h>
typedef __nv_bfloat16 r1_bf16;
#else
typedef uint16_t r1_bf16; /* the same 16 bits; C code only moves these around */
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Prints "r1-distill <command>: cuda: <error> at file:line (<expression>)" and exits 1. */
__attribute__((noreturn)) void r1_cuda_fail(int err, const char *msg, const char *file, int line,
                                           const char *expr);
#define R1_CUDA_CHECK(x)                                                                      \
    do {                                                                                      \
        cudaError_t r1_e_ = (x);                                                              \
        if (r1_e_ != cudaSuccess)                                                             \
            r1_cuda_fail((int)r1_e_, cudaGetErrorString(r1_e_), __FILE__, __LINE__, #x);      \
    } while (0)

/* ---- GEMMs: cuBLASLt, bf16 operands, float32 accumulation (gemm.cu) ----------------------- */

typedef struct r1_gemm r1_gemm; /* a cuBLASLt handle, its workspace and a plan cache */

r1_gemm *r1_gemm_create(size_t workspace_bytes);
void r1_gemm_destroy(r1_gemm *g);

/* y[n, out] = x[n, in] @ w[out, in]^T  (+ bias[out] if bias)  (+ res[n, out] if res).
 * y is bf16 (y_f32 = 0; then res, if given, is bf16 with row stride ldy) or float32 (y_f32 = 1,
 * no bias or res: the logits of the loss). ldx, ldy: row strides in elements. res may equal y
 * (an in-place residual add). */
void linear_forward(r1_gemm *g, void *y, int y_f32, int ldy, const r1_bf16 *x, int ldx,
                    const r1_bf16 *w, const r1_bf16 *bias, const void *res, int n, int in, int out,
                    cudaStream_t s);
/* dx[n, in] = dy[n, out] @ w[out, in]   (+= when accumulate). lddy: row stride of dy. */
void linear_backward_x(r1_gemm *g, r1_bf16 *dx, int accumulate, const r1_bf16 *dy, int lddy,
                       const r1_bf16 *w, int n, int in, int out, cudaStream_t s);
/* dw[out, in] (+)= dy[n, out]^T @ x[n, in]; dw bf16 or float32 (dw_f32). */
void linear_backward_w(r1_gemm *g, void *dw, int dw_f32, int accumulate, const r1_bf16 *dy,
                       int lddy, const r1_bf16 *x, int ldx, int n, int in, int out,
                       cudaStream_t s);
/* db[cols] += sum over the n rows of dy[n, cols] (row stride ld): the bias gradient.
 * scratch: bias_backward_scratch_floats(n, cols) floats. */
size_t bias_backward_scratch_floats(int n, int cols);
void bias_backward(void *db, int db_f32, float *scratch, const r1_bf16 *dy, int ld, int n,
                   int cols, cudaStream_t s);

/* ---- RMSNorm (rmsnorm.cu) -------------------------------------------------------------------
 * out = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + eps) per row (transformers' Qwen2RMSNorm /
 * LlamaRMSNorm, computed in float32, rounded once to bf16). */
void rmsnorm_forward_cuda(r1_bf16 *out, float *rstd, const r1_bf16 *x, const r1_bf16 *w, int n, int d,
                     float eps, cudaStream_t s);
/* dx[n, d] += dL/dx (the residual stream's gradient collects it: +=, not =);
 * dw[d] += dL/dw. scratch: rmsnorm_backward_scratch_floats(n, d) floats. */
size_t rmsnorm_backward_scratch_floats(int n, int d);
void rmsnorm_backward_cuda(r1_bf16 *dx, void *dw, int dw_f32, float *scratch, const r1_bf16 *dy,
                      const r1_bf16 *x, const r1_bf16 *w, const float *rstd, int n, int d,
                      cudaStream_t s);

/* ---- RoPE, rotate-half layout (rope.cu) -----------------------------------------------------
 * In place on x[n, ld]: n_heads heads of head_dim at columns h * head_dim; the first rot_dim
 * values of each head pair as (i, i + rot_dim/2) and rotate by the angle of token position
 * pos[i]: cs[(pos * rot_dim/2 + j) * 2 + {0, 1}] = cos, sin (a table built on the host from
 * core/rope.h, so the CPU and GPU use the same float32 values). The q and k heads of a fused
 * qkv row are contiguous, so one call rotates both. Positions restart at each packed document. */
void rope_forward_cuda(r1_bf16 *x, int ld, int n_heads, int head_dim, int rot_dim, const float *cs,
                  const int *pos, int n, cudaStream_t s);
/* The backward: the inverse rotation applied to the gradient, in place. */
void rope_backward_cuda(r1_bf16 *dx, int ld, int n_heads, int head_dim, int rot_dim, const float *cs,
                   const int *pos, int n, cudaStream_t s);
/* Host: fills cs[max_pos][rot_dim/2][2] with cos, sin of pos * inv_freq[j] times attn_factor,
 * in float32 exactly as core/rope.c's rope_apply computes them (inv_freq, attn_factor from a
 * core/rope.h rope_table). */
void rope_cs_table(float *cs, const float *inv_freq, float attn_factor, int rot_dim, int max_pos);

/* ---- SwiGLU (swiglu.cu) ---------------------------------------------------------------------
 * gu[n, 2 ff]: the fused gate/up projection (gate in columns [0, ff), up in [ff, 2 ff)).
 * out[n, ff] = silu(gate) * up. */
void swiglu_forward_cuda(r1_bf16 *out, const r1_bf16 *gu, int n, int ff, cudaStream_t s);
/* dgu[n, 2 ff] from dout[n, ff]; dgu may be gu itself (in place). */
void swiglu_backward_cuda(r1_bf16 *dgu, const r1_bf16 *dout, const r1_bf16 *gu, int n, int ff,
                     cudaStream_t s);
/* The same, and act[n, ff] = silu(gate) * up with swiglu_forward_cuda's bits, for a backward
 * that needs the output again (one pass over gu instead of two). */
void swiglu_backward_refill_cuda(r1_bf16 *dgu, r1_bf16 *act, const r1_bf16 *dout, const r1_bf16 *gu,
                                 int n, int ff, cudaStream_t s);

/* ---- causal flash attention over packed documents (attention*.cu) ----------------------------
 * qkv[n, (H + 2 KV) hd]: per row the H query heads, then KV key heads, then KV value heads
 * (the fused projection's output). Head h attends with kv head h / (H / KV), causally, within
 * its own document only: documents are [cu_seqlens[i], cu_seqlens[i+1]).
 * out[n, H hd]; lse[H, n] = log sum_j exp(scale q.k_j) (natural log, float32).
 *
 * Work is split into tiles of attn_tile_rows() rows that never cross a document (ATTN_TILE for
 * the simple and mma.sync kernels, 2 ATTN_TILE for the wgmma kernels). attn_tiles_build (host)
 * writes them twice: ordered for the query-side kernels (most keys first) and for the key-side
 * kernel (most queries first). Each tile is ATTN_TILE_INTS ints: row0, row1, doc0, doc1, and the
 * document's first slot of dS (below). */
enum { ATTN_TILE = 64, ATTN_TILE_INTS = 5 };
typedef enum { ATTN_AUTO, ATTN_SIMPLE, ATTN_MMA, ATTN_WGMMA } attn_impl;

/* The kernels a command-line word names (auto, wgmma, mma, simple: the benchmarks' --attn), or
 * -1 for another word. */
int attn_impl_parse(const char *name);
/* The tile height the kernels chosen by impl take for this head size. */
int attn_tile_rows(attn_impl impl, int head_dim);
int attn_tiles_count(const int *cu_seqlens, int n_docs, int rows);
/* Returns the batch's dS slots per head (attn_shape.ds_slots). */
int attn_tiles_build(int *tiles_q, int *tiles_kv, const int *cu_seqlens, int n_docs, int rows);

/* The wgmma backward can keep dS = P (dP - delta) instead of recomputing it for dq: the key-side
 * kernel writes it (bf16, one slot of ATTN_DS_SLOT_BYTES per 64 x 64 block of a document's
 * causal triangle, ds_slots per head) and a query-side kernel reads it, so dq costs one product,
 * not three. It runs in passes over as many heads as the scratch holds; passes of fewer heads
 * than a kv group's also keep that group's float32 dk, dv in the scratch between them
 * (attn_ds_partial_bytes, in front). With scratch for no head, the backward recomputes dS. */
enum { ATTN_DS_SLOT_BYTES = ATTN_TILE * ATTN_TILE * 2 };
size_t attn_ds_partial_bytes(int n, int n_kv_heads, int head_dim);

typedef struct {
    int n;                 /* tokens */
    int n_heads, n_kv_heads, head_dim;
    float scale;           /* usually 1 / sqrt(head_dim) */
    int tile_rows;         /* attn_tile_rows(impl, head_dim) */
    int n_tiles;
    const int *tiles_q;    /* device [n_tiles][ATTN_TILE_INTS] */
    const int *tiles_kv;   /* device [n_tiles][ATTN_TILE_INTS] */
    attn_impl impl;        /* AUTO: WGMMA for head_dim 64 and 128, else SIMPLE */
    int ds_slots;          /* attn_tiles_build's return */
    void *ds_scratch;      /* the backward's dS (wgmma), 256-byte aligned; NULL: recompute dS */
    size_t ds_scratch_bytes;
    int ds_max_heads;      /* if > 0, at most this many heads per pass (tests, benchmarks) */
} attn_shape;

/* The query heads per pass of the backward that keeps dS, with this shape's kernels and scratch;
 * 0: it recomputes dS (the mma.sync and simple kernels always do). */
int attn_ds_heads_per_pass(const attn_shape *a);

/* True when the tensor-core kernels take this shape (head_dim 64 or 128, 16-byte rows); AUTO
 * requires it of head_dim 64 and 128. */
int attention_mma_supported(const attn_shape *a, const void *qkv);

void attention_forward_cuda(r1_bf16 *out, float *lse, const r1_bf16 *qkv, const attn_shape *a,
                       cudaStream_t s);
/* dqkv[n, (H + 2 KV) hd] (all of dq, dk, dv assigned) from dout[n, H hd].
 * delta: scratch [H, n] floats (rowsum(dout * out)). */
void attention_backward_cuda(r1_bf16 *dqkv, float *delta, const r1_bf16 *dout, const r1_bf16 *qkv,
                        const r1_bf16 *out, const float *lse, const attn_shape *a,
                        cudaStream_t s);

/* ---- linear + cross-entropy in chunks (cross_entropy.cu) ------------------------------------
 * For the m rows listed in rows[] (the tokens whose loss counts, targets[row] >= 0), in chunks of
 * at most `chunk` rows: logits = h[rows] @ w^T (float32, never more than [chunk, vocab]);
 * loss_sum += sum(logsumexp - logit[target]) * inv_count; then, in place, dlogits =
 * (softmax - onehot) * inv_count (bf16); dh[rows] = dlogits @ w; dw += dlogits^T @ h[rows].
 * Rows not listed get dh = 0. dh == NULL computes the loss only (dw unused). */
typedef struct {
    int chunk;
    float *logits;     /* [chunk, vocab] */
    r1_bf16 *h;        /* [chunk, d]: the chunk's gathered rows */
    r1_bf16 *dh;       /* [chunk, d] */
    float *row_loss;   /* [chunk] */
} ce_scratch;

void linear_cross_entropy(r1_gemm *g, float *loss_sum, r1_bf16 *dh, void *dw, int dw_f32,
                          const r1_bf16 *h, const r1_bf16 *w, const int *targets, const int *rows,
                          int m, int n, int d, int vocab, float inv_count, const ce_scratch *cs,
                          cudaStream_t s);

/* ---- AdamW with global-norm clipping (adamw.cu) ---------------------------------------------
 * grad_sqnorm_partials writes GRAD_NORM_PARTIALS partial sums of g^2 (assign). Several buffers
 * are combined by passing `accumulate`. grad_norm_finish sums them in a fixed order:
 * out[0] = ||g||, out[1] = clip factor min(1, max_norm / (||g|| + 1e-6)) (torch's
 * clip_grad_norm_; max_norm <= 0 means no clipping: factor 1). */
enum { GRAD_NORM_PARTIALS = 1024 };
void grad_sqnorm_partials(float *partials, int accumulate, const void *g, int g_f32, size_t n,
                          cudaStream_t s);
void grad_norm_finish(float *out, const float *partials, float max_norm, cudaStream_t s);

/* torch.optim.AdamW on float32 master weights and moments over n parameters (decoupled weight
 * decay, bias correction) with the scalars k of its step (student/adamw.h): the same float32
 * operations in the same order as the host's adamw_update, so the same bits. The gradient is
 * multiplied by *clip (device float, NULL = 1) first. The master weights are split
 * (core/dtype.h, f32_split_hi): w holds their upper halves, the bf16 working weights the
 * products read, and w_lo their low 16 bits. */
void adamw_update_cuda(r1_bf16 *w, uint16_t *w_lo, float *m, float *v, const void *g, int g_f32,
                       size_t n, adamw_scalars k, const float *clip, cudaStream_t s);

/* ---- embedding and small helpers (embed.cu) -------------------------------------------------- */
/* x[n, d] = emb[tokens[i]] */
void embed_forward(r1_bf16 *x, const r1_bf16 *emb, const int *tokens, int n, int d,
                   cudaStream_t s);
/* demb[ids[u]] += sum of dx rows positions[offsets[u] .. offsets[u+1]), summed in that order.
 * The plan is built on the host (embed_backward_plan) so that no two blocks touch one row. */
int embed_backward_plan(int *ids, int *offsets, int *positions, const int *tokens, int n);
void embed_backward(void *demb, int demb_f32, const r1_bf16 *dx, const int *ids,
                    const int *offsets, const int *positions, int n_ids, int d, cudaStream_t s);
/* dst[i] += src[i] over n gradients of one type (bf16, or float32 when f32): ZeRO-2 adds each
 * micro-batch's reduced piece into the rank's sum. */
void grad_accumulate(void *dst, const void *src, int f32, size_t n, cudaStream_t s);
/* Split master weights (w, w_lo as adamw_update_cuda's) set to: value */
void fill_master(r1_bf16 *w, uint16_t *w_lo, size_t n, float value, cudaStream_t s);
/* ... std * a standard normal drawn from (seed, i) by a counter-based generator (splitmix64 +
 * Box-Muller): the same seed gives the same values on any GPU and launch shape. */
void fill_normal_master(r1_bf16 *w, uint16_t *w_lo, size_t n, uint64_t seed, float std,
                        cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif /* R1_HAVE_CUDA */
#endif
