/* How much host memory this process can still take, so that a run which would be killed for
 * memory part-way is refused at the start instead. */
#ifndef R1_CORE_SYSMEM_H
#define R1_CORE_SYSMEM_H

#include <stddef.h>

/* /proc/meminfo's MemAvailable, capped by this process's cgroup limit where one is set (v2:
 * memory.max less memory.current; v1: memory.limit_in_bytes less memory.usage_in_bytes). 0 when
 * it cannot be read: unknown, not none. */
size_t host_memory_available(void);

/* The same from the files' texts: meminfo, and the cgroup's limit and usage (NULL: no cgroup
 * limit; a limit of "max" is none). */
size_t host_memory_parse(const char *meminfo, const char *cg_max, const char *cg_current);

#endif
