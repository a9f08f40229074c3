/* sys.c - raw system calls for the preloaded library (see sys.h for the contract).
 *
 * glibc's wrappers for these calls do not allocate either, but they set errno, and an
 * interposed malloc must not change errno on success paths of the host program. Going through
 * syscall(2) directly keeps errno untouched (the syscall() wrapper itself sets errno only on
 * failure, so failures below save and restore it).
 */
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long
sys(long nr, long a, long b, long c, long d, long e, long f) {
    int saved = errno;
    long r = syscall(nr, a, b, c, d, e, f);
    if (r < 0) {
        r = -errno;
        errno = saved;
    }
    return r;
}

int
mp_sys_write_all_real(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        long r = sys(SYS_write, fd, (long)p, (long)n, 0, 0, 0);
        if (r == -EINTR) continue;
        if (r < 0) return (int)r;
        if (r == 0) return -EIO;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int (*mp_sys_write_all)(int fd, const void *buf, size_t n) = mp_sys_write_all_real;

int
mp_sys_open(const char *path, int flags, int mode) {
    return (int)sys(SYS_openat, AT_FDCWD, (long)path, flags | O_CLOEXEC, mode, 0, 0);
}

/* The file type and mode of path (at_flags: 0 follows a symlink, AT_SYMLINK_NOFOLLOW does not)
 * in *mode: 0, or -errno. */
static int
path_mode(const char *path, int at_flags, mode_t *mode) {
    struct stat st;
    long r = sys(SYS_newfstatat, AT_FDCWD, (long)path, (long)&st, at_flags, 0, 0);
    if (r < 0) return (int)r;
    *mode = st.st_mode;
    return 0;
}

int
mp_sys_is_special(const char *path) {
    mode_t m;
    int r = path_mode(path, 0, &m);
    return r < 0 ? r : !S_ISREG(m) && !S_ISDIR(m);
}

int
mp_sys_open_nowait(const char *path, int flags) {
    int fd = mp_sys_open(path, O_WRONLY | O_NONBLOCK | flags, 0);
    if (fd < 0) return fd;
    long fl = sys(SYS_fcntl, fd, F_GETFL, 0, 0, 0, 0);
    if (fl < 0 || sys(SYS_fcntl, fd, F_SETFL, fl & ~O_NONBLOCK, 0, 0, 0) < 0) {
        mp_sys_close(fd);
        return fl < 0 ? (int)fl : -EIO;
    }
    return fd;
}

int
mp_sys_file_id(int fd, uint64_t *dev, uint64_t *ino) {
    struct stat st;
    long r = sys(SYS_fstat, fd, (long)&st, 0, 0, 0, 0);
    if (r < 0) return (int)r;
    *dev = (uint64_t)st.st_dev;
    *ino = (uint64_t)st.st_ino;
    return 0;
}

int
mp_sys_close(int fd) {
    return (int)sys(SYS_close, fd, 0, 0, 0, 0, 0);
}

int
mp_sys_claim_fifo(int fd) {
    struct stat st;
    if (sys(SYS_fstat, fd, (long)&st, 0, 0, 0, 0) < 0 || !S_ISFIFO(st.st_mode)) return 0;
    long r = sys(SYS_flock, fd, LOCK_EX | LOCK_NB, 0, 0, 0, 0);
    return r == -EWOULDBLOCK ? -EWOULDBLOCK : 0;
}

ssize_t
mp_sys_pread(int fd, void *buf, size_t n, off_t off) {
    long r;
    do r = sys(SYS_pread64, fd, (long)buf, (long)n, (long)off, 0, 0);
    while (r == -EINTR);
    return r;
}

ssize_t
mp_sys_read_file(const char *path, char *buf, size_t cap) {
    int fd = mp_sys_open(path, O_RDONLY, 0);
    if (fd < 0) return fd;
    size_t got = 0;
    while (got + 1 < cap) {
        long r = sys(SYS_read, fd, (long)(buf + got), (long)(cap - 1 - got), 0, 0, 0);
        if (r == -EINTR) continue;
        if (r < 0) {
            mp_sys_close(fd);
            return r;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    buf[got] = 0;
    mp_sys_close(fd);
    return (ssize_t)got;
}

ssize_t
mp_sys_readlink(const char *path, char *buf, size_t cap) {
    long r = sys(SYS_readlinkat, AT_FDCWD, (long)path, (long)buf, (long)(cap - 1), 0, 0);
    buf[r < 0 ? 0 : r] = 0;
    return r;
}

void *
mp_sys_map(size_t n) {
    long r = sys(SYS_mmap, 0, (long)n, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return r < 0 ? NULL : (void *)r;
}

/* A transparent huge page (x86-64): one covers only a range aligned to its size. */
#define HUGE_PAGE ((uintptr_t)2 << 20)
static inline uintptr_t
huge_up(uintptr_t a) {
    return (a + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
}

void
mp_sys_advise_huge(void *p, size_t n) {
    uintptr_t a = huge_up((uintptr_t)p), e = ((uintptr_t)p + n) & ~(HUGE_PAGE - 1);
    if (e > a) sys(SYS_madvise, (long)a, (long)(e - a), MADV_HUGEPAGE, 0, 0, 0);
}

void
mp_sys_unmap(void *p, size_t n) {
    if (p) sys(SYS_munmap, (long)p, (long)n, 0, 0, 0, 0);
}

int
mp_sys_getpid(void) {
    return (int)sys(SYS_getpid, 0, 0, 0, 0, 0, 0);
}

int
mp_sys_getppid(void) {
    return (int)sys(SYS_getppid, 0, 0, 0, 0, 0, 0);
}

int
mp_sys_gettid(void) {
    return (int)sys(SYS_gettid, 0, 0, 0, 0, 0, 0);
}

static uint64_t
clock_ns(clockid_t id) {
    /* clock_gettime goes through the vDSO: no system call, no allocation, no errno change. */
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t
mp_sys_mono_ns(void) {
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t
mp_sys_real_ns(void) {
    return clock_ns(CLOCK_REALTIME);
}

void
mp_sys_sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    sys(SYS_nanosleep, (long)&ts, 0, 0, 0, 0, 0);
}

void
mp_sys_futex_wait(int *addr, int val, uint64_t timeout_ns) {
    struct timespec ts = {(time_t)(timeout_ns / 1000000000ull), (long)(timeout_ns % 1000000000ull)};
    sys(SYS_futex, (long)addr, FUTEX_WAIT_PRIVATE, val, timeout_ns ? (long)&ts : 0, 0, 0);
}

void
mp_sys_futex_wake(int *addr, int n) {
    sys(SYS_futex, (long)addr, FUTEX_WAKE_PRIVATE, n, 0, 0, 0);
}

void
mp_sys_log2(const char *a, const char *b) {
    char line[1024];
    size_t n = mp_str_copy(line, sizeof line, "memprof: ");
    n += mp_str_copy(line + n, sizeof line - n, a);
    if (b) n += mp_str_copy(line + n, sizeof line - n, b);
    if (n > sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    mp_sys_write_all_real(2, line, n);
}

void
mp_sys_log(const char *msg) {
    mp_sys_log2(msg, NULL);
}

size_t
mp_str_copy(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (cap == 0) return n;
    size_t m = n < cap - 1 ? n : cap - 1;
    memcpy(dst, src, m);
    dst[m] = 0;
    return m;
}

size_t
mp_str_u64(char *dst, uint64_t v) {
    char tmp[24];
    size_t n = 0;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (size_t i = 0; i < n; i++) dst[i] = tmp[n - 1 - i];
    dst[n] = 0;
    return n;
}

uint64_t
mp_str_parse_u64(const char **s) {
    uint64_t v = 0;
    const char *p = *s;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    *s = p;
    return v;
}

int
mp_sys_alive(int pid) {
    long r = sys(SYS_kill, pid, 0, 0, 0, 0, 0);
    return r == 0 || r == -EPERM;
}

int
mp_sys_rename(const char *from, const char *to) {
    return (int)sys(SYS_renameat, AT_FDCWD, (long)from, AT_FDCWD, (long)to, 0, 0);
}

int
mp_sys_unlink(const char *path) {
    return (int)sys(SYS_unlinkat, AT_FDCWD, (long)path, 0, 0, 0, 0);
}

int
mp_sys_is_regular_nofollow(const char *path) {
    mode_t m;
    int r = path_mode(path, AT_SYMLINK_NOFOLLOW, &m);
    return r < 0 ? r : S_ISREG(m) != 0;
}

int
mp_sys_exists(const char *path) {
    return sys(SYS_faccessat, AT_FDCWD, (long)path, F_OK, 0, 0, 0) == 0;
}
