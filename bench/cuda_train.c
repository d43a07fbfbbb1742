/* Benchmark of the CUDA training step on random-weight Qwen2.5-shaped students: tokens/s, MFU and
 * GPU memory of full SFT steps (forward, backward, clipped AdamW on float32 master weights), the
 * figures bench/torch_train.py measures for PyTorch + transformers on the same shapes.
 *
 *   build/bench/cuda_train --shape 0.5b --seq 4096 --batch 4 [--recompute]
 *
 * Prints a human line and a JSON line ("result": {...}) for bench/cuda/train.sh. MFU counts
 * 6 N + 12 L d T FLOPs per token (N: all parameters, tied ones once; T: sequence length; the
 * non-causal attention count of docs/performance-anchors' "Measured here", so both sides are
 * counted alike) against 989 TFLOP/s; recomputation is not counted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "core/clock.h"
#include "core/error.h"

#ifdef R1_HAVE_CUDA
#include "student/train_cuda.h"

/* transformers config.json of Qwen2.5-{0.5B,1.5B,7B} (the fields the trainer reads) */
static const struct {
    const char *name, *json;
} shapes[] = {
    {"0.5b", "{\"model_type\":\"qwen2\",\"vocab_size\":151936,\"hidden_size\":896,"
             "\"intermediate_size\":4864,\"num_hidden_layers\":24,\"num_attention_heads\":14,"
             "\"num_key_value_heads\":2,\"max_position_embeddings\":32768,\"rms_norm_eps\":1e-6,"
             "\"rope_theta\":1000000.0,\"tie_word_embeddings\":true}"},
    {"1.5b", "{\"model_type\":\"qwen2\",\"vocab_size\":151936,\"hidden_size\":1536,"
             "\"intermediate_size\":8960,\"num_hidden_layers\":28,\"num_attention_heads\":12,"
             "\"num_key_value_heads\":2,\"max_position_embeddings\":32768,\"rms_norm_eps\":1e-6,"
             "\"rope_theta\":1000000.0,\"tie_word_embeddings\":true}"},
    {"7b", "{\"model_type\":\"qwen2\",\"vocab_size\":152064,\"hidden_size\":3584,"
           "\"intermediate_size\":18944,\"num_hidden_layers\":28,\"num_attention_heads\":28,"
           "\"num_key_value_heads\":4,\"max_position_embeddings\":32768,\"rms_norm_eps\":1e-6,"
           "\"rope_theta\":1000000.0,\"tie_word_embeddings\":false}"},
    /* for --plan: no single GPU holds these with their optimizer state */
    {"14b", "{\"model_type\":\"qwen2\",\"vocab_size\":152064,\"hidden_size\":5120,"
            "\"intermediate_size\":13824,\"num_hidden_layers\":48,\"num_attention_heads\":40,"
            "\"num_key_value_heads\":8,\"max_position_embeddings\":32768,\"rms_norm_eps\":1e-5,"
            "\"rope_theta\":1000000.0,\"tie_word_embeddings\":false}"},
    {"32b", "{\"model_type\":\"qwen2\",\"vocab_size\":152064,\"hidden_size\":5120,"
            "\"intermediate_size\":27648,\"num_hidden_layers\":64,\"num_attention_heads\":40,"
            "\"num_key_value_heads\":8,\"max_position_embeddings\":32768,\"rms_norm_eps\":1e-5,"
            "\"rope_theta\":1000000.0,\"tie_word_embeddings\":false}"},
};

static const char *opt_shape, *opt_attn;
static int64_t opt_seq, opt_batch, opt_steps, opt_warmup;
static int opt_recompute, opt_recompute_cheap, opt_keep_attn, opt_grad_f32, opt_plan, opt_offload;
static int opt_recompute_ds;

static const cli_opt bench_opts[] = {
    {"shape", OPT_STRING, &opt_shape, "0.5b", 0, "NAME",
     "0.5b, 1.5b or 7b (Qwen2.5 shapes); 14b and 32b for --plan"},
    {"seq", OPT_INT, &opt_seq, "4096", 0, "T", "tokens per sequence"},
    {"batch", OPT_INT, &opt_batch, "4", 0, "B", "sequences per step (one micro-batch)"},
    {"steps", OPT_INT, &opt_steps, "5", 0, "N", "timed steps"},
    {"warmup", OPT_INT, &opt_warmup, "2", 0, "N", "untimed steps first"},
    {"recompute", OPT_FLAG, &opt_recompute, NULL, 0, NULL, "recompute each layer in the backward"},
    {"recompute-cheap", OPT_FLAG, &opt_recompute_cheap, NULL, 0, NULL,
     "keep the products' outputs, recompute only the norms and SwiGLU in the backward"},
    {"recompute-keep-attn", OPT_FLAG, &opt_keep_attn, NULL, 0, NULL,
     "recompute each layer in the backward but its attention, whose output and statistics each "
     "layer keeps (a mode train's automatic choice takes where it fits)"},
    {"grad-f32", OPT_FLAG, &opt_grad_f32, NULL, 0, NULL, "float32 gradients (default bf16)"},
    {"attn", OPT_STRING, &opt_attn, "auto", 0, "IMPL",
     "attention kernels: auto (wgmma for head_dim 64/128), wgmma, mma (mma.sync), simple"},
    {"attn-recompute-ds", OPT_FLAG, &opt_recompute_ds, NULL, 0, NULL,
     "the attention's backward recomputes dS for dq instead of keeping it (the way before)"},
    {"plan", OPT_FLAG, &opt_plan, NULL, 0, NULL,
     "print the memory plan per GPU for 1, 2, 4 and 8 data-parallel ranks (ZeRO-1, -2 and -3) "
     "and exit (needs no GPU)"},
    {"offload", OPT_FLAG, &opt_offload, NULL, 0, NULL,
     "with --plan: one GPU's plan with the optimizer state on the host (train --offload-optimizer; "
     "time it with bench/cuda/train_gpus.sh)"},
};

static const cli_spec bench_spec = {
    .command = "cuda_train",
    .summary = "Time full training steps of a random-weight Qwen2.5-shaped student on the GPU.",
    .opts = bench_opts,
    .n_opts = sizeof bench_opts / sizeof *bench_opts,
};

int main(int argc, char **argv) {
    err_set_command("cuda_train");
    cli_parse(&bench_spec, argc, argv, NULL, NULL);
    const char *json = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        if (strcmp(shapes[i].name, opt_shape) == 0) json = shapes[i].json;
    if (!json) die(R1_EINPUT, "--shape", "unknown shape %s (0.5b, 1.5b, 7b, 14b, 32b)", opt_shape);
    if (opt_seq < 2 || opt_batch < 1 || opt_steps < 1 || opt_warmup < 0)
        die(R1_EINPUT, "options", "need --seq >= 2, --batch >= 1, --steps >= 1");
    model_config cfg;
    if (model_config_parse(&cfg, json, strlen(json), opt_shape)) err_exit();
    const int T = (int)opt_seq, B = (int)opt_batch, n = T * B;
    const int attn = attn_impl_parse(opt_attn);
    if (attn < 0)
        die(R1_EINPUT, "--attn", "unknown attention kernels %s (auto, wgmma, mma, simple)",
            opt_attn);
    if (opt_recompute + opt_recompute_cheap + opt_keep_attn > 1)
        die(R1_EINPUT, "--recompute-cheap", "choose one of --recompute, --recompute-cheap and "
                                            "--recompute-keep-attn");
    /* the JSON's "recompute": 0 none, 1 all, 2 cheap, 3 all but the attention (recompute_mode's
     * values) */
    const int rc = opt_keep_attn ? RECOMPUTE_KEEP_ATTN
                                 : recompute_from_flags(opt_recompute, opt_recompute_cheap);
    cuda_student_opts o = {.max_tokens = n, .recompute = rc, .grad_f32 = opt_grad_f32,
                           .ce_chunk = 0, .attn = (attn_impl)attn,
                           .attn_recompute_ds = opt_recompute_ds};
    const double gib = 1073741824.0;
    if (opt_offload && !opt_plan)
        die(R1_EINPUT, "--offload", "goes with --plan (the timed loop runs AdamW on the GPU)");
    if (opt_plan && opt_offload) {
        o.host_optimizer = 1;
        o.host_buckets = -1; /* all of the state */
        printf("plan %s seq=%d batch=%d recompute=%d grad=%s offload: %.1f GiB on the GPU\n",
               opt_shape, T, B, rc, opt_grad_f32 ? "f32" : "bf16", cuda_student_bytes(&cfg, &o) / gib);
        return 0;
    }
    if (opt_plan) {
        /* ZeRO-1 splits the float32 master weights and moments over the ranks, ZeRO-2 the
         * gradients too, ZeRO-3 the bf16 weights as well; each rank's activations are its own */
        for (int r = 1; r <= 8; r *= 2) {
            cuda_student_opts orr = o, z2 = o, z3 = o;
            orr.n_ranks = z2.n_ranks = z3.n_ranks = r;
            z2.zero_stage = 2; /* the gradients sharded too */
            z3.zero_stage = 3; /* and the weights */
            printf("plan %s seq=%d batch=%d recompute=%d grad=%s ranks=%d: %.1f GiB per GPU "
                   "(ZeRO-2: %.1f, ZeRO-3: %.1f)\n", opt_shape, T, B, rc,
                   opt_grad_f32 ? "f32" : "bf16", r, cuda_student_bytes(&cfg, &orr) / gib,
                   cuda_student_bytes(&cfg, &z2) / gib, cuda_student_bytes(&cfg, &z3) / gib);
        }
        return 0;
    }
    const size_t need = cuda_student_bytes(&cfg, &o);
    size_t free_b, total_b;
    R1_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    if (need > free_b) {
        printf("r1-distill %s seq=%d batch=%d recompute=%d: does not fit: needs %.1f GiB, %.1f GiB free\n",
               opt_shape, T, B, rc, need / gib, free_b / gib);
        printf("result {\"impl\":\"r1-distill\",\"shape\":\"%s\",\"seq\":%d,\"batch\":%d,"
               "\"recompute\":%d,\"fits\":false,\"need_gib\":%.2f,\"free_gib\":%.2f}\n",
               opt_shape, T, B, rc, need / gib, free_b / gib);
        return 0;
    }
    cuda_student *s;
    if (cuda_student_create(&s, &cfg, &o)) err_exit();
    cuda_student_init_random(s, 1, 0.02f);

    int *tokens = xmalloc(sizeof(int) * n), *targets = xmalloc(sizeof(int) * n);
    int *cu = xmalloc(sizeof(int) * (B + 1));
    uint64_t r = 12345;
    for (int i = 0; i < n; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int)((r >> 33) % (uint64_t)cfg.vocab_size);
    }
    for (int b = 0; b <= B; b++) cu[b] = b * T;
    for (int i = 0; i < n; i++) targets[i] = (i + 1) % T == 0 ? -1 : tokens[i + 1];
    cuda_batch batch = {.n = n, .n_docs = B, .tokens = tokens, .targets = targets, .cu_seqlens = cu};
    const float inv_count = 1.0f / (float)(B * (T - 1));
    cuda_optim opt = {1e-5f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};

    float first = 0, last = 0;
    double t0 = 0;
    for (int it = 0; it < opt_warmup + opt_steps; it++) {
        if (it == opt_warmup) {
            R1_CUDA_CHECK(cudaStreamSynchronize(cuda_student_stream(s)));
            t0 = clock_seconds();
        }
        cuda_student_zero_grad(s);
        if (cuda_student_forward_backward(s, &batch, inv_count)) err_exit();
        cuda_student_step(s, &opt, NULL);
        last = cuda_student_take_loss(s); /* synchronises */
        if (it == 0) first = last;
    }
    const double dt = (clock_seconds() - t0) / (double)opt_steps;
    R1_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const double N = (double)cuda_student_numel(s);
    const double flops_tok = 6.0 * N + 12.0 * cfg.num_layers * cfg.hidden_size * (double)T;
    const double tps = n / dt, mfu = tps * flops_tok / 989e12;
    printf("r1-distill %s seq=%d batch=%d recompute=%d: %.0f tokens/s, MFU %.1f%%, step %.3f s, "
           "memory %.1f GiB allocated (%.1f GiB in use on the device), loss %.4f -> %.4f\n",
           opt_shape, T, B, rc, tps, 100 * mfu, dt, need / gib,
           (total_b - free_b) / gib, first, last);
    printf("result {\"impl\":\"r1-distill\",\"shape\":\"%s\",\"seq\":%d,\"batch\":%d,"
           "\"recompute\":%d,\"recompute_ds\":%d,\"fits\":true,\"tokens_per_s\":%.1f,\"mfu\":%.4f,"
           "\"step_s\":%.4f,\"peak_gib\":%.3f,\"device_used_gib\":%.3f,\"params\":%.0f,"
           "\"loss_first\":%.5f,\"loss_last\":%.5f}\n",
           opt_shape, T, B, rc, opt_recompute_ds, tps, mfu, dt, need / gib,
           (total_b - free_b) / gib, N, first, last);
    cuda_student_destroy(s);
    free(tokens);
    free(targets);
    free(cu);
    return isfinite(last) ? 0 : 1;
}

#else
int main(void) {
    fprintf(stderr, "cuda_train: built without CUDA\n");
    return 2;
}
#endif
