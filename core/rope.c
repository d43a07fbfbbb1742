#include "core/rope.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"

double yarn_get_mscale(double scale, double m) {
    if (scale <= 1.0) return 1.0;
    return 0.1 * m * log(scale) + 1.0;
}

/* transformers: inv_freq = 1 / base ** (arange(0, dim, 2).float() / dim), in float32. */
static void default_freqs(float *f, int dim, double theta) {
    for (int i = 0; i < dim / 2; i++) {
        float e = (float)(2 * i) / (float)dim;
        f[i] = 1.0f / powf((float)theta, e);
    }
}

/* Llama 3.1: keep high frequencies, divide low ones by `factor`, blend in between
 * (llama-models apply_scaling; transformers _compute_llama3_parameters). */
static void llama3_freqs(float *f, int dim, const rope_config *c) {
    const double pi = 3.14159265358979323846;
    double old_ctx = c->original_max_position;
    double low_wavelen = old_ctx / c->low_freq_factor;
    double high_wavelen = old_ctx / c->high_freq_factor;
    for (int i = 0; i < dim / 2; i++) {
        float inv = f[i];
        float wavelen = (float)(2 * pi) / inv;
        float scaled = wavelen > low_wavelen ? inv / (float)c->factor : inv;
        if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
            float smooth = ((float)old_ctx / wavelen - (float)c->low_freq_factor) /
                           (float)(c->high_freq_factor - c->low_freq_factor);
            scaled = (1 - smooth) * scaled / (float)c->factor + smooth * scaled;
        }
        f[i] = scaled;
    }
}

/* YaRN (Peng et al. 2023; transformers _compute_yarn_parameters; DeepSeek-V3
 * precompute_freqs_cis): interpolate low frequencies by `factor`, keep high ones, ramp between
 * the correction dimensions found for beta_fast and beta_slow rotations. */
static double correction_dim(double rotations, int dim, double base, double max_pos) {
    const double pi = 3.14159265358979323846;
    return (dim * log(max_pos / (rotations * 2 * pi))) / (2 * log(base));
}

static float yarn_freqs(float *f, int dim, const rope_config *c) {
    double low = correction_dim(c->beta_fast, dim, c->theta, c->original_max_position);
    double high = correction_dim(c->beta_slow, dim, c->theta, c->original_max_position);
    if (!c->yarn_no_truncate) {
        low = floor(low);
        high = ceil(high);
    }
    if (low < 0) low = 0;
    if (high > dim - 1) high = dim - 1;
    if (low == high) high += 0.001;
    for (int i = 0; i < dim / 2; i++) {
        float pos_freq = powf((float)c->theta, (float)(2 * i) / (float)dim);
        float extrap = 1.0f / pos_freq;
        float interp = 1.0f / ((float)c->factor * pos_freq);
        float ramp = ((float)i - (float)low) / (float)(high - low);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        float extrap_factor = 1.0f - ramp;
        f[i] = interp * (1 - extrap_factor) + extrap * extrap_factor;
    }
    if (c->attention_factor > 0) return (float)c->attention_factor;
    if (c->mscale > 0 && c->mscale_all_dim > 0)
        return (float)(yarn_get_mscale(c->factor, c->mscale) /
                       yarn_get_mscale(c->factor, c->mscale_all_dim));
    return (float)yarn_get_mscale(c->factor, 1.0);
}

void rope_init(rope_table *r, const rope_config *cfg, int dim, rope_layout layout) {
    CHECK(dim > 0 && dim % 2 == 0);
    r->dim = dim;
    r->layout = layout;
    r->attn_factor = 1.0f;
    r->inv_freq = xmalloc(sizeof(float) * (size_t)(dim / 2));
    default_freqs(r->inv_freq, dim, cfg->theta);
    if (cfg->type == ROPE_LLAMA3) llama3_freqs(r->inv_freq, dim, cfg);
    if (cfg->type == ROPE_YARN) r->attn_factor = yarn_freqs(r->inv_freq, dim, cfg);
}

void rope_free(rope_table *r) {
    free(r->inv_freq);
    r->inv_freq = NULL;
}

static void rotate(const rope_table *r, float *x, int n_heads, int head_stride, int off, int pos,
                   float sign) {
    int half = r->dim / 2;
    for (int i = 0; i < half; i++) {
        /* float32 angle as transformers computes it: inv_freq @ position_ids in float32 */
        float angle = (float)pos * r->inv_freq[i];
        float c = cosf(angle) * r->attn_factor, s = sinf(angle) * r->attn_factor * sign;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * head_stride + off;
            int a = r->layout == ROPE_PAIRS_HALF ? i : 2 * i;
            int b = r->layout == ROPE_PAIRS_HALF ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x1 * c + x0 * s;
        }
    }
}

void rope_apply(const rope_table *r, float *x, int n_heads, int head_stride, int off, int pos) {
    rotate(r, x, n_heads, head_stride, off, pos, 1.0f);
}

void rope_apply_inverse(const rope_table *r, float *x, int n_heads, int head_stride, int off,
                        int pos) {
    rotate(r, x, n_heads, head_stride, off, pos, -1.0f);
}
