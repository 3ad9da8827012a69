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

#define CALIB_FROM_DATA 256

struct bp_qrun {
    bp_graph *g;
    bp_qrun_opts o;
    int64_t n, per, out_per;   /* samples, input and output numel per sample */
    float *x;                  /* (n, per) */
    int64_t *labels;           /* (n) or NULL */
    float *flogits;            /* (n, out_per): float output 0 */
    double float_acc, float_loss;
    int classes;               /* output 0 is (N, classes) */
    bp_qcalib *calib;
    int calib_from_data;
    int64_t calib_n;
};

void bp_qrun_opts_init(bp_qrun_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 64;
    o->calib_batch = 64;
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

static double median(double *v, int n)
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
    free(r->flogits);
    bp_qcalib_free(&r->calib);
    free(r);
    *rp = NULL;
}

int bp_qrun_new(bp_qrun **out, bp_graph *g, const bp_tensor *x,
                const bp_tensor *labels, const bp_tensor *calib,
                const bp_qrun_opts *o)
{
    int st = BP_OK;
    bp_exec *ex = NULL;
    float *cx = NULL;
    bp_qrun *r = calloc(1, sizeof *r);
    if (!r)
        return BP_ENOMEM;
    r->g = g;
    if (o)
        r->o = *o;
    else
        bp_qrun_opts_init(&r->o);
    if (r->o.batch < 1)
        r->o.batch = 64;
    if (r->o.calib_batch < 1)
        r->o.calib_batch = 64;
    if (g->n_inputs != 1 || g->n_outputs < 1) {
        st = bp_fail(BP_EUNSUPPORTED, "%s: bitplan runs models with one input "
                     "and at least one output", g->path);
        goto out;
    }
    if ((st = to_f32(x, &r->x, &r->n, &r->per)))
        goto out;
    if (r->n < 1) {
        st = bp_fail(BP_EINVAL, "no samples to run");
        goto out;
    }
    if (labels) {
        r->labels = malloc((size_t)r->n * sizeof *r->labels);
        if (!r->labels) {
            st = BP_ENOMEM;
            goto out;
        }
        for (int64_t i = 0; i < r->n; i++)
            r->labels[i] = (int64_t)bp_tensor_get(labels, i);
    }
    /* float outputs once */
    int64_t b = r->o.batch < r->n ? r->o.batch : r->n;
    if ((st = bp_exec_new(&ex, g, BP_F32, b)))
        goto out;
    {
        const bp_value *yv = &g->values[g->outputs[0]];
        r->out_per = 1;
        for (int d = 1; d < yv->rank; d++)
            r->out_per *= yv->dims[d];
        r->classes = yv->rank == 2;
    }
    r->flogits = malloc((size_t)(r->n * r->out_per) * sizeof *r->flogits);
    if (!r->flogits) {
        st = BP_ENOMEM;
        goto out;
    }
    int64_t correct = 0;
    double loss = 0;
    for (int64_t s = 0; s < r->n; s += b) {
        int64_t nb = r->n - s < b ? r->n - s : b;
        const void *in[1] = {r->x + s * r->per};
        if ((st = bp_exec_run(ex, in, nb)))
            goto out;
        memcpy(r->flogits + s * r->out_per, bp_exec_output(ex, 0),
               (size_t)(nb * r->out_per) * sizeof(float));
    }
    if (r->classes && r->labels) {
        for (int64_t i = 0; i < r->n; i++) {
            const float *row = r->flogits + i * r->out_per;
            correct += argmax(row, r->out_per) == r->labels[i];
            loss += xent(row, r->out_per, r->labels[i]);
        }
        r->float_acc = (double)correct / (double)r->n;
        r->float_loss = loss / (double)r->n;
    }
    bp_exec_free(&ex);
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
        cn = r->n < CALIB_FROM_DATA ? r->n : CALIB_FROM_DATA;
        r->calib_from_data = 1;
    }
    r->calib_n = cn;
    if ((st = bp_qcalib_new(&r->calib, g, cx ? cx : r->x, cn, r->o.calib_batch)))
        goto out;
out:
    bp_exec_free(&ex);
    free(cx);
    if (st) {
        bp_qrun_free(&r);
        return st;
    }
    *out = r;
    return BP_OK;
}

int bp_qrun_calib_from_data(const bp_qrun *r) { return r->calib_from_data; }
int64_t bp_qrun_calib_samples(const bp_qrun *r) { return r->calib_n; }
double bp_qrun_float_accuracy(const bp_qrun *r) { return r->float_acc; }

/* Median seconds of one run of n samples. */
static int time_runs(bp_qexec *ex, const float *x, int64_t n, int repeat,
                     double *out)
{
    double *t = malloc((size_t)repeat * sizeof *t);
    if (!t)
        return BP_ENOMEM;
    const float *in[1] = {x};
    int st = bp_qexec_run(ex, in, n); /* warm-up */
    for (int i = 0; !st && i < repeat; i++) {
        double t0 = now();
        st = bp_qexec_run(ex, in, n);
        t[i] = now() - t0;
    }
    if (!st)
        *out = median(t, repeat);
    free(t);
    return st;
}

int bp_qrun_float_latency(bp_qrun *r, int repeat, double *seconds)
{
    bp_exec *ex = NULL;
    int st = bp_exec_new(&ex, r->g, BP_F32, 1);
    if (st)
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
        *seconds = median(t, repeat);
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
    int64_t b = r->o.batch < r->n ? r->o.batch : r->n;
    if ((st = bp_qexec_new(&ex, qm, b, r->o.threads)))
        goto out;
    R.samples = r->n;
    R.batch = b;
    R.has_labels = r->labels != NULL;
    R.has_classes = r->classes;
    R.threads = bp_qexec_threads(ex);
    R.isa = bp_qk_isa_name(bp_qk_isa_get());
    int64_t correct = 0, agree = 0;
    double loss = 0, sig = 0, noise = 0;
    for (int64_t s = 0; s < r->n; s += b) {
        int64_t nb = r->n - s < b ? r->n - s : b;
        const float *in[1] = {r->x + s * r->per};
        if ((st = bp_qexec_run(ex, in, nb)))
            goto out;
        const float *q = bp_qexec_output(ex, 0);
        const float *f = r->flogits + s * r->out_per;
        for (int64_t i = 0; i < nb * r->out_per; i++) {
            double d = (double)f[i] - (double)q[i];
            sig += (double)f[i] * (double)f[i];
            noise += d * d;
        }
        if (r->classes)
            for (int64_t i = 0; i < nb; i++) {
                const float *qr = q + i * r->out_per, *fr = f + i * r->out_per;
                int64_t qa = argmax(qr, r->out_per);
                agree += qa == argmax(fr, r->out_per);
                if (r->labels) {
                    correct += qa == r->labels[s + i];
                    loss += xent(qr, r->out_per, r->labels[s + i]);
                }
            }
    }
    R.agreement = r->classes ? (double)agree / (double)r->n : NAN;
    R.float_accuracy = r->classes && r->labels ? r->float_acc : NAN;
    R.float_loss = r->classes && r->labels ? r->float_loss : NAN;
    R.int_accuracy = r->classes && r->labels ? (double)correct / (double)r->n : NAN;
    R.int_loss = r->classes && r->labels ? loss / (double)r->n : NAN;
    R.sqnr_db = noise > 0 ? 10 * log10(sig / noise) : INFINITY;
    R.size_bytes = qm->size_bytes;
    R.layer_bytes = qm->layer_bytes;
    R.overhead_bytes = qm->overhead_bytes;
    R.bops = bp_qmodel_bops(qm);
    R.latency_s = R.latency_batch_s = NAN;
    if (r->o.repeat > 0) {
        double t;
        if ((st = time_runs(ex, r->x, 1, r->o.repeat, &t)))
            goto out;
        R.latency_s = t;
        if ((st = time_runs(ex, r->x, b, r->o.repeat, &t)))
            goto out;
        R.latency_batch_s = t / (double)b;
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
