/* sys.h - every contact of the preloaded library with the OS, as raw system calls.
 *
 * Contract: nothing here allocates through malloc, takes a lock, or touches stdio, so each
 * function may be called from inside an interposed allocation call and from the writer thread.
 * All are async-signal-safe. Errors come back as -errno (never through errno, which a hook must
 * leave as the host program set it). mp_sys_write is a mutable seam: tests swap it to inject
 * short writes and ENOSPC (after jemalloc's JET_MUTABLE).
 */
#ifndef MP_SYS_H
#define MP_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* write(2) of the whole buffer, retrying short writes and EINTR; 0 or -errno. */
extern int (*mp_sys_write_all)(int fd, const void *buf, size_t n);
int mp_sys_write_all_real(int fd, const void *buf, size_t n);

int mp_sys_open(const char *path, int flags, int mode); /* fd or -errno */
int mp_sys_close(int fd);
/* Identity of the file open at fd (st_dev, st_ino): 0, or -errno (a closed fd: -EBADF). */
int mp_sys_file_id(int fd, uint64_t *dev, uint64_t *ino);
int mp_sys_rename(const char *from, const char *to); /* 0 or -errno */
int mp_sys_exists(const char *path);                 /* 1 if path names an existing file */
int mp_sys_unlink(const char *path);                 /* 0 or -errno */
/* Whether path itself (a symlink not followed) is a regular file: 1, 0, or -errno. */
int mp_sys_is_regular_nofollow(const char *path);
/* Whether path (symlinks followed) names something that is not a regular file or a directory: a
 * device such as /dev/null, a FIFO or a socket. 1, 0, or -errno (it cannot be looked at). */
int mp_sys_is_special(const char *path);
/* Open path for writing (O_WRONLY | flags) without blocking on a FIFO that has no reader
 * (-ENXIO then), the descriptor made blocking again for the writer. fd or -errno. */
int mp_sys_open_nowait(const char *path, int flags);
/* If fd is a FIFO, take an exclusive flock(2) on it without waiting, held for as long as fd's
 * open file description lives (fork children share it): -EWOULDBLOCK when another description
 * holds it, that is, another process streams into the same FIFO. 0 otherwise, also where the
 * file is not a FIFO or cannot be locked at all. */
int mp_sys_claim_fifo(int fd);
ssize_t mp_sys_pread(int fd, void *buf, size_t n, off_t off); /* bytes or -errno */
/* Read a whole small file (e.g. /proc/self/maps) into buf; returns bytes (< cap) or -errno. */
ssize_t mp_sys_read_file(const char *path, char *buf, size_t cap);
ssize_t mp_sys_readlink(const char *path, char *buf, size_t cap); /* NUL-terminated */
void *mp_sys_map(size_t n); /* private anonymous RW, NORESERVE; NULL on failure */
/* Ask for transparent huge pages on the 2 MiB-aligned part of [p, p + n): for memory that is
 * filled from its start and kept (the arenas), one fault per 2 MiB rather than per 4 KiB. Advice
 * only: where transparent huge pages are off it fails or does nothing. (Memory written at
 * random is not advised: levels.h keeps hash tables small instead, and capture.c's memo small,
 * since a fresh huge page can cost milliseconds to zero in a VM.) */
void mp_sys_advise_huge(void *p, size_t n);
void mp_sys_unmap(void *p, size_t n);
/* The calling thread's thread pointer (x86-64: %fs base, whose first word points to itself). */
static inline uintptr_t
mp_sys_thread_pointer(void) {
    uintptr_t tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp));
    return tp;
}
int mp_sys_getpid(void);
int mp_sys_getppid(void);
int mp_sys_alive(int pid); /* 1 if a process with this pid exists (kill(pid, 0)) */
int mp_sys_gettid(void);
uint64_t mp_sys_mono_ns(void); /* CLOCK_MONOTONIC */
uint64_t mp_sys_real_ns(void); /* CLOCK_REALTIME */
void mp_sys_sleep_ns(uint64_t ns);
/* futex wait while *addr == val, at most timeout_ns (0 = forever); futex wake n waiters. */
void mp_sys_futex_wait(int *addr, int val, uint64_t timeout_ns);
void mp_sys_futex_wake(int *addr, int n);
/* One line to stderr: "memprof: <msg>\n"; used for the few messages the library prints. */
void mp_sys_log(const char *msg);
void mp_sys_log2(const char *a, const char *b); /* "memprof: <a><b>\n" */

/* Tiny string helpers that never allocate (the libc ones are fine but these also format). */
size_t mp_str_copy(char *dst, size_t cap, const char *src); /* truncates; returns length copied */
size_t mp_str_u64(char *dst, uint64_t v);                   /* decimal, returns length */
/* The decimal number at *s (digits only, no sign or space), *s moved past its digits; 0 when
 * there are none (*s unmoved), UINT64_MAX when it does not fit. For /proc files and version
 * strings, and the environment's numbers (config.c). */
uint64_t mp_str_parse_u64(const char **s);

#endif
