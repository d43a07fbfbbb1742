/* JSONL: one JSON value per line, read as a stream.
 *
 *   jsonl_reader *r;
 *   TRY(jsonl_open(&r, path));                    // "-" reads standard input
 *   cJSON *rec;
 *   while ((rc = jsonl_next(r, &rec)) == R1_OK && rec) {
 *       ... jsonl_where(r) names "path:LINE" for messages ...
 *       cJSON_Delete(rec);
 *   }
 *   jsonl_close(r);
 *
 * Lines may be of any length. Blank lines (only spaces, tabs, a CR) are skipped but counted, so
 * line numbers always match what an editor shows. A trailing CR (CRLF files) and a UTF-8
 * byte-order mark at the start of the file are dropped. Every
 * line must be valid UTF-8 without NUL bytes and hold exactly one JSON value; anything else is
 * an R1_EINPUT error that names the file and the line ("data.jsonl:12: ..."). */
#ifndef R1_DATASETS_JSONL_H
#define R1_DATASETS_JSONL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/utf8.h"

typedef struct jsonl_reader jsonl_reader;

/* Opens a file ("-" for standard input). A missing, unreadable or directory path is R1_EINPUT. */
int jsonl_open(jsonl_reader **out, const char *path);
/* Reads from an open stream; `name` is used in messages. The stream is not closed by
 * jsonl_close (the caller owns it). */
int jsonl_open_stream(jsonl_reader **out, FILE *f, const char *name);
void jsonl_close(jsonl_reader *r);

/* The next non-blank line, checked (UTF-8, no NUL) but not parsed: *line points into the
 * reader's buffer (valid until the next call), NUL-terminated, without the newline.
 * At end of input returns R1_OK with *line == NULL. */
int jsonl_next_line(jsonl_reader *r, const char **line, size_t *len);
/* The next non-blank line parsed as JSON; the caller frees *out with cJSON_Delete.
 * At end of input returns R1_OK with *out == NULL. */
int jsonl_next(jsonl_reader *r, cJSON **out);

/* Line number (1-based) of the line last returned; 0 before the first. */
int64_t jsonl_line(const jsonl_reader *r);
/* How many non-blank lines have been returned so far. */
int64_t jsonl_count(const jsonl_reader *r);
/* "path:LINE" of the line last returned, for messages; valid until the next call. */
const char *jsonl_where(const jsonl_reader *r);

#endif
