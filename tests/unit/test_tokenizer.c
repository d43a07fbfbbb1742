/* Tokenizer unit tests: the in-place JSON reader, loading from memory, the API's accessors,
 * decoding of ids that end inside UTF-8 sequences, the chat formats on a tokenizer without a
 * template, and thread safety of the word cache. Token-for-token equality with the HF
 * tokenizer on real files is tested end to end (tests/e2e/tokenizer_*.sh). */
#include <pthread.h>
#include <stdint.h>

#include "core/error.h"
#include "core/json_inplace.h"
#include "core/tokenizer.h"
#include "tests/unit/testing.h"

/* ---- the JSON reader ---------------------------------------------------------------------- */

static int parse(jin_doc *d, const char *text) {
    static char buf[4096];
    size_t n = strlen(text);
    memcpy(buf, text, n + 1);
    return jin_parse(d, buf, n, "t.json");
}

static void test_json_values(void) {
    jin_doc d;
    EXPECT_EQ_INT(parse(&d, " {\"a\": [1, -2.5e3, true, false, null], \"b\": {\"c\": \"x\"}, \"a\": 7} "), R1_OK);
    EXPECT_EQ_INT(d.nodes[0].type, JIN_OBJ);
    EXPECT_EQ_INT(d.nodes[0].n, 3);
    uint32_t a = jin_get(&d, 0, "a"); /* the last of a repeated key */
    int64_t v;
    EXPECT_EQ_INT(jin_int(&d, jin_at(&d, a), &v), 0);
    EXPECT_EQ_INT(v, 7);
    uint32_t b = jin_get(&d, 0, "b"), c = jin_get(&d, b, "c");
    EXPECT_STREQ(jin_str(&d, jin_at(&d, c)), "x");
    uint32_t arr = jin_first(&d, 0); /* the first "a" */
    EXPECT_EQ_INT(jin_at(&d, arr)->n, 5);
    uint32_t e = jin_first(&d, arr);
    EXPECT_EQ_INT(jin_at(&d, e)->type, JIN_NUM);
    e = jin_next_in(&d, arr, e);
    EXPECT_NEAR(jin_num(&d, jin_at(&d, e)), -2500.0, 0);
    EXPECT(jin_int(&d, jin_at(&d, e), &v) < 0);
    e = jin_next_in(&d, arr, e);
    EXPECT_EQ_INT(jin_at(&d, e)->type, JIN_TRUE);
    e = jin_next_in(&d, arr, jin_next_in(&d, arr, e));
    EXPECT_EQ_INT(jin_at(&d, e)->type, JIN_NULL);
    EXPECT_EQ_INT(jin_next_in(&d, arr, e), 0);
    EXPECT_EQ_INT(jin_get(&d, 0, "missing"), 0);
    jin_free(&d);

    EXPECT_EQ_INT(parse(&d, "\"\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\\t\\u0000z\""), R1_OK);
    EXPECT_EQ_INT(d.nodes[0].len, 2 + 4 + 1 + 1 + 1 + 1 + 1 + 1 + 1);
    EXPECT(memcmp(jin_str(&d, &d.nodes[0]), "\xc3\xa9\xf0\x9f\x98\x80\n\"\\/\t\0z", 13) == 0);
    jin_free(&d);

    EXPECT_EQ_INT(parse(&d, "9223372036854775807"), R1_OK);
    EXPECT_EQ_INT(jin_int(&d, &d.nodes[0], &v), 0);
    EXPECT(v == INT64_MAX);
    jin_free(&d);
    EXPECT_EQ_INT(parse(&d, "9223372036854775808"), R1_OK);
    EXPECT(jin_int(&d, &d.nodes[0], &v) < 0);
    jin_free(&d);
}

static void expect_json_error(const char *text, const char *why) {
    jin_doc d;
    EXPECT_EQ_INT(parse(&d, text), R1_EINPUT);
    EXPECT_MSG(strstr(err_why(), why) != NULL, "%s: got \"%s\", want \"%s\"", text, err_why(), why);
    EXPECT(d.nodes == NULL);
}

static void test_json_errors(void) {
    expect_json_error("", "empty");
    expect_json_error("[1,]", "unexpected character");
    expect_json_error("{\"a\" 1}", "expected ':'");
    expect_json_error("{\"a\": 1,}", "expected a member name");
    expect_json_error("\"abc", "unterminated string");
    expect_json_error("\"a\\x\"", "unknown escape");
    expect_json_error("\"\\ud800\"", "lone high surrogate");
    expect_json_error("\"\\udc00\"", "lone low surrogate");
    expect_json_error("\"a\tb\"", "control character");
    expect_json_error("\"\xff\"", "invalid UTF-8");
    expect_json_error("\"\xed\xa0\x80\"", "invalid UTF-8"); /* an encoded surrogate */
    expect_json_error("01", "text after the JSON value");
    expect_json_error("-", "bad number");
    expect_json_error("1.", "bad number");
    expect_json_error("tru", "unexpected character");
    expect_json_error("[1] [2]", "text after");
    expect_json_error("[1,\n 2,\n x]", "line 3, column 2");
    char deep[1200];
    memset(deep, '[', 600);
    memset(deep + 600, ']', 600);
    deep[1199] = 0;
    expect_json_error(deep, "nested too deeply");
}

/* ---- a tokenizer built in memory ---------------------------------------------------------- */

/* Bytes a, b, c, space (Ġ), and the three bytes of 日 (E6 97 A5 -> æ, Ĺ, ¥ in the byte-level
 * alphabet) and of 🙂's lead F0 (ð); merges a+b, ab+c; an added special <eos> and a normal
 * <sep>; Llama-3-style TemplateProcessing adding <bos>. */
static const char TOKJSON[] =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
    "\"added_tokens\":["
    "{\"id\":10,\"content\":\"<bos>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
    "{\"id\":11,\"content\":\"<eos>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
    "{\"id\":12,\"content\":\"<sep>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":false}],"
    "\"normalizer\":null,"
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\","
    "\"single\":[{\"SpecialToken\":{\"id\":\"<bos>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
    "\"special_tokens\":{\"<bos>\":{\"id\":\"<bos>\",\"ids\":[10],\"tokens\":[\"<bos>\"]}}},"
    "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
    "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,"
    "\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"\\u0120\":3,\"\\u00e6\":4,\"\\u0139\":5,\"\\u00a5\":6,\"\\u00f0\":7,\"ab\":8,\"abc\":9},"
    "\"merges\":[\"a b\",[\"ab\",\"c\"]]}}";

static const char CONFIG[] =
    "{\"bos_token\":{\"__type\":\"AddedToken\",\"content\":\"<bos>\"},\"eos_token\":\"<eos>\","
    "\"pad_token\":null}";

static tokenizer *load_test_tokenizer(void) {
    tokenizer *t = NULL;
    int rc = tokenizer_load_mem(&t, TOKJSON, sizeof TOKJSON - 1, CONFIG, sizeof CONFIG - 1, "mem");
    EXPECT_MSG(rc == R1_OK, "%s: %s", err_what(), err_why());
    return t;
}

static int encode_str(const tokenizer *t, const char *s, int add, int *out, int max) {
    int *ids, n;
    if (tokenizer_encode(t, s, strlen(s), add, &ids, &n)) return -1;
    for (int i = 0; i < n && i < max; i++) out[i] = ids[i];
    free(ids);
    return n;
}

static void test_encode_decode(void) {
    tokenizer *t = load_test_tokenizer();
    if (!t) return;
    int ids[16];
    EXPECT_EQ_INT(encode_str(t, "abc ab<eos>c<sep>", 0, ids, 16), 6);
    EXPECT(ids[0] == 9 && ids[1] == 3 && ids[2] == 8 && ids[3] == 11 && ids[4] == 2 && ids[5] == 12);
    EXPECT_EQ_INT(encode_str(t, "abc", 1, ids, 16), 2);
    EXPECT(ids[0] == 10 && ids[1] == 9);
    EXPECT_EQ_INT(encode_str(t, "", 1, ids, 16), 1);
    EXPECT_EQ_INT(encode_str(t, "", 0, ids, 16), 0);
    /* Bytes outside the vocabulary are dropped (no unk_token), as the HF BPE does, and what is
     * left merges: "azb" is one word, [a, b] -> ab. */
    EXPECT_EQ_INT(encode_str(t, "azb", 0, ids, 16), 1);
    EXPECT_EQ_INT(ids[0], 8);
    EXPECT_EQ_INT(encode_str(t, "ab\xff", 0, ids, 16), -1);
    EXPECT_EQ_INT(err_status(), R1_EINPUT);

    int all[] = {10, 9, 3, 8, 11, 12};
    char *text;
    size_t len;
    EXPECT_EQ_INT(tokenizer_decode(t, all, 6, 0, &text, &len), R1_OK);
    EXPECT_STREQ(text, "<bos>abc ab<eos><sep>");
    EXPECT_EQ_INT(len, strlen(text));
    free(text);
    EXPECT_EQ_INT(tokenizer_decode(t, all, 6, 1, &text, &len), R1_OK);
    EXPECT_STREQ(text, "abc ab<sep>"); /* <sep> is not special */
    free(text);
    int bad[] = {1, 13};
    EXPECT_EQ_INT(tokenizer_decode(t, bad, 2, 0, &text, &len), R1_EINPUT);
    EXPECT(strstr(err_why(), "id 13") != NULL);
    int neg[] = {-1};
    EXPECT_EQ_INT(tokenizer_decode(t, neg, 1, 0, &text, &len), R1_EINPUT);
    tokenizer_free(t);
}

/* Decode of ids that end inside a UTF-8 sequence: each maximal ill-formed subsequence becomes
 * one U+FFFD (Unicode §3.9, as Rust's String::from_utf8_lossy and the HF decoder do). */
static void test_decode_partial_utf8(void) {
    tokenizer *t = load_test_tokenizer();
    if (!t) return;
    static const struct {
        int ids[4], n;
        const char *want;
    } cases[] = {
        {{4, 5, 6}, 3, "\xe6\x97\xa5"},                     /* 日 whole */
        {{4}, 1, "\xef\xbf\xbd"},                           /* E6: one replacement */
        {{4, 5}, 2, "\xef\xbf\xbd"},                        /* E6 97: still one */
        {{5, 6}, 2, "\xef\xbf\xbd\xef\xbf\xbd"},            /* 97 A5: two lone continuations */
        {{4, 0}, 2, "\xef\xbf\xbd" "a"},                    /* E6 then ASCII */
        {{4, 5, 4}, 3, "\xef\xbf\xbd\xef\xbf\xbd"},         /* E6 97 | E6 */
        {{7, 5, 6}, 3, "\xef\xbf\xbd"},                     /* F0 97 A5: a cut 4-byte sequence */
        {{7, 0}, 2, "\xef\xbf\xbd" "a"},                    /* F0 then ASCII */
        {{0, 4, 5, 6}, 4, "a\xe6\x97\xa5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *text;
        size_t len;
        EXPECT_EQ_INT(tokenizer_decode(t, cases[i].ids, cases[i].n, 0, &text, &len), R1_OK);
        EXPECT_MSG(strcmp(text, cases[i].want) == 0, "case %zu", i);
        free(text);
    }
    /* Streaming: the bytes of each token, concatenated, are what decode converts. */
    size_t n;
    const char *b = tokenizer_token_bytes(t, 5, &n);
    EXPECT(b && n == 1 && (unsigned char)b[0] == 0x97);
    b = tokenizer_token_bytes(t, 11, &n);
    EXPECT(b && n == 5 && memcmp(b, "<eos>", 5) == 0);
    EXPECT(tokenizer_token_bytes(t, 13, &n) == NULL);
    tokenizer_free(t);
}

static void test_accessors(void) {
    tokenizer *t = load_test_tokenizer();
    if (!t) return;
    EXPECT_EQ_INT(tokenizer_vocab_size(t), 13);
    EXPECT_STREQ(tokenizer_token_text(t, 3), "\xc4\xa0"); /* Ġ */
    EXPECT_STREQ(tokenizer_token_text(t, 11), "<eos>");
    EXPECT(tokenizer_token_text(t, 13) == NULL);
    EXPECT_EQ_INT(tokenizer_token_id(t, "abc"), 9);
    EXPECT_EQ_INT(tokenizer_token_id(t, "<sep>"), 12);
    EXPECT_EQ_INT(tokenizer_token_id(t, "abcd"), -1);
    EXPECT(tokenizer_is_special(t, 11) && !tokenizer_is_special(t, 12) && !tokenizer_is_special(t, 9));
    EXPECT(tokenizer_is_added(t, 12) && !tokenizer_is_added(t, 9));
    EXPECT_EQ_INT(tokenizer_bos_id(t), 10);
    EXPECT_EQ_INT(tokenizer_eos_id(t), 11);
    EXPECT_EQ_INT(tokenizer_pad_id(t), -1);
    EXPECT_EQ_INT(tokenizer_add_bos(t), 1); /* no add_bos_token: the post-processor adds <bos> */
    EXPECT(tokenizer_chat_template(t) == NULL);
    EXPECT_STREQ(tokenizer_path(t), "mem");
    int nm;
    const char *const *m = tokenizer_merges(t, &nm);
    EXPECT_EQ_INT(nm, 2);
    EXPECT_STREQ(m[0], "a b");
    EXPECT_STREQ(m[1], "ab c");
    tokenizer_free(t);
}

/* ---- loader errors (the e2e test covers more through the command) ------------------------- */

static void expect_load_error(const char *json, const char *why) {
    tokenizer *t = NULL;
    EXPECT_EQ_INT(tokenizer_load_mem(&t, json, strlen(json), NULL, 0, "x.json"), R1_EINPUT);
    EXPECT(t == NULL);
    EXPECT_MSG(strstr(err_why(), why) != NULL, "got \"%s\", want \"%s\"", err_why(), why);
}

static void test_load_errors(void) {
    expect_load_error("[]", "must be a JSON object");
    expect_load_error("{}", "no \"model\" object");
    expect_load_error("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", "unsupported model Unigram");
    EXPECT(strstr(err_hint_text(), "supported: model BPE") != NULL);
    expect_load_error("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}", "unsupported decoder (none)");
    expect_load_error("{\"model\":{\"vocab\":{\"a\":0,\"b\":99999999},\"merges\":[]}}", "id must be an integer");
    expect_load_error("{\"model\":{\"vocab\":{\"a\":0,\"b\":900000},\"merges\":[]}}", "far beyond");
    expect_load_error("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[[\"a\"]]}}", "must be \"a b\" or");
    expect_load_error("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Sequence\"}}",
                      "a Sequence needs \"pretokenizers\"");
}

/* ---- chat formats without a template ------------------------------------------------------ */

static void test_chat(void) {
    chat_format f;
    EXPECT_EQ_INT(chat_format_parse("r1", &f), 0);
    EXPECT_EQ_INT(f, CHAT_R1);
    EXPECT_EQ_INT(chat_format_parse("chatml", &f), 0);
    EXPECT_EQ_INT(f, CHAT_CHATML);
    EXPECT_EQ_INT(chat_format_parse("llama3", &f), 0);
    EXPECT_EQ_INT(chat_format_parse("auto", &f), 0);
    EXPECT_EQ_INT(f, CHAT_AUTO);
    EXPECT_EQ_INT(chat_format_parse("vicuna", &f), -1);
    EXPECT_STREQ(chat_format_name(CHAT_LLAMA3), "llama3");

    tokenizer *t = load_test_tokenizer();
    if (!t) return;
    EXPECT_EQ_INT(chat_detect(t, &f), R1_EINPUT); /* no template, none of the formats' tokens */
    chat_message conv[] = {
        {"system", "Be brief."},
        {"user", "2+2?"},
        {"assistant", "<think>\nadd\n</think>\n\n4"},
        {"user", " Why? "},
    };
    char *out;
    EXPECT_EQ_INT(chat_render(t, CHAT_R1, conv, 4, 1, &out), R1_OK);
    /* The R1 format (the bos here is this tokenizer's <bos>). */
    EXPECT_STREQ(out, "<bos>Be brief.<｜User｜>2+2?<｜Assistant｜>\n\n4<｜end▁of▁sentence｜><｜User｜> Why? "
                      "<｜Assistant｜><think>\n");
    free(out);
    EXPECT_EQ_INT(chat_render(t, CHAT_CHATML, conv, 4, 0, &out), R1_OK);
    EXPECT_STREQ(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
                      "<|im_start|>assistant\n<think>\nadd\n</think>\n\n4<|im_end|>\n"
                      "<|im_start|>user\n Why? <|im_end|>\n");
    free(out);
    EXPECT_EQ_INT(chat_render(t, CHAT_LLAMA3, conv + 1, 1, 1, &out), R1_OK);
    EXPECT_STREQ(out, "<bos><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\n");
    free(out);
    /* A Qwen2.5-style template's default system prompt is used when none is given. */
    tokenizer_set_chat_template(t, "{%- else %}{{- '<|im_start|>system\\nYou are \\'Q\\'.<|im_end|>\\n' }}"
                                   "{{'<|im_start|>' + message['role']}}");
    EXPECT_EQ_INT(chat_detect(t, &f), R1_OK);
    EXPECT_EQ_INT(f, CHAT_CHATML);
    EXPECT_EQ_INT(chat_render(t, CHAT_AUTO, conv + 1, 1, 1, &out), R1_OK);
    EXPECT_STREQ(out, "<|im_start|>system\nYou are 'Q'.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
                      "<|im_start|>assistant\n");
    free(out);
    chat_message tool[] = {{"tool", "{}"}};
    EXPECT_EQ_INT(chat_render(t, CHAT_R1, tool, 1, 1, &out), R1_EINPUT);
    tokenizer_free(t);
}

/* ---- the word cache: threads and several tokenizers -------------------------------------- */

#define SYN "tests/fixtures/tokenizer/synthetic/"

typedef struct {
    const tokenizer *t;
    const char *text;
    int *ids, n, rc;
} job;

static void *encode_job(void *arg) {
    job *j = arg;
    for (int rep = 0; rep < 20 && !j->rc; rep++) {
        free(j->ids);
        j->rc = tokenizer_encode(j->t, j->text, strlen(j->text), 0, &j->ids, &j->n);
    }
    return NULL;
}

static void test_threads_and_cache(void) {
    tokenizer *a = NULL, *b = NULL;
    if (tokenizer_load(&a, SYN "gpt2_template") || tokenizer_load(&b, SYN "deepseek_like")) {
        EXPECT_MSG(0, "%s: %s", err_what(), err_why());
        tokenizer_free(a);
        return;
    }
    const char *text = "the keeper wrote in the ledger, and the ledger was kept by the keeper's son";
    int *ra, *rb, na, nb;
    EXPECT_EQ_INT(tokenizer_encode(a, text, strlen(text), 0, &ra, &na), R1_OK);
    EXPECT_EQ_INT(tokenizer_encode(b, text, strlen(text), 0, &rb, &nb), R1_OK);
    /* The two vocabularies number tokens differently: a cache shared by tokenizers must keep
     * their words apart. */
    int differ = na != nb;
    for (int i = 0; !differ && i < na; i++) differ = ra[i] != rb[i];
    EXPECT(differ);
    job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){i % 2 ? b : a, text, NULL, 0, 0};
        pthread_create(&th[i], NULL, encode_job, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        const int *want = i % 2 ? rb : ra;
        int wn = i % 2 ? nb : na;
        EXPECT_EQ_INT(jobs[i].rc, R1_OK);
        EXPECT_EQ_INT(jobs[i].n, wn);
        EXPECT(jobs[i].n == wn && memcmp(jobs[i].ids, want, sizeof(int) * (size_t)wn) == 0);
        free(jobs[i].ids);
    }
    /* A tokenizer freed and another loaded (perhaps at the same address) must not see stale
     * cache entries. */
    tokenizer_free(a);
    EXPECT_EQ_INT(tokenizer_load(&a, SYN "deepseek_like"), R1_OK);
    int *rc2, nc;
    EXPECT_EQ_INT(tokenizer_encode(a, text, strlen(text), 0, &rc2, &nc), R1_OK);
    EXPECT(nc == nb && memcmp(rc2, rb, sizeof(int) * (size_t)nb) == 0);
    free(rc2);
    free(ra);
    free(rb);
    tokenizer_free(a);
    tokenizer_free(b);
}

int main(void) {
    RUN(test_json_values);
    RUN(test_json_errors);
    RUN(test_encode_decode);
    RUN(test_decode_partial_utf8);
    RUN(test_accessors);
    RUN(test_load_errors);
    RUN(test_chat);
    RUN(test_threads_and_cache);
    TESTS_DONE();
}
