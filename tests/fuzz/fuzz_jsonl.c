/* Fuzz target: the JSONL reader on arbitrary bytes, through an in-memory stream. */
#include <stdint.h>
#include <stdio.h>

#include "datasets/jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f) return 0;
    jsonl_reader *r;
    if (jsonl_open_stream(&r, f, "fuzz") == 0) {
        for (;;) {
            cJSON *v;
            if (jsonl_next(r, &v) || !v) break;
            cJSON_Delete(v);
        }
        jsonl_close(r);
    }
    fclose(f);
    return 0;
}
