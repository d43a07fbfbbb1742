/* Fuzz target: answer extraction and equivalence on arbitrary text. The input is split at the
 * first NUL into a response and a gold answer; both orders and both answer kinds are run. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 2);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    buf[size + 1] = 0;
    const char *response = buf;
    size_t first = strlen(buf);
    const char *gold = first < size ? buf + first + 1 : "";
    answer_verdict v;
    answer_verify(&v, response, gold);
    answer_verdict_free(&v);
    /* equivalence is symmetric and reflexive on anything */
    int ab = answer_equiv(response, gold, ANSWER_MATH);
    int ba = answer_equiv(gold, response, ANSWER_MATH);
    if (ab != ba) abort();
    (void)answer_equiv(response, gold, ANSWER_CHOICE);
    char *out = NULL;
    if (answer_extract(&out, response, ANSWER_MATH) && !out) abort();
    free(out);
    free(buf);
    return 0;
}
