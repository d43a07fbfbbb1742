/* Reading SFT examples from JSONL (see datasets/sft.h for the record forms). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "datasets/sft.h"
#include "datasets/sft_chat.h"

void sft_add_example(token_builder *b, const sft_options *o, sft_stats *st, const int32_t *ids,
                     const uint8_t *mask, int64_t n) {
    if (o->max_len > 0 && n > o->max_len) {
        if (!o->truncate) {
            st->dropped_long++;
            return;
        }
        st->truncated++;
        n = o->max_len;
    }
    /* The first token is never predicted, so its mask bit carries nothing. */
    int64_t loss = 0;
    for (int64_t i = 1; i < n; i++) loss += mask[i];
    if (loss == 0) {
        st->no_loss++;
        return;
    }
    token_builder_add(b, ids, mask, n);
    if (b->mask[b->n_tokens - n]) { /* stored as 0, so the shard's counts say what is learned */
        b->mask[b->n_tokens - n] = 0;
        b->n_loss--;
    }
    st->examples++;
    st->tokens += n;
    st->loss_tokens += loss;
}

/* {"input_ids": [...], "loss_mask": [...]} */
static int read_pretokenized(const cJSON *root, const char *where, uint32_t vocab, int32_t **ids,
                             uint8_t **mask, int64_t *n) {
    const cJSON *arr = NULL, *marr = NULL;
    if (json_get_arr(root, "input_ids", &arr, where) < 0) return R1_EINPUT;
    if (json_get_arr(root, "loss_mask", &marr, where) < 0) return R1_EINPUT;
    int64_t len = cJSON_GetArraySize(arr);
    if (len == 0) return err_fail(R1_EINPUT, where, "\"input_ids\" is empty");
    if (marr && cJSON_GetArraySize(marr) != len)
        return err_fail(R1_EINPUT, where, "\"loss_mask\" has %d entries, \"input_ids\" %lld",
                        cJSON_GetArraySize(marr), (long long)len);
    int32_t *v = xmalloc(sizeof(int32_t) * (size_t)len);
    uint8_t *m = xmalloc((size_t)len);
    int64_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!json_is_int(it) || it->valuedouble < 0 || it->valuedouble >= (double)vocab) {
            free(v);
            free(m);
            if (!json_is_int(it))
                return err_fail(R1_EINPUT, where, "input_ids[%lld] is not an integer",
                                (long long)i);
            err_fail(R1_EINPUT, where, "token id %.0f (input_ids[%lld]) is outside the vocabulary "
                     "[0, %u)", it->valuedouble, (long long)i, vocab);
            return err_hint("the ids must come from the student's tokenizer");
        }
        v[i++] = (int32_t)it->valuedouble;
    }
    i = 0;
    if (marr) {
        cJSON_ArrayForEach(it, marr) {
            int ok = cJSON_IsBool(it) || (json_is_int(it) && (it->valuedouble == 0 ||
                                                              it->valuedouble == 1));
            if (!ok) {
                free(v);
                free(m);
                return err_fail(R1_EINPUT, where, "loss_mask[%lld] is not 0, 1, true or false",
                                (long long)i);
            }
            m[i++] = cJSON_IsBool(it) ? (uint8_t)cJSON_IsTrue(it) : (uint8_t)it->valuedouble;
        }
    } else {
        memset(m, 1, (size_t)len);
    }
    *ids = v;
    *mask = m;
    *n = len;
    return R1_OK;
}

/* One JSONL record (k bytes, no newline) at line `lineno` of `path`. */
static int read_record(token_builder *b, const char *line, size_t k, const char *path,
                       int64_t lineno, const sft_options *o, sft_stats *st, sft_chat **chat) {
    while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r' || line[k - 1] == ' ' ||
                     line[k - 1] == '\t'))
        k--;
    if (k == 0) return R1_OK;
    if (memchr(line, 0, k))
        return err_fail(R1_EINPUT, path, "line %lld holds a NUL byte", (long long)lineno);
    st->lines++;
    char *where = xasprintf("%s: line %lld", path, (long long)lineno);
    cJSON *root;
    int rc = json_parse(&root, line, k, where);
    if (rc) {
        free(where);
        return rc;
    }
    int32_t *ids = NULL;
    uint8_t *mask = NULL;
    int64_t n = 0;
    if (!cJSON_IsObject(root)) {
        rc = err_fail(R1_EINPUT, where, "expected a JSON object");
    } else if (cJSON_GetObjectItemCaseSensitive(root, "input_ids")) {
        rc = read_pretokenized(root, where, b->vocab_size, &ids, &mask, &n);
    } else if (cJSON_GetObjectItemCaseSensitive(root, "messages")) {
        rc = sft_chat_encode(chat, root, where, o, b->vocab_size, &ids, &mask, &n);
        st->conversations++;
    } else {
        rc = err_fail(R1_EINPUT, where, "expected \"input_ids\" or \"messages\"");
        err_hint("each line is {\"messages\": [...]} or {\"input_ids\": [...], "
                 "\"loss_mask\": [...]}");
    }
    if (rc == R1_OK) sft_add_example(b, o, st, ids, mask, n);
    if (rc == R1_OK && o->flush && b->n_tokens >= o->flush_tokens) rc = o->flush(b, o->flush_ctx);
    free(ids);
    free(mask);
    cJSON_Delete(root);
    free(where);
    return rc;
}

int sft_read_jsonl(token_builder *b, const char *path, const sft_options *o, sft_stats *st) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_fail(R1_EINPUT, path, "cannot open: %s", strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t lineno = 0;
    int rc = R1_OK;
    sft_chat *chat = NULL;
    while (rc == R1_OK && (len = getline(&line, &cap, f)) >= 0)
        rc = read_record(b, line, (size_t)len, path, ++lineno, o, st, &chat);
    if (rc == R1_OK && ferror(f)) rc = err_fail(R1_ERUNTIME, path, "read error");
    free(line);
    fclose(f);
    sft_chat_free(chat);
    return rc;
}

int sft_read_buffer(token_builder *b, const char *data, size_t len, const char *where,
                    const sft_options *o, sft_stats *st) {
    int rc = R1_OK;
    int64_t lineno = 0;
    sft_chat *chat = NULL;
    for (size_t i = 0; i < len && rc == R1_OK;) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t k = nl ? (size_t)(nl - (data + i)) : len - i;
        rc = read_record(b, data + i, k, where, ++lineno, o, st, &chat);
        i += k + 1;
    }
    sft_chat_free(chat);
    return rc;
}
