/* Grouped-query causal attention against the slotted KV cache (the CPU's cpu_attention), in the
 * flash-decoding style: the positions 0..pos[i] of token i are cut into `splits` chunks, each
 * chunk is one block that keeps a running max and sum (online softmax) over sub-chunks of 64
 * positions, and a second kernel merges the chunks' partial outputs. One block serves all the
 * query heads of a KV head (up to 8; more take several blocks), so K and V are read once per
 * block for the whole group.
 *
 * Per block and 64-position sub-chunk: phase 1, each group of LPK lanes loads one key row
 * (16 bytes per lane) and forms its dot products with the group's queries (held in registers),
 * reduced by shuffles; phase 2, one warp per head updates max and sum and turns scores into
 * probabilities in shared memory; phase 3, the lanes load value rows the same way and
 * accumulate p * v in registers. Bytes: K and V rows of every attended position once per
 * (token, KV head) (2 * len * head_dim * sizeof(cache) each), queries and outputs once. FLOPs:
 * 4 * len * head_dim per (token, head). Decode is bound by those bytes; prefill of long prompts
 * re-reads K/V per token (through L2) and wants a tensor-core kernel (not done yet).
 *
 * The split count depends only on n, the head counts, max_seq and the GPU (never on the
 * positions, which are in device memory), so a recorded graph stays valid for any position. */
#include <math.h>

#include "core/cuda/cuda_internal.cuh"

enum { ATT_THREADS = 128, ATT_WARPS = 4, ATT_TC = 64 };

template <typename T, int HD, int GM>
__global__ void __launch_bounds__(ATT_THREADS)
    attention_kernel(float *__restrict__ out, float *__restrict__ part_o,
                     float *__restrict__ part_ml, const float *__restrict__ q,
                     const T *__restrict__ kc, const T *__restrict__ vc,
                     const int *__restrict__ slot, const int *__restrict__ pos, int max_seq, int H,
                     int KV, int group, int hchunks, int splits, int chunk, float scale) {
    constexpr int LPK = HD / 8;       /* lanes per key row: 8 elements each */
    constexpr int KPW = 32 / LPK;     /* key rows per warp step */
    constexpr int KPB = ATT_WARPS * KPW;
    static_assert(LPK >= 1 && LPK <= 32 && (LPK & (LPK - 1)) == 0, "head_dim 8..256, power of 2");
    static_assert(ATT_TC % KPB == 0 && ATT_TC == 64, "sub-chunk of 64 positions, 2 per lane");
    const int i = blockIdx.x, kvh = blockIdx.y / hchunks, hc = blockIdx.y % hchunks;
    const int s = blockIdx.z;
    const int len = pos[i] + 1, start = s * chunk;
    const int end = min(len, start + chunk);
    if (start >= end) return; /* past this token's position: the merge skips it */
    const int h0 = kvh * group + hc * GM, G = min(GM, group - hc * GM);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int sub = lane / LPK, sl = lane % LPK;

    __shared__ float s_p[GM][ATT_TC];
    __shared__ float s_m[GM], s_l[GM], s_a[GM];
    __shared__ float s_red[ATT_WARPS][GM][HD];

    float qv[GM][8], acc[GM][8];
#pragma unroll
    for (int g = 0; g < GM; g++) {
        if (g < G) load8(qv[g], q + ((int64_t)i * H + h0 + g) * HD + sl * 8);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            if (g >= G) qv[g][e] = 0.0f;
            acc[g][e] = 0.0f;
        }
    }
    if (tid < GM) s_m[tid] = -INFINITY, s_l[tid] = 0.0f, s_a[tid] = 0.0f;
    const int64_t row = (int64_t)KV * HD;
    const T *kb = kc + (int64_t)slot[i] * max_seq * row + kvh * HD + sl * 8;
    const T *vb = vc + (int64_t)slot[i] * max_seq * row + kvh * HD + sl * 8;

    for (int t0 = start; t0 < end; t0 += ATT_TC) {
        /* phase 1: scores */
        for (int kk = warp * KPW + sub; kk < ATT_TC; kk += KPB) {
            const int t = t0 + kk;
            float d[GM];
#pragma unroll
            for (int g = 0; g < GM; g++) d[g] = 0.0f;
            if (t < end) {
                float kv[8];
                load8(kv, kb + t * row);
#pragma unroll
                for (int g = 0; g < GM; g++)
#pragma unroll
                    for (int e = 0; e < 8; e++) d[g] = fmaf(qv[g][e], kv[e], d[g]);
            }
#pragma unroll
            for (int g = 0; g < GM; g++)
#pragma unroll
                for (int o = LPK / 2; o > 0; o >>= 1) d[g] += __shfl_xor_sync(0xffffffffu, d[g], o);
            if (sl == 0)
#pragma unroll
                for (int g = 0; g < GM; g++) s_p[g][kk] = t < end ? d[g] * scale : -INFINITY;
        }
        __syncthreads();
        /* phase 2: running max and sum per head; scores become probabilities */
        for (int g = warp; g < G; g += ATT_WARPS) {
            const float a = s_p[g][lane], b = s_p[g][lane + 32];
            const float m_old = s_m[g], m_new = fmaxf(m_old, warp_max(fmaxf(a, b)));
            const float pa = expf(a - m_new), pb = expf(b - m_new);
            s_p[g][lane] = pa;
            s_p[g][lane + 32] = pb;
            const float sum = warp_sum(pa + pb);
            if (lane == 0) {
                const float alpha = expf(m_old - m_new);
                s_a[g] = alpha;
                s_l[g] = s_l[g] * alpha + sum;
                s_m[g] = m_new;
            }
        }
        __syncthreads();
        /* phase 3: acc = acc * alpha + p v */
#pragma unroll
        for (int g = 0; g < GM; g++) {
            const float alpha = g < G ? s_a[g] : 0.0f;
#pragma unroll
            for (int e = 0; e < 8; e++) acc[g][e] *= alpha;
        }
        for (int kk = warp * KPW + sub; kk < ATT_TC; kk += KPB) {
            const int t = t0 + kk;
            if (t >= end) continue;
            float vv[8];
            load8(vv, vb + t * row);
#pragma unroll
            for (int g = 0; g < GM; g++) {
                const float p = g < G ? s_p[g][kk] : 0.0f;
#pragma unroll
                for (int e = 0; e < 8; e++) acc[g][e] = fmaf(p, vv[e], acc[g][e]);
            }
        }
        __syncthreads(); /* s_p is overwritten by the next sub-chunk */
    }

    /* the key groups of a warp, then the warps */
#pragma unroll
    for (int g = 0; g < GM; g++)
#pragma unroll
        for (int e = 0; e < 8; e++)
#pragma unroll
            for (int o = LPK; o < 32; o <<= 1) acc[g][e] += __shfl_xor_sync(0xffffffffu, acc[g][e], o);
    if (sub == 0)
#pragma unroll
        for (int g = 0; g < GM; g++)
#pragma unroll
            for (int e = 0; e < 8; e++) s_red[warp][g][sl * 8 + e] = acc[g][e];
    __syncthreads();
    for (int idx = tid; idx < G * HD; idx += ATT_THREADS) {
        const int g = idx / HD, dd = idx % HD;
        float o = s_red[0][g][dd];
#pragma unroll
        for (int w = 1; w < ATT_WARPS; w++) o += s_red[w][g][dd];
        const int64_t th = (int64_t)i * H + h0 + g;
        if (splits == 1) {
            out[th * HD + dd] = o / s_l[g];
        } else {
            const int64_t p = th * splits + s;
            part_o[p * HD + dd] = o;
            if (dd == 0) part_ml[2 * p] = s_m[g], part_ml[2 * p + 1] = s_l[g];
        }
    }
}

/* Merges the chunks of (token i, head h): weights exp(m_s - M), in chunk order. */
__global__ void attention_merge_kernel(float *out, const float *part_o, const float *part_ml,
                                       const int *pos, int H, int hd, int splits, int chunk) {
    const int i = blockIdx.x, h = blockIdx.y;
    const int nvalid = (pos[i] + 1 + chunk - 1) / chunk;
    const int64_t p0 = ((int64_t)i * H + h) * splits;
    float M = -INFINITY;
    for (int s = 0; s < nvalid; s++) M = fmaxf(M, part_ml[2 * (p0 + s)]);
    float L = 0.0f;
    for (int s = 0; s < nvalid; s++) L += part_ml[2 * (p0 + s) + 1] * expf(part_ml[2 * (p0 + s)] - M);
    for (int dd = threadIdx.x; dd < hd; dd += blockDim.x) {
        float o = 0.0f;
        for (int s = 0; s < nvalid; s++)
            o += part_o[(p0 + s) * hd + dd] * expf(part_ml[2 * (p0 + s)] - M);
        out[((int64_t)i * H + h) * hd + dd] = o / L;
    }
}

template <typename T, int HD, int GM>
static void launch(cuda_backend *cu, dim3 grid, float *out, float *po, float *pml, const float *q,
                   const void *kc, const void *vc, const token_layout *tl, int max_seq, int H,
                   int KV, int group, int hchunks, int splits, int chunk, float scale) {
    attention_kernel<T, HD, GM><<<grid, ATT_THREADS, 0, cu->stream>>>(
        out, po, pml, q, (const T *)kc, (const T *)vc, tl->slot, tl->pos, max_seq, H, KV, group,
        hchunks, splits, chunk, scale);
}

template <typename T, int GM>
static void launch_hd(cuda_backend *cu, int hd, dim3 grid, float *out, float *po, float *pml,
                      const float *q, const void *kc, const void *vc, const token_layout *tl,
                      int max_seq, int H, int KV, int group, int hchunks, int splits, int chunk,
                      float scale) {
    switch (hd) {
#define CASE(D)                                                                              \
    case D:                                                                                  \
        launch<T, D, GM>(cu, grid, out, po, pml, q, kc, vc, tl, max_seq, H, KV, group, hchunks, \
                         splits, chunk, scale);                                              \
        break;
        CASE(16)
        CASE(32)
        CASE(64)
        CASE(128)
#undef CASE
    default: CU_REQUIRE(0, "attention head_dim %d", hd);
    }
}

void cu_attention(backend *be, float *out, const float *q, const void *k_cache,
                  const void *v_cache, const token_layout *tl, int max_seq, int n_heads,
                  int n_kv_heads, int head_dim, int v_dim, float scale) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    const int n = tl->n;
    if (n <= 0) return;
    CU_REQUIRE(head_dim == v_dim && (head_dim == 16 || head_dim == 32 || head_dim == 64 ||
                                     head_dim == 128),
               "CUDA attention supports head_dim == v_dim in {16, 32, 64, 128}; got %d and %d",
               head_dim, v_dim);
    CU_REQUIRE(n_kv_heads > 0 && n_heads % n_kv_heads == 0, "%d heads over %d KV heads", n_heads,
               n_kv_heads);
    CU_REQUIRE((((uintptr_t)q | (uintptr_t)k_cache | (uintptr_t)v_cache) & 15) == 0,
               "attention: q and caches must be 16-byte aligned");
    const int group = n_heads / n_kv_heads, GM = group > 4 ? 8 : 4;
    const int hchunks = (group + GM - 1) / GM;
    /* Enough blocks to fill the GPU about four times over, chunks of at least 64 positions. */
    const int64_t base = (int64_t)n * n_kv_heads * hchunks;
    const int max_splits = (max_seq + ATT_TC - 1) / ATT_TC;
    int64_t want = (4 * (int64_t)cu->sm_count + base - 1) / base;
    int splits = (int)(want < 1 ? 1 : want > max_splits ? max_splits : want);
    int chunk = (max_seq + splits - 1) / splits;
    chunk = (chunk + ATT_TC - 1) / ATT_TC * ATT_TC;
    splits = (max_seq + chunk - 1) / chunk;
    float *po = NULL, *pml = NULL;
    if (splits > 1) {
        const size_t parts = (size_t)n * n_heads * splits;
        po = (float *)cu_workspace(cu, WS_ATTN, sizeof(float) * parts * (head_dim + 2));
        pml = po + parts * head_dim;
    }
    const dim3 grid((unsigned)n, (unsigned)(n_kv_heads * hchunks), (unsigned)splits);
    const int bf = be->cache_dtype == DTYPE_BF16;
    if (bf && GM == 4)
        launch_hd<__nv_bfloat16, 4>(cu, head_dim, grid, out, po, pml, q, k_cache, v_cache, tl,
                                    max_seq, n_heads, n_kv_heads, group, hchunks, splits, chunk, scale);
    else if (bf)
        launch_hd<__nv_bfloat16, 8>(cu, head_dim, grid, out, po, pml, q, k_cache, v_cache, tl,
                                    max_seq, n_heads, n_kv_heads, group, hchunks, splits, chunk, scale);
    else if (GM == 4)
        launch_hd<float, 4>(cu, head_dim, grid, out, po, pml, q, k_cache, v_cache, tl, max_seq,
                            n_heads, n_kv_heads, group, hchunks, splits, chunk, scale);
    else
        launch_hd<float, 8>(cu, head_dim, grid, out, po, pml, q, k_cache, v_cache, tl, max_seq,
                            n_heads, n_kv_heads, group, hchunks, splits, chunk, scale);
    LAUNCH_CHECK();
    if (splits > 1) {
        attention_merge_kernel<<<dim3((unsigned)n, (unsigned)n_heads), head_dim < 32 ? 32 : head_dim,
                                 0, cu->stream>>>(out, po, pml, tl->pos, n_heads, head_dim, splits,
                                                  chunk);
        LAUNCH_CHECK();
    }
}
