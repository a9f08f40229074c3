/* test_perline.c - Python frames through the reporter: the per-line view (report/per_line.c),
 * the by-line groups of leaks and peak (report/by_line.c), Python frames in JSON and text, and
 * the PYCODE/PYTHON records in the model.
 *
 * The dumps are synthetic but their line tables are real: for each CPython found (pyfind.h),
 * gen_pycode.py compiles SCRIPT below and prints every code object's table and, per line, the
 * offsets CPython's PyCode_Addr2Line maps to it. The events are written here with sizes in units
 * of U = 1/8 MiB, and every expected number is worked out by hand from them (see EVENTS).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dumpgen.h"
#include "emit.h"
#include "model.h"
#include "per_line.h"
#include "pyfind.h"

#ifndef MP_UNIT_DIR
#error MP_UNIT_DIR must name tests/unit
#endif

#define U 131072ull /* 0.125 MiB */

static const char SCRIPT[] = "import os\n"                  /* 1 */
                             "\n"                           /* 2 */
                             "def helper(n):\n"             /* 3 */
                             "    buf = bytearray(n)\n"     /* 4 */
                             "    return buf\n"             /* 5 */
                             "\n"                           /* 6 */
                             "def work():\n"                /* 7 */
                             "    a = helper(1000)\n"       /* 8 */
                             "    b = helper(2000)\n"       /* 9 */
                             "    del a\n"                  /* 10 */
                             "    c = [b] * 10\n"           /* 11 */
                             "    return c\n"               /* 12 */
                             "\n"                           /* 13 */
                             "class Box:\n"                 /* 14 */
                             "    def fill(self):\n"        /* 15 */
                             "        self.data = work()\n" /* 16 */
                             "\n"                           /* 17 */
                             "Box().fill()\n";              /* 18 */

/* ---- the code objects, from CPython -----------------------------------------------------------
 */

typedef struct code_s {
    char name[32];
    uint32_t id; /* the code id written to the dump */
    int first, format;
    uint8_t table[1024];
    size_t tablen;
    int lines[64], noffs[64], offs[64][64];
    int nlines;
} code_t;

typedef struct pyinfo_s {
    const char *interp;
    char dir[64], path[128]; /* a temporary directory holding script.py */
    unsigned long hexversion;
    char version[32];
    code_t codes[8];
    int ncodes;
} pyinfo_t;

static int
hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c - 'a' + 10;
}

/* Write SCRIPT into a fresh directory and read its code objects as interp compiles them. */
static void
load_pyinfo(const char *interp, pyinfo_t *pi) {
    memset(pi, 0, sizeof *pi);
    pi->interp = interp;
    snprintf(pi->dir, sizeof pi->dir, "/tmp/memprof-perline-XXXXXX");
    cr_assert_not_null(mkdtemp(pi->dir));
    snprintf(pi->path, sizeof pi->path, "%s/script.py", pi->dir);
    FILE *f = fopen(pi->path, "w");
    cr_assert_not_null(f);
    fputs(SCRIPT, f);
    fclose(f);
    char cmd[PATH_MAX + 256];
    snprintf(cmd, sizeof cmd, "'%s' -I '%s/gen_pycode.py' '%s'", interp, MP_UNIT_DIR, pi->path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char line[8192];
    code_t *c = NULL;
    while (fgets(line, sizeof line, p)) {
        if (line[0] == 'P') {
            sscanf(line, "P %lu %31s", &pi->hexversion, pi->version);
        } else if (line[0] == 'C') {
            cr_assert_lt(pi->ncodes, 8);
            c = &pi->codes[pi->ncodes++];
            char hex[2100];
            cr_assert_eq(sscanf(line, "C %31s %d %d %2099s", c->name, &c->first, &c->format, hex),
                         4);
            c->tablen = strcmp(hex, "-") == 0 ? 0 : strlen(hex) / 2;
            for (size_t i = 0; i < c->tablen; i++)
                c->table[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
        } else if (line[0] == 'L' && c && c->nlines < 64) {
            char *save = NULL, *tok = strtok_r(line + 2, " \n", &save);
            int k = c->nlines++;
            c->lines[k] = atoi(tok);
            while ((tok = strtok_r(NULL, " \n", &save)) && c->noffs[k] < 64)
                c->offs[k][c->noffs[k]++] = atoi(tok);
        }
    }
    cr_assert_eq(pclose(p), 0, "%s gen_pycode.py failed", interp);
    static const char *const ids[] = {"", "<module>", "helper", "work", "Box", "fill"};
    for (int i = 0; i < pi->ncodes; i++)
        for (uint32_t id = 1; id < 6; id++)
            if (strcmp(pi->codes[i].name, ids[id]) == 0) pi->codes[i].id = id;
    cr_assert_eq(pi->ncodes, 5, "%s: %d code objects", interp, pi->ncodes);
}

static void
unload_pyinfo(pyinfo_t *pi) {
    unlink(pi->path);
    rmdir(pi->dir);
}

static const code_t *
code_named(const pyinfo_t *pi, const char *name) {
    for (int i = 0; i < pi->ncodes; i++)
        if (strcmp(pi->codes[i].name, name) == 0) return &pi->codes[i];
    cr_assert_fail("%s: no code object %s", pi->interp, name);
    return NULL;
}

/* The Python frame value of code `name` at its k-th offset on `line` (the last if fewer). */
static uint64_t
pyf(const pyinfo_t *pi, const char *name, int line, int k) {
    const code_t *c = code_named(pi, name);
    for (int i = 0; i < c->nlines; i++)
        if (c->lines[i] == line) {
            int off = c->offs[i][k < c->noffs[i] ? k : c->noffs[i] - 1];
            return MP_FRAME_PYTHON_BIT | (uint64_t)c->id << 32 | (uint32_t)off;
        }
    cr_assert_fail("%s: %s has no offset on line %d", pi->interp, name, line);
    return 0;
}

/* ---- the dump ---------------------------------------------------------------------------------
 */

/* EVENTS (stacks innermost first; heap = tracked live bytes right after the event):
 *  seq stack                                             event               heap
 *   1  S8 <module>:1                                     ALLOC 20U  @g       20U
 *   2  S8 <module>:1                                     FREE  @g            0
 *   3  0 (none)                                          ALLOC 40U  @a       40U
 *   4  S1 helper:4 work:8 fill:16 <module>:18            ALLOC  8U  @b       48U
 *   5  S2 helper:4 work:9 fill:16 <module>:18            ALLOC 16U  @c       64U
 *   6  S3 work:10 fill:16 <module>:18                    FREE  @b (8U)       56U
 *   7  S4 [native] work:11 [native] fill:16 <module>:18  ALLOC  1U  @d       57U
 *   8  S5 helper:4 helper:4 work:9 fill:16 <module>:18   ALLOC  2U  @e       59U
 *   9  S6 helper:5 work:12 <truncated>                   ALLOC 12U  @f       71U  <- peak
 *  10  S7 work:12 fill:16 <module>:18                    FREE (realloc) @c   55U
 *  11  -                                                 REALLOC_FAIL @c     71U
 *  12  exit marker: leaked a, c, d, e, f (the failed realloc's block is live again) */
enum { S1 = 1, S2, S3, S4, S5, S6, S7, S8 };

static void
build(mp_dg_t *g, const pyinfo_t *pi, const char *filename, const char *cwd) {
    mp_dg_init(g);
    mp_dg_process(g, pi->interp, "python3\0script.py\0", 18, cwd);
    mp_dg_python(g, pi->hexversion, 0x1f, "default");
    for (int i = 0; i < pi->ncodes; i++) {
        const code_t *c = &pi->codes[i];
        /* qualnames as 3.11+ writes them, except that <module> and helper get none: the
         * function is then shown under its name */
        const char *qual = strcmp(c->name, "fill") == 0   ? "Box.fill"
                           : strcmp(c->name, "work") == 0 ? "work"
                           : strcmp(c->name, "Box") == 0  ? "Box"
                                                          : "";
        mp_dg_pycode(g, c->id, (uint64_t)c->first, (uint64_t)c->format, mp_dg_latin1(filename),
                     mp_dg_latin1(c->name), mp_dg_latin1(qual), c->table, c->tablen);
    }
    uint64_t mod = pyf(pi, "<module>", 18, 0), fill = pyf(pi, "fill", 16, 0);
    uint64_t s1[] = {pyf(pi, "helper", 4, 0), pyf(pi, "work", 8, 0), fill, mod};
    uint64_t s2[] = {pyf(pi, "helper", 4, 0), pyf(pi, "work", 9, 0), fill, mod};
    uint64_t s3[] = {pyf(pi, "work", 10, 0), fill, mod};
    uint64_t s4[] = {0x401000, pyf(pi, "work", 11, 0), 0x402000, fill, mod};
    uint64_t s5[] = {pyf(pi, "helper", 4, 1), pyf(pi, "helper", 4, 2), pyf(pi, "work", 9, 1), fill,
                     mod};
    uint64_t s6[] = {pyf(pi, "helper", 5, 0), pyf(pi, "work", 12, 0), MP_FRAME_PYTHON_BIT};
    uint64_t s7[] = {pyf(pi, "work", 12, 1), fill, mod};
    uint64_t s8[] = {pyf(pi, "<module>", 1, 0)};
    mp_dg_stack(g, S1, s1, 4);
    mp_dg_stack(g, S2, s2, 4);
    mp_dg_stack(g, S3, s3, 3);
    mp_dg_stack(g, S4, s4, 5);
    mp_dg_stack(g, S5, s5, 5);
    mp_dg_stack(g, S6, s6, 3);
    mp_dg_stack(g, S7, s7, 3);
    mp_dg_stack(g, S8, s8, 1);
    mp_dg_events_begin(g, 0, 1);
    mp_dg_alloc(g, 1, 0x9000, 20 * U, S8, MP_ALLOC_PYMEM_OBJ);
    mp_dg_free_ev(g, 2, 0x9000, S8, MP_ALLOC_PYMEM_OBJ);
    mp_dg_alloc(g, 3, 0xa000, 40 * U, 0, MP_ALLOC_PYMEM_RAW);
    mp_dg_alloc(g, 4, 0xb000, 8 * U, S1, MP_ALLOC_PYMEM_OBJ);
    mp_dg_alloc(g, 5, 0xc000, 16 * U, S2, MP_ALLOC_PYMEM_OBJ);
    mp_dg_free_ev(g, 6, 0xb000, S3, MP_ALLOC_PYMEM_OBJ);
    mp_dg_alloc(g, 7, 0xd000, 1 * U, S4, MP_ALLOC_MALLOC);
    mp_dg_alloc(g, 8, 0xe000, 2 * U, S5, MP_ALLOC_PYMEM_MEM);
    mp_dg_alloc(g, 9, 0xf000, 12 * U, S6, MP_ALLOC_PYMEM_MEM);
    mp_dg_free_ev(g, 10, 0xc000, S7, MP_ALLOC_REALLOC);
    mp_dg_realloc_fail(g, 11, 0xc000);
    mp_dg_events_end(g);
    mp_dg_marker(g, MP_MARK_EXIT, 12, 1000000);
    mp_dg_trailer(g, 11, 8, 3, 99 * U, 0, 2000000, 12, 0);
    mp_dg_flush(g);
}

static mp_model_t *
load(mp_dg_t *g, bool lines) {
    mp_dg_flush(g);
    mp_reader_t *r = NULL;
    mp_err_t err;
    cr_assert_eq(mp_reader_open_mem(&r, g->buf, g->len, &err), 0);
    mp_model_t *m = NULL;
    mp_model_opts_t o = {.at = mp_at_default, .lines = lines};
    cr_assert_eq(mp_model_build(&m, r, &o, &err), 0, "model: %s", err.msg);
    return m;
}

/* ---- what the events above give, by hand ------------------------------------------------------
 */

typedef struct want_row_s {
    const char *fn;
    int line;
    uint64_t occ;
    int64_t inc;
    uint64_t mem, alloc, freed;
} want_row_t;

/* Each event counts once for every function on its stack, at its innermost frame. In rank order of
 * the functions, then by line. */
static const want_row_t want_rows[] = {
    {"work", 8, 1, 8 * U, 48 * U, 8 * U, 0},   /* S1 */
    {"work", 9, 2, 18 * U, 64 * U, 18 * U, 0}, /* S2, S5 */
    /* the free happens on line 10: a negative increment, no allocation */
    {"work", 10, 0, -(int64_t)(8 * U), 56 * U, 0, 8 * U},
    {"work", 11, 1, 1 * U, 57 * U, 1 * U, 0}, /* S4, native frames ignored */
    /* S6 (+12U, 71U); S7's realloc free (-16U, 55U) taken back by the failure (+16U, 71U) */
    {"work", 12, 1, 12 * U, 71 * U, 12 * U, 0},
    /* helper:4 gets S1 (+8U, heap 48U), S2 (+16U, 64U), S5 once although twice on it (+2U, 59U) */
    {"helper", 4, 3, 26 * U, 64 * U, 26 * U, 0},
    {"helper", 5, 1, 12 * U, 71 * U, 12 * U, 0},   /* S6 */
    {"<module>", 1, 1, 0, 20 * U, 20 * U, 20 * U}, /* S8 twice: allocated, then freed */
    /* the call lines carry their callees: S1 S2 S3 S4 S5 S7 and the failure; not S6 (cut) */
    {"<module>", 18, 4, 19 * U, 71 * U, 27 * U, 8 * U},
    {"Box.fill", 16, 4, 19 * U, 71 * U, 27 * U, 8 * U},
};

typedef struct want_fn_s {
    const char *fn, *name;
    int first, last;
    uint64_t peak, alloc, freed, allocations;
} want_fn_t;

/* Live at the peak (seq 9): a 40U (no stack), c 16U (S2), d 1U (S4), e 2U (S5), f 12U (S6).
 * Ranked by those bytes, then by allocated bytes: <module> allocated the most (47U) but held less
 * at the peak than work and helper. */
static const want_fn_t want_fns[] = {
    {"work", "work", 7, 12, 31 * U, 39 * U, 8 * U, 5},          /* S1 S2 S4 S5 S6; frees S3 */
    {"helper", "helper", 3, 5, 30 * U, 38 * U, 0, 4},           /* S1 S2 S5 S6 */
    {"<module>", "<module>", 1, 18, 19 * U, 47 * U, 28 * U, 5}, /* S8 S1 S2 S4 S5; frees S8 S3 */
    {"Box.fill", "fill", 15, 16, 19 * U, 27 * U, 8 * U, 4},     /* S1 S2 S4 S5; frees S3 */
};

/* Run body once per interpreter found. */
#define FOR_EACH_PYTHON(pi, body)                                                                  \
    do {                                                                                           \
        char **py_ = NULL;                                                                         \
        size_t npy_ = mp_pyfind("test_perline", &py_);                                             \
        if (npy_ == 0) cr_skip_test("no CPython 3.8+ interpreter found");                          \
        for (size_t i_ = 0; i_ < npy_; i_++) {                                                     \
            pyinfo_t pi;                                                                           \
            load_pyinfo(py_[i_], &pi);                                                             \
            body;                                                                                  \
            unload_pyinfo(&pi);                                                                    \
        }                                                                                          \
        mp_pyfind_free(py_, npy_);                                                                 \
    } while (0)

static void
check_numbers(const pyinfo_t *pi) {
    mp_dg_t g;
    build(&g, pi, pi->path, "/");
    mp_model_t *m = load(&g, true);
    cr_assert_eq(m->summary.peak_bytes, 71 * U);
    cr_assert_eq(m->summary.leaked_bytes, 71 * U, "the failed realloc left c live");
    cr_assert_eq(m->npycodes, 5);
    cr_assert(m->python.present);
    cr_assert_eq(m->python.hexversion, pi->hexversion);
    const mp_perline_t *pl = m->perline;
    cr_assert_not_null(pl);
    cr_assert_eq(pl->nfuncs, 4, "%s: the class body had no event", pi->interp);
    for (size_t i = 0; i < 4; i++) {
        const mp_pyfunc_t *f = &pl->funcs[i];
        const want_fn_t *w = &want_fns[i];
        cr_expect_str_eq(f->function, w->fn, "%s: rank %zu", pi->interp, i);
        cr_expect_str_eq(f->name, w->name);
        cr_expect_str_eq(f->file, pi->path);
        cr_expect_eq(f->first_line, w->first, "%s %s", pi->interp, w->fn);
        cr_expect_eq(f->last_line, w->last, "%s %s", pi->interp, w->fn);
        cr_expect_eq(f->peak_bytes, w->peak, "%s %s", pi->interp, w->fn);
        cr_expect_eq(f->alloc_bytes, w->alloc, "%s %s", pi->interp, w->fn);
        cr_expect_eq(f->freed_bytes, w->freed, "%s %s", pi->interp, w->fn);
        cr_expect_eq(f->allocations, w->allocations, "%s %s", pi->interp, w->fn);
    }
    size_t nrows = 0;
    for (size_t i = 0; i < pl->nfuncs; i++) nrows += pl->funcs[i].nrows;
    cr_expect_eq(nrows, sizeof want_rows / sizeof want_rows[0], "%s: rows", pi->interp);
    for (size_t k = 0; k < sizeof want_rows / sizeof want_rows[0]; k++) {
        const want_row_t *w = &want_rows[k];
        const mp_pyfunc_t *f = NULL;
        for (size_t i = 0; i < pl->nfuncs; i++)
            if (strcmp(pl->funcs[i].function, w->fn) == 0) f = &pl->funcs[i];
        cr_assert_not_null(f);
        const mp_line_row_t *r = mp_pyfunc_row(f, w->line);
        cr_assert_not_null(r, "%s: %s:%d has no row", pi->interp, w->fn, w->line);
        cr_expect_eq(r->occurrences, w->occ, "%s %s:%d", pi->interp, w->fn, w->line);
        cr_expect_eq(r->increment, w->inc, "%s %s:%d", pi->interp, w->fn, w->line);
        cr_expect_eq(r->mem_usage, w->mem, "%s %s:%d", pi->interp, w->fn, w->line);
        cr_expect_eq(r->alloc_bytes, w->alloc, "%s %s:%d", pi->interp, w->fn, w->line);
        cr_expect_eq(r->freed_bytes, w->freed, "%s %s:%d", pi->interp, w->fn, w->line);
    }
    /* unexecuted lines have no row */
    cr_expect_null(mp_pyfunc_row(&pl->funcs[0], 7));
    cr_expect_null(mp_pyfunc_row(&pl->funcs[1], 3));
    mp_model_free(m);
    /* without opts.lines nothing is attributed */
    m = load(&g, false);
    cr_expect_null(m->perline);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(perline, numbers, .timeout = 120) {
    FOR_EACH_PYTHON(pi, check_numbers(&pi));
}

/* ---- JSON -------------------------------------------------------------------------------------
 */

static json_t *
frame_of(json_t *j, json_t *stack, size_t i) {
    char key[24];
    snprintf(key, sizeof key, "%lld", json_integer_value(json_array_get(stack, i)));
    return json_object_get(json_object_get(j, "frames"), key);
}

static void
check_json(const pyinfo_t *pi) {
    mp_dg_t g;
    build(&g, pi, pi->path, "/");
    mp_model_t *m = load(&g, true);
    json_t *j = mp_report_json(m, NULL);
    cr_assert_not_null(j);
    json_t *p = json_object_get(j, "process");
    cr_expect_str_eq(json_string_value(json_object_get(p, "python")), pi->version);
    cr_expect_str_eq(json_string_value(json_object_get(p, "python_allocator")), "default");
    cr_expect(json_is_true(json_object_get(p, "python_stacks")));
    char fmt[16]; /* dumpgen writes this library's format version */
    snprintf(fmt, sizeof fmt, "%d.%d", MP_FORMAT_MAJOR, MP_FORMAT_MINOR);
    cr_expect_str_eq(json_string_value(json_object_get(p, "format")), fmt);

    json_t *lines = json_object_get(j, "lines");
    cr_assert_eq(json_array_size(lines), sizeof want_rows / sizeof want_rows[0]);
    /* rows come function by function in rank order, lines ascending: as want_rows */
    static const char *const content[] = {
        "    a = helper(1000)", "    b = helper(2000)",      "    del a",      "    c = [b] * 10",
        "    return c",         "    buf = bytearray(n)",    "    return buf", "import os",
        "Box().fill()",         "        self.data = work()"};
    for (size_t k = 0; k < json_array_size(lines); k++) {
        json_t *row = json_array_get(lines, k);
        const want_row_t *w = &want_rows[k];
        cr_expect_str_eq(json_string_value(json_object_get(row, "function")), w->fn);
        cr_expect_str_eq(json_string_value(json_object_get(row, "file")), pi->path);
        cr_expect_eq(json_integer_value(json_object_get(row, "line")), w->line);
        cr_expect_eq(json_integer_value(json_object_get(row, "occurrences")), (long long)w->occ);
        cr_expect_eq(json_integer_value(json_object_get(row, "allocations")), (long long)w->occ);
        cr_expect_eq(json_integer_value(json_object_get(row, "increment")), w->inc);
        cr_expect_eq(json_integer_value(json_object_get(row, "mem_usage")), (long long)w->mem);
        cr_expect_eq(json_integer_value(json_object_get(row, "alloc_bytes")), (long long)w->alloc);
        cr_expect_eq(json_integer_value(json_object_get(row, "freed_bytes")), (long long)w->freed);
        cr_expect_str_eq(json_string_value(json_object_get(row, "content")), content[k]);
    }
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(lines, 5), "first_line")), 3);
    json_t *fns = json_object_get(j, "functions");
    cr_assert_eq(json_array_size(fns), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *f = json_array_get(fns, i);
        cr_expect_str_eq(json_string_value(json_object_get(f, "function")), want_fns[i].fn);
        cr_expect_eq(json_integer_value(json_object_get(f, "peak_bytes")),
                     (long long)want_fns[i].peak);
        cr_expect_eq(json_integer_value(json_object_get(f, "last_line")), want_fns[i].last);
    }

    /* leaks (at exit): a 40U, c 16U (S2, reinstated), d 1U (S4), e 2U (S5), f 12U (S6).
     * By innermost Python frame: none 40U; helper:4 S2 + S5 = 18U; helper:5 12U; work:11 1U. */
    json_t *lb = json_object_get(j, "leaks_by_line");
    cr_assert_eq(json_array_size(lb), 4);
    struct {
        const char *fn;
        int line;
        uint64_t bytes, blocks;
    } wl[] = {{NULL, 0, 40 * U, 1},
              {"helper", 4, 18 * U, 2},
              {"helper", 5, 12 * U, 1},
              {"work", 11, 1 * U, 1}};
    for (size_t i = 0; i < 4; i++) {
        json_t *e = json_array_get(lb, i);
        cr_expect_eq(json_integer_value(json_object_get(e, "bytes")), (long long)wl[i].bytes);
        cr_expect_eq(json_integer_value(json_object_get(e, "blocks")), (long long)wl[i].blocks);
        if (!wl[i].fn) {
            cr_expect(json_is_null(json_object_get(e, "file")));
            cr_expect(json_is_null(json_object_get(e, "line")));
            cr_expect(json_is_null(json_object_get(e, "function")));
            continue;
        }
        cr_expect_str_eq(json_string_value(json_object_get(e, "function")), wl[i].fn);
        cr_expect_str_eq(json_string_value(json_object_get(e, "file")), pi->path);
        cr_expect_eq(json_integer_value(json_object_get(e, "line")), wl[i].line);
    }
    /* the peak's live set is the same blocks */
    cr_expect(json_equal(json_object_get(j, "peak_by_line"), lb));

    /* frames: one per (code, line) whatever the offset */
    json_t *stacks = json_object_get(j, "stacks");
    json_t *st2 = json_object_get(stacks, "2"), *st5 = json_object_get(stacks, "5");
    cr_assert_eq(json_array_size(st5), 5);
    cr_expect_eq(json_integer_value(json_array_get(st2, 0)),
                 json_integer_value(json_array_get(st5, 0)));
    cr_expect_eq(json_integer_value(json_array_get(st5, 0)),
                 json_integer_value(json_array_get(st5, 1)));
    cr_expect_eq(json_integer_value(json_array_get(st2, 1)),
                 json_integer_value(json_array_get(st5, 2)), "work:9 at two offsets");
    json_t *f0 = frame_of(j, st2, 0);
    cr_expect_str_eq(json_string_value(json_object_get(f0, "kind")), "python");
    cr_expect_str_eq(json_string_value(json_object_get(f0, "function")), "helper");
    cr_expect_str_eq(json_string_value(json_object_get(f0, "file")), pi->path);
    cr_expect_eq(json_integer_value(json_object_get(f0, "line")), 4);
    cr_expect(json_is_null(json_object_get(f0, "module")));
    json_t *fq = frame_of(j, st2, 2);
    cr_expect_str_eq(json_string_value(json_object_get(fq, "function")), "Box.fill");
    json_t *st6 = json_object_get(stacks, "6");
    json_t *cut = frame_of(j, st6, 2);
    cr_expect_str_eq(json_string_value(json_object_get(cut, "function")), "<truncated>");
    cr_expect(json_is_null(json_object_get(cut, "line")));
    json_t *st4 = json_object_get(stacks, "4");
    cr_expect_str_eq(json_string_value(json_object_get(frame_of(j, st4, 0), "kind")), "native");
    json_decref(j);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(perline, json, .timeout = 120) {
    FOR_EACH_PYTHON(pi, check_json(&pi));
}

/* ---- text -------------------------------------------------------------------------------------
 */

static char *
text_of(const mp_model_t *m, mp_text_opts_t o) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    mp_err_t err;
    cr_assert_eq(mp_emit_text(m, NULL, &o, f, &err), 0);
    fclose(f);
    return text;
}

/* memprof_profiler's template "{0:>6} {1:>12} {2:>12}  {3:>10}   {4:<}" and MiB as
 * "{0:7.3f} MiB", filled with the numbers of want_rows (rendered with Python's str.format). */
static const char HELPER_BLOCK[] =
    "\n\nLine #    Mem usage    Increment  Occurrences   Line Contents\n"
    "=============================================================\n"
    "     3                                         def helper(n):\n"
    "     4    8.000 MiB    3.250 MiB           3       buf = bytearray(n)\n"
    "     5    8.875 MiB    1.500 MiB           1       return buf\n"
    "\n\n";
static const char WORK_BLOCK[] =
    "\n\nLine #    Mem usage    Increment  Occurrences   Line Contents\n"
    "=============================================================\n"
    "     7                                         def work():\n"
    "     8    6.000 MiB    1.000 MiB           1       a = helper(1000)\n"
    "     9    8.000 MiB    2.250 MiB           2       b = helper(2000)\n"
    "    10    7.000 MiB   -1.000 MiB           0       del a\n"
    "    11    7.125 MiB    0.125 MiB           1       c = [b] * 10\n"
    "    12    8.875 MiB    1.500 MiB           1       return c\n"
    "\n\n";

static void
check_text(const pyinfo_t *pi) {
    mp_dg_t g;
    /* the file named relative to the traced process's working directory */
    build(&g, pi, "script.py", pi->dir);
    mp_model_t *m = load(&g, true);
    char *t = text_of(m, (mp_text_opts_t){.lines = true, .functions = 0});
    char want[2048];
    snprintf(want, sizeof want, "Filename: script.py%s", HELPER_BLOCK);
    cr_expect_not_null(strstr(t, want), "%s:\n%s", pi->interp, t);
    snprintf(want, sizeof want, "Filename: script.py%s", WORK_BLOCK);
    const char *work = strstr(t, want), *helper = strstr(t, "def helper(n):");
    cr_expect_not_null(work, "%s:\n%s", pi->interp, t);
    cr_expect(work && helper && helper > work, "ranked: helper's block after work's");
    const char *mod = strstr(t, "     1    2.500 MiB    0.000 MiB           1   import os\n");
    const char *fill = strstr(t, "    15                                             def fill");
    cr_expect(mod && fill && mod > helper && fill > mod, "then <module>, then Box.fill: %s", t);
    cr_expect_not_null(strstr(t, "Per-line report: 4 of 4 Python functions"), "%s", t);
    cr_expect_not_null(strstr(t, "  Occurrences  allocations on the line"), "%s", t);
    cr_expect_not_null(strstr(t, "    16    8.875 MiB    2.375 MiB           4           self.data "
                                 "= work()\n"),
                       "%s", t);
    cr_expect_not_null(strstr(t, "    18    8.875 MiB    2.375 MiB           4   Box().fill()\n"),
                       "%s", t);
    /* the module's block shows every source line: blank ones and nested function bodies too */
    cr_expect_not_null(strstr(t, "\n     6                                         \n"), "%s", t);
    free(t);

    /* one function: the first ranked; the rest counted */
    t = text_of(m, (mp_text_opts_t){.lines = true, .functions = 1});
    cr_expect_not_null(strstr(t, "def work():"));
    cr_expect_null(strstr(t, "def helper(n):"));
    cr_expect_not_null(strstr(t, "... and 3 more functions (--functions 0 shows all)"), "%s", t);
    free(t);
    /* filters: by name (qualname Box.fill, name fill), by file */
    t = text_of(m, (mp_text_opts_t){.lines = true, .function = "fill"});
    cr_expect_not_null(strstr(t, "Per-line report: 1 of 1 Python function,"), "%s", t);
    cr_expect_not_null(strstr(t, "    15                                             def fill"));
    free(t);
    t = text_of(m, (mp_text_opts_t){.lines = true, .function = "Box.fill", .precision = 1});
    cr_expect_not_null(strstr(t, "    16      8.9 MiB      2.4 MiB           4"), "%s", t);
    free(t);
    t = text_of(m, (mp_text_opts_t){.lines = true, .file = "other.py"});
    cr_expect_not_null(strstr(t, "No per-line report: no Python function matches the filters."));
    free(t);

    /* leaks: by innermost Python line first, then stacks with Python frames as file:line name */
    t = text_of(m, (mp_text_opts_t){.leaks = true, .top = 0});
    cr_expect_not_null(strstr(t, "By line (innermost Python frame; what tracemalloc's "
                                 "statistics('lineno') shows):\n"
                                 "  5.00 MiB in 1 block: (no Python frame)\n"
                                 "  2.25 MiB in 2 blocks: script.py:4 helper\n"
                                 "  1.50 MiB in 1 block: script.py:5 helper\n"
                                 "  128.00 KiB in 1 block: script.py:11 work\n"),
                       "%s", t);
    cr_expect_not_null(strstr(t, "  #0 script.py:4 helper\n  #1 script.py:9 work\n"
                                 "  #2 script.py:16 Box.fill\n  #3 script.py:18 <module>\n"),
                       "%s", t);
    cr_expect_not_null(strstr(t, "  #0 script.py:5 helper\n  #1 script.py:12 work\n"
                                 "  #2 <truncated>\n"),
                       "%s", t);
    free(t);
    t = text_of(m, (mp_text_opts_t){.summary = true});
    char py[128];
    snprintf(py, sizeof py, "  python          %s (allocator default; Python stacks recorded)\n",
             pi->version);
    cr_expect_not_null(strstr(t, py), "%s", t);
    free(t);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(perline, text, .timeout = 120) {
    FOR_EACH_PYTHON(pi, check_text(&pi));
}

Test(perline, unreadable_source) {
    /* No interpreter needed: one code object with a hand-made 3.10 table, in "<string>". Only
     * the lines with numbers are shown, and JSON content is null. */
    static const uint8_t table[] = {4, 1, 4, 2}; /* bytes 0..3 line 11, 4..7 line 13 */
    mp_dg_t g;
    mp_dg_init(&g);
    mp_dg_pycode(&g, 9, 10, 2, mp_dg_latin1("<string>"), mp_dg_latin1("f"), mp_dg_latin1(""), table,
                 sizeof table);
    uint64_t f13[] = {MP_FRAME_PYTHON_BIT | 9ull << 32 | 6};
    uint64_t nostart[] = {MP_FRAME_PYTHON_BIT | 9ull << 32 | 0xffffffffu}; /* offset -1 */
    mp_dg_stack(&g, 1, f13, 1);
    mp_dg_stack(&g, 2, nostart, 1);
    mp_dg_events_begin(&g, 0, 1);
    mp_dg_alloc(&g, 1, 0x1000, 1048576, 1, MP_ALLOC_MALLOC);
    mp_dg_alloc(&g, 2, 0x2000, 524288, 2, MP_ALLOC_MALLOC);
    mp_dg_events_end(&g);
    mp_model_t *m = load(&g, true);
    char *t = text_of(m, (mp_text_opts_t){.lines = true});
    cr_expect_not_null(strstr(t, "Filename: <string>\n\n"
                                 "Line #    Mem usage    Increment  Occurrences   Line Contents\n"
                                 "=============================================================\n"
                                 "    10    1.500 MiB    0.500 MiB           1   \n"
                                 "    13    1.000 MiB    1.000 MiB           1   \n\n\n"),
                       "%s", t);
    free(t);
    json_t *j = mp_report_json(m, NULL);
    json_t *row = json_array_get(json_object_get(j, "lines"), 0);
    cr_expect_eq(json_integer_value(json_object_get(row, "line")), 10, "not started: first line");
    cr_expect(json_is_null(json_object_get(row, "content")));
    cr_expect(json_is_null(json_object_get(json_object_get(j, "process"), "python")));
    json_decref(j);
    mp_model_free(m);
    mp_dg_free(&g);
}

Test(perline, native_dump_has_no_python_views) {
    mp_dg_t g;
    mp_dg_init(&g);
    uint64_t nat[] = {0x1234};
    mp_dg_stack(&g, 1, nat, 1);
    mp_dg_events_begin(&g, 0, 1);
    mp_dg_alloc(&g, 1, 0x1000, 100, 1, MP_ALLOC_MALLOC);
    mp_dg_events_end(&g);
    mp_model_t *m = load(&g, true);
    cr_expect_null(m->perline);
    json_t *j = mp_report_json(m, NULL);
    cr_expect_eq(json_array_size(json_object_get(j, "lines")), 0);
    cr_expect_eq(json_array_size(json_object_get(j, "functions")), 0);
    cr_expect_eq(json_array_size(json_object_get(j, "leaks_by_line")), 0);
    json_decref(j);
    char *t = text_of(m, (mp_text_opts_t){.lines = true, .leaks = true});
    cr_expect_not_null(strstr(t, "No per-line report: the dump has no Python code objects"));
    cr_expect_null(strstr(t, "By line"));
    free(t);
    mp_model_free(m);
    mp_dg_free(&g);
}
