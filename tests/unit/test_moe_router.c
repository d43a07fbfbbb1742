/* The DeepSeek-V3 gate against hand-computed cases: group-limited choice, the correction bias
 * used for choosing only, renormalisation and scaling, ties between experts and between
 * groups. Logits are logit(p) = ln(p / (1 - p)), so sigmoid gives back the p written here. */
#include <math.h>

#include "teacher/moe_router.h"
#include "tests/unit/testing.h"

static float logit(double p) { return (float)log(p / (1.0 - p)); }

/* Routes probabilities p[E] (through their logits) with an optional bias. */
static void route(int *idx, float *w, const double *p, const float *bias, const moe_router *r) {
    float logits[64], scratch[512];
    EXPECT(r->n_experts <= 64 && moe_route_scratch_floats(r) <= 512);
    for (int e = 0; e < r->n_experts; e++) logits[e] = logit(p[e]);
    moe_route(idx, w, logits, bias, r, scratch);
}

/* 8 experts in 4 groups of 2, 2 groups kept, top-2, renormalised, times 2.5. */
static const moe_router grouped = {.n_experts = 8, .n_group = 4, .topk_group = 2, .top_k = 2,
                                   .norm_topk_prob = 1, .scaling = 2.5f};

static void test_group_limit_drops_the_best_expert(void) {
    /* groups {0,1} {2,3} {4,5} {6,7} score 1.0, 1.5, 1.2, 0.5: groups 1 and 2 are kept, so
     * expert 0 (0.9, the best alone) is out; experts 2 (0.8) and 3 (0.7) win. */
    const double p[8] = {0.9, 0.1, 0.8, 0.7, 0.6, 0.6, 0.2, 0.3};
    int idx[2];
    float w[2];
    route(idx, w, p, NULL, &grouped);
    EXPECT_EQ_INT(idx[0], 2);
    EXPECT_EQ_INT(idx[1], 3);
    EXPECT_NEAR(w[0], 2.5 * 0.8 / 1.5, 1e-6);
    EXPECT_NEAR(w[1], 2.5 * 0.7 / 1.5, 1e-6);
}

static void test_bias_chooses_but_does_not_weight(void) {
    /* +0.5 on expert 4: biased group scores 1.0, 1.5, 1.7, 0.5 keep groups 2 and 1; biased
     * expert scores put 4 (1.1) before 2 (0.8). Weights use the unbiased 0.6 and 0.8. */
    const double p[8] = {0.9, 0.1, 0.8, 0.7, 0.6, 0.6, 0.2, 0.3};
    const float bias[8] = {0, 0, 0, 0, 0.5f, 0, 0, 0};
    int idx[2];
    float w[2];
    route(idx, w, p, bias, &grouped);
    EXPECT_EQ_INT(idx[0], 4);
    EXPECT_EQ_INT(idx[1], 2);
    EXPECT_NEAR(w[0], 2.5 * 0.6 / 1.4, 1e-6);
    EXPECT_NEAR(w[1], 2.5 * 0.8 / 1.4, 1e-6);
}

static void test_negative_bias_never_reaches_dropped_groups(void) {
    /* A bias pushing a kept group's experts below zero: experts outside the kept groups are
     * -inf (transformers), not 0 (which would let them win over negative biased scores). */
    const double p[8] = {0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1};
    const float bias[8] = {0, 0, 0, 0, -1.0f, -1.0f, -1.0f, -1.0f};
    const moe_router r = {.n_experts = 8, .n_group = 2, .topk_group = 1, .top_k = 3,
                          .norm_topk_prob = 1, .scaling = 1.0f};
    /* groups {0..3} score 1.0 and {4..7} score -1.8: only group 0 is kept */
    int idx[3];
    float w[3];
    route(idx, w, p, bias, &r);
    EXPECT_EQ_INT(idx[0], 0);
    EXPECT_EQ_INT(idx[1], 1);
    EXPECT_EQ_INT(idx[2], 2);
    for (int k = 0; k < 3; k++) EXPECT_NEAR(w[k], 1.0 / 3.0, 1e-6);

    /* Now every biased score is negative: group 0 (-0.5, -0.6, -0.7, -0.8) sums -1.1 and is
     * kept over group 1 (-1.5 each, -3.0). Masking the dropped group with 0 (as model.py's
     * `scores * mask` does) would choose its experts; with -inf, experts 0 and 1 win. */
    const float bias2[8] = {-1.0f, -1.1f, -1.2f, -1.3f, -2.0f, -2.0f, -2.0f, -2.0f};
    const moe_router r2 = {.n_experts = 8, .n_group = 2, .topk_group = 1, .top_k = 2,
                           .norm_topk_prob = 0, .scaling = 1.0f};
    const double p2[8] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
    route(idx, w, p2, bias2, &r2);
    EXPECT_EQ_INT(idx[0], 0);
    EXPECT_EQ_INT(idx[1], 1);
    EXPECT_NEAR(w[0], 0.5, 1e-6);
    EXPECT_NEAR(w[1], 0.5, 1e-6);
}

static void test_all_equal_scores_take_lowest_ids(void) {
    /* every expert 0.5, every group 1.0: groups 0 and 1 kept, experts 0, 1, 2 chosen */
    const double p[8] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
    const moe_router r = {.n_experts = 8, .n_group = 4, .topk_group = 2, .top_k = 3,
                          .norm_topk_prob = 1, .scaling = 2.5f};
    int idx[3];
    float w[3];
    route(idx, w, p, NULL, &r);
    EXPECT_EQ_INT(idx[0], 0);
    EXPECT_EQ_INT(idx[1], 1);
    EXPECT_EQ_INT(idx[2], 2);
    for (int k = 0; k < 3; k++) EXPECT_NEAR(w[k], 2.5 / 3.0, 1e-6);
}

static void test_groups_with_equal_scores(void) {
    /* groups {0.9,0.1} {0.1,0.9} {0.2,0.3} {0.9,0.1}: three groups tie at the same sum (the
     * same two values); the two lowest (0 and 1) are kept. Experts 0 and 3 tie at 0.9: 0 first. */
    const double p[8] = {0.9, 0.1, 0.1, 0.9, 0.2, 0.3, 0.9, 0.1};
    int idx[2];
    float w[2];
    route(idx, w, p, NULL, &grouped);
    EXPECT_EQ_INT(idx[0], 0);
    EXPECT_EQ_INT(idx[1], 3);
    EXPECT_NEAR(w[0], 1.25, 1e-6);
    EXPECT_NEAR(w[1], 1.25, 1e-6);
}

static void test_bias_creates_a_tie(void) {
    /* one group; sigmoid(0) = 0.5 exactly, so the biased scores are exactly 0.75, 0.75, 0.5,
     * 0.75: the three-way tie goes to experts 0 and 1; without renormalisation the weights are
     * the unbiased 0.5 times the scale. */
    const double p[4] = {0.5, 0.5, 0.5, 0.5};
    const float bias[4] = {0.25f, 0.25f, 0, 0.25f};
    const moe_router r = {.n_experts = 4, .n_group = 1, .topk_group = 1, .top_k = 2,
                          .norm_topk_prob = 0, .scaling = 2.0f};
    int idx[2];
    float w[2];
    route(idx, w, p, bias, &r);
    EXPECT_EQ_INT(idx[0], 0);
    EXPECT_EQ_INT(idx[1], 1);
    EXPECT_NEAR(w[0], 1.0, 1e-6);
    EXPECT_NEAR(w[1], 1.0, 1e-6);
    /* the same tie broken by the bias of expert 3 alone */
    const float bias3[4] = {0.25f, 0.25f, 0, 0.5f};
    route(idx, w, p, bias3, &r);
    EXPECT_EQ_INT(idx[0], 3);
    EXPECT_EQ_INT(idx[1], 0);
}

static void test_single_expert_groups(void) {
    /* groups of one: a group scores its single expert, so the 2 kept groups are the top 2 */
    const double p[4] = {0.3, 0.8, 0.6, 0.7};
    const moe_router r = {.n_experts = 4, .n_group = 4, .topk_group = 2, .top_k = 2,
                          .norm_topk_prob = 1, .scaling = 1.0f};
    int idx[2];
    float w[2];
    route(idx, w, p, NULL, &r);
    EXPECT_EQ_INT(idx[0], 1);
    EXPECT_EQ_INT(idx[1], 3);
    EXPECT_NEAR(w[0], 0.8 / 1.5, 1e-6);
    EXPECT_NEAR(w[1], 0.7 / 1.5, 1e-6);
}

static void test_group_score_is_top_two_sum(void) {
    /* groups of 4: {0.9, 0.1, 0.1, 0.1} sums its top two to 1.0, {0.6, 0.6, 0.6, 0.6} to 1.2;
     * a max-per-group (or whole-group sum) rule would pick differently. */
    const double p[8] = {0.9, 0.1, 0.1, 0.1, 0.6, 0.6, 0.6, 0.6};
    const moe_router r = {.n_experts = 8, .n_group = 2, .topk_group = 1, .top_k = 1,
                          .norm_topk_prob = 1, .scaling = 1.0f};
    int idx[1];
    float w[1];
    route(idx, w, p, NULL, &r);
    EXPECT_EQ_INT(idx[0], 4);
    EXPECT_NEAR(w[0], 1.0, 1e-6);
}

int main(void) {
    RUN(test_group_limit_drops_the_best_expert);
    RUN(test_bias_chooses_but_does_not_weight);
    RUN(test_negative_bias_never_reaches_dropped_groups);
    RUN(test_all_equal_scores_take_lowest_ids);
    RUN(test_groups_with_equal_scores);
    RUN(test_bias_creates_a_tie);
    RUN(test_single_expert_groups);
    RUN(test_group_score_is_top_two_sum);
    TESTS_DONE();
}
