/* r1-distill traces ls|stats|cat|merge: look into trace directories and merge rank outputs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cli.h"
#include "core/error.h"
#include "core/stats.h"
#include "core/fileio.h"
#include "core/json.h"
#include "datasets/traces.h"

static const char *t_key, *t_out;
static int64_t t_limit;
static int t_json, t_topk, t_partial;

static const cli_opt traces_opts[] = {
    {"key", OPT_STRING, &t_key, NULL, 0, "KEY", "cat: only the record with this key"},
    {"limit", OPT_INT, &t_limit, "0", 0, "N", "cat: at most N records (0: all)"},
    {"topk", OPT_FLAG, &t_topk, NULL, 0, NULL,
     "cat: add the .topk member as \"topk\": {k, ids, logprobs, chosen}"},
    {"json", OPT_FLAG, &t_json, NULL, 0, NULL, "stats: print one JSON object"},
    {"out", OPT_STRING, &t_out, NULL, 0, "DIR", "merge: the directory to write (required)"},
    {"partial", OPT_FLAG, &t_partial, NULL, 0, NULL,
     "merge: accept inputs that do not hold every (prompt, sample) pair"},
};

static const cli_spec traces_spec = {
    .command = "traces",
    .summary = "List, count, print and merge trace directories written by `generate`.",
    .positional = "ls|stats|cat|merge DIR...",
    .opts = traces_opts,
    .n_opts = sizeof traces_opts / sizeof *traces_opts,
    .details =
        "  ls DIR              shards of every manifest: name, records, bytes; totals\n"
        "  stats DIR           records, prompts, finish and stop reasons, token-length percentiles\n"
        "  cat DIR             records as JSON lines (--key, --limit, --topk)\n"
        "  merge DIR... --out OUT\n"
        "                      one directory with one manifest from the outputs of all ranks\n"
        "                      (hard links where possible); refuses differing settings, a pair\n"
        "                      held twice, and missing pairs unless --partial.\n"
        "Ranks that share one directory need no merge: readers follow every manifest in it.",
};

/* ---- ls --------------------------------------------------------------------------------------- */

static int traces_ls(const char *dir) {
    trace_dir d;
    TRY(trace_dir_open(&d, dir));
    if (d.n == 0) {
        trace_dir_close(&d);
        return err_fail(R1_EINPUT, dir, "no manifest.json or manifest-r*.json here");
    }
    int64_t records = 0, shards = 0;
    uint64_t bytes = 0;
    printf("%-32s %10s %14s\n", "shard", "records", "bytes");
    for (int i = 0; i < d.n; i++)
        for (int s = 0; s < d.m[i].n_shards; s++) {
            const trace_shard_info *sh = &d.m[i].shards[s];
            printf("%-32s %10lld %14llu\n", sh->name, (long long)sh->records,
                   (unsigned long long)sh->bytes);
            records += sh->records;
            bytes += sh->bytes;
            shards++;
        }
    int64_t skipped = 0;
    for (int i = 0; i < d.n; i++) skipped += d.m[i].pairs_skipped;
    printf("%lld shards, %lld records, %llu bytes; %lld of %lld (prompt, sample) pairs",
           (long long)shards, (long long)records, (unsigned long long)bytes, (long long)records,
           (long long)d.m[0].pairs_total);
    if (skipped) printf(" (%lld skipped as bad)", (long long)skipped);
    printf("\n");
    for (int i = 0; i < d.n; i++)
        printf("%s: rank %d of %d, %s\n", d.names[i], d.m[i].rank, d.m[i].world_size,
               d.m[i].complete ? "complete" : "incomplete");
    trace_dir_close(&d);
    return R1_OK;
}

/* ---- stats ------------------------------------------------------------------------------------ */

typedef struct {
    char *name;
    int64_t n;
} counter;

static void count(counter **c, int *n, const char *name) {
    for (int i = 0; i < *n; i++)
        if (strcmp((*c)[i].name, name) == 0) {
            (*c)[i].n++;
            return;
        }
    *c = xrealloc(*c, sizeof **c * (size_t)(*n + 1));
    (*c)[*n] = (counter){xstrdup(name), 1};
    (*n)++;
}

static cJSON *lengths_json(const i64_list *l) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "mean", round(i64_list_mean(l) * 10) / 10);
    cJSON_AddNumberToObject(o, "min", l->n ? (double)l->v[0] : 0);
    cJSON_AddNumberToObject(o, "p50", (double)i64_list_percentile(l, 50));
    cJSON_AddNumberToObject(o, "p90", (double)i64_list_percentile(l, 90));
    cJSON_AddNumberToObject(o, "p99", (double)i64_list_percentile(l, 99));
    cJSON_AddNumberToObject(o, "max", l->n ? (double)l->v[l->n - 1] : 0);
    return o;
}

static int traces_stats(const char *dir) {
    trace_reader *r;
    TRY(trace_reader_open(&r, dir));
    trace_record rec = {0};
    int have, rc;
    int64_t records = 0, with_topk = 0, closed = 0, with_text = 0;
    i64_list comp = {0}, prompt = {0}, lines = {0};
    counter *finish = NULL, *stop = NULL;
    int n_finish = 0, n_stop = 0;
    while ((rc = trace_reader_next(r, &rec, &have)) == R1_OK && have) {
        records++;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(rec.rec, "completion_token_ids");
        const cJSON *pids = cJSON_GetObjectItemCaseSensitive(rec.rec, "prompt_token_ids");
        i64_list_push(&comp, cJSON_GetArraySize(ids));
        i64_list_push(&prompt, cJSON_IsArray(pids) ? cJSON_GetArraySize(pids) : 0);
        i64_list_push(&lines, rec.line);
        const char *s;
        count(&finish, &n_finish, json_get_str(rec.rec, "finish_reason", &s, "") == 1 ? s : "?");
        count(&stop, &n_stop, json_get_str(rec.rec, "stop_reason", &s, "") == 1 ? s : "?");
        int b = 0;
        if (json_get_bool(rec.rec, "think_closed", &b, "") == 1) {
            with_text++;
            closed += b;
        }
        with_topk += rec.topk_data != NULL;
    }
    trace_record_clear(&rec);
    int64_t total = trace_reader_dir(r)->m[0].pairs_total;
    trace_reader_close(r);
    if (rc) return rc;
    i64_list_sort(&comp);
    i64_list_sort(&prompt);
    i64_list_sort(&lines);
    int64_t prompts = 0;
    for (int64_t i = 0; i < lines.n; i++) prompts += i == 0 || lines.v[i] != lines.v[i - 1];

    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "records", (double)records);
    cJSON_AddNumberToObject(o, "pairs_total", (double)total);
    cJSON_AddNumberToObject(o, "prompts", (double)prompts);
    cJSON *f = cJSON_AddObjectToObject(o, "finish_reason");
    for (int i = 0; i < n_finish; i++) cJSON_AddNumberToObject(f, finish[i].name, (double)finish[i].n);
    cJSON *st = cJSON_AddObjectToObject(o, "stop_reason");
    for (int i = 0; i < n_stop; i++) cJSON_AddNumberToObject(st, stop[i].name, (double)stop[i].n);
    cJSON_AddItemToObject(o, "completion_tokens", lengths_json(&comp));
    cJSON_AddItemToObject(o, "prompt_tokens", lengths_json(&prompt));
    if (with_text) cJSON_AddNumberToObject(o, "think_closed", (double)closed);
    cJSON_AddNumberToObject(o, "with_topk", (double)with_topk);
    if (t_json) {
        char *text = json_print(o);
        fputs(text, stdout);
        free(text);
    } else {
        printf("records            %lld of %lld (prompt, sample) pairs, %lld prompts\n",
               (long long)records, (long long)total, (long long)prompts);
        printf("finish_reason     ");
        for (int i = 0; i < n_finish; i++) printf(" %s %lld", finish[i].name, (long long)finish[i].n);
        printf("\nstop_reason       ");
        for (int i = 0; i < n_stop; i++) printf(" %s %lld", stop[i].name, (long long)stop[i].n);
        printf("\n");
        const char *names[2] = {"completion_tokens", "prompt_tokens"};
        for (int k = 0; k < 2; k++) {
            const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, names[k]);
            printf("%-18s mean %.1f  min %.0f  p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n", names[k],
                   cJSON_GetObjectItem(l, "mean")->valuedouble,
                   cJSON_GetObjectItem(l, "min")->valuedouble,
                   cJSON_GetObjectItem(l, "p50")->valuedouble,
                   cJSON_GetObjectItem(l, "p90")->valuedouble,
                   cJSON_GetObjectItem(l, "p99")->valuedouble,
                   cJSON_GetObjectItem(l, "max")->valuedouble);
        }
        if (with_text)
            printf("think_closed       %lld of %lld\n", (long long)closed, (long long)with_text);
        printf("with .topk         %lld\n", (long long)with_topk);
    }
    cJSON_Delete(o);
    for (int i = 0; i < n_finish; i++) free(finish[i].name);
    for (int i = 0; i < n_stop; i++) free(stop[i].name);
    free(finish);
    free(stop);
    free(comp.v);
    free(prompt.v);
    free(lines.v);
    return R1_OK;
}

/* ---- cat -------------------------------------------------------------------------------------- */

static cJSON *topk_json(const trace_topk *t) {
    cJSON *o = cJSON_CreateObject(), *ids = cJSON_CreateArray(), *lps = cJSON_CreateArray();
    cJSON_AddNumberToObject(o, "k", t->k);
    for (uint32_t i = 0; i < t->n; i++) {
        cJSON *a = cJSON_CreateArray(), *b = cJSON_CreateArray();
        for (uint32_t j = 0; j < t->k; j++) {
            cJSON_AddItemToArray(a, cJSON_CreateNumber(t->ids[(size_t)i * t->k + j]));
            cJSON_AddItemToArray(b, cJSON_CreateNumber(t->logprobs[(size_t)i * t->k + j]));
        }
        cJSON_AddItemToArray(ids, a);
        cJSON_AddItemToArray(lps, b);
    }
    cJSON_AddItemToObject(o, "ids", ids);
    cJSON_AddItemToObject(o, "logprobs", lps);
    cJSON *ch = cJSON_AddArrayToObject(o, "chosen");
    for (uint32_t i = 0; i < t->n; i++) cJSON_AddItemToArray(ch, cJSON_CreateNumber(t->chosen[i]));
    return o;
}

static int traces_cat(const char *dir) {
    trace_reader *r;
    TRY(trace_reader_open(&r, dir));
    trace_record rec = {0};
    int have, rc, found = 0;
    int64_t printed = 0;
    while ((rc = trace_reader_next(r, &rec, &have)) == R1_OK && have) {
        if (t_key && strcmp(rec.key, t_key) != 0) continue;
        if (t_topk && rec.topk_data) cJSON_AddItemToObject(rec.rec, "topk", topk_json(&rec.topk));
        char *text = cJSON_PrintUnformatted(rec.rec);
        printf("%s\n", text);
        cJSON_free(text);
        found = 1;
        if (++printed == t_limit || t_key) break;
    }
    trace_record_clear(&rec);
    trace_reader_close(r);
    if (rc) return rc;
    if (t_key && !found) return err_fail(R1_EINPUT, dir, "no record with key \"%s\"", t_key);
    return R1_OK;
}

/* ---- merge ------------------------------------------------------------------------------------ */

/* Links (or, across filesystems, copies) src to dst under a temporary name, then renames. */
static int place_file(const char *src, const char *dst) {
    char *tmp = xasprintf("%s.tmp.%ld", dst, (long)getpid());
    unlink(tmp);
    if (link(src, tmp) != 0) {
        if (errno != EXDEV && errno != EPERM && errno != EMLINK) {
            int e = errno;
            free(tmp);
            return err_fail(R1_ERUNTIME, dst, "cannot link %s: %s", src, strerror(e));
        }
        file_map m;
        int rc = file_map_open(&m, src);
        if (!rc) {
            rc = file_write_atomic(tmp, m.data, m.size);
            file_map_close(&m);
        }
        if (rc) {
            unlink(tmp);
            free(tmp);
            return rc;
        }
    }
    int rc = R1_OK;
    if (rename(tmp, dst) != 0) {
        rc = err_fail(R1_ERUNTIME, dst, "cannot rename into place: %s", strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

/* Out may be fresh, or hold an earlier merge (only manifest.json, shards, temporary files). */
static int check_merge_out(const char *out, const trace_manifest *first) {
    if (!path_exists(out)) return dir_create(out);
    if (!path_is_dir(out)) return err_fail(R1_EINPUT, out, "is not a directory");
    DIR *dh = opendir(out);
    if (!dh) return err_fail(R1_EINPUT, out, "cannot list: %s", strerror(errno));
    struct dirent *de;
    int rc = R1_OK;
    while ((de = readdir(dh)) != NULL && !rc) {
        const char *n = de->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0) continue;
        if (strncmp(n, "manifest-r", 10) == 0)
            rc = err_fail(R1_EINPUT, out, "holds rank manifests (%s); merge into a new directory",
                          n);
        else if (strncmp(n, "shard-", 6) != 0 && strncmp(n, "manifest.json", 13) != 0 &&
                 strcmp(n, ".generate.lock") != 0 && strcmp(n, "generate.log.jsonl") != 0)
            rc = err_fail(R1_EINPUT, out, "is not empty (%s); merge into a new directory", n);
    }
    closedir(dh);
    if (rc) return rc;
    char *mp = path_join(out, "manifest.json");
    if (path_exists(mp)) {
        trace_manifest old;
        rc = trace_manifest_read(&old, mp);
        char *diff = NULL;
        if (!rc && trace_settings_diff(old.settings, first->settings, &diff)) {
            rc = err_fail(R1_EINPUT, mp, "was made with other settings: %s", diff);
            free(diff);
        }
        if (!rc) trace_manifest_free(&old);
    }
    free(mp);
    return rc;
}

static int traces_merge(char **dirs, int n_dirs) {
    if (!t_out) return err_fail(R1_EINPUT, "--out", "merge needs --out DIR, a new directory");
    trace_dir *d = xcalloc((size_t)n_dirs, sizeof *d);
    int rc = R1_OK, nd = 0;
    for (; nd < n_dirs && !rc; nd++) {
        char *a = realpath(dirs[nd], NULL), *b = realpath(t_out, NULL);
        if (a && b && strcmp(a, b) == 0)
            rc = err_fail(R1_EINPUT, t_out, "is one of the inputs; merge into a new directory");
        free(a);
        free(b);
        if (!rc) rc = trace_dir_open(&d[nd], dirs[nd]);
        if (!rc && d[nd].n == 0) rc = err_fail(R1_EINPUT, dirs[nd], "holds no manifest");
    }
    const trace_manifest *first = rc ? NULL : &d[0].m[0];
    trace_pairs all = {0};
    trace_manifest out = {0};
    int64_t skipped = 0;
    for (int i = 0; i < nd && !rc; i++)
        for (int j = 0; j < d[i].n && !rc; j++) {
            const trace_manifest *m = &d[i].m[j];
            char *diff = NULL;
            if (trace_settings_diff(m->settings, first->settings, &diff)) {
                rc = err_fail(R1_EINPUT, dirs[i], "%s was made with other settings than %s/%s: %s",
                              d[i].names[j], dirs[0], d[0].names[0], diff);
                free(diff);
                break;
            }
            skipped += m->pairs_skipped;
            for (int s = 0; s < m->n_shards && !rc; s++) {
                int64_t x;
                if (trace_pairs_overlap(&all, &m->shards[s].pairs, &x))
                    rc = err_fail(R1_EINPUT, dirs[i],
                                  "pair %lld (%s) is held by two inputs; merge each rank once",
                                  (long long)x, m->shards[s].name);
                trace_pairs_add_set(&all, &m->shards[s].pairs);
            }
        }
    if (!rc) {
        int64_t have = trace_pairs_count(&all), want = first->pairs_total - skipped;
        if (have < want && !t_partial) {
            rc = err_fail(R1_EINPUT, dirs[0], "the inputs hold %lld of %lld (prompt, sample) pairs",
                          (long long)have, (long long)want);
            err_hint("finish the missing ranks (re-run their generate), or pass --partial");
        }
        if (!rc) rc = check_merge_out(t_out, first);
        out.rank = 0;
        out.world_size = 1;
        out.settings = rc ? NULL : cJSON_Duplicate(first->settings, 1);
        out.pairs_total = first ? first->pairs_total : 0;
        out.pairs_skipped = skipped;
        out.complete = have >= want;
    }
    int index = 0;
    for (int i = 0; i < nd && !rc; i++)
        for (int j = 0; j < d[i].n && !rc; j++)
            for (int s = 0; s < d[i].m[j].n_shards && !rc; s++) {
                const trace_shard_info *sh = &d[i].m[j].shards[s];
                char *name = trace_shard_name(0, 1, index++);
                char *src = path_join(d[i].dir, sh->name), *dst = path_join(t_out, name);
                rc = place_file(src, dst);
                if (!rc) trace_manifest_add_shard(&out, name, sh->records, sh->bytes, &sh->pairs);
                free(name);
                free(src);
                free(dst);
            }
    if (!rc) {
        char *mp = path_join(t_out, "manifest.json");
        rc = trace_manifest_write(&out, mp);
        free(mp);
    }
    if (!rc) {
        /* Shards of an earlier, larger merge into the same directory are no longer listed. */
        for (int k = index;; k++) {
            char *name = trace_shard_name(0, 1, k), *p = path_join(t_out, name);
            int gone = unlink(p) != 0;
            free(name);
            free(p);
            if (gone) break;
        }
        dir_sync(t_out);
        printf("merged %d shards, %lld records from %d director%s into %s%s\n", index,
               (long long)trace_manifest_records(&out), nd, nd == 1 ? "y" : "ies", t_out,
               out.complete ? "" : " (partial)");
    }
    trace_manifest_free(&out);
    trace_pairs_free(&all);
    for (int i = 0; i < nd; i++) trace_dir_close(&d[i]);
    free(d);
    return rc;
}

int cmd_traces(int argc, char **argv) {
    int n;
    char **pos;
    cli_parse(&traces_spec, argc, argv, &n, &pos);
    if (n < 2) {
        err_fail(R1_EINPUT, "traces", "expected a subcommand and a directory");
        err_hint("r1-distill traces ls|stats|cat|merge DIR...");
        err_exit();
    }
    const char *sub = pos[0];
    int rc;
    if (strcmp(sub, "merge") == 0) {
        rc = traces_merge(pos + 1, n - 1);
    } else if (n != 2) {
        rc = err_fail(R1_EINPUT, sub, "takes one directory");
    } else if (strcmp(sub, "ls") == 0) {
        rc = traces_ls(pos[1]);
    } else if (strcmp(sub, "stats") == 0) {
        rc = traces_stats(pos[1]);
    } else if (strcmp(sub, "cat") == 0) {
        rc = traces_cat(pos[1]);
    } else {
        rc = err_fail(R1_EINPUT, sub, "unknown subcommand (ls, stats, cat, merge)");
    }
    if (rc) err_exit();
    return 0;
}
