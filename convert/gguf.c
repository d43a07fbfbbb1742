#include "convert/gguf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* ---- reading ------------------------------------------------------------------------------ */

static const int vtype_size[GGUF_VTYPE_COUNT] = {
    [GGUF_U8] = 1,  [GGUF_I8] = 1,  [GGUF_U16] = 2,     [GGUF_I16] = 2,    [GGUF_U32] = 4,
    [GGUF_I32] = 4, [GGUF_F32] = 4, [GGUF_BOOL] = 1,    [GGUF_STRING] = 0, [GGUF_ARRAY] = 0,
    [GGUF_U64] = 8, [GGUF_I64] = 8, [GGUF_F64] = 8,
};

static const char *vtype_name(int t) {
    static const char *names[GGUF_VTYPE_COUNT] = {"u8",  "i8",   "u16",    "i16",   "u32",
                                                  "i32", "f32",  "bool",   "string", "array",
                                                  "u64", "i64",  "f64"};
    return t >= 0 && t < GGUF_VTYPE_COUNT ? names[t] : "?";
}

static uint64_t ld_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

typedef struct {
    const uint8_t *base;
    size_t size, pos;
    const char *path;
} cursor;

static int need(cursor *c, size_t n, const char *what) {
    if (n > c->size - c->pos)
        return err_fail(R1_EINPUT, c->path, "truncated at byte %zu: %s needs %zu bytes, %zu remain",
                        c->pos, what, n, c->size - c->pos);
    return R1_OK;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    TRY(need(c, 4, what));
    *v = (uint32_t)ld_le(c->base + c->pos, 4);
    c->pos += 4;
    return R1_OK;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    TRY(need(c, 8, what));
    *v = ld_le(c->base + c->pos, 8);
    c->pos += 8;
    return R1_OK;
}

static int rd_str(cursor *c, gguf_str *s, const char *what) {
    uint64_t n;
    TRY(rd_u64(c, &n, what));
    if (n > c->size - c->pos)
        return err_fail(R1_EINPUT, c->path, "%s at byte %zu has length %" PRIu64
                        ", past the end of the file", what, c->pos - 8, n);
    s->p = (const char *)c->base + c->pos;
    s->n = (size_t)n;
    c->pos += (size_t)n;
    return R1_OK;
}

static int has_nul(gguf_str s) { return memchr(s.p, 0, s.n) != NULL; }

/* Reads one scalar of type t into kv's number fields (strings into kv->s). */
static int rd_scalar(cursor *c, gguf_vtype t, gguf_kv *kv, const char *key) {
    if (t == GGUF_STRING) return rd_str(c, &kv->s, key);
    TRY(need(c, (size_t)vtype_size[t], key));
    const uint8_t *p = c->base + c->pos;
    uint64_t u = ld_le(p, vtype_size[t]);
    c->pos += (size_t)vtype_size[t];
    kv->is_int = 1;
    switch (t) {
    case GGUF_U8: case GGUF_U16: case GGUF_U32: kv->i = (int64_t)u; break;
    case GGUF_I8: kv->i = (int8_t)u; break;
    case GGUF_I16: kv->i = (int16_t)u; break;
    case GGUF_I32: kv->i = (int32_t)u; break;
    case GGUF_I64: kv->i = (int64_t)u; break;
    case GGUF_U64:
        kv->is_int = u <= (uint64_t)INT64_MAX;
        kv->i = kv->is_int ? (int64_t)u : 0;
        break;
    case GGUF_BOOL:
        if (u > 1)
            return err_fail(R1_EINPUT, c->path, "key \"%s\": bool value %u is neither 0 nor 1", key,
                            (unsigned)u);
        kv->i = (int64_t)u;
        break;
    case GGUF_F32: {
        float f;
        uint32_t b = (uint32_t)u;
        memcpy(&f, &b, 4);
        kv->is_int = 0;
        kv->is_float = 1;
        kv->f = f;
        return R1_OK;
    }
    case GGUF_F64:
        memcpy(&kv->f, &u, 8);
        kv->is_int = 0;
        kv->is_float = 1;
        return R1_OK;
    default: CHECK(!"rd_scalar on a non-scalar type");
    }
    kv->is_float = kv->is_int;
    kv->f = (double)kv->i;
    return R1_OK;
}

static int rd_value(cursor *c, gguf_kv *kv) {
    uint32_t t;
    TRY(rd_u32(c, &t, "value type"));
    if (t >= GGUF_VTYPE_COUNT)
        return err_fail(R1_EINPUT, c->path, "key \"%s\" has unknown value type %u", kv->key, t);
    kv->type = (gguf_vtype)t;
    if (t != GGUF_ARRAY) return rd_scalar(c, kv->type, kv, kv->key);
    uint32_t et;
    uint64_t n;
    TRY(rd_u32(c, &et, "array element type"));
    TRY(rd_u64(c, &n, "array length"));
    if (et >= GGUF_VTYPE_COUNT || et == GGUF_ARRAY)
        return err_fail(R1_EINPUT, c->path, "key \"%s\": array element type %u is %s", kv->key,
                        et, et == GGUF_ARRAY ? "a nested array (not supported)" : "unknown");
    kv->arr_type = (gguf_vtype)et;
    kv->arr_n = n;
    kv->arr = c->base + c->pos;
    if (et != GGUF_STRING) {
        const uint64_t es = (uint64_t)vtype_size[et];
        if (n > (c->size - c->pos) / es)
            return err_fail(R1_EINPUT, c->path,
                            "key \"%s\": array of %" PRIu64
                            " %s values runs past the end of the file",
                            kv->key, n, vtype_name((int)et));
        if (et == GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (c->base[c->pos + i] > 1)
                    return err_fail(R1_EINPUT, c->path, "key \"%s\": bool element %" PRIu64
                                    " is neither 0 nor 1", kv->key, i);
        c->pos += (size_t)(n * es);
        return R1_OK;
    }
    /* each string takes at least its 8-byte length */
    if (n > (c->size - c->pos) / 8)
        return err_fail(R1_EINPUT, c->path, "key \"%s\": array of %" PRIu64
                        " strings runs past the end of the file", kv->key, n);
    for (uint64_t i = 0; i < n; i++) {
        gguf_str s;
        TRY(rd_str(c, &s, kv->key));
    }
    return R1_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Unique names: sort pointers and compare neighbours. */
static int check_unique(char **names, int64_t n, const char *path, const char *what) {
    if (n < 2) return R1_OK;
    char **s = xmalloc(sizeof(char *) * (size_t)n);
    memcpy(s, names, sizeof(char *) * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_cstr);
    int rc = R1_OK;
    for (int64_t i = 1; i < n && !rc; i++)
        if (strcmp(s[i - 1], s[i]) == 0)
            rc = err_fail(R1_EINPUT, path, "%s \"%s\" appears twice", what, s[i]);
    free(s);
    return rc;
}

static int parse_tensor_info(cursor *c, gguf_tensor *t, int64_t idx) {
    gguf_str name;
    TRY(rd_str(c, &name, "tensor name"));
    if (name.n == 0 || name.n >= GGUF_MAX_NAME || has_nul(name))
        return err_fail(R1_EINPUT, c->path,
                        "tensor %" PRId64 " has a name of %zu bytes%s (1 to %d allowed)", idx,
                        name.n, has_nul(name) ? " with a NUL" : "", GGUF_MAX_NAME - 1);
    t->name = xstrndup(name.p, name.n);
    uint32_t nd, type;
    TRY(rd_u32(c, &nd, "tensor n_dims"));
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return err_fail(R1_EINPUT, c->path, "tensor \"%s\" has %u dimensions (1 to %d allowed)",
                        t->name, nd, GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v;
        TRY(rd_u64(c, &v, "tensor dimension"));
        if (v > (uint64_t)INT64_MAX)
            return err_fail(R1_EINPUT, c->path, "tensor \"%s\" dimension %u is %" PRIu64, t->name,
                            d, v);
        t->ne[d] = (int64_t)v;
    }
    TRY(rd_u32(c, &type, "tensor type"));
    const quant_info *qi = quant_type_info((int)type);
    if (!qi)
        return err_fail(R1_EINPUT, c->path, "tensor \"%s\" has unknown ggml type %u", t->name,
                        type);
    t->type = (quant_type)type;
    TRY(rd_u64(c, &t->offset, "tensor offset"));
    if (t->ne[0] % qi->block)
        return err_fail(R1_EINPUT, c->path,
                        "tensor \"%s\": row length %" PRId64
                        " is not a multiple of the %s block (%d)",
                        t->name, t->ne[0], qi->name, qi->block);
    /* bytes = ne0/block * block_bytes * ne1 * ne2 * ne3, refusing overflow */
    uint64_t bytes = (uint64_t)(t->ne[0] / qi->block) * (uint64_t)qi->block_bytes;
    if (t->ne[0] / qi->block > 0 &&
        bytes / (uint64_t)qi->block_bytes != (uint64_t)(t->ne[0] / qi->block))
        bytes = UINT64_MAX;
    for (int d = 1; d < GGUF_MAX_DIMS && bytes != UINT64_MAX; d++) {
        uint64_t n = (uint64_t)t->ne[d];
        bytes = n && bytes > UINT64_MAX / n ? UINT64_MAX : bytes * n;
    }
    if (bytes == UINT64_MAX || bytes > (uint64_t)SIZE_MAX)
        return err_fail(R1_EINPUT, c->path, "tensor \"%s\" is too large (its size overflows)",
                        t->name);
    t->nbytes = (size_t)bytes;
    return R1_OK;
}

int gguf_parse(gguf_file *g, const uint8_t *data, size_t size, const char *path) {
    memset(g, 0, sizeof *g);
    g->path = xstrdup(path);
    cursor c = {.base = data, .size = size, .pos = 0, .path = path};
    uint32_t magic, version;
    uint64_t n_tensors, n_kv;
    int rc = rd_u32(&c, &magic, "magic");
    if (!rc && magic != 0x46554747u) {
        rc = err_fail(R1_EINPUT, path, "not a GGUF file (the first bytes are not \"GGUF\")");
    }
    if (!rc) rc = rd_u32(&c, &version, "version");
    if (!rc && (version < 2 || version > 3)) {
        rc = err_fail(R1_EINPUT, path, "GGUF version %u is not supported (2 and 3 are)%s", version,
                      (version & 0xffff) == 0 ? "; big-endian files are not supported" : "");
    }
    if (!rc) rc = rd_u64(&c, &n_tensors, "tensor count");
    if (!rc) rc = rd_u64(&c, &n_kv, "metadata count");
    /* every key-value takes at least 13 bytes and every tensor info 32: bound the counts by
     * what the file can hold before allocating anything */
    if (!rc && (n_kv > (size - c.pos) / 13 || n_tensors > (size - c.pos) / 32))
        rc = err_fail(R1_EINPUT, path, "%" PRIu64 " tensors and %" PRIu64
                      " metadata entries cannot fit in %zu bytes", n_tensors, n_kv, size);
    if (rc) {
        gguf_close(g);
        return rc;
    }
    g->version = version;
    g->kv = xcalloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kv);
    for (uint64_t i = 0; i < n_kv && !rc; i++) {
        gguf_str key;
        rc = rd_str(&c, &key, "metadata key");
        if (!rc && (key.n == 0 || has_nul(key)))
            rc = err_fail(R1_EINPUT, path, "metadata key %" PRIu64 " is %s", i,
                          key.n ? "not a valid string (it holds a NUL)" : "empty");
        if (rc) break;
        g->kv[i].key = xstrndup(key.p, key.n);
        g->n_kv = (int64_t)i + 1;
        rc = rd_value(&c, &g->kv[i]);
    }
    if (!rc) {
        char **keys = xmalloc(sizeof(char *) * (size_t)(g->n_kv ? g->n_kv : 1));
        for (int64_t i = 0; i < g->n_kv; i++) keys[i] = g->kv[i].key;
        rc = check_unique(keys, g->n_kv, path, "metadata key");
        free(keys);
    }
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *al = rc ? NULL : gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != GGUF_U32 || al->i == 0 || (al->i & (al->i - 1)))
            rc = err_fail(R1_EINPUT, path,
                          "general.alignment must be a u32 power of two (found %s %" PRId64 ")",
                          vtype_name(al->type), al->i);
        else
            g->alignment = (size_t)al->i;
    }
    if (!rc) g->tensors = xcalloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensors);
    for (uint64_t i = 0; i < n_tensors && !rc; i++) {
        g->n_tensors = (int64_t)i + 1;
        rc = parse_tensor_info(&c, &g->tensors[i], (int64_t)i);
    }
    if (!rc) {
        char **names = xmalloc(sizeof(char *) * (size_t)(g->n_tensors ? g->n_tensors : 1));
        for (int64_t i = 0; i < g->n_tensors; i++) names[i] = g->tensors[i].name;
        rc = check_unique(names, g->n_tensors, path, "tensor name");
        free(names);
    }
    if (!rc) {
        size_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
        g->data_offset = c.pos + pad;
        if (g->n_tensors > 0 && pad > size - c.pos)
            rc = err_fail(R1_EINPUT, path, "the file ends before its data section");
    }
    /* tensors: aligned, inside the file, and no two overlapping */
    gguf_tensor **by_off = NULL;
    if (!rc && g->n_tensors > 0) {
        const size_t avail = size - g->data_offset;
        by_off = xmalloc(sizeof *by_off * (size_t)g->n_tensors);
        for (int64_t i = 0; i < g->n_tensors && !rc; i++) {
            gguf_tensor *t = &g->tensors[i];
            by_off[i] = t;
            if (t->offset % g->alignment)
                rc = err_fail(R1_EINPUT, path,
                              "tensor \"%s\" offset %" PRIu64
                              " is not a multiple of the alignment %zu",
                              t->name, t->offset, g->alignment);
            else if (t->offset > avail || t->nbytes > avail - t->offset)
                rc = err_fail(R1_EINPUT, path,
                              "tensor \"%s\" (%zu bytes at data offset %" PRIu64
                              ") lies past the end of the file (%zu data bytes)",
                              t->name, t->nbytes, t->offset, avail);
            else
                t->data = data + g->data_offset + t->offset;
        }
        if (!rc) {
            qsort(by_off, (size_t)g->n_tensors, sizeof *by_off, cmp_offset);
            for (int64_t i = 1; i < g->n_tensors && !rc; i++)
                if (by_off[i - 1]->offset + by_off[i - 1]->nbytes > by_off[i]->offset)
                    rc = err_fail(R1_EINPUT, path, "tensors \"%s\" and \"%s\" overlap",
                                  by_off[i - 1]->name, by_off[i]->name);
        }
    }
    free(by_off);
    if (rc) gguf_close(g);
    return rc;
}

int gguf_open(gguf_file *g, const char *path) {
    memset(g, 0, sizeof *g);
    file_map m;
    TRY(file_map_open(&m, path));
    int rc = gguf_parse(g, m.data, m.size, path);
    if (rc) {
        file_map_close(&m);
        return rc;
    }
    g->map = m;
    return R1_OK;
}

void gguf_close(gguf_file *g) {
    for (int64_t i = 0; i < g->n_kv; i++) free(g->kv[i].key);
    for (int64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    free(g->path);
    if (g->map.path) file_map_close(&g->map);
    memset(g, 0, sizeof *g);
}

const gguf_kv *gguf_find(const gguf_file *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

static int wrong_type(const gguf_file *g, const gguf_kv *kv, const char *want) {
    return err_fail(R1_EINPUT, g->path, "key \"%s\" is %s, expected %s", kv->key,
                    kv->type == GGUF_ARRAY ? "an array" : vtype_name(kv->type), want);
}

int gguf_get_int(const gguf_file *g, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type == GGUF_ARRAY || kv->type == GGUF_STRING || kv->type == GGUF_BOOL || !kv->is_int) {
        wrong_type(g, kv, "an integer");
        return -1;
    }
    *out = kv->i;
    return 1;
}

int gguf_get_float(const gguf_file *g, const char *key, double *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type == GGUF_ARRAY || kv->type == GGUF_STRING || kv->type == GGUF_BOOL ||
        !kv->is_float) {
        wrong_type(g, kv, "a number");
        return -1;
    }
    *out = kv->f;
    return 1;
}

int gguf_get_bool(const gguf_file *g, const char *key, int *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != GGUF_BOOL) {
        wrong_type(g, kv, "a bool");
        return -1;
    }
    *out = (int)kv->i;
    return 1;
}

int gguf_get_str(const gguf_file *g, const char *key, char **out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != GGUF_STRING) {
        wrong_type(g, kv, "a string");
        return -1;
    }
    if (has_nul(kv->s)) {
        err_fail(R1_EINPUT, g->path, "key \"%s\" holds a NUL byte", key);
        return -1;
    }
    *out = xstrndup(kv->s.p, kv->s.n);
    return 1;
}

int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i) {
    CHECK(kv->type == GGUF_ARRAY && i < kv->arr_n);
    const int sz = vtype_size[kv->arr_type];
    CHECK(sz > 0 && kv->arr_type != GGUF_F32 && kv->arr_type != GGUF_F64);
    uint64_t u = ld_le(kv->arr + i * (uint64_t)sz, sz);
    switch (kv->arr_type) {
    case GGUF_I8: return (int8_t)u;
    case GGUF_I16: return (int16_t)u;
    case GGUF_I32: return (int32_t)u;
    default: return (int64_t)u;
    }
}

double gguf_arr_float(const gguf_kv *kv, uint64_t i) {
    CHECK(kv->type == GGUF_ARRAY && i < kv->arr_n);
    if (kv->arr_type == GGUF_F32) {
        uint32_t b = (uint32_t)ld_le(kv->arr + 4 * i, 4);
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    if (kv->arr_type == GGUF_F64) {
        uint64_t b = ld_le(kv->arr + 8 * i, 8);
        double f;
        memcpy(&f, &b, 8);
        return f;
    }
    return (double)gguf_arr_int(kv, i);
}

void gguf_arr_strings(const gguf_kv *kv, gguf_str *out) {
    CHECK(kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING);
    const uint8_t *p = kv->arr; /* validated by the parser */
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        uint64_t n = ld_le(p, 8);
        out[i].p = (const char *)p + 8;
        out[i].n = (size_t)n;
        p += 8 + n;
    }
}

/* ---- writing ------------------------------------------------------------------------------ */

typedef struct {
    char *key;
    uint8_t *bytes; /* type + value, serialised */
    size_t n;
} wkv;

typedef struct {
    char *name;
    quant_type type;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    size_t nbytes;
    uint64_t offset;
} wtensor;

struct gguf_writer {
    wkv *kv;
    int n_kv, cap_kv;
    wtensor *t;
    int n_t, cap_t;
    uint64_t data_size;
    /* streaming state */
    atomic_file f;
    int open;
    int cur;        /* tensor being written */
    size_t written; /* bytes of it so far */
};

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void buf_put(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void buf_le(buf *b, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, t, (size_t)n);
}
static void buf_str(buf *b, const char *s, size_t n) {
    buf_le(b, n, 8);
    buf_put(b, s, n);
}

gguf_writer *gguf_writer_new(void) { return xcalloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    if (w->open) gguf_write_abort(w);
    for (int i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].bytes);
    }
    for (int i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

static void put_kv(gguf_writer *w, const char *key, buf *value) {
    for (int i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].bytes);
            w->kv[i].bytes = value->p;
            w->kv[i].n = value->n;
            return;
        }
    if (w->n_kv == w->cap_kv) {
        w->cap_kv = w->cap_kv ? 2 * w->cap_kv : 32;
        w->kv = xrealloc(w->kv, sizeof *w->kv * (size_t)w->cap_kv);
    }
    w->kv[w->n_kv++] = (wkv){xstrdup(key), value->p, value->n};
}

static void put_scalar(gguf_writer *w, const char *key, gguf_vtype t, uint64_t bits) {
    buf b = {0};
    buf_le(&b, t, 4);
    buf_le(&b, bits, vtype_size[t]);
    put_kv(w, key, &b);
}

void gguf_put_u32(gguf_writer *w, const char *key, uint32_t v) { put_scalar(w, key, GGUF_U32, v); }
void gguf_put_i32(gguf_writer *w, const char *key, int32_t v) {
    put_scalar(w, key, GGUF_I32, (uint32_t)v);
}
void gguf_put_u64(gguf_writer *w, const char *key, uint64_t v) { put_scalar(w, key, GGUF_U64, v); }
void gguf_put_bool(gguf_writer *w, const char *key, int v) {
    put_scalar(w, key, GGUF_BOOL, v ? 1 : 0);
}
void gguf_put_f32(gguf_writer *w, const char *key, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    put_scalar(w, key, GGUF_F32, u);
}

void gguf_put_str(gguf_writer *w, const char *key, const char *v) {
    buf b = {0};
    buf_le(&b, GGUF_STRING, 4);
    buf_str(&b, v, strlen(v));
    put_kv(w, key, &b);
}

static void arr_header(buf *b, gguf_vtype et, int64_t n) {
    buf_le(b, GGUF_ARRAY, 4);
    buf_le(b, et, 4);
    buf_le(b, (uint64_t)n, 8);
}

void gguf_put_arr_str(gguf_writer *w, const char *key, const char *const *v, int64_t n) {
    buf b = {0};
    arr_header(&b, GGUF_STRING, n);
    for (int64_t i = 0; i < n; i++) buf_str(&b, v[i], strlen(v[i]));
    put_kv(w, key, &b);
}

void gguf_put_arr_i32(gguf_writer *w, const char *key, const int32_t *v, int64_t n) {
    buf b = {0};
    arr_header(&b, GGUF_I32, n);
    for (int64_t i = 0; i < n; i++) buf_le(&b, (uint32_t)v[i], 4);
    put_kv(w, key, &b);
}

void gguf_put_arr_f32(gguf_writer *w, const char *key, const float *v, int64_t n) {
    buf b = {0};
    arr_header(&b, GGUF_F32, n);
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        buf_le(&b, u, 4);
    }
    put_kv(w, key, &b);
}

static size_t pad_to(uint64_t n, size_t align) { return (size_t)((align - n % align) % align); }

size_t gguf_add_tensor(gguf_writer *w, const char *name, quant_type type, int n_dims,
                       const int64_t *ne) {
    const quant_info *qi = quant_type_info(type);
    CHECK(qi && n_dims >= 1 && n_dims <= GGUF_MAX_DIMS && strlen(name) < GGUF_MAX_NAME);
    CHECK(ne[0] % qi->block == 0 && !w->open);
    for (int i = 0; i < w->n_t; i++) CHECK(strcmp(w->t[i].name, name) != 0);
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 64;
        w->t = xrealloc(w->t, sizeof *w->t * (size_t)w->cap_t);
    }
    wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->type = type;
    t->n_dims = n_dims;
    size_t bytes = quant_row_bytes(type, ne[0]);
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = d < n_dims ? ne[d] : 1;
        if (d > 0) bytes *= (size_t)t->ne[d];
    }
    t->nbytes = bytes;
    t->offset = w->data_size;
    w->data_size += bytes + pad_to(bytes, GGUF_DEFAULT_ALIGNMENT);
    return bytes;
}

static const uint8_t zeros[GGUF_DEFAULT_ALIGNMENT];

/* Pads the finished tensors and moves to the next one that has bytes to receive. */
static void advance(gguf_writer *w) {
    while (w->cur < w->n_t && w->written == w->t[w->cur].nbytes) {
        atomic_write(&w->f, zeros, pad_to(w->t[w->cur].nbytes, GGUF_DEFAULT_ALIGNMENT));
        w->cur++;
        w->written = 0;
    }
}

int gguf_write_begin(gguf_writer *w, const char *path) {
    CHECK(!w->open);
    buf h = {0};
    buf_put(&h, "GGUF", 4);
    buf_le(&h, 3, 4);
    buf_le(&h, (uint64_t)w->n_t, 8);
    buf_le(&h, (uint64_t)w->n_kv, 8);
    for (int i = 0; i < w->n_kv; i++) {
        buf_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        buf_put(&h, w->kv[i].bytes, w->kv[i].n);
    }
    for (int i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        buf_str(&h, t->name, strlen(t->name));
        buf_le(&h, (uint64_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++) buf_le(&h, (uint64_t)t->ne[d], 8);
        buf_le(&h, t->type, 4);
        buf_le(&h, t->offset, 8);
    }
    buf_put(&h, zeros, pad_to(h.n, GGUF_DEFAULT_ALIGNMENT));
    int rc = atomic_open(&w->f, path);
    if (!rc) {
        atomic_write(&w->f, h.p, h.n);
        w->open = 1;
        w->cur = 0;
        w->written = 0;
        advance(w); /* zero-byte tensors need no data */
    }
    free(h.p);
    return rc;
}

void gguf_write_data(gguf_writer *w, const void *data, size_t n) {
    CHECK(w->open);
    const uint8_t *p = data;
    while (n > 0) {
        CHECK(w->cur < w->n_t); /* more bytes than the declared tensors hold */
        size_t room = w->t[w->cur].nbytes - w->written, k = n < room ? n : room;
        atomic_write(&w->f, p, k);
        p += k;
        n -= k;
        w->written += k;
        advance(w);
    }
}

int gguf_write_end(gguf_writer *w) {
    CHECK(w->open);
    w->open = 0;
    if (w->cur != w->n_t) {
        atomic_abort(&w->f);
        return err_fail(R1_ERUNTIME, "gguf", "tensor \"%s\" received %zu of %zu bytes",
                        w->t[w->cur].name, w->written, w->t[w->cur].nbytes);
    }
    return atomic_commit(&w->f);
}

void gguf_write_abort(gguf_writer *w) {
    if (!w->open) return;
    w->open = 0;
    atomic_abort(&w->f);
}
