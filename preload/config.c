/* config.c - the table of MEMPROF_* variables and their parsing (see config.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sys.h"

/* THE list of environment variables. Keep docs/CONFIG.md in step (a unit test checks). */
const mp_config_var_t mp_config_vars[] = {
    {"MEMPROF_OUTPUT", "path", "memprof.%p.dump",
     "where to write the dump; %p becomes the pid; relative to the working directory"},
    {"MEMPROF_NATIVE", "bool", "0", "capture native (C/C++) stacks with libunwind"},
    {"MEMPROF_PYTHON", "bool", "1", "install the CPython allocator hooks when CPython is present"},
    {"MEMPROF_FOLLOW", "bool", "1", "track forked and exec'd children, each into its own dump"},
    {"MEMPROF_DEPTH", "int 1..256", "64", "most native frames kept per stack"},
    {"MEMPROF_QUIET", "bool", "0", "print nothing at exit (errors are still printed)"},
    {"MEMPROF_INTERVAL_MS", "int 1..10000", "10", "period of RSS samples and of dump flushes"},
};
const size_t mp_config_nvars = sizeof mp_config_vars / sizeof mp_config_vars[0];

static void
bad(void (*warn)(const char *, const char *), const char *name, const char *why) {
    if (!warn) return;
    char msg[160];
    size_t n = mp_str_copy(msg, sizeof msg, "ignoring ");
    n += mp_str_copy(msg + n, sizeof msg - n, name);
    mp_str_copy(msg + n, sizeof msg - n, ": ");
    warn(msg, why);
}

static int
parse_bool(const char *name, const char *v, int deflt, void (*warn)(const char *, const char *)) {
    if (!v) return deflt;
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        return 1;
    if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
        !strcasecmp(v, "off") || !strcmp(v, ""))
        return 0;
    bad(warn, name, "expected 0 or 1 (using the default)");
    return deflt;
}

static int
parse_int(const char *name, const char *v, int lo, int hi, int deflt,
          void (*warn)(const char *, const char *)) {
    if (!v) return deflt;
    const char *p = v;
    uint64_t x = mp_str_parse_u64(&p);
    if (p == v || *p || x > (uint64_t)hi || (int)x < lo) goto fail;
    return (int)x;
fail:
    bad(warn, name, "out of range or not a number (using the default)");
    return deflt;
}

void
mp_config_load_from(mp_config_t *cfg, const char *(*get)(const char *),
                    void (*warn)(const char *, const char *)) {
    const char *out = get("MEMPROF_OUTPUT");
    if (out && !*out) {
        bad(warn, "MEMPROF_OUTPUT", "empty (using the default)");
        out = NULL;
    }
    if (out && strlen(out) > MP_OUTPUT_MAX) {
        bad(warn, "MEMPROF_OUTPUT", "path too long (using the default)");
        out = NULL;
    }
    mp_str_copy(cfg->output, sizeof cfg->output, out ? out : "memprof.%p.dump");
    cfg->native = parse_bool("MEMPROF_NATIVE", get("MEMPROF_NATIVE"), 0, warn);
    cfg->python = parse_bool("MEMPROF_PYTHON", get("MEMPROF_PYTHON"), 1, warn);
    cfg->follow = parse_bool("MEMPROF_FOLLOW", get("MEMPROF_FOLLOW"), 1, warn);
    cfg->depth = parse_int("MEMPROF_DEPTH", get("MEMPROF_DEPTH"), 1, MP_DEPTH_MAX, 64, warn);
    cfg->quiet = parse_bool("MEMPROF_QUIET", get("MEMPROF_QUIET"), 0, warn);
    cfg->interval_ms =
        parse_int("MEMPROF_INTERVAL_MS", get("MEMPROF_INTERVAL_MS"), 1, 10000, 10, warn);
}

static const char *
env_get(const char *name) {
    return getenv(name); /* getenv reads environ: no allocation, no lock */
}

void
mp_config_load(mp_config_t *cfg, void (*warn)(const char *, const char *)) {
    mp_config_load_from(cfg, env_get, warn);
}

int
mp_config_expand_output(const char *pattern, int pid, char *out, size_t cap) {
    size_t n = 0;
    if (cap == 0) return -1;
    for (const char *p = pattern; *p; p++) {
        char num[24];
        const char *piece = NULL;
        size_t len = 1;
        if (p[0] == '%' && p[1] == 'p') {
            len = mp_str_u64(num, (uint64_t)pid);
            piece = num;
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            piece = "%";
            p++;
        } else {
            piece = p;
        }
        if (n + len + 1 > cap) return -1;
        memcpy(out + n, piece, len);
        n += len;
    }
    out[n] = 0;
    return 0;
}
