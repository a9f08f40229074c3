/* test_pylines.c - report/pylines.c: the three line-table decoders against the examples of
 * CPython's Objects/lnotab_notes.txt and Objects/locations.md and against hostile tables; then a
 * corpus: for every CPython 3.8+ found (pyenv's versions and /usr/bin/python3), run
 * gen_linetables.py under it and compare every decoded offset with what that interpreter's own
 * PyCode_Addr2Line returned. Also pystr transcoding and version strings. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pyfind.h"
#include "pylines.h"

#ifndef MP_UNIT_DIR
#error MP_UNIT_DIR must name tests/unit
#endif

static int
l1(const uint8_t *t, size_t n, int first, int32_t addr) {
    return mp_pyline_addr2line(t, n, MP_PYTABLE_LNOTAB, first, addr);
}
static int
l2(const uint8_t *t, size_t n, int first, int32_t addr) {
    return mp_pyline_addr2line(t, n, MP_PYTABLE_LINETABLE, first, addr);
}
static int
l3(const uint8_t *t, size_t n, int first, int32_t addr) {
    return mp_pyline_addr2line(t, n, MP_PYTABLE_LOCATIONS, first, addr);
}

/* ---- handwritten vectors ----------------------------------------------------------------------
 */

Test(pylines, lnotab_notes_example) {
    /* lnotab_notes.txt: offsets 0, 6, 50, 350, 361 start lines 1, 2, 7, 207, 208; the jump of
     * 300 bytes and 200 lines is written "255, 0, 45, 127, 0, 73". */
    static const uint8_t t[] = {6, 1, 44, 5, 255, 0, 45, 127, 0, 73, 11, 1};
    struct {
        int32_t addr;
        int line;
    } v[] = {{-2, 1},  {-1, 1},  {0, 1},   {5, 1},     {6, 2},     {49, 2},    {50, 7},
             {304, 7}, {305, 7}, {349, 7}, {350, 207}, {360, 207}, {361, 208}, {5000, 208}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        cr_expect_eq(l1(t, sizeof t, 1, v[i].addr), v[i].line, "addr %d", v[i].addr);
    cr_expect_eq(mp_pyline_max(t, sizeof t, MP_PYTABLE_LNOTAB, 1), 208);
    /* -128 is an ordinary line delta in co_lnotab */
    static const uint8_t neg[] = {2, 0x80};
    cr_expect_eq(l1(neg, 2, 200, 1), 200);
    cr_expect_eq(l1(neg, 2, 200, 2), 72);
    /* a line reached only by a zero-length step is never an answer, so not the maximum */
    static const uint8_t zero[] = {4, 50, 0, (uint8_t)-49};
    cr_expect_eq(l1(zero, 4, 1, 4), 2);
    cr_expect_eq(mp_pyline_max(zero, 4, MP_PYTABLE_LNOTAB, 1), 2);
}

Test(pylines, linetable_310) {
    /* 3.10: each pair is [end, end + sdelta) with line += ldelta; -128 = no line. */
    static const uint8_t t[] = {6, 0, 44, 5, 0, 1, 255, 1, 45, 0x80, 11, 2};
    struct {
        int32_t addr;
        int line;
    } v[] = {{-2, 1},  {-1, 1},   {0, 1},    {5, 1},    {6, 6},    {49, 6},  {50, 8},
             {304, 8}, {305, -1}, {349, -1}, {350, 10}, {360, 10}, {361, -1}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        cr_expect_eq(l2(t, sizeof t, 1, v[i].addr), v[i].line, "addr %d", v[i].addr);
    /* line 7 exists only as a zero-length range */
    cr_expect_eq(mp_pyline_max(t, sizeof t, MP_PYTABLE_LINETABLE, 1), 10);
    static const uint8_t zero[] = {4, 0, 0, 50, 4, (uint8_t)-49};
    cr_expect_eq(mp_pyline_max(zero, sizeof zero, MP_PYTABLE_LINETABLE, 1), 2);
}

Test(pylines, location_table_311) {
    /* locations.md: 1cccclll entries; varints in 6-bit chunks (200 = 0x48 0x03). */
    static const uint8_t t[] = {
        0xea, 0x0a,                   /* code 13, 3 units: line 10 + 5 = 15, bytes 0..5 */
        0xd0, 0x04, 0x08,             /* code 10, 1 unit: 15, bytes 6..7 */
        0xd9, 0x01, 0x02,             /* code 11, 2 units: 16, bytes 8..11 */
        0xf9,                         /* code 15, 2 units: no line, bytes 12..15 */
        0x80, 0x00,                   /* code 0, 1 unit: 16, bytes 16..17 */
        0xf7, 0x07, 0x48, 0x03, 0x01, /* code 14, 8 units: 16 - 3 = 13, end 13 + 200 */
        0x3f,                         /*   end column + 1; bytes 18..33 */
        0xe8, 0x50, 0x06,             /* code 13, 1 unit: 13 + 200 = 213, bytes 34..35 */
    };
    struct {
        int32_t addr;
        int line;
    } v[] = {{-2, 10}, {-1, 10}, {0, 15},  {5, 15},  {6, 15},  {7, 15},   {8, 16},   {11, 16},
             {12, -1}, {15, -1}, {16, 16}, {18, 13}, {33, 13}, {34, 213}, {35, 213}, {36, -1}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        cr_expect_eq(l3(t, sizeof t, 10, v[i].addr), v[i].line, "addr %d", v[i].addr);
    /* 213 is also the end line of the long-form entry: 13 + 200 */
    cr_expect_eq(mp_pyline_max(t, sizeof t, MP_PYTABLE_LOCATIONS, 10), 213);
    static const uint8_t end[] = {0xf0, 0x02, 0x50, 0x06, 0x01, 0x01}; /* 11, ends 11 + 400 */
    cr_expect_eq(l3(end, sizeof end, 10, 0), 11);
    cr_expect_eq(mp_pyline_max(end, sizeof end, MP_PYTABLE_LOCATIONS, 10), 411);
}

Test(pylines, hostile_tables) {
    /* odd lengths: the dangling byte is ignored, never read as half a pair */
    static const uint8_t odd[] = {4, 1, 9};
    cr_expect_eq(l1(odd, 3, 1, 100), 2);
    cr_expect_eq(l2(odd, 3, 1, 2), 2);
    cr_expect_eq(l2(odd, 3, 1, 4), -1);
    /* a 3.11 table that does not start an entry, a varint cut by the end, a 7-chunk varint */
    static const uint8_t nostart[] = {0x10, 0x80};
    cr_expect_eq(l3(nostart, 2, 5, 0), -1);
    static const uint8_t cut[] = {0xe8, 0x41};
    cr_expect_eq(l3(cut, 2, 5, 0), -1);
    static const uint8_t seven[] = {0xe8, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x01};
    cr_expect_eq(l3(seven, sizeof seven, 5, 0), -1);
    cr_expect_eq(mp_pyline_max(seven, sizeof seven, MP_PYTABLE_LOCATIONS, 5), 5);
    /* lines that leave int range are no line, not an overflow */
    static const uint8_t up[] = {2, 127};
    cr_expect_eq(l1(up, 2, INT_MAX, 2), -1);
    cr_expect_eq(l1(up, 2, INT_MAX, 0), INT_MAX);
    cr_expect_eq(mp_pyline_max(up, 2, MP_PYTABLE_LNOTAB, INT_MAX), INT_MAX);
    static const uint8_t down[] = {2, 0x81};
    cr_expect_eq(l1(down, 2, 3, 2), -1);
    static const uint8_t big[] = {0xe8, 0x7e, 0x7f, 0x7f, 0x7f, 0x7f, 0x3f}; /* +2^35-1 */
    cr_expect_eq(l3(big, sizeof big, 1, 0), -1);
    cr_expect_eq(mp_pyline_max(big, sizeof big, MP_PYTABLE_LOCATIONS, 1), INT_MAX);
    /* empty tables, unknown formats */
    cr_expect_eq(l1(NULL, 0, 7, 10), 7);
    cr_expect_eq(l2(NULL, 0, 7, 10), -1);
    cr_expect_eq(l3(NULL, 0, 7, 10), -1);
    cr_expect_eq(l3(NULL, 0, 7, -1), 7);
    cr_expect_eq(mp_pyline_addr2line(up, 2, 9, 7, 0), -1);
    cr_expect_eq(mp_pyline_max(up, 2, 9, 7), 7);
}

Test(pylines, random_tables_stay_in_bounds) {
    /* Random bytes in exactly-sized heap buffers (ASan catches any read past them): every answer
     * is -1 or a line, and never above what mp_pyline_max says the table can name. */
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (int iter = 0; iter < 20000; iter++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = (size_t)(x % 40);
        uint8_t *t = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            t[i] = (uint8_t)(x >> 24);
        }
        unsigned fmt = (unsigned)(iter % 5);
        int first = iter % 7 == 0 ? INT_MAX - 3 : (int)(x % 1000);
        int mx = mp_pyline_max(t, n, fmt, first);
        cr_assert_geq(mx, first);
        for (int32_t addr = -3; addr < 90; addr++) {
            int line = mp_pyline_addr2line(t, n, fmt, first, addr);
            cr_assert(line == -1 || (line >= 0 && line <= mx), "format %u addr %d: %d > max %d",
                      fmt, addr, line, mx);
        }
        free(t);
    }
}

/* ---- strings and versions -------------------------------------------------------------------- */

static void
expect_utf8(uint64_t kind, const void *data, size_t n, const char *want) {
    cr_assert(mp_pystr_valid(kind, n));
    char *s = mp_pystr_utf8(kind, data, n);
    cr_assert_not_null(s);
    cr_expect_str_eq(s, want);
    free(s);
}

Test(pylines, pystr_to_utf8) {
    expect_utf8(MP_PYSTR_LATIN1, "caf\xe9", 4, "caf\xc3\xa9");
    expect_utf8(MP_PYSTR_LATIN1, "", 0, "");
    expect_utf8(MP_PYSTR_UNREADABLE, "", 0, "?");
    static const uint8_t ucs2[] = {0x66, 0x00, 0x0d, 0x54, 0x00, 0xd8, 0xff, 0xdc, 0x00, 0x00};
    /* f, U+540D, a lone high surrogate, U+DCFF (surrogateescape of byte 0xff), U+0000 */
    expect_utf8(MP_PYSTR_UCS2, ucs2, sizeof ucs2, "f\xe5\x90\x8d?\xff?");
    static const uint8_t ucs4[] = {0x00, 0xf6, 0x01, 0x00, 0x41, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x11, 0x00, 0xe9, 0x00, 0x00, 0x00};
    /* U+1F600, A, U+110000 (not a code point), U+00E9 */
    expect_utf8(MP_PYSTR_UCS4, ucs4, sizeof ucs4,
                "\xf0\x9f\x98\x80"
                "A?\xc3\xa9");
    cr_expect_not(mp_pystr_valid(MP_PYSTR_UCS2, 3));
    cr_expect_not(mp_pystr_valid(MP_PYSTR_UCS4, 6));
    cr_expect_not(mp_pystr_valid(3, 3));
    cr_expect_not(mp_pystr_valid(8, 8));
}

Test(pylines, version_strings) {
    char b[32];
    cr_expect_str_eq(mp_pyversion_format(0x030b07f0, b, sizeof b), "3.11.7");
    cr_expect_str_eq(mp_pyversion_format(0x030d00c2, b, sizeof b), "3.13.0rc2");
    cr_expect_str_eq(mp_pyversion_format(0x030c00a1, b, sizeof b), "3.12.0a1");
    cr_expect_str_eq(mp_pyversion_format(0x03080bb3, b, sizeof b), "3.8.11b3");
}

/* ---- the corpus: CPython's own answers ------------------------------------------------------- */

static int
hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

typedef struct tally_s {
    long codes, offsets, mismatches;
} tally_t;

/* Compare one "C ..." line of gen_linetables.py output. */
static void
check_code(const char *interp, unsigned fmt, char *line, tally_t *t) {
    char *save = NULL;
    strtok_r(line, " \n", &save); /* "C" */
    int first = atoi(strtok_r(NULL, " \n", &save));
    int want_max = atoi(strtok_r(NULL, " \n", &save));
    const char *hex = strtok_r(NULL, " \n", &save);
    size_t n = strcmp(hex, "-") == 0 ? 0 : strlen(hex) / 2;
    uint8_t *tab = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        tab[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    long k = 0; /* the answers are for -2, -1, then 0, 2, 4, ... */
    for (char *tok; (tok = strtok_r(NULL, " \n", &save)); k++) {
        int32_t addr = k < 2 ? (int32_t)k - 2 : (int32_t)(2 * (k - 2));
        int want = atoi(tok), got = mp_pyline_addr2line(tab, n, fmt, first, addr);
        t->offsets++;
        if (got != want && t->mismatches++ < 5)
            cr_log_error("%s: firstlineno %d table %s addr %d: got %d, CPython says %d", interp,
                         first, hex, addr, got, want);
    }
    int got_max = mp_pyline_max(tab, n, fmt, first);
    if (got_max != want_max && t->mismatches++ < 5)
        cr_log_error("%s: firstlineno %d table %s: max line %d, CPython's positions give %d",
                     interp, first, hex, got_max, want_max);
    t->codes++;
    free(tab);
}

/* Run gen_linetables.py under interp and check its corpus. Returns offsets checked. */
static long
check_interpreter(const char *interp) {
    char cmd[PATH_MAX * 2 + 64];
    snprintf(cmd, sizeof cmd, "'%s' -I '%s/gen_linetables.py'", interp, MP_UNIT_DIR);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", interp);
    char *line = NULL;
    size_t cap = 0;
    unsigned fmt = 0;
    tally_t t = {0, 0, 0};
    while (getline(&line, &cap, p) > 0) {
        if (line[0] == 'V') fmt = (unsigned)atoi(line + 2);
        if (line[0] == 'C') check_code(interp, fmt, line, &t);
    }
    free(line);
    int status = pclose(p);
    cr_assert_eq(status, 0, "%s gen_linetables.py failed (status %d)", interp, status);
    cr_assert_gt(t.codes, 100, "%s: only %ld code objects", interp, t.codes);
    cr_expect_eq(t.mismatches, 0, "%s: %ld mismatches", interp, t.mismatches);
    fprintf(stderr, "test_pylines: %s (format %u): %ld code objects, %ld offsets, %ld mismatches\n",
            interp, fmt, t.codes, t.offsets, t.mismatches);
    return t.offsets;
}

Test(pylines, corpus_matches_cpython, .timeout = 240) {
    char **py = NULL;
    size_t n = mp_pyfind("test_pylines", &py);
    long total = 0;
    for (size_t i = 0; i < n; i++) total += check_interpreter(py[i]);
    mp_pyfind_free(py, n);
    if (n == 0) cr_skip_test("no CPython 3.8+ interpreter found");
    fprintf(stderr, "test_pylines: %zu interpreters, %ld offsets compared with PyCode_Addr2Line\n",
            n, total);
}
