/* pytls.c - decoding CPython's thread-local state access (see pytls.h). */
#include "pytls.h"

#include <string.h>

int
mp_pytls_offset_ok(intptr_t off) {
    return off < 0 && off > -((intptr_t)64 << 20);
}

int
mp_pytls_decode(const uint8_t *code, size_t size, uintptr_t *desc, intptr_t *off) {
    static const uint8_t gd1[] = {0x66, 0x48, 0x8d, 0x3d}, gd2[] = {0x66, 0x66, 0x48, 0xe8},
                         load[] = {0x48, 0x8b, 0x00}, ie1[] = {0x48, 0x8b, 0x05},
                         ie2[] = {0x64, 0x48, 0x8b, 0x00}, le[] = {0x64, 0x48, 0x8b, 0x04, 0x25};
    int32_t rel;
    for (size_t i = 0; i < 16; i++) {
        const uint8_t *p = code + i;
        size_t left = size > i ? size - i : 0;
        if (left >= 19 && !memcmp(p, gd1, 4) && !memcmp(p + 8, gd2, 4) &&
            !memcmp(p + 16, load, 3)) {
            memcpy(&rel, p + 4, 4);
            *desc = (uintptr_t)(p + 8) + (uintptr_t)(intptr_t)rel;
            return MP_PYTLS_DESC;
        }
        if (left >= 11 && !memcmp(p, ie1, 3) && !memcmp(p + 7, ie2, 4)) {
            memcpy(&rel, p + 3, 4);
            int64_t v;
            memcpy(&v, p + 7 + rel, 8); /* the GOT entry the linker filled with the offset */
            if (!mp_pytls_offset_ok((intptr_t)v)) return MP_PYTLS_NONE;
            *off = (intptr_t)v;
            return MP_PYTLS_OFFSET;
        }
        if (left >= 9 && !memcmp(p, le, 5)) {
            memcpy(&rel, p + 5, 4);
            if (!mp_pytls_offset_ok(rel)) return MP_PYTLS_NONE;
            *off = rel;
            return MP_PYTLS_OFFSET;
        }
    }
    return MP_PYTLS_NONE;
}
