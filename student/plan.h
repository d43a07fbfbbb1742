/* Training memory and compute plan for a dense student on N GPUs.
 *
 * The memory model (bytes per GPU), for P parameters, N GPUs and ZeRO stage z:
 *   bf16 working weights    2P        (z = 3: 2P/N plus train --zero 3's slots: the embedding
 *                                     and head buckets' (whole when tied, one slot for both
 *                                     when not) and two layers')
 *   gradients               2P        (z >= 2: 2P/N plus train --zero 2's scratch: the
 *                                     embedding's and the head bucket's, one shared buffer when
 *                                     untied, and two layers'); 4 bytes
 *                                     (fp32) instead of 2 when a GPU adds up several
 *                                     micro-batches per step, as train keeps them
 *   fp32 master weights     2P        (z >= 1: 2P/N): their low halves; the bf16 working
 *                                     weights are the upper ones (core/dtype.h, f32_split_hi)
 *   fp32 AdamW m and v      8P        (z >= 1: 8P/N)
 *   (offloading: master weights and moments in host memory instead, 12P there over all
 *   ranks; z = 0 on one GPU, else the lowest stage from 1 at which the rest fits)
 *   activations             per micro-batch sequence of T tokens, bf16, flash attention (no T^2):
 *     with recomputation    L*T*d*2 (each layer's input kept) + 2 * one layer's activations
 *     cheap recomputation   L*T*(2d + 2*q_dim + 2*kv_dim + 2*ff)*2 (the products' outputs kept)
 *                           + T*(2d + ff)*2 (the norms' and SwiGLU's outputs, shared)
 *     without               L * one layer's activations
 *     one layer's           T * (4d + 2*q_dim + 2*kv_dim + 3*ff) * 2
 *   loss                    chunked: chunk rows * vocab * 4 * 2 (logits and their gradient)
 *   overhead                1 GiB (CUDA context, cuBLAS workspace, allocator slack), 1.5 GiB
 *                           on several GPUs (NCCL's buffers): measured beside train's own
 *                           allocation with nvidia-smi, 0.5 GiB on one H200, 1.4-1.5 on 2 and 4
 * FLOPs per token: 6*N_matmul + 12*L*q_dim*T (the convention of the performance anchors; causal
 * attention does half of that term; recomputation adds 2*N_matmul that MFU does not count). */
#ifndef R1_STUDENT_PLAN_H
#define R1_STUDENT_PLAN_H

#include <stdint.h>

#include "student/recompute.h"

typedef struct {
    int64_t vocab;
    int hidden, layers, heads, kv_heads, head_dim, ff;
    int tied;
    int attn_bias; /* q/k/v biases (Qwen2) */
} dense_shape;

typedef struct {
    int gpus;
    double gpu_mem_bytes;  /* usable bytes per GPU */
    int seq_len;
    int batch_size;       /* sequences per optimizer step */
    recompute_mode recompute;
    int loss_chunk_rows;  /* rows of logits per loss chunk */
    int offload;          /* train --offload-optimizer: fp32 master weights and moments on the
                             hosts (each rank's shard on its own) */
} plan_request;

typedef struct {
    int64_t params;        /* all parameters */
    int64_t params_matmul; /* parameters in matrix products (excludes an untied embedding table) */
    int zero_stage;        /* the lowest stage that fits, -1 if none does */
    int micro_batch;       /* sequences per forward pass per GPU (0 if nothing fits) */
    int accumulation;      /* micro-batches per optimizer step per GPU */
    double weights, grads, master, optimizer; /* bytes per GPU at zero_stage */
    int grads_f32;         /* the gradients counted as float32 (several micro-batches per GPU) */
    double host;           /* bytes in host memory over all ranks (offloading: fp32 master
                              weights, moments) */
    double activations_per_seq, loss, overhead;
    double total;          /* bytes per GPU at the chosen micro-batch */
    double flops_per_token, flops_per_step;
} plan_result;

int64_t dense_param_count(const dense_shape *s, int64_t *matmul_params);
/* Fills r; returns 0. r->zero_stage is -1 when even ZeRO-3 with one sequence does not fit. */
int plan_training(const dense_shape *s, const plan_request *q, plan_result *r);
/* Memory per GPU at a given stage and micro-batch (the same model plan_training searches). */
double plan_memory(const dense_shape *s, const plan_request *q, int stage, int micro_batch,
                   plan_result *parts);

int cmd_plan(int argc, char **argv);

#endif
