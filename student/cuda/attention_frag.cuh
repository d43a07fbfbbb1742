/* Register-fragment helpers shared by the tensor-core attention kernels (attention_mma.cu,
 * attention_wgmma.cu). A thread's scores live in the C-fragment layout of 16 x 8 blocks (rows
 * lane / 4 and lane / 4 + 8 of the warp's 16, columns 2 (lane % 4) + 0, 1 of each block). */
#ifndef R1_STUDENT_CUDA_ATTENTION_FRAG_CUH
#define R1_STUDENT_CUDA_ATTENTION_FRAG_CUH

#include "student/cuda/common.cuh"

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

/* A fragments of a 16 x 16 slice (columns 16 j .. 16 j + 15) of a 16 x (8 NT) C-fragment array,
 * rounded to bf16. */
template <int NT>
__device__ __forceinline__ void c_to_a(uint32_t a[4], const float (&c)[NT][4], int j) {
    a[0] = pack_bf16x2(c[2 * j][0], c[2 * j][1]);
    a[1] = pack_bf16x2(c[2 * j][2], c[2 * j][3]);
    a[2] = pack_bf16x2(c[2 * j + 1][0], c[2 * j + 1][1]);
    a[3] = pack_bf16x2(c[2 * j + 1][2], c[2 * j + 1][3]);
}

/* 2^x on the special-function unit: one instruction; -inf gives 0 (the masked scores) and
 * results below 2^-126 flush to 0, which a probability that small may. */
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* Sets the entries of a 16 x 8 NT C-fragment array whose key (column, from key0) is after its
 * query (row ra or ra + 8, from the fragment layout) to -inf: the causal mask. Needed only on the
 * tiles that cross the diagonal; the others are visible whole. */
template <int NT>
__device__ __forceinline__ void mask_causal(float (&s)[NT][4], int key0, int ra) {
    const int tq = threadIdx.x & 3;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        const int key = key0 + nt * 8 + tq * 2;
        if (key > ra) s[nt][0] = -INFINITY;
        if (key + 1 > ra) s[nt][1] = -INFINITY;
        if (key > ra + 8) s[nt][2] = -INFINITY;
        if (key + 1 > ra + 8) s[nt][3] = -INFINITY;
    }
}

/* The same mask on a transposed tile (rows are keys ka and ka + 8, columns queries from q0),
 * also masking queries at or past the document's end d1. */
template <int NT>
__device__ __forceinline__ void mask_causal_t(float (&s)[NT][4], int q0, int ka, int d1) {
    const int tq = threadIdx.x & 3;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        const int q = q0 + nt * 8 + tq * 2;
        if (q < ka || q >= d1) s[nt][0] = -INFINITY;
        if (q + 1 < ka || q + 1 >= d1) s[nt][1] = -INFINITY;
        if (q < ka + 8 || q >= d1) s[nt][2] = -INFINITY;
        if (q + 1 < ka + 8 || q + 1 >= d1) s[nt][3] = -INFINITY;
    }
}

template <int NT>
__device__ __forceinline__ void zero(float (&c)[NT][4]) {
#pragma unroll
    for (int i = 0; i < NT; i++) c[i][0] = c[i][1] = c[i][2] = c[i][3] = 0.0f;
}

/* Writes rows ra and ra + 8 (each when < end) of a 16 x HD C-fragment array, times mul, as bf16
 * to dst (row stride ld) at column col. */
template <int HD>
__device__ __forceinline__ void store_rows(bf16 *dst, size_t ld, int col, int ra, int end,
                                           const float (&c)[HD / 8][4], float mul_a,
                                           float mul_b) {
    const int tq = threadIdx.x & 3;
#pragma unroll
    for (int dt = 0; dt < HD / 8; dt++) {
        const int cc = col + dt * 8 + tq * 2;
        if (ra < end)
            *reinterpret_cast<__nv_bfloat162 *>(dst + (size_t)ra * ld + cc) =
                __floats2bfloat162_rn(c[dt][0] * mul_a, c[dt][1] * mul_a);
        if (ra + 8 < end)
            *reinterpret_cast<__nv_bfloat162 *>(dst + (size_t)(ra + 8) * ld + cc) =
                __floats2bfloat162_rn(c[dt][2] * mul_b, c[dt][3] * mul_b);
    }
}

/* One key tile of the forward's online softmax for the thread's rows a and b: s holds the
 * tile's raw (masked) scores and leaves as p = 2^(s scale log2(e) - max); the running max m (in
 * scaled base-2 units) and the thread's partial row sums l are updated and the output
 * accumulators o rescaled. The max is taken on the raw scores (the scale is positive), so
 * each p costs one FMA and one ex2. */
template <int NT, int DT>
__device__ __forceinline__ void softmax_step(float (&s)[NT][4], float (&o)[DT][4], float &m_a,
                                             float &m_b, float &l_a, float &l_b,
                                             float scale_log2) {
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        mx_a = fmaxf(mx_a, fmaxf(s[nt][0], s[nt][1]));
        mx_b = fmaxf(mx_b, fmaxf(s[nt][2], s[nt][3]));
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, off));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, off));
    }
    const float mn_a = fmaxf(m_a, mx_a * scale_log2), mn_b = fmaxf(m_b, mx_b * scale_log2);
    /* a row with no key yet keeps max -inf; subtract 0 then so ex2 gives 0, not NaN */
    const float mu_a = mn_a == -INFINITY ? 0.0f : mn_a;
    const float mu_b = mn_b == -INFINITY ? 0.0f : mn_b;
    const float al_a = ex2(m_a - mu_a), al_b = ex2(m_b - mu_b);
    float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        s[nt][0] = ex2(fmaf(s[nt][0], scale_log2, -mu_a));
        s[nt][1] = ex2(fmaf(s[nt][1], scale_log2, -mu_a));
        s[nt][2] = ex2(fmaf(s[nt][2], scale_log2, -mu_b));
        s[nt][3] = ex2(fmaf(s[nt][3], scale_log2, -mu_b));
        sum_a += s[nt][0] + s[nt][1];
        sum_b += s[nt][2] + s[nt][3];
    }
    /* l stays a per-thread partial (its quarter of the row's columns); the four threads of a
     * row share alpha, so the partials add up at the end */
    l_a = l_a * al_a + sum_a;
    l_b = l_b * al_b + sum_b;
    m_a = mn_a;
    m_b = mn_b;
#pragma unroll
    for (int dt = 0; dt < DT; dt++) {
        o[dt][0] *= al_a;
        o[dt][1] *= al_a;
        o[dt][2] *= al_b;
        o[dt][3] *= al_b;
    }
}

/* The end of the forward for rows a and b: out = o / l (bf16), lse = (m + log2 l) ln 2. */
template <int HD>
__device__ __forceinline__ void softmax_finish(bf16 *out, float *lse, int n, int H, int h, int ra,
                                               int end, const float (&o)[HD / 8][4], float m_a,
                                               float m_b, float l_a, float l_b) {
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
    }
    store_rows<HD>(out, (size_t)H * HD, h * HD, ra, end, o, 1.0f / l_a, 1.0f / l_b);
    if ((threadIdx.x & 3) == 0) {
        if (ra < end) lse[(size_t)h * n + ra] = (m_a + log2f(l_a)) * LN2;
        if (ra + 8 < end) lse[(size_t)h * n + ra + 8] = (m_b + log2f(l_b)) * LN2;
    }
}

/* The key-side kernels' per-query statistics of head h for queries [qt, qt + rows) into shared
 * memory, queued as cp.async copies in the caller's group (a plain load here would stall the
 * block on the global read every step): ls = lse (natural log; ds_query_cols scales it),
 * ds = delta; queries at or past the document's end d1 get 0 (the mask hides them). */
__device__ __forceinline__ void stage_query_stats(float *ls, float *ds, const float *lse,
                                                  const float *delta, int n, int h, int qt,
                                                  int rows, int d1) {
    for (int i = threadIdx.x; i < 2 * rows; i += blockDim.x) {
        const int q = i < rows ? i : i - rows;
        const bool ok = qt + q < d1;
        const size_t at = ok ? (size_t)h * n + qt + q : 0;
        if (i < rows)
            cp_async4(ls + q, lse + at, ok ? 4 : 0);
        else
            cp_async4(ds + q, delta + at, ok ? 4 : 0);
    }
}

/* The query-side kernels' statistics of the thread's rows ra and ra + 8 of head h: lse in base
 * 2 and delta; rows at or past end get 0 (they are not stored). */
struct row_stats {
    float lse_a, lse_b, dl_a, dl_b;
};
__device__ __forceinline__ row_stats load_row_stats(const float *lse, const float *delta, int n,
                                                    int h, int ra, int end) {
    const size_t o = (size_t)h * n;
    row_stats st;
    st.lse_a = ra < end ? lse[o + ra] * LOG2E : 0.0f;
    st.lse_b = ra + 8 < end ? lse[o + ra + 8] * LOG2E : 0.0f;
    st.dl_a = ra < end ? delta[o + ra] : 0.0f;
    st.dl_b = ra + 8 < end ? delta[o + ra + 8] : 0.0f;
    return st;
}

/* dS = P (dP - delta) over dp, with P = 2^(s scale log2(e) - lse) from the masked scores s, on a
 * tile whose rows are the queries (the dq kernels). */
template <int NT>
__device__ __forceinline__ void ds_query_rows(float (&dp)[NT][4], const float (&s)[NT][4],
                                              float scale_log2, const row_stats &st) {
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const float pv = ex2(fmaf(s[nt][c], scale_log2, -(c < 2 ? st.lse_a : st.lse_b)));
            dp[nt][c] = pv * (dp[nt][c] - (c < 2 ? st.dl_a : st.dl_b));
        }
    }
}

/* The same on a transposed tile whose columns are the queries from the ones staged in ls, dl
 * (stage_query_stats): s becomes P as well, which dV needs (the dk/dv kernels). */
template <int NT>
__device__ __forceinline__ void ds_query_cols(float (&s)[NT][4], float (&dp)[NT][4],
                                              float scale_log2, const float *ls, const float *dl) {
    const int tq = threadIdx.x & 3;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int qi = nt * 8 + tq * 2 + (c & 1);
            const float pv = ex2(fmaf(s[nt][c], scale_log2, -(ls[qi] * LOG2E)));
            s[nt][c] = pv;
            dp[nt][c] = pv * (dp[nt][c] - dl[qi]);
        }
    }
}

#endif
