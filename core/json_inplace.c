#include "core/json_inplace.h"
#include "core/utf8.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

enum { JIN_MAX_DEPTH = 256 };

typedef struct {
    jin_doc *d;
    char *text;
    size_t len, pos;
    const char *where;
    const char *why; /* set on the first error */
    size_t err_pos;
    size_t line, line_start; /* raw newlines only occur between tokens, counted in skip_ws */
} parser;

static int fail(parser *p, size_t pos, const char *why) {
    if (!p->why) {
        p->why = why;
        p->err_pos = pos;
    }
    return -1;
}

static uint32_t new_node(parser *p, jin_type t) {
    jin_doc *d = p->d;
    if (d->n_nodes == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 1024;
        d->nodes = xrealloc(d->nodes, sizeof(jin_node) * d->cap);
    }
    d->nodes[d->n_nodes] = (jin_node){.type = (uint8_t)t};
    return d->n_nodes++;
}

/* Eight bytes at a time: pretty-printed files are mostly indentation. */
static void skip_ws_slow(parser *p) {
    const char *t = p->text;
    size_t i = p->pos, n = p->len;
    for (;;) {
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, t + i, 8);
            uint64_t x = w ^ 0x2020202020202020ull; /* zero bytes where there are spaces */
            if (x) {
                i += (size_t)__builtin_ctzll(x) >> 3; /* little-endian: the first non-space */
                break;
            }
            i += 8;
        }
        if (i >= n) break;
        char c = t[i];
        if (c == ' ' || c == '\t' || c == '\r') {
            i++;
        } else if (c == '\n') {
            p->line++;
            p->line_start = i + 1;
            i++;
        } else {
            break;
        }
    }
    p->pos = i;
}

/* Called around every token, and most of the time there is no whitespace to skip. */
static inline void skip_ws(parser *p) {
    if (p->pos < p->len && (unsigned char)p->text[p->pos] > ' ') return;
    skip_ws_slow(p);
}

static int hex4(const char *s, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *w, uint32_t cp) {
    if (cp < 0x80) {
        w[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        w[0] = (char)(0xC0 | (cp >> 6));
        w[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        w[0] = (char)(0xE0 | (cp >> 12));
        w[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        w[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    w[0] = (char)(0xF0 | (cp >> 18));
    w[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    w[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    w[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the string starting after the opening quote at p->pos, in place. The decoded form is
 * never longer than the escaped one, so it is written over the source and NUL-terminated where
 * the closing quote (or earlier) was. */
static int parse_string(parser *p, uint32_t *out_off, uint32_t *out_len) {
    char *t = p->text;
    size_t r = p->pos, w = p->pos, n = p->len;
    const size_t start = p->pos;
    /* Most strings have no escape: scan them without writing, eight bytes at a time for the
     * first byte that is a quote, a backslash, a control character or non-ASCII. */
    while (r + 8 <= n) {
        uint64_t x;
        memcpy(&x, t + r, 8);
        const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
        uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
        /* Zero-byte tests for '"' and '\\', a borrow for bytes below 0x20, the top bit for
         * non-ASCII; only the lowest flagged byte is exact, and only it is used. */
        uint64_t special = ((q - ones) & ~q) | ((b - ones) & ~b) | (x - ones * 0x20) | x;
        special &= high;
        if (special) {
            r += (size_t)__builtin_ctzll(special) >> 3;
            break;
        }
        r += 8;
    }
    while (r < n) {
        unsigned char c = (unsigned char)t[r];
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        r++;
    }
    w = r;
    for (;;) {
        /* Plain ASCII runs, moved down once an escape has shortened the string. */
        while (r < n) {
            unsigned char c = (unsigned char)t[r];
            if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
            t[w++] = (char)c;
            r++;
        }
        if (r >= n) return fail(p, r, "unterminated string");
        unsigned char c = (unsigned char)t[r];
        if (c == '"') break;
        if (c < 0x20) return fail(p, r, "control character in a string (escape it)");
        if (c >= 0x80) {
            size_t k = utf8_len_at((const unsigned char *)t + r, n - r);
            if (!k) return fail(p, r, "invalid UTF-8 in a string");
            if (w != r) memmove(t + w, t + r, k);
            r += k, w += k;
            continue;
        }
        /* Backslash escape. */
        if (r + 1 >= n) return fail(p, r, "unterminated escape");
        char e = t[r + 1];
        r += 2;
        switch (e) {
        case '"': t[w++] = '"'; break;
        case '\\': t[w++] = '\\'; break;
        case '/': t[w++] = '/'; break;
        case 'b': t[w++] = '\b'; break;
        case 'f': t[w++] = '\f'; break;
        case 'n': t[w++] = '\n'; break;
        case 'r': t[w++] = '\r'; break;
        case 't': t[w++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (r + 4 > n || hex4(t + r, &cp)) return fail(p, r, "bad \\u escape");
            r += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(p, r - 6, "lone low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (r + 6 > n || t[r] != '\\' || t[r + 1] != 'u' || hex4(t + r + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return fail(p, r - 6, "lone high surrogate");
                r += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            w += put_utf8(t + w, cp);
            break;
        }
        default: return fail(p, r - 2, "unknown escape");
        }
    }
    if (w - start > UINT32_MAX) return fail(p, start, "string too long");
    t[w] = 0; /* w <= r, and t[r] is the closing quote we consume now */
    *out_off = (uint32_t)start;
    *out_len = (uint32_t)(w - start);
    p->pos = r + 1;
    return 0;
}

static int parse_number(parser *p, uint32_t node) {
    const char *t = p->text;
    size_t i = p->pos, n = p->len, s = i;
    if (i < n && t[i] == '-') i++;
    if (i >= n || t[i] < '0' || t[i] > '9') return fail(p, i, "bad number");
    if (t[i] == '0') i++;
    else
        while (i < n && t[i] >= '0' && t[i] <= '9') i++;
    if (i < n && t[i] == '.') {
        i++;
        if (i >= n || t[i] < '0' || t[i] > '9') return fail(p, i, "bad number");
        while (i < n && t[i] >= '0' && t[i] <= '9') i++;
    }
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < n && (t[i] == '+' || t[i] == '-')) i++;
        if (i >= n || t[i] < '0' || t[i] > '9') return fail(p, i, "bad number");
        while (i < n && t[i] >= '0' && t[i] <= '9') i++;
    }
    if (i - s > 4096) return fail(p, s, "number too long");
    jin_node *nd = &p->d->nodes[node];
    nd->off = (uint32_t)s;
    nd->len = (uint32_t)(i - s);
    p->pos = i;
    return 0;
}

static int literal(parser *p, const char *word, size_t k) {
    if (p->len - p->pos < k || memcmp(p->text + p->pos, word, k) != 0)
        return fail(p, p->pos, "unexpected character");
    p->pos += k;
    return 0;
}

static int parse_value(parser *p, int depth, uint32_t key_off, uint32_t key_len);

static int parse_container(parser *p, int depth, uint32_t node, int is_obj) {
    char close = is_obj ? '}' : ']';
    uint32_t count = 0;
    p->pos++; /* the opening bracket */
    skip_ws(p);
    if (p->pos < p->len && p->text[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            uint32_t key_off = 0, key_len = 0;
            if (is_obj) {
                skip_ws(p);
                if (p->pos >= p->len || p->text[p->pos] != '"')
                    return fail(p, p->pos, "expected a member name");
                p->pos++;
                if (parse_string(p, &key_off, &key_len)) return -1;
                skip_ws(p);
                if (p->pos >= p->len || p->text[p->pos] != ':')
                    return fail(p, p->pos, "expected ':'");
                p->pos++;
            }
            if (parse_value(p, depth + 1, key_off, key_len)) return -1;
            if (count == UINT32_MAX) return fail(p, p->pos, "too many members");
            count++;
            skip_ws(p);
            if (p->pos >= p->len) return fail(p, p->pos, "unexpected end of input");
            char c = p->text[p->pos++];
            if (c == close) break;
            if (c != ',') return fail(p, p->pos - 1, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    jin_node *nd = &p->d->nodes[node];
    nd->n = count;
    return 0;
}

static int parse_value(parser *p, int depth, uint32_t key_off, uint32_t key_len) {
    if (depth > JIN_MAX_DEPTH) return fail(p, p->pos, "nested too deeply");
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, p->pos, "unexpected end of input");
    char c = p->text[p->pos];
    uint32_t node;
    int rc = 0;
    switch (c) {
    case '{':
    case '[':
        node = new_node(p, c == '{' ? JIN_OBJ : JIN_ARR);
        rc = parse_container(p, depth, node, c == '{');
        break;
    case '"': {
        node = new_node(p, JIN_STR);
        uint32_t off, n;
        p->pos++;
        rc = parse_string(p, &off, &n);
        if (!rc) {
            p->d->nodes[node].off = off;
            p->d->nodes[node].len = n;
        }
        break;
    }
    case 't': node = new_node(p, JIN_TRUE); rc = literal(p, "true", 4); break;
    case 'f': node = new_node(p, JIN_FALSE); rc = literal(p, "false", 5); break;
    case 'n': node = new_node(p, JIN_NULL); rc = literal(p, "null", 4); break;
    default:
        if (c != '-' && (c < '0' || c > '9')) return fail(p, p->pos, "unexpected character");
        node = new_node(p, JIN_NUM);
        rc = parse_number(p, node);
        break;
    }
    if (rc) return rc;
    jin_node *nd = &p->d->nodes[node];
    nd->key_off = key_off;
    nd->key_len = key_len;
    nd->end = p->d->n_nodes;
    return 0;
}

int jin_parse(jin_doc *d, char *text, size_t len, const char *where) {
    memset(d, 0, sizeof *d);
    /* Sized so that tokenizer.json files (about one value per 16 bytes) need no regrowth. */
    d->cap = (uint32_t)(len / 16 < (1u << 28) ? len / 16 + 64 : 1u << 28);
    d->nodes = xmalloc(sizeof *d->nodes * d->cap);
    if (len >= UINT32_MAX) return err_fail(R1_EINPUT, where, "larger than 4 GiB");
    d->text = text;
    parser p = {.d = d, .text = text, .len = len, .where = where};
    int rc = parse_value(&p, 0, 0, 0);
    if (!rc) {
        skip_ws(&p);
        if (p.pos != len) rc = fail(&p, p.pos, "text after the JSON value");
    }
    if (rc) {
        /* Lines were counted while skipping whitespace (strings decoded in place may now hold
         * newline bytes, so the text cannot be recounted); the column is in bytes. */
        size_t col = p.err_pos >= p.line_start ? p.err_pos - p.line_start + 1 : 1;
        jin_free(d);
        if (len == 0) return err_fail(R1_EINPUT, where, "invalid JSON: the file is empty");
        return err_fail(R1_EINPUT, where, "invalid JSON at line %zu, column %zu: %s", p.line + 1,
                        col, p.why);
    }
    return R1_OK;
}

void jin_free(jin_doc *d) {
    free(d->nodes);
    memset(d, 0, sizeof *d);
}

uint32_t jin_get(const jin_doc *d, uint32_t i, const char *key) {
    if (d->nodes[i].type != JIN_OBJ) return 0;
    size_t k = strlen(key);
    uint32_t found = 0;
    for (uint32_t c = jin_first(d, i); c; c = jin_next_in(d, i, c)) {
        const jin_node *n = &d->nodes[c];
        if (n->key_len == k && memcmp(d->text + n->key_off, key, k) == 0) found = c;
    }
    return found;
}

const char *jin_type_name(jin_type t) {
    switch (t) {
    case JIN_NULL: return "null";
    case JIN_FALSE:
    case JIN_TRUE: return "a boolean";
    case JIN_NUM: return "a number";
    case JIN_STR: return "a string";
    case JIN_ARR: return "an array";
    case JIN_OBJ: return "an object";
    }
    return "?";
}

int jin_member(const jin_doc *d, uint32_t obj, const char *key, jin_type t, uint32_t *out,
               const char *where, const char *path) {
    uint32_t i = jin_get(d, obj, key);
    if (!i || d->nodes[i].type == JIN_NULL) return 0;
    jin_type have = (jin_type)d->nodes[i].type;
    int ok = have == t || (t == JIN_TRUE && have == JIN_FALSE) || (t == JIN_FALSE && have == JIN_TRUE);
    if (!ok) {
        err_fail(R1_EINPUT, where, "\"%s%s%s\" must be %s, not %s", path ? path : "",
                 path ? "." : "", key, jin_type_name(t), jin_type_name(have));
        return -1;
    }
    *out = i;
    return 1;
}

int jin_int(const jin_doc *d, const jin_node *n, int64_t *out) {
    if (n->type != JIN_NUM) return -1;
    const char *s = d->text + n->off;
    uint32_t i = 0, len = n->len;
    int neg = 0;
    if (i < len && s[i] == '-') neg = 1, i++;
    if (i == len) return -1;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1; /* a fraction or exponent */
        uint64_t dgt = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - dgt) / 10) return -1;
        v = v * 10 + dgt;
    }
    if (!neg && v > (uint64_t)INT64_MAX) return -1;
    if (neg && v > (uint64_t)INT64_MAX + 1) return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

double jin_num(const jin_doc *d, const jin_node *n) {
    char buf[4100];
    uint32_t k = n->len < sizeof buf - 1 ? n->len : (uint32_t)sizeof buf - 1;
    memcpy(buf, d->text + n->off, k);
    buf[k] = 0;
    return strtod(buf, NULL);
}
