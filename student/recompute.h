/* What the training step recomputes in the backward instead of keeping from the forward
 * (train --recompute, --recompute-cheap; the recipes' recompute, recompute_cheap; plan).
 *
 * NONE keeps every layer's activations. ALL keeps each layer's input only and re-runs the layer's
 * forward inside the backward (a third more matrix-product work). CHEAP, on the GPU, keeps each
 * layer's matrix-product and attention outputs (qkv, attention, the residual after attention,
 * gate/up) and recomputes only what the two RMSNorms and SwiGLU make of them: a few memory-bound
 * passes, no product, about 2/3 of NONE's activation memory; the CPU trainer recomputes all with
 * it. KEEP_ATTN, on the GPU, is ALL that also keeps each layer's attention output and its
 * log-sum-exp (2 H hd + 4 H bytes a token, as much again as the layer's input for Qwen and Llama
 * shapes): the backward re-runs the layer's products, norms and SwiGLU but not the attention,
 * which at 32k tokens is 40% of a 7B layer's forward. The modes give bit-identical results (the
 * same kernels on the same inputs), so AUTO (train given neither flag) may choose freely: on a
 * GPU the first of NONE, CHEAP, KEEP_ATTN, ALL that fits the memory (cuda_student_fit_recompute),
 * on the CPU NONE. */
#ifndef R1_STUDENT_RECOMPUTE_H
#define R1_STUDENT_RECOMPUTE_H

typedef enum {
    RECOMPUTE_NONE,
    RECOMPUTE_ALL,
    RECOMPUTE_CHEAP,
    RECOMPUTE_KEEP_ATTN,
    RECOMPUTE_AUTO
} recompute_mode;

/* Every mode, fastest first: the order in which a GPU's automatic choice tries them
 * (cuda_student_fit_recompute, cuda_student_fit_shards; plan's auto_recompute_mode). */
enum { RECOMPUTE_MODES = 4 };
static const recompute_mode recompute_fastest_first[RECOMPUTE_MODES] = {
    RECOMPUTE_NONE, RECOMPUTE_CHEAP, RECOMPUTE_KEEP_ATTN, RECOMPUTE_ALL};

/* The mode of the --recompute and --recompute-cheap flags (the caller refuses both at once). */
static inline recompute_mode recompute_from_flags(int all, int cheap) {
    return cheap ? RECOMPUTE_CHEAP : all ? RECOMPUTE_ALL : RECOMPUTE_NONE;
}

#endif
