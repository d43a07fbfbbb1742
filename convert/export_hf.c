/* `export --format hf`: a clean Hugging Face directory from a checkpoint (a trainer's output
 * directory holds optimizer state and trainer_state.json beside the model; this keeps only
 * what transformers and vLLM load):
 *
 *   model.safetensors (or shards + index)  every model tensor in bf16 (bf16 tensors are copied
 *                                          from the map, others rounded to nearest even)
 *   config.json                            the original, with torch_dtype "bfloat16"
 *   generation_config.json                 the original, or R1's sampling defaults
 *   tokenizer.json, tokenizer_config.json  copied, with special_tokens_map.json, vocab.json,
 *                                          merges.txt and added_tokens.json when present */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/safetensors.h"

static int copy_file(const char *from_dir, const char *to_dir, const char *name, int required) {
    char *src = path_join(from_dir, name);
    int missing = !path_exists(src);
    free(src);
    if (missing && required) {
        err_fail(R1_EINPUT, from_dir, "missing %s", name);
        err_hint("copy the tokenizer files of the base model into the checkpoint directory");
        return R1_EINPUT;
    }
    return file_copy_into(from_dir, to_dir, name, 0);
}

static int write_config(const char *model_dir, const char *out_dir) {
    char *path = path_join(model_dir, "config.json");
    cJSON *root;
    int rc = json_parse_file(&root, path, 16u << 20);
    free(path);
    if (rc) return rc;
    /* transformers 4 reads torch_dtype, transformers 5 writes dtype */
    if (cJSON_GetObjectItemCaseSensitive(root, "dtype"))
        cJSON_ReplaceItemInObjectCaseSensitive(root, "dtype", cJSON_CreateString("bfloat16"));
    if (cJSON_GetObjectItemCaseSensitive(root, "torch_dtype") ||
        !cJSON_GetObjectItemCaseSensitive(root, "dtype")) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "torch_dtype");
        cJSON_AddStringToObject(root, "torch_dtype", "bfloat16");
    }
    rc = json_write_file(out_dir, "config.json", root);
    cJSON_Delete(root);
    return rc;
}

static int write_generation_config(const char *model_dir, const char *out_dir,
                                   const model_config *c) {
    char *path = path_join(model_dir, "generation_config.json");
    int have = path_exists(path);
    free(path);
    if (have) return copy_file(model_dir, out_dir, "generation_config.json", 1);
    cJSON *g = cJSON_CreateObject();
    if (c->bos_id >= 0) cJSON_AddNumberToObject(g, "bos_token_id", c->bos_id);
    if (c->n_eos == 1) cJSON_AddNumberToObject(g, "eos_token_id", c->eos_ids[0]);
    if (c->n_eos > 1) {
        cJSON *a = cJSON_AddArrayToObject(g, "eos_token_id");
        for (int i = 0; i < c->n_eos; i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber(c->eos_ids[i]));
    }
    cJSON_AddBoolToObject(g, "do_sample", 1);
    cJSON_AddNumberToObject(g, "temperature", 0.6);
    cJSON_AddNumberToObject(g, "top_p", 0.95);
    int rc = json_write_file(out_dir, "generation_config.json", g);
    cJSON_Delete(g);
    return rc;
}

int export_hf(const char *model_dir, const char *out_dir) {
    model_config c;
    TRY(model_config_load(&c, model_dir));
    if (c.arch != ARCH_QWEN2 && c.arch != ARCH_LLAMA)
        return err_fail(R1_EINPUT, model_dir, "cannot export model_type \"%s\" (qwen2 and llama "
                        "models can be)", c.model_type);
    char *tok = path_join(model_dir, "tokenizer.json");
    int have_tok = path_exists(tok);
    free(tok);
    if (!have_tok) {
        err_fail(R1_EINPUT, model_dir, "missing tokenizer.json");
        return err_hint("copy the tokenizer files of the base model into the checkpoint directory");
    }
    TRY(dir_create(out_dir));
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(model_dir, a) && realpath(out_dir, b) && strcmp(a, b) == 0)
        return err_fail(R1_EINPUT, out_dir, "is the model directory itself; choose another --out");
    safetensors st;
    TRY(safetensors_open(&st, model_dir));
    st_entry *e = xcalloc((size_t)st.n, sizeof *e);
    void **owned = xcalloc((size_t)st.n, sizeof *owned);
    int rc = R1_OK;
    for (int i = 0; i < st.n && !rc; i++) {
        const st_tensor *t = &st.tensors[i];
        if (t->dt != DTYPE_F32 && t->dt != DTYPE_F16 && t->dt != DTYPE_BF16) {
            rc = err_fail(R1_EINPUT, safetensors_shard_path(&st, t),
                          "tensor \"%s\" has dtype %s; "
                          "export handles F32, F16 and BF16 checkpoints",
                          t->name, dtype_name(t->dt));
            break;
        }
        e[i].name = t->name;
        e[i].dt = DTYPE_BF16;
        e[i].ndim = t->ndim;
        memcpy(e[i].shape, t->shape, sizeof t->shape);
        if (t->dt == DTYPE_BF16) {
            e[i].data = t->data;
            continue;
        }
        float *f = xmalloc(sizeof(float) * (size_t)t->numel);
        dtype_to_f32(f, t->data, t->dt, (size_t)t->numel);
        uint16_t *h = xmalloc(sizeof(uint16_t) * (size_t)t->numel);
        dtype_from_f32(h, f, DTYPE_BF16, (size_t)t->numel);
        free(f);
        owned[i] = h;
        e[i].data = h;
    }
    if (!rc) rc = safetensors_write_dir(out_dir, e, st.n, (size_t)5 << 30);
    if (!rc) rc = write_config(model_dir, out_dir);
    if (!rc) rc = write_generation_config(model_dir, out_dir, &c);
    static const char *const tok_files[] = {"tokenizer_config.json", "special_tokens_map.json",
                                            "vocab.json", "merges.txt", "added_tokens.json"};
    if (!rc) rc = copy_file(model_dir, out_dir, "tokenizer.json", 1);
    for (size_t i = 0; i < sizeof tok_files / sizeof *tok_files && !rc; i++)
        rc = copy_file(model_dir, out_dir, tok_files[i], 0);
    if (!rc) rc = dir_sync(out_dir);
    if (!rc)
        fprintf(stderr, "export: wrote %s (%d tensors in bf16, config, generation config, "
                "tokenizer)\n", out_dir, st.n);
    for (int i = 0; i < st.n; i++) free(owned[i]);
    free(owned);
    free(e);
    safetensors_close(&st);
    return rc;
}
