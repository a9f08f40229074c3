/* pyframes.c - the frame walk for CPython 3.8-3.13 (see pyframes.h), and the memo's miss path
 * built on it (see pymiss.h). */
#include "pyframes.h"

#include <pthread.h>
#include <string.h>

#include "atomics.h"
#include "pycode.h"
#include "pymiss.h"
#include "stacks.h"
#include "sys.h"

/* Until PyCode_Type is found, code_type points at a byte that is no object's type, so that a
 * test of an object's type against it needs no test of it first (python.c's code_freed). */
static const char no_type;
mp_pyenv_t mp_pyenv = {.code_type = &no_type};

const uint8_t *const *
mp_pyframes_tls_slot(void) {
    if (!mp_load_relaxed(&mp_pyenv.tls_tp)) return NULL;
    return (const uint8_t *const *)(mp_sys_thread_pointer() + (uintptr_t)mp_pyenv.tls_tpoff);
}

void
mp_pyframes_tls_forget(void) {
    mp_store_relaxed(&mp_pyenv.tls_tp, 0);
}

/* A corrupt or cyclic chain ends the walk after this many frames, skipped ones included. */
#define WALK_LIMIT 4096u

static inline int
is_code(const uint8_t *co) {
    return co && mp_ldp(co, 8) == (const uint8_t *)mp_pyenv.code_type;
}

/* Raw frames: two words each, the code object's address and (uint32)addr | end << 32, where end
 * marks the outermost frame of one C-level eval-loop call. Code 0 = dropped outer frames. */
#define RAW_END (1ull << 32)
static inline void
raw_put(uint64_t *raw, uint32_t i, const uint8_t *co, int32_t addr, int end) {
    raw[2 * i] = (uint64_t)(uintptr_t)co;
    raw[2 * i + 1] = (uint64_t)(uint32_t)addr | (end ? RAW_END : 0);
}
static inline void
raw_set_end(uint64_t *raw, uint32_t i) {
    raw[2 * i + 1] |= RAW_END;
}

/* What the walk makes of one frame: a frame of the program (fr_emit: its code and offset), one it
 * skips (fr_skip; 3.11: if it is an entry frame, the frame emitted before it ends one eval-loop
 * call), a 3.12+ shim frame (fr_skip_end: the frame emitted before it ends one), or the end of the
 * chain (fr_stop, <= 3.10: a frame being destroyed). */
enum { fr_emit, fr_skip, fr_skip_end, fr_stop };

/* 3.8 - 3.10: a PyFrameObject; each is one eval-loop call. */
static inline int
frame_object(const uint8_t *f, const uint8_t **code, int32_t *addr) {
    const mp_pylayout_t *L = &mp_pyenv.L;
    if ((int64_t)mp_ld64(f, 0) <= 0) return fr_stop; /* a frame being destroyed */
    const uint8_t *co = mp_ldp(f, L->f_code);
    if (!is_code(co)) return fr_skip;
    int32_t lasti = (int32_t)mp_ld32(f, L->f_lasti);
    *code = co;
    *addr = L->minor >= 10 ? (lasti < 0 ? -1 : lasti * 2) : lasti;
    return fr_emit;
}

/* 3.11+: a _PyInterpreterFrame; *entry: 3.11's is_entry (the first frame of one eval-loop call);
 * *prologue set to 1 if the frame is in its prologue, where its owner byte decides (pyframes.h,
 * mp_pykey_hot), and left alone otherwise. */
static inline int
interpreter_frame(const uint8_t *f, const uint8_t **code, int32_t *addr, int *entry,
                  int *prologue) {
    const mp_pylayout_t *L = &mp_pyenv.L;
    uint8_t owner = f[L->if_owner];
    *entry = L->if_is_entry >= 0 && f[L->if_is_entry];
    if (owner == mp_py_owned_by_cstack && L->minor >= 12) return fr_skip_end;
    const uint8_t *co = mp_ldp(f, L->if_code);
    if (!is_code(co) || (int64_t)mp_ld64(co, 0) <= 0) return fr_skip;
    const uint8_t *code0 = co + L->co_code_adaptive;
    const uint8_t *ip = mp_ldp(f, L->if_instr);
    /* Incomplete frame (its prologue has not run): not a frame of the program yet. A generator's
     * frame there is (it is resumed there). */
    if (ip < code0 + 2 * (int32_t)mp_ld32(co, L->co_firsttraceable)) {
        *prologue = 1;
        if (owner != mp_py_owned_by_generator) return fr_skip;
    }
    *code = co;
    *addr = (int32_t)(ip - code0);
    return fr_emit;
}

/* 3.8 - 3.10: a chain of PyFrameObjects, one eval-loop call each. */
static uint32_t
walk_frame_objects(const uint8_t *ts, uint64_t *raw, uint32_t max) {
    const mp_pylayout_t *L = &mp_pyenv.L;
    uint32_t n = 0;
    const uint8_t *f = mp_ldp(ts, L->ts_frame);
    for (unsigned steps = 0; f && steps < WALK_LIMIT; steps++, f = mp_ldp(f, L->f_back)) {
        const uint8_t *co = NULL;
        int32_t addr = 0;
        int k = frame_object(f, &co, &addr);
        if (k == fr_stop) break;
        if (k != fr_emit) continue;
        if (n + 1 == max) {
            raw_put(raw, n++, NULL, 0, 1);
            break;
        }
        raw_put(raw, n++, co, addr, 1);
    }
    return n;
}

/* 3.11+: _PyInterpreterFrames linked by `previous`; entry frames (3.11) or C-stack shim frames
 * (3.12+) mark where one C-level eval-loop call starts. */
static uint32_t
walk_interpreter_frames(const uint8_t *ts, uint64_t *raw, uint32_t max) {
    const mp_pylayout_t *L = &mp_pyenv.L;
    uint32_t n = 0;
    const uint8_t *f = mp_pyframes_first_iframe(ts);
    for (unsigned steps = 0; f && steps < WALK_LIMIT; steps++, f = mp_ldp(f, L->if_previous)) {
        const uint8_t *co = NULL;
        int32_t addr = 0;
        int entry, prologue = 0;
        int k = interpreter_frame(f, &co, &addr, &entry, &prologue);
        if (k != fr_emit) {
            /* A shim or a skipped entry frame: the frames before it ran in one eval-loop call. */
            if ((k == fr_skip_end || entry) && n) raw_set_end(raw, n - 1);
            continue;
        }
        if (n + 1 == max) {
            raw_put(raw, n++, NULL, 0, 1);
            break;
        }
        raw_put(raw, n++, co, addr, entry);
    }
    if (n) raw_set_end(raw, n - 1);
    return n;
}

uint32_t
mp_pyframes_walk_raw(const uint8_t *ts, uint64_t *raw, uint32_t max) {
    return mp_pyenv.L.ts_frame >= 0 ? walk_frame_objects(ts, raw, max)
                                    : walk_interpreter_frames(ts, raw, max);
}

uint32_t
mp_pyframes_resolve(const uint64_t *raw, uint32_t n, uint64_t *out, uint8_t *ends) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *co = (const uint8_t *)(uintptr_t)raw[2 * i];
        int end = (raw[2 * i + 1] & RAW_END) != 0;
        uint32_t id = co ? mp_pycode_id(co) : 0;
        if (co && !id) {
            if (end && k) ends[k - 1] = 1; /* unregistered: drop the frame */
            continue;
        }
        out[k] = MP_PYFRAME(id, (int32_t)(uint32_t)raw[2 * i + 1]);
        ends[k++] = (uint8_t)end;
    }
    return k;
}

/* ---- the miss path (pymiss.h) -------------------------------------------------------------- */

/* One thread's last miss, counted from the outermost frame: d indexes key frames (skipped ones
 * included) from the outermost, c the frames kept (walked and resolved) from the outermost. The
 * state before key frame d (what frames d' < d left) is all that processing frame d and the
 * frames inside it needs: the frames kept so far, their hash, whether the next frame kept ends
 * one eval-loop call (pend: a shim or a skipped entry frame lies between, or nothing was kept
 * yet, which makes it the outermost), and how many frames the walk emitted (its depth cap counts
 * them, dropped ones included). Frames, ends and hashes of a common outer part are therefore the
 * last miss's, in place: frame c is at frames[MISS_MAX - 1 - c], so a stack of c frames is
 * frames[MISS_MAX - c ..] innermost first. Valid while mp_pycode_gen is unchanged, as the memo
 * is: equal key words for a frame then mean an equal frame (pyframes.h). Key frames are kw words
 * each (mp_pykey_words: 2 for frame objects, 1 for interpreter frames). */
#define MISS_MAX MP_PY_DEPTH
typedef struct miss_s {
    uint32_t nk;                    /* key frames of the last miss; 0: nothing to reuse */
    uint32_t gen;                   /* mp_pycode_gen when it was resolved */
    uint32_t id;                    /* its stack id (0: the table was full) */
    const uint64_t *stored;         /* the stack table's copy of its frames */
    uint64_t key[2 * MISS_MAX];     /* key frame d: key[kw*e ..], e = MISS_MAX - 1 - d */
    uint8_t kept[MISS_MAX + 1];     /* before key frame d: c */
    uint8_t walked[MISS_MAX + 1];   /* before key frame d: frames the walk emitted */
    uint8_t pend[MISS_MAX + 1];     /* before key frame d: the next kept frame ends a call */
    uint64_t hash[MISS_MAX + 1];    /* of the c outermost frames (stacks.h: mp_stacks_hash_step) */
    uint8_t prologue[MISS_MAX + 1]; /* before key frame d: one of them is in its prologue */
    uint64_t frames[MISS_MAX];
    uint8_t ends[MISS_MAX];
} miss_t;
/* Initial-exec (no call into the dynamic loader, which could allocate); zero: nothing yet. */
static __thread miss_t miss __attribute__((tls_model("initial-exec")));

/* The stack without the last miss: walked, resolved (into out) and interned whole. */
static MP_NOINLINE uint32_t
intern_walk(const uint8_t *ts, uint64_t *out, uint8_t *ends, uint32_t *nf,
            const uint64_t **stored) {
    uint64_t raw[2 * MP_PY_DEPTH];
    uint32_t n = mp_pyframes_walk_raw(ts, raw, MP_PY_DEPTH);
    *nf = n ? mp_pyframes_resolve(raw, n, out, ends) : 0;
    return *nf ? mp_stacks_intern_ref(out, *nf, stored) : 0;
}

uint32_t
mp_pyframes_intern(const uint8_t *ts, const uint64_t *key, uint32_t nk, uint64_t *scratch,
                   uint8_t *ends, uint32_t *nf, int *owner_free, const uint64_t **stored) {
    miss_t *m = &miss;
    const mp_pylayout_t *L = &mp_pyenv.L;
    uint32_t gen = mp_load_relaxed(&mp_pycode_gen);
    *nf = 0;
    *owner_free = 0;
    *stored = NULL;
    if (nk == 0) return 0;
    if (nk > MISS_MAX) return intern_walk(ts, scratch, ends, nf, stored); /* the key is not all */
    /* The outer key frames this stack shares with the last miss. */
    const uint32_t kw = mp_pykey_words();
    uint32_t same = 0;
    uint64_t *mk = m->key + kw * (MISS_MAX - nk); /* mk[kw*i ..]: as key's frame i */
    if (m->nk && m->gen == gen) {
        /* The stacks mostly differ in a frame or two inside: find the first frame equal from the
         * inside, then check the rest in one memcmp (and scan from the outside if it differs). */
        uint32_t lo = nk - (nk < m->nk ? nk : m->nk), i = lo;
        while (i < nk && memcmp(key + kw * i, mk + kw * i, kw * 8) != 0) i++;
        if (i < nk && memcmp(key + kw * i, mk + kw * i, (size_t)(nk - i) * kw * 8) != 0)
            for (i = nk; i > lo && memcmp(key + kw * (i - 1), mk + kw * (i - 1), kw * 8) == 0;) i--;
        same = nk - i;
        if (same == nk && nk == m->nk && m->id) {
            /* All of it (the memo dropped it since). */
            uint32_t c = m->kept[nk];
            memcpy(ends, m->ends + MISS_MAX - c, c);
            *nf = c;
            *owner_free = !m->prologue[nk - 1]; /* the frames outside the innermost */
            *stored = m->stored;
            return m->id;
        }
    }
    if (same == 0) {
        m->kept[0] = m->walked[0] = m->prologue[0] = 0;
        m->pend[0] = 1;
        m->hash[0] = MP_STACKS_HASH_SEED;
    }
    /* The chain's frames inside the common part, innermost first, in scratch (nk <= MP_PY_DEPTH
     * words: room enough); the thread's stack may be small. */
    uint64_t *fr = scratch;
    uint32_t inner = nk - same;
    const uint8_t *f = L->ts_frame >= 0 ? mp_ldp(ts, L->ts_frame) : mp_pyframes_first_iframe(ts);
    for (uint32_t i = 0; i < inner; i++) {
        if (!f) {
            m->nk = 0; /* not the chain the key was read from: cannot happen */
            return intern_walk(ts, scratch, ends, nf, stored);
        }
        fr[i] = (uint64_t)(uintptr_t)f;
        f = mp_ldp(f, L->ts_frame >= 0 ? L->f_back : L->if_previous);
    }
    /* Process them from the outside in, as the walk and mp_pyframes_resolve would have: an end
     * bit moves inward, from a skipped frame to the next frame kept inside it. */
    m->nk = 0; /* overwritten from here on */
    uint32_t c = m->kept[same], w = m->walked[same];
    int pend = m->pend[same], dropped = 0, prologue = m->prologue[same];
    uint64_t h = m->hash[c];
    memcpy(mk, key, (size_t)inner * kw * 8);
    for (uint32_t d = same; d < nk; d++) {
        uint32_t i = nk - 1 - d;
        m->kept[d] = (uint8_t)c;
        m->walked[d] = (uint8_t)w;
        m->pend[d] = (uint8_t)pend;
        m->prologue[d] = (uint8_t)prologue;
        const uint8_t *co = NULL;
        int32_t addr = 0;
        int entry = 1, k;
        f = (const uint8_t *)(uintptr_t)fr[i];
        if (L->ts_frame >= 0)
            k = frame_object(f, &co, &addr);
        else
            k = interpreter_frame(f, &co, &addr, &entry, &prologue);
        if (k == fr_stop) {
            /* <= 3.10: the walk ends here, before the frames outside (none: a key ends with
             * such a frame). */
            c = w = 0;
            pend = 1;
            h = MP_STACKS_HASH_SEED;
            continue;
        }
        if (k != fr_emit) {
            pend |= k == fr_skip_end || entry;
            continue;
        }
        w++;
        uint32_t id = mp_pycode_id(co);
        if (!id) {
            dropped = 1; /* mp_pyframes_resolve drops it; its end bit moves inward */
            pend |= entry;
            continue;
        }
        uint64_t v = MP_PYFRAME(id, addr);
        m->frames[MISS_MAX - 1 - c] = v;
        m->ends[MISS_MAX - 1 - c] = (uint8_t)(entry | pend);
        pend = 0;
        h = mp_stacks_hash_step(h, v);
        m->hash[++c] = h;
    }
    m->kept[nk] = (uint8_t)c;
    m->walked[nk] = (uint8_t)w;
    m->pend[nk] = (uint8_t)pend;
    m->prologue[nk] = (uint8_t)prologue;
    if (w >= MP_PY_DEPTH) return intern_walk(ts, scratch, ends, nf, stored); /* the depth cap */
    *owner_free = !m->prologue[nk - 1]; /* the frames outside the innermost */
    if (c == 0) return 0;
    memcpy(ends, m->ends + MISS_MAX - c, c);
    *nf = c;
    uint32_t id =
        mp_stacks_intern_hashed(m->frames + MISS_MAX - c, c, mp_stacks_hash_finish(h, c), stored);
    if (!dropped) {
        /* A dropped frame is looked up again next time (and counted, mp_pycode_dropped). */
        m->nk = nk;
        m->gen = gen;
        m->id = id;
        m->stored = *stored;
    }
    return id;
}

const uint8_t *
mp_pyframes_top_code(void) {
    const uint8_t *ts = mp_pyframes_tstate();
    if (!ts) return NULL;
    const mp_pylayout_t *L = &mp_pyenv.L;
    if (L->ts_frame >= 0) {
        const uint8_t *f = mp_ldp(ts, L->ts_frame);
        return f ? mp_ldp(f, L->f_code) : NULL;
    }
    const uint8_t *f = mp_pyframes_first_iframe(ts);
    for (unsigned steps = 0; f && steps < WALK_LIMIT; steps++, f = mp_ldp(f, L->if_previous)) {
        const uint8_t *co = mp_ldp(f, L->if_code);
        if (L->minor >= 12 && f[L->if_owner] == mp_py_owned_by_cstack) continue;
        if (is_code(co)) return co;
    }
    return NULL;
}
