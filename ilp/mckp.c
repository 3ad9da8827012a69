/* mckp.c - exact multiple-choice multi-dimensional knapsack for bit allocation.
 *
 * The solve runs in five steps, each exact in the sense that it never loses
 * an assignment better than the one finally returned:
 *   1. budgets that no assignment can break are dropped, one that none can
 *      meet is reported; per group, choices dominated by another (no cheaper
 *      in any budget, no smaller objective) are dropped.  Choices above the
 *      lower convex hull (LP-dominated) are kept: an optimum may use them
 *      (see test_lp_dominated_choice_kept);
 *   2. the LP relaxation.  Its dual is a K-dimensional concave function
 *      whose maximiser lambda gives the Lagrangian bound L(lambda) <=
 *      optimum.  One budget: the groups' lower convex hulls give lambda
 *      exactly.  Several: from each budget's own dual, shared out, the
 *      steepest ascent of step 5a over every choice (up to three budgets
 *      and 32 choices a group); otherwise, or when that ascent does not
 *      converge (an LP without a feasible point has no maximiser), a
 *      greedy assignment and subgradient steps, then GLPK's simplex over a
 *      band of promising choices, priced out against all choices (column
 *      generation) until none has a negative reduced cost;
 *   3. an incumbent U: greedy repair and filling from the LP's choices,
 *      then the core: a small problem over the groups whose best move comes
 *      nearest to paying for itself at the LP prices (every other group
 *      held at its LP choice), solved by our branch and bound when that
 *      runs next, else as a MIP by GLPK after pair moves, and for large
 *      problems a second, eight times larger core, started from the
 *      first's answer;
 *   4. reduced-cost fixing: a choice whose Lagrangian reduced cost exceeds
 *      U - L cannot appear in an assignment better than U and is removed; a
 *      group left with one choice is fixed.  When every choice left was open
 *      to a core whose optimum GLPK proved, U is optimal;
 *   5. our own branch and bound on what is left (step 5a below: node bounds
 *      from the Lagrangian dual, maximised by steepest ascent with exact
 *      line searches; best-first with plunging, a rounding heuristic,
 *      reduced-cost fixing and strong branching at every node), for up to
 *      three active budgets and 32 choices a group; with no time limit it
 *      hands over to GLPK after BB_NODES nodes.  GLPK's branch and bound is
 *      the fallback for the rest and with method BP_MCKP_GLPK: in an
 *      ordered formulation (see mip_body) and with our incumbent handed over
 *      in the callback (glp_ios_heur_sol), which requires GLPK's MIP
 *      presolver off: with it on, the tree's columns are not ours.  Our own
 *      steps 1 and 4 do the presolver's work for this problem, and on the
 *      bench instances presolve on was 3x slower (see bench/bench_mckp.c).
 *
 * Exactness.  Feasibility is the exact test of mckp.h (group-order sums <=
 * cap, no slack).  GLPK decides feasibility with tolerances, so each answer
 * it returns is re-checked exactly; one that breaks a cap within them is
 * excluded by a no-good row and the MIP solved again.  GLPK's feasible set
 * is thus a superset, its optimum (to tol_obj = 1e-10 of a scaled
 * objective) a valid answer once it passes the check.  Heuristic moves are
 * judged against caps lowered by the rounding error of a running total
 * (~4 G ulp) and every incumbent is re-checked the same exact way.
 *
 * GLPK is used in this file only.  Its aborts are caught with
 * glp_error_hook and longjmp (after which glp_free_env releases all of the
 * thread's GLPK state), its terminal output is routed off stdout, and its
 * 1-based arrays are handled in the GLPK plumbing section alone. */
#include "mckp.h"
#include "status.h"

#include <glpk.h>

#include <float.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xcalloc(size_t n, size_t size)
{
    return calloc(n ? n : 1, size ? size : 1);
}

/* Validates p; *n_total gets the number of choices. */
static int check_problem(const bp_mckp *p, int *n_total)
{
    if (!p)
        return bp_fail(BP_EINVAL, "mckp: no problem given");
    if (p->n_groups <= 0)
        return bp_fail(BP_EINVAL, "mckp: %d groups; at least one expected",
                       p->n_groups);
    if (p->n_budgets < 0 || p->n_budgets > BP_MCKP_MAX_BUDGETS)
        return bp_fail(BP_EINVAL, "mckp: %d budgets; 0..%d expected",
                       p->n_budgets, BP_MCKP_MAX_BUDGETS);
    if (!p->n_choices || !p->obj || (p->n_budgets > 0 && (!p->cost || !p->cap)))
        return bp_fail(BP_EINVAL, "mckp: missing array");
    long long n = 0;
    for (int g = 0; g < p->n_groups; g++) {
        if (p->n_choices[g] <= 0)
            return bp_fail(BP_EINVAL, "mckp: group %d has %d choices; at "
                           "least one expected", g, p->n_choices[g]);
        n += p->n_choices[g];
        if (n > INT_MAX)
            return bp_fail(BP_EINVAL, "mckp: more than INT_MAX choices");
    }
    if ((long long)p->n_budgets * n > INT_MAX)
        return bp_fail(BP_EINVAL, "mckp: budgets x choices exceeds INT_MAX");
    for (long long j = 0; j < n; j++)
        if (!isfinite(p->obj[j]) || p->obj[j] < 0)
            return bp_fail(BP_EINVAL, "mckp: objective of choice %lld is %g; "
                           "finite and >= 0 expected", j, p->obj[j]);
    for (int k = 0; k < p->n_budgets; k++) {
        if (isnan(p->cap[k]))
            return bp_fail(BP_EINVAL, "mckp: cap of budget %d is NaN", k);
        for (long long j = 0; j < n; j++) {
            double a = p->cost[(long long)k * n + j];
            if (!isfinite(a) || a < 0)
                return bp_fail(BP_EINVAL, "mckp: budget %d cost of choice "
                               "%lld is %g; finite and >= 0 expected", k, j, a);
        }
    }
    *n_total = (int)n;
    return BP_OK;
}

void bp_mckp_opts_default(bp_mckp_opts *o)
{
    o->time_limit_s = 0;
    o->rel_gap = 0;
    o->verbose = 0;
    o->core_groups = 0;
    o->method = BP_MCKP_AUTO;
}

void bp_mckp_result_free(bp_mckp_result *r)
{
    if (!r)
        return;
    free(r->choice);
    r->choice = NULL;
}

/* Range of budget k; sums in group order, so both ends are exact totals of
 * real assignments and bracket every other total (rounded addition is
 * monotone). */
static void cost_range(const bp_mckp *p, int n, int k, double *lo, double *hi)
{
    const double *a = p->cost + (size_t)k * (size_t)n;
    double l = 0, h = 0;
    for (int g = 0, j = 0; g < p->n_groups; j += p->n_choices[g], g++) {
        double mn = a[j], mx = a[j];
        for (int c = 1; c < p->n_choices[g]; c++) {
            mn = fmin(mn, a[j + c]);
            mx = fmax(mx, a[j + c]);
        }
        l += mn;
        h += mx;
    }
    *lo = l;
    *hi = h;
}

int bp_mckp_cost_range(const bp_mckp *p, int k, double *lo, double *hi)
{
    int n, rc = check_problem(p, &n);
    if (rc)
        return rc;
    if (k < 0 || k >= p->n_budgets)
        return bp_fail(BP_EINVAL, "mckp: budget %d out of range 0..%d", k,
                       p->n_budgets - 1);
    cost_range(p, n, k, lo, hi);
    return BP_OK;
}

/* Objective and totals of an assignment given as global choice indices. */
static void eval_global(const bp_mckp *p, int n, const int *jsel, double *obj,
                        double *tot)
{
    double o = 0;
    for (int g = 0; g < p->n_groups; g++)
        o += p->obj[jsel[g]];
    *obj = o;
    for (int k = 0; k < p->n_budgets; k++) {
        const double *a = p->cost + (size_t)k * (size_t)n;
        double t = 0;
        for (int g = 0; g < p->n_groups; g++)
            t += a[jsel[g]];
        tot[k] = t;
    }
}

static int totals_fit(const bp_mckp *p, const double *tot)
{
    for (int k = 0; k < p->n_budgets; k++)
        if (!(tot[k] <= p->cap[k]))
            return 0;
    return 1;
}

int bp_mckp_eval(const bp_mckp *p, const int *choice, double *objective,
                 double *totals, int *feasible)
{
    int n, rc = check_problem(p, &n);
    if (rc)
        return rc;
    if (!choice)
        return bp_fail(BP_EINVAL, "mckp: no assignment given");
    int *jsel = xcalloc((size_t)p->n_groups, sizeof *jsel);
    if (!jsel)
        return bp_fail(BP_ENOMEM, "mckp: out of memory");
    for (int g = 0, j = 0; g < p->n_groups; j += p->n_choices[g], g++) {
        if (choice[g] < 0 || choice[g] >= p->n_choices[g]) {
            free(jsel);
            return bp_fail(BP_EINVAL, "mckp: group %d: choice %d out of "
                           "range 0..%d", g, choice[g], p->n_choices[g] - 1);
        }
        jsel[g] = j + choice[g];
    }
    double obj, tot[BP_MCKP_MAX_BUDGETS];
    eval_global(p, n, jsel, &obj, tot);
    free(jsel);
    *objective = obj;
    if (totals)
        memcpy(totals, tot, (size_t)p->n_budgets * sizeof *tot);
    if (feasible)
        *feasible = totals_fit(p, tot);
    return BP_OK;
}

/* ------------------------------------------------------------------------ */
/* reference solvers                                                        */

int bp_mckp_enumerate(const bp_mckp *p, int *choice, double *objective)
{
    int n, rc = check_problem(p, &n);
    if (rc)
        return rc;
    const int G = p->n_groups, K = p->n_budgets;
    double count = 1;
    for (int g = 0; g < G; g++)
        count *= p->n_choices[g];
    if (count > 1e9)
        return bp_fail(BP_EUNSUPPORTED, "mckp: %.3g assignments are too many "
                       "to enumerate", count);
    int *cur = xcalloc((size_t)G, sizeof *cur);
    int *first = xcalloc((size_t)G, sizeof *first);
    int *best = xcalloc((size_t)G, sizeof *best);
    double *po = xcalloc((size_t)G + 1, sizeof *po);         /* (G+1) */
    double *pt = xcalloc(((size_t)G + 1) * (size_t)(K ? K : 1), sizeof *pt);
    if (!cur || !first || !best || !po || !pt) {
        rc = bp_fail(BP_ENOMEM, "mckp: out of memory");
        goto out;
    }
    for (int g = 1; g < G; g++)
        first[g] = first[g - 1] + p->n_choices[g - 1];
    /* depth-first odometer; po[d], pt[d*K+k]: partial sums over groups < d,
     * formed left to right exactly as bp_mckp_eval sums */
    int found = 0, d = 0;
    double best_obj = 0;
    cur[0] = -1;
    while (d >= 0) {
        if (++cur[d] >= p->n_choices[d]) {
            d--;
            continue;
        }
        int j = first[d] + cur[d];
        po[d + 1] = po[d] + p->obj[j];
        for (int k = 0; k < K; k++)
            pt[(size_t)(d + 1) * K + k] = pt[(size_t)d * K + k] +
                                         p->cost[(size_t)k * n + j];
        if (d + 1 < G) {
            d++;
            cur[d] = -1;
            continue;
        }
        int ok = 1;
        for (int k = 0; k < K; k++)
            if (!(pt[(size_t)G * K + k] <= p->cap[k]))
                ok = 0;
        if (ok && (!found || po[G] < best_obj)) {
            found = 1;
            best_obj = po[G];
            memcpy(best, cur, (size_t)G * sizeof *best);
        }
    }
    if (!found) {
        rc = bp_fail(BP_EINFEASIBLE, "mckp: no assignment meets every budget");
        goto out;
    }
    memcpy(choice, best, (size_t)G * sizeof *best);
    *objective = best_obj;
out:
    free(cur);
    free(first);
    free(best);
    free(po);
    free(pt);
    return rc;
}

int bp_mckp_dp(const bp_mckp *p, int *choice, double *objective)
{
    int n, rc = check_problem(p, &n);
    if (rc)
        return rc;
    if (p->n_budgets != 1)
        return bp_fail(BP_EUNSUPPORTED, "mckp: the dynamic program needs "
                       "exactly one budget, not %d", p->n_budgets);
    const int G = p->n_groups;
    for (int j = 0; j < n; j++)
        if (p->cost[j] != floor(p->cost[j]) || p->cost[j] > 1e15)
            return bp_fail(BP_EUNSUPPORTED, "mckp: the dynamic program needs "
                           "integer costs; choice %d costs %g", j, p->cost[j]);
    double lo, hi;
    cost_range(p, n, 0, &lo, &hi);
    if (lo > p->cap[0])
        return bp_fail(BP_EINFEASIBLE, "mckp: budget 0 cannot be met: the "
                       "smallest total %.17g exceeds the cap %.17g", lo,
                       p->cap[0]);
    double wcap = fmin(floor(p->cap[0]), hi);
    if ((double)G * (wcap + 1) > 1e8)
        return bp_fail(BP_EUNSUPPORTED, "mckp: capacity %.0f too large for "
                       "the dynamic program", wcap);
    const size_t W = (size_t)wcap + 1;
    /* f[w]: least objective of groups < g with total cost <= w;
     * pick[g*W + w]: the choice of group g that attains it */
    double *f = malloc(W * sizeof *f), *fn = malloc(W * sizeof *fn);
    int *pick = malloc((size_t)G * W * sizeof *pick);
    if (!f || !fn || !pick) {
        rc = bp_fail(BP_ENOMEM, "mckp: out of memory");
        goto out;
    }
    for (size_t w = 0; w < W; w++)
        f[w] = 0;
    for (int g = 0, j0 = 0; g < G; j0 += p->n_choices[g], g++) {
        for (size_t w = 0; w < W; w++) {
            double best = INFINITY;
            int bc = -1;
            for (int c = 0; c < p->n_choices[g]; c++) {
                double a = p->cost[j0 + c];
                if (a > (double)w || isinf(f[w - (size_t)a]))
                    continue;
                double v = f[w - (size_t)a] + p->obj[j0 + c];
                if (v < best) {
                    best = v;
                    bc = c;
                }
            }
            fn[w] = best;
            pick[(size_t)g * W + w] = bc;
        }
        double *t = f;
        f = fn;
        fn = t;
    }
    if (isinf(f[W - 1])) {
        rc = bp_fail(BP_EINFEASIBLE, "mckp: no assignment meets budget 0");
        goto out;
    }
    size_t w = W - 1;
    for (int g = G - 1, j0 = n; g >= 0; g--) {
        j0 -= p->n_choices[g];
        int c = pick[(size_t)g * W + w];
        choice[g] = c;
        w -= (size_t)p->cost[j0 + c];
    }
    double o = 0;
    for (int g = 0, j0 = 0; g < G; j0 += p->n_choices[g], g++)
        o += p->obj[j0 + choice[g]];
    *objective = o;
out:
    free(f);
    free(fn);
    free(pick);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the working problem                                                      */

typedef struct mk {
    const bp_mckp *p;
    int G, N, K;                       /* groups, choices, active budgets */
    int bud[BP_MCKP_MAX_BUDGETS];      /* active budget -> budget of p */
    double cap[BP_MCKP_MAX_BUDGETS];   /* its cap, original units */
    double safe[BP_MCKP_MAX_BUDGETS];  /* cap less a rounding margin, for
                                          heuristic moves judged on running
                                          totals */
    double sc[BP_MCKP_MAX_BUDGETS];    /* cost normalisation 1 / (hi - lo) */
    double capn[BP_MCKP_MAX_BUDGETS];  /* cap * sc */
    double so;                         /* objective normalisation */
    int *first;                        /* (G+1) group g's choices: first[g].. */
    int *cand;                         /* (N) undominated choices, grouped */
    int *cfirst;                       /* (G+1) group g's: cand[cfirst[g]..] */
    int *gof;                          /* (N) group of each choice */
    double *on;                        /* (N) obj * so */
    double *an;                        /* (K, N) cost * sc */
    double deadline;                   /* absolute, now_s() clock; inf: none */
    int verbose;
} mk;

#define MK_A(m, k, j) ((m)->p->cost[(size_t)(m)->bud[k] * (size_t)(m)->N + (size_t)(j)])
#define MK_AN(m, k, j) ((m)->an[(size_t)(k) * (size_t)(m)->N + (size_t)(j)])

static void mk_free(mk *m)
{
    free(m->first);
    free(m->cand);
    free(m->cfirst);
    free(m->gof);
    free(m->on);
    free(m->an);
}

static int out_of_time(const mk *m) { return now_s() > m->deadline; }

/* Step 1: active budgets, infeasibility of a single budget, dominance. */
static int mk_init(mk *m, const bp_mckp *p, int n)
{
    memset(m, 0, sizeof *m);
    m->p = p;
    m->G = p->n_groups;
    m->N = n;
    for (int k = 0; k < p->n_budgets; k++) {
        double lo, hi;
        cost_range(p, n, k, &lo, &hi);
        if (lo > p->cap[k])
            return bp_fail(BP_EINFEASIBLE, "budget %d cannot be met: the "
                           "smallest reachable total %.17g exceeds the cap "
                           "%.17g", k, lo, p->cap[k]);
        if (hi <= p->cap[k])
            continue;                  /* no assignment can break it */
        int a = m->K++;
        m->bud[a] = k;
        m->cap[a] = p->cap[k];
        /* a running total differs from the group-order sum by at most
         * ~G roundings of numbers <= hi */
        m->safe[a] = p->cap[k] - 4.0 * (m->G + 2) * DBL_EPSILON * hi;
        m->sc[a] = 1.0 / (hi - lo);
        m->capn[a] = p->cap[k] * m->sc[a];
    }
    m->first = xcalloc((size_t)m->G + 1, sizeof *m->first);
    m->cand = xcalloc((size_t)n, sizeof *m->cand);
    m->cfirst = xcalloc((size_t)m->G + 1, sizeof *m->cfirst);
    m->gof = xcalloc((size_t)n, sizeof *m->gof);
    m->on = xcalloc((size_t)n, sizeof *m->on);
    m->an = xcalloc((size_t)n * (size_t)(m->K ? m->K : 1), sizeof *m->an);
    if (!m->first || !m->cand || !m->cfirst || !m->gof || !m->on || !m->an)
        return bp_fail(BP_ENOMEM, "mckp: out of memory");
    for (int g = 0; g < m->G; g++)
        m->first[g + 1] = m->first[g] + p->n_choices[g];
    /* dominance: c is dropped when some d is no worse in objective and in
     * every active budget, and strictly better somewhere (or identical and
     * earlier).  Swapping c for d keeps any assignment feasible (each total
     * can only shrink) and no worse, so no optimum is lost. */
    int nc = 0;
    double spread = 0;
    for (int g = 0; g < m->G; g++) {
        m->cfirst[g] = nc;
        double omin = INFINITY, omax = -INFINITY;
        for (int c = m->first[g]; c < m->first[g + 1]; c++) {
            m->gof[c] = g;
            int dominated = 0;
            for (int d = m->first[g]; d < m->first[g + 1] && !dominated; d++) {
                if (d == c || p->obj[d] > p->obj[c])
                    continue;
                int le = 1, lt = p->obj[d] < p->obj[c];
                for (int k = 0; k < m->K && le; k++) {
                    if (MK_A(m, k, d) > MK_A(m, k, c))
                        le = 0;
                    else if (MK_A(m, k, d) < MK_A(m, k, c))
                        lt = 1;
                }
                if (le && (lt || d < c))
                    dominated = 1;
            }
            if (!dominated) {
                m->cand[nc++] = c;
                omin = fmin(omin, p->obj[c]);
                omax = fmax(omax, p->obj[c]);
            }
        }
        spread += omax - omin;
    }
    m->cfirst[m->G] = nc;
    m->so = spread > 0 ? 1.0 / spread : 1.0;
    for (int j = 0; j < n; j++) {
        m->on[j] = p->obj[j] * m->so;
        for (int k = 0; k < m->K; k++)
            MK_AN(m, k, j) = MK_A(m, k, j) * m->sc[k];
    }
    return BP_OK;
}

/* L(lambda) = sum_g min_{c} (on_c + lambda . an_c) - lambda . capn over the
 * candidates; arg (G) gets each group's minimiser, used (K) its normalised
 * totals.  For any lambda >= 0 this bounds the optimum (normalised) from
 * below. */
static double lagrangian(const mk *m, const double *lam, int *arg, double *used)
{
    double L = 0;
    if (used)
        for (int k = 0; k < m->K; k++)
            used[k] = 0;
    for (int g = 0; g < m->G; g++) {
        double best = INFINITY;
        int bj = m->cand[m->cfirst[g]];
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
            int j = m->cand[i];
            double v = m->on[j];
            for (int k = 0; k < m->K; k++)
                v += lam[k] * MK_AN(m, k, j);
            if (v < best) {
                best = v;
                bj = j;
            }
        }
        L += best;
        if (arg)
            arg[g] = bj;
        if (used)
            for (int k = 0; k < m->K; k++)
                used[k] += MK_AN(m, k, bj);
    }
    for (int k = 0; k < m->K; k++)
        L -= lam[k] * m->capn[k];
    return L;
}

/* ------------------------------------------------------------------------ */
/* step 2a: one budget, exactly, from the groups' lower convex hulls        */

typedef struct hstep { double slope, da; } hstep;

static int cmp_step(const void *a, const void *b)
{
    double x = ((const hstep *)a)->slope, y = ((const hstep *)b)->slope;
    return x < y ? -1 : x > y;
}

static int cmp_cost_k0(const void *a, const void *b, void *ctx)
{
    const mk *m = ctx;
    double x = MK_AN(m, 0, *(const int *)a), y = MK_AN(m, 0, *(const int *)b);
    return x < y ? -1 : x > y;
}

/* insertion sort: groups hold a handful of choices */
static void sort_by_cost(const mk *m, int *v, int n)
{
    for (int i = 1; i < n; i++) {
        int x = v[i], j = i;
        while (j > 0 && cmp_cost_k0(&v[j - 1], &x, (void *)m) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

/* The slope of the step at which taking the steps st[0..n) in order of
 * slope first overruns room (the first whose width exceeds what is left),
 * or 0 when they all fit.  A weighted quickselect: O(n) expected where a
 * sort was O(n log n) and, through qsort's indirect compares, most of the
 * root's time on 5000 groups.  st is reordered. */
static double step_crossing(hstep *st, int n, double room)
{
    int lo = 0, hi = n;
    while (hi - lo > 16) {
        /* median of three, for determinism and against sorted input */
        double a = st[lo].slope, b = st[lo + (hi - lo) / 2].slope,
               c = st[hi - 1].slope;
        double piv = a < b ? (b < c ? b : a < c ? c : a)
                           : (a < c ? a : b < c ? c : b);
        /* three-way partition: [lo, lt) < piv, [lt, gt) == piv, [gt, hi) > */
        int lt = lo, i = lo, gt = hi;
        while (i < gt) {
            if (st[i].slope < piv) {
                hstep t = st[i];
                st[i++] = st[lt], st[lt++] = t;
            } else if (st[i].slope > piv) {
                hstep t = st[i];
                st[i] = st[--gt], st[gt] = t;
            } else {
                i++;
            }
        }
        double sum = 0;
        for (int q = lo; q < lt; q++)
            sum += st[q].da;
        if (sum > room) {
            hi = lt;
            continue;
        }
        room -= sum;
        sum = 0;
        for (int q = lt; q < gt; q++) {
            if (st[q].da > room - sum)
                return piv;
            sum += st[q].da;
        }
        room -= sum;
        lo = gt;
    }
    qsort(st + lo, (size_t)(hi - lo), sizeof *st, cmp_step);
    for (int i = lo; i < hi; i++) {
        if (st[i].da > room)
            return st[i].slope;
        room -= st[i].da;
    }
    return 0;
}

/* The optimal dual of the single budget of the LP relaxation.  Every group
 * starts at its cheapest choice and walks up its lower hull; the LP takes
 * hull steps in order of objective gained per cost (a global sort) until
 * the budget runs out mid-step: minus that step's slope is lambda. */
static int hull_lambda(const mk *m, double *lam)
{
    int nc = m->cfirst[m->G];
    hstep *st = xcalloc((size_t)nc, sizeof *st);
    int *v = xcalloc((size_t)nc, sizeof *v), *h = xcalloc((size_t)nc, sizeof *h);
    if (!st || !v || !h) {
        free(st), free(v), free(h);
        return bp_fail(BP_ENOMEM, "mckp: out of memory");
    }
    int ns = 0;
    double base = 0;
    for (int g = 0; g < m->G; g++) {
        int c0 = m->cfirst[g], len = m->cfirst[g + 1] - c0;
        memcpy(v, m->cand + c0, (size_t)len * sizeof *v);
        sort_by_cost(m, v, len);
        /* within this one budget, keep a strictly cheaper-and-worse chain:
         * the candidates are undominated over all budgets, so here two may
         * share a cost or one may be dearer and no better (a zero-width or
         * rising step would make a slope infinite or wrong) */
        int nd = 0;
        for (int i = 0; i < len; i++) {
            int j = v[i];
            if (nd && MK_AN(m, 0, j) == MK_AN(m, 0, v[nd - 1])) {
                if (m->on[j] < m->on[v[nd - 1]])
                    nd--;              /* same cost, better: replaces it */
                else
                    continue;
            }
            if (nd && m->on[j] >= m->on[v[nd - 1]])
                continue;              /* dearer and no better */
            v[nd++] = j;
        }
        int nh = 0;
        for (int i = 0; i < nd; i++) {
            int j = v[i];
            while (nh >= 2) {
                int a = h[nh - 2], b = h[nh - 1];
                /* drop b when it lies on or above the chord a..j */
                double cross = (MK_AN(m, 0, b) - MK_AN(m, 0, a)) *
                                   (m->on[j] - m->on[a]) -
                               (m->on[b] - m->on[a]) *
                                   (MK_AN(m, 0, j) - MK_AN(m, 0, a));
                if (cross <= 0)
                    nh--;
                else
                    break;
            }
            h[nh++] = j;
        }
        base += MK_AN(m, 0, h[0]);
        for (int i = 1; i < nh; i++) {
            double da = MK_AN(m, 0, h[i]) - MK_AN(m, 0, h[i - 1]);
            st[ns].da = da;
            st[ns].slope = (m->on[h[i]] - m->on[h[i - 1]]) / da;
            ns++;
        }
    }
    lam[0] = fmax(0, -step_crossing(st, ns, m->capn[0] - base));
    free(st), free(v), free(h);
    return BP_OK;
}

/* ------------------------------------------------------------------------ */
/* GLPK plumbing: the error guard, code names, the one 1-based builder       */

typedef struct glpk_guard { jmp_buf env; } glpk_guard;

static void glpk_abort_hook(void *info)
{
    longjmp(((glpk_guard *)info)->env, 1);
}

static const char *glpk_code_name(int rc)
{
    switch (rc) {
    case 0: return "0";
    case GLP_EBADB: return "GLP_EBADB";
    case GLP_ESING: return "GLP_ESING";
    case GLP_ECOND: return "GLP_ECOND";
    case GLP_EBOUND: return "GLP_EBOUND";
    case GLP_EFAIL: return "GLP_EFAIL";
    case GLP_EOBJLL: return "GLP_EOBJLL";
    case GLP_EOBJUL: return "GLP_EOBJUL";
    case GLP_EITLIM: return "GLP_EITLIM";
    case GLP_ETMLIM: return "GLP_ETMLIM";
    case GLP_ENOPFS: return "GLP_ENOPFS";
    case GLP_ENODFS: return "GLP_ENODFS";
    case GLP_EROOT: return "GLP_EROOT";
    case GLP_ESTOP: return "GLP_ESTOP";
    case GLP_EMIPGAP: return "GLP_EMIPGAP";
    case GLP_ENOFEAS: return "GLP_ENOFEAS";
    case GLP_ENOCVG: return "GLP_ENOCVG";
    case GLP_EINSTAB: return "GLP_EINSTAB";
    case GLP_EDATA: return "GLP_EDATA";
    case GLP_ERANGE: return "GLP_ERANGE";
    }
    return "unknown GLPK code";
}

/* A model with 0-based rows, columns and triplets. */
typedef struct model {
    int nrows, ncols, nnz;
    double obj0;        /* objective constant */
    double *obj;        /* (ncols) */
    double *rhs;        /* (nrows) */
    char *eq;           /* (nrows) 1: row = rhs, 0: row <= rhs */
    int *ri, *ci;       /* (nnz) 0-based row and column of each entry */
    double *v;          /* (nnz) */
    int binary;         /* columns binary (MIP) or in [0, 1] (LP) */
} model;

static void model_free(model *d)
{
    free(d->obj), free(d->rhs), free(d->eq), free(d->ri), free(d->ci),
        free(d->v);
    memset(d, 0, sizeof *d);
}

static int model_alloc(model *d, int nrows, int ncols, int nnz)
{
    memset(d, 0, sizeof *d);
    d->obj = xcalloc((size_t)ncols, sizeof *d->obj);
    d->rhs = xcalloc((size_t)nrows, sizeof *d->rhs);
    d->eq = xcalloc((size_t)nrows, sizeof *d->eq);
    d->ri = xcalloc((size_t)nnz, sizeof *d->ri);
    d->ci = xcalloc((size_t)nnz, sizeof *d->ci);
    d->v = xcalloc((size_t)nnz, sizeof *d->v);
    if (!d->obj || !d->rhs || !d->eq || !d->ri || !d->ci || !d->v) {
        model_free(d);
        return bp_fail(BP_ENOMEM, "mckp: out of memory");
    }
    return BP_OK;
}

/* GLPK's 1-based indexing is spoken here and in the small wrappers below
 * only: row i of a model is GLPK row i+1, column j is column j+1, and the
 * arrays handed to GLPK carry an unused element 0.  Call inside a guard. */
static glp_prob *glpk_build(const model *d)
{
    glp_prob *lp = glp_create_prob();
    glp_set_obj_dir(lp, GLP_MIN);
    glp_set_obj_coef(lp, 0, d->obj0);
    if (d->nrows)
        glp_add_rows(lp, d->nrows);
    if (d->ncols)
        glp_add_cols(lp, d->ncols);
    for (int i = 0; i < d->nrows; i++)
        glp_set_row_bnds(lp, i + 1, d->eq[i] ? GLP_FX : GLP_UP, d->rhs[i],
                         d->rhs[i]);
    for (int j = 0; j < d->ncols; j++) {
        glp_set_obj_coef(lp, j + 1, d->obj[j]);
        if (d->binary)
            glp_set_col_kind(lp, j + 1, GLP_BV);
        else
            glp_set_col_bnds(lp, j + 1, GLP_DB, 0.0, 1.0);
    }
    int *ia = glp_alloc(d->nnz + 1, sizeof *ia);
    int *ja = glp_alloc(d->nnz + 1, sizeof *ja);
    double *ar = glp_alloc(d->nnz + 1, sizeof *ar);
    for (int e = 0; e < d->nnz; e++) {
        ia[e + 1] = d->ri[e] + 1;
        ja[e + 1] = d->ci[e] + 1;
        ar[e + 1] = d->v[e];
    }
    glp_load_matrix(lp, d->nnz, ia, ja, ar);
    glp_free(ia), glp_free(ja), glp_free(ar);
    return lp;
}

/* The same translation for models that grow while being solved, and for
 * reading results back: every index below is 0-based. */
static int glpk_add_row0(glp_prob *lp, int eq, double rhs)
{
    int i = glp_add_rows(lp, 1);
    glp_set_row_bnds(lp, i, eq ? GLP_FX : GLP_UP, rhs, rhs);
    return i - 1;
}

static void glpk_set_rhs0(glp_prob *lp, int i, double rhs)
{
    glp_set_row_bnds(lp, i + 1, glp_get_row_type(lp, i + 1), rhs, rhs);
}

/* A column in [0, 1] with `len` entries at the 0-based rows `rows`. */
static int glpk_add_col0(glp_prob *lp, double obj, int len, const int *rows,
                         const double *vals)
{
    int ind[1 + 1 + BP_MCKP_MAX_BUDGETS];
    double val[1 + 1 + BP_MCKP_MAX_BUDGETS];
    int j = glp_add_cols(lp, 1);
    glp_set_col_bnds(lp, j, GLP_DB, 0.0, 1.0);
    glp_set_obj_coef(lp, j, obj);
    for (int e = 0; e < len; e++)
        ind[e + 1] = rows[e] + 1, val[e + 1] = vals[e];
    glp_set_mat_col(lp, j, len, ind, val);
    return j - 1;
}

/* Swaps a new row's auxiliary variable out of the basis for column j. */
static void glpk_basis_swap0(glp_prob *lp, int i, int j)
{
    glp_set_row_stat(lp, i + 1, GLP_NS);
    glp_set_col_stat(lp, j + 1, GLP_BS);
}

static double glpk_row_dual0(glp_prob *lp, int i)
{
    return glp_get_row_dual(lp, i + 1);
}

static double glpk_mip_col0(glp_prob *lp, int j)
{
    return glp_mip_col_val(lp, j + 1);
}

/* Hands GLPK's branch and bound a solution x (n columns, 0-based) found by
 * our heuristics; GLPK keeps it when it beats its incumbent. */
static void glpk_give_solution0(glp_tree *T, const double *x, int n)
{
    double *x1 = glp_alloc(n + 1, sizeof *x1);
    x1[0] = 0;
    memcpy(x1 + 1, x, (size_t)n * sizeof *x);
    glp_ios_heur_sol(T, x1);
    glp_free(x1);
}

/* ------------------------------------------------------------------------ */
/* step 2b: several budgets                                                 */

/* Projected subgradient ascent on L with Polyak steps towards the target
 * (an incumbent's normalised objective, or an estimate): a warm start for
 * band_lp, so a few dozen steps do. */
static void subgradient(const mk *m, double target, double *lam, int iters)
{
    double best_L = -INFINITY, best[BP_MCKP_MAX_BUDGETS];
    double x[BP_MCKP_MAX_BUDGETS], used[BP_MCKP_MAX_BUDGETS];
    double theta = 1.0;
    int stall = 0;
    memcpy(x, lam, (size_t)m->K * sizeof *x);
    memcpy(best, lam, (size_t)m->K * sizeof *x);
    for (int it = 0; it < iters && theta > 1e-4; it++) {
        double L = lagrangian(m, x, NULL, used);
        if (L > best_L) {
            if (L > best_L + 1e-9 * fabs(best_L))
                stall = 0;
            best_L = L;
            memcpy(best, x, (size_t)m->K * sizeof *x);
        } else if (++stall >= 8) {
            theta *= 0.5;
            stall = 0;
        }
        double s[BP_MCKP_MAX_BUDGETS], ns = 0;
        for (int k = 0; k < m->K; k++) {
            s[k] = used[k] - m->capn[k];
            if (x[k] <= 0 && s[k] < 0)
                s[k] = 0;
            ns += s[k] * s[k];
        }
        if (ns == 0)
            break;                     /* x is optimal */
        double gapv = target - L;
        if (gapv <= 1e-9 * fabs(target))
            gapv = 1e-3 * fabs(target) + 1e-12;
        double step = theta * gapv / ns;
        for (int k = 0; k < m->K; k++)
            x[k] = fmax(0, x[k] + step * s[k]);
    }
    memcpy(lam, best, (size_t)m->K * sizeof *x);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* GLPK's terminal output while a body runs: copied to stderr when verbose
 * (never to stdout, which may carry a caller's JSON), and its last line
 * kept for the message of an abort. */
typedef struct glpk_term {
    int verbose;
    char prev[256], line[256]; /* the last two complete lines */
    char cur[256];             /* the line being written */
} glpk_term;

static int glpk_term_hook(void *info, const char *s)
{
    glpk_term *t = info;
    if (t->verbose)
        fputs(s, stderr);
    for (; *s; s++) {
        size_t n = strlen(t->cur);
        if (*s == '\n') {
            if (n) {
                memcpy(t->prev, t->line, sizeof t->prev);
                memcpy(t->line, t->cur, n + 1);
            }
            t->cur[0] = '\0';
        } else if (n + 1 < sizeof t->cur) {
            t->cur[n] = *s;
            t->cur[n + 1] = '\0';
        }
    }
    return 1;                          /* GLPK prints nothing itself */
}

/* Runs body(ctx) with GLPK's aborts caught and its terminal output routed
 * through glpk_term_hook: the one place that arms glp_error_hook.  An abort
 * inside GLPK longjmps back here, after which GLPK's state is unusable and
 * glp_free_env releases all of it (every GLPK object of this thread, the
 * body's included); the body keeps everything else in ctx, which its caller
 * frees.  Returns body's status, or BP_EINTERNAL naming what was solved and
 * quoting GLPK's diagnosis. */
static int glpk_guarded(int verbose, int (*body)(void *), void *ctx,
                        const char *what)
{
    glpk_guard guard;
    glpk_term term;
    memset(&term, 0, sizeof term);
    term.verbose = verbose;
    glp_term_hook(glpk_term_hook, &term);
    int old_term = glp_term_out(verbose ? GLP_ON : GLP_OFF);
    if (setjmp(guard.env)) {
        glp_free_env();
        /* GLPK's diagnosis, then "Error detected in file ... at line ..." */
        return bp_fail(BP_EINTERNAL, "mckp: GLPK aborted (internal error) "
                       "while solving %s: %s (%s)", what, term.prev,
                       term.line);
    }
    glp_error_hook(glpk_abort_hook, &guard);
    int rc = body(ctx);
    glp_error_hook(NULL, NULL);
    glp_term_out(old_term);
    glp_term_hook(NULL, NULL);
    return rc;
}

typedef struct lpwork {
    const mk *m;
    double *lam;               /* (K) in: warm start, out: LP duals */
    unsigned char *band;       /* (N) choices in the LP */
    double *mu;                /* (G) dual of a group's row */
    int *row_of;               /* (G) row of a group with two or more band
                                  choices, or -1 */
    int *single;               /* (G) the band choice of the others */
    int ncols, rounds;
} lpwork;

/* Adds choice j as a column with a 1 in its group's 0-based row `row` and
 * its costs in the budget rows 0..K-1. */
static void lp_add_choice(glp_prob *lp, const mk *m, int row, int j)
{
    int rows[1 + BP_MCKP_MAX_BUDGETS], len = 0;
    double vals[1 + BP_MCKP_MAX_BUDGETS];
    rows[len] = row, vals[len++] = 1;
    for (int k = 0; k < m->K; k++)
        if (MK_AN(m, k, j) != 0)
            rows[len] = k, vals[len++] = MK_AN(m, k, j);
    glpk_add_col0(lp, m->on[j], len, rows, vals);
}

/* The LP relaxation over the band (normalised units).  Rows 1..K are the
 * budgets, then one row per group with two or more band choices; a group
 * with one band choice f_g is folded into the budgets' right-hand sides:
 *   minimise   sum_{g free} sum_{c in band_g} on_c x_c
 *   subject to sum_{g free} sum_c an_kc x_c <= capn_k - sum_{g single} an_k,f_g
 *              sum_{c in band_g} x_c = 1                    g free
 *              0 <= x_c <= 1
 * lambda_k is minus the dual of budget row k, mu_g the dual of row g (for a
 * single group, on + lambda.an of f_g).  Rows 0..K-1 are the budgets.  Pricing only ever adds columns,
 * and a single group that gains one also gains its row, with f_g's column
 * basic and the row's auxiliary variable nonbasic: the basis stays
 * nonsingular and primal feasible (the right-hand sides take back exactly
 * what f_g's column now carries), so every re-solve starts where the last
 * one ended. */
static int band_lp_body(void *ctx)
{
    lpwork *w = ctx;
    const mk *m = w->m;
    const int G = m->G, K = m->K;
    model empty = {0};
    glp_prob *lp = glpk_build(&empty);
    double rhs[BP_MCKP_MAX_BUDGETS];
    for (int k = 0; k < K; k++) {
        rhs[k] = m->capn[k];
        glpk_add_row0(lp, 0, 0);
    }
    for (int g = 0; g < G; g++) {
        int cnt = 0, last = -1;
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++)
            if (w->band[m->cand[i]])
                cnt++, last = m->cand[i];
        w->row_of[g] = -1;
        w->single[g] = last;
        if (cnt == 1) {
            for (int k = 0; k < K; k++)
                rhs[k] -= MK_AN(m, k, last);
            continue;
        }
        int row = w->row_of[g] = glpk_add_row0(lp, 1, 1.0);
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++)
            if (w->band[m->cand[i]])
                lp_add_choice(lp, m, row, m->cand[i]), w->ncols++;
    }
    for (int k = 0; k < K; k++)
        glpk_set_rhs0(lp, k, rhs[k]);
    glp_smcp sm;
    glp_init_smcp(&sm);
    sm.msg_lev = m->verbose ? GLP_MSG_ERR : GLP_MSG_OFF;
    /* the duals feed bounds: ask for them tighter than the default */
    sm.tol_bnd = 1e-9;
    sm.tol_dj = 1e-9;
    glp_scale_prob(lp, GLP_SF_AUTO);
    glp_adv_basis(lp, 0);
    int nband = 0;
    for (int i = 0; i < m->cfirst[G]; i++)
        nband += w->band[m->cand[i]];
    for (w->rounds = 1; w->rounds <= 64; w->rounds++) {
        int src = glp_simplex(lp, &sm);
        int st = src == 0 ? glp_get_status(lp) : GLP_UNDEF;
        /* infeasible over the band: every choice joins; over all of them,
         * no assignment can meet the caps */
        int all = src == 0 && st == GLP_NOFEAS;
        if (all && nband == m->cfirst[G]) {
            glp_delete_prob(lp);
            return bp_fail(BP_EINFEASIBLE, "no assignment meets all budgets "
                           "together (even the LP relaxation is infeasible)");
        }
        if (!all && (src != 0 || st != GLP_OPT)) {
            glp_delete_prob(lp);
            return bp_fail(BP_EINTERNAL, "mckp: GLPK's glp_simplex returned %s "
                           "(solution status %d) on the LP relaxation",
                           glpk_code_name(src), st);
        }
        for (int k = 0; k < K && !all; k++)
            w->lam[k] = fmax(0, -glpk_row_dual0(lp, k));
        for (int g = 0; g < G && !all; g++) {
            if (w->row_of[g] >= 0) {
                w->mu[g] = glpk_row_dual0(lp, w->row_of[g]);
                continue;
            }
            double v = m->on[w->single[g]];
            for (int k = 0; k < K; k++)
                v += w->lam[k] * MK_AN(m, k, w->single[g]);
            w->mu[g] = v;
        }
        /* pricing: reduced cost on_c + lambda.an_c - mu_g of every choice
         * outside the band; the negative ones join as new columns */
        int added = 0;
        for (int g = 0; g < G; g++)
            for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
                int j = m->cand[i];
                if (w->band[j])
                    continue;
                double dj = m->on[j] - w->mu[g];
                for (int k = 0; k < K; k++)
                    dj += w->lam[k] * MK_AN(m, k, j);
                if (dj >= -1e-9 && !all)
                    continue;
                w->band[j] = 1;
                nband++;
                if (w->row_of[g] < 0) {
                    /* the single group gets its row; f_g's column enters
                     * the basis in place of the row's auxiliary variable */
                    int f = w->single[g];
                    int row = w->row_of[g] = glpk_add_row0(lp, 1, 1.0);
                    lp_add_choice(lp, m, row, f);
                    glpk_basis_swap0(lp, row, glp_get_num_cols(lp) - 1);
                    for (int k = 0; k < K; k++) {
                        rhs[k] += MK_AN(m, k, f);
                        glpk_set_rhs0(lp, k, rhs[k]);
                    }
                    w->ncols++;
                }
                lp_add_choice(lp, m, w->row_of[g], j);
                w->ncols++;
                added++;
            }
        if (m->verbose)
            fprintf(stderr, "mckp: LP round %d: %d rows, %d columns, %d "
                    "priced in\n", w->rounds, glp_get_num_rows(lp),
                    w->ncols - added, added);
        if (!all && (!added || out_of_time(m)))
            break;
    }
    glp_delete_prob(lp);
    return BP_OK;
}

/* Solves the LP relaxation with GLPK's simplex over a band of choices and
 * prices every other choice against the LP's duals, adding those of
 * negative reduced cost, until none is left: lam ends as an optimal dual of
 * the full LP relaxation (within GLPK's tolerances; any lam >= 0 yields a
 * valid bound, so tolerances cost tightness, never correctness).  The band
 * starts as every group's Lagrangian choice at the warm start lam, the
 * choices within delta of it (delta set so that about 64 + G/16 groups get
 * a second choice), and the choices of inc, a feasible assignment when
 * there is one (which keeps the first LP feasible). */
static int band_lp(const mk *m, double *lam, const int *inc, int *lp_rounds)
{
    const int G = m->G, K = m->K, N = m->N;
    int rc = BP_OK;
    lpwork w;
    memset(&w, 0, sizeof w);
    w.m = m;
    w.lam = lam;
    w.band = xcalloc((size_t)N, 1);
    w.mu = xcalloc((size_t)G, sizeof *w.mu);
    w.row_of = xcalloc((size_t)G, sizeof *w.row_of);
    w.single = xcalloc((size_t)G, sizeof *w.single);
    double *r2 = xcalloc((size_t)G, sizeof *r2);
    if (!w.band || !w.mu || !w.row_of || !w.single || !r2) {
        rc = bp_fail(BP_ENOMEM, "mckp: out of memory");
        goto out;
    }
    for (int g = 0; g < G; g++) {
        double vmin = INFINITY, v2 = INFINITY;
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
            int j = m->cand[i];
            double v = m->on[j];
            for (int k = 0; k < K; k++)
                v += lam[k] * MK_AN(m, k, j);
            if (v < vmin)
                v2 = vmin, vmin = v;
            else if (v < v2)
                v2 = v;
        }
        r2[g] = v2 - vmin;
        w.mu[g] = vmin;
    }
    double *sorted = xcalloc((size_t)G, sizeof *sorted);
    if (!sorted) {
        rc = bp_fail(BP_ENOMEM, "mckp: out of memory");
        goto out;
    }
    memcpy(sorted, r2, (size_t)G * sizeof *sorted);
    qsort(sorted, (size_t)G, sizeof *sorted, cmp_double);
    int want = G < 64 + G / 16 ? G : 64 + G / 16;
    double delta = sorted[want - 1];
    free(sorted);
    for (int g = 0; g < G; g++) {
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
            int j = m->cand[i];
            double v = m->on[j];
            for (int k = 0; k < K; k++)
                v += lam[k] * MK_AN(m, k, j);
            if (v - w.mu[g] <= delta)
                w.band[j] = 1;
        }
        if (inc)
            w.band[inc[g]] = 1;
    }
    rc = glpk_guarded(m->verbose, band_lp_body, &w, "the LP relaxation");
    *lp_rounds = w.rounds;
out:
    free(w.band), free(w.mu), free(w.row_of), free(w.single), free(r2);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* step 3: greedy repair and improvement                                    */

static void totals_active(const mk *m, const int *sel, double *T)
{
    for (int k = 0; k < m->K; k++) {
        double t = 0;
        for (int g = 0; g < m->G; g++)
            t += MK_A(m, k, sel[g]);
        T[k] = t;
    }
}

typedef struct move { double key; int g, j; } move;

static int cmp_move(const void *a, const void *b)
{
    double x = ((const move *)a)->key, y = ((const move *)b)->key;
    return x < y ? -1 : x > y;
}

/* Resource prices for the heuristics: the LP duals, with a floor so that a
 * budget with a zero dual still counts a little. */
static void prices(const mk *m, const double *lam, double *pw)
{
    double mx = 0;
    for (int k = 0; k < m->K; k++)
        mx = fmax(mx, lam[k]);
    for (int k = 0; k < m->K; k++)
        pw[k] = fmax(lam[k], mx > 0 ? 1e-3 * mx : 1.0);
}

/* Makes sel (global choice per group) meet every budget, judged against
 * the safe caps, then spends the slack; both in passes that rank one move
 * per group and apply them in order while they still fit, so a pass costs
 * O(N log N).  Repair ranks by objective increase per unit of excess
 * removed (normalised costs); filling by objective decrease per unit of
 * cost priced at pw.  mv: scratch (G).  Returns 1 when sel ends feasible. */
static int greedy(const mk *m, const double *pw, int *sel, move *mv)
{
    const int K = m->K;
    double T[BP_MCKP_MAX_BUDGETS];
    for (int pass = 0;; pass++) {
        totals_active(m, sel, T);
        int bad = 0;
        for (int k = 0; k < K; k++)
            bad |= T[k] > m->safe[k];
        if (!bad)
            break;
        if (pass >= 64)
            return 0;
        int nm = 0;
        for (int g = 0; g < m->G; g++) {
            int cur = sel[g];
            double best = INFINITY;
            int bj = -1;
            for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
                int j = m->cand[i];
                if (j == cur)
                    continue;
                double red = 0;
                for (int k = 0; k < K; k++)
                    if (T[k] > m->safe[k])
                        red -= (MK_A(m, k, j) - MK_A(m, k, cur)) * m->sc[k];
                if (red <= 0)
                    continue;
                double score = (m->on[j] - m->on[cur]) / red;
                if (score < best)
                    best = score, bj = j;
            }
            if (bj >= 0)
                mv[nm].key = best, mv[nm].g = g, mv[nm++].j = bj;
        }
        qsort(mv, (size_t)nm, sizeof *mv, cmp_move);
        int applied = 0;
        for (int i = 0; i < nm; i++) {
            int g = mv[i].g, j = mv[i].j, cur = sel[g], useful = 0, ok = 1;
            for (int k = 0; k < K; k++) {
                double da = MK_A(m, k, j) - MK_A(m, k, cur);
                if (T[k] > m->safe[k])
                    useful |= da < 0;
                else if (T[k] + da > m->safe[k])
                    ok = 0;
            }
            if (!useful || !ok)
                continue;
            sel[g] = j;
            applied++;
            int still = 0;
            for (int k = 0; k < K; k++) {
                T[k] += MK_A(m, k, j) - MK_A(m, k, cur);
                still |= T[k] > m->safe[k];
            }
            if (!still)
                break;
        }
        if (!applied)
            return 0;
    }
    for (int pass = 0; pass < 64; pass++) {
        totals_active(m, sel, T);
        int nm = 0;
        for (int g = 0; g < m->G; g++) {
            int cur = sel[g];
            double best = 0;
            int bj = -1;
            for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
                int j = m->cand[i];
                double dO = m->on[j] - m->on[cur], use = 0;
                int ok = j != cur && dO < 0;
                for (int k = 0; k < K && ok; k++) {
                    double da = MK_A(m, k, j) - MK_A(m, k, cur);
                    if (T[k] + da > m->safe[k])
                        ok = 0;
                    else if (da > 0)
                        use += da * m->sc[k] * pw[k];
                }
                if (!ok)
                    continue;
                double eff = use > 0 ? -dO / use : INFINITY;
                if (eff > best)
                    best = eff, bj = j;
            }
            if (bj >= 0)
                mv[nm].key = -best, mv[nm].g = g, mv[nm++].j = bj;
        }
        if (!nm)
            break;
        qsort(mv, (size_t)nm, sizeof *mv, cmp_move);
        for (int i = 0; i < nm; i++) {
            int g = mv[i].g, j = mv[i].j, cur = sel[g], ok = 1;
            for (int k = 0; k < K; k++)
                if (T[k] + MK_A(m, k, j) - MK_A(m, k, cur) > m->safe[k])
                    ok = 0;
            if (!ok)
                continue;
            for (int k = 0; k < K; k++)
                T[k] += MK_A(m, k, j) - MK_A(m, k, cur);
            sel[g] = j;
        }
    }
    return 1;
}

/* Pair moves: one group up and another down (or any two changes) that
 * together fit and lower the objective, among the moves of the `ncore`
 * groups whose two best choices at lambda are closest; best pair first,
 * until none improves.  sel must meet the safe caps; it still does after. */
static void pair_search(const mk *m, const double *lam, int *sel, move *mv,
                        int ncore)
{
    const int K = m->K, G = m->G;
    if (ncore > G)
        ncore = G;
    if (ncore < 2)
        return;
    /* rank groups by the gap between their two best Lagrangian values */
    for (int g = 0; g < G; g++) {
        double v1 = INFINITY, v2 = INFINITY;
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
            int j = m->cand[i];
            double v = m->on[j];
            for (int k = 0; k < K; k++)
                v += lam[k] * MK_AN(m, k, j);
            if (v < v1)
                v2 = v1, v1 = v;
            else if (v < v2)
                v2 = v;
        }
        mv[g].key = v2 - v1, mv[g].g = g, mv[g].j = -1;
    }
    qsort(mv, (size_t)G, sizeof *mv, cmp_move);
    int *core = malloc((size_t)ncore * sizeof *core);
    if (!core)
        return;                        /* a heuristic: skip quietly */
    for (int i = 0; i < ncore; i++)
        core[i] = mv[i].g;
    double T[BP_MCKP_MAX_BUDGETS];
    for (int it = 0; it < 4 * ncore; it++) {
        totals_active(m, sel, T);
        double best = 0;
        int bg1 = -1, bj1 = -1, bg2 = -1, bj2 = -1;
        for (int a = 0; a < ncore; a++) {
            int g1 = core[a], c1 = sel[g1];
            for (int i1 = m->cfirst[g1]; i1 < m->cfirst[g1 + 1]; i1++) {
                int j1 = m->cand[i1];
                if (j1 == c1)
                    continue;
                double o1 = m->on[j1] - m->on[c1];
                double d1[BP_MCKP_MAX_BUDGETS];
                for (int k = 0; k < K; k++)
                    d1[k] = MK_A(m, k, j1) - MK_A(m, k, c1);
                for (int b = a + 1; b < ncore; b++) {
                    int g2 = core[b], c2 = sel[g2];
                    for (int i2 = m->cfirst[g2]; i2 < m->cfirst[g2 + 1]; i2++) {
                        int j2 = m->cand[i2];
                        double o = o1 + m->on[j2] - m->on[c2];
                        if (j2 == c2 || o >= best)
                            continue;
                        int ok = 1;
                        for (int k = 0; k < K && ok; k++)
                            ok = T[k] + d1[k] + MK_A(m, k, j2) - MK_A(m, k, c2)
                                 <= m->safe[k];
                        if (ok)
                            best = o, bg1 = g1, bj1 = j1, bg2 = g2, bj2 = j2;
                    }
                }
            }
        }
        if (bg1 < 0)
            break;
        sel[bg1] = bj1;
        sel[bg2] = bj2;
    }
    free(core);
}

/* ------------------------------------------------------------------------ */
/* step 5: the MIP                                                          */

/* How GLPK's branch and bound is driven (measured on the bench instances;
 * see the notes in bench/bench_mckp.c). */
static const struct mip_knobs {
    int presolve;      /* GLPK's MIP presolver; off lets us hand GLPK our
                          incumbent (with it on, the tree's columns are not
                          ours, so glp_ios_heur_sol cannot be used) */
    int pp_tech, br_tech, bt_tech;
} KNOBS = {GLP_OFF, GLP_PP_NONE, GLP_BR_DTH, GLP_BT_BLB};

typedef struct mipctx {
    double deadline;
    double scale;          /* GLPK objective = scale * (true - offset) */
    double offset;
    double incumbent;      /* true objective of our incumbent (inf: none) */
    double rel_gap;
    double bound;          /* best GLPK bound seen, GLPK units (-inf: none) */
    int stopped;           /* the callback ended the search: 1 on time,
                              2 with the gap reached */
    const double *heur;    /* (nheur) column values of our incumbent for
                              GLPK, or NULL once given */
    int nheur;
    int nodes;
} mipctx;

static void mip_callback(glp_tree *T, void *info)
{
    mipctx *c = info;
    int reason = glp_ios_reason(T);
    if (reason == GLP_IHEUR && c->heur) {
        glpk_give_solution0(T, c->heur, c->nheur);
        c->heur = NULL;
    }
    if (reason == GLP_ISELECT)
        c->nodes++;
    int p = glp_ios_best_node(T);
    if (p)
        c->bound = fmax(c->bound, glp_ios_node_bound(T, p));
    if (reason != GLP_ISELECT && reason != GLP_IBINGO)
        return;
    if (now_s() > c->deadline) {
        c->stopped = 1;
        glp_ios_terminate(T);
        return;
    }
    if (c->rel_gap > 0 && p) {
        glp_prob *P = glp_ios_get_prob(T);
        double inc = c->incumbent;
        if (glp_mip_status(P) == GLP_FEAS)
            inc = fmin(inc, c->offset + glp_mip_obj_val(P) / c->scale);
        double lb = c->offset + c->bound / c->scale;
        if (isfinite(inc) && (inc - lb) / fmax(fabs(inc), 1e-12) <= c->rel_gap) {
            c->stopped = 2;
            glp_ios_terminate(T);
        }
    }
}

typedef struct mipwork {
    const mk *m;
    const unsigned char *keep; /* (N) choices left after fixing */
    const int *fixsel;         /* (G) choice of a group with one left */
    const int *inc;            /* (G) our incumbent (meets the caps), or NULL */
    double deadline;
    int *srt;                  /* (ncols + nfree) each free group's choices
                                  by cost: srt[sfirst[r]..sfirst[r+1]) */
    int *sfirst;               /* (nfree + 1) */
    int *grp;                  /* (nfree) group of each free row */
    int *goods;                /* (max_goods, nfree) answers excluded so far,
                                  as positions in srt */
    int n_goods, max_goods;
    int nfree, nvars;          /* free groups; y columns */
    double rhs[BP_MCKP_MAX_BUDGETS];
    double scale, offset, incumbent, rel_gap;
    double c0;                 /* sum over F of o_{s_g0} - b_g */
    model d;
    /* out */
    int *sel;                  /* (G) GLPK's assignment, global indices */
    int have;                  /* sel holds an assignment meeting the caps */
    int proven;                /* 2: search closed, 1: rel_gap reached */
    int rounds, nodes;
    double bound;              /* true units; -inf: none */
} mipwork;

/* The integer program handed to GLPK.  F: the free groups, those with two or
 * more choices left after fixing, each with its choices sorted by cost in
 * the first active budget, s_g0 .. s_g,n_g-1; every other group g sits at its
 * single choice f_g.  GLPK branches on single binary columns, which with one
 * column per choice (x = 0 hardly moves an LP that spreads a group over its
 * neighbours) makes weak branches; so a group's choice is written through
 * ordered binaries y_gt = [choice >= s_gt], t = 1..n_g-1, a split of the
 * choices into cheaper and dearer halves on every branch.  The LP relaxation
 * is the same (x_gt = y_gt - y_g,t+1 >= 0 is the usual convexity form):
 *
 *   minimise   s * sum_{g in F} ( o_{s_g0} - b_g
 *                                 + sum_t (o_{s_gt} - o_{s_g,t-1}) y_gt )
 *   subject to y_gt <= y_g,t-1                           g in F, t = 2..n_g-1
 *              sum_{g in F} sum_t (a_k,s_gt - a_k,s_g,t-1) y_gt
 *                  <= B_k - sum_{g not in F} a_k,f_g - sum_{g in F} a_k,s_g0
 *                                                        k active
 *              sum_{g in F} (y_g,t_g^r - y_g,t_g^r+1) <= |F| - 1   r = 1..R
 *              y_gt in {0, 1}     (y_g0 = 1 and y_g,n_g = 0 in the no-goods)
 *
 * b_g = min_t o_{s_gt} is a constant shift, and s a power of two that brings
 * the incumbent's shifted objective near 1e4, so that GLPK's absolute
 * tolerances (tol_obj = 1e-10 relative to that) sit far below 1e-9 of the
 * objective.  The R no-good rows each exclude one earlier answer t^r that
 * broke a cap by less than GLPK's feasibility tolerance.  Costs stay in the
 * caller's units: the only scaling of the constraints is GLPK's own. */
static int mip_body(void *ctx)
{
    mipwork *w = ctx;
    const mk *m = w->m;
    const bp_mckp *p = m->p;
    const int G = m->G, K = m->K, nfree = w->nfree, nv = w->nvars;
    model *d = &w->d;
    for (w->rounds = 1;; w->rounds++) {
        int rc, nord = nv - nfree;     /* ordering rows */
        model_free(d);
        if ((rc = model_alloc(d, nord + K + w->n_goods, nv,
                              2 * nord + nv * K + 2 * w->n_goods * nfree)))
            return rc;
        d->binary = 1;
        d->nrows = nord + K + w->n_goods;
        d->ncols = nv;
        for (int k = 0; k < K; k++)
            d->rhs[nord + k] = w->rhs[k];
        int col = 0, row = 0;
        for (int r = 0; r < nfree; r++) {
            const int *s0 = w->srt + w->sfirst[r];
            int n = w->sfirst[r + 1] - w->sfirst[r];
            for (int t = 1; t < n; t++, col++) {
                d->obj[col] = w->scale * (p->obj[s0[t]] - p->obj[s0[t - 1]]);
                for (int k = 0; k < K; k++) {
                    double da = MK_A(m, k, s0[t]) - MK_A(m, k, s0[t - 1]);
                    if (da != 0)
                        d->ri[d->nnz] = nord + k, d->ci[d->nnz] = col,
                        d->v[d->nnz++] = da;
                }
                if (t >= 2) {          /* y_gt - y_g,t-1 <= 0 */
                    d->ri[d->nnz] = row, d->ci[d->nnz] = col, d->v[d->nnz++] = 1;
                    d->ri[d->nnz] = row, d->ci[d->nnz] = col - 1,
                    d->v[d->nnz++] = -1;
                    d->rhs[row++] = 0;
                }
            }
        }
        /* no-good r: sum_g [choice_g == t_g] <= |F| - 1, where
         * [choice == t] = y_t - y_t+1 with y_0 = 1, y_n = 0 */
        for (int q = 0; q < w->n_goods; q++) {
            int rq = nord + K + q;
            double rhs = nfree - 1;
            for (int r = 0, base = 0; r < nfree; r++) {
                int n = w->sfirst[r + 1] - w->sfirst[r];
                int t = w->goods[(size_t)q * nfree + r];
                if (t == 0)
                    rhs -= 1;
                else
                    d->ri[d->nnz] = rq, d->ci[d->nnz] = base + t - 1,
                    d->v[d->nnz++] = 1;
                if (t + 1 < n)
                    d->ri[d->nnz] = rq, d->ci[d->nnz] = base + t,
                    d->v[d->nnz++] = -1;
                base += n - 1;
            }
            d->rhs[rq] = rhs;
        }
        d->obj0 = w->scale * w->c0;
        glp_prob *lp = glpk_build(d);
        mipctx cb = {w->deadline, w->scale, w->offset, w->incumbent,
                     w->rel_gap, -INFINITY, 0, NULL, 0, 0};
        double *hx = NULL;
        glp_iocp io;
        glp_init_iocp(&io);
        io.msg_lev = m->verbose ? GLP_MSG_ON : GLP_MSG_OFF;
        io.presolve = KNOBS.presolve;
        io.pp_tech = KNOBS.pp_tech;
        io.br_tech = KNOBS.br_tech;
        io.bt_tech = KNOBS.bt_tech;
        io.mip_gap = w->rel_gap;
        io.tol_int = 1e-7;          /* not below GLPK's LP tolerances: with 1e-9
                                       GLPK can fathom a feasible root */
        io.tol_obj = 1e-10;
        io.cb_func = mip_callback;
        io.cb_info = &cb;
        if (isfinite(w->deadline)) {
            double left = w->deadline - now_s();
            io.tm_lim = left <= 0 ? 1 : left > 2e6 ? INT_MAX
                                                   : (int)(left * 1e3) + 1;
        }
        if (!io.presolve) {
            /* glp_intopt wants an optimal basis of the relaxation */
            glp_smcp sm;
            glp_init_smcp(&sm);
            sm.msg_lev = m->verbose ? GLP_MSG_ERR : GLP_MSG_OFF;
            if (isfinite(w->deadline))
                sm.tm_lim = io.tm_lim;
            glp_scale_prob(lp, GLP_SF_AUTO);
            glp_adv_basis(lp, 0);
            int src = glp_simplex(lp, &sm);
            if (src == GLP_ETMLIM) {
                glp_delete_prob(lp);
                return BP_OK;          /* no time left: keep ours */
            }
            int lst = src == 0 ? glp_get_status(lp) : GLP_UNDEF;
            if (src == 0 && lst == GLP_NOFEAS) {
                /* no assignment within keep can meet the caps (a core may
                 * well be so); rows added since only shrink the region */
                glp_delete_prob(lp);
                if (m->verbose)
                    fprintf(stderr, "mckp: MIP round %d: %d groups: the "
                            "relaxation is infeasible\n", w->rounds, nfree);
                w->bound = INFINITY;
                w->proven = 2;
                return BP_OK;
            }
            if (src != 0 || lst != GLP_OPT) {
                glp_delete_prob(lp);
                return bp_fail(BP_EINTERNAL, "mckp: GLPK's glp_simplex "
                               "returned %s (solution status %d) on the "
                               "MIP's relaxation", glpk_code_name(src), lst);
            }
            if (w->inc && w->n_goods == 0) {
                hx = malloc((size_t)nv * sizeof *hx);
                if (!hx) {
                    glp_delete_prob(lp);
                    return bp_fail(BP_ENOMEM, "mckp: out of memory");
                }
                int ok = 1;
                for (int r = 0, c = 0; r < nfree; r++) {
                    const int *s0 = w->srt + w->sfirst[r];
                    int n = w->sfirst[r + 1] - w->sfirst[r], at = 0;
                    while (at < n && s0[at] != w->inc[w->grp[r]])
                        at++;
                    ok &= at < n;      /* the incumbent's choice is kept */
                    for (int t = 1; t < n; t++)
                        hx[c++] = at >= t;
                }
                if (ok)
                    cb.heur = hx, cb.nheur = nv;
            }
        }
        int irc = glp_intopt(lp, &io);
        free(hx);
        hx = NULL;
        int mst = glp_mip_status(lp);
        w->nodes += cb.nodes;
        if (irc != 0 && irc != GLP_ETMLIM && irc != GLP_ESTOP &&
            irc != GLP_EMIPGAP && irc != GLP_ENOPFS && irc != GLP_ENODFS) {
            glp_delete_prob(lp);
            return bp_fail(BP_EINTERNAL, "mckp: GLPK's glp_intopt returned %s "
                           "on the allocation MIP", glpk_code_name(irc));
        }
        int done = irc == 0 || irc == GLP_ENOPFS || irc == GLP_ENODFS;
        int got = mst == GLP_OPT || mst == GLP_FEAS;
        if (irc == 0 && mst == GLP_OPT)
            cb.bound = glp_mip_obj_val(lp);
        if (m->verbose)
            fprintf(stderr, "mckp: MIP round %d: %d groups, %d columns, %d "
                    "nodes: glp_intopt %s, mip status %d\n", w->rounds, nfree,
                    nv, cb.nodes, glpk_code_name(irc), mst);
        if (got) {
            for (int g = 0; g < G; g++)
                w->sel[g] = w->fixsel[g];
            for (int r = 0, c = 0; r < nfree; r++) {
                const int *s0 = w->srt + w->sfirst[r];
                int n = w->sfirst[r + 1] - w->sfirst[r], at = 0;
                for (int t = 1; t < n; t++, c++)
                    at += glpk_mip_col0(lp, c) > 0.5;
                w->sel[w->grp[r]] = s0[at];
            }
        }
        glp_delete_prob(lp);
        /* each round's bound is valid: the no-good rows only cut off
         * assignments that break a cap */
        double lb = done && !got ? INFINITY : cb.bound;
        w->bound = fmax(w->bound, w->offset + lb / w->scale);
        int closed = done ? 2 : irc == GLP_EMIPGAP ||
                     (irc == GLP_ESTOP && cb.stopped == 2);
        if (!got) {
            w->proven = done ? 2 : 0;
            return BP_OK;
        }
        double obj, tot[BP_MCKP_MAX_BUDGETS];
        eval_global(p, m->N, w->sel, &obj, tot);
        if (totals_fit(p, tot)) {
            w->have = 1;
            w->proven = closed;
            return BP_OK;
        }
        /* broke a cap within GLPK's tolerance: exclude it and solve again */
        if (w->n_goods == w->max_goods || now_s() > w->deadline)
            return BP_OK;
        for (int r = 0; r < nfree; r++) {
            const int *s0 = w->srt + w->sfirst[r];
            int n = w->sfirst[r + 1] - w->sfirst[r], at = 0;
            while (at + 1 < n && s0[at] != w->sel[w->grp[r]])
                at++;                  /* GLPK's answer came from s0 */
            w->goods[(size_t)w->n_goods * nfree + r] = at;
        }
        w->n_goods++;
    }
}

static void mipwork_free(mipwork *w)
{
    model_free(&w->d);
    free(w->srt), free(w->sfirst), free(w->grp), free(w->goods),
        free(w->sel);
}

/* Solves, with GLPK's branch and bound, the problem where each group may
 * only take the choices flagged in keep; a group with one flagged choice
 * sits at fixsel[g] (which must be that choice).  inc, when not NULL, is an
 * assignment within keep meeting the caps with objective `incumbent`, handed
 * to GLPK.  Fills w (release with mipwork_free): sel/have, proven, bound
 * (true units, over the restricted problem), rounds, nodes. */
static int solve_mip(const mk *m, const unsigned char *keep, const int *fixsel,
                     const int *inc, double incumbent, double rel_gap,
                     double deadline, mipwork *w)
{
    const int G = m->G, K = m->K;
    const bp_mckp *p = m->p;
    memset(w, 0, sizeof *w);
    w->m = m;
    w->keep = keep;
    w->fixsel = fixsel;
    w->inc = inc;
    w->incumbent = inc ? incumbent : INFINITY;
    w->rel_gap = rel_gap;
    w->deadline = deadline;
    w->bound = -INFINITY;
    w->max_goods = 32;
    int nk = 0;
    for (int i = 0; i < m->cfirst[G]; i++)
        nk += keep[m->cand[i]] != 0;
    w->srt = xcalloc((size_t)nk, sizeof *w->srt);
    w->sfirst = xcalloc((size_t)G + 1, sizeof *w->sfirst);
    w->grp = xcalloc((size_t)G, sizeof *w->grp);
    w->sel = xcalloc((size_t)G, sizeof *w->sel);
    if (!w->srt || !w->sfirst || !w->grp || !w->sel)
        return bp_fail(BP_ENOMEM, "mckp: out of memory");
    for (int k = 0; k < K; k++)
        w->rhs[k] = m->cap[k];
    int ns = 0;
    for (int g = 0; g < G; g++) {
        int s0 = ns;
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++)
            if (keep[m->cand[i]])
                w->srt[ns++] = m->cand[i];
        if (ns - s0 < 2) {             /* a fixed group */
            ns = s0;
            w->offset += p->obj[fixsel[g]];
            for (int k = 0; k < K; k++)
                w->rhs[k] -= MK_A(m, k, fixsel[g]);
            continue;
        }
        /* by cost in the first budget (insertion sort: groups are small) */
        for (int i = s0 + 1; i < ns; i++) {
            int x = w->srt[i], q = i;
            while (q > s0 && (K ? MK_A(m, 0, w->srt[q - 1]) > MK_A(m, 0, x)
                                : p->obj[w->srt[q - 1]] < p->obj[x])) {
                w->srt[q] = w->srt[q - 1];
                q--;
            }
            w->srt[q] = x;
        }
        double base = INFINITY;
        for (int i = s0; i < ns; i++)
            base = fmin(base, p->obj[w->srt[i]]);
        w->offset += base;
        w->c0 += p->obj[w->srt[s0]] - base;
        for (int k = 0; k < K; k++)
            w->rhs[k] -= MK_A(m, k, w->srt[s0]);
        w->grp[w->nfree] = g;
        w->sfirst[w->nfree++] = s0;
        w->nvars += ns - s0 - 1;
    }
    w->sfirst[w->nfree] = ns;
    w->goods = xcalloc((size_t)w->max_goods * (size_t)(w->nfree + 1),
                       sizeof *w->goods);
    if (!w->goods)
        return bp_fail(BP_ENOMEM, "mckp: out of memory");
    if (w->nfree == 0)
        return BP_OK;
    double span = isfinite(w->incumbent) ? w->incumbent - w->offset : 0;
    w->scale = span > 0 ? ldexp(1.0, 13 - ilogb(span)) : 1.0;
    return glpk_guarded(m->verbose, mip_body, w, "the allocation MIP");
}

/* ------------------------------------------------------------------------ */
/* step 3b: the core                                                        */

/* Ranks the groups by how close their best move away from the Lagrangian
 * choice arg[g] comes to paying for itself at the prices lambda: rho_g =
 * min_c r_c / (lambda . |an_c - an_arg|), a relative reduced cost.  Groups
 * of any size with small rho are where an optimum departs from the LP; an
 * absolute reduced cost would favour tiny layers, which cannot absorb a
 * residual.  mv (G) ends sorted by rho, mv[i].g the group. */
static void rank_core(const mk *m, const double *lam, const int *arg, move *mv)
{
    const int K = m->K;
    for (int g = 0; g < m->G; g++) {
        int a = arg[g];
        double va = m->on[a], rho = INFINITY;
        for (int k = 0; k < K; k++)
            va += lam[k] * MK_AN(m, k, a);
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
            int j = m->cand[i];
            if (j == a)
                continue;
            double v = m->on[j], price = 0;
            for (int k = 0; k < K; k++) {
                v += lam[k] * MK_AN(m, k, j);
                price += lam[k] * fabs(MK_AN(m, k, j) - MK_AN(m, k, a));
            }
            double q = price > 0 ? (v - va) / price : v > va ? INFINITY : 0;
            rho = fmin(rho, q);
        }
        mv[g].key = rho, mv[g].g = g, mv[g].j = -1;
    }
    qsort(mv, (size_t)m->G, sizeof *mv, cmp_move);
}

/* The core heuristic: every group outside the first ncore of the ranking
 * sits at anchor[g], the core groups may take any choice, and GLPK solves
 * that small problem (to rel_gap, or until deadline; inc, when not NULL, is
 * a feasible assignment within it handed to GLPK).  When the answer beats
 * *U, sel and *U take it.
 * core_keep (N) gets the choices the core problem allowed; *closed is 1
 * when GLPK proved the core problem's optimum.  Returns a status (a core
 * problem without a feasible assignment is not an error: *closed 0). */
static int core_heuristic(const mk *m, const int *anchor, const move *ranked,
                          int ncore, const int *inc, double rel_gap,
                          double deadline, int *sel, double *U,
                          unsigned char *core_keep, int *closed)
{
    const int G = m->G;
    memset(core_keep, 0, (size_t)m->N);
    for (int g = 0; g < G; g++)
        core_keep[anchor[g]] = 1;
    for (int i = 0; i < ncore && i < G; i++) {
        int g = ranked[i].g;
        for (int q = m->cfirst[g]; q < m->cfirst[g + 1]; q++)
            core_keep[m->cand[q]] = 1;
    }
    mipwork w;
    int rc = solve_mip(m, core_keep, anchor, inc, inc ? *U : INFINITY,
                       rel_gap, deadline, &w);
    *closed = 0;
    if (!rc && w.nfree == 0) {
        /* everything fixed: the anchor itself is the core's only answer */
        double o, t[BP_MCKP_MAX_BUDGETS];
        eval_global(m->p, m->N, anchor, &o, t);
        if (totals_fit(m->p, t)) {
            *closed = 1;
            if (o < *U) {
                memcpy(sel, anchor, (size_t)G * sizeof *sel);
                *U = o;
            }
        }
    } else if (!rc && w.have) {
        double o, t[BP_MCKP_MAX_BUDGETS];
        eval_global(m->p, m->N, w.sel, &o, t);
        if (o < *U) {
            memcpy(sel, w.sel, (size_t)G * sizeof *sel);
            *U = o;
        }
        *closed = w.proven == 2;
    }
    if (m->verbose)
        fprintf(stderr, "mckp: core of %d groups: %s, U = %.12g\n", ncore,
                *closed ? "solved" : "not solved", *U);
    mipwork_free(&w);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* step 5a: our own branch and bound on the Lagrangian dual                 */

/* GLPK's generic branch and bound spends ~10 ms a node on this problem; the
 * structure allows ~0.05 ms.  A node restricts each free group to a subset
 * (a bit mask) of its choices.  Its bound is the Lagrangian dual
 *   L(lambda) = c0 + sum_g min_{c allowed} (on_c + lambda.an_c) - lambda.capr
 * maximised over lambda >= 0, which equals the node's LP relaxation.  Any
 * lambda >= 0 gives a valid bound, so the maximiser only decides how much is
 * pruned, never whether the answer is right.  It is an ascent from the
 * parent's lambda: the steepest ascent direction is the least-norm element
 * of the eps-superdifferential (each group's supergradients are the cost
 * vectors of its choices within eps of its minimum; Wolfe's algorithm finds
 * it in a few steps, and its weights are the LP's primal solution, with at
 * most K + 1 vertices, so at most K groups fractional), followed by an
 * exact line search (L along a ray is concave piecewise linear; its
 * breakpoints come from a heap of the groups' next switches).  Usually one
 * or two line searches a node.  The same ascent, over every choice, gives
 * the root's LP dual (root_ascent).
 *
 * The search is best-first over a pool of nodes (a node is its parent, the
 * mask it sets and the fixings its processing recorded; switching nodes
 * undoes the applied path to the common ancestor and replays the rest),
 * with plunging: the better child is processed at once while its bound is
 * near the best open one, which reaches leaves, hence incumbents, early.
 * At each node: the ascent, a rounding heuristic (bb_heur), reduced-cost
 * fixing against the incumbent, then strong branching: each fractional
 * group's choices, sorted by their cost in budget 0, split between its LP
 * choices, both children's bounds computed; the split whose worse child is
 * best wins, and a child whose bound reaches the incumbent is not made.
 * Best-first matters: the nodes a proof needs are those with bounds below
 * the optimum, and depth first with a weaker incumbent spent 5-10 times
 * more (5000 x 6 bench: 19k nodes against 2.3k).  Assignments (an integral
 * LP solution, every group down to one choice, a heuristic's answer) are
 * checked exactly with the group-order sums of mckp.h.  A node is pruned
 * when its bound, less its rounding margin, reaches U - max(rel_gap,
 * BB_TOL) |U|: the answer is optimal to within BB_TOL relative (1e-11: the
 * tests ask for 1e-9). */

#define BB_MAXK 3
#define BB_MAXC 32
#define BB_TOL 1e-11
#define BB_CANDS 4
/* Line searches for a strong-branching child's bound: most converge in one
 * or two, and a child keeps its lambda to finish the ascent when it is
 * processed (any lambda bounds it). */
#define BB_SB_ITERS 2

/* A node of the search tree.  Nodes stay in the pool until the search
 * ends: the masks at a node are the root's with the changes of every node
 * on its path applied in order (each one's branching change, then the
 * fixings recorded when it was processed). */
typedef struct bbnode {
    int parent, depth;     /* parent -1: the root */
    int f;                 /* free group whose mask the node sets (-1: none) */
    unsigned mask;         /* that mask */
    int fix0, nfix;        /* fixings recorded when processed:
                              fixrec[fix0..fix0+nfix) */
    double bound;          /* lower bound of its subtree (normalised, less
                              the rounding margin) */
    double lam[BB_MAXK];   /* where its ascent starts */
} bbnode;

typedef struct bbfix { int f; unsigned mask; } bbfix;

typedef struct bbheap { double t; int f; } bbheap;

/* One mask change; when it left one choice, the group also left the active
 * list (from position p) and c0, capr took its share: their old values are
 * kept, so undoing restores them bit for bit. */
typedef struct bbundo {
    int f, p;              /* p: -1 when the group stayed active */
    unsigned mask;         /* the old mask */
    double c0, capr[BB_MAXK];
} bbundo;

typedef struct bb {
    const mk *m;
    int K, F, nc;          /* budgets, free groups, their choices */
    int *fo;               /* (F+1) free group f's choices: fo[f]..fo[f+1] */
    int *gid;              /* (nc) global index of each choice */
    int *grp;              /* (F) group of each free group */
    double *on;            /* (nc) normalised objective */
    double *an[BB_MAXK];   /* (nc) normalised costs */
    unsigned *mask;        /* (F) allowed choices (bit c: choice fo[f]+c) */
    double capr[BB_MAXK];  /* capn less the fixed groups' costs */
    double c0;             /* the fixed groups' objective */
    int *jsel;             /* (G) assignment for exact checks */
    /* the last pass */
    int *arg;              /* (F) local argmin */
    double *vmin;          /* (F) */
    double base[BB_MAXK];  /* sum of an at arg, less capr */
    double mag;            /* magnitude of the summed terms (rounding) */
    int *tied, ntied;      /* groups with two or more choices within eps */
    double *w;             /* (nc) primal weights of tied groups' choices */
    double *val;           /* (nc) on + lambda.an of the active groups'
                              allowed choices at the last pass */
    int *tch, *tst;        /* (nc), (F+1) tied group i's choices within
                              eps: tch[tst[i]..tst[i+1]) */
    int *comp;             /* ((BB_MAXK+2) (F+BB_MAXK)) least-norm corral */
    double d[BB_MAXK];     /* ascent direction */
    /* line search */
    double *sv;            /* (nc) an.d */
    int *cur;              /* (F) choice along the ray */
    bbheap *heap;          /* (F) */
    /* the tree */
    bbundo *ulog;          /* (cap_log) undo log */
    int *act, nact;        /* free groups with two or more choices left:
                              the only ones a pass visits */
    int *pos;              /* (F) position of each in act */
    int nlog, cap_log;
    bbnode *node;          /* (cap_node) every node made */
    int nnode, cap_node;
    bbfix *fixrec;         /* (cap_fixrec) */
    int nfixrec, cap_fixrec;
    int *open, nopen, cap_open;    /* heap of open nodes, least bound first */
    int *path, *pundo, plen;       /* (nc+2) nodes applied, root first, and
                                      the undo-log length before each */
    int *tpath;            /* (nc+2) scratch */
    double eps;            /* tie tolerance */
    double Un;             /* incumbent, normalised */
    double U;              /* incumbent, true units */
    int *best;             /* (G) incumbent, global indices */
    int have;
    long nodes;
} bb;

static void bb_free(bb *b)
{
    free(b->fo), free(b->gid), free(b->grp), free(b->on);
    for (int k = 0; k < BB_MAXK; k++)
        free(b->an[k]);
    free(b->mask), free(b->jsel), free(b->arg), free(b->vmin), free(b->tied),
        free(b->w), free(b->val), free(b->tch), free(b->tst), free(b->comp), free(b->sv), free(b->cur), free(b->heap), free(b->ulog),
        free(b->act), free(b->pos), free(b->node), free(b->fixrec),
        free(b->open), free(b->path), free(b->pundo), free(b->tpath),
        free(b->best);
}

static inline double bb_val(const bb *b, int i, const double *lam)
{
    double v = b->on[i];
    for (int k = 0; k < b->K; k++)
        v += lam[k] * b->an[k][i];
    return v;
}

static inline double dmax(double a, double b) { return a > b ? a : b; }
static inline int n_of(const bb *b, int f) { return b->fo[f + 1] - b->fo[f]; }
static inline double dmin(double a, double b) { return a < b ? a : b; }

/* L(lambda) at the current masks; fills arg, vmin, base, mag and the tied
 * groups. */
static double bb_pass(bb *b, const double *lam)
{
    const int K = b->K;
    /* budgets past K enter with a zero price and a harmless array: one
     * loop body for K = 1..3 */
    const double *on = b->on, *a0 = b->an[0];
    const double *a1 = K > 1 ? b->an[1] : a0, *a2 = K > 2 ? b->an[2] : a0;
    const double l0 = lam[0], l1 = K > 1 ? lam[1] : 0, l2 = K > 2 ? lam[2] : 0;
    const double eps = b->eps;
    const int *fo = b->fo;
    double *val = b->val;
    double L = b->c0, mag = fabs(b->c0), s0 = 0, s1 = 0, s2 = 0;
    int nt = 0;
    for (int i = 0; i < b->nact; i++) {
        int f = b->act[i], o = fo[f], n = fo[f + 1] - o, a = -1;
        unsigned msk = b->mask[f];
        double vm = INFINITY, v2 = INFINITY;
        for (int c = 0; c < n; c++) {
            if (!(msk >> c & 1))
                continue;
            int j = o + c;
            double v = on[j] + l0 * a0[j] + l1 * a1[j] + l2 * a2[j];
            val[j] = v;
            if (v < vm)
                v2 = vm, vm = v, a = c;
            else if (v < v2)
                v2 = v;
        }
        b->arg[f] = a;
        b->vmin[f] = vm;
        L += vm;
        mag += fabs(vm);
        s0 += a0[o + a], s1 += a1[o + a], s2 += a2[o + a];
        if (v2 <= vm + eps)
            b->tied[nt++] = f;
    }
    b->ntied = nt;
    double sums[3] = {s0, s1, s2}, lc = 0;
    for (int k = 0; k < K; k++) {
        b->base[k] = sums[k] - b->capr[k];
        lc += lam[k] * b->capr[k];
    }
    b->mag = mag + fabs(lc);
    return L - lc;
}

/* The least-norm element of base + sum over tied groups of the hull of
 * their eps-tied choices' costs + the cone of e_k for lambda_k = 0: b->d
 * (the steepest ascent direction), the weights b->w.  Returns |d|^2.
 *
 * Wolfe's minimum-norm-point algorithm over that polytope, which it only
 * touches through a linear minimisation oracle (each tied group picks its
 * choice of least x.an on its own): the corral holds at most K + 1
 * vertices, each a choice per tied group, and finishes in a few steps
 * where coordinate descent between nearly parallel groups crawled.  The
 * cone enters as one more pseudo-group per budget at lambda_k = 0, with
 * the two choices 0 and M_k e_k: M_k bounds |p_k| over the polytope, so
 * the least-norm point (which adds max(0, -p_k) to coordinate k) is
 * unchanged. */
#define MN_ATOMS (BB_MAXK + 1)

/* Oracle: the vertex v minimising x.v; comp gets its choices (local index
 * per tied group, then 0/1 per cone direction). */
static void mn_oracle(const bb *b, const double *x, const int *zk, int nz,
                      const double *M, int *comp, double *v)
{
    const int K = b->K;
    for (int k = 0; k < K; k++)
        v[k] = b->base[k];
    for (int i = 0; i < b->ntied; i++) {
        int f = b->tied[i], o = b->fo[f], a = b->arg[f], bc = a;
        double best = INFINITY;
        for (int q = b->tst[i]; q < b->tst[i + 1]; q++) {
            int c = b->tch[q];
            double s = 0;
            for (int k = 0; k < K; k++)
                s += x[k] * (b->an[k][o + c] - b->an[k][o + a]);
            if (s < best)
                best = s, bc = c;
        }
        comp[i] = bc;
        for (int k = 0; k < K; k++)
            v[k] += b->an[k][o + bc] - b->an[k][o + a];
    }
    for (int j = 0; j < nz; j++) {
        comp[b->ntied + j] = x[zk[j]] < 0;
        if (x[zk[j]] < 0)
            v[zk[j]] += M[zk[j]];
    }
}

/* The point of the affine hull of s[0..m-1] nearest the origin, as
 * coefficients alpha (summing to 1): 0 on success, -1 when the points are
 * (numerically) affinely dependent. */
static int mn_affine(const double s[][BB_MAXK], int m, int K, double *alpha)
{
    if (m == 1) {
        alpha[0] = 1;
        return 0;
    }
    /* s0 + D beta, D = [s_i - s_0]: (D'D) beta = -D's0 */
    double A[BB_MAXK][BB_MAXK + 1], scale = 0;
    int n = m - 1;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            double t = 0;
            for (int k = 0; k < K; k++)
                t += (s[i + 1][k] - s[0][k]) * (s[j + 1][k] - s[0][k]);
            A[i][j] = t;
        }
        double r = 0;
        for (int k = 0; k < K; k++)
            r -= (s[i + 1][k] - s[0][k]) * s[0][k];
        A[i][n] = r;
        scale = fmax(scale, A[i][i]);
    }
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r][c]) > fabs(A[piv][c]))
                piv = r;
        if (!(fabs(A[piv][c]) > 1e-13 * scale))
            return -1;
        if (piv != c)
            for (int j = 0; j <= n; j++) {
                double t = A[c][j];
                A[c][j] = A[piv][j], A[piv][j] = t;
            }
        for (int r = c + 1; r < n; r++) {
            double f = A[r][c] / A[c][c];
            for (int j = c; j <= n; j++)
                A[r][j] -= f * A[c][j];
        }
    }
    double sum = 0;
    for (int c = n - 1; c >= 0; c--) {
        double t = A[c][n];
        for (int j = c + 1; j < n; j++)
            t -= A[c][j] * alpha[j + 1];
        alpha[c + 1] = t / A[c][c];
        sum += alpha[c + 1];
    }
    alpha[0] = 1 - sum;
    return 0;
}

static double bb_minnorm(bb *b, const double *lam)
{
    const int K = b->K, nt = b->ntied;
    int zk[BB_MAXK], nz = 0;
    double M[BB_MAXK];
    /* the tied groups' choices within eps; M from their spread */
    int ntc = 0;
    for (int k = 0; k < K; k++)
        M[k] = fabs(b->base[k]);
    for (int i = 0; i < nt; i++) {
        int f = b->tied[i], o = b->fo[f], a = b->arg[f];
        unsigned msk = b->mask[f];
        double spread[BB_MAXK] = {0};
        b->tst[i] = ntc;
        for (int c = 0; c < b->fo[f + 1] - o; c++)
            b->w[o + c] = 0;
        for (int c = 0; msk; c++, msk >>= 1) {
            if (!(msk & 1) || b->val[o + c] > b->vmin[f] + b->eps)
                continue;
            b->tch[ntc++] = c;
            for (int k = 0; k < K; k++)
                spread[k] = fmax(spread[k],
                                 fabs(b->an[k][o + c] - b->an[k][o + a]));
        }
        for (int k = 0; k < K; k++)
            M[k] += spread[k];
    }
    b->tst[nt] = ntc;
    for (int k = 0; k < K; k++)
        if (lam[k] <= 0)
            zk[nz++] = k;
    const int width = nt + nz;
    /* the corral: points s, weights lw, choices comp (width each) */
    double s[MN_ATOMS + 1][BB_MAXK], lw[MN_ATOMS + 1], x[BB_MAXK];
    double alpha[MN_ATOMS + 1], v[BB_MAXK];
    int *comp[MN_ATOMS + 1];
    for (int a = 0; a <= MN_ATOMS; a++)
        comp[a] = b->comp + (size_t)a * (size_t)(width ? width : 1);
    int m = 1;
    for (int i = 0; i < nt; i++)
        comp[0][i] = b->arg[b->tied[i]];
    for (int j = 0; j < nz; j++)
        comp[0][nt + j] = 0;
    for (int k = 0; k < K; k++)
        s[0][k] = x[k] = b->base[k];
    lw[0] = 1;
    for (int major = 0; major < 64 && width > 0; major++) {
        mn_oracle(b, x, zk, nz, M, comp[m], v);
        double xx = 0, xv = 0, smax = 0;
        for (int k = 0; k < K; k++)
            xx += x[k] * x[k], xv += x[k] * v[k];
        for (int a = 0; a < m; a++) {
            double t = 0;
            for (int k = 0; k < K; k++)
                t += s[a][k] * s[a][k];
            smax = fmax(smax, t);
        }
        for (int k = 0; k < K; k++)
            smax = fmax(smax, v[k] * v[k]);
        if (xx - xv <= 1e-12 * smax || m == K + 1)
            break;                     /* x is the least-norm point */
        memcpy(s[m], v, sizeof v);
        lw[m++] = 0;
        for (int minor = 0; minor < 2 * MN_ATOMS; minor++) {
            if (mn_affine((const double (*)[BB_MAXK])s, m, K, alpha))
                goto done;             /* dependent (rounding): keep lw */
            int inside = 1;
            for (int a = 0; a < m; a++)
                inside &= alpha[a] > 1e-12;
            if (inside) {
                memcpy(lw, alpha, (size_t)m * sizeof *lw);
                break;
            }
            /* move from lw towards alpha until a weight reaches 0; drop
             * the vertices whose weight did */
            double theta = 1;
            for (int a = 0; a < m; a++)
                if (alpha[a] <= 1e-12 && lw[a] - alpha[a] > 0)
                    theta = fmin(theta, lw[a] / (lw[a] - alpha[a]));
            int q = 0;
            for (int a = 0; a < m; a++) {
                double t = theta * alpha[a] + (1 - theta) * lw[a];
                if (t <= 1e-12)
                    continue;
                if (q != a) {
                    memcpy(s[q], s[a], sizeof s[q]);
                    int *tmp = comp[q];
                    comp[q] = comp[a], comp[a] = tmp;
                }
                lw[q++] = t;
            }
            if (q == 0) {              /* cannot happen: keep the best */
                q = 1;
                lw[0] = 1;
            }
            m = q;
            double sum = 0;
            for (int a = 0; a < m; a++)
                sum += lw[a];
            for (int a = 0; a < m; a++)
                lw[a] /= sum;
            if (m == 1)
                break;
        }
        for (int k = 0; k < K; k++) {
            x[k] = 0;
            for (int a = 0; a < m; a++)
                x[k] += lw[a] * s[a][k];
        }
    }
done:
    for (int k = 0; k < K; k++) {
        x[k] = 0;
        for (int a = 0; a < m; a++)
            x[k] += lw[a] * s[a][k];
    }
    for (int a = 0; a < m; a++)
        for (int i = 0; i < nt; i++) {
            int f = b->tied[i];
            b->w[b->fo[f] + comp[a][i]] += lw[a];
        }
    /* at lambda_k = 0 the exact answer has d_k >= 0 (the cone lifts a
     * negative coordinate to 0); rounding can leave -1e-21 there, which
     * would stop the line search at t = 0 */
    for (int j = 0; j < nz; j++)
        x[zk[j]] = dmax(x[zk[j]], 0);
    double nn = 0;
    for (int k = 0; k < K; k++) {
        b->d[k] = x[k];
        nn += x[k] * x[k];
    }
    return nn;
}

static void heap_down(bbheap *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, s = i;
        if (l < n && h[l].t < h[s].t)
            s = l;
        if (l + 1 < n && h[l + 1].t < h[s].t)
            s = l + 1;
        if (s == i)
            return;
        bbheap x = h[i];
        h[i] = h[s], h[s] = x;
        i = s;
    }
}

/* Free group f's next switch along the ray from choice cur[f]: the time
 * (v0 are values at t = 0, sv slopes) and into *to. */
static double bb_next(const bb *b, int f, const double *lam, int *to)
{
    int o = b->fo[f], c = b->cur[f];
    double vc = b->val[o + c], sc = b->sv[o + c], best = INFINITY;
    unsigned msk = b->mask[f];
    *to = -1;
    for (int x = 0; msk; x++, msk >>= 1) {
        if (!(msk & 1) || b->sv[o + x] >= sc)
            continue;
        double t = (b->val[o + x] - vc) / (sc - b->sv[o + x]);
        if (t < best ||
            (t == best && *to >= 0 && b->sv[o + x] < b->sv[o + *to]))
            best = t, *to = x;
    }
    return best;
}

/* Exact line search for the maximum of L(lambda + t d), t >= 0, lambda + t
 * d >= 0.  Returns t, or INFINITY when L grows without end (the node's LP
 * is infeasible). */
static double bb_line(bb *b, const double *lam)
{
    const int K = b->K;
    double slope = 0, mag = 0, tmax = INFINITY;
    for (int k = 0; k < K; k++) {
        slope -= b->capr[k] * b->d[k];
        mag += fabs(b->capr[k] * b->d[k]);
        if (b->d[k] < 0)
            tmax = fmin(tmax, lam[k] / -b->d[k]);
    }
    const double *a0 = b->an[0];
    const double *a1 = K > 1 ? b->an[1] : a0, *a2 = K > 2 ? b->an[2] : a0;
    const double d0 = b->d[0], d1 = K > 1 ? b->d[1] : 0, d2 = K > 2 ? b->d[2] : 0;
    const double *val = b->val;
    double *sv = b->sv;
    int nh = 0;
    for (int i = 0; i < b->nact; i++) {
        int f = b->act[i], o = b->fo[f], n = b->fo[f + 1] - o, c = b->arg[f];
        unsigned msk = b->mask[f];
        double lim = b->vmin[f] + b->eps;
        for (int x = 0; x < n; x++)
            if (msk >> x & 1)
                sv[o + x] = a0[o + x] * d0 + a1[o + x] * d1 + a2[o + x] * d2;
        /* right derivative: among the minimisers (within eps), the
         * smallest slope (the pass's argmin unless the group is tied) */
        double sbest = sv[o + c];
        for (int x = 0; x < n; x++)
            if (msk >> x & 1 && val[o + x] <= lim && sv[o + x] < sbest)
                sbest = sv[o + x], c = x;
        b->cur[f] = c;
        slope += sbest;
        mag += fabs(sbest);
        /* the first switch along the ray: a choice of smaller slope
         * overtaking c */
        double vc = val[o + c], tb = INFINITY, sto = 0;
        int to = -1;
        for (int x = 0; x < n; x++) {
            int j = o + x;
            if (!(msk >> x & 1) || sv[j] >= sbest)
                continue;
            double t = (val[j] - vc) / (sbest - sv[j]);
            if (t < tb || (t == tb && to >= 0 && sv[j] < sto))
                tb = t, to = x, sto = sv[j];
        }
        if (to >= 0)
            b->heap[nh].t = dmax(tb, 0), b->heap[nh++].f = f;
    }
    double stol = 1e-11 * mag;
    if (slope <= stol)
        return 0;
    for (int i = nh / 2 - 1; i >= 0; i--)
        heap_down(b->heap, nh, i);
    while (nh > 0 && b->heap[0].t < tmax) {
        double t = b->heap[0].t;
        int f = b->heap[0].f, to;
        bb_next(b, f, lam, &to);
        slope -= b->sv[b->fo[f] + b->cur[f]] - b->sv[b->fo[f] + to];
        b->cur[f] = to;
        if (slope <= stol)
            return t;
        double tn = bb_next(b, f, lam, &to);
        if (to >= 0)
            b->heap[0].t = dmax(tn, t);
        else
            b->heap[0] = b->heap[--nh];
        heap_down(b->heap, nh, 0);
    }
    return tmax;
}

/* Rounding margin of the last pass's L: ~F roundings of terms <= mag. */
static double bb_margin(const bb *b)
{
    return 8.0 * (b->F + b->K + 4) * DBL_EPSILON * b->mag;
}

/* Maximises L over lambda (in/out) at the current masks, stopping early
 * once L less its margin reaches `stop`.  Returns L at lambda with the pass and least-norm
 * state of that lambda; INFINITY for a node whose LP is infeasible.
 * *norm gets |d|^2. */
static double bb_ascent(bb *b, double *lam, double stop, double *norm,
                        int maxit)
{
    const int K = b->K;
    double L = bb_pass(b, lam);
    *norm = bb_minnorm(b, lam);
    for (int it = 0; it < maxit && L - bb_margin(b) < stop && *norm > 1e-22;
         it++) {
        double t = bb_line(b, lam);
        if (isinf(t))
            return INFINITY;
        if (t <= 0)
            break;
        /* a multiplier the step takes to its bound lands on 0 exactly:
         * a rounding residue (1e-14) would hide the cone of lambda_k >= 0
         * from the next direction, and the step after it would be ~0 */
        double nl[BB_MAXK];
        for (int k = 0; k < K; k++) {
            nl[k] = fmax(0, lam[k] + t * b->d[k]);
            if (b->d[k] < 0 && t * -b->d[k] >= lam[k] * (1 - 1e-12))
                nl[k] = 0;
        }
        double old[BB_MAXK];
        memcpy(old, lam, sizeof old);
        memcpy(lam, nl, sizeof nl);
        double L2 = bb_pass(b, lam);
        if (!(L2 > L + 1e-3 * b->eps)) {
            if (L2 < L) {              /* rounding: keep the better one */
                memcpy(lam, old, sizeof old);
                L = bb_pass(b, lam);
            } else {
                L = L2;
            }
            *norm = bb_minnorm(b, lam);
            break;
        }
        L = L2;
        *norm = bb_minnorm(b, lam);
    }
    return L;
}

/* Sets free group f's mask, logged for undoing; a group left with one
 * choice leaves the active list and its share moves into c0 and capr. */
static int bb_setmask(bb *b, int f, unsigned mask)
{
    if (b->nlog == b->cap_log) {
        int nc = 2 * b->cap_log + 64;
        bbundo *u = realloc(b->ulog, (size_t)nc * sizeof *u);
        if (!u)
            return -1;
        b->ulog = u;
        b->cap_log = nc;
    }
    bbundo *u = &b->ulog[b->nlog++];
    u->f = f, u->p = -1, u->mask = b->mask[f];
    b->mask[f] = mask;
    if (mask & (mask - 1) || b->pos[f] < 0)
        return 0;
    int c = 0, o = b->fo[f], p = b->pos[f], last = b->act[--b->nact];
    while (!(mask >> c & 1))
        c++;
    u->p = p;
    u->c0 = b->c0;
    memcpy(u->capr, b->capr, sizeof u->capr);
    b->c0 += b->on[o + c];
    for (int k = 0; k < b->K; k++)
        b->capr[k] -= b->an[k][o + c];
    b->arg[f] = c;
    b->act[p] = last, b->pos[last] = p;
    b->act[b->nact] = f, b->pos[f] = -1;
    return 0;
}

static void bb_undo(bb *b, int upto)
{
    while (b->nlog > upto) {
        bbundo *u = &b->ulog[--b->nlog];
        if (u->p >= 0) {
            int f = u->f, p = u->p, other = b->act[p];
            b->c0 = u->c0;
            memcpy(b->capr, u->capr, sizeof b->capr);
            b->act[b->nact] = other, b->pos[other] = b->nact;
            b->act[p] = f, b->pos[f] = p;
            b->nact++;
        }
        b->mask[u->f] = u->mask;
    }
}

/* Builds the B&B over the choices in keep (a group with one kept choice is
 * fixed at fixsel[g]).  Returns BP_OK, BP_EUNSUPPORTED when a group keeps
 * more than BB_MAXC choices or K > BB_MAXK, or BP_ENOMEM. */
static int bb_init(bb *b, const mk *m, const unsigned char *keep,
                   const int *fixsel)
{
    const int G = m->G, K = m->K;
    memset(b, 0, sizeof *b);
    b->m = m;
    b->K = K;
    if (K < 1 || K > BB_MAXK)
        return BP_EUNSUPPORTED;
    int F = 0, nc = 0;
    for (int g = 0; g < G; g++) {
        int cnt = 0;
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++)
            cnt += keep[m->cand[i]] != 0;
        if (cnt > BB_MAXC)
            return BP_EUNSUPPORTED;
        if (cnt >= 2)
            F++, nc += cnt;
    }
    b->fo = xcalloc((size_t)F + 1, sizeof *b->fo);
    b->gid = xcalloc((size_t)nc, sizeof *b->gid);
    b->grp = xcalloc((size_t)F, sizeof *b->grp);
    b->on = xcalloc((size_t)nc, sizeof *b->on);
    for (int k = 0; k < K; k++)
        b->an[k] = xcalloc((size_t)nc, sizeof *b->an[k]);
    b->mask = xcalloc((size_t)F, sizeof *b->mask);
    b->jsel = xcalloc((size_t)G, sizeof *b->jsel);
    b->best = xcalloc((size_t)G, sizeof *b->best);
    b->arg = xcalloc((size_t)F, sizeof *b->arg);
    b->vmin = xcalloc((size_t)F, sizeof *b->vmin);
    b->tied = xcalloc((size_t)F, sizeof *b->tied);
    b->w = xcalloc((size_t)nc, sizeof *b->w);
    b->val = xcalloc((size_t)nc, sizeof *b->val);
    b->tch = xcalloc((size_t)nc, sizeof *b->tch);
    b->tst = xcalloc((size_t)F + 1, sizeof *b->tst);
    b->comp = xcalloc((size_t)(BB_MAXK + 2) * ((size_t)F + BB_MAXK),
                      sizeof *b->comp);
    b->sv = xcalloc((size_t)nc, sizeof *b->sv);
    b->cur = xcalloc((size_t)F, sizeof *b->cur);
    b->heap = xcalloc((size_t)F, sizeof *b->heap);
    b->act = xcalloc((size_t)F, sizeof *b->act);
    b->pos = xcalloc((size_t)F, sizeof *b->pos);
    b->path = xcalloc((size_t)nc + 2, sizeof *b->path);
    b->pundo = xcalloc((size_t)nc + 2, sizeof *b->pundo);
    b->tpath = xcalloc((size_t)nc + 2, sizeof *b->tpath);
    int bad = !b->fo || !b->gid || !b->grp || !b->on || !b->mask ||
              !b->jsel || !b->best || !b->arg || !b->vmin || !b->tied ||
              !b->w || !b->val || !b->tch || !b->tst || !b->comp || !b->sv || !b->cur || !b->heap || !b->act || !b->pos ||
              !b->path || !b->pundo || !b->tpath;
    for (int k = 0; k < K; k++)
        bad |= !b->an[k];
    if (bad)
        return bp_fail(BP_ENOMEM, "mckp: out of memory");
    for (int k = 0; k < K; k++)
        b->capr[k] = m->capn[k];
    for (int g = 0; g < G; g++) {
        int at = nc ? b->fo[b->F] : 0, cnt = 0;
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++)
            cnt += keep[m->cand[i]] != 0;
        if (cnt < 2) {
            int j = fixsel[g];
            b->jsel[g] = j;
            b->c0 += m->on[j];
            for (int k = 0; k < K; k++)
                b->capr[k] -= MK_AN(m, k, j);
            continue;
        }
        /* by cost in budget 0, then budget 1: branching splits this order */
        int n = 0;
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
            int j = m->cand[i];
            if (!keep[j])
                continue;
            int q = at + n++;
            while (q > at && (MK_AN(m, 0, b->gid[q - 1]) > MK_AN(m, 0, j) ||
                              (MK_AN(m, 0, b->gid[q - 1]) == MK_AN(m, 0, j) &&
                               K > 1 && MK_AN(m, 1, b->gid[q - 1]) >
                                            MK_AN(m, 1, j)))) {
                b->gid[q] = b->gid[q - 1];
                q--;
            }
            b->gid[q] = j;
        }
        for (int q = at; q < at + n; q++) {
            b->on[q] = m->on[b->gid[q]];
            for (int k = 0; k < K; k++)
                b->an[k][q] = MK_AN(m, k, b->gid[q]);
        }
        b->act[b->F] = b->F, b->pos[b->F] = b->F;
        b->grp[b->F] = g;
        b->mask[b->F] = n == 32 ? 0xffffffffu : (1u << n) - 1;
        b->jsel[g] = b->gid[at];
        b->fo[++b->F] = at + n;
    }
    b->nc = nc;
    b->nact = b->F;
    return BP_OK;
}

/* Checks the assignment with each free group at local choice pick[f]
 * exactly; keeps it when it meets the caps and beats U.  A look in
 * normalised units over the active groups first skips, without the O(G)
 * exact sums, what is no better than U or clearly over a cap (a skip only
 * costs a heuristic answer, never correctness). */
static void bb_try(bb *b, const int *pick)
{
    const mk *m = b->m;
    double on = b->c0, ex[BB_MAXK];
    for (int k = 0; k < b->K; k++)
        ex[k] = -b->capr[k];
    for (int i = 0; i < b->nact; i++) {
        int f = b->act[i], j = b->fo[f] + pick[f];
        on += b->on[j];
        for (int k = 0; k < b->K; k++)
            ex[k] += b->an[k][j];
    }
    if (b->have && !(on < b->Un))
        return;
    for (int k = 0; k < b->K; k++)
        if (ex[k] > 1e-9 * (1 + fabs(m->capn[k])))
            return;
    for (int f = 0; f < b->F; f++)
        b->jsel[b->grp[f]] = b->gid[b->fo[f] + pick[f]];
    double o, t[BP_MCKP_MAX_BUDGETS];
    eval_global(m->p, m->N, b->jsel, &o, t);
    if (!totals_fit(m->p, t) || (b->have && !(o < b->U)))
        return;
    b->U = o;
    b->Un = o * m->so;
    b->have = 1;
    memcpy(b->best, b->jsel, (size_t)m->G * sizeof *b->best);
    if (m->verbose)
        fprintf(stderr, "mckp: B&B node %ld: U = %.12g\n", b->nodes, o);
}

/* One move of the node heuristic: free group f to local choice c, which
 * changes the objective by dob and the totals by da. */
typedef struct bbmove { double key, dob, da[BB_MAXK]; int f, c; } bbmove;

/* Keeps the n best (least key) moves in v (sorted), up to cap. */
static void keep_best(bbmove *v, int *n, int cap, bbmove x)
{
    if (*n == cap && !(x.key < v[cap - 1].key))
        return;
    int i = *n < cap ? (*n)++ : cap - 1;
    while (i > 0 && x.key < v[i - 1].key) {
        v[i] = v[i - 1];
        i--;
    }
    v[i] = x;
}

#define HEUR_LIST 12
#define HEUR_SCANS 2

/* Whether move x fits: every total ends within tol of its cap, or no
 * higher than it was. */
static int heur_fits(const bb *b, const double *ex, const double *tol,
                     const bbmove *x, double *nex)
{
    int ok = 1;
    for (int k = 0; k < b->K; k++) {
        nex[k] = ex[k] + x->da[k];
        ok &= nex[k] <= dmax(ex[k], tol[k]);
    }
    return ok;
}

/* Its move from pick[f] to c. */
static bbmove heur_move(const bb *b, const int *pick, int f, int c,
                        double key, double dob)
{
    bbmove x = {key, dob, {0}, f, c};
    int o = b->fo[f];
    for (int k = 0; k < b->K; k++)
        x.da[k] = b->an[k][o + c] - b->an[k][o + pick[f]];
    return x;
}

/* The node heuristic: the LP solution rounded (each tied group at its
 * heaviest choice), then repaired and improved with moves from one scan of
 * the active groups, which keeps the HEUR_LIST moves that use the node's
 * prices best in each direction: "up" moves (objective down, resources
 * up) and "down" moves (resources freed), ranked by reduced cost per unit
 * of priced resource, plus the best single improving move.  The excess
 * over the caps goes with down moves (one that removes it all at the least
 * objective increase, else the best objective per unit of excess); the
 * objective then falls by single moves and by up/down pairs that fit: the
 * optimum departs from the LP in a handful of groups, by such swaps.
 * Moves of a group already moved are dropped; up to HEUR_SCANS scans while
 * they pay.  Normalised units, active groups only; bb_try checks the answer
 * exactly.  pick (F) is scratch. */
static void bb_heur(bb *b, const double *lam, int *pick)
{
    const int K = b->K;
    double ex[BB_MAXK], tol[BB_MAXK], nex[BB_MAXK];
    for (int f = 0; f < b->F; f++)
        pick[f] = b->arg[f];
    for (int i = 0; i < b->ntied; i++) {
        int f = b->tied[i], o = b->fo[f], n = b->fo[f + 1] - o;
        double wmax = -1;
        for (int c = 0; c < n; c++)
            if (b->mask[f] >> c & 1 && b->w[o + c] > wmax)
                wmax = b->w[o + c], pick[f] = c;
    }
    /* excess within tol (bb_try's) counts as none: a total on a cap may
     * come out a rounding above it here */
    for (int k = 0; k < K; k++) {
        ex[k] = -b->capr[k];
        tol[k] = 1e-9 * (1 + fabs(b->m->capn[k]));
    }
    for (int i = 0; i < b->nact; i++) {
        int f = b->act[i], j = b->fo[f] + pick[f];
        for (int k = 0; k < K; k++)
            ex[k] += b->an[k][j];
    }
    for (int scan = 0; scan < HEUR_SCANS; scan++) {
        bbmove up[HEUR_LIST], dn[HEUR_LIST], single = {0, 0, {0}, -1, 0};
        int nu = 0, nd = 0;
        for (int i = 0; i < b->nact; i++) {
            int f = b->act[i], o = b->fo[f], p = pick[f];
            unsigned msk = b->mask[f];
            /* val: on + lambda.an at the node's lambda (its last pass) */
            double vp = b->val[o + p], op = b->on[o + p];
            for (int c = 0; c < n_of(b, f); c++) {
                if (!(msk >> c & 1) || c == p)
                    continue;
                double dob = b->on[o + c] - op, dr = b->val[o + c] - vp;
                double pr = dr - dob;  /* priced resources */
                if (dob < 0) {
                    double key = dr / pr;
                    int lst = pr > 0 &&
                              (nu < HEUR_LIST || key < up[nu - 1].key);
                    if (!lst && !(dob < single.dob))
                        continue;
                    bbmove x = heur_move(b, pick, f, c, key, dob);
                    if (dob < single.dob && heur_fits(b, ex, tol, &x, nex))
                        single = x;
                    if (lst)
                        keep_best(up, &nu, HEUR_LIST, x);
                } else if (pr < 0) {
                    double key = dr / -pr;
                    if (nd < HEUR_LIST || key < dn[nd - 1].key)
                        keep_best(dn, &nd, HEUR_LIST,
                                  heur_move(b, pick, f, c, key, dob));
                }
            }
        }
        int moved = 0;
        /* repair with down moves */
        for (;;) {
            double v0 = 0;
            for (int k = 0; k < K; k++)
                v0 += ex[k] > tol[k] ? ex[k] : 0;
            if (v0 <= 0)
                break;
            int bc = -1, bp = -1;
            double bcv = INFINITY, bpv = INFINITY;
            for (int y = 0; y < nd; y++) {
                if (dn[y].f < 0)
                    continue;
                double nv = 0;
                for (int k = 0; k < K; k++) {
                    double e = ex[k] + dn[y].da[k];
                    nv += e > tol[k] ? e : 0;
                }
                if (nv <= 0 && dn[y].dob < bcv)
                    bcv = dn[y].dob, bc = y;
                else if (nv > 0 && nv < v0 && dn[y].dob / (v0 - nv) < bpv)
                    bpv = dn[y].dob / (v0 - nv), bp = y;
            }
            int y = bc >= 0 ? bc : bp;
            if (y < 0)
                break;
            bbmove x = dn[y];
            heur_fits(b, ex, tol, &x, ex);
            pick[x.f] = x.c;
            moved = 1;
            for (int q = 0; q < nd; q++)
                if (dn[q].f == x.f)
                    dn[q].f = -1;
            for (int q = 0; q < nu; q++)
                if (up[q].f == x.f)
                    up[q].f = -1;
            if (single.f == x.f)
                single.f = -1;
        }
        int feasible = 1;
        for (int k = 0; k < K; k++)
            feasible &= ex[k] <= tol[k];
        if (!feasible)
            break;
        /* improve: the best of the single move and the up/down pairs */
        for (;;) {
            double best = 0;
            int pu = -1, pd = -1;
            if (single.f >= 0 && heur_fits(b, ex, tol, &single, nex))
                best = single.dob;
            for (int x = 0; x < nu; x++) {
                if (up[x].f < 0)
                    continue;
                if (up[x].dob < best && heur_fits(b, ex, tol, &up[x], nex))
                    best = up[x].dob, pu = x, pd = -1;
                for (int y = 0; y < nd; y++) {
                    if (dn[y].f < 0 || up[x].f == dn[y].f ||
                        !(up[x].dob + dn[y].dob < best))
                        continue;
                    int fits = 1;
                    for (int k = 0; k < K && fits; k++)
                        fits = ex[k] + up[x].da[k] + dn[y].da[k] <=
                               dmax(ex[k], tol[k]);
                    if (fits)
                        best = up[x].dob + dn[y].dob, pu = x, pd = y;
                }
            }
            if (!(best < 0))
                break;
            bbmove mv[2];
            int nm = 0;
            if (pu < 0)
                mv[nm++] = single;
            else
                mv[nm++] = up[pu];
            if (pd >= 0)
                mv[nm++] = dn[pd];
            for (int q = 0; q < nm; q++) {
                heur_fits(b, ex, tol, &mv[q], ex);
                pick[mv[q].f] = mv[q].c;
                for (int z = 0; z < nd; z++)
                    if (dn[z].f == mv[q].f)
                        dn[z].f = -1;
                for (int z = 0; z < nu; z++)
                    if (up[z].f == mv[q].f)
                        up[z].f = -1;
                if (single.f == mv[q].f)
                    single.f = -1;
            }
            moved = 1;
        }
        if (!moved)
            break;
    }
    bb_try(b, pick);
}

/* ---- the tree: a pool of nodes, an open heap, the applied path ---- */

static int bb_node_less(const bb *b, int x, int y)
{
    const bbnode *a = &b->node[x], *c = &b->node[y];
    if (a->bound != c->bound)
        return a->bound < c->bound;
    if (a->depth != c->depth)
        return a->depth > c->depth;    /* deeper first: nearer a leaf */
    return x < y;
}

static int bb_open_push(bb *b, int id)
{
    if (b->nopen == b->cap_open) {
        int nc = 2 * b->cap_open + 64;
        int *o = realloc(b->open, (size_t)nc * sizeof *o);
        if (!o)
            return -1;
        b->open = o;
        b->cap_open = nc;
    }
    int i = b->nopen++;
    while (i > 0 && bb_node_less(b, id, b->open[(i - 1) / 2])) {
        b->open[i] = b->open[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    b->open[i] = id;
    return 0;
}

static int bb_open_pop(bb *b)
{
    int top = b->open[0], x = b->open[--b->nopen], i = 0, n = b->nopen;
    for (;;) {
        int l = 2 * i + 1, s = -1;
        if (l < n)
            s = l + 1 < n && bb_node_less(b, b->open[l + 1], b->open[l])
                    ? l + 1 : l;
        if (s < 0 || !bb_node_less(b, b->open[s], x))
            break;
        b->open[i] = b->open[s];
        i = s;
    }
    if (n)
        b->open[i] = x;
    return top;
}

/* A new node below parent (-1: the root) restricting f to mask. */
static int bb_newnode(bb *b, int parent, int f, unsigned mask, double bound,
                      const double *lam)
{
    if (b->nnode == b->cap_node) {
        int nc = 2 * b->cap_node + 64;
        bbnode *v = realloc(b->node, (size_t)nc * sizeof *v);
        if (!v)
            return -1;
        b->node = v;
        b->cap_node = nc;
    }
    int id = b->nnode++;
    bbnode *e = &b->node[id];
    e->parent = parent;
    e->depth = parent < 0 ? 0 : b->node[parent].depth + 1;
    e->f = f, e->mask = mask;
    e->fix0 = e->nfix = 0;
    e->bound = bound;
    memcpy(e->lam, lam, sizeof e->lam);
    return id;
}

/* Records a fixing of the node being processed (the last on the path) and
 * applies it. */
static int bb_addfix(bb *b, int id, int f, unsigned mask)
{
    if (b->nfixrec == b->cap_fixrec) {
        int nc = 2 * b->cap_fixrec + 256;
        bbfix *v = realloc(b->fixrec, (size_t)nc * sizeof *v);
        if (!v)
            return -1;
        b->fixrec = v;
        b->cap_fixrec = nc;
    }
    if (!b->node[id].nfix)
        b->node[id].fix0 = b->nfixrec;
    b->fixrec[b->nfixrec].f = f;
    b->fixrec[b->nfixrec++].mask = mask;
    b->node[id].nfix++;
    return bb_setmask(b, f, mask);
}

/* Makes the masks those of node id: undoes the applied path below its
 * deepest node shared with id's path, then applies id's path from there
 * (each node's branching change, then its recorded fixings). */
static int bb_goto(bb *b, int id)
{
    int d = b->node[id].depth;
    for (int x = id, e = d; x >= 0; x = b->node[x].parent, e--)
        b->tpath[e] = x;
    int c = 0;
    while (c < b->plen && c <= d && b->path[c] == b->tpath[c])
        c++;
    if (c < b->plen)
        bb_undo(b, b->pundo[c]);
    b->plen = c;
    for (; c <= d; c++) {
        const bbnode *e = &b->node[b->tpath[c]];
        b->pundo[c] = b->nlog;
        b->path[c] = b->tpath[c];
        b->plen = c + 1;
        if (e->f >= 0 && bb_setmask(b, e->f, e->mask))
            return -1;
        for (int q = e->fix0; q < e->fix0 + e->nfix; q++)
            if (bb_setmask(b, b->fixrec[q].f, b->fixrec[q].mask))
                return -1;
    }
    return 0;
}

/* How far from the best open bound (as a share of the gap to U) a child
 * may be and still be explored at once rather than through the heap:
 * plunging finds leaves, hence incumbents, early and saves the switches of
 * path; best-first keeps the tree near the set of nodes any proof needs. */
#define BB_PLUNGE 0.5

/* Runs the search from lam (an optimal or good root dual) with the
 * incumbent inc (global indices, objective U) until the tree is closed,
 * the deadline passes or max_nodes are spent.  *closed: 1 when every node
 * was settled; *bound: the least bound of the nodes left open (or of
 * those pruned, when closed), true units. */
static int bb_run(bb *b, const double *lam0, const int *inc, double U,
                  double rel_gap, double deadline, long max_nodes,
                  int *closed, double *bound)
{
    const mk *m = b->m;
    const int K = b->K;
    if (inc) {
        memcpy(b->best, inc, (size_t)m->G * sizeof *b->best);
        b->U = U, b->Un = U * m->so, b->have = 1;
    }
    double lam[BB_MAXK] = {0};
    memcpy(lam, lam0, (size_t)K * sizeof *lam);
    double L0 = bb_pass(b, lam);
    b->eps = 1e-9 * (fabs(L0) + b->mag * 1e-3) + 1e-300;
    if (b->have && b->Un > L0)
        b->eps = fmin(b->eps, 1e-7 * (b->Un - L0));
    double pruned_min = INFINITY;
    int *pick = xcalloc((size_t)b->F, sizeof *pick);
    if (!pick)
        return bp_fail(BP_ENOMEM, "mckp: out of memory");
    *closed = 0;
    int rc = BP_OK, timed_out = 0;
    int next = bb_newnode(b, -1, -1, 0, -INFINITY, lam);
    if (next < 0) {
        free(pick);
        return bp_fail(BP_ENOMEM, "mckp: out of memory");
    }
#define BB_OOM()                                                              \
    do {                                                                      \
        rc = bp_fail(BP_ENOMEM, "mckp: out of memory");                       \
        goto end;                                                             \
    } while (0)
    for (long iter = 0;; iter++) {
        if (next < 0) {
            if (!b->nopen)
                break;
            next = bb_open_pop(b);
        }
        int id = next;
        next = -1;
        double thr = b->have ? b->Un - fmax(rel_gap, BB_TOL) * fabs(b->Un)
                             : INFINITY;
        if (b->node[id].bound >= thr) {
            pruned_min = fmin(pruned_min, b->node[id].bound);
            continue;
        }
        if (((iter & 7) == 0 && now_s() > deadline) ||
            b->nodes >= max_nodes) {
            timed_out = 1;
            if (bb_open_push(b, id))
                BB_OOM();
            break;
        }
        if (bb_goto(b, id))
            BB_OOM();
        b->nodes++;
        memcpy(lam, b->node[id].lam, sizeof lam);
        double norm;
        double L = bb_ascent(b, lam, thr, &norm, 40) - bb_margin(b);
        if (L >= thr) {
            pruned_min = fmin(pruned_min, L);
            continue;
        }
        b->node[id].bound = fmax(b->node[id].bound, L);
        /* an incumbent from the LP solution */
        bb_heur(b, lam, pick);
        thr = b->have ? b->Un - fmax(rel_gap, BB_TOL) * fabs(b->Un) : INFINITY;
        if (L >= thr) {
            pruned_min = fmin(pruned_min, L);
            continue;
        }
        /* reduced-cost fixing at the node: a choice whose reduced cost
         * takes the bound past thr leaves the subtree (the tied ones stay:
         * the LP's weights below refer to them) */
        if (b->have) {
            double room = thr - L;
            for (int i = b->nact - 1; i >= 0; i--) {
                int f = b->act[i];
                unsigned msk = b->mask[f], drop = 0;
                int o = b->fo[f];
                for (int c = 0; msk; c++, msk >>= 1) {
                    if (!(msk & 1))
                        continue;
                    double r = b->val[o + c] - b->vmin[f];
                    if (r > room && r > b->eps)
                        drop |= 1u << c;
                }
                if (drop && bb_addfix(b, id, f, b->mask[f] & ~drop))
                    BB_OOM();
            }
        }
        /* the LP's primal: weights of the tied groups; the fractional ones
         * are branched on */
        int bf = -1;
        double bfrac = 1e-9;
        for (int i = 0; i < b->ntied; i++) {
            int f = b->tied[i], o = b->fo[f], n = b->fo[f + 1] - o;
            double wmax = 0;
            for (int c = 0; c < n; c++)
                if (b->mask[f] >> c & 1 && b->w[o + c] > wmax)
                    wmax = b->w[o + c];
            if (1 - wmax > bfrac)
                bfrac = 1 - wmax, bf = f;
        }
        int cf[BB_CANDS], nc = 0;
        unsigned clow[BB_CANDS];
        if (bf < 0) {
            /* integral but not settled (rounding, or slack priced): split
             * the group whose choice is nearest to changing */
            double gbest = INFINITY;
            for (int i = 0; i < b->nact; i++) {
                int f = b->act[i];
                if (!(b->mask[f] & (b->mask[f] - 1)))
                    continue;          /* one choice left */
                int o = b->fo[f];
                double v2 = INFINITY;
                unsigned msk = b->mask[f];
                for (int c = 0; msk; c++, msk >>= 1)
                    if (msk & 1 && c != b->arg[f])
                        v2 = dmin(v2, b->val[o + c]);
                if (v2 - b->vmin[f] < gbest)
                    gbest = v2 - b->vmin[f], bf = f;
            }
            if (bf < 0) {
                /* a single assignment left: try it as it is */
                for (int q = 0; q < b->F; q++)
                    pick[q] = b->arg[q];
                bb_try(b, pick);
                continue;
            }
            cf[0] = bf;
            clow[nc++] = 1u << b->arg[bf];
        } else {
            /* strong branching candidates: each fractional group's split
             * between its LP choices (low keeps positions <= s) */
            for (int i = 0; i < b->ntied && nc < BB_CANDS; i++) {
                int f = b->tied[i], o = b->fo[f], n = b->fo[f + 1] - o;
                int first = -1, last = -1, sp = -1;
                for (int c = 0; c < n; c++)
                    if (b->mask[f] >> c & 1 && b->w[o + c] > 1e-9) {
                        if (first < 0)
                            first = c;
                        last = c;
                    }
                if (first == last)
                    continue;          /* integral in this group */
                double acc = 0, wl = 0;
                for (int c = first; c < last; c++) {
                    if (!(b->mask[f] >> c & 1))
                        continue;
                    acc += b->w[o + c];
                    if (sp < 0 || fabs(acc - 0.5) < fabs(wl - 0.5))
                        sp = c, wl = acc;
                }
                cf[nc] = f;
                clow[nc++] = b->mask[f] &
                             (sp >= 31 ? 0xffffffffu : (2u << sp) - 1);
            }
            if (nc == 0) {             /* bf's weights were below 1e-9 */
                cf[0] = bf;
                unsigned msk = b->mask[bf];
                clow[nc++] = msk & (msk - 1) ? msk & -msk : msk;
            }
        }
        /* each candidate's two children get their bounds; the split whose
         * worse child has the higher bound wins (with one candidate, the
         * children's bounds still decide what is pushed) */
        int bi = -1;
        double bscore = -INFINITY, bL[2] = {0}, blam[2][BB_MAXK];
        for (int i = 0; i < nc && bscore < INFINITY; i++) {
            int f = cf[i];
            unsigned side[2] = {clow[i], b->mask[f] & ~clow[i]};
            double Ls[2], ls[2][BB_MAXK];
            for (int q = 0; q < 2; q++) {
                unsigned keep_m = b->mask[f];
                b->mask[f] = side[q];
                memcpy(ls[q], lam, sizeof ls[q]);
                double nn;
                Ls[q] = bb_ascent(b, ls[q], thr, &nn, BB_SB_ITERS) -
                        bb_margin(b);
                b->mask[f] = keep_m;
            }
            double sc = fmin(Ls[0], Ls[1]) + 1e-3 * fmax(Ls[0], Ls[1]);
            if (Ls[0] >= thr && Ls[1] >= thr)
                sc = INFINITY;
            if (sc > bscore) {
                bscore = sc, bi = i;
                bL[0] = Ls[0], bL[1] = Ls[1];
                memcpy(blam, ls, sizeof blam);
            }
        }
        b->nodes += 2 * nc;
        int f = cf[bi], kid[2] = {-1, -1};
        unsigned side[2] = {clow[bi], b->mask[f] & ~clow[bi]};
        for (int q = 0; q < 2; q++) {
            if (bL[q] >= thr) {
                pruned_min = fmin(pruned_min, bL[q]);
                continue;
            }
            if ((kid[q] = bb_newnode(b, id, f, side[q], bL[q], blam[q])) < 0)
                BB_OOM();
        }
        /* plunge into the lower child when it is near the best open bound */
        int first = kid[0] < 0 ? 1
                    : kid[1] < 0 ? 0
                    : bb_node_less(b, kid[0], kid[1]) ? 0 : 1;
        if (kid[first] >= 0) {
            double best = b->nopen ? b->node[b->open[0]].bound
                                   : b->node[kid[first]].bound;
            if (b->node[kid[first]].bound <= best + BB_PLUNGE * (thr - best))
                next = kid[first];
            else if (bb_open_push(b, kid[first]))
                BB_OOM();
        }
        if (kid[1 - first] >= 0 && bb_open_push(b, kid[1 - first]))
            BB_OOM();
    }
end:
#undef BB_OOM
    free(pick);
    if (rc)
        return rc;
    /* the optimum is at least the least bound of the pruned nodes and, when
     * the search stopped, of the nodes still open */
    double lo = pruned_min;
    if (timed_out)
        for (int i = 0; i < b->nopen; i++)
            lo = fmin(lo, b->node[b->open[i]].bound);
    *closed = !timed_out;
    *bound = lo / m->so;
    if (m->verbose)
        fprintf(stderr, "mckp: B&B on %d groups / %d choices: %ld nodes, %s, "
                "U = %.12g, bound %.12g\n", b->F, b->nc, b->nodes,
                *closed ? "closed" : "stopped", b->U, *bound);
    return BP_OK;
}

/* The LP relaxation's dual by step 5a's ascent at the root, over every
 * candidate: lam (K) in: a warm start, out: the maximiser found (any lambda
 * >= 0 gives a valid bound, so this decides tightness only).  Returns
 * BP_OK; BP_EUNSUPPORTED when our branch and bound does not apply or the
 * ascent found L unbounded (the LP looks infeasible: GLPK's simplex, in
 * band_lp, decides that); BP_ENOMEM. */
static int root_ascent(const mk *m, double *lam)
{
    const int G = m->G, K = m->K;
    unsigned char *keep = xcalloc((size_t)m->N, 1);
    int *fix = xcalloc((size_t)G, sizeof *fix);
    if (!keep || !fix) {
        free(keep), free(fix);
        return bp_fail(BP_ENOMEM, "mckp: out of memory");
    }
    for (int g = 0; g < G; g++) {
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++)
            keep[m->cand[i]] = 1;
        fix[g] = m->cand[m->cfirst[g]];
    }
    bb b;
    int rc = bb_init(&b, m, keep, fix);
    if (!rc) {
        double l[BB_MAXK] = {0}, norm;
        memcpy(l, lam, (size_t)K * sizeof *l);
        double L0 = bb_pass(&b, l);
        b.eps = 1e-9 * (fabs(L0) + b.mag * 1e-3) + 1e-300;
        /* an LP without a feasible point has L growing without end along
         * a ray; the ascent may only zigzag towards it, so anything but a
         * converged maximiser (|d|^2 ~ 0, relative to the caps' size;
         * 1e-27 and less seen) goes to GLPK */
        double Lr = bb_ascent(&b, l, INFINITY, &norm, 500), scale = 1;
        for (int k = 0; k < K; k++)
            scale += m->capn[k] * m->capn[k];
        if (isinf(Lr) || !(norm <= 1e-20 * scale))
            rc = BP_EUNSUPPORTED;
        else
            memcpy(lam, l, (size_t)K * sizeof *l);
        if (m->verbose)
            fprintf(stderr, "mckp: root ascent: L %.12g, |d|^2 %.3g\n",
                    Lr / m->so, norm);
    }
    bb_free(&b);
    free(keep), free(fix);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the driver                                                               */

/* Groups in the core problem: the bench's instances gain little past 48 and
 * GLPK's time grows quickly with it. */
#define CORE_GROUPS 48

/* Nodes our branch and bound may spend, without a time limit, before GLPK
 * takes over. */
#define BB_NODES 2000000L

/* The core when our branch and bound solves it: groups, and the nodes it
 * may spend (measured on the bench's seeds: 16 groups too few to absorb the
 * LP's residual, 48 no better than 32 and dearer). */
#define BB_CORE 32
#define BB_CORE_NODES 20000L

int bp_mckp_solve(const bp_mckp *p, const bp_mckp_opts *o, bp_mckp_result *r)
{
    double t0 = now_s();
    bp_mckp_opts dflt;
    if (!o) {
        bp_mckp_opts_default(&dflt);
        o = &dflt;
    }
    int n, rc = check_problem(p, &n);
    if (rc)
        return rc;
    if (!r)
        return bp_fail(BP_EINVAL, "mckp: no result given");
    if (isnan(o->rel_gap) || o->rel_gap < 0 || isnan(o->time_limit_s) ||
        o->core_groups < 0 || o->method < BP_MCKP_AUTO ||
        o->method > BP_MCKP_GLPK)
        return bp_fail(BP_EINVAL, "mckp: rel_gap %g, time_limit_s %g, "
                       "core_groups %d, method %d: rel_gap >= 0, "
                       "core_groups >= 0 and a known method expected",
                       o->rel_gap, o->time_limit_s, o->core_groups,
                       o->method);
    const int ncore = o->core_groups ? o->core_groups : CORE_GROUPS;
    mk m;
    int *sel = NULL, *arg = NULL, *tmp = NULL;
    unsigned char *keep = NULL, *core_keep = NULL;
    move *mv = NULL;
    bp_mckp_result res;
    memset(&res, 0, sizeof res);
    rc = mk_init(&m, p, n);
    if (rc)
        goto out;
    m.verbose = o->verbose;
    m.deadline = o->time_limit_s > 0 ? t0 + o->time_limit_s : INFINITY;
    const int G = m.G, K = m.K;
    sel = xcalloc((size_t)G, sizeof *sel);
    arg = xcalloc((size_t)G, sizeof *arg);
    tmp = xcalloc((size_t)G, sizeof *tmp);
    keep = xcalloc((size_t)n, 1);
    core_keep = xcalloc((size_t)n, 1);
    mv = xcalloc((size_t)G, sizeof *mv);
    res.choice = xcalloc((size_t)G, sizeof *res.choice);
    if (!sel || !arg || !tmp || !keep || !core_keep || !mv || !res.choice) {
        rc = bp_fail(BP_ENOMEM, "mckp: out of memory");
        goto out;
    }

    /* our branch and bound (step 5a) applies: up to BB_MAXK active budgets,
     * up to BB_MAXC undominated choices a group */
    int own_bb = o->method != BP_MCKP_GLPK && K >= 1 && K <= BB_MAXK;
    for (int g = 0; g < G && own_bb; g++)
        own_bb = m.cfirst[g + 1] - m.cfirst[g] <= BB_MAXC;

    /* step 2: lambda, the Lagrangian bound L and the LP's choices arg */
    double lam[BP_MCKP_MAX_BUDGETS] = {0}, pw[BP_MCKP_MAX_BUDGETS];
    int lp_rounds = 0, have_inc = 0;
    double U = INFINITY, tot[BP_MCKP_MAX_BUDGETS];
    if (K == 1) {
        if ((rc = hull_lambda(&m, lam)))
            goto out;
    } else if (K >= 2) {
        /* warm start: each budget's own optimal dual, shared out; a
         * feasible assignment from there; a few subgradient steps */
        for (int k = 0; k < K; k++) {
            mk one = m;
            one.K = 1;
            one.bud[0] = m.bud[k];
            one.an = m.an + (size_t)k * (size_t)m.N;
            one.capn[0] = m.capn[k];
            one.sc[0] = m.sc[k];
            double l1;
            if ((rc = hull_lambda(&one, &l1)))
                goto out;
            lam[k] = l1 / K;
        }
        if (!own_bb) {
            /* GLPK's LP starts from a band around these duals */
            lagrangian(&m, lam, sel, NULL);
            prices(&m, lam, pw);
            have_inc = greedy(&m, pw, sel, mv);
            double target = 0;
            for (int g = 0; g < G && have_inc; g++)
                target += m.on[sel[g]];
            if (!have_inc)
                target = 2 * fabs(lagrangian(&m, lam, NULL, NULL)) + 1;
            subgradient(&m, target, lam, 60);
        }
        /* GLPK's tolerances are absolute: rescale the objective so that a
         * group's share of it is about 1 */
        double Lw = lagrangian(&m, lam, NULL, NULL);
        if (Lw > 0) {
            double f = G / Lw;
            for (int j = 0; j < n; j++)
                m.on[j] *= f;
            for (int k = 0; k < K; k++)
                lam[k] *= f;
            m.so *= f;
        }
        if (m.verbose)
            fprintf(stderr, "mckp: warm start done (%.3g ms)\n",
                    1e3 * (now_s() - t0));
        rc = own_bb ? root_ascent(&m, lam) : BP_EUNSUPPORTED;
        if (rc == BP_EUNSUPPORTED) {
            if (own_bb)
                subgradient(&m, 2 * fabs(lagrangian(&m, lam, NULL, NULL)) + 1,
                            lam, 60);
            rc = band_lp(&m, lam, have_inc ? sel : NULL, &lp_rounds);
        }
        if (rc)
            goto out;
    }
    double Ln = lagrangian(&m, lam, arg, NULL);
    double L = Ln / m.so;
    if (have_inc)
        eval_global(p, n, sel, &U, tot);
    if (m.verbose)
        fprintf(stderr, "mckp: %d groups, %d choices (%d undominated), %d "
                "active budgets; LP bound %.12g after %d LP rounds (%.3g ms)\n",
                G, n, m.cfirst[G], K, L, lp_rounds, 1e3 * (now_s() - t0));

    /* step 3: incumbent; greedy from the LP's choices, then the core */
    memcpy(tmp, arg, (size_t)G * sizeof *arg);
    prices(&m, lam, pw);
    if (greedy(&m, pw, tmp, mv)) {
        if (!own_bb)                   /* the core MIP starts from it */
            pair_search(&m, lam, tmp, mv, 48);
        double ot;
        eval_global(p, n, tmp, &ot, tot);
        if (!have_inc || ot < U) {
            memcpy(sel, tmp, (size_t)G * sizeof *sel);
            U = ot;
        }
        have_inc = 1;
    }
    if (m.verbose)
        fprintf(stderr, "mckp: greedy U = %.12g (%.3g ms)\n", U,
                1e3 * (now_s() - t0));
    /* with our branch and bound to follow, the core is solved by it too:
     * the BB_CORE groups (or core_groups) whose best move away from the LP
     * choice comes nearest to paying for itself are free, every other group
     * sits at its LP choice.  Its nodes visit those groups only, so they
     * are cheap, and its answer is often the optimum's neighbour (300 x 5
     * bench: 72 nodes to proof after it, 177 without).  Not with method
     * BP_MCKP_BB, which keeps the search alone for the tests */
    double gap_now = have_inc ? (U - L) / fmax(fabs(U), 1e-12) : INFINITY;
    if (own_bb && o->method == BP_MCKP_AUTO && have_inc &&
        gap_now > o->rel_gap) {
        int nco = o->core_groups ? o->core_groups : BB_CORE;
        rank_core(&m, lam, arg, mv);
        memset(core_keep, 0, (size_t)n);
        for (int g = 0; g < G; g++)
            core_keep[arg[g]] = 1;
        for (int i = 0; i < nco && i < G; i++)
            for (int q = m.cfirst[mv[i].g]; q < m.cfirst[mv[i].g + 1]; q++)
                core_keep[m.cand[q]] = 1;
        bb cb;
        if ((rc = bb_init(&cb, &m, core_keep, arg)) == BP_OK) {
            int cclosed;
            double cbound;
            rc = bb_run(&cb, lam, NULL, INFINITY, 0,
                        now_s() + 0.15 * (m.deadline - now_s()), BB_CORE_NODES,
                        &cclosed, &cbound);
            if (!rc && cb.have && cb.U < U) {
                memcpy(sel, cb.best, (size_t)G * sizeof *sel);
                U = cb.U;
            }
            if (m.verbose)
                fprintf(stderr, "mckp: core of %d groups by our branch and "
                        "bound: %ld nodes, U = %.12g (%.3g ms)\n", nco,
                        cb.nodes, U, 1e3 * (now_s() - t0));
        }
        bb_free(&cb);
        if (rc)
            goto out;
    }
    /* the core, twice for large problems: ncore groups anchored at
     * the LP's choices (or, if that has no answer, at the incumbent), then
     * 8 times as many anchored at the result, stopped at a true gap of 1e-5
     * (it only feeds the fixing).  The second is skipped when our branch and
     * bound follows (it finds better incumbents faster: 5000 x 6 bench,
     * 0.5 s to proof without it, 1.0 s with it); with method BP_MCKP_BB no
     * core runs at all */
    int core_closed = 0;
    if (K > 0 && gap_now > o->rel_gap && !own_bb) {
        rank_core(&m, lam, arg, mv);
        double left = m.deadline - now_s();
        double U0 = U;
        if ((rc = core_heuristic(&m, arg, mv, ncore, NULL, 0,
                                 now_s() + 0.15 * left, sel, &U, core_keep,
                                 &core_closed)))
            goto out;
        if (U < U0)
            have_inc = 1;
        else if (!core_closed && have_inc) {
            memcpy(tmp, sel, (size_t)G * sizeof *sel);
            if ((rc = core_heuristic(&m, tmp, mv, ncore, tmp, 0,
                                     now_s() + 0.15 * left, sel, &U, core_keep,
                                     &core_closed)))
                goto out;
        }
        if (have_inc && G > 16 * ncore && !out_of_time(&m) &&
            (o->method == BP_MCKP_GLPK || K > BB_MAXK)) {
            left = m.deadline - now_s();
            memcpy(tmp, sel, (size_t)G * sizeof *sel);
            if ((rc = core_heuristic(&m, tmp, mv, 8 * ncore, tmp,
                                     fmax(o->rel_gap, 1e-5),
                                     now_s() + 0.3 * left, sel, &U, core_keep,
                                     &core_closed)))
                goto out;
        }
    }
    if (have_inc) {
        eval_global(p, n, sel, &U, tot);
        if (!totals_fit(p, tot)) {     /* cannot happen: each was checked */
            rc = bp_fail(BP_EINTERNAL, "mckp: incumbent breaks a cap");
            goto out;
        }
    }
    if (K == 0)
        L = U;                         /* each group at its best is optimal */

    /* step 4: reduced-cost fixing.  For any lambda >= 0 and any assignment x
     * meeting the caps, obj(x) >= L(lambda) + r_c for each chosen c, with
     * r_c = on_c + lambda.an_c - min_{c' in g}(...) >= 0; a choice with
     * L + r_c > U only appears in assignments worse than U.  The margin
     * (1e-9 of the terms involved) covers rounding in L and r, so nothing
     * is dropped on a rounding error. */
    double bound = L;
    int proven = 0, rounds = 0, nfree = 0, ncols = 0, nodes = 0;
    long bb_nodes = 0;
    gap_now = have_inc ? (U - L) / fmax(fabs(U), 1e-12) : INFINITY;
    if (have_inc && gap_now <= o->rel_gap) {
        proven = U <= L ? 2 : 1;
        goto done;
    }
    double tau = INFINITY;
    if (have_inc) {
        double lc = 0;
        for (int k = 0; k < K; k++)
            lc += lam[k] * m.capn[k];
        double Un = U * m.so;
        tau = (Un - Ln) + 1e-9 * (fabs(Un) + lc) + 1e-300;
    }
    int in_core = core_closed, any_free = 0, nfg = 0, nfc = 0;
    for (int g = 0; g < G; g++) {
        double vmin = INFINITY;
        for (int i = m.cfirst[g]; i < m.cfirst[g + 1]; i++) {
            int j = m.cand[i];
            double v = m.on[j];
            for (int k = 0; k < K; k++)
                v += lam[k] * MK_AN(&m, k, j);
            vmin = fmin(vmin, v);
        }
        int cnt = 0;
        for (int i = m.cfirst[g]; i < m.cfirst[g + 1]; i++) {
            int j = m.cand[i];
            double v = m.on[j];
            for (int k = 0; k < K; k++)
                v += lam[k] * MK_AN(&m, k, j);
            keep[j] = v - vmin <= tau || (have_inc && j == sel[g]);
            cnt += keep[j];
            if (keep[j] && !core_keep[j])
                in_core = 0;
            if (keep[j] && !have_inc)
                tmp[g] = j;            /* the group's choice if it is fixed */
        }
        any_free |= cnt >= 2;
        if (cnt >= 2)
            nfg++, nfc += cnt - 1;
    }
    if (in_core) {
        /* every choice that could beat U was open to the core problem,
         * whose optimum GLPK proved: U is optimal */
        proven = 2;
        goto done;
    }
    if (!any_free) {
        if (!have_inc) {
            /* one choice left in every group and still no incumbent: that
             * assignment is the only candidate */
            eval_global(p, n, tmp, &U, tot);
            if (!totals_fit(p, tot)) {
                rc = bp_fail(BP_EINFEASIBLE, "no assignment meets all "
                             "budgets together");
                goto out;
            }
            memcpy(sel, tmp, (size_t)G * sizeof *sel);
            have_inc = 1;
        }
        proven = 2;
        goto done;
    }

    /* step 5a: our branch and bound on what fixing left */
    if (o->method != BP_MCKP_GLPK && K >= 1) {
        bb b;
        rc = bb_init(&b, &m, keep, have_inc ? sel : tmp);
        if (rc && rc != BP_EUNSUPPORTED) {
            bb_free(&b);
            goto out;
        }
        if (!rc) {
            int closed = 0;
            double bbound = -INFINITY;
            long cap = isfinite(m.deadline) || o->method == BP_MCKP_BB
                           ? LONG_MAX : BB_NODES;
            rc = bb_run(&b, lam, have_inc ? sel : NULL, U, o->rel_gap,
                        m.deadline, cap, &closed, &bbound);
            bb_nodes = b.nodes;
            nfree = b.F, ncols = b.nc - b.F;
            if (!rc && b.have && (!have_inc || b.U < U)) {
                memcpy(sel, b.best, (size_t)G * sizeof *sel);
                U = b.U;
                have_inc = 1;
            }
            bb_free(&b);
            if (rc)
                goto out;
            if (closed && !have_inc) {
                /* the LP of every node was infeasible or no node held an
                 * assignment meeting the caps; GLPK decides (rounding in
                 * our LP must not declare infeasibility) */
            } else if (closed) {
                /* proven to BB_TOL, as GLPK's proof is to its tol_obj */
                bound = fmax(bound, fmin(bbound, U));
                proven = o->rel_gap > 0 ? 1 : 2;
                goto done;
            } else if (have_inc && (isfinite(m.deadline) ||
                                    o->method == BP_MCKP_BB)) {
                bound = fmax(bound, fmin(bbound, U));
                goto done;
            }
        }
        rc = BP_OK;
    }

    /* step 5: GLPK on what fixing left; with a time limit, only when a
     * useful share of it is left (building and factorising a large MIP
     * cannot be interrupted) */
    if (isfinite(m.deadline) && have_inc &&
        m.deadline - now_s() < 0.1 * o->time_limit_s) {
        nfree = nfg, ncols = nfc;
        goto done;
    }
    {
        mipwork w;
        rc = solve_mip(&m, keep, have_inc ? sel : tmp, have_inc ? sel : NULL,
                       U, o->rel_gap, m.deadline, &w);
        if (rc) {
            mipwork_free(&w);
            goto out;
        }
        if (w.have) {
            double mo;
            eval_global(p, n, w.sel, &mo, tot);
            if (!have_inc || mo < U) {
                memcpy(sel, w.sel, (size_t)G * sizeof *sel);
                U = mo;
                have_inc = 1;
            }
        }
        /* optimum >= min(U at fixing, the MIP's bound) and >= L; a closed
         * search proves U itself */
        if (w.proven == 2)
            bound = U;
        else if (w.bound > -INFINITY)
            bound = fmax(bound, fmin(w.bound, U));
        proven = w.proven;
        rounds = w.rounds, nfree = w.nfree, ncols = w.nvars, nodes = w.nodes;
        mipwork_free(&w);
        if (!have_inc) {
            rc = proven == 2 ? bp_fail(BP_EINFEASIBLE, "no assignment meets "
                                       "all budgets together")
                             : bp_fail(BP_EINTERRUPTED, "time limit reached "
                                       "before an assignment meeting the "
                                       "budgets was found");
            goto out;
        }
    }
done:
    if (proven == 2)
        bound = U;
    bound = fmin(bound, U);
    for (int g = 0; g < G; g++)
        res.choice[g] = sel[g] - m.first[g];
    res.objective = U;
    res.bound = bound;
    res.gap = (U - bound) / fmax(fabs(U), 1e-12);
    res.optimal = proven || res.gap <= o->rel_gap;
    res.status = res.optimal ? "optimal" : "feasible";
    res.n_free_groups = nfree;
    res.n_free_choices = ncols;
    res.mip_rounds = rounds;
    res.bb_nodes = bb_nodes;
    res.seconds = now_s() - t0;
    if (m.verbose)
        fprintf(stderr, "mckp: %s, objective %.12g, bound %.12g; MIP on %d "
                "groups / %d columns, %d nodes; %.3g ms\n", res.status,
                res.objective, res.bound, nfree, ncols, nodes,
                1e3 * res.seconds);
    *r = res;
    res.choice = NULL;
out:
    mk_free(&m);
    free(sel), free(arg), free(tmp), free(keep), free(core_keep), free(mv),
        free(res.choice);
    return rc;
}
