/* Where a student's starting values come from: the safetensors of a model directory or of a
 * checkpoint, mapped and checked once, then read tensor piece by tensor piece.
 *
 * Why not one float32 array: a GPU rank needs only its shards of the master weights and the
 * moments (and, below ZeRO-3, the bf16 weights), and the mapped files are the host's page cache,
 * shared by every rank on the host. Eight ranks of a 32B model each holding the whole float32
 * model would need a terabyte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "student/student.h"

/* The file's tensor for one of the layout's, checked: present, the layout's shape, a float type
 * the trainer reads. */
static const st_tensor *need(const safetensors *st, const char *prefix, const student_tensor *t) {
    char name[128];
    snprintf(name, sizeof name, "%s%s", prefix, t->name);
    const st_tensor *s = safetensors_need_shape(st, name, t->ndim, t->shape, "config.json");
    if (s && s->dt != DTYPE_F32 && s->dt != DTYPE_BF16 && s->dt != DTYPE_F16) {
        err_fail(R1_EINPUT, safetensors_shard_path(st, s),
                 "tensor %s has dtype %s; the trainer reads F32, BF16 or F16", name,
                 dtype_name(s->dt));
        return NULL;
    }
    return s;
}

/* Finds kind k's tensors in st under prefix: 0, or R1_EINPUT with the error recorded. */
static int find_all(student_source *src, const student_model *m, const safetensors *st,
                    source_kind k, const char *prefix) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!(src->t[k][i] = need(st, prefix, &m->tensors[i]))) return R1_EINPUT;
    return R1_OK;
}

int student_source_open(student_source *src, student_model *m, const char *dir,
                        const char *optimizer, int untie) {
    memset(src, 0, sizeof *src);
    src->n = m->n_tensors;
    for (int k = 0; k < SOURCE_KINDS; k++) src->t[k] = xcalloc((size_t)src->n, sizeof(st_tensor *));
    int rc = safetensors_open(&src->weights, dir);
    if (rc) {
        student_source_close(src);
        return rc;
    }
    src->open = 1;
    const st_tensor **w = src->t[SOURCE_PARAMS];
    int head = -1;
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const student_tensor *t = &m->tensors[i];
        /* untying a tied checkpoint: the new head starts as the embedding, the function the
         * tied model computed (unless the file has a head of its own) */
        if (untie && strcmp(t->name, "lm_head.weight") == 0 &&
            !safetensors_find(&src->weights, t->name)) {
            head = i;
            continue;
        }
        if (!(w[i] = need(&src->weights, "", t))) rc = R1_EINPUT;
    }
    if (!rc && head >= 0) {
        const student_tensor *e = student_model_find(m, "model.embed_tokens.weight");
        CHECK(e);
        w[head] = w[e - m->tensors];
    }
    if (!rc) m->disk_dtype = w[0]->dt;
    if (!rc && optimizer) {
        rc = safetensors_open(&src->optim, optimizer);
        if (!rc) {
            src->open = 2;
            rc = find_all(src, m, &src->optim, SOURCE_EXP_AVG, "exp_avg.");
            if (!rc) rc = find_all(src, m, &src->optim, SOURCE_EXP_AVG_SQ, "exp_avg_sq.");
            /* weights stored narrower than float32: the master weights are in the state */
            if (!rc && m->disk_dtype != DTYPE_F32)
                rc = find_all(src, m, &src->optim, SOURCE_PARAMS, "master.");
        }
    }
    if (rc) student_source_close(src);
    return rc;
}

int student_source_has(const student_source *src, source_kind k) {
    return src->n > 0 && src->t[k][0] != NULL;
}

void student_source_read(const student_source *src, source_kind k, int i, size_t c0, size_t cnt,
                         float *dst) {
    CHECK(i >= 0 && i < src->n);
    const st_tensor *t = src->t[k][i];
    if (!t) {
        memset(dst, 0, sizeof(float) * cnt);
        return;
    }
    CHECK(c0 + cnt <= (size_t)t->numel);
    /* in blocks over the host's threads: the page faults into the mapped file and the
     * conversion of a 7B model take seconds on one */
    const size_t es = dtype_size(t->dt), block = (size_t)1 << 20;
    const char *from = (const char *)t->data + c0 * es;
    const long n_blocks = (long)((cnt + block - 1) / block);
#pragma omp parallel for schedule(dynamic) if (n_blocks > 1)
    for (long b = 0; b < n_blocks; b++) {
        const size_t j = (size_t)b * block, n = cnt - j < block ? cnt - j : block;
        dtype_to_f32(dst + j, from + j * es, t->dt, n);
    }
}

void student_source_read_all(const student_source *src, const student_model *m, source_kind k,
                             float *dst) {
    for (int i = 0; i < m->n_tensors; i++)
        student_source_read(src, k, i, 0, m->tensors[i].numel, dst + m->tensors[i].offset);
}

void student_source_read_state(const student_source *src, student_model *m, float **exp_avg,
                               float **exp_avg_sq) {
    student_source_read_all(src, m, SOURCE_PARAMS, m->param_mem);
    /* zero pages until written: a fresh run's moments cost nothing until the first update */
    *exp_avg = xcalloc_large(m->n_params, sizeof(float));
    *exp_avg_sq = xcalloc_large(m->n_params, sizeof(float));
    if (student_source_has(src, SOURCE_EXP_AVG)) {
        student_source_read_all(src, m, SOURCE_EXP_AVG, *exp_avg);
        student_source_read_all(src, m, SOURCE_EXP_AVG_SQ, *exp_avg_sq);
    }
}

void student_source_close(student_source *src) {
    if (src->open >= 1) safetensors_close(&src->weights);
    if (src->open >= 2) safetensors_close(&src->optim);
    for (int k = 0; k < SOURCE_KINDS; k++) free(src->t[k]);
    memset(src, 0, sizeof *src);
}
