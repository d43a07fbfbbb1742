/* Linear layers of decode batches (5 to 64 tokens) in bf16 mode: y[n, rows] (+)= x[n, K] W^T
 * (+ bias), weights streamed once at close to the memory bandwidth, products on tensor cores.
 *
 * cuBLASLt's kernels for these shapes (tiles of 64-256 rows, n padded to a tile) reach 70-80% of
 * the bandwidth on the Qwen2.5-7B shapes and much less on the small q/k/v and o matrices; this
 * kernel has no shared memory and no block-wide synchronisation in its main loop:
 *
 *   - a warp owns 16 weight rows and a K range; per 32 columns each lane loads 16 bytes of two
 *     of its rows (ld.global.cs, streaming, SK_AHEAD steps ahead) and 16 bytes of x for each 8
 *     tokens (x is bf16 and small, so all warps of an SM read it from L1), then issues two
 *     mma.m16n8k16 per 8 tokens;
 *   - the 16-byte pieces are used whole by permuting k inside each 32-column step: lane group
 *     q's bytes 8q..8q+7 serve as the fragment columns {2q, 2q+1, 2q+8, 2q+9} of the two k16
 *     products (the same permutation for W and x, so the dot product is unchanged);
 *   - blocks of 4 warps (64 rows), several matrices of one input per launch (q, k and v; gate
 *     and up), and split-K when there are few rows: each split writes its partial sums, and
 *     the last split of a tile (an atomic counter) adds them in split order, so results do
 *     not depend on timing, and a token's value does not depend on the other tokens.
 *
 * Bytes: rows * K * 2 of weights (+ n * K * 2 of x per SM from L2, + split partials); FLOPs:
 * 2 * n * rows * K on tensor cores (n padded to a multiple of 8). */
#include <string.h>

#include "core/cuda/cuda_internal.cuh"

enum { SK_WARPS = 4, SK_ROWS = 16 * SK_WARPS, SK_AHEAD = 4, SK_MAX_SEM = 8192 };

/* Matrix j has tiles[j] tiles of 64 rows, each cut into splits[j] ranges of `per[j]` 32-column
 * steps; block b of the 1-D grid is (matrix j, tile, split) with first_block[j] <= b <
 * first_block[j + 1], split-major within the matrix. Split counts depend on the matrix alone,
 * so a matrix gets the same values whichever other matrices share the launch. */
struct skinny_args {
    const __nv_bfloat16 *w[4];
    float *y[4];
    const float *bias[4];
    int64_t rows[4];
    unsigned first_block[5];
    unsigned tiles[4], splits[4], per[4];
    unsigned first_tile[4]; /* counter index of the matrix's first tile */
    int64_t part_off[4];    /* floats of partial sums before the matrix's */
    int k;
};

__device__ __forceinline__ void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* Grid: (tiles of 64 rows over all matrices, splits). NT: tokens / 8, rounded up. */
template <int NT>
__global__ void __launch_bounds__(32 * SK_WARPS)
    skinny_kernel(skinny_args a, const __nv_bfloat16 *__restrict__ x, int n, int64_t K,
                  int accumulate, float *__restrict__ part, int *__restrict__ sem) {
    int j = 0;
#pragma unroll
    for (int m = 1; m < 4; m++)
        if (m < a.k && blockIdx.x >= a.first_block[m]) j = m;
    const int64_t rows = a.rows[j];
    const unsigned local = blockIdx.x - a.first_block[j];
    const int tile = (int)(local % a.tiles[j]), split = (int)(local / a.tiles[j]);
    const int splits = (int)a.splits[j], ksteps_per_split = (int)a.per[j];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int64_t r0 = (int64_t)tile * SK_ROWS + warp * 16;
    const int64_t row_a = min(r0 + g, rows - 1), row_b = min(r0 + g + 8, rows - 1);
    const uint4 *wa = reinterpret_cast<const uint4 *>(a.w[j] + row_a * K) + q;
    const uint4 *wb = reinterpret_cast<const uint4 *>(a.w[j] + row_b * K) + q;
    const uint4 *xr[NT];
    bool xok[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) {
        const int tok = 8 * t + g;
        xok[t] = tok < n;
        xr[t] = reinterpret_cast<const uint4 *>(x + (int64_t)(xok[t] ? tok : 0) * K) + q;
    }
    float acc[NT][4];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0.0f;

    const int64_t total_steps = K / 32;
    const int64_t s0 = (int64_t)split * ksteps_per_split;
    const int64_t s1 = min(total_steps, s0 + ksteps_per_split);
    const uint4 zero = make_uint4(0, 0, 0, 0);
    /* weights SK_AHEAD steps ahead in a register ring (HBM latency); x at use (L1) */
    uint4 ra[SK_AHEAD], rb[SK_AHEAD];
#pragma unroll
    for (int d = 0; d < SK_AHEAD; d++)
        if (s0 + d < s1) ra[d] = __ldcs(wa + (s0 + d) * 4), rb[d] = __ldcs(wb + (s0 + d) * 4);
    for (int64_t s = s0; s < s1; s += SK_AHEAD) {
#pragma unroll
        for (int d = 0; d < SK_AHEAD; d++) {
            const int64_t st = s + d;
            if (st < s1) {
                const uint4 ca = ra[d], cb = rb[d];
                if (st + SK_AHEAD < s1) {
                    ra[d] = __ldcs(wa + (st + SK_AHEAD) * 4);
                    rb[d] = __ldcs(wb + (st + SK_AHEAD) * 4);
                }
                uint4 cx[NT];
#pragma unroll
                for (int t = 0; t < NT; t++) cx[t] = xok[t] ? xr[t][st * 4] : zero;
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    mma16816(acc[t], ca.x, cb.x, ca.y, cb.y, cx[t].x, cx[t].y);
                    mma16816(acc[t], ca.z, cb.z, ca.w, cb.w, cx[t].z, cx[t].w);
                }
            }
        }
    }

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

int cu_skinny_fits(int64_t cols, int n, const void *const *w, int k) {
    if (n < 1 || n > 64 || cols % 32 != 0 || k < 1 || k > 4) return 0;
    for (int j = 0; j < k; j++)
        if (((uintptr_t)w[j] & 15) != 0) return 0;
    return 1;
}

void cu_skinny(cuda_backend *cu, int k, float *const *y, const __nv_bfloat16 *xb,
               const weight *const *w, const float *const *bias, int n, int accumulate) {
    skinny_args a;
    memset(&a, 0, sizeof a);
    a.k = k;
    const int64_t K = w[0]->cols, steps = K / 32;
    unsigned sem_used = 0;
    int64_t part_floats = 0;
    for (int j = 0; j < k; j++) {
        CU_REQUIRE(w[j]->dt == DTYPE_BF16 && w[j]->cols == K, "skinny GEMM on a %s weight",
                   dtype_name(w[j]->dt));
        a.w[j] = (const __nv_bfloat16 *)w[j]->data;
        a.y[j] = y[j];
        a.bias[j] = bias ? bias[j] : NULL;
        a.rows[j] = w[j]->rows;
        const unsigned tiles = (unsigned)((w[j]->rows + SK_ROWS - 1) / SK_ROWS);
        /* Split K while the matrix alone has fewer than two blocks per SM, keeping at least 8
         * steps (256 columns) per split. */
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
    const unsigned blocks = a.first_block[k];
    switch ((n + 7) / 8) {
#define CASE(NT)                                                                             \
    case NT:                                                                                 \
        skinny_kernel<NT><<<blocks, 32 * SK_WARPS, 0, cu->stream>>>(a, xb, n, K, accumulate,   \
                                                                    part, sem);              \
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
