/* Conversations -> (ids, loss mask) for SFT, through the student's tokenizer and chat format.
 * Internal to datasets/ (sft_jsonl.c and the trace reader use it). */
#ifndef R1_DATASETS_SFT_CHAT_H
#define R1_DATASETS_SFT_CHAT_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "datasets/sft.h"

typedef struct sft_chat sft_chat;

/* Encodes one {"messages": [...]} record (see datasets/sft.h). The tokenizer is loaded into
 * *state on first use (from o->tokenizer_dir); free it with sft_chat_free. Ids must be below
 * vocab. *ids and *mask are fresh arrays of *n entries. */
int sft_chat_encode(sft_chat **state, const cJSON *root, const char *where, const sft_options *o,
                    uint32_t vocab, int32_t **ids, uint8_t **mask, int64_t *n);
/* The same for a conversation already taken apart: msgs[0..n_msgs) form the prompt; the
 * completion is the assistant turn (reasoning may be NULL when it is inside content). */
int sft_chat_encode_turn(sft_chat **state, const chat_message *msgs, int n_msgs,
                         const char *reasoning, const char *content, const char *where,
                         const sft_options *o, uint32_t vocab, int32_t **ids, uint8_t **mask,
                         int64_t *n);
void sft_chat_free(sft_chat *state);

#endif
