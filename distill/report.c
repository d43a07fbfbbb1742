/* r1-distill report: the demo's summary of a distillation run.
 *
 * Reads what the stages wrote: the eval summaries (eval/cmd_eval.c summary.json), the curation
 * report (distill/curate.c report.json) and the training log (student/train.c JSONL), and
 * writes report.json, report.md, the pictures loss.svg (training loss per step) and
 * accuracy.svg (the accuracy table as bars), and report.html that shows them together. The
 * table goes to stdout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cli.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "distill/pipeline.h"

static const char *o_out, *o_teacher, *o_before, *o_after, *o_curate, *o_train_log, *o_title;

static const cli_opt report_opts[] = {
    {"out", OPT_STRING, &o_out, NULL, CLI_REQUIRED, "DIR", "where report.{json,md,html} and the SVGs go"},
    {"teacher-eval", OPT_STRING, &o_teacher, NULL, CLI_REQUIRED, "DIR", "eval --out of the teacher"},
    {"before-eval", OPT_STRING, &o_before, NULL, CLI_REQUIRED, "DIR", "eval --out of the untrained student"},
    {"after-eval", OPT_STRING, &o_after, NULL, CLI_REQUIRED, "DIR", "eval --out of the trained student"},
    {"curate-report", OPT_STRING, &o_curate, NULL, CLI_REQUIRED, "FILE", "curate's report.json"},
    {"train-log", OPT_STRING, &o_train_log, NULL, CLI_REQUIRED, "FILE", "train --log JSONL"},
    {"title", OPT_STRING, &o_title, "r1-distill run", 0, "TEXT", "heading of the report page"},
};

static const cli_spec report_spec = {
    .command = "report",
    .summary = "Summarise a distillation run: accuracy of teacher and student before and after, "
               "traces kept, the training-loss curve; writes report.json, report.md, report.html "
               "and SVG pictures.",
    .opts = report_opts,
    .n_opts = sizeof report_opts / sizeof *report_opts,
    .details = "seconds in report.json is the wall time since the pipeline started "
               "(R1_RUN_STARTED, set by `r1-distill run`), else since the training log began.",
};

typedef struct {
    const char *label;
    double accuracy, stderr_, tokens, truncated;
    int questions, samples;
} eval_row;

static void load_eval(eval_row *r, const char *dir, const char *label) {
    char *p = path_join(dir, "summary.json");
    cJSON *s;
    if (json_parse_file(&s, p, 1 << 24)) err_exit();
    double q = 0, k = 0;
    if (json_get_num(s, "pass@1", &r->accuracy, p) != 1 ||
        json_get_num(s, "mean_response_tokens", &r->tokens, p) != 1 ||
        json_get_num(s, "questions", &q, p) != 1 || json_get_num(s, "samples", &k, p) != 1)
        die(R1_EINPUT, p, "not an eval summary (needs pass@1, mean_response_tokens, questions, samples)");
    json_get_num(s, "pass@1_stderr", &r->stderr_, p);
    json_get_num(s, "truncated_share", &r->truncated, p);
    r->questions = (int)q;
    r->samples = (int)k;
    r->label = label;
    cJSON_Delete(s);
    free(p);
}

/* The loss per step from the training log. */
static int load_losses(const char *path, double **loss) {
    char *text;
    size_t len;
    if (file_read_all(path, 1u << 30, &text, &len)) err_exit();
    int cap = 256, n = 0;
    double *v = xmalloc(sizeof(double) * (size_t)cap);
    int line = 0;
    for (char *s = text; *s;) {
        char *e = strchr(s, '\n');
        size_t k = e ? (size_t)(e - s) : strlen(s);
        line++;
        if (k > 0) {
            cJSON *o;
            char where[600];
            snprintf(where, sizeof where, "%s: line %d", path, line);
            if (json_parse(&o, s, k, where)) err_exit();
            double l;
            if (json_get_num(o, "loss", &l, where) == 1) {
                if (n == cap) v = xrealloc(v, sizeof(double) * (size_t)(cap *= 2));
                v[n++] = l;
            }
            cJSON_Delete(o);
        }
        s += k + (e ? 1 : 0);
    }
    free(text);
    if (n == 0) die(R1_EINPUT, path, "the training log holds no step with a loss");
    *loss = v;
    return n;
}

static char *svg_loss(const double *loss, int n) {
    const double W = 560, H = 300, L = 60, R = 20, T = 30, B = 45;
    double lo = loss[0], hi = loss[0];
    for (int i = 0; i < n; i++) {
        if (loss[i] < lo) lo = loss[i];
        if (loss[i] > hi) hi = loss[i];
    }
    if (hi - lo < 1e-9) hi = lo + 1;
    lo = lo > 0 ? 0 : lo;
    size_t cap = 4096 + (size_t)n * 32, len = 0;
    char *s = xmalloc(cap);
#define OUT(...) len += (size_t)snprintf(s + len, cap - len, __VA_ARGS__)
    OUT("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
        "font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    OUT("<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    OUT("<text x=\"%.0f\" y=\"18\" font-size=\"14\">training loss (student)</text>\n", L);
    OUT("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, H - B, W - R, H - B);
    OUT("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, T, L, H - B);
    for (int t = 0; t <= 4; t++) {
        double v = lo + (hi - lo) * t / 4, y = H - B - (H - B - T) * t / 4;
        OUT("<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", L - 6, y + 4, v);
        OUT("<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, y, W - R, y);
    }
    OUT("<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">optimizer step (1..%d)</text>\n",
        (L + W - R) / 2, H - 10, n);
    OUT("<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"");
    for (int i = 0; i < n; i++) {
        double x = L + (W - R - L) * (n > 1 ? (double)i / (n - 1) : 0.5);
        double y = H - B - (H - B - T) * (loss[i] - lo) / (hi - lo);
        OUT("%.1f,%.1f ", x, y);
    }
    OUT("\"/>\n</svg>\n");
#undef OUT
    return s;
}

static char *svg_accuracy(const eval_row *rows, int n) {
    const double W = 560, bar_h = 34, L = 170, T = 40;
    const double H = T + n * (bar_h + 14) + 20;
    size_t cap = 8192, len = 0;
    char *s = xmalloc(cap);
#define OUT(...) len += (size_t)snprintf(s + len, cap - len, __VA_ARGS__)
    OUT("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
        "font-family=\"sans-serif\" font-size=\"13\">\n", W, H);
    OUT("<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    OUT("<text x=\"10\" y=\"22\" font-size=\"14\">accuracy on the held-out test split (pass@1)</text>\n");
    const char *colors[] = {"#2ca02c", "#d62728", "#1f77b4"};
    for (int i = 0; i < n; i++) {
        double y = T + i * (bar_h + 14), w = (W - L - 90) * rows[i].accuracy;
        OUT("<text x=\"10\" y=\"%.1f\">%s</text>\n", y + bar_h / 2 + 4, rows[i].label);
        OUT("<rect x=\"%.0f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\"/>\n", L, y,
            w, bar_h, colors[i % 3]);
        OUT("<text x=\"%.1f\" y=\"%.1f\">%.1f%%  (%.0f tokens)</text>\n", L + w + 6,
            y + bar_h / 2 + 4, 100 * rows[i].accuracy, rows[i].tokens);
    }
    OUT("</svg>\n");
#undef OUT
    return s;
}

static void write_text(const char *dir, const char *name, const char *text) {
    char *p = path_join(dir, name);
    if (file_write_atomic(p, text, strlen(text))) err_exit();
    free(p);
}

int cmd_report(int argc, char **argv) {
    cli_parse(&report_spec, argc, argv, NULL, NULL);
    eval_row rows[3];
    load_eval(&rows[0], o_teacher, "teacher");
    load_eval(&rows[1], o_before, "student, untrained");
    load_eval(&rows[2], o_after, "student, distilled");
    cJSON *cur;
    if (json_parse_file(&cur, o_curate, 1 << 24)) err_exit();
    double generated = 0, kept = 0;
    if (json_get_num(cur, "input", &generated, o_curate) != 1 ||
        json_get_num(cur, "kept", &kept, o_curate) != 1)
        die(R1_EINPUT, o_curate, "not a curate report (needs \"input\" and \"kept\")");
    double *loss;
    int n_loss = load_losses(o_train_log, &loss);
    const char *started = getenv("R1_RUN_STARTED");
    double seconds = started ? difftime(time(NULL), (time_t)atoll(started)) : -1;
    if (dir_create(o_out)) err_exit();

    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "teacher_accuracy", rows[0].accuracy);
    cJSON_AddNumberToObject(r, "student_before_accuracy", rows[1].accuracy);
    cJSON_AddNumberToObject(r, "student_after_accuracy", rows[2].accuracy);
    cJSON_AddNumberToObject(r, "student_to_teacher", rows[0].accuracy > 0 ? rows[2].accuracy / rows[0].accuracy : 0);
    cJSON_AddNumberToObject(r, "traces_generated", generated);
    cJSON_AddNumberToObject(r, "traces_kept", kept);
    if (seconds >= 0)
        cJSON_AddNumberToObject(r, "seconds", seconds);
    else
        cJSON_AddNullToObject(r, "seconds");
    cJSON *ev = cJSON_AddArrayToObject(r, "evals");
    for (int i = 0; i < 3; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "model", rows[i].label);
        cJSON_AddNumberToObject(e, "accuracy", rows[i].accuracy);
        cJSON_AddNumberToObject(e, "accuracy_stderr", rows[i].stderr_);
        cJSON_AddNumberToObject(e, "mean_response_tokens", rows[i].tokens);
        cJSON_AddNumberToObject(e, "truncated_share", rows[i].truncated);
        cJSON_AddNumberToObject(e, "questions", rows[i].questions);
        cJSON_AddNumberToObject(e, "samples", rows[i].samples);
        cJSON_AddItemToArray(ev, e);
    }
    cJSON_AddNumberToObject(r, "train_steps", n_loss);
    cJSON_AddNumberToObject(r, "train_loss_first", loss[0]);
    cJSON_AddNumberToObject(r, "train_loss_last", loss[n_loss - 1]);
    char *js = json_print(r);
    write_text(o_out, "report.json", js);
    free(js);
    cJSON_Delete(r);

    char *loss_svg = svg_loss(loss, n_loss), *acc_svg = svg_accuracy(rows, 3);
    write_text(o_out, "loss.svg", loss_svg);
    write_text(o_out, "accuracy.svg", acc_svg);
    char table[4096];
    size_t t = 0;
    t += (size_t)snprintf(table + t, sizeof table - t,
                          "| model | accuracy (pass@1) | mean response tokens | truncated |\n"
                          "|---|---:|---:|---:|\n");
    for (int i = 0; i < 3; i++)
        t += (size_t)snprintf(table + t, sizeof table - t, "| %s | %.1f%% ± %.1f | %.1f | %.1f%% |\n",
                              rows[i].label, 100 * rows[i].accuracy, 100 * rows[i].stderr_,
                              rows[i].tokens, 100 * rows[i].truncated);
    char summary[1024];
    snprintf(summary, sizeof summary,
             "traces: %.0f generated, %.0f kept after curation (%.1f%%); student training: %d "
             "steps, loss %.3f -> %.3f%s%.0f%s\n",
             generated, kept, generated > 0 ? 100 * kept / generated : 0, n_loss, loss[0],
             loss[n_loss - 1], seconds >= 0 ? "; pipeline " : "", seconds >= 0 ? seconds : 0,
             seconds >= 0 ? " s" : "");
    char *md = xasprintf("# %s\n\n%s\n%s\n![training loss](loss.svg)\n\n![accuracy](accuracy.svg)\n",
                         o_title, table, summary);
    write_text(o_out, "report.md", md);
    char *html = xasprintf("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%s</title>"
                           "<style>body{font-family:sans-serif;max-width:640px;margin:2em auto}"
                           "td,th{padding:4px 10px;border-bottom:1px solid #ddd}</style></head>"
                           "<body><h1>%s</h1>\n<p>%s</p>\n%s\n%s\n</body></html>\n",
                           o_title, o_title, summary, acc_svg, loss_svg);
    write_text(o_out, "report.html", html);
    printf("%s\n%s", table, summary);
    printf("report: %s/{report.json,report.md,report.html,loss.svg,accuracy.svg}\n", o_out);
    free(md);
    free(html);
    free(loss_svg);
    free(acc_svg);
    free(loss);
    cJSON_Delete(cur);
    return 0;
}
