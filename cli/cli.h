/* cli.h - what the bitplan subcommands share: the command table, error
 * reporting with exit codes, and feeding .npy data to a model in batches.
 * Nothing here is part of libbitplan. */
#ifndef BP_CLI_H
#define BP_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "bitplan.h"
#include "qrun.h"

/* Exit codes (DESIGN.md): 0 ok, 1 failed check, 2 bad input. */
enum { BP_EXIT_OK = 0, BP_EXIT_CHECK = 1, BP_EXIT_INPUT = 2, BP_EXIT_INTERNAL = 3 };

typedef struct bp_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} bp_cmd;

/* "bitplan: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports the library's last message for status st; returns the exit code. */
int cli_status(int st);
/* A usage error: message plus the --help hint; returns BP_EXIT_INPUT. */
int cli_usage(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parses a positive integer option value; exits through cli_usage. */
int cli_parse_int(const char *cmd, const char *opt, const char *s,
                  int64_t lo, int64_t hi, int64_t *out);

/* Parses a --seed: decimal digits only, 0 .. 2^64-1; exits through
 * cli_usage. */
int cli_parse_seed(const char *cmd, const char *s, uint64_t *out);

/* Parses a finite decimal number in [lo, hi] (no hex, inf or nan, nothing
 * after it); exits through cli_usage. */
int cli_parse_double(const char *cmd, const char *opt, const char *s,
                     double lo, double hi, double *out);

/* getopt_long returned '?' or ':' (main sets opterr = 0, so getopt printed
 * nothing): one usage line naming the argument; returns BP_EXIT_INPUT. */
int cli_bad_option(const char *cmd, const char *shortopts, int argc,
                   char **argv);

/* Checks output paths before the work starts: each can be created
 * (bp_outfile_check) and none is one of the inputs (same file), which the
 * output would replace.  NULL entries are skipped.  BP_OK or a status with
 * its message (report it with cli_status). */
int cli_check_outputs(const char *const *outs, int n_outs,
                      const char *const *ins, int n_ins);

/* stderr is a terminal: progress lines are drawn only then. */
int cli_progress_enabled(void);
void cli_progress(const char *what, int64_t done, int64_t total);
void cli_progress_end(void);

/* Sets BLAS threads (0 = leave the library default). */
void cli_set_threads(int threads);

/* Data fed to a model: X (and optional labels Y) checked against the model's
 * input, read in batches: neither file is held in memory. */
typedef struct cli_data {
    bp_npy *x;
    bp_npy *y;              /* labels file, or NULL */
    const char *xpath;
    int64_t count;          /* samples used (after --samples) */
    int64_t sample_numel;
    int64_t *labels;        /* (count) after cli_data_load_labels, or NULL */
    int64_t n_classes;      /* from the model output, for label checks */
} cli_data;

/* Opens xpath (and ypath when not NULL) for graph g, whose single input
 * must match the sample shape; limit > 0 keeps the first `limit` samples.
 * Labels are checked here (integer, one per sample, inside the model's
 * classes) in one pass of bounded memory, so bad labels fail before any
 * work.  On error prints nothing and returns a status with the message
 * set. */
int cli_data_open(cli_data *d, bp_graph *g, const char *xpath,
                  const char *ypath, int64_t limit);
void cli_data_close(cli_data *d);

/* Reads samples [start, start+n) into buf as dtype dt. */
int cli_data_read(cli_data *d, int64_t start, int64_t n, bp_dtype dt, void *buf);

/* Reads labels [start, start+n) into buf (d must have a labels file). */
int cli_data_read_labels(cli_data *d, int64_t start, int64_t n, int64_t *buf);

/* Reads all `count` labels into d->labels (for the sensitivity stage, whose
 * estimators index them directly; 8 bytes per sample).  No-op without a
 * labels file. */
int cli_data_load_labels(cli_data *d);

/* The sensitivity stage on data xpath (labels ypath or NULL, first
 * `samples` or all when 0) into a new bp_sens with model and data identity
 * filled; shared by `sensitivity` and `solve`/`sweep MODEL --data`.  Opts
 * are a bp_sens_opts (sensitivity/estimators.h). */
/* Data for the integer executor (`run`, `sweep --validate`): samples X and
 * labels Y (or none) from xpath/ypath, streamed in batches through `src`;
 * calibration samples CX from cpath (its first csamples), or NULL, in which
 * case the bp_qrun takes the first csamples of X itself.  Owns what the
 * source reads from: free after the bp_qrun. */
typedef struct cli_qdata {
    cli_data d;
    bp_tensor *cx;
    bp_qrun_source src;
} cli_qdata;
int cli_qdata_load(cli_qdata *q, bp_graph *g, const char *xpath,
                   const char *ypath, int64_t samples, const char *cpath,
                   int64_t csamples);
void cli_qdata_free(cli_qdata *q);

struct bp_sens_opts;
struct bp_sens;
int cli_sensitivity_compute(bp_graph *g, const char *xpath, const char *ypath,
                            int64_t samples, const struct bp_sens_opts *o,
                            struct bp_sens **out);
/* Workers for the sensitivity stages (bp_sens_opts.threads): the stages
 * run BLAS on one thread (bp_sensitivity), so the workers are all the
 * parallelism there is.  requested 0: one per CPU, at most 4 (each holds a
 * batch's tangents and adjoints). */
int cli_sens_workers(int64_t requested);

/* The sensitivity stages' progress on stderr, when it is a terminal
 * (bp_sens_opts.progress). */
void cli_sens_progress(void *ctx, const char *stage, int64_t done,
                       int64_t total);

#endif
