/* stacks.h - interning of stacks (arrays of frame values) into small integer ids.
 *
 * Producers: any thread, from inside interposed calls; lock-free, never allocates (the table
 * and the arena are reserved with mmap at init and touched lazily). Consumer: the writer walks
 * the arena in order with mp_stacks_next() and emits each stack once.
 *
 * An entry is filled completely and marked valid *before* it is published in the hash table,
 * so a lookup never sees a half-written stack; two threads interning the same new stack both
 * fill an entry, one wins the slot and the loser's entry becomes a tombstone.
 */
#ifndef MP_STACKS_H
#define MP_STACKS_H

#include <stddef.h>
#include <stdint.h>

/* Reserve the table and an arena of arena_bytes; 0 or -1. The table grows in levels, doubling
 * from slots / 32 (at least 1024, at most slots) up to slots (a power of two), each used where
 * the one before is full around a stack's hash (stacks.c): nearly all of it can be used. */
int mp_stacks_init(size_t slots, size_t arena_bytes);
/* The arena in transparent huge pages (mp_sys_advise_huge), for a process that will intern
 * thousands of deep stacks: CPython's start-up (python.c). A C program's handful of stacks keep
 * 4 KiB pages. */
void mp_stacks_advise_huge(void);
/* Intern frames[0..n) (n >= 1); returns its id (>= 1), or 0 when the table is full (the
 * caller counts that as a dropped stack). */
uint32_t mp_stacks_intern(const uint64_t *frames, uint32_t n);
/* Same, and *stored points at the table's copy of the frames (valid for the process's life). */
uint32_t mp_stacks_intern_ref(const uint64_t *frames, uint32_t n, const uint64_t **stored);

/* The table's hash of a stack, exposed so that a caller building stacks from the outside in
 * (pymiss.h: a new stack mostly shares its outer frames with the one before) hashes only the
 * frames it adds: h = MP_STACKS_HASH_SEED, then h = mp_stacks_hash_step(h, frames[i]) for i from
 * n - 1 down to 0 (outermost first), then mp_stacks_hash_finish(h, n). */
#define MP_STACKS_HASH_SEED 0x9e3779b97f4a7c15ull
static inline uint64_t
mp_stacks_hash_step(uint64_t h, uint64_t frame) {
    h ^= frame;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 32);
}
static inline uint64_t
mp_stacks_hash_finish(uint64_t h, uint32_t n) {
    h ^= n;
    h ^= h >> 29;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 32);
}
/* mp_stacks_intern, given the stack's hash (computed as above); *stored (if stored is not NULL):
 * as mp_stacks_intern_ref's. */
uint32_t mp_stacks_intern_hashed(const uint64_t *frames, uint32_t n, uint64_t hash,
                                 const uint64_t **stored);

/* Writer side: iterate entries from *cursor (start at 0). Returns 1 and fills id, frames, n
 * for the next valid entry; 0 when the next entry is still being written or the end is reached
 * (call again later with the same cursor). */
int mp_stacks_next(size_t *cursor, uint32_t *id, const uint64_t **frames, uint32_t *n);
/* After fork, in the child: entries before the returned cursor value may be incomplete
 * forever (their thread is gone); the child emits published stacks with mp_stacks_each_published
 * and continues scanning from the returned cursor. */
size_t mp_stacks_fork_barrier(void);
void mp_stacks_each_published(size_t below,
                              void (*fn)(void *ctx, uint32_t id, const uint64_t *frames,
                                         uint32_t n),
                              void *ctx);

#endif
