/* by_line.h - live sites (leaks, peak) grouped by the innermost Python frame's file:line.
 *
 * What this is: the grouping tracemalloc users compare against (Snapshot.statistics('lineno')
 * groups by the most recent frame's file and line): each site's bytes and blocks go to the first
 * Python frame of its stack that names a known code object. Sites without one form a single
 * group with file NULL. What this is not: the per-line table (per_line.h).
 */
#ifndef MP_BY_LINE_H
#define MP_BY_LINE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct mp_line_site_s {
    const char *file;     /* co_filename, or NULL: no Python frame */
    int line;             /* 0 when file is NULL */
    const char *function; /* of the largest site in the group; NULL when file is NULL */
    uint64_t bytes, blocks;
} mp_line_site_t;

/* Group sites[0..n) of model m. Returns 0 with a malloc'd array in *out (by bytes, then blocks,
 * descending; then file and line), or -1 when out of memory. Strings live as long as m. */
int mp_sites_by_line(const mp_model_t *m, const mp_site_t *sites, size_t n, mp_line_site_t **out,
                     size_t *nout);

#endif
