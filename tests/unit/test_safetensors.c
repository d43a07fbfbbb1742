/* safetensors reader and writer: round trips, shards, and every validation rule. */
#include <unistd.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "tests/unit/testing.h"

static char dir[256];

static char *tmp_path(const char *name) { return path_join(dir, name); }

/* Writes a file made of an 8-byte header length, the header text and `data_len` data bytes. */
static char *write_raw(const char *name, uint64_t hlen_field, const char *hdr, size_t data_len) {
    char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(hlen_field >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(hdr, 1, strlen(hdr), f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i * 7), f);
    fclose(f);
    return p;
}

static char *write_hdr(const char *name, const char *hdr, size_t data_len) {
    return write_raw(name, strlen(hdr), hdr, data_len);
}

/* Opens and expects failure with status 2 and `needle` in the message. */
static void expect_bad(const char *path, const char *needle) {
    safetensors st;
    int rc = safetensors_open(&st, path);
    EXPECT_MSG(rc == R1_EINPUT, "%s: status %d", path, rc);
    char msg[2200];
    snprintf(msg, sizeof msg, "%s: %s", err_what(), err_why());
    EXPECT_MSG(strstr(msg, needle) != NULL, "message \"%s\" lacks \"%s\"", msg, needle);
    EXPECT_MSG(strstr(msg, path) != NULL || strstr(msg, dir) != NULL, "message \"%s\" names no file", msg);
    if (rc == R1_OK) safetensors_close(&st);
}

static void test_round_trip(void) {
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[4] = {f32_to_bf16(1.5f), f32_to_bf16(-2.0f), f32_to_bf16(0.25f), 0};
    int64_t c[3] = {7, -8, 1LL << 40};
    st_entry e[3] = {
        {"w.a", DTYPE_F32, 2, {2, 3}, a},
        {"w.b", DTYPE_BF16, 1, {4}, b},
        {"w.c", DTYPE_I64, 1, {3}, c},
    };
    char *p = tmp_path("rt.safetensors");
    EXPECT(safetensors_write(p, e, 3, NULL) == R1_OK);
    safetensors st;
    EXPECT(safetensors_open(&st, p) == R1_OK);
    EXPECT_EQ_INT(st.n, 3);
    const st_tensor *t = safetensors_find(&st, "w.a");
    EXPECT(t && t->dt == DTYPE_F32 && t->ndim == 2 && t->shape[1] == 3 &&
           memcmp(t->data, a, sizeof a) == 0);
    t = safetensors_find(&st, "w.b");
    EXPECT(t && t->dt == DTYPE_BF16 && bf16_to_f32(((const uint16_t *)t->data)[1]) == -2.0f);
    t = safetensors_find(&st, "w.c");
    EXPECT(t && ((const int64_t *)t->data)[2] == (1LL << 40));
    EXPECT(safetensors_find(&st, "missing") == NULL);
    EXPECT(safetensors_need(&st, "missing") == NULL && err_status() == R1_EINPUT);
    int64_t want[2] = {3, 2};
    EXPECT(safetensors_need_shape(&st, "w.a", 2, want, "a test") == NULL);
    EXPECT(strstr(err_why(), "[2, 3]") && strstr(err_why(), "[3, 2]"));
    safetensors_close(&st);
    free(p);
}

static void test_sharded_dir(void) {
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6}, c[3] = {7, 8, 9};
    st_entry e[3] = {
        {"x", DTYPE_F32, 1, {4}, a}, {"y", DTYPE_F32, 1, {2}, b}, {"z", DTYPE_F32, 1, {3}, c}};
    char *d = tmp_path("sharded");
    EXPECT(safetensors_write_dir(d, e, 3, 20) == R1_OK); /* 16 + 8 > 20: two or more shards */
    char *idx = path_join(d, "model.safetensors.index.json");
    EXPECT(path_exists(idx));
    safetensors st;
    EXPECT(safetensors_open(&st, d) == R1_OK);
    EXPECT(st.n == 3 && st.n_shards >= 2);
    const st_tensor *t = safetensors_find(&st, "z");
    EXPECT(t && ((const float *)t->data)[2] == 9.0f);
    safetensors_close(&st);
    /* an index that names a tensor its shard does not hold */
    FILE *f = fopen(idx, "w");
    fprintf(f, "{\"weight_map\": {\"x\": \"model-00001-of-00002.safetensors\", "
               "\"nope\": \"model-00001-of-00002.safetensors\"}}");
    fclose(f);
    expect_bad(d, "does not hold it");
    f = fopen(idx, "w");
    fprintf(f, "{\"weight_map\": {\"x\": \"../etc/passwd\"}}");
    fclose(f);
    expect_bad(d, "inside the checkpoint directory");
    f = fopen(idx, "w");
    fprintf(f, "{\"weight_map\": {\"x\": \"model-00009-of-00009.safetensors\"}}");
    fclose(f);
    expect_bad(d, "cannot open");
    free(idx);
    free(d);
    char *empty = tmp_path("emptydir");
    dir_create(empty);
    expect_bad(empty, "no model.safetensors");
    free(empty);
}

static void test_validation(void) {
    char *p;
    p = tmp_path("short.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    expect_bad(p, "truncated");
    free(p);
    p = write_raw("past_end.safetensors", 1000, "{}", 0);
    expect_bad(p, "past the end");
    free(p);
    p = write_raw("huge.safetensors", 200000000ull, "{}", 0);
    expect_bad(p, "100 MB");
    free(p);
    p = write_hdr("badjson.safetensors", "{\"a\": {\"dtype\": ", 0);
    expect_bad(p, "invalid JSON");
    free(p);
    p = write_hdr("notobj.safetensors", "[1, 2]", 0);
    expect_bad(p, "'{'");
    free(p);
    p = write_hdr("dtype.safetensors",
                  "{\"a\": {\"dtype\": \"F12\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4);
    expect_bad(p, "unknown dtype \"F12\"");
    free(p);
    p = write_hdr("size.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 12]}}", 12);
    expect_bad(p, "needs 16 bytes");
    free(p);
    p = write_hdr("range.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8);
    expect_bad(p, "outside the 8-byte data area");
    free(p);
    p = write_hdr("overlap.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                  " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12);
    expect_bad(p, "overlaps");
    free(p);
    p = write_hdr("hole.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8);
    expect_bad(p, "hole");
    free(p);
    p = write_hdr("tail.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 8);
    expect_bad(p, "belongs to no tensor");
    free(p);
    p = write_hdr("neg.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4);
    expect_bad(p, "shape entries");
    free(p);
    p = write_hdr("overflow.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 16], "
                  "\"data_offsets\": [0, 4]}}", 4);
    expect_bad(p, "too large");
    free(p);
    p = write_hdr("offsets.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4);
    expect_bad(p, "data_offsets");
    free(p);
    p = write_hdr("dup.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                  " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8);
    expect_bad(p, "appears twice");
    free(p);
    p = write_hdr("meta.safetensors", "{\"__metadata__\": 3}", 0);
    expect_bad(p, "__metadata__");
    free(p);
    /* valid edge cases: no tensors at all; a zero-sized tensor; padding spaces in the header */
    p = write_hdr("empty.safetensors", "{\"__metadata__\": {\"format\": \"pt\"}}   ", 0);
    safetensors st;
    EXPECT(safetensors_open(&st, p) == R1_OK && st.n == 0);
    safetensors_close(&st);
    free(p);
    p = write_hdr("zero.safetensors",
                  "{\"z\": {\"dtype\": \"BF16\", \"shape\": [0, 5], \"data_offsets\": [0, 0]}}", 0);
    EXPECT(safetensors_open(&st, p) == R1_OK && st.n == 1 && st.tensors[0].nbytes == 0);
    safetensors_close(&st);
    free(p);
}

static void test_dtypes(void) {
    EXPECT(dtype_size(DTYPE_F8_E4M3) == 1 && dtype_size(DTYPE_I64) == 8);
    dtype t;
    EXPECT(dtype_from_name("F8_E4M3", &t) == 0 && t == DTYPE_F8_E4M3);
    EXPECT(dtype_from_name("bf16", &t) == -1);
    /* bf16 rounds to nearest even */
    EXPECT(f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);          /* tie, even stays */
    EXPECT(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-9f) == 0x3f81); /* above the tie */
    EXPECT(f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);      /* tie, odd rounds up */
    /* the split float32 (the CUDA trainer's master weights): hi is the nearest bf16, ties away
     * from zero, and every pattern comes back exactly */
    EXPECT(f32_split_hi(1.0f + 0x1p-8f) == 0x3f81 && f32_split_hi(-(1.0f + 0x1p-8f)) == 0xbf81);
    EXPECT(f32_split_hi(1.0f + 0x1p-8f - 0x1p-23f) == 0x3f80);
    for (uint32_t k = 0; k < 200000; k++) {
        const uint32_t u = k < 65536 ? k * 65537u : (uint32_t)(k * 2654435761u) ^ (k << 7);
        const float f = bits_to_f32(u);
        const uint16_t hi = f32_split_hi(f), lo = f32_split_lo(f);
        EXPECT(f32_to_bits(f32_join(hi, lo)) == u);
        const uint32_t e = u & 0x7f800000u; /* finite and not where rounding carries to infinity */
        if (e != 0x7f800000u && (u & 0x7fffffffu) < 0x7f7f8000u)
            EXPECT(fabsf(bf16_to_f32(hi) - f) <= fabsf(round_bf16(f) - f));
    }
    /* f16 exact values, rounding and specials */
    EXPECT(f16_to_f32(0x3c00) == 1.0f && f16_to_f32(0xc000) == -2.0f);
    EXPECT(f16_to_f32(0x0001) == 0x1p-24f && f16_to_f32(0x7bff) == 65504.0f);
    EXPECT(f32_to_f16(65504.0f) == 0x7bff && f32_to_f16(1e6f) == 0x7c00);
    EXPECT(f32_to_f16(0x1p-24f) == 0x0001 && f32_to_f16(0x1p-26f) == 0);
    for (uint32_t h = 0; h < 0x7c00; h++) EXPECT(f32_to_f16(f16_to_f32((uint16_t)h)) == h);
    /* fp8 e4m3fn: every finite code round-trips; NaN codes; saturation; known values */
    for (int b = 0; b < 256; b++) {
        if ((b & 0x7f) == 0x7f) {
            EXPECT(isnan(fp8_e4m3_to_f32((uint8_t)b)));
            continue;
        }
        EXPECT_MSG(f32_to_fp8_e4m3(fp8_e4m3_to_f32((uint8_t)b)) == b ||
                       (b == 0x80 && f32_to_fp8_e4m3(-0.0f) == 0x80),
                   "code %d", b);
    }
    EXPECT(fp8_e4m3_to_f32(0x7e) == 448.0f && fp8_e4m3_to_f32(0x01) == 0x1p-9f);
    EXPECT(fp8_e4m3_to_f32(0x38) == 1.0f && fp8_e4m3_to_f32(0xc0) == -2.0f);
    EXPECT(f32_to_fp8_e4m3(1000.0f) == 0x7e && f32_to_fp8_e4m3(-1000.0f) == 0xfe);
    EXPECT(f32_to_fp8_e4m3(1.0625f) == 0x38);  /* halfway 1 and 1.125: ties to even code */
    EXPECT(f32_to_fp8_e4m3(1.1875f) == 0x3a);  /* halfway 1.125 and 1.25 -> even 1.25 */
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/r1test-st-%d", (int)getpid());
    dir_create(dir);
    RUN(test_round_trip);
    RUN(test_sharded_dir);
    RUN(test_validation);
    RUN(test_dtypes);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    TESTS_DONE();
}
