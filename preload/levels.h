/* levels.h - the slot tables of stacks.c and pycode.c: open addressing in levels that double.
 *
 * A table is a few levels, each twice the size of the one before, back to back in one reserved
 * mapping that is touched as used. A key's probe sequence is a window of MP_LEVEL_WINDOW slots
 * from its hash's index in each level, level after level. A new key goes into the first empty
 * slot of its sequence; a lookup stops at the first empty slot or at the key. A slot only goes
 * from empty to taken (a taken slot may be replaced by another entry for the same key, pycode.c),
 * so threads racing on one new key walk the same sequence and meet at the same slot, where one
 * CAS wins: one entry per key, as with a single table.
 *
 * Why levels: a single table large enough for a big program has its keys hashed all over it, so
 * even a few thousand of them keep all of it resident. CPython's start-up interns some 22,000
 * stacks; the stack table of 1 Mi slots (8 MiB) was faulted in whole, as four huge pages, and a
 * fresh page costs up to some 4 us per 4 KiB in this VM (docs/dev/python-frames.md 8.1). A level
 * is reached only where a window of the one before is full, at some 90% of its load; the first
 * refusal of a new key (every window of its sequence full) comes at some 3/4 of all slots.
 *
 * No allocation and no lock: mmap once at init, then atomics on the slots (the callers') and on
 * `top`.
 */
#ifndef MP_LEVELS_H
#define MP_LEVELS_H

#include <stddef.h>
#include <stdint.h>

#include "atomics.h"

#define MP_LEVELS_MAX 6u
#define MP_LEVEL_MIN 1024u  /* the first level's slots, unless the whole table is smaller */
#define MP_LEVEL_WINDOW 32u /* slots a key may take in one level (fewer in a smaller level) */

typedef struct mp_levels_s {
    uint64_t *slots;                                /* every level's, back to back */
    size_t off[MP_LEVELS_MAX], size[MP_LEVELS_MAX]; /* level k: slots[off[k] .. + size[k]) */
    unsigned n;                                     /* levels */
    unsigned top;                                   /* deepest level a key went into (atomic) */
} mp_levels_t;

/* A slot of these tables (stacks.c, pycode.c): 0 (empty) or tag << 40 | (the entry's word offset
 * in its arena + 1), tag the top 24 bits of the key's hash; the +1 keeps an entry at offset 0
 * with tag 0 from reading as an empty slot. */
static inline uint64_t
mp_levels_tag(uint64_t h) {
    return h >> 40;
}
static inline uint64_t
mp_levels_slot(uint64_t tag, size_t off) {
    return tag << 40 | (off + 1);
}
static inline uint64_t
mp_levels_slot_tag(uint64_t s) {
    return s >> 40;
}
static inline size_t
mp_levels_slot_off(uint64_t s) {
    return (size_t)(s & ((1ull << 40) - 1)) - 1;
}

/* Levels from nslots / 32 (at least MP_LEVEL_MIN, at most nslots) up to nslots (a power of two),
 * doubling; their slots reserved with mmap, zero. 0 or -1. */
int mp_levels_init(mp_levels_t *t, size_t nslots);

/* A key's probe sequence: for (uint64_t *s = mp_levels_first(t, h, &c); s;
 * s = mp_levels_next(t, &c)) ...; c.k is the level of the slot. */
typedef struct mp_levels_cursor_s {
    unsigned k;
    size_t i, left;
    uint64_t h;
} mp_levels_cursor_t;

static inline uint64_t *
mp_levels_at(const mp_levels_t *t, mp_levels_cursor_t *c) {
    size_t size = t->size[c->k];
    c->i = (size_t)c->h & (size - 1);
    c->left = size < MP_LEVEL_WINDOW ? size : MP_LEVEL_WINDOW;
    return t->slots + t->off[c->k] + c->i;
}
static inline uint64_t *
mp_levels_first(const mp_levels_t *t, uint64_t h, mp_levels_cursor_t *c) {
    c->k = 0;
    c->h = h;
    return mp_levels_at(t, c);
}
static inline uint64_t *
mp_levels_next(const mp_levels_t *t, mp_levels_cursor_t *c) {
    if (--c->left == 0) {
        if (++c->k >= t->n) return NULL;
        return mp_levels_at(t, c);
    }
    c->i = (c->i + 1) & (t->size[c->k] - 1);
    return t->slots + t->off[c->k] + c->i;
}

/* After a key went into level k. */
static inline void
mp_levels_took(mp_levels_t *t, unsigned k) {
    unsigned was = mp_load_relaxed(&t->top);
    while (was < k && !mp_cas_acq_rel(&t->top, &was, k)) continue;
}

/* The slots of the levels used so far (the rest are still empty): slots[0 .. this). */
static inline size_t
mp_levels_span(const mp_levels_t *t) {
    unsigned k = mp_load_acquire(&t->top);
    return t->off[k] + t->size[k];
}

#endif
