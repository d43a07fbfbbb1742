/* Lists of integers and their nearest-rank percentiles (token lengths in `traces stats` and the
 * curation report). */
#ifndef R1_CORE_STATS_H
#define R1_CORE_STATS_H

#include <stdint.h>

typedef struct {
    int64_t *v;
    int64_t n, cap;
} i64_list;

void i64_list_push(i64_list *l, int64_t x);
void i64_list_sort(i64_list *l);
/* Nearest-rank q-th percentile (0 < q <= 100) of a sorted list; 0 when empty. */
int64_t i64_list_percentile(const i64_list *l, double q);
double i64_list_mean(const i64_list *l);
void i64_list_free(i64_list *l);

#endif
