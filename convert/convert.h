/* convert/: a trained model out of the toolkit — GGUF for llama.cpp and Ollama (with the
 * quantizers of core/quants.h), the Ollama Modelfile, and a clean Hugging Face directory for
 * transformers and vLLM. The GGUF file format itself is convert/gguf.h. */
#ifndef R1_CONVERT_CONVERT_H
#define R1_CONVERT_CONVERT_H

#include <stdint.h>

#include "core/quants.h"

/* What `export --quant` asks for: a whole-file type, as llama.cpp's llama-quantize names them. */
typedef enum {
    EXPORT_F32,
    EXPORT_F16,
    EXPORT_BF16,
    EXPORT_Q8_0,
    EXPORT_Q4_0,
    EXPORT_Q4_K_M,
    EXPORT_Q5_K_M,
    EXPORT_Q6_K,
    EXPORT_QUANT_COUNT
} export_quant;

/* Parses "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k"; -1 if unknown. */
int export_quant_parse(const char *name, export_quant *out);
const char *export_quant_name(export_quant q);
/* general.file_type: llama.cpp's llama_ftype value (ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2,
 * MOSTLY_Q8_0 7, MOSTLY_Q4_K_M 15, MOSTLY_Q5_K_M 17, MOSTLY_Q6_K 18, MOSTLY_BF16 32). */
uint32_t export_file_type(export_quant q);

/* Where a 2-D weight sits, for the type mix. */
typedef struct {
    const char *name;   /* GGUF name: "blk.3.attn_v.weight", "output.weight", ... */
    int64_t ne0;        /* row length */
    int layer;          /* block index, -1 outside blocks */
    int n_layers;
    int tied;           /* token_embd doubles as output */
    int big_model;      /* llama.cpp's 70B class (80 blocks): Q4_K attn_v becomes Q5_K */
} export_tensor;

/* The type llama.cpp's llama-quantize chooses for a 2-D weight (llama_tensor_get_type for dense
 * qwen2/llama; models-and-formats.md §3.5):
 *   f32/f16/bf16: that type.  q8_0, q4_0, q6_k: that type for every weight.
 *   q4_k_m: Q4_K; attn_v and ffn_down Q6_K in the layers use_more_bits picks
 *           (i < n/8, i >= 7n/8, (i - n/8) % 3 == 2); attn_v Q5_K otherwise on 80-block models.
 *   q5_k_m: Q5_K; attn_v and ffn_down Q6_K in the use_more_bits layers.
 *   output.weight (and token_embd.weight when tied): Q6_K for every quantized type but q8_0
 *           (Q8_0), and Q8_0 when its rows are not a multiple of the type's block.
 * Then the shape fallbacks when the row length is not a multiple of the block: Q4_K -> Q5_0,
 * Q5_K -> Q5_1, Q6_K -> Q8_0 (llama.cpp's), and F16 when even 32 does not divide it (llama.cpp
 * does this after a fallback; for a plain q8_0/q4_0 target it refuses the file, we keep F16).
 * *fallback (may be NULL) is set when a fallback was taken. */
quant_type export_tensor_type(export_quant q, const export_tensor *t, int *fallback);

typedef struct {
    const char *model;      /* Hugging Face model directory */
    const char *out;        /* .gguf file */
    export_quant quant;
    const char *pre;        /* tokenizer.ggml.pre override, NULL to detect */
    const char *name;       /* general.name, NULL: the model directory's name */
    int verbose;            /* one line per tensor on stderr */
} export_options;

/* Writes a GGUF file llama.cpp loads (qwen2 or llama). Errors name the file and field. */
int export_gguf(const export_options *o);
/* Writes a clean Hugging Face directory: bf16 safetensors, config.json, generation_config.json
 * and the tokenizer files, nothing of a trainer's state. */
int export_hf(const char *model_dir, const char *out_dir);
/* Writes an Ollama Modelfile for gguf_path (FROM, the R1 TEMPLATE, stops, sampling). */
int modelfile_write(const char *path, const char *gguf_path);
/* The Modelfile text (caller frees); `from` is written as given. */
char *modelfile_text(const char *from);

/* The command. */
int cmd_export(int argc, char **argv);

#endif
