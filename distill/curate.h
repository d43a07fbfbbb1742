/* Curation: from a trace directory to the traces worth training on.
 *
 * Each record passes the filters below in this order; the first filter that rejects it is the
 * one it is counted under (first-failure counts, so input = kept + the sum of the counts).
 * The per-record filters (1-9) are also evaluated on every record regardless of order, and
 * their any-failure counts are reported beside ("flagged").
 *
 *   1 decontaminated   the prompt shares a word n-gram (8 by default) with a benchmark question
 *   2 truncated        finish_reason "length": stopped by the token limit
 *   3 unclosed_think   no </think>: the reasoning never ended
 *   4 empty_answer     nothing after </think>
 *   5 incorrect        the answer does not verify against the gold one (eval/eval.h)
 *   6 mixed_script     the share of reasoning letters outside its dominant script is too high
 *   7 code_block       the reasoning of a prompt with a gold answer holds a code block
 *   8 long_paragraph   a reasoning paragraph is longer than the limit
 *   9 repetition       too much of the reasoning repeats earlier word n-grams (loops)
 *  10 duplicate        the same response (whitespace-normalised) was already kept
 *  11 near_duplicate   a kept response's estimated word-5-gram Jaccard similarity (MinHash) is
 *                      at or above the threshold
 *  12 max_per_prompt   the prompt already has --max-per-prompt kept samples
 * Dedup and max_per_prompt compare against records already kept, in the order the trace
 * reader yields them (manifest by manifest, shard by shard), so the result is deterministic.
 *
 * The text filters are pure functions of their input (below); the stateful parts (exact and
 * near duplicate indexes, the benchmark n-gram set) are small hash structures. */
#ifndef R1_DISTILL_CURATE_H
#define R1_DISTILL_CURATE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tokenizer.h"

typedef enum {
    FILTER_DECONTAMINATED,
    FILTER_TRUNCATED,
    FILTER_UNCLOSED_THINK,
    FILTER_EMPTY_ANSWER,
    FILTER_INCORRECT,
    FILTER_MIXED_SCRIPT,
    FILTER_CODE_BLOCK,
    FILTER_LONG_PARAGRAPH,
    FILTER_REPETITION,
    FILTER_DUPLICATE,
    FILTER_NEAR_DUPLICATE,
    FILTER_MAX_PER_PROMPT,
    FILTER_COUNT
} curate_filter;

/* Per-record filters are those before FILTER_DUPLICATE. */
enum { FILTER_PER_RECORD = FILTER_DUPLICATE };

/* "decontaminated", "truncated", ... */
const char *curate_filter_name(curate_filter f);
/* The filter of a name, or -1. */
int curate_filter_parse(const char *name);

/* ---- words ---------------------------------------------------------------------------------- */

/* A text split into words, as 64-bit hashes. Words are maximal runs of non-space characters,
 * except that every CJK ideograph, kana or Hangul syllable is a word of its own (those scripts
 * do not separate words with spaces). In WORDS_FOLD mode, words are runs of letters and
 * digits with ASCII letters folded to lower case; the math signs + - * / = ^ < > ( ) [ ] { } |
 * \ % are words of one character; other punctuation and spaces separate words and are dropped
 * ("Find x, if 2x+3=7." -> find x if 2x + 3 = 7). Bytes of invalid UTF-8 count as letters. */
typedef enum { WORDS_RAW, WORDS_FOLD } words_mode;

typedef struct {
    uint64_t *h; /* [n] */
    int64_t n, cap;
} word_list;

void words_split(word_list *out, const char *text, size_t len, words_mode mode);
void word_list_free(word_list *w);

/* The hash of words [i, i + n) of a list: order-sensitive, independent of where they sit. */
uint64_t words_ngram_hash(const uint64_t *w, int n);

/* ---- pure text filters ---------------------------------------------------------------------- */

/* Scripts: letters (and combining marks) are grouped by Unicode block into Latin, Greek,
 * Cyrillic, Armenian, Hebrew, Arabic, each Indic script, Thai, Lao, Tibetan, Myanmar, Georgian,
 * Hangul, Ethiopic, CJK (Han ideographs with Hiragana, Katakana and Bopomofo, which one
 * language mixes) and "other". A run of letters that follows a backslash (a LaTeX command:
 * \frac, \sqrt) and a run of a single letter (x, \u03c0, a variable) are not counted. Returns the
 * share of counted letters outside the most frequent script (0 when none are counted) and
 * their count in *minority (may be NULL). */
double text_mixed_script_share(const char *text, size_t len, int64_t *minority);

/* 1 if the text holds a fenced code block (a line starting with ``` or ~~~) or at least
 * min_lines consecutive lines that read as code: a line starting with a keyword of a
 * programming language ("def ", "import ", "#include", "return ", "print(", "for (", ...),
 * a lone brace, or a line ending in ';' or '{'. */
int text_has_code_block(const char *text, size_t len, int min_lines);

/* The length in code points of the longest paragraph (paragraphs are separated by lines that
 * are empty or hold only spaces/tabs/CR; a paragraph's length excludes its outer newlines). */
int64_t text_longest_paragraph(const char *text, size_t len);

/* The share of words that repeat: the words covered by an occurrence of a word n-gram that
 * already occurred earlier in the text, over all words (WORDS_RAW). 0 when the text has fewer
 * than n words. A loop that says the same sentence 50 times scores near 1; ordinary reasoning,
 * which restates short equations, scores near 0. */
double text_repetition_share(const char *text, size_t len, int n);

/* ---- hash sets and duplicate indexes -------------------------------------------------------- */

/* A set of 64-bit keys (open addressing). */
typedef struct {
    uint64_t *k;    /* [cap]; 0 marks an empty slot (key 0 is stored as a flag) */
    int64_t n, cap;
    int has_zero;
} u64_set;

/* Returns 1 if key was new (and adds it), 0 if present. */
int u64_set_add(u64_set *s, uint64_t key);
int u64_set_has(const u64_set *s, uint64_t key);
void u64_set_free(u64_set *s);

/* Exact duplicates: two 64-bit hashes of the whitespace-normalised text (runs of spaces, tabs,
 * CR and LF become one space; leading and trailing ones go). Returns 1 if the text was already
 * added, else adds it (if add) and returns 0. */
typedef struct {
    u64_set a, b;
} exact_index;
int exact_index_check(exact_index *x, const char *text, size_t len, int add);
void exact_index_free(exact_index *x);

/* Near duplicates by MinHash over word shingles with LSH banding:
 *   shingles   WORDS_FOLD 5-grams of the text (one shingle of all words when it has fewer)
 *   signature  128 values: for permutation i, the minimum over shingle hashes x of
 *              hi32(a_i * x + b_i mod 2^64), a_i = mix64(2i + 1) | 1, b_i = mix64(2i + 2)
 *              (multiply-shift hashing; mix64 is core/hash.h's splitmix output function)
 *   bands      32 bands of 4 values; texts that agree on a whole band are candidates, and a
 *              candidate whose signatures agree on at least threshold * 128 values is a match.
 * A text with no words is never a near duplicate. */
enum { MINHASH_PERMS = 128, MINHASH_BANDS = 32, MINHASH_ROWS = 4, MINHASH_SHINGLE = 5 };

typedef struct near_index near_index;
near_index *near_index_create(double threshold);
/* Returns 1 if the text is a near duplicate of one added before (*similarity gets the best
 * estimate, may be NULL); else adds it (if add) and returns 0. */
int near_index_check(near_index *x, const char *text, size_t len, int add, double *similarity);
void near_index_free(near_index *x);
/* The signature of a text (sig[MINHASH_PERMS]); returns 0 when the text has no words. */
int minhash_signature(uint32_t *sig, const char *text, size_t len);

/* Decontamination: the WORDS_FOLD n-grams of benchmark questions. A question of fewer than n
 * words contributes one gram of all its words, which a prompt matches only when the prompt is
 * that question (the same words). */
typedef struct {
    int n;
    u64_set grams;       /* n-grams and short whole questions */
    int64_t questions;   /* questions added */
} ngram_index;

void ngram_index_add(ngram_index *x, const char *text, size_t len);
/* 1 if the text shares a gram with the index. */
int ngram_index_hits(const ngram_index *x, const char *text, size_t len);
void ngram_index_free(ngram_index *x);

/* ---- a curation run ------------------------------------------------------------------------- */

typedef struct {
    int off[FILTER_COUNT];       /* 1: the filter is turned off */
    ngram_index *decontam;       /* benchmark n-grams; NULL: decontamination off */
    double mixed_script_max;     /* largest share of letters outside the dominant script */
    int code_min_lines;          /* consecutive code-like lines that make a code block */
    int64_t max_paragraph_chars; /* longest paragraph kept, in code points */
    int repeat_ngram;            /* n of the repetition filter */
    double repeat_max;           /* largest share of repeated words */
    double near_dup;             /* Jaccard estimate at which a response is a near duplicate */
    int max_per_prompt;          /* kept samples per prompt; 0: no limit */
    const char *source_field;    /* record fields naming a trace's source, comma-separated: the
                                  * first that holds a non-empty string counts */
    const tokenizer *tok;        /* counts reasoning tokens; NULL: completion tokens are counted */
    int64_t shard_records;       /* records per output shard */
    double progress_interval;    /* seconds between progress lines off a terminal */
} curate_config;

/* What the per-record filters say about one trace record. */
typedef struct {
    int fail[FILTER_PER_RECORD]; /* 1 where the filter rejects the record (filters that are on) */
    char *text;                  /* the record's text (borrowed from the record) */
    char *extracted;             /* the answer found (when verified), fresh or NULL */
    int verified;                /* 1 if the answer was verified against a gold one */
    int64_t reasoning_tokens;
    const char *source;          /* borrowed from the record, or "unknown" */
} curate_verdict;

/* Runs the per-record filters on a record (`where` names it in errors). R1_EINPUT when the
 * record lacks a field an enabled filter needs ("text", "finish_reason", "gold", "prompt" or
 * "messages"). */
int curate_check(curate_verdict *v, const curate_config *c, const cJSON *rec, const char *where);
void curate_verdict_free(curate_verdict *v);

/* Reads the trace directory `in`, writes the kept records as new shards and a manifest into
 * `out` (which must hold no shards or manifest), and returns the report (report.json's
 * object; the caller writes it). */
int curate_run(cJSON **report, const curate_config *c, const char *in, const char *out);

int cmd_curate(int argc, char **argv);

#endif
