/* The compute backend interface: the operations model code is written in.
 *
 * Model code (teacher/dense.c, teacher/deepseek.c) calls these through a backend table and never
 * branches on which backend runs; the CPU backend (backend_cpu.c, fp32 with OpenMP) is the
 * readable reference the CUDA backend is checked against. Activations are float32 arrays in the
 * backend's memory; weights are `weight` views of checkpoint tensors in their stored dtype, so a
 * memory-mapped bf16 or FP8 checkpoint is never copied whole.
 *
 * Conventions (after llm.c): outputs first, then inputs, weights, sizes. Row-major throughout;
 * a linear weight is [out, in] as PyTorch stores it. */
#ifndef R1_CORE_BACKEND_H
#define R1_CORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/rope.h"
#include "core/weight.h"

/* Where each token of a forward batch sits: the KV-cache slot of its sequence and its position
 * there. Tokens of one sequence are consecutive and in position order. */
typedef struct {
    int n;            /* tokens in the batch */
    const int *slot;  /* [n] */
    const int *pos;   /* [n] */
} token_layout;

typedef struct backend backend;
struct backend {
    const char *name;
    void *(*alloc)(backend *be, size_t bytes);
    void (*release)(backend *be, void *p);

    /* out[n, w->cols] = rows ids[i] of the embedding table w */
    void (*embed)(backend *be, float *out, const weight *w, const int *ids, int n);
    /* out[n, d] = x / sqrt(mean(x^2) + eps) * g */
    void (*rmsnorm)(backend *be, float *out, const float *x, const weight *g, int n, int d,
                    float eps);
    /* y[n, w->rows] = x[n, w->cols] @ w^T (+ bias[w->rows] if bias). Each output element is
     * computed in the same order whatever n is, so a token's result does not depend on what else
     * is in the batch. */
    void (*linear)(backend *be, float *y, const float *x, const weight *w, const weight *bias,
                   int n);
    /* Rotates, for each token i, n_heads vectors (stride head_stride, starting at off) in
     * x[i * row_stride ...] at position pos[i]. */
    void (*rope)(backend *be, float *x, const rope_table *r, const int *pos, int n, int row_stride,
                 int n_heads, int head_stride, int off);
    /* out[n, d] = silu(gate) * up, with gate and up rows of width d at stride `stride`. */
    void (*swiglu)(backend *be, float *out, const float *gate, const float *up, int n, int d,
                   int stride);
    /* cache[slot[i]][pos[i]][0..width) = src[i * width ...] for each token of the batch; the
     * cache has max_seq rows of `width` floats per slot. */
    void (*kv_store)(backend *be, float *cache, const float *src, const token_layout *tl, int width,
                     int max_seq);
    /* x[i] += y[i] */
    void (*add)(backend *be, float *x, const float *y, size_t n);
    /* Grouped-query causal attention of the batch's tokens against the KV cache.
     * q: [n, n_heads, head_dim]; k_cache/v_cache: [slots][max_seq][n_kv_heads * head_dim] where
     * the batch's own keys and values are already stored. Token i attends to positions 0..pos[i]
     * of its slot. out: [n, n_heads, v_dim]. */
    void (*attention)(backend *be, float *out, const float *q, const float *k_cache,
                      const float *v_cache, const token_layout *tl, int max_seq, int n_heads,
                      int n_kv_heads, int head_dim, int v_dim, float scale);

    /* ---- memory movement (MoE dispatch, strided views) ---- */
    /* x[0..n) = 0 */
    void (*zero)(backend *be, float *x, size_t n);
    /* Copies n bytes of backend memory to host memory. */
    void (*download)(backend *be, void *host, const void *src, size_t n);
    /* dst[i * dst_stride + j] = src[i * src_stride + j] for i < n, j < width */
    void (*copy_strided)(backend *be, float *dst, int dst_stride, const float *src, int src_stride,
                         int n, int width);
    /* dst[i] = src[rows[i]] for i < n, rows of `width` floats; rows is a host array. */
    void (*gather_rows)(backend *be, float *dst, const float *src, const int *rows, int n,
                        int width);
    /* dst[rows[i]] += scale[i] * src[i] for i = 0, 1, ..., n-1 in that order; rows and scale are
     * host arrays. */
    void (*scatter_add_rows)(backend *be, float *dst, const float *src, const int *rows,
                             const float *scale, int n, int width);

    /* ---- multi-head latent attention (DeepSeek-V2/V3 MLA, absorbed form) ----
     * kv_b_proj [n_heads * (nope + v_dim), lat] is viewed per head as [nope + v_dim, lat]
     * (model.py: wkv_b.view(n_heads, -1, kv_lora_rank)): rows 0..nope of a head are W_UK,
     * rows nope..nope+v_dim are W_UV. */
    /* q_lat[i, h] = q_nope[i, h] @ W_UK[h]: the key up-projection absorbed into the query.
     * q_nope of token i, head h starts at q + (i * n_heads + h) * q_stride; q_lat: [n, n_heads,
     * lat]. */
    void (*mla_q_absorb)(backend *be, float *q_lat, const float *q, int q_stride,
                         const weight *wkv_b, int n, int n_heads, int nope, int v_dim);
    /* Attention of each token over positions 0..pos[i] of its slot in the latent cache:
     *   score[t] = scale * (q_lat[i, h] . kv_cache[t] + q_pe[i, h] . pe_cache[t])
     *   out[i, h] = softmax(score) @ kv_cache[0..pos[i]]
     * q_pe of token i, head h starts at q_pe + (i * n_heads + h) * pe_stride; kv_cache:
     * [slots][max_seq][lat]; pe_cache: [slots][max_seq][pe_dim]; out: [n, n_heads, lat]. */
    void (*mla_attention)(backend *be, float *out, const float *q_lat, const float *q_pe,
                          int pe_stride, const float *kv_cache, const float *pe_cache,
                          const token_layout *tl, int max_seq, int n_heads, int lat, int pe_dim,
                          float scale);
    /* out[i, h] = o_lat[i, h] @ W_UV[h]^T: the value up-projection after attention.
     * o_lat: [n, n_heads, lat]; out: [n, n_heads, v_dim]. */
    void (*mla_v_up)(backend *be, float *out, const float *o_lat, const weight *wkv_b, int n,
                     int n_heads, int nope, int v_dim);
};

/* The CPU backend (OpenBLAS is used by the trainer; inference kernels here are OpenMP loops
 * with a fixed summation order). */
backend *backend_cpu(void);

#endif
