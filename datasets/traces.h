/* Trace archives: what `generate` writes and `curate`, `pack`, `eval` and `traces` read.
 *
 * A trace directory holds
 *   shard-000000.tar.zst, ...            one rank (world size 1)
 *   shard-r00003-000000.tar.zst, ...     rank 3 of a multi-rank run (names per rank)
 *   manifest.json / manifest-r00003.json the shards each rank has completed (see below)
 *   generate.log.jsonl / generate-r00003.log.jsonl   progress log (not part of the format)
 *
 * A shard is a POSIX pax tar archive (libarchive), zstd-compressed, in WebDataset layout: the
 * members of one record share a key and sit next to each other, json first:
 *   <key>.json   the record, one JSON object (schema in README "Trace records")
 *   <key>.topk   optional: the teacher's top-K log-probabilities (layout below)
 * A key is [A-Za-z0-9_-]+ (no dot: WebDataset splits key and extension at the first dot):
 * "<line>_<sample>" with the prompt's 1-based line number zero-padded to 8 digits and the
 * sample index to 2, e.g. "00000012_03".
 *
 * A shard appears under its final name only when complete: it is written as
 * "<name>.tmp.<pid>", fsynced, renamed, and the directory fsynced. The manifest is replaced the
 * same way after each shard, so every shard a manifest lists exists and is whole.
 *
 * .topk layout (little-endian):
 *   offset 0   char[4]  magic "R1TK"
 *   offset 4   u32      version (1)
 *   offset 8   u32      k, ids per token
 *   offset 12  u32      n, generated tokens (= length of completion_token_ids)
 *   offset 16  i32      ids[n][k]        per token, the k most probable ids, most probable first
 *                                        (the lower id first among equal log-probabilities)
 *   then       f32      logprobs[n][k]   their log-probabilities
 *   then       f32      chosen[n]        the log-probability of the token actually generated
 *   total size 16 + 4 * n * (2k + 1) bytes.
 * Log-probabilities are of the teacher's untempered, untruncated distribution,
 * log_softmax(logits), at the position that produced each generated token.
 *
 * Manifest (manifest.json, or manifest-rNNNNN.json per rank):
 *   {"format": "r1-distill traces", "version": 1, "rank": R, "world_size": W,
 *    "settings": {...}, "settings_hash": "<16 hex>",   what the traces were made with
 *    "pairs_total": P,      (prompt, sample) pairs in the whole job, all ranks
 *    "pairs_skipped": S,    pairs of this rank's prompts skipped as bad (--skip-bad)
 *    "records": N, "complete": bool (this rank's slice is done), "updated": "<UTC time>",
 *    "shards": [{"name": "shard-000000.tar.zst", "records": n, "bytes": b,
 *                "pairs": [[a, b], ...]}, ...]}
 * "pairs" lists the records of the shard as half-open ranges of pair indices
 * (line - 1) * samples + sample, sorted and disjoint. */
#ifndef R1_DATASETS_TRACES_H
#define R1_DATASETS_TRACES_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_FORMAT "r1-distill traces"
enum { TRACE_VERSION = 1, TRACE_TOPK_VERSION = 1 };
/* Largest member a reader accepts. */
#define TRACE_MAX_MEMBER (1ull << 30)

/* ---- keys ------------------------------------------------------------------------------- */

/* "<line>_<sample>" into out (at least 32 bytes). */
void trace_key(char *out, size_t cap, int64_t line, int sample);
/* True if key is a non-empty [A-Za-z0-9_-]+ of at most 200 bytes. */
int trace_key_valid(const char *key, size_t len);

/* ---- record text ---------------------------------------------------------------------------- */

/* Splits a completion's text at its first "</think>": reasoning is what lies before it (after
 * an optional leading "<think>"), answer what follows it, both trimmed of spaces, tabs, CR and
 * LF. Without "</think>" the whole text (after an optional leading "<think>") is reasoning,
 * the answer is empty and *closed is 0. Fresh strings. */
void trace_split_think(const char *text, char **reasoning, char **answer, int *closed);

/* ---- the .topk member -------------------------------------------------------------------- */

typedef struct {
    uint32_t k, n;
    const int32_t *ids;     /* [n, k] */
    const float *logprobs;  /* [n, k] */
    const float *chosen;    /* [n] */
} trace_topk;

/* Serialises n tokens of k entries; returns a fresh buffer of *size bytes. */
uint8_t *trace_topk_encode(const int *ids, const float *logprobs, const float *chosen, int n, int k,
                           size_t *size);
/* Validates the header and size against the layout; t points into data (which must stay
 * alive and be 4-byte aligned). */
int trace_topk_parse(trace_topk *t, const uint8_t *data, size_t size, const char *where);

/* ---- writing one shard ------------------------------------------------------------------- */

typedef struct trace_shard_writer trace_shard_writer;

/* Starts "<path>.tmp.<pid>". R1_EINPUT if the directory is not writable. */
int trace_shard_create(trace_shard_writer **w, const char *path);
/* Appends one record: <key>.json and, if topk is not NULL, <key>.topk. A write error (disk
 * full, file size limit) is R1_ERUNTIME; the shard must then be discarded. */
int trace_shard_add(trace_shard_writer *w, const char *key, const char *json, size_t json_len,
                    const void *topk, size_t topk_len);
int64_t trace_shard_records(const trace_shard_writer *w);
/* Finishes the archive, fsyncs, renames to its final name, fsyncs the directory and frees the
 * writer. On failure the temporary file is removed and nothing appears under the final name.
 * *bytes: the shard's size. */
int trace_shard_commit(trace_shard_writer *w, uint64_t *bytes);
/* Removes the temporary file and frees the writer. */
void trace_shard_discard(trace_shard_writer *w);

/* ---- reading -------------------------------------------------------------------------------- */

/* One record: the parsed <key>.json, and the .topk member when present. */
typedef struct {
    const char *shard;      /* the shard's file name (owned by the reader) */
    char *key;
    cJSON *rec;             /* the record object; "id" equals key */
    int64_t line;           /* rec.line */
    int sample;             /* rec.sample */
    uint8_t *topk_data;     /* NULL when the record has no .topk member */
    size_t topk_size;
    trace_topk topk;        /* valid when topk_data; n equals the completion length */
} trace_record;

void trace_record_clear(trace_record *r);

typedef struct trace_shard_reader trace_shard_reader;

int trace_shard_open(trace_shard_reader **r, const char *path);
/* The same over bytes in memory (kept alive until closed); `where` names them in messages. */
int trace_shard_open_memory(trace_shard_reader **r, const void *data, size_t size,
                            const char *where);
/* Reads the next record into *rec (cleared first). *have = 0 at the end of the archive. A
 * damaged archive, an unexpected member or an invalid record is R1_EINPUT naming the shard and
 * the member. */
int trace_shard_next(trace_shard_reader *r, trace_record *rec, int *have);
void trace_shard_close(trace_shard_reader *r);

/* ---- sets of pair indices ---------------------------------------------------------------- */

typedef struct {
    int64_t a, b; /* [a, b) */
} trace_range;

typedef struct {
    trace_range *r;
    int n, cap;
} trace_pairs;

/* Adds [a, b), merging with neighbours (any order of calls). */
void trace_pairs_add(trace_pairs *s, int64_t a, int64_t b);
void trace_pairs_add_set(trace_pairs *s, const trace_pairs *t);
int trace_pairs_contains(const trace_pairs *s, int64_t x);
int64_t trace_pairs_count(const trace_pairs *s);
/* True if the sets share an element; *x gets the first shared one. */
int trace_pairs_overlap(const trace_pairs *s, const trace_pairs *t, int64_t *x);
void trace_pairs_free(trace_pairs *s);

/* ---- manifests ------------------------------------------------------------------------------ */

typedef struct {
    char *name;         /* file name inside the directory */
    int64_t records;
    uint64_t bytes;
    trace_pairs pairs;
} trace_shard_info;

typedef struct {
    int rank, world_size;
    cJSON *settings;    /* owned */
    char settings_hash[17];
    int64_t pairs_total;
    int64_t pairs_skipped;
    int complete;
    trace_shard_info *shards;
    int n_shards;
} trace_manifest;

/* The manifest file name for a rank: "manifest.json" for world size 1, else
 * "manifest-rNNNNN.json". */
char *trace_manifest_name(int rank, int world_size);
/* The shard file name: "shard-NNNNNN.tar.zst" or "shard-rNNNNN-NNNNNN.tar.zst". */
char *trace_shard_name(int rank, int world_size, int index);

int trace_manifest_read(trace_manifest *m, const char *path);
/* The same from text; `where` names it in messages. */
int trace_manifest_parse(trace_manifest *m, const char *text, size_t len, const char *where);
/* Replaces the file atomically. */
int trace_manifest_write(const trace_manifest *m, const char *path);
int64_t trace_manifest_records(const trace_manifest *m);
void trace_manifest_add_shard(trace_manifest *m, const char *name, int64_t records, uint64_t bytes,
                              const trace_pairs *pairs);
void trace_manifest_free(trace_manifest *m);

/* The hash of a settings object (FNV-1a-64 of its compact JSON). */
void trace_settings_hash(const cJSON *settings, char out[17]);
/* Compares two settings objects key by key. Returns 0 if equal; otherwise 1 and *diff, a
 * fresh string such as "sampling.temperature: 0.7 here, 0.6 there; samples: 4 here, 2 there". */
int trace_settings_diff(const cJSON *here, const cJSON *there, char **diff);

/* Every manifest of a directory (manifest.json and manifest-r*.json), sorted by file name.
 * Refuses manifests whose settings differ from each other, a listed shard that is missing, and
 * pairs listed by two shards. */
typedef struct {
    char *dir;
    trace_manifest *m;
    char **names;       /* manifest file names */
    int n;
} trace_dir;

int trace_dir_open(trace_dir *d, const char *dir);
void trace_dir_close(trace_dir *d);
/* The union of every shard's pairs. */
void trace_dir_pairs(const trace_dir *d, trace_pairs *out);

/* Reads every record of every shard the directory's manifests list. */
typedef struct trace_reader trace_reader;

int trace_reader_open(trace_reader **r, const char *dir);
int trace_reader_next(trace_reader *r, trace_record *rec, int *have);
/* The manifests the reader follows. */
const trace_dir *trace_reader_dir(const trace_reader *r);
void trace_reader_close(trace_reader *r);

/* ---- the command ---------------------------------------------------------------------------- */

/* r1-distill traces ls|stats|cat|merge */
int cmd_traces(int argc, char **argv);

#endif
