/* The device router in builds without CUDA: no backend has one (deepseek.c routes on the host). */
#include "teacher/moe_device.h"

#include "core/error.h"

#ifndef R1_HAVE_CUDA
int moe_device_supported(const backend *be) { return 0; }

void moe_device_route(backend *be, const moe_dispatch *d, const float *logits, const float *bias,
                      int n, const moe_router *r) {
    CHECK(!"moe_device_route without a device router");
}
#else
/* The CUDA build defines these in teacher/cuda/moe_cuda.cu. */
typedef int moe_device_none_unused;
#endif
