/* The compute backend interface: the operations model code is written in.
 *
 * Model code (teacher/dense.c, teacher/deepseek.c) calls these through a backend table and never
 * branches on which backend runs; the CPU backend (backend_cpu.c, fp32 with OpenMP) is the
 * readable reference the CUDA backend (core/cuda/, core/backend_cuda.h) is checked against.
 * Activations are float32 arrays in the backend's memory (host memory for the CPU, device memory
 * for CUDA); so are the integer index arrays ops take (embed's ids, gather_rows' rows, rope's
 * pos, token_layout's slot and pos, scatter_add_rows' rows and scales): model code copies them
 * there with `upload`. Weights are `weight` views of checkpoint tensors: the CPU reads them
 * where they are mapped, in their stored dtype, so a memory-mapped bf16 or FP8 checkpoint is
 * never copied whole; a device backend copies each one to its memory once, in upload_weight.
 * Every backend implements every field.
 *
 * Conventions (after llm.c): outputs first, then inputs, weights, sizes. Row-major throughout;
 * a linear weight is [out, in] as PyTorch stores it. A backend runs one forward pass at a time;
 * its ops are queued in order, and `download` (or `sync`) waits for them. */
#ifndef R1_CORE_BACKEND_H
#define R1_CORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/rope.h"
#include "core/weight.h"

/* Where each token of a forward batch sits: the KV-cache slot of its sequence and its position
 * there. Tokens of one sequence are consecutive and in position order. The arrays are in backend
 * memory (see above). */
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
    /* y[n, w->rows] = x[n, w->cols] @ w^T (+ bias[w->rows] if bias). On the CPU each output
     * element is computed in the same order whatever n is, so a token's result does not depend
     * on what else is in the batch; CUDA keeps that for n <= 4 (its GEMV) and otherwise only up
     * to rounding (cuBLASLt picks its kernel by shape). */
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
     * cache has max_seq rows of `width` elements of cache_dtype per slot. */
    void (*kv_store)(backend *be, void *cache, const float *src, const token_layout *tl, int width,
                     int max_seq);
    /* x[i] += y[i] */
    void (*add)(backend *be, float *x, const float *y, size_t n);
    /* Grouped-query causal attention of the batch's tokens against the KV cache.
     * q: [n, n_heads, head_dim]; k_cache/v_cache: [slots][max_seq][n_kv_heads * head_dim] (and
     * n_kv_heads * v_dim) of cache_dtype, where the batch's own keys and values are already
     * stored. Token i attends to positions 0..pos[i] of its slot. out: [n, n_heads, v_dim]. */
    void (*attention)(backend *be, float *out, const float *q, const void *k_cache,
                      const void *v_cache, const token_layout *tl, int max_seq, int n_heads,
                      int n_kv_heads, int head_dim, int v_dim, float scale);

    /* ---- memory movement (MoE dispatch, strided views) ---- */
    /* x[0..n) = 0 */
    void (*zero)(backend *be, float *x, size_t n);
    /* Copies n bytes of backend memory to host memory, once all queued work is done. */
    void (*download)(backend *be, void *host, const void *src, size_t n);
    /* dst[i * dst_stride + j] = src[i * src_stride + j] for i < n, j < width */
    void (*copy_strided)(backend *be, float *dst, int dst_stride, const float *src, int src_stride,
                         int n, int width);
    /* dst[i] = src[rows[i]] for i < n, rows of `width` floats (rows in backend memory). */
    void (*gather_rows)(backend *be, float *dst, const float *src, const int *rows, int n,
                        int width);
    /* dst[rows[i]] += scale[i] * src[i] for i = 0, 1, ..., n-1 in that order; rows and scale are
     * in backend memory. */
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
     * [slots][max_seq][lat]; pe_cache: [slots][max_seq][pe_dim], both of cache_dtype; out: [n,
     * n_heads, lat]. */
    void (*mla_attention)(backend *be, float *out, const float *q_lat, const float *q_pe,
                          int pe_stride, const void *kv_cache, const void *pe_cache,
                          const token_layout *tl, int max_seq, int n_heads, int lat, int pe_dim,
                          float scale);
    /* out[i, h] = o_lat[i, h] @ W_UV[h]^T: the value up-projection after attention.
     * o_lat: [n, n_heads, lat]; out: [n, n_heads, v_dim]. */
    void (*mla_v_up)(backend *be, float *out, const float *o_lat, const weight *wkv_b, int n,
                     int n_heads, int nope, int v_dim);

    /* ---- device backends (CUDA): residency, transfers, replay, fused ops ---- */

    /* Element type of KV caches (kv_store, attention): F32 on the CPU and in CUDA's fp32 mode,
     * BF16 in CUDA's bf16 mode. Model code sizes and offsets caches with dtype_size(). */
    dtype cache_dtype;
    /* 1 when backend memory is host memory (the CPU): model code may then compute straight
     * into the caller's host arrays instead of going through `download`. */
    int host_memory;
    /* Makes a weight view usable by this backend's ops, once, after weight_load. CUDA copies it
     * to device memory in its storage type (fp32 mode: F32; bf16 mode: BF16 matrices, F8_E4M3
     * kept with its block scales; 1-D vectors such as norms and biases always F32), repoints
     * *w there and sets w->device. CPU: nothing to do. R1_ERUNTIME (recorded) when out of
     * memory. */
    int (*upload_weight)(backend *be, weight *w);
    /* Frees what upload_weight allocated (CPU: nothing). A tied copy of an uploaded view must
     * not be unloaded twice. */
    void (*unload_weight)(backend *be, weight *w);
    /* Copies bytes from the host to backend memory (download, above, is the way back); src may
     * be reused as soon as it returns. */
    void (*upload)(backend *be, void *dst, const void *src, size_t bytes);
    /* Waits until all queued work is done. */
    void (*sync)(backend *be);
    /* Recording and replaying a forward pass (CUDA graphs). `key` names the pass's shape: two
     * passes with the same nonzero key make the same op calls with the same pointers and sizes,
     * and differ only in the contents of memory (tokens and positions written with `upload`
     * before graph_begin, the caches, the activations). graph_begin returns 1 when it has
     * replayed the recording of `key`: the caller then skips its op calls and graph_end.
     * Otherwise it returns 0, the caller makes its op calls and then calls graph_end (the backend
     * may be recording them; they run at graph_end at the latest). Key 0 never records. The CPU
     * always returns 0. */
    int (*graph_begin)(backend *be, uint64_t key);
    void (*graph_end)(backend *be);
    /* y[n, w->rows] += x[n, w->cols] @ w^T (+ bias): linear added into y (the residual stream),
     * the same value as linear into a temporary and then add. */
    void (*linear_add)(backend *be, float *y, const float *x, const weight *w, const weight *bias,
                       int n);
    /* Several linears of one input x: y[j][n, w[j]->rows] = x @ w[j]^T (+ bias[j]) for j < k
     * (bias, or any bias[j], may be NULL; the outputs are distinct and none is x). The same
     * values as k calls of linear; a device backend runs them as one launch where it can (q, k
     * and v; gate and up). k <= 4. */
    void (*linear_multi)(backend *be, int k, float *const *y, const float *x,
                         const weight *const *w, const weight *const *bias, int n);
    /* The attention inputs of a GQA layer after its projections: rope on q [n, n_heads * hd]
     * and k [n, n_kv_heads * hd] (every head rotated from its first element, as rope with
     * head_stride hd and off 0), then k and v [n, n_kv_heads * hd] into their caches (kv_store
     * with width n_kv_heads * hd). The same values as those four calls, in one launch on a
     * device backend. */
    void (*rope_store_kv)(backend *be, float *q, float *k, const float *v, void *k_cache,
                          void *v_cache, const rope_table *r, const token_layout *tl, int n_heads,
                          int n_kv_heads, int head_dim, int max_seq);
    /* ---- mixture of experts ----
     * Grouped expert products: rows seg[e] <= r < seg[e + 1] of x [n, w->cols] go through
     * expert e: y[r, 0..w[e].rows) = x[r] @ w[e]^T, for e < n_w (all w[e] of one shape and type;
     * seg [n_w + 1] in backend memory, seg[n_w] <= n). Each row gets the value a linear call
     * would give it; experts with no rows cost nothing. Rows outside seg[0]..seg[n_w] are left
     * as they are: an expert-parallel rank passes its own experts' part of the segments. */
    void (*linear_segments)(backend *be, float *y, const float *x, const weight *w,
                            const int *seg, int n_w, int n);
    /* dst[i] += scale[i, k] * src[idx[i, k]] for k = 0..K-1 in that order, for i < n; idx and
     * scale [n, K] in backend memory, rows of `width` floats. The per-token sum of the routed
     * experts' outputs, in the order idx lists them. */
    void (*combine_rows)(backend *be, float *dst, const float *src, const int *idx,
                         const float *scale, int n, int K, int width);
    /* out[i] = the index of the largest of x[i, 0..d), the lowest among equals (NaN never wins);
     * out in backend memory. Greedy decoding without copying logits to the host. */
    void (*argmax)(backend *be, int *out, const float *x, int n, int d);
    /* ---- tensor parallelism ----
     * x[0..n) = the sum of x over the ranks of the backend's tensor-parallel group, every rank
     * receiving the same bits (backend_cuda_join makes the group); alone, as the CPU always is,
     * nothing happens. */
    void (*all_reduce)(backend *be, float *x, size_t n);
    /* This backend's place in its group: rank tp_rank of tp_size (0 of 1 alone). Model code
     * loads its shard of the weights by them (teacher/deepseek.c). */
    int tp_rank, tp_size;
    /* Frees the backend (CPU: nothing; its table is static). */
    void (*destroy)(backend *be);
};

/* The CPU backend (OpenBLAS is used by the trainer; inference kernels here are OpenMP loops
 * with a fixed summation order). */
backend *backend_cpu(void);

/* The backend a --device option names: "cpu"; "cuda" (bf16 on GPU 0) or "cuda-fp32" (exact),
 * either with ":N" for GPU N; "auto" (cuda when a GPU is usable, else cpu). R1_EINPUT for an
 * unknown name, R1_ERUNTIME (recorded) when the GPU cannot be used. Free with be->destroy. */
int backend_open(backend **out, const char *device);

#endif
