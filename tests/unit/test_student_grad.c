/* Each backward function of the student against central finite differences of its forward.
 *
 * A scalar probe L = sum_i r_i * out_i (r random) turns a layer into a function of its inputs;
 * for a random direction v, (L(x + h v) - L(x - h v)) / 2h must equal <dL/dx, v> from the
 * backward function (to a stated fraction of |dL/dx|). Probes are accumulated in double and inputs are O(1), so float rounding
 * stays far below the tolerances. The whole model is checked the same way, one parameter
 * tensor at a time, for a tied Qwen2 and an untied Llama (llama3 rope) on a packed batch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/error.h"
#include "student/student.h"
#include "testing.h"

static uint64_t rng_state = 88172645463325252ull;
static double urand(void) { /* xorshift64*, uniform in [0, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}
static float nrand(void) {
    double u = urand() + 1e-12, v = urand();
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}
static float *randv(size_t n, float scale) {
    float *x = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = scale * nrand();
    return x;
}
static double probe(const float *out, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * r[i];
    return s;
}
static double dotd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
/* x += s * v */
static void axpy(float *x, const float *v, float s, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += s * v[i];
}

/* Checks <grad, v> against the central difference of f along v, where f(x) evaluates the probe
 * and x is the array being perturbed. Richardson extrapolation of the steps h and h/2 cancels
 * the h^2 term, so h can be large enough that float rounding in f stays negligible. */
typedef double (*probe_fn)(void *ctx);
static double central(probe_fn f, void *ctx, float *x, const float *x0, const float *v, size_t n,
                      float h) {
    memcpy(x, x0, sizeof(float) * n);
    axpy(x, v, h, n);
    double fp = f(ctx);
    memcpy(x, x0, sizeof(float) * n);
    axpy(x, v, -h, n);
    double fm = f(ctx);
    memcpy(x, x0, sizeof(float) * n);
    return (fp - fm) / (2.0 * h);
}
static void check_dir(const char *what, probe_fn f, void *ctx, float *x, const float *grad,
                      size_t n, float h, double rtol) {
    float *v = randv(n, 1.0f), *x0 = xmalloc(sizeof(float) * n);
    memcpy(x0, x, sizeof(float) * n);
    double d1 = central(f, ctx, x, x0, v, n, h), d2 = central(f, ctx, x, x0, v, n, h / 2);
    /* the error is measured against |grad|, the typical size of <grad, v> for a random v (a
     * direction nearly orthogonal to grad would otherwise turn rounding noise into a large
     * relative error) */
    double num = (4 * d2 - d1) / 3, ana = dotd(grad, v, n);
    double err = fabs(num - ana) / fmax(sqrt(dotd(grad, grad, n)), 1e-6);
    if (getenv("GRAD_VERBOSE")) fprintf(stderr, "    %-50s rel %.2e\n", what, err);
    EXPECT_MSG(err <= rtol, "%s: numeric %.8g analytic %.8g (rel %.2e)", what, num, ana, err);
    free(v);
    free(x0);
}

/* ---- rmsnorm ----------------------------------------------------------------------------- */
enum { N = 7, D = 24 };
typedef struct { float *out, *rstd, *x, *g, *r; } rms_ctx;
static double rms_probe(void *p) {
    rms_ctx *c = p;
    rmsnorm_forward(c->out, c->rstd, c->x, c->g, N, D, 1e-6f);
    return probe(c->out, c->r, (size_t)N * D);
}
static void test_rmsnorm(void) {
    rms_ctx c = {xmalloc(sizeof(float) * N * D), xmalloc(sizeof(float) * N), randv(N * D, 1.0f),
                 randv(D, 1.0f), randv(N * D, 1.0f)};
    float *dx = xmalloc(sizeof(float) * N * D), *dg = xcalloc(D, sizeof(float));
    rms_probe(&c);
    rmsnorm_backward(dx, dg, c.r, c.x, c.g, c.rstd, N, D);
    check_dir("rmsnorm dx", rms_probe, &c, c.x, dx, N * D, 1e-2f, 1e-3);
    check_dir("rmsnorm dg", rms_probe, &c, c.g, dg, D, 1e-2f, 1e-3);
    free(c.out), free(c.rstd), free(c.x), free(c.g), free(c.r), free(dx), free(dg);
}

/* ---- matmul ------------------------------------------------------------------------------ */
enum { IC = 20, OC = 12 };
typedef struct { float *out, *x, *w, *b, *r; } mm_ctx;
static double mm_probe(void *p) {
    mm_ctx *c = p;
    matmul_forward(c->out, c->x, c->w, c->b, N, IC, OC);
    return probe(c->out, c->r, (size_t)N * OC);
}
static void test_matmul(void) {
    mm_ctx c = {xmalloc(sizeof(float) * N * OC), randv(N * IC, 1.0f), randv(OC * IC, 1.0f),
                randv(OC, 1.0f), randv(N * OC, 1.0f)};
    float *dx = randv(N * IC, 1.0f), *dw = xcalloc(OC * IC, sizeof(float)),
          *db = xcalloc(OC, sizeof(float));
    /* accumulate_dx: dx must be added to, so start it from a known value */
    float *dx0 = xmalloc(sizeof(float) * N * IC);
    memcpy(dx0, dx, sizeof(float) * N * IC);
    matmul_backward(dx, dw, db, c.r, c.x, c.w, N, IC, OC, 1);
    for (int i = 0; i < N * IC; i++) dx[i] -= dx0[i];
    check_dir("matmul dx", mm_probe, &c, c.x, dx, N * IC, 1e-2f, 1e-4);
    check_dir("matmul dw", mm_probe, &c, c.w, dw, OC * IC, 1e-2f, 1e-4);
    check_dir("matmul db", mm_probe, &c, c.b, db, OC, 1e-2f, 1e-4);
    /* dw accumulates: a second call doubles it */
    float *dw1 = xmalloc(sizeof(float) * OC * IC);
    memcpy(dw1, dw, sizeof(float) * OC * IC);
    matmul_backward(NULL, dw, NULL, c.r, c.x, c.w, N, IC, OC, 0);
    double e = 0;
    for (int i = 0; i < OC * IC; i++) e = fmax(e, fabs(dw[i] - 2 * dw1[i]));
    EXPECT_MSG(e < 1e-5, "matmul dw does not accumulate (%g)", e);
    free(c.out), free(c.x), free(c.w), free(c.b), free(c.r), free(dx), free(dw), free(db),
        free(dx0), free(dw1);
}

/* ---- swiglu ------------------------------------------------------------------------------ */
typedef struct { float *out, *g, *u, *r; size_t n; } sw_ctx;
static double sw_probe(void *p) {
    sw_ctx *c = p;
    swiglu_forward(c->out, c->g, c->u, c->n);
    return probe(c->out, c->r, c->n);
}
static void test_swiglu(void) {
    const size_t n = 50;
    sw_ctx c = {xmalloc(sizeof(float) * n), randv(n, 2.0f), randv(n, 1.0f), randv(n, 1.0f), n};
    float *dg = xmalloc(sizeof(float) * n), *du = xmalloc(sizeof(float) * n);
    swiglu_backward(dg, du, c.r, c.g, c.u, n);
    check_dir("swiglu dgate", sw_probe, &c, c.g, dg, n, 1e-2f, 1e-3);
    check_dir("swiglu dup", sw_probe, &c, c.u, du, n, 1e-2f, 1e-3);
    free(c.out), free(c.g), free(c.u), free(c.r), free(dg), free(du);
}

/* ---- rope -------------------------------------------------------------------------------- */
typedef struct { float *x, *y, *r; const rope_table *rt; const int *pos; int n, H, hd; } rope_ctx;
static double rope_probe(void *p) {
    rope_ctx *c = p;
    size_t m = (size_t)c->n * c->H * c->hd;
    memcpy(c->y, c->x, sizeof(float) * m);
    rope_forward(c->y, c->rt, c->pos, c->n, c->H, c->hd);
    return probe(c->y, c->r, m);
}
static void test_rope(void) {
    rope_config rc = {.type = ROPE_LLAMA3, .theta = 500000, .factor = 8, .low_freq_factor = 1,
                      .high_freq_factor = 4, .original_max_position = 32};
    rope_table rt;
    rope_init(&rt, &rc, 16, ROPE_PAIRS_HALF);
    int pos[N] = {0, 1, 2, 0, 5, 40, 3};
    rope_ctx c = {randv(N * 3 * 16, 1.0f), xmalloc(sizeof(float) * N * 3 * 16),
                  randv(N * 3 * 16, 1.0f), &rt, pos, N, 3, 16};
    float *dx = xmalloc(sizeof(float) * N * 3 * 16);
    memcpy(dx, c.r, sizeof(float) * N * 3 * 16);
    rope_backward(dx, &rt, pos, N, 3, 16);
    check_dir("rope dx", rope_probe, &c, c.x, dx, N * 3 * 16, 1e-2f, 1e-4);
    free(c.x), free(c.y), free(c.r), free(dx);
    rope_free(&rt);
}

/* ---- attention --------------------------------------------------------------------------- */
typedef struct { float *out, *lse, *q, *k, *v, *r; const int *ds; int n, H, KV, hd; } att_ctx;
static double att_probe(void *p) {
    att_ctx *c = p;
    attention_forward(c->out, c->lse, c->q, c->k, c->v, c->ds, c->n, c->H, c->KV, c->hd);
    return probe(c->out, c->r, (size_t)c->n * c->H * c->hd);
}
static void test_attention(void) {
    /* three documents of 4, 1 and 6 tokens laid end to end */
    enum { T = 11, H = 6, KV = 2, HD = 8 };
    const int ds[T] = {0, 0, 0, 0, 4, 5, 5, 5, 5, 5, 5};
    att_ctx c = {xmalloc(sizeof(float) * T * H * HD), xmalloc(sizeof(float) * T * H),
                 randv(T * H * HD, 1.0f), randv(T * KV * HD, 1.0f), randv(T * KV * HD, 1.0f),
                 randv(T * H * HD, 1.0f), ds, T, H, KV, HD};
    att_probe(&c);
    float *dq = xmalloc(sizeof(float) * T * H * HD), *dk = xmalloc(sizeof(float) * T * KV * HD),
          *dv = xmalloc(sizeof(float) * T * KV * HD);
    attention_backward(dq, dk, dv, c.r, c.q, c.k, c.v, c.lse, ds, T, H, KV, HD);
    check_dir("attention dq", att_probe, &c, c.q, dq, T * H * HD, 1e-2f, 1e-3);
    check_dir("attention dk", att_probe, &c, c.k, dk, T * KV * HD, 1e-2f, 1e-3);
    check_dir("attention dv", att_probe, &c, c.v, dv, T * KV * HD, 1e-2f, 1e-3);
    /* Document masking: the first document's outputs ignore everything after it, and the
     * one-token document returns its own value row. */
    float *out0 = xmalloc(sizeof(float) * T * H * HD);
    att_probe(&c); /* check_dir's last evaluation was at a perturbed point */
    memcpy(out0, c.out, sizeof(float) * T * H * HD);
    for (int i = 4 * KV * HD; i < T * KV * HD; i++) c.k[i] += 1.0f, c.v[i] -= 1.0f;
    att_probe(&c);
    EXPECT(memcmp(out0, c.out, sizeof(float) * 4 * H * HD) == 0);
    for (int h = 0; h < H; h++)
        for (int j = 0; j < HD; j++)
            EXPECT_NEAR(c.out[(4 * H + h) * HD + j], c.v[(4 * KV + h / 3) * HD + j], 1e-6);
    free(c.out), free(c.lse), free(c.q), free(c.k), free(c.v), free(c.r), free(dq), free(dk),
        free(dv), free(out0);
}

/* ---- embedding --------------------------------------------------------------------------- */
static void test_embedding(void) {
    enum { V = 9 };
    const int tok[N] = {3, 1, 3, 8, 0, 3, 1};
    float *emb = randv(V * D, 1.0f), *out = xmalloc(sizeof(float) * N * D),
          *dout = randv(N * D, 1.0f), *de = xcalloc(V * D, sizeof(float));
    embedding_forward(out, tok, emb, N, D);
    embedding_backward(de, dout, tok, N, D);
    /* the probe is linear: its gradient row v is the sum of dout over the tokens equal to v */
    for (int v = 0; v < V; v++)
        for (int j = 0; j < D; j++) {
            double s = 0;
            for (int i = 0; i < N; i++)
                if (tok[i] == v) s += dout[i * D + j];
            EXPECT_NEAR(de[v * D + j], s, 1e-5);
        }
    EXPECT(memcmp(out + 5 * D, emb + 3 * D, sizeof(float) * D) == 0);
    free(emb), free(out), free(dout), free(de);
}

/* ---- loss -------------------------------------------------------------------------------- */
typedef struct { float *x, *w; const int *t; int n, d; int64_t V; } loss_ctx;
static double loss_probe(void *p) {
    loss_ctx *c = p;
    int64_t nl;
    return loss_forward_backward(NULL, NULL, c->x, c->w, c->t, c->n, c->d, c->V, 0, &nl);
}
static void test_loss(void) {
    /* vocab 3000: more than one chunk of rows for small chunk sizes is checked below */
    enum { T = 9, DD = 16 };
    const int64_t V = 3000;
    const int t[T] = {5, -1, 2999, 0, -1, 17, 17, 1234, -1};
    loss_ctx c = {randv(T * DD, 1.0f), randv((size_t)V * DD, 0.5f), t, T, DD, V};
    float *dx = xmalloc(sizeof(float) * T * DD), *dw = xcalloc((size_t)V * DD, sizeof(float));
    int64_t nl;
    double l = loss_forward_backward(dx, dw, c.x, c.w, t, T, DD, V, 1.0f, &nl);
    EXPECT_EQ_INT(nl, 6);
    EXPECT_NEAR(l, loss_probe(&c), 1e-9);
    /* a reference in double for one row */
    double mx = -1e30, s = 0;
    for (int64_t j = 0; j < V; j++) {
        double z = dotd(c.x + 3 * DD, c.w + j * DD, DD);
        mx = fmax(mx, z);
    }
    for (int64_t j = 0; j < V; j++) s += exp(dotd(c.x + 3 * DD, c.w + j * DD, DD) - mx);
    double row3 = mx + log(s) - dotd(c.x + 3 * DD, c.w, DD);
    const int only3[T] = {-1, -1, -1, 0, -1, -1, -1, -1, -1};
    EXPECT_NEAR(loss_forward_backward(NULL, NULL, c.x, c.w, only3, T, DD, V, 0, &nl), row3, 1e-4);
    check_dir("loss dx", loss_probe, &c, c.x, dx, T * DD, 1e-2f, 1e-3);
    check_dir("loss dw", loss_probe, &c, c.w, dw, (size_t)V * DD, 1e-2f, 1e-3);
    for (int j = 0; j < DD; j++) EXPECT(dx[1 * DD + j] == 0.0f && dx[8 * DD + j] == 0.0f);
    free(c.x), free(c.w), free(dx), free(dw);
}

/* ---- the whole model --------------------------------------------------------------------- */
typedef struct { student_model *m; student_acts *a; const student_batch *b; } model_ctx;
static double model_probe(void *p) {
    model_ctx *c = p;
    int64_t nl;
    return student_eval(c->m, c->a, c->b, &nl);
}

static void random_init(student_model *m) {
    for (int k = 0; k < m->n_tensors; k++) {
        const student_tensor *t = &m->tensors[k];
        float *p = m->param_mem + t->offset;
        int is_norm = strstr(t->name, "norm") != NULL;
        for (size_t i = 0; i < t->numel; i++)
            p[i] = is_norm ? 1.0f + 0.2f * nrand() : t->ndim == 1 ? 0.1f * nrand() : 0.15f * nrand();
    }
}

static void check_model(const char *config_json) {
    model_config cfg;
    CHECK(model_config_parse(&cfg, config_json, strlen(config_json), "test config") == 0);
    student_model m;
    CHECK(student_model_create(&m, &cfg) == 0);
    random_init(&m);
    /* two rows packed end to end: documents of 5, 3 | 7 tokens */
    enum { T = 15 };
    const int tokens[T] = {1, 7, 9, 30, 2, 1, 44, 3, 1, 5, 5, 6, 60, 61, 2};
    const int pos[T] = {0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3, 4, 5, 6};
    const int ds[T] = {0, 0, 0, 0, 0, 5, 5, 5, 8, 8, 8, 8, 8, 8, 8};
    const int tg[T] = {-1, -1, 30, 2, -1, 44, 3, -1, -1, -1, 6, 60, 61, 2, -1};
    student_batch b = {T, tokens, pos, ds, tg};
    for (int recompute = 0; recompute <= 1; recompute++) {
        student_acts a;
        student_acts_init(&a, &cfg, T, recompute);
        memset(m.grad_mem, 0, sizeof(float) * m.n_params);
        int64_t nl;
        student_forward_backward(&m, &a, &b, 1.0f, &nl);
        EXPECT_EQ_INT(nl, 8);
        if (recompute) { /* same bits as without recomputation */
            float *g1 = xmalloc(sizeof(float) * m.n_params);
            memcpy(g1, m.grad_mem, sizeof(float) * m.n_params);
            student_acts a0;
            student_acts_init(&a0, &cfg, T, 0);
            memset(m.grad_mem, 0, sizeof(float) * m.n_params);
            student_forward_backward(&m, &a0, &b, 1.0f, &nl);
            EXPECT(memcmp(g1, m.grad_mem, sizeof(float) * m.n_params) == 0);
            student_acts_free(&a0);
            free(g1);
            student_acts_free(&a);
            continue;
        }
        model_ctx c = {&m, &a, &b};
        for (int k = 0; k < m.n_tensors; k++) {
            const student_tensor *t = &m.tensors[k];
            char what[160];
            snprintf(what, sizeof what, "%s %s", cfg.model_type, t->name);
            check_dir(what, model_probe, &c, m.param_mem + t->offset, m.grad_mem + t->offset,
                      t->numel, 1e-2f, 1e-3);
        }
        student_acts_free(&a);
    }
    student_model_free(&m);
}

static void test_model_qwen2_tied(void) {
    check_model("{\"model_type\": \"qwen2\", \"vocab_size\": 64, \"hidden_size\": 24, "
                "\"intermediate_size\": 40, \"num_hidden_layers\": 2, \"num_attention_heads\": 6, "
                "\"num_key_value_heads\": 2, \"head_dim\": 4, \"rms_norm_eps\": 1e-6, "
                "\"rope_theta\": 10000.0, \"tie_word_embeddings\": true}");
}

static void test_model_llama_untied(void) {
    check_model("{\"model_type\": \"llama\", \"vocab_size\": 70, \"hidden_size\": 32, "
                "\"intermediate_size\": 48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                "\"num_key_value_heads\": 2, \"head_dim\": 8, \"rms_norm_eps\": 1e-5, "
                "\"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8.0, "
                "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                "\"original_max_position_embeddings\": 8, \"rope_theta\": 500000.0}, "
                "\"tie_word_embeddings\": false}");
}

int main(void) {
    RUN(test_rmsnorm);
    RUN(test_matmul);
    RUN(test_swiglu);
    RUN(test_rope);
    RUN(test_attention);
    RUN(test_embedding);
    RUN(test_loss);
    RUN(test_model_qwen2_tied);
    RUN(test_model_llama_untied);
    TESTS_DONE();
}
