#include "core/sysmem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The number after "MemAvailable:" in kB, as bytes; 0 if absent. */
static size_t mem_available(const char *meminfo) {
    const char *p = meminfo ? strstr(meminfo, "MemAvailable:") : NULL;
    if (!p) return 0;
    char *end;
    const unsigned long long kb = strtoull(p + strlen("MemAvailable:"), &end, 10);
    if (end == p + strlen("MemAvailable:")) return 0;
    return (size_t)kb * 1024;
}

size_t host_memory_parse(const char *meminfo, const char *cg_max, const char *cg_current) {
    size_t avail = mem_available(meminfo);
    /* "max" means no limit; a number is one */
    if (cg_max && cg_current && strncmp(cg_max, "max", 3) != 0) {
        char *e1, *e2;
        const unsigned long long lim = strtoull(cg_max, &e1, 10);
        const unsigned long long cur = strtoull(cg_current, &e2, 10);
        if (e1 != cg_max && e2 != cg_current) {
            const size_t left = cur < lim ? (size_t)(lim - cur) : 0;
            if (left < avail || avail == 0) avail = left ? left : 1; /* 1: known to be (nearly) none */
        }
    }
    return avail;
}

/* A small text file whole, or NULL. Not file_read_all: /proc files report a size of 0, and a
 * file that is absent here is no error to record. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char *buf = malloc(65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    return buf;
}

/* The cgroup path of this process for a controller line prefix ("0::" for v2, ":memory:" for
 * v1), into buf; 0 if absent. */
static int cgroup_path(const char *self, const char *prefix, char *buf, size_t len) {
    const char *p = self ? strstr(self, prefix) : NULL;
    if (!p) return 0;
    p += strlen(prefix);
    const size_t n = strcspn(p, "\n");
    if (n + 1 > len) return 0;
    memcpy(buf, p, n);
    buf[n] = 0;
    return 1;
}

/* The limit and usage files of a cgroup directory, both or neither. */
static int read_limit(const char *dir, const char *max_name, const char *cur_name, char **max,
                      char **cur) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, max_name);
    *max = slurp(path);
    snprintf(path, sizeof path, "%s/%s", dir, cur_name);
    *cur = *max ? slurp(path) : NULL;
    if (*max && *cur) return 1;
    free(*max);
    *max = *cur = NULL;
    return 0;
}

size_t host_memory_available(void) {
    char *meminfo = slurp("/proc/meminfo");
    char *self = slurp("/proc/self/cgroup"), *cg_max = NULL, *cg_cur = NULL, rel[512], dir[600];
    /* this process's own cgroup, then the mount's root (inside a container, its own cgroup):
     * cgroup v2, then v1 */
    int found = 0;
    if (cgroup_path(self, "0::", rel, sizeof rel)) {
        snprintf(dir, sizeof dir, "/sys/fs/cgroup%s", rel);
        found = read_limit(dir, "memory.max", "memory.current", &cg_max, &cg_cur) ||
                read_limit("/sys/fs/cgroup", "memory.max", "memory.current", &cg_max, &cg_cur);
    }
    if (!found && cgroup_path(self, ":memory:", rel, sizeof rel)) {
        snprintf(dir, sizeof dir, "/sys/fs/cgroup/memory%s", rel);
        found = read_limit(dir, "memory.limit_in_bytes", "memory.usage_in_bytes", &cg_max,
                           &cg_cur) ||
                read_limit("/sys/fs/cgroup/memory", "memory.limit_in_bytes",
                           "memory.usage_in_bytes", &cg_max, &cg_cur);
    }
    const size_t avail = host_memory_parse(meminfo, cg_max, cg_cur);
    free(meminfo);
    free(self);
    free(cg_max);
    free(cg_cur);
    return avail;
}
