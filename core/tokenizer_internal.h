/* The tokenizer's internals, shared by core/tokenizer_load.c (reading tokenizer.json),
 * core/tokenizer.c (the encode/decode pipeline), core/bpe.c (merges and hash tables) and
 * core/chat.c. Nothing outside those files includes this. */
#ifndef R1_CORE_TOKENIZER_INTERNAL_H
#define R1_CORE_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tokenizer.h"
#include "core/utf8.h"

/* Per-id flags. */
enum {
    TOK_IN_VOCAB = 1,   /* the id is in model.vocab */
    TOK_ADDED = 2,      /* the id is an added token (added_tokens) */
    TOK_SPECIAL = 4,    /* ... marked "special" */
    TOK_RAW_TEXT = 8,   /* the text has characters outside the byte-level alphabet: its bytes
                         * are its UTF-8 text, as the ByteLevel decoder does */
};

/* Open-addressing index from a byte string (in the tokenizer's arena) to an id. A slot keeps
 * the string's hash, offset and length, so a probe touches one cache line until the final
 * comparison. */
typedef struct {
    uint32_t hash;
    int32_t id;          /* -1 marks an empty slot */
    uint32_t off, len;
} str_slot;

typedef struct {
    str_slot *slots;
    uint32_t mask;       /* capacity - 1, capacity a power of two */
    uint32_t count;
} str_index;

/* (left id, right id) -> (rank, merged id). */
typedef struct {
    uint64_t key;        /* left << 32 | right; UINT64_MAX marks an empty slot */
    uint32_t rank;
    uint32_t merged;
} merge_slot;

typedef struct {
    merge_slot *slots;
    uint32_t mask;
    uint32_t count;
} merge_index;

/* A trie of added-token contents, for leftmost-longest matching. */
typedef struct {
    int32_t child;       /* first child node, -1 if none */
    int32_t sibling;     /* next sibling node, -1 if none */
    int32_t token;       /* index into tokenizer.added ending here, -1 if none */
    uint8_t byte;
} trie_node;

typedef struct {
    trie_node *nodes;    /* nodes[0] is the root */
    int n, cap;
    int32_t first[256];  /* the root's child for each first byte, -1 if none */
} added_trie;

typedef struct {
    int id;
    uint32_t off, len;       /* content (as written in tokenizer.json), in the arena */
    uint32_t noff, nlen;     /* the content after the normalizer, matched on normalized text */
    uint8_t special, normalized, lstrip, rstrip, single_word;
} added_token;

typedef enum { PRETOK_SPLIT, PRETOK_BYTELEVEL } pretok_kind;

typedef struct {
    pretok_kind kind;
    pcre2_code *re;          /* SPLIT, or BYTELEVEL with use_regex (the GPT-2 pattern) */
    int add_prefix_space;    /* BYTELEVEL */
    int jit;                 /* re was JIT-compiled */
} pretok_step;

struct tokenizer {
    char *path;
    uint32_t serial;         /* unique per loaded tokenizer, never 0: tags word-cache entries */

    /* Every id in [0, n_ids): text as in tokenizer.json and the bytes it decodes to. Holes in
     * the id space have len 0, flags 0 and off pointing at an empty string. */
    int n_ids;
    uint32_t *text_off, *text_len;
    uint32_t *bytes_off, *bytes_len;
    uint8_t *flags;
    char *arena;             /* every string, each followed by a NUL */
    size_t arena_len, arena_cap;

    str_index by_text;       /* token text (vocab and added) -> id */
    str_index by_bytes;      /* model vocab entries' bytes -> id (for ignore_merges) */

    /* BPE */
    int32_t byte_id[256];    /* the vocab id of each single byte, -1 if absent */
    merge_index merges;
    int n_merges;
    uint32_t *merge_pair;    /* [n_merges][2]: the left and right ids of each merge by rank */
    const char **merge_text; /* "a b" in rank order, made on first use (one block) */
    pthread_mutex_t merge_lock;
    int ignore_merges;
    int unk_id, fuse_unk;

    /* added tokens, in the order HF adds them */
    added_token *added;
    int n_added;
    added_trie raw_trie;     /* contents of added tokens with normalized = false */
    added_trie norm_trie;    /* normalized contents of those with normalized = true */

    int nfc;                 /* the normalizer is NFC */
    pretok_step *steps;
    int n_steps;

    /* post-processor, for add_special: ids before and after the sequence */
    int *pre_ids, n_pre, *post_ids, n_post;

    int bos_id, eos_id, pad_id, add_bos;
    char *bos_text, *eos_text; /* as tokenizer_config.json names them (NULL if unknown) */
    char *chat_template;
};

/* ---- core/bpe.c ------------------------------------------------------------------------- */
uint32_t tok_hash(const void *s, size_t n);
void str_index_init(str_index *x, uint32_t expected);
void str_index_free(str_index *x);
/* Adds id for the string at arena + off (len bytes) unless the string is present; returns the
 * id that now holds it. */
int str_index_put(str_index *x, const char *arena, uint32_t off, uint32_t len, int id);
int str_index_get(const str_index *x, const char *arena, const char *s, size_t n);
/* The same with the hash (tok_hash) computed ahead, for loops that prefetch. */
int str_index_put_h(str_index *x, const char *arena, uint32_t off, uint32_t len, int id,
                    uint32_t h);
int str_index_get_h(const str_index *x, const char *arena, const char *s, size_t n, uint32_t h);
void str_index_prefetch(const str_index *x, uint32_t h);
/* Prefetches the text of the first slot whose hash is h (the likely match). */
void str_index_prefetch_text(const str_index *x, const char *arena, uint32_t h);

void merge_index_init(merge_index *x, uint32_t expected);
void merge_index_free(merge_index *x);
/* Later merges of the same pair replace earlier ones, as the HF BPE builds its map. */
void merge_index_prefetch(const merge_index *x, uint32_t left, uint32_t right);
void merge_index_put(merge_index *x, uint32_t left, uint32_t right, uint32_t rank,
                     uint32_t merged);

/* A growable id array. */
typedef struct {
    int *v;
    size_t n, cap;
} id_vec;
void id_vec_push(id_vec *a, int id);

/* Scratch space reused across the words of one encode call. */
typedef struct {
    int32_t *sym, *prev, *next;
    uint32_t *rank;
    uint64_t *heap;
    size_t cap, heap_cap;
    void *cache;         /* this thread's word cache, looked up once per call */
} bpe_scratch;
void bpe_scratch_free(bpe_scratch *s);
/* Frees the calling thread's word cache (other threads' go with them). */
void bpe_cache_release(void);

/* Byte-level BPE of one pre-tokenized piece (raw bytes); appends ids. */
void bpe_encode_word(const tokenizer *t, const unsigned char *s, size_t n, id_vec *out,
                     bpe_scratch *sc);

/* ---- byte-level alphabet (core/tokenizer_load.c) ---------------------------------------- */
/* The code point GPT-2's bytes_to_unicode gives byte b. */
uint32_t bytelevel_char(uint8_t b);
/* The byte a code point stands for, or -1 if it is not in the alphabet. */
int bytelevel_byte(uint32_t cp);

/* ---- Unicode (core/unicode_delta.c, generated) --------------------------------------- */
/* The code points general category `cat` (e.g. "L", "Nd") gained between Unicode 14.0 and
 * 16.0, as the body of a PCRE2 class ("" if none), or NULL for an unknown category. */
const char *unicode_delta_class(const char *cat, size_t len);

/* ---- UTF-8 helpers (core/tokenizer.c) --------------------------------------------------- */
/* Decodes one well-formed sequence (as checked by utf8_len_at). */
uint32_t utf8_decode_at(const unsigned char *s, size_t *len);
/* NFC through utf8proc; *out is fresh (or NULL with *out_len = n when s is already NFC by
 * the quick test). */
int tok_nfc(const char *s, size_t n, char **out, size_t *out_len);

#endif
