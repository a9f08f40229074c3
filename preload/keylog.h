/* keylog.h - the Python memo's key log (capture.c): a circle of words that the tails of deep
 * stack keys are appended to, each entry named by its position.
 *
 * Entries are appended at the head, MP_KEYLOG_WORDS words to the circle; one that would run past
 * the circle's end is put at its start instead, so that an entry is always contiguous. An entry
 * is still there while fewer than MP_KEYLOG_WORDS words have been appended since its start
 * (mp_keylog_holds); after that, words of later entries may stand where it was.
 *
 * Positions are kept in 32 bits (capture.c's ways and hot entries have room for no more). A
 * position read against a head 2^32 words further on would seem new again, so mp_keylog_append
 * says when the head crosses a multiple of MP_KEYLOG_SWEEP: the owner then empties every entry
 * that no longer holds, and no entry it keeps ever lives to be 2^32 words old.
 *
 * One owner (the thread that owns the memo): no atomics. The circle is touched as far as used.
 */
#ifndef MP_KEYLOG_H
#define MP_KEYLOG_H

#include <stdint.h>

#define MP_KEYLOG_WORDS (1u << 17) /* 1 MiB */
#define MP_KEYLOG_SWEEP (1ull << 30)

typedef struct mp_keylog_s {
    uint64_t head; /* words appended, ever (skipped ones at a circle's end included) */
    uint64_t words[MP_KEYLOG_WORDS];
} mp_keylog_t;

/* Whether the entry at pos is still there (pos from mp_keylog_append, swept as above). */
static inline int
mp_keylog_holds(const mp_keylog_t *l, uint32_t pos) {
    return (uint32_t)l->head - pos <= MP_KEYLOG_WORDS;
}

static inline const uint64_t *
mp_keylog_at(const mp_keylog_t *l, uint32_t pos) {
    return l->words + (pos & (MP_KEYLOG_WORDS - 1));
}

/* Room for an entry of len words (1 <= len <= MP_KEYLOG_WORDS), to be written by the caller; its
 * position in *pos. *sweep: 1 when the owner must now sweep (above). */
static inline uint64_t *
mp_keylog_append(mp_keylog_t *l, uint32_t len, uint32_t *pos, int *sweep) {
    uint64_t was = l->head, at = was;
    uint64_t off = at & (MP_KEYLOG_WORDS - 1);
    if (off + len > MP_KEYLOG_WORDS) at += MP_KEYLOG_WORDS - off; /* from the circle's start */
    l->head = at + len;
    *pos = (uint32_t)at;
    *sweep = (at + len) / MP_KEYLOG_SWEEP != was / MP_KEYLOG_SWEEP;
    return l->words + (at & (MP_KEYLOG_WORDS - 1));
}

#endif
