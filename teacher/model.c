/* Opening a model of any supported architecture, and whole-prompt logits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "teacher/dense.h"
#include "teacher/teacher.h"

/* A regular file named *.gguf (the reader then says what is wrong with it) or one that starts
 * with the GGUF magic. */
static int is_gguf_file(const char *path) {
    if (path_is_dir(path)) return 0;
    size_t n0 = strlen(path);
    if (n0 >= 5 && strcmp(path + n0 - 5, ".gguf") == 0) return 1;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[4] = {0};
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && memcmp(magic, "GGUF", 4) == 0;
}

int teacher_open(teacher_model **out, const char *path, backend *be) {
    *out = NULL;
    if (!path_exists(path)) {
        err_fail(R1_EINPUT, path, "no such model directory or GGUF file");
        return err_hint("pass a Hugging Face model directory (config.json + *.safetensors) or a "
                        ".gguf file");
    }
    if (is_gguf_file(path)) {
        TRY(gguf_model_open(out, path, be));
        (*out)->path = xstrdup(path);
        return R1_OK;
    }
    model_config cfg;
    TRY(model_config_load(&cfg, path));
    int rc = cfg.arch == ARCH_DEEPSEEK_V3 ? deepseek_open(out, path, &cfg, be)
                                           : dense_open(out, path, &cfg, be);
    if (rc) return rc;
    (*out)->path = xstrdup(path);
    return R1_OK;
}

void teacher_close(teacher_model *m) {
    if (!m) return;
    m->destroy(m);
    free(m->path);
    free(m);
}

int teacher_logits_all(teacher_model *m, const int *tokens, int n, float **logits) {
    *logits = NULL;
    if (n <= 0) return err_fail(R1_EINPUT, "tokens", "no tokens to run");
    if (m->cache_slots < 1 || m->cache_len < n) TRY(m->cache_init(m, 1, n));
    int *slot = xcalloc((size_t)n, sizeof(int)), *pos = xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) pos[i] = i;
    token_layout tl = {.n = n, .slot = slot, .pos = pos};
    float *out = xmalloc(sizeof(float) * (size_t)n * (size_t)m->cfg.vocab_size);
    int rc = m->forward(m, tokens, &tl, pos, n, out); /* rows 0..n-1 are the positions */
    free(slot);
    free(pos);
    if (rc) {
        free(out);
        return rc;
    }
    *logits = out;
    return R1_OK;
}
