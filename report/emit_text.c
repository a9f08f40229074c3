/* emit_text.c - `memprof report` as readable text: summary, leaks, peak.
 *
 * What this owns: the wording and layout of the text views. Sizes go through sizes.c; strings
 * from the dump are printed with control characters replaced, so a hostile dump cannot drive the
 * terminal. What this is not: the per-line table (a later view) or the JSON schema.
 */
#include "emit.h"

#include <string.h>

#include "sizes.h"

/* Print s with control characters shown as '?'. */
static void
put_clean(FILE *out, const char *s) {
    for (; s && *s; s++) fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
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
    if (addr & MP_FRAME_PYTHON_BIT) fi.function = "<python>";
    if (sym) mp_sym_lookup(sym, addr, &fi);
    fprintf(out, "  #%zu ", i);
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
    sites(m, sym, m->peak, m->npeak, top, out);
}

int
mp_emit_text(const mp_model_t *m, mp_sym_t *sym, const mp_text_opts_t *o, FILE *out,
             mp_err_t *err) {
    bool first = true;
    if (o->summary) {
        summary(m, out);
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
