/* The Qwen2 / Llama forward pass against transformers (tests/ref/make_dense_fixtures.py):
 * relative L2 error <= 1e-4 at every position and the same argmax; incremental decoding through
 * the KV cache equals the full forward; a sequence's logits do not depend on what else is in
 * the batch. */
#include "core/error.h"
#include "teacher/teacher.h"
#include "tests/unit/fixture.h"
#include "tests/unit/testing.h"

static const char *fixtures[] = {"tests/fixtures/qwen2-tied", "tests/fixtures/llama3-bf16"};

static void test_matches_transformers(void) {
    for (size_t f = 0; f < sizeof fixtures / sizeof *fixtures; f++) {
        ref_logits ref = fixture_load(fixtures[f]);
        teacher_model *m;
        EXPECT(teacher_open(&m, fixtures[f], backend_cpu()) == R1_OK);
        if (!m) {
            err_print();
            continue;
        }
        EXPECT_EQ_INT(m->cfg.vocab_size, ref.vocab);
        float *logits;
        EXPECT(teacher_logits_all(m, ref.tokens, ref.n, &logits) == R1_OK);
        double worst = 0;
        for (int t = 0; t < ref.n; t++) {
            double e = rel_l2(logits + (size_t)t * ref.vocab, ref.logits + (size_t)t * ref.vocab,
                              (size_t)ref.vocab);
            if (e > worst) worst = e;
            EXPECT_MSG(e <= 1e-4, "%s position %d: rel L2 %.3g", fixtures[f], t, e);
            EXPECT_MSG(argmax_f32(logits + (size_t)t * ref.vocab, ref.vocab) == ref.argmax[t],
                       "%s position %d: argmax differs", fixtures[f], t);
        }
        fprintf(stderr, "    %s: worst relative L2 error %.3g over %d positions\n", fixtures[f],
                worst, ref.n);
        free(logits);
        teacher_close(m);
        fixture_free(&ref);
    }
}

/* Prefill k tokens, then feed the rest one at a time through the cache. */
static void test_incremental_equals_full(void) {
    for (size_t f = 0; f < sizeof fixtures / sizeof *fixtures; f++) {
        ref_logits ref = fixture_load(fixtures[f]);
        teacher_model *m;
        if (teacher_open(&m, fixtures[f], backend_cpu())) {
            err_print();
            EXPECT(0);
            continue;
        }
        float *full;
        EXPECT(teacher_logits_all(m, ref.tokens, ref.n, &full) == R1_OK);
        const int k = 7, V = (int)ref.vocab;
        m->cache_init(m, 2, ref.n);
        int *slot = calloc((size_t)ref.n, sizeof(int)), *pos = malloc(sizeof(int) * ref.n);
        for (int i = 0; i < ref.n; i++) pos[i] = i;
        float *step = malloc(sizeof(float) * V);
        int last = k - 1;
        token_layout pre = {.n = k, .slot = slot, .pos = pos};
        EXPECT(m->forward(m, ref.tokens, &pre, &last, 1, step) == R1_OK);
        EXPECT(rel_l2(step, full + (size_t)last * V, V) <= 1e-5);
        for (int t = k; t < ref.n; t++) {
            token_layout one = {.n = 1, .slot = slot, .pos = &pos[t]};
            int row = 0;
            EXPECT(m->forward(m, &ref.tokens[t], &one, &row, 1, step) == R1_OK);
            double e = rel_l2(step, full + (size_t)t * V, V);
            EXPECT_MSG(e <= 1e-5, "%s position %d: incremental vs full %.3g", fixtures[f], t, e);
        }
        free(step);
        free(slot);
        free(pos);
        free(full);
        teacher_close(m);
        fixture_free(&ref);
    }
}

/* Two sequences decoded in one batch give bit-identical logits to each decoded alone. */
static void test_batch_independent(void) {
    ref_logits ref = fixture_load(fixtures[1]);
    teacher_model *m;
    if (teacher_open(&m, fixtures[1], backend_cpu())) {
        err_print();
        EXPECT(0);
        return;
    }
    const int V = (int)ref.vocab, n = 12;
    m->cache_init(m, 2, n);
    int slots[24], pos[24], rows[2];
    int toks[24];
    /* alone: sequence A in slot 0 (tokens 0..11) */
    for (int i = 0; i < n; i++) {
        slots[i] = 0;
        pos[i] = i;
        toks[i] = ref.tokens[i];
    }
    token_layout a = {.n = n, .slot = slots, .pos = pos};
    float alone[2][512];
    rows[0] = n - 1;
    EXPECT(m->forward(m, toks, &a, rows, 1, alone[0]) == R1_OK);
    /* together: A in slot 0 and B (tokens 12..23) in slot 1 in one ragged batch */
    for (int i = 0; i < n; i++) {
        slots[n + i] = 1;
        pos[n + i] = i;
        toks[n + i] = ref.tokens[n + i];
    }
    token_layout both = {.n = 2 * n, .slot = slots, .pos = pos};
    float together[2 * 512];
    rows[0] = n - 1;
    rows[1] = 2 * n - 1;
    EXPECT(m->forward(m, toks, &both, rows, 2, together) == R1_OK);
    EXPECT(memcmp(alone[0], together, sizeof(float) * V) == 0);
    /* B alone in slot 1 */
    token_layout b = {.n = n, .slot = slots + n, .pos = pos + n};
    rows[0] = n - 1;
    EXPECT(m->forward(m, toks + n, &b, rows, 1, alone[1]) == R1_OK);
    EXPECT(memcmp(alone[1], together + V, sizeof(float) * V) == 0);
    teacher_close(m);
    fixture_free(&ref);
}

int main(void) {
    RUN(test_matches_transformers);
    RUN(test_incremental_equals_full);
    RUN(test_batch_independent);
    TESTS_DONE();
}
