/* e2e.h - the ledger shared by the end-to-end test programs.
 *
 * What this is: each test program counts, as it makes them, the heap calls whose effect it knows
 * exactly, and prints what a correct profiler must report ("expect" and "leak" lines, below).
 * run_e2e.py compares those lines with `memprof json` and with valgrind. What this is not: a
 * profiler; it only knows what its own program asked for.
 *
 * Output uses write(2) and a fixed buffer only: stdio would allocate its buffer, and the test
 * programs must have nothing but their own blocks live at exit.
 *
 * Lines (one write(2) each, so lines from several processes on one pipe never interleave):
 *   expect pid=P role=R total_allocations=N total_frees=N total_bytes=N leaked_bytes=N
 *          leaked_blocks=N unknown_frees=N [peak_bytes=N]
 *   leak pid=P function=F bytes=N blocks=N
 *   <anything else>: informational ("ready", "pid ...")
 */
#ifndef MP_E2E_H
#define MP_E2E_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

typedef struct e2e_ledger_s {
    uint64_t allocs;        /* ALLOC events: every successful allocation, realloc included */
    uint64_t frees;         /* FREE events: free(p != NULL), realloc's old block, realloc(p, 0) */
    uint64_t bytes;         /* sum of the sizes requested by the ALLOC events */
    uint64_t live_bytes;    /* bytes live now */
    uint64_t live_blocks;   /* blocks live now */
    uint64_t peak_bytes;    /* max of live_bytes, sampled after each allocation */
    uint64_t unknown_frees; /* frees of blocks this process's dump never saw allocated */
    int no_peak;            /* the peak is not known (several threads): leave it out */
} e2e_ledger_t;

static inline void
e2e_alloc(e2e_ledger_t *l, size_t n) {
    l->allocs++;
    l->bytes += n;
    l->live_bytes += n;
    l->live_blocks++;
    if (l->live_bytes > l->peak_bytes) l->peak_bytes = l->live_bytes;
}

static inline void
e2e_free(e2e_ledger_t *l, size_t n) {
    l->frees++;
    l->live_bytes -= n;
    l->live_blocks--;
}

/* realloc(p of old bytes, n) that returned a new block: FREE(p) then ALLOC(q, n). */
static inline void
e2e_realloc(e2e_ledger_t *l, size_t old, size_t n) {
    e2e_free(l, old);
    e2e_alloc(l, n);
}

/* ---- output without stdio ---------------------------------------------------------------- */

typedef struct e2e_line_s {
    char buf[512];
    size_t len;
} e2e_line_t;

static inline void
e2e_str(e2e_line_t *o, const char *s) {
    size_t n = strlen(s);
    if (o->len + n >= sizeof o->buf) n = sizeof o->buf - 1 - o->len;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static inline void
e2e_u64(e2e_line_t *o, uint64_t v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && o->len < sizeof o->buf - 1) o->buf[o->len++] = tmp[--n];
}

/* " key=value" */
static inline void
e2e_kv(e2e_line_t *o, const char *key, uint64_t v) {
    e2e_str(o, " ");
    e2e_str(o, key);
    e2e_str(o, "=");
    e2e_u64(o, v);
}

static inline void
e2e_emit(e2e_line_t *o) {
    o->buf[o->len++] = '\n';
    size_t off = 0;
    while (off < o->len) {
        ssize_t w = write(1, o->buf + off, o->len - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    o->len = 0;
}

static inline void
e2e_say(const char *s) {
    e2e_line_t o = {.len = 0};
    e2e_str(&o, s);
    e2e_emit(&o);
}

static inline void
e2e_expect(const e2e_ledger_t *l, const char *role) {
    e2e_line_t o = {.len = 0};
    e2e_str(&o, "expect");
    e2e_kv(&o, "pid", (uint64_t)getpid());
    e2e_str(&o, " role=");
    e2e_str(&o, role);
    e2e_kv(&o, "total_allocations", l->allocs);
    e2e_kv(&o, "total_frees", l->frees);
    e2e_kv(&o, "total_bytes", l->bytes);
    e2e_kv(&o, "leaked_bytes", l->live_bytes);
    e2e_kv(&o, "leaked_blocks", l->live_blocks);
    e2e_kv(&o, "unknown_frees", l->unknown_frees);
    if (!l->no_peak) e2e_kv(&o, "peak_bytes", l->peak_bytes);
    e2e_emit(&o);
}

/* A leak made by function fn: bytes in blocks, all from that one function. */
static inline void
e2e_leak(const char *fn, uint64_t bytes, uint64_t blocks) {
    e2e_line_t o = {.len = 0};
    e2e_str(&o, "leak");
    e2e_kv(&o, "pid", (uint64_t)getpid());
    e2e_str(&o, " function=");
    e2e_str(&o, fn);
    e2e_kv(&o, "bytes", bytes);
    e2e_kv(&o, "blocks", blocks);
    e2e_emit(&o);
}

/* Keeps pointers reachable through a volatile store, so that the compiler cannot prove a
 * block dead and drop its allocation even at -O2. */
static void *volatile e2e_sink __attribute__((unused));
static inline void
e2e_keep(void *p) {
    e2e_sink = p;
}

#define E2E_NOINLINE __attribute__((noinline))

#endif
