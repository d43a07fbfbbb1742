/* Evaluation metrics over K samples per question (R1 protocol: pass@1 is the mean correctness
 * of the K samples, cons@K the majority vote).
 *
 *   pass@1          mean over questions of c_i / n_i (c_i correct of n_i samples)
 *   pass@1 stderr   the standard error of that mean over questions: sd(p_i) / sqrt(Q), with
 *                   the sample standard deviation (divisor Q - 1); 0 when Q = 1
 *   pass@k          mean over questions of the unbiased estimator 1 - C(n-c, k) / C(n, k)
 *                   (Chen et al. 2021), computed as 1 - prod_{i=n-c+1..n} (1 - k / i); 1 when
 *                   n - c < k
 *   cons@K          the share of questions whose majority answer is correct. Answers are
 *                   grouped greedily in sample order: each extracted answer joins the first
 *                   group whose first answer it equals (answer_equiv), else starts a group.
 *                   Samples without an answer do not vote. The largest group wins; among
 *                   groups of equal size, the one whose first answer came first. A question
 *                   with no answer at all counts as wrong. */
#ifndef R1_EVAL_METRICS_H
#define R1_EVAL_METRICS_H

#include "eval/eval.h"

/* The unbiased pass@k of one question with c correct of n samples; k <= n. */
double pass_at_k(int n, int c, int k);

/* Mean and standard error of p_i = correct[i] / n over q questions. */
void pass1_mean_stderr(const int *correct, int q, int n, double *mean, double *stderr_out);

/* The majority vote of n answers (NULL for none): the index of the winning group's first
 * answer, or -1 when no sample has an answer. *votes (may be NULL) gets the group's size. */
int cons_vote(const char *const *answers, int n, answer_kind kind, int *votes);

#endif
