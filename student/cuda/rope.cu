/* Rotary embeddings in the rotate-half layout (transformers' apply_rotary_pos_emb for Qwen2 and
 * Llama): within the first rot_dim values of a head, x[j] pairs with x[j + rot_dim/2] and
 *
 *   forward   x0' = x0 c - x1 s,   x1' = x1 c + x0 s
 *   backward  d0  = d0' c + d1' s, d1  = d1' c - d0' s      (the transpose: rotation by -angle)
 *
 * cos/sin come from a table built on the host with core/rope.h (the same float32 values the CPU
 * reference uses, llama3 and yarn scaling included); each token reads its row by position, and
 * positions restart at every packed document. One thread rotates VEC pairs of one head. */
#include <math.h>

#include "student/cuda/common.cuh"

/* ---- kernels ------------------------------------------------------------------------------------ */

template <int VEC>
__global__ void rope_kernel(bf16 *x, int ld, int n_heads, int head_dim, int half, const float *cs,
                            const int *pos, int n, float sign) {
    const int groups = half / VEC; /* thread groups per head */
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long total = (long long)n * n_heads * groups;
    if (idx >= total) return;
    const int jg = (int)(idx % groups);
    const long long th = idx / groups;
    const int h = (int)(th % n_heads);
    const int i = (int)(th / n_heads);
    const int j = jg * VEC;
    bf16 *v = x + (size_t)i * ld + (size_t)h * head_dim;
    const float *t = cs + ((size_t)pos[i] * half + j) * 2;
    float a[VEC], b[VEC];
    load_vec<VEC>(a, v + j);
    load_vec<VEC>(b, v + j + half);
#pragma unroll
    for (int e = 0; e < VEC; e++) {
        const float c = t[2 * e], sn = t[2 * e + 1] * sign;
        const float a2 = a[e] * c - b[e] * sn;
        const float b2 = b[e] * c + a[e] * sn;
        a[e] = a2;
        b[e] = b2;
    }
    store_vec<VEC>(v + j, a);
    store_vec<VEC>(v + j + half, b);
}

/* ---- the table (host) ---------------------------------------------------------------------------- */

extern "C" void rope_cs_table(float *cs, const float *inv_freq, float attn_factor, int rot_dim,
                              int max_pos) {
    const int half = rot_dim / 2;
    for (int p = 0; p < max_pos; p++)
        for (int j = 0; j < half; j++) {
            /* float32 angle, as transformers and core/rope.c compute it */
            const float angle = (float)p * inv_freq[j];
            cs[((size_t)p * half + j) * 2] = cosf(angle) * attn_factor;
            cs[((size_t)p * half + j) * 2 + 1] = sinf(angle) * attn_factor;
        }
}

/* ---- launchers ---------------------------------------------------------------------------------- */

static void rope_launch(bf16 *x, int ld, int n_heads, int head_dim, int rot_dim, const float *cs,
                        const int *pos, int n, float sign, cudaStream_t s) {
    CHECK(n > 0 && n_heads > 0 && rot_dim > 0 && rot_dim % 2 == 0 && rot_dim <= head_dim);
    CHECK(ld >= n_heads * head_dim);
    const int half = rot_dim / 2;
    /* 16-byte vectors when every pair block starts 16-byte aligned */
    const bool v8 = half % 8 == 0 && head_dim % 8 == 0 && ld % 8 == 0 && aligned16(x);
    const int vec = v8 ? 8 : 1;
    const long long total = (long long)n * n_heads * (half / vec);
    const int threads = 256;
    const int blocks = ceil_div(total, threads);
    if (v8)
        rope_kernel<8><<<blocks, threads, 0, s>>>(x, ld, n_heads, head_dim, half, cs, pos, n, sign);
    else
        rope_kernel<1><<<blocks, threads, 0, s>>>(x, ld, n_heads, head_dim, half, cs, pos, n, sign);
    LAUNCH_CHECK();
}

extern "C" void rope_forward_cuda(r1_bf16 *x, int ld, int n_heads, int head_dim, int rot_dim,
                             const float *cs, const int *pos, int n, cudaStream_t s) {
    rope_launch(x, ld, n_heads, head_dim, rot_dim, cs, pos, n, 1.0f, s);
}

extern "C" void rope_backward_cuda(r1_bf16 *dx, int ld, int n_heads, int head_dim, int rot_dim,
                              const float *cs, const int *pos, int n, cudaStream_t s) {
    rope_launch(dx, ld, n_heads, head_dim, rot_dim, cs, pos, n, -1.0f, s);
}
