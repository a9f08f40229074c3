/* capture.h - one heap event: sequence number, stack, and the push into the thread's ring.
 *
 * Called only from interpose.c (and the CPython hooks) with the thread's guard already set, so
 * anything these functions call that allocates (libunwind's first use, pthread_setspecific)
 * goes straight to the real allocator untracked. Never allocates through malloc itself, takes
 * no lock, and leaves errno alone.
 */
#ifndef MP_CAPTURE_H
#define MP_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "ring.h"

/* Per-thread state: one initial-exec TLS block, so reaching it never calls into the dynamic
 * loader (which could allocate) - the model for the "recursion guard" of DESIGN.md. */
typedef struct mp_thread_s {
    /* fast and guard, read as one word by the Python hooks' fast path (python.c): word == 1 says
     * that fast is 1 and guard 0 in one load and one compare. fast is 0 in a zeroed (new) TLS
     * block, so a thread's first event takes the general path, which gives it its ring. */
    union {
        struct {
            int fast;  /* 1 while status is active, frees_only 0 and the memo mapped (below) */
            int guard; /* > 0 inside a hook or memprof's own code: nested calls pass through */
        };
        uint64_t word;
    };
    int status;      /* mp_thread_* */
    int resolving;   /* this thread is resolving the real allocator (bootstrap arena) */
    int frees_only;  /* > 0: record frees but not allocations (memprof's own Python calls) */
    mp_ring_t *ring; /* owned ring (status == mp_thread_active) */
    uintptr_t self;  /* pthread_self(), set with ring */
    void *memo;      /* while fast, ring->scratch (capture.c's memo), not read through ring */
    /* Python stack inherited from the thread that created this one (thread_start.c): used
     * while this thread runs no Python code of its own. Points into the stack table. */
    const uint64_t *inherit;
    uint32_t inherit_n;
    uint32_t inherit_id; /* its stack id */
    /* 3.12+: the address of this thread's _Py_tss_tstate (mp_pyframes_tls_slot), once found. */
    const uint8_t *const *py_tls;
    /* 3.8-3.11: this thread's PyThreadState as last seen holding the GIL (the GIL holder's, with
     * this thread's id), or MP_PY_HELD_NONE. The fast path takes a GIL holder equal to it for
     * this thread's without reading the state's thread id (capture.c's mp_capture_py_hot); a RAW
     * free of it (the state deleted) resets it (python.c's held_freed). Never NULL once the
     * thread has a ring, so that equality also says the holder is not NULL. */
    const uint8_t *py_held;
} mp_thread_t;
#define MP_PY_HELD_NONE ((const uint8_t *)(uintptr_t)1) /* no thread state is ever at 1 */

enum { mp_thread_new = 0, mp_thread_active = 1, mp_thread_exited = 2 };
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "mp_thread_t.word == 1 reads fast first");

/* After a change of t's status or frees_only, or once its ring's scratch mapping (capture.c's
 * memo) is in place: the fast path reads the memo (t->memo) without testing for it. An active
 * thread has a ring; a ring's scratch, once mapped, stays for good (every later owner keeps it). */
static inline void
mp_thread_refresh(mp_thread_t *t) {
    t->fast = t->status == mp_thread_active && t->frees_only == 0 && t->ring->scratch != NULL;
    t->memo = t->fast ? t->ring->scratch : NULL;
}

extern __thread mp_thread_t mp_thread __attribute__((tls_model("initial-exec")));

/* Global tracking state. */
enum { mp_state_off = 0, mp_state_running = 1, mp_state_stopping = 2, mp_state_disabled = 3 };
extern int mp_state; /* hooks record only while mp_state_running; set with mp_state_set */
/* Set mp_state (release), and python.h's mp_pyfast_off bit with it, which the Python hooks' fast
 * path tests instead of mp_state. A hook that read the bit just before the change records its
 * event, as one that read mp_state just before it always has. */
void mp_state_set(int state);
/* The same if mp_state is expect (acq_rel compare-and-swap); whether it was. */
int mp_state_cas(int expect, int state);
extern int mp_abandon; /* nonzero: producers stop waiting for ring space */
/* The process-wide sequence counter (FORMAT.md 6), alone on its cache line: every producer
 * thread updates it, and a flag read on every event next to it would miss each time. */
typedef struct mp_seq_line_s {
    _Alignas(64) uint64_t value;
} mp_seq_line_t;
extern mp_seq_line_t mp_seq_line;
#define mp_seq (mp_seq_line.value)
extern int mp_native;              /* capture native stacks */
extern int mp_depth;               /* max native frames */
extern uint64_t mp_stacks_dropped; /* events whose stack could not be interned */

/* Record only when tracking runs and we are not already inside memprof on this thread. */
static inline int
mp_tracking(const mp_thread_t *t) {
    return __builtin_expect(!t->guard, 1) &&
           __builtin_expect(__atomic_load_n(&mp_state, __ATOMIC_RELAXED) == mp_state_running, 1);
}

/* The calling thread's Python stack, interned (0: none); frames and n give the stored copy.
 * For thread_start.c: what a new thread inherits. */
uint32_t mp_capture_python_stack(const uint64_t **frames, uint32_t *n);

int mp_capture_init(int native, int depth); /* once, from the constructor; 0 or -1 */
/* Record one event of kind MP_EV_* for allocator MP_ALLOC_*. FREE: call before the real free;
 * ALLOC: after the real allocation returned. Returns the stack id recorded (0: none). */
uint32_t mp_capture_event(mp_thread_t *t, unsigned kind, unsigned allocator, const void *ptr,
                          size_t size);
/* The same, from the Python hooks compiled for layout family fam (pyframes.h): while the fast
 * path applies (python.h's mp_pyfast), with that family's layout tests resolved at compile time
 * and the general path's tests left out; otherwise mp_capture_event. */
uint32_t mp_capture_py_event(mp_thread_t *t, unsigned kind, unsigned allocator, const void *ptr,
                             size_t size, int fam);
/* The fast path itself: only while t->word == 1 and mp_pyfast == fam (fam not MP_PYFAM_ANY). */
uint32_t mp_capture_py_fast(mp_thread_t *t, unsigned kind, unsigned allocator, const void *ptr,
                            size_t size, int fam);
/* The fast path's stack of nearly every event (a hot entry's), found with no call; 0 when it
 * takes more (the caller then calls mp_capture_py_fast). */
uint32_t mp_capture_py_hot(const mp_thread_t *t, int fam);
/* The fast path's push of an event whose stack is known, below MP_RING_SHORT_STACKS (ring.h): an
 * ALLOC (which also ends the guard and returns ptr, for the hooks to jump to) and a FREE (which
 * returns ptr, for the free hook's call of the function it wraps: python.c's hook_free_t). Either
 * leaves stack as the ring's last_stack (a realloc's ALLOC takes it from there). head: the event's
 * short head byte (ring.h's mp_ring_short_head of its kind and allocator). */
void *mp_capture_py_alloc_push(mp_thread_t *t, unsigned head, void *ptr, size_t size,
                               uint32_t stack) __attribute__((noinline));
void *mp_capture_py_free_push(mp_thread_t *t, unsigned head, void *ptr, uint32_t stack)
    __attribute__((noinline));
/* On the fast path, an event with its stack known and any id (a failed realloc's REALLOC_FAIL,
 * or its ALLOC when the stack is too large for mp_capture_py_alloc_push): out of line, as it is
 * rare. */
void mp_capture_py_push(const mp_thread_t *t, unsigned kind, unsigned allocator, const void *ptr,
                        size_t size, uint32_t stack) __attribute__((noinline));
/* After a realloc of p (NULL: it allocates) returned q, p's FREE having been recorded before the
 * call by mp_capture_event, which returned stack: q's ALLOC, or, when the call failed and p is
 * still the caller's (kept), a REALLOC_FAIL. Reuses stack rather than walking again (unless the
 * ALLOC needs a native stack). */
void mp_capture_realloc_done(mp_thread_t *t, unsigned allocator, const void *p, const void *q,
                             size_t n, uint32_t stack, int kept);
/* Record a marker (MP_MARK_*) from the calling thread. */
void mp_capture_marker(mp_thread_t *t, unsigned kind);
/* Fork child: the calling thread keeps its ring, every other ring is reset. */
void mp_capture_after_fork_child(mp_thread_t *t);

#endif
