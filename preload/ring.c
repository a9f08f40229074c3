/* ring.c - ring registry, claiming and the full-ring slow path (see ring.h for the contract).
 *
 * What this is not: the encoder (writer.c) or the event builder (capture.c). Memory comes from
 * mmap only, never malloc: these functions run inside interposed allocation calls.
 */
#include "ring.h"

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
    /* One mapping holds the ring header and its slots. */
    size_t bytes = sizeof(mp_ring_t) + (size_t)MP_RING_CAPACITY * sizeof(mp_rec_t);
    mp_ring_t *r = mp_sys_map(bytes);
    if (!r) return NULL;
    r->slots = (mp_rec_t *)(r + 1);
    r->mask = MP_RING_CAPACITY - 1;
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

int
mp_ring_wait_space(mp_ring_t *r, const int *abandon) {
    /* The writer drains every ring on each pass; wake it and give it the CPU. Sleeping in
     * 50 us steps (a raw nanosleep: no lock, no allocation) bounds the producer's wait to the
     * writer's pass, and checking *abandon ends it if tracking is shutting down. */
    for (;;) {
        mp_ring_kick();
        mp_sys_sleep_ns(50000);
        r->tail_cache = mp_load_acquire(&r->tail);
        if (r->head - r->tail_cache <= r->mask) return 0;
        if (abandon && mp_load_acquire(abandon)) return -1;
    }
}

void
mp_ring_reset_after_fork(mp_ring_t *keep) {
    /* The child is single-threaded here: plain stores are enough. The parent's pending
     * records belong to the parent's dump (its writer still drains them there). */
    for (mp_ring_t *r = registry; r; r = r->next) {
        r->head = r->tail = r->tail_cache = 0;
        r->state = r == keep ? mp_ring_owned : mp_ring_free;
    }
}
