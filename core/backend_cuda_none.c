/* backend_cuda() in builds without CUDA: a clear error instead of a missing symbol. */
#include "core/backend_cuda.h"
#include "core/error.h"

#ifndef R1_HAVE_CUDA
backend *backend_cuda(int device, int mode) {
    err_fail(R1_EINPUT, "--device cuda", "this r1-distill was built without CUDA");
    err_hint("rebuild on a machine with nvcc (and without NO_CUDA=1), or use --device cpu");
    return NULL;
}
int backend_cuda_probe(int device, int *n_devices) {
    if (n_devices) *n_devices = 0;
    err_fail(R1_EINPUT, "--device cuda", "this r1-distill was built without CUDA");
    return err_hint("rebuild on a machine with nvcc (and without NO_CUDA=1), or use --device cpu");
}
void backend_cuda_set_graphs(backend *be, int on) {}
void backend_cuda_set_gemv_max(backend *be, int max_n) {}
void backend_cuda_set_skinny_bf16(backend *be, int on) {}
void backend_cuda_graph_stats(backend *be, long *replays, long *recordings) {
    *replays = *recordings = 0;
}
int backend_cuda_is(const backend *be) { return 0; }
void backend_cuda_join(backend *be, struct cuda_comm *comm) {}
void backend_cuda_broadcast(backend *be, void *buf, size_t bytes) {}
void backend_cuda_profile(backend *be, int on) {}
void backend_cuda_profile_report(backend *be, FILE *f) {}
void backend_cuda_profile_json(backend *be, FILE *f) {}
#else
/* The CUDA build defines these in core/cuda/backend_cuda.cu. */
typedef int backend_cuda_none_unused;
#endif
