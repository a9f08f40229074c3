/* format.h - the on-disk dump format: constants and the codec shared by writer and reader.
 *
 * What this is: the single definition of every byte the preloaded library writes and the
 * reporter reads. docs/FORMAT.md is the prose specification; each constant below cites its
 * section there. What this is not: an in-memory representation (see preload/ring.h for events
 * in flight and report/model.h for the replayed model).
 *
 * RULES: on-disk constants (MP_REC_*, MP_FMT_*, MP_EV_*, MP_ALLOC_*) are never renumbered.
 * Adding a record tag or a trailing field is a minor-version change; readers skip unknown tags.
 * NOTE: when adding a tag, update mp_rec_name() in codec.c and docs/FORMAT.md section 5.
 *
 * The codec functions are pure: no allocation, no locks, no I/O, async-signal-safe. Both the
 * preloaded library (inside malloc) and the reporter call them.
 */
#ifndef MP_FORMAT_H
#define MP_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "version.h" /* MP_FORMAT_MAJOR, MP_FORMAT_MINOR: set once in CMakeLists.txt */

/* ---- section 3: file header (64 bytes, fixed) ------------------------------------------- */
#define MP_FMT_MAGIC "MEMPROF" /* 8 bytes with its NUL */
#define MP_FMT_HEADER_SIZE 64u
/* Frames in a stack (5.4): the library writes at most MP_DEPTH_MAX native and MP_PY_DEPTH Python
 * frames; readers refuse more, which bounds what a record that shares frames (3.0) expands to. */
#define MP_FMT_STACK_MAX 1024u

/* Header flags (offset 16). */
#define MP_FMT_FLAG_NATIVE 0x1u /* native stacks were captured (MEMPROF_NATIVE=1) */
#define MP_FMT_FLAG_PYTHON 0x2u /* CPython hooks were installed */
#define MP_FMT_FLAG_FORKED 0x4u /* this process is a fork child of a tracked parent */

typedef struct mp_fmt_header_s {
    uint16_t major;         /* format major; readers refuse a newer one */
    uint16_t minor;         /* format minor; additive changes only */
    uint32_t header_size;   /* bytes from offset 0 to the first chunk */
    uint32_t flags;         /* MP_FMT_FLAG_* */
    uint32_t ptr_size;      /* sizeof(void *) of the traced process */
    uint64_t pid;           /* traced process */
    uint64_t ppid;          /* its parent at start */
    uint64_t start_real_ns; /* CLOCK_REALTIME at start, ns since the epoch */
    uint64_t start_mono_ns; /* CLOCK_MONOTONIC at start: the time base of every record */
    uint32_t page_size;     /* bytes per page (RSS samples are in bytes already) */
} mp_fmt_header_t;

/* Encode h into out[MP_FMT_HEADER_SIZE] (magic, fields, crc at offset 60). */
void mp_fmt_header_encode(const mp_fmt_header_t *h, uint8_t out[MP_FMT_HEADER_SIZE]);
/* Decode; returns 0, or -1 bad magic, -2 bad crc, -3 unsupported major (h is filled). */
int mp_fmt_header_decode(const uint8_t in[MP_FMT_HEADER_SIZE], mp_fmt_header_t *h);

/* ---- section 4: chunks ------------------------------------------------------------------ */
#define MP_CHUNK_MAGIC 0x4b43504du /* "MPCK" little-endian */
#define MP_CHUNK_HEADER_SIZE 16u
#define MP_CHUNK_MAX_PAYLOAD (16u << 20) /* readers reject longer chunks as corrupt */

/* Chunk header: magic, payload length, crc32c(payload), crc32c(bytes 0..11 of this header). */
void mp_chunk_header_encode(uint32_t payload_len, uint32_t payload_crc,
                            uint8_t out[MP_CHUNK_HEADER_SIZE]);
/* Returns 0, or -1 bad magic, -2 bad header crc, -3 length over MP_CHUNK_MAX_PAYLOAD. */
int mp_chunk_header_decode(const uint8_t in[MP_CHUNK_HEADER_SIZE], uint32_t *payload_len,
                           uint32_t *payload_crc);

/* ---- section 5: record tags (u8 tag, varint body length, body) ------------------------- */
enum {
    MP_REC_PROCESS = 0x01, /* 5.1 string exe, string argv (NUL-separated), string cwd */
    MP_REC_THREAD = 0x02,  /* 5.2 varint stream, varint tid */
    MP_REC_EVENTS = 0x03,  /* 5.3 varint stream, varint count, varint base_seq, events */
    MP_REC_STACK = 0x04,   /* 5.4 varint id, varint n, n zigzag frame deltas */
    MP_REC_MODULE = 0x05,  /* 5.5 varint bias, varint nranges, ranges, string path, bytes id */
    MP_REC_SAMPLE = 0x06,  /* 5.6 varint time_ns, varint seq, varint rss_bytes */
    MP_REC_MARKER = 0x07,  /* 5.7 varint kind, varint seq, varint time_ns */
    MP_REC_TRAILER = 0x08, /* 5.8 totals; last record of a clean dump */
    MP_REC_LOST = 0x09,    /* 5.9 varint count: events the library could not record */
    MP_REC_PYCODE = 0x0A,  /* 5.10 (1.1) one Python code object: id, lines, names, table */
    MP_REC_PYTHON = 0x0B,  /* 5.11 (1.1) varint hexversion, varint hooks, string allocator */
    MP_REC_STREAM = 0x0C,  /* 5.12 (2.0) varint stream, events continuing the stream's deltas */
};
const char *mp_rec_name(unsigned tag); /* "events", ..., or "unknown" */

/* Marker kinds (5.7). */
enum {
    MP_MARK_MAIN_END = 1, /* end of the Python program's main code */
    MP_MARK_EXIT = 2,     /* process exit (destructor, exit, _exit, abort) */
};

/* Event head byte (5.3):  bit 7 | bits 6..3 allocator | bits 2..0 kind
 *                          0     | MP_ALLOC_*          | MP_EV_*             */
enum {
    MP_EV_ALLOC = 0,        /* ptr, size, stack: a block became live */
    MP_EV_FREE = 1,         /* ptr, stack: a block stopped being live */
    MP_EV_REALLOC_FAIL = 2, /* ptr: undo the MP_EV_FREE realloc recorded for ptr */
};
enum {
    MP_ALLOC_MALLOC = 0,
    MP_ALLOC_CALLOC = 1,
    MP_ALLOC_REALLOC = 2,
    MP_ALLOC_POSIX_MEMALIGN = 3,
    MP_ALLOC_ALIGNED_ALLOC = 4,
    MP_ALLOC_MEMALIGN = 5,
    MP_ALLOC_VALLOC = 6,
    MP_ALLOC_PVALLOC = 7,
    MP_ALLOC_REALLOCARRAY = 8,
    MP_ALLOC_FREE = 9,       /* free() (on MP_EV_FREE) */
    MP_ALLOC_PYMEM_RAW = 10, /* CPython PYMEM_DOMAIN_RAW */
    MP_ALLOC_PYMEM_MEM = 11, /* CPython PYMEM_DOMAIN_MEM */
    MP_ALLOC_PYMEM_OBJ = 12, /* CPython PYMEM_DOMAIN_OBJ */
};
#define MP_EV_HEAD(kind, alloc) ((uint8_t)(((alloc) << 3) | (kind)))
#define MP_EV_KIND(head) ((head)&7u)
#define MP_EV_ALLOCATOR(head) (((head) >> 3) & 15u)
const char *mp_alloc_name(unsigned allocator); /* "malloc", ..., or "unknown" */

/* Stack frames (5.4): a native frame is a return address. A value with bit 63 set is reserved
 * for interpreter frames (Python, a later minor version). */
#define MP_FRAME_PYTHON_BIT (1ull << 63)

/* ---- section 2: conventions: LEB128 varints, zigzag, crc32c ----------------------------- */
#define MP_VARINT_MAX 10u

/* Write v at p (room for MP_VARINT_MAX bytes); returns bytes written. */
size_t mp_varint_put(uint8_t *p, uint64_t v);
/* Read a varint from [*p, end); advances *p. Returns 0, or -1 if it runs past end or is longer
 * than 10 bytes / overflows 64 bits. Never reads at or past end. */
int mp_varint_get(const uint8_t **p, const uint8_t *end, uint64_t *v);

/* Prefix varints (2.4), the integers of STREAM events (5.12): as many 7-bit groups as LEB128,
 * but the length is in the first byte's trailing zero bits, so the producers' encoder (ring.h's
 * mp_ring_encode, inside every hooked allocation) is a handful of instructions with no loop and
 * no branch but the unlikely one to the long form: n groups (1..8) are v << n | 1 << (n - 1), in n
 * bytes, little-endian; a value of 2^56 or more is a zero byte and 8 bytes. It stores 8 bytes at p
 * (9 for the long form), up to 7 past the varint: the caller keeps that much slack. Returns the
 * length. */
#define MP_PVARINT_MAX 9u
static inline size_t
mp_pvarint_put(uint8_t *p, uint64_t v) {
    unsigned top = 63u - (unsigned)__builtin_clzll(v | 1); /* highest set bit, 0..63 */
    unsigned n = ((top * 37u) >> 8) + 1;                   /* top / 7 + 1 for top < 64 */
    uint64_t x = ((v << 1) | 1) << (n - 1);
    if (__builtin_expect(n > 8, 0)) {
        p[0] = 0;
        x = v;
        p++;
        n = 9;
    }
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &x, 8);
#else
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(x >> (8 * i));
#endif
    return n;
}
/* Read a prefix varint from [*p, end); advances *p. 0, or -1 if it runs past end. */
int mp_pvarint_get(const uint8_t **p, const uint8_t *end, uint64_t *v);

static inline uint64_t
mp_zigzag(int64_t v) {
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}
static inline int64_t
mp_unzigzag(uint64_t v) {
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* CRC-32C (Castagnoli), as in iSCSI/ext4: crc = mp_crc32c(0, buf, n). Chainable. */
uint32_t mp_crc32c(uint32_t crc, const void *buf, size_t n);

/* Little-endian fixed-width helpers. */
static inline void
mp_put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void
mp_put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void
mp_put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t
mp_get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t
mp_get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t
mp_get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

#endif
