/* pycode.c - lock-free registry of Python code objects (see pycode.h).
 *
 * Layout, as in stacks.c: the table and its slots are levels.h's (mp_levels_slot: a tag of the
 * hash and the word offset of the entry). The arena holds entries back to back:
 * [u32 state][u32 len][u64 code][u64 filename][u64 name][u64 table][u32 firstlineno][u32 id]
 * [u64 words][len bytes of PYCODE body]; `words` is the entry's reserved size in 8-byte words.
 * state: 0 being written, 1 valid, 2 dead (lost a race). A slot may be CAS-replaced by a newer
 * entry for the same address (reuse, see pycode.h).
 */
#include "pycode.h"

#include <string.h>

#include "atomics.h"
#include "foreign.h"
#include "format.h"
#include "levels.h"
#include "sys.h"

enum { st_writing = 0, st_valid = 1, st_dead = 2 };

typedef struct entry_s {
    uint32_t state, len;
    uint64_t code, filename, name, table;
    uint32_t firstlineno, id;
    uint64_t words;
    uint8_t body[];
} entry_t;

typedef struct cache_s {
    uint64_t code, filename, name, table;
    uint32_t firstlineno, id;
} cache_t;

#define CACHE_SIZE 128u      /* per thread, direct mapped */
#define STR_MAX (16u << 10)  /* longest name or filename copied, in bytes */
#define TABLE_MAX (1u << 20) /* longest line table copied */

/* Initial-exec TLS (reaching it never calls the dynamic loader, which could allocate). */
static __thread cache_t cache[CACHE_SIZE] __attribute__((tls_model("initial-exec")));

static mp_levels_t slots; /* the hash table (levels.h) */
static size_t max_entries;
static uint64_t *arena;
static size_t arena_words, arena_used;
static uint32_t next_id = 1;
static const mp_pylayout_t *L;
static const void *bytes_type, *unicode_type;
uint64_t mp_pycode_dropped;
uint32_t mp_pycode_gen;

int
mp_pycode_init(size_t nslots, size_t arena_bytes) {
    if (mp_levels_init(&slots, nslots) != 0) return -1;
    arena = mp_sys_map(arena_bytes);
    if (!arena) return -1;
    mp_sys_advise_huge(arena, arena_bytes); /* filled from its start at start-up: as stacks.h */
    max_entries = nslots / 4 * 3;
    arena_words = arena_bytes / 8;
    return 0;
}

void
mp_pycode_setup(const mp_pylayout_t *layout, const void *bt, const void *ut) {
    L = layout;
    bytes_type = bt;
    unicode_type = ut;
}

/* The four fields that identify a code object's content (pycode.h). */
typedef struct ident_s {
    uint64_t filename, name, table;
    uint32_t firstlineno;
} ident_t;

static inline void
read_ident(const uint8_t *co, ident_t *id) {
    id->filename = mp_ld64(co, L->co_filename);
    id->name = mp_ld64(co, L->co_qualname >= 0 ? L->co_qualname : L->co_name);
    id->table = mp_ld64(co, L->co_linetable);
    id->firstlineno = mp_ld32(co, L->co_firstlineno);
}

/* ---- reading str and bytes with plain loads (docs/dev/python-frames.md 6.2) --------------- */

/* Where the characters of str object s are; kind 0 when it cannot be read. */
static const uint8_t *
str_data(const uint8_t *s, unsigned *kind, size_t *nbytes) {
    *kind = 0;
    *nbytes = 0;
    if (!s || (const void *)mp_ld64(s, 8) != unicode_type) return NULL;
    uint32_t state = mp_ld32(s, 32);
    unsigned k = (state >> 2) & 7u;
    int compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
    if (L->minor <= 11 && !((state >> 7) & 1)) return NULL;    /* not ready */
    if (!compact || (k != 1 && k != 2 && k != 4)) return NULL; /* legacy string: not followed */
    uint64_t len = mp_ld64(s, 16);
    if (len * k > STR_MAX) return NULL;
    *kind = k;
    *nbytes = (size_t)(len * k);
    return s + (ascii ? L->ascii_size : L->compact_size);
}

static const uint8_t *
bytes_data(const uint8_t *b, size_t *n) {
    *n = 0;
    if (!b || (const void *)mp_ld64(b, 8) != bytes_type) return NULL;
    uint64_t len = mp_ld64(b, 16);
    if (len > TABLE_MAX) return NULL;
    *n = (size_t)len;
    return b + 32;
}

static uint8_t *
put_pystr(uint8_t *p, unsigned kind, const uint8_t *data, size_t n) {
    p += mp_varint_put(p, kind);
    p += mp_varint_put(p, n);
    if (n) memcpy(p, data, n);
    return p + n;
}

/* ---- registration -------------------------------------------------------------------------- */

static uint64_t
hash_ptr(uint64_t v) {
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdull;
    v ^= v >> 33;
    v *= 0xc4ceb9fe1a85ec53ull;
    v ^= v >> 33;
    return v;
}

static entry_t *
entry_at(size_t off) {
    return (entry_t *)(arena + off);
}

/* Build a complete, unpublished entry for co; returns its word offset or (size_t)-1. */
static size_t
build_entry(const uint8_t *co, const ident_t *id) {
    unsigned kf, kn, kq = 1;
    size_t nf, nn, nq = 0, nt;
    const uint8_t *fname = str_data((const uint8_t *)(uintptr_t)id->filename, &kf, &nf);
    const uint8_t *name = str_data((const uint8_t *)(uintptr_t)mp_ld64(co, L->co_name), &kn, &nn);
    const uint8_t *qual = NULL;
    if (L->co_qualname >= 0) qual = str_data((const uint8_t *)(uintptr_t)id->name, &kq, &nq);
    const uint8_t *table = bytes_data((const uint8_t *)(uintptr_t)id->table, &nt);
    size_t body_max = 7 * MP_VARINT_MAX + nf + nn + nq + nt;
    size_t words = (sizeof(entry_t) + body_max + 7) / 8;
    if (mp_load_relaxed(&next_id) > max_entries || next_id >= (1u << 31)) return (size_t)-1;
    size_t off = mp_fetch_add_relaxed(&arena_used, words);
    if (off + words > arena_words) return (size_t)-1;
    entry_t *e = entry_at(off);
    e->code = (uint64_t)(uintptr_t)co;
    e->filename = id->filename;
    e->name = id->name;
    e->table = id->table;
    e->firstlineno = id->firstlineno;
    e->id = mp_fetch_add_relaxed(&next_id, 1);
    e->words = words;
    uint8_t *p = e->body;
    p += mp_varint_put(p, e->id);
    p += mp_varint_put(p, (uint64_t)(int64_t)(int32_t)id->firstlineno);
    p += mp_varint_put(p, (uint64_t)L->table_format);
    p = put_pystr(p, kf, fname, nf);
    p = put_pystr(p, kn, name, nn);
    p = put_pystr(p, qual ? kq : 1, qual, nq);
    p += mp_varint_put(p, nt);
    if (nt) memcpy(p, table, nt);
    p += nt;
    e->len = (uint32_t)(p - e->body);
    return off;
}

static int
same(const entry_t *e, uint64_t co, const ident_t *id) {
    return e->code == co && e->filename == id->filename && e->name == id->name &&
           e->table == id->table && e->firstlineno == id->firstlineno;
}

static uint32_t
lookup_slow(const uint8_t *co, const ident_t *id) {
    uint64_t key = (uint64_t)(uintptr_t)co;
    uint64_t h = hash_ptr(key), tag = mp_levels_tag(h);
    size_t mine = (size_t)-1;
    mp_levels_cursor_t c;
    for (uint64_t *slot = mp_levels_first(&slots, h, &c); slot;) {
        uint64_t s = mp_load_acquire(slot);
        if (s != 0 && mp_levels_slot_tag(s) == tag) {
            entry_t *e = entry_at(mp_levels_slot_off(s));
            if (e->code == key) {
                if (same(e, key, id)) {
                    if (mine != (size_t)-1)
                        mp_store_release(&entry_at(mine)->state, (uint32_t)st_dead);
                    return e->id;
                }
                /* Same address, other content: a new object; replace the slot. */
                if (mine == (size_t)-1 && (mine = build_entry(co, id)) == (size_t)-1) return 0;
                if (mp_cas_acq_rel(slot, &s, mp_levels_slot(tag, mine))) {
                    mp_store_release(&entry_at(mine)->state, (uint32_t)st_valid);
                    return entry_at(mine)->id;
                }
                continue; /* the slot changed under us: look at it again */
            }
        }
        if (s == 0) {
            if (mine == (size_t)-1 && (mine = build_entry(co, id)) == (size_t)-1) return 0;
            if (mp_cas_acq_rel(slot, &s, mp_levels_slot(tag, mine))) {
                mp_levels_took(&slots, c.k);
                mp_store_release(&entry_at(mine)->state, (uint32_t)st_valid);
                return entry_at(mine)->id;
            }
            continue; /* lost the empty slot: compare with the winner */
        }
        slot = mp_levels_next(&slots, &c);
    }
    if (mine != (size_t)-1) mp_store_release(&entry_at(mine)->state, (uint32_t)st_dead);
    return 0;
}

uint32_t
mp_pycode_id(const uint8_t *co) {
    ident_t id;
    read_ident(co, &id);
    uint64_t key = (uint64_t)(uintptr_t)co;
    cache_t *c = &cache[(key >> 4 ^ key >> 12) & (CACHE_SIZE - 1)];
    if (c->code == key && c->filename == id.filename && c->name == id.name &&
        c->table == id.table && c->firstlineno == id.firstlineno)
        return c->id;
    uint32_t r = lookup_slow(co, &id);
    if (r == 0) {
        mp_fetch_add_relaxed(&mp_pycode_dropped, 1);
        return 0;
    }
    c->code = key;
    c->filename = id.filename;
    c->name = id.name;
    c->table = id.table;
    c->firstlineno = id.firstlineno;
    c->id = r;
    return r;
}

/* ---- writer side --------------------------------------------------------------------------- */

int
mp_pycode_next(size_t *cursor, const uint8_t **body, size_t *len) {
    for (;;) {
        size_t off = *cursor;
        if (off >= mp_load_acquire(&arena_used) || off >= arena_words) return 0;
        entry_t *e = entry_at(off);
        uint32_t st = mp_load_acquire(&e->state);
        if (st == st_writing) return 0;
        *cursor = off + (size_t)e->words;
        if (st == st_valid) {
            *body = e->body;
            *len = e->len;
            return 1;
        }
    }
}

size_t
mp_pycode_fork_barrier(void) {
    return arena_used;
}

void
mp_pycode_each_published(size_t below, void (*fn)(void *, const uint8_t *, size_t), void *ctx) {
    size_t span = slots.slots ? mp_levels_span(&slots) : 0;
    for (size_t i = 0; i < span; i++) {
        uint64_t s = mp_load_acquire(&slots.slots[i]);
        size_t off = mp_levels_slot_off(s);
        if (s && off < below) fn(ctx, entry_at(off)->body, entry_at(off)->len);
    }
}
