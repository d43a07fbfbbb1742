/* r1-distill inspect: what a model is, from its config.json alone (and its safetensors headers
 * when the weights are there): parameters in total and per token, bytes by dtype, KV cache per
 * token.
 *
 * How parameters are counted: every weight the forward pass uses, the input embedding and the
 * output head included (each once when they are tied). DeepSeek's multi-token-prediction
 * modules (num_nextn_predict_layers, stored as extra layers) are not part of the forward and not
 * of the total; their unique weights are reported apart (params_mtp). Active parameters are the
 * total less the routed experts a token does not pick: (n_routed - num_experts_per_tok) experts
 * in each MoE layer. For the published DeepSeek-R1 config this gives 671.03 B total, 37.55 B
 * active and 11.61 B in the MTP module (HF's 685 B is 671 B plus the MTP module with its copies
 * of the embedding and head). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/cli.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "teacher/teacher.h"

/* The dtype config.json says unquantized weights are stored in. */
static dtype stored_dtype(const model_config *c) {
    if (strcmp(c->torch_dtype, "bfloat16") == 0) return DTYPE_BF16;
    if (strcmp(c->torch_dtype, "float16") == 0) return DTYPE_F16;
    return DTYPE_F32;
}

/* Adds a [rows, cols] tensor `count` times: parameters and bytes in its checkpoint dtype. A
 * linear weight of an FP8 checkpoint is F8_E4M3 plus its F32 block scales. */
static void add(model_size *s, int64_t rows, int64_t cols, int64_t count, int linear,
                const model_config *c, int active) {
    /* A config may ask for sizes past int64 (each field is bounded, their products are not):
     * such a model is flagged, not counted. */
    int64_t n, nb, sb = 0;
    const dtype t = linear && c->fp8 ? DTYPE_F8_E4M3 : stored_dtype(c);
    int bad = __builtin_mul_overflow(rows, cols, &n) | __builtin_mul_overflow(n, count, &n) |
              __builtin_mul_overflow(n, (int64_t)dtype_size(t), &nb);
    if (linear && c->fp8) {
        const int64_t sr = (rows + c->fp8_block[0] - 1) / c->fp8_block[0];
        const int64_t sc = (cols + c->fp8_block[1] - 1) / c->fp8_block[1];
        bad |= __builtin_mul_overflow(sr, sc, &sb) | __builtin_mul_overflow(sb, count * 4, &sb);
    }
    bad |= __builtin_add_overflow(s->params_total, n, &s->params_total) |
           __builtin_add_overflow(s->params_active, active ? n : 0, &s->params_active) |
           __builtin_add_overflow(s->bytes[t], nb, &s->bytes[t]) |
           __builtin_add_overflow(s->bytes[DTYPE_F32], sb, &s->bytes[DTYPE_F32]);
    s->overflow |= bad;
}

/* One MLA attention block with its two norms (input_layernorm, post_attention_layernorm). */
static void add_mla(model_size *s, const model_config *c) {
    const int64_t d = c->hidden_size, H = c->num_heads, qk = c->qk_nope_head_dim + c->qk_rope_head_dim;
    add(s, 1, d, 2, 0, c, 1);
    if (c->q_lora_rank == 0) {
        add(s, H * qk, d, 1, 1, c, 1);
    } else {
        add(s, c->q_lora_rank, d, 1, 1, c, 1);
        add(s, 1, c->q_lora_rank, 1, 0, c, 1);
        add(s, H * qk, c->q_lora_rank, 1, 1, c, 1);
    }
    add(s, c->kv_lora_rank + c->qk_rope_head_dim, d, 1, 1, c, 1);
    add(s, 1, c->kv_lora_rank, 1, 0, c, 1);
    add(s, H * (c->qk_nope_head_dim + c->v_head_dim), c->kv_lora_rank, 1, 1, c, 1);
    add(s, d, H * c->v_head_dim, 1, 1, c, 1);
}

/* gate, up and down projections of `count` MLPs of width ff; `active` of them run per token. */
static void add_mlps(model_size *s, const model_config *c, int64_t ff, int64_t count,
                     int64_t active) {
    const int64_t d = c->hidden_size;
    add(s, ff, d, 2 * active, 1, c, 1);
    add(s, d, ff, active, 1, c, 1);
    add(s, ff, d, 2 * (count - active), 1, c, 0);
    add(s, d, ff, count - active, 1, c, 0);
}

/* The router (weight in the stored dtype, correction bias F32), routed and shared experts. */
static void add_moe(model_size *s, const model_config *c) {
    const int64_t d = c->hidden_size, E = c->n_routed_experts;
    add(s, E, d, 1, 0, c, 1);
    /* e_score_correction_bias: F32 whatever the checkpoint's dtype */
    model_config f32 = *c;
    snprintf(f32.torch_dtype, sizeof f32.torch_dtype, "float32");
    add(s, 1, E, 1, 0, &f32, 1);
    add_mlps(s, c, c->moe_intermediate_size, E, c->num_experts_per_tok);
    if (c->n_shared_experts > 0)
        add_mlps(s, c, (int64_t)c->n_shared_experts * c->moe_intermediate_size, 1, 1);
}

void model_size_from_config(model_size *s, const model_config *c) {
    memset(s, 0, sizeof *s);
    const int64_t V = c->vocab_size, d = c->hidden_size;
    add(s, V, d, c->tie_word_embeddings ? 1 : 2, 0, c, 1); /* embed_tokens, lm_head */
    add(s, 1, d, 1, 0, c, 1);                              /* final norm */
    if (c->arch != ARCH_DEEPSEEK_V3) {
        const int64_t qd = (int64_t)c->num_heads * c->head_dim,
                      kvd = (int64_t)c->num_kv_heads * c->head_dim;
        for (int l = 0; l < c->num_layers; l++) {
            add(s, 1, d, 2, 0, c, 1);
            add(s, qd, d, 1, 1, c, 1);
            add(s, kvd, d, 2, 1, c, 1);
            if (c->attention_bias) {
                add(s, 1, qd, 1, 0, c, 1);
                add(s, 1, kvd, 2, 0, c, 1);
            }
            add(s, d, qd, 1, 1, c, 1);
            add_mlps(s, c, c->intermediate_size, 1, 1);
        }
        s->kv_cache_bytes_per_token = (int64_t)c->num_layers * 2 * kvd * 2;
        return;
    }
    for (int l = 0; l < c->num_layers; l++) {
        add_mla(s, c);
        if (l < c->first_k_dense_replace)
            add_mlps(s, c, c->intermediate_size, 1, 1);
        else
            add_moe(s, c);
    }
    /* MTP module (model.py does not build it): enorm, hnorm, eh_proj [d, 2d], a MoE decoder
     * layer and shared_head.norm; its embedding and head copies are not counted. */
    model_size mtp;
    memset(&mtp, 0, sizeof mtp);
    for (int i = 0; i < c->num_nextn_predict_layers; i++) {
        add(&mtp, 1, d, 3, 0, c, 1);
        add(&mtp, d, 2 * d, 1, 1, c, 1);
        add_mla(&mtp, c);
        add_moe(&mtp, c);
    }
    s->params_mtp = mtp.params_total;
    s->overflow |= mtp.overflow;
    /* the latent cache: kv_lora_rank + qk_rope_head_dim values per layer, 2 bytes each */
    s->kv_cache_bytes_per_token =
        (int64_t)c->num_layers * (c->kv_lora_rank + c->qk_rope_head_dim) * 2;
}

/* ---- the multi-GPU memory plan --------------------------------------------------------------
 *
 * One node of G GPUs serving the model with tensor-parallel attention and dense layers and
 * expert-parallel MoE (teacher/teacher.h gpu_plan): per GPU, the weights it holds and the KV
 * cache of one sequence of seq_len tokens, so how many such sequences fit beside a reserve for
 * the CUDA context, workspaces and activations.
 *
 *   split G ways   q_b_proj, kv_b_proj, o_proj (by head), dense MLPs and shared experts (by
 *                  intermediate channel), as `--tp G` loads them (teacher/deepseek.c);
 *                  Qwen2/Llama: q/k/v/o, the MLP and the (vocabulary-parallel) embedding and
 *                  head, a layout the engine does not run (dense teachers run one per GPU)
 *   whole on each  q_a_proj, kv_a_proj_with_mqa, the router, norms (small, or needed by every
 *                  head); DeepSeek's embedding and head (as --tp keeps them)
 *   E / G each     routed experts (expert parallel: ceil(E / G) experts per GPU)
 *   KV cache       DeepSeek's latent cache is shared by all heads, so tensor-parallel attention
 *                  holds it whole on every GPU; data-parallel attention (each GPU attends its
 *                  own sequences, as SGLang's --enable-dp-attention) divides it by G. Qwen2/Llama
 *                  split their KV heads (whole heads: max(1, kv_heads / G) per GPU). */

/* Bytes of a [rows, cols] weight in the checkpoint's storage (FP8 + F32 block scales for
 * linears of an FP8 checkpoint). */
static double weight_bytes(const model_config *c, double rows, double cols, int linear) {
    if (linear && c->fp8)
        return rows * cols + ceil(rows / c->fp8_block[0]) * ceil(cols / c->fp8_block[1]) * 4.0;
    return rows * cols * (double)dtype_size(stored_dtype(c));
}

void gpu_plan_from_config(gpu_plan *p, const model_config *c, int gpus, double gpu_bytes,
                          double reserve_bytes, int seq_len) {
    memset(p, 0, sizeof *p);
    const double G = gpus, d = c->hidden_size, V = (double)c->vocab_size;
    p->gpus = gpus;
    p->embed_head = weight_bytes(c, V, d, 0) * (c->tie_word_embeddings ? 1 : 2) /
                    (c->arch == ARCH_DEEPSEEK_V3 ? 1 : G);
    p->other = weight_bytes(c, 1, d, 0); /* final norm */
    if (c->arch != ARCH_DEEPSEEK_V3) {
        const double qd = (double)c->num_heads * c->head_dim,
                     kvd = (double)c->num_kv_heads * c->head_dim, ff = c->intermediate_size;
        for (int l = 0; l < c->num_layers; l++) {
            p->attention += (weight_bytes(c, qd, d, 1) + 2 * weight_bytes(c, kvd, d, 1) +
                             weight_bytes(c, d, qd, 1)) / G;
            if (c->attention_bias) p->attention += weight_bytes(c, 1, qd + 2 * kvd, 0) / G;
            p->dense_mlp += 3 * weight_bytes(c, ff, d, 1) / G;
            p->other += 2 * weight_bytes(c, 1, d, 0);
        }
        const int kv_local = c->num_kv_heads / gpus > 0 ? c->num_kv_heads / gpus : 1;
        p->kv_per_seq_tp = (double)seq_len * c->num_layers * 2.0 * kv_local * c->head_dim * 2.0;
        p->kv_per_seq_dp = p->kv_per_seq_tp;
    } else {
        const double H = c->num_heads, qk = c->qk_nope_head_dim + c->qk_rope_head_dim,
                     lat = c->kv_lora_rank, rope = c->qk_rope_head_dim;
        const double moe_ff = c->moe_intermediate_size;
        p->experts_per_gpu = (c->n_routed_experts + gpus - 1) / gpus;
        for (int l = 0; l < c->num_layers; l++) {
            double rep = weight_bytes(c, lat + rope, d, 1) + weight_bytes(c, 1, lat, 0) +
                         2 * weight_bytes(c, 1, d, 0);
            double split = weight_bytes(c, H * (c->qk_nope_head_dim + c->v_head_dim), lat, 1) +
                           weight_bytes(c, d, H * c->v_head_dim, 1);
            if (c->q_lora_rank == 0) {
                split += weight_bytes(c, H * qk, d, 1);
            } else {
                rep += weight_bytes(c, c->q_lora_rank, d, 1) + weight_bytes(c, 1, c->q_lora_rank, 0);
                split += weight_bytes(c, H * qk, c->q_lora_rank, 1);
            }
            p->attention += rep + split / G;
            if (l < c->first_k_dense_replace) {
                p->dense_mlp += 3 * weight_bytes(c, c->intermediate_size, d, 1) / G;
            } else {
                p->other += weight_bytes(c, c->n_routed_experts, d, 0) + 4.0 * c->n_routed_experts;
                p->dense_mlp += 3 * weight_bytes(c, c->n_shared_experts * moe_ff, d, 1) / G;
                p->experts += 3 * weight_bytes(c, moe_ff, d, 1) * p->experts_per_gpu;
            }
        }
        p->kv_per_seq_tp = (double)seq_len * c->num_layers * (lat + rope) * 2.0;
        p->kv_per_seq_dp = p->kv_per_seq_tp / G;
    }
    p->weights = p->embed_head + p->attention + p->dense_mlp + p->experts + p->other;
    p->reserve = reserve_bytes;
    p->free_for_cache = gpu_bytes - p->weights - reserve_bytes;
    const double f = p->free_for_cache > 0 ? p->free_for_cache : 0;
    p->fit_tp = (int64_t)floor(f / p->kv_per_seq_tp);
    /* data-parallel attention: each GPU holds the caches of its own sequences */
    p->fit_dp = (int64_t)floor(f / (p->kv_per_seq_dp * G)) * gpus;
    if (c->arch != ARCH_DEEPSEEK_V3) p->fit_dp = p->fit_tp;
}

/* ---- the command --------------------------------------------------------------------------- */

static const char *opt_model;
static int opt_json;
static int64_t opt_gpus, opt_seq_len, opt_seqs;
static double opt_gpu_mem, opt_reserve;

static const cli_opt inspect_opts[] = {
    {"model", OPT_STRING, &opt_model, NULL, CLI_REQUIRED, "DIR",
     "model directory (config.json, weights optional) or a config.json file"},
    {"json", OPT_FLAG, &opt_json, NULL, 0, NULL,
     "print one JSON object: params_total, params_active, params_mtp, "
     "kv_cache_bytes_per_token, bytes_by_dtype, files when weights are present, gpu_plan with "
     "--gpus"},
    {"gpus", OPT_INT, &opt_gpus, "0", 0, "N",
     "also print the memory plan for one node of N GPUs (tensor-parallel attention and dense "
     "layers, expert-parallel MoE)"},
    {"gpu-mem", OPT_FLOAT, &opt_gpu_mem, "141", 0, "GB", "memory per GPU, 1e9 bytes (H200: 141)"},
    {"seq-len", OPT_INT, &opt_seq_len, "32768", 0, "N", "tokens per sequence for the KV cache"},
    {"seqs", OPT_INT, &opt_seqs, "64", 0, "N", "concurrent sequences to check the plan for"},
    {"reserve", OPT_FLOAT, &opt_reserve, "4", 0, "GB",
     "per GPU, for the CUDA context, workspaces and activations"},
};

static const cli_spec inspect_spec = {
    .command = "inspect",
    .summary = "Print a model's parameter counts, bytes by dtype and KV-cache bytes per token.",
    .opts = inspect_opts,
    .n_opts = sizeof inspect_opts / sizeof *inspect_opts,
    .details = "Parameters count every weight the forward uses, embeddings and head included;\n"
               "DeepSeek's multi-token-prediction layers are reported apart. Active parameters\n"
               "leave out the routed experts a token does not pick. The KV cache is counted in\n"
               "bf16 (DeepSeek-V3: the latent cache, kv_lora_rank + qk_rope_head_dim values per\n"
               "layer). Bytes by dtype come from config.json; with weights present the\n"
               "safetensors headers are read too (nothing else of the files).\n"
               "--gpus N adds the memory plan of one node (teacher/cmd_inspect.c says what is\n"
               "split, what is whole on every GPU and how the KV cache is held).",
};

typedef struct {
    int present;
    int shards, tensors;
    int64_t params; /* elements of every tensor but the FP8 block scales */
    int64_t bytes[DTYPE_COUNT];
} file_totals;

/* Reads the safetensors headers of a model directory, if it holds weights. */
static int read_files(file_totals *f, const char *path) {
    memset(f, 0, sizeof *f);
    if (!path_is_dir(path)) return R1_OK;
    char *index = path_join(path, "model.safetensors.index.json");
    char *single = path_join(path, "model.safetensors");
    int has = path_exists(index) || path_exists(single);
    free(index);
    free(single);
    if (!has) return R1_OK;
    safetensors st;
    TRY(safetensors_open(&st, path));
    f->present = 1;
    f->shards = st.n_shards;
    f->tensors = st.n;
    for (int i = 0; i < st.n; i++) {
        const st_tensor *t = &st.tensors[i];
        size_t len = strlen(t->name);
        if (!(len > 10 && strcmp(t->name + len - 10, "_scale_inv") == 0)) f->params += t->numel;
        f->bytes[t->dt] += (int64_t)t->nbytes;
    }
    safetensors_close(&st);
    return R1_OK;
}

static cJSON *bytes_json(const int64_t *bytes) {
    cJSON *o = cJSON_CreateObject();
    for (int t = 0; t < DTYPE_COUNT; t++)
        if (bytes[t]) cJSON_AddNumberToObject(o, dtype_name((dtype)t), (double)bytes[t]);
    return o;
}

/* 671026419200 -> "671.03 B"; units of a thousand, as parameter counts are quoted. */
static const char *human(char *buf, size_t cap, int64_t n, const char *const units[4]) {
    double v = (double)n;
    int u = 0;
    while (u < 3 && v >= 1000.0) {
        v /= 1000.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%" PRId64 "%s%s", n, units[0][0] ? " " : "", units[0]);
    else
        snprintf(buf, cap, "%.2f %s", v, units[u]);
    return buf;
}

static const char *const count_units[4] = {"", "K", "M", "B"};
static const char *const byte_units[4] = {"bytes", "kB", "MB", "GB"};

static void print_bytes(const int64_t *bytes) {
    int first = 1;
    char b[32];
    for (int t = 0; t < DTYPE_COUNT; t++)
        if (bytes[t]) {
            printf("%s%s %s", first ? "" : ", ", dtype_name((dtype)t),
                   human(b, sizeof b, bytes[t], byte_units));
            first = 0;
        }
    printf("\n");
}

static void print_plan(const model_config *c) {
    gpu_plan p;
    gpu_plan_from_config(&p, c, (int)opt_gpus, opt_gpu_mem * 1e9, opt_reserve * 1e9,
                         (int)opt_seq_len);
    const double GB = 1e9;
    printf("GPU plan       %d GPUs x %.1f GB: attention and dense layers tensor parallel (%d "
           "ways)", p.gpus, opt_gpu_mem, p.gpus);
    if (c->arch == ARCH_DEEPSEEK_V3)
        printf(", routed experts expert parallel (%d of %d per GPU)", p.experts_per_gpu,
               c->n_routed_experts);
    printf("\n  weights/GPU  %.2f GB: ", p.weights / GB);
    if (c->arch == ARCH_DEEPSEEK_V3) printf("routed experts %.2f, ", p.experts / GB);
    printf("attention %.2f, %s %.2f, embedding + head %.2f, norms/router %.2f\n",
           p.attention / GB, c->arch == ARCH_DEEPSEEK_V3 ? "dense MLPs + shared experts" : "MLPs",
           p.dense_mlp / GB, p.embed_head / GB, p.other / GB);
    printf("  reserve      %.2f GB (CUDA context, workspaces, activations)\n", p.reserve / GB);
    printf("  left         %.2f GB per GPU for the KV cache\n", p.free_for_cache / GB);
    printf("  KV cache     %.3f GB per %" PRId64 "-token sequence per GPU", p.kv_per_seq_tp / GB,
           opt_seq_len);
    if (c->arch == ARCH_DEEPSEEK_V3)
        printf(" (tensor-parallel attention: the latent cache whole on every GPU); %.3f GB "
               "with data-parallel attention", p.kv_per_seq_dp / GB);
    printf("\n  fits         %" PRId64 " concurrent %" PRId64 "-token sequences", p.fit_tp,
           opt_seq_len);
    if (c->arch == ARCH_DEEPSEEK_V3)
        printf(" (%" PRId64 " with data-parallel attention)", p.fit_dp);
    const int ok_tp = p.fit_tp >= opt_seqs, ok_dp = p.fit_dp >= opt_seqs;
    printf("\n  %" PRId64 " seqs    %s\n", opt_seqs,
           ok_tp ? "fit" : ok_dp ? "fit with data-parallel attention only" : "do not fit");
    if (c->arch == ARCH_DEEPSEEK_V3)
        printf("  runs as      generate --device cuda --tp %d (data-parallel attention is a plan "
               "only)\n", p.gpus);
    else
        printf("  note         a plan only: generate runs a dense teacher one GPU per process\n");
}

int cmd_inspect(int argc, char **argv) {
    cli_parse(&inspect_spec, argc, argv, NULL, NULL);
    if (!path_exists(opt_model)) {
        err_fail(R1_EINPUT, opt_model, "no such model directory or config file");
        err_exit();
    }
    model_config c;
    if (model_config_load(&c, opt_model)) err_exit();
    model_size s;
    model_size_from_config(&s, &c);
    if (s.overflow) {
        err_fail(R1_EINPUT, opt_model, "the sizes in config.json make a model of more than 2^63 "
                                       "parameters or bytes");
        err_exit();
    }
    if (opt_gpus < 0 || opt_gpus > 4096) die(R1_EINPUT, "--gpus", "must be between 0 and 4096");
    if (opt_gpus > 0 && !(opt_gpu_mem > 0 && opt_gpu_mem < 1e6))
        die(R1_EINPUT, "--gpu-mem", "must be a positive number of GB");
    if (opt_seq_len < 1 || opt_seq_len > (1ll << 31)) die(R1_EINPUT, "--seq-len", "must be positive");
    if (opt_seqs < 0) die(R1_EINPUT, "--seqs", "must be >= 0");
    if (!(opt_reserve >= 0)) die(R1_EINPUT, "--reserve", "must be >= 0");
    file_totals f;
    if (read_files(&f, opt_model)) err_exit();

    if (opt_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model_type", c.model_type);
        cJSON_AddNumberToObject(o, "params_total", (double)s.params_total);
        cJSON_AddNumberToObject(o, "params_active", (double)s.params_active);
        cJSON_AddNumberToObject(o, "params_mtp", (double)s.params_mtp);
        cJSON_AddNumberToObject(o, "kv_cache_bytes_per_token", (double)s.kv_cache_bytes_per_token);
        cJSON_AddItemToObject(o, "bytes_by_dtype", bytes_json(s.bytes));
        if (f.present) {
            cJSON *fo = cJSON_AddObjectToObject(o, "files");
            cJSON_AddNumberToObject(fo, "shards", f.shards);
            cJSON_AddNumberToObject(fo, "tensors", f.tensors);
            cJSON_AddNumberToObject(fo, "params", (double)f.params);
            cJSON_AddItemToObject(fo, "bytes_by_dtype", bytes_json(f.bytes));
        }
        if (opt_gpus > 0) {
            gpu_plan p;
            gpu_plan_from_config(&p, &c, (int)opt_gpus, opt_gpu_mem * 1e9, opt_reserve * 1e9,
                                 (int)opt_seq_len);
            cJSON *g = cJSON_AddObjectToObject(o, "gpu_plan");
            cJSON_AddNumberToObject(g, "gpus", p.gpus);
            cJSON_AddNumberToObject(g, "gpu_bytes", opt_gpu_mem * 1e9);
            cJSON_AddNumberToObject(g, "seq_len", (double)opt_seq_len);
            cJSON_AddNumberToObject(g, "weights_per_gpu", p.weights);
            cJSON_AddNumberToObject(g, "experts_per_gpu", p.experts_per_gpu);
            cJSON_AddNumberToObject(g, "experts_bytes", p.experts);
            cJSON_AddNumberToObject(g, "attention_bytes", p.attention);
            cJSON_AddNumberToObject(g, "dense_mlp_bytes", p.dense_mlp);
            cJSON_AddNumberToObject(g, "embed_head_bytes", p.embed_head);
            cJSON_AddNumberToObject(g, "other_bytes", p.other);
            cJSON_AddNumberToObject(g, "reserve_bytes", p.reserve);
            cJSON_AddNumberToObject(g, "kv_per_seq_tp", p.kv_per_seq_tp);
            cJSON_AddNumberToObject(g, "kv_per_seq_dp", p.kv_per_seq_dp);
            cJSON_AddNumberToObject(g, "fit_seqs_tp", (double)p.fit_tp);
            cJSON_AddNumberToObject(g, "fit_seqs_dp", (double)p.fit_dp);
        }
        char *text = json_print(o);
        fputs(text, stdout);
        free(text);
        cJSON_Delete(o);
        return 0;
    }
    printf("model          %s (%s)\n", opt_model, c.model_type);
    if (c.arch == ARCH_DEEPSEEK_V3)
        printf("layers         %d (%d dense, %d MoE: %d routed experts, %d per token, %d shared)\n",
               c.num_layers, c.first_k_dense_replace < c.num_layers ? c.first_k_dense_replace
                                                                    : c.num_layers,
               c.first_k_dense_replace < c.num_layers ? c.num_layers - c.first_k_dense_replace : 0,
               c.n_routed_experts, c.num_experts_per_tok, c.n_shared_experts);
    else
        printf("layers         %d, hidden %d, %d heads (%d KV)\n", c.num_layers, c.hidden_size,
               c.num_heads, c.num_kv_heads);
    char t1[32], t2[32];
    printf("parameters     %s total (%" PRId64 "), %s active per token (%" PRId64 ")\n",
           human(t1, sizeof t1, s.params_total, count_units), s.params_total,
           human(t2, sizeof t2, s.params_active, count_units), s.params_active);
    if (s.params_mtp)
        printf("               not counted: %d MTP module(s), %s (%" PRId64 ")\n",
               c.num_nextn_predict_layers, human(t1, sizeof t1, s.params_mtp, count_units),
               s.params_mtp);
    printf("bytes by dtype ");
    print_bytes(s.bytes);
    if (f.present) {
        printf("files          %d shard(s), %d tensors, %s parameters: ", f.shards, f.tensors,
               human(t1, sizeof t1, f.params, count_units));
        print_bytes(f.bytes);
    }
    printf("KV cache       %" PRId64 " bytes per token (bf16)\n", s.kv_cache_bytes_per_token);
    if (opt_gpus > 0) print_plan(&c);
    return 0;
}
