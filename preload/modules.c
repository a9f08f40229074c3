/* modules.c - /proc/self/maps -> MODULE records (see modules.h for the contract). */
#include "modules.h"

#include <elf.h>
#include <fcntl.h>
#include <string.h>

#include "sys.h"

#define MAPS_CAP (8u << 20)
#define MAX_SEEN 8192
#define MAX_RANGES 16

typedef struct seen_s {
    uint64_t first_start; /* first executable range */
    uint64_t path_hash;
} seen_t;

static char *maps_buf;
static seen_t *seen;
static size_t nseen;

int
mp_modules_init(void) {
    if (!maps_buf) maps_buf = mp_sys_map(MAPS_CAP);
    if (!seen) seen = mp_sys_map(MAX_SEEN * sizeof *seen);
    return maps_buf && seen ? 0 : -1;
}

void
mp_modules_reset(void) {
    nseen = 0;
}

static uint64_t
hex(const char **p) {
    uint64_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return v;
        v = v << 4 | (uint64_t)d;
    }
}

static uint64_t
fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

/* Read the file's program headers: bias for the mapping (start, offset) and its build-id. */
static void
elf_info(const char *path, uint64_t start, uint64_t off, uint64_t *bias, uint8_t *id,
         uint32_t *idlen) {
    *bias = start - off; /* right for ordinary shared objects; refined below */
    *idlen = 0;
    int fd = mp_sys_open(path, O_RDONLY, 0);
    if (fd < 0) return;
    Elf64_Ehdr eh;
    Elf64_Phdr ph[64];
    if (mp_sys_pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_phentsize != sizeof(Elf64_Phdr))
        goto out;
    int nph = eh.e_phnum < 64 ? eh.e_phnum : 64;
    if (mp_sys_pread(fd, ph, (size_t)nph * sizeof *ph, (off_t)eh.e_phoff) !=
        (ssize_t)(nph * sizeof *ph))
        goto out;
    for (int i = 0; i < nph; i++) {
        if (ph[i].p_type == PT_LOAD && off >= (ph[i].p_offset & ~0xfffull) &&
            off < ph[i].p_offset + ph[i].p_filesz) {
            *bias = start - (ph[i].p_vaddr - (ph[i].p_offset - off));
            break;
        }
    }
    for (int i = 0; i < nph && *idlen == 0; i++) {
        if (ph[i].p_type != PT_NOTE || ph[i].p_filesz > 4096) continue;
        uint8_t notes[4096];
        ssize_t got = mp_sys_pread(fd, notes, ph[i].p_filesz, (off_t)ph[i].p_offset);
        for (size_t p = 0; got > 0 && p + 12 <= (size_t)got;) {
            uint32_t namesz, descsz, type;
            memcpy(&namesz, notes + p, 4);
            memcpy(&descsz, notes + p + 4, 4);
            memcpy(&type, notes + p + 8, 4);
            size_t name_at = p + 12, desc_at = name_at + ((namesz + 3) & ~3u);
            size_t next = desc_at + ((descsz + 3) & ~3u);
            if (next > (size_t)got) break;
            if (type == NT_GNU_BUILD_ID && namesz == 4 && !memcmp(notes + name_at, "GNU", 4) &&
                descsz <= 64) {
                memcpy(id, notes + desc_at, descsz);
                *idlen = descsz;
                break;
            }
            p = next;
        }
    }
out:
    mp_sys_close(fd);
}

int
mp_modules_refresh(void (*emit)(void *, const mp_module_t *), void *ctx) {
    /* The calling thread's view: /proc/self is the main thread's, whose maps read empty once it
     * has ended by pthread_exit (memprof.c's last thread), while the process lives on. */
    ssize_t len = mp_sys_read_file("/proc/thread-self/maps", maps_buf, MAPS_CAP);
    if (len < 0) len = mp_sys_read_file("/proc/self/maps", maps_buf, MAPS_CAP); /* before 3.17 */
    if (len < 0) return (int)len;
    int emitted = 0;
    char *line = maps_buf, *end = maps_buf + len;
    /* Mappings of one file are adjacent; gather a file's executable ranges, then emit. */
    char cur_path[1024] = "";
    uint64_t ranges[2 * MAX_RANGES];
    uint32_t nr = 0;
    uint64_t first_off = 0;
    for (;;) {
        char *nl = line < end ? memchr(line, '\n', (size_t)(end - line)) : NULL;
        const char *path = "";
        uint64_t lo = 0, hi = 0, off = 0;
        int exec = 0;
        if (nl) {
            *nl = 0;
            const char *p = line;
            lo = hex(&p);
            p++;
            hi = hex(&p);
            p++;
            exec = p[2] == 'x';
            p += 5;
            off = hex(&p);
            path = strchr(p, '/');
            if (!path) path = "";
        }
        if (!nl || (exec && *path && strcmp(path, cur_path) != 0)) {
            /* Flush the previous file. */
            if (nr > 0) {
                uint64_t h = fnv(cur_path);
                size_t i = 0;
                while (i < nseen && !(seen[i].first_start == ranges[0] && seen[i].path_hash == h))
                    i++;
                if (i == nseen && nseen < MAX_SEEN) {
                    seen[nseen++] = (seen_t){ranges[0], h};
                    uint8_t id[64];
                    mp_module_t m = {cur_path, 0, nr, ranges, id, 0};
                    elf_info(cur_path, ranges[0], first_off, &m.bias, id, &m.build_id_len);
                    emit(ctx, &m);
                    emitted++;
                }
            }
            nr = 0;
            if (!nl) break;
            mp_str_copy(cur_path, sizeof cur_path, path);
        }
        if (exec && *path && nr < MAX_RANGES) {
            if (nr == 0) first_off = off;
            ranges[2 * nr] = lo;
            ranges[2 * nr + 1] = hi;
            nr++;
        }
        line = nl + 1;
    }
    return emitted;
}
