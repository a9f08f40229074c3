/* levels.c - reserving a levels table (see levels.h). */
#include "levels.h"

#include "sys.h"

int
mp_levels_init(mp_levels_t *t, size_t nslots) {
    size_t first = nslots / 32 > MP_LEVEL_MIN ? nslots / 32 : MP_LEVEL_MIN, total = 0;
    if (first > nslots) first = nslots;
    t->n = 0;
    for (size_t n = first; n <= nslots && t->n < MP_LEVELS_MAX; n *= 2, t->n++) {
        t->off[t->n] = total;
        t->size[t->n] = n;
        total += n;
    }
    t->top = 0;
    t->slots = mp_sys_map(total * sizeof *t->slots);
    return t->slots ? 0 : -1;
}
