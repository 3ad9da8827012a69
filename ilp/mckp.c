/* mckp.c - exact multiple-choice multi-dimensional knapsack for bit allocation.
 *
 * The solve runs in five steps, each exact in the sense that it never loses
 * an assignment better than the one finally returned:
 *   1. budgets that no assignment can break are dropped, one that none can
 *      meet is reported; per group, choices dominated by another (no cheaper
 *      in any budget, no smaller objective) are dropped;
 *   2. the LP relaxation: its dual is a K-dimensional concave function whose
 *      maximiser lambda gives the Lagrangian bound L(lambda) <= optimum.  For
 *      one budget the lower convex hulls of the groups give lambda exactly;
 *      for several, a subgradient warm start is polished by solving the LP
 *      with GLPK's simplex over a band of promising choices, priced out
 *      against all choices until no column has a negative reduced cost;
 *   3. an incumbent U from the Lagrangian assignment by greedy repair and
 *      greedy improvement;
 *   4. reduced-cost fixing: a choice whose Lagrangian reduced cost exceeds
 *      U - L cannot appear in any assignment better than U, and is removed;
 *      a group left with one choice is fixed;
 *   5. the remaining groups go to GLPK's branch and bound (presolve on).
 *      Every assignment GLPK returns is re-checked against the caps in exact
 *      double arithmetic; one that breaks a cap within GLPK's feasibility
 *      tolerance is excluded by a no-good row and the MIP solved again.
 *
 * GLPK is used here only.  Its aborts are caught with glp_error_hook and
 * longjmp (after which glp_free_env releases all of the thread's GLPK state),
 * its terminal output is off unless verbose, and its 1-based arrays are built
 * in glpk_build alone. */
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
        int bj = -1;
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
        sort_by_cost(m, v, len);      /* undominated: objective decreasing */
        int nh = 0;
        for (int i = 0; i < len; i++) {
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
    qsort(st, (size_t)ns, sizeof *st, cmp_step);
    double room = m->capn[0] - base;
    lam[0] = 0;
    for (int i = 0; i < ns; i++) {
        if (st[i].da > room) {
            lam[0] = fmax(0, -st[i].slope);
            break;
        }
        room -= st[i].da;
    }
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

/* The only place that speaks GLPK's 1-based indexing: row i of the model is
 * GLPK row i+1, column j is column j+1, and the triplet arrays handed to
 * glp_load_matrix carry an unused element 0.  Call inside a guard. */
static glp_prob *glpk_build(const model *d)
{
    glp_prob *lp = glp_create_prob();
    glp_set_obj_dir(lp, GLP_MIN);
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

/* Runs body(ctx) with GLPK's aborts caught and its terminal output off
 * (unless verbose): the one place that arms glp_error_hook.  An abort inside
 * GLPK longjmps back here, after which GLPK's state is unusable and
 * glp_free_env releases all of it (every GLPK object of this thread, the
 * body's included); the body keeps everything else in ctx, which its caller
 * frees.  Returns body's status, or BP_EINTERNAL naming what was solved. */
static int glpk_guarded(int verbose, int (*body)(void *), void *ctx,
                        const char *what)
{
    glpk_guard guard;
    int old_term = glp_term_out(verbose ? GLP_ON : GLP_OFF);
    if (setjmp(guard.env)) {
        glp_free_env();
        return bp_fail(BP_EINTERNAL, "mckp: GLPK aborted (internal error) "
                       "while solving %s", what);
    }
    glp_error_hook(glpk_abort_hook, &guard);
    int rc = body(ctx);
    glp_error_hook(NULL, NULL);
    glp_term_out(old_term);
    return rc;
}

typedef struct lpwork {
    const mk *m;
    double *lam;               /* (K) in: warm start, out: LP duals */
    unsigned char *band;       /* (N) choices in the LP */
    int *arg;                  /* (G) a group's single band choice */
    int *row_of;               /* (G) row of a free group, -1: single */
    double *mu;                /* (G) dual of a group's row */
    const double *r2;          /* (G) sorted gaps to each group's second
                                  best choice at the warm start */
    double *lam0;              /* (K) the warm start */
    const int *inc;            /* (G) a feasible assignment, or NULL */
    int want;                  /* groups given a second choice */
    model d;
    int rounds;
} lpwork;

/* The band at the warm start: every group's Lagrangian choice, plus the
 * choices within delta of it, delta set so that about w->want groups get a
 * second choice, plus the choices of a feasible assignment when there is
 * one (which keeps the LP over the band feasible). */
static void band_select(lpwork *w)
{
    const mk *m = w->m;
    double delta = w->r2[w->want - 1];
    for (int g = 0; g < m->G; g++) {
        double vmin = INFINITY;
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
            int j = m->cand[i];
            double v = m->on[j];
            for (int k = 0; k < m->K; k++)
                v += w->lam0[k] * MK_AN(m, k, j);
            vmin = fmin(vmin, v);
        }
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
            int j = m->cand[i];
            double v = m->on[j];
            for (int k = 0; k < m->K; k++)
                v += w->lam0[k] * MK_AN(m, k, j);
            if (v - vmin <= delta)
                w->band[j] = 1;
        }
        if (w->inc)
            w->band[w->inc[g]] = 1;
    }
}

/* The LP over the band (normalised units; F: groups with two or more band
 * choices, the others sit at their single band choice f_g):
 *   minimise   sum_{g in F} sum_{c in band_g} on_c x_c
 *   subject to sum_{c in band_g} x_c = 1                        g in F
 *              sum_{g in F} sum_c an_kc x_c <= capn_k - sum_{g not in F} an_k,f_g
 *              0 <= x_c <= 1
 * lambda_k is minus the dual of budget row k, mu_g the dual of row g. */
static int band_lp_body(void *ctx)
{
    lpwork *w = ctx;
    const mk *m = w->m;
    const int G = m->G, K = m->K;
    model *d = &w->d;
    for (w->rounds = 1; w->rounds <= 16; w->rounds++) {
        int nfree = 0, ncols = 0, rc;
        for (int g = 0; g < G; g++) {
            int cnt = 0;
            for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++)
                cnt += w->band[m->cand[i]];
            w->row_of[g] = cnt >= 2 ? nfree++ : -1;
            if (cnt >= 2)
                ncols += cnt;
        }
        model_free(d);
        if ((rc = model_alloc(d, nfree + K, ncols, ncols * (1 + K))))
            return rc;
        d->nrows = nfree + K;
        d->ncols = ncols;
        for (int k = 0; k < K; k++)
            d->rhs[nfree + k] = m->capn[k];
        int nc = 0;
        for (int g = 0; g < G; g++) {
            int row = w->row_of[g];
            if (row >= 0)
                d->eq[row] = 1, d->rhs[row] = 1;
            for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
                int j = m->cand[i];
                if (!w->band[j])
                    continue;
                if (row < 0) {          /* the group's single band choice */
                    w->arg[g] = j;
                    for (int k = 0; k < K; k++)
                        d->rhs[nfree + k] -= MK_AN(m, k, j);
                    continue;
                }
                d->obj[nc] = m->on[j];
                d->ri[d->nnz] = row, d->ci[d->nnz] = nc, d->v[d->nnz++] = 1;
                for (int k = 0; k < K; k++)
                    if (MK_AN(m, k, j) != 0)
                        d->ri[d->nnz] = nfree + k, d->ci[d->nnz] = nc,
                        d->v[d->nnz++] = MK_AN(m, k, j);
                nc++;
            }
        }
        glp_prob *lp = glpk_build(d);
        glp_smcp sm;
        glp_init_smcp(&sm);
        sm.msg_lev = m->verbose ? GLP_MSG_ERR : GLP_MSG_OFF;
        /* the duals feed bounds: ask for them tighter than the default */
        sm.tol_bnd = 1e-9;
        sm.tol_dj = 1e-9;
        glp_scale_prob(lp, GLP_SF_AUTO);
        glp_adv_basis(lp, 0);
        int src = glp_simplex(lp, &sm);
        int st = src == 0 ? glp_get_status(lp) : GLP_UNDEF;
        if (src != 0 || (st != GLP_OPT && st != GLP_NOFEAS)) {
            glp_delete_prob(lp);
            return bp_fail(BP_EINTERNAL, "mckp: GLPK's glp_simplex returned %s "
                           "(solution status %d) on the LP relaxation",
                           glpk_code_name(src), st);
        }
        if (st == GLP_NOFEAS) {
            /* the groups held at one choice leave no room: widen the band
             * fourfold, up to every choice */
            glp_delete_prob(lp);
            if (w->want == G)
                return bp_fail(BP_EINFEASIBLE, "no assignment meets all "
                               "budgets together (even the LP relaxation is "
                               "infeasible)");
            w->want = w->want > G / 4 ? G : 4 * w->want;
            band_select(w);
            continue;
        }
        for (int k = 0; k < K; k++)
            w->lam[k] = fmax(0, -glp_get_row_dual(lp, nfree + k + 1));
        if (getenv("MCKP_DBGLP")) {
            double fixedo = 0;
            for (int g = 0; g < G; g++) if (w->row_of[g] < 0) fixedo += m->on[w->arg[g]];
            fprintf(stderr, "DBG LP obj %.12g (+fixed %.12g = %.12g) L(lam) %.12g lam %g %g duals %g %g status %d\n",
                glp_get_obj_val(lp), fixedo, glp_get_obj_val(lp)+fixedo, lagrangian(m, w->lam, NULL, NULL),
                w->lam[0], w->lam[1], glp_get_row_dual(lp, nfree + 1), glp_get_row_dual(lp, nfree + 2), glp_get_status(lp));
        }
        for (int g = 0; g < G; g++)
            if (w->row_of[g] >= 0)
                w->mu[g] = glp_get_row_dual(lp, w->row_of[g] + 1);
        glp_delete_prob(lp);
        /* pricing: reduced cost on_c + lambda.an_c - mu_g of every choice
         * outside the band (a single group's mu is its choice's value) */
        int added = 0;
        for (int g = 0; g < G; g++) {
            double mg = w->mu[g];
            if (w->row_of[g] < 0) {
                mg = m->on[w->arg[g]];
                for (int k = 0; k < K; k++)
                    mg += w->lam[k] * MK_AN(m, k, w->arg[g]);
            }
            for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
                int j = m->cand[i];
                if (w->band[j])
                    continue;
                double dj = m->on[j] - mg;
                for (int k = 0; k < K; k++)
                    dj += w->lam[k] * MK_AN(m, k, j);
                if (dj < -1e-9) {
                    w->band[j] = 1;
                    added++;
                }
            }
        }
        if (m->verbose)
            fprintf(stderr, "mckp: LP round %d: %d free groups, %d columns, "
                    "%d priced in\n", w->rounds, nfree, nc, added);
        if (!added || out_of_time(m))
            break;
    }
    return BP_OK;
}

/* Solves the LP relaxation with GLPK's simplex over a band of choices, then
 * prices every other choice against the LP's duals and re-solves with those
 * of negative reduced cost, until none is left: lam ends as an optimal dual
 * of the full LP relaxation (within GLPK's tolerances; any lam >= 0 yields a
 * valid bound, so tolerances cost tightness, never correctness).  The band
 * starts as every group's Lagrangian choice at the warm start lam, plus the
 * choices within delta of it, delta set so that about 64 + G/16 groups get
 * a second choice; widened when that LP is infeasible. */
static int band_lp(const mk *m, double *lam, const int *inc, int *lp_rounds)
{
    const int G = m->G, K = m->K, N = m->N;
    int rc = BP_OK;
    lpwork w;
    memset(&w, 0, sizeof w);
    w.m = m;
    w.lam = lam;
    w.band = xcalloc((size_t)N, 1);
    w.arg = xcalloc((size_t)G, sizeof *w.arg);
    w.row_of = xcalloc((size_t)G, sizeof *w.row_of);
    w.mu = xcalloc((size_t)G, sizeof *w.mu);
    double *r2 = xcalloc((size_t)G, sizeof *r2);
    double lam0[BP_MCKP_MAX_BUDGETS];
    if (!w.band || !w.arg || !w.row_of || !w.mu || !r2) {
        rc = bp_fail(BP_ENOMEM, "mckp: out of memory");
        goto out;
    }
    lagrangian(m, lam, w.arg, NULL);
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
    qsort(r2, (size_t)G, sizeof *r2, cmp_double);
    w.r2 = r2;
    w.want = G < 64 + G / 16 ? G : 64 + G / 16;
    w.lam0 = lam0;
    w.inc = inc;
    memcpy(lam0, lam, (size_t)K * sizeof *lam);
    band_select(&w);
    rc = glpk_guarded(m->verbose, band_lp_body, &w, "the LP relaxation");
    *lp_rounds = w.rounds;
out:
    model_free(&w.d);
    free(w.band), free(w.arg), free(w.row_of), free(w.mu), free(r2);
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

typedef struct mipctx {
    double deadline;
    double scale;          /* GLPK objective = scale * (o - base) */
    double offset;         /* true objective = offset + GLPK objective / scale */
    double incumbent;      /* true objective of our incumbent (inf: none) */
    double rel_gap;
    double bound;          /* best GLPK bound seen, GLPK units (-inf: none) */
    int stopped;           /* the callback ended the search: 1 on time,
                              2 with the gap reached */
    const double *heur;    /* 1-based column values of our incumbent for
                              glp_ios_heur_sol, or NULL (needs presolve off:
                              with presolve on, the tree's columns are not
                              ours) */
    int nodes;
} mipctx;

static void mip_callback(glp_tree *T, void *info)
{
    mipctx *c = info;
    if (glp_ios_reason(T) == GLP_IHEUR && c->heur) {
        glp_ios_heur_sol(T, c->heur);
        c->heur = NULL;
    }
    if (glp_ios_reason(T) == GLP_ISELECT)
        c->nodes++;
    int p = glp_ios_best_node(T);
    if (p)
        c->bound = fmax(c->bound, glp_ios_node_bound(T, p));
    if (glp_ios_reason(T) != GLP_ISELECT && glp_ios_reason(T) != GLP_IBINGO)
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
    const int *inc;            /* (G) our incumbent, or NULL */
    int *row_of;               /* (G) row of a free group, -1: fixed */
    int *col_j;                /* (N) choice of each column */
    int *sel;                  /* (G) GLPK's assignment, global indices */
    int *goods;                /* (max_goods, nfree) answers excluded so far */
    int n_goods, max_goods;
    int nfree, ncols;
    double rhs[BP_MCKP_MAX_BUDGETS];
    double scale;              /* GLPK objective = scale * (o - base) */
    double offset;             /* sum of the bases and of fixed groups' o */
    double *base;              /* (G) min o over a free group's choices */
    double incumbent, rel_gap;
    model d;
    /* out */
    int have;                  /* sel holds an assignment meeting the caps */
    int proven;                /* 2: search closed, 1: rel_gap reached */
    int rounds;
    double bound;              /* true units; -inf: none */
} mipwork;

/* The integer program handed to GLPK, over the free groups F (two or more
 * choices S_g left after fixing; every other group g sits at its single
 * choice f_g):
 *
 *   minimise   sum_{g in F} sum_{c in S_g} s * (o_c - b_g) x_c
 *   subject to sum_{c in S_g} x_c = 1                         g in F
 *              sum_{g in F} sum_{c in S_g} a_kc x_c <= B_k - sum_{g not in F} a_k,f_g
 *                                                              k active
 *              sum_{g in F} x_{c_g^r} <= |F| - 1               r = 1..R
 *              x_c in {0, 1}
 *
 * with b_g = min_{c in S_g} o_c (a constant shift) and s a power of two that
 * brings the incumbent's shifted objective near 1e4, so that GLPK's absolute
 * tolerances sit far below 1e-9 of the objective.  The R no-good rows each
 * exclude one earlier answer c^r that broke a cap by less than GLPK's
 * feasibility tolerance.  Costs stay in the caller's units: the only scaling
 * of the constraints is GLPK's own. */
static int mip_body(void *ctx)
{
    mipwork *w = ctx;
    const mk *m = w->m;
    const bp_mckp *p = m->p;
    const int G = m->G, K = m->K, nfree = w->nfree;
    model *d = &w->d;
    for (w->rounds = 1;; w->rounds++) {
        int rc;
        model_free(d);
        if ((rc = model_alloc(d, nfree + K + w->n_goods, w->ncols,
                              w->ncols * (1 + K) + w->n_goods * nfree)))
            return rc;
        d->binary = 1;
        d->nrows = nfree + K + w->n_goods;
        d->ncols = w->ncols;
        int nc = 0;
        for (int g = 0; g < G; g++) {
            int row = w->row_of[g];
            if (row < 0)
                continue;
            d->eq[row] = 1, d->rhs[row] = 1;
            for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++) {
                int j = m->cand[i];
                if (!w->keep[j])
                    continue;
                d->obj[nc] = w->scale * (p->obj[j] - w->base[g]);
                d->ri[d->nnz] = row, d->ci[d->nnz] = nc, d->v[d->nnz++] = 1;
                for (int k = 0; k < K; k++)
                    if (MK_A(m, k, j) != 0)
                        d->ri[d->nnz] = nfree + k, d->ci[d->nnz] = nc,
                        d->v[d->nnz++] = MK_A(m, k, j);
                w->col_j[nc++] = j;
            }
        }
        for (int k = 0; k < K; k++)
            d->rhs[nfree + k] = w->rhs[k];
        for (int r = 0; r < w->n_goods; r++) {
            int row = nfree + K + r;
            const int *ex = w->goods + (size_t)r * nfree;
            d->rhs[row] = nfree - 1;
            for (int c = 0; c < nc; c++)
                if (ex[w->row_of[m->gof[w->col_j[c]]]] == w->col_j[c])
                    d->ri[d->nnz] = row, d->ci[d->nnz] = c, d->v[d->nnz++] = 1;
        }
        glp_prob *lp = glpk_build(d);
        mipctx cb = {m->deadline, w->scale, w->offset, w->incumbent,
                     w->rel_gap, -INFINITY, 0, NULL, 0};
        glp_iocp io;
        glp_init_iocp(&io);
        io.msg_lev = m->verbose ? GLP_MSG_ON : GLP_MSG_OFF;
        io.presolve = GLP_ON;
        io.mip_gap = w->rel_gap;
        io.tol_int = 1e-9;
        io.tol_obj = 1e-10;
        io.cb_func = mip_callback;
        io.cb_info = &cb;
        if (isfinite(m->deadline)) {
            double left = m->deadline - now_s();
            io.tm_lim = left <= 0 ? 1 : left > 2e6 ? INT_MAX
                                                   : (int)(left * 1e3) + 1;
        }
        if (getenv("MCKP_PRESOLVE")) io.presolve = atoi(getenv("MCKP_PRESOLVE"));
        if (getenv("MCKP_PP")) io.pp_tech = atoi(getenv("MCKP_PP"));
        if (getenv("MCKP_BR")) io.br_tech = atoi(getenv("MCKP_BR"));
        if (getenv("MCKP_BT")) io.bt_tech = atoi(getenv("MCKP_BT"));
        if (getenv("MCKP_SR")) io.sr_heur = atoi(getenv("MCKP_SR"));
        if (getenv("MCKP_COV")) io.cov_cuts = atoi(getenv("MCKP_COV"));
        if (getenv("MCKP_MIR")) io.mir_cuts = atoi(getenv("MCKP_MIR"));
        if (getenv("MCKP_GMI")) io.gmi_cuts = atoi(getenv("MCKP_GMI"));
        double *hx = NULL;
        if (!io.presolve) {
            glp_smcp sm; glp_init_smcp(&sm); sm.msg_lev = GLP_MSG_OFF;
            glp_scale_prob(lp, GLP_SF_AUTO); glp_adv_basis(lp, 0);
            glp_simplex(lp, &sm);
            if (w->inc && !getenv("MCKP_NOHEUR")) {
                hx = calloc((size_t)nc + 1, sizeof *hx);
                for (int c = 0; c < nc; c++)
                    hx[c + 1] = w->inc[m->gof[w->col_j[c]]] == w->col_j[c];
                cb.heur = hx;
            }
        }
        double tt0 = now_s();
        int irc = glp_intopt(lp, &io);
        if (getenv("MCKP_T")) fprintf(stderr, "intopt %.3f ms, %d nodes\n", 1e3*(now_s()-tt0), cb.nodes);
        free(hx);
        int mst = glp_mip_status(lp);
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
            fprintf(stderr, "mckp: MIP round %d: %d groups, %d columns: "
                    "glp_intopt %s, mip status %d\n", w->rounds, nfree, nc,
                    glpk_code_name(irc), mst);
        if (got) {
            for (int g = 0; g < G; g++)
                w->sel[g] = w->fixsel[g];
            for (int c = 0; c < nc; c++)
                if (glp_mip_col_val(lp, c + 1) > 0.5)
                    w->sel[m->gof[w->col_j[c]]] = w->col_j[c];
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
        if (w->n_goods == w->max_goods || out_of_time(m))
            return BP_OK;
        for (int g = 0; g < G; g++)
            if (w->row_of[g] >= 0)
                w->goods[(size_t)w->n_goods * nfree + w->row_of[g]] = w->sel[g];
        w->n_goods++;
    }
}

/* Solves the groups that fixing left free with GLPK's branch and bound (see
 * mip_body).  keep flags the choices left; a group with one left sits at
 * fixsel.  Fills w->sel / have / proven / bound / rounds. */
static int solve_mip(const mk *m, const unsigned char *keep, const int *fixsel,
                     double incumbent, double rel_gap, mipwork *w)
{
    const int G = m->G, K = m->K;
    const bp_mckp *p = m->p;
    memset(w, 0, sizeof *w);
    w->m = m;
    w->keep = keep;
    w->fixsel = fixsel;
    w->inc = isfinite(incumbent) ? fixsel : NULL;
    w->incumbent = incumbent;
    w->rel_gap = rel_gap;
    w->bound = -INFINITY;
    w->max_goods = 32;
    w->row_of = xcalloc((size_t)G, sizeof *w->row_of);
    w->col_j = xcalloc((size_t)m->N, sizeof *w->col_j);
    w->sel = xcalloc((size_t)G, sizeof *w->sel);
    w->base = xcalloc((size_t)G, sizeof *w->base);
    if (!w->row_of || !w->col_j || !w->sel || !w->base)
        return bp_fail(BP_ENOMEM, "mckp: out of memory");
    for (int k = 0; k < K; k++)
        w->rhs[k] = m->cap[k];
    for (int g = 0; g < G; g++) {
        int cnt = 0;
        w->base[g] = INFINITY;
        for (int i = m->cfirst[g]; i < m->cfirst[g + 1]; i++)
            if (keep[m->cand[i]])
                cnt++, w->base[g] = fmin(w->base[g], p->obj[m->cand[i]]);
        w->row_of[g] = cnt >= 2 ? w->nfree++ : -1;
        if (cnt >= 2) {
            w->ncols += cnt;
            w->offset += w->base[g];
        } else {
            w->offset += p->obj[fixsel[g]];
            for (int k = 0; k < K; k++)
                w->rhs[k] -= MK_A(m, k, fixsel[g]);
        }
    }
    w->goods = xcalloc((size_t)w->max_goods * (size_t)w->nfree,
                       sizeof *w->goods);
    if (!w->goods)
        return bp_fail(BP_ENOMEM, "mckp: out of memory");
    double span = isfinite(incumbent) ? incumbent - w->offset : 0;
    w->scale = span > 0 ? ldexp(1.0, 13 - ilogb(span)) : 1.0;
    return glpk_guarded(m->verbose, mip_body, w, "the allocation MIP");
}

static void mipwork_free(mipwork *w)
{
    model_free(&w->d);
    free(w->row_of), free(w->col_j), free(w->sel), free(w->goods),
        free(w->base);
}

/* ------------------------------------------------------------------------ */
/* the driver                                                               */

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
    if (isnan(o->rel_gap) || o->rel_gap < 0 || isnan(o->time_limit_s))
        return bp_fail(BP_EINVAL, "mckp: rel_gap %g / time_limit_s %g; "
                       "rel_gap >= 0 expected", o->rel_gap, o->time_limit_s);
    mk m;
    int *sel = NULL, *arg = NULL;
    unsigned char *keep = NULL;
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
    keep = xcalloc((size_t)n, 1);
    mv = xcalloc((size_t)G, sizeof *mv);
    res.choice = xcalloc((size_t)G, sizeof *res.choice);
    if (!sel || !arg || !keep || !mv || !res.choice) {
        rc = bp_fail(BP_ENOMEM, "mckp: out of memory");
        goto out;
    }

    /* step 2: lambda and the Lagrangian bound */
    double lam[BP_MCKP_MAX_BUDGETS] = {0}, pw[BP_MCKP_MAX_BUDGETS];
    int lp_rounds = 0, have_inc = 0;
    if (K == 1) {
        if ((rc = hull_lambda(&m, lam)))
            goto out;
    } else if (K >= 2) {
        /* warm start: each budget's own optimal dual, shared out, then a
         * feasible assignment from there and a few subgradient steps */
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
        lagrangian(&m, lam, sel, NULL);
        prices(&m, lam, pw);
        have_inc = greedy(&m, pw, sel, mv);
        double target = 0;
        if (have_inc)
            for (int g = 0; g < G; g++)
                target += m.on[sel[g]];
        else
            target = 2 * fabs(lagrangian(&m, lam, NULL, NULL)) + 1;
        subgradient(&m, target, lam, 60);
        /* GLPK's tolerances are absolute: rescale the objective so that a
         * group's share is about 1 */
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
            fprintf(stderr, "mckp: warm start L = %.12g, U = %.12g (%.3g ms)\n",
                    lagrangian(&m, lam, NULL, NULL) / m.so,
                    have_inc ? target / (m.so / (Lw > 0 ? G / Lw : 1)) : INFINITY,
                    1e3 * (now_s() - t0));
        if ((rc = band_lp(&m, lam, have_inc ? sel : NULL, &lp_rounds)))
            goto out;
    }
    double Ln = lagrangian(&m, lam, arg, NULL);

    /* step 3: incumbent from the Lagrangian assignment */
    int *cand_sel = xcalloc((size_t)G, sizeof *cand_sel);
    if (!cand_sel) {
        rc = bp_fail(BP_ENOMEM, "mckp: out of memory");
        goto out;
    }
    memcpy(cand_sel, arg, (size_t)G * sizeof *arg);
    if (getenv("MCKP_DBGX")) {
        double T0[BP_MCKP_MAX_BUDGETS], ox = 0; totals_active(&m, arg, T0);
        for (int g = 0; g < G; g++) ox += p->obj[arg[g]];
        fprintf(stderr, "DBGX x(lam*): obj %.12g  use/cap:", ox);
        for (int k = 0; k < K; k++) fprintf(stderr, " %.9f", T0[k] / m.cap[k]);
        fprintf(stderr, "  lam:"); for (int k = 0; k < K; k++) fprintf(stderr, " %g", lam[k]);
        fprintf(stderr, "\n");
        int cnt = 0;
        for (int g = 0; g < G; g++) {
            double v1 = INFINITY, v2 = INFINITY; int j1 = -1, j2 = -1;
            for (int i = m.cfirst[g]; i < m.cfirst[g + 1]; i++) {
                int j = m.cand[i]; double v = m.on[j];
                for (int k = 0; k < K; k++) v += lam[k] * MK_AN(&m, k, j);
                if (v < v1) v2 = v1, j2 = j1, v1 = v, j1 = j; else if (v < v2) v2 = v, j2 = j;
            }
            if (v2 - v1 < 1e-6 * fabs(v1) && cnt++ < 6)
                fprintf(stderr, "DBGX near-tie group %d: choices %d/%d obj %.6g/%.6g cost0 %.6g/%.6g cost1 %.6g/%.6g\n", g, j1 - m.first[g], j2 - m.first[g],
                    p->obj[j1], p->obj[j2], MK_A(&m,0,j1), MK_A(&m,0,j2), MK_A(&m,1,j1), MK_A(&m,1,j2));
        }
    }
    prices(&m, lam, pw);
    if (greedy(&m, pw, cand_sel, mv)) {
        pair_search(&m, lam, cand_sel, mv, 48);
        double oa = 0, ob = 0;
        for (int g = 0; g < G; g++)
            oa += m.on[cand_sel[g]], ob += have_inc ? m.on[sel[g]] : 0;
        if (!have_inc || oa < ob)
            memcpy(sel, cand_sel, (size_t)G * sizeof *sel);
        have_inc = 1;
    }
    free(cand_sel);
    if (getenv("MCKP_CORE") && K >= 1) {
        int ncore = atoi(getenv("MCKP_CORE"));
        /* core: groups with the closest two best values at lambda */
        for (int g = 0; g < G; g++) {
            double v1 = INFINITY, v2 = INFINITY;
            for (int i = m.cfirst[g]; i < m.cfirst[g + 1]; i++) {
                int j = m.cand[i];
                double v = m.on[j];
                for (int k = 0; k < K; k++) v += lam[k] * MK_AN(&m, k, j);
                if (v < v1) v2 = v1, v1 = v; else if (v < v2) v2 = v;
            }
            mv[g].key = v2 - v1, mv[g].g = g, mv[g].j = -1;
        }
        qsort(mv, (size_t)G, sizeof *mv, cmp_move);
        unsigned char *ck = calloc((size_t)n, 1);
        int *fs = malloc((size_t)G * sizeof *fs);
        for (int g = 0; g < G; g++) { fs[g] = sel[g]; ck[sel[g]] = 1; }
        for (int i = 0; i < ncore && i < G; i++) {
            int g = mv[i].g;
            for (int q = m.cfirst[g]; q < m.cfirst[g + 1]; q++) ck[m.cand[q]] = 1;
        }
        double tc = now_s();
        mipwork cw;
        int crc = solve_mip(&m, ck, fs, INFINITY, 0, &cw);
        double co, ct[BP_MCKP_MAX_BUDGETS];
        if (!crc && cw.have) {
            eval_global(p, n, cw.sel, &co, ct);
            fprintf(stderr, "CORE %d groups: obj %.12g (%.3g ms)\n", cw.nfree, co, 1e3*(now_s()-tc));
            double cu; eval_global(p, n, sel, &cu, ct);
            if (co < cu) memcpy(sel, cw.sel, (size_t)G * sizeof *sel);
        } else fprintf(stderr, "CORE failed %d\n", crc);
        mipwork_free(&cw);
        free(ck); free(fs);
    }
    double U = INFINITY, tot[BP_MCKP_MAX_BUDGETS];
    if (have_inc) {
        eval_global(p, n, sel, &U, tot);
        if (!totals_fit(p, tot)) {     /* cannot happen with the margin */
            have_inc = 0;
            U = INFINITY;
        }
    }
    double L = Ln / m.so;
    if (K == 0)
        L = U;                         /* the per-group minimum is optimal */
    if (m.verbose)
        fprintf(stderr, "mckp: %d groups, %d choices (%d undominated), %d "
                "active budgets; L = %.12g, U = %.12g (%.3g ms)\n", G, n,
                m.cfirst[G], K, L, U, 1e3 * (now_s() - t0));

    if (getenv("MCKP_DEBUG_OPT")) {
        double opt = atof(getenv("MCKP_DEBUG_OPT"));
        for (double f = 0.25; f <= 4.01; f *= 2) {
            double tau = (opt * m.so - Ln) * f;
            int fg = 0, fc = 0;
            for (int g = 0; g < G; g++) {
                double vmin = INFINITY;
                for (int i = m.cfirst[g]; i < m.cfirst[g + 1]; i++) {
                    int j = m.cand[i]; double v = m.on[j];
                    for (int k = 0; k < K; k++) v += lam[k] * MK_AN(&m, k, j);
                    vmin = fmin(vmin, v);
                }
                int cnt = 0;
                for (int i = m.cfirst[g]; i < m.cfirst[g + 1]; i++) {
                    int j = m.cand[i]; double v = m.on[j];
                    for (int k = 0; k < K; k++) v += lam[k] * MK_AN(&m, k, j);
                    cnt += v - vmin <= tau;
                }
                if (cnt >= 2) fg++, fc += cnt;
            }
            fprintf(stderr, "DEBUG tau = %.2f x (opt-L): %d free groups, %d cols\n", f, fg, fc);
        }
    }
    /* step 4: reduced-cost fixing.  For any lambda >= 0 and any assignment x
     * meeting the caps, obj(x) >= L(lambda) + r_c for each chosen c, with
     * r_c = on_c + lambda.an_c - min_{c' in g}(...) >= 0; a choice with
     * L + r_c > U can only be in assignments worse than U.  The margin covers
     * rounding in L and r, so nothing is dropped on a rounding error. */
    double bound = L;
    int proven = 0, rounds = 0, nfree = 0, ncols = 0;
    double gap_now = have_inc ? (U - L) / fmax(fabs(U), 1e-12) : INFINITY;
    if (have_inc && gap_now <= o->rel_gap) {
        proven = U == L ? 2 : 1;
    } else {
        double tau = INFINITY;
        if (have_inc) {
            double lc = 0;
            for (int k = 0; k < K; k++)
                lc += lam[k] * m.capn[k];
            double Un = U * m.so;
            if (getenv("MCKP_FORCE_U")) Un = atof(getenv("MCKP_FORCE_U")) * m.so;
            tau = (Un - Ln) + 1e-9 * (fabs(Un) + lc) + 1e-300;
        }
        for (int g = 0; g < G; g++) {
            double vmin = INFINITY;
            for (int i = m.cfirst[g]; i < m.cfirst[g + 1]; i++) {
                int j = m.cand[i];
                double v = m.on[j];
                for (int k = 0; k < K; k++)
                    v += lam[k] * MK_AN(&m, k, j);
                vmin = fmin(vmin, v);
            }
            for (int i = m.cfirst[g]; i < m.cfirst[g + 1]; i++) {
                int j = m.cand[i];
                double v = m.on[j];
                for (int k = 0; k < K; k++)
                    v += lam[k] * MK_AN(&m, k, j);
                keep[j] = v - vmin <= tau || (have_inc && j == sel[g]);
            }
        }
        /* a group with one choice left sits there (with an incumbent, that
         * is the incumbent's choice) */
        for (int g = 0; g < G; g++)
            for (int i = m.cfirst[g]; i < m.cfirst[g + 1]; i++)
                if (keep[m.cand[i]] && !have_inc)
                    sel[g] = m.cand[i];
        int any_free = 0;
        for (int g = 0; g < G && !any_free; g++) {
            int cnt = 0;
            for (int i = m.cfirst[g]; i < m.cfirst[g + 1]; i++)
                cnt += keep[m.cand[i]];
            any_free = cnt >= 2;
        }
        if (getenv("MCKP_NOMIP")) any_free = 0;
        if (!any_free) {
            if (!have_inc) {
                /* every group down to one choice and still no incumbent:
                 * that single assignment is the only candidate */
                eval_global(p, n, sel, &U, tot);
                if (!totals_fit(p, tot)) {
                    rc = bp_fail(BP_EINFEASIBLE, "no assignment meets all "
                                 "budgets together");
                    goto out;
                }
                have_inc = 1;
            }
            proven = 2;
        } else {
            /* step 5 */
            mipwork w;
            int mrc = solve_mip(&m, keep, sel, U, o->rel_gap, &w);
            if (mrc) {
                mipwork_free(&w);
                rc = mrc;
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
            int mproven = w.proven;
            double mb = w.bound;
            rounds = w.rounds, nfree = w.nfree, ncols = w.ncols;
            mipwork_free(&w);
            /* optimum >= min(U at fixing, MIP bound) and >= L; a closed
             * search proves U itself */
            if (mproven == 2)
                bound = U;
            else if (mb > -INFINITY)
                bound = fmax(bound, fmin(mb, U));
            proven = mproven;
            if (!have_inc) {
                rc = mproven ? bp_fail(BP_EINFEASIBLE, "no assignment meets "
                                       "all budgets together")
                             : bp_fail(BP_EINTERRUPTED, "time limit reached "
                                       "before an assignment meeting the "
                                       "budgets was found");
                goto out;
            }
        }
    }
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
    res.seconds = now_s() - t0;
    if (m.verbose)
        fprintf(stderr, "mckp: %s, objective %.12g, bound %.12g, %d LP "
                "rounds, MIP on %d groups / %d columns, %.3g ms\n", res.status,
                res.objective, res.bound, lp_rounds, nfree, ncols,
                1e3 * res.seconds);
    *r = res;
    res.choice = NULL;
out:
    mk_free(&m);
    free(sel), free(arg), free(keep), free(mv), free(res.choice);
    return rc;
}
