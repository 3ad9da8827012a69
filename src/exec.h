/* exec.h - the float reference executor.
 *
 * Runs a bp_graph on a batch in float32 (the eval path) or float64 (what the
 * sensitivity stage differentiates), with every float value of the graph in
 * one buffer sized for max_batch, so later stages can read any activation
 * after a run.  Conv and Gemm/MatMul go through BLAS.
 *
 * Ownership: the executor borrows the graph (which must outlive it) and
 * re-infers its shapes on every run; it owns its buffers. */
#ifndef BP_EXEC_H
#define BP_EXEC_H

#include "graph.h"

typedef struct bp_exec bp_exec;

/* New executor computing in dt (BP_F32 or BP_F64) for batches of at most
 * max_batch samples.  BP_EUNSUPPORTED naming the node when the graph needs
 * something the executor cannot run (e.g. integer tensors computed at run
 * time); BP_EINVAL when shapes do not infer. */
int bp_exec_new(bp_exec **out, bp_graph *g, bp_dtype dt, int64_t max_batch);

/* Runs n (1..max_batch) samples.  inputs[k] holds graph input k for the n
 * samples, in dt, C order.  Outputs are valid until the next run. */
int bp_exec_run(bp_exec *ex, const void *const *inputs, int64_t n);

/* Buffer of value v after a run (in dt for float values; constants in dt
 * too), or NULL for values the executor does not hold. Shape: g->values[v]. */
const void *bp_exec_value(const bp_exec *ex, int v);

/* Graph output k after a run, in dt; its shape is g->values[g->outputs[k]]. */
const void *bp_exec_output(const bp_exec *ex, int k);

/* The contents of constant v changed in the graph: an executor that holds
 * it converted to its dtype converts it again before the next run. */
void bp_exec_const_changed(bp_exec *ex, int v);

/* Bytes of the buffers the executor holds now: one per computed value at
 * max_batch (graph inputs included) and the per-node workspace.  Constants
 * it converted to dt count too; those it reads in place do not. */
int64_t bp_exec_buffer_bytes(const bp_exec *ex);

/* Bytes one more sample of max_batch adds to bp_exec_new(g, dt, .)'s
 * buffers: dt-sized elements of every computed value
 * (bp_graph_act_numel), plus the workspace of the largest ReduceMean (the
 * only workspace that grows with the batch; a Conv's im2col matrix is per
 * sample and reused).  Infers g at batch 1 and leaves it so.  Errors of
 * bp_graph_infer; *bytes is written only on success. */
int bp_exec_sample_bytes(bp_graph *g, bp_dtype dt, int64_t *bytes);

/* The default batch of `bitplan eval` and `bitplan run`: BP_AUTO_BATCH_MAX
 * samples, or fewer so that sample_bytes (bytes per sample of activation
 * buffers, from bp_exec_sample_bytes and its integer counterpart) times the
 * batch stays within BP_AUTO_BATCH_BYTES; at least 1.  It depends on the
 * model only, never on the machine, so results stay reproducible: the
 * bundled examples (62 KB per sample) keep 64, ResNet-18 at 224x224
 * (33.5 MB per sample in float32) gets 8. */
#define BP_AUTO_BATCH_MAX 64
#define BP_AUTO_BATCH_BYTES ((int64_t)256 << 20)
int64_t bp_auto_batch(int64_t sample_bytes);

bp_dtype bp_exec_dtype(const bp_exec *ex);
int64_t bp_exec_max_batch(const bp_exec *ex);

void bp_exec_free(bp_exec **ex);

/* Threads BLAS may use (OpenBLAS); n <= 0 leaves its default. */
void bp_set_threads(int n);
/* Threads BLAS uses now. */
int bp_get_threads(void);

/* The executor's per-node step, exposed for the autodiff: computes node i
 * of the graph from the buffers in `val` (indexed by value, in dt) into the
 * buffers of its outputs.  `work` must hold bp_exec_node_work(g, i) elems. */
int bp_exec_node(const bp_graph *g, int i, bp_dtype dt, void *const *val,
                 void *work);
int64_t bp_exec_node_work(const bp_graph *g, int i);

#endif
