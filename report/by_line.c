/* by_line.c - leaks and peak grouped by the innermost Python file:line (see by_line.h). */
#include "by_line.h"

#include <stdlib.h>
#include <string.h>

#include "pysym.h"

typedef struct item_s {
    mp_line_site_t s;
    size_t order; /* index of the site: sites come largest first */
} item_t;

/* Order of places: no Python frame first, then by file and line. */
static int
place(const mp_line_site_t *a, const mp_line_site_t *b) {
    if (!a->file || !b->file) return a->file ? 1 : b->file ? -1 : 0;
    int c = strcmp(a->file, b->file);
    if (c) return c;
    return a->line < b->line ? -1 : a->line > b->line;
}

static int
cmp_place(const void *x, const void *y) {
    const item_t *a = x, *b = y;
    int c = place(&a->s, &b->s);
    if (c) return c;
    return a->order < b->order ? -1 : a->order > b->order;
}

static int
cmp_size(const void *x, const void *y) {
    const mp_line_site_t *a = x, *b = y;
    if (a->bytes != b->bytes) return a->bytes > b->bytes ? -1 : 1;
    if (a->blocks != b->blocks) return a->blocks > b->blocks ? -1 : 1;
    return place(a, b);
}

int
mp_sites_by_line(const mp_model_t *m, const mp_site_t *sites, size_t n, mp_line_site_t **out,
                 size_t *nout) {
    *out = NULL;
    *nout = 0;
    item_t *it = calloc(n ? n : 1, sizeof *it);
    mp_line_site_t *res = calloc(n ? n : 1, sizeof *res);
    if (!it || !res) {
        free(it);
        free(res);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        it[i] = (item_t){{NULL, 0, NULL, sites[i].bytes, sites[i].blocks}, i};
        const uint64_t *frames;
        size_t nf;
        mp_model_stack(m, sites[i].stack, &frames, &nf);
        for (size_t k = 0; k < nf; k++) {
            if (!mp_pyframe_is(frames[k])) continue;
            const mp_pycode_t *c = mp_model_pycode(m, mp_pyframe_code(frames[k]));
            if (!c) continue;
            it[i].s.file = c->filename;
            it[i].s.line = mp_pysym_line(m, c, mp_pyframe_offset(frames[k]));
            it[i].s.function = mp_pysym_name(c);
            break;
        }
    }
    if (n) qsort(it, n, sizeof *it, cmp_place);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (len == 0 || place(&res[len - 1], &it[i].s) != 0) {
            res[len++] = it[i].s; /* the first of a group is its largest site */
            continue;
        }
        res[len - 1].bytes += it[i].s.bytes;
        res[len - 1].blocks += it[i].s.blocks;
    }
    free(it);
    if (len) qsort(res, len, sizeof *res, cmp_size);
    *out = res;
    *nout = len;
    return 0;
}
