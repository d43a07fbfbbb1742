/* The CUDA backend: creation, memory, uploads, transfers, graph recording and the small fused
 * kernels (embedding, RMSNorm, RoPE, SwiGLU, KV store, add, row gather/scatter, argmax). Linear
 * layers are in linear_cuda.cu, attention in attention_cuda.cu, DeepSeek's MLA in mla_cuda.cu. Each kernel mirrors the CPU loop of the
 * same name in core/backend_cpu.c, in float32 unless the cache is bf16. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cuda/cuda_internal.cuh"
#include "core/cuda_comm.h"

/* ---- errors ---------------------------------------------------------------------------- */

void cuda_fail(const char *file, int line, const char *call, const char *error,
               const char *hint) {
    err_fail(R1_ERUNTIME, "CUDA", "%s:%d: %s failed: %s", file, line, call, error);
    if (hint) err_hint("%s", hint);
    err_exit();
}

void cuda_bug(const char *file, int line, const char *expr, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err_fail(R1_ERUNTIME, "CUDA backend", "%s:%d: %s (%s)", file, line, msg, expr);
    err_exit();
}

const char *cuda_hint(cudaError_t e) {
    switch (e) {
    case cudaErrorMemoryAllocation:
        return "out of GPU memory: use a smaller batch or cache length, or a larger GPU";
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
        return "no usable GPU: check nvidia-smi and that the driver matches CUDA 13";
    case cudaErrorIllegalAddress:
    case cudaErrorMisalignedAddress:
        return "a kernel accessed memory outside its buffers: rerun under compute-sanitizer "
               "(with CUDA_LAUNCH_BLOCKING=1) to name it";
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
        return "this build targets Hopper (sm_90a); rebuild for this GPU's architecture";
    case cudaErrorStreamCaptureUnsupported:
    case cudaErrorStreamCaptureInvalidated:
        return "an operation cannot be recorded in a CUDA graph; R1_CUDA_GRAPHS=0 turns "
               "recording off";
    default:
        return "rerun with CUDA_LAUNCH_BLOCKING=1 to find the failing kernel";
    }
}

const char *cublas_status_name(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "cuBLAS error";
    }
}

/* ---- memory ---------------------------------------------------------------------------- */

/* Device memory or a fatal error that says how much was asked and how much is free. */
static void *dev_alloc(cuda_backend *cu, size_t bytes) {
    CU_REQUIRE(!cu->recording, "device allocation of %zu bytes while recording a CUDA graph",
               bytes);
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        size_t free_b = 0, total = 0;
        cudaGetLastError();
        cudaMemGetInfo(&free_b, &total);
        err_fail(R1_ERUNTIME, "CUDA", "cannot allocate %.2f GiB of GPU memory (%.2f of %.2f GiB free): %s",
                 bytes / 1073741824.0, free_b / 1073741824.0, total / 1073741824.0,
                 cudaGetErrorString(e));
        err_hint("%s", cuda_hint(cudaErrorMemoryAllocation));
        err_exit();
    }
    return p;
}

static void *cu_alloc(backend *be, size_t bytes) { return dev_alloc(cu_of(be), bytes); }

static void cu_release(backend *be, void *p) {
    cuda_backend *cu = cu_of(be);
    if (!p) return;
    CU_REQUIRE(!cu->recording, "release while recording a CUDA graph");
    /* A recorded graph may point at this memory; an equal key later could replay into the
     * next allocation at the same address. Releases are rare (cache and buffer resizes). */
    cu_drop_graphs(cu);
    cu_invalidate_xbf(cu);
    CUDA_CHECK(cudaStreamSynchronize(cu->stream));
    CUDA_CHECK(cudaFree(p));
}

void *cu_workspace(cuda_backend *cu, int which, size_t bytes) {
    if (bytes <= cu->ws_size[which]) return cu->ws[which];
    CU_REQUIRE(!cu->recording,
               "workspace %d must grow to %zu bytes while recording a CUDA graph: the pass "
               "differs from the first one with its key",
               which, bytes);
    size_t grow = cu->ws_size[which] + cu->ws_size[which] / 2;
    if (grow < bytes) grow = bytes;
    grow = (grow + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);
    CUDA_CHECK(cudaStreamSynchronize(cu->stream));
    cu_drop_graphs(cu);
    if (which == WS_XBF16) cu_invalidate_xbf(cu);
    if (cu->ws[which]) CUDA_CHECK(cudaFree(cu->ws[which]));
    cu->ws[which] = dev_alloc(cu, grow);
    cu->ws_size[which] = grow;
    return cu->ws[which];
}

/* ---- uploads ----------------------------------------------------------------------------- */

/* The storage type of an uploaded weight: vectors (norms, biases) stay float32; matrices are
 * float32 in fp32 mode; in bf16 mode bf16, except FP8 which stays FP8. */
static dtype storage_dtype(const cuda_backend *cu, const weight *w) {
    if (w->rows == 1 || cu->mode == BACKEND_CUDA_FP32) return DTYPE_F32;
    return w->dt == DTYPE_F8_E4M3 ? DTYPE_F8_E4M3 : DTYPE_BF16;
}

static int cu_upload_weight(backend *be, weight *w) {
    cuda_backend *cu = cu_of(be);
    CU_REQUIRE(!w->device, "weight uploaded twice");
    CU_REQUIRE(dtype_is_float(w->dt), "weight of dtype %s", dtype_name(w->dt));
    const dtype dst_dt = storage_dtype(cu, w);
    const size_t n = (size_t)w->rows * (size_t)w->cols;
    const size_t src_bytes = n * dtype_size(w->dt);
    size_t free_b = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total));
    const size_t need = n * dtype_size(dst_dt) + (w->dt == dst_dt ? 0 : src_bytes);
    if (need + (64u << 20) > free_b)
        return err_fail(R1_ERUNTIME, "CUDA",
                        "out of GPU memory uploading a [%lld, %lld] %s weight as %s (%.2f GiB "
                        "needed, %.2f GiB free)",
                        (long long)w->rows, (long long)w->cols, dtype_name(w->dt),
                        dtype_name(dst_dt), need / 1073741824.0, free_b / 1073741824.0);
    size_t n_scales = 0;
    float *scales = NULL;
    if (w->dt == DTYPE_F8_E4M3) {
        n_scales = (size_t)((w->rows + w->block_rows - 1) / w->block_rows) *
                   (size_t)((w->cols + w->block_cols - 1) / w->block_cols);
        scales = (float *)dev_alloc(cu, n_scales * sizeof(float));
        CUDA_CHECK(cudaMemcpyAsync(scales, w->scale_inv, n_scales * sizeof(float),
                                   cudaMemcpyHostToDevice, cu->stream));
    }
    void *dst = dev_alloc(cu, n * dtype_size(dst_dt));
    /* Copies on the backend's stream (a plain cudaMemcpy from pageable memory may return before
     * its DMA lands, and would not be ordered before the conversion kernel on this stream). */
    if (dst_dt == w->dt) {
        CUDA_CHECK(cudaMemcpyAsync(dst, w->data, src_bytes, cudaMemcpyHostToDevice, cu->stream));
        CUDA_CHECK(cudaStreamSynchronize(cu->stream));
    } else {
        void *tmp = dev_alloc(cu, src_bytes);
        CUDA_CHECK(cudaMemcpyAsync(tmp, w->data, src_bytes, cudaMemcpyHostToDevice, cu->stream));
        cu_convert_weight(cu, dst, dst_dt, tmp, w->dt, scales, w->rows, w->cols, w->block_rows,
                          w->block_cols);
        CUDA_CHECK(cudaStreamSynchronize(cu->stream));
        CUDA_CHECK(cudaFree(tmp));
    }
    if (dst_dt != DTYPE_F8_E4M3 && scales) {
        CUDA_CHECK(cudaFree(scales));
        scales = NULL;
    }
    w->data = dst;
    w->dt = dst_dt;
    w->scale_inv = scales;
    w->device = 1;
    return R1_OK;
}

static void cu_unload_weight(backend *be, weight *w) {
    cuda_backend *cu = cu_of(be);
    if (!w->device) return;
    CU_REQUIRE(!cu->recording, "unload while recording a CUDA graph");
    cu_drop_graphs(cu);
    cu_drop_expert_tables(cu);
    cu_drop_mla_tables(cu);
    CUDA_CHECK(cudaStreamSynchronize(cu->stream));
    CUDA_CHECK(cudaFree((void *)w->data));
    if (w->scale_inv) CUDA_CHECK(cudaFree((void *)w->scale_inv));
    w->data = NULL;
    w->scale_inv = NULL;
    w->device = 0;
}

/* ---- transfers ------------------------------------------------------------------------- */

enum { PINNED_MAX = 16 << 20 };

static void cu_upload(backend *be, void *dst, const void *src, size_t bytes) {
    cuda_backend *cu = cu_of(be);
    CU_REQUIRE(!cu->recording, "upload() while recording a CUDA graph: upload inputs before "
                               "graph_begin");
    cu_touch(cu, dst, bytes);
    if (!bytes) return;
    if (bytes > PINNED_MAX) { /* large: straight from pageable memory, finished on return */
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cu->stream));
        CUDA_CHECK(cudaStreamSynchronize(cu->stream));
        return;
    }
    CUDA_CHECK(cudaEventSynchronize(cu->pinned_free)); /* the last copy out of it is done */
    if (bytes > cu->pinned_size) {
        if (cu->pinned) CUDA_CHECK(cudaFreeHost(cu->pinned));
        size_t sz = bytes < (1u << 20) ? (1u << 20) : bytes;
        CUDA_CHECK(cudaHostAlloc(&cu->pinned, sz, cudaHostAllocDefault));
        cu->pinned_size = sz;
    }
    memcpy(cu->pinned, src, bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst, cu->pinned, bytes, cudaMemcpyHostToDevice, cu->stream));
    CUDA_CHECK(cudaEventRecord(cu->pinned_free, cu->stream));
}

static void cu_download(backend *be, void *dst, const void *src, size_t bytes) {
    cuda_backend *cu = cu_of(be);
    CU_REQUIRE(!cu->recording, "download() while recording a CUDA graph");
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cu->stream));
    CUDA_CHECK(cudaStreamSynchronize(cu->stream));
}

static void cu_sync(backend *be) {
    cuda_backend *cu = cu_of(be);
    CU_REQUIRE(!cu->recording, "sync() while recording a CUDA graph");
    CUDA_CHECK(cudaStreamSynchronize(cu->stream));
}

/* ---- graphs ------------------------------------------------------------------------------
 * A key is recorded the second time it is seen (the first pass runs eagerly and sizes every
 * workspace, picks cuBLASLt algorithms and uploads rope tables, none of which may happen while
 * recording), replayed from the third time on; the least recently used of CU_MAX_GRAPHS is
 * evicted. Prefill shapes rarely repeat, so in practice decode steps are what gets recorded. */

void cu_drop_graphs(cuda_backend *cu) {
    int any = 0;
    for (int i = 0; i < cu->n_graphs; i++) any |= cu->graphs[i].exec != NULL;
    if (any) CUDA_CHECK(cudaStreamSynchronize(cu->stream)); /* a launch may still be running */
    for (int i = 0; i < cu->n_graphs; i++)
        if (cu->graphs[i].exec) CUDA_CHECK(cudaGraphExecDestroy(cu->graphs[i].exec));
    cu->n_graphs = 0;
}

static int cu_graph_begin(backend *be, uint64_t key) {
    cuda_backend *cu = cu_of(be);
    CU_REQUIRE(!cu->recording, "graph_begin while recording (graph_end was not called)");
    cu_invalidate_xbf(cu);
    if (!cu->graphs_on || key == 0) return 0;
    cu_graph *g = NULL;
    for (int i = 0; i < cu->n_graphs; i++)
        if (cu->graphs[i].key == key) g = &cu->graphs[i];
    cu->clock++;
    if (g && g->exec) {
        g->last_use = cu->clock;
        CUDA_CHECK(cudaGraphLaunch(g->exec, cu->stream));
        cu->replays++;
        return 1;
    }
    if (!g) { /* first sight: remember the key, run eagerly */
        if (cu->n_graphs == CU_MAX_GRAPHS) {
            int lru = 0;
            for (int i = 1; i < cu->n_graphs; i++)
                if (cu->graphs[i].last_use < cu->graphs[lru].last_use) lru = i;
            if (cu->graphs[lru].exec) {
                CUDA_CHECK(cudaStreamSynchronize(cu->stream));
                CUDA_CHECK(cudaGraphExecDestroy(cu->graphs[lru].exec));
            }
            cu->graphs[lru] = cu->graphs[--cu->n_graphs];
        }
        g = &cu->graphs[cu->n_graphs++];
        g->key = key;
        g->exec = NULL;
        g->last_use = cu->clock;
        return 0;
    }
    /* second sight: record this pass; graph_end instantiates and launches it */
    g->last_use = cu->clock;
    CUDA_CHECK(cudaStreamBeginCapture(cu->stream, cudaStreamCaptureModeThreadLocal));
    cu->recording = g;
    return 0;
}

static void cu_graph_end(backend *be) {
    cuda_backend *cu = cu_of(be);
    cu_graph *g = cu->recording;
    if (!g) return;
    cu->recording = NULL;
    cudaGraph_t graph = NULL;
    CUDA_CHECK(cudaStreamEndCapture(cu->stream, &graph));
    CUDA_CHECK(cudaGraphInstantiate(&g->exec, graph, 0));
    CUDA_CHECK(cudaGraphDestroy(graph));
    CUDA_CHECK(cudaGraphLaunch(g->exec, cu->stream));
    cu->recordings++;
}

/* ---- rope tables on the device ------------------------------------------------------------ */

static const float *rope_freqs(cuda_backend *cu, const rope_table *r) {
    const int half = r->dim / 2;
    for (int i = 0; i < cu->n_ropes; i++) {
        cu_rope *e = &cu->ropes[i];
        if (e->host == r && e->dim == r->dim &&
            memcmp(e->host_copy, r->inv_freq, sizeof(float) * half) == 0)
            return e->dev;
    }
    CU_REQUIRE(!cu->recording, "a new rope table appeared while recording a CUDA graph");
    cu_rope *e = NULL;
    for (int i = 0; i < cu->n_ropes; i++)
        if (cu->ropes[i].host == r) e = &cu->ropes[i]; /* same table, new content */
    if (!e) {
        if (cu->n_ropes == CU_MAX_ROPES) { /* evict the oldest */
            CUDA_CHECK(cudaStreamSynchronize(cu->stream));
            free(cu->ropes[0].host_copy);
            CUDA_CHECK(cudaFree(cu->ropes[0].dev));
            memmove(cu->ropes, cu->ropes + 1, sizeof(cu_rope) * (CU_MAX_ROPES - 1));
            cu->n_ropes--;
            cu_drop_graphs(cu);
        }
        e = &cu->ropes[cu->n_ropes++];
        e->host_copy = NULL;
        e->dev = NULL;
    } else {
        CUDA_CHECK(cudaStreamSynchronize(cu->stream));
        cu_drop_graphs(cu);
    }
    free(e->host_copy);
    if (e->dev) CUDA_CHECK(cudaFree(e->dev));
    e->host = r;
    e->dim = r->dim;
    e->host_copy = (float *)xmalloc(sizeof(float) * half);
    memcpy(e->host_copy, r->inv_freq, sizeof(float) * half);
    e->dev = (float *)dev_alloc(cu, sizeof(float) * half);
    CUDA_CHECK(cudaMemcpyAsync(e->dev, e->host_copy, sizeof(float) * half, cudaMemcpyHostToDevice,
                               cu->stream));
    return e->dev;
}

/* ---- small kernels ------------------------------------------------------------------------ */

/* Kernels over (token, element) take tokens along grid.y, which holds at most 65535. */
static inline unsigned token_blocks(int n) { return (unsigned)(n < 65535 ? n : 65535); }

__global__ void embed_kernel(float *out, wview w, const int *ids, int n, int64_t cols) {
    for (int i = blockIdx.y; i < n; i += gridDim.y) {
        const int64_t id = ids[i];
        for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < cols;
             j += (int64_t)gridDim.x * blockDim.x)
            out[i * cols + j] = wget(w, id, j);
    }
}

static void check_weight(const weight *w, const char *op) {
    CU_REQUIRE(w->device, "%s: weight [%lld, %lld] was not uploaded (call backend->upload after "
                          "weight_load)",
               op, (long long)w->rows, (long long)w->cols);
}

static void cu_embed(backend *be, float *out, const weight *w, const int *ids, int n) {
    cuda_backend *cu = cu_of(be);
    check_weight(w, "embed");
    cu_invalidate_xbf(cu);
    if (n <= 0) return;
    dim3 grid(cu_blocks(w->cols, 256, 64), token_blocks(n));
    embed_kernel<<<grid, 256, 0, cu->stream>>>(out, view_of(w), ids, n, w->cols);
    LAUNCH_CHECK();
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it. */
__device__ float block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* red may still be read from a previous call */
    if (lane == 0) red[wid] = v;
    __syncthreads();
    float t = 0.0f;
    for (int k = 0; k < nw; k++) t += red[k];
    return t;
}

/* out = x / sqrt(mean(x^2) + eps) * g, one block per row; in place is safe (each thread reads
 * and writes only its own elements, and all reads of the sum finish before the writes). */
__global__ void rmsnorm_kernel(float *out, __nv_bfloat16 *out_bf, const float *x,
                               const float *g, int d, float eps) {
    __shared__ float red[32];
    const float *xi = x + (int64_t)blockIdx.x * d;
    float *oi = out + (int64_t)blockIdx.x * d;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) ss += xi[j] * xi[j];
    ss = block_sum(ss, red);
    const float r = 1.0f / sqrtf(ss / (float)d + eps);
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        const float v = xi[j] * r * g[j];
        oi[j] = v;
        if (out_bf) out_bf[(int64_t)blockIdx.x * d + j] = __float2bfloat16_rn(v);
    }
}

/* In bf16 mode, an op whose n-row output feeds GEMMs (n above the GEMV's limit) also writes
 * the bf16 copy the next linear would make (x_as_bf16 in linear_cuda.cu): the conversion
 * launch is saved. Returns the copy's address, or NULL. */
static __nv_bfloat16 *bf16_side_output(cuda_backend *cu, const float *out, int64_t n,
                                       int64_t count) {
    if (cu->mode != BACKEND_CUDA_BF16 || n <= cu->gemv_max) return NULL;
    __nv_bfloat16 *dst = (__nv_bfloat16 *)cu_workspace(cu, WS_XBF16, (size_t)count * 2);
    cu->xbf_src = out;
    cu->xbf_count = count;
    cu->xbf_valid = 1;
    return dst;
}

static void cu_rmsnorm(backend *be, float *out, const float *x, const weight *g, int n, int d,
                       float eps) {
    cuda_backend *cu = cu_of(be);
    check_weight(g, "rmsnorm");
    CU_REQUIRE(g->dt == DTYPE_F32 && g->cols >= d, "rmsnorm: gain must be an F32 vector of %d", d);
    cu_invalidate_xbf(cu);
    if (n <= 0) return;
    __nv_bfloat16 *ob = bf16_side_output(cu, out, n, (int64_t)n * d);
    rmsnorm_kernel<<<n, d >= 2048 ? 512 : 256, 0, cu->stream>>>(out, ob, x,
                                                                 (const float *)g->data, d, eps);
    LAUNCH_CHECK();
}

/* One thread per rotated pair (token, head, i): the CPU's rope_apply arithmetic, with products
 * rounded separately as the CPU build computes them (no fused multiply-add). */
__global__ void rope_kernel(float *x, const float *inv_freq, float attn_factor, int interleaved,
                            int dim, const int *pos, int n, int row_stride, int n_heads,
                            int head_stride, int off) {
    const int half = dim / 2;
    const int64_t total = (int64_t)n * n_heads * half;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int i = (int)(t / ((int64_t)n_heads * half));
        const int rem = (int)(t % ((int64_t)n_heads * half));
        const int h = rem / half, p = rem % half;
        const float angle = __fmul_rn((float)pos[i], inv_freq[p]);
        const float c = __fmul_rn(cosf(angle), attn_factor), s = __fmul_rn(sinf(angle), attn_factor);
        float *v = x + (int64_t)i * row_stride + (int64_t)h * head_stride + off;
        const int a = interleaved ? 2 * p : p, b = interleaved ? 2 * p + 1 : p + half;
        const float x0 = v[a], x1 = v[b];
        v[a] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
        v[b] = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s));
    }
}

static void cu_rope(backend *be, float *x, const rope_table *r, const int *pos, int n,
                    int row_stride, int n_heads, int head_stride, int off) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (n <= 0 || n_heads <= 0) return;
    const float *f = rope_freqs(cu, r);
    const int64_t total = (int64_t)n * n_heads * (r->dim / 2);
    rope_kernel<<<cu_blocks(total, 256, 65535), 256, 0, cu->stream>>>(
        x, f, r->attn_factor, r->layout == ROPE_PAIRS_INTERLEAVED, r->dim, pos, n, row_stride,
        n_heads, head_stride, off);
    LAUNCH_CHECK();
}

/* out = silu(gate) * up; out may be gate (same stride), elementwise. */
__global__ void swiglu_kernel(float *out, __nv_bfloat16 *out_bf, const float *gate,
                              const float *up, int n, int d, int stride) {
    const int64_t total = (int64_t)n * d;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = t / d, j = t % d;
        const float g = gate[i * stride + j];
        const float v = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), up[i * stride + j]);
        out[t] = v;
        if (out_bf) out_bf[t] = __float2bfloat16_rn(v);
    }
}

static void cu_swiglu(backend *be, float *out, const float *gate, const float *up, int n, int d,
                      int stride) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (n <= 0) return;
    CU_REQUIRE(out != gate || stride == d, "swiglu in place needs stride == d");
    __nv_bfloat16 *ob = bf16_side_output(cu, out, n, (int64_t)n * d);
    swiglu_kernel<<<cu_blocks((int64_t)n * d, 256, 1 << 16), 256, 0, cu->stream>>>(
        out, ob, gate, up, n, d, stride);
    LAUNCH_CHECK();
}

template <typename T>
__global__ void kv_store_kernel(T *cache, const float *src, const int *slot, const int *pos,
                                int n, int width, int max_seq) {
    for (int i = blockIdx.y; i < n; i += gridDim.y) {
        T *dst = cache + ((int64_t)slot[i] * max_seq + pos[i]) * width;
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < width; j += gridDim.x * blockDim.x)
            from_f32(dst + j, src[(int64_t)i * width + j]);
    }
}

static void cu_kv_store(backend *be, void *cache, const float *src, const token_layout *tl,
                        int width, int max_seq) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (tl->n <= 0) return;
    dim3 grid(cu_blocks(width, 256, 64), token_blocks(tl->n));
    if (be->cache_dtype == DTYPE_BF16)
        kv_store_kernel<<<grid, 256, 0, cu->stream>>>((__nv_bfloat16 *)cache, src, tl->slot,
                                                      tl->pos, tl->n, width, max_seq);
    else
        kv_store_kernel<<<grid, 256, 0, cu->stream>>>((float *)cache, src, tl->slot, tl->pos,
                                                      tl->n, width, max_seq);
    LAUNCH_CHECK();
}

/* rope_store_kv: per token, the q pairs, then the k pairs (rotated in place and stored), then
 * the v elements; the rotation is rope_kernel's arithmetic, the stores kv_store_kernel's. */
template <typename T>
__global__ void rope_store_kv_kernel(float *q, float *k, const float *v, T *kc, T *vc,
                                     const float *inv_freq, float attn_factor, int interleaved,
                                     const int *slot, const int *pos, int n, int H, int KV,
                                     int hd, int max_seq) {
    const int half = hd / 2, kvd = KV * hd;
    const int nq = H * half, nk = KV * half, items = nq + nk + kvd;
    for (int i = blockIdx.y; i < n; i += gridDim.y) {
        T *kdst = kc + ((int64_t)slot[i] * max_seq + pos[i]) * kvd;
        T *vdst = vc + ((int64_t)slot[i] * max_seq + pos[i]) * kvd;
        for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < items; t += gridDim.x * blockDim.x) {
            if (t >= nq + nk) { /* v */
                const int e = t - nq - nk;
                from_f32(vdst + e, v[(int64_t)i * kvd + e]);
                continue;
            }
            const bool isq = t < nq;
            const int u = isq ? t : t - nq, h = u / half, p = u % half;
            const float angle = __fmul_rn((float)pos[i], inv_freq[p]);
            const float c = __fmul_rn(cosf(angle), attn_factor),
                        s = __fmul_rn(sinf(angle), attn_factor);
            float *x = (isq ? q + (int64_t)i * H * hd : k + (int64_t)i * kvd) + h * hd;
            const int a = interleaved ? 2 * p : p, b = interleaved ? 2 * p + 1 : p + half;
            const float x0 = x[a], x1 = x[b];
            const float y0 = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
            const float y1 = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s));
            x[a] = y0;
            x[b] = y1;
            if (!isq) {
                from_f32(kdst + h * hd + a, y0);
                from_f32(kdst + h * hd + b, y1);
            }
        }
    }
}

static void cu_rope_store_kv(backend *be, float *q, float *k, const float *v, void *k_cache,
                             void *v_cache, const rope_table *r, const token_layout *tl,
                             int n_heads, int n_kv_heads, int head_dim, int max_seq) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (tl->n <= 0) return;
    CU_REQUIRE(r->dim == head_dim, "rope_store_kv: rope over %d of %d dims", r->dim, head_dim);
    const float *f = rope_freqs(cu, r);
    const int items = (n_heads + n_kv_heads) * (head_dim / 2) + n_kv_heads * head_dim;
    dim3 grid(cu_blocks(items, 256, 64), token_blocks(tl->n));
    const int il = r->layout == ROPE_PAIRS_INTERLEAVED;
    if (be->cache_dtype == DTYPE_BF16)
        rope_store_kv_kernel<<<grid, 256, 0, cu->stream>>>(
            q, k, v, (__nv_bfloat16 *)k_cache, (__nv_bfloat16 *)v_cache, f, r->attn_factor, il,
            tl->slot, tl->pos, tl->n, n_heads, n_kv_heads, head_dim, max_seq);
    else
        rope_store_kv_kernel<<<grid, 256, 0, cu->stream>>>(
            q, k, v, (float *)k_cache, (float *)v_cache, f, r->attn_factor, il, tl->slot, tl->pos,
            tl->n, n_heads, n_kv_heads, head_dim, max_seq);
    LAUNCH_CHECK();
}

__global__ void add_kernel(float *x, const float *y, int64_t n) {
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n;
         t += (int64_t)gridDim.x * blockDim.x)
        x[t] = __fadd_rn(x[t], y[t]);
}

static void cu_add(backend *be, float *x, const float *y, size_t n) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (!n) return;
    add_kernel<<<cu_blocks((int64_t)n, 256, 1 << 16), 256, 0, cu->stream>>>(x, y, (int64_t)n);
    LAUNCH_CHECK();
}

__global__ void gather_kernel(float *out, const float *x, const int *rows, int n, int d) {
    for (int i = blockIdx.y; i < n; i += gridDim.y) {
        const float *src = x + (int64_t)rows[i] * d;
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < d; j += gridDim.x * blockDim.x)
            out[(int64_t)i * d + j] = src[j];
    }
}

static void cu_gather_rows(backend *be, float *out, const float *x, const int *rows, int n,
                           int d) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (n <= 0) return;
    gather_kernel<<<dim3(cu_blocks(d, 256, 64), token_blocks(n)), 256, 0, cu->stream>>>(out, x,
                                                                                       rows, n, d);
    LAUNCH_CHECK();
}

static void cu_zero(backend *be, float *x, size_t n) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (n) CUDA_CHECK(cudaMemsetAsync(x, 0, sizeof(float) * n, cu->stream));
}

__global__ void copy_strided_kernel(float *dst, int dst_stride, const float *src, int src_stride,
                                    int n, int width) {
    for (int i = blockIdx.y; i < n; i += gridDim.y)
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < width; j += gridDim.x * blockDim.x)
            dst[(int64_t)i * dst_stride + j] = src[(int64_t)i * src_stride + j];
}

static void cu_copy_strided(backend *be, float *dst, int dst_stride, const float *src,
                            int src_stride, int n, int width) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (n <= 0 || width <= 0) return;
    copy_strided_kernel<<<dim3(cu_blocks(width, 256, 64), token_blocks(n)), 256, 0, cu->stream>>>(
        dst, dst_stride, src, src_stride, n, width);
    LAUNCH_CHECK();
}

/* One thread per column walks the rows in order, so repeated destination rows add up in the
 * CPU's order, with the product rounded before the sum as the CPU computes it. */
__global__ void scatter_add_rows_kernel(float *dst, const float *src, const int *rows,
                                        const float *scale, int n, int width) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= width) return;
    for (int i = 0; i < n; i++) {
        float *d = dst + (int64_t)rows[i] * width + j;
        *d = __fadd_rn(*d, __fmul_rn(scale[i], src[(int64_t)i * width + j]));
    }
}

static void cu_scatter_add_rows(backend *be, float *dst, const float *src, const int *rows,
                                const float *scale, int n, int width) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (n <= 0 || width <= 0) return;
    scatter_add_rows_kernel<<<(width + 127) / 128, 128, 0, cu->stream>>>(dst, src, rows, scale, n,
                                                                          width);
    LAUNCH_CHECK();
}

/* combine_rows: thread per (token, column) adds its K terms in order, the product rounded
 * before the sum (the CPU's d += s * x). */
__global__ void combine_rows_kernel(float *dst, const float *src, const int *idx,
                                    const float *scale, int n, int K, int width) {
    for (int i = blockIdx.y; i < n; i += gridDim.y)
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < width; j += gridDim.x * blockDim.x) {
            float d = dst[(int64_t)i * width + j];
            for (int k = 0; k < K; k++)
                d = __fadd_rn(d, __fmul_rn(scale[i * K + k], src[(int64_t)idx[i * K + k] * width + j]));
            dst[(int64_t)i * width + j] = d;
        }
}

static void cu_combine_rows(backend *be, float *dst, const float *src, const int *idx,
                            const float *scale, int n, int K, int width) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (n <= 0 || width <= 0) return;
    combine_rows_kernel<<<dim3(cu_blocks(width, 256, 64), token_blocks(n)), 256, 0, cu->stream>>>(
        dst, src, idx, scale, n, K, width);
    LAUNCH_CHECK();
}

/* (value, index) a beats b: a number beats NaN, then the larger value, then the lower index:
 * the CPU's first-largest rule, also for rows holding NaN. */
__device__ __forceinline__ bool argmax_better(float av, int ai, float bv, int bi) {
    const bool an = isnan(av), bn = isnan(bv);
    if (an != bn) return bn;
    if (!an && av != bv) return av > bv;
    return ai < bi;
}

__global__ void argmax_kernel(int *out, const float *x, int d) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const float *row = x + (int64_t)blockIdx.x * d;
    float bv = __int_as_float(0x7fc00000);
    int bi = 0x7fffffff;
    for (int j = threadIdx.x; j < d; j += blockDim.x)
        if (argmax_better(row[j], j, bv, bi)) bv = row[j], bi = j;
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (argmax_better(ov, oi, bv, bi)) bv = ov, bi = oi;
    }
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    if (lane == 0) sv[wid] = bv, si[wid] = bi;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 1; k < (int)(blockDim.x >> 5); k++)
            if (argmax_better(sv[k], si[k], bv, bi)) bv = sv[k], bi = si[k];
        out[blockIdx.x] = bi;
    }
}

static void cu_argmax(backend *be, int *out, const float *x, int n, int d) {
    cuda_backend *cu = cu_of(be);
    cu_invalidate_xbf(cu);
    if (n <= 0) return;
    CU_REQUIRE(d > 0, "argmax over an empty row");
    argmax_kernel<<<n, 1024, 0, cu->stream>>>(out, x, d);
    LAUNCH_CHECK();
}

/* ---- creation ------------------------------------------------------------------------------ */

static void cu_destroy(backend *be) {
    cuda_backend *cu = cu_of(be);
    if (!cu) return;
    CU_REQUIRE(!cu->recording, "destroy while recording a CUDA graph");
    CUDA_CHECK(cudaStreamSynchronize(cu->stream));
    cu_drop_graphs(cu);
    cu_drop_expert_tables(cu);
    free(cu->etabs);
    cu_drop_mla_tables(cu);
    cu_prof_free(cu);
    for (int i = 0; i < cu->n_ropes; i++) {
        free(cu->ropes[i].host_copy);
        CUDA_CHECK(cudaFree(cu->ropes[i].dev));
    }
    for (int i = 0; i < WS_COUNT; i++)
        if (cu->ws[i]) CUDA_CHECK(cudaFree(cu->ws[i]));
    if (cu->pinned) CUDA_CHECK(cudaFreeHost(cu->pinned));
    if (cu->skinny_sem) CUDA_CHECK(cudaFree(cu->skinny_sem));
    cu_linear_free(cu);
    CUDA_CHECK(cudaEventDestroy(cu->pinned_free));
    CUDA_CHECK(cudaStreamDestroy(cu->stream));
    free(cu);
}

extern "C" int backend_cuda_probe(int device, int *n_devices) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (n_devices) *n_devices = e == cudaSuccess ? count : 0;
    if (e != cudaSuccess || count == 0) {
        cudaGetLastError();
        err_fail(R1_ERUNTIME, "--device cuda", "no CUDA device: %s",
                 e == cudaSuccess ? "none found" : cudaGetErrorString(e));
        return err_hint("%s", cuda_hint(cudaErrorNoDevice));
    }
    if (device < 0 || device >= count)
        return err_fail(R1_EINPUT, "--device cuda", "device %d does not exist (%d visible)",
                        device, count);
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    if (prop.major != 9 || prop.minor != 0) {
        err_fail(R1_ERUNTIME, "--device cuda", "GPU %d (%s) is sm_%d%d; this build's kernels are "
                 "for Hopper (sm_90a)", device, prop.name, prop.major, prop.minor);
        return err_hint("run on an H100/H200, or use --device cpu");
    }
    return R1_OK;
}

/* Inside a recorded decode step too: NCCL collectives may be captured in a CUDA graph. */
static void cu_all_reduce(backend *be, float *x, size_t n) {
    cuda_backend *cu = cu_of(be);
    if (!cu->comm || n == 0) return;
    cuda_comm_all_reduce(cu->comm, x, n, COMM_F32, cu->stream);
    cu_touch(cu, x, sizeof(float) * n);
}

extern "C" void backend_cuda_join(backend *be, struct cuda_comm *comm) {
    cuda_backend *cu = cu_of(be);
    cu->comm = comm;
    be->tp_rank = cuda_comm_rank(comm);
    be->tp_size = cuda_comm_size(comm);
}

extern "C" void backend_cuda_broadcast(backend *be, void *buf, size_t bytes) {
    cuda_backend *cu = cu_of(be);
    CU_REQUIRE(cu->comm, "broadcast without a tensor-parallel group");
    cuda_comm_broadcast(cu->comm, buf, bytes, cu->stream);
    cu_touch(cu, buf, bytes);
}

extern "C" backend *backend_cuda(int device, int mode) {
    if (mode != BACKEND_CUDA_FP32 && mode != BACKEND_CUDA_BF16) {
        err_fail(R1_EINPUT, "CUDA backend", "unknown mode %d", mode);
        return NULL;
    }
    if (backend_cuda_probe(device, NULL)) return NULL;
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    CUDA_CHECK(cudaSetDevice(device));
    cuda_backend *cu = (cuda_backend *)xcalloc(1, sizeof *cu);
    cu->device = device;
    cu->mode = mode;
    cu->sm_count = prop.multiProcessorCount;
    CUDA_CHECK(cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&cu->pinned_free, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(cu->pinned_free, cu->stream));
    const char *g = getenv("R1_CUDA_GRAPHS");
    cu->graphs_on = !(g && strcmp(g, "0") == 0);
    cu->gemv_max = 4;
    /* The skinny kernel serves FP8 weights (no dequantized copy); on BF16 weights cuBLASLt is
     * faster at 5-64 tokens (measured: docs/cuda-inference.md), so it is opt-in there. */
    const char *sk = getenv("R1_CUDA_SKINNY");
    cu->skinny_on = !(sk && strcmp(sk, "0") == 0);
    cu->skinny_bf16 = sk && strcmp(sk, "bf16") == 0;
    /* R1_CUDA_MLA=direct: MLA on the direct kernels in bf16 mode too (mla_cuda.cu), for A/B */
    const char *mla = getenv("R1_CUDA_MLA");
    cu->mla_direct = mla && strcmp(mla, "direct") == 0;
    cu_linear_init(cu);

    backend *be = &cu->be;
    be->name = mode == BACKEND_CUDA_FP32 ? "cuda-fp32" : "cuda-bf16";
    be->alloc = cu_alloc;
    be->release = cu_release;
    be->embed = cu_embed;
    be->rmsnorm = cu_rmsnorm;
    be->linear = cu_linear;
    be->rope = cu_rope;
    be->swiglu = cu_swiglu;
    be->kv_store = cu_kv_store;
    be->add = cu_add;
    be->attention = cu_attention;
    be->zero = cu_zero;
    be->download = cu_download;
    be->copy_strided = cu_copy_strided;
    be->gather_rows = cu_gather_rows;
    be->scatter_add_rows = cu_scatter_add_rows;
    be->mla_q_absorb = cu_mla_q_absorb;
    be->mla_attention = cu_mla_attention;
    be->mla_v_up = cu_mla_v_up;
    be->cache_dtype = mode == BACKEND_CUDA_FP32 ? DTYPE_F32 : DTYPE_BF16;
    be->host_memory = 0;
    be->upload_weight = cu_upload_weight;
    be->unload_weight = cu_unload_weight;
    be->upload = cu_upload;
    be->sync = cu_sync;
    be->graph_begin = cu_graph_begin;
    be->graph_end = cu_graph_end;
    be->linear_add = cu_linear_add;
    be->linear_multi = cu_linear_multi;

    be->rope_store_kv = cu_rope_store_kv;
    be->linear_segments = cu_linear_segments;
    be->combine_rows = cu_combine_rows;
    be->argmax = cu_argmax;
    be->all_reduce = cu_all_reduce;
    be->tp_rank = 0;
    be->tp_size = 1;
    be->destroy = cu_destroy;
    return be;
}

extern "C" void backend_cuda_set_graphs(backend *be, int on) {
    cuda_backend *cu = cu_of(be);
    CU_REQUIRE(!cu->recording, "set_graphs while recording");
    if (!on) cu_drop_graphs(cu);
    cu->graphs_on = on;
}

extern "C" void backend_cuda_set_gemv_max(backend *be, int max_n) {
    cuda_backend *cu = cu_of(be);
    CU_REQUIRE(!cu->recording, "set_gemv_max while recording");
    cu_drop_graphs(cu);
    cu->gemv_max = max_n < 0 ? 0 : max_n > 4 ? 4 : max_n;
}

extern "C" int backend_cuda_is(const backend *be) { return be && be->destroy == cu_destroy; }

extern "C" void backend_cuda_set_skinny_bf16(backend *be, int on) {
    cuda_backend *cu = cu_of(be);
    CU_REQUIRE(!cu->recording, "set_skinny_bf16 while recording");
    cu_drop_graphs(cu);
    cu->skinny_bf16 = on;
}

extern "C" void backend_cuda_graph_stats(backend *be, long *replays, long *recordings) {
    *replays = cu_of(be)->replays;
    *recordings = cu_of(be)->recordings;
}
