/* libFuzzer target: config.json parsing into a model description. */
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    model_config c;
    if (model_config_parse(&c, (const char *)data, size, "config.json") == R1_OK) {
        /* Accepted configs satisfy the invariants model code relies on. */
        CHECK(c.hidden_size > 0 && c.num_layers > 0 && c.num_heads > 0 && c.num_kv_heads > 0);
        CHECK(c.num_heads % c.num_kv_heads == 0);
    }
    err_clear();
    return 0;
}
