/* qgraph.h - a precision plan applied to a model: the quantized model the
 * integer executor (qexec.h) and its int64 reference (qref.h) both run.
 *
 * bp_qmodel_new() walks the float graph and turns it into a short list of
 * integer ops on integer tensors (NHWC codes, see qkernels.h):
 *  - QUANTIZE: the float graph input -> codes (the only float op on the way
 *    in); DEQUANT: codes (or the last layer's int32) -> the float output;
 *  - LAYER: Conv / Gemm / MatMul with constant weights, fused with what
 *    follows it when it is the only consumer: a constant bias Add, a
 *    BatchNormalization (folded: its per-channel factor joins the weight
 *    scale, its shift the bias), a residual Add (the other branch rescaled
 *    by its own dyadic number) and a ReLU / Clip;
 *  - ADD (residual add of two integer tensors), RELU (clamp), MAXPOOL,
 *    AVGPOOL (AveragePool, GlobalAveragePool), FLATTEN (NHWC -> C order),
 *    REQUANT (one tensor at fewer bits for a layer that wants them).
 * Identity, Dropout and reshapes that do not move data are aliases.
 *
 * Bits: a layer's w_bits come from the plan, and its a_bits are those of
 * its input tensor.  A tensor read by several layers is quantized at the
 * widest of their a_bits (8 when no layer reads it: residual branches,
 * pooled maps); a layer that asked for fewer bits reads a REQUANT copy.
 * Max pooling, ReLU on codes and flattening keep their input's scale.
 *
 * Scales: activation ranges come from calibration statistics (qcalib.h) by
 * the chosen method; weights use the shared quantizer of quant.h on the
 * initializer exactly as it is in the file (BatchNorm is folded into the
 * scales, not into the weights, so the integers are those the sensitivity
 * stage priced); bias is int32 at scale S_x * S_w; every rescale is a dyadic
 * number computed here, once.
 *
 * Size (what `bitplan run` reports as packed bytes, counted from the
 * buffers this model owns):
 *   per layer:  ceil(numel * w_bits / 8)        packed weight codes
 *             + 8 * out_channels                int32 bias and the dyadic
 *                                               scale (24-bit multiplier +
 *                                               8-bit shift in 4 bytes)
 *   per graph:  4 per QUANTIZE and per DEQUANT of codes (float32 scale),
 *               5 per REQUANT, 10 per ADD and 5 per fused residual (int32
 *               multiplier + int8 shift per rescaled branch), 5 per distinct
 *               window count of an AVGPOOL (1 for global pooling).
 * The per-layer part is the cost model's formula (ilp/cost.h: packed
 * weights + 4 bytes of scale + 4 of bias per output channel), so a plan's
 * predicted size equals the layer bytes to the byte; the per-graph scales
 * are the documented overhead (under 1% on the examples).  bp_qsize_layer()
 * is the per-layer formula.  Derived caches (bias_x, unpacked sub-byte
 * weights at run time) are workspace, not model bytes.
 *
 * Ownership: the model borrows the graph (which must outlive it and must not
 * be re-inferred at another batch while the model is built) and owns its
 * tensors, ops and parameters. */
#ifndef BP_QGRAPH_H
#define BP_QGRAPH_H

#include <stdint.h>

#include "graph.h"
#include "plan.h"
#include "qcalib.h"
#include "qkernels.h"
#include "quant.h"

#define BP_QW_MIN_BITS 2
#define BP_QW_MAX_BITS 8

/* Bytes of one layer's parameters in the executor (see above). */
int64_t bp_qsize_layer(int64_t numel, int64_t out_channels, int w_bits);

typedef enum bp_qop_kind {
    BP_QOP_QUANTIZE = 0,
    BP_QOP_LAYER,
    BP_QOP_ADD,
    BP_QOP_RELU,
    BP_QOP_MAXPOOL,
    BP_QOP_AVGPOOL,
    BP_QOP_FLATTEN,
    BP_QOP_REQUANT,
    BP_QOP_DEQUANT,
    BP_QOP_COUNT
} bp_qop_kind;

const char *bp_qop_name(bp_qop_kind k);

/* An integer tensor: one sample is (h, w, c) codes. */
typedef struct bp_qtensor {
    int64_t h, w, c;
    bp_qtype type;
    int bits;          /* 2..8 (32 for I32) */
    double scale;      /* real = scale * code (I32: per channel, in the layer) */
    int32_t lo, hi;    /* code range */
    int value;         /* the float graph value it stands for */
    int root;          /* tensor whose scale and bits it shares (itself for
                          tensors with their own) */
} bp_qtensor;

/* A quantized layer (Conv, Gemm, MatMul). */
typedef struct bp_qlayer {
    int index;         /* in bp_graph_layers order (and the plan's names) */
    const char *name;  /* weight initializer (borrowed from the graph) */
    int node;          /* the Conv / Gemm / MatMul node */
    int w_bits, a_bits;
    int64_t numel, m, group;
    bp_qk_layer k;     /* kernel view; its pointers point below */
    uint8_t *wpack;    /* ceil(numel * w_bits / 8) bytes, blocked order */
    int64_t wpack_bytes;
    int32_t *bias;     /* int32 at S_x * S_w */
    uint32_t *rq;      /* dyadic scale per channel (bp_dyadic24 packing) */
    int32_t *bias_x;   /* derived: bias - 128 * row sums of the codes */
    double *acc_scale; /* S_x * |S_w| per channel (for reports) */
    int64_t macs;      /* per sample */
    int bias_saturated;/* channels whose bias hit +-2^30 */
} bp_qlayer;

typedef struct bp_qop {
    bp_qop_kind kind;
    int node;          /* graph node it came from (last of a fused chain) */
    int in, in2, out;  /* tensor indices; in2: add / residual branch, or -1 */
    int32_t lo, hi;    /* output clamp */
    int layer;         /* LAYER: index into layers */
    /* ADD, REQUANT, residual LAYER: dyadic numbers of the branches */
    int32_t m1, m2;
    int s1, s2, frac;
    /* MAXPOOL, AVGPOOL */
    bp_pool_geom pool; /* per sample (n = 1), NHWC */
    int32_t *pm;       /* AVGPOOL: multiplier per window count (kh*kw+1) */
    int8_t *ps;
    int n_counts;      /* distinct counts in use */
    /* QUANTIZE / DEQUANT: the graph input / output index */
    int io;
    float fscale;      /* QUANTIZE: 1 / nothing, the scale; DEQUANT: scale */
} bp_qop;

typedef struct bp_qmodel {
    bp_graph *g;       /* borrowed */
    int n_tensors, n_ops, n_layers;
    bp_qtensor *t;
    bp_qop *ops;
    bp_qlayer *layers;
    int *value_tensor; /* (g->n_values) tensor of each value, or -1 */
    int64_t size_bytes, layer_bytes, overhead_bytes;
    bp_calib_method method;
    double percentile;
} bp_qmodel;

typedef struct bp_qopts {
    bp_calib_method method;   /* default BP_CALIB_DEFAULT */
    double percentile;        /* default BP_CALIB_PERCENTILE_DEFAULT */
    const char *plan_name;    /* for messages (default "plan") */
} bp_qopts;

/* Default options. */
void bp_qopts_init(bp_qopts *o);

/* Builds the quantized model of g under plan with activation ranges from
 * calib (made on g).  Errors (model unchanged, *out untouched):
 *  BP_EINVAL: the plan is for another model (sha256), names a layer the
 *    model lacks, or misses one of its layers;
 *  BP_EUNSUPPORTED: bit-widths outside 2..8, or an op / pattern the
 *    integer executor has no kernel for (the message names the node);
 * each with one line naming the plan or model file. */
int bp_qmodel_new(bp_qmodel **out, bp_graph *g, const bp_plan *plan,
                  const bp_qcalib *calib, const bp_qopts *opts);

void bp_qmodel_free(bp_qmodel **qm);

/* The plan checks of bp_qmodel_new alone (model hash, layer names, bit
 * widths), cheap enough to run before any data is read. */
int bp_qplan_check(bp_graph *g, const bp_plan *plan, const char *plan_name);

/* One op of the integer executor as the cost model sees it: what it is and
 * how many elements of one sample it moves (QUANTIZE: the float inputs it
 * reads; DEQUANT: the floats it writes; MAXPOOL, AVGPOOL: the codes they
 * read; ADD, RELU, FLATTEN, REQUANT: the codes they write; LAYER: its
 * output elements). */
typedef struct bp_qop_info {
    bp_qop_kind kind;
    int layer;         /* LAYER: index in bp_graph_layers order; else -1 */
    int residual;      /* LAYER: a residual Add is fused into its epilogue */
    int64_t elements;  /* per sample, as above */
    int64_t out_elements; /* per sample written (the executor's threshold
                             for splitting the op over threads) */
    int64_t const_bytes;  /* its scales and dyadic numbers (size, above) */
    int in_tensor, in_root; /* LAYER: the tensor it reads and the tensor
                               whose bits that one shares; else -1 (a plan
                               whose layers read one root at different
                               a_bits adds REQUANT copies: 5 bytes each) */
} bp_qop_info;

/* The ops bp_qmodel_new would make of g, in execution order, without a plan
 * or calibration: for pricing a plan before it exists.  The REQUANT copies a
 * plan adds (a layer reading fewer activation bits than its input tensor
 * has) depend on the plan and are not listed.  Infers g at batch 1 and
 * leaves it so.  *ops is a malloc'd array the caller frees.
 * BP_EUNSUPPORTED (naming the node) for a graph the executor cannot run. */
int bp_qmodel_ops(bp_graph *g, bp_qop_info **ops, int *n_ops);

/* The tensors and ops bp_qmodel_new would make of g, without a plan or
 * calibration (no weights, scales or bits: a model for sizing, which
 * bp_qexec_new must not run).  Infers g at batch 1 and leaves it so; the
 * caller frees *out with bp_qmodel_free.  BP_EUNSUPPORTED (naming the node)
 * for a graph the executor cannot run. */
int bp_qmodel_skeleton(bp_qmodel **out, bp_graph *g);

/* Bit-operations of one sample: sum over layers of MACs * w_bits * a_bits. */
double bp_qmodel_bops(const bp_qmodel *qm);

#endif
