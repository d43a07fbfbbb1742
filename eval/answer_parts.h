/* Internals of answer extraction and equivalence, shared by the files of eval/ only (the
 * public API is eval/eval.h):
 *   latex_normalize.c  LaTeX clean-up into a canonical answer string, text keys, choice letters
 *   math_expr.c        a bounded recursive-descent parser and evaluator for numeric and
 *                      algebraic expressions
 *   answer_equiv.c     structure (tuples, intervals, sets, lists, matrices, relations) and the
 *                      equivalence rules
 *   answer_extract.c   finding the final answer in a response */
#ifndef R1_EVAL_ANSWER_PARTS_H
#define R1_EVAL_ANSWER_PARTS_H

#include <stddef.h>

/* A growing NUL-terminated string. */
typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

void sb_putn(sbuf *b, const char *s, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_putc(sbuf *b, char c);
/* The built string (never NULL); the caller frees it. */
char *sb_take(sbuf *b);

/* Answers longer than this are compared as trimmed text only: no model answer worth parsing is
 * this long, and it bounds the work any input can cause. */
enum { ANSWER_MAX_PARSE = 4096 };

/* Canonical form of an answer: math delimiters ($, \(, \[) dropped; \dfrac/\tfrac -> \frac;
 * \left/\right, sizing and spacing commands dropped; \text{...} and font commands unwrapped;
 * \cdot/\times -> *, \div -> /, \le -> <=, \ge -> >=, \ne -> !=; degrees (^\circ) and currency
 * (\$) dropped; \% -> %; common Unicode math signs mapped to ASCII/LaTeX; single-character
 * ^{x}/_{x}/\frac12/\sqrt2 arguments braced canonically; whitespace collapsed to single spaces;
 * trailing punctuation and a redundant outer {...} removed. Fresh string. */
char *latex_normalize(const char *s);

/* Drops an assignment's left side: "x = 5" -> "5", "f(x) = x^2" -> "x^2", "(x, y) = (1, 2)" ->
 * "(1, 2)", "x \in [1, 2]" -> "[1, 2]". Only a single top-level '=' counts ("x = 1, y = 2"
 * keeps both). Fresh string. */
char *strip_lhs(const char *s);

/* Per-scalar clean-up after the structure is split off: a leading "x =" (or "f(x) =",
 * "x \in") is dropped, trailing unit words ("cm", "square units", "dollars") are dropped after a
 * number, and spaces are removed except between two letters/digits. Fresh string. */
char *scalar_canon(const char *s);

/* A key for short text answers: lower case, '.' and '\'' dropped, other punctuation as word
 * breaks, words single-spaced, a leading article dropped. Fresh string. */
char *text_key(const char *s);
/* 1 if s reads as words rather than math: it holds a run of 3+ letters that is not a command or
 * a math function name ("Evelyn", "even", "yes"), or it is "no". */
int is_texty(const char *s);

/* The multiple-choice letter of s ("C", "(C)", "\text{(C)}", "**C**", "C)", "(C) 42", "C."),
 * or 0. Strict mode accepts only a lone letter (the form of a gold answer); loose mode also a
 * letter that starts a longer option text. Letters are A..J, returned upper case. */
int choice_letter(const char *s, int strict);

/* Compares two scalar answers (canonical strings) as numbers or expressions:
 *   1  equal: exactly, for rationals; within 1e-9 relative for irrational values; at every
 *      one of several fixed pseudo-random points, for expressions with variables
 *   0  both readable and different
 *  -1  one side is not a readable expression */
int math_expr_compare(const char *a, const char *b);

/* 1 if s is a plain decimal literal ("-12", "3.50", ".5", "+7"). */
int is_decimal_literal(const char *s);

#endif
