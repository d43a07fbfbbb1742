/* DeepSeek-V3's multi-head latent attention in the absorbed form, on the GPU: the CPU's
 * cpu_mla_q_absorb, cpu_mla_attention and cpu_mla_v_up (core/backend_cpu.c) as direct kernels.
 * They are correct for any sizes, weight types (F32, BF16, FP8 with block scales) and cache
 * types, and not tuned: they are what lets the DeepSeek model code run on the CUDA backend and
 * be checked against the CPU; the fast versions (batched tensor-core products, a FlashMLA-style
 * decode kernel) are the next part of the DeepSeek work.
 *
 * Costs per token and head (lat = kv_lora_rank, L attended positions):
 *   q_absorb  2·nope·lat FLOPs; W_UK (nope·lat·b bytes per head) read once per 8 tokens
 *   attention 4·L·lat + 2·L·pe FLOPs; L·(lat + pe)·c bytes of cache per head (every head of a
 *             token reads the same rows: through L2)
 *   v_up      2·v·lat FLOPs; W_UV read once per 8 tokens */
#include <math.h>

#include "core/cuda/cuda_internal.cuh"

enum { MLA_TOKENS = 8, MLA_TC = 64 };

/* q_lat[i, h, c] = sum_d q[i, h, d] * W[h * (nope + v) + d, c]: block (head, group of 8 tokens),
 * threads over c; the group's q_nope rows sit in shared memory. */
__global__ void mla_q_absorb_kernel(float *q_lat, const float *q, int q_stride, wview w, int n,
                                    int n_heads, int nope, int v_dim, int lat) {
    extern __shared__ float sq[]; /* [MLA_TOKENS][nope] */
    const int h = blockIdx.x, i0 = blockIdx.y * MLA_TOKENS;
    const int nt = min(MLA_TOKENS, n - i0);
    for (int k = threadIdx.x; k < nt * nope; k += blockDim.x) {
        const int t = k / nope, d = k % nope;
        sq[k] = q[((int64_t)(i0 + t) * n_heads + h) * q_stride + d];
    }
    __syncthreads();
    const int64_t r0 = (int64_t)h * (nope + v_dim);
    for (int c = threadIdx.x; c < lat; c += blockDim.x) {
        float acc[MLA_TOKENS];
#pragma unroll
        for (int t = 0; t < MLA_TOKENS; t++) acc[t] = 0.0f;
        for (int d = 0; d < nope; d++) {
            const float wv = wget(w, r0 + d, c);
#pragma unroll
            for (int t = 0; t < MLA_TOKENS; t++) acc[t] = fmaf(sq[t * nope + d], wv, acc[t]);
        }
#pragma unroll
        for (int t = 0; t < MLA_TOKENS; t++)
            if (t < nt) q_lat[((int64_t)(i0 + t) * n_heads + h) * lat + c] = acc[t];
    }
}

void cu_mla_q_absorb(backend *be, float *q_lat, const float *q, int q_stride, const weight *wkv_b,
                     int n, int n_heads, int nope, int v_dim) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    CU_REQUIRE(wkv_b->device, "mla_q_absorb: kv_b_proj was not uploaded");
    if (n <= 0 || n_heads <= 0) return;
    const int lat = (int)wkv_b->cols;
    const size_t smem = sizeof(float) * MLA_TOKENS * (size_t)nope;
    CU_REQUIRE(smem <= 48 * 1024, "mla_q_absorb: qk_nope_head_dim %d too large", nope);
    const dim3 grid((unsigned)n_heads, (unsigned)((n + MLA_TOKENS - 1) / MLA_TOKENS));
    mla_q_absorb_kernel<<<grid, 256, smem, cu->stream>>>(q_lat, q, q_stride, view_of(wkv_b), n,
                                                         n_heads, nope, v_dim, lat);
    LAUNCH_CHECK();
}

/* out[i, h, j] = sum_c o_lat[i, h, c] * W[h * (nope + v) + nope + j, c]: block (head, group of
 * 8 tokens), a warp per output j with its lanes along c; the group's o_lat rows in shared
 * memory. */
__global__ void mla_v_up_kernel(float *out, const float *o_lat, wview w, int n, int n_heads,
                                int nope, int v_dim, int lat) {
    extern __shared__ float so[]; /* [MLA_TOKENS][lat] */
    const int h = blockIdx.x, i0 = blockIdx.y * MLA_TOKENS;
    const int nt = min(MLA_TOKENS, n - i0);
    for (int k = threadIdx.x; k < nt * lat; k += blockDim.x) {
        const int t = k / lat, c = k % lat;
        so[k] = o_lat[((int64_t)(i0 + t) * n_heads + h) * lat + c];
    }
    __syncthreads();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int64_t r0 = (int64_t)h * (nope + v_dim) + nope;
    for (int j = warp; j < v_dim; j += nw) {
        float acc[MLA_TOKENS];
#pragma unroll
        for (int t = 0; t < MLA_TOKENS; t++) acc[t] = 0.0f;
        for (int c = lane; c < lat; c += 32) {
            const float wv = wget(w, r0 + j, c);
#pragma unroll
            for (int t = 0; t < MLA_TOKENS; t++)
                if (t < nt) acc[t] = fmaf(so[t * lat + c], wv, acc[t]);
        }
#pragma unroll
        for (int t = 0; t < MLA_TOKENS; t++) {
            const float v = warp_sum(acc[t]);
            if (lane == 0 && t < nt) out[((int64_t)(i0 + t) * n_heads + h) * v_dim + j] = v;
        }
    }
}

void cu_mla_v_up(backend *be, float *out, const float *o_lat, const weight *wkv_b, int n,
                 int n_heads, int nope, int v_dim) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    CU_REQUIRE(wkv_b->device, "mla_v_up: kv_b_proj was not uploaded");
    if (n <= 0 || n_heads <= 0) return;
    const int lat = (int)wkv_b->cols;
    const size_t smem = sizeof(float) * MLA_TOKENS * (size_t)lat;
    CU_REQUIRE(smem <= 48 * 1024, "mla_v_up: kv_lora_rank %d too large", lat);
    const dim3 grid((unsigned)n_heads, (unsigned)((n + MLA_TOKENS - 1) / MLA_TOKENS));
    mla_v_up_kernel<<<grid, 256, smem, cu->stream>>>(out, o_lat, view_of(wkv_b), n, n_heads, nope,
                                                     v_dim, lat);
    LAUNCH_CHECK();
}

/* One block per (token, head), online softmax over sub-chunks of 64 positions: each warp scores
 * 16 positions (lanes along the latent and rope dimensions, then a warp sum), warp 0 updates the
 * running max and sum, then every thread updates its columns of the output accumulator. */
template <typename T>
__global__ void mla_attention_kernel(float *out, const float *q_lat, const float *q_pe,
                                     int pe_stride, const T *kv_cache, const T *pe_cache,
                                     const int *slot, const int *pos, int max_seq, int n_heads,
                                     int lat, int pe_dim, float scale) {
    extern __shared__ float sm[]; /* q [lat + pe_dim] | acc [lat] | p [64] | m, l, alpha */
    float *sqv = sm, *acc = sm + lat + pe_dim, *sp = acc + lat, *st = sp + MLA_TC;
    const int i = blockIdx.x, h = blockIdx.y, len = pos[i] + 1;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const float *ql = q_lat + ((int64_t)i * n_heads + h) * lat;
    const float *qp = q_pe + ((int64_t)i * n_heads + h) * pe_stride;
    for (int c = threadIdx.x; c < lat; c += blockDim.x) sqv[c] = ql[c], acc[c] = 0.0f;
    for (int c = threadIdx.x; c < pe_dim; c += blockDim.x) sqv[lat + c] = qp[c];
    if (threadIdx.x == 0) st[0] = -INFINITY, st[1] = 0.0f;
    const T *kv = kv_cache + (int64_t)slot[i] * max_seq * lat;
    const T *pe = pe_cache + (int64_t)slot[i] * max_seq * pe_dim;
    __syncthreads();
    for (int t0 = 0; t0 < len; t0 += MLA_TC) {
        for (int k = warp; k < MLA_TC; k += nw) {
            const int t = t0 + k;
            float s = 0.0f;
            if (t < len) {
                for (int c = lane; c < lat; c += 32) s = fmaf(sqv[c], to_f32(kv[(int64_t)t * lat + c]), s);
                for (int c = lane; c < pe_dim; c += 32)
                    s = fmaf(sqv[lat + c], to_f32(pe[(int64_t)t * pe_dim + c]), s);
            }
            s = warp_sum(s);
            if (lane == 0) sp[k] = t < len ? s * scale : -INFINITY;
        }
        __syncthreads();
        if (warp == 0) {
            const float a = sp[lane], b = sp[lane + 32];
            const float m_old = st[0], m_new = fmaxf(m_old, warp_max(fmaxf(a, b)));
            const float pa = expf(a - m_new), pb = expf(b - m_new);
            sp[lane] = pa;
            sp[lane + 32] = pb;
            const float sum = warp_sum(pa + pb);
            if (lane == 0) {
                const float alpha = expf(m_old - m_new);
                st[2] = alpha;
                st[1] = st[1] * alpha + sum;
                st[0] = m_new;
            }
        }
        __syncthreads();
        const float alpha = st[2];
        const int nk = min(MLA_TC, len - t0);
        for (int c = threadIdx.x; c < lat; c += blockDim.x) {
            float a = acc[c] * alpha;
            for (int k = 0; k < nk; k++) a = fmaf(sp[k], to_f32(kv[(int64_t)(t0 + k) * lat + c]), a);
            acc[c] = a;
        }
        __syncthreads(); /* sp and st are rewritten by the next sub-chunk */
    }
    float *o = out + ((int64_t)i * n_heads + h) * lat;
    for (int c = threadIdx.x; c < lat; c += blockDim.x) o[c] = acc[c] / st[1];
}

void cu_mla_attention(backend *be, float *out, const float *q_lat, const float *q_pe,
                      int pe_stride, const void *kv_cache, const void *pe_cache,
                      const token_layout *tl, int max_seq, int n_heads, int lat, int pe_dim,
                      float scale) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (tl->n <= 0 || n_heads <= 0) return;
    const size_t smem = sizeof(float) * ((size_t)2 * lat + pe_dim + MLA_TC + 3);
    CU_REQUIRE(smem <= 48 * 1024, "mla_attention: kv_lora_rank %d too large", lat);
    CU_REQUIRE(n_heads <= 65535, "mla_attention: %d heads", n_heads);
    const dim3 grid((unsigned)tl->n, (unsigned)n_heads);
    if (be->cache_dtype == DTYPE_BF16)
        mla_attention_kernel<<<grid, 128, smem, cu->stream>>>(
            out, q_lat, q_pe, pe_stride, (const __nv_bfloat16 *)kv_cache,
            (const __nv_bfloat16 *)pe_cache, tl->slot, tl->pos, max_seq, n_heads, lat, pe_dim,
            scale);
    else
        mla_attention_kernel<<<grid, 128, smem, cu->stream>>>(
            out, q_lat, q_pe, pe_stride, (const float *)kv_cache, (const float *)pe_cache,
            tl->slot, tl->pos, max_seq, n_heads, lat, pe_dim, scale);
    LAUNCH_CHECK();
}
