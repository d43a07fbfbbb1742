/* Token embedding forward (a row gather) and backward (a scatter-add into the table), and the
 * initial values of the split master weights (constants, or normals from a counter-based
 * generator).
 *
 * The backward must add the gradient rows of every occurrence of a token into one table row.
 * Atomics would make the sum's order, and so its rounding, vary from run to run; instead the
 * host sorts the batch's positions by token (embed_backward_plan) and one block owns each
 * distinct token, adding its rows in position order. */
#include <stdlib.h>

#include "core/hash.h"
#include "student/cuda/common.cuh"

/* ---- kernels ------------------------------------------------------------------------------------ */

template <int VEC>
__global__ void embed_forward_kernel(bf16 *x, const bf16 *emb, const int *tokens, int n, int d) {
    const int per_row = d / VEC;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)n * per_row) return;
    const long long i = idx / per_row;
    const int c = (int)(idx % per_row) * VEC;
    const bf16 *src = emb + (size_t)tokens[i] * d + c;
    bf16 *dst = x + (size_t)i * d + c;
    if constexpr (VEC == 8)
        store8(dst, load8(src));
    else
        *dst = *src;
}

template <int VEC>
__global__ void embed_backward_kernel(void *demb, int f32, const bf16 *dx, const int *ids,
                                      const int *offsets, const int *positions, int d) {
    const int u = blockIdx.x;
    const int id = ids[u], p0 = offsets[u], p1 = offsets[u + 1];
    for (int c = threadIdx.x * VEC; c < d; c += blockDim.x * VEC) {
        float acc[VEC];
#pragma unroll
        for (int e = 0; e < VEC; e++) acc[e] = 0.0f;
        for (int p = p0; p < p1; p++) {
            float v[VEC];
            load_vec<VEC>(v, dx + (size_t)positions[p] * d + c);
#pragma unroll
            for (int e = 0; e < VEC; e++) acc[e] += v[e];
        }
#pragma unroll
        for (int e = 0; e < VEC; e++) grad_add(demb, f32, (long long)id * d + c + e, acc[e]);
    }
}

__global__ void fill_master_kernel(bf16 *w, uint16_t *lo, size_t n, float value) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        master_store(w, lo, i, value);
}

__global__ void fill_normal_kernel(bf16 *w, uint16_t *lo, size_t n, uint64_t seed, float std) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const uint64_t r = hash_mix64(seed * 0x2545f4914f6cdd1dull + i + HASH_GOLDEN64);
        /* two 32-bit uniforms in (0, 1] and [0, 1) */
        const double u1 = ((double)(uint32_t)(r >> 32) + 1.0) * (1.0 / 4294967296.0);
        const double u2 = (double)(uint32_t)r * (1.0 / 4294967296.0);
        master_store(w, lo, i, (float)(std * sqrt(-2.0 * log(u1)) * cospi(2.0 * u2)));
    }
}

__global__ void grad_accumulate_kernel(void *dst, const void *src, int f32, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        grad_add(dst, f32, (long long)i, grad_get(src, f32, (long long)i));
}

/* ---- launchers ---------------------------------------------------------------------------------- */

extern "C" void embed_forward(r1_bf16 *x, const r1_bf16 *emb, const int *tokens, int n, int d,
                              cudaStream_t s) {
    CHECK(n > 0 && d > 0);
    const bool v8 = d % 8 == 0 && aligned16(x) && aligned16(emb);
    const int vec = v8 ? 8 : 1;
    const int blocks = ceil_div((long long)n * (d / vec), 256);
    if (v8)
        embed_forward_kernel<8><<<blocks, 256, 0, s>>>(x, emb, tokens, n, d);
    else
        embed_forward_kernel<1><<<blocks, 256, 0, s>>>(x, emb, tokens, n, d);
    LAUNCH_CHECK();
}

typedef struct {
    int id, pos;
} id_pos;

static int id_pos_cmp(const void *a, const void *b) {
    const id_pos *x = (const id_pos *)a, *y = (const id_pos *)b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

extern "C" int embed_backward_plan(int *ids, int *offsets, int *positions, const int *tokens,
                                   int n) {
    id_pos *v = (id_pos *)xmalloc(sizeof(id_pos) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) v[i] = id_pos{tokens[i], i};
    qsort(v, (size_t)n, sizeof *v, id_pos_cmp);
    int u = 0;
    for (int i = 0; i < n; i++) {
        if (i == 0 || v[i].id != v[i - 1].id) {
            ids[u] = v[i].id;
            offsets[u] = i;
            u++;
        }
        positions[i] = v[i].pos;
    }
    offsets[u] = n;
    free(v);
    return u;
}

extern "C" void embed_backward(void *demb, int demb_f32, const r1_bf16 *dx, const int *ids,
                               const int *offsets, const int *positions, int n_ids, int d,
                               cudaStream_t s) {
    CHECK(d > 0);
    if (n_ids == 0) return;
    const bool v8 = d % 8 == 0 && aligned16(dx);
    if (v8)
        embed_backward_kernel<8><<<n_ids, 128, 0, s>>>(demb, demb_f32, dx, ids, offsets,
                                                         positions, d);
    else
        embed_backward_kernel<1><<<n_ids, 128, 0, s>>>(demb, demb_f32, dx, ids, offsets,
                                                         positions, d);
    LAUNCH_CHECK();
}

static int grid_for(size_t n) {
    const long long want = ceil_div((long long)n, 256);
    return want < 8192 ? (int)want : 8192;
}

extern "C" void fill_master(r1_bf16 *w, uint16_t *w_lo, size_t n, float value, cudaStream_t s) {
    if (n == 0) return;
    fill_master_kernel<<<grid_for(n), 256, 0, s>>>(w, w_lo, n, value);
    LAUNCH_CHECK();
}

extern "C" void fill_normal_master(r1_bf16 *w, uint16_t *w_lo, size_t n, uint64_t seed, float std,
                                   cudaStream_t s) {
    if (n == 0) return;
    fill_normal_kernel<<<grid_for(n), 256, 0, s>>>(w, w_lo, n, seed, std);
    LAUNCH_CHECK();
}

extern "C" void grad_accumulate(void *dst, const void *src, int f32, size_t n, cudaStream_t s) {
    if (n == 0) return;
    grad_accumulate_kernel<<<grid_for(n), 256, 0, s>>>(dst, src, f32, n);
    LAUNCH_CHECK();
}
