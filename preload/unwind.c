/* unwind.c - native stacks through libunwind (see unwind.h for the contract). */
#define UNW_LOCAL_ONLY
#include "unwind.h"

#include <libunwind.h>
#include <link.h>

#include "config.h"

static uintptr_t self_lo, self_hi; /* our own text, to drop our frames */

static int
find_self(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    uintptr_t me = (uintptr_t)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (me >= lo && me < hi) {
            self_lo = lo;
            self_hi = hi;
            return 1;
        }
    }
    return 0;
}

void
mp_unwind_init(void) {
    /* Per-thread caches keep unw_backtrace cheap and lock-free after the first unwind of
     * each code address in a thread. */
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    dl_iterate_phdr(find_self, (void *)(uintptr_t)&mp_unwind_init);
}

uint32_t
mp_unwind_capture(uint64_t *out, uint32_t max) {
    /* A few of our own frames (capture, hook) sit on top; unwind into a larger buffer and
     * drop them. 8 covers the deepest path through memprof (interpose -> capture -> here). */
    void *ips[MP_DEPTH_MAX + 8];
    int n = unw_backtrace(ips, (int)(max + 8 < MP_DEPTH_MAX + 8 ? max + 8 : MP_DEPTH_MAX + 8));
    if (n <= 0) return 0;
    int skip = 0;
    while (skip < n && (uintptr_t)ips[skip] >= self_lo && (uintptr_t)ips[skip] < self_hi) skip++;
    uint32_t k = 0;
    for (int i = skip; i < n && k < max; i++) out[k++] = (uint64_t)(uintptr_t)ips[i];
    return k;
}
