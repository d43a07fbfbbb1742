/* Fuzz target: SFT JSONL records, pre-tokenized and conversations without a tokenizer
 * (datasets/sft_jsonl.c). */
#include <stdint.h>
#include <stdlib.h>

#include "core/error.h"
#include "datasets/sft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    token_builder b;
    token_builder_init(&b, 320, 0);
    sft_options o = {.format = CHAT_AUTO, .max_len = 64, .truncate = (size & 1)};
    sft_stats st = {0};
    sft_read_buffer(&b, (const char *)data, size, "fuzz", &o, &st);
    token_builder_free(&b);
    err_clear();
    return 0;
}
