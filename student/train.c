/* The training loop.
 *
 * One optimizer step takes the next batch_size rows of the epoch's order, counts their loss
 * tokens first, then runs them micro_batch rows at a time, each micro-batch's gradients scaled
 * by 1 / (the step's loss tokens) and summed, so the step's loss is the mean over all its loss
 * tokens whatever the micro-batch (no per-micro-batch mean of means). Then: the global gradient
 * norm (logged before clipping), clipping, the scheduled learning rate and AdamW.
 *
 * Everything a step depends on is in a checkpoint (fp32 weights, moments, step, epoch, batch
 * position) or a pure function of the options (the epoch's row order from (seed, epoch), the
 * learning rate from the step), so a resumed run repeats the uninterrupted one bit for bit.
 *
 * --device cuda runs the same loop with the step on a GPU (student/train_gpu.c: bf16 weights and
 * activations, float32 master weights and moments); the host keeps the tensor table, the data
 * and the checkpoints, whose format does not depend on the device. With several data-parallel
 * ranks (one process per GPU) each rank runs a contiguous share of the step's rows, the
 * gradients meet in a reduce-scatter (ZeRO-1), and rank 0 alone logs and writes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/backend_cuda.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "student/train.h"

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

/* The options that decide the numbers of a run: a resumed run must use the same. */
static cJSON *hparams_json(const train_args *a, int64_t warmup_steps, int64_t total) {
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "lr", a->lr);
    cJSON_AddNumberToObject(h, "min_lr", a->min_lr);
    cJSON_AddStringToObject(h, "schedule", lr_schedule_name(a->schedule));
    cJSON_AddNumberToObject(h, "warmup_steps", (double)warmup_steps);
    cJSON_AddNumberToObject(h, "total_steps", (double)total);
    cJSON_AddNumberToObject(h, "weight_decay", a->weight_decay);
    cJSON_AddNumberToObject(h, "adam_beta1", a->beta1);
    cJSON_AddNumberToObject(h, "adam_beta2", a->beta2);
    cJSON_AddNumberToObject(h, "adam_eps", a->eps);
    cJSON_AddNumberToObject(h, "grad_clip", a->grad_clip);
    cJSON_AddNumberToObject(h, "batch_size", (double)a->batch_size);
    cJSON_AddNumberToObject(h, "seq_len", (double)a->seq_len);
    cJSON_AddBoolToObject(h, "pack", a->pack);
    cJSON_AddBoolToObject(h, "truncate", a->truncate);
    cJSON_AddNumberToObject(h, "seed", (double)a->seed);
    return h;
}

typedef struct {
    int64_t step, epoch, batch_in_epoch;
} position;

static cJSON *state_json(const train_args *a, const position *p, const train_data *td,
                         int64_t warmup, int64_t total, double last_loss) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "format", "r1-distill trainer state");
    cJSON_AddNumberToObject(s, "version", 1);
    cJSON_AddNumberToObject(s, "step", (double)p->step);
    cJSON_AddNumberToObject(s, "epoch", (double)p->epoch);
    cJSON_AddNumberToObject(s, "batch_in_epoch", (double)p->batch_in_epoch);
    /* The shuffle generator's whole state: the epoch's order is a pure function of these. */
    cJSON *rng = cJSON_AddObjectToObject(s, "rng");
    cJSON_AddStringToObject(rng, "kind", "splitmix64 Fisher-Yates, seeded by (seed, epoch)");
    cJSON_AddNumberToObject(rng, "seed", (double)a->seed);
    cJSON_AddNumberToObject(rng, "epoch", (double)p->epoch);
    char fp[24];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)td->fingerprint);
    cJSON_AddStringToObject(s, "data_fingerprint", fp);
    cJSON_AddNumberToObject(s, "data_rows", (double)td->n_rows);
    cJSON_AddNumberToObject(s, "last_loss", last_loss);
    cJSON_AddItemToObject(s, "hyperparameters", hparams_json(a, warmup, total));
    return s;
}

/* Refuses to resume with options or data that would give a different run. */
static int check_resume(const cJSON *state, const char *where, const train_args *a,
                        const train_data *td, int64_t warmup, int64_t total, position *p) {
    if (json_get_int(state, "step", &p->step, where) <= 0 ||
        json_get_int(state, "epoch", &p->epoch, where) <= 0 ||
        json_get_int(state, "batch_in_epoch", &p->batch_in_epoch, where) <= 0 || p->step < 0 ||
        p->epoch < 0 || p->batch_in_epoch < 0)
        return err_fail(R1_EINPUT, where, "missing or bad step / epoch / batch_in_epoch");
    const char *fp = NULL;
    char want[24];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)td->fingerprint);
    if (json_get_str(state, "data_fingerprint", &fp, where) <= 0 || strcmp(fp, want) != 0) {
        err_fail(R1_EINPUT, where, "the checkpoint was trained on other data (fingerprint %s, "
                 "this data %s)", fp ? fp : "?", want);
        return err_hint("resume with the same --data, --seq-len, --pack and --truncate");
    }
    const cJSON *saved = NULL;
    if (json_get_obj(state, "hyperparameters", &saved, where) <= 0)
        return err_fail(R1_EINPUT, where, "missing \"hyperparameters\"");
    cJSON *now = hparams_json(a, warmup, total);
    int rc = R1_OK;
    const cJSON *it;
    cJSON_ArrayForEach(it, now) {
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(saved, it->string);
        if (!old || !cJSON_Compare(old, it, 1)) {
            char *o = old ? cJSON_PrintUnformatted(old) : NULL, *n = cJSON_PrintUnformatted(it);
            rc = err_fail(R1_EINPUT, where, "%s was %s in the checkpoint, now %s", it->string,
                          o ? o : "absent", n);
            err_hint("resume with the options of the interrupted run, or train into a new --out");
            cJSON_free(o);
            cJSON_free(n);
            break;
        }
    }
    cJSON_Delete(now);
    return rc;
}

/* Keeps the log lines of steps up to `step` (a resumed run rewrites what came after). */
static int trim_log(const char *path, int64_t step) {
    if (!path_exists(path)) return R1_OK;
    char *text;
    size_t len;
    TRY(file_read_all(path, (size_t)1 << 32, &text, &len));
    char *out = xmalloc(len + 1);
    size_t k = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        cJSON *j = cJSON_ParseWithLength(line, n);
        const cJSON *s = j ? cJSON_GetObjectItemCaseSensitive(j, "step") : NULL;
        if (s && cJSON_IsNumber(s) && s->valuedouble <= (double)step && nl) {
            memcpy(out + k, line, n);
            k += n;
        }
        cJSON_Delete(j);
        line += n;
    }
    int rc = file_write_atomic(path, out, k);
    free(out);
    free(text);
    return rc;
}

static void print_data(const char *what, const train_data *td, const train_args *a) {
    fprintf(stderr,
            "%s: %lld examples, %lld tokens (%lld to learn) in %lld rows of up to %lld tokens "
            "(packing %s)",
            what, (long long)td->examples, (long long)td->tokens, (long long)td->loss_tokens,
            (long long)td->n_rows, (long long)a->seq_len, a->pack ? "on" : "off");
    if (td->dropped_long) fprintf(stderr, "; %lld longer than --seq-len dropped", (long long)td->dropped_long);
    if (td->truncated) fprintf(stderr, "; %lld truncated", (long long)td->truncated);
    if (td->no_loss) fprintf(stderr, "; %lld with nothing to learn dropped", (long long)td->no_loss);
    fprintf(stderr, "\n");
}

static int64_t micro_batches(int64_t rows, int micro) { return (rows + micro - 1) / micro; }

/* The micro-batches of the rank with the most when n_rows are shared out over n_ranks as
 * [rank * n_rows / n_ranks, (rank + 1) * n_rows / n_ranks): those of the largest share,
 * ceil(n_rows / n_ranks) rows. Ranks with fewer make up the difference where every micro-batch
 * takes part in collectives (ZeRO-2 and -3). */
static int64_t most_micro_batches(int64_t n_rows, int n_ranks, int micro) {
    return micro_batches((n_rows + n_ranks - 1) / n_ranks, micro);
}

/* The GPU's evaluation: each rank runs its share of the rows, every loss scaled by 1 / (all the
 * loss tokens), and the sum meets over ranks. */
static double eval_loss_gpu(gpu_trainer *g, const train_data *ed, batch_buf *bb, int micro,
                            int rank, int n_ranks, int64_t *n_tokens) {
    int64_t count = 0;
    for (int64_t r = 0; r < ed->n_rows; r++) count += ed->row_loss[r];
    *n_tokens = count;
    const float scale = 1.0f / (float)count;
    const int64_t lo = rank * ed->n_rows / n_ranks, hi = (rank + 1) * ed->n_rows / n_ranks;
    int64_t *rows = xmalloc(sizeof(int64_t) * (size_t)micro);
    int rc = R1_OK;
    for (int64_t r0 = lo; r0 < hi && !rc; r0 += micro) {
        int n = (int)(hi - r0 < micro ? hi - r0 : micro);
        for (int i = 0; i < n; i++) rows[i] = r0 + i;
        train_data_fill(ed, rows, n, bb);
        rc = gpu_trainer_eval(g, &bb->b, scale);
    }
    const int64_t most = most_micro_batches(ed->n_rows, n_ranks, micro);
    for (int64_t k = micro_batches(hi - lo, micro); k < most; k++) gpu_trainer_eval_idle(g);
    free(rows);
    CHECK(rc == R1_OK); /* the rows were checked when the data was opened */
    return gpu_trainer_take_loss(g);
}

static double eval_loss(student_model *m, student_acts *acts, const train_data *ed,
                        batch_buf *bb, int micro, int64_t *n_tokens) {
    double sum = 0;
    int64_t count = 0;
    int64_t *rows = xmalloc(sizeof(int64_t) * (size_t)micro);
    for (int64_t r0 = 0; r0 < ed->n_rows; r0 += micro) {
        int n = (int)(ed->n_rows - r0 < micro ? ed->n_rows - r0 : micro);
        for (int i = 0; i < n; i++) rows[i] = r0 + i;
        train_data_fill(ed, rows, n, bb);
        int64_t c;
        sum += student_eval(m, acts, &bb->b, &c);
        count += c;
    }
    free(rows);
    *n_tokens = count;
    return count ? sum / (double)count : 0.0;
}

typedef struct {
    student_model m;
    student_source src;     /* where m's starting values are read from */
    float *exp_avg, *exp_avg_sq;
    train_data td, ed;
    student_acts acts;
    batch_buf bb;
    int64_t *order, *rows;
    FILE *log;
    char *last_ckpt;
    gpu_trainer *gpu;       /* the step runs on a GPU (else on the CPU) */
} run_state;

static void run_free(run_state *r) {
    student_source_close(&r->src);
    if (r->m.param_mem) student_model_free(&r->m);
    free(r->exp_avg);
    free(r->exp_avg_sq);
    if (r->td.n_rows) train_data_close(&r->td);
    if (r->ed.n_rows) train_data_close(&r->ed);
    if (r->acts.mem) student_acts_free(&r->acts);
    if (r->bb.cap) batch_buf_free(&r->bb);
    free(r->order);
    free(r->rows);
    if (r->log) fclose(r->log);
    free(r->last_ckpt);
    gpu_trainer_close(r->gpu);
}

static int train_loop(run_state *R, const train_args *a);

int train_run(const train_args *a) {
    run_state R;
    memset(&R, 0, sizeof R);
    int rc = train_loop(&R, a);
    run_free(&R);
    return rc;
}

static int train_loop(run_state *R, const train_args *a) {
    if (a->batch_size < 1 || a->micro_batch < 1 || a->seq_len < 2 || a->seq_len > (1 << 24))
        return err_fail(R1_EINPUT, "options", "--batch-size and --micro-batch must be >= 1 and "
                        "--seq-len in [2, 2^24]");
    if (a->micro_batch > a->batch_size)
        return err_fail(R1_EINPUT, "--micro-batch", "%lld exceeds --batch-size %lld",
                        (long long)a->micro_batch, (long long)a->batch_size);
    /* Where the step runs. auto: a usable GPU if there is one. */
    const int n_ranks = a->dist.n_ranks > 1 ? a->dist.n_ranks : 1;
    const int rank = n_ranks > 1 ? a->dist.rank : 0, lead = rank == 0;
    const char *device = a->device ? a->device : "cpu";
    int use_gpu;
    if (strcmp(device, "cpu") == 0) {
        use_gpu = 0;
    } else if (strcmp(device, "cuda") == 0) {
        use_gpu = 1;
    } else if (strcmp(device, "auto") == 0) {
        use_gpu = n_ranks > 1 || backend_cuda_probe(0, NULL) == R1_OK;
        err_clear();
    } else {
        return err_fail(R1_EINPUT, "--device", "unknown device \"%s\" (cpu, cuda, auto)", device);
    }
    if (n_ranks > 1 && !use_gpu)
        return err_fail(R1_EINPUT, "--device", "training on %d processes runs on GPUs (one each); "
                        "the CPU trainer is one process", n_ranks);
    if (n_ranks > a->batch_size)
        return err_fail(R1_EINPUT, "--batch-size", "%lld rows cannot keep %d GPUs busy",
                        (long long)a->batch_size, n_ranks);
    TRY(dir_create(a->out));

    /* The model: the base, or the newest checkpoint under --out. */
    cJSON *saved_state = NULL;
    char *resume_dir = NULL;
    if (a->resume) {
        resume_dir = checkpoint_latest(a->out);
        if (!resume_dir) {
            err_fail(R1_EINPUT, a->out, "no checkpoint to resume from");
            return err_hint("checkpoints are written every --save-every steps as "
                            "checkpoint-<step>/");
        }
        int rc = checkpoint_open(resume_dir, &R->m, &R->src, &saved_state);
        if (rc) {
            free(resume_dir);
            return rc;
        }
    } else {
        int untie;
        TRY(student_model_open(&R->m, a->model, a->config_changes, &untie));
        TRY(student_source_open(&R->src, &R->m, a->model, NULL, untie));
    }
    student_model *m = &R->m;
    /* The CPU trainer keeps the float32 state on the host. A GPU run reads its share (and,
     * offloading, its host's share) straight from the mapped files, which every rank on a host
     * shares; m->param_mem stays untouched, as checkpoints are written while the GPUs gather
     * them a bucket at a time. */
    if (!use_gpu) student_source_read_state(&R->src, m, &R->exp_avg, &R->exp_avg_sq);
    const model_config *c = &m->cfg;

    /* The data, checked against the model's vocabulary and tokenizer. */
    train_data_options dopt = {.seq_len = (int)a->seq_len, .pack = a->pack,
                               .truncate = a->truncate, .vocab_size = c->vocab_size};
    char *tok_json = path_join(m->path, "tokenizer.json");
    int64_t tok_vocab = 0;
    if (path_exists(tok_json)) {
        int rc = token_tokenizer_info(tok_json, &dopt.tokenizer_id, &tok_vocab);
        if (rc) {
            free(tok_json);
            free(resume_dir);
            cJSON_Delete(saved_state);
            return rc;
        }
        dopt.tokenizer_dir = m->path;
    }
    free(tok_json);
    if (a->chat_format && chat_format_parse(a->chat_format, &dopt.format) != 0) {
        free(resume_dir);
        cJSON_Delete(saved_state);
        return err_fail(R1_EINPUT, "--chat-format", "unknown format \"%s\" (auto, r1, chatml, "
                        "llama3)", a->chat_format);
    }
    int rc = train_data_open(&R->td, a->data, &dopt);
    if (!rc && a->eval_data) rc = train_data_open(&R->ed, a->eval_data, &dopt);
    if (rc) {
        free(resume_dir);
        cJSON_Delete(saved_state);
        return rc;
    }
    if (lead) print_data("data", &R->td, a);
    if (lead && a->eval_data) print_data("eval data", &R->ed, a);

    const int64_t steps_per_epoch = (R->td.n_rows + a->batch_size - 1) / a->batch_size;
    const int64_t total = a->steps > 0 ? a->steps : a->epochs * steps_per_epoch;
    if (total < 1) {
        free(resume_dir);
        cJSON_Delete(saved_state);
        return err_fail(R1_EINPUT, "--steps", "no steps to run (give --steps or --epochs >= 1)");
    }
    const int64_t warmup = a->warmup >= 1 ? (int64_t)a->warmup : (int64_t)ceil(a->warmup * (double)total);
    const lr_schedule sched = {.kind = a->schedule, .lr = a->lr, .min_lr = a->min_lr,
                               .warmup = warmup, .total = total};
    const adamw_config base_opt = {.lr = a->lr, .beta1 = a->beta1, .beta2 = a->beta2,
                                   .eps = a->eps, .weight_decay = a->weight_decay};

    position pos = {0, 0, 0};
    if (saved_state) {
        char *where = path_join(resume_dir, "trainer_state.json");
        rc = check_resume(saved_state, where, a, &R->td, warmup, total, &pos);
        free(where);
        cJSON_Delete(saved_state);
        if (!rc && pos.step >= total)
            rc = err_fail(R1_EINPUT, resume_dir, "the checkpoint is at step %lld of %lld: "
                          "nothing left to run", (long long)pos.step, (long long)total);
        if (rc) {
            free(resume_dir);
            return rc;
        }
        if (lead) fprintf(stderr, "resuming from %s at step %lld\n", resume_dir, (long long)pos.step);
        R->last_ckpt = resume_dir;
        resume_dir = NULL;
    }

    const int micro = (int)a->micro_batch;
    int max_row = R->td.max_row > R->ed.max_row ? R->td.max_row : R->ed.max_row;
    const int cap = micro * max_row;
    char device_line[256];
    /* the GPU resolves AUTO to the fastest mode that fits it; the CPU keeps everything */
    recompute_mode recompute = a->recompute == RECOMPUTE_AUTO ? RECOMPUTE_NONE : a->recompute;
    if (use_gpu) {
        /* float32 gradients when a rank adds up several micro-batches per step, bf16 otherwise */
        const int grad_f32 = most_micro_batches(a->batch_size, n_ranks, micro) > 1;
        const gpu_trainer_opts go = {.max_tokens = cap, .recompute = a->recompute,
                                     .mem_limit = a->gpu_mem, .grad_f32 = grad_f32,
                                     .offload = a->offload_optimizer,
                                     .zero_stage = a->zero_stage};
        TRY(gpu_trainer_open(&R->gpu, m, &R->src, pos.step, &go, &a->dist, device_line,
                             sizeof device_line));
        recompute = gpu_trainer_recompute(R->gpu);
        /* the gradients stay on the GPU */
        free(m->grad_mem);
        m->grad_mem = NULL;
    } else {
        student_acts_init(&R->acts, c, cap, recompute != RECOMPUTE_NONE);
        snprintf(device_line, sizeof device_line, "cpu (float32)");
    }
    student_source_close(&R->src); /* everything is read */
    batch_buf_init(&R->bb, cap);
    R->order = xmalloc(sizeof(int64_t) * (size_t)R->td.n_rows);
    R->rows = xmalloc(sizeof(int64_t) * (size_t)a->batch_size);
    train_data_epoch_order(R->order, R->td.n_rows, (uint64_t)a->seed, pos.epoch);
    char acts_line[64] = "";
    if (!R->gpu)
        snprintf(acts_line, sizeof acts_line, "; activations %.1f MiB",
                 (double)R->acts.bytes / (1 << 20));
    if (lead)
        fprintf(stderr,
                "model: %s, %s, %zu parameters (%s on disk); %lld steps (%lld per epoch), batch "
                "%lld rows, micro-batch %d%s%s\ndevice: %s\n",
                m->path, c->model_type, m->n_params, dtype_name(m->disk_dtype), (long long)total,
                (long long)steps_per_epoch, (long long)a->batch_size, micro, acts_line,
                recompute == RECOMPUTE_CHEAP && R->gpu ? " (recomputing norms and SwiGLU)"
                : recompute != RECOMPUTE_NONE          ? " (recomputing)"
                                                       : "",
                device_line);

    if (a->log && lead) {
        if (a->resume) TRY(trim_log(a->log, pos.step));
        R->log = fopen(a->log, a->resume ? "a" : "w");
        if (!R->log) return err_fail(R1_EINPUT, a->log, "cannot open the log for writing");
    }

    double loss = NAN;
    while (pos.step < total) {
        if (pos.batch_in_epoch == steps_per_epoch) {
            pos.epoch++;
            pos.batch_in_epoch = 0;
            train_data_epoch_order(R->order, R->td.n_rows, (uint64_t)a->seed, pos.epoch);
        }
        const int64_t step = pos.step + 1, r0 = pos.batch_in_epoch * a->batch_size;
        const int n_rows = (int)(R->td.n_rows - r0 < a->batch_size ? R->td.n_rows - r0 : a->batch_size);
        const double t0 = clock_seconds();
        /* Count the step's loss tokens before any forward pass: each micro-batch's gradient is
         * scaled by 1 / count, so the step's gradient is that of the mean over all of them. */
        int64_t step_loss_tokens = 0, step_tokens = 0;
        for (int i = 0; i < n_rows; i++) {
            R->rows[i] = R->order[r0 + i];
            step_loss_tokens += R->td.row_loss[R->rows[i]];
            step_tokens += R->td.row_len[R->rows[i]];
        }
        const float scale = 1.0f / (float)step_loss_tokens;
        double norm;
        if (R->gpu) {
            /* this rank's contiguous share of the rows; the last micro-batch starts the
             * reduction, a rank with none still takes its part in it */
            const int lo = rank * n_rows / n_ranks, hi = (rank + 1) * n_rows / n_ranks;
            gpu_trainer_zero_grad(R->gpu);
            for (int i0 = lo; i0 < hi; i0 += micro) {
                int nr = hi - i0 < micro ? hi - i0 : micro;
                train_data_fill(&R->td, R->rows + i0, nr, &R->bb);
                TRY(gpu_trainer_micro(R->gpu, &R->bb.b, scale, i0 + nr >= hi));
            }
            if (gpu_trainer_reduces_each_micro(R->gpu)) {
                const int64_t most = most_micro_batches(n_rows, n_ranks, micro);
                for (int64_t k = micro_batches(hi - lo, micro); k < most; k++)
                    gpu_trainer_reduce_only(R->gpu);
            } else if (lo == hi) {
                gpu_trainer_reduce_only(R->gpu);
            }
            loss = gpu_trainer_take_loss(R->gpu);
            norm = gpu_trainer_grad_norm(R->gpu, a->grad_clip);
        } else {
            memset(m->grad_mem, 0, sizeof(float) * m->n_params);
            double sum = 0;
            for (int i0 = 0; i0 < n_rows; i0 += micro) {
                int nr = n_rows - i0 < micro ? n_rows - i0 : micro;
                train_data_fill(&R->td, R->rows + i0, nr, &R->bb);
                int64_t nl;
                sum += student_forward_backward(m, &R->acts, &R->bb.b, scale, &nl);
            }
            loss = sum / (double)step_loss_tokens;
            norm = grad_global_norm(m);
        }
        if (!isfinite(loss) || !isfinite(norm)) {
            err_fail(R1_EINPUT, "training", "step %lld: the %s is %s; training stopped",
                     (long long)step, isfinite(loss) ? "gradient norm" : "loss",
                     isnan(isfinite(loss) ? norm : loss) ? "NaN" : "infinite");
            if (R->last_ckpt)
                return err_hint("the last good checkpoint is %s (resume from it with --resume, "
                                "perhaps with a lower --lr)", R->last_ckpt);
            return err_hint("no checkpoint was written before it (see --save-every); check the "
                            "base weights and lower --lr");
        }
        adamw_config opt = base_opt;
        opt.lr = lr_at(&sched, step);
        double host_update_s = -1; /* logged when the update runs on the host */
        if (R->gpu && a->offload_optimizer) {
            const double u0 = clock_seconds();
            gpu_trainer_host_update(R->gpu, &opt, step, norm, a->grad_clip);
            host_update_s = clock_seconds() - u0;
        } else if (R->gpu) {
            gpu_trainer_update(R->gpu, &opt);
        } else {
            grad_clip(m, norm, a->grad_clip);
            for (int k = 0; k < m->n_tensors; k++) {
                const student_tensor *t = &m->tensors[k];
                adamw_update(m->param_mem + t->offset, m->grad_mem + t->offset,
                             R->exp_avg + t->offset, R->exp_avg_sq + t->offset, t->numel, &opt,
                             step, t->decay);
            }
        }
        pos.step = step;
        pos.batch_in_epoch++;
        const double dt = clock_seconds() - t0;
        if (R->log) {
            fprintf(R->log,
                    "{\"step\": %lld, \"loss\": %.17g, \"lr\": %.17g, \"grad_norm\": %.17g, "
                    "\"tokens\": %lld, \"loss_tokens\": %lld, \"tokens_per_s\": %.1f",
                    (long long)step, loss, opt.lr, norm, (long long)step_tokens,
                    (long long)step_loss_tokens, (double)step_tokens / dt);
            if (host_update_s >= 0) fprintf(R->log, ", \"host_update_s\": %.3f", host_update_s);
            fputs("}\n", R->log);
            fflush(R->log);
        }
        if (!a->quiet && lead)
            fprintf(stderr, "step %lld/%lld  loss %.6f  lr %.3e  grad_norm %.4f  %.0f tok/s\n",
                    (long long)step, (long long)total, loss, opt.lr, norm,
                    (double)step_tokens / dt);
        if (a->eval_data && a->eval_every > 0 && step % a->eval_every == 0 && step < total) {
            int64_t nt;
            double el = R->gpu ? eval_loss_gpu(R->gpu, &R->ed, &R->bb, micro, rank, n_ranks, &nt)
                               : eval_loss(m, &R->acts, &R->ed, &R->bb, micro, &nt);
            if (R->log) {
                fprintf(R->log, "{\"step\": %lld, \"eval_loss\": %.17g, \"eval_tokens\": %lld}\n",
                        (long long)step, el, (long long)nt);
                fflush(R->log);
            }
            if (lead) fprintf(stderr, "step %lld  eval_loss %.6f\n", (long long)step, el);
        }
        if (a->save_every > 0 && step % a->save_every == 0) {
            const double c0 = clock_seconds();
            cJSON *st = state_json(a, &pos, &R->td, warmup, total, loss);
            if (R->gpu) {
                /* the state comes back a bucket at a time as rank 0 writes it */
                const checkpoint_values v = gpu_trainer_values(R->gpu, 1);
                rc = checkpoint_save_values(lead ? a->out : NULL, step, m, &v, st, (int)a->keep);
                gpu_trainer_values_end(R->gpu);
            } else {
                rc = checkpoint_save(a->out, step, m, R->exp_avg, R->exp_avg_sq, st, (int)a->keep);
            }
            cJSON_Delete(st);
            if (rc) return rc;
            free(R->last_ckpt);
            char name[48];
            snprintf(name, sizeof name, "checkpoint-%lld", (long long)step);
            R->last_ckpt = path_join(a->out, name);
            /* a large model's checkpoint takes long enough to weigh against --save-every */
            if (lead)
                fprintf(stderr, "step %lld  saved %s in %.1f s\n", (long long)step, R->last_ckpt,
                        clock_seconds() - c0);
            /* Config and tokenizer files are copied from the newest checkpoint from now on:
             * the one they came from may be pruned. */
            free(m->path);
            m->path = xstrdup(R->last_ckpt);
        }
    }
    if (a->eval_data) {
        int64_t nt;
        double el = R->gpu ? eval_loss_gpu(R->gpu, &R->ed, &R->bb, micro, rank, n_ranks, &nt)
                           : eval_loss(m, &R->acts, &R->ed, &R->bb, micro, &nt);
        if (R->log)
            fprintf(R->log, "{\"step\": %lld, \"eval_loss\": %.17g, \"eval_tokens\": %lld}\n",
                    (long long)pos.step, el, (long long)nt);
        if (lead) fprintf(stderr, "eval_loss %.6f over %lld tokens\n", el, (long long)nt);
    }
    cJSON *st = state_json(a, &pos, &R->td, warmup, total, loss);
    if (R->gpu) {
        const checkpoint_values v = gpu_trainer_values(R->gpu, 0);
        rc = checkpoint_write_values(lead ? a->out : NULL, m, &v, st);
        gpu_trainer_values_end(R->gpu);
    } else {
        rc = checkpoint_write(a->out, m, NULL, NULL, st);
    }
    cJSON_Delete(st);
    if (rc || !lead) return rc;
    fprintf(stderr, "wrote the model to %s; peak RSS %.1f MiB\n", a->out, peak_rss_mib());
    return R1_OK;
}
