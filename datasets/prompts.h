/* Prompt sources for `generate`: a JSONL file, one JSON object per line.
 *
 * The prompt field (--prompt-field, default "prompt") holds one of
 *   a string                        the user's message
 *   an array of {"role", "content"} a conversation (roles system, user, assistant)
 *   an array of integers            token ids, used as they are (no template, no instruction)
 * The id field (--id-field) is a string or an integer; without it a prompt's id is its 1-based
 * line number. The gold field (--gold-field), any JSON value, is carried into each record.
 * Lines are read by datasets/jsonl.h (blank lines skipped but counted, CRLF and a BOM
 * accepted, UTF-8 checked). A line that is not valid UTF-8 or a JSON object, lacks the prompt
 * field, holds a prompt of the wrong shape or repeats an id is bad: loading fails naming it as
 * "file:LINE" (R1_EINPUT), or with skip_bad the line is skipped and counted.
 *
 * Ranks: the prompt on line L belongs to rank (L - 1) mod world_size. Every rank reads and
 * checks the whole file (so all ranks agree on what is bad), keeping only its own prompts. */
#ifndef R1_DATASETS_PROMPTS_H
#define R1_DATASETS_PROMPTS_H

#include <cjson/cJSON.h>
#include <stdint.h>

typedef struct {
    const char *prompt_field; /* "prompt" */
    const char *id_field;     /* NULL: the line number */
    const char *gold_field;   /* NULL: none */
    int skip_bad;
    int rank, world_size;
} prompt_options;

typedef enum { PROMPT_TEXT, PROMPT_MESSAGES, PROMPT_TOKENS } prompt_kind;

typedef struct {
    int64_t line;       /* 1-based line number */
    char *id;
    prompt_kind kind;
    cJSON *value;       /* the prompt field as given */
    cJSON *gold;        /* NULL when absent */
    int *tokens;        /* PROMPT_TOKENS */
    int n_tokens;
} prompt_item;

typedef struct {
    prompt_item *items; /* this rank's prompts, in file order */
    int n;
    int64_t lines;      /* lines in the file */
    int64_t valid;      /* valid prompts in the whole file (all ranks) */
    int64_t bad;        /* bad lines skipped (skip_bad) */
    uint64_t hash;      /* FNV-1a-64 of the file's bytes */
    uint64_t bytes;
} prompt_set;

int prompts_load(prompt_set *ps, const char *path, const prompt_options *o);
void prompts_free(prompt_set *ps);

/* Parses one line (line number `line`, `where` its location for messages, e.g. "p.jsonl:12")
 * into *item; R1_EINPUT with "<where>: why". The id is not checked for duplicates here. Used
 * by prompts_load (lines from datasets/jsonl.h) and the fuzz target. */
int prompts_parse_line(prompt_item *item, const char *text, size_t len, int64_t line,
                       const prompt_options *o, const char *where);
void prompt_item_free(prompt_item *item);

#endif
