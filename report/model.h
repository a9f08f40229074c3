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
/* "main_end", "exit" or "end_of_data". */
const char *mp_at_name(mp_at_t at);

#endif
