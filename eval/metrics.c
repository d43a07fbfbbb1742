/* pass@1 and its standard error, unbiased pass@k, majority vote (rules in eval/metrics.h). */
#include "eval/metrics.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"

double pass_at_k(int n, int c, int k) {
    if (n <= 0 || k <= 0 || k > n || c <= 0) return 0.0;
    if (n - c < k) return 1.0;
    double prod = 1.0; /* C(n-c, k) / C(n, k) */
    for (int i = n - c + 1; i <= n; i++) prod *= 1.0 - (double)k / (double)i;
    return 1.0 - prod;
}

void pass1_mean_stderr(const int *correct, int q, int n, double *mean, double *stderr_out) {
    *mean = 0;
    *stderr_out = 0;
    if (q <= 0 || n <= 0) return;
    double sum = 0;
    for (int i = 0; i < q; i++) sum += (double)correct[i] / n;
    const double m = sum / q;
    double ss = 0;
    for (int i = 0; i < q; i++) {
        double d = (double)correct[i] / n - m;
        ss += d * d;
    }
    *mean = m;
    *stderr_out = q > 1 ? sqrt(ss / (q - 1) / q) : 0.0;
}

int cons_vote(const char *const *answers, int n, answer_kind kind, int *votes) {
    int *first = xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1)); /* group -> its first answer */
    int *size = xcalloc((size_t)(n > 0 ? n : 1), sizeof(int));
    int groups = 0;
    for (int i = 0; i < n; i++) {
        if (!answers[i]) continue;
        int g = 0;
        while (g < groups && !answer_equiv(answers[i], answers[first[g]], kind)) g++;
        if (g == groups) first[groups++] = i;
        size[g]++;
    }
    int best = -1;
    for (int g = 0; g < groups; g++) /* groups are in order of their first answer */
        if (best < 0 || size[g] > size[best]) best = g;
    int winner = best < 0 ? -1 : first[best];
    if (votes) *votes = best < 0 ? 0 : size[best];
    free(first);
    free(size);
    return winner;
}
