/* dumpgen.c - in-memory dump builder for tests (see dumpgen.h). */
#include "dumpgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
put(uint8_t **buf, size_t *len, size_t *cap, const void *p, size_t n) {
    if (*len + n > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *len + n) nc *= 2;
        *buf = realloc(*buf, nc);
        if (!*buf) abort();
        *cap = nc;
    }
    if (n) memcpy(*buf + *len, p, n);
    *len += n;
}

static void
put_varint(uint8_t **buf, size_t *len, size_t *cap, uint64_t v) {
    uint8_t tmp[MP_VARINT_MAX];
    put(buf, len, cap, tmp, mp_varint_put(tmp, v));
}

/* An event's integer: a prefix varint in a STREAM record (FORMAT.md 2.4), else LEB128. */
static void
ev_int(mp_dg_t *g, uint64_t v) {
    uint8_t tmp[MP_PVARINT_MAX + 8];
    if (g->ev_cont)
        put(&g->ev, &g->evlen, &g->evcap, tmp, mp_pvarint_put(tmp, v));
    else
        put_varint(&g->ev, &g->evlen, &g->evcap, v);
}

void
mp_dg_init_header(mp_dg_t *g, const mp_fmt_header_t *h) {
    memset(g, 0, sizeof *g);
    g->major = h->major;
    uint8_t hdr[MP_FMT_HEADER_SIZE];
    mp_fmt_header_encode(h, hdr);
    put(&g->buf, &g->len, &g->cap, hdr, sizeof hdr);
    /* A larger header_size is honoured by readers: pad with zeros. */
    for (size_t i = MP_FMT_HEADER_SIZE; i < h->header_size; i++) {
        uint8_t z = 0;
        put(&g->buf, &g->len, &g->cap, &z, 1);
    }
}

void
mp_dg_init(mp_dg_t *g) {
    mp_fmt_header_t h = {
        .major = MP_FORMAT_MAJOR,
        .minor = MP_FORMAT_MINOR,
        .header_size = MP_FMT_HEADER_SIZE,
        .flags = MP_FMT_FLAG_NATIVE,
        .ptr_size = 8,
        .pid = 1234,
        .ppid = 1,
        .start_real_ns = 1700000000123456789ull,
        .start_mono_ns = 5000000000ull,
        .page_size = 4096,
    };
    mp_dg_init_header(g, &h);
}

void
mp_dg_free(mp_dg_t *g) {
    free(g->buf);
    free(g->chunk);
    free(g->ev);
    memset(g, 0, sizeof *g);
}

uint64_t
mp_dg_next_offset(const mp_dg_t *g) {
    return g->len + MP_CHUNK_HEADER_SIZE + g->clen;
}

void
mp_dg_record(mp_dg_t *g, unsigned tag, const void *body, size_t len) {
    uint8_t t = (uint8_t)tag;
    put(&g->chunk, &g->clen, &g->ccap, &t, 1);
    put_varint(&g->chunk, &g->clen, &g->ccap, len);
    put(&g->chunk, &g->clen, &g->ccap, body, len);
}

/* A scratch body builder. */
typedef struct body_s {
    uint8_t *p;
    size_t len, cap;
} body_t;

static void
bv(body_t *b, uint64_t v) {
    put_varint(&b->p, &b->len, &b->cap, v);
}

static void
bbytes(body_t *b, const void *p, size_t n) {
    bv(b, n);
    put(&b->p, &b->len, &b->cap, p, n);
}

static void
emit(mp_dg_t *g, unsigned tag, body_t *b) {
    mp_dg_record(g, tag, b->p, b->len);
    free(b->p);
}

void
mp_dg_process(mp_dg_t *g, const char *exe, const char *argv, size_t argv_len, const char *cwd) {
    body_t b = {0};
    bbytes(&b, exe, strlen(exe));
    bbytes(&b, argv, argv_len);
    bbytes(&b, cwd, strlen(cwd));
    emit(g, MP_REC_PROCESS, &b);
}

void
mp_dg_thread(mp_dg_t *g, uint64_t stream, uint64_t tid) {
    body_t b = {0};
    bv(&b, stream);
    bv(&b, tid);
    emit(g, MP_REC_THREAD, &b);
}

void
mp_dg_stack(mp_dg_t *g, uint64_t id, const uint64_t *frames, size_t n) {
    body_t b = {0};
    bv(&b, id);
    bv(&b, n);
    size_t shared = 0;
    if (g->major >= 3) {
        while (shared < n && shared < g->prev_n &&
               frames[n - 1 - shared] == g->prev_frames[g->prev_n - 1 - shared])
            shared++;
        bv(&b, shared);
        if (n <= sizeof g->prev_frames / sizeof g->prev_frames[0]) {
            memcpy(g->prev_frames, frames, n * sizeof *frames);
            g->prev_n = n;
        }
    }
    uint64_t prev = 0;
    for (size_t i = 0; i < n - shared; i++) {
        bv(&b, mp_zigzag((int64_t)(frames[i] - prev)));
        prev = frames[i];
    }
    emit(g, MP_REC_STACK, &b);
}

void
mp_dg_module(mp_dg_t *g, uint64_t bias, const uint64_t *ranges, size_t nranges, const char *path,
             const uint8_t *build_id, size_t build_id_len) {
    body_t b = {0};
    bv(&b, bias);
    bv(&b, nranges);
    for (size_t i = 0; i < 2 * nranges; i++) bv(&b, ranges[i]);
    bbytes(&b, path, strlen(path));
    bbytes(&b, build_id, build_id_len);
    emit(g, MP_REC_MODULE, &b);
}

void
mp_dg_sample(mp_dg_t *g, uint64_t time_ns, uint64_t seq, uint64_t rss) {
    body_t b = {0};
    bv(&b, time_ns);
    bv(&b, seq);
    bv(&b, rss);
    emit(g, MP_REC_SAMPLE, &b);
}

void
mp_dg_marker(mp_dg_t *g, uint64_t kind, uint64_t seq, uint64_t time_ns) {
    body_t b = {0};
    bv(&b, kind);
    bv(&b, seq);
    bv(&b, time_ns);
    emit(g, MP_REC_MARKER, &b);
}

void
mp_dg_trailer(mp_dg_t *g, uint64_t events, uint64_t allocs, uint64_t frees, uint64_t alloc_bytes,
              uint64_t lost, uint64_t end_time_ns, uint64_t next_seq, uint64_t stacks_dropped) {
    body_t b = {0};
    uint64_t v[] = {events, allocs,      frees,    alloc_bytes,
                    lost,   end_time_ns, next_seq, stacks_dropped};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) bv(&b, v[i]);
    emit(g, MP_REC_TRAILER, &b);
}

void
mp_dg_lost(mp_dg_t *g, uint64_t count) {
    body_t b = {0};
    bv(&b, count);
    emit(g, MP_REC_LOST, &b);
}

mp_dg_pystr_t
mp_dg_latin1(const char *s) {
    mp_dg_pystr_t p = {1, s, strlen(s)};
    return p;
}

static void
bpystr(body_t *b, mp_dg_pystr_t s) {
    bv(b, s.kind);
    bbytes(b, s.data, s.len);
}

void
mp_dg_pycode(mp_dg_t *g, uint64_t id, uint64_t firstlineno, uint64_t table_format,
             mp_dg_pystr_t filename, mp_dg_pystr_t name, mp_dg_pystr_t qualname,
             const uint8_t *table, size_t table_len) {
    body_t b = {0};
    bv(&b, id);
    bv(&b, firstlineno);
    bv(&b, table_format);
    bpystr(&b, filename);
    bpystr(&b, name);
    bpystr(&b, qualname);
    bbytes(&b, table, table_len);
    emit(g, MP_REC_PYCODE, &b);
}

void
mp_dg_python(mp_dg_t *g, uint64_t hexversion, uint64_t hooks, const char *allocator) {
    body_t b = {0};
    bv(&b, hexversion);
    bv(&b, hooks);
    bbytes(&b, allocator, strlen(allocator));
    emit(g, MP_REC_PYTHON, &b);
}

void
mp_dg_events_begin(mp_dg_t *g, uint64_t stream, uint64_t base_seq) {
    g->ev_open = 1;
    g->evlen = 0;
    g->ev_stream = stream;
    g->ev_base = base_seq;
    g->ev_seq = base_seq;
    g->ev_ptr = 0;
    g->ev_count = 0;
    g->ev_cont = 0;
}

void
mp_dg_stream_begin(mp_dg_t *g, uint64_t stream) {
    if (stream >= 64) abort();
    mp_dg_events_begin(g, stream, g->last_seq[stream]);
    g->ev_ptr = g->last_ptr[stream];
    g->ev_ptr2 = g->last_ptr2[stream];
    g->ev_cont = 1;
}

static void
ev_fixed(mp_dg_t *g, uint64_t v, int bytes) {
    uint8_t tmp[3];
    for (int i = 0; i < bytes; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    put(&g->ev, &g->evlen, &g->evcap, tmp, (size_t)bytes);
}

/* One event. In a STREAM record (FORMAT.md 5.12) with the head's flags: the stack (of an ALLOC or
 * FREE) the same as the stream's previous one; and from 4.0 the short form where it applies (as
 * the library writes it: seq + 1, fixed-width fields), else bit 7 clear and the seq written; before
 * 4.0, bit 7 says seq + 1. The short form's ptr field is zigzagged in 4.x, offset from 5.0. */
static void
ev_put(mp_dg_t *g, unsigned kind, unsigned allocator, uint64_t seq, uint64_t ptr, uint64_t size,
       uint64_t stack) {
    int has_stack = kind != MP_EV_REALLOC_FAIL;
    uint64_t *last_stack = g->ev_stream < 64 ? &g->last_stack[g->ev_stream] : NULL;
    int same = g->ev_cont && has_stack && last_stack && *last_stack == stack;
    int put_stack = has_stack && !same;
    uint64_t d = ptr - g->ev_ptr, d2 = ptr - g->ev_ptr2;
    uint64_t z = mp_zigzag((int64_t)d >> 4), z2 = mp_zigzag((int64_t)d2 >> 4);
    /* The field: the quotient offset by 2^22 from 5.0 (within reach, where z has 23 bits), its
     * zigzag in 4.x. */
    uint64_t f = g->major >= 5 ? (d >> 4) + (1u << 22) : z,
             f2 = g->major >= 5 ? (d2 >> 4) + (1u << 22) : z2;
    int fits = g->ev_cont && g->major >= 4 && seq - g->ev_seq == 1 &&
               (kind != MP_EV_ALLOC || size < (1u << 16)) && (!put_stack || stack < (1u << 24));
    /* The short form against the previous ptr, else against the other base (bit 23), else the
     * long form; after either of the last two the previous ptr is the other base. */
    int base0 = fits && (d & 15) == 0 && z < (1u << 23);
    int base1 = fits && !base0 && (d2 & 15) == 0 && z2 < (1u << 23);
    int shortf = base0 || base1;
    int seq1 = g->ev_cont && (g->major >= 4 ? shortf : seq - g->ev_seq == 1);
    uint8_t head = (uint8_t)(MP_EV_HEAD(kind, allocator) | seq1 << 7 | same << 2);
    put(&g->ev, &g->evlen, &g->evcap, &head, 1);
    if (g->ev_cont && !base0) g->ev_ptr2 = g->ev_ptr;
    if (shortf) {
        ev_fixed(g, base0 ? f : f2 | 1u << 23, 3);
        if (kind == MP_EV_ALLOC) ev_fixed(g, size, 2);
        if (put_stack) ev_fixed(g, stack, 3);
    } else {
        if (!seq1) ev_int(g, seq - g->ev_seq);
        ev_int(g, mp_zigzag((int64_t)d));
        if (kind == MP_EV_ALLOC) ev_int(g, size);
        if (put_stack) ev_int(g, stack);
    }
    g->ev_seq = seq;
    g->ev_ptr = ptr;
    g->ev_count++;
    if (has_stack && last_stack) *last_stack = stack;
}

void
mp_dg_alloc(mp_dg_t *g, uint64_t seq, uint64_t ptr, uint64_t size, uint64_t stack,
            unsigned allocator) {
    ev_put(g, MP_EV_ALLOC, allocator, seq, ptr, size, stack);
}

void
mp_dg_free_ev(mp_dg_t *g, uint64_t seq, uint64_t ptr, uint64_t stack, unsigned allocator) {
    ev_put(g, MP_EV_FREE, allocator, seq, ptr, 0, stack);
}

void
mp_dg_realloc_fail(mp_dg_t *g, uint64_t seq, uint64_t ptr) {
    ev_put(g, MP_EV_REALLOC_FAIL, MP_ALLOC_REALLOC, seq, ptr, 0, 0);
}

void
mp_dg_events_end(mp_dg_t *g) {
    body_t b = {0};
    bv(&b, g->ev_stream);
    if (!g->ev_cont) {
        bv(&b, g->ev_count);
        bv(&b, g->ev_base);
    }
    put(&b.p, &b.len, &b.cap, g->ev, g->evlen);
    emit(g, g->ev_cont ? MP_REC_STREAM : MP_REC_EVENTS, &b);
    g->ev_open = 0;
    if (g->ev_stream < 64 && g->ev_count) {
        g->last_seq[g->ev_stream] = g->ev_seq;
        g->last_ptr[g->ev_stream] = g->ev_ptr;
        g->last_ptr2[g->ev_stream] = g->ev_ptr2;
    }
}

void
mp_dg_flush(mp_dg_t *g) {
    if (g->clen == 0) return;
    uint8_t hdr[MP_CHUNK_HEADER_SIZE];
    mp_chunk_header_encode((uint32_t)g->clen, mp_crc32c(0, g->chunk, g->clen), hdr);
    if (g->nchunks < sizeof g->chunk_off / sizeof g->chunk_off[0])
        g->chunk_off[g->nchunks] = g->len;
    g->nchunks++;
    put(&g->buf, &g->len, &g->cap, hdr, sizeof hdr);
    put(&g->buf, &g->len, &g->cap, g->chunk, g->clen);
    g->clen = 0;
}

char *
mp_dg_write_temp(mp_dg_t *g) {
    mp_dg_flush(g);
    char *path = strdup("/tmp/memprof-test-XXXXXX");
    if (!path) abort();
    int fd = mkstemp(path);
    if (fd < 0) abort();
    size_t off = 0;
    while (off < g->len) {
        ssize_t n = write(fd, g->buf + off, g->len - off);
        if (n <= 0) abort();
        off += (size_t)n;
    }
    close(fd);
    return path;
}
