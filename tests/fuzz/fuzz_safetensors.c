/* libFuzzer target: the safetensors header parser and validator on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_tensor *ts;
    int n;
    if (st_parse_file(data, size, "fuzz.safetensors", &ts, &n) == R1_OK) {
        /* Every accepted tensor must lie inside the input. */
        for (int i = 0; i < n; i++) {
            const uint8_t *p = ts[i].data;
            CHECK(p >= data && p + ts[i].nbytes <= data + size);
        }
        st_tensors_free(ts, n);
    }
    err_clear();
    return 0;
}
