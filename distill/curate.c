/* The curation run: each record of a trace directory through the filters of distill/curate.h,
 * the survivors into new shards (the trace writer: crash-safe, a manifest after each shard),
 * and a report of what each filter removed. */
#include "distill/curate.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/stats.h"
#include "core/fileio.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/progress.h"
#include "datasets/traces.h"
#include "eval/benchmarks.h"
#include "eval/eval.h"

/* ---- one record ----------------------------------------------------------------------------- */

static int missing_field(const char *where, const char *field, const char *hint) {
    err_fail(R1_EINPUT, where, "the record has no \"%s\" field", field);
    return err_hint("%s", hint);
}

/* The prompt's text: the prompt string, or the user messages joined by newlines; NULL if the
 * record has neither (a prompt given as token ids). */
static char *prompt_text(const cJSON *rec) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(rec, "prompt");
    if (cJSON_IsString(p)) return xstrdup(p->valuestring);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec, "messages"), *it;
    if (!cJSON_IsArray(m)) return NULL;
    size_t n = 0;
    char *out = NULL;
    int any = 0;
    cJSON_ArrayForEach(it, m) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content) || strcmp(role->valuestring, "user"))
            continue;
        size_t k = strlen(content->valuestring);
        out = xrealloc(out, n + k + 2);
        if (any) out[n++] = '\n';
        memcpy(out + n, content->valuestring, k);
        n += k;
        out[n] = 0;
        any = 1;
    }
    return any ? out : NULL;
}

/* Tokens of the reasoning: up to the first </think> id when the tokenizer has that token,
 * else the reasoning re-encoded; all completion tokens without a tokenizer or a </think>. */
static int64_t reasoning_tokens(const curate_config *c, const cJSON *rec, const char *reasoning,
                                int closed) {
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(rec, "completion_token_ids");
    int64_t n = cJSON_GetArraySize(ids);
    if (!c->tok || !closed) return n;
    int end = tokenizer_token_id(c->tok, "</think>");
    if (end >= 0) {
        int64_t i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, ids) {
            if ((int)it->valuedouble == end) return i;
            i++;
        }
    }
    int *enc = NULL, k = 0;
    if (tokenizer_encode(c->tok, reasoning, strlen(reasoning), 0, &enc, &k) != R1_OK) {
        err_clear();
        k = (int)n;
    }
    free(enc);
    return k;
}

/* The first non-empty string among the comma-separated fields, or "unknown". */
static const char *record_source(const cJSON *rec, const char *fields) {
    for (const char *p = fields; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char key[128];
        if (n > 0 && n < sizeof key) {
            memcpy(key, p, n);
            key[n] = 0;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
            if (cJSON_IsString(v) && v->valuestring[0]) return v->valuestring;
        }
        p = comma ? comma + 1 : NULL;
    }
    return "unknown";
}

int curate_check(curate_verdict *v, const curate_config *c, const cJSON *rec, const char *where) {
    memset(v, 0, sizeof *v);
    const char *text, *finish;
    int got = json_get_str(rec, "text", &text, where);
    if (got < 0) return R1_EINPUT;
    if (!got)
        return missing_field(where, "text", "curate reads the generated text: generate the traces "
                             "with the teacher's tokenizer beside it");
    got = json_get_str(rec, "finish_reason", &finish, where);
    if (got < 0) return R1_EINPUT;
    if (!got) return missing_field(where, "finish_reason", "is this a record of `r1-distill generate`?");
    v->text = (char *)text;
    v->source = record_source(rec, c->source_field);

    const cJSON *g = cJSON_GetObjectItemCaseSensitive(rec, "gold");
    char *gold = NULL;
    if (g && !cJSON_IsNull(g) && !(gold = answer_gold_text(g)))
        return err_fail(R1_EINPUT, where, "\"gold\" must be a string or a number");
    if (!c->off[FILTER_INCORRECT] && !gold)
        return missing_field(where, "gold", "rejection sampling needs the ground truth (generate "
                             "--gold-field); --skip incorrect keeps traces unverified");
    if (c->decontam && !c->off[FILTER_DECONTAMINATED]) {
        char *pt = prompt_text(rec);
        if (!pt) {
            free(gold);
            return missing_field(where, "prompt", "decontamination reads the prompt text (a "
                                 "\"prompt\" string or user \"messages\"), not token ids");
        }
        v->fail[FILTER_DECONTAMINATED] = ngram_index_hits(c->decontam, pt, strlen(pt));
        free(pt);
    }

    char *reasoning, *answer;
    int closed;
    trace_split_think(text, &reasoning, &answer, &closed);
    const size_t rlen = strlen(reasoning);
    v->fail[FILTER_TRUNCATED] = strcmp(finish, "length") == 0;
    v->fail[FILTER_UNCLOSED_THINK] = !closed;
    v->fail[FILTER_EMPTY_ANSWER] = answer[0] == 0;
    if (!c->off[FILTER_INCORRECT]) {
        /* The whole text, as eval reads a response: the answer after the last </think>. */
        answer_verdict av;
        answer_verify(&av, text, gold);
        v->extracted = av.extracted;
        v->verified = 1;
        v->fail[FILTER_INCORRECT] = !av.correct;
    }
    if (!c->off[FILTER_MIXED_SCRIPT])
        v->fail[FILTER_MIXED_SCRIPT] = text_mixed_script_share(reasoning, rlen, NULL) > c->mixed_script_max;
    if (!c->off[FILTER_CODE_BLOCK])
        v->fail[FILTER_CODE_BLOCK] = gold && text_has_code_block(reasoning, rlen, c->code_min_lines);
    if (!c->off[FILTER_LONG_PARAGRAPH])
        v->fail[FILTER_LONG_PARAGRAPH] = text_longest_paragraph(reasoning, rlen) > c->max_paragraph_chars;
    if (!c->off[FILTER_REPETITION])
        v->fail[FILTER_REPETITION] =
            text_repetition_share(reasoning, rlen, c->repeat_ngram) > c->repeat_max;
    v->reasoning_tokens = reasoning_tokens(c, rec, reasoning, closed);
    free(reasoning);
    free(answer);
    free(gold);
    return R1_OK;
}

void curate_verdict_free(curate_verdict *v) {
    free(v->extracted);
    memset(v, 0, sizeof *v);
}

/* ---- small tables --------------------------------------------------------------------------- */

/* Kept samples per prompt line (open addressing; line 0 never occurs). */
typedef struct {
    int64_t *line;
    int *count;
    int64_t n, cap;
} line_counts;

static int64_t line_slot(const int64_t *lines, int64_t cap, int64_t line) {
    int64_t j = (int64_t)(hash_mix64((uint64_t)line) & (uint64_t)(cap - 1));
    while (lines[j] && lines[j] != line) j = (j + 1) & (cap - 1);
    return j;
}

static int *line_count(line_counts *t, int64_t line) {
    if (2 * (t->n + 1) > t->cap) {
        int64_t cap = t->cap ? 2 * t->cap : 1024;
        int64_t *lines = xcalloc((size_t)cap, sizeof *lines);
        int *counts = xcalloc((size_t)cap, sizeof *counts);
        for (int64_t i = 0; i < t->cap; i++) {
            if (!t->line[i]) continue;
            int64_t j = line_slot(lines, cap, t->line[i]);
            lines[j] = t->line[i];
            counts[j] = t->count[i];
        }
        free(t->line);
        free(t->count);
        t->line = lines;
        t->count = counts;
        t->cap = cap;
    }
    int64_t j = line_slot(t->line, t->cap, line);
    if (!t->line[j]) {
        t->line[j] = line;
        t->n++;
    }
    return &t->count[j];
}

typedef struct {
    char *name;
    int64_t input, kept;
} source_count;

enum { MAX_SOURCES = 10000 };

static source_count *source_of(source_count **s, int *n, const char *name) {
    for (int i = 0; i < *n; i++)
        if (strcmp((*s)[i].name, name) == 0) return &(*s)[i];
    if (*n == MAX_SOURCES) name = "(other sources)";
    for (int i = 0; i < *n; i++)
        if (strcmp((*s)[i].name, name) == 0) return &(*s)[i];
    *s = xrealloc(*s, sizeof **s * (size_t)(*n + 1));
    (*s)[*n] = (source_count){xstrdup(name), 0, 0};
    return &(*s)[(*n)++];
}

/* Nearest-rank percentiles of a list (sorted in place), as `traces stats` computes them. */
static cJSON *percentiles(i64_list *l) {
    i64_list_sort(l);
    cJSON *o = cJSON_CreateObject();
    static const int qs[3] = {10, 50, 90};
    static const char *const names[3] = {"p10", "p50", "p90"};
    for (int i = 0; i < 3; i++)
        cJSON_AddNumberToObject(o, names[i], (double)i64_list_percentile(l, qs[i]));
    cJSON_AddNumberToObject(o, "max", l->n ? (double)l->v[l->n - 1] : 0);
    cJSON_AddNumberToObject(o, "mean", round(i64_list_mean(l) * 10) / 10);
    return o;
}

/* ---- the output directory ------------------------------------------------------------------- */

typedef struct {
    const char *dir;
    char *man_path;
    trace_manifest man;
    trace_shard_writer *shard;
    char *shard_name;
    trace_pairs pairs;
    int next_index;
    int64_t shard_records;
} curate_out;

/* Refuses a directory that already holds trace shards or a manifest. */
static int out_prepare(const char *dir) {
    TRY(dir_create(dir));
    DIR *dh = opendir(dir);
    if (!dh) return err_fail(R1_EINPUT, dir, "cannot open the output directory");
    struct dirent *de;
    int taken = 0;
    while ((de = readdir(dh)) != NULL)
        if (strncmp(de->d_name, "shard-", 6) == 0 || strncmp(de->d_name, "manifest", 8) == 0 ||
            strcmp(de->d_name, "report.json") == 0)
            taken = 1;
    closedir(dh);
    if (taken) {
        err_fail(R1_EINPUT, dir, "already holds shards, a manifest or a report");
        return err_hint("curate writes a fresh directory: choose another --out, or pass "
                        "--overwrite to replace what a previous curate wrote there");
    }
    return R1_OK;
}

static int out_commit(curate_out *o) {
    if (!o->shard) return R1_OK;
    int64_t records = trace_shard_records(o->shard);
    uint64_t bytes = 0;
    int rc = trace_shard_commit(o->shard, &bytes);
    o->shard = NULL;
    if (!rc) {
        trace_manifest_add_shard(&o->man, o->shard_name, records, bytes, &o->pairs);
        rc = trace_manifest_write(&o->man, o->man_path);
    }
    trace_pairs_free(&o->pairs);
    return rc;
}

static int out_add(curate_out *o, const char *key, const char *json, const trace_record *rec,
                   int64_t pair) {
    if (!o->shard) {
        free(o->shard_name);
        o->shard_name = trace_shard_name(0, 1, o->next_index++);
        char *path = path_join(o->dir, o->shard_name);
        int rc = trace_shard_create(&o->shard, path);
        free(path);
        TRY(rc);
        memset(&o->pairs, 0, sizeof o->pairs);
    }
    int rc = trace_shard_add(o->shard, key, json, strlen(json), rec->topk_data, rec->topk_size);
    if (rc) {
        trace_shard_discard(o->shard);
        o->shard = NULL;
        trace_pairs_free(&o->pairs);
        return rc;
    }
    trace_pairs_add(&o->pairs, pair, pair + 1);
    if (trace_shard_records(o->shard) >= o->shard_records) TRY(out_commit(o));
    return R1_OK;
}

static void out_free(curate_out *o) {
    if (o->shard) trace_shard_discard(o->shard);
    trace_pairs_free(&o->pairs);
    free(o->shard_name);
    free(o->man_path);
    trace_manifest_free(&o->man);
}

/* ---- the run -------------------------------------------------------------------------------- */

typedef struct {
    int64_t input, kept;
    int64_t removed[FILTER_COUNT]; /* first failure */
    int64_t flagged[FILTER_COUNT]; /* any failure (per-record filters) */
    source_count *sources;
    int n_sources;
    i64_list tokens_in, tokens_kept;
} curate_counts;

static cJSON *curation_settings(const curate_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON *off = cJSON_AddArrayToObject(o, "off");
    for (int f = 0; f < FILTER_COUNT; f++)
        if (c->off[f] || (f == FILTER_DECONTAMINATED && !c->decontam))
            cJSON_AddItemToArray(off, cJSON_CreateString(curate_filter_name((curate_filter)f)));
    cJSON_AddNumberToObject(o, "decontam_ngram", c->decontam ? c->decontam->n : 0);
    cJSON_AddNumberToObject(o, "decontam_questions", c->decontam ? (double)c->decontam->questions : 0);
    cJSON_AddNumberToObject(o, "mixed_script_max", c->mixed_script_max);
    cJSON_AddNumberToObject(o, "code_min_lines", c->code_min_lines);
    cJSON_AddNumberToObject(o, "max_paragraph_chars", (double)c->max_paragraph_chars);
    cJSON_AddNumberToObject(o, "repeat_ngram", c->repeat_ngram);
    cJSON_AddNumberToObject(o, "repeat_max", c->repeat_max);
    cJSON_AddNumberToObject(o, "near_dup", c->near_dup);
    cJSON_AddNumberToObject(o, "max_per_prompt", c->max_per_prompt);
    cJSON_AddStringToObject(o, "source_field", c->source_field);
    return o;
}

static int filter_on(const curate_config *c, int f) {
    if (f == FILTER_DECONTAMINATED) return c->decontam && !c->off[f];
    if (f == FILTER_MAX_PER_PROMPT) return c->max_per_prompt > 0 && !c->off[f];
    return !c->off[f];
}

static cJSON *build_report(const curate_config *c, curate_counts *k, const char *in,
                           const char *out, int shards, double seconds) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "traces", in);
    cJSON_AddStringToObject(r, "out", out);
    cJSON_AddNumberToObject(r, "input", (double)k->input);
    cJSON_AddNumberToObject(r, "kept", (double)k->kept);
    cJSON_AddNumberToObject(r, "kept_share", k->input ? (double)k->kept / (double)k->input : 0);
    cJSON_AddNumberToObject(r, "shards", shards);
    cJSON_AddStringToObject(r, "counting", "first failure, in the order of \"filters\"");
    cJSON *f = cJSON_AddObjectToObject(r, "filters");
    cJSON *fl = cJSON_AddObjectToObject(r, "flagged");
    cJSON *off = cJSON_AddArrayToObject(r, "off");
    for (int i = 0; i < FILTER_COUNT; i++) {
        const char *name = curate_filter_name((curate_filter)i);
        if (!filter_on(c, i)) {
            cJSON_AddItemToArray(off, cJSON_CreateString(name));
            continue;
        }
        cJSON_AddNumberToObject(f, name, (double)k->removed[i]);
        if (i < FILTER_PER_RECORD) cJSON_AddNumberToObject(fl, name, (double)k->flagged[i]);
    }
    cJSON *src = cJSON_AddObjectToObject(r, "acceptance_by_source");
    for (int i = 0; i < k->n_sources; i++) {
        cJSON *s = cJSON_AddObjectToObject(src, k->sources[i].name);
        cJSON_AddNumberToObject(s, "input", (double)k->sources[i].input);
        cJSON_AddNumberToObject(s, "kept", (double)k->sources[i].kept);
        cJSON_AddNumberToObject(s, "rate", k->sources[i].input ? (double)k->sources[i].kept /
                                                                     (double)k->sources[i].input : 0);
    }
    cJSON_AddItemToObject(r, "reasoning_tokens", percentiles(&k->tokens_kept));
    cJSON_AddItemToObject(r, "reasoning_tokens_input", percentiles(&k->tokens_in));
    cJSON_AddStringToObject(r, "reasoning_tokens_measure",
                            c->tok ? "tokens before </think> (tokenizer)"
                                   : "completion tokens (no --tokenizer given)");
    cJSON_AddItemToObject(r, "options", curation_settings(c));
    cJSON_AddNumberToObject(r, "seconds", round(seconds * 1000) / 1000);
    return r;
}

/* The first enabled per-record filter that fails, or -1. */
static int first_failure(const curate_config *c, const curate_verdict *v) {
    for (int f = 0; f < FILTER_PER_RECORD; f++)
        if (filter_on(c, f) && v->fail[f]) return f;
    return -1;
}

typedef struct {
    const curate_config *c;
    exact_index exact;
    near_index *near;
    line_counts per_prompt;
} dedup_state;

/* Filters 10-12 for a record that passed the others; adds it to the indexes when kept. */
static int dedup_verdict(dedup_state *d, const curate_verdict *v, int64_t line) {
    const curate_config *c = d->c;
    const size_t len = strlen(v->text);
    int *count = NULL;
    if (filter_on(c, FILTER_DUPLICATE) && exact_index_check(&d->exact, v->text, len, 0))
        return FILTER_DUPLICATE;
    if (filter_on(c, FILTER_NEAR_DUPLICATE) && near_index_check(d->near, v->text, len, 0, NULL))
        return FILTER_NEAR_DUPLICATE;
    if (filter_on(c, FILTER_MAX_PER_PROMPT)) {
        count = line_count(&d->per_prompt, line);
        if (*count >= c->max_per_prompt) return FILTER_MAX_PER_PROMPT;
    }
    if (filter_on(c, FILTER_DUPLICATE)) exact_index_check(&d->exact, v->text, len, 1);
    if (filter_on(c, FILTER_NEAR_DUPLICATE)) near_index_check(d->near, v->text, len, 1, NULL);
    if (count) (*count)++;
    return -1;
}

int curate_run(cJSON **report, const curate_config *c, const char *in, const char *out) {
    *report = NULL;
    const double t0 = clock_seconds();
    trace_reader *r;
    TRY(trace_reader_open(&r, in));
    const trace_dir *d = trace_reader_dir(r);
    int64_t total = 0, samples = 1, skipped = 0;
    for (int i = 0; i < d->n; i++) {
        total += trace_manifest_records(&d->m[i]);
        skipped += d->m[i].pairs_skipped;
    }
    json_get_int(d->m[0].settings, "samples", &samples, in);
    for (int i = 0; i < d->n; i++)
        if (!d->m[i].complete)
            fprintf(stderr, "r1-distill curate: note: %s/%s is incomplete (generation has not "
                    "finished); curating the shards it lists\n", in, d->names[i]);
    int rc = out_prepare(out);
    if (rc) {
        trace_reader_close(r);
        return rc;
    }

    curate_out o = {.dir = out, .shard_records = c->shard_records};
    o.man_path = path_join(out, "manifest.json");
    o.man.rank = 0;
    o.man.world_size = 1;
    o.man.settings = cJSON_Duplicate(d->m[0].settings, 1);
    cJSON *cur = curation_settings(c);
    char from_hash[17];
    trace_settings_hash(d->m[0].settings, from_hash);
    cJSON_AddStringToObject(cur, "from_settings_hash", from_hash);
    cJSON_DeleteItemFromObjectCaseSensitive(o.man.settings, "curation");
    cJSON_AddItemToObject(o.man.settings, "curation", cur);
    trace_settings_hash(o.man.settings, o.man.settings_hash);
    o.man.pairs_total = d->m[0].pairs_total;
    o.man.pairs_skipped = skipped;

    char *log_path = path_join(out, "curate.log.jsonl");
    progress *prog;
    rc = progress_open(&prog, "curate", "traces", total, 0, c->progress_interval, log_path);
    free(log_path);
    if (rc) {
        out_free(&o);
        trace_reader_close(r);
        return rc;
    }

    curate_counts k = {0};
    dedup_state dd = {.c = c, .near = near_index_create(c->near_dup)};
    trace_record rec = {0};
    int have;
    while ((rc = trace_reader_next(r, &rec, &have)) == R1_OK && have) {
        char *where = xasprintf("%s/%s: %s.json", in, rec.shard, rec.key);
        curate_verdict v;
        rc = curate_check(&v, c, rec.rec, where);
        free(where);
        if (rc) break;
        k.input++;
        i64_list_push(&k.tokens_in, v.reasoning_tokens);
        for (int f = 0; f < FILTER_PER_RECORD; f++) k.flagged[f] += v.fail[f] && filter_on(c, f);
        int fail = first_failure(c, &v);
        if (fail < 0) fail = dedup_verdict(&dd, &v, rec.line);
        source_count *sc = source_of(&k.sources, &k.n_sources, v.source);
        sc->input++;
        if (fail >= 0) {
            k.removed[fail]++;
        } else {
            k.kept++;
            sc->kept++;
            i64_list_push(&k.tokens_kept, v.reasoning_tokens);
            if (v.verified) {
                cJSON *vd = cJSON_CreateObject();
                if (v.extracted) cJSON_AddStringToObject(vd, "extracted", v.extracted);
                else cJSON_AddNullToObject(vd, "extracted");
                cJSON_AddBoolToObject(vd, "correct", 1);
                cJSON_DeleteItemFromObjectCaseSensitive(rec.rec, "verdict");
                cJSON_AddItemToObject(rec.rec, "verdict", vd);
            }
            char *json = cJSON_PrintUnformatted(rec.rec);
            CHECK(json);
            rc = out_add(&o, rec.key, json, &rec, (rec.line - 1) * samples + rec.sample);
            cJSON_free(json);
        }
        curate_verdict_free(&v);
        if (rc) break;
        progress_field pf[1] = {{"kept", (double)k.kept, 0, 0}};
        progress_update(prog, k.input, pf, 1, 0);
    }
    trace_record_clear(&rec);
    trace_reader_close(r);
    if (!rc) rc = out_commit(&o);
    if (!rc) {
        o.man.complete = 1;
        rc = trace_manifest_write(&o.man, o.man_path);
    }
    progress_field pf[1] = {{"kept", (double)k.kept, 0, 0}};
    progress_close(prog, k.input, pf, 1);
    if (!rc) *report = build_report(c, &k, in, out, o.man.n_shards, clock_seconds() - t0);
    out_free(&o);
    exact_index_free(&dd.exact);
    near_index_free(dd.near);
    free(dd.per_prompt.line);
    free(dd.per_prompt.count);
    for (int i = 0; i < k.n_sources; i++) free(k.sources[i].name);
    free(k.sources);
    free(k.tokens_in.v);
    free(k.tokens_kept.v);
    return rc;
}
