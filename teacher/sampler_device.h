/* Token choice on a device backend: teacher/sampler.h's algorithm (greedy, temperature, top-k,
 * top-p, one uniform per row) evaluated where the logits are, so a decode step copies n token
 * ids to the host instead of n rows of logits.
 *
 * The GPU version (teacher/cuda/sampler_cuda.cu) follows steps 1-6 of sampler.h with the same
 * double-precision weights w_i = exp(l_i / T - l_max / T), the same order (logit descending,
 * lower id first among equals) and the same comparisons. What differs is how sums are formed:
 * the CPU adds doubles one after another; the GPU adds every w_i as an exact 120-bit fixed-point
 * number (no rounding, any order) and rounds each total once to double. The totals therefore
 * agree to ~1e-15 relative, and CUDA's exp agrees with glibc's to 1 ulp, so the chosen token is
 * the CPU's unless t = u * S or the top-p limit p * W lands within that rounding of a cumulative
 * sum: a probability below 1e-12 per token on real distributions (below ~1e-9 on a flat
 * 150k-token vocabulary). Greedy (T = 0) is exact. The GPU's choice is deterministic and does
 * not depend on the batch (integer sums), so a sample is still a function of its prompt, seed
 * and settings alone. Design and costs: docs/cuda-inference.md "Sampling on the GPU". */
#ifndef R1_TEACHER_SAMPLER_DEVICE_H
#define R1_TEACHER_SAMPLER_DEVICE_H

#include "core/backend.h"
#include "teacher/sampler.h"

typedef struct sampler_device sampler_device;

/* 1 when `be` can sample in its own memory (CUDA), 0 when the host samples (the CPU). */
int sampler_device_supported(const backend *be);

/* Scratch for up to max_rows rows of `vocab` logits on `be`. R1_EINPUT when the backend has no
 * device sampler. Free with sampler_device_close before the backend. */
int sampler_device_open(sampler_device **out, backend *be, int max_rows, int vocab);
void sampler_device_close(sampler_device *sd);

/* tokens[i] (host) = the token for row i of logits [n, vocab] (backend memory) with uniform u[i]
 * (host; unused when p->temperature == 0). n <= max_rows. Waits for the result. */
void sampler_device_pick(sampler_device *sd, int *tokens, const float *logits, int n,
                         const sampler_params *p, const double *u);

#endif
