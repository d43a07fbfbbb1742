/* libFuzzer target: one JSONL prompt line (datasets/prompts.h), with and without an id field. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "datasets/prompts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    prompt_options o = {.prompt_field = (data[0] & 1) ? "messages" : "prompt",
                        .id_field = (data[0] & 2) ? "id" : NULL,
                        .gold_field = "answer", .world_size = 1};
    prompt_item it;
    if (prompts_parse_line(&it, (const char *)data + 1, size - 1, 7, &o, "fuzz.jsonl") == R1_OK) {
        /* Accepted prompts have an id and the shape their kind says. */
        CHECK(it.id && it.id[0] && it.value && it.line == 7);
        if (it.kind == PROMPT_TOKENS) CHECK(it.n_tokens > 0 && it.tokens);
        if (it.kind == PROMPT_TEXT) CHECK(cJSON_IsString(it.value) && it.value->valuestring[0]);
        if (it.kind == PROMPT_MESSAGES) CHECK(cJSON_IsArray(it.value));
        prompt_item_free(&it);
    }
    err_clear();
    return 0;
}
