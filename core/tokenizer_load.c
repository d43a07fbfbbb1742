/* Reading tokenizer.json (and tokenizer_config.json beside it) into a tokenizer.
 *
 * Mirrors how the HF `tokenizers` library deserialises a tokenizer: the BPE model first
 * (vocab, then merges resolved against it), then added_tokens one by one through
 * AddedVocabulary::add_tokens (an added token whose content is in the vocab takes that id;
 * others take the next id past the vocabulary), then the pipeline parts. Anything this reader
 * would handle differently from HF is refused with a message listing what is supported. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/json_inplace.h"
#include "core/tokenizer_internal.h"
#include <stdatomic.h>

#define SUPPORTED                                                                              \
    "supported: model BPE; normalizer none, NFC or a Sequence of those; pre_tokenizer "       \
    "ByteLevel, Split (Regex or String pattern, Isolated behaviour) or a Sequence of those; "  \
    "post_processor none, ByteLevel, TemplateProcessing or a Sequence of those; decoder "       \
    "ByteLevel"

enum { MAX_TOKENIZER_JSON = 1u << 30, MAX_CONFIG_JSON = 64u << 20, MAX_IDS = 1 << 26 };

/* ---- byte-level alphabet (GPT-2's bytes_to_unicode) ----------------------------------- */

static int printable_byte(uint32_t b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* The other 68 bytes map, in increasing order, to U+0100.. U+0143. */
uint32_t bytelevel_char(uint8_t b) {
    if (printable_byte(b)) return b;
    if (b <= 32) return 256u + b;
    if (b <= 160) return 256u + 33u + (uint32_t)(b - 127);
    return 256u + 67u; /* 173, the soft hyphen */
}

int bytelevel_byte(uint32_t cp) {
    if (cp < 256) return printable_byte(cp) ? (int)cp : -1;
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(127 + cp - 289);
    if (cp == 256 + 67) return 173;
    return -1;
}

/* ---- building blocks -------------------------------------------------------------------- */

/* Reserves n + 1 bytes (the last a NUL) and returns their offset. */
static uint32_t arena_alloc(tokenizer *t, size_t n) {
    if (t->arena_len + n + 1 > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap : 1 << 16;
        while (cap < t->arena_len + n + 1) cap *= 2;
        t->arena = xrealloc(t->arena, cap);
        t->arena_cap = cap;
    }
    CHECK(t->arena_len + n + 1 < UINT32_MAX);
    uint32_t off = (uint32_t)t->arena_len;
    t->arena[off + n] = 0;
    t->arena_len += n + 1;
    return off;
}

static uint32_t arena_add(tokenizer *t, const void *s, size_t n) {
    uint32_t off = arena_alloc(t, n);
    if (n) memcpy(t->arena + off, s, n);
    return off;
}

/* Grows the per-id arrays to hold ids below n; new ids are holes. */
static void ensure_ids(tokenizer *t, int n) {
    if (n <= t->n_ids) return;
    size_t k = (size_t)n;
    t->text_off = xrealloc(t->text_off, sizeof *t->text_off * k);
    t->text_len = xrealloc(t->text_len, sizeof *t->text_len * k);
    t->bytes_off = xrealloc(t->bytes_off, sizeof *t->bytes_off * k);
    t->bytes_len = xrealloc(t->bytes_len, sizeof *t->bytes_len * k);
    t->flags = xrealloc(t->flags, k);
    uint32_t empty = arena_add(t, "", 0);
    for (int i = t->n_ids; i < n; i++) {
        t->text_off[i] = t->bytes_off[i] = empty;
        t->text_len[i] = t->bytes_len[i] = 0;
        t->flags[i] = 0;
    }
    t->n_ids = n;
}

/* The byte each code point below U+0144 stands for in the byte-level alphabet, or -1: every
 * character of the alphabet is one or two bytes of UTF-8, so one table decodes them all. */
static int16_t bl_table[0x144];
static pthread_once_t bl_once = PTHREAD_ONCE_INIT;

static void bl_init(void) {
    for (uint32_t cp = 0; cp < 0x144; cp++) bl_table[cp] = (int16_t)bytelevel_byte(cp);
}

static void set_bytes(tokenizer *t, int id, uint32_t soff, size_t n) {
    const unsigned char *u = (const unsigned char *)t->arena + soff;
    /* Printable ASCII stands for itself: such a token's bytes are its text. */
    size_t i = 0;
    while (i < n && u[i] >= 33 && u[i] <= 126) i++;
    if (i == n) {
        t->bytes_off[id] = soff;
        t->bytes_len[id] = (uint32_t)n;
        t->flags[id] &= (uint8_t)~TOK_RAW_TEXT;
        return;
    }
    /* Decode into the arena after the string: the bytes are never longer than it. */
    uint32_t boff = arena_alloc(t, n);
    t->arena_len = boff; /* given back below, once the length is known */
    char *w = t->arena + boff;
    u = (const unsigned char *)t->arena + soff; /* the arena may have moved */
    memcpy(w, u, i);
    size_t k = i;
    int raw = 0;
    while (i < n) {
        unsigned char c = u[i];
        int b = -1;
        if (c < 0x80) {
            b = bl_table[c], i += 1;
        } else if (c >= 0xC2 && c <= 0xC5 && i + 1 < n) {
            uint32_t cp = (uint32_t)(c & 0x1F) << 6 | (u[i + 1] & 0x3F);
            if (cp < 0x144) b = bl_table[cp];
            i += 2;
        }
        if (b < 0) {
            raw = 1;
            break;
        }
        w[k++] = (char)b;
    }
    if (raw) {
        t->bytes_off[id] = soff;
        t->bytes_len[id] = (uint32_t)n;
        t->flags[id] |= TOK_RAW_TEXT;
    } else {
        w[k] = 0;
        t->bytes_off[id] = (uint32_t)t->arena_len;
        t->bytes_len[id] = (uint32_t)k;
        t->arena_len += k + 1;
        t->flags[id] &= (uint8_t)~TOK_RAW_TEXT;
    }
}

/* Sets id's text and the bytes the ByteLevel decoder turns it into: each character of the
 * byte-level alphabet is its byte; a token with any other character decodes to its own UTF-8
 * (tokenizers' ByteLevel::decode_chain falls back to the token's bytes). */
static void set_token(tokenizer *t, int id, const char *s, size_t n) {
    uint32_t toff = arena_add(t, s, n);
    t->text_off[id] = toff;
    t->text_len[id] = (uint32_t)n;
    set_bytes(t, id, toff, n);
}

static int get_flag(const jin_doc *d, uint32_t obj, const char *key, int def, int *out,
                    const char *where, const char *path) {
    uint32_t i;
    int rc = jin_member(d, obj, key, JIN_TRUE, &i, where, path);
    if (rc < 0) return R1_EINPUT;
    *out = rc ? d->nodes[i].type == JIN_TRUE : def;
    return R1_OK;
}

static const char *type_of(const jin_doc *d, uint32_t obj) {
    uint32_t i = jin_get(d, obj, "type");
    return i && d->nodes[i].type == JIN_STR ? jin_str(d, &d->nodes[i]) : NULL;
}

static int unsupported(const char *where, const char *part, const char *what) {
    err_fail(R1_EINPUT, where, "unsupported %s %s", part, what);
    return err_hint(SUPPORTED);
}

/* ---- model: BPE ------------------------------------------------------------------------- */

static int load_vocab(tokenizer *t, const jin_doc *d, uint32_t vocab, const char *where) {
    const jin_node *v = jin_at(d, vocab);
    int64_t max_id = -1;
    for (uint32_t c = jin_first(d, vocab); c; c = jin_next_in(d, vocab, c)) {
        int64_t id;
        if (jin_int(d, jin_at(d, c), &id) || id < 0 || id >= MAX_IDS)
            return err_fail(R1_EINPUT, where, "model.vocab[\"%s\"]: id must be an integer in [0, %d)",
                            jin_key(d, jin_at(d, c)), MAX_IDS);
        if (id > max_id) max_id = id;
    }
    /* Dense files are the norm; a huge gap would only make us allocate for nothing. */
    if (max_id >= (int64_t)v->n * 2 + 65536)
        return err_fail(R1_EINPUT, where,
                        "model.vocab: largest id %lld is far beyond its %u entries",
                        (long long)max_id, v->n);
    ensure_ids(t, (int)max_id + 1);
    str_index_init(&t->by_text, v->n + 1024);
    if (t->ignore_merges) str_index_init(&t->by_bytes, v->n + 16);
    /* Inserts run PIPE entries behind the hashing, whose slots are prefetched meanwhile:
     * random probes into a table of megabytes otherwise dominate the load time. */
    enum { PIPE = 16 };
    uint32_t ring_node[PIPE], ring_hash[PIPE];
    uint32_t c = jin_first(d, vocab);
    for (uint32_t i = 0; i < v->n + PIPE; i++) {
        if (i >= PIPE) {
            const jin_node *e = jin_at(d, ring_node[i % PIPE]);
            int64_t id;
            jin_int(d, e, &id);
            if (t->flags[id] & TOK_IN_VOCAB)
                return err_fail(R1_EINPUT, where, "model.vocab: id %lld is given to \"%s\" and "
                                "\"%s\"", (long long)id, t->arena + t->text_off[id], jin_key(d, e));
            t->flags[id] |= TOK_IN_VOCAB;
            set_token(t, (int)id, jin_key(d, e), e->key_len);
            if (str_index_put_h(&t->by_text, t->arena, t->text_off[id], t->text_len[id],
                                (int)id, ring_hash[i % PIPE]) != id)
                return err_fail(R1_EINPUT, where, "model.vocab: \"%s\" appears twice", jin_key(d, e));
            /* The bytes index serves only ignore_merges: only Llama-3-style files pay for it. */
            if (t->ignore_merges && !(t->flags[id] & TOK_RAW_TEXT))
                str_index_put(&t->by_bytes, t->arena, t->bytes_off[id], t->bytes_len[id], (int)id);
        }
        if (i < v->n) {
            const jin_node *e = jin_at(d, c);
            ring_node[i % PIPE] = c;
            ring_hash[i % PIPE] = tok_hash(jin_key(d, e), e->key_len);
            str_index_prefetch(&t->by_text, ring_hash[i % PIPE]);
            c = jin_next_in(d, vocab, c);
        }
    }
    for (int b = 0; b < 256; b++) {
        char u[4];
        uint32_t cp = bytelevel_char((uint8_t)b);
        size_t n = cp < 0x80 ? 1 : 2;
        if (n == 1) u[0] = (char)cp;
        else u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F));
        t->byte_id[b] = str_index_get(&t->by_text, t->arena, u, n);
    }
    return R1_OK;
}

static int vocab_lookup(const tokenizer *t, const char *s, size_t n) {
    return str_index_get(&t->by_text, t->arena, s, n);
}

/* One merge on its way through the load pipeline (see load_merges). */
typedef struct {
    const char *a, *b;
    uint32_t na, nb, ha, hb, hcat;
    char *cat;          /* a then b; `buf` when it fits */
    char buf[192];
    int rank;
    int32_t ia, ib, im; /* resolved ids, for the last stage */
} merge_job;

/* Stage 1: parse, hash and prefetch the vocabulary slots. */
static int merge_parse(tokenizer *t, const jin_doc *d, uint32_t c, int rank, merge_job *j,
                       const char *where) {
    const jin_node *e = jin_at(d, c);
    if (e->type == JIN_STR) {
        /* "a b": exactly one space, as tokenizers' convert_merges_to_hashmap demands. */
        const char *sp = memchr(jin_str(d, e), ' ', e->len);
        if (!sp || memchr(sp + 1, ' ', e->len - (size_t)(sp + 1 - jin_str(d, e))))
            return err_fail(R1_EINPUT, where, "model.merges[%d]: \"%s\" is not two tokens "
                            "separated by one space", rank, jin_str(d, e));
        j->a = jin_str(d, e), j->na = (uint32_t)(sp - jin_str(d, e)), j->b = sp + 1, j->nb = e->len - j->na - 1;
    } else if (e->type == JIN_ARR && e->n == 2 && jin_at(d, c + 1)->type == JIN_STR &&
               jin_at(d, c + 2)->type == JIN_STR) {
        j->a = jin_str(d, jin_at(d, c + 1)), j->na = jin_at(d, c + 1)->len;
        j->b = jin_str(d, jin_at(d, c + 2)), j->nb = jin_at(d, c + 2)->len;
    } else {
        return err_fail(R1_EINPUT, where, "model.merges[%d]: must be \"a b\" or [\"a\", \"b\"]",
                        rank);
    }
    size_t n = (size_t)j->na + j->nb;
    j->cat = n + 1 <= sizeof j->buf ? j->buf : xmalloc(n + 1);
    memcpy(j->cat, j->a, j->na);
    memcpy(j->cat + j->na, j->b, j->nb);
    j->cat[n] = 0;
    j->rank = rank;
    j->ha = tok_hash(j->a, j->na);
    j->hb = tok_hash(j->b, j->nb);
    j->hcat = tok_hash(j->cat, n);
    str_index_prefetch(&t->by_text, j->ha);
    str_index_prefetch(&t->by_text, j->hb);
    str_index_prefetch(&t->by_text, j->hcat);
    return R1_OK;
}

/* Stage 2: the slots have arrived; prefetch the token texts they point at, which the
 * comparisons of stage 3 read. */
static void merge_touch(tokenizer *t, merge_job *j) {
    str_index_prefetch_text(&t->by_text, t->arena, j->ha);
    str_index_prefetch_text(&t->by_text, t->arena, j->hb);
    str_index_prefetch_text(&t->by_text, t->arena, j->hcat);
}

/* Stage 3: resolve the three tokens (a, b, a+b must all be in the vocabulary, as the HF BPE
 * builder demands) and prefetch the merge slot. */
static int merge_resolve(tokenizer *t, merge_job *j, const char *where) {
    j->ia = str_index_get_h(&t->by_text, t->arena, j->a, j->na, j->ha);
    j->ib = str_index_get_h(&t->by_text, t->arena, j->b, j->nb, j->hb);
    j->im = str_index_get_h(&t->by_text, t->arena, j->cat, (size_t)j->na + j->nb, j->hcat);
    if (j->ia < 0 || j->ib < 0 || j->im < 0) {
        char *bad = j->ia < 0 ? xstrndup(j->a, j->na) : j->ib < 0 ? xstrndup(j->b, j->nb)
                                                                  : xstrdup(j->cat);
        err_fail(R1_EINPUT, where, "model.merges[%d]: token \"%s\" is not in the vocab", j->rank,
                 bad);
        free(bad);
        return R1_EINPUT;
    }
    merge_index_prefetch(&t->merges, (uint32_t)j->ia, (uint32_t)j->ib);
    return R1_OK;
}

/* Stage 3: record the merge; its "a b" text is made on demand (tokenizer_merges). */
static void merge_store(tokenizer *t, merge_job *j) {
    merge_index_put(&t->merges, (uint32_t)j->ia, (uint32_t)j->ib, (uint32_t)j->rank,
                    (uint32_t)j->im);
    t->merge_pair[2 * j->rank] = (uint32_t)j->ia;
    t->merge_pair[2 * j->rank + 1] = (uint32_t)j->ib;
    if (j->cat != j->buf) free(j->cat);
    j->cat = NULL;
}

/* Merges go through four stages PIPE apart, so the random memory reads of each stage find their
 * cache lines already fetched by the stage before. */
static int load_merges(tokenizer *t, const jin_doc *d, uint32_t merges, const char *where) {
    enum { PIPE = 6, RING = 4 * PIPE };
    const jin_node *m = jin_at(d, merges);
    merge_index_init(&t->merges, m->n + 16);
    t->merge_pair = xmalloc(sizeof *t->merge_pair * 2 * ((size_t)m->n + 1));
    merge_job *ring = xcalloc(RING, sizeof *ring);
    int n = (int)m->n, rc = R1_OK;
    uint32_t c = jin_first(d, merges);
    for (int i = 0; i < n + 3 * PIPE && !rc; i++) {
        if (i < n) {
            rc = merge_parse(t, d, c, i, &ring[i % RING], where);
            c = jin_next_in(d, merges, c);
        }
        if (!rc && i >= PIPE && i - PIPE < n) merge_touch(t, &ring[(i - PIPE) % RING]);
        if (!rc && i >= 2 * PIPE && i - 2 * PIPE < n)
            rc = merge_resolve(t, &ring[(i - 2 * PIPE) % RING], where);
        if (!rc && i >= 3 * PIPE) merge_store(t, &ring[(i - 3 * PIPE) % RING]);
    }
    for (int i = 0; i < RING; i++)
        if (ring[i].cat && ring[i].cat != ring[i].buf) free(ring[i].cat);
    free(ring);
    if (rc) return rc;
    t->n_merges = n;
    return R1_OK;
}

static int load_model(tokenizer *t, const jin_doc *d, const char *where) {
    uint32_t model, vocab, merges, x;
    int rc = jin_member(d, 0, "model", JIN_OBJ, &model, where, NULL);
    if (rc <= 0) return rc < 0 ? R1_EINPUT : err_fail(R1_EINPUT, where, "no \"model\" object");
    const char *type = type_of(d, model);
    if (type && strcmp(type, "BPE") != 0) return unsupported(where, "model", type);
    if (jin_member(d, model, "vocab", JIN_OBJ, &vocab, where, "model") <= 0 ||
        jin_member(d, model, "merges", JIN_ARR, &merges, where, "model") <= 0)
        return err_fail(R1_EINPUT, where, "model: a BPE model needs \"vocab\" (an object) and "
                        "\"merges\" (an array)");
    /* Options that would change the result and that byte-level BPE files leave unset. */
    rc = jin_member(d, model, "dropout", JIN_NUM, &x, where, "model");
    if (rc < 0) return R1_EINPUT;
    if (rc > 0 && jin_num(d, jin_at(d, x)) != 0.0)
        return unsupported(where, "model option", "dropout (must be null or 0)");
    static const char *const empty_str[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        rc = jin_member(d, model, empty_str[i], JIN_STR, &x, where, "model");
        if (rc < 0) return R1_EINPUT;
        if (rc > 0 && jin_at(d, x)->len)
            return err_fail(R1_EINPUT, where, "unsupported model.%s \"%s\" (must be null or "
                            "empty for byte-level BPE)", empty_str[i], jin_str(d, jin_at(d, x)));
    }
    int byte_fallback;
    TRY(get_flag(d, model, "byte_fallback", 0, &byte_fallback, where, "model"));
    if (byte_fallback) return unsupported(where, "model option", "byte_fallback (must be false)");
    TRY(get_flag(d, model, "ignore_merges", 0, &t->ignore_merges, where, "model")); /* before vocab */
    TRY(get_flag(d, model, "fuse_unk", 0, &t->fuse_unk, where, "model"));
    TRY(load_vocab(t, d, vocab, where));
    TRY(load_merges(t, d, merges, where));
    t->unk_id = -1;
    rc = jin_member(d, model, "unk_token", JIN_STR, &x, where, "model");
    if (rc < 0) return R1_EINPUT;
    if (rc > 0) {
        t->unk_id = vocab_lookup(t, jin_str(d, jin_at(d, x)), jin_at(d, x)->len);
        if (t->unk_id < 0)
            return err_fail(R1_EINPUT, where, "model.unk_token \"%s\" is not in the vocab",
                            jin_str(d, jin_at(d, x)));
    }
    return R1_OK;
}

/* ---- normalizer ------------------------------------------------------------------------- */

/* A loader of one tokenizer.json component (normalizer, pre_tokenizer, post_processor). */
typedef int (*component_loader)(tokenizer *t, const jin_doc *d, uint32_t node, const char *where,
                                int depth);

/* A "Sequence" component: every item of its `key` array, loaded in order by `load`. */
static int load_sequence(tokenizer *t, const jin_doc *d, uint32_t node, const char *key,
                         const char *kind, component_loader load, const char *where, int depth) {
    uint32_t list;
    if (jin_member(d, node, key, JIN_ARR, &list, where, kind) <= 0)
        return err_fail(R1_EINPUT, where, "%s: a Sequence needs \"%s\"", kind, key);
    for (uint32_t c = jin_first(d, list); c; c = jin_next_in(d, list, c)) {
        if (jin_at(d, c)->type != JIN_OBJ)
            return err_fail(R1_EINPUT, where, "%s: Sequence items must be objects", kind);
        TRY(load(t, d, c, where, depth + 1));
    }
    return R1_OK;
}

static int load_normalizer(tokenizer *t, const jin_doc *d, uint32_t n, const char *where,
                           int depth) {
    if (depth > 8) return unsupported(where, "normalizer", "nesting (too deep)");
    const char *type = type_of(d, n);
    if (!type) return err_fail(R1_EINPUT, where, "normalizer: no \"type\"");
    if (strcmp(type, "NFC") == 0) {
        t->nfc = 1;
        return R1_OK;
    }
    if (strcmp(type, "Sequence") == 0)
        return load_sequence(t, d, n, "normalizers", "normalizer", load_normalizer, where, depth);
    return unsupported(where, "normalizer", type);
}

/* ---- added tokens ----------------------------------------------------------------------- */

static void trie_add(added_trie *tr, const char *s, size_t n, int token) {
    if (!tr->nodes) {
        tr->cap = 64;
        tr->nodes = xmalloc(sizeof *tr->nodes * (size_t)tr->cap);
        tr->nodes[0] = (trie_node){-1, -1, -1, 0};
        tr->n = 1;
        for (int i = 0; i < 256; i++) tr->first[i] = -1;
    }
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t *link = node == 0 ? &tr->first[b] : &tr->nodes[node].child;
        int32_t c = *link;
        while (c >= 0 && tr->nodes[c].byte != b) c = tr->nodes[c].sibling;
        if (c < 0) {
            if (tr->n == tr->cap) {
                tr->cap *= 2;
                tr->nodes = xrealloc(tr->nodes, sizeof *tr->nodes * (size_t)tr->cap);
                link = node == 0 ? &tr->first[b] : &tr->nodes[node].child;
            }
            c = tr->n++;
            tr->nodes[c] = (trie_node){-1, *link, -1, b};
            *link = c;
        }
        node = c;
    }
    /* A content added again keeps its first pattern, as aho-corasick prefers the lower
     * pattern index among equal matches. */
    if (tr->nodes[node].token < 0) tr->nodes[node].token = token;
}

static int load_added(tokenizer *t, const jin_doc *d, const char *where) {
    uint32_t list;
    int rc = jin_member(d, 0, "added_tokens", JIN_ARR, &list, where, NULL);
    if (rc < 0) return R1_EINPUT;
    if (rc == 0) return R1_OK;
    t->added = xmalloc(sizeof *t->added * (jin_at(d, list)->n + 1));
    const int vocab_size = (int)t->by_text.count; /* tokenizers: model.get_vocab_size() */
    int max_added = -1, k = 0;
    for (uint32_t c = jin_first(d, list); c; c = jin_next_in(d, list, c), k++) {
        if (jin_at(d, c)->type != JIN_OBJ)
            return err_fail(R1_EINPUT, where, "added_tokens[%d] must be an object", k);
        uint32_t content;
        if (jin_member(d, c, "content", JIN_STR, &content, where, "added_tokens") <= 0)
            return err_fail(R1_EINPUT, where, "added_tokens[%d]: no \"content\" string", k);
        added_token a = {0};
        int sw, ls, rs, nm, sp;
        TRY(get_flag(d, c, "single_word", 0, &sw, where, "added_tokens"));
        TRY(get_flag(d, c, "lstrip", 0, &ls, where, "added_tokens"));
        TRY(get_flag(d, c, "rstrip", 0, &rs, where, "added_tokens"));
        TRY(get_flag(d, c, "normalized", 1, &nm, where, "added_tokens"));
        TRY(get_flag(d, c, "special", 0, &sp, where, "added_tokens"));
        a.single_word = (uint8_t)sw, a.lstrip = (uint8_t)ls, a.rstrip = (uint8_t)rs;
        a.normalized = (uint8_t)nm, a.special = (uint8_t)sp;
        const jin_node *cn = jin_at(d, content);
        if (cn->len == 0) continue; /* tokenizers ignores empty tokens */
        /* AddedVocabulary::add_tokens: the content's existing id (added or vocab), else the
         * next id past both the vocabulary and the added tokens so far. */
        int id = vocab_lookup(t, jin_str(d, cn), cn->len);
        int existing = -1;
        for (int i = 0; id >= 0 && i < t->n_added; i++)
            if (t->added[i].id == id) existing = i;
        if (existing >= 0) {
            added_token *e = &t->added[existing];
            if (e->special == a.special && e->normalized == a.normalized &&
                e->lstrip == a.lstrip && e->rstrip == a.rstrip && e->single_word == a.single_word)
                continue; /* an exact duplicate */
            /* Same content, new options: they replace the old ones. */
            e->special = a.special, e->normalized = a.normalized, e->lstrip = a.lstrip;
            e->rstrip = a.rstrip, e->single_word = a.single_word;
            t->flags[id] = (uint8_t)((t->flags[id] & ~TOK_SPECIAL) | (a.special ? TOK_SPECIAL : 0));
            continue;
        }
        if (id < 0) {
            id = max_added < 0 ? vocab_size
                 : (max_added >= vocab_size || vocab_size == 0) ? max_added + 1 : vocab_size;
            if (id >= MAX_IDS) return err_fail(R1_EINPUT, where, "added_tokens: too many ids");
        }
        if (id > max_added) max_added = id;
        ensure_ids(t, id + 1);
        int64_t want;
        uint32_t idn;
        if (jin_member(d, c, "id", JIN_NUM, &idn, where, "added_tokens") > 0 &&
            (jin_int(d, jin_at(d, idn), &want) || want != id))
            /* tokenizers only warns and keeps its own id; so do we, but say it loudly in the
             * one place where it can matter. */
            return err_fail(R1_EINPUT, where,
                            "added_tokens[%d] \"%s\" has id %s but the HF tokenizer would give "
                            "it %d (ids must follow the vocabulary in order)",
                            k, jin_str(d, cn), jin_str(d, jin_at(d, idn)), id);
        set_token(t, id, jin_str(d, cn), cn->len);
        t->flags[id] |= TOK_ADDED | (a.special ? TOK_SPECIAL : 0);
        str_index_put(&t->by_text, t->arena, t->text_off[id], t->text_len[id], id);
        a.id = id;
        a.off = t->text_off[id];
        a.len = t->text_len[id];
        t->added[t->n_added++] = a;
    }
    /* The split tries: specials first, then the others, in file order (refresh_added_tokens).
     * Normalized ones are matched on normalized text, so their pattern is normalized too. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < t->n_added; i++) {
            added_token *a = &t->added[i];
            if (a->special != (pass == 0)) continue;
            if (!a->normalized) {
                trie_add(&t->raw_trie, t->arena + a->off, a->len, i);
                a->noff = a->off, a->nlen = a->len;
                continue;
            }
            char *norm = NULL;
            size_t nlen = a->len;
            if (t->nfc) TRY(tok_nfc(t->arena + a->off, a->len, &norm, &nlen));
            if (norm) {
                a->noff = arena_add(t, norm, nlen);
                a->nlen = (uint32_t)nlen;
                free(norm);
                /* tokenizers decodes such a token from its normalized form (normalized_cache),
                 * through the ByteLevel decoder like any other token. */
                if (a->nlen != a->len || memcmp(t->arena + a->noff, t->arena + a->off, a->len) != 0)
                    set_bytes(t, a->id, a->noff, a->nlen);
            } else {
                a->noff = a->off, a->nlen = a->len;
            }
            if (a->nlen) trie_add(&t->norm_trie, t->arena + a->noff, a->nlen, i);
        }
    return R1_OK;
}

/* ---- pre-tokenizer ---------------------------------------------------------------------- */

/* The pattern tokenizers' ByteLevel pre-tokenizer splits with when use_regex is set (GPT-2). */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* tokenizers compiles these patterns with Oniguruma, which has Unicode 16.0 tables where PCRE2
 * 10.42 has 14.0: \p{X} gets the code points category X gained since (core/unicode_delta.c,
 * generated), so Unicode 15 emoji and CJK Extension H/I split as in the HF tokenizer. (A negated
 * \P{X} inside a bracket class keeps PCRE2's view.) Oniguruma's \s is Unicode White_Space. PCRE2's
 * \s (with UCP) also takes U+180E MONGOLIAN VOWEL SEPARATOR, which stopped being a space in
 * Unicode 6.3; everything else agrees (checked character by character against the HF tokenizer).
 * So \s and \S are spelled out as the White_Space set before compiling. A \S inside a bracket
 * class cannot be spelled out there and is left to PCRE2 (no pattern in the files we know has
 * one). */
#define WHITE_SPACE "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"

static char *onig_to_pcre2(const char *pat, size_t n, size_t *out_n) {
    size_t cap = n * 4 + 64, k = 0;
    char *o = xmalloc(cap);
    int in_class = 0;
    for (size_t i = 0; i < n;) {
        if (k + 128 > cap) o = xrealloc(o, cap *= 2);
        char c = pat[i];
        if (c == '\\' && i + 1 < n) {
            char e = pat[i + 1];
            if (e == 'Q') { /* \Q...\E is literal: copy it untouched */
                const char *end = NULL;
                for (size_t j = i + 2; j + 1 < n; j++)
                    if (pat[j] == '\\' && pat[j + 1] == 'E') { end = pat + j + 2; break; }
                size_t len = end ? (size_t)(end - (pat + i)) : n - i;
                while (k + len + 1 > cap) o = xrealloc(o, cap *= 2);
                memcpy(o + k, pat + i, len);
                k += len, i += len;
                continue;
            }
            if (e == 'p' || e == 'P') {
                /* \pL, \p{L}, \p{^L}, \P{L}: add what the category gained after Unicode 14 */
                const char *name = pat + i + 2, *after;
                size_t len;
                if (i + 2 < n && *name == '{') {
                    const char *close = memchr(name, '}', n - (i + 2));
                    if (!close) close = pat + n;
                    name++, len = (size_t)(close - name), after = close < pat + n ? close + 1 : close;
                } else {
                    len = i + 2 < n ? 1 : 0, after = name + len;
                }
                int neg = e == 'P';
                if (len && *name == '^') neg = !neg, name++, len--;
                const char *delta = len ? unicode_delta_class(name, len) : NULL;
                if (delta && *delta && !(in_class && neg)) {
                    size_t dl = strlen(delta);
                    while (k + dl + len + 16 > cap) o = xrealloc(o, cap *= 2);
                    k += (size_t)sprintf(o + k, "%s\\p{%.*s}%s%s", in_class ? "" : neg ? "[^" : "[",
                                         (int)len, name, delta, in_class ? "" : "]");
                } else {
                    size_t raw = (size_t)(after - (pat + i));
                    while (k + raw + 1 > cap) o = xrealloc(o, cap *= 2);
                    memcpy(o + k, pat + i, raw);
                    k += raw;
                }
                i = (size_t)(after - pat);
                continue;
            }
            const char *rep = NULL;
            if (e == 's') rep = in_class ? WHITE_SPACE : "[" WHITE_SPACE "]";
            else if (e == 'S' && !in_class) rep = "[^" WHITE_SPACE "]";
            if (rep) {
                size_t len = strlen(rep);
                memcpy(o + k, rep, len);
                k += len;
            } else {
                o[k++] = c, o[k++] = e;
            }
            i += 2;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            o[k++] = pat[i++];
            if (i < n && pat[i] == '^') o[k++] = pat[i++];
            if (i < n && pat[i] == ']') o[k++] = pat[i++]; /* a leading ] is literal */
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && pat[i + 1] == ':') { /* [:alpha:] */
            const char *end = NULL;
            for (size_t j = i + 2; j + 1 < n; j++)
                if (pat[j] == ':' && pat[j + 1] == ']') { end = pat + j + 2; break; }
            if (end) {
                size_t len = (size_t)(end - (pat + i));
                while (k + len + 1 > cap) o = xrealloc(o, cap *= 2);
                memcpy(o + k, pat + i, len);
                k += len, i += len;
                continue;
            }
        }
        if (in_class && c == ']') in_class = 0;
        o[k++] = pat[i++];
    }
    o[k] = 0;
    *out_n = k;
    return o;
}

static int compile_regex(pretok_step *out, const char *pat, size_t n, int literal,
                         const char *where) {
    int err;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    char *conv = NULL;
    if (!literal) pat = conv = onig_to_pcre2(pat, n, &n);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, n, opts, &err, &off, NULL);
    free(conv);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return err_fail(R1_EINPUT, where, "pre_tokenizer: pattern does not compile (%s)",
                        (const char *)msg);
    }
    /* JIT is a speed-up only: without it (a PCRE2 built without JIT) matching still works. */
    out->jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    out->re = re;
    return R1_OK;
}

static pretok_step *new_step(tokenizer *t) {
    t->steps = xrealloc(t->steps, sizeof *t->steps * (size_t)(t->n_steps + 1));
    pretok_step *s = &t->steps[t->n_steps++];
    memset(s, 0, sizeof *s);
    return s;
}

static int load_pretok(tokenizer *t, const jin_doc *d, uint32_t p, const char *where, int depth) {
    if (depth > 8) return unsupported(where, "pre_tokenizer", "nesting (too deep)");
    const char *type = type_of(d, p);
    if (!type) return err_fail(R1_EINPUT, where, "pre_tokenizer: no \"type\"");
    if (strcmp(type, "Sequence") == 0)
        return load_sequence(t, d, p, "pretokenizers", "pre_tokenizer", load_pretok, where, depth);
    if (strcmp(type, "ByteLevel") == 0) {
        int aps, use_regex;
        TRY(get_flag(d, p, "add_prefix_space", 1, &aps, where, "pre_tokenizer"));
        TRY(get_flag(d, p, "use_regex", 1, &use_regex, where, "pre_tokenizer"));
        pretok_step *s = new_step(t);
        s->kind = PRETOK_BYTELEVEL;
        s->add_prefix_space = aps;
        if (use_regex) TRY(compile_regex(s, GPT2_PATTERN, sizeof GPT2_PATTERN - 1, 0, where));
        return R1_OK;
    }
    if (strcmp(type, "Split") == 0) {
        uint32_t pat = 0, beh = 0, x = 0;
        if (jin_member(d, p, "pattern", JIN_OBJ, &pat, where, "pre_tokenizer") <= 0)
            return err_fail(R1_EINPUT, where, "pre_tokenizer: Split needs a \"pattern\" object");
        if (jin_member(d, p, "behavior", JIN_STR, &beh, where, "pre_tokenizer") <= 0 ||
            strcmp(jin_str(d, jin_at(d, beh)), "Isolated") != 0)
            return unsupported(where, "pre_tokenizer Split behavior",
                               beh ? jin_str(d, jin_at(d, beh)) : "(none)");
        /* With Isolated every match and every gap is its own piece, so invert changes
         * nothing. */
        int literal = 0;
        int rc = jin_member(d, pat, "Regex", JIN_STR, &x, where, "pre_tokenizer.pattern");
        if (rc < 0) return R1_EINPUT;
        if (rc == 0) {
            rc = jin_member(d, pat, "String", JIN_STR, &x, where, "pre_tokenizer.pattern");
            if (rc <= 0)
                return err_fail(R1_EINPUT, where, "pre_tokenizer: Split pattern must be "
                                "{\"Regex\": ...} or {\"String\": ...}");
            literal = 1;
        }
        if (jin_at(d, x)->len == 0)
            return err_fail(R1_EINPUT, where, "pre_tokenizer: Split pattern is empty");
        pretok_step *s = new_step(t);
        s->kind = PRETOK_SPLIT;
        return compile_regex(s, jin_str(d, jin_at(d, x)), jin_at(d, x)->len, literal, where);
    }
    return unsupported(where, "pre_tokenizer", type);
}

/* ---- post-processor and decoder --------------------------------------------------------- */

static void append_ids(int **v, int *n, const int *ids, int k, int front) {
    *v = xrealloc(*v, sizeof **v * (size_t)(*n + k + 1));
    if (front) {
        memmove(*v + k, *v, sizeof **v * (size_t)*n);
        memcpy(*v, ids, sizeof *ids * (size_t)k);
    } else {
        memcpy(*v + *n, ids, sizeof *ids * (size_t)k);
    }
    *n += k;
}

static int load_template(tokenizer *t, const jin_doc *d, uint32_t p, const char *where) {
    uint32_t single = 0, specials = 0;
    if (jin_member(d, p, "single", JIN_ARR, &single, where, "post_processor") <= 0)
        return err_fail(R1_EINPUT, where, "post_processor: TemplateProcessing needs \"single\"");
    if (jin_member(d, p, "special_tokens", JIN_OBJ, &specials, where, "post_processor") < 0)
        return R1_EINPUT;
    int *pre = NULL, *post = NULL, n_pre = 0, n_post = 0, seen_seq = 0, rc = R1_OK;
    for (uint32_t c = jin_first(d, single); c && !rc; c = jin_next_in(d, single, c)) {
        uint32_t item = 0, idn = 0;
        if (jin_member(d, c, "Sequence", JIN_OBJ, &item, where, "post_processor.single") > 0) {
            if (jin_member(d, item, "id", JIN_STR, &idn, where, "post_processor") <= 0 ||
                strcmp(jin_str(d, jin_at(d, idn)), "A") != 0 || seen_seq)
                rc = err_fail(R1_EINPUT, where, "post_processor: \"single\" must hold the "
                              "sequence A once");
            seen_seq = 1;
            continue;
        }
        if (jin_member(d, c, "SpecialToken", JIN_OBJ, &item, where, "post_processor.single") <= 0 ||
            jin_member(d, item, "id", JIN_STR, &idn, where, "post_processor") <= 0) {
            rc = err_fail(R1_EINPUT, where, "post_processor: \"single\" items must be "
                          "{\"Sequence\": ...} or {\"SpecialToken\": ...}");
            break;
        }
        const char *name = jin_str(d, jin_at(d, idn));
        uint32_t spec = specials ? jin_get(d, specials, name) : 0, ids;
        if (!spec || jin_member(d, spec, "ids", JIN_ARR, &ids, where, "post_processor") <= 0) {
            rc = err_fail(R1_EINPUT, where, "post_processor: special token \"%s\" is not in "
                          "special_tokens", name);
            break;
        }
        for (uint32_t e = jin_first(d, ids); e; e = jin_next_in(d, ids, e)) {
            int64_t id;
            if (jin_int(d, jin_at(d, e), &id) || id < 0 || id >= t->n_ids) {
                rc = err_fail(R1_EINPUT, where, "post_processor: special token \"%s\" has an id "
                              "outside the vocabulary", name);
                break;
            }
            int v = (int)id;
            if (seen_seq) append_ids(&post, &n_post, &v, 1, 0);
            else append_ids(&pre, &n_pre, &v, 1, 0);
        }
    }
    if (!rc && !seen_seq)
        rc = err_fail(R1_EINPUT, where, "post_processor: \"single\" has no sequence A");
    if (!rc) {
        /* In a Sequence of processors a later template wraps what the earlier produced. */
        if (n_pre) append_ids(&t->pre_ids, &t->n_pre, pre, n_pre, 1);
        if (n_post) append_ids(&t->post_ids, &t->n_post, post, n_post, 0);
    }
    free(pre);
    free(post);
    return rc;
}

static int load_post(tokenizer *t, const jin_doc *d, uint32_t p, const char *where, int depth) {
    if (depth > 8) return unsupported(where, "post_processor", "nesting (too deep)");
    const char *type = type_of(d, p);
    if (!type) return err_fail(R1_EINPUT, where, "post_processor: no \"type\"");
    if (strcmp(type, "ByteLevel") == 0) return R1_OK; /* only trims offsets */
    if (strcmp(type, "TemplateProcessing") == 0) return load_template(t, d, p, where);
    if (strcmp(type, "Sequence") == 0)
        return load_sequence(t, d, p, "processors", "post_processor", load_post, where, depth);
    return unsupported(where, "post_processor", type);
}

/* ---- tokenizer_config.json -------------------------------------------------------------- */

/* A special token named in tokenizer_config.json: a string or an AddedToken object. */
static int config_token(const cJSON *cfg, const char *key, char **out, const char *where) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!it || cJSON_IsNull(it)) return R1_OK;
    if (cJSON_IsObject(it)) it = cJSON_GetObjectItemCaseSensitive(it, "content");
    if (!cJSON_IsString(it))
        return err_fail(R1_EINPUT, where, "\"%s\" must be a string or an object with \"content\"",
                        key);
    *out = xstrdup(it->valuestring);
    return R1_OK;
}

static int load_config(tokenizer *t, const char *text, size_t len, const char *where) {
    cJSON *cfg;
    TRY(json_parse(&cfg, text, len, where));
    int rc = R1_OK;
    char *pad = NULL;
    if (!cJSON_IsObject(cfg)) {
        rc = err_fail(R1_EINPUT, where, "must be a JSON object");
        goto out;
    }
    if ((rc = config_token(cfg, "bos_token", &t->bos_text, where)) ||
        (rc = config_token(cfg, "eos_token", &t->eos_text, where)) ||
        (rc = config_token(cfg, "pad_token", &pad, where)))
        goto out;
    int add_bos;
    int got = json_get_bool(cfg, "add_bos_token", &add_bos, where);
    if (got < 0) {
        rc = R1_EINPUT;
        goto out;
    }
    if (got) t->add_bos = add_bos;
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsArray(ct)) {
        /* Several named templates: take "default", else the first. */
        const cJSON *pick = NULL, *e;
        cJSON_ArrayForEach(e, ct) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
            const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (!cJSON_IsString(tpl)) continue;
            if (!pick || (cJSON_IsString(name) && strcmp(name->valuestring, "default") == 0))
                pick = tpl;
        }
        ct = pick;
    }
    if (cJSON_IsString(ct)) t->chat_template = xstrdup(ct->valuestring);
    else if (ct && !cJSON_IsNull(ct)) {
        rc = err_fail(R1_EINPUT, where, "\"chat_template\" must be a string or a list of "
                      "{name, template}");
        goto out;
    }
    if (t->bos_text) t->bos_id = tokenizer_token_id(t, t->bos_text);
    if (t->eos_text) t->eos_id = tokenizer_token_id(t, t->eos_text);
    if (pad) t->pad_id = tokenizer_token_id(t, pad);
out:
    free(pad);
    cJSON_Delete(cfg);
    return rc;
}

/* ---- the whole file --------------------------------------------------------------------- */

static int load_doc(tokenizer *t, const jin_doc *d, const char *where) {
    if (d->nodes[0].type != JIN_OBJ) return err_fail(R1_EINPUT, where, "must be a JSON object");
    uint32_t x;
    int rc = jin_member(d, 0, "version", JIN_STR, &x, where, NULL);
    if (rc < 0) return R1_EINPUT;
    if (rc > 0 && strcmp(jin_str(d, jin_at(d, x)), "1.0") != 0)
        return err_fail(R1_EINPUT, where, "unknown tokenizer.json version \"%s\" (1.0 is "
                        "supported)", jin_str(d, jin_at(d, x)));
    static const char *const unused[] = {"truncation", "padding"};
    for (int i = 0; i < 2; i++) {
        uint32_t y = jin_get(d, 0, unused[i]);
        if (y && jin_at(d, y)->type != JIN_NULL)
            return err_fail(R1_EINPUT, where, "\"%s\" is set; this tokenizer never truncates "
                            "or pads: set it to null", unused[i]);
    }
    TRY(load_model(t, d, where));
    rc = jin_member(d, 0, "normalizer", JIN_OBJ, &x, where, NULL);
    if (rc < 0) return R1_EINPUT;
    if (rc > 0) TRY(load_normalizer(t, d, x, where, 0));
    TRY(load_added(t, d, where));
    rc = jin_member(d, 0, "pre_tokenizer", JIN_OBJ, &x, where, NULL);
    if (rc < 0) return R1_EINPUT;
    if (rc > 0) TRY(load_pretok(t, d, x, where, 0));
    rc = jin_member(d, 0, "post_processor", JIN_OBJ, &x, where, NULL);
    if (rc < 0) return R1_EINPUT;
    if (rc > 0) TRY(load_post(t, d, x, where, 0));
    rc = jin_member(d, 0, "decoder", JIN_OBJ, &x, where, NULL);
    if (rc < 0) return R1_EINPUT;
    const char *dtype = rc > 0 ? type_of(d, x) : NULL;
    if (!dtype || strcmp(dtype, "ByteLevel") != 0)
        return unsupported(where, "decoder", dtype ? dtype : "(none)");
    return R1_OK;
}

/* Takes ownership of json (parsed in place). */
static int load_owned(tokenizer **out, char *json, size_t len, const char *config,
                      size_t config_len, const char *where, const char *config_where) {
    *out = NULL;
    pthread_once(&bl_once, bl_init);
    static _Atomic uint32_t next_serial = 1;
    tokenizer *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->merge_lock, NULL);
    t->path = xstrdup(where);
    t->serial = next_serial++;
    if (!t->serial) t->serial = next_serial++; /* after 2^32 loads, skip 0 */
    t->bos_id = t->eos_id = t->pad_id = -1;
    t->add_bos = -1;
    t->unk_id = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    jin_doc d;
    int rc = jin_parse(&d, json, len, where);
    if (!rc) {
        rc = load_doc(t, &d, where);
        jin_free(&d);
    }
    free(json);
    if (!rc && config) rc = load_config(t, config, config_len, config_where);
    if (rc) {
        tokenizer_free(t);
        return rc;
    }
    /* Without a config, what the post-processor adds is the BOS. */
    if (t->bos_id < 0 && t->n_pre == 1) t->bos_id = t->pre_ids[0];
    if (t->add_bos < 0) t->add_bos = t->n_pre > 0 && t->pre_ids[0] == t->bos_id;
    *out = t;
    return R1_OK;
}

int tokenizer_load_mem(tokenizer **out, const char *json, size_t len, const char *config,
                       size_t config_len, const char *where) {
    char *copy = xmalloc(len + 1);
    memcpy(copy, json, len);
    copy[len] = 0;
    return load_owned(out, copy, len, config, config_len, where ? where : "tokenizer.json",
                      "tokenizer_config.json");
}

int tokenizer_load(tokenizer **out, const char *path) {
    *out = NULL;
    char *json_path, *cfg_path;
    if (path_is_dir(path)) {
        json_path = path_join(path, "tokenizer.json");
        cfg_path = path_join(path, "tokenizer_config.json");
    } else {
        json_path = xstrdup(path);
        const char *slash = strrchr(path, '/');
        char *dir = slash ? xstrndup(path, (size_t)(slash - path) + (slash == path)) : xstrdup(".");
        cfg_path = path_join(dir, "tokenizer_config.json");
        free(dir);
    }
    char *json = NULL, *cfg = NULL;
    size_t len = 0, cfg_len = 0;
    int rc = file_read_all(json_path, MAX_TOKENIZER_JSON, &json, &len);
    if (!rc && path_exists(cfg_path)) rc = file_read_all(cfg_path, MAX_CONFIG_JSON, &cfg, &cfg_len);
    if (!rc) rc = load_owned(out, json, len, cfg, cfg_len, json_path, cfg_path);
    else free(json);
    free(cfg);
    free(json_path);
    free(cfg_path);
    return rc;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    bpe_cache_release();
    free(t->path);
    free(t->text_off);
    free(t->text_len);
    free(t->bytes_off);
    free(t->bytes_len);
    free(t->flags);
    free(t->arena);
    str_index_free(&t->by_text);
    str_index_free(&t->by_bytes);
    merge_index_free(&t->merges);
    free(t->merge_pair);
    if (t->merge_text) {
        free((void *)t->merge_text[0]);
        free((void *)t->merge_text);
    }
    pthread_mutex_destroy(&t->merge_lock);
    free(t->added);
    free(t->raw_trie.nodes);
    free(t->norm_trie.nodes);
    for (int i = 0; i < t->n_steps; i++) pcre2_code_free(t->steps[i].re);
    free(t->steps);
    free(t->pre_ids);
    free(t->post_ids);
    free(t->bos_text);
    free(t->eos_text);
    free(t->chat_template);
    free(t);
}
