/* One torch.optim.AdamW step on one value (torch/optim/adam.py, _single_tensor_adam with
 * decoupled_weight_decay, amsgrad off: the path PyTorch takes for CPU tensors), with the scalars
 * of a tensor's step formed once. adamw_update (adamw.c) runs it over a tensor; the GPU trainer's
 * host update (--offload-optimizer) over the pieces that come down from the GPU. */
#ifndef R1_STUDENT_ADAMW_H
#define R1_STUDENT_ADAMW_H

#include <math.h>

#include "student/student.h"

typedef struct {
    float decay_mul, w1, b2, w2, step_size, bc2_sqrt, eps;
    int apply_decay;
} adamw_scalars;

/* Python floats are doubles: the scalars are formed in double, then each tensor op casts its
 * scalar to float32. t counts from 1; decay: apply weight_decay to this tensor. */
static inline adamw_scalars adamw_scalars_for(const adamw_config *c, int64_t t, int decay) {
    adamw_scalars k;
    k.decay_mul = (float)(1.0 - c->lr * c->weight_decay);
    k.apply_decay = decay && c->weight_decay != 0.0;
    k.w1 = (float)(1.0 - c->beta1);
    k.b2 = (float)c->beta2;
    k.w2 = (float)(1.0 - c->beta2);
    k.step_size = (float)(c->lr / (1.0 - pow(c->beta1, (double)t)));
    k.bc2_sqrt = (float)sqrt(1.0 - pow(c->beta2, (double)t));
    k.eps = (float)c->eps;
    return k;
}

/* torch.lerp(start, end, t) for a scalar weight t: the branch keeps it accurate for either
 * end of the weight range (aten/src/ATen/native/Lerp.h). */
static inline float adamw_lerp(float start, float end, float t) {
    return fabsf(t) < 0.5f ? start + t * (end - start)
                           : end - (end - start) * (1.0f - t);
}

static inline void adamw_apply(float *param, float g, float *m, float *v, const adamw_scalars *k) {
    float p = *param;
    if (k->apply_decay) p *= k->decay_mul;            /* param.mul_(1 - lr * weight_decay) */
    const float mi = adamw_lerp(*m, g, k->w1);        /* exp_avg.lerp_(grad, 1 - beta1) */
    const float vi = *v * k->b2 + k->w2 * (g * g);    /* exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2) */
    const float denom = sqrtf(vi) / k->bc2_sqrt + k->eps; /* (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps) */
    p += -k->step_size * (mi / denom);                /* param.addcdiv_(exp_avg, denom, value=-step_size) */
    *m = mi;
    *v = vi;
    *param = p;
}

#endif
