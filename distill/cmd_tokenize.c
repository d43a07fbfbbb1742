/* r1-distill tokenize: text to token ids and back with a model's tokenizer.json, and
 * conversations rendered in the model's chat format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/cli.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/tokenizer.h"
#include "distill/cmd_tokenize.h"

static const char *opt_tokenizer, *opt_format, *opt_template;
static int opt_add_special, opt_chat, opt_decode, opt_skip_special, opt_no_gen, opt_render,
    opt_stats;

static const cli_opt tokenize_opts[] = {
    {"tokenizer", OPT_STRING, &opt_tokenizer, NULL, CLI_REQUIRED, "PATH",
     "tokenizer.json, or a model directory holding it (tokenizer_config.json is read beside it)"},
    {"add-special", OPT_FLAG, &opt_add_special, NULL, 0, NULL,
     "add what the tokenizer's post-processor adds (e.g. Llama 3's <|begin_of_text|>)"},
    {"chat", OPT_FLAG, &opt_chat, NULL, 0, NULL,
     "stdin is a JSON array of {role, content} messages (or an array of such arrays, one output "
     "line each); tokenize the rendered conversation with a generation prompt"},
    {"format", OPT_STRING, &opt_format, "auto", 0, "auto|r1|chatml|llama3",
     "chat format; auto recognises the chat_template of tokenizer_config.json"},
    {"chat-template", OPT_STRING, &opt_template, NULL, 0, "FILE",
     "read the chat template from this file instead of tokenizer_config.json"},
    {"no-generation-prompt", OPT_FLAG, &opt_no_gen, NULL, 0, NULL,
     "with --chat: do not append the assistant prefix"},
    {"render", OPT_FLAG, &opt_render, NULL, 0, NULL,
     "with --chat: print the rendered text instead of ids (one JSON string per line in batch)"},
    {"decode", OPT_FLAG, &opt_decode, NULL, 0, NULL,
     "stdin holds token ids (separated by spaces, commas or newlines); print the text"},
    {"skip-special", OPT_FLAG, &opt_skip_special, NULL, 0, NULL,
     "with --decode: leave special tokens out"},
    {"stats", OPT_FLAG, &opt_stats, NULL, 0, NULL,
     "print load time, token count and throughput to stderr"},
};

static const cli_spec tokenize_spec = {
    .command = "tokenize",
    .summary = "Tokenize UTF-8 text from stdin (or decode ids) with a Hugging Face tokenizer.json; "
               "prints the ids on one line.",
    .opts = tokenize_opts,
    .n_opts = sizeof tokenize_opts / sizeof *tokenize_opts,
    .details = "Encoding matches the Hugging Face tokenizer token for token. Errors (bad input, "
               "invalid UTF-8, ids outside the vocabulary, unsupported tokenizer.json) exit 2.",
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t k = fread(buf + n, 1, cap - n - 1, stdin);
        n += k;
        if (k == 0) break;
    }
    if (ferror(stdin)) die(R1_ERUNTIME, "stdin", "read failed");
    buf[n] = 0;
    *len = n;
    return buf;
}

static void print_ids(const int *ids, int n) {
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
}

/* A JSON string literal, for rendered text in batch mode. */
static void print_json_string(const char *s) {
    cJSON *str = cJSON_CreateString(s);
    char *out = cJSON_PrintUnformatted(str);
    puts(out);
    free(out);
    cJSON_Delete(str);
}

static int decode_stdin(const tokenizer *t) {
    size_t len;
    char *in = read_stdin(&len);
    int *ids = NULL, n = 0, cap = 0;
    for (char *p = in; *p;) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') {
            p++;
            continue;
        }
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && !strchr(" \t\r\n,", *end)) || v < 0 || v > 0x7fffffff) {
            char *tok = xstrndup(p, strcspn(p, " \t\r\n,"));
            err_fail(R1_EINPUT, "stdin", "\"%.40s\" is not a token id", tok);
            free(tok);
            free(in);
            free(ids);
            err_exit();
        }
        if (n == cap) ids = xrealloc(ids, sizeof *ids * (size_t)(cap = cap ? cap * 2 : 256));
        ids[n++] = (int)v;
        p = end;
    }
    free(in);
    char *text;
    size_t tlen;
    if (tokenizer_decode(t, ids, n, opt_skip_special, &text, &tlen)) err_exit();
    fwrite(text, 1, tlen, stdout);
    if (isatty(STDOUT_FILENO)) putchar('\n');
    free(text);
    free(ids);
    return 0;
}

/* The tokens a format's markers must be for the ids to mean what the model was trained on. */
static void check_format_tokens(const tokenizer *t, chat_format f) {
    static const char *const need[][2] = {
        [CHAT_R1] = {"<｜User｜>", "<｜Assistant｜>"},
        [CHAT_CHATML] = {"<|im_start|>", "<|im_end|>"},
        [CHAT_LLAMA3] = {"<|start_header_id|>", "<|eot_id|>"},
    };
    for (int i = 0; i < 2; i++)
        if (f != CHAT_AUTO && tokenizer_token_id(t, need[f][i]) < 0)
            die(R1_EINPUT, tokenizer_path(t), "the %s format needs the token %s, which this "
                "tokenizer does not have (choose another --format)", chat_format_name(f), need[f][i]);
}

/* Messages of one conversation; the strings stay owned by the JSON tree. */
static chat_message *parse_conversation(const cJSON *arr, int conv, int *n) {
    if (!cJSON_IsArray(arr)) die(R1_EINPUT, "stdin", "conversation %d is not an array of messages", conv);
    int k = cJSON_GetArraySize(arr), i = 0;
    chat_message *m = xcalloc((size_t)k + 1, sizeof *m);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content))
            die(R1_EINPUT, "stdin", "conversation %d, message %d: needs \"role\" and \"content\" "
                "strings", conv, i);
        m[i].role = role->valuestring;
        m[i].content = content->valuestring;
        i++;
    }
    *n = k;
    return m;
}

static int chat_stdin(const tokenizer *t, chat_format f, double *bytes, long *tokens) {
    size_t len;
    char *in = read_stdin(&len);
    cJSON *root;
    if (json_parse(&root, in, len, "stdin")) err_exit();
    free(in);
    if (!cJSON_IsArray(root)) die(R1_EINPUT, "stdin", "expected a JSON array of messages");
    /* An array of arrays is a batch of conversations. */
    int batch = cJSON_GetArraySize(root) > 0 && cJSON_IsArray(cJSON_GetArrayItem(root, 0));
    int n_conv = batch ? cJSON_GetArraySize(root) : 1;
    for (int c = 0; c < n_conv; c++) {
        int n;
        chat_message *m = parse_conversation(batch ? cJSON_GetArrayItem(root, c) : root, c, &n);
        char *text;
        if (chat_render(t, f, m, n, !opt_no_gen, &text)) err_exit();
        if (opt_render) {
            if (batch) print_json_string(text);
            else fputs(text, stdout);
        } else {
            int *ids, k;
            /* The rendered text already holds BOS where the template puts it, so nothing is
             * added, as apply_chat_template(tokenize=True) does. */
            if (tokenizer_encode(t, text, strlen(text), 0, &ids, &k)) err_exit();
            print_ids(ids, k);
            *bytes += (double)strlen(text);
            *tokens += k;
            free(ids);
        }
        free(text);
        free(m);
    }
    cJSON_Delete(root);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    cli_parse(&tokenize_spec, argc, argv, NULL, NULL);
    chat_format f;
    if (chat_format_parse(opt_format, &f))
        die(R1_EINPUT, "--format", "\"%s\" is not one of auto, r1, chatml, llama3", opt_format);
    if (opt_chat && opt_decode) die(R1_EINPUT, "--chat", "cannot be combined with --decode");
    if ((opt_render || opt_no_gen || opt_template || cli_given(&tokenize_spec, "format")) && !opt_chat)
        die(R1_EINPUT, "--chat", "--render, --no-generation-prompt, --chat-template and --format "
            "apply to --chat only");
    if (opt_skip_special && !opt_decode) die(R1_EINPUT, "--skip-special", "applies to --decode only");
    if (opt_add_special && (opt_decode || opt_chat))
        die(R1_EINPUT, "--add-special", "applies to plain text encoding only");

    double t0 = now_ms();
    tokenizer *t;
    if (tokenizer_load(&t, opt_tokenizer)) err_exit();
    double t_load = now_ms() - t0;
    if (opt_template) {
        char *tpl;
        size_t len;
        if (file_read_all(opt_template, 16u << 20, &tpl, &len)) err_exit();
        tokenizer_set_chat_template(t, tpl);
        free(tpl);
    }
    double bytes = 0, t1 = now_ms();
    long tokens = 0;
    if (opt_decode) {
        decode_stdin(t);
    } else if (opt_chat) {
        if (f == CHAT_AUTO && chat_detect(t, &f)) err_exit();
        if (!opt_render) check_format_tokens(t, f);
        chat_stdin(t, f, &bytes, &tokens);
    } else {
        size_t len;
        char *in = read_stdin(&len);
        int *ids, n;
        t1 = now_ms();
        if (tokenizer_encode(t, in, len, opt_add_special, &ids, &n)) {
            err_context("stdin");
            err_exit();
        }
        print_ids(ids, n);
        bytes = (double)len;
        tokens = n;
        free(ids);
        free(in);
    }
    if (opt_stats) {
        double dt = now_ms() - t1;
        int n_merges;
        tokenizer_merges(t, &n_merges);
        fprintf(stderr, "tokenize: loaded %s (%d ids, %d merges) in %.1f ms", tokenizer_path(t),
                tokenizer_vocab_size(t), n_merges, t_load);
        if (tokens)
            fprintf(stderr, "; %.0f bytes -> %ld tokens in %.1f ms (%.2f MB/s)", bytes, tokens, dt,
                    dt > 0 ? bytes / dt / 1e3 : 0.0);
        fputc('\n', stderr);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) die(R1_ERUNTIME, "stdout", "write failed");
    tokenizer_free(t);
    return 0;
}
