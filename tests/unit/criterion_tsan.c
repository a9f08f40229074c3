/* criterion_tsan.c - lets Criterion's runner start under ThreadSanitizer (TSan builds only).
 *
 * Criterion (through BoxFort, bundled in libcriterion) maps its "inheritable arena" at a random
 * address in [0x2000'0000'0000, 0x6000'0000'0000), picked with rand_r(), and gives up after 10
 * candidates that are already mapped. Under TSan almost all of that range is TSan's shadow,
 * metadata or a reserved gap; only [0x5500'0000'0000, 0x5680'0000'0000) is application memory.
 * So the runner aborts most of the time ("Could not initialize inheritable arena: Resource
 * temporarily unavailable", https://github.com/Snaipe/Criterion/issues/274), or crashes.
 *
 * The test executable's rand_r() interposes libc's for the whole process (nothing in memprof
 * calls rand_r). It keeps rand_r's contract (a pseudo-random value in [0, RAND_MAX] from the
 * state in *seed) but steers BoxFort's computation, base = 0x2000'0000'0000 + (r & 0x3fffff) *
 * 16 MiB, into [0x5600'0000'0000, 0x5680'0000'0000), inside TSan's application range and away
 * from where PIE executables usually load (0x55..). Remove once Criterion/BoxFort knows TSan's
 * layout.
 */
#include <stdlib.h>

int rand_r(unsigned int *seed);

int
rand_r(unsigned int *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return (int)(0x360000u + ((*seed >> 16) & 0x7fffu));
}
