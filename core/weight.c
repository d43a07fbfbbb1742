#include "core/weight.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/quants.h"

void weight_rows_to_f32(float *dst, const weight *w, int64_t r0, int64_t nr) {
    const size_t cols = (size_t)w->cols;
    if (w->qtype) {
        const size_t row = quant_row_bytes((quant_type)w->qtype, w->cols);
        for (int64_t r = 0; r < nr; r++)
            quant_dequantize_row(dst + (size_t)r * cols,
                                 (const uint8_t *)w->data + (size_t)(r0 + r) * row,
                                 (quant_type)w->qtype, w->cols);
        return;
    }
    if (w->dt != DTYPE_F8_E4M3) {
        const uint8_t *src = (const uint8_t *)w->data + (size_t)r0 * cols * dtype_size(w->dt);
        dtype_to_f32(dst, src, w->dt, (size_t)nr * cols);
        return;
    }
    /* FP8 with 2-D block scales (DeepSeek-V3 weight_dequant): scale per (row block, col block) */
    const int64_t scale_cols = (w->cols + w->block_cols - 1) / w->block_cols;
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *src = (const uint8_t *)w->data + (size_t)(r0 + r) * cols;
        const float *srow = w->scale_inv + ((r0 + r) / w->block_rows) * scale_cols;
        float *d = dst + (size_t)r * cols;
        for (int64_t c = 0; c < w->cols; c++)
            d[c] = fp8_e4m3_table[src[c]] * srow[c / w->block_cols];
    }
}

float weight_get(const weight *w, int64_t r, int64_t c) {
    float v;
    if (w->qtype) {
        /* dequantize the one block that holds (r, c) */
        const quant_info *q = quant_type_info(w->qtype);
        float blk[QK_K];
        const uint8_t *p = (const uint8_t *)w->data +
                           (size_t)r * quant_row_bytes((quant_type)w->qtype, w->cols) +
                           (size_t)(c / q->block) * (size_t)q->block_bytes;
        quant_dequantize_row(blk, p, (quant_type)w->qtype, q->block);
        return blk[c % q->block];
    }
    if (w->dt == DTYPE_F8_E4M3) {
        const int64_t scale_cols = (w->cols + w->block_cols - 1) / w->block_cols;
        const uint8_t *p = (const uint8_t *)w->data + r * w->cols + c;
        return fp8_e4m3_table[*p] *
               w->scale_inv[(r / w->block_rows) * scale_cols + c / w->block_cols];
    }
    const uint8_t *p = (const uint8_t *)w->data + (size_t)(r * w->cols + c) * dtype_size(w->dt);
    dtype_to_f32(&v, p, w->dt, 1);
    return v;
}

int weight_load(weight *w, const safetensors *st, const char *name, int64_t rows, int64_t cols,
                const int *fp8_block, const char *why) {
    memset(w, 0, sizeof *w);
    int64_t shape[2] = {rows, cols};
    const st_tensor *t = rows == 0 ? safetensors_need_shape(st, name, 1, &cols, why)
                                   : safetensors_need_shape(st, name, 2, shape, why);
    if (!t) return R1_EINPUT;
    if (!dtype_is_float(t->dt))
        return err_fail(R1_EINPUT, safetensors_shard_path(st, t),
                        "tensor \"%s\" has dtype %s; weights must be F32, F16, BF16 or F8_E4M3",
                        name, dtype_name(t->dt));
    w->dt = t->dt;
    w->rows = rows == 0 ? 1 : rows;
    w->cols = cols;
    w->data = t->data;
    if (t->dt != DTYPE_F8_E4M3) return R1_OK;
    if (!fp8_block) {
        err_fail(R1_EINPUT, safetensors_shard_path(st, t),
                 "tensor \"%s\" is F8_E4M3 but config.json has no fp8 quantization_config", name);
        return err_hint("FP8 checkpoints declare quantization_config {\"quant_method\": \"fp8\", "
                        "\"weight_block_size\": [128, 128]}");
    }
    char sname[512];
    snprintf(sname, sizeof sname, "%s_scale_inv", name);
    int64_t sshape[2] = {(w->rows + fp8_block[0] - 1) / fp8_block[0],
                         (cols + fp8_block[1] - 1) / fp8_block[1]};
    const st_tensor *s = safetensors_find(st, sname);
    if (!s) {
        err_fail(R1_EINPUT, safetensors_shard_path(st, t),
                 "FP8 tensor \"%s\" has no block scales \"%s\"", name, sname);
        return err_hint("every F8_E4M3 weight needs its weight_scale_inv tensor (any shard)");
    }
    char swhy[256];
    snprintf(swhy, sizeof swhy, "weight_block_size [%d, %d] on a [%lld, %lld] weight",
             fp8_block[0], fp8_block[1], (long long)w->rows, (long long)cols);
    if (!safetensors_need_shape(st, sname, 2, sshape, swhy)) return R1_EINPUT;
    if (s->dt != DTYPE_F32)
        return err_fail(R1_EINPUT, safetensors_shard_path(st, s),
                        "block scales \"%s\" must be F32, not %s", sname, dtype_name(s->dt));
    w->scale_inv = s->data;
    w->block_rows = fp8_block[0];
    w->block_cols = fp8_block[1];
    return R1_OK;
}

/* Checks a shard range [a, a + n) of an axis of length len with FP8 blocks of `block` (0: not
 * blocked). */
static int shard_range(const weight *w, const char *name, const char *axis, int64_t a, int64_t n,
                       int64_t len, int64_t block) {
    if (w->qtype)
        return err_fail(R1_EINPUT, name, "a GGUF-quantized weight cannot be split for tensor "
                        "parallelism");
    if (a < 0 || n <= 0 || a + n > len)
        return err_fail(R1_EINPUT, name, "%s %lld..%lld are outside its %lld %s", axis,
                        (long long)a, (long long)(a + n), (long long)len, axis);
    if (block > 0 && (a % block != 0 || ((a + n) % block != 0 && a + n != len))) {
        err_fail(R1_EINPUT, name, "the tensor-parallel shard of %s %lld..%lld splits an FP8 "
                 "scale block of %lld %s", axis, (long long)a, (long long)(a + n),
                 (long long)block, axis);
        return err_hint("use a tensor-parallel size that divides the heads and MLP widths into "
                        "whole weight_block_size blocks (DeepSeek-V3/R1: 2, 4 or 8)");
    }
    return R1_OK;
}

int weight_rows_slice(weight *out, const weight *w, int64_t r0, int64_t nr, const char *name) {
    const int fp8 = w->dt == DTYPE_F8_E4M3;
    TRY(shard_range(w, name, "rows", r0, nr, w->rows, fp8 ? w->block_rows : 0));
    *out = *w;
    out->rows = nr;
    out->data = (const uint8_t *)w->data + (size_t)r0 * (size_t)w->cols * dtype_size(w->dt);
    if (fp8) {
        const int64_t scale_cols = (w->cols + w->block_cols - 1) / w->block_cols;
        out->scale_inv = w->scale_inv + (r0 / w->block_rows) * scale_cols;
    }
    return R1_OK;
}

int weight_cols_copy(weight *out, void **owned, const weight *w, int64_t c0, int64_t nc,
                     const char *name) {
    *owned = NULL;
    const int fp8 = w->dt == DTYPE_F8_E4M3;
    TRY(shard_range(w, name, "columns", c0, nc, w->cols, fp8 ? w->block_cols : 0));
    const size_t es = dtype_size(w->dt), rows = (size_t)w->rows;
    const int64_t sc_old = fp8 ? (w->cols + w->block_cols - 1) / w->block_cols : 0,
                  sc_new = fp8 ? (nc + w->block_cols - 1) / w->block_cols : 0,
                  sr = fp8 ? (w->rows + w->block_rows - 1) / w->block_rows : 0;
    const size_t data_bytes = rows * (size_t)nc * es;
    /* the scales after the data, float-aligned */
    const size_t scale_at = (data_bytes + 15) & ~(size_t)15;
    uint8_t *buf = xmalloc(scale_at + sizeof(float) * (size_t)(sr * sc_new) + 1);
    for (size_t r = 0; r < rows; r++)
        memcpy(buf + r * (size_t)nc * es,
               (const uint8_t *)w->data + (r * (size_t)w->cols + (size_t)c0) * es,
               (size_t)nc * es);
    *out = *w;
    out->cols = nc;
    out->data = buf;
    if (fp8) {
        float *sc = (float *)(buf + scale_at);
        for (int64_t i = 0; i < sr; i++)
            memcpy(sc + i * sc_new, w->scale_inv + i * sc_old + c0 / w->block_cols,
                   sizeof(float) * (size_t)sc_new);
        out->scale_inv = sc;
    }
    *owned = buf;
    return R1_OK;
}
