/* qref.h - the simulated-quantization reference of the integer executor.
 *
 * Runs a quantized model (qgraph.h) with every integer held in int64, by
 * direct loops written from the definitions in qkernels.h and qgraph.h:
 * no im2col, no blocking, no SIMD, rounding by floor division rather than
 * shifts, weight codes read bit by bit from the packed buffers.  The tests
 * compare the executor with it element by element: the two must produce
 * identical integers for every tensor.
 *
 * Ownership: borrows the model; owns its int64 buffers. */
#ifndef BP_QREF_H
#define BP_QREF_H

#include <stdint.h>

#include "qgraph.h"

typedef struct bp_qref bp_qref;

int bp_qref_new(bp_qref **out, const bp_qmodel *qm, int64_t max_batch);

/* Runs n samples (float32 inputs in the graph's layout). */
int bp_qref_run(bp_qref *r, const float *const *inputs, int64_t n);

/* Tensor t of the last run, (n, h, w, c) as int64. */
const int64_t *bp_qref_tensor(const bp_qref *r, int t);

/* Graph output k of the last run, float32 in the graph's layout. */
const float *bp_qref_output(const bp_qref *r, int k);

void bp_qref_free(bp_qref **r);

#endif
