/* The device sampler in builds without CUDA: no backend has one, so open reports that and the
 * callers (the engine, benchmarks) sample on the host. */
#include "teacher/sampler_device.h"

#include "core/error.h"

#ifndef R1_HAVE_CUDA
int sampler_device_supported(const backend *be) { return 0; }

int sampler_device_open(sampler_device **out, backend *be, int max_rows, int vocab) {
    *out = NULL;
    return err_fail(R1_EINPUT, "sampler", "the %s backend samples on the host", be->name);
}

void sampler_device_close(sampler_device *sd) {}

void sampler_device_pick(sampler_device *sd, int *tokens, const float *logits, int n,
                         const sampler_params *p, const double *u) {
    CHECK(!"sampler_device_pick without a device sampler");
}
#else
/* The CUDA build defines these in teacher/cuda/sampler_cuda.cu. */
typedef int sampler_device_none_unused;
#endif
