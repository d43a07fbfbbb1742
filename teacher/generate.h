/* r1-distill generate: sample reasoning traces from a teacher into a trace directory
 * (datasets/traces.h). The command and the record builder it shares with tests. */
#ifndef R1_TEACHER_GENERATE_H
#define R1_TEACHER_GENERATE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "core/tokenizer.h"
#include "datasets/prompts.h"
#include "teacher/engine.h"

/* What every record of a run shares. */
typedef struct {
    const char *teacher_name;
    const char *config_hash;
    const sampler_params *sp;
    int max_new_tokens;
    uint64_t seed;
    const tokenizer *tok;        /* NULL: records carry token ids only, no text */
    const char *const *stop;     /* stop strings (for "stop_string") */
} gen_record_context;

/* Builds the JSON record of one finished sample (schema in README "Trace records"). */
cJSON *gen_record_build(const gen_record_context *c, const prompt_item *p, const int *prompt_ids,
                        int n_prompt, const engine_result *res, const char *key);

int cmd_generate(int argc, char **argv);

#endif
