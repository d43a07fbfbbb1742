/* r1-distill generate: prompts (JSONL) -> teacher -> trace shards, resumable and exactly-once.
 *
 * Order of work: read and check the prompts (all ranks read the whole file), open the teacher
 * and its tokenizer, turn this rank's prompts into token ids, work out the settings identity,
 * then take the output directory: lock this rank, refuse other settings, clear this rank's
 * stale temporary files, adopt complete shards a crash left out of the manifest, and collect
 * the (prompt, sample) pairs every manifest already holds. The engine runs only the rest;
 * finished samples stream into the open shard, which is committed (fsync, rename, manifest)
 * every --shard-records records or --shard-seconds seconds. A kill at any moment loses at most
 * the open shard's records, which the next run makes again. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/cli.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/progress.h"
#include "datasets/traces.h"
#include "teacher/generate.h"
#include "teacher/tensor_parallel.h"

static const char *o_teacher, *o_prompts, *o_out, *o_prompt_field, *o_id_field, *o_gold_field,
    *o_instruction, *o_chat_format, *o_tokenizer, *o_stop, *o_eos, *o_log, *o_device;
static int64_t o_samples, o_top_k, o_max_new, o_seed, o_batch, o_logprobs, o_max_len, o_chunk,
    o_shard_records, o_rank, o_world, o_tp;
static double o_temperature, o_top_p, o_shard_seconds, o_progress_interval;
static int o_skip_bad;

static const cli_opt gen_opts[] = {
    {"teacher", OPT_STRING, &o_teacher, NULL, CLI_REQUIRED, "DIR",
     "teacher model directory (config.json, safetensors, tokenizer.json)"},
    {"prompts", OPT_STRING, &o_prompts, NULL, CLI_REQUIRED, "FILE", "JSONL prompts, one per line"},
    {"device", OPT_STRING, &o_device, "auto", 0, "DEV",
     "cpu; cuda (bf16 GPU); cuda-fp32 (float32 GPU, the CPU's greedy tokens); cuda:N; auto (a "
     "GPU when one is usable)"},
    {"tp", OPT_INT, &o_tp, "1", 0, "N",
     "split a deepseek_v3 teacher over N GPUs of this host (tensor-parallel attention and MLPs, "
     "expert-parallel MoE); a rank of --rank/--world-size is then such an N-GPU group"},
    {"out", OPT_STRING, &o_out, NULL, CLI_REQUIRED, "DIR",
     "trace directory: shards and manifest (re-run the same command to resume)"},
    {"samples", OPT_INT, &o_samples, "1", 0, "N", "samples per prompt"},
    {"temperature", OPT_FLOAT, &o_temperature, "0.6", 0, "T", "sampling temperature; 0 is greedy"},
    {"top-p", OPT_FLOAT, &o_top_p, "0.95", 0, "P", "nucleus sampling mass; 1 turns it off"},
    {"top-k", OPT_INT, &o_top_k, "0", 0, "K", "keep the K most likely tokens; 0 turns it off"},
    {"max-new-tokens", OPT_INT, &o_max_new, "32768", 0, "N", "most tokens generated per sample"},
    {"seed", OPT_INT, &o_seed, "0", 0, "S",
     "seed; each (prompt id, sample) draws from its own stream of it"},
    {"batch", OPT_INT, &o_batch, "16", 0, "N", "sequences in flight at once"},
    {"prompt-field", OPT_STRING, &o_prompt_field, "prompt", 0, "NAME",
     "field holding the prompt: text, a messages array, or token ids"},
    {"id-field", OPT_STRING, &o_id_field, NULL, 0, "NAME", "field holding the prompt id; without it, the line number"},
    {"gold-field", OPT_STRING, &o_gold_field, NULL, 0, "NAME",
     "field holding the ground truth, copied into each record as \"gold\""},
    {"instruction", OPT_STRING, &o_instruction, NULL, 0, "TEXT",
     "appended to the (last) user message after a newline"},
    {"chat-format", OPT_STRING, &o_chat_format, "auto", 0, "FMT",
     "auto (from the tokenizer), r1, chatml, llama3, or none (raw text)"},
    {"tokenizer", OPT_STRING, &o_tokenizer, NULL, 0, "PATH",
     "tokenizer.json or its directory; without it, the teacher's"},
    {"stop", OPT_STRING, &o_stop, NULL, 0, "TEXT",
     "stop string, or a JSON array of them, e.g. '[\"</answer>\"]'"},
    {"eos", OPT_STRING, &o_eos, NULL, 0, "IDS",
     "extra end-of-sequence ids, comma-separated (config, generation_config and tokenizer eos "
     "always stop)"},
    {"logprobs", OPT_INT, &o_logprobs, "0", 0, "K",
     "store the teacher's top-K log-probabilities per token in <key>.topk"},
    {"max-len", OPT_INT, &o_max_len, "0", 0, "N",
     "cap on prompt + generated tokens; 0: the model's max_position_embeddings"},
    {"prefill-chunk", OPT_INT, &o_chunk, "512", 0, "N", "most prompt tokens per forward call"},
    {"shard-records", OPT_INT, &o_shard_records, "1000", 0, "N", "records per shard"},
    {"shard-seconds", OPT_FLOAT, &o_shard_seconds, "600", 0, "S",
     "commit the open shard after this long (bounds the work a crash can lose)"},
    {"rank", OPT_INT, &o_rank, "-1", 0, "R",
     "this process's rank; -1: OMPI_COMM_WORLD_RANK, SLURM_PROCID, or 0"},
    {"world-size", OPT_INT, &o_world, "-1", 0, "W",
     "number of ranks; -1: OMPI_COMM_WORLD_SIZE, SLURM_NTASKS, or 1"},
    {"skip-bad", OPT_FLAG, &o_skip_bad, NULL, 0, NULL,
     "skip bad prompt lines and count them instead of stopping"},
    {"log", OPT_STRING, &o_log, NULL, 0, "FILE",
     "JSONL progress log; without it, OUT/generate.log.jsonl (generate-rNNNNN.log.jsonl per rank)"},
    {"progress-interval", OPT_FLOAT, &o_progress_interval, "30", 0, "S",
     "seconds between progress lines when stderr is not a terminal"},
};

static const cli_spec gen_spec = {
    .command = "generate",
    .summary = "Sample reasoning traces from a teacher into crash-safe tar.zst shards.",
    .opts = gen_opts,
    .n_opts = sizeof gen_opts / sizeof *gen_opts,
    .details =
        "Prompts: one JSON object per line; the prompt field is a string (one user message),\n"
        "an array of {role, content} messages, or an array of token ids (used as they are).\n"
        "Text prompts are rendered with the chat format; for R1 the assistant turn is prefilled\n"
        "with \"<think>\\n\". Each (prompt, sample) is written once: re-running the same command\n"
        "after a crash or kill finishes the job; other settings into the same --out are refused.\n"
        "Ranks: prompt line L goes to rank (L-1) mod W; ranks may share --out.\n"
        "Devices: auto runs on GPU 0 in bf16 when one is usable, else on the CPU; the device\n"
        "kind is part of the settings, so a run resumes on the same kind. On a GPU the tokens\n"
        "are chosen there by the CPU's algorithm and random streams (README \"GPU inference\").",
};

/* ---- state ---------------------------------------------------------------------------------- */

typedef struct {
    prompt_set ps;
    int **ids;            /* [ps.n] prompt token ids */
    int *n_ids;
    int *left;            /* samples of each prompt not yet finished */
    int64_t *pending;        /* item * samples + sample, in order */
    int64_t n_pending, next;
    int samples;

    teacher_model *m;
    backend *be;
    tokenizer *tok;
    char teacher_name[256], config_hash[17];
    cJSON *settings;
    char **stops;
    int n_stops;
    int *eos;
    int n_eos;

    char *out, *man_path;
    int rank, world;
    trace_manifest man;
    trace_shard_writer *shard;
    char *shard_name;
    trace_pairs shard_pairs;
    double shard_t0;
    int next_index;
    int shards_new;

    gen_record_context rc;
    progress *prog;
    int64_t prompts_done, samples_done, samples_new, tokens, generated;
} gen_state;

static volatile sig_atomic_t got_signal;

static void on_signal(int sig) { got_signal = sig; }

/* ---- ranks ---------------------------------------------------------------------------------- */

static int env_int(const char *name, int64_t *v) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (*end || errno) die(R1_EINPUT, name, "expected an integer in the environment, got \"%s\"", s);
    *v = x;
    return 1;
}

static void resolve_ranks(int *rank, int *world) {
    int64_t r = o_rank, w = o_world;
    if (r < 0 && !env_int("OMPI_COMM_WORLD_RANK", &r) && !env_int("SLURM_PROCID", &r)) r = 0;
    if (w < 0 && !env_int("OMPI_COMM_WORLD_SIZE", &w) && !env_int("SLURM_NTASKS", &w)) w = 1;
    if (w < 1 || w > 100000) die(R1_EINPUT, "--world-size", "must be between 1 and 100000");
    if (r < 0 || r >= w)
        die(R1_EINPUT, "--rank", "rank %lld is outside 0..%lld", (long long)r, (long long)w - 1);
    *rank = (int)r;
    *world = (int)w;
}

/* ---- options -------------------------------------------------------------------------------- */

static void parse_stops(gen_state *g) {
    if (!o_stop) return;
    if (o_stop[0] != '[') {
        g->stops = xmalloc(sizeof(char *));
        g->stops[0] = xstrdup(o_stop);
        g->n_stops = 1;
        return;
    }
    cJSON *a;
    if (json_parse(&a, o_stop, strlen(o_stop), "--stop")) err_exit();
    const cJSON *it;
    if (!cJSON_IsArray(a)) die(R1_EINPUT, "--stop", "expected a JSON array of strings");
    g->stops = xmalloc(sizeof(char *) * (size_t)(cJSON_GetArraySize(a) + 1));
    cJSON_ArrayForEach(it, a) {
        if (!cJSON_IsString(it) || !it->valuestring[0])
            die(R1_EINPUT, "--stop", "expected a JSON array of non-empty strings");
        g->stops[g->n_stops++] = xstrdup(it->valuestring);
    }
    cJSON_Delete(a);
}

static void add_eos(gen_state *g, int id) {
    if (id < 0) return;
    for (int i = 0; i < g->n_eos; i++)
        if (g->eos[i] == id) return;
    g->eos = xrealloc(g->eos, sizeof(int) * (size_t)(g->n_eos + 1));
    int i = g->n_eos++;
    while (i > 0 && g->eos[i - 1] > id) { /* kept sorted: the settings list is canonical */
        g->eos[i] = g->eos[i - 1];
        i--;
    }
    g->eos[i] = id;
}

/* eos ids from config.json, generation_config.json, the tokenizer and --eos. */
static void collect_eos(gen_state *g) {
    for (int i = 0; i < g->m->cfg.n_eos; i++) add_eos(g, g->m->cfg.eos_ids[i]);
    char *gc = path_join(o_teacher, "generation_config.json");
    if (path_exists(gc)) {
        cJSON *root;
        if (json_parse_file(&root, gc, 1 << 20)) err_exit();
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
        if (json_is_int(e)) add_eos(g, (int)e->valuedouble);
        const cJSON *it;
        if (cJSON_IsArray(e)) cJSON_ArrayForEach(it, e) if (json_is_int(it)) add_eos(g, (int)it->valuedouble);
        cJSON_Delete(root);
    }
    free(gc);
    if (g->tok) add_eos(g, tokenizer_eos_id(g->tok));
    if (o_eos) {
        int n, *ids = cli_parse_int_list("--eos", o_eos, &n);
        for (int i = 0; i < n; i++) add_eos(g, ids[i]);
        free(ids);
    }
}

/* ---- prompts to token ids ------------------------------------------------------------------- */

static int render_prompt(gen_state *g, chat_format fmt, int use_template, const prompt_item *p,
                         int **ids, int *n) {
    if (p->kind == PROMPT_TOKENS) {
        *ids = xmalloc(sizeof(int) * (size_t)p->n_tokens);
        memcpy(*ids, p->tokens, sizeof(int) * (size_t)p->n_tokens);
        *n = p->n_tokens;
        return R1_OK;
    }
    char *text = NULL;
    int rc;
    if (!use_template) {
        if (p->kind != PROMPT_TEXT)
            return err_fail(R1_EINPUT, "--chat-format none", "a messages prompt needs a template");
        text = o_instruction ? xasprintf("%s\n%s", p->value->valuestring, o_instruction)
                             : xstrdup(p->value->valuestring);
        rc = tokenizer_encode(g->tok, text, strlen(text), 1, ids, n);
        free(text);
        return rc;
    }
    int nm = p->kind == PROMPT_TEXT ? 1 : cJSON_GetArraySize(p->value), last_user = -1;
    chat_message *msgs = xcalloc((size_t)nm, sizeof *msgs);
    char *appended = NULL;
    if (p->kind == PROMPT_TEXT) {
        msgs[0] = (chat_message){"user", p->value->valuestring};
        last_user = 0;
    } else {
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, p->value) {
            msgs[i].role = cJSON_GetObjectItemCaseSensitive(it, "role")->valuestring;
            msgs[i].content = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
            if (strcmp(msgs[i].role, "user") == 0) last_user = i;
            i++;
        }
    }
    if (o_instruction && last_user >= 0) {
        appended = xasprintf("%s\n%s", msgs[last_user].content, o_instruction);
        msgs[last_user].content = appended;
    }
    rc = chat_render(g->tok, fmt, msgs, nm, 1, &text);
    if (!rc) rc = tokenizer_encode(g->tok, text, strlen(text), 0, ids, n);
    free(text);
    free(appended);
    free(msgs);
    return rc;
}

/* Renders and encodes this rank's prompts; a prompt that cannot run (too long, ids outside the
 * vocabulary, text the tokenizer refuses) is bad: fatal, or skipped with --skip-bad. */
static int64_t prepare_prompts(gen_state *g, chat_format fmt, int use_template, int64_t cap_len) {
    int64_t skipped = 0, longest = 0;
    g->ids = xcalloc((size_t)(g->ps.n ? g->ps.n : 1), sizeof *g->ids);
    g->n_ids = xcalloc((size_t)(g->ps.n ? g->ps.n : 1), sizeof *g->n_ids);
    const int64_t V = g->m->cfg.vocab_size;
    for (int i = 0; i < g->ps.n; i++) {
        const prompt_item *p = &g->ps.items[i];
        char where[600];
        snprintf(where, sizeof where, "%s:%lld", o_prompts, (long long)p->line);
        int *ids = NULL, n = 0;
        int rc = render_prompt(g, fmt, use_template, p, &ids, &n);
        if (rc) {
            err_context(where);
        } else if (n < 1) {
            rc = err_fail(R1_EINPUT, where, "the prompt encodes to no tokens");
        } else if (n >= cap_len) {
            rc = err_fail(R1_EINPUT, where, "the prompt is %d tokens; the cap is %lld (--max-len "
                          "or max_position_embeddings) and leaves no room to generate", n,
                          (long long)cap_len);
        } else {
            for (int j = 0; j < n && !rc; j++)
                if (ids[j] >= V)
                    rc = err_fail(R1_EINPUT, where, "token id %d is outside the teacher's "
                                  "vocabulary (%lld)", ids[j], (long long)V);
        }
        if (rc) {
            free(ids);
            if (!o_skip_bad) {
                err_hint("fix the prompt, or pass --skip-bad to skip bad prompts and count them");
                err_exit();
            }
            fprintf(stderr, "r1-distill generate: skipping %s: %s\n", err_what(), err_why());
            skipped++;
            g->n_ids[i] = -1;
            continue;
        }
        g->ids[i] = ids;
        g->n_ids[i] = n;
        if (n > longest) longest = n;
    }
    return skipped;
}

/* ---- settings ------------------------------------------------------------------------------- */

static cJSON *str_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

static void build_settings(gen_state *g, const char *tok_hash, const char *fmt_name,
                           int64_t cap_len) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "samples", g->samples);
    cJSON *t = cJSON_AddObjectToObject(s, "teacher");
    cJSON_AddStringToObject(t, "model_type", g->m->cfg.model_type);
    cJSON_AddStringToObject(t, "config_hash", g->config_hash);
    cJSON_AddItemToObject(t, "tokenizer_hash", str_or_null(tok_hash));
    cJSON *p = cJSON_AddObjectToObject(s, "prompts");
    char h[17];
    hash_hex64(h, g->ps.hash);
    cJSON_AddStringToObject(p, "file_hash", h);
    cJSON_AddNumberToObject(p, "bytes", (double)g->ps.bytes);
    cJSON_AddStringToObject(p, "prompt_field", o_prompt_field);
    cJSON_AddItemToObject(p, "id_field", str_or_null(o_id_field));
    cJSON_AddItemToObject(p, "gold_field", str_or_null(o_gold_field));
    cJSON_AddItemToObject(p, "instruction", str_or_null(o_instruction));
    cJSON_AddStringToObject(p, "chat_format", fmt_name);
    cJSON *sp = cJSON_AddObjectToObject(s, "sampling");
    cJSON_AddNumberToObject(sp, "temperature", o_temperature);
    cJSON_AddNumberToObject(sp, "top_p", o_top_p);
    cJSON_AddNumberToObject(sp, "top_k", (double)o_top_k);
    cJSON_AddNumberToObject(sp, "seed", (double)o_seed);
    cJSON_AddNumberToObject(sp, "max_new_tokens", (double)o_max_new);
    cJSON_AddNumberToObject(sp, "max_len", (double)cap_len);
    cJSON *stops = cJSON_AddArrayToObject(sp, "stop");
    for (int i = 0; i < g->n_stops; i++) cJSON_AddItemToArray(stops, cJSON_CreateString(g->stops[i]));
    cJSON *eos = cJSON_AddArrayToObject(sp, "eos_ids");
    for (int i = 0; i < g->n_eos; i++) cJSON_AddItemToArray(eos, cJSON_CreateNumber(g->eos[i]));
    cJSON_AddNumberToObject(s, "logprobs", (double)o_logprobs);
    /* The numerics: bf16 GPU runs give other samples than float32 ones. */
    cJSON_AddStringToObject(s, "device", g->be->name);
    g->settings = s;
}

/* ---- the output directory ------------------------------------------------------------------- */

/* "shard-000012.tar.zst" (world 1) or "shard-r00003-000012.tar.zst": this rank's shard index,
 * or -1. tmp: also accept "<name>.tmp.<digits>". */
static int own_shard_index(const gen_state *g, const char *name, int tmp) {
    char prefix[32];
    if (g->world == 1) snprintf(prefix, sizeof prefix, "shard-");
    else snprintf(prefix, sizeof prefix, "shard-r%05d-", g->rank);
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0) return -1;
    const char *p = name + pl;
    int idx = 0, digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 9) idx = idx * 10 + (*p++ - '0'), digits++;
    if (digits != 6 || strncmp(p, ".tar.zst", 8) != 0) return -1;
    p += 8;
    if (!tmp) return *p ? -1 : idx;
    if (strncmp(p, ".tmp.", 5) != 0 || !p[5]) return -1;
    for (p += 5; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    return idx;
}

static int own_manifest_tmp(const gen_state *g, const char *name) {
    char *m = trace_manifest_name(g->rank, g->world);
    size_t n = strlen(m);
    int ok = strncmp(name, m, n) == 0 && strncmp(name + n, ".tmp.", 5) == 0;
    free(m);
    return ok;
}

static int listed(const trace_dir *d, const char *name) {
    for (int i = 0; i < d->n; i++)
        for (int s = 0; s < d->m[i].n_shards; s++)
            if (strcmp(d->m[i].shards[s].name, name) == 0) return 1;
    return 0;
}

/* Reads a complete shard no manifest lists (a crash fell between its rename and the manifest
 * update) and adds it to this rank's manifest. */
static int adopt_shard(gen_state *g, const char *name, trace_pairs *done) {
    char *path = path_join(g->out, name);
    trace_shard_reader *r;
    int rc = trace_shard_open(&r, path);
    trace_pairs pairs = {0};
    int64_t n = 0;
    if (!rc) {
        trace_record rec = {0};
        int have;
        while ((rc = trace_shard_next(r, &rec, &have)) == R1_OK && have) {
            int64_t pair = (rec.line - 1) * g->samples + rec.sample;
            if (rec.sample >= g->samples || trace_pairs_contains(&pairs, pair) ||
                trace_pairs_contains(done, pair)) {
                rc = err_fail(R1_EINPUT, path, "record %s is already done elsewhere", rec.key);
                break;
            }
            trace_pairs_add(&pairs, pair, pair + 1);
            n++;
        }
        trace_record_clear(&rec);
        trace_shard_close(r);
    }
    if (rc) {
        /* Unreadable although renamed only when complete: set it aside and redo its work. */
        char *aside = xasprintf("%s.damaged", path);
        fprintf(stderr, "r1-distill generate: %s: %s; renamed to %s, its samples will be made "
                "again\n", err_what(), err_why(), aside);
        rename(path, aside);
        free(aside);
    } else {
        FILE *f = fopen(path, "rb");
        uint64_t bytes = 0;
        if (f) {
            fseek(f, 0, SEEK_END);
            bytes = (uint64_t)ftell(f);
            fclose(f);
        }
        trace_manifest_add_shard(&g->man, name, n, bytes, &pairs);
        trace_pairs_add_set(done, &pairs);
        fprintf(stderr, "r1-distill generate: adopted %s (%lld records) left out of the manifest "
                "by an interrupted run\n", name, (long long)n);
    }
    trace_pairs_free(&pairs);
    free(path);
    return R1_OK;
}

/* Takes the output directory: lock, settings check, cleanup, adoption. Returns the pairs done. */
static void open_output(gen_state *g, trace_pairs *done) {
    if (dir_create(g->out)) err_exit();
    char *lock_name = g->world == 1 ? xstrdup(".generate.lock")
                                    : xasprintf(".generate-r%05d.lock", g->rank);
    char *lock_path = path_join(g->out, lock_name);
    int fd = open(lock_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        err_fail(errno == EACCES || errno == EROFS ? R1_EINPUT : R1_ERUNTIME, g->out,
                 "cannot write here: %s", strerror(errno));
        err_hint("--out must be a writable directory");
        err_exit();
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        die(R1_ERUNTIME, g->out, "another `generate` is writing rank %d here", g->rank);
    /* fd stays open (and locked) until the process exits. */
    free(lock_name);
    free(lock_path);

    trace_dir d;
    if (trace_dir_open(&d, g->out)) {
        err_hint("the directory's manifests are inconsistent; fix or move them, or use another "
                 "--out");
        err_exit();
    }
    char *own = trace_manifest_name(g->rank, g->world);
    g->man_path = path_join(g->out, own);
    int own_i = -1;
    for (int i = 0; i < d.n; i++) {
        char *diff;
        if (trace_settings_diff(g->settings, d.m[i].settings, &diff)) {
            char *path = path_join(g->out, d.names[i]);
            err_fail(R1_EINPUT, path, "was made with other settings: %s", diff);
            err_hint("re-run with the settings it was made with, or write to another --out");
            free(path); /* the error record holds copies */
            free(diff);
            err_exit();
        }
        if (strcmp(d.names[i], own) == 0) own_i = i;
    }
    free(own);
    memset(&g->man, 0, sizeof g->man);
    if (own_i >= 0) {
        g->man = d.m[own_i];
        d.m[own_i] = (trace_manifest){0};
        cJSON_Delete(g->man.settings);
    }
    g->man.rank = g->rank;
    g->man.world_size = g->world;
    g->man.settings = cJSON_Duplicate(g->settings, 1);
    trace_dir_pairs(&d, done); /* own manifest moved out of d: its pairs are added next */
    for (int i = 0; i < g->man.n_shards; i++) trace_pairs_add_set(done, &g->man.shards[i].pairs);

    /* This rank's stale temporary files go; its unlisted complete shards are adopted. */
    DIR *dh = opendir(g->out);
    if (!dh) die(R1_ERUNTIME, g->out, "cannot list: %s", strerror(errno));
    struct dirent *de;
    char **adopt = NULL;
    int n_adopt = 0;
    g->next_index = 0;
    while ((de = readdir(dh)) != NULL) {
        const char *name = de->d_name;
        int idx;
        if ((idx = own_shard_index(g, name, 1)) >= 0 || own_manifest_tmp(g, name)) {
            char *p = path_join(g->out, name);
            unlink(p);
            free(p);
            continue;
        }
        if ((idx = own_shard_index(g, name, 0)) < 0) continue;
        if (idx + 1 > g->next_index) g->next_index = idx + 1;
        int in_own = 0;
        for (int s = 0; s < g->man.n_shards && !in_own; s++)
            in_own = strcmp(g->man.shards[s].name, name) == 0;
        if (!in_own && !listed(&d, name)) {
            adopt = xrealloc(adopt, sizeof(char *) * (size_t)(n_adopt + 1));
            adopt[n_adopt++] = xstrdup(name);
        }
    }
    closedir(dh);
    for (int i = 0; i < n_adopt; i++) {
        adopt_shard(g, adopt[i], done);
        free(adopt[i]);
    }
    free(adopt);
    if (n_adopt && trace_manifest_write(&g->man, g->man_path)) err_exit();
    trace_dir_close(&d);
}

/* ---- shards --------------------------------------------------------------------------------- */

static int commit_shard(gen_state *g) {
    if (!g->shard) return R1_OK;
    if (trace_shard_records(g->shard) == 0) {
        trace_shard_discard(g->shard);
        g->shard = NULL;
        return R1_OK;
    }
    uint64_t bytes = 0;
    int64_t records = trace_shard_records(g->shard);
    int rc = trace_shard_commit(g->shard, &bytes);
    g->shard = NULL;
    if (rc) {
        trace_pairs_free(&g->shard_pairs);
        return rc;
    }
    g->shards_new++;
    /* Test hook for the one window random kills rarely hit: die right after the N-th shard of
     * this run is in place, before the manifest lists it (the next run adopts it). */
    const char *hook = getenv("R1_TEST_KILL_AFTER_SHARD");
    if (hook && atoi(hook) == g->shards_new) raise(SIGKILL);
    trace_manifest_add_shard(&g->man, g->shard_name, records, bytes, &g->shard_pairs);
    trace_pairs_free(&g->shard_pairs);
    TRY(trace_manifest_write(&g->man, g->man_path));
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "shard", g->shard_name);
    cJSON_AddNumberToObject(ev, "records", (double)records);
    cJSON_AddNumberToObject(ev, "bytes", (double)bytes);
    progress_event(g->prog, "shard", ev, NULL);
    cJSON_Delete(ev);
    return R1_OK;
}

static int write_record(gen_state *g, const char *key, const char *json, size_t len,
                        const void *topk, size_t topk_len, int64_t pair) {
    if (!g->shard) {
        free(g->shard_name);
        g->shard_name = trace_shard_name(g->rank, g->world, g->next_index++);
        char *path = path_join(g->out, g->shard_name);
        int rc = trace_shard_create(&g->shard, path);
        free(path);
        TRY(rc);
        g->shard_t0 = clock_seconds();
        memset(&g->shard_pairs, 0, sizeof g->shard_pairs);
    }
    int rc = trace_shard_add(g->shard, key, json, len, topk, topk_len);
    if (rc) { /* the partial shard goes; committed shards stay */
        trace_shard_discard(g->shard);
        g->shard = NULL;
        trace_pairs_free(&g->shard_pairs);
        return rc;
    }
    trace_pairs_add(&g->shard_pairs, pair, pair + 1);
    if (trace_shard_records(g->shard) >= o_shard_records) TRY(commit_shard(g));
    return R1_OK;
}

/* ---- engine callbacks ----------------------------------------------------------------------- */

static int gen_next(void *ctx, engine_request *req) {
    gen_state *g = ctx;
    if (g->next >= g->n_pending) return 0;
    int64_t t = g->pending[g->next++];
    int item = (int)(t / g->samples), s = (int)(t % g->samples);
    const prompt_item *p = &g->ps.items[item];
    *req = (engine_request){.prompt = g->ids[item], .n_prompt = g->n_ids[item],
                            .stream = sampler_stream(p->id, strlen(p->id)), .sample = s,
                            .user = (void *)(intptr_t)item};
    return 1;
}

/* samples: finished (all runs); tokens: generated in this run, shown as tokens per second. */
static void fields_now(const gen_state *g, progress_field f[2]) {
    f[0] = (progress_field){"samples", (double)g->samples_done, 0, 0};
    f[1] = (progress_field){"tokens", (double)g->generated, 1, 1};
}

static int gen_done(void *ctx, const engine_result *res) {
    gen_state *g = ctx;
    int item = (int)(intptr_t)res->req->user;
    const prompt_item *p = &g->ps.items[item];
    char key[64];
    trace_key(key, sizeof key, p->line, res->req->sample);
    cJSON *rec = gen_record_build(&g->rc, p, g->ids[item], g->n_ids[item], res, key);
    char *json = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    CHECK(json);
    uint8_t *topk = NULL;
    size_t topk_len = 0;
    if (res->k)
        topk = trace_topk_encode(res->topk_ids, res->topk_lp, res->chosen_lp, res->n_tokens, res->k,
                                 &topk_len);
    int rc = write_record(g, key, json, strlen(json), topk, topk_len,
                          (p->line - 1) * g->samples + res->req->sample);
    cJSON_free(json);
    free(topk);
    if (rc) return rc;
    g->samples_done++;
    g->samples_new++;
    g->tokens += res->n_tokens;
    if (--g->left[item] == 0) g->prompts_done++;
    return R1_OK;
}

static int gen_tick(void *ctx, const engine_stats *st) {
    gen_state *g = ctx;
    if (got_signal)
        return err_fail(R1_ERUNTIME, "generate", "interrupted by %s",
                        got_signal == SIGINT ? "SIGINT" : got_signal == SIGTERM ? "SIGTERM" : "a signal");
    if (g->shard && clock_seconds() - g->shard_t0 >= o_shard_seconds) TRY(commit_shard(g));
    g->generated = st->generated;
    progress_field f[2];
    fields_now(g, f);
    progress_update(g->prog, g->prompts_done, f, 2, 0);
    return R1_OK;
}

/* ---- the command ---------------------------------------------------------------------------- */

static void gen_state_free(gen_state *g) {
    for (int i = 0; i < g->ps.n; i++) free(g->ids[i]);
    free(g->ids);
    free(g->n_ids);
    free(g->left);
    free(g->pending);
    prompts_free(&g->ps);
    teacher_close(g->m);
    if (g->be) g->be->destroy(g->be);
    tokenizer_free(g->tok);
    cJSON_Delete(g->settings);
    for (int i = 0; i < g->n_stops; i++) free(g->stops[i]);
    free(g->stops);
    free(g->eos);
    free(g->out);
    free(g->man_path);
    trace_manifest_free(&g->man);
    free(g->shard_name);
    trace_pairs_free(&g->shard_pairs);
}

static const char *token_bytes_cb(void *ctx, int id, size_t *len) {
    return tokenizer_token_bytes(ctx, id, len);
}

static void check_options(void) {
    if (o_samples < 1 || o_samples > 100000)
        die(R1_EINPUT, "--samples", "must be between 1 and 100000");
    if (o_max_new < 1 || o_max_new > 10000000)
        die(R1_EINPUT, "--max-new-tokens", "must be between 1 and 10000000");
    if (o_seed < 0 || o_seed > (1ll << 53))
        die(R1_EINPUT, "--seed", "must be between 0 and 2^53");
    if (o_batch < 1 || o_batch > 100000) die(R1_EINPUT, "--batch", "must be between 1 and 100000");
    if (o_chunk < 1 || o_chunk > 10000000)
        die(R1_EINPUT, "--prefill-chunk", "must be between 1 and 10000000");
    if (o_max_len < 0 || o_max_len > INT_MAX / 2)
        die(R1_EINPUT, "--max-len", "must be between 0 (the model's limit) and %d", INT_MAX / 2);
    if (o_shard_records < 1) die(R1_EINPUT, "--shard-records", "must be at least 1");
    if (!(o_shard_seconds > 0)) die(R1_EINPUT, "--shard-seconds", "must be positive");
    if (o_logprobs < 0 || o_logprobs > 1000000)
        die(R1_EINPUT, "--logprobs", "must be between 0 and the vocabulary size");
    if (o_top_k < 0 || o_top_k > INT_MAX) die(R1_EINPUT, "--top-k", "must be >= 0");
    sampler_params sp = {o_temperature, o_top_p, (int)o_top_k};
    if (sampler_params_check(&sp)) err_exit();
}

static void teacher_identity(gen_state *g) {
    char *cfg = path_join(o_teacher, "config.json");
    uint64_t h, bytes;
    if (hash_file(cfg, &h, &bytes)) err_exit();
    hash_hex64(g->config_hash, h);
    free(cfg);
    char *copy = xstrdup(o_teacher), *real = realpath(o_teacher, NULL);
    size_t n = strlen(copy);
    while (n > 1 && copy[n - 1] == '/') copy[--n] = 0;
    snprintf(g->teacher_name, sizeof g->teacher_name, "%s", basename(real ? real : copy));
    free(real);
    free(copy);
}

int cmd_generate(int argc, char **argv) {
    cli_parse(&gen_spec, argc, argv, NULL, NULL);
    check_options();
    /* A file size limit (ulimit -f) must surface as a write error (EFBIG), not a signal. */
    signal(SIGXFSZ, SIG_IGN);
    gen_state g = {0};
    g.samples = (int)o_samples;
    g.out = xstrdup(o_out);
    resolve_ranks(&g.rank, &g.world);
    parse_stops(&g);

    prompt_options po = {.prompt_field = o_prompt_field, .id_field = o_id_field,
                         .gold_field = o_gold_field, .skip_bad = o_skip_bad, .rank = g.rank,
                         .world_size = g.world};
    if (prompts_load(&g.ps, o_prompts, &po)) err_exit();
    if (g.ps.bad)
        fprintf(stderr, "r1-distill generate: skipped %lld bad line%s of %s (--skip-bad)\n",
                (long long)g.ps.bad, g.ps.bad == 1 ? "" : "s", o_prompts);

    if (teacher_open_device(&g.m, &g.be, o_teacher, o_device, (int)o_tp)) err_exit();
    teacher_identity(&g);
    int needs_text = g.n_stops > 0;
    for (int i = 0; i < g.ps.n && !needs_text; i++) needs_text = g.ps.items[i].kind != PROMPT_TOKENS;
    const char *tok_path = o_tokenizer ? o_tokenizer : o_teacher;
    char *tok_json = path_is_dir(tok_path) ? path_join(tok_path, "tokenizer.json") : xstrdup(tok_path);
    char tok_hash[17] = "";
    if (o_tokenizer || needs_text || path_exists(tok_json)) {
        if (tokenizer_load(&g.tok, tok_path)) {
            if (needs_text) err_hint("text prompts and stop strings need the teacher's tokenizer");
            err_exit();
        }
        uint64_t h, bytes;
        if (hash_file(tokenizer_path(g.tok), &h, &bytes)) err_exit();
        hash_hex64(tok_hash, h);
    }
    free(tok_json);

    chat_format fmt = CHAT_AUTO;
    int use_template = 1;
    const char *fmt_name = "none";
    if (strcmp(o_chat_format, "none") == 0) {
        use_template = 0;
    } else if (chat_format_parse(o_chat_format, &fmt) != 0) {
        die(R1_EINPUT, "--chat-format", "unknown format \"%s\" (auto, r1, chatml, llama3, none)",
            o_chat_format);
    }
    if (use_template && g.tok) {
        if (fmt == CHAT_AUTO && chat_detect(g.tok, &fmt)) err_exit();
        fmt_name = chat_format_name(fmt);
    }
    if (o_instruction && !g.tok) die(R1_EINPUT, "--instruction", "needs text prompts");

    const int64_t mpe = g.m->cfg.max_position_embeddings > 0 ? g.m->cfg.max_position_embeddings
                                                              : INT_MAX / 2;
    const int64_t cap_len = o_max_len > 0 ? o_max_len : mpe;
    const int64_t skipped_prompts = prepare_prompts(&g, fmt, use_template, cap_len);
    collect_eos(&g);
    build_settings(&g, tok_hash[0] ? tok_hash : NULL, fmt_name, cap_len);

    trace_pairs done = {0};
    open_output(&g, &done);
    g.man.pairs_total = g.ps.valid * g.samples;
    g.man.pairs_skipped = skipped_prompts * g.samples;

    /* The work left: this rank's (prompt, sample) pairs no shard holds. */
    g.left = xcalloc((size_t)(g.ps.n ? g.ps.n : 1), sizeof *g.left);
    g.pending = xmalloc(sizeof(int64_t) * (size_t)(g.ps.n ? g.ps.n : 1) * (size_t)g.samples);
    int64_t prompts_live = 0, longest = 0;
    for (int i = 0; i < g.ps.n; i++) {
        if (g.n_ids[i] < 0) continue;
        prompts_live++;
        for (int s = 0; s < g.samples; s++) {
            if (trace_pairs_contains(&done, (g.ps.items[i].line - 1) * g.samples + s)) {
                g.samples_done++;
                continue;
            }
            g.pending[g.n_pending++] = (int64_t)i * g.samples + s;
            g.left[i]++;
            if (g.n_ids[i] > longest) longest = g.n_ids[i];
        }
        if (g.left[i] == 0) g.prompts_done++;
    }
    trace_pairs_free(&done);

    char *log_name = g.world == 1 ? xstrdup("generate.log.jsonl")
                                  : xasprintf("generate-r%05d.log.jsonl", g.rank);
    char *log_path = o_log ? xstrdup(o_log) : path_join(g.out, log_name);
    free(log_name);
    if (progress_open(&g.prog, "generate", "prompts", prompts_live, g.prompts_done,
                      o_progress_interval, log_path))
        err_exit();
    free(log_path);

    engine_config ec = {
        .max_batch = (int)o_batch,
        .max_len = (int)(longest + o_max_new < cap_len ? longest + o_max_new : cap_len),
        .max_new_tokens = (int)o_max_new,
        .prefill_chunk = (int)o_chunk,
        .sp = {o_temperature, o_top_p, (int)o_top_k},
        .seed = (uint64_t)o_seed,
        .eos = g.eos,
        .n_eos = g.n_eos,
        .stop = (const char *const *)g.stops,
        .n_stop = g.n_stops,
        .token_bytes = g.tok ? token_bytes_cb : NULL,
        .token_ctx = g.tok,
        .logprobs = (int)o_logprobs,
    };
    if (ec.max_batch > g.n_pending && g.n_pending > 0) ec.max_batch = (int)g.n_pending;
    if (engine_config_check(&ec, g.m)) err_exit();
    g.rc = (gen_record_context){.teacher_name = g.teacher_name, .config_hash = g.config_hash,
                                .sp = &ec.sp, .max_new_tokens = (int)o_max_new,
                                .seed = (uint64_t)o_seed, .tok = g.tok,
                                .stop = (const char *const *)g.stops};

    char hash[17];
    trace_settings_hash(g.settings, hash);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "rank", g.rank);
    cJSON_AddNumberToObject(ev, "world_size", g.world);
    cJSON_AddStringToObject(ev, "settings_hash", hash);
    cJSON_AddNumberToObject(ev, "prompts", (double)prompts_live);
    cJSON_AddNumberToObject(ev, "samples_done", (double)g.samples_done);
    /* the samples left to make; the field keeps its name so that logs stay comparable */
    cJSON_AddNumberToObject(ev, "samples_todo", (double)g.n_pending);
    cJSON_AddNumberToObject(ev, "skipped_prompts", (double)(g.ps.bad + skipped_prompts));
    char msg[512];
    snprintf(msg, sizeof msg, "rank %d/%d: %lld prompts, %lld samples done, %lld to make; cache "
             "%d x %d positions (%.2f GiB)", g.rank, g.world, (long long)prompts_live,
             (long long)g.samples_done, (long long)g.n_pending, ec.max_batch, ec.max_len,
             (double)g.m->cache_bytes_per_token(g.m) * ec.max_batch * ec.max_len / (1 << 30));
    progress_event(g.prog, "start", ev, msg);
    cJSON_Delete(ev);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int rc = R1_OK;
    if (g.n_pending > 0) {
        engine_io io = {.next = gen_next, .done = gen_done, .tick = gen_tick, .ctx = &g};
        rc = engine_run(g.m, &ec, &io, NULL);
    }
    /* Keep what is complete, whatever stopped the run (a write error already dropped the open
     * shard). */
    int saved = rc;
    char what[1024], why[1024], hint[1024];
    snprintf(what, sizeof what, "%s", err_what());
    snprintf(why, sizeof why, "%s", err_why());
    snprintf(hint, sizeof hint, "%s", err_hint_text());
    int crc = commit_shard(&g);
    if (!rc) rc = crc;
    g.man.complete = rc == R1_OK;
    if (!crc && trace_manifest_write(&g.man, g.man_path) && !rc) rc = err_status();
    progress_field f[2];
    fields_now(&g, f);
    progress_close(g.prog, g.prompts_done, f, 2);
    if (saved) {
        err_fail(saved, what, "%s", why);
        if (hint[0]) err_hint("%s", hint);
        else if (got_signal)
            err_hint("%lld samples are kept in %s; re-run the same command to finish",
                     (long long)g.samples_done, g.out);
    }
    if (rc) err_exit();
    fprintf(stderr, "r1-distill generate: rank %d/%d complete: %lld samples (%lld new, %lld "
            "tokens) in %s\n", g.rank, g.world, (long long)g.samples_done, (long long)g.samples_new,
            (long long)g.tokens, g.out);
    gen_state_free(&g);
    return 0;
}
