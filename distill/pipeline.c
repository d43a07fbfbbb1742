/* r1-distill run: the pipeline runner (see pipeline.h for the recipe format and the rules). */
#include "distill/pipeline.h"

#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/cli.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"

static const char *opt_run_dir, *opt_only;
static int opt_dry;

static const cli_opt run_opts[] = {
    {"run-dir", OPT_STRING, &opt_run_dir, NULL, 0, "DIR", "output folder (default: the recipe's run_dir)"},
    {"only", OPT_STRING, &opt_only, NULL, 0, "STAGE", "run just this stage (and record it)"},
    {"dry-run", OPT_FLAG, &opt_dry, NULL, 0, NULL, "print each stage's command and whether it would run"},
};

static const cli_spec run_spec = {
    .command = "run",
    .summary = "Run a recipe's pipeline: each stage is one r1-distill command; completed stages are "
               "skipped, an interrupted one is resumed.",
    .positional = "RECIPE",
    .opts = run_opts,
    .n_opts = sizeof run_opts / sizeof *run_opts,
    .details = "RECIPE is a path or a name in recipes/. Stage records live in RUN_DIR/stages/.",
};

typedef struct {
    const char *run_dir, *recipe_dir, *root;
} vars;

/* Expands ${run_dir}, ${recipe_dir} and ${root}. */
static char *expand(const char *s, const vars *v, const char *where) {
    size_t cap = strlen(s) + 256, n = 0;
    char *out = xmalloc(cap);
    while (*s) {
        const char *val = NULL;
        size_t skip = 0;
        if (strncmp(s, "${run_dir}", 10) == 0) val = v->run_dir, skip = 10;
        else if (strncmp(s, "${recipe_dir}", 13) == 0) val = v->recipe_dir, skip = 13;
        else if (strncmp(s, "${root}", 7) == 0) val = v->root, skip = 7;
        else if (strncmp(s, "${", 2) == 0)
            die(R1_EINPUT, where, "unknown variable in \"%s\" (known: ${run_dir}, ${recipe_dir}, ${root})", s);
        const char *piece = val ? val : s;
        size_t len = val ? strlen(val) : 1;
        while (n + len + 1 > cap) out = xrealloc(out, cap *= 2);
        memcpy(out + n, piece, len);
        n += len;
        s += val ? skip : 1;
    }
    out[n] = 0;
    return out;
}

typedef struct {
    char **argv;
    int argc, cap;
} arglist;

static void push(arglist *a, char *s) {
    if (a->argc + 2 > a->cap) a->argv = xrealloc(a->argv, sizeof(char *) * (size_t)(a->cap = a->cap ? a->cap * 2 : 16));
    a->argv[a->argc++] = s;
    a->argv[a->argc] = NULL;
}

static void free_args(arglist *a) {
    for (int i = 0; i < a->argc; i++) free(a->argv[i]);
    free(a->argv);
}

/* Turns one "args" value into option words; returns R1_EINPUT on an unusable type. */
static int push_option(arglist *a, const cJSON *it, const vars *v, const char *where) {
    if (cJSON_IsFalse(it) || cJSON_IsNull(it)) return R1_OK;
    push(a, xasprintf("--%s", it->string));
    if (cJSON_IsTrue(it)) return R1_OK;
    if (cJSON_IsString(it)) {
        push(a, expand(it->valuestring, v, where));
    } else if (cJSON_IsNumber(it)) {
        /* the shortest form that reads back as the same double */
        char *num = json_is_int(it) ? xasprintf("%lld", (long long)it->valuedouble)
                                    : xasprintf("%.15g", it->valuedouble);
        if (!json_is_int(it) && strtod(num, NULL) != it->valuedouble) {
            free(num);
            num = xasprintf("%.17g", it->valuedouble);
        }
        push(a, num);
    } else if (cJSON_IsArray(it)) {
        size_t cap = 64, n = 0;
        char *s = xcalloc(1, cap);
        const cJSON *e;
        cJSON_ArrayForEach(e, it) {
            char *piece = cJSON_IsString(e) ? expand(e->valuestring, v, where)
                          : cJSON_IsNumber(e) ? xasprintf("%.17g", e->valuedouble) : NULL;
            if (!piece) return err_fail(R1_EINPUT, where, "args.%s: arrays hold strings or numbers", it->string);
            size_t len = strlen(piece);
            while (n + len + 2 > cap) s = xrealloc(s, cap *= 2);
            if (n) s[n++] = ',';
            memcpy(s + n, piece, len + 1);
            n += len;
            free(piece);
        }
        push(a, s);
    } else {
        return err_fail(R1_EINPUT, where, "args.%s must be a string, number, boolean or array", it->string);
    }
    return R1_OK;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static int run_child(char **argv) {
    pid_t pid = fork();
    if (pid < 0) return err_fail(R1_ERUNTIME, "run", "fork failed: %s", strerror(errno));
    if (pid == 0) {
        execv(argv[0], argv);
        fprintf(stderr, "r1-distill run: cannot execute %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return err_fail(R1_ERUNTIME, "run", "waitpid failed: %s", strerror(errno));
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return err_fail(R1_ERUNTIME, "run", "stage killed by signal %d", WTERMSIG(status)), 128 + WTERMSIG(status);
}

int cmd_run(int argc, char **argv) {
    int n_pos;
    char **pos;
    cli_parse(&run_spec, argc, argv, &n_pos, &pos);
    if (n_pos != 1) die(R1_EINPUT, "run", "expected one RECIPE, got %d arguments", n_pos);
    char *path = strchr(pos[0], '/') || strstr(pos[0], ".json") ? xstrdup(pos[0])
                                                                 : xasprintf("recipes/%s.json", pos[0]);
    cJSON *root;
    if (!path_exists(path)) die(R1_EINPUT, path, "no such recipe");
    if (json_parse_file(&root, path, 16u << 20)) err_exit();
    const cJSON *stages = NULL;
    const char *rd = NULL;
    if (json_get_arr(root, "pipeline", &stages, path) != 1)
        die(R1_EINPUT, path, "no \"pipeline\" array: this recipe describes no stages to run");
    if (json_get_str(root, "run_dir", &rd, path) < 0) err_exit();
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) die(R1_ERUNTIME, "run", "getcwd failed");
    char *pcopy = xstrdup(path);
    vars v = {.run_dir = "", .recipe_dir = dirname(pcopy), .root = cwd};
    /* run_dir itself may name ${recipe_dir} or ${root} */
    char *run_dir = expand(opt_run_dir ? opt_run_dir : rd ? rd : "runs/run", &v, path);
    v.run_dir = run_dir;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) die(R1_ERUNTIME, "run", "cannot find this program's path");
    exe[n] = 0;
    char *stage_dir = xasprintf("%s/stages", v.run_dir);
    if (!opt_dry && dir_create(stage_dir)) err_exit();

    if (!getenv("R1_RUN_STARTED")) {
        char started[32];
        snprintf(started, sizeof started, "%lld", (long long)time(NULL));
        setenv("R1_RUN_STARTED", started, 1);
    }
    const int total = cJSON_GetArraySize(stages);
    uint64_t chain = 0xcbf29ce484222325ull;
    int idx = 0, ran_only = 0;
    double t0 = clock_seconds();
    const cJSON *st;
    cJSON_ArrayForEach(st, stages) {
        idx++;
        const char *name = NULL, *command = NULL, *resume_flag = NULL, *resume_if = NULL;
        const cJSON *args = NULL;
        char where[512];
        snprintf(where, sizeof where, "%s: pipeline[%d]", path, idx - 1);
        if (json_get_str(st, "name", &name, where) != 1 || json_get_str(st, "command", &command, where) != 1)
            die(R1_EINPUT, where, "each stage needs \"name\" and \"command\" strings");
        if (json_get_obj(st, "args", &args, where) < 0 || json_get_str(st, "resume_flag", &resume_flag, where) < 0 ||
            json_get_str(st, "resume_if", &resume_if, where) < 0)
            err_exit();
        if (strcmp(command, "run") == 0) die(R1_EINPUT, where, "a stage cannot be `run` itself");
        arglist a = {0};
        push(&a, xstrdup(exe));
        push(&a, xstrdup(command));
        const cJSON *it;
        if (args) cJSON_ArrayForEach(it, args) if (push_option(&a, it, &v, where)) err_exit();
        const cJSON *posargs = NULL;
        if (json_get_arr(st, "positional", &posargs, where) < 0) err_exit();
        if (posargs) cJSON_ArrayForEach(it, posargs) {
            if (!cJSON_IsString(it)) die(R1_EINPUT, where, "\"positional\" holds strings");
            push(&a, expand(it->valuestring, &v, where));
        }
        for (int i = 1; i < a.argc; i++) chain = fnv1a(chain, a.argv[i], strlen(a.argv[i]) + 1);
        char hash[32];
        snprintf(hash, sizeof hash, "%016llx\n", (unsigned long long)chain);
        char *done = xasprintf("%s/%s.done", stage_dir, name);
        char *old = NULL;
        size_t olen = 0;
        int complete = path_exists(done) && file_read_all(done, 64, &old, &olen) == R1_OK && strcmp(old, hash) == 0;
        err_clear();
        free(old);
        int selected = !opt_only || strcmp(opt_only, name) == 0;
        if (!selected || (complete && !opt_only)) {
            if (selected || !opt_only) fprintf(stderr, "[%d/%d] %s: done, skipped\n", idx, total, name);
            free(done);
            free_args(&a);
            continue;
        }
        if (resume_flag && resume_if) {
            char *p = expand(resume_if, &v, where);
            glob_t g;
            if (glob(p, 0, NULL, &g) == 0 && g.gl_pathc > 0) push(&a, xasprintf("--%s", resume_flag));
            globfree(&g);
            free(p);
        }
        fprintf(stderr, "[%d/%d] %s: r1-distill", idx, total, name);
        for (int i = 1; i < a.argc; i++) fprintf(stderr, " %s", a.argv[i]);
        fprintf(stderr, "\n");
        if (opt_dry) {
            free(done);
            free_args(&a);
            continue;
        }
        /* A re-run stage invalidates every later record: its outputs feed them. */
        const cJSON *later = st->next;
        for (; later; later = later->next) {
            const char *ln = NULL;
            if (json_get_str(later, "name", &ln, where) == 1) {
                char *p = xasprintf("%s/%s.done", stage_dir, ln);
                unlink(p);
                free(p);
            }
        }
        unlink(done);
        double ts = clock_seconds();
        int rc = run_child(a.argv);
        if (rc != 0) {
            fprintf(stderr, "r1-distill run: stage %s failed (exit %d) after %.1f s; fix the cause "
                            "and re-run: completed stages are kept\n", name, rc, clock_seconds() - ts);
            return rc == R1_EINPUT ? R1_EINPUT : R1_ERUNTIME;
        }
        if (file_write_atomic(done, hash, strlen(hash))) err_exit();
        fprintf(stderr, "[%d/%d] %s: finished in %.1f s\n", idx, total, name, clock_seconds() - ts);
        ran_only = 1;
        free(done);
        free_args(&a);
    }
    if (opt_only && !ran_only && !opt_dry) die(R1_EINPUT, "--only", "no stage named \"%s\" ran", opt_only);
    fprintf(stderr, "pipeline %s: %d stages, %.1f s\n", path, total, clock_seconds() - t0);
    cJSON_Delete(root);
    free(stage_dir);
    free(run_dir);
    free(pcopy);
    free(path);
    return 0;
}
