/* r1-distill: the command-line entry. Each command lives with the stage that owns it; this table
 * only names them. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "distill/commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"logits", cmd_logits, "run a model over token ids; write all logits, print the top ids"},
    {"inspect", cmd_inspect, "parameters, active parameters, bytes by dtype, KV cache per token"},
    {"tasks", cmd_tasks, "write built-in reasoning tasks (train/test splits) as JSONL"},
    {"plan", cmd_plan, "memory and FLOPs plan for a recipe's training on N GPUs"},
    {"generate", cmd_generate, "sample reasoning traces from a teacher into tar.zst shards"},
    {"traces", cmd_traces, "list, count, print and merge trace directories"},
    {"init", cmd_init, "write a randomly initialised Qwen2/Llama model from a config.json"},
    {"report", cmd_report, "summarise a run: accuracies, traces kept, loss curve (JSON, HTML, SVG)"},
    {"run", cmd_run, "run a recipe's pipeline, skipping completed stages"},
    {"verify", cmd_verify, "extract final answers from responses and judge them against gold"},
    {"curate", cmd_curate, "keep verified, readable traces; dedup, decontaminate; report counts"},
    {"eval", cmd_eval, "sample a model on a benchmark: pass@1 (K samples), cons@K, pass@k"},
    {"tokenize", cmd_tokenize, "text to token ids and back with a tokenizer.json; chat formats"},
    {"pack", cmd_pack, "tokenize SFT examples (JSONL) into token shards for train"},
    {"train", cmd_train, "fine-tune a Qwen2 / Llama student on SFT data (CPU, or GPUs)"},
    /* started by --tp for ranks 1..N-1 (teacher/tensor_parallel.h); not in the help */
    {"tp-rank", cmd_tp_rank, NULL},
    {"export", cmd_export, "export a model to GGUF (+ Ollama Modelfile) or a clean HF directory"},
};
enum { N_COMMANDS = sizeof commands / sizeof *commands };

static void print_help(FILE *f) {
    fprintf(f,
            "usage: r1-distill <command> [options]\n\n"
            "Distil a reasoning teacher into small dense students: generate traces, curate them,\n"
            "train students, export GGUF for Ollama, evaluate.\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        if (commands[i].summary) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`r1-distill <command> --help` lists a command's options and their defaults.\n"
               "Exit status: 0 success, 1 runtime failure, 2 bad usage or bad input.\n");
}

/* Two settings the OpenMP and OpenBLAS runtimes read only when they load, so they are fixed
 * here by running ourselves again, once, before any work:
 * - OMP_WAIT_POLICY=passive: idle OpenMP threads sleep instead of spinning. The models here run
 *   thousands of small parallel loops per second; with spinning threads a busy machine (CI, a
 *   shared 2-core box) slowed decoding 60x (2,805 tokens/s on one thread, 44 on two).
 * - OPENBLAS_CORETYPE=Haswell: OpenBLAS chooses kernels from the CPU's model name, and virtual
 *   machines that hide it ("Intel(R) Xeon(R) Processor") get the 2004 Prescott kernels, 3-4x
 *   slower training, though the CPU has AVX2 and FMA.
 * A user's own values are left alone. */
static void tune_runtimes(char **argv) {
    if (getenv("R1_RUNTIMES_TUNED")) return;
    int again = 0;
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        again = 1;
    }
    const char *core = openblas_get_corename();
    if (!getenv("OPENBLAS_CORETYPE") && core && strcasecmp(core, "prescott") == 0) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            setenv("OPENBLAS_CORETYPE", "Haswell", 1);
            again = 1;
        }
    }
    if (!again) return;
    setenv("R1_RUNTIMES_TUNED", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on as we are */
}

int main(int argc, char **argv) {
    tune_runtimes(argv);
    if (argc < 2) {
        print_help(stderr);
        return R1_EINPUT;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("r1-distill %s (%s)\n", R1_VERSION,
#ifdef R1_HAVE_CUDA
               "cpu+cuda"
#else
               "cpu"
#endif
        );
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) {
            err_set_command(name);
            return commands[i].run(argc - 1, argv + 1);
        }
    die(R1_EINPUT, name, "unknown command; run `r1-distill --help` for the list");
}
