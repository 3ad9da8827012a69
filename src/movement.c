/* movement.c - byte-level gather, concat, slice and transpose. */
#include "movement.h"

#include <string.h>

#include "tensor.h"

void bp_mv_gather(void *y, const void *x, size_t es, int64_t outer,
                  int64_t len, int64_t inner, const int64_t *idx, int64_t nidx)
{
    char *dst = y;
    const char *src = x;
    size_t row = (size_t)inner * es;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < nidx; i++) {
            memcpy(dst, src + ((size_t)(o * len + idx[i])) * row, row);
            dst += row;
        }
}

void bp_mv_concat(void *y, const void *x, size_t es, int64_t outer,
                  int64_t len, int64_t inner, int64_t total, int64_t at)
{
    size_t chunk = (size_t)(len * inner) * es;
    for (int64_t o = 0; o < outer; o++)
        memcpy((char *)y + ((size_t)((o * total + at) * inner)) * es,
               (const char *)x + (size_t)o * chunk, chunk);
}

void bp_mv_slice(void *y, const void *x, size_t es, int rank,
                 const int64_t *xdims, const int64_t *ydims,
                 const int64_t *start, const int64_t *step)
{
    int64_t xstr[BP_MAX_RANK], idx[BP_MAX_RANK] = {0}, n = 1;
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        xstr[d] = s;
        s *= xdims[d];
        n *= ydims[d];
    }
    char *dst = y;
    for (int64_t k = 0; k < n; k++) {
        int64_t off = 0;
        for (int d = 0; d < rank; d++)
            off += (start[d] + idx[d] * step[d]) * xstr[d];
        memcpy(dst, (const char *)x + (size_t)off * es, es);
        dst += es;
        for (int d = rank - 1; d >= 0; d--) {
            if (++idx[d] < ydims[d])
                break;
            idx[d] = 0;
        }
    }
}

void bp_mv_transpose(void *y, const void *x, size_t es, int rank,
                     const int64_t *xdims, const int64_t *perm)
{
    int64_t xstr[BP_MAX_RANK], str[BP_MAX_RANK], ydims[BP_MAX_RANK];
    int64_t idx[BP_MAX_RANK] = {0}, n = 1, s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        xstr[d] = s;
        s *= xdims[d];
    }
    for (int d = 0; d < rank; d++) {
        ydims[d] = xdims[perm[d]];
        str[d] = xstr[perm[d]];
        n *= ydims[d];
    }
    char *dst = y;
    int64_t off = 0;
    for (int64_t k = 0; k < n; k++) {
        memcpy(dst, (const char *)x + (size_t)off * es, es);
        dst += es;
        for (int d = rank - 1; d >= 0; d--) {
            off += str[d];
            if (++idx[d] < ydims[d])
                break;
            off -= str[d] * ydims[d];
            idx[d] = 0;
        }
    }
}
