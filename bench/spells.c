/* spells.c - how steady this machine's vector throughput is, per CPU (see
 * spells.h).  On the shared 2-vCPU VMs this project is measured on, a
 * CPU's vector throughput halves for 10 ms to seconds at a time, most
 * likely while a hyperthread sibling runs another guest's work; every latency
 * this bench prints is a mix of such spells, and this says how much. */
#define _GNU_SOURCE
#include "spells.h"
#include "benchutil.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WINDOW_S 0.01
#define MAX_WINDOWS 4096
#define SLOW 1.4

/* Some microseconds of multiply-adds on 16-bit lanes held in L1, the compiler's
 * vectors (SSE2 or NEON at the baseline): throughput-bound like the
 * executor's kernels, so a sibling's load shows in it. A latency-bound
 * chain of scalar multiplies does not: it ran at one speed throughout
 * the spells this measures. */
static uint32_t chunk(int16_t *a, const int16_t *b, int n, int reps)
{
    uint32_t s = 0;
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < n; i++)
            a[i] = (int16_t)(a[i] + b[i] * (int16_t)(r | 1));
        s += (uint16_t)a[r % n];
    }
    return s;
}

typedef struct probe {
    int cpu;
    double seconds;
    int n;                       /* windows */
    double med[MAX_WINDOWS];     /* median chunk time of each window */
    double start;
    uint32_t sink;
} probe;

static void *run_probe(void *arg)
{
    probe *p = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(p->cpu, &set);
    /* unpinned, the figures are the scheduler's mix: still worth printing */
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    enum { N = 512, PER = 4096 };
    int16_t a[N], b[N];
    for (int i = 0; i < N; i++) {
        a[i] = (int16_t)i;
        b[i] = (int16_t)(i * 7 + 3);
    }
    double *c = malloc(PER * sizeof *c);
    if (!c)
        return NULL;
    int k = 0;
    double w0 = bp_bench_now();
    while (p->n < MAX_WINDOWS) {
        double t0 = bp_bench_now();
        p->sink += chunk(a, b, N, 64);
        double t1 = bp_bench_now();
        if (k < PER)
            c[k++] = t1 - t0;
        if (t1 - w0 >= WINDOW_S) {
            qsort(c, (size_t)k, sizeof *c, bp_bench_cmp_double);
            p->med[p->n] = c[k / 2];
            p->n++;
            k = 0;
            w0 = t1;
            if (t1 - p->start >= p->seconds)
                break;
        }
    }
    free(c);
    return NULL;
}

static double fastest(const probe *p)
{
    double best = p->n ? p->med[0] : 0;
    for (int i = 1; i < p->n; i++)
        best = p->med[i] < best ? p->med[i] : best;
    return best;
}

/* Share of p's windows at least SLOW x best, and their median ratio. */
static void summarise(const probe *p, double best, double *share,
                      double *ratio)
{
    double r[MAX_WINDOWS];
    int slow = 0;
    if (!(best > 0)) { /* not measured */
        *share = 0;
        *ratio = 1;
        return;
    }
    for (int i = 0; i < p->n; i++)
        if (p->med[i] >= SLOW * best)
            r[slow++] = p->med[i] / best;
    *share = p->n ? (double)slow / p->n : 0;
    if (slow)
        qsort(r, (size_t)slow, sizeof *r, bp_bench_cmp_double);
    *ratio = slow ? r[slow / 2] : 1;
}

int bp_bench_spells(FILE *out, double seconds)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int n = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
    probe *p = calloc((size_t)n, sizeof *p);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    double *best = calloc((size_t)n, sizeof *best);
    if (!p || !th || !best) {
        free(p);
        free(th);
        free(best);
        return -1;
    }
    fprintf(out, "  machine: vector multiply-adds timed in %.0f ms windows, "
            "%.1f s per CPU (slow: >= %.1fx the CPU's fastest window)\n",
            WINDOW_S * 1e3, seconds, SLOW);
    /* each CPU alone, then all at once (as the executor's threads run);
     * a CPU's fastest window over both is its speed unhindered */
    for (int pass = 0; pass <= n; pass++) {
        int lo = pass < n ? pass : 0, hi = pass < n ? pass + 1 : n;
        double start = bp_bench_now();
        for (int c = lo; c < hi; c++) {
            memset(&p[c], 0, sizeof p[c]);
            p[c].cpu = c;
            p[c].seconds = seconds;
            p[c].start = start;
            /* no thread, no figures: run inline, the probe would pin the
             * caller to one CPU for the rest of the bench */
            if (pthread_create(&th[c], NULL, run_probe, &p[c]))
                th[c] = 0;
        }
        for (int c = lo; c < hi; c++)
            if (th[c])
                pthread_join(th[c], NULL);
        for (int c = lo; c < hi; c++) {
            double f = fastest(&p[c]);
            best[c] = pass == c || f < best[c] ? f : best[c];
        }
        if (pass < n) {
            double share, ratio;
            summarise(&p[lo], best[lo], &share, &ratio);
            fprintf(out, "    cpu%d alone: slow in %3.0f%% of %d windows "
                    "(by %.2fx; fastest %.2f us per chunk)\n", lo,
                    100 * share, p[lo].n, ratio, best[lo] * 1e6);
            continue;
        }
        fprintf(out, "    all %d at once:", n);
        for (int c = 0; c < n; c++) {
            double share, ratio;
            summarise(&p[c], best[c], &share, &ratio);
            fprintf(out, " cpu%d %.0f%% (%.2fx)%s", c, 100 * share, ratio,
                    c + 1 < n ? "," : "");
        }
        /* windows in which some CPU was slow: what an op split over all of
         * them waits for (windows paired by their index: they start
         * together and last about as long) */
        int m = p[0].n, any = 0;
        for (int c = 1; c < n; c++)
            m = p[c].n < m ? p[c].n : m;
        for (int i = 0; i < m; i++) {
            int slow = 0;
            for (int c = 0; c < n; c++)
                slow |= p[c].med[i] >= SLOW * best[c];
            any += slow;
        }
        fprintf(out, "; some CPU slow in %.0f%%\n", m ? 100.0 * any / m : 0);
    }
    free(p);
    free(th);
    free(best);
    return 0;
}
