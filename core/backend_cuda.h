/* The CUDA backend: the backend interface (core/backend.h) on one NVIDIA Hopper GPU.
 *
 * Two modes:
 *   BACKEND_CUDA_FP32  weights, activations, KV cache and arithmetic in float32, TF32 off: the
 *                      exactness mode (logits within ~1e-5 of the CPU backend, the same greedy
 *                      continuations).
 *   BACKEND_CUDA_BF16  bf16 weights (FP8 e4m3 weights stay FP8 with their block scales), bf16 KV
 *                      cache, float32 activations between ops and float32 accumulation: the
 *                      speed mode.
 * Linear layers run a bandwidth-bound GEMV kernel for up to 4 tokens and cuBLASLt otherwise;
 * decode steps are recorded as CUDA graphs and replayed (backend.h graph_begin). Design and
 * per-kernel costs: docs/cuda-inference.md.
 *
 * In builds without CUDA (no nvcc, or NO_CUDA=1) backend_cuda() records an error and returns
 * NULL, so callers need no #ifdef. */
#ifndef R1_CORE_BACKEND_CUDA_H
#define R1_CORE_BACKEND_CUDA_H

#include <stdio.h>

#include "core/backend.h"

enum { BACKEND_CUDA_FP32 = 0, BACKEND_CUDA_BF16 = 1 };

/* Creates a backend on GPU `device` (0-based) in `mode`, run from the calling thread. Returns
 * NULL with the error recorded when there is no usable GPU (R1_ERUNTIME) or the arguments are
 * wrong (R1_EINPUT). Free with be->destroy(be) after the models that use it are closed.
 * Environment: R1_CUDA_GRAPHS=0 turns graph recording off; R1_CUDA_SKINNY=0 and
 * R1_CUDA_MLA=direct turn the bf16 fast paths of linears and of MLA off (for comparisons). */
backend *backend_cuda(int device, int mode);

/* Whether GPU `device` is usable by this build (present, and a Hopper GPU for its sm_90a
 * kernels): R1_OK, or the reason recorded (R1_ERUNTIME: no usable GPU; R1_EINPUT: no such
 * index). *n_devices (may be NULL) receives the number of visible GPUs. Initialises the CUDA
 * runtime in the calling process (a process that forks workers must not call it first). */
int backend_cuda_probe(int device, int *n_devices);

/* Makes be (on this process's GPU) rank cuda_comm_rank(comm) of a tensor-parallel group of
 * cuda_comm_size(comm) (core/cuda_comm.h): all_reduce then sums over the group on be's stream,
 * and tp_rank and tp_size are set. Join before loading a model; the comm outlives be. */
struct cuda_comm;
void backend_cuda_join(backend *be, struct cuda_comm *comm);
/* In place on be's stream: buf[0, bytes) (backend memory) becomes rank 0's on every rank of the
 * group. */
void backend_cuda_broadcast(backend *be, void *buf, size_t bytes);

/* Knobs for tests and benchmarks; both are safe to call between forward passes. */
/* Graph recording on (1) or off (0); turning it off drops the recorded graphs. */
void backend_cuda_set_graphs(backend *be, int on);
/* linear() uses the GEMV kernel for n <= max_n tokens (default 4; 0: cuBLASLt always). */
void backend_cuda_set_gemv_max(backend *be, int max_n);
/* bf16 mode: the skinny tensor-core kernel (core/cuda/skinny_cuda.cu) also for BF16 weights at
 * 5..64 tokens (default off: cuBLASLt is faster there; FP8 weights always use it). */
void backend_cuda_set_skinny_bf16(backend *be, int on);
/* Replayed graph launches and recordings so far (for tests: proof that replay happened). */
void backend_cuda_graph_stats(backend *be, long *replays, long *recordings);
/* 1 when be was made by backend_cuda (device-side code such as the GPU sampler may then use
 * its stream); 0 otherwise, and always 0 in builds without CUDA. */
int backend_cuda_is(const backend *be);
/* Per-op GPU time for benchmarks: while on, every op runs between two CUDA events and graph
 * recording is off; the report lists ops by name and shape with calls, total and mean time
 * (and bytes per second for linears), largest total first. Turning it on clears the totals. */
void backend_cuda_profile(backend *be, int on);
void backend_cuda_profile_report(backend *be, FILE *f);
/* The same entries as JSON lines: {"kind": "op", "op", "a", "b", "c" (shape), "calls", "ms",
 * "bytes" (weight bytes per call for linears, else 0)}. */
void backend_cuda_profile_json(backend *be, FILE *f);

#endif
