/* r1-distill tasks: write built-in reasoning tasks as JSONL prompts (or training conversations). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/cli.h"
#include "core/error.h"
#include "core/fileio.h"
#include "datasets/datasets.h"
#include "datasets/tasks.h"

static const char *opt_split, *opt_kinds, *opt_out, *opt_format, *opt_instruction;
static int64_t opt_n, opt_seed, opt_copies;

static const cli_opt tasks_opts[] = {
    {"split", OPT_STRING, &opt_split, "train", 0, "train|test", "which split"},
    {"n", OPT_INT, &opt_n, "100", 0, "N", "number of items"},
    {"seed", OPT_INT, &opt_seed, "1", 0, "S", "generator seed"},
    {"kinds", OPT_STRING, &opt_kinds, "all", 0, "LIST", "task families: arith,linear,word or all"},
    {"format", OPT_STRING, &opt_format, "prompts", 0, "prompts|messages|facts|prose",
     "prompts: {id, question, answer}; messages: user/assistant conversations with the "
     "step-by-step solution (for training a teacher); facts: {text} paragraphs of the arithmetic "
     "facts the solutions use, shuffled by --seed (a base model's corpus; --n, --split ignored); prose: --n paragraphs of "
     "arithmetic prose that names numbers before using them and chains results (the rest of that "
     "corpus: it teaches copying from the context, with no task's question or solution format)"},
    {"copies", OPT_INT, &opt_copies, "1", 0, "K",
     "facts: K independently shuffled copies (paragraphs that differ every time, so a model learns "
     "the facts rather than the order of a fixed text)"},
    {"instruction", OPT_STRING, &opt_instruction, "", 0, "TEXT",
     "text appended to each question in messages format (after a newline, as generate does)"},
    {"out", OPT_STRING, &opt_out, "-", 0, "FILE", "output JSONL file, - for stdout"},
};

static const cli_spec tasks_spec = {
    .command = "tasks",
    .summary = "Write built-in reasoning tasks (arithmetic, linear equations, word problems) with "
               "verifiable answers as JSONL. Train and test splits never share a question.",
    .opts = tasks_opts,
    .n_opts = sizeof tasks_opts / sizeof *tasks_opts,
};

static int write_out(const char *buf, size_t len) {
    if (strcmp(opt_out, "-") == 0) return fwrite(buf, 1, len, stdout) == len ? 0 : R1_ERUNTIME;
    if (file_write_atomic(opt_out, buf, len)) err_exit();
    return 0;
}

/* Appends records as {"text": ...} lines, freeing them. */
static void append_text_records(char **buf, size_t *len, size_t *cap, char **rec, int n) {
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", rec[i]);
        char *line = cJSON_PrintUnformatted(o);
        size_t k = strlen(line);
        while (*len + k + 2 > *cap) *buf = xrealloc(*buf, *cap *= 2);
        memcpy(*buf + *len, line, k);
        *len += k;
        (*buf)[(*len)++] = '\n';
        cJSON_free(line);
        cJSON_Delete(o);
        free(rec[i]);
    }
    free(rec);
}

/* --format prose (n paragraphs) or facts (`copies` shuffled copies). */
static int write_corpus(int prose, uint64_t seed, int64_t copies, int64_t n) {
    if (copies < 1 || copies > 100000) die(R1_EINPUT, "--copies", "must be between 1 and 100000");
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    char **rec;
    if (prose) {
        int got = tasks_arith_prose(&rec, seed, (int)n, 8);
        append_text_records(&buf, &len, &cap, rec, got);
    } else {
        for (int64_t c = 0; c < copies; c++) {
            int got = tasks_facts(&rec, seed + (uint64_t)c * 0x9e3779b9ull, 12);
            append_text_records(&buf, &len, &cap, rec, got);
        }
    }
    int rc = write_out(buf, len);
    free(buf);
    return rc;
}

int cmd_tasks(int argc, char **argv) {
    cli_parse(&tasks_spec, argc, argv, NULL, NULL);
    task_split split;
    if (strcmp(opt_split, "train") == 0)
        split = SPLIT_TRAIN;
    else if (strcmp(opt_split, "test") == 0)
        split = SPLIT_TEST;
    else
        die(R1_EINPUT, "--split", "expected train or test, got \"%s\"", opt_split);
    unsigned kinds;
    if (task_kinds_parse(opt_kinds, &kinds))
        die(R1_EINPUT, "--kinds", "unknown task family in \"%s\" (known: arith, linear, word, all)",
            opt_kinds);
    int messages = strcmp(opt_format, "messages") == 0;
    if (opt_n < 1 || opt_n > 10000000) die(R1_EINPUT, "--n", "must be between 1 and 10000000");
    int prose = strcmp(opt_format, "prose") == 0;
    if (prose || strcmp(opt_format, "facts") == 0)
        return write_corpus(prose, (uint64_t)opt_seed, opt_copies, opt_n);
    if (!messages && strcmp(opt_format, "prompts") != 0)
        die(R1_EINPUT, "--format", "expected prompts, messages, facts or prose, got \"%s\"", opt_format);
    task_item *items = xmalloc(sizeof *items * (size_t)opt_n);
    if (tasks_generate(items, (int)opt_n, split, (uint64_t)opt_seed, kinds)) err_exit();
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    for (int64_t i = 0; i < opt_n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", items[i].id);
        if (messages) {
            cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
            cJSON *u = cJSON_CreateObject(), *a = cJSON_CreateObject();
            char *q = opt_instruction[0] ? xasprintf("%s\n%s", items[i].question, opt_instruction)
                                         : xstrdup(items[i].question);
            char *sol = task_solution_text(&items[i]);
            cJSON_AddStringToObject(u, "role", "user");
            cJSON_AddStringToObject(u, "content", q);
            cJSON_AddStringToObject(a, "role", "assistant");
            cJSON_AddStringToObject(a, "content", sol);
            cJSON_AddItemToArray(msgs, u);
            cJSON_AddItemToArray(msgs, a);
            free(q);
            free(sol);
        } else {
            cJSON_AddStringToObject(o, "question", items[i].question);
        }
        cJSON_AddStringToObject(o, "answer", items[i].answer);
        cJSON_AddStringToObject(o, "kind", task_kind_name(items[i].kind));
        char *line = cJSON_PrintUnformatted(o);
        size_t n = strlen(line);
        while (len + n + 2 > cap) buf = xrealloc(buf, cap *= 2);
        memcpy(buf + len, line, n);
        len += n;
        buf[len++] = '\n';
        cJSON_free(line);
        cJSON_Delete(o);
    }
    int rc = write_out(buf, len);
    free(buf);
    free(items);
    return rc;
}
