/* Choosing the next token from a row of logits: greedy, temperature, top-k, top-p; and the
 * teacher's top-K log-probabilities for logit distillation.
 *
 * Randomness is counter-based: the uniform for generated token `step` of sample `sample` of a
 * prompt is a pure function of (seed, prompt id, sample, step). A sample's text therefore does
 * not depend on the batch it ran in, the thread count, or how prompts were split across ranks,
 * and a GPU sampler reproduces it by evaluating the same formulas:
 *
 *   stream = FNV-1a-64(prompt id as UTF-8 bytes)        (core/hash.h)
 *   h = mix64(seed + 0x9e3779b97f4a7c15)
 *   h = mix64(h ^ stream)
 *   h = mix64(h ^ sample)
 *   h = mix64(h ^ step)                                  mix64: splitmix64's output function
 *   u = (h >> 11) * 2^-53                                a double in [0, 1)
 *
 * The token for (logits l[0..V), temperature T, top-k K, top-p P, uniform u):
 *   1. T == 0: greedy, the id with the largest logit, the lowest id among equals. No u is used.
 *   2. Order the ids by logit, largest first, the lower id first among equal logits.
 *   3. w_i = exp(l_i / T - l_max / T), in double (l_i converted to double, divided by T).
 *   4. Top-k (0 < K < V): keep the first K ids of the order.
 *   5. Top-p (P < 1): W = the sum of w over the ids kept so far, added in ascending id order.
 *      Walking the order with c = the sum of w of the ids before the current one (added in
 *      order), keep the id while c < P * W; the first id is always kept. This is the smallest
 *      prefix whose probability reaches P, as in transformers' TopPLogitsWarper (which applies
 *      after top-k and renormalises), so p is always relative to the top-k set.
 *   6. S = the sum of w over the kept ids, in order; t = u * S. Walking the order with c
 *      accumulating w, return the first id with t < c (the last kept id if rounding leaves
 *      none).
 * Only the ids that can be kept are sorted (a threshold on w finds a prefix of the order that
 * holds them), which changes no result. */
#ifndef R1_TEACHER_SAMPLER_H
#define R1_TEACHER_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double temperature; /* 0: greedy */
    double top_p;       /* (0, 1]; 1: off */
    int top_k;          /* 0: off */
} sampler_params;

/* Checks the ranges (temperature >= 0, 0 < top_p <= 1, top_k >= 0); R1_EINPUT names the value. */
int sampler_params_check(const sampler_params *p);

/* FNV-1a-64 of the prompt id's bytes. */
uint64_t sampler_stream(const char *prompt_id, size_t len);
/* The uniform in [0, 1) for one generated token (see the header comment). */
double sampler_uniform(uint64_t seed, uint64_t stream, uint64_t sample, uint64_t step);

/* Scratch for one row at a time: a thread samples rows one after another with its own. */
typedef struct {
    int vocab;
    double *w;  /* [vocab] */
    int *order; /* [vocab] */
    int *tmp;   /* [vocab] */
} sampler_work;

void sampler_work_init(sampler_work *ws, int vocab);
void sampler_work_free(sampler_work *ws);

/* The token for one row of logits (steps 1-6 above). */
int sampler_pick(const sampler_params *p, const float *logits, int vocab, double u,
                 sampler_work *ws);

/* The teacher's own distribution, untempered and untruncated: log_softmax(l) computed in
 * double. Writes the k ids with the largest log-probabilities (largest first, the lower id
 * first among equals) to ids[k] and their log-probabilities to lp[k] (float32), and the
 * log-probability of `chosen` to *chosen_lp. k <= vocab. */
void sampler_logprobs(const float *logits, int vocab, int k, int chosen, int *ids, float *lp,
                      float *chosen_lp, sampler_work *ws);

#endif
