/* pylayout.h - the CPython struct offsets the frame walker reads, one table per minor version.
 *
 * What this is: numbers, nothing else. They were measured from each version's own headers with
 * tests/dev/pyoffsets.c (docs/dev/python-frames.md section 5.1); the test `pylayout_headers`
 * recompiles that tool against every interpreter present and compares. The preload never
 * includes Python.h: an inline helper from those headers would leave an undefined Py* symbol in
 * libmemprof.so, which then fails to load into every non-Python program. x86-64 only.
 */
#ifndef MP_PYLAYOUT_H
#define MP_PYLAYOUT_H

typedef struct mp_pylayout_s {
    unsigned minor; /* 8 .. 13 (major is 3) */
    /* _PyRuntimeState */
    int rt_finalizing;     /* PyThreadState * (3.8: "finalizing", later "_finalizing") */
    int rt_tstate_current; /* gilstate.tstate_current (<= 3.11; -1 after): the GIL holder */
    int rt_tss_key;        /* Py_tss_t autoTSSkey: {int _is_initialized; pthread_key_t _key} */
    /* PyThreadState */
    int ts_thread_id;     /* unsigned long, = pthread_self() */
    int ts_frame;         /* 3.8-3.10: PyFrameObject *frame; else -1 */
    int ts_cframe;        /* 3.11-3.12: _PyCFrame *cframe; else -1 */
    int cf_current_frame; /* 3.11-3.12: offset of current_frame in _PyCFrame */
    int ts_current_frame; /* 3.13: _PyInterpreterFrame *current_frame; else -1 */
    /* PyFrameObject (3.8-3.10) */
    int f_back, f_code, f_lasti;
    /* _PyInterpreterFrame (3.11+) */
    int if_code;     /* f_code (3.11, 3.12) / f_executable (3.13) */
    int if_previous; /* previous */
    int if_instr;    /* prev_instr (3.11, 3.12) / instr_ptr (3.13) */
    int if_owner;    /* char owner */
    int if_is_entry; /* 3.11: bool is_entry; else -1 */
    /* PyCodeObject */
    int co_firstlineno, co_filename, co_name, co_qualname; /* qualname -1 before 3.11 */
    int co_linetable;      /* co_lnotab (3.8, 3.9) or co_linetable */
    int co_code_adaptive;  /* 3.11+: inline bytecode; -1 before */
    int co_firsttraceable; /* 3.11+: int, in code units; -1 before */
    int table_format;      /* FORMAT.md 5.10: 1, 2 or 3 */
    /* str (PEP 393) */
    int ascii_size;   /* sizeof(PyASCIIObject): compact ASCII data */
    int compact_size; /* sizeof(PyCompactUnicodeObject): other compact data */
} mp_pylayout_t;

/* Frame owners (3.11+), CPython's FRAME_OWNED_BY_*. */
enum { mp_py_owned_by_thread = 0, mp_py_owned_by_generator = 1, mp_py_owned_by_cstack = 3 };

/* The tables, one per version memprof has a layout for (pyframes.h's layout families index
 * them). The Python hooks read them as constants: with link-time optimization the compiler
 * folds each offset into an immediate (pyframes.h mp_pyL). */
#define MP_PYLAYOUT_COUNT 6
extern const mp_pylayout_t mp_pylayouts[MP_PYLAYOUT_COUNT];

/* The table for CPython 3.<minor>, or NULL for a version memprof has no layout for. */
const mp_pylayout_t *mp_pylayout_for(unsigned major, unsigned minor);

#endif
