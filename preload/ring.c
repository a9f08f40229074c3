/* ring.c - ring registry, claiming and the full-ring slow path (see ring.h for the contract).
 *
 * What this is not: the event encoder's short form (ring.h, mp_ring_encode; its long form is here)
 * or the event builder (capture.c).
 * Memory comes from mmap only, never malloc: these functions run inside interposed allocation
 * calls.
 */
#include "ring.h"

#include <string.h>

#include "atomics.h"
#include "sys.h"

static mp_ring_t *registry;  /* head of the append-only list of rings */
static uint32_t next_stream; /* stream ids, in claim order */

static void
kick_nothing(void) {}
void (*mp_ring_kick)(void) = kick_nothing;

mp_ring_t *
mp_ring_first(void) {
    return mp_load_acquire(&registry);
}

/* The producer state of an empty ring (head 0) that is not zero, for a new ring (the rest is
 * mmap's zeroes) and for every ring after fork (the rest zeroed there). */
static void
start_empty(mp_ring_t *r) {
    r->wp = r->wlimit = r->bytes; /* head 0; the first event takes the slow path (below) */
    r->lap = 0;
    r->seq_end = MP_RING_SEQ_NONE; /* the first event reserves numbers (ring.h) */
}

mp_ring_t *
mp_ring_claim(void) {
    /* Reuse a ring whose thread exited. The CAS makes one claimer win; acquire pairs with the
     * release in mp_ring_release so the new owner sees the final head of the old one. */
    for (mp_ring_t *r = mp_load_acquire(&registry); r; r = r->next) {
        uint32_t expect = mp_ring_free;
        if (mp_load_relaxed(&r->state) == mp_ring_free &&
            mp_cas_acq_rel(&r->state, &expect, (uint32_t)mp_ring_owned)) {
            r->tail_cache = mp_load_acquire(&r->tail);
            return r;
        }
    }
    /* One mapping holds the ring header and its bytes, with their slack. */
    size_t bytes = sizeof(mp_ring_t) + MP_RING_BYTES + MP_RING_EVENT_MAX;
    mp_ring_t *r = mp_sys_map(bytes);
    if (!r) return NULL;
    r->bytes = (uint8_t *)(r + 1);
    r->mask = MP_RING_BYTES - 1;
    start_empty(r);
    r->state = mp_ring_owned;
    r->stream = mp_fetch_add_relaxed(&next_stream, 1);
    /* Publish with a CAS loop; the release makes the initialised fields visible to the writer
     * before it can reach r through the list. */
    mp_ring_t *old = mp_load_relaxed(&registry);
    do r->next = old;
    while (!__atomic_compare_exchange_n(&registry, &old, r, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    return r;
}

void
mp_ring_release(mp_ring_t *r) {
    mp_store_release(&r->state, (uint32_t)mp_ring_free);
}

/* The writer drains every ring on each pass; wake it and give it the CPU. Sleeping in 50 us
 * steps (a raw nanosleep: no lock, no allocation) bounds the producer's wait to the writer's
 * pass, and checking *abandon ends it if tracking is shutting down. */
static int
wait_a_pass(const int *abandon) {
    mp_ring_kick();
    mp_sys_sleep_ns(50000);
    return abandon && mp_load_acquire(abandon) ? -1 : 0;
}

/* Where the next event goes, once there is room for it at head: by the last view of the tail,
 * else by a fresh one, else once the writer has drained enough (NULL if *abandon ends that
 * wait). */
static uint8_t *
reserve_slow(mp_ring_t *r, const int *abandon) {
    uint64_t h = mp_ring_head(r), cap = (uint64_t)r->mask + 1;
    for (int waited = 0; h + MP_RING_EVENT_MAX - r->tail_cache > cap; waited = 1) {
        if (waited && wait_a_pass(abandon) != 0) return NULL;
        r->tail_cache = mp_load_acquire(&r->tail);
    }
    return r->bytes + (h & r->mask);
}

/* Publish the n bytes written at head (kicking the writer if the ring is half full), and set
 * the next fast path's limit. */
static void
publish_slow(mp_ring_t *r, size_t n) {
    uint64_t h = mp_ring_head(r), nh = h + n, cap = (uint64_t)r->mask + 1, off = h & r->mask;
    /* An event that ran into the slack continues at the start of the storage: those bytes are
     * free (reserve checked the room), and the writer reads positions modulo the capacity. */
    if (off + n > cap) memcpy(r->bytes, r->bytes + cap, (size_t)(off + n - cap));
    /* Release: the writer that sees the new head sees the event's bytes. The lap first: the
     * producer's own (mp_ring_head); the writer counts from its tail. */
    r->lap = nh & ~(uint64_t)r->mask;
    mp_store_release(&r->wp, r->bytes + (nh & r->mask));
    if (((h ^ nh) & ~(uint64_t)(MP_RING_KICK_BYTES - 1)) != 0) {
        r->tail_cache = mp_load_acquire(&r->tail);
        if (nh - r->tail_cache >= cap / 2) mp_ring_kick();
    }
    /* The next fast path ends where an event could lack room, run past the end of the storage
     * or cross the next multiple of MP_RING_KICK_BYTES (which divides the capacity). */
    uint64_t room = r->tail_cache + cap - MP_RING_EVENT_MAX;
    uint64_t kick = (nh | (MP_RING_KICK_BYTES - 1)) + 1 - MP_RING_EVENT_MAX;
    uint64_t limit = room < kick ? room : kick;
    /* Every head up to the limit is in nh's lap (the next multiple of the capacity, a multiple
     * of MP_RING_KICK_BYTES, is past it), where wp is bytes + head - lap. A limit below the lap's
     * start (no room) stops the fast path at once. */
    r->wlimit = limit >= r->lap ? r->bytes + (limit - r->lap) : NULL;
}

int
mp_ring_push_slow(mp_ring_t *r, unsigned kind, unsigned allocator, uint64_t *seqs, uint64_t ptr,
                  uint64_t size, uint32_t stack, const int *abandon) {
    uint8_t *p = reserve_slow(r, abandon);
    if (!p) return -1;
    uint64_t seq = mp_ring_seq_slow(r, seqs);
    publish_slow(r, mp_ring_encode(r, p, kind, allocator, seq, ptr, size, stack));
    return 0;
}

uint64_t
mp_ring_seq_slow(mp_ring_t *r, uint64_t *seqs) {
    /* Relaxed is enough: the order that matters is between the RMWs and loads of this one
     * counter, and coherence orders them consistently with happens-before (ring.h). */
    if (mp_load_relaxed(seqs) == r->seq_end && r->seq_end - r->last_seq > MP_RING_SEQ_WINDOW)
        return r->last_seq + 1;
    /* Contended (ring.h): the last reservation served one event only, and was a whole block, or
     * a single number that found another reservation since the ring's one before. */
    int contended = r->seq_res_end != 0 && r->last_seq == r->seq_start &&
                    (r->seq_res_end - r->seq_start > 1 || !r->seq_lonely);
    uint64_t k = contended ? 1 : MP_RING_SEQ_BLOCK;
    uint64_t base = __atomic_fetch_add(seqs, k, __ATOMIC_RELAXED);
    r->seq_lonely = base == r->seq_res_end;
    r->seq_start = base;
    r->seq_res_end = base + k;
    r->seq_end = contended ? MP_RING_SEQ_NONE : base + k;
    return base;
}

/* The short form against the other base, its ptr field z given (FORMAT.md 5.12: bit 23 of
 * the ptr field selects that base). */
static inline size_t
put_other(uint8_t *p, unsigned kind, unsigned allocator, uint64_t z, uint64_t size, int same,
          uint32_t stack) {
    return mp_ring_put_short(p, kind, allocator, (uint32_t)z | 1u << 23, size, same, stack);
}

size_t
mp_ring_encode_long(mp_ring_t *r, uint8_t *p, unsigned kind, unsigned allocator, uint64_t seq,
                    uint64_t ptr, uint64_t size, uint32_t stack) {
    int same = mp_ring_same_stack(r, kind, stack);
    /* The short form against the other base (FORMAT.md 5.12): a thread's pointers alternate
     * between two regions wherever pymalloc's arenas and the malloc heap serve it in turn (blocks
     * over 512 bytes go to malloc), 17% of the events of scripts/bench_py/mix.py and threads.py. */
    uint64_t z;
    size_t n;
    if (mp_ring_short_fits(r, kind, seq, ptr - r->last_ptr2, size, stack, same, &z)) {
        n = put_other(p, kind, allocator, z, size, same, stack);
    } else {
        uint8_t *q = p;
        *q++ = (uint8_t)(allocator << 3 | (unsigned)same << 2 | kind);
        q += mp_pvarint_put(q, seq - r->last_seq);
        q += mp_pvarint_put(q, mp_zigzag((int64_t)(ptr - r->last_ptr)));
        if (kind == MP_EV_ALLOC) q += mp_pvarint_put(q, size);
        if (mp_ring_puts_stack(kind, same)) q += mp_pvarint_put(q, stack);
        n = (size_t)(q - p);
    }
    /* Either way the bases change places: the previous pointer becomes the other one. */
    r->last_ptr2 = r->last_ptr;
    mp_ring_advance(r, kind, seq, ptr, size, same, stack);
    return n;
}

int
mp_ring_note(mp_ring_t *r, const mp_ring_note_t *note, const int *abandon) {
    uint32_t h = r->notes_head; /* only this thread writes notes_head */
    while (h - mp_load_acquire(&r->notes_tail) >= MP_RING_NOTES)
        if (wait_a_pass(abandon) != 0) return -1;
    mp_ring_note_t *n = &r->notes[h % MP_RING_NOTES];
    *n = *note;
    n->pos = mp_ring_head(r);
    /* Release: the writer that sees the note sees its fields. Its position is at or below every
     * head published after it, which is how the writer finds which bytes come before it. */
    mp_store_release(&r->notes_head, h + 1);
    return 0;
}

void
mp_ring_reset_after_fork(mp_ring_t *keep) {
    /* The child is single-threaded here: plain stores are enough. The parent's pending
     * events belong to the parent's dump (its writer still drains them there); the child's
     * dump starts its streams' deltas afresh. */
    for (mp_ring_t *r = registry; r; r = r->next) {
        r->tail = r->tail_cache = 0;
        r->notes_head = r->notes_tail = 0;
        r->last_seq = r->last_ptr = r->last_ptr2 = r->alloc_bytes = 0;
        r->seq_start = r->seq_res_end = r->seq_lonely = 0;
        start_empty(r);
        r->last_stack = 0;
        r->owner_tid = 0;
        r->count[0] = r->count[1] = r->count[2] = 0;
        r->state = r == keep ? mp_ring_owned : mp_ring_free;
    }
}
