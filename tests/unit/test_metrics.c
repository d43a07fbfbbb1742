/* Evaluation metrics against hand-computed cases: the unbiased pass@k estimator, pass@1's
 * standard error over questions, and cons@K's grouping and tie rules (eval/metrics.h). The
 * expected values were worked out by hand or with exact rational arithmetic (Python's
 * fractions.Fraction and math.comb), not with this code. */
#include "eval/metrics.h"
#include "tests/unit/testing.h"

static void test_pass_at_k_small(void) {
    EXPECT_NEAR(pass_at_k(4, 1, 1), 0.25, 1e-15);          /* c / n */
    EXPECT_NEAR(pass_at_k(4, 1, 2), 0.5, 1e-15);           /* 1 - C(3,2)/C(4,2) = 1 - 3/6 */
    EXPECT_NEAR(pass_at_k(4, 2, 2), 5.0 / 6.0, 1e-15);     /* 1 - C(2,2)/C(4,2) = 1 - 1/6 */
    EXPECT_NEAR(pass_at_k(5, 2, 3), 0.9, 1e-15);           /* 1 - C(3,3)/C(5,3) = 1 - 1/10 */
    EXPECT_NEAR(pass_at_k(10, 3, 5), 1 - 21.0 / 252.0, 1e-15); /* C(7,5) = 21, C(10,5) = 252 */
    EXPECT_NEAR(pass_at_k(4, 3, 2), 1.0, 0);               /* n - c < k: every k-subset hits */
    EXPECT_NEAR(pass_at_k(4, 4, 4), 1.0, 0);
    EXPECT_NEAR(pass_at_k(4, 0, 1), 0.0, 0);
    EXPECT_NEAR(pass_at_k(4, 0, 4), 0.0, 0);
    EXPECT_NEAR(pass_at_k(1, 1, 1), 1.0, 0);
    EXPECT_NEAR(pass_at_k(1, 0, 1), 0.0, 0);
}

static void test_pass_at_k_large(void) {
    /* exact rationals 1 - C(n-c,k)/C(n,k), rounded to double */
    EXPECT_NEAR(pass_at_k(64, 10, 8), 0.7649283965930664, 1e-13);
    EXPECT_NEAR(pass_at_k(16, 3, 4), 0.6071428571428571, 1e-14);
    EXPECT_NEAR(pass_at_k(30, 1, 29), 29.0 / 30.0, 1e-14);
    EXPECT_NEAR(pass_at_k(200, 50, 100), 1.0, 1e-12); /* C(150,100)/C(200,100) ~ 1e-20 */
    /* pass@1 is c/n for any n */
    for (int n = 1; n <= 64; n++)
        for (int c = 0; c <= n; c++) EXPECT_NEAR(pass_at_k(n, c, 1), (double)c / n, 1e-14);
    /* non-decreasing in k */
    for (int k = 1; k < 64; k++) EXPECT(pass_at_k(64, 5, k + 1) >= pass_at_k(64, 5, k));
}

static void test_pass1_stderr(void) {
    /* p = 1/4, 2/4, 4/4, 0: mean 7/16; squared deviations sum 35/64; /3 /4 -> sqrt */
    int c[4] = {1, 2, 4, 0};
    double m, se;
    pass1_mean_stderr(c, 4, 4, &m, &se);
    EXPECT_NEAR(m, 0.4375, 1e-15);
    EXPECT_NEAR(se, 0.21347814095749162, 1e-14);
    /* all equal: no spread */
    int same[3] = {2, 2, 2};
    pass1_mean_stderr(same, 3, 4, &m, &se);
    EXPECT_NEAR(m, 0.5, 1e-15);
    EXPECT_NEAR(se, 0.0, 0);
    /* one question: no standard error */
    int one[1] = {3};
    pass1_mean_stderr(one, 1, 4, &m, &se);
    EXPECT_NEAR(m, 0.75, 1e-15);
    EXPECT_NEAR(se, 0.0, 0);
    /* two questions 0 and 1 (K = 1): sd = sqrt(1/2), se = sd / sqrt(2) = 0.5 */
    int two[2] = {0, 1};
    pass1_mean_stderr(two, 2, 1, &m, &se);
    EXPECT_NEAR(m, 0.5, 1e-15);
    EXPECT_NEAR(se, 0.5, 1e-15);
}

static void test_cons_vote(void) {
    int votes;
    /* "3" and "3.0" are one group of 2 */
    const char *a[4] = {"3", "5", "3.0", NULL};
    EXPECT_EQ_INT(cons_vote(a, 4, ANSWER_MATH, &votes), 0);
    EXPECT_EQ_INT(votes, 2);
    /* a tie: the group whose first answer came first wins */
    const char *b[4] = {"5", "3", "3", "5"};
    EXPECT_EQ_INT(cons_vote(b, 4, ANSWER_MATH, &votes), 0);
    EXPECT_EQ_INT(votes, 2);
    const char *b2[4] = {"3", "5", "5", "3"};
    EXPECT_EQ_INT(cons_vote(b2, 4, ANSWER_MATH, &votes), 0);
    /* a larger later group beats an earlier smaller one */
    const char *c[5] = {"1", "2", "2", NULL, "2"};
    EXPECT_EQ_INT(cons_vote(c, 5, ANSWER_MATH, &votes), 1);
    EXPECT_EQ_INT(votes, 3);
    /* no answers at all */
    const char *d[2] = {NULL, NULL};
    EXPECT_EQ_INT(cons_vote(d, 2, ANSWER_MATH, &votes), -1);
    EXPECT_EQ_INT(votes, 0);
    EXPECT_EQ_INT(cons_vote(d, 0, ANSWER_MATH, NULL), -1);
    /* samples without an answer do not vote; 1/1 tie -> the first answered */
    const char *e[3] = {NULL, "7", "8"};
    EXPECT_EQ_INT(cons_vote(e, 3, ANSWER_MATH, &votes), 1);
    EXPECT_EQ_INT(votes, 1);
    /* equivalence groups forms: \frac{1}{2} = 0.5, a 2-2 tie won by the earlier group */
    const char *f[4] = {"2", "\\frac{1}{2}", "0.5", "2"};
    EXPECT_EQ_INT(cons_vote(f, 4, ANSWER_MATH, &votes), 0);
    EXPECT_EQ_INT(votes, 2);
    const char *f2[4] = {"\\frac{1}{2}", "2", "0.5", "2"};
    EXPECT_EQ_INT(cons_vote(f2, 4, ANSWER_MATH, &votes), 0);
    /* letters */
    const char *g[3] = {"A", "B", "B"};
    EXPECT_EQ_INT(cons_vote(g, 3, ANSWER_CHOICE, &votes), 1);
    EXPECT_EQ_INT(votes, 2);
}

int main(void) {
    RUN(test_pass_at_k_small);
    RUN(test_pass_at_k_large);
    RUN(test_pass1_stderr);
    RUN(test_cons_vote);
    TESTS_DONE();
}
