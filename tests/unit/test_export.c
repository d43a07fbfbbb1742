/* The export's decisions that llama.cpp cannot check by loading a file: the per-tensor type mix
 * (llama-quantize's llama_tensor_get_type, cases worked out by hand from its rules), the
 * pre-tokenizer detection, and the Modelfile. */
#include <unistd.h>

#include "convert/convert.h"
#include "convert/vocab.h"
#include "core/error.h"
#include "core/fileio.h"
#include "tests/unit/testing.h"

static quant_type ty(export_quant q, const char *name, int64_t ne0, int layer, int n, int tied,
                     int *fb) {
    export_tensor t = {name, ne0, layer, n, tied, n == 80};
    return export_tensor_type(q, &t, fb);
}

static void test_mix_q4_k_m(void) {
    int fb;
    /* 28 layers (Qwen2.5-1.5B): use_more_bits picks 0-2, 24-27 and 5, 8, ..., 23 */
    const int more[] = {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27};
    for (int i = 0; i < 28; i++) {
        int m = 0;
        for (size_t k = 0; k < sizeof more / sizeof *more; k++) m |= more[k] == i;
        char v[64], d[64], q[64];
        snprintf(v, sizeof v, "blk.%d.attn_v.weight", i);
        snprintf(d, sizeof d, "blk.%d.ffn_down.weight", i);
        snprintf(q, sizeof q, "blk.%d.attn_q.weight", i);
        EXPECT_MSG(ty(EXPORT_Q4_K_M, v, 1536, i, 28, 1, &fb) == (m ? QUANT_Q6_K : QUANT_Q4_K),
                   "layer %d", i);
        EXPECT_MSG(ty(EXPORT_Q4_K_M, d, 8960, i, 28, 1, &fb) == (m ? QUANT_Q6_K : QUANT_Q4_K),
                   "layer %d", i);
        EXPECT(ty(EXPORT_Q4_K_M, q, 1536, i, 28, 1, &fb) == QUANT_Q4_K && !fb);
        EXPECT(ty(EXPORT_Q5_K_M, v, 1536, i, 28, 1, &fb) == (m ? QUANT_Q6_K : QUANT_Q5_K));
    }
    /* tied: token_embd takes output's Q6_K; untied it stays Q4_K */
    EXPECT(ty(EXPORT_Q4_K_M, "token_embd.weight", 1536, -1, 28, 1, &fb) == QUANT_Q6_K);
    EXPECT(ty(EXPORT_Q4_K_M, "token_embd.weight", 3584, -1, 28, 0, &fb) == QUANT_Q4_K);
    EXPECT(ty(EXPORT_Q4_K_M, "output.weight", 3584, -1, 28, 0, &fb) == QUANT_Q6_K);
    EXPECT(ty(EXPORT_Q4_K_M, "blk.3.attn_output.weight", 3584, 3, 28, 0, &fb) == QUANT_Q4_K);
    EXPECT(ty(EXPORT_Q4_K_M, "blk.3.ffn_gate.weight", 3584, 3, 28, 0, &fb) == QUANT_Q4_K);
    /* 80 layers (Llama-70B class): attn_v outside use_more_bits is Q5_K, ffn_down unaffected */
    EXPECT(ty(EXPORT_Q4_K_M, "blk.11.attn_v.weight", 8192, 11, 80, 0, &fb) == QUANT_Q5_K);
    EXPECT(ty(EXPORT_Q4_K_M, "blk.12.attn_v.weight", 8192, 12, 80, 0, &fb) ==
           QUANT_Q6_K); /* (12-10)%3==2 */
    EXPECT(ty(EXPORT_Q4_K_M, "blk.11.ffn_down.weight", 28672, 11, 80, 0, &fb) == QUANT_Q4_K);
    EXPECT(ty(EXPORT_Q5_K_M, "blk.11.attn_v.weight", 8192, 11, 80, 0, &fb) == QUANT_Q5_K);
}

static void test_mix_plain_types(void) {
    int fb;
    EXPECT(ty(EXPORT_Q8_0, "output.weight", 4096, -1, 32, 0, &fb) == QUANT_Q8_0);
    EXPECT(ty(EXPORT_Q8_0, "blk.0.attn_v.weight", 4096, 0, 32, 0, &fb) == QUANT_Q8_0);
    EXPECT(ty(EXPORT_Q4_0, "output.weight", 4096, -1, 32, 0, &fb) == QUANT_Q6_K);
    EXPECT(ty(EXPORT_Q4_0, "token_embd.weight", 4096, -1, 32, 1, &fb) == QUANT_Q6_K);
    EXPECT(ty(EXPORT_Q4_0, "blk.0.attn_v.weight", 4096, 0, 32, 0, &fb) == QUANT_Q4_0);
    EXPECT(ty(EXPORT_Q4_0, "blk.0.ffn_down.weight", 14336, 0, 32, 0, &fb) == QUANT_Q4_0);
    EXPECT(ty(EXPORT_Q6_K, "blk.0.attn_v.weight", 4096, 0, 32, 0, &fb) == QUANT_Q6_K);
    EXPECT(ty(EXPORT_F16, "output.weight", 4096, -1, 32, 0, &fb) == QUANT_F16);
    EXPECT(ty(EXPORT_BF16, "blk.0.attn_q.weight", 100, 0, 32, 0, &fb) == QUANT_BF16);
    EXPECT(ty(EXPORT_F32, "token_embd.weight", 96, -1, 2, 1, &fb) == QUANT_F32 && !fb);
}

/* Rows that are not a multiple of the block: llama.cpp's fallbacks, then F16. */
static void test_mix_fallbacks(void) {
    int fb;
    EXPECT(ty(EXPORT_Q4_K_M, "blk.0.attn_q.weight", 160, 0, 2, 1, &fb) == QUANT_Q5_0 && fb);
    EXPECT(ty(EXPORT_Q5_K_M, "blk.0.attn_q.weight", 160, 0, 2, 1, &fb) == QUANT_Q5_1 && fb);
    EXPECT(ty(EXPORT_Q4_K_M, "blk.1.ffn_down.weight", 160, 1, 2, 1, &fb) == QUANT_Q8_0 && fb);
    EXPECT(ty(EXPORT_Q6_K, "blk.0.attn_q.weight", 96, 0, 2, 1, &fb) == QUANT_Q8_0 && fb);
    /* output: Q8_0 straight away when its rows do not fit the type (no fallback needed) */
    EXPECT(ty(EXPORT_Q4_K_M, "output.weight", 96, -1, 2, 0, &fb) == QUANT_Q8_0 && !fb);
    EXPECT(ty(EXPORT_Q4_K_M, "token_embd.weight", 96, -1, 2, 1, &fb) == QUANT_Q8_0 && !fb);
    EXPECT(ty(EXPORT_Q4_K_M, "token_embd.weight", 96, -1, 2, 0, &fb) == QUANT_Q5_0 && fb);
    /* not even a multiple of 32 */
    EXPECT(ty(EXPORT_Q8_0, "blk.0.attn_q.weight", 80, 0, 2, 0, &fb) == QUANT_F16 && fb);
    EXPECT(ty(EXPORT_Q4_0, "blk.0.attn_q.weight", 80, 0, 2, 0, &fb) == QUANT_F16 && fb);
    EXPECT(ty(EXPORT_Q4_K_M, "blk.0.attn_q.weight", 80, 0, 2, 0, &fb) == QUANT_F16 && fb);
    EXPECT(ty(EXPORT_Q4_K_M, "output.weight", 80, -1, 2, 0, &fb) == QUANT_F16 && fb);
}

static void test_quant_names(void) {
    export_quant q;
    const char *names[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k"};
    const uint32_t ftype[] = {0, 1, 32, 7, 2, 15, 17, 18};
    for (int i = 0; i < 8; i++) {
        EXPECT(export_quant_parse(names[i], &q) == 0 && (int)q == i);
        EXPECT_STREQ(export_quant_name(q), names[i]);
        EXPECT_EQ_INT(export_file_type(q), ftype[i]);
    }
    EXPECT(export_quant_parse("q4_k", &q) == -1);
    EXPECT(export_quant_parse("Q4_K_M", &q) == -1);
}

static char tmpdir[] = "/tmp/r1-test-export-XXXXXX";

/* A tokenizer.json holding only the given pre_tokenizer (JSON text). */
static char *tok_file(const char *pre_json) {
    static int k;
    char name[32];
    snprintf(name, sizeof name, "tok%d.json", k++);
    char *path = path_join(tmpdir, name);
    char *text = xasprintf("{\"pre_tokenizer\": %s, \"model\": {\"type\": \"BPE\"}}", pre_json);
    CHECK(file_write_atomic(path, text, strlen(text)) == R1_OK);
    free(text);
    return path;
}

static const char *detect(const char *pre_json) {
    char *p = tok_file(pre_json);
    const char *name = NULL;
    int rc = vocab_detect_pre(p, &name);
    unlink(p);
    free(p);
    return rc ? NULL : name;
}

#define BL_FALSE "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}"
#define SPLIT(re)                                                                                  \
    "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"" re "\"}, \"behavior\": \"Isolated\"}"
/* the published patterns, JSON-escaped */
#define QWEN2                                                                                      \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define LLAMA3                                                                                     \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"

static void test_detect_pre(void) {
    const char *n;
    n = detect("{\"type\": \"Sequence\", \"pretokenizers\": [" SPLIT(QWEN2) ", " BL_FALSE "]}");
    EXPECT(n && strcmp(n, "qwen2") == 0);
    n = detect("{\"type\": \"Sequence\", \"pretokenizers\": [" SPLIT(LLAMA3) ", " BL_FALSE "]}");
    EXPECT(n && strcmp(n, "llama-bpe") == 0);
    n = detect("{\"type\": \"Sequence\", \"pretokenizers\": [" SPLIT("\\\\p{N}{1,3}") ", "
               SPLIT("[一-龥぀-ゟ゠-ヿ]+") ", " SPLIT("\\\\s+") ", " BL_FALSE "]}");
    EXPECT(n && strcmp(n, "deepseek-v3") == 0);
    n = detect("{\"type\": \"ByteLevel\", \"add_prefix_space\": false}");
    EXPECT(n && strcmp(n, "gpt-2") == 0);
    /* refusals, each with the --pre hint */
    EXPECT(detect("{\"type\": \"Sequence\", \"pretokenizers\": [" SPLIT("\\\\w+") ", " BL_FALSE
                                                                                  "]}") == NULL);
    EXPECT(strstr(err_why(), "unrecognised pre-tokenizer regex") &&
           strstr(err_hint_text(), "--pre"));
    EXPECT(detect("{\"type\": \"Metaspace\", \"replacement\": \"▁\"}") == NULL);
    EXPECT(strstr(err_why(), "Metaspace") != NULL);
    EXPECT(detect("{\"type\": \"Sequence\", \"pretokenizers\": [" SPLIT(QWEN2) "]}") == NULL);
    EXPECT(strstr(err_why(), "no ByteLevel") != NULL);
    EXPECT(detect("{\"type\": \"Sequence\", \"pretokenizers\": [" SPLIT(QWEN2)
                  ", {\"type\": \"ByteLevel\", \"use_regex\": true}]}") == NULL);
    EXPECT(strstr(err_why(), "splits twice") != NULL);
}

static void test_modelfile(void) {
    char *t = modelfile_text("./model.gguf");
    EXPECT(strncmp(t, "# Ollama Modelfile", 18) == 0);
    EXPECT(strstr(t, "\nFROM ./model.gguf\n") != NULL);
    EXPECT(strstr(t, "TEMPLATE \"\"\"") != NULL);
    /* the generation prompt opens the reasoning block */
    EXPECT(strstr(t, "<｜Assistant｜><think>\n{{ end }}") != NULL);
    EXPECT(strstr(t, "<｜User｜>{{ .Content }}") != NULL);
    EXPECT(strstr(t, "{{ if not $last }}<｜end▁of▁sentence｜>{{ end }}") != NULL);
    const char *stops[] = {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>",
                           "<｜Assistant｜>"};
    for (int i = 0; i < 4; i++) {
        char line[128];
        snprintf(line, sizeof line, "\nPARAMETER stop \"%s\"\n", stops[i]);
        EXPECT_MSG(strstr(t, line) != NULL, "missing %s", line);
    }
    EXPECT(strstr(t, "\nPARAMETER temperature 0.6\n") != NULL);
    EXPECT(strstr(t, "\nPARAMETER top_p 0.95\n") != NULL);
    /* balanced Go template actions */
    int open = 0;
    for (const char *p = t; (p = strstr(p, "{{")); p += 2) open++;
    int close = 0;
    for (const char *p = t; (p = strstr(p, "}}")); p += 2) close++;
    EXPECT_EQ_INT(open, close);
    free(t);

    /* FROM is relative when the GGUF sits beside the Modelfile */
    char *mf = path_join(tmpdir, "Modelfile"), *g = path_join(tmpdir, "x.gguf");
    EXPECT_EQ_INT(modelfile_write(mf, g), R1_OK);
    char *text;
    size_t len;
    EXPECT_EQ_INT(file_read_all(mf, 1 << 20, &text, &len), R1_OK);
    EXPECT(strstr(text, "\nFROM ./x.gguf\n") != NULL);
    free(text);
    EXPECT_EQ_INT(modelfile_write(mf, "/elsewhere/y.gguf"), R1_OK);
    EXPECT_EQ_INT(file_read_all(mf, 1 << 20, &text, &len), R1_OK);
    EXPECT(strstr(text, "\nFROM /elsewhere/y.gguf\n") != NULL);
    free(text);
    unlink(mf);
    free(mf);
    free(g);
}

int main(void) {
    CHECK(mkdtemp(tmpdir));
    RUN(test_mix_q4_k_m);
    RUN(test_mix_plain_types);
    RUN(test_mix_fallbacks);
    RUN(test_quant_names);
    RUN(test_detect_pre);
    RUN(test_modelfile);
    rmdir(tmpdir);
    TESTS_DONE();
}
