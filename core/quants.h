/* GGUF tensor types and their block formats: quantize rows of float32 into blocks, dequantize
 * blocks back (models-and-formats.md §3.4; ggml-common.h). The enum is numbered as ggml_type, the
 * id a GGUF tensor info stores. All multi-byte fields are little-endian; fp16 is IEEE half.
 *
 *   type  values  bytes  block layout                                    value
 *   Q8_0    32     34    f16 d; i8 q[32]                                  d*q
 *   Q4_0    32     18    f16 d; u8 qs[16]   (element j low nibble of qs[j],
 *                                           element j+16 high nibble)      d*(q-8)
 *   Q4_1    32     20    f16 d; f16 m; u8 qs[16]  (as Q4_0)                d*q + m
 *   Q5_0    32     22    f16 d; u8 qh[4]; u8 qs[16]   (as Q4_0; bit j of
 *                                           the u32 qh is element j's 5th)  d*(q-16)
 *   Q5_1    32     24    f16 d; f16 m; u8 qh[4]; u8 qs[16]  (as Q5_0)      d*q + m
 *   Q4_K   256    144    f16 d; f16 dmin; u8 scales[12]; u8 qs[128]        d*sc_j*q - dmin*m_j
 *                        8 sub-blocks j of 32 with 6-bit sc_j, m_j packed in scales[12];
 *                        64-value chunk c: qs[32c+l] low nibble = element 64c+l,
 *                        high nibble = element 64c+32+l
 *   Q5_K   256    176    f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
 *                        Q4_K plus a 5th bit: bit 2c of qh[l] for element 64c+l,
 *                        bit 2c+1 for element 64c+32+l
 *   Q6_K   256    210    u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d       d*scales[e/16]*(q-32)
 *                        128-value half h, element e = 128h + 32g + l (g 0..3, l 0..31):
 *                        low 4 bits from ql[64h + l + 32(g&1)] (low nibble for g<2, high
 *                        for g>=2), high 2 bits from qh[32h + l] >> 2g
 *
 * The quantizers follow the definitions: Q8_0/Q4_0/Q5_0 scale by the value of largest magnitude
 * (Q4_0/Q5_0 map it to -8/-16, the end with the extra level), Q5_1 spans [min, max]. The
 * K-quants fit each sub-block by weighted least squares over a small grid of candidate scales
 * (the search llama.cpp's reference quantizers do), then quantize the sub-block scales and mins
 * to 6 bits (Q4_K/Q5_K) or 8 bits (Q6_K) relative to the block's largest. */
#ifndef R1_CORE_QUANTS_H
#define R1_CORE_QUANTS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    QUANT_F32 = 0,
    QUANT_F16 = 1,
    QUANT_Q4_0 = 2,
    QUANT_Q4_1 = 3,
    QUANT_Q5_0 = 6,
    QUANT_Q5_1 = 7,
    QUANT_Q8_0 = 8,
    QUANT_Q8_1 = 9,
    QUANT_Q2_K = 10,
    QUANT_Q3_K = 11,
    QUANT_Q4_K = 12,
    QUANT_Q5_K = 13,
    QUANT_Q6_K = 14,
    QUANT_Q8_K = 15,
    QUANT_IQ2_XXS = 16,
    QUANT_IQ2_XS = 17,
    QUANT_IQ3_XXS = 18,
    QUANT_IQ1_S = 19,
    QUANT_IQ4_NL = 20,
    QUANT_IQ3_S = 21,
    QUANT_IQ2_S = 22,
    QUANT_IQ4_XS = 23,
    QUANT_I8 = 24,
    QUANT_I16 = 25,
    QUANT_I32 = 26,
    QUANT_I64 = 27,
    QUANT_F64 = 28,
    QUANT_IQ1_M = 29,
    QUANT_BF16 = 30,
    QUANT_TQ1_0 = 34,
    QUANT_TQ2_0 = 35,
    QUANT_MXFP4 = 39,
    QUANT_TYPE_LIMIT = 40 /* one past the largest id this table knows */
} quant_type;

typedef struct {
    const char *name;    /* ggml's spelling: "Q4_K" */
    int block;           /* values per block (1 for plain types) */
    int block_bytes;     /* bytes per block */
    int dequant;         /* quant_dequantize_row supports it */
    int quant;           /* quant_quantize_row supports it */
} quant_info;

enum { QK_K = 256 };

/* The table entry for a type id, or NULL for an id GGUF files do not use. */
const quant_info *quant_type_info(int id);
/* Name or "?" for unknown ids. */
const char *quant_type_name(int id);
/* Parses a ggml type name, case-insensitively ("q4_k", "BF16"); -1 if unknown. */
int quant_type_from_name(const char *name);
/* Bytes of one row of n values (n a multiple of the block size). */
size_t quant_row_bytes(quant_type t, int64_t n);

/* Quantizes n float32 values (n a multiple of the block size) into dst. F32, F16, BF16 and
 * every type whose info has .quant. Deterministic: the same input gives the same bytes. */
void quant_quantize_row(void *dst, const float *src, quant_type t, int64_t n);
/* Dequantizes n values of a type whose info has .dequant (F32, F16, BF16, Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0, Q4_K, Q5_K, Q6_K). */
void quant_dequantize_row(float *dst, const void *src, quant_type t, int64_t n);

#endif
