/* The trainer's data: examples from token shards or JSONL, laid into rows of at most seq_len
 * tokens, shuffled per epoch, and cut into micro-batches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/hash.h"
#include "datasets/sft.h"
#include "student/train.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* JSONL (by extension) and trace directories are read and tokenized in memory; anything else is
 * a shard path. */
static int load_shards(train_data *td, const char *path, const train_data_options *o) {
    if (ends_with(path, ".jsonl") || ends_with(path, ".json") || sft_is_trace_dir(path)) {
        sft_options so = {.tokenizer_dir = o->tokenizer_dir, .format = o->format};
        sft_stats st = {0};
        token_builder b;
        token_builder_init(&b, (uint32_t)o->vocab_size, o->tokenizer_id);
        int rc = sft_read_input(&b, path, &so, &st);
        if (rc) {
            token_builder_free(&b);
            return rc;
        }
        td->no_loss += st.no_loss;
        if (b.n_docs == 0) {
            token_builder_free(&b);
            err_fail(R1_EINPUT, path, "no examples to train on (%lld lines, %lld without a token "
                     "to learn)", (long long)st.lines, (long long)st.no_loss);
            return err_hint("each line needs an assistant turn or a loss_mask with a 1 past the "
                            "first token");
        }
        td->shards = xcalloc(1, sizeof(token_shard));
        td->n_shards = 1;
        token_shard_from_builder(&td->shards[0], &b, path);
        return R1_OK;
    }
    char **paths;
    int n;
    TRY(token_shard_list(path, &paths, &n));
    td->shards = xcalloc((size_t)n, sizeof(token_shard));
    int rc = R1_OK;
    for (int i = 0; i < n && !rc; i++) {
        rc = token_shard_open(&td->shards[i], paths[i]);
        if (!rc) td->n_shards++;
    }
    token_shard_list_free(paths, n);
    return rc;
}

/* Every id must fit the model, and shards made by another tokenizer are refused. */
static int check_shard(const token_shard *s, const train_data_options *o) {
    if (s->tokenizer_id && o->tokenizer_id && s->tokenizer_id != o->tokenizer_id) {
        err_fail(R1_EINPUT, s->path,
                 "the shard was made with a different tokenizer (id %016llx) than the model's "
                 "tokenizer.json (id %016llx)",
                 (unsigned long long)s->tokenizer_id, (unsigned long long)o->tokenizer_id);
        return err_hint("pack the data again with the student's tokenizer: "
                        "r1-distill pack --tokenizer STUDENT_DIR ...");
    }
    if ((int64_t)s->vocab_size <= o->vocab_size) return R1_OK;
    for (int64_t d = 0; d < s->n_docs; d++)
        for (int64_t i = s->doc_off[d]; i < s->doc_off[d + 1]; i++)
            if (s->tokens[i] >= o->vocab_size) {
                err_fail(R1_EINPUT, s->path,
                         "example %lld holds token id %d, outside the model's vocabulary [0, %lld)",
                         (long long)d, s->tokens[i], (long long)o->vocab_size);
                return err_hint("the data was tokenized for another model");
            }
    return R1_OK;
}

int train_data_open(train_data *td, const char *path, const train_data_options *o) {
    memset(td, 0, sizeof *td);
    int rc = load_shards(td, path, o);
    for (int s = 0; s < td->n_shards && !rc; s++) rc = check_shard(&td->shards[s], o);
    if (rc) {
        train_data_close(td);
        return rc;
    }
    int64_t total_docs = 0;
    for (int s = 0; s < td->n_shards; s++) total_docs += td->shards[s].n_docs;
    td->docs = xmalloc(sizeof(train_doc) * (size_t)total_docs);
    td->row_off = xmalloc(sizeof(int64_t) * (size_t)(total_docs + 1));
    td->row_len = xmalloc(sizeof(int64_t) * (size_t)total_docs);
    td->row_loss = xmalloc(sizeof(int64_t) * (size_t)total_docs);
    uint64_t h = FNV1A64_INIT;
    int64_t cur_len = 0;
    for (int s = 0; s < td->n_shards; s++) {
        const token_shard *sh = &td->shards[s];
        for (int64_t d = 0; d < sh->n_docs; d++) {
            int64_t len = sh->doc_off[d + 1] - sh->doc_off[d];
            const int32_t *tok = sh->tokens + sh->doc_off[d];
            const uint8_t *mask = sh->mask + sh->doc_off[d];
            if (len > o->seq_len) {
                if (!o->truncate) {
                    td->dropped_long++;
                    continue;
                }
                td->truncated++;
                len = o->seq_len;
            }
            int64_t loss = 0; /* position t learns token t + 1 when its mask is set */
            for (int64_t i = 1; i < len; i++) loss += mask[i];
            if (loss == 0) {
                td->no_loss++;
                continue;
            }
            if (!o->pack || td->n_rows == 0 || cur_len + len > o->seq_len) {
                td->row_off[td->n_rows] = td->n_docs;
                td->row_len[td->n_rows] = 0;
                td->row_loss[td->n_rows] = 0;
                td->n_rows++;
                cur_len = 0;
            }
            td->docs[td->n_docs++] = (train_doc){.shard = s, .len = (int32_t)len, .doc = d};
            cur_len += len;
            td->row_len[td->n_rows - 1] += len;
            td->row_loss[td->n_rows - 1] += loss;
            td->examples++;
            td->tokens += len;
            td->loss_tokens += loss;
            int64_t hdr[3] = {td->n_rows, len, loss};
            h = fnv1a64(h, hdr, sizeof hdr);
            h = fnv1a64(h, tok, sizeof(int32_t) * (size_t)len);
            h = fnv1a64(h, mask, (size_t)len);
        }
    }
    td->row_off[td->n_rows] = td->n_docs;
    td->fingerprint = h;
    for (int64_t r = 0; r < td->n_rows; r++)
        if (td->row_len[r] > td->max_row) td->max_row = (int)td->row_len[r];
    if (td->n_rows == 0) {
        int64_t n = td->dropped_long + td->no_loss;
        if (td->dropped_long > 0)
            err_fail(R1_EINPUT, path, "no examples to train on: %lld of %lld examples are longer "
                     "than --seq-len %d", (long long)td->dropped_long, (long long)n, o->seq_len);
        else
            err_fail(R1_EINPUT, path, "no examples to train on: none of the %lld examples has a "
                     "token to learn (loss mask all zero past the first token)", (long long)n);
        err_hint("raise --seq-len, or pass --truncate to cut long examples");
        train_data_close(td);
        return R1_EINPUT;
    }
    return R1_OK;
}

void train_data_close(train_data *td) {
    for (int s = 0; s < td->n_shards; s++) token_shard_close(&td->shards[s]);
    free(td->shards);
    free(td->docs);
    free(td->row_off);
    free(td->row_len);
    free(td->row_loss);
    memset(td, 0, sizeof *td);
}

void batch_buf_init(batch_buf *bb, int cap) {
    memset(bb, 0, sizeof *bb);
    bb->cap = cap;
    bb->tokens = xmalloc(sizeof(int) * (size_t)cap);
    bb->pos = xmalloc(sizeof(int) * (size_t)cap);
    bb->doc_start = xmalloc(sizeof(int) * (size_t)cap);
    bb->targets = xmalloc(sizeof(int) * (size_t)cap);
    bb->b.tokens = bb->tokens;
    bb->b.pos = bb->pos;
    bb->b.doc_start = bb->doc_start;
    bb->b.targets = bb->targets;
}

void batch_buf_free(batch_buf *bb) {
    free(bb->tokens);
    free(bb->pos);
    free(bb->doc_start);
    free(bb->targets);
    memset(bb, 0, sizeof *bb);
}

void train_data_fill(const train_data *td, const int64_t *rows, int n, batch_buf *bb) {
    int k = 0;
    for (int r = 0; r < n; r++) {
        CHECK(rows[r] >= 0 && rows[r] < td->n_rows);
        for (int64_t di = td->row_off[rows[r]]; di < td->row_off[rows[r] + 1]; di++) {
            const train_doc *doc = &td->docs[di];
            const token_shard *sh = &td->shards[doc->shard];
            const int32_t *tok = sh->tokens + sh->doc_off[doc->doc];
            const uint8_t *mask = sh->mask + sh->doc_off[doc->doc];
            CHECK(k + doc->len <= bb->cap);
            const int start = k;
            for (int i = 0; i < doc->len; i++, k++) {
                bb->tokens[k] = tok[i];
                bb->pos[k] = i;
                bb->doc_start[k] = start;
                /* the predicted token's mask decides; the document's last token predicts
                 * nothing (the next token belongs to another document) */
                bb->targets[k] = i + 1 < doc->len && mask[i + 1] ? tok[i + 1] : -1;
            }
        }
    }
    bb->b.n = k;
}

/* splitmix64 (core/hash.h), whose whole state is one number, so an epoch's order is a pure
 * function of (seed, epoch). */
void train_data_epoch_order(int64_t *order, int64_t n_rows, uint64_t seed, int64_t epoch) {
    uint64_t s = seed * 0x2545f4914f6cdd1dull + (uint64_t)epoch;
    for (int64_t i = 0; i < n_rows; i++) order[i] = i;
    for (int64_t i = n_rows - 1; i > 0; i--) {
        /* unbiased: reject the top sliver that would favour small values */
        uint64_t bound = (uint64_t)i + 1, limit = UINT64_MAX - UINT64_MAX % bound, x;
        do x = hash_splitmix64(&s);
        while (x >= limit);
        int64_t j = (int64_t)(x % bound);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}
