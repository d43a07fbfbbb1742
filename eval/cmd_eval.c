/* r1-distill eval: sample a model K times per benchmark question with the generation engine
 * (teacher/engine.h) and report pass@1 with its standard error, cons@K, unbiased pass@k, the
 * mean response length and the share truncated (R1 protocol: temperature 0.6, top-p 0.95).
 *
 * Order of work: load the benchmark, open the model and its tokenizer, render every question
 * with the chat format and instruction, run all (question, sample) pairs through the engine,
 * judge each response (answer_extract / answer_equiv), then write samples.jsonl,
 * summary.json and summary.md. */
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/progress.h"
#include "eval/benchmarks.h"
#include "eval/eval.h"
#include "eval/metrics.h"
#include "teacher/generate.h"

#define R1_INSTRUCTION "Please reason step by step, and put your final answer within \\boxed{}."

static const char *o_model, *o_bench, *o_out, *o_instruction, *o_chat_format, *o_tokenizer,
    *o_pass_k, *o_eos;
static int64_t o_samples, o_max_new, o_top_k, o_seed, o_shuffle_seed, o_batch, o_max_len, o_chunk,
    o_limit;
static double o_temperature, o_top_p, o_progress_interval;
static int o_dry_run;

static const cli_opt eval_opts[] = {
    {"model", OPT_STRING, &o_model, NULL, CLI_REQUIRED, "DIR|FILE.gguf",
     "model: a Hugging Face directory or a GGUF file"},
    {"bench", OPT_STRING, &o_bench, NULL, CLI_REQUIRED, "SPEC",
     "benchmark: FILE.jsonl (GSM8K, MATH, AIME, GPQA layouts; gsm8k:, math:, aime:, gpqa: "
     "force one) or tasks:SPLIT:N[:SEED]"},
    {"samples", OPT_INT, &o_samples, "4", 0, "K", "samples per question"},
    {"temperature", OPT_FLOAT, &o_temperature, "0.6", 0, "T", "sampling temperature; 0 is greedy"},
    {"top-p", OPT_FLOAT, &o_top_p, "0.95", 0, "P", "nucleus sampling mass; 1 turns it off"},
    {"top-k", OPT_INT, &o_top_k, "0", 0, "K", "keep the K most likely tokens; 0 turns it off"},
    {"max-new-tokens", OPT_INT, &o_max_new, "32768", 0, "N", "most tokens generated per sample"},
    {"out", OPT_STRING, &o_out, NULL, 0, "DIR",
     "write samples.jsonl, summary.json and summary.md here (without it, print the summary only)"},
    {"instruction", OPT_STRING, &o_instruction, "auto", 0, "TEXT",
     "appended to each question after a newline; auto: the R1 \\boxed{} sentence for math "
     "benchmarks, nothing for GPQA (its template asks for the letter); none: nothing"},
    {"chat-format", OPT_STRING, &o_chat_format, "auto", 0, "FMT",
     "auto (from the tokenizer), r1, chatml, llama3, or none (raw text)"},
    {"tokenizer", OPT_STRING, &o_tokenizer, NULL, 0, "PATH",
     "tokenizer.json or its directory; default: the model directory (the GGUF file's directory)"},
    {"seed", OPT_INT, &o_seed, "0", 0, "S", "sampling seed; each (question id, sample) draws its own stream"},
    {"shuffle-seed", OPT_INT, &o_shuffle_seed, "0", 0, "S", "seed of GPQA's option order"},
    {"limit", OPT_INT, &o_limit, "0", 0, "N", "only the first N questions; 0: all"},
    {"pass-k", OPT_STRING, &o_pass_k, NULL, 0, "LIST",
     "k values of pass@k, comma-separated; default 1, 2, 4, ... up to K, and K"},
    {"eos", OPT_STRING, &o_eos, NULL, 0, "IDS",
     "extra end-of-sequence ids (config, generation_config and tokenizer eos always stop)"},
    {"batch", OPT_INT, &o_batch, "16", 0, "N", "sequences in flight at once"},
    {"max-len", OPT_INT, &o_max_len, "0", 0, "N",
     "cap on prompt + generated tokens; 0: the model's max_position_embeddings"},
    {"prefill-chunk", OPT_INT, &o_chunk, "512", 0, "N", "most prompt tokens per forward call"},
    {"progress-interval", OPT_FLOAT, &o_progress_interval, "30", 0, "S",
     "seconds between progress lines when stderr is not a terminal"},
    {"dry-run", OPT_FLAG, &o_dry_run, NULL, 0, NULL,
     "print each question's user message (instruction included) and gold answer as JSON lines "
     "and stop; the model is not opened"},
};

static const cli_spec eval_spec = {
    .command = "eval",
    .summary = "Sample a model on a benchmark; report pass@1 over K samples, cons@K and pass@k.",
    .opts = eval_opts,
    .n_opts = sizeof eval_opts / sizeof *eval_opts,
    .details =
        "Each question is asked with the model's chat format (R1: the assistant turn prefilled\n"
        "with \"<think>\\n\"); the answer is what follows </think>: the last \\boxed{}, else the\n"
        "fallbacks of `verify` (a letter for GPQA). A sample cut off before </think> has no\n"
        "answer. pass@1 is the mean correctness over the K samples of each question, averaged\n"
        "over questions, with the standard error over questions; cons@K is the majority\n"
        "answer's correctness; pass@k is the unbiased estimator 1 - C(n-c,k)/C(n,k).",
};

/* ---- state ---------------------------------------------------------------------------------- */

typedef struct {
    char *text;         /* the generated text (without the prefill) */
    char *extracted;    /* NULL: no answer */
    int correct;
    int tokens;
    const char *finish; /* "stop" or "length" */
    const char *stop_reason;
} sample_result;

typedef struct {
    bench_set b;
    int K;
    teacher_model *m;
    tokenizer *tok;
    int **ids;          /* [b.n] rendered prompt ids */
    int *n_ids;
    int prefilled;      /* the prompts end with "<think>": responses are read with that prefix */
    int *eos;
    int n_eos;
    sample_result *res; /* [b.n * K] */
    int64_t next, total, done, generated;
    gen_record_context rc;
    progress *prog;
} eval_state;

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

/* ---- setup ---------------------------------------------------------------------------------- */

static void add_eos(eval_state *e, int id) {
    if (id < 0) return;
    for (int i = 0; i < e->n_eos; i++)
        if (e->eos[i] == id) return;
    e->eos = xrealloc(e->eos, sizeof(int) * (size_t)(e->n_eos + 1));
    e->eos[e->n_eos++] = id;
}

/* End-of-sequence ids: config.json, generation_config.json beside a model directory, the
 * tokenizer's eos, --eos. */
static void collect_eos(eval_state *e) {
    for (int i = 0; i < e->m->cfg.n_eos; i++) add_eos(e, e->m->cfg.eos_ids[i]);
    if (path_is_dir(o_model)) {
        char *gc = path_join(o_model, "generation_config.json");
        if (path_exists(gc)) {
            cJSON *root;
            if (json_parse_file(&root, gc, 1 << 20)) err_exit();
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id"), *it;
            if (json_is_int(x)) add_eos(e, (int)x->valuedouble);
            if (cJSON_IsArray(x)) cJSON_ArrayForEach(it, x) if (json_is_int(it)) add_eos(e, (int)it->valuedouble);
            cJSON_Delete(root);
        }
        free(gc);
    }
    add_eos(e, tokenizer_eos_id(e->tok));
    if (o_eos) {
        int n, *ids = cli_parse_int_list("--eos", o_eos, &n);
        for (int i = 0; i < n; i++) add_eos(e, ids[i]);
        free(ids);
    }
}

static const char *instruction_for(bench_layout l);

/* --dry-run: what each question asks, as the model would be asked it (before the template). */
static void print_questions(const bench_set *b) {
    const char *instr = instruction_for(b->layout);
    for (int q = 0; q < b->n; q++) {
        const bench_item *it = &b->items[q];
        char *user = instr ? xasprintf("%s\n%s", it->prompt, instr) : xstrdup(it->prompt);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", it->id);
        cJSON_AddNumberToObject(o, "line", (double)it->line);
        cJSON_AddStringToObject(o, "question", it->question);
        cJSON_AddStringToObject(o, "prompt", user);
        cJSON_AddStringToObject(o, "gold", it->gold);
        cJSON_AddStringToObject(o, "kind", it->kind == ANSWER_CHOICE ? "choice" : "math");
        char *line = cJSON_PrintUnformatted(o);
        CHECK(line);
        puts(line);
        cJSON_free(line);
        cJSON_Delete(o);
        free(user);
    }
}

static const char *instruction_for(bench_layout l) {
    if (strcmp(o_instruction, "none") == 0 || !o_instruction[0]) return NULL;
    if (strcmp(o_instruction, "auto") == 0) return bench_layout_is_math(l) ? R1_INSTRUCTION : NULL;
    return o_instruction;
}

static int ends_with_think(const char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ')) n--;
    return n >= 7 && memcmp(s + n - 7, "<think>", 7) == 0;
}

/* Renders and encodes every question; returns the longest prompt. */
static int64_t prepare_prompts(eval_state *e, int64_t cap_len, const char **fmt_name) {
    chat_format fmt = CHAT_AUTO;
    int use_template = strcmp(o_chat_format, "none") != 0;
    if (use_template && chat_format_parse(o_chat_format, &fmt) != 0)
        die(R1_EINPUT, "--chat-format", "unknown format \"%s\" (auto, r1, chatml, llama3, none)",
            o_chat_format);
    if (use_template && fmt == CHAT_AUTO && chat_detect(e->tok, &fmt)) {
        err_hint("name one with --chat-format r1|chatml|llama3|none");
        err_exit();
    }
    *fmt_name = use_template ? chat_format_name(fmt) : "none";
    const char *instr = instruction_for(e->b.layout);
    const int64_t V = e->m->cfg.vocab_size;
    int64_t longest = 0;
    e->ids = xcalloc((size_t)e->b.n, sizeof *e->ids);
    e->n_ids = xcalloc((size_t)e->b.n, sizeof *e->n_ids);
    for (int q = 0; q < e->b.n; q++) {
        const bench_item *it = &e->b.items[q];
        char *user = instr ? xasprintf("%s\n%s", it->prompt, instr) : xstrdup(it->prompt);
        char *text = NULL;
        int rc;
        if (use_template) {
            chat_message msg = {"user", user};
            rc = chat_render(e->tok, fmt, &msg, 1, 1, &text);
        } else {
            text = xstrdup(user);
            rc = R1_OK;
        }
        if (!rc) rc = tokenizer_encode(e->tok, text, strlen(text), !use_template, &e->ids[q], &e->n_ids[q]);
        if (!rc && q == 0) e->prefilled = ends_with_think(text);
        free(text);
        free(user);
        char where[512];
        snprintf(where, sizeof where, "%s: question %s", e->b.name, it->id);
        if (rc) {
            err_context(where);
            err_exit();
        }
        if (e->n_ids[q] < 1) die(R1_EINPUT, where, "the prompt encodes to no tokens");
        if (e->n_ids[q] >= cap_len)
            die(R1_EINPUT, where, "the prompt is %d tokens; the cap is %lld (--max-len or "
                "max_position_embeddings) and leaves no room to answer", e->n_ids[q],
                (long long)cap_len);
        for (int j = 0; j < e->n_ids[q]; j++)
            if (e->ids[q][j] >= V)
                die(R1_EINPUT, where, "token id %d is outside the model's vocabulary (%lld)",
                    e->ids[q][j], (long long)V);
        if (e->n_ids[q] > longest) longest = e->n_ids[q];
    }
    return longest;
}

/* ---- engine callbacks ----------------------------------------------------------------------- */

static int ev_next(void *ctx, engine_request *req) {
    eval_state *e = ctx;
    if (e->next >= e->total) return 0;
    int64_t t = e->next++;
    int q = (int)(t / e->K), s = (int)(t % e->K);
    const char *id = e->b.items[q].id;
    *req = (engine_request){.prompt = e->ids[q], .n_prompt = e->n_ids[q],
                            .stream = sampler_stream(id, strlen(id)), .sample = s,
                            .user = (void *)(intptr_t)t};
    return 1;
}

static int ev_done(void *ctx, const engine_result *r) {
    eval_state *e = ctx;
    int64_t t = (int64_t)(intptr_t)r->req->user;
    int q = (int)(t / e->K);
    const bench_item *it = &e->b.items[q];
    /* The record generate would write: the same decoding of the completion. */
    cJSON *value = cJSON_CreateString(it->prompt);
    prompt_item p = {.line = it->line, .id = it->id, .kind = PROMPT_TEXT, .value = value};
    cJSON *rec = gen_record_build(&e->rc, &p, e->ids[q], e->n_ids[q], r, "eval");
    cJSON_Delete(value);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(rec, "text");
    sample_result *s = &e->res[t];
    s->text = xstrdup(cJSON_IsString(text) ? text->valuestring : "");
    s->tokens = r->n_tokens;
    s->finish = r->finish == ENGINE_EOS || r->finish == ENGINE_STOP_STRING ? "stop" : "length";
    s->stop_reason = engine_finish_name(r->finish);
    cJSON_Delete(rec);
    char *response = e->prefilled ? xasprintf("<think>\n%s", s->text) : xstrdup(s->text);
    if (answer_extract(&s->extracted, response, it->kind))
        s->correct = answer_equiv(s->extracted, it->gold, it->kind);
    free(response);
    e->done++;
    return R1_OK;
}

static int ev_tick(void *ctx, const engine_stats *st) {
    eval_state *e = ctx;
    if (got_signal)
        return err_fail(R1_ERUNTIME, "eval", "interrupted by %s",
                        got_signal == SIGINT ? "SIGINT" : got_signal == SIGTERM ? "SIGTERM" : "a signal");
    e->generated = st->generated;
    progress_field f[1] = {{"tokens", (double)e->generated, 1, 0}};
    progress_update(e->prog, e->done, f, 1, 0);
    return R1_OK;
}

/* ---- report --------------------------------------------------------------------------------- */

/* The k values of pass@k: --pass-k, or 1, 2, 4, ... < K and K. */
static int *pass_ks(int K, int *n) {
    if (o_pass_k) {
        int *ks = cli_parse_int_list("--pass-k", o_pass_k, n);
        for (int i = 0; i < *n; i++)
            if (ks[i] < 1 || ks[i] > K) {
                int k = ks[i];
                free(ks);
                die(R1_EINPUT, "--pass-k", "k = %d is outside 1..%d (the samples per question)", k, K);
            }
        return ks;
    }
    int *ks = xmalloc(sizeof(int) * 40);
    *n = 0;
    for (int k = 1; k < K; k *= 2) ks[(*n)++] = k;
    ks[(*n)++] = K;
    return ks;
}

static char *model_name(void) {
    char *copy = xstrdup(o_model);
    size_t n = strlen(copy);
    while (n > 1 && copy[n - 1] == '/') copy[--n] = 0;
    char *name = xstrdup(basename(copy));
    free(copy);
    return name;
}

static cJSON *summarise(const eval_state *e, double seconds, const char *fmt_name) {
    const int Q = e->b.n, K = e->K;
    int *correct = xcalloc((size_t)Q, sizeof(int));
    int cons = 0, truncated = 0, no_answer = 0;
    double tokens = 0;
    const char **answers = xmalloc(sizeof(char *) * (size_t)K);
    for (int q = 0; q < Q; q++) {
        for (int s = 0; s < K; s++) {
            const sample_result *r = &e->res[(int64_t)q * K + s];
            correct[q] += r->correct;
            truncated += strcmp(r->finish, "length") == 0;
            no_answer += r->extracted == NULL;
            tokens += r->tokens;
            answers[s] = r->extracted;
        }
        int w = cons_vote(answers, K, e->b.items[q].kind, NULL);
        cons += w >= 0 && e->res[(int64_t)q * K + w].correct;
    }
    free(answers);
    double mean, se;
    pass1_mean_stderr(correct, Q, K, &mean, &se);
    const double n_samples = (double)Q * K;
    cJSON *o = cJSON_CreateObject();
    char *name = model_name();
    cJSON_AddStringToObject(o, "model", name);
    free(name);
    cJSON_AddStringToObject(o, "model_path", o_model);
    cJSON_AddStringToObject(o, "bench", e->b.name);
    cJSON_AddStringToObject(o, "bench_spec", e->b.spec);
    cJSON_AddStringToObject(o, "layout", bench_layout_name(e->b.layout));
    cJSON_AddNumberToObject(o, "questions", Q);
    cJSON_AddNumberToObject(o, "samples", K);
    cJSON_AddNumberToObject(o, "pass@1", mean);
    cJSON_AddNumberToObject(o, "pass@1_stderr", se);
    cJSON_AddNumberToObject(o, "cons@k", (double)cons / Q);
    cJSON_AddNumberToObject(o, "k", K);
    int nk, *ks = pass_ks(K, &nk);
    cJSON *pk = cJSON_AddObjectToObject(o, "pass@k");
    for (int i = 0; i < nk; i++) {
        double sum = 0;
        for (int q = 0; q < Q; q++) sum += pass_at_k(K, correct[q], ks[i]);
        char key[16];
        snprintf(key, sizeof key, "%d", ks[i]);
        cJSON_DeleteItemFromObjectCaseSensitive(pk, key);
        cJSON_AddNumberToObject(pk, key, sum / Q);
    }
    free(ks);
    cJSON_AddNumberToObject(o, "mean_response_tokens", tokens / n_samples);
    cJSON_AddNumberToObject(o, "truncated_share", truncated / n_samples);
    cJSON_AddNumberToObject(o, "no_answer_share", no_answer / n_samples);
    cJSON_AddNumberToObject(o, "generated_tokens", tokens);
    cJSON_AddNumberToObject(o, "seconds", round(seconds * 1000) / 1000);
    cJSON *st = cJSON_AddObjectToObject(o, "settings");
    cJSON_AddNumberToObject(st, "temperature", o_temperature);
    cJSON_AddNumberToObject(st, "top_p", o_top_p);
    cJSON_AddNumberToObject(st, "top_k", (double)o_top_k);
    cJSON_AddNumberToObject(st, "max_new_tokens", (double)o_max_new);
    cJSON_AddNumberToObject(st, "seed", (double)o_seed);
    cJSON_AddNumberToObject(st, "shuffle_seed", (double)o_shuffle_seed);
    const char *instr = instruction_for(e->b.layout);
    if (instr) cJSON_AddStringToObject(st, "instruction", instr);
    else cJSON_AddNullToObject(st, "instruction");
    cJSON_AddStringToObject(st, "chat_format", fmt_name);
    cJSON_AddBoolToObject(st, "think_prefilled", e->prefilled);
    free(correct);
    return o;
}

static double num(const cJSON *o, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(o, key)->valuedouble;
}

/* summary.md: one table row, percentages. */
static char *summary_markdown(const cJSON *s) {
    const int K = (int)num(s, "samples");
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(s, "pass@k"), *it;
    char head[1024], rule[1024], row[2048];
    int h = snprintf(head, sizeof head, "| model | bench | questions | K | pass@1 (%%) | cons@%d (%%)", K);
    int r = snprintf(rule, sizeof rule, "|---|---|---:|---:|---:|---:");
    int w = snprintf(row, sizeof row, "| %s | %s | %.0f | %d | %.1f ± %.1f | %.1f",
                     cJSON_GetObjectItem(s, "model")->valuestring,
                     cJSON_GetObjectItem(s, "bench")->valuestring, num(s, "questions"), K,
                     100 * num(s, "pass@1"), 100 * num(s, "pass@1_stderr"), 100 * num(s, "cons@k"));
    cJSON_ArrayForEach(it, pk) {
        if (strcmp(it->string, "1") == 0) continue;
        if (h < (int)sizeof head - 32) h += snprintf(head + h, sizeof head - (size_t)h, " | pass@%s (%%)", it->string);
        if (r < (int)sizeof rule - 8) r += snprintf(rule + r, sizeof rule - (size_t)r, "|---:");
        if (w < (int)sizeof row - 32) w += snprintf(row + w, sizeof row - (size_t)w, " | %.1f", 100 * it->valuedouble);
    }
    return xasprintf("%s | mean tokens | truncated (%%) |\n%s|---:|---:|\n%s | %.0f | %.1f |\n", head,
                     rule, row, num(s, "mean_response_tokens"), 100 * num(s, "truncated_share"));
}

static void write_outputs(const eval_state *e, const cJSON *summary, const char *md) {
    if (dir_create(o_out)) err_exit();
    char *path = path_join(o_out, "samples.jsonl");
    atomic_file a;
    if (atomic_open(&a, path)) err_exit();
    for (int q = 0; q < e->b.n; q++)
        for (int s = 0; s < e->K; s++) {
            const sample_result *r = &e->res[(int64_t)q * e->K + s];
            const bench_item *it = &e->b.items[q];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "question_id", it->id);
            cJSON_AddNumberToObject(o, "sample", s);
            cJSON_AddStringToObject(o, "response", r->text);
            if (r->extracted) cJSON_AddStringToObject(o, "extracted", r->extracted);
            else cJSON_AddNullToObject(o, "extracted");
            cJSON_AddStringToObject(o, "gold", it->gold);
            cJSON_AddBoolToObject(o, "correct", r->correct);
            cJSON_AddNumberToObject(o, "tokens", r->tokens);
            cJSON_AddStringToObject(o, "finish_reason", r->finish);
            cJSON_AddStringToObject(o, "stop_reason", r->stop_reason);
            char *line = cJSON_PrintUnformatted(o);
            CHECK(line);
            atomic_write(&a, line, strlen(line));
            atomic_write(&a, "\n", 1);
            cJSON_free(line);
            cJSON_Delete(o);
        }
    if (atomic_commit(&a)) err_exit();
    free(path);
    char *json = json_print(summary);
    path = path_join(o_out, "summary.json");
    if (file_write_atomic(path, json, strlen(json))) err_exit();
    free(path);
    free(json);
    path = path_join(o_out, "summary.md");
    if (file_write_atomic(path, md, strlen(md))) err_exit();
    free(path);
}

/* ---- the command ---------------------------------------------------------------------------- */

static void check_options(void) {
    if (o_samples < 1 || o_samples > 100000) die(R1_EINPUT, "--samples", "must be between 1 and 100000");
    if (o_max_new < 1 || o_max_new > 10000000)
        die(R1_EINPUT, "--max-new-tokens", "must be between 1 and 10000000");
    if (o_seed < 0 || o_seed > (1ll << 53)) die(R1_EINPUT, "--seed", "must be between 0 and 2^53");
    if (o_shuffle_seed < 0 || o_shuffle_seed > (1ll << 53))
        die(R1_EINPUT, "--shuffle-seed", "must be between 0 and 2^53");
    if (o_batch < 1 || o_batch > 100000) die(R1_EINPUT, "--batch", "must be between 1 and 100000");
    if (o_chunk < 1 || o_chunk > 10000000) die(R1_EINPUT, "--prefill-chunk", "must be at least 1");
    if (o_max_len < 0 || o_max_len > INT_MAX / 2) die(R1_EINPUT, "--max-len", "must be 0 or positive");
    if (o_limit < 0) die(R1_EINPUT, "--limit", "must be 0 (all) or positive");
    if (o_top_k < 0 || o_top_k > INT_MAX) die(R1_EINPUT, "--top-k", "must be >= 0");
    sampler_params sp = {o_temperature, o_top_p, (int)o_top_k};
    if (sampler_params_check(&sp)) err_exit();
}

static const char *token_bytes_cb(void *ctx, int id, size_t *len) {
    return tokenizer_token_bytes(ctx, id, len);
}

int cmd_eval(int argc, char **argv) {
    cli_parse(&eval_spec, argc, argv, NULL, NULL);
    check_options();
    const double t0 = clock_seconds();
    eval_state e = {0};
    e.K = (int)o_samples;
    if (bench_load(&e.b, o_bench, (uint64_t)o_shuffle_seed)) err_exit();
    if (o_limit > 0 && o_limit < e.b.n) {
        for (int i = (int)o_limit; i < e.b.n; i++) {
            free(e.b.items[i].id);
            free(e.b.items[i].question);
            free(e.b.items[i].prompt);
            free(e.b.items[i].gold);
        }
        e.b.n = (int)o_limit;
    }
    if (o_pass_k) free(pass_ks(e.K, &(int){0})); /* refuse a bad list before the work */
    if (o_dry_run) {
        print_questions(&e.b);
        bench_free(&e.b);
        return 0;
    }

    if (teacher_open(&e.m, o_model, backend_cpu())) err_exit();
    char *tok_path = NULL;
    if (o_tokenizer) {
        tok_path = xstrdup(o_tokenizer);
    } else if (path_is_dir(o_model)) {
        tok_path = xstrdup(o_model);
    } else {
        char *copy = xstrdup(o_model);
        tok_path = xstrdup(dirname(copy));
        free(copy);
    }
    if (tokenizer_load(&e.tok, tok_path)) {
        err_hint("eval needs the model's tokenizer.json: beside the model, or --tokenizer PATH");
        err_exit();
    }
    free(tok_path);

    const int64_t mpe = e.m->cfg.max_position_embeddings > 0 ? e.m->cfg.max_position_embeddings
                                                              : INT_MAX / 2;
    const int64_t cap_len = o_max_len > 0 ? o_max_len : mpe;
    const char *fmt_name;
    const int64_t longest = prepare_prompts(&e, cap_len, &fmt_name);
    collect_eos(&e);
    e.total = (int64_t)e.b.n * e.K;
    e.res = xcalloc((size_t)e.total, sizeof *e.res);

    engine_config ec = {
        .max_batch = (int)(o_batch < e.total ? o_batch : e.total),
        .max_len = (int)(longest + o_max_new < cap_len ? longest + o_max_new : cap_len),
        .max_new_tokens = (int)o_max_new,
        .prefill_chunk = (int)o_chunk,
        .sp = {o_temperature, o_top_p, (int)o_top_k},
        .seed = (uint64_t)o_seed,
        .eos = e.eos,
        .n_eos = e.n_eos,
        .token_bytes = token_bytes_cb,
        .token_ctx = e.tok,
    };
    if (engine_config_check(&ec, e.m)) err_exit();
    char *name = model_name();
    e.rc = (gen_record_context){.teacher_name = name, .config_hash = "", .sp = &ec.sp,
                                .max_new_tokens = (int)o_max_new, .seed = (uint64_t)o_seed,
                                .tok = e.tok};
    char *log_path = o_out ? path_join(o_out, "eval.log.jsonl") : NULL;
    if (o_out && dir_create(o_out)) err_exit();
    if (progress_open(&e.prog, "eval", "samples", e.total, 0, o_progress_interval, log_path))
        err_exit();
    free(log_path);
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %d questions (%s) x %d samples, %s format%s", e.b.name, e.b.n,
             bench_layout_name(e.b.layout), e.K, fmt_name, e.prefilled ? ", <think> prefilled" : "");
    progress_event(e.prog, "start", NULL, msg);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    engine_io io = {.next = ev_next, .done = ev_done, .tick = ev_tick, .ctx = &e};
    int rc = engine_run(e.m, &ec, &io, NULL);
    progress_field f[1] = {{"tokens", (double)e.generated, 1, 0}};
    progress_close(e.prog, e.done, f, 1);
    if (rc) err_exit();

    cJSON *summary = summarise(&e, clock_seconds() - t0, fmt_name);
    char *md = summary_markdown(summary);
    if (o_out) write_outputs(&e, summary, md);
    fputs(md, stdout);
    if (o_out) printf("results: %s/{samples.jsonl,summary.json,summary.md}\n", o_out);
    free(md);
    cJSON_Delete(summary);
    for (int64_t i = 0; i < e.total; i++) {
        free(e.res[i].text);
        free(e.res[i].extracted);
    }
    free(e.res);
    for (int q = 0; q < e.b.n; q++) free(e.ids[q]);
    free(e.ids);
    free(e.n_ids);
    free(e.eos);
    free(name);
    tokenizer_free(e.tok);
    teacher_close(e.m);
    bench_free(&e.b);
    return 0;
}
