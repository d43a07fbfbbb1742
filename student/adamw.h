/* The scalars of one torch.optim.AdamW step, shared by the host's AdamW (student/adamw.c) and the
 * GPU's (student/cuda/adamw.cu) so that both compute the same bits: each side runs the same
 * IEEE float32 operations in the same order on these same values, without fused multiply-adds.
 * The CUDA trainer's update therefore equals the CPU trainer's on equal gradients, and moving the
 * optimizer state between the GPU and the host (--offload-optimizer) changes nothing. */
#ifndef R1_STUDENT_ADAMW_H
#define R1_STUDENT_ADAMW_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
} adamw_config;

/* torch's AdamW step on one tensor, its scalars formed once: in double as Python forms them,
 * then cast to float32 as each tensor op casts its scalar. */
typedef struct {
    float decay_mul, w1, b2, w2, step_size, bc2_sqrt, eps;
    int near_start; /* torch.lerp's branch on its weight (aten/src/ATen/native/Lerp.h) */
} adamw_scalars;

/* Step t (from 1); decay: whether weight decay applies to the tensor. */
adamw_scalars adamw_scalars_for(const adamw_config *c, int64_t t, int decay);

#ifdef __cplusplus
}
#endif

#endif
