/* per_line.c - attribution of heap changes to Python functions and lines (see per_line.h).
 *
 * What this owns: grouping code objects into functions, the per-stack list of (function, line)
 * rows and distinct functions (computed once per stack id, so an event costs one hash lookup plus
 * its stack's depth), the row and function counters, and the ranking.
 * What this is not: the replay (model.c) or line-table decoding (pylines.c, pysym.c).
 */
#include "per_line.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pysym.h"
#include "pylines.h"
#include "u64map.h"
#include "vec.h"

typedef struct row_s {
    size_t func;
    uint64_t steps; /* events attributed, of any kind */
    mp_line_row_t r;
} row_t;

typedef struct fn_s {
    const mp_pycode_t *code; /* the first code object of the function */
    int first_line, table_max;
    uint64_t steps;
    mp_pyfunc_t out;
} fn_t;

typedef struct stk_s {    /* a stack's attribution targets */
    size_t rows, nrows;   /* into priv->srows */
    size_t funcs, nfuncs; /* into priv->sfuncs */
} stk_t;

struct mp_perline_priv_s {
    const mp_model_t *m;
    size_t *code_func; /* m->pycodes index -> fn index */
    fn_t *fns;
    size_t nfns;
    row_t *rows;
    size_t nrows, caprows;
    mp_u64map_t row_idx; /* (fn << 32 | line) -> rows index */
    stk_t *stks;
    size_t nstks, capstks;
    mp_u64map_t stk_idx; /* stack id -> stks index */
    size_t *srows, *sfuncs;
    size_t nsrows, capsrows, nsfuncs, capsfuncs;
    mp_line_row_t *sorted; /* rows with events, by (function, line), after finish */
};

/* ---- functions --------------------------------------------------------------------------------
 */

static int
cmp_code_key(const mp_pycode_t *a, const mp_pycode_t *b) {
    int c = strcmp(a->filename, b->filename);
    if (c) return c;
    if (a->firstlineno != b->firstlineno) return a->firstlineno < b->firstlineno ? -1 : 1;
    return strcmp(mp_pysym_name(a), mp_pysym_name(b));
}

static int
cmp_code_idx(const void *x, const void *y, void *codes) {
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    const mp_pycode_t *c0 = codes;
    int c = cmp_code_key(&c0[a], &c0[b]);
    return c ? c : (a < b ? -1 : a > b);
}

mp_perline_t *
mp_perline_new(const mp_model_t *m) {
    mp_perline_t *pl = calloc(1, sizeof *pl);
    struct mp_perline_priv_s *pv = pl ? calloc(1, sizeof *pv) : NULL;
    size_t n = m->npycodes;
    size_t *order = calloc(n ? n : 1, sizeof *order);
    if (!pl || !pv || !order) goto fail;
    pl->priv = pv;
    pv->m = m;
    pv->code_func = calloc(n ? n : 1, sizeof *pv->code_func);
    pv->fns = calloc(n ? n : 1, sizeof *pv->fns);
    if (!pv->code_func || !pv->fns) goto fail;
    for (size_t i = 0; i < n; i++) order[i] = i;
    qsort_r(order, n, sizeof *order, cmp_code_idx, m->pycodes);
    for (size_t k = 0; k < n; k++) {
        const mp_pycode_t *c = &m->pycodes[order[k]];
        if (k == 0 || cmp_code_key(&m->pycodes[order[k - 1]], c) != 0) {
            fn_t *f = &pv->fns[pv->nfns++];
            f->code = c;
            f->first_line = c->firstlineno;
            f->table_max = c->firstlineno;
        }
        fn_t *f = &pv->fns[pv->nfns - 1];
        int mx = mp_pyline_max(c->table, c->table_len, c->table_format, c->firstlineno);
        if (mx > f->table_max) f->table_max = mx;
        pv->code_func[order[k]] = pv->nfns - 1;
    }
    free(order);
    return pl;
fail:
    free(order);
    if (pl && !pl->priv) free(pv);
    mp_perline_free(pl);
    return NULL;
}

/* ---- stacks -----------------------------------------------------------------------------------
 */

static int
cmp_size(const void *x, const void *y) {
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return a < b ? -1 : a > b;
}

/* The row of (fn, line), created empty if new. Returns its index or SIZE_MAX (out of memory). */
static size_t
row_of(struct mp_perline_priv_s *pv, size_t fn, int line) {
    uint64_t key = (uint64_t)fn << 32 | (uint32_t)line;
    uint64_t *k = mp_u64map_get(&pv->row_idx, key);
    if (k) return (size_t)*k;
    if (!PUSH(pv->rows, pv->nrows, pv->caprows)) return SIZE_MAX;
    if (mp_u64map_put(&pv->row_idx, key, pv->nrows) < 0) return SIZE_MAX;
    row_t *r = &pv->rows[pv->nrows];
    memset(r, 0, sizeof *r);
    r->func = fn;
    r->r.line = line;
    return pv->nrows++;
}

/* Sort a[0..n) and drop duplicates; returns the new length. */
static size_t
uniq(size_t *a, size_t n) {
    if (n < 2) return n;
    qsort(a, n, sizeof *a, cmp_size);
    size_t o = 1;
    for (size_t i = 1; i < n; i++)
        if (a[i] != a[o - 1]) a[o++] = a[i];
    return o;
}

/* The attribution targets of stack id, computed on first use. NULL when out of memory. */
static const stk_t *
stack_of(struct mp_perline_priv_s *pv, uint64_t id) {
    uint64_t *k = mp_u64map_get(&pv->stk_idx, id);
    if (k) return &pv->stks[*k];
    const uint64_t *frames;
    size_t n;
    mp_model_stack(pv->m, id, &frames, &n);
    stk_t s = {pv->nsrows, 0, pv->nsfuncs, 0};
    for (size_t i = 0; i < n; i++) {
        if (!mp_pyframe_is(frames[i])) continue;
        const mp_pycode_t *c = mp_model_pycode(pv->m, mp_pyframe_code(frames[i]));
        if (!c) continue; /* the truncation marker, or a code without its record */
        size_t fn = pv->code_func[c - pv->m->pycodes];
        /* DESIGN.md: an event belongs to the line of the innermost frame of each function on
         * its stack (frames are innermost first), so recursion counts it once per function. */
        int seen = 0;
        for (size_t j = s.funcs; j < pv->nsfuncs && !seen; j++) seen = pv->sfuncs[j] == fn;
        if (seen) continue;
        size_t row = row_of(pv, fn, mp_pysym_line(pv->m, c, mp_pyframe_offset(frames[i])));
        if (row == SIZE_MAX || !PUSH(pv->srows, pv->nsrows, pv->capsrows) ||
            !PUSH(pv->sfuncs, pv->nsfuncs, pv->capsfuncs))
            return NULL;
        pv->srows[pv->nsrows++] = row;
        pv->sfuncs[pv->nsfuncs++] = fn;
    }
    s.nrows = uniq(pv->srows + s.rows, pv->nsrows - s.rows);
    pv->nsrows = s.rows + s.nrows;
    s.nfuncs = uniq(pv->sfuncs + s.funcs, pv->nsfuncs - s.funcs);
    pv->nsfuncs = s.funcs + s.nfuncs;
    if (!PUSH(pv->stks, pv->nstks, pv->capstks)) return NULL;
    if (mp_u64map_put(&pv->stk_idx, id, pv->nstks) < 0) return NULL;
    pv->stks[pv->nstks] = s;
    return &pv->stks[pv->nstks++];
}

/* ---- attribution ------------------------------------------------------------------------------
 */

int
mp_perline_step(mp_perline_t *pl, const mp_step_t *st) {
    struct mp_perline_priv_s *pv = pl->priv;
    const stk_t *s = stack_of(pv, st->stack);
    if (!s) return -1;
    int64_t size = st->size > INT64_MAX ? INT64_MAX : (int64_t)st->size;
    for (size_t i = 0; i < s->nrows; i++) {
        row_t *row = &pv->rows[pv->srows[s->rows + i]];
        mp_line_row_t *r = &row->r;
        row->steps++;
        if (st->heap > r->mem_usage) r->mem_usage = st->heap;
        switch (st->kind) {
            case MP_STEP_ALLOC:
                r->occurrences++;
                r->alloc_bytes += st->size;
                r->increment += size;
                break;
            case MP_STEP_FREE:
                r->freed_bytes += st->size;
                r->increment -= size;
                break;
            case MP_STEP_UNFREE:
                r->freed_bytes -= st->size;
                r->increment += size;
                break;
        }
    }
    for (size_t i = 0; i < s->nfuncs; i++) {
        fn_t *f = &pv->fns[pv->sfuncs[s->funcs + i]];
        f->steps++;
        switch (st->kind) {
            case MP_STEP_ALLOC:
                f->out.allocations++;
                f->out.alloc_bytes += st->size;
                break;
            case MP_STEP_FREE:
                f->out.freed_bytes += st->size;
                break;
            case MP_STEP_UNFREE:
                f->out.freed_bytes -= st->size;
                break;
        }
    }
    return 0;
}

/* ---- ranking ----------------------------------------------------------------------------------
 */

static int
cmp_row(const void *x, const void *y) {
    const row_t *a = x, *b = y;
    if (a->func != b->func) return a->func < b->func ? -1 : 1;
    return a->r.line < b->r.line ? -1 : a->r.line > b->r.line;
}

static int
cmp_func(const void *x, const void *y) {
    const mp_pyfunc_t *a = x, *b = y;
    if (a->peak_bytes != b->peak_bytes) return a->peak_bytes > b->peak_bytes ? -1 : 1;
    if (a->alloc_bytes != b->alloc_bytes) return a->alloc_bytes > b->alloc_bytes ? -1 : 1;
    int c = strcmp(a->file, b->file);
    if (c) return c;
    if (a->first_line != b->first_line) return a->first_line < b->first_line ? -1 : 1;
    return strcmp(a->function, b->function);
}

int
mp_perline_finish(mp_perline_t *pl, const mp_model_t *m) {
    struct mp_perline_priv_s *pv = pl->priv;
    for (size_t i = 0; i < m->npeak; i++) {
        const stk_t *s = stack_of(pv, m->peak[i].stack);
        if (!s) return -1;
        for (size_t k = 0; k < s->nfuncs; k++)
            pv->fns[pv->sfuncs[s->funcs + k]].out.peak_bytes += m->peak[i].bytes;
    }
    /* Rows with events, grouped by function and in line order. */
    if (pv->nrows) qsort(pv->rows, pv->nrows, sizeof *pv->rows, cmp_row);
    mp_u64map_free(&pv->row_idx); /* indices are stale now; nothing is attributed any more */
    pv->sorted = calloc(pv->nrows ? pv->nrows : 1, sizeof *pv->sorted);
    pl->funcs = calloc(pv->nfns ? pv->nfns : 1, sizeof *pl->funcs);
    if (!pv->sorted || !pl->funcs) return -1;
    size_t nsorted = 0, i = 0;
    for (size_t fn = 0; fn < pv->nfns; fn++) {
        fn_t *f = &pv->fns[fn];
        mp_pyfunc_t *o = &f->out;
        o->file = f->code->filename;
        o->function = mp_pysym_name(f->code);
        o->name = f->code->name;
        o->first_line = f->first_line;
        o->last_line = f->table_max;
        o->rows = pv->sorted + nsorted;
        for (; i < pv->nrows && pv->rows[i].func == fn; i++) {
            if (!pv->rows[i].steps) continue;
            const mp_line_row_t *r = &pv->rows[i].r;
            if (r->line < o->first_line) o->first_line = r->line;
            if (r->line > o->last_line) o->last_line = r->line;
            pv->sorted[nsorted++] = *r;
            o->nrows++;
        }
        if (f->steps) pl->funcs[pl->nfuncs++] = *o;
    }
    if (pl->nfuncs) qsort(pl->funcs, pl->nfuncs, sizeof *pl->funcs, cmp_func);
    return 0;
}

void
mp_perline_free(mp_perline_t *pl) {
    if (!pl) return;
    struct mp_perline_priv_s *pv = pl->priv;
    if (pv) {
        free(pv->code_func);
        free(pv->fns);
        free(pv->rows);
        mp_u64map_free(&pv->row_idx);
        free(pv->stks);
        mp_u64map_free(&pv->stk_idx);
        free(pv->srows);
        free(pv->sfuncs);
        free(pv->sorted);
        free(pv);
    }
    free(pl->funcs);
    free(pl);
}

const mp_line_row_t *
mp_pyfunc_row(const mp_pyfunc_t *f, int line) {
    size_t lo = 0, hi = f->nrows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->rows[mid].line < line)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < f->nrows && f->rows[lo].line == line ? &f->rows[lo] : NULL;
}
