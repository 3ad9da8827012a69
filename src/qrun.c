/* qrun.c - runs a plan through the integer executor over a data set and
 * measures it against the float model (see qrun.h). */
#include "qrun.h"
#include "exec.h"
#include "qcalib.h"
#include "qexec.h"
#include "status.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bp_qrun {
    bp_graph *g;
    bp_qrun_opts o;
    bp_qrun_source src;
    int64_t n, per, out_per;   /* samples, input and output numel per sample */
    int64_t b;                 /* batch */
    float *x;                  /* (b, per): the batch being run */
    int64_t *labels;           /* (b) or NULL */
    bp_exec *fex;              /* the float model at batch b */
    float *fcache;             /* (n, out_per) float outputs, or NULL */
    int fcached;               /* fcache filled */
    int float_done;            /* float_acc, float_loss computed */
    double float_acc, float_loss;
    int classes;               /* output 0 is (N, classes) */
    bp_qcalib *calib;
    int calib_from_data;
    int64_t calib_n;
    float *mx;                 /* bp_qrun_new: the copied samples, */
    int64_t *my;               /* labels or NULL, and their source */
};

void bp_qrun_opts_init(bp_qrun_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 64;
    o->calib_batch = 64;
    o->calib_samples = 256;
    o->time_batch = 1;
    bp_qopts_init(&o->q);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bp_qrun_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Top-1 and cross-entropy of one row of logits. */
static int64_t argmax(const float *r, int64_t k)
{
    int64_t b = 0;
    for (int64_t i = 1; i < k; i++)
        if (r[i] > r[b])
            b = i;
    return b;
}

static double xent(const float *r, int64_t k, int64_t label)
{
    double mx = r[argmax(r, k)], z = 0;
    for (int64_t i = 0; i < k; i++)
        z += exp((double)r[i] - mx);
    return log(z) + mx - (double)r[label];
}

static int to_f32(const bp_tensor *t, float **out, int64_t *n, int64_t *per)
{
    int64_t total = bp_tensor_numel(t);
    *n = t->rank ? t->dims[0] : 1;
    *per = *n ? total / *n : 0;
    float *f = malloc((size_t)(total ? total : 1) * sizeof *f);
    if (!f)
        return BP_ENOMEM;
    if (t->dtype == BP_F32)
        memcpy(f, t->data, (size_t)total * sizeof *f);
    else
        for (int64_t i = 0; i < total; i++)
            f[i] = (float)bp_tensor_get(t, i);
    *out = f;
    return BP_OK;
}

void bp_qrun_free(bp_qrun **rp)
{
    if (!rp || !*rp)
        return;
    bp_qrun *r = *rp;
    free(r->x);
    free(r->labels);
    free(r->fcache);
    bp_exec_free(&r->fex);
    bp_qcalib_free(&r->calib);
    free(r->mx);
    free(r->my);
    free(r);
    *rp = NULL;
}

/* Input values per sample of g's one input. */
static int64_t input_per(const bp_graph *g)
{
    const bp_value *in = &g->values[g->inputs[0]];
    int64_t per = 1;
    for (int d = 1; d < in->decl_rank; d++)
        per *= in->decl_dims[d] > 0 ? in->decl_dims[d] : 1;
    return per;
}

int bp_qrun_sample_bytes(bp_graph *g, int64_t *bytes)
{
    int64_t fb, qb;
    int st;
    if (g->n_inputs != 1)
        return bp_fail(BP_EUNSUPPORTED, "%s: bitplan runs models with one "
                       "input", g->path);
    if ((st = bp_exec_sample_bytes(g, BP_F32, &fb)) ||
        (st = bp_qexec_graph_sample_bytes(g, &qb)))
        return st;
    int64_t own = input_per(g) * (int64_t)sizeof(float) + (int64_t)sizeof(int64_t);
    fb = qb > INT64_MAX - fb ? INT64_MAX : fb + qb;
    *bytes = own > INT64_MAX - fb ? INT64_MAX : fb + own;
    return BP_OK;
}

/* Reads batch [start, start + count) into r->x (and r->labels). */
static int read_batch(bp_qrun *r, int64_t start, int64_t count)
{
    return r->src.read(r->src.ctx, start, count, r->x,
                       r->src.has_labels ? r->labels : NULL);
}

int bp_qrun_open(bp_qrun **out, bp_graph *g, const bp_qrun_source *src,
                 const bp_tensor *calib, const bp_qrun_opts *o)
{
    int st = BP_OK;
    float *cx = NULL;
    bp_qrun *r = calloc(1, sizeof *r);
    if (!r)
        return BP_ENOMEM;
    r->g = g;
    r->src = *src;
    if (o)
        r->o = *o;
    else
        bp_qrun_opts_init(&r->o);
    if (r->o.batch < 1)
        r->o.batch = 64;
    if (r->o.calib_batch < 1)
        r->o.calib_batch = 64;
    if (r->o.calib_samples < 1)
        r->o.calib_samples = 256;
    if (g->n_inputs != 1 || g->n_outputs < 1) {
        st = bp_fail(BP_EUNSUPPORTED, "%s: bitplan runs models with one input "
                     "and at least one output", g->path);
        goto out;
    }
    r->n = src->n;
    if (r->n < 1 || !src->read) {
        st = bp_fail(BP_EINVAL, "no samples to run");
        goto out;
    }
    r->per = input_per(g);
    r->b = r->o.batch < r->n ? r->o.batch : r->n;
    r->x = malloc((size_t)(r->b * r->per + 1) * sizeof *r->x);
    r->labels = malloc((size_t)(r->b + 1) * sizeof *r->labels);
    if (!r->x || !r->labels) {
        st = BP_ENOMEM;
        goto out;
    }
    {
        if ((st = bp_graph_infer(g, 1)))
            goto out;
        const bp_value *yv = &g->values[g->outputs[0]];
        r->out_per = 1;
        for (int d = 1; d < yv->rank; d++)
            r->out_per *= yv->dims[d];
        r->classes = yv->rank == 2;
    }
    if (r->o.float_cache_bytes > 0 &&
        (double)r->n * (double)r->out_per * sizeof(float) <=
            (double)r->o.float_cache_bytes &&
        !(r->fcache = malloc((size_t)(r->n * r->out_per) * sizeof *r->fcache))) {
        st = BP_ENOMEM;
        goto out;
    }
    r->float_acc = r->float_loss = NAN;
    /* calibration */
    int64_t cn, cper;
    if (calib) {
        if ((st = to_f32(calib, &cx, &cn, &cper)))
            goto out;
        if (cper != r->per) {
            st = bp_fail(BP_EINVAL, "calibration samples have %lld values each; "
                         "the model input takes %lld", (long long)cper,
                         (long long)r->per);
            goto out;
        }
    } else {
        /* the first samples of the data, read in batches, held only for
         * the calibration passes */
        cn = r->n < r->o.calib_samples ? r->n : r->o.calib_samples;
        r->calib_from_data = 1;
        if (!(cx = malloc((size_t)(cn * r->per + 1) * sizeof *cx))) {
            st = BP_ENOMEM;
            goto out;
        }
        for (int64_t s = 0; s < cn && !st; s += r->b) {
            int64_t nb = cn - s < r->b ? cn - s : r->b;
            if (!(st = read_batch(r, s, nb)))
                memcpy(cx + s * r->per, r->x, (size_t)(nb * r->per) * sizeof *cx);
        }
        if (st)
            goto out;
    }
    r->calib_n = cn;
    /* the float model, kept for the batches of every plan, is made after
     * the calibration passes, which hold a float executor of their own:
     * one at a time keeps the peak at one executor's activations */
    if ((st = bp_qcalib_new(&r->calib, g, cx, cn, r->o.calib_batch)))
        goto out;
    free(cx);
    cx = NULL;
    st = bp_exec_new(&r->fex, g, BP_F32, r->b);
out:
    free(cx);
    if (st) {
        bp_qrun_free(&r);
        return st;
    }
    *out = r;
    return BP_OK;
}

static int mem_read(void *ctx, int64_t start, int64_t count, float *x,
                    int64_t *labels)
{
    const bp_qrun *r = ctx;
    memcpy(x, r->mx + start * r->per, (size_t)(count * r->per) * sizeof *x);
    if (labels)
        memcpy(labels, r->my + start, (size_t)count * sizeof *labels);
    return BP_OK;
}

int bp_qrun_new(bp_qrun **out, bp_graph *g, const bp_tensor *x,
                const bp_tensor *labels, const bp_tensor *calib,
                const bp_qrun_opts *o)
{
    /* a small bp_qrun to own the copies; bp_qrun_open reads through it */
    bp_qrun *hold = calloc(1, sizeof *hold), *r = NULL;
    int64_t n = 0;
    int st = hold ? to_f32(x, &hold->mx, &n, &hold->per) : BP_ENOMEM;
    if (!st && g->n_inputs == 1 && hold->per != input_per(g))
        st = bp_fail(BP_EINVAL, "samples have %lld values each; the model "
                     "input takes %lld", (long long)hold->per,
                     (long long)input_per(g));
    if (!st && labels) {
        if (!(hold->my = malloc((size_t)(n + 1) * sizeof *hold->my)))
            st = BP_ENOMEM;
        for (int64_t i = 0; !st && i < n; i++)
            hold->my[i] = (int64_t)bp_tensor_get(labels, i);
    }
    if (!st) {
        bp_qrun_source src = {n, labels != NULL, mem_read, hold};
        st = bp_qrun_open(&r, g, &src, calib, o);
    }
    if (st) {
        bp_qrun_free(&r);
        bp_qrun_free(&hold);
        return st;
    }
    /* the copies move into r, which is then its own source */
    r->mx = hold->mx;
    r->my = hold->my;
    r->src.ctx = r;
    hold->mx = NULL;
    hold->my = NULL;
    bp_qrun_free(&hold);
    *out = r;
    return BP_OK;
}

int bp_qrun_calib_from_data(const bp_qrun *r) { return r->calib_from_data; }
int64_t bp_qrun_calib_samples(const bp_qrun *r) { return r->calib_n; }
double bp_qrun_float_accuracy(const bp_qrun *r) { return r->float_acc; }

#define WARMUP_S 0.15
/* Timed runs go on past `repeat` until they fill this much: a median of 10
 * runs of a 30-microsecond model is one scheduler tick's noise. */
#define TIMED_S 0.1
#define MAX_RUNS 100000

/* Median seconds of one run of n samples, over at least `repeat` runs
 * and TIMED_S seconds of them, and their 10th and 90th percentiles (p,
 * optional): on a shared machine the spread says how far a median can be
 * trusted (a 2-vCPU VM alternated between 23 and 40 us for the example CNN
 * from one 50 ms window to the next, within one process). */
static int time_runs(bp_qexec *ex, const float *x, int64_t n, int repeat,
                     double *out, double p[2])
{
    int cap = repeat > 64 ? repeat : 64, k = 0;
    double *t = malloc((size_t)cap * sizeof *t);
    if (!t)
        return BP_ENOMEM;
    const float *in[1] = {x};
    /* Warm-up, for at least WARMUP_S: OpenBLAS's threads spin for about
     * 0.1 s after the float model's last call (measured: 0.11 s of CPU on
     * ResNet-18 with 2 threads), and timing inside that window measured the
     * integer model sharing its cores with them. */
    int st;
    double w0 = now();
    do
        st = bp_qexec_run(ex, in, n);
    while (!st && now() - w0 < WARMUP_S);
    double start = now();
    while (!st && k < MAX_RUNS && (k < repeat || now() - start < TIMED_S)) {
        if (k == cap) {
            double *g = realloc(t, (size_t)(cap *= 2) * sizeof *t);
            if (!g) {
                st = BP_ENOMEM;
                break;
            }
            t = g;
        }
        double t0 = now();
        st = bp_qexec_run(ex, in, n);
        t[k++] = now() - t0;
    }
    if (!st) {
        *out = bp_qrun_median(t, k); /* sorts t */
        if (p) {
            p[0] = t[(k - 1) / 10];
            p[1] = t[(k - 1) - (k - 1) / 10];
        }
    }
    free(t);
    return st;
}

int bp_qrun_float_latency(bp_qrun *r, int repeat, double *seconds)
{
    bp_exec *ex = NULL;
    int st = read_batch(r, 0, 1);
    if (st || (st = bp_exec_new(&ex, r->g, BP_F32, 1)))
        return st;
    if (repeat < 1)
        repeat = 1;
    double *t = malloc((size_t)repeat * sizeof *t);
    const void *in[1] = {r->x};
    if (!t) {
        bp_exec_free(&ex);
        return BP_ENOMEM;
    }
    st = bp_exec_run(ex, in, 1);
    for (int i = 0; !st && i < repeat; i++) {
        double t0 = now();
        st = bp_exec_run(ex, in, 1);
        t[i] = now() - t0;
    }
    if (!st)
        *seconds = bp_qrun_median(t, repeat);
    free(t);
    bp_exec_free(&ex);
    return st;
}

int bp_qrun_plan(bp_qrun *r, const bp_plan *plan, const char *plan_name,
                 bp_qrun_result *res)
{
    bp_qopts qo = r->o.q;
    qo.plan_name = plan_name ? plan_name : "plan";
    bp_qmodel *qm = NULL;
    bp_qexec *ex = NULL;
    int st;
    bp_qrun_result R;
    memset(&R, 0, sizeof R);
    if ((st = bp_qmodel_new(&qm, r->g, plan, r->calib, &qo)))
        return st;
    int64_t b = r->b;
    if ((st = bp_qexec_new(&ex, qm, b, r->o.threads)))
        goto out;
    R.samples = r->n;
    R.batch = b;
    R.has_labels = r->src.has_labels;
    R.has_classes = r->classes;
    R.threads = bp_qexec_threads(ex);
    R.isa = bp_qk_isa_name(bp_qk_isa_get());
    int64_t correct = 0, agree = 0, fcorrect = 0;
    double loss = 0, floss = 0, sig = 0, noise = 0;
    int want_float = !r->float_done && r->classes && r->src.has_labels;
    for (int64_t s = 0; s < r->n; s += b) {
        int64_t nb = r->n - s < b ? r->n - s : b;
        const float *in[1] = {r->x};
        const float *f;
        if ((st = read_batch(r, s, nb)))
            goto out;
        if (r->fcached) {
            f = r->fcache + s * r->out_per;
        } else {
            const void *fin[1] = {r->x};
            if ((st = bp_exec_run(r->fex, fin, nb)))
                goto out;
            f = bp_exec_output(r->fex, 0);
            if (r->fcache) {
                memcpy(r->fcache + s * r->out_per, f,
                       (size_t)(nb * r->out_per) * sizeof *f);
                f = r->fcache + s * r->out_per;
            }
        }
        if ((st = bp_qexec_run(ex, in, nb)))
            goto out;
        const float *q = bp_qexec_output(ex, 0);
        if (r->o.sink && (st = r->o.sink(r->o.sink_ctx, s, nb, q)))
            goto out;
        for (int64_t i = 0; i < nb * r->out_per; i++) {
            double d = (double)f[i] - (double)q[i];
            sig += (double)f[i] * (double)f[i];
            noise += d * d;
        }
        if (r->classes)
            for (int64_t i = 0; i < nb; i++) {
                const float *qr = q + i * r->out_per, *fr = f + i * r->out_per;
                int64_t qa = argmax(qr, r->out_per), fa = argmax(fr, r->out_per);
                agree += qa == fa;
                if (r->src.has_labels) {
                    correct += qa == r->labels[i];
                    loss += xent(qr, r->out_per, r->labels[i]);
                }
                if (want_float) {
                    fcorrect += fa == r->labels[i];
                    floss += xent(fr, r->out_per, r->labels[i]);
                }
            }
    }
    if (r->fcache)
        r->fcached = 1;
    if (want_float) {
        r->float_acc = (double)fcorrect / (double)r->n;
        r->float_loss = floss / (double)r->n;
        r->float_done = 1;
    }
    int lab = r->classes && r->src.has_labels;
    R.agreement = r->classes ? (double)agree / (double)r->n : NAN;
    R.float_accuracy = lab ? r->float_acc : NAN;
    R.float_loss = lab ? r->float_loss : NAN;
    R.int_accuracy = lab ? (double)correct / (double)r->n : NAN;
    R.int_loss = lab ? loss / (double)r->n : NAN;
    R.sqnr_db = noise > 0 ? 10 * log10(sig / noise) : INFINITY;
    R.size_bytes = qm->size_bytes;
    R.layer_bytes = qm->layer_bytes;
    R.overhead_bytes = qm->overhead_bytes;
    R.bops = bp_qmodel_bops(qm);
    R.latency_s = R.latency_batch_s = NAN;
    R.latency_p10_s = R.latency_p90_s = NAN;
    if (r->o.repeat > 0) {
        double t, pc[2];
        /* timed on the first batch, as before the data was streamed */
        if ((st = read_batch(r, 0, b)) ||
            (st = time_runs(ex, r->x, 1, r->o.repeat, &t, pc)))
            goto out;
        R.latency_s = t;
        R.latency_p10_s = pc[0];
        R.latency_p90_s = pc[1];
        if (r->o.time_batch) {
            if ((st = time_runs(ex, r->x, b, r->o.repeat, &t, NULL)))
                goto out;
            R.latency_batch_s = t / (double)b;
        }
    }
    R.predicted_latency_s = plan->latency_s;
    R.predicted_size_bytes = plan->size_bytes;
    R.predicted_bops = plan->bops;
    R.budgets_met = 1;
    for (int i = 0; i < plan->n_budgets && R.n_budgets < BP_QRUN_MAX_BUDGETS; i++) {
        const bp_plan_budget *pb = &plan->budgets[i];
        bp_qrun_budget *q = &R.budgets[R.n_budgets++];
        q->kind = pb->kind;
        q->text = pb->text;
        q->limit = pb->value;
        q->checked = 1;
        if (strcmp(pb->kind, "size") == 0)
            q->measured = (double)R.size_bytes;
        else if (strcmp(pb->kind, "bops") == 0)
            q->measured = R.bops;
        else if (strcmp(pb->kind, "latency") == 0 && r->o.repeat > 0)
            q->measured = R.latency_s;
        else
            q->checked = 0;
        q->met = !q->checked || q->measured <= q->limit;
        R.budgets_met &= q->met;
    }
    *res = R;
out:
    bp_qexec_free(&ex);
    bp_qmodel_free(&qm);
    return st;
}
