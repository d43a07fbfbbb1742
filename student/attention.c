/* Grouped-query causal attention with document masking.
 *
 * Token i of the flat batch attends to tokens doc_start[i]..i (its own document, up to itself):
 * the same as running each document alone with transformers' causal mask, which is how the
 * reference fixtures compute it. Query head h reads key/value head h / (H / KV)
 * (repeat_kv). Scores are scaled by 1/sqrt(hd) (Qwen2Attention.scaling).
 *
 * The forward pass keeps only the log-sum-exp of each row; the backward pass recomputes the
 * probabilities from it (as flash attention does), so no [T, T] matrix is stored. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "student/student.h"

/* Dot product in a fixed order: 8 interleaved partial sums and a fixed tree (vectorises, and
 * never depends on anything but the two vectors). */
static inline float dot8(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[j + k] * b[j + k];
    for (; j < n; j++) acc[j & 7] += a[j] * b[j];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static inline void axpy(float *y, float a, const float *x, int n) {
    for (int j = 0; j < n; j++) y[j] += a * x[j];
}

void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                       const int *doc_start, int n, int H, int KV, int hd) {
    const int group = H / KV;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel if ((size_t)n * H * hd >= PAR_MIN_WORK / 8)
    {
        float *s = xmalloc(sizeof(float) * (size_t)n);
#pragma omp for collapse(2) schedule(dynamic, 4)
        for (int i = 0; i < n; i++)
            for (int h = 0; h < H; h++) {
                const int st = doc_start[i], len = i - st + 1, g = h / group;
                const float *qi = q + ((size_t)i * H + h) * hd;
                float mx = -INFINITY;
                for (int t = 0; t < len; t++) {
                    s[t] = dot8(qi, k + ((size_t)(st + t) * KV + g) * hd, hd) * scale;
                    if (s[t] > mx) mx = s[t];
                }
                float sum = 0.0f;
                for (int t = 0; t < len; t++) {
                    s[t] = expf(s[t] - mx);
                    sum += s[t];
                }
                float *o = out + ((size_t)i * H + h) * hd;
                memset(o, 0, sizeof(float) * (size_t)hd);
                const float inv = 1.0f / sum;
                for (int t = 0; t < len; t++)
                    axpy(o, s[t] * inv, v + ((size_t)(st + t) * KV + g) * hd, hd);
                lse[(size_t)i * H + h] = mx + logf(sum);
            }
        free(s);
    }
}

/* With p_t = exp(s_t - lse), s_t = scale q.k_t and o = sum_t p_t v_t:
 *   dv_t += p_t do
 *   dp_t  = do . v_t,  ds_t = p_t (dp_t - sum_u p_u dp_u)
 *   dq   += scale sum_t ds_t k_t,  dk_t += scale ds_t q
 * Work is split by (document, KV head): every dk/dv row and every dq row is written by one
 * thread, in a fixed order. */
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                        const float *k, const float *v, const float *lse, const int *doc_start,
                        int n, int H, int KV, int hd) {
    const int group = H / KV;
    const float scale = 1.0f / sqrtf((float)hd);
    memset(dq, 0, sizeof(float) * (size_t)n * H * hd);
    memset(dk, 0, sizeof(float) * (size_t)n * KV * hd);
    memset(dv, 0, sizeof(float) * (size_t)n * KV * hd);
    int *seg = xmalloc(sizeof(int) * (size_t)(n + 1)), n_seg = 0;
    for (int i = 0; i < n; i++)
        if (doc_start[i] == i) seg[n_seg++] = i;
    seg[n_seg] = n;
#pragma omp parallel if ((size_t)n * H * hd >= PAR_MIN_WORK / 8)
    {
        float *p = xmalloc(sizeof(float) * (size_t)n), *dp = xmalloc(sizeof(float) * (size_t)n);
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int sidx = 0; sidx < n_seg; sidx++)
            for (int g = 0; g < KV; g++) {
                const int st = seg[sidx], end = seg[sidx + 1];
                for (int i = st; i < end; i++)
                    for (int h = g * group; h < (g + 1) * group; h++) {
                        const int len = i - st + 1;
                        const float *qi = q + ((size_t)i * H + h) * hd;
                        const float *doi = dout + ((size_t)i * H + h) * hd;
                        float *dqi = dq + ((size_t)i * H + h) * hd;
                        const float l = lse[(size_t)i * H + h];
                        float D = 0.0f;
                        for (int t = 0; t < len; t++) {
                            const size_t kv = ((size_t)(st + t) * KV + g) * hd;
                            p[t] = expf(dot8(qi, k + kv, hd) * scale - l);
                            dp[t] = dot8(doi, v + kv, hd);
                            D += p[t] * dp[t];
                        }
                        for (int t = 0; t < len; t++) {
                            const size_t kv = ((size_t)(st + t) * KV + g) * hd;
                            const float ds = p[t] * (dp[t] - D) * scale;
                            axpy(dqi, ds, k + kv, hd);
                            axpy(dk + kv, ds, qi, hd);
                            axpy(dv + kv, p[t], doi, hd);
                        }
                    }
            }
        free(p);
        free(dp);
    }
    free(seg);
}
