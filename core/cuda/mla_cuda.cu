/* DeepSeek-V3's multi-head latent attention in the absorbed form, on the GPU: the CPU's
 * cpu_mla_q_absorb, cpu_mla_attention and cpu_mla_v_up (core/backend_cpu.c) as direct kernels,
 * correct for any sizes, weight types (F32, BF16, FP8 with block scales) and cache types, used in
 * fp32 mode and wherever the fast path does not apply.
 *
 * The fast path (bf16 mode, DeepSeek-V3's shapes): q_absorb and v_up are per-head linears, so
 * they run as one grouped product on the skinny tensor-core kernel (cu_linear_segments), one
 * "expert" per head over all tokens: v_up through views of kv_b_proj's W_UV rows, q_absorb
 * through a transposed copy of each head's W_UK made once per kv_b_proj (FP8 stays FP8: a head's
 * W_UK is whole 128 x 128 scale blocks, transposed with their scales). Activations are permuted
 * to head-major rows and back (bf16 at the product's input, like every bf16-mode linear). On an
 * H100 at one token this took q_absorb from 185 us to about the weights' read time (8.4 MB of
 * FP8 per layer); measured in docs/cuda-inference.md.
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

/* ---- the fast path: per-head products on the grouped skinny kernel -------------------------- */

struct cu_mla_tab {
    const void *src;  /* the uploaded kv_b_proj's data: the table's key */
    int heads;
    weight *uk_t;     /* [heads] W_UK[h]^T [lat, nope]: transposed copies */
    weight *uv;       /* [heads] W_UV[h] [v, lat]: views of kv_b_proj's rows */
    void *copies;     /* the transposed bytes, then their scales (one allocation) */
};

/* T[h][c][d] = W[h (nope + v) + d][c] for the bytes of an FP8 (es 1) or BF16 (es 2) kv_b_proj. */
__global__ void mla_transpose_uk_kernel(uint8_t *t, const uint8_t *w, int heads, int nope, int v,
                                        int lat, int es) {
    const int64_t total = (int64_t)heads * lat * nope;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total;
         k += (int64_t)gridDim.x * blockDim.x) {
        const int d = (int)(k % nope), c = (int)(k / nope % lat), h = (int)(k / nope / lat);
        const int64_t src = ((int64_t)h * (nope + v) + d) * lat + c;
        for (int b = 0; b < es; b++) t[k * es + b] = w[src * es + b];
    }
}

/* The transposed scales: Ts[h][i][j] = S[(h (nope + v)) / br + j][i] (block rows of a head's
 * W_UK become block columns); S has sr blocks per row block, Ts sr rows of sc. */
__global__ void mla_transpose_scales_kernel(float *ts, const float *s, int heads, int nope, int v,
                                            int br, int sr, int sc) {
    const int total = heads * sr * sc;
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < total; k += gridDim.x * blockDim.x) {
        const int j = k % sc, i = k / sc % sr, h = k / sc / sr;
        ts[k] = s[(int64_t)(h * (nope + v) / br + j) * sr + i];
    }
}

/* dst[(h n + i) width + c] = src[(i H + h) stride + c]: token-major heads to head-major rows. */
__global__ void mla_to_heads_kernel(float *dst, const float *src, int n, int heads, int width,
                                    int stride) {
    const int64_t total = (int64_t)n * heads * width;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total;
         k += (int64_t)gridDim.x * blockDim.x) {
        const int c = (int)(k % width), i = (int)(k / width % n), h = (int)(k / width / n);
        dst[k] = src[((int64_t)i * heads + h) * stride + c];
    }
}

/* dst[(i H + h) width + c] = src[(h n + i) width + c]: head-major rows back to token-major. */
__global__ void mla_from_heads_kernel(float *dst, const float *src, int n, int heads, int width) {
    const int64_t total = (int64_t)n * heads * width;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total;
         k += (int64_t)gridDim.x * blockDim.x) {
        const int c = (int)(k % width), h = (int)(k / width % heads), i = (int)(k / width / heads);
        dst[k] = src[((int64_t)h * n + i) * width + c];
    }
}

__global__ void mla_uniform_segments_kernel(int *seg, int heads, int n) {
    for (int e = threadIdx.x; e <= heads; e += blockDim.x) seg[e] = e * n;
}

/* Whether the fast path takes this product: bf16 mode with the skinny kernel, FP8 kv_b_proj whose
 * heads are whole scale blocks (or BF16), widths the kernel takes, and few enough row chunks. */
static bool mla_fast_ok(const cuda_backend *cu, const weight *w, int heads, int nope, int v,
                        int n) {
    if (cu->mode != BACKEND_CUDA_BF16 || !cu->skinny_on || cu->mla_direct || w->qtype)
        return false;
    const int64_t lat = w->cols;
    if (w->dt == DTYPE_F8_E4M3) {
        const int br = w->block_rows, bc = w->block_cols;
        if (!w->scale_inv || br <= 0 || bc <= 0 || nope % br || v % br || br % 64 || bc % 64 ||
            lat % 64 || nope % 64)
            return false;
    } else if (w->dt == DTYPE_BF16) {
        if (lat % 32 || nope % 32 || v % 32) return false;
    } else {
        return false;
    }
    /* cu_linear_segments' grid: one slot per head plus one per 64 rows */
    return (int64_t)heads + (int64_t)heads * n / 64 <= 65535;
}

static cu_mla_tab *mla_table(cuda_backend *cu, const weight *w, int heads, int nope, int v) {
    for (int i = 0; i < cu->n_mla; i++)
        if (cu->mla[i].src == w->data && cu->mla[i].heads == heads) return &cu->mla[i];
    CU_REQUIRE(!cu->recording, "a new MLA table while recording a CUDA graph");
    const int lat = (int)w->cols, es = w->dt == DTYPE_F8_E4M3 ? 1 : 2;
    const bool fp8 = es == 1;
    const int br = fp8 ? w->block_rows : 1, bc = fp8 ? w->block_cols : 1;
    /* scale blocks: kv_b_proj has sr per row block; one W_UK^T has sr rows of sc */
    const int sr = fp8 ? (lat + bc - 1) / bc : 0, sc = fp8 ? nope / br : 0;
    const size_t head_bytes = (size_t)lat * nope * es, data_bytes = head_bytes * heads;
    const size_t scale_at = (data_bytes + 255) & ~(size_t)255;
    uint8_t *copies;
    CUDA_CHECK(cudaMalloc((void **)&copies, scale_at + sizeof(float) * (size_t)heads * sr * sc + 1));
    mla_transpose_uk_kernel<<<cu_blocks((int64_t)heads * lat * nope, 256, 4096), 256, 0,
                              cu->stream>>>(copies, (const uint8_t *)w->data, heads, nope, v,
                                            lat, es);
    LAUNCH_CHECK();
    float *ts = (float *)(copies + scale_at);
    if (fp8) {
        mla_transpose_scales_kernel<<<cu_blocks((int64_t)heads * sr * sc, 256, 1024), 256, 0,
                                      cu->stream>>>(ts, w->scale_inv, heads, nope, v, br, sr, sc);
        LAUNCH_CHECK();
    }
    cu->mla = (cu_mla_tab *)xrealloc(cu->mla, sizeof(cu_mla_tab) * (size_t)(cu->n_mla + 1));
    cu_mla_tab *t = &cu->mla[cu->n_mla++];
    t->src = w->data;
    t->heads = heads;
    t->copies = copies;
    t->uk_t = (weight *)xcalloc((size_t)heads, sizeof(weight));
    t->uv = (weight *)xcalloc((size_t)heads, sizeof(weight));
    for (int h = 0; h < heads; h++) {
        weight *k = &t->uk_t[h];
        *k = *w;
        k->rows = lat;
        k->cols = nope;
        k->data = copies + head_bytes * h;
        k->block_rows = fp8 ? bc : 0;
        k->block_cols = fp8 ? br : 0;
        k->scale_inv = fp8 ? ts + (size_t)h * sr * sc : NULL;
        /* mla_fast_ok made the rows whole scale blocks */
        CHECK(!weight_rows_slice(&t->uv[h], w, (int64_t)h * (nope + v) + nope, v, "kv_b_proj"));
    }
    return t;
}

void cu_drop_mla_tables(cuda_backend *cu) {
    if (!cu->n_mla) return;
    CUDA_CHECK(cudaStreamSynchronize(cu->stream));
    for (int i = 0; i < cu->n_mla; i++) {
        CUDA_CHECK(cudaFree(cu->mla[i].copies));
        free(cu->mla[i].uk_t);
        free(cu->mla[i].uv);
    }
    free(cu->mla);
    cu->mla = NULL;
    cu->n_mla = 0;
}

/* out (token-major [n, heads, rows]) = per head h: x_h [n, K] @ w[h]^T, x_h the rows of x at
 * x + (i heads + h) x_stride. */
static void mla_per_head(cuda_backend *cu, float *out, const float *x, int x_stride,
                         const weight *w, int n, int heads) {
    const int K = (int)w[0].cols, rows = (int)w[0].rows;
    const size_t seg_bytes = 256 + sizeof(int) * (size_t)(heads + 1);
    const size_t xh_bytes = sizeof(float) * (size_t)n * heads * K;
    char *ws = (char *)cu_workspace(cu, WS_MLA, seg_bytes + xh_bytes +
                                                    sizeof(float) * (size_t)n * heads * rows);
    int *seg = (int *)ws;
    float *xh = (float *)(ws + seg_bytes), *yh = (float *)(ws + seg_bytes + xh_bytes);
    cu_invalidate_xbf(cu); /* xh is rewritten below */
    mla_uniform_segments_kernel<<<1, 256, 0, cu->stream>>>(seg, heads, n);
    LAUNCH_CHECK();
    mla_to_heads_kernel<<<cu_blocks((int64_t)n * heads * K, 256, 8192), 256, 0, cu->stream>>>(
        xh, x, n, heads, K, x_stride);
    LAUNCH_CHECK();
    cu_linear_segments(&cu->be, yh, xh, w, seg, heads, n * heads);
    mla_from_heads_kernel<<<cu_blocks((int64_t)n * heads * rows, 256, 8192), 256, 0,
                            cu->stream>>>(out, yh, n, heads, rows);
    LAUNCH_CHECK();
    cu_touch(cu, out, sizeof(float) * (size_t)n * heads * rows);
}

void cu_mla_q_absorb(backend *be, float *q_lat, const float *q, int q_stride, const weight *wkv_b,
                     int n, int n_heads, int nope, int v_dim) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    CU_REQUIRE(wkv_b->device, "mla_q_absorb: kv_b_proj was not uploaded");
    if (n <= 0 || n_heads <= 0) return;
    if (mla_fast_ok(cu, wkv_b, n_heads, nope, v_dim, n)) {
        mla_per_head(cu, q_lat, q, q_stride, mla_table(cu, wkv_b, n_heads, nope, v_dim)->uk_t, n,
                     n_heads);
        return;
    }
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
    if (mla_fast_ok(cu, wkv_b, n_heads, nope, v_dim, n)) {
        const int lat = (int)wkv_b->cols;
        mla_per_head(cu, out, o_lat, lat, mla_table(cu, wkv_b, n_heads, nope, v_dim)->uv, n,
                     n_heads);
        return;
    }
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

/* ---- attention on tensor cores (bf16 mode, DeepSeek-V3's 512 + 64 latent widths) ------------
 *
 * A block takes one token and 16 of its heads, so the 16 heads share every cache row it loads
 * (the direct kernel above reads each row once per head), and a range of the token's positions
 * (a split: short batches cut long contexts into splits so that the GPU has enough blocks; a
 * second kernel merges the splits' partial softmaxes). Per tile of 32 positions: the rows (512
 * latent + 64 rope values, bf16) go to shared memory, zero past the token's last position;
 * scores S [16 heads x 32] = Q K^T with mma.m16n8k16 (warp w: positions 8w..8w+7, 36 k-steps);
 * the online softmax in base 2 with the row max and sum exchanged through shared memory; P (bf16)
 * to shared memory; O [16 x 512] += P V with V the same rows' latent part (warp w: columns
 * 128w..128w+127). q is rounded to bf16 and P is bf16, as in FlashAttention: errors of bf16
 * order, like every bf16-mode product. */
enum { TM_HEADS = 16, TM_POS = 32, TM_LAT = 512, TM_PE = 64, TM_K = TM_LAT + TM_PE,
       TM_STRIDE = TM_K + 8, /* bf16 per shared row: 292 words, rows g and g + 1 4 banks apart */
       TM_PSTRIDE = TM_POS + 8, TM_MIN_SPLIT = 64 };

__device__ __forceinline__ uint32_t bf16_pair(__nv_bfloat16 lo, __nv_bfloat16 hi) {
    return (uint32_t)__bfloat16_as_ushort(lo) | ((uint32_t)__bfloat16_as_ushort(hi) << 16);
}

/* The A fragment (mma16816's layout) of rows g and g + 8, columns c, c + 1 and c + 8, c + 9 of
 * a bf16 tile in shared memory with `stride` elements per row. */
__device__ __forceinline__ void a_fragment(uint32_t (&a)[4], const __nv_bfloat16 *tile,
                                           int stride, int g, int c) {
    a[0] = *(const uint32_t *)(tile + g * stride + c);
    a[1] = *(const uint32_t *)(tile + (g + 8) * stride + c);
    a[2] = *(const uint32_t *)(tile + g * stride + c + 8);
    a[3] = *(const uint32_t *)(tile + (g + 8) * stride + c + 8);
}

__global__ void __launch_bounds__(128)
    mla_attention_tc_kernel(float *out, float *part, const float *q_lat, const float *q_pe,
                            int pe_stride, const __nv_bfloat16 *kv_cache,
                            const __nv_bfloat16 *pe_cache, const int *slot, const int *pos,
                            int max_seq, int n_heads, int splits, int split_len, float scale2) {
    extern __shared__ __align__(16) unsigned char tm_smem[];
    __nv_bfloat16 *sq = (__nv_bfloat16 *)tm_smem;     /* [16][TM_STRIDE] */
    __nv_bfloat16 *sk = sq + TM_HEADS * TM_STRIDE;    /* [32][TM_STRIDE] */
    __nv_bfloat16 *sp = sk + TM_POS * TM_STRIDE;      /* [16][TM_PSTRIDE] */
    float *sred = (float *)(sp + TM_HEADS * TM_PSTRIDE); /* [4 warps][16] */
    const int i = blockIdx.x, h0 = blockIdx.y * TM_HEADS, split = blockIdx.z;
    const int len = pos[i] + 1, t_begin = split * split_len;
    const int t_end = min(len, t_begin + split_len);
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, tq = lane & 3;
    float *pm = part + (((int64_t)i * n_heads + h0) * splits + split) * (TM_LAT + 2);
    if (t_begin >= t_end) { /* an empty split: weight 0 in the merge */
        if (splits > 1)
            for (int h = threadIdx.x; h < TM_HEADS; h += blockDim.x) {
                float *p = pm + (int64_t)h * splits * (TM_LAT + 2);
                p[TM_LAT] = -INFINITY;
                p[TM_LAT + 1] = 0.0f;
            }
        return;
    }
    for (int k = threadIdx.x; k < TM_HEADS * TM_K; k += blockDim.x) {
        const int h = k / TM_K, c = k % TM_K;
        const int64_t row = (int64_t)i * n_heads + h0 + h;
        const float v = c < TM_LAT ? q_lat[row * TM_LAT + c] : q_pe[row * pe_stride + c - TM_LAT];
        sq[h * TM_STRIDE + c] = __float2bfloat16(v);
    }
    const __nv_bfloat16 *kv = kv_cache + (int64_t)slot[i] * max_seq * TM_LAT;
    const __nv_bfloat16 *pe = pe_cache + (int64_t)slot[i] * max_seq * TM_PE;
    float m_row[2] = {-INFINITY, -INFINITY}, l_row[2] = {0.0f, 0.0f}; /* rows g, g + 8 */
    float acc[16][4];
#pragma unroll
    for (int nt = 0; nt < 16; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;

    for (int t0 = t_begin; t0 < t_end; t0 += TM_POS) {
        __syncthreads(); /* the previous tile's sk and sp are no longer read */
        /* the tile's rows, 16 bytes at a time: 64 pieces of latent and 8 of rope per row */
        for (int k = threadIdx.x; k < TM_POS * (TM_K / 8); k += blockDim.x) {
            const int r = k / (TM_K / 8), piece = k % (TM_K / 8), t = t0 + r;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (t < t_end)
                v = piece < TM_LAT / 8
                        ? *(const uint4 *)(kv + (int64_t)t * TM_LAT + piece * 8)
                        : *(const uint4 *)(pe + (int64_t)t * TM_PE + (piece - TM_LAT / 8) * 8);
            *(uint4 *)(sk + r * TM_STRIDE + piece * 8) = v;
        }
        __syncthreads();
        /* S = Q K^T for this warp's 8 positions: two accumulators, even and odd k-steps, so
         * that consecutive products do not wait for each other */
        float s[4] = {0.0f, 0.0f, 0.0f, 0.0f}, s2[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const __nv_bfloat16 *krow = sk + (w * 8 + g) * TM_STRIDE;
#pragma unroll 6
        for (int ks = 0; ks < TM_K / 16; ks++) {
            const int c = ks * 16 + 2 * tq;
            uint32_t a[4];
            a_fragment(a, sq, TM_STRIDE, g, c);
            const uint32_t b0 = *(const uint32_t *)(krow + c);
            const uint32_t b1 = *(const uint32_t *)(krow + c + 8);
            if (ks & 1) mma16816(s2, a[0], a[1], a[2], a[3], b0, b1);
            else mma16816(s, a[0], a[1], a[2], a[3], b0, b1);
        }
#pragma unroll
        for (int e = 0; e < 4; e++) s[e] += s2[e];
        /* base-2 scores, masked past the token's last position; the tile's row max */
        const int tc = t0 + w * 8 + 2 * tq;
#pragma unroll
        for (int e = 0; e < 4; e++) s[e] = tc + (e & 1) < t_end ? s[e] * scale2 : -INFINITY;
        float mx[2] = {fmaxf(s[0], s[1]), fmaxf(s[2], s[3])};
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        }
        if (tq == 0) sred[w * 16 + g] = mx[0], sred[w * 16 + g + 8] = mx[1];
        __syncthreads();
        float m_new[2], alpha[2], sum[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = g + 8 * r;
            const float tmax = fmaxf(fmaxf(sred[row], sred[16 + row]),
                                     fmaxf(sred[32 + row], sred[48 + row]));
            m_new[r] = fmaxf(m_row[r], tmax);
            alpha[r] = exp2f(m_row[r] - m_new[r]);
        }
        const float p0 = exp2f(s[0] - m_new[0]), p1 = exp2f(s[1] - m_new[0]);
        const float p2 = exp2f(s[2] - m_new[1]), p3 = exp2f(s[3] - m_new[1]);
        sum[0] = p0 + p1;
        sum[1] = p2 + p3;
        const __nv_bfloat16 b_p0 = __float2bfloat16(p0), b_p1 = __float2bfloat16(p1);
        const __nv_bfloat16 b_p2 = __float2bfloat16(p2), b_p3 = __float2bfloat16(p3);
        *(uint32_t *)(sp + g * TM_PSTRIDE + w * 8 + 2 * tq) = bf16_pair(b_p0, b_p1);
        *(uint32_t *)(sp + (g + 8) * TM_PSTRIDE + w * 8 + 2 * tq) = bf16_pair(b_p2, b_p3);
#pragma unroll
        for (int r = 0; r < 2; r++) {
            sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 1);
            sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 2);
        }
        __syncthreads(); /* every warp has read sred's maxima and written its P */
        if (tq == 0) sred[w * 16 + g] = sum[0], sred[w * 16 + g + 8] = sum[1];
        __syncthreads();
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = g + 8 * r;
            const float tsum = sred[row] + sred[16 + row] + sred[32 + row] + sred[48 + row];
            l_row[r] = l_row[r] * alpha[r] + tsum;
            m_row[r] = m_new[r];
        }
        /* O = O alpha + P V over this warp's 128 columns */
#pragma unroll
        for (int nt = 0; nt < 16; nt++) {
            acc[nt][0] *= alpha[0], acc[nt][1] *= alpha[0];
            acc[nt][2] *= alpha[1], acc[nt][3] *= alpha[1];
        }
#pragma unroll
        for (int kk = 0; kk < TM_POS / 16; kk++) {
            const int c = kk * 16 + 2 * tq;
            uint32_t a[4];
            a_fragment(a, sp, TM_PSTRIDE, g, c);
            const __nv_bfloat16 *v0 = sk + c * TM_STRIDE, *v1 = v0 + TM_STRIDE;
            const __nv_bfloat16 *v8 = v0 + 8 * TM_STRIDE, *v9 = v8 + TM_STRIDE;
#pragma unroll
            for (int nt = 0; nt < 16; nt++) {
                const int col = w * 128 + nt * 8 + g;
                mma16816(acc[nt], a[0], a[1], a[2], a[3], bf16_pair(v0[col], v1[col]),
                         bf16_pair(v8[col], v9[col]));
            }
        }
    }
    /* one split: the normalised output; several: the partial sums and (max, sum) per head */
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int h = h0 + g + 8 * r;
        if (splits == 1) {
            float *o = out + ((int64_t)i * n_heads + h) * TM_LAT + w * 128 + 2 * tq;
            const float inv = 1.0f / l_row[r];
#pragma unroll
            for (int nt = 0; nt < 16; nt++)
                *(float2 *)(o + nt * 8) = make_float2(acc[nt][2 * r] * inv, acc[nt][2 * r + 1] * inv);
        } else {
            float *p = pm + (int64_t)(g + 8 * r) * splits * (TM_LAT + 2);
#pragma unroll
            for (int nt = 0; nt < 16; nt++) {
                p[w * 128 + nt * 8 + 2 * tq] = acc[nt][2 * r];
                p[w * 128 + nt * 8 + 2 * tq + 1] = acc[nt][2 * r + 1];
            }
            if (w == 0 && tq == 0) p[TM_LAT] = m_row[r], p[TM_LAT + 1] = l_row[r];
        }
    }
}

/* out[i, h] = sum_s O_s 2^(m_s - M) / sum_s l_s 2^(m_s - M): block (token, head). */
__global__ void mla_merge_splits_kernel(float *out, const float *part, int n_heads, int splits) {
    const int i = blockIdx.x, h = blockIdx.y;
    const float *p = part + ((int64_t)i * n_heads + h) * splits * (TM_LAT + 2);
    float M = -INFINITY;
    for (int s = 0; s < splits; s++) M = fmaxf(M, p[(int64_t)s * (TM_LAT + 2) + TM_LAT]);
    float L = 0.0f;
    for (int s = 0; s < splits; s++) {
        const float *ps = p + (int64_t)s * (TM_LAT + 2);
        if (ps[TM_LAT + 1] > 0.0f) L += ps[TM_LAT + 1] * exp2f(ps[TM_LAT] - M);
    }
    const float inv = 1.0f / L;
    for (int c = threadIdx.x; c < TM_LAT; c += blockDim.x) {
        float o = 0.0f;
        for (int s = 0; s < splits; s++) {
            const float *ps = p + (int64_t)s * (TM_LAT + 2);
            if (ps[TM_LAT + 1] > 0.0f) o = fmaf(ps[c], exp2f(ps[TM_LAT] - M), o);
        }
        out[((int64_t)i * n_heads + h) * TM_LAT + c] = o * inv;
    }
}

static bool mla_attention_tc_ok(const cuda_backend *cu, const backend *be, int n_heads, int lat,
                                int pe_dim) {
    return cu->mode == BACKEND_CUDA_BF16 && !cu->mla_direct && be->cache_dtype == DTYPE_BF16 &&
           lat == TM_LAT &&
           pe_dim == TM_PE && n_heads % TM_HEADS == 0 && n_heads / TM_HEADS <= 65535;
}

static void mla_attention_tc(cuda_backend *cu, float *out, const float *q_lat, const float *q_pe,
                             int pe_stride, const void *kv_cache, const void *pe_cache,
                             const token_layout *tl, int max_seq, int n_heads, float scale) {
    const int n = tl->n, groups = n_heads / TM_HEADS;
    /* splits: enough blocks for two waves when the batch is small, never below TM_MIN_SPLIT
     * positions each; fixed by (n, max_seq), so a recorded step replays with its split */
    const int blocks = n * groups, want = 2 * cu->sm_count;
    int splits = blocks >= want ? 1 : (want + blocks - 1) / blocks;
    const int most = (max_seq + TM_MIN_SPLIT - 1) / TM_MIN_SPLIT;
    if (splits > most) splits = most;
    if (splits > 64) splits = 64;
    if (splits < 1) splits = 1;
    int split_len = (max_seq + splits - 1) / splits;
    split_len = (split_len + TM_POS - 1) / TM_POS * TM_POS;
    float *part = NULL;
    if (splits > 1)
        part = (float *)cu_workspace(cu, WS_ATTN,
                                     sizeof(float) * (size_t)n * n_heads * splits * (TM_LAT + 2));
    const size_t smem = sizeof(__nv_bfloat16) * ((size_t)(TM_HEADS + TM_POS) * TM_STRIDE +
                                                 TM_HEADS * TM_PSTRIDE) +
                        sizeof(float) * 4 * TM_HEADS;
    static bool attr_set[64];
    if (!attr_set[cu->device & 63]) {
        CUDA_CHECK(cudaFuncSetAttribute(mla_attention_tc_kernel,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        attr_set[cu->device & 63] = true;
    }
    const dim3 grid((unsigned)n, (unsigned)groups, (unsigned)splits);
    mla_attention_tc_kernel<<<grid, 128, smem, cu->stream>>>(
        out, part, q_lat, q_pe, pe_stride, (const __nv_bfloat16 *)kv_cache,
        (const __nv_bfloat16 *)pe_cache, tl->slot, tl->pos, max_seq, n_heads, splits, split_len,
        scale * 1.4426950408889634f);
    LAUNCH_CHECK();
    if (splits > 1) {
        mla_merge_splits_kernel<<<dim3((unsigned)n, (unsigned)n_heads), 128, 0, cu->stream>>>(
            out, part, n_heads, splits);
        LAUNCH_CHECK();
    }
}

void cu_mla_attention(backend *be, float *out, const float *q_lat, const float *q_pe,
                      int pe_stride, const void *kv_cache, const void *pe_cache,
                      const token_layout *tl, int max_seq, int n_heads, int lat, int pe_dim,
                      float scale) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (tl->n <= 0 || n_heads <= 0) return;
    if (mla_attention_tc_ok(cu, be, n_heads, lat, pe_dim)) {
        mla_attention_tc(cu, out, q_lat, q_pe, pe_stride, kv_cache, pe_cache, tl, max_seq,
                         n_heads, scale);
        cu_touch(cu, out, sizeof(float) * (size_t)tl->n * n_heads * lat);
        return;
    }
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
