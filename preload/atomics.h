/* atomics.h - the memory order is part of every name, so each use says what it relies on
 * (after mimalloc's atomic.h). GCC/Clang builtins on plain integers and pointers. */
#ifndef MP_ATOMICS_H
#define MP_ATOMICS_H

#define mp_load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define mp_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define mp_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define mp_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define mp_fetch_add_relaxed(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define mp_fetch_add_acq_rel(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#define mp_cas_acq_rel(p, expected, desired)                                                       \
    __atomic_compare_exchange_n((p), (expected), (desired), 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

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
