/* The CUDA student's parameters and optimizer state in and out (see student/train_cuda.h): from
 * and to host arrays on one GPU, through pinned staging for the host's AdamW, and bucket by
 * bucket from a reader, or gathered from the ranks' pieces, under data parallel. */
#ifdef R1_HAVE_CUDA

#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/weight.h"
#include "student/student.h"
#include "student/train_cuda_internal.h"

/* ---- parameters in and out ---------------------------------------------------------------------------- */

/* Master weights [off, off + n) of a student on one GPU from and to the host, split and joined
 * there. */
static void master_put(cuda_student *s, size_t off, const float *src, size_t n) {
    CHECK(!s->o.host_optimizer);
    uint16_t *hi = xmalloc(sizeof(uint16_t) * n), *lo = xmalloc(sizeof(uint16_t) * n);
    for (size_t j = 0; j < n; j++) {
        hi[j] = f32_split_hi(src[j]);
        lo[j] = f32_split_lo(src[j]);
    }
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
    R1_CUDA_CHECK(cudaMemcpy(s->w + off, hi, sizeof(uint16_t) * n, cudaMemcpyHostToDevice));
    R1_CUDA_CHECK(cudaMemcpy(s->w_lo + off, lo, sizeof(uint16_t) * n, cudaMemcpyHostToDevice));
    free(hi);
    free(lo);
}

static void master_get(const cuda_student *s, size_t off, float *dst, size_t n) {
    CHECK(!s->o.host_optimizer);
    uint16_t *hi = xmalloc(sizeof(uint16_t) * n), *lo = xmalloc(sizeof(uint16_t) * n);
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
    R1_CUDA_CHECK(cudaMemcpy(hi, s->w + off, sizeof(uint16_t) * n, cudaMemcpyDeviceToHost));
    R1_CUDA_CHECK(cudaMemcpy(lo, s->w_lo + off, sizeof(uint16_t) * n, cudaMemcpyDeviceToHost));
    for (size_t j = 0; j < n; j++) dst[j] = f32_join(hi[j], lo[j]);
    free(hi);
    free(lo);
}

static void reset_state(cuda_student *s) {
    CHECK(s->R == 1); /* sharded students get their state through cuda_student_put_state */
    CHECK(!s->o.host_optimizer);
    const size_t T = s->total;
    R1_CUDA_CHECK(cudaMemsetAsync(s->adam_m, 0, T * sizeof(float), s->stream));
    R1_CUDA_CHECK(cudaMemsetAsync(s->adam_v, 0, T * sizeof(float), s->stream));
    R1_CUDA_CHECK(cudaMemsetAsync(s->grad, 0, T * s->gsize, s->stream));
    s->step = 0;
}

int cuda_student_load(cuda_student *s, const safetensors *st) {
    CHECK(s->R == 1);
    size_t biggest = 0;
    for (int i = 0; i < s->n_params; i++) {
        const size_t ne = (size_t)(s->params[i].rows * s->params[i].cols);
        biggest = ne > biggest ? ne : biggest;
    }
    float *buf = xmalloc(sizeof(float) * biggest);
    for (int i = 0; i < s->n_params; i++) {
        const cuda_param *p = &s->params[i];
        weight w;
        int rc = weight_load(&w, st, p->name, p->rows == 1 ? 0 : p->rows, p->cols, NULL,
                             "the student's config.json");
        if (rc) {
            free(buf);
            return rc;
        }
        weight_rows_to_f32(buf, &w, 0, w.rows);
        master_put(s, p->offset, buf, (size_t)(p->rows * p->cols));
    }
    free(buf);
    reset_state(s);
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
    return R1_OK;
}

void cuda_student_init_random(cuda_student *s, uint64_t seed, float std) {
    CHECK(s->R == 1 && !s->o.host_optimizer);
    for (int i = 0; i < s->n_params; i++) {
        const cuda_param *p = &s->params[i];
        const size_t ne = (size_t)(p->rows * p->cols);
        const int is_norm = strstr(p->name, "norm") != NULL, is_bias = strstr(p->name, "bias") != NULL;
        r1_bf16 *w = s->w + p->offset;
        uint16_t *lo = s->w_lo + p->offset;
        if (is_norm)
            fill_master(w, lo, ne, 1.0f, s->stream);
        else if (is_bias)
            fill_master(w, lo, ne, 0.0f, s->stream);
        else
            fill_normal_master(w, lo, ne, seed * 1000003u + (uint64_t)i, std, s->stream);
    }
    reset_state(s);
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
}

/* The moments' and gradients' arrays (the master weights go through master_put, master_get). */
static void *tensor_ptr(const cuda_student *s, cuda_tensor_kind kind, size_t off, size_t *esize,
                        int *is_bf16) {
    CHECK(s->R == 1 && kind != CUDA_MASTER);
    CHECK(kind == CUDA_GRAD || !s->o.host_optimizer);
    *is_bf16 = 0;
    *esize = sizeof(float);
    switch (kind) {
    case CUDA_ADAM_M: return s->adam_m + off;
    case CUDA_ADAM_V: return s->adam_v + off;
    default:
        *esize = s->gsize;
        *is_bf16 = s->gsize == 2;
        return (char *)s->grad + off * s->gsize;
    }
}

void cuda_student_download(const cuda_student *s, cuda_tensor_kind kind, int i, float *dst) {
    const cuda_param *p = &s->params[i];
    const size_t ne = (size_t)(p->rows * p->cols);
    if (kind == CUDA_MASTER) {
        CHECK(s->R == 1);
        master_get(s, p->offset, dst, ne);
        return;
    }
    size_t es;
    int is_bf16;
    const void *src = tensor_ptr(s, kind, p->offset, &es, &is_bf16);
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
    if (!is_bf16) {
        R1_CUDA_CHECK(cudaMemcpy(dst, src, ne * sizeof(float), cudaMemcpyDeviceToHost));
        return;
    }
    uint16_t *tmp = xmalloc(sizeof(uint16_t) * ne);
    R1_CUDA_CHECK(cudaMemcpy(tmp, src, ne * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    dtype_to_f32(dst, tmp, DTYPE_BF16, ne);
    free(tmp);
}

void cuda_student_upload(cuda_student *s, cuda_tensor_kind kind, int i, const float *src) {
    CHECK(kind != CUDA_GRAD);
    const cuda_param *p = &s->params[i];
    const size_t ne = (size_t)(p->rows * p->cols);
    if (kind == CUDA_MASTER) {
        CHECK(s->R == 1);
        master_put(s, p->offset, src, ne);
        return;
    }
    size_t es;
    int is_bf16;
    float *dst = tensor_ptr(s, kind, p->offset, &es, &is_bf16);
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
    R1_CUDA_CHECK(cudaMemcpy(dst, src, ne * sizeof(float), cudaMemcpyHostToDevice));
}

/* ---- the host's optimizer state (host_optimizer) --------------------------------------------------- */

/* Tensor i's values [*lo, *hi) that lie in this rank's piece of its bucket k: all of them on one
 * GPU, perhaps none with several (an empty range is [0, 0)). */
static void mine_of(const cuda_student *s, int k, int i, size_t *lo, size_t *hi) {
    const cuda_param *p = &s->params[i];
    const size_t t0 = p->offset, t1 = t0 + (size_t)(p->rows * p->cols);
    const size_t a = piece_global(s, k), b = a + piece_len(s, k);
    const size_t x0 = a > t0 ? a : t0, x1 = b < t1 ? b : t1;
    *lo = x0 < x1 ? x0 - t0 : 0;
    *hi = x0 < x1 ? x1 - t0 : 0;
}

/* The runs of the host buckets' tensors inside this rank's pieces, at most `per` values each, in
 * the order of the host's packed arrays. Start with x zeroed; each call gives the next run, 0
 * after the last. */
typedef struct {
    int k, i;       /* the bucket, the tensor */
    size_t c0, cnt; /* the tensor's values [c0, c0 + cnt) */
    size_t at;      /* where they are in the host's arrays */
    int started;    /* tensor i visited */
} host_run;

static int run_next(const cuda_student *s, size_t per, host_run *x) {
    x->c0 += x->cnt;
    x->at += x->cnt;
    x->cnt = 0;
    for (; x->i < s->b_p0[s->k_dev]; x->i++, x->started = 0) {
        while (s->b_p0[x->k + 1] <= x->i) x->k++;
        size_t lo, hi;
        mine_of(s, x->k, x->i, &lo, &hi);
        if (!x->started) x->c0 = lo;
        x->started = 1;
        if (x->c0 < hi) {
            x->cnt = hi - x->c0 < per ? hi - x->c0 : per;
            return 1;
        }
    }
    return 0;
}

void cuda_student_host_runs(const cuda_student *s, cuda_host_run_fn fn, void *ctx) {
    for (host_run x = {0}; run_next(s, SIZE_MAX, &x);) fn(ctx, x.i, x.c0, x.cnt, x.at);
}

/* Where host bucket k's runs start in the host's arrays; k_dev: their length. */
static size_t host_at(const cuda_student *s, int k) {
    size_t at = 0;
    for (int b = 0; b < k; b++)
        for (int i = s->b_p0[b]; i < s->b_p0[b + 1]; i++) {
            size_t lo, hi;
            mine_of(s, b, i, &lo, &hi);
            at += hi - lo;
        }
    return at;
}

size_t cuda_student_host_numel(const cuda_student *s) { return host_at(s, s->k_dev); }

void cuda_student_set_host_state(cuda_student *s, float *master, float *exp_avg,
                                 float *exp_avg_sq) {
    CHECK(s->o.host_optimizer);
    s->host_w = master;
    s->host_m = exp_avg;
    s->host_v = exp_avg_sq;
}

/* Run x's place in the flat arrays, from its bucket's piece: the reduced gradients, the bf16
 * weights this rank updates. */
static size_t in_piece(const cuda_student *s, const host_run *x) {
    return s->params[x->i].offset + x->c0 - piece_global(s, x->k);
}

/* Every rank gets the host buckets' new bf16 weights, as the device's update gathers its own
 * (ZeRO-3's layers are gathered by the forward). Every rank gathers every host bucket, whether or
 * not its piece held any of the bucket's values. */
static void gather_host_buckets(cuda_student *s) {
    if (s->R > 1)
        for (int k = 0; k < s->k_dev; k++)
            if (whole_held(s, k))
                cuda_comm_all_gather(s->comm, w_mine(s, k), s->wb[k], piece_len(s, k), COMM_BF16,
                                     comm_begin(s));
    slots_forget(s);
}

/* The conversions are spread over the host's threads. */
void cuda_student_put_weights(cuda_student *s) {
    CHECK(s->host_m);
    uint16_t *h = s->xfer;
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
    for (host_run x = {0}; run_next(s, XFER_BYTES / sizeof(uint16_t), &x);) {
        const float *v = s->host_w + x.at;
#pragma omp parallel for schedule(static) if (x.cnt >= PAR_MIN_WORK)
        for (size_t j = 0; j < x.cnt; j++) h[j] = f32_split_hi(v[j]);
        R1_CUDA_CHECK(cudaMemcpy(w_mine(s, x.k) + in_piece(s, &x), h, x.cnt * sizeof(uint16_t),
                                 cudaMemcpyHostToDevice));
    }
    gather_host_buckets(s);
    wait_comm(s);
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
}

/* Queues run x's reduced gradients (as stored) down to dst on the main stream; `landed` marks
 * their arrival. */
static void grads_down(cuda_student *s, const host_run *x, void *dst, cudaEvent_t landed) {
    const char *g = (const char *)gpiece(s, x->k) + in_piece(s, x) * s->gsize;
    R1_CUDA_CHECK(cudaMemcpyAsync(dst, g, x->cnt * s->gsize, cudaMemcpyDeviceToHost, s->stream));
    R1_CUDA_CHECK(cudaEventRecord(landed, s->stream));
}

/* Two halves of the staging take turns, so that run k + 1's gradients come down, and run k - 1's
 * weights go up, while the host works on run k. On the one stream, run k + 1's download is
 * queued after run k - 1's upload: once it has landed, that half is free again. */
void cuda_student_host_update(cuda_student *s, cuda_host_update_fn fn, void *ctx) {
    CHECK(s->host_m);
    /* a half holds a run's gradients, then its new weights */
    const size_t per = XFER_BYTES / 2 / (s->gsize + sizeof(uint16_t));
    char *g[2];
    uint16_t *w[2];
    for (int h = 0; h < 2; h++) {
        g[h] = (char *)s->xfer + (size_t)h * (XFER_BYTES / 2);
        w[h] = (uint16_t *)(g[h] + per * s->gsize);
    }
    cudaEvent_t landed[2];
    for (int h = 0; h < 2; h++)
        R1_CUDA_CHECK(cudaEventCreateWithFlags(&landed[h], cudaEventDisableTiming));
    cudaStream_t st = s->stream;
    host_run cur = {0}, next;
    int more = run_next(s, per, &cur);
    if (more) grads_down(s, &cur, g[0], landed[0]);
    for (int k = 0; more; k++) {
        const int h = k & 1;
        next = cur;
        more = run_next(s, per, &next);
        if (more) grads_down(s, &next, g[!h], landed[!h]);
        R1_CUDA_CHECK(cudaEventSynchronize(landed[h]));
        fn(ctx, cur.i, cur.c0, cur.cnt, cur.at, g[h], s->gsize == sizeof(float), w[h]);
        R1_CUDA_CHECK(cudaMemcpyAsync(w_mine(s, cur.k) + in_piece(s, &cur), w[h],
                                      cur.cnt * sizeof(uint16_t), cudaMemcpyHostToDevice, st));
        cur = next;
    }
    gather_host_buckets(s);
    R1_CUDA_CHECK(cudaStreamSynchronize(st));
    for (int h = 0; h < 2; h++) cudaEventDestroy(landed[h]);
}

/* Values [c0, c0 + cnt) of this rank's piece of host bucket k (zeros where no tensor lies) from
 * the host's packed array a. */
static void host_piece(const cuda_student *s, const float *a, int k, size_t c0, size_t cnt,
                       float *dst) {
    memset(dst, 0, sizeof(float) * cnt);
    size_t at = host_at(s, k);
    const size_t base = piece_global(s, k);
    for (int i = s->b_p0[k]; i < s->b_p0[k + 1]; i++) {
        size_t lo, hi;
        mine_of(s, k, i, &lo, &hi);
        const size_t p0 = s->params[i].offset + lo - base, p1 = p0 + (hi - lo); /* in the piece */
        const size_t x0 = p0 > c0 ? p0 : c0, x1 = p1 < c0 + cnt ? p1 : c0 + cnt;
        if (x0 < x1) f32_copy(dst + (x0 - c0), a + at + (x0 - p0), x1 - x0);
        at += hi - lo;
    }
}

/* The moments' local arrays (the master weights' pieces are w_lo's, beside the whole w). */
static float *state_array(const cuda_student *s, cuda_tensor_kind kind) {
    switch (kind) {
    case CUDA_ADAM_M: return s->adam_m;
    case CUDA_ADAM_V: return s->adam_v;
    default: CHECK(!"not a float32 optimizer array"); return NULL;
    }
}

static size_t biggest_bucket(const cuda_student *s) {
    size_t b = 0;
    for (int k = 0; k < s->n_buckets; k++) b = s->b_len[k] > b ? s->b_len[k] : b;
    return b;
}

void cuda_student_set_step(cuda_student *s, int step) {
    CHECK(step >= 0);
    s->step = step;
}

void cuda_student_put_state(cuda_student *s, cuda_tensor_kind kind, cuda_host_read_fn read,
                            void *ctx) {
    const int master = kind == CUDA_MASTER;
    float *local = master ? NULL : state_array(s, kind);
    wait_comm(s);
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
    if (!read) {
        CHECK(!master);
        if (local) R1_CUDA_CHECK(cudaMemset(local, 0, (s->local - s->state_base) * sizeof(float)));
        R1_CUDA_CHECK(cudaDeviceSynchronize());
        return;
    }
    /* bucket by bucket through one host buffer, padding zero */
    const size_t big = biggest_bucket(s);
    float *hb = xmalloc(sizeof(float) * big);
    uint16_t *hw = master ? xmalloc(sizeof(uint16_t) * big) : NULL;
    uint16_t *hl = master ? xmalloc(sizeof(uint16_t) * big) : NULL;
    for (int k = s->k_dev; k < s->n_buckets; k++) {
        /* what this rank keeps of the bucket: the whole of its upper halves where every rank
         * holds them, else (the moments, ZeRO-3's layers) only its piece */
        const size_t P = piece_len(s, k), mine = (size_t)s->rank * P;
        const int whole = master && whole_held(s, k);
        const size_t lo = whole ? 0 : mine, hi = whole ? s->b_len[k] : mine + P;
        memset(hb + lo, 0, sizeof(float) * (hi - lo));
        for (int i = s->b_p0[k]; i < s->b_p0[k + 1]; i++) {
            const cuda_param *p = &s->params[i];
            const size_t t0 = p->offset - s->b_off[k], t1 = t0 + (size_t)(p->rows * p->cols);
            const size_t a = t0 > lo ? t0 : lo, b = t1 < hi ? t1 : hi;
            if (a < b) read(ctx, i, a - t0, b - a, hb + a);
        }
        if (!master) {
            R1_CUDA_CHECK(cudaMemcpy(local + piece_local(s, k), hb + mine, sizeof(float) * P,
                                     cudaMemcpyHostToDevice));
            continue;
        }
#pragma omp parallel for schedule(static) if (hi - lo >= PAR_MIN_WORK)
        for (size_t j = lo; j < hi; j++) hw[j] = f32_split_hi(hb[j]);
#pragma omp parallel for schedule(static) if (P >= PAR_MIN_WORK)
        for (size_t j = 0; j < P; j++) hl[j] = f32_split_lo(hb[mine + j]);
        if (whole)
            R1_CUDA_CHECK(cudaMemcpy(s->wb[k], hw, sizeof(uint16_t) * s->b_len[k],
                                     cudaMemcpyHostToDevice));
        if (s->zero3)
            R1_CUDA_CHECK(cudaMemcpy(w_mine(s, k), hw + mine, sizeof(uint16_t) * P,
                                     cudaMemcpyHostToDevice));
        R1_CUDA_CHECK(cudaMemcpy(s->w_lo + piece_local(s, k), hl, sizeof(uint16_t) * P,
                                 cudaMemcpyHostToDevice));
    }
    free(hb);
    free(hw);
    free(hl);
    slots_forget(s);
    /* a copy from pageable memory may still be in flight when cudaMemcpy returns */
    R1_CUDA_CHECK(cudaDeviceSynchronize());
}

/* Checkpoint gathers move through the pinned staging (made on first use, kept), a round of cnt
 * values of every rank's piece at a time: R * cnt values of 4 bytes fill it. Pinned, a copy down
 * runs at the link's speed; into pageable memory it ran at a few GB/s. */
static size_t gather_round(const cuda_student *s) {
    return XFER_BYTES / (sizeof(float) * (size_t)s->R);
}

/* Values [c0, c0 + cnt) of every rank's piece of a local array of es-byte values (16-bit ones go
 * as COMM_BF16; `mine` this rank's piece) into pin in rank order, gathered through the device
 * buffer tmp when there are several ranks. Collective then; pin NULL only takes part. */
static void round_down(cuda_student *s, const void *mine, size_t es, size_t c0, size_t cnt,
                       char *tmp, void *pin) {
    const void *src = (const char *)mine + es * c0;
    if (s->R > 1) {
        cuda_comm_all_gather(s->comm, src, tmp, cnt, es == sizeof(uint16_t) ? COMM_BF16 : COMM_F32,
                             s->comm_stream);
        R1_CUDA_CHECK(cudaStreamSynchronize(s->comm_stream));
        src = tmp;
    }
    if (pin) R1_CUDA_CHECK(cudaMemcpy(pin, src, es * cnt * (size_t)s->R, cudaMemcpyDeviceToHost));
}

int cuda_student_bucket_of(const cuda_student *s, int i) {
    CHECK(i >= 0 && i < s->n_params);
    int k = 0;
    while (s->b_p0[k + 1] <= i) k++;
    return k;
}

void cuda_student_bucket(const cuda_student *s, int k, size_t *start, size_t *len) {
    CHECK(k >= 0 && k < s->n_buckets);
    *start = s->b_off[k];
    *len = s->b_len[k];
}

/* get_bucket of a host bucket: one GPU's piece is the bucket, packed from the host's array
 * straight into hb. With several ranks each round of this rank's piece is packed into the
 * staging, goes up into its place in a device buffer, and is gathered there in place with the
 * other ranks'. */
static void get_host_bucket(cuda_student *s, cuda_tensor_kind kind, int k, float *hb) {
    CHECK(s->host_m);
    const float *a = kind == CUDA_MASTER ? s->host_w : kind == CUDA_ADAM_M ? s->host_m : s->host_v;
    const size_t P = piece_len(s, k), round = gather_round(s);
    if (s->R == 1) {
        if (hb) host_piece(s, a, k, 0, P, hb);
        return;
    }
    wait_comm(s);
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
    char *tmp;
    R1_CUDA_CHECK(cudaMalloc((void **)&tmp, XFER_BYTES));
    float *pin = s->xfer;
    for (size_t c0 = 0; c0 < P; c0 += round) {
        const size_t cnt = P - c0 < round ? P - c0 : round;
        char *up = tmp + (size_t)s->rank * cnt * sizeof(float);
        host_piece(s, a, k, c0, cnt, pin);
        R1_CUDA_CHECK(cudaMemcpy(up, pin, cnt * sizeof(float), cudaMemcpyHostToDevice));
        round_down(s, up, sizeof(float), 0, cnt, tmp, hb ? pin : NULL);
        if (hb)
            for (int r = 0; r < s->R; r++)
                f32_copy(hb + (size_t)r * P + c0, pin + (size_t)r * cnt, cnt);
    }
    R1_CUDA_CHECK(cudaFree(tmp));
}

void cuda_student_get_bucket(cuda_student *s, cuda_tensor_kind kind, int k, float *hb) {
    CHECK(k >= 0 && k < s->n_buckets && kind != CUDA_GRAD);
    if (k < s->k_dev) {
        get_host_bucket(s, kind, k, hb);
        return;
    }
    const int master = kind == CUDA_MASTER;
    /* the local pieces: float32 moments, or the master weights' 16-bit low halves */
    const void *local = master ? (const void *)s->w_lo : (const void *)state_array(s, kind);
    const size_t es = master ? sizeof(uint16_t) : sizeof(float), P = piece_len(s, k);
    const void *mine = (const char *)local + es * piece_local(s, k);
    wait_comm(s);
    R1_CUDA_CHECK(cudaStreamSynchronize(s->stream));
    if (hb && !s->xfer) R1_CUDA_CHECK(cudaMallocHost(&s->xfer, XFER_BYTES));
    char *pin = hb ? s->xfer : NULL, *tmp = NULL;
    if (s->R > 1) R1_CUDA_CHECK(cudaMalloc((void **)&tmp, XFER_BYTES));
    /* the master weights: the low halves in the staging's first half, the upper halves in its
     * second (from the whole copy, or, for ZeRO-3's layers, gathered as well) */
    const uint16_t *lo = (const uint16_t *)pin;
    uint16_t *hi = pin ? (uint16_t *)(pin + XFER_BYTES / 2) : NULL;
    const float *val = (const float *)pin;
    const size_t round = gather_round(s);
    for (size_t c0 = 0; c0 < P; c0 += round) {
        const size_t cnt = P - c0 < round ? P - c0 : round;
        round_down(s, mine, es, c0, cnt, tmp, pin);
        if (master && !whole_held(s, k)) round_down(s, w_mine(s, k), es, c0, cnt, tmp, hi);
        else if (master && hb)
            for (int r = 0; r < s->R; r++)
                R1_CUDA_CHECK(cudaMemcpy(hi + (size_t)r * cnt, s->wb[k] + (size_t)r * P + c0,
                                         sizeof(uint16_t) * cnt, cudaMemcpyDeviceToHost));
        if (!hb) continue;
        /* rank r's values are the bucket's r * P + c0 on */
        for (int r = 0; r < s->R; r++) {
            float *dst = hb + (size_t)r * P + c0;
            const size_t o = (size_t)r * cnt;
            if (!master) {
                f32_copy(dst, val + o, cnt);
                continue;
            }
#pragma omp parallel for schedule(static) if (cnt >= PAR_MIN_WORK)
            for (size_t j = 0; j < cnt; j++) dst[j] = f32_join(hi[o + j], lo[o + j]);
        }
    }
    if (tmp) R1_CUDA_CHECK(cudaFree(tmp));
}

void cuda_student_get_state(cuda_student *s, cuda_tensor_kind kind, float *const *dst) {
    float *hb = dst ? xmalloc(sizeof(float) * biggest_bucket(s)) : NULL;
    for (int k = 0; k < s->n_buckets; k++) {
        cuda_student_get_bucket(s, kind, k, hb);
        if (hb)
            for (int i = s->b_p0[k]; i < s->b_p0[k + 1]; i++) {
                const cuda_param *p = &s->params[i];
                f32_copy(dst[i], hb + (p->offset - s->b_off[k]), (size_t)(p->rows * p->cols));
            }
    }
    free(hb);
}

#endif /* R1_HAVE_CUDA */
