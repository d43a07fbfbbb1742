#include "core/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Which options the last cli_parse saw given; commands parse once, so one record suffices. */
enum { CLI_MAX_OPTS = 128 };
static const cli_spec *given_spec;
static char given[CLI_MAX_OPTS];

static const char *kind_meta(const cli_opt *o) {
    if (o->metavar) return o->metavar;
    switch (o->kind) {
    case OPT_INT: return "N";
    case OPT_FLOAT: return "X";
    case OPT_STRING: return "VALUE";
    case OPT_FLAG: return "";
    }
    return "";
}

void cli_print_help(const cli_spec *s) {
    printf("usage: r1-distill %s%s%s [options]\n\n%s\n\noptions:\n", s->command,
           s->positional ? " " : "", s->positional ? s->positional : "", s->summary);
    for (int i = 0; i < s->n_opts; i++) {
        const cli_opt *o = &s->opts[i];
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->kind == OPT_FLAG ? "" : " ",
                 kind_meta(o));
        printf("  %-28s %s", left, o->help);
        if (o->flags & CLI_REQUIRED)
            printf(" (required)");
        else if (o->kind == OPT_FLAG)
            printf(" (default: off)");
        else if (o->def)
            printf(" (default: %s)", o->def);
        else
            printf(" (default: none)");
        printf("\n");
    }
    printf("  %-28s %s\n", "--help", "print this help and exit");
    if (s->details) printf("\n%s\n", s->details);
}

static _Noreturn void usage_error(const cli_spec *s, const char *what, const char *fmt,
                                  const char *arg) {
    err_fail(R1_EINPUT, what, fmt, arg);
    err_hint("run `r1-distill %s --help` for the options", s->command);
    err_exit();
}

static void set_value(const cli_spec *s, const cli_opt *o, const char *v) {
    char what[96];
    snprintf(what, sizeof what, "--%s", o->name);
    char *end;
    errno = 0;
    switch (o->kind) {
    case OPT_STRING:
        *(const char **)o->dst = v;
        return;
    case OPT_INT: {
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno) usage_error(s, what, "expected an integer, got \"%s\"", v);
        *(int64_t *)o->dst = x;
        return;
    }
    case OPT_FLOAT: {
        double x = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(x))
            usage_error(s, what, "expected a number, got \"%s\"", v);
        *(double *)o->dst = x;
        return;
    }
    case OPT_FLAG:
        *(int *)o->dst = 1;
        return;
    }
}

void cli_parse(const cli_spec *s, int argc, char **argv, int *n_pos, char ***pos) {
    CHECK(s->n_opts <= CLI_MAX_OPTS);
    given_spec = s;
    memset(given, 0, sizeof given);
    for (int i = 0; i < s->n_opts; i++) {
        const cli_opt *o = &s->opts[i];
        if (o->kind == OPT_FLAG)
            *(int *)o->dst = 0;
        else if (o->def)
            set_value(s, o, o->def);
        else if (o->kind == OPT_STRING)
            *(const char **)o->dst = NULL;
    }
    int np = 0;
    char **positional = argv + 1;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_print_help(s);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (!s->positional) usage_error(s, s->command, "unexpected argument \"%s\"", a);
            positional[np++] = a; /* compacted in place: np <= i */
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = NULL;
        int idx = -1;
        for (int k = 0; k < s->n_opts && !o; k++)
            if (strlen(s->opts[k].name) == len && strncmp(s->opts[k].name, name, len) == 0) {
                o = &s->opts[k];
                idx = k;
            }
        if (!o) usage_error(s, s->command, "unknown option \"%s\"", a);
        given[idx] = 1;
        if (o->kind == OPT_FLAG) {
            if (eq) usage_error(s, a, "%s takes no value", a);
            set_value(s, o, "1");
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) usage_error(s, a, "%s needs a value", a);
            v = argv[++i];
        }
        set_value(s, o, v);
    }
    for (int i = 0; i < s->n_opts; i++) {
        const cli_opt *o = &s->opts[i];
        if ((o->flags & CLI_REQUIRED) && !given[i]) {
            char what[96];
            snprintf(what, sizeof what, "--%s", o->name);
            usage_error(s, what, "%s is required", what);
        }
    }
    if (n_pos) *n_pos = np;
    if (pos) *pos = positional;
}

int cli_given(const cli_spec *s, const char *name) {
    if (s != given_spec) return 0;
    for (int i = 0; i < s->n_opts; i++)
        if (strcmp(s->opts[i].name, name) == 0) return given[i];
    return 0;
}

int *cli_parse_int_list(const char *opt_name, const char *text, int *n) {
    int cap = 16, k = 0;
    int *v = xmalloc(sizeof(int) * (size_t)cap);
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < INT32_MIN || x > INT32_MAX)
            die(R1_EINPUT, opt_name, "expected comma-separated integers, got \"%s\"", text);
        if (k == cap) v = xrealloc(v, sizeof(int) * (size_t)(cap *= 2));
        v[k++] = (int)x;
        p = end;
        if (*p && *p != ',' && *p != ' ')
            die(R1_EINPUT, opt_name, "expected comma-separated integers, got \"%s\"", text);
    }
    if (k == 0) die(R1_EINPUT, opt_name, "no token ids given");
    *n = k;
    return v;
}
