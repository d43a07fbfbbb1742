/* r1-distill train: fine-tune a Qwen2 / Llama student on SFT examples, on the CPU (float32) or on
 * GPUs (one, or several data-parallel processes). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/recipe.h"
#include "student/train.h"

static const char *o_model, *o_data, *o_out, *o_eval, *o_log, *o_schedule, *o_warmup, *o_pack,
    *o_student, *o_base, *o_format, *o_device, *o_rendezvous, *o_zero;
static int64_t o_steps, o_epochs, o_batch, o_micro, o_seq, o_seed, o_save, o_keep, o_eval_every,
    o_gpus;
static double o_lr, o_min_lr, o_wd, o_b1, o_b2, o_eps, o_clip, o_gpu_mem;
static int o_recompute, o_recompute_cheap, o_truncate, o_resume, o_quiet, o_offload, o_offload_all;
static int o_recompute_from_recipe; /* the recipe set recompute or recompute_cheap */

static const cli_opt train_opts[] = {
    {"model", OPT_STRING, &o_model, NULL, 0, "DIR",
     "base model directory (Hugging Face: config.json, safetensors, tokenizer)"},
    {"data", OPT_STRING, &o_data, NULL, CLI_REQUIRED, "PATH",
     "token shards (a directory or .tokens file from `pack`) or a .jsonl file"},
    {"out", OPT_STRING, &o_out, NULL, CLI_REQUIRED, "DIR",
     "output: the trained model, and checkpoint-<step>/ directories"},
    {"student", OPT_STRING, &o_student, NULL, 0, "NAME",
     "a recipe (recipes/NAME.json or a path): base model, config changes and hyperparameters "
     "(options given here win)"},
    {"base", OPT_STRING, &o_base, NULL, 0, "DIR",
     "with --student: the base checkpoint (else the directory in the recipe's student.base_env)"},
    {"steps", OPT_INT, &o_steps, "0", 0, "N", "optimizer steps (0: --epochs decides)"},
    {"epochs", OPT_INT, &o_epochs, "3", 0, "N", "passes over the data when --steps is 0"},
    {"lr", OPT_FLOAT, &o_lr, "5e-5", 0, "X", "peak learning rate"},
    {"schedule", OPT_STRING, &o_schedule, "linear", 0, "KIND",
     "learning-rate decay after warmup: constant, linear or cosine"},
    {"warmup", OPT_STRING, &o_warmup, "0", 0, "W",
     "warmup: a step count (>= 1) or a ratio of the total steps (< 1)"},
    {"min-lr", OPT_FLOAT, &o_min_lr, "0", 0, "X", "where linear and cosine decay end"},
    {"weight-decay", OPT_FLOAT, &o_wd, "0", 0, "X",
     "AdamW decoupled weight decay (matrices only, never norms or biases)"},
    {"adam-beta1", OPT_FLOAT, &o_b1, "0.9", 0, "X", "AdamW beta1"},
    {"adam-beta2", OPT_FLOAT, &o_b2, "0.999", 0, "X", "AdamW beta2"},
    {"adam-eps", OPT_FLOAT, &o_eps, "1e-8", 0, "X", "AdamW epsilon"},
    {"grad-clip", OPT_FLOAT, &o_clip, "1.0", 0, "X", "clip the global gradient norm (0: off)"},
    {"batch-size", OPT_INT, &o_batch, "8", 0, "N", "rows (sequences) per optimizer step"},
    {"micro-batch", OPT_INT, &o_micro, "1", 0, "N",
     "rows per forward pass; gradients accumulate up to --batch-size"},
    {"seq-len", OPT_INT, &o_seq, "4096", 0, "N", "tokens per row"},
    {"pack", OPT_STRING, &o_pack, "on", 0, "on|off",
     "put several examples in a row (attention and positions stay inside each example)"},
    {"truncate", OPT_FLAG, &o_truncate, NULL, 0, NULL,
     "cut examples longer than --seq-len instead of dropping them"},
    {"recompute", OPT_FLAG, &o_recompute, NULL, 0, NULL,
     "keep only each layer's input and recompute the rest in backward (the least memory). "
     "Without either recomputation option a GPU takes the fastest mode that fits it, the same "
     "results: none, --recompute-cheap, all but the attention (each layer's attention output "
     "kept), --recompute"},
    {"recompute-cheap", OPT_FLAG, &o_recompute_cheap, NULL, 0, NULL,
     "GPU: keep the matrix products' outputs, recompute only the norms and SwiGLU in backward "
     "(about 2/3 of the activation memory, no extra products); CPU: as --recompute"},
    {"offload-optimizer", OPT_FLAG, &o_offload, NULL, 0, NULL,
     "GPU: keep the float32 master weights and moments that do not fit the GPU on the host and "
     "run their AdamW there (the same results; with several GPUs each host keeps its ranks' "
     "shards)"},
    {"offload-all", OPT_FLAG, &o_offload_all, NULL, 0, NULL,
     "GPU: all of the optimizer state on the host; the GPU holds the bf16 weights and gradients "
     "(4 to 6 bytes per parameter instead of 14 to 16)"},
    {"zero", OPT_STRING, &o_zero, "auto", 0, "N|auto",
     "several GPUs: 1 shards the float32 optimizer state over them (ZeRO-1), 2 the gradients too "
     "(ZeRO-2: less memory, a reduction per micro-batch), 3 the bf16 weights as well "
     "(ZeRO-3: each layer gathered before its forward and its backward); auto: the lowest that "
     "fits every GPU with the fastest recomputation mode that can"},
    {"gpu-mem", OPT_FLOAT, &o_gpu_mem, "0", 0, "GIB",
     "GiB of GPU memory the step may take on each GPU (0: all that is free), e.g. to share a GPU"},
    {"seed", OPT_INT, &o_seed, "42", 0, "N", "seed of the data order"},
    {"save-every", OPT_INT, &o_save, "500", 0, "N", "write checkpoint-<step>/ every N steps (0: never)"},
    {"keep", OPT_INT, &o_keep, "2", 0, "N", "checkpoints kept (0: all)"},
    {"resume", OPT_FLAG, &o_resume, NULL, 0, NULL,
     "continue from the newest checkpoint in --out, exactly as if never stopped"},
    {"eval-data", OPT_STRING, &o_eval, NULL, 0, "PATH", "validation data (as --data)"},
    {"eval-every", OPT_INT, &o_eval_every, "0", 0, "N",
     "validation loss every N steps (0: only at the end)"},
    {"log", OPT_STRING, &o_log, NULL, 0, "FILE",
     "JSONL per step: step, loss, lr, grad_norm (before clipping), tokens, loss_tokens, "
     "tokens_per_s"},
    {"chat-format", OPT_STRING, &o_format, "auto", 0, "FMT",
     "for JSONL conversations: auto, r1, chatml or llama3"},
    {"quiet", OPT_FLAG, &o_quiet, NULL, 0, NULL, "no per-step progress lines"},
    {"device", OPT_STRING, &o_device, "auto", 0, "DEV",
     "cpu (float32), cuda (bf16 weights and activations, float32 master weights and moments) "
     "or auto (cuda when a GPU is usable); checkpoints move freely between them"},
    {"gpus", OPT_INT, &o_gpus, "1", 0, "N",
     "data-parallel GPUs on this host: N worker processes, one per GPU, optimizer state sharded "
     "over them (ZeRO-1)"},
    {"rendezvous", OPT_STRING, &o_rendezvous, NULL, 0, "DIR",
     "under mpirun or srun: a directory every rank can read where they meet (default --out)"},
};

static const cli_spec train_spec = {
    .command = "train",
    .summary = "Fine-tune a Qwen2 or Llama student on SFT data (on the CPU or on GPUs).",
    .opts = train_opts,
    .n_opts = sizeof train_opts / sizeof *train_opts,
    .details =
        "The loss is the mean cross-entropy over the step's loss tokens (the assistant turns),\n"
        "whatever --micro-batch is. AdamW follows torch.optim.AdamW; schedules follow the HF\n"
        "Trainer (with warmup the first step runs at lr 0). With --student NAME the recipe\n"
        "(core/recipe.h) gives student.base / student.base_env (the base checkpoint),\n"
        "student.config_changes (merged into its config.json) and the train object, whose keys\n"
        "are the options above with underscores (lr, schedule, warmup, epochs, batch_size, ...).\n"
        "Several GPUs: --gpus N on one host, or one process per GPU started by mpirun or srun\n"
        "(ranks from OMPI_COMM_WORLD_*, SLURM_PROCID / SLURM_STEP_NUM_TASKS / SLURM_LOCALID or\n"
        "PMI_RANK / PMI_SIZE); each rank runs a share of every step's --batch-size rows.",
};

/* --recompute or --recompute-cheap on the command line (either overrides the recipe's both). */
static int recompute_on_cli(void) {
    return cli_given(&train_spec, "recompute") || cli_given(&train_spec, "recompute-cheap");
}

static const cli_opt *find_opt(const char *key) {
    char name[64];
    snprintf(name, sizeof name, "%s", key);
    for (char *p = name; *p; p++)
        if (*p == '_') *p = '-';
    for (int i = 0; i < train_spec.n_opts; i++)
        if (strcmp(train_opts[i].name, name) == 0) return &train_opts[i];
    return NULL;
}

/* Fills the options the command line did not give from the recipe's "train" object. Keys this
 * command does not know are the recipe's documentation ("source", ...) and are left alone. */
static int apply_recipe(const cJSON *train, const char *where) {
    static const char *const keys[] = {
        "lr",         "min_lr",      "schedule",  "warmup",    "weight_decay", "adam_beta1",
        "adam_beta2", "adam_eps",    "grad_clip", "batch_size", "micro_batch", "seq_len",
        "pack",       "truncate",    "recompute", "recompute_cheap", "epochs",  "steps",
        "offload_optimizer",
        "seed",       "save_every",  "keep"};
    /* the two recomputation modes exclude each other: one on the command line overrides both
     * of the recipe's */
    const int rc_given = recompute_on_cli();
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(train, keys[k]);
        const cli_opt *o = find_opt(keys[k]);
        CHECK(o);
        if (!it || cli_given(&train_spec, o->name)) continue;
        if (rc_given && strncmp(keys[k], "recompute", 9) == 0) continue;
        int bad = 0;
        switch (o->kind) {
        case OPT_INT:
            if (!json_is_int(it)) bad = 1;
            else *(int64_t *)o->dst = (int64_t)it->valuedouble;
            break;
        case OPT_FLOAT:
            if (!cJSON_IsNumber(it)) bad = 1;
            else *(double *)o->dst = it->valuedouble;
            break;
        case OPT_FLAG:
            if (!cJSON_IsBool(it)) bad = 1;
            else *(int *)o->dst = cJSON_IsTrue(it);
            break;
        case OPT_STRING:
            if (cJSON_IsString(it)) {
                *(const char **)o->dst = it->valuestring;
            } else if (cJSON_IsBool(it) && strcmp(o->name, "pack") == 0) {
                *(const char **)o->dst = cJSON_IsTrue(it) ? "on" : "off";
            } else if (cJSON_IsNumber(it) && strcmp(o->name, "warmup") == 0) {
                /* a number here: kept as text for the one parser below */
                static char buf[40];
                snprintf(buf, sizeof buf, "%.17g", it->valuedouble);
                *(const char **)o->dst = buf;
            } else {
                bad = 1;
            }
            break;
        }
        if (bad) return err_fail(R1_EINPUT, where, "train.%s has the wrong type", keys[k]);
        if (strncmp(keys[k], "recompute", 9) == 0) o_recompute_from_recipe = 1;
    }
    if (!rc_given && o_recompute && o_recompute_cheap)
        return err_fail(R1_EINPUT, where, "train.recompute and train.recompute_cheap are both true; "
                                          "keep one");
    /* a recipe's epochs give way to --steps on the command line, and its steps to --epochs */
    if (cli_given(&train_spec, "epochs") && !cli_given(&train_spec, "steps")) o_steps = 0;
    return R1_OK;
}

/* --student NAME: the recipe's base model, config changes and hyperparameters. */
static int load_recipe(recipe *r, char **base_dir, const cJSON **changes) {
    TRY(recipe_load(r, o_student));
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r->root, "student");
    if (json_get_obj(st, "config_changes", changes, r->path) < 0) return R1_EINPUT;
    TRY(apply_recipe(r->train, r->path));
    if (o_base) {
        *base_dir = xstrdup(o_base);
    } else if (r->base_env && getenv(r->base_env) && *getenv(r->base_env)) {
        *base_dir = xstrdup(getenv(r->base_env));
    } else {
        err_fail(R1_EINPUT, r->path, "where is the base checkpoint %s?",
                 r->base ? r->base : "(student.base)");
        if (r->base_env)
            return err_hint("pass --base DIR, or set %s to its directory", r->base_env);
        return err_hint("pass --base DIR");
    }
    return R1_OK;
}

int cmd_train(int argc, char **argv) {
    cli_parse(&train_spec, argc, argv, NULL, NULL);
    recipe rec = {0};
    char *base_dir = NULL;
    const cJSON *changes = NULL;
    if (o_student) {
        if (o_model) die(R1_EINPUT, "--student", "give --student or --model, not both");
        if (load_recipe(&rec, &base_dir, &changes)) err_exit();
        o_model = base_dir;
    } else if (o_base) {
        die(R1_EINPUT, "--base", "--base goes with --student; use --model DIR");
    }
    if (!o_model && !o_resume)
        die(R1_EINPUT, "--model", "--model DIR (or --student NAME) is required");
    if (cli_given(&train_spec, "steps") && cli_given(&train_spec, "epochs"))
        die(R1_EINPUT, "--steps", "give --steps or --epochs, not both");
    if (o_recompute && o_recompute_cheap)
        die(R1_EINPUT, "--recompute-cheap", "give --recompute or --recompute-cheap, not both");

    train_args a = {
        .model = o_model, .data = o_data, .eval_data = o_eval, .out = o_out, .log = o_log,
        .chat_format = o_format, .steps = o_steps, .epochs = o_epochs, .lr = o_lr,
        .min_lr = o_min_lr, .weight_decay = o_wd, .beta1 = o_b1, .beta2 = o_b2, .eps = o_eps,
        .grad_clip = o_clip, .batch_size = o_batch, .micro_batch = o_micro, .seq_len = o_seq,
        .recompute = recompute_on_cli() || o_recompute_from_recipe
                         ? recompute_from_flags(o_recompute, o_recompute_cheap)
                         : RECOMPUTE_AUTO,
        .truncate = o_truncate, .resume = o_resume, .seed = o_seed,
        .save_every = o_save, .eval_every = o_eval_every, .keep = o_keep, .quiet = o_quiet,
        .config_changes = changes,
    };
    if (lr_schedule_parse(o_schedule, &a.schedule) != 0)
        die(R1_EINPUT, "--schedule", "unknown schedule \"%s\" (constant, linear, cosine)",
            o_schedule);
    if (strcmp(o_pack, "on") == 0) a.pack = 1;
    else if (strcmp(o_pack, "off") == 0) a.pack = 0;
    else die(R1_EINPUT, "--pack", "expected on or off, got \"%s\"", o_pack);
    char *end;
    a.warmup = strtod(o_warmup, &end);
    if (end == o_warmup || *end || !(a.warmup >= 0) ||
        (a.warmup >= 1 && a.warmup != (double)(int64_t)a.warmup))
        die(R1_EINPUT, "--warmup", "expected a step count or a ratio in [0, 1), got \"%s\"",
            o_warmup);
    if (!(a.lr >= 0) || !(a.min_lr >= 0) || a.min_lr > a.lr || !(a.beta1 >= 0 && a.beta1 < 1) ||
        !(a.beta2 >= 0 && a.beta2 < 1) || !(a.eps > 0) || !(a.weight_decay >= 0) ||
        !(a.grad_clip >= 0))
        die(R1_EINPUT, "options", "need 0 <= --min-lr <= --lr, betas in [0, 1), --adam-eps > 0, "
            "--weight-decay >= 0 and --grad-clip >= 0");
    if (a.steps < 0 || a.epochs < 0 || a.save_every < 0 || a.keep < 0 || a.eval_every < 0)
        die(R1_EINPUT, "options", "counts must not be negative");
    if (!(o_gpu_mem >= 0) || o_gpu_mem > 1e6)
        die(R1_EINPUT, "--gpu-mem", "expected GiB between 0 (all that is free) and 1e6, got %g",
            o_gpu_mem);
    a.gpu_mem = (size_t)(o_gpu_mem * 1073741824.0);
    if (strcmp(o_zero, "auto") == 0)
        a.zero_stage = 0;
    else if (strlen(o_zero) == 1 && o_zero[0] >= '1' && o_zero[0] <= '3')
        a.zero_stage = o_zero[0] - '0';
    else
        die(R1_EINPUT, "--zero", "expected 1 (the optimizer state sharded), 2 (the gradients "
            "too), 3 (the weights as well) or auto (the lowest that fits), got %s",
            o_zero);
    a.offload_optimizer = o_offload_all ? OFFLOAD_ALL : o_offload ? OFFLOAD_FIT : OFFLOAD_NONE;
    const char *off_flag = o_offload_all ? "--offload-all" : "--offload-optimizer";
    if (a.offload_optimizer && strcmp(o_device, "cpu") == 0)
        die(R1_EINPUT, off_flag, "moves a GPU's optimizer state to the host; with --device cpu "
            "everything is there already");
    a.device = o_device;
    if (strcmp(o_device, "cpu") != 0 && strcmp(o_device, "cuda") != 0 &&
        strcmp(o_device, "auto") != 0)
        die(R1_EINPUT, "--device", "unknown device \"%s\" (cpu, cuda, auto)", o_device);
    if (o_gpus < 1 || o_gpus > 1024) die(R1_EINPUT, "--gpus", "expected 1 to 1024 GPUs");

    /* one process, --gpus N workers forked here, or one rank of a launcher's job */
    const char *launcher = NULL;
    if (train_dist_from_env(&a.dist, &launcher)) err_exit();
    char *id_file = NULL;
    int rc;
    if (a.dist.n_ranks > 1) {
        if (o_gpus > 1)
            die(R1_EINPUT, "--gpus", "%s started %d processes already; --gpus N starts them here "
                "(use one or the other)", launcher, a.dist.n_ranks);
        if (strcmp(o_device, "cpu") == 0)
            die(R1_EINPUT, "--device", "%s started %d processes: data-parallel training runs on "
                "GPUs", launcher, a.dist.n_ranks);
        const char *dir = o_rendezvous ? o_rendezvous : o_out;
        if (dir_create(dir)) err_exit();
        id_file = train_rendezvous_file(dir);
        a.dist.id_file = id_file;
        rc = train_run(&a);
    } else if (o_gpus > 1) {
        if (strcmp(o_device, "cpu") == 0)
            die(R1_EINPUT, "--gpus", "--gpus %lld trains on GPUs; --device cpu is one process",
                (long long)o_gpus);
        rc = train_run_local_gpus(&a, (int)o_gpus);
    } else {
        rc = train_run(&a);
    }
    free(id_file);
    recipe_free(&rec);
    free(base_dir);
    if (rc) err_exit();
    return 0;
}
