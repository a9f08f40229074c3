/* u64map.c - the reporter's u64 -> u64 hash map (see u64map.h). */
#include "u64map.h"

#include <stdlib.h>
#include <string.h>

uint64_t
mp_mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static mp_u64map_ent_t *
slot(const mp_u64map_t *m, uint64_t key) {
    size_t mask = m->cap - 1, i = (size_t)mp_mix64(key) & mask;
    while (m->t[i].used && m->t[i].key != key) i = (i + 1) & mask;
    return &m->t[i];
}

uint64_t *
mp_u64map_get(const mp_u64map_t *m, uint64_t key) {
    if (!m->cap) return NULL;
    mp_u64map_ent_t *e = slot(m, key);
    return e->used ? &e->val : NULL;
}

int
mp_u64map_put(mp_u64map_t *m, uint64_t key, uint64_t val) {
    if (2 * (m->len + 1) > m->cap) {
        mp_u64map_t n = {NULL, m->cap ? m->cap * 2 : 64, 0};
        n.t = calloc(n.cap, sizeof *n.t);
        if (!n.t) return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->t[i].used) {
                *slot(&n, m->t[i].key) = m->t[i];
                n.len++;
            }
        free(m->t);
        *m = n;
    }
    mp_u64map_ent_t *e = slot(m, key);
    if (!e->used) {
        e->used = 1;
        e->key = key;
        m->len++;
    }
    e->val = val;
    return 0;
}

void
mp_u64map_free(mp_u64map_t *m) {
    free(m->t);
    memset(m, 0, sizeof *m);
}
