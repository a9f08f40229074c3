/* reader.h - validated, bounds-checked access to a dump file (docs/FORMAT.md sections 3-7).
 *
 * What this is: the only code in the reporter that touches dump bytes. It maps the file, checks
 * the header, walks the chunks (magic, header crc, length, payload crc) and the records inside
 * them, and decodes each record's body into a small struct whose strings point into the mapping.
 * EVENTS bodies are decoded lazily, one event at a time, by an mp_events_t cursor, so that a dump
 * of 40M events never has to sit in memory. What this is not: the replay (report/model.h).
 *
 * Errors: every function returns 0 (or a documented positive value) or a negative MP_E* code and
 * fills an mp_err_t with the byte offset where the problem was found and what was being read.
 * Nothing here asserts on input or reads outside the file.
 */
#ifndef MP_READER_H
#define MP_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

/* ---- errors: one map generates the codes and their texts (cf. libuv UV_ERRNO_MAP) ----------- */
#define MP_ERRNO_MAP(X)                                                                            \
    X(NOMEM, "out of memory")                                                                      \
    X(IO, "cannot read")                                                                           \
    X(USAGE, "invalid argument")                                                                   \
    X(NOTDUMP, "not a memprof dump")       /* bad file magic */                                    \
    X(NEWER, "unsupported format version") /* major newer than MP_FORMAT_MAJOR */                  \
    X(SHORT, "truncated file header")      /* file shorter than its header */                      \
    X(HEADER, "corrupt file header")       /* header crc, bad header size */                       \
    X(CHUNK_MAGIC, "corrupt chunk")        /* chunk magic is not "MPCK" */                         \
    X(CHUNK_HCRC, "corrupt chunk")         /* chunk header crc mismatch */                         \
    X(CHUNK_LEN, "corrupt chunk")          /* payload length over the maximum */                   \
    X(CHUNK_CRC, "corrupt chunk")          /* payload crc mismatch */                              \
    X(RECORD, "corrupt record")            /* record runs past its chunk */                        \
    X(VARINT, "corrupt record")            /* malformed varint in a record */                      \
    X(FIELD, "corrupt record")             /* field runs past the body or is invalid */

#define MP_ERR_POS_(name, text) MP_EPOS_##name,
enum mp_errpos_e { MP_ERRNO_MAP(MP_ERR_POS_) MP_ERR_COUNT_ };
#undef MP_ERR_POS_
#define MP_ERR_DEF_(name, text) MP_E##name = -1 - MP_EPOS_##name,
enum mp_errno_e { MP_ERRNO_MAP(MP_ERR_DEF_) };
#undef MP_ERR_DEF_

typedef struct mp_err_s {
    int code;          /* MP_E*, 0 when no error */
    uint64_t offset;   /* byte offset in the dump where the problem was found */
    const char *doing; /* "reading chunk header" (static string), or NULL for non-input errors */
    char msg[200];     /* detail, e.g. "payload crc mismatch" */
} mp_err_t;

/* Text for an MP_E* code ("corrupt chunk"); "unknown error" for anything else. */
const char *mp_strerror(int code);
/* Fill err and return code. fmt is printf-style detail. */
int mp_err_set(mp_err_t *err, int code, uint64_t offset, const char *doing, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Format err as one line without a newline:
 * "corrupt chunk at offset 0x1a2c while reading chunk payload (payload crc mismatch)".
 * Returns buf. */
char *mp_err_format(const mp_err_t *err, char *buf, size_t size);

/* ---- the reader ---------------------------------------------------------------------------- */
typedef struct mp_reader_s mp_reader_t;

/* mp_reader_next() results (memray RecordResult). */
enum { MP_READ_OK = 1, MP_READ_EOF = 0 };

typedef struct mp_record_s {
    unsigned tag;        /* MP_REC_*, or an unknown tag (callers skip those) */
    const uint8_t *body; /* into the mapping; valid until mp_reader_close */
    size_t len;          /* body length */
    uint64_t offset;     /* file offset of the tag byte */
    uint64_t body_offset;
} mp_record_t;

/* Open and validate the header of the dump at path (mmap, or read() for non-regular files).
 * Returns 0 and *out, or a negative MP_E* with err filled. */
int mp_reader_open(mp_reader_t **out, const char *path, mp_err_t *err);
/* The same over a caller's buffer, which must outlive the reader (tests, fuzzing). */
int mp_reader_open_mem(mp_reader_t **out, const void *buf, size_t len, mp_err_t *err);
/* Release the reader and its mapping. NULL is fine. */
void mp_reader_close(mp_reader_t *r);

/* The validated file header; valid while r is. */
const mp_fmt_header_t *mp_reader_header(const mp_reader_t *r);
/* The file's size in bytes. */
uint64_t mp_reader_size(const mp_reader_t *r);

/* Next record, in file order, validating each chunk when it is entered. Returns MP_READ_OK with
 * *rec filled, MP_READ_EOF at the end of the data (clean or incomplete: see
 * mp_reader_incomplete), or a negative MP_E* with err filled (corruption). Unknown tags are
 * returned too; callers skip them. */
int mp_reader_next(mp_reader_t *r, mp_record_t *rec, mp_err_t *err);
/* After MP_READ_EOF: NULL if the data ended exactly at a chunk boundary, else a description of
 * how the last chunk was cut ("last chunk at offset 0x1a2c is cut short"), valid while r is. */
const char *mp_reader_tail_problem(const mp_reader_t *r);

/* ---- record bodies (FORMAT.md 5) ------------------------------------------------------------ */
typedef struct mp_bytes_s {
    const uint8_t *p; /* into the mapping, not NUL-terminated */
    size_t n;
} mp_bytes_t;

typedef struct mp_rec_process_s {
    mp_bytes_t exe, argv, cwd; /* argv: NUL-separated */
} mp_rec_process_t;
typedef struct mp_rec_thread_s {
    uint64_t stream, tid;
} mp_rec_thread_t;
typedef struct mp_rec_events_s {      /* an EVENTS record, or a STREAM record (2.0) */
    uint64_t stream, count, base_seq; /* STREAM: count and base_seq are 0 (none in the record) */
    const uint8_t *first;             /* first event */
    const uint8_t *end;               /* end of the record body */
    int cont; /* STREAM: the events run to the body's end, their deltas continuing the stream's */
} mp_rec_events_t;
typedef struct mp_rec_stack_s {
    uint64_t id, n;
    uint64_t shared;       /* 3.0: outer frames that are the previous STACK record's (0 before) */
    const uint8_t *frames; /* n - shared zigzag deltas; decode with mp_rec_stack_frames */
    const uint8_t *end;
} mp_rec_stack_t;
typedef struct mp_rec_module_s {
    uint64_t bias, nranges;
    const uint8_t *ranges; /* nranges varint pairs, already validated */
    mp_bytes_t path, build_id;
} mp_rec_module_t;
typedef struct mp_rec_sample_s {
    uint64_t time_ns, seq, rss;
} mp_rec_sample_t;
typedef struct mp_rec_marker_s {
    uint64_t kind, seq, time_ns;
} mp_rec_marker_t;
typedef struct mp_pystr_s { /* a CPython string copied verbatim (FORMAT.md 5.10) */
    uint64_t kind;          /* 0 unreadable, 1 Latin-1, 2 UCS-2LE, 4 UCS-4LE */
    mp_bytes_t data;        /* a multiple of kind bytes */
} mp_pystr_t;
typedef struct mp_rec_pycode_s {
    uint64_t id;           /* 1 .. 2^31-1: the code id of Python frames */
    uint64_t firstlineno;  /* 0 .. INT_MAX */
    uint64_t table_format; /* 1, 2, 3; other values are kept (a later minor may add one) */
    mp_pystr_t filename, name, qualname;
    mp_bytes_t linetable;
} mp_rec_pycode_t;
/* PYTHON hooks bits (FORMAT.md 5.11). */
enum {
    MP_PYHOOK_RAW = 1u << 0,         /* PYMEM_DOMAIN_RAW hook installed */
    MP_PYHOOK_MEM = 1u << 1,         /* PYMEM_DOMAIN_MEM */
    MP_PYHOOK_OBJ = 1u << 2,         /* PYMEM_DOMAIN_OBJ */
    MP_PYHOOK_REINSTALLED = 1u << 3, /* re-installed after start-up replaced them */
    MP_PYHOOK_STACKS = 1u << 4,      /* Python stacks are recorded */
};
typedef struct mp_rec_python_s {
    uint64_t hexversion; /* PY_VERSION_HEX, at most 32 bits */
    uint64_t hooks;      /* MP_PYHOOK_* bits */
    mp_bytes_t allocator;
} mp_rec_python_t;
typedef struct mp_rec_trailer_s {
    uint64_t events, allocs, frees, alloc_bytes, lost, end_time_ns, next_seq, stacks_dropped;
} mp_rec_trailer_t;

/* Decoders: each checks every field against the body end; extra trailing bytes are ignored.
 * Return 0 or a negative MP_E* with err filled (offset of the offending field). */
int mp_rec_process(const mp_reader_t *r, const mp_record_t *rec, mp_rec_process_t *out,
                   mp_err_t *err);
int mp_rec_thread(const mp_reader_t *r, const mp_record_t *rec, mp_rec_thread_t *out,
                  mp_err_t *err);
/* Validates the record's header fields only; the events are checked as they are decoded. */
int mp_rec_events(const mp_reader_t *r, const mp_record_t *rec, mp_rec_events_t *out,
                  mp_err_t *err);
/* STREAM (2.0), into the same shape (cont set); likewise. */
int mp_rec_stream(const mp_reader_t *r, const mp_record_t *rec, mp_rec_events_t *out,
                  mp_err_t *err);
/* Validates the frames the record holds, and its shared count against prev_n, the frames of the
 * previous STACK record in the file (0 for the first); fill them with mp_rec_stack_frames. */
int mp_rec_stack(const mp_reader_t *r, const mp_record_t *rec, uint64_t prev_n, mp_rec_stack_t *out,
                 mp_err_t *err);
/* Decode a validated stack's frames into out[s->n]: its own, then the s->shared it takes from the
 * previous STACK record, whose frames are prev[0 .. prev_n) (s->shared <= prev_n). */
void mp_rec_stack_frames(const mp_rec_stack_t *s, const uint64_t *prev, uint64_t prev_n,
                         uint64_t *out);
int mp_rec_module(const mp_reader_t *r, const mp_record_t *rec, mp_rec_module_t *out,
                  mp_err_t *err);
/* Range i (< m->nranges) of a validated module record. */
void mp_rec_module_range(const mp_rec_module_t *m, uint64_t i, uint64_t *start, uint64_t *end);
int mp_rec_sample(const mp_reader_t *r, const mp_record_t *rec, mp_rec_sample_t *out,
                  mp_err_t *err);
int mp_rec_marker(const mp_reader_t *r, const mp_record_t *rec, mp_rec_marker_t *out,
                  mp_err_t *err);
int mp_rec_trailer(const mp_reader_t *r, const mp_record_t *rec, mp_rec_trailer_t *out,
                   mp_err_t *err);
int mp_rec_lost(const mp_reader_t *r, const mp_record_t *rec, uint64_t *count, mp_err_t *err);
/* PYCODE (1.1): also checks id >= 1 and below 2^31, firstlineno <= INT_MAX, and each pystr's
 * kind and length. */
int mp_rec_pycode(const mp_reader_t *r, const mp_record_t *rec, mp_rec_pycode_t *out,
                  mp_err_t *err);
/* PYTHON (1.1): also checks that hexversion fits in 32 bits. */
int mp_rec_python(const mp_reader_t *r, const mp_record_t *rec, mp_rec_python_t *out,
                  mp_err_t *err);

/* ---- events cursor (FORMAT.md 5.3) ---------------------------------------------------------- */
typedef struct mp_event_s {
    uint64_t seq, ptr, size, stack; /* size, stack: 0 where the kind has none */
    unsigned kind;                  /* MP_EV_* */
    unsigned allocator;             /* MP_ALLOC_* */
} mp_event_t;

typedef struct mp_events_s {
    const uint8_t *base; /* file start, for offsets */
    const uint8_t *p, *end;
    uint64_t left;     /* events not yet decoded (STREAM: until end) */
    uint64_t seq, ptr; /* the last event's: what deltas apply to */
    uint64_t ptr2;     /* STREAM: the other base of ptr deltas (4.0, FORMAT.md 5.12) */
    uint64_t stack;    /* the last ALLOC's or FREE's (STREAM's same-stack flag) */
    int cont;
    int short_form; /* MP_SHORT_*: STREAM of a 4.0 dump or later: bit 7 of the head marks the
                     * short form (5.12), whose ptr field is zigzagged (4.x) or offset (5.0 on) */
} mp_events_t;
enum { MP_SHORT_NONE, MP_SHORT_ZIGZAG, MP_SHORT_OFFSET };

/* Before a stream's first record: no previous event (seq, ptr, the other ptr base and stack 0). */
void mp_events_reset(mp_events_t *it);
/* Start decoding the events of a record decoded by mp_rec_events or mp_rec_stream. A STREAM
 * record continues from the last event it decoded (the stream's previous record, FORMAT.md
 * 5.12): decode a stream's records in file order with one cursor, reset before the first. */
void mp_events_init(mp_events_t *it, const mp_reader_t *r, const mp_rec_events_t *ev);
/* Next event: 1 with *ev filled, 0 when the record is exhausted, or a negative MP_E*. */
int mp_events_next(mp_events_t *it, mp_event_t *ev, mp_err_t *err);

#endif
