/* test_model.c - report/model.c replay results, exactly: leaks, peak, unknown frees, realloc
 * failure reinstating, ordering across streams by seq, markers, timeline; a randomized replay
 * checked against a naive one; plus the JSON and text views and the symbolizer on this very
 * test binary. */
#include <criterion/criterion.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dumpgen.h"
#include "emit.h"
#include "model.h"
#include "symbolize.h"

static mp_model_t *
load(mp_dg_t *g, mp_at_t at) {
    mp_dg_flush(g);
    mp_reader_t *r = NULL;
    mp_err_t err;
    cr_assert_eq(mp_reader_open_mem(&r, g->buf, g->len, &err), 0);
    mp_model_t *m = NULL;
    mp_model_opts_t o = {.at = at};
    int rc = mp_model_build(&m, r, &o, &err);
    cr_assert_eq(rc, 0, "model: %s", err.msg);
    return m;
}

static const uint64_t fa[] = {0x1000, 0x2000};
static const uint64_t fb[] = {0x3000};

static void
stacks(mp_dg_t *g) {
    mp_dg_stack(g, 1, fa, 2);
    mp_dg_stack(g, 2, fb, 1);
}

Test(model, basic_leaks_and_totals) {
    mp_dg_t g;
    mp_dg_init(&g);
    stacks(&g);
    mp_dg_events_begin(&g, 0, 1);
    mp_dg_alloc(&g, 1, 0xa000, 100, 1, MP_ALLOC_MALLOC);
    mp_dg_alloc(&g, 2, 0xb000, 200, 2, MP_ALLOC_MALLOC);
    mp_dg_alloc(&g, 3, 0xc000, 300, 2, MP_ALLOC_MALLOC);
    mp_dg_free_ev(&g, 4, 0xa000, 0, MP_ALLOC_FREE);
    mp_dg_events_end(&g);
    mp_dg_marker(&g, MP_MARK_EXIT, 5, 1000);
    mp_dg_trailer(&g, 4, 3, 1, 600, 0, 2000000000, 5, 0);
    mp_model_t *m = load(&g, mp_at_default);
    const mp_summary_t *s = &m->summary;
    cr_assert_eq(s->total_allocations, 3);
    cr_assert_eq(s->total_frees, 1);
    cr_assert_eq(s->total_bytes, 600);
    cr_assert_eq(s->peak_bytes, 600);
    cr_assert_eq(s->peak_blocks, 3);
    cr_assert_eq(s->leaked_bytes, 500);
    cr_assert_eq(s->leaked_blocks, 2);
    cr_assert_eq(s->leaks_at, mp_at_exit);
    cr_assert_eq(s->unknown_frees, 0);
    cr_assert_eq(m->nleaks, 1);
    cr_assert_eq(m->leaks[0].stack, 2);
    cr_assert_eq(m->leaks[0].bytes, 500);
    cr_assert_eq(m->leaks[0].blocks, 2);
    cr_assert_eq(m->npeak, 2);
    cr_assert_eq(m->peak[0].stack, 2);
    cr_assert_eq(m->peak[0].bytes, 500);
    cr_assert_eq(m->peak[1].stack, 1);
    cr_assert_eq(m->peak[1].bytes, 100);
    cr_assert_not(m->incomplete);
    cr_assert_float_eq(m->duration, 2.0, 1e-9);
    const uint64_t *f;
    size_t n;
    cr_assert(mp_model_stack(m, 1, &f, &n));
    cr_assert_eq(n, 2);
    cr_assert_eq(f[1], 0x2000);
    cr_assert_not(mp_model_stack(m, 0, &f, &n));
    cr_assert_not(mp_model_stack(m, 99, &f, &n));
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(model, unknown_frees_are_ignored) {
    mp_dg_t g;
    mp_dg_init(&g);
    mp_dg_events_begin(&g, 0, 1);
    mp_dg_free_ev(&g, 1, 0x5000, 0, MP_ALLOC_FREE);
    mp_dg_alloc(&g, 2, 0x6000, 10, 0, MP_ALLOC_MALLOC);
    mp_dg_free_ev(&g, 3, 0x7000, 0, MP_ALLOC_FREE);
    mp_dg_free_ev(&g, 4, 0x6000, 0, MP_ALLOC_FREE);
    mp_dg_free_ev(&g, 5, 0x6000, 0, MP_ALLOC_FREE); /* double free: unknown by then */
    mp_dg_events_end(&g);
    mp_model_t *m = load(&g, mp_at_default);
    cr_assert_eq(m->summary.unknown_frees, 3);
    cr_assert_eq(m->summary.total_frees, 1);
    cr_assert_eq(m->summary.leaked_bytes, 0);
    cr_assert_eq(m->nleaks, 0);
    cr_assert_eq(m->summary.leaks_at, mp_at_end_of_data);
    cr_assert(m->incomplete);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(model, overlapping_alloc_replaces) {
    mp_dg_t g;
    mp_dg_init(&g);
    stacks(&g);
    mp_dg_events_begin(&g, 0, 1);
    mp_dg_alloc(&g, 1, 0x6000, 10, 1, MP_ALLOC_MALLOC);
    mp_dg_alloc(&g, 2, 0x6000, 30, 2, MP_ALLOC_MALLOC);
    mp_dg_events_end(&g);
    mp_model_t *m = load(&g, mp_at_default);
    cr_assert_eq(m->summary.overlapping_allocs, 1);
    cr_assert_eq(m->summary.leaked_bytes, 30);
    cr_assert_eq(m->summary.leaked_blocks, 1);
    cr_assert_eq(m->leaks[0].stack, 2);
    cr_assert_eq(m->summary.peak_bytes, 30);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(model, realloc_success_and_failure) {
    mp_dg_t g;
    mp_dg_init(&g);
    stacks(&g);
    mp_dg_events_begin(&g, 0, 1);
    /* p = malloc(100); realloc(p, 1<<40) fails: p is live again, unchanged. */
    mp_dg_alloc(&g, 1, 0xa000, 100, 1, MP_ALLOC_MALLOC);
    mp_dg_free_ev(&g, 2, 0xa000, 2, MP_ALLOC_REALLOC);
    mp_dg_realloc_fail(&g, 3, 0xa000);
    /* q = malloc(10); q2 = realloc(q, 50) succeeds at another address. */
    mp_dg_alloc(&g, 4, 0xb000, 10, 1, MP_ALLOC_MALLOC);
    mp_dg_free_ev(&g, 5, 0xb000, 2, MP_ALLOC_REALLOC);
    mp_dg_alloc(&g, 6, 0xc000, 50, 2, MP_ALLOC_REALLOC);
    /* A REALLOC_FAIL after that realloc returned cannot undo its FREE: nothing happens. */
    mp_dg_realloc_fail(&g, 7, 0xb000);
    mp_dg_events_end(&g);
    mp_model_t *m = load(&g, mp_at_default);
    const mp_summary_t *s = &m->summary;
    cr_assert_eq(s->leaked_bytes, 150);
    cr_assert_eq(s->leaked_blocks, 2);
    cr_assert_eq(s->total_frees, 1, "the failed realloc's free is undone");
    cr_assert_eq(s->total_allocations, 3);
    cr_assert_eq(m->nleaks, 2);
    cr_assert_eq(m->leaks[0].stack, 1, "the reinstated block keeps its stack");
    cr_assert_eq(m->leaks[0].bytes, 100);
    cr_assert_eq(m->leaks[1].stack, 2);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(model, realloc_fail_is_per_stream) {
    mp_dg_t g;
    mp_dg_init(&g);
    mp_dg_events_begin(&g, 0, 1);
    mp_dg_alloc(&g, 1, 0xa000, 100, 0, MP_ALLOC_MALLOC);
    mp_dg_free_ev(&g, 2, 0xa000, 0, MP_ALLOC_REALLOC);
    mp_dg_events_end(&g);
    mp_dg_events_begin(&g, 1, 3);
    mp_dg_realloc_fail(&g, 3, 0xa000); /* another thread: not the same realloc */
    mp_dg_events_end(&g);
    mp_model_t *m = load(&g, mp_at_default);
    cr_assert_eq(m->summary.leaked_bytes, 0);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(model, realloc_fail_peak) {
    /* Between the realloc's FREE and its failure another thread allocates: the reinstated
     * block makes a new peak. */
    mp_dg_t g;
    mp_dg_init(&g);
    mp_dg_events_begin(&g, 0, 1);
    mp_dg_alloc(&g, 1, 0xa000, 100, 0, MP_ALLOC_MALLOC);
    mp_dg_free_ev(&g, 2, 0xa000, 0, MP_ALLOC_REALLOC);
    mp_dg_realloc_fail(&g, 4, 0xa000);
    mp_dg_events_end(&g);
    mp_dg_events_begin(&g, 1, 3);
    mp_dg_alloc(&g, 3, 0xb000, 100, 0, MP_ALLOC_MALLOC);
    mp_dg_events_end(&g);
    mp_model_t *m = load(&g, mp_at_default);
    cr_assert_eq(m->summary.peak_bytes, 200);
    cr_assert_eq(m->summary.peak_blocks, 2);
    cr_assert_eq(m->npeak, 1);
    cr_assert_eq(m->peak[0].bytes, 200);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(model, cross_stream_order_by_seq) {
    /* Thread B's record comes first in the file, but thread A freed p (seq 5) before B got the
     * same address from malloc (seq 6). File order would free B's block; seq order is right. */
    mp_dg_t g;
    mp_dg_init(&g);
    stacks(&g);
    mp_dg_events_begin(&g, 1, 6);
    mp_dg_alloc(&g, 6, 0xa000, 64, 2, MP_ALLOC_MALLOC);
    mp_dg_events_end(&g);
    mp_dg_flush(&g);
    mp_dg_events_begin(&g, 0, 1);
    mp_dg_alloc(&g, 1, 0xa000, 32, 1, MP_ALLOC_MALLOC);
    mp_dg_free_ev(&g, 5, 0xa000, 0, MP_ALLOC_FREE);
    mp_dg_events_end(&g);
    mp_model_t *m = load(&g, mp_at_default);
    const mp_summary_t *s = &m->summary;
    cr_assert_eq(s->unknown_frees, 0);
    cr_assert_eq(s->overlapping_allocs, 0);
    cr_assert_eq(s->leaked_bytes, 64);
    cr_assert_eq(m->leaks[0].stack, 2);
    cr_assert_eq(s->peak_bytes, 64);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(model, many_records_per_stream_interleaved) {
    /* Three streams, each split over several records and chunks, seqs interleaved. */
    mp_dg_t g;
    mp_dg_init(&g);
    uint64_t seq = 1;
    for (int round = 0; round < 5; round++) {
        for (uint64_t st = 0; st < 3; st++) {
            uint64_t base = seq + st;
            mp_dg_events_begin(&g, st, base);
            /* stream st owns seqs base, base+3, base+6 */
            for (int k = 0; k < 3; k++)
                mp_dg_alloc(&g, base + 3 * (uint64_t)k, 0x100000 * (st + 1) + seq + 3 * (uint64_t)k,
                            1, 0, MP_ALLOC_MALLOC);
            mp_dg_events_end(&g);
        }
        seq += 9;
        mp_dg_flush(&g);
    }
    mp_dg_sample(&g, 5000000, seq, 1 << 20);
    mp_model_t *m = load(&g, mp_at_default);
    cr_assert_eq(m->summary.total_allocations, 45);
    cr_assert_eq(m->summary.leaked_blocks, 45);
    cr_assert_eq(m->summary.overlapping_allocs, 0);
    cr_assert_eq(m->ntimeline, 1);
    cr_assert_eq(m->timeline[0].heap, 45);
    cr_assert_eq(m->timeline[0].rss, 1 << 20);
    mp_model_free(m);
    mp_dg_free(&g);
}

static void
markers_dump(mp_dg_t *g) {
    mp_dg_init(g);
    stacks(g);
    mp_dg_events_begin(g, 0, 1);
    mp_dg_alloc(g, 1, 0xa000, 100, 1, MP_ALLOC_MALLOC); /* leaked at main_end, freed by exit */
    mp_dg_alloc(g, 2, 0xb000, 7, 2, MP_ALLOC_MALLOC);   /* leaked everywhere */
    mp_dg_free_ev(g, 4, 0xa000, 0, MP_ALLOC_FREE);      /* during finalization */
    mp_dg_alloc(g, 5, 0xc000, 3, 2, MP_ALLOC_MALLOC);   /* after exit marker: never counted */
    mp_dg_events_end(g);
    mp_dg_marker(g, MP_MARK_MAIN_END, 3, 3000000000);
    mp_dg_marker(g, MP_MARK_EXIT, 5, 4000000000);
    mp_dg_trailer(g, 4, 3, 1, 110, 0, 4500000000, 6, 2);
}

Test(model, leaks_at_markers) {
    mp_dg_t g;
    markers_dump(&g);
    mp_model_t *m = load(&g, mp_at_default);
    cr_assert_eq(m->summary.leaks_at, mp_at_main_end);
    cr_assert_eq(m->summary.leaked_bytes, 107);
    cr_assert_eq(m->summary.leaked_blocks, 2);
    cr_assert_eq(m->summary.stacks_dropped, 2);
    cr_assert_float_eq(m->duration, 4.5, 1e-9);
    mp_model_free(m);

    m = load(&g, mp_at_main_end);
    cr_assert_eq(m->summary.leaks_at, mp_at_main_end);
    cr_assert_eq(m->summary.leaked_bytes, 107);
    mp_model_free(m);

    m = load(&g, mp_at_exit);
    cr_assert_eq(m->summary.leaks_at, mp_at_exit);
    cr_assert_eq(m->summary.leaked_bytes, 7);
    cr_assert_eq(m->nleaks, 1);
    cr_assert_eq(m->leaks[0].stack, 2);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(model, main_end_missing_falls_back) {
    mp_dg_t g;
    mp_dg_init(&g);
    mp_dg_events_begin(&g, 0, 1);
    mp_dg_alloc(&g, 1, 0xa000, 100, 0, MP_ALLOC_MALLOC);
    mp_dg_events_end(&g);
    mp_dg_marker(&g, MP_MARK_EXIT, 2, 10);
    mp_model_t *m = load(&g, mp_at_main_end);
    cr_assert_eq(m->summary.leaks_at, mp_at_exit);
    cr_assert_eq(m->summary.leaked_bytes, 100);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(model, peak_time_and_timeline) {
    mp_dg_t g;
    mp_dg_init(&g);
    stacks(&g);
    mp_dg_events_begin(&g, 0, 10);
    mp_dg_alloc(&g, 10, 0xa000, 100, 1, MP_ALLOC_MALLOC);
    mp_dg_alloc(&g, 20, 0xb000, 200, 2, MP_ALLOC_MALLOC);
    mp_dg_alloc(&g, 30, 0xc000, 300, 2, MP_ALLOC_MALLOC); /* peak: 600 at seq 30 */
    mp_dg_free_ev(&g, 40, 0xc000, 0, MP_ALLOC_FREE);
    mp_dg_free_ev(&g, 50, 0xb000, 0, MP_ALLOC_FREE);
    mp_dg_alloc(&g, 60, 0xd000, 50, 1, MP_ALLOC_MALLOC);
    mp_dg_events_end(&g);
    /* samples: heap at each is what happened strictly before its seq */
    mp_dg_sample(&g, 1000000000, 15, 1000);
    mp_dg_sample(&g, 3000000000, 35, 5000);
    mp_dg_sample(&g, 4000000000, 70, 3000);
    mp_model_t *m = load(&g, mp_at_default);
    const mp_summary_t *s = &m->summary;
    cr_assert_eq(s->peak_bytes, 600);
    cr_assert_eq(s->peak_blocks, 3);
    /* seq 30 between samples (15, 1 s) and (35, 3 s): 1 + 2 * 15/20 = 2.5 s */
    cr_assert_float_eq(s->peak_time, 2.5, 1e-9);
    cr_assert_eq(s->rss_peak, 5000);
    cr_assert_eq(m->npeak, 2);
    cr_assert_eq(m->peak[0].stack, 2);
    cr_assert_eq(m->peak[0].bytes, 500);
    cr_assert_eq(m->peak[0].blocks, 2);
    cr_assert_eq(m->peak[1].bytes, 100);
    cr_assert_eq(m->ntimeline, 3);
    cr_assert_eq(m->timeline[0].heap, 100);
    cr_assert_eq(m->timeline[1].heap, 600);
    cr_assert_eq(m->timeline[2].heap, 150);
    cr_assert_float_eq(m->timeline[1].time_s, 3.0, 1e-9);
    cr_assert_eq(m->timeline[1].rss, 5000);
    cr_assert_float_eq(m->duration, 4.0, 1e-9, "no trailer: the last sample");
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(model, lost_events) {
    mp_dg_t g;
    mp_dg_init(&g);
    mp_dg_lost(&g, 3);
    mp_dg_lost(&g, 4);
    mp_model_t *m = load(&g, mp_at_default);
    cr_assert_eq(m->summary.lost_events, 7);
    mp_model_free(m);
    mp_dg_trailer(&g, 0, 0, 0, 0, 9, 1, 1, 0);
    m = load(&g, mp_at_default);
    cr_assert_eq(m->summary.lost_events, 9);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(model, process_and_threads) {
    mp_dg_t g;
    mp_dg_init(&g);
    mp_dg_process(&g, "/usr/bin/python3", "python3\0script.py\0\0last", 23, "/home/x");
    mp_dg_thread(&g, 0, 10);
    mp_dg_thread(&g, 1, 11);
    mp_dg_thread(&g, 0, 10); /* a duplicate */
    mp_dg_thread(&g, 1, 12); /* ring reused by a later thread */
    mp_model_t *m = load(&g, mp_at_default);
    cr_assert_str_eq(m->exe, "/usr/bin/python3");
    cr_assert_str_eq(m->cwd, "/home/x");
    cr_assert_eq(m->argc, 4);
    cr_assert_str_eq(m->argv[0], "python3");
    cr_assert_str_eq(m->argv[1], "script.py");
    cr_assert_str_eq(m->argv[2], "");
    cr_assert_str_eq(m->argv[3], "last");
    cr_assert_eq(m->nthreads, 3);
    cr_assert_eq(m->threads[2].tid, 12);
    cr_assert_eq(m->header.pid, 1234);
    mp_model_free(m);
    mp_dg_free(&g);
}

/* ---- randomized replay against a naive reference -------------------------------------------- */

typedef struct nev_s {
    uint64_t seq, ptr, size, stack;
    unsigned kind, alloc, stream;
} nev_t;

static uint64_t rs = 88172645463325252ull;
static uint64_t
rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

Test(model, random_replay_matches_naive, .timeout = 120) {
    enum { N = 60000, STREAMS = 5, ADDRS = 512 };
    nev_t *ev = calloc(N, sizeof *ev);
    /* events in seq order, assigned to random streams */
    for (size_t i = 0; i < N; i++) {
        ev[i].seq = i + 1;
        ev[i].stream = (unsigned)(rnd() % STREAMS);
        ev[i].ptr = 0x10000 + 32 * (rnd() % ADDRS);
        ev[i].kind = rnd() % 3 == 0 ? MP_EV_FREE : MP_EV_ALLOC;
        ev[i].size = rnd() % 1000;
        ev[i].stack = rnd() % 7;
        ev[i].alloc = MP_ALLOC_MALLOC;
    }
    /* naive replay: direct-mapped table over the small address space */
    uint64_t live_size[ADDRS];
    uint64_t live_stack[ADDRS];
    bool live[ADDRS] = {false};
    uint64_t bytes = 0, blocks = 0, peak = 0, peak_blocks = 0, unknown = 0, overl = 0;
    for (size_t i = 0; i < N; i++) {
        size_t a = (size_t)((ev[i].ptr - 0x10000) / 32);
        if (ev[i].kind == MP_EV_ALLOC) {
            if (live[a]) {
                overl++;
                bytes -= live_size[a];
                blocks--;
            }
            live[a] = true;
            live_size[a] = ev[i].size;
            live_stack[a] = ev[i].stack;
            bytes += ev[i].size;
            blocks++;
            if (bytes > peak) {
                peak = bytes;
                peak_blocks = blocks;
            }
        } else if (live[a]) {
            live[a] = false;
            bytes -= live_size[a];
            blocks--;
        } else {
            unknown++;
        }
    }
    uint64_t by_stack[7] = {0};
    for (size_t a = 0; a < ADDRS; a++)
        if (live[a]) by_stack[live_stack[a]] += live_size[a];

    /* the dump: each stream's events in records of up to 100, records shuffled across streams
     * in file order but each stream's records in order; EVENTS and STREAM records at random (a
     * STREAM record continues from the stream's last event, whichever record held it) */
    mp_dg_t g;
    mp_dg_init(&g);
    size_t pos[STREAMS] = {0};
    int done = 0;
    while (done < STREAMS) {
        unsigned st = (unsigned)(rnd() % STREAMS);
        size_t i = pos[st];
        while (i < N && ev[i].stream != st) i++;
        if (i >= N) {
            if (pos[st] != SIZE_MAX) {
                pos[st] = SIZE_MAX;
                done++;
            }
            continue;
        }
        if (rnd() % 2)
            mp_dg_stream_begin(&g, st);
        else
            mp_dg_events_begin(&g, st, ev[i].seq);
        for (int k = 0; k < 100 && i < N; i++) {
            if (ev[i].stream != st) continue;
            if (ev[i].kind == MP_EV_ALLOC)
                mp_dg_alloc(&g, ev[i].seq, ev[i].ptr, ev[i].size, ev[i].stack, ev[i].alloc);
            else
                mp_dg_free_ev(&g, ev[i].seq, ev[i].ptr, 0, MP_ALLOC_FREE);
            k++;
        }
        mp_dg_events_end(&g);
        pos[st] = i;
        if (g.clen > 4000) mp_dg_flush(&g);
    }
    mp_model_t *m = load(&g, mp_at_default);
    const mp_summary_t *s = &m->summary;
    cr_assert_eq(s->total_allocations + s->unknown_frees + s->total_frees, N);
    cr_assert_eq(s->unknown_frees, unknown);
    cr_assert_eq(s->overlapping_allocs, overl);
    cr_assert_eq(s->leaked_bytes, bytes);
    cr_assert_eq(s->leaked_blocks, blocks);
    cr_assert_eq(s->peak_bytes, peak);
    cr_assert_eq(s->peak_blocks, peak_blocks);
    uint64_t sum = 0;
    for (size_t i = 0; i < m->nleaks; i++) {
        cr_assert_eq(m->leaks[i].bytes, by_stack[m->leaks[i].stack]);
        if (i) cr_assert_geq(m->leaks[i - 1].bytes, m->leaks[i].bytes, "sorted by bytes");
        sum += m->leaks[i].bytes;
    }
    cr_assert_eq(sum, bytes);
    uint64_t psum = 0, pblocks = 0;
    for (size_t i = 0; i < m->npeak; i++) {
        psum += m->peak[i].bytes;
        pblocks += m->peak[i].blocks;
    }
    cr_assert_eq(psum, peak);
    cr_assert_eq(pblocks, peak_blocks);
    mp_model_free(m);
    mp_dg_free(&g);
    free(ev);
}

/* ---- views ---------------------------------------------------------------------------------- */

static void
views_dump(mp_dg_t *g) {
    mp_dg_init(g);
    mp_dg_process(g, "/bin/prog", "prog\0", 5, "/tmp");
    mp_dg_thread(g, 0, 77);
    uint64_t py[] = {MP_FRAME_PYTHON_BIT | 5ull << 32, 0x1234}; /* code 5: no PYCODE record */
    mp_dg_stack(g, 3, py, 2);
    uint64_t nat[] = {0x1234, 0x5678};
    mp_dg_stack(g, 4, nat, 2);
    mp_dg_events_begin(g, 0, 1);
    mp_dg_alloc(g, 1, 0xa000, 1 << 20, 3, MP_ALLOC_MALLOC);
    mp_dg_alloc(g, 2, 0xb000, 1000, 4, MP_ALLOC_MALLOC);
    mp_dg_alloc(g, 3, 0xc000, 24, 0, MP_ALLOC_MALLOC);
    mp_dg_events_end(g);
    mp_dg_sample(g, 500000000, 4, 1 << 22);
    mp_dg_marker(g, MP_MARK_EXIT, 4, 600000000);
    mp_dg_trailer(g, 3, 3, 0, (1 << 20) + 1024, 0, 700000000, 4, 0);
}

Test(model, json_report) {
    mp_dg_t g;
    views_dump(&g);
    mp_model_t *m = load(&g, mp_at_default);
    json_t *j = mp_report_json(m, NULL);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_object_get(j, "format")), "memprof-report");
    cr_assert_eq(json_integer_value(json_object_get(j, "version")), 1);
    json_t *p = json_object_get(j, "process");
    cr_assert_eq(json_integer_value(json_object_get(p, "pid")), 1234);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(p, "argv"), 0)), "prog");
    cr_assert_str_eq(json_string_value(json_object_get(p, "exe")), "/bin/prog");
    cr_assert(json_is_null(json_object_get(p, "python")));
    cr_assert_str_eq(json_string_value(json_object_get(p, "start")), "2023-11-14T22:13:20.123Z");
    cr_assert(json_is_false(json_object_get(p, "incomplete")));
    cr_assert_float_eq(json_real_value(json_object_get(p, "duration")), 0.7, 1e-9);
    json_t *s = json_object_get(j, "summary");
    cr_assert_eq(json_integer_value(json_object_get(s, "leaked_bytes")), (1 << 20) + 1024);
    cr_assert_eq(json_integer_value(json_object_get(s, "leaked_blocks")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(s, "leaks_at")), "exit");
    cr_assert_eq(json_integer_value(json_object_get(s, "rss_peak")), 1 << 22);
    json_t *leaks = json_object_get(j, "leaks");
    cr_assert_eq(json_array_size(leaks), 3);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(leaks, 0), "stack")), 3);
    json_t *stacks = json_object_get(j, "stacks");
    json_t *s3 = json_object_get(stacks, "3");
    cr_assert_eq(json_array_size(s3), 2);
    cr_assert_eq(json_array_size(json_object_get(stacks, "0")), 0, "no stack: empty list");
    /* frame 0x1234 is shared by stacks 3 and 4: one frame id */
    json_t *s4 = json_object_get(stacks, "4");
    cr_assert_eq(json_integer_value(json_array_get(s3, 1)),
                 json_integer_value(json_array_get(s4, 0)));
    json_t *frames = json_object_get(j, "frames");
    cr_assert_eq(json_object_size(frames), 3);
    char key[24];
    snprintf(key, sizeof key, "%lld", json_integer_value(json_array_get(s3, 0)));
    json_t *pyf = json_object_get(frames, key);
    cr_assert_str_eq(json_string_value(json_object_get(pyf, "kind")), "python");
    cr_assert_str_eq(json_string_value(json_object_get(pyf, "function")), "<python>");
    snprintf(key, sizeof key, "%lld", json_integer_value(json_array_get(s3, 1)));
    json_t *nf = json_object_get(frames, key);
    cr_assert_str_eq(json_string_value(json_object_get(nf, "kind")), "native");
    cr_assert_str_eq(json_string_value(json_object_get(nf, "function")), "0x1234");
    cr_assert_str_eq(json_string_value(json_object_get(nf, "address")), "0x1234");
    cr_assert(json_is_null(json_object_get(nf, "file")));
    cr_assert_eq(json_array_size(json_object_get(j, "lines")), 0);
    json_t *tl = json_object_get(j, "timeline");
    cr_assert_eq(json_array_size(tl), 1);
    cr_assert_eq(json_integer_value(json_array_get(json_array_get(tl, 0), 1)), (1 << 20) + 1024);
    json_t *th = json_object_get(j, "threads");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(th, 0), "tid")), 77);
    json_decref(j);

    /* the file form parses back */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    mp_err_t err;
    cr_assert_eq(mp_emit_json(m, NULL, f, &err), 0);
    fclose(f);
    json_error_t je;
    json_t *back = json_loads(text, 0, &je);
    cr_assert_not_null(back, "%s", je.text);
    json_decref(back);
    free(text);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(model, json_survives_bad_utf8) {
    mp_dg_t g;
    mp_dg_init(&g);
    mp_dg_process(&g, "/bin/\xff\xfe\xc3", "a\xc0\x80\0", 4, "/caf\xc3\xa9");
    mp_model_t *m = load(&g, mp_at_default);
    json_t *j = mp_report_json(m, NULL);
    cr_assert_not_null(j);
    json_t *p = json_object_get(j, "process");
    cr_assert_str_eq(json_string_value(json_object_get(p, "exe")), "/bin/???");
    cr_assert_str_eq(json_string_value(json_object_get(p, "cwd")), "/caf\xc3\xa9");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(p, "argv"), 0)), "a??");
    json_decref(j);
    mp_model_free(m);
    mp_dg_free(&g);
}

static char *
text_of(const mp_model_t *m, mp_text_opts_t o) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    mp_err_t err;
    cr_assert_eq(mp_emit_text(m, NULL, &o, f, &err), 0);
    fclose(f);
    return text;
}

Test(model, text_report) {
    mp_dg_t g;
    views_dump(&g);
    mp_model_t *m = load(&g, mp_at_default);
    char *t = text_of(m, (mp_text_opts_t){.leaks = true, .top = 2});
    cr_assert_not_null(strstr(t, "Leaked at exit: 1.00 MiB in 3 blocks from 3 stacks"), "%s", t);
    cr_assert_not_null(
        strstr(t, "\n1.00 MiB in 1 block allocated by:\n  #0 <python>\n  #1 0x1234\n"), "%s", t);
    cr_assert_not_null(strstr(t, "1000 B in 1 block allocated by:"), "%s", t);
    cr_assert_not_null(strstr(t, "... and 1 more stack"), "%s", t);
    free(t);
    t = text_of(m, (mp_text_opts_t){.summary = true});
    cr_assert_not_null(strstr(t, "  allocations     3 (1.00 MiB in total)\n"), "%s", t);
    cr_assert_not_null(strstr(t, "  leaked          1.00 MiB in 3 blocks (at exit)\n"), "%s", t);
    cr_assert_not_null(strstr(t, "  RSS peak        4.00 MiB\n"), "%s", t);
    cr_assert_null(strstr(t, "incomplete"), "%s", t);
    free(t);
    t = text_of(m, (mp_text_opts_t){.peak = true, .top = 0});
    cr_assert_not_null(strstr(t, "Peak heap at "), "%s", t);
    cr_assert_not_null(strstr(t, "24 B in 1 block allocated by:\n  (no stack recorded)"), "%s", t);
    free(t);
    mp_model_free(m);
    mp_dg_free(&g);
}

/* ---- the symbolizer, on this test binary ---------------------------------------------------- */

static __attribute__((noinline)) int
static_marker_function(int x) {
    return x * 3 + 1;
}

typedef struct self_s {
    uint64_t bias;
    uint64_t ranges[16];
    size_t n;
} self_t;

static int
find_self(struct dl_phdr_info *info, size_t size, void *arg) {
    self_t *s = arg;
    if (info->dlpi_name && info->dlpi_name[0]) return 0; /* the main program has "" */
    s->bias = info->dlpi_addr;
    for (int i = 0; i < info->dlpi_phnum && s->n < 8; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        s->ranges[2 * s->n] = info->dlpi_addr + ph->p_vaddr;
        s->ranges[2 * s->n + 1] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        s->n++;
    }
    return 1;
}

Test(model, symbolizes_this_binary) {
    cr_assert_eq(static_marker_function(1), 4);
    self_t self = {0};
    dl_iterate_phdr(find_self, &self);
    cr_assert_gt(self.n, 0);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert_gt(n, 0);
    exe[n] = 0;

    mp_dg_t g;
    mp_dg_init(&g);
    mp_dg_module(&g, self.bias, self.ranges, self.n, exe, NULL, 0);
    uint64_t missing_range[] = {0x7f0000000000, 0x7f0000100000};
    mp_dg_module(&g, 0x7f0000000000, missing_range, 1, "/nonexistent/libgone.so.1", NULL, 0);
    mp_model_t *m = load(&g, mp_at_default);
    mp_sym_t *sym = mp_sym_new(m, NULL);
    cr_assert_not_null(sym);

    /* A "return address" inside the function: lookups use address - 1. */
    uint64_t addr = (uint64_t)(uintptr_t)&static_marker_function + 2;
    mp_frame_info_t fi;
    mp_sym_lookup(sym, addr, &fi);
    cr_assert_str_eq(fi.kind, "native");
    cr_assert_str_eq(fi.function, "static_marker_function");
    cr_assert_str_eq(fi.module, "test_model");
    if (fi.file) { /* built with -g */
        cr_assert_not_null(strstr(fi.file, "test_model.c"), "%s", fi.file);
        cr_assert_gt(fi.line, 0);
    }
    /* cached: the same answer */
    mp_frame_info_t again;
    mp_sym_lookup(sym, addr, &again);
    cr_assert_eq(again.function, fi.function);

    mp_sym_lookup(sym, 0x7f0000000123, &fi);
    cr_assert_str_eq(fi.function, "0x7f0000000123");
    cr_assert_str_eq(fi.module, "libgone.so.1");
    cr_assert_null(fi.file);

    mp_sym_lookup(sym, 0x10, &fi);
    cr_assert_str_eq(fi.function, "0x10");
    cr_assert_null(fi.module);

    mp_sym_lookup(sym, MP_FRAME_PYTHON_BIT | 7ull << 32, &fi); /* no PYCODE record */
    cr_assert_str_eq(fi.kind, "python");
    cr_assert_str_eq(fi.function, "<python>");

    /* many addresses: the cache grows */
    for (uint64_t a = 0; a < 2000; a++) mp_sym_lookup(sym, 0x7f0000000000 + a, &fi);
    mp_sym_free(sym);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(model, build_id_mismatch_warns_once) {
    self_t self = {0};
    dl_iterate_phdr(find_self, &self);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n] = 0;
    mp_dg_t g;
    mp_dg_init(&g);
    static const uint8_t wrong[] = {0xde, 0xad, 0xbe, 0xef};
    mp_dg_module(&g, self.bias, self.ranges, self.n, exe, wrong, sizeof wrong);
    mp_model_t *m = load(&g, mp_at_default);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    mp_sym_t *sym = mp_sym_new(m, f);
    mp_frame_info_t fi;
    mp_sym_lookup(sym, (uint64_t)(uintptr_t)&static_marker_function + 2, &fi);
    mp_sym_lookup(sym, (uint64_t)(uintptr_t)&static_marker_function + 3, &fi);
    mp_sym_free(sym);
    fclose(f);
    const char *first = strstr(text, "build-id differs");
    cr_assert_not_null(first, "%s", text);
    cr_assert_null(strstr(first + 1, "build-id differs"), "once: %s", text);
    free(text);
    mp_model_free(m);
    mp_dg_free(&g);
}

/* STACK records (3.0, FORMAT.md 5.4) carry only the frames inside the outer ones they share with
 * the record before them; the model rebuilds each whole, across chunks. */
static const uint64_t s1[] = {0x11, 0x22, 0x33, 0x44}, s2[] = {0x55, 0x33, 0x44},
                      s3[] = {0x66, 0x55, 0x33, 0x44}, s4[] = {0x77}, s5[] = {0x88, 0x77},
                      s6[] = {0x77};

static void
shared_stacks(mp_dg_t *g) {
    mp_dg_stack(g, 1, s1, 4); /* shares nothing: the first */
    mp_dg_stack(g, 2, s2, 3); /* shares 2 */
    mp_dg_flush(g);           /* the next record in a new chunk */
    mp_dg_stack(g, 3, s3, 4); /* shares all 3 of the previous record's */
    mp_dg_stack(g, 4, s4, 1); /* shares nothing */
    mp_dg_stack(g, 5, s5, 2); /* shares 1, all of the previous */
    mp_dg_stack(g, 6, s6, 1); /* shares 1: all of it */
}

static void
check_shared_stacks(mp_model_t *m) {
    const uint64_t *want[] = {s1, s2, s3, s4, s5, s6};
    size_t wn[] = {4, 3, 4, 1, 2, 1};
    for (uint64_t id = 1; id <= 6; id++) {
        const uint64_t *f;
        size_t n;
        cr_assert(mp_model_stack(m, id, &f, &n), "stack %llu missing", (unsigned long long)id);
        cr_assert_eq(n, wn[id - 1], "stack %llu: %zu frames", (unsigned long long)id, n);
        cr_assert_arr_eq(f, want[id - 1], n * sizeof *f, "stack %llu", (unsigned long long)id);
    }
}

Test(model, stacks_share_outer_frames_with_the_record_before) {
    mp_dg_t g;
    mp_dg_init(&g);
    shared_stacks(&g);
    mp_dg_flush(&g);
    /* The generator shares what it can (dumpgen.c): records 2, 3, 5 and 6 hold fewer frames. */
    size_t with_sharing = g.len;
    mp_model_t *m = load(&g, mp_at_default);
    check_shared_stacks(m);
    mp_model_free(m);
    mp_dg_free(&g);
    /* The same stacks in a 2.0 dump (no shared count, every frame in every record) read the same.
     */
    mp_fmt_header_t h = {.major = 2, .header_size = MP_FMT_HEADER_SIZE, .ptr_size = 8, .pid = 1};
    mp_dg_init_header(&g, &h);
    shared_stacks(&g);
    mp_dg_flush(&g);
    cr_assert_gt(g.len, with_sharing);
    m = load(&g, mp_at_default);
    check_shared_stacks(m);
    mp_model_free(m);
    mp_dg_free(&g);
}

/* A dump of one STACK record with the given body, after a stack of nbefore frames (none if 0),
 * must be corrupt (MP_EFIELD) with msg in the error. */
static void
expect_bad_stack(const uint64_t *before, size_t nbefore, const uint8_t *body, size_t len,
                 const char *msg) {
    mp_dg_t g;
    mp_dg_init(&g);
    if (nbefore) mp_dg_stack(&g, 1, before, nbefore);
    mp_dg_record(&g, MP_REC_STACK, body, len);
    mp_dg_flush(&g);
    mp_reader_t *r = NULL;
    mp_err_t err;
    cr_assert_eq(mp_reader_open_mem(&r, g.buf, g.len, &err), 0);
    mp_model_t *m = NULL;
    mp_model_opts_t o = {.at = mp_at_default};
    cr_assert_eq(mp_model_build(&m, r, &o, &err), MP_EFIELD); /* the model owns r, closed */
    cr_assert(strstr(err.msg, msg), "%s: not in %s", msg, err.msg);
    mp_dg_free(&g);
}

Test(model, stack_sharing_more_than_the_record_before_is_corrupt) {
    /* id 2, n 3, shared 2, one frame: the record before has 1 frame, or there is none. */
    static const uint8_t bad[] = {2, 3, 2, 0x0a};
    expect_bad_stack(s4, 1, bad, sizeof bad, "stack 2 shares 2 frames with a stack of 1");
    expect_bad_stack(NULL, 0, bad, sizeof bad, "stack 2 shares 2 frames with a stack of 0");
    /* More shared frames than the stack has: the record itself is bad. */
    static const uint8_t worse[] = {2, 1, 2};
    expect_bad_stack(s1, 4, worse, sizeof worse, "2 shared frames in a stack of 1");
    /* A stack deeper than any the library writes: refused before it is expanded. */
    static const uint8_t deep[] = {3, 0x81, 0x08, 0x81, 0x08}; /* n = shared = 1025 */
    expect_bad_stack(s1, 4, deep, sizeof deep, "a stack of 1025 frames (at most 1024)");
}
