/* Learning-rate schedules, as transformers.optimization builds them for the HF Trainer (a
 * LambdaLR whose lambda is evaluated at the number of optimizer steps already taken):
 *
 *   warmup (step < W)   step / max(1, W)
 *   constant            1
 *   linear              max(0, (T - step) / max(1, T - W))
 *   cosine              max(0, 0.5 (1 + cos(pi * progress))),  progress = (step - W) / max(1, T - W)
 *
 * With --min-lr m (a fraction r = m / lr) the decaying part becomes r + (1 - r) * factor, which
 * for cosine is transformers' get_cosine_with_min_lr_schedule_with_warmup. */
#include <math.h>
#include <string.h>

#include "student/student.h"

double lr_at(const lr_schedule *s, int64_t step) {
    const int64_t k = step - 1; /* optimizer steps already taken */
    if (k < s->warmup) return s->lr * (double)k / (double)(s->warmup > 1 ? s->warmup : 1);
    double factor = 1.0;
    const double span = (double)(s->total - s->warmup > 1 ? s->total - s->warmup : 1);
    const double progress = (double)(k - s->warmup) / span;
    switch (s->kind) {
    case SCHED_CONSTANT: return s->lr;
    case SCHED_LINEAR: factor = fmax(0.0, (double)(s->total - k) / span); break;
    case SCHED_COSINE: factor = fmax(0.0, 0.5 * (1.0 + cos(M_PI * progress))); break;
    }
    const double r = s->lr > 0 ? s->min_lr / s->lr : 0.0;
    return s->lr * (r + (1.0 - r) * factor);
}

int lr_schedule_parse(const char *name, lr_schedule_kind *out) {
    if (strcmp(name, "constant") == 0) *out = SCHED_CONSTANT;
    else if (strcmp(name, "linear") == 0) *out = SCHED_LINEAR;
    else if (strcmp(name, "cosine") == 0) *out = SCHED_COSINE;
    else return -1;
    return 0;
}

const char *lr_schedule_name(lr_schedule_kind k) {
    switch (k) {
    case SCHED_CONSTANT: return "constant";
    case SCHED_LINEAR: return "linear";
    case SCHED_COSINE: return "cosine";
    }
    return "?";
}
