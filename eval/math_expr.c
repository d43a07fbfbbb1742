/* Numbers and expressions compared by value.
 *
 * A small recursive-descent parser turns a canonical answer string (latex_normalize +
 * scalar_canon output) into a tree of at most MAX_NODES nodes and MAX_DEPTH nesting levels;
 * anything else (a word, an unknown command, a stray comma) is "not an expression". Values are
 * exact rationals (int64 numerator/denominator) while every step stays rational and in range,
 * and doubles otherwise. Two expressions are equal when
 *   - both values are exact rationals and identical, or
 *   - otherwise, they agree within 1e-11 relative (an exact 0 matches a computed value
 *     below 1e-13 in magnitude, the rounding residue of e.g. \cos(\pi/2))
 * at each of N_POINTS fixed pseudo-random assignments of their variables (a variable gets the
 * same value on both sides because its value is a hash of its name). Points where both sides are
 * undefined (sqrt of a negative) are skipped; a point where only one side is defined makes them
 * different. Grammar, loosest binding first:
 *   sum     := term (('+' | '-') term)*
 *   term    := unary (('*' | '/') unary | <implicit> power)*
 *   unary   := ('-' | '+') unary | power
 *   power   := postfix ('^' unary)?                 right-associative, 2^-1 allowed
 *   postfix := primary '!'*
 *   primary := number [mixed fraction] | variable ['_' sub] | '(' sum ')' | '[' sum ']'
 *            | '{' sum '}' | '|' sum '|' | \frac{a}{b} | \sqrt[n]{a} | \binom{n}{k} | \pi
 *            | \infty | e | function ['^' power] ['_' base] argument */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/answer_parts.h"

enum { MAX_NODES = 512, MAX_DEPTH = 48, NAME_MAX_LEN = 24, N_POINTS = 6 };

static const double REL_TOL = 1e-11, ABS_TOL = 1e-13;

/* ---- values: exact rationals with a double shadow ---------------------------------------------- */

typedef struct {
    int exact;        /* num/den is the value */
    int64_t num, den; /* den > 0, reduced */
    double v;         /* always set */
} qval;

static qval q_double(double v) { return (qval){0, 0, 1, v}; }

static int64_t gcd64(int64_t a, int64_t b) {
    if (a < 0) a = -a;
    if (b < 0) b = -b;
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* An exact value num/den, or a double if it cannot be represented. */
static qval q_make(int64_t num, int64_t den) {
    if (den == 0) return q_double(NAN);
    if (num == INT64_MIN || den == INT64_MIN) return q_double((double)num / (double)den);
    if (den < 0) num = -num, den = -den;
    int64_t g = gcd64(num, den);
    if (g > 1) num /= g, den /= g;
    return (qval){1, num, den, (double)num / (double)den};
}

static qval q_add(qval a, qval b, int sub) {
    if (a.exact && b.exact) {
        int64_t x, y, d;
        int64_t bn = sub ? -b.num : b.num;
        if (!__builtin_mul_overflow(a.num, b.den, &x) && !__builtin_mul_overflow(bn, a.den, &y) &&
            !__builtin_add_overflow(x, y, &x) && !__builtin_mul_overflow(a.den, b.den, &d))
            return q_make(x, d);
    }
    return q_double(sub ? a.v - b.v : a.v + b.v);
}

static qval q_mul(qval a, qval b) {
    if (a.exact && b.exact) {
        int64_t x, d;
        if (!__builtin_mul_overflow(a.num, b.num, &x) && !__builtin_mul_overflow(a.den, b.den, &d))
            return q_make(x, d);
    }
    return q_double(a.v * b.v);
}

static qval q_div(qval a, qval b) {
    if (b.exact && b.num == 0) return q_double(NAN); /* undefined, never "infinity" */
    if (a.exact && b.exact) {
        int64_t x, d;
        if (!__builtin_mul_overflow(a.num, b.den, &x) && !__builtin_mul_overflow(a.den, b.num, &d))
            return q_make(x, d);
    }
    return q_double(a.v / b.v);
}

/* Exact integer square root of a non-negative int64, or -1. */
static int64_t isqrt_exact(int64_t x) {
    if (x < 0) return -1;
    int64_t r = (int64_t)sqrt((double)x);
    for (int64_t c = r > 1 ? r - 1 : 0; c <= r + 1; c++)
        if (c * c == x) return c;
    return -1;
}

static qval q_sqrt(qval a) {
    if (a.exact) {
        if (a.num < 0) return q_double(NAN);
        int64_t p = isqrt_exact(a.num), q = isqrt_exact(a.den);
        if (p >= 0 && q > 0) return q_make(p, q);
    }
    return q_double(a.v < 0 ? NAN : sqrt(a.v));
}

static qval q_pow(qval a, qval b) {
    if (a.exact && b.exact && b.den == 1 && b.num >= -64 && b.num <= 64) {
        int64_t e = b.num < 0 ? -b.num : b.num;
        int64_t rn = 1, rd = 1, ok = 1;
        for (int64_t i = 0; i < e && ok; i++)
            ok = !__builtin_mul_overflow(rn, a.num, &rn) && !__builtin_mul_overflow(rd, a.den, &rd);
        if (ok) return b.num < 0 ? q_div(q_make(1, 1), q_make(rn, rd)) : q_make(rn, rd);
    }
    if (a.exact && b.exact && b.den == 2 && b.num > 0 && b.num <= 64) { /* x^{3/2} */
        qval r = q_sqrt(a);
        if (r.exact) return q_pow(r, q_make(b.num, 1));
    }
    if (a.v < 0 && b.exact && b.den % 2 == 1) { /* odd roots of negatives: (-8)^{1/3} = -2 */
        double m = pow(-a.v, b.v);
        return q_double(b.num % 2 ? -m : m);
    }
    if (a.exact && a.num == 0 && b.v < 0) return q_double(NAN);
    return q_double(pow(a.v, b.v));
}

static int q_is_nat(qval a, int64_t max) { return a.exact && a.den == 1 && a.num >= 0 && a.num <= max; }

/* ---- parse tree ---------------------------------------------------------------------------- */

typedef enum {
    N_NUM, N_VAR, N_PI, N_E, N_INF, N_NEG, N_ADD, N_SUB, N_MUL, N_DIV, N_POW, N_SQRT, N_ROOT,
    N_FUNC, N_LOGB, N_FACT, N_ABS, N_BINOM,
} node_op;

typedef enum {
    F_SIN, F_COS, F_TAN, F_COT, F_SEC, F_CSC, F_LN, F_LOG, F_EXP, F_ASIN, F_ACOS, F_ATAN,
    F_SINH, F_COSH, F_TANH, F_SQRT,
} func_id;

static const struct {
    const char *name;
    func_id id;
} FUNCS[] = {
    {"sin", F_SIN},     {"cos", F_COS},     {"tan", F_TAN},     {"cot", F_COT},
    {"sec", F_SEC},     {"csc", F_CSC},     {"ln", F_LN},       {"log", F_LOG},
    {"exp", F_EXP},     {"arcsin", F_ASIN}, {"arccos", F_ACOS}, {"arctan", F_ATAN},
    {"sinh", F_SINH},   {"cosh", F_COSH},   {"tanh", F_TANH},   {"sqrt", F_SQRT},
};
enum { N_FUNCS = sizeof FUNCS / sizeof *FUNCS };

static const char *const GREEK[] = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
    "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon",
    "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma",
    "Phi", "Psi", "Omega", NULL};

typedef struct {
    node_op op;
    int a, b;          /* children (-1 none) */
    func_id fn;
    qval num;          /* N_NUM */
    char name[NAME_MAX_LEN]; /* N_VAR */
} node;

typedef enum { T_END, T_NUM, T_VAR, T_FUNC, T_CMD, T_OP, T_BAD } tok_type;
typedef enum { C_FRAC, C_SQRT, C_BINOM, C_PI, C_INF, C_GREEK } cmd_id;

typedef struct {
    tok_type type;
    size_t start, end; /* source span */
    char op;           /* T_OP */
    int id;            /* T_FUNC: func_id; T_CMD: cmd_id */
    int space_before;
} token;

typedef struct {
    const char *s;
    size_t n, pos;
    token tok;     /* current token */
    node *nodes;
    int n_nodes;
    int depth;
    int abs_depth; /* inside |...|: a '|' closes instead of opening */
    int exponent;  /* inside an exponent: "x^2\frac{1}{2}" is not a mixed number */
    int failed;
} parser;

/* ---- lexer ------------------------------------------------------------------------------------ */

static int func_lookup(const char *w, size_t n) {
    for (int i = 0; i < N_FUNCS; i++)
        if (strlen(FUNCS[i].name) == n && memcmp(FUNCS[i].name, w, n) == 0) return i;
    return -1;
}

static void lex(parser *p) {
    const char *s = p->s;
    size_t i = p->pos;
    token t = {0};
    while (i < p->n && s[i] == ' ') {
        i++;
        t.space_before = 1;
    }
    t.start = i;
    if (i >= p->n) {
        t.type = T_END;
    } else if (isdigit((unsigned char)s[i]) || (s[i] == '.' && isdigit((unsigned char)s[i + 1]))) {
        while (i < p->n && isdigit((unsigned char)s[i])) i++;
        if (i < p->n && s[i] == '.') {
            i++;
            while (i < p->n && isdigit((unsigned char)s[i])) i++;
        }
        /* scientific notation only when digits follow the e: "3e5", "2.5E-3"; "2e" is 2*e */
        if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
            size_t k = i + 1;
            if (k < p->n && (s[k] == '+' || s[k] == '-')) k++;
            if (k < p->n && isdigit((unsigned char)s[k])) {
                while (k < p->n && isdigit((unsigned char)s[k])) k++;
                i = k;
            }
        }
        t.type = T_NUM;
    } else if (isalpha((unsigned char)s[i])) {
        /* A run of letters is a function name, or one or two single-letter variables ("xy");
         * a longer run is a word, not math. */
        int run_start = i == 0 || !isalpha((unsigned char)s[i - 1]);
        if (run_start) {
            size_t k = i;
            while (k < p->n && isalpha((unsigned char)s[k])) k++;
            int f = func_lookup(s + i, k - i);
            if (f >= 0) {
                t.type = T_FUNC;
                t.id = f;
                i = k;
            } else if (k - i > 2) {
                t.type = T_BAD;
                i = k;
            } else {
                t.type = T_VAR;
                i++;
            }
        } else {
            t.type = T_VAR;
            i++;
        }
    } else if (s[i] == '\\') {
        size_t k = i + 1;
        while (k < p->n && isalpha((unsigned char)s[k])) k++;
        const char *w = s + i + 1;
        size_t len = k - i - 1;
        t.type = T_CMD;
        int f = func_lookup(w, len);
        if (len == 0) t.type = T_BAD, k = i + 1 + (i + 1 < p->n);
        else if (len == 4 && memcmp(w, "frac", 4) == 0) t.id = C_FRAC;
        else if (len == 4 && memcmp(w, "sqrt", 4) == 0) t.id = C_SQRT; /* not the function */
        else if (f >= 0) t.type = T_FUNC, t.id = f;
        else if (len == 5 && memcmp(w, "binom", 5) == 0) t.id = C_BINOM;
        else if (len == 2 && memcmp(w, "pi", 2) == 0) t.id = C_PI;
        else if (len == 5 && memcmp(w, "infty", 5) == 0) t.id = C_INF;
        else {
            t.type = T_BAD;
            for (int g = 0; GREEK[g]; g++)
                if (strlen(GREEK[g]) == len && memcmp(GREEK[g], w, len) == 0)
                    t.type = T_CMD, t.id = C_GREEK;
        }
        i = k;
    } else if (strchr("+-*/^!()[]{}|_", s[i])) {
        t.type = T_OP;
        t.op = s[i];
        i++;
    } else {
        t.type = T_BAD;
        i++;
    }
    t.end = i;
    p->pos = i;
    p->tok = t;
}

static int is_op(const parser *p, char c) { return p->tok.type == T_OP && p->tok.op == c; }

static int new_node(parser *p, node_op op, int a, int b) {
    if (p->n_nodes >= MAX_NODES) {
        p->failed = 1;
        return 0;
    }
    node *nd = &p->nodes[p->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->a = a;
    nd->b = b;
    return p->n_nodes++;
}

/* ---- parser ----------------------------------------------------------------------------------- */

static int parse_sum(parser *p);
static int parse_unary(parser *p);
static int parse_power(parser *p);
static int parse_postfix(parser *p);

static int fail(parser *p) {
    p->failed = 1;
    return 0;
}

/* Recursion guard: every parse function that can recurse enters here. */
static int enter(parser *p) {
    if (++p->depth > MAX_DEPTH) p->failed = 1;
    return !p->failed;
}

static int expect(parser *p, char c) {
    if (!is_op(p, c)) return fail(p);
    lex(p);
    return 1;
}

/* Parses a decimal literal in s[start, end) into an exact rational when it fits. */
static qval number_value(const char *s, size_t start, size_t end) {
    char buf[64];
    size_t len = end - start;
    if (len >= sizeof buf) {
        char *tmp = xstrndup(s + start, len);
        double v = strtod(tmp, NULL);
        free(tmp);
        return q_double(v);
    }
    memcpy(buf, s + start, len);
    buf[len] = 0;
    int64_t num = 0, den = 1;
    int digits = 0, exact = 1, exp10 = 0;
    size_t i = 0;
    for (; i < len && (isdigit((unsigned char)buf[i]) || buf[i] == '.'); i++) {
        if (buf[i] == '.') continue;
        if (++digits > 18) {
            exact = 0;
            break;
        }
        num = num * 10 + (buf[i] - '0');
    }
    const char *dot = memchr(buf, '.', len);
    if (exact && dot) {
        for (const char *d = dot + 1; d < buf + len && isdigit((unsigned char)*d); d++) den *= 10;
    }
    const char *e = strpbrk(buf, "eE");
    if (e) exp10 = atoi(e + 1);
    if (!exact || exp10 > 18 || exp10 < -18) return q_double(strtod(buf, NULL));
    qval v = q_make(num, den);
    for (int k = 0; k < (exp10 < 0 ? -exp10 : exp10); k++)
        v = exp10 > 0 ? q_mul(v, q_make(10, 1)) : q_div(v, q_make(10, 1));
    return v;
}

static int is_int_literal(const parser *p, const token *t) {
    if (t->type != T_NUM) return 0;
    for (size_t i = t->start; i < t->end; i++)
        if (!isdigit((unsigned char)p->s[i])) return 0;
    return 1;
}

/* After an integer literal: "\frac{1}{2}" or " 1/2" makes a mixed number (2\frac{1}{2} = 5/2).
 * Returns the fraction node, or -1 (and leaves the lexer where it was). */
static int mixed_fraction(parser *p) {
    parser save = *p;
    if (p->tok.type == T_CMD && p->tok.id == C_FRAC) {
        lex(p);
        int ok = is_op(p, '{');
        if (ok) lex(p);
        token a = p->tok;
        ok = ok && is_int_literal(p, &a);
        if (ok) lex(p);
        ok = ok && is_op(p, '}');
        if (ok) lex(p);
        ok = ok && is_op(p, '{');
        if (ok) lex(p);
        token b = p->tok;
        ok = ok && is_int_literal(p, &b);
        if (ok) lex(p);
        ok = ok && is_op(p, '}');
        if (ok) {
            lex(p);
            int na = new_node(p, N_NUM, -1, -1), nb = new_node(p, N_NUM, -1, -1);
            p->nodes[na].num = number_value(p->s, a.start, a.end);
            p->nodes[nb].num = number_value(p->s, b.start, b.end);
            return new_node(p, N_DIV, na, nb);
        }
    } else if (p->tok.type == T_NUM && p->tok.space_before && is_int_literal(p, &p->tok)) {
        token a = p->tok;
        lex(p);
        if (is_op(p, '/')) {
            lex(p);
            token b = p->tok;
            if (is_int_literal(p, &b)) {
                lex(p);
                if (!is_op(p, '^') && !is_op(p, '!')) {
                    int na = new_node(p, N_NUM, -1, -1), nb = new_node(p, N_NUM, -1, -1);
                    p->nodes[na].num = number_value(p->s, a.start, a.end);
                    p->nodes[nb].num = number_value(p->s, b.start, b.end);
                    return new_node(p, N_DIV, na, nb);
                }
            }
        }
    }
    *p = save;
    return -1;
}

/* A command argument: {sum}, or one primary (the normaliser braces single characters). */
static int parse_arg(parser *p) {
    if (is_op(p, '{')) {
        lex(p);
        int e = parse_sum(p);
        expect(p, '}');
        return e;
    }
    return parse_postfix(p);
}

/* Subscript after a variable or \log: "_1", "_{12}", "_b". Appends its text to name. */
static void parse_subscript(parser *p, char *name, size_t cap) {
    size_t len = strlen(name);
    lex(p); /* past '_' */
    size_t start = p->tok.start, end;
    if (is_op(p, '{')) {
        int depth = 0;
        size_t i = p->tok.start;
        for (; i < p->n; i++) {
            if (p->s[i] == '{') depth++;
            if (p->s[i] == '}' && --depth == 0) break;
        }
        if (i >= p->n) {
            fail(p);
            return;
        }
        end = i + 1;
        p->pos = end;
    } else if (p->tok.type == T_NUM || p->tok.type == T_VAR) {
        end = p->tok.type == T_VAR ? start + 1 : p->tok.end;
        p->pos = end;
    } else {
        fail(p);
        return;
    }
    if (len + 1 + (end - start) >= cap) {
        fail(p);
        return;
    }
    name[len] = '_';
    memcpy(name + len + 1, p->s + start, end - start);
    name[len + 1 + end - start] = 0;
    lex(p);
}

/* Can the current token begin a factor of an implicit product ("2x", "3\sqrt{2}", "x(x+1)")? */
static int starts_factor(const parser *p) {
    switch (p->tok.type) {
    case T_VAR: case T_FUNC: case T_CMD: return 1;
    case T_OP:
        return p->tok.op == '(' || p->tok.op == '[' || p->tok.op == '{' ||
               (p->tok.op == '|' && p->abs_depth == 0);
    default: return 0;
    }
}

static int parse_function(parser *p) {
    func_id fn = FUNCS[p->tok.id].id;
    lex(p);
    int power = -1, base = -1;
    if (fn == F_SQRT) { /* "sqrt(2)" written without the backslash */
        int arg = is_op(p, '(') ? parse_postfix(p) : parse_arg(p);
        return new_node(p, N_SQRT, arg, -1);
    }
    if (is_op(p, '^')) { /* \sin^2 x */
        lex(p);
        power = parse_postfix(p);
    }
    if (fn == F_LOG && is_op(p, '_')) { /* \log_2 8, \log_{b} x */
        lex(p);
        base = parse_arg(p);
    }
    int arg;
    if (is_op(p, '(')) {
        arg = parse_postfix(p);
    } else {
        /* "\sin 2x" is sin(2x); "\sin x \cos x" is sin(x)cos(x) */
        arg = parse_power(p);
        while (!p->failed && starts_factor(p) && p->tok.type != T_FUNC)
            arg = new_node(p, N_MUL, arg, parse_power(p));
    }
    int f;
    if (base >= 0) {
        f = new_node(p, N_LOGB, arg, base);
    } else {
        f = new_node(p, N_FUNC, arg, -1);
        p->nodes[f].fn = fn;
    }
    return power >= 0 ? new_node(p, N_POW, f, power) : f;
}

static int parse_primary(parser *p) {
    if (!enter(p)) return 0;
    token t = p->tok;
    int r = 0;
    switch (t.type) {
    case T_NUM: {
        r = new_node(p, N_NUM, -1, -1);
        p->nodes[r].num = number_value(p->s, t.start, t.end);
        lex(p);
        if (is_int_literal(p, &t) && p->exponent == 0) {
            int frac = mixed_fraction(p);
            if (frac >= 0) r = new_node(p, N_ADD, r, frac);
        }
        break;
    }
    case T_VAR: {
        lex(p);
        char name[NAME_MAX_LEN];
        name[0] = p->s[t.start];
        name[1] = 0;
        if (is_op(p, '_')) parse_subscript(p, name, sizeof name);
        if (strcmp(name, "e") == 0) {
            r = new_node(p, N_E, -1, -1);
        } else {
            r = new_node(p, N_VAR, -1, -1);
            memcpy(p->nodes[r].name, name, sizeof name);
        }
        break;
    }
    case T_FUNC: r = parse_function(p); break;
    case T_CMD:
        lex(p);
        if (t.id == C_PI) {
            r = new_node(p, N_PI, -1, -1);
        } else if (t.id == C_INF) {
            r = new_node(p, N_INF, -1, -1);
        } else if (t.id == C_GREEK) {
            char name[NAME_MAX_LEN];
            size_t len = t.end - t.start;
            if (len >= NAME_MAX_LEN - 8) return fail(p);
            memcpy(name, p->s + t.start, len);
            name[len] = 0;
            if (is_op(p, '_')) parse_subscript(p, name, sizeof name);
            r = new_node(p, N_VAR, -1, -1);
            memcpy(p->nodes[r].name, name, sizeof name);
        } else if (t.id == C_FRAC) {
            int a = parse_arg(p);
            int b = parse_arg(p);
            r = new_node(p, N_DIV, a, b);
        } else if (t.id == C_BINOM) {
            int a = parse_arg(p);
            int b = parse_arg(p);
            r = new_node(p, N_BINOM, a, b);
        } else { /* C_SQRT */
            int index = -1;
            if (is_op(p, '[')) {
                lex(p);
                index = parse_sum(p);
                expect(p, ']');
            }
            int a = parse_arg(p);
            r = index >= 0 ? new_node(p, N_ROOT, a, index) : new_node(p, N_SQRT, a, -1);
        }
        break;
    case T_OP:
        if (t.op == '(' || t.op == '[' || t.op == '{') {
            char close = t.op == '(' ? ')' : t.op == '[' ? ']' : '}';
            lex(p);
            int saved_abs = p->abs_depth;
            p->abs_depth = 0;
            r = parse_sum(p);
            p->abs_depth = saved_abs;
            expect(p, close);
        } else if (t.op == '|') {
            lex(p);
            p->abs_depth++;
            int e = parse_sum(p);
            p->abs_depth--;
            expect(p, '|');
            r = new_node(p, N_ABS, e, -1);
        } else {
            fail(p);
        }
        break;
    default: fail(p); break;
    }
    p->depth--;
    return r;
}

static int parse_postfix(parser *p) {
    if (!enter(p)) return 0;
    int r = parse_primary(p);
    while (!p->failed && is_op(p, '!')) {
        lex(p);
        r = new_node(p, N_FACT, r, -1);
    }
    p->depth--;
    return r;
}

static int parse_power(parser *p) {
    if (!enter(p)) return 0;
    int base = parse_postfix(p);
    if (!p->failed && is_op(p, '^')) {
        lex(p);
        p->exponent++;
        int e = parse_unary(p);
        p->exponent--;
        base = new_node(p, N_POW, base, e);
    }
    p->depth--;
    return base;
}

static int parse_unary(parser *p) {
    if (!enter(p)) return 0;
    int r;
    if (is_op(p, '-')) {
        lex(p);
        r = new_node(p, N_NEG, parse_unary(p), -1);
    } else if (is_op(p, '+')) {
        lex(p);
        r = parse_unary(p);
    } else {
        r = parse_power(p);
    }
    p->depth--;
    return r;
}

static int parse_term(parser *p) {
    if (!enter(p)) return 0;
    int a = parse_unary(p);
    while (!p->failed) {
        if (is_op(p, '*') || is_op(p, '/')) {
            node_op op = p->tok.op == '*' ? N_MUL : N_DIV;
            lex(p);
            a = new_node(p, op, a, parse_unary(p));
        } else if (starts_factor(p)) {
            a = new_node(p, N_MUL, a, parse_power(p));
        } else {
            break;
        }
    }
    p->depth--;
    return a;
}

static int parse_sum(parser *p) {
    if (!enter(p)) return 0;
    int a = parse_term(p);
    while (!p->failed && (is_op(p, '+') || is_op(p, '-'))) {
        node_op op = p->tok.op == '+' ? N_ADD : N_SUB;
        lex(p);
        a = new_node(p, op, a, parse_term(p));
    }
    p->depth--;
    return a;
}

/* Parses all of s; returns the root, or -1 when s is not an expression. */
static int parse_all(parser *p, node *nodes, const char *s) {
    memset(p, 0, sizeof *p);
    p->s = s;
    p->n = strlen(s);
    p->nodes = nodes;
    if (p->n == 0 || p->n > ANSWER_MAX_PARSE) return -1;
    lex(p);
    int root = parse_sum(p);
    if (p->failed || p->tok.type != T_END) return -1;
    return root;
}

/* ---- evaluation ------------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) { /* splitmix64 finaliser */
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* The value of variable `name` at point k: a fixed function of the name, so both sides agree.
 * Points 0-2 are positive, 3-5 of either sign; magnitudes in [0.4, 2.4), never integers. */
static double var_value(const char *name, int k) {
    uint64_t h = 1469598103934665603ull;
    for (const char *c = name; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    uint64_t r = mix64(h + 0x1000193ull * (uint64_t)(k + 1));
    double u = (double)(r >> 11) / 9007199254740992.0;
    double v = 0.4 + 2.0 * u;
    if (k >= 3 && (r & 1)) v = -v;
    return v;
}

static double func_value(func_id fn, double x) {
    switch (fn) {
    case F_SIN: return sin(x);
    case F_COS: return cos(x);
    case F_TAN: return tan(x);
    case F_COT: return cos(x) / sin(x);
    case F_SEC: return 1 / cos(x);
    case F_CSC: return 1 / sin(x);
    case F_LN: return x > 0 ? log(x) : NAN;
    case F_LOG: return x > 0 ? log10(x) : NAN;
    case F_EXP: return exp(x);
    case F_ASIN: return asin(x);
    case F_ACOS: return acos(x);
    case F_ATAN: return atan(x);
    case F_SINH: return sinh(x);
    case F_COSH: return cosh(x);
    case F_TANH: return tanh(x);
    case F_SQRT: return x < 0 ? NAN : sqrt(x);
    }
    return NAN;
}

static qval eval_op(const node *nd, qval a, qval b);

/* Recursive: a tree has at most MAX_NODES nodes, so the recursion is at most that deep. */
static qval eval_node(const node *nodes, int i, int k) {
    const node *nd = &nodes[i];
    switch (nd->op) {
    case N_NUM: return nd->num;
    case N_VAR: return q_double(var_value(nd->name, k));
    case N_PI: return q_double(M_PI);
    case N_E: return q_double(M_E);
    case N_INF: return q_double(INFINITY);
    default: break;
    }
    qval a = eval_node(nodes, nd->a, k);
    qval b = nd->b >= 0 ? eval_node(nodes, nd->b, k) : q_double(NAN);
    qval r = eval_op(nd, a, b);
    /* Overflow is not infinity: 10^{400} and 10^{401} must not compare equal as +inf. Only
     * \infty itself (and what is computed from it) is infinite. */
    if (isinf(r.v) && !isinf(a.v) && !(nd->b >= 0 && isinf(b.v))) return q_double(NAN);
    return r;
}

static qval eval_op(const node *nd, qval a, qval b) {
    switch (nd->op) {
    case N_NEG: return a.exact ? q_make(-a.num, a.den) : q_double(-a.v);
    case N_ADD: return q_add(a, b, 0);
    case N_SUB: return q_add(a, b, 1);
    case N_MUL: return q_mul(a, b);
    case N_DIV: return q_div(a, b);
    case N_POW: return q_pow(a, b);
    case N_SQRT: return q_sqrt(a);
    case N_ROOT: /* \sqrt[b]{a} */
        if (b.exact && b.den == 1 && b.num == 2) return q_sqrt(a);
        if (b.exact && b.num != 0) return q_pow(a, q_div(q_make(1, 1), b));
        return q_double(NAN);
    case N_FUNC: return q_double(func_value(nd->fn, a.v));
    case N_LOGB: {
        double r = (a.v > 0 && b.v > 0 && b.v != 1) ? log(a.v) / log(b.v) : NAN;
        /* \log_2 8 = 3 exactly when the result is a small integer power */
        double ri = nearbyint(r);
        if (a.exact && b.exact && isfinite(r) && fabs(r - ri) < 1e-9 && fabs(ri) <= 62) {
            qval back = q_pow(b, q_make((int64_t)ri, 1));
            if (back.exact && back.num == a.num && back.den == a.den) return q_make((int64_t)ri, 1);
        }
        return q_double(r);
    }
    case N_FACT:
        if (q_is_nat(a, 20)) {
            int64_t f = 1;
            for (int64_t j = 2; j <= a.num; j++) f *= j;
            return q_make(f, 1);
        }
        return q_is_nat(a, 170) ? q_double(tgamma((double)a.num + 1)) : q_double(NAN);
    case N_ABS: return a.exact ? q_make(a.num < 0 ? -a.num : a.num, a.den) : q_double(fabs(a.v));
    case N_BINOM:
        if (q_is_nat(a, 1000000) && q_is_nat(b, 1000000) && b.num <= a.num) {
            int64_t r = 1, kk = b.num < a.num - b.num ? b.num : a.num - b.num;
            for (int64_t j = 1; j <= kk; j++) {
                int64_t t;
                if (__builtin_mul_overflow(r, a.num - kk + j, &t))
                    return q_double(exp(lgamma((double)a.num + 1) - lgamma((double)b.num + 1) -
                                        lgamma((double)(a.num - b.num) + 1)));
                r = t / j; /* exact: r*(n-k+j) is divisible by j at each step */
            }
            return q_make(r, 1);
        }
        return q_double(NAN);
    default: return q_double(NAN);
    }
}

static int has_vars(const node *nodes, int n) {
    for (int i = 0; i < n; i++)
        if (nodes[i].op == N_VAR) return 1;
    return 0;
}

/* 1 same, 0 different, -1 both undefined at this point. */
static int same_value(qval a, qval b) {
    if (a.exact && b.exact) return a.num == b.num && a.den == b.den;
    int fa = isfinite(a.v), fb = isfinite(b.v);
    if (isnan(a.v) && isnan(b.v)) return -1;
    if (!fa || !fb) return isinf(a.v) && isinf(b.v) && (a.v > 0) == (b.v > 0);
    double d = fabs(a.v - b.v), m = fmax(fabs(a.v), fabs(b.v));
    if (d <= REL_TOL * m) return 1;
    /* An exact zero against a rounding residue ("\cos(\pi/2)" is 6e-17). Only then: an
     * absolute tolerance anywhere else would make 2.89e-19 equal 2.88e-19. */
    if ((a.exact && a.num == 0 && !b.exact) || (b.exact && b.num == 0 && !a.exact))
        return d <= ABS_TOL;
    return 0;
}

int math_expr_compare(const char *a, const char *b) {
    /* Two nodes arrays of MAX_NODES each: about 70 KB, on the heap to spare small stacks. */
    node *na = xmalloc(sizeof(node) * MAX_NODES * 2);
    node *nb = na + MAX_NODES;
    parser pa, pb;
    int ra = parse_all(&pa, na, a);
    int rb = ra >= 0 ? parse_all(&pb, nb, b) : -1;
    int result = -1;
    if (ra >= 0 && rb >= 0) {
        int points = has_vars(na, pa.n_nodes) || has_vars(nb, pb.n_nodes) ? N_POINTS : 1;
        int defined = 0, differ = 0;
        for (int k = 0; k < points && !differ; k++) {
            int s = same_value(eval_node(na, ra, k), eval_node(nb, rb, k));
            if (s == 0) differ = 1;
            if (s == 1) defined++;
        }
        result = differ ? 0 : defined > 0 ? 1 : -1;
    }
    free(na);
    return result;
}

int is_decimal_literal(const char *s) {
    if (*s == '+' || *s == '-') s++;
    int digits = 0, dots = 0;
    for (; *s; s++) {
        if (isdigit((unsigned char)*s)) digits++;
        else if (*s == '.' && !dots) dots++;
        else return 0;
    }
    return digits > 0;
}
