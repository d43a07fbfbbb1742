/* Loading reference fixtures made by the scripts in tests/ref: ref.json ({"tokens", "shape", "argmax"})
 * and logits.f32 (float32 little-endian [T, V]). Tests run from the checkout root. */
#ifndef R1_TESTS_FIXTURE_H
#define R1_TESTS_FIXTURE_H

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"

typedef struct {
    int *tokens;
    int n;        /* T */
    long vocab;   /* V */
    int *argmax;  /* [T] */
    float *logits; /* [T, V] */
} ref_logits;

static inline int *fixture_int_array(const cJSON *arr, int *n) {
    *n = cJSON_GetArraySize(arr);
    int *v = (int *)xmalloc(sizeof(int) * (size_t)(*n ? *n : 1));
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) v[i++] = (int)it->valuedouble;
    return v;
}

/* Loads dir/ref.json and dir/logits.f32; exits the test binary on a missing fixture. */
static inline ref_logits fixture_load(const char *dir) {
    ref_logits r = {0};
    char *p = path_join(dir, "ref.json");
    cJSON *root;
    if (json_parse_file(&root, p, 1 << 24)) {
        err_print();
        exit(1);
    }
    free(p);
    r.tokens = fixture_int_array(cJSON_GetObjectItem(root, "tokens"), &r.n);
    int na;
    r.argmax = fixture_int_array(cJSON_GetObjectItem(root, "argmax"), &na);
    r.vocab = (long)cJSON_GetArrayItem(cJSON_GetObjectItem(root, "shape"), 1)->valuedouble;
    cJSON_Delete(root);
    p = path_join(dir, "logits.f32");
    char *data;
    size_t len;
    if (file_read_all(p, 1u << 30, &data, &len) || len != sizeof(float) * (size_t)r.n * r.vocab) {
        fprintf(stderr, "bad fixture %s\n", p);
        exit(1);
    }
    free(p);
    r.logits = (float *)data;
    return r;
}

static inline void fixture_free(ref_logits *r) {
    free(r->tokens);
    free(r->argmax);
    free(r->logits);
}

static inline int argmax_f32(const float *v, long n) {
    int best = 0;
    for (long i = 1; i < n; i++)
        if (v[i] > v[best]) best = (int)i;
    return best;
}

#endif
