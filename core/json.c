#include "core/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"

int json_parse(cJSON **out, const char *text, size_t len, const char *where) {
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (*out) return R1_OK;
    /* cJSON reports where it stopped; turn the offset into a line and column. */
    size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
    int line = 1, col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    if (len == 0) return err_fail(R1_EINPUT, where, "invalid JSON: the file is empty");
    return err_fail(R1_EINPUT, where, "invalid JSON at line %d, column %d", line, col);
}

int json_parse_file(cJSON **out, const char *path, size_t max_bytes) {
    char *text;
    size_t len;
    *out = NULL;
    TRY(file_read_all(path, max_bytes, &text, &len));
    int rc = json_parse(out, text, len, path);
    free(text);
    return rc;
}

static const cJSON *lookup(const cJSON *obj, const char *key) {
    if (!obj || !cJSON_IsObject(obj)) return NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return it && !cJSON_IsNull(it) ? it : NULL;
}

static const char *type_name(const cJSON *it) {
    if (cJSON_IsBool(it)) return "a boolean";
    if (cJSON_IsNumber(it)) return "a number";
    if (cJSON_IsString(it)) return "a string";
    if (cJSON_IsArray(it)) return "an array";
    if (cJSON_IsObject(it)) return "an object";
    return "null";
}

static int wrong_type(const cJSON *it, const char *key, const char *want, const char *where) {
    err_fail(R1_EINPUT, where, "\"%s\" must be %s, not %s", key, want, type_name(it));
    return -1;
}

int json_is_int(const cJSON *it) {
    if (!cJSON_IsNumber(it)) return 0;
    double v = it->valuedouble;
    return isfinite(v) && v == floor(v) && fabs(v) <= 9007199254740992.0;
}

int json_get_int(const cJSON *obj, const char *key, int64_t *out, const char *where) {
    const cJSON *it = lookup(obj, key);
    if (!it) return 0;
    if (!json_is_int(it)) return wrong_type(it, key, "an integer", where);
    *out = (int64_t)it->valuedouble;
    return 1;
}

int json_get_num(const cJSON *obj, const char *key, double *out, const char *where) {
    const cJSON *it = lookup(obj, key);
    if (!it) return 0;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return wrong_type(it, key, "a finite number", where);
    *out = it->valuedouble;
    return 1;
}

int json_get_bool(const cJSON *obj, const char *key, int *out, const char *where) {
    const cJSON *it = lookup(obj, key);
    if (!it) return 0;
    if (!cJSON_IsBool(it)) return wrong_type(it, key, "true or false", where);
    *out = cJSON_IsTrue(it);
    return 1;
}

int json_get_str(const cJSON *obj, const char *key, const char **out, const char *where) {
    const cJSON *it = lookup(obj, key);
    if (!it) return 0;
    if (!cJSON_IsString(it)) return wrong_type(it, key, "a string", where);
    *out = it->valuestring;
    return 1;
}

int json_get_obj(const cJSON *obj, const char *key, const cJSON **out, const char *where) {
    const cJSON *it = lookup(obj, key);
    if (!it) return 0;
    if (!cJSON_IsObject(it)) return wrong_type(it, key, "an object", where);
    *out = it;
    return 1;
}

int json_get_arr(const cJSON *obj, const char *key, const cJSON **out, const char *where) {
    const cJSON *it = lookup(obj, key);
    if (!it) return 0;
    if (!cJSON_IsArray(it)) return wrong_type(it, key, "an array", where);
    *out = it;
    return 1;
}

char *json_print(const cJSON *item) {
    char *s = cJSON_Print(item);
    if (!s) die(R1_ERUNTIME, "json", "out of memory while printing JSON");
    size_t n = strlen(s);
    char *t = xmalloc(n + 2);
    memcpy(t, s, n);
    t[n] = '\n';
    t[n + 1] = 0;
    cJSON_free(s);
    return t;
}

int json_write_file(const char *dir, const char *name, const cJSON *obj) {
    char *text = json_print(obj), *path = path_join(dir, name);
    int rc = file_write_atomic(path, text, strlen(text));
    free(text);
    free(path);
    return rc;
}
