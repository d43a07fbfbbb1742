/* The trainer's parts inside student/: the data loader (rows of examples, packing, shuffling),
 * checkpoints, and the training loop that cmd_train drives. */
#ifndef R1_STUDENT_TRAIN_H
#define R1_STUDENT_TRAIN_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "core/tokenizer.h"
#include "datasets/token_shard.h"
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
/* The newest complete checkpoint-<N> directory under out, or NULL. */
char *checkpoint_latest(const char *out);
/* Loads a checkpoint: weights (the fp32 masters when saved), moments and trainer state. */
int checkpoint_load(const char *dir, student_model *m, float **exp_avg, float **exp_avg_sq,
                    cJSON **state);
/* rm -rf, for directories this program made. */
int remove_tree(const char *path);

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
    int pack, recompute, truncate, resume;
    int64_t seed, save_every, eval_every, keep;
    int quiet;              /* no per-step progress lines */
    const cJSON *config_changes; /* merged into the base config.json (a recipe's), or NULL */
} train_args;

/* Runs a training job; returns R1_OK or the recorded error's status. */
int train_run(const train_args *a);

#endif
