/* estimators.h - per-layer Hessian traces, top eigenvalues and the spectral
 * density, from exact Hessian-vector products over a calibration set.
 *
 * A bp_hessian is the Hessian of the mean cross-entropy over a data set
 * (labels, or the model's own top-1 classes) w.r.t. the weights and biases
 * of the quantizable layers (bp_graph_layers).  Every product H v is exact
 * (autodiff.h) and accumulated batch by batch, so memory stays at one
 * batch; several directions share each pass over the data.  The blocks
 * H_ii are those of the layers' weight tensors.
 *
 * Traces (per layer):
 *  - exact: where the logits are piecewise linear in the layer's weights,
 *    Tr(H_ii) is the Gauss-Newton trace (1/N) sum_n sum_c p_nc ||grad||^2
 *    (one backward pass per class); elsewhere, with --trace exact or for a
 *    block smaller than the cheapest sampling plan, sum_j e_j^T H e_j over
 *    unit vectors.  Standard error 0.
 *  - hutchpp: Hutch++ on the block (Meyer, Musco, Musco, Woodruff 2021):
 *    a rank-k sketch Q of H_ii S taken exactly, tr(Q^T H Q), plus Hutchinson
 *    on the deflated remainder (I - QQ^T) H (I - QQ^T).
 *  - hutchinson: Rademacher v, v^T H v.  Vectors either restricted to one
 *    block or over all layers at once (one product serves every layer, but
 *    each estimate then carries the zero-mean cross terms v_i^T H_ij v_j);
 *    with scope auto, a pilot of each measures the per-sample variances and
 *    the cheaper plan (by the deterministic cost model of the products)
 *    continues.
 *  Sampling proceeds in rounds and stops for a layer when it has at least
 *  min_samples samples and its standard error is at most tol * |mean|, or at
 *  max_samples products (sketch included).
 * Top eigenvalue (per layer): Lanczos restricted to the block, with full
 * reorthogonalisation and the tridiagonal problem solved by LAPACKE_dstev,
 * stopping when the Ritz residual bound beta_j |s_j| is at most
 * eig_tol * |theta| (the largest eigenvalue); or power iteration as
 * PyHessian does it (the dominant eigenvalue, relative change below 1e-3,
 * at most 100 iterations).
 * Density: stochastic Lanczos quadrature over all parameters (PyHessian's
 * density()), Gaussian-smoothed on a grid.
 *
 * Determinism: every random vector comes from bp_rng streams derived from
 * (seed, layer, purpose), and all decisions use counts and the cost model,
 * never timings: same inputs and seed give bit-identical results. */
#ifndef BP_ESTIMATORS_H
#define BP_ESTIMATORS_H

#include <stdint.h>

#include "checkpoint.h"
#include "graph.h"
#include "sensfile.h"

typedef enum bp_trace_method {
    BP_TRACE_AUTO = 0,  /* exact where piecewise linear, else Hutch++ */
    BP_TRACE_EXACT,
    BP_TRACE_HUTCHPP,
    BP_TRACE_HUTCHINSON,
    /* where piecewise linear: the Gauss-Newton trace sampled in the output
     * space (bp_ad_gn_sample), one backward pass per draw for all layers
     * instead of one per class; elsewhere as auto */
    BP_TRACE_GN_HUTCHINSON
} bp_trace_method;

/* "auto", "exact", "hutchpp", "hutchinson", "gn-hutchinson": the names of
 * --trace and of a sensitivity file's trace methods. */
const char *bp_trace_method_name(bp_trace_method m);
/* The method named s; BP_EINVAL (listing the names) for another name. */
int bp_trace_method_parse(const char *s, bp_trace_method *m);

typedef enum bp_trace_scope {
    BP_SCOPE_AUTO = 0,  /* pilot both, keep the cheaper */
    BP_SCOPE_BLOCK,
    BP_SCOPE_GLOBAL
} bp_trace_scope;

typedef enum bp_eig_method {
    BP_EIG_LANCZOS = 0,
    BP_EIG_POWER,
    BP_EIG_NONE
} bp_eig_method;

/* Where the calibration data comes from: `read` fills x with samples
 * [start, start + n) in float64 (n * sample_numel values) and returns a
 * status.  labels (count) or NULL for the model's own top-1 classes. */
typedef struct bp_sens_data {
    const char *path;          /* for messages */
    int64_t count;
    int64_t sample_numel;
    const int64_t *labels;
    int (*read)(void *ctx, int64_t start, int64_t n, double *x);
    void *ctx;
} bp_sens_data;

typedef struct bp_sens_opts {
    bp_trace_method trace;
    bp_trace_scope scope;
    double tol;                /* relative standard error, default 0.01 */
    int64_t max_samples;       /* per layer, default 500 */
    int64_t min_samples;       /* per layer before the rule applies, 30 */
    int sketch;                /* Hutch++ sketch size, default 20 */
    bp_eig_method eig;
    int eig_max_iter;          /* default 100 */
    double eig_tol;            /* Lanczos residual bound, default 1e-6 */
    int64_t batch;             /* samples per pass; 0: automatic (at most
                                  256, fewer for large activations) */
    int threads;               /* worker threads for products, default 1 */
    uint64_t seed;
    int n_bits;                /* candidate bit-widths for perturbations */
    int bits[BP_SENS_MAX_BITS];
    int loss_increase;         /* also measure bp_hessian_loss_increase (0) */
    /* progress: stage name, done, total (total 0 when unknown) */
    void (*progress)(void *ctx, const char *stage, int64_t done,
                     int64_t total);
    void *progress_ctx;
    /* checkpoint (checkpoint.h): saved at safe points when due, and the
     * state to resume from when it holds one; NULL for none.  Results do
     * not depend on it. */
    bp_ckpt *ckpt;
} bp_sens_opts;

/* The defaults above; bits 2,3,4,5,6,8. */
void bp_sens_opts_default(bp_sens_opts *o);

typedef struct bp_hessian bp_hessian;

/* Per-layer trace estimate. */
typedef struct bp_trace_est {
    double mean, stderr_;
    int64_t samples;           /* Hessian-vector products (0 for exact) */
    bp_trace_method method;    /* EXACT, HUTCHPP or HUTCHINSON */
    int hit_max;               /* stopped at max_samples */
} bp_trace_est;

/* New Hessian of g's loss on d, processed `batch` samples at a time.
 * Reads every sample once (checking it is finite) to compute the loss.
 * Errors: BP_EINVAL naming the data file and sample for NaN or Inf, naming
 * the model and initializer for a non-finite weight, or when g has no
 * quantizable layer; the autodiff's errors otherwise. */
int bp_hessian_new(bp_hessian **out, bp_graph *g, const bp_sens_data *d,
                   int64_t batch);
void bp_hessian_free(bp_hessian **h);

int bp_hessian_n_layers(const bp_hessian *h);
const bp_layer *bp_hessian_layer(const bp_hessian *h, int i);
/* Mean cross-entropy and top-1 agreement with the targets. */
double bp_hessian_loss(const bp_hessian *h);
double bp_hessian_accuracy(const bp_hessian *h);
/* Hessian-vector products computed so far (each over the whole data). */
int64_t bp_hessian_products(const bp_hessian *h);

/* hv[j] = H_{ii} v[j] for j < k over the whole data set (v[j], hv[j] of
 * layer i's weight size): block products, several per pass. */
int bp_hessian_block_hvp(bp_hessian *h, int i, int k, const double *const *v,
                         double *const *hv);
/* hv = H v over the weights of all layers (concatenated in layer order,
 * biases excluded). */
int bp_hessian_hvp(bp_hessian *h, const double *v, double *hv);
/* Whether layer i's block is piecewise linear (exact Gauss-Newton trace). */
int bp_hessian_layer_exact(const bp_hessian *h, int i);

/* Traces of every layer into est (n_layers); *scope_used gets the scope the
 * sampled layers used (BP_SCOPE_BLOCK or BP_SCOPE_GLOBAL; AUTO when nothing
 * was sampled). */
int bp_hessian_traces(bp_hessian *h, const bp_sens_opts *o,
                      bp_trace_est *est, bp_trace_scope *scope_used);

/* Measured loss increase of quantizing one layer at a time, beyond first
 * order: for layer i and bit-width o->bits[k], with d = Q_b(W_i) - W_i,
 *   out[i * o->n_bits + k] = L(W_i + d) - L(W_i) - grad_i L . d
 * over the whole data set, every other layer in float.  For a small d this
 * is d^T H_ii d / 2, the quantity HAWQ's Omega estimates from the trace as
 * if d were isotropic; unlike that estimate it sees the actual d (e.g. the
 * systematic shrinkage of ternary 2-bit weights) and the loss beyond second
 * order.  The first-order term is removed because its sign on unseen data is
 * not predictable from the calibration data (HAWQ drops it for the same
 * reason).  Cost: one gradient pass, then one forward (and backward) pass
 * per layer and width.  The graph's weights are modified during the call
 * and restored, bit for bit, before it returns. */
int bp_hessian_loss_increase(bp_hessian *h, const bp_sens_opts *o,
                             double *out);

/* Top eigenvalue of every layer's block into val (NAN with --eig none) and
 * the products each used into iters. */
int bp_hessian_top_eigs(bp_hessian *h, const bp_sens_opts *o, double *val,
                        int *iters);

/* Spectral density of the whole Hessian (all layer weights and biases) by
 * stochastic Lanczos quadrature with `runs` starting vectors of `steps`
 * steps, smoothed with PyHessian's Gaussian kernel onto n_grid points:
 * grid (n_grid) and density (n_grid, integrating to 1).  Also the raw nodes
 * and weights (runs * steps each, weights of a run summing to 1). */
typedef struct bp_density {
    int n_grid;
    double *grid, *density;
    int runs, steps;
    double *nodes, *weights;
} bp_density;
int bp_hessian_density(bp_hessian *h, const bp_sens_opts *o, int runs,
                       int steps, int n_grid, bp_density **out);
void bp_density_free(bp_density **d);
/* Writes "eigenvalue,density" rows atomically. */
int bp_density_save_csv(const bp_density *d, const char *path);

/* The whole sensitivity stage: loss, traces, top eigenvalues, and per
 * candidate bit-width the perturbation ||Q_b(W) - W||^2 (src/quant.h) and
 * Omega(b) = trace / numel * perturbation, into a new bp_sens (the caller
 * fills model and data identity).  Errors as bp_hessian_new, and BP_EINVAL
 * for bits outside 1..16. */
int bp_sensitivity(bp_sens **out, bp_graph *g, const bp_sens_data *d,
                   const bp_sens_opts *o);

#endif
