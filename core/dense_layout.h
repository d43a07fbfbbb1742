/* The tensors of a dense Qwen2 / Llama checkpoint: Hugging Face names, shapes and roles, in the
 * order transformers saves them. One list serves every stage that writes or walks a checkpoint
 * (init, checkpoints, export). */
#ifndef R1_CORE_DENSE_LAYOUT_H
#define R1_CORE_DENSE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

typedef enum {
    TENSOR_EMBED,     /* model.embed_tokens.weight [vocab, d] */
    TENSOR_NORM,      /* RMSNorm weights [d] */
    TENSOR_LINEAR,    /* projection weights [out, in] */
    TENSOR_BIAS,      /* q/k/v biases [out] */
    TENSOR_HEAD,      /* lm_head.weight [vocab, d] (absent when tied) */
} tensor_role;

typedef struct {
    char name[96];
    tensor_role role;
    int layer;       /* -1 for global tensors */
    int ndim;
    int64_t shape[2];
} dense_tensor;

/* The number of values in t. */
static inline size_t dense_numel(const dense_tensor *t) {
    return (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1);
}

/* Lists the checkpoint's tensors; *n is set; the caller frees. R1_EINPUT for a non-dense
 * architecture. */
int dense_layout(const model_config *c, dense_tensor **out, int *n);

#endif
