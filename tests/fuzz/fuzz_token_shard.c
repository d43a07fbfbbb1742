/* Fuzz target: token shard headers, counts and offsets (datasets/token_shard.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "datasets/token_shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* the reader maps files (page-aligned); give it an aligned copy */
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    token_shard s;
    if (token_shard_parse(&s, copy, size, "fuzz") == R1_OK) {
        int64_t sum = 0;
        for (int64_t d = 0; d < s.n_docs; d++)
            for (int64_t i = s.doc_off[d]; i < s.doc_off[d + 1]; i++) sum += s.tokens[i] + s.mask[i];
        (void)sum;
        token_shard_close(&s);
    }
    free(copy);
    err_clear();
    return 0;
}
