/* python.c - CPython detection, PyMem_SetAllocator hooks, the pending call (see python.h).
 *
 * Hooks: pass-through wrappers on the RAW, MEM and OBJ domains. Each raises the thread's guard
 * around the wrapped call, so an OBJ allocation that pymalloc serves from malloc, or that the
 * debug hooks forward to another domain, is one event: the outermost one, with the pointer the
 * program sees. Python's own allocators stay in place (pymalloc keeps running).
 *
 * PYTHONMALLOC=... and -X dev replace the allocators during start-up, after our constructor. The
 * pending call (main thread, GIL held; scheduled once Python code runs and the interpreter is
 * initialized, by the first memo miss after that or the writer's next pass) then wraps
 * whatever is installed, with fresh context structs: a thread still inside an old wrapper keeps
 * reading its own, unchanged context. It also registers the end-of-main callback with atexit,
 * but never inside the import machinery's _ModuleLock.acquire (in_module_lock).
 */
#include "python.h"

#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "capture.h"
#include "format.h"
#include "pycode.h"
#include "pyframes.h"
#include "pytls.h"
#include "stacks.h"
#include "sys.h"

/* CPython's PyMemAllocatorEx (stable since 3.5) and the parts of the C API we call, declared
 * here so that Python.h is never included (pylayout.h says why). */
typedef struct pymem_allocator_s {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr);
} pymem_allocator_t;

typedef void pyobj;
typedef pyobj *(*pycfunc)(pyobj *, pyobj *);
typedef struct pymethoddef_s {
    const char *name;
    pycfunc meth;
    int flags;
    const char *doc;
} pymethoddef_t;
#define PY_METH_NOARGS 0x0004

static struct {
    void (*get_allocator)(int, pymem_allocator_t *);
    void (*set_allocator)(int, pymem_allocator_t *);
    int (*is_initialized)(void);
    int (*add_pending_call)(int (*)(void *), void *);
    pyobj *(*import_module)(const char *);
    pyobj *(*getattr_string)(pyobj *, const char *);
    pyobj *(*call_objargs)(pyobj *, ...);
    pyobj *(*cfunction_new)(pymethoddef_t *, pyobj *, pyobj *);
    void (*decref)(pyobj *);
    void (*incref)(pyobj *);
    void (*err_clear)(void);
    void *(*thread_state_get)(void);
    pyobj *(*eval_get_frame)(void);
    pyobj *(*frame_get_code)(pyobj *);
    const char *(*unicode_utf8)(pyobj *);
    pyobj *none;
} api;

int mp_python_running;
static int found;
static int pending_state; /* 0 not yet (or again), 1 scheduled, 2 ran */
static mp_pyinfo_t info;
static unsigned info_gen;

/* ---- the allocator hooks ------------------------------------------------------------------- */

typedef struct domain_s {
    pymem_allocator_t orig; /* what we wrap */
    unsigned allocator;     /* MP_ALLOC_PYMEM_* */
} domain_t;

/* [0]: installed by the constructor; [1..]: each re-installation gets fresh contexts. */
#define INSTALL_SETS 4
static domain_t domains[INSTALL_SETS][3];
static int sets_used;
unsigned mp_pyfast = mp_pyfast_off;

/* The hooks, as templates of the layout family fam (pyframes.h): each is compiled once per family
 * (HOOKS below), one family per CPython version, so that the fast path's layout tests are
 * resolved and its offsets are immediates at compile time (mp_pyL); the set that matches the
 * interpreter is installed (hook_family).
 *
 * Each hook is its fast path's tests and the wrapped call, inlined, the event out of line and
 * shared (fast_alloc_*, fast_free_*), and a general path out of line (hook_*_gen: guard, state,
 * mp_capture_py_event's tests). The fast path sets the guard to 1 and back to 0 rather than
 * counting: it runs only when the guard was 0. */

/* Each hook below passes a call nested in another hook (t->guard set: pymalloc takes its large
 * blocks from PyMem_RawMalloc, whose hook is ours too) straight to the function it wraps, as its
 * general path would after saving registers and loading the state: some 50 instructions fewer
 * for each such pair of calls on scripts/bench_py/mix.py (callgrind).
 *
 * Whether the fast path applies to an event of t from hooks of family fam: fam is the installed
 * family and every general test comes out the usual way (mp_pyfast, which includes mp_state), and
 * t has its own ring, records allocations and is not inside memprof (t->word): two loads and two
 * compares, where there were five of each. */
static MP_ALWAYS_INLINE int
fast(const mp_thread_t *t, int fam) {
    return fam != MP_PYFAM_ANY && MP_LIKELY(t->word == 1) &&
           MP_LIKELY(mp_eq_relaxed_u32(&mp_pyfast, (unsigned)fam));
}

static MP_NOINLINE void *
hook_malloc_gen(void *ctx, size_t n, int fam) {
    domain_t *d = ctx;
    mp_thread_t *t = &mp_thread;
    if (!mp_tracking(t)) return d->orig.malloc(d->orig.ctx, n);
    t->guard++;
    void *p = d->orig.malloc(d->orig.ctx, n);
    if (p) mp_capture_py_event(t, MP_EV_ALLOC, d->allocator, p, n, fam);
    t->guard--;
    return p;
}

/* The allocator (MP_ALLOC_PYMEM_*) of the domain whose hooks are compiled with dom (0 RAW, 1 MEM,
 * 2 OBJ: a constant), or d's (dom -1). */
static MP_ALWAYS_INLINE unsigned
dom_allocator(const domain_t *d, int dom) {
    return dom < 0 ? d->allocator : MP_ALLOC_PYMEM_RAW + (unsigned)dom;
}

/* The fast path's event, out of line: one copy per family and kind, shared by every hook (not
 * one inlined into each: those copies evicted the interpreter's code from the instruction cache;
 * python-frames.md 8.3). The stack of nearly every event (mp_capture_py_hot) and its push
 * (mp_capture_py_*_push) take no call that returns to them, so these functions save few registers
 * or none; anything else goes to slow_*, which start over with mp_capture_py_fast. An ALLOC's
 * ends the guard and returns the block: the hooks jump to it. A FREE's returns the block too, for
 * the free hook's wrapped call. */
#define FAST_FNS(sfx, fam)                                                                         \
    static MP_NOINLINE MP_FLATTEN void *slow_alloc_##sfx(mp_thread_t *t, unsigned hd, void *p,     \
                                                         size_t n) {                               \
        mp_capture_py_fast(t, MP_EV_ALLOC, mp_ring_head_allocator(hd), p, n, fam);                 \
        t->guard = 0;                                                                              \
        return p;                                                                                  \
    }                                                                                              \
    static MP_NOINLINE MP_FLATTEN void *slow_free_##sfx(mp_thread_t *t, unsigned hd, void *p) {    \
        mp_capture_py_fast(t, MP_EV_FREE, mp_ring_head_allocator(hd), p, 0, fam);                  \
        return p;                                                                                  \
    }                                                                                              \
    static MP_NOINLINE MP_FLATTEN MP_HOT_TEXT(#sfx) void *fast_alloc_##sfx(                        \
        mp_thread_t *t, unsigned hd, void *p, size_t n) {                                          \
        uint32_t id = mp_capture_py_hot(t, fam);                                                   \
        if (MP_UNLIKELY(id == 0)) return slow_alloc_##sfx(t, hd, p, n);                            \
        return mp_capture_py_alloc_push(t, hd, p, n, id);                                          \
    }                                                                                              \
    static MP_NOINLINE MP_FLATTEN MP_HOT_TEXT(#sfx) void *fast_free_##sfx(mp_thread_t *t,          \
                                                                          unsigned hd, void *p) {  \
        uint32_t id = mp_capture_py_hot(t, fam);                                                   \
        if (MP_UNLIKELY(id == 0)) return slow_free_##sfx(t, hd, p);                                \
        return mp_capture_py_free_push(t, hd, p, id);                                              \
    }
/* The hook templates below take the family's pair (FAST_FNS, instantiated by HOOKS). */
typedef void *(*fast_alloc_fn)(mp_thread_t *t, unsigned hd, void *p, size_t n);
typedef void *(*fast_free_fn)(mp_thread_t *t, unsigned hd, void *p);

/* A fast ALLOC whose call failed: the guard's end, out of line, so that the hooks keep nothing
 * but the size across the wrapped call (the thread's address was kept for this: one saved
 * register and 4 instructions a call). */
static MP_NOINLINE void *
alloc_failed(void) {
    mp_thread.guard = 0;
    return NULL;
}

/* After the wrapped call of a fast ALLOC (malloc, calloc, realloc of NULL) returned p: its event
 * (fa ends the guard), or, when the call failed, only the guard's end. hd: the event's head byte
 * (ring.h's mp_ring_short_head), which the fast path takes for the allocator. */
static MP_ALWAYS_INLINE void *
alloc_done(mp_thread_t *t, unsigned hd, void *p, size_t n, fast_alloc_fn fa) {
    if (MP_UNLIKELY(!p)) return alloc_failed();
    return fa(t, hd, p, n);
}

static MP_ALWAYS_INLINE void *
hook_malloc_t(void *ctx, size_t n, int fam, int dom, fast_alloc_fn fa) {
    domain_t *d = ctx;
    mp_thread_t *t = &mp_thread;
    if (!fast(t, fam)) {
        if (t->guard) return d->orig.malloc(d->orig.ctx, n); /* nested: passed through */
        return hook_malloc_gen(ctx, n, fam);
    }
    t->guard = 1;
    return alloc_done(t, mp_ring_short_head(MP_EV_ALLOC, dom_allocator(d, dom)),
                      d->orig.malloc(d->orig.ctx, n), n, fa);
}

static MP_NOINLINE void *
hook_calloc_gen(void *ctx, size_t n, size_t m, int fam) {
    domain_t *d = ctx;
    mp_thread_t *t = &mp_thread;
    size_t total;
    if (!mp_tracking(t) || __builtin_mul_overflow(n, m, &total))
        return d->orig.calloc(d->orig.ctx, n, m);
    t->guard++;
    void *p = d->orig.calloc(d->orig.ctx, n, m);
    if (p) mp_capture_py_event(t, MP_EV_ALLOC, d->allocator, p, total, fam);
    t->guard--;
    return p;
}

static MP_ALWAYS_INLINE void *
hook_calloc_t(void *ctx, size_t n, size_t m, int fam, fast_alloc_fn fa) {
    domain_t *d = ctx;
    mp_thread_t *t = &mp_thread;
    size_t total;
    if (!fast(t, fam) || __builtin_mul_overflow(n, m, &total)) {
        if (t->guard) return d->orig.calloc(d->orig.ctx, n, m); /* nested: passed through */
        return hook_calloc_gen(ctx, n, m, fam);
    }
    t->guard = 1;
    return alloc_done(t, mp_ring_short_head(MP_EV_ALLOC, d->allocator),
                      d->orig.calloc(d->orig.ctx, n, m), total, fa);
}

static MP_NOINLINE void *
hook_realloc_gen(void *ctx, void *p, size_t n, int fam) {
    domain_t *d = ctx;
    mp_thread_t *t = &mp_thread;
    if (!mp_tracking(t)) return d->orig.realloc(d->orig.ctx, p, n);
    t->guard++;
    /* The FREE before the call: FORMAT.md 6. */
    uint32_t stack = p ? mp_capture_py_event(t, MP_EV_FREE, d->allocator, p, 0, fam) : 0;
    void *q = d->orig.realloc(d->orig.ctx, p, n);
    /* PyMem realloc never frees on size 0 (it allocates 1 byte): NULL is a failure and p is
     * still the caller's. */
    mp_capture_realloc_done(t, d->allocator, p, q, n, stack, 1);
    t->guard--;
    return q;
}

/* The fast path of a realloc: of a block, its FREE, then its ALLOC (or, PyMem realloc failing
 * without freeing, a REALLOC_FAIL) with the same stack, found once; of NULL (a list's first
 * append, say), an ALLOC. */
static MP_ALWAYS_INLINE void *
hook_realloc_t(void *ctx, void *p, size_t n, int fam, fast_alloc_fn fa, fast_free_fn ff) {
    domain_t *d = ctx;
    mp_thread_t *t = &mp_thread;
    if (!fast(t, fam)) {
        if (t->guard) return d->orig.realloc(d->orig.ctx, p, n); /* nested: passed through */
        return hook_realloc_gen(ctx, p, n, fam);
    }
    t->guard = 1;
    unsigned a = d->allocator;
    unsigned ha = mp_ring_short_head(MP_EV_ALLOC, a);
    if (!p) return alloc_done(t, ha, d->orig.realloc(d->orig.ctx, NULL, n), n, fa);
    p = ff(t, mp_ring_short_head(MP_EV_FREE, a), p);
    void *q = d->orig.realloc(d->orig.ctx, p, n);
    /* The FREE's stack, which its push left in the ring (capture.h), read after the call (nested
     * calls pass through: nothing else is pushed), which then keeps one value fewer. Every push
     * of t's takes its own ring on the fast path, and only a push given up as the process ends
     * leaves another stack there: the ALLOC below is then given up too. */
    uint32_t stack = t->ring->last_stack;
    /* The ALLOC through the fast ALLOC's push (no copy of the encoder here: python-frames.md
     * 8.4), which ends the guard; a stack found on the slow path may be too large for it (ring.h:
     * MP_RING_SHORT_STACKS). */
    if (MP_LIKELY(q != NULL && stack < MP_RING_SHORT_STACKS))
        return mp_capture_py_alloc_push(t, ha, q, n, stack);
    if (q)
        mp_capture_py_push(t, MP_EV_ALLOC, a, q, n, stack);
    else
        mp_capture_py_push(t, MP_EV_REALLOC_FAIL, a, p, 0, stack);
    t->guard = 0;
    return q;
}

/* A code object's memory is about to be reused: end the walk memos (capture.c) that know its
 * address (mp_pycode_gen). The layout families' hooks leave this to code_dealloc below (they are
 * installed only with it in place: mp_python_init); MP_PYFAM_ANY's test every OBJ block they free.
 * Its header is intact here, freed by its own dealloc; every OBJ block has at least 16 readable
 * bytes (pymalloc's alignment; malloc's minimum chunk). Tracked or not. code_type is never NULL
 * (pyframes.c), so an unknown type needs no test here. */
static MP_ALWAYS_INLINE void
code_freed(const domain_t *d, void *p, int dom, int fam) {
    if (fam != MP_PYFAM_ANY) return;
    if (dom_allocator(d, dom) == MP_ALLOC_PYMEM_OBJ && p) {
        if (mp_ldp(p, 8) == mp_pyenv.code_type) mp_fetch_add_relaxed(&mp_pycode_gen, 1);
    }
}

/* PyCode_Type's tp_dealloc, wrapped: every code object's deallocation ends the walk memos once it
 * has freed the object, rather than every OBJ free testing its block's type (3 instructions and a
 * read of the freed block on each; 1.3 an event on scripts/bench_py/churn.py). After, not before:
 * the dealloc releases the object's names and tables, whose events may refill a memo entry with
 * the dying object's addresses (a frame that runs it can still be on the chain then: 9.1 of
 * python-frames.md); and between the free and the bump nothing can take the block for another
 * code object, which is made with the GIL held, as the dealloc runs. Set in the constructor,
 * before the interpreter has made any code object (hook_code_dealloc). */
typedef void (*destructor_fn)(void *);
static destructor_fn code_dealloc_orig;
#define TP_NAME_OFF 24    /* PyTypeObject: PyObject_VAR_HEAD (24 bytes), tp_name, */
#define TP_DEALLOC_OFF 48 /* tp_basicsize, tp_itemsize, tp_dealloc: 3.8 to 3.13 alike */

static void
code_dealloc(void *co) {
    code_dealloc_orig(co);
    mp_fetch_add_relaxed(&mp_pycode_gen, 1);
}

/* Wrap the tp_dealloc of type (PyCode_Type), once its tp_name says that the layout is the one
 * above; whether it did. Type objects are writable (PyType_Ready fills them in). */
static int
hook_code_dealloc(const void *type) {
    const uint8_t *t = type;
    const char *name = (const char *)mp_ldp(t, TP_NAME_OFF);
    destructor_fn *slot = (destructor_fn *)(uintptr_t)(t + TP_DEALLOC_OFF);
    if (!name || strcmp(name, "code") != 0 || !*slot) return 0;
    if (*slot == code_dealloc) return 1;
    code_dealloc_orig = *slot;
    __atomic_store_n(slot, code_dealloc, __ATOMIC_RELEASE);
    return 1;
}

/* A RAW block is about to be freed, its FREE recorded: if it is the calling thread's thread state
 * as the fast path knows it (3.8-3.11: capture.h's py_held), forget it, tracked or not, so that no
 * later state at that address passes for this thread's. After the event, which would otherwise
 * learn it again (the state is still whole and held then: python_stack_id), and before the real
 * free. Thread states are RAW blocks (pystate.c's alloc_threadstate), and a thread deletes its own
 * (capture.c's mp_capture_py_hot says which deletions this misses). 3.12+ families do not read
 * py_held. */
static MP_ALWAYS_INLINE void
held_freed(const domain_t *d, const void *p, int dom, int fam) {
    if (fam != MP_PYFAM_ANY && !mp_pyfam_gil_holder(fam)) return;
    if (dom_allocator(d, dom) == MP_ALLOC_PYMEM_RAW && MP_UNLIKELY(p == mp_thread.py_held))
        mp_thread.py_held = MP_PY_HELD_NONE;
}

static MP_NOINLINE void
hook_free_gen(void *ctx, void *p, int fam) {
    domain_t *d = ctx;
    mp_thread_t *t = &mp_thread;
    if (!p || !mp_tracking(t)) {
        held_freed(d, p, -1, fam);
        d->orig.free(d->orig.ctx, p);
        return;
    }
    t->guard++;
    mp_capture_py_event(t, MP_EV_FREE, d->allocator, p, 0, fam);
    held_freed(d, p, -1, fam);
    d->orig.free(d->orig.ctx, p);
    t->guard--;
}

/* The calling thread's guard back to 0 after the wrapped free of a fast FREE, with the thread's
 * TLS offset loaded again here: GCC keeps the offset it loaded on entry in a saved register across
 * the two calls, which with the stack's alignment took 4 instructions where this takes one (the
 * load). The initial-exec sequence of the x86-64 ABI (mp_thread is initial-exec, capture.h); the
 * memory clobber keeps it after the call. Elsewhere, the plain store (as atomics.h's x86-64
 * forms fall back). */
static MP_ALWAYS_INLINE void
guard_end_reload(void) {
#if defined(__x86_64__)
    __asm__ volatile("movq mp_thread@gottpoff(%%rip), %%rax\n\t"
                     "movl $0, %%fs:%c0(%%rax)" ::"i"(offsetof(mp_thread_t, guard))
                     : "rax", "memory");
#else
    mp_thread.guard = 0;
#endif
}

static MP_ALWAYS_INLINE void
hook_free_t(void *ctx, void *p, int fam, int dom, fast_free_fn ff) {
    domain_t *d = ctx;
    mp_thread_t *t = &mp_thread;
    code_freed(d, p, dom, fam);
    if (!p || !fast(t, fam)) {
        if (t->guard) { /* nested: passed through */
            held_freed(d, p, dom, fam);
            d->orig.free(d->orig.ctx, p);
            return;
        }
        hook_free_gen(ctx, p, fam);
        return;
    }
    t->guard = 1;
    /* p back from the event, which returns it, rather than kept across the call (a saved
     * register and 3 instructions an event). */
    p = ff(t, mp_ring_short_head(MP_EV_FREE, dom_allocator(d, dom)), p);
    held_freed(d, p, dom, fam);
    d->orig.free(d->orig.ctx, p);
    guard_end_reload();
}

/* A family's hooks: malloc and free once per domain (0 RAW, 1 MEM, 2 OBJ), with its allocator a
 * constant, calloc and realloc once; MP_PYFAM_ANY's read the allocator from their context. */
typedef struct hook_set_s {
    void *(*malloc[3])(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free[3])(void *ctx, void *ptr);
} hook_set_t;

#define HOOKS_DOM(sfx, fam, dom)                                                                   \
    static MP_FLATTEN MP_HOT_TEXT(#sfx) void *hook_malloc_##sfx##_##dom(void *ctx, size_t n) {     \
        return hook_malloc_t(ctx, n, fam, dom, fast_alloc_##sfx);                                  \
    }                                                                                              \
    static MP_FLATTEN MP_HOT_TEXT(#sfx) void hook_free_##sfx##_##dom(void *ctx, void *p) {         \
        hook_free_t(ctx, p, fam, dom, fast_free_##sfx);                                            \
    }
#define HOOKS(sfx, fam)                                                                            \
    FAST_FNS(sfx, fam)                                                                             \
    HOOKS_DOM(sfx, fam, 0)                                                                         \
    HOOKS_DOM(sfx, fam, 1)                                                                         \
    HOOKS_DOM(sfx, fam, 2)                                                                         \
    static MP_FLATTEN MP_HOT_TEXT(#sfx) void *hook_calloc_##sfx(void *ctx, size_t n, size_t m) {   \
        return hook_calloc_t(ctx, n, m, fam, fast_alloc_##sfx);                                    \
    }                                                                                              \
    static MP_FLATTEN MP_HOT_TEXT(#sfx) void *hook_realloc_##sfx(void *ctx, void *p, size_t n) {   \
        return hook_realloc_t(ctx, p, n, fam, fast_alloc_##sfx, fast_free_##sfx);                  \
    }
static MP_FLATTEN void *
hook_malloc_any(void *ctx, size_t n) {
    return hook_malloc_t(ctx, n, MP_PYFAM_ANY, -1, NULL);
}
static MP_FLATTEN void
hook_free_any(void *ctx, void *p) {
    hook_free_t(ctx, p, MP_PYFAM_ANY, -1, NULL);
}
static MP_FLATTEN void *
hook_calloc_any(void *ctx, size_t n, size_t m) {
    return hook_calloc_t(ctx, n, m, MP_PYFAM_ANY, NULL);
}
static MP_FLATTEN void *
hook_realloc_any(void *ctx, void *p, size_t n) {
    return hook_realloc_t(ctx, p, n, MP_PYFAM_ANY, NULL, NULL);
}
HOOKS(38, MP_PYFAM_38)
HOOKS(39, MP_PYFAM_39)
HOOKS(310, MP_PYFAM_310)
HOOKS(311, MP_PYFAM_311)
HOOKS(312, MP_PYFAM_312)
HOOKS(313, MP_PYFAM_313)
#undef HOOKS
#undef HOOKS_DOM
#undef FAST_FNS

#define SET(sfx)                                                                                   \
    {                                                                                              \
        {hook_malloc_##sfx##_0, hook_malloc_##sfx##_1, hook_malloc_##sfx##_2}, hook_calloc_##sfx,  \
            hook_realloc_##sfx, {                                                                  \
            hook_free_##sfx##_0, hook_free_##sfx##_1, hook_free_##sfx##_2                          \
        }                                                                                          \
    }
/* By family (MP_PYFAM_*). */
static const hook_set_t hook_sets[MP_PYFAM_COUNT] = {
    {{hook_malloc_any, hook_malloc_any, hook_malloc_any},
     hook_calloc_any,
     hook_realloc_any,
     {hook_free_any, hook_free_any, hook_free_any}},
    SET(38),
    SET(39),
    SET(310),
    SET(311),
    SET(312),
    SET(313),
};
#undef SET
static int hook_family; /* the set install uses: MP_PYFAM_ANY unless a layout was selected */

static int
is_ours(const pymem_allocator_t *a) {
    for (int i = 0; i < MP_PYFAM_COUNT; i++)
        for (int dom = 0; dom < 3; dom++)
            if (a->malloc == hook_sets[i].malloc[dom]) return 1;
    return 0;
}

/* Wrap the current allocator of every domain not already wrapped; returns the domains hooked. */
static unsigned
install(void) {
    unsigned hooked = 0;
    if (sets_used == INSTALL_SETS) return 0;
    int set = sets_used++;
    static const unsigned kinds[3] = {MP_ALLOC_PYMEM_RAW, MP_ALLOC_PYMEM_MEM, MP_ALLOC_PYMEM_OBJ};
    for (int dom = 0; dom < 3; dom++) {
        pymem_allocator_t cur;
        api.get_allocator(dom, &cur);
        if (is_ours(&cur)) {
            hooked |= 1u << dom;
            continue;
        }
        domain_t *d = &domains[set][dom];
        d->orig = cur;
        d->allocator = kinds[dom];
        const hook_set_t *h = &hook_sets[hook_family];
        pymem_allocator_t mine = {d, h->malloc[dom], h->calloc, h->realloc, h->free[dom]};
        api.set_allocator(dom, &mine);
        hooked |= 1u << dom;
    }
    return hooked;
}

/* ---- the pending call ---------------------------------------------------------------------- */

static void
set_info(unsigned hooks, const char *allocator) {
    info.hooks = hooks;
    if (allocator) mp_str_copy(info.allocator, sizeof info.allocator, allocator);
    mp_fetch_add_acq_rel(&info_gen, 1);
}

static pyobj *
main_end(pyobj *self, pyobj *unused) {
    (void)self;
    (void)unused;
    mp_thread_t *t = &mp_thread;
    if (mp_load_relaxed(&mp_state) == mp_state_running && !t->guard) {
        t->guard++;
        mp_capture_marker(t, MP_MARK_MAIN_END);
        t->guard--;
    }
    api.incref(api.none);
    return api.none;
}

static pymethoddef_t main_end_def = {"memprof_main_end", main_end, PY_METH_NOARGS,
                                     "memprof: marks the end of the main code"};

/* atexit callbacks run before interpreter finalization, after non-daemon threads are joined:
 * the "end of main code" of DESIGN.md. Registered early, ours runs after the program's own. */
static void
register_main_end(void) {
    pyobj *fn = api.cfunction_new(&main_end_def, NULL, NULL);
    pyobj *mod = fn ? api.import_module("atexit") : NULL;
    pyobj *reg = mod ? api.getattr_string(mod, "register") : NULL;
    pyobj *r = reg ? api.call_objargs(reg, fn, NULL) : NULL;
    if (!r) api.err_clear();
    if (r) api.decref(r);
    if (reg) api.decref(reg);
    if (mod) api.decref(mod);
    if (fn) api.decref(fn);
}

/* The code object of the main thread's innermost frame (a new reference), or NULL. */
static pyobj *
top_code(void) {
    pyobj *frame = api.eval_get_frame ? api.eval_get_frame() : NULL; /* borrowed */
    if (!frame) return NULL;
    if (api.frame_get_code) return api.frame_get_code(frame);
    pyobj *co = (pyobj *)mp_ldp((const uint8_t *)frame, mp_pyenv.L.f_code); /* 3.8 */
    if (co) api.incref(co);
    return co;
}

/* The walker must agree with the interpreter's own API on the current thread state and the
 * innermost code object (docs/dev/python-frames.md 10.4); otherwise Python stacks go off. */
static int
self_test(void) {
    if (!api.thread_state_get || !api.eval_get_frame) return 1;
    if ((const void *)mp_pyframes_tstate() != api.thread_state_get()) return 0;
    pyobj *co = top_code();
    if (!co) return 1; /* no frame yet */
    api.decref(co);
    return mp_pyframes_top_code() == (const uint8_t *)co;
}

/* Whether the innermost frame is the import machinery's _ModuleLock.acquire. A pending call runs
 * wherever the interpreter checks for them, and one that imports inside acquire breaks it: up to
 * 3.11, acquire keeps one _blocking_on entry per thread, so an import nested there removes the
 * entry and the outer acquire fails with KeyError (seen at start-up under 3.8: "Failed to import
 * the site module", 6 of 1200 stressed start-ups). Anywhere else a nested import is what a
 * module body's own import statements do. */
static int
in_module_lock(void) {
    pyobj *co = top_code();
    pyobj *file = co ? api.getattr_string(co, "co_filename") : NULL;
    pyobj *name = file ? api.getattr_string(co, "co_name") : NULL;
    const char *f = file ? api.unicode_utf8(file) : NULL;
    const char *n = name ? api.unicode_utf8(name) : NULL;
    int in = f && n && strcmp(f, "<frozen importlib._bootstrap>") == 0 && strcmp(n, "acquire") == 0;
    if (!f || !n) api.err_clear();
    if (name) api.decref(name);
    if (file) api.decref(file);
    if (co) api.decref(co);
    return in;
}

static int checks_done; /* the pending call's self-test and re-installation ran */

static int
pending(void *arg) {
    (void)arg;
    mp_thread_t *t = &mp_thread;
    /* The self-test and the atexit registration run interpreter code: what they allocate is
     * memprof's, not the program's, so allocations are not recorded; frees still are (a free
     * missed here would leave a block of the program live forever: a phantom leak). */
    t->frees_only++;
    mp_thread_refresh(t);
    if (!checks_done) {
        unsigned hooks = info.hooks;
        const char *alloc = NULL;
        if (mp_pyenv.walk && !self_test()) {
            __atomic_fetch_or(&mp_pyfast, mp_pyfast_nowalk, __ATOMIC_SEQ_CST);
            mp_store_release(&mp_pyenv.walk, 0);
            hooks &= ~(unsigned)mp_pyhook_stacks;
            mp_sys_log("CPython frame layout check failed: Python stacks are off (allocations "
                       "are still recorded)");
        }
        pymem_allocator_t cur;
        t->guard++; /* no interpreter code runs here */
        api.get_allocator(2, &cur);
        if (!is_ours(&cur)) {
            hooks |= install() | mp_pyhook_reinstalled;
            if (!getenv("PYTHONMALLOC")) alloc = "debug (-X dev)";
        }
        t->guard--;
        __atomic_fetch_and(&mp_pyfast, ~mp_pyfast_watch, __ATOMIC_SEQ_CST);
        checks_done = 1;
        set_info(hooks, alloc);
    }
    /* Registering the end-of-main callback imports atexit: not inside a module lock's acquire.
     * This call is then queued again, to run at the interpreter's next check (a pending call
     * may add one; if the queue is full, the writer's next tick does). */
    int later = in_module_lock();
    if (!later) register_main_end();
    t->frees_only--;
    mp_thread_refresh(t);
    if (!later)
        mp_store_release(&pending_state, 2);
    else if (api.add_pending_call(pending, NULL) != 0)
        mp_store_release(&pending_state, 0);
    return 0;
}

MP_NOINLINE void
mp_python_recheck(void) {
    if (mp_load_relaxed(&mp_python_running) || mp_load_acquire(&pending_state) == 2) {
        __atomic_fetch_and(&mp_pyfast, ~mp_pyfast_watch, __ATOMIC_SEQ_CST);
        return;
    }
    /* Start-up (before any Python code): PYTHONMALLOC / -X dev may just have replaced our hooks.
     * Re-wrap at once, so that blocks the debug hooks hand out (at an offset from what they get
     * from malloc) are seen at the pointer the program frees. PyMem_GetAllocator takes only
     * the allocators lock (3.12+), which no thread holds while allocating. */
    pymem_allocator_t cur;
    api.get_allocator(2, &cur);
    if (is_ours(&cur)) return;
    unsigned hooks = info.hooks | install() | mp_pyhook_reinstalled;
    set_info(hooks, getenv("PYTHONMALLOC") ? NULL : "debug (-X dev)");
}

void
mp_python_schedule(void) {
    if (!found || mp_load_acquire(&pending_state) != 0) return;
    if (!mp_load_relaxed(&mp_python_running) || !api.is_initialized()) return;
    if (mp_ldp(mp_pyenv.runtime, mp_pyenv.L.rt_finalizing)) return;
    /* The writer and a hook may both get here: one schedules it. */
    int expect = 0;
    if (!mp_cas_acq_rel(&pending_state, &expect, 1)) return;
    /* Py_AddPendingCall may be called from any thread without the GIL (it is meant for signal
     * handlers), from inside a hook too: it takes only the pending-calls lock, which nobody holds
     * while allocating, and allocates nothing itself. */
    if (api.add_pending_call(pending, NULL) != 0) mp_store_release(&pending_state, 0);
}

unsigned
mp_python_info(mp_pyinfo_t *out) {
    unsigned g = mp_load_acquire(&info_gen);
    *out = info;
    return g;
}

/* ---- start-up ------------------------------------------------------------------------------ */

static void *
sym(const char *name) {
    return dlsym(RTLD_DEFAULT, name);
}

static uint64_t
version_hex(void) {
    const uint32_t *v = sym("Py_Version"); /* 3.11+ */
    if (v) return *v;
    const char *(*get)(void) = (const char *(*)(void))sym("Py_GetVersion");
    if (!get) return 0;
    const char *s = get(); /* "3.8.18 (default, ...": formats into a static buffer */
    uint64_t part[3] = {0, 0, 0};
    for (int i = 0; i < 3 && *s >= '0' && *s <= '9'; i++) {
        part[i] = mp_str_parse_u64(&s) & 0xff;
        if (*s == '.') s++;
    }
    return part[0] << 24 | part[1] << 16 | part[2] << 8 | 0xf0;
}

/* 3.13 publishes its offsets for debuggers: check ours against them. */
static int
check_debug_offsets(const uint8_t *rt, uint64_t hex) {
    if ((hex >> 16) != 0x030d) return 1;
    if (memcmp(rt, "xdebugpy", 8) != 0) return 0;
    uint64_t v;
    memcpy(&v, rt + 8, 8);
    return (v >> 16) == 0x030d;
}

static void
find_eval_loop(void) {
    void *f = sym("_PyEval_EvalFrameDefault");
    Dl_info di;
    const ElfW(Sym) *s = NULL;
    if (f && dladdr1(f, &di, (void **)&s, RTLD_DL_SYMENT) && s && s->st_size) {
        mp_pyenv.eval_lo = (uintptr_t)f;
        mp_pyenv.eval_hi = (uintptr_t)f + s->st_size;
    }
}

/* ld.so's general-dynamic TLS lookup. */
extern void *__tls_get_addr(void *desc);

/* 3.12+: where _Py_tss_tstate lies, from _PyThreadState_GetCurrent's code (pytls.h), as an offset
 * from the thread pointer that holds in every thread (libpython is in the program's initial link
 * map: its TLS is in the static block). The general-dynamic form asks __tls_get_addr once, here:
 * in the constructor, before any dlopen, it reads this thread's DTV and allocates nothing. Each
 * thread checks the variable against the TSS before it relies on it (capture.c). Not found: the
 * hooks find the state through the TSS, as before. */
static void
find_tstate_tls(void) {
    const uint8_t *c = sym("_PyThreadState_GetCurrent");
    Dl_info di;
    const ElfW(Sym) *s = NULL;
    if (!c || !dladdr1(c, &di, (void **)&s, RTLD_DL_SYMENT) || !s) return;
    uintptr_t desc = 0;
    intptr_t off = 0;
    switch (mp_pytls_decode(c, s->st_size, &desc, &off)) {
        case MP_PYTLS_DESC:
            off = (intptr_t)((uintptr_t)__tls_get_addr((void *)desc) - mp_sys_thread_pointer());
            if (!mp_pytls_offset_ok(off)) return;
            break;
        case MP_PYTLS_OFFSET:
            break;
        default:
            return;
    }
    mp_pyenv.tls_tpoff = off;
    mp_pyenv.tls_tp = 1;
}

int
mp_python_init(int walk) {
    const uint8_t *rt = sym("_PyRuntime");
    if (!rt) return 0; /* not a CPython process (or one we cannot see into) */
#define NEED(field, name) *(void **)&api.field = sym(name)
    NEED(get_allocator, "PyMem_GetAllocator");
    NEED(set_allocator, "PyMem_SetAllocator");
    NEED(is_initialized, "Py_IsInitialized");
    NEED(add_pending_call, "Py_AddPendingCall");
    NEED(import_module, "PyImport_ImportModule");
    NEED(getattr_string, "PyObject_GetAttrString");
    NEED(call_objargs, "PyObject_CallFunctionObjArgs");
    NEED(cfunction_new, "PyCFunction_NewEx");
    NEED(decref, "Py_DecRef");
    NEED(incref, "Py_IncRef");
    NEED(err_clear, "PyErr_Clear");
    NEED(thread_state_get, "PyThreadState_Get");
    NEED(eval_get_frame, "PyEval_GetFrame");
    NEED(frame_get_code, "PyFrame_GetCode"); /* 3.9+ */
    NEED(unicode_utf8, "PyUnicode_AsUTF8");
    api.none = sym("_Py_NoneStruct");
#undef NEED
    if (!api.get_allocator || !api.set_allocator || !api.is_initialized || !api.add_pending_call ||
        !api.import_module || !api.getattr_string || !api.call_objargs || !api.cfunction_new ||
        !api.decref || !api.incref || !api.err_clear || !api.unicode_utf8 || !api.none) {
        mp_sys_log("CPython found but its C API is incomplete: Python hooks not installed");
        return 0;
    }
    uint64_t hex = version_hex();
    info.hexversion = hex;
    const char *pm = getenv("PYTHONMALLOC");
    mp_str_copy(info.allocator, sizeof info.allocator, pm && *pm ? pm : "default");

    const mp_pylayout_t *L = mp_pylayout_for((unsigned)(hex >> 24), (unsigned)(hex >> 16) & 0xff);
    const void *code_type = sym("PyCode_Type");
    /* The hooks compiled for this layout; the fast path stays off until stacks are on and
     * start-up is over (and for good with native stacks). With stacks, they rely on code_dealloc
     * to end the memos (code_freed): without it, the general hooks. */
    int dealloc = 0;
    if (walk && L && code_type) {
        dealloc = hook_code_dealloc(code_type);
        if (!dealloc)
            mp_sys_log(
                "PyCode_Type is not laid out as expected: the Python hooks' fast path is off");
    }
    hook_family = L && (dealloc || !walk) ? mp_pyframes_family(L) : MP_PYFAM_ANY;
    __atomic_fetch_or(&mp_pyfast,
                      (unsigned)hook_family | mp_pyfast_watch | mp_pyfast_nowalk |
                          (mp_native ? mp_pyfast_native : 0u),
                      __ATOMIC_SEQ_CST);
    unsigned hooks = install();
    found = 1;
    const void *bytes_type = sym("PyBytes_Type");
    const void *unicode_type = sym("PyUnicode_Type");
    if (walk && !L) {
        mp_sys_log("this CPython version has no frame layout in memprof: Python stacks are off");
    } else if (walk && !check_debug_offsets(rt, hex)) {
        mp_sys_log("CPython 3.13 debug offsets do not match: Python stacks are off");
    } else if (walk && code_type && bytes_type && unicode_type) {
        mp_pyenv.L = *L;
        mp_pyenv.runtime = rt;
        mp_pyenv.code_type = code_type;
        mp_pycode_setup(L, bytes_type, unicode_type);
        /* Start-up interns some 20000 stacks, 40 frames deep (imports nest): ~9 MB of arena in
         * 2 MiB pages rather than 2300 faults of 4 KiB; python3 -c pass started 3-6 ms
         * sooner (python-frames.md 8.2). */
        mp_stacks_advise_huge();
        find_eval_loop();
        if (!mp_pyfam_gil_holder(MP_PYFAM_ANY)) find_tstate_tls();
        mp_store_release(&mp_pyenv.walk, 1);
        __atomic_fetch_and(&mp_pyfast, ~mp_pyfast_nowalk, __ATOMIC_SEQ_CST);
        hooks |= mp_pyhook_stacks;
    }
    set_info(hooks, NULL);
    return 1;
}
