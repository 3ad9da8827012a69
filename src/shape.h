/* shape.h - per-op shape rules and resolved op parameters, internal to
 * libbitplan.  bp_graph_infer (declared in graph.h) walks the nodes with
 * these rules; executors call the bp_*_geom helpers after inference to get
 * the exact geometry (auto_pad resolved, defaults applied) that inference
 * used, so the two can never disagree. */
#ifndef BP_SHAPE_H
#define BP_SHAPE_H

#include "graph.h"
#include "kernels.h"

/* Conv geometry of node n (inputs inferred). Rank-3 (1-D) convs map to h=1. */
int bp_conv_geom_of(const bp_graph *g, const bp_node *n, bp_conv_geom *geo);
/* MaxPool / AveragePool geometry of node n. */
int bp_pool_geom_of(const bp_graph *g, const bp_node *n, bp_pool_geom *geo);

/* An int64 tensor's content: a constant's data or an inferred known value;
 * NULL when the value is computed at run time. */
const bp_tensor *bp_value_const(const bp_graph *g, int v);

/* Softmax: the (outer, len, inner) split of node n's input. */
void bp_softmax_split(const bp_graph *g, const bp_node *n, int64_t *outer,
                      int64_t *len, int64_t *inner);

/* Clip bounds (attributes before opset 11, optional inputs after). */
void bp_clip_bounds(const bp_graph *g, const bp_node *n, double *lo, double *hi);

/* Reduced axes of ReduceMean as a mask over the input's axes. */
int bp_reduce_axes(const bp_graph *g, const bp_node *n, int *mask);

/* Normalised Gather / Concat / Flatten axis of node n. */
int64_t bp_node_axis(const bp_graph *g, const bp_node *n);

/* Broadcast strides: for input value v read as output shape (rank, dims),
 * per-axis strides in elements (0 on broadcast axes). */
void bp_broadcast_strides(const bp_value *v, int rank, const int64_t *dims,
                          int64_t *str);

/* Slice parameters of node n: start, step and output length per axis. */
int bp_slice_params(const bp_graph *g, const bp_node *n, int64_t *start,
                    int64_t *step, int64_t *len);

/* Pad (constant mode) of node n: leading and trailing pads per axis and the
 * fill value. */
int bp_pad_params(const bp_graph *g, const bp_node *n, int64_t *begin,
                  int64_t *end, double *value);

/* The transpose permutation of node n (default: reversed axes). */
void bp_transpose_perm(const bp_graph *g, const bp_node *n, int64_t *perm);

/* Evaluates node n on constant / known inputs into new tensors outs[k]
 * (caller owns).  BP_EUNSUPPORTED when n is not a shape-arithmetic or data-
 * movement op the evaluator knows; other errors name the node. */
int bp_eval_static(const bp_graph *g, const bp_node *n, bp_tensor **outs);

#endif
