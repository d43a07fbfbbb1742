/* eval/: answer extraction and equivalence (shared by curate and eval), benchmark reports, and
 * the commands that run them (verify, eval).
 *
 * A verdict is two steps:
 *   1. answer_extract() finds the final answer in a model response: the text after the last
 *      </think> when there is one, then the last \boxed{...} / \fbox{...}, else the fallbacks
 *      ("final answer is", "The answer is", "Answer:", "####", a final bare number); for a
 *      multiple-choice gold, a letter.
 *   2. answer_equiv() decides whether that answer equals the gold one: exactly equal numbers
 *      (integers, decimals, scientific notation, thousands separators, percentages, fractions,
 *      mixed numbers), LaTeX clean-up, \sqrt / \pi / algebraic expressions compared by value at
 *      fixed pseudo-random points, tuples and intervals element by element in order, sets and
 *      answer lists in any order, yes/no and short text after normalisation.
 * Both are pure functions of their inputs: deterministic, thread-safe, never failing on any
 * input (a string they cannot read is simply not equal to a different string). */
#ifndef R1_EVAL_EVAL_H
#define R1_EVAL_EVAL_H

typedef enum {
    ANSWER_MATH,   /* a number, expression, tuple, interval, set, list or short text */
    ANSWER_CHOICE, /* a multiple-choice letter A..J */
} answer_kind;

/* The kind a gold answer calls for: ANSWER_CHOICE for a lone letter A..J ("C", "(C)",
 * "\text{(C)}"), else ANSWER_MATH. */
answer_kind answer_gold_kind(const char *gold);

/* Finds the final answer in a response. Returns 1 and a fresh string in *out (the answer as
 * written, LaTeX kept; for ANSWER_CHOICE the upper-case letter), or 0 with *out = NULL when the
 * response gives no answer (including a response whose <think> is never closed).
 * A response with neither tag is read whole. When the chat template prefilled "<think>\n"
 * (the R1 template does), pass the response with that prefix, so that reasoning cut off by the
 * token limit, which then has no "</think>", yields no answer instead of an intermediate one. */
int answer_extract(char **out, const char *response, answer_kind kind);

/* 1 if the predicted answer equals the gold one, else 0. Symmetric in its arguments. */
int answer_equiv(const char *pred, const char *gold, answer_kind kind);

/* Both steps, as curate and eval use them. */
typedef struct {
    char *extracted; /* the answer found, or NULL */
    int correct;     /* 1 if extracted equals the gold answer */
} answer_verdict;

void answer_verify(answer_verdict *out, const char *response, const char *gold);
void answer_verdict_free(answer_verdict *v);

/* r1-distill verify: the verdict for every record of a JSONL file. */
int cmd_verify(int argc, char **argv);
/* r1-distill eval: sample a model on a benchmark and report pass@1, cons@K, pass@k
 * (eval/cmd_eval.c; benchmarks in eval/benchmarks.h, metrics in eval/metrics.h). */
int cmd_eval(int argc, char **argv);

#endif
