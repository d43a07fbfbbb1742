/* libFuzzer target for the tokenizer loader and everything a loaded tokenizer then does.
 *
 * Input: tokenizer.json text, optionally followed by "\n\x01\n" and tokenizer_config.json
 * text, optionally followed by "\n\x01\n" and UTF-8 text to encode. A file that loads is used
 * to encode (with and without special tokens), decode (with and without skipping specials),
 * look up every token and render each chat format, so every table the loader built is
 * exercised. Seeds: tests/fuzz/corpus/tokenizer (the synthetic tokenizer.json files).
 *   make fuzz && build-fuzz/fuzz_tokenizer -max_total_time=60 tests/fuzz/corpus/tokenizer */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tokenizer.h"

static const uint8_t *cut(const uint8_t *p, const uint8_t *end, const uint8_t **next) {
    static const uint8_t sep[] = {'\n', 1, '\n'};
    for (const uint8_t *q = p; q + 3 <= end; q++)
        if (memcmp(q, sep, 3) == 0) {
            *next = q + 3;
            return q;
        }
    *next = NULL;
    return end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *end = data + size, *cfg = NULL, *text = NULL;
    const uint8_t *json_end = cut(data, end, &cfg);
    const uint8_t *cfg_end = cfg ? cut(cfg, end, &text) : NULL;
    tokenizer *t;
    if (tokenizer_load_mem(&t, (const char *)data, (size_t)(json_end - data),
                           cfg ? (const char *)cfg : NULL, cfg ? (size_t)(cfg_end - cfg) : 0,
                           "fuzz")) {
        err_clear();
        return 0;
    }
    static const char sample[] =
        "Hello, world! It's 12345 o'clock.\n\t日本語 中文 한국어 русский e\xcc\x81 "
        "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 <|im_end|> <｜User｜> <think>  ";
    const char *in = text ? (const char *)text : sample;
    size_t n = text ? (size_t)(end - text) : sizeof sample - 1;
    for (int add = 0; add < 2; add++) {
        int *ids, k;
        if (tokenizer_encode(t, in, n, add, &ids, &k) == R1_OK) {
            for (int skip = 0; skip < 2; skip++) {
                char *out;
                size_t len;
                if (tokenizer_decode(t, ids, k, skip, &out, &len) == R1_OK) free(out);
            }
            free(ids);
        }
        err_clear();
    }
    int v = tokenizer_vocab_size(t);
    for (int id = -1; id <= v; id++) {
        size_t len;
        const char *tx = tokenizer_token_text(t, id);
        const char *b = tokenizer_token_bytes(t, id, &len);
        if ((tx == NULL) != (b == NULL)) abort();
        if (tx && tokenizer_token_id(t, tx) < 0) abort(); /* every token's text finds an id */
        (void)tokenizer_is_special(t, id);
    }
    int nm;
    const char *const *m = tokenizer_merges(t, &nm);
    for (int i = 0; i < nm; i++)
        if (!strchr(m[i], ' ')) abort();
    chat_message conv[] = {{"system", "s"}, {"user", "u<think>"}, {"assistant", "<think>r</think>a"}};
    for (int f = CHAT_AUTO; f <= CHAT_LLAMA3; f++) {
        char *out;
        if (chat_render(t, (chat_format)f, conv, 3, 1, &out) == R1_OK) free(out);
        err_clear();
    }
    tokenizer_free(t);
    return 0;
}
