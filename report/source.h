/* source.h - the lines of the source files a dump names, for the per-line view's Line Contents.
 *
 * What this is: a cache of whole source files, read once each, split into lines. A relative
 * path is taken relative to the traced process's working directory (the PROCESS record's cwd).
 * Only regular files are read (a dump naming a FIFO or a device must not hang the reporter), at
 * most 64 MiB each; names such as "<string>" or "<frozen os>" are not files. What this is not:
 * decoding (files are bytes; the emitters clean them up).
 */
#ifndef MP_SOURCE_H
#define MP_SOURCE_H

#include <stddef.h>

typedef struct mp_source_s mp_source_t;

/* A cache resolving relative paths against cwd (may be NULL: the reporter's own directory).
 * Returns NULL only when out of memory. */
mp_source_t *mp_source_new(const char *cwd);
void mp_source_free(mp_source_t *s);
/* Line `line` (1-based) of file without its line ending, *len bytes (not NUL-terminated), or
 * NULL when the file cannot be read or has no such line. Valid until mp_source_free. */
const char *mp_source_line(mp_source_t *s, const char *file, int line, size_t *len);

#endif
