/* What every architecture's forward does with a batch before its layers run: check the token
 * ids, cache slots, positions and output rows; copy them to backend memory in one upload; and
 * what its buffers and recorded graphs share (power-of-two capacities, graph keys). */
#ifndef R1_TEACHER_FORWARD_BATCH_H
#define R1_TEACHER_FORWARD_BATCH_H

#include <stdint.h>

#include "teacher/teacher.h"

/* R1_EINPUT naming the first token id outside the vocabulary, slot or position outside the
 * cache, or output row outside the batch. */
int forward_batch_check(const teacher_model *tm, const int *tokens, const token_layout *tl,
                        const int *out_rows, int n_out);

/* Packs tokens, slots, positions and output rows, in that order, into `host` (room for
 * 3n + n_out ints) and returns how many ints that is. The same layout goes to backend memory
 * (below) and to the other ranks of a tensor-parallel group (teacher/tensor_parallel.c). */
size_t forward_batch_pack(int *host, const int *tokens, const token_layout *tl,
                          const int *out_rows, int n_out);
/* Copies the packed batch through `host` into the backend array `dev` with one upload. */
void forward_batch_upload(backend *be, int *dev, int *host, const int *tokens,
                          const token_layout *tl, const int *out_rows, int n_out);

/* The smallest power of two at or above both `have` and `want` (buffers grow rarely, and a
 * pass of one shape keeps its addresses, which a recorded graph needs). */
int forward_capacity(int have, int want);

/* The key of a recorded forward graph: it covers every value the recorded op calls depend on
 * (the model, the batch shape, the buffers' and the cache's addresses, the cache's size). `arch`
 * keeps two architectures' keys apart. */
uint64_t forward_graph_key(uint64_t arch, const teacher_model *tm, int n, int n_out, const void *x,
                           const void *cache, const void *out);

#endif
