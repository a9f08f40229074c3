/* hooks.h - the list of interposed functions (an X-macro) and the table of the real ones.
 *
 * X(name, return type, parameter list): every function that interpose.c defines and whose
 * original it resolves with dlsym(RTLD_NEXT). Resolving through RTLD_NEXT rather than glibc's
 * __libc_* aliases chains correctly when another allocator (jemalloc, tcmalloc) is preloaded
 * after memprof.
 */
#ifndef MP_HOOKS_H
#define MP_HOOKS_H

#include <pthread.h>
#include <stddef.h>

#define MP_HOOKED_FUNCTIONS(X)                                                                     \
    X(malloc, void *, (size_t))                                                                    \
    X(free, void, (void *))                                                                        \
    X(calloc, void *, (size_t, size_t))                                                            \
    X(realloc, void *, (void *, size_t))                                                           \
    X(reallocarray, void *, (void *, size_t, size_t))                                              \
    X(posix_memalign, int, (void **, size_t, size_t))                                              \
    X(aligned_alloc, void *, (size_t, size_t))                                                     \
    X(memalign, void *, (size_t, size_t))                                                          \
    X(valloc, void *, (size_t))                                                                    \
    X(pvalloc, void *, (size_t))                                                                   \
    X(_exit, void, (int))                                                                          \
    X(_Exit, void, (int))                                                                          \
    X(abort, void, (void))                                                                         \
    X(pthread_create, int, (pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))       \
    X(execve, int, (const char *, char *const[], char *const[]))                                   \
    X(execv, int, (const char *, char *const[]))                                                   \
    X(execvp, int, (const char *, char *const[]))                                                  \
    X(execvpe, int, (const char *, char *const[], char *const[]))                                  \
    X(fexecve, int, (int, char *const[], char *const[]))

typedef struct mp_real_s {
#define MP_REAL_FIELD(name, ret, params) ret(*name) params;
    MP_HOOKED_FUNCTIONS(MP_REAL_FIELD)
#undef MP_REAL_FIELD
} mp_real_t;

extern mp_real_t mp_real;

/* Resolve mp_real (idempotent, thread-safe). Called by the first hook and the constructor. */
void mp_interpose_resolve(void);

/* memprof.c: flush the dump before the process ends by _exit/_Exit/abort. */
void mp_lifecycle_exit(void);
/* memprof.c: finish the dump before an exec (exec.c). Returns 1 if it did, and then
 * mp_lifecycle_exec_failed must be called if the exec returns (it failed). */
int mp_lifecycle_exec(void);
void mp_lifecycle_exec_failed(void);
/* memprof.c: the program's thread count (thread_start.c): delta 1 before pthread_create starts a
 * thread of the program, -1 if it failed; and, in the new thread, before its start routine. */
void mp_lifecycle_thread_counted(int delta);
void mp_lifecycle_thread_started(void);

#endif
