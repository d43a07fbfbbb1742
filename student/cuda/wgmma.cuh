/* Hopper warpgroup matrix products (wgmma, sm_90a) on bf16 tiles in shared memory.
 *
 * A warpgroup (4 consecutive warps, 128 threads) computes D[64 x N] (+)= A[64 x 16] B[16 x N]
 * per instruction, asynchronously: the tensor cores read B (and A, unless it comes from
 * registers) straight from shared memory through a 64-bit descriptor, so no ldmatrix traffic
 * goes through the register file. Warp w of the group holds rows 16 w .. 16 w + 15 of D in the
 * mma.sync C-fragment layout, repeated over N / 8 column blocks: d[j][0..3] are rows
 * (lane / 4, + 8), columns 8 j + 2 (lane % 4) + (0, 1). An A operand from registers uses the
 * mma.sync A-fragment layout of the warp's 16 rows, so a product's D converts to the next
 * product's A in registers (common.cuh's pack_bf16x2).
 *
 * Shared tiles use the 128-byte swizzle: a tile of R rows x C bf16 columns is stored as C / 64
 * regions of R rows x 128 bytes (region stride R x 128 bytes, every region 1024-byte aligned);
 * the 16-byte chunk c of row r sits at chunk c ^ (r % 8) of its row. One tile serves both ways:
 *  - K-major (rows index M or N, columns the sum): k-step kk starts at region kk / 4, byte
 *    32 (kk % 4); 8-row groups 1024 bytes apart (SBO);
 *  - MN-major (rows index the sum, columns N): k-step j starts at row 16 j; 8-row groups 1024
 *    bytes apart (SBO), 64-column regions R x 128 bytes apart (LBO); TRANS_B = 1.
 *
 * Ordering: wgmma_fence() before a batch whose registers were written by ordinary
 * instructions; wgmma_commit() after it; wgmma_wait<0>() before its results are read, then
 * fence_regs() on them so that the compiler does not hoist those reads above the wait. Shared
 * memory written through the generic proxy (st.shared, cp.async) needs fence_proxy_async()
 * by the writers, then a barrier, before a wgmma reads it. */
#ifndef R1_STUDENT_CUDA_WGMMA_CUH
#define R1_STUDENT_CUDA_WGMMA_CUH

#include "student/cuda/common.cuh"

/* The descriptor of a 128-byte-swizzled operand starting at p (see above for lbo, sbo). */
__device__ __forceinline__ uint64_t wgmma_desc(const void *p, uint32_t lbo, uint32_t sbo) {
    const uint32_t a = smem_u32(p);
    return (uint64_t)((a & 0x3FFFF) >> 4) | (uint64_t)((lbo >> 4) & 0x3FFF) << 16 |
           (uint64_t)((sbo >> 4) & 0x3FFF) << 32 | (uint64_t)1 << 62;
}

/* Byte offset of element (r, c) in a swizzled tile of R rows (c a multiple of 8). */
template <int R>
__device__ __forceinline__ int swz_offset(int r, int c) {
    return (c >> 6) * (R * 128) + r * 128 + ((((c >> 3) & 7) ^ (r & 7)) << 4);
}

/* cp.async of rows [row0, row0 + R) (columns [col, col + C) of a row-major matrix with row
 * stride ld) into a swizzled R x C tile by a block of NT threads; rows at or past `end` are
 * zero-filled. Thread t copies chunk t % (C / 8) of rows t / (C / 8) + k STEP: the rows a thread
 * visits are STEP apart, a multiple of 8, so its swizzled column never changes and each copy
 * costs one address add. */
template <int R, int C, int NT>
__device__ __forceinline__ void load_tile_swz(bf16 *dst, const bf16 *src, size_t ld, int col,
                                              int row0, int end) {
    constexpr int CPR = C / 8, STEP = NT / CPR;
    static_assert(R % STEP == 0 && STEP % 8 == 0, "tile shape");
    const int r = threadIdx.x / CPR, c = (threadIdx.x % CPR) * 8;
    char *d = reinterpret_cast<char *>(dst) + swz_offset<R>(r, c);
    const bf16 *s = src + (size_t)(row0 + r) * ld + col + c;
#pragma unroll
    for (int k = 0; k < R / STEP; k++) {
        const bool ok = row0 + r + k * STEP < end;
        cp_async16(d + k * STEP * 128, ok ? s + (size_t)k * STEP * ld : src, ok ? 16 : 0);
    }
}

/* Descriptors of a swizzled tile of R rows: k-step kk of its 64 rows from row0 (a multiple of
 * 8) used K-major, and k-step j (rows 16 j ..) used MN-major. */
template <int R>
__device__ __forceinline__ uint64_t desc_kmajor(const bf16 *tile, int kk, int row0) {
    return wgmma_desc(reinterpret_cast<const char *>(tile) + (kk >> 2) * (R * 128) + row0 * 128 +
                          (kk & 3) * 32,
                      16, 1024);
}
template <int R>
__device__ __forceinline__ uint64_t desc_mnmajor(const bf16 *tile, int j) {
    return wgmma_desc(reinterpret_cast<const char *>(tile) + j * 2048, R * 128, 1024);
}

__device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

/* Keeps the compiler from moving reads or writes of these registers across the asm statements
 * around them (the wgmma's operands are in flight between issue and wait). */
template <int NT>
__device__ __forceinline__ void fence_regs(float (&d)[NT][4]) {
#pragma unroll
    for (int i = 0; i < NT; i++)
        asm volatile("" : "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])::"memory");
}
template <int NK>
__device__ __forceinline__ void fence_regs(uint32_t (&a)[NK][4]) {
#pragma unroll
    for (int i = 0; i < NK; i++)
        asm volatile("" : "+r"(a[i][0]), "+r"(a[i][1]), "+r"(a[i][2]), "+r"(a[i][3])::"memory");
}

/* ---- the instructions: D[64 x N] (+)= A[64 x 16] B[16 x N] for N = 64 and 128 (overloaded on
 * D's size); A from shared memory (_ss) or registers (_rs); scale_d = 0 ignores D's old value */

/* The accumulator operands of an m64nNk16 instruction: N / 2 floats per thread, d[N / 8][4],
 * listed one by one (inline asm takes no arrays). */
#define WGMMA_D4X(d, i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
#define WGMMA_D8(d)                                                                               \
    WGMMA_D4X(d, 0), WGMMA_D4X(d, 1), WGMMA_D4X(d, 2), WGMMA_D4X(d, 3), WGMMA_D4X(d, 4),          \
        WGMMA_D4X(d, 5), WGMMA_D4X(d, 6), WGMMA_D4X(d, 7)
#define WGMMA_D16(d)                                                                              \
    WGMMA_D8(d), WGMMA_D4X(d, 8), WGMMA_D4X(d, 9), WGMMA_D4X(d, 10), WGMMA_D4X(d, 11),            \
        WGMMA_D4X(d, 12), WGMMA_D4X(d, 13), WGMMA_D4X(d, 14), WGMMA_D4X(d, 15)
/* ... and their places in the instruction's text: operands 0 .. N / 2 - 1 */
#define WGMMA_D8_REGS                                                                             \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, "  \
    "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define WGMMA_D16_REGS                                                                            \
    WGMMA_D8_REGS ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, " \
                  "%47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, "   \
                  "%62, %63"

template <int TRANS_B>
__device__ __forceinline__ void wgmma_ss(float (&d)[8][4], uint64_t desc_a,
                                                  uint64_t desc_b, int scale_d) {
    asm volatile("{.reg .pred p;\n"
                 "setp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 WGMMA_D8_REGS
                 "}, %32, %33, p, 1, 1, 0, %35;\n}\n"
                 : WGMMA_D8(d)
                 : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(TRANS_B));
}

template <int TRANS_B>
__device__ __forceinline__ void wgmma_rs(float (&d)[8][4], const uint32_t (&a)[4],
                                                  uint64_t desc_b, int scale_d) {
    asm volatile("{.reg .pred p;\n"
                 "setp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 WGMMA_D8_REGS
                 "}, {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
                 : WGMMA_D8(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d),
                   "n"(TRANS_B));
}

template <int TRANS_B>
__device__ __forceinline__ void wgmma_ss(float (&d)[16][4], uint64_t desc_a,
                                                  uint64_t desc_b, int scale_d) {
    asm volatile("{.reg .pred p;\n"
                 "setp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 WGMMA_D16_REGS
                 "}, %64, %65, p, 1, 1, 0, %67;\n}\n"
                 : WGMMA_D16(d)
                 : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(TRANS_B));
}

template <int TRANS_B>
__device__ __forceinline__ void wgmma_rs(float (&d)[16][4], const uint32_t (&a)[4],
                                                  uint64_t desc_b, int scale_d) {
    asm volatile("{.reg .pred p;\n"
                 "setp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 WGMMA_D16_REGS
                 "}, {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
                 : WGMMA_D16(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d),
                   "n"(TRANS_B));
}

#endif
