/* student/: training dense Qwen2 / Llama students. This is the readable fp32 CPU trainer
 * (OpenBLAS matrix products, OpenMP loops) that the CUDA trainer is checked against.
 *
 * The model is transformers' Qwen2ForCausalLM / LlamaForCausalLM:
 *
 *   x = embed[tokens]
 *   for each layer:
 *       h = rmsnorm(x) * attn_norm
 *       q, k, v = h Wq^T + bq, h Wk^T + bk, h Wv^T + bv     (biases: Qwen2 / attention_bias)
 *       q, k = rope(q, pos), rope(k, pos)                     (rotate_half layout)
 *       x = x + attention(q, k, v) Wo^T                       (causal, GQA, within a document)
 *       h = rmsnorm(x) * mlp_norm
 *       x = x + (silu(h Wg^T) * (h Wu^T)) Wd^T
 *   logits = rmsnorm(x) * final_norm  Wlm^T                   (Wlm = embed when tied)
 *
 * A batch is a flat run of tokens from one or more documents (packed rows laid end to end):
 * each token carries its position inside its document and where that document starts, so
 * positions restart at 0 in every document and attention never crosses one.
 *
 * Conventions (after llm.c): layer functions take outputs first, then inputs, weights, sizes.
 * In backward functions parameter gradients accumulate (+=) and activation gradients are
 * assigned (=). Every parameter lives in one float32 allocation laid out by a tensor table;
 * gradients and the two Adam moments use the same layout, so a checkpoint is a walk of the table.
 * Results are deterministic: every sum runs in a fixed order whatever the thread count, so a run
 * repeats bit for bit on the same machine. */
#ifndef R1_STUDENT_STUDENT_H
#define R1_STUDENT_STUDENT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/dtype.h"
#include "core/rope.h"
#include "core/safetensors.h"
#include "student/adamw.h"

/* Loops with less work than this many elements run on one thread: waking OpenMP's threads
 * costs more than they save (and contends with OpenBLAS's own threads). Which thread runs an
 * iteration never changes its result. */
#define PAR_MIN_WORK ((size_t)1 << 16)

/* ---- parameters --------------------------------------------------------------------------- */

typedef struct {
    float *attn_norm; /* [d]        input_layernorm.weight */
    float *wq;        /* [H*hd, d]  self_attn.q_proj.weight */
    float *bq;        /* [H*hd]     self_attn.q_proj.bias, NULL without attention bias */
    float *wk;        /* [KV*hd, d] self_attn.k_proj.weight */
    float *bk;        /* [KV*hd]    or NULL */
    float *wv;        /* [KV*hd, d] self_attn.v_proj.weight */
    float *bv;        /* [KV*hd]    or NULL */
    float *wo;        /* [d, H*hd]  self_attn.o_proj.weight */
    float *mlp_norm;  /* [d]        post_attention_layernorm.weight */
    float *wg;        /* [ff, d]    mlp.gate_proj.weight */
    float *wu;        /* [ff, d]    mlp.up_proj.weight */
    float *wd;        /* [d, ff]    mlp.down_proj.weight */
} student_layer;

typedef struct {
    float *embed;          /* [V, d] model.embed_tokens.weight */
    student_layer *layers; /* [L]    model.layers.<l>.* */
    float *final_norm;     /* [d]    model.norm.weight */
    float *lm_head;        /* [V, d] lm_head.weight; the embedding itself when tied */
} student_params;

/* One tensor of the layout: its Hugging Face name, shape and place in the allocation. */
typedef struct {
    char name[96];
    int ndim;           /* 1 or 2 */
    int64_t shape[2];
    size_t offset;      /* in floats */
    size_t numel;
    int decay;          /* weight decay applies: 2-D weights; not norms or biases (1-D) */
} student_tensor;

typedef struct {
    model_config cfg;
    char *path;              /* the directory the weights came from */
    char *config_json;       /* its config.json (with any recipe changes), written to checkpoints */
    dtype disk_dtype;        /* the base checkpoint's float type, kept when saving */
    int n_tensors;
    student_tensor *tensors; /* in transformers' named_parameters() order */
    size_t n_params;         /* floats */
    float *param_mem;        /* [n_params] fp32 master weights */
    float *grad_mem;         /* [n_params] */
    student_params p, g;     /* pointers into param_mem and grad_mem */
    rope_table rope;
} student_model;

/* Builds the layout for a config (qwen2 or llama) and allocates zeroed parameters and grads. */
int student_model_create(student_model *m, const model_config *cfg);
/* Reads DIR/config.json, with config_changes (a JSON object, or NULL) merged into it first, and
 * builds its layout with zeroed parameters (student_model_create); m->path is DIR. *untie: the
 * changes untie a tied checkpoint, whose lm_head then starts as a copy of the embedding. */
int student_model_open(student_model *m, const char *dir, const cJSON *config_changes, int *untie);
/* student_model_open, then the safetensors weights (bf16, f16 or f32; converted to fp32). */
int student_model_load(student_model *m, const char *dir, const cJSON *config_changes);

/* Where a model's starting values come from: the safetensors of a model directory, and for a
 * checkpoint its optimizer state, mapped and checked when opened (every tensor present, with the
 * layout's shape and a float type), then read as float32 piece by piece. */
typedef enum { SOURCE_PARAMS, SOURCE_EXP_AVG, SOURCE_EXP_AVG_SQ, SOURCE_KINDS } source_kind;
typedef struct {
    safetensors weights, optim;
    int open;                  /* 1: weights mapped; 2: the optimizer state too */
    int n;                     /* the layout's tensors */
    const st_tensor **t[SOURCE_KINDS]; /* [kind][tensor]; moments NULL without a state file */
} student_source;

/* Opens dir's weights for m's layout (setting m->disk_dtype) and, when optimizer is not NULL,
 * that optimizer.safetensors: the moments, and the float32 master weights when the weights are
 * stored narrower. untie: an lm_head missing from the files is read as the embedding. */
int student_source_open(student_source *src, student_model *m, const char *dir,
                        const char *optimizer, int untie);
/* Whether the source holds values of kind k (moments: only a checkpoint's). */
int student_source_has(const student_source *src, source_kind k);
/* Values [c0, c0 + cnt) of the layout's tensor i, as float32 (zeros where the source has none
 * of kind k). */
void student_source_read(const student_source *src, source_kind k, int i, size_t c0, size_t cnt,
                         float *dst);
/* Every tensor of kind k into dst, in the layout. */
void student_source_read_all(const student_source *src, const student_model *m, source_kind k,
                             float *dst);
/* The whole state into host arrays: m->param_mem, and new *exp_avg / *exp_avg_sq (zeros where
 * the source has no moments), for the CPU trainer and an offloaded run. */
void student_source_read_state(const student_source *src, student_model *m, float **exp_avg,
                               float **exp_avg_sq);
void student_source_close(student_source *src);

/* The tensors of the layout as safetensors entries named prefix+name, of type dt, without data
 * (safetensors_write_dir_fill produces it). The names live in *names, which the caller frees. */
void student_model_entries(const student_model *m, const char *prefix, dtype dt, char **names,
                           st_entry *entries /* [n_tensors] */);
void student_model_free(student_model *m);
const student_tensor *student_model_find(const student_model *m, const char *name);

/* ---- a batch and its activations ---------------------------------------------------------- */

typedef struct {
    int n;                /* tokens */
    const int *tokens;    /* [n] */
    const int *pos;       /* [n] position inside its document (0 at the document's first token) */
    const int *doc_start; /* [n] batch index of the first token of the token's document */
    const int *targets;   /* [n] the next token of the document where its loss mask is set,
                           *     -1 where position i has no loss */
} student_batch;

/* Saved activations of one layer, for tokens [n]. */
typedef struct {
    float *h1;    /* [n, d]    rmsnorm(x) * attn_norm */
    float *rstd1; /* [n]       1 / rms(x) */
    float *q;     /* [n, H*hd] after rope */
    float *k;     /* [n, KV*hd] after rope */
    float *v;     /* [n, KV*hd] */
    float *att;   /* [n, H*hd] attention output, before o_proj */
    float *lse;   /* [n, H]    log-sum-exp of each attention row (its probabilities are recomputed) */
    float *x2;    /* [n, d]    residual after attention */
    float *h2;    /* [n, d]    rmsnorm(x2) * mlp_norm */
    float *rstd2; /* [n] */
    float *gate;  /* [n, ff]   h2 Wg^T */
    float *up;    /* [n, ff]   h2 Wu^T */
    float *act;   /* [n, ff]   silu(gate) * up */
} student_layer_acts;

typedef struct {
    int max_tokens;
    int recompute;              /* one layer_acts shared by all layers, refilled in backward */
    float *res;                 /* [L + 1, n, d] residual stream: each layer's input, then the
                                 * last layer's output */
    student_layer_acts *layers; /* [L] (all the same buffers when recomputing) */
    float *hf;                  /* [n, d] final rmsnorm output */
    float *rstdf;               /* [n] */
    /* backward scratch */
    float *dres, *dx2, *dh, *dtmp; /* [n, d] */
    float *datt, *dq;              /* [n, H*hd] */
    float *dk, *dv;                /* [n, KV*hd] */
    float *dgate, *dup, *dact;     /* [n, ff] */
    float *mem;
    size_t bytes;
} student_acts;

void student_acts_init(student_acts *a, const model_config *c, int max_tokens, int recompute);
void student_acts_free(student_acts *a);

/* ---- matrix products (gemm.c) ------------------------------------------------------------ */

/* C[M, N] = alpha op(A) op(B) + beta C, row-major (cblas_sgemm's arguments), computed in fixed
 * blocks of rows of C spread over OpenMP threads with OpenBLAS single-threaded. */
void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);
/* Makes OpenBLAS single-threaded (gemm brings the threads); student_acts_init calls it. */
void gemm_threads_init(void);

/* ---- layers (forward.c, backward.c, attention.c, loss.c) --------------------------------- */

void embedding_forward(float *out, const int *tokens, const float *embed, int n, int d);
void embedding_backward(float *dembed, const float *dout, const int *tokens, int n, int d);
void rmsnorm_forward(float *out, float *rstd, const float *x, const float *g, int n, int d,
                     float eps);
void rmsnorm_backward(float *dx, float *dg, const float *dout, const float *x, const float *g,
                      const float *rstd, int n, int d);
/* out[n, oc] = x[n, ic] w[oc, ic]^T (+ b[oc]) */
void matmul_forward(float *out, const float *x, const float *w, const float *b, int n, int ic,
                    int oc);
/* dx[n, ic] = dout w (accumulate: dx += instead); dw += dout^T x; db += column sums of dout.
 * dx, dw, db may be NULL. */
void matmul_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                     const float *w, int n, int ic, int oc, int accumulate_dx);
/* Rotates n_heads head vectors of width hd in each of the n rows of x (row stride n_heads*hd)
 * at the token's position; backward applies the inverse rotation to the gradient in place. */
void rope_forward(float *x, const rope_table *r, const int *pos, int n, int n_heads, int hd);
void rope_backward(float *dx, const rope_table *r, const int *pos, int n, int n_heads, int hd);
void swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t n);
/* Grouped-query causal attention inside documents: token i attends to tokens
 * doc_start[i]..i. q: [n, H, hd], k, v: [n, KV, hd], out: [n, H, hd], lse: [n, H]. */
void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                       const int *doc_start, int n, int H, int KV, int hd);
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                        const float *k, const float *v, const float *lse, const int *doc_start,
                        int n, int H, int KV, int hd);

/* Cross-entropy of the head x[n, d] w[V, d]^T against targets (-1: no loss), in chunks of rows
 * so the full [n, V] logits never exist. Returns the sum of the per-token losses (float64) and
 * the number of targets in *n_loss. With dx != NULL it also computes the gradients of
 * scale * sum: dx [n, d] is assigned (zero on rows without a target), dw [V, d] accumulates. */
double loss_forward_backward(float *dx, float *dw, const float *x, const float *w,
                             const int *targets, int n, int d, int64_t V, float scale,
                             int64_t *n_loss);
/* Rows of the head processed at once: fixed by the vocabulary size (about 32 MiB of logits). */
int loss_chunk_rows(int64_t V);

/* ---- the model ---------------------------------------------------------------------------- */

/* One decoder layer: a->res[l + 1] and the layer's activations from a->res[l]. */
void student_layer_forward(student_model *m, student_acts *a, const student_batch *b, int l);
/* Forward through the final norm (acts->hf). */
void student_forward(student_model *m, student_acts *a, const student_batch *b);
/* One micro-batch of a training step: forward, loss and backward. Gradients of
 * loss_scale * (sum of the micro-batch's token losses) accumulate into m->grad_mem; the sum is
 * returned and the number of loss tokens written to *n_loss. */
double student_forward_backward(student_model *m, student_acts *a, const student_batch *b,
                                float loss_scale, int64_t *n_loss);
/* The summed token loss of a batch without gradients. */
double student_eval(student_model *m, student_acts *a, const student_batch *b, int64_t *n_loss);
/* All logits [n, V] of a batch (for tests and checks; it does materialise them). */
void student_logits(student_model *m, student_acts *a, const student_batch *b, float *logits);

/* ---- optimisation (adamw.c, schedule.c) ---------------------------------------------------- */

/* One torch.optim.AdamW step (decoupled weight decay, bias-corrected moments; t counts from 1)
 * on n values of one tensor. decay: apply weight_decay to this tensor. */
void adamw_update(float *param, const float *grad, float *m, float *v, size_t n,
                  const adamw_config *c, int64_t t, int decay);
/* The same step on gradients as another device stores them (float32, or bf16 bits), each first
 * multiplied by coef (grad_clip's product; exact when it is 1); w_hi receives the new values'
 * bf16 upper halves (core/dtype.h f32_split_hi). The GPU trainer's --offload-optimizer step. */
void adamw_update_staged(float *param, const void *grad, int grad_f32, float coef, float *m,
                         float *v, size_t n, const adamw_config *c, int64_t t, int decay,
                         uint16_t *w_hi);
/* Global L2 norm of the gradients (float64 sums per tensor in layout order). */
double grad_global_norm(const student_model *m);
/* torch.nn.utils.clip_grad_norm_: scales every gradient by min(1, max_norm / (norm + 1e-6)).
 * Returns the factor applied. max_norm <= 0: no clipping. */
float grad_clip(student_model *m, double norm, double max_norm);
/* That factor, min(1, max_norm / (norm + 1e-6)) in float32 (1 when max_norm <= 0). */
float grad_clip_coef(double norm, double max_norm);

typedef enum { SCHED_CONSTANT, SCHED_LINEAR, SCHED_COSINE } lr_schedule_kind;

typedef struct {
    lr_schedule_kind kind;
    double lr, min_lr;
    int64_t warmup, total;
} lr_schedule;

/* The learning rate of optimizer step `step` (1-based), as transformers' LambdaLR schedules give
 * it: lr * lambda(step - 1), so with warmup the first step runs at 0 as in the HF Trainer. */
double lr_at(const lr_schedule *s, int64_t step);
/* "constant", "linear", "cosine"; -1 if unknown. */
int lr_schedule_parse(const char *name, lr_schedule_kind *out);
const char *lr_schedule_name(lr_schedule_kind k);

/* Commands. */
int cmd_train(int argc, char **argv);

#endif
