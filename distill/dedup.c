/* Hash sets for curation: exact duplicates, near duplicates (MinHash + LSH bands) and the
 * benchmark n-grams of decontamination (rules in distill/curate.h). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/hash.h"
#include "distill/curate.h"

/* ---- u64_set -------------------------------------------------------------------------------- */

static void u64_set_grow(u64_set *s) {
    int64_t cap = s->cap ? 2 * s->cap : 1024;
    uint64_t *k = xcalloc((size_t)cap, sizeof *k);
    for (int64_t i = 0; i < s->cap; i++) {
        uint64_t key = s->k[i];
        if (!key) continue;
        int64_t j = (int64_t)(hash_mix64(key) & (uint64_t)(cap - 1));
        while (k[j]) j = (j + 1) & (cap - 1);
        k[j] = key;
    }
    free(s->k);
    s->k = k;
    s->cap = cap;
}

int u64_set_add(u64_set *s, uint64_t key) {
    if (key == 0) {
        if (s->has_zero) return 0;
        s->has_zero = 1;
        return 1;
    }
    if (2 * (s->n + 1) > s->cap) u64_set_grow(s);
    int64_t j = (int64_t)(hash_mix64(key) & (uint64_t)(s->cap - 1));
    while (s->k[j]) {
        if (s->k[j] == key) return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->k[j] = key;
    s->n++;
    return 1;
}

int u64_set_has(const u64_set *s, uint64_t key) {
    if (key == 0) return s->has_zero;
    if (!s->cap) return 0;
    int64_t j = (int64_t)(hash_mix64(key) & (uint64_t)(s->cap - 1));
    while (s->k[j]) {
        if (s->k[j] == key) return 1;
        j = (j + 1) & (s->cap - 1);
    }
    return 0;
}

void u64_set_free(u64_set *s) {
    free(s->k);
    memset(s, 0, sizeof *s);
}

/* ---- exact duplicates ----------------------------------------------------------------------- */

static int ws_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int exact_index_check(exact_index *x, const char *text, size_t len, int add) {
    /* Two independent 64-bit hashes of the normalised bytes (FNV-1a, and a splitmix chain),
     * kept in two sets: a false match needs both to be present already. */
    uint64_t a = HASH_FNV1A64_INIT, b = HASH_GOLDEN64;
    int pending_space = 0, any = 0;
    for (size_t i = 0; i < len; i++) {
        if (ws_byte(text[i])) {
            pending_space = any;
            continue;
        }
        if (pending_space) {
            a = hash_fnv1a64_update(a, " ", 1);
            b = hash_mix64(b ^ ' ');
            pending_space = 0;
        }
        a = hash_fnv1a64_update(a, text + i, 1);
        b = hash_mix64(b ^ (unsigned char)text[i]);
        any = 1;
    }
    if (u64_set_has(&x->a, a) && u64_set_has(&x->b, b)) return 1;
    if (add) {
        u64_set_add(&x->a, a);
        u64_set_add(&x->b, b);
    }
    return 0;
}

void exact_index_free(exact_index *x) {
    u64_set_free(&x->a);
    u64_set_free(&x->b);
}

/* ---- MinHash -------------------------------------------------------------------------------- */

int minhash_signature(uint32_t *sig, const char *text, size_t len) {
    word_list w = {0};
    words_split(&w, text, len, WORDS_FOLD);
    if (w.n == 0) {
        word_list_free(&w);
        return 0;
    }
    /* Permutation p maps a shingle hash x to the high 32 bits of a[p] * x + b[p] (mod 2^64):
     * multiply-shift hashing (Dietzfelbinger et al. 1997) with odd a[p]; a and b are splitmix64
     * outputs, fixed for every run. */
    uint64_t a[MINHASH_PERMS], b[MINHASH_PERMS];
    for (int p = 0; p < MINHASH_PERMS; p++) {
        a[p] = hash_mix64(2 * (uint64_t)p + 1) | 1;
        b[p] = hash_mix64(2 * (uint64_t)p + 2);
        sig[p] = UINT32_MAX;
    }
    const int k = w.n < MINHASH_SHINGLE ? (int)w.n : MINHASH_SHINGLE;
    for (int64_t i = 0; i + k <= w.n; i++) {
        const uint64_t x = words_ngram_hash(w.h + i, k);
        for (int p = 0; p < MINHASH_PERMS; p++) {
            uint32_t v = (uint32_t)((a[p] * x + b[p]) >> 32);
            sig[p] = v < sig[p] ? v : sig[p];
        }
    }
    word_list_free(&w);
    return 1;
}

/* Band tables: key -> the last signature added with that band value; chains link earlier
 * ones (next[sig * BANDS + band]). */
typedef struct {
    uint64_t *key;
    int32_t *head;  /* -1: empty slot */
    int64_t n, cap;
} band_map;

struct near_index {
    double threshold;
    uint32_t *sigs;     /* [n, MINHASH_PERMS] */
    int32_t *next;      /* [n, MINHASH_BANDS] */
    int64_t n, cap;
    band_map bands[MINHASH_BANDS];
    int32_t *seen;      /* [cap]: the query stamp that last looked at a signature */
    int32_t stamp;
};

static void band_grow(band_map *m) {
    int64_t cap = m->cap ? 2 * m->cap : 1024;
    uint64_t *key = xmalloc(sizeof *key * (size_t)cap);
    int32_t *head = xmalloc(sizeof *head * (size_t)cap);
    for (int64_t i = 0; i < cap; i++) head[i] = -1;
    for (int64_t i = 0; i < m->cap; i++) {
        if (m->head[i] < 0) continue;
        int64_t j = (int64_t)(hash_mix64(m->key[i]) & (uint64_t)(cap - 1));
        while (head[j] >= 0) j = (j + 1) & (cap - 1);
        key[j] = m->key[i];
        head[j] = m->head[i];
    }
    free(m->key);
    free(m->head);
    m->key = key;
    m->head = head;
    m->cap = cap;
}

/* The slot of key (an empty one if absent). */
static int64_t band_slot(const band_map *m, uint64_t key) {
    int64_t j = (int64_t)(hash_mix64(key) & (uint64_t)(m->cap - 1));
    while (m->head[j] >= 0 && m->key[j] != key) j = (j + 1) & (m->cap - 1);
    return j;
}

static uint64_t band_key(const uint32_t *sig, int band) {
    uint64_t h = hash_mix64(HASH_GOLDEN64 + (uint64_t)band);
    for (int r = 0; r < MINHASH_ROWS; r++) h = hash_mix64(h ^ sig[band * MINHASH_ROWS + r]);
    return h;
}

near_index *near_index_create(double threshold) {
    near_index *x = xcalloc(1, sizeof *x);
    x->threshold = threshold;
    for (int b = 0; b < MINHASH_BANDS; b++) band_grow(&x->bands[b]);
    return x;
}

int near_index_check(near_index *x, const char *text, size_t len, int add, double *similarity) {
    uint32_t sig[MINHASH_PERMS];
    if (similarity) *similarity = 0;
    if (!minhash_signature(sig, text, len)) return 0;
    const int need = (int)(x->threshold * MINHASH_PERMS + 0.999999);
    int best = 0;
    x->stamp++;
    for (int b = 0; b < MINHASH_BANDS; b++) {
        band_map *m = &x->bands[b];
        int64_t j = band_slot(m, band_key(sig, b));
        for (int32_t c = m->head[j]; c >= 0; c = x->next[(int64_t)c * MINHASH_BANDS + b]) {
            if (x->seen[c] == x->stamp) continue;
            x->seen[c] = x->stamp;
            const uint32_t *o = x->sigs + (int64_t)c * MINHASH_PERMS;
            int same = 0;
            for (int p = 0; p < MINHASH_PERMS; p++) same += o[p] == sig[p];
            if (same > best) best = same;
        }
    }
    if (similarity) *similarity = (double)best / MINHASH_PERMS;
    if (best >= need && best > 0) return 1;
    if (!add) return 0;
    if (x->n == INT32_MAX) die(R1_ERUNTIME, "curate", "more than 2^31 texts in one dedup index");
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 1024;
        x->sigs = xrealloc(x->sigs, sizeof(uint32_t) * MINHASH_PERMS * (size_t)x->cap);
        x->next = xrealloc(x->next, sizeof(int32_t) * MINHASH_BANDS * (size_t)x->cap);
        x->seen = xrealloc(x->seen, sizeof(int32_t) * (size_t)x->cap);
    }
    const int32_t id = (int32_t)x->n++;
    memcpy(x->sigs + (int64_t)id * MINHASH_PERMS, sig, sizeof sig);
    x->seen[id] = 0;
    for (int b = 0; b < MINHASH_BANDS; b++) {
        band_map *m = &x->bands[b];
        if (2 * (m->n + 1) > m->cap) band_grow(m);
        uint64_t k = band_key(sig, b);
        int64_t j = band_slot(m, k);
        if (m->head[j] < 0) {
            m->key[j] = k;
            m->n++;
        }
        x->next[(int64_t)id * MINHASH_BANDS + b] = m->head[j];
        m->head[j] = id;
    }
    return 0;
}

void near_index_free(near_index *x) {
    if (!x) return;
    for (int b = 0; b < MINHASH_BANDS; b++) {
        free(x->bands[b].key);
        free(x->bands[b].head);
    }
    free(x->sigs);
    free(x->next);
    free(x->seen);
    free(x);
}

/* ---- decontamination n-grams ---------------------------------------------------------------- */

void ngram_index_add(ngram_index *x, const char *text, size_t len) {
    word_list w = {0};
    words_split(&w, text, len, WORDS_FOLD);
    if (w.n > 0 && w.n < x->n) u64_set_add(&x->grams, words_ngram_hash(w.h, (int)w.n));
    for (int64_t i = 0; i + x->n <= w.n; i++) u64_set_add(&x->grams, words_ngram_hash(w.h + i, x->n));
    x->questions++;
    word_list_free(&w);
}

int ngram_index_hits(const ngram_index *x, const char *text, size_t len) {
    word_list w = {0};
    words_split(&w, text, len, WORDS_FOLD);
    int hit = 0;
    if (w.n > 0 && w.n < x->n) hit = u64_set_has(&x->grams, words_ngram_hash(w.h, (int)w.n));
    for (int64_t i = 0; !hit && i + x->n <= w.n; i++)
        hit = u64_set_has(&x->grams, words_ngram_hash(w.h + i, x->n));
    word_list_free(&w);
    return hit;
}

void ngram_index_free(ngram_index *x) { u64_set_free(&x->grams); }
