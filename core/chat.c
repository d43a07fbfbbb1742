/* Conversation formats: the R1 family, ChatML (Qwen) and Llama 3, rendered as their Jinja chat
 * templates render them (transformers' apply_chat_template: trim_blocks, lstrip_blocks), for
 * conversations of system, user and assistant messages without tool calls.
 *
 * Within a family the templates differ in details, which are read off the template text:
 *   R1      DeepSeek-R1 joins all system prompts with a blank line ("is_first_sp"); the
 *           R1-Distill templates keep only the last one. Earlier assistant turns keep the text
 *           after their last </think>; the generation prompt is <｜Assistant｜><think>\n.
 *           (DeepSeek-V3's template, which the R1 tokens also match, is rendered as R1.)
 *   ChatML  Qwen2.5 puts a default system prompt when none is given (taken from the template);
 *           Qwen3 ("reasoning_content") drops the reasoning of assistant turns before the last
 *           user query and re-wraps the reasoning of later ones in <think>\n...\n</think>\n\n.
 *   Llama 3 Llama 3.1 and later ("Cutting Knowledge Date") always open with a system header
 *           holding the knowledge cutoff and a date; Llama 3 opens with the first message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/tokenizer_internal.h"

/* ---- a growable string ------------------------------------------------------------------ */

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2 + 64;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* ---- Python string methods the templates use -------------------------------------------- */

typedef struct {
    const char *s;
    size_t n;
} slice;

static slice sl(const char *s) { return (slice){s, strlen(s)}; }

static const char *find(slice h, const char *needle) {
    size_t k = strlen(needle);
    if (k == 0 || k > h.n) return k == 0 ? h.s : NULL;
    for (size_t i = 0; i + k <= h.n; i++)
        if (memcmp(h.s + i, needle, k) == 0) return h.s + i;
    return NULL;
}

/* s.split(sep)[-1] */
static slice after_last(slice s, const char *sep) {
    size_t k = strlen(sep);
    slice r = s;
    for (const char *p; (p = find(r, sep));) r = (slice){p + k, (size_t)(r.s + r.n - (p + k))};
    return r;
}

/* s.split(sep)[0] */
static slice before_first(slice s, const char *sep) {
    const char *p = find(s, sep);
    return p ? (slice){s.s, (size_t)(p - s.s)} : s;
}

static slice lstrip_nl(slice s) {
    while (s.n && *s.s == '\n') s.s++, s.n--;
    return s;
}

static slice rstrip_nl(slice s) {
    while (s.n && s.s[s.n - 1] == '\n') s.n--;
    return s;
}

/* What Python's str.isspace() accepts, so `| trim` (str.strip()) matches jinja2. */
static int py_space(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static slice trim(slice s) {
    size_t len;
    while (s.n) {
        size_t k = utf8_len_at((const unsigned char *)s.s, s.n);
        if (!k || !py_space(utf8_decode_at((const unsigned char *)s.s, &len))) break;
        s.s += k, s.n -= k;
    }
    while (s.n) {
        size_t i = s.n - 1;
        while (i > 0 && ((unsigned char)s.s[i] & 0xC0) == 0x80) i--;
        size_t k = utf8_len_at((const unsigned char *)s.s + i, s.n - i);
        if (!k || !py_space(utf8_decode_at((const unsigned char *)s.s + i, &len))) break;
        s.n = i;
    }
    return s;
}

static void sb_slice(sbuf *b, slice s) { sb_put(b, s.s, s.n); }

/* ---- formats ---------------------------------------------------------------------------- */

int chat_format_parse(const char *name, chat_format *out) {
    static const struct {
        const char *name;
        chat_format f;
    } names[] = {{"auto", CHAT_AUTO}, {"r1", CHAT_R1}, {"chatml", CHAT_CHATML}, {"llama3", CHAT_LLAMA3}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].f;
            return 0;
        }
    return -1;
}

const char *chat_format_name(chat_format f) {
    switch (f) {
    case CHAT_AUTO: return "auto";
    case CHAT_R1: return "r1";
    case CHAT_CHATML: return "chatml";
    case CHAT_LLAMA3: return "llama3";
    }
    return "?";
}

int chat_detect(const tokenizer *t, chat_format *out) {
    const char *tpl = t->chat_template;
    if (tpl) {
        slice s = sl(tpl);
        if (find(s, "<｜User｜>") || find(s, "<｜Assistant｜>")) *out = CHAT_R1;
        else if (find(s, "<|im_start|>")) *out = CHAT_CHATML;
        else if (find(s, "<|start_header_id|>")) *out = CHAT_LLAMA3;
        else {
            err_fail(R1_EINPUT, t->path, "the chat_template is none of the known formats (R1, "
                     "ChatML, Llama 3)");
            return err_hint("force one with --format r1|chatml|llama3");
        }
        return R1_OK;
    }
    if (tokenizer_token_id(t, "<｜User｜>") >= 0) *out = CHAT_R1;
    else if (tokenizer_token_id(t, "<|im_start|>") >= 0) *out = CHAT_CHATML;
    else if (tokenizer_token_id(t, "<|start_header_id|>") >= 0) *out = CHAT_LLAMA3;
    else {
        err_fail(R1_EINPUT, t->path, "no chat_template, and the vocabulary has none of the R1, "
                 "ChatML or Llama 3 tokens");
        return err_hint("force a format with --format r1|chatml|llama3");
    }
    return R1_OK;
}

/* Decodes a Jinja string literal's body (escapes as in Python) into b. */
static void jinja_unescape(sbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            char e = s[++i];
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
        }
        sb_put(b, &c, 1);
    }
}

/* Qwen2.5's {{- '<|im_start|>system\nDEFAULT<|im_end|>\n' }}: the default system prompt, when the
 * template holds one as a single string literal. */
static char *chatml_default_system(const char *tpl) {
    if (!tpl) return NULL;
    static const char *const open[] = {"'<|im_start|>system\\n", "\"<|im_start|>system\\n"};
    for (int q = 0; q < 2; q++) {
        char quote = open[q][0];
        slice s = sl(tpl);
        for (const char *p; (p = find(s, open[q]));) {
            const char *body = p + strlen(open[q]), *e = body;
            while (*e && *e != quote) e += e[0] == '\\' && e[1] ? 2 : 1;
            size_t len = (size_t)(e - body);
            static const char end[] = "<|im_end|>\\n";
            if (*e == quote && len >= sizeof end - 1 && memcmp(e - (sizeof end - 1), end, sizeof end - 1) == 0 &&
                len > sizeof end - 1) {
                sbuf b = {0};
                jinja_unescape(&b, body, len - (sizeof end - 1));
                return b.s;
            }
            s = (slice){body, strlen(body)};
        }
    }
    return NULL;
}

/* Llama 3.1's system-header date: today's (as transformers' strftime_now) when the template
 * asks for it, else its literal default. */
static void llama_date(const char *tpl, char *out, size_t cap) {
    slice s = sl(tpl);
    if (find(s, "strftime_now(")) {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(out, cap, "%d %b %Y", &tm);
        return;
    }
    const char *p = find(s, "date_string = \"");
    snprintf(out, cap, "%s", "26 Jul 2024");
    if (p) {
        p += strlen("date_string = \"");
        const char *e = strchr(p, '"');
        if (e && (size_t)(e - p) < cap) {
            memcpy(out, p, (size_t)(e - p));
            out[e - p] = 0;
        }
    }
}

int tokenizer_set_chat_template(tokenizer *t, const char *tpl) {
    free(t->chat_template);
    t->chat_template = tpl ? xstrdup(tpl) : NULL;
    return R1_OK;
}

static const char *bos_or(const tokenizer *t, const char *fallback) {
    return t->bos_text ? t->bos_text : fallback;
}

static void render_r1(const tokenizer *t, const chat_message *m, int n, int gen, sbuf *b) {
    const char *tpl = t->chat_template;
    /* R1 (671B) joins system prompts; the Distill templates keep the last one. */
    int join = !tpl || find(sl(tpl), "is_first_sp") || !find(sl(tpl), "<｜Assistant｜>");
    sb_str(b, bos_or(t, "<｜begin▁of▁sentence｜>"));
    int first = 1;
    const char *last_sys = NULL;
    for (int i = 0; i < n; i++) {
        if (strcmp(m[i].role, "system") != 0) continue;
        if (join) {
            if (!first) sb_str(b, "\n\n");
            sb_str(b, m[i].content);
            first = 0;
        } else {
            last_sys = m[i].content;
        }
    }
    if (last_sys) sb_str(b, last_sys);
    for (int i = 0; i < n; i++) {
        if (strcmp(m[i].role, "user") == 0) {
            sb_str(b, "<｜User｜>");
            sb_str(b, m[i].content);
        } else if (strcmp(m[i].role, "assistant") == 0) {
            sb_str(b, "<｜Assistant｜>");
            sb_slice(b, after_last(sl(m[i].content), "</think>"));
            sb_str(b, "<｜end▁of▁sentence｜>");
        }
    }
    if (gen) sb_str(b, "<｜Assistant｜><think>\n");
}

static void render_chatml(const tokenizer *t, const chat_message *m, int n, int gen, sbuf *b) {
    const char *tpl = t->chat_template;
    int qwen3 = tpl && find(sl(tpl), "reasoning_content");
    char *def = chatml_default_system(tpl);
    if (n > 0 && strcmp(m[0].role, "system") == 0) {
        sb_str(b, "<|im_start|>system\n");
        sb_str(b, m[0].content);
        sb_str(b, "<|im_end|>\n");
    } else if (def) {
        sb_str(b, "<|im_start|>system\n");
        sb_str(b, def);
        sb_str(b, "<|im_end|>\n");
    }
    free(def);
    /* Qwen3: the last user message that is not a tool response. */
    int last_query = n - 1;
    for (int i = n - 1; i >= 0; i--) {
        slice c = sl(m[i].content);
        int tool = c.n >= 15 && memcmp(c.s, "<tool_response>", 15) == 0 && c.n >= 16 &&
                   memcmp(c.s + c.n - 16, "</tool_response>", 16) == 0;
        if (strcmp(m[i].role, "user") == 0 && !tool) {
            last_query = i;
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        const char *role = m[i].role;
        if (strcmp(role, "user") == 0 || (strcmp(role, "system") == 0 && i > 0)) {
            sb_str(b, "<|im_start|>");
            sb_str(b, role);
            sb_str(b, "\n");
            sb_str(b, m[i].content);
            sb_str(b, "<|im_end|>\n");
        } else if (strcmp(role, "assistant") == 0) {
            sb_str(b, "<|im_start|>assistant\n");
            slice content = sl(m[i].content), reasoning = {"", 0};
            if (!qwen3) {
                sb_slice(b, content);
            } else {
                if (find(content, "</think>")) {
                    slice whole = content;
                    content = lstrip_nl(after_last(whole, "</think>"));
                    reasoning = lstrip_nl(after_last(rstrip_nl(before_first(whole, "</think>")), "<think>"));
                }
                if (i > last_query && (i == n - 1 || reasoning.n)) {
                    sb_str(b, "<think>\n");
                    sb_slice(b, rstrip_nl(lstrip_nl(reasoning)));
                    sb_str(b, "\n</think>\n\n");
                    sb_slice(b, lstrip_nl(content));
                } else {
                    sb_slice(b, content);
                }
            }
            sb_str(b, "<|im_end|>\n");
        }
    }
    if (gen) sb_str(b, "<|im_start|>assistant\n");
}

static void llama_turn(sbuf *b, const char *role, const char *content) {
    sb_str(b, "<|start_header_id|>");
    sb_str(b, role);
    sb_str(b, "<|end_header_id|>\n\n");
    sb_slice(b, trim(sl(content)));
    sb_str(b, "<|eot_id|>");
}

static void render_llama3(const tokenizer *t, const chat_message *m, int n, int gen, sbuf *b) {
    const char *tpl = t->chat_template;
    const char *bos = bos_or(t, "<|begin_of_text|>");
    if (tpl && find(sl(tpl), "Cutting Knowledge Date")) {
        char date[64];
        llama_date(tpl, date, sizeof date);
        sb_str(b, bos);
        sb_str(b, "<|start_header_id|>system<|end_header_id|>\n\n");
        sb_str(b, "Cutting Knowledge Date: December 2023\nToday Date: ");
        sb_str(b, date);
        sb_str(b, "\n\n");
        int skip = n > 0 && strcmp(m[0].role, "system") == 0;
        if (skip) sb_slice(b, trim(sl(m[0].content)));
        sb_str(b, "<|eot_id|>");
        for (int i = skip; i < n; i++) llama_turn(b, m[i].role, m[i].content);
    } else {
        for (int i = 0; i < n; i++) {
            if (i == 0) sb_str(b, bos);
            llama_turn(b, m[i].role, m[i].content);
        }
    }
    if (gen) sb_str(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

int chat_render(const tokenizer *t, chat_format f, const chat_message *msgs, int n, int gen_prompt,
                char **out) {
    *out = NULL;
    if (f == CHAT_AUTO) TRY(chat_detect(t, &f));
    for (int i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content)
            return err_fail(R1_EINPUT, "conversation", "message %d has no role or content", i);
        if (strcmp(msgs[i].role, "system") != 0 && strcmp(msgs[i].role, "user") != 0 &&
            strcmp(msgs[i].role, "assistant") != 0)
            return err_fail(R1_EINPUT, "conversation", "message %d: role \"%s\" is not supported "
                            "(system, user, assistant)", i, msgs[i].role);
    }
    sbuf b = {0};
    sb_put(&b, "", 0);
    switch (f) {
    case CHAT_R1: render_r1(t, msgs, n, gen_prompt, &b); break;
    case CHAT_CHATML: render_chatml(t, msgs, n, gen_prompt, &b); break;
    case CHAT_LLAMA3: render_llama3(t, msgs, n, gen_prompt, &b); break;
    case CHAT_AUTO: break;
    }
    *out = b.s;
    return R1_OK;
}
