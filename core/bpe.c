/* Byte-level BPE: the hash indexes the tokenizer is built on and the merge loop.
 *
 * The merge loop reproduces the HF BPE model's Word::merge_all: repeatedly merge the adjacent
 * pair with the lowest merge rank, the leftmost one among equal ranks, until no adjacent pair
 * has a merge. It runs on raw bytes (the byte-level alphabet maps bytes to characters one to
 * one, so this is the same as working on the mapped string). Short words use a flat array
 * with a linear scan for the best pair; long ones (CJK runs can be hundreds of bytes) a binary
 * heap keyed by (rank, position) over a linked list, which is what HF does. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tokenizer_internal.h"

static inline uint64_t load64(const unsigned char *s) {
    uint64_t w;
    memcpy(&w, s, 8);
    return w;
}

static inline uint64_t load32(const unsigned char *s) {
    uint32_t w;
    memcpy(&w, s, 4);
    return w;
}

/* Hash of a short byte string. Every load has a constant size (a variable-size memcpy here
 * would be a library call); tails are read as overlapping words, which the length, mixed in
 * first, keeps apart. */
uint32_t tok_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull);
    if (n >= 8) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            h = (h ^ load64(s + i)) * 0xff51afd7ed558ccdull;
            h ^= h >> 32;
        }
        if (i < n) h ^= load64(s + n - 8);
    } else if (n >= 4) {
        h ^= load32(s) | load32(s + n - 4) << 32;
    } else if (n > 0) {
        h ^= (uint64_t)s[0] | (uint64_t)s[n / 2] << 8 | (uint64_t)s[n - 1] << 16;
    }
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32);
}

/* Load factor at most 2/3 (tables grow past it); with the expected count, about 0.3-0.6.
 * Smaller tables mean fewer fresh pages and cache misses: loading is memory-bound. */
static uint32_t capacity_for(uint32_t expected) {
    uint32_t cap = 16;
    while (cap < expected + expected / 2 && cap < (1u << 30)) cap <<= 1;
    return cap;
}

/* ---- string -> id --------------------------------------------------------------------- */

void str_index_init(str_index *x, uint32_t expected) {
    uint32_t cap = capacity_for(expected);
    x->slots = xmalloc(sizeof *x->slots * cap);
    for (uint32_t i = 0; i < cap; i++) x->slots[i].id = -1;
    x->mask = cap - 1;
    x->count = 0;
}

void str_index_free(str_index *x) {
    free(x->slots);
    memset(x, 0, sizeof *x);
}

static void str_index_grow(str_index *x) {
    uint32_t cap = (x->mask + 1) * 2;
    str_slot *s = xmalloc(sizeof *s * cap);
    for (uint32_t i = 0; i < cap; i++) s[i].id = -1;
    for (uint32_t i = 0; i <= x->mask; i++) {
        if (x->slots[i].id < 0) continue;
        uint32_t j = x->slots[i].hash & (cap - 1);
        while (s[j].id >= 0) j = (j + 1) & (cap - 1);
        s[j] = x->slots[i];
    }
    free(x->slots);
    x->slots = s;
    x->mask = cap - 1;
}

int str_index_get_h(const str_index *x, const char *arena, const char *s, size_t n,
                    uint32_t h) {
    if (!x->slots) return -1;
    for (uint32_t i = h & x->mask;; i = (i + 1) & x->mask) {
        const str_slot *e = &x->slots[i];
        if (e->id < 0) return -1;
        if (e->hash == h && e->len == n && memcmp(arena + e->off, s, n) == 0) return e->id;
    }
}

int str_index_get(const str_index *x, const char *arena, const char *s, size_t n) {
    return str_index_get_h(x, arena, s, n, tok_hash(s, n));
}

int str_index_put_h(str_index *x, const char *arena, uint32_t off, uint32_t len, int id,
                    uint32_t h) {
    if ((x->count + 1) * 3 > (x->mask + 1) * 2) str_index_grow(x);
    const char *s = arena + off;
    uint32_t i = h & x->mask;
    for (;; i = (i + 1) & x->mask) {
        const str_slot *e = &x->slots[i];
        if (e->id < 0) break;
        if (e->hash == h && e->len == len && memcmp(arena + e->off, s, len) == 0) return e->id;
    }
    x->slots[i] = (str_slot){h, id, off, len};
    x->count++;
    return id;
}

int str_index_put(str_index *x, const char *arena, uint32_t off, uint32_t len, int id) {
    return str_index_put_h(x, arena, off, len, id, tok_hash(arena + off, len));
}

void str_index_prefetch(const str_index *x, uint32_t h) {
    __builtin_prefetch(&x->slots[h & x->mask]);
}

void str_index_prefetch_text(const str_index *x, const char *arena, uint32_t h) {
    for (uint32_t i = h & x->mask;; i = (i + 1) & x->mask) {
        const str_slot *e = &x->slots[i];
        if (e->id < 0) return;
        if (e->hash == h) {
            __builtin_prefetch(arena + e->off);
            return;
        }
    }
}

/* ---- (left, right) -> (rank, merged) --------------------------------------------------- */

static inline uint32_t pair_hash(uint64_t key) {
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32);
}

void merge_index_init(merge_index *x, uint32_t expected) {
    uint32_t cap = capacity_for(expected);
    x->slots = xmalloc(sizeof *x->slots * cap);
    for (uint32_t i = 0; i < cap; i++) x->slots[i].key = UINT64_MAX;
    x->mask = cap - 1;
    x->count = 0;
}

void merge_index_free(merge_index *x) {
    free(x->slots);
    memset(x, 0, sizeof *x);
}

static void merge_index_grow(merge_index *x) {
    uint32_t cap = (x->mask + 1) * 2;
    merge_slot *s = xmalloc(sizeof *s * cap);
    for (uint32_t i = 0; i < cap; i++) s[i].key = UINT64_MAX;
    for (uint32_t i = 0; i <= x->mask; i++) {
        if (x->slots[i].key == UINT64_MAX) continue;
        uint32_t j = pair_hash(x->slots[i].key) & (cap - 1);
        while (s[j].key != UINT64_MAX) j = (j + 1) & (cap - 1);
        s[j] = x->slots[i];
    }
    free(x->slots);
    x->slots = s;
    x->mask = cap - 1;
}

void merge_index_prefetch(const merge_index *x, uint32_t left, uint32_t right) {
    __builtin_prefetch(&x->slots[pair_hash((uint64_t)left << 32 | right) & x->mask], 1);
}

void merge_index_put(merge_index *x, uint32_t left, uint32_t right, uint32_t rank,
                     uint32_t merged) {
    if ((x->count + 1) * 3 > (x->mask + 1) * 2) merge_index_grow(x);
    uint64_t key = (uint64_t)left << 32 | right;
    uint32_t i = pair_hash(key) & x->mask;
    while (x->slots[i].key != UINT64_MAX && x->slots[i].key != key) i = (i + 1) & x->mask;
    if (x->slots[i].key == UINT64_MAX) x->count++;
    x->slots[i] = (merge_slot){key, rank, merged};
}

static inline void merge_prefetch(const merge_index *x, int32_t left, int32_t right) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    __builtin_prefetch(&x->slots[pair_hash(key) & x->mask]);
}

/* The merge of (left, right): its rank, or UINT32_MAX when the pair has none. */
static inline uint32_t merge_find(const merge_index *x, int32_t left, int32_t right,
                                  int32_t *merged) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (uint32_t i = pair_hash(key) & x->mask;; i = (i + 1) & x->mask) {
        const merge_slot *s = &x->slots[i];
        if (s->key == key) {
            *merged = (int32_t)s->merged;
            return s->rank;
        }
        if (s->key == UINT64_MAX) return UINT32_MAX;
    }
}

/* ---- the merge loop --------------------------------------------------------------------- */

void id_vec_push(id_vec *a, int id) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 256;
        a->v = xrealloc(a->v, sizeof *a->v * a->cap);
    }
    a->v[a->n++] = id;
}

void bpe_scratch_free(bpe_scratch *s) {
    free(s->sym);
    free(s->prev);
    free(s->next);
    free(s->rank);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

static void scratch_reserve(bpe_scratch *s, size_t n) {
    if (n <= s->cap) return;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n) cap *= 2;
    s->sym = xrealloc(s->sym, sizeof *s->sym * cap);
    s->prev = xrealloc(s->prev, sizeof *s->prev * cap);
    s->next = xrealloc(s->next, sizeof *s->next * cap);
    s->rank = xrealloc(s->rank, sizeof *s->rank * cap);
    s->cap = cap;
}

enum { BPE_SMALL = 48 }; /* up to this many symbols, a flat array beats the heap */

/* Flat version: sym[0..m) with rank[i]/next[i] (reused as "merged id") for pair (i, i+1). */
static int merge_small(const merge_index *mi, int32_t *sym, int m, uint32_t *rank,
                       int32_t *merged) {
    /* The first probes are independent: issue them all before waiting on any. */
    for (int i = 0; i + 1 < m; i++) merge_prefetch(mi, sym[i], sym[i + 1]);
    for (int i = 0; i + 1 < m; i++) rank[i] = merge_find(mi, sym[i], sym[i + 1], &merged[i]);
    while (m > 1) {
        uint32_t best = UINT32_MAX;
        int bi = -1;
        for (int i = 0; i + 1 < m; i++)
            if (rank[i] < best) best = rank[i], bi = i;
        if (bi < 0) break;
        sym[bi] = merged[bi];
        /* Drop symbol bi+1 and pair (bi+1, bi+2). */
        int tail = m - bi - 2;
        if (tail > 0) {
            memmove(sym + bi + 1, sym + bi + 2, sizeof *sym * (size_t)tail);
            memmove(rank + bi + 1, rank + bi + 2, sizeof *rank * (size_t)(tail - 1 > 0 ? tail - 1 : 0));
            memmove(merged + bi + 1, merged + bi + 2, sizeof *merged * (size_t)(tail - 1 > 0 ? tail - 1 : 0));
        }
        m--;
        if (bi + 1 < m) merge_prefetch(mi, sym[bi], sym[bi + 1]);
        if (bi > 0) merge_prefetch(mi, sym[bi - 1], sym[bi]);
        if (bi + 1 < m) rank[bi] = merge_find(mi, sym[bi], sym[bi + 1], &merged[bi]);
        if (bi > 0) rank[bi - 1] = merge_find(mi, sym[bi - 1], sym[bi], &merged[bi - 1]);
    }
    return m;
}

static void heap_push(bpe_scratch *s, size_t *n, uint64_t v) {
    if (*n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 256;
        s->heap = xrealloc(s->heap, sizeof *s->heap * s->heap_cap);
    }
    uint64_t *h = s->heap;
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= last) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

/* Heap version over a linked list; entries are rank << 32 | left position. */
static void merge_large(const merge_index *mi, bpe_scratch *s, int m) {
    int32_t *sym = s->sym, *prev = s->prev, *next = s->next, merged = 0;
    size_t nh = 0;
    for (int i = 0; i < m; i++) {
        prev[i] = i - 1;
        next[i] = i + 1 < m ? i + 1 : -1;
    }
    for (int i = 0; i + 1 < m; i++) merge_prefetch(mi, sym[i], sym[i + 1]);
    for (int i = 0; i + 1 < m; i++) {
        uint32_t r = merge_find(mi, sym[i], sym[i + 1], &merged);
        if (r != UINT32_MAX) heap_push(s, &nh, (uint64_t)r << 32 | (uint32_t)i);
    }
    while (nh) {
        uint64_t top = heap_pop(s->heap, &nh);
        int p = (int)(uint32_t)top;
        uint32_t r = (uint32_t)(top >> 32);
        if (sym[p] < 0) continue;
        int q = next[p];
        if (q < 0) continue;
        /* Stale entries: the pair at p changed since it was pushed. A rank names one pair. */
        if (merge_find(mi, sym[p], sym[q], &merged) != r) continue;
        sym[p] = merged;
        sym[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        if (prev[p] >= 0) merge_prefetch(mi, sym[prev[p]], sym[p]);
        if (next[p] >= 0) merge_prefetch(mi, sym[p], sym[next[p]]);
        if (prev[p] >= 0) {
            uint32_t r2 = merge_find(mi, sym[prev[p]], sym[p], &merged);
            if (r2 != UINT32_MAX) heap_push(s, &nh, (uint64_t)r2 << 32 | (uint32_t)prev[p]);
        }
        if (next[p] >= 0) {
            uint32_t r2 = merge_find(mi, sym[p], sym[next[p]], &merged);
            if (r2 != UINT32_MAX) heap_push(s, &nh, (uint64_t)r2 << 32 | (uint32_t)p);
        }
    }
}

/* ---- the word cache ---------------------------------------------------------------------
 *
 * Most pieces are common words seen many times, and their merges cost a dozen random probes into
 * a table of megabytes. Like HF's BPE cache, recent results are kept: per thread (encode takes a
 * const tokenizer and may run on many threads at once), direct-mapped (a colliding word simply
 * replaces the old one), each entry tagged with the serial number of the tokenizer that made it,
 * so one cache serves every tokenizer a thread uses and a freed tokenizer's entries never match
 * a new one. Freed with the thread (or by tokenizer_free on the thread that calls it). */
enum { CACHE_BITS = 14, CACHE_WORD = 22, CACHE_IDS = 8 };

typedef struct {
    uint32_t serial;    /* 0: empty */
    uint32_t hash;
    uint8_t len, n_ids;
    uint8_t bytes[CACHE_WORD];
    int32_t ids[CACHE_IDS];
} cache_entry;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_key_make(void) { pthread_key_create(&cache_key, free); }

static cache_entry *thread_cache(void) {
    pthread_once(&cache_once, cache_key_make);
    cache_entry *c = pthread_getspecific(cache_key);
    if (!c) {
        c = xcalloc((size_t)1 << CACHE_BITS, sizeof *c);
        pthread_setspecific(cache_key, c);
    }
    return c;
}

void bpe_cache_release(void) {
    pthread_once(&cache_once, cache_key_make);
    free(pthread_getspecific(cache_key));
    pthread_setspecific(cache_key, NULL);
}

static void bpe_merge_word(const tokenizer *t, const unsigned char *s, size_t n, id_vec *out,
                           bpe_scratch *sc) {
    /* ignore_merges (Llama 3): a piece that is itself in the vocabulary is one token. */
    if (t->ignore_merges) {
        int id = str_index_get(&t->by_bytes, t->arena, (const char *)s, n);
        if (id >= 0) {
            id_vec_push(out, id);
            return;
        }
    }
    scratch_reserve(sc, n);
    int32_t *sym = sc->sym;
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[s[i]];
        if (id < 0) {
            /* HF BPE: a character missing from the vocabulary becomes unk_token (fused with a
             * preceding unk when fuse_unk), or is dropped when there is none. */
            if (t->unk_id < 0 || (t->fuse_unk && m > 0 && sym[m - 1] == t->unk_id)) continue;
            id = t->unk_id;
        }
        sym[m++] = id;
    }
    if (m > 1) {
        if (m <= BPE_SMALL) {
            m = merge_small(&t->merges, sym, m, sc->rank, sc->next);
        } else {
            merge_large(&t->merges, sc, m);
            for (int i = 0; i >= 0; i = sc->next[i]) id_vec_push(out, sym[i]);
            return;
        }
    }
    for (int i = 0; i < m; i++) id_vec_push(out, sym[i]);
}

void bpe_encode_word(const tokenizer *t, const unsigned char *s, size_t n, id_vec *out,
                     bpe_scratch *sc) {
    if (n == 0) return;
    if (n > CACHE_WORD) {
        bpe_merge_word(t, s, n, out, sc);
        return;
    }
    if (!sc->cache) sc->cache = thread_cache();
    cache_entry *cache = sc->cache;
    uint32_t h = tok_hash(s, n);
    cache_entry *e = &cache[h & ((1u << CACHE_BITS) - 1)];
    if (e->serial == t->serial && e->hash == h && e->len == n && memcmp(e->bytes, s, n) == 0) {
        for (int i = 0; i < e->n_ids; i++) id_vec_push(out, e->ids[i]);
        return;
    }
    size_t before = out->n;
    bpe_merge_word(t, s, n, out, sc);
    size_t k = out->n - before;
    if (k <= CACHE_IDS) {
        e->serial = t->serial;
        e->hash = h;
        e->len = (uint8_t)n;
        e->n_ids = (uint8_t)k;
        memcpy(e->bytes, s, n);
        memcpy(e->ids, out->v + before, sizeof *e->ids * k);
    }
}
