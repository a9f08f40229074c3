/* thread_start.c - pthread_create: a new thread inherits its creator's Python stack.
 *
 * A thread started by C code (a C extension's worker pool, a library's I/O thread) runs no
 * Python frames, so its allocations would have no Python stack. DESIGN.md charges them to the
 * Python line that started the thread: the creator's stack is interned here and the new thread
 * uses it whenever its own walk is empty (capture.c). Python threads get the same until their
 * first frame runs (their thread state is set up before that).
 *
 * Every thread the program starts also counts in memprof.c's live threads (which finish the dump
 * when the program's last thread ends): counted here before it is started, and its end noted by
 * a key destructor it sets before it runs the program's start routine.
 *
 * The small start record is allocated with the real malloc under the guard (untracked) and freed
 * by the new thread before it runs the program's start routine.
 */
#include <pthread.h>

#include "capture.h"
#include "hooks.h"
#include "pyframes.h"

#define MP_EXPORT __attribute__((visibility("default")))

typedef struct start_s {
    void *(*start)(void *);
    void *arg;
    const uint64_t *frames;
    uint32_t n, id;
} start_t;

static void *
trampoline(void *p) {
    start_t s = *(start_t *)p;
    mp_thread_t *t = &mp_thread;
    t->guard++;
    mp_real.free(p);
    mp_lifecycle_thread_started();
    t->guard--;
    t->inherit = s.frames;
    t->inherit_n = s.n;
    t->inherit_id = s.id;
    return s.start(s.arg);
}

MP_EXPORT int
pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*start)(void *), void *arg) {
    mp_interpose_resolve();
    mp_thread_t *t = &mp_thread;
    /* memprof's own threads (the writer) are started with the guard raised: not the program's. */
    if (t->guard) return mp_real.pthread_create(th, attr, start, arg);
    int walk = mp_tracking(t) && mp_pyenv.walk;
    t->guard++;
    const uint64_t *frames = NULL;
    uint32_t n = 0, id = walk ? mp_capture_python_stack(&frames, &n) : 0;
    if (walk && !id && t->inherit_n) {
        frames = t->inherit; /* a native thread starting another: pass its inheritance on */
        n = t->inherit_n;
        id = t->inherit_id;
    }
    start_t *s = mp_real.malloc(sizeof *s);
    t->guard--;
    /* The real call unguarded: what it allocates for the thread (glibc: the DTV, freed by
     * pthread_join) is the program's, as without the library. */
    if (!s) return mp_real.pthread_create(th, attr, start, arg); /* not counted: nor its end */
    *s = (start_t){start, arg, frames, n, id};
    mp_lifecycle_thread_counted(1); /* before it starts: the count never drops to 0 early */
    int rc = mp_real.pthread_create(th, attr, trampoline, s);
    if (rc != 0) {
        t->guard++;
        mp_real.free(s);
        t->guard--;
        mp_lifecycle_thread_counted(-1);
    }
    return rc;
}
