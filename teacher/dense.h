/* Internal to teacher/: the Qwen2 / Llama model's weights, shared by the loader of Hugging Face
 * directories (dense.c) and the loader of GGUF files (gguf_model.c). One forward pass
 * (dense.c) runs both. */
#ifndef R1_TEACHER_DENSE_H
#define R1_TEACHER_DENSE_H

#include "core/safetensors.h"
#include "teacher/teacher.h"

typedef struct {
    weight attn_norm;   /* [d] */
    weight wq, wk, wv;  /* [H*hd, d], [KV*hd, d], [KV*hd, d] */
    weight bq, bk, bv;  /* Qwen2 / attention_bias */
    weight wo;          /* [d, H*hd] */
    weight mlp_norm;    /* [d] */
    weight wg, wu;      /* [ff, d] */
    weight wd;          /* [d, ff] */
} dense_layer;

typedef struct dense_model dense_model;
struct dense_model {
    teacher_model base;
    safetensors st;     /* Hugging Face directory: the mapped shards */
    void *source;       /* GGUF: the mapped file the weights point into */
    void (*close_source)(void *source);
    weight embed;       /* [vocab, d] */
    weight final_norm;  /* [d] */
    weight lm_head;     /* [vocab, d]; the embedding when tied */
    dense_layer *layers;
    rope_table rope;    /* Hugging Face layout: pairs (i, i + hd/2); GGUF llama: adjacent pairs */
    void *k_cache, *v_cache;  /* [layers][slots][len][KV*hd] of be->cache_dtype */
    /* Per-forward buffers in backend memory, kept between passes (and grown when a pass needs
     * more) so that a pass of the same shape uses the same addresses and a device backend can
     * replay its recording (backend.h graph_begin). */
    int cap_n;                /* rows the buffers below hold (tokens and output rows) */
    int cap_out;              /* rows of `logits` */
    float *x, *h;             /* [cap_n, d] residual stream, normed input */
    float *q, *att;           /* [cap_n, H*hd] */
    float *k, *v;             /* [cap_n, KV*hd] */
    float *g, *u;             /* [cap_n, ff] */
    float *logits;            /* [cap_out, vocab] */
    int *idx;                 /* [4 * cap_n]: tokens, slots, positions, output rows */
    int *host_idx;            /* host staging for idx */
};

/* A model with its function table set and cfg->num_layers empty layers; the loader fills the
 * weights and the rope table. */
dense_model *dense_new(const model_config *cfg, backend *be);
/* Releases what dense_new and the loader set up, including the model itself. */
void dense_free(dense_model *m);
/* After the loader built the weight views: each to the backend's memory (backend.h
 * upload_weight; GGUF block weights go to a device backend as float32 rows), then the tied
 * head. */
int dense_upload(dense_model *m);

/* Opens a GGUF file (qwen2 or llama) as a dense model (gguf_model.c). */
int gguf_model_open(teacher_model **out, const char *path, backend *be);

#endif
