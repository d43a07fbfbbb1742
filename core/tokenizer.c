/* Encoding and decoding, step for step as the HF `tokenizers` library does them:
 *
 *   encode: added tokens with normalized=false are split out of the raw text
 *           (AddedVocabulary::extract_and_normalize, leftmost-longest); each remaining piece is
 *           normalized (NFC) and the normalized added tokens are split out of it; the rest
 *           goes through the pre-tokenizer steps (regex Splits, ByteLevel) and byte-level BPE;
 *           add_special wraps the ids as the post-processor does.
 *   decode: tokens' bytes (ByteLevel decoder) concatenated, then String::from_utf8_lossy:
 *           each maximal ill-formed subsequence becomes one U+FFFD. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"
#include "core/tokenizer_internal.h"

/* ---- UTF-8 ------------------------------------------------------------------------------ */

uint32_t utf8_decode_at(const unsigned char *s, size_t *len) {
    unsigned char c = s[0];
    if (c < 0x80) return *len = 1, c;
    if (c < 0xE0) return *len = 2, (uint32_t)(c & 0x1F) << 6 | (s[1] & 0x3F);
    if (c < 0xF0)
        return *len = 3, (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    return *len = 4, (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
                         (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
}

/* Length of the maximal prefix of a well-formed sequence at s: what one U+FFFD replaces
 * (Unicode §3.9 "maximal subpart", which Rust's from_utf8_lossy follows). At least 1. */
static size_t utf8_bad_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    unsigned lo = 0x80, hi = 0xBF;
    size_t need;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return 1;
    size_t k = 1;
    if (k < n && s[k] >= lo && s[k] <= hi) k++;
    else return 1;
    while (k < need && k < n && (s[k] & 0xC0) == 0x80) k++;
    return k;
}

/* ---- NFC -------------------------------------------------------------------------------- */

/* Every character below U+0300 is NFC-stable and composes with nothing before it, and every
 * ASCII character starts a normalization boundary. So only runs of non-ASCII characters that
 * hold one at or above U+0300 (lead byte >= 0xCC), together with the ASCII character before
 * them (a base a combining mark may join), need utf8proc. */
int tok_nfc(const char *text, size_t n, char **out, size_t *out_len) {
    const unsigned char *s = (const unsigned char *)text;
    *out = NULL;
    *out_len = n;
    char *buf = NULL;
    size_t len = 0, cap = 0, copied = 0, i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t r0 = i;
        int high = 0;
        while (i < n && s[i] >= 0x80) high |= s[i++] >= 0xCC;
        if (!high) continue;
        size_t a = r0 > copied ? r0 - 1 : r0; /* the ASCII base, if not already emitted */
        utf8proc_uint8_t *norm = NULL;
        utf8proc_ssize_t k = utf8proc_map(s + a, (utf8proc_ssize_t)(i - a), &norm,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (k < 0) {
            free(buf);
            return err_fail(R1_EINPUT, "input", "NFC failed: %s", utf8proc_errmsg(k));
        }
        size_t need = len + (a - copied) + (size_t)k;
        if (need > cap) {
            cap = need * 2 + 64;
            buf = xrealloc(buf, cap);
        }
        memcpy(buf + len, s + copied, a - copied);
        len += a - copied;
        memcpy(buf + len, norm, (size_t)k);
        len += (size_t)k;
        free(norm);
        copied = i;
    }
    if (!buf) return R1_OK;
    buf = xrealloc(buf, len + (n - copied) + 1);
    memcpy(buf + len, s + copied, n - copied);
    len += n - copied;
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return R1_OK;
}

/* ---- added tokens ----------------------------------------------------------------------- */

/* White_Space, what Rust regex's \s matches (tokenizers' lstrip/rstrip). */
static int is_space_cp(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Rust regex's \w: Alphabetic, marks, decimal digits, connector punctuation, Join_Control. */
static int is_word_cp(uint32_t c) {
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    if (c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) ||
        (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
        (c >= 0x1F170 && c <= 0x1F189))
        return 1;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

/* The code point ending at s[end) (s valid UTF-8, end > 0). */
static uint32_t cp_before(const unsigned char *s, size_t end) {
    size_t i = end - 1, len;
    while (i > 0 && (s[i] & 0xC0) == 0x80) i--;
    return utf8_decode_at(s + i, &len);
}

/* Leftmost-longest match at or after pos: the token index, its [*ms, *me). -1 if none. */
static int trie_find(const added_trie *tr, const unsigned char *s, size_t n, size_t pos,
                     size_t *ms, size_t *me) {
    if (!tr->nodes) return -1;
    for (size_t i = pos; i < n; i++) {
        int32_t node = tr->first[s[i]];
        if (node < 0) continue;
        int best = -1;
        size_t j = i;
        for (;;) {
            j++;
            if (tr->nodes[node].token >= 0) best = tr->nodes[node].token, *me = j;
            if (j >= n) break;
            int32_t c = tr->nodes[node].child;
            while (c >= 0 && tr->nodes[c].byte != s[j]) c = tr->nodes[c].sibling;
            if (c < 0) break;
            node = c;
        }
        if (best >= 0) {
            *ms = i;
            return best;
        }
    }
    return -1;
}

typedef struct enc_ctx enc_ctx;
/* Called for each piece: id >= 0 for an added token, -1 for text to process further. */
typedef int (*span_fn)(enc_ctx *c, const char *s, size_t n, int id);

/* AddedVocabulary::find_matches: the matches of the trie with single_word, lstrip and rstrip
 * applied, and the text between them. */
static int split_added(enc_ctx *c, const tokenizer *t, const added_trie *tr, const char *text,
                       size_t n, span_fn fn) {
    const unsigned char *s = (const unsigned char *)text;
    size_t pos = 0, start_offset = 0, ms, me;
    int k;
    while (pos < n && (k = trie_find(tr, s, n, pos, &ms, &me)) >= 0) {
        const added_token *a = &t->added[k];
        size_t start = ms, stop = me, len;
        pos = me; /* the search goes on after the match, kept or not */
        if (a->single_word) {
            int start_space = start == 0 || !is_word_cp(cp_before(s, start));
            int stop_space = stop == n || !is_word_cp(utf8_decode_at(s + stop, &len));
            if (!start_space || !stop_space) continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0 && is_space_cp(cp_before(s, ns))) {
                ns--;
                while (ns > 0 && (s[ns] & 0xC0) == 0x80) ns--;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip)
            while (stop < n && is_space_cp(utf8_decode_at(s + stop, &len))) stop += len;
        if (start_offset < start) TRY(fn(c, text + start_offset, start - start_offset, -1));
        TRY(fn(c, text + start, stop - start, a->id));
        start_offset = stop;
    }
    if (start_offset < n) TRY(fn(c, text + start_offset, n - start_offset, -1));
    return R1_OK;
}

/* ---- pre-tokenizer and BPE -------------------------------------------------------------- */

struct enc_ctx {
    const tokenizer *t;
    pcre2_match_data *md;
    id_vec out;
    bpe_scratch sc;
};

static int pretok(enc_ctx *c, int step, const char *s, size_t n);

/* One regex match at or after pos: 1 and [*ms, *me), 0 if none, or an error. */
static int regex_find(enc_ctx *c, const pretok_step *st, const char *s, size_t n, size_t pos,
                      size_t *ms, size_t *me) {
    int rc = st->jit ? pcre2_jit_match(st->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, c->md, NULL)
                     : PCRE2_ERROR_JIT_BADOPTION;
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_JIT_BADOPTION)
        rc = pcre2_match(st->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, c->md,
                         NULL);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        err_fail(R1_ERUNTIME, "pre_tokenizer", "regex match failed: %s", (const char *)msg);
        return -1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

/* Split with Isolated behaviour: every match and every gap between matches is a piece
 * (tokenizers' Pattern::find_matches for a regex, then NormalizedString::split; empty pieces
 * are dropped). */
static int split_regex(enc_ctx *c, int step, const pretok_step *st, const char *s, size_t n) {
    size_t pos = 0, prev = 0, ms, me;
    while (pos <= n) {
        int rc = regex_find(c, st, s, n, pos, &ms, &me);
        if (rc < 0) return R1_ERUNTIME;
        if (rc == 0) break;
        if (prev < ms) TRY(pretok(c, step + 1, s + prev, ms - prev));
        if (ms < me) TRY(pretok(c, step + 1, s + ms, me - ms));
        prev = me;
        if (me > ms) {
            pos = me;
        } else {
            /* An empty match: the search resumes one character later. */
            if (me >= n) break;
            size_t len;
            utf8_decode_at((const unsigned char *)s + me, &len);
            pos = me + len;
        }
    }
    if (prev < n) TRY(pretok(c, step + 1, s + prev, n - prev));
    return R1_OK;
}

static int pretok(enc_ctx *c, int step, const char *s, size_t n) {
    const tokenizer *t = c->t;
    if (n == 0) return R1_OK;
    if (step == t->n_steps) {
        bpe_encode_word(t, (const unsigned char *)s, n, &c->out, &c->sc);
        return R1_OK;
    }
    const pretok_step *st = &t->steps[step];
    if (st->kind == PRETOK_SPLIT) return split_regex(c, step, st, s, n);
    /* ByteLevel: the byte mapping itself is implicit (BPE runs on bytes); what is left is
     * add_prefix_space, applied to each piece that reaches it, and the GPT-2 split. */
    char *tmp = NULL;
    if (st->add_prefix_space && s[0] != ' ') {
        tmp = xmalloc(n + 1);
        tmp[0] = ' ';
        memcpy(tmp + 1, s, n);
        s = tmp, n++;
    }
    int rc = st->re ? split_regex(c, step, st, s, n) : pretok(c, step + 1, s, n);
    free(tmp);
    return rc;
}

static int on_normalized_span(enc_ctx *c, const char *s, size_t n, int id) {
    if (id >= 0) {
        id_vec_push(&c->out, id);
        return R1_OK;
    }
    return pretok(c, 0, s, n);
}

static int on_raw_span(enc_ctx *c, const char *s, size_t n, int id) {
    const tokenizer *t = c->t;
    if (id >= 0) {
        id_vec_push(&c->out, id);
        return R1_OK;
    }
    char *norm = NULL;
    size_t nlen = n;
    if (t->nfc) TRY(tok_nfc(s, n, &norm, &nlen));
    const char *p = norm ? norm : s;
    int rc = t->norm_trie.nodes ? split_added(c, t, &t->norm_trie, p, nlen, on_normalized_span)
                                : pretok(c, 0, p, nlen);
    free(norm);
    return rc;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_special, int **ids,
                     int *n) {
    *ids = NULL;
    *n = 0;
    const ptrdiff_t bad = utf8_invalid_at(text, len);
    if (bad >= 0) return err_fail(R1_EINPUT, "input", "invalid UTF-8 at byte %td", bad);
    enc_ctx c = {.t = t};
    c.md = pcre2_match_data_create(1, NULL);
    if (!c.md) return err_fail(R1_ERUNTIME, "encode", "out of memory");
    if (add_special)
        for (int i = 0; i < t->n_pre; i++) id_vec_push(&c.out, t->pre_ids[i]);
    int rc = split_added(&c, t, &t->raw_trie, text, len, on_raw_span);
    if (add_special)
        for (int i = 0; i < t->n_post; i++) id_vec_push(&c.out, t->post_ids[i]);
    pcre2_match_data_free(c.md);
    bpe_scratch_free(&c.sc);
    if (rc || c.out.n > (size_t)INT32_MAX) {
        free(c.out.v);
        return rc ? rc : err_fail(R1_EINPUT, "input", "too many tokens");
    }
    if (!c.out.v) c.out.v = xmalloc(sizeof(int));
    *ids = c.out.v;
    *n = (int)c.out.n;
    return R1_OK;
}

/* ---- decode ----------------------------------------------------------------------------- */

static int valid_id(const tokenizer *t, int id) {
    return id >= 0 && id < t->n_ids && t->flags[id] != 0;
}

int tokenizer_decode(const tokenizer *t, const int *ids, int n, int skip_special, char **text,
                     size_t *len) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!valid_id(t, ids[i]))
            return err_fail(R1_EINPUT, "decode", "id %d (position %d) is not in the vocabulary "
                            "(ids 0..%d)", ids[i], i, t->n_ids - 1);
        total += t->bytes_len[ids[i]];
    }
    unsigned char *raw = xmalloc(total + 1);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (skip_special && (t->flags[id] & TOK_SPECIAL)) continue;
        memcpy(raw + k, t->arena + t->bytes_off[id], t->bytes_len[id]);
        k += t->bytes_len[id];
    }
    /* from_utf8_lossy: at most 3 output bytes per input byte. */
    char *out = xmalloc(3 * k + 1);
    size_t o = 0;
    for (size_t i = 0; i < k;) {
        size_t m = utf8_len_at(raw + i, k - i);
        if (m) {
            memcpy(out + o, raw + i, m);
            o += m;
            i += m;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += utf8_bad_len(raw + i, k - i);
        }
    }
    out[o] = 0;
    free(raw);
    *text = xrealloc(out, o + 1);
    *len = o;
    return R1_OK;
}

/* ---- accessors -------------------------------------------------------------------------- */

const char *tokenizer_token_bytes(const tokenizer *t, int id, size_t *len) {
    if (!valid_id(t, id)) return NULL;
    if (len) *len = t->bytes_len[id];
    return t->arena + t->bytes_off[id];
}

int tokenizer_vocab_size(const tokenizer *t) { return t->n_ids; }

const char *tokenizer_token_text(const tokenizer *t, int id) {
    return valid_id(t, id) ? t->arena + t->text_off[id] : NULL;
}

int tokenizer_token_id(const tokenizer *t, const char *token_text) {
    return str_index_get(&t->by_text, t->arena, token_text, strlen(token_text));
}

int tokenizer_is_special(const tokenizer *t, int id) {
    return valid_id(t, id) && (t->flags[id] & TOK_SPECIAL) != 0;
}

int tokenizer_is_added(const tokenizer *t, int id) {
    return valid_id(t, id) && (t->flags[id] & TOK_ADDED) != 0;
}

int tokenizer_bos_id(const tokenizer *t) { return t->bos_id; }
int tokenizer_eos_id(const tokenizer *t) { return t->eos_id; }
int tokenizer_pad_id(const tokenizer *t) { return t->pad_id; }
int tokenizer_add_bos(const tokenizer *t) { return t->add_bos; }
const char *tokenizer_chat_template(const tokenizer *t) { return t->chat_template; }
const char *tokenizer_path(const tokenizer *t) { return t->path; }

/* The "a b" strings are only needed for GGUF export, so they are made the first time they are
 * asked for (under a lock: the tokenizer is otherwise read-only and shared between threads). */
const char *const *tokenizer_merges(const tokenizer *t, int *n_merges) {
    tokenizer *w = (tokenizer *)t;
    *n_merges = t->n_merges;
    pthread_mutex_lock(&w->merge_lock);
    if (!t->merge_text && t->n_merges) {
        size_t total = 0;
        for (int i = 0; i < t->n_merges; i++)
            total += t->text_len[t->merge_pair[2 * i]] + t->text_len[t->merge_pair[2 * i + 1]] + 2;
        char *block = xmalloc(total);
        const char **mt = xmalloc(sizeof *mt * (size_t)t->n_merges);
        char *p = block;
        for (int i = 0; i < t->n_merges; i++) {
            uint32_t a = t->merge_pair[2 * i], b = t->merge_pair[2 * i + 1];
            mt[i] = p;
            memcpy(p, t->arena + t->text_off[a], t->text_len[a]);
            p += t->text_len[a];
            *p++ = ' ';
            memcpy(p, t->arena + t->text_off[b], t->text_len[b]);
            p += t->text_len[b];
            *p++ = 0;
        }
        w->merge_text = mt;
    }
    pthread_mutex_unlock(&w->merge_lock);
    return t->merge_text;
}
