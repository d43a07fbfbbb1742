/* The text filters of curation: words, scripts, code blocks, paragraphs, repetition. Each is a
 * pure function of its text (distill/curate.h states the rules). */
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"
#include "core/hash.h"
#include "distill/curate.h"

static const char *const filter_names[FILTER_COUNT] = {
    [FILTER_DECONTAMINATED] = "decontaminated", [FILTER_TRUNCATED] = "truncated",
    [FILTER_UNCLOSED_THINK] = "unclosed_think", [FILTER_EMPTY_ANSWER] = "empty_answer",
    [FILTER_INCORRECT] = "incorrect",           [FILTER_MIXED_SCRIPT] = "mixed_script",
    [FILTER_CODE_BLOCK] = "code_block",         [FILTER_LONG_PARAGRAPH] = "long_paragraph",
    [FILTER_REPETITION] = "repetition",         [FILTER_DUPLICATE] = "duplicate",
    [FILTER_NEAR_DUPLICATE] = "near_duplicate", [FILTER_MAX_PER_PROMPT] = "max_per_prompt",
};
_Static_assert(sizeof filter_names / sizeof *filter_names == FILTER_COUNT, "a filter lacks a name");

const char *curate_filter_name(curate_filter f) {
    return f >= 0 && f < FILTER_COUNT ? filter_names[f] : "?";
}

int curate_filter_parse(const char *name) {
    for (int i = 0; i < FILTER_COUNT; i++)
        if (strcmp(filter_names[i], name) == 0) return i;
    return -1;
}

/* ---- code points and scripts ---------------------------------------------------------------- */

/* Decodes one code point at s[*i]; invalid bytes come back one at a time as -1. */
static int32_t next_cp(const char *s, size_t len, size_t *i) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + *i,
                                          (utf8proc_ssize_t)(len - *i), &cp);
    if (k < 1) {
        (*i)++;
        return -1;
    }
    *i += (size_t)k;
    return cp;
}

enum {
    SCRIPT_NONE = -1,
    SCRIPT_LATIN,
    SCRIPT_GREEK,
    SCRIPT_CYRILLIC,
    SCRIPT_ARMENIAN,
    SCRIPT_HEBREW,
    SCRIPT_ARABIC,
    SCRIPT_THAI,
    SCRIPT_LAO,
    SCRIPT_TIBETAN,
    SCRIPT_MYANMAR,
    SCRIPT_GEORGIAN,
    SCRIPT_HANGUL,
    SCRIPT_ETHIOPIC,
    SCRIPT_CJK,
    SCRIPT_OTHER,
    SCRIPT_INDIC0, /* + (cp - 0x900) / 0x80: Devanagari, Bengali, ..., Sinhala */
    SCRIPT_COUNT = SCRIPT_INDIC0 + 10
};

typedef struct {
    int32_t lo, hi;
    int script;
} script_range;

/* Unicode blocks of the scripts reasoning text is written in, sorted by start. */
static const script_range script_ranges[] = {
    {0x0041, 0x005A, SCRIPT_LATIN},    {0x0061, 0x007A, SCRIPT_LATIN},
    {0x00AA, 0x00AA, SCRIPT_LATIN},    {0x00BA, 0x00BA, SCRIPT_LATIN},
    {0x00C0, 0x024F, SCRIPT_LATIN},    {0x0250, 0x02AF, SCRIPT_LATIN},
    {0x0370, 0x03FF, SCRIPT_GREEK},    {0x0400, 0x052F, SCRIPT_CYRILLIC},
    {0x0530, 0x058F, SCRIPT_ARMENIAN}, {0x0590, 0x05FF, SCRIPT_HEBREW},
    {0x0600, 0x06FF, SCRIPT_ARABIC},   {0x0750, 0x077F, SCRIPT_ARABIC},
    {0x08A0, 0x08FF, SCRIPT_ARABIC},   {0x0900, 0x0DFF, SCRIPT_INDIC0},
    {0x0E00, 0x0E7F, SCRIPT_THAI},     {0x0E80, 0x0EFF, SCRIPT_LAO},
    {0x0F00, 0x0FFF, SCRIPT_TIBETAN},  {0x1000, 0x109F, SCRIPT_MYANMAR},
    {0x10A0, 0x10FF, SCRIPT_GEORGIAN}, {0x1100, 0x11FF, SCRIPT_HANGUL},
    {0x1200, 0x139F, SCRIPT_ETHIOPIC}, {0x1C80, 0x1C8F, SCRIPT_CYRILLIC},
    {0x1C90, 0x1CBF, SCRIPT_GEORGIAN}, {0x1E00, 0x1EFF, SCRIPT_LATIN},
    {0x1F00, 0x1FFF, SCRIPT_GREEK},    {0x2C60, 0x2C7F, SCRIPT_LATIN},
    {0x2DE0, 0x2DFF, SCRIPT_CYRILLIC}, {0x2E80, 0x2FDF, SCRIPT_CJK},
    {0x3005, 0x3007, SCRIPT_CJK},      {0x3021, 0x3029, SCRIPT_CJK},
    {0x3031, 0x3035, SCRIPT_CJK},      {0x3038, 0x303C, SCRIPT_CJK},
    {0x3040, 0x30FF, SCRIPT_CJK},      {0x3100, 0x312F, SCRIPT_CJK},
    {0x3130, 0x318F, SCRIPT_HANGUL},   {0x31A0, 0x31FF, SCRIPT_CJK},
    {0x3400, 0x4DBF, SCRIPT_CJK},      {0x4E00, 0x9FFF, SCRIPT_CJK},
    {0xA640, 0xA69F, SCRIPT_CYRILLIC}, {0xA720, 0xA7FF, SCRIPT_LATIN},
    {0xA960, 0xA97F, SCRIPT_HANGUL},   {0xAC00, 0xD7AF, SCRIPT_HANGUL},
    {0xD7B0, 0xD7FF, SCRIPT_HANGUL},   {0xF900, 0xFAFF, SCRIPT_CJK},
    {0xFB50, 0xFDFF, SCRIPT_ARABIC},   {0xFE70, 0xFEFF, SCRIPT_ARABIC},
    {0xFF21, 0xFF3A, SCRIPT_LATIN},    {0xFF41, 0xFF5A, SCRIPT_LATIN},
    {0xFF66, 0xFF9F, SCRIPT_CJK},      {0xFFA0, 0xFFDC, SCRIPT_HANGUL},
    {0x20000, 0x3FFFF, SCRIPT_CJK},
};

static int block_script(int32_t cp) {
    int lo = 0, hi = (int)(sizeof script_ranges / sizeof *script_ranges) - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < script_ranges[mid].lo) hi = mid - 1;
        else if (cp > script_ranges[mid].hi) lo = mid + 1;
        else {
            int s = script_ranges[mid].script;
            return s == SCRIPT_INDIC0 ? SCRIPT_INDIC0 + (cp - 0x900) / 0x80 : s;
        }
    }
    return SCRIPT_NONE;
}

static int is_letter_cat(utf8proc_category_t c) {
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT ||
           c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_LO;
}

static int is_mark_cat(utf8proc_category_t c) {
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME;
}

/* The script a code point counts toward: a letter's block (SCRIPT_OTHER outside the known
 * blocks), a combining mark's block when it belongs to a script, else SCRIPT_NONE. */
static int letter_script(int32_t cp) {
    if (cp < 0) return SCRIPT_NONE;
    if (cp < 0x80) {
        return ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') ? SCRIPT_LATIN : SCRIPT_NONE;
    }
    utf8proc_category_t c = utf8proc_category(cp);
    int s = block_script(cp);
    if (is_letter_cat(c)) return s == SCRIPT_NONE ? SCRIPT_OTHER : s;
    if (is_mark_cat(c)) return s; /* Indic vowel signs, Thai tone marks; not U+0300 accents */
    return SCRIPT_NONE;
}

/* Scripts whose words are not separated by spaces: each character is a word. */
static int is_word_per_char(int32_t cp) {
    if (cp < 0x2E80) return 0; /* below the CJK radicals: no such script */
    int s = block_script(cp);
    if (s == SCRIPT_CJK) return 1;
    return cp >= 0xAC00 && cp <= 0xD7AF; /* Hangul syllables */
}

double text_mixed_script_share(const char *text, size_t len, int64_t *minority) {
    int64_t count[SCRIPT_COUNT] = {0}, total = 0;
    size_t i = 0;
    int32_t prev = 0;
    while (i < len) {
        int32_t cp = next_cp(text, len, &i);
        int s = letter_script(cp);
        if (s == SCRIPT_NONE) {
            prev = cp;
            continue;
        }
        /* A run of letters of one script (marks of that script included). */
        int64_t run = 1;
        while (i < len) {
            size_t k = i;
            if (letter_script(next_cp(text, len, &k)) != s) break;
            run++;
            i = k;
        }
        int latex = prev == '\\' && s == SCRIPT_LATIN;
        if (!latex && run >= 2) {
            count[s] += run;
            total += run;
        }
        prev = 'a';
    }
    int64_t best = 0;
    for (int s = 0; s < SCRIPT_COUNT; s++)
        if (count[s] > best) best = count[s];
    if (minority) *minority = total - best;
    return total ? (double)(total - best) / (double)total : 0.0;
}

/* ---- words ---------------------------------------------------------------------------------- */

static void words_push(word_list *w, uint64_t h) {
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 256;
        w->h = xrealloc(w->h, sizeof(uint64_t) * (size_t)w->cap);
    }
    w->h[w->n++] = h;
}

static int is_space_cp(int32_t cp) {
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\v' || cp == '\f') return 1;
    if (cp < 0x80) return 0;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

static int is_math_sign(int32_t cp) {
    switch (cp) {
    case '+': case '-': case '*': case '/': case '=': case '^': case '<': case '>': case '(':
    case ')': case '[': case ']': case '{': case '}': case '|': case '\\': case '%':
        return 1;
    default:
        return 0;
    }
}

/* In WORDS_FOLD mode: a letter, digit or mark (invalid bytes count as letters). */
static int is_alnum_cp(int32_t cp) {
    if (cp < 0) return 1;
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
    utf8proc_category_t c = utf8proc_category(cp);
    return is_letter_cat(c) || is_mark_cat(c) || c == UTF8PROC_CATEGORY_ND ||
           c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

/* Feeds one code point (or invalid byte b) into a word hash. */
static uint64_t word_feed(uint64_t h, int32_t cp, unsigned char b, int fold) {
    unsigned char buf[5];
    size_t n;
    if (cp < 0) {
        buf[0] = 0xFF; /* never a UTF-8 byte: an invalid byte differs from any code point */
        buf[1] = b;
        n = 2;
    } else {
        if (fold && cp >= 'A' && cp <= 'Z') cp += 32;
        n = (size_t)utf8proc_encode_char(cp, buf);
    }
    return hash_fnv1a64_update(h, buf, n);
}

void words_split(word_list *out, const char *text, size_t len, words_mode mode) {
    out->n = 0;
    const int fold = mode == WORDS_FOLD;
    uint64_t h = HASH_FNV1A64_INIT;
    int in_word = 0;
    size_t i = 0;
    while (i < len) {
        size_t at = i;
        int32_t cp = next_cp(text, len, &i);
        int part, alone;
        if (fold) {
            alone = is_math_sign(cp) || (cp >= 0 && is_word_per_char(cp));
            part = !alone && is_alnum_cp(cp);
        } else {
            alone = cp >= 0 && is_word_per_char(cp);
            part = !alone && !is_space_cp(cp);
        }
        if ((!part || alone) && in_word) {
            words_push(out, hash_mix64(h));
            in_word = 0;
            h = HASH_FNV1A64_INIT;
        }
        if (alone) {
            words_push(out, hash_mix64(word_feed(HASH_FNV1A64_INIT, cp, 0, fold)));
        } else if (part) {
            h = word_feed(h, cp, (unsigned char)text[at], fold);
            in_word = 1;
        }
    }
    if (in_word) words_push(out, hash_mix64(h));
}

void word_list_free(word_list *w) {
    free(w->h);
    memset(w, 0, sizeof *w);
}

uint64_t words_ngram_hash(const uint64_t *w, int n) {
    uint64_t h = hash_mix64(HASH_GOLDEN64 ^ (uint64_t)n);
    for (int i = 0; i < n; i++) h = hash_mix64(h ^ w[i]) + HASH_GOLDEN64;
    return h;
}

/* ---- lines: code blocks and paragraphs ------------------------------------------------------ */

static int starts(const char *s, size_t n, const char *prefix) {
    size_t k = strlen(prefix);
    return n >= k && memcmp(s, prefix, k) == 0;
}

/* A line (without its newline) that reads as code. */
static int code_line(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    if (n == 0) return 0;
    static const char *const keys[] = {
        "def ", "class ", "import ", "#include", "#define", "return ", "return;", "print(",
        "printf(", "cout <<", "std::", "console.log", "int main", "public ", "private ",
        "static ", "elif ", "else:", "try:", "except ", "except:", "function ", "var ", "const ",
        "fn ", "let mut ", "using namespace", "for (", "for(", "while (", "while(", "if (",
        "} else", "#!/"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        if (starts(s, n, keys[k])) return 1;
    if (starts(s, n, "from ") && n > 12) {
        for (size_t k = 5; k + 8 <= n; k++)
            if (memcmp(s + k, " import ", 8) == 0) return 1;
    }
    if ((starts(s, n, "for ") || starts(s, n, "if ") || starts(s, n, "while ") ||
         starts(s, n, "with ")) && s[n - 1] == ':')
        return 1;
    if (n <= 2 && (s[0] == '{' || s[0] == '}')) return 1;
    return s[n - 1] == ';' || s[n - 1] == '{';
}

int text_has_code_block(const char *text, size_t len, int min_lines) {
    int run = 0;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len;
        const char *s = text + i;
        size_t n = e - i;
        size_t k = 0;
        while (k < n && (s[k] == ' ' || s[k] == '\t')) k++;
        if (starts(s + k, n - k, "```") || starts(s + k, n - k, "~~~")) return 1;
        run = code_line(s, n) ? run + 1 : 0;
        if (min_lines > 0 && run >= min_lines) return 1;
        i = e + 1;
    }
    return 0;
}

static int blank_line(const char *s, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (s[k] != ' ' && s[k] != '\t' && s[k] != '\r') return 0;
    return 1;
}

/* Code points in s[0..n) (invalid bytes count one each). */
static int64_t cp_count(const char *s, size_t n) {
    int64_t c = 0;
    for (size_t k = 0; k < n; k++) c += ((unsigned char)s[k] & 0xC0) != 0x80;
    return c;
}

int64_t text_longest_paragraph(const char *text, size_t len) {
    int64_t best = 0, cur = 0;
    int open = 0; /* a paragraph has started; cur counts it, newlines between its lines too */
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len;
        if (blank_line(text + i, e - i)) {
            open = 0;
            cur = 0;
        } else {
            cur += (open ? 1 : 0) + cp_count(text + i, e - i);
            open = 1;
            if (cur > best) best = cur;
        }
        i = e + 1;
    }
    return best;
}

/* ---- repetition ----------------------------------------------------------------------------- */

double text_repetition_share(const char *text, size_t len, int n) {
    if (n < 1) return 0.0;
    word_list w = {0};
    words_split(&w, text, len, WORDS_RAW);
    if (w.n < n) {
        word_list_free(&w);
        return 0.0;
    }
    u64_set seen = {0};
    int64_t covered = 0, covered_to = 0; /* words [0, covered_to) already decided */
    for (int64_t i = 0; i + n <= w.n; i++) {
        uint64_t g = words_ngram_hash(w.h + i, n);
        if (!u64_set_add(&seen, g)) { /* seen before: words i..i+n-1 repeat */
            int64_t from = i > covered_to ? i : covered_to;
            covered += i + n - from;
            covered_to = i + n;
        }
    }
    double share = (double)covered / (double)w.n;
    u64_set_free(&seen);
    word_list_free(&w);
    return share;
}
