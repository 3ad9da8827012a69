/* check_alloc.c - bit allocation end to end below the CLI: budget parsing,
 * 200 seeded random problems (pins, ranges, ties, keep-first-last, one to
 * three budgets) against brute force over every layer's bits, the
 * feasibility-first messages, input errors, dominance pruning, the eig
 * metric, monotone sweeps, and the example CNN priced from its graph and
 * from its sensitivity file alike. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../ilp/alloc.h"
#include "onnx.h"
#include "status.h"

#include "testrng.h"

#define SENS BP_SRCDIR "/tests/data/ilp/cnn_sens.json"

static void setup(void)
{
    setenv("BITPLAN_PROFILE_PATH", BP_SRCDIR "/profiles", 1);
}

static rng stream;
static double unif(void) { return rng_unit(&stream); }
static int irand(int n) { return (int)(rng_next(&stream) % (uint64_t)n); }

START_TEST(test_budget_parse)
{
    bp_budget b;
    ck_assert_int_eq(bp_budget_parse("size=1.5MiB", &b), BP_OK);
    ck_assert(b.kind == BP_BUDGET_SIZE && b.form == BP_BUDGET_ABS);
    ck_assert(b.amount == 1.5 * 1048576);
    ck_assert_str_eq(b.unit, "MiB");
    ck_assert_str_eq(b.value_text, "1.5MiB");
    ck_assert_int_eq(bp_budget_parse("size=25%", &b), BP_OK);
    ck_assert(b.form == BP_BUDGET_PERCENT && b.amount == 25);
    ck_assert_int_eq(bp_budget_parse("size=8x", &b), BP_OK);
    ck_assert(b.form == BP_BUDGET_TIMES && b.amount == 8);
    ck_assert_int_eq(bp_budget_parse("size=20000", &b), BP_OK);
    ck_assert(b.amount == 20000);
    ck_assert_int_eq(bp_budget_parse("size=2MB", &b), BP_OK);
    ck_assert(b.amount == 2e6);
    ck_assert_int_eq(bp_budget_parse("latency=0.8ms", &b), BP_OK);
    ck_assert(b.kind == BP_BUDGET_LATENCY && fabs(b.amount - 0.8e-3) < 1e-18);
    ck_assert_int_eq(bp_budget_parse("latency=60%", &b), BP_OK);
    ck_assert(b.form == BP_BUDGET_PERCENT && b.amount == 60);
    ck_assert_int_eq(bp_budget_parse("latency=250us", &b), BP_OK);
    ck_assert(fabs(b.amount - 250e-6) < 1e-18);
    ck_assert_int_eq(bp_budget_parse("bops=3.2G", &b), BP_OK);
    ck_assert(b.kind == BP_BUDGET_BOPS && b.amount == 3.2e9);
    ck_assert_int_eq(bp_budget_parse("bops=1e9", &b), BP_OK);
    const char *bad[][2] = {
        {"size=1.5M", "ambiguous"}, {"latency=5", "unit '(none)'"},
        {"speed=1", "unknown kind"}, {"size=-1", "positive"},
        {"size=", "expected a number"}, {"size=abc", "expected a number"},
        {"size=1e400", "expected a number"}, {"size", "KIND=VALUE"},
        {"bops=3.2Q", "unit 'Q'"}, {"size=0", "positive"},
        {"latency=1parsec", "unit"}, {NULL, NULL}};
    for (int i = 0; bad[i][0]; i++) {
        ck_assert_msg(bp_budget_parse(bad[i][0], &b) == BP_EINVAL,
                      "accepted %s", bad[i][0]);
        ck_assert_msg(strstr(bp_errmsg(), bad[i][1]) != NULL, "%s: %s",
                      bad[i][0], bp_errmsg());
    }
    char buf[64];
    bp_budget_format(buf, sizeof buf, BP_BUDGET_SIZE, 1.31 * 1048576, "MiB", 3);
    ck_assert_str_eq(buf, "1.31MiB");
    bp_budget_format(buf, sizeof buf, BP_BUDGET_LATENCY, 0.8e-3, "", 3);
    ck_assert_str_eq(buf, "800us");
    bp_budget_format(buf, sizeof buf, BP_BUDGET_LATENCY, 0.8e-3, "ms", 3);
    ck_assert_str_eq(buf, "0.8ms");
    bp_budget_format(buf, sizeof buf, BP_BUDGET_BOPS, 3.2e9, "", 3);
    ck_assert_str_eq(buf, "3.2G");
}
END_TEST

/* --- random problems against brute force ----------------------------- */

static const int CAND[] = {2, 3, 4, 5, 6, 8};

typedef struct inst {
    bp_sens *sens;
    bp_alloc_opts o;
    bp_alloc_range ranges[16];
    bp_alloc_tie ties[4];
    const char *tie_names[4][3];
    char names[12][16];
    int nb;
    bp_budget_kind kinds[3];
    double caps[3];
} inst;

static void make_inst(inst *in, int n)
{
    memset(in, 0, sizeof *in);
    ck_assert_int_eq(bp_sens_new(&in->sens, n), BP_OK);
    bp_sens *s = in->sens;
    s->model_path = strdup("m");
    s->model_sha256 = strdup("");
    s->data_path = strdup("d");
    s->data_sha256 = strdup("");
    s->settings = strdup("{}");
    s->stop_reason = strdup("exact");
    for (int i = 0; i < n; i++) {
        bp_sens_layer *l = &s->layers[i];
        snprintf(in->names[i], sizeof in->names[i], "l%d.weight", i);
        l->name = strdup(in->names[i]);
        l->op = strdup("Conv");
        l->trace_method = strdup("exact");
        l->numel = (int64_t)exp(log(100) + unif() * log(1000));
        l->out_channels = 4 + irand(60);
        l->macs = l->numel * (1 + irand(400));
        l->in_numel = 64 + irand(4000);
        l->out_numel = 64 + irand(4000);
        l->trace = (double)l->numel * exp(-4 + 6 * unif());
        /* occasionally a negative Hutchinson estimate: Omega < 0 */
        if (irand(20) == 0)
            l->trace = -l->trace * 0.01;
        l->top_eig = fabs(l->trace) * (0.5 + unif());
        for (int k = 0; k < 6; k++) {
            int b = CAND[k];
            l->has_bits[b] = 1;
            l->perturbation[b] = (double)l->numel * 0.05 * pow(0.25, b) *
                                 (0.7 + 0.6 * unif());
            l->omega[b] = l->trace / (double)l->numel * l->perturbation[b];
            /* a measured increase that departs from omega unevenly */
            l->loss_increase[b] = l->omega[b] * (0.3 + 0.25 * (1 + sin(3.0 * i + b)));
        }
        l->has_loss_increase = 1;
    }
    bp_alloc_opts_default(&in->o);
    /* candidate widths: 2 to 5 of CAND */
    int nc = 2 + irand(4);
    while (__builtin_popcount(in->o.wbits) < nc)
        in->o.wbits |= 1u << CAND[irand(6)];
    int widths[6], nw = 0;
    for (int b = 1; b <= 16; b++)
        if (in->o.wbits & (1u << b))
            widths[nw++] = b;
    if (irand(3) == 0)
        in->o.abits_follow = 1;
    else if (irand(3) == 0)
        in->o.abits = (1u << 4) | (1u << 8);
    in->o.metric = irand(5) == 0   ? BP_METRIC_EIG
                   : irand(4) == 0 ? BP_METRIC_LOSS
                                   : BP_METRIC_TRACE;
    /* pins and ranges on a few layers */
    in->o.ranges = in->ranges;
    for (int i = 0; i < n; i++) {
        int r = irand(10);
        if (r == 0) {
            int w = widths[irand(nw)];
            in->ranges[in->o.n_ranges++] = (bp_alloc_range){in->names[i], w, w, 1};
        } else if (r == 1) {
            int lo = widths[irand(nw)], hi = widths[irand(nw)];
            if (lo > hi) {
                int t = lo;
                lo = hi;
                hi = t;
            }
            in->ranges[in->o.n_ranges++] = (bp_alloc_range){in->names[i], lo, hi, 0};
        }
    }
    /* ties of two or three layers; keep-first-last now and then */
    in->o.ties = in->ties;
    int nt = n >= 2 ? irand(3) : 0;
    for (int t = 0; t < nt; t++) {
        int k = 2 + irand(2);
        for (int j = 0; j < k; j++)
            in->tie_names[t][j] = in->names[irand(n)];
        in->ties[t] = (bp_alloc_tie){k, in->tie_names[t]};
        in->o.n_ties++;
    }
    if (irand(6) == 0)
        in->o.keep_first_last = widths[nw - 1];
}

/* Every layer's allowed widths after pins, ranges and keep-first-last. */
static unsigned allowed(const inst *in, int i, int n)
{
    unsigned m = in->o.wbits;
    for (int r = 0; r < in->o.n_ranges; r++)
        if (!strcmp(in->ranges[r].name, in->names[i])) {
            unsigned rm = 0;
            for (int b = in->ranges[r].lo; b <= in->ranges[r].hi; b++)
                rm |= 1u << b;
            m &= rm;
        }
    if (in->o.keep_first_last && (i == 0 || i == n - 1))
        m &= 1u << in->o.keep_first_last;
    return m;
}

static int act_of(const bp_alloc_opts *o, int w)
{
    if (o->abits_follow)
        return w;
    if (!o->abits)
        return w > 8 ? w : 8;
    return w <= 4 ? 4 : 8;
}

/* Brute force: the best objective over all assignments of widths to layers
 * meeting pins, ties and caps; -1 when none. */
static int brute(const inst *in, const bp_profile *prof, int n, double *best)
{
    unsigned m[12];
    int w[12], idx[12], tie_of[12];
    int opts[12][16], no[12];
    bp_layer_facts f[12];
    double cost[12][17][3], obj[12][17];
    for (int i = 0; i < n; i++) {
        const bp_sens_layer *l = &in->sens->layers[i];
        m[i] = allowed(in, i, n);
        no[i] = 0;
        for (int b = 1; b <= 16; b++)
            if (m[i] & (1u << b))
                opts[i][no[i]++] = b;
        memset(&f[i], 0, sizeof f[i]);
        f[i].name = l->name;
        f[i].numel = l->numel;
        f[i].out_channels = l->out_channels;
        f[i].macs = l->macs;
        f[i].in_numel = l->in_numel;
        f[i].out_numel = l->out_numel;
        for (int k = 0; k < no[i]; k++) {
            int b = opts[i][k];
            bp_cost c;
            ck_assert_int_eq(bp_cost_eval(prof, &f[i], b, act_of(&in->o, b), 1,
                                          &c), BP_OK);
            cost[i][b][0] = c.bytes;
            cost[i][b][1] = c.latency_s;
            cost[i][b][2] = c.bops;
            obj[i][b] = in->o.metric == BP_METRIC_EIG
                            ? l->top_eig / (double)l->numel * l->perturbation[b]
                        : in->o.metric == BP_METRIC_LOSS ? 2 * l->loss_increase[b]
                                                         : l->omega[b];
        }
        tie_of[i] = i;
    }
    /* tie classes (union-find, smallest index as root) */
    for (int t = 0; t < in->o.n_ties; t++)
        for (int j = 1; j < in->ties[t].n; j++) {
            int a = atoi(in->ties[t].names[0] + 1),
                b = atoi(in->ties[t].names[j] + 1);
            while (tie_of[a] != a) a = tie_of[a];
            while (tie_of[b] != b) b = tie_of[b];
            if (a != b)
                tie_of[a > b ? a : b] = a < b ? a : b;
        }
    for (int i = 0; i < n; i++) {
        int r = i;
        while (tie_of[r] != r)
            r = tie_of[r];
        tie_of[i] = r;
        if (!no[i])
            return -2;   /* a pin/range left nothing: alloc refuses too */
    }
    int found = 0;
    *best = INFINITY;
    for (int i = 0; i < n; i++)
        idx[i] = 0;
    for (;;) {
        int ok = 1;
        for (int i = 0; i < n; i++) {
            w[i] = opts[i][idx[i]];
            if (tie_of[i] != i && w[i] != w[tie_of[i]])
                ok = 0;
        }
        if (ok) {
            double tot[3] = {0, 0, 0}, o = 0;
            for (int i = 0; i < n; i++) {
                for (int k = 0; k < 3; k++)
                    tot[k] += cost[i][w[i]][k];
                o += obj[i][w[i]];
            }
            for (int j = 0; j < in->nb; j++)
                if (tot[in->kinds[j]] > in->caps[j])
                    ok = 0;
            if (ok && o < *best) {
                *best = o;
                found = 1;
            }
        }
        int i = 0;
        while (i < n && ++idx[i] == no[i])
            idx[i++] = 0;
        if (i == n)
            break;
    }
    return found ? 0 : -1;
}

START_TEST(test_random_vs_brute_force)
{
    bp_profile *prof = NULL;
    ck_assert_int_eq(bp_profile_open(&prof, "nvidia-t4"), BP_OK);
    stream.s = 20240601;
    int solved = 0, infeasible = 0, refused = 0, multi = 0;
    for (int t = 0; t < 200; t++) {
        inst in;
        int n = 1 + irand(8);
        make_inst(&in, n);
        bp_alloc *a = NULL;
        int st = bp_alloc_new(&a, in.sens, "random.json", NULL, 0, NULL, prof,
                              &in.o);
        /* budgets between the smallest and largest reachable totals */
        double best;
        int bst = -2;
        if (st == BP_OK) {
            in.nb = 1 + irand(3);
            multi += in.nb > 1;
            for (int j = 0; j < in.nb; j++) {
                double lo, hi;
                in.kinds[j] = (bp_budget_kind)((j + t) % 3);
                ck_assert_int_eq(bp_alloc_total_range(a, in.kinds[j], &lo, &hi),
                                 BP_OK);
                in.caps[j] = lo + (hi - lo) * (unif() * 1.1 - 0.05);
            }
            bst = brute(&in, prof, n, &best);
        }
        if (st == BP_EINVAL) {
            /* only when pins, ranges, kfl and ties leave a layer nothing */
            ck_assert_msg(strstr(bp_errmsg(), "share no bit-width") ||
                          strstr(bp_errmsg(), "can only take"),
                          "instance %d refused: %s", t, bp_errmsg());
            refused++;
            bp_sens_free(&in.sens);
            continue;
        }
        ck_assert_msg(st == BP_OK, "instance %d: %s", t, bp_errmsg());
        bp_alloc_result r;
        bp_mckp_opts mo;
        bp_mckp_opts_default(&mo);
        st = bp_alloc_solve_caps(a, in.nb, in.kinds, in.caps, NULL, &mo, &r);
        if (bst == -1) {
            ck_assert_msg(st == BP_EINFEASIBLE, "instance %d: brute force "
                          "finds no plan, alloc says %d", t, st);
            ck_assert_ptr_nonnull(strstr(bp_errmsg(), "cannot be met"));
            infeasible++;
        } else {
            ck_assert_int_eq(bst, 0);
            ck_assert_msg(st == BP_OK, "instance %d: %s", t, bp_errmsg());
            ck_assert_msg(fabs(r.objective - best) <=
                              1e-9 * fmax(1e-12, fabs(best)),
                          "instance %d: alloc %.17g, brute force %.17g", t,
                          r.objective, best);
            ck_assert_str_eq(r.status, "optimal");
            /* the plan honours pins, ranges and ties */
            for (int i = 0; i < n; i++)
                ck_assert(allowed(&in, i, n) & (1u << r.w_bits[i]));
            for (int k = 0; k < in.o.n_ties; k++)
                for (int j = 1; j < in.ties[k].n; j++)
                    ck_assert_int_eq(r.w_bits[atoi(in.ties[k].names[0] + 1)],
                                     r.w_bits[atoi(in.ties[k].names[j] + 1)]);
            solved++;
            bp_alloc_result_free(&r);
        }
        bp_alloc_free(&a);
        bp_sens_free(&in.sens);
    }
    bp_profile_free(&prof);
    ck_assert_int_ge(solved, 150);
    ck_assert_int_ge(infeasible, 1);
    ck_assert_int_ge(multi, 80);
    fprintf(stderr, "random: %d solved, %d infeasible, %d refused\n", solved,
            infeasible, refused);
}
END_TEST

/* --- the example CNN ---------------------------------------------------- */

typedef struct cnn {
    bp_profile *prof;
    bp_sens *sens;
    bp_alloc *a;
} cnn;

static int cnn_open(cnn *c, const char *profile, const bp_alloc_opts *o)
{
    memset(c, 0, sizeof *c);
    ck_assert_int_eq(bp_profile_open(&c->prof, profile), BP_OK);
    ck_assert_int_eq(bp_sens_load(&c->sens, SENS), BP_OK);
    return bp_alloc_new(&c->a, c->sens, SENS, NULL, 0, NULL, c->prof, o);
}

static void cnn_close(cnn *c)
{
    bp_alloc_free(&c->a);
    bp_sens_free(&c->sens);
    bp_profile_free(&c->prof);
}

static int solve1(cnn *c, const char *spec, bp_alloc_result *r)
{
    bp_budget b;
    ck_assert_int_eq(bp_budget_parse(spec, &b), BP_OK);
    return bp_alloc_solve(c->a, 1, &b, NULL, r);
}

START_TEST(test_unreachable_budget)
{
    cnn c;
    bp_alloc_result r;
    ck_assert_int_eq(cnn_open(&c, "nvidia-t4", NULL), BP_OK);
    ck_assert_int_eq(solve1(&c, "size=1KiB", &r), BP_EINFEASIBLE);
    ck_assert_str_eq(bp_errmsg(), "budget size=1KiB cannot be met: the "
                     "smallest plan is 5.96KiB (all layers at 2 bits)");
    ck_assert_int_eq(solve1(&c, "size=5%", &r), BP_EINFEASIBLE);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "the smallest plan is 7.63% (5.96KiB) (all layers at 2 bits)"));
    ck_assert_int_eq(solve1(&c, "size=20x", &r), BP_EINFEASIBLE);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "13.1x"));
    ck_assert_int_eq(solve1(&c, "latency=1us", &r), BP_EINFEASIBLE);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "budget latency=1us cannot be "
                                 "met: the smallest plan is 35"));
    /* exactly the smallest total is reachable */
    double lo, hi;
    ck_assert_int_eq(bp_alloc_total_range(c.a, BP_BUDGET_SIZE, &lo, &hi), BP_OK);
    bp_budget_kind k = BP_BUDGET_SIZE;
    ck_assert_int_eq(bp_alloc_solve_caps(c.a, 1, &k, &lo, NULL, NULL, &r), BP_OK);
    ck_assert(r.size_bytes == lo);
    for (int i = 0; i < r.n_layers; i++)
        ck_assert_int_eq(r.w_bits[i], 2);
    bp_alloc_result_free(&r);
    /* a hair below it is not */
    double below = nextafter(lo, 0);
    ck_assert_int_eq(bp_alloc_solve_caps(c.a, 1, &k, &below, NULL, NULL, &r),
                     BP_EINFEASIBLE);
    cnn_close(&c);
    /* pins shift the smallest plan and the message says how */
    bp_alloc_opts o;
    bp_alloc_opts_default(&o);
    bp_alloc_range pin = {"fc.weight", 8, 8, 1};
    o.ranges = &pin;
    o.n_ranges = 1;
    ck_assert_int_eq(cnn_open(&c, "nvidia-t4", &o), BP_OK);
    ck_assert_int_eq(solve1(&c, "size=1KiB", &r), BP_EINFEASIBLE);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "(all layers at 2 bits but "
                                 "fc.weight at 8)"));
    cnn_close(&c);
}
END_TEST

START_TEST(test_fixed_bytes)
{
    /* parameters that stay float count in every plan's size and in the
     * float32 baseline; the smallest total stays reachable exactly */
    cnn c;
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(bp_profile_open(&c.prof, "bops"), BP_OK);
    ck_assert_int_eq(bp_sens_load(&c.sens, SENS), BP_OK);
    c.sens->float_params = 100003;
    c.sens->other_params = 12347;
    ck_assert_int_eq(bp_alloc_new(&c.a, c.sens, SENS, NULL, 0, NULL, c.prof,
                                  NULL), BP_OK);
    ck_assert(bp_alloc_float_bytes(c.a) == 4.0 * 100003);
    double lo, hi, lo0 = 0;
    ck_assert_int_eq(bp_alloc_total_range(c.a, BP_BUDGET_SIZE, &lo, &hi), BP_OK);
    for (int i = 0; i < 7; i++)
        lo0 += ceil(c.sens->layers[i].numel * 2 / 8.0) +
               8.0 * c.sens->layers[i].out_channels;
    ck_assert(lo == lo0 + 4.0 * 12347 + 19); /* and the const_bytes */
    bp_budget_kind k = BP_BUDGET_SIZE;
    bp_alloc_result r;
    ck_assert_int_eq(bp_alloc_solve_caps(c.a, 1, &k, &lo, NULL, NULL, &r), BP_OK);
    ck_assert(r.size_bytes == lo);
    bp_alloc_result_free(&r);
    bp_budget b;
    ck_assert_int_eq(bp_budget_parse("size=10x", &b), BP_OK);
    double v;
    ck_assert_int_eq(bp_alloc_resolve(c.a, &b, &v), BP_OK);
    ck_assert(v == 4.0 * 100003 / 10);
    cnn_close(&c);
}
END_TEST

START_TEST(test_joint_budgets)
{
    cnn c;
    bp_alloc_result r;
    ck_assert_int_eq(cnn_open(&c, "nvidia-t4", NULL), BP_OK);
    bp_budget b[2];
    ck_assert_int_eq(bp_budget_parse("size=12KiB", &b[0]), BP_OK);
    ck_assert_int_eq(bp_budget_parse("bops=12M", &b[1]), BP_OK);
    ck_assert_int_eq(bp_alloc_solve(c.a, 2, b, NULL, &r), BP_OK);
    ck_assert(r.size_bytes <= 12 * 1024 && r.total_bops <= 12e6);
    double both = r.objective;
    bp_alloc_result_free(&r);
    ck_assert_int_eq(bp_alloc_solve(c.a, 1, b, NULL, &r), BP_OK);
    ck_assert(r.objective <= both);   /* dropping a budget never hurts */
    bp_alloc_result_free(&r);
    ck_assert_int_eq(solve1(&c, "bops=2.2M", &r), BP_EINFEASIBLE);
    ck_assert_str_eq(bp_errmsg(), "budget bops=2.2M cannot be met: the "
                     "smallest plan is 8.54M (all layers at 2 bits)");
    cnn_close(&c);
    /* Each reachable alone, not together: size wants few bits, and on this
     * (made-up) table 2-bit kernels are slow. */
    char dir[] = "/tmp/check_alloc.XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/slow2.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"format\":\"bitplan-profile\",\"version\":1,\"name\":\"slow2\","
          "\"description\":\"test\",\"kind\":\"table\",\"source\":\"made up\","
          "\"fallback\":\"nvidia-t4\",\"entries\":["
          "{\"layer\":\"res1a.conv.weight\",\"w_bits\":2,\"a_bits\":8,"
          "\"latency_s\":1e-3},{\"layer\":\"res1a.conv.weight\",\"w_bits\":8,"
          "\"a_bits\":8,\"latency_s\":1e-5}]}", f);
    fclose(f);
    bp_alloc_opts o;
    bp_alloc_opts_default(&o);
    o.wbits = (1u << 2) | (1u << 8);
    ck_assert_int_eq(cnn_open(&c, path, &o), BP_OK);
    ck_assert_int_eq(bp_budget_parse("size=7KiB", &b[0]), BP_OK);
    ck_assert_int_eq(bp_budget_parse("latency=0.1ms", &b[1]), BP_OK);
    ck_assert_int_eq(bp_alloc_solve(c.a, 1, &b[0], NULL, &r), BP_OK);
    ck_assert_int_eq(r.w_bits[1], 2);
    bp_alloc_result_free(&r);
    ck_assert_int_eq(bp_alloc_solve(c.a, 1, &b[1], NULL, &r), BP_OK);
    ck_assert_int_eq(r.w_bits[1], 8);
    bp_alloc_result_free(&r);
    ck_assert_int_eq(bp_alloc_solve(c.a, 2, b, NULL, &r), BP_EINFEASIBLE);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "budgets size=7KiB and "
                                 "latency=0.1ms cannot be met together (size "
                                 "alone can go down to 5.96KiB, latency"));
    cnn_close(&c);
    unlink(path);
    rmdir(dir);
    /* latency on a profile without latency */
    ck_assert_int_eq(cnn_open(&c, "bops", NULL), BP_OK);
    ck_assert_int_eq(solve1(&c, "latency=1ms", &r), BP_EINVAL);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "models no latency"));
    ck_assert_int_eq(solve1(&c, "bops=50%", &r), BP_OK);
    ck_assert(isnan(r.total_latency_s));
    bp_alloc_result_free(&r);
    cnn_close(&c);
}
END_TEST

START_TEST(test_input_errors)
{
    cnn c;
    bp_alloc_opts o;
    bp_alloc_range rg;
    const char *tie[2];
    bp_alloc_tie t = {2, tie};
    struct {
        const char *name;
        int lo, hi, pin, kfl;
        const char *t0, *t1;
        unsigned wbits;
        int eig_null;
        const char *msg;
    } cases[] = {
        {"nope.weight", 4, 4, 1, 0, NULL, NULL, 0, 0,
         "--pin nope.weight=4: no layer named 'nope.weight'"},
        {"fc.weight", 7, 7, 1, 0, NULL, NULL, 0, 0,
         "--pin fc.weight=7: layer 'fc.weight' can only take 2,3,4,5,6,8 bits"},
        {"fc.weight", 8, 8, 1, 0, "fc.weight", "stem.conv.weight", 0, 0, NULL},
        {"fc.weight", 8, 8, 1, 2, NULL, NULL, 0, 0,
         "--keep-first-last 2: the last layer 'fc.weight' can only take 8"},
        {"fc.weight", 8, 8, 1, 0, "fc.weight", "down_b.conv.weight", 0, 0, NULL},
        {"down_b.conv.weight", 2, 3, 0, 8, "fc.weight", "down_b.conv.weight", 0,
         0, "share no bit-width (fc.weight allows 8, down_b.conv.weight "
            "allows 2,3)"},
        {NULL, 0, 0, 0, 0, "fc.weight", "ghost", 0, 0,
         "--tie fc.weight,ghost: no layer named 'ghost'"},
        {NULL, 0, 0, 0, 0, NULL, NULL, 1u << 7, 0,
         "has no perturbation for 7 bits, which --bits asks for"},
        {NULL, 0, 0, 0, 0, NULL, NULL, 0, 1,
         "layers[3].top_eigenvalue.value: null, but --metric eig"},
        /* 2: a file without loss_increase under --metric loss */
        {NULL, 0, 0, 0, 0, NULL, NULL, 0, 2,
         "layers[0] 'stem.conv.weight' has no loss_increase, which --metric "
         "loss needs"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        bp_alloc_opts_default(&o);
        if (cases[k].name) {
            rg = (bp_alloc_range){cases[k].name, cases[k].lo, cases[k].hi,
                                  cases[k].pin};
            o.ranges = &rg;
            o.n_ranges = 1;
        }
        if (cases[k].t0) {
            tie[0] = cases[k].t0;
            tie[1] = cases[k].t1;
            o.ties = &t;
            o.n_ties = 1;
        }
        o.keep_first_last = cases[k].kfl;
        o.wbits = cases[k].wbits;
        memset(&c, 0, sizeof c);
        ck_assert_int_eq(bp_profile_open(&c.prof, "nvidia-t4"), BP_OK);
        ck_assert_int_eq(bp_sens_load(&c.sens, SENS), BP_OK);
        if (cases[k].eig_null == 1) {
            c.sens->layers[3].top_eig = NAN;
            o.metric = BP_METRIC_EIG;
        } else if (cases[k].eig_null == 2) {
            o.metric = BP_METRIC_LOSS;
        }
        int st = bp_alloc_new(&c.a, c.sens, SENS, NULL, 0, NULL, c.prof, &o);
        if (!cases[k].msg) {
            ck_assert_msg(st == BP_OK, "case %zu: %s", k, bp_errmsg());
        } else {
            ck_assert_msg(st == BP_EINVAL, "case %zu accepted", k);
            ck_assert_ptr_null(c.a);
            ck_assert_msg(strstr(bp_errmsg(), cases[k].msg) != NULL,
                          "case %zu: '%s' lacks '%s'", k, bp_errmsg(),
                          cases[k].msg);
        }
        cnn_close(&c);
    }
}
END_TEST

START_TEST(test_dominance)
{
    /* one compute-bound layer on a T4 with a = 8: 2, 4 and 8 bits all run
     * at the INT8 rate, so under a latency budget alone 2 and 4 bits are
     * dominated by 8 (same latency, larger Omega) and dropped */
    bp_sens *s = NULL;
    ck_assert_int_eq(bp_sens_new(&s, 1), BP_OK);
    s->layers[0].name = strdup("big.weight");
    s->layers[0].numel = 1000;
    s->layers[0].macs = 10000000000LL;
    s->layers[0].out_channels = 10;
    s->layers[0].trace = 10;
    for (int b = 2; b <= 8; b *= 2) {
        s->layers[0].has_bits[b] = 1;
        s->layers[0].perturbation[b] = pow(4, -b);
        s->layers[0].omega[b] = 0.01 * pow(4, -b);
    }
    bp_profile *p = NULL;
    bp_alloc *a = NULL;
    ck_assert_int_eq(bp_profile_open(&p, "nvidia-t4"), BP_OK);
    ck_assert_int_eq(bp_alloc_new(&a, s, "s.json", NULL, 0, NULL, p, NULL),
                     BP_OK);
    bp_budget b;
    bp_alloc_result r;
    ck_assert_int_eq(bp_budget_parse("latency=1s", &b), BP_OK);
    ck_assert_int_eq(bp_alloc_solve(a, 1, &b, NULL, &r), BP_OK);
    ck_assert_int_eq(r.n_dropped, 2);
    ck_assert_int_eq(r.n_choices, 1);
    ck_assert_int_eq(r.w_bits[0], 8);
    bp_alloc_result_free(&r);
    /* under a size budget all three trade off: none dropped */
    ck_assert_int_eq(bp_budget_parse("size=1MiB", &b), BP_OK);
    ck_assert_int_eq(bp_alloc_solve(a, 1, &b, NULL, &r), BP_OK);
    ck_assert_int_eq(r.n_dropped, 0);
    bp_alloc_result_free(&r);
    bp_alloc_free(&a);
    bp_profile_free(&p);
    bp_sens_free(&s);
}
END_TEST

START_TEST(test_sweep_monotone)
{
    const char *profiles[] = {"nvidia-t4", "arm-cortex-a76", "bops"};
    for (int pi = 0; pi < 3; pi++)
        for (int kind = 0; kind < 3; kind++) {
            if (kind == BP_BUDGET_LATENCY && pi == 2)
                continue;
            cnn c;
            ck_assert_int_eq(cnn_open(&c, profiles[pi], NULL), BP_OK);
            double lo, hi, prev = INFINITY;
            bp_budget_kind k = (bp_budget_kind)kind;
            ck_assert_int_eq(bp_alloc_total_range(c.a, k, &lo, &hi), BP_OK);
            ck_assert(lo < hi);
            for (int i = 0; i < 40; i++) {
                double cap = i == 39 ? hi : lo + (hi - lo) * i / 39;
                bp_alloc_result r;
                ck_assert_int_eq(bp_alloc_solve_caps(c.a, 1, &k, &cap, NULL,
                                                     NULL, &r), BP_OK);
                ck_assert_msg(r.objective <= prev, "%s %d: objective rose "
                              "from %.17g to %.17g at cap %g", profiles[pi],
                              kind, prev, r.objective, cap);
                double tot = kind == 0 ? r.size_bytes : kind == 1
                             ? r.total_latency_s : r.total_bops;
                ck_assert(tot <= cap * (1 + 1e-12));
                prev = r.objective;
                if (i == 39)   /* unconstrained: every layer at its best */
                    for (int l = 0; l < r.n_layers; l++)
                        ck_assert_int_eq(r.w_bits[l], 8);
                bp_alloc_result_free(&r);
            }
            /* the best plan's total: within the range, and a cap there
             * already gives the unconstrained optimum (prev) */
            double best;
            ck_assert_int_eq(bp_alloc_total_at_best(c.a, k, &best), BP_OK);
            ck_assert(best >= lo && best <= hi);
            bp_alloc_result r;
            ck_assert_int_eq(bp_alloc_solve_caps(c.a, 1, &k, &best, NULL,
                                                 NULL, &r), BP_OK);
            ck_assert_double_eq(r.objective, prev);
            double tot = kind == 0 ? r.size_bytes : kind == 1
                         ? r.total_latency_s : r.total_bops;
            ck_assert_double_eq_tol(tot, best, best * 1e-12);
            bp_alloc_result_free(&r);
            cnn_close(&c);
        }
}
END_TEST

START_TEST(test_graph_and_file_agree)
{
    /* the CNN priced from its graph and from its sensitivity file alone */
    bp_graph *g = NULL;
    bp_layer_facts *f = NULL;
    bp_model_facts mf;
    int n;
    ck_assert_int_eq(bp_onnx_load(&g, BP_SRCDIR "/examples/cnn.onnx"), BP_OK);
    ck_assert_int_eq(bp_layer_facts_from_graph(g, &f, &n, &mf), BP_OK);
    ck_assert_int_eq(n, 7);
    ck_assert_int_eq(mf.float_params, 19994);
    ck_assert_int_eq(mf.other_params, 0);   /* every BatchNorm folds */
    ck_assert_int_eq(mf.const_bytes, 19);   /* input scale, 2 residuals, pool */
    cnn c;
    ck_assert_int_eq(cnn_open(&c, "nvidia-t4", NULL), BP_OK);
    for (int i = 0; i < n; i++) {
        const bp_sens_layer *s = &c.sens->layers[i];
        ck_assert_str_eq(f[i].name, s->name);
        ck_assert_int_eq(f[i].numel, s->numel);
        ck_assert_int_eq(f[i].macs, s->macs);
        ck_assert_int_eq(f[i].out_channels, s->out_channels);
        ck_assert_int_eq(f[i].in_numel, s->in_numel);
        ck_assert_int_eq(f[i].out_numel, s->out_numel);
    }
    bp_alloc *ag = NULL;
    bp_model_facts mfc = mf;
    ck_assert_int_eq(bp_alloc_new(&ag, c.sens, SENS, f, n, &mfc, c.prof, NULL),
                     BP_OK);
    bp_budget b[2];
    ck_assert_int_eq(bp_budget_parse("size=20%", &b[0]), BP_OK);
    ck_assert_int_eq(bp_budget_parse("bops=60%", &b[1]), BP_OK);
    bp_alloc_result r1, r2;
    ck_assert_int_eq(bp_alloc_solve(c.a, 2, b, NULL, &r1), BP_OK);
    ck_assert_int_eq(bp_alloc_solve(ag, 2, b, NULL, &r2), BP_OK);
    ck_assert(r1.objective == r2.objective);
    ck_assert(r1.size_bytes == r2.size_bytes);
    ck_assert(r1.total_latency_s == r2.total_latency_s);
    ck_assert(r1.total_bops == r2.total_bops);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(r1.w_bits[i], r2.w_bits[i]);
    /* a plan from the result */
    bp_plan *p = NULL;
    double v[2];
    ck_assert_int_eq(bp_alloc_resolve(ag, &b[0], &v[0]), BP_OK);
    ck_assert_int_eq(bp_alloc_resolve(ag, &b[1], &v[1]), BP_OK);
    ck_assert(v[0] == 0.2 * 4 * 19994);
    ck_assert_int_eq(bp_alloc_plan(ag, &r2, 2, b, v, g->path, g->hash,
                                   c.prof->name, &p), BP_OK);
    ck_assert_str_eq(p->budgets[0].text, "20%");
    ck_assert_str_eq(p->layers[6].name, "fc.weight");
    ck_assert(p->size_bytes == r2.size_bytes);
    bp_plan_free(&p);
    bp_alloc_result_free(&r1);
    bp_alloc_result_free(&r2);
    /* a sensitivity file of another model is refused */
    f[2].numel++;
    bp_alloc_free(&ag);
    ck_assert_int_eq(bp_alloc_new(&ag, c.sens, SENS, f, n, &mfc, c.prof, NULL),
                     BP_EINVAL);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "res1b.conv.weight"));
    f[2].numel--;

    /* activations at 4 or 8 bits: a layer reading fewer bits than another
     * reader of its input reads a 5-byte REQUANT copy.  Every plan stays
     * within its cap with the copies counted, and some plans near a cap
     * is priced to the byte. */
    bp_alloc_opts ao;
    bp_alloc_opts_default(&ao);
    ao.abits = 1u << 4 | 1u << 8;
    ck_assert_int_eq(bp_alloc_new(&ag, c.sens, SENS, f, n, &mfc, c.prof, &ao),
                     BP_OK);
    int copies = 0;
    for (double cap = 8700; cap <= 12000; cap += 7) {
        bp_budget_kind k = BP_BUDGET_SIZE;
        bp_alloc_result rr;
        ck_assert_int_eq(bp_alloc_solve_caps(ag, 1, &k, &cap, NULL, NULL, &rr),
                         BP_OK);
        ck_assert(rr.size_bytes <= cap);
        double sum = 19; /* the CNN's const_bytes */
        for (int i = 0; i < n; i++)
            sum += rr.bytes[i];
        ck_assert(rr.size_bytes == sum || rr.size_bytes == sum + 5);
        copies += rr.size_bytes == sum + 5;
        bp_alloc_result_free(&rr);
    }
    ck_assert_int_gt(copies, 10);
    bp_alloc_free(&ag);
    cnn_close(&c);
    free(f);
    bp_graph_free(&g);
}
END_TEST

START_TEST(test_eig_metric_and_ties)
{
    bp_alloc_opts o;
    bp_alloc_opts_default(&o);
    o.metric = BP_METRIC_EIG;
    const char *tie[] = {"down_a.conv.weight", "down_proj.conv.weight"};
    bp_alloc_tie t = {2, tie};
    o.ties = &t;
    o.n_ties = 1;
    cnn c;
    ck_assert_int_eq(cnn_open(&c, "nvidia-t4", &o), BP_OK);
    bp_alloc_result r;
    ck_assert_int_eq(solve1(&c, "size=15%", &r), BP_OK);
    ck_assert_int_eq(r.n_groups, 6);
    ck_assert_int_eq(r.w_bits[3], r.w_bits[5]);
    double want = 0;
    for (int i = 0; i < 7; i++) {
        const bp_sens_layer *l = &c.sens->layers[i];
        double om = l->top_eig / (double)l->numel * l->perturbation[r.w_bits[i]];
        ck_assert(r.omega[i] == om);
        want += om;
    }
    ck_assert_double_eq_tol(r.objective, want, 1e-12 * want);
    bp_alloc_result_free(&r);
    cnn_close(&c);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("alloc");
    TCase *tc = tcase_create("core");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_budget_parse);
    tcase_add_test(tc, test_random_vs_brute_force);
    tcase_add_test(tc, test_unreachable_budget);
    tcase_add_test(tc, test_fixed_bytes);
    tcase_add_test(tc, test_joint_budgets);
    tcase_add_test(tc, test_input_errors);
    tcase_add_test(tc, test_dominance);
    tcase_add_test(tc, test_sweep_monotone);
    tcase_add_test(tc, test_graph_and_file_agree);
    tcase_add_test(tc, test_eig_metric_and_ties);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
