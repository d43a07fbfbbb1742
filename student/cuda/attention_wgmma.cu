/* Causal flash attention on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a) for
 * head_dim 64 and 128: the algorithm of attention_mma.cu (read it first; same tiles, same
 * fixed-order sums, same base-2 softmax), with each block one warpgroup whose products read
 * their shared operands directly (wgmma.cuh).
 *
 * A block owns a 64-row tile (queries in the forward and dq kernels, keys in the dk/dv kernel)
 * and streams 64-row tiles of the other side through two shared stages (cp.async, swizzled).
 * Per step, for the block's 64 rows against the step's 64 rows:
 *   forward   S = Q K^T (A, B both from shared, K-major); P = softmax step; O += P V (A = P
 *             from registers, B = V used MN-major)
 *   dq        S = Q K^T, dP = dO V^T; dS = P (dP - delta); dQ += dS K (K used MN-major)
 *   dk, dv    S^T = K Q^T, dP^T = V dO^T; dV += P^T dO, dK += dS^T Q (Q, dO used MN-major)
 * P and dS never leave registers: a product's accumulator is the next product's A operand. */
#include "student/cuda/attention.cuh"
#include "student/cuda/attention_frag.cuh"
#include "student/cuda/wgmma.cuh"

namespace {

constexpr int T = ATTN_TILE; /* rows per tile on both sides */
static_assert(T == 64, "a warpgroup's product has 64 rows");

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

/* acc = A B^T over HD columns: rows of both A and B (64 each) are K-major swizzled tiles. */
template <int HD>
__device__ __forceinline__ void product_abt(float (&acc)[T / 8][4], const bf16 *A, const bf16 *B) {
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
        wgmma_ss<0>(acc, desc_kmajor<T>(A, kk), desc_kmajor<T>(B, kk), kk > 0);
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

template <int HD>
constexpr int tile_bytes() {
    return T * HD * (int)sizeof(bf16);
}

} // namespace

/* ---- forward -------------------------------------------------------------------------------------- */

template <int HD>
__global__ void __launch_bounds__(128)
    attn_fwd_wg_kernel(bf16 *out, float *lse, const bf16 *qkv, const int *tiles, int n, int H,
                       int KV, float scale_log2) {
    constexpr int TE = T * HD; /* elements per tile */
    bf16 *Qs = smem_base(), *Ks = Qs + TE, *Vs = Ks + 2 * TE; /* Q; K, V in two stages */

    const int *tl = tiles + 4 * blockIdx.x;
    const int r0 = tl[0], r1 = tl[1], d0 = tl[2];
    const int h = blockIdx.y, g = h / (H / KV);
    const size_t ld = (size_t)(H + 2 * KV) * HD;
    const int ra = r0 + (threadIdx.x >> 5) * 16 + ((threadIdx.x & 31) >> 2); /* rows ra, ra + 8 */
    const int n_kt = (r1 - 1 - d0) / T + 1;

    load_tile_swz<T, HD>(Qs, qkv, ld, h * HD, r0, r1);
    load_tile_swz<T, HD>(Ks, qkv, ld, (H + g) * HD, d0, r1);
    load_tile_swz<T, HD>(Vs, qkv, ld, (H + KV + g) * HD, d0, r1);
    cp_async_commit();

    float o[HD / 8][4];
    zero(o);
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
    for (int t = 0; t < n_kt; t++) {
        const int kt = d0 + t * T;
        if (t + 1 < n_kt) {
            const int nb = (t + 1) & 1;
            load_tile_swz<T, HD>(Ks + nb * TE, qkv, ld, (H + g) * HD, kt + T, r1);
            load_tile_swz<T, HD>(Vs + nb * TE, qkv, ld, (H + KV + g) * HD, kt + T, r1);
            cp_async_commit();
            stage_ready<1>();
        } else {
            stage_ready<0>();
        }
        const bf16 *Kb = Ks + (t & 1) * TE, *Vb = Vs + (t & 1) * TE;

        float s[T / 8][4];
        zero(s);
        wgmma_fence();
        product_abt<HD>(s, Qs, Kb);
        wgmma_commit();
        wgmma_wait<0>();
        fence_regs(s);
        if (kt + T > r0) mask_causal<T / 8>(s, kt, ra);
        softmax_step<T / 8, HD / 8>(s, o, m_a, m_b, l_a, l_b, scale_log2);
        uint32_t pa[T / 16][4];
        to_a<T / 8>(pa, s);
        wgmma_fence();
        product_pm<HD>(o, pa, Vb);
        wgmma_commit();
        wgmma_wait<0>();
        fence_regs(o);
        fence_regs(pa);
        __syncthreads(); /* stage t & 1 is refilled by the next iteration's prefetch */
    }
    softmax_finish<HD>(out, lse, n, H, h, ra, r1, o, m_a, m_b, l_a, l_b);
}

/* ---- backward: dq (query side) ---------------------------------------------------------------- */

template <int HD>
__global__ void __launch_bounds__(128)
    attn_dq_wg_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                      const float *delta, const int *tiles, int n, int H, int KV, float scale,
                      float scale_log2) {
    constexpr int TE = T * HD;
    bf16 *Qs = smem_base(), *dOs = Qs + TE, *Ks = dOs + TE, *Vs = Ks + 2 * TE;

    const int *tl = tiles + 4 * blockIdx.x;
    const int r0 = tl[0], r1 = tl[1], d0 = tl[2];
    const int h = blockIdx.y, g = h / (H / KV);
    const size_t ld = (size_t)(H + 2 * KV) * HD;
    const int ra = r0 + (threadIdx.x >> 5) * 16 + ((threadIdx.x & 31) >> 2), rb = ra + 8;
    const int n_kt = (r1 - 1 - d0) / T + 1;

    load_tile_swz<T, HD>(Qs, qkv, ld, h * HD, r0, r1);
    load_tile_swz<T, HD>(dOs, dout, (size_t)H * HD, h * HD, r0, r1);
    load_tile_swz<T, HD>(Ks, qkv, ld, (H + g) * HD, d0, r1);
    load_tile_swz<T, HD>(Vs, qkv, ld, (H + KV + g) * HD, d0, r1);
    cp_async_commit();
    const float lse_a = ra < r1 ? lse[(size_t)h * n + ra] * LOG2E : 0.0f;
    const float lse_b = rb < r1 ? lse[(size_t)h * n + rb] * LOG2E : 0.0f;
    const float dl_a = ra < r1 ? delta[(size_t)h * n + ra] : 0.0f;
    const float dl_b = rb < r1 ? delta[(size_t)h * n + rb] : 0.0f;

    float dq[HD / 8][4];
    zero(dq);
    for (int t = 0; t < n_kt; t++) {
        const int kt = d0 + t * T;
        if (t + 1 < n_kt) {
            const int nb = (t + 1) & 1;
            load_tile_swz<T, HD>(Ks + nb * TE, qkv, ld, (H + g) * HD, kt + T, r1);
            load_tile_swz<T, HD>(Vs + nb * TE, qkv, ld, (H + KV + g) * HD, kt + T, r1);
            cp_async_commit();
            stage_ready<1>();
        } else {
            stage_ready<0>();
        }
        const bf16 *Kb = Ks + (t & 1) * TE, *Vb = Vs + (t & 1) * TE;

        float p[T / 8][4], dp[T / 8][4];
        zero(p);
        zero(dp);
        wgmma_fence();
        product_abt<HD>(p, Qs, Kb);
        product_abt<HD>(dp, dOs, Vb);
        wgmma_commit();
        wgmma_wait<0>();
        fence_regs(p);
        fence_regs(dp);
        if (kt + T > r0) mask_causal<T / 8>(p, kt, ra);
#pragma unroll
        for (int nt = 0; nt < T / 8; nt++) {
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const float pv = ex2(fmaf(p[nt][c], scale_log2, -(c < 2 ? lse_a : lse_b)));
                dp[nt][c] = pv * (dp[nt][c] - (c < 2 ? dl_a : dl_b)); /* dS */
            }
        }
        uint32_t da[T / 16][4];
        to_a<T / 8>(da, dp);
        wgmma_fence();
        product_pm<HD>(dq, da, Kb);
        wgmma_commit();
        wgmma_wait<0>();
        fence_regs(dq);
        fence_regs(da);
        __syncthreads();
    }
    store_rows<HD>(dqkv, ld, h * HD, ra, r1, dq, scale, scale);
}

/* ---- backward: dk, dv (key side) ---------------------------------------------------------------
 * For the 64 key rows of a tile and one kv head: for every query head of its group and every
 * block of 64 queries from the tile's first key to the document's end. */

template <int HD>
__global__ void __launch_bounds__(128)
    attn_dkv_wg_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                       const float *delta, const int *tiles, int n, int H, int KV, float scale,
                       float scale_log2) {
    constexpr int TE = T * HD;
    bf16 *Ks = smem_base(), *Vs = Ks + TE, *Qs = Vs + TE, *dOs = Qs + 2 * TE;
    float *Ls = reinterpret_cast<float *>(dOs + 2 * TE); /* [2][T] lse * log2(e) */
    float *Ds = Ls + 2 * T;                             /* [2][T] delta */

    const int *tl = tiles + 4 * blockIdx.x;
    const int k0 = tl[0], k1 = tl[1], d1 = tl[3];
    const int g = blockIdx.y, G = H / KV;
    const size_t ld = (size_t)(H + 2 * KV) * HD, ldo = (size_t)H * HD;
    const int ka = k0 + (threadIdx.x >> 5) * 16 + ((threadIdx.x & 31) >> 2); /* keys ka, ka + 8 */
    const int tq = threadIdx.x & 3;
    const int nq = (d1 - k0 + T - 1) / T; /* query blocks per head */
    const int n_it = G * nq;

    /* stage `it` of the (head, query block) sequence into buffer `buf` */
    auto prefetch = [&](int it, int buf) {
        const int h = g * G + it / nq, qt = k0 + (it % nq) * T;
        load_tile_swz<T, HD>(Qs + buf * TE, qkv, ld, h * HD, qt, d1);
        load_tile_swz<T, HD>(dOs + buf * TE, dout, ldo, h * HD, qt, d1);
        for (int i = threadIdx.x; i < T; i += blockDim.x) {
            const bool ok = qt + i < d1;
            Ls[buf * T + i] = ok ? lse[(size_t)h * n + qt + i] * LOG2E : 0.0f;
            Ds[buf * T + i] = ok ? delta[(size_t)h * n + qt + i] : 0.0f;
        }
    };

    load_tile_swz<T, HD>(Ks, qkv, ld, (H + g) * HD, k0, k1);
    load_tile_swz<T, HD>(Vs, qkv, ld, (H + KV + g) * HD, k0, k1);
    prefetch(0, 0);
    cp_async_commit();

    float dk[HD / 8][4], dv[HD / 8][4];
    zero(dk);
    zero(dv);
    for (int it = 0; it < n_it; it++) {
        const int qt = k0 + (it % nq) * T;
        const int buf = it & 1;
        if (it + 1 < n_it) {
            prefetch(it + 1, buf ^ 1);
            cp_async_commit();
            stage_ready<1>();
        } else {
            stage_ready<0>();
        }
        const bf16 *Qb = Qs + buf * TE, *dOb = dOs + buf * TE;
        const float *Lb = Ls + buf * T, *Db = Ds + buf * T;

        float p[T / 8][4], ds[T / 8][4];
        zero(p);
        zero(ds);
        wgmma_fence();
        product_abt<HD>(p, Ks, Qb);  /* S^T: keys x queries */
        product_abt<HD>(ds, Vs, dOb); /* dP^T */
        wgmma_commit();
        wgmma_wait<0>();
        fence_regs(p);
        fence_regs(ds);
        /* masked where a query precedes a key or lies past the document's end */
        if (qt < k0 + T - 1 || qt + T > d1) mask_causal_t<T / 8>(p, qt, ka, d1);
#pragma unroll
        for (int nt = 0; nt < T / 8; nt++) {
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const int qi = nt * 8 + tq * 2 + (c & 1);
                const float pv = ex2(fmaf(p[nt][c], scale_log2, -Lb[qi]));
                p[nt][c] = pv;
                ds[nt][c] = pv * (ds[nt][c] - Db[qi]);
            }
        }
        uint32_t pa[T / 16][4], da[T / 16][4];
        to_a<T / 8>(pa, p);
        to_a<T / 8>(da, ds);
        wgmma_fence();
        product_pm<HD>(dv, pa, dOb);
        product_pm<HD>(dk, da, Qb);
        wgmma_commit();
        wgmma_wait<0>();
        fence_regs(dv);
        fence_regs(dk);
        fence_regs(pa);
        fence_regs(da);
        __syncthreads();
    }
    store_rows<HD>(dqkv, ld, (H + g) * HD, ka, k1, dk, scale, scale);
    store_rows<HD>(dqkv, ld, (H + KV + g) * HD, ka, k1, dv, 1.0f, 1.0f);
}

/* ---- launchers ------------------------------------------------------------------------------------- */

template <typename K>
static void launch_prep(K kernel, int bytes) {
    R1_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

template <int HD>
static void fwd(bf16 *out, float *lse, const bf16 *qkv, const attn_shape *a, cudaStream_t s) {
    constexpr int smem = 5 * tile_bytes<HD>() + 1024;
    launch_prep(attn_fwd_wg_kernel<HD>, smem);
    attn_fwd_wg_kernel<HD><<<dim3(a->n_tiles, a->n_heads), 128, smem, s>>>(
        out, lse, qkv, a->tiles_q, a->n, a->n_heads, a->n_kv_heads, a->scale * LOG2E);
    LAUNCH_CHECK();
}

template <int HD>
static void bwd(bf16 *dqkv, const float *delta, const bf16 *dout, const bf16 *qkv,
                const float *lse, const attn_shape *a, cudaStream_t s) {
    constexpr int smem_q = 6 * tile_bytes<HD>() + 1024;
    constexpr int smem_kv = 6 * tile_bytes<HD>() + 4 * T * (int)sizeof(float) + 1024;
    launch_prep(attn_dq_wg_kernel<HD>, smem_q);
    attn_dq_wg_kernel<HD><<<dim3(a->n_tiles, a->n_heads), 128, smem_q, s>>>(
        dqkv, dout, qkv, lse, delta, a->tiles_q, a->n, a->n_heads, a->n_kv_heads, a->scale,
        a->scale * LOG2E);
    LAUNCH_CHECK();
    launch_prep(attn_dkv_wg_kernel<HD>, smem_kv);
    attn_dkv_wg_kernel<HD><<<dim3(a->n_tiles, a->n_kv_heads), 128, smem_kv, s>>>(
        dqkv, dout, qkv, lse, delta, a->tiles_kv, a->n, a->n_heads, a->n_kv_heads, a->scale,
        a->scale * LOG2E);
    LAUNCH_CHECK();
}

void attention_forward_wgmma(bf16 *out, float *lse, const bf16 *qkv, const attn_shape *a,
                             cudaStream_t s) {
    CHECK(aligned16(out));
    if (a->head_dim == 64)
        fwd<64>(out, lse, qkv, a, s);
    else
        fwd<128>(out, lse, qkv, a, s);
}

void attention_backward_wgmma(bf16 *dqkv, const float *delta, const bf16 *dout, const bf16 *qkv,
                              const float *lse, const attn_shape *a, cudaStream_t s) {
    CHECK(aligned16(dqkv) && aligned16(dout));
    if (a->head_dim == 64)
        bwd<64>(dqkv, delta, dout, qkv, lse, a, s);
    else
        bwd<128>(dqkv, delta, dout, qkv, lse, a, s);
}
