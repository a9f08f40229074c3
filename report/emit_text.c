/* emit_text.c - `memprof report` as readable text: summary, per-line table, leaks, peak.
 *
 * What this owns: the wording and layout of the text views, including the per-line table in
 * memory_profiler's exact layout (its show_results template: "{:>6} {:>12} {:>12}  {:>10}   {}",
 * MiB with `precision` decimals). Sizes go through sizes.c; strings from the dump and source
 * lines are printed with control characters replaced, so a hostile dump cannot drive the
 * terminal. What this is not: the numbers (model.c, per_line.c, by_line.c) or the JSON schema.
 */
#include "emit.h"

#include <stdlib.h>
#include <string.h>

#include "by_line.h"
#include "per_line.h"
#include "pysym.h"
#include "pylines.h"
#include "sizes.h"
#include "source.h"

/* Print s with control characters shown as '?'. */
static void
put_clean(FILE *out, const char *s) {
    for (; s && *s; s++) fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
}

/* The same for n bytes of a source line, keeping tabs. */
static void
put_clean_n(FILE *out, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        fputc((c < 0x20 && c != '\t') || c == 0x7f ? '?' : c, out);
    }
}

static const char *
plural(uint64_t n, const char *one, const char *many) {
    return n == 1 ? one : many;
}

/* Where leaks were measured, in words. */
static const char *
at_words(mp_at_t at) {
    switch (at) {
        case mp_at_main_end:
            return "the end of the main code";
        case mp_at_exit:
            return "exit";
        default:
            return "the end of the data";
    }
}

static void
summary(const mp_model_t *m, FILE *out) {
    const mp_summary_t *s = &m->summary;
    char a[32], b[32];
    fprintf(out, "memprof report: ");
    put_clean(out, m->exe ? m->exe : "(unknown program)");
    fprintf(out, " (pid %llu)\n", (unsigned long long)m->header.pid);
    if (m->argc) {
        fprintf(out, "  %-16s", "command");
        for (size_t i = 0; i < m->argc; i++) {
            if (i) fputc(' ', out);
            put_clean(out, m->argv[i]);
        }
        fputc('\n', out);
    }
    fprintf(out, "  %-16s%.2f s\n", "duration", m->duration);
    fprintf(out, "  %-16s%llu (%s in total)\n", "allocations",
            (unsigned long long)s->total_allocations, mp_size_format(s->total_bytes, a, sizeof a));
    fprintf(out, "  %-16s%llu\n", "frees", (unsigned long long)s->total_frees);
    fprintf(out, "  %-16s%s in %llu %s at %.2f s\n", "peak heap",
            mp_size_format(s->peak_bytes, a, sizeof a), (unsigned long long)s->peak_blocks,
            plural(s->peak_blocks, "block", "blocks"), s->peak_time);
    fprintf(out, "  %-16s%s in %llu %s (at %s)\n", "leaked",
            mp_size_format(s->leaked_bytes, b, sizeof b), (unsigned long long)s->leaked_blocks,
            plural(s->leaked_blocks, "block", "blocks"), at_words(s->leaks_at));
    fprintf(out, "  %-16s%s\n", "RSS peak", mp_size_format(s->rss_peak, a, sizeof a));
    if (m->python.present) {
        char v[32];
        fprintf(out, "  %-16s%s (allocator ", "python",
                mp_pyversion_format(m->python.hexversion, v, sizeof v));
        put_clean(out, m->python.allocator);
        fprintf(out, "; Python stacks %s)\n",
                m->python.hooks & MP_PYHOOK_STACKS ? "recorded" : "not recorded");
    }
    if (s->unknown_frees)
        fprintf(out, "  %-16s%llu (blocks allocated before tracking began; ignored)\n",
                "unknown frees", (unsigned long long)s->unknown_frees);
    if (s->overlapping_allocs)
        fprintf(out, "  %-16s%llu (allocations at an address still live)\n", "overlaps",
                (unsigned long long)s->overlapping_allocs);
    if (s->stacks_dropped)
        fprintf(out, "  %-16s%llu events have no stack (the stack table was full)\n",
                "stacks dropped", (unsigned long long)s->stacks_dropped);
    if (s->lost_events)
        fprintf(out, "  %-16s%llu events were not recorded: the numbers are incomplete\n",
                "lost events", (unsigned long long)s->lost_events);
    if (m->incomplete) {
        fprintf(out, "  %-16s", "incomplete");
        put_clean(out, m->incomplete_why);
        fputc('\n', out);
    }
}

static void
frame_line(const mp_model_t *m, mp_sym_t *sym, size_t i, uint64_t addr, FILE *out) {
    char hex[24];
    snprintf(hex, sizeof hex, "0x%llx", (unsigned long long)addr);
    mp_frame_info_t fi = {"native", hex, NULL, 0, NULL};
    fprintf(out, "  #%zu ", i);
    if (mp_pyframe_is(addr)) { /* file:line function, as Python tracebacks name a frame */
        mp_pysym_info(m, addr, &fi);
        if (fi.file) {
            put_clean(out, fi.file);
            fprintf(out, ":%d ", fi.line);
        }
        put_clean(out, fi.function);
        fputc('\n', out);
        return;
    }
    if (sym) mp_sym_lookup(sym, addr, &fi);
    put_clean(out, fi.function);
    if (fi.file) {
        fputs("  at ", out);
        put_clean(out, fi.file);
        if (fi.line > 0) fprintf(out, ":%d", fi.line);
    }
    if (fi.module) {
        fputs("  (", out);
        put_clean(out, fi.module);
        fputc(')', out);
    }
    fputc('\n', out);
}

static void
sites(const mp_model_t *m, mp_sym_t *sym, const mp_site_t *s, size_t n, size_t top, FILE *out) {
    size_t shown = top && top < n ? top : n;
    for (size_t i = 0; i < shown; i++) {
        char a[32];
        fprintf(out, "\n%s in %llu %s allocated by:\n", mp_size_format(s[i].bytes, a, sizeof a),
                (unsigned long long)s[i].blocks, plural(s[i].blocks, "block", "blocks"));
        const uint64_t *frames;
        size_t nf;
        mp_model_stack(m, s[i].stack, &frames, &nf);
        if (nf == 0)
            fprintf(out, "  (no stack recorded%s)\n",
                    m->header.flags & MP_FMT_FLAG_NATIVE
                        ? ""
                        : "; `memprof run --native` records native stacks");
        for (size_t k = 0; k < nf; k++) frame_line(m, sym, k, frames[k], out);
    }
    if (shown < n)
        fprintf(out, "\n... and %zu more %s (--top 0 shows all)\n", n - shown,
                plural(n - shown, "stack", "stacks"));
}

/* The sites grouped by the innermost Python frame's file:line (tracemalloc's 'lineno'). */
static void
by_line(const mp_model_t *m, const mp_site_t *s, size_t n, size_t top, FILE *out) {
    if (!m->npycodes) return;
    mp_line_site_t *g = NULL;
    size_t ng = 0;
    if (mp_sites_by_line(m, s, n, &g, &ng) < 0) {
        fprintf(out, "\n(by line: out of memory)\n");
        return;
    }
    size_t shown = top && top < ng ? top : ng;
    fprintf(out, "\nBy line (innermost Python frame; what tracemalloc's statistics('lineno') "
                 "shows):\n");
    for (size_t i = 0; i < shown; i++) {
        char a[32];
        fprintf(out, "  %s in %llu %s: ", mp_size_format(g[i].bytes, a, sizeof a),
                (unsigned long long)g[i].blocks, plural(g[i].blocks, "block", "blocks"));
        if (g[i].file) {
            put_clean(out, g[i].file);
            fprintf(out, ":%d ", g[i].line);
            put_clean(out, g[i].function);
        } else {
            fputs("(no Python frame)", out);
        }
        fputc('\n', out);
    }
    if (shown < ng)
        fprintf(out, "  ... and %zu more %s (--top 0 shows all)\n", ng - shown,
                plural(ng - shown, "line", "lines"));
    free(g);
}

static void
leaks(const mp_model_t *m, mp_sym_t *sym, size_t top, FILE *out) {
    const mp_summary_t *s = &m->summary;
    char a[32];
    if (m->nleaks == 0) {
        fprintf(out, "No leaks: nothing tracked was live at %s.\n", at_words(s->leaks_at));
        return;
    }
    fprintf(out, "Leaked at %s: %s in %llu %s from %zu %s\n", at_words(s->leaks_at),
            mp_size_format(s->leaked_bytes, a, sizeof a), (unsigned long long)s->leaked_blocks,
            plural(s->leaked_blocks, "block", "blocks"), m->nleaks,
            plural(m->nleaks, "stack", "stacks"));
    by_line(m, m->leaks, m->nleaks, top, out);
    sites(m, sym, m->leaks, m->nleaks, top, out);
}

static void
peak(const mp_model_t *m, mp_sym_t *sym, size_t top, FILE *out) {
    const mp_summary_t *s = &m->summary;
    char a[32];
    if (m->npeak == 0) {
        fprintf(out, "Peak heap: nothing tracked was ever live.\n");
        return;
    }
    fprintf(out, "Peak heap at %.2f s: %s in %llu %s from %zu %s\n", s->peak_time,
            mp_size_format(s->peak_bytes, a, sizeof a), (unsigned long long)s->peak_blocks,
            plural(s->peak_blocks, "block", "blocks"), m->npeak,
            plural(m->npeak, "stack", "stacks"));
    by_line(m, m->peak, m->npeak, top, out);
    sites(m, sym, m->peak, m->npeak, top, out);
}

/* ---- the per-line table (memory_profiler's show_results layout) ------------------------------ */

/* memory_profiler's '{0:<p+4>.<p>f} MiB'. */
static char *
mib(char *buf, size_t size, double bytes, int prec) {
    snprintf(buf, size, "%*.*f MiB", prec + 4, prec, bytes / 1048576.0);
    return buf;
}

static bool
selected(const mp_pyfunc_t *f, const mp_text_opts_t *o) {
    /* The import machinery (frozen importlib) holds, inclusively, everything every import
     * allocated; it is never the user's code, so it is left out unless asked for by a filter. */
    if (!o->file && !o->function && strncmp(f->file, "<frozen ", 8) == 0) return false;
    if (o->file && !strstr(f->file, o->file)) return false;
    if (o->function && strcmp(f->function, o->function) != 0 && strcmp(f->name, o->function) != 0)
        return false;
    return true;
}

/* Is line (without numbers) in the body of another function nested in f (a def inside f's
 * lines)? Those lines are that function's, not f's: memory_profiler does not show them either. */
static bool
nested_body(const mp_perline_t *pl, const mp_pyfunc_t *f, int64_t line) {
    for (size_t i = 0; i < pl->nfuncs; i++) {
        const mp_pyfunc_t *g = &pl->funcs[i];
        if (g != f && g->first_line > f->first_line && g->last_line <= f->last_line &&
            line > g->first_line && line <= g->last_line && strcmp(g->file, f->file) == 0)
            return true;
    }
    return false;
}

static void
function_block(const mp_perline_t *pl, const mp_pyfunc_t *f, mp_source_t *src, int prec,
               FILE *out) {
    static const char header[] = "Line #    Mem usage    Increment  Occurrences   Line Contents";
    fputs("Filename: ", out);
    put_clean(out, f->file);
    fprintf(out, "\n\n%s\n", header);
    for (size_t i = 0; i < sizeof header - 1; i++) fputc('=', out);
    fputc('\n', out);
    size_t ri = 0;
    for (int64_t line = f->first_line; line <= f->last_line;) {
        while (ri < f->nrows && f->rows[ri].line < line) ri++;
        const mp_line_row_t *r = ri < f->nrows && f->rows[ri].line == line ? &f->rows[ri] : NULL;
        size_t len = 0;
        const char *text = mp_source_line(src, f->file, (int)line, &len);
        if (!r && !text) {
            /* Not in the file (or no file): skip to the next line that has numbers. */
            if (ri >= f->nrows) break;
            line = f->rows[ri].line;
            continue;
        }
        if (!r && nested_body(pl, f, line)) {
            line++;
            continue;
        }
        char mem[48] = "", inc[48] = "", occ[24] = "";
        if (r) {
            mib(mem, sizeof mem, (double)r->mem_usage, prec);
            mib(inc, sizeof inc, (double)r->increment, prec);
            snprintf(occ, sizeof occ, "%llu", (unsigned long long)r->occurrences);
        }
        fprintf(out, "%6lld %12s %12s  %10s   ", (long long)line, mem, inc, occ);
        if (text) put_clean_n(out, text, len);
        fputc('\n', out);
        line++;
    }
    fputs("\n\n", out);
}

static void
lines_view(const mp_model_t *m, const mp_text_opts_t *o, FILE *out) {
    const mp_perline_t *pl = m->perline;
    if (!pl) {
        fprintf(out, "No per-line report: the dump has no Python code objects (not a Python "
                     "program, or Python stacks were not recorded).\n");
        return;
    }
    size_t match = 0;
    for (size_t i = 0; i < pl->nfuncs; i++) match += selected(&pl->funcs[i], o);
    if (match == 0) {
        fprintf(out, "No per-line report: %s.\n",
                pl->nfuncs ? "no Python function matches the filters"
                           : "no allocation or free had a Python stack");
        return;
    }
    size_t shown = o->functions && o->functions < match ? o->functions : match;
    int prec = o->precision > 0 ? o->precision : 3;
    fprintf(out,
            "Per-line report: %zu of %zu Python %s, ranked by the heap held at the peak\n"
            "(memory_profiler's layout; where a column means something else, it says so here)\n"
            "  Mem usage    tracked heap (not RSS) right after an allocation or free on the line, "
            "the largest\n"
            "  Increment    bytes allocated minus bytes freed on the line, callees included\n"
            "  Occurrences  allocations on the line, callees included (not executions)\n"
            "%s\n",
            shown, match, plural(match, "function", "functions"),
            o->file || o->function ? ""
                                   : "  (the import system's <frozen ...> code is left out: "
                                     "--file '<frozen' shows it)\n");
    mp_source_t *src = mp_source_new(m->cwd);
    size_t done = 0;
    for (size_t i = 0; i < pl->nfuncs && done < shown; i++) {
        if (!selected(&pl->funcs[i], o)) continue;
        function_block(pl, &pl->funcs[i], src, prec, out);
        done++;
    }
    mp_source_free(src);
    if (shown < match)
        fprintf(out, "... and %zu more %s (--functions 0 shows all)\n", match - shown,
                plural(match - shown, "function", "functions"));
}

int
mp_emit_text(const mp_model_t *m, mp_sym_t *sym, const mp_text_opts_t *o, FILE *out,
             mp_err_t *err) {
    bool first = true;
    if (o->summary) {
        summary(m, out);
        first = false;
    }
    if (o->lines) {
        if (!first) fputc('\n', out);
        lines_view(m, o, out);
        first = false;
    }
    if (o->leaks) {
        if (!first) fputc('\n', out);
        leaks(m, sym, o->top, out);
        first = false;
    }
    if (o->peak) {
        if (!first) fputc('\n', out);
        peak(m, sym, o->top, out);
    }
    if (fflush(out) == EOF || ferror(out))
        return mp_err_set(err, MP_EIO, 0, NULL, "writing the report failed");
    return 0;
}
