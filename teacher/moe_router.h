/* The DeepSeek-V3 MoE gate ("noaux_tc" top-k with sigmoid scores), as a pure function of one
 * token's router logits, so it can be tested on hand-computed cases.
 *
 * DeepSeek's model.py Gate.forward / transformers' DeepseekV3TopkRouter:
 *   1. s = sigmoid(logits)                         the affinity of each expert
 *   2. b = s + e_score_correction_bias             used to CHOOSE experts, never to weight them
 *   3. groups of n_experts / n_group experts; a group scores the sum of its top-2 values of b
 *      (its one value when groups have a single expert); the topk_group best groups are kept
 *   4. the top_k experts by b among the kept groups
 *   5. w = s at those experts (unbiased); if norm_topk_prob, w /= sum(w) + 1e-20; then
 *      w *= routed_scaling_factor
 *
 * Ties (equal group scores, equal biased expert scores) go to the lower index, a rule stated
 * here because torch.topk leaves it unspecified. */
#ifndef R1_TEACHER_MOE_ROUTER_H
#define R1_TEACHER_MOE_ROUTER_H

#include <stddef.h>

#include "core/config.h"

typedef struct {
    int n_experts;      /* n_routed_experts */
    int n_group;        /* groups of n_experts / n_group experts */
    int topk_group;     /* groups kept */
    int top_k;          /* num_experts_per_tok */
    int norm_topk_prob; /* renormalise the chosen weights to sum to 1 */
    float scaling;      /* routed_scaling_factor */
} moe_router;

void moe_router_from_config(moe_router *r, const model_config *c);

/* Floats of scratch space moe_route needs. */
size_t moe_route_scratch_floats(const moe_router *r);

/* Routes one token. logits: [n_experts] router logits (x . W_gate^T); bias: [n_experts]
 * e_score_correction_bias, or NULL for none. Writes idx[top_k], the chosen experts in
 * descending order of biased score, and w[top_k], their weights. */
void moe_route(int *idx, float *w, const float *logits, const float *bias, const moe_router *r,
               float *scratch);

#endif
