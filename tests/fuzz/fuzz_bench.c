/* Fuzz target: the benchmark readers (eval/benchmarks.h) on arbitrary JSONL. The first byte
 * picks the layout (auto-detected, gsm8k, math, aime, gpqa); the rest is the file. A file that
 * loads must give every question an id, a prompt and a non-empty gold answer, and GPQA golds
 * must be a letter A-D. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "eval/benchmarks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/fuzz_bench.%d.jsonl", (int)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    static const char *const prefix[5] = {"", "gsm8k:", "math:", "aime:", "gpqa:"};
    char spec[96];
    snprintf(spec, sizeof spec, "%s%s", prefix[data[0] % 5], path);
    bench_set b;
    if (bench_load(&b, spec, data[0]) == R1_OK) {
        if (b.n < 1) abort();
        for (int i = 0; i < b.n; i++) {
            const bench_item *it = &b.items[i];
            if (!it->id || !it->prompt || !it->question || !it->gold || !it->gold[0]) abort();
            if (b.layout == BENCH_GPQA && (strlen(it->gold) != 1 || it->gold[0] < 'A' ||
                                           it->gold[0] > 'D' || it->kind != ANSWER_CHOICE))
                abort();
        }
        bench_free(&b);
    }
    err_clear();
    return 0;
}
