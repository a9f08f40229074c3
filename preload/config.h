/* config.h - the MEMPROF_* environment variables, read once at start-up.
 *
 * One table in config.c ({name, type, default, help}) is the only list of variables; docs/CONFIG.md
 * documents the same names and a unit test checks that the two agree. A bad value produces one
 * warning line on stderr and the default: it never stops the host program. Reading uses getenv
 * and fixed buffers only (no allocation), so it may run before or inside malloc.
 */
#ifndef MP_CONFIG_H
#define MP_CONFIG_H

#include <stddef.h>

#define MP_PATH_MAX 4096
#define MP_DEPTH_MAX 256
/* Longest MEMPROF_OUTPUT accepted: leaves room in MP_PATH_MAX for "%p" expansion and the
 * ".<pid>.<k>" / ".exec<k>" suffixes that memprof.c may append. */
#define MP_OUTPUT_MAX (MP_PATH_MAX - 96)

typedef struct mp_config_s {
    char output[MP_PATH_MAX]; /* MEMPROF_OUTPUT: dump path pattern; %p = pid */
    int native;               /* MEMPROF_NATIVE: capture native stacks (0/1) */
    int python;               /* MEMPROF_PYTHON: install CPython hooks (0/1) */
    int follow;               /* MEMPROF_FOLLOW: track fork/exec children (0/1) */
    int depth;                /* MEMPROF_DEPTH: max native frames per stack (1..256) */
    int quiet;                /* MEMPROF_QUIET: no message at exit (0/1) */
    int interval_ms;          /* MEMPROF_INTERVAL_MS: RSS sample / flush period (1..10000) */
} mp_config_t;

typedef struct mp_config_var_s {
    const char *name;  /* MEMPROF_... */
    const char *type;  /* "bool", "int MIN..MAX", "path" */
    const char *deflt; /* default, as text */
    const char *help;  /* one line */
} mp_config_var_t;

extern const mp_config_var_t mp_config_vars[];
extern const size_t mp_config_nvars;

/* Fill cfg from getenv(); warn(msg) is called once per bad value (NULL: silent). */
void mp_config_load(mp_config_t *cfg, void (*warn)(const char *a, const char *b));
/* Same, from an explicit lookup function (tests). */
void mp_config_load_from(mp_config_t *cfg, const char *(*get)(const char *name),
                         void (*warn)(const char *a, const char *b));

/* Expand the output pattern for pid into out (cap bytes): "%p" -> pid, "%%" -> "%".
 * Returns 0, or -1 if the result does not fit. */
int mp_config_expand_output(const char *pattern, int pid, char *out, size_t cap);

#endif
