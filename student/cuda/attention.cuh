/* The tensor-core attention kernels (attention_mma.cu), called by the dispatcher in
 * attention.cu, and their Hopper versions (attention_wgmma.cu). */
#ifndef R1_STUDENT_CUDA_ATTENTION_CUH
#define R1_STUDENT_CUDA_ATTENTION_CUH

#include "student/cuda/common.cuh"

void attention_forward_mma(bf16 *out, float *lse, const bf16 *qkv, const attn_shape *a,
                           cudaStream_t s);
/* delta: [H, n] already computed */
void attention_backward_mma(bf16 *dqkv, const float *delta, const bf16 *dout, const bf16 *qkv,
                            const float *lse, const attn_shape *a, cudaStream_t s);
/* The same on Hopper's warpgroup instructions (attention_wgmma.cu; the same shapes). */
void attention_forward_wgmma(bf16 *out, float *lse, const bf16 *qkv, const attn_shape *a,
                             cudaStream_t s);
void attention_backward_wgmma(bf16 *dqkv, const float *delta, const bf16 *dout, const bf16 *qkv,
                              const float *lse, const attn_shape *a, cudaStream_t s);

/* Lets `kernel` take `bytes` of dynamic shared memory (past the default 48 KB). */
template <typename K>
static inline void attn_set_smem(K kernel, size_t bytes) {
    R1_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)bytes));
}

#endif
