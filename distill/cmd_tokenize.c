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
#include "core/json_inplace.h"
#include "core/tokenizer.h"
#include "distill/cmd_tokenize.h"

static const char *opt_tokenizer, *opt_format, *opt_template;
static int opt_add_special, opt_chat, opt_decode, opt_skip_special, opt_no_gen, opt_render,
    opt_jsonl, opt_stats;

static const cli_opt tokenize_opts[] = {
    {"tokenizer", OPT_STRING, &opt_tokenizer, NULL, CLI_REQUIRED, "PATH",
     "tokenizer.json, or a model directory holding it (tokenizer_config.json is read beside it)"},
    {"add-special", OPT_FLAG, &opt_add_special, NULL, 0, NULL,
     "add what the tokenizer's post-processor adds (e.g. Llama 3's <|begin_of_text|>)"},
    {"chat", OPT_FLAG, &opt_chat, NULL, 0, NULL,
     "stdin is a JSON array of {role, content} messages; tokenize the rendered conversation "
     "with a generation prompt"},
    {"format", OPT_STRING, &opt_format, "auto", 0, "auto|r1|chatml|llama3",
     "chat format; auto recognises the chat_template of tokenizer_config.json"},
    {"chat-template", OPT_STRING, &opt_template, NULL, 0, "FILE",
     "read the chat template from this file instead of tokenizer_config.json"},
    {"no-generation-prompt", OPT_FLAG, &opt_no_gen, NULL, 0, NULL,
     "with --chat: do not append the assistant prefix"},
    {"render", OPT_FLAG, &opt_render, NULL, 0, NULL,
     "with --chat: print the rendered text instead of ids"},
    {"decode", OPT_FLAG, &opt_decode, NULL, 0, NULL,
     "stdin holds token ids (separated by spaces, commas or newlines); print the text"},
    {"skip-special", OPT_FLAG, &opt_skip_special, NULL, 0, NULL,
     "with --decode: leave special tokens out"},
    {"jsonl", OPT_FLAG, &opt_jsonl, NULL, 0, NULL,
     "many inputs, one per stdin line: a JSON string (a JSON array of messages with --chat, ids "
     "with --decode); one output line each (texts printed as JSON strings)"},
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

static double clock_ms(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
static double now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
/* CPU time too: on a shared machine the wall clock also counts time spent waiting for a core. */
static double cpu_ms(void) { return clock_ms(CLOCK_PROCESS_CPUTIME_ID); }

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

/* A JSON string literal on its own line (texts in --jsonl mode). */
static void print_json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        default:
            if (c < 0x20) printf("\\u%04x", c);
            else putchar(c);
        }
    }
    fputs("\"\n", stdout);
}

/* Parses ids separated by spaces, commas or newlines; exits 2 on anything else. */
static int *parse_ids(const char *p, int *n_out) {
    int *ids = NULL, n = 0, cap = 0;
    while (*p) {
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
            err_exit();
        }
        if (n == cap) ids = xrealloc(ids, sizeof *ids * (size_t)(cap = cap ? cap * 2 : 256));
        ids[n++] = (int)v;
        p = end;
    }
    *n_out = n;
    return ids;
}

static void decode_one(const tokenizer *t, const char *in, long line) {
    int n, *ids = parse_ids(in, &n);
    char *text;
    size_t tlen;
    if (tokenizer_decode(t, ids, n, opt_skip_special, &text, &tlen)) {
        if (line) {
            char where[32];
            snprintf(where, sizeof where, "line %ld", line);
            err_context(where);
        }
        err_exit();
    }
    if (opt_jsonl) {
        print_json_string(text, tlen);
    } else {
        fwrite(text, 1, tlen, stdout);
        if (isatty(STDOUT_FILENO)) putchar('\n');
    }
    free(text);
    free(ids);
}

/* Calls fn on each line of stdin (without its newline), numbered from 1. */
static void each_line(char *in, void (*fn)(char *line, long lineno, void *ctx), void *ctx) {
    long lineno = 0;
    for (char *p = in; *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        fn(p, ++lineno, ctx);
        if (!nl) break;
        p = nl + 1;
    }
}

static void decode_line(char *line, long lineno, void *ctx) { decode_one(ctx, line, lineno); }

static int decode_stdin(const tokenizer *t) {
    size_t len;
    char *in = read_stdin(&len);
    if (opt_jsonl) each_line(in, decode_line, (void *)t);
    else decode_one(t, in, 0);
    free(in);
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

/* Messages of one conversation, parsed in place; the strings point into json. */
static chat_message *parse_conversation(char *json, size_t len, const char *where, int *n) {
    jin_doc d;
    if (jin_parse(&d, json, len, where)) err_exit();
    if (d.nodes[0].type != JIN_ARR) die(R1_EINPUT, where, "expected a JSON array of messages");
    chat_message *m = xcalloc((size_t)d.nodes[0].n + 1, sizeof *m);
    int i = 0;
    for (uint32_t c = jin_first(&d, 0); c; c = jin_next_in(&d, 0, c), i++) {
        uint32_t role = 0, content = 0;
        if (d.nodes[c].type != JIN_OBJ ||
            jin_member(&d, c, "role", JIN_STR, &role, where, NULL) <= 0 ||
            jin_member(&d, c, "content", JIN_STR, &content, where, NULL) <= 0)
            die(R1_EINPUT, where, "message %d needs \"role\" and \"content\" strings", i);
        const jin_node *cn = jin_at(&d, content);
        if (strlen(jin_str(&d, cn)) != cn->len)
            die(R1_EINPUT, where, "message %d: content holds U+0000, which no chat format allows", i);
        m[i].role = jin_str(&d, jin_at(&d, role));
        m[i].content = jin_str(&d, cn);
    }
    *n = i;
    jin_free(&d);
    return m;
}

typedef struct {
    const tokenizer *t;
    chat_format f;
    double bytes;
    long tokens;
} run_ctx;

static void chat_one(run_ctx *c, char *json, size_t len, long line) {
    char where[32];
    snprintf(where, sizeof where, line ? "stdin line %ld" : "stdin", line);
    int n;
    chat_message *m = parse_conversation(json, len, where, &n);
    char *text;
    if (chat_render(c->t, c->f, m, n, !opt_no_gen, &text)) err_exit();
    if (opt_render) {
        if (opt_jsonl) print_json_string(text, strlen(text));
        else fputs(text, stdout);
    } else {
        int *ids, k;
        /* The rendered text already holds BOS where the template puts it, so nothing is added,
         * as apply_chat_template(tokenize=True) does. */
        if (tokenizer_encode(c->t, text, strlen(text), 0, &ids, &k)) err_exit();
        print_ids(ids, k);
        c->bytes += (double)strlen(text);
        c->tokens += k;
        free(ids);
    }
    free(text);
    free(m);
}

static void chat_line(char *line, long lineno, void *ctx) {
    if (*line) chat_one(ctx, line, strlen(line), lineno);
}

/* A JSON string per line: its text encoded. */
static void encode_line(char *line, long lineno, void *ctx) {
    run_ctx *c = ctx;
    char where[32];
    snprintf(where, sizeof where, "stdin line %ld", lineno);
    if (!*line) return;
    jin_doc d;
    if (jin_parse(&d, line, strlen(line), where)) err_exit();
    if (d.nodes[0].type != JIN_STR) die(R1_EINPUT, where, "expected a JSON string");
    int *ids, n;
    if (tokenizer_encode(c->t, jin_str(&d, &d.nodes[0]), d.nodes[0].len, opt_add_special, &ids, &n)) {
        err_context(where);
        err_exit();
    }
    print_ids(ids, n);
    c->bytes += (double)d.nodes[0].len;
    c->tokens += n;
    free(ids);
    jin_free(&d);
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

    double t0 = now_ms(), c0 = cpu_ms();
    tokenizer *t;
    if (tokenizer_load(&t, opt_tokenizer)) err_exit();
    double t_load = now_ms() - t0, c_load = cpu_ms() - c0;
    if (opt_template) {
        char *tpl;
        size_t len;
        if (file_read_all(opt_template, 16u << 20, &tpl, &len)) err_exit();
        tokenizer_set_chat_template(t, tpl);
        free(tpl);
    }
    run_ctx c = {.t = t};
    double t1 = now_ms(), c1 = cpu_ms();
    if (opt_decode) {
        decode_stdin(t);
    } else if (opt_chat) {
        c.f = f;
        if (f == CHAT_AUTO && chat_detect(t, &c.f)) err_exit();
        if (!opt_render) check_format_tokens(t, c.f);
        size_t len;
        char *in = read_stdin(&len);
        if (opt_jsonl) each_line(in, chat_line, &c);
        else chat_one(&c, in, len, 0);
        free(in);
    } else {
        size_t len;
        char *in = read_stdin(&len);
        t1 = now_ms(), c1 = cpu_ms();
        if (opt_jsonl) {
            each_line(in, encode_line, &c);
        } else {
            int *ids, n;
            if (tokenizer_encode(t, in, len, opt_add_special, &ids, &n)) {
                err_context("stdin");
                err_exit();
            }
            print_ids(ids, n);
            c.bytes = (double)len;
            c.tokens = n;
            free(ids);
        }
        free(in);
    }
    double bytes = c.bytes;
    long tokens = c.tokens;
    if (opt_stats) {
        double dt = now_ms() - t1, dc = cpu_ms() - c1;
        fprintf(stderr, "tokenize: loaded %s (%d ids) in %.1f ms (%.1f ms CPU)", tokenizer_path(t),
                tokenizer_vocab_size(t), t_load, c_load);
        if (tokens)
            fprintf(stderr, "; %.0f bytes -> %ld tokens in %.1f ms, %.2f MB/s (%.2f MB/s CPU)",
                    bytes, tokens, dt, dt > 0 ? bytes / dt / 1e3 : 0.0, dc > 0 ? bytes / dc / 1e3 : 0.0);
        fputc('\n', stderr);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) die(R1_ERUNTIME, "stdout", "write failed");
    tokenizer_free(t);
    return 0;
}
