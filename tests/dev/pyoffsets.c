/* pyoffsets.c - print the CPython struct offsets that memprof's frame walker reads.
 *
 * What this is: a developer tool, not part of the build or of the test suite. Compiled against one
 * CPython version's own headers (internal ones included), it prints one "name value" line per
 * offset, size, constant or bit-field mask that the preload needs to find the calling thread's
 * PyThreadState, walk its frame chain and copy code objects with plain memory reads. The results
 * are tabulated in docs/dev/python-frames.md. What this is not: a probe of a running interpreter,
 * except for the optional 3.13 cross-check against _PyRuntime.debug_offsets.
 *
 * How to compile, per version: pick the interpreter's include directory I (pyenv:
 * $(pyenv root)/versions/X.Y.Z/include/pythonX.Y; Debian's python3: /usr/include/python3.11, which
 * ships internal/ with python3-dev) and run
 *     cc -std=c11 -Wall -Wextra -DPy_BUILD_CORE -I$I -I$I/internal tests/dev/pyoffsets.c -o pyoff
 *     ./pyoff
 * once for each of 3.8, 3.9, 3.10, 3.11, 3.12 and 3.13 (Py_BUILD_CORE is required to see the
 * internal structs; the output depends only on the headers and the ABI, so gcc and clang agree).
 * For 3.13 add  -DPYOFF_LINK -L$P/lib -lpython3.13 -Wl,-rpath,$P/lib  (P = the install prefix) to
 * also compare every offset used with the interpreter's own _PyRuntime.debug_offsets table, which
 * is statically initialised, so no interpreter start-up is needed; those lines end in OK or
 * MISMATCH.
 */
#include <Python.h>
#include <frameobject.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#if PY_VERSION_HEX < 0x03080000 || PY_VERSION_HEX >= 0x030E0000
#error "pyoffsets.c covers CPython 3.8 to 3.13"
#endif

#if PY_VERSION_HEX < 0x03090000
#include "internal/pycore_pystate.h" /* _PyRuntimeState with gilstate (3.8) */
#else
#include "internal/pycore_runtime.h"
#endif
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h" /* _PyInterpreterFrame */
#include "internal/pycore_code.h"
#endif
#if PY_VERSION_HEX >= 0x030D0000
#include "internal/pycore_interp.h"
#endif

#define P(name, value) printf("%-44s %lld\n", (name), (long long)(value))
#define OFF(type, field) P(#type "." #field, offsetof(type, field))
#define SIZE(type) P("sizeof(" #type ")", sizeof(type))

/* Bit fields have no offsetof: set one field to all-ones in a zeroed object and report the byte
 * offset (from the start of the object) and the mask of the bits that changed, as one 32-bit word
 * read at that offset. */
#define BITFIELD(type, member, field)                                                              \
    do {                                                                                           \
        type o_;                                                                                   \
        memset(&o_, 0, sizeof o_);                                                                 \
        o_.member.field = 0;                                                                       \
        o_.member.field--; /* unsigned bit field: wraps to all ones */                             \
        size_t base_ = offsetof(type, member);                                                     \
        unsigned mask_ = 0;                                                                        \
        memcpy(&mask_, (char *)&o_ + base_,                                                        \
               sizeof mask_ <= sizeof o_.member ? sizeof mask_ : sizeof o_.member);                \
        printf("%-44s off %zu mask 0x%08x\n", #type "." #member "." #field, base_, mask_);         \
    } while (0)

static void
print_objects(void) {
    SIZE(PyObject);
    OFF(PyObject, ob_refcnt);
    OFF(PyObject, ob_type);
    OFF(PyVarObject, ob_size);
    OFF(PyTypeObject, tp_name);
    OFF(PyTypeObject, tp_flags);

    /* bytes: ob_size is the length, ob_sval the bytes (NUL-terminated) */
    OFF(PyBytesObject, ob_sval);

    /* str: compact ASCII data starts right after PyASCIIObject; other compact strings right after
     * PyCompactUnicodeObject; state.kind is 1, 2 or 4 bytes per code point */
    SIZE(PyASCIIObject);
    SIZE(PyCompactUnicodeObject);
    OFF(PyASCIIObject, length);
    OFF(PyASCIIObject, hash);
    OFF(PyASCIIObject, state);
    OFF(PyCompactUnicodeObject, utf8_length);
    OFF(PyCompactUnicodeObject, utf8);
    OFF(PyUnicodeObject, data);
    BITFIELD(PyASCIIObject, state, interned);
    BITFIELD(PyASCIIObject, state, kind);
    BITFIELD(PyASCIIObject, state, compact);
    BITFIELD(PyASCIIObject, state, ascii);
#if PY_VERSION_HEX < 0x030C0000
    BITFIELD(PyASCIIObject, state, ready);
#else
    BITFIELD(PyASCIIObject, state, statically_allocated);
#endif
}

static void
print_code(void) {
    SIZE(PyCodeObject);
    OFF(PyCodeObject, co_flags);
    OFF(PyCodeObject, co_firstlineno);
    OFF(PyCodeObject, co_filename);
    OFF(PyCodeObject, co_name);
#if PY_VERSION_HEX >= 0x030B0000
    OFF(PyCodeObject, co_qualname);
    OFF(PyCodeObject, co_linetable);
    OFF(PyCodeObject, co_nlocalsplus);
    OFF(PyCodeObject, _co_firsttraceable);
    OFF(PyCodeObject, co_code_adaptive);
    P("sizeof(_Py_CODEUNIT)", sizeof(_Py_CODEUNIT));
#elif PY_VERSION_HEX >= 0x030A0000
    OFF(PyCodeObject, co_code);
    OFF(PyCodeObject, co_linetable);
#else
    OFF(PyCodeObject, co_code);
    OFF(PyCodeObject, co_lnotab);
#endif
}

static void
print_thread(void) {
    SIZE(PyThreadState);
    OFF(PyThreadState, prev);
    OFF(PyThreadState, next);
    OFF(PyThreadState, interp);
    OFF(PyThreadState, thread_id);
#if PY_VERSION_HEX >= 0x030B0000
    OFF(PyThreadState, native_thread_id);
#endif
#if PY_VERSION_HEX < 0x030B0000
    OFF(PyThreadState, frame); /* PyFrameObject *, borrowed */
#elif PY_VERSION_HEX < 0x030D0000
    OFF(PyThreadState, cframe); /* _PyCFrame * (lives on the C stack) */
    OFF(_PyCFrame, current_frame);
    OFF(_PyCFrame, previous);
#else
    OFF(PyThreadState, current_frame);
#endif

    /* the runtime: where the GIL holder (3.8-3.11) and the gilstate TSS key live */
    SIZE(_PyRuntimeState);
#if PY_VERSION_HEX < 0x030C0000
    OFF(_PyRuntimeState, gilstate);
    P("_PyRuntimeState.gilstate.tstate_current",
      offsetof(_PyRuntimeState, gilstate) +
          offsetof(struct _gilstate_runtime_state, tstate_current));
    P("_PyRuntimeState.gilstate.autoInterpreterState",
      offsetof(_PyRuntimeState, gilstate) +
          offsetof(struct _gilstate_runtime_state, autoInterpreterState));
    P("_PyRuntimeState.gilstate.autoTSSkey",
      offsetof(_PyRuntimeState, gilstate) + offsetof(struct _gilstate_runtime_state, autoTSSkey));
#else
    OFF(_PyRuntimeState, autoTSSkey);
    P("_PyRuntimeState.gilstate.autoInterpreterState",
      offsetof(_PyRuntimeState, gilstate) +
          offsetof(struct _gilstate_runtime_state, autoInterpreterState));
#endif
#if PY_VERSION_HEX < 0x03090000
    OFF(_PyRuntimeState, finalizing); /* PyThreadState *: non-NULL once Py_FinalizeEx started */
#else
    OFF(_PyRuntimeState, _finalizing);
#endif
#if PY_VERSION_HEX >= 0x030D0000
    OFF(_PyRuntimeState, debug_offsets);
#endif
    OFF(Py_tss_t, _is_initialized);
    OFF(Py_tss_t, _key);
}

static void
print_frames(void) {
#if PY_VERSION_HEX < 0x030B0000
    SIZE(PyFrameObject);
    OFF(PyFrameObject, f_back);
    OFF(PyFrameObject, f_code);
    OFF(PyFrameObject, f_trace);
    OFF(PyFrameObject, f_gen);
    OFF(PyFrameObject, f_lasti);
    OFF(PyFrameObject, f_lineno);
#if PY_VERSION_HEX >= 0x030A0000
    OFF(PyFrameObject, f_state);
#else
    OFF(PyFrameObject, f_executing);
#endif
#else
    SIZE(_PyInterpreterFrame);
#if PY_VERSION_HEX < 0x030D0000
    OFF(_PyInterpreterFrame, f_code);
    OFF(_PyInterpreterFrame, prev_instr);
#else
    OFF(_PyInterpreterFrame, f_executable);
    OFF(_PyInterpreterFrame, instr_ptr);
#endif
    OFF(_PyInterpreterFrame, previous);
    OFF(_PyInterpreterFrame, frame_obj);
    OFF(_PyInterpreterFrame, stacktop);
    OFF(_PyInterpreterFrame, owner);
#if PY_VERSION_HEX < 0x030C0000
    OFF(_PyInterpreterFrame, is_entry);
#else
    OFF(_PyInterpreterFrame, return_offset);
    P("FRAME_OWNED_BY_CSTACK", FRAME_OWNED_BY_CSTACK);
#endif
    OFF(_PyInterpreterFrame, localsplus);
    P("FRAME_OWNED_BY_THREAD", FRAME_OWNED_BY_THREAD);
    P("FRAME_OWNED_BY_GENERATOR", FRAME_OWNED_BY_GENERATOR);
    P("FRAME_OWNED_BY_FRAME_OBJECT", FRAME_OWNED_BY_FRAME_OBJECT);
    OFF(PyFrameObject, f_back);
    OFF(PyFrameObject, f_frame);
    OFF(PyFrameObject, f_lineno);
#endif
}

#if defined(PYOFF_LINK) && PY_VERSION_HEX >= 0x030D0000
/* Compare the offsets we use with the interpreter's own debug table. */
static void
check_debug_offsets(void) {
    const _Py_DebugOffsets *d = &_PyRuntime.debug_offsets;
    printf("debug_offsets.cookie %.8s version 0x%llx free_threaded %llu\n", d->cookie,
           (unsigned long long)d->version, (unsigned long long)d->free_threaded);
#define CHK(name, got, want)                                                                       \
    printf("debug_offsets.%-34s %llu %s\n", name, (unsigned long long)(got),                       \
           (got) == (want) ? "OK" : "MISMATCH")
    CHK("runtime_state.finalizing", d->runtime_state.finalizing,
        offsetof(_PyRuntimeState, _finalizing));
    CHK("thread_state.current_frame", d->thread_state.current_frame,
        offsetof(PyThreadState, current_frame));
    CHK("thread_state.thread_id", d->thread_state.thread_id, offsetof(PyThreadState, thread_id));
    CHK("thread_state.native_thread_id", d->thread_state.native_thread_id,
        offsetof(PyThreadState, native_thread_id));
    CHK("thread_state.interp", d->thread_state.interp, offsetof(PyThreadState, interp));
    CHK("interpreter_frame.previous", d->interpreter_frame.previous,
        offsetof(_PyInterpreterFrame, previous));
    CHK("interpreter_frame.executable", d->interpreter_frame.executable,
        offsetof(_PyInterpreterFrame, f_executable));
    CHK("interpreter_frame.instr_ptr", d->interpreter_frame.instr_ptr,
        offsetof(_PyInterpreterFrame, instr_ptr));
    CHK("interpreter_frame.owner", d->interpreter_frame.owner,
        offsetof(_PyInterpreterFrame, owner));
    CHK("code_object.filename", d->code_object.filename, offsetof(PyCodeObject, co_filename));
    CHK("code_object.name", d->code_object.name, offsetof(PyCodeObject, co_name));
    CHK("code_object.qualname", d->code_object.qualname, offsetof(PyCodeObject, co_qualname));
    CHK("code_object.linetable", d->code_object.linetable, offsetof(PyCodeObject, co_linetable));
    CHK("code_object.firstlineno", d->code_object.firstlineno,
        offsetof(PyCodeObject, co_firstlineno));
    CHK("code_object.co_code_adaptive", d->code_object.co_code_adaptive,
        offsetof(PyCodeObject, co_code_adaptive));
    CHK("pyobject.ob_type", d->pyobject.ob_type, offsetof(PyObject, ob_type));
    CHK("bytes_object.ob_size", d->bytes_object.ob_size, offsetof(PyVarObject, ob_size));
    CHK("bytes_object.ob_sval", d->bytes_object.ob_sval, offsetof(PyBytesObject, ob_sval));
    CHK("unicode_object.state", d->unicode_object.state, offsetof(PyASCIIObject, state));
    CHK("unicode_object.length", d->unicode_object.length, offsetof(PyASCIIObject, length));
    CHK("unicode_object.asciiobject_size", d->unicode_object.asciiobject_size,
        sizeof(PyASCIIObject));
#undef CHK
}
#endif

int
main(void) {
    printf("%-44s %s\n", "PY_VERSION", PY_VERSION);
    printf("%-44s 0x%08x\n", "PY_VERSION_HEX", (unsigned)PY_VERSION_HEX);
    print_objects();
    print_code();
    print_thread();
    print_frames();
#if defined(PYOFF_LINK) && PY_VERSION_HEX >= 0x030D0000
    check_debug_offsets();
#endif
    return 0;
}
