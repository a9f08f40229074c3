/* capture.c - building events and pushing them into per-thread rings (see capture.h). */
#include "capture.h"

#include <pthread.h>
#include <string.h>

#include "atomics.h"
#include "format.h"
#include "stacks.h"
#include "sys.h"
#include "unwind.h"
#include "config.h"
#include "python.h"
#include "pyframes.h"

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

/* The ring this thread pushes into: its own, or (a thread past its exit destructor) one
 * claimed for this one event, released by push(). */
static inline mp_ring_t *
ring_of(mp_thread_t *t) {
    return MP_LIKELY(t->status == mp_thread_active) ? t->ring : take_ring(t);
}

static void
push(mp_thread_t *t, mp_ring_t *r, const mp_rec_t *rec) {
    mp_ring_push(r, rec, &mp_abandon);
    if (MP_UNLIKELY(t->status == mp_thread_exited)) mp_ring_release(r);
}

/* Per-thread memo of recent Python walks: equal raw walks give equal stacks (pyframes.h), so
 * a hit skips the code lookups and the interning. Events very often repeat one of a few recent
 * stacks (a loop body), hence a small direct-mapped set keyed by the innermost frame. It lives
 * in the ring's scratch mapping: rings are owned by one thread at a time and the memo's content
 * (code object -> stack id) is valid process-wide, so it survives a change of owner. */
#define MEMO_WAYS 64u
typedef struct pymemo_s {
    uint32_t n;  /* raw frames; 0 = empty */
    uint32_t nf; /* resolved frames */
    uint32_t id; /* interned Python-only stack */
    uint64_t raw[2 * MP_PY_DEPTH];
    uint64_t frames[MP_PY_DEPTH];
    uint8_t ends[MP_PY_DEPTH];
} pymemo_t;

static pymemo_t *
memo_slot(mp_ring_t *r, const uint64_t *raw, uint32_t n) {
    if (MP_UNLIKELY(!r->scratch)) {
        r->scratch = mp_sys_map(MEMO_WAYS * sizeof(pymemo_t));
        if (!r->scratch) return NULL;
    }
    uint64_t h = (raw[0] >> 4) ^ (raw[1] * 0x9e3779b97f4a7c15ull) ^ n;
    h ^= h >> 29;
    return (pymemo_t *)r->scratch + (h & (MEMO_WAYS - 1));
}

static inline int
same_raw(const uint64_t *a, const uint64_t *b, uint32_t n) {
    for (uint32_t i = 0; i < 2 * n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* The calling thread's Python frames, resolved, in a memo slot of ring r (owned by the caller);
 * NULL when it runs no Python. */
static const pymemo_t *
python_frames(mp_ring_t *r) {
    uint64_t raw[2 * MP_PY_DEPTH];
    uint32_t n = mp_pyframes_walk_raw(raw, MP_PY_DEPTH);
    if (n == 0) return NULL;
    pymemo_t *m = memo_slot(r, raw, n);
    if (!m) return NULL;
    if (n == m->n && same_raw(raw, m->raw, n)) return m;
    if (MP_UNLIKELY(!mp_load_relaxed(&mp_python_running))) {
        mp_store_relaxed(&mp_python_running, 1);
        if (mp_ring_kick) mp_ring_kick(); /* the writer schedules the pending call */
    }
    m->n = 0;
    m->nf = mp_pyframes_resolve(raw, n, m->frames, m->ends);
    if (m->nf == 0) return NULL;
    m->id = mp_stacks_intern(m->frames, m->nf);
    if (m->id == 0) return NULL;
    memcpy(m->raw, raw, (size_t)n * 16);
    m->n = n;
    return m;
}

static inline int
in_eval_loop(uint64_t pc) {
    return pc - 1 >= mp_pyenv.eval_lo && pc - 1 < mp_pyenv.eval_hi;
}

/* The stack of one event: Python frames (if CPython is walked), native frames (MEMPROF_NATIVE,
 * allocations only: they are what leak and peak reports attribute, and unwinding every free
 * would double the cost), or both spliced at the eval-loop frames (FORMAT.md 5.4). */
static uint32_t
event_stack(mp_thread_t *t, mp_ring_t *r, unsigned kind) {
    const uint64_t *pyf = NULL;
    const uint8_t *ends = NULL;
    uint8_t no_ends[MP_PY_DEPTH];
    uint32_t np = 0, pyid = 0;
    if (mp_load_relaxed(&mp_pyenv.walk)) {
        const pymemo_t *m = python_frames(r);
        if (m) {
            pyf = m->frames;
            ends = m->ends;
            np = m->nf;
            pyid = m->id;
        } else if (t->inherit_n) {
            pyf = t->inherit;
            np = t->inherit_n;
            memset(no_ends, 0, np);
            ends = no_ends;
        }
    }
    uint32_t id;
    if (mp_native && kind == MP_EV_ALLOC) {
        uint64_t frames[MP_DEPTH_MAX + MP_PY_DEPTH];
        uint32_t n = mp_unwind_capture(frames, (uint32_t)mp_depth);
        if (np) {
            /* Splice: after each eval-loop frame, the Python frames it was running. */
            uint64_t nat[MP_DEPTH_MAX];
            memcpy(nat, frames, (size_t)n * 8);
            uint32_t k = 0, j = 0;
            for (uint32_t i = 0; i < n; i++) {
                frames[k++] = nat[i];
                if (!mp_pyenv.eval_hi || !in_eval_loop(nat[i])) continue;
                for (int end = 0; j < np && !end; j++) {
                    end = ends[j];
                    frames[k++] = pyf[j];
                }
            }
            while (j < np) frames[k++] = pyf[j++];
            n = k;
        }
        if (n == 0) return 0;
        id = mp_stacks_intern(frames, n);
    } else {
        if (np == 0) return 0;
        id = pyid ? pyid : mp_stacks_intern(pyf, np);
    }
    if (id == 0) mp_fetch_add_relaxed(&mp_stacks_dropped, 1);
    return id;
}

uint32_t
mp_capture_python_stack(const uint64_t **frames, uint32_t *n) {
    *n = 0;
    if (!mp_load_relaxed(&mp_pyenv.walk)) return 0;
    mp_thread_t *t = &mp_thread;
    if (t->status != mp_thread_active) return 0;
    const pymemo_t *m = python_frames(t->ring);
    if (!m) return 0;
    /* The memo changes with the next event: hand out the stack table's own copy. */
    uint32_t id = mp_stacks_intern_ref(m->frames, m->nf, frames);
    if (id) *n = m->nf;
    return id;
}

void
mp_capture_event(mp_thread_t *t, unsigned kind, unsigned allocator, const void *ptr, size_t size) {
    mp_rec_t rec;
    if (MP_UNLIKELY(t->frees_only) && kind == MP_EV_ALLOC) return;
    if (MP_UNLIKELY(mp_load_relaxed(&mp_python_watch))) mp_python_recheck();
    mp_ring_t *r = ring_of(t);
    if (!r) return;
    rec.stack = (mp_native || mp_pyenv.walk) ? event_stack(t, r, kind) : 0;
    /* Relaxed is enough: the order that matters is between the RMWs on this one counter,
     * and coherence orders them consistently with happens-before (FORMAT.md 6). */
    rec.seq = mp_fetch_add_relaxed(&mp_seq, 1);
    rec.ptr = (uint64_t)(uintptr_t)ptr;
    rec.size = size;
    rec.type = mp_rec_event;
    rec.head = MP_EV_HEAD(kind, allocator);
    rec.unused = 0;
    push(t, r, &rec);
}

void
mp_capture_marker(mp_thread_t *t, unsigned kind) {
    mp_rec_t rec = {0, mp_sys_mono_ns(), kind, 0, mp_rec_marker, 0, 0};
    mp_ring_t *r = ring_of(t);
    if (!r) return;
    rec.seq = mp_fetch_add_relaxed(&mp_seq, 1);
    push(t, r, &rec);
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
