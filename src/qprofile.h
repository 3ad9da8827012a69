/* qprofile.h - measured hardware profiles: `bitplan profile --measure` times
 * the integer executor on this machine and writes a roofline profile with a
 * fitted layer model and the costs of the ops between layers (and, with
 * --model, a "table" profile of that model's own layers over it).
 *
 * What is measured (batch 1, on the threads and instruction set the
 * executor uses by default; `repeat` runs taken in up to five passes
 * interleaved over all graphs, each time the median of all its runs, as
 * `bitplan run` reports it; the passes spread every graph's runs over the
 * whole measurement, so that a machine's slow spells do not bias a few
 * shapes):
 *  - each layer of every model given (--model) inside whole runs of that
 *    model at each weight width, with the time of the non-layer ops (input
 *    quantization, pooling, output dequantization) added to the layer that
 *    runs next, so that a model's entries sum to its measured latency;
 *  - a grid of about sixty small models, one convolution or GEMM or two in
 *    a row (residual ones included), each layer reading uint8 codes as a
 *    layer after a ReLU does, timed op by op inside whole runs: the
 *    "layer_model" is fitted to their layers by non-negative least squares
 *    on relative errors, per regime (a layer on one thread, or split over
 *    the pool from BP_QEXEC_PAR_MACS);
 *  - small models of the ops between layers (Quantize, Relu, Add, MaxPool,
 *    Flatten, GlobalAveragePool, Dequant) at eleven sizes: "op_costs",
 *    seconds + per element, per op kind and regime;
 *  - the plain roofline fields (peak rate per width, bandwidth, overhead)
 *    from the same layers, for readers that do not know the fitted model.
 * Activation widths do not change the kernels (codes of 2 to 8 bits live in
 * 8-bit containers): every entry is measured at a_bits 8, which the profile
 * schema applies to every narrower activation.
 *
 * The files follow bitplan's profile schema (profiles/README.md): with
 * --model, PATH is a "table" profile whose "entries" are {"layer",
 * "w_bits", "a_bits": 8, "latency_s"} (plus "kernel_s", the layer alone,
 * "op", "shape", "key", "macs", "model_sha256" for reference) and whose
 * "fallback" is the fitted roofline written beside it as
 * NAME-roofline.json; without --model, PATH is that roofline. */
#ifndef BP_QPROFILE_H
#define BP_QPROFILE_H

#include <stdio.h>

#include "graph.h"
#include "plan.h"

typedef struct bp_qprofile_opts {
    int threads;          /* 0: online CPUs */
    int repeat;           /* timed runs per entry (0: 15, or 3 when quick) */
    int quick;            /* a small grid: for tests and benches */
    unsigned bits;        /* weight widths to measure: bit w set for width
                             w (default 2..8) */
    int n_models;
    bp_graph **models;    /* models whose layers are measured in place */
    const char *name;     /* profile name (default "measured") */
    const char *report;   /* when set, a CSV of every grid measurement next
                             to its fitted value is written here */
    char **text;          /* when set, receives a malloc'd copy of what was
                             written to path (the caller frees it) */
} bp_qprofile_opts;

void bp_qprofile_opts_init(bp_qprofile_opts *o);

/* Where a table profile written to path keeps its roofline fallback:
 * "DIR/NAME.json" -> "DIR/NAME-roofline.json" (truncated to n bytes). */
void bp_qprofile_roofline_path(const char *path, char *full, size_t n);

/* Measures and writes the profile to path atomically; progress lines go to
 * log when not NULL.  Errors: BP_EIO writing, BP_EUNSUPPORTED for a model
 * the integer executor cannot run (the message names the node). */
int bp_qprofile_measure(const char *path, const bp_qprofile_opts *o,
                        FILE *log);

/* The shape key of layer l of g ("Conv c64x56x56 m64 k3x3 s1x1 p1,1,1,1
 * d1x1 g1", "Gemm k512 n1000"), into buf. */
void bp_qprofile_key(const bp_graph *g, const bp_layer *l, char *buf,
                     size_t n);

/* The latency the profile at path predicts for running plan on g at batch
 * 1: the solver's cost model (ilp/cost.h) summed over g's layers at the
 * plan's bits (8/8 for a layer the plan lacks).  Errors of the profile
 * loader; BP_EINVAL for a profile without latency (bops). */
int bp_qprofile_predict(const char *path, bp_graph *g, const bp_plan *plan,
                        double *seconds);

#endif
