/* model.c - replays a dump into the numbers every view prints (see model.h for the semantics).
 *
 * What this owns: the scan of all non-event records, the per-stream lists of EVENTS record
 * locations, the k-way merge of the streams by sequence number, the live-block table, and the
 * aggregation of live sets by stack (leaks, peak). Memory is proportional to the live set, the
 * stack table and the number of EVENTS records, never to the number of events.
 * What this is not: byte decoding (reader.c) or presentation (emit_*.c).
 */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "per_line.h"
#include "pylines.h"
#include "u64map.h"
#include "vec.h"

/* ---- the live-block table (open addressing, backward-shift deletion) ------------------------ */

typedef struct block_s {
    uint64_t ptr;
    uint64_t size;
    uint64_t stack;
    uint8_t allocator;
    uint8_t used;
} block_t;

typedef struct live_s {
    block_t *t;
    size_t cap, len;
    uint64_t bytes; /* sum of live sizes */
} live_t;

static size_t
live_find(const live_t *l, uint64_t ptr) {
    size_t mask = l->cap - 1, i = (size_t)mp_mix64(ptr) & mask;
    while (l->t[i].used && l->t[i].ptr != ptr) i = (i + 1) & mask;
    return i;
}

static int
live_reserve(live_t *l) {
    if (4 * (l->len + 1) <= 3 * l->cap) return 0; /* load factor 3/4 */
    live_t n = {NULL, l->cap ? l->cap * 2 : 1024, 0, l->bytes};
    n.t = calloc(n.cap, sizeof *n.t);
    if (!n.t) return -1;
    for (size_t i = 0; i < l->cap; i++)
        if (l->t[i].used) n.t[live_find(&n, l->t[i].ptr)] = l->t[i];
    n.len = l->len;
    free(l->t);
    *l = n;
    return 0;
}

/* Remove slot i, shifting later members of its probe run back (no tombstones). */
static void
live_remove_at(live_t *l, size_t i) {
    size_t mask = l->cap - 1, j = i;
    l->bytes -= l->t[i].size;
    l->len--;
    for (;;) {
        j = (j + 1) & mask;
        if (!l->t[j].used) break;
        size_t home = (size_t)mp_mix64(l->t[j].ptr) & mask;
        /* Move t[j] into the hole at i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        l->t[i] = l->t[j];
        i = j;
    }
    l->t[i].used = 0;
}

static void
live_clear(live_t *l) {
    if (l->t) memset(l->t, 0, l->cap * sizeof *l->t);
    l->len = 0;
    l->bytes = 0;
}

/* ---- private state -------------------------------------------------------------------------- */

typedef struct evrec_s { /* one EVENTS or STREAM record, located, not decoded */
    mp_rec_events_t rec;
    size_t next; /* next record of the same stream, or SIZE_MAX */
} evrec_t;

typedef struct stream_s {
    uint64_t id;
    size_t first, last; /* evrec_t indices, SIZE_MAX if none */
    /* replay cursor */
    size_t cur; /* evrec_t being decoded */
    mp_events_t it;
    mp_event_t ev;               /* the next event of this stream */
    block_t realloc_out;         /* the block the last realloc FREE of this stream released */
    uint64_t realloc_free_stack; /* and that FREE's stack */
} stream_t;

typedef struct stackref_s {
    size_t off, n; /* into frames[] */
} stackref_t;

typedef struct anchor_s { /* a (seq, time) pair for interpolating event times */
    uint64_t seq, time_ns;
} anchor_t;

typedef struct sample_s {
    uint64_t seq, time_ns, rss;
    size_t order; /* file order, for a stable sort */
} sample_t;

struct mp_model_priv_s {
    mp_reader_t *r;
    evrec_t *ev;
    size_t nev, capev;
    stream_t *streams;
    size_t nstreams, capstreams;
    mp_u64map_t stream_idx; /* stream id -> index */
    uint64_t *frames;
    size_t nframes, capframes;
    stackref_t *stacks;
    size_t nstacks, capstacks;
    mp_u64map_t stack_idx; /* stack id -> index into stacks */
    sample_t *samples;
    size_t nsamples, capsamples;
    anchor_t *anchors;
    size_t nanchors, capanchors;
    bool have_main_end, have_exit, have_trailer;
    uint64_t main_end_seq, exit_seq;
    mp_rec_trailer_t trailer;
    uint64_t lost_sum;
    live_t live;
    mp_u64map_t pycode_idx;  /* code id -> index into m->pycodes */
    mp_u64map_t pyline_memo; /* (code id << 32 | offset) -> line: mp_model_pyline_memo */
    size_t cappycodes;
};

/* ---- pass 0: scan every record ----------------------------------------------------------------
 */

static char *
dup_bytes(mp_bytes_t b) {
    char *s = malloc(b.n + 1);
    if (!s) return NULL;
    memcpy(s, b.p, b.n);
    s[b.n] = 0;
    return s;
}

static int
nomem(mp_err_t *err) {
    return mp_err_set(err, MP_ENOMEM, 0, NULL, "replaying the dump");
}

static int
scan_process(mp_model_t *m, const mp_rec_process_t *p, mp_err_t *err) {
    free(m->exe);
    free(m->cwd);
    for (size_t i = 0; i < m->argc; i++) free(m->argv[i]);
    free(m->argv);
    m->argv = NULL;
    m->argc = 0;
    m->exe = dup_bytes(p->exe);
    m->cwd = dup_bytes(p->cwd);
    if (!m->exe || !m->cwd) return nomem(err);
    size_t n = 0;
    for (size_t i = 0; i < p->argv.n; i++)
        if (p->argv.p[i] == 0 || i + 1 == p->argv.n) n++;
    m->argv = calloc(n ? n : 1, sizeof *m->argv);
    if (!m->argv) return nomem(err);
    size_t start = 0;
    for (size_t i = 0; i < p->argv.n; i++) {
        if (p->argv.p[i] == 0 || i + 1 == p->argv.n) {
            size_t end = p->argv.p[i] == 0 ? i : i + 1;
            mp_bytes_t b = {p->argv.p + start, end - start};
            if (!(m->argv[m->argc] = dup_bytes(b))) return nomem(err);
            m->argc++;
            start = i + 1;
        }
    }
    return 0;
}

static int
scan_stream(struct mp_model_priv_s *pv, uint64_t id, size_t *out) {
    uint64_t *idx = mp_u64map_get(&pv->stream_idx, id);
    if (idx) {
        *out = (size_t)*idx;
        return 0;
    }
    if (!PUSH(pv->streams, pv->nstreams, pv->capstreams)) return -1;
    stream_t *s = &pv->streams[pv->nstreams];
    memset(s, 0, sizeof *s);
    s->id = id;
    s->first = s->last = SIZE_MAX;
    if (mp_u64map_put(&pv->stream_idx, id, pv->nstreams) < 0) return -1;
    *out = pv->nstreams++;
    return 0;
}

static int
scan_module(mp_model_t *m, size_t *cap, const mp_rec_module_t *mr, mp_err_t *err) {
    if (!PUSH(m->modules, m->nmodules, *cap)) return nomem(err);
    mp_module_t *mod = &m->modules[m->nmodules];
    memset(mod, 0, sizeof *mod);
    m->nmodules++;
    mod->bias = mr->bias;
    mod->path = dup_bytes(mr->path);
    mod->ranges = malloc((mr->nranges ? mr->nranges : 1) * 2 * sizeof(uint64_t));
    mod->build_id = malloc(mr->build_id.n ? mr->build_id.n : 1);
    if (!mod->path || !mod->ranges || !mod->build_id) return nomem(err);
    mod->nranges = (size_t)mr->nranges;
    for (uint64_t i = 0; i < mr->nranges; i++)
        mp_rec_module_range(mr, i, &mod->ranges[2 * i], &mod->ranges[2 * i + 1]);
    memcpy(mod->build_id, mr->build_id.p, mr->build_id.n);
    mod->build_id_len = mr->build_id.n;
    return 0;
}

static int
scan_pycode(mp_model_t *m, const mp_rec_pycode_t *c, mp_err_t *err) {
    struct mp_model_priv_s *pv = m->priv;
    if (mp_u64map_get(&pv->pycode_idx, c->id)) return 0; /* ids are unique: keep the first */
    if (!PUSH(m->pycodes, m->npycodes, pv->cappycodes)) return nomem(err);
    mp_pycode_t *pc = &m->pycodes[m->npycodes];
    memset(pc, 0, sizeof *pc);
    m->npycodes++;
    pc->id = c->id;
    pc->firstlineno = (int)c->firstlineno;
    pc->table_format = c->table_format > 255 ? 0 : (unsigned)c->table_format;
    pc->table = c->linetable.p;
    pc->table_len = c->linetable.n;
    pc->filename = mp_pystr_utf8(c->filename.kind, c->filename.data.p, c->filename.data.n);
    pc->name = mp_pystr_utf8(c->name.kind, c->name.data.p, c->name.data.n);
    pc->qualname = mp_pystr_utf8(c->qualname.kind, c->qualname.data.p, c->qualname.data.n);
    if (!pc->filename || !pc->name || !pc->qualname) return nomem(err);
    if (mp_u64map_put(&pv->pycode_idx, c->id, m->npycodes - 1) < 0) return nomem(err);
    return 0;
}

static int
add_anchor(struct mp_model_priv_s *pv, uint64_t seq, uint64_t time_ns) {
    if (!PUSH(pv->anchors, pv->nanchors, pv->capanchors)) return -1;
    pv->anchors[pv->nanchors++] = (anchor_t){seq, time_ns};
    return 0;
}

static int
scan_record(mp_model_t *m, const mp_record_t *rec, size_t *modcap, size_t *thrcap, mp_err_t *err) {
    struct mp_model_priv_s *pv = m->priv;
    mp_reader_t *r = pv->r;
    int rc = 0;
    switch (rec->tag) {
        case MP_REC_PROCESS: {
            mp_rec_process_t p;
            if ((rc = mp_rec_process(r, rec, &p, err)) < 0) return rc;
            return scan_process(m, &p, err);
        }
        case MP_REC_THREAD: {
            mp_rec_thread_t t;
            if ((rc = mp_rec_thread(r, rec, &t, err)) < 0) return rc;
            for (size_t i = 0; i < m->nthreads; i++)
                if (m->threads[i].stream == t.stream && m->threads[i].tid == t.tid) return 0;
            if (!PUSH(m->threads, m->nthreads, *thrcap)) return nomem(err);
            m->threads[m->nthreads++] = (mp_thread_t){t.stream, t.tid};
            return 0;
        }
        case MP_REC_EVENTS:
        case MP_REC_STREAM: {
            mp_rec_events_t e;
            rc = rec->tag == MP_REC_EVENTS ? mp_rec_events(r, rec, &e, err)
                                           : mp_rec_stream(r, rec, &e, err);
            if (rc < 0) return rc;
            if (e.first == e.end) return 0;
            size_t si;
            if (scan_stream(pv, e.stream, &si) < 0) return nomem(err);
            if (!PUSH(pv->ev, pv->nev, pv->capev)) return nomem(err);
            pv->ev[pv->nev] = (evrec_t){e, SIZE_MAX};
            stream_t *s = &pv->streams[si];
            if (s->last == SIZE_MAX)
                s->first = pv->nev;
            else
                pv->ev[s->last].next = pv->nev;
            s->last = pv->nev++;
            return 0;
        }
        case MP_REC_STACK: {
            /* Its outer st.shared frames are the previous STACK record's (FORMAT.md 5.4). */
            stackref_t prev = pv->nstacks ? pv->stacks[pv->nstacks - 1] : (stackref_t){0, 0};
            mp_rec_stack_t st;
            if ((rc = mp_rec_stack(r, rec, prev.n, &st, err)) < 0) return rc;
            size_t n = (size_t)st.n;
            while (!pv->frames || pv->nframes + n > pv->capframes) {
                size_t ncap = pv->capframes ? pv->capframes * 2 : 1024;
                uint64_t *f = realloc(pv->frames, ncap * sizeof *f);
                if (!f) return nomem(err);
                pv->frames = f;
                pv->capframes = ncap;
            }
            mp_rec_stack_frames(&st, pv->frames + prev.off, prev.n, pv->frames + pv->nframes);
            if (!PUSH(pv->stacks, pv->nstacks, pv->capstacks)) return nomem(err);
            pv->stacks[pv->nstacks] = (stackref_t){pv->nframes, n};
            pv->nframes += n;
            if (mp_u64map_put(&pv->stack_idx, st.id, pv->nstacks++) < 0) return nomem(err);
            return 0;
        }
        case MP_REC_MODULE: {
            mp_rec_module_t mr;
            if ((rc = mp_rec_module(r, rec, &mr, err)) < 0) return rc;
            return scan_module(m, modcap, &mr, err);
        }
        case MP_REC_SAMPLE: {
            mp_rec_sample_t s;
            if ((rc = mp_rec_sample(r, rec, &s, err)) < 0) return rc;
            if (!PUSH(pv->samples, pv->nsamples, pv->capsamples)) return nomem(err);
            pv->samples[pv->nsamples] = (sample_t){s.seq, s.time_ns, s.rss, pv->nsamples};
            pv->nsamples++;
            if (s.rss > m->summary.rss_peak) m->summary.rss_peak = s.rss;
            if (add_anchor(pv, s.seq, s.time_ns) < 0) return nomem(err);
            return 0;
        }
        case MP_REC_MARKER: {
            mp_rec_marker_t mk;
            if ((rc = mp_rec_marker(r, rec, &mk, err)) < 0) return rc;
            if (mk.kind == MP_MARK_MAIN_END && !pv->have_main_end) {
                pv->have_main_end = true;
                pv->main_end_seq = mk.seq;
            } else if (mk.kind == MP_MARK_EXIT && !pv->have_exit) {
                pv->have_exit = true;
                pv->exit_seq = mk.seq;
            }
            if (add_anchor(pv, mk.seq, mk.time_ns) < 0) return nomem(err);
            return 0;
        }
        case MP_REC_TRAILER: {
            if ((rc = mp_rec_trailer(r, rec, &pv->trailer, err)) < 0) return rc;
            pv->have_trailer = true;
            if (add_anchor(pv, pv->trailer.next_seq, pv->trailer.end_time_ns) < 0)
                return nomem(err);
            return 0;
        }
        case MP_REC_LOST: {
            uint64_t n;
            if ((rc = mp_rec_lost(r, rec, &n, err)) < 0) return rc;
            pv->lost_sum += n;
            return 0;
        }
        case MP_REC_PYCODE: {
            mp_rec_pycode_t c;
            if ((rc = mp_rec_pycode(r, rec, &c, err)) < 0) return rc;
            return scan_pycode(m, &c, err);
        }
        case MP_REC_PYTHON: {
            mp_rec_python_t py;
            if ((rc = mp_rec_python(r, rec, &py, err)) < 0) return rc;
            char *alloc = dup_bytes(py.allocator);
            if (!alloc) return nomem(err);
            free(m->python.allocator);
            m->python = (mp_python_t){true, (uint32_t)py.hexversion, py.hooks, alloc};
            return 0;
        }
        default:
            return 0; /* unknown tag: skipped (FORMAT.md 4) */
    }
}

/* ---- replay: k-way merge of the streams by seq ---------------------------------------------- */

typedef struct merge_s {
    size_t *heap; /* stream indices, min-heap on (ev.seq, index) */
    size_t n;
} merge_t;

static bool
before(const stream_t *s, size_t a, size_t b) {
    if (s[a].ev.seq != s[b].ev.seq) return s[a].ev.seq < s[b].ev.seq;
    return a < b;
}

static void
sift_down(merge_t *h, const stream_t *s, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && before(s, h->heap[l], h->heap[m])) m = l;
        if (r < h->n && before(s, h->heap[r], h->heap[m])) m = r;
        if (m == i) return;
        size_t t = h->heap[i];
        h->heap[i] = h->heap[m];
        h->heap[m] = t;
        i = m;
    }
}

/* Load the next event of stream s into s->ev. Returns 1, 0 when the stream is done, or <0. */
static int
stream_advance(struct mp_model_priv_s *pv, stream_t *s, mp_err_t *err) {
    for (;;) {
        int rc = mp_events_next(&s->it, &s->ev, err);
        if (rc != 0) return rc;
        if (s->cur == SIZE_MAX) return 0;
        s->cur = pv->ev[s->cur].next;
        if (s->cur == SIZE_MAX) return 0;
        mp_events_init(&s->it, pv->r, &pv->ev[s->cur].rec);
    }
}

typedef struct pass1_s { /* what pass 1 measures besides the live table */
    mp_summary_t *sum;
    uint64_t peak_seq;
    bool have_peak;
    uint64_t end_seq; /* leaks: events with seq < end_seq */
    bool end_done;
    size_t next_sample;
    mp_model_t *m;
    mp_perline_t *perline; /* fed every heap change, or NULL */
} pass1_t;

static int aggregate(const live_t *l, mp_site_t **out, size_t *n);

static int
pass1_before(pass1_t *p1, uint64_t seq, bool at_end) {
    struct mp_model_priv_s *pv = p1->m->priv;
    while (p1->next_sample < pv->nsamples && (at_end || pv->samples[p1->next_sample].seq <= seq)) {
        p1->m->timeline[p1->next_sample].heap = pv->live.bytes;
        p1->next_sample++;
    }
    if (!p1->end_done && (at_end || seq >= p1->end_seq)) {
        p1->end_done = true;
        p1->sum->leaked_bytes = pv->live.bytes;
        p1->sum->leaked_blocks = pv->live.len;
        if (aggregate(&pv->live, &p1->m->leaks, &p1->m->nleaks) < 0) return -1;
    }
    return 0;
}

static void
note_peak(pass1_t *p1, const live_t *l, uint64_t seq) {
    if (p1 && l->bytes > p1->sum->peak_bytes) {
        p1->sum->peak_bytes = l->bytes;
        p1->sum->peak_blocks = l->len;
        p1->peak_seq = seq;
        p1->have_peak = true;
    }
}

/* Apply one event of stream s to the live table; p1 is NULL in pass 2. Returns 1 with *st
 * describing the change of the live heap, 0 when nothing changed, or -1 (out of memory). */
static int
apply(struct mp_model_priv_s *pv, stream_t *s, const mp_event_t *ev, pass1_t *p1, mp_step_t *st) {
    live_t *l = &pv->live;
    mp_summary_t *sum = p1 ? p1->sum : NULL;
    if (live_reserve(l) < 0) return -1;
    size_t i = live_find(l, ev->ptr);
    int changed = 0;
    switch (ev->kind) {
        case MP_EV_ALLOC:
            /* A realloc that returned: its FREE can no longer be undone. */
            if (ev->allocator == MP_ALLOC_REALLOC) s->realloc_out.used = 0;
            if (l->t[i].used) {
                if (sum) sum->overlapping_allocs++;
                live_remove_at(l, i);
                i = live_find(l, ev->ptr);
            }
            l->t[i] = (block_t){ev->ptr, ev->size, ev->stack, (uint8_t)ev->allocator, 1};
            l->len++;
            l->bytes += ev->size;
            if (sum) {
                sum->total_allocations++;
                sum->total_bytes += ev->size;
            }
            note_peak(p1, l, ev->seq);
            *st = (mp_step_t){MP_STEP_ALLOC, ev->seq, ev->stack, ev->size, l->bytes};
            changed = 1;
            break;
        case MP_EV_FREE:
            if (!l->t[i].used) {
                if (sum) sum->unknown_frees++;
                if (ev->allocator == MP_ALLOC_REALLOC) s->realloc_out.used = 0;
                break;
            }
            if (ev->allocator == MP_ALLOC_REALLOC) {
                s->realloc_out = l->t[i];
                s->realloc_free_stack = ev->stack;
            }
            *st = (mp_step_t){MP_STEP_FREE, ev->seq, ev->stack, l->t[i].size, 0};
            live_remove_at(l, i);
            st->heap = l->bytes;
            changed = 1;
            if (sum) sum->total_frees++;
            break;
        case MP_EV_REALLOC_FAIL:
            if (!s->realloc_out.used || s->realloc_out.ptr != ev->ptr) break;
            if (l->t[i].used) { /* something else took the address meanwhile: keep it */
                s->realloc_out.used = 0;
                break;
            }
            l->t[i] = s->realloc_out;
            l->len++;
            l->bytes += s->realloc_out.size;
            s->realloc_out.used = 0;
            if (sum && sum->total_frees) sum->total_frees--; /* the free did not happen */
            note_peak(p1, l, ev->seq);
            *st =
                (mp_step_t){MP_STEP_UNFREE, ev->seq, s->realloc_free_stack, l->t[i].size, l->bytes};
            changed = 1;
            break;
        default:
            break;
    }
    return changed;
}

/* Replay every event with seq <= limit (all of them: UINT64_MAX). */
static int
replay(mp_model_t *m, uint64_t limit, pass1_t *p1, mp_err_t *err) {
    struct mp_model_priv_s *pv = m->priv;
    int rc = 0;
    merge_t h = {calloc(pv->nstreams ? pv->nstreams : 1, sizeof(size_t)), 0};
    if (!h.heap) return nomem(err);
    live_clear(&pv->live);
    for (size_t i = 0; i < pv->nstreams; i++) {
        stream_t *s = &pv->streams[i];
        s->realloc_out.used = 0;
        s->cur = s->first;
        if (s->cur == SIZE_MAX) continue;
        mp_events_reset(&s->it);
        mp_events_init(&s->it, pv->r, &pv->ev[s->cur].rec);
        rc = stream_advance(pv, s, err);
        if (rc < 0) goto done;
        if (rc > 0) h.heap[h.n++] = i;
    }
    for (size_t i = h.n; i-- > 0;) sift_down(&h, pv->streams, i);
    while (h.n) {
        stream_t *s = &pv->streams[h.heap[0]];
        mp_event_t ev = s->ev;
        if (ev.seq > limit) break;
        if (p1 && pass1_before(p1, ev.seq, false) < 0) {
            rc = nomem(err);
            goto done;
        }
        mp_step_t st;
        int changed = apply(pv, s, &ev, p1, &st);
        if (changed < 0 ||
            (changed && p1 && p1->perline && mp_perline_step(p1->perline, &st) < 0)) {
            rc = nomem(err);
            goto done;
        }
        rc = stream_advance(pv, s, err);
        if (rc < 0) goto done;
        if (rc == 0) h.heap[0] = h.heap[--h.n];
        sift_down(&h, pv->streams, 0);
    }
    rc = 0;
    if (p1 && pass1_before(p1, UINT64_MAX, true) < 0) rc = nomem(err);
done:
    free(h.heap);
    return rc;
}

/* ---- aggregation by stack ------------------------------------------------------------------- */

static int
cmp_site(const void *a, const void *b) {
    const mp_site_t *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    if (x->blocks != y->blocks) return x->blocks > y->blocks ? -1 : 1;
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

static int
aggregate(const live_t *l, mp_site_t **out, size_t *n) {
    mp_u64map_t idx = {0};
    mp_site_t *sites = NULL;
    size_t len = 0, cap = 0;
    for (size_t i = 0; i < l->cap; i++) {
        const block_t *b = &l->t[i];
        if (!b->used) continue;
        uint64_t *k = mp_u64map_get(&idx, b->stack);
        if (!k) {
            if (!PUSH(sites, len, cap) || mp_u64map_put(&idx, b->stack, len) < 0) goto fail;
            sites[len++] = (mp_site_t){b->stack, 0, 0};
            k = mp_u64map_get(&idx, b->stack);
        }
        sites[*k].bytes += b->size;
        sites[*k].blocks++;
    }
    mp_u64map_free(&idx);
    if (len) qsort(sites, len, sizeof *sites, cmp_site);
    free(*out);
    *out = sites;
    *n = len;
    return 0;
fail:
    mp_u64map_free(&idx);
    free(sites);
    return -1;
}

/* ---- times ---------------------------------------------------------------------------------- */

static int
cmp_anchor(const void *a, const void *b) {
    const anchor_t *x = a, *y = b;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return x->time_ns < y->time_ns ? -1 : x->time_ns > y->time_ns;
}

static int
cmp_sample(const void *a, const void *b) {
    const sample_t *x = a, *y = b;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Seconds since start at which event seq happened, interpolated between the anchors around it. */
static double
time_of_seq(const struct mp_model_priv_s *pv, uint64_t seq) {
    anchor_t a = {0, 0};
    for (size_t i = 0; i < pv->nanchors; i++) {
        const anchor_t *b = &pv->anchors[i];
        if (b->seq <= seq) {
            a = *b;
            continue;
        }
        /* a.seq <= seq < b.seq */
        double frac = (double)(seq - a.seq) / (double)(b->seq - a.seq);
        return ((double)a.time_ns + frac * ((double)b->time_ns - (double)a.time_ns)) / 1e9;
    }
    return (double)a.time_ns / 1e9;
}

/* ---- public --------------------------------------------------------------------------------- */

const char *
mp_at_name(mp_at_t at) {
    switch (at) {
        case mp_at_main_end:
            return "main_end";
        case mp_at_exit:
            return "exit";
        default:
            return "end_of_data";
    }
}

mp_u64map_t *
mp_model_pyline_memo(const mp_model_t *m) {
    return &m->priv->pyline_memo;
}

const mp_pycode_t *
mp_model_pycode(const mp_model_t *m, uint64_t id) {
    const struct mp_model_priv_s *pv = m->priv;
    uint64_t *k = mp_u64map_get(&pv->pycode_idx, id);
    return k ? &m->pycodes[*k] : NULL;
}

bool
mp_model_stack(const mp_model_t *m, uint64_t id, const uint64_t **frames, size_t *n) {
    const struct mp_model_priv_s *pv = m->priv;
    uint64_t *k = mp_u64map_get(&pv->stack_idx, id);
    if (!k || id == 0) {
        *frames = NULL;
        *n = 0;
        return false;
    }
    const stackref_t *s = &pv->stacks[*k];
    *frames = pv->frames + s->off;
    *n = s->n;
    return true;
}

void
mp_model_free(mp_model_t *m) {
    if (!m) return;
    struct mp_model_priv_s *pv = m->priv;
    if (pv) {
        mp_reader_close(pv->r);
        free(pv->ev);
        free(pv->streams);
        mp_u64map_free(&pv->stream_idx);
        free(pv->frames);
        free(pv->stacks);
        mp_u64map_free(&pv->stack_idx);
        free(pv->samples);
        free(pv->anchors);
        free(pv->live.t);
        mp_u64map_free(&pv->pycode_idx);
        mp_u64map_free(&pv->pyline_memo);
        free(pv);
    }
    mp_perline_free(m->perline);
    for (size_t i = 0; i < m->npycodes; i++) {
        free(m->pycodes[i].filename);
        free(m->pycodes[i].name);
        free(m->pycodes[i].qualname);
    }
    free(m->pycodes);
    free(m->python.allocator);
    free(m->exe);
    free(m->cwd);
    for (size_t i = 0; i < m->argc; i++) free(m->argv[i]);
    free(m->argv);
    free(m->leaks);
    free(m->peak);
    free(m->timeline);
    free(m->threads);
    for (size_t i = 0; i < m->nmodules; i++) {
        free(m->modules[i].path);
        free(m->modules[i].ranges);
        free(m->modules[i].build_id);
    }
    free(m->modules);
    free(m);
}

static void
choose_end(const struct mp_model_priv_s *pv, mp_at_t want, mp_at_t *at, uint64_t *seq) {
    if (want != mp_at_exit && pv->have_main_end) {
        *at = mp_at_main_end;
        *seq = pv->main_end_seq;
    } else if (pv->have_exit) {
        *at = mp_at_exit;
        *seq = pv->exit_seq;
    } else {
        *at = mp_at_end_of_data;
        *seq = UINT64_MAX;
    }
}

int
mp_model_build(mp_model_t **out, mp_reader_t *r, const mp_model_opts_t *opts, mp_err_t *err) {
    int rc = 0;
    *out = NULL;
    mp_model_t *m = calloc(1, sizeof *m);
    struct mp_model_priv_s *pv = m ? calloc(1, sizeof *pv) : NULL;
    if (!m || !pv) {
        free(m);
        mp_reader_close(r);
        return nomem(err);
    }
    m->priv = pv;
    pv->r = r;
    m->header = *mp_reader_header(r);

    /* Pass 0: every record but the events themselves. */
    size_t modcap = 0, thrcap = 0;
    mp_record_t rec;
    while ((rc = mp_reader_next(r, &rec, err)) == MP_READ_OK)
        if ((rc = scan_record(m, &rec, &modcap, &thrcap, err)) < 0) goto fail;
    if (rc < 0) goto fail;
    const char *tail = mp_reader_tail_problem(r);
    m->incomplete = tail || !pv->have_trailer;
    if (tail && pv->have_trailer)
        snprintf(m->incomplete_why, sizeof m->incomplete_why, "%s after the trailer", tail);
    else if (tail)
        snprintf(m->incomplete_why, sizeof m->incomplete_why, "no trailer; %s", tail);
    else if (!pv->have_trailer)
        snprintf(m->incomplete_why, sizeof m->incomplete_why,
                 "no trailer; the process was killed or is still running");

    mp_summary_t *sum = &m->summary;
    if (pv->have_trailer) {
        sum->stacks_dropped = pv->trailer.stacks_dropped;
        m->duration = (double)pv->trailer.end_time_ns / 1e9;
    } else {
        uint64_t last = 0;
        for (size_t i = 0; i < pv->nanchors; i++)
            if (pv->anchors[i].time_ns > last) last = pv->anchors[i].time_ns;
        m->duration = (double)last / 1e9;
    }
    sum->lost_events =
        pv->have_trailer && pv->trailer.lost > pv->lost_sum ? pv->trailer.lost : pv->lost_sum;
    if (pv->nanchors) qsort(pv->anchors, pv->nanchors, sizeof *pv->anchors, cmp_anchor);
    if (pv->nsamples) qsort(pv->samples, pv->nsamples, sizeof *pv->samples, cmp_sample);
    m->timeline = calloc(pv->nsamples ? pv->nsamples : 1, sizeof *m->timeline);
    if (!m->timeline) {
        rc = nomem(err);
        goto fail;
    }
    m->ntimeline = pv->nsamples;
    for (size_t i = 0; i < pv->nsamples; i++) {
        m->timeline[i].time_s = (double)pv->samples[i].time_ns / 1e9;
        m->timeline[i].rss = pv->samples[i].rss;
    }

    /* Pass 1: totals, peak moment, leaks at the end point, heap at each sample. */
    pass1_t p1 = {.sum = sum, .m = m};
    choose_end(pv, opts ? opts->at : mp_at_default, &sum->leaks_at, &p1.end_seq);
    if (opts && opts->lines && m->npycodes) {
        if (!(m->perline = mp_perline_new(m))) {
            rc = nomem(err);
            goto fail;
        }
        p1.perline = m->perline;
    }
    if ((rc = replay(m, UINT64_MAX, &p1, err)) < 0) goto fail;

    /* Pass 2: what was live at the peak. */
    if (p1.have_peak) {
        sum->peak_time = time_of_seq(pv, p1.peak_seq);
        if ((rc = replay(m, p1.peak_seq, NULL, err)) < 0) goto fail;
        if (aggregate(&pv->live, &m->peak, &m->npeak) < 0) {
            rc = nomem(err);
            goto fail;
        }
    }
    if (m->perline && mp_perline_finish(m->perline, m) < 0) {
        rc = nomem(err);
        goto fail;
    }
    free(pv->live.t); /* the live table is only needed while replaying */
    pv->live = (live_t){0};
    *out = m;
    return 0;
fail:
    mp_model_free(m);
    return rc;
}

int
mp_model_load(mp_model_t **out, const char *path, const mp_model_opts_t *opts, mp_err_t *err) {
    mp_reader_t *r = NULL;
    *out = NULL;
    int rc = mp_reader_open(&r, path, err);
    if (rc < 0) return rc;
    return mp_model_build(out, r, opts, err);
}
