/* r1-distill plan: will a recipe's training fit on N GPUs, and at what ZeRO stage and
 * micro-batch? The memory model is student/plan.h's. */
#include <stdio.h>
#include <string.h>

#include "core/cli.h"
#include "core/error.h"
#include "core/json.h"
#include "core/recipe.h"
#include "student/plan.h"

static const char *opt_recipe;
static int64_t opt_gpus, opt_seq_len, opt_batch, opt_chunk;
static double opt_mem;
static int opt_json, opt_no_recompute, opt_offload;

static const cli_opt plan_opts[] = {
    {"recipe", OPT_STRING, &opt_recipe, NULL, CLI_REQUIRED, "NAME",
     "recipe name (recipes/NAME.json) or path"},
    {"gpus", OPT_INT, &opt_gpus, "8", 0, "N", "GPUs (data parallel)"},
    {"gpu-mem", OPT_FLOAT, &opt_mem, "80", 0, "GB", "memory per GPU in GiB (2^30 bytes, as nvidia-smi counts; an H100 has 79.6, an H200 140.4)"},
    {"seq-len", OPT_INT, &opt_seq_len, "0", 0, "T", "sequence length (0: the recipe's train.seq_len)"},
    {"batch-size", OPT_INT, &opt_batch, "0", 0, "B",
     "sequences per optimizer step (0: the recipe's train.batch_size)"},
    {"loss-chunk", OPT_INT, &opt_chunk, "1024", 0, "ROWS", "rows of logits per loss chunk"},
    {"no-recompute", OPT_FLAG, &opt_no_recompute, NULL, 0, NULL, "plan without activation recomputation"},
    {"offload-optimizer", OPT_FLAG, &opt_offload, NULL, 0, NULL,
     "plan train --offload-optimizer: fp32 master weights and moments in host memory"},
    {"json", OPT_FLAG, &opt_json, NULL, 0, NULL, "print the plan as JSON"},
};

static const cli_spec plan_spec = {
    .command = "plan",
    .summary = "Print whether a recipe's training fits: memory per GPU for parameters, gradients, "
               "optimizer state and activations, the ZeRO stage and micro-batch it needs, and the "
               "FLOPs of one optimizer step.",
    .opts = plan_opts,
    .n_opts = sizeof plan_opts / sizeof *plan_opts,
    .details = "Memory model: bf16 weights, bf16 gradients (fp32 when a GPU adds up several\n"
               "micro-batches per step), fp32 master weights (their low halves beside the bf16\n"
               "weights) and AdamW moments (on the host with --offload-optimizer), bf16\n"
               "activations with flash attention, chunked loss; see student/plan.h.",
};

static int shape_int(const recipe *r, const char *key, int *out) {
    int64_t v;
    int got = json_get_int(r->shape, key, &v, r->path);
    if (got != 1 || v < 1 || v > (1 << 30)) {
        err_fail(R1_EINPUT, r->path, "student.shape.%s must be a positive integer", key);
        return R1_EINPUT;
    }
    *out = (int)v;
    return R1_OK;
}

static double gb(double bytes) { return bytes / 1073741824.0; }

int cmd_plan(int argc, char **argv) {
    cli_parse(&plan_spec, argc, argv, NULL, NULL);
    if (opt_gpus < 1 || opt_gpus > 65536) die(R1_EINPUT, "--gpus", "must be between 1 and 65536");
    if (opt_mem <= 0) die(R1_EINPUT, "--gpu-mem", "must be positive");
    recipe r;
    if (recipe_load(&r, opt_recipe)) err_exit();
    if (!r.shape) die(R1_EINPUT, r.path, "missing student.shape");
    dense_shape s = {0};
    int vocab;
    if (shape_int(&r, "hidden_size", &s.hidden) || shape_int(&r, "num_hidden_layers", &s.layers) ||
        shape_int(&r, "num_attention_heads", &s.heads) ||
        shape_int(&r, "num_key_value_heads", &s.kv_heads) || shape_int(&r, "head_dim", &s.head_dim) ||
        shape_int(&r, "intermediate_size", &s.ff) || shape_int(&r, "vocab_size", &vocab))
        err_exit();
    s.vocab = vocab;
    s.attn_bias = r.arch && strcmp(r.arch, "qwen2") == 0;
    if (json_get_bool(r.shape, "tie_word_embeddings", &s.tied, r.path) < 0) err_exit();
    double seq = 0, batch = 0, recompute = 1, cheap = 0, offload = 0;
    if (recipe_train_num(&r, "seq_len", 4096, &seq) || recipe_train_num(&r, "batch_size", 128, &batch) ||
        recipe_train_num(&r, "recompute", 1, &recompute) ||
        recipe_train_num(&r, "recompute_cheap", 0, &cheap) ||
        recipe_train_num(&r, "offload_optimizer", 0, &offload))
        err_exit();
    if (opt_offload) offload = 1;
    plan_request q = {.gpus = (int)opt_gpus, .gpu_mem_bytes = opt_mem * 1073741824.0,
                      .seq_len = opt_seq_len > 0 ? (int)opt_seq_len : (int)seq,
                      .batch_size = opt_batch > 0 ? (int)opt_batch : (int)batch,
                      .recompute = opt_no_recompute ? RECOMPUTE_NONE
                                   : cheap != 0     ? RECOMPUTE_CHEAP
                                   : recompute != 0 ? RECOMPUTE_ALL
                                                    : RECOMPUTE_NONE,
                      .loss_chunk_rows = (int)opt_chunk, .offload = offload != 0};
    if (q.seq_len < 1 || q.batch_size < 1 || q.loss_chunk_rows < 1)
        die(R1_EINPUT, "plan", "sequence length, batch size and loss chunk must be positive");
    static const char *const mode_name[] = {[RECOMPUTE_NONE] = "none", [RECOMPUTE_ALL] = "all",
                                            [RECOMPUTE_CHEAP] = "cheap",
                                            [RECOMPUTE_KEEP_ATTN] = "all-but-attention"};
    plan_result p;
    plan_training(&s, &q, &p);
    /* what train takes by itself on a GPU where neither the recipe nor --no-recompute names a
     * mode: the first of none, cheap, all but the attention and all whose plan fits (train's
     * own order, cuda_student_fit_recompute); -1 where a mode is named or none fits */
    int auto_mode = -1;
    plan_result pa = {0};
    if (!opt_no_recompute && !cJSON_GetObjectItemCaseSensitive(r.train, "recompute") &&
        !cJSON_GetObjectItemCaseSensitive(r.train, "recompute_cheap")) {
        for (int i = 0; i < RECOMPUTE_MODES && auto_mode < 0; i++) {
            plan_request t = q;
            t.recompute = recompute_fastest_first[i];
            plan_training(&s, &t, &pa);
            if (pa.zero_stage >= 0) auto_mode = (int)recompute_fastest_first[i];
        }
    }
    char auto_json[96] = "null";
    if (auto_mode >= 0)
        snprintf(auto_json, sizeof auto_json, "\"%s\", \"auto_total_bytes\": %.0f",
                 mode_name[auto_mode], pa.total);
    if (opt_json) {
        printf("{\"recipe\": \"%s\", \"gpus\": %d, \"gpu_mem_gib\": %g, \"seq_len\": %d, "
               "\"batch_size\": %d, \"recompute\": %s, \"recompute_mode\": \"%s\", "
               "\"params\": %lld, \"params_matmul\": %lld, "
               "\"fits\": %s, \"zero_stage\": %d, \"micro_batch\": %d, \"accumulation\": %d, "
               "\"weights_bytes\": %.0f, \"grads_bytes\": %.0f, \"master_bytes\": %.0f, "
               "\"optimizer_bytes\": %.0f, \"activations_bytes_per_seq\": %.0f, "
               "\"loss_bytes\": %.0f, \"total_bytes\": %.0f, \"offload\": %s, "
               "\"host_bytes\": %.0f, \"flops_per_token\": %.6g, \"flops_per_step\": %.6g, "
               "\"auto_recompute_mode\": %s}\n",
               r.name, q.gpus, opt_mem, q.seq_len, q.batch_size,
               q.recompute != RECOMPUTE_NONE ? "true" : "false",
               mode_name[q.recompute],
               (long long)p.params, (long long)p.params_matmul, p.zero_stage >= 0 ? "true" : "false",
               p.zero_stage, p.micro_batch, p.accumulation, p.weights, p.grads, p.master,
               p.optimizer, p.activations_per_seq, p.loss, p.total, q.offload ? "true" : "false",
               p.host, p.flops_per_token, p.flops_per_step, auto_json);
    } else {
        printf("recipe %s: %.2fB parameters, %d GPUs x %g GiB, %d-token sequences, %d per step%s\n",
               r.name, (double)p.params / 1e9, q.gpus, opt_mem, q.seq_len, q.batch_size,
               q.recompute == RECOMPUTE_CHEAP ? ", cheap recomputation"
               : q.recompute == RECOMPUTE_ALL ? ", recomputation"
                                              : "");
        printf("  %-34s %10.2f GiB\n", "bf16 weights", gb(p.weights));
        printf("  %-34s %10.2f GiB\n",
               p.grads_f32 ? "fp32 gradients (accumulating)" : "bf16 gradients",
               gb(p.grads));
        if (q.offload) {
            printf("  %-34s %10.2f GiB\n", "fp32 master weights, AdamW moments", 0.0);
            printf("  %-34s %10.2f GiB\n", q.gpus > 1 ? "  (on the hosts instead, all ranks)"
                                                      : "  (on the host instead)", gb(p.host));
        } else {
            printf("  %-34s %10.2f GiB\n", "fp32 master weights", gb(p.master));
            printf("  %-34s %10.2f GiB\n", "fp32 AdamW moments", gb(p.optimizer));
        }
        printf("  %-34s %10.2f GiB\n", "activations per sequence", gb(p.activations_per_seq));
        printf("  %-34s %10.2f GiB\n", "chunked loss", gb(p.loss));
        printf("  %-34s %10.2f GiB\n", "overhead", gb(p.overhead));
        if (p.zero_stage >= 0)
            printf("fits: ZeRO-%d, micro-batch %d, %d accumulation steps; %.2f GiB per GPU\n",
                   p.zero_stage, p.micro_batch, p.accumulation, gb(p.total));
        else
            printf("does not fit: %sone sequence needs %.2f GiB per GPU\n",
                   q.gpus > 1 ? "even with ZeRO-3, " : "", gb(p.total));
        /* what the hosts' memory would buy: the same plan with the state offloaded */
        if (p.zero_stage < 0 && !q.offload) {
            plan_request qo = q;
            qo.offload = 1;
            plan_result po;
            plan_training(&s, &qo, &po);
            char stage[16] = "";
            if (q.gpus > 1) snprintf(stage, sizeof stage, "ZeRO-%d, ", po.zero_stage);
            if (po.zero_stage >= 0)
                printf("with --offload-optimizer it fits: %smicro-batch %d, %.2f GiB per GPU, "
                       "%.2f GiB of float32 state on the host%s\n", stage, po.micro_batch,
                       gb(po.total), gb(po.host), q.gpus > 1 ? "s (all ranks)" : "");
        }
        if (auto_mode >= 0 && auto_mode != (int)q.recompute) {
            static const char *const how[] = {
                [RECOMPUTE_NONE] = "no recomputation", [RECOMPUTE_CHEAP] = "--recompute-cheap",
                [RECOMPUTE_KEEP_ATTN] = "all but the attention recomputed"};
            char stage[16] = "";
            if (q.gpus > 1) snprintf(stage, sizeof stage, "ZeRO-%d, ", pa.zero_stage);
            printf("on GPUs, train given no recomputation option takes a faster mode that fits: "
                   "%s, %s%.2f GiB per GPU\n", how[auto_mode], stage, gb(pa.total));
        }
        if (p.zero_stage == 2)
            printf("note: train --zero 2 shards the gradients as well as the optimizer state "
                   "(--zero auto, the default, picks it where ZeRO-1 does not fit)\n");
        if (p.zero_stage == 3)
            printf("note: train --zero 3 shards the bf16 weights as well as the gradients and "
                   "the optimizer state (--zero auto, the default, picks it where ZeRO-2 does not "
                   "fit)\n");
        printf("step: %.3g FLOPs (%.3g per token: 6N + 12*L*H*hd*T)\n", p.flops_per_step,
               p.flops_per_token);
    }
    recipe_free(&r);
    return 0;
}
