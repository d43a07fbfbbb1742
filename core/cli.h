/* Command-line options: one table per command gives each option's name, type, default and help,
 * so parsing, validation and `--help` come from the same place and can never disagree.
 *
 *   static int64_t steps; static const char *model;
 *   static const cli_opt opts[] = {
 *       {"model", OPT_STRING, &model, NULL, CLI_REQUIRED, "DIR", "model directory"},
 *       {"steps", OPT_INT, &steps, "100", 0, "N", "optimizer steps"},
 *   };
 *
 * Accepted forms: --name value, --name=value, --flag. Usage errors exit with status 2 and name
 * the option; --help prints every option with its default and exits 0. */
#ifndef R1_CORE_CLI_H
#define R1_CORE_CLI_H

#include <stdint.h>

typedef enum {
    OPT_STRING, /* const char ** */
    OPT_INT,    /* int64_t * */
    OPT_FLOAT,  /* double * */
    OPT_FLAG,   /* int *: 1 when given, 0 otherwise */
} opt_kind;

enum { CLI_REQUIRED = 1 };

typedef struct {
    const char *name;
    opt_kind kind;
    void *dst;
    const char *def;    /* default, as it would be typed; NULL for none */
    int flags;          /* CLI_REQUIRED */
    const char *metavar;
    const char *help;
} cli_opt;

typedef struct {
    const char *command;    /* "logits" */
    const char *summary;    /* one line */
    const char *positional; /* e.g. "RECIPE" or NULL when the command takes none */
    const cli_opt *opts;
    int n_opts;
    const char *details;    /* printed after the options, may be NULL */
} cli_spec;

/* Parses argv[1..] (argv[0] is the command name). Positional arguments are returned in *pos
 * (a pointer into argv) with their count; a command without `positional` refuses them. */
void cli_parse(const cli_spec *spec, int argc, char **argv, int *n_pos, char ***pos);
void cli_print_help(const cli_spec *spec);

/* Option-value helpers for commands: parse "1,2,3" into ints; exit 2 with the option named. */
int *cli_parse_int_list(const char *opt_name, const char *text, int *n);

/* True if the option was given on the command line (not defaulted). */
int cli_given(const cli_spec *spec, const char *name);

#endif
