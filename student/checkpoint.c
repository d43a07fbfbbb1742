/* Checkpoints: a Hugging Face model directory plus the optimizer and trainer state.
 *
 *   config.json              the base model's (with a recipe's config changes merged in)
 *   model.safetensors        the weights in the base checkpoint's dtype (bf16 stays bf16, f32
 *                            stays f32); model-0000k-of-0000n.safetensors + index past 5 GB
 *   tokenizer.json, tokenizer_config.json, special_tokens_map.json, vocab.json, merges.txt,
 *   tokenizer.model, chat_template.jinja   copied from the base model where present
 *   generation_config.json   the base model's, or bos/eos ids from config.json
 *   optimizer.safetensors    exp_avg.<name>, exp_avg_sq.<name> (fp32) and, when the weights are
 *                            stored narrower than fp32, master.<name>: the fp32 master weights
 *   trainer_state.json       step, data position, seed, hyperparameters (student/train.c)
 *
 * checkpoint-<step> directories are written under a temporary name and renamed into place, so a
 * kill leaves either the previous checkpoint or the new one, never a torn one. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "student/train.h"

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(path);
}

int remove_tree(const char *path) {
    if (!path_exists(path)) return R1_OK;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return err_fail(R1_ERUNTIME, path, "cannot remove: %s", strerror(errno));
    return R1_OK;
}

static int write_generation_config(const char *dir, const student_model *m) {
    char *src = m->path ? path_join(m->path, "generation_config.json") : NULL;
    int have = src && path_exists(src);
    free(src);
    if (have) return file_copy_into(m->path, dir, "generation_config.json", 0);
    cJSON *g = cJSON_CreateObject();
    if (m->cfg.bos_id >= 0) cJSON_AddNumberToObject(g, "bos_token_id", m->cfg.bos_id);
    if (m->cfg.n_eos == 1) {
        cJSON_AddNumberToObject(g, "eos_token_id", m->cfg.eos_ids[0]);
    } else if (m->cfg.n_eos > 1) {
        cJSON *arr = cJSON_AddArrayToObject(g, "eos_token_id");
        for (int i = 0; i < m->cfg.n_eos; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(m->cfg.eos_ids[i]));
    }
    int rc = json_write_file(dir, "generation_config.json", g);
    cJSON_Delete(g);
    return rc;
}

/* config.json, the tokenizer's files and generation_config.json */
static int write_small_files(const char *dir, const student_model *m) {
    TRY(dir_create(dir));
    CHECK(m->path);
    char *cfg_dst = path_join(dir, "config.json");
    int rc = file_write_atomic(cfg_dst, m->config_json, strlen(m->config_json));
    free(cfg_dst);
    if (rc) return rc;
    static const char *const copied[] = {"tokenizer.json",
                                         "tokenizer_config.json", "special_tokens_map.json",
                                         "vocab.json",       "merges.txt",
                                         "tokenizer.model",  "chat_template.jinja"};
    for (size_t i = 0; i < sizeof copied / sizeof *copied; i++)
        TRY(file_copy_into(m->path, dir, copied[i], 0));
    return write_generation_config(dir, m);
}

/* The writer's fill: entry j is kind kinds[j / n] of the layout's tensor j % n, in the entry's
 * type (through a float32 buffer of the largest tensor when narrower). */
typedef struct {
    const student_model *m;
    const checkpoint_values *v;
    const st_entry *e;
    source_kind kinds[3];
    float *f32;
} entry_fill;

static void fill_entry(void *ctx, int j, void *dst) {
    const entry_fill *f = ctx;
    const int n = f->m->n_tensors, i = j % n;
    const source_kind k = f->kinds[j / n];
    if (!dst || f->e[j].dt == DTYPE_F32) {
        f->v->read(f->v->ctx, k, i, dst);
        return;
    }
    f->v->read(f->v->ctx, k, i, f->f32);
    dtype_from_f32(dst, f->f32, f->e[j].dt, f->m->tensors[i].numel);
}

/* Writes entries [0, k) of f to path, or (path NULL, or after an error) only reads them. */
static int write_or_walk(const char *path, int dir, st_entry *e, int k, entry_fill *f, int rc) {
    if (path && !rc)
        return dir ? safetensors_write_dir_fill(path, e, k, (size_t)5 << 30, fill_entry, f)
                   : safetensors_write_fill(path, e, k, NULL, fill_entry, f, 0);
    for (int j = 0; j < k; j++) fill_entry(f, j, NULL);
    return rc;
}

int checkpoint_write_values(const char *dir, const student_model *m, const checkpoint_values *v,
                            const cJSON *state) {
    const int n = m->n_tensors, narrow = m->disk_dtype != DTYPE_F32;
    int rc = dir ? write_small_files(dir, m) : R1_OK;
    st_entry *e = xmalloc(sizeof(st_entry) * 3 * (size_t)n);
    char *names[3] = {NULL, NULL, NULL};
    entry_fill f = {m, v, e, {SOURCE_PARAMS, SOURCE_PARAMS, SOURCE_PARAMS}, NULL};
    if (narrow && dir) {
        size_t big = 0;
        for (int i = 0; i < n; i++) big = m->tensors[i].numel > big ? m->tensors[i].numel : big;
        f.f32 = xmalloc(sizeof(float) * big);
    }
    /* the weights, then the optimizer state. Stored narrower, the weights are read twice (for
     * model.safetensors, then as master.*): on GPUs that gathers them twice, the price of never
     * holding the whole float32 model on the host. */
    student_model_entries(m, "", m->disk_dtype, &names[0], e);
    rc = write_or_walk(dir, 1, e, n, &f, rc);
    free(names[0]);
    if (v->state) {
        student_model_entries(m, "exp_avg.", DTYPE_F32, &names[0], e);
        student_model_entries(m, "exp_avg_sq.", DTYPE_F32, &names[1], e + n);
        f.kinds[0] = SOURCE_EXP_AVG;
        f.kinds[1] = SOURCE_EXP_AVG_SQ;
        int k = 2 * n;
        if (narrow) {
            student_model_entries(m, "master.", DTYPE_F32, &names[2], e + k);
            k += n;
        }
        char *p = dir ? path_join(dir, "optimizer.safetensors") : NULL;
        rc = write_or_walk(p, 0, e, k, &f, rc);
        free(p);
        for (int i = 0; i < 3; i++) free(names[i]);
    }
    free(e);
    free(f.f32);
    if (dir && !rc) rc = json_write_file(dir, "trainer_state.json", state);
    return rc;
}

/* Values in host arrays in the layout: m->param_mem and, for a checkpoint, the moments. */
typedef struct {
    const student_model *m;
    const float *a[SOURCE_KINDS];
} host_values;

static void read_host(void *ctx, source_kind k, int i, float *dst) {
    const host_values *h = ctx;
    const student_tensor *t = &h->m->tensors[i];
    if (dst) memcpy(dst, h->a[k] + t->offset, sizeof(float) * t->numel);
}

static checkpoint_values host_arrays(host_values *h, const student_model *m, const float *exp_avg,
                                     const float *exp_avg_sq) {
    *h = (host_values){m, {m->param_mem, exp_avg, exp_avg_sq}};
    return (checkpoint_values){read_host, h, exp_avg != NULL};
}

int checkpoint_write(const char *dir, const student_model *m, const float *exp_avg,
                     const float *exp_avg_sq, const cJSON *state) {
    host_values h;
    const checkpoint_values v = host_arrays(&h, m, exp_avg, exp_avg_sq);
    return checkpoint_write_values(dir, m, &v, state);
}

/* The step of a "checkpoint-<N>" name, or -1. */
static int64_t checkpoint_step(const char *name) {
    if (strncmp(name, "checkpoint-", 11) != 0 || !name[11]) return -1;
    int64_t v = 0;
    for (const char *p = name + 11; *p; p++) {
        if (*p < '0' || *p > '9' || v > INT64_MAX / 10 - 10) return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

/* The checkpoints under out, sorted by step: the complete ones (their trainer_state.json is
 * there), or with `any` every checkpoint-<N> directory, as a removal cut short leaves them. */
static int list_checkpoints(const char *out, int any, int64_t **steps) {
    *steps = NULL;
    DIR *d = opendir(out);
    if (!d) return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s = checkpoint_step(e->d_name);
        if (s < 0) continue;
        char *dir = path_join(out, e->d_name), *st = path_join(dir, "trainer_state.json");
        int ok = any || path_exists(st);
        free(dir);
        free(st);
        if (!ok) continue;
        if (n == cap) *steps = xrealloc(*steps, sizeof(int64_t) * (size_t)(cap = cap ? 2 * cap : 8));
        (*steps)[n++] = s;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: a handful of entries */
        for (int j = i; j > 0 && (*steps)[j - 1] > (*steps)[j]; j--) {
            int64_t t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = t;
        }
    return n;
}

char *checkpoint_latest(const char *out) {
    int64_t *steps;
    int n = list_checkpoints(out, 0, &steps);
    char *r = NULL;
    if (n > 0) {
        char name[40];
        snprintf(name, sizeof name, "checkpoint-%lld", (long long)steps[n - 1]);
        r = path_join(out, name);
    }
    free(steps);
    return r;
}

int checkpoint_save(const char *out, int64_t step, const student_model *m, const float *exp_avg,
                    const float *exp_avg_sq, const cJSON *state, int keep) {
    host_values h;
    const checkpoint_values v = host_arrays(&h, m, exp_avg, exp_avg_sq);
    return checkpoint_save_values(out, step, m, &v, state, keep);
}

int checkpoint_save_values(const char *out, int64_t step, const student_model *m,
                           const checkpoint_values *v, const cJSON *state, int keep) {
    if (!out) return checkpoint_write_values(NULL, m, v, NULL);
    char name[48];
    snprintf(name, sizeof name, "checkpoint-%lld", (long long)step);
    char *final = path_join(out, name);
    char *tmp = xasprintf("%s.tmp", final);
    int rc = remove_tree(tmp);
    if (rc) checkpoint_write_values(NULL, m, v, NULL); /* still takes part */
    if (!rc) rc = checkpoint_write_values(tmp, m, v, state);
    if (!rc) rc = remove_tree(final);
    if (!rc && rename(tmp, final) != 0)
        rc = err_fail(R1_ERUNTIME, final, "cannot rename the checkpoint into place: %s",
                      strerror(errno));
    if (!rc) rc = dir_sync(out);
    free(tmp);
    free(final);
    if (rc || keep <= 0) return rc;
    /* every directory older than the keep-th newest complete checkpoint goes, complete or not:
     * a run killed while removing one leaves it without its trainer_state.json (removed
     * first), no longer a checkpoint but still a directory to remove */
    int64_t *steps;
    int n = list_checkpoints(out, 0, &steps);
    const int64_t oldest_kept = n > keep ? steps[n - keep] : -1;
    free(steps);
    n = list_checkpoints(out, 1, &steps);
    for (int i = 0; i < n && steps[i] < oldest_kept && !rc; i++) {
        snprintf(name, sizeof name, "checkpoint-%lld", (long long)steps[i]);
        char *old = path_join(out, name);
        rc = remove_tree(old);
        free(old);
    }
    free(steps);
    return rc;
}

int checkpoint_open(const char *dir, student_model *m, student_source *src, cJSON **state) {
    *state = NULL;
    char *sp = path_join(dir, "trainer_state.json"), *op = path_join(dir, "optimizer.safetensors");
    int untie = 0;
    int rc = json_parse_file(state, sp, 64u << 20);
    if (!rc) rc = student_model_open(m, dir, NULL, &untie);
    if (!rc) {
        rc = student_source_open(src, m, dir, op, untie);
        if (rc) student_model_free(m);
    }
    free(sp);
    free(op);
    if (rc && *state) {
        cJSON_Delete(*state);
        *state = NULL;
    }
    return rc;
}

int checkpoint_load(const char *dir, student_model *m, float **exp_avg, float **exp_avg_sq,
                    cJSON **state) {
    *exp_avg = *exp_avg_sq = NULL;
    student_source src;
    TRY(checkpoint_open(dir, m, &src, state));
    student_source_read_state(&src, m, exp_avg, exp_avg_sq);
    student_source_close(&src);
    return R1_OK;
}
