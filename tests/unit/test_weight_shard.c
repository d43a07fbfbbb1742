/* Tensor-parallel shards of weights (core/weight.h weight_rows_slice, weight_cols_copy) read the
 * same elements as the whole weight, FP8 scales included, and refuse ranges that would split an
 * FP8 scale block; deepseek_tp_check accepts DeepSeek-R1's shape at 2, 4 and 8 ranks and names
 * what does not split otherwise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/weight.h"
#include "teacher/teacher.h"
#include "tests/unit/testing.h"

enum { ROWS = 96, COLS = 80, BLOCK = 32, SR = 3, SC = 3 }; /* 80 columns: a partial last block */

static uint8_t fp8_data[ROWS * COLS];
static float fp8_scale[SR * SC];
static uint16_t bf16_data[ROWS * COLS];

static void make_weights(weight *fp8, weight *bf16) {
    uint32_t s = 12345;
    for (int i = 0; i < ROWS * COLS; i++) {
        s = s * 1664525u + 1013904223u;
        uint8_t b = (uint8_t)(s >> 24);
        if ((b & 0x7f) == 0x7f) b ^= 1; /* not e4m3's NaN */
        fp8_data[i] = b;
        bf16_data[i] = (uint16_t)(0x3f80 + (s >> 20 & 0xff)); /* 1.0 .. 2.0 */
    }
    for (int i = 0; i < SR * SC; i++) fp8_scale[i] = 0.5f + 0.25f * (float)i;
    *fp8 = (weight){.dt = DTYPE_F8_E4M3, .rows = ROWS, .cols = COLS, .data = fp8_data,
                    .scale_inv = fp8_scale, .block_rows = BLOCK, .block_cols = BLOCK};
    *bf16 = (weight){.dt = DTYPE_BF16, .rows = ROWS, .cols = COLS, .data = bf16_data};
}

/* Every element of `part` equals the whole weight's at the offset. */
static int same_elements(const weight *part, const weight *whole, int64_t r0, int64_t c0) {
    for (int64_t r = 0; r < part->rows; r++)
        for (int64_t c = 0; c < part->cols; c++)
            if (weight_get(part, r, c) != weight_get(whole, r0 + r, c0 + c)) return 0;
    return 1;
}

static void test_row_slices(void) {
    weight fp8, bf16, part;
    make_weights(&fp8, &bf16);
    EXPECT_EQ_INT(weight_rows_slice(&part, &fp8, 32, 32, "w"), R1_OK);
    EXPECT(part.rows == 32 && part.cols == COLS && same_elements(&part, &fp8, 32, 0));
    EXPECT_EQ_INT(weight_rows_slice(&part, &fp8, 64, 32, "w"), R1_OK);
    EXPECT(same_elements(&part, &fp8, 64, 0));
    EXPECT_EQ_INT(weight_rows_slice(&part, &bf16, 7, 50, "w"), R1_OK);
    EXPECT(same_elements(&part, &bf16, 7, 0));
    /* a shard starting or ending inside a scale block, or outside the weight */
    EXPECT_EQ_INT(weight_rows_slice(&part, &fp8, 16, 32, "w"), R1_EINPUT);
    EXPECT(strstr(err_why(), "splits an FP8 scale block") != NULL);
    err_clear();
    EXPECT_EQ_INT(weight_rows_slice(&part, &fp8, 32, 40, "w"), R1_EINPUT);
    err_clear();
    EXPECT_EQ_INT(weight_rows_slice(&part, &bf16, 90, 7, "w"), R1_EINPUT);
    EXPECT(strstr(err_why(), "outside") != NULL);
    err_clear();
}

static void test_column_copies(void) {
    weight fp8, bf16, part;
    make_weights(&fp8, &bf16);
    void *owned;
    /* the last shard holds the partial block */
    EXPECT_EQ_INT(weight_cols_copy(&part, &owned, &fp8, 32, 48, "w"), R1_OK);
    EXPECT(part.rows == ROWS && part.cols == 48 && same_elements(&part, &fp8, 0, 32));
    EXPECT((const void *)part.data == owned);
    free(owned);
    EXPECT_EQ_INT(weight_cols_copy(&part, &owned, &fp8, 0, 32, "w"), R1_OK);
    EXPECT(same_elements(&part, &fp8, 0, 0));
    free(owned);
    EXPECT_EQ_INT(weight_cols_copy(&part, &owned, &bf16, 3, 7, "w"), R1_OK);
    EXPECT(same_elements(&part, &bf16, 0, 3));
    free(owned);
    EXPECT_EQ_INT(weight_cols_copy(&part, &owned, &fp8, 16, 32, "w"), R1_EINPUT);
    EXPECT(owned == NULL);
    err_clear();
}

/* DeepSeek-R1's published config.json. */
static model_config r1_shape(void) {
    model_config c;
    EXPECT_EQ_INT(model_config_load(&c, "tests/fixtures/configs/deepseek-r1.json"), R1_OK);
    EXPECT(c.arch == ARCH_DEEPSEEK_V3 && c.fp8 && c.num_heads == 128);
    return c;
}

static void test_deepseek_split(void) {
    model_config c = r1_shape();
    for (int tp = 1; tp <= 16; tp *= 2) EXPECT_EQ_INT(deepseek_tp_check(&c, tp, "r1"), R1_OK);
    EXPECT_EQ_INT(deepseek_tp_check(&c, 3, "r1"), R1_EINPUT);
    EXPECT(strstr(err_why(), "num_attention_heads = 128") != NULL);
    err_clear();
    /* 32 ranks: 576 dense-MLP units each, 4.5 blocks of 128 */
    EXPECT_EQ_INT(deepseek_tp_check(&c, 32, "r1"), R1_EINPUT);
    EXPECT(strstr(err_why(), "576 dense MLP gate/up rows") != NULL);
    err_clear();
    c.fp8 = 0; /* bf16: only divisibility */
    EXPECT_EQ_INT(deepseek_tp_check(&c, 32, "r1"), R1_OK);
    c.n_routed_experts = 255;
    EXPECT_EQ_INT(deepseek_tp_check(&c, 2, "r1"), R1_EINPUT);
    EXPECT(strstr(err_why(), "n_routed_experts") != NULL);
    err_clear();
}

int main(void) {
    RUN(test_row_slices);
    RUN(test_column_copies);
    RUN(test_deepseek_split);
    TESTS_DONE();
}
