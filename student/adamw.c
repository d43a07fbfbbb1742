/* AdamW exactly as torch.optim.AdamW computes it (torch/optim/adam.py, _single_tensor_adam with
 * decoupled_weight_decay, amsgrad off, the path PyTorch takes for CPU tensors), and gradient
 * clipping as torch.nn.utils.clip_grad_norm_. */
#include <math.h>

#include "student/student.h"

/* torch.lerp(start, end, weight) for a scalar weight: the branch keeps it accurate for either
 * end of the weight range (aten/src/ATen/native/Lerp.h). */
static inline float lerp(float start, float end, float weight) {
    return fabsf(weight) < 0.5f ? start + weight * (end - start)
                                : end - (end - start) * (1.0f - weight);
}

void adamw_update(float *param, const float *grad, float *m, float *v, size_t n,
                  const adamw_config *c, int64_t t, int decay) {
    /* Python floats are doubles: the scalars are formed in double, then each tensor op casts
     * its scalar to float32. */
    const float decay_mul = (float)(1.0 - c->lr * c->weight_decay);
    const int apply_decay = decay && c->weight_decay != 0.0;
    const float w1 = (float)(1.0 - c->beta1), b2 = (float)c->beta2, w2 = (float)(1.0 - c->beta2);
    const double bias_correction1 = 1.0 - pow(c->beta1, (double)t);
    const double bias_correction2 = 1.0 - pow(c->beta2, (double)t);
    const float step_size = (float)(c->lr / bias_correction1);
    const float bc2_sqrt = (float)sqrt(bias_correction2);
    const float eps = (float)c->eps;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float p = param[i], g = grad[i];
        if (apply_decay) p *= decay_mul;           /* param.mul_(1 - lr * weight_decay) */
        float mi = lerp(m[i], g, w1);              /* exp_avg.lerp_(grad, 1 - beta1) */
        float vi = v[i] * b2 + w2 * (g * g);       /* exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2) */
        float denom = sqrtf(vi) / bc2_sqrt + eps;  /* (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps) */
        p += -step_size * (mi / denom);            /* param.addcdiv_(exp_avg, denom, value=-step_size) */
        m[i] = mi;
        v[i] = vi;
        param[i] = p;
    }
}

double grad_global_norm(const student_model *m) {
    /* torch: vector_norm(stack([vector_norm(g) for g in grads])); per-tensor sums in float64,
     * in layout order. */
    double total = 0;
    for (int k = 0; k < m->n_tensors; k++) {
        const student_tensor *t = &m->tensors[k];
        const float *g = m->grad_mem + t->offset;
        double s = 0;
        for (size_t i = 0; i < t->numel; i++) s += (double)g[i] * g[i];
        total += s;
    }
    return sqrt(total);
}

float grad_clip(student_model *m, double norm, double max_norm) {
    if (max_norm <= 0) return 1.0f;
    /* clip_coef = max_norm / (total_norm + 1e-6), clamped to 1, applied in any case (float32) */
    float coef = (float)max_norm / ((float)norm + 1e-6f);
    if (coef > 1.0f) coef = 1.0f;
    if (coef == 1.0f) return coef;
#pragma omp parallel for schedule(static) if (m->n_params >= PAR_MIN_WORK)
    for (size_t i = 0; i < m->n_params; i++) m->grad_mem[i] *= coef;
    return coef;
}
