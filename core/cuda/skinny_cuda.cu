/* Linear layers of decode batches (up to 64 tokens) in bf16 mode, and the grouped expert
 * products of a mixture of experts: y[n, rows] (+)= x[n, K] W^T (+ bias), weights streamed once
 * at close to the memory bandwidth, products on tensor cores. Weights are BF16, or FP8 e4m3
 * with block scales (DeepSeek's 128 x 128), widened to bf16 in registers; x is bf16.
 *
 * cuBLASLt's kernels for these shapes (tiles of 64-256 rows, n padded to a tile) reach 70-80% of
 * the bandwidth on the Qwen2.5-7B shapes and much less on the small q/k/v and o matrices; this
 * kernel has no shared memory and no block-wide synchronisation in its main loop:
 *
 *   - a warp owns 16 weight rows and a K range; per step (32 columns of BF16, 64 of FP8) each
 *     lane loads 16 bytes of two of its rows (ld.global.cs, streaming, SK_AHEAD steps ahead)
 *     and the matching bf16 of x for each 8 tokens (x is small, so all warps of an SM read it
 *     from L1), then issues two (BF16) or four (FP8) mma.m16n8k16 per 8 tokens;
 *   - the 16-byte pieces are used whole by permuting k inside each step: the 4-lane group q's
 *     elements serve as the fragment columns {2q, 2q+1, 2q+8, 2q+9} of the step's k16 products
 *     (the same permutation for W and x, so the dot product is unchanged);
 *   - FP8: a step lies inside one 128 x 128 scale block for all 16 rows of a warp, so the step's
 *     products are summed unscaled and added to the accumulator times the block's scale;
 *   - blocks of 4 warps (64 rows), up to 4 matrices of one input per launch (q, k and v; gate
 *     and up), and split-K when a matrix has few rows: each split writes its partial sums and
 *     the last split of a tile (an atomic counter) adds them in split order. Split counts depend
 *     on the matrix alone, so results do not depend on timing, on the other matrices of the
 *     launch, or (per token) on the other tokens.
 *   - grouped (linear_segments): block (row tile, chunk) takes up to 64 consecutive rows of x
 *     that one expert's segment holds; chunks are numbered from the segment offsets on the
 *     device, so empty experts cost nothing and nothing is copied to the host.
 *
 * Bytes: rows * K * (1 or 2) of weights (+ n * K * 2 of x per SM from L2, + split partials);
 * FLOPs: 2 * n * rows * K on tensor cores (n padded to a multiple of 8). */
#include <string.h>

#include "core/cuda/cuda_internal.cuh"

enum { SK_WARPS = 4, SK_ROWS = 16 * SK_WARPS, SK_AHEAD = 4, SK_MAX_SEM = 8192, SK_CHUNK = 64 };

/* Two e4m3 (low byte first) as bf16x2, exactly (every e4m3 value is a bf16). */
__device__ __forceinline__ uint32_t e4m3x2_bf16x2(uint32_t two) {
    uint32_t h;
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(h) : "h"((unsigned short)two));
    const __half2 hh = *reinterpret_cast<const __half2 *>(&h);
    const float2 f = __half22float2(hh);
    const __nv_bfloat162 b = __floats2bfloat162_rn(f.x, f.y);
    return *reinterpret_cast<const uint32_t *>(&b);
}

/* What a warp needs to know of its weight rows. */
struct sk_wt {
    const uint8_t *data;  /* row-major [rows, K], 1 (FP8) or 2 (BF16) bytes */
    const float *scale;   /* FP8: [ceil(rows / br), scale_cols] */
    int64_t rows;
    int br, bc, scale_cols;
};

/* acc[t] += (W rows r0..r0+15, steps [s0, s1)) . x rows tok0 + 8t + g (t < NT, rows < nt).
 * Step = 32 columns (BF16) or 64 (FP8). */
template <int NT, bool FP8>
__device__ __forceinline__ void sk_warp(float (&acc)[NT][4], const sk_wt &w, int64_t r0,
                                        const __nv_bfloat16 *__restrict__ x, int nt, int64_t K,
                                        int64_t s0, int64_t s1) {
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int64_t esz = FP8 ? 1 : 2;
    const int64_t row_a = min(r0 + g, w.rows - 1), row_b = min(r0 + g + 8, w.rows - 1);
    const uint4 *wa = reinterpret_cast<const uint4 *>(w.data + row_a * K * esz) + q;
    const uint4 *wb = reinterpret_cast<const uint4 *>(w.data + row_b * K * esz) + q;
    /* x: 16 bytes per lane per step for BF16, 32 for FP8 (uint4 units) */
    constexpr int XU = FP8 ? 2 : 1;
    const uint4 *xr[NT];
    bool xok[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) {
        const int tok = 8 * t + g;
        xok[t] = tok < nt;
        xr[t] = reinterpret_cast<const uint4 *>(x + (int64_t)(xok[t] ? tok : 0) * K) + q * XU;
    }
    const uint4 zero = make_uint4(0, 0, 0, 0);
    const float *srow = FP8 ? w.scale + (r0 / w.br) * (int64_t)w.scale_cols : nullptr;
    uint4 ra[SK_AHEAD], rb[SK_AHEAD];
#pragma unroll
    for (int d = 0; d < SK_AHEAD; d++)
        if (s0 + d < s1) ra[d] = __ldcs(wa + (s0 + d) * 4), rb[d] = __ldcs(wb + (s0 + d) * 4);
    for (int64_t s = s0; s < s1; s += SK_AHEAD) {
#pragma unroll
        for (int d = 0; d < SK_AHEAD; d++) {
            const int64_t st = s + d;
            if (st >= s1) continue;
            const uint4 ca = ra[d], cb = rb[d];
            if (st + SK_AHEAD < s1) {
                ra[d] = __ldcs(wa + (st + SK_AHEAD) * 4);
                rb[d] = __ldcs(wb + (st + SK_AHEAD) * 4);
            }
            if (!FP8) {
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    if (8 * t >= nt) continue;
                    const uint4 cx = xok[t] ? xr[t][st * 4] : zero;
                    mma16816(acc[t], ca.x, cb.x, ca.y, cb.y, cx.x, cx.y);
                    mma16816(acc[t], ca.z, cb.z, ca.w, cb.w, cx.z, cx.w);
                }
            } else {
                const float sc = srow[(st * 64) / w.bc];
                const uint32_t aw[4] = {ca.x, ca.y, ca.z, ca.w}, bw[4] = {cb.x, cb.y, cb.z, cb.w};
                uint32_t A[4][4];
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    A[c][0] = e4m3x2_bf16x2(aw[c] & 0xffff);
                    A[c][1] = e4m3x2_bf16x2(bw[c] & 0xffff);
                    A[c][2] = e4m3x2_bf16x2(aw[c] >> 16);
                    A[c][3] = e4m3x2_bf16x2(bw[c] >> 16);
                }
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    if (8 * t >= nt) continue;
                    const uint4 x0 = xok[t] ? xr[t][st * 8] : zero;
                    const uint4 x1 = xok[t] ? xr[t][st * 8 + 1] : zero;
                    const uint32_t xw[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
                    float p[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                    for (int c = 0; c < 4; c++)
                        mma16816(p, A[c][0], A[c][1], A[c][2], A[c][3], xw[2 * c], xw[2 * c + 1]);
#pragma unroll
                    for (int e = 0; e < 4; e++) acc[t][e] = fmaf(sc, p[e], acc[t][e]);
                }
            }
        }
    }
}

/* ---- several matrices of one input, split-K ------------------------------------------------ */

/* Matrix j has tiles[j] tiles of 64 rows, each cut into splits[j] ranges of `per[j]` steps;
 * block b of the 1-D grid is (matrix j, tile, split) with first_block[j] <= b <
 * first_block[j + 1], split-major within the matrix. */
struct skinny_args {
    sk_wt w[4];
    float *y[4];
    const float *bias[4];
    unsigned first_block[5];
    unsigned tiles[4], splits[4], per[4];
    unsigned first_tile[4]; /* counter index of the matrix's first tile */
    int64_t part_off[4];    /* floats of partial sums before the matrix's */
    int k;
};

template <int NT, bool FP8>
__global__ void __launch_bounds__(32 * SK_WARPS)
    skinny_kernel(skinny_args a, const __nv_bfloat16 *__restrict__ x, int n, int64_t K,
                  int accumulate, float *__restrict__ part, int *__restrict__ sem) {
    int j = 0;
#pragma unroll
    for (int m = 1; m < 4; m++)
        if (m < a.k && blockIdx.x >= a.first_block[m]) j = m;
    const sk_wt &w = a.w[j];
    const int64_t rows = w.rows;
    const unsigned local = blockIdx.x - a.first_block[j];
    const int tile = (int)(local % a.tiles[j]), split = (int)(local / a.tiles[j]);
    const int splits = (int)a.splits[j];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int64_t r0 = (int64_t)tile * SK_ROWS + warp * 16;
    float acc[NT][4];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0.0f;
    const int64_t steps = K / (FP8 ? 64 : 32);
    const int64_t s0 = (int64_t)split * a.per[j], s1 = min(steps, s0 + (int64_t)a.per[j]);
    if (r0 < rows) sk_warp<NT, FP8>(acc, w, r0, x, n, K, s0, s1);

    /* C fragment: acc[t][0..1] = rows r0+g, tokens 8t+2q, +1; acc[t][2..3] = row r0+g+8 */
    const float *bias = a.bias[j];
    float *y = a.y[j];
    if (splits == 1) {
#pragma unroll
        for (int t = 0; t < NT; t++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int64_t row = r0 + g + (e >> 1) * 8;
                const int tok = 8 * t + 2 * q + (e & 1);
                if (row >= rows || tok >= n) continue;
                float v = acc[t][e];
                if (bias) v += bias[row];
                float *o = y + (int64_t)tok * rows + row;
                *o = accumulate ? *o + v : v;
            }
        return;
    }
    /* split-K: partials [tile][split][n][64 rows], then the last split of the tile adds them */
    float *pt = part + a.part_off[j] + (int64_t)tile * splits * n * SK_ROWS;
#pragma unroll
    for (int t = 0; t < NT; t++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int lr = warp * 16 + g + (e >> 1) * 8;
            const int tok = 8 * t + 2 * q + (e & 1);
            if (tok < n) pt[((int64_t)split * n + tok) * SK_ROWS + lr] = acc[t][e];
        }
    __threadfence();
    __syncthreads();
    __shared__ int last;
    int *counter = sem + a.first_tile[j] + tile;
    if (threadIdx.x == 0) last = atomicAdd(counter, 1) == splits - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    const int64_t tile_r0 = (int64_t)tile * SK_ROWS;
    for (int idx = threadIdx.x; idx < n * SK_ROWS; idx += blockDim.x) {
        const int tok = idx / SK_ROWS, lr = idx % SK_ROWS;
        const int64_t row = tile_r0 + lr;
        if (row >= rows) continue;
        float v = 0.0f;
        for (int s = 0; s < splits; s++) v += __ldcg(pt + ((int64_t)s * n + tok) * SK_ROWS + lr);
        if (bias) v += bias[row];
        float *o = y + (int64_t)tok * rows + row;
        *o = accumulate ? *o + v : v;
    }
    if (threadIdx.x == 0) *counter = 0; /* ready for the next launch (or graph replay) */
}

/* Counters for split-K tiles: zeroed once, and every launch leaves them at zero. */
static int *sem_array(cuda_backend *cu) {
    if (!cu->skinny_sem) {
        CU_REQUIRE(!cu->recording, "skinny GEMM counters allocated while recording");
        CUDA_CHECK(cudaMalloc(&cu->skinny_sem, sizeof(int) * SK_MAX_SEM));
        CUDA_CHECK(cudaMemsetAsync(cu->skinny_sem, 0, sizeof(int) * SK_MAX_SEM, cu->stream));
    }
    return cu->skinny_sem;
}

static int weight_fits(const weight *w) {
    if (((uintptr_t)w->data & 15) != 0) return 0;
    if (w->dt == DTYPE_BF16) return w->cols % 32 == 0;
    if (w->dt == DTYPE_F8_E4M3)
        return w->cols % 64 == 0 && w->block_rows % 16 == 0 && w->block_cols % 64 == 0 &&
               w->scale_inv != NULL;
    return 0;
}

int cu_skinny_fits(int n, const weight *const *w, int k) {
    if (n < 1 || n > 64 || k < 1 || k > 4) return 0;
    for (int j = 0; j < k; j++)
        if (!weight_fits(w[j]) || w[j]->dt != w[0]->dt || w[j]->cols != w[0]->cols) return 0;
    return 1;
}

static sk_wt wt_of(const weight *w) {
    sk_wt s;
    s.data = (const uint8_t *)w->data;
    s.scale = w->scale_inv;
    s.rows = w->rows;
    s.br = w->block_rows > 0 ? w->block_rows : 1;
    s.bc = w->block_cols > 0 ? w->block_cols : 1;
    s.scale_cols = (int)((w->cols + s.bc - 1) / s.bc);
    return s;
}

template <bool FP8>
static void launch_skinny(cuda_backend *cu, unsigned blocks, const skinny_args &a,
                          const __nv_bfloat16 *xb, int n, int64_t K, int acc, float *part,
                          int *sem) {
    switch ((n + 7) / 8) {
#define CASE(NT)                                                                             \
    case NT:                                                                                 \
        skinny_kernel<NT, FP8><<<blocks, 32 * SK_WARPS, 0, cu->stream>>>(a, xb, n, K, acc,     \
                                                                         part, sem);         \
        break;
        CASE(1)
        CASE(2)
        CASE(3)
        CASE(4)
        CASE(5)
        CASE(6)
        CASE(7)
        CASE(8)
#undef CASE
    default: CU_REQUIRE(0, "skinny GEMM for %d tokens", n);
    }
    LAUNCH_CHECK();
}

void cu_skinny(cuda_backend *cu, int k, float *const *y, const __nv_bfloat16 *xb,
               const weight *const *w, const float *const *bias, int n, int accumulate) {
    CU_REQUIRE(cu_skinny_fits(n, w, k), "skinny GEMM: shapes it does not take");
    skinny_args a;
    memset(&a, 0, sizeof a);
    a.k = k;
    const bool fp8 = w[0]->dt == DTYPE_F8_E4M3;
    const int64_t K = w[0]->cols, steps = K / (fp8 ? 64 : 32);
    unsigned sem_used = 0;
    int64_t part_floats = 0;
    for (int j = 0; j < k; j++) {
        a.w[j] = wt_of(w[j]);
        a.y[j] = y[j];
        a.bias[j] = bias ? bias[j] : NULL;
        const unsigned tiles = (unsigned)((w[j]->rows + SK_ROWS - 1) / SK_ROWS);
        /* Split K while the matrix alone has fewer than two blocks per SM, keeping at least 8
         * steps per split. */
        unsigned splits = 1;
        while ((int64_t)tiles * splits < 2 * (int64_t)cu->sm_count && steps / (2 * splits) >= 8)
            splits *= 2;
        if (splits > 1 && sem_used + tiles > SK_MAX_SEM) splits = 1;
        a.tiles[j] = tiles;
        a.splits[j] = splits;
        a.per[j] = (unsigned)((steps + splits - 1) / splits);
        a.first_block[j + 1] = a.first_block[j] + tiles * splits;
        a.first_tile[j] = sem_used;
        a.part_off[j] = part_floats;
        if (splits > 1) {
            sem_used += tiles;
            part_floats += (int64_t)tiles * splits * n * SK_ROWS;
        }
    }
    float *part = NULL;
    int *sem = NULL;
    if (part_floats) {
        part = (float *)cu_workspace(cu, WS_SPLITK, sizeof(float) * (size_t)part_floats);
        sem = sem_array(cu);
    }
    if (fp8) launch_skinny<true>(cu, a.first_block[k], a, xb, n, K, accumulate, part, sem);
    else launch_skinny<false>(cu, a.first_block[k], a, xb, n, K, accumulate, part, sem);
}

/* ---- grouped: one expert per segment of rows ------------------------------------------------- */

struct sk_expert {
    const uint8_t *data;
    const float *scale;
};

/* chunk_start[e] = sum over e' < e of ceil(count(e') / 64), for e <= E. One thread. */
__global__ void segment_chunks_kernel(int *chunk_start, const int *seg, int E) {
    if (threadIdx.x != 0) return;
    int c = 0;
    for (int e = 0; e < E; e++) {
        chunk_start[e] = c;
        c += (seg[e + 1] - seg[e] + SK_CHUNK - 1) / SK_CHUNK;
    }
    chunk_start[E] = c;
}

/* Block (row tile, chunk slot): the chunk slot names (expert e, chunk c) through chunk_start;
 * slots past the last chunk return at once. */
template <bool FP8>
__global__ void __launch_bounds__(32 * SK_WARPS)
    grouped_kernel(float *__restrict__ y, const __nv_bfloat16 *__restrict__ x,
                   const sk_expert *__restrict__ ex, sk_wt shape, const int *__restrict__ seg,
                   const int *__restrict__ chunk_start, int E, int64_t K) {
    const int slot = blockIdx.y;
    if (slot >= chunk_start[E]) return;
    int lo = 0, hi = E - 1; /* the last e with chunk_start[e] <= slot */
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (chunk_start[mid] <= slot) lo = mid;
        else hi = mid - 1;
    }
    const int e = lo;
    const int row0 = seg[e] + (slot - chunk_start[e]) * SK_CHUNK;
    const int nt = min(SK_CHUNK, seg[e + 1] - row0);
    if (nt <= 0) return;
    sk_wt w = shape;
    w.data = ex[e].data;
    w.scale = ex[e].scale;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int64_t r0 = (int64_t)blockIdx.x * SK_ROWS + warp * 16;
    if (r0 >= w.rows) return;
    float acc[8][4];
#pragma unroll
    for (int t = 0; t < 8; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0.0f;
    sk_warp<8, FP8>(acc, w, r0, x + (int64_t)row0 * K, nt, K, 0, K / (FP8 ? 64 : 32));
#pragma unroll
    for (int t = 0; t < 8; t++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int64_t row = r0 + g + (c >> 1) * 8;
            const int tok = 8 * t + 2 * q + (c & 1);
            if (row < w.rows && tok < nt) y[(int64_t)(row0 + tok) * w.rows + row] = acc[t][c];
        }
}

/* Any shapes and types: block (64 output rows, row r of x), the expert found by search. */
__global__ void grouped_generic_kernel(float *y, const float *x, const sk_expert *ex, int dt,
                                       int64_t rows, int64_t cols, int br, int bc,
                                       const int *seg, int E) {
    const int r = blockIdx.y;
    if (r < seg[0] || r >= seg[E]) return; /* another rank's experts' row */
    int lo = 0, hi = E - 1; /* the expert whose segment holds row r */
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (seg[mid] <= r) lo = mid;
        else hi = mid - 1;
    }
    wview w;
    w.data = ex[lo].data;
    w.scale = ex[lo].scale;
    w.dt = dt;
    w.cols = cols;
    w.br = br;
    w.bc = bc;
    w.scale_cols = (cols + bc - 1) / bc;
    const int64_t o = (int64_t)blockIdx.x * 64 + threadIdx.x;
    if (o >= rows) return;
    float s = 0.0f;
    for (int64_t c = 0; c < cols; c++) s = fmaf(wget(w, o, c), x[(int64_t)r * cols + c], s);
    y[(int64_t)r * rows + o] = s;
}

/* The device table of a weight array's data and scale pointers, built once per array (on a
 * pass's first, eager run) and dropped with every unload (a freed array's address may come back
 * with other weights). */
static const sk_expert *expert_table(cuda_backend *cu, const weight *w, int E) {
    for (int i = 0; i < cu->n_etabs; i++)
        if (cu->etabs[i].host == w && cu->etabs[i].n == E) return (const sk_expert *)cu->etabs[i].dev;
    CU_REQUIRE(!cu->recording, "a new expert table while recording a CUDA graph");
    if (cu->n_etabs == cu->cap_etabs) {
        cu->cap_etabs = cu->cap_etabs ? 2 * cu->cap_etabs : 64;
        cu->etabs = (cu_etab *)xrealloc(cu->etabs, sizeof(cu_etab) * (size_t)cu->cap_etabs);
    }
    sk_expert *h = (sk_expert *)xmalloc(sizeof(sk_expert) * (size_t)E);
    for (int e = 0; e < E; e++) {
        CU_REQUIRE(w[e].device && w[e].dt == w[0].dt && w[e].rows == w[0].rows &&
                       w[e].cols == w[0].cols,
                   "linear_segments: weight %d of %d is not an uploaded matrix like weight 0", e, E);
        h[e].data = (const uint8_t *)w[e].data;
        h[e].scale = w[e].scale_inv;
    }
    cu_etab *t = &cu->etabs[cu->n_etabs++];
    t->host = w;
    t->n = E;
    CUDA_CHECK(cudaMalloc(&t->dev, sizeof(sk_expert) * (size_t)E));
    CUDA_CHECK(cudaMemcpyAsync(t->dev, h, sizeof(sk_expert) * (size_t)E, cudaMemcpyHostToDevice,
                               cu->stream));
    CUDA_CHECK(cudaStreamSynchronize(cu->stream));
    free(h);
    return (const sk_expert *)t->dev;
}

void cu_drop_expert_tables(cuda_backend *cu) {
    if (!cu->n_etabs) return;
    CUDA_CHECK(cudaStreamSynchronize(cu->stream));
    for (int i = 0; i < cu->n_etabs; i++) CUDA_CHECK(cudaFree(cu->etabs[i].dev));
    cu->n_etabs = 0;
    cu_drop_graphs(cu);
}

void cu_linear_segments(backend *be, float *y, const float *x, const weight *w, const int *seg,
                        int E, int n) {
    cuda_backend *cu = cu_of(be);
    if (n <= 0 || E <= 0) return;
    const sk_expert *ex = expert_table(cu, w, E);
    const weight *w0 = &w[0];
    const int64_t rows = w0->rows, K = w0->cols;
    if (cu->mode == BACKEND_CUDA_BF16 && cu->skinny_on && weight_fits(w0)) {
        const bool fp8 = w0->dt == DTYPE_F8_E4M3;
        const __nv_bfloat16 *xb = cu_x_bf16(cu, x, (int64_t)n * K);
        int *cs = (int *)cu_workspace(cu, WS_SEGMENTS, sizeof(int) * (size_t)(E + 1));
        segment_chunks_kernel<<<1, 32, 0, cu->stream>>>(cs, seg, E);
        LAUNCH_CHECK();
        /* at most one partial chunk per expert beyond n / 64 full ones */
        const unsigned slots = (unsigned)(E + n / SK_CHUNK);
        CU_REQUIRE(slots <= 65535, "linear_segments: %d experts and %d rows", E, n);
        const dim3 grid((unsigned)((rows + SK_ROWS - 1) / SK_ROWS), slots);
        const sk_wt shape = wt_of(w0);
        if (fp8)
            grouped_kernel<true><<<grid, 32 * SK_WARPS, 0, cu->stream>>>(y, xb, ex, shape, seg, cs,
                                                                         E, K);
        else
            grouped_kernel<false><<<grid, 32 * SK_WARPS, 0, cu->stream>>>(y, xb, ex, shape, seg,
                                                                          cs, E, K);
        LAUNCH_CHECK();
    } else {
        cu_invalidate_xbf(cu);
        CU_REQUIRE(n <= 65535, "linear_segments: %d rows", n);
        const dim3 grid((unsigned)((rows + 63) / 64), (unsigned)n);
        grouped_generic_kernel<<<grid, 64, 0, cu->stream>>>(
            y, x, ex, (int)w0->dt, rows, K, w0->block_rows > 0 ? w0->block_rows : 1,
            w0->block_cols > 0 ? w0->block_cols : 1, seg, E);
        LAUNCH_CHECK();
    }
    cu_touch(cu, y, sizeof(float) * (size_t)n * rows);
}
