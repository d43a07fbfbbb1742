/* Backward pass of the student: the layer functions' gradients and the whole model's.
 * Parameter gradients accumulate (+=), activation gradients are assigned (=). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "student/student.h"

/* Rows of the same token accumulate in token order, one embedding column range per thread, so
 * the sum order never depends on the thread count. */
void embedding_backward(float *dembed, const float *dout, const int *tokens, int n, int d) {
    enum { COLS = 64 };
    const int n_blocks = (d + COLS - 1) / COLS;
#pragma omp parallel for schedule(static) if ((size_t)n * d >= PAR_MIN_WORK)
    for (int blk = 0; blk < n_blocks; blk++) {
        const int j0 = blk * COLS, j1 = j0 + COLS < d ? j0 + COLS : d;
        for (int i = 0; i < n; i++) {
            float *row = dembed + (size_t)tokens[i] * d;
            const float *g = dout + (size_t)i * d;
            for (int j = j0; j < j1; j++) row[j] += g[j];
        }
    }
}

/* y = x * r * g with r = (mean(x^2) + eps)^-1/2. With n = x * r:
 *   dg += sum_i dy * n
 *   dx  = r * (dy*g - n * mean(dy*g*n)) */
void rmsnorm_backward(float *dx, float *dg, const float *dout, const float *x, const float *g,
                      const float *rstd, int n, int d) {
#pragma omp parallel for schedule(static) if ((size_t)n * d >= PAR_MIN_WORK)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d, *dyi = dout + (size_t)i * d;
        float *dxi = dx + (size_t)i * d;
        const float r = rstd[i];
        double dot = 0;
        for (int j = 0; j < d; j++) dot += (double)dyi[j] * g[j] * (xi[j] * r);
        const float mean = (float)(dot / d);
        for (int j = 0; j < d; j++) {
            float nj = xi[j] * r;
            dxi[j] = r * (dyi[j] * g[j] - nj * mean);
        }
    }
    /* dg: columns in parallel, rows summed in order. */
#pragma omp parallel for schedule(static) if ((size_t)n * d >= PAR_MIN_WORK)
    for (int j = 0; j < d; j++) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += (double)dout[(size_t)i * d + j] * (x[(size_t)i * d + j] * rstd[i]);
        dg[j] += (float)s;
    }
}

void matmul_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                     const float *w, int n, int ic, int oc, int accumulate_dx) {
    if (dx)
        gemm(0, 0, n, ic, oc, 1.0f, dout, oc, w, ic, accumulate_dx ? 1.0f : 0.0f, dx, ic);
    if (dw)
        gemm(1, 0, oc, ic, n, 1.0f, dout, oc, x, ic, 1.0f, dw, ic);
    if (db) {
#pragma omp parallel for schedule(static) if ((size_t)n * oc >= PAR_MIN_WORK)
        for (int j = 0; j < oc; j++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += dout[(size_t)i * oc + j];
            db[j] += (float)s;
        }
    }
}

/* The rotation is orthogonal, so its backward is the inverse rotation. */
void rope_backward(float *dx, const rope_table *r, const int *pos, int n, int n_heads, int hd) {
#pragma omp parallel for schedule(static) if ((size_t)n * n_heads * hd >= PAR_MIN_WORK / 4)
    for (int i = 0; i < n; i++)
        rope_apply_inverse(r, dx + (size_t)i * n_heads * hd, n_heads, hd, 0, pos[i]);
}

/* out = silu(g) * u:  dg = dout * u * s * (1 + g * (1 - s)) with s = sigmoid(g);
 *                     du = dout * silu(g) */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], s = 1.0f / (1.0f + expf(-g));
        dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] = dout[i] * g * s;
    }
}

static void add_inplace(float *x, const float *y, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}


/* Backward of one decoder layer: a->dres holds d loss / d res[l + 1] on entry and
 * d loss / d res[l] on return. */
static void layer_backward(student_model *m, student_acts *a, const student_batch *b, int l) {
    const model_config *c = &m->cfg;
    const int n = b->n, d = c->hidden_size, ff = c->intermediate_size, H = c->num_heads,
              KV = c->num_kv_heads, hd = c->head_dim, qd = H * hd, kvd = KV * hd;
    const student_layer *P = &m->p.layers[l];
    student_layer *G = &m->g.layers[l];
    const student_layer_acts *A = &a->layers[l];
    const float *x = a->res + (size_t)l * n * d;

    /* MLP: y = x2 + down(silu(gate(h2)) * up(h2)), h2 = rmsnorm(x2) */
    matmul_backward(a->dact, G->wd, NULL, a->dres, A->act, P->wd, n, ff, d, 0);
    swiglu_backward(a->dgate, a->dup, a->dact, A->gate, A->up, (size_t)n * ff);
    matmul_backward(a->dh, G->wg, NULL, a->dgate, A->h2, P->wg, n, d, ff, 0);
    matmul_backward(a->dh, G->wu, NULL, a->dup, A->h2, P->wu, n, d, ff, 1);
    rmsnorm_backward(a->dx2, G->mlp_norm, a->dh, A->x2, P->mlp_norm, A->rstd2, n, d);
    add_inplace(a->dx2, a->dres, (size_t)n * d);

    /* Attention: x2 = x + o(attention(rope(q(h1)), rope(k(h1)), v(h1))), h1 = rmsnorm(x) */
    matmul_backward(a->datt, G->wo, NULL, a->dx2, A->att, P->wo, n, qd, d, 0);
    attention_backward(a->dq, a->dk, a->dv, a->datt, A->q, A->k, A->v, A->lse, b->doc_start, n,
                       H, KV, hd);
    rope_backward(a->dq, &m->rope, b->pos, n, H, hd);
    rope_backward(a->dk, &m->rope, b->pos, n, KV, hd);
    matmul_backward(a->dh, G->wq, G->bq, a->dq, A->h1, P->wq, n, d, qd, 0);
    matmul_backward(a->dh, G->wk, G->bk, a->dk, A->h1, P->wk, n, d, kvd, 1);
    matmul_backward(a->dh, G->wv, G->bv, a->dv, A->h1, P->wv, n, d, kvd, 1);
    rmsnorm_backward(a->dres, G->attn_norm, a->dh, x, P->attn_norm, A->rstd1, n, d);
    add_inplace(a->dres, a->dx2, (size_t)n * d);
}

double student_forward_backward(student_model *m, student_acts *a, const student_batch *b,
                                float loss_scale, int64_t *n_loss) {
    const model_config *c = &m->cfg;
    const int n = b->n, d = c->hidden_size, L = c->num_layers;
    student_forward(m, a, b);
    /* Head and loss together, chunk by chunk: d loss / d hf into a->dh, head grads accumulate. */
    double loss = loss_forward_backward(a->dh, m->g.lm_head, a->hf, m->p.lm_head, b->targets, n,
                                        d, c->vocab_size, loss_scale, n_loss);
    rmsnorm_backward(a->dres, m->g.final_norm, a->dh, a->res + (size_t)L * n * d,
                     m->p.final_norm, a->rstdf, n, d);
    for (int l = L - 1; l >= 0; l--) {
        /* With recomputation every layer shares one activation set; refill it from the layer's
         * saved input. The last layer's is still there from the forward pass. */
        if (a->recompute && l < L - 1) student_layer_forward(m, a, b, l);
        layer_backward(m, a, b, l);
    }
    embedding_backward(m->g.embed, a->dres, b->tokens, n, d);
    return loss;
}
