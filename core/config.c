#include "core/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"

const char *model_arch_name(model_arch a) {
    switch (a) {
    case ARCH_QWEN2: return "qwen2";
    case ARCH_LLAMA: return "llama";
    case ARCH_DEEPSEEK_V3: return "deepseek_v3";
    }
    return "?";
}

int model_config_is_eos(const model_config *c, int id) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id) return 1;
    return 0;
}

/* An integer field: required fields fail when absent; bounds keep later arithmetic safe. */
static int get_int(const cJSON *o, const char *key, int *out, int required, int64_t lo, int64_t hi,
                   const char *where) {
    int64_t v;
    int r = json_get_int(o, key, &v, where);
    if (r < 0) return R1_EINPUT;
    if (r == 0) {
        if (required) return err_fail(R1_EINPUT, where, "missing \"%s\"", key);
        return R1_OK;
    }
    if (v < lo || v > hi)
        return err_fail(R1_EINPUT, where, "\"%s\" = %lld is outside [%lld, %lld]", key,
                        (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return R1_OK;
}

static int get_num(const cJSON *o, const char *key, double *out, double lo, double hi,
                   const char *where) {
    double v;
    int r = json_get_num(o, key, &v, where);
    if (r < 0) return R1_EINPUT;
    if (r == 0) return R1_OK;
    if (!(v >= lo && v <= hi))
        return err_fail(R1_EINPUT, where, "\"%s\" = %g is outside [%g, %g]", key, v, lo, hi);
    *out = v;
    return R1_OK;
}

static int get_flag(const cJSON *o, const char *key, int *out, const char *where) {
    return json_get_bool(o, key, out, where) < 0 ? R1_EINPUT : R1_OK;
}

/* rope_scaling (transformers 4) or rope_parameters (transformers 5). */
static int parse_rope(rope_config *r, const cJSON *root, int max_position, const char *where) {
    const cJSON *p = NULL;
    r->theta = 10000.0;
    TRY(get_num(root, "rope_theta", &r->theta, 1e-3, 1e12, where));
    int has_params = json_get_obj(root, "rope_parameters", &p, where);
    if (has_params < 0) return R1_EINPUT;
    if (has_params == 0 && json_get_obj(root, "rope_scaling", &p, where) < 0) return R1_EINPUT;
    if (!p) return R1_OK;
    TRY(get_num(p, "rope_theta", &r->theta, 1e-3, 1e12, where));
    const char *type = NULL;
    if (json_get_str(p, "rope_type", &type, where) < 0) return R1_EINPUT;
    if (!type && json_get_str(p, "type", &type, where) < 0) return R1_EINPUT;
    if (!type || strcmp(type, "default") == 0) {
        r->type = ROPE_DEFAULT;
    } else if (strcmp(type, "llama3") == 0) {
        r->type = ROPE_LLAMA3;
    } else if (strcmp(type, "yarn") == 0) {
        r->type = ROPE_YARN;
    } else {
        err_fail(R1_EINPUT, where, "unsupported rope type \"%s\"", type);
        return err_hint("supported rope types: default, llama3, yarn");
    }
    r->factor = 0.0; /* absent: see below */
    r->low_freq_factor = 1.0;
    r->high_freq_factor = 4.0;
    r->beta_fast = 32.0;
    r->beta_slow = 1.0;
    TRY(get_num(p, "factor", &r->factor, 1e-6, 1e6, where));
    TRY(get_num(p, "low_freq_factor", &r->low_freq_factor, 1e-6, 1e6, where));
    TRY(get_num(p, "high_freq_factor", &r->high_freq_factor, 1e-6, 1e6, where));
    TRY(get_int(p, "original_max_position_embeddings", &r->original_max_position, 0, 1, 1 << 30,
                where));
    TRY(get_num(p, "beta_fast", &r->beta_fast, -1e6, 1e6, where));
    TRY(get_num(p, "beta_slow", &r->beta_slow, -1e6, 1e6, where));
    TRY(get_num(p, "mscale", &r->mscale, 0, 1e6, where));
    TRY(get_num(p, "mscale_all_dim", &r->mscale_all_dim, 0, 1e6, where));
    TRY(get_num(p, "attention_factor", &r->attention_factor, 0, 1e6, where));
    int truncate = 1;
    TRY(get_flag(p, "truncate", &truncate, where));
    r->yarn_no_truncate = !truncate;
    if (r->type == ROPE_LLAMA3 && r->high_freq_factor <= r->low_freq_factor)
        return err_fail(R1_EINPUT, where, "llama3 rope: high_freq_factor must exceed low_freq_factor");
    if (r->type != ROPE_DEFAULT && r->original_max_position == 0)
        return err_fail(R1_EINPUT, where, "%s rope needs original_max_position_embeddings", type);
    /* transformers' _compute_yarn_parameters: without a factor, YaRN stretches
     * original_max_position_embeddings to max_position_embeddings. */
    if (r->factor == 0.0)
        r->factor = r->type == ROPE_YARN ? (double)max_position / r->original_max_position : 1.0;
    return R1_OK;
}

/* bos/eos/pad ids: an integer or a list of integers. */
static int parse_ids(model_config *c, const cJSON *root, const char *where) {
    int64_t v;
    int r = json_get_int(root, "bos_token_id", &v, where);
    if (r < 0) return R1_EINPUT;
    c->bos_id = r ? (int)v : -1;
    r = json_get_int(root, "pad_token_id", &v, where);
    if (r < 0) return R1_EINPUT;
    c->pad_id = r ? (int)v : -1;
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    c->n_eos = 0;
    if (!eos || cJSON_IsNull(eos)) return R1_OK;
    if (json_is_int(eos)) {
        c->eos_ids[c->n_eos++] = (int)eos->valuedouble;
        return R1_OK;
    }
    if (!cJSON_IsArray(eos))
        return err_fail(R1_EINPUT, where, "\"eos_token_id\" must be an integer or a list of them");
    const cJSON *it;
    cJSON_ArrayForEach(it, eos) {
        if (!json_is_int(it) || c->n_eos == MAX_EOS_IDS)
            return err_fail(R1_EINPUT, where, "\"eos_token_id\" must list at most %d integers",
                            MAX_EOS_IDS);
        c->eos_ids[c->n_eos++] = (int)it->valuedouble;
    }
    return R1_OK;
}

static int parse_deepseek(model_config *c, const cJSON *root, const char *where) {
    const int big = 1 << 24;
    TRY(get_int(root, "q_lora_rank", &c->q_lora_rank, 0, 0, big, where));
    TRY(get_int(root, "kv_lora_rank", &c->kv_lora_rank, 1, 1, big, where));
    TRY(get_int(root, "qk_nope_head_dim", &c->qk_nope_head_dim, 1, 0, 1 << 16, where));
    TRY(get_int(root, "qk_rope_head_dim", &c->qk_rope_head_dim, 1, 2, 1 << 16, where));
    TRY(get_int(root, "v_head_dim", &c->v_head_dim, 1, 1, 1 << 16, where));
    if (c->qk_rope_head_dim % 2)
        return err_fail(R1_EINPUT, where, "\"qk_rope_head_dim\" must be even");
    c->n_routed_experts = 0;
    TRY(get_int(root, "n_routed_experts", &c->n_routed_experts, 0, 0, 1 << 16, where));
    TRY(get_int(root, "n_shared_experts", &c->n_shared_experts, 0, 0, 1 << 16, where));
    TRY(get_int(root, "num_experts_per_tok", &c->num_experts_per_tok, 0, 0, 1 << 16, where));
    c->n_group = 1;
    c->topk_group = 1;
    TRY(get_int(root, "n_group", &c->n_group, 0, 1, 1 << 16, where));
    TRY(get_int(root, "topk_group", &c->topk_group, 0, 1, 1 << 16, where));
    TRY(get_int(root, "moe_intermediate_size", &c->moe_intermediate_size, 0, 0, big, where));
    TRY(get_int(root, "first_k_dense_replace", &c->first_k_dense_replace, 0, 0, 1 << 16, where));
    /* Read for completeness; like DeepSeek's model.py and transformers' DeepseekV3, every layer
     * from first_k_dense_replace on is MoE whatever moe_layer_freq says. */
    c->moe_layer_freq = 1;
    TRY(get_int(root, "moe_layer_freq", &c->moe_layer_freq, 0, 1, 1 << 16, where));
    c->rope_interleave = 1;
    TRY(get_flag(root, "rope_interleave", &c->rope_interleave, where));
    if (c->attention_bias)
        return err_fail(R1_EINPUT, where,
                        "\"attention_bias\": true is not supported for deepseek_v3 (DeepSeek's "
                        "checkpoints have no attention biases)");
    c->routed_scaling_factor = 1.0;
    TRY(get_num(root, "routed_scaling_factor", &c->routed_scaling_factor, 0, 1e6, where));
    c->norm_topk_prob = 0;
    TRY(get_flag(root, "norm_topk_prob", &c->norm_topk_prob, where));
    TRY(get_int(root, "num_nextn_predict_layers", &c->num_nextn_predict_layers, 0, 0, 1 << 10,
                where));
    const char *s = NULL;
    if (json_get_str(root, "scoring_func", &s, where) < 0) return R1_EINPUT;
    if (s && strcmp(s, "sigmoid") != 0)
        return err_fail(R1_EINPUT, where, "unsupported scoring_func \"%s\" (supported: sigmoid)", s);
    s = NULL;
    if (json_get_str(root, "topk_method", &s, where) < 0) return R1_EINPUT;
    if (s && strcmp(s, "noaux_tc") != 0)
        return err_fail(R1_EINPUT, where, "unsupported topk_method \"%s\" (supported: noaux_tc)", s);
    if (c->n_routed_experts > 0) {
        if (c->num_experts_per_tok < 1 || c->num_experts_per_tok > c->n_routed_experts)
            return err_fail(R1_EINPUT, where,
                            "\"num_experts_per_tok\" must be between 1 and n_routed_experts");
        if (c->n_routed_experts % c->n_group)
            return err_fail(R1_EINPUT, where, "n_routed_experts must divide into n_group groups");
        if (c->topk_group > c->n_group)
            return err_fail(R1_EINPUT, where, "\"topk_group\" exceeds \"n_group\"");
        if (c->num_experts_per_tok > c->topk_group * (c->n_routed_experts / c->n_group))
            return err_fail(R1_EINPUT, where,
                            "num_experts_per_tok exceeds the experts of topk_group groups");
        if (c->moe_intermediate_size < 1)
            return err_fail(R1_EINPUT, where, "missing \"moe_intermediate_size\"");
    }
    const cJSON *q = NULL;
    if (json_get_obj(root, "quantization_config", &q, where) < 0) return R1_EINPUT;
    if (q) {
        const char *method = NULL, *fmt = NULL, *act = NULL;
        if (json_get_str(q, "quant_method", &method, where) < 0 ||
            json_get_str(q, "fmt", &fmt, where) < 0 ||
            json_get_str(q, "activation_scheme", &act, where) < 0)
            return R1_EINPUT;
        const cJSON *blk = NULL;
        if (json_get_arr(q, "weight_block_size", &blk, where) < 0) return R1_EINPUT;
        int ok = method && strcmp(method, "fp8") == 0 && (!fmt || strcmp(fmt, "e4m3") == 0) &&
                 blk && cJSON_GetArraySize(blk) == 2 && json_is_int(blk->child) &&
                 json_is_int(blk->child->next) && blk->child->valuedouble >= 1 &&
                 blk->child->next->valuedouble >= 1 && blk->child->valuedouble <= 65536 &&
                 blk->child->next->valuedouble <= 65536;
        if (!ok) {
            err_fail(R1_EINPUT, where, "unsupported quantization_config (quant_method \"%s\", fmt \"%s\")",
                     method ? method : "?", fmt ? fmt : "?");
            return err_hint("supported: quant_method \"fp8\", fmt \"e4m3\" with a two-element "
                            "weight_block_size, as DeepSeek publishes");
        }
        c->fp8 = 1;
        c->fp8_block[0] = (int)blk->child->valuedouble;
        c->fp8_block[1] = (int)blk->child->next->valuedouble;
    }
    if (c->first_k_dense_replace < c->num_layers && c->n_routed_experts < 1)
        return err_fail(R1_EINPUT, where,
                        "layers from first_k_dense_replace (%d) on are MoE, but \"n_routed_experts\" "
                        "is missing or 0", c->first_k_dense_replace);
    return R1_OK;
}

int model_config_from_json(model_config *c, const cJSON *root, const char *where) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(root)) return err_fail(R1_EINPUT, where, "config is not a JSON object");
    /* Python's json keeps the last of repeated keys and cJSON the first: refuse the ambiguity. */
    for (const cJSON *a = root->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (strcmp(a->string, b->string) == 0)
                return err_fail(R1_EINPUT, where, "key \"%s\" appears twice", a->string);
    const char *mt = NULL;
    if (json_get_str(root, "model_type", &mt, where) < 0) return R1_EINPUT;
    if (!mt) return err_fail(R1_EINPUT, where, "missing \"model_type\"");
    if (strcmp(mt, "qwen2") == 0)
        c->arch = ARCH_QWEN2;
    else if (strcmp(mt, "llama") == 0)
        c->arch = ARCH_LLAMA;
    else if (strcmp(mt, "deepseek_v3") == 0)
        c->arch = ARCH_DEEPSEEK_V3;
    else {
        err_fail(R1_EINPUT, where, "unsupported model_type \"%s\"", mt);
        return err_hint("supported model types: qwen2, llama, deepseek_v3");
    }
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    const int big = 1 << 24;
    int vocab = 0;
    TRY(get_int(root, "vocab_size", &vocab, 1, 1, 1 << 30, where));
    c->vocab_size = vocab;
    TRY(get_int(root, "hidden_size", &c->hidden_size, 1, 1, big, where));
    TRY(get_int(root, "intermediate_size", &c->intermediate_size, 1, 1, big, where));
    TRY(get_int(root, "num_hidden_layers", &c->num_layers, 1, 1, 1 << 16, where));
    TRY(get_int(root, "num_attention_heads", &c->num_heads, 1, 1, 1 << 16, where));
    c->num_kv_heads = c->num_heads;
    TRY(get_int(root, "num_key_value_heads", &c->num_kv_heads, 0, 1, 1 << 16, where));
    c->max_position_embeddings = 2048;
    TRY(get_int(root, "max_position_embeddings", &c->max_position_embeddings, 0, 1, 1 << 30, where));
    c->rms_norm_eps = 1e-6;
    TRY(get_num(root, "rms_norm_eps", &c->rms_norm_eps, 0, 1, where));
    /* transformers' defaults: Qwen2 and Llama tie only when told; DeepSeek-V3 never ties. */
    c->tie_word_embeddings = 0;
    TRY(get_flag(root, "tie_word_embeddings", &c->tie_word_embeddings, where));
    c->attention_bias = c->arch == ARCH_QWEN2;
    if (c->arch != ARCH_QWEN2) TRY(get_flag(root, "attention_bias", &c->attention_bias, where));
    TRY(get_flag(root, "mlp_bias", &c->mlp_bias, where));
    if (c->mlp_bias)
        return err_fail(R1_EINPUT, where, "\"mlp_bias\": true is not supported");
    if (c->num_heads % c->num_kv_heads)
        return err_fail(R1_EINPUT, where,
                        "num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)",
                        c->num_heads, c->num_kv_heads);
    c->head_dim = c->hidden_size / c->num_heads;
    TRY(get_int(root, "head_dim", &c->head_dim, 0, 1, 1 << 16, where));
    if (c->arch != ARCH_DEEPSEEK_V3 && (c->head_dim % 2 || c->head_dim < 2))
        return err_fail(R1_EINPUT, where, "head_dim %d must be even", c->head_dim);
    TRY(parse_rope(&c->rope, root, c->max_position_embeddings, where));
    TRY(parse_ids(c, root, where));
    const char *td = NULL;
    if (json_get_str(root, "torch_dtype", &td, where) < 0) return R1_EINPUT;
    if (!td && json_get_str(root, "dtype", &td, where) < 0) return R1_EINPUT;
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "%s", td ? td : "float32");
    if (c->arch == ARCH_DEEPSEEK_V3) TRY(parse_deepseek(c, root, where));
    return R1_OK;
}

int model_config_parse(model_config *c, const char *text, size_t len, const char *where) {
    cJSON *root;
    TRY(json_parse(&root, text, len, where));
    int rc = model_config_from_json(c, root, where);
    cJSON_Delete(root);
    return rc;
}

int model_config_load(model_config *c, const char *path) {
    char *file = path_is_dir(path) ? path_join(path, "config.json") : xstrdup(path);
    char *text;
    size_t len;
    int rc = file_read_all(file, 16u << 20, &text, &len);
    if (rc) {
        if (!path_exists(file)) {
            err_fail(R1_EINPUT, file, "missing config.json");
            err_hint("a model directory holds config.json and safetensors weights, as Hugging "
                     "Face publishes them");
        }
        free(file);
        return R1_EINPUT;
    }
    rc = model_config_parse(c, text, len, file);
    free(text);
    free(file);
    return rc;
}
