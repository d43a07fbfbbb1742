#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

int file_read_all(const char *path, size_t max_bytes, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return err_fail(R1_EINPUT, path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return err_fail(R1_EINPUT, path, "not a regular file");
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return err_fail(R1_EINPUT, path, "file is %lld bytes, more than the %zu this reader accepts",
                        (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = xmalloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        return err_fail(R1_ERUNTIME, path, "read failed after %zu of %zu bytes", got, n);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return R1_OK;
}

int file_map_open(file_map *m, const char *path) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_fail(R1_EINPUT, path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_fail(R1_EINPUT, path, "not a regular file");
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return err_fail(R1_ERUNTIME, path, "mmap failed: %s", strerror(e));
        }
        m->data = p;
    }
    close(fd);
    m->path = xstrdup(path);
    return R1_OK;
}

void file_map_close(file_map *m) {
    if (m->data) munmap((void *)m->data, m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}

int atomic_open(atomic_file *a, const char *path) {
    memset(a, 0, sizeof *a);
    a->path = xstrdup(path);
    a->tmp_path = xasprintf("%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp_path, "wb");
    if (!a->f) {
        int e = errno;
        err_fail(e == ENOENT || e == EACCES || e == EROFS || e == ENOTDIR ? R1_EINPUT : R1_ERUNTIME,
                 path, "cannot create: %s", strerror(e));
        free(a->path);
        free(a->tmp_path);
        memset(a, 0, sizeof *a);
        return err_status();
    }
    return R1_OK;
}

/* Once this much more has been written, it is handed to the disk at once (sync_file_range starts
 * the writeback and returns), so that the writing goes on while the caller makes the next part:
 * the fsync at commit then finds most of a checkpoint's gigabytes on disk, where it used to wait
 * for all of them (8 s of a 1.5B's 28 s checkpoint on an H200 machine). */
#define ATOMIC_WRITEBACK_BYTES ((size_t)64 << 20)

void atomic_write(atomic_file *a, const void *data, size_t n) {
    if (a->failed || n == 0) return;
    if (fwrite(data, 1, n, a->f) != n) {
        a->failed = errno ? errno : EIO;
        return;
    }
    a->written += n;
#ifdef __linux__
    if (a->written - a->handed >= ATOMIC_WRITEBACK_BYTES) {
        if (fflush(a->f) != 0) {
            a->failed = errno ? errno : EIO;
            return;
        }
        /* only a hint: a failure to write back shows at fsync */
        (void)sync_file_range(fileno(a->f), (off_t)a->handed, (off_t)(a->written - a->handed),
                              SYNC_FILE_RANGE_WRITE);
        a->handed = a->written;
    }
#endif
}

void atomic_abort(atomic_file *a) {
    if (a->f) fclose(a->f);
    if (a->tmp_path) unlink(a->tmp_path);
    free(a->path);
    free(a->tmp_path);
    memset(a, 0, sizeof *a);
}

int dir_sync(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return err_fail(R1_ERUNTIME, dir, "cannot open directory: %s", strerror(errno));
    int rc = fsync(fd);
    close(fd);
    /* Some filesystems refuse fsync on directories; the rename is still atomic there. */
    (void)rc;
    return R1_OK;
}

int atomic_commit(atomic_file *a) {
    int e = a->failed;
    if (!e && fflush(a->f) != 0) e = errno;
    if (!e && fsync(fileno(a->f)) != 0) e = errno;
    if (fclose(a->f) != 0 && !e) e = errno;
    a->f = NULL;
    if (!e && rename(a->tmp_path, a->path) != 0) e = errno;
    if (e) {
        err_fail(R1_ERUNTIME, a->path, "write failed: %s", strerror(e));
        if (e == ENOSPC) err_hint("the disk is full; free space and re-run (completed work is kept)");
        atomic_abort(a);
        return R1_ERUNTIME;
    }
    char *dcopy = xstrdup(a->path);
    dir_sync(dirname(dcopy));
    free(dcopy);
    free(a->path);
    free(a->tmp_path);
    memset(a, 0, sizeof *a);
    return R1_OK;
}

int file_write_atomic(const char *path, const void *data, size_t n) {
    atomic_file a;
    TRY(atomic_open(&a, path));
    atomic_write(&a, data, n);
    return atomic_commit(&a);
}

int dir_create(const char *path) {
    char *p = xstrdup(path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            return err_fail(R1_EINPUT, path, "cannot create directory: %s", strerror(e));
        }
        *s = '/';
    }
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
        int e = errno;
        free(p);
        return err_fail(R1_EINPUT, path, "cannot create directory: %s", strerror(e));
    }
    free(p);
    if (!path_is_dir(path)) return err_fail(R1_EINPUT, path, "exists and is not a directory");
    return R1_OK;
}

int path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir);
    if (n == 0) return xstrdup(name);
    return xasprintf("%s%s%s", dir, dir[n - 1] == '/' ? "" : "/", name);
}

int file_copy_into(const char *from_dir, const char *to_dir, const char *name, int required) {
    char *src = path_join(from_dir, name), *dst = path_join(to_dir, name);
    int rc = R1_OK;
    if (required || path_exists(src)) {
        char *data;
        size_t len;
        rc = file_read_all(src, (size_t)1 << 32, &data, &len);
        if (!rc) {
            rc = file_write_atomic(dst, data, len);
            free(data);
        }
    }
    free(src);
    free(dst);
    return rc;
}

char *dir_make_temp(const char *prefix) {
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    char *name = xasprintf("%sXXXXXX", prefix), *path = path_join(tmp, name); /* mkdtemp's form */
    free(name);
    if (mkdtemp(path)) return path;
    err_fail(R1_ERUNTIME, tmp, "cannot make a temporary directory: %s", strerror(errno));
    free(path);
    return NULL;
}
