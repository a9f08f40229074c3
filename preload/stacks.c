/* stacks.c - lock-free stack interning (see stacks.h for the contract).
 *
 * Layout. The table is levels.h's, and so are its slots (mp_levels_slot: a tag of the hash and
 * the word offset of the entry in the arena).
 *
 * The arena: entries back to back, each [u32 state][u32 n][u32 id][u32 pad][u64 frames[n]];
 * state 0 = being written (mmap gives zeroes), 1 = valid, 2 = tombstone. An entry becomes valid
 * only once its slot is published, so the writer never emits a stack that lost the race.
 */
#include "stacks.h"

#include <string.h>

#include "atomics.h"
#include "levels.h"
#include "sys.h"

enum { st_writing = 0, st_valid = 1, st_dead = 2 };

typedef struct entry_s {
    uint32_t state;    /* st_* ; release-stored when complete */
    uint32_t n;        /* frames */
    uint32_t id;       /* stack id */
    uint32_t pad;      /* keeps frames 8-aligned */
    uint64_t frames[]; /* innermost first */
} entry_t;

static mp_levels_t table;
static uint64_t *arena;      /* entries */
static size_t arena_words;   /* capacity in 8-byte words */
static size_t arena_used;    /* words handed out (atomic) */
static uint32_t next_id = 1; /* ids handed out (atomic) */

int
mp_stacks_init(size_t nslots, size_t arena_bytes) {
    if (mp_levels_init(&table, nslots) != 0) return -1;
    arena = mp_sys_map(arena_bytes);
    if (!arena) return -1;
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

/* h: the stack's hash_frames; stored may be NULL. */
static uint32_t
intern(const uint64_t *frames, uint32_t n, uint64_t h, const uint64_t **stored) {
    uint64_t tag = mp_levels_tag(h);
    entry_t *mine = NULL;
    size_t mine_off = 0;
    mp_levels_cursor_t c;
    for (uint64_t *slot = mp_levels_first(&table, h, &c); slot; slot = mp_levels_next(&table, &c)) {
        uint64_t s = mp_load_acquire(slot);
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
            uint64_t want = mp_levels_slot(tag, mine_off);
            if (mp_cas_acq_rel(slot, &s, want)) {
                mp_levels_took(&table, c.k);
                mp_store_release(&mine->state, (uint32_t)st_valid);
                if (stored) *stored = mine->frames;
                return mine->id;
            }
            /* Lost the slot; s now holds the winner: fall through and compare it. */
        }
        if (mp_levels_slot_tag(s) == tag) {
            const entry_t *e = entry_at(mp_levels_slot_off(s));
            if (e->n == n && memcmp(e->frames, frames, (size_t)n * 8) == 0) {
                if (mine) mp_store_release(&mine->state, (uint32_t)st_dead);
                if (stored) *stored = e->frames;
                return e->id;
            }
        }
    }
    /* Every window full: the table is (nearly) full. */
    if (mine) mp_store_release(&mine->state, (uint32_t)st_dead);
    return 0;
}

uint32_t
mp_stacks_intern(const uint64_t *frames, uint32_t n) {
    return intern(frames, n, hash_frames(frames, n), NULL);
}

uint32_t
mp_stacks_intern_hashed(const uint64_t *frames, uint32_t n, uint64_t hash,
                        const uint64_t **stored) {
    return intern(frames, n, hash, stored);
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
    size_t span = mp_levels_span(&table);
    for (size_t i = 0; i < span; i++) {
        uint64_t s = mp_load_acquire(&table.slots[i]);
        size_t off = mp_levels_slot_off(s);
        if (s && off < below) {
            entry_t *e = entry_at(off);
            fn(ctx, e->id, e->frames, e->n);
        }
    }
}
