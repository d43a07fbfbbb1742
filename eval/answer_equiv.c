/* Answer equivalence: the shape of an answer (scalar, tuple/interval, set, list, union,
 * matrix, relation), then its scalars compared as text or by value.
 *
 * Order rules: tuples, intervals and matrices compare element by element in order, with the
 * same brackets ("(1,2]" is not "[1,2]"); sets ("\{1,2\}") and bare answer lists ("1, 2", the
 * MATH form of "all solutions") compare in any order, as multisets of the same size; a bare
 * list also matches a parenthesised tuple in the same order; unions of intervals compare in any
 * order. A relation ("2x+3y=5", "x<3") matches the same relation with equal sides, or its
 * mirror image ("3>x"). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/answer_parts.h"
#include "eval/eval.h"

enum { MAX_ITEMS = 256, MAX_SHAPE_DEPTH = 8 };

typedef enum { S_SCALAR, S_TUPLE, S_SET, S_LIST, S_UNION, S_MATRIX, S_REL } shape_kind;

typedef struct shape {
    shape_kind kind;
    char open, close;     /* S_TUPLE: '(' or '[', ')' or ']' */
    int rows, cols;       /* S_MATRIX: items row-major */
    char rel[3];          /* S_REL: "=", "!=", "<", "<=", ">", ">="; items[0] lhs, items[1] rhs */
    char *text;           /* S_SCALAR: canonical scalar */
    struct shape **items;
    int n;
} shape;

static void shape_free(shape *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) shape_free(s->items[i]);
    free(s->items);
    free(s->text);
    free(s);
}

static shape *shape_new(shape_kind kind) {
    shape *s = xcalloc(1, sizeof *s);
    s->kind = kind;
    return s;
}

static void shape_add(shape *s, shape *item) {
    s->items = xrealloc(s->items, sizeof *s->items * (size_t)(s->n + 1));
    s->items[s->n++] = item;
}

/* ---- splitting at the top level ------------------------------------------------------------- */

/* Depth change at s[i]: brackets of every kind, and "\{" "\}" as one more kind. Returns the
 * number of bytes the token takes (2 for "\{", "\}", and any other escaped character). */
static int bracket_step(const char *s, size_t i, int *depth) {
    if (s[i] == '\\' && s[i + 1]) {
        if (s[i + 1] == '{') (*depth)++;
        if (s[i + 1] == '}') (*depth)--;
        return 2;
    }
    if (s[i] == '(' || s[i] == '[' || s[i] == '{') (*depth)++;
    if (s[i] == ')' || s[i] == ']' || s[i] == '}') (*depth)--;
    return 1;
}

/* Byte offsets of top-level occurrences of any of the separators in s (up to max). */
static int split_points(const char *s, const char *const *seps, size_t *at, size_t *len, int max) {
    int n = 0, depth = 0;
    for (size_t i = 0; s[i];) {
        if (depth == 0) {
            for (int k = 0; seps[k]; k++) {
                size_t m = strlen(seps[k]);
                if (strncmp(s + i, seps[k], m) == 0) {
                    /* a command separator must not run into more letters ("\cup" vs "\cupx") */
                    if (seps[k][0] == '\\' && isalpha((unsigned char)s[i + m])) continue;
                    if (n >= max) return -1;
                    at[n] = i;
                    len[n] = m;
                    n++;
                    i += m;
                    goto next;
                }
            }
        }
        i += (size_t)bracket_step(s, i, &depth);
        if (depth < 0) return -1;
    next:;
    }
    return depth == 0 ? n : -1;
}

/* Does the bracket opening at s[0] close exactly at s[n - 1]? */
static int wraps_whole(const char *s, size_t n) {
    int depth = 0;
    for (size_t i = 0; i < n;) {
        i += (size_t)bracket_step(s, i, &depth);
        if (depth == 0) return i == n;
    }
    return 0;
}

/* "1,000,000" and "12,345.5": every comma groups exactly three digits and none is followed by a
 * space. Such a string is one number, not a list. */
static int is_thousands(const char *s) {
    const char *p = s;
    if (*p == '-' || *p == '+') p++;
    int lead = 0;
    while (isdigit((unsigned char)p[lead])) lead++;
    if (lead < 1 || lead > 3 || p[lead] != ',') return 0;
    p += lead;
    while (*p == ',') {
        if (!(isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
              isdigit((unsigned char)p[3])))
            return 0;
        p += 4;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return 0;
        while (isdigit((unsigned char)*p)) p++;
    }
    return *p == 0 || *p == '%' || *p == ' ';
}

static char *trimmed(const char *s, size_t n) {
    while (n > 0 && isspace((unsigned char)*s)) s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    return xstrndup(s, n);
}

static shape *shape_parse(const char *s, int depth);

/* Splits s[0..n) at the given points into items of shape `kind`. */
static shape *split_into(shape_kind kind, const char *s, size_t n, const size_t *at,
                         const size_t *len, int count, int depth) {
    shape *out = shape_new(kind);
    size_t start = 0;
    for (int k = 0; k <= count; k++) {
        size_t end = k < count ? at[k] : n;
        char *part = trimmed(s + start, end - start);
        if (part[0] || kind != S_SET || count > 0) shape_add(out, shape_parse(part, depth + 1));
        free(part);
        if (k < count) start = at[k] + len[k];
    }
    return out;
}

static shape *scalar(const char *s) {
    shape *sh = shape_new(S_SCALAR);
    sh->text = scalar_canon(s);
    return sh;
}

/* \begin{pmatrix} a & b \\ c & d \end{pmatrix} (also bmatrix, matrix, vmatrix, array). */
static shape *parse_matrix(const char *s, int depth) {
    const char *name = s + 7; /* after "\begin{" */
    const char *name_end = strchr(name, '}');
    if (!name_end) return NULL;
    const char *body = name_end + 1;
    if (strncmp(name, "array", 5) == 0 && *body == '{') { /* column spec */
        body = strchr(body, '}');
        if (!body) return NULL;
        body++;
    }
    char *endtag = xasprintf("\\end{%.*s}", (int)(name_end - name), name);
    size_t n = strlen(s), m = strlen(endtag);
    int ok = n >= m && strcmp(s + n - m, endtag) == 0;
    free(endtag);
    if (!ok) return NULL;
    char *inner = trimmed(body, (size_t)(s + n - m - body));
    static const char *const ROW[] = {"\\\\", NULL};
    static const char *const CELL[] = {"&", NULL};
    size_t at[MAX_ITEMS], len[MAX_ITEMS];
    int rows = split_points(inner, ROW, at, len, MAX_ITEMS);
    shape *mat = NULL;
    if (rows >= 0) {
        mat = shape_new(S_MATRIX);
        size_t start = 0;
        int cols = -1;
        for (int r = 0; r <= rows && mat; r++) {
            size_t end = r < rows ? at[r] : strlen(inner);
            char *row = trimmed(inner + start, end - start);
            if (r < rows) start = at[r] + len[r];
            if (!row[0] && r == rows) { /* a trailing "\\" */
                free(row);
                break;
            }
            size_t cat[MAX_ITEMS], clen[MAX_ITEMS];
            int c = split_points(row, CELL, cat, clen, MAX_ITEMS);
            if (c < 0 || (cols >= 0 && c + 1 != cols) || mat->n + c + 1 > MAX_ITEMS) {
                shape_free(mat);
                mat = NULL;
            } else {
                cols = c + 1;
                shape *cells = split_into(S_LIST, row, strlen(row), cat, clen, c, depth);
                for (int k = 0; k < cells->n; k++) shape_add(mat, cells->items[k]);
                cells->n = 0;
                shape_free(cells);
                mat->rows++;
                mat->cols = cols;
            }
            free(row);
        }
        if (mat && mat->rows == 0) {
            shape_free(mat);
            mat = NULL;
        }
    }
    free(inner);
    return mat;
}

static const char *const REL_OPS[] = {"<=", ">=", "!=", "<", ">", "=", NULL};

static shape *shape_parse_stripped(const char *s, int depth);

/* s is a latex_normalize()d answer; an assignment "x = ..." first loses its left side. */
static shape *shape_parse(const char *s, int depth) {
    char *t = strip_lhs(s);
    shape *sh = shape_parse_stripped(t, depth);
    free(t);
    return sh;
}

static shape *shape_parse_stripped(const char *s, int depth) {
    size_t n = strlen(s);
    size_t at[MAX_ITEMS], len[MAX_ITEMS];
    if (depth > MAX_SHAPE_DEPTH || n == 0) return scalar(s);
    if (strcmp(s, "\\emptyset") == 0) return shape_new(S_SET);
    if (is_thousands(s)) { /* "1,000" is one number */
        char *t = xstrdup(s);
        size_t w = 0;
        for (size_t r = 0; t[r]; r++)
            if (t[r] != ',') t[w++] = t[r];
        t[w] = 0;
        shape *sh = scalar(t);
        free(t);
        return sh;
    }
    if (strncmp(s, "\\begin{", 7) == 0) {
        shape *m = parse_matrix(s, depth);
        if (m) return m;
    }
    static const char *const UNION[] = {"\\cup", NULL};
    int c = split_points(s, UNION, at, len, MAX_ITEMS);
    if (c > 0) return split_into(S_UNION, s, n, at, len, c, depth);
    if (n >= 4 && strncmp(s, "\\{", 2) == 0 && strcmp(s + n - 2, "\\}") == 0 && wraps_whole(s, n)) {
        static const char *const COMMA[] = {",", NULL};
        char *inner = trimmed(s + 2, n - 4);
        c = split_points(inner, COMMA, at, len, MAX_ITEMS);
        shape *set = c >= 0 ? split_into(S_SET, inner, strlen(inner), at, len, c, depth) : NULL;
        free(inner);
        if (set) return set;
        return scalar(s);
    }
    if ((s[0] == '(' || s[0] == '[') && (s[n - 1] == ')' || s[n - 1] == ']') &&
        wraps_whole(s, n)) {
        static const char *const COMMA[] = {",", NULL};
        char *inner = trimmed(s + 1, n - 2);
        c = split_points(inner, COMMA, at, len, MAX_ITEMS);
        shape *t = NULL;
        if (c > 0) {
            t = split_into(S_TUPLE, inner, strlen(inner), at, len, c, depth);
            t->open = s[0];
            t->close = s[n - 1];
        }
        free(inner);
        if (t) return t;
    }
    /* answer lists: "1, 2", "x = 1; y = 2", "3 and 5", "2 or -2" */
    static const char *const LIST[] = {",", ";", " and ", " or ", NULL};
    c = split_points(s, LIST, at, len, MAX_ITEMS);
    if (c > 0) return split_into(S_LIST, s, n, at, len, c, depth);
    /* "1 \pm \sqrt{2}" is the list of its two values */
    static const char *const PM[] = {"\\pm", "\\mp", NULL};
    c = split_points(s, PM, at, len, MAX_ITEMS);
    if (c == 1) {
        shape *list = shape_new(S_LIST);
        for (int sign = 0; sign < 2; sign++) {
            char *t = xasprintf("%.*s%c(%s)", (int)at[0], s, sign ? '-' : '+', s + at[0] + len[0]);
            shape_add(list, shape_parse(t, depth + 1));
            free(t);
        }
        return list;
    }
    /* relations, after "x =" has had its chance to be an assignment */
    char *canon = scalar_canon(s);
    c = split_points(canon, REL_OPS, at, len, 2);
    if (c == 1) {
        shape *rel = shape_new(S_REL);
        memcpy(rel->rel, canon + at[0], len[0]);
        rel->rel[len[0]] = 0;
        rel->items = xcalloc(2, sizeof *rel->items);
        rel->n = 2;
        char *lhs = xstrndup(canon, at[0]);
        rel->items[0] = scalar(lhs);
        rel->items[1] = scalar(canon + at[0] + len[0]);
        free(lhs);
        free(canon);
        return rel;
    }
    shape *sh = shape_new(S_SCALAR);
    sh->text = canon;
    return sh;
}

/* ---- scalars ---------------------------------------------------------------------------------- */

/* Canonical text of a decimal literal: no sign for zero, no leading zeros in the integer part,
 * no trailing zeros in the fraction ("-007.50" -> "-7.5", ".5" -> "0.5", "-0.0" -> "0"). */
static char *decimal_canon(const char *s) {
    int neg = s[0] == '-';
    if (s[0] == '-' || s[0] == '+') s++;
    const char *dot = strchr(s, '.');
    size_t int_len = dot ? (size_t)(dot - s) : strlen(s);
    const char *frac = dot ? dot + 1 : "";
    size_t frac_len = strlen(frac);
    while (int_len > 0 && s[0] == '0') s++, int_len--;
    while (frac_len > 0 && frac[frac_len - 1] == '0') frac_len--;
    if (int_len == 0 && frac_len == 0) return xstrdup("0");
    return xasprintf("%s%.*s%s%s%.*s", neg ? "-" : "", (int)int_len, s, int_len ? "" : "0",
                     frac_len ? "." : "", (int)frac_len, frac);
}

/* Exact comparison of two decimal literals as written, so long integers never meet floating
 * point. */
static int decimal_equal(const char *a, const char *b) {
    char *x = decimal_canon(a), *y = decimal_canon(b);
    int eq = strcmp(x, y) == 0;
    free(x);
    free(y);
    return eq;
}

/* Text that may be compared by its text key when it is not an expression: words, not math, and
 * not digits alone ("1 000" must not become "1000" by losing its space). */
static int wordish(const char *s) {
    if (strpbrk(s, "+-*/^=<>\\{}|")) return 0;
    for (; *s; s++)
        if (isalpha((unsigned char)*s)) return 1;
    return 0;
}

static int text_equal(const char *a, const char *b) {
    char *ka = text_key(a), *kb = text_key(b);
    int eq = ka[0] && strcmp(ka, kb) == 0;
    free(ka);
    free(kb);
    return eq;
}

static int scalar_equal(const char *a, const char *b) {
    if (!a[0] || !b[0]) return 0;
    if (strcmp(a, b) == 0) return 1;
    int ta = is_texty(a), tb = is_texty(b);
    if (ta || tb) return ta && tb && text_equal(a, b);
    /* percentages: "50\%" equals "50" (the MATH convention for "what percent") and "0.5" */
    size_t na = strlen(a), nb = strlen(b);
    int pa = a[na - 1] == '%', pb = b[nb - 1] == '%';
    char *x = xstrndup(a, na - (size_t)pa), *y = xstrndup(b, nb - (size_t)pb);
    int r;
    if (x[0] && y[0] && strcmp(x, y) == 0) {
        r = 1;
    } else if (is_decimal_literal(x) && is_decimal_literal(y) &&
               (decimal_equal(x, y) || pa == pb)) {
        /* two plain numbers: exact, digit by digit (no floating point for long integers);
         * only "50%" against "0.5" still needs the scaled comparison below */
        r = decimal_equal(x, y);
    } else {
        r = x[0] && y[0] ? math_expr_compare(x, y) : -1;
        if (r != 1 && pa != pb && x[0] && y[0]) {
            char *px = pa ? xasprintf("(%s)/100", x) : xstrdup(x);
            char *py = pb ? xasprintf("(%s)/100", y) : xstrdup(y);
            int r2 = math_expr_compare(px, py);
            if (r2 == 1 || r < 0) r = r2;
            free(px);
            free(py);
        }
        /* neither side is an expression: "4:30 p.m." and "4:30 pm" */
        if (r < 0) r = wordish(a) && wordish(b) && text_equal(a, b);
    }
    free(x);
    free(y);
    return r == 1;
}

/* ---- shapes ----------------------------------------------------------------------------------- */

static int shape_equal(const shape *a, const shape *b);

static int ordered_equal(const shape *a, const shape *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (!shape_equal(a->items[i], b->items[i])) return 0;
    return 1;
}

/* Same multiset of items: each item of a matched to a distinct equal item of b. */
static int unordered_equal(const shape *a, const shape *b) {
    if (a->n != b->n) return 0;
    char used[MAX_ITEMS] = {0};
    for (int i = 0; i < a->n; i++) {
        int hit = 0;
        for (int j = 0; j < b->n && !hit; j++)
            if (!used[j] && shape_equal(a->items[i], b->items[j])) used[j] = hit = 1;
        if (!hit) return 0;
    }
    return 1;
}

static int is_vector(const shape *m) { return m->kind == S_MATRIX && (m->rows == 1 || m->cols == 1); }

static const char *mirror(const char *rel) {
    if (strcmp(rel, "<") == 0) return ">";
    if (strcmp(rel, ">") == 0) return "<";
    if (strcmp(rel, "<=") == 0) return ">=";
    if (strcmp(rel, ">=") == 0) return "<=";
    return rel;
}

static int shape_equal(const shape *a, const shape *b) {
    if (a->kind == S_SCALAR && b->kind == S_SCALAR) return scalar_equal(a->text, b->text);
    if (a->kind == S_TUPLE && b->kind == S_TUPLE)
        return a->open == b->open && a->close == b->close && ordered_equal(a, b);
    if ((a->kind == S_TUPLE && b->kind == S_LIST) || (a->kind == S_LIST && b->kind == S_TUPLE)) {
        const shape *t = a->kind == S_TUPLE ? a : b;
        return t->open == '(' && t->close == ')' && ordered_equal(a, b);
    }
    if (a->kind == S_MATRIX && b->kind == S_MATRIX)
        return a->rows == b->rows && a->cols == b->cols && ordered_equal(a, b);
    if ((is_vector(a) && b->kind == S_TUPLE) || (a->kind == S_TUPLE && is_vector(b))) {
        const shape *t = a->kind == S_TUPLE ? a : b;
        return t->open == '(' && t->close == ')' && ordered_equal(a, b);
    }
    if ((a->kind == S_SET || a->kind == S_LIST) && (b->kind == S_SET || b->kind == S_LIST))
        return unordered_equal(a, b);
    if (a->kind == S_UNION && b->kind == S_UNION) return unordered_equal(a, b);
    if (a->kind == S_REL && b->kind == S_REL) {
        if (strcmp(a->rel, b->rel) == 0 && shape_equal(a->items[0], b->items[0]) &&
            shape_equal(a->items[1], b->items[1]))
            return 1;
        return strcmp(a->rel, mirror(b->rel)) == 0 && shape_equal(a->items[0], b->items[1]) &&
               shape_equal(a->items[1], b->items[0]);
    }
    return 0;
}

/* ---- public ----------------------------------------------------------------------------------- */

answer_kind answer_gold_kind(const char *gold) {
    return gold && choice_letter(gold, 1) ? ANSWER_CHOICE : ANSWER_MATH;
}

static int blank(const char *s) {
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

int answer_equiv(const char *pred, const char *gold, answer_kind kind) {
    if (!pred || !gold || blank(pred) || blank(gold)) return 0;
    if (kind == ANSWER_CHOICE) {
        int lp = choice_letter(pred, 0), lg = choice_letter(gold, 0);
        return lp && lp == lg;
    }
    if (strlen(pred) > ANSWER_MAX_PARSE || strlen(gold) > ANSWER_MAX_PARSE) {
        char *a = trimmed(pred, strlen(pred)), *b = trimmed(gold, strlen(gold));
        int eq = strcmp(a, b) == 0;
        free(a);
        free(b);
        return eq;
    }
    char *na = latex_normalize(pred), *nb = latex_normalize(gold);
    int eq = 0;
    if (na[0] && nb[0]) {
        if (strcmp(na, nb) == 0) {
            eq = 1;
        } else {
            shape *sa = shape_parse(na, 0), *sb = shape_parse(nb, 0);
            eq = shape_equal(sa, sb);
            shape_free(sa);
            shape_free(sb);
        }
    }
    free(na);
    free(nb);
    return eq;
}

void answer_verify(answer_verdict *out, const char *response, const char *gold) {
    answer_kind kind = answer_gold_kind(gold);
    out->extracted = NULL;
    out->correct = 0;
    if (answer_extract(&out->extracted, response ? response : "", kind))
        out->correct = answer_equiv(out->extracted, gold, kind);
}

void answer_verdict_free(answer_verdict *v) {
    free(v->extracted);
    v->extracted = NULL;
}
