/* The student's parameters: a table of tensors laid into one float32 allocation, loaded from
 * and written to Hugging Face safetensors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/dense_layout.h"
#include "core/fileio.h"
#include "core/json.h"
#include "student/student.h"

/* Points a params struct at a base pointer through the layout's offsets. */
static void point(student_params *p, float *base, const student_model *m) {
    const model_config *c = &m->cfg;
    for (int k = 0; k < m->n_tensors; k++) {
        const student_tensor *t = &m->tensors[k];
        float *x = base + t->offset;
        const char *n = t->name;
        if (strcmp(n, "model.embed_tokens.weight") == 0) p->embed = x;
        else if (strcmp(n, "model.norm.weight") == 0) p->final_norm = x;
        else if (strcmp(n, "lm_head.weight") == 0) p->lm_head = x;
        else {
            int l;
            char suffix[64];
            CHECK(sscanf(n, "model.layers.%d.%63s", &l, suffix) == 2 && l >= 0 && l < c->num_layers);
            student_layer *L = &p->layers[l];
            float **dst = strcmp(suffix, "input_layernorm.weight") == 0           ? &L->attn_norm
                          : strcmp(suffix, "self_attn.q_proj.weight") == 0        ? &L->wq
                          : strcmp(suffix, "self_attn.q_proj.bias") == 0          ? &L->bq
                          : strcmp(suffix, "self_attn.k_proj.weight") == 0        ? &L->wk
                          : strcmp(suffix, "self_attn.k_proj.bias") == 0          ? &L->bk
                          : strcmp(suffix, "self_attn.v_proj.weight") == 0        ? &L->wv
                          : strcmp(suffix, "self_attn.v_proj.bias") == 0          ? &L->bv
                          : strcmp(suffix, "self_attn.o_proj.weight") == 0        ? &L->wo
                          : strcmp(suffix, "post_attention_layernorm.weight") == 0 ? &L->mlp_norm
                          : strcmp(suffix, "mlp.gate_proj.weight") == 0           ? &L->wg
                          : strcmp(suffix, "mlp.up_proj.weight") == 0             ? &L->wu
                          : strcmp(suffix, "mlp.down_proj.weight") == 0           ? &L->wd
                                                                                  : NULL;
            CHECK(dst);
            *dst = x;
        }
    }
    if (c->tie_word_embeddings) p->lm_head = p->embed;
}

int student_model_create(student_model *m, const model_config *c) {
    memset(m, 0, sizeof *m);
    if (c->arch != ARCH_QWEN2 && c->arch != ARCH_LLAMA)
        return err_fail(R1_EINPUT, "config.json",
                        "model_type \"%s\" cannot be trained as a student (qwen2 and llama can)",
                        c->model_type);
    m->cfg = *c;
    m->disk_dtype = DTYPE_F32;
    /* The checkpoint's tensors as core/dense_layout.h lists them (the order transformers saves
     * them), laid end to end. */
    dense_tensor *dt;
    TRY(dense_layout(c, &dt, &m->n_tensors));
    m->tensors = xcalloc((size_t)m->n_tensors, sizeof *m->tensors);
    for (int k = 0; k < m->n_tensors; k++) {
        student_tensor *t = &m->tensors[k];
        snprintf(t->name, sizeof t->name, "%s", dt[k].name);
        t->ndim = dt[k].ndim;
        t->shape[0] = dt[k].shape[0];
        t->shape[1] = dt[k].ndim == 2 ? dt[k].shape[1] : 0;
        t->numel = dense_numel(&dt[k]);
        t->offset = m->n_params;
        /* As the HF Trainer groups them: weight decay on the embedding, projections and head;
         * none on RMSNorm weights and biases. */
        t->decay = dt[k].role == TENSOR_EMBED || dt[k].role == TENSOR_LINEAR ||
                   dt[k].role == TENSOR_HEAD;
        m->n_params += t->numel;
    }
    free(dt);
    m->param_mem = xcalloc_large(m->n_params, sizeof(float));
    m->grad_mem = xcalloc_large(m->n_params, sizeof(float));
    m->p.layers = xcalloc((size_t)c->num_layers, sizeof(student_layer));
    m->g.layers = xcalloc((size_t)c->num_layers, sizeof(student_layer));
    point(&m->p, m->param_mem, m);
    point(&m->g, m->grad_mem, m);
    rope_init(&m->rope, &c->rope, c->head_dim, ROPE_PAIRS_HALF);
    return R1_OK;
}

const student_tensor *student_model_find(const student_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

int student_model_open(student_model *m, const char *dir, const cJSON *config_changes, int *untie) {
    memset(m, 0, sizeof *m);
    *untie = 0;
    if (!path_is_dir(dir)) {
        err_fail(R1_EINPUT, dir, "no such model directory");
        return err_hint("pass a Hugging Face model directory (config.json + *.safetensors)");
    }
    char *cfg_path = path_join(dir, "config.json");
    cJSON *root;
    int rc = json_parse_file(&root, cfg_path, 16u << 20);
    if (rc) {
        if (!path_exists(cfg_path)) err_fail(R1_EINPUT, cfg_path, "missing config.json");
        free(cfg_path);
        return R1_EINPUT;
    }
    model_config base, c;
    rc = model_config_from_json(&base, root, cfg_path);
    /* A recipe's config changes (R1-Distill's: rope_theta, max_position_embeddings, an untied
     * head) are merged into the base config before anything is built from it. */
    if (!rc && config_changes) {
        const cJSON *it;
        cJSON_ArrayForEach(it, config_changes) {
            cJSON *copy = cJSON_Duplicate(it, 1);
            if (cJSON_GetObjectItemCaseSensitive(root, it->string))
                cJSON_ReplaceItemInObjectCaseSensitive(root, it->string, copy);
            else
                cJSON_AddItemToObject(root, it->string, copy);
        }
        rc = model_config_from_json(&c, root, cfg_path);
        if (!rc && !base.tie_word_embeddings && c.tie_word_embeddings)
            rc = err_fail(R1_EINPUT, cfg_path, "the config changes tie the embeddings of a "
                          "checkpoint with its own lm_head; only untying is supported");
    } else {
        c = base;
    }
    if (!rc) rc = student_model_create(m, &c);
    if (!rc) {
        m->config_json = json_print(root);
        m->path = xstrdup(dir);
        *untie = base.tie_word_embeddings && !c.tie_word_embeddings;
    }
    cJSON_Delete(root);
    free(cfg_path);
    return rc;
}

int student_model_load(student_model *m, const char *dir, const cJSON *config_changes) {
    int untie;
    TRY(student_model_open(m, dir, config_changes, &untie));
    student_source src;
    int rc = student_source_open(&src, m, dir, NULL, untie);
    if (rc) {
        student_model_free(m);
        return rc;
    }
    student_source_read_all(&src, m, SOURCE_PARAMS, m->param_mem);
    student_source_close(&src);
    return R1_OK;
}

void student_model_entries(const student_model *m, const char *prefix, dtype dt, char **names,
                           st_entry *entries) {
    size_t len = 0;
    for (int i = 0; i < m->n_tensors; i++) len += strlen(prefix) + strlen(m->tensors[i].name) + 1;
    char *np = *names = xmalloc(len ? len : 1);
    for (int i = 0; i < m->n_tensors; i++) {
        const student_tensor *t = &m->tensors[i];
        st_entry *e = &entries[i];
        memset(e, 0, sizeof *e);
        e->name = np;
        np += sprintf(np, "%s%s", prefix, t->name) + 1;
        e->dt = dt;
        e->ndim = t->ndim;
        e->shape[0] = t->shape[0];
        e->shape[1] = t->shape[1];
    }
}

void student_model_free(student_model *m) {
    free(m->tensors);
    free(m->param_mem);
    free(m->grad_mem);
    free(m->p.layers);
    free(m->g.layers);
    free(m->path);
    free(m->config_json);
    if (m->rope.inv_freq) rope_free(&m->rope);
    memset(m, 0, sizeof *m);
}
