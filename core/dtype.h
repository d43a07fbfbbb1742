/* Element types of checkpoint tensors and their conversions to and from float32.
 *
 * bf16 and f16 conversions round to nearest even, as PyTorch's .to() does; fp8 is
 * float8_e4m3fn (1 sign, 4 exponent bits with bias 7, 3 mantissa bits, no infinities,
 * S.1111.111 is NaN, largest finite 448), the format of DeepSeek-V3's block-scaled weights. */
#ifndef R1_CORE_DTYPE_H
#define R1_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
    DTYPE_F32,
    DTYPE_F16,
    DTYPE_BF16,
    DTYPE_F8_E4M3,
    DTYPE_I32,
    DTYPE_I64,
    /* Types a safetensors file may hold that no model path computes with; they are
     * validated and mapped, and refused only if a model asks for them. */
    DTYPE_F64,
    DTYPE_I8,
    DTYPE_U8,
    DTYPE_I16,
    DTYPE_U16,
    DTYPE_U32,
    DTYPE_U64,
    DTYPE_BOOL,
    DTYPE_F8_E5M2,
    DTYPE_COUNT
} dtype;

/* Bytes per element. */
size_t dtype_size(dtype t);
/* The safetensors spelling ("BF16"). */
const char *dtype_name(dtype t);
/* Parses a safetensors dtype string; returns 0 on success, -1 if unknown. */
int dtype_from_name(const char *name, dtype *out);
/* True for the types model code can read as numbers (F32, F16, BF16, F8_E4M3). */
int dtype_is_float(dtype t);

static inline float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }
static inline uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
/* Rounds a float32 to the nearest bf16 value and back (what a bf16 store then load does). */
static inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

/* A float32 held as two 16-bit halves (the CUDA trainer's master weights): hi is the nearest
 * bf16 (ties away from zero: the pattern plus half a bf16 step, truncated) and lo the pattern's
 * low 16 bits, and (hi << 16) + lo taken as a signed 16-bit number gives the pattern back exactly
 * (mod 2^32: their difference is always in [-0x8000, 0x7fff]). So the bf16 working weights are the
 * master weights' upper halves and the master costs 2 more bytes per parameter, not 4. (A NaN
 * comes back exactly; its hi may read as an infinity.) */
static inline uint16_t f32_split_hi(float f) { return (uint16_t)((f32_to_bits(f) + 0x8000u) >> 16); }
static inline uint16_t f32_split_lo(float f) { return (uint16_t)f32_to_bits(f); }
static inline float f32_join(uint16_t hi, uint16_t lo) {
    return bits_to_f32(((uint32_t)hi << 16) + lo - (lo & 0x8000u ? 0x10000u : 0u));
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

extern float fp8_e4m3_table[256]; /* filled at start-up; read-only afterwards */
static inline float fp8_e4m3_to_f32(uint8_t b) { return fp8_e4m3_table[b]; }
/* Round to nearest even, saturating at ±448 (NaN stays NaN). */
uint8_t f32_to_fp8_e4m3(float f);

/* Converts n elements of a float type to float32. */
void dtype_to_f32(float *dst, const void *src, dtype t, size_t n);
/* Converts n float32 values to a float type (F32, F16, BF16 or F8_E4M3). */
void dtype_from_f32(void *dst, const float *src, dtype t, size_t n);
/* memcpy of n floats over the host's threads, for the gigabytes of a checkpoint. */
void f32_copy(float *dst, const float *src, size_t n);

#endif
