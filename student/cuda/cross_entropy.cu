/* Linear + cross-entropy without the [tokens, vocab] logits (Liger's fused linear cross-entropy,
 * llm.c's fused_classifier), in chunks of rows:
 *
 *   hc      = h[rows[c0 .. c0 + cm)]                       gather the chunk's counted rows
 *   logits  = hc @ w^T                                     cuBLASLt, float32 [cm, vocab]
 *   loss   += sum_r (logsumexp(logits_r) - logits_r[t_r]) * inv_count
 *   dlogits = (softmax(logits) - onehot(t)) * inv_count    bf16, written over the logits
 *   dhc     = dlogits @ w;   dw += dlogits^T @ hc;   dh[rows] = dhc
 *
 * Only rows whose loss counts are gathered, so prompt tokens cost nothing here.
 *
 * In place: row r's bf16 dlogits occupy the first half of the bytes of its own float32 logits
 * row (a bf16 matrix with leading dimension 2 vocab); a row's writes start only when all of the
 * row has been read.
 *
 * The softmax pass reads the float32 row once: a cluster of CE_CLUSTER blocks holds the row in
 * registers (ce_rows_cluster_kernel; vocabularies up to CE_CLUSTER_MAX, every model here), trades
 * the blocks' (max, sum) pairs through distributed shared memory, and writes the dlogits from
 * the registers. Larger or unaligned vocabularies take ce_rows_kernel: one block per row, the row
 * read twice (the second time in chunks: read into registers, synchronise, write; the bf16
 * writes of elements [a, b) land on float elements [a/2, b/2), all read already). */
#include <cooperative_groups.h>
#include <math.h>

#include "student/cuda/common.cuh"

namespace cg = cooperative_groups;

enum { CE_THREADS = 512, CE_PER_THREAD = 4 };
/* Blocks of 256 threads in clusters of 8 (the portable size), each thread up to CE_MAX_VEC
 * float4 of the row: the vocabulary in 4 x 8 x 256 x 20 = 163840 registers' worth, at two
 * blocks per SM so one row's reads overlap another's exponentials and writes. */
enum { CE_CLUSTER = 8, CE_CLUSTER_THREADS = 256, CE_MAX_VEC = 20 };
enum { CE_CLUSTER_MAX = 4 * CE_CLUSTER * CE_CLUSTER_THREADS * CE_MAX_VEC };

/* ---- kernels ------------------------------------------------------------------------------------ */

template <int VEC>
__global__ void rows_gather_kernel(bf16 *dst, const bf16 *src, const int *rows, int m, int d) {
    const int per_row = d / VEC;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)m * per_row) return;
    const long long r = idx / per_row;
    const int c = (int)(idx % per_row) * VEC;
    const bf16 *s = src + (size_t)rows[r] * d + c;
    bf16 *t = dst + (size_t)r * d + c;
    if constexpr (VEC == 8)
        store8(t, load8(s));
    else
        *t = *s;
}

template <int VEC>
__global__ void rows_scatter_kernel(bf16 *dst, const bf16 *src, const int *rows, int m, int d) {
    const int per_row = d / VEC;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)m * per_row) return;
    const long long r = idx / per_row;
    const int c = (int)(idx % per_row) * VEC;
    const bf16 *s = src + (size_t)r * d + c;
    bf16 *t = dst + (size_t)rows[r] * d + c;
    if constexpr (VEC == 8)
        store8(t, load8(s));
    else
        *t = *s;
}

/* (max, sum of exp(x - max)) pairs, merged. An empty pair is (-inf, 0). */
__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    const float mm = fmaxf(m, m2);
    if (mm == -INFINITY) return; /* both empty */
    s = s * expf(m - mm) + s2 * expf(m2 - mm);
    m = mm;
}

__device__ __forceinline__ void lse_add(float &m, float &s, float x) {
    if (x > m) {
        s = s * expf(m - x) + 1.0f;
        m = x;
    } else {
        s += expf(x - m);
    }
}

/* The dlogits of the row's float4 element j (logits 4 j .. 4 j + 3), 4 bf16 at D + 4 j:
 * (p - onehot(t)) * inv_count, with p the four softmax probabilities. */
__device__ __forceinline__ void store_dlogits4(bf16 *D, int j, float4 p, int t, float inv_count) {
    const float q[4] = {p.x, p.y, p.z, p.w};
    __nv_bfloat162 o[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int c0 = 4 * j + 2 * h;
        const float g0 = (q[2 * h] - (c0 == t ? 1.0f : 0.0f)) * inv_count;
        const float g1 = (q[2 * h + 1] - (c0 + 1 == t ? 1.0f : 0.0f)) * inv_count;
        o[h] = __floats2bfloat162_rn(g0, g1);
    }
    *reinterpret_cast<uint2 *>(D + 4 * (size_t)j) = *reinterpret_cast<const uint2 *>(o);
}

/* exp(v - mx) * scale, elementwise */
__device__ __forceinline__ float4 exp4(float4 v, float mx, float scale) {
    return make_float4(expf(v.x - mx) * scale, expf(v.y - mx) * scale, expf(v.z - mx) * scale,
                       expf(v.w - mx) * scale);
}

/* A warp's (max, sum) pairs merged by shuffles, in a fixed tree; every lane gets the result. */
__device__ __forceinline__ void lse_warp(float &m, float &s) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
        const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
        lse_merge(m, s, m2, s2);
    }
}

/* Each warp's merged pair into red_m[warp], red_s[warp]; then the block waits for all of them. */
__device__ __forceinline__ void lse_warps(float &m, float &s, float *red_m, float *red_s) {
    lse_warp(m, s);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        red_m[warp] = m;
        red_s[warp] = s;
    }
    __syncthreads();
}

/* One block per row. V4: the vocabulary is a multiple of 4, so rows are 16-byte aligned and read
 * as float4 (four times the bytes in flight per load); the dlogits are written 4 bf16 at a time. */
template <bool V4>
__global__ void __launch_bounds__(CE_THREADS)
    ce_rows_kernel(float *logits, int vocab, const int *targets, const int *rows, float *row_loss,
                   float inv_count, int want_grad) {
    __shared__ float red_m[32], red_s[32];
    const int r = blockIdx.x;
    float *L = logits + (size_t)r * vocab;
    const int t = targets[rows[r]];
    const int n4 = vocab / 4;

    /* pass 1: online max and sum of exponentials */
    float m = -INFINITY, s = 0.0f;
    if constexpr (V4) {
        const float4 *L4 = reinterpret_cast<const float4 *>(L);
        for (int j = threadIdx.x; j < n4; j += blockDim.x) {
            const float4 v = L4[j];
            lse_add(m, s, v.x);
            lse_add(m, s, v.y);
            lse_add(m, s, v.z);
            lse_add(m, s, v.w);
        }
    } else {
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) lse_add(m, s, L[j]);
    }
    lse_warps(m, s, red_m, red_s);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (warp == 0) {
        m = lane < nw ? red_m[lane] : -INFINITY;
        s = lane < nw ? red_s[lane] : 0.0f;
        lse_warp(m, s);
        if (lane == 0) {
            red_m[0] = m;
            red_s[0] = s;
            row_loss[r] = (m + logf(s)) - L[t];
        }
    }
    __syncthreads(); /* also orders every read of pass 1 before the first write of pass 2 */
    if (!want_grad) return;
    const float mx = red_m[0], inv_sum = 1.0f / red_s[0];

    /* pass 2: dlogits in place, one chunk of the row at a time: read into registers,
     * synchronise, write (the writes of a chunk land on floats already read) */
    bf16 *D = reinterpret_cast<bf16 *>(L);
    if constexpr (V4) {
        const float4 *L4 = reinterpret_cast<const float4 *>(L);
        for (int base = 0; base < n4; base += blockDim.x * CE_PER_THREAD) {
            float4 v[CE_PER_THREAD];
#pragma unroll
            for (int k = 0; k < CE_PER_THREAD; k++) {
                const int j = base + k * blockDim.x + threadIdx.x;
                v[k] = j < n4 ? L4[j] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
            __syncthreads();
#pragma unroll
            for (int k = 0; k < CE_PER_THREAD; k++) {
                const int j = base + k * blockDim.x + threadIdx.x;
                if (j < n4) store_dlogits4(D, j, exp4(v[k], mx, inv_sum), t, inv_count);
            }
        }
    } else {
        for (int base = 0; base < vocab; base += blockDim.x * CE_PER_THREAD) {
            float v[CE_PER_THREAD];
#pragma unroll
            for (int k = 0; k < CE_PER_THREAD; k++) {
                const int j = base + k * blockDim.x + threadIdx.x;
                v[k] = j < vocab ? L[j] : 0.0f;
            }
            __syncthreads();
#pragma unroll
            for (int k = 0; k < CE_PER_THREAD; k++) {
                const int j = base + k * blockDim.x + threadIdx.x;
                if (j < vocab) {
                    const float p = expf(v[k] - mx) * inv_sum;
                    D[j] = __float2bfloat16_rn((p - (j == t ? 1.0f : 0.0f)) * inv_count);
                }
            }
        }
    }
}

/* Block-wide merge of the threads' (max, sum) pairs in a fixed order; every thread gets it. */
__device__ __forceinline__ void lse_block(float &m, float &s, float *red_m, float *red_s) {
    lse_warps(m, s, red_m, red_s);
    const int nw = blockDim.x >> 5;
    m = -INFINITY;
    s = 0.0f;
    for (int w = 0; w < nw; w++) lse_merge(m, s, red_m[w], red_s[w]);
}

/* One cluster per row; block c of the cluster holds the float4 elements j = 256 (c + 8 k) + tid,
 * k < VEC, in registers (the vocabulary a multiple of 4, rows 16-byte aligned). */
template <int VEC>
__global__ void __cluster_dims__(CE_CLUSTER, 1, 1) __launch_bounds__(CE_CLUSTER_THREADS, 2)
    ce_rows_cluster_kernel(float *logits, int vocab, const int *targets, const int *rows,
                           float *row_loss, float inv_count, int want_grad) {
    __shared__ float red_m[CE_CLUSTER_THREADS / 32], red_s[CE_CLUSTER_THREADS / 32];
    __shared__ float2 part; /* this block's (max, sum), read by the whole cluster */
    cg::cluster_group cluster = cg::this_cluster();
    const int c = (int)cluster.block_rank(), r = blockIdx.x / CE_CLUSTER;
    float *L = logits + (size_t)r * vocab;
    const float4 *L4 = reinterpret_cast<const float4 *>(L);
    const int t = targets[rows[r]], n4 = vocab / 4;
    const int j0 = c * CE_CLUSTER_THREADS + threadIdx.x, stride = CE_CLUSTER * CE_CLUSTER_THREADS;
    /* the target's logit, read before any block of the cluster writes */
    const float lt = c == 0 && threadIdx.x == 0 ? L[t] : 0.0f;

    float4 v[VEC];
#pragma unroll
    for (int k = 0; k < VEC; k++) {
        const int j = j0 + k * stride;
        v[k] = j < n4 ? L4[j] : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
    }
    /* the thread's max, then v holds exp(logit - that max): one exponential per logit, the
     * probabilities are these times one factor per thread */
    float m = -INFINITY;
#pragma unroll
    for (int k = 0; k < VEC; k++) m = fmaxf(fmaxf(m, fmaxf(v[k].x, v[k].y)), fmaxf(v[k].z, v[k].w));
    const float m_thread = m;
    float s = 0.0f;
    if (m != -INFINITY) {
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            v[k] = exp4(v[k], m, 1.0f);
            s += (v[k].x + v[k].y) + (v[k].z + v[k].w);
        }
    }
    lse_block(m, s, red_m, red_s);
    if (threadIdx.x == 0) part = make_float2(m, s);
    cluster.sync(); /* every block's pair is published, and every read of the row is done */
    m = -INFINITY;
    s = 0.0f;
    for (int b = 0; b < CE_CLUSTER; b++) {
        const float2 pb = *cluster.map_shared_rank(&part, b);
        lse_merge(m, s, pb.x, pb.y);
    }
    cluster.sync(); /* no block leaves while another reads its pair */
    if (c == 0 && threadIdx.x == 0) row_loss[r] = (m + logf(s)) - lt;
    if (!want_grad || m_thread == -INFINITY) return; /* (a thread past the row holds no logit) */
    const float f = expf(m_thread - m) / s;
    bf16 *D = reinterpret_cast<bf16 *>(L);
#pragma unroll
    for (int k = 0; k < VEC; k++) {
        const int j = j0 + k * stride;
        if (j < n4) store_dlogits4(D, j, make_float4(v[k].x * f, v[k].y * f, v[k].z * f, v[k].w * f), t,
                                   inv_count);
    }
}

/* loss_sum += (sum of the chunk's row losses, in a fixed order) * inv_count */
__global__ void ce_loss_sum_kernel(float *loss_sum, const float *row_loss, int m,
                                   float inv_count) {
    __shared__ float red[32];
    float acc = 0.0f;
    for (int i = threadIdx.x; i < m; i += blockDim.x) acc += row_loss[i];
    acc = block_sum(acc, red);
    if (threadIdx.x == 0) *loss_sum += acc * inv_count;
}

/* ---- launchers ---------------------------------------------------------------------------------- */

static void rows_copy(bf16 *dst, const bf16 *src, const int *rows, int m, int d, bool scatter,
                      cudaStream_t s) {
    const bool v8 = d % 8 == 0 && aligned16(dst) && aligned16(src);
    const int vec = v8 ? 8 : 1;
    const int blocks = ceil_div((long long)m * (d / vec), 256);
    if (scatter) {
        if (v8)
            rows_scatter_kernel<8><<<blocks, 256, 0, s>>>(dst, src, rows, m, d);
        else
            rows_scatter_kernel<1><<<blocks, 256, 0, s>>>(dst, src, rows, m, d);
    } else {
        if (v8)
            rows_gather_kernel<8><<<blocks, 256, 0, s>>>(dst, src, rows, m, d);
        else
            rows_gather_kernel<1><<<blocks, 256, 0, s>>>(dst, src, rows, m, d);
    }
    LAUNCH_CHECK();
}

/* The cluster kernel with the fewest float4 per thread that hold the row. */
static void ce_rows_cluster(float *logits, int vocab, const int *targets, const int *rows,
                            float *row_loss, float inv_count, int want_grad, int m,
                            cudaStream_t s) {
    const int per_vec = 4 * CE_CLUSTER * CE_CLUSTER_THREADS;
    const int vec = (vocab + per_vec - 1) / per_vec;
    const dim3 grid((unsigned)m * CE_CLUSTER);
    if (vec <= 4)
        ce_rows_cluster_kernel<4><<<grid, CE_CLUSTER_THREADS, 0, s>>>(
            logits, vocab, targets, rows, row_loss, inv_count, want_grad);
    else if (vec <= 8)
        ce_rows_cluster_kernel<8><<<grid, CE_CLUSTER_THREADS, 0, s>>>(
            logits, vocab, targets, rows, row_loss, inv_count, want_grad);
    else if (vec <= 16)
        ce_rows_cluster_kernel<16><<<grid, CE_CLUSTER_THREADS, 0, s>>>(
            logits, vocab, targets, rows, row_loss, inv_count, want_grad);
    else
        ce_rows_cluster_kernel<CE_MAX_VEC><<<grid, CE_CLUSTER_THREADS, 0, s>>>(
            logits, vocab, targets, rows, row_loss, inv_count, want_grad);
}

extern "C" void linear_cross_entropy(r1_gemm *g, float *loss_sum, r1_bf16 *dh, void *dw,
                                     int dw_f32, const r1_bf16 *h, const r1_bf16 *w,
                                     const int *targets, const int *rows, int m, int n, int d,
                                     int vocab, float inv_count, const ce_scratch *cs,
                                     cudaStream_t s) {
    CHECK(n > 0 && d > 0 && vocab > 0 && m >= 0 && m <= n && cs->chunk > 0);
    if (dh) R1_CUDA_CHECK(cudaMemsetAsync(dh, 0, sizeof(bf16) * (size_t)n * d, s));
    for (int c0 = 0; c0 < m; c0 += cs->chunk) {
        const int cm = m - c0 < cs->chunk ? m - c0 : cs->chunk;
        rows_copy(cs->h, h, rows + c0, cm, d, false, s);
        linear_forward(g, cs->logits, 1, vocab, cs->h, d, w, NULL, NULL, cm, d, vocab, s);
        if (vocab % 4 == 0 && aligned16(cs->logits) && vocab <= CE_CLUSTER_MAX)
            ce_rows_cluster(cs->logits, vocab, targets, rows + c0, cs->row_loss, inv_count,
                            dh != NULL, cm, s);
        else if (vocab % 4 == 0 && aligned16(cs->logits))
            ce_rows_kernel<true><<<cm, CE_THREADS, 0, s>>>(cs->logits, vocab, targets, rows + c0,
                                                            cs->row_loss, inv_count, dh != NULL);
        else
            ce_rows_kernel<false><<<cm, CE_THREADS, 0, s>>>(cs->logits, vocab, targets, rows + c0,
                                                             cs->row_loss, inv_count, dh != NULL);
        LAUNCH_CHECK();
        ce_loss_sum_kernel<<<1, 1024, 0, s>>>(loss_sum, cs->row_loss, cm, inv_count);
        LAUNCH_CHECK();
        if (!dh) continue;
        const bf16 *dlogits = reinterpret_cast<const bf16 *>(cs->logits);
        linear_backward_x(g, cs->dh, 0, dlogits, 2 * vocab, w, cm, d, vocab, s);
        linear_backward_w(g, dw, dw_f32, 1, dlogits, 2 * vocab, cs->h, d, cm, d, vocab, s);
        rows_copy(dh, cs->dh, rows + c0, cm, d, true, s);
    }
}
