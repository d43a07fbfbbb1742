/* Benchmarks: questions with gold answers, from the published JSONL layouts or the built-in
 * tasks, for `eval` (which samples answers) and `curate` (which decontaminates against them).
 *
 * A benchmark spec is one of
 *   tasks:SPLIT:N[:SEED]   N built-in tasks of split train|test (datasets/tasks.h), seed 1 by
 *                          default: tasks:test:200, tasks:test:50:7
 *   FILE.jsonl             a JSONL file; its layout is recognised from the first record
 *   LAYOUT:FILE.jsonl      the same with the layout named: gsm8k, math, aime or gpqa
 *
 * Layouts (field names as published; the first of each list that is present is used):
 *   gsm8k  openai/gsm8k: {"question", "answer"}; the gold is the text after the last "####"
 *          of answer (recognised when answer holds "####")
 *   math   MATH, MATH-500 (HuggingFaceH4/MATH-500), AIME 2024 (Maxwell-Jia/AIME_2024,
 *          HuggingFaceH4/aime_2024), AIME 2025 (opencompass/AIME2025, yentinglin/aime_2025,
 *          math-ai/aime25, MathArena/aime_2025):
 *            question  "problem", "Problem", "question", "Question"
 *            gold      "answer", "Answer" (a string or a number); without one, the last
 *                      \boxed{} of "solution" / "Solution" (MATH's original layout)
 *          "aime" is the same layout under its own name
 *   gpqa   GPQA / GPQA-Diamond (Idavidrein/gpqa as JSONL): {"Question", "Correct Answer",
 *          "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"}. The four
 *          options are shuffled into A-D by a permutation drawn from (shuffle seed, question id)
 *          and the prompt is simple-evals' multiple-choice template (the one DeepSeek-R1 was
 *          evaluated with):
 *            Answer the following multiple choice question. The last line of your response
 *            should be of the following format: 'Answer: $LETTER' (without quotes) where LETTER
 *            is one of ABCD. Think step by step before answering.
 *
 *            {Question}
 *
 *            A) {A}
 *            B) {B}
 *            C) {C}
 *            D) {D}
 *          (the first paragraph is one line); the gold is the correct option's letter.
 * Question ids come from "id", "ID", "unique_id", "Record ID", "problem_idx" or "idx" (a string
 * or an integer), else the 1-based line number; ids must be unique. A record that lacks a
 * field its layout needs, a duplicate id, an empty file: R1_EINPUT naming the file and line. */
#ifndef R1_EVAL_BENCHMARKS_H
#define R1_EVAL_BENCHMARKS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "eval/eval.h"

typedef enum { BENCH_TASKS, BENCH_GSM8K, BENCH_MATH, BENCH_AIME, BENCH_GPQA } bench_layout;

typedef struct {
    char *id;
    int64_t line;       /* 1-based line in the file; 0 for built-in tasks */
    char *question;     /* the question as published (GPQA: the question alone) */
    char *prompt;       /* the user message before any instruction (GPQA: the full template) */
    char *gold;
    answer_kind kind;   /* answer_gold_kind(gold) */
} bench_item;

typedef struct {
    char *spec;         /* as given */
    char *name;         /* "tasks:test:200" or the file's base name */
    bench_layout layout;
    bench_item *items;
    int n;
} bench_set;

/* Loads a benchmark spec (see above); shuffle_seed fixes GPQA's option order. */
int bench_load(bench_set *b, const char *spec, uint64_t shuffle_seed);
void bench_free(bench_set *b);
const char *bench_layout_name(bench_layout l);
/* 1 for layouts whose answers are math (the \boxed{} instruction applies): tasks, gsm8k, math,
 * aime. */
int bench_layout_is_math(bench_layout l);

/* The gold answer of a JSON value: a string as it is, a finite number as the shortest text
 * that reads back as the same double; NULL for anything else. Fresh string. */
char *answer_gold_text(const cJSON *v);

/* The GPQA permutation: perm[i] is the index (0 = correct, 1-3 = incorrect 1-3) of the option
 * shown as letter 'A' + i. A Fisher-Yates shuffle driven by splitmix64 outputs of
 * mix64(mix64(seed ^ golden) ^ FNV-1a(id)) (core/hash.h). */
void bench_gpqa_permutation(int perm[4], uint64_t seed, const char *id);

#endif
