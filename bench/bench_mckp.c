/* bench_mckp.c - how fast ilp/mckp solves bit allocations, and against what.
 *
 * Builds seeded bit-allocation instances shaped like real ones (layer sizes
 * log-uniform in 1e3..1e6 parameters; candidate bit-widths from 2..8; a size
 * budget numel*bits/8 bytes and a latency budget from a roofline model that
 * is not proportional to size; HAWQ objective trace/numel * ||Q_b(W)-W||^2,
 * which falls about 4x per added bit; both caps 45% of the way from the
 * least to the most reachable total, which makes both bind at the optimum),
 * and solves each (a) under a time limit (1 s; repeated, median time),
 * (b) to proven optimality, printing the time, the final relative gap and
 * whether optimality was proved.  Each instance is also written to a text
 * file (format in write_instance) and, when `/usr/bin/python3 -c 'import
 * pulp'` works, solved by bench/pulp_mckp.py through PuLP + CBC with
 * gapRel=0 (HAWQ-V3's route) under a time limit (300 s), for the objectives
 * and the time ratio.  A benchmark, not a test: it prints figures and fails
 * only when a solve fails or an answer breaks a cap.
 *
 * Notes from measuring (2-core shared machine, load 3-5):
 *  - GLPK settings for the final MIP (median of 3; 300 groups to proof,
 *    5000 groups gap after 6 s): presolve off with our incumbent (the
 *    default) 79 ms / 3.5e-6; presolve on (no incumbent possible) 268 ms /
 *    4.9e-5; hybrid pseudocost branching 300 ms / 4.6e-6; node
 *    preprocessing on 152 ms / 5.1e-6; best-projection backtracking
 *    211 ms / 4.4e-5.
 *  - Our branch and bound (ilp/mckp.c step 5a) against GLPK's for the final
 *    search, when it was depth first (load 2-3, exact solves): 300 x 5:
 *    15-29 ms (104 nodes) against 33-69 ms; 5000 x 6: 0.47-0.68 s (~19k
 *    nodes) against ~27 s (GLPK: 2204 selections).
 *  - Since the search went best-first with a node heuristic and the LP,
 *    the core and the search all run without GLPK (quiet machine, median
 *    of 9; instructions from callgrind, which repeat under load): 300 x 5:
 *    22 ms -> 2.2 ms (11 M instructions: root LP and greedy ~2.5 M, the
 *    32-group core ~3.7 M, 72 nodes ~5 M); 5000 x 6: 0.64 s -> 0.07-0.10 s
 *    (2.3k nodes; root LP 6 ms).  Where the time went before: GLPK's core
 *    MIP (two thirds of 300 x 5), coordinate descent for the least-norm
 *    direction (56 sweeps a call between nearly parallel groups; Wolfe's
 *    algorithm takes 2-3 steps), the exact check of every candidate
 *    assignment (O(G), now after a check in normalised units), qsort in the
 *    one-budget dual (now a weighted quickselect), and depth-first order
 *    with a weak incumbent: seeded with the optimum, 5000 x 6 closed in
 *    ~1.6k nodes against 19k; best-first reaches 2.3k without it.  Strong
 *    branching stays: pure best-first on one candidate met plateaus of
 *    equal bounds (475k nodes on 300 x 5).
 *  - Robustness (--seed-offset 0..2, --tight 0.45/0.45, 0.3/0.6, 0.6/0.3,
 *    0.2/0.2, 0.8/0.8; min of 3): 300 x 5 0.6-10 ms, 5000 x 6 10-300 ms,
 *    all proven optimal (the slowest, 60%/30% seed +2: 3.7k nodes, the
 *    optimum found at the last one).
 *  - The sensitivity spread matters: --spread 1e-2,1,1e-4,1e-2 (4 decades
 *    instead of 7) gives a 5000-group LP gap of ~1e-5 instead of ~6e-5.
 *
 * usage: bench_mckp [--time-limit S] [--exact-limit S] [--repeat N]
 *                   [--rel-gap G] [--method auto|bb|glpk]
 *                   [--spread TR_LO,TR_HI,S2_LO,S2_HI] [--no-pulp]
 *                   [--pulp-time-limit S] [--script PATH] [--dir DIR]
 *                   [--seed-offset D] [--tight F_SIZE,F_LAT] [--only G]
 *                   [--verbose]
 * --seed-offset adds D to both instances' seeds (11 and 12), --tight sets
 * where the caps sit between the least and the most reachable totals
 * (default 0.45,0.45), --only runs the instance with G groups alone: the
 * robustness table and profiling (valgrind --tool=callgrind). */
#include "benchutil.h"
#include "mckp.h"
#include "status.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- deterministic random numbers (splitmix64) ---- */
static uint64_t rng_state;
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double unif(void) { return (double)(rng_next() >> 11) * 0x1.0p-53; }
static double log_unif(double lo, double hi)
{
    return exp(log(lo) + unif() * (log(hi) - log(lo)));
}
static double gauss(void)
{
    double u = unif(), v = unif();
    return sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

typedef struct instance {
    int G, C, K;
    int *nc;           /* (G) */
    double *obj;       /* (G*C) */
    double *cost;      /* (K, G*C): size bytes, latency seconds */
    double cap[2];
    bp_mckp p;
} instance;

static void instance_free(instance *in)
{
    free(in->nc), free(in->obj), free(in->cost);
}

/* Bits per choice, and the roofline: a b-bit layer runs on the narrowest
 * kernel that holds b bits (2, 4 or 8), whose peak doubles as it halves. */
static const int bits5[] = {2, 3, 4, 6, 8}, bits6[] = {2, 3, 4, 5, 6, 8};

static double kernel_peak(int b)
{
    double p8 = 4e12;              /* int8 MAC/s */
    return b <= 2 ? 4 * p8 : b <= 4 ? 2 * p8 : p8;
}

static double tr_lo = 1e-3, tr_hi = 1e1, s2_lo = 1e-5, s2_hi = 1e-2;

static void make_instance(instance *in, int G, int C, uint64_t seed,
                          double f_size, double f_lat)
{
    const int *bits = C == 5 ? bits5 : bits6;
    rng_state = seed;
    in->G = G, in->C = C, in->K = 2;
    int N = G * C;
    in->nc = malloc((size_t)G * sizeof *in->nc);
    in->obj = malloc((size_t)N * sizeof *in->obj);
    in->cost = malloc(2 * (size_t)N * sizeof *in->cost);
    const double bw = 100e9, overhead = 2e-6;
    for (int g = 0; g < G; g++) {
        in->nc[g] = C;
        double numel = floor(log_unif(1e3, 1e6));
        double trace = numel * log_unif(tr_lo, tr_hi);   /* Tr(H) */
        double sigma2 = log_unif(s2_lo, s2_hi);          /* weight variance */
        double reuse = floor(log_unif(1, 3000));      /* output positions */
        double act_bytes = 2 * reuse * sqrt(numel);   /* int8 in + out */
        for (int c = 0; c < C; c++) {
            int b = bits[c], j = g * C + c;
            double levels = ldexp(1.0, b) - 1;
            /* ||Q_b(W)-W||^2 for a uniform quantizer over +-3 sigma */
            double pert = numel * 36 * sigma2 / (12 * levels * levels);
            in->obj[j] = trace / numel * pert * exp(0.1 * gauss());
            double bytes = numel * b / 8;
            in->cost[j] = bytes;
            in->cost[N + j] = overhead + fmax(2 * numel * reuse / kernel_peak(b),
                                              (bytes + act_bytes) / bw);
        }
    }
    in->p.n_groups = G;
    in->p.n_choices = in->nc;
    in->p.obj = in->obj;
    in->p.n_budgets = 2;
    in->p.cost = in->cost;
    in->p.cap = in->cap;
    double lo, hi;
    in->cap[0] = in->cap[1] = INFINITY;
    bp_mckp_cost_range(&in->p, 0, &lo, &hi);
    in->cap[0] = lo + f_size * (hi - lo);
    bp_mckp_cost_range(&in->p, 1, &lo, &hi);
    in->cap[1] = lo + f_lat * (hi - lo);
}

/* Text format, every number in %.17g (exact round trip):
 *   line 1: "bitplan-mckp 1"
 *   line 2: G K
 *   line 3: the K caps
 *   then one line per group: C, then C times (obj cost_0 .. cost_{K-1}) */
static int write_instance(const instance *in, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int N = in->G * in->C;
    fprintf(f, "bitplan-mckp 1\n%d %d\n", in->G, in->K);
    for (int k = 0; k < in->K; k++)
        fprintf(f, "%.17g%c", in->cap[k], k + 1 < in->K ? ' ' : '\n');
    for (int g = 0; g < in->G; g++) {
        fprintf(f, "%d", in->nc[g]);
        for (int c = 0; c < in->nc[g]; c++) {
            int j = g * in->C + c;
            fprintf(f, " %.17g", in->obj[j]);
            for (int k = 0; k < in->K; k++)
                fprintf(f, " %.17g", in->cost[(size_t)k * N + j]);
        }
        fputc('\n', f);
    }
    return fclose(f) ? -1 : 0;
}

/* Runs the PuLP script on path; fills objective, seconds and status. */
static int run_pulp(const char *script, const char *path, double tlim,
                    double *obj, double *secs, char *status, size_t len)
{
    char cmd[9000];
    if (snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' --time-limit %g",
                 script, path, tlim) >= (int)sizeof cmd)
        return -1;
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char line[512];
    int ok = 0;
    while (fgets(line, sizeof line, f)) {
        char st[64];
        if (sscanf(line, "pulp objective %lf seconds %lf status %63s", obj,
                   secs, st) == 3) {
            snprintf(status, len, "%s", st);
            ok = 1;
        }
    }
    int w = pclose(f);
    return ok && w == 0 ? 0 : -1;
}

/* One solve of in under o: wall time into *secs; prints a failure. */
static int solve_once(const instance *in, const bp_mckp_opts *o,
                      bp_mckp_result *r, double *secs)
{
    double t = bp_bench_now();
    int rc = bp_mckp_solve(&in->p, o, r);
    *secs = bp_bench_now() - t;
    if (rc)
        printf("   bitplan: FAILED: %s: %s\n", bp_status_str(rc), bp_errmsg());
    return rc;
}

/* The result line: objective, bound, gap, proof, and whether the caps hold
 * exactly (they must). */
static int print_result(const instance *in, const bp_mckp_result *r)
{
    double tot[2], obj;
    int feas;
    bp_mckp_eval(&in->p, r->choice, &obj, tot, &feas);
    printf("objective %.12g  bound %.12g  gap %.2e  %s\n", r->objective,
           r->bound, r->gap, r->optimal ? "PROVEN OPTIMAL" : "not proven");
    printf("            after fixing: %d groups, %d columns; B&B %ld nodes, "
           "GLPK %d round(s); caps met exactly: %s (slack: size %.3g B, "
           "latency %.3g s)\n",
           r->n_free_groups, r->n_free_choices, r->bb_nodes, r->mip_rounds,
           feas ? "yes" : "NO", in->cap[0] - tot[0], in->cap[1] - tot[1]);
    return feas ? 0 : 1;
}

int main(int argc, char **argv)
{
    int use_pulp = 1, repeat = 5, verbose = 0, method = BP_MCKP_AUTO;
    int only = 0;
    uint64_t seed_off = 0;
    double f_size = 0.45, f_lat = 0.45;
    double pulp_tlim = 300, tlim = 1, exact_tlim = 300, rel_gap = 0;
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    const char *script = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-pulp"))
            use_pulp = 0;
        else if (!strcmp(argv[i], "--pulp-time-limit") && i + 1 < argc)
            pulp_tlim = atof(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--time-limit") && i + 1 < argc)
            tlim = atof(argv[++i]);
        else if (!strcmp(argv[i], "--rel-gap") && i + 1 < argc)
            rel_gap = atof(argv[++i]);
        else if (!strcmp(argv[i], "--method") && i + 1 < argc) {
            i++;
            method = !strcmp(argv[i], "bb") ? BP_MCKP_BB
                     : !strcmp(argv[i], "glpk") ? BP_MCKP_GLPK
                                                : BP_MCKP_AUTO;
        } else if (!strcmp(argv[i], "--exact-limit") && i + 1 < argc)
            exact_tlim = atof(argv[++i]);
        else if (!strcmp(argv[i], "--spread") && i + 1 < argc) {
            if (sscanf(argv[++i], "%lf,%lf,%lf,%lf", &tr_lo, &tr_hi, &s2_lo,
                       &s2_hi) != 4) {
                fprintf(stderr, "bench_mckp: --spread TR_LO,TR_HI,S2_LO,S2_HI\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--seed-offset") && i + 1 < argc)
            seed_off = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tight") && i + 1 < argc) {
            if (sscanf(argv[++i], "%lf,%lf", &f_size, &f_lat) != 2 ||
                !(f_size >= 0 && f_size <= 1 && f_lat >= 0 && f_lat <= 1)) {
                fprintf(stderr, "bench_mckp: --tight F_SIZE,F_LAT in [0, 1]\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--verbose"))
            verbose = 1;
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--script") && i + 1 < argc)
            script = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--time-limit S] [--exact-limit S] "
                    "[--repeat N] [--rel-gap G] [--method auto|bb|glpk] "
                    "[--spread TR_LO,TR_HI,S2_LO,S2_HI] "
                    "[--no-pulp] [--pulp-time-limit S] [--script PATH] "
                    "[--dir DIR] [--seed-offset D] [--tight F_SIZE,F_LAT] "
                    "[--only G] [--verbose]\n", argv[0]);
            return 2;
        }
    }
    if (repeat < 1)
        repeat = 1;
    /* the script: --script, $SRCDIR/bench, BP_SRCDIR/bench (the build's
     * source tree), next to the binary, ./bench */
    static char spath[4096];
    if (!script) {
        const char *cands[4];
        char a[4096], b[4096];
        int nc = 0;
        if (getenv("SRCDIR")) {
            snprintf(a, sizeof a, "%s/bench/pulp_mckp.py", getenv("SRCDIR"));
            cands[nc++] = a;
        }
#ifdef BP_SRCDIR
        cands[nc++] = BP_SRCDIR "/bench/pulp_mckp.py";
#endif
        snprintf(b, sizeof b, "%s", argv[0]);
        char *slash = strrchr(b, '/');
        if (slash) {
            snprintf(slash + 1, sizeof b - (size_t)(slash + 1 - b),
                     "pulp_mckp.py");
            cands[nc++] = b;
        }
        cands[nc++] = "bench/pulp_mckp.py";
        for (int i = 0; i < nc && !script; i++)
            if (access(cands[i], R_OK) == 0) {
                snprintf(spath, sizeof spath, "%s", cands[i]);
                script = spath;
            }
    }
    if (use_pulp && (!script ||
                     system("/usr/bin/python3 -c 'import pulp' >/dev/null 2>&1")
                         != 0)) {
        printf("PuLP comparison skipped: %s\n",
               script ? "/usr/bin/python3 cannot import pulp"
                      : "bench/pulp_mckp.py not found (use --script)");
        use_pulp = 0;
    }
    printf("rel_gap %g, method %s\n", rel_gap,
           method == BP_MCKP_BB ? "bb" : method == BP_MCKP_GLPK ? "glpk"
                                                                 : "auto");
    printf("sensitivity spread: trace/numel in [%g, %g], weight variance in "
           "[%g, %g]\n", tr_lo, tr_hi, s2_lo, s2_hi);

    static const struct { int G, C; uint64_t seed; } cases[] = {
        {300, 5, 11},
        {5000, 6, 12},
    };
    int failed = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        if (only && cases[ci].G != only)
            continue;
        instance in;
        uint64_t seed = cases[ci].seed + seed_off;
        make_instance(&in, cases[ci].G, cases[ci].C, seed, f_size, f_lat);
        char path[4096];
        snprintf(path, sizeof path, "%s/bitplan_mckp_%dx%d.txt", dir, in.G,
                 in.C);
        if (write_instance(&in, path)) {
            fprintf(stderr, "bench_mckp: cannot write %s\n", path);
            instance_free(&in);
            return 1;
        }
        printf("== %d groups x %d choices, 2 budgets at %.0f%%/%.0f%% "
               "(seed %llu; %s)\n", in.G, in.C, 100 * f_size, 100 * f_lat,
               (unsigned long long)seed, path);
        fflush(stdout);
        bp_mckp_opts o;
        bp_mckp_opts_default(&o);
        o.verbose = verbose;
        o.rel_gap = rel_gap;
        o.method = method;
        bp_mckp_result r = {0};
        double secs, *ts = malloc((size_t)repeat * sizeof *ts);

        /* (a) under the time limit, repeated: the median time */
        o.time_limit_s = tlim;
        int rc = 0;
        for (int i = 0; i < repeat && !rc; i++) {
            bp_mckp_result_free(&r);
            rc = solve_once(&in, &o, &r, &ts[i]);
        }
        if (rc) {
            failed = 1;
        } else {
            qsort(ts, (size_t)repeat, sizeof *ts, bp_bench_cmp_double);
            printf("   bitplan, %g s limit: %.1f ms (median of %d, min %.1f)  ",
                   tlim, 1e3 * ts[repeat / 2], repeat, 1e3 * ts[0]);
            failed |= print_result(&in, &r);
        }
        bp_mckp_result_free(&r);

        /* (b) to proven optimality (or exact_tlim) */
        double exact_obj = NAN, exact_secs = NAN;
        o.time_limit_s = exact_tlim;
        if (!solve_once(&in, &o, &r, &secs)) {
            printf("   bitplan, exact:      %.1f ms  ", 1e3 * secs);
            failed |= print_result(&in, &r);
            exact_obj = r.objective;
            exact_secs = secs;
        } else {
            failed = 1;
        }
        bp_mckp_result_free(&r);
        fflush(stdout);

        /* (c) PuLP + CBC, HAWQ-V3's route */
        if (use_pulp && !isnan(exact_obj)) {
            double pobj, psec;
            char pst[64];
            if (run_pulp(script, path, pulp_tlim, &pobj, &psec, pst,
                         sizeof pst) == 0) {
                int proven = !strcmp(pst, "Optimal");
                printf("   PuLP+CBC (gapRel 0%s): %.3f s  objective %.12g  "
                       "%s\n", proven ? "" : ", time limit", psec, pobj,
                       proven ? "optimal" : "stopped at the time limit, "
                                            "not proven");
                printf("   objectives: bitplan - PuLP = %.3g (relative "
                       "%.2e); time: PuLP / bitplan exact = %.1fx, PuLP / "
                       "bitplan %g s = %.0fx\n", exact_obj - pobj,
                       (exact_obj - pobj) / fmax(fabs(pobj), 1e-300),
                       psec / exact_secs, tlim, psec / ts[repeat / 2]);
            } else {
                printf("   PuLP+CBC: failed to run %s\n", script);
            }
        }
        fflush(stdout);
        free(ts);
        instance_free(&in);
    }
    return failed;
}
