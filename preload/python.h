/* python.h - CPython support: finding the interpreter, the PyMem allocator hooks, the
 * end-of-main marker, and what the PYTHON record says.
 *
 * Everything in libpython is reached through dlsym(RTLD_DEFAULT): libmemprof.so has no undefined
 * Py* symbol, so it loads into every program and a non-Python process never enters this code.
 */
#ifndef MP_PYTHON_H
#define MP_PYTHON_H

#include <stdint.h>

/* From the constructor (guard raised, before the interpreter starts): find CPython, select the
 * layout, install the RAW/MEM/OBJ hooks. walk: record Python stacks (MEMPROF_PYTHON). Returns 1
 * if CPython was found and hooked, else 0. */
int mp_python_init(int walk);

/* Once Python code runs and the interpreter is initialized, schedule (once) the pending call that
 * re-installs replaced hooks, self-tests the frame walker and registers the end-of-main marker.
 * Called by the writer on every pass, and by the memo's miss path (capture.c) on the thread that
 * runs Python: left to the writer alone, a script that ends some 15 ms after start-up could end
 * before the writer's next pass (it may sleep 10 ms, longer on a busy machine), and its leaks were
 * then measured at exit, not at the end of main (seen once in e2e.py_lines under 3.12, 43 ms in
 * all). Cheap once scheduled: one load. */
void mp_python_schedule(void);

/* Set by the hooks the first time a walk finds Python frames (cheap to test). */
extern int mp_python_running;

/* The hooks' fast path (capture.h's mp_capture_py_event): the layout family of this interpreter
 * (pyframes.h) while the general path's tests would all come out the usual way, and that value
 * with one of the mp_pyfast_* bits set while one would not:
 * - mp_pyfast_watch: start-up; every event takes the general path and calls mp_python_recheck
 *   (guard raised), which re-wraps the allocators as soon as PYTHONMALLOC or -X dev has replaced
 *   them, and clears the bit once Python code runs;
 * - mp_pyfast_nowalk: Python stacks off (mp_pyenv.walk: no layout for this version, or a failed
 *   self-test);
 * - mp_pyfast_native: native stacks (MEMPROF_NATIVE);
 * - mp_pyfast_off: tracking is not running (mp_state, set with capture.h's mp_state_set).
 * One word, so one test on every event replaces five; the bits change only by atomic and/or, so
 * no update is lost to another. Hooks compiled for another family, or for none, never match.
 * mp_pyfast_off alone in a process without Python. */
extern unsigned mp_pyfast;
enum {
    mp_pyfast_watch = 1u << 8,
    mp_pyfast_nowalk = 1u << 9,
    mp_pyfast_native = 1u << 10,
    mp_pyfast_off = 1u << 11
};
void mp_python_recheck(void);

/* The PYTHON record (FORMAT.md 5.11). gen changes whenever the content does. */
typedef struct mp_pyinfo_s {
    uint64_t hexversion;
    unsigned hooks;
    char allocator[48];
} mp_pyinfo_t;
enum {
    mp_pyhook_raw = 1,
    mp_pyhook_mem = 2,
    mp_pyhook_obj = 4,
    mp_pyhook_reinstalled = 8,
    mp_pyhook_stacks = 16
};
/* Copy the current info; returns its generation (0: no Python in this process). */
unsigned mp_python_info(mp_pyinfo_t *out);

#endif
