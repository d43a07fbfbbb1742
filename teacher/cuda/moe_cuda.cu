/* teacher/moe_device.h on the GPU: three kernels and a memset per MoE layer.
 *   route  one block per token: scores and choice in shared memory, the top groups and the
 *          top-k by block-wide (value, lowest index) reductions, exactly the CPU's rules
 *          (teacher/moe_router.c); counts per expert by integer atomics
 *   scan   one thread: seg from the counts
 *   fill   one thread per token: a row per assignment (atomic cursor per expert), and the
 *          token's rows in ascending expert id for combine_rows
 * Bytes and FLOPs are negligible beside the experts' weights; the point is that nothing goes to
 * the host, so a decode step stays one recorded graph. */
#include <math.h>

#include "core/cuda/cuda_internal.cuh"

extern "C" {
#include "teacher/moe_device.h"
}

enum { MOE_THREADS = 256, MOE_MAX_K = 32 };

struct route_params {
    int E, G, topk_group, K, norm;
    float scaling;
};

/* (v, i) beats (bv, bi): larger value, then lower index (the CPU's first-largest rule). */
__device__ __forceinline__ bool beats(float v, int i, float bv, int bi) {
    return bi < 0 || v > bv || (v == bv && i < bi);
}

/* The block's best (value, index) over candidates; every thread gets it. */
__device__ void block_best(float v, int i, float *sv, int *si, float *bv, int *bi) {
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (oi >= 0 && beats(ov, oi, v, i)) v = ov, i = oi;
    }
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sv[w] = v, si[w] = i;
    __syncthreads();
    float b = 0.0f;
    int k = -1;
    for (int j = 0; j < (int)(blockDim.x >> 5); j++)
        if (si[j] >= 0 && beats(sv[j], si[j], b, k)) b = sv[j], k = si[j];
    *bv = b;
    *bi = k;
}

__global__ void __launch_bounds__(MOE_THREADS)
    moe_route_kernel(int *idx_out, float *w_out, int *counters, const float *logits,
                     const float *bias, route_params p) {
    extern __shared__ float sm[]; /* s [E], b [E], taken [E] as float, gs [G], gkept [G] */
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ int chosen[MOE_MAX_K];
    const int i = blockIdx.x, E = p.E, G = p.G, per = E / G;
    float *s = sm, *b = s + E, *taken = b + E, *gs = taken + E, *gkept = gs + G;
    const float *l = logits + (int64_t)i * E;
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        s[e] = __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-l[e])));
        b[e] = __fadd_rn(s[e], bias ? bias[e] : 0.0f);
        taken[e] = 0.0f;
    }
    __syncthreads();
    /* group scores: the two largest corrected scores of each group */
    for (int g = threadIdx.x; g < G; g += blockDim.x) {
        const float *bg = b + g * per;
        int i1 = 0, i2 = -1;
        for (int k = 1; k < per; k++)
            if (bg[k] > bg[i1]) i1 = k;
        for (int k = 0; k < per; k++)
            if (k != i1 && (i2 < 0 || bg[k] > bg[i2])) i2 = k;
        gs[g] = i2 < 0 ? bg[i1] : __fadd_rn(bg[i1], bg[i2]);
        gkept[g] = 0.0f;
    }
    __syncthreads();
    if (threadIdx.x == 0) /* keep topk_group groups (G is small) */
        for (int j = 0; j < p.topk_group; j++) {
            int best = -1;
            for (int g = 0; g < G; g++)
                if (gkept[g] == 0.0f && (best < 0 || gs[g] > gs[best])) best = g;
            gkept[best] = 1.0f;
        }
    __syncthreads();
    for (int e = threadIdx.x; e < E; e += blockDim.x)
        if (gkept[e / per] == 0.0f) b[e] = -INFINITY;
    __syncthreads();
    /* the top K by corrected score */
    for (int j = 0; j < p.K; j++) {
        float v = 0.0f;
        int k = -1;
        for (int e = threadIdx.x; e < E; e += blockDim.x)
            if (taken[e] == 0.0f && beats(b[e], e, v, k)) v = b[e], k = e;
        float bv;
        int bi;
        block_best(v, k, sv, si, &bv, &bi);
        if (threadIdx.x == 0) {
            chosen[j] = bi;
            taken[bi] = 1.0f;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        float w[MOE_MAX_K], sum = 0.0f;
        for (int j = 0; j < p.K; j++) {
            w[j] = s[chosen[j]];
            sum = __fadd_rn(sum, w[j]);
        }
        for (int j = 0; j < p.K; j++) {
            float v = w[j];
            if (p.norm) v = __fdiv_rn(v, __fadd_rn(sum, 1e-20f));
            v = __fmul_rn(v, p.scaling);
            idx_out[(int64_t)i * p.K + j] = chosen[j];
            w_out[(int64_t)i * p.K + j] = v;
            atomicAdd(&counters[chosen[j]], 1);
        }
    }
}

__global__ void moe_scan_kernel(int *seg, int *counters, int E) {
    if (threadIdx.x != 0) return;
    int c = 0;
    for (int e = 0; e < E; e++) {
        seg[e] = c;
        c += counters[e];
        counters[e] = seg[e]; /* now the fill cursor */
    }
    seg[E] = c;
}

/* comb/comb_w hold idx/w on entry and rows/weights in ascending expert id on exit. */
__global__ void moe_fill_kernel(int *rows, int *comb, float *comb_w, int *cursor, int n, int K) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int e[MOE_MAX_K], pos[MOE_MAX_K];
    float w[MOE_MAX_K];
    for (int j = 0; j < K; j++) e[j] = comb[(int64_t)i * K + j], w[j] = comb_w[(int64_t)i * K + j];
    for (int j = 0; j < K; j++) {
        pos[j] = atomicAdd(&cursor[e[j]], 1);
        rows[pos[j]] = i;
    }
    for (int j = 0; j < K; j++) {
        int r = 0; /* rank of e[j] among the token's experts (all distinct) */
        for (int k = 0; k < K; k++) r += e[k] < e[j];
        comb[(int64_t)i * K + r] = pos[j];
        comb_w[(int64_t)i * K + r] = w[j];
    }
}

extern "C" int moe_device_supported(const backend *be) { return backend_cuda_is(be); }

extern "C" void moe_device_route(backend *be, const moe_dispatch *d, const float *logits,
                                 const float *bias, int n, const moe_router *r) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (n <= 0) return;
    CU_REQUIRE(r->top_k <= MOE_MAX_K && r->n_group >= 1 && r->n_experts % r->n_group == 0,
               "moe_device_route: %d experts in %d groups, top %d", r->n_experts, r->n_group,
               r->top_k);
    route_params p;
    p.E = r->n_experts, p.G = r->n_group, p.topk_group = r->topk_group, p.K = r->top_k;
    p.norm = r->norm_topk_prob, p.scaling = r->scaling;
    const size_t smem = sizeof(float) * (3 * (size_t)p.E + 2 * (size_t)p.G);
    CU_REQUIRE(smem <= 48 * 1024, "moe_device_route: %d experts", p.E);
    CUDA_CHECK(cudaMemsetAsync(d->counters, 0, sizeof(int) * (size_t)p.E, cu->stream));
    moe_route_kernel<<<n, MOE_THREADS, smem, cu->stream>>>(d->comb, d->comb_w, d->counters,
                                                           logits, bias, p);
    LAUNCH_CHECK();
    moe_scan_kernel<<<1, 32, 0, cu->stream>>>(d->seg, d->counters, p.E);
    LAUNCH_CHECK();
    moe_fill_kernel<<<(n + 127) / 128, 128, 0, cu->stream>>>(d->rows, d->comb, d->comb_w,
                                                             d->counters, n, p.K);
    LAUNCH_CHECK();
}
