/* pyfind.c - CPython interpreters for tests (see pyfind.h). */
#include "pyfind.h"

#include <glob.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The pyenv root: $PYENV_ROOT, else `pyenv root`, else ~/.pyenv. */
static void
pyenv_root(char *out, size_t size) {
    const char *env = getenv("PYENV_ROOT");
    if (env && env[0]) {
        snprintf(out, size, "%s", env);
        return;
    }
    out[0] = 0;
    FILE *p = popen("pyenv root 2>/dev/null", "r");
    if (p) {
        if (fgets(out, (int)size, p)) out[strcspn(out, "\n")] = 0;
        pclose(p);
    }
    if (!out[0]) snprintf(out, size, "%s/.pyenv", getenv("HOME") ? getenv("HOME") : "/root");
}

/* "python3.<digits>": its minor version. */
static bool
minor_of(const char *path, unsigned *minor) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strncmp(base, "python3.", 8) != 0 || !base[8]) return false;
    for (const char *c = base + 8; *c; c++)
        if (*c < '0' || *c > '9') return false;
    *minor = (unsigned)atoi(base + 8);
    return true;
}

static void
add(char ***out, size_t *n, const char *path) {
    *out = realloc(*out, (*n + 1) * sizeof **out);
    if (!*out || !((*out)[*n] = strdup(path))) abort();
    (*n)++;
}

size_t
mp_pyfind(const char *who, char ***out) {
    char root[PATH_MAX - 64], pat[PATH_MAX];
    size_t n = 0;
    bool have[14] = {false};
    *out = NULL;
    pyenv_root(root, sizeof root);
    snprintf(pat, sizeof pat, "%s/versions/3.*/bin/python3.*", root);
    glob_t g;
    memset(&g, 0, sizeof g);
    glob(pat, 0, NULL, &g);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        unsigned minor = 0;
        if (!minor_of(g.gl_pathv[i], &minor)) continue;
        if (minor < 8) {
            fprintf(stderr, "%s: skipped %s (memprof supports CPython 3.8+)\n", who, g.gl_pathv[i]);
            continue;
        }
        if (minor < sizeof have) have[minor] = true;
        add(out, &n, g.gl_pathv[i]);
    }
    globfree(&g);
    for (unsigned minor = 8; minor <= 13; minor++)
        if (!have[minor])
            fprintf(stderr, "%s: skipped CPython 3.%u: not found under %s/versions\n", who, minor,
                    root);
    struct stat st;
    if (stat("/usr/bin/python3", &st) == 0)
        add(out, &n, "/usr/bin/python3");
    else
        fprintf(stderr, "%s: skipped /usr/bin/python3: not installed\n", who);
    return n;
}

void
mp_pyfind_free(char **paths, size_t n) {
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
}
