/* GGUF: write a file with every metadata type and several tensor types, read it back exactly;
 * the reader refuses each kind of malformed file with a message naming the problem, and every
 * truncation of a valid file. */
#include <unistd.h>

#include "convert/gguf.h"
#include "core/error.h"
#include "core/fileio.h"
#include "tests/unit/testing.h"

static char tmpdir[] = "/tmp/r1-test-gguf-XXXXXX";

static char *write_sample(void) {
    char *path = path_join(tmpdir, "sample.gguf");
    gguf_writer *w = gguf_writer_new();
    gguf_put_str(w, "general.architecture", "llama");
    gguf_put_u32(w, "llama.block_count", 2);
    gguf_put_i32(w, "test.neg", -7);
    gguf_put_u64(w, "test.big", 1ull << 40);
    gguf_put_f32(w, "llama.rope.freq_base", 500000.0f);
    gguf_put_bool(w, "tokenizer.ggml.add_bos_token", 1);
    gguf_put_u32(w, "test.replaced", 1);
    gguf_put_u32(w, "test.replaced", 2); /* a repeated key replaces the value */
    const char *toks[] = {"a", "", "Ġthe", "<｜User｜>"};
    gguf_put_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
    int32_t types[] = {1, 1, 1, 3};
    gguf_put_arr_i32(w, "tokenizer.ggml.token_type", types, 4);
    float f[] = {1.0f, 2.5f, -3.0f};
    gguf_put_arr_f32(w, "test.floats", f, 3);
    gguf_add_tensor(w, "a", QUANT_F32, 1, (int64_t[]){5});
    gguf_add_tensor(w, "b", QUANT_Q8_0, 2, (int64_t[]){64, 3});
    gguf_add_tensor(w, "c", QUANT_F16, 3, (int64_t[]){2, 3, 4});
    EXPECT_EQ_INT(gguf_write_begin(w, path), R1_OK);
    float a[5] = {1, 2, 3, 4, 5};
    gguf_write_data(w, a, sizeof a);
    uint8_t b[34 * 6];
    for (size_t i = 0; i < sizeof b; i++) b[i] = (uint8_t)i;
    gguf_write_data(w, b, 100); /* in pieces */
    gguf_write_data(w, b + 100, sizeof b - 100);
    uint16_t c[24];
    for (int i = 0; i < 24; i++) c[i] = (uint16_t)(i * 1000);
    gguf_write_data(w, c, sizeof c);
    EXPECT_EQ_INT(gguf_write_end(w), R1_OK);
    gguf_writer_free(w);
    return path;
}

static void test_round_trip(void) {
    char *path = write_sample();
    gguf_file g;
    int rc = gguf_open(&g, path);
    EXPECT_MSG(rc == R1_OK, "%s: %s", err_what(), err_why());
    if (rc) return;
    EXPECT_EQ_INT(g.version, 3);
    EXPECT_EQ_INT(g.n_kv, 10);
    EXPECT_EQ_INT(g.n_tensors, 3);
    char *s;
    int64_t i;
    double d;
    int bo;
    EXPECT(gguf_get_str(&g, "general.architecture", &s) == 1 && strcmp(s, "llama") == 0);
    free(s);
    EXPECT(gguf_get_int(&g, "llama.block_count", &i) == 1 && i == 2);
    EXPECT(gguf_get_int(&g, "test.neg", &i) == 1 && i == -7);
    EXPECT(gguf_get_int(&g, "test.big", &i) == 1 && i == (1ll << 40));
    EXPECT(gguf_get_int(&g, "test.replaced", &i) == 1 && i == 2);
    EXPECT(gguf_get_float(&g, "llama.rope.freq_base", &d) == 1 && d == 500000.0);
    EXPECT(gguf_get_float(&g, "llama.block_count", &d) == 1 && d == 2.0); /* ints convert */
    EXPECT(gguf_get_bool(&g, "tokenizer.ggml.add_bos_token", &bo) == 1 && bo == 1);
    EXPECT(gguf_get_int(&g, "absent", &i) == 0);
    EXPECT(gguf_get_int(&g, "general.architecture", &i) == -1); /* wrong type */
    EXPECT(strstr(err_why(), "expected an integer") != NULL);
    EXPECT(gguf_get_float(&g, "llama.rope.freq_base", &d) == 1);
    EXPECT(gguf_get_int(&g, "llama.rope.freq_base", &i) == -1); /* a float is no integer */
    const gguf_kv *kv = gguf_find(&g, "tokenizer.ggml.tokens");
    EXPECT(kv && kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING && kv->arr_n == 4);
    if (kv) {
        gguf_str t[4];
        gguf_arr_strings(kv, t);
        EXPECT(t[0].n == 1 && memcmp(t[0].p, "a", 1) == 0);
        EXPECT(t[1].n == 0);
        EXPECT(t[2].n == strlen("Ġthe") && memcmp(t[2].p, "Ġthe", t[2].n) == 0);
        EXPECT(t[3].n == strlen("<｜User｜>") && memcmp(t[3].p, "<｜User｜>", t[3].n) == 0);
    }
    kv = gguf_find(&g, "tokenizer.ggml.token_type");
    EXPECT(kv && kv->arr_type == GGUF_I32 && gguf_arr_int(kv, 3) == 3);
    kv = gguf_find(&g, "test.floats");
    EXPECT(kv && kv->arr_type == GGUF_F32 && gguf_arr_float(kv, 1) == 2.5 &&
           gguf_arr_float(kv, 2) == -3.0);
    const gguf_tensor *a = gguf_find_tensor(&g, "a"), *b = gguf_find_tensor(&g, "b"),
                      *c = gguf_find_tensor(&g, "c");
    EXPECT(a && b && c);
    if (a && b && c) {
        EXPECT(a->type == QUANT_F32 && a->n_dims == 1 && a->ne[0] == 5 && a->nbytes == 20);
        EXPECT(((const float *)a->data)[4] == 5.0f);
        EXPECT(b->type == QUANT_Q8_0 && b->ne[0] == 64 && b->ne[1] == 3 && b->nbytes == 204);
        EXPECT(b->data[203] == 203 && b->data[0] == 0);
        EXPECT(c->n_dims == 3 && c->ne[2] == 4 && ((const uint16_t *)c->data)[23] == 23000);
        EXPECT(a->offset % 32 == 0 && b->offset % 32 == 0 && c->offset % 32 == 0);
        EXPECT((g.data_offset % 32) == 0);
    }
    gguf_close(&g);
    unlink(path);
    free(path);
}

/* ---- malformed files, built byte by byte ---- */

typedef struct {
    uint8_t b[4096];
    size_t n;
} bytes;

static void le(bytes *x, uint64_t v, int n) {
    for (int i = 0; i < n; i++) x->b[x->n++] = (uint8_t)(v >> (8 * i));
}
static void str(bytes *x, const char *s) {
    le(x, strlen(s), 8);
    memcpy(x->b + x->n, s, strlen(s));
    x->n += strlen(s);
}
static void header(bytes *x, uint64_t nt, uint64_t nkv) {
    x->n = 0;
    memcpy(x->b, "GGUF", 4);
    x->n = 4;
    le(x, 3, 4);
    le(x, nt, 8);
    le(x, nkv, 8);
}
static void tensor_info(bytes *x, const char *name, int nd, const int64_t *ne, int type,
                        uint64_t off) {
    str(x, name);
    le(x, (uint64_t)nd, 4);
    for (int d = 0; d < nd; d++) le(x, (uint64_t)ne[d], 8);
    le(x, (uint64_t)type, 4);
    le(x, off, 8);
}
static void pad(bytes *x, size_t extra) {
    while (x->n % 32) x->b[x->n++] = 0;
    memset(x->b + x->n, 0, extra);
    x->n += extra;
}

static void expect_refused(bytes *x, const char *needle) {
    gguf_file g;
    int rc = gguf_parse(&g, x->b, x->n, "bad.gguf");
    EXPECT_MSG(rc == R1_EINPUT, "accepted a file that should fail with \"%s\"", needle);
    if (rc == R1_OK) {
        gguf_close(&g);
        return;
    }
    EXPECT_MSG(strstr(err_why(), needle) != NULL, "message \"%s\" lacks \"%s\"", err_why(), needle);
    EXPECT_STREQ(err_what(), "bad.gguf");
}

static void test_malformed(void) {
    bytes x;
    header(&x, 0, 0);
    memcpy(x.b, "GGML", 4);
    expect_refused(&x, "not a GGUF file");
    header(&x, 0, 0);
    x.b[4] = 1;
    expect_refused(&x, "version 1 is not supported");
    header(&x, 0, 0);
    x.b[4] = 0;
    x.b[7] = 3;
    expect_refused(&x, "big-endian");
    header(&x, 1ull << 40, 0);
    expect_refused(&x, "cannot fit");
    header(&x, 0, 1);
    str(&x, "k");
    le(&x, 99, 4);
    expect_refused(&x, "unknown value type 99");
    header(&x, 0, 1);
    str(&x, "k");
    le(&x, GGUF_ARRAY, 4);
    le(&x, GGUF_ARRAY, 4);
    le(&x, 0, 8);
    expect_refused(&x, "nested array");
    header(&x, 0, 1);
    str(&x, "k");
    le(&x, GGUF_BOOL, 4);
    le(&x, 2, 1);
    expect_refused(&x, "neither 0 nor 1");
    header(&x, 0, 1);
    str(&x, "k");
    le(&x, GGUF_STRING, 4);
    le(&x, 1000, 8);
    expect_refused(&x, "past the end of the file");
    header(&x, 0, 1);
    str(&x, "k");
    le(&x, GGUF_ARRAY, 4);
    le(&x, GGUF_STRING, 4);
    le(&x, 1ull << 60, 8);
    expect_refused(&x, "strings runs past the end");
    header(&x, 0, 1);
    str(&x, "k");
    le(&x, GGUF_ARRAY, 4);
    le(&x, GGUF_U64, 4);
    le(&x, 3, 8);
    le(&x, 0, 8);
    expect_refused(&x, "runs past the end of the file");
    header(&x, 0, 2);
    str(&x, "k");
    le(&x, GGUF_U8, 4);
    le(&x, 1, 1);
    str(&x, "k");
    le(&x, GGUF_U8, 4);
    le(&x, 1, 1);
    expect_refused(&x, "appears twice");
    header(&x, 0, 1);
    str(&x, "general.alignment");
    le(&x, GGUF_U32, 4);
    le(&x, 24, 4);
    expect_refused(&x, "power of two");
    header(&x, 0, 1);
    str(&x, "");
    le(&x, GGUF_U8, 4);
    le(&x, 1, 1);
    expect_refused(&x, "is empty");

    int64_t ne[5] = {32, 2, 1, 1, 1};
    header(&x, 1, 0);
    tensor_info(&x, "t", 5, ne, QUANT_F32, 0);
    expect_refused(&x, "5 dimensions");
    header(&x, 1, 0);
    tensor_info(&x, "t", 2, ne, 4, 0);
    expect_refused(&x, "unknown ggml type 4");
    header(&x, 1, 0);
    tensor_info(&x, "t", 2, (int64_t[]){33, 1}, QUANT_Q8_0, 0);
    expect_refused(&x, "not a multiple of the Q8_0 block");
    header(&x, 1, 0);
    tensor_info(&x, "0123456789012345678901234567890123456789012345678901234567890123", 1, ne,
                QUANT_F32, 0);
    expect_refused(&x, "has a name of 64 bytes");
    header(&x, 1, 0);
    tensor_info(&x, "t", 2, (int64_t[]){32, INT64_MAX / 8}, QUANT_F32, 0);
    expect_refused(&x, "too large");
    header(&x, 1, 0);
    tensor_info(&x, "t", 1, ne, QUANT_F32, 8);
    pad(&x, 512);
    expect_refused(&x, "not a multiple of the alignment");
    header(&x, 1, 0);
    tensor_info(&x, "t", 1, ne, QUANT_F32, 0);
    pad(&x, 127); /* 32 floats need 128 bytes */
    expect_refused(&x, "past the end of the file");
    header(&x, 2, 0);
    tensor_info(&x, "t", 1, ne, QUANT_F32, 0);
    tensor_info(&x, "u", 1, ne, QUANT_F32, 96);
    pad(&x, 256);
    expect_refused(&x, "overlap");
    header(&x, 2, 0);
    tensor_info(&x, "t", 1, ne, QUANT_F32, 0);
    tensor_info(&x, "t", 1, ne, QUANT_F32, 128);
    pad(&x, 256);
    expect_refused(&x, "tensor name \"t\" appears twice");
    /* and the same two tensors without the clash parse */
    header(&x, 2, 0);
    tensor_info(&x, "t", 1, ne, QUANT_F32, 0);
    tensor_info(&x, "u", 1, ne, QUANT_F32, 128);
    pad(&x, 256);
    gguf_file g;
    EXPECT_EQ_INT(gguf_parse(&g, x.b, x.n, "good.gguf"), R1_OK);
    gguf_close(&g);
}

/* Every prefix of a valid file that cuts into its tensor data or metadata is refused without
 * reading past its end (the sanitizer pass checks the "without"); only the trailing padding of
 * the last tensor may go. */
static void test_truncations(void) {
    char *path = write_sample();
    char *data;
    size_t len;
    EXPECT_EQ_INT(file_read_all(path, 1 << 20, &data, &len), R1_OK);
    gguf_file full;
    EXPECT_EQ_INT(gguf_open(&full, path), R1_OK);
    const gguf_tensor *last = gguf_find_tensor(&full, "c");
    const size_t end = full.data_offset + last->offset + last->nbytes;
    gguf_close(&full);
    EXPECT(end < len);
    int accepted = 0;
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = xmalloc(n ? n : 1); /* exact size: ASan sees any over-read */
        memcpy(copy, data, n);
        gguf_file g;
        if (gguf_parse(&g, copy, n, "cut.gguf") == R1_OK) {
            accepted += n < end;
            gguf_close(&g);
        }
        free(copy);
    }
    EXPECT_EQ_INT(accepted, 0);
    /* single-byte corruptions: never a crash; a change in a length or count is refused or
     * still yields a self-consistent file */
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = xmalloc(len);
        memcpy(copy, data, len);
        copy[n] ^= 0xA5;
        gguf_file g;
        if (gguf_parse(&g, copy, len, "flip.gguf") == R1_OK) {
            for (int64_t i = 0; i < g.n_tensors; i++)
                EXPECT(g.tensors[i].data + g.tensors[i].nbytes <= copy + len);
            gguf_close(&g);
        }
        free(copy);
    }
    free(data);
    unlink(path);
    free(path);
}

int main(void) {
    CHECK(mkdtemp(tmpdir));
    RUN(test_round_trip);
    RUN(test_malformed);
    RUN(test_truncations);
    rmdir(tmpdir);
    TESTS_DONE();
}
