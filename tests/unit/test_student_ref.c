/* The trainer against PyTorch + transformers (fixtures from tests/ref/make_train_fixtures.py):
 *
 *   - the packed rows our loader lays out are the ones the script recorded;
 *   - one step on all rows (two rows per micro-batch): the loss, and every parameter gradient
 *     within relative L2 error 1e-4 per tensor;
 *   - the whole trainer (train_run) for the script's steps: loss, gradient norm before clipping
 *     and learning rate of every step within relative 1e-4;
 *   - the trained fp32 weights give the logits of the trained transformers model (rel 1e-3).
 *
 * Cases: a tied-embedding Qwen2 (f32) and a bf16 Llama with llama3 rope. The fixtures must have
 * been generated (see the script's docstring); without them this test fails. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "student/train.h"
#include "testing.h"

static char tmpdir[64];

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-12); }

static void check_case(const char *name) {
    char dir[256], path[320];
    snprintf(dir, sizeof dir, "tests/fixtures/train-ref/%s", name);
    snprintf(path, sizeof path, "%s/ref.json", dir);
    cJSON *ref;
    if (json_parse_file(&ref, path, 1 << 24) != 0) {
        EXPECT_MSG(0, "missing fixture %s: run `python3 tests/ref/make_train_fixtures.py "
                   "tests/fixtures/train-ref` (PyTorch + transformers) and commit its output", path);
        return;
    }
    const cJSON *hp = cJSON_GetObjectItem(ref, "hyperparameters");
    const cJSON *steps = cJSON_GetObjectItem(ref, "steps");
    const cJSON *rows = cJSON_GetObjectItem(ref, "rows");
    const int seq_len = cJSON_GetObjectItem(ref, "seq_len")->valueint;
    const int64_t n_loss_ref = (int64_t)cJSON_GetObjectItem(ref, "n_loss_tokens")->valuedouble;
#define HP(key) cJSON_GetObjectItem(hp, key)->valuedouble

    char model_dir[300], data[300];
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    snprintf(data, sizeof data, "%s/data.jsonl", dir);
    student_model m;
    EXPECT(student_model_load(&m, model_dir, NULL) == 0);
    train_data td;
    train_data_options o = {.seq_len = seq_len, .pack = 1, .vocab_size = m.cfg.vocab_size};
    EXPECT(train_data_open(&td, data, &o) == 0);

    /* the packed layout */
    EXPECT_EQ_INT(td.n_rows, cJSON_GetArraySize(rows));
    for (int64_t r = 0; r < td.n_rows && r < cJSON_GetArraySize(rows); r++) {
        const cJSON *row = cJSON_GetArrayItem(rows, (int)r);
        EXPECT_EQ_INT(td.row_off[r + 1] - td.row_off[r], cJSON_GetArraySize(row));
        for (int j = 0; j < cJSON_GetArraySize(row) && td.row_off[r] + j < td.row_off[r + 1]; j++)
            EXPECT_EQ_INT(td.docs[td.row_off[r] + j].doc, cJSON_GetArrayItem(row, j)->valueint);
    }

    /* one step's loss and gradients, two rows per micro-batch */
    student_acts a;
    batch_buf bb;
    student_acts_init(&a, &m.cfg, 2 * td.max_row, 0);
    batch_buf_init(&bb, 2 * td.max_row);
    memset(m.grad_mem, 0, sizeof(float) * m.n_params);
    double sum = 0;
    int64_t counted = 0;
    for (int64_t r = 0; r < td.n_rows; r += 2) {
        int64_t rr[2] = {r, r + 1};
        train_data_fill(&td, rr, td.n_rows - r >= 2 ? 2 : 1, &bb);
        int64_t nl;
        sum += student_forward_backward(&m, &a, &bb.b, 1.0f / (float)n_loss_ref, &nl);
        counted += nl;
    }
    EXPECT_EQ_INT(counted, n_loss_ref);
    const double loss0 = cJSON_GetObjectItem(cJSON_GetArrayItem(steps, 0), "loss")->valuedouble;
    EXPECT_MSG(rel(sum / (double)counted, loss0) <= 1e-5, "%s loss %.9g, torch %.9g", name,
               sum / (double)counted, loss0);
    safetensors g;
    snprintf(path, sizeof path, "%s/grads.safetensors", dir);
    EXPECT(safetensors_open(&g, path) == 0);
    EXPECT_EQ_INT(g.n, m.n_tensors);
    double worst = 0;
    for (int k = 0; k < m.n_tensors; k++) {
        const student_tensor *t = &m.tensors[k];
        const st_tensor *s = safetensors_find(&g, t->name);
        EXPECT_MSG(s && s->dt == DTYPE_F32 && (size_t)s->numel == t->numel, "%s: no gradient %s",
                   name, t->name);
        if (!s || s->dt != DTYPE_F32 || (size_t)s->numel != t->numel) continue;
        double e = rel_l2(m.grad_mem + t->offset, s->data, t->numel);
        worst = fmax(worst, e);
        EXPECT_MSG(e <= 1e-4, "%s %s: gradient rel L2 error %.2e", name, t->name, e);
    }
    fprintf(stderr, "    %s: loss %.7f, %d gradients, worst rel L2 %.2e\n", name, loss0,
            m.n_tensors, worst);
    safetensors_close(&g);
    student_acts_free(&a);
    batch_buf_free(&bb);

    /* the trainer for the script's steps, every row in each step */
    const int n_steps = cJSON_GetArraySize(steps);
    char out[200], log[220];
    snprintf(out, sizeof out, "%s/%s", tmpdir, name);
    snprintf(log, sizeof log, "%s/%s.jsonl", tmpdir, name);
    lr_schedule_kind kind;
    EXPECT(lr_schedule_parse(cJSON_GetObjectItem(hp, "schedule")->valuestring, &kind) == 0);
    train_args ta = {.model = model_dir, .data = data, .out = out, .log = log,
                     .steps = n_steps, .lr = HP("lr"), .min_lr = HP("min_lr"),
                     .weight_decay = HP("weight_decay"), .beta1 = HP("adam_beta1"),
                     .beta2 = HP("adam_beta2"), .eps = HP("adam_eps"),
                     .grad_clip = HP("grad_clip"), .schedule = kind, .warmup = HP("warmup"),
                     .batch_size = td.n_rows, .micro_batch = 2, .seq_len = seq_len, .pack = 1,
                     .seed = 1, .save_every = n_steps, .keep = 1, .quiet = 1};
    EXPECT(train_run(&ta) == 0);
    char *text;
    size_t len;
    EXPECT(file_read_all(log, 1 << 20, &text, &len) == 0);
    int step = 0;
    double worst_loss = 0, worst_norm = 0;
    for (char *line = text; line && *line && step < n_steps;) {
        char *nl = strchr(line, '\n');
        cJSON *j = cJSON_ParseWithLength(line, nl ? (size_t)(nl - line) : strlen(line));
        line = nl ? nl + 1 : NULL;
        if (!j || !cJSON_GetObjectItem(j, "loss")) {
            cJSON_Delete(j);
            continue;
        }
        const cJSON *want = cJSON_GetArrayItem(steps, step);
        double l = cJSON_GetObjectItem(j, "loss")->valuedouble;
        double gn = cJSON_GetObjectItem(j, "grad_norm")->valuedouble;
        double lr = cJSON_GetObjectItem(j, "lr")->valuedouble;
        double wl = cJSON_GetObjectItem(want, "loss")->valuedouble;
        double wg = cJSON_GetObjectItem(want, "grad_norm")->valuedouble;
        double wlr = cJSON_GetObjectItem(want, "lr")->valuedouble;
        worst_loss = fmax(worst_loss, rel(l, wl));
        worst_norm = fmax(worst_norm, rel(gn, wg));
        EXPECT_MSG(rel(l, wl) <= 1e-4, "%s step %d: loss %.9g, torch %.9g", name, step + 1, l, wl);
        EXPECT_MSG(rel(gn, wg) <= 1e-4, "%s step %d: grad_norm %.9g, torch %.9g", name, step + 1,
                   gn, wg);
        EXPECT_MSG(fabs(lr - wlr) <= 1e-9 * fmax(wlr, 1e-3), "%s step %d: lr %.12g, torch %.12g",
                   name, step + 1, lr, wlr);
        cJSON_Delete(j);
        step++;
    }
    EXPECT_EQ_INT(step, n_steps);
    fprintf(stderr, "    %s: %d AdamW steps, worst rel loss %.2e, grad_norm %.2e\n", name, step,
            worst_loss, worst_norm);
    free(text);

    /* the trained weights (fp32 masters of the last checkpoint) against transformers' */
    char ck[260];
    snprintf(ck, sizeof ck, "%s/checkpoint-%d", out, n_steps);
    student_model tm;
    float *ea, *eas;
    cJSON *state;
    EXPECT(checkpoint_load(ck, &tm, &ea, &eas, &state) == 0);
    const cJSON *probe = cJSON_GetObjectItem(ref, "probe_tokens");
    const int T = cJSON_GetArraySize(probe);
    int *tok = xmalloc(sizeof(int) * T), *pos = xmalloc(sizeof(int) * T),
        *ds = xcalloc(T, sizeof(int)), *tg = xmalloc(sizeof(int) * T);
    for (int i = 0; i < T; i++) tok[i] = cJSON_GetArrayItem(probe, i)->valueint, pos[i] = i, tg[i] = -1;
    student_batch pb = {T, tok, pos, ds, tg};
    student_acts_init(&a, &tm.cfg, T, 0);
    float *logits = xmalloc(sizeof(float) * T * tm.cfg.vocab_size);
    student_logits(&tm, &a, &pb, logits);
    snprintf(path, sizeof path, "%s/final_logits.f32", dir);
    char *want;
    EXPECT(file_read_all(path, 1 << 26, &want, &len) == 0);
    EXPECT_EQ_INT(len, sizeof(float) * T * tm.cfg.vocab_size);
    if (len == sizeof(float) * T * tm.cfg.vocab_size) {
        double e = rel_l2(logits, (const float *)want, (size_t)T * tm.cfg.vocab_size);
        fprintf(stderr, "    %s: trained logits rel L2 %.2e\n", name, e);
        EXPECT_MSG(e <= 1e-3, "%s: trained logits differ from transformers' (rel %.2e)", name, e);
    }
    free(want), free(logits), free(tok), free(pos), free(ds), free(tg), free(ea), free(eas);
    cJSON_Delete(state);
    student_acts_free(&a);
    student_model_free(&tm);
    train_data_close(&td);
    student_model_free(&m);
    cJSON_Delete(ref);
#undef HP
}

static void test_qwen2_tied(void) { check_case("qwen2-tied"); }
static void test_llama3_bf16(void) { check_case("llama3-bf16"); }

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/r1test-ref.%d", (int)getpid());
    dir_create(tmpdir);
    RUN(test_qwen2_tied);
    RUN(test_llama3_bf16);
    remove_tree(tmpdir);
    TESTS_DONE();
}
