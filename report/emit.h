/* emit.h - the reporter's views of a replayed dump: JSON (emit_json.c) and text (emit_text.c).
 *
 * What this is: pure presentation of an mp_model_t, with frames symbolized through an mp_sym_t.
 * The JSON schema is documented key by key in docs/JSON.md (stable: add keys, never rename).
 * What this is not: reading or replaying (model.h), or deciding exit statuses (tools/memprof.c).
 */
#ifndef MP_EMIT_H
#define MP_EMIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "model.h"
#include "symbolize.h"

/* The JSON report document (format "memprof-report", version 1); the caller json_decref()s it.
 * sym may be NULL (frames stay unsymbolized). Returns NULL only when out of memory. */
json_t *mp_report_json(const mp_model_t *m, mp_sym_t *sym);
/* Write the JSON report to out (JSON_INDENT(2) | JSON_SORT_KEYS, trailing newline).
 * Returns 0, or MP_ENOMEM / MP_EIO with err filled. */
int mp_emit_json(const mp_model_t *m, mp_sym_t *sym, FILE *out, mp_err_t *err);

typedef struct mp_text_opts_s {
    bool summary;         /* the short aligned summary */
    bool leaks;           /* top leaking stacks */
    bool peak;            /* top stacks live at the peak */
    size_t top;           /* stacks (and by-line groups) per list; 0 = all */
    bool lines;           /* the per-line table (needs a model built with opts.lines) */
    size_t functions;     /* functions in the per-line table; 0 = all */
    const char *file;     /* per-line table: only files containing this, or NULL */
    const char *function; /* per-line table: only functions of this qualname or name, or NULL */
    int precision;        /* decimals of the MiB columns (memory_profiler's --precision); 0 = 3 */
} mp_text_opts_t;

/* Write the selected text sections to out, in the order summary, lines, leaks, peak.
 * Returns 0, or MP_EIO with err filled when out fails. */
int mp_emit_text(const mp_model_t *m, mp_sym_t *sym, const mp_text_opts_t *o, FILE *out,
                 mp_err_t *err);

#endif
