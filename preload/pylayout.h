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

/* The tables, one per minor version, as initializers (fields as in mp_pylayout_t): pylayout.c's
 * table, and the constants the hooks compiled for one version read (pyframes.h mp_pyL), whose
 * offsets thus become immediates. Debian's statically linked 3.11.2 has the same numbers as
 * pyenv's 3.11.7 (checked from both sets of headers). One field a line, as a table. */
/* clang-format off */
#define MP_PYLAYOUT_38                                                                             \
    {                                                                                              \
        .minor = 8,                                                                                \
        .rt_finalizing = 16,                                                                       \
        .rt_tstate_current = 1368,                                                                 \
        .rt_tss_key = 1392,                                                                        \
        .ts_thread_id = 176,                                                                       \
        .ts_frame = 24,                                                                            \
        .ts_cframe = -1,                                                                           \
        .cf_current_frame = -1,                                                                    \
        .ts_current_frame = -1,                                                                    \
        .f_back = 24,                                                                              \
        .f_code = 32,                                                                              \
        .f_lasti = 104,                                                                            \
        .if_code = -1,                                                                             \
        .if_previous = -1,                                                                         \
        .if_instr = -1,                                                                            \
        .if_owner = -1,                                                                            \
        .if_is_entry = -1,                                                                         \
        .co_firstlineno = 40,                                                                      \
        .co_filename = 104,                                                                        \
        .co_name = 112,                                                                            \
        .co_qualname = -1,                                                                         \
        .co_linetable = 120,                                                                       \
        .co_code_adaptive = -1,                                                                    \
        .co_firsttraceable = -1,                                                                   \
        .table_format = 1,                                                                         \
        .ascii_size = 48,                                                                          \
        .compact_size = 72                                                                         \
    }

#define MP_PYLAYOUT_39                                                                             \
    {                                                                                              \
        .minor = 9,                                                                                \
        .rt_finalizing = 16,                                                                       \
        .rt_tstate_current = 568,                                                                  \
        .rt_tss_key = 584,                                                                         \
        .ts_thread_id = 176,                                                                       \
        .ts_frame = 24,                                                                            \
        .ts_cframe = -1,                                                                           \
        .cf_current_frame = -1,                                                                    \
        .ts_current_frame = -1,                                                                    \
        .f_back = 24,                                                                              \
        .f_code = 32,                                                                              \
        .f_lasti = 104,                                                                            \
        .if_code = -1,                                                                             \
        .if_previous = -1,                                                                         \
        .if_instr = -1,                                                                            \
        .if_owner = -1,                                                                            \
        .if_is_entry = -1,                                                                         \
        .co_firstlineno = 40,                                                                      \
        .co_filename = 104,                                                                        \
        .co_name = 112,                                                                            \
        .co_qualname = -1,                                                                         \
        .co_linetable = 120,                                                                       \
        .co_code_adaptive = -1,                                                                    \
        .co_firsttraceable = -1,                                                                   \
        .table_format = 1,                                                                         \
        .ascii_size = 48,                                                                          \
        .compact_size = 72                                                                         \
    }

#define MP_PYLAYOUT_310                                                                            \
    {                                                                                              \
        .minor = 10,                                                                               \
        .rt_finalizing = 16,                                                                       \
        .rt_tstate_current = 568,                                                                  \
        .rt_tss_key = 584,                                                                         \
        .ts_thread_id = 176,                                                                       \
        .ts_frame = 24,                                                                            \
        .ts_cframe = -1,                                                                           \
        .cf_current_frame = -1,                                                                    \
        .ts_current_frame = -1,                                                                    \
        .f_back = 24,                                                                              \
        .f_code = 32,                                                                              \
        .f_lasti = 96,                                                                             \
        .if_code = -1,                                                                             \
        .if_previous = -1,                                                                         \
        .if_instr = -1,                                                                            \
        .if_owner = -1,                                                                            \
        .if_is_entry = -1,                                                                         \
        .co_firstlineno = 40,                                                                      \
        .co_filename = 104,                                                                        \
        .co_name = 112,                                                                            \
        .co_qualname = -1,                                                                         \
        .co_linetable = 120,                                                                       \
        .co_code_adaptive = -1,                                                                    \
        .co_firsttraceable = -1,                                                                   \
        .table_format = 2,                                                                         \
        .ascii_size = 48,                                                                          \
        .compact_size = 72                                                                         \
    }

#define MP_PYLAYOUT_311                                                                            \
    {                                                                                              \
        .minor = 11,                                                                               \
        .rt_finalizing = 24,                                                                       \
        .rt_tstate_current = 576,                                                                  \
        .rt_tss_key = 592,                                                                         \
        .ts_thread_id = 152,                                                                       \
        .ts_frame = -1,                                                                            \
        .ts_cframe = 56,                                                                           \
        .cf_current_frame = 8,                                                                     \
        .ts_current_frame = -1,                                                                    \
        .f_back = -1,                                                                              \
        .f_code = -1,                                                                              \
        .f_lasti = -1,                                                                             \
        .if_code = 32,                                                                             \
        .if_previous = 48,                                                                         \
        .if_instr = 56,                                                                            \
        .if_owner = 69,                                                                            \
        .if_is_entry = 68,                                                                         \
        .co_firstlineno = 72,                                                                      \
        .co_filename = 112,                                                                        \
        .co_name = 120,                                                                            \
        .co_qualname = 128,                                                                        \
        .co_linetable = 136,                                                                       \
        .co_code_adaptive = 184,                                                                   \
        .co_firsttraceable = 168,                                                                  \
        .table_format = 3,                                                                         \
        .ascii_size = 48,                                                                          \
        .compact_size = 72                                                                         \
    }

#define MP_PYLAYOUT_312                                                                            \
    {                                                                                              \
        .minor = 12,                                                                               \
        .rt_finalizing = 24,                                                                       \
        .rt_tstate_current = -1,                                                                   \
        .rt_tss_key = 1544,                                                                        \
        .ts_thread_id = 136,                                                                       \
        .ts_frame = -1,                                                                            \
        .ts_cframe = 56,                                                                           \
        .cf_current_frame = 0,                                                                     \
        .ts_current_frame = -1,                                                                    \
        .f_back = -1,                                                                              \
        .f_code = -1,                                                                              \
        .f_lasti = -1,                                                                             \
        .if_code = 0,                                                                              \
        .if_previous = 8,                                                                          \
        .if_instr = 56,                                                                            \
        .if_owner = 70,                                                                            \
        .if_is_entry = -1,                                                                         \
        .co_firstlineno = 68,                                                                      \
        .co_filename = 112,                                                                        \
        .co_name = 120,                                                                            \
        .co_qualname = 128,                                                                        \
        .co_linetable = 136,                                                                       \
        .co_code_adaptive = 192,                                                                   \
        .co_firsttraceable = 176,                                                                  \
        .table_format = 3,                                                                         \
        .ascii_size = 40,                                                                          \
        .compact_size = 56                                                                         \
    }

#define MP_PYLAYOUT_313                                                                            \
    {                                                                                              \
        .minor = 13,                                                                               \
        .rt_finalizing = 608,                                                                      \
        .rt_tstate_current = -1,                                                                   \
        .rt_tss_key = 2160,                                                                        \
        .ts_thread_id = 152,                                                                       \
        .ts_frame = -1,                                                                            \
        .ts_cframe = -1,                                                                           \
        .cf_current_frame = -1,                                                                    \
        .ts_current_frame = 72,                                                                    \
        .f_back = -1,                                                                              \
        .f_code = -1,                                                                              \
        .f_lasti = -1,                                                                             \
        .if_code = 0,                                                                              \
        .if_previous = 8,                                                                          \
        .if_instr = 56,                                                                            \
        .if_owner = 70,                                                                            \
        .if_is_entry = -1,                                                                         \
        .co_firstlineno = 68,                                                                      \
        .co_filename = 112,                                                                        \
        .co_name = 120,                                                                            \
        .co_qualname = 128,                                                                        \
        .co_linetable = 136,                                                                       \
        .co_code_adaptive = 200,                                                                   \
        .co_firsttraceable = 184,                                                                  \
        .table_format = 3,                                                                         \
        .ascii_size = 40,                                                                          \
        .compact_size = 56                                                                         \
    }

/* clang-format on */

/* Frame owners (3.11+), CPython's FRAME_OWNED_BY_*. */
enum { mp_py_owned_by_thread = 0, mp_py_owned_by_generator = 1, mp_py_owned_by_cstack = 3 };

/* The table for CPython 3.<minor>, or NULL for a version memprof has no layout for. */
const mp_pylayout_t *mp_pylayout_for(unsigned major, unsigned minor);

#endif
