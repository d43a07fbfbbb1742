/* Conversations for SFT: the prompt is rendered by the chat format with the generation prompt
 * (for R1: "...<｜Assistant｜><think>\n"), exactly what the model sees at inference; the
 * completion is the assistant's reasoning and answer followed by the format's end-of-turn token.
 * Prompt and completion are tokenized separately and concatenated, so the mask boundary falls on
 * a token boundary; only the completion is learned.
 *
 * The chat template is not used for the assistant turn itself: R1's template strips the
 * reasoning from assistant messages (it is meant for history), which would train the student to
 * answer without thinking. */
#include "datasets/sft_chat.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"

struct sft_chat {
    tokenizer *tok;
    chat_format format;
    int end_id; /* the format's end-of-turn token */
};

static const char *end_token_text(chat_format f) {
    switch (f) {
    case CHAT_R1: return "<｜end▁of▁sentence｜>";
    case CHAT_CHATML: return "<|im_end|>";
    case CHAT_LLAMA3: return "<|eot_id|>";
    case CHAT_AUTO: break;
    }
    return NULL;
}

static int chat_init(sft_chat **state, const sft_options *o) {
    if (*state) return R1_OK;
    if (!o->tokenizer_dir) {
        err_fail(R1_EINPUT, "conversations", "a conversation needs the student's tokenizer.json");
        return err_hint("`pack --tokenizer DIR`, or train with a --model directory that holds "
                        "tokenizer.json");
    }
    sft_chat *c = xcalloc(1, sizeof *c);
    int rc = tokenizer_load(&c->tok, o->tokenizer_dir);
    c->format = o->format;
    if (!rc && c->format == CHAT_AUTO) rc = chat_detect(c->tok, &c->format);
    if (!rc) {
        const char *end = end_token_text(c->format);
        c->end_id = end ? tokenizer_token_id(c->tok, end) : -1;
        if (c->end_id < 0)
            rc = err_fail(R1_EINPUT, tokenizer_path(c->tok),
                          "the tokenizer has no \"%s\" token, which ends a %s assistant turn",
                          end ? end : "?", chat_format_name(c->format));
    }
    if (rc) {
        sft_chat_free(c);
        return rc;
    }
    *state = c;
    return R1_OK;
}

void sft_chat_free(sft_chat *c) {
    if (!c) return;
    if (c->tok) tokenizer_free(c->tok);
    free(c);
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }
static int ends_with(const char *s, const char *p) {
    size_t n = strlen(s), k = strlen(p);
    return n >= k && strcmp(s + n - k, p) == 0;
}

int sft_chat_encode_turn(sft_chat **state, const chat_message *msgs, int n_msgs,
                         const char *reasoning, const char *content, const char *where,
                         const sft_options *o, uint32_t vocab, int32_t **ids_out,
                         uint8_t **mask_out, int64_t *n_out) {
    TRY(chat_init(state, o));
    sft_chat *c = *state;
    char *prompt = NULL;
    int rc = chat_render(c->tok, c->format, msgs, n_msgs, 1, &prompt);
    if (rc) return err_context(where);
    /* The completion: reasoning in the R1 layout when it came separately. */
    char *completion = reasoning ? xasprintf("<think>\n%s\n</think>\n\n%s", reasoning, content)
                                 : xstrdup(content);
    const char *body = completion;
    /* The generation prompt may already open the reasoning block (R1's "<think>\n"). */
    if (ends_with(prompt, "<think>\n")) {
        if (starts_with(body, "<think>\n"))
            body += strlen("<think>\n");
        else if (starts_with(body, "<think>"))
            body += strlen("<think>");
    }
    int *p_ids = NULL, *c_ids = NULL, np = 0, nc = 0;
    rc = tokenizer_encode(c->tok, prompt, strlen(prompt), 0, &p_ids, &np);
    if (!rc) rc = tokenizer_encode(c->tok, body, strlen(body), 0, &c_ids, &nc);
    free(prompt);
    free(completion);
    if (rc) {
        free(p_ids);
        free(c_ids);
        return err_context(where);
    }
    const int64_t n = (int64_t)np + nc + 1;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)n);
    uint8_t *mask = xmalloc((size_t)n);
    for (int i = 0; i < np; i++) ids[i] = p_ids[i], mask[i] = 0;
    for (int i = 0; i < nc; i++) ids[np + i] = c_ids[i], mask[np + i] = 1;
    ids[n - 1] = c->end_id;
    mask[n - 1] = 1;
    free(p_ids);
    free(c_ids);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= vocab) {
            rc = err_fail(R1_EINPUT, where,
                          "the tokenizer produced id %d, outside the vocabulary [0, %u)", ids[i],
                          vocab);
            err_hint("the tokenizer does not match the model");
            free(ids);
            free(mask);
            return rc;
        }
    *ids_out = ids;
    *mask_out = mask;
    *n_out = n;
    return R1_OK;
}

int sft_text_encode(sft_chat **state, const char *text, const char *where, const sft_options *o,
                    uint32_t vocab, int32_t **ids_out, uint8_t **mask_out, int64_t *n_out) {
    TRY(chat_init(state, o));
    sft_chat *c = *state;
    int *t_ids = NULL, nt = 0;
    if (tokenizer_encode(c->tok, text, strlen(text), 0, &t_ids, &nt)) return err_context(where);
    /* A document of language-model text: BOS when the tokenizer has one, the text, EOS. */
    const int bos = tokenizer_bos_id(c->tok), eos = tokenizer_eos_id(c->tok);
    const int64_t n = (int64_t)nt + (bos >= 0) + (eos >= 0);
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    uint8_t *mask = xmalloc((size_t)(n ? n : 1));
    int64_t k = 0;
    if (bos >= 0) ids[k++] = bos;
    for (int i = 0; i < nt; i++) ids[k++] = t_ids[i];
    if (eos >= 0) ids[k++] = eos;
    free(t_ids);
    for (int64_t i = 0; i < n; i++) {
        mask[i] = 1;
        if (ids[i] < 0 || (uint32_t)ids[i] >= vocab) {
            err_fail(R1_EINPUT, where, "the tokenizer produced id %d, outside the vocabulary "
                     "[0, %u)", ids[i], vocab);
            free(ids);
            free(mask);
            return err_hint("the tokenizer does not match the model");
        }
    }
    *ids_out = ids;
    *mask_out = mask;
    *n_out = n;
    return R1_OK;
}

const tokenizer *sft_chat_tokenizer(sft_chat **state, const sft_options *o, chat_format *format) {
    if (chat_init(state, o)) return NULL;
    if (format) *format = (*state)->format;
    return (*state)->tok;
}

int sft_chat_encode(sft_chat **state, const cJSON *root, const char *where, const sft_options *o,
                    uint32_t vocab, int32_t **ids, uint8_t **mask, int64_t *n) {
    const cJSON *arr = NULL;
    if (json_get_arr(root, "messages", &arr, where) < 0) return R1_EINPUT;
    const int count = cJSON_GetArraySize(arr);
    if (count < 2)
        return err_fail(R1_EINPUT, where, "\"messages\" needs a prompt and an assistant turn");
    chat_message *msgs = xcalloc((size_t)count, sizeof *msgs);
    const char *reasoning = NULL;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        const char *role = NULL, *content = NULL;
        if (!cJSON_IsObject(it) || json_get_str(it, "role", &role, where) <= 0 ||
            json_get_str(it, "content", &content, where) <= 0) {
            free(msgs);
            return err_fail(R1_EINPUT, where,
                            "messages[%d] needs string \"role\" and \"content\"", i);
        }
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")) {
            free(msgs);
            return err_fail(R1_EINPUT, where, "messages[%d] has role \"%s\" (system, user or "
                            "assistant expected)", i, role);
        }
        msgs[i].role = role;
        msgs[i].content = content;
        if (i == count - 1 && json_get_str(it, "reasoning_content", &reasoning, where) < 0) {
            free(msgs);
            return R1_EINPUT;
        }
        i++;
    }
    if (strcmp(msgs[count - 1].role, "assistant") != 0) {
        const char *last = msgs[count - 1].role; /* points into the JSON, not msgs */
        free(msgs);
        return err_fail(R1_EINPUT, where, "the last message must be the assistant turn to learn "
                        "(it is \"%s\")", last);
    }
    int rc = sft_chat_encode_turn(state, msgs, count - 1, reasoning, msgs[count - 1].content,
                                  where, o, vocab, ids, mask, n);
    free(msgs);
    return rc;
}
