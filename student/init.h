/* Fresh models: random initialisation of a dense Qwen2/Llama checkpoint from a config, as
 * transformers' _init_weights does (normal(0, initializer_range) for projections and embeddings,
 * ones for RMSNorm weights, zeros for biases). Used for students trained from scratch (the demo)
 * and for test and benchmark models. */
#ifndef R1_STUDENT_INIT_H
#define R1_STUDENT_INIT_H

#include <stdint.h>

#include "core/config.h"
#include "core/dtype.h"

/* Writes dir/model.safetensors (in `dt`) for config c; deterministic in seed. */
int init_model_weights(const char *dir, const model_config *c, double stddev, uint64_t seed, dtype dt);

int cmd_init(int argc, char **argv);

#endif
