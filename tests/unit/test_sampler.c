/* Sampler: the random stream, greedy ties, the statistical fit of many draws to the truncated
 * softmax, equality with a plain full-sort reference, and top-K log-probabilities. */
#include "core/error.h"
#include "core/hash.h"
#include "teacher/sampler.h"
#include "tests/unit/testing.h"

static void test_stream_vectors(void) {
    /* splitmix64's published first output for seed 0. */
    EXPECT(hash_mix64(0x9e3779b97f4a7c15ull) == 0xe220a8397b1dcdafull);
    EXPECT(hash_fnv1a64("", 0) == 0xcbf29ce484222325ull);
    EXPECT(hash_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cull);
    double u = sampler_uniform(1, 2, 3, 4);
    EXPECT(u == sampler_uniform(1, 2, 3, 4));
    EXPECT(u != sampler_uniform(1, 2, 3, 5));
    EXPECT(u != sampler_uniform(1, 2, 4, 4));
    EXPECT(u != sampler_uniform(1, 3, 3, 4));
    EXPECT(u != sampler_uniform(2, 2, 3, 4));
    /* Moments of the uniform over many steps: mean 1/2, variance 1/12 (5 sigma bounds). */
    const int n = 200000;
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        double x = sampler_uniform(7, sampler_stream("p", 1), 0, (uint64_t)i);
        EXPECT(x >= 0 && x < 1);
        s += x;
        s2 += x * x;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    EXPECT_NEAR(mean, 0.5, 5 * sqrt(1.0 / 12 / n));
    EXPECT_NEAR(var, 1.0 / 12, 5 * sqrt(1.0 / 180 / n));
}

static void test_greedy(void) {
    const float l[6] = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f, 3.0f};
    sampler_work ws;
    sampler_work_init(&ws, 6);
    sampler_params g = {.temperature = 0, .top_p = 1, .top_k = 0};
    EXPECT_EQ_INT(sampler_pick(&g, l, 6, 0.99, &ws), 1); /* lowest id among equal maxima */
    /* top-k 1 at any temperature keeps only the first of the order: the same id. */
    sampler_params k1 = {.temperature = 1.0, .top_p = 1, .top_k = 1};
    for (int i = 0; i < 20; i++) EXPECT_EQ_INT(sampler_pick(&k1, l, 6, i / 20.0, &ws), 1);
    sampler_work_free(&ws);
}

/* The exact distribution after temperature, top-k and top-p, in long double, by full sort. */
static void expected_probs(const float *l, int V, const sampler_params *p, long double *prob) {
    int order[64];
    for (int i = 0; i < V; i++) order[i] = i;
    for (int i = 1; i < V; i++) /* insertion sort: logit desc, id asc */
        for (int j = i; j > 0 && (l[order[j]] > l[order[j - 1]] ||
                                  (l[order[j]] == l[order[j - 1]] && order[j] < order[j - 1]));
             j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    long double w[64], W = 0;
    for (int i = 0; i < V; i++) w[i] = expl((long double)l[i] / p->temperature);
    int n = p->top_k > 0 && p->top_k < V ? p->top_k : V;
    for (int j = 0; j < n; j++) W += w[order[j]];
    int keep = n;
    if (p->top_p < 1) {
        long double c = 0;
        keep = 0;
        for (int j = 0; j < n; j++) {
            if (j > 0 && c >= p->top_p * W) break;
            c += w[order[j]];
            keep++;
        }
    }
    long double S = 0;
    for (int j = 0; j < keep; j++) S += w[order[j]];
    for (int i = 0; i < V; i++) prob[i] = 0;
    for (int j = 0; j < keep; j++) prob[order[j]] = w[order[j]] / S;
}

/* Upper 1e-6 tail of chi-square with df degrees of freedom (Wilson-Hilferty, z = 4.753). */
static double chi2_crit(int df) {
    double a = 2.0 / (9.0 * df);
    double c = 1 - a + 4.753 * sqrt(a);
    return df * c * c * c;
}

static void check_fit(const float *l, int V, sampler_params p, uint64_t seed) {
    enum { DRAWS = 200000 };
    long double prob[64];
    expected_probs(l, V, &p, prob);
    long counts[64] = {0};
    sampler_work ws;
    sampler_work_init(&ws, V);
    uint64_t stream = sampler_stream("statistical", 11);
    for (int i = 0; i < DRAWS; i++) {
        int t = sampler_pick(&p, l, V, sampler_uniform(seed, stream, 0, (uint64_t)i), &ws);
        CHECK(t >= 0 && t < V);
        counts[t]++;
    }
    sampler_work_free(&ws);
    double chi2 = 0, max_z = 0;
    int df = -1;
    for (int i = 0; i < V; i++) {
        if (prob[i] == 0) {
            EXPECT_MSG(counts[i] == 0, "T=%g k=%d p=%g: truncated id %d drawn %ld times",
                       p.temperature, p.top_k, p.top_p, i, counts[i]);
            continue;
        }
        df++;
        double e = (double)(prob[i] * DRAWS);
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
        double z = fabs(counts[i] - e) / sqrt(e * (1 - (double)prob[i]));
        if (z > max_z) max_z = z;
    }
    /* Tolerance: chi-square below its 1e-6 upper quantile, and no single frequency more than
     * 5.5 standard deviations from its expectation. The draws are deterministic, so this
     * either always passes or always fails. */
    if (df > 0) {
        EXPECT_MSG(chi2 < chi2_crit(df), "T=%g k=%d p=%g: chi2 %.2f >= %.2f (df %d)",
                   p.temperature, p.top_k, p.top_p, chi2, chi2_crit(df), df);
        EXPECT_MSG(max_z < 5.5, "T=%g k=%d p=%g: max deviation %.2f sigma", p.temperature,
                   p.top_k, p.top_p, max_z);
    }
    fprintf(stderr, "    T=%.2f top_k=%d top_p=%.2f: %d kept, chi2 %.2f (df %d, limit %.2f), "
                    "max %.2f sigma\n",
            p.temperature, p.top_k, p.top_p, df + 1, chi2, df, chi2_crit(df > 0 ? df : 1), max_z);
}

static void test_statistical_fit(void) {
    const float l[12] = {2.0f, 1.5f, 1.5f, 1.0f, 0.3f, 0.0f, -0.5f, -1.0f, -3.0f, 0.3f, 1.9f, -7.0f};
    const sampler_params cases[] = {
        {1.0, 1.0, 0},   {0.7, 1.0, 0},  {0.6, 0.95, 0}, {1.0, 1.0, 5},
        {1.3, 0.8, 6},   {0.6, 0.5, 0},  {2.0, 0.9, 3},  {1.0, 0.999, 11},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_fit(l, 12, cases[i], 42 + i);
}

/* The same steps as sampler.h describes, by full sort of the whole vocabulary. */
static int reference_pick(const sampler_params *p, const float *l, int V, double u, int *order,
                          double *w) {
    for (int i = 0; i < V; i++) order[i] = i;
    double lmax = l[0];
    for (int i = 1; i < V; i++)
        if (l[i] > lmax) lmax = l[i];
    double zmax = lmax / p->temperature, W = 0;
    for (int i = 0; i < V; i++) {
        w[i] = exp((double)l[i] / p->temperature - zmax);
        W += w[i];
    }
    /* shell sort by (logit desc, id asc) */
    for (int gap = V / 2; gap > 0; gap /= 2)
        for (int i = gap; i < V; i++)
            for (int j = i; j >= gap; j -= gap) {
                int a = order[j - gap], b = order[j];
                if (l[a] > l[b] || (l[a] == l[b] && a < b)) break;
                order[j - gap] = b;
                order[j] = a;
            }
    int n = p->top_k > 0 && p->top_k < V ? p->top_k : V;
    if (p->top_p < 1) {
        double Wk = W;
        if (n < V) { /* ascending id order over the top-k set */
            static char in[4096];
            CHECK(V <= 4096);
            memset(in, 0, (size_t)V);
            for (int j = 0; j < n; j++) in[order[j]] = 1;
            Wk = 0;
            for (int i = 0; i < V; i++)
                if (in[i]) Wk += w[i];
        }
        double c = 0;
        int keep = 0;
        for (int j = 0; j < n; j++) {
            if (j > 0 && !(c < p->top_p * Wk)) break;
            c += w[order[j]];
            keep++;
        }
        n = keep;
    }
    double S = 0, c = 0;
    for (int j = 0; j < n; j++) S += w[order[j]];
    for (int j = 0; j < n; j++) {
        c += w[order[j]];
        if (u * S < c) return order[j];
    }
    return order[n - 1];
}

static void test_matches_full_sort(void) {
    enum { V = 3000 };
    static float l[V];
    static int order[V];
    static double w[V];
    sampler_work ws;
    sampler_work_init(&ws, V);
    const sampler_params cases[] = {{0.6, 0.95, 0}, {1.0, 1.0, 40}, {0.8, 0.9, 200},
                                    {1.0, 1.0, 0},  {3.0, 0.99, 0}, {0.3, 0.7, 2999}};
    int mismatches = 0, draws = 0;
    for (int rep = 0; rep < 4; rep++) {
        for (int i = 0; i < V; i++) { /* spread logits, with repeated values to exercise ties */
            double x = sampler_uniform(99, (uint64_t)rep, 0, (uint64_t)i);
            l[i] = (float)(int)(x * 400) / 40.0f - 5.0f;
        }
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
            for (int d = 0; d < 60; d++) {
                double u = sampler_uniform(5, c, (uint64_t)rep, (uint64_t)d);
                int a = sampler_pick(&cases[c], l, V, u, &ws);
                int b = reference_pick(&cases[c], l, V, u, order, w);
                mismatches += a != b;
                draws++;
            }
    }
    EXPECT_MSG(mismatches == 0, "%d of %d draws differ from the full-sort reference", mismatches,
               draws);
    sampler_work_free(&ws);
}

static void test_logprobs(void) {
    const float l[8] = {1.0f, 4.0f, -2.0f, 4.0f, 0.5f, 3.0f, -9.0f, 2.0f};
    sampler_work ws;
    sampler_work_init(&ws, 8);
    int ids[4];
    float lp[4], chosen;
    sampler_logprobs(l, 8, 4, 6, ids, lp, &chosen, &ws);
    EXPECT_EQ_INT(ids[0], 1); /* ties: lower id first */
    EXPECT_EQ_INT(ids[1], 3);
    EXPECT_EQ_INT(ids[2], 5);
    EXPECT_EQ_INT(ids[3], 7);
    double z = 0;
    for (int i = 0; i < 8; i++) z += exp(l[i]);
    EXPECT_NEAR(lp[0], 4.0 - log(z), 1e-6);
    EXPECT_NEAR(lp[2], 3.0 - log(z), 1e-6);
    EXPECT_NEAR(chosen, -9.0 - log(z), 1e-5);
    int all_ids[8];
    float all_lp[8];
    sampler_logprobs(l, 8, 8, 0, all_ids, all_lp, &chosen, &ws);
    double total = 0;
    for (int i = 0; i < 8; i++) total += exp(all_lp[i]);
    EXPECT_NEAR(total, 1.0, 1e-6);
    for (int i = 1; i < 8; i++) EXPECT(all_lp[i] <= all_lp[i - 1]);
    EXPECT_EQ_INT(all_ids[7], 6);
    sampler_work_free(&ws);
}

int main(void) {
    RUN(test_stream_vectors);
    RUN(test_greedy);
    RUN(test_statistical_fit);
    RUN(test_matches_full_sort);
    RUN(test_logprobs);
    TESTS_DONE();
}
