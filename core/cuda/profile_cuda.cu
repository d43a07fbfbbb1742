/* Per-op GPU time for benchmarks (backend_cuda_profile): while on, the backend table's op
 * entries are wrappers that record a CUDA event before and after the real op; pairs are read
 * back in batches and summed by (op, shape). Graph recording is off meanwhile, so the times are
 * those of eager launches: kernel time plus any gap the host leaves between launches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cuda/cuda_internal.cuh"

enum { PROF_PAIRS = 2048, PROF_ENTRIES = 512 };

struct prof_entry {
    const char *op;
    int64_t a, b, c; /* shape: linear rows, cols, tokens; others their own sizes */
    double bytes;    /* per call, for linears (weight bytes) */
    long calls;
    double ms;
};

struct cu_prof {
    cudaEvent_t ev[PROF_PAIRS][2];
    int pending[PROF_PAIRS]; /* entry index of each recorded pair */
    int n_pending;
    prof_entry e[PROF_ENTRIES];
    int n_entries;
    int dropped;
};

static void prof_flush(cuda_backend *cu) {
    cu_prof *p = cu->prof;
    if (!p->n_pending) return;
    CUDA_CHECK(cudaEventSynchronize(p->ev[p->n_pending - 1][1]));
    for (int i = 0; i < p->n_pending; i++) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, p->ev[i][0], p->ev[i][1]));
        p->e[p->pending[i]].ms += ms;
        p->e[p->pending[i]].calls++;
    }
    p->n_pending = 0;
}

static int prof_begin(cuda_backend *cu, const char *op, int64_t a, int64_t b, int64_t c,
                      double bytes) {
    cu_prof *p = cu->prof;
    if (p->n_pending == PROF_PAIRS) prof_flush(cu);
    int k = -1;
    for (int i = 0; i < p->n_entries && k < 0; i++)
        if (p->e[i].op == op && p->e[i].a == a && p->e[i].b == b && p->e[i].c == c) k = i;
    if (k < 0) {
        if (p->n_entries == PROF_ENTRIES) {
            p->dropped++;
            return -1;
        }
        k = p->n_entries++;
        prof_entry z = {op, a, b, c, bytes, 0, 0.0};
        p->e[k] = z;
    }
    const int slot = p->n_pending++;
    p->pending[slot] = k;
    CUDA_CHECK(cudaEventRecord(p->ev[slot][0], cu->stream));
    return slot;
}

static void prof_end(cuda_backend *cu, int slot) {
    if (slot >= 0) CUDA_CHECK(cudaEventRecord(cu->prof->ev[slot][1], cu->stream));
}

static double wbytes(const weight *w) { return (double)w->rows * w->cols * dtype_size(w->dt); }

#define ORIG cu_of(be)->orig
#define TIMED(op, a, b, c, bytes, call)                                                      \
    do {                                                                                     \
        const int s_ = prof_begin(cu_of(be), op, a, b, c, bytes);                            \
        call;                                                                                \
        prof_end(cu_of(be), s_);                                                             \
    } while (0)

static void p_embed(backend *be, float *out, const weight *w, const int *ids, int n) {
    TIMED("embed", n, w->cols, 0, 0, ORIG.embed(be, out, w, ids, n));
}
static void p_rmsnorm(backend *be, float *out, const float *x, const weight *g, int n, int d,
                      float eps) {
    TIMED("rmsnorm", n, d, 0, 0, ORIG.rmsnorm(be, out, x, g, n, d, eps));
}
static void p_linear(backend *be, float *y, const float *x, const weight *w, const weight *bias,
                     int n) {
    TIMED("linear", w->rows, w->cols, n, wbytes(w), ORIG.linear(be, y, x, w, bias, n));
}
static void p_linear_add(backend *be, float *y, const float *x, const weight *w,
                         const weight *bias, int n) {
    TIMED("linear_add", w->rows, w->cols, n, wbytes(w), ORIG.linear_add(be, y, x, w, bias, n));
}
static void p_linear_multi(backend *be, int k, float *const *y, const float *x,
                           const weight *const *w, const weight *const *bias, int n) {
    int64_t rows = 0;
    double bytes = 0;
    for (int j = 0; j < k; j++) rows += w[j]->rows, bytes += wbytes(w[j]);
    TIMED("linear_multi", rows, w[0]->cols, n, bytes, ORIG.linear_multi(be, k, y, x, w, bias, n));
}
static void p_rope(backend *be, float *x, const rope_table *r, const int *pos, int n,
                   int row_stride, int n_heads, int head_stride, int off) {
    TIMED("rope", n, n_heads, r->dim, 0,
          ORIG.rope(be, x, r, pos, n, row_stride, n_heads, head_stride, off));
}
static void p_swiglu(backend *be, float *out, const float *gate, const float *up, int n, int d,
                     int stride) {
    TIMED("swiglu", n, d, 0, 0, ORIG.swiglu(be, out, gate, up, n, d, stride));
}
static void p_kv_store(backend *be, void *cache, const float *src, const token_layout *tl,
                       int width, int max_seq) {
    TIMED("kv_store", tl->n, width, 0, 0, ORIG.kv_store(be, cache, src, tl, width, max_seq));
}
static void p_add(backend *be, float *x, const float *y, size_t n) {
    TIMED("add", (int64_t)n, 0, 0, 0, ORIG.add(be, x, y, n));
}
static void p_attention(backend *be, float *out, const float *q, const void *k_cache,
                        const void *v_cache, const token_layout *tl, int max_seq, int n_heads,
                        int n_kv_heads, int head_dim, int v_dim, float scale) {
    TIMED("attention", tl->n, n_heads, max_seq, 0,
          ORIG.attention(be, out, q, k_cache, v_cache, tl, max_seq, n_heads, n_kv_heads, head_dim,
                         v_dim, scale));
}
static void p_zero(backend *be, float *x, size_t n) {
    TIMED("zero", (int64_t)n, 0, 0, 0, ORIG.zero(be, x, n));
}
static void p_copy_strided(backend *be, float *dst, int dst_stride, const float *src,
                           int src_stride, int n, int width) {
    TIMED("copy_strided", n, width, 0, 0,
          ORIG.copy_strided(be, dst, dst_stride, src, src_stride, n, width));
}
static void p_gather_rows(backend *be, float *dst, const float *src, const int *rows, int n,
                          int width) {
    TIMED("gather_rows", n, width, 0, 0, ORIG.gather_rows(be, dst, src, rows, n, width));
}
static void p_scatter_add_rows(backend *be, float *dst, const float *src, const int *rows,
                               const float *scale, int n, int width) {
    TIMED("scatter_add", n, width, 0, 0, ORIG.scatter_add_rows(be, dst, src, rows, scale, n, width));
}
static void p_mla_q_absorb(backend *be, float *q_lat, const float *q, int q_stride,
                           const weight *wkv_b, int n, int n_heads, int nope, int v_dim) {
    TIMED("mla_q_absorb", n, n_heads, wkv_b->cols, wbytes(wkv_b),
          ORIG.mla_q_absorb(be, q_lat, q, q_stride, wkv_b, n, n_heads, nope, v_dim));
}
static void p_mla_attention(backend *be, float *out, const float *q_lat, const float *q_pe,
                            int pe_stride, const void *kv_cache, const void *pe_cache,
                            const token_layout *tl, int max_seq, int n_heads, int lat, int pe_dim,
                            float scale) {
    TIMED("mla_attention", tl->n, n_heads, max_seq, 0,
          ORIG.mla_attention(be, out, q_lat, q_pe, pe_stride, kv_cache, pe_cache, tl, max_seq,
                             n_heads, lat, pe_dim, scale));
}
static void p_mla_v_up(backend *be, float *out, const float *o_lat, const weight *wkv_b, int n,
                       int n_heads, int nope, int v_dim) {
    TIMED("mla_v_up", n, n_heads, wkv_b->cols, wbytes(wkv_b),
          ORIG.mla_v_up(be, out, o_lat, wkv_b, n, n_heads, nope, v_dim));
}
static void p_rope_store_kv(backend *be, float *q, float *k, const float *v, void *k_cache,
                            void *v_cache, const rope_table *r, const token_layout *tl,
                            int n_heads, int n_kv_heads, int head_dim, int max_seq) {
    TIMED("rope_store_kv", tl->n, n_heads, n_kv_heads, 0,
          ORIG.rope_store_kv(be, q, k, v, k_cache, v_cache, r, tl, n_heads, n_kv_heads, head_dim,
                             max_seq));
}
static void p_linear_segments(backend *be, float *y, const float *x, const weight *w,
                              const int *seg, int n_w, int n) {
    TIMED("linear_segments", w[0].rows, w[0].cols, n, 0,
          ORIG.linear_segments(be, y, x, w, seg, n_w, n));
}
static void p_combine_rows(backend *be, float *dst, const float *src, const int *idx,
                           const float *scale, int n, int K, int width) {
    TIMED("combine_rows", n, K, width, 0, ORIG.combine_rows(be, dst, src, idx, scale, n, K, width));
}
static void p_argmax(backend *be, int *out, const float *x, int n, int d) {
    TIMED("argmax", n, d, 0, 0, ORIG.argmax(be, out, x, n, d));
}
void cu_prof_free(cuda_backend *cu) {
    cu_prof *p = cu->prof;
    if (!p) return;
    for (int i = 0; i < PROF_PAIRS; i++)
        for (int j = 0; j < 2; j++) CUDA_CHECK(cudaEventDestroy(p->ev[i][j]));
    free(p);
    cu->prof = NULL;
}

extern "C" void backend_cuda_profile(backend *be, int on) {
    cuda_backend *cu = cu_of(be);
    CU_REQUIRE(!cu->recording, "profile switch while recording a CUDA graph");
    if (!on) {
        if (cu->prof) {
            prof_flush(cu);
            cu->be = cu->orig;
            cu->graphs_on = cu->prof_graphs;
            cu_prof_free(cu);
        }
        return;
    }
    if (!cu->prof) {
        cu->prof = (cu_prof *)xcalloc(1, sizeof(cu_prof));
        for (int i = 0; i < PROF_PAIRS; i++)
            for (int j = 0; j < 2; j++) CUDA_CHECK(cudaEventCreate(&cu->prof->ev[i][j]));
        cu->orig = cu->be;
        cu_drop_graphs(cu);
        cu->prof_graphs = cu->graphs_on;
        cu->graphs_on = 0;
        be->embed = p_embed;
        be->rmsnorm = p_rmsnorm;
        be->linear = p_linear;
        be->linear_add = p_linear_add;
        be->linear_multi = p_linear_multi;
        be->rope = p_rope;
        be->swiglu = p_swiglu;
        be->kv_store = p_kv_store;
        be->add = p_add;
        be->attention = p_attention;
        be->zero = p_zero;
        be->copy_strided = p_copy_strided;
        be->gather_rows = p_gather_rows;
        be->scatter_add_rows = p_scatter_add_rows;
        be->mla_q_absorb = p_mla_q_absorb;
        be->mla_attention = p_mla_attention;
        be->mla_v_up = p_mla_v_up;
        be->argmax = p_argmax;
        be->rope_store_kv = p_rope_store_kv;
        be->linear_segments = p_linear_segments;
        be->combine_rows = p_combine_rows;
    }
    cu->prof->n_pending = 0;
    cu->prof->n_entries = 0;
    cu->prof->dropped = 0;
}

static int by_time(const void *a, const void *b) {
    const prof_entry *x = (const prof_entry *)a, *y = (const prof_entry *)b;
    return (x->ms < y->ms) - (x->ms > y->ms);
}

extern "C" void backend_cuda_profile_report(backend *be, FILE *f) {
    cuda_backend *cu = cu_of(be);
    cu_prof *p = cu->prof;
    if (!p) return;
    prof_flush(cu);
    qsort(p->e, (size_t)p->n_entries, sizeof(prof_entry), by_time);
    double total = 0;
    for (int i = 0; i < p->n_entries; i++) total += p->e[i].ms;
    fprintf(f, "profile: %.3f ms of op time in %d (op, shape) kinds%s\n", total, p->n_entries,
            p->dropped ? " (some dropped: table full)" : "");
    fprintf(f, "  %-13s %30s %8s %10s %9s %6s %9s\n", "op", "shape", "calls", "total ms",
            "mean us", "%", "GB/s");
    for (int i = 0; i < p->n_entries; i++) {
        const prof_entry *e = &p->e[i];
        char shape[64];
        snprintf(shape, sizeof shape, "%lld x %lld x %lld", (long long)e->a, (long long)e->b,
                 (long long)e->c);
        const double mean_us = e->calls ? e->ms * 1e3 / e->calls : 0;
        char gbps[16] = "";
        if (e->bytes > 0 && e->ms > 0)
            snprintf(gbps, sizeof gbps, "%.0f", e->bytes * e->calls / (e->ms * 1e6));
        fprintf(f, "  %-13s %30s %8ld %10.3f %9.1f %6.2f %9s\n", e->op, shape, e->calls, e->ms,
                mean_us, total > 0 ? 100 * e->ms / total : 0.0, gbps);
    }
}

extern "C" void backend_cuda_profile_json(backend *be, FILE *f) {
    cuda_backend *cu = cu_of(be);
    cu_prof *p = cu->prof;
    if (!p) return;
    prof_flush(cu);
    for (int i = 0; i < p->n_entries; i++) {
        const prof_entry *e = &p->e[i];
        fprintf(f, "{\"kind\": \"op\", \"op\": \"%s\", \"a\": %lld, \"b\": %lld, \"c\": %lld, "
                   "\"calls\": %ld, \"ms\": %.6f, \"bytes\": %.0f}\n",
                e->op, (long long)e->a, (long long)e->b, (long long)e->c, e->calls, e->ms,
                e->bytes);
    }
}
