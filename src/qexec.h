/* qexec.h - the integer-only executor: runs a quantized model (qgraph.h) on
 * batches of float inputs and returns float outputs.
 *
 * Between the QUANTIZE of the input and the DEQUANT of the output every step
 * is integer arithmetic: int8/uint8 codes, int32 accumulation, dyadic
 * requantisation.  Layer weights are read from their packed buffers: an
 * 8-bit layer's codes are used in place; a narrower layer's are unpacked to
 * int8 on every run, two blocks of 16 channels at a time next to their GEMM
 * when the run's positions fit one chunk (batch 1), else the whole layer
 * once into a shared workspace (no int8 copy of the weights is kept).  Work is
 * split over a small thread pool; results do not depend on the number of
 * threads or on the instruction set (qkernels.h).
 *
 * Ownership: the executor borrows the model (which must outlive it) and
 * owns its buffers and threads. */
#ifndef BP_QEXEC_H
#define BP_QEXEC_H

#include <stdint.h>

#include "qgraph.h"

typedef struct bp_qexec bp_qexec;

/* Below these sizes an op runs on the calling thread alone (waking the pool
 * costs more than it saves): a layer of fewer multiply-accumulates per run
 * (MACs x batch), a quantization, pooling or element-wise op writing fewer
 * elements per run.  Public because measured profiles record them (qprofile.h): the
 * cost model prices the two regimes apart. */
#define BP_QEXEC_PAR_MACS 400000
#define BP_QEXEC_PAR_ELEMS 65536

/* New executor for batches of at most max_batch samples on `threads`
 * threads (<= 0: one per online CPU, at most 64). */
int bp_qexec_new(bp_qexec **out, const bp_qmodel *qm, int64_t max_batch,
                 int threads);

/* Runs n (1..max_batch) samples: inputs[k] holds graph input k, float32 in
 * the graph's layout.  Outputs are valid until the next run. */
int bp_qexec_run(bp_qexec *ex, const float *const *inputs, int64_t n);

/* bp_qexec_run, recording the seconds each op took in op_seconds
 * (qm->n_ops entries). */
int bp_qexec_run_timed(bp_qexec *ex, const float *const *inputs, int64_t n,
                       double *op_seconds);

/* Graph output k of the last run, float32 in the graph's layout. */
const float *bp_qexec_output(const bp_qexec *ex, int k);

/* Integer tensor t of the last run: (n, h, w, c) codes of its type. */
const void *bp_qexec_tensor(const bp_qexec *ex, int t);

/* Bytes of activation buffers and workspace (not model bytes). */
int64_t bp_qexec_workspace_bytes(const bp_qexec *ex);

/* Bytes one more sample of max_batch adds to bp_qexec_new(qm, .)'s
 * buffers: the codes of every integer tensor and the float outputs.  The
 * workspaces of the layers do not grow with the batch (they hold one chunk
 * of positions). */
int64_t bp_qexec_sample_bytes(const bp_qmodel *qm);

/* The same for the model any plan makes of g, before a plan or calibration
 * exists (bp_qmodel_skeleton): without the REQUANT copies a plan adds where
 * a layer reads fewer activation bits than its input has (one more byte per
 * element of such an input).  Infers g at batch 1 and leaves it so.
 * BP_EUNSUPPORTED naming the node for a graph the executor cannot run;
 * *bytes is written only on success. */
int bp_qexec_graph_sample_bytes(bp_graph *g, int64_t *bytes);

int bp_qexec_threads(const bp_qexec *ex);

/* Runs only op i of the model on the buffers of the last run (for
 * profiling single kernels). */
int bp_qexec_run_op(bp_qexec *ex, int i, int64_t n);

void bp_qexec_free(bp_qexec **ex);

#endif
