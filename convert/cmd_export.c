/* r1-distill export: a trained model to GGUF (+ Ollama Modelfile), or to a clean HF directory. */
#include <stdio.h>
#include <string.h>

#include "convert/convert.h"
#include "core/cli.h"
#include "core/error.h"

static const char *opt_model, *opt_out, *opt_quant, *opt_modelfile, *opt_format, *opt_pre,
    *opt_name;
static int opt_verbose;

static const cli_opt export_opts[] = {
    {"model", OPT_STRING, &opt_model, NULL, CLI_REQUIRED, "DIR",
     "Hugging Face model directory (config.json, safetensors, tokenizer.json), qwen2 or llama"},
    {"out", OPT_STRING, &opt_out, NULL, CLI_REQUIRED, "PATH",
     "the .gguf file to write (--format gguf) or the directory (--format hf)"},
    {"format", OPT_STRING, &opt_format, "gguf", 0, "gguf|hf",
     "gguf: one file for llama.cpp / Ollama; hf: bf16 safetensors + config + tokenizer"},
    {"quant", OPT_STRING, &opt_quant, "q4_k_m", 0, "TYPE",
     "f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m or q6_k (llama-quantize's type mix)"},
    {"modelfile", OPT_STRING, &opt_modelfile, NULL, 0, "PATH",
     "also write an Ollama Modelfile for the GGUF file (R1 template, stops, temperature 0.6, "
     "top_p 0.95)"},
    {"pre", OPT_STRING, &opt_pre, NULL, 0, "NAME",
     "tokenizer.ggml.pre to write instead of the one detected from tokenizer.json"},
    {"name", OPT_STRING, &opt_name, NULL, 0, "NAME",
     "general.name to write instead of the model folder's name"},
    {"verbose", OPT_FLAG, &opt_verbose, NULL, 0, NULL, "print each tensor's GGUF type"},
};

static const cli_spec export_spec = {
    .command = "export",
    .summary = "Export a qwen2/llama model to GGUF for llama.cpp and Ollama, or to a clean HF "
               "directory.",
    .opts = export_opts,
    .n_opts = sizeof export_opts / sizeof *export_opts,
    .details =
        "GGUF: 2-D weights take the --quant type with llama.cpp's per-tensor mix (q4_k_m and\n"
        "q5_k_m give attn_v and ffn_down of some layers Q6_K; output.weight is Q6_K). Rows\n"
        "that are not a multiple of 256 (32) fall back as llama.cpp does: Q4_K->Q5_0,\n"
        "Q5_K->Q5_1, Q6_K->Q8_0, else F16. Then:  ollama create NAME -f Modelfile\n",
};

int cmd_export(int argc, char **argv) {
    cli_parse(&export_spec, argc, argv, NULL, NULL);
    if (strcmp(opt_format, "hf") == 0) {
        if (cli_given(&export_spec, "quant") || opt_modelfile || opt_pre)
            die(R1_EINPUT, "--format hf", "writes bf16 safetensors; --quant, --modelfile and "
                "--pre apply to --format gguf");
        if (export_hf(opt_model, opt_out)) err_exit();
        return 0;
    }
    if (strcmp(opt_format, "gguf") != 0)
        die(R1_EINPUT, "--format", "unknown format \"%s\" (gguf or hf)", opt_format);
    export_options o = {.model = opt_model, .out = opt_out, .pre = opt_pre, .name = opt_name,
                        .verbose = opt_verbose};
    if (export_quant_parse(opt_quant, &o.quant))
        die(R1_EINPUT, "--quant", "unknown type \"%s\" (f32, f16, bf16, q8_0, q4_0, q4_k_m, "
            "q5_k_m, q6_k)", opt_quant);
    if (export_gguf(&o)) err_exit();
    if (opt_modelfile) {
        if (modelfile_write(opt_modelfile, opt_out)) err_exit();
        fprintf(stderr, "export: wrote %s (then: ollama create NAME -f %s)\n", opt_modelfile,
                opt_modelfile);
    }
    return 0;
}
