/* The training attention's host-side plans, which need no GPU: the tile lists of packed
 * documents (student/cuda/attention.cu attn_tiles_build) with each document's first dS slot, and
 * how many heads a pass of the backward that keeps dS takes for a given scratch
 * (student/cuda/attention_wgmma.cu attn_ds_heads_per_pass). Built where the CUDA library is. */
#include <stdlib.h>

#include "student/cuda/kernels.h"
#include "tests/unit/testing.h"

/* b (b + 1) / 2 slots for a document of b 64-row blocks */
static int doc_slots(int len) {
    const int b = (len + ATTN_TILE - 1) / ATTN_TILE;
    return b * (b + 1) / 2;
}

/* Both lists hold the same tiles (each document cut into `rows`-row tiles from its start, each
 * carrying its document's first slot), ordered by most keys and most queries first; every
 * (query block, key block <= it) pair of a document gets its own slot below the total. */
static void check_tiles(const int *lens, int n_docs, int rows) {
    int cu[16];
    cu[0] = 0;
    for (int i = 0; i < n_docs; i++) cu[i + 1] = cu[i] + lens[i];
    const int nt = attn_tiles_count(cu, n_docs, rows);
    int *tq = malloc(sizeof(int) * ATTN_TILE_INTS * nt), *tk = malloc(sizeof(int) * ATTN_TILE_INTS * nt);
    const int slots = attn_tiles_build(tq, tk, cu, n_docs, rows);
    int want = 0, tiles = 0;
    for (int i = 0; i < n_docs; i++) {
        for (int r = cu[i]; r < cu[i + 1]; r += rows) {
            int in_q = 0, in_k = 0;
            for (int t = 0; t < nt; t++) {
                const int *e = tq + ATTN_TILE_INTS * t, *f = tk + ATTN_TILE_INTS * t;
                in_q += e[0] == r && e[1] == (r + rows < cu[i + 1] ? r + rows : cu[i + 1]) &&
                        e[2] == cu[i] && e[3] == cu[i + 1] && e[4] == want;
                in_k += f[0] == r && f[2] == cu[i] && f[3] == cu[i + 1] && f[4] == want;
            }
            EXPECT_MSG(in_q == 1 && in_k == 1, "document %d, tile at row %d: %d, %d", i, r, in_q, in_k);
            tiles++;
        }
        want += doc_slots(lens[i]);
    }
    EXPECT_EQ_INT(tiles, nt);
    EXPECT_EQ_INT(slots, want);
    for (int t = 1; t < nt; t++) {
        const int *a = tq + ATTN_TILE_INTS * (t - 1), *b = tq + ATTN_TILE_INTS * t;
        EXPECT_MSG(a[0] - a[2] >= b[0] - b[2], "query tiles %d, %d: fewer keys first", t - 1, t);
        const int *c = tk + ATTN_TILE_INTS * (t - 1), *d = tk + ATTN_TILE_INTS * t;
        EXPECT_MSG(c[3] - c[0] >= d[3] - d[0], "key tiles %d, %d: fewer queries first", t - 1, t);
    }
    /* the kernels' slot of (a, b): the document's first + a (a + 1) / 2 + b */
    char *seen = calloc((size_t)slots + 1, 1);
    int base = 0;
    for (int i = 0; i < n_docs; i++) {
        const int nb = (lens[i] + ATTN_TILE - 1) / ATTN_TILE;
        for (int a = 0; a < nb; a++)
            for (int b = 0; b <= a; b++) {
                const int s = base + a * (a + 1) / 2 + b;
                EXPECT_MSG(s >= 0 && s < slots && !seen[s], "document %d block (%d, %d): slot %d", i, a, b, s);
                if (s >= 0 && s < slots) seen[s] = 1;
            }
        base += doc_slots(lens[i]);
    }
    for (int s = 0; s < slots; s++) EXPECT_MSG(seen[s], "slot %d of %d belongs to no block", s, slots);
    free(seen);
    free(tq);
    free(tk);
}

static void test_tile_lists(void) {
    const int l1[] = {1, 63, 64, 65, 200, 7}, l2[] = {130, 129, 3}, l3[] = {4096}, l4[] = {1};
    check_tiles(l1, 6, 2 * ATTN_TILE);
    check_tiles(l1, 6, ATTN_TILE);
    check_tiles(l2, 3, 2 * ATTN_TILE);
    check_tiles(l3, 1, 2 * ATTN_TILE);
    check_tiles(l4, 1, 2 * ATTN_TILE);
}

/* A shape of n tokens in one document with H / KV heads of head_dim hd and `bytes` of scratch. */
static attn_shape ds_shape(int n, int H, int KV, int hd, size_t bytes, int max_heads) {
    static char scratch; /* only its address is read */
    return (attn_shape){.n = n, .n_heads = H, .n_kv_heads = KV, .head_dim = hd,
                        .ds_slots = doc_slots(n), .ds_scratch = bytes ? &scratch : NULL,
                        .ds_scratch_bytes = bytes, .ds_max_heads = max_heads};
}

static void test_heads_per_pass(void) {
    const int n = 32768;
    const size_t head = (size_t)doc_slots(n) * ATTN_DS_SLOT_BYTES; /* 1,075,838,976 bytes */
    const size_t part = attn_ds_partial_bytes(n, 2, 128);
    EXPECT_EQ_INT(head, 1075838976);
    EXPECT_EQ_INT(part, (size_t)n * 2 * 2 * 128 * 4);
    attn_shape a;
    /* the 1.5B's 12 heads in 2 groups of 6 */
    a = ds_shape(n, 12, 2, 128, 0, 0);
    EXPECT_EQ_INT(attn_ds_heads_per_pass(&a), 0); /* no scratch: recompute */
    a = ds_shape(n, 12, 2, 128, 12 * head, 0);
    EXPECT_EQ_INT(attn_ds_heads_per_pass(&a), 12); /* all at once */
    a = ds_shape(n, 12, 2, 64, 12 * head, 0);
    EXPECT_EQ_INT(attn_ds_heads_per_pass(&a), 0); /* head_dim 64 recomputes */
    a = ds_shape(n, 12, 2, 128, 7 * head, 0);
    EXPECT_EQ_INT(attn_ds_heads_per_pass(&a), 6); /* whole groups, no partials */
    a = ds_shape(n, 12, 2, 128, part + 5 * head, 0);
    EXPECT_EQ_INT(attn_ds_heads_per_pass(&a), 4); /* 5 fit: 12 in 3 passes of 4 */
    a = ds_shape(n, 12, 2, 128, part + 2 * head + head / 2, 0);
    EXPECT_EQ_INT(attn_ds_heads_per_pass(&a), 2); /* what train lends at 32k, all but attention */
    a = ds_shape(n, 12, 2, 128, part + head, 0);
    EXPECT_EQ_INT(attn_ds_heads_per_pass(&a), 1);
    a = ds_shape(n, 12, 2, 128, part + head - 1, 0);
    EXPECT_EQ_INT(attn_ds_heads_per_pass(&a), 0); /* one head and the partials do not fit */
    a = ds_shape(n, 12, 2, 128, head, 0);
    EXPECT_EQ_INT(attn_ds_heads_per_pass(&a), 0); /* one head, but no room for the partials */
    a = ds_shape(n, 12, 2, 128, 12 * head, 1);
    EXPECT_EQ_INT(attn_ds_heads_per_pass(&a), 1); /* capped */
    /* the 7B's 28 heads in 4 groups of 7: 10 fit, whole groups of 7 in 4 passes */
    a = ds_shape(n, 28, 4, 128, 10 * head, 0);
    EXPECT_EQ_INT(attn_ds_heads_per_pass(&a), 7);
    a = ds_shape(n, 28, 4, 128, 15 * head, 0);
    EXPECT_EQ_INT(attn_ds_heads_per_pass(&a), 14); /* two groups, two passes */
}

int main(void) {
    RUN(test_tile_lists);
    RUN(test_heads_per_pass);
    return testing_failures ? 1 : 0;
}
