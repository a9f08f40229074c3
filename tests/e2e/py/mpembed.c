/* mpembed.c - a program that embeds CPython by loading libpython with dlopen after start-up
 * (run_py.py: py_embed). Usage: mpembed LIBPYTHON SCRIPT. Runs SCRIPT as __main__ between
 * Py_Initialize and Py_FinalizeEx; prints "memprof-embed ok" when both returned. No Python.h:
 * the three functions are looked up by name. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int
main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: mpembed LIBPYTHON SCRIPT\n");
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        fprintf(stderr, "mpembed: %s\n", dlerror());
        return 1;
    }
    void (*init)(void) = (void (*)(void))dlsym(lib, "Py_Initialize");
    int (*run)(const char *) = (int (*)(const char *))dlsym(lib, "PyRun_SimpleString");
    int (*fin)(void) = (int (*)(void))dlsym(lib, "Py_FinalizeEx");
    if (!init || !run || !fin) {
        fprintf(stderr, "mpembed: %s lacks the embedding API\n", argv[1]);
        return 1;
    }
    /* The script's name reaches Python through the environment: no quoting to get wrong. */
    if (setenv("MPEMBED_SCRIPT", argv[2], 1) != 0) return 1;
    init();
    int rc = run("import os, runpy\n"
                 "runpy.run_path(os.environ['MPEMBED_SCRIPT'], run_name='__main__')\n");
    if (fin() != 0 || rc != 0) return 1;
    printf("memprof-embed ok\n");
    return 0;
}
