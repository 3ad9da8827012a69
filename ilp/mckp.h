/* mckp.h - the exact solver core of bit allocation.
 *
 * After the caller has applied pins, bit ranges and ties (a tie merges layers
 * into one group whose choices carry summed costs and objectives), choosing
 * a bit-width per layer is a multiple-choice multi-dimensional knapsack:
 * groups g = 0..G-1, each with choices c = 0..C_g-1; choice (g,c) has an
 * objective o[g][c] >= 0 (the HAWQ sensitivity) and costs a[k][g][c] >= 0
 * for budgets k = 0..K-1 (bytes, seconds, BOPs); caps B_k.  We look for one
 * choice per group that minimises the summed objective with every budget's
 * summed cost within its cap.
 *
 * Feasibility is exact and defined once: an assignment meets budget k when
 * its total, summed in double precision in group order 0..G-1 (as
 * bp_mckp_eval does), is <= cap[k].  No slack is granted anywhere; the
 * solver verifies every assignment it returns this way.
 *
 * Ownership: a bp_mckp only points at caller-owned arrays, which the
 * functions here never modify or keep.  The only memory handed to the caller
 * is bp_mckp_result.choice, released with bp_mckp_result_free.  Every
 * function returns 0 (BP_OK) or a negative bp_status with a message in
 * bp_errmsg(), and writes its outputs only on success.
 *
 * Only ilp/ includes <glpk.h>: nothing GLPK leaks through this header. */
#ifndef BP_MCKP_H
#define BP_MCKP_H

/* Most budgets one problem may carry. */
#define BP_MCKP_MAX_BUDGETS 16

/* Problem description; every array is caller-owned. */
typedef struct bp_mckp {
    int n_groups;              /* G >= 1 */
    const int *n_choices;      /* (G) each >= 1; their sum is N <= INT_MAX */
    const double *obj;         /* (N) choices of group 0, then group 1, ...;
                                  finite, >= 0 */
    int n_budgets;             /* K, 0..BP_MCKP_MAX_BUDGETS */
    const double *cost;        /* (K, N) row k = budget k; finite, >= 0 */
    const double *cap;         /* (K) any value but NaN; +inf = no limit */
} bp_mckp;

/* Who solves what reduced-cost fixing leaves (bp_mckp_opts.method). */
enum {
    BP_MCKP_AUTO = 0,          /* our LP ascent and branch and bound (K <= 3
                                  budgets, <= 32 choices a group; the core
                                  heuristic solved by it too), GLPK's after a
                                  node cap when there is no time limit, or
                                  GLPK's LP and MIP for the rest */
    BP_MCKP_BB = 1,            /* ours wherever it applies, with no node cap
                                  and no core heuristic (tests, benches) */
    BP_MCKP_GLPK = 2           /* GLPK's LP and branch and bound only */
};

typedef struct bp_mckp_opts {
    double time_limit_s;       /* wall-clock limit for the whole solve;
                                  <= 0: none */
    double rel_gap;            /* stop once (objective - bound) /
                                  max(|objective|, 1e-12) <= rel_gap; 0 asks
                                  for a proven optimum */
    int verbose;               /* progress and GLPK's output on stderr */
    int core_groups;           /* groups in the core heuristic's small
                                  problem; 0: the default (32 when our
                                  branch and bound solves it, 48 for GLPK's
                                  MIP).  Tuning and tests: a tiny core
                                  leaves the work to fixing and the final
                                  search */
    int method;                /* BP_MCKP_AUTO (default), _BB or _GLPK */
} bp_mckp_opts;

typedef struct bp_mckp_result {
    int *choice;               /* (G) chosen choice per group; owned, free
                                  with bp_mckp_result_free */
    double objective;          /* sum of the chosen objectives, group order */
    double bound;              /* proven lower bound on the optimum */
    double gap;                /* (objective - bound) / max(|objective|, 1e-12) */
    int optimal;               /* 1: gap <= rel_gap was proven */
    double seconds;            /* wall-clock time of the solve */
    const char *status;        /* static string: "optimal" (proven within
                                  rel_gap) or "feasible" (time limit) */
    /* how the work split, for benches and --verbose */
    int n_free_groups;         /* groups left by reduced-cost fixing to the
                                  branch and bound (ours or GLPK's; 0:
                                  settled before it) */
    int n_free_choices;        /* per such group, one fewer than the choices
                                  left (GLPK's binary columns) */
    int mip_rounds;            /* GLPK MIP solves (more than 1 only when a
                                  GLPK answer broke a cap by its tolerance) */
    long bb_nodes;             /* nodes of our branch and bound (0: not run) */
} bp_mckp_result;

/* Fills *o with the defaults: no time limit, rel_gap 0, quiet, default
 * core. */
void bp_mckp_opts_default(bp_mckp_opts *o);

/* Solves p to optimality (or to o->rel_gap, or until o->time_limit_s; o may
 * be NULL for the defaults).  On success fills *r, which the caller releases
 * with bp_mckp_result_free; the returned assignment always meets every cap
 * exactly (see the top of this file).
 * Errors (*r untouched): BP_EINVAL for a malformed problem (NaN, negative
 * values, no groups, sizes over INT_MAX, too many budgets); BP_EINFEASIBLE
 * when no assignment meets the caps (the message names a budget when one
 * alone is out of reach); BP_EINTERRUPTED when the time limit passed before
 * any assignment meeting the caps was found; BP_ENOMEM; BP_EINTERNAL when
 * GLPK fails (the message carries GLPK's return-code name or diagnosis).
 * After an abort inside GLPK, glp_free_env has released every GLPK object
 * of the calling thread (GLPK cannot be used past its own abort); bitplan
 * keeps none between calls.  GLPK prints nothing on stdout; with verbose,
 * its log goes to stderr. */
int bp_mckp_solve(const bp_mckp *p, const bp_mckp_opts *o, bp_mckp_result *r);

/* Frees r->choice and sets it to NULL; accepts NULL and repeated calls. */
void bp_mckp_result_free(bp_mckp_result *r);

/* The smallest and largest total of budget k over all assignments (every
 * group at its cheapest, resp. dearest, choice), summed in group order: for
 * "budget cannot be met" messages and for choosing caps.  BP_EINVAL for a
 * malformed problem or k outside 0..n_budgets-1. */
int bp_mckp_cost_range(const bp_mckp *p, int k, double *lo, double *hi);

/* Evaluates an assignment: its objective and, when totals is not NULL, its
 * per-budget totals (n_budgets), all summed in group order; *feasible (when
 * not NULL) is 1 when every total is <= its cap.  BP_EINVAL for a malformed
 * problem or a choice out of range. */
int bp_mckp_eval(const bp_mckp *p, const int *choice, double *objective,
                 double *totals, int *feasible);

/* Reference solvers for tests and benches.  Both write the optimal
 * assignment to choice (G) and its objective; ties go to the assignment
 * found first.  BP_EINFEASIBLE when no assignment meets the caps.
 *
 * bp_mckp_enumerate tries every assignment (depth first, totals summed in
 * group order); BP_EUNSUPPORTED when there are more than 1e9 of them. */
int bp_mckp_enumerate(const bp_mckp *p, int *choice, double *objective);

/* bp_mckp_dp is the classic dynamic program over capacity for one budget
 * (n_budgets == 1) whose costs are integers (exact in double);
 * BP_EUNSUPPORTED otherwise or when n_groups * (capacity + 1) exceeds 1e8
 * (capacity = min(floor(cap), largest total)). */
int bp_mckp_dp(const bp_mckp *p, int *choice, double *objective);

#endif
