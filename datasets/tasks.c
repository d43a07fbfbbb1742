#include "datasets/tasks.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/hash.h"

/* Uniform integer in [lo, hi] from the splitmix64 stream s (fixed by the seed). */
static int draw(uint64_t *s, int lo, int hi) {
    return lo + (int)(hash_splitmix64(s) % (uint64_t)(hi - lo + 1));
}

task_split task_question_split(const char *question) {
    return hash_fnv1a64(question, strlen(question)) % 10 == 0 ? SPLIT_TEST : SPLIT_TRAIN;
}

const char *task_kind_name(task_kind k) {
    static const char *names[TASK_KIND_COUNT] = {"arith", "linear", "word"};
    return (unsigned)k < TASK_KIND_COUNT ? names[k] : "?";
}

int task_kinds_parse(const char *list, unsigned *mask) {
    *mask = 0;
    if (strcmp(list, "all") == 0) {
        *mask = (1u << TASK_KIND_COUNT) - 1;
        return 0;
    }
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int found = 0;
        for (int k = 0; k < TASK_KIND_COUNT; k++)
            if (strlen(task_kind_name((task_kind)k)) == n && strncmp(p, task_kind_name((task_kind)k), n) == 0) {
                *mask |= 1u << k;
                found = 1;
            }
        if (!found) return -1;
        p = e ? e + 1 : p + n;
    }
    return *mask ? 0 : -1;
}

/* Appends a formatted line to the reasoning. */
static void step(task_item *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void step(task_item *it, const char *fmt, ...) {
    size_t n = strlen(it->reasoning);
    if (n && n + 1 < sizeof it->reasoning) it->reasoning[n++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->reasoning + n, sizeof it->reasoning - n, fmt, ap);
    va_end(ap);
}

static int apply(int a, char op, int b) { return op == '+' ? a + b : op == '-' ? a - b : a * b; }

/* Operands small enough that each step is an arithmetic fact a tiny model can learn: sums and
 * differences of numbers up to 20, products of numbers up to 12, every result in [0, 144]. */
static int ok_step(int a, char op, int b) {
    if (op == '*') return a >= 0 && a <= 12 && b >= 0 && b <= 12;
    int r = apply(a, op, b);
    return a >= 0 && b >= 0 && r >= 0 && r <= 144;
}

static char draw_op(uint64_t *s) { return "+-*"[draw(s, 0, 2)]; }
static int draw_operand(uint64_t *s, char op) { return op == '*' ? draw(s, 2, 9) : draw(s, 1, 20); }

/* One arithmetic item; returns 0 if the draw broke a constraint (the caller draws again). */
static int gen_arith(task_item *it, uint64_t *s) {
    int shape = draw(s, 0, 3);
    char o1 = draw_op(s), o2 = draw_op(s), o3 = draw_op(s);
    int a = draw_operand(s, o1), b = draw_operand(s, o1), c = draw_operand(s, o2),
        d = draw_operand(s, o3);
    int r1, r2, r3;
    switch (shape) {
    case 0: /* (a o1 b) o2 c */
        r1 = apply(a, o1, b);
        if (!ok_step(a, o1, b) || !ok_step(r1, o2, c)) return 0;
        r2 = apply(r1, o2, c);
        snprintf(it->question, sizeof it->question, "Compute (%d %c %d) %c %d.", a, o1, b, o2, c);
        step(it, "%d %c %d = %d.", a, o1, b, r1);
        step(it, "%d %c %d = %d.", r1, o2, c, r2);
        snprintf(it->answer, sizeof it->answer, "%d", r2);
        return 1;
    case 1: /* a o1 (b o2 c) */
        b = draw_operand(s, o2);
        a = draw_operand(s, o1);
        r1 = apply(b, o2, c);
        if (!ok_step(b, o2, c) || !ok_step(a, o1, r1)) return 0;
        r2 = apply(a, o1, r1);
        snprintf(it->question, sizeof it->question, "Compute %d %c (%d %c %d).", a, o1, b, o2, c);
        step(it, "%d %c %d = %d.", b, o2, c, r1);
        step(it, "%d %c %d = %d.", a, o1, r1, r2);
        snprintf(it->answer, sizeof it->answer, "%d", r2);
        return 1;
    case 2: /* (a o1 b) o2 (c o3 d) */
        c = draw_operand(s, o3);
        r1 = apply(a, o1, b);
        r2 = apply(c, o3, d);
        if (!ok_step(a, o1, b) || !ok_step(c, o3, d) || !ok_step(r1, o2, r2)) return 0;
        r3 = apply(r1, o2, r2);
        snprintf(it->question, sizeof it->question, "Compute (%d %c %d) %c (%d %c %d).", a, o1, b,
                 o2, c, o3, d);
        step(it, "%d %c %d = %d.", a, o1, b, r1);
        step(it, "%d %c %d = %d.", c, o3, d, r2);
        step(it, "%d %c %d = %d.", r1, o2, r2, r3);
        snprintf(it->answer, sizeof it->answer, "%d", r3);
        return 1;
    default: /* a o1 b o2 c: multiplication first, then left to right */
        if (o2 == '*' && o1 != '*') {
            b = draw_operand(s, o2);
            r1 = apply(b, o2, c);
            if (!ok_step(b, o2, c) || !ok_step(a, o1, r1)) return 0;
            r2 = apply(a, o1, r1);
            step(it, "Multiplication comes first: %d * %d = %d.", b, c, r1);
            step(it, "%d %c %d = %d.", a, o1, r1, r2);
        } else {
            r1 = apply(a, o1, b);
            if (!ok_step(a, o1, b) || !ok_step(r1, o2, c)) return 0;
            r2 = apply(r1, o2, c);
            step(it, "%d %c %d = %d.", a, o1, b, r1);
            step(it, "%d %c %d = %d.", r1, o2, c, r2);
        }
        snprintf(it->question, sizeof it->question, "Compute %d %c %d %c %d.", a, o1, b, o2, c);
        snprintf(it->answer, sizeof it->answer, "%d", r2);
        return 1;
    }
}

static int gen_linear(task_item *it, uint64_t *s) {
    int a = draw(s, 2, 9), x = draw(s, 1, 12), b = draw(s, 1, 20);
    int form = draw(s, 0, 2);
    int ax = a * x;
    if (form == 0) { /* ax + b = c */
        snprintf(it->question, sizeof it->question, "Solve for x: %dx + %d = %d.", a, b, ax + b);
        step(it, "Subtract %d from both sides: %dx = %d - %d = %d.", b, a, ax + b, b, ax);
    } else if (form == 1) { /* ax - b = c */
        if (ax - b < 0) return 0;
        snprintf(it->question, sizeof it->question, "Solve for x: %dx - %d = %d.", a, b, ax - b);
        step(it, "Add %d to both sides: %dx = %d + %d = %d.", b, a, ax - b, b, ax);
    } else { /* b + ax = c */
        snprintf(it->question, sizeof it->question, "Solve for x: %d + %dx = %d.", b, a, ax + b);
        step(it, "Subtract %d from both sides: %dx = %d - %d = %d.", b, a, ax + b, b, ax);
    }
    step(it, "Divide both sides by %d: x = %d / %d = %d.", a, ax, a, x);
    snprintf(it->answer, sizeof it->answer, "%d", x);
    return 1;
}

static const char *names[] = {"Tom", "Ana", "Li", "Sara", "Omar", "Mia", "Ravi", "Eva"};
static const char *pronoun[] = {"He", "She", "He", "She", "He", "She", "He", "She"};
static const char *things[] = {"apples", "books", "coins", "pens", "stamps", "shells"};

static int gen_word(task_item *it, uint64_t *s) {
    int who = draw(s, 0, 7), what = draw(s, 0, 5), form = draw(s, 0, 2);
    const char *n = names[who], *p = pronoun[who], *t = things[what];
    int a, b, c, r1, r2;
    if (form == 0) {
        a = draw(s, 2, 20), b = draw(s, 1, 20), c = draw(s, 1, 20);
        r1 = a + b;
        r2 = r1 - c;
        if (r2 < 0) return 0;
        snprintf(it->question, sizeof it->question,
                 "%s has %d %s. %s gets %d more and gives away %d. How many %s does %s have now?",
                 n, a, t, p, b, c, t, n);
        step(it, "%s starts with %d and gets %d more: %d + %d = %d.", n, a, b, a, b, r1);
        step(it, "Then %s gives away %d: %d - %d = %d.", n, c, r1, c, r2);
    } else if (form == 1) {
        a = draw(s, 2, 9), b = draw(s, 2, 9), c = draw(s, 1, 20);
        r1 = a * b;
        r2 = r1 - c;
        if (r2 < 0) return 0;
        snprintf(it->question, sizeof it->question,
                 "%s has %d boxes with %d %s in each. %s loses %d. How many %s are left?", n, a, b,
                 t, p, c, t);
        step(it, "%d boxes of %d: %d * %d = %d.", a, b, a, b, r1);
        step(it, "After losing %d: %d - %d = %d.", c, r1, c, r2);
    } else {
        a = draw(s, 2, 9), b = draw(s, 2, 9), c = draw(s, 1, 20);
        r1 = a * b;
        r2 = r1 + c;
        snprintf(it->question, sizeof it->question,
                 "A bag holds %d %s. %s has %d bags and %d loose %s. How many %s in all?", a, t, n,
                 b, c, t, t);
        step(it, "%d bags of %d: %d * %d = %d.", b, a, b, a, r1);
        step(it, "Add the %d loose ones: %d + %d = %d.", c, r1, c, r2);
    }
    snprintf(it->answer, sizeof it->answer, "%d", r2);
    return 1;
}

int tasks_generate(task_item *items, int n, task_split split, uint64_t seed, unsigned kinds) {
    if (kinds == 0) kinds = (1u << TASK_KIND_COUNT) - 1;
    task_kind order[TASK_KIND_COUNT];
    int n_kinds = 0;
    for (int k = 0; k < TASK_KIND_COUNT; k++)
        if (kinds & (1u << k)) order[n_kinds++] = (task_kind)k;
    CHECK(n_kinds > 0);
    /* Accepted question hashes, open addressing: rejects repeats within the set. */
    size_t cap = 1;
    while (cap < (size_t)n * 4 + 16) cap <<= 1;
    uint64_t *seen = xcalloc(cap, sizeof *seen);
    uint64_t s = seed * 0x2545f4914f6cdd1dull + (uint64_t)split;
    for (int i = 0; i < n; i++) {
        task_item *it = &items[i];
        task_kind k = order[i % n_kinds];
        for (long tries = 0;; tries++) {
            if (tries == 1000000) {
                free(seen);
                return err_fail(R1_EINPUT, "tasks",
                                "could not find %d distinct %s questions for the %s split", n,
                                task_kind_name(k), split == SPLIT_TEST ? "test" : "train");
            }
            memset(it, 0, sizeof *it);
            int ok = k == TASK_ARITH ? gen_arith(it, &s) : k == TASK_LINEAR ? gen_linear(it, &s)
                                                                           : gen_word(it, &s);
            if (!ok || task_question_split(it->question) != split) continue;
            uint64_t h = hash_fnv1a64(it->question, strlen(it->question)) | 1;
            size_t j = h & (cap - 1);
            while (seen[j] && seen[j] != h) j = (j + 1) & (cap - 1);
            if (seen[j]) continue;
            seen[j] = h;
            break;
        }
        it->kind = k;
        snprintf(it->id, sizeof it->id, "%s-%s-%d", split == SPLIT_TEST ? "test" : "train",
                 task_kind_name(k), i);
    }
    free(seen);
    return R1_OK;
}

char *task_solution_text(const task_item *it) {
    return xasprintf("<think>\n%s\n</think>\n\nThe answer is \\boxed{%s}.", it->reasoning, it->answer);
}

int tasks_facts(char ***out, uint64_t seed, int per_record) {
    enum { MAX_FACTS = 8192 };
    char (*facts)[24] = xmalloc(sizeof *facts * MAX_FACTS);
    int n = 0;
    for (int a = 0; a <= 144; a++)
        for (int b = 1; b <= 20; b++) snprintf(facts[n++], sizeof facts[0], "%d + %d = %d.", a, b, a + b);
    for (int a = 1; a <= 164; a++)
        for (int b = 1; b <= 20 && b <= a; b++)
            snprintf(facts[n++], sizeof facts[0], "%d - %d = %d.", a, b, a - b);
    for (int a = 0; a <= 12; a++)
        for (int b = 0; b <= 12; b++) snprintf(facts[n++], sizeof facts[0], "%d * %d = %d.", a, b, a * b);
    for (int a = 2; a <= 12; a++)
        for (int b = 1; b <= 12; b++) snprintf(facts[n++], sizeof facts[0], "%d / %d = %d.", a * b, a, b);
    CHECK(n <= MAX_FACTS);
    uint64_t s = seed ^ 0xfac75ull;
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(hash_splitmix64(&s) % (uint64_t)(i + 1));
        char t[24];
        memcpy(t, facts[i], sizeof t);
        memcpy(facts[i], facts[j], sizeof t);
        memcpy(facts[j], t, sizeof t);
    }
    if (per_record < 1) per_record = 1;
    int n_rec = (n + per_record - 1) / per_record;
    char **rec = xcalloc((size_t)n_rec, sizeof *rec);
    for (int r = 0; r < n_rec; r++) {
        size_t cap = (size_t)per_record * 25 + 1, len = 0;
        rec[r] = xcalloc(1, cap);
        for (int k = r * per_record; k < n && k < (r + 1) * per_record; k++)
            len += (size_t)snprintf(rec[r] + len, cap - len, "%s%s", len ? "\n" : "", facts[k]);
    }
    free(facts);
    *out = rec;
    return n_rec;
}

/* One valid fact "a op b = c" whose first operand is a (within the ranges of tasks_facts), with
 * its b and c, or 0 when no operation fits a. */
static int fact_from(uint64_t *s, int a, char *buf, size_t cap, int *b_out, int *c) {
    for (int tries = 0; tries < 8; tries++) {
        int op = draw(s, 0, 3), b;
        if (op == 0 && a <= 144) {
            b = draw(s, 1, 20);
            *c = a + b;
        } else if (op == 1 && a >= 1 && a <= 164) {
            b = draw(s, 1, a < 20 ? a : 20);
            *c = a - b;
        } else if (op == 2 && a <= 12) {
            b = draw(s, 0, 12);
            *c = a * b;
        } else if (op == 3 && a >= 2) {
            int divs[11], nd = 0;
            for (int d = 2; d <= 12; d++)
                if (a % d == 0 && a / d <= 12) divs[nd++] = d;
            if (!nd) continue;
            b = divs[draw(s, 0, nd - 1)];
            *c = a / b;
        } else {
            continue;
        }
        snprintf(buf, cap, "%d %c %d = %d.", a, "+-*/"[op], b, *c);
        *b_out = b;
        return 1;
    }
    return 0;
}

int tasks_arith_prose(char ***out, uint64_t seed, int n_records, int per_record) {
    static const char *lead[] = {"Take %d and %d: ", "With %d and %d, ", "Start from %d and %d. ",
                                 "%d and %d: "};
    uint64_t s = seed ^ 0x9705eull;
    if (per_record < 1) per_record = 1;
    char **rec = xcalloc((size_t)n_records, sizeof *rec);
    for (int r = 0; r < n_records; r++) {
        size_t cap = (size_t)per_record * 96 + 1, len = 0;
        rec[r] = xcalloc(1, cap);
        for (int k = 0; k < per_record; k++) {
            char line[96], fact[32];
            int a = draw(&s, 0, 12), b, c, kind = draw(&s, 0, 1), n = 0;
            if (draw(&s, 0, 1)) a = draw(&s, 0, 144);
            if (!fact_from(&s, a, fact, sizeof fact, &b, &c))
                fact_from(&s, a = 6, fact, sizeof fact, &b, &c);
            if (kind == 0) { /* the operands named first, then used */
                n = snprintf(line, sizeof line, lead[draw(&s, 0, 3)], a, b);
                n += snprintf(line + n, sizeof line - (size_t)n, "%s", fact);
            } else { /* a chain: each result is the next fact's first operand */
                n = snprintf(line, sizeof line, "%s", fact);
                for (int links = draw(&s, 1, 2);
                     links > 0 && fact_from(&s, c, fact, sizeof fact, &b, &c); links--)
                    n += snprintf(line + n, sizeof line - (size_t)n, " %s", fact);
            }
            len += (size_t)snprintf(rec[r] + len, cap - len, "%s%s", len ? "\n" : "", line);
        }
    }
    *out = rec;
    return n_records;
}
