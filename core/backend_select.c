/* Choosing a backend by the name a --device option gives. */
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/backend_cuda.h"
#include "core/error.h"

int backend_open(backend **out, const char *device) {
    *out = NULL;
    if (strcmp(device, "cpu") == 0) {
        *out = backend_cpu();
        return R1_OK;
    }
    if (strcmp(device, "auto") == 0) {
        *out = backend_cuda(0, BACKEND_CUDA_BF16);
        if (!*out) {
            err_clear();
            *out = backend_cpu();
        }
        return R1_OK;
    }
    int mode = -1, index = 0;
    const char *rest = NULL;
    if (strncmp(device, "cuda-fp32", 9) == 0) mode = BACKEND_CUDA_FP32, rest = device + 9;
    else if (strncmp(device, "cuda", 4) == 0) mode = BACKEND_CUDA_BF16, rest = device + 4;
    if (mode >= 0 && *rest == ':') {
        char *end;
        long v = strtol(rest + 1, &end, 10);
        if (end == rest + 1 || *end || v < 0 || v > 1024) mode = -1;
        index = (int)v;
    } else if (mode >= 0 && *rest) {
        mode = -1;
    }
    if (mode < 0) {
        err_fail(R1_EINPUT, "--device", "unknown device \"%s\"", device);
        return err_hint("devices: cpu, cuda (bf16), cuda-fp32 (exact), cuda:N / cuda-fp32:N for "
                        "GPU N, auto (cuda when a GPU is usable, else cpu)");
    }
    *out = backend_cuda(index, mode);
    return *out ? R1_OK : err_status();
}
