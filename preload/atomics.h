/* atomics.h - the memory order is part of every name, so each use says what it relies on
 * (after mimalloc's atomic.h). GCC/Clang builtins on plain integers and pointers. */
#ifndef MP_ATOMICS_H
#define MP_ATOMICS_H

#include <stdint.h>

#define mp_load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define mp_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define mp_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define mp_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define mp_fetch_add_relaxed(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define mp_fetch_add_acq_rel(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#define mp_cas_acq_rel(p, expected, desired)                                                       \
    __atomic_compare_exchange_n((p), (expected), (desired), 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

/* Add v to *c, a counter that only the calling thread writes and other threads read (relaxed):
 * on x86-64 one add to memory (not locked: no other thread writes it; an aligned 8-byte store,
 * so a reader sees the old value or the new one), where the relaxed atomic store of *c + v is a
 * load, an add and a store, GCC fusing no atomic access (1 and 2 instructions an event on the
 * ring's counters, python-frames.md 8.9). Elsewhere, and under TSan (which must see the access),
 * that atomic store. */
static inline void
mp_owner_add(uint64_t *c, uint64_t v) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
    __asm__("addq %1, %0" : "+m"(*c) : "er"(v));
#else
    __atomic_store_n(c, *c + v, __ATOMIC_RELAXED);
#endif
}

/* Whether *p equals v, *p read relaxed: on x86-64 one compare of memory with v, where the relaxed
 * atomic load and the compare were two instructions (GCC fusing no atomic access: 1 instruction a
 * hook call, python.c's fast). An aligned 4-byte read, as the atomic load is there. Elsewhere,
 * and under TSan, that load. */
static inline int
mp_eq_relaxed_u32(const unsigned *p, unsigned v) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
    int eq;
    __asm__("cmpl %2, %1" : "=@ccz"(eq) : "m"(*p), "ir"(v));
    return eq;
#else
    return __atomic_load_n(p, __ATOMIC_RELAXED) == v;
#endif
}

#define MP_LIKELY(x) __builtin_expect(!!(x), 1)
#define MP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MP_NOINLINE __attribute__((noinline))
#define MP_ALWAYS_INLINE inline __attribute__((always_inline))
/* On an allocator hook: inline the event path into it (across files, with link-time
 * optimization), so that a hook and its event are one function. Worth some 8% of memprof's
 * instructions per event (cachegrind, scripts/bench_py/churn.py); slow paths that must stay out
 * of line are MP_NOINLINE. */
#define MP_FLATTEN __attribute__((flatten))
/* The code nearly every Python event runs (a layout family's hooks, their fast_* functions, the
 * pushes) in one named section a family, which the linker keeps whole, next to the other hot
 * text: a few KiB side by side rather than spread over the library, so they take few lines of
 * each set of the instruction cache the interpreter shares with them (python-frames.md 8.4). */
#define MP_HOT_TEXT(name) __attribute__((section(".text.hot.mp_" name)))

#endif
