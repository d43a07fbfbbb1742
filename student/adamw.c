/* AdamW exactly as torch.optim.AdamW computes it (torch/optim/adam.py, _single_tensor_adam with
 * decoupled_weight_decay, amsgrad off, the path PyTorch takes for CPU tensors), and gradient
 * clipping as torch.nn.utils.clip_grad_norm_. */
#include <math.h>

#include "core/dtype.h"
#include "core/error.h"
#include "student/student.h"

adamw_scalars adamw_scalars_for(const adamw_config *c, int64_t t, int decay) {
    CHECK(t >= 1); /* the bias corrections divide by 1 - beta^t */
    adamw_scalars k;
    /* without decay the multiplication is by exactly 1, which changes no value */
    k.decay_mul = decay && c->weight_decay != 0.0 ? (float)(1.0 - c->lr * c->weight_decay) : 1.0f;
    k.w1 = (float)(1.0 - c->beta1);
    k.b2 = (float)c->beta2;
    k.w2 = (float)(1.0 - c->beta2);
    k.step_size = (float)(c->lr / (1.0 - pow(c->beta1, (double)t)));
    k.bc2_sqrt = (float)sqrt(1.0 - pow(c->beta2, (double)t));
    k.eps = (float)c->eps;
    k.near_start = fabsf(k.w1) < 0.5f;
    return k;
}

/* One value: the new parameter; m and v updated. No branch, so the loops below vectorize (this
 * file is built with -O3 -fno-math-errno, see the Makefile; each thread's own copy of k,
 * firstprivate, is what lets the compiler keep its fields in registers), and vector lanes give
 * the scalar loop's bits: the same IEEE operations in the same order. */
static inline float adamw_value(float g, float p, float *m, float *v, const adamw_scalars *k) {
    p *= k->decay_mul;                                  /* param.mul_(1 - lr * weight_decay) */
    const float mo = *m;                                /* exp_avg.lerp_(grad, 1 - beta1) */
    const float mi = k->near_start ? mo + k->w1 * (g - mo) : g - (g - mo) * (1.0f - k->w1);
    const float vi = *v * k->b2 + k->w2 * (g * g);      /* exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2) */
    const float denom = sqrtf(vi) / k->bc2_sqrt + k->eps; /* (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps) */
    *m = mi;
    *v = vi;
    return p + -k->step_size * (mi / denom);            /* param.addcdiv_(exp_avg, denom, value=-step_size) */
}

void adamw_update(float *restrict param, const float *restrict grad, float *restrict m,
                  float *restrict v, size_t n, const adamw_config *c, int64_t t, int decay) {
    const adamw_scalars k = adamw_scalars_for(c, t, decay);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK) firstprivate(k)
    for (size_t i = 0; i < n; i++) param[i] = adamw_value(grad[i], param[i], &m[i], &v[i], &k);
}

/* The staged step, one loop per gradient type: a loop that picks the type per value does not
 * vectorize. A product with coef = 1 is exact, so it is always taken. */
static void staged_f32(float *restrict param, const float *restrict g, float coef,
                       float *restrict m, float *restrict v, size_t n, const adamw_scalars *kp,
                       uint16_t *restrict w_hi) {
    const adamw_scalars k = *kp;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK) firstprivate(k)
    for (size_t i = 0; i < n; i++) {
        const float np = adamw_value(g[i] * coef, param[i], &m[i], &v[i], &k);
        param[i] = np;
        w_hi[i] = f32_split_hi(np);
    }
}

static void staged_bf16(float *restrict param, const uint16_t *restrict g, float coef,
                        float *restrict m, float *restrict v, size_t n, const adamw_scalars *kp,
                        uint16_t *restrict w_hi) {
    const adamw_scalars k = *kp;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK) firstprivate(k)
    for (size_t i = 0; i < n; i++) {
        const float np = adamw_value(bf16_to_f32(g[i]) * coef, param[i], &m[i], &v[i], &k);
        param[i] = np;
        w_hi[i] = f32_split_hi(np);
    }
}

void adamw_update_staged(float *param, const void *grad, int grad_f32, float coef, float *m,
                         float *v, size_t n, const adamw_config *c, int64_t t, int decay,
                         uint16_t *w_hi) {
    const adamw_scalars k = adamw_scalars_for(c, t, decay);
    if (grad_f32)
        staged_f32(param, grad, coef, m, v, n, &k, w_hi);
    else
        staged_bf16(param, grad, coef, m, v, n, &k, w_hi);
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

float grad_clip_coef(double norm, double max_norm) {
    if (max_norm <= 0) return 1.0f;
    /* clip_coef = max_norm / (total_norm + 1e-6), clamped to 1, applied in any case (float32) */
    const float coef = (float)max_norm / ((float)norm + 1e-6f);
    return coef > 1.0f ? 1.0f : coef;
}

float grad_clip(student_model *m, double norm, double max_norm) {
    const float coef = grad_clip_coef(norm, max_norm);
    if (coef == 1.0f) return coef;
#pragma omp parallel for schedule(static) if (m->n_params >= PAR_MIN_WORK)
    for (size_t i = 0; i < m->n_params; i++) m->grad_mem[i] *= coef;
    return coef;
}
