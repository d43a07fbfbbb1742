/* The trainer's parts: forward parity with the inference path, document masking, micro-batch
 * invariance of the step's gradient, AdamW and clipping formulas, schedules, token shards and the
 * data loader. Run from the repository root (fixtures under tests/fixtures). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "datasets/sft.h"
#include "student/train.h"
#include "teacher/teacher.h"
#include "testing.h"

static const char *const MODELS[] = {"tests/fixtures/tiny-student-qwen2",
                                     "tests/fixtures/tiny-student-llama"};

/* One document at positions 0..n-1 as a batch. */
static student_batch single(const int *tokens, int n, int *pos, int *ds, int *tg) {
    for (int i = 0; i < n; i++) pos[i] = i, ds[i] = 0, tg[i] = -1;
    return (student_batch){n, tokens, pos, ds, tg};
}

/* The student's forward pass gives the logits of the inference path (teacher/dense.c, which is
 * checked against transformers), and a packed document gives the logits it gives alone. */
static void test_forward_parity(void) {
    enum { A = 9, B = 6 };
    int toks[A + B] = {316, 20, 21, 22, 30, 22, 21, 20, 313, 316, 40, 41, 42, 30, 7};
    for (int k = 0; k < 2; k++) {
        student_model m;
        EXPECT(student_model_load(&m, MODELS[k], NULL) == 0);
        teacher_model *t;
        EXPECT(teacher_open(&t, MODELS[k], backend_cpu()) == 0);
        const int64_t V = m.cfg.vocab_size;
        student_acts a;
        student_acts_init(&a, &m.cfg, A + B, 0);
        int pos[A + B], ds[A + B], tg[A + B];
        float *ours = xmalloc(sizeof(float) * (A + B) * V), *ref;
        student_batch b = single(toks + A, B, pos, ds, tg);
        student_logits(&m, &a, &b, ours);
        EXPECT(teacher_logits_all(t, toks + A, B, &ref) == 0);
        double e = rel_l2(ours, ref, (size_t)B * V);
        EXPECT_MSG(e < 1e-5, "%s: logits differ from the inference path (rel %.2e)", MODELS[k], e);
        /* packed: document A then document B, positions restarting at 0 */
        for (int i = 0; i < A + B; i++) {
            pos[i] = i < A ? i : i - A;
            ds[i] = i < A ? 0 : A;
            tg[i] = -1;
        }
        student_batch pb = {A + B, toks, pos, ds, tg};
        student_logits(&m, &a, &pb, ours);
        e = rel_l2(ours + (size_t)A * V, ref, (size_t)B * V);
        EXPECT_MSG(e < 1e-6, "%s: a packed document's logits differ from alone (rel %.2e)",
                   MODELS[k], e);
        free(ref);
        free(ours);
        student_acts_free(&a);
        teacher_close(t);
        student_model_free(&m);
    }
}

/* A recipe's config changes untie a tied checkpoint: lm_head starts as the embedding, so the
 * model computes what it did; a changed rope_theta changes the logits. */
static void test_config_changes(void) {
    enum { T = 6 };
    const int toks[T] = {316, 20, 21, 22, 30, 22};
    int pos[T], ds[T], tg[T];
    student_batch b = single(toks, T, pos, ds, tg);
    student_model tied, untied, rope;
    cJSON *untie = cJSON_Parse("{\"tie_word_embeddings\": false}");
    cJSON *theta = cJSON_Parse("{\"rope_theta\": 50000.0}");
    EXPECT(student_model_load(&tied, MODELS[0], NULL) == 0);
    EXPECT(student_model_load(&untied, MODELS[0], untie) == 0);
    EXPECT(student_model_load(&rope, MODELS[0], theta) == 0);
    EXPECT(tied.cfg.tie_word_embeddings && !untied.cfg.tie_word_embeddings);
    EXPECT_EQ_INT(untied.n_params, tied.n_params + (size_t)tied.cfg.vocab_size * tied.cfg.hidden_size);
    EXPECT(untied.p.lm_head != untied.p.embed);
    EXPECT(memcmp(untied.p.lm_head, tied.p.embed,
                  sizeof(float) * tied.cfg.vocab_size * tied.cfg.hidden_size) == 0);
    EXPECT(strstr(untied.config_json, "\"tie_word_embeddings\":\tfalse") != NULL);
    const size_t nv = (size_t)T * tied.cfg.vocab_size;
    float *l0 = xmalloc(sizeof(float) * nv), *l1 = xmalloc(sizeof(float) * nv),
          *l2 = xmalloc(sizeof(float) * nv);
    student_acts a;
    student_acts_init(&a, &tied.cfg, T, 0);
    student_logits(&tied, &a, &b, l0);
    student_logits(&untied, &a, &b, l1);
    student_logits(&rope, &a, &b, l2);
    EXPECT(memcmp(l0, l1, sizeof(float) * nv) == 0);
    EXPECT(rel_l2(l2, l0, nv) > 1e-4);
    /* tying an untied checkpoint is refused */
    student_model bad;
    cJSON *tie = cJSON_Parse("{\"tie_word_embeddings\": true}");
    EXPECT(student_model_load(&bad, MODELS[1], tie) == R1_EINPUT);
    free(l0), free(l1), free(l2);
    student_acts_free(&a);
    student_model_free(&tied), student_model_free(&untied), student_model_free(&rope);
    cJSON_Delete(untie), cJSON_Delete(theta), cJSON_Delete(tie);
}

static char tmpdir[64];

/* Tensor i of kind k read back in three uneven pieces equals want (bit for bit). */
static int source_matches(const student_source *src, const student_model *m, source_kind k,
                          const float *want) {
    int same = 1;
    for (int i = 0; i < m->n_tensors; i++) {
        const student_tensor *t = &m->tensors[i];
        float *got = xmalloc(sizeof(float) * t->numel);
        const size_t a = t->numel / 3, b = t->numel - t->numel / 5;
        student_source_read(src, k, i, 0, a, got);
        student_source_read(src, k, i, a, b - a, got + a);
        student_source_read(src, k, i, b, t->numel - b, got + b);
        same &= memcmp(got, want + t->offset, sizeof(float) * t->numel) == 0;
        free(got);
    }
    return same;
}

/* The source a GPU run reads its share from gives the values a full load gives, piece by piece:
 * a model's weights (an untied head as the embedding), and a checkpoint's float32 master weights
 * (beside bf16 weights) and moments; a model has no moments. */
static void test_source(void) {
    student_model full, m;
    student_source src;
    int untie = 1;
    EXPECT(student_model_load(&full, MODELS[0], NULL) == 0);
    EXPECT(student_model_open(&m, MODELS[0], NULL, &untie) == 0 && !untie);
    EXPECT(student_source_open(&src, &m, MODELS[0], NULL, 0) == 0);
    EXPECT(source_matches(&src, &m, SOURCE_PARAMS, full.param_mem));
    EXPECT(!student_source_has(&src, SOURCE_EXP_AVG) && !student_source_has(&src, SOURCE_EXP_AVG_SQ));
    float zero[8], ones[8];
    for (int j = 0; j < 8; j++) ones[j] = 1.0f;
    memset(zero, 0, sizeof zero);
    student_source_read(&src, SOURCE_EXP_AVG, 3, 5, 8, ones);
    EXPECT(memcmp(ones, zero, sizeof zero) == 0);
    student_source_close(&src);
    student_model_free(&m);

    cJSON *untie_json = cJSON_Parse("{\"tie_word_embeddings\": false}");
    student_model loaded;
    EXPECT(student_model_load(&loaded, MODELS[0], untie_json) == 0);
    EXPECT(student_model_open(&m, MODELS[0], untie_json, &untie) == 0 && untie);
    EXPECT(student_source_open(&src, &m, MODELS[0], NULL, untie) == 0);
    EXPECT(source_matches(&src, &m, SOURCE_PARAMS, loaded.param_mem));
    student_source_close(&src);
    student_model_free(&m);
    student_model_free(&loaded);
    cJSON_Delete(untie_json);

    /* a checkpoint stored as bf16: the master weights come from the optimizer state, exactly */
    const size_t n = full.n_params;
    float *ea = xmalloc(sizeof(float) * n), *es = xmalloc(sizeof(float) * n);
    for (size_t j = 0; j < n; j++) {
        full.param_mem[j] += 1e-4f * (float)(j % 7); /* not bf16-representable */
        ea[j] = 1e-3f * (float)(j % 11) - 5e-3f, es[j] = 1e-6f * (float)(j % 13);
    }
    full.disk_dtype = DTYPE_BF16;
    char *ck = path_join(tmpdir, "ckpt");
    cJSON *state = cJSON_CreateObject(), *back = NULL;
    EXPECT(checkpoint_write(ck, &full, ea, es, state) == 0);
    EXPECT(checkpoint_open(ck, &m, &src, &back) == 0 && back);
    EXPECT(m.disk_dtype == DTYPE_BF16);
    EXPECT(student_source_has(&src, SOURCE_EXP_AVG) && student_source_has(&src, SOURCE_EXP_AVG_SQ));
    EXPECT(source_matches(&src, &m, SOURCE_PARAMS, full.param_mem));
    EXPECT(source_matches(&src, &m, SOURCE_EXP_AVG, ea));
    EXPECT(source_matches(&src, &m, SOURCE_EXP_AVG_SQ, es));
    student_source_close(&src);
    student_model_free(&m);
    cJSON_Delete(back);
    /* a state file without the master weights is refused when opened, before any is read */
    full.disk_dtype = DTYPE_F32;
    EXPECT(checkpoint_write(ck, &full, ea, es, state) == 0);
    full.disk_dtype = DTYPE_BF16;
    char *bf_dir = path_join(tmpdir, "bf16");
    EXPECT(checkpoint_write(bf_dir, &full, NULL, NULL, state) == 0); /* bf16 weights, no state */
    char *bf = path_join(bf_dir, "model.safetensors"), *into = path_join(ck, "model.safetensors");
    EXPECT(rename(bf, into) == 0);
    EXPECT(checkpoint_open(ck, &m, &src, &back) == R1_EINPUT && !back);
    EXPECT(strstr(err_why(), "master.") != NULL);
    err_clear();
    free(bf), free(into), free(bf_dir), free(ck), free(ea), free(es);
    cJSON_Delete(state);
    student_model_free(&full);
}

/* A checkpoint_values reader that records the order of its reads and serves host arrays. */
typedef struct {
    const student_model *m;
    const float *a[SOURCE_KINDS];
    int n, cap, *seq; /* kind * n_tensors + tensor, negated (minus 1) when dst was NULL */
} recorder;

static void record(void *ctx, source_kind k, int i, float *dst) {
    recorder *r = ctx;
    if (r->n == r->cap) r->seq = xrealloc(r->seq, sizeof(int) * (size_t)(r->cap = 2 * r->cap + 64));
    const int code = (int)k * r->m->n_tensors + i;
    r->seq[r->n++] = dst ? code : -code - 1;
    const student_tensor *t = &r->m->tensors[i];
    if (dst) memcpy(dst, r->a[k] + t->offset, sizeof(float) * t->numel);
}

/* A checkpoint written from values read one tensor at a time (as the GPUs gather them) is the
 * one written from whole arrays; a process that only takes part (no directory) reads in the
 * same order, and so does a writer whose directory cannot be made, to the end. */
static void test_checkpoint_values(void) {
    student_model m;
    EXPECT(student_model_load(&m, MODELS[1], NULL) == 0);
    const size_t n = m.n_params;
    float *ea = xmalloc(sizeof(float) * n), *es = xmalloc(sizeof(float) * n);
    for (size_t j = 0; j < n; j++) ea[j] = 1e-3f * (float)(j % 17), es[j] = 1e-7f * (float)(j % 5);
    m.disk_dtype = DTYPE_BF16; /* master.* too */
    cJSON *state = cJSON_CreateObject();
    char *a = path_join(tmpdir, "ck-arrays"), *b = path_join(tmpdir, "ck-values");
    EXPECT(checkpoint_write(a, &m, ea, es, state) == 0);
    recorder wr = {&m, {m.param_mem, ea, es}, 0, 0, NULL}, walk = wr, failed = wr;
    checkpoint_values v = {record, &wr, 1};
    EXPECT(checkpoint_write_values(b, &m, &v, state) == 0);
    static const char *const files[] = {"model.safetensors", "optimizer.safetensors"};
    for (int f = 0; f < 2; f++) {
        char *pa = path_join(a, files[f]), *pb = path_join(b, files[f]), *da, *db;
        size_t la, lb;
        EXPECT(file_read_all(pa, 1 << 28, &da, &la) == 0 && file_read_all(pb, 1 << 28, &db, &lb) == 0);
        EXPECT_MSG(la == lb && memcmp(da, db, la) == 0, "%s differs", files[f]);
        free(pa), free(pb), free(da), free(db);
    }
    /* model (params), then exp_avg, exp_avg_sq and the masters: 4 passes over the tensors */
    EXPECT_EQ_INT(wr.n, 4 * m.n_tensors);
    v.ctx = &walk;
    EXPECT(checkpoint_write_values(NULL, &m, &v, NULL) == 0);
    v.ctx = &failed;
    char *under_file = path_join(a, "config.json/sub"); /* a directory that cannot be made */
    EXPECT(checkpoint_write_values(under_file, &m, &v, state) != 0);
    err_clear();
    EXPECT(walk.n == wr.n && failed.n == wr.n);
    for (int j = 0; j < wr.n && j < walk.n && j < failed.n; j++) {
        EXPECT(wr.seq[j] >= 0 && walk.seq[j] == -wr.seq[j] - 1);
        EXPECT(failed.seq[j] == -wr.seq[j] - 1);
    }
    free(wr.seq), free(walk.seq), free(failed.seq), free(under_file), free(a), free(b);
    free(ea), free(es);
    cJSON_Delete(state);
    student_model_free(&m);
}

/* The step's gradient is the gradient of the mean over all its loss tokens, whatever the
 * micro-batch: rows run 4 at once, 2 + 2 or 1 + 1 + 1 + 1 give the same gradient. */
static void test_micro_batch_invariance(void) {
    student_model m;
    EXPECT(student_model_load(&m, MODELS[0], NULL) == 0);
    train_data td;
    train_data_options o = {.seq_len = 48, .pack = 1, .vocab_size = m.cfg.vocab_size};
    EXPECT(train_data_open(&td, "tests/fixtures/tiny-sft/train.jsonl", &o) == 0);
    EXPECT(td.n_rows >= 4);
    const int64_t rows[4] = {3, 0, 2, 1};
    int64_t total = 0;
    for (int i = 0; i < 4; i++) total += td.row_loss[rows[i]];
    float *g[3];
    double loss[3];
    const int micro[3] = {4, 2, 1};
    for (int r = 0; r < 3; r++) {
        student_acts a;
        batch_buf bb;
        student_acts_init(&a, &m.cfg, 4 * td.max_row, 0);
        batch_buf_init(&bb, 4 * td.max_row);
        memset(m.grad_mem, 0, sizeof(float) * m.n_params);
        double sum = 0;
        int64_t counted = 0;
        for (int i = 0; i < 4; i += micro[r]) {
            train_data_fill(&td, rows + i, micro[r], &bb);
            int64_t nl;
            sum += student_forward_backward(&m, &a, &bb.b, 1.0f / (float)total, &nl);
            counted += nl;
        }
        EXPECT_EQ_INT(counted, total);
        loss[r] = sum / (double)total;
        g[r] = xmalloc(sizeof(float) * m.n_params);
        memcpy(g[r], m.grad_mem, sizeof(float) * m.n_params);
        student_acts_free(&a);
        batch_buf_free(&bb);
    }
    for (int r = 1; r < 3; r++) {
        EXPECT_NEAR(loss[r], loss[0], 1e-6 * loss[0]);
        double e = rel_l2(g[r], g[0], m.n_params);
        EXPECT_MSG(e < 1e-5, "micro-batch %d: gradient differs from one pass (rel %.2e)",
                   micro[r], e);
    }
    /* and it is not the mean of per-micro-batch means (the 2024 accumulation bug): rows with
     * different loss-token counts make those differ */
    EXPECT(td.row_loss[rows[0]] != td.row_loss[rows[1]] || td.row_loss[rows[2]] != td.row_loss[rows[3]]);
    for (int r = 0; r < 3; r++) free(g[r]);
    train_data_close(&td);
    student_model_free(&m);
}

/* torch.optim.AdamW, written out in double from its documented algorithm. */
static void test_adamw(void) {
    const adamw_config c = {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                            .weight_decay = 0.1};
    float p[4] = {0.5f, -1.0f, 2.0f, 0.0f}, m[4] = {0}, v[4] = {0};
    double rp[4] = {0.5, -1.0, 2.0, 0.0}, rm[4] = {0}, rv[4] = {0};
    const float grads[3][4] = {{0.1f, -0.2f, 0.0f, 1e-3f}, {0.3f, 0.1f, -0.5f, 0.0f},
                               {-0.1f, 0.05f, 0.2f, 2.0f}};
    for (int t = 1; t <= 3; t++) {
        adamw_update(p, grads[t - 1], m, v, 4, &c, t, 1);
        for (int i = 0; i < 4; i++) {
            double g = grads[t - 1][i];
            rp[i] *= 1 - c.lr * c.weight_decay;
            rm[i] = c.beta1 * rm[i] + (1 - c.beta1) * g;
            rv[i] = c.beta2 * rv[i] + (1 - c.beta2) * g * g;
            double mh = rm[i] / (1 - pow(c.beta1, t));
            double den = sqrt(rv[i]) / sqrt(1 - pow(c.beta2, t)) + c.eps;
            rp[i] -= c.lr * mh / den;
            EXPECT_NEAR(p[i], rp[i], 1e-6);
            EXPECT_NEAR(m[i], rm[i], 1e-7);
            EXPECT_NEAR(v[i], rv[i], 1e-8);
        }
    }
    /* no decay on a tensor marked so (norms, biases) */
    float q = 1.0f, qm = 0, qv = 0, zero = 0.0f;
    adamw_update(&q, &zero, &qm, &qv, 1, &c, 1, 0);
    EXPECT(q == 1.0f);
    adamw_update(&q, &zero, &qm, &qv, 1, &c, 1, 1);
    EXPECT_NEAR(q, 1.0 - 1e-3, 1e-7);
}

static void test_clip(void) {
    student_model m;
    EXPECT(student_model_load(&m, MODELS[0], NULL) == 0);
    for (size_t i = 0; i < m.n_params; i++) m.grad_mem[i] = (i % 7 == 0) ? 0.5f : -0.25f;
    double n = grad_global_norm(&m), s = 0;
    for (size_t i = 0; i < m.n_params; i++) s += (double)m.grad_mem[i] * m.grad_mem[i];
    EXPECT_NEAR(n, sqrt(s), 1e-9 * sqrt(s));
    float coef = grad_clip(&m, n, 1.0);
    EXPECT_NEAR(coef, 1.0 / (n + 1e-6), 1e-6 / n);
    EXPECT_NEAR(grad_global_norm(&m), 1.0, 1e-5);
    EXPECT(grad_clip(&m, 1.0, 5.0) == 1.0f);
    EXPECT(grad_clip(&m, 100.0, 0.0) == 1.0f);
    student_model_free(&m);
}

static void test_schedule(void) {
    lr_schedule s = {SCHED_LINEAR, 1.0, 0.0, 2, 10};
    /* HF: lambda(k) with k = steps taken: warmup 0, 1/2, then (10 - k) / 8 */
    EXPECT_NEAR(lr_at(&s, 1), 0.0, 1e-12);
    EXPECT_NEAR(lr_at(&s, 2), 0.5, 1e-12);
    EXPECT_NEAR(lr_at(&s, 3), 1.0, 1e-12);
    EXPECT_NEAR(lr_at(&s, 10), 1.0 / 8, 1e-12);
    s.kind = SCHED_COSINE;
    EXPECT_NEAR(lr_at(&s, 3), 1.0, 1e-12);
    EXPECT_NEAR(lr_at(&s, 7), 0.5 * (1 + cos(M_PI * 4 / 8)), 1e-12);
    s.min_lr = 0.1;
    EXPECT_NEAR(lr_at(&s, 7), 0.1 + 0.9 * 0.5 * (1 + cos(M_PI * 4 / 8)), 1e-12);
    s.kind = SCHED_CONSTANT;
    EXPECT_NEAR(lr_at(&s, 2), 0.5, 1e-12);
    EXPECT_NEAR(lr_at(&s, 9), 1.0, 1e-12);
    lr_schedule_kind k;
    EXPECT(lr_schedule_parse("cosine", &k) == 0 && k == SCHED_COSINE);
    EXPECT(lr_schedule_parse("cosine_with_restarts", &k) == -1);
}

/* ---- token shards ------------------------------------------------------------------------ */

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

static void test_shard_roundtrip_and_corruption(void) {
    token_builder b;
    token_builder_init(&b, 100, 0x1234);
    const int32_t d0[3] = {1, 2, 3}, d1[5] = {4, 5, 6, 7, 99};
    const uint8_t m0[3] = {0, 1, 1}, m1[5] = {0, 0, 1, 1, 1};
    token_builder_add(&b, d0, m0, 3);
    token_builder_add(&b, d1, m1, 5);
    char *path = path_join(tmpdir, "a.tokens");
    EXPECT(token_builder_write(&b, path) == 0);
    token_builder_free(&b);
    token_shard s;
    EXPECT(token_shard_open(&s, path) == 0);
    EXPECT_EQ_INT(s.n_docs, 2);
    EXPECT_EQ_INT(s.n_tokens, 8);
    EXPECT_EQ_INT(s.n_loss, 5);
    EXPECT_EQ_INT(s.vocab_size, 100);
    EXPECT(s.tokenizer_id == 0x1234);
    EXPECT_EQ_INT(s.doc_off[1], 3);
    EXPECT_EQ_INT(s.tokens[7], 99);
    EXPECT_EQ_INT(s.mask[3], 0);
    /* corruptions: each must be refused with R1_EINPUT, never read out of bounds */
    size_t n = s.map.size;
    uint8_t *img = xmalloc(n + 8);
    memcpy(img, s.map.data, n);
    token_shard_close(&s);
    struct { size_t off; uint8_t val; const char *what; } bad[] = {
        {0, 'X', "magic"},       {8, 2, "version"},        {16, 200, "n_docs"},
        {24, 9, "n_tokens"},     {32, 7, "vocab below an id"}, {36, 1, "flags"},
        {48, 4, "n_loss"},       {64 + 8, 9, "offset past the end"},
        {64 + 8, 0, "empty document"}, {64 + 24 + 4 * 2, 200, "token id >= vocab"},
        {64 + 24 + 32 + 2, 3, "mask value"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t *c = xmalloc(n);
        memcpy(c, img, n);
        c[bad[i].off] = bad[i].val;
        token_shard t;
        int rc = token_shard_parse(&t, c, n, bad[i].what);
        EXPECT_MSG(rc == R1_EINPUT, "corruption \"%s\" accepted", bad[i].what);
        if (rc == 0) token_shard_close(&t);
        free(c);
    }
    for (size_t cut = 0; cut < n; cut += 5) { /* every truncation */
        token_shard t;
        int rc = token_shard_parse(&t, img, cut, "truncated");
        EXPECT_MSG(rc == R1_EINPUT, "a shard truncated to %zu bytes was accepted", cut);
    }
    free(img);
    /* directory listing */
    char **paths;
    int np;
    EXPECT(token_shard_list(tmpdir, &paths, &np) == 0 && np == 1);
    token_shard_list_free(paths, np);
    free(path);
}

/* Packing: examples fill rows greedily in order; targets never cross a document boundary. */
static void test_data_packing(void) {
    char *jl = path_join(tmpdir, "d.jsonl");
    const char *text =
        "{\"input_ids\": [1, 2, 3, 4], \"loss_mask\": [0, 0, 1, 1]}\n"
        "{\"input_ids\": [5, 6, 7], \"loss_mask\": [0, 1, 1]}\n"
        "\n"
        "{\"input_ids\": [8, 9, 10, 11, 12, 13], \"loss_mask\": [0, 0, 0, 1, 0, 1]}\n"
        "{\"input_ids\": [14, 15, 16, 17, 18, 19, 20, 21, 22], \"loss_mask\": [0,0,0,0,0,0,0,1,1]}\n"
        "{\"input_ids\": [23, 24], \"loss_mask\": [1, 0]}\n"
        "{\"input_ids\": [25, 26], \"loss_mask\": [true, true]}\n";
    write_bytes(jl, text, strlen(text));
    train_data td;
    train_data_options o = {.seq_len = 8, .pack = 1, .vocab_size = 64};
    EXPECT(train_data_open(&td, jl, &o) == 0);
    /* the 9-token example is longer than 8: dropped; [23, 24] has nothing to learn */
    EXPECT_EQ_INT(td.examples, 4);
    EXPECT_EQ_INT(td.dropped_long, 1);
    EXPECT_EQ_INT(td.no_loss, 1);
    /* rows: [4 + 3], [6 + 2] */
    EXPECT_EQ_INT(td.n_rows, 2);
    EXPECT_EQ_INT(td.row_len[0], 7);
    EXPECT_EQ_INT(td.row_len[1], 8);
    EXPECT_EQ_INT(td.row_loss[0], 4);
    EXPECT_EQ_INT(td.row_loss[1], 3);
    batch_buf bb;
    batch_buf_init(&bb, 16);
    const int64_t rows[2] = {1, 0};
    train_data_fill(&td, rows, 2, &bb);
    EXPECT_EQ_INT(bb.b.n, 15);
    const int want_tok[15] = {8, 9, 10, 11, 12, 13, 25, 26, 1, 2, 3, 4, 5, 6, 7};
    const int want_pos[15] = {0, 1, 2, 3, 4, 5, 0, 1, 0, 1, 2, 3, 0, 1, 2};
    const int want_ds[15] = {0, 0, 0, 0, 0, 0, 6, 6, 8, 8, 8, 8, 12, 12, 12};
    const int want_tg[15] = {-1, -1, 11, -1, 13, -1, 26, -1, -1, 3, 4, -1, 6, 7, -1};
    for (int i = 0; i < 15; i++) {
        EXPECT_EQ_INT(bb.b.tokens[i], want_tok[i]);
        EXPECT_EQ_INT(bb.b.pos[i], want_pos[i]);
        EXPECT_EQ_INT(bb.b.doc_start[i], want_ds[i]);
        EXPECT_EQ_INT(bb.b.targets[i], want_tg[i]);
    }
    batch_buf_free(&bb);
    uint64_t fp = td.fingerprint;
    train_data_close(&td);
    /* without packing: one example per row; truncation keeps the long one */
    o.pack = 0;
    o.truncate = 1;
    EXPECT(train_data_open(&td, jl, &o) == 0);
    EXPECT_EQ_INT(td.n_rows, 5);
    EXPECT_EQ_INT(td.truncated, 1);
    EXPECT(td.fingerprint != fp);
    train_data_close(&td);
    /* token ids past the model's vocabulary, all-too-long data, empty data */
    o.vocab_size = 20;
    EXPECT(train_data_open(&td, jl, &o) == R1_EINPUT);
    o.vocab_size = 64;
    o.seq_len = 1;
    o.truncate = 0;
    EXPECT(train_data_open(&td, jl, &o) == R1_EINPUT);
    EXPECT(strstr(err_why(), "longer than --seq-len") != NULL);
    write_bytes(jl, "", 0);
    o.seq_len = 8;
    EXPECT(train_data_open(&td, jl, &o) == R1_EINPUT);
    write_bytes(jl, "{\"input_ids\": [1, 2], \"loss_mask\": [0]}\n", 40);
    EXPECT(train_data_open(&td, jl, &o) == R1_EINPUT);
    EXPECT(strstr(err_what(), "line 1") != NULL);
    free(jl);
}

static void test_epoch_order(void) {
    int64_t a[50], b[50], c[50];
    train_data_epoch_order(a, 50, 42, 0);
    train_data_epoch_order(b, 50, 42, 0);
    train_data_epoch_order(c, 50, 42, 1);
    EXPECT(memcmp(a, b, sizeof a) == 0);
    EXPECT(memcmp(a, c, sizeof a) != 0);
    int seen[50] = {0};
    for (int i = 0; i < 50; i++) seen[a[i]]++;
    for (int i = 0; i < 50; i++) EXPECT_EQ_INT(seen[i], 1);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/r1test-train.%d", (int)getpid());
    dir_create(tmpdir);
    RUN(test_forward_parity);
    RUN(test_config_changes);
    RUN(test_source);
    RUN(test_checkpoint_values);
    RUN(test_micro_batch_invariance);
    RUN(test_adamw);
    RUN(test_clip);
    RUN(test_schedule);
    RUN(test_shard_roundtrip_and_corruption);
    RUN(test_data_packing);
    RUN(test_epoch_order);
    remove_tree(tmpdir);
    TESTS_DONE();
}
