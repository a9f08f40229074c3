/* pylayout.c - the per-version offset tables (see pylayout.h; docs/dev/python-frames.md 5.1). */
#include "pylayout.h"

#include <stddef.h>

static const mp_pylayout_t layouts[] = {MP_PYLAYOUT_38,  MP_PYLAYOUT_39,  MP_PYLAYOUT_310,
                                        MP_PYLAYOUT_311, MP_PYLAYOUT_312, MP_PYLAYOUT_313};

const mp_pylayout_t *
mp_pylayout_for(unsigned major, unsigned minor) {
    if (major != 3) return NULL;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (layouts[i].minor == minor) return &layouts[i];
    return NULL;
}
