#include "core/stats.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"

void i64_list_push(i64_list *l, int64_t x) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->v = xrealloc(l->v, sizeof(int64_t) * (size_t)l->cap);
    }
    l->v[l->n++] = x;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void i64_list_sort(i64_list *l) {
    if (l->n > 1) qsort(l->v, (size_t)l->n, sizeof *l->v, cmp_i64);
}

int64_t i64_list_percentile(const i64_list *l, double q) {
    if (l->n == 0) return 0;
    int64_t r = (int64_t)ceil(q / 100.0 * (double)l->n);
    if (r < 1) r = 1;
    return l->v[r - 1];
}

double i64_list_mean(const i64_list *l) {
    double sum = 0;
    for (int64_t i = 0; i < l->n; i++) sum += (double)l->v[i];
    return l->n ? sum / (double)l->n : 0;
}

void i64_list_free(i64_list *l) {
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}
