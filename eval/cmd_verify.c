/* r1-distill verify: extract the final answer of every response in a JSONL file and judge it
 * against the gold answer, with the same code curate and eval use (answer_verify). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "core/error.h"
#include "core/json.h"
#include "datasets/jsonl.h"
#include "eval/answer_parts.h"
#include "eval/benchmarks.h"
#include "eval/eval.h"

static const char *opt_in, *opt_response, *opt_gold;

static const cli_opt verify_opts[] = {
    {"in", OPT_STRING, &opt_in, NULL, CLI_REQUIRED, "FILE",
     "JSONL records, one object per line (\"-\" reads standard input)"},
    {"response-field", OPT_STRING, &opt_response, "response", 0, "NAME",
     "field holding the model response (a string)"},
    {"gold-field", OPT_STRING, &opt_gold, "gold", 0, "NAME",
     "field holding the gold answer (a string or a number)"},
};

static const cli_spec verify_spec = {
    .command = "verify",
    .summary = "Extract each response's final answer and judge it against the gold answer.",
    .opts = verify_opts,
    .n_opts = sizeof verify_opts / sizeof *verify_opts,
    .details =
        "Prints one JSON line per record, {\"line\", \"extracted\", \"gold\", \"correct\"}, and a\n"
        "summary on stderr. The answer is taken after the last </think>: the last \\boxed{},\n"
        "else \"The answer is\", \"Answer:\", \"####\", else the last number; a gold that is a\n"
        "lone letter A-J makes it a multiple-choice letter. Equivalence covers numbers,\n"
        "fractions, percentages, LaTeX forms, expressions (compared by value), tuples,\n"
        "intervals, sets and short text; see the README section \"Answer verification\".",
};

/* The names of the record's fields, for the hint when one is missing. */
static char *field_names(const cJSON *rec) {
    sbuf b = {0};
    int k = 0;
    for (const cJSON *it = rec->child; it && k < 12; it = it->next, k++) {
        if (b.n) sb_puts(&b, ", ");
        sb_puts(&b, it->string ? it->string : "?");
    }
    if (k == 12 && rec->child) sb_puts(&b, ", ...");
    return sb_take(&b);
}

static int missing_field(const cJSON *rec, const char *where, const char *field,
                         const char *option) {
    err_fail(R1_EINPUT, where, "the record has no \"%s\" field", field);
    char *names = field_names(rec);
    err_hint("its fields are: %s; name the right one with --%s", names[0] ? names : "(none)",
             option);
    free(names);
    return R1_EINPUT;
}

/* Reads the response and gold fields of one record. *gold is fresh; *response is borrowed. */
static int record_fields(const cJSON *rec, const char *where, const char **response, char **gold) {
    if (!cJSON_IsObject(rec))
        return err_fail(R1_EINPUT, where, "expected a JSON object, got %s",
                        cJSON_IsArray(rec) ? "an array" : cJSON_IsString(rec) ? "a string"
                        : cJSON_IsNumber(rec) ? "a number" : "a literal");
    int got = json_get_str(rec, opt_response, response, where);
    if (got < 0) return R1_EINPUT;
    if (got == 0) return missing_field(rec, where, opt_response, "response-field");
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(rec, opt_gold);
    if (!g || cJSON_IsNull(g)) return missing_field(rec, where, opt_gold, "gold-field");
    if (!(*gold = answer_gold_text(g)))
        return err_fail(R1_EINPUT, where, "\"%s\" must be a string or a number", opt_gold);
    return R1_OK;
}

int cmd_verify(int argc, char **argv) {
    cli_parse(&verify_spec, argc, argv, NULL, NULL);
    jsonl_reader *r;
    if (jsonl_open(&r, opt_in)) err_exit();
    int64_t n = 0, correct = 0, missing = 0;
    for (;;) {
        cJSON *rec;
        if (jsonl_next(r, &rec)) err_exit();
        if (!rec) break;
        const char *where = jsonl_where(r);
        const char *response = NULL;
        char *gold = NULL;
        if (record_fields(rec, where, &response, &gold)) err_exit();
        answer_verdict v;
        answer_verify(&v, response, gold);
        cJSON *out = cJSON_CreateObject();
        cJSON_AddNumberToObject(out, "line", (double)jsonl_line(r));
        if (v.extracted) cJSON_AddStringToObject(out, "extracted", v.extracted);
        else cJSON_AddNullToObject(out, "extracted");
        cJSON_AddStringToObject(out, "gold", gold);
        cJSON_AddBoolToObject(out, "correct", v.correct);
        char *line = cJSON_PrintUnformatted(out);
        if (!line) die(R1_ERUNTIME, "verify", "out of memory while printing JSON");
        fputs(line, stdout);
        fputc('\n', stdout);
        cJSON_free(line);
        cJSON_Delete(out);
        n++;
        correct += v.correct;
        missing += v.extracted == NULL;
        answer_verdict_free(&v);
        free(gold);
        cJSON_Delete(rec);
    }
    int64_t lines = jsonl_line(r);
    jsonl_close(r);
    if (fflush(stdout) != 0 || ferror(stdout)) die(R1_ERUNTIME, "stdout", "write failed");
    if (n == 0) {
        err_fail(R1_EINPUT, opt_in, lines == 0 ? "no records: the file is empty"
                                               : "no records: the file has only blank lines");
        err_exit();
    }
    fprintf(stderr,
            "verify: %lld records: %lld correct (%.2f%%), %lld wrong, %lld without an answer\n",
            (long long)n, (long long)correct, 100.0 * (double)correct / (double)n,
            (long long)(n - correct - missing), (long long)missing);
    return 0;
}
