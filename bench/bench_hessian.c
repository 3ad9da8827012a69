/* bench_hessian.c - figures of the sensitivity stage on the CNN example with
 * its 256-sample calibration set (not a test: it prints, it does not judge).
 *
 *  1. the cost of one Hessian-vector product (all layers' weights at once)
 *     relative to one forward + backward pass, with the batch's primal pass
 *     cached (as PyHessian keeps its graph) and with its own pass;
 *  2. wall seconds to every layer's trace at 2% accuracy with the default
 *     settings (exact where the structure allows), and optionally (--all)
 *     with Hutch++ and with Hutchinson;
 *  3. when /usr/bin/python3 has torch: bench/pyhessian_ref.py, a
 *     PyHessian-style torch loop on the same model and data (Rademacher
 *     samples until every layer's relative standard error is at most 2%,
 *     projected from the measured rate when it would run past
 *     --torch-seconds), and the ratios at equal accuracy and at equal
 *     sample count.
 * Both sides use the same number of threads (--threads, default 2). */
#include "autodiff.h"
#include "benchutil.h"
#include "bitplan.h"
#include "estimators.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct mem {
    double *x;
    int64_t per;
} mem;

static int mem_read(void *ctx, int64_t start, int64_t n, double *x)
{
    mem *m = ctx;
    memcpy(x, m->x + start * m->per, (size_t)(n * m->per) * sizeof *x);
    return BP_OK;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_hessian: %s: %s\n", what, bp_errmsg());
    exit(1);
}

static double traces_time(bp_graph *g, const bp_sens_data *d,
                          const bp_sens_opts *o, const char *label)
{
    bp_hessian *h = NULL;
    double t0 = bp_bench_now();
    if (bp_hessian_new(&h, g, d, o->batch))
        die("hessian");
    int nl = bp_hessian_n_layers(h);
    bp_trace_est *est = calloc((size_t)nl, sizeof *est);
    bp_trace_scope sc;
    if (bp_hessian_traces(h, o, est, &sc))
        die("traces");
    double t = bp_bench_now() - t0;
    printf("  %-34s %8.2f s  (%lld Hessian-vector products)\n", label, t,
           (long long)bp_hessian_products(h));
    for (int i = 0; i < nl; i++)
        printf("      %-24s %-10s %12.6g  rel.se %.4f  samples %lld\n",
               bp_hessian_layer(h, i)->name,
               est[i].method == BP_TRACE_EXACT ? "exact"
               : est[i].method == BP_TRACE_HUTCHPP ? "hutchpp" : "hutchinson",
               est[i].mean, est[i].mean ? est[i].stderr_ / fabs(est[i].mean) : 0,
               (long long)est[i].samples);
    free(est);
    bp_hessian_free(&h);
    return t;
}

static cJSON *run_torch(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/bench/pyhessian_ref.py' %s"
             " 2>/dev/null", BP_SRCDIR, args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    if (pclose(p) != 0)
        return NULL;
    return cJSON_Parse(buf);
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int main(int argc, char **argv)
{
    int threads = 2, all = 0, torch = 1;
    double torch_seconds = 600;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--torch-seconds") && i + 1 < argc)
            torch_seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--all"))
            all = 1;
        else if (!strcmp(argv[i], "--no-torch"))
            torch = 0;
        else {
            fprintf(stderr, "usage: bench_hessian [--threads N] [--all] "
                    "[--no-torch] [--torch-seconds S]\n");
            return 2;
        }
    }
    bp_set_threads(threads);
    char path[2048];
    bp_graph *g = NULL;
    bp_tensor *xt = NULL, *yt = NULL;
    snprintf(path, sizeof path, "%s/examples/cnn.onnx", BP_SRCDIR);
    if (bp_onnx_load(&g, path))
        die(path);
    snprintf(path, sizeof path, "%s/examples/digits_calib_x.npy", BP_SRCDIR);
    if (bp_npy_load(&xt, path))
        die(path);
    snprintf(path, sizeof path, "%s/examples/digits_calib_y.npy", BP_SRCDIR);
    if (bp_npy_load(&yt, path))
        die(path);
    const int64_t N = xt->dims[0], per = bp_tensor_numel(xt) / N;
    mem m = {malloc((size_t)(N * per) * sizeof(double)), per};
    int64_t *labels = malloc((size_t)N * sizeof *labels);
    for (int64_t i = 0; i < N * per; i++)
        m.x[i] = bp_tensor_get(xt, i);
    for (int64_t i = 0; i < N; i++)
        labels[i] = (int64_t)bp_tensor_get(yt, i);
    printf("bench_hessian: examples/cnn.onnx, %lld calibration samples, "
           "float64, %d threads\n\n", (long long)N, threads);

    /* 1. one Hv vs one forward + backward */
    bp_layer *layers;
    int nl;
    if (bp_graph_layers(g, &layers, &nl))
        die("layers");
    int *pv = malloc((size_t)nl * sizeof *pv);
    for (int i = 0; i < nl; i++)
        pv[i] = layers[i].weight;
    bp_ad *ad;
    if (bp_ad_new(&ad, g, pv, nl, N))
        die("autodiff");
    const double **v = calloc((size_t)nl, sizeof *v);
    double **hv = calloc((size_t)nl, sizeof *hv);
    for (int i = 0; i < nl; i++) {
        double *t = malloc((size_t)layers[i].numel * sizeof *t);
        for (int64_t j = 0; j < layers[i].numel; j++)
            t[j] = (j * 2654435761u >> 7) & 1 ? 1.0 : -1.0;
        v[i] = t;
        hv[i] = calloc((size_t)layers[i].numel, sizeof *hv[i]);
    }
    const int R = 10;
    bp_ad_set_batch(ad, m.x, labels, N, 1.0 / N); /* warm up */
    bp_ad_hvp(ad, v, hv);
    double t0 = bp_bench_now();
    for (int r = 0; r < R; r++)
        if (bp_ad_set_batch(ad, m.x, labels, N, 1.0 / N))
            die("forward");
    double fb = (bp_bench_now() - t0) / R;
    t0 = bp_bench_now();
    for (int r = 0; r < R; r++)
        if (bp_ad_hvp(ad, v, hv))
            die("hvp");
    double hvt = (bp_bench_now() - t0) / R, thr;
    printf("1. Hessian-vector product over all %d layers' weights (%lld "
           "samples):\n", nl, (long long)N);
    printf("  forward + backward                 %8.1f ms\n", fb * 1e3);
    printf("  Hv, primal pass cached             %8.1f ms  = %.2f x forward+"
           "backward  (target <= 3x)\n", hvt * 1e3, hvt / fb);
    printf("  Hv with its own forward+backward   %8.1f ms  = %.2f x forward+"
           "backward\n", (hvt + fb) * 1e3, (hvt + fb) / fb);
    /* throughput: several directions per pass on the worker threads, as the
     * estimators run them */
    enum { K = 10 };
    bp_ad_dir dirs[K];
    double **hvk = calloc((size_t)K * nl, sizeof *hvk);
    for (int j = 0; j < K; j++) {
        for (int i = 0; i < nl; i++)
            hvk[j * nl + i] = calloc((size_t)layers[i].numel, sizeof(double));
        dirs[j].v = v;
        dirs[j].hv = hvk + j * nl;
    }
    if (bp_ad_set_threads(ad, threads))
        die("threads");
    t0 = bp_bench_now();
    if (bp_ad_hvp_many(ad, K, dirs))
        die("hvp_many");
    thr = (bp_bench_now() - t0) / K;
    printf("  Hv throughput, %d directions per pass on %d worker threads: "
           "%.1f ms per product\n\n", K, threads, thr * 1e3);
    for (int q = 0; q < K * nl; q++)
        free(hvk[q]);
    free(hvk);
    for (int i = 0; i < nl; i++) {
        free((void *)v[i]);
        free(hv[i]);
    }
    free(v);
    free(hv);
    bp_ad_free(&ad);

    /* 2. time to every layer's trace at 2% */
    bp_sens_data d = {"digits_calib_x.npy", N, per, labels, mem_read, &m};
    bp_sens_opts o;
    bp_sens_opts_default(&o);
    o.threads = threads;
    o.tol = 0.02;
    o.eig = BP_EIG_NONE;
    printf("2. wall seconds to every layer's trace at 2%% (including the "
           "loss pass):\n");
    double t_exact = traces_time(g, &d, &o, "default (auto: exact)");
    {
        bp_hessian *h = NULL;
        if (bp_hessian_new(&h, g, &d, o.batch))
            die("hessian");
        int n = bp_hessian_n_layers(h);
        double *ev = calloc((size_t)n, sizeof *ev);
        int *it = calloc((size_t)n, sizeof *it);
        bp_sens_opts oe;
        bp_sens_opts_default(&oe);
        oe.threads = threads;
        double te = bp_bench_now();
        if (bp_hessian_top_eigs(h, &oe, ev, it))
            die("eigenvalues");
        te = bp_bench_now() - te;
        printf("  top eigenvalues (Lanczos, tol 1e-6) %7.2f s  (%lld "
               "products)\n", te, (long long)bp_hessian_products(h));
        for (int i = 0; i < n; i++)
            printf("      %-24s %12.6g  %d iterations\n",
                   bp_hessian_layer(h, i)->name, ev[i], it[i]);
        if (all) {
            /* per-sample relative standard deviation of Hutchinson samples,
             * vectors restricted to the block vs over all layers at once */
            enum { S = 30 };
            double *sb = calloc((size_t)n * S, sizeof *sb);
            double *sg = calloc((size_t)n * S, sizeof *sg);
            int64_t tot = 0;
            for (int i = 0; i < n; i++)
                tot += bp_hessian_layer(h, i)->numel;
            double *rv = malloc((size_t)tot * sizeof *rv);
            double *rhv = malloc((size_t)tot * sizeof *rhv);
            uint64_t st = 12345;
            for (int k = 0; k < S; k++) {
                for (int64_t j = 0; j < tot; j++) {
                    st = st * 6364136223846793005ULL + 1442695040888963407ULL;
                    rv[j] = (st >> 63) ? 1.0 : -1.0;
                }
                if (bp_hessian_hvp(h, rv, rhv))
                    die("hvp");
                int64_t off = 0;
                for (int i = 0; i < n; i++) {
                    const int64_t ni = bp_hessian_layer(h, i)->numel;
                    const double *vi = rv + off;
                    double *hb = malloc((size_t)ni * sizeof *hb), a = 0, b = 0;
                    for (int64_t j = 0; j < ni; j++)
                        a += vi[j] * rhv[off + j];
                    if (bp_hessian_block_hvp(h, i, 1, &vi, &hb))
                        die("block hvp");
                    for (int64_t j = 0; j < ni; j++)
                        b += vi[j] * hb[j];
                    sg[i * S + k] = a;
                    sb[i * S + k] = b;
                    free(hb);
                    off += ni;
                }
            }
            printf("  per-sample relative std of Hutchinson samples (%d "
                   "samples):\n", S);
            for (int i = 0; i < n; i++) {
                double mb = 0, mg = 0, vb = 0, vg = 0;
                for (int k = 0; k < S; k++) {
                    mb += sb[i * S + k] / S;
                    mg += sg[i * S + k] / S;
                }
                for (int k = 0; k < S; k++) {
                    vb += (sb[i * S + k] - mb) * (sb[i * S + k] - mb) / (S - 1);
                    vg += (sg[i * S + k] - mg) * (sg[i * S + k] - mg) / (S - 1);
                }
                printf("      %-24s block %6.2f   global %6.2f\n",
                       bp_hessian_layer(h, i)->name, sqrt(vb) / fabs(mb),
                       sqrt(vg) / fabs(mb));
            }
            free(sb);
            free(sg);
            free(rv);
            free(rhv);
        }
        free(ev);
        free(it);
        bp_hessian_free(&h);
    }
    if (all) {
        o.max_samples = 100000;
        o.trace = BP_TRACE_HUTCHPP;
        traces_time(g, &d, &o, "hutchpp, block");
        o.trace = BP_TRACE_HUTCHINSON;
        o.scope = BP_SCOPE_AUTO;
        traces_time(g, &d, &o, "hutchinson, scope auto");
    }
    printf("\n");

    /* 3. torch */
    if (!torch || system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1")) {
        printf("3. torch comparison skipped (no /usr/bin/python3 with torch)\n");
        goto out;
    }
    printf("3. PyHessian-style torch loop (bench/pyhessian_ref.py, float64, "
           "%d threads):\n", threads);
    char args[256];
    snprintf(args, sizeof args, "--threads %d --samples 20", threads);
    cJSON *eq = run_torch(args);
    snprintf(args, sizeof args, "--threads %d --tol 0.02 --max-seconds %g",
             threads, torch_seconds);
    cJSON *acc = run_torch(args);
    if (!eq || !acc) {
        printf("  torch run failed\n");
        cJSON_Delete(eq);
        cJSON_Delete(acc);
        goto out;
    }
    double tps = jnum(eq, "per_sample_seconds");
    printf("  equal sample count: torch %.1f ms per Rademacher sample, bitplan "
           "%.1f ms (one at a time) / %.1f ms (%d threads): bitplan %.1fx / "
           "%.1fx faster  (target >= 1.5x)\n", tps * 1e3, hvt * 1e3, thr * 1e3,
           threads, tps / hvt, tps / thr);
    int done = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(acc, "done"));
    double tsec = jnum(acc, "projected_seconds");
    printf("  equal accuracy (every layer within 2%%): torch %s %.0f samples, "
           "%.1f s%s\n", done ? "took" : "needs",
           jnum(acc, "projected_samples"), tsec,
           done ? "" : " (projected from the measured rate and standard "
                       "errors after the time cap)");
    printf("  bitplan %.2f s: %.0fx faster  (target >= 5x)\n", t_exact,
           tsec / t_exact);
    const cJSON *tl = cJSON_GetObjectItemCaseSensitive(acc, "layers"), *e;
    cJSON_ArrayForEach(e, tl)
        printf("      %-24s torch trace %12.6g  rel.se %.4f after %.0f "
               "samples\n", e->string, jnum(e, "trace"), jnum(e, "rel_se"),
               jnum(acc, "samples"));
    cJSON_Delete(eq);
    cJSON_Delete(acc);
out:
    free(layers);
    free(pv);
    free(m.x);
    free(labels);
    bp_tensor_free(&xt);
    bp_tensor_free(&yt);
    bp_graph_free(&g);
    return 0;
}
