/* A fast JSON reader for multi-megabyte files, parsing in place.
 *
 * core/json.h (cJSON) allocates one node per value and copies every string; on Qwen's 11 MB
 * tokenizer.json that alone takes ~125 ms. This reader decodes strings inside the caller's
 * buffer and lays all values out in one growing array in document order (a container's
 * children follow it; `end` is the index just past its subtree), so parsing that file takes
 * ~20 ms. It is strict RFC 8259: no comments, no trailing commas, strings must be valid UTF-8
 * without lone surrogates, depth is limited. Errors give line and column.
 *
 *   jin_doc d;
 *   if (jin_parse(&d, buf, len, "tokenizer.json")) ...   // buf is modified and must outlive d
 *   uint32_t model = jin_get(&d, 0, "model");
 *   for (uint32_t i = jin_first(&d, model); i; i = jin_next(&d, i)) ...  // 0 ends a walk
 */
#ifndef R1_CORE_JSON_INPLACE_H
#define R1_CORE_JSON_INPLACE_H

#include <stddef.h>
#include <stdint.h>

typedef enum { JIN_NULL, JIN_FALSE, JIN_TRUE, JIN_NUM, JIN_STR, JIN_ARR, JIN_OBJ } jin_type;

/* 28 bytes: a 10 MB file holds some 600k values, and the node array is most of what the reader
 * allocates, so strings are offsets into the text rather than pointers. */
typedef struct {
    uint32_t key_off, key_len; /* member name when the parent is an object (NUL-terminated) */
    uint32_t off, len; /* string contents (NUL-terminated, may hold NULs) or the number's text */
    uint32_t end;    /* index one past this value's subtree: the next sibling, if any */
    uint32_t n;      /* number of children of an array or object */
    uint8_t type;    /* jin_type */
} jin_node;

typedef struct {
    jin_node *nodes; /* nodes[0] is the root */
    uint32_t n_nodes, cap;
    const char *text;
} jin_doc;

/* Parses text[0..len) in place (text must be writable; the nodes refer into it). Records "<where>: invalid JSON at line L, column C: why". */
int jin_parse(jin_doc *d, char *text, size_t len, const char *where);
void jin_free(jin_doc *d);

/* Node navigation by index (0 means "none" for every index-returning call). */
static inline const jin_node *jin_at(const jin_doc *d, uint32_t i) { return &d->nodes[i]; }
/* A string's contents (or a number's text), and a member's name. */
static inline const char *jin_str(const jin_doc *d, const jin_node *n) { return d->text + n->off; }
static inline const char *jin_key(const jin_doc *d, const jin_node *n) {
    return d->text + n->key_off;
}
static inline uint32_t jin_first(const jin_doc *d, uint32_t i) {
    return d->nodes[i].n ? i + 1 : 0;
}
/* The next sibling of child i of parent p (0 when i was the last). */
static inline uint32_t jin_next_in(const jin_doc *d, uint32_t p, uint32_t i) {
    return d->nodes[i].end < d->nodes[p].end ? d->nodes[i].end : 0;
}
/* Member `key` of object i (the last one if repeated, as serde and cJSON-less readers do), or
 * 0 when i is not an object or has no such member. */
uint32_t jin_get(const jin_doc *d, uint32_t i, const char *key);
/* A member that must be absent/null or of type t: returns 1 and sets *out if present with type
 * t, 0 if absent or null, -1 with an error recorded ("<where>: "<path>" must be ...") otherwise. */
int jin_member(const jin_doc *d, uint32_t obj, const char *key, jin_type t, uint32_t *out,
               const char *where, const char *path);
/* Integer value of a number node; -1 if not an integer in [INT64_MIN, INT64_MAX]. */
int jin_int(const jin_doc *d, const jin_node *n, int64_t *out);
/* Numeric value of a number node. */
double jin_num(const jin_doc *d, const jin_node *n);
const char *jin_type_name(jin_type t);

#endif
