/* killed.c - a process that is killed with SIGKILL while its blocks are live.
 *
 *   killed [NBLOCKS]     default 1000
 *
 * Allocates NBLOCKS blocks of known sizes (and frees every third one), prints its ledger, then
 * "ready", and sleeps until it is killed. The test waits for "ready", waits longer than the
 * dump flush period, sends SIGKILL, and checks that the reporter reads the dump (no trailer) as
 * incomplete but with every event made before "ready".
 */
#include <stdlib.h>
#include <time.h>

#include "e2e.h"

static e2e_ledger_t L;

static E2E_NOINLINE void
leak_before_kill(unsigned n) {
    void *prev = NULL;
    for (unsigned i = 0; i < n; i++) {
        size_t size = 24 + (i % 97) * 8;
        void *p = malloc(size);
        if (!p) _exit(3);
        e2e_alloc(&L, size);
        if (i % 3 == 2) {
            free(prev); /* the block made just before: 24 + ((i - 1) % 97) * 8 bytes */
            e2e_free(&L, 24 + ((i - 1) % 97) * 8);
        }
        prev = p;
        e2e_keep(p);
    }
}

int
main(int argc, char **argv) {
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 1000;
    leak_before_kill(n);
    e2e_leak("leak_before_kill", L.live_bytes, L.live_blocks);
    e2e_expect(&L, "main");
    e2e_say("ready");
    for (;;) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
}
