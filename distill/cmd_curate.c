/* r1-distill curate: keep the traces whose answers verify and that read well; write them as new
 * shards with a report of what each filter removed (distill/curate.h). */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cli.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "distill/curate.h"
#include "eval/benchmarks.h"

static const char *o_traces, *o_out, *o_skip, *o_decontam, *o_source_field, *o_tokenizer;
static int64_t o_decontam_n, o_code_lines, o_max_par, o_repeat_n, o_max_per_prompt, o_shard_records;
static double o_mixed_max, o_repeat_max, o_near_dup, o_progress_interval;
static int o_overwrite;

static const cli_opt curate_opts[] = {
    {"traces", OPT_STRING, &o_traces, NULL, CLI_REQUIRED, "DIR",
     "trace directory written by `generate`"},
    {"out", OPT_STRING, &o_out, NULL, CLI_REQUIRED, "DIR",
     "new trace directory for the kept traces, with report.json"},
    {"max-per-prompt", OPT_INT, &o_max_per_prompt, "0", 0, "N",
     "keep at most N samples per prompt (the first to pass); 0: no limit"},
    {"skip", OPT_STRING, &o_skip, NULL, 0, "LIST",
     "filters to turn off, comma-separated: decontaminated, truncated, unclosed_think, "
     "empty_answer, incorrect, mixed_script, code_block, long_paragraph, repetition, duplicate, "
     "near_duplicate, max_per_prompt"},
    {"decontaminate", OPT_STRING, &o_decontam, NULL, 0, "FILES",
     "benchmarks to decontaminate against, comma-separated: JSONL files (gsm8k:, math:, aime:, "
     "gpqa: to name the layout) or tasks:SPLIT:N[:SEED]"},
    {"decontam-ngram", OPT_INT, &o_decontam_n, "8", 0, "N",
     "a prompt sharing a word N-gram with a benchmark question is removed"},
    {"mixed-script-max", OPT_FLOAT, &o_mixed_max, "0.01", 0, "SHARE",
     "largest share of reasoning letters outside the dominant script"},
    {"code-min-lines", OPT_INT, &o_code_lines, "3", 0, "N",
     "consecutive code-like lines that count as a code block (``` fences always do)"},
    {"max-paragraph-chars", OPT_INT, &o_max_par, "3000", 0, "N",
     "longest reasoning paragraph kept, in characters"},
    {"repeat-ngram", OPT_INT, &o_repeat_n, "10", 0, "N", "word n-gram of the repetition filter"},
    {"repeat-max", OPT_FLOAT, &o_repeat_max, "0.2", 0, "SHARE",
     "largest share of reasoning words inside a repeated n-gram"},
    {"near-dup", OPT_FLOAT, &o_near_dup, "0.8", 0, "J",
     "estimated Jaccard similarity (word 5-grams, MinHash) at which a response is a near "
     "duplicate of one kept"},
    {"source-field", OPT_STRING, &o_source_field, "source,kind", 0, "NAMES",
     "record fields naming a trace's source for the acceptance table, comma-separated (the "
     "first present counts; \"unknown\" when none is)"},
    {"tokenizer", OPT_STRING, &o_tokenizer, NULL, 0, "PATH",
     "the teacher's tokenizer.json (or its directory), to count reasoning tokens; without it "
     "completion tokens are counted"},
    {"shard-records", OPT_INT, &o_shard_records, "1000", 0, "N", "records per output shard"},
    {"overwrite", OPT_FLAG, &o_overwrite, NULL, 0, NULL,
     "replace the shards, manifest and report a previous curate left in --out"},
    {"progress-interval", OPT_FLOAT, &o_progress_interval, "30", 0, "S",
     "seconds between progress lines when stderr is not a terminal"},
};

static const cli_spec curate_spec = {
    .command = "curate",
    .summary = "Keep the traces whose answers verify and that read well; dedup and "
               "decontaminate.",
    .opts = curate_opts,
    .n_opts = sizeof curate_opts / sizeof *curate_opts,
    .details =
        "Filters, in the order they apply (a trace is counted under the first that removes it):\n"
        "  decontaminated  the prompt shares a word n-gram with a --decontaminate question\n"
        "  truncated       stopped by the token limit (finish_reason \"length\")\n"
        "  unclosed_think  no </think>\n"
        "  empty_answer    nothing after </think>\n"
        "  incorrect       the answer does not verify against \"gold\" (as `verify` judges)\n"
        "  mixed_script    too many reasoning letters outside the dominant script\n"
        "  code_block      a code block in the reasoning of a prompt with a gold answer\n"
        "  long_paragraph  a reasoning paragraph over --max-paragraph-chars\n"
        "  repetition      repeated word n-grams over --repeat-max of the reasoning\n"
        "  duplicate       the same response as a kept one (whitespace-normalised)\n"
        "  near_duplicate  MinHash Jaccard >= --near-dup with a kept response\n"
        "  max_per_prompt  the prompt already has --max-per-prompt kept samples\n"
        "Writes OUT/shard-*.tar.zst and OUT/manifest.json (a trace directory, as `generate`\n"
        "writes) and OUT/report.json, and prints the report.",
};

/* Removes what a previous curate wrote into dir; refuses a directory whose traces another
 * command wrote (its manifest has no "curation" settings), so --overwrite never deletes the
 * output of `generate`. */
static void clear_previous(const char *dir) {
    char *man = path_join(dir, "manifest.json");
    if (path_exists(man)) {
        cJSON *root;
        if (json_parse_file(&root, man, 1u << 30)) err_exit();
        const cJSON *settings = cJSON_GetObjectItemCaseSensitive(root, "settings");
        int ours = cJSON_GetObjectItemCaseSensitive(settings, "curation") != NULL;
        cJSON_Delete(root);
        if (!ours)
            die(R1_EINPUT, dir, "holds traces that curate did not write; --overwrite only "
                "replaces a previous curate's output");
    }
    free(man);
    DIR *dh = opendir(dir);
    if (!dh) return;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        const char *n = de->d_name;
        if (strncmp(n, "shard-", 6) == 0 || strncmp(n, "manifest", 8) == 0 ||
            strcmp(n, "report.json") == 0 || strcmp(n, "curate.log.jsonl") == 0) {
            char *p = path_join(dir, n);
            if (unlink(p) != 0) die(R1_ERUNTIME, p, "cannot remove the previous output");
            free(p);
        }
    }
    closedir(dh);
}

static void parse_skip(curate_config *c) {
    if (!o_skip) return;
    char *list = xstrdup(o_skip), *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        int f = curate_filter_parse(t);
        if (f < 0) die(R1_EINPUT, "--skip", "unknown filter \"%s\" (see --help)", t);
        c->off[f] = 1;
    }
    free(list);
}

static ngram_index *load_decontam(void) {
    if (!o_decontam) return NULL;
    ngram_index *x = xcalloc(1, sizeof *x);
    x->n = (int)o_decontam_n;
    char *list = xstrdup(o_decontam), *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        bench_set b;
        if (bench_load(&b, t, 0)) {
            err_context("--decontaminate");
            err_exit();
        }
        for (int i = 0; i < b.n; i++) ngram_index_add(x, b.items[i].question, strlen(b.items[i].question));
        fprintf(stderr, "r1-distill curate: decontaminating against %d questions of %s (%s)\n",
                b.n, t, bench_layout_name(b.layout));
        bench_free(&b);
    }
    free(list);
    return x;
}

static void check_options(void) {
    if (o_decontam_n < 1 || o_decontam_n > 1000) die(R1_EINPUT, "--decontam-ngram", "must be 1 to 1000");
    if (!(o_mixed_max >= 0 && o_mixed_max <= 1))
        die(R1_EINPUT, "--mixed-script-max", "must be between 0 and 1");
    if (o_code_lines < 1 || o_code_lines > 1000000) die(R1_EINPUT, "--code-min-lines", "must be at least 1");
    if (o_max_par < 1) die(R1_EINPUT, "--max-paragraph-chars", "must be at least 1");
    if (o_repeat_n < 1 || o_repeat_n > 1000) die(R1_EINPUT, "--repeat-ngram", "must be 1 to 1000");
    if (!(o_repeat_max >= 0 && o_repeat_max <= 1)) die(R1_EINPUT, "--repeat-max", "must be between 0 and 1");
    if (!(o_near_dup > 0 && o_near_dup <= 1)) die(R1_EINPUT, "--near-dup", "must be in (0, 1]");
    if (o_max_per_prompt < 0 || o_max_per_prompt > INT_MAX)
        die(R1_EINPUT, "--max-per-prompt", "must be 0 (no limit) or more");
    if (o_shard_records < 1) die(R1_EINPUT, "--shard-records", "must be at least 1");
}

static void print_report(const cJSON *r) {
    const double input = cJSON_GetObjectItem(r, "input")->valuedouble;
    const double kept = cJSON_GetObjectItem(r, "kept")->valuedouble;
    printf("curate: %.0f traces read, %.0f kept (%.1f%%)\n", input, kept,
           input > 0 ? 100.0 * kept / input : 0.0);
    printf("%-16s %10s %10s\n", "filter", "removed", "flagged");
    const cJSON *f = cJSON_GetObjectItem(r, "filters"), *fl = cJSON_GetObjectItem(r, "flagged"), *it;
    cJSON_ArrayForEach(it, f) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(fl, it->string);
        if (g) printf("%-16s %10.0f %10.0f\n", it->string, it->valuedouble, g->valuedouble);
        else printf("%-16s %10.0f %10s\n", it->string, it->valuedouble, "-");
    }
    const cJSON *off = cJSON_GetObjectItem(r, "off");
    if (cJSON_GetArraySize(off) > 0) {
        printf("off:");
        cJSON_ArrayForEach(it, off) printf(" %s", it->valuestring);
        printf("\n");
    }
    printf("%-24s %10s %10s %8s\n", "source", "input", "kept", "rate");
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(r, "acceptance_by_source")) {
        printf("%-24s %10.0f %10.0f %7.1f%%\n", it->string,
               cJSON_GetObjectItem(it, "input")->valuedouble,
               cJSON_GetObjectItem(it, "kept")->valuedouble,
               100.0 * cJSON_GetObjectItem(it, "rate")->valuedouble);
    }
    const cJSON *t = cJSON_GetObjectItem(r, "reasoning_tokens");
    printf("reasoning tokens of kept traces (%s): p10 %.0f  p50 %.0f  p90 %.0f  max %.0f\n",
           cJSON_GetObjectItem(r, "reasoning_tokens_measure")->valuestring,
           cJSON_GetObjectItem(t, "p10")->valuedouble, cJSON_GetObjectItem(t, "p50")->valuedouble,
           cJSON_GetObjectItem(t, "p90")->valuedouble, cJSON_GetObjectItem(t, "max")->valuedouble);
}

int cmd_curate(int argc, char **argv) {
    cli_parse(&curate_spec, argc, argv, NULL, NULL);
    check_options();
    curate_config c = {
        .mixed_script_max = o_mixed_max,
        .code_min_lines = (int)o_code_lines,
        .max_paragraph_chars = o_max_par,
        .repeat_ngram = (int)o_repeat_n,
        .repeat_max = o_repeat_max,
        .near_dup = o_near_dup,
        .max_per_prompt = (int)o_max_per_prompt,
        .source_field = o_source_field,
        .shard_records = o_shard_records,
        .progress_interval = o_progress_interval,
    };
    parse_skip(&c);

    /* Never write into the input. */
    char *rin = realpath(o_traces, NULL), *rout = realpath(o_out, NULL);
    if (rin && rout && strcmp(rin, rout) == 0)
        die(R1_EINPUT, "--out", "is the --traces directory; curate writes a new directory");
    free(rin);
    free(rout);
    if (o_overwrite && path_is_dir(o_out)) clear_previous(o_out);

    tokenizer *tok = NULL;
    if (o_tokenizer) {
        if (tokenizer_load(&tok, o_tokenizer)) err_exit();
        c.tok = tok;
    }
    c.decontam = load_decontam();

    cJSON *report;
    if (curate_run(&report, &c, o_traces, o_out)) err_exit();
    char *json = json_print(report);
    char *path = path_join(o_out, "report.json");
    if (file_write_atomic(path, json, strlen(json))) err_exit();
    print_report(report);
    printf("report: %s\n", path);
    free(path);
    free(json);
    cJSON_Delete(report);
    tokenizer_free(tok);
    if (c.decontam) {
        ngram_index_free(c.decontam);
        free(c.decontam);
    }
    return 0;
}
