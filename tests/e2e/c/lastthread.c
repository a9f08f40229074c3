/* lastthread.c - processes whose last thread ends by itself, not by exit (run_e2e.py: case
 * lastthread). glibc then ends the process as exit(0) would, once no thread started with
 * pthread_create is left: the library's writer thread must not keep it alive.
 *
 *   lastthread main   main() starts a thread and calls pthread_exit; the thread leaks
 *                     LEAK_THREAD bytes a little later and returns
 *   lastthread fork   a thread forks; in the child, that thread (the child's only one) starts
 *                     another, which leaks LEAK_THREAD bytes, joins it and calls pthread_exit
 *                     (what CPython's thread bootstrap does); the parent waits for the child and
 *                     exits with its status
 *
 * Both leak LEAK_MAIN bytes in the first thread too. No stdio (e2e.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2e.h"

#define LEAK_MAIN 54321
#define LEAK_THREAD 12345

static void *volatile sink[2];

static void *
leaker(void *arg) {
    (void)arg;
    struct timespec ts = {0, 50 * 1000 * 1000}; /* after the main thread is gone */
    nanosleep(&ts, NULL);
    sink[1] = malloc(LEAK_THREAD);
    return NULL;
}

static void *
forker(void *arg) {
    (void)arg;
    pid_t pid = fork();
    if (pid < 0) _exit(3);
    if (pid > 0) {
        int status = 0;
        if (waitpid(pid, &status, 0) != pid) _exit(4);
        /* The child's status is the parent's: a child that did not exit 0 fails the test. */
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 5);
    }
    e2e_say("child");
    pthread_t t;
    if (pthread_create(&t, NULL, leaker, NULL) != 0) _exit(6);
    pthread_join(t, NULL);
    pthread_exit(NULL);
}

int
main(int argc, char **argv) {
    int fork_mode = argc > 1 && strcmp(argv[1], "fork") == 0;
    sink[0] = malloc(LEAK_MAIN);
    pthread_t t;
    if (pthread_create(&t, NULL, fork_mode ? forker : leaker, NULL) != 0) return 2;
    if (fork_mode) {
        pthread_join(t, NULL); /* the parent's forker calls _exit */
        return 7;
    }
    pthread_exit(NULL);
}
