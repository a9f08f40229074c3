/* model.h - the replayed dump: process, summary, leaks and peak by stack, timeline.
 *
 * What this is: mp_model_load() reads a dump through report/reader.h once for everything but the
 * events (whose locations it only remembers), then replays the events of all streams merged by
 * sequence number through a live-block table: pass 1 for totals, the peak moment, the leak
 * snapshot and the timeline, pass 2 up to the peak for what was live then. The result is plain
 * read-only data that the emitters (emit.h) print. What this is not: symbolization (symbolize.h)
 * or any output formatting.
 *
 * Semantics (DESIGN.md "Semantics"): a FREE of an address that is not live (allocated before
 * tracking began) is ignored and counted in unknown_frees; an ALLOC at a live address replaces the
 * old block and is counted in overlapping_allocs; a REALLOC_FAIL for the block that the last
 * realloc FREE of the same stream released makes it live again (unless that realloc's ALLOC came
 * first). Leaks are what is live at the end point: the main-end marker, the exit marker, or the
 * end of the data. total_frees counts FREEs of tracked blocks minus those undone.
 *
 * Python (format 1.1): PYCODE records become mp_pycode_t (names transcoded to UTF-8), the last
 * PYTHON record mp_python_t; with opts.lines, pass 1 also feeds every heap change to the per-line
 * view (per_line.h), which is ranked once the peak is known.
 */
#ifndef MP_MODEL_H
#define MP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reader.h"

/* Where leaks are measured (mp_model_opts_t.at; the model's leaks_at says which was used). */
typedef enum mp_at_e {
    mp_at_default = 0, /* main_end if present, else exit, else end of data */
    mp_at_main_end,    /* same order as the default */
    mp_at_exit,        /* exit marker if present, else end of data */
    mp_at_end_of_data, /* (result only) no marker was usable */
} mp_at_t;

typedef struct mp_model_opts_s {
    mp_at_t at;
    bool lines; /* also build the per-line view (per_line.h) when the dump has Python code */
} mp_model_opts_t;

typedef struct mp_site_s { /* one stack's share of a live set */
    uint64_t stack;        /* stack id; 0 = none recorded */
    uint64_t bytes;
    uint64_t blocks;
} mp_site_t;

typedef struct mp_point_s { /* one timeline sample */
    double time_s;          /* seconds since the process started */
    uint64_t heap;          /* tracked live bytes at the sample */
    uint64_t rss;           /* resident set size */
} mp_point_t;

typedef struct mp_thread_s {
    uint64_t stream, tid;
} mp_thread_t;

typedef struct mp_module_s {
    char *path;       /* as recorded (may be "[vdso]" or a deleted file) */
    uint64_t bias;    /* runtime address - ELF virtual address */
    uint64_t *ranges; /* nranges [start, end) pairs */
    size_t nranges;
    uint8_t *build_id; /* may be empty */
    size_t build_id_len;
} mp_module_t;

typedef struct mp_pycode_s { /* one PYCODE record (FORMAT.md 5.10) */
    uint64_t id;
    int firstlineno;
    unsigned table_format;            /* MP_PYTABLE_* (pylines.h); others decode to no line */
    char *filename, *name, *qualname; /* UTF-8 (pylines.h mp_pystr_utf8); qualname may be "" */
    const uint8_t *table;             /* the line table, inside the dump's mapping */
    size_t table_len;
} mp_pycode_t;

typedef struct mp_python_s { /* the last PYTHON record (FORMAT.md 5.11) */
    bool present;
    uint32_t hexversion; /* PY_VERSION_HEX */
    uint64_t hooks;      /* MP_PYHOOK_* (reader.h) */
    char *allocator;     /* "default", or PYTHONMALLOC */
} mp_python_t;

/* One change of the live heap during the replay, as the per-line view sees it. */
typedef enum mp_step_kind_e {
    MP_STEP_ALLOC,  /* an ALLOC event: size bytes became live */
    MP_STEP_FREE,   /* a FREE of a tracked block: size bytes stopped being live */
    MP_STEP_UNFREE, /* a failed realloc made the block its FREE released live again */
} mp_step_kind_t;

typedef struct mp_step_s {
    mp_step_kind_t kind;
    uint64_t seq;
    uint64_t stack; /* the event's stack; for MP_STEP_UNFREE the realloc FREE's */
    uint64_t size;
    uint64_t heap; /* tracked live bytes right after the step */
} mp_step_t;

typedef struct mp_summary_s {
    uint64_t total_allocations, total_frees, total_bytes;
    uint64_t peak_bytes, peak_blocks;
    double peak_time; /* seconds since start */
    uint64_t leaked_bytes, leaked_blocks;
    mp_at_t leaks_at;            /* mp_at_main_end, mp_at_exit or mp_at_end_of_data */
    uint64_t rss_peak;           /* max RSS over samples */
    uint64_t unknown_frees;      /* frees of blocks allocated before tracking began */
    uint64_t overlapping_allocs; /* allocations at an address that was still live */
    uint64_t stacks_dropped;     /* from the trailer */
    uint64_t lost_events;        /* max(trailer lost, sum of LOST records) */
} mp_summary_t;

typedef struct mp_model_s {
    mp_fmt_header_t header;
    char *exe, *cwd; /* NUL-terminated copies, NULL without a PROCESS record */
    char **argv;     /* argc strings */
    size_t argc;
    double duration;          /* seconds: trailer end time, else the last sample or marker */
    bool incomplete;          /* no trailer, or the data ended inside a chunk */
    char incomplete_why[200]; /* for the warning line */
    mp_summary_t summary;
    mp_site_t *leaks; /* by bytes desc */
    size_t nleaks;
    mp_site_t *peak; /* by bytes desc */
    size_t npeak;
    mp_point_t *timeline;
    size_t ntimeline;
    mp_thread_t *threads; /* THREAD records in file order, duplicates removed */
    size_t nthreads;
    mp_module_t *modules; /* MODULE records in file order (later ones win on overlap) */
    size_t nmodules;
    mp_pycode_t *pycodes; /* PYCODE records in file order, duplicate ids dropped */
    size_t npycodes;
    mp_python_t python;
    struct mp_perline_s *perline; /* the per-line view (per_line.h), or NULL: not asked for
                                   * (opts.lines) or no PYCODE record */
    struct mp_model_priv_s *priv;
} mp_model_t;

/* Read and replay the dump at path. Returns 0 with *out (free with mp_model_free), or a negative
 * MP_E* with err filled; an incomplete dump is not an error (see m->incomplete). */
int mp_model_load(mp_model_t **out, const char *path, const mp_model_opts_t *opts, mp_err_t *err);
/* The same over an opened reader; the model takes ownership of r in every case. */
int mp_model_build(mp_model_t **out, mp_reader_t *r, const mp_model_opts_t *opts, mp_err_t *err);
/* Free m and everything it owns, including its reader. NULL is fine. */
void mp_model_free(mp_model_t *m);

/* The frames of stack id (innermost first). Returns false (and *n = 0) for an id without a STACK
 * record, including 0. */
bool mp_model_stack(const mp_model_t *m, uint64_t id, const uint64_t **frames, size_t *n);
/* The PYCODE record with this id, or NULL. */
const mp_pycode_t *mp_model_pycode(const mp_model_t *m, uint64_t id);
/* The lines of Python frames looked up so far, (code id << 32 | offset) -> line (pysym.c's
 * mp_pysym_line): a view asks for the same few frames of every stack again and again, and each
 * answer decodes the code's line table from its start. Owned by m. */
struct mp_u64map_s *mp_model_pyline_memo(const mp_model_t *m);
/* "main_end", "exit" or "end_of_data". */
const char *mp_at_name(mp_at_t at);

#endif
