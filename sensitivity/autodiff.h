/* autodiff.h - reverse mode and exact Hessian-vector products over the graph
 * IR, in float64, for the sensitivity stage.
 *
 * The loss is the cross-entropy of the logits against target classes,
 * weighted per sample: L = w * sum_n CE(z_n, y_n), w chosen by the caller
 * (1 / N over a data set of N samples gives the mean, accumulated batch by
 * batch).  The logits are graph output 0, of shape (N, C); when that output
 * is a Softmax over its last axis (a model exported with its probabilities),
 * the Softmax's input is taken as the logits.  Without labels the target of
 * each sample is the model's own top-1 class (first maximum of its float64
 * logits).
 *
 * Gradients are w.r.t. a caller-chosen list of parameters: float constants
 * of the graph (typically the weights and biases of bp_graph_layers()).
 * Hessian-vector products are exact, by forward-over-reverse (Pearlmutter's
 * R-operator): a tangent forward pass pushes v through the graph, and the
 * tangent of the backward pass (the VJPs differentiated once more) gives H v;
 * there is no finite difference anywhere.  Products are restricted: v may be
 * zero on most parameter blocks and only some blocks of H v may be wanted,
 * and the passes then touch only the nodes that can contribute.
 *
 * For parameters in which the logits are piecewise linear (every op between
 * the parameter and the logits is linear or piecewise linear in it: Conv,
 * Gemm, MatMul, Relu, MaxPool, pools, Add, BatchNorm, data movement), the
 * Hessian block equals its Gauss-Newton block, and bp_ad_gn_trace() gives its
 * trace exactly from per-sample gradient norms, one backward pass per class.
 *
 * Ownership: a bp_ad borrows the graph (which must outlive it and must not
 * be changed except for the contents of parameter tensors) and owns one
 * float64 executor and the buffers of one batch. */
#ifndef BP_AUTODIFF_H
#define BP_AUTODIFF_H

#include <stdint.h>

#include "graph.h"

typedef struct bp_ad bp_ad;

/* New engine for g with parameters params[0..n_params) (value indices of
 * float constants, no duplicates) for batches of at most max_batch samples.
 * Errors: BP_EINVAL when a parameter is not a float constant or the logits
 * are not (N, C); BP_EUNSUPPORTED naming the node when an op between a
 * parameter and the logits cannot be differentiated (or a parameter feeds an
 * input that is not differentiable, such as BatchNormalization's mean). */
int bp_ad_new(bp_ad **out, bp_graph *g, const int *params, int n_params,
              int64_t max_batch);
void bp_ad_free(bp_ad **ad);

int bp_ad_n_params(const bp_ad *ad);
/* Value index and element count of parameter p. */
int bp_ad_param_value(const bp_ad *ad, int p);
int64_t bp_ad_param_numel(const bp_ad *ad, int p);
/* Parameter p's tensor contents changed in the graph: the next batch uses
 * the new values. */
void bp_ad_param_changed(bp_ad *ad, int p);
/* Number of classes C of the logits. */
int64_t bp_ad_classes(const bp_ad *ad);
/* Value index of the logits. */
int bp_ad_logits(const bp_ad *ad);

/* Loads a batch: x holds n samples of graph input 0 in float64, C order;
 * labels (n) in 0..C-1, or NULL for the model's own top-1 classes; weight
 * multiplies every per-sample loss in the products that follow.  Runs the
 * forward pass and the backward pass of the loss.  BP_EINVAL for n outside
 * 1..max_batch, a label out of range, or non-finite logits (naming the
 * sample). */
int bp_ad_set_batch(bp_ad *ad, const double *x, const int64_t *labels,
                    int64_t n, double weight);

/* Forward pass only: *loss = the unweighted sum over n samples of the
 * cross-entropy against targets (NULL: each sample's own top-1 class), and
 * top1[s] (when not NULL) each sample's top-1 class.  Leaves no batch loaded:
 * call bp_ad_set_batch before the next product or gradient.  BP_EINVAL for n
 * outside 1..max_batch, a target out of range or non-finite logits. */
int bp_ad_forward_loss(bp_ad *ad, const double *x, const int64_t *targets,
                       int64_t n, double *loss, int64_t *top1);

/* Unweighted sum over the batch of the per-sample cross-entropies, and the
 * number of samples whose top-1 class equals their target. */
double bp_ad_batch_loss(const bp_ad *ad);
int64_t bp_ad_batch_correct(const bp_ad *ad);

/* grad[p] += dL/dtheta_p of the batch for every p with grad[p] != NULL. */
int bp_ad_grad(bp_ad *ad, double *const *grad);

/* hv[p] += (H v)_p of the batch, H the Hessian of L w.r.t. all parameters,
 * for every p with hv[p] != NULL; v[p] == NULL is a zero block.  Exact. */
int bp_ad_hvp(bp_ad *ad, const double *const *v, double *const *hv);

/* Several products at once: direction j is dirs[j].v / dirs[j].hv as for
 * bp_ad_hvp (each hv[p] must belong to one direction only).  Directions run
 * on the threads of bp_ad_set_threads; the results are the same bits
 * whatever the thread count. */
typedef struct bp_ad_dir {
    const double *const *v;
    double *const *hv;
} bp_ad_dir;
int bp_ad_hvp_many(bp_ad *ad, int k, const bp_ad_dir *dirs);

/* Threads (>= 1) for bp_ad_hvp_many and bp_ad_gn_trace; each needs its own
 * tangent and adjoint buffers (one batch of activations, twice).  BLAS runs
 * single-threaded inside them. */
int bp_ad_set_threads(bp_ad *ad, int n);

/* tr[p] += w * sum_n sum_c p_nc ||d((e_c - p_n)^T z_n)/dtheta_p||^2 for
 * every p with want[p]: the trace of the batch's Gauss-Newton block of p
 * (p_n the softmax of the logits z_n).  Equals the Hessian block's trace
 * when bp_ad_piecewise_linear(p).  BP_EUNSUPPORTED when some wanted p has
 * !bp_ad_gn_ok(p). */
int bp_ad_gn_trace(bp_ad *ad, const char *want, double *tr);

/* The same trace sampled in the output space, one backward pass per draw
 * instead of one per class: for draws j < k,
 *   tr[j * np + p] += w * sum_n ||d((M_n r_jn)^T z_n)/dtheta_p||^2
 * with M_n = diag(sqrt(p_n)) - p_n sqrt(p_n)^T (M_n M_n^T is the softmax
 * Hessian diag(p_n) - p_n p_n^T) and r_jn = signs[(j * n + n') * C ...] (C
 * per sample).  With independent +-1 signs, E[r r^T] = I and each draw is
 * an unbiased estimate of bp_ad_gn_trace's sum; the average over all 2^C
 * sign vectors equals it exactly.  On 1000 classes a draw costs a
 * thousandth of the exact trace.  Draws run on the threads; the results do
 * not depend on their number. */
int bp_ad_gn_sample(bp_ad *ad, const char *want, int k, const double *signs,
                    double *tr);

/* Called from the calling thread as bp_ad_gn_trace's classes complete
 * (done of total, approximately when threads share them): on a 1000-class
 * model one batch is 1000 backward passes, minutes without a sign.  Also
 * called by the other products run on threads: set it around one call,
 * then clear it (tick NULL). */
void bp_ad_set_tick(bp_ad *ad, void (*tick)(void *ctx, int64_t done,
                                            int64_t total), void *ctx);

/* Whether the logits are piecewise linear in parameter p. */
int bp_ad_piecewise_linear(const bp_ad *ad, int p);
/* Whether bp_ad_gn_trace can compute p's per-sample gradient norms (the
 * graph keeps samples separate along axis 0 and p has one consumer of a
 * supported kind). */
int bp_ad_gn_ok(const bp_ad *ad, int p);

/* Deterministic relative cost (arithmetic of the passes, in multiply-adds
 * per sample) of one bp_ad_hvp with v nonzero on the parameters with
 * vmask[p] and products wanted for omask[p]; NULL masks mean all. */
double bp_ad_hvp_cost(const bp_ad *ad, const char *vmask, const char *omask);

#endif
