/* The generation engine: continuous batching over a teacher_model's ragged-batch forward.
 *
 * The cache holds `max_batch` sequences of `max_len` positions, one slot per sequence in
 * flight. Each forward call carries one token for every sequence that is decoding plus prompt
 * tokens of newly admitted sequences (at most `prefill_chunk` per call, so a long prompt is
 * prefilled over several calls beside the decoding ones). When a sequence finishes, its slot is
 * given to the next request at once.
 *
 * A sequence's tokens depend only on its prompt, (seed, stream, sample) and the settings: the
 * forward's logits for a token do not depend on the rest of the batch (teacher.h), and the
 * sampler's randomness is keyed by (seed, stream, sample, generated-token index)
 * (sampler.h). So --batch, thread count and rank splits never change a sample. */
#ifndef R1_TEACHER_ENGINE_H
#define R1_TEACHER_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "teacher/sampler.h"
#include "teacher/teacher.h"

typedef enum {
    ENGINE_EOS,         /* generated an end-of-sequence id (kept as the last token) */
    ENGINE_STOP_STRING, /* the generated text came to contain a stop string */
    ENGINE_MAX_TOKENS,  /* max_new_tokens generated */
    ENGINE_CACHE_FULL,  /* prompt + generated tokens reached max_len */
} engine_finish;

typedef struct {
    int max_batch;       /* sequences in flight (cache slots) */
    int max_len;         /* cache positions per sequence: prompt + generated tokens */
    int max_new_tokens;
    int prefill_chunk;   /* most prompt tokens in one forward call */
    sampler_params sp;
    uint64_t seed;
    const int *eos;      /* end-of-sequence ids */
    int n_eos;
    const char *const *stop; /* stop strings, matched on the bytes of the generated tokens */
    int n_stop;
    /* The bytes a token stands for (NULL for none); required when n_stop > 0. */
    const char *(*token_bytes)(void *ctx, int id, size_t *len);
    void *token_ctx;
    int logprobs;        /* top-K log-probabilities per generated token; 0 for none */
} engine_config;

typedef struct {
    const int *prompt;   /* must stay valid until the request's result is delivered */
    int n_prompt;        /* 1 .. max_len */
    uint64_t stream;     /* sampler_stream(prompt id) */
    int sample;
    void *user;
} engine_request;

typedef struct {
    const engine_request *req;
    const int *tokens;   /* generated ids */
    int n_tokens;
    engine_finish finish;
    int stop_index;      /* ENGINE_STOP_STRING: which stop string */
    int k;               /* logprobs: ids [n_tokens, k], logprobs [n_tokens, k], chosen [n_tokens] */
    const int *topk_ids;
    const float *topk_lp;
    const float *chosen_lp;
} engine_result;

typedef struct {
    int64_t forward_calls;
    int64_t prompt_tokens;    /* prefilled */
    int64_t generated;        /* sampled tokens */
    int64_t finished;         /* sequences delivered */
    int in_flight;
} engine_stats;

typedef struct {
    /* Fills *req with the next request; returns 1, or 0 when none are left. */
    int (*next)(void *ctx, engine_request *req);
    /* Receives a finished sequence (its buffers are valid during the call); a non-zero status
     * ends the run with that status. */
    int (*done)(void *ctx, const engine_result *res);
    /* Called after every forward call (may be NULL); non-zero ends the run with that status. */
    int (*tick)(void *ctx, const engine_stats *st);
    void *ctx;
} engine_io;

/* Checks the configuration against the model (R1_EINPUT naming the option). */
int engine_config_check(const engine_config *cfg, const teacher_model *m);
/* Runs until every request is done or a callback stops it. Sequences still in flight when a
 * callback stops the run are dropped. Sizes the model's cache. *stats may be NULL. */
int engine_run(teacher_model *m, const engine_config *cfg, const engine_io *io,
               engine_stats *stats);

const char *engine_finish_name(engine_finish f);

#endif
