/* unwind.h - native stack capture with libunwind, from inside interposed calls.
 *
 * mp_unwind_init() runs once at start-up (it calls dl_iterate_phdr, which takes the loader
 * lock: never call it from a hook). mp_unwind_capture() may run in any thread inside a hook: it
 * uses unw_backtrace, which keeps a per-thread cache in mmap'd memory and does not call malloc;
 * no lock of ours is held while it runs. Frames inside libmemprof.so itself are dropped.
 */
#ifndef MP_UNWIND_H
#define MP_UNWIND_H

#include <stdint.h>

void mp_unwind_init(void);
/* Fill out[0..max) with return addresses, innermost first, starting at the first frame
 * outside libmemprof.so; returns the count (0 if unwinding failed). */
uint32_t mp_unwind_capture(uint64_t *out, uint32_t max);

#endif
