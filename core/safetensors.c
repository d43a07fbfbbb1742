#include "core/safetensors.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    const uint8_t *px = x->data, *py = y->data;
    return px < py ? -1 : px > py ? 1 : 0;
}

void st_tensors_free(st_tensor *tensors, int n) {
    for (int i = 0; i < n; i++) free(tensors[i].name);
    free(tensors);
}

/* Validates one header entry and fills t. `data` is the start of the data area. */
static int parse_entry(const cJSON *e, const uint8_t *data, uint64_t data_size, const char *path,
                       st_tensor *t) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return err_fail(R1_EINPUT, path, "tensor \"%s\": header entry is not an object", name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo))
        return err_fail(R1_EINPUT, path,
                        "tensor \"%s\": entry needs \"dtype\" (string), \"shape\" and "
                        "\"data_offsets\" (arrays)", name);
    if (dtype_from_name(jd->valuestring, &t->dt) != 0)
        return err_fail(R1_EINPUT, path, "tensor \"%s\": unknown dtype \"%s\"", name,
                        jd->valuestring);
    int ndim = cJSON_GetArraySize(js);
    if (ndim > ST_MAX_DIMS)
        return err_fail(R1_EINPUT, path, "tensor \"%s\": %d dimensions, at most %d supported",
                        name, ndim, ST_MAX_DIMS);
    t->ndim = ndim;
    /* numel with overflow check: every factor below 2^62 and the product too. */
    uint64_t numel = 1;
    int d = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, js) {
        if (!json_is_int(it) || it->valuedouble < 0)
            return err_fail(R1_EINPUT, path, "tensor \"%s\": shape entries must be integers >= 0",
                            name);
        uint64_t v = (uint64_t)it->valuedouble;
        t->shape[d++] = (int64_t)v;
        if (v != 0 && numel > (UINT64_C(1) << 62) / v)
            return err_fail(R1_EINPUT, path, "tensor \"%s\": shape is too large", name);
        numel *= v;
    }
    uint64_t esize = dtype_size(t->dt);
    if (numel > (UINT64_C(1) << 62) / esize)
        return err_fail(R1_EINPUT, path, "tensor \"%s\": shape is too large", name);
    uint64_t nbytes = numel * esize;
    if (cJSON_GetArraySize(jo) != 2 || !json_is_int(jo->child) || !json_is_int(jo->child->next) ||
        jo->child->valuedouble < 0 || jo->child->next->valuedouble < 0)
        return err_fail(R1_EINPUT, path,
                        "tensor \"%s\": data_offsets must be two non-negative integers", name);
    uint64_t b = (uint64_t)jo->child->valuedouble, e_ = (uint64_t)jo->child->next->valuedouble;
    if (b > e_ || e_ > data_size)
        return err_fail(R1_EINPUT, path,
                        "tensor \"%s\": data_offsets [%llu, %llu] fall outside the %llu-byte data "
                        "area", name, (unsigned long long)b, (unsigned long long)e_,
                        (unsigned long long)data_size);
    if (e_ - b != nbytes)
        return err_fail(R1_EINPUT, path,
                        "tensor \"%s\": %s shape with %llu elements needs %llu bytes, but "
                        "data_offsets span %llu", name, dtype_name(t->dt),
                        (unsigned long long)numel, (unsigned long long)nbytes,
                        (unsigned long long)(e_ - b));
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)nbytes;
    t->data = data + b;
    t->name = xstrdup(name);
    return R1_OK;
}

int st_parse_file(const uint8_t *file, size_t size, const char *path, st_tensor **tensors,
                  int *n_out) {
    *tensors = NULL;
    *n_out = 0;
    if (size < 8)
        return err_fail(R1_EINPUT, path, "truncated: %zu bytes, a safetensors file has at least 8",
                        size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | file[i];
    if (hlen > ST_MAX_HEADER)
        return err_fail(R1_EINPUT, path, "header length %llu is over the 100 MB limit",
                        (unsigned long long)hlen);
    if (hlen > size - 8)
        return err_fail(R1_EINPUT, path,
                        "header length %llu runs past the end of the %zu-byte file (truncated?)",
                        (unsigned long long)hlen, size);
    const char *hdr = (const char *)file + 8;
    if (hlen == 0 || hdr[0] != '{')
        return err_fail(R1_EINPUT, path, "header does not start with '{'");
    cJSON *root;
    if (json_parse(&root, hdr, (size_t)hlen, path) != R1_OK) {
        err_hint("the file is not a safetensors file, or its header is damaged");
        return R1_EINPUT;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return err_fail(R1_EINPUT, path, "header is not a JSON object");
    }
    const uint8_t *data = file + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;
    int cap = cJSON_GetArraySize(root), n = 0;
    st_tensor *ts = xcalloc((size_t)(cap ? cap : 1), sizeof *ts);
    int rc = R1_OK;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                rc = err_fail(R1_EINPUT, path, "\"__metadata__\" is not an object");
                break;
            }
            continue;
        }
        rc = parse_entry(e, data, data_size, path, &ts[n]);
        if (rc) break;
        n++;
    }
    cJSON_Delete(root);
    if (rc) {
        st_tensors_free(ts, n);
        return rc;
    }
    qsort(ts, (size_t)n, sizeof *ts, cmp_tensor_name);
    for (int i = 1; i < n; i++)
        if (strcmp(ts[i - 1].name, ts[i].name) == 0) {
            rc = err_fail(R1_EINPUT, path, "tensor \"%s\" appears twice in the header", ts[i].name);
            st_tensors_free(ts, n);
            return rc;
        }
    /* Ranges must tile the data area exactly: sorted by start, each begins where the last
     * ended, and the last ends at the end of the file (the rule the reference reader applies). */
    st_tensor **by_off = xmalloc(sizeof *by_off * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) by_off[i] = &ts[i];
    qsort(by_off, (size_t)n, sizeof *by_off, cmp_tensor_offset);
    const uint8_t *pos = data;
    for (int i = 0; i < n && !rc; i++) {
        const st_tensor *t = by_off[i];
        const uint8_t *start = t->data;
        if (start < pos)
            rc = err_fail(R1_EINPUT, path, "tensor \"%s\" overlaps tensor \"%s\" in the data area",
                          t->name, by_off[i - 1]->name);
        else if (start > pos)
            rc = err_fail(R1_EINPUT, path, "a hole of %zu bytes precedes tensor \"%s\"",
                          (size_t)(start - pos), t->name);
        pos = start + t->nbytes;
    }
    if (!rc && (uint64_t)(pos - data) != data_size)
        rc = err_fail(R1_EINPUT, path,
                      "tensors cover %zu of the %llu data bytes; the rest belongs to no tensor",
                      (size_t)(pos - data), (unsigned long long)data_size);
    free(by_off);
    if (rc) {
        st_tensors_free(ts, n);
        return rc;
    }
    *tensors = ts;
    *n_out = n;
    return R1_OK;
}

static int add_shard(safetensors *st, const char *path, st_tensor **all, int *n_all) {
    st->shards = xrealloc(st->shards, sizeof *st->shards * (size_t)(st->n_shards + 1));
    file_map *m = &st->shards[st->n_shards];
    TRY(file_map_open(m, path));
    st_tensor *ts;
    int n;
    int rc = st_parse_file(m->data, m->size, path, &ts, &n);
    if (rc) {
        file_map_close(m);
        return rc;
    }
    *all = xrealloc(*all, sizeof **all * (size_t)(*n_all + n + 1));
    for (int i = 0; i < n; i++) {
        ts[i].shard = st->n_shards;
        (*all)[(*n_all)++] = ts[i];
    }
    free(ts); /* names moved into *all */
    st->n_shards++;
    return R1_OK;
}

/* Shard names in an index must stay inside the checkpoint directory. */
static int shard_name_ok(const char *s) {
    return s[0] && s[0] != '/' && !strstr(s, "..") && !strchr(s, '\\');
}

static int open_index(safetensors *st, const char *dir, const char *index_path, st_tensor **all,
                      int *n_all) {
    cJSON *root;
    TRY(json_parse_file(&root, index_path, 1u << 30));
    const cJSON *wm = NULL;
    int rc = R1_OK;
    if (json_get_obj(root, "weight_map", &wm, index_path) != 1) {
        if (!err_status() || !wm)
            rc = err_fail(R1_EINPUT, index_path, "no \"weight_map\" object");
        cJSON_Delete(root);
        return rc ? rc : R1_EINPUT;
    }
    /* Distinct shard files, in first-mention order. */
    int n_files = 0;
    const char **files = xmalloc(sizeof *files * (size_t)(cJSON_GetArraySize(wm) + 1));
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !shard_name_ok(e->valuestring)) {
            rc = err_fail(R1_EINPUT, index_path,
                          "weight_map[\"%s\"] must be a file name inside the checkpoint directory",
                          e->string);
            break;
        }
        int seen = 0;
        for (int i = 0; i < n_files && !seen; i++) seen = strcmp(files[i], e->valuestring) == 0;
        if (!seen) files[n_files++] = e->valuestring;
    }
    for (int i = 0; i < n_files && !rc; i++) {
        char *p = path_join(dir, files[i]);
        rc = add_shard(st, p, all, n_all);
        free(p);
    }
    if (!rc) {
        st->tensors = *all;
        st->n = *n_all;
        qsort(st->tensors, (size_t)st->n, sizeof *st->tensors, cmp_tensor_name);
        for (int i = 1; i < st->n && !rc; i++)
            if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
                rc = err_fail(R1_EINPUT, dir, "tensor \"%s\" is in two shards (%s and %s)",
                              st->tensors[i].name, st->shards[st->tensors[i - 1].shard].path,
                              st->shards[st->tensors[i].shard].path);
        cJSON_ArrayForEach(e, wm) {
            if (rc) break;
            const st_tensor *t = safetensors_find(st, e->string);
            if (!t)
                rc = err_fail(R1_EINPUT, index_path,
                              "the index places tensor \"%s\" in %s, which does not hold it",
                              e->string, e->valuestring);
        }
    }
    free(files);
    cJSON_Delete(root);
    return rc;
}

int safetensors_open(safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    st_tensor *all = NULL;
    int n_all = 0, rc;
    if (path_is_dir(path)) {
        char *index = path_join(path, "model.safetensors.index.json");
        char *single = path_join(path, "model.safetensors");
        if (path_exists(index))
            rc = open_index(st, path, index, &all, &n_all);
        else if (path_exists(single))
            rc = add_shard(st, single, &all, &n_all);
        else {
            rc = err_fail(R1_EINPUT, path,
                          "no model.safetensors or model.safetensors.index.json in this directory");
        }
        free(index);
        free(single);
    } else {
        rc = add_shard(st, path, &all, &n_all);
    }
    if (rc) {
        st->tensors = all; /* open_index may have set these already; they are the same */
        st->n = n_all;
        safetensors_close(st);
        return rc;
    }
    st->tensors = all;
    st->n = n_all;
    qsort(st->tensors, (size_t)st->n, sizeof *st->tensors, cmp_tensor_name);
    return R1_OK;
}

void safetensors_close(safetensors *st) {
    st_tensors_free(st->tensors, st->n);
    for (int i = 0; i < st->n_shards; i++) file_map_close(&st->shards[i]);
    free(st->shards);
    memset(st, 0, sizeof *st);
}

const st_tensor *safetensors_find(const safetensors *st, const char *name) {
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

const char *safetensors_shard_path(const safetensors *st, const st_tensor *t) {
    return st->shards[t->shard].path;
}

const st_tensor *safetensors_need(const safetensors *st, const char *name) {
    const st_tensor *t = safetensors_find(st, name);
    if (!t) {
        err_fail(R1_EINPUT, st->n_shards ? st->shards[0].path : "checkpoint",
                 "missing tensor \"%s\"", name);
        if (st->n_shards > 1) err_hint("searched all %d shards of the checkpoint", st->n_shards);
    }
    return t;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

const st_tensor *safetensors_need_shape(const safetensors *st, const char *name, int ndim,
                                        const int64_t *shape, const char *why) {
    const st_tensor *t = safetensors_need(st, name);
    if (!t) return NULL;
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char have[160], want[160];
        shape_str(have, sizeof have, t->ndim, t->shape);
        shape_str(want, sizeof want, ndim, shape);
        err_fail(R1_EINPUT, safetensors_shard_path(st, t),
                 "tensor \"%s\" has shape %s, but %s implies %s", name, have, why, want);
        err_hint("the weights do not belong to this config.json");
        return NULL;
    }
    return t;
}

/* ---- writing ------------------------------------------------------------------------------ */

static size_t entry_bytes(const st_entry *e) {
    size_t n = dtype_size(e->dt);
    for (int d = 0; d < e->ndim; d++) n *= (size_t)e->shape[d];
    return n;
}

/* fill for entries that carry their data */
static void fill_from_data(void *ctx, int j, void *dst) {
    const st_entry *e = (const st_entry *)ctx + j;
    if (dst) memcpy(dst, e->data, entry_bytes(e));
}

int safetensors_write(const char *path, const st_entry *entries, int n, const cJSON *metadata) {
    return safetensors_write_fill(path, entries, n, metadata, fill_from_data, (void *)entries, 0);
}

/* Entry j is fill's entry base + j; every entry's fill runs, with dst NULL once writing failed. */
int safetensors_write_fill(const char *path, const st_entry *entries, int n,
                           const cJSON *metadata, st_fill_fn fill, void *ctx, int base) {
    cJSON *hdr = cJSON_CreateObject();
    cJSON *meta = metadata ? cJSON_Duplicate(metadata, 1) : cJSON_CreateObject();
    if (!cJSON_GetObjectItemCaseSensitive(meta, "format"))
        cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddItemToObject(hdr, "__metadata__", meta);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const st_entry *e = &entries[i];
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "dtype", dtype_name(e->dt));
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < e->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
        size_t nb = entry_bytes(e);
        cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + nb)));
        off += nb;
        cJSON_AddItemToObject(hdr, e->name, t);
    }
    char *text = cJSON_PrintUnformatted(hdr);
    cJSON_Delete(hdr);
    CHECK(text);
    size_t hlen = strlen(text), padded = (hlen + 7) & ~(size_t)7;
    uint8_t len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (uint8_t)(padded >> (8 * i));
    atomic_file a;
    int rc = atomic_open(&a, path);
    if (!rc) {
        atomic_write(&a, len_le, 8);
        atomic_write(&a, text, hlen);
        atomic_write(&a, "        ", padded - hlen);
    }
    cJSON_free(text);
    /* one entry at a time through a buffer of the largest */
    size_t big = 0;
    for (int i = 0; i < n; i++) big = entry_bytes(&entries[i]) > big ? entry_bytes(&entries[i]) : big;
    void *buf = rc ? NULL : xmalloc(big ? big : 1);
    for (int i = 0; i < n; i++) {
        fill(ctx, base + i, buf);
        if (buf) atomic_write(&a, buf, entry_bytes(&entries[i]));
    }
    free(buf);
    return rc ? rc : atomic_commit(&a);
}

int safetensors_write_dir(const char *dir, const st_entry *entries, int n, size_t max_shard_bytes) {
    return safetensors_write_dir_fill(dir, entries, n, max_shard_bytes, fill_from_data,
                                      (void *)entries);
}

int safetensors_write_dir_fill(const char *dir, const st_entry *entries, int n,
                               size_t max_shard_bytes, st_fill_fn fill, void *ctx) {
    int rc = dir_create(dir);
    if (rc) {
        for (int i = 0; i < n; i++) fill(ctx, i, NULL);
        return rc;
    }
    /* Greedy split in the given order, as transformers' save_pretrained does. */
    int *shard_of = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    int n_shards = 0;
    size_t cur = 0, total = 0;
    for (int i = 0; i < n; i++) {
        size_t b = entry_bytes(&entries[i]);
        if (n_shards == 0 || (cur > 0 && cur + b > max_shard_bytes)) {
            n_shards++;
            cur = 0;
        }
        shard_of[i] = n_shards - 1;
        cur += b;
        total += b;
    }
    if (n_shards <= 1) {
        char *p = path_join(dir, "model.safetensors");
        rc = safetensors_write_fill(p, entries, n, NULL, fill, ctx, 0);
        free(p);
        free(shard_of);
        return rc;
    }
    cJSON *index = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(index, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    cJSON *wm = cJSON_AddObjectToObject(index, "weight_map");
    for (int s = 0, first = 0; s < n_shards; s++) {
        int last = first;
        while (last < n && shard_of[last] == s) last++;
        char *name = xasprintf("model-%05d-of-%05d.safetensors", s + 1, n_shards);
        char *p = path_join(dir, name);
        if (rc) /* a shard failed: the rest only take part */
            for (int i = first; i < last; i++) fill(ctx, i, NULL);
        else
            rc = safetensors_write_fill(p, entries + first, last - first, NULL, fill, ctx, first);
        for (int i = first; i < last; i++) cJSON_AddStringToObject(wm, entries[i].name, name);
        free(p);
        free(name);
        first = last;
    }
    if (!rc) {
        char *text = json_print(index);
        char *p = path_join(dir, "model.safetensors.index.json");
        rc = file_write_atomic(p, text, strlen(text));
        free(p);
        free(text);
    }
    cJSON_Delete(index);
    free(shard_of);
    return rc;
}
