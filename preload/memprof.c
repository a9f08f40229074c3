/* memprof.c - the library's lifecycle: constructor, destructor, fork, exit paths.
 *
 * What this is: start-up (config, the dump file, the writer thread), the end (final marker,
 * trailer, the one-line message) and the fork child's fresh start. What this is not: the hooks
 * (interpose.c) or the encoding (writer.c).
 *
 * Allocations made before the constructor runs (other libraries' constructors, the loader) are
 * passed through untracked; their later frees are "unknown frees", which the reporter ignores.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "atomics.h"
#include "capture.h"
#include "config.h"
#include "format.h"
#include "hooks.h"
#include "stacks.h"
#include "sys.h"
#include "writer.h"

static mp_config_t cfg;
static char dump_path[MP_PATH_MAX];
static uint64_t start_mono_ns;

/* Stack table sizes: 4 Mi slots (32 MiB) and a 512 MiB arena, reserved, touched as used. */
#define STACK_SLOTS (1u << 22)
#define STACK_ARENA (512ull << 20)

static void
warn(const char *a, const char *b)
{
    mp_sys_log2(a, b);
}

/* ---- the dump file ----------------------------------------------------------------------- */

/* Is path an existing dump whose process is alive (possibly us, before an exec)? Files that
 * are not dumps, or dumps of dead processes, are stale and may be overwritten. */
static int
owned_by_live_process(const char *path)
{
    int fd = mp_sys_open(path, O_RDONLY, 0);
    if (fd < 0) return 0;
    uint8_t hdr[MP_FMT_HEADER_SIZE];
    ssize_t n = mp_sys_pread(fd, hdr, sizeof hdr, 0);
    mp_sys_close(fd);
    if (n < (ssize_t)sizeof hdr) return n >= 0; /* being created right now: treat as live */
    mp_fmt_header_t h;
    if (mp_fmt_header_decode(hdr, &h) != 0) return 0;
    return mp_sys_alive((int)h.pid);
}

/* Open the dump for this process: the configured name, or, when another live process (an
 * exec'd parent with the same fixed MEMPROF_OUTPUT, or our own image before exec) owns it,
 * "<name>.<pid>" and then "<name>.<pid>.<k>". Never overwrites a live process's dump. */
static int
open_dump(int pid)
{
    if (mp_config_expand_output(cfg.output, pid, dump_path, sizeof dump_path - 48) != 0) {
        warn("MEMPROF_OUTPUT is too long", NULL);
        return -1;
    }
    int flags = O_WRONLY | O_CREAT | O_EXCL;
    int fd = mp_sys_open(dump_path, flags, 0644);
    if (fd == -EEXIST && !owned_by_live_process(dump_path))
        fd = mp_sys_open(dump_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    size_t base = strlen(dump_path);
    for (unsigned k = 0; fd == -EEXIST && k < 1000; k++) {
        size_t n = base;
        dump_path[n++] = '.';
        n += mp_str_u64(dump_path + n, (uint64_t)pid);
        if (k > 0) {
            dump_path[n++] = '.';
            n += mp_str_u64(dump_path + n, k);
        }
        dump_path[n] = 0;
        fd = mp_sys_open(dump_path, flags, 0644);
    }
    if (fd < 0) {
        warn(fd == -EACCES || fd == -EPERM || fd == -EROFS
                 ? "cannot create the dump (permission denied), tracking disabled: "
                 : fd == -ENOENT ? "cannot create the dump (no such directory), tracking disabled: "
                                 : "cannot create the dump, tracking disabled: ",
             dump_path);
        return -1;
    }
    return fd;
}

static int
start_writer(int forked)
{
    int pid = mp_sys_getpid();
    int fd = open_dump(pid);
    if (fd < 0) return -1;
    mp_writer_opts_t o;
    memset(&o, 0, sizeof o);
    o.fd = fd;
    o.path = dump_path;
    o.native = cfg.native;
    o.interval_ms = cfg.interval_ms;
    o.stacks_from_fork = forked;
    o.header.major = MP_FORMAT_MAJOR;
    o.header.minor = MP_FORMAT_MINOR;
    o.header.header_size = MP_FMT_HEADER_SIZE;
    o.header.flags = (cfg.native ? MP_FMT_FLAG_NATIVE : 0) | (forked ? MP_FMT_FLAG_FORKED : 0);
    o.header.ptr_size = sizeof(void *);
    o.header.pid = (uint64_t)pid;
    o.header.ppid = (uint64_t)mp_sys_getppid();
    o.header.start_real_ns = mp_sys_real_ns();
    o.header.start_mono_ns = start_mono_ns = mp_sys_mono_ns();
    o.header.page_size = (uint32_t)sysconf(_SC_PAGESIZE);
    if (mp_writer_start(&o) != 0) {
        mp_sys_close(fd);
        warn("cannot start the writer, tracking disabled: ", dump_path);
        return -1;
    }
    return 0;
}

/* ---- MEMPROF_FOLLOW=0: keep exec'd children out -------------------------------------------- */

/* Remove the entries naming libmemprof from LD_PRELOAD, in place (no allocation: the value
 * only gets shorter). Programs copy the environment for their children (Python's os.environ
 * is built after this runs), so exec'd children start without the preload. */
static void
strip_self_from_ld_preload(void)
{
    extern char **environ;
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0) continue;
        char *src = *e + 11, *dst = src;
        while (*src) {
            size_t len = strcspn(src, ": ");
            int ours = 0;
            for (size_t i = 0; i + 10 <= len; i++)
                if (!memcmp(src + i, "libmemprof", 10)) ours = 1;
            if (!ours) {
                if (dst != *e + 11) *dst++ = ':';
                memmove(dst, src, len);
                dst += len;
            }
            src += len;
            while (*src == ':' || *src == ' ') src++;
        }
        *dst = 0;
    }
}

/* ---- fork ---------------------------------------------------------------------------------- */

static void
after_fork_child(void)
{
    mp_thread_t *t = &mp_thread;
    if (mp_load_relaxed(&mp_state) != mp_state_running) return;
    t->guard++;
    mp_writer_forget(); /* the parent's writer thread does not exist in the child */
    if (!cfg.follow) {
        mp_store_release(&mp_state, mp_state_disabled);
        t->guard--;
        return;
    }
    mp_store_relaxed(&mp_abandon, 0);
    mp_capture_after_fork_child(t);
    if (start_writer(1) != 0) {
        mp_store_release(&mp_abandon, 1);
        mp_store_release(&mp_state, mp_state_disabled);
    }
    t->guard--;
}

/* ---- start and end ------------------------------------------------------------------------- */

__attribute__((constructor)) static void
mp_start(void)
{
    mp_thread_t *t = &mp_thread;
    t->guard++; /* our own allocations (pthread_create, atfork, libunwind) stay untracked */
    mp_interpose_resolve();
    mp_config_load(&cfg, warn);
    if (!cfg.follow) strip_self_from_ld_preload();
    if (mp_stacks_init(STACK_SLOTS, STACK_ARENA) != 0 ||
        mp_capture_init(cfg.native, cfg.depth) != 0) {
        warn("cannot reserve memory, tracking disabled", NULL);
        goto out;
    }
    pthread_atfork(NULL, NULL, after_fork_child);
    if (start_writer(0) != 0) goto out;
    mp_store_release(&mp_state, mp_state_running);
out:
    t->guard--;
}

/* End tracking: final marker, drain, trailer, message. Idempotent; safe from any thread. */
static void
finish(unsigned marker)
{
    int expect = mp_state_running;
    if (!mp_cas_acq_rel(&mp_state, &expect, mp_state_stopping)) return;
    mp_thread_t *t = &mp_thread;
    t->guard++;
    uint64_t seq = mp_fetch_add_relaxed(&mp_seq, 1);
    int64_t events = mp_writer_stop(marker, seq, 10000);
    mp_store_release(&mp_abandon, 1); /* nobody waits for a writer that has gone */
    if (events >= 0 && !cfg.quiet) {
        char msg[MP_PATH_MAX + 160], num[24];
        size_t n = mp_str_copy(msg, sizeof msg, "wrote ");
        n += mp_str_copy(msg + n, sizeof msg - n, dump_path);
        n += mp_str_copy(msg + n, sizeof msg - n, " (");
        mp_str_u64(num, (uint64_t)events);
        n += mp_str_copy(msg + n, sizeof msg - n, num);
        n += mp_str_copy(msg + n, sizeof msg - n, " events); report: memprof report ");
        mp_str_copy(msg + n, sizeof msg - n, dump_path);
        mp_sys_log(msg);
    } else if (events < 0) {
        warn("the writer did not finish; the dump may be incomplete: ", dump_path);
    }
    t->guard--;
}

__attribute__((destructor)) static void
mp_stop(void)
{
    finish(MP_MARK_EXIT);
}

void
mp_lifecycle_exit(void)
{
    finish(MP_MARK_EXIT);
}
