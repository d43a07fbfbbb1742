/* The JSONL line reader: long lines, blank lines and CRLF, line numbers in every error, invalid
 * UTF-8 / NUL / JSON rejected, missing files and directories refused. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "datasets/jsonl.h"
#include "testing.h"

static char tmpdir[] = "/tmp/r1jsonlXXXXXX";

static char *write_tmp(const char *name, const char *data, size_t n) {
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f);
    CHECK(fwrite(data, 1, n, f) == n);
    fclose(f);
    return path;
}

/* Reads every record of a file; returns the status of the first failure (or R1_OK) and the
 * number of records read before it. */
static int read_all(const char *path, int *records) {
    jsonl_reader *r;
    *records = 0;
    int rc = jsonl_open(&r, path);
    if (rc) return rc;
    for (;;) {
        cJSON *v;
        rc = jsonl_next(r, &v);
        if (rc || !v) break;
        (*records)++;
        cJSON_Delete(v);
    }
    jsonl_close(r);
    return rc;
}

static void test_basic(void) {
    const char text[] = "{\"a\":1}\n\n  \t\r\n{\"a\":2}\r\n[3]\n\"four\"";
    char *path = write_tmp("basic.jsonl", text, sizeof text - 1);
    jsonl_reader *r;
    EXPECT_EQ_INT(jsonl_open(&r, path), R1_OK);
    cJSON *v;
    int64_t want_lines[] = {1, 4, 5, 6};
    for (int i = 0; i < 4; i++) {
        EXPECT_EQ_INT(jsonl_next(r, &v), R1_OK);
        EXPECT(v != NULL);
        EXPECT_EQ_INT(jsonl_line(r), want_lines[i]);
        EXPECT_EQ_INT(jsonl_count(r), i + 1);
        if (i == 1) EXPECT_EQ_INT(cJSON_GetObjectItem(v, "a")->valueint, 2);
        if (i == 3) EXPECT_STREQ(v->valuestring, "four"); /* no final newline */
        cJSON_Delete(v);
    }
    char *where = xasprintf("%s:6", path);
    EXPECT_STREQ(jsonl_where(r), where);
    EXPECT_EQ_INT(jsonl_next(r, &v), R1_OK);
    EXPECT(v == NULL);
    EXPECT_EQ_INT(jsonl_next(r, &v), R1_OK); /* stays at the end */
    EXPECT(v == NULL);
    jsonl_close(r);
    free(where);
    free(path);
}

static void test_long_line(void) {
    /* 3 MB in one line: longer than any fixed buffer a reader might use */
    size_t n = 3u << 20;
    char *text = xmalloc(n + 64);
    size_t k = (size_t)sprintf(text, "{\"s\":\"");
    memset(text + k, 'x', n);
    k += n;
    k += (size_t)sprintf(text + k, "\"}\n{\"b\":true}\n");
    char *path = write_tmp("long.jsonl", text, k);
    jsonl_reader *r;
    EXPECT_EQ_INT(jsonl_open(&r, path), R1_OK);
    cJSON *v;
    EXPECT_EQ_INT(jsonl_next(r, &v), R1_OK);
    EXPECT(v && strlen(cJSON_GetObjectItem(v, "s")->valuestring) == n);
    cJSON_Delete(v);
    const char *line;
    size_t len;
    EXPECT_EQ_INT(jsonl_next_line(r, &line, &len), R1_OK);
    EXPECT(line && len == 10 && strcmp(line, "{\"b\":true}") == 0);
    EXPECT_EQ_INT(jsonl_line(r), 2);
    jsonl_close(r);
    free(text);
    free(path);
}

/* A bad line fails with R1_EINPUT, names "path:LINE", and the records before it were read. */
static void expect_bad(const char *name, const char *text, size_t n, int line, int good_before,
                       const char *why_part) {
    char *path = write_tmp(name, text, n);
    int records;
    err_clear();
    int rc = read_all(path, &records);
    char *where = xasprintf("%s:%d", path, line);
    EXPECT_MSG(rc == R1_EINPUT, "%s: status %d", name, rc);
    EXPECT_MSG(strcmp(err_what(), where) == 0, "%s: what \"%s\", want \"%s\"", name, err_what(),
               where);
    EXPECT_MSG(strstr(err_why(), why_part) != NULL, "%s: why \"%s\" lacks \"%s\"", name, err_why(),
               why_part);
    EXPECT_EQ_INT(records, good_before);
    free(where);
    free(path);
}

static void test_bad_lines(void) {
    const char json[] = "{\"a\":1}\n{\"a\":2,}\n";
    expect_bad("json.jsonl", json, sizeof json - 1, 2, 1, "invalid JSON at column 8");
    const char trailing[] = "{}\n\n{} {}\n";
    expect_bad("trailing.jsonl", trailing, sizeof trailing - 1, 3, 1, "one value per line");
    const char utf8[] = "{\"a\":\"ok \xc3\xa9\"}\n{\"a\":\"\xff\"}\n";
    expect_bad("utf8.jsonl", utf8, sizeof utf8 - 1, 2, 1, "invalid UTF-8 at byte 7");
    const char overlong[] = "{\"a\":\"\xc0\xaf\"}\n";
    expect_bad("overlong.jsonl", overlong, sizeof overlong - 1, 1, 0, "invalid UTF-8");
    const char surrogate[] = "{}\n{}\n{\"a\":\"\xed\xa0\x80\"}\n";
    expect_bad("surrogate.jsonl", surrogate, sizeof surrogate - 1, 3, 2, "invalid UTF-8");
    const char cut[] = "{\"a\":\"\xe2\x82\"}\n";
    expect_bad("cut.jsonl", cut, sizeof cut - 1, 1, 0, "invalid UTF-8");
    const char nul[] = "{}\n{\"a\":1}\0\n";
    expect_bad("nul.jsonl", nul, sizeof nul - 1, 2, 1, "NUL byte");
    const char unfinished[] = "{\"a\":[1,2\n";
    expect_bad("unfinished.jsonl", unfinished, sizeof unfinished - 1, 1, 0, "invalid JSON");
}

static void test_open_errors(void) {
    jsonl_reader *r = NULL;
    char *missing = xasprintf("%s/missing.jsonl", tmpdir);
    EXPECT_EQ_INT(jsonl_open(&r, missing), R1_EINPUT);
    EXPECT(r == NULL);
    EXPECT_STREQ(err_what(), missing);
    EXPECT(strstr(err_why(), "cannot open") != NULL);
    EXPECT_EQ_INT(jsonl_open(&r, tmpdir), R1_EINPUT);
    EXPECT(strstr(err_why(), "directory") != NULL);
    char *empty = write_tmp("empty.jsonl", "", 0);
    int records = -1;
    EXPECT_EQ_INT(read_all(empty, &records), R1_OK);
    EXPECT_EQ_INT(records, 0);
    free(missing);
    free(empty);
}

static void test_bom(void) {
    const char text[] = "\xef\xbb\xbf{\"a\":1}\n{}\n";
    char *path = write_tmp("bom.jsonl", text, sizeof text - 1);
    jsonl_reader *r;
    EXPECT_EQ_INT(jsonl_open(&r, path), R1_OK);
    const char *line;
    size_t len;
    EXPECT_EQ_INT(jsonl_next_line(r, &line, &len), R1_OK);
    EXPECT(line && len == 7 && strcmp(line, "{\"a\":1}") == 0);
    jsonl_close(r);
    int records;
    EXPECT_EQ_INT(read_all(path, &records), R1_OK);
    EXPECT_EQ_INT(records, 2);
    free(path);
}

static void test_stream_and_utf8(void) {
    const char text[] = "{\"x\":\"\xe4\xb8\xad\xf0\x9f\x98\x80\"}\n";
    FILE *f = fmemopen((void *)text, sizeof text - 1, "r");
    jsonl_reader *r;
    EXPECT_EQ_INT(jsonl_open_stream(&r, f, "mem"), R1_OK);
    cJSON *v;
    EXPECT_EQ_INT(jsonl_next(r, &v), R1_OK);
    EXPECT(v != NULL);
    EXPECT_STREQ(jsonl_where(r), "mem:1");
    cJSON_Delete(v);
    jsonl_close(r);
    fclose(f);
    EXPECT_EQ_INT(utf8_invalid_at("abc", 3), -1);
    EXPECT_EQ_INT(utf8_invalid_at("ab\x80", 3), 2);
    EXPECT_EQ_INT(utf8_invalid_at("\xf4\x90\x80\x80", 4), 0); /* above U+10FFFF */
    EXPECT_EQ_INT(utf8_invalid_at("\xf0\x9f\x98\x80", 4), -1);
}

int main(void) {
    CHECK(mkdtemp(tmpdir));
    RUN(test_basic);
    RUN(test_long_line);
    RUN(test_bad_lines);
    RUN(test_open_errors);
    RUN(test_bom);
    RUN(test_stream_and_utf8);
    char *cmd = xasprintf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    free(cmd);
    TESTS_DONE();
}
