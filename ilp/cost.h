/* cost.h - what one layer costs at one bit-width choice: bytes, bit
 * operations and (from a hardware profile) latency.
 *
 * A choice is a (weight bits w, activation bits a) pair.  For a layer of
 * numel weights, C output channels and M multiply-accumulates per sample:
 *
 *   bytes   = ceil(numel * w / 8)     weights, packed (int4: two per byte)
 *           + 4 * C                    per-channel scale, float32 (the
 *                                      integer executor derives its dyadic
 *                                      multiplier and shift from it at load)
 *           + 4 * C                    int32 bias (the layer's own bias and
 *                                      a folded BatchNorm's shift; a layer
 *                                      with neither still gets one, as in
 *                                      HAWQ-V3's integer-only layout)
 *   bops    = M * w * a                per sample (HAWQ-V3's BOPs)
 *   latency, roofline profile, at batch B:
 *             overhead + max(2*M*B / (peak(W,A) * compute_efficiency),
 *                            traffic / (bandwidth * memory_efficiency))
 *     where (W,A) is the fastest native pair with W >= w, A >= a, and
 *     traffic = weight bytes (at w bits, or W when the profile stores
 *     missing widths natively) + 8 * C + B * (in + out) * a / 8 bytes of
 *     activations (in, out: activation elements per sample, 0 if unknown);
 *   latency, roofline profile with a "layer_model" (fitted by `bitplan
 *     profile --measure` to bitplan's integer executor), at batch B: with
 *     P = B * macs / numel output positions, K = numel / C the row length,
 *     g groups,
 *             seconds + per_tile * ceil16(P) / 16 * g * ceil16(C / g) / 16
 *                     + per_mac(W) * ceil16(P) * ceil4(K) * g * ceil16(C / g)
 *                     + per_row_element * P * K * g
 *                     + per_output * P * C
 *                     + per_residual_output * P * C   [fused residual]
 *                     + per_weight(W) * numel
 *     (a 3x3 stride-1 convolution the AVX2 kernels run by Winograd, on a
 *     profile that says "winograd": per_mac(widest listed width) times 16
 *     products per 2x2 output tile, input channel and output channel (in
 *     blocks of 16) instead of the per_mac term, and 16 transformed inputs
 *     per tile and input channel as the rows: bp_cost_lm_terms)
 *     with the coefficients of the parallel regime when macs * B >=
 *     parallel_macs (> 0), else of the serial one; W is the narrowest
 *     listed width >= w (ceil4, ceil16: the kernels' padding of K to groups
 *     of 4, and their tiles of 16 positions and 16 channels);
 *   plus, on a roofline profile with "op_costs", the ops the executor runs
 *     before this layer since the previous one (for the last layer, also
 *     those after it; for the first, the input's quantization): for each,
 *     seconds + per_element * elements * B of its kind (its "parallel"
 *     costs when its output elements * B >= parallel_elements > 0), so that
 *     a plan's layers sum to the whole run;
 *   latency, table profile: the measured entry for the layer's name (which
 *     already holds the ops around the layer: `profile --measure --model`
 *     measures them so), else for its weight shape, at (w,a) or the fastest
 *     listed pair wider in both, plus the fallback's op costs; else the
 *     fallback roofline;
 *   latency, bops profile: NAN (not modelled).
 *
 * The float32 baseline of `size=25%` / `size=8x` is 4 bytes per float
 * parameter of the whole model (BatchNorm, biases included); the float
 * parameters that stay float after quantization (other_params: neither a
 * layer's weight or bias nor a BatchNorm folded into one) add a constant
 * 4 * other_params to every plan's size, and so do the integer executor's
 * per-graph constants (const_bytes: activation scales, the dyadic numbers
 * of residual adds and pooling), so that a plan's size is what `bitplan
 * run` counts in the executor's buffers. */
#ifndef BP_COST_H
#define BP_COST_H

#include <stdint.h>

#include "graph.h"
#include "profile.h"

/* One op of the integer executor between layers (qgraph.h bp_qop_info),
 * charged to the layer it precedes. */
typedef struct bp_op_fact {
    const char *op;          /* bp_qop_name(): "MaxPool", ... (static) */
    int64_t elements;        /* per sample, as bp_qop_info counts them */
    int64_t out_elements;
} bp_op_fact;

/* What the cost model needs to know about a layer; names are borrowed. */
typedef struct bp_layer_facts {
    const char *name;        /* weight initializer */
    const char *op;          /* "Conv", "Gemm", "MatMul" */
    int64_t numel;           /* weights */
    int64_t out_channels;    /* scales and biases; 0 when unknown */
    int64_t macs;            /* per sample */
    int64_t in_numel, out_numel; /* activation elements per sample, 0 when
                                    unknown */
    int rank;                /* weight shape, rank 0 when unknown */
    int64_t shape[BP_MAX_RANK];
    int64_t group;           /* convolution groups, 0 when unknown (1) */
    int residual;            /* a residual Add fused into the layer */
    int64_t wino_cin;        /* a 3x3 stride-1 convolution Winograd may run
                                (bp_qk_wino_shape): its input channels per
                                group, and its 2x2 output tiles per sample; */
    int64_t wino_tiles;      /* 0 otherwise */
    int in_tensor, in_root;  /* the executor's input tensor and its root
                                (bp_qop_info), -1 when unknown */
    int n_ops;               /* the executor's ops charged to this layer, */
    const bp_op_fact *ops;   /* 0 / NULL when unknown (no graph, or one the
                                integer executor cannot run) */
} bp_layer_facts;

/* Model-level facts for the size baseline. */
typedef struct bp_model_facts {
    int64_t float_params;    /* every float parameter */
    int64_t other_params;    /* those that stay float when quantized */
    int64_t const_bytes;     /* the integer executor's scales and dyadic
                                numbers outside the layers (src/qgraph.h) */
} bp_model_facts;

typedef struct bp_cost {
    double bytes, bops, latency_s;   /* latency_s NAN when not modelled */
} bp_cost;

/* The facts of every quantizable layer of g (bp_graph_layers order) into a
 * malloc'd array the caller frees (one block: the op facts live behind the
 * layers), plus the model facts.  Names point into g, which must outlive
 * the array.  The ops between layers come from the integer executor's view
 * of g (bp_qmodel_ops); a graph it cannot run gets none (n_ops 0), which is
 * not an error: its latency on other hardware is still priced. */
int bp_layer_facts_from_graph(bp_graph *g, bp_layer_facts **out, int *n,
                              bp_model_facts *model);

/* Whether the integer executor's AVX2 kernels run layer l at batch
 * `batch` and w_bits by Winograd (qkernels.h: bp_qk_wino_shape, taking
 * uint8 inputs, and bp_qk_wino_pays). */
int bp_cost_lm_wino(const bp_layer_facts *l, int64_t batch, int w_bits);

/* The work terms of the layer model (above) at batch `batch`, for a GEMM
 * whose tiles hold `tile` positions (16 when <= 0): the padded
 * multiply-accumulates ceilT(P) * ceil4(K) * g * ceil16(C / g), the row
 * elements P * K * g, the outputs P * C and the T x 16 tiles.  With `wino`
 * (a layer the kernels run by Winograd) the products are wino_macs instead
 * (16 per 2x2 tile, input channel and output channel, those padded to 16),
 * the rows the 16 transformed inputs per tile and input channel, the tiles
 * the 2x2 tiles x blocks of 16 channels; padded_macs is then 0.  `bitplan
 * profile --measure` fits the coefficients on exactly these. */
void bp_cost_lm_terms(const bp_layer_facts *l, int64_t batch, int tile,
                      int wino, double *padded_macs, double *rows,
                      double *outputs, double *tiles, double *wino_macs);

/* Prices choice (w_bits, a_bits) of layer l on profile p at batch size
 * `batch` (>= 1; scales the compute and activation terms of a roofline).
 * BP_EINVAL for bits outside 1..16 or numel < 1; BP_EUNSUPPORTED when a
 * roofline has no native format wide enough (message names the profile). */
int bp_cost_eval(const bp_profile *p, const bp_layer_facts *l, int w_bits,
                 int a_bits, int64_t batch, bp_cost *out);

#endif
