/* Linear head + cross-entropy, chunked so the [tokens, vocab] logits never exist at once.
 *
 * transformers' ForCausalLMLoss with reduction "sum" over the positions whose target is set;
 * the trainer divides by the step's loss-token count through `scale`. Only rows that have a
 * target reach the head at all: in SFT most prompt positions have none. For each chunk:
 *
 *   logits = x_c W^T                         [c, V]
 *   loss_r = logsumexp(logits_r) - logits_r[target_r]
 *   dlogits = scale * (softmax(logits) - onehot(target))   (in place of the logits)
 *   dx_c = dlogits W,  dW += dlogits^T x_c                 (only when gradients are wanted) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "student/student.h"

int loss_chunk_rows(int64_t V) {
    int64_t rows = ((int64_t)32 << 20) / (4 * V);
    return rows < 1 ? 1 : rows > 1024 ? 1024 : (int)rows;
}

double loss_forward_backward(float *dx, float *dw, const float *x, const float *w,
                             const int *targets, int n, int d, int64_t V, float scale,
                             int64_t *n_loss) {
    int *rows = xmalloc(sizeof(int) * (size_t)n), count = 0;
    for (int i = 0; i < n; i++)
        if (targets[i] >= 0) rows[count++] = i;
    *n_loss = count;
    if (dx) memset(dx, 0, sizeof(float) * (size_t)n * d);
    const int C = loss_chunk_rows(V);
    float *logits = xmalloc(sizeof(float) * (size_t)C * (size_t)V);
    float *xc = xmalloc(sizeof(float) * (size_t)C * d);
    float *dxc = dx ? xmalloc(sizeof(float) * (size_t)C * d) : NULL;
    double *row_loss = xmalloc(sizeof(double) * (size_t)C);
    double total = 0;
    for (int c0 = 0; c0 < count; c0 += C) {
        const int c = count - c0 < C ? count - c0 : C;
        for (int r = 0; r < c; r++)
            memcpy(xc + (size_t)r * d, x + (size_t)rows[c0 + r] * d, sizeof(float) * (size_t)d);
        gemm(0, 1, c, (int)V, d, 1.0f, xc, d, w, d, 0.0f, logits, (int)V);
#pragma omp parallel for schedule(static) if ((size_t)c * V >= PAR_MIN_WORK)
        for (int r = 0; r < c; r++) {
            float *lr = logits + (size_t)r * V;
            const int t = targets[rows[c0 + r]];
            float mx = lr[0];
            for (int64_t j = 1; j < V; j++)
                if (lr[j] > mx) mx = lr[j];
            double sum = 0;
            for (int64_t j = 0; j < V; j++) sum += expf(lr[j] - mx);
            const double lse = mx + log(sum);
            row_loss[r] = lse - lr[t];
            if (dx) {
                const float flse = (float)lse;
                for (int64_t j = 0; j < V; j++) lr[j] = expf(lr[j] - flse) * scale;
                lr[t] -= scale;
            }
        }
        for (int r = 0; r < c; r++) total += row_loss[r];
        if (!dx) continue;
        gemm(0, 0, c, d, (int)V, 1.0f, logits, (int)V, w, d, 0.0f, dxc, d);
        for (int r = 0; r < c; r++)
            memcpy(dx + (size_t)rows[c0 + r] * d, dxc + (size_t)r * d, sizeof(float) * (size_t)d);
        gemm(1, 0, (int)V, d, c, 1.0f, logits, (int)V, xc, d, 1.0f, dw, d);
    }
    free(rows);
    free(logits);
    free(xc);
    free(dxc);
    free(row_loss);
    return total;
}
