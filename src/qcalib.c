/* qcalib.c - two float passes over the calibration data: ranges, then
 * histograms (see qcalib.h). */
#include "qcalib.h"
#include "exec.h"
#include "status.h"

#include <math.h>
#include <stdlib.h>

struct bp_qcalib {
    int n_values;
    bp_act_hist **hist; /* (n_values) */
    int64_t samples;
};

static int observed(const bp_graph *g, int v)
{
    const bp_value *val = &g->values[v];
    if (val->data || val->known)
        return 0;
    if (val->dtype != BP_F32 && val->dtype != BP_F64)
        return 0;
    return val->is_input || val->producer >= 0;
}

static int64_t numel_of(const bp_value *v)
{
    int64_t n = 1;
    for (int d = 0; d < v->rank; d++)
        n *= v->dims[d];
    return n;
}

int bp_qcalib_new(bp_qcalib **out, bp_graph *g, const float *x, int64_t n,
                  int64_t batch)
{
    int st = BP_OK;
    if (g->n_inputs != 1)
        return bp_fail(BP_EUNSUPPORTED, "%s: calibration feeds models with one "
                       "input; this one has %d", g->path, g->n_inputs);
    if (n < 1)
        return bp_fail(BP_EINVAL, "%s: calibration needs at least one sample",
                       g->path);
    if (batch < 1)
        batch = 1;
    if (batch > n)
        batch = n;
    bp_qcalib *c = calloc(1, sizeof *c);
    bp_exec *ex = NULL;
    double *amax = NULL;
    if (!c)
        return BP_ENOMEM;
    c->n_values = g->n_values;
    c->samples = n;
    c->hist = calloc((size_t)g->n_values + 1, sizeof *c->hist);
    amax = calloc((size_t)g->n_values + 1, sizeof *amax);
    if (!c->hist || !amax) {
        st = BP_ENOMEM;
        goto out;
    }
    if ((st = bp_exec_new(&ex, g, BP_F32, batch)))
        goto out;
    int64_t per = 1;
    {
        const bp_value *in = &g->values[g->inputs[0]];
        for (int d = 1; d < in->rank; d++)
            per *= in->dims[d];
    }
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            for (int v = 0; v < g->n_values; v++) {
                if (!observed(g, v))
                    continue;
                c->hist[v] = malloc(sizeof *c->hist[v]);
                if (!c->hist[v]) {
                    st = BP_ENOMEM;
                    goto out;
                }
                bp_act_hist_init(c->hist[v], amax[v]);
            }
        for (int64_t s = 0; s < n; s += batch) {
            int64_t b = n - s < batch ? n - s : batch;
            const void *in[1] = {x + s * per};
            if ((st = bp_exec_run(ex, in, b)))
                goto out;
            for (int v = 0; v < g->n_values; v++) {
                if (!observed(g, v))
                    continue;
                const float *buf = bp_exec_value(ex, v);
                int64_t cnt = numel_of(&g->values[v]);
                if (!buf)
                    continue;
                if (pass == 0) {
                    double m = amax[v];
                    for (int64_t i = 0; i < cnt; i++) {
                        double a = fabs((double)buf[i]);
                        if (a > m && isfinite(a))
                            m = a;
                    }
                    amax[v] = m;
                } else {
                    bp_act_hist_add(c->hist[v], buf, cnt);
                }
            }
        }
    }
out:
    bp_exec_free(&ex);
    free(amax);
    if (st) {
        bp_qcalib_free(&c);
        return st;
    }
    *out = c;
    return BP_OK;
}

const bp_act_hist *bp_qcalib_hist(const bp_qcalib *c, int v)
{
    return v >= 0 && v < c->n_values ? c->hist[v] : NULL;
}

int64_t bp_qcalib_samples(const bp_qcalib *c) { return c->samples; }

void bp_qcalib_free(bp_qcalib **cp)
{
    if (!cp || !*cp)
        return;
    bp_qcalib *c = *cp;
    for (int v = 0; c->hist && v < c->n_values; v++)
        free(c->hist[v]);
    free(c->hist);
    free(c);
    *cp = NULL;
}
