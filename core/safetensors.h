/* safetensors: memory-mapped reading of single files and sharded checkpoints, and writing.
 *
 * File layout (huggingface/safetensors):
 *
 *   u64 N (little-endian)       length of the header
 *   N bytes of UTF-8 JSON       {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]},
 *                                "__metadata__": {"format": "pt", ...}}   padded with spaces
 *   data                        tensors, row-major little-endian, at [8+N+b, 8+N+e)
 *
 * The reader validates everything before any tensor is touched: the header length lies inside
 * the file and under 100,000,000 bytes, the header is a JSON object, every dtype is known,
 * shape x dtype size equals the byte range, the ranges lie in the data area, do not overlap and
 * cover it without holes, and no name repeats. A sharded checkpoint is a directory with
 * model.safetensors.index.json ({"weight_map": {tensor: shard file}}); every shard is mapped and
 * every tensor the index names must be in the shard it names. */
#ifndef R1_CORE_SAFETENSORS_H
#define R1_CORE_SAFETENSORS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/fileio.h"

enum { ST_MAX_DIMS = 8 };
#define ST_MAX_HEADER 100000000ull

typedef struct {
    char *name;
    dtype dt;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data; /* inside the mapped shard */
    size_t nbytes;
    int shard;        /* index into safetensors.shards */
} st_tensor;

typedef struct {
    int n_shards;
    file_map *shards;
    int n;
    st_tensor *tensors; /* sorted by name */
} safetensors;

/* Opens a .safetensors file, or a directory holding model.safetensors.index.json or
 * model.safetensors. */
int safetensors_open(safetensors *st, const char *path);
void safetensors_close(safetensors *st);

/* Finds a tensor by name; NULL if absent. */
const st_tensor *safetensors_find(const safetensors *st, const char *name);
/* Finds a tensor or records "missing tensor NAME" (R1_EINPUT) and returns NULL. */
const st_tensor *safetensors_need(const safetensors *st, const char *name);
/* Finds a tensor and checks its shape; a mismatch records an error naming the tensor, both
 * shapes and `why` (e.g. "config.json hidden_size=64"). ndim and shape give the expectation. */
const st_tensor *safetensors_need_shape(const safetensors *st, const char *name, int ndim,
                                        const int64_t *shape, const char *why);
/* The path of the shard a tensor lives in (for messages). */
const char *safetensors_shard_path(const safetensors *st, const st_tensor *t);

/* Parses and validates the header of one mapped file. On success *tensors (sorted by name, data
 * pointing into `file`) and *n are set; the caller frees with st_tensors_free. Used by the
 * reader and by the fuzz target. */
int st_parse_file(const uint8_t *file, size_t size, const char *path, st_tensor **tensors, int *n);
void st_tensors_free(st_tensor *tensors, int n);

/* One tensor to write. */
typedef struct {
    const char *name;
    dtype dt;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} st_entry;

/* Writes one safetensors file crash-safely. metadata (a JSON object of strings) may be NULL;
 * {"format": "pt"} is always included so transformers accepts the file. */
int safetensors_write(const char *path, const st_entry *entries, int n, const cJSON *metadata);
/* Writes a checkpoint into dir: model.safetensors if it fits in max_shard_bytes, otherwise
 * model-0000k-of-0000n.safetensors shards and model.safetensors.index.json. */
int safetensors_write_dir(const char *dir, const st_entry *entries, int n, size_t max_shard_bytes);
/* The same, the entries' data (their `data` unused) produced one at a time, in order, by
 * fill(ctx, j, dst): entry j's bytes into dst (j counts from `base` for safetensors_write_fill,
 * from 0 for the directory). So a model never needs to be whole in memory. fill runs for every
 * entry even after a write failed, then with dst NULL: a fill that takes part in collectives
 * stays in step with the other processes. */
typedef void (*st_fill_fn)(void *ctx, int j, void *dst);
int safetensors_write_fill(const char *path, const st_entry *entries, int n,
                           const cJSON *metadata, st_fill_fn fill, void *ctx, int base);
int safetensors_write_dir_fill(const char *dir, const st_entry *entries, int n,
                               size_t max_shard_bytes, st_fill_fn fill, void *ctx);

#endif
