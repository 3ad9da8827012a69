/* qcalib.h - activation statistics for calibrating the integer executor.
 *
 * Runs the float32 executor over calibration samples, twice: the first pass
 * finds every activation's range, the second fills a histogram of |x| per
 * activation over that range (quant.h, bp_act_hist).  Clipping ranges for
 * any bit-width and method are then read from the histograms, so one
 * calibration serves every plan of a sweep.
 *
 * Ownership: the statistics borrow nothing; the graph is only used while
 * bp_qcalib_new runs (it is re-inferred at the calibration batch). */
#ifndef BP_QCALIB_H
#define BP_QCALIB_H

#include <stdint.h>

#include "graph.h"
#include "quant.h"

typedef struct bp_qcalib bp_qcalib;

/* Statistics of every float activation of g (graph input included) over the
 * n samples of x (float32, the graph input's layout, samples along axis 0),
 * run in batches of at most `batch`.  The graph must have one input.
 * Errors from the float executor are passed on. */
int bp_qcalib_new(bp_qcalib **out, bp_graph *g, const float *x, int64_t n,
                  int64_t batch);

/* Histogram of value v, or NULL when v was not observed (constants,
 * integer values, values never computed). */
const bp_act_hist *bp_qcalib_hist(const bp_qcalib *c, int v);

/* Samples the statistics were taken on. */
int64_t bp_qcalib_samples(const bp_qcalib *c);

void bp_qcalib_free(bp_qcalib **c);

#endif
