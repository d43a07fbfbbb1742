/* Internal to convert/: the tokenizer as GGUF metadata (tokenizer.ggml.*), from a model
 * directory's tokenizer.json and tokenizer_config.json. */
#ifndef R1_CONVERT_VOCAB_H
#define R1_CONVERT_VOCAB_H

#include <stdint.h>

#include "convert/gguf.h"
#include "core/config.h"

/* llama.cpp's token types (tokenizer.ggml.token_type). */
enum { TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4,
       TOKEN_UNUSED = 5, TOKEN_BYTE = 6 };

/* The llama.cpp pre-tokenizer name (tokenizer.ggml.pre) whose regexes are the ones in
 * tokenizer.json's pre_tokenizer:
 *   one Split with the Qwen2 pattern (\p{N} alone) + ByteLevel(use_regex false)   "qwen2"
 *   one Split with the Llama-3 pattern (\p{N}{1,3}) + ByteLevel                   "llama-bpe"
 *   DeepSeek-V3's three Splits (\p{N}{1,3}, CJK, the rest) + ByteLevel            "deepseek-v3"
 *   ByteLevel alone with its GPT-2 regex (use_regex true)                          "gpt-2"
 * Anything else is refused (R1_EINPUT) with the pattern in the message and a hint to choose
 * with --pre. *name points to a static string. */
int vocab_detect_pre(const char *tokenizer_json, const char **name);

/* Writes tokenizer.ggml.{model, pre, tokens, token_type, merges, bos/eos/padding_token_id,
 * add_bos_token} and tokenizer.chat_template. The token list is padded to vocab_size with
 * "[PAD<i>]" tokens of type UNUSED (as convert_hf_to_gguf does when config.json's vocab_size
 * exceeds the tokenizer); a tokenizer larger than vocab_size is refused. Added tokens are
 * CONTROL when special or shaped like a special token ("<|...|>", "<｜...｜>"), else
 * USER_DEFINED. pre: an override, or NULL to detect. cfg supplies bos/eos ids the tokenizer
 * files do not name. */
int vocab_put(gguf_writer *w, const char *model_dir, const model_config *cfg, const char *pre);

#endif
