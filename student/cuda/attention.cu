/* Causal attention over packed documents: the tile list, the dispatcher, and the plain tiled
 * kernels (float32 arithmetic in shared memory, any head_dim up to 128) that are the readable
 * version of the tensor-core kernels in attention_mma.cu and their fallback.
 *
 * Forward (FlashAttention-2, Dao 2023, Algorithm 1), per query row i of head h:
 *   s_j = scale q_i . k_j  for keys j of i's document with j <= i
 *   m = max_j s_j, l = sum_j exp(s_j - m), o_i = sum_j exp(s_j - m) v_j / l, lse_i = m + log l
 * computed over key blocks with the running (m, l) rescaling.
 * Backward (Algorithm 2), with delta_i = dO_i . o_i:
 *   p_ij = exp(s_ij - lse_i),  dp_ij = dO_i . v_j,  ds_ij = p_ij (dp_ij - delta_i)
 *   dq_i = scale sum_j ds_ij k_j,  dk_j = scale sum_i ds_ij q_i,  dv_j = sum_i p_ij dO_i
 * dq is computed by a query-side kernel and dk, dv by a key-side kernel that also loops over the
 * query heads sharing the kv head (GQA), so every sum has one owner and a fixed order: no
 * atomics, bit-identical results run to run.
 *
 * Simple kernels: a block of 4 warps owns a 64-row tile; each warp owns 16 of its rows and
 * walks them one at a time against a block of 32 keys (queries, for the key side) staged in
 * shared memory, lane j taking key j of the block for the scores and dimension lane + 32 e for
 * the accumulators. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "student/cuda/attention.cuh"

enum { SIMPLE_KB = 32, SIMPLE_MAX_HD = 128 };

/* ---- the tile list (host) ------------------------------------------------------------------------ */

static bool tensor_core_head(int head_dim) { return head_dim == 64 || head_dim == 128; }

extern "C" int attention_mma_supported(const attn_shape *a, const void *qkv) {
    return tensor_core_head(a->head_dim) && aligned16(qkv);
}

extern "C" int attn_impl_parse(const char *name) {
    static const char *const names[] = {[ATTN_AUTO] = "auto", [ATTN_SIMPLE] = "simple",
                                        [ATTN_MMA] = "mma", [ATTN_WGMMA] = "wgmma"};
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

extern "C" int attn_tile_rows(attn_impl impl, int head_dim) {
    const bool wg = impl == ATTN_WGMMA || (impl == ATTN_AUTO && tensor_core_head(head_dim));
    return wg ? 2 * ATTN_TILE : ATTN_TILE;
}

extern "C" int attn_tiles_count(const int *cu_seqlens, int n_docs, int rows) {
    CHECK(rows > 0);
    int t = 0;
    for (int i = 0; i < n_docs; i++) {
        const int len = cu_seqlens[i + 1] - cu_seqlens[i];
        CHECK(len >= 0);
        t += (len + rows - 1) / rows;
    }
    return t;
}

/* Larger amount of work first: a query tile's work grows with row0 - doc0 (its keys), a key
 * tile's with doc1 - row0 (its queries). Ties keep row order, so the list is deterministic. */
static int cmp_q(const void *a, const void *b) {
    const int *x = (const int *)a, *y = (const int *)b;
    const int wx = x[0] - x[2], wy = y[0] - y[2];
    if (wx != wy) return wx > wy ? -1 : 1;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}
static int cmp_kv(const void *a, const void *b) {
    const int *x = (const int *)a, *y = (const int *)b;
    const int wx = x[3] - x[0], wy = y[3] - y[0];
    if (wx != wy) return wx > wy ? -1 : 1;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* dS slots of a document of len tokens: blocks (a, b) of 64 queries and 64 keys with b <= a. */
static long long ds_doc_slots(long long len) {
    const long long nb = (len + ATTN_TILE - 1) / ATTN_TILE;
    return nb * (nb + 1) / 2;
}

extern "C" int attn_tiles_build(int *tiles_q, int *tiles_kv, const int *cu_seqlens, int n_docs,
                                int rows) {
    CHECK(rows > 0);
    int t = 0;
    long long slots = 0;
    for (int i = 0; i < n_docs; i++) {
        const int d0 = cu_seqlens[i], d1 = cu_seqlens[i + 1];
        for (int r = d0; r < d1; r += rows) {
            int *e = tiles_q + ATTN_TILE_INTS * t++;
            e[0] = r;
            e[1] = r + rows < d1 ? r + rows : d1;
            e[2] = d0;
            e[3] = d1;
            e[4] = (int)slots;
        }
        slots += ds_doc_slots(d1 - d0);
        CHECK(slots <= INT_MAX);
    }
    for (int i = 0; i < ATTN_TILE_INTS * t; i++) tiles_kv[i] = tiles_q[i];
    qsort(tiles_q, (size_t)t, ATTN_TILE_INTS * sizeof(int), cmp_q);
    qsort(tiles_kv, (size_t)t, ATTN_TILE_INTS * sizeof(int), cmp_kv);
    return (int)slots;
}

/* [n][KV][2 hd] floats, in whole 256-byte units (dS follows them in the scratch). */
extern "C" size_t attn_ds_partial_bytes(int n, int n_kv_heads, int head_dim) {
    const size_t b = (size_t)n * n_kv_heads * 2 * head_dim * sizeof(float);
    return (b + 255) / 256 * 256;
}

/* ---- kernels --------------------------------------------------------------------------------------- */

/* delta[h, i] = sum_d dout[i, h hd + d] * out[i, h hd + d]: one warp per (row, head). */
__global__ void attn_delta_kernel(float *delta, const bf16 *dout, const bf16 *out, int n, int H,
                                  int hd) {
    const long long w = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (w >= (long long)n * H) return;
    const int i = (int)(w / H), h = (int)(w % H);
    const size_t base = (size_t)i * H * hd + (size_t)h * hd;
    float acc = 0.0f;
    for (int d = lane; d < hd; d += 32)
        acc += __bfloat162float(dout[base + d]) * __bfloat162float(out[base + d]);
    acc = warp_sum(acc);
    if (lane == 0) delta[(size_t)h * n + i] = acc;
}

/* The same with G = hd / 8 threads per (row, head), each reading 16 bytes of both rows (a warp
 * per row read 2 bytes per lane: 1.2 TB/s on the H100). Consecutive groups take consecutive
 * rows of one head, so the delta writes are contiguous. Every thread runs the shuffles. */
template <int G>
__global__ void attn_delta_vec_kernel(float *delta, const bf16 *dout, const bf16 *out, int n,
                                      int H) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long w = t / G;
    const int part = (int)(t % G);
    const bool ok = w < (long long)n * H;
    float acc = 0.0f;
    if (ok) {
        const int h = (int)(w / n), i = (int)(w % n);
        const size_t at = ((size_t)i * H + h) * (8 * G) + 8 * part;
        float a[8], b[8];
        unpack8(a, load8(dout + at));
        unpack8(b, load8(out + at));
#pragma unroll
        for (int e = 0; e < 8; e++) acc = fmaf(a[e], b[e], acc);
    }
#pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (ok && part == 0) delta[w] = acc;
}

/* Copies rows [r, r + rows) of head columns [col, col + hd) of a bf16 matrix with row stride ld
 * into float32 shared memory with row stride sld; rows at or past `end` become zeros. */
__device__ __forceinline__ void stage_rows(float *dst, int sld, const bf16 *src, size_t ld,
                                           int col, int r, int rows, int end, int hd) {
    for (int e = threadIdx.x; e < rows * hd; e += blockDim.x) {
        const int i = e / hd, d = e % hd;
        dst[i * sld + d] = r + i < end ? __bfloat162float(src[(size_t)(r + i) * ld + col + d]) : 0.0f;
    }
}

__global__ void attn_fwd_simple_kernel(bf16 *out, float *lse, const bf16 *qkv, const int *tiles,
                                       int n, int H, int KV, int hd, float scale) {
    extern __shared__ float sm[];
    float *qs = sm;                                  /* [64][hd] */
    float *os = qs + ATTN_TILE * hd;                 /* [64][hd] */
    float *ks = os + ATTN_TILE * hd;                 /* [32][hd + 1] */
    float *vs = ks + SIMPLE_KB * (hd + 1);           /* [32][hd] */
    float *row_m = vs + SIMPLE_KB * hd;              /* [64] */
    float *row_l = row_m + ATTN_TILE;                /* [64] */
    const int *t = tiles + ATTN_TILE_INTS * blockIdx.x;
    const int r0 = t[0], r1 = t[1], d0 = t[2];
    const int h = blockIdx.y, g = h / (H / KV);
    const size_t ld = (size_t)(H + 2 * KV) * hd;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

    stage_rows(qs, hd, qkv, ld, h * hd, r0, ATTN_TILE, r1, hd);
    for (int e = threadIdx.x; e < ATTN_TILE * hd; e += blockDim.x) os[e] = 0.0f;
    for (int e = threadIdx.x; e < ATTN_TILE; e += blockDim.x) {
        row_m[e] = -INFINITY;
        row_l[e] = 0.0f;
    }
    for (int kt = d0; kt < r1; kt += SIMPLE_KB) {
        __syncthreads(); /* the previous block's keys are no longer read */
        stage_rows(ks, hd + 1, qkv, ld, (H + g) * hd, kt, SIMPLE_KB, r1, hd);
        stage_rows(vs, hd, qkv, ld, (H + KV + g) * hd, kt, SIMPLE_KB, r1, hd);
        __syncthreads();
        for (int i = warp * 16; i < warp * 16 + 16; i++) {
            const int qi = r0 + i;
            if (qi >= r1) break;
            const int kj = kt + lane;
            float sc = -INFINITY;
            if (kj <= qi) {
                float dot = 0.0f;
                for (int d = 0; d < hd; d++) dot += qs[i * hd + d] * ks[lane * (hd + 1) + d];
                sc = dot * scale;
            }
            const float m_old = row_m[i];
            const float m_new = fmaxf(m_old, warp_max(sc));
            /* m_new is finite: the first key block starts at the document's first key <= qi */
            const float p = kj <= qi ? expf(sc - m_new) : 0.0f;
            const float alpha = expf(m_old - m_new);
            const float psum = warp_sum(p);
            /* every lane runs every shuffle; lanes past hd only skip the arithmetic */
            for (int e = 0; e * 32 < hd; e++) {
                const int d = lane + 32 * e;
                const bool ok = d < hd;
                float acc = ok ? os[i * hd + d] * alpha : 0.0f;
                for (int jj = 0; jj < SIMPLE_KB; jj++) {
                    const float pj = __shfl_sync(0xffffffffu, p, jj);
                    if (ok) acc += pj * vs[jj * hd + d];
                }
                if (ok) os[i * hd + d] = acc;
            }
            __syncwarp();
            if (lane == 0) {
                row_m[i] = m_new;
                row_l[i] = row_l[i] * alpha + psum;
            }
            __syncwarp();
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < ATTN_TILE * hd; e += blockDim.x) {
        const int i = e / hd, d = e % hd;
        if (r0 + i < r1)
            out[(size_t)(r0 + i) * H * hd + (size_t)h * hd + d] =
                __float2bfloat16_rn(os[e] / row_l[i]);
    }
    for (int i = threadIdx.x; i < ATTN_TILE; i += blockDim.x)
        if (r0 + i < r1) lse[(size_t)h * n + r0 + i] = row_m[i] + logf(row_l[i]);
}

__global__ void attn_dq_simple_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv,
                                      const float *lse, const float *delta, const int *tiles,
                                      int n, int H, int KV, int hd, float scale) {
    extern __shared__ float sm[];
    float *qs = sm;                          /* [64][hd] */
    float *dos = qs + ATTN_TILE * hd;        /* [64][hd] */
    float *dqs = dos + ATTN_TILE * hd;       /* [64][hd] */
    float *ks = dqs + ATTN_TILE * hd;        /* [32][hd + 1] */
    float *vs = ks + SIMPLE_KB * (hd + 1);   /* [32][hd + 1] */
    const int *t = tiles + ATTN_TILE_INTS * blockIdx.x;
    const int r0 = t[0], r1 = t[1], d0 = t[2];
    const int h = blockIdx.y, g = h / (H / KV);
    const size_t ld = (size_t)(H + 2 * KV) * hd;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

    stage_rows(qs, hd, qkv, ld, h * hd, r0, ATTN_TILE, r1, hd);
    stage_rows(dos, hd, dout, (size_t)H * hd, h * hd, r0, ATTN_TILE, r1, hd);
    for (int e = threadIdx.x; e < ATTN_TILE * hd; e += blockDim.x) dqs[e] = 0.0f;
    for (int kt = d0; kt < r1; kt += SIMPLE_KB) {
        __syncthreads();
        stage_rows(ks, hd + 1, qkv, ld, (H + g) * hd, kt, SIMPLE_KB, r1, hd);
        stage_rows(vs, hd + 1, qkv, ld, (H + KV + g) * hd, kt, SIMPLE_KB, r1, hd);
        __syncthreads();
        for (int i = warp * 16; i < warp * 16 + 16; i++) {
            const int qi = r0 + i;
            if (qi >= r1) break;
            const int kj = kt + lane;
            float ds = 0.0f;
            if (kj <= qi) {
                float s = 0.0f, dp = 0.0f;
                for (int d = 0; d < hd; d++) {
                    s += qs[i * hd + d] * ks[lane * (hd + 1) + d];
                    dp += dos[i * hd + d] * vs[lane * (hd + 1) + d];
                }
                const float p = expf(s * scale - lse[(size_t)h * n + qi]);
                ds = p * (dp - delta[(size_t)h * n + qi]);
            }
            for (int e = 0; e * 32 < hd; e++) {
                const int d = lane + 32 * e;
                const bool ok = d < hd;
                float acc = ok ? dqs[i * hd + d] : 0.0f;
                for (int jj = 0; jj < SIMPLE_KB; jj++) {
                    const float dsj = __shfl_sync(0xffffffffu, ds, jj);
                    if (ok) acc += dsj * ks[jj * (hd + 1) + d];
                }
                if (ok) dqs[i * hd + d] = acc;
            }
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < ATTN_TILE * hd; e += blockDim.x) {
        const int i = e / hd, d = e % hd;
        if (r0 + i < r1) dqkv[(size_t)(r0 + i) * ld + (size_t)h * hd + d] = __float2bfloat16_rn(dqs[e] * scale);
    }
}

__global__ void attn_dkv_simple_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv,
                                       const float *lse, const float *delta, const int *tiles,
                                       int n, int H, int KV, int hd, float scale) {
    extern __shared__ float sm[];
    float *ks = sm;                              /* [64][hd] */
    float *vs = ks + ATTN_TILE * hd;             /* [64][hd] */
    float *dks = vs + ATTN_TILE * hd;            /* [64][hd] */
    float *dvs = dks + ATTN_TILE * hd;           /* [64][hd] */
    float *qs = dvs + ATTN_TILE * hd;            /* [32][hd + 1] */
    float *dos = qs + SIMPLE_KB * (hd + 1);      /* [32][hd + 1] */
    float *ls = dos + SIMPLE_KB * (hd + 1);      /* [32] */
    float *dl = ls + SIMPLE_KB;                  /* [32] */
    const int *t = tiles + ATTN_TILE_INTS * blockIdx.x;
    const int r0 = t[0], r1 = t[1], d1 = t[3];
    const int g = blockIdx.y, G = H / KV;
    const size_t ld = (size_t)(H + 2 * KV) * hd;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

    stage_rows(ks, hd, qkv, ld, (H + g) * hd, r0, ATTN_TILE, r1, hd);
    stage_rows(vs, hd, qkv, ld, (H + KV + g) * hd, r0, ATTN_TILE, r1, hd);
    for (int e = threadIdx.x; e < ATTN_TILE * hd; e += blockDim.x) dks[e] = dvs[e] = 0.0f;
    for (int h = g * G; h < (g + 1) * G; h++) {
        for (int qt = r0; qt < d1; qt += SIMPLE_KB) {
            __syncthreads();
            stage_rows(qs, hd + 1, qkv, ld, h * hd, qt, SIMPLE_KB, d1, hd);
            stage_rows(dos, hd + 1, dout, (size_t)H * hd, h * hd, qt, SIMPLE_KB, d1, hd);
            for (int e = threadIdx.x; e < SIMPLE_KB; e += blockDim.x) {
                const bool ok = qt + e < d1;
                ls[e] = ok ? lse[(size_t)h * n + qt + e] : 0.0f;
                dl[e] = ok ? delta[(size_t)h * n + qt + e] : 0.0f;
            }
            __syncthreads();
            for (int i = warp * 16; i < warp * 16 + 16; i++) {
                const int kj = r0 + i;
                if (kj >= r1) break;
                const int qi = qt + lane;
                float p = 0.0f, ds = 0.0f;
                if (qi < d1 && qi >= kj) {
                    float s = 0.0f, dp = 0.0f;
                    for (int d = 0; d < hd; d++) {
                        s += ks[i * hd + d] * qs[lane * (hd + 1) + d];
                        dp += vs[i * hd + d] * dos[lane * (hd + 1) + d];
                    }
                    p = expf(s * scale - ls[lane]);
                    ds = p * (dp - dl[lane]);
                }
                for (int e = 0; e * 32 < hd; e++) {
                    const int d = lane + 32 * e;
                    const bool ok = d < hd;
                    float ak = ok ? dks[i * hd + d] : 0.0f, av = ok ? dvs[i * hd + d] : 0.0f;
                    for (int jj = 0; jj < SIMPLE_KB; jj++) {
                        const float pj = __shfl_sync(0xffffffffu, p, jj);
                        const float dsj = __shfl_sync(0xffffffffu, ds, jj);
                        if (ok) {
                            av += pj * dos[jj * (hd + 1) + d];
                            ak += dsj * qs[jj * (hd + 1) + d];
                        }
                    }
                    if (ok) {
                        dks[i * hd + d] = ak;
                        dvs[i * hd + d] = av;
                    }
                }
            }
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < ATTN_TILE * hd; e += blockDim.x) {
        const int i = e / hd, d = e % hd;
        if (r0 + i < r1) {
            bf16 *row = dqkv + (size_t)(r0 + i) * ld;
            row[(size_t)(H + g) * hd + d] = __float2bfloat16_rn(dks[e] * scale);
            row[(size_t)(H + KV + g) * hd + d] = __float2bfloat16_rn(dvs[e]);
        }
    }
}

/* ---- launchers ------------------------------------------------------------------------------------ */

static void check_shape(const attn_shape *a) {
    CHECK(a->n > 0 && a->n_heads > 0 && a->n_kv_heads > 0 && a->head_dim > 0);
    CHECK(a->n_heads % a->n_kv_heads == 0);
    CHECK(a->n_tiles > 0 && a->tiles_q && a->tiles_kv);
}

/* The kernels to run: the shape's impl, AUTO resolved (wgmma for head_dim 64 and 128); the tile
 * list must have been built for them. */
static attn_impl pick(const attn_shape *a, const void *qkv) {
    attn_impl impl = a->impl;
    if (impl == ATTN_AUTO) impl = tensor_core_head(a->head_dim) ? ATTN_WGMMA : ATTN_SIMPLE;
    if (impl != ATTN_SIMPLE) CHECK(attention_mma_supported(a, qkv));
    CHECK(a->tile_rows == attn_tile_rows(impl, a->head_dim));
    return impl;
}

extern "C" void attention_forward_cuda(r1_bf16 *out, float *lse, const r1_bf16 *qkv,
                                  const attn_shape *a, cudaStream_t s) {
    check_shape(a);
    const attn_impl impl = pick(a, qkv);
    if (impl == ATTN_WGMMA) {
        attention_forward_wgmma(out, lse, qkv, a, s);
        return;
    }
    if (impl == ATTN_MMA) {
        attention_forward_mma(out, lse, qkv, a, s);
        return;
    }
    const int hd = a->head_dim;
    CHECK(hd <= SIMPLE_MAX_HD);
    const size_t smem =
        sizeof(float) * (2 * ATTN_TILE * hd + SIMPLE_KB * (hd + 1) + SIMPLE_KB * hd + 2 * ATTN_TILE);
    attn_set_smem(attn_fwd_simple_kernel, smem);
    attn_fwd_simple_kernel<<<dim3(a->n_tiles, a->n_heads), 128, smem, s>>>(
        out, lse, qkv, a->tiles_q, a->n, a->n_heads, a->n_kv_heads, hd, a->scale);
    LAUNCH_CHECK();
}

extern "C" void attention_backward_cuda(r1_bf16 *dqkv, float *delta, const r1_bf16 *dout,
                                   const r1_bf16 *qkv, const r1_bf16 *out, const float *lse,
                                   const attn_shape *a, cudaStream_t s) {
    check_shape(a);
    const int hd = a->head_dim, H = a->n_heads, KV = a->n_kv_heads;
    const long long rows = (long long)a->n * H;
    if ((hd == 64 || hd == 128) && aligned16(dout) && aligned16(out)) {
        if (hd == 64)
            attn_delta_vec_kernel<8><<<ceil_div(rows * 8, 256), 256, 0, s>>>(delta, dout, out, a->n, H);
        else
            attn_delta_vec_kernel<16><<<ceil_div(rows * 16, 256), 256, 0, s>>>(delta, dout, out, a->n, H);
    } else {
        attn_delta_kernel<<<ceil_div(rows * 32, 256), 256, 0, s>>>(delta, dout, out, a->n, H, hd);
    }
    LAUNCH_CHECK();
    const attn_impl impl = pick(a, qkv);
    if (impl == ATTN_WGMMA) {
        attention_backward_wgmma(dqkv, delta, dout, qkv, lse, a, s);
        return;
    }
    if (impl == ATTN_MMA) {
        attention_backward_mma(dqkv, delta, dout, qkv, lse, a, s);
        return;
    }
    CHECK(hd <= SIMPLE_MAX_HD);
    const size_t smem_q = sizeof(float) * (3 * ATTN_TILE * hd + 2 * SIMPLE_KB * (hd + 1));
    attn_set_smem(attn_dq_simple_kernel, smem_q);
    attn_dq_simple_kernel<<<dim3(a->n_tiles, H), 128, smem_q, s>>>(
        dqkv, dout, qkv, lse, delta, a->tiles_q, a->n, H, KV, hd, a->scale);
    LAUNCH_CHECK();
    const size_t smem_kv =
        sizeof(float) * (4 * ATTN_TILE * hd + 2 * SIMPLE_KB * (hd + 1) + 2 * SIMPLE_KB);
    attn_set_smem(attn_dkv_simple_kernel, smem_kv);
    attn_dkv_simple_kernel<<<dim3(a->n_tiles, KV), 128, smem_kv, s>>>(
        dqkv, dout, qkv, lse, delta, a->tiles_kv, a->n, H, KV, hd, a->scale);
    LAUNCH_CHECK();
}
