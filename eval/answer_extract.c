/* Finding the final answer in a model response (R1 protocol: the answer follows the reasoning).
 *
 *   1. Only the text after the last "</think>" counts; a response that opens <think> and never
 *      closes it has no answer (it was cut off while reasoning).
 *   2. The last \boxed{...} or \fbox{...} (nested braces allowed; "\boxed 5" too). Boxes that
 *      end the response side by side ("\boxed{3}, \boxed{-5}") form one list answer.
 *   3. Without a box, the first of these that occurs, at its last occurrence:
 *      "... answer is X" (also "The final answer is: X"), "Answer: X" (also "**Answer:** X"),
 *      "#### X" (GSM8K); X runs to the end of its line or sentence, or is the $...$ that
 *      starts it.
 *   4. Else the last number in the text.
 * For a multiple-choice gold, the answer is a letter A..J: from the last box, else from the
 * answer phrases, else from the last line: a line that is only a letter ("(B)", "**B**"), else
 * the last "(X)" in it. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/answer_parts.h"
#include "eval/eval.h"

enum { MAX_BOX_JOIN = 8 };

typedef struct {
    size_t start, end;         /* the whole "\boxed{...}" */
    size_t inner, inner_end;   /* its content */
} box;

/* Last occurrence of needle in hay[0..n), case-insensitive; NULL if none. */
static const char *last_icase(const char *hay, size_t n, const char *needle) {
    size_t m = strlen(needle);
    if (m == 0 || m > n) return NULL;
    for (size_t i = n - m + 1; i-- > 0;)
        if (strncasecmp(hay + i, needle, m) == 0) return hay + i;
    return NULL;
}

static const char *last_exact(const char *hay, size_t n, const char *needle) {
    size_t m = strlen(needle);
    if (m == 0 || m > n) return NULL;
    for (size_t i = n - m + 1; i-- > 0;)
        if (memcmp(hay + i, needle, m) == 0) return hay + i;
    return NULL;
}

/* For every '{' of t, the index of its matching '}' (or SIZE_MAX), in one pass: scanning forward
 * from each \boxed separately would be quadratic in a response full of unclosed boxes.
 * A backslash escapes the next character ("\{" and "\}" are not braces). */
static size_t *match_braces(const char *t, size_t n) {
    size_t *close_of = xmalloc(sizeof(size_t) * (n ? n : 1));
    size_t *stack = xmalloc(sizeof(size_t) * (n ? n : 1));
    size_t depth = 0;
    for (size_t i = 0; i < n; i++) {
        close_of[i] = SIZE_MAX;
        if (t[i] == '\\' && i + 1 < n) {
            close_of[++i] = SIZE_MAX;
        } else if (t[i] == '{') {
            stack[depth++] = i;
        } else if (t[i] == '}' && depth > 0) {
            close_of[stack[--depth]] = i;
        }
    }
    free(stack);
    return close_of;
}

/* Parses a box whose command starts at t[i] ("\boxed" or "\fbox", of length cmd_len). */
static int parse_box(const char *t, size_t n, const size_t *close_of, size_t i, size_t cmd_len,
                     box *b) {
    size_t k = i + cmd_len;
    if (k < n && isalpha((unsigned char)t[k])) return 0; /* "\boxedfoo" is another command */
    while (k < n && (t[k] == ' ' || t[k] == '\t')) k++;
    if (k >= n) return 0;
    if (t[k] == '{') {
        size_t j = close_of[k];
        if (j == SIZE_MAX) return 0; /* unbalanced: the response was cut inside the box */
        *b = (box){i, j + 1, k + 1, j};
        return 1;
    }
    /* "\boxed 5": one token */
    size_t j = k;
    while (j < n && !isspace((unsigned char)t[j]) && t[j] != '$') j++;
    if (j == k) return 0;
    *b = (box){i, j, k, j};
    return 1;
}

/* Is t[a..b) only separators between side-by-side boxes: spaces, $, commas, "and", "or",
 * \quad, \text{ and }? (No newline and no full stop: boxes in separate sentences are separate
 * answers, and the last one wins.) */
static int box_gap(const char *t, size_t a, size_t b) {
    static const char *const SEP[] = {"\\text{", "\\mathrm{", "\\quad", "\\qquad", "\\,",
                                      "\\;", "\\(", "\\)", "and", "or", NULL};
    size_t i = a;
    if (b - a > 40) return 0;
    while (i < b) {
        char c = t[i];
        if (c == ' ' || c == '\t' || c == '$' || c == ',' || c == ';' || c == '}') {
            i++;
            continue;
        }
        int hit = 0;
        for (int k = 0; SEP[k] && !hit; k++) {
            size_t m = strlen(SEP[k]);
            if (i + m <= b && memcmp(t + i, SEP[k], m) == 0) {
                i += m;
                hit = 1;
            }
        }
        if (!hit) return 0;
    }
    return 1;
}

/* The content of the last box, or of the last run of side-by-side boxes joined by ", ". */
static char *last_boxed(const char *t, size_t n) {
    box ring[MAX_BOX_JOIN];
    int count = 0; /* boxes seen, ring holds the last MAX_BOX_JOIN */
    if (!strstr(t, "\\boxed") && !strstr(t, "\\fbox")) return NULL;
    size_t *close_of = match_braces(t, n);
    for (size_t i = 0; i + 5 <= n; i++) {
        if (t[i] != '\\') continue;
        box b;
        int ok = 0;
        if (strncmp(t + i, "\\boxed", 6) == 0) ok = parse_box(t, n, close_of, i, 6, &b);
        else if (strncmp(t + i, "\\fbox", 5) == 0) ok = parse_box(t, n, close_of, i, 5, &b);
        if (!ok) continue;
        ring[count % MAX_BOX_JOIN] = b;
        count++;
        i = b.end - 1; /* boxes inside a box belong to it */
    }
    free(close_of);
    if (count == 0) return NULL;
    int first = count - 1; /* the run of side-by-side boxes ending with the last one */
    while (first > 0 && count - first < MAX_BOX_JOIN) {
        const box *prev = &ring[(first - 1) % MAX_BOX_JOIN], *cur = &ring[first % MAX_BOX_JOIN];
        if (!box_gap(t, prev->end, cur->start)) break;
        first--;
    }
    sbuf out = {0};
    for (int k = first; k < count; k++) {
        const box *b = &ring[k % MAX_BOX_JOIN];
        char *item = xstrndup(t + b->inner, b->inner_end - b->inner);
        /* the same answer boxed twice in a row, or in two equal forms ("15\frac{39}{40}, or
         * \frac{639}{40}"), is one answer */
        int dup = 0;
        for (int j = first; j < k && !dup; j++) {
            const box *o = &ring[j % MAX_BOX_JOIN];
            char *other = xstrndup(t + o->inner, o->inner_end - o->inner);
            dup = strcmp(other, item) == 0 || answer_equiv(other, item, ANSWER_MATH);
            free(other);
        }
        if (!dup) {
            if (out.n) sb_puts(&out, ", ");
            sb_puts(&out, item);
        }
        free(item);
    }
    return sb_take(&out);
}

static char *trim_copy(const char *s, size_t n) {
    while (n > 0 && isspace((unsigned char)*s)) s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    return xstrndup(s, n);
}

/* The answer after a marker: a $...$, \(...\) or \[...\] that starts it, else the rest of the
 * line up to the end of the sentence. Markdown bold and a leading ':' are skipped. */
static char *answer_after(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == ':' || *p == '*')) p++;
    static const char *const OPEN[] = {"$$", "$", "\\(", "\\["};
    static const char *const CLOSE[] = {"$$", "$", "\\)", "\\]"};
    for (int k = 0; k < 4; k++) {
        size_t m = strlen(OPEN[k]);
        if ((size_t)(end - p) > m && memcmp(p, OPEN[k], m) == 0) {
            const char *q = p + m;
            size_t cm = strlen(CLOSE[k]);
            for (const char *c = q; c + cm <= end; c++)
                if (memcmp(c, CLOSE[k], cm) == 0 && !(c > q && c[-1] == '\\')) {
                    char *r = trim_copy(q, (size_t)(c - q));
                    if (r[0]) return r;
                    free(r);
                    break;
                }
            break;
        }
    }
    const char *e = p;
    while (e < end && *e != '\n') {
        /* a sentence ends at ". " or a final '.', but not inside a number ("3.5") */
        if (*e == '.' && (e + 1 == end || e[1] == ' ' || e[1] == '\n')) break;
        e++;
    }
    char *r = trim_copy(p, (size_t)(e - p));
    size_t n = strlen(r);
    while (n > 0 && (r[n - 1] == '*' || r[n - 1] == '.' || r[n - 1] == ' ')) r[--n] = 0;
    return r;
}

/* The text after `marker` at its last occurrence, or NULL. */
static char *after_marker(const char *t, size_t n, const char *marker, int icase) {
    const char *m = icase ? last_icase(t, n, marker) : last_exact(t, n, marker);
    if (!m) return NULL;
    char *r = answer_after(m + strlen(marker), t + n);
    if (!r[0]) {
        free(r);
        return NULL;
    }
    return r;
}

/* The last number in the text: "-12", "3.5", "1,234", ".5", "3/4". */
static char *last_number(const char *t, size_t n) {
    size_t best_s = 0, best_e = 0;
    int found = 0;
    for (size_t i = 0; i < n;) {
        int starts = isdigit((unsigned char)t[i]) ||
                     (t[i] == '.' && i + 1 < n && isdigit((unsigned char)t[i + 1]));
        if (!starts) {
            i++;
            continue;
        }
        size_t s = i, e = i;
        if (s > 0 && t[s - 1] == '-' && (s == 1 || !isalnum((unsigned char)t[s - 2]))) s--;
        while (e < n && isdigit((unsigned char)t[e])) e++;
        /* thousands groups: ",ddd" not followed by another digit */
        while (e + 4 <= n && t[e] == ',' && isdigit((unsigned char)t[e + 1]) &&
               isdigit((unsigned char)t[e + 2]) && isdigit((unsigned char)t[e + 3]) &&
               (e + 4 == n || !isdigit((unsigned char)t[e + 4])))
            e += 4;
        if (e + 1 < n && t[e] == '.' && isdigit((unsigned char)t[e + 1])) {
            e++;
            while (e < n && isdigit((unsigned char)t[e])) e++;
        }
        if (e + 1 < n && t[e] == '/' && isdigit((unsigned char)t[e + 1])) {
            e++;
            while (e < n && isdigit((unsigned char)t[e])) e++;
        }
        best_s = s;
        best_e = e;
        found = 1;
        i = e;
    }
    return found ? xstrndup(t + best_s, best_e - best_s) : NULL;
}

/* The text the answer is taken from: after the last </think>, or NULL when the response is
 * still inside an unclosed <think>. */
static const char *answer_region(const char *response) {
    const char *close = NULL;
    for (const char *p = strstr(response, "</think>"); p; p = strstr(p + 1, "</think>")) close = p;
    if (close) return close + strlen("</think>");
    if (strstr(response, "<think>")) return NULL;
    return response;
}

static int extract_choice(char **out, const char *t, size_t n) {
    int letter = 0;
    char *boxed = last_boxed(t, n);
    if (boxed) letter = choice_letter(boxed, 0);
    free(boxed);
    static const char *const MARKERS[] = {"answer is", "answer:", NULL};
    for (int k = 0; MARKERS[k] && !letter; k++) {
        char *r = after_marker(t, n, MARKERS[k], 1);
        if (r) {
            letter = choice_letter(r, 0);
            /* "The answer is B because ...": a lone capital letter as the first word */
            if (!letter && r[0] >= 'A' && r[0] <= 'J' && (r[1] == ' ' || r[1] == ','))
                letter = r[0];
        }
        free(r);
    }
    if (!letter) {
        /* The last line: only the letter ("(B)", "**B**"), else its last "(X)" ("The symbol
         * for antimony is (B) Sb."). */
        size_t e = n;
        while (e > 0 && isspace((unsigned char)t[e - 1])) e--;
        size_t s = e;
        while (s > 0 && t[s - 1] != '\n') s--;
        if (e > s && e - s <= 16) {
            char *line = xstrndup(t + s, e - s);
            letter = choice_letter(line, 1);
            free(line);
        }
        for (size_t i = e; !letter && i >= s + 3; i--)
            if (t[i - 3] == '(' && t[i - 2] >= 'A' && t[i - 2] <= 'J' && t[i - 1] == ')')
                letter = t[i - 2];
    }
    if (!letter) return 0;
    *out = xasprintf("%c", letter);
    return 1;
}

int answer_extract(char **out, const char *response, answer_kind kind) {
    *out = NULL;
    if (!response) return 0;
    const char *t = answer_region(response);
    if (!t) return 0;
    size_t n = strlen(t);
    if (kind == ANSWER_CHOICE) return extract_choice(out, t, n);
    char *r = last_boxed(t, n);
    if (r) {
        char *trimmed = trim_copy(r, strlen(r));
        free(r);
        if (trimmed[0]) {
            *out = trimmed;
            return 1;
        }
        free(trimmed);
    }
    static const struct {
        const char *marker;
        int icase;
    } FALLBACKS[] = {{"answer is", 1}, {"answer:", 1}, {"####", 0}};
    for (int k = 0; k < 3; k++) {
        r = after_marker(t, n, FALLBACKS[k].marker, FALLBACKS[k].icase);
        if (r) {
            *out = r;
            return 1;
        }
    }
    r = last_number(t, n);
    if (r) {
        *out = r;
        return 1;
    }
    return 0;
}
