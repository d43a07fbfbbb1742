/* JSON through cJSON, with typed look-ups that record precise errors.
 *
 * Every getter takes `where` (usually the file path) for the message and returns
 *   1  the key is present and has the right type (*out set),
 *   0  the key is absent or JSON null (*out untouched),
 *  -1  the key is present with the wrong type (error recorded, R1_EINPUT). */
#ifndef R1_CORE_JSON_H
#define R1_CORE_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* Parses text of known length; on failure records "<where>: invalid JSON at line L, column C". */
int json_parse(cJSON **out, const char *text, size_t len, const char *where);
/* Reads and parses a file of at most max_bytes. */
int json_parse_file(cJSON **out, const char *path, size_t max_bytes);

int json_get_int(const cJSON *obj, const char *key, int64_t *out, const char *where);
int json_get_num(const cJSON *obj, const char *key, double *out, const char *where);
int json_get_bool(const cJSON *obj, const char *key, int *out, const char *where);
int json_get_str(const cJSON *obj, const char *key, const char **out, const char *where);
int json_get_obj(const cJSON *obj, const char *key, const cJSON **out, const char *where);
int json_get_arr(const cJSON *obj, const char *key, const cJSON **out, const char *where);

/* True if the item is a number with an integral value that fits in int64. */
int json_is_int(const cJSON *item);

/* Serialises with indentation and a trailing newline; the caller frees. */
char *json_print(const cJSON *item);
/* Writes json_print(obj) to dir/name crash-safely. */
int json_write_file(const char *dir, const char *name, const cJSON *obj);

#endif
