/* pysym.c - Python frame values to code objects, lines and frame descriptions (pysym.h).
 *
 * What this owns: the policy that turns a decoded line into the line a view shows (no line ->
 * the code's first line) and the names Python frames are shown under. What this is not: the
 * line-table decoding itself (pylines.c).
 */
#include "pysym.h"

#include "pylines.h"
#include "u64map.h"

int
mp_pysym_line(const mp_model_t *m, const mp_pycode_t *c, int32_t offset) {
    mp_u64map_t *memo = mp_model_pyline_memo(m);
    uint64_t key = c->id << 32 | (uint32_t)offset; /* code ids have 31 bits (FORMAT.md 5.4) */
    const uint64_t *known = mp_u64map_get(memo, key);
    if (known) return (int)*known;
    int line = mp_pyline_addr2line(c->table, c->table_len, c->table_format, c->firstlineno, offset);
    if (line < 1) line = c->firstlineno;
    (void)mp_u64map_put(memo, key, (uint64_t)line); /* out of memory: no memo, same answer */
    return line;
}

const char *
mp_pysym_name(const mp_pycode_t *c) {
    return c->qualname && c->qualname[0] ? c->qualname : c->name;
}

void
mp_pysym_info(const mp_model_t *m, uint64_t v, mp_frame_info_t *out) {
    *out = (mp_frame_info_t){"python", "<python>", NULL, 0, NULL};
    uint32_t code = mp_pyframe_code(v);
    if (code == 0) {
        out->function = "<truncated>";
        return;
    }
    const mp_pycode_t *c = mp_model_pycode(m, code);
    if (!c) return;
    out->function = mp_pysym_name(c);
    out->file = c->filename;
    out->line = mp_pysym_line(m, c, mp_pyframe_offset(v));
}
