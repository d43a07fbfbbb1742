/* Conversations -> (ids, loss mask) with the tiny R1 tokenizer (tests/fixtures/tiny-tokenizer):
 * the prompt is the chat format's rendering with the generation prompt, unlearned; the
 * completion (reasoning, answer, end-of-sentence token) is learned; R1's "<think>\n" prefill is
 * not repeated; a separate reasoning_content is laid out as <think>\n...\n</think>\n\n. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "core/tokenizer.h"
#include "datasets/sft_chat.h"
#include "testing.h"

static const char *const TOK = "tests/fixtures/tiny-tokenizer";

/* ids of prompt ++ completion ++ [end], mask 0 then 1 */
static void expect_example(const char *record, const char *prompt, const char *completion) {
    tokenizer *t;
    EXPECT(tokenizer_load(&t, TOK) == 0);
    int *p, *c, np, nc;
    EXPECT(tokenizer_encode(t, prompt, strlen(prompt), 0, &p, &np) == 0);
    EXPECT(tokenizer_encode(t, completion, strlen(completion), 0, &c, &nc) == 0);
    const int end = tokenizer_token_id(t, "<｜end▁of▁sentence｜>");
    EXPECT(end >= 0);
    cJSON *root;
    EXPECT(json_parse(&root, record, strlen(record), "record") == 0);
    sft_options o = {.tokenizer_dir = TOK, .format = CHAT_AUTO};
    sft_chat *chat = NULL;
    int32_t *ids;
    uint8_t *mask;
    int64_t n;
    EXPECT(sft_chat_encode(&chat, root, "record", &o, 320, &ids, &mask, &n) == 0);
    EXPECT_EQ_INT(n, np + nc + 1);
    if (n == np + nc + 1) {
        for (int i = 0; i < np; i++) EXPECT(ids[i] == p[i] && mask[i] == 0);
        for (int i = 0; i < nc; i++) EXPECT(ids[np + i] == c[i] && mask[np + i] == 1);
        EXPECT(ids[n - 1] == end && mask[n - 1] == 1);
    }
    free(ids), free(mask), free(p), free(c);
    sft_chat_free(chat);
    cJSON_Delete(root);
    tokenizer_free(t);
}

static void test_r1_conversation(void) {
    expect_example("{\"messages\": [{\"role\": \"user\", \"content\": \"What is 2+3?\"}, "
                   "{\"role\": \"assistant\", \"content\": \"<think>\\n2 plus 3 is 5.\\n</think>"
                   "\\n\\nThe answer is 5.\"}]}",
                   "<｜begin▁of▁sentence｜><｜User｜>What is 2+3?<｜Assistant｜><think>\n",
                   "2 plus 3 is 5.\n</think>\n\nThe answer is 5.");
}

static void test_reasoning_content_and_system(void) {
    expect_example("{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                   "{\"role\": \"user\", \"content\": \"Say hi\"}, {\"role\": \"assistant\", "
                   "\"content\": \"hi\", \"reasoning_content\": \"A greeting.\"}]}",
                   "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Say hi<｜Assistant｜><think>\n",
                   "A greeting.\n</think>\n\nhi");
}

/* Earlier turns are prompt, rendered as the template renders history (reasoning dropped). */
static void test_multi_turn(void) {
    expect_example("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": "
                   "\"assistant\", \"content\": \"<think>\\nx\\n</think>\\n\\nb\"}, {\"role\": "
                   "\"user\", \"content\": \"c\"}, {\"role\": \"assistant\", \"content\": \"d\"}]}",
                   "<｜begin▁of▁sentence｜><｜User｜>a<｜Assistant｜>\n\nb<｜end▁of▁sentence｜>"
                   "<｜User｜>c<｜Assistant｜><think>\n",
                   "d");
}

static void test_errors(void) {
    static const char *const bad[] = {
        "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}",
        "{\"messages\": [{\"role\": \"assistant\", \"content\": \"a\"}, {\"role\": \"user\", "
        "\"content\": \"b\"}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": 3}, {\"role\": \"assistant\", "
        "\"content\": \"b\"}]}",
        "{\"messages\": [{\"role\": \"tool\", \"content\": \"a\"}, {\"role\": \"assistant\", "
        "\"content\": \"b\"}]}",
        "{\"messages\": \"hi\"}",
    };
    sft_options o = {.tokenizer_dir = TOK, .format = CHAT_AUTO};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cJSON *root;
        EXPECT(json_parse(&root, bad[i], strlen(bad[i]), "bad") == 0);
        sft_chat *chat = NULL;
        int32_t *ids;
        uint8_t *mask;
        int64_t n;
        EXPECT_MSG(sft_chat_encode(&chat, root, "bad", &o, 320, &ids, &mask, &n) == R1_EINPUT,
                   "accepted: %s", bad[i]);
        sft_chat_free(chat);
        cJSON_Delete(root);
    }
    /* no tokenizer given; a vocabulary smaller than the tokenizer's */
    const char *ok = "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": "
                     "\"assistant\", \"content\": \"b\"}]}";
    cJSON *root;
    EXPECT(json_parse(&root, ok, strlen(ok), "ok") == 0);
    sft_options none = {.format = CHAT_AUTO};
    sft_chat *chat = NULL;
    int32_t *ids;
    uint8_t *mask;
    int64_t n;
    EXPECT(sft_chat_encode(&chat, root, "ok", &none, 320, &ids, &mask, &n) == R1_EINPUT);
    EXPECT(strstr(err_hint_text(), "tokenizer.json") != NULL);
    EXPECT(sft_chat_encode(&chat, root, "ok", &o, 300, &ids, &mask, &n) == R1_EINPUT);
    EXPECT(strstr(err_why(), "outside the vocabulary") != NULL);
    sft_chat_free(chat);
    cJSON_Delete(root);
}

int main(void) {
    RUN(test_r1_conversation);
    RUN(test_reasoning_content_and_system);
    RUN(test_multi_turn);
    RUN(test_errors);
    TESTS_DONE();
}
