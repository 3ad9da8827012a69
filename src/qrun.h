/* qrun.h - proving a plan by running it: accuracy, agreement with the float
 * model, logit SQNR, packed bytes, measured latency and the plan's budgets.
 *
 * A bp_qrun holds what stays the same across plans of one model: where the
 * data comes from, the calibration statistics, and (bounded, when asked
 * for) the float model's outputs.  bp_qrun_plan() then builds the quantized
 * model of one plan, streams the data through the float and the integer
 * executors one batch at a time and measures it, so that `bitplan run` and
 * `bitplan sweep --validate` report the same figures.
 *
 * Memory: the data set is read in batches of opts.batch samples from a
 * bp_qrun_source (a .npy file in the CLI); what is held is the model, its
 * quantized copy, one batch of samples and labels, both executors'
 * activations for one batch, and the calibration samples (at most
 * opts.calib_samples of the data when no calibration set is given).  The
 * float outputs of the whole set are kept only when opts.float_cache_bytes
 * allows it (sweep --validate, which runs many plans over the same data).
 * Sums run over the samples in order, so the figures do not depend on how
 * the set is batched beyond the float executor's own batch (opts.batch).
 *
 * Accuracy and cross-entropy read graph output 0 as (N, classes) logits;
 * for other outputs they are NaN and only the SQNR is reported.
 *
 * Ownership: a bp_qrun borrows the graph and the source's context (both
 * must outlive it); bp_qrun_new copies the tensors it is given. */
#ifndef BP_QRUN_H
#define BP_QRUN_H

#include <stdint.h>

#include "graph.h"
#include "plan.h"
#include "qgraph.h"
#include "tensor.h"

typedef struct bp_qrun_opts {
    int64_t batch;        /* evaluation and timing batch (default 64) */
    int repeat;           /* timed runs per batch size, median kept; 0 = no
                             timing (default 0) */
    int time_batch;       /* with repeat: also time runs of `batch` samples
                             (default 1; 0: batch 1 only) */
    int threads;          /* integer executor threads (0: online CPUs) */
    int64_t calib_batch;  /* float batch of the calibration passes (64) */
    int64_t calib_samples;/* without a calibration set: the first this many
                             samples of the data calibrate (default 256) */
    int64_t float_cache_bytes; /* keep the float outputs of the whole set
                             across plans when they fit (default 0: none;
                             recomputed batch by batch for every plan) */
    bp_qopts q;           /* calibration method, percentile */
    /* When set, called after every batch with the integer model's output 0
     * (dequantized, count x the output's per-sample values) for samples
     * [start, start + count), in order; a status other than BP_OK stops
     * the run with it.  `bitplan run --out` writes the file through it. */
    int (*sink)(void *ctx, int64_t start, int64_t count, const float *out);
    void *sink_ctx;
} bp_qrun_opts;

void bp_qrun_opts_init(bp_qrun_opts *o);

/* Where the samples come from.  read() fills samples [start, start + count)
 * (count <= the run's batch) into x as float32 in the graph input's layout
 * (count x per values, per from the model's input shape) and, when
 * has_labels, their class labels into labels (count); it returns BP_OK or a
 * status with the message set (a file that changed under us, say). */
typedef struct bp_qrun_source {
    int64_t n;            /* samples, >= 1 */
    int has_labels;
    int (*read)(void *ctx, int64_t start, int64_t count, float *x,
                int64_t *labels);
    void *ctx;
} bp_qrun_source;

/* One budget of the plan against what was measured. */
typedef struct bp_qrun_budget {
    const char *kind;     /* borrowed from the plan */
    const char *text;
    double limit, measured;
    int checked, met;     /* checked = 0: a kind bitplan does not measure */
} bp_qrun_budget;

#define BP_QRUN_MAX_BUDGETS 16

typedef struct bp_qrun_result {
    int64_t samples;
    int has_labels, has_classes;
    double float_accuracy, int_accuracy;  /* 0..1 */
    double float_loss, int_loss;          /* mean cross-entropy, nats */
    double agreement;                     /* top-1 agreement, 0..1 */
    double sqnr_db;                       /* 10 log10(sum f^2 / sum (f-q)^2) */
    int64_t size_bytes, layer_bytes, overhead_bytes;
    double bops;                          /* per sample */
    double latency_s;                     /* per sample, batch 1, median */
    double latency_p10_s, latency_p90_s;  /* its runs' 10th, 90th percentiles */
    double latency_batch_s;               /* per sample at `batch`, median */
    int64_t batch;
    double predicted_latency_s, predicted_size_bytes, predicted_bops;
    int n_budgets;
    bp_qrun_budget budgets[BP_QRUN_MAX_BUDGETS];
    int budgets_met;
    int threads;
    const char *isa;
} bp_qrun_result;

typedef struct bp_qrun bp_qrun;

/* Samples from src (copied: src->ctx is borrowed); calib: float32
 * calibration samples (copied into the statistics, not kept) or NULL to
 * take the first min(n, calib_samples) samples of the data (read once, then
 * released; bp_qrun_calib_from_data() then says so).  Runs the calibration
 * passes.  Errors: BP_EUNSUPPORTED for a model without exactly one input,
 * BP_EINVAL for calibration samples of the wrong size, the source's and
 * the float executor's errors. */
int bp_qrun_open(bp_qrun **out, bp_graph *g, const bp_qrun_source *src,
                 const bp_tensor *calib, const bp_qrun_opts *o);

/* bp_qrun_open over tensors held in memory: x float32 samples (N, input
 * shape), labels int64 (N) or NULL; both are copied. */
int bp_qrun_new(bp_qrun **out, bp_graph *g, const bp_tensor *x,
                const bp_tensor *labels, const bp_tensor *calib,
                const bp_qrun_opts *o);

/* 1 when the calibration used the first samples of the data. */
int bp_qrun_calib_from_data(const bp_qrun *r);
int64_t bp_qrun_calib_samples(const bp_qrun *r);

/* Float accuracy of the data, as in the results; NaN until the first
 * bp_qrun_plan() has streamed the data. */
double bp_qrun_float_accuracy(const bp_qrun *r);

/* Builds plan's quantized model, runs it over the data, times it (when
 * repeat > 0) and checks the plan's budgets.  plan_name names the plan in
 * messages.  Errors of bp_qmodel_new (bad plan) and of the source are
 * passed on; *res is written only on success. */
int bp_qrun_plan(bp_qrun *r, const bp_plan *plan, const char *plan_name,
                 bp_qrun_result *res);

/* Bytes one more sample of opts.batch adds to what a bp_qrun of g holds
 * while it runs a plan: the float executor's buffers
 * (bp_exec_sample_bytes, float32), the integer executor's
 * (bp_qexec_graph_sample_bytes) and the batch of samples and labels read.
 * The calibration passes hold a float executor at opts.calib_batch (before
 * the run's float executor is made), so with calib_batch = batch this is
 * the peak.  `bitplan run` sizes its automatic batch with it.  Infers g at
 * batch 1 and leaves it so; errors as those two functions; *bytes is
 * written only on success. */
int bp_qrun_sample_bytes(bp_graph *g, int64_t *bytes);

/* The median of n timings (sorts v): the latency statistic `bitplan run`
 * reports, and the one `bitplan profile --measure` keeps so that its
 * profiles predict it. */
double bp_qrun_median(double *v, int n);

/* The float executor's median latency per sample at batch 1 over `repeat`
 * runs (for comparisons). */
int bp_qrun_float_latency(bp_qrun *r, int repeat, double *seconds);

void bp_qrun_free(bp_qrun **r);

#endif
