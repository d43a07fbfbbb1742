/* config.json parsing: both transformers layouts, rope variants, ids, and refusals. */
#include "core/config.h"
#include "core/error.h"
#include "core/rope.h"
#include "tests/unit/testing.h"

static int parse(model_config *c, const char *json) {
    return model_config_parse(c, json, strlen(json), "config.json");
}

#define BASE                                                                                  \
    "\"vocab_size\": 1000, \"hidden_size\": 64, \"intermediate_size\": 128, "                  \
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 4"

static void test_layouts(void) {
    model_config c;
    /* transformers 4: rope_theta and rope_scaling at top level */
    EXPECT(parse(&c, "{\"model_type\": \"llama\", " BASE ", \"num_key_value_heads\": 2, "
                     "\"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": \"llama3\", "
                     "\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                     "\"original_max_position_embeddings\": 8192}, \"eos_token_id\": [128001, "
                     "128008, 128009], \"bos_token_id\": 128000}") == R1_OK);
    EXPECT(c.arch == ARCH_LLAMA && c.num_kv_heads == 2 && c.head_dim == 16);
    EXPECT(c.rope.type == ROPE_LLAMA3 && c.rope.theta == 500000.0 && c.rope.factor == 8.0);
    EXPECT(c.rope.original_max_position == 8192);
    EXPECT(c.n_eos == 3 && c.eos_ids[2] == 128009 && c.bos_id == 128000);
    EXPECT(model_config_is_eos(&c, 128008) && !model_config_is_eos(&c, 128000));
    EXPECT(!c.attention_bias && !c.tie_word_embeddings);
    /* transformers 5: rope_parameters */
    EXPECT(parse(&c, "{\"model_type\": \"qwen2\", " BASE ", \"rope_parameters\": {\"rope_type\": "
                     "\"default\", \"rope_theta\": 1000000.0}, \"eos_token_id\": 151643, "
                     "\"tie_word_embeddings\": true}") == R1_OK);
    EXPECT(c.arch == ARCH_QWEN2 && c.attention_bias && c.tie_word_embeddings);
    EXPECT(c.rope.type == ROPE_DEFAULT && c.rope.theta == 1e6 && c.n_eos == 1);
    EXPECT(c.bos_id == -1 && c.num_kv_heads == 4);
    /* legacy "type" key and explicit head_dim */
    EXPECT(parse(&c, "{\"model_type\": \"llama\", " BASE ", \"head_dim\": 32, \"rope_scaling\": "
                     "{\"type\": \"yarn\", \"factor\": 4, \"original_max_position_embeddings\": "
                     "32}}") == R1_OK);
    EXPECT(c.head_dim == 32 && c.rope.type == ROPE_YARN && c.rope.beta_fast == 32.0);
}

static void expect_refused(const char *json, const char *needle) {
    model_config c;
    int rc = parse(&c, json);
    EXPECT_MSG(rc == R1_EINPUT, "status %d for %s", rc, json);
    char msg[2400];
    snprintf(msg, sizeof msg, "%s: %s %s", err_what(), err_why(), err_hint_text());
    EXPECT_MSG(strstr(msg, needle) != NULL, "\"%s\" lacks \"%s\"", msg, needle);
    EXPECT(strstr(msg, "config.json") != NULL);
}

static void test_refusals(void) {
    expect_refused("{\"model_type\": \"gpt2\", " BASE "}", "supported model types");
    expect_refused("{" BASE "}", "missing \"model_type\"");
    expect_refused("{\"model_type\": \"llama\", \"vocab_size\": 10}", "missing \"hidden_size\"");
    expect_refused("{\"model_type\": \"llama\", " BASE ", \"num_key_value_heads\": 3}",
                   "not a multiple");
    expect_refused("{\"model_type\": \"llama\", \"vocab_size\": 1000, \"hidden_size\": \"64\"}",
                   "must be an integer");
    expect_refused("{\"model_type\": \"llama\", " BASE ", \"hidden_size\": 32}", "appears twice");
    expect_refused("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"type\": \"dynamic\"}}",
                   "supported rope types");
    expect_refused("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"type\": \"llama3\", "
                   "\"factor\": 8}}", "original_max_position_embeddings");
    expect_refused("{\"model_type\": \"llama\", " BASE ", \"eos_token_id\": \"x\"}", "eos_token_id");
    expect_refused("{\"model_type\": \"llama\", \"vocab_size\": 1000, \"hidden_size\": 64, "
                   "\"intermediate_size\": 128, \"num_hidden_layers\": -2}", "outside");
    expect_refused("{\"model_type\": \"llama\", " BASE "", "invalid JSON");
    expect_refused("", "empty");
    expect_refused("[]", "not a JSON object");
    expect_refused("{\"model_type\": \"deepseek_v3\", " BASE ", \"kv_lora_rank\": 16, "
                   "\"qk_nope_head_dim\": 8, \"qk_rope_head_dim\": 4, \"v_head_dim\": 8, "
                   "\"quantization_config\": {\"quant_method\": \"gptq\"}}",
                   "unsupported quantization_config");
    expect_refused("{\"model_type\": \"deepseek_v3\", " BASE ", \"kv_lora_rank\": 16, "
                   "\"qk_nope_head_dim\": 8, \"qk_rope_head_dim\": 4, \"v_head_dim\": 8, "
                   "\"scoring_func\": \"softmax\"}", "scoring_func");
}

static void test_deepseek_fields(void) {
    model_config c;
    EXPECT(parse(&c, "{\"model_type\": \"deepseek_v3\", " BASE ", \"kv_lora_rank\": 16, "
                     "\"q_lora_rank\": null, \"qk_nope_head_dim\": 8, \"qk_rope_head_dim\": 4, "
                     "\"v_head_dim\": 8, \"n_routed_experts\": 8, \"n_shared_experts\": 1, "
                     "\"num_experts_per_tok\": 2, \"n_group\": 4, \"topk_group\": 2, "
                     "\"moe_intermediate_size\": 32, \"first_k_dense_replace\": 1, "
                     "\"routed_scaling_factor\": 2.5, \"norm_topk_prob\": true, "
                     "\"scoring_func\": \"sigmoid\", \"topk_method\": \"noaux_tc\", "
                     "\"quantization_config\": {\"activation_scheme\": \"dynamic\", \"fmt\": "
                     "\"e4m3\", \"quant_method\": \"fp8\", \"weight_block_size\": [128, 128]}}") ==
           R1_OK);
    EXPECT(c.arch == ARCH_DEEPSEEK_V3 && c.q_lora_rank == 0 && c.kv_lora_rank == 16);
    EXPECT(c.n_routed_experts == 8 && c.n_group == 4 && c.topk_group == 2);
    EXPECT(c.routed_scaling_factor == 2.5 && c.norm_topk_prob && c.fp8);
    EXPECT(c.fp8_block[0] == 128 && c.fp8_block[1] == 128);
}

/* Frequencies against values worked out by hand from the formulas in transformers. */
static void test_rope_frequencies(void) {
    rope_config d = {.type = ROPE_DEFAULT, .theta = 10000.0};
    rope_table r;
    rope_init(&r, &d, 8, ROPE_PAIRS_HALF);
    EXPECT_NEAR(r.inv_freq[0], 1.0, 0);
    EXPECT_NEAR(r.inv_freq[1], 0.1, 1e-8);
    EXPECT_NEAR(r.inv_freq[3], 0.001, 1e-10);
    rope_free(&r);
    /* llama3 with original 64, factor 8, low 1, high 4 and theta 500000, head 16:
     * wavelength 2π/f: i=0 6.28 (high band, unchanged), i=1 about 32.9 (medium, blended),
     * i>=2 above 64 (low band, divided by 8). */
    rope_config l3 = {.type = ROPE_LLAMA3, .theta = 500000.0, .factor = 8, .low_freq_factor = 1,
                      .high_freq_factor = 4, .original_max_position = 64};
    rope_init(&r, &l3, 16, ROPE_PAIRS_HALF);
    double f1 = 1.0 / pow(500000.0, 2.0 / 16.0), wl = 2 * M_PI / f1;
    double smooth = (64.0 / wl - 1.0) / 3.0;
    EXPECT_NEAR(r.inv_freq[0], 1.0, 1e-7);
    EXPECT_NEAR(r.inv_freq[1], (1 - smooth) * f1 / 8 + smooth * f1, 1e-6 * f1);
    double f3 = 1.0 / pow(500000.0, 6.0 / 16.0);
    EXPECT_NEAR(r.inv_freq[3], f3 / 8, 1e-6 * f3);
    rope_free(&r);
    /* DeepSeek-V3's YaRN: dim 64, theta 10000, factor 40, original 4096, beta 32/1 gives the
     * correction range [10, 23]; mscale == mscale_all_dim makes the cos/sin factor 1. */
    rope_config y = {.type = ROPE_YARN, .theta = 10000, .factor = 40, .original_max_position = 4096,
                     .beta_fast = 32, .beta_slow = 1, .mscale = 1, .mscale_all_dim = 1};
    rope_init(&r, &y, 64, ROPE_PAIRS_INTERLEAVED);
    EXPECT_NEAR(r.attn_factor, 1.0, 1e-7);
    for (int i = 0; i < 32; i++) {
        double base = 1.0 / pow(10000.0, 2.0 * i / 64), ramp = (i - 10.0) / 13.0;
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        double want = base / 40 * ramp + base * (1 - ramp);
        EXPECT_MSG(fabs(r.inv_freq[i] - want) <= 2e-6 * want, "i=%d %g vs %g", i, r.inv_freq[i], want);
    }
    EXPECT_NEAR(yarn_get_mscale(40, 1.0), 1.36888794, 1e-7);
    rope_free(&r);
}

int main(void) {
    RUN(test_layouts);
    RUN(test_refusals);
    RUN(test_deepseek_fields);
    RUN(test_rope_frequencies);
    TESTS_DONE();
}
