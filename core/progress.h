/* Progress of long jobs on stderr, and the same figures as a JSONL log.
 *
 * On a terminal, one status line is redrawn in place (at most 5 times a second):
 *     generate [#########...........]  45/100 prompts  samples 180  1234 tok/s  ETA 3m12s
 * Otherwise (a log file, a batch job) a plain line is printed every `interval` seconds. The log,
 * when given, receives one JSON object every `interval` seconds (and per event, and at the end):
 *     {"time": "2026-01-01T12:00:00Z", "elapsed_s": 12.5, "event": "progress", "done": 45,
 *      "total": 100, "unit": "prompts", "eta_s": 192, "samples": 180, "tokens": 91234,
 *      "tokens_per_s": 1234.5}
 * A field marked `rate` is a running total: it is shown as a rate per second over this run
 * and logged both as the total and as "<name>_per_s". The ETA counts only the units done in
 * this run (not those done before a resume). */
#ifndef R1_CORE_PROGRESS_H
#define R1_CORE_PROGRESS_H

#include <cjson/cJSON.h>
#include <stdint.h>

typedef struct progress progress;

typedef struct {
    const char *name;   /* "samples", "tokens", "loss" */
    double value;
    int rate;           /* 1: a running total; show value per second ("tok/s" for tokens) */
    int decimals;       /* for the printed value */
} progress_field;

/* label: the command ("generate"); unit: what done and total count ("prompts"); start: units
 * already done when this run began; interval_s: seconds between plain lines; log_path: a
 * JSONL file appended to, or NULL. R1_EINPUT if the log cannot be opened. */
int progress_open(progress **p, const char *label, const char *unit, int64_t total, int64_t start,
                  double interval_s, const char *log_path);
/* Reports the current figures; prints and logs when due, or always with force. */
void progress_update(progress *p, int64_t done, const progress_field *f, int n, int force);
/* Logs an event with extra members (fields may be NULL; it is not consumed), and prints
 * `message` (if not NULL) on its own line. */
void progress_event(progress *p, const char *event, const cJSON *fields, const char *message);
/* Prints the final figures (ending the terminal line) and closes the log. */
void progress_close(progress *p, int64_t done, const progress_field *f, int n);

/* "3m12s", "2h05m", "45s" into out. */
void progress_format_duration(char *out, int cap, double seconds);

#endif
