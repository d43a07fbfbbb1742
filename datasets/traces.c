/* Trace shards: keys, the .topk member, and writing and reading one tar.zst shard with
 * libarchive. The layouts are in traces.h. */
#include "datasets/traces.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"

/* ---- keys ------------------------------------------------------------------------------- */

void trace_key(char *out, size_t cap, int64_t line, int sample) {
    snprintf(out, cap, "%08lld_%02d", (long long)line, sample);
}

int trace_key_valid(const char *key, size_t len) {
    if (len == 0 || len > 200) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* ---- record text ------------------------------------------------------------------------------ */

static char *trimmed(const char *s, size_t n) {
    while (n > 0 && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t')) n--;
    return xstrndup(s, n);
}

void trace_split_think(const char *text, char **reasoning, char **answer, int *closed) {
    const char *start = text;
    while (*start == ' ' || *start == '\n' || *start == '\r' || *start == '\t') start++;
    /* A leading "<think>" opens the reasoning (formats without R1's prefill emit it). */
    if (strncmp(start, "<think>", 7) == 0) start += 7;
    const char *end = strstr(start, "</think>");
    if (end) {
        *reasoning = trimmed(start, (size_t)(end - start));
        *answer = trimmed(end + 8, strlen(end + 8));
        *closed = 1;
    } else {
        *reasoning = trimmed(start, strlen(start));
        *answer = xstrdup("");
        *closed = 0;
    }
}

/* ---- .topk ---------------------------------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint8_t *trace_topk_encode(const int *ids, const float *logprobs, const float *chosen, int n, int k,
                           size_t *size) {
    const size_t nk = (size_t)n * (size_t)k;
    *size = 16 + 4 * (2 * nk + (size_t)n);
    uint8_t *buf = xmalloc(*size), *p = buf + 16;
    memcpy(buf, "R1TK", 4);
    put_u32(buf + 4, TRACE_TOPK_VERSION);
    put_u32(buf + 8, (uint32_t)k);
    put_u32(buf + 12, (uint32_t)n);
    /* Little-endian hosts only (x86-64, aarch64): the arrays are copied as they are in memory. */
    memcpy(p, ids, 4 * nk);
    memcpy(p + 4 * nk, logprobs, 4 * nk);
    memcpy(p + 8 * nk, chosen, 4 * (size_t)n);
    return buf;
}

int trace_topk_parse(trace_topk *t, const uint8_t *data, size_t size, const char *where) {
    memset(t, 0, sizeof *t);
    if (size < 16 || memcmp(data, "R1TK", 4) != 0)
        return err_fail(R1_EINPUT, where, "not a .topk member (no R1TK header)");
    uint32_t version = get_u32(data + 4), k = get_u32(data + 8), n = get_u32(data + 12);
    if (version != TRACE_TOPK_VERSION)
        return err_fail(R1_EINPUT, where, ".topk version %u; this build reads version %d", version,
                        TRACE_TOPK_VERSION);
    if (k == 0 || k > 1000000)
        return err_fail(R1_EINPUT, where, ".topk k = %u is out of range", k);
    uint64_t want = 16 + 4 * ((uint64_t)n * (2 * (uint64_t)k + 1));
    if (want != size)
        return err_fail(R1_EINPUT, where, ".topk is %zu bytes; k = %u, n = %u needs %llu", size, k,
                        n, (unsigned long long)want);
    if (((uintptr_t)data & 3) != 0)
        return err_fail(R1_ERUNTIME, where, ".topk buffer is not 4-byte aligned");
    const size_t nk = (size_t)n * k;
    t->k = k;
    t->n = n;
    t->ids = (const int32_t *)(const void *)(data + 16);
    t->logprobs = (const float *)(const void *)(data + 16 + 4 * nk);
    t->chosen = (const float *)(const void *)(data + 16 + 8 * nk);
    return R1_OK;
}

/* ---- writing -------------------------------------------------------------------------------- */

struct trace_shard_writer {
    struct archive *a;
    int fd;
    char *path, *tmp;
    int64_t records;
    uint64_t bytes;
    int write_errno; /* the first failed write(2) */
};

/* Writes compressed bytes to the file. A failure is remembered and reported by the next
 * trace_shard_add or trace_shard_commit; libarchive is told the bytes were taken, so it never
 * enters its fatal state (in which freeing a writer leaks) and the writer can always be
 * closed. Later bytes are dropped: the file is discarded anyway. */
static la_ssize_t shard_write_cb(struct archive *a, void *ctx, const void *buf, size_t n) {
    trace_shard_writer *w = ctx;
    const char *p = buf;
    size_t left = w->write_errno ? 0 : n;
    while (left > 0) {
        ssize_t k = write(w->fd, p, left);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            w->write_errno = k < 0 ? errno : EIO;
            break;
        }
        p += k;
        left -= (size_t)k;
        w->bytes += (uint64_t)k;
    }
    return (la_ssize_t)n;
}

int trace_shard_create(trace_shard_writer **out, const char *path) {
    *out = NULL;
    /* A file size limit (ulimit -f) must surface as a write error, not kill the process. */
    signal(SIGXFSZ, SIG_IGN);
    trace_shard_writer *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    w->tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int e = errno;
        err_fail(e == EACCES || e == EROFS || e == ENOENT || e == ENOTDIR ? R1_EINPUT : R1_ERUNTIME,
                 w->tmp, "cannot create: %s", strerror(e));
        free(w->path);
        free(w->tmp);
        free(w);
        return err_status();
    }
    w->a = archive_write_new();
    if (archive_write_add_filter_zstd(w->a) != ARCHIVE_OK ||
        archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK ||
        /* Unblocked output: no zero padding after the compressed stream (zstd readers reject
         * it; libarchive drops it itself only for files it opens), and no block buffer, which
         * libarchive would leak when a failed writer is freed. */
        archive_write_set_bytes_per_block(w->a, 0) != ARCHIVE_OK ||
        archive_write_open2(w->a, w, NULL, shard_write_cb, NULL, NULL) != ARCHIVE_OK) {
        err_fail(R1_ERUNTIME, path, "libarchive: %s", archive_error_string(w->a));
        trace_shard_discard(w);
        return R1_ERUNTIME;
    }
    *out = w;
    return R1_OK;
}

static int write_failed(trace_shard_writer *w) {
    if (w->write_errno) {
        err_fail(R1_ERUNTIME, w->path, "write failed: %s", strerror(w->write_errno));
        if (w->write_errno == ENOSPC)
            err_hint("the disk is full; free space and re-run the same command (completed shards "
                     "are kept)");
        else if (w->write_errno == EFBIG)
            err_hint("the file size limit (ulimit -f) was reached; raise it and re-run the same "
                     "command (completed shards are kept)");
        return R1_ERUNTIME;
    }
    return err_fail(R1_ERUNTIME, w->path, "libarchive: %s", archive_error_string(w->a));
}

static int add_member(trace_shard_writer *w, const char *name, const void *data, size_t n) {
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)n);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, time(NULL), 0);
    int rc = archive_write_header(w->a, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK || w->write_errno) return write_failed(w);
    const char *p = data;
    while (n > 0) {
        la_ssize_t k = archive_write_data(w->a, p, n);
        if (k <= 0 || w->write_errno) return write_failed(w);
        p += k;
        n -= (size_t)k;
    }
    return w->write_errno ? write_failed(w) : R1_OK;
}

int trace_shard_add(trace_shard_writer *w, const char *key, const char *json, size_t json_len,
                    const void *topk, size_t topk_len) {
    CHECK(trace_key_valid(key, strlen(key)));
    char name[256];
    snprintf(name, sizeof name, "%s.json", key);
    TRY(add_member(w, name, json, json_len));
    if (topk) {
        snprintf(name, sizeof name, "%s.topk", key);
        TRY(add_member(w, name, topk, topk_len));
    }
    w->records++;
    return R1_OK;
}

int64_t trace_shard_records(const trace_shard_writer *w) { return w->records; }

static void writer_free(trace_shard_writer *w) {
    if (w->a) archive_write_free(w->a);
    if (w->fd >= 0) close(w->fd);
    free(w->path);
    free(w->tmp);
    free(w);
}

void trace_shard_discard(trace_shard_writer *w) {
    if (!w) return;
    if (w->a) {
        archive_write_close(w->a); /* frees libarchive's buffers; the bytes go to a doomed file */
        archive_write_free(w->a);
        w->a = NULL;
    }
    unlink(w->tmp);
    writer_free(w);
}

int trace_shard_commit(trace_shard_writer *w, uint64_t *bytes) {
    int rc = R1_OK;
    if (archive_write_close(w->a) != ARCHIVE_OK || w->write_errno) rc = write_failed(w);
    archive_write_free(w->a);
    w->a = NULL;
    if (!rc && fsync(w->fd) != 0) {
        w->write_errno = errno;
        rc = write_failed(w);
    }
    if (close(w->fd) != 0 && !rc) {
        w->write_errno = errno;
        rc = write_failed(w);
    }
    w->fd = -1;
    if (!rc && rename(w->tmp, w->path) != 0) {
        w->write_errno = errno;
        rc = write_failed(w);
    }
    if (rc) {
        unlink(w->tmp);
        writer_free(w);
        return rc;
    }
    char *d = xstrdup(w->path);
    dir_sync(dirname(d));
    free(d);
    if (bytes) *bytes = w->bytes;
    writer_free(w);
    return R1_OK;
}

/* ---- reading -------------------------------------------------------------------------------- */

struct trace_shard_reader {
    struct archive *a;
    char *path;
    struct archive_entry *pending; /* a header read ahead whose data is still unread */
    int at_end;
};

void trace_record_clear(trace_record *r) {
    free(r->key);
    cJSON_Delete(r->rec);
    free(r->topk_data);
    memset(r, 0, sizeof *r);
}

static trace_shard_reader *reader_new(const char *where) {
    trace_shard_reader *r = xcalloc(1, sizeof *r);
    r->a = archive_read_new();
    archive_read_support_filter_zstd(r->a);
    archive_read_support_format_tar(r->a);
    r->path = xstrdup(where);
    return r;
}

int trace_shard_open(trace_shard_reader **out, const char *path) {
    *out = NULL;
    trace_shard_reader *r = reader_new(path);
    if (archive_read_open_filename(r->a, path, 1 << 16) != ARCHIVE_OK) {
        err_fail(R1_EINPUT, path, "%s: %s", path_exists(path) ? "damaged shard" : "cannot open shard",
                 archive_error_string(r->a));
        trace_shard_close(r);
        return R1_EINPUT;
    }
    *out = r;
    return R1_OK;
}

int trace_shard_open_memory(trace_shard_reader **out, const void *data, size_t size,
                            const char *where) {
    *out = NULL;
    trace_shard_reader *r = reader_new(where);
    if (archive_read_open_memory(r->a, data, size) != ARCHIVE_OK) {
        err_fail(R1_EINPUT, where, "damaged shard: %s", archive_error_string(r->a));
        trace_shard_close(r);
        return R1_EINPUT;
    }
    *out = r;
    return R1_OK;
}

void trace_shard_close(trace_shard_reader *r) {
    if (!r) return;
    archive_read_free(r->a);
    free(r->path);
    free(r);
}

/* Reads the next header; *e = NULL at the end of the archive. */
static int next_header(trace_shard_reader *r, struct archive_entry **e) {
    *e = NULL;
    if (r->at_end) return R1_OK;
    int rc = archive_read_next_header(r->a, e);
    if (rc == ARCHIVE_EOF) {
        r->at_end = 1;
        *e = NULL;
        return R1_OK;
    }
    if (rc != ARCHIVE_OK) {
        *e = NULL;
        return err_fail(R1_EINPUT, r->path, "damaged shard: %s", archive_error_string(r->a));
    }
    return R1_OK;
}

/* Splits a member name into key and extension; checks the type and size. */
static int member_info(trace_shard_reader *r, struct archive_entry *e, char *key, size_t cap,
                       const char **ext, size_t *size) {
    const char *name = archive_entry_pathname(e);
    if (!name) return err_fail(R1_EINPUT, r->path, "a member has no name");
    const char *dot = strchr(name, '.');
    size_t klen = dot ? (size_t)(dot - name) : strlen(name);
    if (!dot || !trace_key_valid(name, klen) || klen >= cap ||
        (strcmp(dot, ".json") != 0 && strcmp(dot, ".topk") != 0))
        return err_fail(R1_EINPUT, r->path,
                        "unexpected member \"%s\" (want <key>.json or <key>.topk)", name);
    if (archive_entry_filetype(e) != AE_IFREG || !archive_entry_size_is_set(e))
        return err_fail(R1_EINPUT, r->path, "member \"%s\" is not a regular file", name);
    la_int64_t sz = archive_entry_size(e);
    if (sz < 0 || (uint64_t)sz > TRACE_MAX_MEMBER)
        return err_fail(R1_EINPUT, r->path, "member \"%s\" is %lld bytes, over the %llu limit",
                        name, (long long)sz, (unsigned long long)TRACE_MAX_MEMBER);
    memcpy(key, name, klen);
    key[klen] = 0;
    *ext = dot;
    *size = (size_t)sz;
    return R1_OK;
}

static int read_data(trace_shard_reader *r, const char *key, const char *ext, size_t size,
                     uint8_t **out) {
    /* +1 for a NUL after JSON text; malloc's alignment suits the .topk arrays. */
    uint8_t *buf = xmalloc(size + 1);
    size_t got = 0;
    while (got < size) {
        la_ssize_t k = archive_read_data(r->a, buf + got, size - got);
        if (k <= 0) {
            free(buf);
            return err_fail(R1_EINPUT, r->path, "damaged shard: member %s%s: %s", key, ext,
                            k < 0 ? archive_error_string(r->a) : "truncated");
        }
        got += (size_t)k;
    }
    buf[size] = 0;
    *out = buf;
    return R1_OK;
}

static int check_record(trace_record *rec, const char *where) {
    const cJSON *o = rec->rec;
    if (!cJSON_IsObject(o)) return err_fail(R1_EINPUT, where, "the record is not a JSON object");
    const char *id;
    int64_t line, sample;
    if (json_get_str(o, "id", &id, where) != 1 || strcmp(id, rec->key) != 0)
        return err_fail(R1_EINPUT, where, "\"id\" must equal the member key \"%s\"", rec->key);
    if (json_get_int(o, "line", &line, where) != 1 || line < 1 ||
        json_get_int(o, "sample", &sample, where) != 1 || sample < 0 || sample > 1000000)
        return err_fail(R1_EINPUT, where, "\"line\" (>= 1) and \"sample\" (>= 0) are required");
    char want[64];
    trace_key(want, sizeof want, line, (int)sample);
    if (strcmp(want, rec->key) != 0)
        return err_fail(R1_EINPUT, where, "key \"%s\" does not match line %lld, sample %lld",
                        rec->key, (long long)line, (long long)sample);
    const cJSON *ids;
    if (json_get_arr(o, "completion_token_ids", &ids, where) != 1)
        return err_fail(R1_EINPUT, where, "\"completion_token_ids\" is required");
    const cJSON *it;
    cJSON_ArrayForEach(it, ids) {
        if (!json_is_int(it))
            return err_fail(R1_EINPUT, where, "\"completion_token_ids\" must hold integers");
    }
    if (rec->topk_data && (int)rec->topk.n != cJSON_GetArraySize(ids))
        return err_fail(R1_EINPUT, where, ".topk has %u tokens, the record %d", rec->topk.n,
                        cJSON_GetArraySize(ids));
    rec->line = line;
    rec->sample = (int)sample;
    return R1_OK;
}

static int shard_next(trace_shard_reader *r, trace_record *rec, int *have) {
    struct archive_entry *e = r->pending;
    r->pending = NULL;
    if (!e) TRY(next_header(r, &e));
    if (!e) return R1_OK;
    char key[256], where[512];
    const char *ext;
    size_t size;
    TRY(member_info(r, e, key, sizeof key, &ext, &size));
    snprintf(where, sizeof where, "%s: %s%s", r->path, key, ext);
    if (strcmp(ext, ".json") != 0)
        return err_fail(R1_EINPUT, where, "comes without %s.json before it", key);
    uint8_t *text;
    TRY(read_data(r, key, ext, size, &text));
    int rc = json_parse(&rec->rec, (const char *)text, size, where);
    free(text);
    if (rc) return rc;
    rec->key = xstrdup(key);
    /* Look ahead for this record's .topk member. */
    struct archive_entry *n;
    TRY(next_header(r, &n));
    if (n) {
        char key2[256];
        const char *ext2;
        size_t size2;
        TRY(member_info(r, n, key2, sizeof key2, &ext2, &size2));
        if (strcmp(key2, key) == 0 && strcmp(ext2, ".topk") == 0) {
            snprintf(where, sizeof where, "%s: %s.topk", r->path, key);
            TRY(read_data(r, key, ext2, size2, &rec->topk_data));
            rec->topk_size = size2;
            TRY(trace_topk_parse(&rec->topk, rec->topk_data, size2, where));
        } else if (strcmp(key2, key) == 0) {
            return err_fail(R1_EINPUT, r->path, "member %s.json appears twice", key);
        } else {
            r->pending = n;
        }
    }
    snprintf(where, sizeof where, "%s: %s.json", r->path, key);
    TRY(check_record(rec, where));
    *have = 1;
    return R1_OK;
}

int trace_shard_next(trace_shard_reader *r, trace_record *rec, int *have) {
    trace_record_clear(rec);
    *have = 0;
    int rc = shard_next(r, rec, have);
    if (rc) trace_record_clear(rec);
    return rc;
}
