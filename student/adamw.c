/* AdamW exactly as torch.optim.AdamW computes it (torch/optim/adam.py, _single_tensor_adam with
 * decoupled_weight_decay, amsgrad off, the path PyTorch takes for CPU tensors), and gradient
 * clipping as torch.nn.utils.clip_grad_norm_. */
#include <math.h>

#include "student/adamw.h"

void adamw_update(float *param, const float *grad, float *m, float *v, size_t n,
                  const adamw_config *c, int64_t t, int decay) {
    const adamw_scalars k = adamw_scalars_for(c, t, decay);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) adamw_apply(&param[i], grad[i], &m[i], &v[i], &k);
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
