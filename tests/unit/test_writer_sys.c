/* test_writer_sys.c - the writer's write path through the mp_sys_write_all seam (sys.h), and
 * the STACK records it encodes.
 *
 * The seam is swapped for a function that writes the first few buffers to a temporary file and
 * then fails with ENOSPC. The writer must then turn tracking off (mp_state disabled, producers
 * released through mp_abandon), print exactly one line on stderr, write nothing more, and report
 * the failure from mp_writer_stop; the host (this test) keeps running.
 *
 * Only writer.c and modules.c are compiled in besides MP_PRELOAD_TESTABLE: capture.c (and with
 * it libunwind and the hooks) is replaced by the handful of globals the writer reads, defined
 * below. Each Test() runs in its own process (Criterion's default): the writer is one per process.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "capture.h"
#include "python.h"
#include "format.h"
#include "ring.h"
#include "stacks.h"
#include "sys.h"
#include "writer.h"

/* ---- what capture.c would define ---------------------------------------------------------- */

__thread mp_thread_t mp_thread __attribute__((tls_model("initial-exec")));
int mp_state;
void
mp_state_set(int state) {
    mp_store_release(&mp_state, state);
}
int mp_abandon;
mp_seq_line_t mp_seq_line;

/* The exit marker's number, taken as memprof.c takes it: the writer takes numbers too (its
 * SAMPLE records), so the counter is never read plainly while it runs. */
static uint64_t
exit_seq(void) {
    return __atomic_fetch_add(&mp_seq, 1, __ATOMIC_RELAXED);
}
int mp_native;
int mp_depth = 64;
uint64_t mp_stacks_dropped;
/* python.c is not compiled in: no CPython in this test. */
int mp_python_running;
void
mp_python_schedule(void) {}
unsigned
mp_python_info(mp_pyinfo_t *out) {
    memset(out, 0, sizeof *out);
    return 0;
}

/* ---- the seam ------------------------------------------------------------------------------- */

static int ok_writes;   /* calls that succeed before every later one fails (set before start) */
static int write_calls; /* calls so far (atomic: the writer thread makes them) */

static int
failing_write(int fd, const void *buf, size_t n) {
    int call = __atomic_fetch_add(&write_calls, 1, __ATOMIC_ACQ_REL);
    if (call >= ok_writes) return -ENOSPC;
    return mp_sys_write_all_real(fd, buf, n);
}

/* ---- fixtures -------------------------------------------------------------------------------- */

static const char dump_name[] = "writer-test.dump"; /* as the messages show it */
static char dump_path[64];
static int saved_stderr = -1, err_fd = -1;

static void
sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* stderr goes to a temporary file until restore_stderr(). */
static void
capture_stderr(void) {
    char tmpl[] = "/tmp/mp-writer-err-XXXXXX";
    err_fd = mkstemp(tmpl);
    cr_assert_geq(err_fd, 0);
    unlink(tmpl);
    saved_stderr = dup(2);
    cr_assert_geq(saved_stderr, 0);
    cr_assert_eq(dup2(err_fd, 2), 2);
}

static void
restore_stderr(char *out, size_t cap) {
    dup2(saved_stderr, 2);
    close(saved_stderr);
    ssize_t n = pread(err_fd, out, cap - 1, 0);
    out[n > 0 ? n : 0] = 0;
    close(err_fd);
}

static int
open_dump(void) {
    snprintf(dump_path, sizeof dump_path, "/tmp/mp-writer-XXXXXX");
    int fd = mkstemp(dump_path);
    cr_assert_geq(fd, 0);
    return fd;
}

static int
start(int fd, int ok) {
    cr_assert_eq(mp_stacks_init(1024, 1 << 20), 0);
    ok_writes = ok;
    write_calls = 0;
    mp_sys_write_all = failing_write;
    mp_writer_opts_t o;
    memset(&o, 0, sizeof o);
    o.fd = fd;
    o.path = dump_name;
    o.interval_ms = 1; /* flush about every millisecond */
    o.header.major = MP_FORMAT_MAJOR;
    o.header.minor = MP_FORMAT_MINOR;
    o.header.header_size = MP_FMT_HEADER_SIZE;
    o.header.ptr_size = sizeof(void *);
    o.header.pid = (uint64_t)getpid();
    o.header.start_mono_ns = mp_sys_mono_ns();
    o.header.page_size = 4096;
    mp_store_release(&mp_state, mp_state_running);
    return mp_writer_start(&o);
}

/* The host's side: push events as the hooks do (waiting on a full ring unless mp_abandon). */
static void
push_events(mp_ring_t *r, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        unsigned kind = i % 2 ? MP_EV_FREE : MP_EV_ALLOC;
        mp_ring_push(r, kind, MP_ALLOC_MALLOC, &mp_seq, 0x10000 + (i % 64) * 32, 32, 0,
                     &mp_abandon);
    }
}

static mp_ring_t *
claim(void) {
    mp_ring_t *r = mp_ring_claim();
    cr_assert_not_null(r);
    mp_ring_note_t own = {0, 0, (uint64_t)mp_sys_gettid(), 0, mp_note_owner};
    mp_ring_note(r, &own, &mp_abandon);
    return r;
}

static int
count_lines_with(const char *text, const char *needle) {
    int k = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) k++;
    return k;
}

/* Run the host until the writer gives up, then check the aftermath. */
static void
fails_after(int ok) {
    capture_stderr();
    int fd = open_dump();
    cr_assert_eq(start(fd, ok), 0);
    mp_ring_t *r = claim();
    for (int i = 0; i < 5000 && mp_load_acquire(&mp_state) == mp_state_running; i++) {
        push_events(r, 1000);
        sleep_ms(1);
    }
    cr_assert_eq(mp_load_acquire(&mp_state), mp_state_disabled, "the writer never failed");
    cr_assert_eq(mp_load_acquire(&mp_abandon), 1, "producers must stop waiting for the writer");
    int calls = __atomic_load_n(&write_calls, __ATOMIC_ACQUIRE);
    cr_assert_eq(calls, ok + 1, "%d write calls: the writer must stop at the first failure", calls);

    /* The host keeps running: a full ring's worth and more still goes through (the writer
     * still drains, and mp_abandon releases any wait). */
    push_events(r, MP_RING_BYTES); /* some 5 ring's worth: under 6 bytes each */
    cr_assert_eq(mp_writer_stop(MP_MARK_EXIT, exit_seq(), 5000), -1,
                 "stop must report the failure");
    cr_assert_eq(__atomic_load_n(&write_calls, __ATOMIC_ACQUIRE), ok + 1, "wrote after failing");

    char err[4096];
    restore_stderr(err, sizeof err);
    cr_assert_eq(count_lines_with(err, "memprof: "), 1, "stderr:\n%s", err);
    cr_assert_eq(count_lines_with(err, "memprof: write failed, tracking stopped; dump is "
                                       "incomplete: writer-test.dump\n"),
                 1, "stderr:\n%s", err);

    /* Nothing but the successful writes reached the file. */
    struct stat st;
    cr_assert_eq(stat(dump_path, &st), 0);
    if (ok == 1)
        cr_assert_eq(st.st_size, MP_FMT_HEADER_SIZE);
    else
        cr_assert_gt(st.st_size, MP_FMT_HEADER_SIZE);
    unlink(dump_path);
}

/* ---- tests ----------------------------------------------------------------------------------- */

Test(writer_sys, enospc_on_the_first_chunk_disables_tracking, .timeout = 30) {
    fails_after(1); /* the header is written, the first chunk fails */
}

Test(writer_sys, enospc_on_a_later_chunk_disables_tracking, .timeout = 30) {
    fails_after(4);
}

Test(writer_sys, failing_header_write_fails_start, .timeout = 30) {
    int fd = open_dump();
    void (*before)(void) = mp_ring_kick;
    cr_assert_eq(start(fd, 0), -1);
    cr_assert_eq(write_calls, 1);
    cr_assert_eq(mp_ring_kick, before, "no writer: producers must not kick one");
    cr_assert_eq(mp_writer_stop(MP_MARK_EXIT, 0, 100), -1, "no writer is running");
    close(fd);
    unlink(dump_path);
}

/* The whole dump file, malloc'd; its size in *len. */
static uint8_t *
read_dump(size_t *len) {
    int in = open(dump_path, O_RDONLY);
    cr_assert_geq(in, 0);
    struct stat st;
    cr_assert_eq(fstat(in, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size);
    cr_assert_not_null(buf);
    cr_assert_eq(pread(in, buf, (size_t)st.st_size, 0), st.st_size);
    close(in);
    *len = (size_t)st.st_size;
    return buf;
}

/* The records of a dump read by read_dump, one at a time: next_record gives each one's tag and
 * body [*body, *body_end), checking the chunk headers on the way; 0 at the end. */
typedef struct walk_s {
    const uint8_t *buf, *p, *end; /* the open chunk's payload: [p, end) not yet walked */
    size_t off, size;             /* the next chunk's offset, the file's size */
} walk_t;

static walk_t
walk(const uint8_t *buf, size_t size) {
    return (walk_t){buf, NULL, NULL, MP_FMT_HEADER_SIZE, size};
}

static int
next_record(walk_t *w, unsigned *tag, const uint8_t **body, const uint8_t **body_end) {
    while (w->p == w->end) {
        if (w->off >= w->size) return 0;
        uint32_t len, crc;
        cr_assert_eq(mp_chunk_header_decode(w->buf + w->off, &len, &crc), 0);
        w->p = w->buf + w->off + MP_CHUNK_HEADER_SIZE;
        w->end = w->p + len;
        w->off += MP_CHUNK_HEADER_SIZE + len;
    }
    *tag = *w->p++;
    uint64_t blen;
    cr_assert_eq(mp_varint_get(&w->p, w->end, &blen), 0);
    cr_assert_leq(blen, (uint64_t)(w->end - w->p));
    *body = w->p;
    *body_end = w->p += blen;
    return 1;
}

Test(writer_sys, seam_passes_every_chunk_through, .timeout = 30) {
    int fd = open_dump();
    cr_assert_eq(start(fd, 1 << 30), 0);
    mp_ring_t *r = claim();
    uint64_t n = MP_RING_BYTES + 17;
    push_events(r, n);
    cr_assert_eq(mp_writer_stop(MP_MARK_EXIT, exit_seq(), 5000), (int64_t)n);
    cr_assert_eq(mp_load_acquire(&mp_state), mp_state_running, "no failure: still running");

    /* The file is exactly what went through the seam: a header and well-formed chunks. */
    size_t size;
    uint8_t *buf = read_dump(&size);
    mp_fmt_header_t h;
    cr_assert_eq(mp_fmt_header_decode(buf, &h), 0);
    size_t off = MP_FMT_HEADER_SIZE;
    int chunks = 0;
    while (off < size) {
        uint32_t len, crc;
        cr_assert_leq(off + MP_CHUNK_HEADER_SIZE, size);
        cr_assert_eq(mp_chunk_header_decode(buf + off, &len, &crc), 0, "chunk %d", chunks);
        off += MP_CHUNK_HEADER_SIZE;
        cr_assert_leq(off + len, size);
        cr_assert_eq(mp_crc32c(0, buf + off, len), crc, "chunk %d crc", chunks);
        off += len;
        chunks++;
    }
    cr_assert_eq(off, size);
    cr_assert_eq(__atomic_load_n(&write_calls, __ATOMIC_ACQUIRE), 1 + chunks);
    free(buf);
    unlink(dump_path);
}

/* STACK records (3.0): each names the outer frames it shares with the record before it and holds
 * the rest (writer.c, emit_stack). Stacks made to share tails every way (longer, shorter, equal,
 * a suffix of the one before, none, deeper than capture.c makes) must decode (FORMAT.md 5.4) to
 * exactly what was interned, and share all they can. */
#define STACKS 600
#define STACK_DEEP 500 /* deeper than any stack capture.c interns */

static uint64_t
rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Test(writer_sys, stack_records_decode_to_the_interned_stacks, .timeout = 30) {
    static uint64_t frames[STACKS][STACK_DEEP], tail[STACK_DEEP];
    static uint32_t ns[STACKS], ids[STACKS];
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int j = 0; j < STACK_DEEP; j++)
        tail[j] = j % 3 ? (1ull << 63) | rnd(&seed) % (1ull << 40) : rnd(&seed) % (1ull << 47);
    for (int k = 0; k < STACKS; k++) {
        uint32_t inner = 1 + (uint32_t)(rnd(&seed) % 4), shared = (uint32_t)(rnd(&seed) % 60);
        if (k % 50 == 7) shared = STACK_DEEP - inner;                /* deeper than capture.c's */
        if (k % 50 == 9) shared = 0;                                 /* nothing shared */
        if (k % 50 == 11) inner = 0, shared = 60 + (uint32_t)k / 50; /* a suffix of others */
        for (uint32_t j = 0; j < inner; j++) frames[k][j] = (uint64_t)k << 20 | j; /* unique */
        memcpy(frames[k] + inner, tail + STACK_DEEP - shared, shared * 8);
        ns[k] = inner + shared;
    }
    int fd = open_dump();
    cr_assert_eq(start(fd, 1 << 30), 0);
    for (int k = 0; k < STACKS; k++) {
        ids[k] = mp_stacks_intern(frames[k], ns[k]);
        cr_assert_geq(ids[k], 1);
        if (k % 37 == 0) sleep_ms(2); /* let the writer emit in several passes */
    }
    cr_assert_geq(mp_writer_stop(MP_MARK_EXIT, exit_seq(), 5000), 0);

    size_t size;
    uint8_t *buf = read_dump(&size);
    static uint8_t seen[STACKS];
    int records = 0;
    const uint64_t *prev_frames = NULL; /* the previous STACK record's stack */
    uint32_t prev_n = 0;
    uint64_t shared_total = 0;
    walk_t w = walk(buf, size);
    unsigned tag;
    const uint8_t *p, *body_end;
    while (next_record(&w, &tag, &p, &body_end)) {
        if (tag != MP_REC_STACK) continue;
        uint64_t id, n, d, shared;
        cr_assert_eq(mp_varint_get(&p, body_end, &id), 0);
        cr_assert_eq(mp_varint_get(&p, body_end, &n), 0);
        int k = 0;
        while (k < STACKS && ids[k] != id) k++;
        cr_assert_lt(k, STACKS, "STACK record with an unknown id %llu", (unsigned long long)id);
        cr_assert_eq(seen[k]++, 0, "stack %d emitted twice", k);
        cr_assert_eq(n, ns[k], "stack %d: %llu frames, interned %u", k, (unsigned long long)n,
                     ns[k]);
        /* 3.0: the outer frames it shares with the previous record, then its own. */
        cr_assert_eq(mp_varint_get(&p, body_end, &shared), 0);
        cr_assert_leq(shared, prev_n, "stack %d shares %llu of %u frames", k,
                      (unsigned long long)shared, prev_n);
        for (uint32_t j = 0; j < shared; j++)
            cr_assert_eq(frames[k][n - 1 - j], prev_frames[prev_n - 1 - j],
                         "stack %d: shared frame %u differs", k, j);
        uint64_t prev = 0;
        for (uint32_t j = 0; j < n - shared; j++) {
            cr_assert_eq(mp_varint_get(&p, body_end, &d), 0);
            prev += (uint64_t)mp_unzigzag(d);
            cr_assert_eq(prev, frames[k][j], "stack %d frame %u", k, j);
        }
        /* The writer shares all it can: the next frame out differs (or one stack ends). */
        if (shared < n && shared < prev_n)
            cr_assert_neq(frames[k][n - 1 - shared], prev_frames[prev_n - 1 - shared],
                          "stack %d: shares %llu frames, could share more", k,
                          (unsigned long long)shared);
        shared_total += shared;
        prev_frames = frames[k];
        prev_n = ns[k];
        cr_assert_eq(p, body_end, "stack %d: bytes after its frames", k);
        records++;
    }
    cr_assert_eq(records, STACKS, "%d STACK records", records);
    cr_assert_gt(shared_total, (uint64_t)STACKS, "%llu frames shared in all",
                 (unsigned long long)shared_total);
    free(buf);
    unlink(dump_path);
}

/* STREAM records (FORMAT.md 5.12): the writer copies the producers' bytes, cutting them where a
 * note (owner, marker) happened. Two rings, events of every kind with deltas of every size
 * (forward and back, pointers far apart, sizes up to 2^40), markers in between, a second owner
 * of a released ring continuing its deltas: decoded with one delta state per stream across
 * records, every event must come back, in order, with THREAD and MARKER records exactly where
 * they were posted. */
#define SW_EVENTS 120000

typedef struct sw_event_s {
    uint64_t seq, ptr, size, stack;
    unsigned kind, allocator;
} sw_event_t;

static sw_event_t sw_pushed[2][2 * SW_EVENTS];

static void
sw_make(sw_event_t *e, uint64_t i, uint64_t *seed) {
    uint64_t x = rnd(seed);
    e->kind = (unsigned)(x % 7 == 0 ? MP_EV_REALLOC_FAIL : x % 2 ? MP_EV_FREE : MP_EV_ALLOC);
    e->allocator = (unsigned)(x >> 8) % 13;
    e->ptr = (x >> 16) % 5 == 0 ? 0x7f0000000000ull + (x >> 24) % (1ull << 36)
                                : 0x550000001000ull + (i % 4096) * 48;
    e->size = e->kind == MP_EV_ALLOC ? (x >> 40) % 4 == 0 ? rnd(seed) % (1ull << 40) : x % 300 : 0;
    /* Mostly one stack (the same-stack flag), else any. */
    e->stack = e->kind == MP_EV_REALLOC_FAIL ? 0
               : (x >> 20) % 4               ? 5
                                             : (uint32_t)((x >> 22) % 70000);
}

Test(writer_sys, stream_records_carry_every_event_and_note_in_place, .timeout = 30) {
    int fd = open_dump();
    cr_assert_eq(start(fd, 1 << 30), 0);
    mp_ring_t *r[2] = {claim(), claim()};
    uint64_t seed = 12345, n[2] = {0, 0}, marks = 0;
    uint64_t mark_after[64]; /* marker k follows event mark_after[k] of stream 0 */
    for (uint64_t i = 0; i < SW_EVENTS; i++) {
        /* Ring 0 sometimes gets two events in a row: seq deltas of 1 (a flag) and of 2. */
        for (int j = 0; j < (i % 3 ? 2 : 3); j++) {
            int k = j == 2 ? 0 : j;
            sw_event_t *e = &sw_pushed[k][n[k]];
            sw_make(e, i, &seed);
            cr_assert_eq(mp_ring_push(r[k], e->kind, e->allocator, &mp_seq, e->ptr, e->size,
                                      (uint32_t)e->stack, &mp_abandon),
                         0);
            /* The number it took (from its ring's block, ring.h): the stream must carry it. */
            e->seq = r[k]->last_seq;
            n[k]++;
        }
        if (i % 4000 == 1999 && marks < 64) {
            mp_ring_note_t m = {0, __atomic_fetch_add(&mp_seq, 1, __ATOMIC_RELAXED),
                                MP_MARK_MAIN_END, mp_sys_mono_ns(), mp_note_marker};
            cr_assert_eq(mp_ring_note(r[0], &m, &mp_abandon), 0);
            mark_after[marks++] = n[0];
        }
        if (i == SW_EVENTS / 2) { /* ring 1 changes owner: tid 777 continues its deltas */
            mp_ring_release(r[1]);
            cr_assert_eq(mp_ring_claim(), r[1]);
            mp_ring_note_t own = {0, 0, 777, 0, mp_note_owner};
            cr_assert_eq(mp_ring_note(r[1], &own, &mp_abandon), 0);
        }
        if (i % 20000 == 0) sleep_ms(2); /* several passes of the writer */
    }
    uint64_t total = n[0] + n[1];
    cr_assert_eq(mp_writer_stop(MP_MARK_EXIT, exit_seq(), 5000), (int64_t)total);

    size_t size;
    uint8_t *buf = read_dump(&size);
    uint64_t got[2] = {0, 0}, last_seq[2] = {0, 0}, last_ptr[2] = {0, 0}, seen_marks = 0;
    uint64_t last_ptr2[2] = {0, 0};
    uint64_t last_stack[2] = {0, 0}, same_stack = 0, seq1 = 0;
    int threads[2] = {0, 0}, owner777 = 0;
    walk_t w = walk(buf, size);
    unsigned tag;
    const uint8_t *p, *body_end;
    while (next_record(&w, &tag, &p, &body_end)) {
        uint64_t v, stream;
        if (tag == MP_REC_THREAD) {
            cr_assert_eq(mp_varint_get(&p, body_end, &stream), 0);
            cr_assert_eq(mp_varint_get(&p, body_end, &v), 0);
            cr_assert_lt(stream, 2);
            threads[stream]++;
            if (v == 777) {
                cr_assert_eq(stream, r[1]->stream);
                cr_assert_eq(got[1], SW_EVENTS / 2 + 1, "owner 777 announced at event %llu",
                             (unsigned long long)got[1]);
                owner777++;
            }
        } else if (tag == MP_REC_MARKER) {
            cr_assert_eq(mp_varint_get(&p, body_end, &v), 0);
            if (v == MP_MARK_MAIN_END) {
                cr_assert_lt(seen_marks, marks);
                cr_assert_eq(got[0], mark_after[seen_marks], "marker %llu after event %llu",
                             (unsigned long long)seen_marks, (unsigned long long)got[0]);
                seen_marks++;
            }
        } else if (tag == MP_REC_STREAM) {
            cr_assert_eq(mp_varint_get(&p, body_end, &stream), 0);
            cr_assert_lt(stream, 2);
            cr_assert_lt(p, body_end, "an empty STREAM record");
            while (p < body_end) {
                cr_assert_lt(got[stream], n[stream], "more events than pushed");
                const sw_event_t *e = &sw_pushed[stream][got[stream]];
                unsigned head = *p++, kind = head & 3u;
                cr_assert_eq(kind, e->kind);
                cr_assert_eq(MP_EV_ALLOCATOR(head), e->allocator);
                /* FORMAT.md 5.12: the short form (bit 7: seq + 1, fixed-width fields) or the
                 * long one (prefix varints). */
                int shortf = head >> 7;
                v = 1;
                if (shortf) {
                    seq1++;
                    cr_assert_leq(p + 3, body_end);
                    /* 23 bits of delta / 16, offset by 2^22; the 24th: against the other base,
                     * which the previous ptr then becomes */
                    v = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)(p[2] & 0x7f) << 16;
                    uint64_t base = last_ptr[stream];
                    if (p[2] >> 7) {
                        base = last_ptr2[stream];
                        last_ptr2[stream] = last_ptr[stream];
                    }
                    p += 3;
                    last_seq[stream] += 1;
                    last_ptr[stream] = base + (v << 4) - (1ull << 26);
                } else {
                    cr_assert_eq(mp_pvarint_get(&p, body_end, &v), 0);
                    last_seq[stream] += v;
                    cr_assert_eq(mp_pvarint_get(&p, body_end, &v), 0);
                    last_ptr2[stream] = last_ptr[stream];
                    last_ptr[stream] += (uint64_t)mp_unzigzag(v);
                }
                cr_assert_eq(last_seq[stream], e->seq);
                cr_assert_eq(last_ptr[stream], e->ptr);
                if (kind == MP_EV_ALLOC) {
                    if (shortf) {
                        cr_assert_leq(p + 2, body_end);
                        v = (uint64_t)p[0] | (uint64_t)p[1] << 8;
                        p += 2;
                    } else {
                        cr_assert_eq(mp_pvarint_get(&p, body_end, &v), 0);
                    }
                    cr_assert_eq(v, e->size);
                }
                if (kind != MP_EV_REALLOC_FAIL) {
                    if (head & 4) {
                        same_stack++;
                    } else if (shortf) {
                        cr_assert_leq(p + 3, body_end);
                        last_stack[stream] =
                            (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16;
                        p += 3;
                    } else {
                        cr_assert_eq(mp_pvarint_get(&p, body_end, &last_stack[stream]), 0);
                    }
                    cr_assert_eq(last_stack[stream], e->stack);
                } else {
                    cr_assert_eq(head & 4, 0, "a REALLOC_FAIL with the same-stack flag");
                }
                got[stream]++;
            }
        }
    }
    cr_assert_eq(got[0], n[0]);
    cr_assert_eq(got[1], n[1]);
    cr_assert_eq(seen_marks, marks);
    cr_assert_eq(threads[0], 1);
    cr_assert_eq(threads[1], 2);
    cr_assert_eq(owner777, 1);
    cr_assert_gt(same_stack, 0, "no event used the same-stack flag");
    cr_assert_gt(seq1, 0, "no event used the short form");
    free(buf);
    unlink(dump_path);
}

/* ---- regressions: bugs these tests found, since fixed ---------------------------------
 */

/* After a failed write, flush() returns early (W.failed) without emptying the chunk buffer, but
 * the writer keeps draining the rings into it: put_record() then appends past the 1 MiB chunk
 * buffer (writer.c, put_record: "if (W.len + ... > CHUNK_CAP) flush();" does not make room).
 * The host crashes or has memory overwritten some megabytes of events after a disk-full error. */
Test(writer_sys, keeps_running_long_after_a_failed_write, .timeout = 30) {
    capture_stderr();
    int fd = open_dump();
    cr_assert_eq(start(fd, 1), 0);
    mp_ring_t *r = claim();
    for (int i = 0; i < 5000 && mp_load_acquire(&mp_state) == mp_state_running; i++) {
        push_events(r, 1000);
        sleep_ms(1);
    }
    cr_assert_eq(mp_load_acquire(&mp_state), mp_state_disabled);
    /* About 6 bytes per encoded event: 4 M events are some 24 MiB through a 1 MiB buffer. */
    push_events(r, 4u << 20);
    cr_assert_eq(mp_writer_stop(MP_MARK_EXIT, exit_seq(), 10000), -1);
    char err[4096];
    restore_stderr(err, sizeof err);
    unlink(dump_path);
}
