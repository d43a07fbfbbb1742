/* Sums and maxima over the 32 lanes of a warp by butterfly shuffles: every lane gets the result,
 * and the order of the additions is fixed, so a given input always gives the same bits. Shared by
 * the inference kernels (core/cuda) and the training kernels (student/cuda). */
#ifndef R1_CORE_CUDA_WARP_REDUCE_CUH
#define R1_CORE_CUDA_WARP_REDUCE_CUH

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

#endif
