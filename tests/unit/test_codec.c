/* test_codec.c - the shared codec (preload/codec.c): varints, zigzag, crc32c, header and chunk
 * header encoding, and every error code their decoders return. */
#include <criterion/criterion.h>
#include <string.h>

#include "format.h"

static void
roundtrip(uint64_t v, size_t want_len) {
    uint8_t buf[MP_VARINT_MAX + 2];
    size_t n = mp_varint_put(buf, v);
    cr_assert_eq(n, want_len, "varint %llu: %zu bytes, want %zu", (unsigned long long)v, n,
                 want_len);
    const uint8_t *p = buf;
    uint64_t got = 0;
    cr_assert_eq(mp_varint_get(&p, buf + n, &got), 0);
    cr_assert_eq(got, v);
    cr_assert_eq(p, buf + n);
}

Test(codec, varint_roundtrips) {
    roundtrip(0, 1);
    roundtrip(1, 1);
    roundtrip(127, 1);
    roundtrip(128, 2);
    roundtrip(300, 2);
    roundtrip(16383, 2);
    roundtrip(16384, 3);
    roundtrip(UINT32_MAX, 5);
    roundtrip(1ull << 62, 9);
    roundtrip(1ull << 63, 10);
    roundtrip(UINT64_MAX, 10);
    for (unsigned s = 0; s < 64; s++) {
        uint64_t v = 1ull << s;
        roundtrip(v, s / 7 + 1);
        roundtrip(v - 1, s ? (s - 1) / 7 + 1 : 1);
    }
}

/* Prefix varints (FORMAT.md 2.4): every length round-trips, the length is LEB128's, the store
 * touches nothing past 8 bytes (9 for the long form), and a cut one is refused. */
static void
pvarint_roundtrip(uint64_t v) {
    uint8_t buf[MP_PVARINT_MAX + 8 + 8], leb[MP_VARINT_MAX];
    memset(buf, 0xa5, sizeof buf);
    size_t n = mp_pvarint_put(buf, v);
    cr_assert_eq(n, v >> 56 ? 9 : mp_varint_put(leb, v), "pvarint %llu: %zu bytes",
                 (unsigned long long)v, n);
    for (size_t i = n > 8 ? 9 : 8; i < sizeof buf; i++) cr_assert_eq(buf[i], 0xa5);
    const uint8_t *p = buf;
    uint64_t got = 0;
    cr_assert_eq(mp_pvarint_get(&p, buf + n, &got), 0);
    cr_assert_eq(got, v, "pvarint %llu read back as %llu", (unsigned long long)v,
                 (unsigned long long)got);
    cr_assert_eq(p, buf + n);
    p = buf;
    cr_assert_eq(mp_pvarint_get(&p, buf + n - 1, &got), -1, "a cut pvarint was accepted");
    cr_assert_eq(p, buf);
}

Test(codec, pvarint_roundtrips) {
    for (unsigned s = 0; s < 64; s++) {
        uint64_t v = 1ull << s;
        pvarint_roundtrip(v);
        pvarint_roundtrip(v - 1);
        pvarint_roundtrip(v | 1);
        pvarint_roundtrip(v + (v >> 1));
    }
    pvarint_roundtrip(UINT64_MAX);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        pvarint_roundtrip(x >> (x & 63));
    }
}

Test(codec, pvarint_doc_examples) {
    uint8_t buf[MP_PVARINT_MAX + 8];
    cr_assert_eq(mp_pvarint_put(buf, 0), 1);
    cr_assert_eq(buf[0], 0x01);
    cr_assert_eq(mp_pvarint_put(buf, 127), 1);
    cr_assert_eq(buf[0], 0xff);
    cr_assert_eq(mp_pvarint_put(buf, 128), 2);
    cr_assert_eq(buf[0], 0x02);
    cr_assert_eq(buf[1], 0x02);
    cr_assert_eq(mp_pvarint_put(buf, 300), 2);
    cr_assert_eq(buf[0], 0xb2);
    cr_assert_eq(buf[1], 0x04);
    static const uint8_t max[] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(mp_pvarint_put(buf, UINT64_MAX), 9);
    cr_assert_arr_eq(buf, max, 9);
}

Test(codec, varint_doc_examples) {
    uint8_t buf[MP_VARINT_MAX];
    cr_assert_eq(mp_varint_put(buf, 300), 2);
    cr_assert_eq(buf[0], 0xac);
    cr_assert_eq(buf[1], 0x02);
    static const uint8_t max[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    cr_assert_eq(mp_varint_put(buf, UINT64_MAX), 10);
    cr_assert_arr_eq(buf, max, sizeof max);
}

static int
get(const uint8_t *b, size_t n, uint64_t *v, const uint8_t **after) {
    const uint8_t *p = b;
    int rc = mp_varint_get(&p, b + n, v);
    if (after) *after = p;
    return rc;
}

Test(codec, varint_rejects_truncated) {
    static const uint8_t b[] = {0x80, 0x80, 0x80};
    uint64_t v = 7;
    const uint8_t *after;
    cr_assert_eq(get(b, sizeof b, &v, &after), -1);
    cr_assert_eq(after, b, "the cursor does not move on failure");
    cr_assert_eq(v, 7, "the output is untouched on failure");
    cr_assert_eq(get(b, 0, &v, NULL), -1, "empty input");
}

Test(codec, varint_rejects_overlong_and_overflow) {
    /* 11 bytes: longer than 10. */
    static const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                     0x80, 0x80, 0x80, 0x80, 0x00};
    uint64_t v;
    cr_assert_eq(get(eleven, sizeof eleven, &v, NULL), -1);
    /* 10th byte carrying more than bit 63: overflows 64 bits. */
    static const uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    cr_assert_eq(get(over, sizeof over, &v, NULL), -1);
    static const uint8_t over2[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f};
    cr_assert_eq(get(over2, sizeof over2, &v, NULL), -1);
    /* The largest legal 10-byte form is accepted. */
    static const uint8_t ok[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    cr_assert_eq(get(ok, sizeof ok, &v, NULL), 0);
    cr_assert_eq(v, 1ull << 63);
}

Test(codec, varint_stops_at_end) {
    /* A valid varint followed by more bytes: only the varint is consumed. */
    static const uint8_t b[] = {0xac, 0x02, 0x05};
    uint64_t v;
    const uint8_t *after;
    cr_assert_eq(get(b, sizeof b, &v, &after), 0);
    cr_assert_eq(v, 300);
    cr_assert_eq(after, b + 2);
    /* The same bytes cut before the last one fail. */
    cr_assert_eq(get(b, 1, &v, NULL), -1);
}

Test(codec, zigzag) {
    cr_assert_eq(mp_zigzag(0), 0);
    cr_assert_eq(mp_zigzag(-1), 1);
    cr_assert_eq(mp_zigzag(1), 2);
    cr_assert_eq(mp_zigzag(-2), 3);
    cr_assert_eq(mp_zigzag(INT64_MAX), UINT64_MAX - 1);
    cr_assert_eq(mp_zigzag(INT64_MIN), UINT64_MAX);
    int64_t vals[] = {0, 1, -1, 63, -64, 1 << 20, -(1 << 20), INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        cr_assert_eq(mp_unzigzag(mp_zigzag(vals[i])), vals[i]);
}

Test(codec, crc32c) {
    cr_assert_eq(mp_crc32c(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(mp_crc32c(0, "", 0), 0);
    /* Chainable: crc of a whole equals the crc of its parts chained. */
    uint32_t c = mp_crc32c(0, "1234", 4);
    cr_assert_eq(mp_crc32c(c, "56789", 5), 0xE3069283u);
    /* Both paths (hardware and table) agree on unaligned tails of every length. */
    uint8_t buf[100];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 37 + 11);
    uint32_t whole = mp_crc32c(0, buf, sizeof buf);
    for (size_t k = 0; k <= sizeof buf; k++)
        cr_assert_eq(mp_crc32c(mp_crc32c(0, buf, k), buf + k, sizeof buf - k), whole);
}

static mp_fmt_header_t
sample_header(void) {
    mp_fmt_header_t h = {
        .major = MP_FORMAT_MAJOR,
        .minor = MP_FORMAT_MINOR,
        .header_size = MP_FMT_HEADER_SIZE,
        .flags = MP_FMT_FLAG_NATIVE | MP_FMT_FLAG_FORKED,
        .ptr_size = 8,
        .pid = 4242,
        .ppid = 17,
        .start_real_ns = 1700000000123456789ull,
        .start_mono_ns = 987654321ull,
        .page_size = 4096,
    };
    return h;
}

Test(codec, header_roundtrip) {
    mp_fmt_header_t h = sample_header(), got;
    uint8_t buf[MP_FMT_HEADER_SIZE];
    mp_fmt_header_encode(&h, buf);
    cr_assert_arr_eq(buf, "MEMPROF\0", 8);
    cr_assert_eq(mp_get_u16(buf + 8), MP_FORMAT_MAJOR);
    cr_assert_eq(mp_get_u32(buf + 12), 64);
    cr_assert_eq(mp_get_u64(buf + 24), 4242);
    cr_assert_eq(mp_get_u32(buf + 60), mp_crc32c(0, buf, 60));
    cr_assert_eq(mp_fmt_header_decode(buf, &got), 0);
    cr_assert_eq(got.major, h.major);
    cr_assert_eq(got.minor, h.minor);
    cr_assert_eq(got.header_size, h.header_size);
    cr_assert_eq(got.flags, h.flags);
    cr_assert_eq(got.ptr_size, h.ptr_size);
    cr_assert_eq(got.pid, h.pid);
    cr_assert_eq(got.ppid, h.ppid);
    cr_assert_eq(got.start_real_ns, h.start_real_ns);
    cr_assert_eq(got.start_mono_ns, h.start_mono_ns);
    cr_assert_eq(got.page_size, h.page_size);
}

Test(codec, header_errors) {
    mp_fmt_header_t h = sample_header(), got;
    uint8_t buf[MP_FMT_HEADER_SIZE];

    mp_fmt_header_encode(&h, buf);
    buf[0] = 'X';
    cr_assert_eq(mp_fmt_header_decode(buf, &got), -1, "bad magic");

    mp_fmt_header_encode(&h, buf);
    buf[30] ^= 1;
    cr_assert_eq(mp_fmt_header_decode(buf, &got), -2, "bad crc");

    h.major = MP_FORMAT_MAJOR + 1;
    mp_fmt_header_encode(&h, buf);
    cr_assert_eq(mp_fmt_header_decode(buf, &got), -3, "newer major");
    cr_assert_eq(got.major, MP_FORMAT_MAJOR + 1, "the header is filled for the message");

    /* A newer major is reported even when its crc does not match (its layout may differ). */
    buf[30] ^= 1;
    cr_assert_eq(mp_fmt_header_decode(buf, &got), -3);

    /* A newer minor is fine. */
    h = sample_header();
    h.minor = MP_FORMAT_MINOR + 7;
    mp_fmt_header_encode(&h, buf);
    cr_assert_eq(mp_fmt_header_decode(buf, &got), 0);
}

Test(codec, chunk_header_roundtrip) {
    uint8_t buf[MP_CHUNK_HEADER_SIZE];
    uint32_t len = 0, crc = 0;
    mp_chunk_header_encode(1234, 0xdeadbeef, buf);
    cr_assert_arr_eq(buf, "MPCK", 4);
    cr_assert_eq(mp_chunk_header_decode(buf, &len, &crc), 0);
    cr_assert_eq(len, 1234);
    cr_assert_eq(crc, 0xdeadbeef);
    mp_chunk_header_encode(MP_CHUNK_MAX_PAYLOAD, 1, buf);
    cr_assert_eq(mp_chunk_header_decode(buf, &len, &crc), 0, "the maximum itself is fine");
}

Test(codec, chunk_header_errors) {
    uint8_t buf[MP_CHUNK_HEADER_SIZE];
    uint32_t len, crc;
    mp_chunk_header_encode(10, 0, buf);
    buf[1] = 'X';
    cr_assert_eq(mp_chunk_header_decode(buf, &len, &crc), -1, "bad magic");

    mp_chunk_header_encode(10, 0, buf);
    buf[5] ^= 0x10;
    cr_assert_eq(mp_chunk_header_decode(buf, &len, &crc), -2, "bad header crc");

    mp_chunk_header_encode(MP_CHUNK_MAX_PAYLOAD + 1, 0, buf);
    cr_assert_eq(mp_chunk_header_decode(buf, &len, &crc), -3, "over-long payload");
}

Test(codec, names) {
    cr_assert_str_eq(mp_rec_name(MP_REC_EVENTS), "events");
    cr_assert_str_eq(mp_rec_name(MP_REC_TRAILER), "trailer");
    cr_assert_str_eq(mp_rec_name(0xee), "unknown");
    cr_assert_str_eq(mp_alloc_name(MP_ALLOC_CALLOC), "calloc");
    cr_assert_str_eq(mp_alloc_name(MP_ALLOC_PYMEM_OBJ), "PyObject_Malloc");
    cr_assert_str_eq(mp_alloc_name(15), "unknown");
    uint8_t h = MP_EV_HEAD(MP_EV_FREE, MP_ALLOC_REALLOC);
    cr_assert_eq(MP_EV_KIND(h), MP_EV_FREE);
    cr_assert_eq(MP_EV_ALLOCATOR(h), MP_ALLOC_REALLOC);
    cr_assert_eq(h & 0x80, 0);
}
