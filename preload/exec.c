/* exec.c - the exec family: the dump of the image being replaced is finished before the exec.
 *
 * A successful exec replaces the process image without running destructors, so without these
 * hooks the old image's last events (up to one flush interval) and its trailer would be lost.
 * Every entry point is hooked because glibc's execv, execvp, execl... call its internal
 * __execve, not the interposable execve. Before the real call the dump is finished (MARKER exit,
 * TRAILER); if the exec fails, tracking restarts in a new dump and the finished one is kept as
 * "<name>.exec<k>" (memprof.c's naming rules, docs/CONFIG.md).
 *
 * A vfork child (posix_spawn, or vfork + exec) shares the parent's memory: mp_lifecycle_exec
 * does nothing there (the owner pid differs), exactly like the exit paths.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#include "hooks.h"

#define MP_EXPORT __attribute__((visibility("default")))

/* execl* take a NULL-terminated variadic list; more arguments than this is E2BIG here. */
#define ARGS_MAX 4096

/* One hook: finish the dump, exec, and if the exec returned (it failed) track again. errno is
 * the exec's. */
#define EXEC_HOOK(name, params, args)                                                              \
    MP_EXPORT int name params {                                                                    \
        mp_interpose_resolve();                                                                    \
        int restart = mp_lifecycle_exec();                                                         \
        int rc = mp_real.name args;                                                                \
        int e = errno;                                                                             \
        if (restart) mp_lifecycle_exec_failed();                                                   \
        errno = e;                                                                                 \
        return rc;                                                                                 \
    }

EXEC_HOOK(execve, (const char *path, char *const argv[], char *const envp[]), (path, argv, envp))
EXEC_HOOK(execv, (const char *path, char *const argv[]), (path, argv))
EXEC_HOOK(execvp, (const char *file, char *const argv[]), (file, argv))
EXEC_HOOK(execvpe, (const char *file, char *const argv[], char *const envp[]), (file, argv, envp))
EXEC_HOOK(fexecve, (int fd, char *const argv[], char *const envp[]), (fd, argv, envp))

/* Collect a variadic argument list (arg0 first) into argv; envp: also read the pointer after
 * the terminating NULL (execle). Returns 0, or -1 with errno E2BIG. */
static int
collect(char **argv, const char *arg0, va_list ap, char *const **envp) {
    size_t n = 0;
    argv[n++] = (char *)arg0;
    while (arg0 && (argv[n] = va_arg(ap, char *)) != NULL) {
        if (++n == ARGS_MAX) {
            errno = E2BIG;
            return -1;
        }
    }
    if (!arg0) argv[0] = NULL;
    if (envp) *envp = va_arg(ap, char *const *);
    return 0;
}

MP_EXPORT int
execl(const char *path, const char *arg, ...) {
    char *argv[ARGS_MAX];
    va_list ap;
    va_start(ap, arg);
    int rc = collect(argv, arg, ap, NULL);
    va_end(ap);
    return rc == 0 ? execv(path, argv) : -1;
}

MP_EXPORT int
execlp(const char *file, const char *arg, ...) {
    char *argv[ARGS_MAX];
    va_list ap;
    va_start(ap, arg);
    int rc = collect(argv, arg, ap, NULL);
    va_end(ap);
    return rc == 0 ? execvp(file, argv) : -1;
}

MP_EXPORT int
execle(const char *path, const char *arg, ...) {
    char *argv[ARGS_MAX];
    char *const *envp;
    va_list ap;
    va_start(ap, arg);
    int rc = collect(argv, arg, ap, &envp);
    va_end(ap);
    return rc == 0 ? execve(path, argv, envp) : -1;
}
