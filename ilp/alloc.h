/* alloc.h - bit allocation: from layers, sensitivities, a hardware profile
 * and budgets to the best plan, through the exact solver in mckp.h.
 *
 * A bp_alloc is built once per model (layer facts, sensitivities, profile,
 * candidate bits, pins, bit ranges, ties, keep-first-last) and then solved
 * for any number of budget sets (one `bitplan solve`, or every point of a
 * `bitplan sweep`).  Each solve
 *  1. resolves the budgets to absolute totals (bytes, seconds, BOPs),
 *  2. checks each against the smallest total any plan can reach under the
 *     pins and ties and fails at once (BP_EINFEASIBLE, one line) when one is
 *     out of reach,
 *  3. drops dominated choices and hands the rest to bp_mckp_solve,
 *  4. returns every layer's bits and costs and the totals.
 *
 * Choices.  A layer's choice is a weight bit-width w from the candidates
 * (--bits, else every width the sensitivity file prices), narrowed by pins,
 * ranges and keep-first-last; its activation bits follow w: by default
 * a = max(w, 8) (activations are never narrower than 8 bits unless asked);
 * with an activation list (--abits 4,8) a is the smallest listed width >= w
 * (the widest listed when none is), so `--abits 8` fixes a = 8 and
 * `--abits 4,8` gives W4A4 and W8A8; with abits_follow, a = w.
 *
 * Objective.  Omega_i(w) from the sensitivity file (trace metric:
 * Tr(H_i)/n_i * ||Q_w(W_i) - W_i||^2, HAWQ-V2), or with the eig metric
 * lambda_max(H_i)/n_i * ||Q_w(W_i) - W_i||^2 (the top eigenvalue in place
 * of the trace, HAWQ-V1's ordering).
 *
 * Budgets (bp_budget_parse): size=1.5MiB | size=25% (of the float32 model)
 * | size=8x (compression against it); latency=0.8ms | latency=60% (of the
 * all-highest-precision plan) | latency=2x (speed-up against it);
 * bops=3.2G | bops=50% | bops=4x likewise.
 *
 * Ownership: a bp_alloc copies what it needs from its inputs except the
 * profile, which it borrows (it must outlive the bp_alloc).  Results own
 * their arrays (bp_alloc_result_free). */
#ifndef BP_ALLOC_H
#define BP_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "cost.h"
#include "mckp.h"
#include "plan.h"
#include "profile.h"
#include "../sensitivity/sensfile.h"

typedef enum bp_budget_kind {
    BP_BUDGET_SIZE = 0,      /* bytes */
    BP_BUDGET_LATENCY,       /* seconds */
    BP_BUDGET_BOPS,          /* bit operations per sample */
    BP_BUDGET_KINDS
} bp_budget_kind;

typedef enum bp_budget_form {
    BP_BUDGET_ABS = 0,       /* amount is bytes / seconds / BOPs */
    BP_BUDGET_PERCENT,       /* amount is a percentage of the reference */
    BP_BUDGET_TIMES          /* amount is a reduction factor: ref / amount */
} bp_budget_form;

typedef struct bp_budget {
    bp_budget_kind kind;
    bp_budget_form form;
    double amount;
    char unit[8];            /* as written: "MiB", "ms", "G", "%", "x", "" */
    char text[64];           /* the whole spec, "size=1.5MiB" */
    const char *value_text;  /* points into text: "1.5MiB" */
} bp_budget;

/* Parses "KIND=VALUE".  BP_EINVAL "--budget X: ..." saying what was
 * expected (kinds, units, a positive number). */
int bp_budget_parse(const char *spec, bp_budget *out);

/* "size", "latency", "bops". */
const char *bp_budget_kind_name(bp_budget_kind k);

/* Formats a total of kind k with `digits` significant digits, in `unit`
 * when it is one of the kind's units ("MiB", "ms", "G"), else in a unit
 * picked for the value: "1.31MiB", "0.8ms", "3.2G". */
void bp_budget_format(char *buf, size_t n, bp_budget_kind k, double v,
                      const char *unit, int digits);

/* Omega per layer and width: trace (HAWQ-V2: Tr(H)/n ||Q_b(W) - W||^2), eig
 * (the top eigenvalue in the trace's place), loss (2 x the sensitivity
 * file's loss_increase: the measured loss increase beyond first order, on the
 * scale of d^T H d that the trace form estimates). */
typedef enum bp_metric { BP_METRIC_TRACE = 0, BP_METRIC_EIG, BP_METRIC_LOSS }
    bp_metric;

/* A bit range for one layer: --pin NAME=B (lo = hi = B) or --bits-range
 * NAME=LO:HI. */
typedef struct bp_alloc_range {
    const char *name;
    int lo, hi;
    int is_pin;              /* for messages only */
} bp_alloc_range;

/* Layers that must share one bit-width (--tie A,B,...). */
typedef struct bp_alloc_tie {
    int n;
    const char *const *names;
} bp_alloc_tie;

typedef struct bp_alloc_opts {
    unsigned wbits;          /* bit b set: b bits is a candidate; 0: all
                                widths the sensitivity file prices */
    unsigned abits;          /* activation widths, bit b set; 0: a=max(w,8) */
    int abits_follow;        /* a = w (overrides abits) */
    bp_metric metric;
    int n_ranges;
    const bp_alloc_range *ranges;
    int n_ties;
    const bp_alloc_tie *ties;
    int keep_first_last;     /* pin first and last layer to this; 0: off */
    int64_t batch;           /* for the latency model; <= 0 means 1 */
} bp_alloc_opts;

/* Defaults: every width, a = max(w, 8), trace metric, batch 1. */
void bp_alloc_opts_default(bp_alloc_opts *o);

typedef struct bp_alloc bp_alloc;

/* Builds the allocation problem.
 * sens, sens_path: the sensitivity file (its layers give Omega; sens_path
 *   names it in messages).
 * facts, n_facts, model: the layers from bp_layer_facts_from_graph() when
 *   a model is at hand (each must have a sensitivity entry by name and vice
 *   versa; first/last follow the model's order), or facts == NULL to take
 *   every fact from the sensitivity file (model NULL too).
 * prof: borrowed.
 * Errors (BP_EINVAL, one line, nothing allocated): a pin, range or tie
 * naming no layer; bits a layer cannot take (absent from the sensitivity
 * file, outside 1..16); a tie whose layers share no bit-width; --metric eig
 * on a file without eigenvalues; mismatching layer sets.
 * BP_EUNSUPPORTED when the profile cannot price a choice. */
int bp_alloc_new(bp_alloc **out, const bp_sens *sens, const char *sens_path,
                 const bp_layer_facts *facts, int n_facts,
                 const bp_model_facts *model, const bp_profile *prof,
                 const bp_alloc_opts *o);
void bp_alloc_free(bp_alloc **a);

int bp_alloc_n_layers(const bp_alloc *a);
const char *bp_alloc_layer_name(const bp_alloc *a, int i);
/* The float32 size of the model (the baseline of size=25%, size=8x). */
double bp_alloc_float_bytes(const bp_alloc *a);
/* 1 when the profile prices latency. */
int bp_alloc_has_latency(const bp_alloc *a);

/* The absolute total (bytes, seconds, BOPs) budget b stands for.
 * BP_EINVAL for a latency budget on a profile without latency. */
int bp_alloc_resolve(const bp_alloc *a, const bp_budget *b, double *value);

/* The smallest and largest total of kind k over all plans allowed by the
 * pins, ranges and ties (every group at its cheapest, resp. dearest,
 * choice). */
int bp_alloc_total_range(const bp_alloc *a, bp_budget_kind k, double *lo,
                   double *hi);

/* The total of kind k of the plan no budget constrains: every group at its
 * smallest objective (the cheapest of equals).  Any budget at or above it
 * gives that plan, so a sweep past it repeats one point.  On a CPU profile
 * where 2-bit kernels are the slowest, it lies well below the largest
 * latency total. */
int bp_alloc_total_at_best(const bp_alloc *a, bp_budget_kind k, double *hi);

typedef struct bp_alloc_result {
    int n_layers;
    int *w_bits, *a_bits;               /* (n_layers) */
    double *bytes, *latency_s, *bops, *omega; /* (n_layers) per layer */
    double size_bytes, total_latency_s, total_bops; /* plan totals */
    double objective, bound, gap;       /* summed Omega, proven bound,
                                           relative gap */
    int optimal;
    const char *status;                 /* "optimal" or "feasible" */
    double seconds;
    int n_groups, n_choices, n_dropped; /* after ties; kept; dominated */
} bp_alloc_result;

/* Solves for budgets b[0..nb) (nb 0..BP_MCKP_MAX_BUDGETS).  On success
 * fills *r (release with bp_alloc_result_free).  BP_EINFEASIBLE with one
 * line when a budget is out of reach ("budget size=1.0MiB cannot be met:
 * the smallest plan is 1.31MiB (all layers at 2 bits)") or when they
 * cannot be met together; BP_EINTERRUPTED when the time limit passed with
 * no plan; BP_EINVAL from bp_alloc_resolve. */
int bp_alloc_solve(const bp_alloc *a, int nb, const bp_budget *b,
                   const bp_mckp_opts *o, bp_alloc_result *r);

/* The same with budgets given as absolute totals caps[j] of kinds[j]
 * (texts[j] names them in messages; may be NULL). */
int bp_alloc_solve_caps(const bp_alloc *a, int nb, const bp_budget_kind *kinds,
                        const double *caps, const char *const *texts,
                        const bp_mckp_opts *o, bp_alloc_result *r);

void bp_alloc_result_free(bp_alloc_result *r);

/* A plan from a result: layers, predicted totals, status and gap; budgets
 * b[0..nb) with their resolved values[0..nb); model identity and profile
 * name copied. */
int bp_alloc_plan(const bp_alloc *a, const bp_alloc_result *r, int nb,
                  const bp_budget *b, const double *values,
                  const char *model_path, const char *model_sha256,
                  const char *profile, bp_plan **out);

#endif
