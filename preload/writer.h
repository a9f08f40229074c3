/* writer.h - the writer thread: drains the rings (copying their events, encoded by the threads
 * that made them), encodes the other records, writes checksummed chunks.
 *
 * One writer per process. It runs with every signal blocked, never allocates through malloc
 * (its buffers are mmap'd), takes no lock a producer could hold, never calls dl_iterate_phdr,
 * and writes with write(2). Its own thread has the recursion guard set for its whole life, so
 * anything it calls that allocates is passed through untracked.
 *
 * If a write fails (disk full, closed descriptor) tracking is switched off, one line is printed
 * on stderr, and the host program continues unaffected.
 */
#ifndef MP_WRITER_H
#define MP_WRITER_H

#include <stdint.h>

#include "format.h"

typedef struct mp_writer_opts_s {
    int fd;                 /* the dump, opened by the caller; the writer closes it */
    const char *path;       /* for messages */
    mp_fmt_header_t header; /* written first */
    int native;             /* emit stacks' modules */
    int interval_ms;        /* sample and flush period */
    int stacks_from_fork;   /* fork child: emit published stacks first (stacks.h) */
    const char *discard;    /* NULL, or a stale file the caller renamed aside: removed by the
                             * writer thread, first thing (memprof.c's replace_stale) */
} mp_writer_opts_t;

/* Start the writer thread (writes the header and the PROCESS record). 0 or -1. */
int mp_writer_start(const mp_writer_opts_t *opts);
/* Wake the writer (installed as mp_ring_kick). Cheap when the writer is awake. */
void mp_writer_kick(void);
/* Stop: emit a MARKER of kind at seq, drain every ring, write the TRAILER, close the dump.
 * Waits at most timeout_ms for the writer. Returns the number of events the threads recorded
 * (the trailer's count, FORMAT.md 5.8), or -1. */
int64_t mp_writer_stop(unsigned marker_kind, uint64_t seq, uint64_t timeout_ms);
/* After fork, in the child: forget the parent's writer (its thread does not exist here). */
void mp_writer_forget(void);

#endif
