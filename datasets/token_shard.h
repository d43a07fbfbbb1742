/* Token shards: tokenized training examples, memory-mapped by the trainer.
 *
 * A shard holds whole examples (documents): each one's token ids and per-token loss mask, and
 * where each example starts. How examples are laid into rows of --seq-len tokens (one per row,
 * or several packed into a row) is the trainer's choice at load time, so one shard serves any
 * sequence length.
 *
 * Byte layout, version 1, little-endian:
 *
 *   offset  type      field
 *   0       char[8]   magic "R1TOKENS"
 *   8       u32       version (1)
 *   12      u32       header bytes (64)
 *   16      u64       n_docs        examples in the shard (>= 1)
 *   24      u64       n_tokens      tokens of all examples
 *   32      u32       vocab_size    every id is below it (the tokenizer's or model's vocabulary)
 *   36      u32       flags (0)
 *   40      u64       tokenizer_id  token_tokenizer_id() of the tokenizer that made the ids,
 *                                   0 when unknown (pre-tokenized input)
 *   48      u64       n_loss        tokens whose loss mask is set
 *   56      u64       reserved (0)
 *   64      u64       doc_offsets[n_docs + 1]  first token of each example; [0] = 0,
 *                                            [n_docs] = n_tokens, strictly increasing
 *   ...     i32       tokens[n_tokens]
 *   ...     u8        loss_mask[n_tokens]      1: the model is trained to predict this token
 *
 * The file is exactly that long. A reader checks every field, count and offset before use
 * (token_shard_parse), so a corrupt or truncated shard is an error, never an out-of-bounds read.
 * A shard directory holds shard-000000.tokens, shard-000001.tokens, ... read in name order. */
#ifndef R1_DATASETS_TOKEN_SHARD_H
#define R1_DATASETS_TOKEN_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "core/fileio.h"

#define TOKEN_SHARD_MAGIC "R1TOKENS"
enum { TOKEN_SHARD_VERSION = 1, TOKEN_SHARD_HEADER = 64 };

/* Examples being built in memory (by pack, or by the trainer reading JSONL). */
typedef struct {
    int64_t n_docs, n_tokens, n_loss;
    int64_t *doc_off;   /* [n_docs + 1] */
    int32_t *tokens;    /* [n_tokens] */
    uint8_t *mask;      /* [n_tokens] */
    int64_t cap_docs, cap_tokens;
    uint32_t vocab_size;
    uint64_t tokenizer_id;
} token_builder;

void token_builder_init(token_builder *b, uint32_t vocab_size, uint64_t tokenizer_id);
/* Appends one example of n >= 1 tokens (ids already checked against vocab_size). */
void token_builder_add(token_builder *b, const int32_t *ids, const uint8_t *mask, int64_t n);
/* Forgets the examples, keeps the buffers. */
void token_builder_reset(token_builder *b);
/* Writes the examples as one shard file, crash-safely. */
int token_builder_write(const token_builder *b, const char *path);
void token_builder_free(token_builder *b);

/* A readable shard: a mapped file, or a builder's arrays taken over. */
typedef struct {
    char *path;             /* for messages */
    int64_t n_docs, n_tokens, n_loss;
    uint32_t vocab_size;
    uint64_t tokenizer_id;
    const int64_t *doc_off; /* [n_docs + 1] */
    const int32_t *tokens;  /* [n_tokens] */
    const uint8_t *mask;    /* [n_tokens] */
    file_map map;
    token_builder owned;
} token_shard;

/* Maps and validates a shard file. */
int token_shard_open(token_shard *s, const char *path);
/* Validates a shard image in memory (8-byte aligned) and points s into it; `where` names it in
 * messages. Used by token_shard_open and the fuzz target. */
int token_shard_parse(token_shard *s, const uint8_t *data, size_t size, const char *where);
/* Takes over a builder's arrays (the builder is left empty). */
void token_shard_from_builder(token_shard *s, token_builder *b, const char *name);
void token_shard_close(token_shard *s);

/* The shard files of a path: the file itself, or a directory's *.tokens files in name order.
 * Errors when there are none. *paths is a fresh array of fresh strings. */
int token_shard_list(const char *path, char ***paths, int *n);
void token_shard_list_free(char **paths, int n);

/* 64-bit FNV-1a, the hash used for tokenizer identity and data fingerprints. */
uint64_t fnv1a64(uint64_t h, const void *data, size_t n);
#define FNV1A64_INIT 0xcbf29ce484222325ull

/* The identity and size of a tokenizer, read from tokenizer.json without building it:
 * id is FNV-1a of the canonical JSON (cJSON, unformatted) of its "model", "added_tokens",
 * "normalizer" and "pre_tokenizer" members, so two files that tokenize alike but differ in
 * layout get the same id; vocab is one past the largest id of the vocabulary and added tokens.
 * path: tokenizer.json or a directory holding it. R1_EINPUT if absent or malformed. */
int token_tokenizer_info(const char *path, uint64_t *id, int64_t *vocab);

#endif
