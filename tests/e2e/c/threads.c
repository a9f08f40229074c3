/* threads.c - many threads, every block freed by a different thread than the one that made it.
 *
 *   threads [NTHREADS [EVENTS_PER_THREAD]]     defaults: 8 threads, 1000000 events each
 *
 * Thread i allocates EVENTS/2 blocks and hands each to thread i+1 (mod N) through a
 * single-producer single-consumer lock-free queue; thread i+1 checks the block's tag and frees it.
 * So every free happens in another thread than its allocation, and glibc hands addresses freed by
 * one thread to allocations in others: a profiler that orders events per thread instead of by a
 * global sequence sees "overlapping" allocations and "unknown" frees. Thread i also leaks i+1
 * blocks of 1000+i bytes in leak_in_thread().
 *
 * EVENTS_PER_THREAD = 0 is the calibration run: the same threads, no allocation at all, so that
 * whatever the C runtime allocates for the threads themselves can be measured and subtracted.
 * Thread stacks are supplied by the program (mmap), which makes that runtime cost deterministic:
 * glibc then allocates each thread's DTV in pthread_create and frees it in pthread_join, instead
 * of keeping it in its stack cache past exit (which would leave a timing-dependent number of
 * blocks live).
 *
 * No stdio; results are printed with write(2) (e2e.h).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "e2e.h"

#define MAX_THREADS 64
#define QCAP 1024 /* slots per queue, a power of two */
#define STACK_BYTES (256u << 10)

typedef struct queue_s {
    _Alignas(64) atomic_size_t head; /* written by the producer */
    _Alignas(64) atomic_size_t tail; /* written by the consumer */
    void *slot[QCAP];
} queue_t;

typedef struct worker_s {
    int id;
    pthread_t thread;
    queue_t *out; /* this thread produces into out; the next thread consumes it */
    queue_t *in;  /* made by the previous thread */
    e2e_ledger_t ledger;
} worker_t;

static int nthreads = 8;
static uint64_t pairs; /* allocations (and frees) per thread */
static queue_t queues[MAX_THREADS];
static worker_t workers[MAX_THREADS];

static void
die(const char *msg) {
    e2e_say(msg);
    _exit(3);
}

/* Deterministic sizes between 16 and 1024 bytes. */
static size_t
block_size(int thread, uint64_t k) {
    return 16 + (size_t)((k * 2654435761u + (uint64_t)thread * 97u) % 1009u);
}

static int
push(queue_t *q, void *p) {
    size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (h - atomic_load_explicit(&q->tail, memory_order_acquire) == QCAP) return 0;
    q->slot[h & (QCAP - 1)] = p;
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
    return 1;
}

static void *
pop(queue_t *q) {
    size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (t == atomic_load_explicit(&q->head, memory_order_acquire)) return NULL;
    void *p = q->slot[t & (QCAP - 1)];
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    return p;
}

/* Free what the previous thread handed over; returns how many blocks. */
static uint64_t
drain(worker_t *w, uint64_t limit) {
    uint64_t n = 0;
    int from = (w->id + nthreads - 1) % nthreads;
    for (; n < limit; n++) {
        unsigned char *p = pop(w->in);
        if (!p) break;
        size_t size;
        memcpy(&size, p + 8, sizeof size);
        if (p[0] != (unsigned char)from) die("block from the wrong thread");
        free(p);
        e2e_free(&w->ledger, size);
    }
    return n;
}

static E2E_NOINLINE void
leak_in_thread(worker_t *w) {
    for (int k = 0; k <= w->id; k++) {
        void *p = malloc(1000 + (size_t)w->id);
        if (!p) die("malloc failed");
        e2e_alloc(&w->ledger, 1000 + (size_t)w->id);
        e2e_keep(p);
    }
}

static void *
worker_main(void *arg) {
    worker_t *w = arg;
    if (pairs == 0) return NULL; /* calibration: no allocation at all */
    uint64_t freed = 0;
    leak_in_thread(w);
    for (uint64_t k = 0; k < pairs; k++) {
        size_t size = block_size(w->id, k);
        unsigned char *p = malloc(size);
        if (!p) die("malloc failed");
        e2e_alloc(&w->ledger, size);
        p[0] = (unsigned char)w->id; /* the consumer checks where a block came from */
        memcpy(p + 8, &size, sizeof size);
        while (!push(w->out, p)) {
            if (freed < pairs) freed += drain(w, pairs - freed);
            sched_yield();
        }
        if ((k & 15) == 0 && freed < pairs) freed += drain(w, pairs - freed);
    }
    while (freed < pairs) {
        uint64_t n = drain(w, pairs - freed);
        if (n == 0) sched_yield();
        freed += n;
    }
    return NULL;
}

int
main(int argc, char **argv) {
    if (argc > 1) nthreads = atoi(argv[1]);
    uint64_t events = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    if (nthreads < 2 || nthreads > MAX_THREADS) die("usage: threads [2..64 [EVENTS]]");
    pairs = events / 2;

    static void *stacks[MAX_THREADS];
    for (int i = 0; i < nthreads; i++) {
        worker_t *w = &workers[i];
        w->id = i;
        w->out = &queues[i];
        w->in = &queues[(i + nthreads - 1) % nthreads];
        stacks[i] = mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stacks[i] == MAP_FAILED) die("mmap failed");
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstack(&attr, stacks[i], STACK_BYTES);
        if (pthread_create(&workers[i].thread, &attr, worker_main, &workers[i]) != 0)
            die("pthread_create failed");
        pthread_attr_destroy(&attr);
    }
    e2e_ledger_t total = {.no_peak = 1};
    for (int i = 0; i < nthreads; i++) {
        pthread_join(workers[i].thread, NULL);
        e2e_ledger_t *l = &workers[i].ledger;
        total.allocs += l->allocs;
        total.frees += l->frees;
        total.bytes += l->bytes;
        /* Blocks made by i and freed by i+1: live_* per thread can be "negative" (wraps);
         * the sum over all threads is exact. */
        total.live_bytes += l->live_bytes;
        total.live_blocks += l->live_blocks;
    }
    for (int i = 0; i < nthreads && pairs > 0; i++)
        e2e_leak("leak_in_thread", (uint64_t)(i + 1) * (1000 + (uint64_t)i), (uint64_t)i + 1);
    e2e_expect(&total, "main");
    for (int i = 0; i < nthreads; i++) munmap(stacks[i], STACK_BYTES);
    return 0;
}
