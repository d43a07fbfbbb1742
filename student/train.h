/* The trainer's parts inside student/: the data loader (rows of examples, packing, shuffling),
 * checkpoints, and the training loop that cmd_train drives. */
#ifndef R1_STUDENT_TRAIN_H
#define R1_STUDENT_TRAIN_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "core/tokenizer.h"
#include "datasets/token_shard.h"
#include "student/recompute.h"
#include "student/student.h"

/* ---- data (data.c) ------------------------------------------------------------------------ */

typedef struct {
    int32_t shard;
    int32_t len;       /* tokens used (after --truncate) */
    int64_t doc;       /* example index inside the shard */
} train_doc;

typedef struct {
    int n_shards;
    token_shard *shards;
    int64_t n_docs;    /* examples kept */
    train_doc *docs;   /* [n_docs] in row order */
    int64_t n_rows;
    int64_t *row_off;  /* [n_rows + 1] first doc of each row */
    int64_t *row_len;  /* [n_rows] tokens */
    int64_t *row_loss; /* [n_rows] loss tokens */
    int max_row;       /* longest row */
    /* what loading did */
    int64_t examples, dropped_long, truncated, no_loss, tokens, loss_tokens;
    uint64_t fingerprint; /* FNV-1a of the rows' tokens, masks and layout */
} train_data;

typedef struct {
    int seq_len;
    int pack;              /* several examples per row */
    int truncate;          /* cut examples longer than seq_len instead of dropping them */
    int64_t vocab_size;    /* the model's: every id must be below it */
    uint64_t tokenizer_id; /* the model's tokenizer (0: unknown); shards made with another are refused */
    const char *tokenizer_dir; /* for JSONL conversations; NULL refuses them */
    chat_format format;
} train_data_options;

/* Opens a shard file or directory, or reads a JSONL file, and lays the examples into rows:
 * in file order, one per row, or (pack) greedily: an example joins the current row while the
 * row stays within seq_len tokens, else starts the next row. */
int train_data_open(train_data *td, const char *path, const train_data_options *o);
void train_data_close(train_data *td);

/* Token buffers of a micro-batch. */
typedef struct {
    int cap;
    int *tokens, *pos, *doc_start, *targets;
    student_batch b;
} batch_buf;

void batch_buf_init(batch_buf *bb, int cap);
void batch_buf_free(batch_buf *bb);
/* Lays rows[0..n) end to end into bb->b. */
void train_data_fill(const train_data *td, const int64_t *rows, int n, batch_buf *bb);

/* The rows of epoch e in training order: a Fisher-Yates shuffle seeded by (seed, e). */
void train_data_epoch_order(int64_t *order, int64_t n_rows, uint64_t seed, int64_t epoch);

/* ---- checkpoints (checkpoint.c) ----------------------------------------------------------- */

/* Writes a Hugging Face model directory into dir: config.json, the weights in the base
 * checkpoint's dtype, the tokenizer files and generation_config.json from the directory the
 * model was loaded from (m->path), and trainer_state.json (state). With moments != NULL also
 * optimizer.safetensors: exp_avg.<name>, exp_avg_sq.<name> (fp32) and, when the weights are
 * stored in a narrower dtype, master.<name> (the fp32 weights), so resuming is exact. */
int checkpoint_write(const char *dir, const student_model *m, const float *exp_avg,
                     const float *exp_avg_sq, const cJSON *state);
/* Writes checkpoint-<step> under out crash-safely (a temporary directory renamed into place)
 * and removes older checkpoints beyond `keep`. */
int checkpoint_save(const char *out, int64_t step, const student_model *m, const float *exp_avg,
                    const float *exp_avg_sq, const cJSON *state, int keep);
/* Where a checkpoint's float32 values come from, one tensor at a time in the order the writer
 * needs them: read(ctx, k, i, dst) puts kind k's values of the layout's tensor i into dst. So
 * the model is never whole on the host: the GPUs gather a bucket at a time. A process that
 * writes nothing but takes part in those gathers passes dir / out NULL: read is then called
 * with dst NULL, in the same order. After a write error the reads still run (dst NULL) to the
 * end, so the other processes are never left waiting. */
typedef struct {
    void (*read)(void *ctx, source_kind k, int i, float *dst);
    void *ctx;
    int state; /* the optimizer state too (a checkpoint to resume); else the model only */
} checkpoint_values;
int checkpoint_write_values(const char *dir, const student_model *m, const checkpoint_values *v,
                            const cJSON *state);
int checkpoint_save_values(const char *out, int64_t step, const student_model *m,
                           const checkpoint_values *v, const cJSON *state, int keep);
/* The newest complete checkpoint-<N> directory under out, or NULL. */
char *checkpoint_latest(const char *out);
/* Opens a checkpoint: its trainer state, its model (zeroed) and the source of its weights (the
 * fp32 masters when saved) and moments. */
int checkpoint_open(const char *dir, student_model *m, student_source *src, cJSON **state);
/* Loads a checkpoint: weights (the fp32 masters when saved), moments and trainer state. */
int checkpoint_load(const char *dir, student_model *m, float **exp_avg, float **exp_avg_sq,
                    cJSON **state);
/* rm -rf, for directories this program made. */
int remove_tree(const char *path);

/* ---- the GPU side (train_gpu.c) ---------------------------------------------------------- */

/* This process's place in a data-parallel run: one process per GPU. */
typedef struct {
    int rank, n_ranks;   /* n_ranks 1: training alone */
    int local_rank;      /* among the ranks of this host: picks the GPU when gpu < 0 */
    int gpu;             /* CUDA device index, or -1 */
    const char *id_file; /* the NCCL rendezvous file (n_ranks > 1; core/cuda_comm.h) */
} train_dist;

typedef struct gpu_trainer gpu_trainer;

/* Where the float32 master weights, moments and AdamW of a GPU run live. */
typedef enum {
    OFFLOAD_NONE, /* on the GPU */
    OFFLOAD_FIT,  /* on the GPU as far as they fit it, the rest on the host */
    OFFLOAD_ALL,  /* on the host: the GPU holds the bf16 weights and gradients only */
} offload_mode;

typedef struct {
    int max_tokens;           /* the largest micro-batch */
    recompute_mode recompute; /* a mode, or RECOMPUTE_AUTO: the fastest that fits */
    size_t mem_limit;         /* bytes it may allocate (0: the GPU's free memory) */
    int grad_f32;             /* accumulate gradients in float32 (else bf16) */
    int zero_stage;           /* several ranks: 2 shards the gradients too (train --zero 2), 3
                                 the bf16 weights as well; 0: the ranks pick the lowest that
                                 fits (cuda_student_fit_shards) */
    int offload;              /* an offload_mode: the host keeps the optimizer state the GPU
                                 cannot (or, OFFLOAD_ALL, all of it) and the caller runs AdamW
                                 through gpu_trainer_host_update; with several ranks each
                                 host keeps its ranks' pieces of it */
} gpu_trainer_opts;

/* Opens the CUDA step for m on this process's GPU: master weights and moments read from src
 * (moments zero where it has none), only the part this rank keeps, on the GPU or (offloading)
 * in the trainer's host arrays. m->param_mem is not touched. `step` updates already made (bias
 * correction). desc (may be NULL) receives a line naming the device. Errors: no usable GPU, too
 * little GPU or (offloading) host memory, a model the CUDA step does not take. */
int gpu_trainer_open(gpu_trainer **out, const student_model *m, const student_source *src,
                     int64_t step, const gpu_trainer_opts *o, const train_dist *dist,
                     char *desc, size_t desc_len);
/* The recomputation mode it runs (RECOMPUTE_AUTO resolved). */
recompute_mode gpu_trainer_recompute(const gpu_trainer *g);
/* Queues a micro-batch: gradients += scale * d(sum of its token losses), the loss likewise.
 * last: the last micro-batch this rank runs in the step (starts the cross-GPU reduction). */
int gpu_trainer_micro(gpu_trainer *g, const student_batch *b, float scale, int last);
/* For a rank with no micro-batch in a step: takes its part in the reduction. */
void gpu_trainer_reduce_only(gpu_trainer *g);
/* ZeRO-2 and -3 reduce every micro-batch, so every rank must run as many: a rank with fewer
 * makes up the difference with gpu_trainer_reduce_only. */
int gpu_trainer_reduces_each_micro(const gpu_trainer *g);
/* Forward only (the loss accumulates, scaled). ZeRO-3's forward gathers weights, so a rank with
 * fewer evaluation micro-batches makes up the difference with gpu_trainer_eval_idle. */
int gpu_trainer_eval(gpu_trainer *g, const student_batch *b, float scale);
void gpu_trainer_eval_idle(gpu_trainer *g);
/* The loss accumulated since the last call, summed over ranks (collective). */
double gpu_trainer_take_loss(gpu_trainer *g);
void gpu_trainer_zero_grad(gpu_trainer *g);
/* The global gradient norm before clipping (collective); the clip factor for max_norm stays on
 * the GPU for the update. */
double gpu_trainer_grad_norm(gpu_trainer *g, double max_norm);
/* AdamW with the clip factor, the step counter advanced. */
void gpu_trainer_update(gpu_trainer *g, const adamw_config *c);
/* Master weights and moments into host arrays of the student layout (collective; NULL arrays
 * are skipped, as on ranks that only take part). */
void gpu_trainer_get(gpu_trainer *g, float *params, float *exp_avg, float *exp_avg_sq);
/* The state as a checkpoint's values (checkpoint_write_values / _save_values): each bucket is
 * gathered when the writer reaches it, from the GPUs or (offloading) the ranks' host arrays,
 * so no rank holds the whole model on the host. Every rank writes, or takes part, in the same
 * order. with_state: the moments too. values_end frees the host buffer of the last bucket. */
checkpoint_values gpu_trainer_values(gpu_trainer *g, int with_state);
void gpu_trainer_values_end(gpu_trainer *g);
/* The accumulated gradients into a host array of the student layout (one GPU only; for tests). */
void gpu_trainer_get_grads(gpu_trainer *g, float *grads);
/* Offloading: the GPU's AdamW on the tensors whose state it keeps, and the CPU trainer's step
 * (grad_clip with the GPU's norm, then adamw_update: the same bits) on the host's float32 state
 * of the others (this rank's pieces), with the GPU's reduced gradients; their new bf16 weights
 * go up and are gathered by every rank (collective). */
void gpu_trainer_host_update(gpu_trainer *g, const adamw_config *c, int64_t step, double norm,
                             double max_norm);
void gpu_trainer_close(gpu_trainer *g);

/* ---- the loop (train.c) ------------------------------------------------------------------- */

typedef struct {
    const char *model;      /* base model directory */
    const char *data;       /* token shards or JSONL */
    const char *eval_data;  /* optional */
    const char *out;
    const char *log;        /* JSONL per step, optional */
    const char *chat_format;/* for JSONL conversations */
    int64_t steps, epochs;  /* steps > 0 wins; else epochs */
    double lr, min_lr, weight_decay, beta1, beta2, eps, grad_clip;
    lr_schedule_kind schedule;
    double warmup;          /* >= 1: steps; in [0, 1): a ratio of the total steps */
    int64_t batch_size, micro_batch, seq_len;
    int pack, truncate, resume;
    recompute_mode recompute; /* --recompute (ALL), --recompute-cheap (CHEAP), neither (AUTO) */
    size_t gpu_mem;         /* --gpu-mem: bytes a GPU's step may allocate (0: all it has free) */
    int offload_optimizer;  /* an offload_mode: --offload-optimizer (OFFLOAD_FIT), --offload-all */
    int zero_stage;         /* --zero: 1 shards the optimizer state over GPUs, 2 the gradients
                               too, 3 the bf16 weights as well; 0 (auto): the lowest that
                               fits */
    int64_t seed, save_every, eval_every, keep;
    int quiet;              /* no per-step progress lines */
    const char *device;     /* "cpu", "cuda" or "auto" (NULL: cpu) */
    train_dist dist;        /* data-parallel place of this process (n_ranks 0 or 1: alone) */
    const cJSON *config_changes; /* merged into the base config.json (a recipe's), or NULL */
} train_args;

/* Runs a training job; returns R1_OK or the recorded error's status. */
int train_run(const train_args *a);

/* ---- launching data-parallel runs (train_launch.c) ---------------------------------------- */

/* This process's rank, number of ranks and local rank from an Open MPI (OMPI_COMM_WORLD_*),
 * srun (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID) or Hydra (PMI_RANK, PMI_SIZE)
 * launch; n_ranks 1 when none applies. *launcher (may be NULL) names the launcher found. */
int train_dist_from_env(train_dist *d, const char **launcher);
/* The rendezvous file of this job inside dir, named after the job (R1_JOB_ID, Slurm's job and
 * step, Open MPI's job id or PMIx namespace; "default" without any). */
char *train_rendezvous_file(const char *dir);
/* The host memory the ranks sharing a host need together (an offloaded run's state), without
 * knowing which ranks share one: each rank fills its own TRAIN_HOST_ENTRY floats of a vector
 * of n_ranks entries, zero elsewhere, with its host name and need (train_host_entry); the ranks
 * sum the vectors (an all-reduce); then train_host_need gives rank me the bytes its host's
 * ranks need, and *sharing how many they are. Floats carry it exactly: the name as two 20-bit
 * parts of its hash, the need in whole MiB (rounded up). */
enum { TRAIN_HOST_ENTRY = 3 };
void train_host_entry(float *entry, const char *host, size_t need_bytes);
double train_host_need(const float *v, int n_ranks, int me, int *sharing);
/* `train --gpus n`: runs train_run in n forked workers, worker i on GPU i, and waits for them;
 * the first to fail stops the rest. Must be called before anything in this process touches CUDA. */
int train_run_local_gpus(const train_args *a, int n);

#endif
