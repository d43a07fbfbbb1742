/* Shared between the CUDA backend's files: the backend state, check macros, element loads and
 * the workspace allocator. Declarations and inline helpers only. */
#ifndef R1_CORE_CUDA_INTERNAL_CUH
#define R1_CORE_CUDA_INTERNAL_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "core/cuda/warp_reduce.cuh"

extern "C" {
#include "core/backend.h"
#include "core/backend_cuda.h"
#include "core/error.h"
}

/* ---- checks: every CUDA and cuBLASLt call; a failure prints file, line, the call, the error
 * and a hint, then exits 1 (ops cannot return errors, and a device fault poisons the context) */
[[noreturn]] void cuda_fail(const char *file, int line, const char *call, const char *error,
                            const char *hint);
const char *cuda_hint(cudaError_t e);
const char *cublas_status_name(cublasStatus_t s);

#define CUDA_CHECK(call)                                                                     \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        if (e_ != cudaSuccess)                                                               \
            cuda_fail(__FILE__, __LINE__, #call, cudaGetErrorString(e_), cuda_hint(e_));     \
    } while (0)
#define CUBLAS_CHECK(call)                                                                   \
    do {                                                                                     \
        cublasStatus_t s_ = (call);                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                     \
            cuda_fail(__FILE__, __LINE__, #call, cublas_status_name(s_),                     \
                      "check the shapes, types and alignment cuBLASLt was given");           \
    } while (0)
/* After every kernel launch: a bad configuration shows here, a fault at the next sync. */
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

/* An internal invariant with a message (a bug in this program). */
#define CU_REQUIRE(cond, ...)                                                                \
    do {                                                                                     \
        if (!(cond)) cuda_bug(__FILE__, __LINE__, #cond, __VA_ARGS__);                       \
    } while (0)
[[noreturn]] void cuda_bug(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- backend state ---- */
enum { CU_MAX_GRAPHS = 64, CU_MAX_ROPES = 16 };

/* Workspaces owned by the backend, grown on demand (never while recording a graph). */
enum { WS_XBF16, WS_ATTN, WS_DEQUANT, WS_SPLITK, WS_SEGMENTS, WS_TUNE, WS_MLA, WS_COUNT };

struct cu_graph {
    uint64_t key;
    cudaGraphExec_t exec; /* NULL until recorded */
    uint64_t last_use;
};

/* A rope table's inverse frequencies on the device, found by table address and checked by
 * content (so a freed table whose address is reused is not mistaken for the old one). */
struct cu_rope {
    const rope_table *host;
    float *host_copy; /* [dim/2] */
    float *dev;       /* [dim/2] */
    int dim;
};

struct cu_linear_state; /* linear_cuda.cu */

/* A weight array's per-expert data and scale pointers in device memory (skinny_cuda.cu). */
struct cu_etab {
    const weight *host;
    int n;
    void *dev;
};

struct cuda_backend {
    backend be; /* first: a backend * is a cuda_backend * */
    int device, mode;
    int sm_count;
    cudaStream_t stream;

    void *ws[WS_COUNT];
    size_t ws_size[WS_COUNT];

    /* host staging for write(): pinned, so the copy is asynchronous */
    void *pinned;
    size_t pinned_size;
    cudaEvent_t pinned_free; /* recorded after the last copy out of `pinned` */

    int graphs_on;
    cu_graph graphs[CU_MAX_GRAPHS];
    int n_graphs;
    uint64_t clock;
    cu_graph *recording; /* the graph being captured, or NULL */
    long replays, recordings;

    cu_rope ropes[CU_MAX_ROPES];
    int n_ropes;

    cu_linear_state *lin;
    int gemv_max;
    int skinny_on;   /* bf16 mode: skinny_cuda.cu for FP8 weights (R1_CUDA_SKINNY=0: off) */
    int skinny_bf16; /* ... and for BF16 weights of 5..64 tokens (R1_CUDA_SKINNY=bf16) */
    int *skinny_sem; /* its split-K counters */
    /* every weight array linear_segments has seen (a DeepSeek model has 3 per MoE layer and 2 per
     * MLA layer): never evicted, since a recorded pass must not make one */
    cu_etab *etabs;
    int n_etabs, cap_etabs;
    struct cu_mla_tab *mla; /* per kv_b_proj: the per-head weights of the MLA fast path */
    int n_mla;
    int mla_direct;         /* R1_CUDA_MLA=direct: no MLA fast paths */

    /* The bf16 copy of the last activation converted for a GEMM (q, k and v share one input,
     * so do gate and up): valid while nothing may have written the source. */
    const float *xbf_src;
    int64_t xbf_count;
    int xbf_valid;

    struct cuda_comm *comm; /* the tensor-parallel group (backend_cuda_join), or NULL */

    /* Per-op timing (profile_cuda.cu): the ops' real entries while the table holds wrappers. */
    struct cu_prof *prof;
    backend orig;
    int prof_graphs; /* graphs_on before profiling turned it off */
};

static inline cuda_backend *cu_of(backend *be) { return (cuda_backend *)be; }

/* Workspace `which` of at least `bytes` (grown with a sync; recorded graphs are dropped then,
 * since they point at the old one). */
void *cu_workspace(cuda_backend *cu, int which, size_t bytes);
/* Drops every recorded graph (memory they point to is going away). */
void cu_drop_graphs(cuda_backend *cu);
/* The conversion cache may be stale after any op but linear. */
static inline void cu_invalidate_xbf(cuda_backend *cu) { cu->xbf_valid = 0; }
/* A write to [p, p + bytes) invalidates the conversion cache if it overlaps its source. */
static inline void cu_touch(cuda_backend *cu, const void *p, size_t bytes) {
    const char *a = (const char *)p, *s = (const char *)cu->xbf_src;
    if (cu->xbf_valid && a < s + cu->xbf_count * 4 && s < a + bytes) cu->xbf_valid = 0;
}
/* Blocks for an n-element grid-stride loop. */
static inline unsigned cu_blocks(int64_t n, int threads, int64_t cap) {
    int64_t b = (n + threads - 1) / threads;
    if (b > cap) b = cap;
    return (unsigned)(b < 1 ? 1 : b);
}

/* ---- profile_cuda.cu ---- */
void cu_prof_free(cuda_backend *cu);

/* ---- linear_cuda.cu ---- */
void cu_linear_init(cuda_backend *cu);
void cu_linear_free(cuda_backend *cu);
void cu_linear(backend *be, float *y, const float *x, const weight *w, const weight *bias, int n);
void cu_linear_add(backend *be, float *y, const float *x, const weight *w, const weight *bias,
                   int n);
void cu_linear_multi(backend *be, int k, float *const *y, const float *x, const weight *const *w,
                     const weight *const *bias, int n);
/* Converts n elements of weight data from src_dt (F32, F16, BF16, or F8_E4M3 with block
 * scales) to dst_dt (F32 or BF16) on the stream. */
void cu_convert_weight(cuda_backend *cu, void *dst, dtype dst_dt, const void *src, dtype src_dt,
                       const float *scale_inv, int64_t rows, int64_t cols, int block_rows,
                       int block_cols);

/* x as bf16 (cached for the next linear of the same input; linear_cuda.cu). */
const __nv_bfloat16 *cu_x_bf16(cuda_backend *cu, const float *x, int64_t count);

/* ---- skinny_cuda.cu ---- */
/* 1 when the tensor-core kernel takes these weights for n tokens: 1..64 tokens, 1..4 matrices of
 * one type (BF16 with K % 32 == 0, or FP8 with K % 64 == 0 and scale blocks of whole 16 rows
 * and 64 columns) and width, 16-byte aligned. */
int cu_skinny_fits(int n, const weight *const *w, int k);
/* y[j] (+)= x @ w[j]^T (+ bias[j]) for j < k; x is bf16 [n, cols]. */
void cu_skinny(cuda_backend *cu, int k, float *const *y, const __nv_bfloat16 *xb,
               const weight *const *w, const float *const *bias, int n, int accumulate);
void cu_linear_segments(backend *be, float *y, const float *x, const weight *w, const int *seg,
                        int E, int n);
/* Frees the expert tables (weights are going away); drops recorded graphs. */
void cu_drop_expert_tables(cuda_backend *cu);
/* Frees the MLA fast path's tables (mla_cuda.cu); after cu_drop_expert_tables. */
void cu_drop_mla_tables(cuda_backend *cu);

/* ---- attention_cuda.cu ---- */
void cu_attention(backend *be, float *out, const float *q, const void *k_cache,
                  const void *v_cache, const token_layout *tl, int max_seq, int n_heads,
                  int n_kv_heads, int head_dim, int v_dim, float scale);

/* ---- mla_cuda.cu ---- */
void cu_mla_q_absorb(backend *be, float *q_lat, const float *q, int q_stride, const weight *wkv_b,
                     int n, int n_heads, int nope, int v_dim);
void cu_mla_attention(backend *be, float *out, const float *q_lat, const float *q_pe,
                      int pe_stride, const void *kv_cache, const void *pe_cache,
                      const token_layout *tl, int max_seq, int n_heads, int lat, int pe_dim,
                      float scale);
void cu_mla_v_up(backend *be, float *out, const float *o_lat, const weight *wkv_b, int n,
                 int n_heads, int nope, int v_dim);

/* ---- device helpers ---- */
__device__ __forceinline__ float bf16_lo(uint32_t u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }

/* 8 consecutive elements (16 bytes of bf16, 32 of float32) as float; p 16-byte aligned. */
__device__ __forceinline__ void load8(float (&v)[8], const __nv_bfloat16 *p) {
    uint4 u = *reinterpret_cast<const uint4 *>(p);
    v[0] = bf16_lo(u.x), v[1] = bf16_hi(u.x), v[2] = bf16_lo(u.y), v[3] = bf16_hi(u.y);
    v[4] = bf16_lo(u.z), v[5] = bf16_hi(u.z), v[6] = bf16_lo(u.w), v[7] = bf16_hi(u.w);
}
__device__ __forceinline__ void load8(float (&v)[8], const float *p) {
    float4 a = *reinterpret_cast<const float4 *>(p), b = *reinterpret_cast<const float4 *>(p + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

/* c += a b on tensor cores: mma.sync m16n8k16, bf16 operands, float32 accumulators (PTX
 * fragment layouts: lane = 4 g + t holds A rows g and g + 8, columns 2t, 2t + 1, 2t + 8, 2t + 9;
 * B columns (n) g, rows (k) 2t, 2t + 1, 2t + 8, 2t + 9; C rows g, g + 8, columns 2t, 2t + 1). */
__device__ __forceinline__ void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void from_f32(float *p, float v) { *p = v; }
__device__ __forceinline__ void from_f32(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

/* One element of an uploaded weight (F32, BF16 or FP8 with block scales) as float. */
struct wview {
    const void *data;
    const float *scale;
    int dt;
    int64_t cols;
    int br, bc;
    int64_t scale_cols;
};

static inline wview view_of(const weight *w) {
    wview v;
    v.data = w->data;
    v.scale = w->scale_inv;
    v.dt = (int)w->dt;
    v.cols = w->cols;
    v.br = w->block_rows > 0 ? w->block_rows : 1;
    v.bc = w->block_cols > 0 ? w->block_cols : 1;
    v.scale_cols = (w->cols + v.bc - 1) / v.bc;
    return v;
}

__device__ __forceinline__ float fp8_e4m3_value(uint8_t b) {
    const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    float v;
    if (e == 15 && m == 7) v = __int_as_float(0x7fc00000);
    else if (e == 0) v = ldexpf((float)m, -9); /* subnormal: m/8 * 2^-6 */
    else v = ldexpf((float)(8 + m), e - 10);   /* (1 + m/8) * 2^(e-7) */
    return s ? -v : v;
}

__device__ __forceinline__ float wget(const wview &w, int64_t r, int64_t c) {
    const int64_t i = r * w.cols + c;
    switch (w.dt) {
    case DTYPE_F32: return ((const float *)w.data)[i];
    case DTYPE_BF16: return __bfloat162float(((const __nv_bfloat16 *)w.data)[i]);
    default:
        return fp8_e4m3_value(((const uint8_t *)w.data)[i]) *
               w.scale[(r / w.br) * w.scale_cols + c / w.bc];
    }
}

#endif
