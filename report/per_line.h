/* per_line.h - the per-line view: memory_profiler's table, computed from the replay.
 *
 * What this is: for each Python function (a code object, identified by file, first line and
 * qualname; code objects that share all three are one function), the numbers of each of its
 * source lines. The model (model.c) feeds every change of the tracked heap, in sequence order,
 * through mp_perline_step(); mp_perline_finish() ranks the functions once the peak is known.
 *
 * Definitions (docs/JSON.md "lines"): in every function on an event's stack, the event belongs
 * to the line of that function's innermost frame (inclusive: a call line carries what its
 * callees allocated; under recursion an event counts once per function), native frames ignored.
 *   occurrences  ALLOC events attributed (memory_profiler counts executions; this counts
 *                allocations)
 *   increment    bytes of those ALLOCs minus the bytes of tracked blocks freed by FREEs
 *                attributed, where the free happens (a failed realloc's FREE is taken back)
 *   mem_usage    the largest tracked live heap right after one of the line's events
 *   alloc_bytes, freed_bytes: the two parts of increment
 * A function's peak_bytes is what was live at the peak moment and allocated with the function on
 * the stack (inclusive); functions are ranked by it, then by alloc_bytes.
 * What this is not: presentation (emit_text.c, emit_json.c) or source files (source.h).
 */
#ifndef MP_PER_LINE_H
#define MP_PER_LINE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct mp_line_row_s {
    int line;
    uint64_t occurrences;
    int64_t increment;
    uint64_t mem_usage;
    uint64_t alloc_bytes, freed_bytes;
} mp_line_row_t;

typedef struct mp_pyfunc_s {
    const char *file;     /* co_filename */
    const char *function; /* qualname, else name */
    const char *name;     /* co_name */
    int first_line;       /* co_firstlineno (the smallest among its code objects) */
    int last_line;        /* the largest line its line tables or its rows name */
    uint64_t peak_bytes;  /* live at the peak, allocated with this function on the stack */
    uint64_t alloc_bytes, freed_bytes, allocations; /* over all its events, inclusive */
    const mp_line_row_t *rows;                      /* the lines that had events, ascending */
    size_t nrows;
} mp_pyfunc_t;

typedef struct mp_perline_s {
    mp_pyfunc_t *funcs; /* functions with at least one event, ranked (after finish) */
    size_t nfuncs;
    struct mp_perline_priv_s *priv;
} mp_perline_t;

/* A per-line view over m's PYCODE records (m must outlive it). NULL when out of memory. */
mp_perline_t *mp_perline_new(const mp_model_t *m);
/* Attribute one change of the heap (model.h). Returns 0, or -1 when out of memory. */
int mp_perline_step(mp_perline_t *pl, const mp_step_t *st);
/* Rank the functions by m's peak sites and fill funcs. Returns 0, or -1 when out of memory. */
int mp_perline_finish(mp_perline_t *pl, const mp_model_t *m);
void mp_perline_free(mp_perline_t *pl);

/* The row of f for line, or NULL when the line had no event. */
const mp_line_row_t *mp_pyfunc_row(const mp_pyfunc_t *f, int line);

#endif
