/* The DeepSeek-V3 router and the dispatch of tokens to experts, on a device backend, with no
 * copy to the host: teacher/moe_router.h's algorithm per token (sigmoid scores, corrected
 * choice, group limit, top-k, normalised and scaled weights), then every (token, expert)
 * assignment placed in its expert's segment of rows.
 *
 * The arrays (backend memory, sized for the largest batch) are what teacher/deepseek.c's host
 * path makes on the CPU too:
 *   rows [n * K]   the token of each assignment, grouped by expert (seg); within an expert the
 *                  order is free (each row's product does not depend on its neighbours)
 *   seg [E + 1]    expert e's rows are seg[e] .. seg[e + 1]
 *   comb [n * K]   for token i, the rows of its K assignments in ascending expert id
 *   comb_w [n * K] their routing weights, in the same order
 * so that linear_segments computes every expert's rows and combine_rows adds each token's
 * outputs in ascending expert id, as the CPU does. The scores are float32 like the CPU's; a
 * choice between two experts whose corrected scores tie to the last bit may differ (CUDA's expf
 * and glibc's can differ by 1 ulp). */
#ifndef R1_TEACHER_MOE_DEVICE_H
#define R1_TEACHER_MOE_DEVICE_H

#include "core/backend.h"
#include "teacher/moe_router.h"

typedef struct {
    int *rows;
    int *seg;
    int *comb;
    float *comb_w;
    int *counters; /* [E] scratch */
} moe_dispatch;

/* 1 when `be` routes on the device (CUDA). */
int moe_device_supported(const backend *be);
/* Routes n tokens: logits [n, E] and bias [E] (or NULL) in backend memory. */
void moe_device_route(backend *be, const moe_dispatch *d, const float *logits, const float *bias,
                      int n, const moe_router *r);

#endif
