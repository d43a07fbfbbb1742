#include "datasets/jsonl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"

struct jsonl_reader {
    FILE *f;
    int owns_file;
    char *name;
    char *buf;      /* getline's buffer, grown as needed */
    size_t cap;
    int64_t line;   /* number of the line last read (blank ones included) */
    int64_t count;  /* non-blank lines returned */
    char where[512];
};

static jsonl_reader *reader_new(FILE *f, int owns, const char *name) {
    jsonl_reader *r = xcalloc(1, sizeof *r);
    r->f = f;
    r->owns_file = owns;
    r->name = xstrdup(name);
    return r;
}

int jsonl_open(jsonl_reader **out, const char *path) {
    *out = NULL;
    if (strcmp(path, "-") == 0) {
        *out = reader_new(stdin, 0, "<stdin>");
        return R1_OK;
    }
    FILE *f = fopen(path, "rb");
    if (!f) return err_fail(R1_EINPUT, path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return err_fail(R1_EINPUT, path, "is a directory, not a JSONL file");
    }
    *out = reader_new(f, 1, path);
    return R1_OK;
}

int jsonl_open_stream(jsonl_reader **out, FILE *f, const char *name) {
    *out = reader_new(f, 0, name);
    return R1_OK;
}

void jsonl_close(jsonl_reader *r) {
    if (!r) return;
    if (r->owns_file) fclose(r->f);
    free(r->buf);
    free(r->name);
    free(r);
}

int64_t jsonl_line(const jsonl_reader *r) { return r->line; }
int64_t jsonl_count(const jsonl_reader *r) { return r->count; }

const char *jsonl_where(const jsonl_reader *r) { return r->where; }

static void set_where(jsonl_reader *r) {
    snprintf(r->where, sizeof r->where, "%s:%lld", r->name, (long long)r->line);
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

int jsonl_next_line(jsonl_reader *r, const char **line, size_t *len) {
    *line = NULL;
    *len = 0;
    for (;;) {
        errno = 0;
        ssize_t n = getline(&r->buf, &r->cap, r->f);
        if (n < 0) {
            if (ferror(r->f)) {
                int e = errno;
                r->line++;
                set_where(r);
                /* Reading a directory through stdin, or a failing disk. */
                return err_fail(e == EISDIR ? R1_EINPUT : R1_ERUNTIME, r->where,
                                "read failed: %s", strerror(e ? e : EIO));
            }
            return R1_OK;  /* end of input */
        }
        r->line++;
        set_where(r);
        size_t m = (size_t)n;
        if (r->line == 1 && m >= 3 && memcmp(r->buf, "\xef\xbb\xbf", 3) == 0) {
            memmove(r->buf, r->buf + 3, m - 3); /* a UTF-8 byte-order mark, as Windows tools write */
            m -= 3;
        }
        if (m > 0 && r->buf[m - 1] == '\n') m--;
        if (m > 0 && r->buf[m - 1] == '\r') m--;
        r->buf[m] = 0;
        if (memchr(r->buf, 0, m))
            return err_fail(R1_EINPUT, r->where, "contains a NUL byte (is this a binary file?)");
        ptrdiff_t bad = utf8_invalid_at(r->buf, m);
        if (bad >= 0)
            return err_fail(R1_EINPUT, r->where, "invalid UTF-8 at byte %td of the line", bad + 1);
        if (is_blank(r->buf, m)) continue;
        r->count++;
        *line = r->buf;
        *len = m;
        return R1_OK;
    }
}

int jsonl_next(jsonl_reader *r, cJSON **out) {
    *out = NULL;
    const char *line;
    size_t len;
    TRY(jsonl_next_line(r, &line, &len));
    if (!line) return R1_OK;
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    size_t off = end && end >= line && end <= line + len ? (size_t)(end - line) : 0;
    if (!v)
        return err_fail(R1_EINPUT, r->where, "invalid JSON at column %zu", off + 1);
    while (off < len && (line[off] == ' ' || line[off] == '\t')) off++;
    if (off < len) {
        cJSON_Delete(v);
        return err_fail(R1_EINPUT, r->where,
                        "unexpected text after the JSON value at column %zu (one value per line)",
                        off + 1);
    }
    *out = v;
    return R1_OK;
}
