/* r1-distill train: fine-tune a Qwen2 / Llama student on SFT examples (fp32, CPU). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "student/train.h"

static const char *o_model, *o_data, *o_out, *o_eval, *o_log, *o_schedule, *o_warmup, *o_pack,
    *o_student, *o_base, *o_recipes, *o_format;
static int64_t o_steps, o_epochs, o_batch, o_micro, o_seq, o_seed, o_save, o_keep, o_eval_every;
static double o_lr, o_min_lr, o_wd, o_b1, o_b2, o_eps, o_clip;
static int o_recompute, o_truncate, o_resume, o_quiet;

static const cli_opt train_opts[] = {
    {"model", OPT_STRING, &o_model, NULL, 0, "DIR",
     "base model directory (Hugging Face: config.json, safetensors, tokenizer)"},
    {"data", OPT_STRING, &o_data, NULL, CLI_REQUIRED, "PATH",
     "token shards (a directory or .tokens file from `pack`) or a .jsonl file"},
    {"out", OPT_STRING, &o_out, NULL, CLI_REQUIRED, "DIR",
     "output: the trained model, and checkpoint-<step>/ directories"},
    {"student", OPT_STRING, &o_student, NULL, 0, "NAME",
     "take the base model and hyperparameters from RECIPES/NAME.json (options given here win)"},
    {"base", OPT_STRING, &o_base, NULL, 0, "DIR",
     "with --student: the base checkpoint (else $R1_MODELS/<the recipe's base>)"},
    {"recipes", OPT_STRING, &o_recipes, "recipes", 0, "DIR", "where --student recipes live"},
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
     "keep only each layer's input and recompute the rest in backward (less memory)"},
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
};

static const cli_spec train_spec = {
    .command = "train",
    .summary = "Fine-tune a Qwen2 or Llama student on SFT data (fp32 on the CPU).",
    .opts = train_opts,
    .n_opts = sizeof train_opts / sizeof *train_opts,
    .details =
        "The loss is the mean cross-entropy over the step's loss tokens (the assistant turns),\n"
        "whatever --micro-batch is. AdamW follows torch.optim.AdamW; schedules follow the HF\n"
        "Trainer (with warmup the first step runs at lr 0). A recipe (--student NAME) is JSON:\n"
        "  {\"student\": {\"base\": \"<HF id>\", \"hyperparameters\": {\"lr\": 1e-5, \"epochs\": 3,\n"
        "   \"schedule\": \"cosine\", \"warmup\": 0.1, \"batch_size\": 96, ...}}}\n"
        "with the hyperparameters named as the options above (dashes as underscores).",
};

static const cli_opt *find_opt(const char *key) {
    char name[64];
    snprintf(name, sizeof name, "%s", key);
    for (char *p = name; *p; p++)
        if (*p == '_') *p = '-';
    for (int i = 0; i < train_spec.n_opts; i++)
        if (strcmp(train_opts[i].name, name) == 0) return &train_opts[i];
    return NULL;
}

/* Fills the options the command line did not give from the recipe's hyperparameters. */
static int apply_recipe(const cJSON *hp, const char *where) {
    static const char *const allowed[] = {
        "lr",          "min_lr",   "schedule", "warmup",     "weight_decay", "adam_beta1",
        "adam_beta2",  "adam_eps", "grad_clip", "batch_size", "micro_batch",  "seq_len",
        "pack",        "truncate", "recompute", "epochs",    "steps",        "seed",
        "save_every",  "keep"};
    const cJSON *it;
    cJSON_ArrayForEach(it, hp) {
        int ok = 0;
        for (size_t i = 0; i < sizeof allowed / sizeof *allowed && !ok; i++)
            ok = strcmp(it->string, allowed[i]) == 0;
        const cli_opt *o = ok ? find_opt(it->string) : NULL;
        if (!o) {
            err_fail(R1_EINPUT, where, "unknown hyperparameter \"%s\"", it->string);
            return err_hint("known: lr, min_lr, schedule, warmup, weight_decay, adam_beta1, "
                            "adam_beta2, adam_eps, grad_clip, batch_size, micro_batch, seq_len, "
                            "pack, truncate, recompute, epochs, steps, seed, save_every, keep");
        }
        if (cli_given(&train_spec, o->name)) continue;
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
            if (cJSON_IsString(it)) *(const char **)o->dst = it->valuestring;
            else if (cJSON_IsBool(it) && strcmp(o->name, "pack") == 0)
                *(const char **)o->dst = cJSON_IsTrue(it) ? "on" : "off";
            else if (cJSON_IsNumber(it) && strcmp(o->name, "warmup") == 0) {
                /* warmup as a number: kept as text for the one parser below */
                static char buf[40];
                snprintf(buf, sizeof buf, "%.17g", it->valuedouble);
                *(const char **)o->dst = buf;
            } else bad = 1;
            break;
        }
        if (bad) return err_fail(R1_EINPUT, where, "hyperparameter \"%s\" has the wrong type",
                                 it->string);
    }
    return R1_OK;
}

/* --student NAME: the recipe's base model and hyperparameters. */
static int load_recipe(cJSON **root, char **base_dir) {
    int is_path = strchr(o_student, '/') || strstr(o_student, ".json");
    char *path = is_path ? xstrdup(o_student) : xasprintf("%s/%s.json", o_recipes, o_student);
    int rc = json_parse_file(root, path, 16u << 20);
    if (rc) {
        if (!path_exists(path)) {
            err_fail(R1_EINPUT, path, "no such recipe");
            err_hint("--student NAME reads %s/NAME.json (see --recipes)", o_recipes);
        }
        free(path);
        return R1_EINPUT;
    }
    const cJSON *st = NULL, *hp = NULL;
    const char *base = NULL;
    if (json_get_obj(*root, "student", &st, path) <= 0) {
        rc = err_fail(R1_EINPUT, path, "missing the \"student\" object");
    } else if (json_get_str(st, "base", &base, path) <= 0) {
        rc = err_fail(R1_EINPUT, path, "\"student\" has no \"base\" model id");
    } else if (json_get_obj(st, "hyperparameters", &hp, path) < 0) {
        rc = R1_EINPUT;
    } else if (hp) {
        rc = apply_recipe(hp, path);
    }
    if (!rc) {
        if (o_base) {
            *base_dir = xstrdup(o_base);
        } else if (getenv("R1_MODELS") && *getenv("R1_MODELS")) {
            *base_dir = path_join(getenv("R1_MODELS"), base);
        } else {
            rc = err_fail(R1_EINPUT, path, "where is the base model \"%s\"?", base);
            err_hint("pass --base DIR, or set R1_MODELS to a directory holding it as "
                     "R1_MODELS/%s", base);
        }
    }
    free(path);
    return rc;
}

int cmd_train(int argc, char **argv) {
    cli_parse(&train_spec, argc, argv, NULL, NULL);
    cJSON *recipe = NULL;
    char *base_dir = NULL;
    if (o_student) {
        if (o_model) die(R1_EINPUT, "--student", "give --student or --model, not both");
        if (load_recipe(&recipe, &base_dir)) err_exit();
        o_model = base_dir;
    } else if (o_base) {
        die(R1_EINPUT, "--base", "--base goes with --student; use --model DIR");
    }
    if (!o_model && !o_resume)
        die(R1_EINPUT, "--model", "--model DIR (or --student NAME) is required");
    if (cli_given(&train_spec, "steps") && cli_given(&train_spec, "epochs"))
        die(R1_EINPUT, "--steps", "give --steps or --epochs, not both");

    train_args a = {
        .model = o_model, .data = o_data, .eval_data = o_eval, .out = o_out, .log = o_log,
        .chat_format = o_format, .steps = o_steps, .epochs = o_epochs, .lr = o_lr,
        .min_lr = o_min_lr, .weight_decay = o_wd, .beta1 = o_b1, .beta2 = o_b2, .eps = o_eps,
        .grad_clip = o_clip, .batch_size = o_batch, .micro_batch = o_micro, .seq_len = o_seq,
        .recompute = o_recompute, .truncate = o_truncate, .resume = o_resume, .seed = o_seed,
        .save_every = o_save, .eval_every = o_eval_every, .keep = o_keep, .quiet = o_quiet,
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
    int rc = train_run(&a);
    cJSON_Delete(recipe);
    free(base_dir);
    if (rc) err_exit();
    return 0;
}
