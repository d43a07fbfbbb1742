/* Supervised fine-tuning examples: JSONL records -> (token ids, loss mask), and the `pack`
 * command that writes them as token shards (datasets/token_shard.h).
 *
 * A JSONL line is one example, either
 *   pre-tokenized  {"input_ids": [int, ...], "loss_mask": [0|1, ...]}
 *                  ids are used as they are; loss_mask is optional (absent: every token);
 *   a conversation {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
 *                  the last message is the assistant turn being learned; it may carry its
 *                  reasoning in "reasoning_content" (the DeepSeek API field) instead of inside
 *                  content. Conversations need a tokenizer and a chat format.
 *
 * The loss covers the final assistant turn only: its reasoning, answer and closing end-of-turn
 * token, never the prompt (system, user and earlier turns, the assistant header). A token's mask
 * bit says whether the model is trained to predict it (so the trainer counts the loss of
 * position t when mask[t + 1] is set). */
#ifndef R1_DATASETS_SFT_H
#define R1_DATASETS_SFT_H

#include <stdint.h>

#include "core/tokenizer.h"
#include "datasets/token_shard.h"

typedef struct {
    const char *tokenizer_dir; /* tokenizer.json or its directory, loaded when a conversation
                                * is met; NULL: conversations are refused */
    chat_format format;   /* for conversations (CHAT_AUTO: from the tokenizer's template) */
    int64_t max_len;      /* longer examples are dropped (or truncated); 0: no limit */
    int truncate;         /* truncate to max_len instead of dropping */
    /* Called after an example is added once the builder holds flush_tokens tokens or more
     * (a writer emptying it into a shard); NULL: never. */
    int (*flush)(token_builder *b, void *ctx);
    void *flush_ctx;
    int64_t flush_tokens;
} sft_options;

typedef struct {
    int64_t lines;        /* non-empty lines read */
    int64_t examples;     /* examples kept */
    int64_t dropped_long; /* longer than max_len, dropped */
    int64_t truncated;    /* longer than max_len, cut to max_len */
    int64_t no_loss;      /* dropped: no token to learn (all-zero mask, or one token) */
    int64_t tokens, loss_tokens;
    int64_t conversations; /* lines that were conversations (tokenized here) */
} sft_stats;

/* Reads a JSONL file of examples into b (ids are checked against b->vocab_size). Errors name
 * the file and line (R1_EINPUT). */
int sft_read_jsonl(token_builder *b, const char *path, const sft_options *o, sft_stats *st);
/* The same for JSONL text in memory (`where` names it in messages; used by the fuzz target). */
int sft_read_buffer(token_builder *b, const char *data, size_t len, const char *where,
                    const sft_options *o, sft_stats *st);

/* Adds one example, applying max_len / truncate and dropping examples with nothing to learn;
 * the counts go to st. Used by every input path. */
void sft_add_example(token_builder *b, const sft_options *o, sft_stats *st, const int32_t *ids,
                     const uint8_t *mask, int64_t n);

/* Commands. */
int cmd_pack(int argc, char **argv);

#endif
