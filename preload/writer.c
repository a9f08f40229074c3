/* writer.c - the writer thread (see writer.h for the contract).
 *
 * Each pass: emit new stacks (and, with native stacks, new modules), copy every ring's events
 * into STREAM records and its notes into THREAD/MARKER records, sample RSS on schedule, and write
 * the chunk when it is big enough or old enough. Chunks are written with one write(2) each, so a
 * killed process leaves whole chunks behind (docs/FORMAT.md 7).
 */
#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "atomics.h"
#include "capture.h"
#include "config.h"
#include "modules.h"
#include "pyframes.h"
#include "pycode.h"
#include "python.h"
#include "ring.h"
#include "stacks.h"
#include "sys.h"

#define CHUNK_CAP (2 * MP_RING_BYTES)  /* payload bytes per chunk buffer */
#define CHUNK_FLUSH_AT (CHUNK_CAP / 2) /* write once this full */
#define SCRATCH_CAP (256u << 10)       /* one record body (not events) being built */
/* A ring's bytes go into one STREAM record (put_stream), which must fit an empty chunk. */
_Static_assert(CHUNK_CAP >= MP_RING_BYTES + 1 + 2 * MP_VARINT_MAX, "a ring's worth fits a chunk");
/* The writer's shortest sleep after a pass that found events (writer_sleep_ns). */
#define MP_WRITER_MIN_NS 100000u

/* Aligned to a cache line, so its size is whole lines: the writer updates its state on every
 * pass, and a producer's hot global sharing a line with it would miss each time. */
static struct {
    _Alignas(64) mp_writer_opts_t o;
    pthread_t thread;
    int running;      /* the thread exists */
    uint8_t *chunk;   /* [16-byte chunk header][payload] */
    size_t len;       /* payload bytes */
    uint8_t *scratch; /* one record body being built */
    uint64_t last_flush_ns;
    uint64_t last_sample_ns;
    uint64_t last_modules_ns;
    size_t stack_cursor; /* next arena position to emit */
    size_t code_cursor;  /* next code-registry position to emit */
    unsigned py_gen;     /* generation of the last PYTHON record written */
    int new_stacks;      /* stacks emitted since the last module refresh */
    int failed;          /* a write failed: stop writing */
    int statm_fd;
    uint64_t dev, ino; /* identity of the dump file, to notice a descriptor the program closed */
    /* Totals for the trailer. */
    uint64_t events, allocs, frees, alloc_bytes;
    /* Control. */
    int wake;     /* futex word: bumped by kicks */
    int sleeping; /* the writer is (about to be) waiting on wake */
    int stop;     /* stop requested */
    int done;     /* futex word: the writer finished */
    unsigned stop_kind;
    uint64_t stop_seq, stop_time;
    const mp_ring_t *stop_ring; /* the stopping thread's own ring (NULL: it has none) */
} W;

/* ---- chunk buffer ------------------------------------------------------------------------ */

/* Whether fd is open on our dump (the file mp_writer_start wrote the header to). */
static int
is_dump(int fd) {
    uint64_t dev, ino;
    return mp_sys_file_id(fd, &dev, &ino) == 0 && dev == W.dev && ino == W.ino;
}

/* Is W.o.fd still our dump? A program may close every descriptor (a fork child before exec,
 * a daemon) and reuse the number for a file of its own: never write there. Reopen the dump by
 * name instead (O_APPEND: chunks go at its end, as before). 0, or -1 if it cannot be found. */
static int
ensure_fd(void) {
    if (is_dump(W.o.fd)) return 0;
    int fd = mp_sys_open_nowait(W.o.path, O_APPEND); /* a FIFO's reader may be gone */
    if (fd < 0) return -1;
    if (!is_dump(fd)) {
        mp_sys_close(fd);
        return -1;
    }
    W.o.fd = fd; /* the old number is not ours any more: it is never closed by us */
    return 0;
}

static void
flush(void) {
    if (W.failed) {
        W.len = 0; /* tracking is off: drop what is drained so the buffer never overflows */
        return;
    }
    if (W.len == 0) return;
    uint8_t *payload = W.chunk + MP_CHUNK_HEADER_SIZE;
    mp_chunk_header_encode((uint32_t)W.len, mp_crc32c(0, payload, W.len), W.chunk);
    size_t n = MP_CHUNK_HEADER_SIZE + W.len;
    int r = ensure_fd();
    if (r != 0) W.o.fd = -1; /* not ours: never write to it nor close it */
    if (r == 0) r = mp_sys_write_all(W.o.fd, W.chunk, n);
    /* The program can close our fd between ensure_fd's check and the write: a fork child closing
     * every fd before it execs (multiprocessing's spawn on 3.8). Once more through ensure_fd,
     * which reopens the dump by its name. A write that failed with EBADF found the fd gone, so
     * it wrote nothing (unless the fd went between two parts of one write, which is not seen). */
    if (r == -EBADF && ensure_fd() == 0) r = mp_sys_write_all(W.o.fd, W.chunk, n);
    W.len = 0;
    W.last_flush_ns = mp_sys_mono_ns();
    if (r != 0) {
        /* Disk full or similar: stop tracking, tell the user once, let the host run on. */
        W.failed = 1;
        mp_store_release(&mp_abandon, 1);
        mp_state_set(mp_state_disabled);
        mp_sys_log2("write failed, tracking stopped; dump is incomplete: ", W.o.path);
    }
}

/* Start a record of tag with a body of n bytes (at most the chunk capacity): flush first if it
 * would not fit; returns where the body goes. record_end(the body's end) closes it. */
static uint8_t *
record_begin(unsigned tag, size_t n) {
    if (W.len + 1 + MP_VARINT_MAX + n > CHUNK_CAP) flush();
    uint8_t *p = W.chunk + MP_CHUNK_HEADER_SIZE + W.len;
    *p++ = (uint8_t)tag;
    return p + mp_varint_put(p, n);
}
static void
record_end(const uint8_t *end) {
    W.len = (size_t)(end - (W.chunk + MP_CHUNK_HEADER_SIZE));
}

/* Append one record; body must not exceed the chunk capacity. */
static void
put_record(unsigned tag, const uint8_t *body, size_t n) {
    uint8_t *p = record_begin(tag, n);
    memcpy(p, body, n);
    record_end(p + n);
}

static uint8_t *
put_bytes(uint8_t *p, const void *s, size_t n) {
    p += mp_varint_put(p, n);
    memcpy(p, s, n);
    return p + n;
}

/* ---- records ----------------------------------------------------------------------------- */

static void
emit_process(void) {
    static char exe[MP_PATH_MAX], cwd[MP_PATH_MAX], argv[65536];
    mp_sys_readlink("/proc/self/exe", exe, sizeof exe);
    mp_sys_readlink("/proc/self/cwd", cwd, sizeof cwd);
    ssize_t an = mp_sys_read_file("/proc/self/cmdline", argv, sizeof argv);
    if (an < 0) an = 0;
    if (an > 0 && argv[an - 1] == 0) an--; /* drop the final NUL */
    uint8_t *p = W.scratch;
    p = put_bytes(p, exe, strlen(exe));
    p = put_bytes(p, argv, (size_t)an);
    p = put_bytes(p, cwd, strlen(cwd));
    put_record(MP_REC_PROCESS, W.scratch, (size_t)(p - W.scratch));
}

/* STACK records (3.0, FORMAT.md 5.4) name how many outer frames they share with the record before
 * them and hold only the frames inside those: stacks are emitted in interning order, and one
 * interned after another mostly shares its outer frames (at start-up imports nest 20-40 frames
 * deep, and each new line or call below makes a new stack), so a record is a few frames, not a
 * few dozen. S.frames is the previous record's stack: the table's copy, which never moves. */
static struct {
    const uint64_t *frames; /* the previous STACK record's frames, or NULL (none yet) */
    uint32_t n;
} S;

/* frames: the stack table's copy (stacks.h), which S keeps pointing at. A record takes at most
 * 3 + n varints: SCRATCH_CAP is far larger than any stack interned. */
static void
emit_stack(void *ctx, uint32_t id, const uint64_t *frames, uint32_t n) {
    (void)ctx;
    W.new_stacks = 1;
    uint32_t shared = 0; /* outer frames equal to the previous record's outer frames */
    if (S.frames) {
        const uint64_t *a = frames + n, *b = S.frames + S.n, *stop = a - (n < S.n ? n : S.n);
        while (a > stop && a[-1] == b[-1]) a--, b--;
        shared = (uint32_t)(frames + n - a);
    }
    uint8_t *p = W.scratch;
    p += mp_varint_put(p, id);
    p += mp_varint_put(p, n);
    p += mp_varint_put(p, shared);
    uint64_t prev = 0;
    for (uint32_t i = 0; i < n - shared; i++) {
        p += mp_varint_put(p, mp_zigzag((int64_t)(frames[i] - prev)));
        prev = frames[i];
    }
    put_record(MP_REC_STACK, W.scratch, (size_t)(p - W.scratch));
    S.frames = frames;
    S.n = n;
}

static inline size_t
varint_len(uint64_t v) {
    return 1 + (size_t)(63 - __builtin_clzll(v | 1)) / 7;
}

static void
emit_code(void *ctx, const uint8_t *body, size_t len) {
    (void)ctx;
    put_record(MP_REC_PYCODE, body, len);
}

static void
emit_python(void) {
    mp_pyinfo_t pi;
    unsigned gen = mp_python_info(&pi);
    if (gen == W.py_gen) return;
    W.py_gen = gen;
    uint8_t *p = W.scratch;
    p += mp_varint_put(p, pi.hexversion);
    p += mp_varint_put(p, pi.hooks);
    p = put_bytes(p, pi.allocator, strlen(pi.allocator));
    put_record(MP_REC_PYTHON, W.scratch, (size_t)(p - W.scratch));
}

/* Code objects first: a stack published after this scan may use a code registered after it,
 * which the next pass writes (readers resolve ids at the end, FORMAT.md 5.4). */
static void
emit_new_stacks(void) {
    uint32_t id, n;
    const uint64_t *frames;
    const uint8_t *body;
    size_t len;
    emit_python();
    while (mp_pycode_next(&W.code_cursor, &body, &len)) emit_code(NULL, body, len);
    while (mp_stacks_next(&W.stack_cursor, &id, &frames, &n)) emit_stack(NULL, id, frames, n);
}

static void
emit_module(void *ctx, const mp_module_t *m) {
    (void)ctx;
    uint8_t *p = W.scratch;
    p += mp_varint_put(p, m->bias);
    p += mp_varint_put(p, m->nranges);
    for (uint32_t i = 0; i < 2 * m->nranges; i++) p += mp_varint_put(p, m->ranges[i]);
    p = put_bytes(p, m->path, strlen(m->path));
    p = put_bytes(p, m->build_id, m->build_id_len);
    put_record(MP_REC_MODULE, W.scratch, (size_t)(p - W.scratch));
}

static void
emit_marker(unsigned kind, uint64_t seq, uint64_t mono_ns) {
    uint8_t body[32], *p = body;
    p += mp_varint_put(p, kind);
    p += mp_varint_put(p, seq);
    p += mp_varint_put(p, mono_ns - W.o.header.start_mono_ns);
    put_record(MP_REC_MARKER, body, (size_t)(p - body));
}

static void
emit_sample(uint64_t now) {
    char buf[128];
    ssize_t n = W.statm_fd >= 0 ? mp_sys_pread(W.statm_fd, buf, sizeof buf - 1, 0) : -1;
    if (n <= 0) return;
    buf[n] = 0;
    /* statm: "size resident shared ..." in pages. */
    const char *s = buf;
    while (*s && *s != ' ') s++;
    if (*s) s++;
    uint64_t pages = mp_str_parse_u64(&s);
    uint8_t body[32], *p = body;
    p += mp_varint_put(p, now - W.o.header.start_mono_ns);
    /* A number of its own, not a look at the counter: the reservation makes every ring take its
     * next events' numbers above it (ring.h's blocks), as events that start after it should. */
    p += mp_varint_put(p, mp_fetch_add_relaxed(&mp_seq, 1));
    p += mp_varint_put(p, pages * W.o.header.page_size);
    put_record(MP_REC_SAMPLE, body, (size_t)(p - body));
}

/* ---- draining rings ---------------------------------------------------------------------- */

/* Bytes [from, to) of r's events as one STREAM record (FORMAT.md 5.12): the producers wrote them
 * in the record's own encoding, so they are copied as they are. At most a ring's worth, which
 * fits an empty chunk. */
static void
put_stream(const mp_ring_t *r, uint64_t from, uint64_t to) {
    if (from == to) return;
    uint8_t *p = record_begin(MP_REC_STREAM, varint_len(r->stream) + (size_t)(to - from));
    p += mp_varint_put(p, r->stream);
    mp_ring_copy(r, from, to, p);
    record_end(p + (to - from));
}

static void
emit_note(const mp_ring_t *r, const mp_ring_note_t *n) {
    if (n->type == mp_note_marker) {
        emit_marker((unsigned)n->a, n->seq, n->b);
    } else if (n->type == mp_note_owner) {
        uint8_t body[24], *p = body;
        p += mp_varint_put(p, r->stream);
        p += mp_varint_put(p, n->a);
        put_record(MP_REC_THREAD, body, (size_t)(p - body));
    }
}

/* Drain one ring: its bytes, cut where its notes happened; returns the bytes drained. */
static uint64_t
drain_ring(mp_ring_t *r) {
    /* Head first: every note posted before the bytes up to h is then visible (ring.h). */
    uint64_t t0 = r->tail, h = mp_ring_ready(r), t = t0;
    uint32_t nt = r->notes_tail, nh = mp_ring_notes_ready(r);
    if (t == h && nt == nh) return 0;
    for (; nt != nh; nt++) {
        const mp_ring_note_t *n = &r->notes[nt % MP_RING_NOTES];
        if (n->pos > h) break; /* after bytes not yet published: the next pass */
        put_stream(r, t, n->pos);
        t = n->pos;
        emit_note(r, n);
    }
    put_stream(r, t, h);
    /* Release: the producer may now overwrite these bytes and notes. */
    mp_ring_consume(r, h, nt);
    return h - t0;
}

/* Drain every ring; returns the most bytes drained from one (0: all were empty). */
static uint64_t
drain_all(void) {
    uint64_t most = 0;
    for (mp_ring_t *r = mp_ring_first(); r; r = r->next) {
        uint64_t n = drain_ring(r);
        if (n > most) most = n;
    }
    return most;
}

static void
refresh_modules(uint64_t now, int force) {
    if (!W.o.native || !W.new_stacks) return;
    if (!force && now - W.last_modules_ns < (uint64_t)W.o.interval_ms * 1000000ull) return;
    W.new_stacks = 0;
    W.last_modules_ns = now;
    mp_modules_refresh(emit_module, NULL);
}

/* The trailer's totals: what the producers counted as they pushed (ring.h). */
static void
count_events(void) {
    W.allocs = W.frees = W.events = W.alloc_bytes = 0;
    for (mp_ring_t *r = mp_ring_first(); r; r = r->next) {
        W.allocs += mp_load_relaxed(&r->count[MP_EV_ALLOC]);
        W.frees += mp_load_relaxed(&r->count[MP_EV_FREE]);
        W.events += mp_load_relaxed(&r->count[MP_EV_REALLOC_FAIL]);
        W.alloc_bytes += mp_load_relaxed(&r->alloc_bytes);
    }
    W.events += W.allocs + W.frees;
}

static void
emit_trailer(void) {
    count_events();
    uint8_t body[96], *p = body;
    p += mp_varint_put(p, W.events);
    p += mp_varint_put(p, W.allocs);
    p += mp_varint_put(p, W.frees);
    p += mp_varint_put(p, W.alloc_bytes);
    p += mp_varint_put(p, 0); /* lost: the rings never drop */
    p += mp_varint_put(p, mp_sys_mono_ns() - W.o.header.start_mono_ns);
    p += mp_varint_put(p, mp_load_relaxed(&mp_seq));
    p += mp_varint_put(p, mp_load_relaxed(&mp_stacks_dropped));
    put_record(MP_REC_TRAILER, body, (size_t)(p - body));
}

/* ---- the thread -------------------------------------------------------------------------- */

/* How long to sleep after a pass that drained `most` bytes (> 0) from its fullest ring, `since`
 * ns after the pass before: until that ring, filling at the same rate, would be a quarter full,
 * between MP_WRITER_MIN_NS and the period. So the producers' half-full kick (a system call on
 * the allocating thread, ring.h) is left for bursts, and a steady stream wakes the writer a few
 * hundred times a second (every 2 ms at 20 M events/s) instead of every 0.1 ms. */
static uint64_t
writer_sleep_ns(uint64_t most, uint64_t since, uint64_t period) {
    uint64_t quarter = MP_RING_BYTES / 4;
    /* since <= 2^40 ns in practice (it is at most about the period), so the product fits. */
    uint64_t ns = since > (1ull << 40) ? period : since * quarter / most;
    if (ns < MP_WRITER_MIN_NS) ns = MP_WRITER_MIN_NS;
    return ns < period ? ns : period;
}

/* Whether a thread other than the stopping one may still be pushing an event numbered before
 * the stop: one that owns a ring. A producer owns its ring from before it takes an event's
 * sequence number until after it has published the event (capture.c: a thread holds its ring
 * for its life; one past its exit destructor claims a ring for each event and releases it once
 * pushed). If no other ring is owned now, every such event is already published (a released
 * ring's producer released it after its head: acquire here, release there), and the pass that
 * follows drains it; a producer that claims a ring only after this look takes a later number.
 * That its claim is visible here rests on x86-64's locked instructions being full barriers: the
 * claim (a CAS) precedes the producer's read of the sequence counter (a fetch-and-add, or a load
 * while its ring's block of numbers lasts, ring.h); a number below the stopper's means that read
 * did not see the stopper's fetch-and-add, so it, and the claim before it, precede that
 * fetch-and-add in memory order, which precedes the stop request this thread has seen. Elsewhere,
 * and in a process with other live threads, the grace passes run. Most programs end with one
 * thread: 2 ms less at every exit (python3 -c pass took 2.7 ms in mp_writer_stop, 0.4 ms without
 * them). */
static int
others_may_push(void) {
#if defined(__x86_64__)
    for (mp_ring_t *r = mp_ring_first(); r; r = r->next)
        if (r != W.stop_ring && mp_load_acquire(&r->state) == mp_ring_owned) return 1;
    return 0;
#else
    return 1;
#endif
}

static void *
writer_main(void *arg) {
    (void)arg;
    mp_thread.guard = 1; /* for its whole life: nothing the writer does is tracked */
    /* Off the program's time: freeing a large file's blocks takes milliseconds. */
    if (W.o.discard) mp_sys_unlink(W.o.discard);
    uint64_t period = (uint64_t)W.o.interval_ms * 1000000ull;
    uint64_t last_pass = mp_sys_mono_ns();
    for (;;) {
        int stopping = mp_load_acquire(&W.stop);
        uint64_t now = mp_sys_mono_ns(), since = now - last_pass;
        last_pass = now;
        emit_new_stacks();
        uint64_t drained = drain_all();
        /* Stacks interned by producers whose events were just drained are emitted in the same
         * chunk when possible (a killed process then loses neither). */
        emit_new_stacks();
        refresh_modules(now, 0);
        mp_python_schedule();
        if (now - W.last_sample_ns >= period) {
            emit_sample(now);
            W.last_sample_ns = now;
        }
        if (W.len >= CHUNK_FLUSH_AT || (W.len > 0 && now - W.last_flush_ns >= period)) flush();
        if (stopping) break;
        /* Sleep until kicked, or for the period when idle, or after a pass that found events
         * for as long as the rings take to fill to a quarter (writer_sleep_ns): draining again
         * at once would keep the producers' head and byte cache lines bouncing between the
         * cores for batches of a few events, and every wake-up costs both CPUs. */
        int w = mp_load_acquire(&W.wake);
        mp_store_release(&W.sleeping, 1);
        if (drained) {
            mp_sys_futex_wait(&W.wake, w, writer_sleep_ns(drained, since, period));
        } else if (!drain_all()) {
            mp_sys_futex_wait(&W.wake, w, period);
        }
        mp_store_release(&W.sleeping, 0);
    }
    /* Final: events that took a sequence number before the stop may still be on their way
     * into a ring (a producer preempted between the two); give them two short grace passes,
     * while another thread may be one of them (others_may_push). */
    for (int i = 0; i < 3; i++) {
        int others = others_may_push(); /* before the pass, which then drains what it cleared */
        emit_new_stacks();
        drain_all();
        if (!others || i == 2) break;
        mp_sys_sleep_ns(1000000);
    }
    emit_new_stacks();
    refresh_modules(mp_sys_mono_ns(), 1);
    emit_marker(W.stop_kind, W.stop_seq, W.stop_time);
    emit_sample(mp_sys_mono_ns());
    emit_trailer();
    flush();
    if (W.o.fd >= 0) mp_sys_close(W.o.fd);
    if (W.statm_fd >= 0) mp_sys_close(W.statm_fd);
    mp_store_release(&W.done, 1);
    mp_sys_futex_wake(&W.done, 1 << 30);
    return NULL;
}

void
mp_writer_kick(void) {
    mp_fetch_add_acq_rel(&W.wake, 1);
    if (mp_load_acquire(&W.sleeping)) mp_sys_futex_wake(&W.wake, 1);
}

int
mp_writer_start(const mp_writer_opts_t *opts) {
    W.o = *opts;
    if (!W.chunk) W.chunk = mp_sys_map(MP_CHUNK_HEADER_SIZE + CHUNK_CAP);
    if (!W.scratch) W.scratch = mp_sys_map(SCRATCH_CAP);
    if (!W.chunk || !W.scratch || mp_modules_init() != 0) return -1;
    S.frames = NULL;
    W.len = 0;
    W.failed = W.stop = W.done = W.sleeping = 0;
    W.events = W.allocs = W.frees = W.alloc_bytes = 0;
    W.last_flush_ns = W.last_sample_ns = W.last_modules_ns = 0;
    W.new_stacks = 1;
    W.stack_cursor = 0;
    W.code_cursor = 0;
    W.py_gen = 0;
    mp_modules_reset();
    W.statm_fd = mp_sys_open("/proc/self/statm", O_RDONLY, 0);

    if (mp_sys_file_id(W.o.fd, &W.dev, &W.ino) != 0) return -1;
    uint8_t hdr[MP_FMT_HEADER_SIZE];
    mp_fmt_header_encode(&W.o.header, hdr);
    if (mp_sys_write_all(W.o.fd, hdr, sizeof hdr) != 0) return -1;
    emit_process();
    if (opts->stacks_from_fork) {
        size_t barrier = mp_stacks_fork_barrier();
        mp_stacks_each_published(barrier, emit_stack, NULL);
        W.stack_cursor = barrier;
        size_t code_barrier = mp_pycode_fork_barrier();
        mp_pycode_each_published(code_barrier, emit_code, NULL);
        W.code_cursor = code_barrier;
    }

    /* The writer must never run a signal handler of the host: block everything in the new
     * thread (it inherits this mask), then restore ours. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&W.thread, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) return -1;
    W.running = 1;
    mp_ring_kick = mp_writer_kick;
    return 0;
}

int64_t
mp_writer_stop(unsigned marker_kind, uint64_t seq, uint64_t timeout_ms) {
    if (!W.running) return -1;
    W.stop_kind = marker_kind;
    W.stop_seq = seq;
    W.stop_time = mp_sys_mono_ns();
    W.stop_ring = mp_thread.status == mp_thread_active ? mp_thread.ring : NULL;
    mp_store_release(&W.stop, 1);
    mp_writer_kick();
    uint64_t deadline = mp_sys_mono_ns() + timeout_ms * 1000000ull;
    while (!mp_load_acquire(&W.done)) {
        uint64_t now = mp_sys_mono_ns();
        if (now >= deadline) return -1;
        mp_sys_futex_wait(&W.done, 0, deadline - now);
    }
    W.running = 0;
    /* The thread has returned; joining would be tidy but pthread_join can allocate-free
     * nothing here and is unsafe from _exit paths: detach instead. */
    pthread_detach(W.thread);
    return W.failed ? -1 : (int64_t)W.events;
}

void
mp_writer_forget(void) {
    /* The parent's descriptors, inherited: its dump (checked to be it) and its statm. Not the
     * child's to use, and the dump's, kept open, would hold the parent's FIFO lock (memprof.c)
     * for as long as the child lives. */
    if (W.o.fd >= 0 && is_dump(W.o.fd)) mp_sys_close(W.o.fd);
    W.o.fd = -1;
    if (W.statm_fd >= 0) mp_sys_close(W.statm_fd);
    W.statm_fd = -1;
    W.running = 0;
    W.sleeping = 0;
    mp_ring_kick = mp_writer_kick;
}
