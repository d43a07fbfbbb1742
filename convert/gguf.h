/* GGUF files: a validating, memory-mapped reader and a streaming, crash-safe writer.
 *
 * Layout (ggml docs/gguf.md, version 3; all little-endian):
 *
 *   u32 magic "GGUF"   u32 version (3; 2 is read too)   u64 n_tensors   u64 n_kv
 *   n_kv   x  { string key; u32 value_type; value }
 *   n_tensors x { string name; u32 n_dims (1..4); u64 ne[n_dims]; u32 ggml_type; u64 offset }
 *   zero padding to the alignment, then the data section: each tensor at `offset` from its
 *   start (a multiple of the alignment), tensors padded to the alignment.
 *
 *   string = u64 length + bytes (no NUL).  value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32,
 *   6 f32, 7 bool (1 byte), 8 string, 9 array (u32 element type, u64 count, elements),
 *   10 u64, 11 i64, 12 f64.  alignment = general.alignment (u32 power of two) or 32.
 *   ne[0] is the contiguous (row) dimension: a PyTorch [out, in] weight has ne = {in, out}.
 *
 * The reader checks everything before anything is used: magic and version, every length,
 * count and offset against the bytes that remain, known value and tensor types, no nested
 * arrays, bools 0/1, unique keys and tensor names, names under 64 bytes, 1 to 4 dimensions,
 * ne[0] a multiple of the type's block, no element-count overflow, offsets aligned, each
 * tensor's bytes inside the file and no two tensors overlapping. */
#ifndef R1_CONVERT_GGUF_H
#define R1_CONVERT_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/fileio.h"
#include "core/quants.h"

typedef enum {
    GGUF_U8 = 0,
    GGUF_I8 = 1,
    GGUF_U16 = 2,
    GGUF_I16 = 3,
    GGUF_U32 = 4,
    GGUF_I32 = 5,
    GGUF_F32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_U64 = 10,
    GGUF_I64 = 11,
    GGUF_F64 = 12,
    GGUF_VTYPE_COUNT
} gguf_vtype;

enum { GGUF_MAX_DIMS = 4, GGUF_MAX_NAME = 64, GGUF_DEFAULT_ALIGNMENT = 32 };

/* A string inside the mapped file (not NUL-terminated). */
typedef struct {
    const char *p;
    size_t n;
} gguf_str;

typedef struct {
    char *key;               /* NUL-terminated copy */
    gguf_vtype type;
    /* scalars */
    int is_int, is_float;    /* the value converts to an integer / a float */
    int64_t i;               /* integer types and bool (u64 above INT64_MAX is refused) */
    double f;                /* f32, f64 (and integers, converted) */
    gguf_str s;              /* string */
    /* arrays */
    gguf_vtype arr_type;
    uint64_t arr_n;
    const uint8_t *arr;      /* the first element in the file */
} gguf_kv;

typedef struct {
    char *name;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* unused dimensions are 1 */
    quant_type type;
    uint64_t offset;           /* from the data section */
    const uint8_t *data;       /* inside the map */
    size_t nbytes;
} gguf_tensor;

typedef struct {
    file_map map;              /* empty when parsed from a caller's buffer */
    char *path;
    uint32_t version;
    size_t alignment;
    size_t data_offset;        /* start of the data section in the file */
    int64_t n_kv;
    gguf_kv *kv;
    int64_t n_tensors;
    gguf_tensor *tensors;
} gguf_file;

/* Maps and validates a file. Errors name the file and the field (R1_EINPUT). */
int gguf_open(gguf_file *g, const char *path);
/* Validates a buffer the caller keeps alive (used by gguf_open and the fuzz target). */
int gguf_parse(gguf_file *g, const uint8_t *data, size_t size, const char *path);
void gguf_close(gguf_file *g);

const gguf_kv *gguf_find(const gguf_file *g, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name);

/* Typed look-ups in the style of core/json.h: 1 present (*out set), 0 absent, -1 present with a
 * type that does not convert (error recorded, R1_EINPUT). An integer getter accepts any integer
 * type whose value fits; a float getter accepts f32, f64 and integers. */
int gguf_get_int(const gguf_file *g, const char *key, int64_t *out);
int gguf_get_float(const gguf_file *g, const char *key, double *out);
int gguf_get_bool(const gguf_file *g, const char *key, int *out);
/* A fresh NUL-terminated copy of a string value (refused if it holds a NUL byte). */
int gguf_get_str(const gguf_file *g, const char *key, char **out);
/* Array element accessors; the array must have the element type (checked by the caller via
 * kv->arr_type). Strings are walked from the start: use gguf_arr_strings for many. */
int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i);
double gguf_arr_float(const gguf_kv *kv, uint64_t i);
/* Fills out[arr_n] with every string of a string array. */
void gguf_arr_strings(const gguf_kv *kv, gguf_str *out);

/* ---- writing ------------------------------------------------------------------------------
 *
 *   gguf_writer *w = gguf_writer_new();
 *   gguf_put_str(w, "general.architecture", "llama"); ...
 *   gguf_add_tensor(w, "token_embd.weight", QUANT_Q6_K, 2, (int64_t[]){4096, 128256});
 *   gguf_write_begin(w, path);            header, metadata, tensor infos
 *   gguf_write_data(w, bytes, n) ...      each tensor's bytes in order, in any number of pieces
 *   gguf_write_end(w);                    checks every tensor is complete, fsyncs, renames
 *
 * Metadata keys are unique (a repeated key replaces the earlier value). The file appears under
 * its name only when complete (core/fileio.h atomic writes). */
typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);

void gguf_put_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_put_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_put_u64(gguf_writer *w, const char *key, uint64_t v);
void gguf_put_f32(gguf_writer *w, const char *key, float v);
void gguf_put_bool(gguf_writer *w, const char *key, int v);
void gguf_put_str(gguf_writer *w, const char *key, const char *v);
void gguf_put_arr_str(gguf_writer *w, const char *key, const char *const *v, int64_t n);
void gguf_put_arr_i32(gguf_writer *w, const char *key, const int32_t *v, int64_t n);
void gguf_put_arr_f32(gguf_writer *w, const char *key, const float *v, int64_t n);

/* Declares the next tensor; ne[0] must be a multiple of the type's block (a program error
 * otherwise). Returns the tensor's byte count. */
size_t gguf_add_tensor(gguf_writer *w, const char *name, quant_type type, int n_dims,
                       const int64_t *ne);
int gguf_write_begin(gguf_writer *w, const char *path);
void gguf_write_data(gguf_writer *w, const void *data, size_t n);
int gguf_write_end(gguf_writer *w);
/* Abandons a write begun with gguf_write_begin (the temporary file is removed). */
void gguf_write_abort(gguf_writer *w);

#endif
