/* Token choice and top-K log-probabilities; the algorithm is specified in sampler.h. */
#include "teacher/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/hash.h"

int sampler_params_check(const sampler_params *p) {
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return err_fail(R1_EINPUT, "--temperature", "must be a number >= 0 (0 is greedy), not %g",
                        p->temperature);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return err_fail(R1_EINPUT, "--top-p", "must be in (0, 1] (1 turns it off), not %g",
                        p->top_p);
    if (p->top_k < 0)
        return err_fail(R1_EINPUT, "--top-k", "must be >= 0 (0 turns it off), not %d", p->top_k);
    return R1_OK;
}

uint64_t sampler_stream(const char *prompt_id, size_t len) { return hash_fnv1a64(prompt_id, len); }

double sampler_uniform(uint64_t seed, uint64_t stream, uint64_t sample, uint64_t step) {
    uint64_t h = hash_mix64(seed + HASH_GOLDEN64);
    h = hash_mix64(h ^ stream);
    h = hash_mix64(h ^ sample);
    h = hash_mix64(h ^ step);
    return (double)(h >> 11) * 0x1.0p-53;
}

void sampler_work_init(sampler_work *ws, int vocab) {
    ws->vocab = vocab;
    ws->w = xmalloc(sizeof(double) * (size_t)vocab);
    ws->order = xmalloc(sizeof(int) * (size_t)vocab);
    ws->tmp = xmalloc(sizeof(int) * (size_t)vocab);
}

void sampler_work_free(sampler_work *ws) {
    free(ws->w);
    free(ws->order);
    free(ws->tmp);
    memset(ws, 0, sizeof *ws);
}

/* The order of step 2: larger logit first, lower id first among equals. */
static int by_logit_desc(const void *a, const void *b, void *ctx) {
    const float *l = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (l[i] > l[j]) return -1;
    if (l[i] < l[j]) return 1;
    return (i > j) - (i < j);
}

static int by_id(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    return (i > j) - (i < j);
}

static int argmax(const float *l, int vocab) {
    int best = 0;
    for (int i = 1; i < vocab; i++)
        if (l[i] > l[best]) best = i;
    return best;
}

int sampler_pick(const sampler_params *p, const float *l, int vocab, double u, sampler_work *ws) {
    CHECK(ws->vocab >= vocab && vocab > 0);
    if (p->temperature == 0) return argmax(l, vocab);
    const double T = p->temperature;
    const double zmax = (double)l[argmax(l, vocab)] / T;
    double *w = ws->w;
    double W = 0; /* all ids, ascending id order */
    for (int i = 0; i < vocab; i++) {
        w[i] = exp((double)l[i] / T - zmax);
        W += w[i];
    }
    const int k = p->top_k > 0 && p->top_k < vocab ? p->top_k : 0;
    const int use_p = p->top_p < 1;

    /* Candidates: every id with w >= thr. They form a prefix of the order (w is monotone in the
     * logit); lower thr until the prefix surely holds every id steps 4-5 can keep. */
    int nc = 0;
    double thr = (k || use_p) ? 1e-4 : 0;
    for (;;) {
        double sum = 0;
        nc = 0;
        for (int i = 0; i < vocab; i++)
            if (w[i] >= thr) {
                ws->order[nc++] = i;
                sum += w[i];
            }
        if (thr == 0 || nc == vocab) break;
        if (k ? nc >= k : sum >= p->top_p * W * (1 + 1e-9)) break;
        thr = thr > 1e-290 ? thr * 1e-6 : 0;
    }
    qsort_r(ws->order, (size_t)nc, sizeof(int), by_logit_desc, (void *)l);

    int n = k && k < nc ? k : nc; /* step 4 */
    if (use_p) {                  /* step 5 */
        double Wk = W;
        if (k) {
            memcpy(ws->tmp, ws->order, sizeof(int) * (size_t)n);
            qsort(ws->tmp, (size_t)n, sizeof(int), by_id);
            Wk = 0;
            for (int j = 0; j < n; j++) Wk += w[ws->tmp[j]];
        }
        const double limit = p->top_p * Wk;
        double c = 0;
        int keep = 0;
        for (int j = 0; j < n; j++) {
            if (j > 0 && !(c < limit)) break;
            c += w[ws->order[j]];
            keep++;
        }
        n = keep;
    }
    double S = 0; /* step 6 */
    for (int j = 0; j < n; j++) S += w[ws->order[j]];
    const double t = u * S;
    double c = 0;
    for (int j = 0; j < n; j++) {
        c += w[ws->order[j]];
        if (t < c) return ws->order[j];
    }
    return ws->order[n - 1];
}

/* True if (la, a) ranks below (lb, b): smaller logit, or equal logit and larger id. */
static int ranks_below(float la, int a, float lb, int b) { return la < lb || (la == lb && a > b); }

void sampler_logprobs(const float *l, int vocab, int k, int chosen, int *ids, float *lp,
                      float *chosen_lp, sampler_work *ws) {
    CHECK(k >= 1 && k <= vocab && chosen >= 0 && chosen < vocab);
    const double lmax = (double)l[argmax(l, vocab)];
    double s = 0;
    for (int i = 0; i < vocab; i++) s += exp((double)l[i] - lmax);
    const double lse = lmax + log(s);
    /* Top k by a min-heap on (logit, id): heap[0] ranks lowest. */
    int *heap = ws->tmp, nh = 0;
    for (int i = 0; i < vocab; i++) {
        if (nh == k && !ranks_below(l[heap[0]], heap[0], l[i], i)) continue;
        int pos;
        if (nh < k) {
            pos = nh++;
            while (pos > 0) { /* sift up */
                int parent = (pos - 1) / 2;
                if (!ranks_below(l[i], i, l[heap[parent]], heap[parent])) break;
                heap[pos] = heap[parent];
                pos = parent;
            }
        } else {
            pos = 0;
            for (;;) { /* sift down from the root */
                int c = 2 * pos + 1;
                if (c >= nh) break;
                if (c + 1 < nh && ranks_below(l[heap[c + 1]], heap[c + 1], l[heap[c]], heap[c])) c++;
                if (!ranks_below(l[heap[c]], heap[c], l[i], i)) break;
                heap[pos] = heap[c];
                pos = c;
            }
        }
        heap[pos] = i;
    }
    memcpy(ids, heap, sizeof(int) * (size_t)k);
    qsort_r(ids, (size_t)k, sizeof(int), by_logit_desc, (void *)l);
    for (int j = 0; j < k; j++) lp[j] = (float)((double)l[ids[j]] - lse);
    *chosen_lp = (float)((double)l[chosen] - lse);
}
