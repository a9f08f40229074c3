/* modules.h - the table of executable file mappings, for offline symbolization.
 *
 * Writer thread only. Reads /proc/self/maps and the ELF headers of mapped files with plain
 * system calls; never calls dl_iterate_phdr (the loader lock could be held by a producer that
 * is waiting for the writer) and never reads the mapped memory of a library (it may be
 * unmapped concurrently by dlclose).
 */
#ifndef MP_MODULES_H
#define MP_MODULES_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_module_s {
    const char *path;        /* absolute path as in /proc/self/maps */
    uint64_t bias;           /* runtime address - ELF vaddr */
    uint32_t nranges;        /* executable ranges */
    const uint64_t *ranges;  /* start, end pairs */
    const uint8_t *build_id; /* NT_GNU_BUILD_ID bytes */
    uint32_t build_id_len;
} mp_module_t;

int mp_modules_init(void);   /* reserve buffers; 0 or -1 */
void mp_modules_reset(void); /* forget what was emitted (fork child: new dump) */
/* Read the current mappings and call emit for every module not emitted before (or whose
 * ranges changed). Returns the number emitted, or -errno if /proc/self/maps is unreadable. */
int mp_modules_refresh(void (*emit)(void *ctx, const mp_module_t *m), void *ctx);

#endif
