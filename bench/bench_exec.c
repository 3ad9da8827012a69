/* bench_exec.c - throughput of the float executor on the example CNN.
 *
 *   bench/bench_exec [MODEL.onnx DATA.npy]
 *
 * Prints samples/s and GFLOP/s (2 x MACs per sample from bp_graph_layers)
 * at batch 1 and batch 256, for the float32 path and, as a same-run
 * baseline, the float64 path the sensitivity stage uses.  Figures, not a
 * pass/fail test. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "benchutil.h"
#include "bitplan.h"

#ifndef BP_SRCDIR
#define BP_SRCDIR "."
#endif

static int bench(bp_graph *g, const char *xpath, bp_dtype dt, int64_t batch,
                 double macs, double *sps)
{
    bp_npy *x = NULL;
    int st = bp_npy_open(&x, xpath);
    if (st)
        return st;
    int64_t n = bp_npy_count(x), row = bp_npy_row_numel(x);
    void *all = malloc((size_t)(n * row) * 8);
    bp_exec *ex = NULL;
    if (!all || (st = bp_npy_read_rows(x, 0, n, dt, all)) ||
        (st = bp_exec_new(&ex, g, dt, batch))) {
        free(all);
        bp_npy_close(&x);
        return st ? st : BP_ENOMEM;
    }
    size_t es = bp_dtype_size(dt);
    /* repeat passes over the data until at least 1.5 s have passed */
    int64_t done = 0;
    double t0 = bp_bench_now(), t;
    do {
        for (int64_t s = 0; s + batch <= n || (s == 0 && batch > n); s += batch) {
            int64_t m = batch <= n ? batch : n;
            const void *in[1] = {(const char *)all + (size_t)(s * row) * es};
            if ((st = bp_exec_run(ex, in, m)))
                goto out;
            done += m;
            if (batch > n)
                break;
        }
        t = bp_bench_now() - t0;
    } while (t < 1.5);
    *sps = (double)done / t;
    printf("  %-7s batch %4lld: %10.0f samples/s  %6.2f GFLOP/s\n",
           bp_dtype_name(dt), (long long)batch, *sps, *sps * 2 * macs / 1e9);
out:
    bp_exec_free(&ex);
    free(all);
    bp_npy_close(&x);
    return st;
}

int main(int argc, char **argv)
{
    const char *model = argc > 2 ? argv[1] : BP_SRCDIR "/examples/cnn.onnx";
    const char *data = argc > 2 ? argv[2] : BP_SRCDIR "/examples/digits_test_x.npy";
    bp_set_threads(2);
    bp_graph *g = NULL;
    bp_layer *l = NULL;
    int n = 0, st;
    if ((st = bp_onnx_load(&g, model)) || (st = bp_graph_layers(g, &l, &n))) {
        fprintf(stderr, "bench_exec: %s\n", bp_errmsg());
        return 1;
    }
    double macs = 0;
    for (int i = 0; i < n; i++)
        macs += (double)l[i].macs;
    printf("float executor on %s: %.0f MACs per sample, 2 BLAS threads\n", model, macs);
    double s32 = 0, s64 = 0;
    static const int64_t batches[] = {1, 256};
    for (int b = 0; b < 2; b++) {
        if (bench(g, data, BP_F32, batches[b], macs, &s32) ||
            bench(g, data, BP_F64, batches[b], macs, &s64)) {
            fprintf(stderr, "bench_exec: %s\n", bp_errmsg());
            return 1;
        }
        printf("  batch %lld: float32 is %.2fx the float64 baseline\n",
               (long long)batches[b], s32 / s64);
    }
    free(l);
    bp_graph_free(&g);
    return 0;
}
