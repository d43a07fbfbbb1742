/* r1-distill: the command-line entry. Each command lives with the stage that owns it; this table
 * only names them. */
#include <stdio.h>
#include <string.h>

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
    {"run", cmd_run, "run a recipe's pipeline, skipping completed stages"},
    {"verify", cmd_verify, "extract final answers from responses and judge them against gold"},
    {"curate", cmd_curate, "keep verified, readable traces; dedup, decontaminate; report counts"},
    {"eval", cmd_eval, "sample a model on a benchmark: pass@1 (K samples), cons@K, pass@k"},
    {"tokenize", cmd_tokenize, "text to token ids and back with a tokenizer.json; chat formats"},
    {"pack", cmd_pack, "tokenize SFT examples (JSONL) into token shards for train"},
    {"train", cmd_train, "fine-tune a Qwen2 / Llama student on SFT data (fp32, CPU)"},
    {"export", cmd_export, "export a model to GGUF (+ Ollama Modelfile) or a clean HF directory"},
};
enum { N_COMMANDS = sizeof commands / sizeof *commands };

static void print_help(FILE *f) {
    fprintf(f,
            "usage: r1-distill <command> [options]\n\n"
            "Distil a reasoning teacher into small dense students: generate traces, curate them,\n"
            "train students, export GGUF for Ollama, evaluate.\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`r1-distill <command> --help` lists a command's options and their defaults.\n"
               "Exit status: 0 success, 1 runtime failure, 2 bad usage or bad input.\n");
}

int main(int argc, char **argv) {
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
