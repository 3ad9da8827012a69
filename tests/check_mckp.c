/* check_mckp.c - unit tests of ilp/mckp, the exact bit-allocation solver.
 *
 * The solver is checked against references that share none of its code
 * paths: exhaustive enumeration on small random instances (objective equal
 * to 1e-9 relative, every cap met exactly, infeasibility agreed on), the
 * dynamic program over capacity for one budget with integer costs, and a
 * two-budget dynamic program written here for mid-size instances (large
 * enough that reduced-cost fixing, the core and GLPK's branch and bound all
 * run, with integer costs so that totals land exactly on the caps).  GLPK's
 * path (method BP_MCKP_GLPK, four budgets) against enumeration; equal
 * slopes across many groups; a large instance whose LP bound is tight by
 * construction (a known optimum), and one whose second budget the LP
 * leaves slack.  Then monotonicity in a cap, cost ranges, the
 * single-budget case where the optimum is not on the lower convex hull,
 * time limits, a relative gap, and input validation.  Seeded: every run
 * checks the same instances. */
#include "mckp.h"
#include "status.h"

#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testrng.h"

/* ---- deterministic random numbers (splitmix64) ---- */
static rng stream;
static double unif(void) { return rng_unit(&stream); }
static int irand(int lo, int hi) { return lo + (int)(rng_next(&stream) % (uint64_t)(hi - lo + 1)); }

/* ---- an owned instance ---- */
typedef struct inst {
    int G, K, N;
    int nc[512];
    double *obj;       /* (N) */
    double *cost;      /* (K, N) */
    double cap[BP_MCKP_MAX_BUDGETS];
    bp_mckp p;
} inst;

static void inst_alloc(inst *in, int G, int K, const int *nc)
{
    in->G = G, in->K = K, in->N = 0;
    for (int g = 0; g < G; g++)
        in->N += (in->nc[g] = nc[g]);
    in->obj = calloc((size_t)in->N, sizeof *in->obj);
    in->cost = calloc((size_t)in->N * (size_t)(K ? K : 1), sizeof *in->cost);
    ck_assert(in->obj && in->cost);
    in->p.n_groups = G;
    in->p.n_choices = in->nc;
    in->p.obj = in->obj;
    in->p.n_budgets = K;
    in->p.cost = in->cost;
    in->p.cap = in->cap;
}

static void inst_free(inst *in) { free(in->obj), free(in->cost); }

#define COST(in, k, j) ((in)->cost[(size_t)(k) * (in)->N + (j)])

/* Fills obj/cost in one of several styles:
 *   0: bit-width like (cost increasing, objective falling ~4x per step),
 *   1: unstructured uniform values,
 *   2: small integers (ties, duplicates, zero costs),
 *   3: bit-width like with a second budget not proportional to the first. */
static void fill(inst *in, int style)
{
    for (int g = 0, j = 0; g < in->G; j += in->nc[g], g++) {
        double size = exp(unif() * log(1000.0)), sens = exp(unif() * log(1e4));
        double reuse = exp(unif() * log(100.0));
        for (int c = 0; c < in->nc[g]; c++) {
            int b = 2 + c;
            switch (style) {
            case 0:
            case 3:
                in->obj[j + c] = sens * size * pow(4.0, -b) * (1 + 0.2 * unif());
                for (int k = 0; k < in->K; k++)
                    COST(in, k, j + c) = k == 0 ? size * b / 8
                                       : k == 1 && style == 3
                                           ? fmax(size * reuse / (b <= 4 ? 2 : 1),
                                                  size * b / 4) * 1e-3
                                           : size * b * (1 + unif());
                break;
            case 1:
                in->obj[j + c] = unif() * 10;
                for (int k = 0; k < in->K; k++)
                    COST(in, k, j + c) = unif() * 10;
                break;
            default:
                in->obj[j + c] = irand(0, 6);
                for (int k = 0; k < in->K; k++)
                    COST(in, k, j + c) = irand(0, 5);
                break;
            }
        }
    }
}

/* Caps a fraction of the way between each budget's min and max total. */
static void set_caps(inst *in, const double *frac)
{
    for (int k = 0; k < in->K; k++) {
        double lo, hi;
        ck_assert_int_eq(bp_mckp_cost_range(&in->p, k, &lo, &hi), BP_OK);
        in->cap[k] = lo + frac[k] * (hi - lo);
    }
}

static int close_rel(double a, double b, double tol)
{
    return fabs(a - b) <= tol * fmax(fmax(fabs(a), fabs(b)), 1e-300);
}

/* Solves and checks the answer against a reference optimum (ref_rc,
 * ref_obj): same status; the same objective to 1e-9 relative; the returned
 * assignment meets every cap exactly and has the reported objective.
 * Returns how many groups the final MIP saw (0: settled before it). */
static int check_against_opts(const inst *in, const bp_mckp_opts *o,
                              int ref_rc, double ref_obj, const char *what,
                              int id)
{
    bp_mckp_result r;
    memset(&r, 0, sizeof r);
    int rc = bp_mckp_solve(&in->p, o, &r);
    ck_assert_msg(rc == ref_rc, "%s %d: solve returned %d (%s: %s), reference %d",
                  what, id, rc, bp_status_str(rc), bp_errmsg(), ref_rc);
    if (rc)
        return 0;
    double obj, tot[BP_MCKP_MAX_BUDGETS];
    int feas;
    ck_assert_int_eq(bp_mckp_eval(&in->p, r.choice, &obj, tot, &feas), BP_OK);
    ck_assert_msg(feas, "%s %d: returned assignment breaks a cap", what, id);
    for (int k = 0; k < in->K; k++)
        ck_assert_msg(tot[k] <= in->cap[k], "%s %d: budget %d: %.17g > %.17g",
                      what, id, k, tot[k], in->cap[k]);
    ck_assert_msg(obj == r.objective, "%s %d: reported objective %.17g, "
                  "assignment's %.17g", what, id, r.objective, obj);
    ck_assert_msg(close_rel(r.objective, ref_obj, 1e-9), "%s %d: objective "
                  "%.17g, reference %.17g", what, id, r.objective, ref_obj);
    ck_assert_msg(r.optimal && !strcmp(r.status, "optimal"),
                  "%s %d: not proven optimal (%s)", what, id, r.status);
    ck_assert_msg(r.bound <= r.objective && r.gap >= 0 && r.gap <= 1e-9,
                  "%s %d: bound %.17g gap %g", what, id, r.bound, r.gap);
    int nfree = r.n_free_groups;
    bp_mckp_result_free(&r);
    ck_assert_ptr_null(r.choice);
    return nfree;
}

static int check_against(const inst *in, int ref_rc, double ref_obj,
                         const char *what, int id)
{
    return check_against_opts(in, NULL, ref_rc, ref_obj, what, id);
}

/* Options whose core is tiny: fixing and the final MIP do the work. */
static const bp_mckp_opts *tiny_core(void)
{
    static bp_mckp_opts o;
    bp_mckp_opts_default(&o);
    o.core_groups = 2;
    return &o;
}

/* Options with a given method (and, for the GLPK runs, the tiny core half
 * the time, so that its final MIP has work). */
static const bp_mckp_opts *with_method(int method, int tiny)
{
    static bp_mckp_opts o;
    bp_mckp_opts_default(&o);
    o.method = method;
    o.core_groups = tiny ? 2 : 0;
    return &o;
}

/* ------------------------------------------------------------------------ */

START_TEST(test_random_vs_enumeration)
{
    int n_inst = 0, n_infeasible = 0;
    stream.s = 20240601;
    for (int id = 0; id < 240; id++) {
        int G = irand(1, 12), K = irand(1, 3), nc[12];
        double count = 1;
        for (int g = 0; g < G; g++) {
            nc[g] = irand(2, 6);
            /* keep enumeration fast: at most ~2e5 assignments */
            while (count * nc[g] > 2e5 && nc[g] > 2)
                nc[g]--;
            count *= nc[g];
        }
        inst in;
        inst_alloc(&in, G, K, nc);
        fill(&in, id % 4);
        double frac[3];
        for (int k = 0; k < K; k++)
            frac[k] = id % 10 == 9   ? -0.05 * unif()     /* below the min */
                      : id % 10 == 8 ? 1 - 0.02 * unif()  /* near the max */
                                     : unif();
        set_caps(&in, frac);
        int *ch = calloc((size_t)G, sizeof *ch);
        double ref = 0;
        int ref_rc = bp_mckp_enumerate(&in.p, ch, &ref);
        ck_assert_msg(ref_rc == BP_OK || ref_rc == BP_EINFEASIBLE,
                      "enumerate %d: %s", id, bp_errmsg());
        if (ref_rc == BP_OK) {
            double o;
            int feas;
            bp_mckp_eval(&in.p, ch, &o, NULL, &feas);
            ck_assert(feas && o == ref);
        } else {
            n_infeasible++;
        }
        check_against_opts(&in, id % 2 ? tiny_core() : NULL, ref_rc, ref,
                           "random", id);
        free(ch);
        inst_free(&in);
        n_inst++;
    }
    ck_assert_int_ge(n_inst, 200);
    /* the mix holds both kinds */
    ck_assert_int_ge(n_infeasible, 10);
    ck_assert_int_le(n_infeasible, n_inst / 3);
}
END_TEST


/* Our branch and bound alone (no core, no GLPK MIP) against enumeration on
 * 500 random instances of up to 12 groups, every style, 1 to 3 budgets;
 * then with a relative gap. */
START_TEST(test_bb_vs_enumeration)
{
    stream.s = 4242;
    bp_mckp_opts o;
    bp_mckp_opts_default(&o);
    o.method = BP_MCKP_BB;
    long nodes = 0;
    for (int id = 0; id < 500; id++) {
        int G = irand(1, 12), K = irand(1, 3), nc[12];
        double count = 1;
        for (int g = 0; g < G; g++) {
            nc[g] = irand(2, 8);
            while (count * nc[g] > 2e5 && nc[g] > 2)
                nc[g]--;
            count *= nc[g];
        }
        inst in;
        inst_alloc(&in, G, K, nc);
        fill(&in, id % 4);
        double frac[3];
        for (int k = 0; k < K; k++)
            frac[k] = id % 10 == 9 ? -0.02 * unif() : unif();
        set_caps(&in, frac);
        int *ch = calloc((size_t)G, sizeof *ch);
        double ref = 0;
        int ref_rc = bp_mckp_enumerate(&in.p, ch, &ref);
        ck_assert(ref_rc == BP_OK || ref_rc == BP_EINFEASIBLE);
        check_against_opts(&in, &o, ref_rc, ref, "bb", id);
        bp_mckp_result r;
        if (ref_rc == BP_OK &&
            bp_mckp_solve(&in.p, &o, &r) == BP_OK) {
            nodes += r.bb_nodes;
            bp_mckp_result_free(&r);
        }
        free(ch);
        inst_free(&in);
    }
    ck_assert_int_gt(nodes, 500);      /* the search did run */
}
END_TEST

/* Many assignments tie or sit exactly on a cap with small integers; the
 * enumeration and the solver must agree on every one of them. */
START_TEST(test_ties_and_exact_caps)
{
    stream.s = 7;
    for (int id = 0; id < 120; id++) {
        int G = irand(2, 9), K = irand(1, 3), nc[9];
        for (int g = 0; g < G; g++)
            nc[g] = irand(2, 4);
        inst in;
        inst_alloc(&in, G, K, nc);
        fill(&in, 2);
        double lo, hi;
        for (int k = 0; k < K; k++) {
            ck_assert_int_eq(bp_mckp_cost_range(&in.p, k, &lo, &hi), BP_OK);
            in.cap[k] = lo + irand(0, (int)(hi - lo));   /* an integer */
        }
        int ch[9];
        double ref = 0;
        int ref_rc = bp_mckp_enumerate(&in.p, ch, &ref);
        check_against_opts(&in, id % 2 ? tiny_core() : NULL, ref_rc, ref,
                           "ties", id);
        inst_free(&in);
    }
}
END_TEST

START_TEST(test_single_budget_vs_dp)
{
    stream.s = 99;
    int through_mip = 0;
    for (int id = 0; id < 60; id++) {
        int G = id < 30 ? irand(2, 40) : irand(60, 150), nc[150];
        for (int g = 0; g < G; g++)
            nc[g] = irand(2, 6);
        inst in;
        inst_alloc(&in, G, 1, nc);
        /* bit-like integer costs, so the dynamic program applies */
        for (int g = 0, j = 0; g < G; j += nc[g], g++) {
            int size = irand(1, 40);
            double sens = exp(unif() * log(1e3));
            for (int c = 0; c < nc[g]; c++) {
                in.obj[j + c] = sens * size * pow(4.0, -(2 + c)) * (1 + 0.3 * unif());
                in.cost[j + c] = size * (2 + c);
            }
        }
        double frac = 0.2 + 0.6 * unif();
        set_caps(&in, &frac);
        in.cap[0] = floor(in.cap[0]);
        int *ch = calloc((size_t)G, sizeof *ch);
        double ref = 0;
        int ref_rc = bp_mckp_dp(&in.p, ch, &ref);
        ck_assert_msg(ref_rc == BP_OK, "dp %d: %s", id, bp_errmsg());
        check_against(&in, ref_rc, ref, "dp", id);
        through_mip += check_against_opts(&in, tiny_core(), ref_rc, ref,
                                          "dp/tiny core", id) > 0;
        free(ch);
        inst_free(&in);
    }
    ck_assert_int_ge(through_mip, 40);
}
END_TEST

/* Two budgets, integer costs: f[w1][w2] = least objective of the groups so
 * far with totals exactly (w1, w2); a reference for instances too large to
 * enumerate. */
static double dp2(const inst *in, int W1, int W2)
{
    size_t S = (size_t)(W1 + 1) * (size_t)(W2 + 1);
    double *f = malloc(S * sizeof *f), *h = malloc(S * sizeof *h);
    ck_assert(f && h);
    for (size_t s = 0; s < S; s++)
        f[s] = INFINITY;
    f[0] = 0;
    for (int g = 0, j = 0; g < in->G; j += in->nc[g], g++) {
        for (size_t s = 0; s < S; s++)
            h[s] = INFINITY;
        for (int w1 = 0; w1 <= W1; w1++)
            for (int w2 = 0; w2 <= W2; w2++) {
                double v = f[(size_t)w1 * (W2 + 1) + w2];
                if (isinf(v))
                    continue;
                for (int c = 0; c < in->nc[g]; c++) {
                    int a1 = w1 + (int)COST(in, 0, j + c);
                    int a2 = w2 + (int)COST(in, 1, j + c);
                    if (a1 > W1 || a2 > W2)
                        continue;
                    double *t = &h[(size_t)a1 * (W2 + 1) + a2];
                    if (v + in->obj[j + c] < *t)
                        *t = v + in->obj[j + c];
                }
            }
        double *t = f;
        f = h;
        h = t;
    }
    double best = INFINITY;
    for (size_t s = 0; s < S; s++)
        best = fmin(best, f[s]);
    free(f), free(h);
    return best;
}

START_TEST(test_two_budgets_vs_dp)
{
    stream.s = 4242;
    int through_mip = 0;
    for (int id = 0; id < 16; id++) {
        int G = irand(40, 90), nc[90];
        for (int g = 0; g < G; g++)
            nc[g] = irand(3, 6);
        inst in;
        inst_alloc(&in, G, 2, nc);
        /* bit-like: size ~ numel*bits, latency steps with the kernel; a
         * wide sensitivity spread makes the LP bound weak */
        for (int g = 0, j = 0; g < G; j += nc[g], g++) {
            int numel = irand(1, 3), reuse = irand(1, 3);
            double sens = exp(unif() * log(1e5));
            for (int c = 0; c < nc[g]; c++) {
                int b = 2 + c;
                in.obj[j + c] = sens * numel * pow(4.0, -b) * (1 + 0.3 * unif());
                COST(&in, 0, j + c) = numel * b;
                COST(&in, 1, j + c) = reuse * (b <= 2 ? 1 : b <= 4 ? 2 : 3) + (b > 5);
            }
        }
        double frac[2] = {0.3 + 0.4 * unif(), 0.3 + 0.4 * unif()};
        set_caps(&in, frac);
        in.cap[0] = floor(in.cap[0]);
        in.cap[1] = floor(in.cap[1]);
        double ref = dp2(&in, (int)in.cap[0], (int)in.cap[1]);
        int ref_rc = isinf(ref) ? BP_EINFEASIBLE : BP_OK;
        check_against(&in, ref_rc, ref, "dp2", id);
        through_mip += check_against_opts(&in, tiny_core(), ref_rc, ref,
                                          "dp2/tiny core", id) > 0;
        inst_free(&in);
    }
    /* the tiny core leaves them to GLPK's branch and bound */
    ck_assert_int_ge(through_mip, 5);
}
END_TEST

/* Two budgets pulling against each other (cost0 = b, cost1 = 10 - b): each
 * cap alone is reachable, together they leave a narrow window (feasible)
 * or none (infeasible).  The heuristics cannot repair such starts, so the
 * LP over a partial band starts infeasible and must widen before it may
 * call the problem infeasible. */
START_TEST(test_conflicting_budgets)
{
    stream.s = 31337;
    int G = 100, nc[100];
    for (int g = 0; g < G; g++)
        nc[g] = 6;
    for (int v = 0; v < 3; v++) {
        inst in;
        inst_alloc(&in, G, 2, nc);
        for (int g = 0, j = 0; g < G; j += nc[g], g++) {
            double sens = exp(unif() * log(1e3));
            for (int c = 0; c < nc[g]; c++) {
                int b = 2 + c;
                in.obj[j + c] = sens * pow(4.0, -b) * (1 + 0.3 * unif());
                COST(&in, 0, j + c) = b;
                COST(&in, 1, j + c) = 10 - b;
            }
        }
        in.cap[0] = 5 * G;
        in.cap[1] = v == 0 ? 4.9 * G : v == 1 ? 5.0 * G : 5.1 * G;
        double ref = dp2(&in, (int)in.cap[0], (int)in.cap[1]);
        ck_assert(v == 0 ? isinf(ref) : !isinf(ref));
        check_against(&in, isinf(ref) ? BP_EINFEASIBLE : BP_OK, ref,
                      "conflict", v);
        check_against_opts(&in, tiny_core(), isinf(ref) ? BP_EINFEASIBLE
                                                        : BP_OK,
                           ref, "conflict/tiny core", v);
        check_against_opts(&in, with_method(BP_MCKP_BB, 0),
                           isinf(ref) ? BP_EINFEASIBLE : BP_OK, ref,
                           "conflict/bb", v);
        check_against_opts(&in, with_method(BP_MCKP_GLPK, 1),
                           isinf(ref) ? BP_EINFEASIBLE : BP_OK, ref,
                           "conflict/glpk", v);
        inst_free(&in);
    }
}
END_TEST

/* GLPK's path (its LP over a band, the core MIP, its branch and bound with
 * no-good rows) is the default only past three budgets or 32 choices a
 * group; method BP_MCKP_GLPK takes it on instances of 1 to 3 budgets, and
 * four-budget instances take it by default, all against enumeration. */
START_TEST(test_glpk_path_vs_enumeration)
{
    stream.s = 909;
    int n_inst = 0, n_infeasible = 0;
    for (int id = 0; id < 200; id++) {
        int G = irand(1, 10), K = id % 4 == 3 ? 4 : irand(1, 3), nc[10];
        double count = 1;
        for (int g = 0; g < G; g++) {
            nc[g] = irand(2, 6);
            while (count * nc[g] > 1e5 && nc[g] > 2)
                nc[g]--;
            count *= nc[g];
        }
        inst in;
        inst_alloc(&in, G, K, nc);
        fill(&in, id % 4);
        double frac[4];
        for (int k = 0; k < K; k++)
            frac[k] = id % 10 == 9 ? -0.05 * unif() : unif();
        set_caps(&in, frac);
        int *ch = calloc((size_t)G, sizeof *ch);
        double ref = 0;
        int ref_rc = bp_mckp_enumerate(&in.p, ch, &ref);
        ck_assert(ref_rc == BP_OK || ref_rc == BP_EINFEASIBLE);
        n_infeasible += ref_rc != BP_OK;
        check_against_opts(&in, K == 4 ? NULL : with_method(BP_MCKP_GLPK,
                                                            id % 2),
                           ref_rc, ref, "glpk", id);
        free(ch);
        inst_free(&in);
        n_inst++;
    }
    ck_assert_int_ge(n_infeasible, 5);
}
END_TEST

/* Equal slopes everywhere: every group a copy of one group, or of one group
 * scaled by an integer (the same hull steps, the same ratios), so the LP
 * ties across many groups at once (the one-budget dual's selection meets
 * runs of equal slopes, the least-norm direction many tied groups, strong
 * branching plateaus).  Integer costs; one budget against the dynamic
 * program, two against dp2; every method. */
START_TEST(test_equal_slopes)
{
    stream.s = 2718;
    for (int id = 0; id < 24; id++) {
        int G = id < 12 ? irand(20, 60) : irand(60, 200), K = 1 + id % 2;
        int C = irand(3, 5), nc[200];
        for (int g = 0; g < G; g++)
            nc[g] = C;
        inst in;
        inst_alloc(&in, G, K, nc);
        double o0[5];
        int a0[5], a1[5];
        for (int c = 0; c < C; c++) {
            o0[c] = 64.0 * pow(4.0, -c);   /* exact in binary */
            a0[c] = 2 + c;
            a1[c] = c < 2 ? 1 : c < 4 ? 2 : 4;
        }
        int scaled = id % 4 >= 2;
        for (int g = 0, j = 0; g < G; j += C, g++) {
            int s = scaled ? irand(1, 3) : 1;
            for (int c = 0; c < C; c++) {
                in.obj[j + c] = s * o0[c];
                COST(&in, 0, j + c) = s * a0[c];
                if (K == 2)
                    COST(&in, 1, j + c) = s * a1[c];
            }
        }
        double frac[2] = {0.2 + 0.6 * unif(), 0.2 + 0.6 * unif()};
        set_caps(&in, frac);
        for (int k = 0; k < K; k++)
            in.cap[k] = floor(in.cap[k]);
        int *ch = calloc((size_t)G, sizeof *ch);
        double ref;
        int ref_rc;
        if (K == 1) {
            ref_rc = bp_mckp_dp(&in.p, ch, &ref);
        } else {
            ref = dp2(&in, (int)in.cap[0], (int)in.cap[1]);
            ref_rc = isinf(ref) ? BP_EINFEASIBLE : BP_OK;
        }
        ck_assert_int_eq(ref_rc, BP_OK);
        check_against(&in, ref_rc, ref, "equal slopes", id);
        check_against_opts(&in, with_method(BP_MCKP_BB, 0), ref_rc, ref,
                           "equal slopes/bb", id);
        if (id % 3 == 0)
            check_against_opts(&in, with_method(BP_MCKP_GLPK, 0), ref_rc,
                               ref, "equal slopes/glpk", id);
        free(ch);
        inst_free(&in);
    }
}
END_TEST

/* The LP bound is tight: with caps at the totals of the assignment x* that
 * minimises o + lambda.a in every group (lambda > 0), x* is optimal (any x
 * meeting the caps has o(x) >= o(x) + lambda.(A x - cap) >= o(x*)), so a
 * 3000-group, two-budget instance has a known optimum.  The root's bound
 * meets it and the search closes almost at once.  Then the same instance
 * with the second cap loosened past what the LP uses (its dual goes to 0:
 * the ascent's direction must take the cone of lambda_2 >= 0 into account)
 * against the solver with the first budget alone, and against itself with
 * GLPK's path. */
START_TEST(test_lp_tight_large)
{
    stream.s = 1618;
    enum { G = 3000, C = 6 };
    static int nc[G];
    for (int g = 0; g < G; g++)
        nc[g] = C;
    inst in;
    int *ncp = nc;
    in.G = G, in.K = 2, in.N = G * C;
    in.obj = calloc((size_t)in.N, sizeof *in.obj);
    in.cost = calloc(2 * (size_t)in.N, sizeof *in.cost);
    ck_assert(in.obj && in.cost);
    in.p.n_groups = G;
    in.p.n_choices = ncp;
    in.p.obj = in.obj;
    in.p.n_budgets = 2;
    in.p.cost = in.cost;
    in.p.cap = in.cap;
    for (int g = 0, j = 0; g < G; j += C, g++) {
        double size = exp(unif() * log(1e3)), sens = exp(unif() * log(1e4));
        double reuse = exp(unif() * log(100.0));
        for (int c = 0; c < C; c++) {
            int b = 2 + c;
            in.obj[j + c] = sens * size * pow(4.0, -b) * (1 + 0.2 * unif());
            COST(&in, 0, j + c) = size * b / 8;
            COST(&in, 1, j + c) = fmax(size * reuse / (b <= 4 ? 2 : 1),
                                       size * b / 4) * 1e-3;
        }
    }
    /* x*: the Lagrangian minimiser at lambda = (2, 30) */
    int *xs = calloc(G, sizeof *xs);
    ck_assert(xs);
    for (int g = 0, j = 0; g < G; j += C, g++) {
        double best = INFINITY;
        for (int c = 0; c < C; c++) {
            double v = in.obj[j + c] + 2 * COST(&in, 0, j + c) +
                       30 * COST(&in, 1, j + c);
            if (v < best)
                best = v, xs[g] = c;
        }
    }
    double ref, tot[2];
    int feas;
    in.cap[0] = in.cap[1] = INFINITY;
    ck_assert_int_eq(bp_mckp_eval(&in.p, xs, &ref, tot, &feas), BP_OK);
    in.cap[0] = tot[0], in.cap[1] = tot[1];
    bp_mckp_result r;
    ck_assert_int_eq(bp_mckp_solve(&in.p, NULL, &r), BP_OK);
    ck_assert_msg(close_rel(r.objective, ref, 1e-9), "tight: %.17g, x* %.17g",
                  r.objective, ref);
    ck_assert(r.optimal && r.gap <= 1e-9);
    ck_assert_msg(r.bb_nodes <= 50, "tight: %ld nodes", r.bb_nodes);
    bp_mckp_result_free(&r);
    check_against_opts(&in, with_method(BP_MCKP_BB, 0), BP_OK, ref,
                       "tight/bb", 0);

    /* a second cap the LP does not reach: the optimum of budget 0 alone
     * (solved as a one-budget problem) if it meets cap 1, as here */
    bp_mckp one = in.p;
    one.n_budgets = 1;
    bp_mckp_result r1;
    ck_assert_int_eq(bp_mckp_solve(&one, NULL, &r1), BP_OK);
    double t1[2];
    in.cap[1] = INFINITY;
    ck_assert_int_eq(bp_mckp_eval(&in.p, r1.choice, &ref, t1, NULL), BP_OK);
    in.cap[1] = t1[1] * 1.001;
    check_against(&in, BP_OK, r1.objective, "slack budget", 0);
    check_against_opts(&in, with_method(BP_MCKP_BB, 0), BP_OK, r1.objective,
                       "slack budget/bb", 0);
    bp_mckp_result_free(&r1);
    free(xs);
    inst_free(&in);
}
END_TEST

START_TEST(test_monotone_in_cap)
{
    stream.s = 5;
    int nc[30];
    for (int g = 0; g < 30; g++)
        nc[g] = 5;
    inst in;
    inst_alloc(&in, 30, 2, nc);
    fill(&in, 3);
    double lo, hi, frac[2] = {0, 0.5};
    set_caps(&in, frac);
    ck_assert_int_eq(bp_mckp_cost_range(&in.p, 0, &lo, &hi), BP_OK);
    double prev = INFINITY;
    int solved = 0;
    for (int s = 0; s <= 20; s++) {
        in.cap[0] = lo + (hi - lo) * s / 20.0;
        bp_mckp_result r;
        int rc = bp_mckp_solve(&in.p, NULL, &r);
        ck_assert_msg(rc == BP_OK || rc == BP_EINFEASIBLE, "step %d: %s", s,
                      bp_errmsg());
        if (rc)
            continue;
        ck_assert(r.optimal);
        ck_assert_msg(r.objective <= prev, "step %d: %.17g > previous %.17g",
                      s, r.objective, prev);
        prev = r.objective;
        solved++;
        bp_mckp_result_free(&r);
    }
    ck_assert_int_ge(solved, 15);
    inst_free(&in);
}
END_TEST

START_TEST(test_cost_range)
{
    stream.s = 11;
    for (int id = 0; id < 40; id++) {
        int G = irand(1, 7), K = irand(1, 3), nc[7];
        for (int g = 0; g < G; g++)
            nc[g] = irand(1, 4);
        inst in;
        inst_alloc(&in, G, K, nc);
        fill(&in, id % 3);
        for (int k = 0; k < K; k++)
            in.cap[k] = INFINITY;
        /* brute force over all assignments */
        double blo[3] = {INFINITY, INFINITY, INFINITY};
        double bhi[3] = {-INFINITY, -INFINITY, -INFINITY};
        int ch[7] = {0};
        for (;;) {
            double o, t[3];
            ck_assert_int_eq(bp_mckp_eval(&in.p, ch, &o, t, NULL), BP_OK);
            for (int k = 0; k < K; k++)
                blo[k] = fmin(blo[k], t[k]), bhi[k] = fmax(bhi[k], t[k]);
            int g = 0;
            while (g < G && ++ch[g] == nc[g])
                ch[g++] = 0;
            if (g == G)
                break;
        }
        for (int k = 0; k < K; k++) {
            double lo, hi;
            ck_assert_int_eq(bp_mckp_cost_range(&in.p, k, &lo, &hi), BP_OK);
            ck_assert(lo == blo[k] && hi == bhi[k]);
        }
        double lo, hi;
        ck_assert_int_eq(bp_mckp_cost_range(&in.p, K, &lo, &hi), BP_EINVAL);
        ck_assert_int_eq(bp_mckp_cost_range(&in.p, -1, &lo, &hi), BP_EINVAL);
        inst_free(&in);
    }
}
END_TEST

/* One budget: choices (cost 0, obj 10), (5, 6), (10, 0) and cap 5.  The
 * middle choice lies above the lower convex hull (LP-dominated), yet it is
 * the optimum: the solver must not drop LP-dominated choices. */
START_TEST(test_lp_dominated_choice_kept)
{
    int nc[2] = {3, 1};
    double obj[4] = {10, 6, 0, 1}, cost[4] = {0, 5, 10, 0}, cap = 5;
    bp_mckp p = {2, nc, obj, 1, cost, &cap};
    bp_mckp_result r;
    ck_assert_int_eq(bp_mckp_solve(&p, NULL, &r), BP_OK);
    ck_assert_int_eq(r.choice[0], 1);
    ck_assert(r.objective == 7);
    ck_assert(r.optimal);
    bp_mckp_result_free(&r);
}
END_TEST

/* Choice A breaks the cap by 5e-11 of it, far inside GLPK's feasibility
 * tolerance, and would save everything: GLPK's relaxation puts A at
 * 1 - 5e-11, which its branch and bound takes for an integer answer.  The
 * solver must see the broken cap, exclude the answer and find B. */
START_TEST(test_glpk_tolerance_rejected)
{
    int nc[3] = {2, 2, 1};
    double obj[5] = {0, 100, 3, 1, 0};
    double cost[5] = {1e9 + 0.05, 0, 0, 1, 0};
    double cap = 1e9;
    bp_mckp p = {3, nc, obj, 1, cost, &cap};
    bp_mckp_result r;
    for (int method = BP_MCKP_AUTO; method <= BP_MCKP_GLPK; method++) {
        ck_assert_int_eq(bp_mckp_solve(&p, with_method(method, 0), &r), BP_OK);
        ck_assert_int_eq(r.choice[0], 1);
        ck_assert(r.objective == 101);
        ck_assert(r.optimal);
        bp_mckp_result_free(&r);
    }
    int ch[3];
    double o;
    ck_assert_int_eq(bp_mckp_enumerate(&p, ch, &o), BP_OK);
    ck_assert(o == 101);
}
END_TEST

START_TEST(test_infeasible_message)
{
    int nc[2] = {2, 2};
    double obj[4] = {1, 0, 1, 0}, cost[4] = {3, 4, 2, 5}, cap = 4.5;
    bp_mckp p = {2, nc, obj, 1, cost, &cap};
    bp_mckp_result r = {0};
    ck_assert_int_eq(bp_mckp_solve(&p, NULL, &r), BP_EINFEASIBLE);
    ck_assert_ptr_null(r.choice);      /* untouched */
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "budget 0"));
    int ch[2];
    double o;
    ck_assert_int_eq(bp_mckp_enumerate(&p, ch, &o), BP_EINFEASIBLE);
    ck_assert_int_eq(bp_mckp_dp(&p, ch, &o), BP_EINFEASIBLE);
}
END_TEST

START_TEST(test_no_budget_and_infinite_cap)
{
    int nc[3] = {3, 2, 1};
    double obj[6] = {3, 1, 2, 5, 4, 7}, cost[6] = {1, 2, 3, 1, 2, 3};
    double cap = INFINITY;
    bp_mckp p0 = {3, nc, obj, 0, NULL, NULL};
    bp_mckp p1 = {3, nc, obj, 1, cost, &cap};
    const bp_mckp *ps[2] = {&p0, &p1};
    for (int i = 0; i < 2; i++) {
        bp_mckp_result r;
        ck_assert_int_eq(bp_mckp_solve(ps[i], NULL, &r), BP_OK);
        ck_assert_int_eq(r.choice[0], 1);
        ck_assert_int_eq(r.choice[1], 1);
        ck_assert_int_eq(r.choice[2], 0);
        ck_assert(r.objective == 12 && r.bound == 12 && r.optimal);
        bp_mckp_result_free(&r);
    }
}
END_TEST

/* A mid-size two-budget instance under a tiny time limit still answers
 * sensibly: a feasible assignment with a valid bound, or EINTERRUPTED. */
START_TEST(test_time_limit_and_gap)
{
    stream.s = 77;
    int nc[400];
    for (int g = 0; g < 400; g++)
        nc[g] = 6;
    inst in;
    inst_alloc(&in, 400, 2, nc);
    fill(&in, 3);
    double frac[2] = {0.45, 0.45};
    set_caps(&in, frac);
    bp_mckp_opts o;
    bp_mckp_opts_default(&o);
    o.time_limit_s = 0.05;
    bp_mckp_result r;
    int rc = bp_mckp_solve(&in.p, &o, &r);
    ck_assert_msg(rc == BP_OK || rc == BP_EINTERRUPTED, "%s", bp_errmsg());
    if (rc == BP_OK) {
        int feas;
        double obj;
        bp_mckp_eval(&in.p, r.choice, &obj, NULL, &feas);
        ck_assert(feas && obj == r.objective);
        ck_assert(r.bound <= r.objective && r.gap >= 0);
        ck_assert(r.optimal ? r.gap <= 0 : !strcmp(r.status, "feasible"));
        ck_assert(r.seconds < 5);
        bp_mckp_result_free(&r);
    }
    /* a relative gap: proven within it, and no better than the optimum */
    bp_mckp_opts_default(&o);
    o.rel_gap = 1e-3;
    ck_assert_int_eq(bp_mckp_solve(&in.p, &o, &r), BP_OK);
    ck_assert(r.optimal && r.gap <= 1e-3 && r.bound <= r.objective);
    bp_mckp_result exact;
    ck_assert_int_eq(bp_mckp_solve(&in.p, NULL, &exact), BP_OK);
    ck_assert(exact.optimal);
    ck_assert(exact.objective <= r.objective);
    ck_assert(r.objective <= exact.objective * (1 + 1e-3) + 1e-12);
    ck_assert(r.bound <= exact.objective * (1 + 1e-12));
    bp_mckp_result_free(&r);
    bp_mckp_result_free(&exact);
    inst_free(&in);
}
END_TEST

START_TEST(test_validation)
{
    int nc[2] = {2, 2};
    double obj[4] = {1, 0, 1, 0}, cost[4] = {1, 2, 1, 2}, cap = 3;
    bp_mckp ok = {2, nc, obj, 1, cost, &cap};
    bp_mckp_result r = {0};
    int ch[2];
    double o, lo, hi;

    bp_mckp p = ok;
    p.n_groups = 0;
    ck_assert_int_eq(bp_mckp_solve(&p, NULL, &r), BP_EINVAL);
    ck_assert_int_eq(bp_mckp_enumerate(&p, ch, &o), BP_EINVAL);
    ck_assert_int_eq(bp_mckp_dp(&p, ch, &o), BP_EINVAL);
    ck_assert_int_eq(bp_mckp_cost_range(&p, 0, &lo, &hi), BP_EINVAL);

    double bad[4] = {1, NAN, 1, 0};
    p = ok, p.obj = bad;
    ck_assert_int_eq(bp_mckp_solve(&p, NULL, &r), BP_EINVAL);
    double neg[4] = {1, 0, -1, 0};
    p = ok, p.obj = neg;
    ck_assert_int_eq(bp_mckp_solve(&p, NULL, &r), BP_EINVAL);
    double ncost[4] = {1, -2, 1, 2};
    p = ok, p.cost = ncost;
    ck_assert_int_eq(bp_mckp_solve(&p, NULL, &r), BP_EINVAL);
    double icost[4] = {1, INFINITY, 1, 2};
    p = ok, p.cost = icost;
    ck_assert_int_eq(bp_mckp_solve(&p, NULL, &r), BP_EINVAL);
    double ncap = NAN;
    p = ok, p.cap = &ncap;
    ck_assert_int_eq(bp_mckp_solve(&p, NULL, &r), BP_EINVAL);
    int zero[2] = {2, 0};
    p = ok, p.n_choices = zero;
    ck_assert_int_eq(bp_mckp_solve(&p, NULL, &r), BP_EINVAL);
    int huge[3] = {INT_MAX, INT_MAX, 1};  /* sum over INT_MAX: no access */
    p = ok, p.n_groups = 3, p.n_choices = huge;
    ck_assert_int_eq(bp_mckp_solve(&p, NULL, &r), BP_EINVAL);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "INT_MAX"));
    p = ok, p.n_budgets = BP_MCKP_MAX_BUDGETS + 1;
    ck_assert_int_eq(bp_mckp_solve(&p, NULL, &r), BP_EINVAL);
    p = ok, p.n_budgets = -1;
    ck_assert_int_eq(bp_mckp_solve(&p, NULL, &r), BP_EINVAL);
    ck_assert_int_eq(bp_mckp_solve(NULL, NULL, &r), BP_EINVAL);
    ck_assert_int_eq(bp_mckp_solve(&ok, NULL, NULL), BP_EINVAL);
    bp_mckp_opts opt;
    bp_mckp_opts_default(&opt);
    opt.rel_gap = -1;
    ck_assert_int_eq(bp_mckp_solve(&ok, &opt, &r), BP_EINVAL);
    bp_mckp_opts_default(&opt);
    opt.core_groups = -1;
    ck_assert_int_eq(bp_mckp_solve(&ok, &opt, &r), BP_EINVAL);
    ck_assert_ptr_null(r.choice);      /* never written on error */

    /* bp_mckp_eval: a choice out of range */
    int badch[2] = {0, 2};
    ck_assert_int_eq(bp_mckp_eval(&ok, badch, &o, NULL, NULL), BP_EINVAL);
    /* the dynamic program: integer costs and one budget only */
    double fcost[4] = {1, 2.5, 1, 2};
    p = ok, p.cost = fcost;
    ck_assert_int_eq(bp_mckp_dp(&p, ch, &o), BP_EUNSUPPORTED);
    double cost2[8] = {1, 2, 1, 2, 1, 1, 1, 1}, cap2[2] = {3, 3};
    p = ok, p.n_budgets = 2, p.cost = cost2, p.cap = cap2;
    ck_assert_int_eq(bp_mckp_dp(&p, ch, &o), BP_EUNSUPPORTED);
    /* freeing is idempotent and takes NULL */
    bp_mckp_result_free(NULL);
    bp_mckp_result_free(&r);
}
END_TEST

static Suite *mckp_suite(void)
{
    Suite *s = suite_create("mckp");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_random_vs_enumeration);
    tcase_add_test(tc, test_bb_vs_enumeration);
    tcase_add_test(tc, test_ties_and_exact_caps);
    tcase_add_test(tc, test_single_budget_vs_dp);
    tcase_add_test(tc, test_two_budgets_vs_dp);
    tcase_add_test(tc, test_conflicting_budgets);
    tcase_add_test(tc, test_glpk_path_vs_enumeration);
    tcase_add_test(tc, test_equal_slopes);
    tcase_add_test(tc, test_lp_tight_large);
    tcase_add_test(tc, test_monotone_in_cap);
    tcase_add_test(tc, test_cost_range);
    tcase_add_test(tc, test_lp_dominated_choice_kept);
    tcase_add_test(tc, test_glpk_tolerance_rejected);
    tcase_add_test(tc, test_infeasible_message);
    tcase_add_test(tc, test_no_budget_and_infinite_cap);
    tcase_add_test(tc, test_time_limit_and_gap);
    tcase_add_test(tc, test_validation);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mckp_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
