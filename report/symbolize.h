/* symbolize.h - offline symbolization of native return addresses (elfutils libdw).
 *
 * What this is: given the MODULE records of a dump (model.h), turns a frame value into function,
 * file:line and module name by opening the ELF files named in the dump, as heaptrack's interpret
 * step does. One Dwfl per module, opened on first use and cached, plus a per-address cache.
 * Missing files, stripped binaries and [vdso] give a hex function name with the module still named.
 * Python frames (MP_FRAME_PYTHON_BIT set) are answered by pysym.h: kind "python", the code
 * object's qualname, filename and line.
 */
#ifndef MP_SYMBOLIZE_H
#define MP_SYMBOLIZE_H

#include <stdint.h>
#include <stdio.h>

#include "model.h"

typedef struct mp_sym_s mp_sym_t;

typedef struct mp_frame_info_s {
    const char *kind;     /* "native" or "python" */
    const char *function; /* symbol name, or "0x<hex>" */
    const char *file;     /* source file from DWARF, or NULL */
    int line;             /* 0 when unknown */
    const char *module;   /* basename of the module's path, or NULL if no module covers it */
} mp_frame_info_t;

/* A symbolizer over m's modules (m must outlive it). warn: where to print the one-per-module
 * warnings (build-id mismatch), or NULL to stay silent. Returns NULL only when out of memory. */
mp_sym_t *mp_sym_new(const mp_model_t *m, FILE *warn);
/* Close every ELF session; strings handed out become invalid. NULL is fine. */
void mp_sym_free(mp_sym_t *s);
/* Describe frame value addr. The strings live as long as s. Never fails: unknown addresses get a
 * hex name. */
void mp_sym_lookup(mp_sym_t *s, uint64_t addr, mp_frame_info_t *out);

#endif
