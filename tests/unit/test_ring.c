/* test_ring.c - the per-thread event rings (preload/ring.c, ring.h).
 *
 * Every Test() runs in its own forked process (Criterion's default), so the ring registry starts
 * empty in each; fresh() checks that. Threaded tests synchronize only through __atomic builtins
 * and pthread_join, so they are meaningful under ThreadSanitizer too.
 *
 * The rings carry bytes: each event in the dump's own encoding (a STREAM record's events,
 * FORMAT.md 5.12, in prefix varints, 2.4), with owner changes and markers as notes beside them. The
 * tests read them back as the writer does (writer.c, drain_ring: head first, then the notes; bytes
 * cut at each note's position) and decode them with their own delta state per stream (reader_t
 * below), checking every field of every event against what the producer pushed.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

#define CAP ((uint64_t)MP_RING_BYTES)
#define ROOM ((uint64_t)MP_RING_EVENT_MAX)
#define KICK ((uint64_t)MP_RING_KICK_BYTES)
#define NOTES ((uint32_t)MP_RING_NOTES)
/* The longest event: the long form's head, seq and ptr deltas and size (prefix varints of up to 9
 * bytes), stack (up to 2^32 - 1: 5 bytes). */
#define EVENT_LONGEST 33u

/* ---- helpers ----------------------------------------------------------------------------- */

static int kicks; /* mp_ring_kick calls (atomic) */

static void
count_kick(void) {
    __atomic_fetch_add(&kicks, 1, __ATOMIC_RELAXED);
}

static int
kicked(void) {
    return __atomic_load_n(&kicks, __ATOMIC_RELAXED);
}

static void
fresh(void) {
    cr_assert_null(mp_ring_first(), "ring tests need a fresh process (do not use --no-fork)");
    mp_ring_kick = count_kick;
}

typedef struct ev_s {
    unsigned kind, allocator;
    uint64_t seq, ptr, size;
    uint32_t stack;
} ev_t;

static uint64_t
mix(uint64_t x) { /* splitmix64 */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Event i of producer who, a pure function of both: every kind and allocator, and seq deltas, ptr
 * deltas (both signs), sizes and stacks of every varint length, so long-form events are 3 to 33
 * bytes long; and, the seq delta being 1 every other event, short-form events (FORMAT.md 5.12:
 * seq + 1, ptr deltas in the 16 MiB heap, sizes below 64 and stacks below 128 fit) of 4 to 9
 * bytes. Sizes and stacks are set for every kind: the encoding must leave them out where they do
 * not belong (size but for an ALLOC, stack for a REALLOC_FAIL). */
static ev_t
event(uint64_t who, uint64_t i) {
    uint64_t x = mix(who << 32 ^ i), y = mix(x);
    ev_t e;
    unsigned k = (unsigned)(x & 7);
    e.kind = k < 4 ? MP_EV_ALLOC : k < 7 ? MP_EV_FREE : MP_EV_REALLOC_FAIL;
    e.allocator = (unsigned)((x >> 3) % 13);
    /* Increasing, by 1 and 3 in turn, by 11 every 16 events, by 2^32 every 4096. */
    e.seq = (who << 48) + ((i >> 12) << 32) + i * 2 - (i & 1) + 8 * (i >> 4);
    unsigned pm = (unsigned)(x >> 11) & 7, sm = (unsigned)(x >> 14) & 3;
    if (pm < 4)
        e.ptr = 0x7f0000000000ull + ((y & 0xfffff) << 4); /* in a 16 MiB heap */
    else if (pm < 6)
        e.ptr = 0x560000000000ull + i * 32; /* ascending */
    else if (pm == 6)
        e.ptr = y; /* anywhere */
    else
        e.ptr = 0;
    if (sm == 0)
        e.size = ((y >> 20) & 63) + 1;
    else if (sm == 1)
        e.size = (y >> 20) & 0xfffff;
    else if (sm == 2)
        e.size = y >> 26;
    else
        e.size = y | 1ull << 63;
    e.stack = (x >> 16) & 1 ? (uint32_t)((y >> 40) & 127) : (uint32_t)(y >> 32);
    return e;
}

/* mp_ring_push with the sequence number given: its source is the parameter itself, and the
 * ring's block of numbers (ring.h) is given up first, so that the push reserves from it. */
static int
push_at(mp_ring_t *r, unsigned kind, unsigned allocator, uint64_t seq, uint64_t ptr, uint64_t size,
        uint32_t stack, const int *abandon) {
    r->seq_end = MP_RING_SEQ_NONE;
    return mp_ring_push(r, kind, allocator, &seq, ptr, size, stack, abandon);
}

static int
push(mp_ring_t *r, const ev_t *e, const int *abandon) {
    return push_at(r, e->kind, e->allocator, e->seq, e->ptr, e->size, e->stack, abandon);
}

/* A note's pos is set by mp_ring_note: start from garbage to see that it is. */
static int
post_owner(mp_ring_t *r, uint64_t who, const int *abandon) {
    mp_ring_note_t n;
    memset(&n, 0, sizeof n);
    n.type = mp_note_owner;
    n.a = who;
    n.pos = ~0ull;
    return mp_ring_note(r, &n, abandon);
}

static int
post_marker(mp_ring_t *r, uint64_t seq, uint64_t kind, uint64_t ns, const int *abandon) {
    mp_ring_note_t n;
    memset(&n, 0, sizeof n);
    n.type = mp_note_marker;
    n.seq = seq;
    n.a = kind;
    n.b = ns;
    n.pos = ~0ull;
    return mp_ring_note(r, &n, abandon);
}

/* The abandon flag of single-threaded tests: no one else could make room, so a wait would never
 * end; with the flag set, a push or note that would wait returns -1 instead. */
static const int alone = 1;

static uint64_t
now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the consumer: the writer's drain, and a decoder ------------------------------------ */

#define MAX_STREAMS 64
#define MAX_OWNERS 1024
#define MAX_LOG (4096 * (CAP >> 18)) /* notes the reader keeps: more than any test posts */

typedef struct logged_s {
    uint32_t stream;
    uint64_t events_before; /* events of the stream read before the note */
    mp_ring_note_t note;
} logged_t;

/* What one consumer (there is one per test process) has read. Delta state is per stream and
 * carries across owners: a new owner continues the ring's deltas. Each event is checked against
 * event(owner, next[owner]), the owner coming from the stream's last owner note. */
typedef struct reader_s {
    uint32_t max_streams; /* more streams than this is an error */
    uint64_t lifetime;    /* events per owner, checked at the next owner note (0: not checked) */
    int counted_markers;  /* each marker's seq is the count of events its owner pushed before it,
                           * and b the owner (threaded tests: marker_after) */
    uint64_t last_seq[MAX_STREAMS], last_ptr[MAX_STREAMS], last_stack[MAX_STREAMS];
    uint64_t last_ptr2[MAX_STREAMS];     /* the other base of the ptr deltas (FORMAT.md 5.12) */
    uint64_t other_base;                 /* short events against it */
    uint64_t flagged_seq, flagged_stack; /* events in the short form / with the same-stack flag */
    int64_t owner[MAX_STREAMS];          /* -1 before the first owner note */
    uint64_t stream_events[MAX_STREAMS], count[MAX_STREAMS][3], alloc_bytes[MAX_STREAMS];
    uint64_t next[MAX_OWNERS];
    uint32_t announced[MAX_OWNERS];
    uint64_t events, notes;
    uint64_t wrapped; /* events that ran past the end of the storage (continued at its start) */
    size_t nlog;
    logged_t log[MAX_LOG]; /* the notes, in order */
    char why[256];         /* the first failure; empty while all is well */
} reader_t;

static reader_t rd;
static uint8_t copy_buf[MP_RING_BYTES];

static void
reader_init(void) {
    memset(&rd, 0, sizeof rd);
    rd.max_streams = MAX_STREAMS;
    for (int s = 0; s < MAX_STREAMS; s++) rd.owner[s] = -1;
}

/* The stream starts afresh (after mp_ring_reset_after_fork). */
static void
reader_forget(uint32_t s) {
    rd.last_seq[s] = rd.last_ptr[s] = rd.last_ptr2[s] = rd.stream_events[s] = rd.alloc_bytes[s] = 0;
    rd.last_stack[s] = 0;
    rd.count[s][0] = rd.count[s][1] = rd.count[s][2] = 0;
    rd.owner[s] = -1;
}

__attribute__((format(printf, 1, 2))) static int
fail(const char *fmt, ...) {
    if (!rd.why[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rd.why, sizeof rd.why, fmt, ap);
        va_end(ap);
    }
    return -1;
}

#define CHECK_READER()                                                                             \
    do {                                                                                           \
        if (rd.why[0]) cr_assert_fail("%s", rd.why);                                               \
    } while (0)

/* Decode bytes [from, to) of r: whole events, checked one by one (in locals, written back at the
 * end: this is the hot loop of the threaded tests, under ThreadSanitizer too). */
static int
read_bytes(mp_ring_t *r, uint64_t from, uint64_t to) {
    if (from == to) return 0;
    uint32_t s = r->stream;
    if (to < from || to - from > CAP)
        return fail("stream %u: bytes [%llu, %llu)", s, (unsigned long long)from,
                    (unsigned long long)to);
    int64_t o = rd.owner[s];
    if (o < 0) return fail("stream %u: event before the owner note", s);
    mp_ring_copy(r, from, to, copy_buf);
    const uint8_t *p = copy_buf, *end = copy_buf + (to - from);
    uint64_t seq = rd.last_seq[s], ptr = rd.last_ptr[s], i = rd.next[o], n = 0, wrapped = 0;
    uint64_t ptr2 = rd.last_ptr2[s];
    uint64_t last_stack = rd.last_stack[s], flagged_seq = 0, flagged_stack = 0;
    uint64_t count[3] = {0, 0, 0}, bytes = 0;
    int bad = 0;
    while (p < end) {
        uint64_t at = from + (uint64_t)(p - copy_buf);
        uint8_t head = *p++;
        /* FORMAT.md 5.12: bit 7 the short form (seq + 1, fixed-width fields), bit 2 the previous
         * stack, kind in bits 1..0. */
        unsigned kind = head & 3u, seq1 = head >> 7, same = (head >> 2) & 1;
        uint64_t ds = 1, dp = 0, size = 0, stack = 0;
        if (kind > MP_EV_REALLOC_FAIL || (same && kind == MP_EV_REALLOC_FAIL)) {
            bad = fail("stream %u: bad head byte %#x at %llu", s, head, (unsigned long long)at);
            break;
        }
        flagged_seq += seq1;
        flagged_stack += same;
        if (same) stack = last_stack;
        int has_stack = kind != MP_EV_REALLOC_FAIL && !same;
        if (seq1) {
            /* ptr delta / 16 offset by 2^22 in 23 bits of 3 bytes (the 24th: against the other
             * base), size in 2, stack in 3 (little-endian) */
            size_t need = 3 + (kind == MP_EV_ALLOC ? 2 : 0) + (has_stack ? 3 : 0);
            if ((size_t)(end - p) < need) {
                bad = fail("stream %u: short event at %llu runs past %llu", s,
                           (unsigned long long)at, (unsigned long long)to);
                break;
            }
            uint64_t base = p[2] >> 7 ? ptr2 : ptr;
            uint64_t field = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)(p[2] & 0x7f) << 16;
            dp = mp_zigzag((int64_t)(base - ptr) + ((int64_t)field - (1 << 22)) * 16);
            if (p[2] >> 7) {
                rd.other_base++;
                ptr2 = ptr;
            }
            p += 3;
            if (kind == MP_EV_ALLOC) size = (uint64_t)p[0] | (uint64_t)p[1] << 8, p += 2;
            if (has_stack) stack = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16;
            if (has_stack) p += 3;
        } else if (mp_pvarint_get(&p, end, &ds) != 0 || mp_pvarint_get(&p, end, &dp) != 0 ||
                   (kind == MP_EV_ALLOC && mp_pvarint_get(&p, end, &size) != 0) ||
                   (has_stack && mp_pvarint_get(&p, end, &stack) != 0)) {
            bad = fail("stream %u: event at %llu runs past %llu", s, (unsigned long long)at,
                       (unsigned long long)to);
            break;
        } else {
            ptr2 = ptr; /* after the long form, the previous ptr is the other base */
        }
        uint64_t len = from + (uint64_t)(p - copy_buf) - at;
        wrapped += (at & r->mask) + len > CAP;
        seq += ds;
        ptr += (uint64_t)mp_unzigzag(dp);
        ev_t want = event((uint64_t)o, i);
        if (want.kind != MP_EV_ALLOC) want.size = 0;
        if (want.kind == MP_EV_REALLOC_FAIL) want.stack = 0;
        if (kind != want.kind || MP_EV_ALLOCATOR(head) != want.allocator || seq != want.seq ||
            ptr != want.ptr || size != want.size || stack != want.stack) {
            bad = fail("stream %u owner %lld event %llu at byte %llu: kind %u alloc %u seq %llx "
                       "ptr %llx size %llx stack %llx; want kind %u alloc %u seq %llx ptr %llx "
                       "size %llx stack %x",
                       s, (long long)o, (unsigned long long)i, (unsigned long long)at, kind,
                       MP_EV_ALLOCATOR(head), (unsigned long long)seq, (unsigned long long)ptr,
                       (unsigned long long)size, (unsigned long long)stack, want.kind,
                       want.allocator, (unsigned long long)want.seq, (unsigned long long)want.ptr,
                       (unsigned long long)want.size, want.stack);
            break;
        }
        i++;
        n++;
        count[kind]++;
        if (kind == MP_EV_ALLOC) bytes += size;
        if (kind != MP_EV_REALLOC_FAIL) last_stack = stack;
    }
    rd.last_seq[s] = seq;
    rd.last_ptr[s] = ptr;
    rd.last_ptr2[s] = ptr2;
    rd.last_stack[s] = last_stack;
    rd.flagged_seq += flagged_seq;
    rd.flagged_stack += flagged_stack;
    rd.next[o] = i;
    rd.stream_events[s] += n;
    rd.events += n;
    rd.wrapped += wrapped;
    for (int k = 0; k < 3; k++) rd.count[s][k] += count[k];
    rd.alloc_bytes[s] += bytes;
    return bad;
}

static void
take_note(uint32_t s, const mp_ring_note_t *n) {
    rd.notes++;
    if (rd.nlog < MAX_LOG) rd.log[rd.nlog++] = (logged_t){s, rd.stream_events[s], *n};
    if (n->type == mp_note_owner) {
        if (n->a >= MAX_OWNERS) {
            fail("stream %u: owner %llu", s, (unsigned long long)n->a);
            return;
        }
        int64_t prev = rd.owner[s];
        if (rd.lifetime && prev >= 0 && rd.next[prev] != rd.lifetime)
            fail("stream %u: owner %lld ended after %llu events, before its last", s,
                 (long long)prev, (unsigned long long)rd.next[prev]);
        if (rd.announced[n->a]++) fail("owner %llu announced twice", (unsigned long long)n->a);
        rd.owner[s] = (int64_t)n->a;
    } else if (n->type != mp_note_marker) {
        fail("stream %u: note of type %u", s, n->type);
    } else if (rd.counted_markers) {
        int64_t o = rd.owner[s];
        if (o < 0 || n->b != (uint64_t)o || n->seq != rd.next[o])
            fail("stream %u: marker of owner %llu after %llu events, read as owner %lld's after "
                 "%llu",
                 s, (unsigned long long)n->b, (unsigned long long)n->seq, (long long)o,
                 (unsigned long long)(o < 0 ? 0 : rd.next[o]));
    }
}

/* Drain r as the writer does, with h the head read first; returns the bytes drained. */
static uint64_t
read_ring_upto(mp_ring_t *r, uint64_t h) {
    if (r->stream >= rd.max_streams) {
        fail("stream %u: more rings than expected", r->stream);
        return 0;
    }
    uint64_t t0 = r->tail, t = t0;
    uint32_t nt = r->notes_tail, nh = mp_ring_notes_ready(r);
    if (nh - nt > NOTES) fail("stream %u: %u notes pending", r->stream, nh - nt);
    for (; nt != nh; nt++) {
        const mp_ring_note_t *n = &r->notes[nt % NOTES];
        if (n->pos > h) break; /* after bytes not yet read: the next pass */
        if (n->pos < t)
            fail("stream %u: note at %llu, bytes read up to %llu", r->stream,
                 (unsigned long long)n->pos, (unsigned long long)t);
        else if (read_bytes(r, t, n->pos) == 0)
            t = n->pos;
        take_note(r->stream, n);
    }
    read_bytes(r, t, h);
    mp_ring_consume(r, h, nt);
    return h - t0;
}

static uint64_t
read_ring(mp_ring_t *r) {
    return read_ring_upto(r, mp_ring_ready(r));
}

/* One pass over every ring; returns the bytes drained. */
static uint64_t
read_all(void) {
    uint64_t got = 0;
    for (mp_ring_t *r = mp_ring_first(); r; r = r->next) got += read_ring(r);
    return got;
}

/* Push event(who, *i), event(who, *i + 1), ... until the ring has no room for another; the next
 * push would wait. Single-threaded: tail does not move meanwhile. Returns the bytes pushed. */
static uint64_t
fill(mp_ring_t *r, uint64_t who, uint64_t *i) {
    uint64_t h0 = mp_ring_head(r);
    while (mp_ring_head(r) + ROOM - r->tail <= CAP) {
        ev_t e = event(who, (*i)++);
        cr_assert_eq(push(r, &e, &alone), 0);
    }
    return mp_ring_head(r) - h0;
}

/* The ring's counters and delta state agree with what the reader decoded from its stream. */
static void
check_counters(mp_ring_t *r) {
    uint32_t s = r->stream;
    for (int k = 0; k < 3; k++)
        cr_assert_eq(r->count[k], rd.count[s][k], "stream %u: count[%d] %llu, read %llu", s, k,
                     (unsigned long long)r->count[k], (unsigned long long)rd.count[s][k]);
    cr_assert_eq(r->alloc_bytes, rd.alloc_bytes[s], "stream %u: alloc_bytes", s);
    cr_assert_eq(r->last_seq, rd.last_seq[s], "stream %u: last_seq", s);
    cr_assert_eq(r->last_ptr, rd.last_ptr[s], "stream %u: last_ptr", s);
    cr_assert_eq(r->last_stack, rd.last_stack[s], "stream %u: last_stack", s);
}

/* ---- claiming ---------------------------------------------------------------------------- */

Test(ring, claim_maps_new_rings_in_stream_order, .timeout = 30) {
    fresh();
    mp_ring_t *a = mp_ring_claim(), *b = mp_ring_claim(), *c = mp_ring_claim();
    cr_assert(a && b && c);
    cr_assert(a != b && b != c && a != c);
    cr_assert_eq(a->stream, 0);
    cr_assert_eq(b->stream, 1);
    cr_assert_eq(c->stream, 2);
    mp_ring_t *rs[] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        mp_ring_t *r = rs[i];
        cr_assert_eq(r->state, mp_ring_owned);
        cr_assert_eq(r->mask, CAP - 1);
        cr_assert_eq(mp_ring_head(r), 0);
        cr_assert_eq(r->tail, 0);
        cr_assert_eq(r->tail_cache, 0);
        cr_assert_eq(r->notes_head, 0);
        cr_assert_eq(r->notes_tail, 0);
        cr_assert_eq(r->last_seq, 0);
        cr_assert_eq(r->last_ptr, 0);
        cr_assert(r->count[0] == 0 && r->count[1] == 0 && r->count[2] == 0);
        cr_assert_eq(r->alloc_bytes, 0);
        cr_assert_eq((uintptr_t)r % 64, 0, "ring header not cache-line aligned");
        cr_assert_geq((uintptr_t)&r->tail - (uintptr_t)&r->wp, 64, "tail shares wp's line");
        /* The storage and its slack are there and writable. */
        cr_assert_not_null(r->bytes);
        r->bytes[0] = 1;
        r->bytes[CAP - 1] = 2;
        r->bytes[CAP + ROOM - 1] = 3;
        for (int j = 0; j < 3; j++)
            if (j != i)
                cr_assert(r->bytes + CAP + ROOM <= rs[j]->bytes ||
                              rs[j]->bytes + CAP + ROOM <= r->bytes,
                          "rings %d and %d overlap", i, j);
    }
    /* The registry holds each ring exactly once. */
    int seen[3] = {0, 0, 0}, n = 0;
    for (mp_ring_t *r = mp_ring_first(); r; r = r->next, n++) {
        cr_assert_lt(r->stream, 3);
        seen[r->stream]++;
    }
    cr_assert_eq(n, 3);
    cr_assert(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
}

/* ---- the encoding -------------------------------------------------------------------------- */

static void
check_bytes(const uint8_t *got, const uint8_t *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "%s: byte %zu is %#x, want %#x", what, i, got[i], want[i]);
}

Test(ring, encodes_stream_events_with_counters_and_delta_state, .timeout = 30) {
    fresh();
    mp_ring_t *r = mp_ring_claim();
    uint64_t seqs = 5; /* the sequence source: mp_ring_push takes 5, reserving a block */
    cr_assert_eq(mp_ring_ready(r), 0);
    cr_assert_eq(mp_ring_push(r, MP_EV_ALLOC, MP_ALLOC_MALLOC, &seqs, 0x1000, 100, 3, &alone), 0);
    static const uint8_t a[] = {0x00, 0x0b, 0x02, 0x80, 0xc9, 0x07};
    check_bytes(r->bytes, a, sizeof a, "ALLOC");
    cr_assert_eq(mp_ring_ready(r), sizeof a);
    cr_assert_eq(seqs, 5 + MP_RING_SEQ_BLOCK);
    cr_assert_eq(r->last_seq, 5);
    cr_assert_eq(r->last_ptr, 0x1000);
    cr_assert_eq(r->count[MP_EV_ALLOC], 1);
    cr_assert_eq(r->alloc_bytes, 100);

    /* A FREE: no size (999 is not written), ptr delta -16. */
    cr_assert_eq(push_at(r, MP_EV_FREE, MP_ALLOC_FREE, 7, 0xff0, 999, 300, &alone), 0);
    static const uint8_t f[] = {0x49, 0x05, 0x3f, 0xb2, 0x04};
    cr_assert_eq(mp_ring_head(r), sizeof a + sizeof f);
    check_bytes(r->bytes + sizeof a, f, sizeof f, "FREE");
    cr_assert_eq(r->count[MP_EV_FREE], 1);
    cr_assert_eq(r->alloc_bytes, 100, "a FREE's size counted");
    cr_assert_eq(r->last_seq, 7);
    cr_assert_eq(r->last_ptr, 0xff0);

    /* A REALLOC_FAIL: neither size nor stack; its seq follows the previous one's, and its ptr is
     * the same: the short form, with a 3-byte ptr delta (0 + 2^22: 00 00 40). */
    cr_assert_eq(push_at(r, MP_EV_REALLOC_FAIL, MP_ALLOC_REALLOC, 8, 0xff0, 77, 55, &alone), 0);
    static const uint8_t rf[] = {0x92, 0x00, 0x00, 0x40};
    cr_assert_eq(mp_ring_head(r), sizeof a + sizeof f + sizeof rf);
    check_bytes(r->bytes + sizeof a + sizeof f, rf, sizeof rf, "REALLOC_FAIL");
    cr_assert_eq(r->count[MP_EV_REALLOC_FAIL], 1);
    cr_assert_eq(r->last_seq, 8);

    /* Long fields: a 6-byte seq delta, a negative ptr delta, a size of 2^56 or more (a zero byte
     * and 8 bytes) and a 5-byte stack. */
    uint64_t h = mp_ring_head(r);
    cr_assert_eq(push_at(r, MP_EV_ALLOC, MP_ALLOC_PYMEM_OBJ, 8 + (1ull << 35), 0, 1ull << 63,
                         0xffffffffu, &alone),
                 0);
    static const uint8_t big[] = {0x60, 0x20, 0x00, 0x00, 0x00, 0x00, 0x02, 0x7e,
                                  0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                  0x00, 0x80, 0xf0, 0xff, 0xff, 0xff, 0x1f};
    cr_assert_eq(mp_ring_head(r) - h, sizeof big);
    check_bytes(r->bytes + h, big, sizeof big, "long ALLOC");
    cr_assert_eq(r->count[MP_EV_ALLOC], 2);
    cr_assert_eq(r->alloc_bytes, 100 + (1ull << 63));
    cr_assert_eq(r->last_seq, 8 + (1ull << 35));
    cr_assert_eq(r->last_ptr, 0);

    /* Bring the head to 3 bytes before the end of the storage with short events (drained as
     * they go), and push the long one again: it runs into the slack and continues at the start,
     * as the consumer reads it. */
    uint64_t seq = r->last_seq;
    /* Seqs + 1, ptr 0, stack 1 after the first (7 bytes, with the stack): a FREE is 4 bytes, an
     * ALLOC 6; the head is then odd, as CAP - 3, so they make up the even distance. */
    push_at(r, MP_EV_FREE, MP_ALLOC_FREE, ++seq, 0, 0, 1, &alone);
    cr_assert_eq(mp_ring_head(r) % 2, 1);
    while (mp_ring_head(r) % CAP != CAP - 3) {
        uint64_t d = CAP - 3 - mp_ring_head(r) % CAP;
        if (d % 4 == 2)
            push_at(r, MP_EV_ALLOC, MP_ALLOC_MALLOC, ++seq, 0, 1, 1, &alone);
        else
            push_at(r, MP_EV_FREE, MP_ALLOC_FREE, ++seq, 0, 0, 1, &alone);
        if (mp_ring_head(r) - r->tail > CAP / 4) mp_ring_consume(r, mp_ring_head(r), r->notes_head);
    }
    mp_ring_consume(r, mp_ring_head(r), r->notes_head);
    h = mp_ring_head(r);
    cr_assert_eq(push_at(r, MP_EV_ALLOC, MP_ALLOC_PYMEM_OBJ, seq + (1ull << 35), (uint64_t)-0xff0,
                         1ull << 63, 0xffffffffu, &alone),
                 0);
    cr_assert_eq(mp_ring_head(r) - h, sizeof big);
    check_bytes(r->bytes + CAP - 3, big, 3, "end of the storage");
    check_bytes(r->bytes, big + 3, sizeof big - 3, "start of the storage");
    uint8_t out[sizeof big];
    mp_ring_copy(r, h, mp_ring_head(r), out);
    check_bytes(out, big, sizeof big, "mp_ring_copy");
}

/* ---- single thread: wrap-around and kicks ------------------------------------------------ */

Test(ring, wraps_with_events_of_every_length, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r = mp_ring_claim();
    cr_assert_not_null(r);
    cr_assert_eq(post_owner(r, 7, &alone), 0);
    uint64_t i = 0, straddled = 0, shortest = ~0ull, longest = 0, count[3] = {0}, bytes = 0;
    /* Batches (in events) that do not divide the capacity, so event boundaries land everywhere;
     * the longer ones stop when the ring is full. About 40 times the capacity in all. */
    static const unsigned batch[] = {1, 7, 1000, 30011, 8191, 5000, 3333, 2, 17000, 40000};
    for (unsigned round = 0; mp_ring_head(r) < 40 * CAP; round++) {
        unsigned n = batch[round % (sizeof batch / sizeof batch[0])];
        for (unsigned k = 0; k < n && mp_ring_head(r) + ROOM - r->tail <= CAP; k++, i++) {
            ev_t e = event(7, i);
            uint64_t h = mp_ring_head(r);
            if (push(r, &e, &alone) != 0)
                cr_assert_fail("push %llu refused", (unsigned long long)i);
            uint64_t len = mp_ring_head(r) - h;
            if (len < 2 || len > EVENT_LONGEST || r->last_seq != e.seq || r->last_ptr != e.ptr)
                cr_assert_fail("event %llu: %llu bytes, last_seq %llx, last_ptr %llx",
                               (unsigned long long)i, (unsigned long long)len,
                               (unsigned long long)r->last_seq, (unsigned long long)r->last_ptr);
            if (len < shortest) shortest = len;
            if (len > longest) longest = len;
            /* Started within MP_RING_EVENT_MAX of the end and ran past it. */
            if ((h & r->mask) + len > CAP) straddled++;
            count[e.kind]++;
            if (e.kind == MP_EV_ALLOC) bytes += e.size;
        }
        read_ring(r);
        CHECK_READER();
        cr_assert_eq(rd.next[7], i);
        cr_assert_eq(r->tail, mp_ring_head(r));
    }
    cr_log_info("wrap: %llu events, %llu straddled the end", (unsigned long long)i,
                (unsigned long long)straddled);
    cr_assert_geq(straddled, 20, "only %llu events ran past the end of the storage",
                  (unsigned long long)straddled);
    cr_assert_gt(rd.flagged_seq, 0, "no event had the short form");
    cr_assert_gt(rd.other_base, 0, "no short event used the other base");
    cr_assert_gt(rd.flagged_stack, 0, "no event had the same-stack flag");
    cr_assert_eq(rd.wrapped, straddled, "the reader decoded %llu of the %llu wrapped events",
                 (unsigned long long)rd.wrapped, (unsigned long long)straddled);
    cr_assert_leq(shortest, 4);
    cr_assert_geq(longest, 24);
    cr_assert(count[0] && count[1] && count[2]);
    for (int k = 0; k < 3; k++) cr_assert_eq(r->count[k], count[k], "count[%d]", k);
    cr_assert_eq(r->alloc_bytes, bytes);
    check_counters(r);
    cr_assert_eq(rd.notes, 1);
    cr_assert_eq(rd.log[0].events_before, 0);
}

Test(ring, fills_then_drains_repeatedly, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r = mp_ring_claim();
    const int abandon = 1; /* set from the start: a ring with room must still accept events */
    cr_assert_eq(post_owner(r, 1, &abandon), 0);
    uint64_t i = 0;
    /* Start at an odd offset so each fill wraps in the middle of the storage. */
    for (; i < 3; i++) {
        ev_t e = event(1, i);
        cr_assert_eq(push(r, &e, &abandon), 0);
    }
    read_ring(r);
    for (int round = 0; round < 10; round++) {
        uint64_t h, seq, ptr, count[3], bytes;
        int before;
        ev_t e;
        for (;;) {
            e = event(1, i);
            h = mp_ring_head(r), seq = r->last_seq, ptr = r->last_ptr, bytes = r->alloc_bytes;
            memcpy(count, r->count, sizeof count);
            before = kicked();
            if (push(r, &e, &abandon) != 0) break;
            i++;
        }
        /* Refused only when full, and then nothing was written. */
        cr_assert_gt(h + ROOM - r->tail, CAP, "refused with %llu bytes free",
                     (unsigned long long)(CAP - (h - r->tail)));
        cr_assert_eq(mp_ring_head(r), h);
        cr_assert_eq(mp_ring_ready(r), h);
        cr_assert(r->last_seq == seq && r->last_ptr == ptr && r->alloc_bytes == bytes);
        cr_assert_eq(memcmp(count, r->count, sizeof count), 0);
        cr_assert_gt(kicked(), before, "a full ring kicks the writer");
        cr_assert_eq(push(r, &e, &abandon), -1);
        /* Drain: every event the fill pushed, in order; then the refused event goes in. */
        uint64_t pending = h - r->tail;
        cr_assert_eq(read_ring(r), pending);
        CHECK_READER();
        cr_assert_eq(rd.next[1], i);
        cr_assert_eq(r->tail, h);
        cr_assert_eq(push(r, &e, &abandon), 0);
        i++;
    }
    read_ring(r);
    CHECK_READER();
    cr_assert_eq(rd.next[1], i);
    check_counters(r);
}

/* The fast path (wp <= wlimit, ring.h) is taken only where it is safe: the room, the end of the
 * storage and the next multiple of MP_RING_KICK_BYTES are all at least MP_RING_EVENT_MAX away
 * (checked against the real tail, which only advances); and it is taken for nearly every event. */
Test(ring, fast_path_only_where_safe_and_nearly_always, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r = mp_ring_claim();
    cr_assert_eq(post_owner(r, 5, &alone), 0);
    uint64_t fast = 0, n = 0;
    for (uint64_t i = 0; mp_ring_head(r) < 20 * CAP; i++, n++) {
        uint64_t h = mp_ring_head(r);
        if (r->wp <= r->wlimit) {
            fast++;
            if (h + MP_RING_EVENT_MAX - r->tail > CAP || (h & r->mask) + MP_RING_EVENT_MAX > CAP ||
                (h | (MP_RING_KICK_BYTES - 1)) + 1 - h < MP_RING_EVENT_MAX)
                cr_assert_fail("fast path at head %llu (tail %llu, limit %llu)",
                               (unsigned long long)h, (unsigned long long)r->tail,
                               (unsigned long long)(r->lap + (uint64_t)(r->wlimit - r->bytes)));
        }
        ev_t e = event(5, i);
        cr_assert_eq(push(r, &e, &alone), 0);
        if (mp_ring_head(r) - r->tail > CAP / 3) read_ring(r);
    }
    read_ring(r);
    CHECK_READER();
    cr_assert_eq(rd.next[5], n);
    cr_assert_gt(fast, n - n / 50, "the fast path served %llu of %llu events",
                 (unsigned long long)fast, (unsigned long long)n);
}

/* The short form's reach, one add and one mask (mp_ring_out_of_reach), against its definition
 * (FORMAT.md 5.12): d a multiple of 16 whose zigzagged quotient has 23 bits. At and around the
 * edges, off the 16-byte grid, at the ends of the 64-bit range, and anywhere. */
Test(ring, reach_is_the_short_forms_23_bits) {
    const int64_t M = (int64_t)1 << 26;
    const int64_t base[] = {0, M, -M, M - 16, -M - 16, INT64_MAX, INT64_MIN, 1 << 20, -(1 << 20)};
    uint64_t in = 0, out = 0;
    for (uint64_t i = 0; i < 200000; i++) {
        uint64_t d = i < 9 * 41 ? (uint64_t)base[i / 41] + (uint64_t)((int64_t)(i % 41) - 20)
                                : mix(i) >> (mix(i + 1) % 64);
        if (i & 1 && i >= 9 * 41) d = (uint64_t) - (int64_t)d;
        int fits = (d & 15) == 0 && mp_zigzag((int64_t)d >> 4) >> 23 == 0;
        cr_assert_eq(mp_ring_out_of_reach(d) == 0, fits, "d = %lld", (long long)d);
        fits ? in++ : out++;
    }
    cr_assert_gt(in, 100);
    cr_assert_gt(out, 100);
}

/* The Python fast path's push (mp_ring_push_short, else mp_ring_push_short_other, else
 * mp_ring_push) writes byte for byte what mp_ring_push alone writes, with the same delta state and
 * counters, and takes most events itself: ALLOCs and FREEs with consecutive numbers, pointers in
 * two regions (an event in the other region than the previous one's is near the other base), at the
 * edges of the short form's reach from the previous one, and anywhere, small and large sizes,
 * stacks repeated or not, below 2^24 and above (which the short push's callers leave to the
 * others). */
Test(ring, short_push_writes_what_push_writes, .timeout = 30) {
    fresh();
    mp_ring_t *a = mp_ring_claim(), *b = mp_ring_claim();
    cr_assert(a && b && a != b);
    uint64_t seqs_a = 100, seqs_b = 100, shorts = 0, others = 0, n = 0, big = 0;
    uint32_t stack = 1;
    /* Deltas at the edges of the short form's 23 bits (2^26 bytes either way, in 16-byte units),
     * and off the 16-byte grid. */
    const int64_t M = (int64_t)1 << 26;
    const int64_t edges[] = {-M - 16, -M, -M + 16, M - 16, M, M + 16, 8, -8, M - 8, -M + 8, 0};
    for (uint64_t i = 0; mp_ring_head(a) < CAP / 2; i++, n++) {
        uint64_t x = mix(i), y = mix(x);
        unsigned kind = x & 1 ? MP_EV_ALLOC : MP_EV_FREE, allocator = (unsigned)(x >> 1) % 13;
        /* Two regions (pymalloc's arenas and the malloc heap, say), and now and then anywhere. */
        unsigned where = (unsigned)(x >> 4) % 10;
        uint64_t ptr = where < 7   ? 0x7f0000000000ull + ((y & 0xfffff) << 4)
                       : where < 9 ? 0x550000000000ull + ((y >> 24 & 0xfffff) << 4)
                       : y & 1     ? a->last_ptr + edges[(y >> 1) % (sizeof edges / sizeof *edges)]
                                   : y;
        uint64_t size = (x >> 8) % 20 ? (y >> 40) & 0xffff : (y >> 40) & 0xffffff;
        if ((x >> 16) % 3 == 0) stack = (x >> 20) % 50 ? (uint32_t)(y % 5000) + 1 : 1u << 24 | 5;
        big += stack >> 24 != 0;
        uint64_t h = mp_ring_head(a); /* no consumer: the rings stay below CAP, unwrapped */
        cr_assert_eq(mp_ring_push(a, kind, allocator, &seqs_a, ptr, size, stack, &alone), 0);
        /* As its callers (capture.c), only stacks below MP_RING_SHORT_STACKS. */
        if (stack < MP_RING_SHORT_STACKS &&
            mp_ring_push_short(b, kind, mp_ring_short_head(kind, allocator), &seqs_b, ptr, size,
                               stack)) {
            shorts++;
        } else if (stack < MP_RING_SHORT_STACKS &&
                   mp_ring_push_short_other(b, kind, mp_ring_short_head(kind, allocator), &seqs_b,
                                            ptr, size, stack)) {
            others++;
            cr_assert_eq(b->bytes[h] & 0x80, 0x80, "event %llu: not the short form",
                         (unsigned long long)i);
        } else {
            cr_assert_eq(mp_ring_push(b, kind, allocator, &seqs_b, ptr, size, stack, &alone), 0);
        }
        if (mp_ring_head(a) != mp_ring_head(b) ||
            memcmp(a->bytes + h, b->bytes + h, mp_ring_head(a) - h) != 0)
            cr_assert_fail("event %llu: the rings differ (heads %llu, %llu)", (unsigned long long)i,
                           (unsigned long long)mp_ring_head(a),
                           (unsigned long long)mp_ring_head(b));
    }
    cr_assert_eq(memcmp(a->bytes, b->bytes, mp_ring_head(a)), 0);
    cr_assert_eq(a->last_seq, b->last_seq);
    cr_assert_eq(a->last_ptr, b->last_ptr);
    cr_assert_eq(a->last_ptr2, b->last_ptr2);
    cr_assert_eq(a->last_stack, b->last_stack);
    cr_assert_eq(a->alloc_bytes, b->alloc_bytes);
    for (int k = 0; k < 3; k++) cr_assert_eq(a->count[k], b->count[k], "count[%d]", k);
    cr_assert_eq(seqs_a, seqs_b);
    cr_log_info("short push: %llu of %llu events, against the other base %llu (%llu with big "
                "stacks)",
                (unsigned long long)shorts, (unsigned long long)n, (unsigned long long)others,
                (unsigned long long)big);
    cr_assert_gt(big, 0);
    cr_assert_gt(others, n / 10, "the other base's push took %llu of %llu events",
                 (unsigned long long)others, (unsigned long long)n);
    cr_assert_gt(shorts, n / 3, "the short push took %llu of %llu events",
                 (unsigned long long)shorts, (unsigned long long)n);
    cr_assert_gt(shorts + others, n / 3 * 2, "the two short pushes took %llu of %llu events",
                 (unsigned long long)(shorts + others), (unsigned long long)n);
}

Test(ring, a_drained_ring_never_kicks_the_writer, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r = mp_ring_claim();
    post_owner(r, 3, &alone);
    uint64_t i = 0;
    for (; mp_ring_head(r) < 4 * CAP; i++) {
        ev_t e = event(3, i);
        push(r, &e, &alone);
        if ((i + 1) % 1000 == 0) read_ring(r);
    }
    read_ring(r);
    CHECK_READER();
    cr_assert_eq(rd.next[3], i);
    cr_assert_eq(kicked(), 0);
}

Test(ring, kicks_the_writer_from_half_full, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r = mp_ring_claim();
    post_owner(r, 4, &alone);
    uint64_t i = 0;
    /* From empty at 0: no kick below half full, then one at each multiple of MP_RING_KICK_BYTES
     * from half full on (the last, at the capacity, is out of reach: the ring is full before). */
    while (mp_ring_head(r) + ROOM <= CAP) {
        ev_t e = event(4, i++);
        push(r, &e, &alone);
        if (mp_ring_head(r) < CAP / 2 && kicked() != 0)
            cr_assert_fail("kicked at %llu bytes", (unsigned long long)mp_ring_head(r));
        if (mp_ring_head(r) >= CAP / 2 && kicked() != (int)((mp_ring_head(r) - CAP / 2) / KICK + 1))
            cr_assert_fail("%d kicks at %llu bytes", kicked(), (unsigned long long)mp_ring_head(r));
    }
    cr_assert_eq(kicked(), (int)(CAP / 2 / KICK));
    read_ring(r);
    /* From an odd tail, with a count of the multiples of MP_RING_KICK_BYTES that the head
     * crossed with the ring at least half full. */
    for (int k = 0; k < 777; k++) {
        ev_t e = event(4, i++);
        push(r, &e, &alone);
    }
    read_ring(r);
    CHECK_READER();
    __atomic_store_n(&kicks, 0, __ATOMIC_RELAXED);
    uint64_t t = r->tail;
    int want = 0;
    while (mp_ring_head(r) + ROOM - t <= CAP) {
        ev_t e = event(4, i++);
        uint64_t h = mp_ring_head(r);
        push(r, &e, &alone);
        if (h / KICK != mp_ring_head(r) / KICK && mp_ring_head(r) - t >= CAP / 2) want++;
        if (kicked() != want)
            cr_assert_fail("%d kicks at %llu bytes in the ring, want %d", kicked(),
                           (unsigned long long)(mp_ring_head(r) - t), want);
    }
    cr_assert(want == 3 || want == 4, "%d kicks from half full to full", want);
    read_ring(r);
    CHECK_READER();
    cr_assert_eq(rd.next[4], i);
}

/* ---- full ring ----------------------------------------------------------------------------- */

typedef struct late_consumer_s {
    mp_ring_t *ring;
    unsigned delay_ms;
    uint64_t expect;   /* events to read */
    uint64_t start_ns; /* when reading began (written before the first consume) */
    int *stop;         /* the producer's abandon flag: set by whichever side gives up */
} late_consumer_t;

static void *
late_consumer(void *arg) {
    late_consumer_t *c = arg;
    sleep_ms(c->delay_ms);
    __atomic_store_n(&c->start_ns, now_ns(), __ATOMIC_RELEASE);
    while (rd.events < c->expect && !__atomic_load_n(c->stop, __ATOMIC_ACQUIRE)) {
        if (read_ring(c->ring) == 0) sleep_ms(1);
        if (rd.why[0]) {
            __atomic_store_n(c->stop, 1, __ATOMIC_RELEASE);
            break;
        }
    }
    return NULL;
}

Test(ring, full_ring_waits_for_the_consumer, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r = mp_ring_claim();
    int stop = 0; /* stays 0 unless the consumer finds a wrong event, or the producer gives up */
    cr_assert_eq(post_owner(r, 0, &stop), 0);
    late_consumer_t c = {r, 300, 100000 * (CAP >> 18), 0, &stop}; /* over 3 rings' worth */
    pthread_t th;
    uint64_t t0 = now_ns();
    cr_assert_eq(pthread_create(&th, NULL, late_consumer, &c), 0);
    uint64_t i = 0;
    /* The consumer sleeps: fill the ring (tail is 0 until it wakes). */
    while (mp_ring_head(r) + ROOM <= CAP) {
        ev_t e = event(0, i++);
        cr_assert_eq(push(r, &e, &stop), 0);
    }
    cr_assert_lt(i, c.expect);
    /* The next push could only complete after the consumer started. */
    ev_t e = event(0, i++);
    int rc = push(r, &e, &stop);
    uint64_t started = __atomic_load_n(&c.start_ns, __ATOMIC_ACQUIRE);
    if (rc == 0) {
        cr_assert_neq(started, 0, "push into a full ring returned before any drain");
        cr_assert_geq(now_ns() - t0, 250 * 1000000ull);
    }
    for (; rc == 0 && i < c.expect; i++) {
        e = event(0, i);
        rc = push(r, &e, &stop);
    }
    if (rc != 0) __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    cr_assert_eq(pthread_join(th, NULL), 0);
    CHECK_READER();
    cr_assert_eq(rc, 0);
    cr_assert_eq(rd.next[0], c.expect);
    cr_assert_gt(kicked(), 0);
    cr_assert_eq(r->tail, mp_ring_head(r));
    cr_assert_gt(mp_ring_head(r), 3 * CAP);
    check_counters(r);
}

typedef struct late_abandon_s {
    int *flag;
    unsigned delay_ms;
} late_abandon_t;

static void *
set_flag_late(void *arg) {
    late_abandon_t *a = arg;
    sleep_ms(a->delay_ms);
    __atomic_store_n(a->flag, 1, __ATOMIC_RELEASE);
    return NULL;
}

Test(ring, abandon_ends_a_wait_in_progress, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r = mp_ring_claim();
    int abandon = 0;
    cr_assert_eq(post_owner(r, 4, &abandon), 0);
    uint64_t i = 0, full = fill(r, 4, &i);
    uint64_t seq = r->last_seq, ptr = r->last_ptr, bytes = r->alloc_bytes, count[3];
    memcpy(count, r->count, sizeof count);
    late_abandon_t a = {&abandon, 200};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, set_flag_late, &a), 0);
    uint64_t t0 = now_ns();
    ev_t e = event(4, i);
    cr_assert_eq(push(r, &e, &abandon), -1);
    cr_assert_geq(now_ns() - t0, 150 * 1000000ull, "gave up before abandon was set");
    cr_assert_eq(pthread_join(th, NULL), 0);
    /* Nothing was written. */
    cr_assert_eq(mp_ring_ready(r), full);
    cr_assert(r->last_seq == seq && r->last_ptr == ptr && r->alloc_bytes == bytes);
    cr_assert_eq(memcmp(count, r->count, sizeof count), 0);
    read_ring(r);
    CHECK_READER();
    cr_assert_eq(rd.next[4], i);
}

/* A consumer that reads while the producer goes on, until the producer is done. */
typedef struct eager_consumer_s {
    mp_ring_t *ring;
    int *done; /* set by the producer after its last push */
    int *stop; /* the producer's abandon flag: set by whichever side gives up */
} eager_consumer_t;

static void *
eager_consumer(void *arg) {
    eager_consumer_t *c = arg;
    for (;;) {
        int done = __atomic_load_n(c->done, __ATOMIC_ACQUIRE);
        if (read_ring(c->ring) == 0) sched_yield();
        if (rd.why[0]) {
            __atomic_store_n(c->stop, 1, __ATOMIC_RELEASE);
            return NULL;
        }
        if ((done && c->ring->tail == mp_ring_ready(c->ring)) ||
            __atomic_load_n(c->stop, __ATOMIC_ACQUIRE))
            return NULL;
    }
}

/* An event that runs past the end of the storage is whole at the start when its head is
 * published: after each, the producer waits until the consumer has read up to that head, so the
 * consumer reads it at exactly that head (under ThreadSanitizer, bytes copied to the start after
 * the release of the head are a race). */
Test(ring, events_past_the_end_are_whole_when_published, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r = mp_ring_claim();
    int done = 0, stop = 0;
    cr_assert_eq(post_owner(r, 8, &stop), 0);
    eager_consumer_t c = {r, &done, &stop};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, eager_consumer, &c), 0);
    uint64_t i = 0, straddled = 0;
    int rc = 0;
    while (rc == 0 && straddled < 12) {
        ev_t e = event(8, i++);
        uint64_t h = mp_ring_head(r);
        rc = push(r, &e, &stop);
        if (rc != 0 || (h & r->mask) + (mp_ring_head(r) - h) <= CAP) continue;
        straddled++;
        while (__atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) != mp_ring_head(r) &&
               !__atomic_load_n(&stop, __ATOMIC_ACQUIRE))
            sched_yield();
    }
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    if (rc != 0) __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    cr_assert_eq(pthread_join(th, NULL), 0);
    CHECK_READER();
    cr_assert_eq(rc, 0);
    cr_assert_eq(rd.next[8], i);
    cr_assert_eq(rd.wrapped, straddled);
}

/* ---- notes ----------------------------------------------------------------------------------- */

Test(ring, notes_cut_the_bytes_where_they_happened, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r = mp_ring_claim();
    uint64_t i = 0;
    cr_assert_eq(post_owner(r, 21, &alone), 0);
    cr_assert_eq(r->notes_head, 1);
    cr_assert_eq(r->notes[0].pos, 0, "the note's position is the head when posted");
    for (; i < 5; i++) {
        ev_t e = event(21, i);
        push(r, &e, &alone);
    }
    uint64_t at = mp_ring_head(r);
    post_marker(r, 1000, MP_MARK_MAIN_END, 111, &alone);
    post_marker(r, 1001, MP_MARK_EXIT, 222, &alone); /* two at the same position */
    cr_assert_eq(r->notes[1].pos, at);
    cr_assert_eq(r->notes[2].pos, at);
    for (; i < 12; i++) {
        ev_t e = event(21, i);
        push(r, &e, &alone);
    }
    post_marker(r, 1002, MP_MARK_EXIT, 333, &alone);
    /* A pass that read the head before the next events and note: the note, at a position past
     * that head, waits for the next pass. */
    uint64_t h = mp_ring_ready(r);
    for (; i < 20; i++) {
        ev_t e = event(21, i);
        push(r, &e, &alone);
    }
    post_marker(r, 1003, MP_MARK_EXIT, 444, &alone);
    cr_assert_eq(read_ring_upto(r, h), h);
    CHECK_READER();
    cr_assert_eq(rd.next[21], 12);
    cr_assert_eq(rd.nlog, 4);
    cr_assert_eq(r->notes_tail, 4, "the note past the head read was consumed");
    cr_assert_eq(r->tail, h);
    /* The next pass, then a last note at a head that nothing follows. */
    read_ring(r);
    post_marker(r, 1004, MP_MARK_EXIT, 555, &alone);
    read_ring(r);
    CHECK_READER();
    cr_assert_eq(rd.next[21], 20);
    cr_assert_eq(rd.nlog, 6);
    static const struct {
        uint32_t type;
        uint64_t events_before, seq, a, b;
    } want[] = {{mp_note_owner, 0, 0, 21, 0},
                {mp_note_marker, 5, 1000, MP_MARK_MAIN_END, 111},
                {mp_note_marker, 5, 1001, MP_MARK_EXIT, 222},
                {mp_note_marker, 12, 1002, MP_MARK_EXIT, 333},
                {mp_note_marker, 20, 1003, MP_MARK_EXIT, 444},
                {mp_note_marker, 20, 1004, MP_MARK_EXIT, 555}};
    for (size_t k = 0; k < 6; k++) {
        const logged_t *l = &rd.log[k];
        cr_assert_eq(l->note.type, want[k].type, "note %zu", k);
        cr_assert_eq(l->events_before, want[k].events_before, "note %zu after %llu events", k,
                     (unsigned long long)l->events_before);
        cr_assert_eq(l->note.seq, want[k].seq, "note %zu", k);
        cr_assert_eq(l->note.a, want[k].a, "note %zu", k);
        cr_assert_eq(l->note.b, want[k].b, "note %zu", k);
    }
    cr_assert_eq(rd.log[3].note.pos, h);
    cr_assert_eq(rd.log[5].note.pos, mp_ring_head(r));
    check_counters(r);
}

/* Markers every few events, across many wraps, read in passes that do not line up with them:
 * each comes out after exactly the events pushed before it. */
Test(ring, notes_interleaved_with_events_across_wraps, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r = mp_ring_claim();
    enum { markers = (int)(2000 * (CAP >> 18)) }; /* over 5 rings' worth of events */
    static uint64_t before[markers], pos[markers];
    post_owner(r, 9, &alone);
    uint64_t i = 0, x = 1;
    uint32_t m = 0;
    while (m < markers) {
        x = mix(x);
        unsigned n = (unsigned)(x % 400); /* events before the next marker: 0 to 399 */
        for (unsigned k = 0; k < n; k++) {
            ev_t e = event(9, i++);
            push(r, &e, &alone);
        }
        before[m] = i;
        pos[m] = mp_ring_head(r);
        post_marker(r, m, MP_MARK_EXIT, x, &alone);
        m++;
        /* Read when the ring is getting full or every note is taken, and at random. */
        if (mp_ring_head(r) - r->tail > CAP / 2 || r->notes_head - r->notes_tail == NOTES ||
            (x >> 20) % 5 == 0)
            read_ring(r);
    }
    read_ring(r);
    CHECK_READER();
    cr_assert_gt(mp_ring_head(r), 5 * CAP);
    cr_assert_eq(rd.next[9], i);
    cr_assert_eq(rd.nlog, 1 + markers);
    for (uint32_t k = 0; k < markers; k++) {
        const logged_t *l = &rd.log[1 + k];
        if (l->note.seq != k || l->events_before != before[k] || l->note.pos != pos[k])
            cr_assert_fail("marker %u: seq %llu after %llu events at %llu; want after %llu at %llu",
                           k, (unsigned long long)l->note.seq, (unsigned long long)l->events_before,
                           (unsigned long long)l->note.pos, (unsigned long long)before[k],
                           (unsigned long long)pos[k]);
    }
}

Test(ring, notes_full_with_abandon_set_returns_minus_one, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r = mp_ring_claim();
    const int abandon = 1; /* set from the start: a free note must still be taken */
    cr_assert_eq(post_owner(r, 5, &abandon), 0);
    uint64_t i = 0;
    for (uint32_t k = 1; k < NOTES; k++) {
        ev_t e = event(5, i++);
        cr_assert_eq(push(r, &e, &abandon), 0);
        cr_assert_eq(post_marker(r, k, MP_MARK_EXIT, k, &abandon), 0);
    }
    cr_assert_eq(r->notes_head, NOTES);
    int before = kicked();
    cr_assert_eq(post_marker(r, 9999, MP_MARK_EXIT, 0, &abandon), -1);
    cr_assert_eq(r->notes_head, NOTES, "a refused note was posted");
    cr_assert_gt(kicked(), before, "notes full: the writer was not kicked");
    /* Events still go in: the bytes have room. */
    ev_t e = event(5, i++);
    cr_assert_eq(push(r, &e, &abandon), 0);
    read_ring(r);
    CHECK_READER();
    cr_assert_eq(rd.nlog, NOTES);
    cr_assert_eq(rd.log[0].note.type, mp_note_owner);
    for (uint32_t k = 1; k < NOTES; k++) {
        cr_assert_eq(rd.log[k].note.seq, k, "note %u overwritten", k);
        cr_assert_eq(rd.log[k].events_before, k);
    }
    /* Drained: notes are taken again, from the same slots. */
    cr_assert_eq(post_marker(r, 10000, MP_MARK_EXIT, 0, &abandon), 0);
    read_ring(r);
    CHECK_READER();
    cr_assert_eq(rd.nlog, NOTES + 1);
    cr_assert_eq(rd.log[NOTES].note.seq, 10000);
    cr_assert_eq(rd.log[NOTES].events_before, NOTES);
    cr_assert_eq(rd.next[5], i);
}

/* ---- sequence numbers in blocks (ring.h) -------------------------------------------------- */

/* One event on r with its number from *seqs (the shared counter, as mp_seq); the number taken. */
static uint64_t
push_seq(mp_ring_t *r, uint64_t *seqs, unsigned kind, uint64_t ptr, int *failed) {
    *failed |= mp_ring_push(r, kind, MP_ALLOC_MALLOC, seqs, ptr, 32, 1, &alone) != 0;
    return r->last_seq;
}

Test(ring, numbers_come_from_a_block_until_another_reservation, .timeout = 30) {
    fresh();
    mp_ring_t *a = mp_ring_claim(), *b = mp_ring_claim();
    uint64_t seqs = 100, prev = 99, reserved = 0;
    int failed = 0;
    /* Alone: one reservation serves events until fewer than MP_RING_SEQ_WINDOW numbers are left
     * (at a slow path, once per MP_RING_KICK_BYTES), the counter only read meanwhile; no number
     * is ever one not reserved (at or above the counter). */
    for (uint64_t i = 0; i < 3 * MP_RING_SEQ_BLOCK; i++) {
        uint64_t before = seqs,
                 s = push_seq(a, &seqs, MP_EV_ALLOC, 0x1000 + 16 * (i & 1023), &failed);
        cr_assert_lt(s, seqs, "event %llu: %llu not reserved", (unsigned long long)i,
                     (unsigned long long)s);
        if (seqs == before) {
            cr_assert_eq(s, prev + 1, "event %llu", (unsigned long long)i);
        } else { /* the first of a new block (the rest of the old one given up) */
            cr_assert_eq(s, before, "event %llu", (unsigned long long)i);
            cr_assert_eq(seqs, before + MP_RING_SEQ_BLOCK);
            cr_assert_lt(before - (prev + 1), MP_RING_SEQ_WINDOW + 1,
                         "event %llu: a block given up early", (unsigned long long)i);
            reserved++;
        }
        prev = s;
        if (i % 8192 == 0) mp_ring_consume(a, mp_ring_ready(a), mp_ring_notes_ready(a));
    }
    cr_assert_eq(reserved, 4, "blocks reserved for 3 blocks' worth of events");
    prev = a->last_seq;
    /* Another reservation (a marker's number) moves the next event above it. */
    uint64_t mark = __atomic_fetch_add(&seqs, 1, __ATOMIC_RELAXED);
    prev = push_seq(a, &seqs, MP_EV_ALLOC, 0x2000, &failed);
    cr_assert_gt(prev, mark);
    /* Two rings in turn, as two threads allocating at once: each event finds the other's
     * reservation, and after the first few each takes one number (no block given up). */
    for (uint64_t i = 0; i < 200; i++) {
        uint64_t before = seqs, s = push_seq(i & 1 ? a : b, &seqs, MP_EV_ALLOC, 0x3000, &failed);
        cr_assert_gt(s, prev, "event %llu: %llu after %llu", (unsigned long long)i,
                     (unsigned long long)s, (unsigned long long)prev);
        cr_assert_lt(s, seqs);
        if (i >= 4)
            cr_assert_eq(seqs, before + 1, "event %llu gave up a block", (unsigned long long)i);
        prev = s;
    }
    /* One ring again: within two more reservations it is back to blocks. */
    for (int i = 0; i < 3; i++) prev = push_seq(a, &seqs, MP_EV_FREE, 0x3000, &failed);
    uint64_t settled = seqs;
    for (uint64_t i = 0; i < 100; i++) {
        uint64_t s = push_seq(a, &seqs, MP_EV_ALLOC, 0x4000, &failed);
        cr_assert_eq(s, prev + 1);
        prev = s;
    }
    cr_assert_eq(seqs, settled, "the counter moved while one ring had a block");
    cr_assert_eq(failed, 0);
}

/* Threads pass a token round (a lock, or the GIL, handed over): every event of a turn must have a
 * larger number than every event of the turns before, though each thread's ring keeps a block
 * from its previous turn. */
#define TURN_THREADS 4
#define TURNS 2000
#define TURN_EVENTS 37

typedef struct turner_s {
    int id;
    int *token;
    uint64_t *seqs;
    uint64_t first[TURNS], last[TURNS];
    int moves[TURNS]; /* events of the turn after which the counter had moved */
    int failed;
} turner_t;

static void *
turner(void *arg) {
    turner_t *t = arg;
    mp_ring_t *r = mp_ring_claim();
    if (!r) t->failed = 1;
    for (int turn = t->id; turn < TURNS && r; turn += TURN_THREADS) {
        while (__atomic_load_n(t->token, __ATOMIC_ACQUIRE) != turn) sched_yield();
        uint64_t counter = __atomic_load_n(t->seqs, __ATOMIC_RELAXED);
        for (int e = 0; e < TURN_EVENTS; e++) {
            uint64_t s = push_seq(r, t->seqs, e & 1 ? MP_EV_FREE : MP_EV_ALLOC, 0x1000, &t->failed);
            if (e == 0) t->first[turn] = s;
            t->last[turn] = s;
            uint64_t now = __atomic_load_n(t->seqs, __ATOMIC_RELAXED);
            t->moves[turn] += now != counter;
            counter = now;
        }
        /* The reader drains now and then (rings hold some 150000 events). */
        if (turn % 512 < TURN_THREADS) mp_ring_consume(r, mp_ring_ready(r), mp_ring_notes_ready(r));
        __atomic_store_n(t->token, turn + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

Test(ring, numbers_follow_a_token_passed_between_threads, .timeout = 30) {
    fresh();
    int token = 0;
    uint64_t seqs = 0;
    static turner_t ts[TURN_THREADS];
    pthread_t th[TURN_THREADS];
    for (int i = 0; i < TURN_THREADS; i++) {
        ts[i] = (turner_t){.id = i, .token = &token, .seqs = &seqs};
        cr_assert_eq(pthread_create(&th[i], NULL, turner, &ts[i]), 0);
    }
    for (int i = 0; i < TURN_THREADS; i++) cr_assert_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < TURN_THREADS; i++) cr_assert_eq(ts[i].failed, 0);
    for (int turn = 0; turn < TURNS; turn++) {
        const turner_t *t = &ts[turn % TURN_THREADS];
        cr_assert_eq(t->last[turn] - t->first[turn], TURN_EVENTS - 1, "turn %d", turn);
        /* Blocks were used: the turn's first event reserved, the others only read the counter. */
        cr_assert_eq(t->moves[turn], 1, "turn %d: the counter moved %d times", turn,
                     t->moves[turn]);
        if (turn > 0)
            cr_assert_gt(t->first[turn], ts[(turn - 1) % TURN_THREADS].last[turn - 1],
                         "turn %d starts below the turn before", turn);
    }
}

/* Threads that run at once hand blocks (a FREE, then its address) to the next thread, which
 * records an ALLOC of it: the ALLOC's number must be above the FREE's, whatever blocks either
 * ring held. */
#define HAND_THREADS 4
#define HANDS 20000

typedef struct hand_s {
    int id;
    uint64_t *seqs;
    uint64_t *box; /* per thread: the FREE number handed to it (0: empty), +1 */
    int failed, wrong;
} hand_t;

static void *
hander(void *arg) {
    hand_t *h = arg;
    mp_ring_t *r = mp_ring_claim();
    if (!r) {
        h->failed = 1;
        return NULL;
    }
    uint64_t *out = &h->box[(h->id + 1) % HAND_THREADS], *in = &h->box[h->id];
    for (int i = 0; i < HANDS; i++) {
        /* Free, then hand over (release, as free() publishing the block to another thread). */
        uint64_t f = push_seq(r, h->seqs, MP_EV_FREE, 0x1000, &h->failed);
        while (__atomic_load_n(out, __ATOMIC_RELAXED)) sched_yield();
        __atomic_store_n(out, f + 1, __ATOMIC_RELEASE);
        /* Take what was handed here (acquire, as malloc() returning it), then the ALLOC. */
        uint64_t got;
        while (!(got = __atomic_load_n(in, __ATOMIC_ACQUIRE))) sched_yield();
        __atomic_store_n(in, 0, __ATOMIC_RELAXED);
        uint64_t a = push_seq(r, h->seqs, MP_EV_ALLOC, 0x1000, &h->failed);
        h->wrong += a <= got - 1;
        if (i % 4096 == 0) mp_ring_consume(r, mp_ring_ready(r), mp_ring_notes_ready(r));
    }
    return NULL;
}

Test(ring, numbers_order_a_free_before_the_alloc_it_enables, .timeout = 30) {
    fresh();
    uint64_t seqs = 0, box[HAND_THREADS] = {0};
    hand_t hs[HAND_THREADS];
    pthread_t th[HAND_THREADS];
    for (int i = 0; i < HAND_THREADS; i++) {
        hs[i] = (hand_t){.id = i, .seqs = &seqs, .box = box};
        cr_assert_eq(pthread_create(&th[i], NULL, hander, &hs[i]), 0);
    }
    for (int i = 0; i < HAND_THREADS; i++) cr_assert_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < HAND_THREADS; i++) {
        cr_assert_eq(hs[i].failed, 0);
        cr_assert_eq(hs[i].wrong, 0, "thread %d: %d ALLOCs numbered below the FREE before them", i,
                     hs[i].wrong);
    }
}

/* ---- many producers, one consumer ------------------------------------------------------------ */

/* The consumer (this thread) walks the registry as the writer does, until it has read the events
 * and notes it wants, or the reader failed, or all n producers ended (*done == n) and a pass
 * after that found what is left. */
static void
consume(uint64_t events, uint64_t notes, const int *done, int n) {
    for (;;) {
        int ended = __atomic_load_n(done, __ATOMIC_ACQUIRE) == n;
        uint64_t got = read_all();
        if (rd.why[0] || (rd.events >= events && rd.notes >= notes) || ended) return;
        if (!got) sched_yield();
    }
}

/* Then: if the reader failed, make the producers give up (they would wait for room forever),
 * join them all, and fail. */
static void
stop_and_join(int *stop, pthread_t *th, int n) {
    if (rd.why[0]) __atomic_store_n(stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < n; i++) cr_assert_eq(pthread_join(th[i], NULL), 0);
    CHECK_READER();
}

#define NPROD 6
#define PER_PROD 1000000ull
/* Markers of each producer: one every MARK_EVERY events, a burst of MARK_BURST half way (more than
 * the notes a ring holds: the producer waits for the consumer), and one after its last event. */
#define MARK_EVERY 997u
#define MARK_BURST (3 * MP_RING_NOTES)
#define MARKS ((PER_PROD + MARK_EVERY - 1) / MARK_EVERY + MARK_BURST + 1)

/* A marker saying how many events its owner pushed before it (reader.counted_markers). */
static int
marker_after(mp_ring_t *r, uint64_t who, uint64_t events, const int *abandon) {
    return post_marker(r, events, MP_MARK_EXIT, who, abandon);
}

typedef struct producer_s {
    int id;
    int *go;
    int *stop; /* abandon flag: set by the consumer when it found a wrong event */
    int *done; /* producers that ended */
    mp_ring_t *ring;
    int failed; /* a push or note returned nonzero */
} producer_t;

static void
produce(producer_t *p) {
    while (!__atomic_load_n(p->go, __ATOMIC_ACQUIRE)) sched_yield();
    mp_ring_t *r = mp_ring_claim();
    if (!r) {
        p->failed = 1;
        return;
    }
    p->ring = r;
    uint64_t who = (uint64_t)p->id;
    if (post_owner(r, who, p->stop) != 0) p->failed = 1;
    for (uint64_t s = 0; s < PER_PROD && !p->failed; s++) {
        if (s % MARK_EVERY == 0) p->failed |= marker_after(r, who, s, p->stop) != 0;
        for (unsigned k = 0; s == PER_PROD / 2 && k < MARK_BURST; k++)
            p->failed |= marker_after(r, who, s, p->stop) != 0;
        ev_t e = event(who, s);
        p->failed |= push(r, &e, p->stop) != 0;
    }
    p->failed |= marker_after(r, who, PER_PROD, p->stop) != 0;
}

static void *
producer(void *arg) {
    producer_t *p = arg;
    produce(p);
    __atomic_fetch_add(p->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

Test(ring, many_producers_one_consumer, .timeout = 30) {
    fresh();
    reader_init();
    rd.max_streams = NPROD;
    rd.counted_markers = 1;
    int go = 0, stop = 0, done = 0;
    producer_t prods[NPROD];
    pthread_t th[NPROD];
    for (int i = 0; i < NPROD; i++) {
        prods[i] = (producer_t){i, &go, &stop, &done, NULL, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, producer, &prods[i]), 0);
    }
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);

    consume(NPROD * PER_PROD, NPROD * (1 + MARKS), &done, NPROD);
    stop_and_join(&stop, th, NPROD);
    for (int i = 0; i < NPROD; i++) {
        cr_assert_eq(prods[i].failed, 0);
        cr_assert_eq(rd.next[i], PER_PROD, "producer %d: %llu events", i,
                     (unsigned long long)rd.next[i]);
        cr_assert_eq(rd.announced[i], 1);
        check_counters(prods[i].ring);
    }
    cr_assert_eq(rd.notes, NPROD * (1 + MARKS));
    /* Nothing left over anywhere. */
    for (mp_ring_t *r = mp_ring_first(); r; r = r->next) {
        cr_assert_eq(mp_ring_ready(r), r->tail);
        cr_assert_eq(mp_ring_notes_ready(r), r->notes_tail);
    }
}

/* Threads come and go: each lifetime claims a ring, announces itself (owner note), pushes, marks
 * its exit (marker note), releases. The consumer checks per-owner order across reused rings,
 * concurrently with the churn; a new owner continues the ring's deltas, and the reader's
 * per-stream state carries across owners. */
#define CHURN_THREADS 4
#define CHURN_LIVES 150
#define CHURN_EVENTS 3000ull

typedef struct churn_s {
    int worker;
    int *stop; /* abandon flag: set by the consumer when it found a wrong event */
    int *done; /* workers that ended */
    int failed;
} churn_t;

static void
churn(churn_t *c) {
    mp_ring_t *prev = NULL;
    for (int life = 0; life < CHURN_LIVES && !c->failed; life++) {
        uint64_t who = (uint64_t)(c->worker * CHURN_LIVES + life);
        /* The next lifetime starts before the last one's ring is released (a thread starting
         * while another exits), so it takes a ring another worker released. */
        mp_ring_t *r = mp_ring_claim();
        if (prev) mp_ring_release(prev);
        prev = r;
        if (!r) {
            c->failed = 1;
            return;
        }
        c->failed |= post_owner(r, who, c->stop) != 0;
        for (uint64_t s = 0; s < CHURN_EVENTS && !c->failed; s++) {
            ev_t e = event(who, s);
            c->failed |= push(r, &e, c->stop) != 0;
        }
        c->failed |= marker_after(r, who, CHURN_EVENTS, c->stop) != 0; /* the thread's exit */
    }
    if (prev) mp_ring_release(prev);
}

static void *
churner(void *arg) {
    churn_t *c = arg;
    churn(c);
    __atomic_fetch_add(c->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

Test(ring, claim_release_churn_keeps_order, .timeout = 30) {
    fresh();
    reader_init();
    enum { owners = CHURN_THREADS * CHURN_LIVES };
    rd.lifetime = CHURN_EVENTS; /* a ring's previous owner finished before the next announces */
    rd.counted_markers = 1;
    int stop = 0, done = 0;
    churn_t cs[CHURN_THREADS];
    pthread_t th[CHURN_THREADS];
    for (int i = 0; i < CHURN_THREADS; i++) {
        cs[i] = (churn_t){i, &stop, &done, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, churner, &cs[i]), 0);
    }
    consume(owners * CHURN_EVENTS, 2 * owners, &done, CHURN_THREADS);
    stop_and_join(&stop, th, CHURN_THREADS);
    int rings = 0;
    for (mp_ring_t *r = mp_ring_first(); r; r = r->next) rings++;
    for (int i = 0; i < CHURN_THREADS; i++) cr_assert_eq(cs[i].failed, 0);
    for (int o = 0; o < owners; o++) {
        cr_assert_eq(rd.next[o], CHURN_EVENTS, "owner %d", o);
        cr_assert_eq(rd.announced[o], 1, "owner %d", o);
    }
    for (mp_ring_t *r = mp_ring_first(); r; r = r->next) check_counters(r);
    /* Rings went from one worker to another: the owner notes, in order, per stream. */
    int handovers = 0, last[MAX_STREAMS];
    for (int s = 0; s < MAX_STREAMS; s++) last[s] = -1;
    cr_assert_eq(rd.nlog, 2 * owners);
    for (size_t k = 0; k < rd.nlog; k++) {
        if (rd.log[k].note.type != mp_note_owner) continue;
        int worker = (int)rd.log[k].note.a / CHURN_LIVES, *l = &last[rd.log[k].stream];
        handovers += *l >= 0 && *l != worker;
        *l = worker;
    }
    cr_log_info("churn: %d lifetimes on %d rings, %d from one worker to another", owners, rings,
                handovers);
    cr_assert_lt(rings, owners / 4, "released rings are not being reused (%d rings)", rings);
    cr_assert_gt(handovers, 0, "no ring went from one worker to another");
}

/* ---- release and reuse ----------------------------------------------------------------------- */

Test(ring, claim_reuses_a_released_ring_with_its_pending_bytes, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *a = mp_ring_claim();
    mp_ring_t *b = mp_ring_claim();
    post_owner(a, 11, &alone);
    for (uint64_t i = 0; i < 10; i++) {
        ev_t e = event(11, i);
        push(a, &e, &alone);
    }
    uint64_t h = mp_ring_head(a);
    mp_ring_release(a);
    cr_assert_eq(a->state, mp_ring_free);
    cr_assert_eq(mp_ring_ready(a), h, "release must keep pending bytes");
    cr_assert_eq(mp_ring_notes_ready(a), 1, "release must keep pending notes");

    mp_ring_t *again = mp_ring_claim();
    cr_assert_eq(again, a, "claim did not reuse the released ring");
    cr_assert_eq(again->state, mp_ring_owned);
    cr_assert_eq(again->stream, 0, "a reused ring keeps its stream id");
    /* The new owner continues the old owner's deltas and appends after its bytes. */
    ev_t last = event(11, 9);
    cr_assert_eq(again->last_seq, last.seq);
    cr_assert_eq(again->last_ptr, last.ptr);
    post_owner(again, 12, &alone);
    for (uint64_t i = 0; i < 5; i++) {
        ev_t e = event(12, i);
        push(again, &e, &alone);
    }
    read_ring(again);
    CHECK_READER();
    cr_assert_eq(rd.next[11], 10);
    cr_assert_eq(rd.next[12], 5);
    cr_assert_eq(rd.nlog, 2);
    cr_assert_eq(rd.log[1].note.a, 12);
    cr_assert_eq(rd.log[1].note.pos, h);
    cr_assert_eq(rd.log[1].events_before, 10);
    check_counters(again);

    /* No free ring left: the next claim maps a new one. */
    mp_ring_t *c = mp_ring_claim();
    cr_assert(c != a && c != b);
    cr_assert_eq(c->stream, 2);
}

Test(ring, reused_full_ring_still_waits_for_the_consumer, .timeout = 30) {
    fresh();
    reader_init();
    const int abandon = 1;
    mp_ring_t *a = mp_ring_claim();
    post_owner(a, 5, &abandon);
    uint64_t i = 0, full = fill(a, 5, &i);
    mp_ring_release(a);
    mp_ring_t *b = mp_ring_claim();
    cr_assert_eq(b, a);
    /* The old owner filled it: the new owner must not overwrite undrained bytes. */
    cr_assert_eq(post_owner(b, 6, &abandon), 0);
    ev_t e = event(6, 0);
    cr_assert_eq(push(b, &e, &abandon), -1);
    cr_assert_eq(mp_ring_ready(b), full);
    cr_assert_eq(read_ring(b), full);
    CHECK_READER();
    cr_assert_eq(rd.next[5], i);
    cr_assert_eq(push(b, &e, &abandon), 0);
    read_ring(b);
    CHECK_READER();
    cr_assert_eq(rd.next[6], 1);
    cr_assert_eq(rd.log[1].events_before, i);
}

Test(ring, each_release_is_claimed_once, .timeout = 30) {
    fresh();
    mp_ring_t *r[4];
    for (int i = 0; i < 4; i++) r[i] = mp_ring_claim();
    mp_ring_release(r[1]);
    mp_ring_release(r[3]);
    mp_ring_t *x = mp_ring_claim(), *y = mp_ring_claim(), *z = mp_ring_claim();
    cr_assert((x == r[1] && y == r[3]) || (x == r[3] && y == r[1]));
    cr_assert_eq(z->stream, 4, "third claim after two releases maps a new ring");
    cr_assert_eq(r[1]->state, mp_ring_owned);
    cr_assert_eq(r[3]->state, mp_ring_owned);
}

/* ---- fork ------------------------------------------------------------------------------------ */

/* Three rings with pending bytes and notes (owners 100, 101, 102); the first read up to its
 * 40th event, the second with a marker pending. */
static void
three_busy_rings(mp_ring_t *r[3]) {
    for (int i = 0; i < 3; i++) {
        r[i] = mp_ring_claim();
        post_owner(r[i], 100 + (uint64_t)i, &alone);
        uint64_t h40 = 0;
        for (uint64_t s = 0; s < 100 + (uint64_t)i; s++) {
            ev_t e = event(100 + (uint64_t)i, s);
            push(r[i], &e, &alone);
            if (s == 39) h40 = mp_ring_head(r[i]);
            if (s == 49 && i == 1) post_marker(r[i], 77, MP_MARK_EXIT, 88, &alone);
        }
        if (i == 0) read_ring_upto(r[0], h40);
    }
    CHECK_READER();
    cr_assert_eq(rd.next[100], 40);
}

Test(ring, reset_after_fork_empties_every_ring_and_keeps_one, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r[3];
    three_busy_rings(r);
    /* The kept ring's producer has a view of the tail to forget: read, then cross a multiple of
     * MP_RING_KICK_BYTES (the producer refreshes its view there). */
    read_ring(r[1]);
    for (uint64_t s = 101; mp_ring_head(r[1]) < KICK; s++) {
        ev_t e = event(101, s);
        push(r[1], &e, &alone);
    }
    cr_assert_neq(r[1]->tail_cache, 0);
    mp_ring_release(r[2]);
    mp_ring_reset_after_fork(r[1]);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(mp_ring_head(r[i]), 0);
        cr_assert_eq(r[i]->tail, 0);
        cr_assert_eq(r[i]->tail_cache, 0);
        cr_assert_eq(r[i]->notes_head, 0);
        cr_assert_eq(r[i]->notes_tail, 0);
        cr_assert_eq(r[i]->last_seq, 0);
        cr_assert_eq(r[i]->last_ptr, 0);
        cr_assert(r[i]->count[0] == 0 && r[i]->count[1] == 0 && r[i]->count[2] == 0);
        cr_assert_eq(r[i]->alloc_bytes, 0);
        cr_assert_eq(mp_ring_ready(r[i]), 0);
        cr_assert_eq(mp_ring_notes_ready(r[i]), 0);
        cr_assert_eq(r[i]->state, i == 1 ? mp_ring_owned : mp_ring_free);
        cr_assert_eq(r[i]->stream, (uint32_t)i, "streams keep their ids");
        reader_forget((uint32_t)i);
    }
    /* The kept ring takes a full ring's worth and its notes again, with fresh deltas. */
    cr_assert_eq(post_owner(r[1], 200, &alone), 0);
    uint64_t i = 0;
    __atomic_store_n(&kicks, 0, __ATOMIC_RELAXED);
    fill(r[1], 200, &i);
    cr_assert_eq(kicked(), (int)(CAP / 2 / KICK), "kicks filling the kept ring from empty");
    ev_t e = event(200, i);
    cr_assert_eq(push(r[1], &e, &alone), -1);
    read_ring(r[1]);
    CHECK_READER();
    cr_assert_eq(rd.next[200], i);
    check_counters(r[1]);
    /* The two freed rings are claimed before any new one is mapped. */
    mp_ring_t *x = mp_ring_claim(), *y = mp_ring_claim(), *z = mp_ring_claim();
    cr_assert((x == r[0] && y == r[2]) || (x == r[2] && y == r[0]));
    cr_assert_eq(z->stream, 3);
}

Test(ring, reset_after_fork_without_keep_frees_all, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r[3];
    three_busy_rings(r);
    mp_ring_reset_after_fork(NULL);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r[i]->state, mp_ring_free);
        cr_assert_eq(mp_ring_ready(r[i]), 0);
        cr_assert_eq(mp_ring_notes_ready(r[i]), 0);
        cr_assert_eq(r[i]->last_seq, 0);
    }
}

Test(ring, real_fork_child_resets_parent_keeps_its_bytes, .timeout = 30) {
    fresh();
    reader_init();
    mp_ring_t *r[3];
    three_busy_rings(r);
    uint64_t head[3], seq[3], count[3][3];
    uint32_t notes[3];
    for (int i = 0; i < 3; i++) {
        head[i] = mp_ring_head(r[i]);
        seq[i] = r[i]->last_seq;
        notes[i] = r[i]->notes_head;
        memcpy(count[i], r[i]->count, sizeof count[i]);
    }
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* Child: report failures through the exit status (no Criterion asserts here). */
        mp_ring_reset_after_fork(r[0]);
        int bad = 0;
        for (int i = 0; i < 3; i++) {
            bad |= mp_ring_head(r[i]) != 0 || r[i]->tail != 0 || r[i]->notes_head != 0;
            bad |= r[i]->last_seq != 0 || r[i]->last_stack != 0 || r[i]->count[MP_EV_ALLOC] != 0;
            bad |= r[i]->state != (i == 0 ? (uint32_t)mp_ring_owned : (uint32_t)mp_ring_free);
        }
        bad |= post_owner(r[0], 300, &alone) != 0 || r[0]->notes[0].pos != 0;
        bad |= push_at(r[0], MP_EV_ALLOC, MP_ALLOC_MALLOC, 1, 16, 1, 1, &alone) != 0;
        /* The short form: seq 1, ptr 16 (delta 1 in 16-byte units, offset by 2^22: 0x400001),
         * size 1, stack 1 (not the previous: there is none). */
        static const uint8_t want[] = {0x80, 0x01, 0x00, 0x40, 0x01, 0x00, 0x01, 0x00, 0x00};
        bad |= mp_ring_ready(r[0]) != sizeof want || memcmp(r[0]->bytes, want, sizeof want) != 0;
        mp_ring_t *x = mp_ring_claim(), *y = mp_ring_claim();
        bad |= !((x == r[1] && y == r[2]) || (x == r[2] && y == r[1]));
        _exit(bad ? 1 : 0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child checks failed");
    /* The parent's rings are untouched by the child's reset. */
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(mp_ring_ready(r[i]), head[i]);
        cr_assert_eq(r[i]->last_seq, seq[i]);
        cr_assert_eq(mp_ring_notes_ready(r[i]), notes[i]);
        cr_assert_eq(memcmp(count[i], r[i]->count, sizeof count[i]), 0);
        cr_assert_eq(r[i]->state, mp_ring_owned);
        read_ring(r[i]);
        CHECK_READER();
        cr_assert_eq(rd.next[100 + i], 100 + (uint64_t)i);
        check_counters(r[i]);
    }
    cr_assert_eq(rd.nlog, 4);
    cr_assert_eq(rd.log[2].note.seq, 77);
    cr_assert_eq(rd.log[2].events_before, 50);
}
