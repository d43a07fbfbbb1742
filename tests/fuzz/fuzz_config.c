/* libFuzzer target: config.json parsing into a model description. */
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "teacher/teacher.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    model_config c;
    if (model_config_parse(&c, (const char *)data, size, "config.json") == R1_OK) {
        /* Accepted configs satisfy the invariants model code relies on. */
        CHECK(c.hidden_size > 0 && c.num_layers > 0 && c.num_heads > 0 && c.num_kv_heads > 0);
        CHECK(c.num_heads % c.num_kv_heads == 0);
        /* inspect's arithmetic on any accepted config: no overflow (UBSan), sane results */
        model_size s;
        model_size_from_config(&s, &c);
        CHECK(s.overflow || (s.params_active <= s.params_total && s.params_active > 0));
        if (c.arch == ARCH_DEEPSEEK_V3 && c.n_routed_experts > 0) {
            /* the router's preconditions (teacher/moe_router.c CHECKs them) */
            CHECK(c.n_routed_experts % c.n_group == 0 && c.topk_group <= c.n_group);
            CHECK(c.num_experts_per_tok <= c.topk_group * (c.n_routed_experts / c.n_group));
        }
    }
    err_clear();
    return 0;
}
