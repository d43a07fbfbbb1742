/* Linear layers on the GPU: y[n, rows] (+)= x[n, cols] @ W^T (+ bias).
 *
 * Decode (n <= gemv_max, default 4): a GEMV kernel that streams the weight once with 16-byte
 * loads, 8 rows per block of 128 threads (each thread walks the columns of all 8 rows, so each
 * 16 bytes of x it loads serve 8 rows), two loads per row in flight per thread, and a fixed
 * reduction order (so a token's result does not depend on the other n - 1 tokens). Activations
 * stay float32; bf16 weights are widened exactly. Bytes: rows*cols*sizeof(W) + n*cols*4 read,
 * n*rows*4 written; FLOPs 2*n*rows*cols.
 *
 * Otherwise cuBLASLt: bf16 mode converts x to bf16 once per distinct input (q, k and v share
 * one; so do gate and up) and multiplies bf16 x bf16 with float32 accumulation and float32
 * output, bias in the epilogue, beta = 1 for linear_add; fp32 mode multiplies float32 with
 * CUBLAS_COMPUTE_32F (no TF32). FP8 block-scaled weights are dequantized to bf16 in a
 * workspace first (correct, not fast: the DeepSeek work replaces it with FP8 GEMMs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_fp16.h>

#include "core/cuda/cuda_internal.cuh"

enum { LT_PLANS = 256, LT_WORKSPACE = 32 << 20, LT_CANDIDATES = 8, LT_TUNE_MAX_N = 256 };
enum { GEMV_THREADS = 128, GEMV_ROWS = 8 };

/* A cuBLASLt matmul set up once per shape, types, epilogue and pointer alignment. */
struct lt_plan {
    int64_t m, n, k;
    int wtype, bias, acc;
    uint32_t align; /* log2 of the alignment of W, x, y, bias: 4 x 8 bits */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    cublasLtMatmulAlgo_t cand[LT_CANDIDATES]; /* heuristic's choices, timed on first use */
    int n_cand;
};

struct cu_linear_state {
    cublasLtHandle_t lt;
    void *ws;
    lt_plan plans[LT_PLANS];
    int n_plans, next_evict;
};

void cu_linear_init(cuda_backend *cu) {
    cu_linear_state *s = (cu_linear_state *)xcalloc(1, sizeof *s);
    CUBLAS_CHECK(cublasLtCreate(&s->lt));
    CUDA_CHECK(cudaMalloc(&s->ws, LT_WORKSPACE));
    cu->lin = s;
}

static void plan_destroy(lt_plan *p) {
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->a));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->b));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->c));
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(p->op));
}

void cu_linear_free(cuda_backend *cu) {
    cu_linear_state *s = cu->lin;
    if (!s) return;
    for (int i = 0; i < s->n_plans; i++) plan_destroy(&s->plans[i]);
    CUDA_CHECK(cudaFree(s->ws));
    CUBLAS_CHECK(cublasLtDestroy(s->lt));
    free(s);
    cu->lin = NULL;
}

/* ---- conversions ---------------------------------------------------------------------- */

__global__ void convert_weight_kernel(void *dst, int dst_dt, const void *src, int src_dt,
                                      const float *scale, int64_t rows, int64_t cols, int br,
                                      int bc) {
    const int64_t n = rows * cols, scale_cols = (cols + bc - 1) / bc;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v;
        switch (src_dt) {
        case DTYPE_F32: v = ((const float *)src)[i]; break;
        case DTYPE_F16: v = __half2float(((const __half *)src)[i]); break;
        case DTYPE_BF16: v = __bfloat162float(((const __nv_bfloat16 *)src)[i]); break;
        default: {
            const int64_t r = i / cols, c = i % cols;
            v = fp8_e4m3_value(((const uint8_t *)src)[i]) * scale[(r / br) * scale_cols + c / bc];
        }
        }
        if (dst_dt == DTYPE_F32) ((float *)dst)[i] = v;
        else ((__nv_bfloat16 *)dst)[i] = __float2bfloat16_rn(v);
    }
}

void cu_convert_weight(cuda_backend *cu, void *dst, dtype dst_dt, const void *src, dtype src_dt,
                       const float *scale_inv, int64_t rows, int64_t cols, int block_rows,
                       int block_cols) {
    CU_REQUIRE(dst_dt == DTYPE_F32 || dst_dt == DTYPE_BF16, "convert to %s", dtype_name(dst_dt));
    CU_REQUIRE(src_dt != DTYPE_F8_E4M3 || (scale_inv && block_rows > 0 && block_cols > 0),
               "FP8 weight without block scales");
    const int64_t n = rows * cols;
    if (n <= 0) return;
    convert_weight_kernel<<<cu_blocks(n, 256, 1 << 16), 256, 0, cu->stream>>>(
        dst, (int)dst_dt, src, (int)src_dt, scale_inv, rows, cols, block_rows, block_cols);
    LAUNCH_CHECK();
}

/* float32 -> bf16, round to nearest even (as core/dtype.h's f32_to_bf16); 4 at a time when
 * src is 16-byte aligned (dst, a workspace, always is). */
__global__ void f32_to_bf16_kernel(__nv_bfloat16 *dst, const float *src, int64_t n, int vec) {
    const int64_t n4 = vec ? n / 4 : 0;
    const float4 *s4 = reinterpret_cast<const float4 *>(src);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float4 v = s4[i];
        __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
        uint2 u;
        u.x = *reinterpret_cast<uint32_t *>(&a);
        u.y = *reinterpret_cast<uint32_t *>(&b);
        reinterpret_cast<uint2 *>(dst)[i] = u;
    }
    for (int64_t i = n4 * 4 + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

const __nv_bfloat16 *cu_x_bf16(cuda_backend *cu, const float *x, int64_t count) {
    if (cu->xbf_valid && cu->xbf_src == x && cu->xbf_count == count)
        return (const __nv_bfloat16 *)cu->ws[WS_XBF16];
    __nv_bfloat16 *dst = (__nv_bfloat16 *)cu_workspace(cu, WS_XBF16, (size_t)count * 2);
    f32_to_bf16_kernel<<<cu_blocks((count + 3) / 4, 256, 1 << 16), 256, 0, cu->stream>>>(
        dst, x, count, ((uintptr_t)x & 15) == 0);
    LAUNCH_CHECK();
    cu->xbf_src = x;
    cu->xbf_count = count;
    cu->xbf_valid = 1;
    return dst;
}

/* ---- GEMV ------------------------------------------------------------------------------- */

template <int R, int N>
__device__ __forceinline__ void gemv_step(float (&acc)[R][N], const uint4 (&wv)[R],
                                          const float *__restrict__ x, int64_t cols, int64_t c,
                                          const __nv_bfloat16 *) {
#pragma unroll
    for (int j = 0; j < N; j++) {
        float xv[8];
        load8(xv, x + j * cols + c * 8);
#pragma unroll
        for (int r = 0; r < R; r++) {
            float a = acc[r][j];
            a = fmaf(bf16_lo(wv[r].x), xv[0], a);
            a = fmaf(bf16_hi(wv[r].x), xv[1], a);
            a = fmaf(bf16_lo(wv[r].y), xv[2], a);
            a = fmaf(bf16_hi(wv[r].y), xv[3], a);
            a = fmaf(bf16_lo(wv[r].z), xv[4], a);
            a = fmaf(bf16_hi(wv[r].z), xv[5], a);
            a = fmaf(bf16_lo(wv[r].w), xv[6], a);
            a = fmaf(bf16_hi(wv[r].w), xv[7], a);
            acc[r][j] = a;
        }
    }
}

template <int R, int N>
__device__ __forceinline__ void gemv_step(float (&acc)[R][N], const uint4 (&wv)[R],
                                          const float *__restrict__ x, int64_t cols, int64_t c,
                                          const float *) {
#pragma unroll
    for (int j = 0; j < N; j++) {
        const float4 xv = *reinterpret_cast<const float4 *>(x + j * cols + c * 4);
#pragma unroll
        for (int r = 0; r < R; r++) {
            float a = acc[r][j];
            a = fmaf(__uint_as_float(wv[r].x), xv.x, a);
            a = fmaf(__uint_as_float(wv[r].y), xv.y, a);
            a = fmaf(__uint_as_float(wv[r].z), xv.z, a);
            a = fmaf(__uint_as_float(wv[r].w), xv.w, a);
            acc[r][j] = a;
        }
    }
}

/* Up to GEMV_MULTI matrices of one input in one launch (q, k and v; gate and up): block b
 * belongs to the matrix j with first_block[j] <= b < first_block[j + 1]. */
enum { GEMV_MULTI = 4 };
struct gemv_args {
    const void *w[GEMV_MULTI];
    float *y[GEMV_MULTI];
    const float *bias[GEMV_MULTI];
    int64_t rows[GEMV_MULTI];
    unsigned first_block[GEMV_MULTI + 1];
    int k;
};

/* Block b computes rows [8b, 8b + 8) of its matrix for all N tokens. Thread t takes 16-byte
 * column chunks t, t + 128, ...; per step it loads the chunks c and c + 128 of all 8 rows
 * before using them (16 loads in flight). Partial sums go through warp shuffles and then shared
 * memory, always in the same order, so a row's value is the same whichever launch computed it.
 * Rows past the end are clamped for loading and not written. */
template <typename T, int N>
__global__ void __launch_bounds__(GEMV_THREADS)
    gemv_kernel(gemv_args a, const float *__restrict__ x, int64_t cols, int accumulate) {
    constexpr int R = GEMV_ROWS, VEC = 16 / sizeof(T);
    int j = 0;
#pragma unroll
    for (int m = 1; m < GEMV_MULTI; m++)
        if (m < a.k && blockIdx.x >= a.first_block[m]) j = m;
    const T *__restrict__ w = (const T *)a.w[j];
    const int64_t rows = a.rows[j];
    const int64_t r0 = (int64_t)(blockIdx.x - a.first_block[j]) * R, nchunk = cols / VEC;
    const uint4 *wr[R];
#pragma unroll
    for (int r = 0; r < R; r++)
        wr[r] = reinterpret_cast<const uint4 *>(w + (r0 + r < rows ? r0 + r : rows - 1) * cols);
    float acc[R][N];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < N; t++) acc[r][t] = 0.0f;

    for (int64_t c = threadIdx.x; c < nchunk; c += 2 * GEMV_THREADS) {
        const int64_t c2 = c + GEMV_THREADS;
        uint4 wa[R], wb[R];
#pragma unroll
        for (int r = 0; r < R; r++) wa[r] = __ldcs(wr[r] + c);
        if (c2 < nchunk) {
#pragma unroll
            for (int r = 0; r < R; r++) wb[r] = __ldcs(wr[r] + c2);
        }
        gemv_step<R, N>(acc, wa, x, cols, c, (const T *)0);
        if (c2 < nchunk) gemv_step<R, N>(acc, wb, x, cols, c2, (const T *)0);
    }

    __shared__ float red[GEMV_THREADS / 32][R * N];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < N; t++) {
            const float v = warp_sum(acc[r][t]);
            if (lane == 0) red[wid][r * N + t] = v;
        }
    __syncthreads();
    if (threadIdx.x < R * N) {
        const int r = threadIdx.x / N, t = threadIdx.x % N;
        const int64_t row = r0 + r;
        if (row < rows) {
            float v = red[0][threadIdx.x];
#pragma unroll
            for (int k = 1; k < GEMV_THREADS / 32; k++) v += red[k][threadIdx.x];
            if (a.bias[j]) v += a.bias[j][row];
            float *out = a.y[j] + t * rows + row;
            *out = accumulate ? *out + v : v;
        }
    }
}

/* Any shape and alignment: one block per (row, token), scalar loads. */
__global__ void gemv_generic_kernel(float *y, const float *x, wview w, const float *bias,
                                    int64_t rows, int64_t cols, int accumulate) {
    __shared__ float red[32];
    const int64_t row = blockIdx.x;
    const int j = blockIdx.y;
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += wget(w, row, c) * x[j * cols + c];
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        float v = 0.0f;
        for (int k = 0; k < (int)(blockDim.x >> 5); k++) v += red[k];
        if (bias) v += bias[row];
        float *out = y + (int64_t)j * rows + row;
        *out = accumulate ? *out + v : v;
    }
}

template <typename T>
static void launch_gemv(cuda_backend *cu, const gemv_args &a, const float *x, int64_t cols, int n,
                        int acc) {
    const unsigned blocks = a.first_block[a.k];
    switch (n) {
#define CASE(N)                                                                              \
    case N:                                                                                  \
        gemv_kernel<T, N><<<blocks, GEMV_THREADS, 0, cu->stream>>>(a, x, cols, acc);         \
        break;
        CASE(1)
        CASE(2)
        CASE(3)
        CASE(4)
#undef CASE
    default: CU_REQUIRE(0, "GEMV for %d tokens", n);
    }
    LAUNCH_CHECK();
}

/* ---- cuBLASLt --------------------------------------------------------------------------- */

static uint32_t align_log2(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t l = 0;
    while (l < 8 && !(a & ((uintptr_t)1 << l))) l++;
    return l;
}

static lt_plan *get_plan(cuda_backend *cu, int64_t m, int64_t n, int64_t k, int wtype, int bias,
                         int acc, uint32_t align) {
    cu_linear_state *s = cu->lin;
    for (int i = 0; i < s->n_plans; i++) {
        lt_plan *p = &s->plans[i];
        if (p->m == m && p->n == n && p->k == k && p->wtype == wtype && p->bias == bias &&
            p->acc == acc && p->align == align)
            return p;
    }
    CU_REQUIRE(!cu->recording, "new cuBLASLt plan (m %lld n %lld k %lld) while recording a graph",
               (long long)m, (long long)n, (long long)k);
    lt_plan *p;
    if (s->n_plans < LT_PLANS) {
        p = &s->plans[s->n_plans++];
    } else {
        p = &s->plans[s->next_evict];
        s->next_evict = (s->next_evict + 1) % LT_PLANS;
        plan_destroy(p);
    }
    p->m = m, p->n = n, p->k = k, p->wtype = wtype, p->bias = bias, p->acc = acc;
    p->align = align;
    const cudaDataType_t at = wtype == DTYPE_F32 ? CUDA_R_32F : CUDA_R_16BF;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (bias) {
        const cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
        const cudaDataType_t bt = CUDA_R_32F;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep,
                                                    sizeof ep));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                    &bt, sizeof bt));
    }
    /* Column-major view: W [m, k] row-major is A = k x m (ld k), used transposed; x [n, k] is
     * B = k x n (ld k); y [n, m] is D = m x n (ld m). */
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, at, (uint64_t)k, (uint64_t)m, k));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, at, (uint64_t)k, (uint64_t)n, k));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->c, CUDA_R_32F, (uint64_t)m, (uint64_t)n, m));
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t wsb = LT_WORKSPACE;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb));
    const cublasLtMatmulPreferenceAttributes_t al[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    const uint32_t al_bytes[4] = {1u << (align & 255), 1u << ((align >> 8) & 255),
                                  1u << ((align >> 16) & 255), 1u << ((align >> 16) & 255)};
    for (int i = 0; i < 4; i++)
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, al[i], &al_bytes[i], sizeof(uint32_t)));
    /* Decode-sized products (n <= LT_TUNE_MAX_N) keep the heuristic's first LT_CANDIDATES
     * algorithms and time them on first use (lt_matmul): the first choice is often a tile
     * shape that leaves much of the GPU idle for these skinny shapes. */
    cublasLtMatmulHeuristicResult_t res[LT_CANDIDATES];
    int got = 0;
    const int want = n <= LT_TUNE_MAX_N ? LT_CANDIDATES : 1;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(s->lt, p->op, p->a, p->b, p->c, p->c,
                                                             pref, want, res, &got);
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    CU_REQUIRE(st == CUBLAS_STATUS_SUCCESS && got > 0,
               "cuBLASLt has no algorithm (%s) for y[%lld, %lld] = x[%lld, %lld] @ W^T (%s, bias "
               "%d, accumulate %d, alignment code %08x)",
               cublas_status_name(st), (long long)n, (long long)m, (long long)n, (long long)k,
               dtype_name((dtype)wtype), bias, acc, align);
    p->algo = res[0].algo;
    p->n_cand = got > 1 ? got : 0;
    for (int i = 0; i < got && i < LT_CANDIDATES; i++) p->cand[i] = res[i].algo;
    return p;
}

static void lt_matmul(cuda_backend *cu, float *y, const void *x, const void *w, int wtype,
                      const float *bias, int64_t m, int64_t n, int64_t k, int acc) {
    const uint32_t align = align_log2(w) | align_log2(x) << 8 | align_log2(y) << 16 |
                           (bias ? align_log2(bias) : 8u) << 24;
    lt_plan *p = get_plan(cu, m, n, k, wtype, bias != NULL, acc, align);
    if (bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    const float alpha = 1.0f, beta = acc ? 1.0f : 0.0f;
    if (p->n_cand > 1 && !cu->recording) {
        /* time the candidates into a scratch output (y may hold the residual stream) */
        float *scratch = (float *)cu_workspace(cu, WS_TUNE, sizeof(float) * (size_t)m * n);
        cudaEvent_t e0, e1;
        CUDA_CHECK(cudaEventCreate(&e0));
        CUDA_CHECK(cudaEventCreate(&e1));
        float best = 1e30f;
        int pick = 0;
        for (int i = 0; i < p->n_cand; i++) {
            float ms = 0;
            for (int r = 0; r < 4; r++) {
                if (r == 1) CUDA_CHECK(cudaEventRecord(e0, cu->stream));
                const cublasStatus_t st =
                    cublasLtMatmul(cu->lin->lt, p->op, &alpha, w, p->a, x, p->b, &beta, scratch,
                                   p->c, scratch, p->c, &p->cand[i], cu->lin->ws, LT_WORKSPACE,
                                   cu->stream);
                if (st != CUBLAS_STATUS_SUCCESS) {
                    ms = 1e30f;
                    break;
                }
            }
            if (ms == 0) {
                CUDA_CHECK(cudaEventRecord(e1, cu->stream));
                CUDA_CHECK(cudaEventSynchronize(e1));
                CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
            }
            if (ms < best) best = ms, pick = i;
        }
        CUDA_CHECK(cudaEventDestroy(e0));
        CUDA_CHECK(cudaEventDestroy(e1));
        p->algo = p->cand[pick];
        p->n_cand = 0;
    }
    CUBLAS_CHECK(cublasLtMatmul(cu->lin->lt, p->op, &alpha, w, p->a, x, p->b, &beta, y, p->c, y,
                                p->c, &p->algo, cu->lin->ws, LT_WORKSPACE, cu->stream));
}

/* ---- the ops ------------------------------------------------------------------------------ */

static void check_linear(const weight *w, const weight *bias) {
    CU_REQUIRE(w->device, "linear: weight [%lld, %lld] was not uploaded (call backend->upload "
                          "after weight_load)",
               (long long)w->rows, (long long)w->cols);
    CU_REQUIRE(!bias || (bias->device && bias->dt == DTYPE_F32 && bias->cols == w->rows),
               "linear: bias must be an uploaded F32 vector of %lld", (long long)w->rows);
}

/* The GEMV kernel takes the weight when its rows are whole 16-byte chunks and x and W are
 * 16-byte aligned. */
static int gemv_fits(const void *wd, int wt, int64_t cols, const float *x) {
    const int vec = wt == DTYPE_F32 ? 4 : 8;
    return (wt == DTYPE_F32 || wt == DTYPE_BF16) && cols % vec == 0 &&
           ((uintptr_t)wd & 15) == 0 && ((uintptr_t)x & 15) == 0;
}

static void linear_impl(backend *be, float *y, const float *x, const weight *w,
                        const weight *bias, int n, int acc) {
    cuda_backend *cu = cu_of(be);
    check_linear(w, bias);
    const int64_t rows = w->rows, cols = w->cols;
    const float *bp = bias ? (const float *)bias->data : NULL;
    if (n <= 0) return;
    const void *wd = w->data;
    int wt = (int)w->dt;
    if (cu->mode == BACKEND_CUDA_BF16 && cu->skinny_on && w->dt == DTYPE_F8_E4M3 &&
        cu_skinny_fits(n, &w, 1)) { /* decode batches on FP8 weights: no dequantized copy */
        const __nv_bfloat16 *xb = cu_x_bf16(cu, x, (int64_t)n * cols);
        cu_skinny(cu, 1, &y, xb, &w, &bp, n, acc);
        cu_touch(cu, y, sizeof(float) * (size_t)n * rows);
        return;
    }
    if (w->dt == DTYPE_F8_E4M3) {
        void *deq = cu_workspace(cu, WS_DEQUANT, (size_t)rows * cols * 2);
        cu_convert_weight(cu, deq, DTYPE_BF16, w->data, DTYPE_F8_E4M3, w->scale_inv, rows, cols,
                          w->block_rows, w->block_cols);
        wd = deq;
        wt = DTYPE_BF16;
    }
    if (n <= cu->gemv_max && gemv_fits(wd, wt, cols, x)) {
        gemv_args a;
        memset(&a, 0, sizeof a);
        a.k = 1, a.w[0] = wd, a.y[0] = y, a.bias[0] = bp, a.rows[0] = rows;
        a.first_block[1] = (unsigned)((rows + GEMV_ROWS - 1) / GEMV_ROWS);
        if (wt == DTYPE_BF16) launch_gemv<__nv_bfloat16>(cu, a, x, cols, n, acc);
        else launch_gemv<float>(cu, a, x, cols, n, acc);
    } else if (n <= cu->gemv_max) {
        wview v;
        v.data = wd, v.scale = NULL, v.dt = wt, v.cols = cols, v.br = v.bc = 1;
        v.scale_cols = cols;
        gemv_generic_kernel<<<dim3((unsigned)rows, n), 128, 0, cu->stream>>>(y, x, v, bp, rows,
                                                                           cols, acc);
        LAUNCH_CHECK();
    } else if (cu->skinny_bf16 && w->dt == DTYPE_BF16 && cu_skinny_fits(n, &w, 1)) {
        const __nv_bfloat16 *xb = cu_x_bf16(cu, x, (int64_t)n * cols);
        cu_skinny(cu, 1, &y, xb, &w, &bp, n, acc);
    } else if (wt == DTYPE_F32) {
        lt_matmul(cu, y, x, wd, DTYPE_F32, bp, rows, n, cols, acc);
    } else {
        const __nv_bfloat16 *xb = cu_x_bf16(cu, x, (int64_t)n * cols);
        lt_matmul(cu, y, xb, wd, DTYPE_BF16, bp, rows, n, cols, acc);
    }
    cu_touch(cu, y, sizeof(float) * (size_t)n * rows);
}

void cu_linear(backend *be, float *y, const float *x, const weight *w, const weight *bias, int n) {
    linear_impl(be, y, x, w, bias, n, 0);
}

void cu_linear_add(backend *be, float *y, const float *x, const weight *w, const weight *bias,
                   int n) {
    linear_impl(be, y, x, w, bias, n, 1);
}

/* Several weights of one input: one GEMV launch when they share a type and width and the GEMV
 * applies (the rows are computed exactly as by separate launches); otherwise one linear each
 * (cuBLASLt then converts x to bf16 once for all). */
void cu_linear_multi(backend *be, int k, float *const *y, const float *x, const weight *const *w,
                     const weight *const *bias, int n) {
    cuda_backend *cu = cu_of(be);
    CU_REQUIRE(k >= 1, "linear_multi of %d weights", k);
    int fused = n >= 1 && n <= cu->gemv_max && k <= GEMV_MULTI;
    for (int j = 0; j < k; j++) {
        check_linear(w[j], bias ? bias[j] : NULL);
        fused = fused && w[j]->dt == w[0]->dt && w[j]->cols == w[0]->cols &&
                gemv_fits(w[j]->data, (int)w[j]->dt, w[j]->cols, x);
        CU_REQUIRE((const float *)y[j] != x, "linear_multi: output %d is the input", j);
        for (int i = 0; i < j; i++)
            CU_REQUIRE(y[i] != y[j], "linear_multi: outputs %d and %d are the same buffer", i, j);
    }
    if (!fused) {
        /* decode batches in bf16 mode: one tensor-core launch for all k (FP8 weights also for
         * n <= gemv_max: the GEMV would need dequantized copies) */
        const int skinny = cu->mode == BACKEND_CUDA_BF16 && cu->skinny_on &&
                           (w[0]->dt == DTYPE_F8_E4M3 || (cu->skinny_bf16 && n > cu->gemv_max));
        if (skinny && cu_skinny_fits(n, w, k)) {
            const float *bp[4] = {NULL, NULL, NULL, NULL};
            for (int j = 0; j < k; j++) bp[j] = bias && bias[j] ? (const float *)bias[j]->data : NULL;
            const __nv_bfloat16 *xb = cu_x_bf16(cu, x, (int64_t)n * w[0]->cols);
            cu_skinny(cu, k, y, xb, w, bp, n, 0);
            for (int j = 0; j < k; j++) cu_touch(cu, y[j], sizeof(float) * (size_t)n * w[j]->rows);
            return;
        }
        for (int j = 0; j < k; j++) linear_impl(be, y[j], x, w[j], bias ? bias[j] : NULL, n, 0);
        return;
    }
    gemv_args a;
    memset(&a, 0, sizeof a);
    a.k = k;
    for (int j = 0; j < k; j++) {
        a.w[j] = w[j]->data, a.y[j] = y[j], a.rows[j] = w[j]->rows;
        a.bias[j] = bias && bias[j] ? (const float *)bias[j]->data : NULL;
        a.first_block[j + 1] = a.first_block[j] + (unsigned)((w[j]->rows + GEMV_ROWS - 1) / GEMV_ROWS);
    }
    if (w[0]->dt == DTYPE_BF16) launch_gemv<__nv_bfloat16>(cu, a, x, w[0]->cols, n, 0);
    else launch_gemv<float>(cu, a, x, w[0]->cols, n, 0);
    for (int j = 0; j < k; j++) cu_touch(cu, y[j], sizeof(float) * (size_t)n * w[j]->rows);
}
