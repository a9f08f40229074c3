/* symbolize.c - native frames to function, file:line, module, offline, with elfutils' libdwfl.
 *
 * What this owns: finding the MODULE record that covers an address (later records win), one Dwfl
 * session per distinct (path, bias) opened lazily with dwfl_report_elf, the build-id check, and a
 * per-address cache of answers. Strings returned point into the Dwfl sessions (symbol and line
 * tables) or into cache entries, so they live until mp_sym_free.
 * What this is not: demangling, inline-frame expansion, or Python frames (handed to pysym.c).
 */
#include "symbolize.h"

#include <elfutils/libdwfl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pysym.h"

typedef struct modstate_s {
    int state;    /* 0 untried, 1 open, -1 could not be opened */
    size_t alias; /* index of the module whose session this one shares, or itself */
    Dwfl *dwfl;   /* owned when alias is itself */
    Dwfl_Module *mod;
    const char *name; /* basename of the path */
} modstate_t;

typedef struct entry_s { /* one cached answer */
    uint64_t addr;
    mp_frame_info_t info;
    char hex[24];
    char *owned; /* a function name this entry had to copy (version suffix cut), or NULL */
} entry_t;

struct mp_sym_s {
    const mp_model_t *m;
    FILE *warn;
    modstate_t *mods;
    entry_t **cache; /* open addressing on addr; NULL = empty */
    size_t cap, len;
};

static const Dwfl_Callbacks offline_callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
};

static const char *
base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

mp_sym_t *
mp_sym_new(const mp_model_t *m, FILE *warn) {
    mp_sym_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->m = m;
    s->warn = warn;
    s->mods = calloc(m->nmodules ? m->nmodules : 1, sizeof *s->mods);
    s->cap = 256;
    s->cache = calloc(s->cap, sizeof *s->cache);
    if (!s->mods || !s->cache) {
        mp_sym_free(s);
        return NULL;
    }
    for (size_t i = 0; i < m->nmodules; i++) {
        s->mods[i].alias = i;
        s->mods[i].name = base_name(m->modules[i].path);
    }
    return s;
}

void
mp_sym_free(mp_sym_t *s) {
    if (!s) return;
    if (s->mods)
        for (size_t i = 0; i < s->m->nmodules; i++)
            if (s->mods[i].dwfl && s->mods[i].alias == i) dwfl_end(s->mods[i].dwfl);
    if (s->cache)
        for (size_t i = 0; i < s->cap; i++)
            if (s->cache[i]) {
                free(s->cache[i]->owned);
                free(s->cache[i]);
            }
    free(s->cache);
    free(s->mods);
    free(s);
}

/* The module whose ranges contain pc; later records win. Returns nmodules if none. */
static size_t
find_module(const mp_model_t *m, uint64_t pc) {
    for (size_t i = m->nmodules; i-- > 0;) {
        const mp_module_t *mod = &m->modules[i];
        for (size_t k = 0; k < mod->nranges; k++)
            if (pc >= mod->ranges[2 * k] && pc < mod->ranges[2 * k + 1]) return i;
    }
    return m->nmodules;
}

static void
check_build_id(mp_sym_t *s, size_t i) {
    const mp_module_t *mod = &s->m->modules[i];
    const unsigned char *bits = NULL;
    GElf_Addr vaddr = 0;
    if (mod->build_id_len == 0) return;
    int n = dwfl_module_build_id(s->mods[i].mod, &bits, &vaddr);
    if (n <= 0) return;
    if ((size_t)n == mod->build_id_len && memcmp(bits, mod->build_id, (size_t)n) == 0) return;
    if (s->warn)
        fprintf(s->warn,
                "memprof: warning: %s changed since the run (build-id differs); its symbols may "
                "be wrong\n",
                mod->path);
}

/* Open module i's ELF (or share the session of an earlier module with the same path and bias). */
static modstate_t *
open_module(mp_sym_t *s, size_t i) {
    modstate_t *ms = &s->mods[i];
    if (ms->state) return ms;
    const mp_module_t *mod = &s->m->modules[i];
    ms->state = -1;
    for (size_t j = 0; j < i; j++) {
        const mp_module_t *o = &s->m->modules[j];
        if (s->mods[j].state && o->bias == mod->bias && strcmp(o->path, mod->path) == 0) {
            ms->state = s->mods[j].state;
            ms->alias = s->mods[j].alias;
            ms->dwfl = s->mods[j].dwfl;
            ms->mod = s->mods[j].mod;
            return ms;
        }
    }
    if (mod->path[0] != '/') return ms; /* [vdso], [heap], anonymous */
    /* Only regular files: a dump naming a FIFO or a device must not hang or feed the reporter. */
    struct stat st;
    if (stat(mod->path, &st) != 0 || !S_ISREG(st.st_mode)) return ms;
    Dwfl *d = dwfl_begin(&offline_callbacks);
    if (!d) return ms;
    dwfl_report_begin(d);
    /* add_p_vaddr: bias is "start address relative to the ELF's phdr p_vaddr" (libdwfl.h). */
    Dwfl_Module *dm = dwfl_report_elf(d, ms->name, mod->path, -1, mod->bias, true);
    if (dwfl_report_end(d, NULL, NULL) != 0 || !dm) {
        dwfl_end(d);
        return ms;
    }
    ms->dwfl = d;
    ms->mod = dm;
    ms->state = 1;
    check_build_id(s, i);
    return ms;
}

static void
resolve(mp_sym_t *s, uint64_t addr, entry_t *e) {
    e->addr = addr;
    snprintf(e->hex, sizeof e->hex, "0x%llx", (unsigned long long)addr);
    e->info = (mp_frame_info_t){"native", e->hex, NULL, 0, NULL};
    if (mp_pyframe_is(addr)) {
        mp_pysym_info(s->m, addr, &e->info);
        return;
    }
    /* A return address points after the call; the call itself is one byte before. */
    uint64_t pc = addr ? addr - 1 : 0;
    size_t i = find_module(s->m, pc);
    if (i == s->m->nmodules) return;
    modstate_t *ms = open_module(s, i);
    e->info.module = ms->name;
    if (ms->state != 1) return;
    GElf_Off off = 0;
    GElf_Sym sym;
    const char *name = dwfl_module_addrinfo(ms->mod, pc, &off, &sym, NULL, NULL, NULL);
    if (name && name[0]) e->info.function = name;
    /* "__libc_start_main@@GLIBC_2.34": the symbol version is noise in a stack. */
    const char *at = name && name[0] ? strchr(name, '@') : NULL;
    if (at && at > name && (e->owned = strndup(name, (size_t)(at - name))))
        e->info.function = e->owned;
    Dwfl_Line *line = dwfl_module_getsrc(ms->mod, pc);
    if (line) {
        int lineno = 0;
        const char *file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
        if (file) {
            e->info.file = file;
            e->info.line = lineno;
        }
    }
}

static size_t
slot_of(const mp_sym_t *s, uint64_t addr) {
    size_t mask = s->cap - 1, i = (size_t)((addr * 0x9e3779b97f4a7c15ull) >> 17) & mask;
    while (s->cache[i] && s->cache[i]->addr != addr) i = (i + 1) & mask;
    return i;
}

static void
cache_grow(mp_sym_t *s) {
    size_t ncap = s->cap * 2;
    entry_t **n = calloc(ncap, sizeof *n);
    if (!n) return; /* keep probing the full-enough old table */
    entry_t **old = s->cache;
    size_t ocap = s->cap;
    s->cache = n;
    s->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i]) s->cache[slot_of(s, old[i]->addr)] = old[i];
    free(old);
}

void
mp_sym_lookup(mp_sym_t *s, uint64_t addr, mp_frame_info_t *out) {
    if (2 * (s->len + 1) > s->cap) cache_grow(s);
    size_t i = slot_of(s, addr);
    if (s->cache[i]) {
        *out = s->cache[i]->info;
        return;
    }
    entry_t *e = s->len + 1 < s->cap ? calloc(1, sizeof *e) : NULL;
    if (!e) { /* out of memory: answer from scratch, valid until the next such answer */
        static entry_t scratch;
        free(scratch.owned);
        scratch.owned = NULL;
        resolve(s, addr, &scratch);
        *out = scratch.info;
        return;
    }
    resolve(s, addr, e);
    s->cache[i] = e;
    s->len++;
    *out = e->info;
}
