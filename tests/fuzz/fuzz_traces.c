/* libFuzzer target: the trace archive readers (datasets/traces.h). The first byte picks one:
 *   0  a shard (tar, optionally zstd) read to the end: every record it returns is valid
 *   1  a manifest (JSON)
 *   2  a .topk member
 *   3  the reasoning/answer split of a completion text */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "datasets/traces.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void shard(const uint8_t *data, size_t size) {
    trace_shard_reader *r;
    if (trace_shard_open_memory(&r, data, size, "fuzz.tar") != R1_OK) return;
    trace_record rec = {0};
    int have;
    while (trace_shard_next(r, &rec, &have) == R1_OK && have) {
        CHECK(trace_key_valid(rec.key, strlen(rec.key)) && rec.line >= 1 && rec.sample >= 0);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(rec.rec, "completion_token_ids");
        CHECK(cJSON_IsArray(ids));
        if (rec.topk_data) CHECK((int)rec.topk.n == cJSON_GetArraySize(ids) && rec.topk.k > 0);
    }
    trace_record_clear(&rec);
    trace_shard_close(r);
}

static void manifest(const uint8_t *data, size_t size) {
    trace_manifest m;
    if (trace_manifest_parse(&m, (const char *)data, size, "manifest.json") != R1_OK) return;
    CHECK(m.world_size >= 1 && m.rank >= 0 && m.rank < m.world_size && m.settings);
    for (int i = 0; i < m.n_shards; i++) {
        CHECK(strchr(m.shards[i].name, '/') == NULL);
        CHECK(trace_pairs_count(&m.shards[i].pairs) == m.shards[i].records);
    }
    trace_manifest_free(&m);
}

static void topk(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1); /* malloc: aligned as the readers' buffers are */
    memcpy(copy, data, size);
    trace_topk t;
    if (trace_topk_parse(&t, copy, size, "fuzz.topk") == R1_OK)
        CHECK(16 + 4 * (uint64_t)t.n * (2 * (uint64_t)t.k + 1) == size);
    free(copy);
}

static void split(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    char *reasoning, *answer;
    int closed;
    trace_split_think(text, &reasoning, &answer, &closed);
    CHECK(strlen(reasoning) + strlen(answer) <= strlen(text));
    free(reasoning);
    free(answer);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    switch (data[0] % 4) {
    case 0: shard(data + 1, size - 1); break;
    case 1: manifest(data + 1, size - 1); break;
    case 2: topk(data + 1, size - 1); break;
    default: split(data + 1, size - 1); break;
    }
    err_clear();
    return 0;
}
