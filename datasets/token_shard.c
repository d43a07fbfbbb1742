#include "datasets/token_shard.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"

uint64_t fnv1a64(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- builder ------------------------------------------------------------------------------ */

void token_builder_init(token_builder *b, uint32_t vocab_size, uint64_t tokenizer_id) {
    memset(b, 0, sizeof *b);
    b->vocab_size = vocab_size;
    b->tokenizer_id = tokenizer_id;
    b->cap_docs = 64;
    b->doc_off = xmalloc(sizeof(int64_t) * (size_t)(b->cap_docs + 1));
    b->doc_off[0] = 0;
}

void token_builder_add(token_builder *b, const int32_t *ids, const uint8_t *mask, int64_t n) {
    CHECK(n >= 1);
    if (b->n_docs == b->cap_docs) {
        b->cap_docs *= 2;
        b->doc_off = xrealloc(b->doc_off, sizeof(int64_t) * (size_t)(b->cap_docs + 1));
    }
    if (b->n_tokens + n > b->cap_tokens) {
        int64_t cap = b->cap_tokens ? b->cap_tokens : 4096;
        while (cap < b->n_tokens + n) cap *= 2;
        b->tokens = xrealloc(b->tokens, sizeof(int32_t) * (size_t)cap);
        b->mask = xrealloc(b->mask, (size_t)cap);
        b->cap_tokens = cap;
    }
    memcpy(b->tokens + b->n_tokens, ids, sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        CHECK(ids[i] >= 0 && (uint32_t)ids[i] < b->vocab_size && mask[i] <= 1);
        b->mask[b->n_tokens + i] = mask[i];
        b->n_loss += mask[i];
    }
    b->n_tokens += n;
    b->doc_off[++b->n_docs] = b->n_tokens;
}

void token_builder_reset(token_builder *b) {
    b->n_docs = b->n_tokens = b->n_loss = 0;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int token_builder_write(const token_builder *b, const char *path) {
    CHECK(b->n_docs >= 1);
    uint8_t h[TOKEN_SHARD_HEADER] = {0};
    memcpy(h, TOKEN_SHARD_MAGIC, 8);
    put_u32(h + 8, TOKEN_SHARD_VERSION);
    put_u32(h + 12, TOKEN_SHARD_HEADER);
    put_u64(h + 16, (uint64_t)b->n_docs);
    put_u64(h + 24, (uint64_t)b->n_tokens);
    put_u32(h + 32, b->vocab_size);
    put_u64(h + 40, b->tokenizer_id);
    put_u64(h + 48, (uint64_t)b->n_loss);
    atomic_file a;
    TRY(atomic_open(&a, path));
    atomic_write(&a, h, sizeof h);
    /* The arrays are written as the host holds them: this program assumes a little-endian host
     * (as do safetensors and GGUF readers here). */
    atomic_write(&a, b->doc_off, sizeof(int64_t) * (size_t)(b->n_docs + 1));
    atomic_write(&a, b->tokens, sizeof(int32_t) * (size_t)b->n_tokens);
    atomic_write(&a, b->mask, (size_t)b->n_tokens);
    return atomic_commit(&a);
}

void token_builder_free(token_builder *b) {
    free(b->doc_off);
    free(b->tokens);
    free(b->mask);
    memset(b, 0, sizeof *b);
}

/* ---- reader ------------------------------------------------------------------------------- */

int token_shard_parse(token_shard *s, const uint8_t *data, size_t size, const char *where) {
    memset(s, 0, sizeof *s);
    if (size < TOKEN_SHARD_HEADER || memcmp(data, TOKEN_SHARD_MAGIC, 8) != 0) {
        err_fail(R1_EINPUT, where, "not a token shard (no \"%s\" magic number)", TOKEN_SHARD_MAGIC);
        return err_hint("token shards are written by `r1-distill pack`");
    }
    if ((uintptr_t)data % 8)
        return err_fail(R1_EINPUT, where, "shard image is not 8-byte aligned");
    uint32_t version = get_u32(data + 8), hbytes = get_u32(data + 12);
    if (version != TOKEN_SHARD_VERSION)
        return err_fail(R1_EINPUT, where, "token shard version %u; this build reads version %d",
                        version, TOKEN_SHARD_VERSION);
    if (hbytes != TOKEN_SHARD_HEADER)
        return err_fail(R1_EINPUT, where, "header size %u, expected %d", hbytes,
                        TOKEN_SHARD_HEADER);
    uint64_t n_docs = get_u64(data + 16), n_tokens = get_u64(data + 24);
    uint32_t vocab = get_u32(data + 32), flags = get_u32(data + 36);
    uint64_t n_loss = get_u64(data + 48);
    if (flags != 0 || get_u64(data + 56) != 0)
        return err_fail(R1_EINPUT, where, "unknown flags or reserved bits set");
    if (vocab == 0 || vocab > (1u << 30))
        return err_fail(R1_EINPUT, where, "vocab_size %u is outside [1, 2^30]", vocab);
    /* Bounds before arithmetic: every count must fit in the file, so nothing below overflows. */
    if (n_docs == 0) return err_fail(R1_EINPUT, where, "the shard holds no examples");
    if (n_docs > size / 8 || n_tokens > size / 5 || n_tokens < n_docs)
        return err_fail(R1_EINPUT, where,
                        "counts (%llu examples, %llu tokens) do not fit a %zu-byte file",
                        (unsigned long long)n_docs, (unsigned long long)n_tokens, size);
    uint64_t need = TOKEN_SHARD_HEADER + 8 * (n_docs + 1) + 5 * n_tokens;
    if (need != size)
        return err_fail(R1_EINPUT, where, "file is %zu bytes; its counts say %llu", size,
                        (unsigned long long)need);
    const int64_t *off = (const int64_t *)(data + TOKEN_SHARD_HEADER);
    const int32_t *tok = (const int32_t *)(data + TOKEN_SHARD_HEADER + 8 * (n_docs + 1));
    const uint8_t *mask = (const uint8_t *)(tok + n_tokens);
    if (off[0] != 0 || (uint64_t)off[n_docs] != n_tokens)
        return err_fail(R1_EINPUT, where, "example offsets do not span the %llu tokens",
                        (unsigned long long)n_tokens);
    for (uint64_t d = 0; d < n_docs; d++)
        if (off[d + 1] <= off[d])
            return err_fail(R1_EINPUT, where, "example %llu is empty or its offset goes backwards",
                            (unsigned long long)d);
    uint64_t loss = 0;
    for (uint64_t i = 0; i < n_tokens; i++) {
        if (tok[i] < 0 || (uint32_t)tok[i] >= vocab)
            return err_fail(R1_EINPUT, where, "token %llu has id %d, outside the vocabulary [0, %u)",
                            (unsigned long long)i, tok[i], vocab);
        if (mask[i] > 1)
            return err_fail(R1_EINPUT, where, "loss mask of token %llu is %u, not 0 or 1",
                            (unsigned long long)i, mask[i]);
        loss += mask[i];
    }
    if (loss != n_loss)
        return err_fail(R1_EINPUT, where, "header says %llu loss tokens, the masks hold %llu",
                        (unsigned long long)n_loss, (unsigned long long)loss);
    s->n_docs = (int64_t)n_docs;
    s->n_tokens = (int64_t)n_tokens;
    s->n_loss = (int64_t)n_loss;
    s->vocab_size = vocab;
    s->tokenizer_id = get_u64(data + 40);
    s->doc_off = off;
    s->tokens = tok;
    s->mask = mask;
    s->path = xstrdup(where);
    return R1_OK;
}

int token_shard_open(token_shard *s, const char *path) {
    file_map m;
    memset(s, 0, sizeof *s);
    TRY(file_map_open(&m, path));
    if (!m.data) {
        file_map_close(&m);
        return err_fail(R1_EINPUT, path, "empty file: not a token shard");
    }
    int rc = token_shard_parse(s, m.data, m.size, path);
    if (rc) {
        file_map_close(&m);
        return rc;
    }
    s->map = m;
    return R1_OK;
}

void token_shard_from_builder(token_shard *s, token_builder *b, const char *name) {
    memset(s, 0, sizeof *s);
    s->owned = *b;
    memset(b, 0, sizeof *b);
    s->path = xstrdup(name);
    s->n_docs = s->owned.n_docs;
    s->n_tokens = s->owned.n_tokens;
    s->n_loss = s->owned.n_loss;
    s->vocab_size = s->owned.vocab_size;
    s->tokenizer_id = s->owned.tokenizer_id;
    s->doc_off = s->owned.doc_off;
    s->tokens = s->owned.tokens;
    s->mask = s->owned.mask;
}

void token_shard_close(token_shard *s) {
    if (s->map.path) file_map_close(&s->map);
    token_builder_free(&s->owned);
    free(s->path);
    memset(s, 0, sizeof *s);
}

/* ---- shard directories -------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int token_shard_list(const char *path, char ***paths, int *n) {
    *paths = NULL;
    *n = 0;
    if (!path_exists(path)) return err_fail(R1_EINPUT, path, "no such file or directory");
    if (!path_is_dir(path)) {
        *paths = xmalloc(sizeof(char *));
        (*paths)[0] = xstrdup(path);
        *n = 1;
        return R1_OK;
    }
    DIR *d = opendir(path);
    if (!d) return err_fail(R1_EINPUT, path, "cannot read the directory");
    int cap = 16, k = 0;
    char **v = xmalloc(sizeof(char *) * (size_t)cap);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= 7 || strcmp(e->d_name + len - 7, ".tokens") != 0) continue;
        if (k == cap) v = xrealloc(v, sizeof(char *) * (size_t)(cap *= 2));
        v[k++] = path_join(path, e->d_name);
    }
    closedir(d);
    if (k == 0) {
        free(v);
        err_fail(R1_EINPUT, path, "the directory holds no *.tokens shards");
        return err_hint("make shards with `r1-distill pack`, or pass a JSONL file");
    }
    qsort(v, (size_t)k, sizeof *v, cmp_str);
    *paths = v;
    *n = k;
    return R1_OK;
}

void token_shard_list_free(char **paths, int n) {
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

/* ---- tokenizer identity ------------------------------------------------------------------- */

static int64_t max_id(const cJSON *vocab, const cJSON *added) {
    int64_t m = -1;
    const cJSON *it;
    if (cJSON_IsObject(vocab))
        cJSON_ArrayForEach(it, vocab) if (json_is_int(it) && it->valuedouble > m) m = (int64_t)it->valuedouble;
    if (cJSON_IsArray(added))
        cJSON_ArrayForEach(it, added) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
            if (json_is_int(id) && id->valuedouble > m) m = (int64_t)id->valuedouble;
        }
    return m;
}

int token_tokenizer_info(const char *path, uint64_t *id, int64_t *vocab) {
    char *file = path_is_dir(path) ? path_join(path, "tokenizer.json") : xstrdup(path);
    cJSON *root;
    int rc = json_parse_file(&root, file, 1u << 30);
    if (rc) {
        free(file);
        return rc;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    int64_t top = max_id(cJSON_GetObjectItemCaseSensitive(model, "vocab"),
                         cJSON_GetObjectItemCaseSensitive(root, "added_tokens"));
    if (!cJSON_IsObject(model) || top < 0 || top >= (1 << 30)) {
        cJSON_Delete(root);
        rc = err_fail(R1_EINPUT, file, "no \"model\" with a vocabulary of ids in [0, 2^30)");
        free(file);
        return rc;
    }
    uint64_t h = FNV1A64_INIT;
    static const char *const keys[] = {"model", "added_tokens", "normalizer", "pre_tokenizer"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, keys[i]);
        h = fnv1a64(h, keys[i], strlen(keys[i]) + 1);
        if (!it) continue;
        char *text = cJSON_PrintUnformatted(it);
        CHECK(text);
        h = fnv1a64(h, text, strlen(text));
        cJSON_free(text);
    }
    cJSON_Delete(root);
    free(file);
    *id = h;
    *vocab = top + 1;
    return R1_OK;
}
