/* test_config.c - the MEMPROF_* variables (preload/config.c, config.h) and docs/CONFIG.md.
 *
 * mp_config_load_from takes the lookup function, so the tests feed it a fake environment and
 * count warnings with their own callback. One test reads docs/CONFIG.md (MP_DOCS_DIR, set in
 * tests/preload_tests.cmake) and checks it documents exactly the variables of mp_config_vars[].
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "sys.h"

/* ---- a fake environment and a counting warn callback ------------------------------------------
 */

#define MAXENV 16
static const char *env_name[MAXENV], *env_value[MAXENV];
static int nenv;
static const char *asked[64]; /* names the loader looked up, in order */
static int nasked;

static int nwarn;
static char warn_a[8][256], warn_b[8][256];

static void
set(const char *name, const char *value) {
    cr_assert_lt(nenv, MAXENV);
    env_name[nenv] = name;
    env_value[nenv++] = value;
}

static const char *
fake_get(const char *name) {
    if (nasked < 64) asked[nasked++] = name;
    for (int i = nenv - 1; i >= 0; i--)
        if (!strcmp(env_name[i], name)) return env_value[i];
    return NULL;
}

static void
count_warn(const char *a, const char *b) {
    if (nwarn < 8) {
        snprintf(warn_a[nwarn], sizeof warn_a[0], "%s", a ? a : "(null)");
        snprintf(warn_b[nwarn], sizeof warn_b[0], "%s", b ? b : "(null)");
    }
    nwarn++;
}

static void
reset(void) {
    nenv = nasked = nwarn = 0;
}

/* Load from the fake environment into a config pre-filled with garbage (every field must be
 * assigned by the loader). */
static mp_config_t
load(void) {
    mp_config_t c;
    memset(&c, 0x5a, sizeof c);
    nasked = nwarn = 0;
    mp_config_load_from(&c, fake_get, count_warn);
    return c;
}

static void
assert_defaults(const mp_config_t *c) {
    cr_assert_str_eq(c->output, "memprof.%p.dump");
    cr_assert_eq(c->native, 0);
    cr_assert_eq(c->python, 1);
    cr_assert_eq(c->follow, 1);
    cr_assert_eq(c->depth, 64);
    cr_assert_eq(c->quiet, 0);
    cr_assert_eq(c->interval_ms, 10);
}

static const mp_config_var_t *
var(const char *name) {
    for (size_t i = 0; i < mp_config_nvars; i++)
        if (!strcmp(mp_config_vars[i].name, name)) return &mp_config_vars[i];
    return NULL;
}

/* The int field for a variable name. */
static int
field(const mp_config_t *c, const char *name) {
    if (!strcmp(name, "MEMPROF_NATIVE")) return c->native;
    if (!strcmp(name, "MEMPROF_PYTHON")) return c->python;
    if (!strcmp(name, "MEMPROF_FOLLOW")) return c->follow;
    if (!strcmp(name, "MEMPROF_DEPTH")) return c->depth;
    if (!strcmp(name, "MEMPROF_QUIET")) return c->quiet;
    if (!strcmp(name, "MEMPROF_INTERVAL_MS")) return c->interval_ms;
    cr_assert_fail("no int field for %s", name);
    return -1;
}

/* name=value alone must give want and no warning. */
static void
good(const char *name, const char *value, int want) {
    reset();
    set(name, value);
    mp_config_t c = load();
    cr_assert_eq(nwarn, 0, "%s=\"%s\": unexpected warning \"%s%s\"", name, value, warn_a[0],
                 warn_b[0]);
    cr_assert_eq(field(&c, name), want, "%s=\"%s\": got %d, want %d", name, value, field(&c, name),
                 want);
}

/* name=value alone must give exactly one warning naming the variable, and the defaults. */
static void
bad(const char *name, const char *value) {
    reset();
    set(name, value);
    mp_config_t c = load();
    cr_assert_eq(nwarn, 1, "%s=\"%s\": %d warnings, want 1", name, value, nwarn);
    cr_assert_not_null(strstr(warn_a[0], name), "warning \"%s%s\" does not name %s", warn_a[0],
                       warn_b[0], name);
    assert_defaults(&c);
}

/* ---- the table --------------------------------------------------------------------------------
 */

Test(config, table_is_well_formed) {
    cr_assert_eq(mp_config_nvars, 7);
    for (size_t i = 0; i < mp_config_nvars; i++) {
        const mp_config_var_t *v = &mp_config_vars[i];
        cr_assert(v->name && v->type && v->deflt && v->help);
        cr_assert_eq(strncmp(v->name, "MEMPROF_", 8), 0, "%s", v->name);
        cr_assert(!strcmp(v->type, "bool") || !strcmp(v->type, "path") ||
                      !strncmp(v->type, "int ", 4),
                  "%s: type \"%s\"", v->name, v->type);
        cr_assert_gt(strlen(v->help), 0);
        for (size_t j = 0; j < i; j++) cr_assert_str_neq(v->name, mp_config_vars[j].name);
    }
}

Test(config, loader_reads_exactly_the_table) {
    reset();
    load();
    cr_assert_eq((size_t)nasked, mp_config_nvars, "looked up %d names", nasked);
    for (int i = 0; i < nasked; i++) {
        cr_assert_not_null(var(asked[i]), "%s is read but not in mp_config_vars[]", asked[i]);
        for (int j = 0; j < i; j++) cr_assert_str_neq(asked[i], asked[j]);
    }
}

/* ---- defaults -----------------------------------------------------------------------------------
 */

Test(config, defaults) {
    reset();
    mp_config_t c = load();
    cr_assert_eq(nwarn, 0);
    assert_defaults(&c);
}

Test(config, table_defaults_match_the_loader) {
    /* Setting every variable to its documented default changes nothing and warns nothing. */
    reset();
    for (size_t i = 0; i < mp_config_nvars; i++)
        set(mp_config_vars[i].name, mp_config_vars[i].deflt);
    mp_config_t c = load();
    cr_assert_eq(nwarn, 0, "warning: %s%s", warn_a[0], warn_b[0]);
    assert_defaults(&c);
}

Test(config, warn_null_is_silent) {
    reset();
    set("MEMPROF_DEPTH", "banana");
    set("MEMPROF_OUTPUT", "");
    mp_config_t c;
    mp_config_load_from(&c, fake_get, NULL);
    assert_defaults(&c);
}

Test(config, load_reads_the_real_environment) {
    setenv("MEMPROF_DEPTH", "7", 1);
    setenv("MEMPROF_OUTPUT", "/tmp/x.%p", 1);
    setenv("MEMPROF_NATIVE", "yes", 1);
    unsetenv("MEMPROF_QUIET");
    mp_config_t c;
    nwarn = 0;
    mp_config_load(&c, count_warn);
    cr_assert_eq(nwarn, 0);
    cr_assert_eq(c.depth, 7);
    cr_assert_eq(c.native, 1);
    cr_assert_str_eq(c.output, "/tmp/x.%p");
}

/* ---- good values ------------------------------------------------------------------------------
 */

Test(config, bools_accept_the_usual_spellings) {
    static const char *const names[] = {"MEMPROF_NATIVE", "MEMPROF_PYTHON", "MEMPROF_FOLLOW",
                                        "MEMPROF_QUIET"};
    static const char *const yes[] = {"1", "true", "TRUE", "True", "yes", "YES", "on", "On"};
    static const char *const no[] = {"0", "false", "FALSE", "no", "No", "off", "OFF", ""};
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < sizeof yes / sizeof yes[0]; j++) good(names[i], yes[j], 1);
        for (size_t j = 0; j < sizeof no / sizeof no[0]; j++) good(names[i], no[j], 0);
    }
}

Test(config, depth_range) {
    good("MEMPROF_DEPTH", "1", 1);
    good("MEMPROF_DEPTH", "64", 64);
    good("MEMPROF_DEPTH", "255", 255);
    good("MEMPROF_DEPTH", "256", MP_DEPTH_MAX);
    good("MEMPROF_DEPTH", "007", 7);
}

Test(config, interval_range) {
    good("MEMPROF_INTERVAL_MS", "1", 1);
    good("MEMPROF_INTERVAL_MS", "10", 10);
    good("MEMPROF_INTERVAL_MS", "250", 250);
    good("MEMPROF_INTERVAL_MS", "10000", 10000);
}

Test(config, output_paths) {
    static const char *const paths[] = {
        "run.mpd", "/tmp/memprof.%p.dump", "out dir/with space", "%p", "a%%b", "/"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        reset();
        set("MEMPROF_OUTPUT", paths[i]);
        mp_config_t c = load();
        cr_assert_eq(nwarn, 0);
        cr_assert_str_eq(c.output, paths[i]);
    }
    /* The longest accepted path: MP_OUTPUT_MAX bytes (the rest of MP_PATH_MAX is kept for %p
     * expansions and the suffixes memprof.c may append). */
    static char longest[MP_PATH_MAX];
    memset(longest, 'a', MP_OUTPUT_MAX);
    longest[MP_OUTPUT_MAX] = 0;
    reset();
    set("MEMPROF_OUTPUT", longest);
    mp_config_t c = load();
    cr_assert_eq(nwarn, 0);
    cr_assert_str_eq(c.output, longest);
}

Test(config, everything_at_once) {
    reset();
    set("MEMPROF_OUTPUT", "/var/tmp/p.%p");
    set("MEMPROF_NATIVE", "1");
    set("MEMPROF_PYTHON", "0");
    set("MEMPROF_FOLLOW", "off");
    set("MEMPROF_DEPTH", "128");
    set("MEMPROF_QUIET", "yes");
    set("MEMPROF_INTERVAL_MS", "50");
    mp_config_t c = load();
    cr_assert_eq(nwarn, 0);
    cr_assert_str_eq(c.output, "/var/tmp/p.%p");
    cr_assert(c.native == 1 && c.python == 0 && c.follow == 0 && c.depth == 128 && c.quiet == 1 &&
              c.interval_ms == 50);
}

/* ---- bad values: one warning each, the default, never a stop ----------------------------------
 */

Test(config, bad_depth) {
    static const char *const v[] = {"banana",
                                    "0",
                                    "999",
                                    "257",
                                    "-5",
                                    "",
                                    " 5",
                                    "5 ",
                                    "+5",
                                    "6x",
                                    "0x10",
                                    "1e2",
                                    "99999999999999999999999999",
                                    "18446744073709551621"}; /* 2^64 + 5: no wrap to 5 */
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) bad("MEMPROF_DEPTH", v[i]);
}

Test(config, bad_interval) {
    static const char *const v[] = {"0", "10001", "-1", "fast", "", "1.5"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) bad("MEMPROF_INTERVAL_MS", v[i]);
}

Test(config, bad_bools) {
    static const char *const names[] = {"MEMPROF_NATIVE", "MEMPROF_PYTHON", "MEMPROF_FOLLOW",
                                        "MEMPROF_QUIET"};
    static const char *const v[] = {"maybe", "2", "10", "-1", "y", "tru", " 1", "1 "};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < sizeof v / sizeof v[0]; j++) bad(names[i], v[j]);
}

Test(config, bad_output) {
    bad("MEMPROF_OUTPUT", "");
    static char overlong[MP_PATH_MAX + 100];
    for (size_t len = MP_OUTPUT_MAX + 1; len <= MP_PATH_MAX + 50; len += 41) {
        memset(overlong, 'b', len);
        overlong[len] = 0;
        bad("MEMPROF_OUTPUT", overlong);
    }
}

Test(config, several_bad_values_warn_once_each) {
    reset();
    set("MEMPROF_DEPTH", "banana");
    set("MEMPROF_NATIVE", "maybe");
    set("MEMPROF_OUTPUT", "");
    set("MEMPROF_INTERVAL_MS", "0");
    set("MEMPROF_QUIET", "1"); /* good values beside bad ones still apply */
    mp_config_t c = load();
    cr_assert_eq(nwarn, 4);
    cr_assert_eq(c.depth, 64);
    cr_assert_eq(c.native, 0);
    cr_assert_str_eq(c.output, "memprof.%p.dump");
    cr_assert_eq(c.interval_ms, 10);
    cr_assert_eq(c.quiet, 1);
}

/* ---- output expansion ---------------------------------------------------------------------------
 */

static void
expands(const char *pattern, int pid, const char *want) {
    char out[256];
    memset(out, 'z', sizeof out);
    cr_assert_eq(mp_config_expand_output(pattern, pid, out, sizeof out), 0, "\"%s\"", pattern);
    cr_assert_str_eq(out, want);
}

Test(config, expand_output) {
    expands("memprof.%p.dump", 1234, "memprof.1234.dump");
    expands("%p", 1, "1");
    expands("%p", 0, "0");
    expands("%p", 2147483647, "2147483647");
    expands("%p.%p", 42, "42.42");
    expands("%%", 42, "%");
    expands("%%p", 42, "%p");
    expands("100%%.%p", 7, "100%.7");
    expands("%%%p", 7, "%7");
    expands("a%b", 7, "a%b");   /* other % sequences stay */
    expands("end%", 7, "end%"); /* a trailing % stays */
    expands("", 7, "");
    expands("/tmp/no-pid", 7, "/tmp/no-pid");
}

Test(config, expand_output_too_long) {
    char out[16];
    /* "memprof.123.d" is 13 bytes: fits in 14 (with the NUL), not in 13. */
    cr_assert_eq(mp_config_expand_output("memprof.%p.d", 123, out, 14), 0);
    cr_assert_str_eq(out, "memprof.123.d");
    cr_assert_eq(mp_config_expand_output("memprof.%p.d", 123, out, 13), -1);
    cr_assert_eq(mp_config_expand_output("%p", 1234567, out, 8), 0);
    cr_assert_eq(mp_config_expand_output("%p", 1234567, out, 7), -1);
    cr_assert_eq(mp_config_expand_output("0123456789abcdefX", 1, out, sizeof out), -1);
    cr_assert_eq(mp_config_expand_output("", 1, out, 1), 0);
    /* A path accepted by the loader can still grow past MP_PATH_MAX through %p. */
    static char pat[MP_PATH_MAX], big[MP_PATH_MAX];
    for (size_t i = 0; i + 2 < MP_PATH_MAX - 33; i += 2) memcpy(pat + i, "%p", 2);
    cr_assert_eq(mp_config_expand_output(pat, 99999, big, sizeof big), -1);
}

/* ---- docs/CONFIG.md
 * ------------------------------------------------------------------------------ */

static char *
read_doc(void) {
    const char *path = MP_DOCS_DIR "/CONFIG.md";
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    cr_assert_lt(n, sizeof buf - 1, "%s is too large for this test", path);
    buf[n] = 0;
    return buf;
}

/* The documented section of name: from its "### `NAME`" heading to the next heading. */
static const char *
section(const char *doc, const char *name, size_t *len) {
    char head[96];
    snprintf(head, sizeof head, "\n### `%s`\n", name);
    const char *s = strstr(doc, head);
    if (!s) return NULL;
    cr_assert_null(strstr(s + 1, head), "%s is documented twice", name);
    const char *e = strstr(s + strlen(head), "\n#");
    *len = e ? (size_t)(e - s) : strlen(s);
    return s;
}

static int
contains(const char *s, size_t len, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= len; i++)
        if (!memcmp(s + i, needle, m)) return 1;
    return 0;
}

Test(config, docs_list_exactly_the_table) {
    const char *doc = read_doc();
    /* Every variable has a section stating its type and default as the table does. */
    for (size_t i = 0; i < mp_config_nvars; i++) {
        const mp_config_var_t *v = &mp_config_vars[i];
        size_t len = 0;
        const char *s = section(doc, v->name, &len);
        cr_assert_not_null(s, "docs/CONFIG.md has no \"### `%s`\" section", v->name);
        char row[160];
        snprintf(row, sizeof row, "\n| Type | `%s` |", v->type);
        cr_assert(contains(s, len, row), "%s: no row \"%s\"", v->name, row + 1);
        snprintf(row, sizeof row, "\n| Default | `%s` |", v->deflt);
        cr_assert(contains(s, len, row), "%s: no row \"%s\"", v->name, row + 1);
    }
    /* Every MEMPROF_* name the document mentions is in the table, and every "### " heading of
     * a variable is one of the table's. */
    for (const char *p = strstr(doc, "MEMPROF_"); p; p = strstr(p + 1, "MEMPROF_")) {
        char name[64];
        size_t n = 0;
        while (n < sizeof name - 1 &&
               ((p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= '0' && p[n] <= '9') || p[n] == '_'))
            name[n] = p[n], n++;
        name[n] = 0;
        if (n == 8) continue; /* the bare prefix, as in "the MEMPROF_ variables" */
        cr_assert_not_null(var(name),
                           "docs/CONFIG.md mentions %s, which is not in mp_config_vars[]", name);
    }
    int headings = 0;
    for (const char *p = strstr(doc, "\n### `"); p; p = strstr(p + 1, "\n### `")) headings++;
    cr_assert_eq((size_t)headings, mp_config_nvars, "%d variable sections, table has %zu", headings,
                 mp_config_nvars);
}

/* ---- regressions: bugs these tests found, since fixed ---------------------------------
 */

/* With cap 0 nothing fits, not even the NUL, yet mp_config_expand_output writes out[0]
 * ("out[n] = 0;" after the loop, config.c): one byte past the caller's buffer. Under ASan this
 * is a heap-buffer-overflow. (memprof.c never passes cap 0 today.) */
Test(config, expand_output_with_no_room_writes_nothing) {
    char *buf = malloc(1);
    cr_assert_not_null(buf);
    buf[0] = 'x';
    cr_assert_eq(mp_config_expand_output("", 1, buf + 1, 0), -1);
    cr_assert_eq(buf[0], 'x');
    free(buf);
}

/* ---- sys.h's decimal parser (config.c, /proc files, version strings) ------------------------ */

static void
parses(const char *text, uint64_t want, size_t used) {
    const char *p = text;
    uint64_t v = mp_str_parse_u64(&p);
    cr_assert_eq(v, want, "\"%s\": got %llu, want %llu", text, (unsigned long long)v,
                 (unsigned long long)want);
    cr_assert_eq((size_t)(p - text), used, "\"%s\": used %zu characters, want %zu", text,
                 (size_t)(p - text), used);
}

Test(str, parse_u64) {
    parses("0", 0, 1);
    parses("123 456", 123, 3);
    parses("4096\n", 4096, 4);
    parses("007.11", 7, 3);
    parses("", 0, 0);
    parses(" 5", 0, 0);
    parses("-5", 0, 0);
    parses("18446744073709551615", UINT64_MAX, 20);
    parses("18446744073709551614x", UINT64_MAX - 1, 20);
    parses("18446744073709551616", UINT64_MAX, 20); /* saturates, all digits consumed */
    parses("18446744073709551621", UINT64_MAX, 20);
    parses("99999999999999999999999999 1", UINT64_MAX, 26);
}
