/* dumpgen.h - builds dumps in memory for the reporter's tests, through the shared codec.
 *
 * What this is: a tiny writer, independent of preload/writer.c, that lays out a header, chunks
 * and records exactly as docs/FORMAT.md says, and remembers where each chunk and record starts so
 * that tests can corrupt precise bytes. What this is not: a model of the real writer's batching.
 * Out of memory aborts (tests only).
 */
#ifndef MP_DUMPGEN_H
#define MP_DUMPGEN_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"

typedef struct mp_dg_s {
    uint8_t *buf; /* the file so far */
    size_t len, cap;
    uint8_t *chunk; /* records of the open chunk */
    size_t clen, ccap;
    uint64_t chunk_off[64]; /* offsets of the first 64 chunks */
    size_t nchunks;
    /* open EVENTS record */
    uint8_t *ev;
    size_t evlen, evcap;
    uint64_t ev_stream, ev_count, ev_base, ev_seq, ev_ptr, ev_ptr2;
    int ev_open, ev_cont;
    uint64_t last_seq[64], last_ptr[64]; /* each stream's last event (streams below 64) */
    uint64_t last_ptr2[64];              /* and the other base of its ptr deltas (4.0) */
    uint64_t last_stack[64];             /* and its last ALLOC's or FREE's stack */
    unsigned major; /* the header's: STACK records differ from 3.0 on, STREAM events from 4.0 */
    uint64_t prev_frames[512]; /* the last STACK record's frames (3.0: sharing) */
    size_t prev_n;
} mp_dg_t;

/* Start a dump with a valid header (pid 1234, ppid 1, start 1.7e18 ns, flags native). */
void mp_dg_init(mp_dg_t *g);
/* Start with a caller's header (header_size and major as given; crc computed). */
void mp_dg_init_header(mp_dg_t *g, const mp_fmt_header_t *h);
void mp_dg_free(mp_dg_t *g);

/* Append one record to the open chunk. */
void mp_dg_record(mp_dg_t *g, unsigned tag, const void *body, size_t len);
void mp_dg_process(mp_dg_t *g, const char *exe, const char *argv, size_t argv_len, const char *cwd);
void mp_dg_thread(mp_dg_t *g, uint64_t stream, uint64_t tid);
/* In a 3.0 dump it shares the outer frames it has in common with the previous STACK record (n at
 * most 512); mp_dg_record writes any other form. */
void mp_dg_stack(mp_dg_t *g, uint64_t id, const uint64_t *frames, size_t n);
void mp_dg_module(mp_dg_t *g, uint64_t bias, const uint64_t *ranges, size_t nranges,
                  const char *path, const uint8_t *build_id, size_t build_id_len);
void mp_dg_sample(mp_dg_t *g, uint64_t time_ns, uint64_t seq, uint64_t rss);
void mp_dg_marker(mp_dg_t *g, uint64_t kind, uint64_t seq, uint64_t time_ns);
void mp_dg_trailer(mp_dg_t *g, uint64_t events, uint64_t allocs, uint64_t frees,
                   uint64_t alloc_bytes, uint64_t lost, uint64_t end_time_ns, uint64_t next_seq,
                   uint64_t stacks_dropped);
void mp_dg_lost(mp_dg_t *g, uint64_t count);

/* PYCODE (1.1): a pystr is a kind (0, 1, 2, 4) and that many bytes per code point. */
typedef struct mp_dg_pystr_s {
    uint64_t kind;
    const void *data;
    size_t len; /* bytes */
} mp_dg_pystr_t;
/* An ASCII/Latin-1 pystr of the C string s. */
mp_dg_pystr_t mp_dg_latin1(const char *s);
void mp_dg_pycode(mp_dg_t *g, uint64_t id, uint64_t firstlineno, uint64_t table_format,
                  mp_dg_pystr_t filename, mp_dg_pystr_t name, mp_dg_pystr_t qualname,
                  const uint8_t *table, size_t table_len);
/* PYTHON (1.1). */
void mp_dg_python(mp_dg_t *g, uint64_t hexversion, uint64_t hooks, const char *allocator);

/* EVENTS: begin a record for stream starting at base_seq, add events, end it. */
void mp_dg_events_begin(mp_dg_t *g, uint64_t stream, uint64_t base_seq);
void mp_dg_alloc(mp_dg_t *g, uint64_t seq, uint64_t ptr, uint64_t size, uint64_t stack,
                 unsigned allocator);
void mp_dg_free_ev(mp_dg_t *g, uint64_t seq, uint64_t ptr, uint64_t stack, unsigned allocator);
void mp_dg_realloc_fail(mp_dg_t *g, uint64_t seq, uint64_t ptr);
void mp_dg_events_end(mp_dg_t *g);
/* STREAM (2.0): like an EVENTS record, but its deltas continue from the stream's last event
 * (in any record); ended by mp_dg_events_end. */
void mp_dg_stream_begin(mp_dg_t *g, uint64_t stream);

/* The file offset the next record added will have once its chunk is flushed. */
uint64_t mp_dg_next_offset(const mp_dg_t *g);
/* Close the open chunk (no-op when empty); records its offset in chunk_off. */
void mp_dg_flush(mp_dg_t *g);
/* Flush, then write the file to a fresh temporary path (caller frees and unlinks it). */
char *mp_dg_write_temp(mp_dg_t *g);

#endif
