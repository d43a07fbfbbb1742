/* The text filters and hash indexes of curation (distill/curate.h) on hand-made texts whose
 * outcome is worked out by hand in the comments. */
#include "distill/curate.h"
#include "tests/unit/testing.h"

static int64_t nwords(const char *s, words_mode m) {
    word_list w = {0};
    words_split(&w, s, strlen(s), m);
    int64_t n = w.n;
    word_list_free(&w);
    return n;
}

static int same_words(const char *a, const char *b, words_mode m) {
    word_list x = {0}, y = {0};
    words_split(&x, a, strlen(a), m);
    words_split(&y, b, strlen(b), m);
    int same = x.n == y.n && (x.n == 0 || memcmp(x.h, y.h, sizeof(uint64_t) * (size_t)x.n) == 0);
    word_list_free(&x);
    word_list_free(&y);
    return same;
}

static void test_words(void) {
    EXPECT_EQ_INT(nwords("a  b\tc\n", WORDS_RAW), 3);
    EXPECT_EQ_INT(nwords("", WORDS_RAW), 0);
    EXPECT_EQ_INT(nwords("   \n", WORDS_FOLD), 0);
    /* each ideograph is a word: 我 们 有 3 个 */
    EXPECT_EQ_INT(nwords("我们有3个", WORDS_RAW), 5);
    /* find x if 2x + 3 = 7 */
    EXPECT_EQ_INT(nwords("Find x, if 2x+3=7.", WORDS_FOLD), 8);
    EXPECT(same_words("Find x, if 2x+3=7.", "find X if 2x + 3 = 7", WORDS_FOLD));
    EXPECT(!same_words("Find x, if 2x+3=7.", "find x if 2x - 3 = 7", WORDS_FOLD));
    EXPECT(!same_words("x,", "x", WORDS_RAW)); /* raw words keep their punctuation */
    EXPECT(same_words("a\u3000b", "a b", WORDS_RAW)); /* ideographic space separates */
    /* invalid UTF-8 bytes are letters and never crash */
    EXPECT_EQ_INT(nwords("ab\xff\xfe cd", WORDS_FOLD), 2);
}

static void test_mixed_script(void) {
    int64_t minority = -1;
    EXPECT_NEAR(text_mixed_script_share("We compute the sum of two numbers.", 34, &minority), 0, 0);
    EXPECT_EQ_INT(minority, 0);
    /* Latin letters: "So" 2 + "the" 3 + "answer" 6 + "is" 2 = 13 (the lone "x" is a variable);
     * CJK: 所以答案是 = 5. Share 5 / 18. */
    const char *s = "So x the answer is 所以答案是";
    EXPECT_NEAR(text_mixed_script_share(s, strlen(s), &minority), 5.0 / 18.0, 1e-12);
    EXPECT_EQ_INT(minority, 5);
    /* Chinese with LaTeX commands and one-letter variables: nothing but CJK counts */
    const char *z = "设 x = \\frac{a}{b}，则 y 等于 \\sqrt{2}";
    EXPECT_NEAR(text_mixed_script_share(z, strlen(z), NULL), 0, 0);
    /* Greek letters used as symbols (one letter each) do not count */
    const char *g = "The angle \u03b8 plus \u03c0 equals";
    EXPECT_NEAR(text_mixed_script_share(g, strlen(g), NULL), 0, 0);
    /* a Russian word in English: Latin 4+4 = 8 ("Then", "says"), Cyrillic "привет" 6 -> 6/14 */
    const char *r = "Then says привет";
    EXPECT_NEAR(text_mixed_script_share(r, strlen(r), NULL), 6.0 / 14.0, 1e-12);
    /* Japanese (kanji + kana) is one script */
    const char *j = "これは漢字とかなです";
    EXPECT_NEAR(text_mixed_script_share(j, strlen(j), NULL), 0, 0);
    EXPECT_NEAR(text_mixed_script_share("", 0, NULL), 0, 0);
}

static void test_code_block(void) {
    const char *fence = "Let me check with code.\n```python\nprint(1)\n```\nSo it is 1.";
    EXPECT(text_has_code_block(fence, strlen(fence), 3));
    const char *tilde = "  ~~~\nx\n  ~~~";
    EXPECT(text_has_code_block(tilde, strlen(tilde), 3));
    const char *three = "Consider:\nint a = 1;\nint b = 2;\nreturn a + b;\nDone.";
    EXPECT(text_has_code_block(three, strlen(three), 3));
    EXPECT(!text_has_code_block(three, strlen(three), 4));
    const char *py = "def f(x):\n    return x * 2\nSo f(3) = 6.";
    EXPECT(text_has_code_block(py, strlen(py), 2));
    EXPECT(!text_has_code_block(py, strlen(py), 3));
    const char *prose = "First, the sum is 5.\nThen we add 3; that gives 8.\nSo the answer is 8.\n"
                        "\\begin{align}\nx &= 2 \\\\\ny &= 3\n\\end{align}";
    EXPECT(!text_has_code_block(prose, strlen(prose), 2));
    /* blank lines break a run */
    const char *gap = "a = 1;\n\nb = 2;\n\nc = 3;";
    EXPECT(!text_has_code_block(gap, strlen(gap), 2));
}

static void test_paragraphs(void) {
    /* "ab\ncd" is 5 characters (the inner newline counts), "efgh" 4 */
    EXPECT_EQ_INT(text_longest_paragraph("ab\ncd\n\nefgh", 11), 5);
    /* a line of spaces separates; characters, not bytes */
    const char *s = "\u4e2d\u6587\u6587\n \t\nxy\n";
    EXPECT_EQ_INT(text_longest_paragraph(s, strlen(s)), 3);
    EXPECT_EQ_INT(text_longest_paragraph("", 0), 0);
    EXPECT_EQ_INT(text_longest_paragraph("\n\n\n", 3), 0);
    EXPECT_EQ_INT(text_longest_paragraph("abc\r\n\r\nde", 9), 4); /* "abc\r" */
}

static void test_repetition(void) {
    const char *uniq = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20";
    EXPECT_NEAR(text_repetition_share(uniq, strlen(uniq), 10), 0, 0);
    /* ten words said five times: every 10-gram starting at word 10 or later repeats the one
     * ten words before, so words 10..49 are covered: 40 / 50 */
    char loop[600] = "";
    for (int r = 0; r < 5; r++) strcat(loop, "A B C D E F G H I J ");
    EXPECT_NEAR(text_repetition_share(loop, strlen(loop), 10), 0.8, 1e-12);
    /* fewer words than n */
    EXPECT_NEAR(text_repetition_share("a b c", 5, 10), 0, 0);
    /* one repeated 3-gram "x y z" (words 4..6 of 7): 3 / 7 */
    const char *once = "x y z q x y z";
    EXPECT_NEAR(text_repetition_share(once, strlen(once), 3), 3.0 / 7.0, 1e-12);
}

static void test_exact(void) {
    exact_index x = {0};
    EXPECT(!exact_index_check(&x, "a  b\n", 5, 1));
    EXPECT(exact_index_check(&x, " a b", 4, 1));     /* whitespace-normalised equal */
    EXPECT(!exact_index_check(&x, "a b c", 5, 0));
    EXPECT(!exact_index_check(&x, "a b c", 5, 1));   /* add = 0 did not add it */
    EXPECT(exact_index_check(&x, "a b c", 5, 0));
    EXPECT(!exact_index_check(&x, "ab", 2, 1));      /* the space matters */
    exact_index_free(&x);
}

static void test_near(void) {
    /* 100 distinct words; the copy changes one word: 5 of 96 shingles change, Jaccard
     * 91/101 = 0.90; MinHash estimates it within a few hundredths */
    char a[2000] = "", b[2000] = "";
    for (int i = 0; i < 100; i++) {
        char w[16];
        snprintf(w, sizeof w, "word%d ", i);
        strcat(a, w);
        strcat(b, i == 50 ? "changed " : w);
    }
    near_index *x = near_index_create(0.8);
    double sim;
    EXPECT(!near_index_check(x, a, strlen(a), 1, &sim));
    EXPECT(near_index_check(x, b, strlen(b), 1, &sim));
    EXPECT_MSG(sim > 0.8 && sim < 0.99, "similarity %g", sim);
    const char *other = "an entirely different text about triangles and their angles, which "
                        "has nothing in common with the numbered words";
    EXPECT(!near_index_check(x, other, strlen(other), 1, &sim));
    EXPECT(sim < 0.2);
    EXPECT(near_index_check(x, other, strlen(other), 0, &sim)); /* now it was added */
    EXPECT(!near_index_check(x, "", 0, 1, &sim));               /* no words: never */
    /* deterministic signatures */
    uint32_t s1[MINHASH_PERMS], s2[MINHASH_PERMS];
    EXPECT(minhash_signature(s1, a, strlen(a)) && minhash_signature(s2, a, strlen(a)));
    EXPECT(memcmp(s1, s2, sizeof s1) == 0);
    near_index_free(x);
    /* many texts: the band tables grow */
    near_index *y = near_index_create(0.8);
    int dups = 0;
    for (int i = 0; i < 3000; i++) {
        char t[128];
        snprintf(t, sizeof t, "item %d has value %d and weight %d grams", i, i * 7, i * 13);
        dups += near_index_check(y, t, strlen(t), 1, NULL);
    }
    EXPECT_EQ_INT(dups, 0);
    near_index_free(y);
}

static void test_decontam(void) {
    ngram_index x = {.n = 8};
    const char *q = "What is the sum of the first ten positive odd integers?";
    ngram_index_add(&x, q, strlen(q));
    ngram_index_add(&x, "Compute 2 + 3.", 14);
    EXPECT_EQ_INT(x.questions, 2);
    const char *hit = "Q: WHAT is the sum of the first ten positive odd integers, please";
    EXPECT(ngram_index_hits(&x, hit, strlen(hit)));
    /* 8 consecutive words: "the sum of the first ten positive odd" */
    const char *eight = "Tell me the sum of the first ten positive odd numbers";
    EXPECT(ngram_index_hits(&x, eight, strlen(eight)));
    /* only 7 in a row */
    const char *seven = "Tell me the sum of the first ten positive even integers";
    EXPECT(!ngram_index_hits(&x, seven, strlen(seven)));
    /* a short question matches only as a whole */
    EXPECT(ngram_index_hits(&x, "compute 2+3", 11));
    EXPECT(!ngram_index_hits(&x, "compute 2-3", 11));
    const char *longer = "Compute 2 + 3 and then multiply by 5.";
    EXPECT(!ngram_index_hits(&x, longer, strlen(longer)));
    ngram_index_free(&x);
}

static void test_filter_names(void) {
    for (int f = 0; f < FILTER_COUNT; f++)
        EXPECT_EQ_INT(curate_filter_parse(curate_filter_name((curate_filter)f)), f);
    EXPECT_EQ_INT(curate_filter_parse("nope"), -1);
}

int main(void) {
    RUN(test_words);
    RUN(test_mixed_script);
    RUN(test_code_block);
    RUN(test_paragraphs);
    RUN(test_repetition);
    RUN(test_exact);
    RUN(test_near);
    RUN(test_decontam);
    RUN(test_filter_names);
    TESTS_DONE();
}
