/* forkexec.c - fork, exec, posix_spawn, _exit and abort: one dump per process, each exact.
 *
 *   forkexec                 the parent: runs every child below in turn, then leaks and exits
 *   forkexec exec-child      what the exec'd and the spawned children run
 *
 * Every process prints its own ledger ("expect pid=... role=...", e2e.h) counting only what it
 * allocated itself after it started (fork children: after the fork), so the test can match each
 * dump to its process by pid and role. Children:
 *   fork-exit    leaks 2 x 700 bytes, frees one block it inherited from the parent (an unknown
 *                free for its dump), returns through exit()
 *   fork-_exit   leaks 1 x 1234 bytes, ends with _exit() (no atexit, no destructors)
 *   fork-abort   leaks 5 x 50 bytes, ends with abort() (SIGABRT, no core file)
 *   exec         fork + execv(/proc/self/exe, exec-child): leaks 3 x 321 bytes, returns from main
 *   spawn        posix_spawn(/proc/self/exe, exec-child): the same program as exec
 * The parent leaks 4 x 4444 bytes. No stdio anywhere (e2e.h).
 */
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "e2e.h"

extern char **environ;

static e2e_ledger_t L;

static void
die(const char *msg) {
    e2e_say(msg);
    _exit(3);
}

static void
leak(const char *fn, unsigned n, size_t size) {
    for (unsigned i = 0; i < n; i++) {
        void *p = malloc(size);
        if (!p) die("malloc failed");
        e2e_alloc(&L, size);
        e2e_keep(p);
    }
    e2e_leak(fn, (uint64_t)n * size, n);
}

/* A malloc/free pair, so that no dump has only leaks. */
static void
churn(size_t size) {
    void *p = malloc(size);
    if (!p) die("malloc failed");
    e2e_alloc(&L, size);
    free(p);
    e2e_free(&L, size);
}

static E2E_NOINLINE void
leak_parent(void) {
    leak("leak_parent", 4, 4444);
}

static E2E_NOINLINE void
leak_fork_exit(void) {
    leak("leak_fork_exit", 2, 700);
}

static E2E_NOINLINE void
leak_fork__exit(void) {
    leak("leak_fork__exit", 1, 1234);
}

static E2E_NOINLINE void
leak_fork_abort(void) {
    leak("leak_fork_abort", 5, 50);
}

static E2E_NOINLINE void
leak_exec_child(void) {
    leak("leak_exec_child", 3, 321);
}

/* The child's dump starts empty: its ledger too. */
static void
child_start(void) {
    memset(&L, 0, sizeof L);
}

static void
wait_for(pid_t pid, const char *role, int want_signal) {
    int st;
    if (waitpid(pid, &st, 0) != pid) die("waitpid failed");
    if (want_signal ? !(WIFSIGNALED(st) && WTERMSIG(st) == want_signal)
                    : !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        e2e_line_t o = {.len = 0};
        e2e_str(&o, "child ");
        e2e_str(&o, role);
        e2e_kv(&o, "ended badly, status", (uint64_t)st);
        e2e_emit(&o);
        _exit(4);
    }
}

int
main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "exec-child") == 0) {
        churn(64);
        leak_exec_child();
        e2e_expect(&L, argc > 2 ? argv[2] : "exec");
        return 0;
    }

    char *inherited = malloc(2000); /* made before the forks; the fork-exit child frees it */
    if (!inherited) die("malloc failed");
    e2e_alloc(&L, 2000);
    churn(128);

    pid_t pid = fork();
    if (pid < 0) die("fork failed");
    if (pid == 0) {
        child_start();
        free(inherited);
        L.unknown_frees++;
        churn(32);
        leak_fork_exit();
        e2e_expect(&L, "fork-exit");
        exit(0);
    }
    wait_for(pid, "fork-exit", 0);

    pid = fork();
    if (pid < 0) die("fork failed");
    if (pid == 0) {
        child_start();
        leak_fork__exit();
        e2e_expect(&L, "fork-_exit");
        _exit(0);
    }
    wait_for(pid, "fork-_exit", 0);

    pid = fork();
    if (pid < 0) die("fork failed");
    if (pid == 0) {
        child_start();
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        leak_fork_abort();
        e2e_expect(&L, "fork-abort");
        abort();
    }
    wait_for(pid, "fork-abort", SIGABRT);

    pid = fork();
    if (pid < 0) die("fork failed");
    if (pid == 0) {
        char *args[] = {argv[0], "exec-child", "exec", NULL};
        execv("/proc/self/exe", args);
        die("execv failed");
    }
    wait_for(pid, "exec", 0);

    char *sargs[] = {argv[0], "exec-child", "spawn", NULL};
    if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, sargs, environ) != 0)
        die("posix_spawn failed");
    wait_for(pid, "spawn", 0);

    leak_parent();
    free(inherited);
    e2e_free(&L, 2000);
    e2e_expect(&L, "parent");
    return 0;
}
