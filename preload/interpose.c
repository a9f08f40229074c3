/* interpose.c - the ONLY file that defines malloc & co. in libmemprof.so.
 *
 * What this is: thin wrappers that call the real allocator and hand the result to capture.c,
 * plus the bootstrap arena that serves allocations made while the real functions are being
 * resolved (dlsym may call calloc). What this is not: event encoding (ring/writer) or stack
 * capture (capture/unwind).
 *
 * Invariants relied on below:
 *  - A FREE is recorded before the real free and an ALLOC after the real call returns, so the
 *    sequence numbers order address reuse across threads (FORMAT.md 6).
 *  - The thread's guard is raised around the real call and the capture: allocations made by
 *    the real allocator itself, by libunwind, by pthread internals, or by a signal handler that
 *    interrupts us are passed through untracked, and the hook can never recurse.
 *  - No metadata is added to user blocks; only bootstrap blocks carry a size header, and those
 *    never reach the real allocator.
 *  - errno is what the real function left (capture.c and sys.c never change it).
 */
#include <errno.h>
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdint.h>
#include <string.h>

#include "atomics.h"
#include "capture.h"
#include "format.h"
#include "hooks.h"
#include "sys.h"

#define MP_EXPORT __attribute__((visibility("default")))

mp_real_t mp_real;

/* ---- bootstrap arena --------------------------------------------------------------------- */

/* dlsym(RTLD_NEXT) may allocate (its error buffer, a lookup cache); those requests arrive here
 * before mp_real is filled. A static bump arena serves them; its blocks are never reused, so
 * free() ignores them and realloc() copies them out. 64 KiB is far more than glibc needs. */
static _Alignas(64) uint8_t boot_arena[64 * 1024];
static size_t boot_used;

static int
is_boot(const void *p) {
    return (const uint8_t *)p >= boot_arena && (const uint8_t *)p < boot_arena + sizeof boot_arena;
}

static void *
boot_alloc(size_t n, size_t align) {
    if (align < 16) align = 16;
    /* Size header just below the block, at a 16-byte granularity. */
    for (;;) {
        size_t used = mp_load_relaxed(&boot_used);
        size_t start = (used + 16 + align - 1) & ~(align - 1);
        size_t end = start + n;
        if (end > sizeof boot_arena || end < start) return NULL;
        if (mp_cas_acq_rel(&boot_used, &used, end)) {
            memcpy(boot_arena + start - 8, &n, sizeof n);
            return boot_arena + start; /* static storage: already zeroed */
        }
    }
}

static size_t
boot_size(const void *p) {
    size_t n;
    memcpy(&n, (const uint8_t *)p - 8, sizeof n);
    return n;
}

/* ---- resolution -------------------------------------------------------------------------- */

static int resolve_state; /* 0 not started, 1 in progress, 2 done */

MP_NOINLINE void
mp_interpose_resolve(void) {
    if (mp_load_acquire(&resolve_state) == 2) return;
    int expect = 0;
    if (!mp_cas_acq_rel(&resolve_state, &expect, 1)) {
        /* Another thread is resolving (only possible if threads start before the first
         * allocation completes); wait for it. The resolver's own nested calls never get
         * here: they see mp_thread.resolving. */
        while (mp_load_acquire(&resolve_state) != 2) mp_sys_sleep_ns(100000);
        return;
    }
    mp_thread.resolving = 1;
    mp_real_t r;
#define MP_RESOLVE(name, ret, params) *(void **)&r.name = dlsym(RTLD_NEXT, #name);
    MP_HOOKED_FUNCTIONS(MP_RESOLVE)
#undef MP_RESOLVE
    mp_real = r;
    mp_thread.resolving = 0;
    mp_store_release(&resolve_state, 2);
    if (!mp_real.malloc || !mp_real.free || !mp_real.calloc || !mp_real.realloc) {
        /* Nothing sensible to call: the host cannot run without an allocator. */
        mp_sys_log("cannot find the real malloc with dlsym(RTLD_NEXT); aborting");
        __builtin_trap();
    }
}

/* True when the caller must serve the request from the bootstrap arena. The resolution out of
 * line: inlined, its call made the hooks save registers on every path. */
static MP_NOINLINE int
need_boot_slow(void) {
    if (mp_thread.resolving) return 1;
    mp_interpose_resolve();
    return mp_thread.resolving;
}
static inline int
need_boot(void) {
    if (MP_LIKELY(mp_load_acquire(&resolve_state) == 2)) return 0;
    return need_boot_slow();
}

#define TRACKING(t) mp_tracking(t) /* capture.h */

/* ---- the hooks --------------------------------------------------------------------------- */

/* malloc, free and calloc are a few tests and a jump: to the real function when the call is not
 * tracked (nested in a hook, as every block pymalloc takes from malloc is, or tracking off), else
 * to the tracked half out of line. One function, the untracked path paid for the tracked one's
 * saved registers: some 20 instructions a call, 6 an event on scripts/bench_py/mix.py
 * (callgrind), whose large blocks go pymalloc -> PyMem_RawMalloc -> malloc. */
static MP_NOINLINE MP_FLATTEN void *
malloc_tracked(mp_thread_t *t, size_t n) {
    t->guard++;
    void *p = mp_real.malloc(n);
    if (p) mp_capture_event(t, MP_EV_ALLOC, MP_ALLOC_MALLOC, p, n);
    t->guard--;
    return p;
}

MP_EXPORT void *
malloc(size_t n) {
    if (MP_UNLIKELY(need_boot())) return boot_alloc(n, 16);
    mp_thread_t *t = &mp_thread;
    if (!TRACKING(t)) return mp_real.malloc(n);
    return malloc_tracked(t, n);
}

static MP_NOINLINE MP_FLATTEN void
free_tracked(mp_thread_t *t, void *p) {
    t->guard++;
    mp_capture_event(t, MP_EV_FREE, MP_ALLOC_FREE, p, 0); /* before: see the file comment */
    mp_real.free(p);
    t->guard--;
}

MP_EXPORT void
free(void *p) {
    if (!p || MP_UNLIKELY(is_boot(p))) return;
    if (MP_UNLIKELY(need_boot())) return; /* cannot happen: only boot blocks exist yet */
    mp_thread_t *t = &mp_thread;
    if (!TRACKING(t)) {
        mp_real.free(p);
        return;
    }
    free_tracked(t, p);
}

static MP_NOINLINE MP_FLATTEN void *
calloc_tracked(mp_thread_t *t, size_t n, size_t m, size_t total) {
    t->guard++;
    void *p = mp_real.calloc(n, m);
    if (p) mp_capture_event(t, MP_EV_ALLOC, MP_ALLOC_CALLOC, p, total);
    t->guard--;
    return p;
}

MP_EXPORT void *
calloc(size_t n, size_t m) {
    size_t total;
    if (MP_UNLIKELY(__builtin_mul_overflow(n, m, &total))) {
        errno = ENOMEM;
        return NULL;
    }
    if (MP_UNLIKELY(need_boot())) return boot_alloc(total, 16);
    mp_thread_t *t = &mp_thread;
    if (!TRACKING(t)) return mp_real.calloc(n, m);
    return calloc_tracked(t, n, m, total);
}

static MP_NOINLINE MP_FLATTEN void *
realloc_tracked(mp_thread_t *t, void *p, size_t n, unsigned allocator) {
    t->guard++;
    uint32_t stack = p ? mp_capture_event(t, MP_EV_FREE, allocator, p, 0) : 0;
    void *q = mp_real.realloc(p, n);
    /* Failed: p is still the caller's, unchanged; but realloc(p, 0) returning NULL freed p. */
    mp_capture_realloc_done(t, allocator, p, q, n, stack, n != 0);
    t->guard--;
    return q;
}

/* Shared by realloc and reallocarray; the caller has checked n for overflow. */
static inline void *
do_realloc(void *p, size_t n, unsigned allocator) {
    mp_thread_t *t = &mp_thread;
    if (!TRACKING(t)) return mp_real.realloc(p, n);
    return realloc_tracked(t, p, n, allocator);
}

static void *
boot_realloc(void *p, size_t n) {
    size_t old = boot_size(p);
    void *q = malloc(n);
    if (q) memcpy(q, p, old < n ? old : n);
    return q;
}

MP_EXPORT void *
realloc(void *p, size_t n) {
    if (MP_UNLIKELY(is_boot(p))) return boot_realloc(p, n);
    if (MP_UNLIKELY(need_boot())) return boot_alloc(n, 16);
    return do_realloc(p, n, MP_ALLOC_REALLOC);
}

MP_EXPORT void *
reallocarray(void *p, size_t n, size_t m) {
    size_t total;
    if (MP_UNLIKELY(__builtin_mul_overflow(n, m, &total))) {
        errno = ENOMEM;
        return NULL;
    }
    if (MP_UNLIKELY(is_boot(p))) return boot_realloc(p, total);
    if (MP_UNLIKELY(need_boot())) return boot_alloc(total, 16);
    return do_realloc(p, total, MP_ALLOC_REALLOCARRAY); /* overflow checked above */
}

MP_EXPORT int
posix_memalign(void **out, size_t align, size_t n) {
    if (MP_UNLIKELY(need_boot())) {
        if (align == 0 || (align & (align - 1)) || align % sizeof(void *)) return EINVAL;
        *out = boot_alloc(n, align);
        return *out ? 0 : ENOMEM;
    }
    mp_thread_t *t = &mp_thread;
    if (!TRACKING(t)) return mp_real.posix_memalign(out, align, n);
    t->guard++;
    int rc = mp_real.posix_memalign(out, align, n);
    if (rc == 0 && *out) mp_capture_event(t, MP_EV_ALLOC, MP_ALLOC_POSIX_MEMALIGN, *out, n);
    t->guard--;
    return rc;
}

/* aligned_alloc, memalign, valloc, pvalloc: one shape, different real call and allocator. */
#define ALIGNED_HOOK(name, allocator, params, args, boot_align)                                    \
    MP_EXPORT void *name params {                                                                  \
        if (MP_UNLIKELY(need_boot())) return boot_alloc(n, boot_align);                            \
        mp_thread_t *t = &mp_thread;                                                               \
        if (!TRACKING(t)) return mp_real.name args;                                                \
        t->guard++;                                                                                \
        void *p = mp_real.name args;                                                               \
        if (p) mp_capture_event(t, MP_EV_ALLOC, allocator, p, n);                                  \
        t->guard--;                                                                                \
        return p;                                                                                  \
    }

ALIGNED_HOOK(aligned_alloc, MP_ALLOC_ALIGNED_ALLOC, (size_t align, size_t n), (align, n), align)
ALIGNED_HOOK(memalign, MP_ALLOC_MEMALIGN, (size_t align, size_t n), (align, n), align)
ALIGNED_HOOK(valloc, MP_ALLOC_VALLOC, (size_t n), (n), 4096)
ALIGNED_HOOK(pvalloc, MP_ALLOC_PVALLOC, (size_t n), (n), 4096)

/* ---- process end without exit() ---------------------------------------------------------- */

MP_EXPORT void
_exit(int status) {
    mp_lifecycle_exit();
    mp_interpose_resolve();
    mp_real._exit(status);
    __builtin_unreachable();
}

MP_EXPORT void
_Exit(int status) {
    mp_lifecycle_exit();
    mp_interpose_resolve();
    mp_real._Exit(status);
    __builtin_unreachable();
}

MP_EXPORT void
abort(void) {
    mp_lifecycle_exit();
    mp_interpose_resolve();
    mp_real.abort();
    __builtin_unreachable();
}
