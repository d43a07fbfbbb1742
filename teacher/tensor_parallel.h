/* One teacher split over the GPUs of this host: tensor-parallel attention and MLPs,
 * expert-parallel MoE (teacher/deepseek.c holds the math: which shard each rank loads, where
 * the all_reduces go).
 *
 * The calling process is rank 0, the leader: it owns GPU 0 and runs its command (generate,
 * logits) as it would on one GPU, through the model this returns. Ranks 1..tp-1 are followers:
 * this binary started again (`r1-distill tp-rank`, a command not listed in the help) on GPUs
 * 1..tp-1, each loading its own shard. Before each forward pass and each cache (re)allocation
 * the leader broadcasts the call over NCCL (its sizes, then the tokens, slots, positions and
 * output rows); the followers make the same call on their shard, and the all_reduces inside
 * the forward keep every rank's residual stream identical. Only the leader's logits are read,
 * so the engine, the sampler and the archives are those of one GPU.
 *
 * Failure: followers die with the leader (PR_SET_PDEATHSIG) and ignore SIGINT and SIGTERM (the
 * leader stops them when it closes the model); a follower that exits early ends the leader with
 * an error naming its rank, since every collective would wait for it forever. Whatever generate
 * had written stays valid (its shards are crash-safe) and a rerun resumes. */
#ifndef R1_TEACHER_TENSOR_PARALLEL_H
#define R1_TEACHER_TENSOR_PARALLEL_H

#include "core/backend.h"
#include "teacher/teacher.h"

/* Opens the model at `path` on `device` (backend_open's names) split over `tp` GPUs. tp 1 is
 * backend_open + teacher_open. tp > 1 needs a deepseek_v3 model that splits that way
 * (deepseek_tp_check), a CUDA device named without an index (the GPUs are 0..tp-1 of
 * CUDA_VISIBLE_DEVICES) and tp visible GPUs. On success the caller closes *m with
 * teacher_close (which also stops the followers) and then (*be)->destroy(*be). R1_EINPUT for a
 * request that cannot work, R1_ERUNTIME when a rank fails to start. */
int teacher_open_device(teacher_model **m, backend **be, const char *path, const char *device,
                        int tp);

/* The follower's command (`r1-distill tp-rank`), started by teacher_open_device. */
int cmd_tp_rank(int argc, char **argv);

#endif
