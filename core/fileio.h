/* Files: whole-file reads, read-only maps, crash-safe writes, paths.
 *
 * Crash safety is one rule everywhere: a file becomes visible under its final name only when it
 * is complete. Writers write "<path>.tmp.<pid>", fsync it, rename it over <path> and fsync the
 * directory, so a reader sees the old file or the new one, never a torn one. */
#ifndef R1_CORE_FILEIO_H
#define R1_CORE_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Reads a whole file into a NUL-terminated buffer (the NUL is not counted in *len).
 * Files larger than max_bytes are refused. Errors are recorded (R1_EINPUT for a missing or
 * unreadable file). */
int file_read_all(const char *path, size_t max_bytes, char **data, size_t *len);

typedef struct {
    const uint8_t *data;
    size_t size;
    char *path;
} file_map;

/* Maps a file read-only. An empty file maps to data == NULL, size == 0. */
int file_map_open(file_map *m, const char *path);
void file_map_close(file_map *m);

/* Crash-safe writer (see the header comment). */
typedef struct {
    FILE *f;
    char *path;
    char *tmp_path;
    int failed;
    size_t written, handed; /* bytes written, and those of them handed to the disk early */
} atomic_file;

int atomic_open(atomic_file *a, const char *path);
/* Writes n bytes; a failure is remembered and reported by atomic_commit. */
void atomic_write(atomic_file *a, const void *data, size_t n);
/* Flushes, fsyncs, renames into place and fsyncs the directory. On any earlier or present
 * write failure the temporary file is removed, the old file (if any) is untouched, and an
 * R1_ERUNTIME error names the path. */
int atomic_commit(atomic_file *a);
/* Abandons the write and removes the temporary file. */
void atomic_abort(atomic_file *a);
/* Writes a whole buffer crash-safely. */
int file_write_atomic(const char *path, const void *data, size_t n);
/* Copies from_dir/name to to_dir/name crash-safely. A missing source is R1_OK unless `required`,
 * when the read error names it. */
int file_copy_into(const char *from_dir, const char *to_dir, const char *name, int required);

/* Creates a directory and its parents (like mkdir -p). */
int dir_create(const char *path);
/* Makes a fresh directory only this user can enter, named "<prefix>" and six random characters,
 * in $TMPDIR (or /tmp); returns its path (the caller frees it and removes the directory) or NULL
 * with R1_ERUNTIME recorded. */
char *dir_make_temp(const char *prefix);
int path_exists(const char *path);
int path_is_dir(const char *path);
/* Joins two path parts with one '/'. Returns a fresh string. */
char *path_join(const char *dir, const char *name);
/* fsyncs a directory so renames inside it are durable. */
int dir_sync(const char *dir);

#endif
