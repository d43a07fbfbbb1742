#include "core/hash.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

uint64_t hash_fnv1a64_update(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t hash_fnv1a64(const void *data, size_t n) {
    return hash_fnv1a64_update(HASH_FNV1A64_INIT, data, n);
}

void hash_hex64(char out[17], uint64_t h) { snprintf(out, 17, "%016llx", (unsigned long long)h); }

int hash_file(const char *path, uint64_t *h, uint64_t *bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_fail(R1_EINPUT, path, "cannot open: %s", strerror(errno));
    uint64_t acc = HASH_FNV1A64_INIT, total = 0;
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        acc = hash_fnv1a64_update(acc, buf, got);
        total += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) return err_fail(R1_ERUNTIME, path, "read failed after %llu bytes",
                             (unsigned long long)total);
    *h = acc;
    *bytes = total;
    return R1_OK;
}
