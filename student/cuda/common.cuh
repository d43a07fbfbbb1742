/* What every training kernel file shares: the bf16 type, check macros, 16-byte vector
 * loads, warp and block reductions, and the tensor-core fragment helpers (ldmatrix, mma.sync,
 * cp.async) the attention kernels are built from. Device code only; the C API is kernels.h. */
#ifndef R1_STUDENT_CUDA_COMMON_CUH
#define R1_STUDENT_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "core/cuda/warp_reduce.cuh"
#include "student/cuda/kernels.h"

/* core/error.h is C11; its _Noreturn is spelled as the attribute C++ understands. */
#ifndef _Noreturn
#define _Noreturn __attribute__((noreturn))
#endif
extern "C" {
#include "core/error.h"
}

typedef __nv_bfloat16 bf16;

/* Ends every launcher (llm.c's cudaCheck(cudaGetLastError())): a bad configuration is reported
 * at the launch that caused it, with file and line. */
#define LAUNCH_CHECK() R1_CUDA_CHECK(cudaGetLastError())

static inline int ceil_div(long long a, long long b) { return (int)((a + b - 1) / b); }

/* ---- 16-byte vectors of 8 bf16 (llm.c's Packed128) ---------------------------------------- */

struct alignas(16) bf16x8 {
    __nv_bfloat162 h[4];
};

__device__ __forceinline__ bf16x8 load8(const bf16 *p) {
    bf16x8 v;
    *reinterpret_cast<uint4 *>(&v) = *reinterpret_cast<const uint4 *>(p);
    return v;
}
__device__ __forceinline__ void store8(bf16 *p, bf16x8 v) {
    *reinterpret_cast<uint4 *>(p) = *reinterpret_cast<const uint4 *>(&v);
}
__device__ __forceinline__ void unpack8(float f[8], bf16x8 v) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __bfloat1622float2(v.h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}
__device__ __forceinline__ bf16x8 pack8(const float f[8]) {
    bf16x8 v;
#pragma unroll
    for (int i = 0; i < 4; i++) v.h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    return v;
}

/* Loads VEC consecutive bf16 as floats (VEC = 8: one 16-byte load; VEC = 1: a scalar). */
template <int VEC>
__device__ __forceinline__ void load_vec(float f[VEC], const bf16 *p) {
    if constexpr (VEC == 8) {
        unpack8(f, load8(p));
    } else {
#pragma unroll
        for (int i = 0; i < VEC; i++) f[i] = __bfloat162float(p[i]);
    }
}
template <int VEC>
__device__ __forceinline__ void store_vec(bf16 *p, const float f[VEC]) {
    if constexpr (VEC == 8) {
        store8(p, pack8(f));
    } else {
#pragma unroll
        for (int i = 0; i < VEC; i++) p[i] = __float2bfloat16_rn(f[i]);
    }
}

/* 16-byte vectors are used only when every row start is 16-byte aligned. */
static inline bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* A parameter gradient is bf16 or float32 (kernels.h R1_GRAD_*): read, add, write back. */
__device__ __forceinline__ void grad_add(void *g, int f32, long long i, float v) {
    if (f32) {
        float *p = (float *)g + i;
        *p = *p + v;
    } else {
        bf16 *p = (bf16 *)g + i;
        *p = __float2bfloat16_rn(__bfloat162float(*p) + v);
    }
}
/* The split float32 of core/dtype.h (f32_split_hi, f32_split_lo, f32_join) on the device. */
__device__ __forceinline__ void master_store(bf16 *w, uint16_t *lo, size_t i, float f) {
    const uint32_t u = __float_as_uint(f);
    w[i] = __ushort_as_bfloat16((unsigned short)((u + 0x8000u) >> 16));
    lo[i] = (uint16_t)u;
}
__device__ __forceinline__ float master_load(const bf16 *w, const uint16_t *lo, size_t i) {
    const uint32_t l = lo[i];
    return __uint_as_float(((uint32_t)__bfloat16_as_ushort(w[i]) << 16) + l -
                           (l & 0x8000u ? 0x10000u : 0u));
}

__device__ __forceinline__ float grad_get(const void *g, int f32, long long i) {
    return f32 ? ((const float *)g)[i] : __bfloat162float(((const bf16 *)g)[i]);
}

/* ---- reductions (warp_sum, warp_max: core/cuda/warp_reduce.cuh) ---------------------------- */

/* Sum over the block, returned to every thread. `red` is shared scratch of 32 floats; the
 * block size is a multiple of 32. The order is fixed (lane tree, then warp tree), so the result
 * is the same on every run. Two barriers make `red` reusable by the next call. */
__device__ __forceinline__ float block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < nw ? red[lane] : 0.0f;
    t = warp_sum(t);
    __syncthreads();
    return t;
}
__device__ __forceinline__ float block_max(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < nw ? red[lane] : -INFINITY;
    t = warp_max(t);
    __syncthreads();
    return t;
}

/* ---- tensor-core helpers (sm_80+ mma.sync, used on Hopper too) --------------------------------
 *
 * mma.m16n8k16 bf16 -> f32. With g = lane / 4 and t = lane % 4:
 *   A (16x16, row-major)  a[0]: (g, 2t..2t+1)  a[1]: (g+8, 2t..)  a[2]: (g, 2t+8..)  a[3]: (g+8, 2t+8..)
 *   B (16x8, k x n)       b[0]: (k = 2t..2t+1, n = g)   b[1]: (k = 2t+8..2t+9, n = g)
 *   C (16x8, f32)         c[0], c[1]: (g, 2t), (g, 2t+1)    c[2], c[3]: (g+8, 2t), (g+8, 2t+1)
 * Each register of A and B holds two bf16, the lower k in the low half. */

__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0,
                                         uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* Four 8x8 bf16 matrices from shared memory; lane l gives the address of row (l % 8) of
 * matrix (l / 8); register i receives matrix i, lane l holding its row l / 4, columns
 * 2 (l % 4) and 2 (l % 4) + 1. The .trans form delivers the transpose of each matrix. */
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

/* A fragment of the 16x16 block at (row0, col0) of a row-major bf16 tile in shared memory
 * (`ld` elements per row): matrices (rows 0-7, cols 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15)
 * are a[0..3]. */
__device__ __forceinline__ void load_a_frag(uint32_t a[4], const bf16 *tile, int ld, int row0,
                                            int col0) {
    const int l = threadIdx.x & 31;
    ldmatrix_x4(a, tile + (size_t)(row0 + (l & 15)) * ld + col0 + (l >> 4) * 8);
}

/* B fragments for two n-blocks of 8 when B[k][n] = M[n][k] with M row-major in shared memory
 * (keys stored by row, B = K^T): b[0], b[1] for n in [n0, n0+8), b[2], b[3] for [n0+8, n0+16),
 * k in [k0, k0+16). */
__device__ __forceinline__ void load_b_frag_nk(uint32_t b[4], const bf16 *tile, int ld, int n0,
                                               int k0) {
    const int l = threadIdx.x & 31;
    ldmatrix_x4(b, tile + (size_t)(n0 + (l & 7) + ((l >> 4) << 3)) * ld + k0 + ((l >> 3) & 1) * 8);
}

/* B fragments for two n-blocks of 8 when B[k][n] = M[k][n] with M row-major in shared memory
 * (values stored by key row, B = V): transposed loads. Same output order as load_b_frag_nk. */
__device__ __forceinline__ void load_b_frag_kn(uint32_t b[4], const bf16 *tile, int ld, int k0,
                                               int n0) {
    const int l = threadIdx.x & 31;
    ldmatrix_x4_trans(b, tile + (size_t)(k0 + (l & 7) + (((l >> 3) & 1) << 3)) * ld + n0 +
                             ((l >> 4) << 3));
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* cp.async of 16 bytes; src_bytes = 0 fills the 16 destination bytes with zeros. */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
                 "r"(src_bytes));
}
/* cp.async of 4 bytes (the .ca form: .cg takes only 16); src_bytes = 0 writes a zero. */
__device__ __forceinline__ void cp_async4(void *dst, const void *src, int src_bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
                 "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

#endif
