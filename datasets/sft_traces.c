/* Trace directories as SFT data: each record's prompt as the teacher saw it (the chat format's
 * rendering, with the run's instruction appended to the last user turn), then the teacher's
 * completion, learned. See datasets/sft.h. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "datasets/sft.h"
#include "datasets/sft_chat.h"
#include "datasets/traces.h"

int sft_is_trace_dir(const char *path) {
    if (!path_is_dir(path)) return 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));)
        found = strcmp(e->d_name, "manifest.json") == 0 ||
                (strncmp(e->d_name, "manifest-r", 10) == 0 && strstr(e->d_name, ".json"));
    closedir(d);
    return found;
}

static int *int_array(const cJSON *arr, int *n) {
    *n = cJSON_GetArraySize(arr);
    int *v = xmalloc(sizeof(int) * (size_t)(*n ? *n : 1));
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) v[i++] = json_is_int(it) ? (int)it->valuedouble : -1;
    return v;
}

/* The prompt messages of a record, with the instruction appended to the last user turn as
 * generate did. *msgs points into rec; *owned is the appended string to free. */
static int record_messages(const cJSON *rec, const char *instruction, const char *where,
                           chat_message **msgs, int *n, char **owned) {
    *owned = NULL;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(rec, "prompt");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec, "messages");
    int last_user = -1;
    if (cJSON_IsString(p)) {
        *msgs = xcalloc(1, sizeof **msgs);
        (*msgs)[0] = (chat_message){"user", p->valuestring};
        *n = 1;
        last_user = 0;
    } else if (cJSON_IsArray(m)) {
        *n = cJSON_GetArraySize(m);
        *msgs = xcalloc((size_t)(*n ? *n : 1), sizeof **msgs);
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, m) {
            const cJSON *r = cJSON_GetObjectItemCaseSensitive(it, "role");
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
            if (!cJSON_IsString(r) || !cJSON_IsString(c)) {
                free(*msgs);
                return err_fail(R1_EINPUT, where, "messages[%d] needs string role and content", i);
            }
            (*msgs)[i] = (chat_message){r->valuestring, c->valuestring};
            if (strcmp(r->valuestring, "user") == 0) last_user = i;
            i++;
        }
    } else {
        return err_fail(R1_EINPUT, where, "the record has neither a text \"prompt\" nor "
                        "\"messages\" (token-id prompts cannot be re-rendered for a student)");
    }
    if (instruction && last_user >= 0) {
        *owned = xasprintf("%s\n%s", (*msgs)[last_user].content, instruction);
        (*msgs)[last_user].content = *owned;
    }
    return R1_OK;
}

/* Uses the teacher's ids when the student renders and tokenizes the prompt to exactly them. */
static int try_teacher_ids(sft_chat **chat, const sft_options *o, const cJSON *rec,
                           const chat_message *msgs, int n_msgs, uint32_t vocab, int32_t **ids,
                           uint8_t **mask, int64_t *n) {
    chat_format fmt;
    const tokenizer *tok = sft_chat_tokenizer(chat, o, &fmt);
    if (!tok) return -1;
    int np, nc;
    int *pid = int_array(cJSON_GetObjectItemCaseSensitive(rec, "prompt_token_ids"), &np);
    int *cid = int_array(cJSON_GetObjectItemCaseSensitive(rec, "completion_token_ids"), &nc);
    char *text = NULL;
    int *mine = NULL, nm = 0, same = 0;
    if (chat_render(tok, fmt, msgs, n_msgs, 1, &text) == R1_OK &&
        tokenizer_encode(tok, text, strlen(text), 0, &mine, &nm) == R1_OK)
        same = nm == np && memcmp(mine, pid, sizeof(int) * (size_t)np) == 0;
    err_clear();
    for (int i = 0; same && i < nc; i++) same = cid[i] >= 0 && (uint32_t)cid[i] < vocab;
    if (same && nc > 0) {
        *n = (int64_t)np + nc;
        *ids = xmalloc(sizeof(int32_t) * (size_t)*n);
        *mask = xmalloc((size_t)*n);
        for (int i = 0; i < np; i++) (*ids)[i] = pid[i], (*mask)[i] = 0;
        for (int i = 0; i < nc; i++) (*ids)[np + i] = cid[i], (*mask)[np + i] = 1;
    }
    free(text);
    free(mine);
    free(pid);
    free(cid);
    return same && nc > 0;
}

int sft_read_traces(token_builder *b, const char *dir, const sft_options *o, sft_stats *st) {
    trace_reader *r;
    TRY(trace_reader_open(&r, dir));
    const trace_dir *td = trace_reader_dir(r);
    const char *instruction = NULL;
    if (td->n > 0) {
        const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(td->m[0].settings, "prompts");
        const cJSON *ins = cJSON_GetObjectItemCaseSensitive(prompts, "instruction");
        if (cJSON_IsString(ins)) instruction = ins->valuestring;
    }
    sft_chat *chat = NULL;
    trace_record rec = {0};
    int have = 1, rc = R1_OK;
    while (rc == R1_OK && (rc = trace_reader_next(r, &rec, &have)) == R1_OK && have) {
        char *where = xasprintf("%s: %s: %s.json", dir, rec.shard, rec.key);
        st->lines++;
        st->traces++;
        chat_message *msgs = NULL;
        int n_msgs = 0;
        char *owned = NULL;
        int32_t *ids = NULL;
        uint8_t *mask = NULL;
        int64_t n = 0;
        rc = record_messages(rec.rec, instruction, where, &msgs, &n_msgs, &owned);
        if (!rc) {
            int t = try_teacher_ids(&chat, o, rec.rec, msgs, n_msgs, b->vocab_size, &ids, &mask, &n);
            if (t < 0) {
                rc = err_status() ? err_status() : R1_EINPUT;
            } else if (t > 0) {
                st->teacher_ids++;
            } else {
                const cJSON *reasoning = cJSON_GetObjectItemCaseSensitive(rec.rec, "reasoning");
                const cJSON *answer = cJSON_GetObjectItemCaseSensitive(rec.rec, "answer");
                if (!cJSON_IsString(reasoning) || !cJSON_IsString(answer))
                    rc = err_fail(R1_EINPUT, where, "the record has no \"reasoning\" and \"answer\" text");
                else
                    rc = sft_chat_encode_turn(&chat, msgs, n_msgs, reasoning->valuestring,
                                              answer->valuestring, where, o, b->vocab_size, &ids,
                                              &mask, &n);
                st->conversations++;
            }
        }
        if (!rc) sft_add_example(b, o, st, ids, mask, n);
        if (!rc && o->flush && b->n_tokens >= o->flush_tokens) rc = o->flush(b, o->flush_ctx);
        free(ids);
        free(mask);
        free(owned);
        free(msgs);
        free(where);
    }
    trace_record_clear(&rec);
    sft_chat_free(chat);
    trace_reader_close(r);
    return rc;
}

int sft_read_input(token_builder *b, const char *path, const sft_options *o, sft_stats *st) {
    if (sft_is_trace_dir(path)) return sft_read_traces(b, path, o, st);
    if (path_is_dir(path)) {
        err_fail(R1_EINPUT, path, "a directory without a trace manifest");
        return err_hint("pass a trace directory (from generate or curate) or JSONL files");
    }
    return sft_read_jsonl(b, path, o, st);
}
