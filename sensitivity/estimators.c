/* estimators.c - traces, top eigenvalues and density of the loss Hessian's
 * layer blocks from exact Hessian-vector products (see estimators.h).
 *
 * Everything is built on one primitive, sweep(): k directions, each a
 * vector per parameter block (NULL = zero) with the wanted output blocks,
 * pushed through the Hessian in one pass over the data (per batch: one
 * forward + backward, then per direction one tangent and one R-pass).
 * Estimators run all layers in lockstep so that a pass over the data serves
 * every layer that still needs products. */
#include "estimators.h"
#include "autodiff.h"
#include "quant.h"
#include "rng.h"
#include "status.h"
#include "atomic.h"
#include "exec.h"

#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Directions per sweep when many are available (memory: 2 * this many
 * vectors per block). */
#define SWEEP_MAX 32
/* Sampling round: vectors per layer between two checks of the rule. */
#define ROUND 10

/* Random streams, one per purpose; each layer gets its own stream within. */
enum { RS_BLOCK = 1, RS_GLOBAL, RS_SKETCH, RS_REMAINDER, RS_LANCZOS,
       RS_POWER, RS_DENSITY, RS_GNS };

struct bp_hessian {
    bp_graph *g;
    const bp_sens_data *d;
    bp_ad *ad;
    int64_t batch, nb, loaded;
    double *x;
    int nl;
    bp_layer *layers;
    int np;
    int *lw;            /* (nl) parameter index of layer i's weight */
    int64_t *numel;     /* (np) */
    double loss, accuracy;
    int64_t products;
    const bp_sens_opts *o; /* for progress during a call */
};

void bp_sens_opts_default(bp_sens_opts *o)
{
    static const int bits[] = {2, 3, 4, 5, 6, 8};
    memset(o, 0, sizeof *o);
    o->trace = BP_TRACE_AUTO;
    o->scope = BP_SCOPE_AUTO;
    o->tol = 0.01;
    o->max_samples = 500;
    o->min_samples = 30;
    o->sketch = 20;
    o->eig = BP_EIG_LANCZOS;
    o->eig_max_iter = 100;
    o->eig_tol = 1e-6;
    o->batch = 0; /* automatic: auto_batch */
    o->threads = 1;
    o->seed = 0;
    o->n_bits = (int)(sizeof bits / sizeof bits[0]);
    memcpy(o->bits, bits, sizeof bits);
    o->loss_increase = 0;
}

static void progress(bp_hessian *h, const char *stage, int64_t done,
                     int64_t total)
{
    if (h->o && h->o->progress)
        h->o->progress(h->o->progress_ctx, stage, done, total);
}

/* ---- data and passes --------------------------------------------------------- */

static int load(bp_hessian *h, int64_t b)
{
    int st;
    if (h->loaded == b)
        return BP_OK;
    const bp_sens_data *d = h->d;
    int64_t start = b * h->batch;
    int64_t n = d->count - start < h->batch ? d->count - start : h->batch;
    h->loaded = -1;
    if ((st = d->read(d->ctx, start, n, h->x)))
        return st;
    for (int64_t i = 0; i < n * d->sample_numel; i++)
        if (!isfinite(h->x[i]))
            return bp_fail(BP_EINVAL, "%s: sample %lld holds %s; expected "
                           "finite values", d->path ? d->path : "data",
                           (long long)(start + i / d->sample_numel),
                           isnan(h->x[i]) ? "NaN" : "Inf");
    if ((st = bp_ad_set_batch(h->ad, h->x, d->labels ? d->labels + start : NULL,
                              n, 1.0 / (double)d->count)))
        return st;
    h->loaded = b;
    return BP_OK;
}

/* A direction: per parameter block an input vector (NULL = zero) and an
 * output accumulator (NULL = not wanted). */
typedef struct dirn {
    const double **v;
    double **hv;
} dirn;

static int sweep(bp_hessian *h, int k, dirn *dir)
{
    int st = BP_OK;
    bp_ad_dir *d = malloc((size_t)(k > 0 ? k : 1) * sizeof *d);
    if (!d)
        return BP_ENOMEM;
    for (int j = 0; j < k; j++) {
        d[j].v = dir[j].v;
        d[j].hv = dir[j].hv;
    }
    for (int64_t b = 0; b < h->nb && st == BP_OK; b++)
        if ((st = load(h, b)) == BP_OK)
            st = bp_ad_hvp_many(h->ad, k, d);
    free(d);
    if (st == BP_OK)
        h->products += k;
    return st;
}

static int dirs_alloc(dirn *d, int k, int np)
{
    for (int j = 0; j < k; j++) {
        d[j].v = calloc((size_t)np, sizeof *d[j].v);
        d[j].hv = calloc((size_t)np, sizeof *d[j].hv);
        if (!d[j].v || !d[j].hv)
            return BP_ENOMEM;
    }
    return BP_OK;
}

static void dirs_free(dirn *d, int k)
{
    for (int j = 0; j < k; j++) {
        free(d[j].v);
        free(d[j].hv);
        d[j].v = NULL;
        d[j].hv = NULL;
    }
}

static void dirs_clear(dirn *d, int k, int np)
{
    for (int j = 0; j < k; j++) {
        memset(d[j].v, 0, (size_t)np * sizeof *d[j].v);
        memset(d[j].hv, 0, (size_t)np * sizeof *d[j].hv);
    }
}

/* ---- construction -------------------------------------------------------------- */

static int check_finite_constants(const bp_graph *g)
{
    for (int v = 0; v < g->n_values; v++) {
        const bp_tensor *t = g->values[v].data;
        if (!t || (t->dtype != BP_F32 && t->dtype != BP_F64))
            continue;
        int64_t n = bp_tensor_numel(t);
        for (int64_t i = 0; i < n; i++) {
            double x = bp_tensor_get(t, i);
            if (!isfinite(x))
                return bp_fail(BP_EINVAL, "%s: initializer '%s' holds %s at "
                               "element %lld; expected finite weights",
                               g->path, g->values[v].name,
                               isnan(x) ? "NaN" : "Inf", (long long)i);
        }
    }
    return BP_OK;
}

/* The automatic batch: as many samples as keep one pass's activations and
 * their derivatives near BP_SENS_BATCH_BYTES (about 9 float64 copies of
 * every activation live during a Hessian-vector product: measured 0.35 GB
 * per 224x224 image on ResNet-18, against 5 M activations), at most 256.
 * It depends on the model only, so results stay reproducible anywhere. */
#define BP_SENS_BATCH_BYTES ((double)(1u << 30))
static int auto_batch(bp_graph *g, int64_t *batch)
{
    int64_t numel;
    int st = bp_graph_act_numel(g, &numel);
    if (st)
        return st;
    double per = (double)numel;
    double fit = floor(BP_SENS_BATCH_BYTES / (9.0 * 8.0 * (per > 1 ? per : 1)));
    *batch = fit < 1 ? 1 : fit > 256 ? 256 : (int64_t)fit;
    return BP_OK;
}

int bp_hessian_new(bp_hessian **out, bp_graph *g, const bp_sens_data *d,
                   int64_t batch)
{
    int st;
    if (d->count < 1)
        return bp_fail(BP_EINVAL, "%s: holds no samples",
                       d->path ? d->path : "data");
    if ((st = check_finite_constants(g)))
        return st;
    if (batch < 1 && (st = auto_batch(g, &batch)))
        return st;
    bp_hessian *h = calloc(1, sizeof *h);
    if (!h)
        return BP_ENOMEM;
    h->g = g;
    h->d = d;
    h->batch = batch < 1 ? 1 : batch > d->count ? d->count : batch;
    h->nb = (d->count + h->batch - 1) / h->batch;
    h->loaded = -1;
    int *pv = NULL;
    if ((st = bp_graph_layers(g, &h->layers, &h->nl)))
        goto fail;
    if (h->nl == 0) {
        st = bp_fail(BP_EINVAL, "%s: the model has no quantizable layer (Conv, "
                     "Gemm or MatMul with a constant weight)", g->path);
        goto fail;
    }
    /* parameters: each distinct weight, then each distinct bias */
    pv = malloc((size_t)(2 * h->nl + 1) * sizeof *pv);
    h->lw = malloc((size_t)h->nl * sizeof *h->lw);
    if (!pv || !h->lw) {
        st = BP_ENOMEM;
        goto fail;
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < h->nl; i++) {
            int v = pass == 0 ? h->layers[i].weight : h->layers[i].bias;
            int p = -1;
            if (v < 0)
                continue;
            for (int q = 0; q < h->np; q++)
                if (pv[q] == v)
                    p = q;
            if (p < 0) {
                p = h->np;
                pv[h->np++] = v;
            }
            if (pass == 0)
                h->lw[i] = p;
        }
    if ((st = bp_ad_new(&h->ad, g, pv, h->np, h->batch)))
        goto fail;
    /* layer MACs per sample need shapes at some batch: the autodiff's */
    free(h->layers);
    h->layers = NULL;
    if ((st = bp_graph_layers(g, &h->layers, &h->nl)))
        goto fail;
    h->numel = malloc((size_t)h->np * sizeof *h->numel);
    h->x = malloc((size_t)(h->batch * d->sample_numel + 1) * sizeof *h->x);
    if (!h->numel || !h->x) {
        st = BP_ENOMEM;
        goto fail;
    }
    for (int p = 0; p < h->np; p++)
        h->numel[p] = bp_ad_param_numel(h->ad, p);
    /* one pass for the loss (and every sample's finiteness) */
    double loss = 0;
    int64_t correct = 0;
    for (int64_t b = 0; b < h->nb; b++) {
        if ((st = load(h, b)))
            goto fail;
        loss += bp_ad_batch_loss(h->ad);
        correct += bp_ad_batch_correct(h->ad);
    }
    h->loss = loss / (double)d->count;
    h->accuracy = (double)correct / (double)d->count;
    free(pv);
    *out = h;
    return BP_OK;
fail:
    free(pv);
    bp_hessian_free(&h);
    return st;
}

void bp_hessian_free(bp_hessian **hp)
{
    if (!hp || !*hp)
        return;
    bp_hessian *h = *hp;
    bp_ad_free(&h->ad);
    free(h->layers);
    free(h->lw);
    free(h->numel);
    free(h->x);
    free(h);
    *hp = NULL;
}

int bp_hessian_n_layers(const bp_hessian *h) { return h->nl; }
const bp_layer *bp_hessian_layer(const bp_hessian *h, int i)
{
    return &h->layers[i];
}
double bp_hessian_loss(const bp_hessian *h) { return h->loss; }
double bp_hessian_accuracy(const bp_hessian *h) { return h->accuracy; }
int64_t bp_hessian_products(const bp_hessian *h) { return h->products; }

int bp_hessian_layer_exact(const bp_hessian *h, int i)
{
    int p = h->lw[i];
    return bp_ad_piecewise_linear(h->ad, p) && bp_ad_gn_ok(h->ad, p);
}

int bp_hessian_block_hvp(bp_hessian *h, int i, int k, const double *const *v,
                         double *const *hv)
{
    int st = BP_OK;
    const int p = h->lw[i];
    dirn d[SWEEP_MAX];
    for (int j0 = 0; j0 < k && st == BP_OK; j0 += SWEEP_MAX) {
        int kk = k - j0 < SWEEP_MAX ? k - j0 : SWEEP_MAX;
        if ((st = dirs_alloc(d, kk, h->np)) == BP_OK) {
            for (int j = 0; j < kk; j++) {
                d[j].v[p] = v[j0 + j];
                d[j].hv[p] = hv[j0 + j];
                memset(hv[j0 + j], 0, (size_t)h->numel[p] * sizeof(double));
            }
            st = sweep(h, kk, d);
        }
        dirs_free(d, kk);
    }
    return st;
}

int bp_hessian_hvp(bp_hessian *h, const double *v, double *hv)
{
    dirn d[1];
    int st = dirs_alloc(d, 1, h->np);
    int64_t off = 0;
    for (int i = 0; st == BP_OK && i < h->nl; i++) {
        int p = h->lw[i];
        int dup = 0;
        for (int j = 0; j < i; j++)
            dup |= h->lw[j] == p;
        if (dup)
            continue;
        d[0].v[p] = v + off;
        d[0].hv[p] = hv + off;
        memset(hv + off, 0, (size_t)h->numel[p] * sizeof *hv);
        off += h->numel[p];
    }
    if (st == BP_OK)
        st = sweep(h, 1, d);
    dirs_free(d, 1);
    return st;
}

/* ---- measured loss increase ------------------------------------------------------- */

/* Mean loss over the data with the graph's current parameters against
 * fixed targets (forward passes only); top1 (count) gets every sample's
 * top-1 class when not NULL. */
static int data_loss(bp_hessian *h, const int64_t *targets, double *loss,
                     int64_t *top1)
{
    int st = BP_OK;
    const bp_sens_data *d = h->d;
    double sum = 0;
    h->loaded = -1;
    for (int64_t b = 0; b < h->nb && st == BP_OK; b++) {
        int64_t start = b * h->batch;
        int64_t n = d->count - start < h->batch ? d->count - start : h->batch;
        double part;
        if ((st = d->read(d->ctx, start, n, h->x)) == BP_OK &&
            (st = bp_ad_forward_loss(h->ad, h->x, targets ? targets + start : NULL,
                                     n, &part, top1 ? top1 + start : NULL)) == BP_OK)
            sum += part;
    }
    *loss = sum / (double)d->count;
    return st;
}

int bp_hessian_loss_increase(bp_hessian *h, const bp_sens_opts *o,
                             double *out)
{
    int st = BP_OK;
    const bp_sens_data *d = h->d;
    double **grad = calloc((size_t)h->np, sizeof *grad);
    /* the targets stay those of the float model: without labels, its own
     * top-1 classes, not the quantized model's */
    int64_t *own = d->labels ? NULL : malloc((size_t)d->count * sizeof *own);
    if (!grad || (!d->labels && !own)) {
        free(grad);
        free(own);
        return BP_ENOMEM;
    }
    const int64_t *targets = d->labels ? d->labels : own;
    for (int p = 0; p < h->np && st == BP_OK; p++)
        if (!(grad[p] = calloc((size_t)h->numel[p] + 1, sizeof **grad)))
            st = BP_ENOMEM;
    /* the mean gradient of every weight, one pass */
    h->loaded = -1;
    for (int64_t b = 0; b < h->nb && st == BP_OK; b++)
        if ((st = load(h, b)) == BP_OK)
            st = bp_ad_grad(h->ad, grad);
    double base = 0;
    if (st == BP_OK && own)
        st = data_loss(h, NULL, &base, own);
    if (st == BP_OK)
        st = data_loss(h, targets, &base, NULL);
    const int64_t total = (int64_t)h->nl * o->n_bits;
    for (int i = 0; i < h->nl && st == BP_OK; i++) {
        const bp_layer *l = &h->layers[i];
        bp_tensor *t = h->g->values[l->weight].data;
        const int p = h->lw[i];
        const int64_t n = l->numel;
        int64_t outer, ch, inner;
        bp_layer_channel_view(h->g, l, &outer, &ch, &inner);
        float *w = malloc((size_t)(n + 1) * sizeof *w);
        float *wq = malloc((size_t)(n + 1) * sizeof *wq);
        double *keep = malloc((size_t)(n + 1) * sizeof *keep);
        if (!w || !wq || !keep)
            st = BP_ENOMEM;
        for (int64_t j = 0; st == BP_OK && j < n; j++) {
            keep[j] = bp_tensor_get(t, j);
            w[j] = (float)keep[j];
        }
        for (int k = 0; k < o->n_bits && st == BP_OK; k++) {
            progress(h, "loss increase", (int64_t)i * o->n_bits + k, total);
            if ((st = bp_quant_dequant(wq, w, outer, ch, inner, o->bits[k])))
                break;
            double gd = 0;
            for (int64_t j = 0; j < n; j++) {
                bp_tensor_set(t, j, wq[j]);
                gd += grad[p][j] * ((double)wq[j] - keep[j]);
            }
            bp_ad_param_changed(h->ad, p);
            double lq;
            if ((st = data_loss(h, targets, &lq, NULL)) == BP_OK)
                out[(int64_t)i * o->n_bits + k] = lq - base - gd;
            for (int64_t j = 0; j < n; j++)
                bp_tensor_set(t, j, keep[j]);
            bp_ad_param_changed(h->ad, p);
        }
        free(w);
        free(wq);
        free(keep);
    }
    progress(h, "loss increase", total, total);
    for (int p = 0; p < h->np; p++)
        free(grad[p]);
    free(grad);
    free(own);
    h->loaded = -1;
    return st;
}

/* ---- statistics -------------------------------------------------------------------- */

typedef struct welford {
    int64_t m;
    double mean, m2;
} welford;

static void wf_add(welford *w, double x)
{
    w->m++;
    double d = x - w->mean;
    w->mean += d / (double)w->m;
    w->m2 += d * (x - w->mean);
}

static double wf_var(const welford *w)
{
    return w->m > 1 ? w->m2 / (double)(w->m - 1) : INFINITY;
}

static double wf_se(const welford *w)
{
    return w->m > 1 ? sqrt(wf_var(w) / (double)w->m) : INFINITY;
}

/* ---- traces ------------------------------------------------------------------------ */

/* Sampling state of one layer. */
typedef struct lstate {
    int sampled;            /* needs sampling */
    bp_trace_method method; /* HUTCHPP or HUTCHINSON (block scope) */
    int64_t n;
    int k;                  /* Hutch++ sketch columns */
    double *Q;              /* (k, n): orthonormal columns, one per row */
    double t_low;
    welford rem;            /* block samples (remainder for Hutch++) */
    int64_t products;
    welford glob;           /* global-scope samples */
    bp_rng rng;
    int done, hit_max;
} lstate;

static uint64_t stream_of(int purpose, int layer)
{
    return (uint64_t)purpose << 32 | (uint64_t)(unsigned)layer;
}

/* Saves the exact stage's position when a checkpoint is due: batches done
 * of the Gauss-Newton pass, columns done, and tr (per layer: the sums so
 * far of the exact layers).  Defined with the checkpoints below. */
typedef struct exact_ck exact_ck;
static int exact_save(exact_ck *x, int64_t batch, int64_t cols,
                      const double *tr);

typedef struct gn_tick {
    bp_hessian *h;
    int64_t b;
} gn_tick;

/* Progress within a batch: classes done, over the whole stage. */
static void on_gn_tick(void *ctx, int64_t done, int64_t total)
{
    gn_tick *t = ctx;
    progress(t->h, "exact traces", t->b * total + done, t->h->nb * total);
}

/* Exact traces by the Gauss-Newton identity for the layers with want,
 * from batch b0 on: tr_layer holds the sums over batches 0..b0-1 (a
 * resumed checkpoint's; 0 from the start) and gets the sums over all.  The
 * sums run batch by batch in the same order either way, so a resumed run
 * ends on the same bits. */
static int gn_traces(bp_hessian *h, const char *want_layer, double *tr_layer,
                     int64_t b0, exact_ck *x)
{
    int st = BP_OK, any = 0;
    for (int i = 0; i < h->nl; i++)
        any |= want_layer[i];
    if (!any) /* every layer sampled: no pass over the data for nothing */
        return BP_OK;
    char *want = calloc((size_t)h->np, 1);
    double *tr = calloc((size_t)h->np, sizeof *tr);
    if (!want || !tr) {
        free(want);
        free(tr);
        return BP_ENOMEM;
    }
    for (int i = 0; i < h->nl; i++)
        if (want_layer[i]) {
            want[h->lw[i]] = 1;
            tr[h->lw[i]] = tr_layer[i];
        }
    for (int64_t b = b0; b < h->nb && st == BP_OK; b++) {
        if ((st = load(h, b)))
            break;
        gn_tick t = {h, b};
        bp_ad_set_tick(h->ad, on_gn_tick, &t);
        st = bp_ad_gn_trace(h->ad, want, tr);
        bp_ad_set_tick(h->ad, NULL, NULL); /* t is gone after this round */
        if (st)
            break;
        for (int i = 0; i < h->nl; i++)
            if (want_layer[i])
                tr_layer[i] = tr[h->lw[i]];
        /* after the last batch too: the column stage may follow */
        st = exact_save(x, b + 1, 0, tr_layer);
    }
    for (int i = 0; st == BP_OK && i < h->nl; i++)
        if (want_layer[i])
            tr_layer[i] = tr[h->lw[i]];
    free(want);
    free(tr);
    return st;
}

/* The columns of the layers with want: what column_traces runs through. */
static int64_t column_count(const bp_hessian *h, const char *want)
{
    int64_t total = 0;
    for (int i = 0; i < h->nl; i++)
        if (want[i])
            total += h->numel[h->lw[i]];
    return total;
}

/* Exact traces sum_j e_j^T H_ii e_j for the layers with want, unit vectors
 * of all those layers sharing passes, from column c0 on (counted over the
 * layers with want in order): tr holds the sums of the columns before it
 * (a resumed checkpoint's; 0 from the start).  Groups of columns are formed
 * from the position alone, so a resumed run sweeps the same groups. */
static int column_traces(bp_hessian *h, const char *want, double *tr,
                         int64_t c0, exact_ck *x)
{
    int st = BP_OK;
    int64_t total = column_count(h, want), done = c0;
    if (!total || c0 >= total)
        return BP_OK;
    dirn d[SWEEP_MAX];
    int lay[SWEEP_MAX];
    int64_t col[SWEEP_MAX];
    double *vb = NULL, *hb = NULL;
    int64_t maxn = 0;
    for (int i = 0; i < h->nl; i++)
        if (want[i] && h->numel[h->lw[i]] > maxn)
            maxn = h->numel[h->lw[i]];
    vb = calloc((size_t)(SWEEP_MAX * maxn), sizeof *vb);
    hb = calloc((size_t)(SWEEP_MAX * maxn), sizeof *hb);
    if (!vb || !hb || (st = dirs_alloc(d, SWEEP_MAX, h->np))) {
        st = st ? st : BP_ENOMEM;
        goto out;
    }
    /* the column c0 is column j of layer i */
    int i = 0;
    int64_t j = c0;
    for (; i < h->nl; i++) {
        if (!want[i])
            continue;
        if (j < h->numel[h->lw[i]])
            break;
        j -= h->numel[h->lw[i]];
    }
    while (st == BP_OK) {
        int k = 0;
        dirs_clear(d, SWEEP_MAX, h->np);
        for (; i < h->nl && k < SWEEP_MAX; i++, j = 0) {
            if (!want[i])
                continue;
            const int p = h->lw[i];
            for (; j < h->numel[p] && k < SWEEP_MAX; j++, k++) {
                double *v = vb + k * maxn, *hv = hb + k * maxn;
                memset(v, 0, (size_t)h->numel[p] * sizeof *v);
                memset(hv, 0, (size_t)h->numel[p] * sizeof *hv);
                v[j] = 1;
                d[k].v[p] = v;
                d[k].hv[p] = hv;
                lay[k] = i;
                col[k] = j;
            }
            if (j < h->numel[p])
                break; /* resume this layer at column j */
        }
        if (k == 0)
            break;
        if ((st = sweep(h, k, d)))
            break;
        for (int q = 0; q < k; q++)
            tr[lay[q]] += hb[q * maxn + col[q]];
        done += k;
        progress(h, "exact traces", done, total);
        st = exact_save(x, h->nb, done, tr);
    }
out:
    dirs_free(d, SWEEP_MAX);
    free(vb);
    free(hb);
    return st;
}

/* Output-space draws per sample and round (bp_ad_gn_sample). */
#define GNS_DRAWS 8

/* Saves the output-space rounds when a checkpoint is due (defined with the
 * checkpoints below), and restores them from a checkpoint taken there. */
static int gns_save(exact_ck *x, int64_t round, const bp_rng *rng,
                    const welford *wf, const char *want);
static int gns_restore(bp_hessian *h, const bp_ckpt *ck, const char *want,
                       int64_t rmax, int64_t *round, bp_rng *rng,
                       welford *wf);

/* Rounds of k draws before the rule applies: --min-samples draws, and at
 * least 2 for a standard error. */
static int64_t gns_min_rounds(const bp_sens_opts *o, int k)
{
    int64_t r = (o->min_samples + k - 1) / k;
    return r < 2 ? 2 : r;
}

/* Gauss-Newton traces sampled in the output space for the layers with
 * want: where exact traces cost one backward pass per class (1000 on
 * ImageNet models), a draw costs one for every layer at once.  A round is
 * GNS_DRAWS draws per sample over every batch (fewer when max_samples is
 * under twice that), an unbiased estimate of each wanted trace; rounds are
 * added until every layer's standard error is within tol of its mean,
 * after at least max(2, min_samples / draws) rounds, or until the draws
 * reach max_samples.  One RNG stream, drawn in batch order: the result
 * does not depend on the threads.
 *
 * With fell_back (auto), every round past the first min_samples draws
 * projects the rounds tol still needs from the spread so far: once the
 * draws still to come exceed the classes, exact traces are cheaper from
 * there; *fell_back is set and est left alone.  The
 * variance per draw depends on how the logits' Jacobian spreads over the
 * output space, and the draws needed per sample fall as 1/samples: on a
 * seeded ResNet-18 at --tol 0.01, 4 images took the full 496 draws each
 * (362 s, about the exact 1000 classes' cost), 16 images 184 each (472 s
 * against about 2800 s exactly). */
static int gns_traces(bp_hessian *h, const bp_sens_opts *o,
                      const char *want_layer, bp_trace_est *est,
                      int *fell_back, exact_ck *x)
{
    /* --max-samples bounds the draws per sample, as it bounds products */
    const int K = o->max_samples >= 2 * GNS_DRAWS ? GNS_DRAWS
                  : o->max_samples >= 4 ? (int)(o->max_samples / 2) : 1;
    const int64_t C = bp_ad_classes(h->ad);
    const int np = h->np, nl = h->nl;
    int st = BP_OK, any = 0;
    for (int i = 0; i < nl; i++)
        any |= want_layer[i];
    if (!any)
        return BP_OK;
    char *want = calloc((size_t)np, 1);
    double *trk = malloc((size_t)K * (size_t)np * sizeof *trk);
    double *sum = calloc((size_t)nl, sizeof *sum);
    double *signs = malloc((size_t)(K * h->batch * C) * sizeof *signs);
    welford *wf = calloc((size_t)nl, sizeof *wf);
    if (!want || !trk || !sum || !signs || !wf) {
        st = BP_ENOMEM;
        goto out;
    }
    for (int i = 0; i < nl; i++)
        if (want_layer[i])
            want[h->lw[i]] = 1;
    bp_rng rng;
    bp_rng_seed(&rng, o->seed, stream_of(RS_GNS, 0));
    const int64_t rmax = o->max_samples / K > 2 ? o->max_samples / K : 2;
    const int64_t rmin = gns_min_rounds(o, K) < rmax ? gns_min_rounds(o, K)
                                                      : rmax;
    int64_t r = 0, planned = rmin; /* rounds expected, for the progress */
    int converged = 0;
    if (o->ckpt && (o->ckpt->st.stage & BP_CKPT_GNS_PART)) {
        if ((st = gns_restore(h, o->ckpt, want_layer, rmax, &r, &rng, wf)))
            goto out;
        planned = r + 1 > rmin ? r + 1 : rmin;
    }
    while (r < rmax && !converged) {
        memset(sum, 0, (size_t)nl * sizeof *sum);
        for (int64_t b = 0; b < h->nb; b++) {
            int64_t start = b * h->batch;
            int64_t n = h->d->count - start < h->batch ? h->d->count - start
                                                        : h->batch;
            if ((st = load(h, b)))
                goto out;
            bp_rng_rademacher(&rng, signs, K * n * C);
            memset(trk, 0, (size_t)K * (size_t)np * sizeof *trk);
            if ((st = bp_ad_gn_sample(h->ad, want, K, signs, trk)))
                goto out;
            for (int i = 0; i < nl; i++)
                if (want_layer[i])
                    for (int j = 0; j < K; j++)
                        sum[i] += trk[(int64_t)j * np + h->lw[i]] / K;
            progress(h, "output-space traces", r * h->nb + b + 1,
                     planned * h->nb);
        }
        r++;
        converged = r >= rmin;
        double need = 0; /* rounds the worst layer needs for tol */
        for (int i = 0; i < nl; i++)
            if (want_layer[i]) {
                wf_add(&wf[i], sum[i]);
                double rel = wf_se(&wf[i]) / (o->tol * fabs(wf[i].mean));
                if (r >= rmin && !(rel <= 1))
                    converged = 0;
                rel = isfinite(rel) ? rel : INFINITY;
                need = rel * rel * (double)r > need ? rel * rel * (double)r
                                                    : need;
            }
        if (converged)
            break;
        if (r >= rmin) {
            /* rounds still to go, as the spread so far predicts */
            double left = fmin(ceil(need), (double)rmax) - (double)r;
            if (fell_back && (double)C < left * K) {
                /* the exact traces cost C passes per sample from here */
                *fell_back = 1;
                goto out;
            }
            planned = r + 1 + (int64_t)(left > 1 ? left - 1 : 0);
            progress(h, "output-space traces", r * h->nb, planned * h->nb);
        }
        if (r < rmax && (st = gns_save(x, r, &rng, wf, want_layer)))
            goto out;
    }
    for (int i = 0; i < nl; i++)
        if (want_layer[i]) {
            est[i].mean = wf[i].mean;
            est[i].stderr_ = wf_se(&wf[i]);
            est[i].samples = r * K;
            est[i].method = BP_TRACE_GN_HUTCHINSON;
            est[i].hit_max = !(est[i].stderr_ <= o->tol * fabs(est[i].mean));
        }
out:
    free(want);
    free(trk);
    free(sum);
    free(signs);
    free(wf);
    return st;
}

/* Orthonormalises the k rows (each of length n) of Y in place (QR by
 * LAPACKE: Y^T = Q R, column-major n x k is exactly our row layout). */
static int orthonormalize(double *Y, int64_t n, int k)
{
    double *tau = malloc((size_t)k * sizeof *tau);
    if (!tau)
        return BP_ENOMEM;
    int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, (lapack_int)n, k, Y,
                              (lapack_int)n, tau);
    if (info == 0)
        info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, (lapack_int)n, k, k, Y,
                              (lapack_int)n, tau);
    free(tau);
    return info == 0 ? BP_OK
                     : bp_fail(BP_EINTERNAL, "LAPACKE QR failed (info %d)",
                               (int)info);
}

/* w = g - Q Q^T g */
static void deflate(double *w, const double *Q, int k, int64_t n)
{
    for (int c = 0; c < k; c++) {
        const double *q = Q + (int64_t)c * n;
        double a = 0;
        for (int64_t i = 0; i < n; i++)
            a += q[i] * w[i];
        for (int64_t i = 0; i < n; i++)
            w[i] -= a * q[i];
    }
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* The Hutch++ sketch of every layer with want: Q from H S, then
 * t_low = tr(Q^T H Q).  Sketch products count toward the layer's samples. */
static int hutchpp_sketch(bp_hessian *h, lstate *ls, const char *want)
{
    int st = BP_OK;
    /* phase 0: Y = H S; phase 1: H Q */
    for (int phase = 0; phase < 2 && st == BP_OK; phase++) {
        for (int i = 0; i < h->nl && st == BP_OK; i++) {
            if (!want[i])
                continue;
            lstate *s = &ls[i];
            const int64_t n = s->n;
            double *in = phase == 0 ? NULL : s->Q;
            double *outb = malloc((size_t)(s->k * n) * sizeof *outb);
            double *S = NULL;
            if (!outb)
                return BP_ENOMEM;
            if (phase == 0) {
                S = malloc((size_t)(s->k * n) * sizeof *S);
                if (!S) {
                    free(outb);
                    return BP_ENOMEM;
                }
                for (int c = 0; c < s->k; c++)
                    bp_rng_rademacher(&s->rng, S + (int64_t)c * n, n);
                in = S;
            }
            const double **vv = malloc((size_t)s->k * sizeof *vv);
            double **hh = malloc((size_t)s->k * sizeof *hh);
            if (!vv || !hh) {
                free(vv);
                free(hh);
                free(S);
                free(outb);
                return BP_ENOMEM;
            }
            for (int c = 0; c < s->k; c++) {
                vv[c] = in + (int64_t)c * n;
                hh[c] = outb + (int64_t)c * n;
            }
            st = bp_hessian_block_hvp(h, i, s->k, vv, hh);
            s->products += s->k;
            if (st == BP_OK && phase == 0) {
                memcpy(s->Q, outb, (size_t)(s->k * n) * sizeof *outb);
                st = orthonormalize(s->Q, n, s->k);
            } else if (st == BP_OK) {
                s->t_low = 0;
                for (int c = 0; c < s->k; c++)
                    s->t_low += dot(s->Q + (int64_t)c * n, outb + (int64_t)c * n, n);
            }
            free(vv);
            free(hh);
            free(S);
            free(outb);
        }
    }
    return st;
}

/* One round of block samples for every layer with want (Hutchinson on the
 * block, or on the Hutch++ remainder): r vectors each, all layers in shared
 * passes. */
static int block_round(bp_hessian *h, lstate *ls, const char *want, int r)
{
    int st = BP_OK;
    int total = 0;
    for (int i = 0; i < h->nl; i++)
        if (want[i])
            total += r;
    if (!total)
        return BP_OK;
    dirn *d = calloc((size_t)total, sizeof *d);
    double **vb = calloc((size_t)total, sizeof *vb);
    double **hb = calloc((size_t)total, sizeof *hb);
    int *lay = calloc((size_t)total, sizeof *lay);
    if (!d || !vb || !hb || !lay || (st = dirs_alloc(d, total, h->np))) {
        st = st ? st : BP_ENOMEM;
        goto out;
    }
    int k = 0;
    for (int i = 0; i < h->nl; i++) {
        if (!want[i])
            continue;
        lstate *s = &ls[i];
        const int p = h->lw[i];
        for (int j = 0; j < r; j++, k++) {
            vb[k] = malloc((size_t)s->n * sizeof **vb);
            hb[k] = calloc((size_t)s->n, sizeof **hb);
            if (!vb[k] || !hb[k]) {
                st = BP_ENOMEM;
                goto out;
            }
            bp_rng_rademacher(&s->rng, vb[k], s->n);
            if (s->method == BP_TRACE_HUTCHPP)
                deflate(vb[k], s->Q, s->k, s->n);
            d[k].v[p] = vb[k];
            d[k].hv[p] = hb[k];
            lay[k] = i;
        }
    }
    for (int j0 = 0; j0 < total && st == BP_OK; j0 += SWEEP_MAX) {
        int kk = total - j0 < SWEEP_MAX ? total - j0 : SWEEP_MAX;
        st = sweep(h, kk, d + j0);
    }
    for (int q = 0; q < total && st == BP_OK; q++) {
        lstate *s = &ls[lay[q]];
        wf_add(&s->rem, dot(vb[q], hb[q], s->n));
        s->products++;
    }
out:
    if (d)
        dirs_free(d, total);
    for (int q = 0; vb && q < total; q++) {
        free(vb[q]);
        free(hb[q]);
    }
    free(d);
    free(vb);
    free(hb);
    free(lay);
    return st;
}

/* One round of r global vectors: Rademacher over the weights of every
 * sampled layer at once; each sampled layer records v_i^T (H v)_i. */
static int global_round(bp_hessian *h, lstate *ls, bp_rng *rng, int r)
{
    int st = BP_OK;
    dirn d[ROUND];
    double **vb = calloc((size_t)(r * h->nl), sizeof *vb);
    double **hb = calloc((size_t)(r * h->nl), sizeof *hb);
    if (r > ROUND || !vb || !hb || (st = dirs_alloc(d, r, h->np))) {
        st = st ? st : BP_ENOMEM;
        goto out;
    }
    for (int j = 0; j < r; j++)
        for (int i = 0; i < h->nl; i++) {
            if (!ls[i].sampled)
                continue;
            const int p = h->lw[i];
            if (d[j].v[p]) /* a weight shared by two layers */
                continue;
            double *v = malloc((size_t)ls[i].n * sizeof *v);
            double *hv = calloc((size_t)ls[i].n, sizeof *hv);
            vb[j * h->nl + i] = v;
            hb[j * h->nl + i] = hv;
            if (!v || !hv) {
                st = BP_ENOMEM;
                goto out;
            }
            bp_rng_rademacher(rng, v, ls[i].n);
            d[j].v[p] = v;
            d[j].hv[p] = hv;
        }
    if ((st = sweep(h, r, d)))
        goto out;
    for (int j = 0; j < r; j++)
        for (int i = 0; i < h->nl; i++) {
            if (!ls[i].sampled)
                continue;
            const int p = h->lw[i];
            wf_add(&ls[i].glob, dot(d[j].v[p], d[j].hv[p], ls[i].n));
        }
out:
    dirs_free(d, r <= ROUND ? r : 0);
    for (int q = 0; vb && q < r * h->nl; q++) {
        free(vb[q]);
        free(hb[q]);
    }
    free(vb);
    free(hb);
    return st;
}

static double block_mean(const lstate *s)
{
    return s->t_low + s->rem.mean;
}

/* Samples a layer needs to reach tol from per-sample variance var around
 * mean mu (not capped: the plans are compared by when they would reach the
 * tolerance, even past max_samples). */
static double need(double var, double mu, double tol)
{
    double den = tol * fabs(mu);
    if (!(var >= 0) || !isfinite(var) || den <= 0)
        return INFINITY;
    return var / (den * den);
}

static int block_done(const lstate *s, const bp_sens_opts *o)
{
    if (s->products >= o->max_samples)
        return 1;
    if (s->rem.m < o->min_samples)
        return 0;
    return wf_se(&s->rem) <= o->tol * fabs(block_mean(s));
}


/* ---- checkpoints (checkpoint.h) ------------------------------------------------------ */

static const char *ck_name(const bp_ckpt *ck)
{
    return ck->source ? ck->source : ck->path ? ck->path : "checkpoint";
}

/* The checkpoint's layers are the model's (a checkpoint with the right
 * identity always passes; a crafted one must not index out of bounds). */
static int ck_check_layers(const bp_hessian *h, const bp_ckpt *ck)
{
    if (ck->st.n_layers != h->nl)
        return bp_fail(BP_EINVAL, "%s: checkpoint holds %d layers, the model "
                       "%d", ck_name(ck), ck->st.n_layers, h->nl);
    for (int i = 0; i < h->nl; i++)
        if (ck->st.layers[i].n != h->numel[h->lw[i]])
            return bp_fail(BP_EINVAL, "%s: checkpoint layer %d ('%s') has %lld "
                           "weights, the model %lld", ck_name(ck), i,
                           h->layers[i].name, (long long)ck->st.layers[i].n,
                           (long long)h->numel[h->lw[i]]);
    return BP_OK;
}

static int ck_bad(const bp_ckpt *ck, int i, const char *what)
{
    return bp_fail(BP_EINVAL, "%s: checkpoint layer %d: %s does not match "
                   "this run", ck_name(ck), i, what);
}

static void est_to_ck(bp_ckpt_layer *l, const bp_trace_est *e)
{
    l->est_mean = e->mean;
    l->est_se = e->stderr_;
    l->est_samples = e->samples;
    l->est_method = (int32_t)e->method;
    l->est_hit_max = e->hit_max;
}

static void est_from_ck(bp_trace_est *e, const bp_ckpt_layer *l)
{
    e->mean = l->est_mean;
    e->stderr_ = l->est_se;
    e->samples = l->est_samples;
    e->method = (bp_trace_method)l->est_method;
    e->hit_max = l->est_hit_max != 0;
}

/* Saves the trace stage's state when due (always with force). */
static int traces_save(bp_hessian *h, const bp_sens_opts *o, int force,
                       uint32_t stage, const lstate *ls,
                       const bp_trace_est *est, bp_trace_scope scope,
                       bp_trace_scope scope_used, int64_t gsamples,
                       const bp_rng *grng)
{
    bp_ckpt *ck = o->ckpt;
    if (!bp_ckpt_due(ck, force))
        return BP_OK;
    bp_ckpt_state *s = &ck->st;
    if (s->n_layers != h->nl && bp_ckpt_state_reset(s, h->nl))
        return BP_ENOMEM;
    s->stage = stage;
    s->scope = (int32_t)scope;
    s->scope_used = (int32_t)scope_used;
    s->gsamples = gsamples;
    s->products = h->products;
    memcpy(s->grng, grng->s, sizeof s->grng);
    if (!(stage & BP_CKPT_EXACT_PART)) /* exact_save sets them */
        s->exact_batch = s->exact_nb = s->exact_cols = s->exact_ncols = 0;
    const int gns = (stage & BP_CKPT_GNS_PART) != 0; /* gns_save sets them */
    if (!gns) {
        s->gns_round = 0;
        memset(s->gns_rng, 0, sizeof s->gns_rng);
    }
    for (int i = 0; i < h->nl; i++) {
        bp_ckpt_layer *l = &s->layers[i];
        const lstate *x = &ls[i];
        if (!gns) {
            l->gns_m = 0;
            l->gns_mean = l->gns_m2 = 0;
        }
        l->sampled = x->sampled;
        l->method = (int32_t)x->method;
        l->k = x->k;
        l->n = x->n;
        l->rem_m = x->rem.m;
        l->rem_mean = x->rem.mean;
        l->rem_m2 = x->rem.m2;
        l->glob_m = x->glob.m;
        l->glob_mean = x->glob.mean;
        l->glob_m2 = x->glob.m2;
        l->products = x->products;
        l->t_low = x->t_low;
        memcpy(l->rng, x->rng.s, sizeof l->rng);
        est_to_ck(l, &est[i]);
        int keep_q = (stage & BP_CKPT_SKETCH) && !(stage & BP_CKPT_TRACES) &&
                     x->Q && x->method == BP_TRACE_HUTCHPP;
        l->eig_done = l->eig_iters = l->lz_m = 0;
        l->eig_val = l->eig_prev = 0;
        if (bp_ckpt_set(&l->q, &l->n_q, x->Q, keep_q ? x->k * x->n : 0) ||
            bp_ckpt_set(&l->alpha, &l->n_ab, NULL, 0) ||
            bp_ckpt_set(&l->beta, &l->n_ab, NULL, 0) ||
            bp_ckpt_set(&l->v, &l->n_v, NULL, 0))
            return BP_ENOMEM;
    }
    return bp_ckpt_save(ck);
}

/* Restores the sampling state of a checkpoint past the exact stage. */
static int traces_restore(bp_hessian *h, const bp_ckpt *ck, lstate *ls,
                          bp_trace_est *est, const char *exact)
{
    const bp_ckpt_state *s = &ck->st;
    int st = ck_check_layers(h, ck);
    if (st)
        return st;
    for (int i = 0; i < h->nl; i++) {
        const bp_ckpt_layer *l = &s->layers[i];
        lstate *x = &ls[i];
        if (exact[i]) {
            /* exact[i] 2: sampled in the output space (gns_traces), or
             * exact where its pilot fell back */
            if (l->est_method != BP_TRACE_EXACT &&
                (exact[i] != 2 || l->est_method != BP_TRACE_GN_HUTCHINSON))
                return ck_bad(ck, i, "the trace method");
            est_from_ck(&est[i], l);
        }
        if (l->sampled != x->sampled || (x->sampled &&
            (l->method != (int32_t)x->method || l->k != x->k)))
            return ck_bad(ck, i, "the sampling plan");
        if (l->rem_m > l->products || l->glob_m > s->gsamples)
            return ck_bad(ck, i, "the sample count");
        x->rem.m = l->rem_m;
        x->rem.mean = l->rem_mean;
        x->rem.m2 = l->rem_m2;
        x->glob.m = l->glob_m;
        x->glob.mean = l->glob_mean;
        x->glob.m2 = l->glob_m2;
        x->products = l->products;
        x->t_low = l->t_low;
        memcpy(x->rng.s, l->rng, sizeof x->rng.s);
        if ((s->stage & BP_CKPT_SKETCH) && x->sampled &&
            x->method == BP_TRACE_HUTCHPP) {
            if (!x->Q || l->n_q != (int64_t)x->k * x->n)
                return ck_bad(ck, i, "the Hutch++ sketch");
            memcpy(x->Q, l->q, (size_t)l->n_q * sizeof *x->Q);
        }
    }
    h->products = s->products;
    return BP_OK;
}

/* What exact_save needs to write a whole trace-stage state. */
struct exact_ck {
    bp_hessian *h;
    const bp_sens_opts *o;
    const lstate *ls;
    bp_trace_est *est;
    const char *exact;     /* (nl) layers with exact traces */
    int64_t ncols;         /* columns of column_traces */
    bp_trace_scope scope;
    int64_t gsamples;
    const bp_rng *grng;
};

/* The checkpoint when a save is due, shaped for this model: traces_save
 * resets a state of another shape, which would drop a position written
 * into it first.  NULL when none is due, or with *st on failure. */
static bp_ckpt *save_due(const exact_ck *x, int *st)
{
    bp_ckpt *ck = x->o->ckpt;
    *st = BP_OK;
    if (!bp_ckpt_due(ck, 0))
        return NULL;
    if (ck->st.n_layers != x->h->nl &&
        bp_ckpt_state_reset(&ck->st, x->h->nl)) {
        *st = BP_ENOMEM;
        return NULL;
    }
    return ck;
}

static int exact_save(exact_ck *x, int64_t batch, int64_t cols,
                      const double *tr)
{
    int st;
    bp_ckpt *ck = save_due(x, &st);
    if (!ck)
        return st;
    bp_hessian *h = x->h;
    /* the sums so far travel as the exact layers' trace results, which a
     * finished stage overwrites */
    for (int i = 0; i < h->nl; i++)
        if (x->exact[i]) {
            x->est[i].mean = tr[i];
            x->est[i].method = BP_TRACE_EXACT;
        }
    ck->st.exact_batch = batch;
    ck->st.exact_nb = h->nb;
    ck->st.exact_cols = cols;
    ck->st.exact_ncols = x->ncols;
    return traces_save(h, x->o, 1, BP_CKPT_EXACT_PART, x->ls, x->est, x->scope,
                       BP_SCOPE_AUTO, x->gsamples, x->grng);
}

/* Restores a checkpoint taken inside the exact stage: the sums so far into
 * tr (per layer) and where to go on from. */
static int exact_restore(bp_hessian *h, const bp_ckpt *ck, lstate *ls,
                         bp_trace_est *est, const char *exact, int64_t ncols,
                         double *tr, int64_t *b0, int64_t *c0)
{
    const bp_ckpt_state *s = &ck->st;
    if (s->exact_nb != h->nb)
        return bp_fail(BP_EINVAL, "%s: checkpoint was saved over %lld "
                       "batches, this run has %lld", ck_name(ck),
                       (long long)s->exact_nb, (long long)h->nb);
    if (s->exact_ncols != ncols)
        return bp_fail(BP_EINVAL, "%s: checkpoint counts %lld columns of "
                       "exact traces, this run %lld", ck_name(ck),
                       (long long)s->exact_ncols, (long long)ncols);
    int st = traces_restore(h, ck, ls, est, exact);
    if (st)
        return st;
    for (int i = 0; i < h->nl; i++)
        if (exact[i])
            tr[i] = est[i].mean;
    *b0 = s->exact_batch;
    *c0 = s->exact_cols;
    return BP_OK;
}

static int gns_save(exact_ck *x, int64_t round, const bp_rng *rng,
                    const welford *wf, const char *want)
{
    int st;
    bp_ckpt *ck = save_due(x, &st);
    if (!ck)
        return st;
    bp_hessian *h = x->h;
    ck->st.gns_round = round;
    memcpy(ck->st.gns_rng, rng->s, sizeof ck->st.gns_rng);
    for (int i = 0; i < h->nl; i++) {
        bp_ckpt_layer *l = &ck->st.layers[i];
        l->gns_m = want[i] ? wf[i].m : 0;
        l->gns_mean = want[i] ? wf[i].mean : 0;
        l->gns_m2 = want[i] ? wf[i].m2 : 0;
    }
    return traces_save(h, x->o, 1, BP_CKPT_GNS_PART, x->ls, x->est, x->scope,
                       BP_SCOPE_AUTO, x->gsamples, x->grng);
}

static int gns_restore(bp_hessian *h, const bp_ckpt *ck, const char *want,
                       int64_t rmax, int64_t *round, bp_rng *rng,
                       welford *wf)
{
    const bp_ckpt_state *s = &ck->st;
    int st = ck_check_layers(h, ck);
    if (st)
        return st;
    if (s->gns_round >= rmax)
        return bp_fail(BP_EINVAL, "%s: checkpoint has %lld output-space "
                       "rounds, this run stops at %lld", ck_name(ck),
                       (long long)s->gns_round, (long long)rmax);
    for (int i = 0; i < h->nl; i++) {
        const bp_ckpt_layer *l = &s->layers[i];
        if (l->gns_m != (want[i] ? s->gns_round : 0))
            return ck_bad(ck, i, "the output-space samples");
        if (want[i])
            wf[i] = (welford){l->gns_m, l->gns_mean, l->gns_m2};
    }
    *round = s->gns_round;
    memcpy(rng->s, s->gns_rng, sizeof rng->s);
    return BP_OK;
}

/* The output-space stage as a checkpoint taken after it recorded it: the
 * layers' results, or (all of them exact) its fallback. */
static int gns_from_ck(bp_hessian *h, const bp_ckpt *ck, const char *gns,
                       bp_trace_est *est, int *fell_back)
{
    int st = ck_check_layers(h, ck), sampled = 0, exact = 0;
    if (st)
        return st;
    for (int i = 0; i < h->nl; i++) {
        if (!gns[i])
            continue;
        const bp_ckpt_layer *l = &ck->st.layers[i];
        if (l->est_method == BP_TRACE_GN_HUTCHINSON) {
            est_from_ck(&est[i], l);
            sampled = 1;
        } else if (l->est_method == BP_TRACE_EXACT) {
            exact = 1;
        } else {
            return ck_bad(ck, i, "the trace method");
        }
        if (sampled && exact)
            return ck_bad(ck, i, "the trace method");
    }
    *fell_back = exact;
    return BP_OK;
}

int bp_hessian_traces(bp_hessian *h, const bp_sens_opts *o,
                      bp_trace_est *est, bp_trace_scope *scope_used)
{
    int st = BP_OK;
    if ((st = bp_ad_set_threads(h->ad, o->threads)))
        return st;
    const int nl = h->nl;
    h->o = o;
    lstate *ls = calloc((size_t)nl, sizeof *ls);
    char *want = calloc((size_t)nl, 1), *gns = NULL;
    double *tr = calloc((size_t)nl, sizeof *tr);
    if (!ls || !want || !tr) {
        st = BP_ENOMEM;
        goto out;
    }
    *scope_used = BP_SCOPE_AUTO;
    bp_ckpt *ck = o->ckpt;
    const uint32_t rs = ck ? ck->st.stage : 0; /* resumed from */
    if (rs & BP_CKPT_TRACES) {
        if ((st = ck_check_layers(h, ck)))
            goto out;
        for (int i = 0; i < nl; i++) {
            if (ck->st.layers[i].est_method < BP_TRACE_EXACT) {
                st = ck_bad(ck, i, "the trace method");
                goto out;
            }
            est_from_ck(&est[i], &ck->st.layers[i]);
        }
        *scope_used = (bp_trace_scope)ck->st.scope_used;
        h->products = ck->st.products;
        goto out;
    }
    uint32_t stage = 0;
    bp_trace_scope scope = o->scope;
    bp_rng grng;
    bp_rng_seed(&grng, o->seed, stream_of(RS_GLOBAL, 0));
    int64_t gsamples = 0;
    /* 1. classify: exact by Gauss-Newton, exact by columns, sampled in the
     * output space, or sampled */
    const int64_t min_plan = 2 * (int64_t)o->sketch + o->min_samples;
    /* exact Gauss-Newton traces cost C backward passes per sample (1000
     * classes: 176 s per ResNet-18 image here), samples in the output space
     * at least GNS_DRAWS x gns_min_rounds per sample (32 by default), more
     * on few samples or a tight --tol, which their pilot weighs against C:
     * auto samples once C is 4x the fewest (128 by default) */
    const int gn_sampled =
        o->trace == BP_TRACE_GN_HUTCHINSON ||
        (o->trace == BP_TRACE_AUTO &&
         bp_ad_classes(h->ad) > 4 * GNS_DRAWS * gns_min_rounds(o, GNS_DRAWS));
    char *cols = calloc((size_t)nl, 1);
    gns = calloc((size_t)nl, 1);
    if (!cols || !gns) {
        free(cols);
        st = BP_ENOMEM;
        goto out;
    }
    for (int i = 0; i < nl; i++) {
        const int64_t n = h->numel[h->lw[i]];
        ls[i].n = n;
        memset(&est[i], 0, sizeof est[i]);
        bp_rng_seed(&ls[i].rng, o->seed, stream_of(RS_BLOCK, i));
        int gn = bp_hessian_layer_exact(h, i);
        switch (o->trace) {
        case BP_TRACE_AUTO:
        case BP_TRACE_GN_HUTCHINSON:
            if (gn && gn_sampled)
                gns[i] = 1;
            else if (gn)
                want[i] = 1;
            else if (n <= min_plan)
                cols[i] = 1;
            else {
                ls[i].sampled = 1;
                ls[i].method = BP_TRACE_HUTCHPP;
            }
            break;
        case BP_TRACE_EXACT:
            if (gn)
                want[i] = 1;
            else
                cols[i] = 1;
            break;
        default:
            ls[i].sampled = 1;
            ls[i].method = o->trace;
        }
        if (ls[i].sampled && ls[i].method == BP_TRACE_HUTCHPP) {
            /* the sketch must leave room for remainder samples */
            int64_t k = o->sketch;
            if (k > n)
                k = n;
            if (2 * k > o->max_samples - 2)
                k = (o->max_samples - 2) / 2;
            if (k < 1) {
                ls[i].method = BP_TRACE_HUTCHINSON;
            } else {
                ls[i].k = (int)k;
                ls[i].Q = malloc((size_t)(k * n) * sizeof *ls[i].Q);
                if (!ls[i].Q) {
                    free(cols);
                    st = BP_ENOMEM;
                    goto out;
                }
            }
        }
    }
    if (rs & BP_CKPT_EXACT) {
        for (int i = 0; i < nl; i++)
            cols[i] = gns[i] ? 2 : (char)(cols[i] | want[i]);
        st = traces_restore(h, ck, ls, est, cols);
        free(cols);
        if (st)
            goto out;
        stage = rs;
        if (rs & BP_CKPT_SCOPE)
            scope = (bp_trace_scope)ck->st.scope;
        gsamples = ck->st.gsamples;
        memcpy(grng.s, ck->st.grng, sizeof grng.s);
    } else {
        /* output-space samples first: under auto they may hand the layers
         * back to the exact traces.  A checkpoint inside the exact stage
         * comes after them: it holds their results, or exact partial sums
         * where they fell back */
        int fell_back = 0;
        exact_ck gx = {h, o, ls, est, NULL, 0, scope, gsamples, &grng};
        if (rs & BP_CKPT_EXACT_PART)
            st = gns_from_ck(h, ck, gns, est, &fell_back);
        else
            st = gns_traces(h, o, gns, est,
                            o->trace == BP_TRACE_AUTO ? &fell_back : NULL,
                            &gx);
        if (st) {
            free(cols);
            goto out;
        }
        for (int i = 0; fell_back && i < nl; i++) {
            want[i] |= gns[i];
            gns[i] = 0;
        }
        /* the exact stage, from the start or from where a checkpoint of
         * it stopped */
        char *exact = malloc((size_t)nl);
        if (!exact) {
            free(cols);
            st = BP_ENOMEM;
            goto out;
        }
        for (int i = 0; i < nl; i++)
            exact[i] = (char)(want[i] | cols[i]);
        const int64_t ncols = column_count(h, cols);
        int64_t b0 = 0, c0 = 0;
        if (rs & BP_CKPT_EXACT_PART)
            st = exact_restore(h, ck, ls, est, exact, ncols, tr, &b0, &c0);
        exact_ck x = {h, o, ls, est, exact, ncols, scope, gsamples, &grng};
        if (st == BP_OK)
            st = gn_traces(h, want, tr, b0, &x);
        if (st) {
            free(exact);
            free(cols);
            goto out;
        }
        for (int i = 0; i < nl; i++)
            if (want[i]) {
                est[i].mean = tr[i];
                est[i].method = BP_TRACE_EXACT;
            }
        st = column_traces(h, cols, tr, c0, &x);
        free(exact);
        for (int i = 0; st == BP_OK && i < nl; i++)
            if (cols[i]) {
                est[i].mean = tr[i];
                est[i].method = BP_TRACE_EXACT;
            }
        free(cols);
        if (st)
            goto out;
        stage = BP_CKPT_EXACT;
        if ((st = traces_save(h, o, 1, stage, ls, est, scope, BP_SCOPE_AUTO,
                              gsamples, &grng)))
            goto out;
    }
#define SAVE_DUE()                                                            \
    do {                                                                      \
        if ((st = traces_save(h, o, 0, stage, ls, est, scope, BP_SCOPE_AUTO,  \
                              gsamples, &grng)))                              \
            goto out;                                                         \
    } while (0)

    /* 2. sampled layers */
    int any = 0;
    for (int i = 0; i < nl; i++)
        any |= ls[i].sampled;
    if (!any)
        goto done;
    const int64_t gmax = o->max_samples;
    if (scope == BP_SCOPE_AUTO || scope == BP_SCOPE_GLOBAL) {
        /* global pilot (or the start of the global plan) */
        while (gsamples < o->min_samples && st == BP_OK) {
            int r = (int)(o->min_samples - gsamples < ROUND ? o->min_samples - gsamples
                                                             : ROUND);
            if ((st = global_round(h, ls, &grng, r)))
                goto out;
            gsamples += r;
            progress(h, "traces (global pilot)", gsamples, o->min_samples);
            SAVE_DUE();
        }
    }
    if (st)
        goto out;
    if (scope == BP_SCOPE_AUTO || scope == BP_SCOPE_BLOCK) {
        /* block pilot (or the start of the block plan) */
        if (!(stage & BP_CKPT_SKETCH)) {
            for (int i = 0; i < nl; i++) {
                want[i] = ls[i].sampled && ls[i].method == BP_TRACE_HUTCHPP;
                if (ls[i].sampled)
                    bp_rng_seed(&ls[i].rng, o->seed,
                                stream_of(ls[i].method == BP_TRACE_HUTCHPP
                                              ? RS_SKETCH : RS_BLOCK, i));
            }
            if ((st = hutchpp_sketch(h, ls, want)))
                goto out;
            stage |= BP_CKPT_SKETCH;
            SAVE_DUE();
        }
        for (;;) {
            int more = 0;
            for (int i = 0; i < nl; i++) {
                want[i] = ls[i].sampled && ls[i].rem.m < o->min_samples &&
                          ls[i].products < o->max_samples;
                more |= want[i];
            }
            if (!more)
                break;
            int r = ROUND;
            for (int i = 0; i < nl; i++)
                if (want[i] && o->max_samples - ls[i].products < r)
                    r = (int)(o->max_samples - ls[i].products);
            if ((st = block_round(h, ls, want, r < 1 ? 1 : r)))
                goto out;
            progress(h, "traces (block pilot)", 0, 0);
            SAVE_DUE();
        }
    }
    if (scope == BP_SCOPE_AUTO) {
        /* predicted remaining cost of each plan, in the cost model's units */
        char *vm = calloc((size_t)h->np, 1), *om = calloc((size_t)h->np, 1);
        if (!vm || !om) {
            free(vm);
            free(om);
            st = BP_ENOMEM;
            goto out;
        }
        double gneed = 0, bcost = 0;
        for (int i = 0; i < nl; i++) {
            if (!ls[i].sampled)
                continue;
            vm[h->lw[i]] = om[h->lw[i]] = 1;
            double mu = block_mean(&ls[i]);
            double ng = need(wf_var(&ls[i].glob), mu, o->tol);
            gneed = ng > gneed ? ng : gneed;
            double nb = need(wf_var(&ls[i].rem), mu, o->tol);
            double rest = nb - (double)ls[i].rem.m;
            char *one = calloc((size_t)h->np, 1);
            if (!one) {
                free(vm);
                free(om);
                st = BP_ENOMEM;
                goto out;
            }
            one[h->lw[i]] = 1;
            bcost += (rest > 0 ? rest : 0) * bp_ad_hvp_cost(h->ad, one, one);
            free(one);
        }
        double grest = gneed - (double)gsamples;
        double gcost = (grest > 0 ? grest : 0) * bp_ad_hvp_cost(h->ad, vm, om);
        free(vm);
        free(om);
        /* ties, including both out of reach, keep the requested estimator
         * on its block */
        scope = gcost < bcost ? BP_SCOPE_GLOBAL : BP_SCOPE_BLOCK;
    }
    stage |= BP_CKPT_SCOPE;
    *scope_used = scope;
    if (scope == BP_SCOPE_GLOBAL) {
        for (;;) {
            int more = 0;
            for (int i = 0; i < nl; i++) {
                if (!ls[i].sampled)
                    continue;
                const welford *w = &ls[i].glob;
                int ok = w->m >= o->min_samples &&
                         wf_se(w) <= o->tol * fabs(w->mean);
                if (!ok)
                    more = 1;
            }
            if (!more || gsamples >= gmax)
                break;
            int r = (int)(gmax - gsamples < ROUND ? gmax - gsamples : ROUND);
            if ((st = global_round(h, ls, &grng, r)))
                goto out;
            gsamples += r;
            progress(h, "traces (global)", gsamples, gmax);
            SAVE_DUE();
        }
        for (int i = 0; i < nl; i++) {
            if (!ls[i].sampled)
                continue;
            est[i].mean = ls[i].glob.mean;
            est[i].stderr_ = wf_se(&ls[i].glob);
            est[i].samples = ls[i].glob.m;
            est[i].method = BP_TRACE_HUTCHINSON;
            est[i].hit_max = !(wf_se(&ls[i].glob) <= o->tol * fabs(ls[i].glob.mean));
        }
    } else {
        for (;;) {
            int more = 0;
            for (int i = 0; i < nl; i++) {
                want[i] = ls[i].sampled && !block_done(&ls[i], o);
                more |= want[i];
            }
            if (!more)
                break;
            int r = ROUND;
            for (int i = 0; i < nl; i++)
                if (want[i] && o->max_samples - ls[i].products < r)
                    r = (int)(o->max_samples - ls[i].products);
            if ((st = block_round(h, ls, want, r < 1 ? 1 : r)))
                goto out;
            progress(h, "traces", 0, 0);
            SAVE_DUE();
        }
        for (int i = 0; i < nl; i++) {
            if (!ls[i].sampled)
                continue;
            est[i].mean = block_mean(&ls[i]);
            est[i].stderr_ = wf_se(&ls[i].rem);
            est[i].samples = ls[i].products;
            est[i].method = ls[i].method;
            est[i].hit_max = !(wf_se(&ls[i].rem) <=
                               o->tol * fabs(block_mean(&ls[i])));
        }
    }
#undef SAVE_DUE
done:
    st = traces_save(h, o, 1, stage | BP_CKPT_TRACES, ls, est, scope,
                     *scope_used, gsamples, &grng);
out:
    for (int i = 0; ls && i < nl; i++)
        free(ls[i].Q);
    free(ls);
    free(want);
    free(gns);
    free(tr);
    h->o = NULL;
    return st;
}

/* ---- eigenvalues ----------------------------------------------------------------------- */

/* Lanczos state of one block (or of the whole parameter vector). */
typedef struct lanczos {
    int64_t n;
    int m, cap;           /* steps taken, capacity */
    double *Q;            /* (cap + 1, n) basis vectors */
    double *alpha, *beta; /* (cap) */
    double *w;            /* (n) product */
    int done;
    double top;
} lanczos;

static int lz_init(lanczos *z, int64_t n, int cap, bp_rng *rng)
{
    memset(z, 0, sizeof *z);
    z->n = n;
    z->cap = cap;
    z->Q = malloc((size_t)((cap + 1) * n) * sizeof *z->Q);
    z->alpha = calloc((size_t)cap + 1, sizeof *z->alpha);
    z->beta = calloc((size_t)cap + 1, sizeof *z->beta);
    z->w = calloc((size_t)n, sizeof *z->w);
    if (!z->Q || !z->alpha || !z->beta || !z->w)
        return BP_ENOMEM;
    bp_rng_rademacher(rng, z->Q, n);
    double s = 1 / sqrt((double)n);
    for (int64_t i = 0; i < n; i++)
        z->Q[i] *= s;
    z->top = NAN;
    return BP_OK;
}

static void lz_free(lanczos *z)
{
    free(z->Q);
    free(z->alpha);
    free(z->beta);
    free(z->w);
}

/* Eigen-decomposition of the tridiagonal T (m): eigenvalues ascending into
 * d, eigenvectors (column-major m x m) into zv. */
static int tridiag_eig(const double *alpha, const double *beta, int m,
                       double *d, double *zv)
{
    double *e = malloc((size_t)(m > 1 ? m - 1 : 1) * sizeof *e);
    if (!e)
        return BP_ENOMEM;
    memcpy(d, alpha, (size_t)m * sizeof *d);
    for (int i = 0; i + 1 < m; i++)
        e[i] = beta[i];
    lapack_int info = LAPACKE_dstev(LAPACK_COL_MAJOR, 'V', m, d, e, zv, m);
    free(e);
    return info == 0 ? BP_OK
                     : bp_fail(BP_EINTERNAL, "LAPACKE_dstev failed (info %d)",
                               (int)info);
}

/* One Lanczos step after w = H q_m: orthogonalise, extend T, test the Ritz
 * residual of the largest eigenvalue against tol. */
static int lz_step(lanczos *z, double tol)
{
    const int64_t n = z->n;
    const int m = z->m;
    double *q = z->Q + (int64_t)m * n, *w = z->w;
    double a = dot(q, w, n);
    z->alpha[m] = a;
    /* full reorthogonalisation, twice (Kahan: twice is enough) */
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j <= m; j++) {
            const double *qj = z->Q + (int64_t)j * n;
            double c = dot(qj, w, n);
            for (int64_t i = 0; i < n; i++)
                w[i] -= c * qj[i];
        }
    double b = sqrt(dot(w, w, n));
    z->beta[m] = b;
    z->m = m + 1;
    const int k = z->m;
    double *d = malloc((size_t)k * sizeof *d);
    double *zv = malloc((size_t)(k * k) * sizeof *zv);
    if (!d || !zv) {
        free(d);
        free(zv);
        return BP_ENOMEM;
    }
    int st = tridiag_eig(z->alpha, z->beta, k, d, zv);
    if (st == BP_OK) {
        z->top = d[k - 1];
        double res = b * fabs(zv[(int64_t)(k - 1) * k + (k - 1)]);
        double scale = fabs(z->top) > 0 ? fabs(z->top) : 1;
        if (res <= tol * scale || b <= 1e-14 * scale || z->m >= z->cap ||
            z->m >= n)
            z->done = 1;
        else
            for (int64_t i = 0; i < n; i++)
                z->Q[(int64_t)z->m * n + i] = w[i] / b;
    }
    free(d);
    free(zv);
    return st;
}


/* Saves the eigenvalue stage's state when due (always with force), on top
 * of the finished traces. */
static int eigs_save(bp_hessian *h, const bp_sens_opts *o, int force,
                     int finished, const lanczos *lz, double *const *pv,
                     const double *prev, const char *done, const double *val,
                     const int *iters)
{
    bp_ckpt *ck = o->ckpt;
    if (!bp_ckpt_due(ck, force))
        return BP_OK;
    bp_ckpt_state *s = &ck->st;
    if (s->n_layers != h->nl) /* traces were not saved: nothing to add to */
        return BP_OK;
    s->stage |= finished ? BP_CKPT_EIGS : BP_CKPT_EIG;
    s->products = h->products;
    for (int i = 0; i < h->nl; i++) {
        bp_ckpt_layer *l = &s->layers[i];
        const int64_t n = h->numel[h->lw[i]];
        int live = !finished && !done[i];
        l->eig_done = done[i];
        l->eig_iters = iters[i];
        l->eig_val = val[i];
        l->eig_prev = prev[i];
        l->lz_m = 0;
        const double *v = NULL;
        int64_t nv = 0;
        if (live && o->eig == BP_EIG_LANCZOS) {
            l->lz_m = lz[i].m;
            v = lz[i].Q;
            nv = (int64_t)(lz[i].m + 1) * n;
        } else if (live) {
            v = pv[i];
            nv = n;
        }
        int64_t nb = 0;
        if (bp_ckpt_set(&l->alpha, &l->n_ab, lz[i].alpha, l->lz_m) ||
            bp_ckpt_set(&l->beta, &nb, lz[i].beta, l->lz_m) ||
            bp_ckpt_set(&l->v, &l->n_v, v, nv))
            return BP_ENOMEM;
    }
    return bp_ckpt_save(ck);
}

/* Restores the eigenvalue iterations; returns the iterations done. */
static int eigs_restore(bp_hessian *h, const bp_sens_opts *o, const bp_ckpt *ck,
                        lanczos *lz, double **pv, double *prev, char *done,
                        double *val, int *iters, int cap, int *it0)
{
    int st = ck_check_layers(h, ck);
    if (st)
        return st;
    *it0 = 0;
    for (int i = 0; i < h->nl; i++) {
        const bp_ckpt_layer *l = &ck->st.layers[i];
        const int64_t n = h->numel[h->lw[i]];
        if (l->eig_iters > cap || (l->eig_done != 0 && l->eig_done != 1))
            return ck_bad(ck, i, "the eigenvalue iterations");
        done[i] = (char)l->eig_done;
        iters[i] = l->eig_iters;
        val[i] = l->eig_val;
        prev[i] = l->eig_prev;
        *it0 = iters[i] > *it0 ? iters[i] : *it0;
        if (done[i])
            continue;
        if (o->eig == BP_EIG_LANCZOS) {
            lanczos *z = &lz[i];
            if (l->lz_m >= z->cap || l->lz_m != l->eig_iters ||
                l->n_v != (int64_t)(l->lz_m + 1) * n)
                return ck_bad(ck, i, "the Lanczos basis");
            z->m = l->lz_m;
            memcpy(z->alpha, l->alpha, (size_t)z->m * sizeof *z->alpha);
            memcpy(z->beta, l->beta, (size_t)z->m * sizeof *z->beta);
            memcpy(z->Q, l->v, (size_t)l->n_v * sizeof *z->Q);
            z->top = l->eig_val;
        } else {
            if (l->n_v != n)
                return ck_bad(ck, i, "the power iterate");
            memcpy(pv[i], l->v, (size_t)n * sizeof *pv[i]);
        }
    }
    h->products = ck->st.products;
    return BP_OK;
}

int bp_hessian_top_eigs(bp_hessian *h, const bp_sens_opts *o, double *val,
                        int *iters)
{
    const int nl = h->nl;
    int st = BP_OK;
    if ((st = bp_ad_set_threads(h->ad, o->threads)))
        return st;
    h->o = o;
    for (int i = 0; i < nl; i++) {
        val[i] = NAN;
        iters[i] = 0;
    }
    bp_ckpt *ck = o->ckpt;
    const uint32_t rs = ck ? ck->st.stage : 0;
    if (rs & BP_CKPT_EIGS) {
        if ((st = ck_check_layers(h, ck)))
            return st;
        for (int i = 0; i < nl; i++) {
            val[i] = ck->st.layers[i].eig_val;
            iters[i] = ck->st.layers[i].eig_iters;
        }
        h->products = ck->st.products;
        h->o = NULL;
        return BP_OK;
    }
    if (o->eig == BP_EIG_NONE)
        return BP_OK;
    const int cap = o->eig_max_iter > 0 ? o->eig_max_iter : 100;
    int it0 = 0;
    lanczos *lz = calloc((size_t)nl, sizeof *lz);
    double **pv = calloc((size_t)nl, sizeof *pv);   /* power: current v */
    double *prev = calloc((size_t)nl, sizeof *prev);
    char *done = calloc((size_t)nl, 1);
    int *lay = calloc((size_t)nl, sizeof *lay);
    dirn *d = calloc((size_t)nl, sizeof *d);
    if (!lz || !pv || !prev || !done || !lay || !d ||
        (st = dirs_alloc(d, nl, h->np))) {
        st = st ? st : BP_ENOMEM;
        goto out;
    }
    for (int i = 0; i < nl; i++) {
        bp_rng rng;
        const int64_t n = h->numel[h->lw[i]];
        if (o->eig == BP_EIG_LANCZOS) {
            bp_rng_seed(&rng, o->seed, stream_of(RS_LANCZOS, i));
            int c = cap < n ? cap : (int)n;
            if ((st = lz_init(&lz[i], n, c, &rng)))
                goto out;
        } else {
            bp_rng_seed(&rng, o->seed, stream_of(RS_POWER, i));
            pv[i] = malloc((size_t)n * sizeof *pv[i]);
            lz[i].w = calloc((size_t)n, sizeof *lz[i].w);
            if (!pv[i] || !lz[i].w) {
                st = BP_ENOMEM;
                goto out;
            }
            double s = 0;
            for (int64_t j = 0; j < n; j++) {
                pv[i][j] = bp_rng_normal(&rng);
                s += pv[i][j] * pv[i][j];
            }
            s = 1 / sqrt(s);
            for (int64_t j = 0; j < n; j++)
                pv[i][j] *= s;
            prev[i] = NAN;
        }
    }
    if ((rs & BP_CKPT_EIG) &&
        (st = eigs_restore(h, o, ck, lz, pv, prev, done, val, iters, cap, &it0)))
        goto out;
    for (int it = it0; it < cap; it++) {
        int k = 0;
        dirs_clear(d, nl, h->np);
        for (int i = 0; i < nl; i++) {
            if (done[i])
                continue;
            const int p = h->lw[i];
            const int64_t n = h->numel[p];
            memset(lz[i].w, 0, (size_t)n * sizeof *lz[i].w);
            d[k].v[p] = o->eig == BP_EIG_LANCZOS
                            ? lz[i].Q + (int64_t)lz[i].m * n : pv[i];
            d[k].hv[p] = lz[i].w;
            lay[k++] = i;
        }
        if (k == 0)
            break;
        for (int j0 = 0; j0 < k && st == BP_OK; j0 += SWEEP_MAX)
            st = sweep(h, k - j0 < SWEEP_MAX ? k - j0 : SWEEP_MAX, d + j0);
        if (st)
            goto out;
        for (int q = 0; q < k; q++) {
            const int i = lay[q];
            const int64_t n = h->numel[h->lw[i]];
            iters[i]++;
            if (o->eig == BP_EIG_LANCZOS) {
                if ((st = lz_step(&lz[i], o->eig_tol)))
                    goto out;
                val[i] = lz[i].top;
                done[i] = (char)lz[i].done;
                continue;
            }
            /* PyHessian's power iteration */
            double lam = dot(pv[i], lz[i].w, n);
            double nw = sqrt(dot(lz[i].w, lz[i].w, n));
            val[i] = lam;
            if (nw > 0)
                for (int64_t j = 0; j < n; j++)
                    pv[i][j] = lz[i].w[j] / nw;
            if (!isnan(prev[i]) &&
                fabs(lam - prev[i]) / (fabs(prev[i]) + 1e-6) < 1e-3)
                done[i] = 1;
            if (nw == 0)
                done[i] = 1;
            prev[i] = lam;
        }
        int remaining = 0;
        for (int i = 0; i < nl; i++)
            remaining += !done[i];
        progress(h, "top eigenvalues", nl - remaining, nl);
        if (!remaining)
            break;
        if ((st = eigs_save(h, o, 0, 0, lz, pv, prev, done, val, iters)))
            goto out;
    }
    st = eigs_save(h, o, 1, 1, lz, pv, prev, done, val, iters);
out:
    for (int i = 0; lz && i < nl; i++)
        lz_free(&lz[i]);
    for (int i = 0; pv && i < nl; i++)
        free(pv[i]);
    if (d)
        dirs_free(d, nl);
    free(d);
    free(lz);
    free(pv);
    free(prev);
    free(done);
    free(lay);
    h->o = NULL;
    return st;
}

/* ---- density --------------------------------------------------------------------------- */

void bp_density_free(bp_density **dp)
{
    if (!dp || !*dp)
        return;
    bp_density *d = *dp;
    free(d->grid);
    free(d->density);
    free(d->nodes);
    free(d->weights);
    free(d);
    *dp = NULL;
}

static int density_run(bp_hessian *h, const bp_sens_opts *o, int runs,
                       int steps, int n_grid, bp_density **out)
{
    int st = BP_OK;
    if ((st = bp_ad_set_threads(h->ad, o->threads)))
        return st;
    int64_t n = 0;
    for (int p = 0; p < h->np; p++)
        n += h->numel[p];
    if (runs < 1 || steps < 1 || n_grid < 2)
        return bp_fail(BP_EINVAL, "density: runs, steps and grid must be "
                       "positive");
    if (steps > n)
        steps = (int)n;
    h->o = o;
    bp_density *ds = calloc(1, sizeof *ds);
    dirn d[1];
    lanczos z = {0};
    double *ev = NULL, *zv = NULL;
    if (!ds || (st = dirs_alloc(d, 1, h->np))) {
        free(ds);
        return st ? st : BP_ENOMEM;
    }
    ds->runs = runs;
    ds->steps = steps;
    ds->n_grid = n_grid;
    ds->nodes = calloc((size_t)(runs * steps), sizeof *ds->nodes);
    ds->weights = calloc((size_t)(runs * steps), sizeof *ds->weights);
    ds->grid = calloc((size_t)n_grid, sizeof *ds->grid);
    ds->density = calloc((size_t)n_grid, sizeof *ds->density);
    ev = malloc((size_t)steps * sizeof *ev);
    zv = malloc((size_t)steps * (size_t)steps * sizeof *zv);
    if (!ds->nodes || !ds->weights || !ds->grid || !ds->density || !ev || !zv) {
        st = BP_ENOMEM;
        goto out;
    }
    for (int r = 0; r < runs && st == BP_OK; r++) {
        bp_rng rng;
        bp_rng_seed(&rng, o->seed, stream_of(RS_DENSITY, r));
        if ((st = lz_init(&z, n, steps, &rng)))
            break;
        while (!z.done && st == BP_OK) {
            int64_t off = 0;
            memset(z.w, 0, (size_t)n * sizeof *z.w);
            for (int p = 0; p < h->np; p++) {
                d[0].v[p] = z.Q + (int64_t)z.m * n + off;
                d[0].hv[p] = z.w + off;
                off += h->numel[p];
            }
            if ((st = sweep(h, 1, d)))
                break;
            /* no early stop: tol 0 runs the full `steps` (or to an
             * invariant subspace) */
            st = lz_step(&z, 0.0);
            progress(h, "density", (int64_t)r * steps + z.m,
                     (int64_t)runs * steps);
        }
        if (st == BP_OK && (st = tridiag_eig(z.alpha, z.beta, z.m, ev, zv)) ==
                               BP_OK)
            for (int k = 0; k < z.m; k++) {
                ds->nodes[r * steps + k] = ev[k];
                ds->weights[r * steps + k] = zv[(int64_t)k * z.m] *
                                             zv[(int64_t)k * z.m];
            }
        lz_free(&z);
        memset(&z, 0, sizeof z);
    }
    if (st)
        goto out;
    /* PyHessian's density_generate: grid over the mean extreme Ritz values
     * +- 0.01, Gaussian kernel of variance 1e-5 * max(1, range) */
    double lmax = 0, lmin = 0;
    for (int r = 0; r < runs; r++) {
        double mx = -INFINITY, mn = INFINITY;
        for (int k = 0; k < steps; k++) {
            double w = ds->weights[r * steps + k], x = ds->nodes[r * steps + k];
            if (w == 0 && x == 0)
                continue;
            mx = x > mx ? x : mx;
            mn = x < mn ? x : mn;
        }
        lmax += mx / runs;
        lmin += mn / runs;
    }
    lmax += 0.01;
    lmin -= 0.01;
    double var = 1e-5 * (lmax - lmin > 1 ? lmax - lmin : 1);
    double step = (lmax - lmin) / (n_grid - 1), total = 0;
    for (int j = 0; j < n_grid; j++) {
        double x = lmin + step * j, s = 0;
        ds->grid[j] = x;
        for (int q = 0; q < runs * steps; q++) {
            double dx = x - ds->nodes[q];
            s += ds->weights[q] * exp(-dx * dx / (2 * var)) /
                 sqrt(2 * M_PI * var);
        }
        ds->density[j] = s / runs;
        total += ds->density[j];
    }
    total *= step;
    for (int j = 0; j < n_grid && total > 0; j++)
        ds->density[j] /= total;
out:
    lz_free(&z);
    dirs_free(d, 1);
    free(ev);
    free(zv);
    h->o = NULL;
    if (st) {
        bp_density_free(&ds);
        return st;
    }
    *out = ds;
    return BP_OK;
}

int bp_density_save_csv(const bp_density *d, const char *path)
{
    bp_outfile *f = NULL;
    int st = bp_outfile_open(&f, path);
    if (st)
        return st;
    FILE *s = bp_outfile_stream(f);
    fprintf(s, "eigenvalue,density\n");
    for (int j = 0; j < d->n_grid; j++)
        fprintf(s, "%.17g,%.17g\n", d->grid[j], d->density[j]);
    return bp_outfile_commit(&f);
}

/* ---- the whole stage ----------------------------------------------------------------------- */

int bp_trace_method_parse(const char *s, bp_trace_method *m)
{
    static const bp_trace_method all[] = {
        BP_TRACE_AUTO, BP_TRACE_EXACT, BP_TRACE_HUTCHPP, BP_TRACE_HUTCHINSON,
        BP_TRACE_GN_HUTCHINSON};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, bp_trace_method_name(all[i]))) {
            *m = all[i];
            return BP_OK;
        }
    return bp_fail(BP_EINVAL, "--trace expects auto, exact, hutchpp, "
                   "hutchinson or gn-hutchinson, got '%s'", s);
}

const char *bp_trace_method_name(bp_trace_method m)
{
    switch (m) {
    case BP_TRACE_EXACT: return "exact";
    case BP_TRACE_HUTCHPP: return "hutchpp";
    case BP_TRACE_HUTCHINSON: return "hutchinson";
    case BP_TRACE_GN_HUTCHINSON: return "gn-hutchinson";
    default: return "auto";
    }
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* ||Q_b(W) - W||^2 of layer l at bits b, through src/quant.h. */
static int perturbation(const bp_graph *g, const bp_layer *l, int bits,
                        double *out)
{
    const bp_tensor *t = g->values[l->weight].data;
    int64_t outer, ch, inner;
    bp_layer_channel_view(g, l, &outer, &ch, &inner);
    if (t->dtype == BP_F32)
        return bp_quant_perturbation(out, t->data, outer, ch, inner, bits);
    float *w = malloc((size_t)(l->numel + 1) * sizeof *w);
    if (!w)
        return BP_ENOMEM;
    for (int64_t i = 0; i < l->numel; i++)
        w[i] = (float)bp_tensor_get(t, i);
    int st = bp_quant_perturbation(out, w, outer, ch, inner, bits);
    free(w);
    return st;
}

/* Shortest of %.15g, %.16g, %.17g that reads back as x. */
static const char *shortest(char *buf, size_t n, double x)
{
    for (int p = 15; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    return buf;
}

static int sensitivity_run(bp_sens **out, bp_graph *g, const bp_sens_data *d,
                           const bp_sens_opts *o)
{
    int st;
    for (int b = 0; b < o->n_bits; b++)
        if (o->bits[b] < 1 || o->bits[b] > BP_SENS_MAX_BITS)
            return bp_fail(BP_EINVAL, "bits %d outside 1..%d", o->bits[b],
                           BP_SENS_MAX_BITS);
    bp_hessian *h = NULL;
    bp_sens *s = NULL;
    bp_trace_est *est = NULL;
    double *eig = NULL, *inc = NULL;
    int *it = NULL;
    if ((st = bp_hessian_new(&h, g, d, o->batch)))
        return st;
    const int nl = h->nl;
    est = calloc((size_t)nl, sizeof *est);
    eig = calloc((size_t)nl, sizeof *eig);
    it = calloc((size_t)nl, sizeof *it);
    inc = calloc((size_t)nl * (size_t)o->n_bits + 1, sizeof *inc);
    if (!est || !eig || !it || !inc) {
        st = BP_ENOMEM;
        goto out;
    }
    bp_trace_scope scope;
    if ((st = bp_hessian_traces(h, o, est, &scope)) ||
        (st = bp_hessian_top_eigs(h, o, eig, it)) ||
        (o->loss_increase && (st = bp_hessian_loss_increase(h, o, inc))) ||
        (st = bp_sens_new(&s, nl)))
        goto out;
    s->samples = d->count;
    s->loss = h->loss;
    s->seed = o->seed;
    int sampled = 0, hit = 0;
    for (int i = 0; i < nl; i++) {
        const bp_layer *l = &h->layers[i];
        bp_sens_layer *sl = &s->layers[i];
        sl->name = xstrdup(l->name);
        sl->op = xstrdup(bp_op_name(l->op));
        sl->trace_method = xstrdup(bp_trace_method_name(est[i].method));
        if (!sl->name || !sl->op || !sl->trace_method) {
            st = BP_ENOMEM;
            goto out;
        }
        sl->numel = l->numel;
        sl->macs = l->macs;
        sl->trace = est[i].mean;
        sl->trace_stderr = est[i].stderr_;
        sl->trace_samples = est[i].samples;
        sl->top_eig = eig[i];
        sl->eig_iterations = it[i];
        if (est[i].method != BP_TRACE_EXACT) {
            sampled = 1;
            hit |= est[i].hit_max;
        }
        for (int b = 0; b < o->n_bits; b++) {
            int bits = o->bits[b];
            double pert;
            if ((st = perturbation(g, l, bits, &pert)))
                goto out;
            sl->has_bits[bits] = 1;
            sl->perturbation[bits] = pert;
            sl->omega[bits] = est[i].mean / (double)l->numel * pert;
            sl->loss_increase[bits] = inc[(int64_t)i * o->n_bits + b];
        }
        sl->has_loss_increase = o->loss_increase;
    }
    s->stop_reason = xstrdup(!sampled ? "exact" : hit ? "max-samples"
                                                      : "tolerance");
    /* the estimator settings, as a JSON object */
    char bits[128] = "", buf[1024], ftol[32], fetol[32];
    for (int b = 0; b < o->n_bits; b++) {
        size_t at = strlen(bits);
        snprintf(bits + at, sizeof bits - at, "%s%d", b ? "," : "", o->bits[b]);
    }
    snprintf(buf, sizeof buf,
             "{\"trace\":\"%s\",\"scope\":\"%s\",\"scope_used\":\"%s\","
             "\"tol\":%s,\"max_samples\":%lld,\"min_samples\":%lld,"
             "\"sketch\":%d,\"eig\":\"%s\",\"eig_tol\":%s,"
             "\"eig_max_iter\":%d,\"batch\":%lld,\"bits\":[%s],"
             "\"targets\":\"%s\",\"loss_increase\":%s,"
             "\"hessian_products\":%lld}",
             bp_trace_method_name(o->trace),
             o->scope == BP_SCOPE_BLOCK ? "block"
             : o->scope == BP_SCOPE_GLOBAL ? "global" : "auto",
             scope == BP_SCOPE_BLOCK ? "block"
             : scope == BP_SCOPE_GLOBAL ? "global" : "none",
             shortest(ftol, sizeof ftol, o->tol), (long long)o->max_samples,
             (long long)o->min_samples,
             o->sketch,
             o->eig == BP_EIG_LANCZOS ? "lanczos"
             : o->eig == BP_EIG_POWER ? "power" : "none",
             shortest(fetol, sizeof fetol, o->eig_tol), o->eig_max_iter,
             (long long)h->batch, bits,
             d->labels ? "labels" : "top-1",
             o->loss_increase ? "true" : "false", (long long)h->products);
    s->settings = xstrdup(buf);
    if (!s->stop_reason || !s->settings)
        st = BP_ENOMEM;
out:
    free(est);
    free(eig);
    free(it);
    free(inc);
    bp_hessian_free(&h);
    if (st) {
        bp_sens_free(&s);
        return st;
    }
    *out = s;
    return BP_OK;
}

/* BLAS on one thread for the whole stage, the workers (o->threads)
 * providing the parallelism: their products are summed in a fixed order,
 * whereas OpenBLAS's threaded dgemm ends on other last bits than its
 * single-threaded one for some shapes (the example MLP on 500 samples,
 * batches of 256 and 244), which made the file depend on the thread count
 * and the machine's core count. */
int bp_sensitivity(bp_sens **out, bp_graph *g, const bp_sens_data *d,
                   const bp_sens_opts *o)
{
    int blas = bp_get_threads();
    bp_set_threads(1);
    int st = sensitivity_run(out, g, d, o);
    bp_set_threads(blas);
    return st;
}

int bp_hessian_density(bp_hessian *h, const bp_sens_opts *o, int runs,
                       int steps, int n_grid, bp_density **out)
{
    int blas = bp_get_threads(); /* as bp_sensitivity */
    bp_set_threads(1);
    int st = density_run(h, o, runs, steps, n_grid, out);
    bp_set_threads(blas);
    return st;
}
