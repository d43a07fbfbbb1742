/* Errors and exit statuses shared by every stage.
 *
 * Library code never exits on bad input: it records what failed and why with err_fail() and
 * returns the status, so parsers can run under a fuzzer and callers can clean up. Commands turn
 * a recorded error into the user-facing line
 *
 *     r1-distill <command>: <what>: <why>
 *     hint: <hint>
 *
 * and the exit status (0 success, 1 runtime failure, 2 bad usage or bad input).
 * The error record is per thread. */
#ifndef R1_CORE_ERROR_H
#define R1_CORE_ERROR_H

#include <stddef.h>

/* CUDA sources (C++) include this header too. */
#if defined(__cplusplus) && !defined(_Noreturn)
#define _Noreturn [[noreturn]]
#endif

enum {
    R1_OK = 0,
    R1_ERUNTIME = 1,  /* the machine failed us: I/O error, out of memory, a CUDA fault */
    R1_EINPUT = 2,    /* the user's input or usage is wrong */
};

/* Records "what: why" (printf-style why) and returns status. A later call replaces it. */
int err_fail(int status, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds a hint line to the recorded error; returns the recorded status. */
int err_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefixes the recorded "what" with context, e.g. the file a tensor came from. */
int err_context(const char *outer);

int err_status(void);
const char *err_what(void);
const char *err_why(void);
const char *err_hint_text(void);
void err_clear(void);

/* The command name used in messages ("logits", "train"); set once by main. */
void err_set_command(const char *command);
const char *err_command(void);

/* Prints the recorded error in the user-facing form. */
void err_print(void);
/* Prints the recorded error and exits with its status. */
_Noreturn void err_exit(void);
/* Records and exits in one step: for commands, never for library code. */
_Noreturn void die(int status, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Allocation that cannot fail quietly: on exhaustion prints what was asked and exits 1. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
/* xcalloc for arrays of gigabytes that are streamed through whole (a student's float32 weights
 * and AdamW moments): asks the kernel for 2 MiB pages, which fault in 512 times fewer steps. */
void *xcalloc_large(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh allocation. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Always-on invariant check (a bug in this program, not bad input): prints file, line and the
 * failed expression, and aborts so a core file or sanitizer trace shows where. */
#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) check_failed(__FILE__, __LINE__, #cond);                                \
    } while (0)
_Noreturn void check_failed(const char *file, int line, const char *expr);

/* Propagates a failing status: `TRY(safetensors_open(&st, path));` */
#define TRY(expr)                                                                            \
    do {                                                                                     \
        int try_status_ = (expr);                                                            \
        if (try_status_ != R1_OK) return try_status_;                                        \
    } while (0)

#endif
