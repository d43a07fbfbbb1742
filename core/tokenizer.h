/* Byte-level BPE tokenizers from Hugging Face tokenizer.json files, identical to the HF
 * tokenizer, and the conversation formats the R1 family and its students use.
 *
 * What a tokenizer.json may hold and this reader supports:
 *   model          BPE (vocab; merges as "a b" strings or ["a", "b"] pairs; ignore_merges)
 *   normalizer     none, NFC, or a Sequence of those
 *   pre_tokenizer  Sequence of Split (Regex pattern, Isolated behaviour) and ByteLevel
 *                  (add_prefix_space, use_regex), or a single ByteLevel
 *   post_processor ByteLevel, TemplateProcessing (BOS), or a Sequence of those
 *   decoder        ByteLevel
 *   added_tokens   special, normalized, lstrip, rstrip, single_word
 * Regex patterns come from the file and are compiled with PCRE2 (JIT); NFC uses utf8proc.
 * tokenizer_config.json beside it supplies bos/eos/pad tokens, add_bos_token and
 * chat_template. */
#ifndef R1_CORE_TOKENIZER_H
#define R1_CORE_TOKENIZER_H

#include <stddef.h>

typedef struct tokenizer tokenizer;

/* path: a tokenizer.json file, or a directory holding tokenizer.json (and optionally
 * tokenizer_config.json). Errors name the file and what is unsupported (R1_EINPUT). */
int tokenizer_load(tokenizer **out, const char *path);
void tokenizer_free(tokenizer *t);
/* The same from memory (tests, fuzzing): json is tokenizer.json's text, config that of
 * tokenizer_config.json or NULL; `where` names the source in messages. */
int tokenizer_load_mem(tokenizer **out, const char *json, size_t len, const char *config,
                       size_t config_len, const char *where);

/* Encodes UTF-8 text. Added tokens are matched before BPE as the HF tokenizer does.
 * add_special: add what the post-processor adds (e.g. BOS). Invalid UTF-8 is R1_EINPUT.
 * *ids is a fresh array the caller frees. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_special, int **ids,
                     int *n);
/* Decodes ids to UTF-8 text as the HF tokenizer's decode does (skip_special: drop special added
 * tokens). Bytes that do not form complete UTF-8 sequences become U+FFFD as in HF. Ids outside
 * the vocabulary are R1_EINPUT. *text is NUL-terminated; the caller frees. */
int tokenizer_decode(const tokenizer *t, const int *ids, int n, int skip_special, char **text,
                     size_t *len);
/* The raw bytes a single token stands for (byte-level decoded; an added token's content).
 * Returns NULL for an id outside the vocabulary. Streaming decoders concatenate these. */
const char *tokenizer_token_bytes(const tokenizer *t, int id, size_t *len);

/* One past the largest id (vocab and added tokens). */
int tokenizer_vocab_size(const tokenizer *t);
/* The token's string as written in tokenizer.json (byte-level alphabet), or NULL. */
const char *tokenizer_token_text(const tokenizer *t, int id);
/* Id of a token string (vocab or added token), or -1. */
int tokenizer_token_id(const tokenizer *t, const char *token_text);
int tokenizer_is_special(const tokenizer *t, int id);
int tokenizer_is_added(const tokenizer *t, int id);

/* From tokenizer_config.json (or the post-processor); -1 when unknown. */
int tokenizer_bos_id(const tokenizer *t);
int tokenizer_eos_id(const tokenizer *t);
int tokenizer_pad_id(const tokenizer *t);
int tokenizer_add_bos(const tokenizer *t);
/* The chat_template string, or NULL. */
const char *tokenizer_chat_template(const tokenizer *t);
/* Replaces the chat template (a Jinja template's text, or NULL for none), e.g. from a file the
 * user names; chat_detect and chat_render read it. */
int tokenizer_set_chat_template(tokenizer *t, const char *tpl);
/* The path the tokenizer was loaded from (tokenizer.json). */
const char *tokenizer_path(const tokenizer *t);

/* BPE merges in rank order, as "a b" strings (for GGUF export); n_merges set. */
const char *const *tokenizer_merges(const tokenizer *t, int *n_merges);

/* ---- conversation formats --------------------------------------------------------------- */

typedef enum {
    CHAT_AUTO,   /* recognise the tokenizer's chat_template */
    CHAT_R1,     /* <｜begin▁of▁sentence｜>{system}<｜User｜>{u}<｜Assistant｜><think>\n */
    CHAT_CHATML, /* <|im_start|>role\n...<|im_end|>\n (Qwen instruct) */
    CHAT_LLAMA3, /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
} chat_format;

typedef struct {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} chat_message;

/* Parses "auto", "r1", "chatml", "llama3"; -1 if unknown. */
int chat_format_parse(const char *name, chat_format *out);
const char *chat_format_name(chat_format f);
/* The format the tokenizer's chat_template renders (CHAT_R1 if it has none and knows the R1
 * tokens); R1_EINPUT with a hint to force one if unrecognised. */
int chat_detect(const tokenizer *t, chat_format *out);
/* Renders a conversation exactly as the format's Jinja template does; with gen_prompt the
 * assistant prefix (for R1 including "<think>\n") is appended. *out is a fresh string. */
int chat_render(const tokenizer *t, chat_format f, const chat_message *msgs, int n, int gen_prompt,
                char **out);

#endif
