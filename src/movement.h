/* movement.h - dtype-agnostic data movement (bytes, not numbers), shared by
 * the load-time evaluator of shape arithmetic and the executors.  Internal
 * to libbitplan. */
#ifndef BP_MOVEMENT_H
#define BP_MOVEMENT_H

#include <stddef.h>
#include <stdint.h>

/* gather: x (outer, len, inner) with idx (nidx) along the middle axis
 * -> y (outer, nidx, inner); indices already normalised to [0, len). */
void bp_mv_gather(void *y, const void *x, size_t es, int64_t outer,
                  int64_t len, int64_t inner, const int64_t *idx, int64_t nidx);

/* concat one input: x (outer, len, inner) into y (outer, total, inner) at
 * offset `at` of the middle axis. */
void bp_mv_concat(void *y, const void *x, size_t es, int64_t outer,
                  int64_t len, int64_t inner, int64_t total, int64_t at);

/* slice: y[i] = x[start + i * step] per axis; ydims the output shape. */
void bp_mv_slice(void *y, const void *x, size_t es, int rank,
                 const int64_t *xdims, const int64_t *ydims,
                 const int64_t *start, const int64_t *step);

/* transpose: y axis i = x axis perm[i]. */
void bp_mv_transpose(void *y, const void *x, size_t es, int rank,
                     const int64_t *xdims, const int64_t *perm);

#endif
