/* graph.h - bitplan's graph IR: the one representation every stage uses.
 *
 * A bp_graph is a list of values (tensors flowing through the network) and
 * a list of nodes (ops) in topological order.  Loaders (onnx.c) build it;
 * shape inference (shape.c) gives every value a concrete shape for a given
 * batch size; the float executor, the autodiff in sensitivity/ and the
 * integer executor all walk the same node list.
 *
 * Values:
 *  - constants: initializers and everything folded at load time, held in
 *    `data` (owned by the graph);
 *  - graph inputs: the data fed by the user, whose axis 0 is the batch;
 *  - computed values: written by exactly one node (`producer`).
 * After bp_graph_infer(g, batch), every value has dtype, rank and dims for
 * that batch, and int64 "shape arithmetic" values (Shape -> Gather -> Concat
 * -> Reshape chains that torch.onnx.export emits) are evaluated into `known`
 * so the executors never run them.
 *
 * Nodes keep their ONNX attributes verbatim (bp_attr) and are read with the
 * bp_node_attr_* helpers, so ops with rich attribute sets (LSTM's
 * activations, directions, layouts) fit without IR changes; optional inputs
 * that are absent have index -1.  LSTM's W/R/B are ordinary constant inputs.
 *
 * Ownership: the graph owns every value, node, attribute and constant;
 * bp_graph_free releases all of it. */
#ifndef BP_GRAPH_H
#define BP_GRAPH_H

#include <stdint.h>

#include "tensor.h"

typedef enum bp_op {
    BP_OP_CONV = 0,
    BP_OP_GEMM,
    BP_OP_MATMUL,
    BP_OP_ADD,
    BP_OP_SUB,
    BP_OP_MUL,
    BP_OP_DIV,
    BP_OP_RELU,
    BP_OP_LEAKYRELU,
    BP_OP_CLIP,
    BP_OP_SIGMOID,
    BP_OP_TANH,
    BP_OP_SOFTMAX,
    BP_OP_MAXPOOL,
    BP_OP_AVERAGEPOOL,
    BP_OP_GLOBALAVERAGEPOOL,
    BP_OP_REDUCEMEAN,
    BP_OP_BATCHNORM,
    BP_OP_FLATTEN,
    BP_OP_RESHAPE,
    BP_OP_SQUEEZE,
    BP_OP_UNSQUEEZE,
    BP_OP_TRANSPOSE,
    BP_OP_CONCAT,
    BP_OP_GATHER,
    BP_OP_IDENTITY,
    BP_OP_CONSTANT,
    BP_OP_DROPOUT,
    /* shape arithmetic: evaluated at inference, never by the executors */
    BP_OP_SHAPE,
    BP_OP_CAST,
    BP_OP_SLICE,
    BP_OP_CONSTANTOFSHAPE,
    BP_OP_PAD,           /* constant mode */
    BP_OP_COUNT
} bp_op;

/* ONNX op type name of an op ("Conv"). */
const char *bp_op_name(bp_op op);
/* Looks up an ONNX op type; BP_EUNSUPPORTED when bitplan lacks it. */
int bp_op_lookup(const char *name, bp_op *op);

typedef enum bp_attr_type {
    BP_ATTR_INT, BP_ATTR_FLOAT, BP_ATTR_INTS, BP_ATTR_FLOATS,
    BP_ATTR_STRING, BP_ATTR_STRINGS, BP_ATTR_TENSOR
} bp_attr_type;

typedef struct bp_attr {
    char *name;
    bp_attr_type type;
    int64_t i;
    double f;
    int n;              /* element count of ints / floats / strings */
    int64_t *ints;
    double *floats;
    char *s;
    char **strings;
    bp_tensor *t;
} bp_attr;

typedef struct bp_value {
    char *name;
    bp_dtype dtype;
    int rank;
    int64_t dims[BP_MAX_RANK];  /* concrete after bp_graph_infer */
    bp_tensor *data;            /* constant: owned, fixed at load */
    bp_tensor *known;           /* shape arithmetic evaluated by infer */
    int producer;               /* node index, -1 for constants and inputs */
    int is_input;               /* a graph input fed by the user */
    int decl_rank;              /* graph inputs: the declared shape, */
    int64_t decl_dims[BP_MAX_RANK]; /* -1 for a dynamic axis */
} bp_value;

typedef struct bp_node {
    bp_op op;
    char *name;        /* ONNX node name, or "<op_type>_<index>" when empty */
    int n_in, n_out;
    int *in, *out;     /* value indices; -1 = omitted optional input */
    int n_attrs;
    bp_attr *attrs;
} bp_node;

typedef struct bp_graph {
    char *path;           /* file it came from */
    char hash[65];        /* sha256 of the file, hex */
    int64_t opset;
    int n_values, n_nodes;
    bp_value *values;
    bp_node *nodes;       /* topological order */
    int n_inputs, n_outputs;
    int *inputs, *outputs; /* value indices */
    int64_t batch;        /* batch of the last bp_graph_infer, 0 before */
    struct bp_name_map *names;
} bp_graph;

/* A quantizable layer: Conv, Gemm or MatMul whose weight is a constant. */
typedef struct bp_layer {
    int node;            /* index into g->nodes */
    int weight;          /* value index of the weight initializer */
    int bias;            /* value index of the bias, or -1 */
    const char *name;    /* the weight initializer's name (borrowed) */
    bp_op op;
    int rank;
    int64_t shape[BP_MAX_RANK];
    int64_t numel;
    int64_t out_channels;   /* rows that get their own scale */
    int64_t macs;        /* per sample, from the last bp_graph_infer */
} bp_layer;

void bp_graph_free(bp_graph **g);

/* Value index by name, or -1. */
int bp_graph_find(const bp_graph *g, const char *name);

/* Gives every value a shape for batch size `batch` (>= 1) and evaluates shape
 * arithmetic.  BP_EINVAL naming the node when shapes do not fit; the graph's
 * shapes are then unspecified but it stays valid to free or re-infer. */
int bp_graph_infer(bp_graph *g, int64_t batch);

/* Elements per sample of the values computed at run time: every value that
 * is neither a constant nor evaluated by inference (`known`: shape
 * arithmetic, the same at any batch), summed over values of rank >= 1
 * after bp_graph_infer(g, 1) (which this calls, leaving g at batch 1).  The
 * float executor holds one buffer of each, so callers size batches with it:
 * sensitivity's automatic batch, the default --batch of eval and run.  A
 * sum past INT64_MAX saturates.  Errors of bp_graph_infer; *numel is
 * written only on success. */
int bp_graph_act_numel(bp_graph *g, int64_t *numel);

/* Constant folding: nodes whose inputs are all constants become constants.
 * Called by loaders once the graph is built. */
int bp_graph_fold(bp_graph *g);

/* The quantizable layers in graph order, into a malloc'd array the caller
 * frees. Calls bp_graph_infer(g, 1) if the graph has not been inferred. */
int bp_graph_layers(bp_graph *g, bp_layer **layers, int *n);

/* Attribute lookup; the _or variants return `def` when absent. */
const bp_attr *bp_node_attr(const bp_node *n, const char *name);
int64_t bp_node_attr_int(const bp_node *n, const char *name, int64_t def);
double bp_node_attr_float(const bp_node *n, const char *name, double def);
/* Copies up to max ints into out; returns the count, or -1 when absent. */
int bp_node_attr_ints(const bp_node *n, const char *name, int64_t *out, int max);

/* Graph construction helpers used by loaders and tests. */
int bp_graph_new(bp_graph **out, const char *path);
int bp_graph_add_value(bp_graph *g, const char *name, int *index);
int bp_graph_add_node(bp_graph *g, bp_op op, const char *name,
                      int n_in, const int *in, int n_out, const int *out,
                      int *index);
/* Orders nodes topologically; BP_EINVAL naming a node on a cycle or a value
 * with no producer. */
int bp_graph_toposort(bp_graph *g);

#endif
