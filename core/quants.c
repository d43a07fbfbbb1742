#include "core/quants.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"

/* Block sizes and bytes of every type GGUF files use (ggml-common.h block structs), so a reader
 * can size any tensor; only some can be converted. */
static const quant_info quant_table[QUANT_TYPE_LIMIT] = {
    [QUANT_F32] = {"F32", 1, 4, 1, 1},          [QUANT_F16] = {"F16", 1, 2, 1, 1},
    [QUANT_Q4_0] = {"Q4_0", 32, 18, 1, 1},      [QUANT_Q4_1] = {"Q4_1", 32, 20, 1, 1},
    [QUANT_Q5_0] = {"Q5_0", 32, 22, 1, 1},      [QUANT_Q5_1] = {"Q5_1", 32, 24, 1, 1},
    [QUANT_Q8_0] = {"Q8_0", 32, 34, 1, 1},      [QUANT_Q8_1] = {"Q8_1", 32, 36, 0, 0},
    [QUANT_Q2_K] = {"Q2_K", 256, 84, 0, 0},     [QUANT_Q3_K] = {"Q3_K", 256, 110, 0, 0},
    [QUANT_Q4_K] = {"Q4_K", 256, 144, 1, 1},    [QUANT_Q5_K] = {"Q5_K", 256, 176, 1, 1},
    [QUANT_Q6_K] = {"Q6_K", 256, 210, 1, 1},    [QUANT_Q8_K] = {"Q8_K", 256, 292, 0, 0},
    [QUANT_IQ2_XXS] = {"IQ2_XXS", 256, 66, 0, 0}, [QUANT_IQ2_XS] = {"IQ2_XS", 256, 74, 0, 0},
    [QUANT_IQ3_XXS] = {"IQ3_XXS", 256, 98, 0, 0}, [QUANT_IQ1_S] = {"IQ1_S", 256, 50, 0, 0},
    [QUANT_IQ4_NL] = {"IQ4_NL", 32, 18, 0, 0},  [QUANT_IQ3_S] = {"IQ3_S", 256, 110, 0, 0},
    [QUANT_IQ2_S] = {"IQ2_S", 256, 82, 0, 0},   [QUANT_IQ4_XS] = {"IQ4_XS", 256, 136, 0, 0},
    [QUANT_I8] = {"I8", 1, 1, 0, 0},            [QUANT_I16] = {"I16", 1, 2, 0, 0},
    [QUANT_I32] = {"I32", 1, 4, 0, 0},          [QUANT_I64] = {"I64", 1, 8, 0, 0},
    [QUANT_F64] = {"F64", 1, 8, 0, 0},          [QUANT_IQ1_M] = {"IQ1_M", 256, 56, 0, 0},
    [QUANT_BF16] = {"BF16", 1, 2, 1, 1},        [QUANT_TQ1_0] = {"TQ1_0", 256, 54, 0, 0},
    [QUANT_TQ2_0] = {"TQ2_0", 256, 66, 0, 0},   [QUANT_MXFP4] = {"MXFP4", 32, 17, 0, 0},
};

const quant_info *quant_type_info(int id) {
    if (id < 0 || id >= QUANT_TYPE_LIMIT || !quant_table[id].name) return NULL;
    return &quant_table[id];
}

const char *quant_type_name(int id) {
    const quant_info *q = quant_type_info(id);
    return q ? q->name : "?";
}

int quant_type_from_name(const char *name) {
    for (int id = 0; id < QUANT_TYPE_LIMIT; id++) {
        const char *n = quant_table[id].name;
        if (!n) continue;
        size_t i = 0;
        while (n[i] && name[i] && toupper((unsigned char)name[i]) == n[i]) i++;
        if (!n[i] && !name[i]) return id;
    }
    return -1;
}

size_t quant_row_bytes(quant_type t, int64_t n) {
    const quant_info *q = quant_type_info(t);
    CHECK(q && n % q->block == 0);
    return (size_t)(n / q->block) * (size_t)q->block_bytes;
}

/* ---- little-endian field access ----------------------------------------------------------- */

static inline float ld_f16(const uint8_t *p) { return f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static inline void st_f16(uint8_t *p, float v) {
    uint16_t h = f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
/* The value a float becomes once stored as f16 (what dequantization will see). */
static inline float round_f16(float v) { return f16_to_f32(f32_to_f16(v)); }
static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- 32-value blocks ---------------------------------------------------------------------- */

/* The value of largest magnitude, with its sign. */
static float signed_absmax(const float *x, int n) {
    float amax = 0, m = 0;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            m = x[j];
        }
    return m;
}

static void q8_0_block(uint8_t *o, const float *x) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    st_f16(o, d);
    for (int j = 0; j < 32; j++)
        o[2 + j] = (uint8_t)(int8_t)clampi((int)roundf(x[j] * id), -127, 127);
}

/* Q4_0 (levels 4) and Q5_0 (levels 5): d = max / -2^(bits-1), q = x/d + 2^(bits-1), so the
 * largest-magnitude value lands on level 0, the end of the range with one extra step. */
static void qx_0_block(uint8_t *o, const float *x, int bits) {
    const int half = 1 << (bits - 1), top = (1 << bits) - 1;
    const float d = signed_absmax(x, 32) / (float)-half, id = d != 0 ? 1.0f / d : 0.0f;
    st_f16(o, d);
    uint8_t *qs = o + (bits == 5 ? 6 : 2);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        int a = clampi((int)(x[j] * id + (float)half + 0.5f), 0, top);
        int b = clampi((int)(x[j + 16] * id + (float)half + 0.5f), 0, top);
        qs[j] = (uint8_t)((a & 15) | (b & 15) << 4);
        qh |= (uint32_t)(a >> 4) << j | (uint32_t)(b >> 4) << (j + 16);
    }
    if (bits == 5)
        for (int k = 0; k < 4; k++) o[2 + k] = (uint8_t)(qh >> (8 * k));
}

/* Q4_1 / Q5_1: d = (max - min) / (2^bits - 1), m = min, q = (x - min)/d. */
static void qx_1_block(uint8_t *o, const float *x, int bits) {
    const int top = (1 << bits) - 1;
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 32; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    const float d = (hi - lo) / (float)top, id = d != 0 ? 1.0f / d : 0.0f;
    st_f16(o, d);
    st_f16(o + 2, lo);
    uint8_t *qs = o + (bits == 5 ? 8 : 4);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        int a = clampi((int)((x[j] - lo) * id + 0.5f), 0, top);
        int b = clampi((int)((x[j + 16] - lo) * id + 0.5f), 0, top);
        qs[j] = (uint8_t)((a & 15) | (b & 15) << 4);
        qh |= (uint32_t)(a >> 4) << j | (uint32_t)(b >> 4) << (j + 16);
    }
    if (bits == 5)
        for (int k = 0; k < 4; k++) o[4 + k] = (uint8_t)(qh >> (8 * k));
}

static void dequant_32(float *y, const uint8_t *o, quant_type t) {
    switch (t) {
    case QUANT_Q8_0: {
        const float d = ld_f16(o);
        for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)o[2 + j];
        return;
    }
    case QUANT_Q4_0: {
        const float d = ld_f16(o);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((o[2 + j] & 15) - 8);
            y[j + 16] = d * (float)((o[2 + j] >> 4) - 8);
        }
        return;
    }
    case QUANT_Q4_1: {
        const float d = ld_f16(o), m = ld_f16(o + 2);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)(o[4 + j] & 15) + m;
            y[j + 16] = d * (float)(o[4 + j] >> 4) + m;
        }
        return;
    }
    case QUANT_Q5_0:
    case QUANT_Q5_1: {
        const int off = t == QUANT_Q5_1 ? 4 : 2;
        const float d = ld_f16(o), m = t == QUANT_Q5_1 ? ld_f16(o + 2) : 0.0f;
        const int bias = t == QUANT_Q5_1 ? 0 : 16;
        const uint32_t qh = (uint32_t)o[off] | (uint32_t)o[off + 1] << 8 |
                            (uint32_t)o[off + 2] << 16 | (uint32_t)o[off + 3] << 24;
        const uint8_t *qs = o + off + 4;
        for (int j = 0; j < 16; j++) {
            int a = (qs[j] & 15) | (int)((qh >> j) & 1) << 4;
            int b = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = t == QUANT_Q5_1 ? d * (float)a + m : d * (float)(a - bias);
            y[j + 16] = t == QUANT_Q5_1 ? d * (float)b + m : d * (float)(b - bias);
        }
        return;
    }
    default:
        CHECK(!"dequant_32 on a type without 32-value blocks");
    }
}

/* ---- K-quants ----------------------------------------------------------------------------- */

/* Fits x[i] ≈ scale * L[i] - mn with integer L in [0, nmax] and mn >= 0 by weighted least
 * squares. Starting from the plain [min, max] grid, it tries the steps (nmax + rmin + rdelta*k)
 * / (max - off), k = 0..nstep, where off is the best offset found so far: round to levels, solve
 * the 2x2 normal equations for (scale, offset), keep the fit with the smallest weighted squared
 * error. Returns scale; *mn gets the (non-negative) min. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, float rmin,
                           float rdelta, int nstep, uint8_t *L, float *mn) {
    float lo = x[0], hi = x[0], sw = 0, swx = 0;
    for (int i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
        sw += w[i];
        swx += w[i] * x[i];
    }
    if (lo > 0) lo = 0; /* the offset only ever subtracts: 0 stays representable */
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *mn = -lo;
        return 0.0f;
    }
    const float inv0 = (float)nmax / (hi - lo);
    float scale = 1.0f / inv0, off = lo, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi((int)lrintf(inv0 * (x[i] - lo)), 0, nmax);
        float e = scale * L[i] + lo - x[i];
        best += w[i] * (e * e);
    }
    uint8_t cand[32];
    CHECK(n <= 32);
    for (int k = 0; k <= nstep; k++) {
        const float inv = (rmin + rdelta * (float)k + (float)nmax) / (hi - off);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi((int)lrintf(inv * (x[i] - off)), 0, nmax);
            cand[i] = (uint8_t)l;
            sl += w[i] * l;
            sl2 += w[i] * l * l;
            sxl += w[i] * l * x[i];
        }
        const float det = sw * sl2 - sl * sl;
        if (!(det > 0)) continue;
        float a = (sw * sxl - swx * sl) / det, b = (sl2 * swx - sl * sxl) / det;
        if (b > 0) { /* a positive offset is not representable: refit the scale alone */
            b = 0;
            a = sxl / sl2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float e = a * cand[i] + b - x[i];
            err += w[i] * (e * e);
        }
        if (err < best) {
            best = err;
            scale = a;
            off = b;
            memcpy(L, cand, (size_t)n);
        }
    }
    *mn = -off;
    return scale;
}

/* 6-bit scales and mins of 8 sub-blocks in 12 bytes: sub-blocks 0-3 keep theirs in the low 6
 * bits of bytes 0-3 (scale) and 4-7 (min); sub-blocks 4-7 keep the low 4 bits in the nibbles
 * of bytes 8-11 and the high 2 bits in the top bits of bytes 0-3 (scale) and 4-7 (min). */
static void pack_scale_min(uint8_t s[12], const uint8_t *ls, const uint8_t *lm) {
    memset(s, 0, 12);
    for (int j = 0; j < 4; j++) {
        s[j] = ls[j];
        s[j + 4] = lm[j];
    }
    for (int j = 4; j < 8; j++) {
        s[j + 4] = (uint8_t)((ls[j] & 15) | (lm[j] & 15) << 4);
        s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
        s[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
}

static void unpack_scale_min(const uint8_t s[12], int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* Q4_K / Q5_K levels for one 256-value block: per sub-block fit with weights |x| + rms (so
 * large values and the bulk both count), scales and mins to 6 bits relative to the largest,
 * then the levels again against the scales as stored. */
static void kq_scale_min_block(const float *x, int nmax, float rmin, float rdelta, int nstep,
                               uint8_t L[QK_K], uint8_t s12[12], float *d_out, float *dmin_out) {
    float sc[8], mn[8], w[32];
    float max_sc = 0, max_mn = 0;
    for (int j = 0; j < 8; j++) {
        const float *v = x + 32 * j;
        float s2 = 0;
        for (int l = 0; l < 32; l++) s2 += v[l] * v[l];
        const float rms = sqrtf(s2 / 32);
        for (int l = 0; l < 32; l++) w[l] = rms + fabsf(v[l]);
        sc[j] = fit_scale_min(32, nmax, v, w, rmin, rdelta, nstep, L + 32 * j, &mn[j]);
        if (sc[j] > max_sc) max_sc = sc[j]; /* comparisons, not fmaxf: a -0 min stays out */
        if (mn[j] > max_mn) max_mn = mn[j];
    }
    const float inv_s = max_sc > 0 ? 63.0f / max_sc : 0.0f,
                inv_m = max_mn > 0 ? 63.0f / max_mn : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)clampi((int)lrintf(inv_s * sc[j]), 0, 63);
        lm[j] = (uint8_t)clampi((int)lrintf(inv_m * mn[j]), 0, 63);
    }
    pack_scale_min(s12, ls, lm);
    const float d = round_f16(max_sc / 63.0f), dmin = round_f16(max_mn / 63.0f);
    for (int j = 0; j < 8; j++) {
        const float dj = d * ls[j], mj = dmin * lm[j];
        if (dj == 0) continue; /* every level decodes to -mj: keep the fit's */
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)clampi((int)lrintf((x[32 * j + l] + mj) / dj), 0, nmax);
    }
    *d_out = max_sc / 63.0f;
    *dmin_out = max_mn / 63.0f;
}

static void q4_k_block(uint8_t *o, const float *x) {
    uint8_t L[QK_K];
    float d, dmin;
    kq_scale_min_block(x, 15, -1.0f, 0.1f, 20, L, o + 4, &d, &dmin);
    st_f16(o, d);
    st_f16(o + 2, dmin);
    uint8_t *qs = o + 16;
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
}

static void q5_k_block(uint8_t *o, const float *x) {
    uint8_t L[QK_K];
    float d, dmin;
    kq_scale_min_block(x, 31, -0.5f, 0.1f, 15, L, o + 4, &d, &dmin);
    st_f16(o, d);
    st_f16(o + 2, dmin);
    uint8_t *qh = o + 16, *qs = o + 48;
    memset(qh, 0, 32);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int a = L[64 * c + l], b = L[64 * c + 32 + l];
            qs[32 * c + l] = (uint8_t)((a & 15) | (b & 15) << 4);
            qh[l] |= (uint8_t)((a >> 4) << (2 * c) | (b >> 4) << (2 * c + 1));
        }
}

/* Symmetric fit x ≈ scale * l, l in [-nmax, nmax - 1], weighted by x^2: try steps around
 * -nmax / max (the largest-magnitude value on the extra negative level) and keep the one whose
 * least-squares scale explains most of the weighted energy (max (Σwxl)^2 / Σwl^2). L gets
 * l + nmax. */
static float fit_symmetric(int n, int nmax, const float *x, uint8_t *L) {
    const float m = signed_absmax(x, n);
    if (fabsf(m) < 1e-15f) { /* scale 0: every level decodes to 0 */
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float scale = 0, best = -1;
    for (int k = 0; k <= 19; k++) {
        const int step = k == 0 ? 0 : k <= 9 ? k - 10 : k - 9; /* 0, then -9..-1, 1..9 */
        const float inv = -((float)nmax + 0.1f * (float)step) / m;
        float slx = 0, sl2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi((int)lrintf(inv * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            slx += w * x[i] * l;
            sl2 += w * l * l;
        }
        if (!(sl2 > 0)) continue;
        if (best < 0 || slx * slx > best * sl2) {
            scale = slx / sl2;
            best = scale * slx;
            for (int i = 0; i < n; i++)
                L[i] = (uint8_t)(clampi((int)lrintf(inv * x[i]), -nmax, nmax - 1) + nmax);
        }
    }
    return scale;
}

static void q6_k_block(uint8_t *o, const float *x) {
    uint8_t L[QK_K];
    float sc[16], max_sc = 0;
    for (int j = 0; j < 16; j++) {
        sc[j] = fit_symmetric(16, 32, x + 16 * j, L + 16 * j);
        if (fabsf(sc[j]) > fabsf(max_sc)) max_sc = sc[j];
    }
    uint8_t *ql = o, *qh = o + 128;
    int8_t *scales = (int8_t *)(o + 192);
    if (fabsf(max_sc) < 1e-15f) {
        memset(o, 0, 210);
        return;
    }
    /* 8-bit scales: the largest sub-block scale maps to -128 */
    const float iscale = -128.0f / max_sc;
    st_f16(o + 208, 1.0f / iscale);
    const float d = ld_f16(o + 208);
    for (int j = 0; j < 16; j++) {
        scales[j] = (int8_t)clampi((int)lrintf(iscale * sc[j]), -128, 127);
        const float dj = d * scales[j];
        if (dj == 0) continue; /* every level decodes to 0: keep the fit's */
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (uint8_t)(clampi((int)lrintf(x[16 * j + l] / dj), -32, 31) + 32);
    }
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const int q1 = L[128 * h + l], q2 = L[128 * h + l + 32], q3 = L[128 * h + l + 64],
                      q4 = L[128 * h + l + 96];
            ql[64 * h + l] = (uint8_t)((q1 & 15) | (q3 & 15) << 4);
            ql[64 * h + l + 32] = (uint8_t)((q2 & 15) | (q4 & 15) << 4);
            qh[32 * h + l] = (uint8_t)(q1 >> 4 | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
        }
}

static void dequant_k(float *y, const uint8_t *o, quant_type t) {
    if (t == QUANT_Q6_K) {
        const uint8_t *ql = o, *qh = o + 128;
        const int8_t *scales = (const int8_t *)(o + 192);
        const float d = ld_f16(o + 208);
        for (int e = 0; e < QK_K; e++) {
            const int h = e / 128, g = (e % 128) / 32, l = e % 32;
            const uint8_t lo = ql[64 * h + l + 32 * (g & 1)];
            const int q = (g < 2 ? lo & 15 : lo >> 4) | ((qh[32 * h + l] >> (2 * g)) & 3) << 4;
            y[e] = d * (float)scales[e / 16] * (float)(q - 32);
        }
        return;
    }
    const float d = ld_f16(o), dmin = ld_f16(o + 2);
    const uint8_t *s12 = o + 4;
    const uint8_t *qh = t == QUANT_Q5_K ? o + 16 : NULL, *qs = t == QUANT_Q5_K ? o + 48 : o + 16;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        unpack_scale_min(s12, j, &sc, &m);
        const float dj = d * (float)sc, mj = dmin * (float)m;
        const int c = j / 2, hi = j & 1;
        for (int l = 0; l < 32; l++) {
            int q = hi ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 15;
            if (qh) q |= ((qh[l] >> (2 * c + hi)) & 1) << 4;
            y[32 * j + l] = dj * (float)q - mj;
        }
    }
}

/* ---- rows --------------------------------------------------------------------------------- */

void quant_quantize_row(void *dst, const float *src, quant_type t, int64_t n) {
    const quant_info *q = quant_type_info(t);
    CHECK(q && q->quant && n % q->block == 0);
    uint8_t *o = dst;
    const int64_t nb = n / q->block;
    switch (t) {
    case QUANT_F32: dtype_from_f32(dst, src, DTYPE_F32, (size_t)n); return;
    case QUANT_F16: dtype_from_f32(dst, src, DTYPE_F16, (size_t)n); return;
    case QUANT_BF16: dtype_from_f32(dst, src, DTYPE_BF16, (size_t)n); return;
    default: break;
    }
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *ob = o + b * q->block_bytes;
        const float *x = src + b * q->block;
        switch (t) {
        case QUANT_Q8_0: q8_0_block(ob, x); break;
        case QUANT_Q4_0: qx_0_block(ob, x, 4); break;
        case QUANT_Q5_0: qx_0_block(ob, x, 5); break;
        case QUANT_Q4_1: qx_1_block(ob, x, 4); break;
        case QUANT_Q5_1: qx_1_block(ob, x, 5); break;
        case QUANT_Q4_K: q4_k_block(ob, x); break;
        case QUANT_Q5_K: q5_k_block(ob, x); break;
        case QUANT_Q6_K: q6_k_block(ob, x); break;
        default: CHECK(!"quantizer missing from the switch");
        }
    }
}

void quant_dequantize_row(float *dst, const void *src, quant_type t, int64_t n) {
    const quant_info *q = quant_type_info(t);
    CHECK(q && q->dequant && n % q->block == 0);
    switch (t) {
    case QUANT_F32: dtype_to_f32(dst, src, DTYPE_F32, (size_t)n); return;
    case QUANT_F16: dtype_to_f32(dst, src, DTYPE_F16, (size_t)n); return;
    case QUANT_BF16: dtype_to_f32(dst, src, DTYPE_BF16, (size_t)n); return;
    default: break;
    }
    const uint8_t *o = src;
    const int64_t nb = n / q->block;
    for (int64_t b = 0; b < nb; b++) {
        if (q->block == QK_K)
            dequant_k(dst + b * QK_K, o + b * q->block_bytes, t);
        else
            dequant_32(dst + b * 32, o + b * q->block_bytes, t);
    }
}
