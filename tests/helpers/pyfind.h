/* pyfind.h - the CPython interpreters a test can run: pyenv's 3.8+ and /usr/bin/python3.
 *
 * What this is: discovery for tests that need CPython itself (line tables, PyCode_Addr2Line):
 * every $(pyenv root)/versions/3.X.Y/bin/python3.X with X >= 8, then /usr/bin/python3. Prints
 * one "skipped" line on stderr, prefixed with the test's name, for each of 3.8 to 3.13 that is
 * missing, each older version found, and a missing /usr/bin/python3. Out of memory aborts.
 */
#ifndef MP_PYFIND_H
#define MP_PYFIND_H

#include <stddef.h>

/* The interpreters found, as a malloc'd array of malloc'd paths; free with mp_pyfind_free. */
size_t mp_pyfind(const char *who, char ***out);
void mp_pyfind_free(char **paths, size_t n);

#endif
