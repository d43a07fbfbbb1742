/* The CUDA training step of a Qwen2 / Llama student (pre-norm decoder, GQA, RoPE, SwiGLU; tied
 * or untied head; q/k/v bias for Qwen2), built from the kernels of student/cuda/kernels.h.
 *
 *   x = embed(tokens)                                  one flat stream of packed documents
 *   for each layer:
 *       h1 = rmsnorm(x); qkv = h1 Wqkv^T + bqkv; rope(q, k)   (positions restart per document)
 *       x' = x + attention(qkv) Wo^T                    causal within each document
 *       h2 = rmsnorm(x'); x'' = x' + swiglu(h2 Wgu^T) Wd^T
 *   loss = sum over counted tokens of CE(rmsnorm(x) Wlm^T, target) / count   (chunked; no logits)
 *
 * Parameters live in one flat allocation per kind: bf16 working weights, float32 master weights,
 * AdamW moments m and v, and gradients (bf16, or float32 with grad_f32), each tensor starting on a
 * 256-byte boundary. Within a layer q, k, v are consecutive, so [Wq; Wk; Wv] is the one [qkv, d]
 * matrix the fused projection multiplies by (likewise [bq; bk; bv] and [Wgate; Wup]); a checkpoint
 * sees the usual separate Hugging Face tensors (cuda_student_param). Layers are contiguous, so a
 * layer's gradients form one range (for a bucketed reduce-scatter when training on several GPUs).
 *
 * Without recomputation every activation the backward needs is kept (about 20 d + 3 ff bf16 per
 * token and layer for a 0.5B shape); with recomputation only each layer's input is kept and the
 * layer's forward is run again inside the backward. Either way the results are bit-identical.
 *
 * Data parallel (ZeRO-1): with n_ranks > 1 and a communicator, every rank keeps the whole bf16
 * weights and gradients but float32 master weights and moments only for its shard. The flat
 * arrays are cut into buckets (the embedding, each layer, the final norm with an untied head),
 * each padded to a multiple of n_ranks * 128 elements; rank r owns the r-th of the n_ranks equal
 * pieces of every bucket. The last micro-batch of a step reduce-scatters each bucket's gradients
 * on a second stream as soon as the backward has finished it (the head first, the embedding
 * last), overlapping the rest of the backward; the update runs AdamW on the owned pieces and
 * all-gathers the bf16 weights bucket by bucket.
 *
 * ZeRO-2 (zero_stage 2) shards the gradients too; ZeRO-3 (zero_stage 3) also the bf16 weights:
 * each rank keeps only its pieces, and the forward and the backward all-gather each layer into
 * one of two layer-sized slots, one layer ahead, and an untied embedding and head into a third
 * in turn (a tied embedding, read at both ends, stays whole on every rank). The gathered
 * weights are the very bits ZeRO-2 holds, so the two train alike to the bit.
 *
 * Errors (bad batches, missing tensors) return R1_EINPUT / R1_ERUNTIME with err_fail; CUDA
 * failures abort with file and line (R1_CUDA_CHECK). */
#ifndef R1_STUDENT_TRAIN_CUDA_H
#define R1_STUDENT_TRAIN_CUDA_H

#ifdef R1_HAVE_CUDA

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/safetensors.h"
#include "core/cuda_comm.h"
#include "student/cuda/kernels.h"
#include "student/recompute.h"

typedef struct {
    int max_tokens;     /* tokens per micro-batch, at most */
    int recompute;      /* a recompute_mode (student/recompute.h) */
    int grad_f32;       /* float32 gradients (else bf16) */
    int ce_chunk;       /* rows per logits chunk of the loss (0: sized to ~1 GiB of logits) */
    attn_impl attn;     /* ATTN_AUTO normally */
    int attn_recompute_ds; /* the attention's backward recomputes dS even where it could keep it
                           in spent scratch (benchmarks: the kept dS beside the old way) */
    int n_ranks;        /* data-parallel ranks the layout is sharded for (0 or 1: one GPU) */
    int zero_stage;     /* with n_ranks > 1 (0: cuda_student_fit_shards picks): 2 shards the
                           gradients too (ZeRO-2: each micro-batch reduces every bucket and
                           each rank keeps the sum of its pieces), 3 the bf16 weights as well
                           (ZeRO-3); else ZeRO-1 (the optimizer state only) */
    size_t mem_limit;   /* bytes the student may allocate (0: the device's free memory) */
    int host_optimizer; /* the host holds the optimizer state of the first host_buckets buckets
                           and runs their AdamW (train --offload-optimizer); with several
                           ranks each host holds its ranks' pieces of them */
    int host_buckets;   /* with host_optimizer: how many (the embedding, then the layers, then
                           the head; cuda_student_fit_offload picks the fewest that fit); -1:
                           all, so the device holds the bf16 weights and the gradients only */
    cuda_comm *comm;    /* their communicator (n_ranks > 1); the student does not own it */
} cuda_student_opts;

/* One parameter tensor as a checkpoint names it. */
typedef struct {
    char name[96];      /* Hugging Face name, e.g. "model.layers.3.self_attn.k_proj.weight" */
    int64_t rows, cols; /* rows = 1 for vectors */
    size_t offset;      /* element offset in the flat parameter arrays */
    int decay;          /* weight decay applies (matrices: yes; norms and biases: no) */
} cuda_param;

typedef struct cuda_student cuda_student;

/* Device memory the student will allocate for these options (for planning and reports). */
size_t cuda_student_bytes(const model_config *cfg, const cuda_student_opts *o);

/* bytes as "201 MiB" below a GiB, else as "42.3 GiB" */
void cuda_mem_text(char *buf, size_t len, size_t bytes);
/* The device memory the student may take: the free memory, or o->mem_limit if that is less. */
size_t cuda_student_budget(const cuda_student_opts *o);
/* The first of RECOMPUTE_NONE, RECOMPUTE_CHEAP, RECOMPUTE_KEEP_ATTN, RECOMPUTE_ALL (fastest
 * first) whose plan fits the budget, o->recompute ignored; RECOMPUTE_ALL when none does (create
 * then says why). */
recompute_mode cuda_student_fit_recompute(const model_config *cfg, const cuda_student_opts *o);
/* ZeRO stage 0 over several ranks: the fastest recomputation mode that fits the budget of every
 * rank (o->recompute itself unless pick_recompute), with the lowest ZeRO stage at which it does,
 * into o->recompute and o->zero_stage; RECOMPUTE_ALL (or o->recompute) with ZeRO-3 when nothing
 * fits (create then says why). Collective over o->comm: every rank gets the same answer. */
void cuda_student_fit_shards(const model_config *cfg, cuda_student_opts *o, int pick_recompute);
/* host_buckets for --offload-optimizer: the fewest buckets whose optimizer state the host must
 * hold for the rest to fit the budget (0 when all of it fits), leaving OFFLOAD_RESERVE_MIB of
 * the device's free memory free unless o->mem_limit names the budget; all of them when even that
 * does not fit (create then says why). Collective with several ranks: the fewest that fit every
 * rank. */
enum { OFFLOAD_RESERVE_MIB = 1024 };
int cuda_student_fit_offload(const model_config *cfg, const cuda_student_opts *o);
/* The parameters whose optimizer state this rank's host keeps (its pieces of the host
 * buckets), and all of them. */
size_t cuda_student_host_numel(const cuda_student *s);

/* Allocates everything up front (no allocation during training). Parameters start undefined:
 * load or initialise them. R1_ERUNTIME if the budget (cuda_student_budget) is too small. */
int cuda_student_create(cuda_student **out, const model_config *cfg, const cuda_student_opts *o);
void cuda_student_destroy(cuda_student *s);
/* Device memory the student holds: its buffers and the GEMM workspace (the plan's sum). */
size_t cuda_student_allocated(const cuda_student *s);

int cuda_student_n_params(const cuda_student *s);
const cuda_param *cuda_student_param(const cuda_student *s, int i);
size_t cuda_student_numel(const cuda_student *s); /* all parameters, padding excluded */

/* Parameters from a Hugging Face checkpoint (any float dtype), or random: matrices normal(0, std),
 * norm weights 1, biases 0 (device-side generator; seed picks the stream). Either resets the
 * optimizer state (moments 0, step 0) and the gradients. */
int cuda_student_load(cuda_student *s, const safetensors *st);
void cuda_student_init_random(cuda_student *s, uint64_t seed, float std);

/* Copies tensor i to the host as float32: its master weights, gradient, or moments. One GPU
 * only (n_ranks <= 1): with shards use cuda_student_get_state. */
typedef enum { CUDA_MASTER, CUDA_GRAD, CUDA_ADAM_M, CUDA_ADAM_V } cuda_tensor_kind;
void cuda_student_download(const cuda_student *s, cuda_tensor_kind kind, int i, float *dst);
/* Uploads float32 host values into tensor i (master weights, or moments); updates the bf16 copy
 * when kind is CUDA_MASTER. One GPU only. */
void cuda_student_upload(cuda_student *s, cuda_tensor_kind kind, int i, const float *src);

/* The whole optimizer state in and out, on any number of ranks (with host_optimizer, put sets
 * the buckets whose state the device keeps, get all of them). src[i] /
 * dst[i] point at the rows * cols float32 values of tensor i (cuda_student_param order).
 * put: CUDA_MASTER sets the master weights of this rank's shard and its bf16 working weights
 * (the whole copy, or under ZeRO-3 its pieces); CUDA_ADAM_M / _V set the moments of the shard
 * (read NULL: zeros). put reads only the values this rank keeps, through read(ctx, i, c0, cnt,
 * dst): values [c0, c0 + cnt) of tensor i as float32. get (CUDA_MASTER, _ADAM_M, _ADAM_V):
 * gathers the shards; collective, so every rank calls it, and ranks that only take part pass
 * dst NULL. */
typedef void (*cuda_host_read_fn)(void *ctx, int i, size_t c0, size_t cnt, float *dst);
/* get_state one bucket at a time (a checkpoint written as it is gathered): bucket k's float32
 * values of kind into hb (len values: tensor i of the bucket at hb + its offset - start).
 * Collective like get_state; hb NULL only takes part. A bucket the host keeps (host_optimizer)
 * is gathered from the ranks' host arrays (cuda_student_set_host_state). */
int cuda_student_bucket_of(const cuda_student *s, int i);
void cuda_student_bucket(const cuda_student *s, int k, size_t *start, size_t *len);
void cuda_student_get_bucket(cuda_student *s, cuda_tensor_kind kind, int k, float *hb);
void cuda_student_put_state(cuda_student *s, cuda_tensor_kind kind, cuda_host_read_fn read,
                            void *ctx);
void cuda_student_get_state(cuda_student *s, cuda_tensor_kind kind, float *const *dst);
/* With host_optimizer the host runs AdamW on the host buckets' tensors, each rank on its pieces
 * of them. The host's state is packed: host_runs calls fn for each run of a tensor's values in
 * this rank's pieces, in order, values [c0, c0 + cnt) of tensor i being [at, at + cnt) of the
 * host's arrays (cuda_student_host_numel values). set_host_state: those arrays, float32 master
 * weights and moments, which the caller owns and fills first. put_weights: the bf16 working
 * weights of the host buckets from the host's master weights (nearest, ties away from zero:
 * the split master's upper halves), gathered from every rank (put_state moves the state of the
 * buckets the device keeps). host_update: one pass over the runs in pieces of the pinned
 * staging; fn gets run [c0, c0 + cnt) of tensor i's gradients as stored (float32, or bf16
 * bits) and writes its new bf16 weights into w, which then go to the device and are gathered.
 * put_weights and host_update are collective with several ranks, and synchronous.
 * cuda_student_update runs the other buckets' AdamW. */
typedef void (*cuda_host_run_fn)(void *ctx, int i, size_t c0, size_t cnt, size_t at);
void cuda_student_host_runs(const cuda_student *s, cuda_host_run_fn fn, void *ctx);
void cuda_student_set_host_state(cuda_student *s, float *master, float *exp_avg,
                                 float *exp_avg_sq);
typedef void (*cuda_host_update_fn)(void *ctx, int i, size_t c0, size_t cnt, size_t at,
                                    const void *grad, int grad_f32, uint16_t *w);
void cuda_student_put_weights(cuda_student *s);
void cuda_student_host_update(cuda_student *s, cuda_host_update_fn fn, void *ctx);
/* Sets the AdamW step counter (the number of updates already made), as a resumed run needs. */
void cuda_student_set_step(cuda_student *s, int step);

/* A micro-batch: n tokens of n_docs packed documents [cu_seqlens[i], cu_seqlens[i + 1]);
 * targets[i] is the token to predict at position i (-1: no loss there, e.g. prompt tokens or a
 * document's last token). Host arrays. */
typedef struct {
    int n, n_docs;
    const int *tokens, *targets, *cu_seqlens;
} cuda_batch;

/* Forward and backward of one micro-batch: gradients accumulate (+=), the loss accumulates
 * sum(CE) * inv_count (inv_count = 1 / the counted tokens of the whole optimizer step).
 * Asynchronous: returns once the work is queued. */
int cuda_student_forward_backward(cuda_student *s, const cuda_batch *b, float inv_count);
/* The same for the last micro-batch this rank runs in an optimizer step: with several ranks it
 * also queues the reduce-scatter of each bucket's gradients as soon as the backward completes it.
 * A rank with no micro-batch in a step calls cuda_student_reduce_grads instead (every rank must
 * queue the same collectives in the same order). With one GPU both are the plain call / no-op. */
int cuda_student_forward_backward_last(cuda_student *s, const cuda_batch *b, float inv_count);
void cuda_student_reduce_grads(cuda_student *s);
/* Forward only, the loss accumulated as above (evaluation). With ZeRO-3 the forward gathers
 * weights, so every rank must run as many: a rank with fewer micro-batches makes up with
 * cuda_student_forward_idle (the collectives alone; nothing otherwise). */
int cuda_student_forward(cuda_student *s, const cuda_batch *b, float inv_count);
void cuda_student_forward_idle(cuda_student *s);

void cuda_student_zero_grad(cuda_student *s);
/* The loss accumulated since the last call, which resets it (synchronises). With several ranks
 * the sum over ranks (collective). */
float cuda_student_take_loss(cuda_student *s);

typedef struct {
    double lr, beta1, beta2, eps, weight_decay; /* as adamw_config (student/adamw.h) */
    float max_grad_norm;                        /* <= 0: no clipping */
} cuda_optim;

/* Clip factor from the global gradient norm, then AdamW on every tensor; the step counter
 * advances. *grad_norm receives the norm before clipping (synchronises when not NULL). The
 * gradients are left as they were: call cuda_student_zero_grad before the next step. */
void cuda_student_step(cuda_student *s, const cuda_optim *o, float *grad_norm);
/* The same in two halves, so a caller can look at the norm before updating: the global norm
 * before clipping (synchronises; collective with several ranks) with the clip factor for
 * max_grad_norm kept on the device, then the update with that factor (o->max_grad_norm unused). */
float cuda_student_grad_norm(cuda_student *s, float max_grad_norm);
void cuda_student_update(cuda_student *s, const cuda_optim *o);
int cuda_student_step_count(const cuda_student *s);
/* The ZeRO stage the student runs: 0 on one GPU, else 1 to 3. From 2 on every micro-batch
 * reduces its gradients (cuda_student_reduce_grads is then one round of those reductions, and
 * with 3 of the weights' gathers too). */
int cuda_student_zero_stage(const cuda_student *s);

/* The stream every operation is queued on. */
cudaStream_t cuda_student_stream(const cuda_student *s);

#endif /* R1_HAVE_CUDA */
#endif
