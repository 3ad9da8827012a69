/* qprofile.h - measured hardware profiles: `bitplan profile --measure` times
 * the integer executor's layers on this machine and writes a "table"
 * profile with a roofline fallback fitted from the same measurements.
 *
 * Table entries (all at batch 1, on the threads and instruction set the
 * executor uses by default, medians of `repeat` runs):
 *  - per layer of every model given (--model): its latency inside a whole
 *    run of the model at each weight width, with the time of the non-layer
 *    ops (input quantization, pooling, output dequantization) added to the
 *    layer that consumes their result, so that the entries of a model sum
 *    to its measured whole-model latency;
 *  - per shape of a grid of convolutions and GEMMs, timed alone.
 * Activation widths do not change the kernels (codes of 2 to 8 bits live in
 * 8-bit containers), so one measurement serves every a_bits; the table
 * repeats it for a_bits 2..8.
 *
 * The file (written by one function, write_profile in qprofile.c):
 *   {"name", "kind": "table", "source", "threads", "isa", "batch": 1,
 *    "table": [{"op": "Conv"|"Gemm"|"MatMul", "layer", "model_sha256",
 *               "key", "shape": [weight dims], "input": [C,H,W],
 *               "output": [M,OH,OW], "stride", "pads", "dilation", "group",
 *               "macs", "w_bits", "a_bits", "latency_s", "kernel_s"}, ...],
 *    "fallback": {"kind": "roofline", "source",
 *                 "peak_ops": {"w8a8": ops/s, ...}   (ops = 2 x MACs),
 *                 "bandwidth_bytes_s", "overhead_s"}}
 * Grid entries have no "layer" / "model_sha256"; "key" identifies a layer
 * shape (bp_qprofile_key). */
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
