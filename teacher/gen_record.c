/* One trace record from a finished sample: ids, decoded text split at </think>, finish reason,
 * teacher and sampling settings. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "datasets/traces.h"
#include "teacher/generate.h"

static cJSON *int_array(const int *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* The generated text as the HF tokenizer decodes it: special tokens kept, a final eos dropped,
 * ids the tokenizer does not know skipped (a model's vocabulary may be padded past the
 * tokenizer's, and HF decode skips such ids). */
static char *decode_completion(const tokenizer *tok, const engine_result *res) {
    int n = res->n_tokens;
    if (res->finish == ENGINE_EOS && n > 0) n--;
    const int V = tokenizer_vocab_size(tok);
    int *ids = xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1)), k = 0;
    for (int i = 0; i < n; i++)
        if (res->tokens[i] >= 0 && res->tokens[i] < V && tokenizer_token_text(tok, res->tokens[i]))
            ids[k++] = res->tokens[i];
    char *text = NULL;
    size_t len;
    if (tokenizer_decode(tok, ids, k, 0, &text, &len) != R1_OK) {
        free(text);
        text = NULL;
    }
    free(ids);
    return text;
}

cJSON *gen_record_build(const gen_record_context *c, const prompt_item *p, const int *prompt_ids,
                        int n_prompt, const engine_result *res, const char *key) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", key);
    cJSON_AddStringToObject(o, "prompt_id", p->id);
    cJSON_AddNumberToObject(o, "line", (double)p->line);
    cJSON_AddNumberToObject(o, "sample", res->req->sample);
    if (p->kind == PROMPT_TEXT)
        cJSON_AddItemToObject(o, "prompt", cJSON_Duplicate(p->value, 1));
    else if (p->kind == PROMPT_MESSAGES)
        cJSON_AddItemToObject(o, "messages", cJSON_Duplicate(p->value, 1));
    char *text = c->tok ? decode_completion(c->tok, res) : NULL;
    if (text) {
        char *reasoning, *answer;
        int closed;
        trace_split_think(text, &reasoning, &answer, &closed);
        cJSON_AddStringToObject(o, "reasoning", reasoning);
        cJSON_AddStringToObject(o, "answer", answer);
        cJSON_AddStringToObject(o, "text", text);
        cJSON_AddBoolToObject(o, "think_closed", closed);
        free(reasoning);
        free(answer);
        free(text);
    }
    cJSON_AddItemToObject(o, "prompt_token_ids", int_array(prompt_ids, n_prompt));
    cJSON_AddItemToObject(o, "completion_token_ids", int_array(res->tokens, res->n_tokens));
    cJSON_AddNumberToObject(o, "prompt_tokens", n_prompt);
    cJSON_AddNumberToObject(o, "completion_tokens", res->n_tokens);
    const int stopped = res->finish == ENGINE_EOS || res->finish == ENGINE_STOP_STRING;
    cJSON_AddStringToObject(o, "finish_reason", stopped ? "stop" : "length");
    cJSON_AddStringToObject(o, "stop_reason", engine_finish_name(res->finish));
    if (res->finish == ENGINE_STOP_STRING)
        cJSON_AddStringToObject(o, "stop_string", c->stop[res->stop_index]);
    cJSON *t = cJSON_AddObjectToObject(o, "teacher");
    cJSON_AddStringToObject(t, "name", c->teacher_name);
    cJSON_AddStringToObject(t, "config_hash", c->config_hash);
    cJSON *s = cJSON_AddObjectToObject(o, "sampling");
    cJSON_AddNumberToObject(s, "temperature", c->sp->temperature);
    cJSON_AddNumberToObject(s, "top_p", c->sp->top_p);
    cJSON_AddNumberToObject(s, "top_k", c->sp->top_k);
    cJSON_AddNumberToObject(s, "max_new_tokens", c->max_new_tokens);
    cJSON_AddNumberToObject(s, "seed", (double)c->seed);
    if (p->gold) cJSON_AddItemToObject(o, "gold", cJSON_Duplicate(p->gold, 1));
    if (res->k) cJSON_AddNumberToObject(o, "logprobs", res->k);
    return o;
}
