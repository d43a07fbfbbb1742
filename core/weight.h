/* Weights: views of checkpoint tensors in their stored dtype, checked against the config.
 *
 * A `weight` never owns its data: it points into a memory-mapped safetensors shard (or GGUF
 * file), so loading a model maps files and builds views; nothing is copied until an operation
 * dequantizes the rows it is about to use. A device backend's upload() repoints a view at its
 * own copy in device memory (which that backend owns and unload() frees). */
#ifndef R1_CORE_WEIGHT_H
#define R1_CORE_WEIGHT_H

#include <stdint.h>

#include "core/dtype.h"
#include "core/safetensors.h"

/* A 2-D weight [rows, cols] (or a 1-D vector with rows == 1) as stored in the checkpoint. */
typedef struct {
    dtype dt;               /* F32, F16, BF16 or F8_E4M3; DTYPE_U8 (raw bytes) when qtype is set */
    int64_t rows, cols;
    const void *data;
    /* GGUF block types: 0 for none, else a block type of core/quants.h (QUANT_Q8_0, QUANT_Q4_K,
     * ...): each row is cols / block blocks of that type, rows stored one after another (GGUF
     * F32/F16/BF16 tensors use dt instead). */
    int qtype;
    /* F8_E4M3 only: float32 scale_inv [ceil(rows/block_rows), ceil(cols/block_cols)];
     * element (i, j) is fp8[i, j] * scale_inv[i / block_rows, j / block_cols]. */
    const float *scale_inv;
    int block_rows, block_cols;
    int device;             /* 1 when data (and scale_inv) are in a device backend's memory
                               (backend->upload); host code must not read them then */
} weight;

/* Dequantizes rows [r0, r0 + nr) of w into dst ([nr, cols] float32). */
void weight_rows_to_f32(float *dst, const weight *w, int64_t r0, int64_t nr);
/* One element of a weight, dequantized. */
float weight_get(const weight *w, int64_t r, int64_t c);

/* Builds a view of tensor `name`, checking that it exists, is a float type and has shape
 * [rows, cols] (or [cols] when rows == 0, for vectors; then w->rows = 1). An F8_E4M3 tensor
 * needs its "<name>_scale_inv" companion of shape [ceil(rows/block[0]), ceil(cols/block[1])];
 * fp8_block may be NULL when the checkpoint has no FP8 weights. `why` names what implies the
 * shape, for the message. Errors name the tensor and its shard (R1_EINPUT). */
int weight_load(weight *w, const safetensors *st, const char *name, int64_t rows, int64_t cols,
                const int *fp8_block, const char *why);

/* Tensor-parallel shards of a host weight (dense dtypes or FP8 with block scales; GGUF block
 * types are refused). Both return R1_EINPUT, naming `name`, when the range is outside the weight
 * or, for FP8, does not start on a scale block boundary and end on one or at the weight's edge
 * (a shard must not split a block: its rows or columns would need two scales). */
/* Rows [r0, r0 + nr) as a view into w's memory (nothing copied). */
int weight_rows_slice(weight *out, const weight *w, int64_t r0, int64_t nr, const char *name);
/* Columns [c0, c0 + nc) copied into one new host allocation (data, then the FP8 scales),
 * returned in *owned for the caller to free once the view is no longer read (after
 * upload_weight on a device backend). */
int weight_cols_copy(weight *out, void **owned, const weight *w, int64_t c0, int64_t nc,
                     const char *name);

#endif
