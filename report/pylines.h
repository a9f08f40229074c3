/* pylines.h - CPython line tables and strings as the dump carries them (docs/FORMAT.md 5.10).
 *
 * What this is: the three line-table decoders that map a code object's instruction byte offset
 * to a source line exactly as CPython's own PyCode_Addr2Line does (docs/dev/python-frames.md 7),
 * a helper giving the largest line a table can name, the transcoding of a copied CPython
 * string (PEP 393 kind + bytes) to UTF-8, and PY_VERSION_HEX in words. Tables come from untrusted
 * dumps: nothing here reads past the given length, varints are at most 6 chunks, and arithmetic
 * cannot overflow. What this is not: which code object a frame names (pysym.h).
 */
#ifndef MP_PYLINES_H
#define MP_PYLINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* PYCODE table_format values (FORMAT.md 5.10). */
enum {
    MP_PYTABLE_LNOTAB = 1,    /* co_lnotab, CPython 3.8 and 3.9 */
    MP_PYTABLE_LINETABLE = 2, /* co_linetable of CPython 3.10 */
    MP_PYTABLE_LOCATIONS = 3, /* the location table of CPython 3.11+ */
};

/* pystr kinds: bytes per code point, or 0 when the string could not be read. */
enum {
    MP_PYSTR_UNREADABLE = 0,
    MP_PYSTR_LATIN1 = 1,
    MP_PYSTR_UCS2 = 2,
    MP_PYSTR_UCS4 = 4,
};

/* The line of the instruction at byte offset addr, or -1 for "no line" (CPython returns the same
 * -1). Negative addr gives firstlineno in every format. An unknown format, a corrupt table or a
 * result outside 0..INT_MAX gives -1. */
int mp_pyline_addr2line(const uint8_t *table, size_t len, unsigned format, int firstlineno,
                        int32_t addr);

/* The largest line that mp_pyline_addr2line can return for this table (for 3.11+ also the end
 * line of a multi-line location), and at least firstlineno. */
int mp_pyline_max(const uint8_t *table, size_t len, unsigned format, int firstlineno);

/* Whether n bytes are a valid pystr body of this kind (a known kind, n a multiple of it). */
bool mp_pystr_valid(uint64_t kind, size_t n);

/* A malloc'd NUL-terminated UTF-8 copy of a valid pystr, or NULL when out of memory. Kind 0
 * gives "?". U+0000, code points above U+10FFFF and surrogates give '?', except U+DC80..U+DCFF,
 * which become the raw bytes 0x80..0xFF as os.fsencode() does (filenames that are not UTF-8). */
char *mp_pystr_utf8(uint64_t kind, const uint8_t *data, size_t n);

/* PY_VERSION_HEX as CPython prints it: 0x030b07f0 -> "3.11.7", 0x030d00c2 -> "3.13.0rc2".
 * Returns buf (16 bytes suffice). */
char *mp_pyversion_format(uint32_t hexversion, char *buf, size_t size);

#endif
