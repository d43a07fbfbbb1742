/* Causal flash attention on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a) for
 * head_dim 64 and 128: the algorithm of attention_mma.cu (read it first; same fixed-order sums,
 * same base-2 softmax), with products that read their shared operands directly (wgmma.cuh).
 *
 * A block is two warpgroups and owns a 128-row tile (queries in the forward and dq kernels, keys
 * in the dk/dv kernel; attn_tile_rows gives 128 for these kernels): warpgroup w takes its rows
 * 64 w .. 64 w + 63. Tiles of 64 rows of the other side stream through two shared stages
 * (cp.async, swizzled) and serve both warpgroups, so each is read from L2 once per 128 rows.
 * Per step, for a warpgroup's 64 rows against the step's 64:
 *   forward   S = Q K^T (A, B both from shared, K-major); P = softmax step; O += P V (A = P
 *             from registers, B = V used MN-major)
 *   dq        S = Q K^T, dP = dO V^T; dS = P (dP - delta); dQ += dS K (K used MN-major)
 *   dk, dv    S^T = K Q^T, dP^T = V dO^T; dV += P^T dO, dK += dS^T Q (Q, dO used MN-major)
 * P and dS never leave registers: a product's accumulator is the next product's A operand. A
 * warpgroup skips the steps that the causal mask hides from all its rows.
 *
 * With scratch for dS (attn_shape.ds_scratch; head_dim 128) the backward runs in passes over
 * the heads: the dk/dv kernel also writes each step's dS (its bf16 A fragments, as they are) to a
 * slot, and a query-side kernel computes dq += dS K from the slots: five products in all, not
 * seven. A slot is the 64 x 64 block in fragment order, [warp][query k-step][lane][4 words], so
 * each kernel moves it with 16-byte accesses that a warp makes contiguous; the reader transposes
 * its 8 x 8 pieces in registers (movmatrix). Passes split the heads of a kv group only when the
 * scratch is short; the group's dk, dv then wait between passes in float32, each pass's sum
 * added to the earlier ones' at its end. So the scratch decides the last bits: dq's (dS kept or
 * recomputed: the same values up to the rounding of S and dP) and, where a pass splits a group,
 * dk's and dv's; a given shape and scratch size always give the same bits. */
#include <algorithm>

#include "student/cuda/attention.cuh"
#include "student/cuda/attention_frag.cuh"
#include "student/cuda/wgmma.cuh"

namespace {

constexpr int T = ATTN_TILE, BM = 2 * T, NTHR = 256; /* step rows, block rows, threads */
/* Blocks per SM: the forward (and dq at head_dim 64) fit 128 registers per thread without
 * spilling, so two blocks share an SM and one's softmax overlaps the other's products. dk/dv at
 * 64 would spill at 128 (measured slower: the 0.5B step lost 9%); dq and dk/dv at 128 hold 161 KB
 * of shared memory, one block per SM whatever their registers. */
static_assert(T == 64, "a warpgroup's product has 64 rows");
/* The dk/dv kernel streams its queries through four stages, queued two steps ahead: stage t + 2
 * refills the buffer of step t - 2, whose last readers, the dV and dK products of that step,
 * every warpgroup has waited for (behind step t - 1's first products) before step t's barrier.
 * So one barrier per step suffices, and a step's dV and dK products run on while the next
 * step's S and dP are issued. */
constexpr int KV_STAGES = 4;

/* The dynamic shared memory, 1024-byte aligned (the swizzle's atom); launches add 1024 bytes. */
__device__ __forceinline__ bf16 *smem_base() {
    extern __shared__ unsigned char smem_raw[];
    const uint32_t mis = smem_u32(smem_raw) & 1023;
    return reinterpret_cast<bf16 *>(smem_raw + (mis ? 1024 - mis : 0));
}

/* The wait for the stage in use (a prefetch of the next one may still be in flight), then the
 * hand-over from the copies' proxy to the tensor cores'. */
template <int PENDING>
__device__ __forceinline__ void stage_ready() {
    cp_async_wait<PENDING>();
    fence_proxy_async();
    __syncthreads();
}

/* acc = A B^T over HD columns: rows arow0 .. + 63 of A (a tile of RA rows) against the 64 rows
 * of B, both K-major swizzled tiles. */
template <int HD, int RA>
__device__ __forceinline__ void product_abt(float (&acc)[T / 8][4], const bf16 *A, int arow0,
                                            const bf16 *B) {
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
        wgmma_ss<0>(acc, desc_kmajor<RA>(A, kk, arow0), desc_kmajor<T>(B, kk, 0), kk > 0);
}

/* acc += P M: P[64 x 64] from registers (a[j]: its columns 16 j ..), M[64 x HD] a swizzled tile
 * used MN-major. */
template <int HD>
__device__ __forceinline__ void product_pm(float (&acc)[HD / 8][4], const uint32_t (&a)[T / 16][4],
                                           const bf16 *M) {
#pragma unroll
    for (int j = 0; j < T / 16; j++) wgmma_rs<1>(acc, a[j], desc_mnmajor<T>(M, j), 1);
}

template <int NT>
__device__ __forceinline__ void to_a(uint32_t (&a)[NT / 2][4], const float (&c)[NT][4]) {
#pragma unroll
    for (int j = 0; j < NT / 2; j++) c_to_a<NT>(a[j], c, j);
}

/* The thread's warpgroup (0, 1), and its first row within the warpgroup's 64 (rows r and
 * r + 8 are the thread's). */
__device__ __forceinline__ int wg_index() { return threadIdx.x >> 7; }
__device__ __forceinline__ int wg_row() {
    return ((threadIdx.x >> 5) & 3) * 16 + ((threadIdx.x & 31) >> 2);
}

template <int HD>
constexpr int tile_bytes(int rows) {
    return rows * HD * (int)sizeof(bf16);
}

/* Stages of K and V in the query-side kernels: three for dq at head_dim 128, whose block has the
 * SM to itself (stage t + 2 is queued after the barrier that shows every thread past step
 * t - 1: one barrier per step, and the copies have two steps to land); two where two blocks
 * share an SM and each one's barriers overlap the other's work (three measured slower there:
 * H100, 0.5B, forward 8.8 -> 9.3 ms, dq 9.9 -> 10.1 per step). */
template <int HD, bool FWD>
__host__ __device__ constexpr int q_stages() {
    return HD == 128 && !FWD ? 3 : 2;
}

/* K and V of the first stages (the first key tile from d0) into their buffers, each stage
 * one cp.async group (a caller's earlier copies join the first). */
template <int HD, int S>
__device__ __forceinline__ void kv_prologue(bf16 *Ks, bf16 *Vs, const bf16 *qkv, size_t ld,
                                            int kcol, int vcol, int n_kt, int d0, int end) {
    load_tile_swz<T, HD, NTHR>(Ks, qkv, ld, kcol, d0, end);
    load_tile_swz<T, HD, NTHR>(Vs, qkv, ld, vcol, d0, end);
    cp_async_commit();
    if constexpr (S == 3) {
        if (n_kt > 1) {
            load_tile_swz<T, HD, NTHR>(Ks + T * HD, qkv, ld, kcol, d0 + T, end);
            load_tile_swz<T, HD, NTHR>(Vs + T * HD, qkv, ld, vcol, d0 + T, end);
        }
        cp_async_commit();
    }
}

/* Step t of a query-side kernel's loop over key tiles (kt its first key): stage t made ready
 * and the next copies queued (two stages: tile t + 1's, then the wait; three: the wait, then
 * tile t + 2's). kv_step_end closes the step. */
template <int HD, int S>
__device__ __forceinline__ void kv_step(bf16 *Ks, bf16 *Vs, const bf16 *qkv, size_t ld, int kcol,
                                        int vcol, int t, int n_kt, int kt, int end) {
    if constexpr (S == 2) {
        if (t + 1 < n_kt) {
            const int nb = (t + 1) & 1;
            load_tile_swz<T, HD, NTHR>(Ks + nb * T * HD, qkv, ld, kcol, kt + T, end);
            load_tile_swz<T, HD, NTHR>(Vs + nb * T * HD, qkv, ld, vcol, kt + T, end);
            cp_async_commit();
            stage_ready<1>();
        } else {
            stage_ready<0>();
        }
    } else {
        stage_ready<1>();
        if (t + 2 < n_kt) {
            const int nb = (t + 2) % 3;
            load_tile_swz<T, HD, NTHR>(Ks + nb * T * HD, qkv, ld, kcol, kt + 2 * T, end);
            load_tile_swz<T, HD, NTHR>(Vs + nb * T * HD, qkv, ld, vcol, kt + 2 * T, end);
        }
        cp_async_commit(); /* possibly empty: every step commits one group */
    }
}
template <int S>
__device__ __forceinline__ void kv_step_end() {
    if constexpr (S == 2) __syncthreads(); /* stage t & 1 is refilled by the next step's copies */
}

/* Whether the key tile from kt reaches the warpgroup's rows from wq0: some key precedes some
 * row, and the warpgroup holds a document row (its first one is before the tile's end). */
__device__ __forceinline__ bool wg_sees(int kt, int wq0, int end) {
    return kt <= wq0 + T - 1 && wq0 < end;
}

/* One pass of the backward that keeps dS: query heads [h_lo, h_hi), their slots from ds (16-byte
 * units, SLOT per slot, `slots` per head), and the float32 dk, dv of groups split between passes
 * (part, [n][KV][2 HD]). */
struct ds_pass {
    uint4 *ds;
    float *part;
    int h_lo, h_hi, slots;
};
constexpr int SLOT = ATTN_TILE * ATTN_TILE * 2 / 16; /* 16-byte units per slot */
static_assert(SLOT * 16 == ATTN_DS_SLOT_BYTES, "a slot is a 64 x 64 bf16 block");

/* The slot of query block a (its first query 64 a after the document's), key block b <= a. */
__device__ __forceinline__ size_t ds_slot(const ds_pass &p, int h, int doc_slot0, int a, int b) {
    return ((size_t)(h - p.h_lo) * p.slots + doc_slot0 + a * (a + 1) / 2 + b) * SLOT;
}

/* The warp's index in its warpgroup, and the thread's lane. */
__device__ __forceinline__ int wg_warp() { return (threadIdx.x >> 5) & 3; }
__device__ __forceinline__ int lane_id() { return threadIdx.x & 31; }

/* dS^T's A fragments (a warpgroup's 64 keys x 64 queries) into the slot at `slot`: this warp's
 * 16 keys, query k-step j at [warp][j][lane]. */
__device__ __forceinline__ void store_slot(uint4 *slot, const uint32_t (&da)[T / 16][4]) {
    uint4 *dst = slot + wg_warp() * 4 * 32 + lane_id();
#pragma unroll
    for (int j = 0; j < T / 16; j++) dst[j * 32] = make_uint4(da[j][0], da[j][1], da[j][2], da[j][3]);
}

/* The 8 x 8 bf16 block whose fragment the warp holds, transposed (each thread's word of it). */
__device__ __forceinline__ uint32_t transpose8x8(uint32_t x) {
    uint32_t y;
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
    return y;
}

/* Rows ka and ka + 8 (each when < end) of dk and dv stored to (STORE) or added from the float32
 * partials of kv group g, in the accumulators' own layout. */
template <int HD, bool STORE>
__device__ __forceinline__ void part_rows(float *part, int KV, int g, int ka, int end,
                                          float (&dk)[HD / 8][4], float (&dv)[HD / 8][4]) {
    const int tq = threadIdx.x & 3;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = ka + 8 * r;
        if (row >= end) continue;
        float2 *p = reinterpret_cast<float2 *>(part + ((size_t)row * KV + g) * 2 * HD) + tq;
#pragma unroll
        for (int dt = 0; dt < HD / 8; dt++) {
            if constexpr (STORE) {
                p[dt * 4] = make_float2(dk[dt][2 * r], dk[dt][2 * r + 1]);
                p[HD / 2 + dt * 4] = make_float2(dv[dt][2 * r], dv[dt][2 * r + 1]);
            } else {
                const float2 k = p[dt * 4], v = p[HD / 2 + dt * 4];
                dk[dt][2 * r] += k.x, dk[dt][2 * r + 1] += k.y;
                dv[dt][2 * r] += v.x, dv[dt][2 * r + 1] += v.y;
            }
        }
    }
}

} // namespace

/* ---- forward -------------------------------------------------------------------------------------- */

template <int HD>
__global__ void __launch_bounds__(NTHR, 2)
    attn_fwd_wg_kernel(bf16 *out, float *lse, const bf16 *qkv, const int *tiles, int n, int H,
                       int KV, float scale_log2) {
    constexpr int TE = T * HD, S = q_stages<HD, true>(); /* elements per 64-row tile */
    bf16 *Qs = smem_base(), *Ks = Qs + 2 * TE, *Vs = Ks + S * TE; /* Q; K, V in S stages */

    const int *tl = tiles + ATTN_TILE_INTS * blockIdx.x;
    const int r0 = tl[0], r1 = tl[1], d0 = tl[2];
    const int h = blockIdx.y, g = h / (H / KV);
    const size_t ld = (size_t)(H + 2 * KV) * HD;
    const int wq0 = r0 + wg_index() * T; /* the warpgroup's first row */
    const int ra = wq0 + wg_row();      /* the thread's rows ra, ra + 8 */
    const int n_kt = (r1 - 1 - d0) / T + 1;

    load_tile_swz<BM, HD, NTHR>(Qs, qkv, ld, h * HD, r0, r1);
    kv_prologue<HD, S>(Ks, Vs, qkv, ld, (H + g) * HD, (H + KV + g) * HD, n_kt, d0, r1);

    float o[HD / 8][4];
    zero(o);
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
    for (int t = 0; t < n_kt; t++) {
        const int kt = d0 + t * T;
        kv_step<HD, S>(Ks, Vs, qkv, ld, (H + g) * HD, (H + KV + g) * HD, t, n_kt, kt, r1);
        if (wg_sees(kt, wq0, r1)) {
            const bf16 *Kb = Ks + (t % S) * TE, *Vb = Vs + (t % S) * TE;
            float s[T / 8][4]; /* the first k-step overwrites (scale_d = 0) */
            wgmma_fence();
            product_abt<HD, BM>(s, Qs, wg_index() * T, Kb);
            wgmma_commit();
            wgmma_wait<0>();
            fence_regs(s);
            if (kt + T > wq0) mask_causal<T / 8>(s, kt, ra);
            softmax_step<T / 8, HD / 8>(s, o, m_a, m_b, l_a, l_b, scale_log2);
            uint32_t pa[T / 16][4];
            to_a<T / 8>(pa, s);
            wgmma_fence();
            product_pm<HD>(o, pa, Vb);
            wgmma_commit();
            wgmma_wait<0>();
            fence_regs(o);
            fence_regs(pa);
        }
        kv_step_end<S>();
    }
    softmax_finish<HD>(out, lse, n, H, h, ra, r1, o, m_a, m_b, l_a, l_b);
}

/* ---- backward: dq (query side) ---------------------------------------------------------------- */

template <int HD>
__global__ void __launch_bounds__(NTHR, HD == 64 ? 2 : 1)
    attn_dq_wg_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                      const float *delta, const int *tiles, int n, int H, int KV, float scale,
                      float scale_log2) {
    constexpr int TE = T * HD, S = q_stages<HD, false>();
    bf16 *Qs = smem_base(), *dOs = Qs + 2 * TE, *Ks = dOs + 2 * TE, *Vs = Ks + S * TE;

    const int *tl = tiles + ATTN_TILE_INTS * blockIdx.x;
    const int r0 = tl[0], r1 = tl[1], d0 = tl[2];
    const int h = blockIdx.y, g = h / (H / KV);
    const size_t ld = (size_t)(H + 2 * KV) * HD;
    const int wq0 = r0 + wg_index() * T;
    const int ra = wq0 + wg_row(); /* the thread's rows ra, ra + 8 */
    const int n_kt = (r1 - 1 - d0) / T + 1;

    load_tile_swz<BM, HD, NTHR>(Qs, qkv, ld, h * HD, r0, r1);
    load_tile_swz<BM, HD, NTHR>(dOs, dout, (size_t)H * HD, h * HD, r0, r1);
    kv_prologue<HD, S>(Ks, Vs, qkv, ld, (H + g) * HD, (H + KV + g) * HD, n_kt, d0, r1);
    const row_stats st = load_row_stats(lse, delta, n, h, ra, r1);

    float dq[HD / 8][4];
    zero(dq);
    for (int t = 0; t < n_kt; t++) {
        const int kt = d0 + t * T;
        kv_step<HD, S>(Ks, Vs, qkv, ld, (H + g) * HD, (H + KV + g) * HD, t, n_kt, kt, r1);
        if (wg_sees(kt, wq0, r1)) {
            const bf16 *Kb = Ks + (t % S) * TE, *Vb = Vs + (t % S) * TE;
            float p[T / 8][4], dp[T / 8][4]; /* the first k-step overwrites */
            wgmma_fence();
            product_abt<HD, BM>(p, Qs, wg_index() * T, Kb);
            product_abt<HD, BM>(dp, dOs, wg_index() * T, Vb);
            wgmma_commit();
            wgmma_wait<0>();
            fence_regs(p);
            fence_regs(dp);
            if (kt + T > wq0) mask_causal<T / 8>(p, kt, ra);
            ds_query_rows<T / 8>(dp, p, scale_log2, st);
            uint32_t da[T / 16][4];
            to_a<T / 8>(da, dp);
            wgmma_fence();
            product_pm<HD>(dq, da, Kb);
            wgmma_commit();
            wgmma_wait<0>();
            fence_regs(dq);
            fence_regs(da);
        }
        kv_step_end<S>();
    }
    store_rows<HD>(dqkv, ld, h * HD, ra, r1, dq, scale, scale);
}

/* ---- backward: dk, dv (key side) ---------------------------------------------------------------
 * For the 128 key rows of a tile and one kv head: for every query head of its group (of the
 * pass's, with DS) and every block of 64 queries from the tile's first key to the document's
 * end. DS: also writes the steps' dS to their slots. */

template <int HD, bool DS>
__global__ void __launch_bounds__(NTHR)
    attn_dkv_wg_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                       const float *delta, const int *tiles, int n, int H, int KV, float scale,
                       float scale_log2, ds_pass pass) {
    constexpr int TE = T * HD, S = KV_STAGES;
    bf16 *Ks = smem_base(), *Vs = Ks + 2 * TE, *Qs = Vs + 2 * TE, *dOs = Qs + S * TE;
    float *Ls = reinterpret_cast<float *>(dOs + S * TE); /* [S][T] lse */
    float *Ds = Ls + S * T;                             /* [S][T] delta */

    const int *tl = tiles + ATTN_TILE_INTS * blockIdx.x;
    const int k0 = tl[0], k1 = tl[1], d0 = tl[2], d1 = tl[3], doc_slot0 = tl[4];
    const int g = blockIdx.y, G = H / KV;
    /* the group's heads in this pass */
    const int h0 = max(g * G, pass.h_lo), h1 = min(g * G + G, pass.h_hi);
    if (h0 >= h1) return;
    const size_t ld = (size_t)(H + 2 * KV) * HD, ldo = (size_t)H * HD;
    const int wk0 = k0 + wg_index() * T; /* the warpgroup's first key */
    const int ka = wk0 + wg_row();      /* the thread's keys ka, ka + 8 */
    const int nq = (d1 - k0 + T - 1) / T; /* query blocks per head */
    const int n_it = (h1 - h0) * nq;

    /* stage `it` of the (head, query block) sequence into buffer `buf` */
    auto prefetch = [&](int it, int buf) {
        const int h = h0 + it / nq, qt = k0 + (it % nq) * T;
        load_tile_swz<T, HD, NTHR>(Qs + buf * TE, qkv, ld, h * HD, qt, d1);
        load_tile_swz<T, HD, NTHR>(dOs + buf * TE, dout, ldo, h * HD, qt, d1);
        stage_query_stats(Ls + buf * T, Ds + buf * T, lse, delta, n, h, qt, T, d1);
    };

    load_tile_swz<BM, HD, NTHR>(Ks, qkv, ld, (H + g) * HD, k0, k1);
    load_tile_swz<BM, HD, NTHR>(Vs, qkv, ld, (H + KV + g) * HD, k0, k1);
    prefetch(0, 0);
    cp_async_commit();
    if (n_it > 1) prefetch(1, 1);
    cp_async_commit();

    float dk[HD / 8][4], dv[HD / 8][4];
    zero(dk);
    zero(dv);
    uint32_t pa[T / 16][4] = {}, da[T / 16][4] = {}; /* read by dV, dK until the next wait */
    /* DS: the slot of the dS that da holds, written after the next wait, not before the
     * products: a store that reads the A registers of a product in flight stalls until the
     * product has read them, and the next step's products would wait behind it (25% slower) */
    uint4 *ds_at = nullptr;
    for (int it = 0; it < n_it; it++) {
        const int qt = k0 + (it % nq) * T;
        const int buf = it % KV_STAGES;
        /* stage it has landed (one group, stage it + 1's, may be in flight) */
        stage_ready<1>();
        if (it + 2 < n_it) prefetch(it + 2, (it + 2) % KV_STAGES);
        cp_async_commit(); /* possibly empty: every step commits one group */
        /* some query of the step follows some key of the warpgroup's, which holds a document row */
        if (qt + T - 1 >= wk0 && wk0 < k1) {
            const bf16 *Qb = Qs + buf * TE, *dOb = dOs + buf * TE;
            const float *Lb = Ls + buf * T, *Db = Ds + buf * T;
            float p[T / 8][4], ds[T / 8][4]; /* the first k-step overwrites */
            wgmma_fence();
            product_abt<HD, BM>(p, Ks, wg_index() * T, Qb);  /* S^T: keys x queries */
            product_abt<HD, BM>(ds, Vs, wg_index() * T, dOb); /* dP^T */
            wgmma_commit();
            wgmma_wait<0>(); /* also the previous step's dV, dK: pa, da are free */
            fence_regs(p);
            fence_regs(ds);
            fence_regs(pa);
            fence_regs(da);
            if (DS && ds_at) store_slot(ds_at, da);
            /* masked where a query precedes a key or lies past the document's end */
            if (qt < wk0 + T - 1 || qt + T > d1) mask_causal_t<T / 8>(p, qt, ka, d1);
            ds_query_cols<T / 8>(p, ds, scale_log2, Lb, Db);
            to_a<T / 8>(pa, p);
            to_a<T / 8>(da, ds);
            if constexpr (DS)
                ds_at = pass.ds +
                        ds_slot(pass, h0 + it / nq, doc_slot0, (qt - d0) / T, (wk0 - d0) / T);
            wgmma_fence();
            product_pm<HD>(dv, pa, dOb);
            product_pm<HD>(dk, da, Qb);
            wgmma_commit();
        }
    }
    wgmma_wait<0>();
    fence_regs(dv);
    fence_regs(dk);
    fence_regs(pa);
    fence_regs(da);
    if (DS && ds_at) store_slot(ds_at, da);
    /* a group split between passes: the earlier passes' sum joins this one's at the end (the
     * accumulators cannot start from it: loads into them make ptxas serialize every wgmma of
     * the kernel, C7515) */
    if (DS && h0 > g * G) part_rows<HD, false>(pass.part, KV, g, ka, k1, dk, dv);
    if (DS && h1 < g * G + G) { /* the group's later heads come in a later pass */
        part_rows<HD, true>(pass.part, KV, g, ka, k1, dk, dv);
        return;
    }
    store_rows<HD>(dqkv, ld, (H + g) * HD, ka, k1, dk, scale, scale);
    store_rows<HD>(dqkv, ld, (H + KV + g) * HD, ka, k1, dv, 1.0f, 1.0f);
}

/* ---- backward: dq from the kept dS (query side) ------------------------------------------------
 * For the 128 query rows of a tile and one head of the pass: dq = scale sum_b dS_b K_b over the
 * key blocks b from the document's first, in order. The slots come from memory, not L2, so they
 * are queued further ahead than the key tiles: four stages of them, filled by bulk copies (one
 * instruction a slot) that complete on a per-stage mbarrier, three steps ahead; the key tiles
 * (swizzled, from L2) take two cp.async stages, one step ahead. */

constexpr int DQ_K_STAGES = 2, DQ_DS_STAGES = 4;

__device__ __forceinline__ void mbar_init(uint64_t *bar) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(smem_u32(bar)) : "memory");
}
/* The one arrival of the stage's phase, expecting `bytes` from its copies. */
__device__ __forceinline__ void mbar_expect(uint64_t *bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)),
                 "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t *bar, uint32_t parity) {
    asm volatile("{\n.reg .pred p;\nWAIT%=:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
                 "@!p bra WAIT%=;\n}\n" ::"r"(smem_u32(bar)),
                 "r"(parity)
                 : "memory");
}
/* A bulk copy of `bytes` (a multiple of 16) from global to shared memory, counted on bar. */
__device__ __forceinline__ void bulk_load(void *dst, const void *src, uint32_t bytes,
                                          uint64_t *bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], "
                 "%2, [%3];\n" ::"r"(smem_u32(dst)),
                 "l"(src), "r"(bytes), "r"(smem_u32(bar))
                 : "memory");
}

template <int HD>
__global__ void __launch_bounds__(NTHR, 2)
    attn_dq_ds_wg_kernel(bf16 *dqkv, const bf16 *qkv, const int *tiles, int H, int KV,
                         float scale, ds_pass pass) {
    constexpr int TE = T * HD, SK = DQ_K_STAGES, SD = DQ_DS_STAGES;
    bf16 *Ks = smem_base();
    uint4 *Dss = reinterpret_cast<uint4 *>(Ks + SK * TE); /* [SD][2 warpgroups][SLOT] */
    uint64_t *bars = reinterpret_cast<uint64_t *>(Dss + SD * 2 * SLOT); /* [SD] */

    const int *tl = tiles + ATTN_TILE_INTS * blockIdx.x;
    const int r0 = tl[0], r1 = tl[1], d0 = tl[2], doc_slot0 = tl[4];
    const int h = pass.h_lo + blockIdx.y, g = h / (H / KV);
    const size_t ld = (size_t)(H + 2 * KV) * HD;
    const int wq0 = r0 + wg_index() * T;
    const int ra = wq0 + wg_row(); /* the thread's rows ra, ra + 8 */
    const int n_kt = (r1 - 1 - d0) / T + 1;
    const int a0 = (r0 - d0) / T; /* warpgroup w's query block: a0 + w */

    /* thread 0: step t's slots (a0 + w, t) of the warpgroups that see it, into stage t % SD */
    auto queue_slots = [&](int t) {
        uint64_t *bar = bars + t % SD;
        const int seen = wg_sees(d0 + t * T, r0, r1) + wg_sees(d0 + t * T, r0 + T, r1);
        fence_proxy_async(); /* the stage's last reads (generic) before the copies' writes */
        mbar_expect(bar, seen * ATTN_DS_SLOT_BYTES);
        for (int w = 0; w < 2; w++)
            if (wg_sees(d0 + t * T, r0 + w * T, r1))
                bulk_load(Dss + (t % SD * 2 + w) * SLOT,
                          pass.ds + ds_slot(pass, h, doc_slot0, a0 + w, t), ATTN_DS_SLOT_BYTES,
                          bar);
    };
    if (threadIdx.x == 0) {
        for (int i = 0; i < SD; i++) mbar_init(bars + i);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    load_tile_swz<T, HD, NTHR>(Ks, qkv, ld, (H + g) * HD, d0, r1);
    cp_async_commit();
    __syncthreads(); /* the barriers are initialised */
    if (threadIdx.x == 0)
        for (int t = 0; t < SD - 1 && t < n_kt; t++) queue_slots(t);

    float dq[HD / 8][4];
    zero(dq);
    for (int t = 0; t < n_kt; t++) {
        stage_ready<0>(); /* step t's key tile has landed; every thread is past step t - 1 */
        if (t + 1 < n_kt)
            load_tile_swz<T, HD, NTHR>(Ks + (t + 1) % SK * TE, qkv, ld, (H + g) * HD,
                                       d0 + (t + 1) * T, r1);
        cp_async_commit();
        if (threadIdx.x == 0 && t + SD - 1 < n_kt) queue_slots(t + SD - 1);
        if (wg_sees(d0 + t * T, wq0, r1)) {
            mbar_wait(bars + t % SD, (t / SD) & 1);
            /* dS's A fragments for k-step j (keys 16 j ..): the writer's warp j held those keys
             * and its k-step wg_warp() our queries; its four 8 x 8 blocks come transposed and
             * in the other order of the two off-diagonal ones */
            const uint4 *src = Dss + (t % SD * 2 + wg_index()) * SLOT + wg_warp() * 32 + lane_id();
            uint32_t da[T / 16][4];
#pragma unroll
            for (int j = 0; j < T / 16; j++) {
                const uint4 v = src[j * 4 * 32];
                da[j][0] = transpose8x8(v.x);
                da[j][1] = transpose8x8(v.z);
                da[j][2] = transpose8x8(v.y);
                da[j][3] = transpose8x8(v.w);
            }
            wgmma_fence();
            product_pm<HD>(dq, da, Ks + t % SK * TE);
            wgmma_commit();
            wgmma_wait<0>();
            fence_regs(dq);
            fence_regs(da);
        }
    }
    store_rows<HD>(dqkv, ld, h * HD, ra, r1, dq, scale, scale);
}

/* ---- launchers ------------------------------------------------------------------------------------- */

template <int HD>
static void fwd(bf16 *out, float *lse, const bf16 *qkv, const attn_shape *a, cudaStream_t s) {
    constexpr int smem = tile_bytes<HD>(BM + 2 * q_stages<HD, true>() * T) + 1024;
    attn_set_smem(attn_fwd_wg_kernel<HD>, smem);
    attn_fwd_wg_kernel<HD><<<dim3(a->n_tiles, a->n_heads), NTHR, smem, s>>>(
        out, lse, qkv, a->tiles_q, a->n, a->n_heads, a->n_kv_heads, a->scale * LOG2E);
    LAUNCH_CHECK();
}

/* All heads if they fit the scratch, else whole kv groups, else fewer heads beside the
 * partials; 0: too little scratch (recompute). The passes are evened out: 12 heads in 5s run as
 * 4, 4, 4. At head_dim 64 dS is always recomputed: keeping it measured no faster there (H200,
 * 0.5B shape, 4 x 4096: 1.015 against 1.017 ms), while the slots cost as much as at 128. */
extern "C" int attn_ds_heads_per_pass(const attn_shape *a) {
    const int H = a->n_heads, G = H / a->n_kv_heads;
    const size_t head = (size_t)a->ds_slots * ATTN_DS_SLOT_BYTES;
    if (!a->ds_scratch || head == 0 || a->head_dim != 128 || a->impl == ATTN_MMA ||
        a->impl == ATTN_SIMPLE)
        return 0; /* the mma.sync and simple backwards always recompute dS */
    const size_t cap = a->ds_max_heads > 0 ? (size_t)a->ds_max_heads : (size_t)H;
    const size_t fit = std::min(a->ds_scratch_bytes / head, cap);
    int unit = G; /* heads per pass come in whole groups, or one by one beside the partials */
    size_t units = fit / G;
    if (units == 0) {
        const size_t part = attn_ds_partial_bytes(a->n, a->n_kv_heads, a->head_dim);
        if (a->ds_scratch_bytes < part + head) return 0;
        unit = 1;
        units = std::min((a->ds_scratch_bytes - part) / head, cap);
    }
    const int total = H / unit, per = units < (size_t)total ? (int)units : total;
    const int passes = (total + per - 1) / per;
    return (total + passes - 1) / passes * unit;
}

template <int HD>
static void bwd(bf16 *dqkv, const float *delta, const bf16 *dout, const bf16 *qkv,
                const float *lse, const attn_shape *a, cudaStream_t s) {
    constexpr int smem_q = tile_bytes<HD>(2 * BM + 2 * q_stages<HD, false>() * T) + 1024;
    constexpr int smem_kv =
        tile_bytes<HD>(2 * BM + 2 * KV_STAGES * T) + 2 * KV_STAGES * T * (int)sizeof(float) + 1024;
    constexpr int smem_dq_ds = DQ_K_STAGES * tile_bytes<HD>(T) +
                               DQ_DS_STAGES * (2 * ATTN_DS_SLOT_BYTES + 8) + 1024;
    const int H = a->n_heads, KV = a->n_kv_heads, per = attn_ds_heads_per_pass(a);
    if (per == 0) {
        attn_set_smem(attn_dq_wg_kernel<HD>, smem_q);
        attn_dq_wg_kernel<HD><<<dim3(a->n_tiles, H), NTHR, smem_q, s>>>(
            dqkv, dout, qkv, lse, delta, a->tiles_q, a->n, H, KV, a->scale, a->scale * LOG2E);
        LAUNCH_CHECK();
        attn_set_smem(attn_dkv_wg_kernel<HD, false>, smem_kv);
        attn_dkv_wg_kernel<HD, false><<<dim3(a->n_tiles, KV), NTHR, smem_kv, s>>>(
            dqkv, dout, qkv, lse, delta, a->tiles_kv, a->n, H, KV, a->scale, a->scale * LOG2E,
            ds_pass{NULL, NULL, 0, H, 0});
        LAUNCH_CHECK();
        return;
    }
    /* the partials (when a group is split) first, dS after them */
    const bool split = per % (H / KV) != 0;
    const size_t part = split ? attn_ds_partial_bytes(a->n, KV, HD) : 0;
    char *base = static_cast<char *>(a->ds_scratch);
    attn_set_smem(attn_dkv_wg_kernel<HD, true>, smem_kv);
    attn_set_smem(attn_dq_ds_wg_kernel<HD>, smem_dq_ds);
    for (int h_lo = 0; h_lo < H; h_lo += per) {
        const ds_pass p{reinterpret_cast<uint4 *>(base + part), reinterpret_cast<float *>(base),
                        h_lo, h_lo + per < H ? h_lo + per : H, a->ds_slots};
        attn_dkv_wg_kernel<HD, true><<<dim3(a->n_tiles, KV), NTHR, smem_kv, s>>>(
            dqkv, dout, qkv, lse, delta, a->tiles_kv, a->n, H, KV, a->scale, a->scale * LOG2E, p);
        LAUNCH_CHECK();
        attn_dq_ds_wg_kernel<HD><<<dim3(a->n_tiles, p.h_hi - p.h_lo), NTHR, smem_dq_ds, s>>>(
            dqkv, qkv, a->tiles_q, H, KV, a->scale, p);
        LAUNCH_CHECK();
    }
}

void attention_forward_wgmma(bf16 *out, float *lse, const bf16 *qkv, const attn_shape *a,
                             cudaStream_t s) {
    CHECK(aligned16(out) && a->tile_rows == BM);
    if (a->head_dim == 64)
        fwd<64>(out, lse, qkv, a, s);
    else
        fwd<128>(out, lse, qkv, a, s);
}

void attention_backward_wgmma(bf16 *dqkv, const float *delta, const bf16 *dout, const bf16 *qkv,
                              const float *lse, const attn_shape *a, cudaStream_t s) {
    CHECK(aligned16(dqkv) && aligned16(dout) && a->tile_rows == BM);
    if (a->head_dim == 64)
        bwd<64>(dqkv, delta, dout, qkv, lse, a, s);
    else
        bwd<128>(dqkv, delta, dout, qkv, lse, a, s);
}
