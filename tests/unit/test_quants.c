/* Block formats: exact dequantization of hand-built blocks, exact round trips of values that
 * lie on a block's grid, and error bounds of round trips of random rows. */
#include "core/dtype.h"
#include "core/quants.h"
#include "core/weight.h"
#include "tests/unit/testing.h"

static uint64_t rng = 12345;
static float gauss(void) {
    /* Box-Muller on a 64-bit LCG: deterministic, no libc state */
    double u[2];
    for (int i = 0; i < 2; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        u[i] = ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
    }
    return (float)(sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]));
}

static void put_f16(uint8_t *p, float v) {
    uint16_t h = f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void test_table(void) {
    EXPECT_EQ_INT(quant_type_info(QUANT_Q4_K)->block_bytes, 144);
    EXPECT_EQ_INT(quant_type_info(QUANT_Q5_K)->block_bytes, 176);
    EXPECT_EQ_INT(quant_type_info(QUANT_Q6_K)->block_bytes, 210);
    EXPECT_EQ_INT(quant_type_info(QUANT_Q8_0)->block_bytes, 34);
    EXPECT_EQ_INT(quant_type_info(QUANT_Q5_1)->block_bytes, 24);
    EXPECT(quant_type_info(4) == NULL); /* ids 4 and 5 were removed from ggml */
    EXPECT(quant_type_info(-1) == NULL);
    EXPECT(quant_type_info(QUANT_TYPE_LIMIT) == NULL);
    EXPECT_EQ_INT(quant_type_from_name("q4_k"), QUANT_Q4_K);
    EXPECT_EQ_INT(quant_type_from_name("BF16"), QUANT_BF16);
    EXPECT_EQ_INT(quant_type_from_name("q4_k_m"), -1);
    EXPECT_EQ_INT(quant_row_bytes(QUANT_Q6_K, 512), 420);
    EXPECT_STREQ(quant_type_name(QUANT_IQ2_XXS), "IQ2_XXS");
}

/* Hand-built blocks with exactly representable scales: every value is known in closed form. */
static void test_dequant_hand_built(void) {
    uint8_t b[256];
    float y[256];

    /* Q8_0: d = 0.5, q = j - 16 */
    put_f16(b, 0.5f);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)(j - 16);
    quant_dequantize_row(y, b, QUANT_Q8_0, 32);
    for (int j = 0; j < 32; j++) EXPECT_NEAR(y[j], 0.5 * (j - 16), 0);

    /* Q4_0: d = 0.25; element j = low nibble of qs[j] (= j % 16), j+16 = high nibble (15 - j) */
    put_f16(b, 0.25f);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | (15 - j) << 4);
    quant_dequantize_row(y, b, QUANT_Q4_0, 32);
    for (int j = 0; j < 16; j++) {
        EXPECT_NEAR(y[j], 0.25 * (j - 8), 0);
        EXPECT_NEAR(y[j + 16], 0.25 * (15 - j - 8), 0);
    }

    /* Q4_1: d = 2, m = -3 */
    put_f16(b, 2.0f);
    put_f16(b + 2, -3.0f);
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(j | (15 - j) << 4);
    quant_dequantize_row(y, b, QUANT_Q4_1, 32);
    for (int j = 0; j < 16; j++) {
        EXPECT_NEAR(y[j], 2.0 * j - 3, 0);
        EXPECT_NEAR(y[j + 16], 2.0 * (15 - j) - 3, 0);
    }

    /* Q5_0: d = 1; 5th bits from the u32 qh: set for even j (elements j) and for j+16 >= 24 */
    put_f16(b, 1.0f);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        if (j % 2 == 0) qh |= 1u << j;
        if (j >= 8) qh |= 1u << (j + 16);
    }
    for (int k = 0; k < 4; k++) b[2 + k] = (uint8_t)(qh >> (8 * k));
    for (int j = 0; j < 16; j++) b[6 + j] = (uint8_t)(j | 3 << 4);
    quant_dequantize_row(y, b, QUANT_Q5_0, 32);
    for (int j = 0; j < 16; j++) {
        EXPECT_NEAR(y[j], (j | (j % 2 == 0 ? 16 : 0)) - 16, 0);
        EXPECT_NEAR(y[j + 16], (3 | (j >= 8 ? 16 : 0)) - 16, 0);
    }

    /* Q5_1: same bits, d = 0.5, m = 1 */
    put_f16(b, 0.5f);
    put_f16(b + 2, 1.0f);
    for (int k = 0; k < 4; k++) b[4 + k] = (uint8_t)(qh >> (8 * k));
    for (int j = 0; j < 16; j++) b[8 + j] = (uint8_t)(j | 3 << 4);
    quant_dequantize_row(y, b, QUANT_Q5_1, 32);
    for (int j = 0; j < 16; j++) {
        EXPECT_NEAR(y[j], 0.5 * (j | (j % 2 == 0 ? 16 : 0)) + 1, 0);
        EXPECT_NEAR(y[j + 16], 0.5 * (3 | (j >= 8 ? 16 : 0)) + 1, 0);
    }

    /* Q4_K: d = 1, dmin = 0.5; sub-block j has scale j + 1 and min 2j (6 bits, packed by hand
     * as documented: j < 4 low 6 bits of bytes j / j+4; j >= 4 nibbles of byte j+4 and top two
     * bits of bytes j-4 / j); level of element 32j + l is l % 16. */
    memset(b, 0, sizeof b);
    put_f16(b, 1.0f);
    put_f16(b + 2, 0.5f);
    uint8_t *s = b + 4;
    int scs[8] = {1, 2, 3, 4, 37, 46, 55, 63}, mns[8] = {0, 2, 4, 6, 40, 50, 17, 63};
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)scs[j];
        s[j + 4] = (uint8_t)mns[j];
    }
    for (int j = 4; j < 8; j++) {
        s[j + 4] = (uint8_t)((scs[j] & 15) | (mns[j] & 15) << 4);
        s[j - 4] |= (uint8_t)((scs[j] >> 4) << 6);
        s[j] |= (uint8_t)((mns[j] >> 4) << 6);
    }
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) b[16 + 32 * c + l] = (uint8_t)((l % 16) | (15 - l % 16) << 4);
    quant_dequantize_row(y, b, QUANT_Q4_K, 256);
    for (int e = 0; e < 256; e++) {
        int j = e / 32, l = e % 32, q = j % 2 == 0 ? l % 16 : 15 - l % 16;
        EXPECT_NEAR(y[e], (double)scs[j] * q - 0.5 * mns[j], 0);
    }

    /* Q5_K: same header and nibbles, plus the 5th bit set for odd l in every sub-block */
    uint8_t b5[176];
    memcpy(b5, b, 16);
    for (int l = 0; l < 32; l++) b5[16 + l] = (l % 2) ? 0xff : 0;
    memcpy(b5 + 48, b + 16, 128);
    quant_dequantize_row(y, b5, QUANT_Q5_K, 256);
    for (int e = 0; e < 256; e++) {
        int j = e / 32, l = e % 32, q = (j % 2 == 0 ? l % 16 : 15 - l % 16) | (l % 2 ? 16 : 0);
        EXPECT_NEAR(y[e], (double)scs[j] * q - 0.5 * mns[j], 0);
    }

    /* Q6_K: d = 0.25, scales[k] = k - 8, level of element e = e % 64, laid out by hand */
    uint8_t b6[210];
    memset(b6, 0, sizeof b6);
    for (int e = 0; e < 256; e++) {
        int q = e % 64, h = e / 128, g = (e % 128) / 32, l = e % 32;
        uint8_t *lo = &b6[64 * h + l + 32 * (g & 1)];
        *lo |= (uint8_t)(g < 2 ? (q & 15) : (q & 15) << 4);
        b6[128 + 32 * h + l] |= (uint8_t)((q >> 4) << (2 * g));
    }
    for (int k = 0; k < 16; k++) b6[192 + k] = (uint8_t)(int8_t)(k - 8);
    put_f16(b6 + 208, 0.25f);
    quant_dequantize_row(y, b6, QUANT_Q6_K, 256);
    for (int e = 0; e < 256; e++) EXPECT_NEAR(y[e], 0.25 * (e / 16 - 8) * (e % 64 - 32), 0);
}

/* Values on a block's grid survive quantization exactly. */
static void test_grid_values_exact(void) {
    float x[256], y[256];
    uint8_t b[256];
    /* Q8_0: amax 127 * 2^-4 with integer multiples of 2^-4 */
    for (int j = 0; j < 32; j++) x[j] = (float)((j * 37) % 255 - 127) / 16.0f;
    x[5] = 127.0f / 16;
    quant_quantize_row(b, x, QUANT_Q8_0, 32);
    quant_dequantize_row(y, b, QUANT_Q8_0, 32);
    for (int j = 0; j < 32; j++) EXPECT_NEAR(y[j], x[j], 0);
    /* Q4_0 / Q5_0: the largest magnitude is -8 d / -16 d */
    for (int bits = 4; bits <= 5; bits++) {
        int half = 1 << (bits - 1);
        for (int j = 0; j < 32; j++) x[j] = 0.125f * (float)((j * 7) % (2 * half) - half);
        x[3] = -0.125f * (float)half;
        quant_type t = bits == 4 ? QUANT_Q4_0 : QUANT_Q5_0;
        quant_quantize_row(b, x, t, 32);
        quant_dequantize_row(y, b, t, 32);
        for (int j = 0; j < 32; j++) EXPECT_NEAR(y[j], x[j], 0);
    }
    /* Q5_1: min -1, step 0.25, 31 steps */
    for (int j = 0; j < 32; j++) x[j] = -1.0f + 0.25f * (float)((j * 11) % 32);
    x[0] = -1.0f;
    x[1] = -1.0f + 0.25f * 31;
    quant_quantize_row(b, x, QUANT_Q5_1, 32);
    quant_dequantize_row(y, b, QUANT_Q5_1, 32);
    for (int j = 0; j < 32; j++) EXPECT_NEAR(y[j], x[j], 0);
    /* F16 / BF16: representable values */
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16) * 0.5f;
    for (quant_type t = QUANT_F16; t <= QUANT_BF16;
         t = t == QUANT_F16 ? QUANT_BF16 : QUANT_TYPE_LIMIT) {
        quant_quantize_row(b, x, t, 32);
        quant_dequantize_row(y, b, t, 32);
        for (int j = 0; j < 32; j++) EXPECT_NEAR(y[j], x[j], 0);
    }
}

static void test_zero_rows(void) {
    quant_type ts[] = {QUANT_Q8_0, QUANT_Q4_0, QUANT_Q5_0, QUANT_Q5_1, QUANT_Q4_1,
                       QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};
    float x[512] = {0}, y[512];
    uint8_t b[1024];
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) {
        quant_quantize_row(b, x, ts[i], 512);
        for (int j = 0; j < 512; j++) y[j] = 1;
        quant_dequantize_row(y, b, ts[i], 512);
        for (int j = 0; j < 512; j++)
            EXPECT_MSG(y[j] == 0, "%s element %d = %g", quant_type_name(ts[i]), j, y[j]);
    }
}

/* Round trips of Gaussian rows (with a few outliers, as trained weights have): relative RMS
 * error per type. The bounds sit about 10% above what llama.cpp's reference quantizers reach on
 * such data (ours produce the same bytes there: tests/e2e/quants_vs_ggml.sh); a packing bug
 * shows up as an error of order 1. */
static void test_round_trip_error(void) {
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t b[N * 2];
    for (int i = 0; i < N; i++) x[i] = gauss() * 0.02f;
    for (int i = 0; i < N; i += 97) x[i] *= 8; /* outliers */
    struct {
        quant_type t;
        double bound;
    } cases[] = {
        {QUANT_Q8_0, 0.0095}, {QUANT_Q6_K, 0.028}, {QUANT_Q5_K, 0.05}, {QUANT_Q5_1, 0.051},
        {QUANT_Q5_0, 0.076},  {QUANT_Q4_K, 0.098}, {QUANT_Q4_1, 0.104}, {QUANT_Q4_0, 0.15},
        {QUANT_F16, 0.0005}, {QUANT_BF16, 0.004},
    };
    double prev_k = 0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        quant_quantize_row(b, x, cases[c].t, N);
        quant_dequantize_row(y, b, cases[c].t, N);
        double e = rel_l2(y, x, N);
        fprintf(stderr, "    %-5s relative RMS error %.5f (bound %.4f)\n",
                quant_type_name(cases[c].t), e, cases[c].bound);
        EXPECT_MSG(e < cases[c].bound, "%s error %g", quant_type_name(cases[c].t), e);
        EXPECT(e > 0);
        /* more bits, less error among the K-quants */
        if (cases[c].t == QUANT_Q6_K || cases[c].t == QUANT_Q5_K || cases[c].t == QUANT_Q4_K) {
            EXPECT(e > prev_k);
            prev_k = e;
        }
    }
    /* Q8_0 per element: at most half a step of its block (plus the f16 rounding of d) */
    quant_quantize_row(b, x, QUANT_Q8_0, N);
    quant_dequantize_row(y, b, QUANT_Q8_0, N);
    for (int blk = 0; blk < N / 32; blk++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[blk * 32 + j]));
        for (int j = 0; j < 32; j++)
            EXPECT(fabsf(y[blk * 32 + j] - x[blk * 32 + j]) <= amax / 127 * 0.5f + amax * 1e-3f);
    }
}

/* The same input gives the same bytes (export is reproducible). */
static void test_deterministic(void) {
    float x[256];
    uint8_t a[256], b[256];
    for (int i = 0; i < 256; i++) x[i] = gauss();
    quant_type ts[] = {QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};
    for (int i = 0; i < 3; i++) {
        quant_quantize_row(a, x, ts[i], 256);
        quant_quantize_row(b, x, ts[i], 256);
        EXPECT(memcmp(a, b, quant_row_bytes(ts[i], 256)) == 0);
    }
}

/* A weight of GGUF blocks (weight.qtype): rows and single elements dequantize as the rows do. */
static void test_weight_blocks(void) {
    enum { R = 3, C = 512 };
    static float x[R * C], rows[R * C], ref[C];
    static uint8_t q[R * 420];
    for (int i = 0; i < R * C; i++) x[i] = gauss();
    quant_type ts[] = {QUANT_Q6_K, QUANT_Q4_0, QUANT_Q5_K};
    for (int k = 0; k < 3; k++) {
        const size_t rb = quant_row_bytes(ts[k], C);
        for (int r = 0; r < R; r++) quant_quantize_row(q + r * rb, x + r * C, ts[k], C);
        weight w = {.dt = DTYPE_U8, .rows = R, .cols = C, .data = q, .qtype = ts[k]};
        weight_rows_to_f32(rows, &w, 1, 2);
        for (int r = 1; r < R; r++) {
            quant_dequantize_row(ref, q + r * rb, ts[k], C);
            EXPECT(memcmp(rows + (r - 1) * C, ref, sizeof ref) == 0);
            for (int c = 0; c < C; c += 37) EXPECT(weight_get(&w, r, c) == ref[c]);
        }
    }
}

int main(void) {
    RUN(test_table);
    RUN(test_dequant_hand_built);
    RUN(test_grid_values_exact);
    RUN(test_zero_rows);
    RUN(test_round_trip_error);
    RUN(test_deterministic);
    RUN(test_weight_blocks);
    TESTS_DONE();
}
