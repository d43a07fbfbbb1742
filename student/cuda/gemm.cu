/* GEMMs through cuBLASLt: bf16 operands, float32 accumulation, bf16 or float32 output, the bias
 * added in the epilogue and the residual added through C (beta = 1).
 *
 * cuBLASLt is column-major; our tensors are row-major. A row-major [r, c] matrix with row
 * stride ld is the column-major [c, r] matrix with leading dimension ld, so each row-major
 * product is written as the product of the transposes:
 *
 *   forward   y[n,out]  = x[n,in] w[out,in]^T   ->  y^T[out,n]  = op_T(w^T[in,out]) x^T[in,n]
 *   dx        dx[n,in]  = dy[n,out] w[out,in]   ->  dx^T[in,n]  = w^T[in,out] dy^T[out,n]
 *   dw        dw[out,in] = dy[n,out]^T x[n,in]  ->  dw^T[in,out] = x^T[in,n] op_T(dy^T[out,n])
 *
 * Descriptors and the heuristic's algorithm are cached per shape (a training step repeats the
 * same dozen shapes every layer), so a call costs one cublasLtMatmul. */
#include <cublasLt.h>
#include <stdio.h>
#include <string.h>

#include "student/cuda/common.cuh"

extern "C" void r1_cuda_fail(int err, const char *msg, const char *file, int line,
                             const char *expr) {
    die(R1_ERUNTIME, "cuda", "%s (error %d) at %s:%d in %s", msg, err, file, line, expr);
}

static void cublas_fail(cublasStatus_t st, const char *file, int line, const char *expr,
                        const char *shape) {
    die(R1_ERUNTIME, "cublasLt", "status %d at %s:%d in %s%s%s", (int)st, file, line, expr,
        shape ? " for " : "", shape ? shape : "");
}
#define CUBLAS_CHECK(x)                                                                       \
    do {                                                                                      \
        cublasStatus_t st_ = (x);                                                             \
        if (st_ != CUBLAS_STATUS_SUCCESS) cublas_fail(st_, __FILE__, __LINE__, #x, NULL);     \
    } while (0)

/* ---- the plan cache --------------------------------------------------------------------------- */

typedef struct {
    int m, n, k, lda, ldb, ldc, ldd, ta, tb, d_f32, has_c, bias;
    int align_a, align_b, align_c, align_d, align_bias;
} plan_key;

typedef struct {
    plan_key key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc, ld;
    cublasLtMatmulAlgo_t algo;
} plan;

enum { PLAN_CACHE = 96 };

struct r1_gemm {
    cublasLtHandle_t lt;
    void *workspace;
    size_t workspace_bytes;
    plan plans[PLAN_CACHE];
    int n_plans, next_evict;
};

/* The largest power of two (up to 256) dividing the address: what the heuristic is told. */
static int alignment_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int al = 256;
    while (al > 1 && (a % (uintptr_t)al) != 0) al >>= 1;
    return al;
}

extern "C" r1_gemm *r1_gemm_create(size_t workspace_bytes) {
    r1_gemm *g = (r1_gemm *)xcalloc(1, sizeof *g);
    CUBLAS_CHECK(cublasLtCreate(&g->lt));
    g->workspace_bytes = workspace_bytes;
    if (workspace_bytes) R1_CUDA_CHECK(cudaMalloc(&g->workspace, workspace_bytes));
    return g;
}

static void plan_free(plan *p) {
    cublasLtMatmulDescDestroy(p->desc);
    cublasLtMatrixLayoutDestroy(p->la);
    cublasLtMatrixLayoutDestroy(p->lb);
    cublasLtMatrixLayoutDestroy(p->lc);
    cublasLtMatrixLayoutDestroy(p->ld);
}

extern "C" void r1_gemm_destroy(r1_gemm *g) {
    if (!g) return;
    for (int i = 0; i < g->n_plans; i++) plan_free(&g->plans[i]);
    if (g->workspace) cudaFree(g->workspace);
    cublasLtDestroy(g->lt);
    free(g);
}

static plan *plan_get(r1_gemm *g, const plan_key *key) {
    for (int i = 0; i < g->n_plans; i++)
        if (memcmp(&g->plans[i].key, key, sizeof *key) == 0) return &g->plans[i];

    plan *p;
    if (g->n_plans < PLAN_CACHE) {
        p = &g->plans[g->n_plans++];
    } else {
        p = &g->plans[g->next_evict];
        g->next_evict = (g->next_evict + 1) % PLAN_CACHE;
        plan_free(p);
    }
    memset(p, 0, sizeof *p);
    p->key = *key;
    char shape[256];
    snprintf(shape, sizeof shape,
             "m=%d n=%d k=%d lda=%d ldb=%d ldc=%d ldd=%d op=%c%c out=%s bias=%d align=%d/%d/%d/%d",
             key->m, key->n, key->k, key->lda, key->ldb, key->ldc, key->ldd, key->ta ? 'T' : 'N',
             key->tb ? 'T' : 'N', key->d_f32 ? "f32" : "bf16", key->bias, key->align_a,
             key->align_b, key->align_c, key->align_d);
#define LT(x)                                                                                 \
    do {                                                                                      \
        cublasStatus_t st_ = (x);                                                             \
        if (st_ != CUBLAS_STATUS_SUCCESS) cublas_fail(st_, __FILE__, __LINE__, #x, shape);    \
    } while (0)

    LT(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = key->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = key->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    cublasLtEpilogue_t epi = key->bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (key->bias) {
        cudaDataType_t bt = CUDA_R_16BF;
        LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                          sizeof bt));
        /* The heuristic reads the pointer's alignment: give it one as aligned as the real one. */
        const void *fake = (const void *)(uintptr_t)key->align_bias;
        LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &fake,
                                          sizeof fake));
    }
    /* Stored shapes: A is k x m (op T) or m x k; B is n x k (op T) or k x n. */
    cudaDataType_t dt = key->d_f32 ? CUDA_R_32F : CUDA_R_16BF;
    LT(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, key->ta ? key->k : key->m,
                                  key->ta ? key->m : key->k, key->lda));
    LT(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, key->tb ? key->n : key->k,
                                  key->tb ? key->k : key->n, key->ldb));
    LT(cublasLtMatrixLayoutCreate(&p->lc, dt, key->m, key->n, key->ldc));
    LT(cublasLtMatrixLayoutCreate(&p->ld, dt, key->m, key->n, key->ldd));

    cublasLtMatmulPreference_t pref;
    LT(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = g->workspace_bytes;
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                            sizeof ws));
    uint32_t al[4] = {(uint32_t)key->align_a, (uint32_t)key->align_b, (uint32_t)key->align_c,
                      (uint32_t)key->align_d};
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                            &al[0], sizeof al[0]));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                            &al[1], sizeof al[1]));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                            &al[2], sizeof al[2]));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                            &al[3], sizeof al[3]));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    LT(cublasLtMatmulAlgoGetHeuristic(g->lt, p->desc, p->la, p->lb, p->lc, p->ld, pref, 1, &res,
                                      &found));
    cublasLtMatmulPreferenceDestroy(pref);
    if (found == 0)
        die(R1_ERUNTIME, "cublasLt", "no algorithm for the GEMM %s (workspace %zu bytes)", shape,
            g->workspace_bytes);
    p->algo = res.algo;
#undef LT
    return p;
}

/* D[m, n] = op(A) op(B) (+ C if c), column-major; D and C share the type and leading dim ldd
 * unless c is given with its own ldc. */
static void matmul(r1_gemm *g, void *d, int d_f32, int ldd, const bf16 *a, int lda, int ta,
                   const bf16 *b, int ldb, int tb, const void *c, int ldc, int m, int n, int k,
                   const bf16 *bias, cudaStream_t s) {
    CHECK(m > 0 && n > 0 && k > 0);
    CHECK(lda >= (ta ? k : m) && ldb >= (tb ? n : k) && ldd >= m);
    CHECK(!bias || !d_f32);
    plan_key key;
    memset(&key, 0, sizeof key); /* the key is compared bytewise */
    key.m = m;
    key.n = n;
    key.k = k;
    key.lda = lda;
    key.ldb = ldb;
    key.ldc = c ? ldc : ldd;
    key.ldd = ldd;
    key.ta = ta;
    key.tb = tb;
    key.d_f32 = d_f32;
    key.has_c = c != NULL;
    key.bias = bias != NULL;
    key.align_a = alignment_of(a);
    key.align_b = alignment_of(b);
    key.align_c = alignment_of(c ? c : d);
    key.align_d = alignment_of(d);
    key.align_bias = bias ? alignment_of(bias) : 0;
    plan *p = plan_get(g, &key);
    if (bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    const float alpha = 1.0f, beta = c ? 1.0f : 0.0f;
    CUBLAS_CHECK(cublasLtMatmul(g->lt, p->desc, &alpha, a, p->la, b, p->lb, &beta, c ? c : d,
                                p->lc, d, p->ld, &p->algo, g->workspace, g->workspace_bytes, s));
}

/* ---- launchers ---------------------------------------------------------------------------------- */

extern "C" void linear_forward(r1_gemm *g, void *y, int y_f32, int ldy, const r1_bf16 *x,
                               int ldx, const r1_bf16 *w, const r1_bf16 *bias, const void *res,
                               int n, int in, int out, cudaStream_t s) {
    CHECK(!y_f32 || (!bias && !res));
    matmul(g, y, y_f32, ldy, w, in, 1, x, ldx, 0, res, ldy, out, n, in, bias, s);
}

extern "C" void linear_backward_x(r1_gemm *g, r1_bf16 *dx, int accumulate, const r1_bf16 *dy,
                                  int lddy, const r1_bf16 *w, int n, int in, int out,
                                  cudaStream_t s) {
    matmul(g, dx, 0, in, w, in, 0, dy, lddy, 0, accumulate ? dx : NULL, in, in, n, out, NULL, s);
}

extern "C" void linear_backward_w(r1_gemm *g, void *dw, int dw_f32, int accumulate,
                                  const r1_bf16 *dy, int lddy, const r1_bf16 *x, int ldx, int n,
                                  int in, int out, cudaStream_t s) {
    matmul(g, dw, dw_f32, in, x, ldx, 0, dy, lddy, 1, accumulate ? dw : NULL, in, in, out, n,
           NULL, s);
}

/* ---- bias gradient: a column sum in a fixed order ------------------------------------------------
 * Two passes, so that every SM has rows to read: the rows are cut into at most BIAS_CHUNKS chunks
 * of at least BIAS_MIN_ROWS; block (column group, chunk) writes the chunk's column sums to
 * scratch[chunk][col] (each of its 8 row groups sums every 8th row, the 8 partials added in
 * order), then one thread per column adds the chunks in order into db. Thread x of a block owns
 * 8 consecutive columns (one 16-byte load per row) when the rows allow it, else one. */

enum { BIAS_CHUNKS = 128, BIAS_MIN_ROWS = 64 };

static int bias_chunks(int n) {
    const int c = ceil_div(n, BIAS_MIN_ROWS);
    return c < BIAS_CHUNKS ? c : BIAS_CHUNKS;
}

extern "C" size_t bias_backward_scratch_floats(int n, int cols) {
    return (size_t)bias_chunks(n) * (size_t)cols;
}

template <int CPT>
__global__ void bias_partials_kernel(float *part, const bf16 *dy, int ld, int n, int cols,
                                     int rows_per_chunk) {
    __shared__ float red[8][32 * CPT + 1];
    const int c0 = (blockIdx.x * 32 + threadIdx.x) * CPT, r = threadIdx.y, chunk = blockIdx.y;
    const int i0 = chunk * rows_per_chunk, i1 = min(n, i0 + rows_per_chunk);
    float acc[CPT];
#pragma unroll
    for (int j = 0; j < CPT; j++) acc[j] = 0.0f;
    if (c0 < cols)
        for (int i = i0 + r; i < i1; i += 8) {
            float v[CPT];
            load_vec<CPT>(v, dy + (size_t)i * ld + c0);
#pragma unroll
            for (int j = 0; j < CPT; j++) acc[j] += v[j];
        }
#pragma unroll
    for (int j = 0; j < CPT; j++) red[r][threadIdx.x * CPT + j] = acc[j];
    __syncthreads();
    /* the block's 32 CPT columns, one per thread of the first 32 CPT threads */
    const int t = threadIdx.y * 32 + threadIdx.x, c = blockIdx.x * 32 * CPT + t;
    if (t < 32 * CPT && c < cols) {
        float sum = 0.0f;
        for (int k = 0; k < 8; k++) sum += red[k][t];
        part[(size_t)chunk * cols + c] = sum;
    }
}

__global__ void bias_finish_kernel(void *db, int db_f32, const float *part, int chunks, int cols) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float sum = 0.0f;
    for (int k = 0; k < chunks; k++) sum += part[(size_t)k * cols + c];
    grad_add(db, db_f32, c, sum);
}

extern "C" void bias_backward(void *db, int db_f32, float *scratch, const r1_bf16 *dy, int ld,
                              int n, int cols, cudaStream_t s) {
    CHECK(n > 0 && cols > 0 && ld >= cols);
    const int chunks = bias_chunks(n), rows = ceil_div(n, chunks);
    const dim3 block(32, 8);
    if (cols % 8 == 0 && ld % 8 == 0 && aligned16(dy))
        bias_partials_kernel<8><<<dim3(ceil_div(cols, 256), chunks), block, 0, s>>>(
            scratch, (const bf16 *)dy, ld, n, cols, rows);
    else
        bias_partials_kernel<1><<<dim3(ceil_div(cols, 32), chunks), block, 0, s>>>(
            scratch, (const bf16 *)dy, ld, n, cols, rows);
    LAUNCH_CHECK();
    bias_finish_kernel<<<ceil_div(cols, 256), 256, 0, s>>>(db, db_f32, scratch, chunks, cols);
    LAUNCH_CHECK();
}
