/* reader.c - maps a dump and hands out validated records (docs/FORMAT.md sections 3-7).
 *
 * What this owns: the error map's texts, the file mapping, header and chunk validation, record
 * framing and the bounds-checked decoding of every record body, including the per-event cursor.
 * What this is not: interpretation. The replay lives in model.c; this file only promises that
 * what it returns lies inside the file and has the shape FORMAT.md describes.
 *
 * Truncation policy (FORMAT.md 7): data that ends inside the last chunk (a partial chunk header,
 * a payload cut by EOF, a last chunk failing its payload crc, or an all-zero tail) ends the
 * records quietly and is described by mp_reader_tail_problem(); the same damage followed by more
 * data is corruption.
 */
#include "reader.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pylines.h"

/* ---- errors --------------------------------------------------------------------------------- */

const char *
mp_strerror(int code) {
#define MP_ERR_TEXT_(name, text)                                                                   \
    case MP_E##name:                                                                               \
        return text;
    switch (code) {
        MP_ERRNO_MAP(MP_ERR_TEXT_)
        default:
            return "unknown error";
    }
#undef MP_ERR_TEXT_
}

int
mp_err_set(mp_err_t *err, int code, uint64_t offset, const char *doing, const char *fmt, ...) {
    if (err) {
        err->code = code;
        err->offset = offset;
        err->doing = doing;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

char *
mp_err_format(const mp_err_t *err, char *buf, size_t size) {
    if (err->doing)
        snprintf(buf, size, "%s at offset 0x%llx while %s (%s)", mp_strerror(err->code),
                 (unsigned long long)err->offset, err->doing, err->msg);
    else if (err->msg[0])
        snprintf(buf, size, "%s (%s)", mp_strerror(err->code), err->msg);
    else
        snprintf(buf, size, "%s", mp_strerror(err->code));
    return buf;
}

/* ---- the reader ----------------------------------------------------------------------------- */

struct mp_reader_s {
    const uint8_t *base; /* the whole file */
    size_t len;
    int backing;         /* 0 caller's buffer, 1 mmap, 2 malloc */
    mp_fmt_header_t hdr; /* decoded header */
    size_t pos;          /* offset of the next chunk */
    const uint8_t *rp;   /* next record in the current chunk */
    const uint8_t *cend; /* end of the current chunk's payload */
    int state;           /* 0 reading, 1 at EOF, <0 the MP_E* returned */
    mp_err_t err;        /* the error returned, replayed on later calls */
    char tail[160];      /* mp_reader_tail_problem(), "" if none */
};

static const char *const DOING_HEADER = "reading file header";
static const char *const DOING_CHUNK = "reading chunk header";
static const char *const DOING_PAYLOAD = "reading chunk payload";

static const char *
doing_record(unsigned tag) {
    switch (tag) {
        case MP_REC_PROCESS:
            return "reading process record";
        case MP_REC_THREAD:
            return "reading thread record";
        case MP_REC_EVENTS:
            return "reading events record";
        case MP_REC_STACK:
            return "reading stack record";
        case MP_REC_MODULE:
            return "reading module record";
        case MP_REC_SAMPLE:
            return "reading sample record";
        case MP_REC_MARKER:
            return "reading marker record";
        case MP_REC_TRAILER:
            return "reading trailer record";
        case MP_REC_LOST:
            return "reading lost record";
        case MP_REC_PYCODE:
            return "reading pycode record";
        case MP_REC_PYTHON:
            return "reading python record";
        case MP_REC_STREAM:
            return "reading stream record";
        default:
            return "reading record header";
    }
}

static int
check_header(mp_reader_t *r, mp_err_t *err) {
    size_t n = r->len < 8 ? r->len : 8;
    if (memcmp(r->base, MP_FMT_MAGIC, n) != 0)
        return mp_err_set(err, MP_ENOTDUMP, 0, DOING_HEADER, "bad magic");
    if (r->len < MP_FMT_HEADER_SIZE)
        return mp_err_set(err, MP_ESHORT, r->len, DOING_HEADER,
                          "file is %zu bytes, the header needs %u", r->len, MP_FMT_HEADER_SIZE);
    switch (mp_fmt_header_decode(r->base, &r->hdr)) {
        case 0:
            break;
        case -1:
            return mp_err_set(err, MP_ENOTDUMP, 0, DOING_HEADER, "bad magic");
        case -3:
            return mp_err_set(err, MP_ENEWER, 8, DOING_HEADER,
                              "format %u.%u is newer than this reporter (%u.%u)", r->hdr.major,
                              r->hdr.minor, MP_FORMAT_MAJOR, MP_FORMAT_MINOR);
        default:
            return mp_err_set(err, MP_EHEADER, 60, DOING_HEADER, "header crc mismatch");
    }
    if (r->hdr.header_size < MP_FMT_HEADER_SIZE)
        return mp_err_set(err, MP_EHEADER, 12, DOING_HEADER, "header size %u is below %u",
                          r->hdr.header_size, MP_FMT_HEADER_SIZE);
    if (r->hdr.header_size > r->len)
        return mp_err_set(err, MP_ESHORT, r->len, DOING_HEADER,
                          "file is %zu bytes, the header declares %u", r->len, r->hdr.header_size);
    r->pos = r->hdr.header_size;
    return 0;
}

int
mp_reader_open_mem(mp_reader_t **out, const void *buf, size_t len, mp_err_t *err) {
    *out = NULL;
    mp_reader_t *r = calloc(1, sizeof *r);
    if (!r) return mp_err_set(err, MP_ENOMEM, 0, NULL, "allocating the reader");
    r->base = buf;
    r->len = len;
    int rc = check_header(r, err);
    if (rc < 0) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Read a non-mappable file (pipe, /dev/stdin) into memory. */
static int
slurp(int fd, uint8_t **out, size_t *len, mp_err_t *err) {
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) return mp_err_set(err, MP_ENOMEM, 0, NULL, "reading the dump");
    for (;;) {
        if (n == cap) {
            uint8_t *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return mp_err_set(err, MP_ENOMEM, 0, NULL, "reading the dump");
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            return mp_err_set(err, MP_EIO, 0, NULL, "%s", strerror(e));
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    *out = buf;
    *len = n;
    return 0;
}

int
mp_reader_open(mp_reader_t **out, const char *path, mp_err_t *err) {
    *out = NULL;
    int rc = 0;
    mp_reader_t *r = calloc(1, sizeof *r);
    if (!r) return mp_err_set(err, MP_ENOMEM, 0, NULL, "allocating the reader");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = mp_err_set(err, MP_EIO, 0, NULL, "%s", strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = mp_err_set(err, MP_EIO, 0, NULL, "%s", strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = mp_err_set(err, MP_EIO, 0, NULL, "%s", strerror(EISDIR));
        goto fail;
    }
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            rc = mp_err_set(err, MP_EIO, 0, NULL, "mmap: %s", strerror(errno));
            goto fail;
        }
        madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
        r->base = m;
        r->len = (size_t)st.st_size;
        r->backing = 1;
    } else {
        uint8_t *buf = NULL;
        rc = slurp(fd, &buf, &r->len, err);
        if (rc < 0) goto fail;
        r->base = buf;
        r->backing = 2;
    }
    close(fd);
    fd = -1;
    rc = check_header(r, err);
    if (rc < 0) goto fail;
    *out = r;
    return 0;
fail:
    if (fd >= 0) close(fd);
    mp_reader_close(r);
    return rc;
}

void
mp_reader_close(mp_reader_t *r) {
    if (!r) return;
    if (r->backing == 1) munmap((void *)r->base, r->len);
    if (r->backing == 2) free((void *)r->base);
    free(r);
}

const mp_fmt_header_t *
mp_reader_header(const mp_reader_t *r) {
    return &r->hdr;
}

uint64_t
mp_reader_size(const mp_reader_t *r) {
    return r->len;
}

const char *
mp_reader_tail_problem(const mp_reader_t *r) {
    return r->tail[0] ? r->tail : NULL;
}

static bool
all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

/* Stop quietly: the data ends inside the last chunk. */
static int
stop_tail(mp_reader_t *r, const char *fmt, unsigned long long off) {
    snprintf(r->tail, sizeof r->tail, fmt, off);
    r->state = 1;
    return MP_READ_EOF;
}

static int
fail(mp_reader_t *r, mp_err_t *err, int code) {
    r->state = code;
    r->err = *err;
    return code;
}

/* Enter the chunk at r->pos. Returns 1 entered, MP_READ_EOF, or a negative MP_E*. */
static int
enter_chunk(mp_reader_t *r, mp_err_t *err) {
    size_t pos = r->pos, left = r->len - pos;
    if (left == 0) {
        r->state = 1;
        return MP_READ_EOF;
    }
    if (all_zero(r->base + pos, left))
        return stop_tail(r, "the file ends in zero bytes from offset 0x%llx", pos);
    if (left < MP_CHUNK_HEADER_SIZE)
        return stop_tail(r, "the last chunk at offset 0x%llx is cut inside its header", pos);
    uint32_t plen = 0, pcrc = 0;
    switch (mp_chunk_header_decode(r->base + pos, &plen, &pcrc)) {
        case 0:
            break;
        case -1:
            mp_err_set(err, MP_ECHUNK_MAGIC, pos, DOING_CHUNK, "bad chunk magic");
            return fail(r, err, MP_ECHUNK_MAGIC);
        case -2:
            mp_err_set(err, MP_ECHUNK_HCRC, pos, DOING_CHUNK, "chunk header crc mismatch");
            return fail(r, err, MP_ECHUNK_HCRC);
        default:
            mp_err_set(err, MP_ECHUNK_LEN, pos, DOING_CHUNK,
                       "payload length %u is over the maximum %u", plen, MP_CHUNK_MAX_PAYLOAD);
            return fail(r, err, MP_ECHUNK_LEN);
    }
    if (plen > left - MP_CHUNK_HEADER_SIZE)
        return stop_tail(r, "the last chunk at offset 0x%llx is cut short", pos);
    const uint8_t *payload = r->base + pos + MP_CHUNK_HEADER_SIZE;
    if (mp_crc32c(0, payload, plen) != pcrc) {
        if (plen == left - MP_CHUNK_HEADER_SIZE)
            return stop_tail(r, "the last chunk at offset 0x%llx fails its payload crc", pos);
        mp_err_set(err, MP_ECHUNK_CRC, pos, DOING_PAYLOAD, "payload crc mismatch");
        return fail(r, err, MP_ECHUNK_CRC);
    }
    r->rp = payload;
    r->cend = payload + plen;
    r->pos = pos + MP_CHUNK_HEADER_SIZE + plen;
    return 1;
}

int
mp_reader_next(mp_reader_t *r, mp_record_t *rec, mp_err_t *err) {
    if (r->state == 1) return MP_READ_EOF;
    if (r->state < 0) {
        if (err) *err = r->err;
        return r->state;
    }
    mp_err_t scratch;
    if (!err) err = &scratch;
    while (!r->rp || r->rp >= r->cend) {
        int rc = enter_chunk(r, err);
        if (rc <= 0) return rc;
    }
    const uint8_t *p = r->rp;
    uint64_t off = (uint64_t)(p - r->base), len = 0;
    unsigned tag = *p++;
    if (mp_varint_get(&p, r->cend, &len) < 0) {
        mp_err_set(err, MP_EVARINT, off + 1, "reading record header",
                   "bad length varint for a %s record", mp_rec_name(tag));
        return fail(r, err, MP_EVARINT);
    }
    if (len > (uint64_t)(r->cend - p)) {
        mp_err_set(err, MP_ERECORD, off, "reading record header",
                   "%s record of %llu bytes runs past the chunk end (%zu bytes left)",
                   mp_rec_name(tag), (unsigned long long)len, (size_t)(r->cend - p));
        return fail(r, err, MP_ERECORD);
    }
    rec->tag = tag;
    rec->body = p;
    rec->len = (size_t)len;
    rec->offset = off;
    rec->body_offset = (uint64_t)(p - r->base);
    r->rp = p + len;
    return MP_READ_OK;
}

/* ---- body decoding -------------------------------------------------------------------------- */

/* A bounds-checked cursor over one record body. */
typedef struct cur_s {
    const uint8_t *p, *end, *base;
    const char *doing;
    mp_err_t *err;
} cur_t;

static cur_t
cur_of(const mp_reader_t *r, const mp_record_t *rec, mp_err_t *err) {
    cur_t c = {rec->body, rec->body + rec->len, r->base, doing_record(rec->tag), err};
    return c;
}

/* Why a varint at p failed: it runs past end (FIELD), or it is overlong (VARINT). */
static int
varint_error(const uint8_t *p, const uint8_t *end, const uint8_t *base, const char *doing,
             const char *field, mp_err_t *err) {
    size_t avail = (size_t)(end - p);
    bool terminated = false;
    for (size_t i = 0; i < avail && i < MP_VARINT_MAX; i++)
        if (!(p[i] & 0x80)) {
            terminated = true;
            break;
        }
    if (!terminated && avail < MP_VARINT_MAX)
        return mp_err_set(err, MP_EFIELD, (uint64_t)(p - base), doing,
                          "%s runs past the record end", field);
    return mp_err_set(err, MP_EVARINT, (uint64_t)(p - base), doing, "bad varint for %s", field);
}

static int
cur_varint(cur_t *c, uint64_t *v, const char *field) {
    const uint8_t *p = c->p;
    if (mp_varint_get(&c->p, c->end, v) < 0)
        return varint_error(p, c->end, c->base, c->doing, field, c->err);
    return 0;
}

static int
cur_bytes(cur_t *c, mp_bytes_t *b, const char *field) {
    uint64_t n;
    const uint8_t *start = c->p;
    int rc = cur_varint(c, &n, field);
    if (rc < 0) return rc;
    if (n > (uint64_t)(c->end - c->p))
        return mp_err_set(c->err, MP_EFIELD, (uint64_t)(start - c->base), c->doing,
                          "%s of %llu bytes runs past the record end", field,
                          (unsigned long long)n);
    b->p = c->p;
    b->n = (size_t)n;
    c->p += n;
    return 0;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_ < 0) return rc_;                                                                   \
    } while (0)

int
mp_rec_process(const mp_reader_t *r, const mp_record_t *rec, mp_rec_process_t *out, mp_err_t *err) {
    cur_t c = cur_of(r, rec, err);
    TRY(cur_bytes(&c, &out->exe, "exe"));
    TRY(cur_bytes(&c, &out->argv, "argv"));
    TRY(cur_bytes(&c, &out->cwd, "cwd"));
    return 0;
}

int
mp_rec_thread(const mp_reader_t *r, const mp_record_t *rec, mp_rec_thread_t *out, mp_err_t *err) {
    cur_t c = cur_of(r, rec, err);
    TRY(cur_varint(&c, &out->stream, "stream"));
    TRY(cur_varint(&c, &out->tid, "tid"));
    return 0;
}

/* The smallest event: head byte, one-byte seq delta, one-byte ptr delta (a REALLOC_FAIL). */
#define MIN_EVENT_BYTES 3u

int
mp_rec_events(const mp_reader_t *r, const mp_record_t *rec, mp_rec_events_t *out, mp_err_t *err) {
    cur_t c = cur_of(r, rec, err);
    TRY(cur_varint(&c, &out->stream, "stream"));
    const uint8_t *count_at = c.p;
    TRY(cur_varint(&c, &out->count, "count"));
    TRY(cur_varint(&c, &out->base_seq, "base_seq"));
    if (out->count > (uint64_t)(c.end - c.p) / MIN_EVENT_BYTES)
        return mp_err_set(err, MP_EFIELD, (uint64_t)(count_at - r->base), c.doing,
                          "%llu events cannot fit in %zu bytes", (unsigned long long)out->count,
                          (size_t)(c.end - c.p));
    out->first = c.p;
    out->end = c.end;
    out->cont = 0;
    return 0;
}

int
mp_rec_stream(const mp_reader_t *r, const mp_record_t *rec, mp_rec_events_t *out, mp_err_t *err) {
    cur_t c = cur_of(r, rec, err);
    TRY(cur_varint(&c, &out->stream, "stream"));
    out->count = out->base_seq = 0;
    out->first = c.p;
    out->end = c.end;
    out->cont = 1;
    return 0;
}

int
mp_rec_stack(const mp_reader_t *r, const mp_record_t *rec, uint64_t prev_n, mp_rec_stack_t *out,
             mp_err_t *err) {
    cur_t c = cur_of(r, rec, err);
    TRY(cur_varint(&c, &out->id, "stack id"));
    const uint8_t *n_at = c.p;
    TRY(cur_varint(&c, &out->n, "frame count"));
    if (out->n > MP_FMT_STACK_MAX)
        return mp_err_set(err, MP_EFIELD, (uint64_t)(n_at - r->base), c.doing,
                          "a stack of %llu frames (at most %u)", (unsigned long long)out->n,
                          MP_FMT_STACK_MAX);
    out->shared = 0;
    if (r->hdr.major >= 3) {
        const uint8_t *k_at = c.p;
        TRY(cur_varint(&c, &out->shared, "shared frame count"));
        if (out->shared > out->n)
            return mp_err_set(err, MP_EFIELD, (uint64_t)(k_at - r->base), c.doing,
                              "%llu shared frames in a stack of %llu",
                              (unsigned long long)out->shared, (unsigned long long)out->n);
        if (out->shared > prev_n)
            return mp_err_set(err, MP_EFIELD, (uint64_t)(k_at - r->base), c.doing,
                              "stack %llu shares %llu frames with a stack of %llu",
                              (unsigned long long)out->id, (unsigned long long)out->shared,
                              (unsigned long long)prev_n);
    }
    uint64_t own = out->n - out->shared;
    if (own > (uint64_t)(c.end - c.p))
        return mp_err_set(err, MP_EFIELD, (uint64_t)(n_at - r->base), c.doing,
                          "%llu frames cannot fit in %zu bytes", (unsigned long long)own,
                          (size_t)(c.end - c.p));
    out->frames = c.p;
    for (uint64_t i = 0; i < own; i++) {
        uint64_t v;
        TRY(cur_varint(&c, &v, "frame"));
    }
    out->end = c.p;
    return 0;
}

void
mp_rec_stack_frames(const mp_rec_stack_t *s, const uint64_t *prev, uint64_t prev_n, uint64_t *out) {
    const uint8_t *p = s->frames;
    uint64_t v = 0, own = s->n - s->shared;
    for (uint64_t i = 0; i < own; i++) {
        uint64_t z = 0;
        if (mp_varint_get(&p, s->end, &z) < 0) z = 0; /* validated by mp_rec_stack */
        v += (uint64_t)mp_unzigzag(z);
        out[i] = v;
    }
    if (s->shared) memcpy(out + own, prev + prev_n - s->shared, (size_t)s->shared * sizeof *out);
}

int
mp_rec_module(const mp_reader_t *r, const mp_record_t *rec, mp_rec_module_t *out, mp_err_t *err) {
    cur_t c = cur_of(r, rec, err);
    TRY(cur_varint(&c, &out->bias, "bias"));
    const uint8_t *n_at = c.p;
    TRY(cur_varint(&c, &out->nranges, "range count"));
    if (out->nranges > (uint64_t)(c.end - c.p) / 2)
        return mp_err_set(err, MP_EFIELD, (uint64_t)(n_at - r->base), c.doing,
                          "%llu ranges cannot fit in %zu bytes", (unsigned long long)out->nranges,
                          (size_t)(c.end - c.p));
    out->ranges = c.p;
    for (uint64_t i = 0; i < 2 * out->nranges; i++) {
        uint64_t v;
        TRY(cur_varint(&c, &v, "range"));
    }
    TRY(cur_bytes(&c, &out->path, "path"));
    TRY(cur_bytes(&c, &out->build_id, "build_id"));
    return 0;
}

void
mp_rec_module_range(const mp_rec_module_t *m, uint64_t i, uint64_t *start, uint64_t *end) {
    /* Validated by mp_rec_module: 2 * nranges varints follow m->ranges before the path. */
    const uint8_t *p = m->ranges, *lim = m->path.p;
    uint64_t v = 0;
    *start = *end = 0;
    for (uint64_t k = 0; k <= 2 * i + 1; k++) {
        if (mp_varint_get(&p, lim, &v) < 0) return;
        if (k == 2 * i) *start = v;
        if (k == 2 * i + 1) *end = v;
    }
}

int
mp_rec_sample(const mp_reader_t *r, const mp_record_t *rec, mp_rec_sample_t *out, mp_err_t *err) {
    cur_t c = cur_of(r, rec, err);
    TRY(cur_varint(&c, &out->time_ns, "time_ns"));
    TRY(cur_varint(&c, &out->seq, "seq"));
    TRY(cur_varint(&c, &out->rss, "rss_bytes"));
    return 0;
}

int
mp_rec_marker(const mp_reader_t *r, const mp_record_t *rec, mp_rec_marker_t *out, mp_err_t *err) {
    cur_t c = cur_of(r, rec, err);
    TRY(cur_varint(&c, &out->kind, "kind"));
    TRY(cur_varint(&c, &out->seq, "seq"));
    TRY(cur_varint(&c, &out->time_ns, "time_ns"));
    return 0;
}

int
mp_rec_trailer(const mp_reader_t *r, const mp_record_t *rec, mp_rec_trailer_t *out, mp_err_t *err) {
    cur_t c = cur_of(r, rec, err);
    TRY(cur_varint(&c, &out->events, "events"));
    TRY(cur_varint(&c, &out->allocs, "allocs"));
    TRY(cur_varint(&c, &out->frees, "frees"));
    TRY(cur_varint(&c, &out->alloc_bytes, "alloc_bytes"));
    TRY(cur_varint(&c, &out->lost, "lost"));
    TRY(cur_varint(&c, &out->end_time_ns, "end_time_ns"));
    TRY(cur_varint(&c, &out->next_seq, "next_seq"));
    TRY(cur_varint(&c, &out->stacks_dropped, "stacks_dropped"));
    return 0;
}

int
mp_rec_lost(const mp_reader_t *r, const mp_record_t *rec, uint64_t *count, mp_err_t *err) {
    cur_t c = cur_of(r, rec, err);
    TRY(cur_varint(&c, count, "count"));
    return 0;
}

static int
cur_pystr(cur_t *c, mp_pystr_t *s, const char *field) {
    const uint8_t *start = c->p;
    TRY(cur_varint(c, &s->kind, field));
    TRY(cur_bytes(c, &s->data, field));
    if (!mp_pystr_valid(s->kind, s->data.n))
        return mp_err_set(c->err, MP_EFIELD, (uint64_t)(start - c->base), c->doing,
                          "%s has string kind %llu and %zu bytes", field,
                          (unsigned long long)s->kind, s->data.n);
    return 0;
}

int
mp_rec_pycode(const mp_reader_t *r, const mp_record_t *rec, mp_rec_pycode_t *out, mp_err_t *err) {
    cur_t c = cur_of(r, rec, err);
    const uint8_t *at = c.p;
    TRY(cur_varint(&c, &out->id, "code id"));
    if (out->id == 0 || out->id > 0x7fffffffu)
        return mp_err_set(err, MP_EFIELD, (uint64_t)(at - r->base), c.doing,
                          "code id %llu is outside 1..2^31-1", (unsigned long long)out->id);
    at = c.p;
    TRY(cur_varint(&c, &out->firstlineno, "firstlineno"));
    if (out->firstlineno > INT_MAX)
        return mp_err_set(err, MP_EFIELD, (uint64_t)(at - r->base), c.doing,
                          "firstlineno %llu is over %d", (unsigned long long)out->firstlineno,
                          INT_MAX);
    TRY(cur_varint(&c, &out->table_format, "table_format"));
    TRY(cur_pystr(&c, &out->filename, "filename"));
    TRY(cur_pystr(&c, &out->name, "name"));
    TRY(cur_pystr(&c, &out->qualname, "qualname"));
    TRY(cur_bytes(&c, &out->linetable, "linetable"));
    return 0;
}

int
mp_rec_python(const mp_reader_t *r, const mp_record_t *rec, mp_rec_python_t *out, mp_err_t *err) {
    cur_t c = cur_of(r, rec, err);
    const uint8_t *at = c.p;
    TRY(cur_varint(&c, &out->hexversion, "hexversion"));
    if (out->hexversion > 0xffffffffu)
        return mp_err_set(err, MP_EFIELD, (uint64_t)(at - r->base), c.doing,
                          "hexversion 0x%llx is over 32 bits", (unsigned long long)out->hexversion);
    TRY(cur_varint(&c, &out->hooks, "hooks"));
    TRY(cur_bytes(&c, &out->allocator, "allocator"));
    return 0;
}

/* ---- events --------------------------------------------------------------------------------- */

void
mp_events_reset(mp_events_t *it) {
    it->seq = it->ptr = it->ptr2 = it->stack = 0;
}

void
mp_events_init(mp_events_t *it, const mp_reader_t *r, const mp_rec_events_t *ev) {
    it->base = r->base;
    it->p = ev->first;
    it->end = ev->end;
    it->cont = ev->cont;
    it->short_form = !ev->cont           ? MP_SHORT_NONE
                     : r->hdr.major >= 5 ? MP_SHORT_OFFSET
                     : r->hdr.major == 4 ? MP_SHORT_ZIGZAG
                                         : MP_SHORT_NONE;
    if (ev->cont) {
        it->left = UINT64_MAX;
        return;
    }
    it->left = ev->count;
    it->seq = ev->base_seq;
    it->ptr = 0;
}

/* A field of an event that could not be read: a prefix varint (STREAM) can only run past the
 * record's end; a LEB128 one (EVENTS) can also be malformed. */
static int
event_field_error(const mp_events_t *it, const uint8_t *p, const char *field, mp_err_t *err) {
    const char *doing = doing_record(MP_REC_EVENTS); /* STREAM events too */
    if (it->cont)
        return mp_err_set(err, MP_EFIELD, (uint64_t)(p - it->base), doing,
                          "%s runs past the record end", field);
    return varint_error(p, it->end, it->base, doing, field, err);
}

/* The fields every event has: its seq and ptr (the cursor's seq advanced by dseq; ptr, base +
 * dptr, where base is the cursor's ptr or, in a 4.0 STREAM, its other base), kind and allocator;
 * size and stack 0 until read. In a STREAM, an event in the long form or in the short form
 * against the other base makes the previous ptr the other base (FORMAT.md 5.12). */
static void
event_begin(mp_events_t *it, mp_event_t *ev, uint8_t head, unsigned kind, uint64_t dseq,
            uint64_t base, uint64_t dptr, int swap) {
    it->seq += dseq;
    if (swap) it->ptr2 = it->ptr;
    it->ptr = base + dptr;
    ev->seq = it->seq;
    ev->ptr = it->ptr;
    ev->kind = kind;
    ev->allocator = MP_EV_ALLOCATOR(head);
    ev->size = 0;
    ev->stack = 0;
}

/* A STREAM event in the short form (FORMAT.md 5.12; 4.0 on), after its head byte: seq + 1, then
 * fixed-width fields (little-endian): the ptr delta / 16 in 23 bits of 3 bytes, offset by 2^22
 * (5.0 on) or zigzagged (4.x), whose top bit says which base; an ALLOC's size in 2; the stack in 3
 * unless the head's bit 2 says it is the previous one's. */
static int
short_event(mp_events_t *it, uint8_t head, unsigned kind, int same_stack, mp_event_t *ev,
            mp_err_t *err) {
    size_t need =
        3 + (kind == MP_EV_ALLOC ? 2 : 0) + (kind != MP_EV_REALLOC_FAIL && !same_stack ? 3 : 0);
    const uint8_t *p = it->p;
    if ((size_t)(it->end - p) < need)
        return mp_err_set(err, MP_EFIELD, (uint64_t)(p - it->base), doing_record(MP_REC_EVENTS),
                          "short event runs past the record end");
    uint64_t z = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)(p[2] & 0x7f) << 16;
    int other = p[2] >> 7; /* bit 23: the other base */
    p += 3;
    uint64_t d =
        it->short_form == MP_SHORT_OFFSET ? (z << 4) - (1ull << 26) : (uint64_t)mp_unzigzag(z) << 4;
    event_begin(it, ev, head, kind, 1, other ? it->ptr2 : it->ptr, d, other);
    if (kind == MP_EV_ALLOC) {
        ev->size = (uint64_t)p[0] | (uint64_t)p[1] << 8;
        p += 2;
    }
    if (kind != MP_EV_REALLOC_FAIL) {
        if (!same_stack) {
            it->stack = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16;
            p += 3;
        }
        ev->stack = it->stack;
    }
    it->p = p;
    it->left--;
    return 1;
}

int
mp_events_next(mp_events_t *it, mp_event_t *ev, mp_err_t *err) {
    const char *doing = doing_record(MP_REC_EVENTS); /* STREAM events too */
    if (it->left == 0 || (it->cont && it->p == it->end)) return 0;
    const uint8_t *at = it->p;
    if (at >= it->end)
        return mp_err_set(err, MP_EFIELD, (uint64_t)(at - it->base), doing,
                          "event runs past the record end");
    uint8_t head = *it->p++;
    /* STREAM (FORMAT.md 5.12): bit 7 marks the short form (4.0; before, it said that seq is the
     * previous one's + 1), bit 2 that the stack is the previous one's; the kind is in bits 1..0.
     * EVENTS (5.3): bit 7 clear, kind in 2..0. */
    int seq1 = it->cont && (head & 0x80), same_stack = it->cont && (head & 4);
    unsigned kind = it->cont ? head & 3u : MP_EV_KIND(head);
    if ((!it->cont && (head & 0x80)) || kind > MP_EV_REALLOC_FAIL ||
        (same_stack && kind == MP_EV_REALLOC_FAIL))
        return mp_err_set(err, MP_EFIELD, (uint64_t)(at - it->base), doing,
                          "bad event head byte 0x%02x", head);
    if (seq1 && it->short_form) return short_event(it, head, kind, same_stack, ev, err);
    /* STREAM events' integers are prefix varints (FORMAT.md 2.4), EVENTS' LEB128. */
    int (*get)(const uint8_t **, const uint8_t *, uint64_t *) =
        it->cont ? mp_pvarint_get : mp_varint_get;
    uint64_t dseq = 1, v;
    const uint8_t *p = it->p;
    if (!seq1 && get(&it->p, it->end, &dseq) < 0) return event_field_error(it, p, "event seq", err);
    p = it->p;
    if (get(&it->p, it->end, &v) < 0) return event_field_error(it, p, "event ptr", err);
    event_begin(it, ev, head, kind, dseq, it->ptr, (uint64_t)mp_unzigzag(v), it->cont);
    if (kind == MP_EV_ALLOC) {
        p = it->p;
        if (get(&it->p, it->end, &ev->size) < 0) return event_field_error(it, p, "event size", err);
    }
    if (kind == MP_EV_ALLOC || kind == MP_EV_FREE) {
        p = it->p;
        if (same_stack)
            ev->stack = it->stack;
        else if (get(&it->p, it->end, &ev->stack) < 0)
            return event_field_error(it, p, "event stack", err);
        it->stack = ev->stack;
    }
    it->left--;
    return 1;
}
