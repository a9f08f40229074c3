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
#include "keylog.h"
#include "python.h"
#include "pycode.h"
#include "pyframes.h"
#include "pymiss.h"

__thread mp_thread_t mp_thread __attribute__((tls_model("initial-exec")));

/* The deepest stack event_stack_native interns (native frames, the Python frames spliced in) is
 * one readers accept (FORMAT.md 5.4). */
_Static_assert(MP_DEPTH_MAX + MP_PY_DEPTH <= MP_FMT_STACK_MAX, "stacks deeper than readers take");

int mp_state;
int mp_abandon;
mp_seq_line_t mp_seq_line;
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
    mp_thread_refresh(t);
    t->guard--;
}

/* mp_pyfast_off after a change of mp_state to state. */
static void
pyfast_follow(int state) {
    if (state == mp_state_running)
        __atomic_fetch_and(&mp_pyfast, ~(unsigned)mp_pyfast_off, __ATOMIC_SEQ_CST);
    else
        __atomic_fetch_or(&mp_pyfast, mp_pyfast_off, __ATOMIC_SEQ_CST);
}

void
mp_state_set(int state) {
    mp_store_release(&mp_state, state);
    pyfast_follow(state);
}

int
mp_state_cas(int expect, int state) {
    if (!mp_cas_acq_rel(&mp_state, &expect, state)) return 0;
    pyfast_follow(state);
    return 1;
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

/* Post an owner note for the calling thread, unless it already owned r last: a thread past its
 * exit destructor claims a ring per event, mostly the same one, and one note per event would
 * fill the notes and make it wait for the writer. 0, or -1 (tracking is shutting down). */
static int
announce(mp_ring_t *r) {
    uint64_t tid = (uint64_t)mp_sys_gettid();
    if (r->owner_tid == tid) return 0;
    mp_ring_note_t own = {0, 0, tid, 0, mp_note_owner};
    if (mp_ring_note(r, &own, &mp_abandon) != 0) return -1;
    r->owner_tid = tid;
    return 0;
}

static MP_NOINLINE mp_ring_t *
take_ring(mp_thread_t *t) {
    mp_ring_t *r = mp_ring_claim();
    if (!r) return NULL;
    if (announce(r) != 0) {
        mp_ring_release(r);
        return NULL;
    }
    t->self = (uintptr_t)pthread_self();
    if (t->status == mp_thread_new) {
        t->py_held = MP_PY_HELD_NONE; /* before the fast path can run (mp_thread_refresh) */
        t->ring = r;
        t->status = mp_thread_active;
        mp_thread_refresh(t);
        pthread_setspecific(exit_key, (void *)1); /* arms on_thread_exit */
    }
    return r;
}

/* The ring this thread pushes into: its own, or (a thread past its exit destructor) one
 * claimed for this one event, released by pushed(). */
static inline mp_ring_t *
ring_of(mp_thread_t *t) {
    return MP_LIKELY(t->status == mp_thread_active) ? t->ring : take_ring(t);
}

/* After an event: a thread past its exit destructor gives back the ring it claimed for it. */
static inline void
pushed(mp_thread_t *t, mp_ring_t *r) {
    if (MP_UNLIKELY(t->status == mp_thread_exited)) mp_ring_release(r);
}

/* Per-thread memo of recent Python stacks (docs/dev/python-frames.md 8.1). A stack's key is one
 * or two words per frame (pyframes.h), nothing from code objects; a key seen before with no code
 * object freed since (mp_pycode_gen) gives the stack interned then, skipping the validated walk,
 * the code lookups and the interning. Events very often repeat one of a few recent stacks (a loop
 * body): a 4-way set-associative cache of 256 sets indexed by the key's hash, each set in fill
 * order (a miss evicts the oldest). A way holds what a hit reads in two cache lines (header and
 * the key's first words) and points at the stack table's copy of the frames (for splicing); the
 * rest of a deep key is in the memo's key log (below). Sized on scripts/bench_py/mix.py: with 64
 * sets of 2 ways its working set of stacks thrashed, and with 256 sets of 2 ways three hot stacks
 * sharing a set could still miss on every event (a miss costs some 1000 instructions at start-up
 * depths, a hit about 100). The mapping is touched only where used. Before the memo, a hot entry
 * (python_stack_id) usually holds the right stack, found from the innermost frame alone.
 *
 * The budget is tight: a Python allocation costs the interpreter some 400 instructions, and a
 * 1.3x overhead leaves about 120 for everything memprof does on the thread (scripts/bench).
 * The hit path is therefore one straight run with no call (mp_capture_py_hot, shared by the
 * hooks of a layout family: python.c, python-frames.md 8.3); misses go out of line.
 *
 * The memo lives in the ring's scratch mapping: rings are owned by one thread at a time and the
 * memo's content (code addresses -> stack id) is valid process-wide, so it survives a change of
 * owner. */
#define MEMO_BITS 8u
#define MEMO_SETS (1u << MEMO_BITS)
#define MEMO_WAYS 4u
#define HOT_BITS 11u       /* sets of hot entries */
#define HOT_WAYS 4u        /* entries per set */
#define HOT_WORDS 6u       /* key words in a hot entry's line; the rest of its key in the log */
#define HOT_KEY_WORDS 128u /* longest key a hot entry holds; deeper stacks use the memo alone */
#define KEY_MAX 128u       /* frames; deeper chains are walked every time */
#define KEY_WORDS 11u /* words of the key kept in the way itself (pyframes.h: 1 or 2 per frame) */
_Static_assert(HOT_WORDS < KEY_WORDS, "hot_fill copies a way's inline key past the hot line");
typedef struct memo_way_s {
    _Alignas(64) uint64_t h; /* hash of the key */
    const uint64_t *frames;  /* the resolved frames: the stack table's copy (stacks.h) */
    uint32_t n;              /* key frames; 0 = empty */
    uint32_t gen;            /* mp_pycode_gen when filled */
    uint32_t id;             /* interned Python-only stack */
    uint32_t deep;           /* log position of the key's words past KEY_WORDS (if any) */
    uint16_t nf;             /* resolved frames */
    uint16_t store;          /* index into ends (a way's own, kept as ways move in their set) */
    uint8_t owner_free;      /* the stack may go in a hot entry (mp_pyframes_intern) */
    uint64_t key[KEY_WORDS]; /* the key's first words; the rest in the log at deep */
} memo_way_t;
_Static_assert(sizeof(memo_way_t) == 128, "a way is two cache lines");

/* A hot entry: a stack's whole key (the first HOT_WORDS words here, the rest in the log, ended
 * by a zero word), its generation and id, copied from the memo way that served it: what
 * python_stack_id reads on nearly every event, in one cache line.
 *
 * Four per set, indexed by the innermost frame's key words. With one, two sites whose
 * instruction addresses happened to share an index evicted each other on every event when a
 * loop alternated between them: on scripts/bench_py/churn.py, 0.7 to 1.4 million of 19 million
 * events missed (by how the run's addresses fell), each costing a memo lookup of some hundred
 * instructions. The other ways also keep a function's other callers: with two, mix.py's
 * random.Random._randbelow, reached from three lines in turn (two randrange calls and choice),
 * sent 0.33 million of its 20 million events through the memo lookup and a refill, some 550
 * instructions and a few cache misses of cold code each. A fill goes into the first entry, the
 * one checked inline, and moves the others one place down; a hit in another moves to the front
 * when it repeats the thread's last stack (hot_others).
 *
 * Stored way by way ([way][set]): the first entries, which nearly every event reads, lie 64 bytes
 * apart, spread over every set of the L1 cache; with a set's entries side by side they lay 128
 * (two ways) or 256 bytes apart, over a half or a quarter of them, and churn.py's hot check
 * missed the simulated 32 KiB 8-way L1 0.7 million times more (cachegrind, 200000).
 *
 * 2048 sets. With 256, the sites of a loop still shared sets often enough to be a lottery drawn
 * at every run (by where the code objects fell): churn.py's events cost memprof 134.4 to 160.0
 * instructions each over six address layouts (cachegrind, a salt in the set index standing for
 * the layout), mix.py's 167.8 to 171.3; with 2048 sets, 135.9 and 165.5 in every layout tried.
 * A hot entry holds keys of up to HOT_KEY_WORDS words (128 frames from 3.11 on, as many as a memo
 * key; 64 before, whose deeper stacks use the memo alone). */
typedef struct hot_s {
    _Alignas(64) uint64_t key[HOT_WORDS];
    uint32_t id;   /* interned Python-only stack */
    uint32_t gen;  /* mp_pycode_gen of the way it was copied from */
    uint32_t n;    /* key frames; 0 = empty */
    uint32_t deep; /* log position of the key's words past HOT_WORDS, then a zero word (if any) */
} hot_t;
_Static_assert(sizeof(hot_t) == 64, "a hot entry is one cache line");

/* Why the tails of deep keys go to a log (keylog.h) rather than to rows of the longest key for
 * every way and hot entry, as they did: those rows made the memo 7.3 MiB, and CPython's start-up
 * (23,500 misses on stacks 20 to 40 frames deep, nearly all of them new, at rows picked by hash)
 * touched nearly all of it. The process's first memo was mapped in 2 MiB pages for that, and in
 * this VM zeroing a fresh huge page costs ~0.3 ms in one run and ~8 ms in the next (the host
 * backs the guest's page on first touch): scripts/bench_py/threads.py spent 0 or 52 ms of its main
 * thread's time in clear_page_erms, half the runs each way (perf, 8 runs). With the log the memo
 * was 1.5 MiB in small pages (1.75 MiB since hot sets have four entries), and `python -c pass`
 * started ~3 ms sooner (60 paired runs). A way or
 * hot entry whose log words were overwritten no longer matches, and is filled again if its stack
 * comes back: a deep program whose working set of stacks outgrows the log refills more often. */

/* The scratch mapping. key is the current event's and scratch a miss's (off the thread's stack,
 * which may be small; a thread never re-enters capture: its guard, capture.h). */
typedef struct memo_area_s {
    memo_way_t way[MEMO_SETS][MEMO_WAYS]; /* [0] filled most recently */
    hot_t hot[HOT_WAYS][1u << HOT_BITS];  /* [way][set], set by the innermost frame's hash */
    uint64_t key[2 * KEY_MAX];
    uint64_t scratch[MP_PY_DEPTH];
    uint8_t ends[MEMO_SETS * MEMO_WAYS][MP_PY_DEPTH]; /* a way's splice bits, by its store */
    mp_keylog_t log;                                  /* keylog.h */
} memo_area_t;

/* A resolved Python stack, valid until the thread's next event. */
typedef struct pystack_s {
    uint32_t id, nf;
    const uint64_t *frames;
    const uint8_t *ends;
} pystack_t;

static MP_NOINLINE memo_area_t *
memo_map(mp_ring_t *r) {
    memo_area_t *a = mp_sys_map(sizeof *a);
    if (!a) return NULL;
    for (uint32_t i = 0; i < MEMO_SETS; i++)
        for (uint32_t w = 0; w < MEMO_WAYS; w++) a->way[i][w].store = (uint16_t)(i * MEMO_WAYS + w);
    r->scratch = a;
    /* The caller owns r (or holds it for one event past its exit, when this leaves fast 0): its
     * fast path, which needs the memo, may now run (mp_thread_refresh). */
    mp_thread_refresh(&mp_thread);
    return a;
}

/* The thread's memo: its ring's scratch mapping, mapped on first use (NULL if mmap fails). */
static MP_ALWAYS_INLINE memo_area_t *
area_of(mp_ring_t *r) {
    memo_area_t *a = r->scratch;
    return MP_LIKELY(a != NULL) ? a : memo_map(r);
}

static inline int
log_holds(const memo_area_t *a, uint32_t pos) {
    return mp_keylog_holds(&a->log, pos);
}

static inline const uint64_t *
log_at(const memo_area_t *a, uint32_t pos) {
    return mp_keylog_at(&a->log, pos);
}

/* Empty every way and hot entry whose log words are gone (keylog.h's sweep). */
static MP_NOINLINE void
log_sweep(memo_area_t *a) {
    uint32_t kw = mp_pykey_words();
    for (uint32_t i = 0; i < MEMO_SETS; i++)
        for (uint32_t w = 0; w < MEMO_WAYS; w++) {
            memo_way_t *e = &a->way[i][w];
            if (e->n * kw > KEY_WORDS && !log_holds(a, e->deep)) e->n = 0;
        }
    for (uint32_t i = 0; i < (1u << HOT_BITS); i++)
        for (uint32_t w = 0; w < HOT_WAYS; w++) {
            hot_t *h = &a->hot[w][i];
            if (h->n * kw > HOT_WORDS && !log_holds(a, h->deep)) h->n = 0, h->key[0] = 0;
        }
}

/* Room for an entry of len words (at most 2 * KEY_MAX); its position in *pos. An entry the
 * caller is filling is not swept: it is not yet in use (its n, or its position, is not set). */
static uint64_t *
log_append(memo_area_t *a, uint32_t len, uint32_t *pos) {
    int sweep;
    uint64_t *w = mp_keylog_append(&a->log, len, pos, &sweep);
    if (MP_UNLIKELY(sweep)) log_sweep(a);
    return w;
}

/* Whether way e holds the key of n frames (nw words) in key, hashed to h, at generation gen. */
static inline int
way_matches(const memo_area_t *a, const memo_way_t *e, const uint64_t *key, uint64_t h, uint32_t n,
            uint32_t nw, uint32_t gen) {
    if (e->h != h || e->n != n || e->gen != gen) return 0;
    uint32_t in = nw < KEY_WORDS ? nw : KEY_WORDS;
    for (uint32_t i = 0; i < in; i++)
        if (key[i] != e->key[i]) return 0;
    if (nw == in) return 1;
    return log_holds(a, e->deep) &&
           memcmp(key + in, log_at(a, e->deep), (size_t)(nw - in) * 8) == 0;
}

/* Miss: the validated walk of ts's stack, resolved and interned into set[0] (the oldest way
 * is dropped). Returns it, or NULL (no Python frame, or the stack table is full). */
static MP_NOINLINE const memo_way_t *
memo_fill(memo_area_t *a, memo_way_t *set, const uint8_t *ts, uint32_t nk, uint64_t h,
          uint32_t gen) {
    if (MP_UNLIKELY(!mp_load_relaxed(&mp_python_running))) {
        mp_store_relaxed(&mp_python_running, 1);
        if (mp_ring_kick) mp_ring_kick(); /* the writer schedules the pending call */
    }
    mp_python_schedule(); /* or this thread, as soon as the interpreter is initialized */
    memo_way_t *m = &set[0];
    uint16_t store = set[MEMO_WAYS - 1].store;
    memmove(&set[1], &set[0], (MEMO_WAYS - 1) * sizeof *set);
    m->store = store;
    m->n = 0;
    uint32_t nf;
    int owner_free;
    m->id = mp_pyframes_intern(ts, a->key, nk, a->scratch, a->ends[store], &nf, &owner_free,
                               &m->frames);
    m->nf = (uint16_t)nf;
    m->owner_free = (uint8_t)owner_free;
    if (nf == 0) return NULL;
    if (m->id == 0) {
        mp_fetch_add_relaxed(&mp_stacks_dropped, 1);
        return NULL;
    }
    if (nk <= KEY_MAX) {
        uint32_t nw = nk * mp_pykey_words(), in = nw < KEY_WORDS ? nw : KEY_WORDS;
        memcpy(m->key, a->key, (size_t)in * 8);
        if (nw > in) memcpy(log_append(a, nw - in, &m->deep), a->key + in, (size_t)(nw - in) * 8);
        m->h = h;
        m->gen = gen;
        m->n = nk;
    }
    return m;
}

/* Move entries 0 .. w-1 of hot set i one place down, over entry w. */
static inline void
hot_shift(memo_area_t *a, uint32_t i, uint32_t w) {
    for (; w > 0; w--) a->hot[w][i] = a->hot[w - 1][i];
}

/* dst[0 .. n) = src[0 .. n) & keep, two words a step. */
static inline void
hot_copy(uint64_t *dst, const uint64_t *src, uint32_t n, uint64_t keep) {
    uint32_t k = 0;
    for (; k + 2 <= n; k += 2) {
        uint64_t a = src[k] & keep, b = src[k + 1] & keep;
        dst[k] = a;
        dst[k + 1] = b;
    }
    if (k < n) dst[k] = src[k] & keep;
}

/* Copy way e (found or filled for this event's key) into the first entry of hot set i; the
 * entries there move one place down, and the last one's is dropped. A key longer than HOT_KEY_WORDS
 * fills nothing, nor does a stack whose owner bytes matter (memo_way_t.owner_free): a hot
 * entry's words are the key's without them (pyframes.h, mp_pykey_hot). */
static MP_NOINLINE void
hot_fill(memo_area_t *a, uint32_t i, const memo_way_t *e) {
    uint32_t nw = e->n * mp_pykey_words();
    if (nw > HOT_KEY_WORDS) return; /* too deep for a hot entry */
    if (!e->owner_free) return;
    /* The fast path's pushes take only ids that fit the short form (ring.h). */
    if (e->id >= MP_RING_SHORT_STACKS) return;
    hot_shift(a, i, HOT_WAYS - 1);
    hot_t *h = &a->hot[0][i];
    /* The way's key is e->key[0 .. KEY_WORDS) then its log entry; the hot entry's, h->key[0 ..
     * HOT_WORDS) then a log entry of its own, ended by a zero word (HOT_WORDS < KEY_WORDS): three
     * copies, not a test per word (at start-up, where import stacks are 20-40 frames deep, this
     * ran some 370 instructions a fill). Interpreter frames' words lose their owner byte on the
     * way, but the innermost frame's (mp_pykey_hot). */
    uint64_t keep = mp_pykey_words() == 1 ? ~MP_PYKEY_OWNER : ~0ull;
    uint32_t in = nw < KEY_WORDS ? nw : KEY_WORDS;
    h->key[0] = e->key[0];
    if (in <= HOT_WORDS) {
        hot_copy(h->key + 1, e->key + 1, in - 1, keep);
        if (in < HOT_WORDS) h->key[in] = 0; /* the end of a short key (hot_matches) */
    } else {
        hot_copy(h->key + 1, e->key + 1, HOT_WORDS - 1, keep);
        uint64_t *deep = log_append(a, nw - HOT_WORDS + 1, &h->deep);
        if (in < nw && !log_holds(a, e->deep)) {
            /* The room just taken is where the way's own words were (a way found in the memo
             * whose entry was nearly the oldest): nothing written yet, the entry stays empty. */
            h->n = 0;
            h->key[0] = 0;
            return;
        }
        const uint64_t *rest = log_at(a, e->deep);
        hot_copy(deep, e->key + HOT_WORDS, in - HOT_WORDS, keep);
        hot_copy(deep + (in - HOT_WORDS), rest, nw - in, keep);
        deep[nw - HOT_WORDS] = 0; /* a frame's word is never 0 */
    }
    h->id = e->id;
    h->gen = e->gen;
    h->n = e->n;
}

/* Whether hot entry h (deep: the rest of its key) is the stack whose innermost frame gave the
 * key words w0 and w1 (nw of them) and whose next frame is next.
 *
 * With one word a frame (3.11+), a key shorter than the line ends with a zero word (hot_fill; a
 * frame's word is never 0: it holds an instruction pointer), so the check runs down the chain
 * and the line together, with the line's index a constant in each unrolled step, and reads the
 * length only for a key that fills the line: 2.7 instructions fewer per event on churn.py
 * (cachegrind) than counting frames against h->n. An empty entry's first word is 0 too. */
static MP_ALWAYS_INLINE int
hot_matches(const memo_area_t *a, const hot_t *h, uint64_t w0, uint64_t w1, uint32_t nw,
            const uint8_t *next, int entry, uint32_t gen, int fam) {
    if (mp_pykey_words_fam(fam) == 2 || fam == MP_PYFAM_ANY) {
        if (h->key[0] != w0 || (nw != 1 && h->key[1] != w1) || h->gen != gen || h->n == 0) return 0;
        const uint64_t *deep = NULL;
        if (h->n * nw > HOT_WORDS) {
            if (!log_holds(a, h->deep)) return 0;
            deep = log_at(a, h->deep);
        }
        return mp_pyframes_match(next, entry, h->key + nw, HOT_WORDS - nw, deep, h->n - 1, fam);
    }
    if (h->key[0] != w0 || h->gen != gen) return 0;
    const uint8_t *f = next;
    for (uint32_t i = 1; i < HOT_WORDS; i++) {
        if (!f) return h->key[i] == 0;
        uint64_t pos;
        f = mp_pykey_hot(f, entry, &pos, fam);
        if (pos != h->key[i]) return 0;
    }
    /* The line is full: the key has HOT_WORDS frames or more, the rest in the log, ended by a zero
     * word, which no frame's word equals: the loop tests the chain's end and the words only. */
    if (!f) return h->n == HOT_WORDS;
    if (h->n == HOT_WORDS || !log_holds(a, h->deep)) return 0;
    const uint64_t *k = log_at(a, h->deep);
    do {
        uint64_t pos;
        f = mp_pykey_hot(f, entry, &pos, fam);
        if (pos != *k++) return 0;
    } while (f);
    return *k == 0;
}

/* Move entry w of hot set i to the front, the ones before it one place down. */
static void
hot_to_front(memo_area_t *a, uint32_t i, uint32_t w) {
    hot_t e = a->hot[w][i];
    hot_shift(a, i, w);
    a->hot[0][i] = e;
}

/* The key words of ts's innermost frame (w0, and w1 for frame objects: *nw of them, pyframes.h;
 * the innermost frame keeps its owner byte in a hot key too), and the frame after it in *next; 0
 * when ts runs no Python frame. */
static MP_ALWAYS_INLINE int
innermost_key(const uint8_t *ts, int fam, int entry, uint64_t *w0, uint64_t *w1, uint32_t *nw,
              const uint8_t **next) {
    *w1 = 0;
    *nw = mp_pykey_words_fam(fam);
    if (mp_pyfam_frame_objects(fam)) {
        const uint8_t *f = mp_ldp(ts, mp_pyL(fam)->ts_frame);
        if (!f) return 0;
        *next = mp_pykey_fo(f, w0, w1, fam);
    } else {
        const uint8_t *f = mp_pyframes_first_iframe_fam(ts, fam);
        if (!f) return 0;
        *next = mp_pykey_if(f, entry, w0, fam);
    }
    return 1;
}

/* The other entries of hot set i, out of line, rebuilding the innermost frame's key words from
 * ts (the first entry serves most events: inlined into the fast path, or called with those words,
 * this check made every event 6 to 9 instructions longer under cachegrind, more values staying
 * live in it); 0: no match. prev: the stack of the thread's last event. A match that
 * repeats it moves to the front, so that the first check serves it again: filled once after
 * it, a rarely used stack would otherwise send every later event of a hot one here. One that
 * does not (a loop alternating between them) stays: a move per event would send them all. */
static MP_ALWAYS_INLINE uint32_t
hot_others_t(memo_area_t *a, const uint8_t *ts, uint32_t i, uint32_t gen, int fam, int native,
             uint32_t prev) {
    /* The innermost frame's key words again: fewer values live across the call in the hooks. */
    const int entry = mp_pykey_entry(native);
    uint64_t w0, w1;
    uint32_t nw;
    const uint8_t *next;
    if (!innermost_key(ts, fam, entry, &w0, &w1, &nw, &next)) return 0;
    for (uint32_t w = 1; w < HOT_WAYS; w++) {
        const hot_t *h = &a->hot[w][i];
        if (!hot_matches(a, h, w0, w1, nw, next, entry, gen, fam)) continue;
        uint32_t id = h->id;
        if (id == prev) hot_to_front(a, i, w);
        return id;
    }
    return 0;
}

/* hot_others_t out of line, one copy per layout family (its offsets immediates, as on the fast
 * path) and one for the general path: what a call runs is then a few cache lines, not the general
 * copy's dispatch on the family (on mix.py 4000, 1.3 M instruction-cache misses in 200 000 calls
 * or so, cachegrind). */
#define HOT_OTHERS(sfx, F)                                                                         \
    static MP_NOINLINE uint32_t hot_others_##sfx(memo_area_t *a, const uint8_t *ts, uint32_t i,    \
                                                 uint32_t gen, int native, uint32_t prev) {        \
        return hot_others_t(a, ts, i, gen, F, native, prev);                                       \
    }
HOT_OTHERS(38, MP_PYFAM_38)
HOT_OTHERS(39, MP_PYFAM_39)
HOT_OTHERS(310, MP_PYFAM_310)
HOT_OTHERS(311, MP_PYFAM_311)
HOT_OTHERS(312, MP_PYFAM_312)
HOT_OTHERS(313, MP_PYFAM_313)
#undef HOT_OTHERS
static MP_NOINLINE uint32_t
hot_others_any(memo_area_t *a, const uint8_t *ts, uint32_t i, uint32_t gen, int native,
               uint32_t prev) {
    return hot_others_t(a, ts, i, gen, MP_PYFAM_ANY, native, prev);
}

/* The copy of hot_others_t for fam: where fam is a constant, the load from this table folds
 * into a direct call. */
typedef uint32_t (*hot_others_fn)(memo_area_t *a, const uint8_t *ts, uint32_t i, uint32_t gen,
                                  int native, uint32_t prev);
static const hot_others_fn hot_others_of[MP_PYFAM_COUNT] = {
    [MP_PYFAM_ANY] = hot_others_any, [MP_PYFAM_38] = hot_others_38,
    [MP_PYFAM_39] = hot_others_39,   [MP_PYFAM_310] = hot_others_310,
    [MP_PYFAM_311] = hot_others_311, [MP_PYFAM_312] = hot_others_312,
    [MP_PYFAM_313] = hot_others_313,
};
static MP_ALWAYS_INLINE uint32_t
hot_others(memo_area_t *a, const uint8_t *ts, uint32_t i, uint32_t gen, int fam, int native,
           uint32_t prev) {
    return hot_others_of[fam](a, ts, i, gen, native, prev);
}

/* No hot set: the thread runs no Python frame (hot_first). */
#define HOT_NONE UINT32_MAX

/* The first hot entry's stack for ts's chain (gen: mp_pycode_gen): its id (never 0: hot_fill), or
 * 0; *set: the hot set of the innermost frame's key words, or HOT_NONE when ts runs no Python
 * frame. */
static MP_ALWAYS_INLINE uint32_t
hot_first(const memo_area_t *a, const uint8_t *ts, int fam, int entry, uint32_t gen,
          uint32_t *set) {
    uint64_t w0, w1;
    uint32_t nw;
    const uint8_t *next;
    *set = HOT_NONE;
    if (!innermost_key(ts, fam, entry, &w0, &w1, &nw, &next)) return 0;
    /* The set's entry by its byte offset, from the product's top bits in one shift and a mask,
     * not by the index times 64: the compiler kept both and recomputed the offset, a register
     * less for the frames (3.9 and 6.3 instructions an event on churn.py and threads.py,
     * scripts/bench_instr). */
    size_t off = (size_t)(((w0 ^ w1) * 0x9e3779b97f4a7c15ull) >> (64 - HOT_BITS - 6)) & ~(size_t)63;
    _Static_assert(sizeof(hot_t) == 64, "off is a multiple of a hot entry");
    *set = (uint32_t)(off / sizeof(hot_t));
    const hot_t *h = (const hot_t *)((const uint8_t *)a->hot[0] + off);
    if (!hot_matches(a, h, w0, w1, nw, next, entry, gen, fam)) return 0;
    /* A matching entry was filled (an empty one's first word, 0, matches no frame: an
     * instruction or code pointer), and hot_fill copies only nonzero ids: said to the compiler,
     * whose callers' test of the id then folds into the match's (2 instructions an event). */
    if (h->id == 0) __builtin_unreachable();
    return h->id;
}

/* The memo's lookup by the whole key (hash, set, ways), filling a way on a miss. */
static MP_NOINLINE const memo_way_t *
memo_lookup(memo_area_t *a, const uint8_t *ts, uint32_t gen) {
    uint64_t h = 0; /* stays 0 for a chain deeper than KEY_MAX */
    uint32_t nk = mp_pyframes_key(ts, a->key, KEY_MAX, mp_native, &h);
    if (nk == 0) return NULL;
    memo_way_t *set = a->way[h >> (64 - MEMO_BITS)]; /* the product's top bits are its best mixed */
    if (MP_LIKELY(nk <= KEY_MAX)) {
        uint32_t nw = nk * mp_pykey_words();
        for (uint32_t w = 0; w < MEMO_WAYS; w++)
            if (way_matches(a, &set[w], a->key, h, nk, nw, gen)) return &set[w];
    }
    return memo_fill(a, set, ts, nk, h, gen);
}

/* 3.12+, the calling thread's state when its _Py_tss_tstate did not give it: the thread has
 * not relied on that address yet (its first events), or it is detached (an allocation with the
 * GIL released, which still has the thread's own frames). The gilstate TSS, then; and the
 * address is kept only once the variable there holds the same state as the TSS says: whatever
 * python.c's find_tstate_tls found is checked on every thread before the thread reads through
 * it, and a variable that holds anything else ends its use for good. */
static MP_NOINLINE const uint8_t *
tstate_tls_miss(void) {
    mp_thread_t *t = &mp_thread;
    const uint8_t *tss = mp_pyframes_tstate_of(t->self);
    if (!t->py_tls && tss) {
        const uint8_t *const *slot = mp_pyframes_tls_slot();
        const uint8_t *v = slot ? *slot : NULL;
        if (v == tss)
            t->py_tls = slot;
        else if (v)
            mp_pyframes_tls_forget();
    }
    return tss;
}

/* The calling thread's Python stack id, 0 when it runs no Python (or the stack cannot be
 * interned). r is the calling thread's ring; fam: the layout family (pyframes.h); native:
 * mp_native (whose keys carry 3.11's is_entry). Both are constants on the fast path.
 *
 * First the hot entry of the innermost frame's key words (its code and position): the stack last
 * served there, its key kept whole in the entry's cache line (or past it, in the log, for deep
 * chains), checked frame by frame against the chain with nothing stored. That is about half the
 * work of building the key, hashing it and comparing, and one cache line. Then the set's other
 * entries. Only when none is right (another caller, another site sharing the set, or a code
 * object freed since) does the memo lookup run; it refills the first. Any entry is a safe
 * guess: the check compares every frame, the length and the generation, and an entry's key and
 * id are copied together, so they always belong together. */
static MP_ALWAYS_INLINE uint32_t
python_stack_id(mp_thread_t *t, mp_ring_t *r, int fam, int native) {
    const uint8_t *ts;
    if (fam != MP_PYFAM_ANY && !mp_pyfam_gil_holder(fam)) {
        /* 3.12+: CPython's own thread-local, through its address kept per thread (two loads),
         * rather than pthread_getspecific and the finalization check (some 25 instructions an
         * event): a state the thread is attached to is live, finalization or not. */
        const uint8_t *const *slot = t->py_tls;
        ts = MP_LIKELY(slot != NULL) ? *slot : NULL;
        if (MP_UNLIKELY(ts == NULL)) ts = tstate_tls_miss();
    } else if (fam != MP_PYFAM_ANY) {
        /* 3.8-3.11: the GIL holder's state, if this thread's, is what mp_capture_py_hot takes
         * from now on without reading its thread id (t->py_held). */
        ts = mp_pyframes_tstate_held(t->self, fam);
        if (ts)
            t->py_held = ts;
        else
            ts = mp_pyframes_tstate_tss(fam);
    } else {
        ts = mp_pyframes_tstate_fam(t->self, fam);
    }
    if (!ts) return 0;
    /* A family's fast path runs only while t->fast, which says that the memo is mapped (and
     * t->memo is it): no test (2 instructions an event). */
    memo_area_t *a = fam == MP_PYFAM_ANY ? area_of(r) : (memo_area_t *)t->memo;
    if (fam == MP_PYFAM_ANY && !a) return 0;
    const int entry = mp_pykey_entry(native);
    uint32_t gen = mp_load_relaxed(&mp_pycode_gen);
    uint32_t i, id = hot_first(a, ts, fam, entry, gen, &i);
    if (MP_LIKELY(id != 0)) return id;
    if (i == HOT_NONE) return 0;
    id = hot_others(a, ts, i, gen, fam, native, r->last_stack);
    if (id != 0) return id;
    const memo_way_t *e = memo_lookup(a, ts, gen);
    if (!e) return 0;
    if (e->n != 0) hot_fill(a, i, e);
    return e->id;
}

/* The calling thread's Python stack, or the one it inherited while it runs no Python frame of its
 * own (thread_start.c); 0: neither. */
static MP_ALWAYS_INLINE uint32_t
thread_stack(mp_thread_t *t, mp_ring_t *r, int fam, int native) {
    uint32_t id = python_stack_id(t, r, fam, native);
    return MP_LIKELY(id != 0) ? id : t->inherit_id;
}

static inline void
view(const memo_area_t *a, const memo_way_t *e, pystack_t *out) {
    out->id = e->id;
    out->nf = e->nf;
    out->frames = e->frames;
    out->ends = a->ends[e->store];
}

/* The calling thread's Python stack with its frames (for splicing into native stacks, and for
 * what a new thread inherits): the memo's lookup by the whole key, every time (the hot entries
 * hold no frames; next to unwinding the native stack, the lookup is cheap). 0: none. */
static int
python_frames(const mp_thread_t *t, mp_ring_t *r, pystack_t *out) {
    const uint8_t *ts = mp_pyframes_tstate_of(t->self);
    if (!ts) return 0;
    memo_area_t *a = area_of(r);
    if (!a) return 0;
    const memo_way_t *e = memo_lookup(a, ts, mp_load_relaxed(&mp_pycode_gen));
    if (!e) return 0;
    view(a, e, out);
    return 1;
}

static inline int
in_eval_loop(uint64_t pc) {
    return pc - 1 >= mp_pyenv.eval_lo && pc - 1 < mp_pyenv.eval_hi;
}

/* The stack of one event with native stacks on (MEMPROF_NATIVE): for allocations (what leak and
 * peak reports attribute; unwinding every free would double the cost) native frames, with the
 * Python frames spliced into them at the eval-loop frames (FORMAT.md 5.4), or the Python stack
 * a native thread inherited; for frees the Python stack only. */
static MP_NOINLINE uint32_t
event_stack_native(mp_thread_t *t, mp_ring_t *r, unsigned kind) {
    int walk = mp_load_relaxed(&mp_pyenv.walk);
    if (kind != MP_EV_ALLOC) return walk ? thread_stack(t, r, MP_PYFAM_ANY, 1) : 0;
    const uint64_t *pyf = NULL;
    const uint8_t *ends = NULL;
    uint8_t no_ends[MP_PY_DEPTH];
    uint32_t np = 0;
    if (walk) {
        pystack_t m;
        if (python_frames(t, r, &m)) {
            pyf = m.frames;
            ends = m.ends;
            np = m.nf;
        } else if (t->inherit_n) {
            pyf = t->inherit;
            np = t->inherit_n;
            memset(no_ends, 0, np);
            ends = no_ends;
        }
    }
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
    uint32_t id = mp_stacks_intern(frames, n);
    if (id == 0) mp_fetch_add_relaxed(&mp_stacks_dropped, 1);
    return id;
}

/* The stack of one event while Python stacks are walked: with Python stacks only (the common
 * case) the memo's, inline. */
static MP_ALWAYS_INLINE uint32_t
event_stack(mp_thread_t *t, mp_ring_t *r, unsigned kind) {
    if (MP_LIKELY(!mp_native)) return thread_stack(t, r, MP_PYFAM_ANY, 0);
    return event_stack_native(t, r, kind);
}

uint32_t
mp_capture_python_stack(const uint64_t **frames, uint32_t *n) {
    *n = 0;
    if (!mp_load_relaxed(&mp_pyenv.walk)) return 0;
    mp_thread_t *t = &mp_thread;
    if (t->status != mp_thread_active) return 0;
    pystack_t m;
    if (!python_frames(t, t->ring, &m)) return 0;
    *frames = m.frames; /* the stack table's copy: kept for the process's life */
    *n = m.nf;
    return m.id;
}

/* Push one event into r: encoded in place, in the dump's bytes (ring.h), so the writer only
 * copies it. Nothing else writes into this ring meanwhile: one owner, and the guard keeps this
 * thread from re-entering. */
static MP_ALWAYS_INLINE void
encode_event(mp_ring_t *r, unsigned kind, unsigned allocator, const void *ptr, size_t size,
             uint32_t stack) {
    mp_ring_push(r, kind, allocator, &mp_seq, (uint64_t)(uintptr_t)ptr, size, stack, &mp_abandon);
}

/* The same, into the ring ring_of gave t (which a thread past its exit destructor gives back). */
static MP_ALWAYS_INLINE void
push_event(mp_thread_t *t, mp_ring_t *r, unsigned kind, unsigned allocator, const void *ptr,
           size_t size, uint32_t stack) {
    encode_event(r, kind, allocator, ptr, size, stack);
    pushed(t, r);
}

uint32_t
mp_capture_event(mp_thread_t *t, unsigned kind, unsigned allocator, const void *ptr, size_t size) {
    if (MP_UNLIKELY(t->frees_only) && kind == MP_EV_ALLOC) return 0;
    if (MP_UNLIKELY(mp_load_relaxed(&mp_pyfast) & mp_pyfast_watch)) mp_python_recheck();
    mp_ring_t *r = ring_of(t);
    if (!r) return 0;
    uint32_t stack = 0;
    if (mp_load_relaxed(&mp_pyenv.walk)) {
        stack = event_stack(t, r, kind);
    } else if (mp_native) {
        stack = event_stack_native(t, r, kind);
    }
    push_event(t, r, kind, allocator, ptr, size, stack);
    return stack;
}

void
mp_capture_py_push(const mp_thread_t *t, unsigned kind, unsigned allocator, const void *ptr,
                   size_t size, uint32_t stack) {
    encode_event(t->ring, kind, allocator, ptr, size, stack);
}

uint32_t
mp_capture_py_fast(mp_thread_t *t, unsigned kind, unsigned allocator, const void *ptr, size_t size,
                   int fam) {
    mp_ring_t *r = t->ring; /* fast: active, its own ring, kept */
    uint32_t stack = thread_stack(t, r, fam, 0);
    encode_event(r, kind, allocator, ptr, size, stack);
    return stack;
}

/* The stack of nearly every event: the thread state without its fallbacks and the first hot
 * entry, with no call on any path (so the function it is inlined into saves no register for
 * it). 0 in any other case: the caller starts over with mp_capture_py_fast. */
uint32_t
mp_capture_py_hot(const mp_thread_t *t, int fam) {
    const uint8_t *ts;
    if (!mp_pyfam_gil_holder(fam)) {
        const uint8_t *const *slot = t->py_tls;
        if (MP_UNLIKELY(slot == NULL)) return 0;
        ts = *slot;
        if (MP_UNLIKELY(!ts)) return 0;
    } else {
        /* 3.8-3.11: the GIL holder's state, when it is the one this thread held last (py_held,
         * learned by python_stack_id with the thread id checked): one compare, where the holder's
         * NULL test and the load and compare of its thread id took three instructions more an
         * event. py_held is never NULL here (capture.h), so neither is ts. The state is still
         * this thread's: a thread's state is deleted by the thread itself (at its end, or in
         * PyGILState_Release), whose RAW free of it resets py_held (python.c's held_freed) before
         * the address can hold another state; the exception, daemon threads' states freed by
         * finalization, is python-frames.md 3.2's. */
        ts = mp_pyframes_gil_state(fam);
        if (MP_UNLIKELY(ts != t->py_held)) return 0;
    }
    uint32_t set; /* a miss of any kind is the caller's; fast: t->memo is the ring's memo */
    return hot_first(t->memo, ts, fam, mp_pykey_entry(0), mp_load_relaxed(&mp_pycode_gen), &set);
}

/* The pushes' other forms, out of line, jumped to: the fast ones then keep nothing past a call.
 * First the short form against the other base (mp_ring_push_short_other), then, jumped to again,
 * anything (mp_ring_push): apart, so that the first saves no register for the second (some 10
 * instructions an event it serves, a tenth of mix.py's). */
static MP_NOINLINE void *
alloc_push_any(mp_thread_t *t, unsigned head, void *ptr, size_t size, uint32_t stack) {
    encode_event(t->ring, MP_EV_ALLOC, mp_ring_head_allocator(head), ptr, size, stack);
    t->guard = 0;
    return ptr;
}

static MP_NOINLINE void *
free_push_any(mp_thread_t *t, unsigned head, void *ptr, uint32_t stack) {
    encode_event(t->ring, MP_EV_FREE, mp_ring_head_allocator(head), ptr, 0, stack);
    return ptr;
}

static MP_NOINLINE void *
alloc_push_long(mp_thread_t *t, unsigned head, void *ptr, size_t size, uint32_t stack) {
    if (MP_UNLIKELY(!mp_ring_push_short_other(t->ring, MP_EV_ALLOC, head, &mp_seq,
                                              (uint64_t)(uintptr_t)ptr, size, stack)))
        return alloc_push_any(t, head, ptr, size, stack);
    t->guard = 0;
    return ptr;
}

static MP_NOINLINE void *
free_push_long(mp_thread_t *t, unsigned head, void *ptr, uint32_t stack) {
    if (MP_UNLIKELY(!mp_ring_push_short_other(t->ring, MP_EV_FREE, head, &mp_seq,
                                              (uint64_t)(uintptr_t)ptr, 0, stack)))
        return free_push_any(t, head, ptr, stack);
    return ptr;
}

MP_HOT_TEXT("push")
void *
mp_capture_py_alloc_push(mp_thread_t *t, unsigned head, void *ptr, size_t size, uint32_t stack) {
    if (MP_UNLIKELY(!mp_ring_push_short(t->ring, MP_EV_ALLOC, head, &mp_seq,
                                        (uint64_t)(uintptr_t)ptr, size, stack)))
        return alloc_push_long(t, head, ptr, size, stack);
    t->guard = 0;
    return ptr;
}

MP_HOT_TEXT("push")
void *
mp_capture_py_free_push(mp_thread_t *t, unsigned head, void *ptr, uint32_t stack) {
    if (MP_UNLIKELY(!mp_ring_push_short(t->ring, MP_EV_FREE, head, &mp_seq,
                                        (uint64_t)(uintptr_t)ptr, 0, stack)))
        return free_push_long(t, head, ptr, stack);
    return ptr;
}

uint32_t
mp_capture_py_event(mp_thread_t *t, unsigned kind, unsigned allocator, const void *ptr, size_t size,
                    int fam) {
    /* mp_pyfast equals fam only while every test of the general path comes out the usual way:
     * Python stacks only, walked with this family's layout, start-up over (python.h). What is
     * left to test is the thread's (t->fast): its own ring, and not inside memprof's Python
     * calls. */
    if (fam == MP_PYFAM_ANY || MP_UNLIKELY(mp_load_acquire(&mp_pyfast) != (unsigned)fam) ||
        MP_UNLIKELY(!t->fast))
        return mp_capture_event(t, kind, allocator, ptr, size);
    return mp_capture_py_fast(t, kind, allocator, ptr, size, fam);
}

/* The second event of a realloc, from the same point of the same thread as the FREE recorded
 * with stack: not walked again (unless an ALLOC needs a native stack). */
static void
event_same(mp_thread_t *t, unsigned kind, unsigned allocator, const void *ptr, size_t size,
           uint32_t stack) {
    if (MP_UNLIKELY(t->frees_only) && kind == MP_EV_ALLOC) return;
    if (mp_native && kind == MP_EV_ALLOC) {
        /* Allocations get native stacks, frees do not: not the same stack. */
        mp_capture_event(t, kind, allocator, ptr, size);
        return;
    }
    mp_ring_t *r = ring_of(t);
    if (r) push_event(t, r, kind, allocator, ptr, size, stack);
}

void
mp_capture_realloc_done(mp_thread_t *t, unsigned allocator, const void *p, const void *q, size_t n,
                        uint32_t stack, int kept) {
    if (q && !p)
        mp_capture_event(t, MP_EV_ALLOC, allocator, q, n);
    else if (q)
        event_same(t, MP_EV_ALLOC, allocator, q, n, stack);
    else if (p && kept)
        event_same(t, MP_EV_REALLOC_FAIL, allocator, p, 0, stack);
}

void
mp_capture_marker(mp_thread_t *t, unsigned kind) {
    mp_ring_t *r = ring_of(t);
    if (!r) return;
    mp_ring_note_t note = {0, 0, kind, mp_sys_mono_ns(), mp_note_marker};
    note.seq = mp_fetch_add_relaxed(&mp_seq, 1);
    mp_ring_note(r, &note, &mp_abandon);
    pushed(t, r);
}

void
mp_capture_after_fork_child(mp_thread_t *t) {
    mp_ring_reset_after_fork(t->status == mp_thread_active ? t->ring : NULL);
    /* The child is a new thread id on a fresh dump (the reset forgot every owner): announce it. */
    if (t->status == mp_thread_active) announce(t->ring);
}
