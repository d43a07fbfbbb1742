/* RMSNorm forward and backward (transformers' Qwen2RMSNorm / LlamaRMSNorm):
 *
 *   y = w * x * r,   r = 1 / sqrt(mean(x^2) + eps)
 *   dx = r * (g - xhat * mean(g * xhat))   with g = dy * w, xhat = x * r
 *   dw = sum over rows of dy * xhat
 *
 * One block owns a row at a time; each thread keeps MAXV vectors of VEC elements of the row in
 * registers, so x and dy are read from memory once. The weight gradient is a column sum over all
 * rows: each backward block sums its rows into registers and writes one partial row, and a second
 * kernel adds the partials in block order. No atomics: the result is the same on every run. */
#include "student/cuda/common.cuh"

enum { RMS_MAX_THREADS = 512, RMS_BWD_BLOCKS = 1024 };

/* ---- kernels ------------------------------------------------------------------------------------ */

template <int VEC, int MAXV>
__global__ void rmsnorm_forward_kernel(bf16 *out, float *rstd, const bf16 *x, const bf16 *w,
                                       int d, float eps) {
    __shared__ float red[32];
    const size_t row = blockIdx.x;
    const bf16 *xr = x + row * d;
    float xv[MAXV][VEC];
    float ss = 0.0f;
#pragma unroll
    for (int i = 0; i < MAXV; i++) {
        const int c = (threadIdx.x + i * blockDim.x) * VEC;
        if (c < d) {
            load_vec<VEC>(xv[i], xr + c);
#pragma unroll
            for (int e = 0; e < VEC; e++) ss += xv[i][e] * xv[i][e];
        }
    }
    ss = block_sum(ss, red);
    const float r = 1.0f / sqrtf(ss / (float)d + eps);
    if (threadIdx.x == 0) rstd[row] = r;
#pragma unroll
    for (int i = 0; i < MAXV; i++) {
        const int c = (threadIdx.x + i * blockDim.x) * VEC;
        if (c < d) {
            float wv[VEC], o[VEC];
            load_vec<VEC>(wv, w + c);
#pragma unroll
            for (int e = 0; e < VEC; e++) o[e] = xv[i][e] * r * wv[e];
            store_vec<VEC>(out + row * d + c, o);
        }
    }
}

/* Bounded to RMS_MAX_THREADS so that every plan launches: without the bound the widest rows'
 * kernels took more registers than an SM holds for their blocks (MAXV 4: 158 a thread, so no
 * 512-thread block, which rows of 16,384 take); with it ptxas keeps to 128 and spills instead
 * (MAXV 4 and 8 only: the narrower kernels need fewer). */
template <int VEC, int MAXV>
__global__ void __launch_bounds__(RMS_MAX_THREADS)
    rmsnorm_backward_kernel(bf16 *dx, float *partial, const bf16 *dy, const bf16 *x, const bf16 *w,
                            const float *rstd, int n, int d, int rows_per_block) {
    __shared__ float red[32];
    float wv[MAXV][VEC], dw[MAXV][VEC];
#pragma unroll
    for (int i = 0; i < MAXV; i++) {
        const int c = (threadIdx.x + i * blockDim.x) * VEC;
#pragma unroll
        for (int e = 0; e < VEC; e++) dw[i][e] = 0.0f;
        if (c < d) load_vec<VEC>(wv[i], w + c);
    }
    const int r0 = blockIdx.x * rows_per_block;
    const int r1 = min(n, r0 + rows_per_block);
    for (int row = r0; row < r1; row++) {
        const float rs = rstd[row];
        const size_t base = (size_t)row * d;
        /* Rows of up to 8192 (MAXV <= 2) load dx with x and dy, before the reduction: one
         * round trip to memory a row, not two (H200, n = 16384, d = 1536: 73.9 -> 66.8 us).
         * Longer rows load it after: the registers it takes early would not let 384 threads
         * launch (193 a thread at MAXV 4). */
        constexpr bool early = MAXV <= 2;
        float xh[MAXV][VEC], g[MAXV][VEC], dxv[MAXV][VEC];
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < MAXV; i++) {
            const int c = (threadIdx.x + i * blockDim.x) * VEC;
            if (c < d) {
                float xv[VEC], dyv[VEC];
                load_vec<VEC>(xv, x + base + c);
                load_vec<VEC>(dyv, dy + base + c);
                if (early) load_vec<VEC>(dxv[i], dx + base + c);
#pragma unroll
                for (int e = 0; e < VEC; e++) {
                    xh[i][e] = xv[e] * rs;
                    g[i][e] = dyv[e] * wv[i][e];
                    dot += g[i][e] * xh[i][e];
                    dw[i][e] += dyv[e] * xh[i][e];
                }
            }
        }
        const float mean = block_sum(dot, red) / (float)d;
#pragma unroll
        for (int i = 0; i < MAXV; i++) {
            const int c = (threadIdx.x + i * blockDim.x) * VEC;
            if (c < d) {
                if (!early) load_vec<VEC>(dxv[i], dx + base + c);
#pragma unroll
                for (int e = 0; e < VEC; e++) dxv[i][e] += rs * (g[i][e] - xh[i][e] * mean);
                store_vec<VEC>(dx + base + c, dxv[i]);
            }
        }
    }
    float *p = partial + (size_t)blockIdx.x * d;
#pragma unroll
    for (int i = 0; i < MAXV; i++) {
        const int c = (threadIdx.x + i * blockDim.x) * VEC;
        if (c < d) {
#pragma unroll
            for (int e = 0; e < VEC; e++) p[c + e] = dw[i][e];
        }
    }
}

/* dw[j] += sum over blocks b of partial[b][j], in a fixed order: a block owns 32 columns, its
 * row y of threads sums the partials of every FINISH_GROUPS-th block from y, then the group
 * sums are added in order (so up to 1024 partials take 32 steps, not 1024, on 32x more SMs). */
enum { FINISH_GROUPS = 32 };
__global__ void rmsnorm_dw_finish_kernel(void *dw, int dw_f32, const float *partial, int blocks,
                                         int d) {
    __shared__ float part[FINISH_GROUPS][33];
    const int j = blockIdx.x * 32 + threadIdx.x, y = threadIdx.y;
    float t = 0.0f;
    if (j < d)
        for (int b = y; b < blocks; b += FINISH_GROUPS) t += partial[(size_t)b * d + j];
    part[y][threadIdx.x] = t;
    __syncthreads();
    if (y == 0 && j < d) {
        float sum = 0.0f;
        for (int k = 0; k < FINISH_GROUPS; k++) sum += part[k][threadIdx.x];
        grad_add(dw, dw_f32, j, sum);
    }
}

/* ---- launchers ---------------------------------------------------------------------------------- */

/* Picks the vector width (8 when rows are 16-byte aligned), the vectors per thread and the
 * block size for rows of d elements. */
typedef struct {
    int vec, maxv, threads;
} row_plan;

static row_plan plan_rows(int d, bool vec8) {
    row_plan p;
    p.vec = vec8 ? 8 : 1;
    const int nvec = ceil_div(d, p.vec);
    p.maxv = 1;
    while (p.maxv < 8 && nvec > RMS_MAX_THREADS * p.maxv) p.maxv *= 2;
    CHECK(nvec <= RMS_MAX_THREADS * p.maxv);
    p.threads = ceil_div(ceil_div(nvec, p.maxv), 32) * 32;
    return p;
}

#define RMS_DISPATCH(p, LAUNCH)                                                               \
    do {                                                                                      \
        if ((p).vec == 8) {                                                                   \
            switch ((p).maxv) {                                                               \
            case 1: LAUNCH(8, 1); break;                                                      \
            case 2: LAUNCH(8, 2); break;                                                      \
            case 4: LAUNCH(8, 4); break;                                                      \
            default: LAUNCH(8, 8); break;                                                     \
            }                                                                                 \
        } else {                                                                              \
            switch ((p).maxv) {                                                               \
            case 1: LAUNCH(1, 1); break;                                                      \
            case 2: LAUNCH(1, 2); break;                                                      \
            case 4: LAUNCH(1, 4); break;                                                      \
            default: LAUNCH(1, 8); break;                                                     \
            }                                                                                 \
        }                                                                                     \
    } while (0)

extern "C" void rmsnorm_forward_cuda(r1_bf16 *out, float *rstd, const r1_bf16 *x, const r1_bf16 *w,
                                int n, int d, float eps, cudaStream_t s) {
    CHECK(n > 0 && d > 0);
    const bool v8 = d % 8 == 0 && aligned16(out) && aligned16(x) && aligned16(w);
    const row_plan p = plan_rows(d, v8);
#define L(V, M) rmsnorm_forward_kernel<V, M><<<n, p.threads, 0, s>>>(out, rstd, x, w, d, eps)
    RMS_DISPATCH(p, L);
#undef L
    LAUNCH_CHECK();
}

extern "C" size_t rmsnorm_backward_scratch_floats(int n, int d) {
    return (size_t)(n < RMS_BWD_BLOCKS ? n : RMS_BWD_BLOCKS) * (size_t)d;
}

extern "C" void rmsnorm_backward_cuda(r1_bf16 *dx, void *dw, int dw_f32, float *scratch,
                                 const r1_bf16 *dy, const r1_bf16 *x, const r1_bf16 *w,
                                 const float *rstd, int n, int d, cudaStream_t s) {
    CHECK(n > 0 && d > 0);
    const bool v8 = d % 8 == 0 && aligned16(dx) && aligned16(dy) && aligned16(x) && aligned16(w);
    const row_plan p = plan_rows(d, v8);
    const int blocks = n < RMS_BWD_BLOCKS ? n : RMS_BWD_BLOCKS;
    const int rows_per_block = ceil_div(n, blocks);
    /* with rows_per_block rounded up, the last blocks may get no rows: their partials are 0 */
#define L(V, M)                                                                               \
    rmsnorm_backward_kernel<V, M><<<blocks, p.threads, 0, s>>>(dx, scratch, dy, x, w, rstd, n, \
                                                                d, rows_per_block)
    RMS_DISPATCH(p, L);
#undef L
    LAUNCH_CHECK();
    const dim3 finish_block(32, FINISH_GROUPS);
    rmsnorm_dw_finish_kernel<<<ceil_div(d, 32), finish_block, 0, s>>>(dw, dw_f32, scratch, blocks,
                                                                       d);
    LAUNCH_CHECK();
}
