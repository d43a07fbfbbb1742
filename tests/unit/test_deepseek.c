/* The DeepSeek-V3 forward pass against transformers' DeepseekV3ForCausalLM (fixtures made by
 * tests/ref/make_deepseek_fixtures.py), incremental decoding through the latent cache, batch
 * independence, the YaRN tables, and clear errors on broken checkpoints.
 *
 *   deepseek-yarn   BF16, YaRN (factor 4, 48 tokens over 32 original positions), correction
 *                   bias, 12 experts in 4 groups, 2 shared experts, dense first layer
 *   deepseek-fp8    FP8 e4m3 [32, 32] block scales with partial edge blocks, two shards, scales
 *                   in the other shard than their weights, an MTP layer in the files
 *   deepseek-qnull  q_lora_rank null (q_proj), rope_interleave false, one group, no renorm */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "teacher/teacher.h"
#include "tests/unit/testing.h"

static const char *const cases[] = {"deepseek-yarn", "deepseek-fp8", "deepseek-qnull"};
enum { N_CASES = 3 };

static char *fixture(const char *name) {
    const char *root = getenv("ROOT");
    return xasprintf("%s/tests/fixtures/%s", root ? root : ".", name);
}

typedef struct {
    int *tokens;
    int T, V;
    int *argmax;
    float *logits; /* [T, V] from transformers */
    cJSON *json;
} reference;

static int load_ref(reference *r, const char *dir) {
    memset(r, 0, sizeof *r);
    char *p = xasprintf("%s/ref.json", dir);
    int rc = json_parse_file(&r->json, p, 1 << 20);
    free(p);
    if (rc) return rc;
    const cJSON *tok = cJSON_GetObjectItem(r->json, "tokens");
    const cJSON *shape = cJSON_GetObjectItem(r->json, "shape");
    const cJSON *am = cJSON_GetObjectItem(r->json, "argmax");
    r->T = cJSON_GetArraySize(tok);
    r->V = (int)cJSON_GetArrayItem(shape, 1)->valuedouble;
    r->tokens = xmalloc(sizeof(int) * (size_t)r->T);
    r->argmax = xmalloc(sizeof(int) * (size_t)r->T);
    for (int i = 0; i < r->T; i++) {
        r->tokens[i] = (int)cJSON_GetArrayItem(tok, i)->valuedouble;
        r->argmax[i] = (int)cJSON_GetArrayItem(am, i)->valuedouble;
    }
    p = xasprintf("%s/logits.f32", dir);
    char *data;
    size_t len;
    rc = file_read_all(p, 64u << 20, &data, &len);
    free(p);
    if (rc) return rc;
    if (len != sizeof(float) * (size_t)r->T * r->V) return R1_EINPUT;
    r->logits = (float *)data;
    return R1_OK;
}

static void free_ref(reference *r) {
    free(r->tokens);
    free(r->argmax);
    free(r->logits);
    cJSON_Delete(r->json);
}

static int argmax_of(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

static teacher_model *open_case(const char *name) {
    char *dir = fixture(name);
    teacher_model *m = NULL;
    if (teacher_open(&m, dir, backend_cpu())) {
        fprintf(stderr, "  %s: %s: %s\n", name, err_what(), err_why());
        m = NULL;
    }
    free(dir);
    return m;
}

/* Every position within 1e-4 relative L2 of transformers, same argmax. */
static void test_fixture_logits(void) {
    for (int c = 0; c < N_CASES; c++) {
        char *dir = fixture(cases[c]);
        reference r;
        EXPECT_EQ_INT(load_ref(&r, dir), R1_OK);
        teacher_model *m = open_case(cases[c]);
        EXPECT(m != NULL);
        if (!m || !r.logits) {
            free(dir);
            continue;
        }
        EXPECT_EQ_INT(r.V, m->cfg.vocab_size);
        float *logits;
        EXPECT_EQ_INT(teacher_logits_all(m, r.tokens, r.T, &logits), R1_OK);
        double worst = 0;
        int mismatches = 0;
        for (int t = 0; t < r.T; t++) {
            const float *mine = logits + (size_t)t * r.V, *ref = r.logits + (size_t)t * r.V;
            double e = rel_l2(mine, ref, (size_t)r.V);
            if (e > worst) worst = e;
            EXPECT_MSG(e <= 1e-4, "%s position %d: relative L2 error %.3g", cases[c], t, e);
            if (argmax_of(mine, r.V) != r.argmax[t]) mismatches++;
        }
        EXPECT_MSG(mismatches == 0, "%s: %d argmax mismatches", cases[c], mismatches);
        fprintf(stderr, "    %-15s %2d positions, worst relative L2 %.2e, argmax %d/%d\n",
                cases[c], r.T, worst, r.T - mismatches, r.T);
        free(logits);
        teacher_close(m);
        free_ref(&r);
        free(dir);
    }
}

/* Prefill k tokens, then one at a time through the latent cache: the full forward's logits. */
static void test_incremental_decode(void) {
    for (int c = 0; c < N_CASES; c++) {
        char *dir = fixture(cases[c]);
        reference r;
        teacher_model *m = open_case(cases[c]);
        if (load_ref(&r, dir) || !m) {
            EXPECT(0);
            free(dir);
            continue;
        }
        const int T = r.T, V = r.V, k = T / 3;
        float *full;
        EXPECT_EQ_INT(teacher_logits_all(m, r.tokens, T, &full), R1_OK);
        EXPECT_EQ_INT(m->cache_init(m, 1, T), R1_OK);
        float *inc = xmalloc(sizeof(float) * (size_t)T * V);
        int *slot = xcalloc((size_t)T, sizeof(int)), *pos = xmalloc(sizeof(int) * (size_t)T);
        for (int i = 0; i < T; i++) pos[i] = i;
        token_layout pre = {.n = k, .slot = slot, .pos = pos};
        EXPECT_EQ_INT(m->forward(m, r.tokens, &pre, pos, k, inc), R1_OK);
        int row0 = 0;
        for (int t = k; t < T; t++) {
            token_layout one = {.n = 1, .slot = slot, .pos = pos + t};
            EXPECT_EQ_INT(m->forward(m, r.tokens + t, &one, &row0, 1, inc + (size_t)t * V), R1_OK);
        }
        double worst = 0;
        for (int t = 0; t < T; t++) {
            double e = rel_l2(inc + (size_t)t * V, full + (size_t)t * V, (size_t)V);
            if (e > worst) worst = e;
            EXPECT_MSG(e <= 1e-5, "%s position %d: incremental vs full %.3g", cases[c], t, e);
        }
        fprintf(stderr, "    %-15s prefill %d + %d single steps, worst relative L2 %.2e\n",
                cases[c], k, T - k, worst);
        free(full);
        free(inc);
        free(slot);
        free(pos);
        teacher_close(m);
        free_ref(&r);
        free(dir);
    }
}

/* Two sequences in one ragged batch (different slots, different lengths) give bit for bit the
 * logits each gives alone: routing, expert grouping and attention never mix tokens. */
static void test_batch_independence(void) {
    char *dir = fixture("deepseek-yarn");
    reference r;
    teacher_model *m = open_case("deepseek-yarn");
    if (load_ref(&r, dir) || !m) {
        EXPECT(0);
        free(dir);
        return;
    }
    const int V = r.V, a = 20, b = 13;
    int tokens[33], slot[33], pos[33], rows[33];
    for (int i = 0; i < a; i++) tokens[i] = r.tokens[i], slot[i] = 0, pos[i] = i;
    for (int i = 0; i < b; i++) tokens[a + i] = r.tokens[r.T - 1 - i], slot[a + i] = 1, pos[a + i] = i;
    for (int i = 0; i < a + b; i++) rows[i] = i;
    float *alone_a, *alone_b;
    EXPECT_EQ_INT(teacher_logits_all(m, tokens, a, &alone_a), R1_OK);
    EXPECT_EQ_INT(teacher_logits_all(m, tokens + a, b, &alone_b), R1_OK);
    EXPECT_EQ_INT(m->cache_init(m, 2, a), R1_OK);
    float *both = xmalloc(sizeof(float) * (size_t)(a + b) * V);
    token_layout tl = {.n = a + b, .slot = slot, .pos = pos};
    EXPECT_EQ_INT(m->forward(m, tokens, &tl, rows, a + b, both), R1_OK);
    EXPECT(memcmp(both, alone_a, sizeof(float) * (size_t)a * V) == 0);
    EXPECT(memcmp(both + (size_t)a * V, alone_b, sizeof(float) * (size_t)b * V) == 0);
    free(alone_a);
    free(alone_b);
    free(both);
    teacher_close(m);
    free_ref(&r);
    free(dir);
}

/* The YaRN frequencies, cos/sin multiplier and softmax scale transformers used (ref.json). */
static void test_yarn_tables(void) {
    char *dir = fixture("deepseek-yarn");
    reference r;
    model_config c;
    EXPECT_EQ_INT(load_ref(&r, dir), R1_OK);
    EXPECT_EQ_INT(model_config_load(&c, dir), R1_OK);
    EXPECT_EQ_INT(c.rope.type, ROPE_YARN);
    rope_table yarn, plain;
    rope_init(&yarn, &c.rope, c.qk_rope_head_dim, ROPE_PAIRS_INTERLEAVED);
    rope_config def = {.type = ROPE_DEFAULT, .theta = c.rope.theta};
    rope_init(&plain, &def, c.qk_rope_head_dim, ROPE_PAIRS_INTERLEAVED);
    const cJSON *ratio = cJSON_GetObjectItem(r.json, "yarn_inv_freq_ratio");
    EXPECT_EQ_INT(cJSON_GetArraySize(ratio), c.qk_rope_head_dim / 2);
    for (int i = 0; i < c.qk_rope_head_dim / 2 && i < cJSON_GetArraySize(ratio); i++)
        EXPECT_NEAR(yarn.inv_freq[i] / plain.inv_freq[i], cJSON_GetArrayItem(ratio, i)->valuedouble,
                    1e-6);
    EXPECT_NEAR(yarn.attn_factor, cJSON_GetObjectItem(r.json, "yarn_attention_factor")->valuedouble,
                1e-6);
    EXPECT_NEAR(deepseek_softmax_scale(&c), cJSON_GetObjectItem(r.json, "softmax_scale")->valuedouble,
                1e-7);
    rope_free(&yarn);
    rope_free(&plain);
    free_ref(&r);
    free(dir);
}

static void test_cache_bytes(void) {
    teacher_model *m = open_case("deepseek-fp8");
    EXPECT(m != NULL);
    if (!m) return;
    /* kv_lora_rank 40 + qk_rope_head_dim 8 floats per layer, 2 layers (the MTP layer has none) */
    EXPECT_EQ_INT(m->cache_bytes_per_token(m), 2 * (40 + 8) * sizeof(float));
    teacher_close(m);
}

/* ---- broken checkpoints ---------------------------------------------------------------------- */

typedef struct {
    const char *fixture;
    const char *drop;          /* tensor left out, or NULL */
    const char *reshape;       /* tensor written with new_shape, or NULL */
    int64_t new_shape[2];
    const char *quant_method;  /* replaces quantization_config.quant_method, or NULL */
    int drop_quant;            /* removes quantization_config */
    const char *expect;        /* what the message must name */
} breakage;

/* Writes a one-file copy of a fixture with one thing broken into dir. */
static int write_broken(const char *dir, const breakage *b) {
    char *src = fixture(b->fixture);
    safetensors st;
    int rc = safetensors_open(&st, src);
    if (rc) {
        free(src);
        return rc;
    }
    st_entry *e = xcalloc((size_t)st.n, sizeof *e);
    int n = 0;
    for (int i = 0; i < st.n; i++) {
        const st_tensor *t = &st.tensors[i];
        if (b->drop && strcmp(t->name, b->drop) == 0) continue;
        e[n] = (st_entry){.name = t->name, .dt = t->dt, .ndim = t->ndim, .data = t->data};
        memcpy(e[n].shape, t->shape, sizeof t->shape);
        if (b->reshape && strcmp(t->name, b->reshape) == 0) {
            EXPECT(b->new_shape[0] * b->new_shape[1] == t->numel);
            e[n].ndim = 2;
            e[n].shape[0] = b->new_shape[0];
            e[n].shape[1] = b->new_shape[1];
        }
        n++;
    }
    char *out = xasprintf("%s/model.safetensors", dir);
    rc = safetensors_write(out, e, n, NULL);
    free(out);
    free(e);
    safetensors_close(&st);

    cJSON *cfg = NULL;
    char *cp = xasprintf("%s/config.json", src);
    if (!rc) rc = json_parse_file(&cfg, cp, 1 << 20);
    free(cp);
    free(src);
    if (rc) return rc;
    cJSON *q = cJSON_GetObjectItem(cfg, "quantization_config");
    if (b->quant_method && q)
        cJSON_ReplaceItemInObject(q, "quant_method", cJSON_CreateString(b->quant_method));
    if (b->drop_quant) cJSON_DeleteItemFromObject(cfg, "quantization_config");
    char *text = json_print(cfg);
    cp = xasprintf("%s/config.json", dir);
    rc = file_write_atomic(cp, text, strlen(text));
    free(cp);
    free(text);
    cJSON_Delete(cfg);
    return rc;
}

/* Runs `$BIN logits` on dir (when the runner gives BIN): exit status 2, stderr naming `expect`. */
static void check_cli(const char *dir, const char *expect) {
    const char *bin = getenv("BIN");
    if (!bin) return;
    char *err = xasprintf("%s/stderr.txt", dir);
    char *cmd = xasprintf("'%s' logits --model '%s' --tokens 1,2 >/dev/null 2>'%s'", bin, dir, err);
    int st = system(cmd);
    EXPECT_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s: exit status %d", cmd,
               WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    char *text = NULL;
    size_t len;
    if (file_read_all(err, 1 << 20, &text, &len) == R1_OK) {
        EXPECT_MSG(strstr(text, expect) != NULL, "stderr does not name \"%s\": %s", expect, text);
        EXPECT_MSG(strstr(text, "r1-distill logits: ") == text, "stderr: %s", text);
    } else {
        EXPECT(0);
    }
    free(text);
    unlink(err);
    free(err);
    free(cmd);
}

static void test_broken_checkpoints(void) {
    static const breakage cases_[] = {
        /* an FP8 weight without its scale */
        {.fixture = "deepseek-fp8", .drop = "model.layers.1.mlp.experts.3.up_proj.weight_scale_inv",
         .expect = "model.layers.1.mlp.experts.3.up_proj.weight_scale_inv"},
        /* a scale of the wrong shape ([2, 2] for a [48, 64] weight in 32 x 32 blocks) */
        {.fixture = "deepseek-fp8", .reshape = "model.layers.0.self_attn.q_a_proj.weight_scale_inv",
         .new_shape = {4, 1}, .expect = "model.layers.0.self_attn.q_a_proj.weight_scale_inv"},
        /* an unsupported quantization_config */
        {.fixture = "deepseek-fp8", .quant_method = "bitsandbytes",
         .expect = "unsupported quantization_config"},
        /* FP8 weights without any quantization_config */
        {.fixture = "deepseek-fp8", .drop_quant = 1, .expect = "F8_E4M3"},
        /* a routed expert missing */
        {.fixture = "deepseek-yarn", .drop = "model.layers.2.mlp.experts.11.down_proj.weight",
         .expect = "model.layers.2.mlp.experts.11.down_proj.weight"},
        /* the router's correction bias missing */
        {.fixture = "deepseek-yarn", .drop = "model.layers.1.mlp.gate.e_score_correction_bias",
         .expect = "model.layers.1.mlp.gate.e_score_correction_bias"},
        /* kv_b_proj transposed */
        {.fixture = "deepseek-yarn", .reshape = "model.layers.0.self_attn.kv_b_proj.weight",
         .new_shape = {32, 112}, .expect = "model.layers.0.self_attn.kv_b_proj.weight"},
    };
    const char *tmp = getenv("TMPDIR");
    for (size_t i = 0; i < sizeof cases_ / sizeof *cases_; i++) {
        const breakage *b = &cases_[i];
        char *dir = xasprintf("%s/r1-deepseek-XXXXXX", tmp ? tmp : "/tmp");
        EXPECT(mkdtemp(dir) != NULL);
        EXPECT_EQ_INT(write_broken(dir, b), R1_OK);
        err_clear();
        teacher_model *m = NULL;
        int rc = teacher_open(&m, dir, backend_cpu());
        EXPECT_MSG(rc == R1_EINPUT, "case %zu: status %d", i, rc);
        EXPECT(m == NULL);
        const char *why = err_why() ? err_why() : "";
        EXPECT_MSG(strstr(why, b->expect) != NULL, "case %zu: \"%s\" does not name \"%s\"", i,
                   why, b->expect);
        check_cli(dir, b->expect);
        char *p = xasprintf("%s/model.safetensors", dir);
        unlink(p);
        free(p);
        p = xasprintf("%s/config.json", dir);
        unlink(p);
        free(p);
        rmdir(dir);
        free(dir);
    }
}

int main(void) {
    RUN(test_fixture_logits);
    RUN(test_incremental_decode);
    RUN(test_batch_independence);
    RUN(test_yarn_tables);
    RUN(test_cache_bytes);
    RUN(test_broken_checkpoints);
    TESTS_DONE();
}
