/* pysym.h - Python frame values of a dump (FORMAT.md 5.4) to code objects and lines.
 *
 * What this is: the split of a frame value with bit 63 set into (code id, byte offset), the line
 * it names through its PYCODE record's table (pylines.h), and its description as an
 * mp_frame_info_t for the views. Lines below 1 (-1 "no line", and the 0 CPython gives a module's
 * first instruction) count as the code's first line. What this is not: native frames
 * (symbolize.h) or aggregation (per_line.h, by_line.h).
 */
#ifndef MP_PYSYM_H
#define MP_PYSYM_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"
#include "symbolize.h"

/* Is frame value v a Python frame (bit 63)? */
static inline bool
mp_pyframe_is(uint64_t v) {
    return (v & MP_FRAME_PYTHON_BIT) != 0;
}
/* Its code id (bits 62..32); 0 is the "outer frames truncated" marker. */
static inline uint32_t
mp_pyframe_code(uint64_t v) {
    return (uint32_t)(v >> 32) & 0x7fffffffu;
}
/* Its instruction offset in bytes (bits 31..0, two's complement); negative = not started. */
static inline int32_t
mp_pyframe_offset(uint64_t v) {
    return (int32_t)(uint32_t)v;
}

/* The line of offset in code c (a PYCODE record of m): the table's answer, or c->firstlineno
 * below 1. Remembered per model (mp_model_pyline_memo). */
int mp_pysym_line(const mp_model_t *m, const mp_pycode_t *c, int32_t offset);

/* The name a code object is shown under: its qualname, else its name. */
const char *mp_pysym_name(const mp_pycode_t *c);

/* Describe Python frame value v of model m: kind "python", function (qualname, else name), file
 * (co_filename), line, module NULL. Code id 0 gives function "<truncated>"; a code id without a
 * PYCODE record gives "<python>". Strings live as long as m. */
void mp_pysym_info(const mp_model_t *m, uint64_t v, mp_frame_info_t *out);

#endif
