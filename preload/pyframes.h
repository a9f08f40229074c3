/* pyframes.h - reading the calling thread's Python stack from inside a hook.
 *
 * No GIL, no call into libpython, no frame objects, no allocation, no lock: plain loads of the
 * calling thread's own frame chain, which only this thread mutates and which is consistent at
 * every point where it can allocate (docs/dev/python-frames.md sections 3, 4 and 8 give the
 * argument and the per-version details).
 */
#ifndef MP_PYFRAMES_H
#define MP_PYFRAMES_H

#include <stdint.h>

#include "pylayout.h"

/* What python.c found at start-up; read-only afterwards except `walk`. */
typedef struct mp_pyenv_s {
    const mp_pylayout_t *layout;
    const uint8_t *runtime; /* &_PyRuntime */
    const void *code_type;  /* &PyCode_Type */
    int walk;               /* nonzero: hooks may walk frames (cleared if the self-test fails) */
    uintptr_t eval_lo, eval_hi; /* _PyEval_EvalFrameDefault's code, for splicing (0: unknown) */
} mp_pyenv_t;
extern mp_pyenv_t mp_pyenv;

/* Python frames kept per stack; outer frames past this are dropped and marked (FORMAT.md 5.4). */
#define MP_PY_DEPTH 128u

/* A Python frame value (FORMAT.md 5.4). Code id 0 marks dropped outer frames. */
#define MP_PYFRAME(code_id, addr)                                                                  \
    ((1ull << 63) | ((uint64_t)(code_id) << 32) | (uint64_t)(uint32_t)(int32_t)(addr))

/* The calling thread's PyThreadState, or NULL (none, or the interpreter is finalizing). */
const uint8_t *mp_pyframes_tstate(void);

/* Walk the calling thread's Python stack, innermost first, into raw[0 .. 2*max): two words per
 * frame, the code object's address and the offset plus an "end of one C-level eval-loop call"
 * bit (used to splice Python frames into native stacks). Returns the frames walked; the last
 * one is a "dropped outer frames" marker when the chain is deeper than max (>= 2). Two walks
 * with equal raw arrays denote the same stack: capture.c memoizes on that. */
uint32_t mp_pyframes_walk_raw(uint64_t *raw, uint32_t max);
/* Turn raw frames into frame values (FORMAT.md 5.4), registering code objects (pycode.h);
 * ends[i] is the splice bit of out[i]. Returns the frames kept (unregistrable ones dropped). */
uint32_t mp_pyframes_resolve(const uint64_t *raw, uint32_t n, uint64_t *out, uint8_t *ends);

/* The code object of the calling thread's innermost Python frame, or NULL (self-test). */
const uint8_t *mp_pyframes_top_code(void);

#endif
