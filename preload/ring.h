/* ring.h - bounded lock-free byte rings carrying events from interposed threads to the writer.
 *
 * Producer: the one thread that owns the ring (claimed with mp_ring_claim); never allocates. It
 * encodes each event where it happens, in the dump's own bytes (mp_ring_encode below: a STREAM
 * record's events, FORMAT.md 5.12, deltas against the ring's previous event), so the writer only
 * copies and checksums them. A fifth of the bytes of the 32-byte slot each event used to take, and
 * no encoding on the writer: with two cores, the writer's time comes out of the program's.
 * Consumer: the writer thread only.
 *
 * What is not an event goes beside the bytes, in the ring's notes: a new owner's thread id and
 * markers, each with the byte position it happened at, so the writer can cut the bytes there
 * without decoding them.
 *
 * A half-full ring kicks the writer; a full ring makes the producer wait for the writer (it
 * kicks the writer and sleeps in short steps); nothing is ever dropped, because a dropped free
 * would fabricate a leak. The wait ends early only if tracking is being shut down (*abandon).
 *
 * Rings live in private anonymous mappings and are registered in a lock-free, append-only list;
 * they are never unmapped while the process runs, so the writer can walk the list without
 * locks. A thread that exits releases its ring (mp_ring_release) and a later thread reuses it,
 * continuing its delta state; the first thing a new owner does is post an owner note.
 */
#ifndef MP_RING_H
#define MP_RING_H

#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "format.h"

/* Bytes of every ring (a power of two): some 160000 Python events at 6-7 bytes each, about 8 ms
 * of a thread that does nothing but allocate. Large enough for the writer to wake every few
 * milliseconds rather than every 0.1 ms (writer.c): with 256 KiB rings it woke up to 10000 times
 * a second, and on scripts/bench_py/churn.py its CPU time was 40% higher. Touched only as far
 * as a thread's events reach. */
#define MP_RING_BYTES (1u << 20)
/* Room a producer needs before it writes an event: the longest event (head byte, four prefix
 * varints of at most 9 bytes) plus the 7 bytes the encoder's 8-byte stores may write past it. The
 * ring's storage has this much slack past its end, so an event is written in one piece. */
#define MP_RING_EVENT_MAX 48u
/* Notes (owner changes, markers) in flight per ring; a producer waits when they are all taken. */
#define MP_RING_NOTES 64u

/* Every MP_RING_KICK_BYTES of events, the producer refreshes its view of the tail and kicks the
 * writer if the ring is at least half full. A writer that keeps up (it polls busy rings before
 * they are a quarter full, writer.c) is never kicked: a kick is a futex wake, a system call on
 * the allocating thread, and used to be a tenth of the cost of a Python event. */
#define MP_RING_KICK_BYTES (MP_RING_BYTES / 8)

enum { mp_note_owner = 1, mp_note_marker = 2 };
typedef struct mp_ring_note_s {
    uint64_t pos;  /* the ring's head (bytes) when it happened: set by mp_ring_note */
    uint64_t seq;  /* marker: its sequence number */
    uint64_t a;    /* owner: tid; marker: kind (MP_MARK_*) */
    uint64_t b;    /* marker: CLOCK_MONOTONIC, ns */
    uint32_t type; /* mp_note_* */
} mp_ring_note_t;

enum { mp_ring_free = 0, mp_ring_owned = 1 };

typedef struct mp_ring_s {
    /* Producer side: the owner writes these; the writer reads wp, and the counters once, for
     * the trailer. What every event touches is in the first cache line (count[MP_EV_ALLOC] and
     * count[MP_EV_FREE] included); the slow path's and REALLOC_FAIL's fields follow.
     *
     * The head (bytes published, counted from the ring's start) is published as wp, where the
     * next event goes: bytes + (head & mask), always below bytes + the capacity (the fast path
     * never reaches the end, ring.c's publish_slow wraps it). The fast path writes at wp and
     * compares it with wlimit, where it wrote at bytes + head less the lap's start and compared
     * head: two instructions an event fewer. The producer gets head back with its lap
     * (mp_ring_head), the writer with its tail (mp_ring_ready). */
    _Alignas(64) uint8_t *wp; /* bytes + (head & mask); release-stored by the producer */
    uint8_t *wlimit;          /* the last wp at which the fast path may push (below) */
    uint64_t last_seq;        /* delta bases of the next event: the last one's seq and ptr, */
    uint64_t last_ptr;
    uint32_t last_stack;  /* and the last stack of an ALLOC or FREE */
    uint32_t notes_head;  /* notes published; release-stored by the producer */
    uint64_t alloc_bytes; /* sum of the ALLOC sizes pushed */
    uint64_t count[3];    /* events pushed, by kind (MP_EV_*): relaxed, read by the writer */
    uint64_t tail_cache;  /* producer's last view of tail (avoids sharing the line) */
    uint64_t last_ptr2;   /* the other delta base of ptr (FORMAT.md 5.12), read on the long path */
    uint64_t seq_end;     /* the end of the ring's block of numbers, or MP_RING_SEQ_NONE (below) */
    uint64_t seq_start;   /* the ring's last reservation of numbers: its first, */
    uint64_t seq_res_end; /* and its end (0: none yet) */
    uint32_t seq_lonely;  /* it found no other reservation since the ring's one before */
    uint64_t lap;         /* head at bytes[0] in the lap wp is in (ring.c's publish_slow) */
    /* Consumer side. */
    _Alignas(64) uint64_t tail; /* bytes drained; release-stored by the writer */
    uint32_t notes_tail;        /* notes drained; release-stored by the writer */
    /* Registry (immutable once published, except state). */
    _Alignas(64) struct mp_ring_s *next; /* next ring in the registry */
    uint32_t stream;                     /* stream id in the dump, 0-based, unique */
    uint32_t state;                      /* mp_ring_free / mp_ring_owned */
    uint32_t mask;                       /* MP_RING_BYTES - 1 */
    uint8_t *bytes;                      /* MP_RING_BYTES + MP_RING_EVENT_MAX */
    void *scratch; /* the owner's private memory (capture.c's Python memo), kept for the next */
    uint64_t owner_tid; /* the tid of the last owner note posted (capture.c), 0 = none */
    mp_ring_note_t notes[MP_RING_NOTES];
} mp_ring_t;

/* Producer (the owner, or a test with the ring to itself): bytes published so far. */
static inline uint64_t
mp_ring_head(const mp_ring_t *r) {
    return r->lap + (uint64_t)(r->wp - r->bytes);
}

/* Called by producers when the writer should run now (ring filling, or full). */
extern void (*mp_ring_kick)(void);

/* Claim a free ring or map a new one; returns NULL only if mmap fails. Lock-free. The caller
 * then posts an owner note. */
mp_ring_t *mp_ring_claim(void);
/* Give the ring back (the owner thread is exiting). Its pending bytes stay for the writer. */
void mp_ring_release(mp_ring_t *r);
/* First ring of the registry (writer walks ->next with acquire loads). */
mp_ring_t *mp_ring_first(void);
/* Reset after fork, in the child (single-threaded): every ring empty, with fresh delta state and
 * counters, and free except keep, which stays owned. */
void mp_ring_reset_after_fork(mp_ring_t *keep);

/* The slow path of mp_ring_push (ring.c). */
int mp_ring_push_slow(mp_ring_t *r, unsigned kind, unsigned allocator, uint64_t *seqs, uint64_t ptr,
                      uint64_t size, uint32_t stack, const int *abandon);

/* mp_ring_encode's other cases (ring.c): the short form against the other base, else the long
 * form (prefix varints). */
size_t mp_ring_encode_long(mp_ring_t *r, uint8_t *p, unsigned kind, unsigned allocator,
                           uint64_t seq, uint64_t ptr, uint64_t size, uint32_t stack);

/* Whether an event's stack is the stream's previous one (the head's bit 2; never for a
 * REALLOC_FAIL, which has no stack). */
static inline int
mp_ring_same_stack(const mp_ring_t *r, unsigned kind, uint32_t stack) {
    return kind != MP_EV_REALLOC_FAIL && stack == r->last_stack;
}
/* Whether the event writes its stack. */
static inline int
mp_ring_puts_stack(unsigned kind, int same) {
    return kind != MP_EV_REALLOC_FAIL && !same;
}

/* Whether a pointer delta d (ptr less a base) is out of the short form's reach: 0 when d is a
 * multiple of 16 whose quotient lies in [-2^22, 2^22), so that it fits the 23-bit field (below),
 * which is exactly when d + 2^26, modulo 2^64, has no bit set outside bits 4 to 26 (one add and one
 * mask); nonzero otherwise. */
static inline uint64_t
mp_ring_out_of_reach(uint64_t d) {
    return (d + (1ull << 26)) & ~((1ull << 27) - 16);
}

/* The short form's ptr field of a delta d within reach (above): (d + 2^26) / 16, the quotient
 * offset by 2^22 into [0, 2^23) (FORMAT.md 5.12, 5.0), one shift of the sum the reach test has
 * just computed: the zigzag of 4.x took four instructions and a register more, some 5 an event
 * on scripts/bench_py/churn.py (callgrind). Anything for another d, which then takes another form.
 */
static inline uint64_t
mp_ring_ptr_field(uint64_t d) {
    return (d + (1ull << 26)) >> 4;
}

/* The short form's fit (FORMAT.md 5.12): seq follows the stream's previous one, d (ptr less the
 * base) is within reach (above; its field in *z), an ALLOC's size has 16 bits and a
 * stack to write 24. Every test at once, with no branch but the caller's. */
static inline int
mp_ring_short_fits(const mp_ring_t *r, unsigned kind, uint64_t seq, uint64_t d, uint64_t size,
                   uint32_t stack, int same, uint64_t *z) {
    *z = mp_ring_ptr_field(d);
    uint64_t longer = (seq - r->last_seq - 1) | mp_ring_out_of_reach(d);
    if (kind == MP_EV_ALLOC) longer |= size >> 16;
    if (mp_ring_puts_stack(kind, same)) longer |= stack >> 24;
    return longer == 0;
}

/* Write an event in the short form at p, its ptr field (23 bits of delta, and bit 23 for the
 * other base) given; returns its length (mp_ring_put_fields: the fields after the head byte and
 * before the stack, and their end). The stores are 4 bytes wide where the field is 3 (or
 * 2): the next field, the next event or the ring's slack takes the extra byte
 * (MP_RING_EVENT_MAX). */
static inline size_t
mp_ring_put_fields(uint8_t *p, unsigned kind, uint32_t field, uint64_t size) {
    __builtin_memcpy(p + 1, &field, 4);
    if (kind != MP_EV_ALLOC) return 4;
    uint32_t s32 = (uint32_t)size;
    __builtin_memcpy(p + 4, &s32, 4);
    return 6;
}
/* The short form's head byte of an event of kind and allocator with its stack written
 * (FORMAT.md 5.12; the same-stack flag is bit 2). The Python hooks, whose allocator is a
 * constant, pass it down to mp_ring_push_short rather than the allocator, which the push would
 * shift and or at every event. */
static inline unsigned
mp_ring_short_head(unsigned kind, unsigned allocator) {
    return 0x80u | allocator << 3 | kind;
}
/* The allocator of such a head byte. */
static inline unsigned
mp_ring_head_allocator(unsigned head) {
    return head >> 3 & 15u;
}

static inline size_t
mp_ring_put_short(uint8_t *p, unsigned kind, unsigned allocator, uint32_t field, uint64_t size,
                  int same, uint32_t stack) {
    p[0] = (uint8_t)(mp_ring_short_head(kind, allocator) | (unsigned)same << 2);
    size_t n = mp_ring_put_fields(p, kind, field, size);
    if (mp_ring_puts_stack(kind, same)) {
        __builtin_memcpy(p + n, &stack, 4);
        n += 3;
    }
    return n;
}

/* After an event, in either form: the delta state (seq, ptr, and the stack if it was written)
 * and the trailer's counters. */
static inline void
mp_ring_advance(mp_ring_t *r, unsigned kind, uint64_t seq, uint64_t ptr, uint64_t size, int same,
                uint32_t stack) {
    if (kind == MP_EV_ALLOC) mp_owner_add(&r->alloc_bytes, size);
    if (mp_ring_puts_stack(kind, same)) r->last_stack = stack;
    r->last_seq = seq;
    r->last_ptr = ptr;
    mp_owner_add(&r->count[kind], 1);
}

/* Producer: encode one event at p (where mp_ring_push puts it) as a STREAM record's event
 * (FORMAT.md 5.12), advance the delta state and count it; returns its length. Two forms, told
 * apart by bit 7 of the head byte (with the kind, the allocator and the "same stack" flag):
 * - short (nearly every event): the seq is the previous event's + 1 (not written), and the
 *   fields have fixed widths: the ptr delta in 16-byte units, offset by 2^22, in 23 bits of 3 bytes
 *   (the 24th selects the base: the previous event's ptr, here, or the other one, the pointer
 *   before the last switch, which mp_ring_encode_long tries); the size of an ALLOC in 2; the
 *   stack, unless it is the previous one's, in 3. It is a test of five
 *   conditions at once, a few shifts and stores, with no length to compute: 18 instructions
 *   fewer per event than the prefix varints of the long form (ring.c) on scripts/bench_py/
 *   churn.py (cachegrind, the allocating thread), for 4% more bytes (6.7 an event, not 6.5);
 * - long: the rest (another thread took sequence numbers in between, a ptr far from both bases
 *   or not 16 bytes from them, a size of 64 KiB or more). */
static inline size_t
mp_ring_encode(mp_ring_t *r, uint8_t *p, unsigned kind, unsigned allocator, uint64_t seq,
               uint64_t ptr, uint64_t size, uint32_t stack) {
    uint64_t z;
    int same = mp_ring_same_stack(r, kind, stack);
    if (__builtin_expect(
            !mp_ring_short_fits(r, kind, seq, ptr - r->last_ptr, size, stack, same, &z), 0))
        return mp_ring_encode_long(r, p, kind, allocator, seq, ptr, size, stack);
    size_t n = mp_ring_put_short(p, kind, allocator, (uint32_t)z, size, same, stack);
    mp_ring_advance(r, kind, seq, ptr, size, same, stack);
    return n;
}

/* Sequence numbers (FORMAT.md 6) come in blocks. A ring reserves MP_RING_SEQ_BLOCK numbers at a
 * time from the process-wide counter *seqs (one fetch_add, which leaves *seqs at the block's end,
 * seq_end) and takes them one by one while *seqs still equals seq_end, that is while no other
 * reservation has been made since its own: then the counter is only read, a plain load of a line
 * every core keeps shared, where it used to be a locked add on every event (on AMD EPYC, a tenth
 * of the Python hooks' time: cpu-clock samples on the instruction after it). Any other
 * reservation (another thread's, a marker's, the writer's SAMPLE) sends the ring's next event to
 * the slow path, which reserves a new block, above it.
 *
 * Why that keeps the order of section 6: let event E1 (ring A) happen before event E2 (ring B).
 * E1's number is in a block whose reservation R1 happened before E1, so before E2's load of
 * *seqs (a FREE takes its number before the real free, an ALLOC after the real allocation, so
 * whatever synchronization orders the two calls lies between E1's number and E2's). By
 * coherence that load reads R1's value or a later one. If E2 uses its ring's block, the load read
 * exactly the value of B's reservation (every reservation writes a different, larger value), so
 * that reservation comes after R1 in the counter's order (or is R1: the same ring, whose numbers
 * rise), and its block starts at or above R1's end. If E2 reserves, the same holds of its own
 * reservation. Either way E2's number is larger. A ring that changes owner keeps its block: the
 * old owner's events happen before the new owner's (mp_ring_release, mp_ring_claim).
 *
 * The fast path does not check that the block has numbers left: the slow path, which runs at
 * least once every MP_RING_KICK_BYTES of events (mp_ring_push), reserves a new block when fewer
 * than MP_RING_SEQ_WINDOW are left, more than the events between two of its runs (every event
 * takes 3 bytes or more).
 *
 * Where several threads allocate at once, every event would find another's reservation: a load
 * that misses and then a fetch_add on the same line. So when a block served a single event before
 * another reservation came, the ring reserves single numbers (seq_end is then MP_RING_SEQ_NONE,
 * which *seqs never equals: each event takes the slow path, which reserves at once, with no load
 * first) until one of those reservations finds none since the ring's previous one. Under the
 * GIL, where threads take turns, that is one reservation per turn; with threads that truly run
 * at once, one fetch_add per event, as before blocks.
 *
 * Gaps in the numbers (the rest of a block given up) are allowed: readers merge by number. */
#define MP_RING_SEQ_WINDOW (MP_RING_KICK_BYTES / 2)
#define MP_RING_SEQ_BLOCK (4 * MP_RING_SEQ_WINDOW)
#define MP_RING_SEQ_NONE UINT64_MAX
_Static_assert(MP_RING_SEQ_WINDOW > MP_RING_KICK_BYTES / 3 + 1, "a fast window can outrun a block");

/* The slow path's sequence number (ring.c): from the block if the counter allows it and enough
 * numbers are left, else from a new reservation. */
uint64_t mp_ring_seq_slow(mp_ring_t *r, uint64_t *seqs);

/* Producer: push one event, its sequence number taken from *seqs (mp_seq) once there is room:
 * encoded where it goes, then published. 0, or -1 (nothing pushed, no number taken) if *abandon
 * ended a wait for room.
 *
 * The fast path runs while head is at or below a limit (wp <= wlimit) and *seqs shows no
 * reservation since the ring's block (above): the producer's last view of the tail leaves room
 * for the longest event, which cannot run past the end of the storage (MP_RING_EVENT_MAX bytes free
 * there, contiguous thanks to the slack) nor cross a multiple of MP_RING_KICK_BYTES (where the
 * writer may need a kick). It is two compares, the encoding and a store, inside every hooked
 * allocation; wp is read once (only this thread writes it: the byte stores, which may alias
 * anything, do not make the compiler read it again), and the number is the last one's + 1, so the
 * short form's test of it folds away. Everything else (the room check with a fresh tail and the
 * wait, the copy of an event that ran into the slack, the kick and a new limit, a new block of
 * numbers) is mp_ring_push_slow's, once per MP_RING_KICK_BYTES or so, and once per turn of a
 * thread. mp_ring_fast_ok is that test, with wp p (every fast push: this, mp_ring_push_short and
 * mp_ring_push_short_other). */
static inline int
mp_ring_fast_ok(const mp_ring_t *r, const uint8_t *p, const uint64_t *seqs) {
    /* Relaxed: the argument above needs only coherence. */
    return __builtin_expect(p <= r->wlimit, 1) &&
           __builtin_expect(__atomic_load_n(seqs, __ATOMIC_RELAXED) == r->seq_end, 1);
}
static inline int
mp_ring_push(mp_ring_t *r, unsigned kind, unsigned allocator, uint64_t *seqs, uint64_t ptr,
             uint64_t size, uint32_t stack, const int *abandon) {
    uint8_t *p = r->wp;
    if (!mp_ring_fast_ok(r, p, seqs))
        return mp_ring_push_slow(r, kind, allocator, seqs, ptr, size, stack, abandon);
    uint64_t seq = r->last_seq + 1;
    /* No fast path runs across the end of the storage (above). */
    size_t n = mp_ring_encode(r, p, kind, allocator, seq, ptr, size, stack);
    /* Release: the writer that sees the new head sees the event's bytes. */
    __atomic_store_n(&r->wp, p + n, __ATOMIC_RELEASE);
    return 0;
}

/* Stack ids below this fit the short form's 3 bytes; the Python fast path's pushes take only such
 * ids (capture.c: hot entries hold no others), so they need not test it. */
#define MP_RING_SHORT_STACKS (1u << 24)

/* The Python fast path's push (capture.c's mp_capture_py_*_push): the short form only, with room
 * and a number at hand, head its head byte (mp_ring_short_head of kind and the allocator); 0 and
 * nothing written otherwise (the caller then takes mp_ring_push_short_other, then mp_ring_push,
 * which write what mp_ring_push alone would have). stack is below MP_RING_SHORT_STACKS (the
 * caller's guarantee). No call on any path, and fewer values live at once than in mp_ring_push's
 * short case.
 *
 * The same test as mp_ring_short_fits, less the number's (the block's numbers are consecutive)
 * and the stack's (the caller's guarantee). And two straight paths for a stack written or not,
 * each with its head byte and length as constants, rather than the flag computed and tested
 * twice. Its head byte, stack and state are mp_ring_put_short's and mp_ring_advance's written out
 * (calling them in each path costs 2 to 3 instructions more with GCC 12);
 * tests/unit/test_ring.c's short_push_writes_what_push_writes compares them byte for byte.
 *
 * other (a constant): against the other base (FORMAT.md 5.12: bit 23 of the ptr field), which
 * the previous ptr then becomes; mp_ring_push_short_other below. */
static MP_ALWAYS_INLINE int
mp_ring_push_short_base(mp_ring_t *r, unsigned kind, unsigned head, const uint64_t *seqs,
                        uint64_t ptr, uint64_t size, uint32_t stack, int other) {
    uint8_t *p = r->wp;
    if (!mp_ring_fast_ok(r, p, seqs)) return 0;
    /* The size's test on its own, a compare: folded into the reach's (a shift and an or) it
     * kept one more value live, which cost a saved register (4 instructions an ALLOC). */
    if (kind == MP_EV_ALLOC && __builtin_expect(size > 0xffff, 0)) return 0;
    uint64_t last = r->last_ptr;
    uint64_t d = ptr - (other ? r->last_ptr2 : last);
    if (__builtin_expect(mp_ring_out_of_reach(d) != 0, 0)) return 0;
    uint32_t field = (uint32_t)mp_ring_ptr_field(d) | (other ? 1u << 23 : 0u);
    size_t n = mp_ring_put_fields(p, kind, field, size);
    if (stack == r->last_stack) {
        p[0] = (uint8_t)(head | 4u);
    } else {
        p[0] = (uint8_t)head;
        __builtin_memcpy(p + n, &stack, 4);
        r->last_stack = stack;
        n += 3;
    }
    if (kind == MP_EV_ALLOC) mp_owner_add(&r->alloc_bytes, size);
    r->last_seq = r->last_seq + 1;
    if (other) r->last_ptr2 = last;
    r->last_ptr = ptr;
    mp_owner_add(&r->count[kind], 1);
    __atomic_store_n(&r->wp, p + n, __ATOMIC_RELEASE);
    return 1;
}
static inline int
mp_ring_push_short(mp_ring_t *r, unsigned kind, unsigned head, const uint64_t *seqs, uint64_t ptr,
                   uint64_t size, uint32_t stack) {
    return mp_ring_push_short_base(r, kind, head, seqs, ptr, size, stack, 0);
}

/* The same against the other base, for an event that mp_ring_push_short has just refused (only
 * then: that the previous ptr is out of reach is not tested again): where a thread's pointers
 * alternate between pymalloc's arenas and the malloc heap (mp_ring_encode_long's first case, some
 * 13% of the events of scripts/bench_py/mix.py). 0 and nothing written otherwise (the caller then
 * takes mp_ring_push). Inline in the out-of-line push of capture.c, where the generic encoder's
 * copy of this case (mp_ring_short_fits against both bases, the head byte built, the stack tested)
 * ran some 70 instructions an event (callgrind, mix.py). */
static inline int
mp_ring_push_short_other(mp_ring_t *r, unsigned kind, unsigned head, const uint64_t *seqs,
                         uint64_t ptr, uint64_t size, uint32_t stack) {
    return mp_ring_push_short_base(r, kind, head, seqs, ptr, size, stack, 1);
}

/* Producer: post a note at the current head (waiting while every note is taken, unless *abandon
 * is set: then -1 and nothing is posted). 0 when posted. */
int mp_ring_note(mp_ring_t *r, const mp_ring_note_t *note, const int *abandon);

/* Consumer: bytes [tail, head) are ready, and notes [notes_tail, notes_head). Read head first:
 * every note at a position up to that head is then visible. A note posted since may lie past
 * it: it waits for a later pass, with the bytes before it. After using them, mp_ring_consume. */
static inline uint64_t
mp_ring_ready(mp_ring_t *r) {
    const uint8_t *wp = __atomic_load_n(&r->wp, __ATOMIC_ACQUIRE);
    /* head - tail is below the capacity (the producer keeps MP_RING_EVENT_MAX free): it is the
     * distance from tail's position to wp's, modulo the capacity. */
    uint64_t t = mp_load_relaxed(&r->tail); /* the writer's own */
    return t + (((uint64_t)(wp - r->bytes) - t) & r->mask);
}
static inline uint32_t
mp_ring_notes_ready(mp_ring_t *r) {
    return __atomic_load_n(&r->notes_head, __ATOMIC_ACQUIRE);
}
static inline void
mp_ring_consume(mp_ring_t *r, uint64_t upto, uint32_t notes_upto) {
    __atomic_store_n(&r->notes_tail, notes_upto, __ATOMIC_RELEASE);
    __atomic_store_n(&r->tail, upto, __ATOMIC_RELEASE);
}
/* Consumer: copy bytes [from, to) (to - from <= MP_RING_BYTES) to out. */
static inline void
mp_ring_copy(const mp_ring_t *r, uint64_t from, uint64_t to, uint8_t *out) {
    uint64_t cap = (uint64_t)r->mask + 1, off = from & r->mask, n = to - from;
    uint64_t first = n < cap - off ? n : cap - off;
    __builtin_memcpy(out, r->bytes + off, (size_t)first);
    __builtin_memcpy(out + first, r->bytes, (size_t)(n - first));
}

#endif
