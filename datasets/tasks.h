/* Built-in reasoning tasks with verifiable answers, generated from a seed.
 *
 * Three families, small enough numbers that a tiny model can learn the arithmetic facts:
 *   arith   multi-step arithmetic with parentheses:  "(3 + 5) * 2 - 4"
 *   linear  linear equations with integer roots:     "Solve for x: 3x + 4 = 19"
 *   word    short word problems:                     "Tom has 7 apples. He buys 5 more ..."
 *
 * Each item has a question, a programmatic step-by-step solution and the answer. Train and test
 * splits are disjoint by construction: a question belongs to the test split exactly when a hash
 * of its text falls in the test tenth, so no question can appear in both, whatever the seeds. */
#ifndef R1_DATASETS_TASKS_H
#define R1_DATASETS_TASKS_H

#include <stdint.h>

typedef enum { TASK_ARITH, TASK_LINEAR, TASK_WORD, TASK_KIND_COUNT } task_kind;
typedef enum { SPLIT_TRAIN, SPLIT_TEST } task_split;

typedef struct {
    char id[48];        /* "<split>-<kind>-<index>" */
    task_kind kind;
    char question[256];
    char reasoning[768]; /* the steps, one per line, without <think> tags */
    char answer[32];     /* an integer */
} task_item;

/* Fills items[0..n) with distinct questions of the split, drawn round-robin over the kinds in
 * `kinds` (a mask of 1 << task_kind; 0 means all). Deterministic in (split, seed, kinds, n).
 * R1_EINPUT if a family runs out of distinct questions. */
int tasks_generate(task_item *items, int n, task_split split, uint64_t seed, unsigned kinds);

const char *task_kind_name(task_kind k);
/* Parses "arith,linear,word" (or "all") into a kind mask; -1 on an unknown name. */
int task_kinds_parse(const char *list, unsigned *mask);
/* Which split a question falls in. */
task_split task_question_split(const char *question);

/* The assistant text a teacher is trained to produce: "<think>\n{reasoning}\n</think>\n\n
 * The answer is \boxed{answer}." Caller frees. */
char *task_solution_text(const task_item *it);

/* The arithmetic facts the tasks' steps use (sums and differences up to 164 and 20, products
 * and quotients up to 12 x 12), shuffled by seed and grouped `per_record` to a paragraph: a
 * language-model corpus for a base model that knows the facts but not the tasks. Returns the
 * number of paragraphs; *out holds fresh strings (free each, then the array). */
int tasks_facts(char ***out, uint64_t seed, int per_record);

/* Arithmetic prose for the same corpus: facts whose operands are named first ("Take 6 and 9:
 * 6 * 9 = 54.") and chains that reuse each result ("7 + 5 = 12. 12 * 3 = 36."). A base model
 * learns from it to copy numbers from the context into a computation, as a pretrained model
 * does, without seeing any task's question or solution format. `n_records` paragraphs of
 * `per_record` lines, as tasks_facts returns them. */
int tasks_arith_prose(char ***out, uint64_t seed, int n_records, int per_record);

#endif
