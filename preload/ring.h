/* ring.h - bounded lock-free rings carrying events from interposed threads to the writer.
 *
 * Producer: the one thread that owns the ring (claimed with mp_ring_claim); never allocates.
 * Consumer: the writer thread only. A half-full ring kicks the writer; a full ring makes the
 * producer wait for the writer (it kicks the writer and sleeps in short steps); nothing is ever
 * dropped, because a dropped free would fabricate a leak. The wait ends early only if tracking is
 * being shut down (*abandon).
 *
 * Rings live in private anonymous mappings and are registered in a lock-free, append-only list;
 * they are never unmapped while the process runs, so the writer can walk the list without
 * locks. A thread that exits releases its ring (mp_ring_release) and a later thread reuses it;
 * the first record a new owner pushes is an OWNER record carrying its tid.
 */
#ifndef MP_RING_H
#define MP_RING_H

#include <stddef.h>
#include <stdint.h>

/* One event in flight: 32 bytes, so two fit a cache line. */
enum {
    mp_rec_event = 0, /* head = MP_EV_HEAD(kind, allocator); ptr, size, stack */
    mp_rec_owner = 1, /* a new thread owns the ring; size = tid */
    mp_rec_marker = 2 /* size = marker kind (MP_MARK_*), ptr = time_ns; seq */
};
typedef struct mp_rec_s {
    uint64_t seq;   /* process-wide sequence number */
    uint64_t ptr;   /* block address (event) or time (marker) */
    uint64_t size;  /* bytes (ALLOC), tid (owner) or marker kind */
    uint32_t stack; /* interned stack id, 0 = none */
    uint8_t type;   /* mp_rec_* */
    uint8_t head;   /* event head byte (format.h) */
    uint16_t unused;
} mp_rec_t;

enum { mp_ring_free = 0, mp_ring_owned = 1 };

typedef struct mp_ring_s {
    /* Producer side (own cache line): the owner writes head, reads tail. */
    _Alignas(64) uint64_t head; /* next slot to fill; release-stored by the producer */
    uint64_t tail_cache;        /* producer's last view of tail (avoids sharing the line) */
    /* Consumer side. */
    _Alignas(64) uint64_t tail; /* next slot to drain; release-stored by the writer */
    /* Registry (immutable once published, except state). */
    _Alignas(64) struct mp_ring_s *next; /* next ring in the registry */
    uint32_t stream;                     /* stream id in the dump, 0-based, unique */
    uint32_t state;                      /* mp_ring_free / mp_ring_owned */
    uint32_t mask;                       /* capacity - 1 */
    mp_rec_t *slots;                     /* capacity records */
    void *scratch; /* the owner's private memory (capture.c's Python memo), kept for the next */
} mp_ring_t;

/* Capacity of every ring, in records (a power of two): 8192 * 32 B = 256 KiB per thread. */
#define MP_RING_CAPACITY 8192u

/* Every MP_RING_KICK_EVERY pushes, the producer refreshes its view of the tail and kicks the
 * writer if the ring is at least half full. A writer that keeps up (it polls busy rings every
 * MP_WRITER_BUSY_NS, writer.c) is never kicked: a kick is a futex wake, a system call on the
 * allocating thread, and used to be a tenth of the cost of a Python event. */
#define MP_RING_KICK_EVERY (MP_RING_CAPACITY / 8)

/* Called by producers when the writer should run now (ring filling, or full). */
extern void (*mp_ring_kick)(void);

/* Claim a free ring or map a new one; returns NULL only if mmap fails. Lock-free. The caller
 * then pushes an OWNER record. */
mp_ring_t *mp_ring_claim(void);
/* Give the ring back (the owner thread is exiting). Its pending records stay for the writer. */
void mp_ring_release(mp_ring_t *r);
/* First ring of the registry (writer walks ->next with acquire loads). */
mp_ring_t *mp_ring_first(void);
/* Reset after fork, in the child (single-threaded): every ring empty and free except keep,
 * which stays owned. */
void mp_ring_reset_after_fork(mp_ring_t *keep);

/* Producer: append one record; waits while the ring is full unless *abandon becomes nonzero,
 * in which case the record is not pushed and -1 is returned. 0 when pushed. */
static inline int mp_ring_push(mp_ring_t *r, const mp_rec_t *rec, const int *abandon);

/* Consumer: records [tail, head) are ready; after using them, mp_ring_consume(r, head). */
static inline uint64_t
mp_ring_ready(mp_ring_t *r) {
    return __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
}
static inline void
mp_ring_consume(mp_ring_t *r, uint64_t upto) {
    __atomic_store_n(&r->tail, upto, __ATOMIC_RELEASE);
}

int mp_ring_wait_space(mp_ring_t *r, const int *abandon); /* slow path of push */

/* Producer, in two steps (the record is written in place): the slot for the next record,
 * waiting while the ring is full as mp_ring_push does (NULL if *abandon ends the wait); then,
 * once the slot is filled, mp_ring_publish. */
static inline mp_rec_t *
mp_ring_reserve(mp_ring_t *r, const int *abandon) {
    uint64_t h = r->head; /* only this thread writes head */
    if (__builtin_expect(h - r->tail_cache > r->mask, 0)) {
        r->tail_cache = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
        if (h - r->tail_cache > r->mask && mp_ring_wait_space(r, abandon) != 0) return NULL;
    }
    return &r->slots[h & r->mask];
}

static inline void
mp_ring_publish(mp_ring_t *r) {
    uint64_t h = r->head + 1;
    /* Release: the writer that sees the new head sees the record's bytes. */
    __atomic_store_n(&r->head, h, __ATOMIC_RELEASE);
    if (__builtin_expect((h & (MP_RING_KICK_EVERY - 1)) == 0, 0)) {
        r->tail_cache = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
        if (h - r->tail_cache >= (r->mask + 1) / 2) mp_ring_kick();
    }
}

static inline int
mp_ring_push(mp_ring_t *r, const mp_rec_t *rec, const int *abandon) {
    mp_rec_t *slot = mp_ring_reserve(r, abandon);
    if (!slot) return -1;
    *slot = *rec;
    mp_ring_publish(r);
    return 0;
}

#endif
