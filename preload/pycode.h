/* pycode.h - the registry of Python code objects: code pointer -> code id, and PYCODE records.
 *
 * Producers: any thread, from inside a hook (mp_pycode_id); lock-free, never allocates (table and
 * arena are mmap'd at init, touched lazily), reads the code object with plain loads only. On the
 * first sight of a code object its PYCODE record body (docs/FORMAT.md 5.10: names, first line,
 * line table, copied verbatim) is encoded into the arena, completely, before the entry is
 * published; the writer emits each published entry once (mp_pycode_next), like stacks.h.
 *
 * Address reuse: a code object can be freed and another allocated at its address. Every lookup
 * (including the per-thread cache) compares the filename, name and line-table pointers and the
 * first line cached with the live object's; any difference registers the object again under a
 * new id. Objects identical in all four are reported as the same code, which is what they are
 * for a reader of the report.
 */
#ifndef MP_PYCODE_H
#define MP_PYCODE_H

#include <stddef.h>
#include <stdint.h>

#include "pylayout.h"

/* Reserve the table and arena; 0 or -1. */
int mp_pycode_init(size_t slots, size_t arena_bytes);
/* Layout and type objects used to read code objects (from python.c, before any lookup). */
void mp_pycode_setup(const mp_pylayout_t *layout, const void *bytes_type, const void *unicode_type);
/* The id (>= 1) of code object co, registering it if new; 0 if the registry is full or the
 * object cannot be read (the caller drops the frame). co must be a live code object. */
uint32_t mp_pycode_id(const uint8_t *co);

/* Writer side: the next complete entry from *cursor (start at 0): 1 and its body, or 0. */
int mp_pycode_next(size_t *cursor, const uint8_t **body, size_t *len);
/* Fork child, like mp_stacks_fork_barrier / mp_stacks_each_published. */
size_t mp_pycode_fork_barrier(void);
void mp_pycode_each_published(size_t below, void (*fn)(void *ctx, const uint8_t *body, size_t len),
                              void *ctx);
extern uint64_t mp_pycode_dropped; /* code objects that could not be registered */
/* Bumped (relaxed) before a code object's memory is freed (python.c's OBJ free hook). A memo of
 * walks keyed by code addresses (capture.c) is valid while this is unchanged. */
extern uint32_t mp_pycode_gen;

#endif
