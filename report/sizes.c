/* sizes.c - parse and format byte sizes (see sizes.h for the units accepted).
 *
 * What this owns: the one definition of how memprof spells sizes, for flags such as --max-leaked
 * and for every human-readable number the reporter prints. Parsing is exact integer arithmetic
 * (no strtod: no locale, no "inf", no "1e3").
 */
#include "sizes.h"

#include <ctype.h>
#include <stdio.h>
#include <strings.h>

#include "reader.h" /* MP_EUSAGE */

static const struct {
    const char *name;
    uint64_t mult;
} units[] = {
    {"", 1},
    {"b", 1},
    {"k", 1ull << 10},
    {"kib", 1ull << 10},
    {"kb", 1000ull},
    {"m", 1ull << 20},
    {"mib", 1ull << 20},
    {"mb", 1000000ull},
    {"g", 1ull << 30},
    {"gib", 1ull << 30},
    {"gb", 1000000000ull},
    {"t", 1ull << 40},
    {"tib", 1ull << 40},
    {"tb", 1000000000000ull},
};

int
mp_size_parse(const char *s, uint64_t *out) {
    if (!s) return MP_EUSAGE;
    while (*s == ' ') s++;
    if (!isdigit((unsigned char)*s)) return MP_EUSAGE;
    unsigned __int128 whole = 0, frac = 0, scale = 1;
    for (; isdigit((unsigned char)*s); s++) {
        whole = whole * 10 + (unsigned)(*s - '0');
        if (whole > UINT64_MAX) return MP_EUSAGE;
    }
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s)) return MP_EUSAGE;
        for (; isdigit((unsigned char)*s); s++) {
            if (scale >= 1000000000000000000ull) continue; /* ignore digits past 18 */
            frac = frac * 10 + (unsigned)(*s - '0');
            scale *= 10;
        }
    }
    while (*s == ' ') s++;
    const char *unit = s;
    size_t ulen = 0;
    while (unit[ulen] && unit[ulen] != ' ') ulen++;
    for (size_t i = ulen; unit[i]; i++)
        if (unit[i] != ' ') return MP_EUSAGE;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t n = 0;
        while (units[i].name[n]) n++;
        if (n != ulen || strncasecmp(unit, units[i].name, n) != 0) continue;
        if (units[i].mult == 1 && scale > 1) return MP_EUSAGE; /* "1.5" bytes */
        unsigned __int128 v = whole * units[i].mult + frac * units[i].mult / scale;
        if (v > UINT64_MAX) return MP_EUSAGE;
        *out = (uint64_t)v;
        return 0;
    }
    return MP_EUSAGE;
}

char *
mp_size_format(uint64_t n, char *buf, size_t size) {
    static const char *const names[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (n < 1024) {
        snprintf(buf, size, "%llu B", (unsigned long long)n);
        return buf;
    }
    double v = (double)n / 1024.0;
    size_t u = 0;
    /* Move up a unit when two decimals would round to 1024.00. */
    while (v >= 1023.995 && u + 1 < sizeof names / sizeof names[0]) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, size, "%.2f %s", v, names[u]);
    return buf;
}
