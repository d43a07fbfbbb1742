/* The CPU backend: float32 arithmetic, weights dequantized tile by tile as they are used. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static void *cpu_alloc(backend *be, size_t bytes) { return xmalloc(bytes); }
static void cpu_release(backend *be, void *p) { free(p); }

static void cpu_embed(backend *be, float *out, const weight *w, const int *ids, int n) {
    CHECK(!w->device);
    for (int i = 0; i < n; i++) {
        CHECK(ids[i] >= 0 && ids[i] < w->rows);
        weight_rows_to_f32(out + (size_t)i * w->cols, w, ids[i], 1);
    }
}

static void cpu_rmsnorm(backend *be, float *out, const float *x, const weight *g, int n, int d,
                        float eps) {
    float *gf = xmalloc(sizeof(float) * (size_t)d);
    weight_rows_to_f32(gf, g, 0, 1);
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *oi = out + (size_t)i * d;
        float ss = 0.0f;
        for (int j = 0; j < d; j++) ss += xi[j] * xi[j];
        float r = 1.0f / sqrtf(ss / (float)d + eps);
        for (int j = 0; j < d; j++) oi[j] = xi[j] * r * gf[j];
    }
    free(gf);
}

/* Dot product in a fixed order: 8 interleaved partial sums, then a fixed tree. The compiler
 * vectorises the inner loop; the order never depends on the batch. */
static inline float dot_f32(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[j + k] * b[j + k];
    for (; j < n; j++) acc[j & 7] += a[j] * b[j];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

enum { LINEAR_TILE_ROWS = 16 };

/* y = x @ w^T (+ bias), or y += that when accumulate: the sum is formed first and added to y
 * last, so linear_add equals linear followed by add bit for bit. */
static void linear_into(float *y, const float *x, const weight *w, const weight *bias, int n,
                        int accumulate) {
    CHECK(!w->device && (!bias || !bias->device));
    const int64_t rows = w->rows, cols = w->cols;
    const int64_t n_tiles = (rows + LINEAR_TILE_ROWS - 1) / LINEAR_TILE_ROWS;
    float *bf = NULL;
    if (bias) {
        bf = xmalloc(sizeof(float) * (size_t)rows);
        weight_rows_to_f32(bf, bias, 0, 1);
    }
#pragma omp parallel
    {
        float *tile = w->dt == DTYPE_F32 && !w->qtype ? NULL
                                         : xmalloc(sizeof(float) * LINEAR_TILE_ROWS * (size_t)cols);
#pragma omp for schedule(static)
        for (int64_t t = 0; t < n_tiles; t++) {
            int64_t r0 = t * LINEAR_TILE_ROWS;
            int64_t nr = rows - r0 < LINEAR_TILE_ROWS ? rows - r0 : LINEAR_TILE_ROWS;
            const float *wt;
            if (tile) {
                weight_rows_to_f32(tile, w, r0, nr);
                wt = tile;
            } else {
                wt = (const float *)w->data + (size_t)r0 * cols;
            }
            for (int i = 0; i < n; i++) {
                const float *xi = x + (size_t)i * cols;
                float *yi = y + (size_t)i * rows + r0;
                for (int64_t r = 0; r < nr; r++) {
                    float v = dot_f32(xi, wt + (size_t)r * cols, cols);
                    if (bf) v += bf[r0 + r];
                    yi[r] = accumulate ? yi[r] + v : v;
                }
            }
        }
        free(tile);
    }
    free(bf);
}

static void cpu_linear(backend *be, float *y, const float *x, const weight *w, const weight *bias,
                       int n) {
    linear_into(y, x, w, bias, n, 0);
}

static void cpu_linear_add(backend *be, float *y, const float *x, const weight *w,
                           const weight *bias, int n) {
    linear_into(y, x, w, bias, n, 1);
}

static void cpu_linear_multi(backend *be, int k, float *const *y, const float *x,
                             const weight *const *w, const weight *const *bias, int n) {
    for (int j = 0; j < k; j++) linear_into(y[j], x, w[j], bias ? bias[j] : NULL, n, 0);
}

static void cpu_rope(backend *be, float *x, const rope_table *r, const int *pos, int n,
                     int row_stride, int n_heads, int head_stride, int off) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        rope_apply(r, x + (size_t)i * row_stride, n_heads, head_stride, off, pos[i]);
}

static void cpu_swiglu(backend *be, float *out, const float *gate, const float *up, int n, int d,
                       int stride) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            float g = gate[(size_t)i * stride + j];
            out[(size_t)i * d + j] = g / (1.0f + expf(-g)) * up[(size_t)i * stride + j];
        }
}

static void cpu_kv_store(backend *be, void *cache_, const float *src, const token_layout *tl,
                         int width, int max_seq) {
    float *cache = cache_;
    for (int i = 0; i < tl->n; i++) {
        CHECK(tl->pos[i] >= 0 && tl->pos[i] < max_seq);
        memcpy(cache + ((size_t)tl->slot[i] * max_seq + tl->pos[i]) * width,
               src + (size_t)i * width, sizeof(float) * (size_t)width);
    }
}

static void cpu_add(backend *be, float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static void cpu_attention(backend *be, float *out, const float *q, const void *k_cache_,
                          const void *v_cache_, const token_layout *tl, int max_seq, int n_heads,
                          int n_kv_heads, int head_dim, int v_dim, float scale) {
    const float *k_cache = k_cache_, *v_cache = v_cache_;
    const int group = n_heads / n_kv_heads;
    const size_t krow = (size_t)n_kv_heads * head_dim, vrow = (size_t)n_kv_heads * v_dim;
#pragma omp parallel
    {
        float *p = xmalloc(sizeof(float) * (size_t)max_seq);
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int i = 0; i < tl->n; i++)
            for (int h = 0; h < n_heads; h++) {
                const int len = tl->pos[i] + 1, kvh = h / group;
                const float *qi = q + ((size_t)i * n_heads + h) * head_dim;
                const float *kb = k_cache + (size_t)tl->slot[i] * max_seq * krow + (size_t)kvh * head_dim;
                const float *vb = v_cache + (size_t)tl->slot[i] * max_seq * vrow + (size_t)kvh * v_dim;
                float mx = -INFINITY;
                for (int t = 0; t < len; t++) {
                    p[t] = dot_f32(qi, kb + (size_t)t * krow, head_dim) * scale;
                    if (p[t] > mx) mx = p[t];
                }
                float sum = 0.0f;
                for (int t = 0; t < len; t++) {
                    p[t] = expf(p[t] - mx);
                    sum += p[t];
                }
                float *o = out + ((size_t)i * n_heads + h) * v_dim;
                memset(o, 0, sizeof(float) * (size_t)v_dim);
                for (int t = 0; t < len; t++) {
                    const float a = p[t] / sum, *vt = vb + (size_t)t * vrow;
                    for (int j = 0; j < v_dim; j++) o[j] += a * vt[j];
                }
            }
        free(p);
    }
}

static void cpu_zero(backend *be, float *x, size_t n) { memset(x, 0, sizeof(float) * n); }

static void cpu_download(backend *be, void *host, const void *src, size_t n) {
    memcpy(host, src, n);
}

static void cpu_copy_strided(backend *be, float *dst, int dst_stride, const float *src,
                             int src_stride, int n, int width) {
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)i * dst_stride, src + (size_t)i * src_stride,
               sizeof(float) * (size_t)width);
}

static void cpu_gather_rows(backend *be, float *dst, const float *src, const int *rows, int n,
                            int width) {
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)i * width, src + (size_t)rows[i] * width,
               sizeof(float) * (size_t)width);
}

static void cpu_scatter_add_rows(backend *be, float *dst, const float *src, const int *rows,
                                 const float *scale, int n, int width) {
    for (int i = 0; i < n; i++) {
        float *d = dst + (size_t)rows[i] * width;
        const float *x = src + (size_t)i * width;
        for (int j = 0; j < width; j++) d[j] += scale[i] * x[j];
    }
}

/* One head's rows [r0, r0 + nr) of kv_b_proj, dequantized: the tile the absorbed MLA products
 * use. FP8 block scales are looked up by absolute row inside weight_rows_to_f32. */
static void cpu_mla_q_absorb(backend *be, float *q_lat, const float *q, int q_stride,
                             const weight *wkv_b, int n, int n_heads, int nope, int v_dim) {
    const int lat = (int)wkv_b->cols;
#pragma omp parallel
    {
        float *tile = xmalloc(sizeof(float) * ((size_t)nope * lat + 1));
#pragma omp for schedule(static)
        for (int h = 0; h < n_heads; h++) {
            weight_rows_to_f32(tile, wkv_b, (int64_t)h * (nope + v_dim), nope);
            for (int i = 0; i < n; i++) {
                const float *qi = q + ((size_t)i * n_heads + h) * q_stride;
                float *o = q_lat + ((size_t)i * n_heads + h) * lat;
                memset(o, 0, sizeof(float) * (size_t)lat);
                /* model.py: einsum("bshd,hdc->bshc", q_nope, wkv_b[:, :qk_nope_head_dim]) */
                for (int d = 0; d < nope; d++) {
                    const float a = qi[d], *wd = tile + (size_t)d * lat;
                    for (int c = 0; c < lat; c++) o[c] += a * wd[c];
                }
            }
        }
        free(tile);
    }
}

static void cpu_mla_attention(backend *be, float *out, const float *q_lat, const float *q_pe,
                              int pe_stride, const void *kv_cache_, const void *pe_cache_,
                              const token_layout *tl, int max_seq, int n_heads, int lat,
                              int pe_dim, float scale) {
    const float *kv_cache = kv_cache_, *pe_cache = pe_cache_;
#pragma omp parallel
    {
        float *p = xmalloc(sizeof(float) * (size_t)max_seq);
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int i = 0; i < tl->n; i++)
            for (int h = 0; h < n_heads; h++) {
                const int len = tl->pos[i] + 1;
                const float *ql = q_lat + ((size_t)i * n_heads + h) * lat;
                const float *qp = q_pe + ((size_t)i * n_heads + h) * pe_stride;
                const float *kv = kv_cache + (size_t)tl->slot[i] * max_seq * lat;
                const float *pe = pe_cache + (size_t)tl->slot[i] * max_seq * pe_dim;
                /* model.py: (einsum(q_nope, kv_cache) + einsum(q_pe, pe_cache)) * softmax_scale */
                float mx = -INFINITY;
                for (int t = 0; t < len; t++) {
                    p[t] = (dot_f32(ql, kv + (size_t)t * lat, lat) +
                            dot_f32(qp, pe + (size_t)t * pe_dim, pe_dim)) * scale;
                    if (p[t] > mx) mx = p[t];
                }
                float sum = 0.0f;
                for (int t = 0; t < len; t++) {
                    p[t] = expf(p[t] - mx);
                    sum += p[t];
                }
                /* model.py: einsum("bsht,btc->bshc", scores, kv_cache) */
                float *o = out + ((size_t)i * n_heads + h) * lat;
                memset(o, 0, sizeof(float) * (size_t)lat);
                for (int t = 0; t < len; t++) {
                    const float a = p[t] / sum, *vt = kv + (size_t)t * lat;
                    for (int c = 0; c < lat; c++) o[c] += a * vt[c];
                }
            }
        free(p);
    }
}

static void cpu_mla_v_up(backend *be, float *out, const float *o_lat, const weight *wkv_b, int n,
                         int n_heads, int nope, int v_dim) {
    const int lat = (int)wkv_b->cols;
#pragma omp parallel
    {
        float *tile = xmalloc(sizeof(float) * ((size_t)v_dim * lat + 1));
#pragma omp for schedule(static)
        for (int h = 0; h < n_heads; h++) {
            weight_rows_to_f32(tile, wkv_b, (int64_t)h * (nope + v_dim) + nope, v_dim);
            /* model.py: einsum("bshc,hdc->bshd", x, wkv_b[:, -v_head_dim:]) */
            for (int i = 0; i < n; i++) {
                const float *oi = o_lat + ((size_t)i * n_heads + h) * lat;
                float *y = out + ((size_t)i * n_heads + h) * v_dim;
                for (int j = 0; j < v_dim; j++) y[j] = dot_f32(oi, tile + (size_t)j * lat, lat);
            }
        }
        free(tile);
    }
}

/* Host memory is the backend's memory: uploads keep the mapped view, transfers are copies,
 * nothing is queued and nothing is recorded. */
static int cpu_upload_weight(backend *be, weight *w) { return R1_OK; }
static void cpu_unload_weight(backend *be, weight *w) {}
static void cpu_upload(backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
static void cpu_sync(backend *be) {}
static int cpu_graph_begin(backend *be, uint64_t key) { return 0; }
static void cpu_graph_end(backend *be) {}
static void cpu_destroy(backend *be) {}

static void cpu_rope_store_kv(backend *be, float *q, float *k, const float *v, void *k_cache,
                              void *v_cache, const rope_table *r, const token_layout *tl,
                              int n_heads, int n_kv_heads, int head_dim, int max_seq) {
    const int qd = n_heads * head_dim, kvd = n_kv_heads * head_dim;
    cpu_rope(be, q, r, tl->pos, tl->n, qd, n_heads, head_dim, 0);
    cpu_rope(be, k, r, tl->pos, tl->n, kvd, n_kv_heads, head_dim, 0);
    cpu_kv_store(be, k_cache, k, tl, kvd, max_seq);
    cpu_kv_store(be, v_cache, v, tl, kvd, max_seq);
}

static void cpu_linear_segments(backend *be, float *y, const float *x, const weight *w,
                                const int *seg, int n_w, int n) {
    for (int e = 0; e < n_w; e++) {
        const int r0 = seg[e], cnt = seg[e + 1] - seg[e];
        if (cnt > 0)
            cpu_linear(be, y + (size_t)r0 * w[e].rows, x + (size_t)r0 * w[e].cols, &w[e], NULL,
                       cnt);
    }
}

static void cpu_combine_rows(backend *be, float *dst, const float *src, const int *idx,
                             const float *scale, int n, int K, int width) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *d = dst + (size_t)i * width;
        for (int k = 0; k < K; k++) {
            const float s = scale[(size_t)i * K + k];
            const float *x = src + (size_t)idx[(size_t)i * K + k] * width;
            for (int j = 0; j < width; j++) d[j] += s * x[j];
        }
    }
}

static void cpu_argmax(backend *be, int *out, const float *x, int n, int d) {
    for (int i = 0; i < n; i++) {
        const float *r = x + (size_t)i * d;
        int best = 0;
        for (int j = 1; j < d; j++)
            if (r[j] > r[best] || (r[best] != r[best] && r[j] == r[j])) best = j;
        out[i] = best;
    }
}

/* The CPU is never part of a tensor-parallel group: the sum over one rank is x itself. */
static void cpu_all_reduce(backend *be, float *x, size_t n) {}

static backend cpu_backend = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .release = cpu_release,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .linear = cpu_linear,
    .rope = cpu_rope,
    .swiglu = cpu_swiglu,
    .kv_store = cpu_kv_store,
    .add = cpu_add,
    .attention = cpu_attention,
    .zero = cpu_zero,
    .download = cpu_download,
    .copy_strided = cpu_copy_strided,
    .gather_rows = cpu_gather_rows,
    .scatter_add_rows = cpu_scatter_add_rows,
    .mla_q_absorb = cpu_mla_q_absorb,
    .mla_attention = cpu_mla_attention,
    .mla_v_up = cpu_mla_v_up,
    .cache_dtype = DTYPE_F32,
    .host_memory = 1,
    .upload_weight = cpu_upload_weight,
    .unload_weight = cpu_unload_weight,
    .upload = cpu_upload,
    .sync = cpu_sync,
    .graph_begin = cpu_graph_begin,
    .graph_end = cpu_graph_end,
    .linear_add = cpu_linear_add,
    .linear_multi = cpu_linear_multi,
    .rope_store_kv = cpu_rope_store_kv,
    .linear_segments = cpu_linear_segments,
    .combine_rows = cpu_combine_rows,
    .argmax = cpu_argmax,
    .all_reduce = cpu_all_reduce,
    .tp_rank = 0,
    .tp_size = 1,
    .destroy = cpu_destroy,
};

backend *backend_cpu(void) { return &cpu_backend; }
