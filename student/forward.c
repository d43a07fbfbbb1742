/* Forward pass of the student: layer functions and the whole model (see student/student.h for
 * the equations; each block names the transformers line it mirrors). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "student/student.h"

/* ---- activations -------------------------------------------------------------------------- */

void student_acts_init(student_acts *a, const model_config *c, int max_tokens, int recompute) {
    memset(a, 0, sizeof *a);
    gemm_threads_init();
    const size_t n = (size_t)max_tokens, d = (size_t)c->hidden_size, ff = (size_t)c->intermediate_size,
                 H = (size_t)c->num_heads, qd = H * (size_t)c->head_dim,
                 kvd = (size_t)c->num_kv_heads * (size_t)c->head_dim, L = (size_t)c->num_layers;
    const size_t per_layer = n * (3 * d + 2 * qd + 2 * kvd + 3 * ff + H + 2);
    const size_t n_layer_sets = recompute ? 1 : L;
    const size_t total = n * d * (L + 1) + n_layer_sets * per_layer + n * (d + 1) +
                         n * (4 * d + 2 * qd + 2 * kvd + 3 * ff);
    a->max_tokens = max_tokens;
    a->recompute = recompute;
    a->bytes = total * sizeof(float);
    a->mem = xmalloc(a->bytes);
    float *p = a->mem;
#define TAKE(count) (p += (count), p - (count))
    a->res = TAKE(n * d * (L + 1));
    a->layers = xmalloc(sizeof(student_layer_acts) * L);
    for (size_t l = 0; l < n_layer_sets; l++) {
        student_layer_acts *A = &a->layers[l];
        A->h1 = TAKE(n * d);
        A->rstd1 = TAKE(n);
        A->q = TAKE(n * qd);
        A->k = TAKE(n * kvd);
        A->v = TAKE(n * kvd);
        A->att = TAKE(n * qd);
        A->lse = TAKE(n * H);
        A->x2 = TAKE(n * d);
        A->h2 = TAKE(n * d);
        A->rstd2 = TAKE(n);
        A->gate = TAKE(n * ff);
        A->up = TAKE(n * ff);
        A->act = TAKE(n * ff);
    }
    for (size_t l = n_layer_sets; l < L; l++) a->layers[l] = a->layers[0];
    a->hf = TAKE(n * d);
    a->rstdf = TAKE(n);
    a->dres = TAKE(n * d);
    a->dx2 = TAKE(n * d);
    a->dh = TAKE(n * d);
    a->dtmp = TAKE(n * d);
    a->datt = TAKE(n * qd);
    a->dq = TAKE(n * qd);
    a->dk = TAKE(n * kvd);
    a->dv = TAKE(n * kvd);
    a->dgate = TAKE(n * ff);
    a->dup = TAKE(n * ff);
    a->dact = TAKE(n * ff);
#undef TAKE
    CHECK((size_t)(p - a->mem) == total);
}

void student_acts_free(student_acts *a) {
    free(a->mem);
    free(a->layers);
    memset(a, 0, sizeof *a);
}

/* ---- layers ------------------------------------------------------------------------------- */

/* inputs_embeds = self.embed_tokens(input_ids) */
void embedding_forward(float *out, const int *tokens, const float *embed, int n, int d) {
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * d, embed + (size_t)tokens[i] * d, sizeof(float) * (size_t)d);
}

/* Qwen2RMSNorm / LlamaRMSNorm: variance = x.pow(2).mean(-1); x * rsqrt(variance + eps) * w */
void rmsnorm_forward(float *out, float *rstd, const float *x, const float *g, int n, int d,
                     float eps) {
#pragma omp parallel for schedule(static) if ((size_t)n * d >= PAR_MIN_WORK)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *oi = out + (size_t)i * d;
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)xi[j] * xi[j];
        float r = 1.0f / sqrtf((float)(ss / d) + eps);
        for (int j = 0; j < d; j++) oi[j] = xi[j] * r * g[j];
        rstd[i] = r;
    }
}

/* nn.Linear: out = x @ w.T + b. */
void matmul_forward(float *out, const float *x, const float *w, const float *b, int n, int ic,
                    int oc) {
    gemm(0, 1, n, oc, ic, 1.0f, x, ic, w, ic, 0.0f, out, oc);
    if (!b) return;
#pragma omp parallel for schedule(static) if ((size_t)n * oc >= PAR_MIN_WORK)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < oc; j++) out[(size_t)i * oc + j] += b[j];
}

/* apply_rotary_pos_emb: q * cos + rotate_half(q) * sin, at each token's own position. */
void rope_forward(float *x, const rope_table *r, const int *pos, int n, int n_heads, int hd) {
#pragma omp parallel for schedule(static) if ((size_t)n * n_heads * hd >= PAR_MIN_WORK / 4)
    for (int i = 0; i < n; i++) rope_apply(r, x + (size_t)i * n_heads * hd, n_heads, hd, 0, pos[i]);
}

/* act_fn(gate_proj(x)) * up_proj(x), act_fn = silu(x) = x * sigmoid(x) */
void swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void add_inplace(float *x, const float *y, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* ---- the model ---------------------------------------------------------------------------- */

/* Qwen2DecoderLayer.forward: writes a->res[l + 1] from a->res[l]. Recomputation in backward
 * calls it again with the same inputs and gets the same bits. */
void student_layer_forward(student_model *m, student_acts *a, const student_batch *b, int l) {
    const model_config *c = &m->cfg;
    const int n = b->n, d = c->hidden_size, ff = c->intermediate_size, H = c->num_heads,
              KV = c->num_kv_heads, hd = c->head_dim, qd = H * hd, kvd = KV * hd;
    const float eps = (float)c->rms_norm_eps;
    const student_layer *P = &m->p.layers[l];
    student_layer_acts *A = &a->layers[l];
    const float *x = a->res + (size_t)l * n * d;
    float *y = a->res + (size_t)(l + 1) * n * d;

    rmsnorm_forward(A->h1, A->rstd1, x, P->attn_norm, n, d, eps);
    matmul_forward(A->q, A->h1, P->wq, P->bq, n, d, qd);
    matmul_forward(A->k, A->h1, P->wk, P->bk, n, d, kvd);
    matmul_forward(A->v, A->h1, P->wv, P->bv, n, d, kvd);
    rope_forward(A->q, &m->rope, b->pos, n, H, hd);
    rope_forward(A->k, &m->rope, b->pos, n, KV, hd);
    attention_forward(A->att, A->lse, A->q, A->k, A->v, b->doc_start, n, H, KV, hd);
    matmul_forward(A->x2, A->att, P->wo, NULL, n, qd, d);
    add_inplace(A->x2, x, (size_t)n * d); /* hidden_states = residual + hidden_states */

    rmsnorm_forward(A->h2, A->rstd2, A->x2, P->mlp_norm, n, d, eps);
    matmul_forward(A->gate, A->h2, P->wg, NULL, n, d, ff);
    matmul_forward(A->up, A->h2, P->wu, NULL, n, d, ff);
    swiglu_forward(A->act, A->gate, A->up, (size_t)n * ff);
    matmul_forward(y, A->act, P->wd, NULL, n, ff, d);
    add_inplace(y, A->x2, (size_t)n * d);
}

void student_forward(student_model *m, student_acts *a, const student_batch *b) {
    const model_config *c = &m->cfg;
    const int n = b->n, d = c->hidden_size, L = c->num_layers;
    CHECK(n >= 1 && n <= a->max_tokens);
    embedding_forward(a->res, b->tokens, m->p.embed, n, d);
    for (int l = 0; l < L; l++) student_layer_forward(m, a, b, l);
    rmsnorm_forward(a->hf, a->rstdf, a->res + (size_t)L * n * d, m->p.final_norm, n, d,
                    (float)c->rms_norm_eps);
}

double student_eval(student_model *m, student_acts *a, const student_batch *b, int64_t *n_loss) {
    student_forward(m, a, b);
    return loss_forward_backward(NULL, NULL, a->hf, m->p.lm_head, b->targets, b->n,
                                 m->cfg.hidden_size, m->cfg.vocab_size, 0.0f, n_loss);
}

void student_logits(student_model *m, student_acts *a, const student_batch *b, float *logits) {
    student_forward(m, a, b);
    const int d = m->cfg.hidden_size, V = (int)m->cfg.vocab_size;
    gemm(0, 1, b->n, V, d, 1.0f, a->hf, d, m->p.lm_head, d, 0.0f, logits, V);
}
