#include "core/recipe.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"

static char *find_recipe(const char *name) {
    size_t n = strlen(name);
    if (strchr(name, '/') || (n > 5 && strcmp(name + n - 5, ".json") == 0)) return xstrdup(name);
    char *p = xasprintf("recipes/%s.json", name);
    if (path_exists(p)) return p;
    const char *env = getenv("R1_RECIPES");
    if (env && *env) {
        char *q = xasprintf("%s/%s.json", env, name);
        if (path_exists(q)) {
            free(p);
            return q;
        }
        free(q);
    }
    return p;
}

int recipe_load(recipe *r, const char *name_or_path) {
    memset(r, 0, sizeof *r);
    r->path = find_recipe(name_or_path);
    if (!path_exists(r->path)) {
        err_fail(R1_EINPUT, r->path, "no such recipe");
        err_hint("recipes live in recipes/NAME.json (qwen-1.5b, qwen-7b, llama-8b, qwen-14b, "
                 "qwen-32b, llama-70b, tiny); set R1_RECIPES to look elsewhere");
        recipe_free(r);
        return R1_EINPUT;
    }
    int rc = json_parse_file(&r->root, r->path, 16u << 20);
    const cJSON *student = NULL;
    if (!rc && !cJSON_IsObject(r->root)) rc = err_fail(R1_EINPUT, r->path, "not a JSON object");
    if (!rc && json_get_str(r->root, "name", &r->name, r->path) < 0) rc = R1_EINPUT;
    if (!rc && json_get_obj(r->root, "student", &student, r->path) != 1)
        rc = err_status() ? R1_EINPUT : err_fail(R1_EINPUT, r->path, "missing \"student\" object");
    if (!rc && (json_get_str(student, "base", &r->base, r->path) < 0 ||
                json_get_str(student, "base_env", &r->base_env, r->path) < 0 ||
                json_get_str(student, "arch", &r->arch, r->path) < 0 ||
                json_get_obj(student, "shape", &r->shape, r->path) < 0 ||
                json_get_obj(r->root, "train", &r->train, r->path) < 0 ||
                json_get_obj(r->root, "teacher", &r->teacher, r->path) < 0))
        rc = R1_EINPUT;
    if (!rc && !r->train) rc = err_fail(R1_EINPUT, r->path, "missing \"train\" object");
    if (rc) {
        recipe_free(r);
        return rc;
    }
    if (!r->name) r->name = name_or_path;
    return R1_OK;
}

void recipe_free(recipe *r) {
    cJSON_Delete(r->root);
    free(r->path);
    memset(r, 0, sizeof *r);
}

int recipe_train_num(const recipe *r, const char *key, double def, double *out) {
    *out = def;
    int b;
    if (json_get_bool(r->train, key, &b, r->path) == 1) {
        *out = b;
        return R1_OK;
    }
    err_clear();
    return json_get_num(r->train, key, out, r->path) < 0 ? R1_EINPUT : R1_OK;
}
