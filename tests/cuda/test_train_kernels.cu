/* Every training kernel (student/cuda/kernels.h) against a plain host reference in double, on
 * fresh random inputs, over several shapes: odd sizes (the scalar paths), model sizes (the
 * vector paths), several packed documents (attention, RoPE). Tolerances are relative L2 errors,
 * stated per kernel beside each check:
 *   bf16 outputs 1e-2 (one rounding to bf16 is 2^-9 relative); attention gradients 2e-2 (P and
 *   dS are rounded to bf16 before their products, as in FlashAttention); float32 outputs of
 *   short sums 1e-5; float32 results of long sums (GEMM outputs, column sums) 1e-4.
 * Exact checks (tol 0) for the copies: embedding rows, casts. AdamW is also checked bit for bit
 * against the host's adamw_update (the CPU trainer's step).
 *
 * A failing line gives the op, shape, error, worst element and the first NaN (an element the
 * kernel never wrote: outputs are poisoned with NaN) or the first element out of tolerance.
 * Exits 1 if any check failed. */
#include "tests/cuda/cuda_check.cuh"

extern "C" {
#include "core/rope.h"
#include "student/student.h"
}

static cudaStream_t S = 0;
static r1_gemm *G;

/* ---- GEMMs ---------------------------------------------------------------------------------- */

static void ref_matmul_nt(double *y, const float *x, int ldx, const float *w, int n, int in,
                          int out) {
#pragma omp parallel for
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double acc = 0;
            for (int k = 0; k < in; k++) acc += (double)x[(size_t)i * ldx + k] * w[(size_t)o * in + k];
            y[(size_t)i * out + o] = acc;
        }
}

static void test_linear_forward(int n, int in, int out, int ldx, int bias, int res, int y_f32,
                                int in_place) {
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d in=%d out=%d ldx=%d%s%s%s%s", n, in, out, ldx,
             bias ? " +bias" : "", res ? " +res" : "", in_place ? "(in place)" : "",
             y_f32 ? " f32" : "");
    float *xf, *wf, *bf, *rf;
    uint16_t *xh = rand_bf16((size_t)n * ldx, 1.0f, &xf);
    uint16_t *wh = rand_bf16((size_t)out * in, 1.0f, &wf);
    uint16_t *bh = rand_bf16((size_t)out, 1.0f, &bf);
    uint16_t *rh = rand_bf16((size_t)n * out, 4.0f, &rf);
    double *ref = dvec((size_t)n * out);
    ref_matmul_nt(ref, xf, ldx, wf, n, in, out);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++)
            ref[(size_t)i * out + o] += (bias ? bf[o] : 0.0) + (res ? rf[(size_t)i * out + o] : 0.0);
    const size_t ybytes = (size_t)n * out * (y_f32 ? 4 : 2);
    void *dx = dev_upload(xh, 2 * (size_t)n * ldx), *dw = dev_upload(wh, 2 * (size_t)out * in);
    void *db = dev_upload(bh, 2 * (size_t)out);
    void *dres = res ? dev_upload(rh, 2 * (size_t)n * out) : NULL;
    void *dy = in_place ? dres : dev_poison(ybytes);
    linear_forward(G, dy, y_f32, out, (const r1_bf16 *)dx, ldx, (const r1_bf16 *)dw,
                   bias ? (const r1_bf16 *)db : NULL, dres, n, in, out, S);
    sync_check("linear_forward");
    float *got = download(dy, (size_t)n * out, y_f32);
    compare("linear_forward", shape, got, ref, (size_t)n * out, out, y_f32 ? 1e-4 : 1e-2);
    guard_ok("linear_forward", dy, ybytes);
    cudaFree(dx), cudaFree(dw), cudaFree(db);
    if (dres) cudaFree(dres);
    if (!in_place) cudaFree(dy);
    free(xh), free(wh), free(bh), free(rh), free(xf), free(wf), free(bf), free(rf), free(ref),
        free(got);
}

static void test_linear_backward(int n, int in, int out, int lddy, int accumulate, int dw_f32) {
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d in=%d out=%d lddy=%d%s %s", n, in, out, lddy,
             accumulate ? " +=" : "", dw_f32 ? "f32" : "bf16");
    float *xf, *wf, *dyf, *dx0f, *dw0f;
    uint16_t *xh = rand_bf16((size_t)n * in, 1.0f, &xf);
    uint16_t *wh = rand_bf16((size_t)out * in, 1.0f, &wf);
    uint16_t *dyh = rand_bf16((size_t)n * lddy, 1.0f, &dyf);
    uint16_t *dx0 = rand_bf16((size_t)n * in, 4.0f, &dx0f);
    uint16_t *dw0h = rand_bf16((size_t)out * in, 4.0f, &dw0f); /* bf16 values, also the f32 start */
    double *rdx = dvec((size_t)n * in), *rdw = dvec((size_t)out * in);
#pragma omp parallel for
    for (int i = 0; i < n; i++)
        for (int k = 0; k < in; k++) {
            double acc = accumulate ? dx0f[(size_t)i * in + k] : 0.0;
            for (int o = 0; o < out; o++) acc += (double)dyf[(size_t)i * lddy + o] * wf[(size_t)o * in + k];
            rdx[(size_t)i * in + k] = acc;
        }
#pragma omp parallel for
    for (int o = 0; o < out; o++)
        for (int k = 0; k < in; k++) {
            double acc = accumulate ? dw0f[(size_t)o * in + k] : 0.0;
            for (int i = 0; i < n; i++) acc += (double)dyf[(size_t)i * lddy + o] * xf[(size_t)i * in + k];
            rdw[(size_t)o * in + k] = acc;
        }
    void *dx = dev_upload(xh, 2 * (size_t)n * in), *dw = dev_upload(wh, 2 * (size_t)out * in);
    void *ddy = dev_upload(dyh, 2 * (size_t)n * lddy);
    void *ddx = accumulate ? dev_upload(dx0, 2 * (size_t)n * in) : dev_poison(2 * (size_t)n * in);
    const size_t dwbytes = (size_t)out * in * (dw_f32 ? 4 : 2);
    void *ddw;
    if (!accumulate) {
        ddw = dev_poison(dwbytes);
    } else if (dw_f32) {
        ddw = dev_upload(dw0f, dwbytes);
    } else {
        ddw = dev_upload(dw0h, dwbytes);
    }
    linear_backward_x(G, (r1_bf16 *)ddx, accumulate, (const r1_bf16 *)ddy, lddy,
                      (const r1_bf16 *)dw, n, in, out, S);
    linear_backward_w(G, ddw, dw_f32, accumulate, (const r1_bf16 *)ddy, lddy,
                      (const r1_bf16 *)dx, in, n, in, out, S);
    sync_check("linear_backward");
    float *gdx = download_bf16(ddx, (size_t)n * in), *gdw = download(ddw, (size_t)out * in, dw_f32);
    compare("linear_backward_x", shape, gdx, rdx, (size_t)n * in, in, 1e-2);
    compare("linear_backward_w", shape, gdw, rdw, (size_t)out * in, in, dw_f32 ? 1e-4 : 1e-2);
    guard_ok("linear_backward_x", ddx, 2 * (size_t)n * in);
    guard_ok("linear_backward_w", ddw, dwbytes);
    cudaFree(dx), cudaFree(dw), cudaFree(ddy), cudaFree(ddx), cudaFree(ddw);
    free(xh), free(wh), free(dyh), free(dx0), free(dw0h), free(xf), free(wf), free(dyf),
        free(dx0f), free(dw0f), free(rdx), free(rdw), free(gdx), free(gdw);
}

static void test_bias_backward(int n, int cols, int ld, int f32) {
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d cols=%d ld=%d %s", n, cols, ld, f32 ? "f32" : "bf16");
    float *dyf, *b0f;
    uint16_t *dyh = rand_bf16((size_t)n * ld, 1.0f, &dyf);
    uint16_t *b0h = rand_bf16((size_t)cols, 2.0f, &b0f);
    double *ref = dvec(cols);
    for (int c = 0; c < cols; c++) {
        double acc = b0f[c];
        for (int i = 0; i < n; i++) acc += dyf[(size_t)i * ld + c];
        ref[c] = acc;
    }
    void *ddy = dev_upload(dyh, 2 * (size_t)n * ld);
    void *db = f32 ? dev_upload(b0f, 4 * (size_t)cols) : dev_upload(b0h, 2 * (size_t)cols);
    float *scratch = NULL;
    R1_CUDA_CHECK(cudaMalloc((void **)&scratch, sizeof(float) * bias_backward_scratch_floats(n, cols)));
    bias_backward(db, f32, scratch, (const r1_bf16 *)ddy, ld, n, cols, S);
    sync_check("bias_backward");
    float *got = download(db, cols, f32);
    compare("bias_backward", shape, got, ref, cols, 0, f32 ? 1e-5 : 1e-2);
    cudaFree(ddy), cudaFree(db), cudaFree(scratch);
    free(dyh), free(b0h), free(dyf), free(b0f), free(ref), free(got);
}

/* ---- RMSNorm -------------------------------------------------------------------------------- */

static void test_rmsnorm(int n, int d, int dw_f32) {
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d d=%d dw=%s", n, d, dw_f32 ? "f32" : "bf16");
    const float eps = 1e-6f;
    float *xf, *wf, *dyf, *dx0f, *dw0f;
    uint16_t *xh = rand_bf16((size_t)n * d, 3.0f, &xf), *wh = rand_bf16(d, 2.0f, &wf);
    uint16_t *dyh = rand_bf16((size_t)n * d, 1.0f, &dyf), *dx0 = rand_bf16((size_t)n * d, 1.0f, &dx0f);
    uint16_t *dw0h = rand_bf16(d, 1.0f, &dw0f);
    double *ry = dvec((size_t)n * d), *rr = dvec(n), *rdx = dvec((size_t)n * d), *rdw = dvec(d);
    float *rstd_host = (float *)xmalloc(sizeof(float) * n);
    for (int j = 0; j < d; j++) rdw[j] = dw0f[j];
    for (int i = 0; i < n; i++) {
        const float *x = xf + (size_t)i * d;
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)x[j] * x[j];
        const double r = 1.0 / sqrt(ss / d + eps);
        rr[i] = r;
        rstd_host[i] = (float)r;
        double dot = 0;
        for (int j = 0; j < d; j++) {
            ry[(size_t)i * d + j] = x[j] * r * wf[j];
            dot += (double)dyf[(size_t)i * d + j] * wf[j] * x[j] * r;
        }
        const double mean = dot / d;
        for (int j = 0; j < d; j++) {
            const double xh_ = x[j] * r, g = (double)dyf[(size_t)i * d + j] * wf[j];
            rdx[(size_t)i * d + j] = dx0f[(size_t)i * d + j] + r * (g - xh_ * mean);
            rdw[j] += (double)dyf[(size_t)i * d + j] * xh_;
        }
    }
    void *dx = dev_upload(xh, 2 * (size_t)n * d), *dw = dev_upload(wh, 2 * (size_t)d);
    void *dy = dev_poison(2 * (size_t)n * d), *drstd = dev_poison(4 * (size_t)n);
    rmsnorm_forward_cuda((r1_bf16 *)dy, (float *)drstd, (const r1_bf16 *)dx, (const r1_bf16 *)dw, n, d,
                    eps, S);
    sync_check("rmsnorm_forward");
    float *gy = download_bf16(dy, (size_t)n * d), *gr = download_f32(drstd, n);
    compare("rmsnorm_forward out", shape, gy, ry, (size_t)n * d, d, 1e-2);
    compare("rmsnorm_forward rstd", shape, gr, rr, n, 0, 1e-5);
    guard_ok("rmsnorm_forward", dy, 2 * (size_t)n * d);
    guard_ok("rmsnorm_forward rstd", drstd, 4 * (size_t)n);

    /* backward, twice from the same start: the second run must match the first bit for bit */
    void *ddy = dev_upload(dyh, 2 * (size_t)n * d), *rstd_in = dev_upload(rstd_host, 4 * (size_t)n);
    float *scratch = (float *)dev_poison(sizeof(float) * rmsnorm_backward_scratch_floats(n, d));
    void *ddx[2], *ddw[2];
    for (int run = 0; run < 2; run++) {
        ddx[run] = dev_upload(dx0, 2 * (size_t)n * d);
        ddw[run] = dw_f32 ? dev_upload(dw0f, 4 * (size_t)d) : dev_upload(dw0h, 2 * (size_t)d);
        rmsnorm_backward_cuda((r1_bf16 *)ddx[run], ddw[run], dw_f32, scratch, (const r1_bf16 *)ddy,
                         (const r1_bf16 *)dx, (const r1_bf16 *)dw, (const float *)rstd_in, n, d,
                         S);
    }
    sync_check("rmsnorm_backward");
    float *gdx = download_bf16(ddx[0], (size_t)n * d), *gdw = download(ddw[0], d, dw_f32);
    compare("rmsnorm_backward dx(+=)", shape, gdx, rdx, (size_t)n * d, d, 1e-2);
    compare("rmsnorm_backward dw(+=)", shape, gdw, rdw, d, 0, dw_f32 ? 1e-4 : 1e-2);
    same_bits("rmsnorm_backward dw", shape, ddw[0], ddw[1], (size_t)d * (dw_f32 ? 4 : 2));
    for (int run = 0; run < 2; run++) cudaFree(ddx[run]), cudaFree(ddw[run]);
    cudaFree(dx), cudaFree(dw), cudaFree(dy), cudaFree(drstd), cudaFree(ddy), cudaFree(rstd_in),
        cudaFree(scratch);
    free(xh), free(wh), free(dyh), free(dx0), free(dw0h), free(xf), free(wf), free(dyf),
        free(dx0f), free(dw0f), free(ry), free(rr), free(rdx), free(rdw), free(rstd_host),
        free(gy), free(gr), free(gdx), free(gdw);
}

/* ---- packed documents --------------------------------------------------------------------------- */

typedef struct {
    int n, n_docs;
    int cu[64];
    int *pos;
    int max_len;
} docs;

static docs make_docs(const int *lens, int n_docs) {
    docs d;
    memset(&d, 0, sizeof d);
    d.n_docs = n_docs;
    for (int i = 0; i < n_docs; i++) {
        d.cu[i + 1] = d.cu[i] + lens[i];
        if (lens[i] > d.max_len) d.max_len = lens[i];
    }
    d.n = d.cu[n_docs];
    d.pos = (int *)xmalloc(sizeof(int) * d.n);
    for (int i = 0; i < n_docs; i++)
        for (int j = d.cu[i]; j < d.cu[i + 1]; j++) d.pos[j] = j - d.cu[i];
    return d;
}

static void docs_shape(char *s, size_t sz, const docs *d) {
    int o = snprintf(s, sz, "docs=");
    for (int i = 0; i < d->n_docs && o < (int)sz; i++)
        o += snprintf(s + o, sz - o, "%s%d", i ? "," : "", d->cu[i + 1] - d->cu[i]);
}

/* ---- RoPE ----------------------------------------------------------------------------------- */

static void test_rope(const int *lens, int n_docs, int H, int KV, int hd, int rot, int llama3) {
    docs dc = make_docs(lens, n_docs);
    const int n = dc.n, ld = (H + 2 * KV) * hd, half = rot / 2;
    char shape[128], ds[64];
    docs_shape(ds, sizeof ds, &dc);
    snprintf(shape, sizeof shape, "H=%d KV=%d hd=%d rot=%d %s%s", H, KV, hd, rot, ds,
             llama3 ? " llama3" : "");
    rope_config rc;
    memset(&rc, 0, sizeof rc);
    rc.type = llama3 ? ROPE_LLAMA3 : ROPE_DEFAULT;
    rc.theta = llama3 ? 500000.0 : 10000.0;
    rc.factor = 8.0;
    rc.low_freq_factor = 1.0;
    rc.high_freq_factor = 4.0;
    rc.original_max_position = 64;
    rope_table rt;
    rope_init(&rt, &rc, rot, ROPE_PAIRS_HALF);
    float *cs = (float *)xmalloc(sizeof(float) * (size_t)dc.max_len * rot);
    rope_cs_table(cs, rt.inv_freq, rt.attn_factor, rot, dc.max_len);

    float *xf;
    uint16_t *xh = rand_bf16((size_t)n * ld, 2.0f, &xf);
    double *rf = dvec((size_t)n * ld), *rb = dvec((size_t)n * ld);
    for (size_t i = 0; i < (size_t)n * ld; i++) rf[i] = rb[i] = xf[i]; /* v heads stay as they are */
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H + KV; h++)
            for (int j = 0; j < half; j++) {
                const size_t a = (size_t)i * ld + (size_t)h * hd + j, b = a + half;
                const double c = cs[((size_t)dc.pos[i] * half + j) * 2];
                const double s = cs[((size_t)dc.pos[i] * half + j) * 2 + 1];
                rf[a] = xf[a] * c - xf[b] * s;
                rf[b] = xf[b] * c + xf[a] * s;
                rb[a] = xf[a] * c + xf[b] * s;
                rb[b] = xf[b] * c - xf[a] * s;
            }
    void *dcs = dev_upload(cs, sizeof(float) * (size_t)dc.max_len * rot);
    void *dpos = dev_upload(dc.pos, sizeof(int) * n);
    void *x1 = dev_upload(xh, 2 * (size_t)n * ld), *x2 = dev_upload(xh, 2 * (size_t)n * ld);
    rope_forward_cuda((r1_bf16 *)x1, ld, H + KV, hd, rot, (const float *)dcs, (const int *)dpos, n, S);
    rope_backward_cuda((r1_bf16 *)x2, ld, H + KV, hd, rot, (const float *)dcs, (const int *)dpos, n, S);
    sync_check("rope");
    float *g1 = download_bf16(x1, (size_t)n * ld), *g2 = download_bf16(x2, (size_t)n * ld);
    compare("rope_forward", shape, g1, rf, (size_t)n * ld, ld, 1e-2);
    compare("rope_backward", shape, g2, rb, (size_t)n * ld, ld, 1e-2);
    guard_ok("rope_forward", x1, 2 * (size_t)n * ld);
    cudaFree(dcs), cudaFree(dpos), cudaFree(x1), cudaFree(x2);
    free(xh), free(xf), free(rf), free(rb), free(g1), free(g2), free(cs), free(dc.pos);
    rope_free(&rt);
}

/* ---- SwiGLU --------------------------------------------------------------------------------- */

static void test_swiglu(int n, int ff, int in_place) {
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d ff=%d%s", n, ff, in_place ? " in place" : "");
    float *guf, *df;
    uint16_t *guh = rand_bf16((size_t)n * 2 * ff, 4.0f, &guf), *dh = rand_bf16((size_t)n * ff, 1.0f, &df);
    double *ro = dvec((size_t)n * ff), *rd = dvec((size_t)n * 2 * ff);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < ff; j++) {
            const double g = guf[(size_t)i * 2 * ff + j], u = guf[(size_t)i * 2 * ff + ff + j];
            const double sg = 1.0 / (1.0 + exp(-g)), dout = df[(size_t)i * ff + j];
            ro[(size_t)i * ff + j] = g * sg * u;
            rd[(size_t)i * 2 * ff + j] = dout * u * sg * (1.0 + g * (1.0 - sg));
            rd[(size_t)i * 2 * ff + ff + j] = dout * g * sg;
        }
    void *dgu = dev_upload(guh, 2 * (size_t)n * 2 * ff), *dd = dev_upload(dh, 2 * (size_t)n * ff);
    void *dout = dev_poison(2 * (size_t)n * ff);
    void *dgrad = in_place ? dgu : dev_poison(2 * (size_t)n * 2 * ff);
    swiglu_forward_cuda((r1_bf16 *)dout, (const r1_bf16 *)dgu, n, ff, S);
    sync_check("swiglu_forward");
    float *go = download_bf16(dout, (size_t)n * ff);
    swiglu_backward_cuda((r1_bf16 *)dgrad, (const r1_bf16 *)dd, (const r1_bf16 *)dgu, n, ff, S);
    sync_check("swiglu_backward");
    float *gd = download_bf16(dgrad, (size_t)n * 2 * ff);
    compare("swiglu_forward", shape, go, ro, (size_t)n * ff, ff, 1e-2);
    compare("swiglu_backward", shape, gd, rd, (size_t)n * 2 * ff, 2 * ff, 1e-2);
    guard_ok("swiglu_forward", dout, 2 * (size_t)n * ff);
    guard_ok("swiglu_backward", dgrad, 2 * (size_t)n * 2 * ff);
    /* the backward that also writes the output (recomputing trainers): the forward's bits and
     * the backward's */
    void *dgu2 = dev_upload(guh, 2 * (size_t)n * 2 * ff), *dact = dev_poison(2 * (size_t)n * ff);
    void *dgrad2 = in_place ? dgu2 : dev_poison(2 * (size_t)n * 2 * ff);
    swiglu_backward_refill_cuda((r1_bf16 *)dgrad2, (r1_bf16 *)dact, (const r1_bf16 *)dd,
                                (const r1_bf16 *)dgu2, n, ff, S);
    sync_check("swiglu_backward_refill");
    equal_bits("swiglu_backward_refill act", shape, dact, dout, 2 * (size_t)n * ff,
               "swiglu_forward's bits", "differs from swiglu_forward");
    equal_bits("swiglu_backward_refill dgu", shape, dgrad2, dgrad, 2 * (size_t)n * 2 * ff,
               "swiglu_backward's bits", "differs from swiglu_backward");
    guard_ok("swiglu_backward_refill act", dact, 2 * (size_t)n * ff);
    guard_ok("swiglu_backward_refill dgu", dgrad2, 2 * (size_t)n * 2 * ff);
    cudaFree(dgu), cudaFree(dd), cudaFree(dout), cudaFree(dgu2), cudaFree(dact);
    if (!in_place) cudaFree(dgrad), cudaFree(dgrad2);
    free(guh), free(dh), free(guf), free(df), free(ro), free(rd), free(go), free(gd);
}

/* ---- attention ------------------------------------------------------------------------------ */

/* Reference forward and backward in double for every document and head. */
static void ref_attention(double *out, double *lse, double *dq, double *dk, double *dv,
                          const float *qkv, const float *dout, const docs *dc, int H, int KV,
                          int hd, double scale) {
    const int n = dc->n, ld = (H + 2 * KV) * hd, G = H / KV;
    memset(dk, 0, sizeof(double) * (size_t)n * KV * hd);
    memset(dv, 0, sizeof(double) * (size_t)n * KV * hd);
    /* one kv head per thread: its dk, dv sums have one owner */
#pragma omp parallel for schedule(dynamic)
    for (int g = 0; g < KV; g++) {
        double *s = (double *)xmalloc(sizeof(double) * dc->max_len);
        double *dpv = (double *)xmalloc(sizeof(double) * dc->max_len);
        for (int h = g * G; h < (g + 1) * G; h++)
            for (int doc = 0; doc < dc->n_docs; doc++) {
                const int d0 = dc->cu[doc], d1 = dc->cu[doc + 1];
                for (int i = d0; i < d1; i++) {
                    const float *q = qkv + (size_t)i * ld + (size_t)h * hd;
                    double m = -INFINITY;
                    for (int j = d0; j <= i; j++) {
                        const float *k = qkv + (size_t)j * ld + (size_t)(H + g) * hd;
                        double acc = 0;
                        for (int e = 0; e < hd; e++) acc += (double)q[e] * k[e];
                        s[j - d0] = acc * scale;
                        if (s[j - d0] > m) m = s[j - d0];
                    }
                    double l = 0;
                    for (int j = d0; j <= i; j++) l += exp(s[j - d0] - m);
                    const double ls = m + log(l);
                    lse[(size_t)h * n + i] = ls;
                    double *o = out + (size_t)i * H * hd + (size_t)h * hd;
                    for (int e = 0; e < hd; e++) o[e] = 0;
                    for (int j = d0; j <= i; j++) {
                        const double p = exp(s[j - d0] - ls);
                        const float *v = qkv + (size_t)j * ld + (size_t)(H + KV + g) * hd;
                        for (int e = 0; e < hd; e++) o[e] += p * v[e];
                    }
                    /* backward for row i */
                    const float *dO = dout + (size_t)i * H * hd + (size_t)h * hd;
                    double delta = 0;
                    for (int e = 0; e < hd; e++) delta += (double)dO[e] * o[e];
                    double *dqi = dq + (size_t)i * H * hd + (size_t)h * hd;
                    for (int e = 0; e < hd; e++) dqi[e] = 0;
                    for (int j = d0; j <= i; j++) {
                        const float *k = qkv + (size_t)j * ld + (size_t)(H + g) * hd;
                        const float *v = qkv + (size_t)j * ld + (size_t)(H + KV + g) * hd;
                        const double p = exp(s[j - d0] - ls);
                        double dp = 0;
                        for (int e = 0; e < hd; e++) dp += (double)dO[e] * v[e];
                        dpv[j - d0] = dp;
                        const double ds = p * (dp - delta);
                        double *dkj = dk + (size_t)j * KV * hd + (size_t)g * hd;
                        double *dvj = dv + (size_t)j * KV * hd + (size_t)g * hd;
                        for (int e = 0; e < hd; e++) {
                            dqi[e] += scale * ds * k[e];
                            dkj[e] += scale * ds * q[e];
                            dvj[e] += p * dO[e];
                        }
                    }
                }
            }
        free(s);
        free(dpv);
    }
}

/* The backward twice, bit-identical, and compared with the reference's gradients. */
static void test_attention_backward(const attn_shape *a, const char *shape, const void *ddo,
                                    const void *dqkv_in, const void *dout, const void *dlse,
                                    void *delta, const double *rdq, const double *rdk,
                                    const double *rdv, double tol) {
    const int n = a->n, H = a->n_heads, KV = a->n_kv_heads, hd = a->head_dim;
    const int ld = (H + 2 * KV) * hd;
    void *dg[2];
    for (int run = 0; run < 2; run++) {
        dg[run] = dev_poison(2 * (size_t)n * ld);
        attention_backward_cuda((r1_bf16 *)dg[run], (float *)delta, (const r1_bf16 *)ddo,
                                (const r1_bf16 *)dqkv_in, (const r1_bf16 *)dout,
                                (const float *)dlse, a, S);
    }
    sync_check("attention_backward");
    float *gg = download_bf16(dg[0], (size_t)n * ld);
    float *gq = (float *)xmalloc(sizeof(float) * (size_t)n * H * hd);
    float *gk = (float *)xmalloc(sizeof(float) * (size_t)n * KV * hd);
    float *gv = (float *)xmalloc(sizeof(float) * (size_t)n * KV * hd);
    for (int i = 0; i < n; i++) {
        memcpy(gq + (size_t)i * H * hd, gg + (size_t)i * ld, sizeof(float) * H * hd);
        memcpy(gk + (size_t)i * KV * hd, gg + (size_t)i * ld + H * hd, sizeof(float) * KV * hd);
        memcpy(gv + (size_t)i * KV * hd, gg + (size_t)i * ld + (H + KV) * hd, sizeof(float) * KV * hd);
    }
    compare("attention_backward dq", shape, gq, rdq, (size_t)n * H * hd, H * hd, tol);
    compare("attention_backward dk", shape, gk, rdk, (size_t)n * KV * hd, KV * hd, tol);
    compare("attention_backward dv", shape, gv, rdv, (size_t)n * KV * hd, KV * hd, tol);
    guard_ok("attention_backward", dg[0], 2 * (size_t)n * ld);
    same_bits("attention_backward", shape, dg[0], dg[1], 2 * (size_t)n * ld);
    cudaFree(dg[0]), cudaFree(dg[1]);
    free(gg), free(gq), free(gk), free(gv);
}

static void test_attention(const int *lens, int n_docs, int H, int KV, int hd, float qscale,
                           attn_impl impl) {
    docs dc = make_docs(lens, n_docs);
    const int n = dc.n, ld = (H + 2 * KV) * hd;
    char shape[160], ds[96];
    docs_shape(ds, sizeof ds, &dc);
    const char *impl_name = impl == ATTN_WGMMA ? "wgmma" : impl == ATTN_MMA ? "mma" : "simple";
    snprintf(shape, sizeof shape, "%s H=%d KV=%d hd=%d %s q*%g", impl_name, H, KV, hd, ds, qscale);
    const int rows = attn_tile_rows(impl, hd);
    const int nt = attn_tiles_count(dc.cu, n_docs, rows);
    const size_t tile_bytes = sizeof(int) * ATTN_TILE_INTS * nt;
    int *tq = (int *)xmalloc(tile_bytes), *tk = (int *)xmalloc(tile_bytes);
    const int ds_slots = attn_tiles_build(tq, tk, dc.cu, n_docs, rows);

    float *qkvf, *dof;
    uint16_t *qkvh = rand_bf16((size_t)n * ld, 1.0f, &qkvf);
    /* q scaled up for peakier softmaxes */
    for (int i = 0; i < n; i++)
        for (int c = 0; c < H * hd; c++) {
            const size_t a = (size_t)i * ld + c;
            qkvh[a] = f32_to_bf16(qkvf[a] * qscale);
            qkvf[a] = bf16_to_f32(qkvh[a]);
        }
    uint16_t *doh = rand_bf16((size_t)n * H * hd, 1.0f, &dof);
    const double scale = 1.0 / sqrt((double)hd);
    double *ro = dvec((size_t)n * H * hd), *rl = dvec((size_t)n * H), *rdq = dvec((size_t)n * H * hd);
    double *rdk = dvec((size_t)n * KV * hd), *rdv = dvec((size_t)n * KV * hd);
    ref_attention(ro, rl, rdq, rdk, rdv, qkvf, dof, &dc, H, KV, hd, scale);

    attn_shape a;
    memset(&a, 0, sizeof a);
    a.n = n;
    a.n_heads = H;
    a.n_kv_heads = KV;
    a.head_dim = hd;
    a.scale = (float)scale;
    a.tile_rows = rows;
    a.n_tiles = nt;
    a.tiles_q = (const int *)dev_upload(tq, tile_bytes);
    a.tiles_kv = (const int *)dev_upload(tk, tile_bytes);
    a.impl = impl;
    void *dqkv_in = dev_upload(qkvh, 2 * (size_t)n * ld);
    void *ddo = dev_upload(doh, 2 * (size_t)n * H * hd);
    void *dout = dev_poison(2 * (size_t)n * H * hd), *dlse = dev_poison(4 * (size_t)n * H);
    attention_forward_cuda((r1_bf16 *)dout, (float *)dlse, (const r1_bf16 *)dqkv_in, &a, S);
    sync_check("attention_forward");
    float *go = download_bf16(dout, (size_t)n * H * hd), *gl = download_f32(dlse, (size_t)n * H);
    compare("attention_forward out", shape, go, ro, (size_t)n * H * hd, H * hd, 1e-2);
    compare("attention_forward lse", shape, gl, rl, (size_t)n * H, n, 1e-4);
    guard_ok("attention_forward out", dout, 2 * (size_t)n * H * hd);
    guard_ok("attention_forward lse", dlse, 4 * (size_t)n * H);

    /* the backward as it comes (recomputing dS), then, where the wgmma kernels can (head_dim
     * 128), keeping dS with scratch for all heads and for one head at a time (the passes, the
     * float32 partials of split groups) */
    void *delta = dev_poison(4 * (size_t)n * H);
    const int ds_modes = impl == ATTN_WGMMA && hd == 128 ? 3 : 1;
    const size_t head_bytes = (size_t)ds_slots * ATTN_DS_SLOT_BYTES;
    const size_t ds_bytes[3] = {0, head_bytes * H, head_bytes + attn_ds_partial_bytes(n, KV, hd)};
    const char *ds_name[3] = {"", " dS kept", " dS kept, 1 head/pass"};
    for (int mode = 0; mode < ds_modes; mode++) {
        char sh[200];
        snprintf(sh, sizeof sh, "%s%s", shape, ds_name[mode]);
        a.ds_slots = ds_slots;
        a.ds_scratch_bytes = ds_bytes[mode];
        a.ds_scratch = mode ? dev_poison(ds_bytes[mode]) : NULL;
        a.ds_max_heads = mode == 2 ? 1 : 0;
        test_attention_backward(&a, sh, ddo, dqkv_in, dout, dlse, delta, rdq, rdk, rdv,
                                impl == ATTN_SIMPLE ? 1e-2 : 2e-2);
        if (a.ds_scratch) {
            guard_ok("attention_backward scratch", a.ds_scratch, ds_bytes[mode]);
            cudaFree(a.ds_scratch);
        }
    }

    cudaFree((void *)a.tiles_q), cudaFree((void *)a.tiles_kv), cudaFree(dqkv_in), cudaFree(ddo),
        cudaFree(dout), cudaFree(dlse), cudaFree(delta);
    free(tq), free(tk), free(qkvh), free(qkvf), free(doh), free(dof), free(ro), free(rl),
        free(rdq), free(rdk), free(rdv), free(go), free(gl), free(dc.pos);
}

/* ---- linear + cross-entropy ------------------------------------------------------------------- */

static void test_cross_entropy(int n, int d, int vocab, int chunk, int dw_f32, int loss_only) {
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d d=%d vocab=%d chunk=%d %s%s", n, d, vocab, chunk,
             dw_f32 ? "f32" : "bf16", loss_only ? " loss only" : "");
    float *hf, *wf, *dw0f;
    uint16_t *hh = rand_bf16((size_t)n * d, 1.0f, &hf);
    uint16_t *wh = rand_bf16((size_t)vocab * d, 2.0f / sqrtf((float)d), &wf);
    uint16_t *dw0h = rand_bf16((size_t)vocab * d, 1e-3f, &dw0f);
    int *targets = (int *)xmalloc(sizeof(int) * n), *rows = (int *)xmalloc(sizeof(int) * n);
    int m = 0;
    for (int i = 0; i < n; i++) {
        targets[i] = urand() < 0.3 ? -1 : irand(vocab); /* about 30% of tokens do not count */
        if (targets[i] >= 0) rows[m++] = i;
    }
    const double inv_count = 1.0 / (m + 3); /* a count from the whole optimizer step */
    double rloss = 0.5; /* the loss buffer starts at 0.5: the kernel adds */
    double *rdh = dvec((size_t)n * d), *rdw = dvec((size_t)vocab * d);
    for (size_t i = 0; i < (size_t)vocab * d; i++) rdw[i] = dw0f[i];
    double *lg = dvec((size_t)m * vocab);
#pragma omp parallel for
    for (int r = 0; r < m; r++) {
        const float *h = hf + (size_t)rows[r] * d;
        double *l = lg + (size_t)r * vocab;
        for (int v = 0; v < vocab; v++) {
            double acc = 0;
            for (int k = 0; k < d; k++) acc += (double)h[k] * wf[(size_t)v * d + k];
            l[v] = acc;
        }
    }
    double loss_rows = 0;
    for (int r = 0; r < m; r++) {
        double *l = lg + (size_t)r * vocab, mx = -INFINITY, s = 0;
        for (int v = 0; v < vocab; v++) mx = l[v] > mx ? l[v] : mx;
        for (int v = 0; v < vocab; v++) s += exp(l[v] - mx);
        const double lse = mx + log(s);
        const int t = targets[rows[r]];
        loss_rows += lse - l[t];
        for (int v = 0; v < vocab; v++) l[v] = (exp(l[v] - lse) - (v == t)) * inv_count; /* dlogits */
    }
    rloss += loss_rows * inv_count;
#pragma omp parallel for
    for (int r = 0; r < m; r++)
        for (int k = 0; k < d; k++) {
            double acc = 0;
            for (int v = 0; v < vocab; v++) acc += lg[(size_t)r * vocab + v] * wf[(size_t)v * d + k];
            rdh[(size_t)rows[r] * d + k] = acc;
        }
#pragma omp parallel for
    for (int v = 0; v < vocab; v++)
        for (int k = 0; k < d; k++) {
            double acc = 0;
            for (int r = 0; r < m; r++) acc += lg[(size_t)r * vocab + v] * hf[(size_t)rows[r] * d + k];
            rdw[(size_t)v * d + k] += acc;
        }

    void *dh_in = dev_upload(hh, 2 * (size_t)n * d), *dwt = dev_upload(wh, 2 * (size_t)vocab * d);
    void *dtg = dev_upload(targets, sizeof(int) * n), *drows = dev_upload(rows, sizeof(int) * (m ? m : 1));
    const float loss0 = 0.5f;
    void *dloss = dev_upload(&loss0, sizeof(float));
    void *ddh = dev_poison(2 * (size_t)n * d);
    const size_t dwbytes = (size_t)vocab * d * (dw_f32 ? 4 : 2);
    void *ddw = dw_f32 ? dev_upload(dw0f, dwbytes) : dev_upload(dw0h, dwbytes);
    ce_scratch cs;
    cs.chunk = chunk;
    cs.logits = (float *)dev_poison(sizeof(float) * (size_t)chunk * vocab);
    cs.h = (r1_bf16 *)dev_poison(2 * (size_t)chunk * d);
    cs.dh = (r1_bf16 *)dev_poison(2 * (size_t)chunk * d);
    cs.row_loss = (float *)dev_poison(sizeof(float) * chunk);
    linear_cross_entropy(G, (float *)dloss, loss_only ? NULL : (r1_bf16 *)ddh, ddw, dw_f32,
                         (const r1_bf16 *)dh_in, (const r1_bf16 *)dwt, (const int *)dtg,
                         (const int *)drows, m, n, d, vocab, (float)inv_count, &cs, S);
    sync_check("linear_cross_entropy");
    float gloss;
    R1_CUDA_CHECK(cudaMemcpy(&gloss, dloss, sizeof gloss, cudaMemcpyDeviceToHost));
    compare("linear_cross_entropy loss", shape, &gloss, &rloss, 1, 0, 1e-5);
    if (!loss_only) {
        float *gdh = download_bf16(ddh, (size_t)n * d), *gdw = download(ddw, (size_t)vocab * d, dw_f32);
        compare("linear_cross_entropy dh", shape, gdh, rdh, (size_t)n * d, d, 1e-2);
        compare("linear_cross_entropy dw(+=)", shape, gdw, rdw, (size_t)vocab * d, d, 1e-2);
        guard_ok("linear_cross_entropy dh", ddh, 2 * (size_t)n * d);
        free(gdh), free(gdw);
    }
    cudaFree(dh_in), cudaFree(dwt), cudaFree(dtg), cudaFree(drows), cudaFree(dloss), cudaFree(ddh),
        cudaFree(ddw), cudaFree(cs.logits), cudaFree(cs.h), cudaFree(cs.dh), cudaFree(cs.row_loss);
    free(hh), free(wh), free(dw0h), free(hf), free(wf), free(dw0f), free(targets), free(rows),
        free(rdh), free(rdw), free(lg);
}

/* ---- AdamW and the gradient norm ------------------------------------------------------------ */

/* Host values equal to the device's bit for bit (the AdamW check against the CPU trainer). */
static int same_as_host(const char *op, const char *shape, const float *dev, const float *host,
                        size_t n) {
    g_checks++;
    size_t i = 0;
    while (i < n && f32_to_bits(dev[i]) == f32_to_bits(host[i])) i++;
    const int ok = i == n;
    printf("  %s %-26s %-44s %s\n", ok ? "ok  " : "FAIL", op, shape,
           ok ? "bit-identical to the host's adamw_update" : "differs from the host's adamw_update");
    if (!ok) {
        printf("       first difference at %zu of %zu: %.9g against %.9g\n", i, n, dev[i], host[i]);
        g_failures++;
    }
    return ok;
}

static void test_adamw(size_t n, int g_f32, int clip, int step, double wd, double b1) {
    char shape[96];
    snprintf(shape, sizeof shape, "n=%zu grad=%s clip=%d step=%d wd=%g b1=%g", n,
             g_f32 ? "f32" : "bf16", clip, step, wd, b1);
    float *p = rand_f32(n, 1.0f), *m = rand_f32(n, 1e-2f), *v = rand_f32(n, 1e-4f);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    float *gf;
    uint16_t *gh = rand_bf16(n, 0.05f, &gf);
    /* the norm over two buffers: the first half and the rest, combined with `accumulate` */
    const size_t n1 = n / 2 + 3;
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)gf[i] * gf[i];
    const double norm = sqrt(ss);
    const float max_norm = clip ? (float)(norm * 0.5) : 0.0f;
    const double factor = clip ? max_norm / (norm + 1e-6) : 1.0;
    const double lr = 1e-3, b2 = 0.95, eps = 1e-8;
    const double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
    double *rp = dvec(n), *rm = dvec(n), *rv = dvec(n);
    for (size_t i = 0; i < n; i++) {
        const double g = gf[i] * factor;
        const double mi = m[i] + (1 - b1) * (g - m[i]);
        const double vi = b2 * v[i] + (1 - b2) * g * g;
        rm[i] = mi;
        rv[i] = vi;
        rp[i] = p[i] * (1 - lr * wd) - lr / bc1 * mi / (sqrt(vi) / sqrt(bc2) + eps);
    }
    /* the master weights split into the bf16 working weights and their low halves */
    uint16_t *ph = (uint16_t *)xmalloc(2 * n), *pl = (uint16_t *)xmalloc(2 * n);
    for (size_t i = 0; i < n; i++) ph[i] = f32_split_hi(p[i]), pl[i] = f32_split_lo(p[i]);
    void *dw = dev_upload(ph, 2 * n), *dlo = dev_upload(pl, 2 * n);
    void *dm = dev_upload(m, 4 * n), *dv = dev_upload(v, 4 * n);
    void *dg = g_f32 ? dev_upload(gf, 4 * n) : dev_upload(gh, 2 * n);
    void *partials = dev_poison(4 * GRAD_NORM_PARTIALS), *dn = dev_poison(8);
    const size_t es = g_f32 ? 4 : 2;
    grad_sqnorm_partials((float *)partials, 0, dg, g_f32, n1, S);
    grad_sqnorm_partials((float *)partials, 1, (const char *)dg + es * n1, g_f32, n - n1, S);
    grad_norm_finish((float *)dn, (const float *)partials, max_norm, S);
    const adamw_config cfg = {lr, b1, b2, eps, wd};
    adamw_update_cuda((r1_bf16 *)dw, (uint16_t *)dlo, (float *)dm, (float *)dv, dg, g_f32, n,
                      adamw_scalars_for(&cfg, step, 1), (const float *)dn + 1, S);
    sync_check("adamw");
    float *gn = download_f32(dn, 2);
    double rn[2] = {norm, factor};
    compare("grad_norm (norm, factor)", shape, gn, rn, 2, 0, 1e-5);
    float *gm = download_f32(dm, n), *gv = download_f32(dv, n), *gp = (float *)xmalloc(4 * n);
    R1_CUDA_CHECK(cudaMemcpy(ph, dw, 2 * n, cudaMemcpyDeviceToHost));
    R1_CUDA_CHECK(cudaMemcpy(pl, dlo, 2 * n, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) gp[i] = f32_join(ph[i], pl[i]);
    compare("adamw master", shape, gp, rp, n, 0, 1e-5);
    compare("adamw m", shape, gm, rm, n, 0, 1e-5);
    compare("adamw v", shape, gv, rv, n, 0, 1e-5);
    /* the CPU trainer's own step (grad_clip's factor from the device's norm, then
     * adamw_update) on the same inputs gives the same bits */
    const float coef = grad_clip_coef(gn[0], max_norm);
    float *hg = (float *)xmalloc(4 * n);
    for (size_t i = 0; i < n; i++) hg[i] = (g_f32 ? gf[i] : bf16_to_f32(gh[i])) * coef;
    adamw_update(p, hg, m, v, n, &cfg, step, 1);
    same_as_host("adamw clip factor", shape, gn + 1, &coef, 1);
    same_as_host("adamw master", shape, gp, p, n);
    same_as_host("adamw m", shape, gm, m, n);
    same_as_host("adamw v", shape, gv, v, n);
    guard_ok("adamw working weights", dw, 2 * n);
    guard_ok("adamw master low halves", dlo, 2 * n);
    cudaFree(dw), cudaFree(dlo), cudaFree(dm), cudaFree(dv), cudaFree(dg), cudaFree(partials),
        cudaFree(dn);
    free(p), free(m), free(v), free(gf), free(gh), free(rp), free(rm), free(rv), free(gn), free(gp),
        free(gm), free(gv), free(ph), free(pl), free(hg);
}

/* ---- embedding and cast ------------------------------------------------------------------------ */

static void test_embedding(int n, int vocab, int d, int f32) {
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d vocab=%d d=%d grad=%s", n, vocab, d, f32 ? "f32" : "bf16");
    float *ef, *dxf, *g0f;
    uint16_t *eh = rand_bf16((size_t)vocab * d, 1.0f, &ef), *dxh = rand_bf16((size_t)n * d, 1.0f, &dxf);
    uint16_t *g0h = rand_bf16((size_t)vocab * d, 1.0f, &g0f);
    int *tok = (int *)xmalloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) tok[i] = irand(vocab);
    double *rx = dvec((size_t)n * d), *rg = dvec((size_t)vocab * d);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) rx[(size_t)i * d + j] = ef[(size_t)tok[i] * d + j];
    for (size_t i = 0; i < (size_t)vocab * d; i++) rg[i] = g0f[i];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) rg[(size_t)tok[i] * d + j] += dxf[(size_t)i * d + j];
    int *ids = (int *)xmalloc(sizeof(int) * n), *off = (int *)xmalloc(sizeof(int) * (n + 1));
    int *posn = (int *)xmalloc(sizeof(int) * n);
    const int u = embed_backward_plan(ids, off, posn, tok, n);
    void *de = dev_upload(eh, 2 * (size_t)vocab * d), *dt = dev_upload(tok, sizeof(int) * n);
    void *dx = dev_poison(2 * (size_t)n * d), *ddx = dev_upload(dxh, 2 * (size_t)n * d);
    void *dg = f32 ? dev_upload(g0f, 4 * (size_t)vocab * d) : dev_upload(g0h, 2 * (size_t)vocab * d);
    void *dids = dev_upload(ids, sizeof(int) * u), *doff = dev_upload(off, sizeof(int) * (u + 1));
    void *dpos = dev_upload(posn, sizeof(int) * n);
    embed_forward((r1_bf16 *)dx, (const r1_bf16 *)de, (const int *)dt, n, d, S);
    embed_backward(dg, f32, (const r1_bf16 *)ddx, (const int *)dids, (const int *)doff,
                   (const int *)dpos, u, d, S);
    sync_check("embedding");
    float *gx = download_bf16(dx, (size_t)n * d), *gg = download(dg, (size_t)vocab * d, f32);
    compare("embed_forward", shape, gx, rx, (size_t)n * d, d, 0.0);
    compare("embed_backward(+=)", shape, gg, rg, (size_t)vocab * d, d, f32 ? 1e-5 : 1e-2);
    guard_ok("embed_forward", dx, 2 * (size_t)n * d);
    cudaFree(de), cudaFree(dt), cudaFree(dx), cudaFree(ddx), cudaFree(dg), cudaFree(dids),
        cudaFree(doff), cudaFree(dpos);
    free(ef), free(dxf), free(g0f), free(eh), free(dxh), free(g0h), free(tok), free(rx), free(rg),
        free(ids), free(off), free(posn), free(gx), free(gg);
}

/* The split master weights' initial values: constants exactly, normals from (seed, index) with
 * the asked spread, the same on a second fill and another for another seed. */
static void test_fill_master(size_t n) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", n);
    void *w = dev_poison(2 * n), *lo = dev_poison(2 * n), *w2 = dev_poison(2 * n),
         *lo2 = dev_poison(2 * n);
    uint16_t *hw = (uint16_t *)xmalloc(2 * n), *hl = (uint16_t *)xmalloc(2 * n);
    const float consts[2] = {1.0f, -0.3f};
    for (int c = 0; c < 2; c++) {
        fill_master((r1_bf16 *)w, (uint16_t *)lo, n, consts[c], S);
        sync_check("fill_master");
        R1_CUDA_CHECK(cudaMemcpy(hw, w, 2 * n, cudaMemcpyDeviceToHost));
        R1_CUDA_CHECK(cudaMemcpy(hl, lo, 2 * n, cudaMemcpyDeviceToHost));
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += f32_to_bits(f32_join(hw[i], hl[i])) != f32_to_bits(consts[c]) ||
                   hw[i] != f32_split_hi(consts[c]);
        g_checks++;
        g_failures += bad != 0;
        printf("  %s %-26s %-44s %zu not %g\n", bad ? "FAIL" : "ok  ", "fill_master", shape, bad,
               consts[c]);
    }
    const float std = 0.02f;
    fill_normal_master((r1_bf16 *)w, (uint16_t *)lo, n, 7, std, S);
    fill_normal_master((r1_bf16 *)w2, (uint16_t *)lo2, n, 7, std, S);
    sync_check("fill_normal_master");
    same_bits("fill_normal_master w", shape, w, w2, 2 * n);
    same_bits("fill_normal_master lo", shape, lo, lo2, 2 * n);
    R1_CUDA_CHECK(cudaMemcpy(hw, w, 2 * n, cudaMemcpyDeviceToHost));
    R1_CUDA_CHECK(cudaMemcpy(hl, lo, 2 * n, cudaMemcpyDeviceToHost));
    double sum = 0, sq = 0;
    size_t near = 0; /* the working weight is the master's nearest bf16 */
    for (size_t i = 0; i < n; i++) {
        const float f = f32_join(hw[i], hl[i]);
        sum += f, sq += (double)f * f;
        near += fabsf(bf16_to_f32(hw[i]) - f) <= fabsf(round_bf16(f) - f);
    }
    const double mean = sum / n, sd = sqrt(sq / n - mean * mean);
    /* n = 1e6: the mean's standard error is std / 1000, the spread's std / 1414 */
    const int ok = fabs(mean) < 5 * std / 1000 && fabs(sd - std) < 5 * std / 1414 && near == n;
    g_checks++;
    g_failures += !ok;
    printf("  %s %-26s %-44s mean %.2e, std %.5f (want %.5f), %zu of %zu nearest\n",
           ok ? "ok  " : "FAIL", "fill_normal_master", shape, mean, sd, std, near, n);
    fill_normal_master((r1_bf16 *)w2, (uint16_t *)lo2, n, 8, std, S);
    sync_check("fill_normal_master");
    uint16_t *h2 = (uint16_t *)xmalloc(2 * n);
    R1_CUDA_CHECK(cudaMemcpy(h2, w2, 2 * n, cudaMemcpyDeviceToHost));
    size_t same = 0;
    for (size_t i = 0; i < n; i++) same += h2[i] == hw[i];
    g_checks++;
    g_failures += same > n / 10;
    printf("  %s %-26s %-44s seeds 7 and 8 agree at %zu of %zu\n", same > n / 10 ? "FAIL" : "ok  ",
           "fill_normal_master seeds", shape, same, n);
    guard_ok("fill_normal_master w", w, 2 * n);
    guard_ok("fill_normal_master lo", lo, 2 * n);
    cudaFree(w), cudaFree(lo), cudaFree(w2), cudaFree(lo2);
    free(hw), free(hl), free(h2);
}

int main(void) {
    err_set_command("test_train_kernels");
    cudaDeviceProp prop;
    R1_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount);
    rng_seed_from_env();
    G = r1_gemm_create(32u << 20);

    printf("GEMM (cuBLASLt)\n");
    test_linear_forward(37, 53, 19, 53, 0, 0, 0, 0);
    test_linear_forward(128, 64, 96, 64, 1, 0, 0, 0);
    test_linear_forward(300, 896, 1152, 896, 1, 0, 0, 0);
    test_linear_forward(257, 96, 384, 104, 0, 1, 0, 0);
    test_linear_forward(64, 256, 512, 256, 0, 1, 0, 1);
    test_linear_forward(77, 96, 384, 96, 0, 0, 1, 0);
    test_linear_forward(1024, 1536, 1000, 1536, 0, 0, 1, 0);
    test_linear_backward(37, 53, 19, 19, 0, 1);
    test_linear_backward(200, 96, 160, 160, 1, 0);
    test_linear_backward(513, 896, 1152, 1152, 1, 1);
    test_linear_backward(64, 96, 384, 768, 0, 0);
    test_bias_backward(37, 19, 19, 1);
    test_bias_backward(1000, 1152, 1280, 1);
    test_bias_backward(300, 640, 640, 0);
    test_bias_backward(9001, 264, 272, 1); /* 128 chunks, the last one short */

    printf("RMSNorm\n");
    test_rmsnorm(1, 8, 1);
    test_rmsnorm(37, 77, 1);
    test_rmsnorm(129, 896, 1);
    test_rmsnorm(2000, 1536, 0);
    test_rmsnorm(64, 3584, 1);
    test_rmsnorm(5, 8192, 1);
    test_rmsnorm(3, 12288, 0);
    test_rmsnorm(3, 16384, 1); /* above 12,288 the backward launches by its launch bound */

    printf("RoPE\n");
    {
        const int l1[] = {50, 13, 1, 70};
        test_rope(l1, 4, 6, 2, 16, 16, 0);
        const int l2[] = {33, 100};
        test_rope(l2, 2, 3, 1, 12, 12, 0);
        const int l3[] = {64, 300, 5};
        test_rope(l3, 3, 14, 2, 64, 64, 0);
        test_rope(l3, 3, 4, 2, 128, 128, 1);
        test_rope(l2, 2, 4, 4, 64, 32, 1);
    }

    printf("SwiGLU\n");
    test_swiglu(7, 13, 0);
    test_swiglu(100, 4864, 0);
    test_swiglu(3, 18944, 1);

    printf("linear + cross-entropy (chunked)\n");
    /* vocabularies a multiple of 4 up to 163840 take the cluster kernel (one read of each row,
     * 4 to 20 float4 per thread); 999 and 163844 the two-pass kernel (scalar, float4) */
    test_cross_entropy(37, 96, 384, 64, 1, 0);
    test_cross_entropy(300, 64, 1000, 128, 1, 0);
    test_cross_entropy(300, 64, 1000, 77, 0, 0);
    test_cross_entropy(100, 96, 999, 13, 1, 0);
    test_cross_entropy(40, 896, 151936, 16, 1, 0);
    test_cross_entropy(40, 896, 151936, 64, 1, 1);
    test_cross_entropy(12, 64, 128256, 5, 0, 0);
    test_cross_entropy(9, 64, 163844, 4, 1, 0);

    printf("AdamW and gradient norm\n");
    test_adamw(1000003, 0, 1, 7, 0.1, 0.9);
    test_adamw(4096, 1, 0, 1, 0.0, 0.9);
    test_adamw(777, 1, 1, 100, 0.01, 0.9);
    test_adamw(100003, 1, 1, 3, 0.1, 0.3); /* 1 - beta1 >= 0.5: torch.lerp's other branch */

    printf("embedding, master weights\n");
    test_embedding(100, 50, 96, 1);
    test_embedding(64, 7, 13, 0);
    test_embedding(4096, 1000, 896, 1);
    test_fill_master(1000001);

    /* attention last, the tensor-core kernels at the very end: a fault there (a CUDA error is
     * sticky) cannot hide the results of the other kernels */
    printf("attention (causal, packed documents, GQA): simple kernels\n");
    {
        const int l16[] = {50, 13, 1, 70};
        test_attention(l16, 4, 6, 2, 16, 1.0f, ATTN_SIMPLE);
        const int l96[] = {40, 3};
        test_attention(l96, 2, 2, 2, 96, 1.0f, ATTN_SIMPLE);
    }
    const int l64[] = {1, 63, 64, 65, 200, 7};
    const int l128[] = {130, 129, 3};
    const int lbig[] = {600, 424};
    const int lbig128[] = {1000, 33};
    for (int impl = ATTN_SIMPLE; impl <= ATTN_WGMMA; impl++) {
        if (impl == ATTN_MMA) printf("attention: tensor-core kernels (mma.sync)\n");
        if (impl == ATTN_WGMMA) printf("attention: tensor-core kernels (wgmma)\n");
        test_attention(l64, 6, 4, 2, 64, 1.0f, (attn_impl)impl);
        test_attention(l128, 3, 4, 1, 128, 1.0f, (attn_impl)impl);
        test_attention(l64, 6, 2, 2, 128, 4.0f, (attn_impl)impl);
        test_attention(lbig, 2, 14, 2, 64, 2.0f, (attn_impl)impl);
    }
    test_attention(lbig128, 2, 8, 2, 128, 1.0f, ATTN_MMA);
    test_attention(lbig128, 2, 8, 2, 128, 1.0f, ATTN_WGMMA);

    r1_gemm_destroy(G);
    printf("%d checks, %d failed\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
