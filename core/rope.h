/* Rotary position embeddings: frequencies for the default, llama3 and yarn variants, and their
 * application in the two layouts models use.
 *
 *   ROPE_PAIRS_HALF        x[i] pairs with x[i + d/2]  (rotate_half: Qwen2, Llama in HF layout)
 *   ROPE_PAIRS_INTERLEAVED x[2i] pairs with x[2i + 1]  (DeepSeek-V3's view_as_complex)
 *
 * Frequencies follow transformers' modeling_rope_utils computed in float32, so cos/sin match
 * the reference bit for bit up to the libm's last-place rounding. */
#ifndef R1_CORE_ROPE_H
#define R1_CORE_ROPE_H

#include "core/config.h"

typedef enum { ROPE_PAIRS_HALF, ROPE_PAIRS_INTERLEAVED } rope_layout;

typedef struct {
    int dim;               /* rotated dimensions (even) */
    float *inv_freq;       /* dim/2 frequencies */
    float attn_factor;     /* yarn's cos/sin multiplier (1 for default and llama3) */
    rope_layout layout;
} rope_table;

/* Frequencies for `dim` rotated dimensions of a head. */
void rope_init(rope_table *r, const rope_config *cfg, int dim, rope_layout layout);
void rope_free(rope_table *r);

/* Rotates n_heads vectors of length head_stride, starting each at offset `off` inside the head
 * and rotating r->dim values there, for one token at position pos. */
void rope_apply(const rope_table *r, float *x, int n_heads, int head_stride, int off, int pos);
/* The inverse rotation (the backward of rope_apply: its transpose). */
void rope_apply_inverse(const rope_table *r, float *x, int n_heads, int head_stride, int off,
                        int pos);

/* YaRN's attention-magnitude correction 0.1 * m * ln(scale) + 1 (1 when scale <= 1). */
double yarn_get_mscale(double scale, double m);

#endif
