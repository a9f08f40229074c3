/* test_reader.c - report/reader.c: a valid dump parses; every corruption kind gives its error
 * code at the right byte offset; truncation and a missing trailer are incomplete, not errors;
 * unknown tags are skipped; and random damage never crashes the reader or the model. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dumpgen.h"
#include "emit.h"
#include "model.h"
#include "reader.h"

/* ---- fixtures ------------------------------------------------------------------------------- */

static const uint64_t frames1[] = {0x401000, 0x401100, 0x7f0000001000};

/* Two chunks: process/threads/stack/events, then events/sample/marker/trailer. */
static void
build_valid(mp_dg_t *g, int with_trailer) {
    mp_dg_init(g);
    mp_dg_process(g, "/usr/bin/prog", "prog\0-x\0", 8, "/tmp");
    mp_dg_thread(g, 0, 100);
    mp_dg_thread(g, 1, 101);
    mp_dg_stack(g, 1, frames1, 3);
    mp_dg_events_begin(g, 0, 1);
    mp_dg_alloc(g, 1, 0x1000, 100, 1, MP_ALLOC_MALLOC);
    mp_dg_alloc(g, 3, 0x2000, 50, 1, MP_ALLOC_CALLOC);
    mp_dg_free_ev(g, 4, 0x1000, 0, MP_ALLOC_FREE);
    mp_dg_events_end(g);
    mp_dg_flush(g);
    mp_dg_events_begin(g, 1, 2);
    mp_dg_alloc(g, 2, 0x3000, 10, 0, MP_ALLOC_MALLOC);
    mp_dg_free_ev(g, 5, 0x2000, 0, MP_ALLOC_FREE);
    mp_dg_events_end(g);
    mp_dg_sample(g, 1000000, 3, 8192);
    mp_dg_marker(g, MP_MARK_EXIT, 6, 2000000);
    if (with_trailer) mp_dg_trailer(g, 5, 3, 2, 160, 0, 2500000, 6, 0);
    mp_dg_flush(g);
}

typedef struct counts_s {
    int per_tag[256];
    int total;
    int rc; /* the final mp_reader_next result */
    mp_err_t err;
    const char *tail;
} counts_t;

static counts_t
read_all(const uint8_t *buf, size_t len) {
    counts_t c;
    memset(&c, 0, sizeof c);
    mp_reader_t *r = NULL;
    c.rc = mp_reader_open_mem(&r, buf, len, &c.err);
    if (c.rc < 0) return c;
    mp_record_t rec;
    while ((c.rc = mp_reader_next(r, &rec, &c.err)) == MP_READ_OK) {
        c.per_tag[rec.tag]++;
        c.total++;
    }
    c.tail = mp_reader_tail_problem(r) ? "tail" : NULL;
    mp_reader_close(r);
    return c;
}

static int
open_err(const uint8_t *buf, size_t len, mp_err_t *err) {
    mp_reader_t *r = NULL;
    int rc = mp_reader_open_mem(&r, buf, len, err);
    mp_reader_close(r);
    return rc;
}

/* Rewrite chunk header at off with a new length (and a valid header crc). */
static void
set_chunk_len(uint8_t *buf, size_t off, uint32_t len) {
    uint32_t pcrc = mp_get_u32(buf + off + 8);
    mp_chunk_header_encode(len, pcrc, buf + off);
}

/* ---- valid input ---------------------------------------------------------------------------- */

Test(reader, valid_dump_counts) {
    mp_dg_t g;
    build_valid(&g, 1);
    cr_assert_eq(g.nchunks, 2);
    counts_t c = read_all(g.buf, g.len);
    cr_assert_eq(c.rc, MP_READ_EOF);
    cr_assert_null(c.tail);
    cr_assert_eq(c.per_tag[MP_REC_PROCESS], 1);
    cr_assert_eq(c.per_tag[MP_REC_THREAD], 2);
    cr_assert_eq(c.per_tag[MP_REC_STACK], 1);
    cr_assert_eq(c.per_tag[MP_REC_EVENTS], 2);
    cr_assert_eq(c.per_tag[MP_REC_SAMPLE], 1);
    cr_assert_eq(c.per_tag[MP_REC_MARKER], 1);
    cr_assert_eq(c.per_tag[MP_REC_TRAILER], 1);
    cr_assert_eq(c.total, 9);
    mp_dg_free(&g);
}

Test(reader, decodes_bodies) {
    mp_dg_t g;
    build_valid(&g, 1);
    mp_reader_t *r = NULL;
    mp_err_t err;
    cr_assert_eq(mp_reader_open_mem(&r, g.buf, g.len, &err), 0);
    cr_assert_eq(mp_reader_header(r)->pid, 1234);
    cr_assert_eq(mp_reader_size(r), g.len);
    mp_record_t rec;
    int events = 0;
    while (mp_reader_next(r, &rec, &err) == MP_READ_OK) {
        if (rec.tag == MP_REC_PROCESS) {
            mp_rec_process_t p;
            cr_assert_eq(mp_rec_process(r, &rec, &p, &err), 0);
            cr_assert_eq(p.exe.n, 13);
            cr_assert_eq(memcmp(p.exe.p, "/usr/bin/prog", 13), 0);
            cr_assert_eq(p.argv.n, 8);
            cr_assert_eq(p.cwd.n, 4);
        } else if (rec.tag == MP_REC_STACK) {
            mp_rec_stack_t s;
            cr_assert_eq(mp_rec_stack(r, &rec, 0, &s, &err), 0);
            cr_assert_eq(s.id, 1);
            cr_assert_eq(s.n, 3);
            uint64_t f[3];
            mp_rec_stack_frames(&s, NULL, 0, f);
            cr_assert_arr_eq(f, frames1, sizeof f);
        } else if (rec.tag == MP_REC_EVENTS) {
            mp_rec_events_t e;
            cr_assert_eq(mp_rec_events(r, &rec, &e, &err), 0);
            mp_events_t it;
            mp_event_t ev;
            mp_events_init(&it, r, &e);
            if (events == 0) {
                cr_assert_eq(e.stream, 0);
                cr_assert_eq(e.count, 3);
                cr_assert_eq(mp_events_next(&it, &ev, &err), 1);
                cr_assert_eq(ev.seq, 1);
                cr_assert_eq(ev.ptr, 0x1000);
                cr_assert_eq(ev.size, 100);
                cr_assert_eq(ev.stack, 1);
                cr_assert_eq(ev.kind, MP_EV_ALLOC);
                cr_assert_eq(mp_events_next(&it, &ev, &err), 1);
                cr_assert_eq(ev.allocator, MP_ALLOC_CALLOC);
                cr_assert_eq(ev.ptr, 0x2000);
                cr_assert_eq(mp_events_next(&it, &ev, &err), 1);
                cr_assert_eq(ev.kind, MP_EV_FREE);
                cr_assert_eq(ev.seq, 4);
                cr_assert_eq(ev.ptr, 0x1000, "negative ptr delta");
                cr_assert_eq(mp_events_next(&it, &ev, &err), 0);
            }
            events++;
        } else if (rec.tag == MP_REC_TRAILER) {
            mp_rec_trailer_t t;
            cr_assert_eq(mp_rec_trailer(r, &rec, &t, &err), 0);
            cr_assert_eq(t.alloc_bytes, 160);
            cr_assert_eq(t.next_seq, 6);
        }
    }
    cr_assert_eq(events, 2);
    mp_reader_close(r);
    mp_dg_free(&g);
}

Test(reader, module_record) {
    mp_dg_t g;
    mp_dg_init(&g);
    uint64_t ranges[] = {0x1000, 0x2000, 0x5000, 0x9000};
    uint8_t id[] = {1, 2, 3, 4};
    mp_dg_module(&g, 0x400, ranges, 2, "/lib/libx.so", id, 4);
    mp_dg_flush(&g);
    mp_reader_t *r = NULL;
    mp_err_t err;
    cr_assert_eq(mp_reader_open_mem(&r, g.buf, g.len, &err), 0);
    mp_record_t rec;
    cr_assert_eq(mp_reader_next(r, &rec, &err), MP_READ_OK);
    mp_rec_module_t m;
    cr_assert_eq(mp_rec_module(r, &rec, &m, &err), 0);
    cr_assert_eq(m.bias, 0x400);
    cr_assert_eq(m.nranges, 2);
    uint64_t s, e;
    mp_rec_module_range(&m, 1, &s, &e);
    cr_assert_eq(s, 0x5000);
    cr_assert_eq(e, 0x9000);
    cr_assert_eq(m.path.n, 12);
    cr_assert_eq(m.build_id.n, 4);
    mp_reader_close(r);
    mp_dg_free(&g);
}

Test(reader, larger_header_is_honoured) {
    mp_fmt_header_t h = {.major = MP_FORMAT_MAJOR, .header_size = 96, .ptr_size = 8, .pid = 9};
    mp_dg_t g;
    mp_dg_init_header(&g, &h);
    mp_dg_thread(&g, 3, 4);
    mp_dg_flush(&g);
    cr_assert_eq(g.chunk_off[0], 96);
    counts_t c = read_all(g.buf, g.len);
    cr_assert_eq(c.rc, MP_READ_EOF);
    cr_assert_eq(c.per_tag[MP_REC_THREAD], 1);
    mp_dg_free(&g);
}

Test(reader, file_roundtrip_via_open) {
    mp_dg_t g;
    build_valid(&g, 1);
    char *path = mp_dg_write_temp(&g);
    mp_reader_t *r = NULL;
    mp_err_t err;
    cr_assert_eq(mp_reader_open(&r, path, &err), 0);
    mp_record_t rec;
    int n = 0;
    while (mp_reader_next(r, &rec, &err) == MP_READ_OK) n++;
    cr_assert_eq(n, 9);
    mp_reader_close(r);
    unlink(path);
    free(path);
    mp_dg_free(&g);
}

Test(reader, missing_file_is_io_error) {
    mp_reader_t *r = NULL;
    mp_err_t err;
    cr_assert_eq(mp_reader_open(&r, "/nonexistent/dir/x.dump", &err), MP_EIO);
    cr_assert_null(r);
    cr_assert_null(err.doing);
    char line[300];
    cr_assert_str_eq(mp_err_format(&err, line, sizeof line),
                     "cannot read (No such file or directory)");
    cr_assert_eq(mp_reader_open(&r, "/tmp", &err), MP_EIO, "a directory");
}

/* ---- header corruption ---------------------------------------------------------------------- */

Test(reader, bad_file_magic) {
    mp_dg_t g;
    build_valid(&g, 1);
    g.buf[3] = 'x';
    mp_err_t err;
    cr_assert_eq(open_err(g.buf, g.len, &err), MP_ENOTDUMP);
    cr_assert_eq(err.offset, 0);
    char line[300];
    cr_assert_str_eq(mp_err_format(&err, line, sizeof line),
                     "not a memprof dump at offset 0x0 while reading file header (bad magic)");
    /* A short text file is not a dump either (not "truncated"). */
    cr_assert_eq(open_err((const uint8_t *)"hello\n", 6, &err), MP_ENOTDUMP);
    mp_dg_free(&g);
}

Test(reader, newer_major) {
    mp_fmt_header_t h = {.major = MP_FORMAT_MAJOR + 1, .minor = 0, .header_size = 64};
    mp_dg_t g;
    mp_dg_init_header(&g, &h);
    mp_err_t err;
    cr_assert_eq(open_err(g.buf, g.len, &err), MP_ENEWER);
    cr_assert_eq(err.offset, 8);
    char want[100];
    snprintf(want, sizeof want, "format %d.0 is newer than this reporter (%d.%d)",
             MP_FORMAT_MAJOR + 1, MP_FORMAT_MAJOR, MP_FORMAT_MINOR);
    cr_assert_str_eq(err.msg, want);
    mp_dg_free(&g);
}

Test(reader, newer_minor_is_read) {
    mp_fmt_header_t h = {.major = MP_FORMAT_MAJOR, .minor = MP_FORMAT_MINOR + 3, .header_size = 64};
    mp_dg_t g;
    mp_dg_init_header(&g, &h);
    mp_err_t err;
    cr_assert_eq(open_err(g.buf, g.len, &err), 0);
    mp_dg_free(&g);
}

Test(reader, header_crc) {
    mp_dg_t g;
    build_valid(&g, 1);
    g.buf[25] ^= 0x40; /* inside the pid */
    mp_err_t err;
    cr_assert_eq(open_err(g.buf, g.len, &err), MP_EHEADER);
    cr_assert_eq(err.offset, 60);
    cr_assert_str_eq(err.msg, "header crc mismatch");
    mp_dg_free(&g);
}

Test(reader, shorter_than_header) {
    mp_dg_t g;
    build_valid(&g, 1);
    mp_err_t err;
    cr_assert_eq(open_err(g.buf, 40, &err), MP_ESHORT);
    cr_assert_eq(err.offset, 40);
    cr_assert_eq(open_err(g.buf, 63, &err), MP_ESHORT);
    cr_assert_eq(open_err(g.buf, 5, &err), MP_ESHORT, "a prefix of the magic");
    cr_assert_eq(open_err(g.buf, 0, &err), MP_ESHORT, "an empty file");
    cr_assert_eq(err.offset, 0);
    mp_dg_free(&g);
}

Test(reader, bad_header_size) {
    mp_fmt_header_t h = {.major = MP_FORMAT_MAJOR, .header_size = 32};
    mp_dg_t g;
    mp_dg_init_header(&g, &h);
    mp_err_t err;
    cr_assert_eq(open_err(g.buf, g.len, &err), MP_EHEADER);
    cr_assert_eq(err.offset, 12);
    mp_dg_free(&g);

    h.header_size = 4096; /* past the end of the file */
    uint8_t buf[MP_FMT_HEADER_SIZE];
    mp_fmt_header_encode(&h, buf);
    cr_assert_eq(open_err(buf, sizeof buf, &err), MP_ESHORT);
    cr_assert_eq(err.offset, 64);
}

/* ---- chunk corruption ----------------------------------------------------------------------- */

Test(reader, chunk_bad_magic) {
    mp_dg_t g;
    build_valid(&g, 1);
    g.buf[g.chunk_off[1] + 2] = 'Z';
    counts_t c = read_all(g.buf, g.len);
    cr_assert_eq(c.rc, MP_ECHUNK_MAGIC);
    cr_assert_eq(c.err.offset, g.chunk_off[1]);
    cr_assert_eq(c.total, 5, "the first chunk's records came out first");
    mp_dg_free(&g);
}

Test(reader, chunk_header_crc) {
    mp_dg_t g;
    build_valid(&g, 1);
    g.buf[g.chunk_off[0] + 9] ^= 1; /* payload crc field: covered by the header crc */
    counts_t c = read_all(g.buf, g.len);
    cr_assert_eq(c.rc, MP_ECHUNK_HCRC);
    cr_assert_eq(c.err.offset, g.chunk_off[0]);
    cr_assert_eq(c.total, 0);
    mp_dg_free(&g);
}

Test(reader, chunk_payload_crc) {
    mp_dg_t g;
    build_valid(&g, 1);
    g.buf[g.chunk_off[0] + MP_CHUNK_HEADER_SIZE + 5] ^= 0x20;
    counts_t c = read_all(g.buf, g.len);
    cr_assert_eq(c.rc, MP_ECHUNK_CRC);
    cr_assert_eq(c.err.offset, g.chunk_off[0]);
    char line[300];
    char want[200];
    snprintf(want, sizeof want,
             "corrupt chunk at offset 0x%llx while reading chunk payload (payload crc mismatch)",
             (unsigned long long)g.chunk_off[0]);
    cr_assert_str_eq(mp_err_format(&c.err, line, sizeof line), want);
    mp_dg_free(&g);
}

Test(reader, chunk_overlong_length) {
    mp_dg_t g;
    build_valid(&g, 1);
    set_chunk_len(g.buf, g.chunk_off[0], MP_CHUNK_MAX_PAYLOAD + 1);
    counts_t c = read_all(g.buf, g.len);
    cr_assert_eq(c.rc, MP_ECHUNK_LEN);
    cr_assert_eq(c.err.offset, g.chunk_off[0]);
    mp_dg_free(&g);
}

Test(reader, chunk_length_mismatch_is_crc_error) {
    /* A plausible but wrong length before the last chunk: the payload crc catches it. */
    mp_dg_t g;
    build_valid(&g, 1);
    uint32_t len = mp_get_u32(g.buf + g.chunk_off[0] + 4);
    set_chunk_len(g.buf, g.chunk_off[0], len - 3);
    counts_t c = read_all(g.buf, g.len);
    cr_assert_eq(c.rc, MP_ECHUNK_CRC);
    mp_dg_free(&g);
}

Test(reader, garbage_between_chunks) {
    static const uint8_t junk[] = "junk junk junk junk";
    mp_dg_t h;
    build_valid(&h, 1);
    uint8_t *buf = malloc(h.len + sizeof junk);
    memcpy(buf, h.buf, h.chunk_off[1]);
    memcpy(buf + h.chunk_off[1], junk, sizeof junk);
    memcpy(buf + h.chunk_off[1] + sizeof junk, h.buf + h.chunk_off[1], h.len - h.chunk_off[1]);
    counts_t c = read_all(buf, h.len + sizeof junk);
    cr_assert_eq(c.rc, MP_ECHUNK_MAGIC);
    cr_assert_eq(c.err.offset, h.chunk_off[1]);
    free(buf);
    mp_dg_free(&h);
}

/* ---- record corruption ---------------------------------------------------------------------- */

/* Append raw bytes to the open chunk. */
static void
raw(mp_dg_t *g, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (g->clen == g->ccap) {
            g->ccap = g->ccap ? 2 * g->ccap : 64;
            g->chunk = realloc(g->chunk, g->ccap);
        }
        g->chunk[g->clen++] = p[i];
    }
}

Test(reader, record_past_chunk_end) {
    mp_dg_t g;
    mp_dg_init(&g);
    mp_dg_thread(&g, 1, 2);
    uint64_t off = mp_dg_next_offset(&g);
    /* tag SAMPLE, length 50, but only 3 bytes follow in the chunk */
    static const uint8_t bad[] = {MP_REC_SAMPLE, 50, 1, 2, 3};
    raw(&g, bad, sizeof bad);
    mp_dg_flush(&g);
    counts_t c = read_all(g.buf, g.len);
    cr_assert_eq(c.rc, MP_ERECORD);
    cr_assert_eq(c.err.offset, off);
    cr_assert_eq(c.total, 1);
    mp_dg_free(&g);
}

Test(reader, bad_length_varint) {
    mp_dg_t g;
    mp_dg_init(&g);
    uint64_t off = mp_dg_next_offset(&g);
    static const uint8_t bad[] = {MP_REC_THREAD, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0xff,          0xff, 0xff, 0xff, 0xff, 0x01};
    raw(&g, bad, sizeof bad);
    mp_dg_flush(&g);
    counts_t c = read_all(g.buf, g.len);
    cr_assert_eq(c.rc, MP_EVARINT);
    cr_assert_eq(c.err.offset, off + 1);
    mp_dg_free(&g);
}

/* Load a dump through the model; returns the rc and fills err. */
static int
model_rc(const uint8_t *buf, size_t len, mp_err_t *err, mp_model_t **out) {
    mp_reader_t *r = NULL;
    mp_model_t *m = NULL;
    int rc = mp_reader_open_mem(&r, buf, len, err);
    mp_model_opts_t o = {.at = mp_at_default, .lines = true};
    if (rc == 0) rc = mp_model_build(&m, r, &o, err);
    if (out)
        *out = m;
    else
        mp_model_free(m);
    return rc;
}

Test(reader, bad_varint_in_record) {
    mp_dg_t g;
    mp_dg_init(&g);
    mp_dg_thread(&g, 1, 2);
    uint64_t off = mp_dg_next_offset(&g);
    /* SAMPLE body: an 11-byte varint */
    uint8_t body[12];
    memset(body, 0x80, 11);
    body[11] = 0;
    mp_dg_record(&g, MP_REC_SAMPLE, body, sizeof body);
    mp_dg_flush(&g);
    mp_err_t err;
    cr_assert_eq(model_rc(g.buf, g.len, &err, NULL), MP_EVARINT);
    cr_assert_eq(err.offset, off + 2, "the offending varint, after tag and length");
    cr_assert_str_eq(err.doing, "reading sample record");
    mp_dg_free(&g);
}

Test(reader, field_past_record_end) {
    mp_dg_t g;
    mp_dg_init(&g);
    uint64_t off = mp_dg_next_offset(&g);
    static const uint8_t body[] = {5, 0x80}; /* stream 5, then a varint cut by the body end */
    mp_dg_record(&g, MP_REC_THREAD, body, sizeof body);
    mp_dg_thread(&g, 1, 1); /* the chunk goes on: the varint would "continue" into it */
    mp_dg_flush(&g);
    mp_err_t err;
    cr_assert_eq(model_rc(g.buf, g.len, &err, NULL), MP_EFIELD);
    cr_assert_eq(err.offset, off + 3);
    mp_dg_free(&g);

    /* A string longer than its record. */
    mp_dg_init(&g);
    off = mp_dg_next_offset(&g);
    static const uint8_t proc[] = {40, 'a', 'b'};
    mp_dg_record(&g, MP_REC_PROCESS, proc, sizeof proc);
    mp_dg_flush(&g);
    cr_assert_eq(model_rc(g.buf, g.len, &err, NULL), MP_EFIELD);
    cr_assert_eq(err.offset, off + 2);
    mp_dg_free(&g);
}

Test(reader, bad_events) {
    mp_err_t err;
    mp_dg_t g;
    /* An event head with bit 7 set. */
    mp_dg_init(&g);
    uint64_t off = mp_dg_next_offset(&g);
    static const uint8_t ev1[] = {0, 1, 0, 0x80, 1, 2};
    mp_dg_record(&g, MP_REC_EVENTS, ev1, sizeof ev1);
    mp_dg_flush(&g);
    cr_assert_eq(model_rc(g.buf, g.len, &err, NULL), MP_EFIELD);
    cr_assert_eq(err.offset, off + 2 + 3);
    mp_dg_free(&g);
    /* An unknown kind (5). */
    mp_dg_init(&g);
    static const uint8_t ev2[] = {0, 1, 0, 5, 1, 2};
    mp_dg_record(&g, MP_REC_EVENTS, ev2, sizeof ev2);
    mp_dg_flush(&g);
    cr_assert_eq(model_rc(g.buf, g.len, &err, NULL), MP_EFIELD);
    mp_dg_free(&g);
    /* A count the body cannot hold. */
    mp_dg_init(&g);
    off = mp_dg_next_offset(&g);
    static const uint8_t ev3[] = {0, 0x7f, 0, 0, 1, 2, 100, 0};
    mp_dg_record(&g, MP_REC_EVENTS, ev3, sizeof ev3);
    mp_dg_flush(&g);
    cr_assert_eq(model_rc(g.buf, g.len, &err, NULL), MP_EFIELD);
    cr_assert_eq(err.offset, off + 3);
    mp_dg_free(&g);
    /* Two events announced, the second cut short. */
    mp_dg_init(&g);
    static const uint8_t ev4[] = {0, 2, 0, 0, 1, 2, 100, 0, 0, 1, 2};
    mp_dg_record(&g, MP_REC_EVENTS, ev4, sizeof ev4);
    mp_dg_flush(&g);
    cr_assert_eq(model_rc(g.buf, g.len, &err, NULL), MP_EFIELD);
    mp_dg_free(&g);
}

/* ---- STREAM records (format 1.2) ------------------------------------------------------------ */

/* The model of g's dump, which must load, with these totals and every FREE's address known (a
 * STREAM ptr decoded wrong frees an unknown block). The caller frees it. */
static mp_model_t *
stream_model(const mp_dg_t *g, uint64_t allocs, uint64_t frees, uint64_t leaked, uint64_t peak) {
    mp_err_t err;
    mp_model_t *m = NULL;
    cr_assert_eq(model_rc(g->buf, g->len, &err, &m), 0, "%s", err.msg);
    cr_assert_eq(m->summary.total_allocations, allocs);
    cr_assert_eq(m->summary.total_frees, frees);
    cr_assert_eq(m->summary.unknown_frees, 0, "a FREE's address was decoded wrong");
    cr_assert_eq(m->summary.leaked_bytes, leaked);
    cr_assert_eq(m->summary.peak_bytes, peak);
    return m;
}

/* Stream 0's events in three STREAM records over two chunks, stream 1's in between: each record's
 * first deltas (and same-stack flag) are from its stream's last event, not from zero. In a dump of
 * major version major: from 4.0 the FREE is in the short form (FORMAT.md 5.12), before it has the
 * seq + 1 flag. */
static void
stream_records_continue(unsigned major) {
    mp_dg_t g;
    mp_fmt_header_t h = {.major = major, .header_size = 64, .ptr_size = 8, .pid = 9};
    mp_dg_init_header(&g, &h);
    mp_dg_stream_begin(&g, 0);
    mp_dg_alloc(&g, 1, 0x7f0000001000, 100, 4, MP_ALLOC_MALLOC);
    mp_dg_alloc(&g, 3, 0x7f0000002000, 200, 4, MP_ALLOC_MALLOC); /* the same stack: flagged */
    mp_dg_events_end(&g);
    mp_dg_stream_begin(&g, 1);
    mp_dg_alloc(&g, 2, 0x550000000010, 7, 7, MP_ALLOC_MALLOC);
    mp_dg_events_end(&g);
    mp_dg_flush(&g);
    mp_dg_stream_begin(&g, 0);
    uint64_t at = g.evlen;
    mp_dg_free_ev(&g, 4, 0x7f0000001000, 9, MP_ALLOC_FREE); /* ptr -0x1000, seq + 1: flagged */
    cr_assert_eq(g.ev[at] & 0x80, 0x80);
    /* 4.0: the short form, with ptr -0x1000 / 16 and stack 9 in 3 bytes each; the ptr field is
     * -256 + 2^22 = 0x3fff00 from 5.0, zigzag(-256) = 511 in 4.x. */
    cr_assert_eq(g.evlen - at, major >= 4 ? 7u : 4u);
    if (major >= 5)
        cr_assert(g.ev[at + 1] == 0x00 && g.ev[at + 2] == 0xff && g.ev[at + 3] == 0x3f);
    else if (major == 4)
        cr_assert(g.ev[at + 1] == 0xff && g.ev[at + 2] == 0x01 && g.ev[at + 3] == 0x00);
    mp_dg_events_end(&g);
    mp_dg_stream_begin(&g, 0);
    mp_dg_alloc(&g, 9, 0x7f0000001000, 50, 9, MP_ALLOC_MALLOC); /* ptr +0, seq +5, stack 9 */
    mp_dg_events_end(&g);
    mp_dg_stream_begin(&g, 1);
    mp_dg_events_end(&g); /* empty: skipped */
    mp_dg_flush(&g);
    cr_assert_eq(g.last_seq[0], 9);
    mp_model_t *m = stream_model(&g, 4, 1, 200 + 7 + 50, 307);
    uint64_t by_stack[10] = {0};
    for (size_t i = 0; i < m->nleaks; i++)
        if (m->leaks[i].stack < 10) by_stack[m->leaks[i].stack] += m->leaks[i].bytes;
    cr_assert_eq(by_stack[4], 200);
    cr_assert_eq(by_stack[7], 7);
    cr_assert_eq(by_stack[9], 50, "the stack carried into a later record was lost");
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(reader, stream_records_continue_across_records_and_chunks) {
    stream_records_continue(MP_FORMAT_MAJOR);
}

Test(reader, stream_short_events_against_the_other_base) {
    /* Pointers alternating between two regions (pymalloc's arenas, the malloc heap): after the
     * jump, each event is short against the other base, which the bases then trade. */
    mp_dg_t g;
    mp_dg_init(&g);
    mp_dg_stream_begin(&g, 0);
    mp_dg_alloc(&g, 1, 0x7f0000001000, 100, 4, MP_ALLOC_PYMEM_OBJ); /* long: from 0 */
    mp_dg_alloc(&g, 2, 0x550000000010, 600, 4, MP_ALLOC_PYMEM_OBJ); /* long: far from both */
    uint64_t at = g.evlen;
    mp_dg_free_ev(&g, 3, 0x7f0000001000, 4, MP_ALLOC_PYMEM_OBJ); /* the other base, +0 */
    cr_assert_eq(g.evlen - at, 4u);
    cr_assert_eq(g.ev[at] & 0x80, 0x80);
    cr_assert_eq(g.ev[at + 3], 0xc0, "bit 23: the other base; bit 22: the offset of +0");
    mp_dg_alloc(&g, 4, 0x7f0000001100, 50, 4, MP_ALLOC_PYMEM_OBJ); /* the previous ptr, +0x100 */
    mp_dg_events_end(&g);
    mp_dg_stream_begin(&g, 0); /* the bases carry into the next record */
    at = g.evlen;
    mp_dg_free_ev(&g, 5, 0x550000000010, 4, MP_ALLOC_PYMEM_OBJ); /* the other base again */
    cr_assert_eq(g.evlen - at, 4u);
    cr_assert_eq(g.ev[at + 3], 0xc0);
    mp_dg_free_ev(&g, 6, 0x7f0000001100, 4, MP_ALLOC_PYMEM_OBJ);
    mp_dg_events_end(&g);
    mp_dg_flush(&g);
    mp_model_free(stream_model(&g, 3, 3, 0, 700));
    mp_dg_free(&g);
}

Test(reader, stream_records_of_older_dumps) {
    stream_records_continue(4);
    stream_records_continue(3);
    stream_records_continue(2);
}

/* A dump of one STREAM record with body b[0..n) (then, with more, a THREAD record: the chunk goes
 * on, and the events must not read into it): the reader fails with MP_EFIELD, at byte at of the
 * record (its tag is byte 0, then a 1-byte length), or anywhere (at < 0). */
static void
bad_stream(const uint8_t *b, size_t n, int more, int at) {
    mp_err_t err;
    mp_dg_t g;
    mp_dg_init(&g);
    uint64_t off = mp_dg_next_offset(&g);
    mp_dg_record(&g, MP_REC_STREAM, b, n);
    if (more) mp_dg_thread(&g, 0, 1);
    mp_dg_flush(&g);
    cr_assert_eq(model_rc(g.buf, g.len, &err, NULL), MP_EFIELD);
    if (at >= 0) cr_assert_eq(err.offset, off + (uint64_t)at);
    mp_dg_free(&g);
}

Test(reader, bad_stream_records) {
    /* Kind 3 in a head byte, after one good event (prefix varints: seq 1, ptr +2, size 100,
     * stack 0). */
    static const uint8_t st1[] = {0, 0, 0x03, 0x05, 0xc9, 0x01, 0x03, 0x03, 0x05};
    bad_stream(st1, sizeof st1, 0, 2 + 6);
    /* An event cut by the body end (its stack is missing); then one whose size is cut. */
    static const uint8_t st2[] = {0, 0, 0x03, 0x05, 0xc9};
    bad_stream(st2, sizeof st2, 1, -1);
    static const uint8_t st3[] = {0, 0, 0x03, 0x05, 0x04, 0x01}; /* size: 3 bytes, 2 left */
    bad_stream(st3, sizeof st3, 1, 2 + 4);
    /* No stream id at all. */
    mp_err_t err;
    mp_dg_t g;
    mp_dg_init(&g);
    static const uint8_t none[1] = {0};
    mp_dg_record(&g, MP_REC_STREAM, none, 0);
    mp_dg_flush(&g);
    cr_assert_lt(model_rc(g.buf, g.len, &err, NULL), 0);
    mp_dg_free(&g);
    /* A short event (4.0) cut by the body end: its ptr field needs 3 bytes, 2 are left; then a
     * short ALLOC whose size is cut. */
    static const uint8_t st5[] = {0, 0x80, 0x02, 0x00};
    bad_stream(st5, sizeof st5, 1, 2 + 2);
    static const uint8_t st6[] = {0, 0x80, 0x02, 0x00, 0x00, 0x01};
    bad_stream(st6, sizeof st6, 1, -1);
    /* A REALLOC_FAIL with the same-stack flag (it has no stack). */
    static const uint8_t st4[] = {0, 0x96, 0x01};
    bad_stream(st4, sizeof st4, 0, 3);
}

/* ---- Python records (format 1.1) ------------------------------------------------------------- */

Test(reader, pycode_and_python_records) {
    mp_dg_t g;
    mp_dg_init(&g);
    static const uint8_t ucs2[] = {0x66, 0x00, 0x0d, 0x54}; /* "f名" */
    static const uint8_t table[] = {0x80, 0x00, 0xd8, 0x01, 0x02};
    mp_dg_pycode(&g, 7, 42, 3, mp_dg_latin1("/x/caf\xe9.py"), (mp_dg_pystr_t){2, ucs2, 4},
                 mp_dg_latin1("K.f"), table, sizeof table);
    mp_dg_python(&g, 0x030b07f0, 0x1f, "malloc");
    mp_dg_flush(&g);
    mp_reader_t *r = NULL;
    mp_err_t err;
    cr_assert_eq(mp_reader_open_mem(&r, g.buf, g.len, &err), 0);
    mp_record_t rec;
    cr_assert_eq(mp_reader_next(r, &rec, &err), MP_READ_OK);
    cr_assert_eq(rec.tag, MP_REC_PYCODE);
    cr_assert_str_eq(mp_rec_name(rec.tag), "pycode");
    mp_rec_pycode_t c;
    cr_assert_eq(mp_rec_pycode(r, &rec, &c, &err), 0);
    cr_assert_eq(c.id, 7);
    cr_assert_eq(c.firstlineno, 42);
    cr_assert_eq(c.table_format, 3);
    cr_assert_eq(c.filename.kind, 1);
    cr_assert_eq(c.filename.data.n, 10);
    cr_assert_eq(c.name.kind, 2);
    cr_assert_eq(c.name.data.n, 4);
    cr_assert_eq(c.qualname.data.n, 3);
    cr_assert_eq(c.linetable.n, sizeof table);
    cr_assert_arr_eq(c.linetable.p, table, sizeof table);
    cr_assert_eq(mp_reader_next(r, &rec, &err), MP_READ_OK);
    cr_assert_str_eq(mp_rec_name(rec.tag), "python");
    mp_rec_python_t py;
    cr_assert_eq(mp_rec_python(r, &rec, &py, &err), 0);
    cr_assert_eq(py.hexversion, 0x030b07f0);
    cr_assert_eq(py.hooks, 0x1f);
    cr_assert_eq(py.allocator.n, 6);
    mp_reader_close(r);

    mp_model_t *m = NULL;
    cr_assert_eq(model_rc(g.buf, g.len, &err, &m), 0);
    cr_assert_eq(m->npycodes, 1);
    const mp_pycode_t *pc = mp_model_pycode(m, 7);
    cr_assert_not_null(pc);
    cr_assert_str_eq(pc->filename, "/x/caf\xc3\xa9.py");
    cr_assert_str_eq(pc->name, "f\xe5\x90\x8d");
    cr_assert_str_eq(pc->qualname, "K.f");
    cr_assert_eq(pc->firstlineno, 42);
    cr_assert_null(mp_model_pycode(m, 8));
    cr_assert(m->python.present);
    cr_assert_str_eq(m->python.allocator, "malloc");
    mp_model_free(m);
    mp_dg_free(&g);
}

/* A PYCODE record whose body is `body`: the model must refuse it with MP_EFIELD at off + at. */
static void
bad_pycode(const uint8_t *body, size_t len, uint64_t at, const char *what) {
    mp_dg_t g;
    mp_dg_init(&g);
    uint64_t off = mp_dg_next_offset(&g);
    mp_dg_record(&g, MP_REC_PYCODE, body, len);
    mp_dg_flush(&g);
    mp_err_t err;
    cr_expect_eq(model_rc(g.buf, g.len, &err, NULL), MP_EFIELD, "%s", what);
    cr_expect_eq(err.offset, off + 2 + at, "%s: offset", what);
    cr_expect_str_eq(err.doing, "reading pycode record", "%s", what);
    char line[400];
    cr_expect_not_null(strstr(mp_err_format(&err, line, sizeof line), "corrupt record"));
    mp_dg_free(&g);
}

Test(reader, bad_pycode_fields) {
    /* id, firstlineno, format, filename (kind, bytes), name, qualname, linetable */
    static const uint8_t ok[] = {1, 3, 3, 1, 1, 'a', 1, 1, 'f', 1, 0, 0};
    mp_dg_t g;
    mp_dg_init(&g);
    mp_dg_record(&g, MP_REC_PYCODE, ok, sizeof ok);
    mp_dg_flush(&g);
    mp_err_t err;
    cr_assert_eq(model_rc(g.buf, g.len, &err, NULL), 0, "the reference body is valid");
    mp_dg_free(&g);

    static const uint8_t id0[] = {0, 3, 3, 1, 1, 'a', 1, 1, 'f', 1, 0, 0};
    bad_pycode(id0, sizeof id0, 0, "code id 0");
    static const uint8_t id31[] = {0x80, 0x80, 0x80, 0x80, 0x08, 3, 3, 1,
                                   1,    'a',  1,    1,    'f',  1, 0, 0};
    bad_pycode(id31, sizeof id31, 0, "code id 2^31");
    static const uint8_t line[] = {1, 0x80, 0x80, 0x80, 0x80, 0x08, 3, 1,
                                   1, 'a',  1,    1,    'f',  1,    0, 0};
    bad_pycode(line, sizeof line, 1, "firstlineno 2^31");
    static const uint8_t kind3[] = {1, 3, 3, 3, 3, 'a', 'b', 'c', 1, 1, 'f', 1, 0, 0};
    bad_pycode(kind3, sizeof kind3, 3, "string kind 3");
    static const uint8_t odd2[] = {1, 3, 3, 1, 1, 'a', 2, 3, 'f', 0, 'g', 1, 0, 0};
    bad_pycode(odd2, sizeof odd2, 6, "UCS-2 name of 3 bytes");
    static const uint8_t odd4[] = {1, 3, 3, 1, 1, 'a', 1, 1, 'f', 4, 2, 'q', 0, 0};
    bad_pycode(odd4, sizeof odd4, 9, "UCS-4 qualname of 2 bytes");
    static const uint8_t cut[] = {1, 3, 3, 1, 1, 'a', 1, 1, 'f', 1, 0, 9, 1, 2};
    bad_pycode(cut, sizeof cut, 11, "linetable past the record end");
    static const uint8_t nokind[] = {1, 3, 3};
    bad_pycode(nokind, sizeof nokind, 3, "filename missing");
}

Test(reader, bad_python_record) {
    mp_dg_t g;
    mp_dg_init(&g);
    uint64_t off = mp_dg_next_offset(&g);
    static const uint8_t big[] = {0x80, 0x80, 0x80, 0x80, 0x10, 0, 0}; /* 2^32 */
    mp_dg_record(&g, MP_REC_PYTHON, big, sizeof big);
    mp_dg_flush(&g);
    mp_err_t err;
    cr_assert_eq(model_rc(g.buf, g.len, &err, NULL), MP_EFIELD);
    cr_assert_eq(err.offset, off + 2);
    cr_assert_str_eq(err.doing, "reading python record");
    mp_dg_free(&g);
    mp_dg_init(&g);
    static const uint8_t cut[] = {0xf0, 0x07, 0x1f, 5, 'a'};
    mp_dg_record(&g, MP_REC_PYTHON, cut, sizeof cut);
    mp_dg_flush(&g);
    cr_assert_eq(model_rc(g.buf, g.len, &err, NULL), MP_EFIELD);
    mp_dg_free(&g);
}

Test(reader, pycode_unknown_table_format_and_duplicates) {
    /* A table format a later minor might add decodes to "no line"; a repeated id keeps the
     * first record. */
    mp_dg_t g;
    mp_dg_init(&g);
    static const uint8_t t[] = {1, 2};
    mp_dg_pycode(&g, 3, 9, 77, mp_dg_latin1("a.py"), mp_dg_latin1("f"), mp_dg_latin1(""), t, 2);
    mp_dg_pycode(&g, 3, 1, 1, mp_dg_latin1("b.py"), mp_dg_latin1("g"), mp_dg_latin1(""), t, 2);
    mp_dg_flush(&g);
    mp_err_t err;
    mp_model_t *m = NULL;
    cr_assert_eq(model_rc(g.buf, g.len, &err, &m), 0);
    cr_assert_eq(m->npycodes, 1);
    cr_assert_str_eq(mp_model_pycode(m, 3)->filename, "a.py");
    mp_model_free(m);
    mp_dg_free(&g);
}

/* ---- incomplete, not corrupt ---------------------------------------------------------------- */

Test(reader, last_chunk_cut_by_eof) {
    mp_dg_t g;
    build_valid(&g, 1);
    for (size_t cut = g.chunk_off[1] + 1; cut < g.len; cut++) {
        counts_t c = read_all(g.buf, cut);
        cr_assert_eq(c.rc, MP_READ_EOF, "cut at %zu", cut);
        cr_assert_not_null(c.tail);
        cr_assert_eq(c.total, 5, "every record of the complete chunk");
        mp_model_t *m = NULL;
        mp_err_t err;
        cr_assert_eq(model_rc(g.buf, cut, &err, &m), 0);
        cr_assert(m->incomplete);
        mp_model_free(m);
    }
    /* Cut exactly at the chunk boundary: no tail problem, but no trailer either. */
    counts_t c = read_all(g.buf, g.chunk_off[1]);
    cr_assert_eq(c.rc, MP_READ_EOF);
    cr_assert_null(c.tail);
    mp_dg_free(&g);
}

Test(reader, last_chunk_bad_crc_is_incomplete) {
    mp_dg_t g;
    build_valid(&g, 1);
    g.buf[g.len - 2] ^= 0xff;
    counts_t c = read_all(g.buf, g.len);
    cr_assert_eq(c.rc, MP_READ_EOF);
    cr_assert_not_null(c.tail);
    cr_assert_eq(c.total, 5);
    mp_dg_free(&g);
}

Test(reader, zero_filled_tail_is_incomplete) {
    mp_dg_t g;
    build_valid(&g, 1);
    size_t len = g.len;
    uint8_t *buf = calloc(1, len + 4096);
    memcpy(buf, g.buf, len);
    counts_t c = read_all(buf, len + 4096);
    cr_assert_eq(c.rc, MP_READ_EOF);
    cr_assert_not_null(c.tail);
    cr_assert_eq(c.total, 9);
    free(buf);
    mp_dg_free(&g);
}

Test(reader, no_trailer_is_incomplete) {
    mp_dg_t g;
    build_valid(&g, 0);
    mp_model_t *m = NULL;
    mp_err_t err;
    cr_assert_eq(model_rc(g.buf, g.len, &err, &m), 0);
    cr_assert(m->incomplete);
    cr_assert_str_eq(m->incomplete_why, "no trailer; the process was killed or is still running");
    mp_model_free(m);
    mp_dg_free(&g);
    build_valid(&g, 1);
    cr_assert_eq(model_rc(g.buf, g.len, &err, &m), 0);
    cr_assert_not(m->incomplete);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(reader, header_only_dump) {
    mp_dg_t g;
    mp_dg_init(&g);
    mp_model_t *m = NULL;
    mp_err_t err;
    cr_assert_eq(model_rc(g.buf, g.len, &err, &m), 0);
    cr_assert(m->incomplete);
    cr_assert_eq(m->summary.total_allocations, 0);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(reader, unknown_tag_and_trailing_bytes_skipped) {
    mp_dg_t g;
    mp_dg_init(&g);
    static const uint8_t future[] = {1, 2, 3, 4, 5, 0xff, 0xff};
    mp_dg_record(&g, 0x7e, future, sizeof future);
    /* a THREAD record with two extra fields a later minor might add */
    static const uint8_t thread[] = {7, 0x90, 0x03, 42, 43};
    mp_dg_record(&g, MP_REC_THREAD, thread, sizeof thread);
    mp_dg_record(&g, 0xff, NULL, 0);
    mp_dg_flush(&g);
    counts_t c = read_all(g.buf, g.len);
    cr_assert_eq(c.rc, MP_READ_EOF);
    cr_assert_eq(c.per_tag[0x7e], 1);
    cr_assert_eq(c.per_tag[0xff], 1);
    mp_model_t *m = NULL;
    mp_err_t err;
    cr_assert_eq(model_rc(g.buf, g.len, &err, &m), 0);
    cr_assert_eq(m->nthreads, 1);
    cr_assert_eq(m->threads[0].stream, 7);
    cr_assert_eq(m->threads[0].tid, 400);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(reader, errors_are_sticky) {
    mp_dg_t g;
    build_valid(&g, 1);
    g.buf[g.chunk_off[0]] = 0;
    mp_reader_t *r = NULL;
    mp_err_t err;
    cr_assert_eq(mp_reader_open_mem(&r, g.buf, g.len, &err), 0);
    mp_record_t rec;
    cr_assert_eq(mp_reader_next(r, &rec, &err), MP_ECHUNK_MAGIC);
    memset(&err, 0, sizeof err);
    cr_assert_eq(mp_reader_next(r, &rec, &err), MP_ECHUNK_MAGIC);
    cr_assert_eq(err.code, MP_ECHUNK_MAGIC);
    cr_assert_eq(err.offset, g.chunk_off[0]);
    mp_reader_close(r);
    mp_dg_free(&g);
}

Test(reader, error_texts) {
    cr_assert_str_eq(mp_strerror(MP_ENOTDUMP), "not a memprof dump");
    cr_assert_str_eq(mp_strerror(MP_ECHUNK_CRC), "corrupt chunk");
    cr_assert_str_eq(mp_strerror(MP_EVARINT), "corrupt record");
    cr_assert_str_eq(mp_strerror(0), "unknown error");
    cr_assert_str_eq(mp_strerror(-1000), "unknown error");
    cr_assert_lt(MP_ENOMEM, 0);
    cr_assert_neq(MP_ECHUNK_CRC, MP_ECHUNK_HCRC);
}

/* ---- fuzz-ish: random damage never crashes ------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rng(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* A richer dump: more streams, stacks, modules, markers, to give mutations something to hit. */
static void
build_rich(mp_dg_t *g) {
    mp_dg_init(g);
    mp_dg_process(g, "/bin/rich", "rich\0a\0b", 8, "/");
    for (uint64_t s = 0; s < 3; s++) mp_dg_thread(g, s, 1000 + s);
    uint64_t ranges[] = {0x400000, 0x500000};
    mp_dg_module(g, 0, ranges, 1, "/nonexistent/rich", (const uint8_t *)"\1\2", 2);
    static const uint8_t t3[] = {0x80, 0x00, 0xd9, 0x01, 0x02, 0xf0, 0x03, 0x01, 0x02, 0x03, 0xf8};
    static const uint8_t t1[] = {6, 1, 44, 5, 255, 0, 45, 127};
    mp_dg_pycode(g, 1, 10, 3, mp_dg_latin1("/r/a.py"), mp_dg_latin1("f"), mp_dg_latin1("C.f"), t3,
                 sizeof t3);
    mp_dg_pycode(g, 2, 20, 1, mp_dg_latin1("b.py"), mp_dg_latin1("<module>"), mp_dg_latin1(""), t1,
                 sizeof t1);
    mp_dg_python(g, 0x030c01f0, 0x17, "default");
    for (uint64_t id = 1; id <= 4; id++) {
        uint64_t f[] = {0x400100 + id, MP_FRAME_PYTHON_BIT | (id % 3) << 32 | 2 * id, 0x400200,
                        MP_FRAME_PYTHON_BIT | 2ull << 32 | 0xffffffffu, MP_FRAME_PYTHON_BIT | id};
        mp_dg_stack(g, id, f, 5);
    }
    uint64_t seq = 1;
    for (int chunk = 0; chunk < 4; chunk++) {
        for (uint64_t s = 0; s < 3; s++) {
            mp_dg_events_begin(g, s, seq);
            for (int i = 0; i < 12; i++, seq++) {
                uint64_t ptr = 0x10000 + 16 * (rng() % 24);
                switch (rng() % 4) {
                    case 0:
                    case 1:
                        mp_dg_alloc(g, seq, ptr, rng() % 5000, rng() % 5, 0);
                        break;
                    case 2:
                        mp_dg_free_ev(g, seq, ptr, 0, MP_ALLOC_REALLOC);
                        break;
                    default:
                        mp_dg_realloc_fail(g, seq, ptr);
                        break;
                }
            }
            mp_dg_events_end(g);
        }
        mp_dg_sample(g, (uint64_t)chunk * 1000000, seq, 4096 * (uint64_t)(chunk + 1));
        if (chunk == 2) mp_dg_marker(g, MP_MARK_MAIN_END, seq, 3000000);
        mp_dg_flush(g);
    }
    mp_dg_marker(g, MP_MARK_EXIT, seq, 5000000);
    mp_dg_lost(g, 0);
    mp_dg_trailer(g, seq - 1, 0, 0, 0, 0, 6000000, seq, 0);
    mp_dg_flush(g);
}

/* Recompute every chunk's crcs where the chunk structure is still intact, so that mutations
 * reach the record decoders instead of stopping at the checksums. */
static void
fix_crcs(uint8_t *buf, size_t len) {
    size_t pos = MP_FMT_HEADER_SIZE;
    while (pos + MP_CHUNK_HEADER_SIZE <= len) {
        if (mp_get_u32(buf + pos) != MP_CHUNK_MAGIC) return;
        uint32_t plen = mp_get_u32(buf + pos + 4);
        if (plen > len - pos - MP_CHUNK_HEADER_SIZE) return;
        mp_chunk_header_encode(plen, mp_crc32c(0, buf + pos + 16, plen), buf + pos);
        pos += MP_CHUNK_HEADER_SIZE + plen;
    }
}

Test(reader, fuzz_mutations_never_crash, .timeout = 240) {
    mp_dg_t g;
    build_rich(&g);
    uint8_t *buf = malloc(g.len);
    int outcomes[3] = {0, 0, 0}; /* ok, incomplete, error */
    for (int iter = 0; iter < 2000; iter++) {
        memcpy(buf, g.buf, g.len);
        size_t len = g.len;
        int nmut = 1 + (int)(rng() % 8);
        for (int k = 0; k < nmut; k++) {
            size_t at = MP_FMT_HEADER_SIZE + rng() % (len - MP_FMT_HEADER_SIZE);
            switch (rng() % 4) {
                case 0:
                    buf[at] = (uint8_t)rng();
                    break;
                case 1:
                    buf[at] ^= (uint8_t)(1u << (rng() % 8));
                    break;
                case 2:
                    buf[at] = (uint8_t)(rng() % 2 ? 0xff : 0x80);
                    break;
                default:
                    buf[at] = 0;
                    break;
            }
        }
        if (iter % 2 == 0) fix_crcs(buf, len);
        if (iter % 5 == 0) len = rng() % (len + 1);               /* and truncate */
        if (iter % 97 == 0) buf[rng() % MP_FMT_HEADER_SIZE] ^= 1; /* the header too */

        mp_err_t err;
        mp_model_t *m = NULL;
        int rc = model_rc(buf, len, &err, &m);
        if (rc == 0) {
            outcomes[m->incomplete ? 1 : 0]++;
            /* Every view must cope with whatever the model holds. */
            json_t *j = mp_report_json(m, NULL);
            cr_assert_not_null(j);
            json_decref(j);
            char *text = NULL;
            size_t tlen = 0;
            FILE *f = open_memstream(&text, &tlen);
            mp_text_opts_t to = {
                .summary = true, .leaks = true, .peak = true, .top = 3, .lines = true};
            mp_emit_text(m, NULL, &to, f, &err);
            fclose(f);
            free(text);
            mp_model_free(m);
        } else {
            outcomes[2]++;
            cr_assert_lt(rc, 0);
            cr_assert_eq(err.code, rc);
            cr_assert_leq(err.offset, g.len);
        }
    }
    cr_assert_gt(outcomes[0] + outcomes[1], 0, "some mutations still parse");
    cr_assert_gt(outcomes[2], 0, "some mutations are caught");
    free(buf);
    mp_dg_free(&g);
}
