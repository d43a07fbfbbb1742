/* Causal flash attention on tensor cores (mma.sync m16n8k16, bf16 in, float32 accumulate) for
 * head_dim 64 and 128: the same algorithm as the simple kernels of attention.cu (read that file
 * first), with the matrix products on tensor cores.
 *
 * Layout of the work. A block is 4 warps; each warp owns 16 rows of the block's 64-row tile
 * (query rows in the forward and dq kernels, key rows in the dk/dv kernel) and keeps its
 * accumulators in registers in the C-fragment layout (common.cuh). Tiles of the other side
 * (keys, or queries) stream through shared memory in a two-stage cp.async pipeline: while one
 * stage is used, the next is loaded. Shared-memory rows are padded by 16 bytes so the eight row
 * addresses of each ldmatrix fall in distinct banks.
 *
 * A product's C fragment is reused as the next product's A fragment (P @ V, dS @ K, P^T @ dO,
 * dS^T @ Q): the C layout of two adjacent 16x8 blocks is the A layout of one 16x16 block, so P
 * never goes through shared memory.
 *
 * Softmax arithmetic runs in base 2: scores are scaled by scale * log2(e) and exponentiated with
 * exp2f; lse is stored in natural-log units like the simple kernels'. */
#include "student/cuda/attention.cuh"
#include "student/cuda/attention_frag.cuh"

/* ---- shared helpers ------------------------------------------------------------------------------ */

/* cp.async of `rows` rows of HD bf16 (head columns [col, col + HD) of a matrix with row stride
 * ld) into a shared tile with row stride LDS; rows at or past `end` are zero-filled. */
template <int HD, int LDS>
__device__ __forceinline__ void load_tile_async(bf16 *dst, const bf16 *src, size_t ld, int col,
                                                int row0, int rows, int end) {
    constexpr int CPR = HD / 8; /* 16-byte chunks per row */
    for (int c = threadIdx.x; c < rows * CPR; c += blockDim.x) {
        const int r = c / CPR, k = c % CPR;
        const int row = row0 + r;
        const bool ok = row < end;
        const bf16 *s = ok ? src + (size_t)row * ld + col + k * 8 : src;
        cp_async16(dst + r * LDS + k * 8, s, ok ? 16 : 0);
    }
}

/* cp.async of the K and V tiles of KV head g (of H query heads and KV heads in the packed qkv)
 * for keys [row0, row0 + rows), zero past `end`. */
template <int HD, int LDS>
__device__ __forceinline__ void load_kv_async(bf16 *Ks, bf16 *Vs, const bf16 *qkv, size_t ld,
                                              int H, int KV, int g, int row0, int rows, int end) {
    load_tile_async<HD, LDS>(Ks, qkv, ld, (H + g) * HD, row0, rows, end);
    load_tile_async<HD, LDS>(Vs, qkv, ld, (H + KV + g) * HD, row0, rows, end);
}

/* The query-side kernels' step t of n_kt over key tiles of T rows from d0, in two stages: queue
 * tile t + 1 into the other buffer, then wait for tile t (in buffer t & 1) and the block. */
template <int HD, int LDS, int T>
__device__ __forceinline__ void kv_step(bf16 *Ks, bf16 *Vs, const bf16 *qkv, size_t ld, int H,
                                        int KV, int g, int d0, int t, int n_kt, int end) {
    if (t + 1 < n_kt) {
        const int nb = (t + 1) & 1;
        load_kv_async<HD, LDS>(Ks + nb * T * LDS, Vs + nb * T * LDS, qkv, ld, H, KV, g,
                               d0 + (t + 1) * T, T, end);
        cp_async_commit();
        cp_async_wait<1>();
    } else {
        cp_async_wait<0>();
    }
    __syncthreads();
}

/* acc[16 x 8 NT] += A[16 x HD] (rows row0.., shared, row-major) @ M^T where M[8 NT x HD] is
 * row-major in shared memory (scores: Q K^T, or dO V^T). */
template <int HD, int NT, int LDS>
__device__ __forceinline__ void mma_abt(float (&acc)[NT][4], const bf16 *A, int row0,
                                        const bf16 *M) {
#pragma unroll
    for (int ks = 0; ks < HD / 16; ks++) {
        uint32_t a[4];
        load_a_frag(a, A, LDS, row0, ks * 16);
#pragma unroll
        for (int np = 0; np < NT / 2; np++) {
            uint32_t b[4];
            load_b_frag_nk(b, M, LDS, np * 16, ks * 16);
            mma_bf16(acc[2 * np], a, b[0], b[1]);
            mma_bf16(acc[2 * np + 1], a, b[2], b[3]);
        }
    }
}

/* acc[16 x HD] += P[16 x 8 NT] (C fragments in registers) @ M[8 NT x HD] (row-major, shared). */
template <int HD, int NT, int LDS>
__device__ __forceinline__ void mma_pv(float (&acc)[HD / 8][4], const float (&p)[NT][4],
                                       const bf16 *M) {
#pragma unroll
    for (int j = 0; j < NT / 2; j++) {
        uint32_t a[4];
        c_to_a<NT>(a, p, j);
#pragma unroll
        for (int dp = 0; dp < HD / 16; dp++) {
            uint32_t b[4];
            load_b_frag_kn(b, M, LDS, j * 16, dp * 16);
            mma_bf16(acc[2 * dp], a, b[0], b[1]);
            mma_bf16(acc[2 * dp + 1], a, b[2], b[3]);
        }
    }
}

/* ---- forward -------------------------------------------------------------------------------------- */

template <int HD>
struct fwd_cfg {
    static constexpr int LDS = HD + 8;
    static constexpr int SMEM = (ATTN_TILE + 4 * ATTN_TILE) * LDS * (int)sizeof(bf16);
};

template <int HD>
__global__ void __launch_bounds__(128)
    attn_fwd_mma_kernel(bf16 *out, float *lse, const bf16 *qkv, const int *tiles, int n, int H,
                        int KV, float scale_log2) {
    constexpr int LDS = fwd_cfg<HD>::LDS, T = ATTN_TILE;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem_raw); /* [T][LDS] */
    bf16 *Ks = Qs + T * LDS;                       /* [2][T][LDS] */
    bf16 *Vs = Ks + 2 * T * LDS;                   /* [2][T][LDS] */

    const int *tl = tiles + ATTN_TILE_INTS * blockIdx.x;
    const int r0 = tl[0], r1 = tl[1], d0 = tl[2];
    const int h = blockIdx.y, g = h / (H / KV);
    const size_t ld = (size_t)(H + 2 * KV) * HD;
    const int warp = threadIdx.x >> 5;
    const int ra = r0 + warp * 16 + ((threadIdx.x & 31) >> 2); /* this thread's rows: ra, ra + 8 */
    const int n_kt = (r1 - 1 - d0) / T + 1;

    load_tile_async<HD, LDS>(Qs, qkv, ld, h * HD, r0, T, r1);
    cp_async_commit();
    load_kv_async<HD, LDS>(Ks, Vs, qkv, ld, H, KV, g, d0, T, r1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    uint32_t qf[HD / 16][4];
#pragma unroll
    for (int ks = 0; ks < HD / 16; ks++) load_a_frag(qf[ks], Qs, LDS, warp * 16, ks * 16);

    float o[HD / 8][4];
    zero(o);
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;

    for (int t = 0; t < n_kt; t++) {
        const int kt = d0 + t * T;
        kv_step<HD, LDS, T>(Ks, Vs, qkv, ld, H, KV, g, d0, t, n_kt, r1);
        const bf16 *Kb = Ks + (t & 1) * T * LDS, *Vb = Vs + (t & 1) * T * LDS;

        float s[T / 8][4];
        zero(s);
#pragma unroll
        for (int ks = 0; ks < HD / 16; ks++) {
#pragma unroll
            for (int np = 0; np < T / 16; np++) {
                uint32_t b[4];
                load_b_frag_nk(b, Kb, LDS, np * 16, ks * 16);
                mma_bf16(s[2 * np], qf[ks], b[0], b[1]);
                mma_bf16(s[2 * np + 1], qf[ks], b[2], b[3]);
            }
        }
        /* the causal mask where the key tile reaches past the tile's first row; the running max
         * on the raw scores (the scale is positive), then p = 2^(s scale log2(e) - max) as one
         * FMA and one ex2 */
        if (kt + T > r0) mask_causal<T / 8>(s, kt, ra);
        softmax_step<T / 8, HD / 8>(s, o, m_a, m_b, l_a, l_b, scale_log2);
        mma_pv<HD, T / 8, LDS>(o, s, Vb);
        __syncthreads(); /* stage t & 1 is refilled by the next iteration's prefetch */
    }

    softmax_finish<HD>(out, lse, n, H, h, ra, r1, o, m_a, m_b, l_a, l_b);
}

/* ---- backward: dq (query side) ----------------------------------------------------------------------
 * For the 64 query rows of a tile and one head: for each key block, S = Q K^T, P = exp(S - lse),
 * dP = dO V^T, dS = P (dP - delta), dQ += dS K. */

template <int HD>
struct dq_cfg {
    static constexpr int LDS = HD + 8;
    static constexpr int SMEM = (2 * ATTN_TILE + 4 * ATTN_TILE) * LDS * (int)sizeof(bf16);
};

template <int HD>
__global__ void __launch_bounds__(128)
    attn_dq_mma_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                       const float *delta, const int *tiles, int n, int H, int KV, float scale,
                       float scale_log2) {
    constexpr int LDS = dq_cfg<HD>::LDS, T = ATTN_TILE;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem_raw); /* [T][LDS] */
    bf16 *dOs = Qs + T * LDS;                      /* [T][LDS] */
    bf16 *Ks = dOs + T * LDS;                      /* [2][T][LDS] */
    bf16 *Vs = Ks + 2 * T * LDS;                   /* [2][T][LDS] */

    const int *tl = tiles + ATTN_TILE_INTS * blockIdx.x;
    const int r0 = tl[0], r1 = tl[1], d0 = tl[2];
    const int h = blockIdx.y, g = h / (H / KV);
    const size_t ld = (size_t)(H + 2 * KV) * HD;
    const int warp = threadIdx.x >> 5, gid = (threadIdx.x & 31) >> 2;
    const int ra = r0 + warp * 16 + gid; /* this thread's rows: ra, ra + 8 */
    const int n_kt = (r1 - 1 - d0) / T + 1;

    load_tile_async<HD, LDS>(Qs, qkv, ld, h * HD, r0, T, r1);
    load_tile_async<HD, LDS>(dOs, dout, (size_t)H * HD, h * HD, r0, T, r1);
    load_kv_async<HD, LDS>(Ks, Vs, qkv, ld, H, KV, g, d0, T, r1);
    cp_async_commit();
    const row_stats st = load_row_stats(lse, delta, n, h, ra, r1);

    float dq[HD / 8][4];
    zero(dq);
    for (int t = 0; t < n_kt; t++) {
        const int kt = d0 + t * T;
        kv_step<HD, LDS, T>(Ks, Vs, qkv, ld, H, KV, g, d0, t, n_kt, r1);
        const bf16 *Kb = Ks + (t & 1) * T * LDS, *Vb = Vs + (t & 1) * T * LDS;

        float p[T / 8][4], dp[T / 8][4];
        zero(p);
        zero(dp);
        mma_abt<HD, T / 8, LDS>(p, Qs, warp * 16, Kb);
        mma_abt<HD, T / 8, LDS>(dp, dOs, warp * 16, Vb);
        if (kt + T > r0) mask_causal<T / 8>(p, kt, ra);
        ds_query_rows<T / 8>(dp, p, scale_log2, st);
        mma_pv<HD, T / 8, LDS>(dq, dp, Kb);
        __syncthreads();
    }
    store_rows<HD>(dqkv, ld, h * HD, ra, r1, dq, scale, scale);
}

/* ---- backward: dk, dv (key side) ---------------------------------------------------------------------
 * For the 64 key rows of a tile and one kv head: for every query head of its group and every
 * block of BQ queries from the tile's first key to the document's end, S^T = K Q^T,
 * P^T = exp(S^T - lse), dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - delta), dK += dS^T Q. */

template <int HD>
struct dkv_cfg {
    static constexpr int BQ = HD == 128 ? 32 : 64; /* queries per step: bounds the registers */
    static constexpr int LDS = HD + 8;
    static constexpr int SMEM = (2 * ATTN_TILE + 4 * BQ) * LDS * (int)sizeof(bf16) +
                                4 * BQ * (int)sizeof(float);
};

template <int HD>
__global__ void __launch_bounds__(128)
    attn_dkv_mma_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                        const float *delta, const int *tiles, int n, int H, int KV, float scale,
                        float scale_log2) {
    constexpr int LDS = dkv_cfg<HD>::LDS, T = ATTN_TILE, BQ = dkv_cfg<HD>::BQ;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Ks = reinterpret_cast<bf16 *>(smem_raw); /* [T][LDS] */
    bf16 *Vs = Ks + T * LDS;                       /* [T][LDS] */
    bf16 *Qs = Vs + T * LDS;                       /* [2][BQ][LDS] */
    bf16 *dOs = Qs + 2 * BQ * LDS;                 /* [2][BQ][LDS] */
    float *Ls = reinterpret_cast<float *>(dOs + 2 * BQ * LDS); /* [2][BQ] lse */
    float *Ds = Ls + 2 * BQ;                                   /* [2][BQ] delta */

    const int *tl = tiles + ATTN_TILE_INTS * blockIdx.x;
    const int k0 = tl[0], k1 = tl[1], d1 = tl[3];
    const int g = blockIdx.y, G = H / KV;
    const size_t ld = (size_t)(H + 2 * KV) * HD, ldo = (size_t)H * HD;
    const int warp = threadIdx.x >> 5, gid = (threadIdx.x & 31) >> 2;
    const int ka = k0 + warp * 16 + gid;    /* this thread's key rows: ka and ka + 8 */
    const int nq = (d1 - k0 + BQ - 1) / BQ; /* query blocks per head */
    const int n_it = G * nq;

    /* stage `it` of the (head, query block) sequence into buffer `buf` */
    auto prefetch = [&](int it, int buf) {
        const int h = g * G + it / nq, qt = k0 + (it % nq) * BQ;
        load_tile_async<HD, LDS>(Qs + buf * BQ * LDS, qkv, ld, h * HD, qt, BQ, d1);
        load_tile_async<HD, LDS>(dOs + buf * BQ * LDS, dout, ldo, h * HD, qt, BQ, d1);
        stage_query_stats(Ls + buf * BQ, Ds + buf * BQ, lse, delta, n, h, qt, BQ, d1);
    };

    load_kv_async<HD, LDS>(Ks, Vs, qkv, ld, H, KV, g, k0, T, k1);
    prefetch(0, 0);
    cp_async_commit();

    float dk[HD / 8][4], dv[HD / 8][4];
    zero(dk);
    zero(dv);
    for (int it = 0; it < n_it; it++) {
        const int qt = k0 + (it % nq) * BQ;
        const int buf = it & 1;
        if (it + 1 < n_it) {
            prefetch(it + 1, buf ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16 *Qb = Qs + buf * BQ * LDS, *dOb = dOs + buf * BQ * LDS;
        const float *Lb = Ls + buf * BQ, *Db = Ds + buf * BQ;

        float p[BQ / 8][4], ds[BQ / 8][4];
        zero(p);
        zero(ds);
        mma_abt<HD, BQ / 8, LDS>(p, Ks, warp * 16, Qb);  /* S^T: keys x queries */
        mma_abt<HD, BQ / 8, LDS>(ds, Vs, warp * 16, dOb); /* dP^T */
        /* masked where a query precedes a key or lies past the document's end */
        if (qt < k0 + T - 1 || qt + BQ > d1) mask_causal_t<BQ / 8>(p, qt, ka, d1);
        ds_query_cols<BQ / 8>(p, ds, scale_log2, Lb, Db);
        mma_pv<HD, BQ / 8, LDS>(dv, p, dOb);
        mma_pv<HD, BQ / 8, LDS>(dk, ds, Qb);
        __syncthreads();
    }
    store_rows<HD>(dqkv, ld, (H + g) * HD, ka, k1, dk, scale, scale);
    store_rows<HD>(dqkv, ld, (H + KV + g) * HD, ka, k1, dv, 1.0f, 1.0f);
}

/* ---- launchers ------------------------------------------------------------------------------------- */

template <int HD>
static void fwd(bf16 *out, float *lse, const bf16 *qkv, const attn_shape *a, cudaStream_t s) {
    constexpr int smem = fwd_cfg<HD>::SMEM;
    attn_set_smem(attn_fwd_mma_kernel<HD>, smem);
    attn_fwd_mma_kernel<HD><<<dim3(a->n_tiles, a->n_heads), 128, smem, s>>>(
        out, lse, qkv, a->tiles_q, a->n, a->n_heads, a->n_kv_heads, a->scale * LOG2E);
    LAUNCH_CHECK();
}

template <int HD>
static void bwd(bf16 *dqkv, const float *delta, const bf16 *dout, const bf16 *qkv,
                const float *lse, const attn_shape *a, cudaStream_t s) {
    constexpr int smem_q = dq_cfg<HD>::SMEM, smem_kv = dkv_cfg<HD>::SMEM;
    attn_set_smem(attn_dq_mma_kernel<HD>, smem_q);
    attn_dq_mma_kernel<HD><<<dim3(a->n_tiles, a->n_heads), 128, smem_q, s>>>(
        dqkv, dout, qkv, lse, delta, a->tiles_q, a->n, a->n_heads, a->n_kv_heads, a->scale,
        a->scale * LOG2E);
    LAUNCH_CHECK();
    attn_set_smem(attn_dkv_mma_kernel<HD>, smem_kv);
    attn_dkv_mma_kernel<HD><<<dim3(a->n_tiles, a->n_kv_heads), 128, smem_kv, s>>>(
        dqkv, dout, qkv, lse, delta, a->tiles_kv, a->n, a->n_heads, a->n_kv_heads, a->scale,
        a->scale * LOG2E);
    LAUNCH_CHECK();
}

void attention_forward_mma(bf16 *out, float *lse, const bf16 *qkv, const attn_shape *a,
                           cudaStream_t s) {
    CHECK(aligned16(out));
    if (a->head_dim == 64)
        fwd<64>(out, lse, qkv, a, s);
    else
        fwd<128>(out, lse, qkv, a, s);
}

void attention_backward_mma(bf16 *dqkv, const float *delta, const bf16 *dout, const bf16 *qkv,
                            const float *lse, const attn_shape *a, cudaStream_t s) {
    CHECK(aligned16(dqkv) && aligned16(dout));
    if (a->head_dim == 64)
        bwd<64>(dqkv, delta, dout, qkv, lse, a, s);
    else
        bwd<128>(dqkv, delta, dout, qkv, lse, a, s);
}
