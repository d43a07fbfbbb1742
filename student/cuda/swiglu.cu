/* SwiGLU, the MLP's gate (transformers: down_proj(act_fn(gate_proj(x)) * up_proj(x))) on the
 * fused gate/up projection gu[n, 2 ff] = [gate | up]:
 *
 *   out = silu(g) u,  silu(g) = g sigmoid(g)
 *   dg  = dout u sigmoid(g) (1 + g (1 - sigmoid(g))),   du = dout silu(g)
 *
 * Element-wise; VEC = 8 uses 16-byte loads. The backward reads g and u before it writes dg and du
 * at the same places, so it may run in place (dgu == gu).
 *
 * A trainer that recomputes the SwiGLU output for the down projection's weight gradient can have
 * the backward write it (swiglu_backward_refill_cuda) instead of running the forward again: the
 * backward computes silu(g) anyway, and one pass over [gate | up] instead of two saves reading it
 * (2 n ff bytes, a third of the pair's traffic). out = silu(g) u is the forward's expression in
 * the forward's order, so the bits are the forward's. */
#include "student/cuda/common.cuh"

/* ---- kernels ------------------------------------------------------------------------------------ */

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

template <int VEC>
__global__ void swiglu_forward_kernel(bf16 *out, const bf16 *gu, int n, int ff) {
    const int per_row = ff / VEC;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)n * per_row) return;
    const long long i = idx / per_row;
    const int j = (int)(idx % per_row) * VEC;
    const bf16 *row = gu + (size_t)i * 2 * ff;
    float g[VEC], u[VEC], o[VEC];
    load_vec<VEC>(g, row + j);
    load_vec<VEC>(u, row + ff + j);
#pragma unroll
    for (int e = 0; e < VEC; e++) o[e] = g[e] * sigmoidf_(g[e]) * u[e];
    store_vec<VEC>(out + (size_t)i * ff + j, o);
}

/* act: where silu(g) u also goes, or NULL (ACT false) */
template <int VEC, bool ACT>
__global__ void swiglu_backward_kernel(bf16 *dgu, bf16 *act, const bf16 *dout, const bf16 *gu,
                                       int n, int ff) {
    const int per_row = ff / VEC;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)n * per_row) return;
    const long long i = idx / per_row;
    const int j = (int)(idx % per_row) * VEC;
    const bf16 *row = gu + (size_t)i * 2 * ff;
    float g[VEC], u[VEC], d[VEC], dg[VEC], du[VEC], o[VEC];
    load_vec<VEC>(g, row + j);
    load_vec<VEC>(u, row + ff + j);
    load_vec<VEC>(d, dout + (size_t)i * ff + j);
#pragma unroll
    for (int e = 0; e < VEC; e++) {
        const float sg = sigmoidf_(g[e]);
        const float silu = g[e] * sg;
        o[e] = silu * u[e];
        du[e] = d[e] * silu;
        dg[e] = d[e] * u[e] * sg * (1.0f + g[e] * (1.0f - sg));
    }
    bf16 *drow = dgu + (size_t)i * 2 * ff;
    store_vec<VEC>(drow + j, dg);
    store_vec<VEC>(drow + ff + j, du);
    if (ACT) store_vec<VEC>(act + (size_t)i * ff + j, o);
}

/* ---- launchers ---------------------------------------------------------------------------------- */

extern "C" void swiglu_forward_cuda(r1_bf16 *out, const r1_bf16 *gu, int n, int ff, cudaStream_t s) {
    CHECK(n > 0 && ff > 0);
    const bool v8 = ff % 8 == 0 && aligned16(out) && aligned16(gu);
    const int vec = v8 ? 8 : 1;
    const int blocks = ceil_div((long long)n * (ff / vec), 256);
    if (v8)
        swiglu_forward_kernel<8><<<blocks, 256, 0, s>>>(out, gu, n, ff);
    else
        swiglu_forward_kernel<1><<<blocks, 256, 0, s>>>(out, gu, n, ff);
    LAUNCH_CHECK();
}

static void swiglu_backward_launch(r1_bf16 *dgu, r1_bf16 *act, const r1_bf16 *dout,
                                   const r1_bf16 *gu, int n, int ff, cudaStream_t s) {
    CHECK(n > 0 && ff > 0);
    const bool v8 = ff % 8 == 0 && aligned16(dgu) && aligned16(dout) && aligned16(gu) &&
                    (!act || aligned16(act));
    const int vec = v8 ? 8 : 1;
    const int blocks = ceil_div((long long)n * (ff / vec), 256);
#define L(V, A) swiglu_backward_kernel<V, A><<<blocks, 256, 0, s>>>(dgu, act, dout, gu, n, ff)
    if (v8)
        act ? L(8, true) : L(8, false);
    else
        act ? L(1, true) : L(1, false);
#undef L
    LAUNCH_CHECK();
}

extern "C" void swiglu_backward_cuda(r1_bf16 *dgu, const r1_bf16 *dout, const r1_bf16 *gu, int n,
                                int ff, cudaStream_t s) {
    swiglu_backward_launch(dgu, NULL, dout, gu, n, ff, s);
}

extern "C" void swiglu_backward_refill_cuda(r1_bf16 *dgu, r1_bf16 *act, const r1_bf16 *dout,
                                            const r1_bf16 *gu, int n, int ff, cudaStream_t s) {
    CHECK(act);
    swiglu_backward_launch(dgu, act, dout, gu, n, ff, s);
}
