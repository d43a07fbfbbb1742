#include "student/plan.h"

#include <string.h>

int64_t dense_param_count(const dense_shape *s, int64_t *matmul_params) {
    const int64_t d = s->hidden, qd = (int64_t)s->heads * s->head_dim,
                  kvd = (int64_t)s->kv_heads * s->head_dim, ff = s->ff;
    /* per layer: q, k, v, o projections (+ q/k/v biases for Qwen2), gate/up/down, two norms */
    const int64_t attn = d * qd + 2 * d * kvd + qd * d + (s->attn_bias ? qd + 2 * kvd : 0);
    const int64_t mlp = 3 * d * ff;
    const int64_t layer = attn + mlp + 2 * d;
    const int64_t embed = s->vocab * d, head = s->tied ? 0 : s->vocab * d;
    const int64_t total = s->layers * layer + embed + head + d;
    /* The embedding lookup is no matrix product; the head is (the shared table when tied). */
    if (matmul_params) *matmul_params = s->layers * (attn + mlp) + s->vocab * d;
    return total;
}

/* Each GPU's share of a step's sequences (at least one). */
static int rows_per_gpu(const plan_request *q) {
    return q->batch_size / q->gpus > 0 ? q->batch_size / q->gpus : 1;
}

double plan_memory(const dense_shape *s, const plan_request *q, int stage, int mb,
                   plan_result *r) {
    const double P = (double)dense_param_count(s, NULL), N = q->gpus;
    const double d = s->hidden, qd = (double)s->heads * s->head_dim,
                 kvd = (double)s->kv_heads * s->head_dim, ff = s->ff, T = q->seq_len;
    /* train's buckets: the embedding, each layer, the head's (the final norm and an untied
     * lm_head). Beside their shards, train --zero 2 and 3 hold the ends whole: a tied embedding
     * and the head bucket, or one buffer an untied embedding and head take in turn; d * (vocab
     * + 1) values either way. */
    const double layer = (P - d - d * s->vocab * (s->tied ? 1 : 2)) / s->layers;
    const double ends = d * s->vocab + d;
    /* ZeRO-3 as train --zero 3 runs it: each rank's pieces of every bucket, the ends, and two
     * layer slots that the layers are gathered into in turn */
    r->weights = stage >= 3 ? 2 * (P / N + ends + 2 * layer) : 2 * P;
    /* train keeps bf16 gradients for one micro-batch per step and float32 ones when it adds up
     * several (student/train.c) */
    r->grads_f32 = rows_per_gpu(q) / mb > 1;
    const double gb = r->grads_f32 ? 4 : 2;
    /* ZeRO-2 as train --zero 2 runs it: each rank's sum, plus the scratch the backward writes a
     * bucket into before the reduction: the ends' and two layers' */
    const double scratch = ends + 2 * layer;
    r->grads = stage >= 2 ? gb * (P / N + scratch) : gb * P;
    r->master = stage >= 1 ? 2 * P / N : 2 * P; /* the low halves (f32_split_lo) */
    r->optimizer = stage >= 1 ? 8 * P / N : 8 * P;
    r->host = 0;
    if (q->offload) { /* the hosts keep the fp32 master and both moments: each rank its shard */
        r->master = r->optimizer = 0;
        r->host = 12 * P;
    }
    const double layer_act = T * (4 * d + 2 * qd + 2 * kvd + 3 * ff) * 2;
    const double cheap = s->layers * T * (2 * d + 2 * qd + 2 * kvd + 2 * ff) * 2 +
                         T * (2 * d + ff) * 2;
    const double all = s->layers * T * d * 2 + 2 * layer_act;
    /* KEEP_ATTN: each layer's attention output and log-sum-exp besides */
    const double keep_attn = all + s->layers * T * (2 * qd + 4.0 * s->heads);
    r->activations_per_seq = q->recompute == RECOMPUTE_CHEAP       ? cheap
                             : q->recompute == RECOMPUTE_ALL       ? all
                             : q->recompute == RECOMPUTE_KEEP_ATTN ? keep_attn
                                                                   : s->layers * layer_act;
    r->loss = (double)q->loss_chunk_rows * (double)s->vocab * 4 * 2;
    /* beyond what train allocates, nvidia-smi saw 0.5 GiB on one H200 (the CUDA context and
     * cuBLAS) and 1.4-1.5 GiB on 2 and 4 (NCCL's buffers besides); 1 GiB leaves slack for one */
    r->overhead = (N > 1 ? 1.5 : 1.0) * 1024 * 1024 * 1024;
    r->total = r->weights + r->grads + r->master + r->optimizer + mb * r->activations_per_seq +
               r->loss + r->overhead;
    return r->total;
}

int plan_training(const dense_shape *s, const plan_request *q, plan_result *r) {
    memset(r, 0, sizeof *r);
    r->params = dense_param_count(s, &r->params_matmul);
    const double T = q->seq_len;
    r->flops_per_token = 6.0 * (double)r->params_matmul +
                         12.0 * s->layers * (double)s->heads * s->head_dim * T;
    r->flops_per_step = r->flops_per_token * T * q->batch_size;
    r->zero_stage = -1;
    /* The lowest ZeRO stage at which one sequence fits, then the largest micro-batch (a divisor
     * of the per-GPU share of the batch, so accumulation comes out whole) that still fits. */
    const int per_gpu = rows_per_gpu(q);
    /* With one GPU there is nothing to shard: only stage 0 is meaningful. Offloading over
     * several GPUs starts at ZeRO-1, whose optimizer shards are the hosts' (stage 0 would
     * count the same GPU memory under another name). */
    const int min_stage = q->gpus > 1 && q->offload ? 1 : 0, max_stage = q->gpus > 1 ? 3 : 0;
    for (int stage = min_stage; stage <= max_stage && r->zero_stage < 0; stage++) {
        plan_result tmp;
        if (plan_memory(s, q, stage, 1, &tmp) > q->gpu_mem_bytes) continue;
        r->zero_stage = stage;
        int best = 1;
        for (int mb = 1; mb <= per_gpu; mb++)
            if (per_gpu % mb == 0 && plan_memory(s, q, stage, mb, &tmp) <= q->gpu_mem_bytes) best = mb;
        r->micro_batch = best;
        r->accumulation = per_gpu / best;
    }
    plan_memory(s, q, r->zero_stage < 0 ? max_stage : r->zero_stage,
                r->micro_batch ? r->micro_batch : 1, r);
    return 0;
}
