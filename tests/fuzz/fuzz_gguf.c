/* libFuzzer target for the GGUF reader: parse, then touch every value and tensor byte the
 * parser vouched for (ASan catches any read it should not have allowed). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "convert/gguf.h"
#include "core/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file g;
    if (gguf_parse(&g, data, size, "fuzz.gguf") != R1_OK) return 0;
    volatile uint64_t sink = 0;
    for (int64_t i = 0; i < g.n_kv; i++) {
        const gguf_kv *kv = &g.kv[i];
        if (kv->type == GGUF_STRING && kv->s.n) sink += (uint8_t)kv->s.p[kv->s.n - 1];
        if (kv->type != GGUF_ARRAY || kv->arr_n == 0) continue;
        if (kv->arr_type == GGUF_STRING) {
            gguf_str *s = malloc(sizeof *s * kv->arr_n);
            gguf_arr_strings(kv, s);
            for (uint64_t j = 0; j < kv->arr_n; j++)
                if (s[j].n) sink += (uint8_t)s[j].p[s[j].n - 1];
            free(s);
        } else if (kv->arr_type == GGUF_F32 || kv->arr_type == GGUF_F64) {
            sink += (uint64_t)(gguf_arr_float(kv, kv->arr_n - 1) != 0);
        } else {
            sink += (uint64_t)gguf_arr_int(kv, kv->arr_n - 1);
        }
    }
    for (int64_t i = 0; i < g.n_tensors; i++)
        if (g.tensors[i].nbytes)
            sink += g.tensors[i].data[0] + g.tensors[i].data[g.tensors[i].nbytes - 1];
    (void)sink;
    int64_t v;
    char *s = NULL;
    gguf_get_int(&g, "general.alignment", &v);
    if (gguf_get_str(&g, "general.architecture", &s) == 1) free(s);
    gguf_close(&g);
    err_clear();
    return 0;
}
