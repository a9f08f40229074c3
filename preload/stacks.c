/* stacks.c - lock-free stack interning (see stacks.h for the contract).
 *
 * Layout. The table is a few levels of open addressing, each twice the size of the one before,
 * back to back in one reserved mapping. A slot is 0 (empty) or (tag << 40 | (word offset of the
 * entry in the arena + 1)), tag = top 24 bits of the hash; the +1 keeps the first entry (offset 0,
 * possibly tag 0) from reading as an empty slot.
 *
 * A stack's place is in a window of WINDOW slots from its hash's index in each level, level after
 * level: it goes into the first empty slot of that sequence, and a lookup stops at the first
 * empty slot or at the stack. So the table touches memory in proportion to the stacks it holds (a
 * level is reached only where a window of the one before is full, at some 90% load): CPython's
 * start-up interns some 22,000 stacks, which a single table of 1 Mi slots spread over all of its
 * 8 MiB (four huge pages, faulted in; a fresh page costs up to some 4 us per 4 KiB in this VM,
 * docs/dev/python-frames.md 8.1), and the first level of 32 Ki slots holds in 256 KiB. Threads
 * racing on one new stack walk the same sequence, and a slot only goes from empty to taken: they
 * meet at the same slot and one id wins.
 *
 * The arena: entries back to back, each [u32 state][u32 n][u32 id][u32 pad][u64 frames[n]];
 * state 0 = being written (mmap gives zeroes), 1 = valid, 2 = tombstone. An entry becomes valid
 * only once its slot is published, so the writer never emits a stack that lost the race.
 */
#include "stacks.h"

#include <string.h>

#include "atomics.h"
#include "sys.h"

enum { st_writing = 0, st_valid = 1, st_dead = 2 };

typedef struct entry_s {
    uint32_t state;    /* st_* ; release-stored when complete */
    uint32_t n;        /* frames */
    uint32_t id;       /* stack id */
    uint32_t pad;      /* keeps frames 8-aligned */
    uint64_t frames[]; /* innermost first */
} entry_t;

#define LEVELS_MAX 6u
#define LEVEL_MIN 1024u /* the first level's slots, unless the whole table is smaller */
#define WINDOW 32u      /* slots a stack may take in one level (fewer in a smaller level) */
static uint64_t *slots; /* every level's slots */
static size_t lvl_off[LEVELS_MAX], lvl_size[LEVELS_MAX]; /* level k: slots[lvl_off[k] ..] */
static unsigned nlevels;
static unsigned top;         /* the deepest level a stack went into (atomic) */
static uint64_t *arena;      /* entries */
static size_t arena_words;   /* capacity in 8-byte words */
static size_t arena_used;    /* words handed out (atomic) */
static uint32_t next_id = 1; /* ids handed out (atomic) */

int
mp_stacks_init(size_t nslots, size_t arena_bytes) {
    /* Levels from nslots / 32 (at least LEVEL_MIN, at most nslots) up to nslots, doubling. */
    size_t first = nslots / 32 > LEVEL_MIN ? nslots / 32 : LEVEL_MIN, total = 0;
    if (first > nslots) first = nslots;
    nlevels = 0;
    for (size_t n = first; n <= nslots && nlevels < LEVELS_MAX; n *= 2, nlevels++) {
        lvl_off[nlevels] = total;
        lvl_size[nlevels] = n;
        total += n;
    }
    top = 0;
    slots = mp_sys_map(total * sizeof *slots);
    arena = mp_sys_map(arena_bytes);
    if (!slots || !arena) return -1;
    arena_words = arena_bytes / 8;
    arena_used = 0;
    next_id = 1;
    return 0;
}

void
mp_stacks_advise_huge(void) {
    mp_sys_advise_huge(arena, arena_words * 8);
}

/* Outermost frame first (stacks.h). */
static uint64_t
hash_frames(const uint64_t *f, uint32_t n) {
    uint64_t h = MP_STACKS_HASH_SEED;
    for (uint32_t i = n; i-- > 0;) h = mp_stacks_hash_step(h, f[i]);
    return mp_stacks_hash_finish(h, n);
}

static entry_t *
entry_at(size_t off) {
    return (entry_t *)(arena + off);
}

/* h: the stack's hash_frames. */
static uint32_t
intern(const uint64_t *frames, uint32_t n, uint64_t h, const uint64_t **stored) {
    uint64_t tag = h >> 40; /* 24 bits */
    entry_t *mine = NULL;
    size_t mine_off = 0;
    for (unsigned k = 0; k < nlevels; k++) {
        uint64_t *t = slots + lvl_off[k];
        size_t mask = lvl_size[k] - 1, i = (size_t)h & mask;
        size_t w = lvl_size[k] < WINDOW ? lvl_size[k] : WINDOW;
        for (size_t p = 0; p < w; p++, i = (i + 1) & mask) {
            uint64_t s = mp_load_acquire(&t[i]);
            if (s == 0) {
                if (!mine) {
                    /* Not found: build our entry, complete, before trying to publish it. */
                    size_t words = 2 + n;
                    mine_off = mp_fetch_add_relaxed(&arena_used, words);
                    if (mine_off + words > arena_words) return 0; /* arena full */
                    mine = entry_at(mine_off);
                    mine->n = n;
                    mine->id = mp_fetch_add_relaxed(&next_id, 1);
                    memcpy(mine->frames, frames, (size_t)n * 8);
                }
                /* The CAS releases n, id and frames to lookups (acquire on the slot); the state
                 * store after it releases them to the writer (acquire on state). */
                uint64_t want = tag << 40 | (mine_off + 1);
                if (mp_cas_acq_rel(&t[i], &s, want)) {
                    unsigned was = mp_load_relaxed(&top);
                    while (was < k && !mp_cas_acq_rel(&top, &was, k)) continue;
                    mp_store_release(&mine->state, (uint32_t)st_valid);
                    *stored = mine->frames;
                    return mine->id;
                }
                /* Lost the slot; s now holds the winner: fall through and compare it. */
            }
            if ((s >> 40) == tag) {
                const entry_t *e = entry_at((size_t)(s & ((1ull << 40) - 1)) - 1);
                if (e->n == n && memcmp(e->frames, frames, (size_t)n * 8) == 0) {
                    if (mine) mp_store_release(&mine->state, (uint32_t)st_dead);
                    *stored = e->frames;
                    return e->id;
                }
            }
        }
    }
    /* Every window full: the table is (nearly) full. */
    if (mine) mp_store_release(&mine->state, (uint32_t)st_dead);
    return 0;
}

uint32_t
mp_stacks_intern(const uint64_t *frames, uint32_t n) {
    const uint64_t *stored;
    return intern(frames, n, hash_frames(frames, n), &stored);
}

uint32_t
mp_stacks_intern_hashed(const uint64_t *frames, uint32_t n, uint64_t hash) {
    const uint64_t *stored;
    return intern(frames, n, hash, &stored);
}

uint32_t
mp_stacks_intern_ref(const uint64_t *frames, uint32_t n, const uint64_t **stored) {
    return intern(frames, n, hash_frames(frames, n), stored);
}

int
mp_stacks_next(size_t *cursor, uint32_t *id, const uint64_t **frames, uint32_t *n) {
    for (;;) {
        size_t off = *cursor;
        if (off >= mp_load_acquire(&arena_used) || off >= arena_words) return 0;
        entry_t *e = entry_at(off);
        uint32_t st = mp_load_acquire(&e->state);
        if (st == st_writing) return 0; /* its thread is still filling it: try later */
        *cursor = off + 2 + e->n;
        if (st == st_valid) {
            *id = e->id;
            *frames = e->frames;
            *n = e->n;
            return 1;
        }
    }
}

size_t
mp_stacks_fork_barrier(void) {
    return arena_used;
}

void
mp_stacks_each_published(size_t below, void (*fn)(void *, uint32_t, const uint64_t *, uint32_t),
                         void *ctx) {
    /* Every published slot points at a complete entry (published after being filled). Levels
     * past the deepest one used are empty. */
    unsigned k = mp_load_acquire(&top);
    for (size_t i = 0; i < lvl_off[k] + lvl_size[k]; i++) {
        uint64_t s = mp_load_acquire(&slots[i]);
        size_t off = (size_t)(s & ((1ull << 40) - 1)) - 1;
        if (s && off < below) {
            entry_t *e = entry_at(off);
            fn(ctx, e->id, e->frames, e->n);
        }
    }
}
