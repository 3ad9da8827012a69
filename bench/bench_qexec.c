/* bench_qexec.c - latency of the integer-only executor against bitplan's own
 * float executor (same run, same threads), against the latency a measured
 * profile predicts for the plan, and against PyTorch's float32 and int8
 * paths on the same ResNet-18.
 *
 *   bench/bench_qexec [--threads N] [--repeat N] [--profile HW.json]
 *                     [--generic HW.json] [--isa portable|avx2|avx512-vnni]
 *                     [--no-winograd] [--model M.onnx --calib C.npy [--batch N]]
 *
 * Models: the example CNN and MLP (batch 1 and 64) and, when it has been
 * exported (/usr/bin/python3 bench/export_resnet18.py), bench/resnet18.onnx
 * with bench/resnet18_calib.npy (batch 1 and 8); BITPLAN_RESNET18=DIR
 * points elsewhere.  Plans: all weights and activations at 8 bits, weights
 * at 4 bits, and mixed weights (2 to 8 bits, layer by layer).  Two
 * predictions of each plan at batch 1, next to the measured latency: from
 * a profile of the models' own layers (--profile), and from the generic
 * profile (--generic: the fitted layer model and op costs).  Unless given,
 * both come from one `bitplan profile --measure --model` of the three
 * models, measured here first (its table and the roofline beside it).
 * With --model M.onnx --calib C.npy, model M alone (batch 1 and --batch,
 * default 64; a quick profile of M's layers unless --profile, and the
 * generic prediction only with --generic).
 * When /usr/bin/python3 has torch, bench/torch_int8.py times PyTorch on the
 * same ResNet-18.  Latencies are medians per sample, the float path and
 * the three plans timed in turns (interleaved()); each speed-up is printed
 * twice: the ratio of the two medians, and the median of the ratios of
 * the blocks each round timed back to back (a VM's speed that changes
 * from one second to the next can put the two medians in different
 * spells); figures, not a test.
 *
 * The bench opens and ends with the machine's state (spells.h): the
 * share of 10 ms windows in which each CPU's vector throughput was
 * slowed by a busy sibling; `bench_qexec --spells` prints only that.
 *
 *   bench/bench_qexec --trace [--model M.onnx --calib C.npy] [--bits W]
 *                     [--seconds S] [--threads N]
 *
 * runs one model (the example CNN unless --model) at batch 1 back to back
 * for S seconds (default 60) and prints the medians of its 250 ms windows
 * as a timeline, and how many pairs of windows differ by more than 25%:
 * whether latencies measured at different times on this machine can be
 * compared at all.
 *
 *   bench/bench_qexec --ops [--bits W] [--batch N] [--threads N] [--repeat N]
 *                     [--model M.onnx --calib C.npy] [--isa NAME]
 *                     [--no-winograd]
 *
 * prints instead the median time of every op of ResNet-18 (or the example
 * CNN when ResNet-18 was not exported, or model M calibrated on C) under
 * the uniform wWa8 plan: where
 * the time goes, layer by layer, with each layer's shape and GMAC/s. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "bitplan.h"
#include "plan.h"
#include "qcalib.h"
#include "qexec.h"
#include "qgraph.h"
#include "qkernels_impl.h"
#include "qprofile.h"
#include "spells.h"

#ifndef BP_SRCDIR
#define BP_SRCDIR "."
#endif

/* The "-roofline.json" that `profile --measure --model` writes beside the
 * profile at path (qprofile.c) */
static void roofline_of(const char *path, char *rl, size_t n)
{
    const char *dot = strrchr(path, '.');
    int stem = dot && strcmp(dot, ".json") == 0 ? (int)(dot - path) : (int)strlen(path);
    snprintf(rl, n, "%.*s-roofline.json", stem, path);
}

/* A profile this bench measured, and its roofline */
static void remove_profile(const char *path)
{
    char rl[600];
    roofline_of(path, rl, sizeof rl);
    remove(path);
    remove(rl);
}

/* One `bitplan profile --measure --model A --model B ...` of the models
 * the bench runs, as a user would measure a machine: the models' layers
 * timed in five passes spread over the whole grid's minute, so that each
 * entry pools the machine's spells over that time (a quick profile per
 * model took its passes within a second or two, one spell's snapshot).
 * The table predicts as --profile, the roofline written beside it as
 * --generic.  Models that do not load are left out. */
static int measure_profile(const char *path, const char *const *models,
                           int n, int threads)
{
    bp_graph *g[8] = {0};
    int k = 0, st = BP_OK;
    for (int i = 0; i < n && i < 8; i++)
        if (access(models[i], R_OK) == 0 && bp_onnx_load(&g[k], models[i]) == BP_OK)
            k++;
    bp_qprofile_opts po;
    bp_qprofile_opts_init(&po);
    po.threads = threads;
    po.models = g;
    po.n_models = k;
    printf("(measuring a profile of this machine and of the %d models' layers, "
           "as bitplan profile --measure --model does)\n", k);
    if ((st = bp_qprofile_measure(path, &po, NULL)))
        fprintf(stderr, "%s\n", bp_errmsg());
    for (int i = 0; i < k; i++)
        bp_graph_free(&g[i]);
    return st;
}

typedef int (*run_fn)(void *ctx, const float *x, int64_t n);

/* Medians per sample of k contenders timed in turns: each round gives
 * every contender, in turn, a block of runs: untimed for WARM_S, then
 * timed for about 0.1 s; rounds go on until every contender has at least
 * `repeat` timed runs and 0.5 s of them.  Load that comes and goes on a
 * shared machine then falls on all of them alike, where medians taken one
 * after the other could differ by 40%.  The untimed lead outlasts
 * OpenBLAS's threads, which spin on after the float path's last call (0.11 s
 * of CPU, measured on ResNet-18 with 2 threads), and wakes what an idle
 * pause put to sleep (a sleep there slowed the next runs of the small CNN
 * by half). */
#define WARM_S 0.15
/* The median of n values (sorted in place). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bp_bench_cmp_double);
    return n ? v[n / 2] : NAN;
}

/* pair (optional, k entries): per contender i, the median over the rounds
 * that timed both of (contender 0's block median / contender i's): a ratio
 * of two blocks timed 0.1-0.4 s apart, where a VM whose speed changes by
 * 1.5x from one second to the next can put the two medians of out[] in
 * different spells. */
static int interleaved(const run_fn *fn, void *const *ctx, int k,
                       const float *x, int64_t batch, int repeat, double *out,
                       double *pair)
{
    enum { MAXR = 20000, MAXB = 4096 };
    double *t = malloc(sizeof *t * (size_t)(MAXR * k));
    double *spent = calloc((size_t)k, sizeof *spent);
    int *n = calloc((size_t)k, sizeof *n);
    /* per contender and round: its block's first run and count (0: none) */
    int *bs = calloc((size_t)(MAXB * k), sizeof *bs);
    int *bn = calloc((size_t)(MAXB * k), sizeof *bn);
    double *tmp = malloc(sizeof *tmp * (size_t)(MAXR + MAXB));
    if (!t || !spent || !n || !bs || !bn || !tmp) {
        free(t);
        free(spent);
        free(n);
        free(bs);
        free(bn);
        free(tmp);
        return BP_ENOMEM;
    }
    int rounds = 0;
    /* a contender is done with `repeat` runs and 0.5 s of them, or with
     * MAXR runs (a model of microseconds) */
#define DONE(i) (n[i] >= MAXR || (n[i] >= repeat && spent[i] >= 0.5))
    for (int round = 0;; round++) {
        int more = 0;
        for (int i = 0; i < k; i++)
            more |= !DONE(i);
        if (!more || round == MAXB)
            break;
        rounds = round + 1;
        for (int j = 0; j < k; j++) {
            int i = (j + round) % k;
            if (DONE(i))
                continue;
            double t0 = bp_bench_now(), b0;
            do
                fn[i](ctx[i], x, batch);
            while (bp_bench_now() - t0 < WARM_S);
            b0 = bp_bench_now();
            bs[i * MAXB + round] = n[i];
            while (n[i] < MAXR && bp_bench_now() - b0 < 0.1) {
                double t1 = bp_bench_now();
                fn[i](ctx[i], x, batch);
                double d = bp_bench_now() - t1;
                t[i * MAXR + n[i]++] = d;
                spent[i] += d;
            }
            bn[i * MAXB + round] = n[i] - bs[i * MAXB + round];
        }
    }
#undef DONE
    for (int i = 0; pair && i < k; i++) {
        int m = 0;
        for (int r = 0; r < rounds; r++) {
            int c0 = bn[r], ci = bn[i * MAXB + r];
            if (!c0 || !ci)
                continue;
            memcpy(tmp, t + bs[r], (size_t)c0 * sizeof *tmp);
            double m0 = median(tmp, c0);
            memcpy(tmp, t + i * MAXR + bs[i * MAXB + r], (size_t)ci * sizeof *tmp);
            double mi = median(tmp, ci);
            tmp[MAXR + m++] = m0 / mi;
        }
        pair[i] = m ? median(tmp + MAXR, m) : NAN;
    }
    for (int i = 0; i < k; i++)
        out[i] = n[i] ? median(t + i * MAXR, n[i]) / (double)batch : NAN;
    free(spent);
    free(n);
    free(t);
    free(bs);
    free(bn);
    free(tmp);
    return BP_OK;
}

static int run_float(void *ctx, const float *x, int64_t n)
{
    const void *in[1] = {x};
    return bp_exec_run(ctx, in, n);
}

static int run_int(void *ctx, const float *x, int64_t n)
{
    const float *in[1] = {x};
    return bp_qexec_run(ctx, in, n);
}

/* w > 0: every layer at w bits; w == 0: 8, 4, 3, 6, 2, 5, 7, 8, ... layer
 * by layer (a mixed plan). */
static bp_plan *uniform(bp_graph *g, int w, int a)
{
    static const int mix[] = {8, 4, 3, 6, 2, 5, 7};
    bp_layer *ls;
    int nl;
    bp_plan *p = NULL;
    if (bp_graph_layers(g, &ls, &nl) || bp_plan_new(&p, nl, 0))
        return NULL;
    p->model_sha256 = strdup(g->hash);
    for (int i = 0; i < nl; i++) {
        p->layers[i].name = strdup(ls[i].name);
        p->layers[i].w_bits = w ? w : mix[i % 7];
        p->layers[i].a_bits = a;
    }
    free(ls);
    return p;
}

static void print_pred(const char *what, const char *prof, bp_graph *g,
                       const bp_plan *p, double measured)
{
    double pred;
    if (bp_qprofile_predict(prof, g, p, &pred) == BP_OK)
        printf("    %-34s %10.4f ms (measured %+.0f%%; error %+.0f%%)\n", what,
               pred * 1e3, (measured / pred - 1) * 100,
               (pred / measured - 1) * 100);
    else
        printf("    %-34s %s\n", what, bp_errmsg());
}

static void print_ms(const char *what, double s)
{
    printf("    %-34s %10.3f ms\n", what, s * 1e3);
}

static int bench_model(const char *name, const char *model, const char *calib,
                       int64_t big, int threads, int repeat,
                       const char *profile, const char *generic,
                       double *int8_b1)
{
    bp_graph *g = NULL;
    bp_tensor *C = NULL;
    bp_qcalib *qc = NULL;
    int st;
    if ((st = bp_onnx_load(&g, model)) || (st = bp_npy_load(&C, calib))) {
        fprintf(stderr, "%s\n", bp_errmsg());
        goto out;
    }
    int64_t n = C->dims[0], per = bp_tensor_numel(C) / n;
    float *x = malloc(sizeof *x * (size_t)(per * big));
    for (int64_t i = 0; i < per * big; i++)
        x[i] = ((const float *)C->data)[i % (per * n)];
    if ((st = bp_qcalib_new(&qc, g, C->data, n < 64 ? n : 64, 16))) {
        fprintf(stderr, "%s\n", bp_errmsg());
        free(x);
        goto out;
    }
    char prof[512];
    if (profile) {
        snprintf(prof, sizeof prof, "%s", profile);
    } else {
        snprintf(prof, sizeof prof, "/tmp/bench_qexec_%d.json", (int)getpid());
        bp_qprofile_opts po;
        bp_qprofile_opts_init(&po);
        po.threads = threads;
        po.models = &g;
        po.n_models = 1;
        po.bits = 0x1fc; /* 2..8: the mixed plan needs them all */
        po.repeat = repeat;
        po.quick = 1; /* only the grid is cut short; the model is measured */
        printf("  (measuring a profile of %s's layers for the predictions)\n",
               name);
        if ((st = bp_qprofile_measure(prof, &po, NULL))) {
            fprintf(stderr, "%s\n", bp_errmsg());
            free(x);
            goto out;
        }
    }
    printf("%s (%s), %d threads, %s kernels\n", name, model, threads,
           bp_qk_isa_name(bp_qk_isa_get()));
    for (int64_t b = 1; b <= big && !st; b = b == 1 ? big : big + 1) {
        /* the float path and the three plans, timed in turns */
        enum { K = 4 };
        static const int widths[K - 1] = {8, 4, 0};
        run_fn fns[K] = {run_float, run_int, run_int, run_int};
        void *ctx[K] = {0};
        bp_exec *fe = NULL;
        bp_plan *p[K - 1] = {0};
        bp_qmodel *qm[K - 1] = {0};
        bp_qexec *ex[K - 1] = {0};
        double t[K], pr[K];
        if ((st = bp_exec_new(&fe, g, BP_F32, b)))
            break;
        ctx[0] = fe;
        for (int j = 0; j < K - 1 && !st; j++) {
            if (!(p[j] = uniform(g, widths[j], 8)))
                st = BP_ENOMEM;
            else if ((st = bp_qmodel_new(&qm[j], g, p[j], qc, NULL)) ||
                (st = bp_qexec_new(&ex[j], qm[j], b, threads)))
                fprintf(stderr, "%s\n", bp_errmsg());
            ctx[j + 1] = ex[j];
        }
        if (!st && (st = interleaved(fns, ctx, K, x, b, repeat, t, pr)))
            fprintf(stderr, "out of memory\n");
        if (!st) {
            printf("  batch %lld (float and integer runs in turns)\n", (long long)b);
            print_ms("float32 executor (per sample)", t[0]);
        }
        for (int j = 0; j < K - 1 && !st; j++) {
            int w = widths[j];
            double ti = t[j + 1];
            char what[64];
            if (w)
                snprintf(what, sizeof what, "integer w%da8 (per sample)", w);
            else
                snprintf(what, sizeof what, "integer w2..8 a8 (per sample)");
            printf("    %-34s %10.4f ms\n", what, ti * 1e3);
            printf("    %-34s %10.2fx\n", "  speed-up over float32", t[0] / ti);
            printf("    %-34s %10.2fx\n", "  paired, median of rounds", pr[j + 1]);
            if (b == 1) {
                print_pred("  --model profile predicts", prof, g, p[j], ti);
                if (generic)
                    print_pred("  generic profile predicts", generic, g, p[j], ti);
                if (w == 8 && int8_b1)
                    *int8_b1 = ti;
            }
            printf("    %-34s %10lld bytes\n", "  packed size",
                   (long long)qm[j]->size_bytes);
        }
        for (int j = 0; j < K - 1; j++) {
            bp_qexec_free(&ex[j]);
            bp_qmodel_free(&qm[j]);
            bp_plan_free(&p[j]);
        }
        bp_exec_free(&fe);
    }
    if (!profile)
        remove_profile(prof);
    free(x);
out:
    bp_qcalib_free(&qc);
    bp_tensor_free(&C);
    bp_graph_free(&g);
    return st;
}

/* One model under a uniform wWa8 plan, calibrated on the first 64
 * samples of C, with an executor for batch b: what --ops and --trace
 * time.  um_close frees whatever um_open made, also after a failure. */
typedef struct umodel {
    bp_graph *g;
    bp_tensor *C;
    bp_qcalib *qc;
    bp_plan *p;
    bp_qmodel *qm;
    bp_qexec *ex;
} umodel;

static int um_open(umodel *u, const char *model, const char *calib, int w,
                   int64_t b, int threads)
{
    int st;
    memset(u, 0, sizeof *u);
    if ((st = bp_onnx_load(&u->g, model)) || (st = bp_npy_load(&u->C, calib)))
        return st;
    int64_t n = u->C->dims[0];
    if ((st = bp_qcalib_new(&u->qc, u->g, u->C->data, n < 64 ? n : 64, 16)))
        return st;
    if (!(u->p = uniform(u->g, w, 8)))
        return BP_ENOMEM;
    if ((st = bp_qmodel_new(&u->qm, u->g, u->p, u->qc, NULL)))
        return st;
    return bp_qexec_new(&u->ex, u->qm, b, threads);
}

static void um_close(umodel *u)
{
    bp_qexec_free(&u->ex);
    bp_qmodel_free(&u->qm);
    bp_plan_free(&u->p);
    bp_qcalib_free(&u->qc);
    bp_tensor_free(&u->C);
    bp_graph_free(&u->g);
}

/* The per-op table of --ops. */
static int bench_ops(const char *model, const char *calib, int w, int64_t b,
                     int threads, int repeat)
{
    umodel u;
    double *t = NULL, *tot = NULL;
    float *x = NULL;
    int st;
    if ((st = um_open(&u, model, calib, w, b, threads)))
        goto out;
    const bp_qmodel *qm = u.qm;
    bp_qexec *ex = u.ex;
    int64_t n = u.C->dims[0], per = bp_tensor_numel(u.C) / n;
    if (!(x = malloc(sizeof *x * (size_t)(per * b)))) {
        st = BP_ENOMEM;
        goto out;
    }
    for (int64_t i = 0; i < per * b; i++)
        x[i] = ((const float *)u.C->data)[i % (per * n)];
    int no = qm->n_ops;
    t = calloc((size_t)(repeat * no), sizeof *t);
    tot = calloc((size_t)repeat, sizeof *tot);
    const float *in[1] = {x};
    bp_qexec_run(ex, in, b);
    for (int r = 0; r < repeat; r++) {
        double t0 = bp_bench_now();
        if ((st = bp_qexec_run_timed(ex, in, b, t + (size_t)r * no)))
            goto out;
        tot[r] = bp_bench_now() - t0;
    }
    qsort(tot, (size_t)repeat, sizeof *tot, bp_bench_cmp_double);
    printf("%s, w%da8, batch %lld, %d threads, %s kernels: median %.3f ms, "
           "min %.3f ms per run\n", model, w, (long long)b, threads,
           bp_qk_isa_name(bp_qk_isa_get()), tot[repeat / 2] * 1e3, tot[0] * 1e3);
    printf("%4s %-8s %-34s %9s %9s %8s\n", "op", "kind", "shape", "median ms",
           "min ms", "GMAC/s");
    double *col = malloc(sizeof *col * (size_t)repeat), sum = 0;
    for (int i = 0; i < no; i++) {
        for (int r = 0; r < repeat; r++)
            col[r] = t[(size_t)r * no + i];
        qsort(col, (size_t)repeat, sizeof *col, bp_bench_cmp_double);
        const bp_qop *o = &qm->ops[i];
        char shape[64] = "";
        double gmacs = 0;
        if (o->kind == BP_QOP_LAYER) {
            const bp_qlayer *L = &qm->layers[o->layer];
            const bp_conv_geom *ge = &L->k.geo;
            snprintf(shape, sizeof shape, "%lldx%lld s%lld %lldx%lldx%lld>%lld%s",
                     (long long)ge->kh, (long long)ge->kw, (long long)ge->stride_h,
                     (long long)ge->h, (long long)ge->w, (long long)ge->c,
                     (long long)ge->m, L->k.residual ? " +res" : "");
            gmacs = (double)L->macs * (double)b / col[repeat / 2] * 1e-9;
        }
        sum += col[repeat / 2];
        printf("%4d %-8s %-34s %9.4f %9.4f %8.1f\n", i, bp_qop_name(o->kind),
               shape, col[repeat / 2] * 1e3, col[0] * 1e3, gmacs);
    }
    printf("     sum of per-op medians %.3f ms\n", sum * 1e3);
    free(col);
out:
    if (st)
        fprintf(stderr, "%s\n", bp_errmsg());
    free(t);
    free(tot);
    free(x);
    um_close(&u);
    return st;
}

/* --trace: one model at batch 1 run back to back for `seconds`, and the
 * median of every 250 ms window as a timeline ('.' within 1.15x of the
 * fastest window, 's' within 1.4x, 'S' slower), with the share of
 * pairs of windows whose medians differ by more than 25%: how often two
 * latencies measured at different times on this machine disagree by
 * more than the profiles' promise, windows of 0.25 s and of 1 s. */
static int bench_trace(const char *model, const char *calib, int w,
                       int threads, double seconds)
{
    umodel u;
    double *t = NULL, *v = NULL, *med = NULL;
    int st;
    if ((st = um_open(&u, model, calib, w, 1, threads)))
        goto out;
    bp_qexec *ex = u.ex;
    const float *in[1] = {u.C->data};
    double t0 = bp_bench_now();
    while (bp_bench_now() - t0 < 0.2)
        bp_qexec_run(ex, in, 1);
    /* window medians, computed as the windows close: memory stays small
     * however many runs a window holds */
    int cap = 1 << 18, k = 0, nw = 0, wcap = (int)(seconds / 0.25) + 2;
    t = malloc(sizeof *t * (size_t)cap);
    med = malloc(sizeof *med * (size_t)wcap);
    if (!t || !med) {
        st = BP_ENOMEM;
        goto out;
    }
    t0 = bp_bench_now();
    double w0 = t0;
    while (nw < wcap) {
        double a = bp_bench_now();
        if ((st = bp_qexec_run(ex, in, 1)))
            goto out;
        double b = bp_bench_now();
        if (k < cap)
            t[k++] = b - a;
        if (b - w0 >= 0.25) {
            med[nw++] = median(t, k);
            k = 0;
            w0 = b;
            if (b - t0 >= seconds)
                break;
        }
    }
    double best = med[0];
    for (int i = 1; i < nw; i++)
        best = med[i] < best ? med[i] : best;
    printf("%s, w%da8, batch 1, %d threads, %s kernels: %d windows of 250 ms, "
           "fastest %.4f ms\n", model, w, threads,
           bp_qk_isa_name(bp_qk_isa_get()), nw, best * 1e3);
    for (int i = 0; i < nw; i++)
        printf("%s%c%s", i % 80 ? "" : "  ",
               med[i] < 1.15 * best ? '.' : med[i] < 1.4 * best ? 's' : 'S',
               i % 80 == 79 || i == nw - 1 ? "\n" : "");
    /* all pairs of windows, and of 1 s windows (medians of 4 medians) */
    for (int len = 1; len <= 4; len += 3) {
        int m = nw / len, off = 0, pairs = 0;
        if (!(v = malloc(sizeof *v * (size_t)(m + 1)))) {
            st = BP_ENOMEM;
            goto out;
        }
        for (int i = 0; i < m; i++) {
            double q[4];
            memcpy(q, med + i * len, sizeof *q * (size_t)len);
            v[i] = median(q, len);
        }
        for (int i = 0; i < m; i++)
            for (int j = i + 1; j < m; j++, pairs++)
                off += v[i] > 1.25 * v[j] || v[j] > 1.25 * v[i];
        printf("  windows of %.2f s: %d of %d pairs (%.0f%%) differ by more "
               "than 25%%\n", 0.25 * len, off, pairs,
               pairs ? 100.0 * off / pairs : 0);
        free(v);
        v = NULL;
    }
out:
    if (st)
        fprintf(stderr, "%s\n", bp_errmsg());
    free(t);
    free(v);
    free(med);
    um_close(&u);
    return st;
}

int main(int argc, char **argv)
{
    int threads = 2, repeat = 20, ops = 0, wbits = 8, spells = 0, trace = 0;
    double seconds = 60;
    int64_t batch = 1;
    const char *profile = NULL, *generic = NULL;
    const char *ops_model = NULL, *ops_calib = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--profile") == 0 && i + 1 < argc)
            profile = argv[++i];
        else if (strcmp(argv[i], "--generic") == 0 && i + 1 < argc)
            generic = argv[++i];
        else if (strcmp(argv[i], "--ops") == 0)
            ops = 1;
        else if (strcmp(argv[i], "--spells") == 0)
            spells = 1;
        else if (strcmp(argv[i], "--trace") == 0)
            trace = 1;
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--bits") == 0 && i + 1 < argc)
            wbits = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoll(argv[++i]);
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            ops_model = argv[++i];
        else if (strcmp(argv[i], "--calib") == 0 && i + 1 < argc)
            ops_calib = argv[++i];
        else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            /* another kernel set than the best this CPU runs, to compare
             * them on one machine */
            const char *want = argv[++i];
            int k = 0;
            while (k < BP_QK_ISA_COUNT && strcmp(want, bp_qk_isa_name((bp_qk_isa)k)))
                k++;
            if (k == BP_QK_ISA_COUNT || bp_qk_isa_set((bp_qk_isa)k)) {
                fprintf(stderr, "bench_qexec: --isa %s: not a kernel set this "
                        "CPU runs\n", want);
                return 2;
            }
        } else if (strcmp(argv[i], "--no-winograd") == 0) {
            /* AVX2's 3x3 layers by the direct GEMM, to compare */
            bp_qk_wino_set(0);
        } else {
            fprintf(stderr, "usage: bench_qexec [--threads N] [--repeat N] "
                    "[--profile HW.json] [--generic HW.json] [--isa NAME] "
                    "[--no-winograd] [--model M --calib C [--batch N]]\n"
                    "       bench_qexec --ops [--bits W] [--batch N] "
                    "[--threads N] [--repeat N] [--model M --calib C] "
                    "[--isa NAME] [--no-winograd]\n"
                    "       bench_qexec --spells\n"
                    "       bench_qexec --trace [--model M --calib C] [--bits W] "
                    "[--seconds S] [--threads N]\n");
            return 2;
        }
    }
    bp_set_threads(threads);
    if (repeat < 1 || batch < 1 || wbits < 2 || wbits > 8) {
        fprintf(stderr, "bench_qexec: --repeat, --batch >= 1, --bits 2..8\n");
        return 2;
    }
    if (spells)
        return bp_bench_spells(stdout, 2.0) ? 1 : 0;
    if (trace) {
        if (!(seconds >= 1 && seconds <= 3600)) {
            fprintf(stderr, "bench_qexec: --seconds 1..3600\n");
            return 2;
        }
        return bench_trace(ops_model ? ops_model : BP_SRCDIR "/examples/cnn.onnx",
                           ops_calib ? ops_calib
                                     : BP_SRCDIR "/examples/digits_calib_x.npy",
                           wbits, threads, seconds) ? 1 : 0;
    }
    const char *dir = getenv("BITPLAN_RESNET18");
    char model[1024], calib[1024];
    snprintf(model, sizeof model, "%s/resnet18.onnx", dir ? dir : BP_SRCDIR "/bench");
    snprintf(calib, sizeof calib, "%s/resnet18_calib.npy", dir ? dir : BP_SRCDIR "/bench");
    if (ops) {
        if (ops_model && ops_calib)
            return bench_ops(ops_model, ops_calib, wbits, batch, threads,
                             repeat) ? 1 : 0;
        if (access(model, R_OK) || access(calib, R_OK))
            return bench_ops(BP_SRCDIR "/examples/cnn.onnx",
                             BP_SRCDIR "/examples/digits_calib_x.npy", wbits,
                             batch, threads, repeat) ? 1 : 0;
        return bench_ops(model, calib, wbits, batch, threads, repeat) ? 1 : 0;
    }
    if (ops_model && ops_calib) {
        /* one model, float and integer in turns (batch --batch) */
        return bench_model(ops_model, ops_model, ops_calib,
                           batch > 1 ? batch : 64, threads, repeat, profile,
                           generic, NULL) ? 1 : 0;
    }
    /* the machine's state before and after: the figures between are a
     * mix of its spells */
    bp_bench_spells(stdout, 1.0);
    char gen[512], own[512], rl[600];
    int measured = 0;
    if (!profile && !generic) {
        const char *const models[] = {BP_SRCDIR "/examples/cnn.onnx",
                                      BP_SRCDIR "/examples/mlp.onnx", model};
        snprintf(own, sizeof own, "/tmp/bench_qexec_%d.json", (int)getpid());
        if (measure_profile(own, models, 3, threads))
            return 1;
        roofline_of(own, rl, sizeof rl);
        profile = own;
        generic = rl;
        measured = 1;
    } else if (!generic) {
        snprintf(gen, sizeof gen, "/tmp/bench_qexec_generic_%d.json",
                 (int)getpid());
        bp_qprofile_opts po;
        bp_qprofile_opts_init(&po);
        po.threads = threads;
        printf("(measuring the generic profile: the shape grid, no model)\n");
        if (bp_qprofile_measure(gen, &po, NULL)) {
            fprintf(stderr, "%s\n", bp_errmsg());
            return 1;
        }
        generic = gen;
    }
    bench_model("example CNN", BP_SRCDIR "/examples/cnn.onnx",
                BP_SRCDIR "/examples/digits_calib_x.npy", 64, threads, repeat,
                profile, generic, NULL);
    bench_model("example MLP", BP_SRCDIR "/examples/mlp.onnx",
                BP_SRCDIR "/examples/digits_calib_flat.npy", 64, threads,
                repeat, profile, generic, NULL);
    if (access(model, R_OK) || access(calib, R_OK)) {
        printf("ResNet-18: %s not found; make it with\n"
               "  /usr/bin/python3 %s/bench/export_resnet18.py\n", model,
               BP_SRCDIR);
        if (generic == gen)
            remove_profile(gen);
        if (measured)
            remove_profile(own);
        bp_bench_spells(stdout, 1.0);
        return 0;
    }
    double int8 = NAN;
    bench_model("ResNet-18 224x224", model, calib, 8, threads, repeat / 2 + 1,
                profile, generic, &int8);
    if (generic == gen)
        remove_profile(gen);
    if (measured)
        remove_profile(own);
    if (access("/usr/bin/python3", X_OK) == 0) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/bench/torch_int8.py "
                 "--threads %d --repeat %d 2>/dev/null", BP_SRCDIR, threads,
                 repeat);
        FILE *f = popen(cmd, "r");
        char line[512];
        double torch_int8 = NAN;
        while (f && fgets(line, sizeof line, f)) {
            printf("  %s", line);
            double v;
            if (sscanf(line, "torch int8 batch 1: %lf", &v) == 1)
                torch_int8 = v * 1e-3;
        }
        if (f)
            pclose(f);
        if (isfinite(torch_int8) && isfinite(int8))
            printf("  bitplan int8 / torch int8 at batch 1: %.2fx (target <= 1.5)\n",
                   int8 / torch_int8);
    }
    bp_bench_spells(stdout, 1.0);
    return 0;
}
