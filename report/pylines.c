/* pylines.c - CPython line tables to lines, CPython strings to UTF-8 (see pylines.h).
 *
 * What this owns: the decoders of docs/dev/python-frames.md 7, one per table format, written
 * from CPython's PyCode_Addr2Line (3.8/3.9 Objects/codeobject.c and lnotab_notes.txt; 3.10 and
 * 3.11+ advance() and _PyCode_CheckLineNumber), with every read bounds-checked; and the PEP 393
 * transcoding. Running lines are 64-bit so that a hostile table cannot overflow them.
 * What this is not: code-object bookkeeping (model.c) or frame resolution (pysym.c).
 */
#include "pylines.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* A 3.11+ location-table varint: 6-bit chunks, least significant first, bit 6 = more follows.
 * At most 6 chunks. Returns 0 and advances *i, or -1 when it runs past len or is too long. */
static int
loc_varint(const uint8_t *t, size_t len, size_t *i, uint64_t *out) {
    uint64_t v = 0;
    for (unsigned k = 0; k < 6; k++) {
        if (*i >= len) return -1;
        uint8_t b = t[(*i)++];
        v |= (uint64_t)(b & 63) << (6 * k);
        if (!(b & 64)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static int
loc_svarint(const uint8_t *t, size_t len, size_t *i, int64_t *out) {
    uint64_t u;
    if (loc_varint(t, len, i, &u) < 0) return -1;
    *out = (u & 1) ? -(int64_t)(u >> 1) : (int64_t)(u >> 1);
    return 0;
}

static int
clamp_line(int64_t line) {
    return line < 0 || line > INT_MAX ? -1 : (int)line;
}

/* One 3.11+ entry at t[*i]: its code, width in bytes, the start-line delta and (long form) the
 * end-line delta. Advances *i to the next entry. Returns 0 or -1 (corrupt). */
typedef struct loc_entry_s {
    unsigned code;
    int64_t width, line_delta, end_delta;
} loc_entry_t;

static int
loc_next(const uint8_t *t, size_t len, size_t *i, loc_entry_t *e) {
    uint8_t b = t[*i];
    if (!(b & 0x80)) return -1;
    e->code = (b >> 3) & 15;
    e->width = ((b & 7) + 1) * 2;
    e->line_delta = e->end_delta = 0;
    size_t p = *i + 1;
    if (e->code == 13 || e->code == 14) {
        if (loc_svarint(t, len, &p, &e->line_delta) < 0) return -1;
        if (e->code == 14) {
            uint64_t end;
            if (loc_varint(t, len, &p, &end) < 0) return -1;
            e->end_delta = (int64_t)end;
        }
    } else if (e->code >= 10 && e->code <= 12) {
        e->line_delta = e->code - 10;
    }
    /* CPython skips to the next byte with bit 7 set, whatever the payload said. */
    *i += 1;
    while (*i < len && !(t[*i] & 0x80)) (*i)++;
    return 0;
}

int
mp_pyline_addr2line(const uint8_t *t, size_t len, unsigned format, int firstlineno, int32_t addr) {
    int64_t line = firstlineno, a = 0;
    switch (format) {
        case MP_PYTABLE_LNOTAB:
            /* The address moves first; the line changes once the address is passed. */
            for (size_t i = 0; i + 1 < len; i += 2) {
                a += t[i];
                if (a > addr) break;
                line += (int8_t)t[i + 1];
            }
            return clamp_line(line);
        case MP_PYTABLE_LINETABLE:
            /* Each pair is the range [end, end + sdelta) and its line; -128 = no line. */
            if (addr < 0) return firstlineno;
            for (size_t i = 0; i + 1 < len; i += 2) {
                int64_t start = a;
                a += t[i];
                int64_t here = -1;
                if ((int8_t)t[i + 1] != -128) {
                    line += (int8_t)t[i + 1];
                    here = line;
                }
                if (start <= addr && addr < a) return clamp_line(here);
            }
            return -1;
        case MP_PYTABLE_LOCATIONS: {
            if (addr < 0) return firstlineno;
            size_t i = 0;
            while (i < len) {
                loc_entry_t e;
                if (loc_next(t, len, &i, &e) < 0) return -1;
                line += e.line_delta;
                if (a <= addr && addr < a + e.width) return e.code == 15 ? -1 : clamp_line(line);
                a += e.width;
            }
            return -1;
        }
        default:
            return -1;
    }
}

static int64_t
max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

int
mp_pyline_max(const uint8_t *t, size_t len, unsigned format, int firstlineno) {
    int64_t line = firstlineno, best = firstlineno;
    switch (format) {
        case MP_PYTABLE_LNOTAB:
            /* A line counts when some address maps to it: the next pair advances the address,
             * or it is the last one (it runs to the end of the code). */
            for (size_t i = 0; i + 1 < len; i += 2) {
                line += (int8_t)t[i + 1];
                bool last = i + 3 >= len;
                if (last || t[i + 2] > 0) best = max64(best, line);
            }
            break;
        case MP_PYTABLE_LINETABLE:
            for (size_t i = 0; i + 1 < len; i += 2) {
                if ((int8_t)t[i + 1] == -128) continue;
                line += (int8_t)t[i + 1];
                if (t[i] > 0) best = max64(best, line);
            }
            break;
        case MP_PYTABLE_LOCATIONS: {
            size_t i = 0;
            while (i < len) {
                loc_entry_t e;
                if (loc_next(t, len, &i, &e) < 0) break;
                line += e.line_delta;
                if (e.code != 15) best = max64(best, max64(line, line + e.end_delta));
            }
            break;
        }
        default:
            break;
    }
    return best > INT_MAX ? INT_MAX : (int)best;
}

bool
mp_pystr_valid(uint64_t kind, size_t n) {
    switch (kind) {
        case MP_PYSTR_UNREADABLE:
        case MP_PYSTR_LATIN1:
            return true;
        case MP_PYSTR_UCS2:
        case MP_PYSTR_UCS4:
            return n % kind == 0;
        default:
            return false;
    }
}

static size_t
put_utf8(char *o, uint32_t cp) {
    if (cp == 0 || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff && (cp < 0xdc80 || cp > 0xdcff))) {
        o[0] = '?';
        return 1;
    }
    if (cp >= 0xdc80 && cp <= 0xdcff) { /* surrogateescape: the original byte */
        o[0] = (char)(cp - 0xdc00);
        return 1;
    }
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

char *
mp_pystr_utf8(uint64_t kind, const uint8_t *data, size_t n) {
    if (kind != MP_PYSTR_LATIN1 && kind != MP_PYSTR_UCS2 && kind != MP_PYSTR_UCS4) {
        char *q = malloc(2);
        if (q) q[0] = '?', q[1] = 0;
        return q;
    }
    size_t units = n / (size_t)kind;
    if (units > (SIZE_MAX - 1) / 4) return NULL;
    char *out = malloc(units * 4 + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < units; i++) {
        const uint8_t *p = data + i * kind;
        uint32_t cp = p[0];
        if (kind >= 2) cp |= (uint32_t)p[1] << 8;
        if (kind == 4) cp |= (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        o += put_utf8(o, cp);
    }
    *o = 0;
    return out;
}

char *
mp_pyversion_format(uint32_t hex, char *buf, size_t size) {
    unsigned level = (hex >> 4) & 15, serial = hex & 15;
    const char *tag = level == 0xa ? "a" : level == 0xb ? "b" : level == 0xc ? "rc" : NULL;
    int n = snprintf(buf, size, "%u.%u.%u", hex >> 24, (hex >> 16) & 255, (hex >> 8) & 255);
    if (tag && n > 0 && (size_t)n < size) snprintf(buf + n, size - (size_t)n, "%s%u", tag, serial);
    return buf;
}
