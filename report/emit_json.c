/* emit_json.c - the JSON report (docs/JSON.md is its schema; DESIGN.md "JSON report").
 *
 * What this owns: turning a replayed model into one jansson document. Only the stacks that the
 * leaks and peak lists refer to are emitted, each frame once under a small numeric id, so that
 * a dump with a huge stack table still gives a small report. Every string is made valid UTF-8
 * (paths and symbols are bytes on Linux), every integer is clamped to what JSON readers take.
 * Python frames are one frame per (code id, line), whatever their instruction offsets. The
 * per-line rows and the by-line groups come ready from per_line.c and by_line.c.
 * What this is not: computing numbers, or any I/O other than the final dump.
 */
#include "emit.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "by_line.h"
#include "per_line.h"
#include "pysym.h"
#include "pylines.h"
#include "source.h"

/* ---- value helpers ----------------------------------------------------------------------------
 */

static json_t *
jint(uint64_t v) {
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* Seconds rounded to microseconds, so that the output reads 0.832451, not 0.83245100000000002. */
static json_t *
jsecs(double s) {
    if (s >= 0 && s < 1e12) s = (double)(long long)(s * 1e6 + 0.5) / 1e6;
    return json_real(s);
}

/* A JSON string from arbitrary bytes: invalid UTF-8 bytes become '?'. NULL gives null. */
static json_t *
jstr(const char *s) {
    if (!s) return json_null();
    size_t n = strlen(s);
    json_t *j = json_stringn(s, n);
    if (j) return j;
    char *c = malloc(n + 1);
    if (!c) return NULL;
    size_t i = 0, o = 0;
    while (i < n) {
        unsigned char b = (unsigned char)s[i];
        size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] >> 6) == 2;
        if (ok && len > 1) {
            json_t *t = json_stringn(s + i, len); /* rejects overlongs and surrogates */
            ok = t != NULL;
            json_decref(t);
        }
        if (!ok) {
            c[o++] = '?';
            i++;
            continue;
        }
        memcpy(c + o, s + i, len);
        o += len;
        i += len;
    }
    j = json_stringn(c, o);
    free(c);
    return j;
}

static json_t *
jhex(uint64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)v);
    return json_string(buf);
}

/* "2024-05-01T12:34:56.789Z", or null when the time cannot be represented. */
static json_t *
jiso(uint64_t ns) {
    time_t secs = (time_t)(ns / 1000000000ull);
    struct tm tm;
    char buf[64];
    if (!gmtime_r(&secs, &tm)) return json_null();
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n == 0) return json_null();
    snprintf(buf + n, sizeof buf - n, ".%03uZ", (unsigned)(ns / 1000000ull % 1000));
    return json_string(buf);
}

/* Build-time failures are out of memory: a NULL anywhere poisons the document. */
typedef struct doc_s {
    bool oom;
} doc_t;

static json_t *
chk(doc_t *d, json_t *v) {
    if (!v) d->oom = true;
    return v;
}

/* json_object_set_new and json_array_append_new take v even when they fail. */
static void
set(doc_t *d, json_t *obj, const char *key, json_t *v) {
    if (!obj) json_decref(v);
    if (!v || !obj || json_object_set_new(obj, key, v) < 0) d->oom = true;
}

static void
append(doc_t *d, json_t *arr, json_t *v) {
    if (!arr) json_decref(v);
    if (!v || !arr || json_array_append_new(arr, v) < 0) d->oom = true;
}

/* ---- sections ------------------------------------------------------------------------------- */

static json_t *
process_json(doc_t *d, const mp_model_t *m) {
    json_t *p = chk(d, json_object());
    set(d, p, "pid", jint(m->header.pid));
    set(d, p, "ppid", jint(m->header.ppid));
    json_t *argv = chk(d, json_array());
    for (size_t i = 0; i < m->argc; i++) append(d, argv, jstr(m->argv[i]));
    set(d, p, "argv", argv);
    set(d, p, "exe", jstr(m->exe));
    set(d, p, "cwd", jstr(m->cwd));
    char ver[32];
    const mp_python_t *py = &m->python;
    set(d, p, "python",
        py->present ? json_string(mp_pyversion_format(py->hexversion, ver, sizeof ver))
                    : json_null());
    set(d, p, "python_allocator", py->present ? jstr(py->allocator) : json_null());
    set(d, p, "python_stacks",
        py->present ? json_boolean(py->hooks & MP_PYHOOK_STACKS) : json_null());
    set(d, p, "native_stacks", json_boolean(m->header.flags & MP_FMT_FLAG_NATIVE));
    set(d, p, "forked", json_boolean(m->header.flags & MP_FMT_FLAG_FORKED));
    set(d, p, "start", jiso(m->header.start_real_ns));
    set(d, p, "start_ns", jint(m->header.start_real_ns));
    set(d, p, "duration", jsecs(m->duration));
    set(d, p, "incomplete", json_boolean(m->incomplete));
    set(d, p, "incomplete_reason", m->incomplete ? jstr(m->incomplete_why) : json_null());
    set(d, p, "lost_events", jint(m->summary.lost_events));
    char fmt[32];
    snprintf(fmt, sizeof fmt, "%u.%u", m->header.major, m->header.minor);
    set(d, p, "format", json_string(fmt));
    return p;
}

static json_t *
summary_json(doc_t *d, const mp_model_t *m) {
    const mp_summary_t *s = &m->summary;
    json_t *o = chk(d, json_object());
    set(d, o, "total_allocations", jint(s->total_allocations));
    set(d, o, "total_frees", jint(s->total_frees));
    set(d, o, "total_bytes", jint(s->total_bytes));
    set(d, o, "peak_bytes", jint(s->peak_bytes));
    set(d, o, "peak_blocks", jint(s->peak_blocks));
    set(d, o, "peak_time", jsecs(s->peak_time));
    set(d, o, "leaked_bytes", jint(s->leaked_bytes));
    set(d, o, "leaked_blocks", jint(s->leaked_blocks));
    set(d, o, "leaks_at", json_string(mp_at_name(s->leaks_at)));
    set(d, o, "rss_peak", jint(s->rss_peak));
    set(d, o, "unknown_frees", jint(s->unknown_frees));
    set(d, o, "overlapping_allocs", jint(s->overlapping_allocs));
    set(d, o, "stacks_dropped", jint(s->stacks_dropped));
    return o;
}

/* Frame ids: one per distinct native frame value and per Python (code, line), in order of first
 * appearance. */
typedef struct frames_s {
    uint64_t n;              /* ids handed out */
    json_t *by_addr;         /* "0x<hex>" or "py:<code>:<line>" -> id: a hash, so that big
                              * reports stay linear */
    json_t *frames, *stacks; /* the two output objects */
} frames_t;

static uint64_t
frame_id(doc_t *d, frames_t *f, const mp_model_t *m, mp_sym_t *sym, uint64_t addr) {
    char hex[24], key[48];
    snprintf(hex, sizeof hex, "0x%llx", (unsigned long long)addr);
    mp_frame_info_t fi = {"native", hex, NULL, 0, NULL};
    snprintf(key, sizeof key, "%s", hex);
    if (mp_pyframe_is(addr)) { /* one frame per (code, line) */
        mp_pysym_info(m, addr, &fi);
        snprintf(key, sizeof key, "py:%u:%d", (unsigned)mp_pyframe_code(addr), fi.line);
    }
    json_t *known = f->by_addr ? json_object_get(f->by_addr, key) : NULL;
    if (known) return (uint64_t)json_integer_value(known);
    uint64_t id = ++f->n;
    set(d, f->by_addr, key, jint(id));
    if (sym && !mp_pyframe_is(addr)) mp_sym_lookup(sym, addr, &fi);
    json_t *o = chk(d, json_object());
    set(d, o, "kind", json_string(fi.kind));
    set(d, o, "function", jstr(fi.function));
    set(d, o, "file", jstr(fi.file));
    set(d, o, "line", fi.line > 0 ? json_integer(fi.line) : json_null());
    set(d, o, "module", jstr(fi.module));
    set(d, o, "address", jhex(addr));
    char idkey[24];
    snprintf(idkey, sizeof idkey, "%llu", (unsigned long long)id);
    set(d, f->frames, idkey, o);
    return id;
}

static void
add_stack(doc_t *d, frames_t *f, const mp_model_t *m, mp_sym_t *sym, uint64_t stack) {
    char key[24];
    snprintf(key, sizeof key, "%llu", (unsigned long long)stack);
    if (!f->stacks || json_object_get(f->stacks, key)) return;
    json_t *ids = chk(d, json_array());
    const uint64_t *frames;
    size_t n;
    mp_model_stack(m, stack, &frames, &n);
    for (size_t i = 0; i < n && !d->oom; i++)
        append(d, ids, jint(frame_id(d, f, m, sym, frames[i])));
    set(d, f->stacks, key, ids);
}

static json_t *
sites_json(doc_t *d, frames_t *f, const mp_model_t *m, mp_sym_t *sym, const mp_site_t *sites,
           size_t n) {
    json_t *a = chk(d, json_array());
    for (size_t i = 0; i < n && !d->oom; i++) {
        json_t *o = chk(d, json_object());
        set(d, o, "bytes", jint(sites[i].bytes));
        set(d, o, "blocks", jint(sites[i].blocks));
        set(d, o, "stack", jint(sites[i].stack));
        append(d, a, o);
        add_stack(d, f, m, sym, sites[i].stack);
    }
    return a;
}

/* leaks_by_line / peak_by_line: empty for a dump without Python code objects. */
static json_t *
by_line_json(doc_t *d, const mp_model_t *m, const mp_site_t *sites, size_t n) {
    json_t *a = chk(d, json_array());
    if (!m->npycodes) return a;
    mp_line_site_t *g = NULL;
    size_t ng = 0;
    if (mp_sites_by_line(m, sites, n, &g, &ng) < 0) {
        d->oom = true;
        return a;
    }
    for (size_t i = 0; i < ng && !d->oom; i++) {
        json_t *o = chk(d, json_object());
        set(d, o, "file", jstr(g[i].file));
        set(d, o, "line", g[i].file ? json_integer(g[i].line) : json_null());
        set(d, o, "function", jstr(g[i].function));
        set(d, o, "bytes", jint(g[i].bytes));
        set(d, o, "blocks", jint(g[i].blocks));
        append(d, a, o);
    }
    free(g);
    return a;
}

static json_t *
jsigned(int64_t v) {
    return json_integer((json_int_t)v);
}

/* functions (ranked) and lines (the rows with events, function by function). */
static void
per_line_json(doc_t *d, const mp_model_t *m, json_t *root) {
    json_t *funcs = chk(d, json_array()), *lines = chk(d, json_array());
    const mp_perline_t *pl = m->perline;
    mp_source_t *src = pl ? mp_source_new(m->cwd) : NULL;
    if (pl && !src) d->oom = true;
    for (size_t i = 0; pl && src && i < pl->nfuncs && !d->oom; i++) {
        const mp_pyfunc_t *f = &pl->funcs[i];
        json_t *o = chk(d, json_object());
        set(d, o, "file", jstr(f->file));
        set(d, o, "function", jstr(f->function));
        set(d, o, "name", jstr(f->name));
        set(d, o, "first_line", json_integer(f->first_line));
        set(d, o, "last_line", json_integer(f->last_line));
        set(d, o, "peak_bytes", jint(f->peak_bytes));
        set(d, o, "alloc_bytes", jint(f->alloc_bytes));
        set(d, o, "freed_bytes", jint(f->freed_bytes));
        set(d, o, "allocations", jint(f->allocations));
        append(d, funcs, o);
        for (size_t k = 0; k < f->nrows && !d->oom; k++) {
            const mp_line_row_t *r = &f->rows[k];
            json_t *row = chk(d, json_object());
            size_t len = 0;
            const char *text = mp_source_line(src, f->file, r->line, &len);
            char *content = text ? strndup(text, len) : NULL;
            if (text && !content) d->oom = true;
            set(d, row, "file", jstr(f->file));
            set(d, row, "function", jstr(f->function));
            set(d, row, "first_line", json_integer(f->first_line));
            set(d, row, "line", json_integer(r->line));
            set(d, row, "content", jstr(content));
            free(content);
            set(d, row, "occurrences", jint(r->occurrences));
            set(d, row, "allocations", jint(r->occurrences));
            set(d, row, "increment", jsigned(r->increment));
            set(d, row, "mem_usage", jint(r->mem_usage));
            set(d, row, "alloc_bytes", jint(r->alloc_bytes));
            set(d, row, "freed_bytes", jint(r->freed_bytes));
            append(d, lines, row);
        }
    }
    mp_source_free(src);
    set(d, root, "functions", funcs);
    set(d, root, "lines", lines);
}

json_t *
mp_report_json(const mp_model_t *m, mp_sym_t *sym) {
    doc_t d = {false};
    frames_t f = {0};
    json_t *root = chk(&d, json_object());
    f.by_addr = chk(&d, json_object());
    f.frames = chk(&d, json_object());
    f.stacks = chk(&d, json_object());
    set(&d, root, "format", json_string("memprof-report"));
    set(&d, root, "version", json_integer(1));
    set(&d, root, "process", process_json(&d, m));
    set(&d, root, "summary", summary_json(&d, m));
    set(&d, root, "leaks", sites_json(&d, &f, m, sym, m->leaks, m->nleaks));
    set(&d, root, "peak", sites_json(&d, &f, m, sym, m->peak, m->npeak));
    set(&d, root, "leaks_by_line", by_line_json(&d, m, m->leaks, m->nleaks));
    set(&d, root, "peak_by_line", by_line_json(&d, m, m->peak, m->npeak));
    set(&d, root, "frames", f.frames);
    set(&d, root, "stacks", f.stacks);
    per_line_json(&d, m, root);
    json_t *tl = chk(&d, json_array());
    for (size_t i = 0; i < m->ntimeline && !d.oom; i++) {
        json_t *pt = chk(&d, json_array());
        append(&d, pt, jsecs(m->timeline[i].time_s));
        append(&d, pt, jint(m->timeline[i].heap));
        append(&d, pt, jint(m->timeline[i].rss));
        append(&d, tl, pt);
    }
    set(&d, root, "timeline", tl);
    json_t *th = chk(&d, json_array());
    for (size_t i = 0; i < m->nthreads && !d.oom; i++) {
        json_t *o = chk(&d, json_object());
        set(&d, o, "stream", jint(m->threads[i].stream));
        set(&d, o, "tid", jint(m->threads[i].tid));
        append(&d, th, o);
    }
    set(&d, root, "threads", th);
    json_decref(f.by_addr);
    if (d.oom) {
        json_decref(root);
        return NULL;
    }
    return root;
}

int
mp_emit_json(const mp_model_t *m, mp_sym_t *sym, FILE *out, mp_err_t *err) {
    json_t *root = mp_report_json(m, sym);
    if (!root) return mp_err_set(err, MP_ENOMEM, 0, NULL, "building the JSON report");
    int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    json_decref(root);
    if (rc < 0 || fputc('\n', out) == EOF || fflush(out) == EOF || ferror(out))
        return mp_err_set(err, MP_EIO, 0, NULL, "writing the JSON report failed");
    return 0;
}
