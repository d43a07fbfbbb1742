/* teacher/sampler.h's token choice on the GPU (the contract is in teacher/sampler_device.h).
 *
 * For T > 0 three kernels per step, none of which sorts the vocabulary:
 *   1. range   (row, chunk) blocks: the largest and the smallest finite logit of each row
 *              (atomicMax on order-preserving integer keys; exact); also clears the row's
 *              histogram.
 *   2. hist    (row, chunk) blocks: w_i = exp(l_i / T - l_max / T) in double, added as exact
 *              fixed-point numbers into a per-row histogram of SD_NB "coarse" buckets, linear
 *              in l_max - l_i over min(48 T, l_max - l_min) (bucket 0 holds the largest logits;
 *              the last one also everything below, e.g. w < e^-48). A bucket is a contiguous run
 *              of the sorted order, so the histogram gives the count and the mass of every
 *              prefix of the order that ends at a bucket boundary.
 *   3. select  one block per row: each question sampler.h asks of the sorted order ("which is
 *              the K-th id", "where does the running sum first reach p * W", "where does it
 *              first exceed u * S") is answered by finding the coarse bucket where the running
 *              count or mass crosses the target, then (buckets of at most SD_CAP ids) sorting
 *              that bucket's ids by (logit descending, id ascending) in shared memory and
 *              scanning it, or (larger buckets) cutting it by the next SD_RB bits of the
 *              64-bit sort key (logit order, then id) and repeating.
 *
 * Fixed point: w in [0, 1] is w = a 2^-40 + b 2^-80 + c 2^-120 with 40-bit digits (the rest,
 * below 2^-120, is dropped: < 2^-102 of the total for any vocabulary < 2^18). Digits are summed
 * separately in 64-bit integers (no carries needed below 2^24 terms), so every sum is exact
 * and independent of the order of addition; a total becomes a double once, when it is
 * compared. Bytes per step: the logits are read once by each of kernels 1 and 2 and about once
 * per question by kernel 3 (mostly from L2); FLOPs: one double exp per logit. */
#include <math.h>
#include <stdlib.h>

#include "core/cuda/cuda_internal.cuh"

extern "C" {
#include "teacher/sampler_device.h"
}

enum {
    SD_NB = 1024,      /* coarse buckets */
    SD_CHUNK = 16384,  /* logits per block in kernels 1 and 2 (fewer blocks: each clears and
                          flushes a whole histogram) */
    SD_THREADS = 1024, /* threads of kernels 1 and 2 */
    SD_SEL_THREADS = 512, /* threads of kernel 3 (registers for eight loads in flight) */
    SD_CAP = 2048,     /* largest bucket sorted in shared memory */
    SD_RB = 10,        /* bits per refinement of a larger bucket (2^SD_RB <= SD_NB) */
};
#define SD_RANGE 48.0 /* coarse buckets cover (l_max - l) / T in [0, 48) */

typedef unsigned long long u64;

/* A count and an exact fixed-point mass (value a 2^-40 + b 2^-80 + c 2^-120). */
struct sd_acc {
    u64 n, a, b, c;
};

__device__ __forceinline__ sd_acc acc_zero() {
    sd_acc z;
    z.n = z.a = z.b = z.c = 0;
    return z;
}
__device__ __forceinline__ sd_acc acc_add(const sd_acc &x, const sd_acc &y) {
    sd_acc s;
    s.n = x.n + y.n, s.a = x.a + y.a, s.b = x.b + y.b, s.c = x.c + y.c;
    return s;
}
__device__ __forceinline__ sd_acc acc_sub(const sd_acc &x, const sd_acc &y) {
    sd_acc s;
    s.n = x.n - y.n, s.a = x.a - y.a, s.b = x.b - y.b, s.c = x.c - y.c;
    return s;
}
/* One weight w in [0, 1] as a count of 1 and its digits (each step is exact in double). */
__device__ __forceinline__ sd_acc acc_of(double w) {
    sd_acc s;
    s.n = 1;
    double x = w * 0x1p40;
    double f = floor(x);
    s.a = (u64)f;
    x = (x - f) * 0x1p40;
    f = floor(x);
    s.b = (u64)f;
    x = (x - f) * 0x1p40;
    s.c = (u64)floor(x);
    return s;
}
/* The mass as a double: deterministic, non-decreasing in every digit. */
__device__ __forceinline__ double acc_mass(const sd_acc &s) {
    return __dadd_rn(__dadd_rn(__dmul_rn((double)s.a, 0x1p-40), __dmul_rn((double)s.b, 0x1p-80)),
                     __dmul_rn((double)s.c, 0x1p-120));
}
__device__ __forceinline__ sd_acc shfl_up_acc(const sd_acc &v, int d) {
    sd_acc r;
    r.n = __shfl_up_sync(0xffffffffu, v.n, d);
    r.a = __shfl_up_sync(0xffffffffu, v.a, d);
    r.b = __shfl_up_sync(0xffffffffu, v.b, d);
    r.c = __shfl_up_sync(0xffffffffu, v.c, d);
    return r;
}
__device__ __forceinline__ sd_acc shfl_xor_acc(const sd_acc &v, int d) {
    sd_acc r;
    r.n = __shfl_xor_sync(0xffffffffu, v.n, d);
    r.a = __shfl_xor_sync(0xffffffffu, v.a, d);
    r.b = __shfl_xor_sync(0xffffffffu, v.b, d);
    r.c = __shfl_xor_sync(0xffffffffu, v.c, d);
    return r;
}
__device__ __forceinline__ void acc_atomic(sd_acc *dst, const sd_acc &v) {
    atomicAdd(&dst->n, v.n);
    atomicAdd(&dst->a, v.a);
    atomicAdd(&dst->b, v.b);
    atomicAdd(&dst->c, v.c);
}

/* An integer key that orders floats as < does (-0 as +0; NaN below everything). */
__device__ __forceinline__ uint32_t order_key(float f) {
    if (isnan(f)) return 0;
    if (f == 0.0f) f = 0.0f;
    const uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_float(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}
/* Ascending sort keys are sampler.h's order: larger logit first, then lower id. */
__device__ __forceinline__ u64 sort_key(float l, int id) {
    return ((u64)(~order_key(l)) << 32) | (uint32_t)id;
}
/* sampler.h step 3, with the CPU's operations (no contraction); NaN logits weigh nothing. */
__device__ __forceinline__ double weight_of(float l, double T, double zmax) {
    if (isnan(l)) return 0.0;
    return exp(__dadd_rn(__ddiv_rn((double)l, T), -zmax));
}
/* The coarse bucket: non-increasing in l, so buckets are runs of the sorted order. */
__device__ __forceinline__ int coarse_bucket(float l, float lmax, float scale) {
    const float x = __fmul_rn(__fsub_rn(lmax, l), scale);
    return x < (float)(SD_NB - 1) ? (int)x : SD_NB - 1;
}

__device__ __forceinline__ uint32_t warp_max_u32(uint32_t v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* ---- kernel 1: row ranges ------------------------------------------------------------------ */

/* range[2 row] = key of the largest logit; range[2 row + 1] = ~key of the smallest finite one
 * (so that both are atomicMax from 0). Block (c, row) also clears its share of the row's
 * histogram. */
__global__ void __launch_bounds__(SD_THREADS)
    sd_range_kernel(uint32_t *range, sd_acc *hist, const float *__restrict__ x, int V) {
    __shared__ uint32_t red[2][32];
    const float *l = x + (int64_t)blockIdx.y * V;
    const int start = blockIdx.x * SD_CHUNK, end = min(V, start + SD_CHUNK);
    uint32_t hi = 0, lo = 0;
    for (int i = start + threadIdx.x; i < end; i += blockDim.x) {
        const float v = l[i];
        const uint32_t k = order_key(v);
        hi = max(hi, k);
        if (isfinite(v)) lo = max(lo, ~k);
    }
    hi = warp_max_u32(hi), lo = warp_max_u32(lo);
    if ((threadIdx.x & 31) == 0) red[0][threadIdx.x >> 5] = hi, red[1][threadIdx.x >> 5] = lo;
    sd_acc *h = hist + (int64_t)blockIdx.y * SD_NB;
    for (int b = blockIdx.x * blockDim.x + threadIdx.x; b < SD_NB; b += gridDim.x * blockDim.x)
        h[b] = acc_zero();
    __syncthreads();
    if (threadIdx.x < 32) {
        const bool w = threadIdx.x < (blockDim.x >> 5);
        hi = warp_max_u32(w ? red[0][threadIdx.x] : 0);
        lo = warp_max_u32(w ? red[1][threadIdx.x] : 0);
        if (threadIdx.x == 0) {
            atomicMax(&range[2 * blockIdx.y], hi);
            atomicMax(&range[2 * blockIdx.y + 1], lo);
        }
    }
}

/* The coarse buckets' scale for a row: SD_NB buckets over min(48 T, l_max - l_min), computed
 * the same way by kernels 2 and 3. */
__device__ __forceinline__ float row_scale(float lmax, uint32_t lo_key, double T) {
    float span = (float)(SD_RANGE * T);
    if (lo_key) {
        const float spread = __fsub_rn(lmax, key_float(~lo_key));
        if (spread < span) span = spread;
    }
    return span > 0.0f ? __fdiv_rn((float)SD_NB, span) : 1.0f;
}

/* ---- kernel 2: coarse histograms ------------------------------------------------------------ */

struct sd_params {
    double T, P;
    int K, V;
};

__global__ void __launch_bounds__(SD_THREADS)
    sd_hist_kernel(sd_acc *hist, const uint32_t *range, const float *__restrict__ x,
                   sd_params p) {
    __shared__ sd_acc h[SD_NB];
    const int row = blockIdx.y, V = p.V;
    for (int b = threadIdx.x; b < SD_NB; b += blockDim.x) h[b] = acc_zero();
    __syncthreads();
    const float *l = x + (int64_t)row * V;
    const float lmax = key_float(range[2 * row]);
    const float scale = row_scale(lmax, range[2 * row + 1], p.T);
    const double zmax = __ddiv_rn((double)lmax, p.T);
    const int start = blockIdx.x * SD_CHUNK, end = min(V, start + SD_CHUNK);
    sd_acc tail = acc_zero(); /* the last bucket, which most ids of a peaked row fall in */
    for (int i = start + threadIdx.x; i < end; i += blockDim.x) {
        const float li = l[i];
        const int b = coarse_bucket(li, lmax, scale);
        const sd_acc v = acc_of(weight_of(li, p.T, zmax));
        if (b == SD_NB - 1) tail = acc_add(tail, v);
        else acc_atomic(&h[b], v);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) tail = acc_add(tail, shfl_xor_acc(tail, o));
    if ((threadIdx.x & 31) == 0 && tail.n) acc_atomic(&h[SD_NB - 1], tail);
    __syncthreads();
    sd_acc *g = hist + (int64_t)row * SD_NB;
    for (int b = threadIdx.x; b < SD_NB; b += blockDim.x)
        if (h[b].n) acc_atomic(&g[b], h[b]);
}

/* ---- kernel 3: the questions ------------------------------------------------------------------ */

/* In-place inclusive scan of v[0..n) by the whole block. */
__device__ void block_scan(sd_acc *v, int n, sd_acc *warp_tot) {
    const int tid = threadIdx.x, lane = tid & 31, wid = tid >> 5, nw = blockDim.x >> 5;
    const int ipt = (n + blockDim.x - 1) / blockDim.x, i0 = tid * ipt;
    sd_acc run = acc_zero();
    for (int i = i0; i < i0 + ipt && i < n; i++) {
        run = acc_add(run, v[i]);
        v[i] = run;
    }
    sd_acc incl = run;
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
        const sd_acc o = shfl_up_acc(incl, d);
        if (lane >= d) incl = acc_add(incl, o);
    }
    __syncthreads(); /* warp_tot may be in use by a previous scan */
    if (lane == 31) warp_tot[wid] = incl;
    __syncthreads();
    if (wid == 0) {
        sd_acc t = lane < nw ? warp_tot[lane] : acc_zero();
#pragma unroll
        for (int d = 1; d < 32; d <<= 1) {
            const sd_acc o = shfl_up_acc(t, d);
            if (lane >= d) t = acc_add(t, o);
        }
        if (lane < nw) warp_tot[lane] = t; /* inclusive over warps */
    }
    __syncthreads();
    const sd_acc before = acc_add(wid > 0 ? warp_tot[wid - 1] : acc_zero(), acc_sub(incl, run));
    for (int i = i0; i < i0 + ipt && i < n; i++) v[i] = acc_add(v[i], before);
    __syncthreads();
}

enum { Q_COUNT, Q_MASS_GE, Q_MASS_GT };

struct sd_query {
    int mode;
    u64 count;     /* Q_COUNT: the target count */
    double target; /* Q_MASS_*: the target mass */
};

__device__ __forceinline__ bool crossed(const sd_query &q, const sd_acc &cum) {
    if (q.mode == Q_COUNT) return cum.n >= q.count;
    const double m = acc_mass(cum);
    return q.mode == Q_MASS_GE ? m >= q.target : m > q.target;
}

/* The answer: the first element j of the order whose inclusive running total crosses the
 * target, its id, and the running total through it. */
struct sd_hit {
    int found;
    int id;
    u64 j;
    sd_acc cum;
};

struct sd_row {
    const float *l;
    int V;
    float lmax, scale;
    double T, zmax;
};

/* Calls f(i, l_i) for every logit of the row, eight loads in flight per thread where the row
 * allows 16-byte loads (the passes of kernel 3 run in one block per row: latency-bound
 * otherwise). */
template <class F>
__device__ __forceinline__ void each_logit(const sd_row &r, F f) {
    if ((r.V & 3) == 0 && ((uintptr_t)r.l & 15) == 0) {
        const float4 *l4 = reinterpret_cast<const float4 *>(r.l);
        const int n4 = r.V >> 2, step = blockDim.x;
        int i = threadIdx.x;
        for (; i + 7 * step < n4; i += 8 * step) {
            float4 v[8];
#pragma unroll
            for (int u = 0; u < 8; u++) v[u] = l4[i + u * step];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int j = 4 * (i + u * step);
                f(j, v[u].x), f(j + 1, v[u].y), f(j + 2, v[u].z), f(j + 3, v[u].w);
            }
        }
        for (; i < n4; i += step) {
            const float4 v = l4[i];
            f(4 * i, v.x), f(4 * i + 1, v.y), f(4 * i + 2, v.z), f(4 * i + 3, v.w);
        }
    } else {
        for (int i = threadIdx.x; i < r.V; i += blockDim.x) f(i, r.l[i]);
    }
}

/* Shared state of kernel 3. */
struct sd_shared {
    u64 red_min[32], red_max[32];
    sd_acc warp_tot[32];
    int first;
    int fill;
    sd_hit hit;
};

__device__ __forceinline__ u64 warp_min_u64(u64 v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ u64 warp_max_u64(u64 v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Answers one question; every thread of the block calls it and gets the answer in s->hit.
 * incl: the inclusive scan of the row's coarse histogram; work: SD_NB sd_acc of scratch or
 * SD_CAP keys followed by SD_CAP sd_acc. */
__device__ void answer(const sd_row &r, const sd_query &q, const sd_acc *incl,
                       unsigned char *work, sd_shared *s) {
    const int tid = threadIdx.x;
    if (tid == 0) s->first = SD_NB;
    __syncthreads();
    for (int b = tid; b < SD_NB; b += blockDim.x)
        if (crossed(q, incl[b])) atomicMin(&s->first, b);
    __syncthreads();
    const int B = s->first;
    if (B == SD_NB) { /* the totals never reach the target (rounding at the very end) */
        if (tid == 0) s->hit.found = 0;
        __syncthreads();
        return;
    }
    sd_acc base = B > 0 ? incl[B - 1] : acc_zero();
    u64 cnt = incl[B].n - base.n;
    u64 lo = 0, hi = ~0ull; /* sort-key range within bucket B */
    for (;;) {
        if (cnt <= SD_CAP) {
            /* gather the bucket's ids, sort them by key, scan their weights */
            u64 *keys = (u64 *)work;
            sd_acc *acc = (sd_acc *)(work + sizeof(u64) * SD_CAP);
            if (tid == 0) s->fill = 0;
            __syncthreads();
            each_logit(r, [&](int i, float li) {
                if (coarse_bucket(li, r.lmax, r.scale) != B) return;
                const u64 k = sort_key(li, i);
                if (k < lo || k > hi) return;
                const int at = atomicAdd(&s->fill, 1);
                if (at < SD_CAP) keys[at] = k;
            });
            __syncthreads();
            const int m = s->fill;
            if (m != (int)cnt) __trap(); /* the histogram and this pass disagree: a bug */
            int P2 = 1;
            while (P2 < m) P2 <<= 1;
            for (int i = m + tid; i < P2; i += blockDim.x) keys[i] = ~0ull;
            __syncthreads();
            for (int k = 2; k <= P2; k <<= 1) /* bitonic sort, ascending */
                for (int j = k >> 1; j > 0; j >>= 1) {
                    for (int i = tid; i < P2; i += blockDim.x) {
                        const int p = i ^ j;
                        if (p > i) {
                            const u64 a = keys[i], b = keys[p];
                            const bool up = (i & k) == 0;
                            if ((a > b) == up) keys[i] = b, keys[p] = a;
                        }
                    }
                    __syncthreads();
                }
            for (int i = tid; i < m; i += blockDim.x) {
                const int id = (int)(uint32_t)keys[i];
                acc[i] = acc_of(weight_of(r.l[id], r.T, r.zmax));
            }
            __syncthreads();
            block_scan(acc, m, s->warp_tot);
            if (tid == 0) s->first = m;
            __syncthreads();
            for (int i = tid; i < m; i += blockDim.x)
                if (crossed(q, acc_add(base, acc[i]))) atomicMin(&s->first, i);
            __syncthreads();
            if (tid == 0) {
                int i = s->first;
                if (i == m) i = m - 1; /* cannot happen: the bucket's total crosses */
                s->hit.found = 1;
                s->hit.id = (int)(uint32_t)keys[i];
                s->hit.j = base.n + (u64)i;
                s->hit.cum = acc_add(base, acc[i]);
            }
            __syncthreads();
            return;
        }
        /* refine: the key range of the bucket's members, then a histogram of the next bits */
        u64 mn = ~0ull, mx = 0;
        each_logit(r, [&](int i, float li) {
            if (coarse_bucket(li, r.lmax, r.scale) != B) return;
            const u64 k = sort_key(li, i);
            if (k < lo || k > hi) return;
            mn = min(mn, k), mx = max(mx, k);
        });
        mn = warp_min_u64(mn), mx = warp_max_u64(mx);
        if ((tid & 31) == 0) s->red_min[tid >> 5] = mn, s->red_max[tid >> 5] = mx;
        __syncthreads();
        mn = ~0ull, mx = 0;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++)
            mn = min(mn, s->red_min[w]), mx = max(mx, s->red_max[w]);
        const int hb = 63 - __clzll((long long)(mn ^ mx)); /* > 0: cnt > 1 distinct keys */
        const int shift = hb >= SD_RB - 1 ? hb - (SD_RB - 1) : 0;
        const u64 top0 = mn >> shift;
        sd_acc *h = (sd_acc *)work;
        for (int b = tid; b < (1 << SD_RB); b += blockDim.x) h[b] = acc_zero();
        __syncthreads();
        each_logit(r, [&](int i, float li) {
            if (coarse_bucket(li, r.lmax, r.scale) != B) return;
            const u64 k = sort_key(li, i);
            if (k < lo || k > hi) return;
            acc_atomic(&h[(k >> shift) - top0], acc_of(weight_of(li, r.T, r.zmax)));
        });
        __syncthreads();
        block_scan(h, 1 << SD_RB, s->warp_tot);
        if (tid == 0) s->first = 1 << SD_RB;
        __syncthreads();
        for (int b = tid; b < (1 << SD_RB); b += blockDim.x)
            if (crossed(q, acc_add(base, h[b]))) atomicMin(&s->first, b);
        __syncthreads();
        int sb = s->first;
        if (sb == (1 << SD_RB)) sb = (1 << SD_RB) - 1; /* cannot happen, as above */
        const sd_acc before = sb > 0 ? h[sb - 1] : acc_zero();
        cnt = h[sb].n - before.n;
        base = acc_add(base, before);
        const u64 nlo = (top0 + (u64)sb) << shift, nhi = nlo + ((1ull << shift) - 1);
        lo = max(lo, nlo), hi = min(hi, nhi);
        __syncthreads(); /* h is reused */
    }
}

__global__ void __launch_bounds__(SD_SEL_THREADS)
    sd_select_kernel(int *out, const float *__restrict__ x, const uint32_t *range,
                     const sd_acc *hist, const double *u, sd_params p) {
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ sd_shared s;
    sd_acc *incl = (sd_acc *)smem;
    unsigned char *work = smem + sizeof(sd_acc) * SD_NB;
    const int row = blockIdx.x, tid = threadIdx.x;
    sd_row r;
    r.l = x + (int64_t)row * p.V;
    r.V = p.V;
    r.lmax = key_float(range[2 * row]);
    r.scale = row_scale(r.lmax, range[2 * row + 1], p.T);
    r.T = p.T;
    r.zmax = __ddiv_rn((double)r.lmax, p.T);
    for (int b = tid; b < SD_NB; b += blockDim.x) incl[b] = hist[(int64_t)row * SD_NB + b];
    __syncthreads();
    block_scan(incl, SD_NB, s.warp_tot);
    const sd_acc W = incl[SD_NB - 1];

    /* step 4: top-k */
    const u64 V = (u64)p.V;
    const u64 n0 = p.K > 0 && (u64)p.K < V ? (u64)p.K : V;
    sd_acc Wk = W;
    int last_id = -1; /* the id at index n1 - 1, when known */
    if (n0 < V) {
        sd_query q = {Q_COUNT, n0, 0.0};
        answer(r, q, incl, work, &s);
        Wk = s.hit.cum;
        last_id = s.hit.id;
    }
    /* step 5: top-p, relative to the top-k set */
    u64 n1 = n0;
    sd_acc S = Wk;
    if (p.P < 1.0) {
        sd_query q = {Q_MASS_GE, 0, __dmul_rn(p.P, acc_mass(Wk))};
        answer(r, q, incl, work, &s);
        if (s.hit.found && s.hit.j + 1 < n0) {
            n1 = s.hit.j + 1;
            S = s.hit.cum;
            last_id = s.hit.id;
        }
    }
    /* step 6 */
    {
        sd_query q = {Q_MASS_GT, 0, __dmul_rn(u[row], acc_mass(S))};
        answer(r, q, incl, work, &s);
    }
    if (s.hit.found && s.hit.j < n1) {
        if (tid == 0) out[row] = s.hit.id;
        return;
    }
    if (last_id < 0) { /* rounding left no id: the last kept one, as the CPU returns */
        sd_query q = {Q_COUNT, n1, 0.0};
        answer(r, q, incl, work, &s);
        last_id = s.hit.id;
    }
    if (tid == 0) out[row] = last_id;
}

/* ---- the host side --------------------------------------------------------------------------- */

static const size_t SD_SMEM =
    sizeof(sd_acc) * SD_NB +
    (sizeof(u64) * SD_CAP + sizeof(sd_acc) * SD_CAP > sizeof(sd_acc) * (1 << SD_RB)
         ? sizeof(u64) * SD_CAP + sizeof(sd_acc) * SD_CAP
         : sizeof(sd_acc) * (1 << SD_RB));

struct sampler_device {
    backend *be;
    int max_rows, vocab;
    void *scratch;   /* range [2 max_rows] u32, padded to 256 bytes; hist [max_rows][SD_NB] */
    size_t scratch_bytes;
    double *u_dev;   /* [max_rows] */
    int *tok_dev;    /* [max_rows] */
};

extern "C" int sampler_device_supported(const backend *be) { return backend_cuda_is(be); }

extern "C" int sampler_device_open(sampler_device **out, backend *be, int max_rows, int vocab) {
    *out = NULL;
    if (!backend_cuda_is(be))
        return err_fail(R1_EINPUT, "sampler", "the %s backend samples on the host", be->name);
    if (max_rows < 1 || vocab < 1 || vocab >= (1 << 24))
        return err_fail(R1_EINPUT, "sampler", "%d rows of %d logits", max_rows, vocab);
    CUDA_CHECK(cudaFuncSetAttribute(sd_select_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)SD_SMEM));
    sampler_device *sd = (sampler_device *)xcalloc(1, sizeof *sd);
    sd->be = be;
    sd->max_rows = max_rows;
    sd->vocab = vocab;
    const size_t rm = ((2 * sizeof(uint32_t) * (size_t)max_rows + 255) / 256) * 256;
    sd->scratch_bytes = rm + sizeof(sd_acc) * SD_NB * (size_t)max_rows;
    sd->scratch = be->alloc(be, sd->scratch_bytes);
    sd->u_dev = (double *)be->alloc(be, sizeof(double) * (size_t)max_rows);
    sd->tok_dev = (int *)be->alloc(be, sizeof(int) * (size_t)max_rows);
    *out = sd;
    return R1_OK;
}

extern "C" void sampler_device_close(sampler_device *sd) {
    if (!sd) return;
    backend *be = sd->be;
    be->release(be, sd->scratch);
    be->release(be, sd->u_dev);
    be->release(be, sd->tok_dev);
    free(sd);
}

extern "C" void sampler_device_pick(sampler_device *sd, int *tokens, const float *logits, int n,
                                    const sampler_params *sp, const double *u) {
    backend *be = sd->be;
    cuda_backend *cu = cu_of(be);
    CU_REQUIRE(n >= 1 && n <= sd->max_rows, "sampler: %d rows (room for %d)", n, sd->max_rows);
    CU_REQUIRE(!cu->recording, "sampler while recording a CUDA graph");
    const int V = sd->vocab;
    if (sp->temperature == 0) {
        be->argmax(be, sd->tok_dev, logits, n, V);
        be->download(be, tokens, sd->tok_dev, sizeof(int) * (size_t)n);
        return;
    }
    be->upload(be, sd->u_dev, u, sizeof(double) * (size_t)n);
    const size_t rm = ((2 * sizeof(uint32_t) * (size_t)sd->max_rows + 255) / 256) * 256;
    uint32_t *range = (uint32_t *)sd->scratch;
    sd_acc *hist = (sd_acc *)((char *)sd->scratch + rm);
    CUDA_CHECK(cudaMemsetAsync(range, 0, 2 * sizeof(uint32_t) * (size_t)n, cu->stream));
    sd_params p;
    p.T = sp->temperature;
    p.P = sp->top_p;
    p.K = sp->top_k;
    p.V = V;
    const dim3 grid((unsigned)((V + SD_CHUNK - 1) / SD_CHUNK), (unsigned)n);
    sd_range_kernel<<<grid, SD_THREADS, 0, cu->stream>>>(range, hist, logits, V);
    LAUNCH_CHECK();
    sd_hist_kernel<<<grid, SD_THREADS, 0, cu->stream>>>(hist, range, logits, p);
    LAUNCH_CHECK();
    sd_select_kernel<<<n, SD_SEL_THREADS, SD_SMEM, cu->stream>>>(sd->tok_dev, logits, range, hist,
                                                             sd->u_dev, p);
    LAUNCH_CHECK();
    be->download(be, tokens, sd->tok_dev, sizeof(int) * (size_t)n);
}
