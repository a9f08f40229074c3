/* pyframes.h - reading the calling thread's Python stack from inside a hook.
 *
 * No GIL, no call into libpython, no frame objects, no allocation, no lock: plain loads of the
 * calling thread's own frame chain, which only this thread mutates and which is consistent at
 * every point where it can allocate (docs/dev/python-frames.md sections 3, 4 and 8 give the
 * argument and the per-version details).
 */
#ifndef MP_PYFRAMES_H
#define MP_PYFRAMES_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "foreign.h"
#include "pylayout.h"

/* What python.c found at start-up; read-only afterwards except `walk`. Read on every event:
 * the layout table is copied in (`L`), so the walk reads its offsets from this one object. */
typedef struct mp_pyenv_s {
    _Alignas(64) int walk;  /* nonzero: hooks may walk frames (cleared if the self-test fails) */
    const uint8_t *runtime; /* &_PyRuntime */
    const void *code_type;  /* &PyCode_Type (pyframes.c: never NULL) */
    mp_pylayout_t L;        /* the layout table of this version, copied */
    uintptr_t eval_lo, eval_hi; /* _PyEval_EvalFrameDefault's code, for splicing (0: unknown) */
    /* 3.12+: where _Py_tss_tstate, CPython's thread-local current state, lies for every thread
     * (mp_pyframes_tls_slot): tls_tpoff bytes from the thread pointer, when tls_tp says it was
     * found (libpython is in the program's initial link map, so its TLS is in the static block,
     * at the same offset in every thread). */
    intptr_t tls_tpoff;
    int tls_tp;
} mp_pyenv_t;
extern mp_pyenv_t mp_pyenv;

/* Python frames kept per stack; outer frames past this are dropped and marked (FORMAT.md 5.4). */
#define MP_PY_DEPTH 128u

/* A Python frame value (FORMAT.md 5.4). Code id 0 marks dropped outer frames. */
#define MP_PYFRAME(code_id, addr)                                                                  \
    ((1ull << 63) | ((uint64_t)(code_id) << 32) | (uint64_t)(uint32_t)(int32_t)(addr))

/* Layout families: one per version memprof has a layout for, in the order of pylayout.h's
 * mp_pylayouts. The Python hooks are compiled once per family (python.c), with the layout's tests
 * resolved and its offsets made immediates at compile time (mp_pyL); MP_PYFAM_ANY reads both at
 * run time, from mp_pyenv.L. */
enum {
    MP_PYFAM_ANY = 0,
    MP_PYFAM_38 = 1,  /* 3.8: GIL holder, else TSS; frame objects (two key words a frame) */
    MP_PYFAM_39 = 2,  /* 3.9: as 3.8 */
    MP_PYFAM_310 = 3, /* 3.10: as 3.8 */
    MP_PYFAM_311 = 4, /* 3.11: GIL holder, else TSS; cframe->current_frame */
    MP_PYFAM_312 = 5, /* 3.12: TSS; cframe->current_frame */
    MP_PYFAM_313 = 6, /* 3.13: TSS; current_frame */
    MP_PYFAM_COUNT = 7
};
_Static_assert(MP_PYFAM_COUNT - MP_PYFAM_38 == MP_PYLAYOUT_COUNT, "a family per layout table");

/* The family of layout L, one of mp_pylayouts (mp_pylayout_for's answer): its place there, the
 * table being in order from 3.8 (else MP_PYFAM_ANY: the general path, whose tests are made at
 * run time). */
static inline int
mp_pyframes_family(const mp_pylayout_t *L) {
    unsigned i = (unsigned)(L - mp_pylayouts);
    return L->minor == 8 + i ? MP_PYFAM_38 + (int)i : MP_PYFAM_ANY;
}

/* The layout the per-event path reads: for a version's family its table in mp_pylayouts (equal
 * to mp_pyenv.L, copied from that table, whenever that family's hooks take their fast path),
 * whose offsets link-time optimization folds into immediates, so that no load or register is
 * spent on them; for MP_PYFAM_ANY, mp_pyenv.L. It took 14 instructions off each event of
 * scripts/bench_py/churn.py and 16 off mix.py's (cachegrind, 3.11; with one family for 3.8-3.10,
 * the offsets were read from mp_pyenv.L on every event). */
static inline const mp_pylayout_t *
mp_pyL(int fam) {
    return fam == MP_PYFAM_ANY ? &mp_pyenv.L : &mp_pylayouts[fam - MP_PYFAM_38];
}

/* Whether the layout has the GIL holder's state (<= 3.11), frame objects (<= 3.10), or the
 * current frame in the thread state itself (3.13): fam's answer, or the layout's (ANY). */
static inline int
mp_pyfam_gil_holder(int fam) {
    return fam == MP_PYFAM_ANY ? mp_pyenv.L.rt_tstate_current >= 0 : fam <= MP_PYFAM_311;
}
static inline int
mp_pyfam_frame_objects(int fam) {
    return fam == MP_PYFAM_ANY ? mp_pyenv.L.ts_frame >= 0 : fam <= MP_PYFAM_310;
}
static inline int
mp_pyfam_ts_current_frame(int fam) {
    return fam == MP_PYFAM_ANY ? mp_pyenv.L.ts_current_frame >= 0 : fam == MP_PYFAM_313;
}

/* <= 3.11: the state of the thread that holds the GIL (the runtime's tstate_current), or NULL. */
static inline const uint8_t *
mp_pyframes_gil_state(int fam) {
    return __atomic_load_n(
        (const uint8_t *const *)(mp_pyenv.runtime + mp_pyL(fam)->rt_tstate_current),
        __ATOMIC_RELAXED);
}

/* <= 3.11 (a family that mp_pyfam_gil_holder): the thread holding the GIL if it is self (its
 * pthread_self), else NULL. When it is self, the state is live whatever finalization does:
 * finalization frees other threads' states, and runs with the GIL held by the finalizing thread,
 * so a thread that finds itself the GIL holder while finalizing is set is the finalizing one (what
 * mp_pyframes_tstate_fam's check lets through). No load of finalizing, then, on the path nearly
 * every event takes (this, and capture.c's mp_capture_py_hot). */
static inline const uint8_t *
mp_pyframes_tstate_held(uintptr_t self, int fam) {
    const uint8_t *t = mp_pyframes_gil_state(fam);
    return t && (uintptr_t)mp_ldp(t, mp_pyL(fam)->ts_thread_id) == self ? t : NULL;
}

/* The calling thread's PyThreadState by the gilstate TSS, or NULL (none, or the interpreter is
 * finalizing): mp_pyframes_tstate_fam's answer when the thread does not hold the GIL. */
static inline const uint8_t *
mp_pyframes_tstate_tss(int fam) {
    const mp_pylayout_t *L = mp_pyL(fam);
    const uint8_t *rt = mp_pyenv.runtime;
    const uint8_t *t = NULL;
    /* Finalization frees other threads' states (daemon threads), whose TSS still points to them:
     * checked before the TSS is read, python-frames.md 9.1; the residual check-then-use race is
     * 9.2. */
    const uint8_t *fin =
        __atomic_load_n((const uint8_t *const *)(rt + L->rt_finalizing), __ATOMIC_ACQUIRE);
    if ((int32_t)mp_ld32(rt, L->rt_tss_key) != 0) {
        /* The gilstate TSS maps this OS thread to its state, GIL held or not. glibc's
         * pthread_getspecific only reads the thread descriptor: no lock, no allocation. */
        pthread_key_t key;
        memcpy(&key, rt + L->rt_tss_key + 4, sizeof key);
        t = pthread_getspecific(key);
    }
    if (t && fin && t != fin) return NULL;
    return t;
}

/* The PyThreadState of the calling thread, whose pthread_self() is self, or NULL (none, or the
 * interpreter is finalizing); fam: the layout family (above). Inline: it runs on every event. */
static inline const uint8_t *
mp_pyframes_tstate_fam(uintptr_t self, int fam) {
    if (mp_pyfam_gil_holder(fam)) {
        const uint8_t *t = mp_pyframes_tstate_held(self, fam);
        if (t) return t;
    }
    return mp_pyframes_tstate_tss(fam);
}

/* Where find_tstate_tls (python.c) says it is, the calling thread's _Py_tss_tstate (3.12+):
 * the state the thread is attached to (it holds the GIL), NULL while it is detached. The
 * variable's address, which the caller keeps for its thread; NULL if unknown. */
const uint8_t *const *mp_pyframes_tls_slot(void);
/* Stop giving that address (it held something else than the thread's state). */
void mp_pyframes_tls_forget(void);

static inline const uint8_t *
mp_pyframes_tstate_of(uintptr_t self) {
    return mp_pyframes_tstate_fam(self, MP_PYFAM_ANY);
}

/* The same, for any caller. */
static inline const uint8_t *
mp_pyframes_tstate(void) {
    return mp_pyframes_tstate_of((uintptr_t)pthread_self());
}

/* 3.11+: the innermost _PyInterpreterFrame of thread state ts (3.13: current_frame; 3.11, 3.12:
 * cframe->current_frame), or NULL. */
static inline const uint8_t *
mp_pyframes_first_iframe_fam(const uint8_t *ts, int fam) {
    const mp_pylayout_t *L = mp_pyL(fam);
    if (mp_pyfam_ts_current_frame(fam)) return mp_ldp(ts, L->ts_current_frame);
    const uint8_t *cf = mp_ldp(ts, L->ts_cframe);
    /* 3.11 and 3.12 point cframe at the state's own root_cframe when they initialise it, before
     * it can be current or bound to a thread (Python/pystate.c, init_threadstate), and never
     * set it to NULL: the families' fast path does not test it. */
    if (fam != MP_PYFAM_ANY) return mp_ldp(cf, L->cf_current_frame);
    return cf ? mp_ldp(cf, L->cf_current_frame) : NULL;
}
static inline const uint8_t *
mp_pyframes_first_iframe(const uint8_t *ts) {
    return mp_pyframes_first_iframe_fam(ts, MP_PYFAM_ANY);
}

/* Walk the Python stack of ts (the calling thread's, from mp_pyframes_tstate), innermost first,
 * into raw[0 .. 2*max): two words per frame, the code object's address and the offset plus an
 * "end of one C-level eval-loop call" bit (used to splice Python frames into native stacks).
 * Skips frames that are not (yet) the program's. Returns the frames walked; the last one is a
 * "dropped outer frames" marker when the chain is deeper than max (>= 2). */
uint32_t mp_pyframes_walk_raw(const uint8_t *ts, uint64_t *raw, uint32_t max);

#define MP_PYKEY_DEAD (1ull << 40)
static inline uint64_t
mp_pykey_mix(uint64_t h, uint64_t code, uint64_t pos) {
    /* Rotating between the two words keeps equal offsets in different code objects apart. Weak
     * on its own: mp_pykey_finish mixes the result once per walk. */
    h ^= code;
    return (h << 23 | h >> 41) ^ pos;
}
static inline uint64_t
mp_pykey_finish(uint64_t h, uint32_t n) {
    return (h ^ n) * 0x9e3779b97f4a7c15ull;
}

/* Key words per frame. Frame objects (<= 3.10): two, the code object and the position (f_lasti,
 * and whether the frame is being destroyed, which ends both walks). Interpreter frames (3.11+):
 * one, the instruction pointer with the owner byte (and with_entry is_entry) in its top 16 bits.
 * The instruction pointer names the code object too: the bytecode is inside the code object
 * (co_code_adaptive; before the first instruction it points just before it, still inside), a
 * frame holds a reference to its code object, so while a frame lives no other code object
 * overlaps that address, and a code object freed since the key was taken ends the key's use
 * (mp_pycode_gen). */
static inline uint32_t
mp_pykey_words_fam(int fam) {
    return mp_pyfam_frame_objects(fam) ? 2u : 1u;
}
static inline uint32_t
mp_pykey_words(void) {
    return mp_pykey_words_fam(MP_PYFAM_ANY);
}

/* <= 3.10: frame object f's key words, and the frame after it (NULL: the chain ends here); fam:
 * the layout family. */
static inline const uint8_t *
mp_pykey_fo(const uint8_t *f, uint64_t *co, uint64_t *pos, int fam) {
    const mp_pylayout_t *L = mp_pyL(fam);
    int64_t rc = (int64_t)mp_ld64(f, 0); /* ob_refcnt */
    *co = (uint64_t)(uintptr_t)mp_ldp(f, L->f_code);
    *pos = (uint64_t)(uint32_t)(int32_t)mp_ld32(f, L->f_lasti);
    if (rc > 0) return mp_ldp(f, L->f_back);
    *pos |= MP_PYKEY_DEAD; /* being destroyed: ends both walks */
    return NULL;
}

/* 3.11+: interpreter frame f's hot key word (capture.c's hot entries, mp_pyframes_match) when it
 * is not the innermost frame: its key word (mp_pykey_if, below) without the owner byte, and the
 * frame after it. The owner byte changes what the walk makes of a frame in two cases only
 * (pyframes.c, interpreter_frame): a C-stack shim (3.12+), whose instruction pointer is in the
 * interpreter's trampoline, where no other frame runs, so the pointer says it; and a frame still in
 * its prologue, before co_firsttraceable (a generator's frame there is kept, any other skipped).
 * Such a frame is nearly always the innermost one (a call's MAKE_CELL or RETURN_GENERATOR
 * allocates; only a finalizer run by the collector from there puts frames inside it), which keeps
 * its owner byte; a stack with one further out is never put in a hot entry (mp_pyframes_intern's
 * owner_free). So equal hot words mean an equal walk, and the check reads one byte less for
 * every frame but the innermost (2 instructions a frame: 8 to 6). */
#define MP_PYKEY_OWNER (0xffull << 48)
static inline const uint8_t *
mp_pykey_hot(const uint8_t *f, int entry, uint64_t *pos, int fam) {
    const mp_pylayout_t *L = mp_pyL(fam);
    *pos = (uint64_t)(uintptr_t)mp_ldp(f, L->if_instr);
    if (entry >= 0) *pos |= (uint64_t)f[entry] << 56;
    return mp_ldp(f, L->if_previous);
}

/* 3.11+: interpreter frame f's key word, and the frame after it. entry: the offset of 3.11's
 * is_entry to include, or -1; fam: the layout family. User-space pointers leave the top 16 bits
 * free for the flags: is_entry in bits 56-63 (mp_pykey_hot) and the owner byte in bits 48-55. */
static inline const uint8_t *
mp_pykey_if(const uint8_t *f, int entry, uint64_t *pos, int fam) {
    const uint8_t *next = mp_pykey_hot(f, entry, pos, fam);
    *pos |= (uint64_t)f[mp_pyL(fam)->if_owner] << 48;
    return next;
}

/* is_entry (3.11) only marks where splicing into native stacks goes. */
static inline int
mp_pykey_entry(int with_entry) {
    return with_entry ? mp_pyenv.L.if_is_entry : -1;
}

/* The memo key of ts's stack: mp_pykey_words() words for every frame of the chain, in
 * key[0 .. 2*max), and its hash in *hash; with_entry: include 3.11's is_entry (only splicing
 * reads it). Returns the frames, or max + 1 if the chain is longer. Equal keys give equal walks
 * (and so equal stacks) as long as no code object in them was freed in between (mp_pycode_gen):
 * the walk reads nothing else that can change.
 *
 * Run on every event capture.c's hot entry misses, hence inline and lean: of each frame, skipped
 * ones included, the key words, and nothing from code objects. It follows the same `previous`
 * pointers and reads the same fields as the walk, so it is as safe. */
static inline uint32_t
mp_pyframes_key(const uint8_t *ts, uint64_t *key, uint32_t max, int with_entry, uint64_t *hash) {
    const mp_pylayout_t *L = &mp_pyenv.L;
    uint32_t n = 0;
    uint64_t h = 0, co, pos;
    if (L->ts_frame >= 0) {
        for (const uint8_t *f = mp_ldp(ts, L->ts_frame); f; n++) {
            if (n == max) return max + 1;
            f = mp_pykey_fo(f, &co, &pos, MP_PYFAM_ANY);
            key[2 * n] = co;
            key[2 * n + 1] = pos;
            h = mp_pykey_mix(h, co, pos);
        }
    } else {
        const int entry = mp_pykey_entry(with_entry);
        for (const uint8_t *f = mp_pyframes_first_iframe(ts); f; n++) {
            if (n == max) return max + 1;
            f = mp_pykey_if(f, entry, &pos, MP_PYFAM_ANY);
            key[n] = pos;
            h = mp_pykey_mix(h, 0, pos);
        }
    }
    *hash = mp_pykey_finish(h, n);
    return n;
}

/* Whether the chain from frame f on is exactly the n frames of a hot key (mp_pykey_hot; frame
 * objects: as mp_pyframes_key): its first ninline words in key (a whole number of frames), the
 * rest in deep. Reads what mp_pyframes_key reads, but the owner bytes, and stores nothing: with a
 * candidate key at hand this is the cheaper check. */
static inline int
mp_pyframes_match(const uint8_t *f, int entry, const uint64_t *key, uint32_t ninline,
                  const uint64_t *deep, uint32_t n, int fam) {
    uint64_t co, pos;
    const uint64_t *k = key;
    if (mp_pyfam_frame_objects(fam)) {
        uint32_t in = n < ninline / 2 ? n : ninline / 2;
        for (uint32_t i = 0; i < n; i++, k += 2) {
            if (i == in) k = deep;
            if (!f) return 0;
            f = mp_pykey_fo(f, &co, &pos, fam);
            if (co != k[0] || pos != k[1]) return 0;
        }
    } else {
        /* Two runs (the inline words, then deep), so that the loop tests nothing but the frame. */
        uint32_t in = n < ninline ? n : ninline;
        for (uint32_t i = 0; i < in; i++) {
            if (!f) return 0;
            f = mp_pykey_hot(f, entry, &pos, fam);
            if (pos != k[i]) return 0;
        }
        for (uint32_t i = 0; i < n - in; i++) {
            if (!f) return 0;
            f = mp_pykey_hot(f, entry, &pos, fam);
            if (pos != deep[i]) return 0;
        }
    }
    return f == NULL;
}

/* Turn raw frames into frame values (FORMAT.md 5.4), registering code objects (pycode.h);
 * ends[i] is the splice bit of out[i]. Returns the frames kept (unregistrable ones dropped). */
uint32_t mp_pyframes_resolve(const uint64_t *raw, uint32_t n, uint64_t *out, uint8_t *ends);

/* The code object of the calling thread's innermost Python frame, or NULL (self-test). */
const uint8_t *mp_pyframes_top_code(void);

#endif
