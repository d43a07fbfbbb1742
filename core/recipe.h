/* Recipes: JSON files in recipes/ that describe one distillation end to end (student base and
 * shape, the config and tokenizer changes R1-Distill made, teacher sampling, curation, training
 * hyperparameters with their sources, export type, evaluation). `train --student NAME`, `plan`
 * and `run` read them.
 *
 * Schema (keys used by the code; every other key is documentation and is kept as it is):
 *   name                    string
 *   student.base            string: the Hugging Face id of the base checkpoint
 *   student.base_env        string: environment variable holding the base checkpoint's path
 *   student.arch            "qwen2" | "llama"
 *   student.shape           {hidden_size, num_hidden_layers, num_attention_heads,
 *                            num_key_value_heads, head_dim, intermediate_size, vocab_size,
 *                            tie_word_embeddings}
 *   student.config_changes  object merged into the base config.json before training
 *   teacher                 {temperature, top_p, max_new_tokens, samples, instruction}
 *   train                   {lr, schedule, min_lr, warmup, epochs | steps, seq_len, batch_size,
 *                            micro_batch, grad_clip, weight_decay, adam_beta1, adam_beta2,
 *                            adam_eps, pack, recompute}
 *   export.quant            GGUF type
 */
#ifndef R1_CORE_RECIPE_H
#define R1_CORE_RECIPE_H

#include <cjson/cJSON.h>

typedef struct {
    cJSON *root;
    char *path;
    const char *name;
    const char *base;      /* student.base */
    const char *base_env;  /* student.base_env, may be NULL */
    const char *arch;
    const cJSON *shape;    /* student.shape */
    const cJSON *train;    /* train */
    const cJSON *teacher;  /* may be NULL */
} recipe;

/* NAME_OR_PATH: a path to a .json file, or a name looked up as recipes/NAME.json (relative to the
 * current directory, then to $R1_RECIPES). */
int recipe_load(recipe *r, const char *name_or_path);
void recipe_free(recipe *r);

/* Typed access to train.* with a default when absent; R1_EINPUT on a wrong type. */
int recipe_train_num(const recipe *r, const char *key, double def, double *out);

#endif
