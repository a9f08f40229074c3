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
#include "pycode.h"
#include "python.h"
#include "stacks.h"
#include "sys.h"
#include "writer.h"

static mp_config_t cfg;
static char dump_path[MP_PATH_MAX];
static uint64_t start_mono_ns;
static int owner_pid; /* the process whose dump is open (set at start and in fork children) */
/* The program's live threads, and the key whose destructor counts their ends (the last thread,
 * below). */
static int live_threads = 1;
static pthread_key_t count_key;
static int count_key_ok;
static void thread_ended(void *unused);

/* Stack table sizes: levels of 32 Ki to 1 Mi slots (16 MiB reserved; a level is touched only
 * once the ones before it are nearly full, stacks.c) and a 512 MiB arena, reserved, touched as
 * used. */
#define STACK_SLOTS (1u << 20)
#define STACK_ARENA (512ull << 20)
/* Code registry: levels of 8 Ki to 256 Ki slots (4 MiB reserved, levels.h) and a 256 MiB arena,
 * reserved, touched as used. */
#define CODE_SLOTS (1u << 18)
#define CODE_ARENA (256ull << 20)

static int python_found;

static void
warn(const char *a, const char *b) {
    mp_sys_log2(a, b);
}

/* ---- the dump file ----------------------------------------------------------------------- */

/* Who owns the existing file at path? Returns the pid in its header, 0 for a file that is not
 * a dump (or unreadable), -1 for a file too short to have a header yet (being created). */
static int
dump_owner(const char *path) {
    int fd = mp_sys_open(path, O_RDONLY, 0);
    if (fd < 0) return 0;
    uint8_t hdr[MP_FMT_HEADER_SIZE];
    ssize_t n = mp_sys_pread(fd, hdr, sizeof hdr, 0);
    mp_sys_close(fd);
    if (n >= 0 && n < (ssize_t)sizeof hdr) return -1;
    mp_fmt_header_t h;
    if (n < 0 || mp_fmt_header_decode(hdr, &h) != 0) return 0;
    return (int)h.pid;
}

/* Append ".<tag><k>" (k > 0) or ".<tag>" to base into out. */
static void
suffixed(char *out, const char *base, const char *tag, uint64_t num, unsigned k) {
    size_t n = mp_str_copy(out, MP_PATH_MAX - 48, base);
    n += mp_str_copy(out + n, 16, tag);
    n += mp_str_u64(out + n, num);
    if (k > 0) {
        out[n++] = '.';
        mp_str_u64(out + n, k);
    }
}

/* A stale file renamed aside by replace_stale, for the writer thread to remove ("": none). */
static char discard_path[MP_PATH_MAX];

/* Replace the stale file at dump_path (a dead process's dump, or not a dump) with a new one: fd
 * or -errno. A regular file is renamed aside to "<name>.stale<pid>" and a new one created in its
 * place; the writer thread removes the old one (mp_writer_opts_t.discard). Truncating it in place
 * (O_TRUNC) cost the program twice on ext4, for a 130 MB dump of scripts/bench_py/churn.py run
 * again under the same name: 25 ms in the open, in the constructor (freeing its blocks), and
 * 31 ms in the writer's close at exit, which waits for it (ext4 starts the writeback of a file
 * that was truncated and written again: auto_da_alloc). A symlink, or an aside name that is
 * taken or cannot be made, is truncated through as before. */
static int
replace_stale(int pid) {
    const int trunc = O_WRONLY | O_CREAT | O_TRUNC;
    if (mp_sys_is_regular_nofollow(dump_path) != 1) return mp_sys_open(dump_path, trunc, 0644);
    suffixed(discard_path, dump_path, ".stale", (uint64_t)pid, 0);
    if (mp_sys_exists(discard_path) || mp_sys_rename(dump_path, discard_path) != 0) {
        discard_path[0] = 0;
        return mp_sys_open(dump_path, trunc, 0644);
    }
    int fd = mp_sys_open(dump_path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        /* Another process took the name meanwhile (open_dump then tries the next one), or it
         * cannot be created: the stale file goes back where it was, if the name is free. */
        if (fd != -EEXIST)
            mp_sys_rename(discard_path, dump_path);
        else
            mp_sys_unlink(discard_path);
        discard_path[0] = 0;
    }
    return fd;
}

/* Open the dump for this process at the configured name. If the file exists:
 *  - written by this same pid (our own image before an exec, e.g. a shell or a pyenv shim that
 *    exec'd the real program): it is renamed to "<name>.exec<k>", so the configured name always
 *    holds the last program the process became, and nothing is lost;
 *  - written by another live process (a parent sharing a fixed MEMPROF_OUTPUT): we write
 *    "<name>.<pid>" instead (then "<name>.<pid>.<k>");
 *  - anything else (a dump of a dead process, not a dump): stale, replaced (replace_stale).
 * The configured name of something that is not a regular file (/dev/null, a FIFO) is written
 * to as it is: no header to read, nothing to keep, and a ".<pid>" file beside a device would
 * land in /dev. A FIFO takes one writer at a time (mp_sys_claim_fifo): a process that finds
 * another one streaming into it does not track. */
static int
open_dump(int pid) {
    if (mp_config_expand_output(cfg.output, pid, dump_path, sizeof dump_path - 48) != 0) {
        warn("MEMPROF_OUTPUT is too long", NULL);
        return -1;
    }
    const int excl = O_WRONLY | O_CREAT | O_EXCL;
    discard_path[0] = 0; /* a fork child's own (the parent's writer removes the parent's) */
    char base[MP_PATH_MAX];
    mp_str_copy(base, sizeof base, dump_path);
    int fd = -EEXIST;
    /* Candidates: the configured name, then "<name>.<pid>", "<name>.<pid>.<k>". */
    for (unsigned k = 0; fd == -EEXIST && k < 1000; k++) {
        if (k > 0) suffixed(dump_path, base, ".", (uint64_t)pid, k - 1);
        fd = mp_sys_open(dump_path, excl, 0644);
        if (fd != -EEXIST) break;
        if (k == 0 && mp_sys_is_special(dump_path) == 1) {
            fd = mp_sys_open_nowait(dump_path, 0);
            /* One stream per FIFO: a second writer (a fork child, or a program it started,
             * when the name has no %p) would interleave its chunks with the first one's and
             * break both dumps. The first holds the FIFO's lock until it closes it. */
            if (fd >= 0 && mp_sys_claim_fifo(fd) == -EWOULDBLOCK) {
                mp_sys_close(fd);
                fd = -EBUSY;
            }
            break;
        }
        int owner = dump_owner(dump_path);
        if (owner == pid) {
            char aside[MP_PATH_MAX];
            for (unsigned j = 1; j < 1000; j++) {
                suffixed(aside, dump_path, ".exec", j, 0);
                if (!mp_sys_exists(aside)) break;
            }
            mp_sys_rename(dump_path, aside);
            fd = mp_sys_open(dump_path, excl, 0644);
        } else if (owner == 0 || (owner > 0 && !mp_sys_alive(owner))) {
            fd = replace_stale(pid);
        }
    }
    if (fd < 0) {
        warn(fd == -EACCES || fd == -EPERM || fd == -EROFS
                 ? "cannot create the dump (permission denied), tracking disabled: "
             : fd == -ENOENT ? "cannot create the dump (no such directory), tracking disabled: "
             : fd == -ENXIO  ? "cannot write the dump (a FIFO with no reader), tracking disabled: "
             : fd == -EISDIR ? "cannot create the dump (it names a directory), tracking disabled: "
             : fd == -EBUSY  ? "another process streams into this FIFO already (put %p in "
                               "MEMPROF_OUTPUT to give each its own), tracking disabled: "
                             : "cannot create the dump, tracking disabled: ",
             dump_path);
        return -1;
    }
    return fd;
}

static int
start_writer(int forked) {
    int pid = mp_sys_getpid();
    owner_pid = pid;
    int fd = open_dump(pid);
    if (fd < 0) return -1;
    mp_writer_opts_t o;
    memset(&o, 0, sizeof o);
    o.fd = fd;
    o.path = dump_path;
    o.native = cfg.native;
    o.interval_ms = cfg.interval_ms;
    o.stacks_from_fork = forked;
    o.discard = discard_path[0] ? discard_path : NULL;
    o.header.major = MP_FORMAT_MAJOR;
    o.header.minor = MP_FORMAT_MINOR;
    o.header.header_size = MP_FMT_HEADER_SIZE;
    o.header.flags = (cfg.native ? MP_FMT_FLAG_NATIVE : 0) | (forked ? MP_FMT_FLAG_FORKED : 0) |
                     (python_found ? MP_FMT_FLAG_PYTHON : 0);
    o.header.ptr_size = sizeof(void *);
    o.header.pid = (uint64_t)pid;
    o.header.ppid = (uint64_t)mp_sys_getppid();
    o.header.start_real_ns = mp_sys_real_ns();
    o.header.start_mono_ns = start_mono_ns = mp_sys_mono_ns();
    o.header.page_size = (uint32_t)sysconf(_SC_PAGESIZE);
    if (mp_writer_start(&o) != 0) {
        mp_sys_close(fd);
        if (o.discard) mp_sys_unlink(o.discard);
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
strip_self_from_ld_preload(void) {
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
after_fork_child(void) {
    mp_thread_t *t = &mp_thread;
    mp_store_relaxed(&live_threads, 1); /* the forking thread, whose count_key value is kept */
    if (mp_load_relaxed(&mp_state) != mp_state_running) return;
    t->guard++;
    mp_writer_forget(); /* the parent's writer thread does not exist in the child */
    if (!cfg.follow) {
        mp_state_set(mp_state_disabled);
        t->guard--;
        return;
    }
    mp_store_relaxed(&mp_abandon, 0);
    mp_capture_after_fork_child(t);
    if (start_writer(1) != 0) {
        mp_store_release(&mp_abandon, 1);
        mp_state_set(mp_state_disabled);
    }
    t->guard--;
}

/* ---- start and end ------------------------------------------------------------------------- */

__attribute__((constructor)) static void
mp_start(void) {
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
    /* Created early, as capture.c's key: its index is below 32, so setting it never allocates. */
    count_key_ok = pthread_key_create(&count_key, thread_ended) == 0;
    mp_lifecycle_thread_started(); /* the main thread */
    if (cfg.python && mp_pycode_init(CODE_SLOTS, CODE_ARENA) == 0) python_found = mp_python_init(1);
    if (start_writer(0) != 0) goto out;
    mp_state_set(mp_state_running);
out:
    t->guard--;
}

/* End tracking: final marker, drain, trailer, message. Idempotent; safe from any thread. */
static void
finish(unsigned marker) {
    /* A vfork child shares our memory until it execs or calls _exit: it must not close the
     * parent's dump. Its pid differs from the owner's. */
    if (mp_load_relaxed(&mp_state) != mp_state_running || mp_sys_getpid() != owner_pid) return;
    if (!mp_state_cas(mp_state_running, mp_state_stopping)) return;
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
mp_stop(void) {
    finish(MP_MARK_EXIT);
}

/* ---- the program's last thread ------------------------------------------------------------- */

/* The program's threads that have not ended: the main thread and every thread started through
 * pthread_create while not inside memprof (thread_start.c), less those that ended (count_key's
 * destructor, which runs when a thread returns from its start routine or calls pthread_exit).
 * glibc ends the process, as exit(0) would, when the last thread that pthread_create started
 * ends: after main called pthread_exit, or in a child forked from a thread (CPython's thread
 * bootstrap ends with pthread_exit; test_threading's ThreadJoinOnShutdown forks from one). The
 * writer is such a thread and never ends by itself: the process lived on after its program, its
 * one thread blocking every signal, SIGTERM included, and a parent waiting for it hung. So the
 * thread that brings the count to 0 finishes the dump, as at exit, which ends the writer; then it
 * ends, and with it the process. */

/* Whether the kernel lists more threads than the caller and the writer: one started without
 * pthread_create or before the constructor (not counted), or one still on its way out after its
 * destructors ran. A main thread that called pthread_exit stays listed, a zombie, until the
 * process ends (/proc/self/status then says "State: Z"): not counted. Waits up to 200 ms for the
 * others to go; 0 also when it cannot tell. */
static int
others_remain(void) {
    char buf[4096];
    for (int i = 0; i < 200; i++) {
        ssize_t n = mp_sys_read_file("/proc/self/status", buf, sizeof buf);
        const char *p = n > 0 ? strstr(buf, "\nThreads:") : NULL;
        const char *st = n > 0 ? strstr(buf, "\nState:") : NULL;
        if (!p || !st) return 0;
        for (p += 9; *p == ' ' || *p == '\t'; p++) continue;
        uint64_t k = mp_str_parse_u64(&p);
        for (st += 7; *st == ' ' || *st == '\t'; st++) continue;
        if (*st == 'Z' && k > 0) k--;
        if (k <= 2) return 0;
        mp_sys_sleep_ns(1000000);
    }
    return 1;
}

static void
thread_ended(void *unused) {
    (void)unused;
    if (mp_fetch_add_acq_rel(&live_threads, -1) != 1) return;
    if (mp_load_relaxed(&mp_state) != mp_state_running || others_remain()) return;
    finish(MP_MARK_EXIT);
}

void
mp_lifecycle_thread_counted(int delta) {
    mp_fetch_add_acq_rel(&live_threads, delta);
}

void
mp_lifecycle_thread_started(void) {
    if (count_key_ok) pthread_setspecific(count_key, (void *)1);
}

void
mp_lifecycle_exit(void) {
    finish(MP_MARK_EXIT);
}

int
mp_lifecycle_exec(void) {
    /* finish() changes the state only for the owner process (not a vfork child). */
    if (mp_load_relaxed(&mp_state) != mp_state_running || mp_sys_getpid() != owner_pid) return 0;
    int saved = cfg.quiet;
    cfg.quiet = 1; /* the exec'd program prints its own line; this image's dump is kept aside */
    finish(MP_MARK_EXIT);
    cfg.quiet = saved;
    return mp_load_relaxed(&mp_state) == mp_state_stopping;
}

void
mp_lifecycle_exec_failed(void) {
    /* The exec failed and this image goes on: track it again, in a new dump (the finished one
     * is renamed "<name>.exec<k>" by open_dump, as it belongs to this same pid). */
    mp_thread_t *t = &mp_thread;
    t->guard++;
    mp_store_relaxed(&mp_abandon, 0);
    mp_state_set(mp_state_off);
    if (start_writer(0) == 0) {
        mp_state_set(mp_state_running);
    } else {
        mp_store_release(&mp_abandon, 1);
        mp_state_set(mp_state_disabled);
    }
    t->guard--;
}
