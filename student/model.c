/* The student's parameters: a table of tensors laid into one float32 allocation, loaded from
 * and written to Hugging Face safetensors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "student/student.h"

/* Appends a tensor to the layout; returns its offset. */
static size_t add_tensor(student_model *m, int *cap, const char *name, int64_t rows,
                         int64_t cols) {
    if (m->n_tensors == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        m->tensors = xrealloc(m->tensors, sizeof(student_tensor) * (size_t)*cap);
    }
    student_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = rows ? 2 : 1;
    t->shape[0] = rows ? rows : cols;
    t->shape[1] = rows ? cols : 0;
    t->numel = (size_t)(rows ? rows : 1) * (size_t)cols;
    t->offset = m->n_params;
    /* As the HF Trainer groups them: weight decay on matrices, none on norms and biases
     * (every 1-D parameter here is one of those). */
    t->decay = t->ndim == 2;
    m->n_params += t->numel;
    return t->offset;
}

/* Points a params struct at a base pointer through the recorded offsets. The table order is
 * transformers' named_parameters() order (module registration order). */
typedef struct {
    size_t embed, final_norm, lm_head;
    size_t *layer; /* [L][12] */
} layout_offsets;

enum { LQ, LBQ, LK, LBK, LV, LBV, LO, LG, LU, LD, LN1, LN2, LCOUNT };

static void point(student_params *p, float *base, const layout_offsets *o, const model_config *c) {
    p->embed = base + o->embed;
    p->final_norm = base + o->final_norm;
    p->lm_head = c->tie_word_embeddings ? p->embed : base + o->lm_head;
    for (int l = 0; l < c->num_layers; l++) {
        const size_t *lo = o->layer + (size_t)l * LCOUNT;
        student_layer *L = &p->layers[l];
        L->wq = base + lo[LQ];
        L->wk = base + lo[LK];
        L->wv = base + lo[LV];
        L->bq = c->attention_bias ? base + lo[LBQ] : NULL;
        L->bk = c->attention_bias ? base + lo[LBK] : NULL;
        L->bv = c->attention_bias ? base + lo[LBV] : NULL;
        L->wo = base + lo[LO];
        L->wg = base + lo[LG];
        L->wu = base + lo[LU];
        L->wd = base + lo[LD];
        L->attn_norm = base + lo[LN1];
        L->mlp_norm = base + lo[LN2];
    }
}

int student_model_create(student_model *m, const model_config *c) {
    memset(m, 0, sizeof *m);
    if (c->arch != ARCH_QWEN2 && c->arch != ARCH_LLAMA)
        return err_fail(R1_EINPUT, "config.json",
                        "model_type \"%s\" cannot be trained as a student (qwen2 and llama can)",
                        c->model_type);
    m->cfg = *c;
    m->disk_dtype = DTYPE_F32;
    const int64_t d = c->hidden_size, V = c->vocab_size, ff = c->intermediate_size,
                  qd = (int64_t)c->num_heads * c->head_dim,
                  kvd = (int64_t)c->num_kv_heads * c->head_dim;
    int cap = 0;
    layout_offsets o = {0};
    o.layer = xmalloc(sizeof(size_t) * LCOUNT * (size_t)c->num_layers);
    char n[96];
    o.embed = add_tensor(m, &cap, "model.embed_tokens.weight", V, d);
    for (int l = 0; l < c->num_layers; l++) {
        size_t *lo = o.layer + (size_t)l * LCOUNT;
#define T(idx, suffix, rows, cols)                                                               \
    do {                                                                                         \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                                 \
        lo[idx] = add_tensor(m, &cap, n, rows, cols);                                           \
    } while (0)
        T(LQ, "self_attn.q_proj.weight", qd, d);
        if (c->attention_bias) T(LBQ, "self_attn.q_proj.bias", 0, qd);
        T(LK, "self_attn.k_proj.weight", kvd, d);
        if (c->attention_bias) T(LBK, "self_attn.k_proj.bias", 0, kvd);
        T(LV, "self_attn.v_proj.weight", kvd, d);
        if (c->attention_bias) T(LBV, "self_attn.v_proj.bias", 0, kvd);
        T(LO, "self_attn.o_proj.weight", d, qd);
        T(LG, "mlp.gate_proj.weight", ff, d);
        T(LU, "mlp.up_proj.weight", ff, d);
        T(LD, "mlp.down_proj.weight", d, ff);
        T(LN1, "input_layernorm.weight", 0, d);
        T(LN2, "post_attention_layernorm.weight", 0, d);
#undef T
    }
    o.final_norm = add_tensor(m, &cap, "model.norm.weight", 0, d);
    if (!c->tie_word_embeddings) o.lm_head = add_tensor(m, &cap, "lm_head.weight", V, d);
    m->param_mem = xcalloc(m->n_params, sizeof(float));
    m->grad_mem = xcalloc(m->n_params, sizeof(float));
    m->p.layers = xcalloc((size_t)c->num_layers, sizeof(student_layer));
    m->g.layers = xcalloc((size_t)c->num_layers, sizeof(student_layer));
    point(&m->p, m->param_mem, &o, c);
    point(&m->g, m->grad_mem, &o, c);
    free(o.layer);
    rope_init(&m->rope, &c->rope, c->head_dim, ROPE_PAIRS_HALF);
    return R1_OK;
}

const student_tensor *student_model_find(const student_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

int student_model_read_tensors(student_model *m, float *dst, const char *path, const char *prefix) {
    safetensors st;
    TRY(safetensors_open(&st, path));
    int rc = R1_OK;
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const student_tensor *t = &m->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        const st_tensor *s = safetensors_need_shape(&st, name, t->ndim, t->shape, "config.json");
        if (!s) {
            rc = R1_EINPUT;
            break;
        }
        if (s->dt != DTYPE_F32 && s->dt != DTYPE_BF16 && s->dt != DTYPE_F16) {
            rc = err_fail(R1_EINPUT, safetensors_shard_path(&st, s),
                          "tensor %s has dtype %s; the trainer reads F32, BF16 or F16", name,
                          dtype_name(s->dt));
            break;
        }
        if (i == 0 && !*prefix) m->disk_dtype = s->dt;
        dtype_to_f32(dst + t->offset, s->data, s->dt, t->numel);
    }
    safetensors_close(&st);
    return rc;
}

int student_model_load(student_model *m, const char *dir) {
    memset(m, 0, sizeof *m);
    if (!path_is_dir(dir)) {
        err_fail(R1_EINPUT, dir, "no such model directory");
        return err_hint("pass a Hugging Face model directory (config.json + *.safetensors)");
    }
    model_config c;
    TRY(model_config_load(&c, dir));
    TRY(student_model_create(m, &c));
    int rc = student_model_read_tensors(m, m->param_mem, dir, "");
    if (rc) {
        student_model_free(m);
        return rc;
    }
    m->path = xstrdup(dir);
    return R1_OK;
}

void student_model_entries(const student_model *m, const float *src, const char *prefix, dtype dt,
                           void **scratch, st_entry *entries) {
    size_t names = 0;
    for (int i = 0; i < m->n_tensors; i++) names += strlen(prefix) + strlen(m->tensors[i].name) + 1;
    names = (names + 7) & ~(size_t)7;
    char *mem = xmalloc(names + m->n_params * dtype_size(dt));
    char *np = mem;
    uint8_t *data = (uint8_t *)mem + names;
    for (int i = 0; i < m->n_tensors; i++) {
        const student_tensor *t = &m->tensors[i];
        st_entry *e = &entries[i];
        memset(e, 0, sizeof *e);
        np += sprintf(np, "%s%s", prefix, t->name) + 1;
        e->name = np - strlen(prefix) - strlen(t->name) - 1;
        e->dt = dt;
        e->ndim = t->ndim;
        e->shape[0] = t->shape[0];
        e->shape[1] = t->shape[1];
        void *out = data + t->offset * dtype_size(dt);
        dtype_from_f32(out, src + t->offset, dt, t->numel);
        e->data = out;
    }
    *scratch = mem;
}

void student_model_free(student_model *m) {
    free(m->tensors);
    free(m->param_mem);
    free(m->grad_mem);
    free(m->p.layers);
    free(m->g.layers);
    free(m->path);
    if (m->rope.inv_freq) rope_free(&m->rope);
    memset(m, 0, sizeof *m);
}
