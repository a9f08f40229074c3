/* pytls.h - where CPython 3.12+ keeps the calling thread's state, read out of its own code.
 *
 * 3.12 and 3.13 keep the attached thread state in a thread-local, _Py_tss_tstate, that libpython
 * does not export; the exported _PyThreadState_GetCurrent returns it. Its first instructions are
 * one of the x86-64 ABI's TLS access sequences, and say where the variable is. Pure decoding: no
 * system call, no allocation; python.c turns the result into an offset from the thread pointer.
 */
#ifndef MP_PYTLS_H
#define MP_PYTLS_H

#include <stddef.h>
#include <stdint.h>

enum {
    MP_PYTLS_NONE = 0,   /* not one of the sequences below */
    MP_PYTLS_DESC = 1,   /* general dynamic: *desc is the TLS descriptor for __tls_get_addr */
    MP_PYTLS_OFFSET = 2, /* initial or local exec: *off is the offset from the thread pointer */
};
/* Decode the first bytes of a function whose body is `return <thread-local pointer>;`:
 *   general dynamic  data16 lea desc(%rip),%rdi; data16 data16 rex.W call __tls_get_addr;
 *                    mov (%rax),%rax
 *   initial exec     mov off@gottpoff(%rip),%rax; mov %fs:(%rax),%rax
 *   local exec       mov %fs:off,%rax
 * each of them starting within the first 16 bytes (after a stack adjustment, say), size the
 * function's length. An offset is kept only where a static TLS block can be: below the thread
 * pointer (variant II), within 64 MiB. */
int mp_pytls_decode(const uint8_t *code, size_t size, uintptr_t *desc, intptr_t *off);
/* Whether off (from the thread pointer) can be in the static TLS block: the bound above. */
int mp_pytls_offset_ok(intptr_t off);

#endif
