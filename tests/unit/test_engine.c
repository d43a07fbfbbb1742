/* Engine: continuous batching gives every sample the same tokens whatever the batch size and
 * prefill chunking; stop conditions (eos, stop strings, max new tokens, cache length).
 *
 * The model is a fake whose logits at a position are a hash of the whole token history of the
 * slot up to that position (what a causal model's cache holds), so a token fed at a wrong slot
 * or position, a gap, or any dependence on the rest of the batch changes the output. */
#include "core/error.h"
#include "core/hash.h"
#include "teacher/engine.h"
#include "tests/unit/testing.h"

enum { VOCAB = 40, EOS_ID = 1 };

typedef struct {
    teacher_model base;
    int *hist;     /* [slots][len] */
    int *filled;   /* [slots]: positions written since the slot was last started at 0 */
    int violations;
    double eos_bias;
} fake_model;

static int fake_cache_init(teacher_model *tm, int slots, int len) {
    fake_model *m = (fake_model *)tm;
    free(m->hist);
    free(m->filled);
    m->hist = xcalloc((size_t)slots * len, sizeof(int));
    m->filled = xcalloc((size_t)slots, sizeof(int));
    tm->cache_slots = slots;
    tm->cache_len = len;
    return R1_OK;
}

static int fake_forward(teacher_model *tm, const int *tokens, const token_layout *tl,
                        const int *out_rows, int n_out, float *logits) {
    fake_model *m = (fake_model *)tm;
    const int L = tm->cache_len;
    for (int i = 0; i < tl->n; i++) {
        int s = tl->slot[i], p = tl->pos[i];
        if (s < 0 || s >= tm->cache_slots || p < 0 || p >= L || tokens[i] < 0 ||
            tokens[i] >= VOCAB) {
            m->violations++;
            continue;
        }
        if (p > m->filled[s]) m->violations++; /* a gap: positions must be fed in order */
        m->hist[s * L + p] = tokens[i];
        m->filled[s] = p + 1;
    }
    for (int j = 0; j < n_out; j++) {
        int r = out_rows[j], s = tl->slot[r], p = tl->pos[r];
        uint64_t h = hash_fnv1a64(m->hist + s * L, sizeof(int) * (size_t)(p + 1));
        for (int v = 0; v < VOCAB; v++) {
            uint64_t x = hash_mix64(h ^ (uint64_t)(v + 1) * HASH_GOLDEN64);
            logits[(size_t)j * VOCAB + v] = (float)((double)(x >> 11) * 0x1.0p-53 * 6.0 - 3.0);
        }
        logits[(size_t)j * VOCAB + EOS_ID] += (float)m->eos_bias;
    }
    return R1_OK;
}

static size_t fake_bytes(const teacher_model *tm) { return 4; }
static void fake_destroy(teacher_model *tm) {
    fake_model *m = (fake_model *)tm;
    free(m->hist);
    free(m->filled);
}

static void fake_init(fake_model *m, double eos_bias) {
    memset(m, 0, sizeof *m);
    m->base.cfg.vocab_size = VOCAB;
    m->base.forward = fake_forward;
    m->base.cache_init = fake_cache_init;
    m->base.cache_bytes_per_token = fake_bytes;
    m->base.destroy = fake_destroy;
    m->eos_bias = eos_bias;
}

/* ---- requests and results ---- */

enum { N_PROMPTS = 13, N_SAMPLES = 3, N_REQ = N_PROMPTS * N_SAMPLES, MAX_GEN = 64 };

typedef struct {
    int prompts[N_PROMPTS][16];
    int plen[N_PROMPTS];
    int next;
    int got[N_REQ];
    int tokens[N_REQ][MAX_GEN];
    int n[N_REQ];
    engine_finish finish[N_REQ];
    int stop_index[N_REQ];
    float chosen[N_REQ][MAX_GEN];
    int top0[N_REQ][MAX_GEN];
    int max_in_flight;
} harness;

static void harness_init(harness *h) {
    memset(h, 0, sizeof *h);
    for (int p = 0; p < N_PROMPTS; p++) {
        h->plen[p] = 1 + (p * 7) % 12;
        for (int j = 0; j < h->plen[p]; j++) h->prompts[p][j] = 2 + (p * 5 + j * 3) % (VOCAB - 2);
    }
}

static int h_next(void *ctx, engine_request *req) {
    harness *h = ctx;
    if (h->next >= N_REQ) return 0;
    int i = h->next++, p = i / N_SAMPLES;
    char id[32];
    snprintf(id, sizeof id, "p%d", p % 100);
    *req = (engine_request){.prompt = h->prompts[p], .n_prompt = h->plen[p],
                            .stream = sampler_stream(id, strlen(id)), .sample = i % N_SAMPLES,
                            .user = (void *)(intptr_t)i};
    return 1;
}

static int h_done(void *ctx, const engine_result *res) {
    harness *h = ctx;
    int i = (int)(intptr_t)res->req->user;
    CHECK(res->n_tokens <= MAX_GEN);
    h->got[i]++;
    h->n[i] = res->n_tokens;
    memcpy(h->tokens[i], res->tokens, sizeof(int) * (size_t)res->n_tokens);
    h->finish[i] = res->finish;
    h->stop_index[i] = res->stop_index;
    for (int t = 0; t < res->n_tokens && res->k; t++) {
        h->chosen[i][t] = res->chosen_lp[t];
        h->top0[i][t] = res->topk_ids[t * res->k];
    }
    return R1_OK;
}

static int h_tick(void *ctx, const engine_stats *st) {
    harness *h = ctx;
    if (st->in_flight > h->max_in_flight) h->max_in_flight = st->in_flight;
    return R1_OK;
}

static const char *letter_bytes(void *ctx, int id, size_t *len) {
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN";
    *len = 1;
    return letters + id % 40;
}

static engine_config base_config(void) {
    static const int eos[1] = {EOS_ID};
    return (engine_config){.max_batch = 1, .max_len = 80, .max_new_tokens = 24,
                           .prefill_chunk = 1000, .sp = {0.8, 0.95, 0}, .seed = 11,
                           .eos = eos, .n_eos = 1};
}

static void run(harness *h, engine_config c, double eos_bias, int *violations) {
    fake_model m;
    fake_init(&m, eos_bias);
    harness_init(h);
    engine_io io = {.next = h_next, .done = h_done, .tick = h_tick, .ctx = h};
    engine_stats st;
    EXPECT_EQ_INT(engine_run(&m.base, &c, &io, &st), R1_OK);
    EXPECT_EQ_INT(st.finished, N_REQ);
    for (int i = 0; i < N_REQ; i++) EXPECT_EQ_INT(h->got[i], 1);
    *violations = m.violations;
    fake_destroy(&m.base);
}

static int same_tokens(const harness *a, const harness *b) {
    for (int i = 0; i < N_REQ; i++) {
        if (a->n[i] != b->n[i] || a->finish[i] != b->finish[i]) return 0;
        if (memcmp(a->tokens[i], b->tokens[i], sizeof(int) * (size_t)a->n[i]) != 0) return 0;
    }
    return 1;
}

static harness ha, hb;

static void test_batch_invariance(void) {
    int v;
    engine_config c = base_config();
    run(&ha, c, 1.0, &v);
    EXPECT_EQ_INT(v, 0);
    EXPECT_EQ_INT(ha.max_in_flight, 1);
    int eos = 0, len = 0;
    for (int i = 0; i < N_REQ; i++) {
        eos += ha.finish[i] == ENGINE_EOS;
        len += ha.finish[i] == ENGINE_MAX_TOKENS;
        if (ha.finish[i] == ENGINE_EOS) EXPECT_EQ_INT(ha.tokens[i][ha.n[i] - 1], EOS_ID);
        if (ha.finish[i] == ENGINE_MAX_TOKENS) EXPECT_EQ_INT(ha.n[i], 24);
        for (int t = 0; t + 1 < ha.n[i]; t++) EXPECT(ha.tokens[i][t] != EOS_ID);
    }
    EXPECT(eos > 0 && len > 0); /* both stop conditions are exercised */
    /* Samples of one prompt differ (their streams differ). */
    EXPECT(!(ha.n[0] == ha.n[1] && memcmp(ha.tokens[0], ha.tokens[1], sizeof(int) * ha.n[0]) == 0));

    const int batches[] = {4, 7, 64}, chunks[] = {3, 1, 5};
    for (int k = 0; k < 3; k++) {
        c.max_batch = batches[k];
        c.prefill_chunk = chunks[k];
        run(&hb, c, 1.0, &v);
        EXPECT_EQ_INT(v, 0);
        EXPECT_MSG(same_tokens(&ha, &hb), "batch %d, prefill chunk %d changed a sample",
                   batches[k], chunks[k]);
        EXPECT(hb.max_in_flight > 1);
    }
}

static void test_greedy_and_logprobs(void) {
    int v;
    engine_config c = base_config();
    c.sp.temperature = 0;
    c.logprobs = 3;
    c.max_batch = 5;
    run(&ha, c, 0.0, &v);
    EXPECT_EQ_INT(v, 0);
    /* Greedy: the chosen token is the top-1 id; samples of a prompt are identical. */
    for (int i = 0; i < N_REQ; i++) {
        for (int t = 0; t < ha.n[i]; t++) EXPECT_EQ_INT(ha.top0[i][t], ha.tokens[i][t]);
        EXPECT(ha.n[i] == ha.n[i - i % N_SAMPLES]);
        EXPECT(memcmp(ha.tokens[i], ha.tokens[i - i % N_SAMPLES], sizeof(int) * ha.n[i]) == 0);
        for (int t = 0; t < ha.n[i]; t++) EXPECT(ha.chosen[i][t] < 0);
    }
}

static void test_stop_strings(void) {
    int v;
    engine_config c = base_config();
    const char *stops[2] = {"zz", "cab"};
    c.stop = stops;
    c.n_stop = 2;
    c.token_bytes = letter_bytes;
    c.max_new_tokens = 60;
    c.sp.temperature = 1.5;
    c.max_batch = 6;
    run(&ha, c, -5.0, &v);
    EXPECT_EQ_INT(v, 0);
    int hits = 0;
    for (int i = 0; i < N_REQ; i++) {
        char text[MAX_GEN + 1];
        for (int t = 0; t < ha.n[i]; t++) text[t] = letter_bytes(NULL, ha.tokens[i][t], &(size_t){0})[0];
        text[ha.n[i]] = 0;
        char before[MAX_GEN + 1];
        memcpy(before, text, (size_t)ha.n[i]);
        before[ha.n[i] > 0 ? ha.n[i] - 1 : 0] = 0;
        if (ha.finish[i] == ENGINE_STOP_STRING) {
            hits++;
            const char *s = stops[ha.stop_index[i]];
            size_t L = strlen(s);
            EXPECT(strlen(text) >= L && strcmp(text + strlen(text) - L, s) == 0);
            EXPECT(!strstr(before, "zz") && !strstr(before, "cab"));
        } else {
            EXPECT(!strstr(text, "zz") && !strstr(text, "cab"));
        }
    }
    EXPECT(hits > 0);
}

static void test_cache_full(void) {
    int v;
    engine_config c = base_config();
    c.max_len = 12; /* prompts are up to 12 tokens */
    c.max_new_tokens = 50;
    c.max_batch = 3;
    run(&ha, c, -50.0, &v); /* eos never wins */
    EXPECT_EQ_INT(v, 0);
    for (int i = 0; i < N_REQ; i++) {
        EXPECT_EQ_INT(ha.finish[i], ENGINE_CACHE_FULL);
        EXPECT_EQ_INT(ha.n[i], 12 - ha.plen[i / N_SAMPLES] + 1);
    }
}

static void test_bad_request(void) {
    fake_model m;
    fake_init(&m, 0);
    engine_config c = base_config();
    c.max_len = 4;
    harness_init(&ha);
    ha.plen[0] = 9;
    engine_io io = {.next = h_next, .done = h_done, .ctx = &ha};
    EXPECT_EQ_INT(engine_run(&m.base, &c, &io, NULL), R1_EINPUT);
    fake_destroy(&m.base);
    c.sp.top_p = 0;
    fake_init(&m, 0);
    EXPECT_EQ_INT(engine_run(&m.base, &c, &io, NULL), R1_EINPUT);
    fake_destroy(&m.base);
}

int main(void) {
    RUN(test_batch_invariance);
    RUN(test_greedy_and_logprobs);
    RUN(test_stop_strings);
    RUN(test_cache_full);
    RUN(test_bad_request);
    TESTS_DONE();
}
