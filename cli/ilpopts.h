/* ilpopts.h - what `bitplan solve` and `bitplan sweep` share: the options
 * that describe the allocation problem (inputs, profile, candidate bits,
 * pins, ranges, ties, metric, solver limits) and loading everything they
 * name into a ready bp_alloc. */
#ifndef BP_ILPOPTS_H
#define BP_ILPOPTS_H

#include <getopt.h>

#include "../ilp/alloc.h"
#include "cli.h"

/* getopt_long codes of the shared options (above any short option). */
enum {
    ILP_OPT_SENS = 1000, ILP_OPT_DATA, ILP_OPT_LABELS, ILP_OPT_SAVE_SENS,
    ILP_OPT_PROFILE, ILP_OPT_BUDGET, ILP_OPT_BITS, ILP_OPT_ABITS,
    ILP_OPT_METRIC, ILP_OPT_PIN, ILP_OPT_RANGE, ILP_OPT_TIE, ILP_OPT_KFL,
    ILP_OPT_TIME, ILP_OPT_GAP, ILP_OPT_BATCH, ILP_OPT_JSON, ILP_OPT_VERBOSE,
    ILP_OPT_SEED, ILP_OPT_SAMPLES, ILP_OPT_TRACE, ILP_OPT_SENS_BATCH
};

#define ILP_COMMON_OPTIONS                                                  \
    {"sensitivity", required_argument, NULL, ILP_OPT_SENS},                 \
    {"data", required_argument, NULL, ILP_OPT_DATA},                        \
    {"labels", required_argument, NULL, ILP_OPT_LABELS},                    \
    {"save-sensitivity", required_argument, NULL, ILP_OPT_SAVE_SENS},       \
    {"profile", required_argument, NULL, ILP_OPT_PROFILE},                  \
    {"budget", required_argument, NULL, ILP_OPT_BUDGET},                    \
    {"bits", required_argument, NULL, ILP_OPT_BITS},                        \
    {"abits", required_argument, NULL, ILP_OPT_ABITS},                      \
    {"metric", required_argument, NULL, ILP_OPT_METRIC},                    \
    {"pin", required_argument, NULL, ILP_OPT_PIN},                          \
    {"bits-range", required_argument, NULL, ILP_OPT_RANGE},                 \
    {"tie", required_argument, NULL, ILP_OPT_TIE},                          \
    {"keep-first-last", required_argument, NULL, ILP_OPT_KFL},              \
    {"time-limit", required_argument, NULL, ILP_OPT_TIME},                  \
    {"gap", required_argument, NULL, ILP_OPT_GAP},                          \
    {"batch", required_argument, NULL, ILP_OPT_BATCH},                      \
    {"json", no_argument, NULL, ILP_OPT_JSON},                              \
    {"verbose", no_argument, NULL, ILP_OPT_VERBOSE},                        \
    {"seed", required_argument, NULL, ILP_OPT_SEED},                        \
    {"samples", required_argument, NULL, ILP_OPT_SAMPLES},                  \
    {"trace", required_argument, NULL, ILP_OPT_TRACE},                      \
    {"sens-batch", required_argument, NULL, ILP_OPT_SENS_BATCH}

/* The help text of the shared options. */
extern const char ilp_common_help[];

#define ILP_MAX_ITEMS 256

typedef struct ilp_args {
    const char *model, *sens_path, *data, *labels, *save_sens, *profile;
    int n_budgets;
    bp_budget budgets[BP_MCKP_MAX_BUDGETS];
    bp_alloc_opts ao;
    bp_alloc_range ranges[ILP_MAX_ITEMS];
    bp_alloc_tie ties[ILP_MAX_ITEMS];
    char *tie_buf[ILP_MAX_ITEMS];          /* owned copies split in place */
    const char **tie_names[ILP_MAX_ITEMS]; /* owned arrays */
    bp_mckp_opts mo;
    int json, verbose;
    uint64_t seed;       /* of the sensitivity estimator (MODEL --data) */
    int64_t samples;     /* calibration samples used (0: all) */
    int trace;           /* bp_trace_method, -1: unset (MODEL --data) */
    int64_t sens_batch;  /* samples per sensitivity pass (0: automatic) */
} ilp_args;

/* cli_check_outputs for out (may be NULL) and --save-sensitivity against
 * the inputs named in a: before any work. */
int ilp_check_outputs(const ilp_args *a, const char *out);

void ilp_args_init(ilp_args *a);
void ilp_args_free(ilp_args *a);

/* Handles shared option c; 1 when handled, 0 when c is not shared, -1 after
 * a usage error was reported (exit code BP_EXIT_INPUT). */
int ilp_args_option(const char *cmd, ilp_args *a, int c, const char *arg);

/* Everything loaded from an ilp_args. */
typedef struct ilp_ctx {
    bp_profile *prof;
    bp_sens *sens;
    bp_graph *graph;
    bp_layer_facts *facts;
    bp_alloc *alloc;
    const char *model_path, *model_sha256; /* borrowed from graph or sens */
    /* what alloc was built from, to build it again with other options */
    const char *alloc_src;
    int n_facts, has_model;
    bp_model_facts model;
} ilp_ctx;

/* Loads the profile, the sensitivity file and the model (when given), and
 * builds the allocation.  Returns an exit code (0 on success) after
 * printing one error line. */
int ilp_ctx_load(const char *cmd, const ilp_args *a, ilp_ctx *c);
void ilp_ctx_free(ilp_ctx *c);

/* st, and when st is BP_EINFEASIBLE on a latency or BOPs budget with the
 * default 8-bit activations, the same status with its message extended by
 * a hint when --abits 4,8 would meet the budgets (caps: their absolute
 * values, as bp_alloc_resolve gave them). */
int ilp_hint_abits(const ilp_ctx *c, const ilp_args *a, const double *caps,
                   int st);

/* The per-layer table and the totals against each budget, on stderr. */
void ilp_print_summary(const ilp_ctx *c, const ilp_args *a,
                       const bp_alloc_result *r, const double *values);

#endif
