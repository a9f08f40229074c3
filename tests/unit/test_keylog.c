/* test_keylog.c - the memo's key log (preload/keylog.h): an entry said to hold is intact, entries
 * never wrap, holding ends where it must, and the sweep is asked for at every 2^30 words, across
 * the 32-bit wrap of positions too. The memo's use of it runs in e2e.py_deep. */
#include <criterion/criterion.h>

#include <stdlib.h>

#include "keylog.h"

static mp_keylog_t log_;

typedef struct {
    uint32_t pos, len;
    uint64_t seed;
} entry_t;

static uint64_t
word(uint64_t seed, uint32_t i) {
    uint64_t x = (seed + i) * 0x9e3779b97f4a7c15ull;
    return x ^ x >> 29;
}

/* Append entries of lengths from 1 to 256 words from head start on, each filled with words of
 * its own; after every append, every entry said to hold must read back whole. */
static void
run(uint64_t start, uint32_t appends) {
    log_.head = start;
    enum { KEEP = 4096 };
    static entry_t e[KEEP];
    uint32_t n = 0, sweeps = 0;
    srand(1);
    for (uint32_t k = 0; k < appends; k++) {
        uint32_t len = 1 + (uint32_t)rand() % 256, pos;
        uint64_t before = log_.head;
        int sweep;
        uint64_t *w = mp_keylog_append(&log_, len, &pos, &sweep);
        cr_assert_geq(log_.head, before + len);
        cr_assert_leq((size_t)(w - log_.words) + len, MP_KEYLOG_WORDS, "an entry wraps");
        cr_assert_eq(w, mp_keylog_at(&log_, pos));
        cr_assert_eq(sweep, (int)(log_.head / MP_KEYLOG_SWEEP != before / MP_KEYLOG_SWEEP));
        sweeps += (uint32_t)sweep;
        uint64_t seed = (uint64_t)k << 20;
        for (uint32_t i = 0; i < len; i++) w[i] = word(seed, i);
        cr_assert(mp_keylog_holds(&log_, pos), "a new entry does not hold");
        e[n % KEEP] = (entry_t){pos, len, seed};
        n++;
        if (k % 4 != 0 && k + 1 != appends) continue;
        uint32_t held = 0;
        for (uint32_t j = 0; j < (n < KEEP ? n : KEEP); j++) {
            if (!mp_keylog_holds(&log_, e[j].pos)) continue;
            held++;
            const uint64_t *r = mp_keylog_at(&log_, e[j].pos);
            int intact = 1;
            for (uint32_t i = 0; i < e[j].len; i++) intact &= r[i] == word(e[j].seed, i);
            cr_assert(intact, "append %u: the entry at %u holds but was overwritten", k, e[j].pos);
        }
        /* 1 MiB of entries of 128 words on average: some 1000 of them hold. */
        if (n > 2000) cr_assert_gt(held, 700);
    }
    cr_assert_eq(sweeps, (uint32_t)(log_.head / MP_KEYLOG_SWEEP - start / MP_KEYLOG_SWEEP));
}

Test(keylog, what_holds_is_intact) {
    run(0, 3000);
}

Test(keylog, across_the_32_bit_wrap_of_positions) {
    /* The head crosses 2^32 (and a sweep point with it) in the middle of the run. */
    run((1ull << 32) - 1500 * 128, 3000);
}

Test(keylog, an_old_entry_stops_holding) {
    log_.head = 100;
    uint32_t pos;
    int sweep;
    mp_keylog_append(&log_, 10, &pos, &sweep);
    cr_assert_eq(pos, 100);
    log_.head = 100 + MP_KEYLOG_WORDS;
    cr_assert(mp_keylog_holds(&log_, pos), "all of the circle since: its words are still there");
    log_.head++;
    cr_assert_not(mp_keylog_holds(&log_, pos));
}

Test(keylog, sweep_at_every_2_to_the_30) {
    uint32_t pos;
    int sweep;
    log_.head = MP_KEYLOG_SWEEP - 8;
    mp_keylog_append(&log_, 4, &pos, &sweep);
    cr_assert_not(sweep);
    mp_keylog_append(&log_, 4, &pos, &sweep);
    cr_assert(sweep, "the head reaches the multiple");
    mp_keylog_append(&log_, 1, &pos, &sweep);
    cr_assert_not(sweep);
}
