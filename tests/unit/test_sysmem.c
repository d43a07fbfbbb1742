/* Host memory available: MemAvailable, capped by a cgroup limit. */
#include "core/sysmem.h"
#include "tests/unit/testing.h"

static const char *MEMINFO = "MemTotal:       131072000 kB\nMemFree:         1000 kB\n"
                             "MemAvailable:   100000000 kB\nBuffers:  0 kB\n";

static void test_parse(void) {
    const size_t gib = (size_t)1 << 30;
    EXPECT(host_memory_parse(MEMINFO, NULL, NULL) == (size_t)100000000 * 1024);
    /* v2 without a limit, and v1's "unlimited" (a huge number) */
    EXPECT(host_memory_parse(MEMINFO, "max\n", "5000\n") == (size_t)100000000 * 1024);
    EXPECT(host_memory_parse(MEMINFO, "9223372036854771712\n", "5000\n") ==
           (size_t)100000000 * 1024);
    /* a 16 GiB limit with 6 GiB used leaves 10 */
    EXPECT(host_memory_parse(MEMINFO, "17179869184\n", "6442450944\n") == 10 * gib);
    /* used up: known to be (nearly) none, not unknown */
    EXPECT(host_memory_parse(MEMINFO, "1000\n", "2000\n") == 1);
    /* unreadable or malformed: unknown (0), or the limit alone */
    EXPECT(host_memory_parse(NULL, NULL, NULL) == 0);
    EXPECT(host_memory_parse("MemTotal: 5 kB\n", NULL, NULL) == 0);
    EXPECT(host_memory_parse("MemAvailable: x kB\n", NULL, NULL) == 0);
    EXPECT(host_memory_parse(NULL, "17179869184\n", "6442450944\n") == 10 * gib);
    EXPECT(host_memory_parse(MEMINFO, "junk", "5") == (size_t)100000000 * 1024);
}

static void test_live(void) {
    /* this machine: something, and no more than its total */
    const size_t a = host_memory_available();
    EXPECT(a > 0);
    EXPECT(a < ((size_t)1 << 50));
}

int main(void) {
    RUN(test_parse);
    RUN(test_live);
    TESTS_DONE();
}
