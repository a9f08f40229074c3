/* pyframes.c - the frame walk for CPython 3.8-3.13 (see pyframes.h). */
#include "pyframes.h"

#include <pthread.h>
#include <string.h>

#include "atomics.h"
#include "pycode.h"

mp_pyenv_t mp_pyenv;

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

/* 3.8 - 3.10: a chain of PyFrameObjects, one eval-loop call each. */
static uint32_t
walk_frame_objects(const uint8_t *ts, uint64_t *raw, uint32_t max) {
    const mp_pylayout_t *L = &mp_pyenv.L;
    uint32_t n = 0;
    const uint8_t *f = mp_ldp(ts, L->ts_frame);
    for (unsigned steps = 0; f && steps < WALK_LIMIT; steps++, f = mp_ldp(f, L->f_back)) {
        if ((int64_t)mp_ld64(f, 0) <= 0) break; /* a frame being destroyed */
        const uint8_t *co = mp_ldp(f, L->f_code);
        if (!is_code(co)) continue;
        if (n + 1 == max) {
            raw_put(raw, n++, NULL, 0, 1);
            break;
        }
        int32_t lasti = (int32_t)mp_ld32(f, L->f_lasti);
        int32_t addr = L->minor >= 10 ? (lasti < 0 ? -1 : lasti * 2) : lasti;
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
        uint8_t owner = f[L->if_owner];
        int entry = L->if_is_entry >= 0 && f[L->if_is_entry];
        if (owner == mp_py_owned_by_cstack && L->minor >= 12) {
            /* Shim frame: the frames before it ran in one eval-loop call. */
            if (n) raw_set_end(raw, n - 1);
            continue;
        }
        const uint8_t *co = mp_ldp(f, L->if_code);
        if (!is_code(co) || (int64_t)mp_ld64(co, 0) <= 0) {
            if (entry && n) raw_set_end(raw, n - 1);
            continue;
        }
        const uint8_t *code0 = co + L->co_code_adaptive;
        const uint8_t *ip = mp_ldp(f, L->if_instr);
        /* Incomplete frame (its prologue has not run): not a frame of the program yet. */
        if (owner != mp_py_owned_by_generator &&
            ip < code0 + 2 * (int32_t)mp_ld32(co, L->co_firsttraceable)) {
            if (entry && n) raw_set_end(raw, n - 1);
            continue;
        }
        if (n + 1 == max) {
            raw_put(raw, n++, NULL, 0, 1);
            break;
        }
        raw_put(raw, n++, co, (int32_t)(ip - code0), entry);
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
