/* qprofile.h - measured hardware profiles: `bitplan profile --measure` times
 * the integer executor's layers on this machine and writes a "table"
 * profile with a roofline fallback fitted from the same measurements.
 *
 * What is measured (batch 1, on the threads and instruction set the
 * executor uses by default, medians of `repeat` runs):
 *  - each layer of every model given (--model) inside whole runs of that
 *    model at each weight width, with the time of the non-layer ops (input
 *    quantization, pooling, output dequantization) added to the layer that
 *    consumes their result, so that a model's entries sum to its measured
 *    whole-model latency;
 *  - a grid of convolution and GEMM shapes, each alone, to fit a roofline.
 * Activation widths do not change the kernels (codes of 2 to 8 bits live in
 * 8-bit containers): every entry is measured at a_bits 8, which the profile
 * schema applies to every narrower activation.
 *
 * The files follow bitplan's profile schema (profiles/README.md, issue 4):
 * with --model, PATH is a "table" profile whose "entries" are
 * {"layer", "w_bits", "a_bits": 8, "latency_s"} (plus "kernel_s", the layer
 * alone, "op", "shape", "key", "macs", "model_sha256" for reference) and
 * whose "fallback" is the fitted roofline written beside it as
 * NAME-roofline.json; without --model, PATH is that roofline:
 * {"peak_ops": [{"w_bits", "a_bits": 8, "ops_per_s" (2 x MACs / s),
 * "source"}], "memory": {"bytes_per_s"}, "launch_overhead": {"seconds"},
 * "missing_bits": {"compute": "next-native", "storage": "packed"}}. */
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
} bp_qprofile_opts;

void bp_qprofile_opts_init(bp_qprofile_opts *o);

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
 * 1: per layer the table entry of this model's layer at its bits, else the
 * entry of the same shape, else the roofline.  A minimal reader for the
 * benchmarks and checks of this branch; the cost model of the solver is
 * the authority. */
int bp_qprofile_predict(const char *path, bp_graph *g, const bp_plan *plan,
                        double *seconds);

#endif
