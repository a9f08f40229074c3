/* test_ring.c - the per-thread event rings (preload/ring.c, ring.h).
 *
 * Every Test() runs in its own forked process (Criterion's default), so the ring registry starts
 * empty in each; fresh() checks that. Threaded tests synchronize only through __atomic builtins
 * and pthread_join, so they are meaningful under ThreadSanitizer too.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

#define CAP ((uint64_t)MP_RING_CAPACITY)

/* ---- helpers ----------------------------------------------------------------------------- */

static int kicks; /* mp_ring_kick calls (atomic) */

static void
count_kick(void) {
    __atomic_fetch_add(&kicks, 1, __ATOMIC_RELAXED);
}

static void
fresh(void) {
    cr_assert_null(mp_ring_first(), "ring tests need a fresh process (do not use --no-fork)");
    mp_ring_kick = count_kick;
}

static mp_rec_t
event(uint64_t seq, uint64_t who) {
    mp_rec_t r;
    memset(&r, 0, sizeof r);
    r.seq = seq;
    r.ptr = seq * 16 + 0x1000;
    r.size = who;
    r.stack = (uint32_t)(seq % 1000);
    r.type = mp_rec_event;
    r.head = (uint8_t)(seq & 0xff);
    return r;
}

/* Hot loops compare cheaply and only call into Criterion on a mismatch. */
static void
check_event(const mp_rec_t *r, uint64_t seq, uint64_t who) {
    mp_rec_t want = event(seq, who);
    if (r->type != want.type || r->seq != want.seq || r->size != want.size || r->ptr != want.ptr ||
        r->stack != want.stack || r->head != want.head)
        cr_assert_fail("record: type %u seq %llu who %llu; want seq %llu who %llu", r->type,
                       (unsigned long long)r->seq, (unsigned long long)r->size,
                       (unsigned long long)seq, (unsigned long long)who);
}

static uint64_t
now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Drain everything ready in r, checking it continues the sequence *next of producer who. */
static uint64_t
drain_checked(mp_ring_t *r, uint64_t *next, uint64_t who) {
    uint64_t t = r->tail, h = mp_ring_ready(r);
    for (uint64_t i = t; i < h; i++) check_event(&r->slots[i & r->mask], (*next)++, who);
    mp_ring_consume(r, h);
    return h - t;
}

/* ---- claiming ---------------------------------------------------------------------------- */

Test(ring, claim_maps_new_rings_in_stream_order) {
    fresh();
    mp_ring_t *a = mp_ring_claim(), *b = mp_ring_claim(), *c = mp_ring_claim();
    cr_assert(a && b && c);
    cr_assert(a != b && b != c && a != c);
    cr_assert_eq(a->stream, 0);
    cr_assert_eq(b->stream, 1);
    cr_assert_eq(c->stream, 2);
    mp_ring_t *rs[] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rs[i]->state, mp_ring_owned);
        cr_assert_eq(rs[i]->mask, CAP - 1);
        cr_assert_eq(rs[i]->head, 0);
        cr_assert_eq(rs[i]->tail, 0);
        cr_assert_eq((uintptr_t)rs[i] % 64, 0, "ring header not cache-line aligned");
    }
    /* The registry holds each ring exactly once. */
    int seen[3] = {0, 0, 0}, n = 0;
    for (mp_ring_t *r = mp_ring_first(); r; r = r->next, n++) {
        cr_assert_lt(r->stream, 3);
        seen[r->stream]++;
    }
    cr_assert_eq(n, 3);
    cr_assert(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
}

/* ---- single thread: wrap-around and kicks ------------------------------------------------ */

Test(ring, wraps_at_capacity) {
    fresh();
    mp_ring_t *r = mp_ring_claim();
    cr_assert_not_null(r);
    const int never = 0;
    uint64_t pushed = 0, next = 0;
    /* Batches that do not divide the capacity, so the fill level wanders over every slot
     * boundary; about 40 times the capacity in all. */
    static const unsigned batch[] = {1, 7, 1000, 8191, 8192, 5000, 3333, 2, 8190};
    for (int round = 0; pushed < 40 * CAP; round++) {
        unsigned n = batch[round % (sizeof batch / sizeof batch[0])];
        for (unsigned i = 0; i < n; i++, pushed++) {
            mp_rec_t e = event(pushed, 7);
            cr_assert_eq(mp_ring_push(r, &e, &never), 0);
        }
        cr_assert_eq(mp_ring_ready(r) - r->tail, n);
        cr_assert_eq(drain_checked(r, &next, 7), n);
    }
    cr_assert_eq(next, pushed);
    cr_assert_eq(r->head, pushed);
    cr_assert_eq(r->tail, pushed);
}

Test(ring, fills_every_slot_then_drains_repeatedly) {
    fresh();
    mp_ring_t *r = mp_ring_claim();
    const int never = 0;
    uint64_t seq = 0, next = 0;
    /* Start at an odd offset so each fill wraps in the middle of the slot array. */
    for (int i = 0; i < 3; i++, seq++) {
        mp_rec_t e = event(seq, 1);
        mp_ring_push(r, &e, &never);
    }
    drain_checked(r, &next, 1);
    for (int round = 0; round < 10; round++) {
        for (uint64_t i = 0; i < CAP; i++, seq++) {
            mp_rec_t e = event(seq, 1);
            cr_assert_eq(mp_ring_push(r, &e, &never), 0); /* exactly CAP fit, no waiting */
        }
        cr_assert_eq(drain_checked(r, &next, 1), CAP);
    }
    cr_assert_eq(next, seq);
}

Test(ring, a_drained_ring_never_kicks_the_writer) {
    fresh();
    mp_ring_t *r = mp_ring_claim();
    const int never = 0;
    uint64_t next = 0;
    for (uint64_t i = 0; i < 4 * CAP; i++) {
        mp_rec_t e = event(i, 3);
        mp_ring_push(r, &e, &never);
        if ((i + 1) % 1000 == 0) drain_checked(r, &next, 3);
    }
    cr_assert_eq(__atomic_load_n(&kicks, __ATOMIC_RELAXED), 0);
}

Test(ring, kicks_the_writer_from_half_full) {
    fresh();
    mp_ring_t *r = mp_ring_claim();
    const int never = 0;
    uint64_t i = 0;
    for (; i < CAP / 2 - 1; i++) {
        mp_rec_t e = event(i, 4);
        mp_ring_push(r, &e, &never);
    }
    cr_assert_eq(__atomic_load_n(&kicks, __ATOMIC_RELAXED), 0);
    for (; i < CAP; i++) {
        mp_rec_t e = event(i, 4);
        mp_ring_push(r, &e, &never);
    }
    /* One kick at each multiple of MP_RING_KICK_EVERY from CAP / 2 to CAP. */
    cr_assert_eq(__atomic_load_n(&kicks, __ATOMIC_RELAXED), CAP / 2 / MP_RING_KICK_EVERY + 1);
}

/* ---- full ring ----------------------------------------------------------------------------- */

Test(ring, full_with_abandon_set_returns_minus_one) {
    fresh();
    mp_ring_t *r = mp_ring_claim();
    const int abandon = 1; /* set from the start: a non-full ring must still accept records */
    for (uint64_t i = 0; i < CAP; i++) {
        mp_rec_t e = event(i, 2);
        cr_assert_eq(mp_ring_push(r, &e, &abandon), 0);
    }
    int before = __atomic_load_n(&kicks, __ATOMIC_RELAXED);
    mp_rec_t extra = event(999999, 9);
    cr_assert_eq(mp_ring_push(r, &extra, &abandon), -1);
    cr_assert_eq(mp_ring_push(r, &extra, &abandon), -1);
    cr_assert_gt(__atomic_load_n(&kicks, __ATOMIC_RELAXED), before, "a full ring kicks the writer");
    /* Nothing was pushed and nothing was overwritten. */
    cr_assert_eq(mp_ring_ready(r), CAP);
    uint64_t next = 0;
    cr_assert_eq(drain_checked(r, &next, 2), CAP);
    /* Space again: the same ring accepts records. */
    cr_assert_eq(mp_ring_push(r, &extra, &abandon), 0);
    cr_assert_eq(mp_ring_ready(r), CAP + 1);
    cr_assert_eq(r->slots[CAP & r->mask].seq, 999999);
}

typedef struct late_consumer_s {
    mp_ring_t *ring;
    unsigned delay_ms;
    uint64_t expect;   /* records to drain */
    uint64_t start_ns; /* when draining began (written before the first consume) */
    int bad;           /* first out-of-order seq + 1, or 0 */
} late_consumer_t;

static void *
late_consumer(void *arg) {
    late_consumer_t *c = arg;
    sleep_ms(c->delay_ms);
    __atomic_store_n(&c->start_ns, now_ns(), __ATOMIC_RELEASE);
    uint64_t next = 0;
    while (next < c->expect) {
        mp_ring_t *r = c->ring;
        uint64_t t = r->tail, h = mp_ring_ready(r);
        for (uint64_t i = t; i < h; i++, next++) {
            const mp_rec_t *rec = &r->slots[i & r->mask];
            if (rec->seq != next && !c->bad) c->bad = (int)next + 1;
        }
        mp_ring_consume(r, h);
        if (t == h) sleep_ms(1);
    }
    return NULL;
}

Test(ring, full_ring_waits_for_the_consumer, .timeout = 30) {
    fresh();
    mp_ring_t *r = mp_ring_claim();
    const int abandon = 0;
    late_consumer_t c = {r, 300, 3 * CAP + 5, 0, 0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, late_consumer, &c), 0);
    uint64_t t0 = now_ns(), full_at = 0;
    for (uint64_t i = 0; i < c.expect; i++) {
        mp_rec_t e = event(i, 0);
        if (i == CAP) full_at = now_ns();
        cr_assert_eq(mp_ring_push(r, &e, &abandon), 0); /* never gives up: abandon stays 0 */
        if (i == CAP) {
            /* The push of record CAP could only complete after the consumer started. */
            uint64_t started = __atomic_load_n(&c.start_ns, __ATOMIC_ACQUIRE);
            cr_assert_neq(started, 0, "push into a full ring returned before any drain");
            cr_assert_geq(now_ns() - t0, 250 * 1000000ull);
        }
    }
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(c.bad, 0, "record %d out of order", c.bad - 1);
    cr_assert_gt(full_at, 0);
    cr_assert_gt(__atomic_load_n(&kicks, __ATOMIC_RELAXED), 0);
    cr_assert_eq(r->tail, c.expect);
}

typedef struct late_abandon_s {
    int *flag;
    unsigned delay_ms;
} late_abandon_t;

static void *
set_flag_late(void *arg) {
    late_abandon_t *a = arg;
    sleep_ms(a->delay_ms);
    __atomic_store_n(a->flag, 1, __ATOMIC_RELEASE);
    return NULL;
}

Test(ring, abandon_ends_a_wait_in_progress, .timeout = 30) {
    fresh();
    mp_ring_t *r = mp_ring_claim();
    int abandon = 0;
    for (uint64_t i = 0; i < CAP; i++) {
        mp_rec_t e = event(i, 4);
        cr_assert_eq(mp_ring_push(r, &e, &abandon), 0);
    }
    late_abandon_t a = {&abandon, 200};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, set_flag_late, &a), 0);
    uint64_t t0 = now_ns();
    mp_rec_t extra = event(CAP, 4);
    cr_assert_eq(mp_ring_push(r, &extra, &abandon), -1);
    cr_assert_geq(now_ns() - t0, 150 * 1000000ull, "gave up before abandon was set");
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(mp_ring_ready(r), CAP);
}

/* ---- many producers, one consumer ------------------------------------------------------------ */

#define NPROD 6
#define PER_PROD 1000000ull

typedef struct producer_s {
    int id;
    int *go;
    int failed; /* a push returned nonzero */
} producer_t;

static void *
producer(void *arg) {
    producer_t *p = arg;
    while (!__atomic_load_n(p->go, __ATOMIC_ACQUIRE)) sched_yield();
    mp_ring_t *r = mp_ring_claim();
    if (!r) {
        p->failed = 1;
        return NULL;
    }
    const int never = 0;
    mp_rec_t own;
    memset(&own, 0, sizeof own);
    own.type = mp_rec_owner;
    own.size = (uint64_t)p->id;
    if (mp_ring_push(r, &own, &never) != 0) p->failed = 1;
    for (uint64_t s = 0; s < PER_PROD; s++) {
        mp_rec_t e = event(s, (uint64_t)p->id);
        if (mp_ring_push(r, &e, &never) != 0) p->failed = 1;
    }
    return NULL;
}

Test(ring, many_producers_one_consumer, .timeout = 30) {
    fresh();
    mp_ring_kick = count_kick;
    int go = 0;
    producer_t prods[NPROD];
    pthread_t th[NPROD];
    for (int i = 0; i < NPROD; i++) {
        prods[i] = (producer_t){i, &go, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, producer, &prods[i]), 0);
    }
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);

    /* The consumer (this thread) walks the registry as the writer does. Per stream: the owning
     * producer (from its OWNER record, -1 before) and the next sequence number expected. */
    int owner[NPROD];
    uint64_t next[NPROD] = {0};
    int owner_seen[NPROD] = {0};
    for (int i = 0; i < NPROD; i++) owner[i] = -1;
    uint64_t total = 0, want = NPROD * (PER_PROD + 1);
    while (total < want) {
        uint64_t got = 0;
        for (mp_ring_t *r = mp_ring_first(); r; r = r->next) {
            cr_assert_lt(r->stream, NPROD, "more rings than producers");
            uint64_t t = r->tail, h = mp_ring_ready(r);
            for (uint64_t i = t; i < h; i++) {
                const mp_rec_t *rec = &r->slots[i & r->mask];
                int *o = &owner[r->stream];
                if (rec->type == mp_rec_owner) {
                    cr_assert_eq(*o, -1, "second OWNER record in stream %u", r->stream);
                    cr_assert_lt(rec->size, NPROD);
                    *o = (int)rec->size;
                    cr_assert_eq(owner_seen[*o]++, 0, "producer %d owns two rings", *o);
                    continue;
                }
                if (*o == -1) cr_assert_fail("event before the OWNER record");
                check_event(rec, next[*o]++, (uint64_t)*o);
            }
            mp_ring_consume(r, h);
            got += h - t;
        }
        total += got;
        if (!got) sched_yield();
    }
    for (int i = 0; i < NPROD; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_assert_eq(prods[i].failed, 0);
        cr_assert_eq(next[i], PER_PROD, "producer %d: %llu records", i,
                     (unsigned long long)next[i]);
    }
    /* Nothing left over anywhere. */
    for (mp_ring_t *r = mp_ring_first(); r; r = r->next) cr_assert_eq(mp_ring_ready(r), r->tail);
}

/* Threads come and go: each lifetime claims a ring, announces itself, pushes, releases. The
 * consumer checks per-owner order across reused rings, concurrently with the churn. */
#define CHURN_THREADS 4
#define CHURN_LIVES 150
#define CHURN_EVENTS 3000ull

typedef struct churn_s {
    int worker;
    int failed;
} churn_t;

static void *
churner(void *arg) {
    churn_t *c = arg;
    const int never = 0;
    for (int life = 0; life < CHURN_LIVES; life++) {
        uint64_t who = (uint64_t)(c->worker * CHURN_LIVES + life);
        mp_ring_t *r = mp_ring_claim();
        if (!r) {
            c->failed = 1;
            return NULL;
        }
        mp_rec_t own;
        memset(&own, 0, sizeof own);
        own.type = mp_rec_owner;
        own.size = who;
        c->failed |= mp_ring_push(r, &own, &never) != 0;
        for (uint64_t s = 0; s < CHURN_EVENTS; s++) {
            mp_rec_t e = event(s, who);
            c->failed |= mp_ring_push(r, &e, &never) != 0;
        }
        mp_ring_release(r);
    }
    return NULL;
}

Test(ring, claim_release_churn_keeps_order, .timeout = 30) {
    fresh();
    enum { owners = CHURN_THREADS * CHURN_LIVES, max_streams = 64 };
    static uint64_t next[owners];
    static int done[owners];
    int cur[max_streams];
    for (int i = 0; i < max_streams; i++) cur[i] = -1;
    churn_t cs[CHURN_THREADS];
    pthread_t th[CHURN_THREADS];
    for (int i = 0; i < CHURN_THREADS; i++) {
        cs[i] = (churn_t){i, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, churner, &cs[i]), 0);
    }
    uint64_t total = 0, want = owners * (CHURN_EVENTS + 1);
    while (total < want) {
        uint64_t got = 0;
        for (mp_ring_t *r = mp_ring_first(); r; r = r->next) {
            cr_assert_lt(r->stream, max_streams, "rings are not being reused");
            uint64_t t = r->tail, h = mp_ring_ready(r);
            for (uint64_t i = t; i < h; i++) {
                const mp_rec_t *rec = &r->slots[i & r->mask];
                int *o = &cur[r->stream];
                if (rec->type == mp_rec_owner) {
                    /* The previous owner of this ring must have finished before. */
                    if (*o >= 0) cr_assert_eq(next[*o], CHURN_EVENTS);
                    cr_assert_lt(rec->size, owners);
                    *o = (int)rec->size;
                    cr_assert_eq(done[*o]++, 0, "owner %d announced twice", *o);
                    continue;
                }
                if (*o < 0) cr_assert_fail("event before the OWNER record");
                check_event(rec, next[*o]++, (uint64_t)*o);
            }
            mp_ring_consume(r, h);
            got += h - t;
        }
        total += got;
        if (!got) sched_yield();
    }
    int rings = 0;
    for (mp_ring_t *r = mp_ring_first(); r; r = r->next) rings++;
    for (int i = 0; i < CHURN_THREADS; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_assert_eq(cs[i].failed, 0);
    }
    for (int o = 0; o < owners; o++) cr_assert_eq(next[o], CHURN_EVENTS, "owner %d", o);
    cr_log_info("churn: %d lifetimes on %d rings", owners, rings);
    cr_assert_lt(rings, owners / 4, "released rings are not being reused (%d rings)", rings);
}

/* ---- release and reuse ----------------------------------------------------------------------- */

Test(ring, claim_reuses_a_released_ring_with_its_pending_records) {
    fresh();
    const int never = 0;
    mp_ring_t *a = mp_ring_claim();
    mp_ring_t *b = mp_ring_claim();
    for (uint64_t i = 0; i < 10; i++) {
        mp_rec_t e = event(i, 11);
        mp_ring_push(a, &e, &never);
    }
    mp_ring_release(a);
    cr_assert_eq(a->state, mp_ring_free);
    cr_assert_eq(mp_ring_ready(a), 10, "release must keep pending records");

    mp_ring_t *again = mp_ring_claim();
    cr_assert_eq(again, a, "claim did not reuse the released ring");
    cr_assert_eq(again->state, mp_ring_owned);
    cr_assert_eq(again->stream, 0, "a reused ring keeps its stream id");
    /* The new owner appends after the old owner's records. */
    for (uint64_t i = 10; i < 15; i++) {
        mp_rec_t e = event(i, 11);
        mp_ring_push(again, &e, &never);
    }
    uint64_t next = 0;
    cr_assert_eq(drain_checked(again, &next, 11), 15);

    /* No free ring left: the next claim maps a new one. */
    mp_ring_t *c = mp_ring_claim();
    cr_assert(c != a && c != b);
    cr_assert_eq(c->stream, 2);
}

Test(ring, reused_full_ring_still_waits_for_the_consumer) {
    fresh();
    const int never = 0, abandon = 1;
    mp_ring_t *a = mp_ring_claim();
    for (uint64_t i = 0; i < CAP; i++) {
        mp_rec_t e = event(i, 5);
        mp_ring_push(a, &e, &never);
    }
    mp_ring_release(a);
    mp_ring_t *b = mp_ring_claim();
    cr_assert_eq(b, a);
    /* The old owner filled it: the new owner must not overwrite undrained records. */
    mp_rec_t extra = event(CAP, 5);
    cr_assert_eq(mp_ring_push(b, &extra, &abandon), -1);
    uint64_t next = 0;
    cr_assert_eq(drain_checked(b, &next, 5), CAP);
    cr_assert_eq(mp_ring_push(b, &extra, &abandon), 0);
    cr_assert_eq(drain_checked(b, &next, 5), 1);
}

Test(ring, each_release_is_claimed_once) {
    fresh();
    mp_ring_t *r[4];
    for (int i = 0; i < 4; i++) r[i] = mp_ring_claim();
    mp_ring_release(r[1]);
    mp_ring_release(r[3]);
    mp_ring_t *x = mp_ring_claim(), *y = mp_ring_claim(), *z = mp_ring_claim();
    cr_assert((x == r[1] && y == r[3]) || (x == r[3] && y == r[1]));
    cr_assert_eq(z->stream, 4, "third claim after two releases maps a new ring");
    cr_assert_eq(r[1]->state, mp_ring_owned);
    cr_assert_eq(r[3]->state, mp_ring_owned);
}

/* ---- fork ------------------------------------------------------------------------------------ */

/* Three rings with pending records; one partly drained. */
static void
three_busy_rings(mp_ring_t *r[3]) {
    const int never = 0;
    for (int i = 0; i < 3; i++) {
        r[i] = mp_ring_claim();
        for (uint64_t s = 0; s < 100 + (uint64_t)i; s++) {
            mp_rec_t e = event(s, (uint64_t)i);
            mp_ring_push(r[i], &e, &never);
        }
    }
    mp_ring_consume(r[0], 40);
}

Test(ring, reset_after_fork_empties_every_ring_and_keeps_one) {
    fresh();
    mp_ring_t *r[3];
    three_busy_rings(r);
    mp_ring_release(r[2]);
    mp_ring_reset_after_fork(r[1]);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r[i]->head, 0);
        cr_assert_eq(r[i]->tail, 0);
        cr_assert_eq(r[i]->tail_cache, 0);
        cr_assert_eq(mp_ring_ready(r[i]), 0);
        cr_assert_eq(r[i]->state, i == 1 ? mp_ring_owned : mp_ring_free);
        cr_assert_eq(r[i]->stream, (uint32_t)i, "streams keep their ids");
    }
    /* The kept ring takes a full ring's worth again from slot 0. */
    const int abandon = 1;
    uint64_t next = 0;
    for (uint64_t s = 0; s < CAP; s++) {
        mp_rec_t e = event(s, 1);
        cr_assert_eq(mp_ring_push(r[1], &e, &abandon), 0);
    }
    cr_assert_eq(drain_checked(r[1], &next, 1), CAP);
    /* The two freed rings are claimed before any new one is mapped. */
    mp_ring_t *x = mp_ring_claim(), *y = mp_ring_claim(), *z = mp_ring_claim();
    cr_assert((x == r[0] && y == r[2]) || (x == r[2] && y == r[0]));
    cr_assert_eq(z->stream, 3);
}

Test(ring, reset_after_fork_without_keep_frees_all) {
    fresh();
    mp_ring_t *r[3];
    three_busy_rings(r);
    mp_ring_reset_after_fork(NULL);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r[i]->state, mp_ring_free);
        cr_assert_eq(mp_ring_ready(r[i]), 0);
    }
}

Test(ring, real_fork_child_resets_parent_keeps_its_records) {
    fresh();
    mp_ring_t *r[3];
    three_busy_rings(r);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* Child: report failures through the exit status (no Criterion asserts here). */
        mp_ring_reset_after_fork(r[0]);
        int bad = 0;
        for (int i = 0; i < 3; i++) {
            bad |= r[i]->head != 0 || r[i]->tail != 0;
            bad |= r[i]->state != (i == 0 ? (uint32_t)mp_ring_owned : (uint32_t)mp_ring_free);
        }
        const int never = 0;
        mp_rec_t e = event(0, 0);
        bad |= mp_ring_push(r[0], &e, &never) != 0 || mp_ring_ready(r[0]) != 1;
        mp_ring_t *x = mp_ring_claim(), *y = mp_ring_claim();
        bad |= !((x == r[1] && y == r[2]) || (x == r[2] && y == r[1]));
        _exit(bad ? 1 : 0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child checks failed");
    /* The parent's rings are untouched by the child's reset. */
    for (int i = 0; i < 3; i++) {
        uint64_t next = i == 0 ? 40 : 0;
        cr_assert_eq(mp_ring_ready(r[i]), 100 + (uint64_t)i);
        cr_assert_eq(r[i]->state, mp_ring_owned);
        drain_checked(r[i], &next, (uint64_t)i);
        cr_assert_eq(next, 100 + (uint64_t)i);
    }
}
