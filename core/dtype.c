#include "core/dtype.h"

#include <math.h>

#include "core/error.h"

static const struct {
    const char *name;
    size_t size;
} dtype_info[DTYPE_COUNT] = {
    [DTYPE_F32] = {"F32", 4},       [DTYPE_F16] = {"F16", 2},   [DTYPE_BF16] = {"BF16", 2},
    [DTYPE_F8_E4M3] = {"F8_E4M3", 1}, [DTYPE_I32] = {"I32", 4}, [DTYPE_I64] = {"I64", 8},
    [DTYPE_F64] = {"F64", 8},       [DTYPE_I8] = {"I8", 1},     [DTYPE_U8] = {"U8", 1},
    [DTYPE_I16] = {"I16", 2},       [DTYPE_U16] = {"U16", 2},   [DTYPE_U32] = {"U32", 4},
    [DTYPE_U64] = {"U64", 8},       [DTYPE_BOOL] = {"BOOL", 1}, [DTYPE_F8_E5M2] = {"F8_E5M2", 1},
};
_Static_assert(DTYPE_COUNT == 15, "dtype_info must list every dtype");

size_t dtype_size(dtype t) { return (unsigned)t < DTYPE_COUNT ? dtype_info[t].size : 0; }
const char *dtype_name(dtype t) { return (unsigned)t < DTYPE_COUNT ? dtype_info[t].name : "?"; }

int dtype_from_name(const char *name, dtype *out) {
    for (int i = 0; i < DTYPE_COUNT; i++)
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (dtype)i;
            return 0;
        }
    return -1;
}

int dtype_is_float(dtype t) {
    return t == DTYPE_F32 || t == DTYPE_F16 || t == DTYPE_BF16 || t == DTYPE_F8_E4M3;
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13)); /* inf / NaN */
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_f16(float f) {
    uint32_t u = f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00;              /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00;             /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                                  /* below the smallest normal */
        /* subnormal half: value / 2^-24, rounded to nearest even by the FPU */
        float v = bits_to_f32(a) * 0x1p24f;
        return sign | (uint16_t)lrintf(v);
    }
    uint32_t r = a + 0x0fffu + ((a >> 13) & 1u) - 0x38000000u; /* rebias 127 -> 15, RNE */
    return sign | (uint16_t)(r >> 13);
}

/* float8_e4m3fn: exponent bias 7, subnormals m * 2^-9, 0x7f / 0xff are NaN. */
static float fp8_value(unsigned b) {
    unsigned e = (b >> 3) & 0xf, m = b & 7;
    float v;
    if (e == 15 && m == 7) return NAN;
    if (e == 0)
        v = (float)m * 0x1p-9f;
    else
        v = ldexpf(1.0f + (float)m / 8.0f, (int)e - 7);
    return (b & 0x80) ? -v : v;
}

float fp8_e4m3_table[256];

/* The table is computed once at start-up from fp8_value; a constructor keeps the accessor a
 * single load without a branch. */
__attribute__((constructor)) static void fp8_table_init(void) {
    for (unsigned b = 0; b < 256; b++) fp8_e4m3_table[b] = fp8_value(b);
}

uint8_t f32_to_fp8_e4m3(float f) {
    if (isnan(f)) return 0x7f;
    uint8_t sign = signbit(f) ? 0x80 : 0;
    float a = fabsf(f);
    if (a >= 448.0f) return sign | 0x7e; /* saturate to the largest finite value */
    /* Search the 127 non-negative finite codes for the nearest, ties to even code. The codes are
     * monotonic in value, so a binary search finds the bracketing pair. */
    unsigned lo = 0, hi = 0x7e;
    while (hi - lo > 1) {
        unsigned mid = (lo + hi) / 2;
        if (fp8_e4m3_table[mid] <= a)
            lo = mid;
        else
            hi = mid;
    }
    float dl = a - fp8_e4m3_table[lo], dh = fp8_e4m3_table[hi] - a;
    unsigned code = dl < dh ? lo : dh < dl ? hi : ((lo & 1) ? hi : lo);
    return sign | (uint8_t)code;
}

void dtype_to_f32(float *dst, const void *src, dtype t, size_t n) {
    switch (t) {
    case DTYPE_F32:
        memcpy(dst, src, n * 4);
        return;
    case DTYPE_BF16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
        return;
    }
    case DTYPE_F16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
        return;
    }
    case DTYPE_F8_E4M3: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = fp8_e4m3_table[s[i]];
        return;
    }
    default:
        CHECK(!"dtype_to_f32 on a non-float type");
    }
}

/* Below this many values a conversion stays on one thread. Each value is converted alone, so
 * the result does not depend on the thread count; a 7B's weights take 7 s on one thread. */
#define CONVERT_PAR_MIN ((size_t)1 << 18)

void f32_copy(float *dst, const float *src, size_t n) {
    const size_t block = CONVERT_PAR_MIN;
    const int64_t n_blocks = (int64_t)((n + block - 1) / block);
#pragma omp parallel for schedule(static) if (n_blocks > 1)
    for (int64_t b = 0; b < n_blocks; b++) {
        const size_t lo = (size_t)b * block, len = n - lo < block ? n - lo : block;
        memcpy(dst + lo, src + lo, len * sizeof(float));
    }
}

void dtype_from_f32(void *dst, const float *src, dtype t, size_t n) {
    switch (t) {
    case DTYPE_F32:
        f32_copy(dst, src, n);
        return;
    case DTYPE_BF16: {
        uint16_t *d = dst;
#pragma omp parallel for schedule(static) if (n >= CONVERT_PAR_MIN)
        for (size_t i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]);
        return;
    }
    case DTYPE_F16: {
        uint16_t *d = dst;
#pragma omp parallel for schedule(static) if (n >= CONVERT_PAR_MIN)
        for (size_t i = 0; i < n; i++) d[i] = f32_to_f16(src[i]);
        return;
    }
    case DTYPE_F8_E4M3: {
        uint8_t *d = dst;
#pragma omp parallel for schedule(static) if (n >= CONVERT_PAR_MIN)
        for (size_t i = 0; i < n; i++) d[i] = f32_to_fp8_e4m3(src[i]);
        return;
    }
    default:
        CHECK(!"dtype_from_f32 to a non-float type");
    }
}
