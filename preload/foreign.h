/* foreign.h - plain loads from another program's memory (CPython's structs), by byte offset.
 *
 * memcpy: no alignment or aliasing assumption about memory memprof does not own; compilers turn
 * each into one load.
 */
#ifndef MP_FOREIGN_H
#define MP_FOREIGN_H

#include <stdint.h>
#include <string.h>

static inline uint64_t
mp_ld64(const uint8_t *p, int off) {
    uint64_t v;
    memcpy(&v, p + off, sizeof v);
    return v;
}

static inline uint32_t
mp_ld32(const uint8_t *p, int off) {
    uint32_t v;
    memcpy(&v, p + off, sizeof v);
    return v;
}

static inline const uint8_t *
mp_ldp(const uint8_t *p, int off) {
    return (const uint8_t *)(uintptr_t)mp_ld64(p, off);
}

#endif
