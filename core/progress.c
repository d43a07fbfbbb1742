/* Progress display and JSONL log (see progress.h). */
#include "core/progress.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"

enum { MAX_FIELDS = 16 };

struct progress {
    char *label, *unit;
    int64_t total, start;
    double interval, t0, last_print, last_log;
    int tty, line_open;
    FILE *log;
    double first_value[MAX_FIELDS]; /* each rate field's value at the first update */
    int have_first;
};

void progress_format_duration(char *out, int cap, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(out, (size_t)cap, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 86400) snprintf(out, (size_t)cap, "%ldd%02ldh", t / 86400, t % 86400 / 3600);
    else if (t >= 3600) snprintf(out, (size_t)cap, "%ldh%02ldm", t / 3600, t % 3600 / 60);
    else if (t >= 60) snprintf(out, (size_t)cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(out, (size_t)cap, "%lds", t);
}

int progress_open(progress **out, const char *label, const char *unit, int64_t total, int64_t start,
                  double interval_s, const char *log_path) {
    *out = NULL;
    progress *p = xcalloc(1, sizeof *p);
    p->label = xstrdup(label);
    p->unit = xstrdup(unit);
    p->total = total;
    p->start = start;
    p->interval = interval_s > 0 ? interval_s : 30;
    p->t0 = clock_seconds();
    p->last_print = p->last_log = -1e30;
    p->tty = isatty(STDERR_FILENO) && getenv("TERM") && strcmp(getenv("TERM"), "dumb") != 0;
    if (log_path) {
        p->log = fopen(log_path, "a");
        if (!p->log) {
            int e = errno;
            free(p->label);
            free(p->unit);
            free(p);
            return err_fail(R1_EINPUT, log_path, "cannot open the log: %s", strerror(e));
        }
    }
    *out = p;
    return R1_OK;
}

static void log_line(progress *p, cJSON *o) {
    if (!p->log) {
        cJSON_Delete(o);
        return;
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) return;
    fprintf(p->log, "%s\n", text);
    fflush(p->log);
    cJSON_free(text);
}

static cJSON *log_head(progress *p, const char *event) {
    cJSON *o = cJSON_CreateObject();
    char when[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(o, "time", when);
    cJSON_AddNumberToObject(o, "elapsed_s", round((clock_seconds() - p->t0) * 1000) / 1000);
    cJSON_AddStringToObject(o, "event", event);
    return o;
}

static double field_rate(progress *p, const progress_field *f, int i, double elapsed) {
    if (i >= MAX_FIELDS || elapsed <= 0) return 0;
    return (f[i].value - p->first_value[i]) / elapsed;
}

static void emit(progress *p, int64_t done, const progress_field *f, int n, int final,
                 int force) {
    const double t = clock_seconds(), elapsed = t - p->t0;
    if (!p->have_first) {
        for (int i = 0; i < n && i < MAX_FIELDS; i++) p->first_value[i] = f[i].value;
        p->have_first = 1;
    }
    double eta = NAN;
    if (p->total > 0 && done > p->start && elapsed > 0)
        eta = (double)(p->total - done) * elapsed / (double)(done - p->start);
    char line[512], eta_s[32];
    int k = 0;
    if (p->tty) {
        enum { W = 20 };
        int fill = p->total > 0 ? (int)((double)done * W / (double)p->total) : 0;
        if (fill > W) fill = W;
        k += snprintf(line + k, sizeof line - (size_t)k, "\r\033[K%s [", p->label);
        for (int i = 0; i < W; i++) line[k++] = i < fill ? '#' : '.';
        k += snprintf(line + k, sizeof line - (size_t)k, "] ");
    } else {
        char el[32];
        progress_format_duration(el, sizeof el, elapsed);
        k += snprintf(line + k, sizeof line - (size_t)k, "%s: %s ", p->label, el);
    }
    if (p->total > 0)
        k += snprintf(line + k, sizeof line - (size_t)k, "%lld/%lld %s", (long long)done,
                      (long long)p->total, p->unit);
    else
        k += snprintf(line + k, sizeof line - (size_t)k, "%lld %s", (long long)done, p->unit);
    for (int i = 0; i < n && k < (int)sizeof line - 64; i++) {
        if (f[i].rate) {
            const char *u = strcmp(f[i].name, "tokens") == 0 ? "tok" : f[i].name;
            k += snprintf(line + k, sizeof line - (size_t)k, "  %.*f %s/s", f[i].decimals,
                          field_rate(p, f, i, elapsed), u);
        } else {
            k += snprintf(line + k, sizeof line - (size_t)k, "  %s %.*f", f[i].name, f[i].decimals,
                          f[i].value);
        }
    }
    if (!final && p->total > 0) {
        progress_format_duration(eta_s, sizeof eta_s, eta);
        k += snprintf(line + k, sizeof line - (size_t)k, "  ETA %s", eta_s);
    }
    if (k >= (int)sizeof line) k = (int)sizeof line - 1;
    fprintf(stderr, "%s%s", line, p->tty && !final ? "" : "\n");
    fflush(stderr);
    p->line_open = p->tty && !final;
    p->last_print = t;

    /* The log keeps the plain cadence even while a terminal bar redraws 5 times a second. */
    if (!final && !force && t - p->last_log < p->interval) return;
    p->last_log = t;
    cJSON *o = log_head(p, final ? "done" : "progress");
    cJSON_AddNumberToObject(o, "done", (double)done);
    cJSON_AddNumberToObject(o, "total", (double)p->total);
    cJSON_AddStringToObject(o, "unit", p->unit);
    if (isfinite(eta) && !final) cJSON_AddNumberToObject(o, "eta_s", round(eta));
    for (int i = 0; i < n; i++) {
        cJSON_AddNumberToObject(o, f[i].name, f[i].value);
        if (f[i].rate) {
            char name[96];
            snprintf(name, sizeof name, "%s_per_s", f[i].name);
            cJSON_AddNumberToObject(o, name, round(field_rate(p, f, i, elapsed) * 100) / 100);
        }
    }
    log_line(p, o);
}

void progress_update(progress *p, int64_t done, const progress_field *f, int n, int force) {
    if (!p) return;
    const double t = clock_seconds(), every = p->tty ? 0.2 : p->interval;
    if (!p->have_first) {
        for (int i = 0; i < n && i < MAX_FIELDS; i++) p->first_value[i] = f[i].value;
        p->have_first = 1;
    }
    if (!force && t - p->last_print < every) return;
    emit(p, done, f, n, 0, force);
}

void progress_event(progress *p, const char *event, const cJSON *fields, const char *message) {
    if (!p) return;
    if (message) {
        if (p->line_open) fprintf(stderr, "\r\033[K");
        fprintf(stderr, "%s: %s\n", p->label, message);
        p->line_open = 0;
        p->last_print = -1e30; /* redraw the bar at the next update */
    }
    cJSON *o = log_head(p, event);
    if (fields) {
        const cJSON *it;
        cJSON_ArrayForEach(it, fields) cJSON_AddItemToObject(o, it->string, cJSON_Duplicate(it, 1));
    }
    if (message) cJSON_AddStringToObject(o, "message", message);
    log_line(p, o);
}

void progress_close(progress *p, int64_t done, const progress_field *f, int n) {
    if (!p) return;
    emit(p, done, f, n, 1, 1);
    if (p->log) fclose(p->log);
    free(p->label);
    free(p->unit);
    free(p);
}
