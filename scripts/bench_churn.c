/* bench_churn.c - the allocation-churn workload of scripts/bench.
 *
 *   bench-churn [THREADS [PAIRS]]     defaults: 2 threads, 10000000 malloc/free pairs in all
 *
 * Each thread keeps a window of 256 live blocks and, PAIRS/THREADS times, frees the oldest and
 * allocates a new one of a size between 16 and 1039 bytes (a fixed pseudo-random sequence), so
 * the allocator's fast paths are exercised the way a real program's are. Everything is freed
 * before exit. It prints one line: the pairs made and a checksum (so the work cannot be
 * optimised away). Compiled with -O2 -fno-builtin.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 256

typedef struct job_s {
    pthread_t thread;
    uint64_t pairs;
    uint64_t seed;
    uint64_t sum;
} job_t;

static void *
churn(void *arg) {
    job_t *j = arg;
    unsigned char *live[WINDOW] = {0};
    uint64_t x = j->seed, sum = 0;
    for (uint64_t i = 0; i < j->pairs; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        size_t size = 16 + (size_t)(x & 1023);
        unsigned k = (unsigned)(i % WINDOW);
        free(live[k]);
        live[k] = malloc(size);
        if (!live[k]) abort();
        live[k][0] = (unsigned char)i;
        sum += live[k][0] + size;
    }
    for (unsigned k = 0; k < WINDOW; k++) free(live[k]);
    j->sum = sum;
    return NULL;
}

int
main(int argc, char **argv) {
    int nthreads = argc > 1 ? atoi(argv[1]) : 2;
    uint64_t pairs = argc > 2 ? strtoull(argv[2], NULL, 10) : 10000000;
    if (nthreads < 1 || nthreads > 256) {
        fprintf(stderr, "usage: bench-churn [THREADS [PAIRS]]\n");
        return 2;
    }
    job_t *jobs = calloc((size_t)nthreads, sizeof *jobs);
    if (!jobs) return 1;
    for (int i = 0; i < nthreads; i++) {
        jobs[i].pairs = pairs / (uint64_t)nthreads + ((uint64_t)i < pairs % (uint64_t)nthreads);
        jobs[i].seed = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
        if (pthread_create(&jobs[i].thread, NULL, churn, &jobs[i]) != 0) return 1;
    }
    uint64_t sum = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(jobs[i].thread, NULL);
        sum += jobs[i].sum;
    }
    printf("pairs=%llu checksum=%llu\n", (unsigned long long)pairs, (unsigned long long)sum);
    free(jobs);
    return 0;
}
