/* Trace archives: pair sets, the .topk layout, shard write/read round trips, damaged shards,
 * write errors (file size limit), manifests and settings comparison. */
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "datasets/traces.h"
#include "tests/unit/testing.h"

static char tmpdir[256];

static char *tmp_path(const char *name) { return path_join(tmpdir, name); }

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void test_pairs(void) {
    trace_pairs s = {0};
    static char bits[2000];
    memset(bits, 0, sizeof bits);
    uint64_t x = 12345;
    for (int i = 0; i < 600; i++) { /* random ranges in random order against a bitmap */
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int64_t a = (int64_t)((x >> 33) % 1900), len = (int64_t)((x >> 20) % 7);
        trace_pairs_add(&s, a, a + len);
        for (int64_t k = a; k < a + len; k++) bits[k] = 1;
    }
    int64_t want = 0;
    int ok = 1;
    for (int k = 0; k < 2000; k++) {
        want += bits[k];
        ok &= trace_pairs_contains(&s, k) == bits[k];
    }
    EXPECT(ok);
    EXPECT_EQ_INT(trace_pairs_count(&s), want);
    for (int i = 1; i < s.n; i++) EXPECT(s.r[i - 1].b < s.r[i].a); /* disjoint, not adjacent */
    trace_pairs t = {0};
    trace_pairs_add(&t, 5000, 5010);
    EXPECT(!trace_pairs_overlap(&s, &t, NULL));
    trace_pairs_add(&t, s.r[0].a, s.r[0].a + 1);
    int64_t at = -1;
    EXPECT(trace_pairs_overlap(&s, &t, &at));
    EXPECT_EQ_INT(at, s.r[0].a);
    trace_pairs_free(&s);
    trace_pairs_free(&t);
}

static void test_topk_layout(void) {
    const int ids[6] = {5, 1, 9, 2, 2, 7};
    const float lp[6] = {-0.1f, -2.5f, -3.0f, -0.7f, -0.8f, -4.0f};
    const float chosen[2] = {-0.1f, -0.8f};
    size_t size;
    uint8_t *buf = trace_topk_encode(ids, lp, chosen, 2, 3, &size);
    EXPECT_EQ_INT(size, 16 + 4 * 2 * (2 * 3 + 1));
    EXPECT(memcmp(buf, "R1TK\1\0\0\0\3\0\0\0\2\0\0\0", 16) == 0);
    trace_topk t;
    EXPECT_EQ_INT(trace_topk_parse(&t, buf, size, "t"), R1_OK);
    EXPECT_EQ_INT(t.k, 3);
    EXPECT_EQ_INT(t.n, 2);
    EXPECT_EQ_INT(t.ids[4], 2);
    EXPECT(t.logprobs[5] == -4.0f && t.chosen[1] == -0.8f);
    EXPECT_EQ_INT(trace_topk_parse(&t, buf, size - 4, "t"), R1_EINPUT);
    buf[8] = 0; /* k = 0 */
    EXPECT_EQ_INT(trace_topk_parse(&t, buf, size, "t"), R1_EINPUT);
    free(buf);
}

static char *record_json(int64_t line, int sample, int n_tokens) {
    char key[64];
    trace_key(key, sizeof key, line, sample);
    char ids[512] = "";
    for (int i = 0; i < n_tokens; i++)
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%d", i ? "," : "", 10 + i);
    return xasprintf("{\"id\":\"%s\",\"line\":%lld,\"sample\":%d,\"text\":\"caf\xc3\xa9\","
                     "\"completion_token_ids\":[%s]}",
                     key, (long long)line, sample, ids);
}

static void test_shard_round_trip(void) {
    char *path = tmp_path("shard-000000.tar.zst");
    trace_shard_writer *w;
    EXPECT_EQ_INT(trace_shard_create(&w, path), R1_OK);
    EXPECT(!path_exists(path)); /* only the temporary name exists until commit */
    const int ids[4] = {3, 4, 5, 6};
    const float lp[4] = {-1, -2, -3, -4}, ch[2] = {-1, -3};
    size_t tsize;
    uint8_t *topk = trace_topk_encode(ids, lp, ch, 2, 2, &tsize);
    for (int i = 0; i < 3; i++) {
        char *j = record_json(7 + i, i, 2), key[64];
        trace_key(key, sizeof key, 7 + i, i);
        EXPECT_EQ_INT(trace_shard_add(w, key, j, strlen(j), i == 1 ? topk : NULL, tsize), R1_OK);
        free(j);
    }
    EXPECT_EQ_INT(trace_shard_records(w), 3);
    uint64_t bytes = 0;
    EXPECT_EQ_INT(trace_shard_commit(w, &bytes), R1_OK);
    struct stat st;
    EXPECT(stat(path, &st) == 0 && (uint64_t)st.st_size == bytes);
    EXPECT_EQ_INT(count_files(tmpdir), 1); /* no temporary file left */

    trace_shard_reader *r;
    EXPECT_EQ_INT(trace_shard_open(&r, path), R1_OK);
    trace_record rec = {0};
    int have, n = 0;
    while (trace_shard_next(r, &rec, &have) == R1_OK && have) {
        EXPECT_EQ_INT(rec.line, 7 + n);
        EXPECT_EQ_INT(rec.sample, n);
        EXPECT_STREQ(cJSON_GetObjectItem(rec.rec, "text")->valuestring, "caf\xc3\xa9");
        EXPECT((rec.topk_data != NULL) == (n == 1));
        if (rec.topk_data) EXPECT(rec.topk.ids[3] == 6 && rec.topk.chosen[1] == -3.0f);
        n++;
    }
    EXPECT_EQ_INT(n, 3);
    trace_record_clear(&rec);
    trace_shard_close(r);

    /* A truncated copy is reported as damaged, never read as complete. */
    char *data;
    size_t len;
    EXPECT_EQ_INT(file_read_all(path, 1 << 20, &data, &len), R1_OK);
    char *cut = tmp_path("cut.tar.zst");
    EXPECT_EQ_INT(file_write_atomic(cut, data, len * 2 / 3), R1_OK);
    int rc = trace_shard_open(&r, cut), got = 0;
    if (rc == R1_OK) {
        while ((rc = trace_shard_next(r, &rec, &have)) == R1_OK && have) got++;
        trace_shard_close(r);
    }
    EXPECT_EQ_INT(rc, R1_EINPUT);
    EXPECT(got < 3);
    trace_record_clear(&rec);
    unlink(cut);
    free(cut);
    free(data);
    free(topk);
    unlink(path);
    free(path);
}

static void test_discard(void) {
    char *path = tmp_path("shard-000001.tar.zst");
    trace_shard_writer *w;
    EXPECT_EQ_INT(trace_shard_create(&w, path), R1_OK);
    char *j = record_json(1, 0, 1);
    EXPECT_EQ_INT(trace_shard_add(w, "00000001_00", j, strlen(j), NULL, 0), R1_OK);
    trace_shard_discard(w);
    EXPECT_EQ_INT(count_files(tmpdir), 0);
    free(j);
    free(path);
}

/* A real write error: the file size limit makes write(2) fail with EFBIG (SIGXFSZ ignored). */
static void test_write_error(void) {
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096;
    EXPECT(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    char *path = tmp_path("shard-000002.tar.zst");
    trace_shard_writer *w;
    EXPECT_EQ_INT(trace_shard_create(&w, path), R1_OK);
    /* Incompressible text so the compressed stream passes the limit. */
    size_t n = 256 * 1024;
    char *big = xmalloc(n + 64);
    uint64_t x = 1;
    int len = sprintf(big, "{\"id\":\"00000001_00\",\"pad\":\"");
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        big[len++] = (char)('a' + (x >> 40) % 26);
    }
    len += sprintf(big + len, "\"}");
    int rc = R1_OK;
    for (int i = 0; i < 8 && rc == R1_OK; i++) {
        char key[64];
        trace_key(key, sizeof key, 1 + i, 0);
        memcpy(big + 7, key, 11);
        rc = trace_shard_add(w, key, big, (size_t)len, NULL, 0);
    }
    if (rc == R1_OK) {
        rc = trace_shard_commit(w, NULL);
    } else {
        EXPECT(strstr(err_why(), "File too large") != NULL);
        trace_shard_discard(w);
    }
    EXPECT_EQ_INT(rc, R1_ERUNTIME);
    EXPECT(!path_exists(path));
    EXPECT_EQ_INT(count_files(tmpdir), 0);
    setrlimit(RLIMIT_FSIZE, &old);
    free(big);
    free(path);
}

static cJSON *settings(double temp, int samples) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "samples", samples);
    cJSON *sp = cJSON_AddObjectToObject(s, "sampling");
    cJSON_AddNumberToObject(sp, "temperature", temp);
    cJSON_AddNumberToObject(sp, "top_p", 0.95);
    return s;
}

static void test_manifest(void) {
    trace_manifest m = {.rank = 0, .world_size = 1, .settings = settings(0.6, 2), .pairs_total = 10};
    trace_pairs p = {0};
    trace_pairs_add(&p, 0, 3);
    trace_pairs_add(&p, 5, 6);
    trace_manifest_add_shard(&m, "shard-000000.tar.zst", 4, 1234, &p);
    char *path = tmp_path("manifest.json");
    EXPECT_EQ_INT(trace_manifest_write(&m, path), R1_OK);
    trace_manifest back;
    EXPECT_EQ_INT(trace_manifest_read(&back, path), R1_OK);
    EXPECT_EQ_INT(back.n_shards, 1);
    EXPECT_EQ_INT(back.shards[0].records, 4);
    EXPECT_EQ_INT(back.shards[0].pairs.n, 2);
    EXPECT_EQ_INT(back.pairs_total, 10);
    char *diff = NULL;
    EXPECT(!trace_settings_diff(back.settings, m.settings, &diff));
    trace_manifest_free(&back);

    cJSON *other = settings(0.7, 4);
    EXPECT(trace_settings_diff(other, m.settings, &diff));
    EXPECT(diff && strstr(diff, "sampling.temperature: 0.7 here, 0.6 there"));
    EXPECT(diff && strstr(diff, "samples: 4 here, 2 there"));
    free(diff);
    cJSON_Delete(other);

    /* A directory whose listed shard is missing is refused; so are overlapping pairs. */
    trace_dir d;
    EXPECT_EQ_INT(trace_dir_open(&d, tmpdir), R1_EINPUT);
    EXPECT(strstr(err_why(), "missing") != NULL);
    char *shard = tmp_path("shard-000000.tar.zst");
    EXPECT_EQ_INT(file_write_atomic(shard, "x", 1), R1_OK);
    EXPECT_EQ_INT(trace_dir_open(&d, tmpdir), R1_OK);
    trace_dir_close(&d);
    m.world_size = 2;
    trace_manifest_add_shard(&m, "shard-r00000-000001.tar.zst", 1, 10, &(trace_pairs){0});
    m.shards[1].pairs = (trace_pairs){0};
    trace_pairs_add(&m.shards[1].pairs, 2, 3); /* also in shard 0 */
    char *p2 = tmp_path("manifest-r00000.json");
    EXPECT_EQ_INT(trace_manifest_write(&m, p2), R1_OK);
    trace_manifest bad;
    EXPECT_EQ_INT(trace_manifest_read(&bad, p2), R1_EINPUT);
    EXPECT(strstr(err_why(), "two shards") != NULL);

    /* A path in place of a shard name is refused. */
    char *text;
    size_t len;
    EXPECT_EQ_INT(file_read_all(path, 1 << 20, &text, &len), R1_OK);
    char *evil = strstr(text, "shard-000000.tar.zst");
    memcpy(evil, "../../000000.tar.zst", 20);
    EXPECT_EQ_INT(file_write_atomic(p2, text, len), R1_OK);
    EXPECT_EQ_INT(trace_manifest_read(&bad, p2), R1_EINPUT);
    free(text);
    unlink(p2);
    unlink(path);
    unlink(shard);
    free(p2);
    free(shard);
    free(path);
    trace_pairs_free(&p);
    trace_manifest_free(&m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/r1traces.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(tmpdir));
    RUN(test_pairs);
    RUN(test_topk_layout);
    RUN(test_shard_round_trip);
    RUN(test_discard);
    RUN(test_write_error);
    RUN(test_manifest);
    rmdir(tmpdir);
    TESTS_DONE();
}
