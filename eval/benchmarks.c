/* Benchmark readers: the published JSONL layouts of GSM8K, MATH / MATH-500, AIME and
 * GPQA-Diamond, and the built-in tasks (layouts and rules in eval/benchmarks.h). */
#include "eval/benchmarks.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/hash.h"
#include "core/json.h"
#include "datasets/jsonl.h"
#include "datasets/tasks.h"

static const char *const layout_names[] = {"tasks", "gsm8k", "math", "aime", "gpqa"};

const char *bench_layout_name(bench_layout l) {
    return (unsigned)l < sizeof layout_names / sizeof *layout_names ? layout_names[l] : "?";
}

int bench_layout_is_math(bench_layout l) { return l != BENCH_GPQA; }

char *answer_gold_text(const cJSON *v) {
    if (cJSON_IsString(v)) return xstrdup(v->valuestring);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return NULL;
    double x = v->valuedouble;
    if (x == floor(x) && fabs(x) < 9007199254740992.0) return xasprintf("%.0f", x);
    for (int prec = 1; prec <= 17; prec++) {
        char *s = xasprintf("%.*g", prec, x);
        if (strtod(s, NULL) == x) return s;
        free(s);
    }
    return xasprintf("%.17g", x);
}

void bench_gpqa_permutation(int perm[4], uint64_t seed, const char *id) {
    uint64_t state = hash_mix64(hash_mix64(seed ^ HASH_GOLDEN64) ^ hash_fnv1a64(id, strlen(id)));
    for (int i = 0; i < 4; i++) perm[i] = i;
    for (int i = 3; i > 0; i--) {
        state += HASH_GOLDEN64; /* splitmix64's step */
        int j = (int)(hash_mix64(state) % (uint64_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ---- items ---------------------------------------------------------------------------------- */

static void push_item(bench_set *b, int *cap, bench_item it) {
    if (b->n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        b->items = xrealloc(b->items, sizeof *b->items * (size_t)*cap);
    }
    it.kind = answer_gold_kind(it.gold);
    b->items[b->n++] = it;
}

static char *trimmed(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    return xstrndup(s, n);
}

/* The first present field of a list; NULL if none. */
static const cJSON *first_field(const cJSON *rec, const char *const *names, const char **which) {
    for (int i = 0; names[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, names[i]);
        if (v && !cJSON_IsNull(v)) {
            if (which) *which = names[i];
            return v;
        }
    }
    return NULL;
}

static const char *const id_fields[] = {"id", "ID", "unique_id", "Record ID", "problem_idx", "idx",
                                        NULL};
static const char *const question_fields[] = {"problem", "Problem", "question", "Question", NULL};
static const char *const answer_fields[] = {"answer", "Answer", NULL};
static const char *const solution_fields[] = {"solution", "Solution", NULL};

/* The record's field names, for hints. */
static char *record_fields(const cJSON *rec) {
    char buf[512];
    size_t n = 0;
    int k = 0;
    buf[0] = 0;
    for (const cJSON *it = rec->child; it && n < sizeof buf - 8; it = it->next, k++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", k ? ", " : "",
                              it->string ? it->string : "?");
    return xstrdup(k ? buf : "(none)");
}

static int missing(const cJSON *rec, const char *where, const char *what, bench_layout l) {
    err_fail(R1_EINPUT, where, "the record has no %s (%s layout)", what, bench_layout_name(l));
    char *names = record_fields(rec);
    err_hint("its fields are: %s", names);
    free(names);
    return R1_EINPUT;
}

static int need_string(const cJSON *rec, const char *field, const char *where, bench_layout l,
                       char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, field);
    char what[128];
    snprintf(what, sizeof what, "\"%s\" field", field);
    if (!v || cJSON_IsNull(v)) return missing(rec, where, what, l);
    if (!cJSON_IsString(v)) return err_fail(R1_EINPUT, where, "\"%s\" must be a string", field);
    *out = trimmed(v->valuestring);
    if (!**out) {
        free(*out);
        *out = NULL;
        return err_fail(R1_EINPUT, where, "\"%s\" is empty", field);
    }
    return R1_OK;
}

static int record_id(const cJSON *rec, const char *where, int64_t line, char **id) {
    const char *which = NULL;
    const cJSON *v = first_field(rec, id_fields, &which);
    if (!v) {
        *id = xasprintf("%lld", (long long)line);
        return R1_OK;
    }
    if (cJSON_IsString(v) && v->valuestring[0]) {
        *id = xstrdup(v->valuestring);
        return R1_OK;
    }
    if (json_is_int(v)) {
        *id = xasprintf("%.0f", v->valuedouble);
        return R1_OK;
    }
    return err_fail(R1_EINPUT, where, "\"%s\" must be a non-empty string or an integer", which);
}

/* GSM8K: the gold is what follows the last "####", without thousands separators' commas. */
static int parse_gsm8k(bench_item *it, const cJSON *rec, const char *where) {
    TRY(need_string(rec, "question", where, BENCH_GSM8K, &it->question));
    char *answer;
    TRY(need_string(rec, "answer", where, BENCH_GSM8K, &answer));
    const char *h = NULL, *p = answer;
    while ((p = strstr(p, "####")) != NULL) h = p, p += 4;
    if (!h) {
        free(answer);
        return err_fail(R1_EINPUT, where, "\"answer\" has no \"#### <number>\" line (gsm8k layout)");
    }
    it->gold = trimmed(h + 4);
    free(answer);
    if (!it->gold[0]) return err_fail(R1_EINPUT, where, "nothing follows \"####\" in \"answer\"");
    it->prompt = xstrdup(it->question);
    return R1_OK;
}

static int parse_math(bench_item *it, const cJSON *rec, const char *where, bench_layout l) {
    const char *qf = NULL;
    const cJSON *q = first_field(rec, question_fields, &qf);
    if (!q)
        return missing(rec, where,
                       "question field (\"problem\", \"Problem\", \"question\" or \"Question\")", l);
    TRY(need_string(rec, qf, where, l, &it->question));
    const char *af = NULL;
    const cJSON *a = first_field(rec, answer_fields, &af);
    if (a) {
        it->gold = answer_gold_text(a);
        if (!it->gold) return err_fail(R1_EINPUT, where, "\"%s\" must be a string or a number", af);
        char *t = trimmed(it->gold);
        free(it->gold);
        it->gold = t;
        if (!t[0]) return err_fail(R1_EINPUT, where, "\"%s\" is empty", af);
    } else {
        const char *sf = NULL;
        const cJSON *s = first_field(rec, solution_fields, &sf);
        if (!s)
            return missing(rec, where,
                           "answer field (\"answer\" or \"Answer\", or a \"solution\" with "
                           "\\boxed{})", l);
        if (!cJSON_IsString(s)) return err_fail(R1_EINPUT, where, "\"%s\" must be a string", sf);
        if ((!strstr(s->valuestring, "\\boxed") && !strstr(s->valuestring, "\\fbox")) ||
            !answer_extract(&it->gold, s->valuestring, ANSWER_MATH))
            return err_fail(R1_EINPUT, where, "no \"answer\" field and no \\boxed{} answer in \"%s\"",
                            sf);
    }
    it->prompt = xstrdup(it->question);
    return R1_OK;
}

static int parse_gpqa(bench_item *it, const cJSON *rec, const char *where, uint64_t seed) {
    static const char *const opt_fields[4] = {"Correct Answer", "Incorrect Answer 1",
                                              "Incorrect Answer 2", "Incorrect Answer 3"};
    char *opts[4] = {0};
    int rc = need_string(rec, "Question", where, BENCH_GPQA, &it->question);
    for (int i = 0; i < 4 && !rc; i++) rc = need_string(rec, opt_fields[i], where, BENCH_GPQA, &opts[i]);
    if (!rc) {
        int perm[4];
        bench_gpqa_permutation(perm, seed, it->id);
        char letter = 0;
        for (int i = 0; i < 4; i++)
            if (perm[i] == 0) letter = (char)('A' + i);
        it->prompt = xasprintf(
            "Answer the following multiple choice question. The last line of your response should "
            "be of the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of "
            "ABCD. Think step by step before answering.\n\n%s\n\nA) %s\nB) %s\nC) %s\nD) %s",
            it->question, opts[perm[0]], opts[perm[1]], opts[perm[2]], opts[perm[3]]);
        it->gold = xasprintf("%c", letter);
    }
    for (int i = 0; i < 4; i++) free(opts[i]);
    return rc;
}

/* The layout of a file from its first record. */
static int detect_layout(const cJSON *rec, const char *where, bench_layout *l) {
    if (cJSON_GetObjectItemCaseSensitive(rec, "Correct Answer")) {
        *l = BENCH_GPQA;
        return R1_OK;
    }
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(rec, "question");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(rec, "answer");
    if (cJSON_IsString(q) && cJSON_IsString(a) && strstr(a->valuestring, "####")) {
        *l = BENCH_GSM8K;
        return R1_OK;
    }
    if (first_field(rec, question_fields, NULL) &&
        (first_field(rec, answer_fields, NULL) || first_field(rec, solution_fields, NULL))) {
        *l = BENCH_MATH;
        return R1_OK;
    }
    err_fail(R1_EINPUT, where, "cannot tell the benchmark layout from the first record");
    char *names = record_fields(rec);
    err_hint("its fields are: %s; expected GSM8K {question, answer with \"#### N\"}, "
             "MATH/AIME {problem, answer}, or GPQA {Question, Correct Answer, Incorrect Answer "
             "1-3}; name the layout as gsm8k:FILE, math:FILE, aime:FILE or gpqa:FILE",
             names);
    free(names);
    return R1_EINPUT;
}

static void item_free(bench_item *it) {
    free(it->id);
    free(it->question);
    free(it->prompt);
    free(it->gold);
}

/* ---- loading -------------------------------------------------------------------------------- */

static int load_tasks(bench_set *b, const char *spec) {
    /* tasks:SPLIT:N[:SEED[:KINDS]], KINDS a comma list of task families (datasets/tasks.h) */
    static const char *usage = "expected tasks:SPLIT:N[:SEED[:KINDS]], e.g. tasks:test:200 or "
                               "tasks:test:200:1:linear,word";
    char split[16] = "";
    long long n = 0, seed = 1;
    unsigned kinds = 0;
    int used = 0;
    const char *p = spec + 6;
    const char *c1 = strchr(p, ':');
    if (!c1 || (size_t)(c1 - p) >= sizeof split) return err_fail(R1_EINPUT, spec, "%s", usage);
    memcpy(split, p, (size_t)(c1 - p));
    split[c1 - p] = 0;
    int k = sscanf(c1 + 1, "%lld%n", &n, &used);
    const char *rest = c1 + 1 + used;
    if (k != 1) return err_fail(R1_EINPUT, spec, "%s", usage);
    if (*rest == ':') {
        int used2 = 0;
        if (sscanf(rest + 1, "%lld%n", &seed, &used2) != 1 || seed < 0 ||
            (rest[1 + used2] && rest[1 + used2] != ':'))
            return err_fail(R1_EINPUT, spec, "the seed must be a non-negative integer");
        rest += 1 + used2;
        if (*rest == ':' && task_kinds_parse(rest + 1, &kinds))
            return err_fail(R1_EINPUT, spec, "unknown task family in \"%s\" (arith, linear, word, all)",
                            rest + 1);
    } else if (*rest) {
        return err_fail(R1_EINPUT, spec, "%s", usage);
    }
    task_split sp;
    if (strcmp(split, "train") == 0) sp = SPLIT_TRAIN;
    else if (strcmp(split, "test") == 0) sp = SPLIT_TEST;
    else return err_fail(R1_EINPUT, spec, "unknown split \"%s\" (train or test)", split);
    if (n < 1 || n > 1000000) return err_fail(R1_EINPUT, spec, "N must be between 1 and 1000000");
    task_item *items = xcalloc((size_t)n, sizeof *items);
    int rc = tasks_generate(items, (int)n, sp, (uint64_t)seed, kinds);
    if (rc) {
        free(items);
        return err_context(spec);
    }
    int cap = 0;
    for (long long i = 0; i < n; i++)
        push_item(b, &cap, (bench_item){.id = xstrdup(items[i].id), .line = 0,
                                        .question = xstrdup(items[i].question),
                                        .prompt = xstrdup(items[i].question),
                                        .gold = xstrdup(items[i].answer)});
    free(items);
    b->layout = BENCH_TASKS;
    b->name = xstrdup(spec);
    return R1_OK;
}

static int cmp_item_id(const void *a, const void *b) {
    const bench_item *x = *(const bench_item *const *)a, *y = *(const bench_item *const *)b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Ids must be unique (each question draws its own random stream from its id). */
static int check_ids(const bench_set *b, const char *path) {
    const bench_item **order = xmalloc(sizeof *order * (size_t)(b->n ? b->n : 1));
    for (int i = 0; i < b->n; i++) order[i] = &b->items[i];
    qsort(order, (size_t)b->n, sizeof *order, cmp_item_id);
    const bench_item *dup = NULL, *first = NULL;
    for (int i = 1; i < b->n; i++)
        if (strcmp(order[i]->id, order[i - 1]->id) == 0 && (!dup || order[i]->line < dup->line)) {
            dup = order[i];
            first = order[i - 1];
        }
    int rc = R1_OK;
    if (dup) {
        char *where = xasprintf("%s:%lld", path, (long long)dup->line);
        rc = err_fail(R1_EINPUT, where, "question id \"%s\" is already used on line %lld", dup->id,
                      (long long)first->line);
        free(where);
    }
    free(order);
    return rc;
}

static int load_file(bench_set *b, const char *path, int forced, bench_layout layout,
                     uint64_t seed) {
    jsonl_reader *r;
    TRY(jsonl_open(&r, path));
    int cap = 0, rc = R1_OK, detected = forced;
    for (;;) {
        cJSON *rec;
        rc = jsonl_next(r, &rec);
        if (rc || !rec) break;
        const char *where = jsonl_where(r);
        if (!cJSON_IsObject(rec)) {
            cJSON_Delete(rec);
            rc = err_fail(R1_EINPUT, where, "expected a JSON object");
            break;
        }
        if (!detected) {
            rc = detect_layout(rec, where, &layout);
            detected = 1;
        }
        bench_item it = {.line = jsonl_line(r)};
        if (!rc) rc = record_id(rec, where, it.line, &it.id);
        if (!rc) {
            switch (layout) {
            case BENCH_GSM8K: rc = parse_gsm8k(&it, rec, where); break;
            case BENCH_GPQA: rc = parse_gpqa(&it, rec, where, seed); break;
            default: rc = parse_math(&it, rec, where, layout); break;
            }
        }
        cJSON_Delete(rec);
        if (rc) {
            item_free(&it);
            break;
        }
        push_item(b, &cap, it);
    }
    int64_t lines = jsonl_line(r);
    jsonl_close(r);
    if (rc) return rc;
    if (b->n == 0)
        return err_fail(R1_EINPUT, path, lines == 0 ? "no questions: the file is empty"
                                                    : "no questions: the file has only blank lines");
    TRY(check_ids(b, path));
    b->layout = layout;
    const char *slash = strrchr(path, '/');
    b->name = xstrdup(slash ? slash + 1 : path);
    return R1_OK;
}

int bench_load(bench_set *b, const char *spec, uint64_t shuffle_seed) {
    memset(b, 0, sizeof *b);
    b->spec = xstrdup(spec);
    int rc;
    if (strncmp(spec, "tasks:", 6) == 0) {
        rc = load_tasks(b, spec);
    } else {
        static const struct {
            const char *prefix;
            bench_layout l;
        } named[] = {{"gsm8k:", BENCH_GSM8K}, {"math:", BENCH_MATH}, {"aime:", BENCH_AIME},
                     {"gpqa:", BENCH_GPQA}};
        int forced = 0;
        bench_layout l = BENCH_MATH;
        const char *path = spec;
        for (size_t i = 0; i < sizeof named / sizeof *named; i++)
            if (strncmp(spec, named[i].prefix, strlen(named[i].prefix)) == 0) {
                forced = 1;
                l = named[i].l;
                path = spec + strlen(named[i].prefix);
            }
        rc = load_file(b, path, forced, l, shuffle_seed);
    }
    if (rc) bench_free(b);
    return rc;
}

void bench_free(bench_set *b) {
    for (int i = 0; i < b->n; i++) item_free(&b->items[i]);
    free(b->items);
    free(b->spec);
    free(b->name);
    memset(b, 0, sizeof *b);
}
