/* JSONL prompts: parsing, validation, duplicate ids, rank slicing (see prompts.h). */
#include "datasets/prompts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/hash.h"
#include "core/json.h"
#include "datasets/jsonl.h"

void prompt_item_free(prompt_item *it) {
    free(it->id);
    cJSON_Delete(it->value);
    cJSON_Delete(it->gold);
    free(it->tokens);
    memset(it, 0, sizeof *it);
}

static int bad(const char *where, const char *why) { return err_fail(R1_EINPUT, where, "%s", why); }

static int check_messages(const cJSON *arr, const char *where) {
    int n = 0, users = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, arr) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role) || !cJSON_IsString(content))
            return bad(where, "each message needs string \"role\" and \"content\"");
        const char *r = role->valuestring;
        if (strcmp(r, "system") != 0 && strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0)
            return bad(where, "a message role must be system, user or assistant");
        users += strcmp(r, "user") == 0;
        n++;
    }
    if (n == 0 || users == 0) return bad(where, "the conversation has no user message");
    return R1_OK;
}

int prompts_parse_line(prompt_item *it, const char *text, size_t len, int64_t line,
                       const prompt_options *o, const char *where) {
    memset(it, 0, sizeof *it);
    it->line = line;
    const char *w = where;
    cJSON *obj;
    const char *end = NULL;
    obj = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!obj) {
        size_t col = end && end >= text && end <= text + len ? (size_t)(end - text) + 1 : 1;
        return err_fail(R1_EINPUT, w, "invalid JSON at column %zu", col);
    }
    int rc = R1_OK;
    for (const char *p = end; p && p < text + len && !rc; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            rc = err_fail(R1_EINPUT, w, "text after the JSON object");
    if (!rc && !cJSON_IsObject(obj)) rc = err_fail(R1_EINPUT, w, "not a JSON object");
    const cJSON *v = rc ? NULL : cJSON_GetObjectItemCaseSensitive(obj, o->prompt_field);
    if (!rc && (!v || cJSON_IsNull(v)))
        rc = err_fail(R1_EINPUT, w, "no \"%s\" field (the prompt; see --prompt-field)",
                      o->prompt_field);
    if (!rc) {
        if (cJSON_IsString(v)) {
            it->kind = PROMPT_TEXT;
            if (!v->valuestring[0]) rc = bad(where, "the prompt is empty");
        } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0 &&
                   cJSON_IsNumber(cJSON_GetArrayItem(v, 0))) {
            it->kind = PROMPT_TOKENS;
            int n = cJSON_GetArraySize(v), k = 0;
            it->tokens = xmalloc(sizeof(int) * (size_t)n);
            const cJSON *t;
            cJSON_ArrayForEach(t, v) {
                if (!json_is_int(t) || t->valuedouble < 0 || t->valuedouble > 2147483647.0) {
                    rc = bad(where, "token ids must be integers >= 0");
                    break;
                }
                it->tokens[k++] = (int)t->valuedouble;
            }
            it->n_tokens = k;
        } else if (cJSON_IsArray(v)) {
            it->kind = PROMPT_MESSAGES;
            rc = check_messages(v, where);
        } else {
            rc = err_fail(R1_EINPUT, w,
                          "\"%s\" must be a string, an array of messages or an array of token ids",
                          o->prompt_field);
        }
    }
    if (!rc && o->id_field) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, o->id_field);
        if (cJSON_IsString(id) && id->valuestring[0])
            it->id = xstrdup(id->valuestring);
        else if (id && json_is_int(id))
            it->id = xasprintf("%lld", (long long)id->valuedouble);
        else
            rc = err_fail(R1_EINPUT, w, "no \"%s\" field holding a string or integer id",
                          o->id_field);
    } else if (!rc) {
        it->id = xasprintf("%lld", (long long)line);
    }
    if (!rc) {
        it->value = cJSON_Duplicate(v, 1);
        const cJSON *g = o->gold_field ? cJSON_GetObjectItemCaseSensitive(obj, o->gold_field) : NULL;
        if (g && !cJSON_IsNull(g)) it->gold = cJSON_Duplicate(g, 1);
    }
    cJSON_Delete(obj);
    if (rc) prompt_item_free(it);
    it->line = line;
    return rc;
}

typedef struct {
    uint64_t h;
    int64_t line;
    char *id;
} id_entry;

static int cmp_id(const void *a, const void *b) {
    const id_entry *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    int c = strcmp(x->id, y->id);
    if (c) return c;
    return (x->line > y->line) - (x->line < y->line);
}

void prompts_free(prompt_set *ps) {
    for (int i = 0; i < ps->n; i++) prompt_item_free(&ps->items[i]);
    free(ps->items);
    memset(ps, 0, sizeof *ps);
}

/* Drops the later of each pair of lines sharing an id (skip_bad), or fails naming both. */
static int check_duplicates(id_entry *ids, int64_t n, const char *path,
                            const prompt_options *o, int64_t **dropped, int64_t *n_dropped) {
    if (n > 1) qsort(ids, (size_t)n, sizeof *ids, cmp_id);
    *dropped = NULL;
    *n_dropped = 0;
    for (int64_t i = 1; i < n; i++) {
        if (ids[i].h != ids[i - 1].h || strcmp(ids[i].id, ids[i - 1].id) != 0) continue;
        if (!o->skip_bad) {
            char w[600];
            snprintf(w, sizeof w, "%s:%lld", path, (long long)ids[i].line);
            err_fail(R1_EINPUT, w, "id \"%s\" repeats line %lld's", ids[i].id,
                     (long long)ids[i - 1].line);
            return err_hint("ids must be unique; fix the file or pass --skip-bad to skip repeats");
        }
        *dropped = xrealloc(*dropped, sizeof(int64_t) * (size_t)(*n_dropped + 1));
        (*dropped)[(*n_dropped)++] = ids[i].line;
        ids[i].line = ids[i - 1].line; /* so a third repeat is compared with the first */
    }
    return R1_OK;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int prompts_load(prompt_set *ps, const char *path, const prompt_options *o) {
    memset(ps, 0, sizeof *ps);
    CHECK(o->world_size >= 1 && o->rank >= 0 && o->rank < o->world_size);
    TRY(hash_file(path, &ps->hash, &ps->bytes));
    jsonl_reader *r;
    TRY(jsonl_open(&r, path));
    id_entry *ids = NULL;
    int64_t n_ids = 0, cap_ids = 0;
    int cap = 0, rc = R1_OK;
    for (;;) {
        const char *text;
        size_t len;
        int lrc = jsonl_next_line(r, &text, &len);
        prompt_item it;
        if (lrc == R1_OK && !text) break;
        if (lrc == R1_OK)
            lrc = prompts_parse_line(&it, text, len, jsonl_line(r), o, jsonl_where(r));
        if (lrc) {
            if (!o->skip_bad || lrc != R1_EINPUT) {
                rc = lrc;
                if (lrc == R1_EINPUT)
                    err_hint("fix the line, or pass --skip-bad to skip bad lines and count them");
                break;
            }
            ps->bad++;
            continue;
        }
        if (n_ids == cap_ids) {
            cap_ids = cap_ids ? 2 * cap_ids : 1024;
            ids = xrealloc(ids, sizeof *ids * (size_t)cap_ids);
        }
        ids[n_ids++] = (id_entry){.h = hash_fnv1a64(it.id, strlen(it.id)), .line = it.line,
                                  .id = xstrdup(it.id)};
        if ((it.line - 1) % o->world_size != o->rank) {
            prompt_item_free(&it);
            continue;
        }
        if (ps->n == cap) {
            cap = cap ? 2 * cap : 256;
            ps->items = xrealloc(ps->items, sizeof *ps->items * (size_t)cap);
        }
        ps->items[ps->n++] = it;
    }
    ps->lines = jsonl_line(r);
    jsonl_close(r);
    int64_t *dropped = NULL, n_dropped = 0;
    if (!rc) rc = check_duplicates(ids, n_ids, path, o, &dropped, &n_dropped);
    for (int64_t i = 0; i < n_ids; i++) free(ids[i].id);
    free(ids);
    if (!rc && n_dropped) { /* remove repeated ids from this rank's items */
        qsort(dropped, (size_t)n_dropped, sizeof *dropped, cmp_i64);
        int k = 0;
        for (int i = 0; i < ps->n; i++) {
            int64_t line = ps->items[i].line;
            if (bsearch(&line, dropped, (size_t)n_dropped, sizeof *dropped, cmp_i64))
                prompt_item_free(&ps->items[i]);
            else
                ps->items[k++] = ps->items[i];
        }
        ps->n = k;
        ps->bad += n_dropped;
    }
    free(dropped);
    if (rc) {
        uint64_t h = ps->hash, b = ps->bytes;
        prompts_free(ps);
        ps->hash = h;
        ps->bytes = b;
        return rc;
    }
    ps->valid = n_ids - n_dropped;
    return R1_OK;
}
