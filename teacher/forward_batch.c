#include "teacher/forward_batch.h"

#include <string.h>

#include "core/error.h"
#include "core/hash.h"

int forward_batch_check(const teacher_model *tm, const int *tokens, const token_layout *tl,
                        const int *out_rows, int n_out) {
    const int n = tl->n;
    const int64_t vocab = tm->cfg.vocab_size;
    if (n <= 0) return err_fail(R1_EINPUT, "tokens", "no tokens to run");
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= vocab)
            return err_fail(R1_EINPUT, "tokens", "token id %d is outside the vocabulary [0, %lld)",
                            tokens[i], (long long)vocab);
        if (tl->slot[i] < 0 || tl->slot[i] >= tm->cache_slots)
            return err_fail(R1_EINPUT, "tokens", "cache slot %d is outside [0, %d)", tl->slot[i],
                            tm->cache_slots);
        if (tl->pos[i] < 0 || tl->pos[i] >= tm->cache_len)
            return err_fail(R1_EINPUT, "tokens", "position %d is past the cache length %d",
                            tl->pos[i], tm->cache_len);
    }
    for (int i = 0; i < n_out; i++)
        if (out_rows[i] < 0 || out_rows[i] >= n)
            return err_fail(R1_EINPUT, "tokens", "output row %d is outside the batch of %d",
                            out_rows[i], n);
    return R1_OK;
}

size_t forward_batch_pack(int *host, const int *tokens, const token_layout *tl,
                          const int *out_rows, int n_out) {
    const size_t n = (size_t)tl->n;
    memcpy(host, tokens, sizeof(int) * n);
    memcpy(host + n, tl->slot, sizeof(int) * n);
    memcpy(host + 2 * n, tl->pos, sizeof(int) * n);
    memcpy(host + 3 * n, out_rows, sizeof(int) * (size_t)n_out);
    return 3 * n + (size_t)n_out;
}

void forward_batch_upload(backend *be, int *dev, int *host, const int *tokens,
                          const token_layout *tl, const int *out_rows, int n_out) {
    const size_t k = forward_batch_pack(host, tokens, tl, out_rows, n_out);
    be->upload(be, dev, host, sizeof(int) * k);
}

int forward_capacity(int have, int want) {
    int c = have > 1 ? have : 1;
    while (c < want) c *= 2;
    return c;
}

static uint64_t key_mix(uint64_t h, uint64_t v) {
    return hash_mix64(h ^ (v + HASH_GOLDEN64 + (h << 6) + (h >> 2)));
}

uint64_t forward_graph_key(uint64_t arch, const teacher_model *tm, int n, int n_out, const void *x,
                           const void *cache, const void *out) {
    const uint64_t parts[] = {(uintptr_t)tm, (uint64_t)n, (uint64_t)n_out, (uintptr_t)x,
                              (uintptr_t)cache, (uintptr_t)out, (uint64_t)tm->cache_slots,
                              (uint64_t)tm->cache_len};
    uint64_t key = arch;
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) key = key_mix(key, parts[i]);
    return key;
}
