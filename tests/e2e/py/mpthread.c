/* mpthread.c - a tiny shared library that run_py.py's py_threads case calls through ctypes
 * (built by tests/e2e/e2e.cmake as libe2e-pythread.so).
 *
 * mpthread_malloc_in_thread(n) starts a native pthread that mallocs n bytes and keeps them (never
 * freed), and joins it. The thread runs no Python: its allocation must be charged to the Python
 * line that called this function.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

int mpthread_malloc_in_thread(size_t n);

static void *volatile mpthread_block;

void *mpthread_body(void *arg);

void *
mpthread_body(void *arg) {
    size_t n = (size_t)arg;
    void *p = malloc(n);
    if (p) memset(p, 3, n);
    mpthread_block = p;
    return p;
}

int
mpthread_malloc_in_thread(size_t n) {
    pthread_t t;
    void *p = NULL;
    if (pthread_create(&t, NULL, mpthread_body, (void *)n) != 0) return -1;
    if (pthread_join(t, &p) != 0) return -1;
    return p ? 0 : -1;
}
