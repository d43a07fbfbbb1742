#include "teacher/moe_router.h"

#include <math.h>

#include "core/error.h"

void moe_router_from_config(moe_router *r, const model_config *c) {
    r->n_experts = c->n_routed_experts;
    r->n_group = c->n_group;
    r->topk_group = c->topk_group;
    r->top_k = c->num_experts_per_tok;
    r->norm_topk_prob = c->norm_topk_prob;
    r->scaling = (float)c->routed_scaling_factor;
}

size_t moe_route_scratch_floats(const moe_router *r) {
    return 3 * (size_t)r->n_experts + 2 * (size_t)r->n_group;
}

/* The index of the largest v[i] not yet taken (taken[i] != 0), marking it taken; the lowest
 * index wins a tie. */
static int take_max(const float *v, float *taken, int n) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (taken[i] == 0.0f && (best < 0 || v[i] > v[best])) best = i;
    taken[best] = 1.0f;
    return best;
}

void moe_route(int *idx, float *w, const float *logits, const float *bias, const moe_router *r,
               float *scratch) {
    const int E = r->n_experts, G = r->n_group, per = E / G;
    CHECK(G >= 1 && E % G == 0 && r->topk_group >= 1 && r->topk_group <= G && r->top_k >= 1 &&
          r->top_k <= r->topk_group * per);
    float *s = scratch;                  /* [E] sigmoid scores */
    float *b = s + E;                    /* [E] biased scores, -inf outside the kept groups */
    float *taken = b + E;                /* [E] experts already chosen */
    float *gs = taken + E;               /* [G] group scores */
    float *gkept = gs + G;               /* [G] groups kept */

    for (int e = 0; e < E; e++) {
        s[e] = 1.0f / (1.0f + expf(-logits[e])); /* 1. */
        b[e] = s[e] + (bias ? bias[e] : 0.0f);    /* 2. */
        taken[e] = 0.0f;
    }
    /* 3. a group's score is the sum of its two largest biased scores (scores.topk(2).sum()) */
    for (int g = 0; g < G; g++) {
        const float *bg = b + (size_t)g * per;
        int i1 = 0, i2 = -1;
        for (int i = 1; i < per; i++)
            if (bg[i] > bg[i1]) i1 = i;
        for (int i = 0; i < per; i++)
            if (i != i1 && (i2 < 0 || bg[i] > bg[i2])) i2 = i;
        gs[g] = i2 < 0 ? bg[i1] : bg[i1] + bg[i2];
        gkept[g] = 0.0f;
    }
    for (int j = 0; j < r->topk_group; j++) take_max(gs, gkept, G);
    for (int g = 0; g < G; g++)
        if (gkept[g] == 0.0f)
            for (int i = 0; i < per; i++) b[(size_t)g * per + i] = -INFINITY;

    /* 4. the top_k experts by biased score; 5. weighted by their unbiased scores */
    float sum = 0.0f;
    for (int j = 0; j < r->top_k; j++) {
        idx[j] = take_max(b, taken, E);
        w[j] = s[idx[j]];
        sum += w[j];
    }
    for (int j = 0; j < r->top_k; j++) {
        if (r->norm_topk_prob) w[j] /= sum + 1e-20f;
        w[j] *= r->scaling;
    }
}
