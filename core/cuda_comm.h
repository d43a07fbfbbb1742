/* GPUs of one job talking to each other: one NCCL communicator, one process per GPU, and the
 * few collectives the job needs: ZeRO-1 data-parallel training (student/train_cuda.c) and
 * tensor/expert-parallel inference (teacher/tensor_parallel.c through backend_cuda_join).
 *
 * Rendezvous without an MPI library: rank 0 asks NCCL for a unique id and publishes it in a file
 * (written under a temporary name and renamed, so a reader never sees half of it); the other
 * ranks wait for the file, and every rank then joins the communicator with it. The file lives in
 * a directory every rank can read (a fresh temporary directory for `train --gpus N`; for
 * mpirun/srun the shared --rendezvous directory, named after the job) and is removed once all
 * ranks have joined.
 *
 * Every collective is queued on the caller's stream and is deterministic for a given number of
 * ranks (NCCL reduces in a fixed order for a fixed communicator). NCCL failures abort with the
 * library's message, as R1_CUDA_CHECK does for CUDA. */
#ifndef R1_CORE_CUDA_COMM_H
#define R1_CORE_CUDA_COMM_H

#ifdef R1_HAVE_CUDA

#include <cuda_runtime_api.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cuda_comm cuda_comm;
typedef enum { COMM_F32, COMM_BF16 } comm_dtype;

/* Joins rank `rank` of `n_ranks` through the id file `id_file`, on the current CUDA device
 * (cudaSetDevice first). Waits at most timeout_s seconds for rank 0's file. R1_ERUNTIME when the
 * wait times out or NCCL cannot start; R1_EINPUT in builds without NCCL. */
int cuda_comm_create(cuda_comm **out, int rank, int n_ranks, const char *id_file,
                     double timeout_s);
void cuda_comm_destroy(cuda_comm *c);
/* Returns once every rank has called it (the GPU's default stream is synchronized). */
void cuda_comm_barrier(cuda_comm *c);
int cuda_comm_rank(const cuda_comm *c);
int cuda_comm_size(const cuda_comm *c);

/* In place: buf holds n_ranks * count elements on every rank; afterwards rank r's piece
 * buf[r * count, (r + 1) * count) is the sum of that piece over all ranks (other pieces are left
 * undefined). */
void cuda_comm_reduce_scatter(cuda_comm *c, void *buf, size_t count, comm_dtype t,
                              cudaStream_t s);
/* recv[r * count + i] = rank r's send[i]; in place when send == recv + rank * count. */
void cuda_comm_all_gather(cuda_comm *c, const void *send, void *recv, size_t count, comm_dtype t,
                          cudaStream_t s);
/* In place: buf[i] = the sum over ranks of buf[i]. */
void cuda_comm_all_reduce(cuda_comm *c, void *buf, size_t count, comm_dtype t, cudaStream_t s);
/* Host memory, waited for: values[i] = the sum over ranks of values[i]. For the few numbers every
 * rank must agree on (a memory plan's choices); each call costs a device round trip. */
void cuda_comm_all_reduce_host(cuda_comm *c, float *values, size_t n);
/* In place: every rank's buf[0, bytes) becomes rank 0's. */
void cuda_comm_broadcast(cuda_comm *c, void *buf, size_t bytes, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif /* R1_HAVE_CUDA */
#endif
