/* pymiss.h - the Python memo's miss path in one call: from a stack's key to its interned stack.
 *
 * capture.c's memo (pyframes.h) misses when a thread's stack is new to it. Walking, resolving and
 * interning the whole stack (mp_pyframes_walk_raw, mp_pyframes_resolve, mp_stacks_intern) costs
 * some 130 instructions a frame, and stacks are deep where misses are many: at start-up imports
 * nest 20-40 frames, and every new line or call below is a miss. Those misses mostly share their
 * outer frames with the miss before, so mp_pyframes_intern keeps, per thread, the last miss's key
 * and what its frames resolved to, counted from the outermost frame, and walks, resolves and
 * hashes only the frames inside the common outer part. Same rules as pyframes.h: no allocation
 * (the state is initial-exec TLS), no lock, plain loads of the calling thread's own frames.
 *
 * Declared apart from pyframes.h, which holds the memo's hit path.
 */
#ifndef MP_PYMISS_H
#define MP_PYMISS_H

#include <stdint.h>

/* The stack of ts (the calling thread's) whose key is key[0 .. kw*nk) (mp_pyframes_key, nk its
 * result, kw = mp_pykey_words(); a chain deeper than the key, nk > max, is walked whole). Gives
 * what mp_pyframes_walk_raw (max MP_PY_DEPTH), mp_pyframes_resolve and mp_stacks_intern_ref give:
 * the stack table's copy of the frames in *stored (NULL with id 0), *nf of them, their splice bits
 * in ends[0 .. *nf), and the stack id, 0 when *nf is 0 or the stack table is full. scratch:
 * MP_PY_DEPTH words the call may use (off the thread's stack, which may be small). Only the splice
 * bits depend on the key holding 3.11's is_entry (with_entry): without it a frame shared with the
 * last miss keeps the bit it had then (splicing, the only reader of those bits, asks for is_entry).
 */
uint32_t mp_pyframes_intern(const uint8_t *ts, const uint64_t *key, uint32_t nk, uint64_t *scratch,
                            uint8_t *ends, uint32_t *nf, int *owner_free, const uint64_t **stored);
/* *owner_free: 1 when no frame of the stack but the innermost is one whose owner byte decides what
 * the walk makes of it (a frame in its prologue, pyframes.h's mp_pykey_hot), so that its hot key
 * words, with no owner byte but the innermost frame's, name it exactly; 0 when one is, or when
 * that is not known (a chain walked whole). Frame objects (<= 3.10) have no owner byte: always
 * 1. */

#endif
