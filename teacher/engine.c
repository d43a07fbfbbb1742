/* Continuous batching: admit requests into free cache slots, prefill them in chunks beside the
 * decoding sequences, sample one token per sequence per forward call, retire finished ones.
 * On a device backend (CUDA) the logits stay in device memory and the tokens are chosen there
 * (teacher/sampler_device.h), unless top-K log-probabilities are asked for: those are computed
 * on the host from downloaded logits, and so is the token then. */
#include "teacher/engine.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "teacher/sampler_device.h"

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    int active;
    engine_request req;
    int n_fed;          /* prompt tokens already in the cache */
    int *gen;           /* generated ids */
    int n_gen, cap;
    char *text;         /* bytes of the generated tokens, for stop strings */
    size_t text_len, text_cap;
    int *topk_ids;      /* [cap, k] */
    float *topk_lp;     /* [cap, k] */
    float *chosen_lp;   /* [cap] */
} sequence;

const char *engine_finish_name(engine_finish f) {
    switch (f) {
    case ENGINE_EOS: return "eos";
    case ENGINE_STOP_STRING: return "stop_string";
    case ENGINE_MAX_TOKENS: return "max_new_tokens";
    case ENGINE_CACHE_FULL: return "cache_full";
    }
    return "?";
}

int engine_config_check(const engine_config *c, const teacher_model *m) {
    TRY(sampler_params_check(&c->sp));
    if (c->max_batch < 1) return err_fail(R1_EINPUT, "--batch", "must be at least 1");
    if (c->max_new_tokens < 1) return err_fail(R1_EINPUT, "--max-new-tokens", "must be at least 1");
    if (c->max_len < 1) return err_fail(R1_EINPUT, "--max-len", "must be at least 1");
    if (c->prefill_chunk < 1) return err_fail(R1_EINPUT, "--prefill-chunk", "must be at least 1");
    if (c->logprobs < 0 || c->logprobs > m->cfg.vocab_size)
        return err_fail(R1_EINPUT, "--logprobs", "must be between 0 and the vocabulary size %lld",
                        (long long)m->cfg.vocab_size);
    if (c->n_stop > 0 && !c->token_bytes)
        return err_fail(R1_EINPUT, "--stop", "stop strings need the teacher's tokenizer");
    for (int i = 0; i < c->n_stop; i++)
        if (!c->stop[i][0]) return err_fail(R1_EINPUT, "--stop", "a stop string is empty");
    return R1_OK;
}

static void seq_reserve(sequence *s, int k) {
    if (s->n_gen < s->cap) return;
    s->cap = s->cap ? 2 * s->cap : 64;
    s->gen = xrealloc(s->gen, sizeof(int) * (size_t)s->cap);
    if (k) {
        s->topk_ids = xrealloc(s->topk_ids, sizeof(int) * (size_t)s->cap * (size_t)k);
        s->topk_lp = xrealloc(s->topk_lp, sizeof(float) * (size_t)s->cap * (size_t)k);
        s->chosen_lp = xrealloc(s->chosen_lp, sizeof(float) * (size_t)s->cap);
    }
}

/* Appends the token's bytes and reports which stop string (if any) the text now contains in a
 * match that ends inside the new bytes. */
static int append_and_match(sequence *s, const engine_config *c, int token) {
    size_t n = 0;
    const char *b = c->token_bytes(c->token_ctx, token, &n);
    if (!b || n == 0) return -1;
    if (s->text_len + n > s->text_cap) {
        s->text_cap = (s->text_len + n) * 2;
        s->text = xrealloc(s->text, s->text_cap);
    }
    size_t old = s->text_len;
    memcpy(s->text + old, b, n);
    s->text_len += n;
    for (int i = 0; i < c->n_stop; i++) {
        size_t L = strlen(c->stop[i]);
        if (L > s->text_len) continue;
        size_t from = old + 1 > L ? old + 1 - L : 0;
        for (size_t p = from; p + L <= s->text_len; p++)
            if (memcmp(s->text + p, c->stop[i], L) == 0) return i;
    }
    return -1;
}

static int is_eos(const engine_config *c, int token) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos[i] == token) return 1;
    return 0;
}

/* After a token was appended: has the sequence finished? */
static int check_finish(const sequence *s, const engine_config *c, int stop_hit,
                        engine_finish *why) {
    int last = s->gen[s->n_gen - 1];
    if (is_eos(c, last)) *why = ENGINE_EOS;
    else if (stop_hit >= 0) *why = ENGINE_STOP_STRING;
    else if (s->n_gen >= c->max_new_tokens) *why = ENGINE_MAX_TOKENS;
    else if (s->req.n_prompt + s->n_gen > c->max_len) *why = ENGINE_CACHE_FULL; /* can't feed it */
    else return 0;
    return 1;
}

typedef struct {
    int seq;      /* slot */
    int row;      /* batch row whose logits it samples from */
    int token;    /* sampled */
} out_row;

int engine_run(teacher_model *m, const engine_config *c, const engine_io *io,
               engine_stats *stats_out) {
    TRY(engine_config_check(c, m));
    const int B = c->max_batch, V = (int)m->cfg.vocab_size, K = c->logprobs;
    if (m->cache_slots != B || m->cache_len != c->max_len) TRY(m->cache_init(m, B, c->max_len));
    sampler_device *sd = NULL;
    if (K == 0 && m->be && sampler_device_supported(m->be))
        TRY(sampler_device_open(&sd, m->be, B, V));
    sequence *seqs = xcalloc((size_t)B, sizeof *seqs);
    const int cap_tokens = B + c->prefill_chunk;
    int *tokens = xmalloc(sizeof(int) * (size_t)cap_tokens);
    int *slot = xmalloc(sizeof(int) * (size_t)cap_tokens), *pos = xmalloc(sizeof(int) * (size_t)cap_tokens);
    int *rows = xmalloc(sizeof(int) * (size_t)B);
    out_row *outs = xmalloc(sizeof(out_row) * (size_t)B);
    float *logits = sd ? NULL : xmalloc(sizeof(float) * (size_t)B * (size_t)V);
    double *u_rows = xmalloc(sizeof(double) * (size_t)B);
    int *tok_rows = xmalloc(sizeof(int) * (size_t)B);
    int n_work = 1;
#ifdef _OPENMP
    n_work = omp_get_max_threads();
#endif
    sampler_work *work = xmalloc(sizeof *work * (size_t)n_work);
    for (int i = 0; i < n_work; i++) sampler_work_init(&work[i], V);
    int *stop_hit = xmalloc(sizeof(int) * (size_t)B);

    engine_stats st = {0};
    int rc = R1_OK, exhausted = 0;
    for (;;) {
        /* Admit requests into free slots. */
        for (int i = 0; i < B && !exhausted; i++) {
            if (seqs[i].active) continue;
            engine_request req;
            if (!io->next(io->ctx, &req)) {
                exhausted = 1;
                break;
            }
            if (req.n_prompt < 1 || req.n_prompt > c->max_len) {
                rc = err_fail(R1_EINPUT, "prompt",
                              "%d tokens; a prompt needs 1 to %d (the cache length)", req.n_prompt,
                              c->max_len);
                goto out;
            }
            sequence *s = &seqs[i];
            s->active = 1;
            s->req = req;
            s->n_fed = 0;
            s->n_gen = 0;
            s->text_len = 0;
            st.in_flight++;
        }
        if (st.in_flight == 0) break;

        /* One forward call: a token for every decoding sequence, then prompt chunks. */
        int n = 0, n_out = 0, budget = c->prefill_chunk;
        for (int i = 0; i < B; i++) {
            sequence *s = &seqs[i];
            if (!s->active || s->n_fed < s->req.n_prompt) continue;
            tokens[n] = s->gen[s->n_gen - 1];
            slot[n] = i;
            pos[n] = s->req.n_prompt + s->n_gen - 1;
            outs[n_out] = (out_row){.seq = i, .row = n};
            rows[n_out++] = n++;
        }
        for (int i = 0; i < B && budget > 0; i++) {
            sequence *s = &seqs[i];
            if (!s->active || s->n_fed >= s->req.n_prompt) continue;
            int take = s->req.n_prompt - s->n_fed;
            if (take > budget) take = budget;
            for (int j = 0; j < take; j++) {
                tokens[n] = s->req.prompt[s->n_fed + j];
                slot[n] = i;
                pos[n] = s->n_fed + j;
                n++;
            }
            s->n_fed += take;
            budget -= take;
            st.prompt_tokens += take;
            if (s->n_fed == s->req.n_prompt) {
                outs[n_out] = (out_row){.seq = i, .row = n - 1};
                rows[n_out++] = n - 1;
            }
        }
        token_layout tl = {.n = n, .slot = slot, .pos = pos};
        rc = m->forward(m, tokens, &tl, rows, n_out, logits);
        if (rc) goto out;
        st.forward_calls++;

        if (sd) { /* on the device: the same algorithm and counters, n_out ids back */
            for (int r = 0; r < n_out; r++) {
                const sequence *s = &seqs[outs[r].seq];
                u_rows[r] = sampler_uniform(c->seed, s->req.stream, (uint64_t)s->req.sample,
                                            (uint64_t)s->n_gen);
            }
            sampler_device_pick(sd, tok_rows, m->logits, n_out, &c->sp, u_rows);
            for (int r = 0; r < n_out; r++) {
                sequence *s = &seqs[outs[r].seq];
                outs[r].token = tok_rows[r];
                seq_reserve(s, 0);
                s->gen[s->n_gen] = tok_rows[r];
                stop_hit[r] = c->n_stop ? append_and_match(s, c, tok_rows[r]) : -1;
            }
        }
        /* Sample every output row; each depends only on its own logits and counters. */
#pragma omp parallel for schedule(dynamic, 1)
        for (int r = 0; r < (sd ? 0 : n_out); r++) {
            int t = 0;
#ifdef _OPENMP
            t = omp_get_thread_num();
#endif
            sequence *s = &seqs[outs[r].seq];
            const float *row = logits + (size_t)r * V;
            double u = sampler_uniform(c->seed, s->req.stream, (uint64_t)s->req.sample,
                                       (uint64_t)s->n_gen);
            int tok = sampler_pick(&c->sp, row, V, u, &work[t]);
            outs[r].token = tok;
            seq_reserve(s, K);
            if (K)
                sampler_logprobs(row, V, K, tok, s->topk_ids + (size_t)s->n_gen * K,
                                 s->topk_lp + (size_t)s->n_gen * K, s->chosen_lp + s->n_gen,
                                 &work[t]);
            s->gen[s->n_gen] = tok;
            stop_hit[r] = c->n_stop ? append_and_match(s, c, tok) : -1;
        }

        /* Retire finished sequences (in row order; delivery order never changes a sample). */
        for (int r = 0; r < n_out; r++) {
            sequence *s = &seqs[outs[r].seq];
            s->n_gen++;
            st.generated++;
            engine_finish why;
            if (!check_finish(s, c, stop_hit[r], &why)) continue;
            engine_result res = {.req = &s->req,
                                 .tokens = s->gen,
                                 .n_tokens = s->n_gen,
                                 .finish = why,
                                 .stop_index = why == ENGINE_STOP_STRING ? stop_hit[r] : -1,
                                 .k = K,
                                 .topk_ids = s->topk_ids,
                                 .topk_lp = s->topk_lp,
                                 .chosen_lp = s->chosen_lp};
            s->active = 0;
            st.in_flight--;
            st.finished++;
            rc = io->done(io->ctx, &res);
            if (rc) goto out;
        }
        if (io->tick && (rc = io->tick(io->ctx, &st)) != R1_OK) goto out;
    }
out:
    if (stats_out) *stats_out = st;
    for (int i = 0; i < B; i++) {
        free(seqs[i].gen);
        free(seqs[i].text);
        free(seqs[i].topk_ids);
        free(seqs[i].topk_lp);
        free(seqs[i].chosen_lp);
    }
    for (int i = 0; i < n_work; i++) sampler_work_free(&work[i]);
    free(work);
    free(seqs);
    free(tokens);
    free(slot);
    free(pos);
    free(rows);
    free(outs);
    free(logits);
    free(u_rows);
    free(tok_rows);
    sampler_device_close(sd);
    free(stop_hit);
    return rc;
}
