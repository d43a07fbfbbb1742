/* Trace directories: sets of (prompt, sample) pairs, manifests, settings comparison, and
 * reading every record of a directory. Layouts are in traces.h. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/hash.h"
#include "core/json.h"
#include "datasets/traces.h"

/* ---- pair sets ---------------------------------------------------------------------------- */

void trace_pairs_add(trace_pairs *s, int64_t a, int64_t b) {
    if (a >= b) return;
    /* First range that ends at or after a: it and the following ones overlapping [a, b] merge. */
    int lo = 0, hi = s->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (s->r[mid].b < a) lo = mid + 1;
        else hi = mid;
    }
    int j = lo;
    while (j < s->n && s->r[j].a <= b) {
        if (s->r[j].a < a) a = s->r[j].a;
        if (s->r[j].b > b) b = s->r[j].b;
        j++;
    }
    /* Ranges lo..j-1 are replaced by the one [a, b). */
    if (j == lo) {
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 16;
            s->r = xrealloc(s->r, sizeof *s->r * (size_t)s->cap);
        }
        memmove(s->r + lo + 1, s->r + lo, sizeof *s->r * (size_t)(s->n - lo));
        s->n++;
    } else if (j > lo + 1) {
        memmove(s->r + lo + 1, s->r + j, sizeof *s->r * (size_t)(s->n - j));
        s->n -= j - lo - 1;
    }
    s->r[lo].a = a;
    s->r[lo].b = b;
}

void trace_pairs_add_set(trace_pairs *s, const trace_pairs *t) {
    for (int i = 0; i < t->n; i++) trace_pairs_add(s, t->r[i].a, t->r[i].b);
}

int trace_pairs_contains(const trace_pairs *s, int64_t x) {
    int lo = 0, hi = s->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (s->r[mid].b <= x) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->n && s->r[lo].a <= x;
}

int64_t trace_pairs_count(const trace_pairs *s) {
    int64_t n = 0;
    for (int i = 0; i < s->n; i++) n += s->r[i].b - s->r[i].a;
    return n;
}

int trace_pairs_overlap(const trace_pairs *s, const trace_pairs *t, int64_t *x) {
    int i = 0, j = 0;
    while (i < s->n && j < t->n) {
        int64_t a = s->r[i].a > t->r[j].a ? s->r[i].a : t->r[j].a;
        int64_t b = s->r[i].b < t->r[j].b ? s->r[i].b : t->r[j].b;
        if (a < b) {
            if (x) *x = a;
            return 1;
        }
        if (s->r[i].b < t->r[j].b) i++;
        else j++;
    }
    return 0;
}

void trace_pairs_free(trace_pairs *s) {
    free(s->r);
    memset(s, 0, sizeof *s);
}

/* ---- names ---------------------------------------------------------------------------------- */

char *trace_manifest_name(int rank, int world_size) {
    return world_size == 1 ? xstrdup("manifest.json") : xasprintf("manifest-r%05d.json", rank);
}

char *trace_shard_name(int rank, int world_size, int index) {
    return world_size == 1 ? xasprintf("shard-%06d.tar.zst", index)
                           : xasprintf("shard-r%05d-%06d.tar.zst", rank, index);
}

/* A shard name a manifest may list: a plain file name, never a path. */
static int shard_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 15 || n > 200 || strncmp(s, "shard-", 6) != 0 || strcmp(s + n - 8, ".tar.zst") != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return 0;
    return strstr(s, "..") == NULL;
}

/* ---- settings ------------------------------------------------------------------------------- */

void trace_settings_hash(const cJSON *settings, char out[17]) {
    char *text = cJSON_PrintUnformatted(settings);
    CHECK(text);
    hash_hex64(out, hash_fnv1a64(text, strlen(text)));
    cJSON_free(text);
}

static void diff_append(char **acc, const char *path, const cJSON *a, const cJSON *b) {
    char *ta = a ? cJSON_PrintUnformatted(a) : xstrdup("(absent)");
    char *tb = b ? cJSON_PrintUnformatted(b) : xstrdup("(absent)");
    char *next = xasprintf("%s%s%s: %s here, %s there", *acc ? *acc : "", *acc ? "; " : "", path,
                           ta, tb);
    free(*acc);
    *acc = next;
    if (a) cJSON_free(ta);
    else free(ta);
    if (b) cJSON_free(tb);
    else free(tb);
}

static void diff_walk(char **acc, const char *prefix, const cJSON *a, const cJSON *b) {
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, a) {
            char *p = *prefix ? xasprintf("%s.%s", prefix, it->string) : xstrdup(it->string);
            diff_walk(acc, p, it, cJSON_GetObjectItemCaseSensitive(b, it->string));
            free(p);
        }
        cJSON_ArrayForEach(it, b) {
            if (cJSON_GetObjectItemCaseSensitive(a, it->string)) continue;
            char *p = *prefix ? xasprintf("%s.%s", prefix, it->string) : xstrdup(it->string);
            diff_append(acc, p, NULL, it);
            free(p);
        }
        return;
    }
    if (!a || !b || !cJSON_Compare(a, b, 1)) diff_append(acc, prefix, a, b);
}

int trace_settings_diff(const cJSON *here, const cJSON *there, char **diff) {
    *diff = NULL;
    diff_walk(diff, "", here, there);
    return *diff != NULL;
}

/* ---- manifests ------------------------------------------------------------------------------ */

void trace_manifest_add_shard(trace_manifest *m, const char *name, int64_t records, uint64_t bytes,
                              const trace_pairs *pairs) {
    m->shards = xrealloc(m->shards, sizeof *m->shards * (size_t)(m->n_shards + 1));
    trace_shard_info *s = &m->shards[m->n_shards++];
    memset(s, 0, sizeof *s);
    s->name = xstrdup(name);
    s->records = records;
    s->bytes = bytes;
    trace_pairs_add_set(&s->pairs, pairs);
}

int64_t trace_manifest_records(const trace_manifest *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_shards; i++) n += m->shards[i].records;
    return n;
}

void trace_manifest_free(trace_manifest *m) {
    cJSON_Delete(m->settings);
    for (int i = 0; i < m->n_shards; i++) {
        free(m->shards[i].name);
        trace_pairs_free(&m->shards[i].pairs);
    }
    free(m->shards);
    memset(m, 0, sizeof *m);
}

static int read_shard_entry(trace_manifest *m, const cJSON *it, const char *path) {
    const char *name;
    int64_t records, bytes;
    const cJSON *pairs;
    if (!cJSON_IsObject(it) || json_get_str(it, "name", &name, path) != 1 ||
        json_get_int(it, "records", &records, path) != 1 ||
        json_get_int(it, "bytes", &bytes, path) != 1 ||
        json_get_arr(it, "pairs", &pairs, path) != 1)
        return err_fail(R1_EINPUT, path, "shard %d: needs name, records, bytes and pairs",
                        m->n_shards);
    if (!shard_name_ok(name))
        return err_fail(R1_EINPUT, path, "\"%s\" is not a shard file name", name);
    if (records < 0 || bytes < 0)
        return err_fail(R1_EINPUT, path, "shard %s: negative counts", name);
    trace_pairs set = {0};
    int64_t last = -1;
    const cJSON *r;
    cJSON_ArrayForEach(r, pairs) {
        const cJSON *a = cJSON_GetArrayItem(r, 0), *b = cJSON_GetArrayItem(r, 1);
        if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) != 2 || !json_is_int(a) ||
            !json_is_int(b) || a->valuedouble <= (double)last || b->valuedouble <= a->valuedouble) {
            trace_pairs_free(&set);
            return err_fail(R1_EINPUT, path,
                            "shard %s: \"pairs\" must be sorted, disjoint [start, end) ranges",
                            name);
        }
        trace_pairs_add(&set, (int64_t)a->valuedouble, (int64_t)b->valuedouble);
        last = (int64_t)b->valuedouble;
    }
    if (trace_pairs_count(&set) != records) {
        trace_pairs_free(&set);
        return err_fail(R1_EINPUT, path, "shard %s: %lld records but its pairs count %lld", name,
                        (long long)records, (long long)trace_pairs_count(&set));
    }
    trace_manifest_add_shard(m, name, records, (uint64_t)bytes, &set);
    trace_pairs_free(&set);
    return R1_OK;
}

static int manifest_from_json(trace_manifest *m, const cJSON *root, const char *path) {
    const char *format, *hash;
    int64_t version, rank, world, total;
    const cJSON *settings, *shards;
    int complete = 0;
    if (!cJSON_IsObject(root) || json_get_str(root, "format", &format, path) != 1 ||
        strcmp(format, TRACE_FORMAT) != 0)
        return err_fail(R1_EINPUT, path, "not a trace manifest (\"format\": \"%s\" missing)",
                        TRACE_FORMAT);
    if (json_get_int(root, "version", &version, path) != 1 || version != TRACE_VERSION)
        return err_fail(R1_EINPUT, path, "manifest version is not %d", TRACE_VERSION);
    if (json_get_int(root, "rank", &rank, path) != 1 ||
        json_get_int(root, "world_size", &world, path) != 1 || world < 1 || world > 1000000 ||
        rank < 0 || rank >= world)
        return err_fail(R1_EINPUT, path, "needs 0 <= rank < world_size");
    if (json_get_obj(root, "settings", &settings, path) != 1 ||
        json_get_str(root, "settings_hash", &hash, path) != 1 ||
        json_get_int(root, "pairs_total", &total, path) != 1 || total < 0 ||
        json_get_arr(root, "shards", &shards, path) != 1 ||
        json_get_bool(root, "complete", &complete, path) < 0)
        return err_fail(R1_EINPUT, path,
                        "needs settings, settings_hash, pairs_total, complete and shards");
    int64_t samples;
    if (json_get_int(settings, "samples", &samples, path) != 1 || samples < 1)
        return err_fail(R1_EINPUT, path, "settings.samples must be an integer >= 1");
    m->rank = (int)rank;
    m->world_size = (int)world;
    m->pairs_total = total;
    int64_t skipped = 0;
    if (json_get_int(root, "pairs_skipped", &skipped, path) < 0 || skipped < 0)
        return err_fail(R1_EINPUT, path, "pairs_skipped must be an integer >= 0");
    m->pairs_skipped = skipped;
    m->complete = complete;
    m->settings = cJSON_Duplicate(settings, 1);
    trace_settings_hash(m->settings, m->settings_hash);
    if (strcmp(m->settings_hash, hash) != 0)
        return err_fail(R1_EINPUT, path, "settings_hash %s does not match its settings (%s)", hash,
                        m->settings_hash);
    const cJSON *it;
    cJSON_ArrayForEach(it, shards) TRY(read_shard_entry(m, it, path));
    /* Shards of one manifest never share a pair or a name. */
    trace_pairs all = {0};
    for (int i = 0; i < m->n_shards; i++) {
        int64_t x;
        for (int j = 0; j < i; j++)
            if (strcmp(m->shards[i].name, m->shards[j].name) == 0) {
                trace_pairs_free(&all);
                return err_fail(R1_EINPUT, path, "shard %s is listed twice", m->shards[i].name);
            }
        if (trace_pairs_overlap(&all, &m->shards[i].pairs, &x)) {
            trace_pairs_free(&all);
            return err_fail(R1_EINPUT, path, "pair %lld is listed by two shards", (long long)x);
        }
        trace_pairs_add_set(&all, &m->shards[i].pairs);
    }
    trace_pairs_free(&all);
    return R1_OK;
}

int trace_manifest_parse(trace_manifest *m, const char *text, size_t len, const char *where) {
    memset(m, 0, sizeof *m);
    cJSON *root;
    TRY(json_parse(&root, text, len, where));
    int rc = manifest_from_json(m, root, where);
    cJSON_Delete(root);
    if (rc) trace_manifest_free(m);
    return rc;
}

int trace_manifest_read(trace_manifest *m, const char *path) {
    memset(m, 0, sizeof *m);
    char *text;
    size_t len;
    TRY(file_read_all(path, 1ull << 30, &text, &len));
    int rc = trace_manifest_parse(m, text, len, path);
    free(text);
    return rc;
}

int trace_manifest_write(const trace_manifest *m, const char *path) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", TRACE_FORMAT);
    cJSON_AddNumberToObject(root, "version", TRACE_VERSION);
    cJSON_AddNumberToObject(root, "rank", m->rank);
    cJSON_AddNumberToObject(root, "world_size", m->world_size);
    cJSON_AddItemToObject(root, "settings", cJSON_Duplicate(m->settings, 1));
    char hash[17];
    trace_settings_hash(m->settings, hash);
    cJSON_AddStringToObject(root, "settings_hash", hash);
    cJSON_AddNumberToObject(root, "pairs_total", (double)m->pairs_total);
    cJSON_AddNumberToObject(root, "pairs_skipped", (double)m->pairs_skipped);
    cJSON_AddNumberToObject(root, "records", (double)trace_manifest_records(m));
    cJSON_AddBoolToObject(root, "complete", m->complete);
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(root, "updated", when);
    cJSON *shards = cJSON_AddArrayToObject(root, "shards");
    for (int i = 0; i < m->n_shards; i++) {
        const trace_shard_info *s = &m->shards[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", s->name);
        cJSON_AddNumberToObject(o, "records", (double)s->records);
        cJSON_AddNumberToObject(o, "bytes", (double)s->bytes);
        cJSON *pairs = cJSON_AddArrayToObject(o, "pairs");
        for (int j = 0; j < s->pairs.n; j++) {
            cJSON *r = cJSON_CreateArray();
            cJSON_AddItemToArray(r, cJSON_CreateNumber((double)s->pairs.r[j].a));
            cJSON_AddItemToArray(r, cJSON_CreateNumber((double)s->pairs.r[j].b));
            cJSON_AddItemToArray(pairs, r);
        }
        cJSON_AddItemToArray(shards, o);
    }
    /* Compact: a long run lists many ranges and rewrites this file after every shard. */
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    CHECK(text);
    size_t n = strlen(text);
    char *line = xmalloc(n + 2);
    memcpy(line, text, n);
    line[n] = '\n';
    cJSON_free(text);
    int rc = file_write_atomic(path, line, n + 1);
    free(line);
    return rc;
}

/* ---- directories ---------------------------------------------------------------------------- */

static int is_manifest_name(const char *s) {
    if (strcmp(s, "manifest.json") == 0) return 1;
    size_t n = strlen(s);
    if (n != 20 || strncmp(s, "manifest-r", 10) != 0 || strcmp(s + 15, ".json") != 0) return 0;
    for (int i = 10; i < 15; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void trace_dir_close(trace_dir *d) {
    for (int i = 0; i < d->n; i++) {
        trace_manifest_free(&d->m[i]);
        free(d->names[i]);
    }
    free(d->m);
    free(d->names);
    free(d->dir);
    memset(d, 0, sizeof *d);
}

static int dir_check(trace_dir *d) {
    trace_pairs all = {0};
    int rc = R1_OK;
    for (int i = 0; i < d->n && !rc; i++) {
        char *path = path_join(d->dir, d->names[i]);
        char *diff;
        if (i > 0 && trace_settings_diff(d->m[i].settings, d->m[0].settings, &diff)) {
            rc = err_fail(R1_EINPUT, path, "made with other settings than %s: %s", d->names[0],
                          diff);
            free(diff);
        }
        for (int s = 0; s < d->m[i].n_shards && !rc; s++) {
            const trace_shard_info *sh = &d->m[i].shards[s];
            char *sp = path_join(d->dir, sh->name);
            struct stat st;
            int64_t x;
            if (stat(sp, &st) != 0) {
                rc = err_fail(R1_EINPUT, path, "lists shard %s, which is missing", sh->name);
            } else if (trace_pairs_overlap(&all, &sh->pairs, &x)) {
                rc = err_fail(R1_EINPUT, path,
                              "shard %s holds pair %lld, which another shard holds too", sh->name,
                              (long long)x);
            }
            trace_pairs_add_set(&all, &sh->pairs);
            free(sp);
        }
        free(path);
    }
    trace_pairs_free(&all);
    return rc;
}

int trace_dir_open(trace_dir *d, const char *dir) {
    memset(d, 0, sizeof *d);
    DIR *dh = opendir(dir);
    if (!dh) return err_fail(R1_EINPUT, dir, "cannot open the trace directory");
    d->dir = xstrdup(dir);
    struct dirent *de;
    int cap = 0;
    while ((de = readdir(dh)) != NULL) {
        if (!is_manifest_name(de->d_name)) continue;
        if (d->n == cap) {
            cap = cap ? 2 * cap : 8;
            d->names = xrealloc(d->names, sizeof *d->names * (size_t)cap);
        }
        d->names[d->n++] = xstrdup(de->d_name);
    }
    closedir(dh);
    if (d->n > 1) qsort(d->names, (size_t)d->n, sizeof *d->names, cmp_str);
    d->m = xcalloc((size_t)(d->n ? d->n : 1), sizeof *d->m);
    for (int i = 0; i < d->n; i++) {
        char *path = path_join(dir, d->names[i]);
        int rc = trace_manifest_read(&d->m[i], path);
        free(path);
        if (rc) {
            trace_dir_close(d);
            return rc;
        }
    }
    int rc = dir_check(d);
    if (rc) trace_dir_close(d);
    return rc;
}

void trace_dir_pairs(const trace_dir *d, trace_pairs *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < d->n; i++)
        for (int s = 0; s < d->m[i].n_shards; s++) trace_pairs_add_set(out, &d->m[i].shards[s].pairs);
}

/* ---- reading a whole directory -------------------------------------------------------------- */

struct trace_reader {
    trace_dir d;
    int mi, si;                /* the shard being read: manifest mi, shard si */
    trace_shard_reader *shard;
    char *shard_path;
    int64_t in_shard;          /* records read from it */
    int64_t samples;
};

int trace_reader_open(trace_reader **out, const char *dir) {
    *out = NULL;
    trace_reader *r = xcalloc(1, sizeof *r);
    int rc = trace_dir_open(&r->d, dir);
    if (rc) {
        free(r);
        return rc;
    }
    if (r->d.n == 0) {
        trace_dir_close(&r->d);
        free(r);
        err_fail(R1_EINPUT, dir, "no manifest.json or manifest-r*.json here");
        return err_hint("is this the --out directory of `r1-distill generate`?");
    }
    int64_t samples = 1;
    json_get_int(r->d.m[0].settings, "samples", &samples, dir);
    r->samples = samples;
    *out = r;
    return R1_OK;
}

const trace_dir *trace_reader_dir(const trace_reader *r) { return &r->d; }

static int finish_shard(trace_reader *r) {
    const trace_shard_info *sh = &r->d.m[r->mi].shards[r->si];
    int rc = R1_OK;
    if (r->in_shard != sh->records)
        rc = err_fail(R1_EINPUT, r->shard_path, "holds %lld records; its manifest says %lld",
                      (long long)r->in_shard, (long long)sh->records);
    trace_shard_close(r->shard);
    r->shard = NULL;
    free(r->shard_path);
    r->shard_path = NULL;
    r->si++;
    return rc;
}

int trace_reader_next(trace_reader *r, trace_record *rec, int *have) {
    *have = 0;
    for (;;) {
        if (r->mi >= r->d.n) {
            trace_record_clear(rec);
            return R1_OK;
        }
        if (r->si >= r->d.m[r->mi].n_shards) {
            r->mi++;
            r->si = 0;
            continue;
        }
        const trace_shard_info *sh = &r->d.m[r->mi].shards[r->si];
        if (!r->shard) {
            r->shard_path = path_join(r->d.dir, sh->name);
            r->in_shard = 0;
            TRY(trace_shard_open(&r->shard, r->shard_path));
        }
        int got;
        TRY(trace_shard_next(r->shard, rec, &got));
        if (!got) {
            TRY(finish_shard(r));
            continue;
        }
        int64_t pair = (rec->line - 1) * r->samples + rec->sample;
        if (rec->sample >= r->samples || !trace_pairs_contains(&sh->pairs, pair))
            return err_fail(R1_EINPUT, r->shard_path,
                            "record %s is not among the pairs its manifest lists", rec->key);
        r->in_shard++;
        rec->shard = sh->name;
        *have = 1;
        return R1_OK;
    }
}

void trace_reader_close(trace_reader *r) {
    if (!r) return;
    trace_shard_close(r->shard);
    free(r->shard_path);
    trace_dir_close(&r->d);
    free(r);
}
