/* Fuzz target: curation's text filters and hash indexes on arbitrary bytes, with their
 * invariants (shares in [0, 1], a text is an exact and near duplicate of itself once added, a
 * question's own words hit the decontamination index), and the per-record check on the input
 * read as a trace record when it parses as a JSON object. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "distill/curate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *t = (const char *)data;
    int64_t minority;
    double s = text_mixed_script_share(t, size, &minority);
    if (!(s >= 0 && s <= 1) || minority < 0) abort();
    (void)text_has_code_block(t, size, 1 + (size & 3));
    if (text_longest_paragraph(t, size) > (int64_t)size) abort();
    for (int n = 1; n <= 12; n += 11) {
        double r = text_repetition_share(t, size, n);
        if (!(r >= 0 && r <= 1)) abort();
    }
    word_list w = {0};
    words_split(&w, t, size, WORDS_RAW);
    int64_t raw = w.n;
    words_split(&w, t, size, WORDS_FOLD);
    int64_t fold = w.n;
    word_list_free(&w);
    if (raw > (int64_t)size || fold > (int64_t)size) abort();

    exact_index x = {0};
    if (exact_index_check(&x, t, size, 1) || !exact_index_check(&x, t, size, 0)) abort();
    exact_index_free(&x);
    near_index *ni = near_index_create(0.8);
    if (near_index_check(ni, t, size, 1, NULL)) abort();
    if (fold > 0 && !near_index_check(ni, t, size, 0, NULL)) abort();
    near_index_free(ni);
    ngram_index g = {.n = 8};
    ngram_index_add(&g, t, size);
    if (fold > 0 && !ngram_index_hits(&g, t, size)) abort();
    ngram_index_free(&g);

    cJSON *rec = cJSON_ParseWithLength(t, size);
    if (cJSON_IsObject(rec)) {
        curate_config c = {.mixed_script_max = 0.01, .code_min_lines = 3,
                           .max_paragraph_chars = 100, .repeat_ngram = 4, .repeat_max = 0.2,
                           .near_dup = 0.8, .source_field = "source"};
        curate_verdict v;
        if (curate_check(&v, &c, rec, "fuzz") == R1_OK) curate_verdict_free(&v);
        err_clear();
    }
    cJSON_Delete(rec);
    return 0;
}
