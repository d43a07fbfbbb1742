#include "convert/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/tokenizer.h"

/* Pre-tokenizer regexes as the published tokenizer.json files spell them. */
static const char QWEN2_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char DS3_DIGITS[] = "\\p{N}{1,3}";
static const char DS3_CJK[] = "[一-龥぀-ゟ゠-ヿ]+";

enum { MAX_SPLITS = 8 };

typedef struct {
    const char *split[MAX_SPLITS];
    int n_split;
    int byte_level, byte_level_regex, other;
    const char *other_type;
} pre_shape;

static void walk_pre(const cJSON *p, pre_shape *s) {
    if (!cJSON_IsObject(p)) return;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "";
    if (strcmp(t, "Sequence") == 0) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"))
            walk_pre(it, s);
    } else if (strcmp(t, "Split") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        if (cJSON_IsString(re) && s->n_split < MAX_SPLITS)
            s->split[s->n_split++] = re->valuestring;
        else
            s->other++, s->other_type = "Split without a Regex pattern";
    } else if (strcmp(t, "ByteLevel") == 0) {
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
        s->byte_level = 1;
        s->byte_level_regex = !cJSON_IsBool(ur) || cJSON_IsTrue(ur);
    } else {
        s->other++;
        s->other_type = t;
    }
}

int vocab_detect_pre(const char *tokenizer_json, const char **name) {
    *name = NULL;
    cJSON *root;
    TRY(json_parse_file(&root, tokenizer_json, 256u << 20));
    pre_shape s = {0};
    walk_pre(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &s);
    int rc = R1_OK;
    if (s.other) {
        rc = err_fail(R1_EINPUT, tokenizer_json, "pre_tokenizer holds %s, which no llama.cpp "
                      "pre-tokenizer reproduces", s.other_type);
    } else if (!s.byte_level) {
        rc = err_fail(R1_EINPUT, tokenizer_json, "pre_tokenizer has no ByteLevel step: only "
                      "byte-level BPE tokenizers export to GGUF (tokenizer.ggml.model gpt2)");
    } else if (s.n_split == 0) {
        if (s.byte_level_regex) *name = "gpt-2";
        else rc = err_fail(R1_EINPUT, tokenizer_json, "pre_tokenizer splits no words (ByteLevel "
                           "with use_regex false and no Split)");
    } else if (s.byte_level_regex) {
        rc = err_fail(R1_EINPUT, tokenizer_json, "pre_tokenizer splits twice (Split patterns and "
                      "ByteLevel's own regex), which no llama.cpp pre-tokenizer does");
    } else if (s.n_split == 1 && strcmp(s.split[0], QWEN2_PATTERN) == 0) {
        *name = "qwen2";
    } else if (s.n_split == 1 && strcmp(s.split[0], LLAMA3_PATTERN) == 0) {
        *name = "llama-bpe";
    } else if (s.n_split == 3 && strcmp(s.split[0], DS3_DIGITS) == 0 &&
               strcmp(s.split[1], DS3_CJK) == 0) {
        *name = "deepseek-v3";
    } else {
        rc = err_fail(R1_EINPUT, tokenizer_json, "unrecognised pre-tokenizer regex \"%.120s%s\"%s",
                      s.split[0], strlen(s.split[0]) > 120 ? "..." : "",
                      s.n_split > 1 ? " (and more splits)" : "");
    }
    cJSON_Delete(root);
    if (rc)
        err_hint("choose llama.cpp's pre-tokenizer with --pre NAME (e.g. qwen2, llama-bpe, "
                 "deepseek-v3, gpt-2) if you know it matches");
    return rc;
}

/* convert_hf_to_gguf's does_token_look_special for the shapes the R1 and Qwen/Llama families
 * use. */
static int looks_special(const char *t) {
    size_t n = strlen(t);
    static const char fw_open[] = "<｜", fw_close[] = "｜>";
    if (n >= 4 && strncmp(t, "<|", 2) == 0 && strcmp(t + n - 2, "|>") == 0) return 1;
    if (n >= 2 * sizeof fw_open - 2 && strncmp(t, fw_open, sizeof fw_open - 1) == 0 &&
        strcmp(t + n - (sizeof fw_close - 1), fw_close) == 0)
        return 1;
    return 0;
}

int vocab_put(gguf_writer *w, const char *model_dir, const model_config *cfg, const char *pre) {
    char *json_path = path_join(model_dir, "tokenizer.json");
    if (!path_exists(json_path)) {
        err_fail(R1_EINPUT, model_dir, "missing tokenizer.json");
        free(json_path);
        return err_hint("a GGUF file carries its tokenizer: copy tokenizer.json and "
                        "tokenizer_config.json from the base model into the model directory");
    }
    int rc = R1_OK;
    const char *pre_name = pre;
    if (!pre_name) rc = vocab_detect_pre(json_path, &pre_name);
    tokenizer *tok = NULL;
    if (!rc) rc = tokenizer_load(&tok, model_dir);
    free(json_path);
    if (rc) return rc;
    const int64_t V = cfg->vocab_size;
    const int n_tok = tokenizer_vocab_size(tok);
    if (n_tok > V) {
        err_fail(R1_EINPUT, tokenizer_path(tok), "the tokenizer has %d tokens but config.json "
                 "vocab_size is %lld", n_tok, (long long)V);
        tokenizer_free(tok);
        return err_hint("the embedding must have a row for every token id");
    }
    char **tokens = xmalloc(sizeof(char *) * (size_t)V);
    int32_t *types = xmalloc(sizeof(int32_t) * (size_t)V);
    int n_pad = 0;
    for (int64_t i = 0; i < V; i++) {
        const char *t = i < n_tok ? tokenizer_token_text(tok, (int)i) : NULL;
        if (!t) {
            tokens[i] = xasprintf("[PAD%lld]", (long long)i);
            types[i] = TOKEN_UNUSED;
            n_pad++;
            continue;
        }
        tokens[i] = xstrdup(t);
        if (!tokenizer_is_added(tok, (int)i))
            types[i] = TOKEN_NORMAL;
        else
            types[i] = tokenizer_is_special(tok, (int)i) || looks_special(t) ? TOKEN_CONTROL
                                                                               : TOKEN_USER_DEFINED;
    }
    int n_merges = 0;
    const char *const *merges = tokenizer_merges(tok, &n_merges);
    gguf_put_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_put_str(w, "tokenizer.ggml.pre", pre_name);
    gguf_put_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, V);
    gguf_put_arr_i32(w, "tokenizer.ggml.token_type", types, V);
    gguf_put_arr_str(w, "tokenizer.ggml.merges", merges, n_merges);
    int bos = tokenizer_bos_id(tok), eos = tokenizer_eos_id(tok), pad = tokenizer_pad_id(tok);
    if (bos < 0) bos = cfg->bos_id;
    if (eos < 0 && cfg->n_eos > 0) eos = cfg->eos_ids[0];
    if (pad < 0) pad = cfg->pad_id;
    if (bos >= 0 && bos < V) gguf_put_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (eos >= 0 && eos < V) gguf_put_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    if (pad >= 0 && pad < V) gguf_put_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
    gguf_put_bool(w, "tokenizer.ggml.add_bos_token", tokenizer_add_bos(tok));
    const char *tmpl = tokenizer_chat_template(tok);
    if (tmpl) gguf_put_str(w, "tokenizer.chat_template", tmpl);
    if (n_pad)
        fprintf(stderr, "export: padded the vocabulary from %d tokens to config.json's %lld with "
                "[PAD] tokens\n", n_tok, (long long)V);
    for (int64_t i = 0; i < V; i++) free(tokens[i]);
    free(tokens);
    free(types);
    tokenizer_free(tok);
    return R1_OK;
}
