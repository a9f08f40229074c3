/* vec.h - growable arrays for the reporter: one helper and the PUSH macro that uses it.
 *
 * An array is three variables, (T *arr, size_t len, size_t cap); PUSH(arr, len, cap) makes room
 * for arr[len] (doubling, from 16) and is false when memory runs out. The caller then stores
 * arr[len++]. Header-only: model.c and per_line.c both build their tables with it.
 */
#ifndef MP_VEC_H
#define MP_VEC_H

#include <stdint.h>
#include <stdlib.h>

/* Ensure room for one more element in *arr (elem bytes each). Returns 0 or -1. */
static inline int
mp_vec_grow(void **arr, size_t *cap, size_t len, size_t elem) {
    if (len < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    if (ncap > SIZE_MAX / elem) return -1;
    void *n = realloc(*arr, ncap * elem);
    if (!n) return -1;
    *arr = n;
    *cap = ncap;
    return 0;
}

#define PUSH(arr, len, cap) (mp_vec_grow((void **)&(arr), &(cap), (len), sizeof *(arr)) == 0)

#endif
