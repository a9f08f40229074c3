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
int mp_abandon;
mp_seq_line_t mp_seq_line;
int mp_native;
int mp_depth = 64;
uint64_t mp_stacks_dropped;
/* python.c is not compiled in: no CPython in this test. */
int mp_python_running;
void
mp_python_writer_tick(void) {}
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
        mp_rec_t e;
        memset(&e, 0, sizeof e);
        e.seq = __atomic_fetch_add(&mp_seq, 1, __ATOMIC_RELAXED);
        e.ptr = 0x10000 + (i % 64) * 32;
        e.size = 32;
        e.type = mp_rec_event;
        e.head = MP_EV_HEAD(i % 2 ? MP_EV_FREE : MP_EV_ALLOC, MP_ALLOC_MALLOC);
        mp_ring_push(r, &e, &mp_abandon);
    }
}

static mp_ring_t *
claim(void) {
    mp_ring_t *r = mp_ring_claim();
    cr_assert_not_null(r);
    mp_rec_t own = {0, 0, (uint64_t)mp_sys_gettid(), 0, mp_rec_owner, 0, 0};
    mp_ring_push(r, &own, &mp_abandon);
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
    push_events(r, 3 * MP_RING_CAPACITY);
    cr_assert_eq(mp_writer_stop(MP_MARK_EXIT, mp_seq, 5000), -1, "stop must report the failure");
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

Test(writer_sys, seam_passes_every_chunk_through, .timeout = 30) {
    int fd = open_dump();
    cr_assert_eq(start(fd, 1 << 30), 0);
    mp_ring_t *r = claim();
    uint64_t n = 5 * MP_RING_CAPACITY + 17;
    push_events(r, n);
    cr_assert_eq(mp_writer_stop(MP_MARK_EXIT, mp_seq, 5000), (int64_t)n);
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

/* STACK records: the writer encodes a stack's frames before the tail it shares with the stack
 * emitted before it and reuses that record's bytes for the rest (writer.c, emit_stack). Stacks
 * made to share tails every way (longer, shorter, equal, a suffix of the one before, none, deeper
 * than capture.c makes) must decode (FORMAT.md 5.4) to exactly what was interned. */
#define STACKS 600
#define STACK_DEEP 500 /* more than writer.c's STACK_FRAMES_MAX: encoded on its own */

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
        if (k % 50 == 7) shared = STACK_DEEP - inner; /* too deep: its own encoding */
        if (k % 50 == 9) shared = 0;                  /* nothing shared */
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
    cr_assert_geq(mp_writer_stop(MP_MARK_EXIT, mp_seq, 5000), 0);

    size_t size;
    uint8_t *buf = read_dump(&size);
    static uint8_t seen[STACKS];
    int records = 0;
    for (size_t off = MP_FMT_HEADER_SIZE; off < size;) {
        uint32_t len, crc;
        cr_assert_eq(mp_chunk_header_decode(buf + off, &len, &crc), 0);
        const uint8_t *p = buf + off + MP_CHUNK_HEADER_SIZE, *end = p + len;
        off += MP_CHUNK_HEADER_SIZE + len;
        while (p < end) {
            unsigned tag = *p++;
            uint64_t blen, id, n, d;
            cr_assert_eq(mp_varint_get(&p, end, &blen), 0);
            const uint8_t *body_end = p + blen;
            if (tag != MP_REC_STACK) {
                p = body_end;
                continue;
            }
            cr_assert_eq(mp_varint_get(&p, body_end, &id), 0);
            cr_assert_eq(mp_varint_get(&p, body_end, &n), 0);
            int k = 0;
            while (k < STACKS && ids[k] != id) k++;
            cr_assert_lt(k, STACKS, "STACK record with an unknown id %llu", (unsigned long long)id);
            cr_assert_eq(seen[k]++, 0, "stack %d emitted twice", k);
            cr_assert_eq(n, ns[k], "stack %d: %llu frames, interned %u", k, (unsigned long long)n,
                         ns[k]);
            uint64_t prev = 0;
            for (uint32_t j = 0; j < n; j++) {
                cr_assert_eq(mp_varint_get(&p, body_end, &d), 0);
                prev += (uint64_t)mp_unzigzag(d);
                cr_assert_eq(prev, frames[k][j], "stack %d frame %u", k, j);
            }
            cr_assert_eq(p, body_end, "stack %d: bytes after its frames", k);
            records++;
        }
    }
    cr_assert_eq(records, STACKS, "%d STACK records", records);
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
    cr_assert_eq(mp_writer_stop(MP_MARK_EXIT, mp_seq, 10000), -1);
    char err[4096];
    restore_stderr(err, sizeof err);
    unlink(dump_path);
}
