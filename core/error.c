#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>

enum { ERR_TEXT = 1024 };

typedef struct {
    int status;
    char what[ERR_TEXT];
    char why[ERR_TEXT];
    char hint[ERR_TEXT];
} error_record;

static _Thread_local error_record err_rec;
static const char *err_cmd = NULL;

/* A new error record: the status, what failed, why; no hint yet. */
static void err_set(int status, const char *what, const char *fmt, va_list ap) {
    err_rec.status = status;
    snprintf(err_rec.what, sizeof err_rec.what, "%s", what ? what : "");
    vsnprintf(err_rec.why, sizeof err_rec.why, fmt, ap);
    err_rec.hint[0] = 0;
}

int err_fail(int status, const char *what, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    err_set(status, what, fmt, ap);
    va_end(ap);
    return status;
}

int err_hint(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_rec.hint, sizeof err_rec.hint, fmt, ap);
    va_end(ap);
    return err_rec.status;
}

int err_context(const char *outer) {
    char joined[2 * ERR_TEXT + 2];
    if (err_rec.what[0])
        snprintf(joined, sizeof joined, "%s: %s", outer, err_rec.what);
    else
        snprintf(joined, sizeof joined, "%s", outer);
    snprintf(err_rec.what, sizeof err_rec.what, "%.*s", ERR_TEXT - 1, joined);
    return err_rec.status;
}

int err_status(void) { return err_rec.status; }
const char *err_what(void) { return err_rec.what; }
const char *err_why(void) { return err_rec.why; }
const char *err_hint_text(void) { return err_rec.hint; }
void err_clear(void) { memset(&err_rec, 0, sizeof err_rec); }

void err_set_command(const char *command) { err_cmd = command; }
const char *err_command(void) { return err_cmd; }

void err_print(void) {
    fprintf(stderr, "r1-distill%s%s: ", err_cmd ? " " : "", err_cmd ? err_cmd : "");
    if (err_rec.what[0]) fprintf(stderr, "%s: ", err_rec.what);
    fprintf(stderr, "%s\n", err_rec.why[0] ? err_rec.why : "failed");
    if (err_rec.hint[0]) fprintf(stderr, "hint: %s\n", err_rec.hint);
}

_Noreturn void err_exit(void) {
    err_print();
    exit(err_rec.status ? err_rec.status : R1_ERUNTIME);
}

_Noreturn void die(int status, const char *what, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    err_set(status, what, fmt, ap);
    va_end(ap);
    err_exit();
}

static _Noreturn void out_of_memory(size_t n) {
    die(R1_ERUNTIME, "memory", "out of memory allocating %zu bytes", n);
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) out_of_memory(count * size);
    return p;
}

void *xcalloc_large(size_t count, size_t size) {
    void *p = xcalloc(count, size);
#ifdef MADV_HUGEPAGE
    /* glibc serves a block this large from its own mapping; the advice covers its whole 2 MiB
     * pages and is only advice (ignored where transparent huge pages are off) */
    const size_t huge = (size_t)2 << 20, bytes = count * size;
    if (bytes >= 16 * huge) {
        const uintptr_t a = ((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1);
        const uintptr_t b = ((uintptr_t)p + bytes) & ~(uintptr_t)(huge - 1);
        if (b > a) (void)madvise((void *)a, b - a, MADV_HUGEPAGE);
    }
#endif
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n);
    return q;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n) {
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    CHECK(n >= 0);
    char *p = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

_Noreturn void check_failed(const char *file, int line, const char *expr) {
    fprintf(stderr, "r1-distill: internal error at %s:%d: CHECK(%s) failed\n"
                    "hint: this is a bug in r1-distill; please report it with the command line\n",
            file, line, expr);
    abort();
}
