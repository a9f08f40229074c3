/* source.c - source files read once and split into lines (see source.h). */
#include "source.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SOURCE (64u << 20)

typedef struct file_s {
    char *name;    /* as named in the dump */
    char *text;    /* the whole file, or NULL when unreadable */
    size_t *lines; /* offsets of line starts, nlines + 1 entries (the last = end) */
    size_t nlines;
} file_t;

struct mp_source_s {
    char *cwd;
    file_t *files;
    size_t n, cap;
    size_t last; /* index of the last file asked for: views ask line by line */
};

mp_source_t *
mp_source_new(const char *cwd) {
    mp_source_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (cwd && !(s->cwd = strdup(cwd))) {
        free(s);
        return NULL;
    }
    return s;
}

void
mp_source_free(mp_source_t *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->files[i].name);
        free(s->files[i].text);
        free(s->files[i].lines);
    }
    free(s->files);
    free(s->cwd);
    free(s);
}

/* Read path entirely if it is a regular file of a sane size. */
static char *
slurp(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_SOURCE) {
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)st.st_size, n = 0;
    char *buf = malloc(cap + 1);
    while (buf && n < cap) {
        ssize_t got = read(fd, buf + n, cap - n);
        if (got <= 0) break; /* shorter than it said: keep what was read */
        n += (size_t)got;
    }
    close(fd);
    if (buf) buf[n] = 0;
    *len = n;
    return buf;
}

static void
load(mp_source_t *s, file_t *f) {
    const char *name = f->name;
    if (!name[0] || name[0] == '<') return;
    char *path = NULL;
    if (name[0] != '/' && s->cwd) {
        size_t n = strlen(s->cwd) + strlen(name) + 2;
        if (!(path = malloc(n))) return;
        snprintf(path, n, "%s/%s", s->cwd, name);
    }
    size_t len = 0;
    f->text = slurp(path ? path : name, &len);
    free(path);
    if (!f->text) return;
    size_t count = 1;
    for (size_t i = 0; i < len; i++)
        if (f->text[i] == '\n') count++;
    if (!(f->lines = malloc((count + 1) * sizeof *f->lines))) {
        free(f->text);
        f->text = NULL;
        return;
    }
    f->lines[0] = 0;
    for (size_t i = 0; i < len; i++)
        if (f->text[i] == '\n') f->lines[++f->nlines] = i + 1;
    /* A last line without a newline is a line; an empty tail after the last newline is not. */
    if (f->lines[f->nlines] < len) f->lines[++f->nlines] = len + 1;
}

static file_t *
find(mp_source_t *s, const char *file) {
    if (s->last < s->n && strcmp(s->files[s->last].name, file) == 0) return &s->files[s->last];
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->files[i].name, file) == 0) {
            s->last = i;
            return &s->files[i];
        }
    if (s->n == s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 8;
        file_t *n = realloc(s->files, ncap * sizeof *n);
        if (!n) return NULL;
        s->files = n;
        s->cap = ncap;
    }
    file_t *f = &s->files[s->n];
    memset(f, 0, sizeof *f);
    if (!(f->name = strdup(file))) return NULL;
    s->last = s->n++;
    load(s, f);
    return f;
}

const char *
mp_source_line(mp_source_t *s, const char *file, int line, size_t *len) {
    if (!s || !file) return NULL;
    file_t *f = find(s, file);
    if (!f || !f->text || line < 1 || (size_t)line > f->nlines) return NULL;
    size_t a = f->lines[line - 1], b = f->lines[line] - 1; /* b: the newline (or end + 0) */
    while (b > a && (f->text[b - 1] == '\r' || f->text[b - 1] == '\n')) b--;
    *len = b - a;
    return f->text + a;
}
