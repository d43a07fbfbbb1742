/* r1-distill pack: SFT examples (JSONL conversations or pre-tokenized records) -> token shards
 * for a student's tokenizer. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "datasets/sft.h"

static const char *o_out, *o_tokenizer, *o_format;
static int64_t o_vocab, o_max_len, o_shard_tokens;
static int o_truncate;

static const cli_opt pack_opts[] = {
    {"out", OPT_STRING, &o_out, NULL, CLI_REQUIRED, "DIR",
     "output directory for shard-NNNNNN.tokens and pack.json (must hold no shards yet)"},
    {"tokenizer", OPT_STRING, &o_tokenizer, NULL, 0, "DIR",
     "the student's tokenizer: its model directory or tokenizer.json (needed for conversations)"},
    {"vocab-size", OPT_INT, &o_vocab, "0", 0, "N",
     "vocabulary size for pre-tokenized input without --tokenizer (0: from --tokenizer)"},
    {"chat-format", OPT_STRING, &o_format, "auto", 0, "FMT",
     "conversation format: auto (from the tokenizer's chat template), r1, chatml, llama3"},
    {"max-len", OPT_INT, &o_max_len, "32768", 0, "N",
     "examples longer than N tokens are dropped and counted (0: no limit)"},
    {"truncate", OPT_FLAG, &o_truncate, NULL, 0, NULL,
     "cut examples longer than --max-len instead of dropping them"},
    {"shard-tokens", OPT_INT, &o_shard_tokens, "100000000", 0, "N",
     "start a new shard once one holds N tokens"},
};

static const cli_spec pack_spec = {
    .command = "pack",
    .summary = "Tokenize SFT examples into token shards for `train`.",
    .positional = "INPUT...",
    .opts = pack_opts,
    .n_opts = sizeof pack_opts / sizeof *pack_opts,
    .details =
        "Each JSONL line is {\"messages\": [{\"role\": ..., \"content\": ...}, ...]} (the last\n"
        "message is the assistant turn to learn; \"reasoning_content\" may hold its reasoning)\n"
        "or {\"input_ids\": [...], \"loss_mask\": [...]} (used as is). The loss covers the\n"
        "assistant's reasoning, answer and end-of-turn token, never the prompt. Examples are\n"
        "stored whole; `train` lays them into rows of --seq-len (packed or not).",
};

typedef struct {
    const char *out;
    int shards;
} pack_writer;

static int write_shard(token_builder *b, void *ctx) {
    pack_writer *w = ctx;
    if (b->n_docs == 0) return R1_OK;
    char name[40];
    snprintf(name, sizeof name, "shard-%06d.tokens", w->shards);
    char *path = path_join(w->out, name);
    int rc = token_builder_write(b, path);
    free(path);
    if (rc) return rc;
    w->shards++;
    token_builder_reset(b);
    return R1_OK;
}

static int has_shards(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        found = n > 7 && strcmp(e->d_name + n - 7, ".tokens") == 0;
    }
    closedir(d);
    return found;
}

int cmd_pack(int argc, char **argv) {
    int n_in;
    char **inputs;
    cli_parse(&pack_spec, argc, argv, &n_in, &inputs);
    if (n_in == 0) die(R1_EINPUT, "pack", "no input files given");
    if (o_max_len < 0 || o_shard_tokens < 1)
        die(R1_EINPUT, "options", "--max-len must be >= 0 and --shard-tokens >= 1");
    sft_options so = {.format = CHAT_AUTO, .max_len = o_max_len, .truncate = o_truncate,
                      .flush = write_shard, .flush_tokens = o_shard_tokens};
    if (chat_format_parse(o_format, &so.format) != 0)
        die(R1_EINPUT, "--chat-format", "unknown format \"%s\" (auto, r1, chatml, llama3)",
            o_format);
    uint64_t tok_id = 0;
    int64_t vocab = o_vocab;
    if (o_tokenizer) {
        int64_t tv;
        if (token_tokenizer_info(o_tokenizer, &tok_id, &tv)) err_exit();
        so.tokenizer_dir = o_tokenizer;
        if (vocab == 0) vocab = tv;
    }
    if (vocab <= 0 || vocab > (1 << 30))
        die(R1_EINPUT, "--vocab-size", "give --tokenizer DIR, or --vocab-size N in [1, 2^30]");
    for (int i = 0; i < n_in; i++)
        if (!path_exists(inputs[i])) die(R1_EINPUT, inputs[i], "no such input file");
    if (dir_create(o_out)) err_exit();
    if (has_shards(o_out)) {
        err_fail(R1_EINPUT, o_out, "already holds token shards");
        err_hint("pack into an empty directory");
        err_exit();
    }
    pack_writer w = {.out = o_out};
    so.flush_ctx = &w;
    token_builder b;
    /* With --tokenizer the shards are stamped with its identity: the ids (tokenized here, or
     * pre-tokenized and checked against its vocabulary) are meant for it, and `train` refuses
     * a model whose tokenizer differs. */
    token_builder_init(&b, (uint32_t)vocab, tok_id);
    sft_stats st = {0};
    for (int i = 0; i < n_in; i++)
        if (sft_read_input(&b, inputs[i], &so, &st)) err_exit();
    if (st.examples == 0) {
        err_fail(R1_EINPUT, n_in == 1 ? inputs[0] : "inputs",
                 "no examples to pack (%lld lines: %lld longer than --max-len, %lld with nothing "
                 "to learn)", (long long)st.lines, (long long)st.dropped_long,
                 (long long)st.no_loss);
        err_hint(st.lines ? "raise --max-len or pass --truncate" : "the input is empty");
        err_exit();
    }
    if (write_shard(&b, &w)) err_exit();
    token_builder_free(&b);

    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "examples", (double)st.examples);
    cJSON_AddNumberToObject(s, "tokens", (double)st.tokens);
    cJSON_AddNumberToObject(s, "loss_tokens", (double)st.loss_tokens);
    cJSON_AddNumberToObject(s, "dropped_long", (double)st.dropped_long);
    cJSON_AddNumberToObject(s, "truncated", (double)st.truncated);
    cJSON_AddNumberToObject(s, "no_loss", (double)st.no_loss);
    cJSON_AddNumberToObject(s, "shards", w.shards);
    cJSON_AddNumberToObject(s, "vocab_size", (double)vocab);
    cJSON_AddNumberToObject(s, "max_len", (double)o_max_len);
    char hex[24];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)tok_id);
    cJSON_AddStringToObject(s, "tokenizer_id", hex);
    int rc = json_write_file(o_out, "pack.json", s);
    cJSON_Delete(s);
    if (rc) err_exit();
    fprintf(stderr,
            "packed %lld examples (%lld tokens, %lld to learn) into %d shard%s in %s; %lld longer "
            "than --max-len %s, %lld with nothing to learn dropped\n",
            (long long)st.examples, (long long)st.tokens, (long long)st.loss_tokens, w.shards,
            w.shards == 1 ? "" : "s", o_out, (long long)(st.dropped_long + st.truncated),
            o_truncate ? "truncated" : "dropped", (long long)st.no_loss);
    return 0;
}
