/* test_stacks.c - stack interning (preload/stacks.c, stacks.h).
 *
 * stacks.c has one process-wide table. Criterion runs every Test() in its own forked process, so
 * each test calls mp_stacks_init once with the sizes it needs and starts from an empty table.
 * A few tests are white-box: they use the arena layout documented at the top of stacks.c
 * ([u32 state][u32 n][u32 id][u32 pad][u64 frames[n]], state 0 writing, 1 valid, 2 tombstone)
 * to forge states that otherwise only arise from races or a fork.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stacks.h"
#include "sys.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static void
init(size_t slots, size_t arena_bytes) {
    cr_assert_eq(mp_stacks_init(slots, arena_bytes), 0);
}

#define INTERN(...)                                                                                \
    mp_stacks_intern((const uint64_t[]){__VA_ARGS__},                                              \
                     (uint32_t)(sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t)))

/* The state word of the entry whose frames mp_stacks_next returned (white-box, see top). */
static uint32_t *
state_of(const uint64_t *frames) {
    return (uint32_t *)(uintptr_t)(frames - 2);
}

/* Drain mp_stacks_next from *cursor into ids[] (up to cap); returns how many. */
static size_t
drain(size_t *cursor, uint32_t *ids, size_t cap) {
    size_t k = 0;
    uint32_t id, n;
    const uint64_t *f;
    while (mp_stacks_next(cursor, &id, &f, &n)) {
        cr_assert_lt(k, cap, "mp_stacks_next emitted more than expected");
        ids[k++] = id;
    }
    return k;
}

/* A family of test stacks: group g has a base sequence of 32 frames and stack (g, len) is its
 * first len frames, so the set is full of prefixes of one another. */
#define GROUPS 200
#define MAXLEN 32
#define NSTACKS (GROUPS * MAXLEN)

static uint64_t
frame_of(int g, int j) {
    /* Realistic-looking return addresses, distinct across groups and positions. */
    return 0x555555554000ull + (uint64_t)g * 0x10000 + (uint64_t)j * 0x38 + (uint64_t)(g % 7);
}

static void
stack_k(int k, uint64_t *out, uint32_t *n) {
    int g = k / MAXLEN, len = k % MAXLEN + 1;
    for (int j = 0; j < len; j++) out[j] = frame_of(g, j);
    *n = (uint32_t)len;
}

/* ---- interning ----------------------------------------------------------------------------- */

Test(stacks, equal_stacks_get_the_same_id) {
    init(1024, 1 << 20);
    uint64_t a[] = {0x401000, 0x402000, 0x403000};
    uint64_t b[] = {0x401000, 0x402000, 0x403000}; /* equal contents, another buffer */
    uint32_t ia = mp_stacks_intern(a, 3);
    cr_assert_geq(ia, 1);
    cr_assert_eq(mp_stacks_intern(a, 3), ia);
    cr_assert_eq(mp_stacks_intern(b, 3), ia);
    /* The table copied the frames: changing the caller's buffer changes nothing. */
    a[1] = 0xdead;
    cr_assert_eq(mp_stacks_intern(b, 3), ia);
    cr_assert_neq(mp_stacks_intern(a, 3), ia);
}

Test(stacks, different_stacks_get_different_ids) {
    init(1024, 1 << 20);
    uint32_t ids[] = {
        INTERN(1, 2, 3),
        INTERN(1, 2, 4),
        INTERN(1, 2), /* prefix */
        INTERN(1),
        INTERN(2, 3),       /* suffix */
        INTERN(1, 2, 3, 0), /* same frames, one more (zero) frame */
        INTERN(3, 2, 1),    /* same frames, other order */
        INTERN(0),
        INTERN(0, 0),
        INTERN(0, 0, 0),
        INTERN(UINT64_MAX),
        INTERN(1, 2, 3, 1, 2, 3),
    };
    size_t n = sizeof ids / sizeof ids[0];
    for (size_t i = 0; i < n; i++) {
        cr_assert_geq(ids[i], 1, "stack %zu got id 0", i);
        for (size_t j = 0; j < i; j++) cr_assert_neq(ids[i], ids[j], "stacks %zu and %zu", i, j);
    }
    /* Asking again returns the same ids. */
    uint32_t again[] = {INTERN(1, 2, 3), INTERN(1, 2, 4), INTERN(1, 2), INTERN(1)};
    for (size_t i = 0; i < 4; i++) cr_assert_eq(again[i], ids[i]);
}

Test(stacks, ids_start_at_one_and_are_stable_for_many_stacks) {
    init(1 << 15, 8 << 20);
    static uint32_t ids[NSTACKS];
    uint64_t f[MAXLEN];
    uint32_t n;
    for (int k = 0; k < NSTACKS; k++) {
        stack_k(k, f, &n);
        ids[k] = mp_stacks_intern(f, n);
        cr_assert_eq(ids[k], (uint32_t)k + 1, "single-threaded ids are handed out in order");
    }
    for (int k = NSTACKS - 1; k >= 0; k--) {
        stack_k(k, f, &n);
        cr_assert_eq(mp_stacks_intern(f, n), ids[k]);
    }
}

/* mp_stacks_intern_hashed with the hash built from the outside in, as stacks.h describes (and
 * pyframes.c builds it, one frame at a time), finds what mp_stacks_intern interned and the
 * other way round. */
Test(stacks, hashed_interning_agrees_with_plain) {
    init(1 << 15, 8 << 20);
    uint64_t f[MAXLEN];
    uint32_t n;
    for (int k = 0; k < NSTACKS; k++) {
        stack_k(k, f, &n);
        uint64_t h = MP_STACKS_HASH_SEED;
        for (uint32_t i = n; i-- > 0;) h = mp_stacks_hash_step(h, f[i]);
        h = mp_stacks_hash_finish(h, n);
        if (k % 2) {
            uint32_t id = mp_stacks_intern_hashed(f, n, h, NULL);
            cr_assert_geq(id, 1);
            cr_assert_eq(mp_stacks_intern(f, n), id, "stack %d", k);
        } else {
            uint32_t id = mp_stacks_intern(f, n);
            cr_assert_geq(id, 1);
            cr_assert_eq(mp_stacks_intern_hashed(f, n, h, NULL), id, "stack %d", k);
        }
    }
}

Test(stacks, long_stacks) {
    init(1024, 1 << 20);
    static uint64_t f[1024];
    for (int i = 0; i < 1024; i++) f[i] = 0x7f0000000000ull + (uint64_t)i * 8;
    uint32_t a = mp_stacks_intern(f, 1024), b = mp_stacks_intern(f, 1023);
    cr_assert(a && b && a != b);
    cr_assert_eq(mp_stacks_intern(f, 1024), a);
    size_t cur = 0;
    uint32_t id, n;
    const uint64_t *got;
    cr_assert(mp_stacks_next(&cur, &id, &got, &n));
    cr_assert_eq(id, a);
    cr_assert_eq(n, 1024);
    cr_assert_eq(memcmp(got, f, sizeof f), 0);
}

/* ---- full table and full arena ----------------------------------------------------------------
 */

Test(stacks, full_table_returns_zero_but_still_finds_old_stacks) {
    init(16, 1 << 20); /* one level of 16 slots, whose window is all of it: 16 stacks */
    uint32_t ids[16];
    for (uint64_t i = 0; i < 16; i++) {
        ids[i] = INTERN(0x1000 + i, 0x2000);
        cr_assert_eq(ids[i], i + 1);
    }
    cr_assert_eq(INTERN(0x9999), 0);
    cr_assert_eq(INTERN(0x9999, 1, 2), 0);
    for (uint64_t i = 0; i < 16; i++) cr_assert_eq(INTERN(0x1000 + i, 0x2000), ids[i]);
    /* Only the 16 interned stacks are emitted. */
    size_t cur = 0;
    uint32_t out[17];
    cr_assert_eq(drain(&cur, out, 17), 16);
}

Test(stacks, levels_grow_and_keep_finding_their_stacks) {
    /* Levels of 1024, 2048 and 4096 slots (7168): 5000 stacks need all three. */
    init(4096, 8 << 20);
    enum { many = 5000 };
    static uint32_t ids[many];
    for (uint64_t i = 0; i < many; i++) {
        ids[i] = INTERN(0x10000 + i, 7);
        cr_assert_eq(ids[i], i + 1, "stack %u got id %u", (unsigned)i, ids[i]);
    }
    /* Each is found again in its level, stacks of the levels after it in between. */
    for (uint64_t i = 0; i < many; i++) cr_assert_eq(INTERN(0x10000 + i, 7), ids[i]);
    size_t cur = 0;
    static uint32_t out[many + 1];
    cr_assert_eq(drain(&cur, out, many + 1), many);
    /* Filled up, the table refuses new stacks (the first one whose windows are all full, at
     * some 3/4 of all slots) and still finds its own. */
    uint32_t more = 0;
    while (INTERN(0x900000 + more, 7) != 0) more++;
    cr_assert_geq(many + more, 7168 * 7 / 10, "only %u stacks fitted 7168 slots", many + more);
    cr_assert_eq(INTERN(0x10000, 7), ids[0]);
    cr_assert_eq(INTERN(0x900000, 7), many + 1);
}

Test(stacks, full_arena_returns_zero_and_iteration_ends) {
    init(1024, 64); /* 8 words: one 3-frame entry (5 words) fits, a second does not */
    uint32_t a = INTERN(1, 2, 3);
    cr_assert_eq(a, 1);
    cr_assert_eq(INTERN(4, 5, 6), 0);
    cr_assert_eq(INTERN(7), 0);
    cr_assert_eq(INTERN(1, 2, 3), a);
    size_t cur = 0;
    uint32_t out[4];
    cr_assert_eq(drain(&cur, out, 4), 1);
    cr_assert_eq(out[0], a);
    cr_assert_eq(drain(&cur, out, 4), 0, "iteration must stop at the end of the arena");
}

/* ---- iteration (the writer's side) ------------------------------------------------------------
 */

Test(stacks, next_emits_each_stack_once_in_order_and_resumes) {
    init(1024, 1 << 20);
    uint32_t a = INTERN(10, 11), b = INTERN(20), c = INTERN(30, 31, 32);
    INTERN(10, 11); /* a lookup adds nothing */
    size_t cur = 0;
    uint32_t id, n;
    const uint64_t *f;
    cr_assert(mp_stacks_next(&cur, &id, &f, &n));
    cr_assert(id == a && n == 2 && f[0] == 10 && f[1] == 11);
    cr_assert(mp_stacks_next(&cur, &id, &f, &n));
    cr_assert(id == b && n == 1 && f[0] == 20);
    cr_assert(mp_stacks_next(&cur, &id, &f, &n));
    cr_assert(id == c && n == 3 && f[0] == 30 && f[2] == 32);
    size_t end = cur;
    cr_assert_not(mp_stacks_next(&cur, &id, &f, &n));
    cr_assert_eq(cur, end, "the cursor stays put at the end");
    /* New stacks after the end are picked up from the same cursor. */
    uint32_t d = INTERN(40);
    cr_assert(mp_stacks_next(&cur, &id, &f, &n));
    cr_assert(id == d && n == 1 && f[0] == 40);
    cr_assert_not(mp_stacks_next(&cur, &id, &f, &n));
}

Test(stacks, next_skips_tombstones) {
    init(1024, 1 << 20);
    uint32_t a = INTERN(1), b = INTERN(2, 2), c = INTERN(3, 3, 3);
    size_t cur = 0;
    uint32_t id, n;
    const uint64_t *f, *fb = NULL;
    while (mp_stacks_next(&cur, &id, &f, &n))
        if (id == b) fb = f;
    cr_assert_not_null(fb);
    /* Forge what a lost publication race leaves behind: b's entry becomes a tombstone. */
    __atomic_store_n(state_of(fb), 2u, __ATOMIC_RELEASE);
    cur = 0;
    uint32_t out[4];
    cr_assert_eq(drain(&cur, out, 4), 2);
    cr_assert_eq(out[0], a);
    cr_assert_eq(out[1], c);
}

Test(stacks, next_waits_at_an_entry_being_written) {
    init(1024, 1 << 20);
    uint32_t a = INTERN(1), b = INTERN(2, 2), c = INTERN(3, 3, 3);
    size_t cur = 0;
    uint32_t id, n;
    const uint64_t *f, *fb = NULL;
    while (mp_stacks_next(&cur, &id, &f, &n))
        if (id == b) fb = f;
    /* Forge an entry still being filled by its thread: iteration must stop before it. */
    __atomic_store_n(state_of(fb), 0u, __ATOMIC_RELEASE);
    cur = 0;
    uint32_t out[4];
    cr_assert_eq(drain(&cur, out, 4), 1);
    cr_assert_eq(out[0], a);
    size_t held = cur;
    cr_assert_eq(drain(&cur, out, 4), 0);
    cr_assert_eq(cur, held);
    /* Once complete, the same cursor continues with it. */
    __atomic_store_n(state_of(fb), 1u, __ATOMIC_RELEASE);
    cr_assert_eq(drain(&cur, out, 4), 2);
    cr_assert_eq(out[0], b);
    cr_assert_eq(out[1], c);
}

/* ---- concurrency ---------------------------------------------------------------------------- */

#define NTHREADS 6
#define ROUNDS 3

typedef struct interner_s {
    int t;
    int *go;
    uint32_t ids[NSTACKS]; /* id this thread got for stack k (consistent over its rounds) */
    int bad;               /* stack k + 1 whose id changed between rounds, or 0 */
} interner_t;

static void *
interner(void *arg) {
    interner_t *it = arg;
    while (!__atomic_load_n(it->go, __ATOMIC_ACQUIRE)) sched_yield();
    uint64_t f[MAXLEN];
    uint32_t n;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < NSTACKS; i++) {
            /* Pairs of threads walk the set in the same order (they race to insert the same
             * new stacks: tombstones), the pairs start at different points. 4099 is prime. */
            int k = (int)(((long)i * 4099 + (long)(it->t / 2) * (NSTACKS / 3)) % NSTACKS);
            stack_k(k, f, &n);
            uint32_t id = mp_stacks_intern(f, n);
            if (round == 0)
                it->ids[k] = id;
            else if (id != it->ids[k] && !it->bad)
                it->bad = k + 1;
        }
    }
    return NULL;
}

typedef struct emitted_s {
    int *stop;
    uint32_t *count; /* by id */
    const uint64_t **frames;
    uint32_t *n;
    uint32_t cap;
    int overflow;
} emitted_t;

static void
take(emitted_t *e, uint32_t id, const uint64_t *f, uint32_t n) {
    if (id >= e->cap) {
        e->overflow = 1;
        return;
    }
    e->count[id]++;
    e->frames[id] = f;
    e->n[id] = n;
}

/* The writer's role, concurrently with the interners. */
static void *
emitter(void *arg) {
    emitted_t *e = arg;
    size_t cur = 0;
    uint32_t id, n;
    const uint64_t *f;
    for (;;) {
        int stopping = __atomic_load_n(e->stop, __ATOMIC_ACQUIRE);
        while (mp_stacks_next(&cur, &id, &f, &n)) take(e, id, f, n);
        if (stopping) break;
        sched_yield();
    }
    return NULL;
}

/* After the interning threads are done, given owner[id] != 0 for every id they were returned:
 *  - the concurrent emitter may have emitted extra entries: lost races (KNOWN BUG, below). Each
 *    must at least be a duplicate of an interned stack, never something made up;
 *  - a fresh pass, with every race settled, emits exactly the returned ids, once each. */
static void
check_emitted(const emitted_t *e, const uint32_t *owner, uint32_t want_total) {
    uint32_t extras = 0;
    for (uint32_t id = 0; id < e->cap; id++) {
        if (!e->count[id] || owner[id]) continue;
        extras += e->count[id];
        uint32_t winner = mp_stacks_intern(e->frames[id], e->n[id]);
        cr_assert(winner != id && winner < e->cap && owner[winner],
                  "emitted id %u is neither returned nor a duplicate of a returned stack", id);
    }
    static uint8_t again[1 << 20];
    cr_assert_lt(e->cap, sizeof again);
    memset(again, 0, e->cap);
    size_t cur = 0;
    uint32_t id, n, total = 0;
    const uint64_t *f;
    while (mp_stacks_next(&cur, &id, &f, &n)) {
        cr_assert_lt(id, e->cap);
        cr_assert_neq(owner[id], 0, "a settled pass emitted id %u, which nobody got", id);
        cr_assert_eq(again[id]++, 0, "a settled pass emitted id %u twice", id);
        total++;
    }
    cr_assert_eq(total, want_total);
    cr_log_info("  %u lost-race entries emitted while transiently valid", extras);
    /* KNOWN BUG (stacks.c, mp_stacks_intern): an entry is stored st_valid before its CAS into
     * the table; if the CAS is lost it is turned into a tombstone only afterwards, so a writer
     * scanning in between emits it: a STACK record with an id no event uses. Shows under TSan
     * (timing) in most runs. */
    cr_assert_eq(extras, 0, "tombstones were emitted as stacks");
}

Test(stacks, concurrent_interning_is_consistent, .timeout = 30) {
    init(1 << 16, 16 << 20);
    int go = 0, stop = 0;
    static interner_t its[NTHREADS];
    pthread_t th[NTHREADS], em;
    enum { cap = NSTACKS * NTHREADS + 2 };
    static uint32_t count[cap], ns[cap];
    static const uint64_t *frames[cap];
    emitted_t e = {&stop, count, frames, ns, cap, 0};
    for (int t = 0; t < NTHREADS; t++) {
        its[t].t = t;
        its[t].go = &go;
        cr_assert_eq(pthread_create(&th[t], NULL, interner, &its[t]), 0);
    }
    cr_assert_eq(pthread_create(&em, NULL, emitter, &e), 0);
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
    for (int t = 0; t < NTHREADS; t++) cr_assert_eq(pthread_join(th[t], NULL), 0);
    /* The emitter's last pass starts after every interner finished. */
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    cr_assert_eq(pthread_join(em, NULL), 0);
    cr_assert_eq(e.overflow, 0);

    /* One id per distinct stack across all threads, and distinct stacks have distinct ids. */
    static uint32_t owner[cap]; /* id -> k + 1 */
    uint64_t f[MAXLEN];
    uint32_t n;
    for (int k = 0; k < NSTACKS; k++) {
        uint32_t id = its[0].ids[k];
        cr_assert_geq(id, 1);
        cr_assert_lt(id, cap);
        for (int t = 0; t < NTHREADS; t++) {
            cr_assert_eq(its[t].bad, 0, "thread %d: id of stack %d changed", t, its[t].bad - 1);
            cr_assert_eq(its[t].ids[k], id, "stack %d: thread %d got %u, thread 0 got %u", k, t,
                         its[t].ids[k], id);
        }
        cr_assert_eq(owner[id], 0, "stacks %d and %d share id %u", (int)owner[id] - 1, k, id);
        owner[id] = (uint32_t)k + 1;
        /* Emitted exactly once, with the right frames. */
        cr_assert_eq(count[id], 1, "stack %d (id %u) emitted %u times", k, id, count[id]);
        stack_k(k, f, &n);
        cr_assert_eq(ns[id], n);
        cr_assert_eq(memcmp(frames[id], f, n * sizeof f[0]), 0);
    }
    check_emitted(&e, owner, NSTACKS);
    /* Ids are handed out before publication, so lost races show up as gaps. */
    uint32_t probe = INTERN(0xabcdef, 0x123456);
    cr_log_info("concurrent interning: %d stacks, %u tombstones", NSTACKS, probe - 1 - NSTACKS);
}

/* Lost publication races, provoked: all threads intern the same brand-new stack right after a
 * barrier, batch after batch. Losers must return the winner's id, and their entries (tombstones)
 * must never be emitted. */
#define RACERS 4
#define RACES 3000

typedef struct racer_s {
    int *arrived; /* barrier: count of threads arrived in the current generation */
    int *generation;
    uint32_t ids[RACES];
} racer_t;

static void
barrier_wait(int *arrived, int *generation) {
    int gen = __atomic_load_n(generation, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(arrived, 1, __ATOMIC_ACQ_REL) == RACERS) {
        __atomic_store_n(arrived, 0, __ATOMIC_RELAXED);
        __atomic_store_n(generation, gen + 1, __ATOMIC_RELEASE);
    } else {
        /* Spin first (yielding at once would let the releasing thread win every race). */
        for (unsigned spins = 0; __atomic_load_n(generation, __ATOMIC_ACQUIRE) == gen; spins++)
            if (spins > 20000) sched_yield();
    }
}

static void
race_stack(int b, uint64_t *f, uint32_t *n) {
    *n = (uint32_t)(b % 5 + 1);
    for (uint32_t j = 0; j < *n; j++) f[j] = 0x7f1200000000ull + (uint64_t)b * 0x100 + j;
}

static void *
racer(void *arg) {
    racer_t *r = arg;
    uint64_t f[8];
    uint32_t n;
    for (int b = 0; b < RACES; b++) {
        race_stack(b, f, &n);
        barrier_wait(r->arrived, r->generation);
        r->ids[b] = mp_stacks_intern(f, n);
    }
    return NULL;
}

Test(stacks, racing_on_the_same_new_stack_gives_one_id, .timeout = 30) {
    init(1 << 14, 4 << 20);
    int arrived = 0, generation = 0, stop = 0;
    static racer_t rs[RACERS];
    enum { cap = RACES * RACERS + 2 };
    static uint32_t count[cap], ns[cap];
    static const uint64_t *frames[cap];
    emitted_t e = {&stop, count, frames, ns, cap, 0};
    pthread_t th[RACERS], em;
    cr_assert_eq(pthread_create(&em, NULL, emitter, &e), 0);
    for (int t = 0; t < RACERS; t++) {
        rs[t].arrived = &arrived;
        rs[t].generation = &generation;
        cr_assert_eq(pthread_create(&th[t], NULL, racer, &rs[t]), 0);
    }
    for (int t = 0; t < RACERS; t++) cr_assert_eq(pthread_join(th[t], NULL), 0);
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    cr_assert_eq(pthread_join(em, NULL), 0);
    cr_assert_eq(e.overflow, 0);
    uint64_t f[8];
    uint32_t n;
    static uint32_t owner[cap];
    for (int b = 0; b < RACES; b++) {
        uint32_t id = rs[0].ids[b];
        cr_assert_geq(id, 1);
        cr_assert_lt(id, cap);
        cr_assert_eq(owner[id], 0, "races %d and %d share id %u", (int)owner[id] - 1, b, id);
        owner[id] = (uint32_t)b + 1;
        for (int t = 1; t < RACERS; t++)
            cr_assert_eq(rs[t].ids[b], id, "race %d: thread %d got %u, thread 0 got %u", b, t,
                         rs[t].ids[b], id);
        cr_assert_eq(count[id], 1, "race %d: id %u emitted %u times", b, id, count[id]);
        race_stack(b, f, &n);
        cr_assert_eq(ns[id], n);
        cr_assert_eq(memcmp(frames[id], f, n * sizeof f[0]), 0);
    }
    check_emitted(&e, owner, RACES);
    uint32_t probe = INTERN(0xabcdef, 0x123456);
    cr_log_info("racing: %d races, %u lost (tombstones)", RACES, probe - 1 - RACES);
}

/* ---- fork ----------------------------------------------------------------------------------- */

typedef struct visit_s {
    uint32_t ids[16];
    uint32_t n[16];
    uint64_t first[16];
    int k;
} visit_t;

static void
visit(void *ctx, uint32_t id, const uint64_t *frames, uint32_t n) {
    visit_t *v = ctx;
    if (v->k < 16) {
        v->ids[v->k] = id;
        v->n[v->k] = n;
        v->first[v->k] = frames[0];
    }
    v->k++;
}

static int
visited(const visit_t *v, uint32_t id, uint32_t n, uint64_t first) {
    int hits = 0;
    for (int i = 0; i < v->k && i < 16; i++)
        hits += v->ids[i] == id && v->n[i] == n && v->first[i] == first;
    return hits;
}

Test(stacks, fork_barrier_and_each_published) {
    init(1024, 1 << 20);
    uint32_t a = INTERN(100, 1), b = INTERN(200), c = INTERN(300, 3, 3);
    INTERN(200); /* lookups add nothing */
    size_t barrier = mp_stacks_fork_barrier();
    uint32_t d = INTERN(400, 4); /* after the barrier: not visited */
    visit_t v = {.k = 0};
    mp_stacks_each_published(barrier, visit, &v);
    cr_assert_eq(v.k, 3);
    cr_assert_eq(visited(&v, a, 2, 100), 1);
    cr_assert_eq(visited(&v, b, 1, 200), 1);
    cr_assert_eq(visited(&v, c, 3, 300), 1);
    cr_assert_eq(visited(&v, d, 2, 400), 0);
    /* Scanning from the barrier continues with exactly the later stacks. */
    size_t cur = barrier;
    uint32_t out[4];
    cr_assert_eq(drain(&cur, out, 4), 1);
    cr_assert_eq(out[0], d);
    /* below = 0: nothing. */
    visit_t none = {.k = 0};
    mp_stacks_each_published(0, visit, &none);
    cr_assert_eq(none.k, 0);
}

Test(stacks, each_published_skips_unpublished_entries_below_the_barrier) {
    init(1024, 1 << 20);
    uint32_t a = INTERN(1), b = INTERN(2, 2);
    size_t cur = 0;
    uint32_t id, n;
    const uint64_t *f, *fa = NULL;
    while (mp_stacks_next(&cur, &id, &f, &n))
        if (id == a) fa = f;
    /* a's entry looks unfinished to the iterator; each_published goes by the table and still
     * emits it (published entries are complete by construction), and only once. */
    __atomic_store_n(state_of(fa), 0u, __ATOMIC_RELEASE);
    visit_t v = {.k = 0};
    mp_stacks_each_published(mp_stacks_fork_barrier(), visit, &v);
    cr_assert_eq(v.k, 2);
    cr_assert_eq(visited(&v, a, 1, 1), 1);
    cr_assert_eq(visited(&v, b, 2, 2), 1);
}

Test(stacks, real_fork_child_emits_published_then_continues) {
    init(1024, 1 << 20);
    uint32_t a = INTERN(7, 7), b = INTERN(8);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* Child: failures go to the exit status (no Criterion asserts here). */
        size_t barrier = mp_stacks_fork_barrier();
        visit_t v = {.k = 0};
        mp_stacks_each_published(barrier, visit, &v);
        int bad = v.k != 2 || visited(&v, a, 2, 7) != 1 || visited(&v, b, 1, 8) != 1;
        bad |= INTERN(7, 7) != a; /* the parent's ids stay valid in the child */
        uint32_t c = INTERN(9, 9, 9);
        bad |= c == 0 || c == a || c == b;
        size_t cur = barrier;
        uint32_t id, n;
        const uint64_t *f;
        bad |= !mp_stacks_next(&cur, &id, &f, &n) || id != c || n != 3;
        bad |= mp_stacks_next(&cur, &id, &f, &n);
        _exit(bad ? 1 : 0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child checks failed");
    /* The child's new stack does not exist in the parent. */
    size_t cur = 0;
    uint32_t out[4];
    cr_assert_eq(drain(&cur, out, 4), 2);
}

/* ---- regressions: bugs these tests found, since fixed ---------------------------------
 */

/* A slot holds (tag << 40 | arena offset) and 0 means empty. The first entry sits at offset 0,
 * so if its hash has tag 0 the published slot is 0 again: the stack is invisible, the next
 * intern of the same stack builds a second entry and returns another id, and
 * mp_stacks_each_published never reports it. Frame 0x347b208 alone hashes to 0x000000c138a6c170
 * (top 24 bits zero) with hash_frames() of stacks.c as of this writing. */
Test(stacks, first_stack_with_zero_hash_tag) {
    init(1024, 1 << 20);
    uint32_t a = INTERN(0x347b208);
    cr_assert_eq(INTERN(0x347b208), a, "equal stacks got different ids");
    visit_t v = {.k = 0};
    mp_stacks_each_published(mp_stacks_fork_barrier(), visit, &v);
    cr_assert_eq(v.k, 1, "published stack not visited");
}

/* ---- the arena's advice (sys.c mp_sys_advise_huge) ---------------------------------------- */

/* The "THPeligible:" value of the smaps entry holding p, or -1 if there is none. */
static int
thp_eligible(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f);
    char line[512];
    int in = 0, v = -1;
    while (v < 0 && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (in && strncmp(line, "THPeligible:", 12) == 0)
            v = atoi(line + 12);
    }
    fclose(f);
    return v;
}

/* Whether the system gives transparent huge pages on request (mode "always" or "madvise"); mode
 * gets its mode line ("always [madvise] never"), or "" if there is none. */
static int
thp_on_request(char *mode, size_t n) {
    mode[0] = 0;
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(mode, (int)n, f)) mode[0] = 0;
        fclose(f);
    }
    return strstr(mode, "[always]") || strstr(mode, "[madvise]");
}

Test(stacks, arena_advice_makes_its_aligned_part_eligible_for_huge_pages) {
    size_t n = 8u << 20;
    uint8_t *a = mp_sys_map(n);
    cr_assert_not_null(a);
    mp_sys_advise_huge(a, n);
    uint8_t *aligned = (uint8_t *)(((uintptr_t)a + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
    aligned[0] = 1;
    a[n - 1] = 2; /* all of it is mapped and writable */
    cr_assert_eq(aligned[0] + a[n - 1], 3);
    /* The advice takes where the system offers huge pages on request: "always" or "madvise". */
    char mode[128];
    if (thp_on_request(mode, sizeof mode))
        cr_assert_eq(thp_eligible(aligned), 1, "THP mode %s but the arena is not eligible", mode);
    else
        cr_log_info("transparent huge pages are %s: eligibility not checked",
                    mode[0] ? mode : "absent");
}
