/* sizes.h - byte sizes as people write them ("10MB", "1.5GiB", "4096") and read them ("1.50 MiB").
 *
 * Units (case-insensitive): none or B = bytes; K, M, G, T and KiB, MiB, GiB, TiB are powers of
 * 1024; KB, MB, GB, TB are powers of 1000. A fraction needs a unit larger than a byte. Pure
 * functions: no allocation, no locale.
 */
#ifndef MP_SIZES_H
#define MP_SIZES_H

#include <stddef.h>
#include <stdint.h>

/* Parse s (optional spaces between number and unit) into *out. Returns 0, or MP_EUSAGE for an
 * empty, negative, malformed or overflowing size (*out untouched). */
int mp_size_parse(const char *s, uint64_t *out);
/* Format n as "512 B", "1.00 KiB", "1.50 MiB", "2.25 GiB", ... into buf (24 bytes suffice).
 * Returns buf. */
char *mp_size_format(uint64_t n, char *buf, size_t size);

#endif
