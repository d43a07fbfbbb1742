/* teacher/: inference. A loaded model (qwen2, llama or deepseek_v3), its KV cache, and the
 * commands that run it (logits, inspect, generate).
 *
 * One forward call runs a ragged batch: any number of tokens from any number of sequences, each
 * token with the cache slot of its sequence and its position. Prefill is one sequence's prompt
 * as one batch; a decode step is one token from each sequence in flight. A token's logits do
 * not depend on what else is in the batch. */
#ifndef R1_TEACHER_TEACHER_H
#define R1_TEACHER_TEACHER_H

#include "core/backend.h"
#include "core/config.h"

typedef struct teacher_model teacher_model;

struct teacher_model {
    model_config cfg;
    char *path;
    backend *be;
    int cache_slots;    /* sequences the cache holds */
    int cache_len;      /* positions per sequence */
    /* Logits [n_out, vocab] of the last forward, in backend memory (valid until the next
     * forward): a device sampler reads them there. */
    const float *logits;

    /* Runs the batch; writes logits [n_out, vocab] for the batch rows listed in out_rows to the
     * host array `logits`, or only to m->logits when `logits` is NULL. */
    int (*forward)(teacher_model *m, const int *tokens, const token_layout *tl,
                   const int *out_rows, int n_out, float *logits);
    /* (Re)allocates the cache for `slots` sequences of up to `len` positions. */
    int (*cache_init)(teacher_model *m, int slots, int len);
    /* Bytes of cache per token (all layers), as this backend stores it. */
    size_t (*cache_bytes_per_token)(const teacher_model *m);
    void (*destroy)(teacher_model *m);
};

/* Opens a model directory (config.json + safetensors) of any supported architecture, or a GGUF
 * file (qwen2 or llama; teacher/gguf_model.c). */
int teacher_open(teacher_model **out, const char *path, backend *be);
void teacher_close(teacher_model *m);

/* Architecture constructors, dispatched by teacher_open on model_type. */
int dense_open(teacher_model **out, const char *path, const model_config *cfg, backend *be);
int deepseek_open(teacher_model **out, const char *path, const model_config *cfg, backend *be);

/* Runs a whole prompt (positions 0..n-1, slot 0) and returns logits for every position
 * ([n, vocab], caller frees). Sizes the cache to n. */
int teacher_logits_all(teacher_model *m, const int *tokens, int n, float **logits);

/* Whether a deepseek_v3 config splits into tp tensor-parallel ranks (teacher/deepseek.c says
 * how): heads, routed experts and MLP widths divisible by tp, and for FP8 checkpoints every
 * shard a whole number of scale blocks. R1_EINPUT naming `where` otherwise. */
int deepseek_tp_check(const model_config *c, int tp, const char *where);

/* transformers' DeepseekV3Attention.scaling for a config: (qk_nope + qk_rope)^-0.5, times
 * yarn_get_mscale(factor, mscale_all_dim)^2 when the rope is scaled. */
float deepseek_softmax_scale(const model_config *c);

/* A model's size from its config alone (teacher/cmd_inspect.c says how it counts). */
typedef struct {
    int64_t params_total;              /* weights the forward uses, embeddings and head included */
    int64_t params_active;             /* less the routed experts a token does not pick */
    int64_t params_mtp;                /* DeepSeek's MTP modules, not in params_total */
    int64_t bytes[DTYPE_COUNT];        /* checkpoint bytes of those weights by stored dtype */
    int64_t kv_cache_bytes_per_token;  /* all layers, bf16 */
    int overflow;                      /* some count passed int64: the others are meaningless */
} model_size;
void model_size_from_config(model_size *s, const model_config *c);

/* The memory of one node of `gpus` GPUs serving a model: tensor-parallel attention and dense
 * layers, expert-parallel routed experts (teacher/cmd_inspect.c details the split). Bytes per
 * GPU. */
typedef struct {
    int gpus;
    int experts_per_gpu;
    double experts, attention, dense_mlp, embed_head, other; /* weights by kind */
    double weights;                                          /* their sum */
    double reserve;                                          /* context, workspaces */
    double free_for_cache;                                   /* per GPU, may be < 0 */
    double kv_per_seq_tp;  /* one sequence of seq_len tokens, tensor-parallel attention */
    double kv_per_seq_dp;  /* the same with data-parallel attention */
    int64_t fit_tp, fit_dp; /* concurrent sequences that fit on the node */
} gpu_plan;
void gpu_plan_from_config(gpu_plan *p, const model_config *c, int gpus, double gpu_bytes,
                          double reserve_bytes, int seq_len);

/* Commands. */
int cmd_logits(int argc, char **argv);
int cmd_inspect(int argc, char **argv);

#endif
