/* allocators.c - every interposed allocator, with leaks and frees known to the byte.
 *
 * Each leak is made in its own noinline function named after what it leaks (leak_malloc,
 * leak_calloc, ...), so that with native stacks the leak's stack must contain that name. Each
 * function also makes an allocation of the same kind that it frees again. A ledger (e2e.h)
 * counts every call as it is made; the program prints it before it returns.
 *
 *   allocators             everything, including failing calls (realloc that cannot grow,
 *                          calloc overflow, malloc(SIZE_MAX), bad alignments)
 *   allocators --valgrind  the same without the failing calls, whose counting differs under
 *                          valgrind (it counts a failed realloc as an allocation)
 *
 * No stdio, nothing else that allocates: at exit only this program's blocks are live.
 * Build with -O0 -fno-builtin: GCC otherwise removes malloc/free pairs it can see through.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "e2e.h"

static e2e_ledger_t L;

static void
keep(void *p) {
    e2e_keep(p);
}

static void
fail(const char *what) {
    e2e_say(what);
    _exit(3);
}

/* ---- one function per leak ------------------------------------------------------------- */

static E2E_NOINLINE void
leak_malloc(void) {
    void *p = malloc(1001);
    if (!p) fail("malloc failed");
    e2e_alloc(&L, 1001);
    keep(p);
    e2e_leak("leak_malloc", 1001, 1);

    void *q = malloc(40);
    if (!q) fail("malloc failed");
    e2e_alloc(&L, 40);
    free(q);
    e2e_free(&L, 40);
    free(NULL); /* no event */
}

static E2E_NOINLINE void
leak_calloc(void) {
    void *p = calloc(7, 113);
    if (!p) fail("calloc failed");
    e2e_alloc(&L, 7 * 113);
    keep(p);
    e2e_leak("leak_calloc", 7 * 113, 1);

    void *q = calloc(3, 50);
    if (!q) fail("calloc failed");
    e2e_alloc(&L, 150);
    free(q);
    e2e_free(&L, 150);
}

/* malloc(100) grown to 2003 bytes: FREE(100) + ALLOC(2003). */
static E2E_NOINLINE void
leak_realloc_grow(void) {
    char *p = malloc(100);
    if (!p) fail("malloc failed");
    e2e_alloc(&L, 100);
    memset(p, 'g', 100);
    char *q = realloc(p, 2003);
    if (!q || q[99] != 'g') fail("realloc grow failed");
    e2e_realloc(&L, 100, 2003);
    keep(q);
    e2e_leak("leak_realloc_grow", 2003, 1);
}

/* malloc(4000) shrunk to 17 bytes (glibc usually keeps the address). */
static E2E_NOINLINE void
leak_realloc_shrink(void) {
    char *p = malloc(4000);
    if (!p) fail("malloc failed");
    e2e_alloc(&L, 4000);
    char *q = realloc(p, 17);
    if (!q) fail("realloc shrink failed");
    e2e_realloc(&L, 4000, 17);
    keep(q);
    e2e_leak("leak_realloc_shrink", 17, 1);
}

/* realloc(NULL, n) is malloc(n): one ALLOC and no FREE. */
static E2E_NOINLINE void
leak_realloc_null(void) {
    void *p = realloc(NULL, 555);
    if (!p) fail("realloc(NULL) failed");
    e2e_alloc(&L, 555);
    keep(p);
    e2e_leak("leak_realloc_null", 555, 1);
}

/* realloc(p, 0) frees p (glibc returns NULL): one FREE, nothing live. */
static E2E_NOINLINE void
realloc_zero(void) {
    void *p = malloc(333);
    if (!p) fail("malloc failed");
    e2e_alloc(&L, 333);
    void *q = realloc(p, 0);
    if (q) fail("realloc(p, 0) returned a block; this glibc does not free there");
    e2e_free(&L, 333);
}

static E2E_NOINLINE void
leak_reallocarray(void) {
    void *p = reallocarray(NULL, 9, 37); /* like malloc(333) */
    if (!p) fail("reallocarray failed");
    e2e_alloc(&L, 9 * 37);
    void *q = reallocarray(p, 12, 25); /* resized to 300 bytes */
    if (!q) fail("reallocarray failed");
    e2e_realloc(&L, 9 * 37, 12 * 25);
    keep(q);
    e2e_leak("leak_reallocarray", 12 * 25, 1);
}

static E2E_NOINLINE void
leak_strdup(void) {
    static const char text[] = "memprof end-to-end: a string that strdup copies"; /* 47 chars */
    char *s = strdup(text);
    if (!s || strcmp(s, text) != 0) fail("strdup failed");
    e2e_alloc(&L, sizeof text);
    keep(s);
    char *t = strndup(text, 10); /* 10 chars + NUL */
    if (!t) fail("strndup failed");
    e2e_alloc(&L, 11);
    keep(t);
    e2e_leak("leak_strdup", sizeof text + 11, 2);

    char *u = strdup("tmp");
    if (!u) fail("strdup failed");
    e2e_alloc(&L, 4);
    free(u);
    e2e_free(&L, 4);
}

static E2E_NOINLINE void
leak_posix_memalign(void) {
    void *p = NULL;
    if (posix_memalign(&p, 64, 4101) != 0 || ((uintptr_t)p & 63)) fail("posix_memalign failed");
    e2e_alloc(&L, 4101);
    keep(p);
    e2e_leak("leak_posix_memalign", 4101, 1);

    void *q = NULL;
    if (posix_memalign(&q, 4096, 10) != 0) fail("posix_memalign failed");
    e2e_alloc(&L, 10);
    free(q);
    e2e_free(&L, 10);
}

static E2E_NOINLINE void
leak_aligned_alloc(void) {
    void *p = aligned_alloc(256, 512);
    if (!p || ((uintptr_t)p & 255)) fail("aligned_alloc failed");
    e2e_alloc(&L, 512);
    keep(p);
    e2e_leak("leak_aligned_alloc", 512, 1);

    void *q = aligned_alloc(32, 96);
    if (!q) fail("aligned_alloc failed");
    e2e_alloc(&L, 96);
    free(q);
    e2e_free(&L, 96);
}

static E2E_NOINLINE void
leak_memalign(void) {
    void *p = memalign(128, 77);
    if (!p || ((uintptr_t)p & 127)) fail("memalign failed");
    e2e_alloc(&L, 77);
    keep(p);
    e2e_leak("leak_memalign", 77, 1);

    void *q = memalign(16, 16);
    if (!q) fail("memalign failed");
    e2e_alloc(&L, 16);
    free(q);
    e2e_free(&L, 16);
}

static E2E_NOINLINE void
leak_valloc(void) {
    void *p = valloc(999);
    if (!p || ((uintptr_t)p & 4095)) fail("valloc failed");
    e2e_alloc(&L, 999);
    keep(p);
    e2e_leak("leak_valloc", 999, 1);

    void *q = valloc(1);
    if (!q) fail("valloc failed");
    e2e_alloc(&L, 1);
    free(q);
    e2e_free(&L, 1);
}

/* Many small leaks from one place: blocks are counted, not just bytes. */
static E2E_NOINLINE void
leak_many(void) {
    for (unsigned i = 0; i < 25; i++) {
        void *p = malloc(8 + i);
        if (!p) fail("malloc failed");
        e2e_alloc(&L, 8 + i);
        keep(p);
    }
    e2e_leak("leak_many", 25 * 8 + 24 * 25 / 2, 25);
}

/* ---- peak: 3 MiB live at once, in the middle of the run, then gone --------------------------- */

static E2E_NOINLINE void
peak_phase(void) {
    void *a = malloc(1 << 20);
    e2e_alloc(&L, 1 << 20);
    void *b = calloc(1 << 10, 1 << 10);
    e2e_alloc(&L, 1 << 20);
    void *c = malloc(1000);
    e2e_alloc(&L, 1000);
    void *d = realloc(c, (1 << 20) - 1000);
    e2e_realloc(&L, 1000, (1 << 20) - 1000);
    if (!a || !b || !c || !d) fail("peak allocations failed");
    free(b);
    e2e_free(&L, 1 << 20);
    free(a);
    e2e_free(&L, 1 << 20);
    free(d);
    e2e_free(&L, (1 << 20) - 1000);
}

/* ---- calls that fail: none may change what is live ------------------------------------------ */

/* realloc that cannot grow: FREE(p) then REALLOC_FAIL(p) in the dump; p is still live. */
static E2E_NOINLINE void
leak_realloc_fail(void) {
    char *p = malloc(64);
    if (!p) fail("malloc failed");
    e2e_alloc(&L, 64);
    void *q = realloc(p, SIZE_MAX / 4);
    if (q) fail("realloc of SIZE_MAX/4 bytes succeeded");
    keep(p);
    e2e_leak("leak_realloc_fail", 64, 1);
}

static E2E_NOINLINE void
failing_calls(void) {
    void *p;
    /* volatile: GCC would warn about the sizes it can see are too large. */
    volatile size_t huge = SIZE_MAX / 4, half = SIZE_MAX / 2;
    if (calloc(half, 4) != NULL) fail("calloc overflow not detected");
    if (malloc(huge) != NULL) fail("malloc(SIZE_MAX/4) succeeded");
    if (reallocarray(NULL, half, 4) != NULL) fail("reallocarray overflow not detected");
    if (posix_memalign(&p, 3, 16) != EINVAL) fail("posix_memalign(align 3) did not fail");
    if (aligned_alloc(64, huge) != NULL) fail("aligned_alloc(SIZE_MAX/4) succeeded");
    if (memalign(64, huge) != NULL) fail("memalign(SIZE_MAX/4) succeeded");
    leak_realloc_fail();
}

/* A block freed by an atexit handler is not a leak: leaks are what is live when the process
 * ends, after the handlers ran. The ledger is printed from the handler, after that free. */
static void *exit_block;

static void
free_at_exit(void) {
    free(exit_block);
    e2e_free(&L, 4321);
    e2e_expect(&L, "main");
}

int
main(int argc, char **argv) {
    int valgrind = argc > 1 && strcmp(argv[1], "--valgrind") == 0;
    exit_block = malloc(4321);
    if (!exit_block) fail("malloc failed");
    e2e_alloc(&L, 4321);
    if (atexit(free_at_exit) != 0) fail("atexit failed");
    leak_malloc();
    leak_calloc();
    leak_realloc_grow();
    leak_realloc_shrink();
    leak_realloc_null();
    realloc_zero();
    peak_phase();
    leak_reallocarray();
    leak_strdup();
    leak_posix_memalign();
    leak_aligned_alloc();
    leak_memalign();
    leak_valloc();
    leak_many();
    if (!valgrind) failing_calls();
    return 0; /* exit() runs free_at_exit */
}
