/* u64map.h - a u64 -> u64 hash map for the reporter (open addressing, linear probing).
 *
 * What this is: the index the replay and the per-line view use for ids (streams, stacks, code
 * objects, (function, line) rows). Keys are mixed with splitmix64, so clustered values (aligned
 * addresses, small ids) spread. No deletion. What this is not: the live-block table (model.c),
 * which needs deletion.
 */
#ifndef MP_U64MAP_H
#define MP_U64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_u64map_ent_s {
    uint64_t key, val;
    uint8_t used;
} mp_u64map_ent_t;

typedef struct mp_u64map_s { /* zero-initialised = empty */
    mp_u64map_ent_t *t;
    size_t cap, len; /* cap: 0 or a power of two */
} mp_u64map_t;

/* splitmix64's finalizer. */
uint64_t mp_mix64(uint64_t x);
/* The value of key, or NULL. The pointer is valid until the next put. */
uint64_t *mp_u64map_get(const mp_u64map_t *m, uint64_t key);
/* Insert or overwrite. Returns 0, or -1 when out of memory (m unchanged). */
int mp_u64map_put(mp_u64map_t *m, uint64_t key, uint64_t val);
/* Release the table; m is empty again. */
void mp_u64map_free(mp_u64map_t *m);

#endif
