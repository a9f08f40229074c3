/* capture.c - building events and pushing them into per-thread rings (see capture.h). */
#include "capture.h"

#include <pthread.h>

#include "atomics.h"
#include "format.h"
#include "stacks.h"
#include "sys.h"
#include "unwind.h"
#include "config.h"

__thread mp_thread_t mp_thread __attribute__((tls_model("initial-exec")));

int mp_state;
int mp_abandon;
uint64_t mp_seq;
int mp_native;
int mp_depth = 64;
uint64_t mp_stacks_dropped;

static pthread_key_t exit_key;

/* Thread exit: give the ring back for reuse. Events this thread still makes (later TLS
 * destructors free memory) go through a claim-push-release per event (mp_thread_exited). */
static void
on_thread_exit(void *arg) {
    (void)arg;
    mp_thread_t *t = &mp_thread;
    t->guard++;
    if (t->status == mp_thread_active) {
        mp_ring_release(t->ring);
        t->ring = NULL;
    }
    t->status = mp_thread_exited;
    t->guard--;
}

int
mp_capture_init(int native, int depth) {
    mp_native = native;
    mp_depth = depth;
    /* Created at start-up while few keys exist, so the key's index is below 32 and
     * pthread_setspecific stores into the thread descriptor without allocating. */
    if (pthread_key_create(&exit_key, on_thread_exit) != 0) return -1;
    if (native) mp_unwind_init();
    return 0;
}

static mp_ring_t *
take_ring(mp_thread_t *t) {
    mp_ring_t *r = mp_ring_claim();
    if (!r) return NULL;
    mp_rec_t own = {0, 0, (uint64_t)mp_sys_gettid(), 0, mp_rec_owner, 0, 0};
    if (mp_ring_push(r, &own, &mp_abandon) != 0) {
        mp_ring_release(r);
        return NULL;
    }
    if (t->status == mp_thread_new) {
        t->ring = r;
        t->status = mp_thread_active;
        pthread_setspecific(exit_key, (void *)1); /* arms on_thread_exit */
    }
    return r;
}

static void
push(mp_thread_t *t, const mp_rec_t *rec) {
    mp_ring_t *r = t->ring;
    if (MP_UNLIKELY(t->status != mp_thread_active)) {
        r = take_ring(t);
        if (!r) return;
    }
    mp_ring_push(r, rec, &mp_abandon);
    if (MP_UNLIKELY(t->status == mp_thread_exited)) mp_ring_release(r);
}

void
mp_capture_event(mp_thread_t *t, unsigned kind, unsigned allocator, const void *ptr, size_t size) {
    mp_rec_t rec;
    rec.stack = 0;
    if (mp_native && kind == MP_EV_ALLOC) {
        /* Native stacks are taken for allocations only: they are what leak and peak reports
         * attribute, and unwinding every free would double the cost. */
        uint64_t frames[MP_DEPTH_MAX];
        uint32_t n = mp_unwind_capture(frames, (uint32_t)mp_depth);
        if (n > 0) {
            rec.stack = mp_stacks_intern(frames, n);
            if (rec.stack == 0) mp_fetch_add_relaxed(&mp_stacks_dropped, 1);
        }
    }
    /* Relaxed is enough: the order that matters is between the RMWs on this one counter,
     * and coherence orders them consistently with happens-before (FORMAT.md 6). */
    rec.seq = mp_fetch_add_relaxed(&mp_seq, 1);
    rec.ptr = (uint64_t)(uintptr_t)ptr;
    rec.size = size;
    rec.type = mp_rec_event;
    rec.head = MP_EV_HEAD(kind, allocator);
    rec.unused = 0;
    push(t, &rec);
}

void
mp_capture_marker(mp_thread_t *t, unsigned kind) {
    mp_rec_t rec = {0, mp_sys_mono_ns(), kind, 0, mp_rec_marker, 0, 0};
    rec.seq = mp_fetch_add_relaxed(&mp_seq, 1);
    push(t, &rec);
}

void
mp_capture_after_fork_child(mp_thread_t *t) {
    mp_ring_reset_after_fork(t->status == mp_thread_active ? t->ring : NULL);
    if (t->status == mp_thread_active) {
        /* The child is a new thread id on a fresh dump: announce it again. */
        mp_rec_t own = {0, 0, (uint64_t)mp_sys_gettid(), 0, mp_rec_owner, 0, 0};
        mp_ring_push(t->ring, &own, &mp_abandon);
    }
}
