/* Hugging Face config.json -> model description for qwen2, llama and deepseek_v3.
 *
 * Both layouts are read: transformers 4 (published checkpoints: "rope_theta" and
 * "rope_scaling" at top level) and transformers 5 ("rope_parameters" holding rope_type,
 * rope_theta and the scaling fields). Every value is read from the file; the only defaults are
 * the ones transformers itself applies when a key is absent. */
#ifndef R1_CORE_CONFIG_H
#define R1_CORE_CONFIG_H

#include <cjson/cJSON.h>
#include <stdint.h>

typedef enum { ARCH_QWEN2, ARCH_LLAMA, ARCH_DEEPSEEK_V3 } model_arch;

typedef enum { ROPE_DEFAULT, ROPE_LLAMA3, ROPE_YARN } rope_type;

typedef struct {
    rope_type type;
    double theta;
    double factor;                  /* llama3, yarn */
    double low_freq_factor;         /* llama3 */
    double high_freq_factor;        /* llama3 */
    int original_max_position;      /* llama3, yarn */
    double beta_fast, beta_slow;    /* yarn */
    double mscale, mscale_all_dim;  /* yarn (DeepSeek) */
    double attention_factor;        /* yarn: explicit cos/sin multiplier, 0 if absent */
    int yarn_no_truncate;           /* yarn "truncate": false keeps the correction range
                                     * fractional (0, the default, rounds it to whole dims) */
} rope_config;

enum { MAX_EOS_IDS = 8 };

typedef struct {
    model_arch arch;
    char model_type[32];
    int64_t vocab_size;
    int hidden_size;
    int intermediate_size;
    int num_layers;
    int num_heads;
    int num_kv_heads;
    int head_dim;             /* q/k/v head size of dense models */
    int max_position_embeddings;
    double rms_norm_eps;
    int tie_word_embeddings;
    int attention_bias;       /* bias on q, k, v (Qwen2 always has it) */
    int mlp_bias;
    rope_config rope;
    int bos_id;               /* -1 if absent */
    int eos_ids[MAX_EOS_IDS];
    int n_eos;
    int pad_id;               /* -1 if absent */
    char torch_dtype[16];

    /* deepseek_v3 */
    int q_lora_rank;          /* 0: plain q_proj */
    int kv_lora_rank;
    int qk_nope_head_dim;
    int qk_rope_head_dim;
    int v_head_dim;
    int n_routed_experts;
    int n_shared_experts;
    int num_experts_per_tok;
    int n_group;
    int topk_group;
    int moe_intermediate_size;
    int first_k_dense_replace;
    int moe_layer_freq;
    double routed_scaling_factor;
    int norm_topk_prob;
    int num_nextn_predict_layers; /* MTP modules stored after the layers; the forward ignores them */
    int rope_interleave;      /* rope on adjacent pairs (DeepSeek's layout; transformers' default) */
    int fp8;                  /* quantization_config: fp8 e4m3 with block scales */
    int fp8_block[2];         /* weight_block_size */
} model_config;

/* Reads DIR/config.json (or a config.json path). */
int model_config_load(model_config *c, const char *path);
/* Parses config text; `where` names it in messages. Used by the fuzz target. */
int model_config_parse(model_config *c, const char *text, size_t len, const char *where);
/* Fills from a parsed object. */
int model_config_from_json(model_config *c, const cJSON *root, const char *where);

const char *model_arch_name(model_arch a);
/* True if the token id is one of the config's end-of-sequence ids. */
int model_config_is_eos(const model_config *c, int id);

#endif
