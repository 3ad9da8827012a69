/* autodiff.c - reverse mode, forward tangents and forward-over-reverse
 * Hessian-vector products over the graph IR (see autodiff.h).
 *
 * Three passes share one per-node dispatch:
 *  - the tangent pass (node_jvp) pushes a direction v forward: every live
 *    node's output tangent from its inputs' tangents;
 *  - the backward pass (node_vjp) pulls an adjoint back through every live
 *    node; it serves the gradient (seed: dL/dz), the per-class passes of the
 *    Gauss-Newton trace (seed: e_c - p, per-sample parameter norms), and the
 *    linear half of the R-pass (seed: R{dL/dz} = w (diag p - p p^T) dz);
 *  - the second-order half of the R-pass (node_vjp with second = 1): the
 *    VJPs differentiated w.r.t. their primal operands, evaluated at the
 *    primal adjoint and the tangents.  For a bilinear op this is the VJP
 *    with each operand replaced by its tangent; for f(x) elementwise it is
 *    g f''(x) dx; softmax and division have their own formulas.
 * R{dL/dtheta} = (linear half) + (second-order half) is exactly H v.
 *
 * A node is live when it reads a value that depends on a parameter and its
 * output reaches the logits; nothing else is ever differentiated. */
#include "autodiff.h"
#include "exec.h"
#include "grad_kernels.h"
#include "shape.h"
#include "status.h"

#include <cblas.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The state of one pass (a product, a Gauss-Newton class pass, the primal
 * backward): everything a pass writes.  Passes of different threads touch
 * nothing else, so directions and classes can run in parallel. */
typedef struct pass {
    double **tp;        /* (n_values) tangent of the current pass, or NULL */
    double **dst;       /* (n_values) adjoint of the current pass, or NULL */
    char *anz;          /* (n_values) dst holds something nonzero */
    char *mask, *need;  /* (n_values) scratch */
    double **tan;       /* (n_values) tangent buffers of live outputs */
    double **radj;      /* (n_values) R-adjoint / scratch adjoint buffers */
    double **colt;      /* (n_nodes) im2col of a conv's input tangent */
    char *colt_ok;      /* (n_nodes) colt holds the current product's */
    double *work;       /* (work_n) kernel workspace */
    /* Gauss-Newton pass */
    int gn;
    const double *wt;   /* (n) per-sample weights */
    const char *gn_want;
    double *gn_tr;
    double *wtbuf;      /* (max_batch) */
} pass;

struct bp_ad {
    void (*tick)(void *ctx, int64_t done, int64_t total);
    void *tick_ctx;
    bp_graph *g;
    bp_exec *ex;
    int64_t max_batch, n;
    double weight;
    int np;
    int *pv;            /* (np) value index of each parameter */
    int64_t *pnumel;    /* (np) */
    int *pidx;          /* (n_values) parameter index, or -1 */
    int logits;
    int64_t C;
    char *active;       /* (n_values) depends on a parameter */
    char *live;         /* (n_nodes) differentiated */
    char *pl, *gnok;    /* (np) */
    double **adj;       /* (n_values) primal adjoints, active computed values */
    char *mask;         /* (n_values) scratch of the serial helpers */
    char *dep;          /* (n_values) depends on the graph input */
    double *prob;       /* (max_batch, C) softmax of the logits */
    int64_t *target;    /* (max_batch) */
    double loss;
    int64_t correct;
    double **pgrad;     /* (np) gradient of the current batch */
    int64_t work_n;
    int64_t *cap;       /* (n_values) elements at max_batch */
    int64_t *colcap;    /* (n_nodes) column cache elements at max_batch */
    int nthreads;       /* passes in ps */
    pass *ps;
    /* Shared caches, filled when a batch is set (or, for gram, before a
     * Gauss-Newton trace) and only read by passes.  Per conv node: im2col
     * of the primal input (for convs whose weight is differentiated; NULL
     * over the memory budget) and per-sample Gram matrices of it (where
     * they make the Gauss-Newton norms cheaper); per max pool node: the
     * routes of the batch (see bp_g_maxpool_fwd). */
    double **colx;
    char *colx_ok;
    int64_t **route;
    char *route_ok;
    double **gram;
    char *gram_ok;
};

/* Elements (per kind) the column caches may take: past this, convs rebuild
 * their im2col matrices chunk by chunk. */
#define COL_BUDGET ((int64_t)1 << 25)

#define VAL(v) ((const double *)bp_exec_value(ad->ex, (v)))
/* the shared caches of node i when filled, else NULL (rebuild in work) */
#define CX(i) (ad->colx_ok[i] ? ad->colx[i] : NULL)
#define RT(i) (ad->route_ok[i] ? ad->route[i] : NULL)

static int64_t vnumel(const bp_value *v)
{
    int64_t n = 1;
    for (int d = 0; d < v->rank; d++)
        n *= v->dims[d];
    return n;
}

static void contig(int rank, const int64_t *dims, int64_t *str)
{
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        str[d] = s;
        s *= dims[d];
    }
}

static int node_fail(const bp_graph *g, const bp_node *n, int st,
                     const char *why)
{
    return bp_fail(st, "%s: node '%s' (%s): %s", g->path, n->name,
                   bp_op_name(n->op), why);
}

/* Inputs through which a derivative flows; the others (shapes, axes,
 * indices, Clip bounds, BatchNorm statistics) must not depend on a
 * parameter. */
static int diff_slot(const bp_node *n, int k)
{
    switch (n->op) {
    case BP_OP_CONV: case BP_OP_GEMM: case BP_OP_BATCHNORM:
        return k <= 2;
    case BP_OP_MATMUL: case BP_OP_ADD: case BP_OP_SUB: case BP_OP_MUL:
    case BP_OP_DIV:
        return k <= 1;
    case BP_OP_CONCAT:
        return 1;
    default:
        return k == 0;
    }
}

static int op_differentiable(bp_op op)
{
    switch (op) {
    case BP_OP_CONV: case BP_OP_GEMM: case BP_OP_MATMUL: case BP_OP_ADD:
    case BP_OP_SUB: case BP_OP_MUL: case BP_OP_DIV: case BP_OP_RELU:
    case BP_OP_LEAKYRELU: case BP_OP_CLIP: case BP_OP_SIGMOID: case BP_OP_TANH:
    case BP_OP_SOFTMAX: case BP_OP_MAXPOOL: case BP_OP_AVERAGEPOOL:
    case BP_OP_GLOBALAVERAGEPOOL: case BP_OP_REDUCEMEAN: case BP_OP_BATCHNORM:
    case BP_OP_FLATTEN: case BP_OP_RESHAPE: case BP_OP_SQUEEZE:
    case BP_OP_UNSQUEEZE: case BP_OP_TRANSPOSE: case BP_OP_CONCAT:
    case BP_OP_GATHER: case BP_OP_IDENTITY: case BP_OP_DROPOUT:
    case BP_OP_CAST: case BP_OP_SLICE:
        return 1;
    default:
        return 0;
    }
}

/* Ops whose VJP depends on a primal operand that may carry a tangent. */
static int op_second_order(bp_op op)
{
    switch (op) {
    case BP_OP_CONV: case BP_OP_GEMM: case BP_OP_MATMUL: case BP_OP_MUL:
    case BP_OP_DIV: case BP_OP_SIGMOID: case BP_OP_TANH: case BP_OP_SOFTMAX:
    case BP_OP_BATCHNORM:
        return 1;
    default:
        return 0;
    }
}

static int in_at(const bp_node *n, int k)
{
    return k < n->n_in ? n->in[k] : -1;
}

/* ---- matmul geometry: the executor's batching, as (oa, ob, oy) triples ---- */

typedef struct mm_plan {
    int64_t M, K, N, total;   /* per product: (M,K) @ (K,N); total products */
    int lead;
    int64_t ld[BP_MAX_RANK], as[BP_MAX_RANK], bs[BP_MAX_RANK];
} mm_plan;

static void mm_plan_of(const bp_graph *g, const bp_node *n, mm_plan *p)
{
    const bp_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
    const bp_value *y = &g->values[n->out[0]];
    int ar = a->rank, br = b->rank;
    p->K = a->dims[ar - 1];
    p->N = br == 1 ? 1 : b->dims[br - 1];
    if (br <= 2) {
        /* x (..., M, K) @ W (K, N): one product over all leading axes */
        p->M = ar == 1 ? 1 : vnumel(a) / (p->K ? p->K : 1);
        p->total = 1;
        p->lead = 0;
        return;
    }
    p->M = ar == 1 ? 1 : a->dims[ar - 2];
    int r = y->rank + (ar == 1) + (br == 1);
    p->lead = r - 2;
    int64_t sa = p->M * p->K, sb = p->K * p->N;
    p->total = 1;
    for (int d = p->lead - 1; d >= 0; d--) {
        int ia = d - (p->lead - (ar - 2)), ib = d - (p->lead - (br - 2));
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        p->ld[d] = da > db ? da : db;
        p->as[d] = da == 1 ? 0 : sa;
        p->bs[d] = db == 1 ? 0 : sb;
        sa *= da;
        sb *= db;
        p->total *= p->ld[d];
    }
}

/* Offsets of product t. */
static void mm_offsets(const mm_plan *p, int64_t t, int64_t *oa, int64_t *ob)
{
    *oa = *ob = 0;
    for (int d = p->lead - 1; d >= 0; d--) {
        int64_t i = t % p->ld[d];
        t /= p->ld[d];
        *oa += i * p->as[d];
        *ob += i * p->bs[d];
    }
}

static void dgemm(int ta, int tb, int64_t m, int64_t n, int64_t k,
                  double alpha, const double *a, int64_t lda, const double *b,
                  int64_t ldb, double *c, int64_t ldc)
{
    if (m == 0 || n == 0 || k == 0)
        return;
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha,
                a, (int)lda, b, (int)ldb, 1.0, c, (int)ldc);
}

/* ---- geometry helpers ------------------------------------------------------ */

/* Strides of the output of a mean over masked axes, read over the input's
 * dims: 0 on reduced axes. */
static void mean_strides(const bp_value *x, const int *mask, int64_t *ystr,
                         int64_t *count)
{
    int64_t s = 1;
    *count = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        if (mask[d]) {
            ystr[d] = 0;
            *count *= x->dims[d];
        } else {
            ystr[d] = s;
            s *= x->dims[d];
        }
    }
}

static int mean_mask(const bp_graph *g, const bp_node *n, int *mask)
{
    const bp_value *x = &g->values[n->in[0]];
    if (n->op == BP_OP_GLOBALAVERAGEPOOL) {
        for (int d = 0; d < x->rank; d++)
            mask[d] = d >= 2;
        return BP_OK;
    }
    return bp_reduce_axes(g, n, mask);
}

static void unary_params(const bp_graph *g, const bp_node *n, bp_unop *op,
                         double *p0, double *p1)
{
    *p0 = *p1 = 0;
    switch (n->op) {
    case BP_OP_RELU: *op = BP_UN_RELU; break;
    case BP_OP_LEAKYRELU:
        *op = BP_UN_LEAKYRELU;
        *p0 = bp_node_attr_float(n, "alpha", 0.01);
        break;
    case BP_OP_CLIP:
        *op = BP_UN_CLIP;
        bp_clip_bounds(g, n, p0, p1);
        break;
    case BP_OP_SIGMOID: *op = BP_UN_SIGMOID; break;
    case BP_OP_TANH: *op = BP_UN_TANH; break;
    default: *op = BP_UN_IDENTITY; break;
    }
}

/* Concat: (outer, inner) around the axis, and input k's offset on it. */
static void concat_geom(const bp_graph *g, const bp_node *n, int k,
                        int64_t *outer, int64_t *len, int64_t *inner,
                        int64_t *total, int64_t *at)
{
    const bp_value *y = &g->values[n->out[0]];
    int64_t a = bp_node_axis(g, n);
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < a; d++)
        *outer *= y->dims[d];
    for (int d = (int)a + 1; d < y->rank; d++)
        *inner *= y->dims[d];
    *total = y->dims[a];
    *at = 0;
    for (int j = 0; j < k; j++)
        *at += g->values[n->in[j]].dims[a];
    *len = g->values[n->in[k]].dims[a];
}

/* Gather: normalised constant indices into idx (caller frees). */
static int gather_geom(const bp_graph *g, const bp_node *n, int64_t **idx,
                       int64_t *nidx, int64_t *outer, int64_t *len,
                       int64_t *inner)
{
    const bp_value *x = &g->values[n->in[0]];
    const bp_tensor *ix = bp_value_const(g, n->in[1]);
    if (!ix)
        return node_fail(g, n, BP_EUNSUPPORTED, "indices must be constant");
    int64_t a = bp_node_axis(g, n);
    *len = x->dims[a];
    *nidx = bp_tensor_numel(ix);
    *outer = *inner = 1;
    for (int d = 0; d < a; d++)
        *outer *= x->dims[d];
    for (int d = (int)a + 1; d < x->rank; d++)
        *inner *= x->dims[d];
    *idx = malloc((size_t)(*nidx + 1) * sizeof **idx);
    if (!*idx)
        return BP_ENOMEM;
    for (int64_t k = 0; k < *nidx; k++) {
        int64_t i = (int64_t)bp_tensor_get(ix, k);
        if (i < 0)
            i += *len;
        if (i < 0 || i >= *len) {
            free(*idx);
            return node_fail(g, n, BP_EINVAL, "index out of range");
        }
        (*idx)[k] = i;
    }
    return BP_OK;
}

/* Slice as a strided view of x: strides and base offset over y's dims. */
static int slice_view(const bp_graph *g, const bp_node *n, int64_t *xs,
                      int64_t *base)
{
    const bp_value *x = &g->values[n->in[0]];
    int64_t start[BP_MAX_RANK], step[BP_MAX_RANK], len[BP_MAX_RANK];
    int64_t xstr[BP_MAX_RANK];
    int st = bp_slice_params(g, n, start, step, len);
    if (st)
        return st;
    contig(x->rank, x->dims, xstr);
    *base = 0;
    for (int d = 0; d < x->rank; d++) {
        xs[d] = xstr[d] * step[d];
        *base += start[d] * xstr[d];
    }
    return BP_OK;
}

/* ---- the tangent pass: dy of node i from its inputs' tangents -------------- */

static int node_jvp(bp_ad *ad, pass *P, int i)
{
    const bp_graph *g = ad->g;
    const bp_node *n = &g->nodes[i];
    const int yv = n->out[0];
    const bp_value *y = &g->values[yv];
    const bp_value *x = &g->values[n->in[0]];
    double *dy = P->tan[yv];
    const int64_t ny = vnumel(y);
    int64_t ystr[BP_MAX_RANK];
    int st;
#define T(k) (in_at(n, (k)) >= 0 ? P->tp[n->in[k]] : NULL)
    memset(dy, 0, (size_t)ny * sizeof *dy);
    contig(y->rank, y->dims, ystr);

    switch (n->op) {
    case BP_OP_CONV: {
        bp_conv_geom geo;
        if ((st = bp_conv_geom_of(g, n, &geo)))
            return st;
        if (T(0)) {
            bp_gconv_fwd(dy, T(0), VAL(n->in[1]), &geo, P->work, P->colt[i],
                         0);
            P->colt_ok[i] = 1;
        }
        if (T(1)) {
            bp_gconv_fwd(dy, VAL(n->in[0]), T(1), &geo, P->work, CX(i), 1);
        }
        if (T(2)) {
            const double *db = T(2);
            const int64_t npix = geo.oh * geo.ow;
            for (int64_t s = 0; s < geo.n; s++)
                for (int64_t m = 0; m < geo.m; m++) {
                    double *r = dy + (s * geo.m + m) * npix;
                    for (int64_t p = 0; p < npix; p++)
                        r[p] += db[m];
                }
        }
        return BP_OK;
    }
    case BP_OP_GEMM: {
        int ta = (int)bp_node_attr_int(n, "transA", 0);
        int tb = (int)bp_node_attr_int(n, "transB", 0);
        double alpha = bp_node_attr_float(n, "alpha", 1.0);
        double beta = bp_node_attr_float(n, "beta", 1.0);
        int64_t m = y->dims[0], nn = y->dims[1], k = x->dims[!ta];
        int64_t lda = ta ? m : k, ldb = tb ? k : nn;
        if (T(0))
            dgemm(ta, tb, m, nn, k, alpha, T(0), lda, VAL(n->in[1]), ldb, dy, nn);
        if (T(1))
            dgemm(ta, tb, m, nn, k, alpha, VAL(n->in[0]), lda, T(1), ldb, dy, nn);
        if (T(2) && beta != 0.0) {
            int64_t cs[BP_MAX_RANK];
            bp_broadcast_strides(&g->values[n->in[2]], 2, y->dims, cs);
            bp_g_axpy_strided(dy, ystr, T(2), cs, 2, y->dims, beta);
        }
        return BP_OK;
    }
    case BP_OP_MATMUL: {
        mm_plan p;
        mm_plan_of(g, n, &p);
        const double *A = VAL(n->in[0]), *B = VAL(n->in[1]);
        for (int64_t t = 0; t < p.total; t++) {
            int64_t oa, ob;
            mm_offsets(&p, t, &oa, &ob);
            double *yt = dy + t * p.M * p.N;
            if (T(0))
                dgemm(0, 0, p.M, p.N, p.K, 1.0, T(0) + oa, p.K, B + ob, p.N,
                      yt, p.N);
            if (T(1))
                dgemm(0, 0, p.M, p.N, p.K, 1.0, A + oa, p.K, T(1) + ob, p.N,
                      yt, p.N);
        }
        return BP_OK;
    }
    case BP_OP_ADD: case BP_OP_SUB: case BP_OP_MUL: case BP_OP_DIV: {
        int64_t as[BP_MAX_RANK], bs[BP_MAX_RANK];
        const bp_value *b = &g->values[n->in[1]];
        bp_broadcast_strides(x, y->rank, y->dims, as);
        bp_broadcast_strides(b, y->rank, y->dims, bs);
        if (n->op == BP_OP_DIV) {
            bp_g_div_tangent(dy, VAL(n->in[0]), as, VAL(n->in[1]), bs, T(0),
                             T(1), y->rank, y->dims);
            return BP_OK;
        }
        if (n->op == BP_OP_MUL) {
            if (T(0))
                bp_g_mul_strided(dy, ystr, T(0), as, VAL(n->in[1]), bs,
                                 y->rank, y->dims, 1.0);
            if (T(1))
                bp_g_mul_strided(dy, ystr, VAL(n->in[0]), as, T(1), bs,
                                 y->rank, y->dims, 1.0);
            return BP_OK;
        }
        if (T(0))
            bp_g_axpy_strided(dy, ystr, T(0), as, y->rank, y->dims, 1.0);
        if (T(1))
            bp_g_axpy_strided(dy, ystr, T(1), bs, y->rank, y->dims,
                              n->op == BP_OP_SUB ? -1.0 : 1.0);
        return BP_OK;
    }
    case BP_OP_RELU: case BP_OP_LEAKYRELU: case BP_OP_CLIP: case BP_OP_SIGMOID:
    case BP_OP_TANH: {
        bp_unop op;
        double p0, p1;
        unary_params(g, n, &op, &p0, &p1);
        bp_g_unary_d1(dy, T(0), VAL(n->in[0]), VAL(yv), ny, op, p0, p1);
        return BP_OK;
    }
    case BP_OP_SOFTMAX: {
        int64_t outer, len, inner;
        bp_softmax_split(g, n, &outer, &len, &inner);
        bp_g_softmax_jvp(dy, VAL(yv), T(0), outer, len, inner);
        return BP_OK;
    }
    case BP_OP_MAXPOOL: case BP_OP_AVERAGEPOOL: {
        bp_pool_geom geo;
        if ((st = bp_pool_geom_of(g, n, &geo)))
            return st;
        if (n->op == BP_OP_MAXPOOL) {
            bp_g_maxpool_fwd(dy, VAL(n->in[0]), T(0), &geo, RT(i), 1);
        } else
            bp_g_avgpool_fwd(dy, T(0), &geo);
        return BP_OK;
    }
    case BP_OP_GLOBALAVERAGEPOOL: case BP_OP_REDUCEMEAN: {
        int mask[BP_MAX_RANK];
        int64_t ms[BP_MAX_RANK], xs[BP_MAX_RANK], cnt;
        if ((st = mean_mask(g, n, mask)))
            return st;
        mean_strides(x, mask, ms, &cnt);
        contig(x->rank, x->dims, xs);
        bp_g_axpy_strided(dy, ms, T(0), xs, x->rank, x->dims,
                          1.0 / (double)(cnt ? cnt : 1));
        return BP_OK;
    }
    case BP_OP_BATCHNORM: {
        double eps = bp_node_attr_float(n, "epsilon", 1e-5);
        const int64_t c = x->dims[1], nb = x->dims[0];
        const int64_t inner = nb * c != 0 ? vnumel(x) / (nb * c) : 0;
        const double *scale = VAL(n->in[1]), *mean = VAL(n->in[3]);
        const double *var = VAL(n->in[4]), *X = VAL(n->in[0]);
        const double *dx = T(0), *ds = T(1), *dbias = T(2);
        for (int64_t s = 0; s < nb; s++)
            for (int64_t ch = 0; ch < c; ch++) {
                const double sd = sqrt(var[ch] + eps), k = scale[ch] / sd;
                const int64_t o = (s * c + ch) * inner;
                for (int64_t j = 0; j < inner; j++) {
                    double t = 0;
                    if (dx)
                        t += dx[o + j] * k;
                    if (ds)
                        t += ds[ch] * (X[o + j] - mean[ch]) / sd;
                    if (dbias)
                        t += dbias[ch];
                    dy[o + j] += t;
                }
            }
        return BP_OK;
    }
    case BP_OP_FLATTEN: case BP_OP_RESHAPE: case BP_OP_SQUEEZE:
    case BP_OP_UNSQUEEZE: case BP_OP_IDENTITY: case BP_OP_DROPOUT:
    case BP_OP_CAST:
        bp_g_axpy(dy, 1.0, T(0), ny);
        return BP_OK;
    case BP_OP_TRANSPOSE: {
        int64_t perm[BP_MAX_RANK], xs[BP_MAX_RANK], src[BP_MAX_RANK];
        bp_transpose_perm(g, n, perm);
        contig(x->rank, x->dims, xs);
        for (int d = 0; d < y->rank; d++)
            src[d] = xs[perm[d]];
        bp_g_axpy_strided(dy, ystr, T(0), src, y->rank, y->dims, 1.0);
        return BP_OK;
    }
    case BP_OP_CONCAT:
        for (int k = 0; k < n->n_in; k++) {
            if (!T(k))
                continue;
            int64_t outer, len, inner, total, at;
            concat_geom(g, n, k, &outer, &len, &inner, &total, &at);
            const int64_t dd[2] = {outer, len * inner};
            const int64_t ds[2] = {total * inner, 1}, ss[2] = {len * inner, 1};
            bp_g_axpy_strided(dy + at * inner, ds, T(k), ss, 2, dd, 1.0);
        }
        return BP_OK;
    case BP_OP_GATHER: {
        int64_t *idx, nidx, outer, len, inner;
        if ((st = gather_geom(g, n, &idx, &nidx, &outer, &len, &inner)))
            return st;
        const double *dx = T(0);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < nidx; j++)
                bp_g_axpy(dy + (o * nidx + j) * inner, 1.0,
                          dx + (o * len + idx[j]) * inner, inner);
        free(idx);
        return BP_OK;
    }
    case BP_OP_SLICE: {
        int64_t xs[BP_MAX_RANK], base;
        if ((st = slice_view(g, n, xs, &base)))
            return st;
        bp_g_axpy_strided(dy, ystr, T(0) + base, xs, y->rank, y->dims, 1.0);
        return BP_OK;
    }
    default:
        return node_fail(g, n, BP_EUNSUPPORTED, "cannot be differentiated");
    }
#undef T
}

/* ---- the backward pass ---------------------------------------------------------- */

/* Per-sample Gauss-Newton norm of a parameter operand: sum_n wt[n] ||G_n||^2
 * with G_n the parameter gradient of sample n alone. */

/* ||reduce of the sample-n slice of a broadcast product||^2 for binary ops:
 * tmp (param shape) = sum over y's sample slice of gy * other (Add/Sub:
 * other = NULL, sign folded in the square; Div: through bp_g_div_vjp). */
static double gn_binary(bp_ad *ad, pass *P, const bp_node *n, int k,
                        const double *gy)
{
    const bp_graph *g = ad->g;
    const bp_value *y = &g->values[n->out[0]];
    const bp_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
    const bp_value *pv = &g->values[n->in[k]];
    int64_t as[BP_MAX_RANK], bs[BP_MAX_RANK], ystr[BP_MAX_RANK], sd[BP_MAX_RANK];
    bp_broadcast_strides(a, y->rank, y->dims, as);
    bp_broadcast_strides(b, y->rank, y->dims, bs);
    contig(y->rank, y->dims, ystr);
    memcpy(sd, y->dims, sizeof sd);
    sd[0] = 1;
    const int64_t pn = vnumel(pv);
    double *tmp = P->work;
    const double *A = VAL(n->in[0]), *B = VAL(n->in[1]);
    double total = 0;
    for (int64_t s = 0; s < ad->n; s++) {
        if (P->wt[s] == 0)
            continue;
        memset(tmp, 0, (size_t)pn * sizeof *tmp);
        const double *gs = gy + s * ystr[0];
        const double *As = A + s * as[0], *Bs = B + s * bs[0];
        switch (n->op) {
        case BP_OP_ADD: case BP_OP_SUB:
            bp_g_axpy_strided(tmp, k ? bs : as, gs, ystr, y->rank, sd, 1.0);
            break;
        case BP_OP_MUL:
            bp_g_mul_strided(tmp, k ? bs : as, gs, ystr, k ? As : Bs,
                             k ? as : bs, y->rank, sd, 1.0);
            break;
        default: /* DIV */
            bp_g_div_vjp(k ? NULL : tmp, k ? tmp : NULL, gs, As, as, Bs, bs,
                         y->rank, sd);
            break;
        }
        total += P->wt[s] * bp_g_dot(tmp, tmp, pn);
    }
    return total;
}

static double gn_param(bp_ad *ad, pass *P, int i, int k, const double *gy)
{
    const bp_node *n = &ad->g->nodes[i];
    const bp_graph *g = ad->g;
    const bp_value *y = &g->values[n->out[0]];
    const bp_value *x = &g->values[n->in[0]];
    const int64_t nb = ad->n;
    double total = 0;
    switch (n->op) {
    case BP_OP_CONV: {
        bp_conv_geom geo;
        if (bp_conv_geom_of(g, n, &geo))
            return NAN;
        if (k == 1 && ad->gram_ok[i])
            return bp_gconv_sample_sqnorm_gram(P->wt, gy, ad->gram[i], &geo,
                                               P->work);
        if (k == 1)
            return bp_gconv_sample_sqnorm(P->wt, gy, VAL(n->in[0]), &geo,
                                          P->work, CX(i), 1);
        const int64_t npix = geo.oh * geo.ow;
        for (int64_t s = 0; s < nb; s++) {
            double q = 0;
            for (int64_t m = 0; m < geo.m; m++) {
                const double *r = gy + (s * geo.m + m) * npix;
                double b = 0;
                for (int64_t p = 0; p < npix; p++)
                    b += r[p];
                q += b * b;
            }
            total += P->wt[s] * q;
        }
        return total;
    }
    case BP_OP_GEMM: {
        double alpha = bp_node_attr_float(n, "alpha", 1.0);
        double beta = bp_node_attr_float(n, "beta", 1.0);
        const int64_t nn = y->dims[1], kk = x->dims[1];
        const double *A = VAL(n->in[0]);
        const int cvec = k == 2 && vnumel(&g->values[n->in[2]]) == nn && nn != 1;
        for (int64_t s = 0; s < nb; s++) {
            const double *gs = gy + s * nn;
            double q;
            if (k == 1) {
                q = alpha * alpha * bp_g_dot(gs, gs, nn) *
                    bp_g_dot(A + s * kk, A + s * kk, kk);
            } else if (cvec) {
                q = beta * beta * bp_g_dot(gs, gs, nn);
            } else {
                double t = 0;
                for (int64_t j = 0; j < nn; j++)
                    t += gs[j];
                q = beta * beta * t * t;
            }
            total += P->wt[s] * q;
        }
        return total;
    }
    case BP_OP_MATMUL: {
        mm_plan p;
        mm_plan_of(g, n, &p);
        const int64_t r = p.M / nb; /* rows per sample */
        const double *A = VAL(n->in[0]);
        for (int64_t s = 0; s < nb; s++) {
            if (P->wt[s] == 0)
                continue;
            const double *As = A + s * r * p.K, *Gs = gy + s * r * p.N;
            double q;
            if (r == 1) {
                q = bp_g_dot(As, As, p.K) * bp_g_dot(Gs, Gs, p.N);
            } else {
                memset(P->work, 0, (size_t)(p.K * p.N) * sizeof *P->work);
                dgemm(1, 0, p.K, p.N, r, 1.0, As, p.K, Gs, p.N, P->work, p.N);
                q = bp_g_dot(P->work, P->work, p.K * p.N);
            }
            total += P->wt[s] * q;
        }
        return total;
    }
    case BP_OP_ADD: case BP_OP_SUB: case BP_OP_MUL: case BP_OP_DIV:
        return gn_binary(ad, P, n, k, gy);
    case BP_OP_BATCHNORM: {
        double eps = bp_node_attr_float(n, "epsilon", 1e-5);
        const int64_t c = x->dims[1];
        const int64_t inner = nb * c != 0 ? vnumel(x) / (nb * c) : 0;
        const double *X = VAL(n->in[0]), *mean = VAL(n->in[3]);
        const double *var = VAL(n->in[4]);
        for (int64_t s = 0; s < nb; s++) {
            double q = 0;
            for (int64_t ch = 0; ch < c; ch++) {
                const double sd = sqrt(var[ch] + eps);
                const int64_t o = (s * c + ch) * inner;
                double t = 0;
                for (int64_t j = 0; j < inner; j++)
                    t += k == 1 ? gy[o + j] * (X[o + j] - mean[ch]) / sd
                                : gy[o + j];
                q += t * t;
            }
            total += P->wt[s] * q;
        }
        return total;
    }
    default:
        return NAN; /* excluded by gn_ok */
    }
}

/* Adds input k's contribution for node n: dst of in[k], or in a Gauss-Newton
 * pass the per-sample norm of a wanted parameter.  Returns the destination
 * to write, or NULL when input k takes nothing. */
static double *vjp_dst(bp_ad *ad, pass *P, int i, int k, const double *gy,
                       int second)
{
    const bp_node *n = &ad->g->nodes[i];
    int v = in_at(n, k);
    if (v < 0 || !diff_slot(n, k))
        return NULL;
    if (P->gn && ad->pidx[v] >= 0) {
        int p = ad->pidx[v];
        if (!second && P->gn_want[p])
            P->gn_tr[p] += gn_param(ad, P, i, k, gy);
        return NULL;
    }
    if (P->dst[v])
        P->anz[v] = 1;
    return P->dst[v];
}

/* node i's VJP with output adjoint gy into its inputs' adjoints; with second
 * set, the second-order half of the R-pass instead (gy is then the primal
 * adjoint and the operands are tangents, ad->tp). */
static int node_vjp(bp_ad *ad, pass *P, int i, const double *gy,
                    int second)
{
    const bp_graph *g = ad->g;
    const bp_node *n = &g->nodes[i];
    const int yv = n->out[0];
    const bp_value *y = &g->values[yv];
    const bp_value *x = &g->values[n->in[0]];
    const int64_t ny = vnumel(y);
    int64_t ystr[BP_MAX_RANK];
    int st;
    /* operand k as the VJP reads it: primal, or its tangent (NULL = zero) */
#define OP(k) (second ? (in_at(n, (k)) >= 0 ? P->tp[n->in[k]] : NULL) \
                      : VAL(n->in[k]))
#define D(k) vjp_dst(ad, P, i, (k), gy, second)
    contig(y->rank, y->dims, ystr);

    switch (n->op) {
    case BP_OP_CONV: {
        bp_conv_geom geo;
        if ((st = bp_conv_geom_of(g, n, &geo)))
            return st;
        /* the R-pass goes through conv_rpass; this is the linear VJP */
        double *d0 = D(0), *d1 = D(1), *d2 = D(2);
        if (d0)
            bp_gconv_bwd_data(d0, gy, VAL(n->in[1]), NULL, NULL, &geo,
                              P->work);
        if (d1) {
            bp_gconv_bwd_weight(d1, gy, VAL(n->in[0]), 1.0, &geo, P->work,
                                CX(i), 1);
        }
        if (d2)
            bp_gconv_bwd_bias(d2, gy, &geo);
        return BP_OK;
    }
    case BP_OP_GEMM: {
        int ta = (int)bp_node_attr_int(n, "transA", 0);
        int tb = (int)bp_node_attr_int(n, "transB", 0);
        double alpha = bp_node_attr_float(n, "alpha", 1.0);
        double beta = bp_node_attr_float(n, "beta", 1.0);
        int64_t m = y->dims[0], nn = y->dims[1], k = x->dims[!ta];
        int64_t lda = ta ? m : k, ldb = tb ? k : nn;
        double *d0 = D(0), *d1 = D(1);
        double *d2 = second || beta == 0.0 ? NULL : D(2);
        const double *A = OP(0), *B = OP(1);
        if (d0 && B) {
            if (!ta) /* gA (m,k) += alpha g (m,n) op(B)^T */
                dgemm(0, !tb, m, k, nn, alpha, gy, nn, B, ldb, d0, k);
            else /* gA (k,m) += alpha op(B) (k,n) g^T */
                dgemm(tb, 1, k, m, nn, alpha, B, ldb, gy, nn, d0, m);
        }
        if (d1 && A) {
            if (!tb) /* gB (k,n) += alpha op(A)^T (k,m) g */
                dgemm(!ta, 0, k, nn, m, alpha, A, lda, gy, nn, d1, nn);
            else /* gB (n,k) += alpha g^T (n,m) op(A) */
                dgemm(1, ta, nn, k, m, alpha, gy, nn, A, lda, d1, k);
        }
        if (d2) {
            int64_t cs[BP_MAX_RANK];
            bp_broadcast_strides(&g->values[n->in[2]], 2, y->dims, cs);
            bp_g_axpy_strided(d2, cs, gy, ystr, 2, y->dims, beta);
        }
        return BP_OK;
    }
    case BP_OP_MATMUL: {
        mm_plan p;
        mm_plan_of(g, n, &p);
        double *d0 = D(0), *d1 = D(1);
        const double *A = OP(0), *B = OP(1);
        for (int64_t t = 0; t < p.total; t++) {
            int64_t oa, ob;
            mm_offsets(&p, t, &oa, &ob);
            const double *gt = gy + t * p.M * p.N;
            if (d0 && B) /* gA (M,K) += g (M,N) B^T */
                dgemm(0, 1, p.M, p.K, p.N, 1.0, gt, p.N, B + ob, p.N,
                      d0 + oa, p.K);
            if (d1 && A) /* gB (K,N) += A^T g */
                dgemm(1, 0, p.K, p.N, p.M, 1.0, A + oa, p.K, gt, p.N,
                      d1 + ob, p.N);
        }
        return BP_OK;
    }
    case BP_OP_ADD: case BP_OP_SUB: case BP_OP_MUL: case BP_OP_DIV: {
        int64_t as[BP_MAX_RANK], bs[BP_MAX_RANK];
        bp_broadcast_strides(x, y->rank, y->dims, as);
        bp_broadcast_strides(&g->values[n->in[1]], y->rank, y->dims, bs);
        if (n->op == BP_OP_DIV) {
            double *d0 = D(0), *d1 = D(1);
            if (second)
                bp_g_div_second(d0, d1, gy, VAL(n->in[0]), as, VAL(n->in[1]),
                                bs, P->tp[n->in[0]], P->tp[n->in[1]],
                                y->rank, y->dims);
            else if (d0 || d1)
                bp_g_div_vjp(d0, d1, gy, VAL(n->in[0]), as, VAL(n->in[1]), bs,
                             y->rank, y->dims);
            return BP_OK;
        }
        if (n->op == BP_OP_MUL) {
            double *d0 = D(0), *d1 = D(1);
            const double *A = OP(0), *B = OP(1);
            if (d0 && B)
                bp_g_mul_strided(d0, as, gy, ystr, B, bs, y->rank, y->dims, 1.0);
            if (d1 && A)
                bp_g_mul_strided(d1, bs, gy, ystr, A, as, y->rank, y->dims, 1.0);
            return BP_OK;
        }
        if (second)
            return BP_OK;
        double *d0 = D(0), *d1 = D(1);
        if (d0)
            bp_g_axpy_strided(d0, as, gy, ystr, y->rank, y->dims, 1.0);
        if (d1)
            bp_g_axpy_strided(d1, bs, gy, ystr, y->rank, y->dims,
                              n->op == BP_OP_SUB ? -1.0 : 1.0);
        return BP_OK;
    }
    case BP_OP_RELU: case BP_OP_LEAKYRELU: case BP_OP_CLIP: case BP_OP_SIGMOID:
    case BP_OP_TANH: {
        bp_unop op;
        double p0, p1;
        unary_params(g, n, &op, &p0, &p1);
        if (second) {
            if (op != BP_UN_SIGMOID && op != BP_UN_TANH)
                return BP_OK;
            const double *t = P->tp[n->in[0]];
            double *d0 = t ? D(0) : NULL;
            if (d0)
                bp_g_unary_d2(d0, gy, t, VAL(n->in[0]), VAL(yv), ny, op);
            return BP_OK;
        }
        double *d0 = D(0);
        if (d0)
            bp_g_unary_d1(d0, gy, VAL(n->in[0]), VAL(yv), ny, op, p0, p1);
        return BP_OK;
    }
    case BP_OP_SOFTMAX: {
        int64_t outer, len, inner;
        bp_softmax_split(g, n, &outer, &len, &inner);
        if (second) {
            const double *t = P->tp[yv];
            double *d0 = t ? D(0) : NULL;
            if (d0)
                bp_g_softmax_second(d0, VAL(yv), t, gy, outer, len, inner);
            return BP_OK;
        }
        double *d0 = D(0);
        if (d0)
            bp_g_softmax_vjp(d0, VAL(yv), gy, outer, len, inner);
        return BP_OK;
    }
    case BP_OP_BATCHNORM: {
        double eps = bp_node_attr_float(n, "epsilon", 1e-5);
        const int64_t c = x->dims[1], nb = x->dims[0];
        const int64_t inner = nb * c != 0 ? vnumel(x) / (nb * c) : 0;
        const double *scale = VAL(n->in[1]), *mean = VAL(n->in[3]);
        const double *var = VAL(n->in[4]);
        double *d0 = D(0), *d1 = D(1), *d2 = second ? NULL : D(2);
        const double *X = OP(0), *S = OP(1);
        for (int64_t s = 0; s < nb; s++)
            for (int64_t ch = 0; ch < c; ch++) {
                const double sd = sqrt(var[ch] + eps);
                const double mu = second ? 0.0 : mean[ch];
                const int64_t o = (s * c + ch) * inner;
                const double *gr = gy + o;
                if (d0 && S) {
                    const double k = S[ch] / sd;
                    for (int64_t j = 0; j < inner; j++)
                        d0[o + j] += gr[j] * k;
                }
                if (d1 && X) {
                    double t = 0;
                    for (int64_t j = 0; j < inner; j++)
                        t += gr[j] * (X[o + j] - mu);
                    d1[ch] += t / sd;
                }
                if (d2) {
                    double t = 0;
                    for (int64_t j = 0; j < inner; j++)
                        t += gr[j];
                    d2[ch] += t;
                }
            }
        (void)scale;
        return BP_OK;
    }
    default:
        break;
    }
    /* the linear ops have no second-order half */
    if (second)
        return BP_OK;
    switch (n->op) {
    case BP_OP_MAXPOOL: case BP_OP_AVERAGEPOOL: {
        bp_pool_geom geo;
        if ((st = bp_pool_geom_of(g, n, &geo)))
            return st;
        double *d0 = D(0);
        if (d0 && n->op == BP_OP_MAXPOOL) {
            bp_g_maxpool_bwd(d0, VAL(n->in[0]), gy, &geo, RT(i), 1);
        } else if (d0)
            bp_g_avgpool_bwd(d0, gy, &geo);
        return BP_OK;
    }
    case BP_OP_GLOBALAVERAGEPOOL: case BP_OP_REDUCEMEAN: {
        int mask[BP_MAX_RANK];
        int64_t ms[BP_MAX_RANK], xs[BP_MAX_RANK], cnt;
        if ((st = mean_mask(g, n, mask)))
            return st;
        mean_strides(x, mask, ms, &cnt);
        contig(x->rank, x->dims, xs);
        double *d0 = D(0);
        if (d0)
            bp_g_axpy_strided(d0, xs, gy, ms, x->rank, x->dims,
                              1.0 / (double)(cnt ? cnt : 1));
        return BP_OK;
    }
    case BP_OP_FLATTEN: case BP_OP_RESHAPE: case BP_OP_SQUEEZE:
    case BP_OP_UNSQUEEZE: case BP_OP_IDENTITY: case BP_OP_DROPOUT:
    case BP_OP_CAST: {
        double *d0 = D(0);
        if (d0)
            bp_g_axpy(d0, 1.0, gy, ny);
        return BP_OK;
    }
    case BP_OP_TRANSPOSE: {
        int64_t perm[BP_MAX_RANK], xs[BP_MAX_RANK], dstr[BP_MAX_RANK];
        bp_transpose_perm(g, n, perm);
        contig(x->rank, x->dims, xs);
        for (int d = 0; d < y->rank; d++)
            dstr[d] = xs[perm[d]];
        double *d0 = D(0);
        if (d0)
            bp_g_axpy_strided(d0, dstr, gy, ystr, y->rank, y->dims, 1.0);
        return BP_OK;
    }
    case BP_OP_CONCAT:
        for (int k = 0; k < n->n_in; k++) {
            double *dk = D(k);
            if (!dk)
                continue;
            int64_t outer, len, inner, total, at;
            concat_geom(g, n, k, &outer, &len, &inner, &total, &at);
            const int64_t dd[2] = {outer, len * inner};
            const int64_t ds[2] = {len * inner, 1}, ss[2] = {total * inner, 1};
            bp_g_axpy_strided(dk, ds, gy + at * inner, ss, 2, dd, 1.0);
        }
        return BP_OK;
    case BP_OP_GATHER: {
        double *d0 = D(0);
        if (!d0)
            return BP_OK;
        int64_t *idx, nidx, outer, len, inner;
        if ((st = gather_geom(g, n, &idx, &nidx, &outer, &len, &inner)))
            return st;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < nidx; j++)
                bp_g_axpy(d0 + (o * len + idx[j]) * inner, 1.0,
                          gy + (o * nidx + j) * inner, inner);
        free(idx);
        return BP_OK;
    }
    case BP_OP_SLICE: {
        double *d0 = D(0);
        if (!d0)
            return BP_OK;
        int64_t xs[BP_MAX_RANK], base;
        if ((st = slice_view(g, n, xs, &base)))
            return st;
        bp_g_axpy_strided(d0 + base, xs, gy, ystr, y->rank, y->dims, 1.0);
        return BP_OK;
    }
    default:
        return node_fail(g, n, BP_EUNSUPPORTED, "cannot be differentiated");
    }
#undef OP
#undef D
}

/* Both halves of the R-pass of conv node i at once: rg the output's
 * R-adjoint (or NULL), g its primal adjoint (or NULL when no input carries a
 * tangent).  The two data terms share one col2im, and the weight terms
 * read the cached columns of x and dx. */
static int conv_rpass(bp_ad *ad, pass *P, int i, const double *rg,
                      const double *g)
{
    const bp_node *n = &ad->g->nodes[i];
    bp_conv_geom geo;
    int st;
    if ((st = bp_conv_geom_of(ad->g, n, &geo)))
        return st;
    const double *X = VAL(n->in[0]), *W = VAL(n->in[1]);
    const double *dX = P->tp[n->in[0]], *dW = P->tp[n->in[1]];
    double *d0 = vjp_dst(ad, P, i, 0, NULL, 0), *d1 = vjp_dst(ad, P, i, 1, NULL, 0);
    double *d2 = rg ? vjp_dst(ad, P, i, 2, NULL, 0) : NULL;
    const double *g2 = g && dW ? g : NULL;
    if (d0 && (rg || g2)) {
        if (rg)
            bp_gconv_bwd_data(d0, rg, W, g2, dW, &geo, P->work);
        else
            bp_gconv_bwd_data(d0, g2, dW, NULL, NULL, &geo, P->work);
    }
    if (d1 && rg) {
        bp_gconv_bwd_weight(d1, rg, X, 1.0, &geo, P->work, CX(i), 1);
    }
    if (d1 && g && dX)
        bp_gconv_bwd_weight(d1, g, dX, 1.0, &geo, P->work, P->colt[i],
                            P->colt_ok[i]);
    if (d2)
        bp_gconv_bwd_bias(d2, rg, &geo);
    return BP_OK;
}

/* ---- pass drivers ------------------------------------------------------------ */

/* mask[v] = v is forward-reachable (through live nodes) from a parameter p
 * with sel[p] (sel == NULL: all parameters). */
static void closure(bp_ad *ad, const char *sel, char *mask)
{
    const bp_graph *g = ad->g;
    memset(mask, 0, (size_t)g->n_values);
    for (int p = 0; p < ad->np; p++)
        if (!sel || sel[p])
            mask[ad->pv[p]] = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        if (!ad->live[i])
            continue;
        const bp_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && diff_slot(n, k) && mask[n->in[k]]) {
                mask[n->out[0]] = 1;
                break;
            }
    }
}

/* Zeroes the buffers of the pass's computed adjoints: dst[v] = buf[v] for
 * computed values with need[v], params get pdst[p] (NULL: not wanted). */
static void setup_dst(bp_ad *ad, pass *P, double **buf, const char *need,
                      double *const *pdst)
{
    const bp_graph *g = ad->g;
    for (int v = 0; v < g->n_values; v++) {
        P->dst[v] = NULL;
        P->anz[v] = 0;
        if (ad->pidx[v] >= 0) {
            P->dst[v] = pdst ? pdst[ad->pidx[v]] : NULL;
            continue;
        }
        if (need[v] && buf[v]) {
            P->dst[v] = buf[v];
            memset(buf[v], 0, (size_t)vnumel(&g->values[v]) * sizeof *buf[v]);
        }
    }
}

/* Reverse sweep over the live nodes that can reach a wanted input.  With
 * second set (the R-pass), adds each node's second-order half wherever one
 * of its inputs carries a tangent. */
static int backward(bp_ad *ad, pass *P, int second)
{
    const bp_graph *g = ad->g;
    int st;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        if (!ad->live[i])
            continue;
        const bp_node *n = &g->nodes[i];
        int want = 0, tnz = 0;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0 || !diff_slot(n, k))
                continue;
            if (P->dst[v] || (P->gn && ad->pidx[v] >= 0 &&
                               P->gn_want[ad->pidx[v]]))
                want = 1;
            if (P->tp[v])
                tnz = 1;
        }
        if (!want)
            continue;
        const int yv = n->out[0];
        if (second && tnz && n->op == BP_OP_CONV) {
            if ((st = conv_rpass(ad, P, i, P->anz[yv] ? P->dst[yv] : NULL,
                                 ad->adj[yv])))
                return st;
            continue;
        }
        if (P->anz[yv] && (st = node_vjp(ad, P, i, P->dst[yv], 0)))
            return st;
        if (second && tnz && op_second_order(n->op) &&
            (st = node_vjp(ad, P, i, ad->adj[yv], 1)))
            return st;
    }
    return BP_OK;
}

/* ---- construction -------------------------------------------------------------- */

/* Whether the graph keeps samples apart along axis 0, so that per-sample
 * gradients exist: every data-dependent value has the batch on axis 0 and no
 * op mixes along it. */
static int separable(bp_ad *ad)
{
    bp_graph *g = ad->g;
    char *dep = ad->dep;
    memset(dep, 0, (size_t)g->n_values);
    for (int k = 0; k < g->n_inputs; k++)
        dep[g->inputs[k]] = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        const bp_node *n = &g->nodes[i];
        int d = 0;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && dep[n->in[k]])
                d = 1;
        const bp_value *y0 = &g->values[n->out[0]];
        /* shape arithmetic (Shape -> Gather -> Concat) depends only on
         * shapes: it cannot mix samples */
        if (!d || (y0->dtype != BP_F32 && y0->dtype != BP_F64))
            continue;
        const bp_value *x = &g->values[n->in[0]];
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0)
                dep[n->out[k]] = 1;
        switch (n->op) {
        case BP_OP_SOFTMAX: {
            int64_t a = bp_node_attr_int(n, "axis", g->opset >= 13 ? -1 : 1);
            if (a < 0)
                a += x->rank;
            if (a == 0)
                return 0;
            break;
        }
        case BP_OP_CONCAT: case BP_OP_GATHER: case BP_OP_FLATTEN:
            if (bp_node_axis(g, n) == 0)
                return 0;
            break;
        case BP_OP_TRANSPOSE: {
            int64_t perm[BP_MAX_RANK];
            bp_transpose_perm(g, n, perm);
            if (perm[0] != 0)
                return 0;
            break;
        }
        case BP_OP_REDUCEMEAN: {
            int mask[BP_MAX_RANK];
            if (bp_reduce_axes(g, n, mask) || mask[0])
                return 0;
            break;
        }
        case BP_OP_SLICE: {
            int64_t start[BP_MAX_RANK], step[BP_MAX_RANK], len[BP_MAX_RANK];
            if (bp_slice_params(g, n, start, step, len) || start[0] != 0 ||
                step[0] != 1 || len[0] != x->dims[0])
                return 0;
            break;
        }
        case BP_OP_GEMM:
            if (bp_node_attr_int(n, "transA", 0) || !dep[n->in[0]])
                return 0;
            break;
        case BP_OP_MATMUL:
            if (!dep[n->in[0]] || x->rank < 2)
                return 0;
            break;
        default:
            break;
        }
    }
    for (int v = 0; v < g->n_values; v++)
        if (dep[v] && (g->values[v].dtype == BP_F32 ||
                       g->values[v].dtype == BP_F64) &&
            (g->values[v].rank < 1 || g->values[v].dims[0] != g->batch))
            return 0;
    return 1;
}

/* gn_ok for parameter p: one consumer, of a kind gn_param handles, with the
 * parameter broadcast over the batch. */
static int gn_supported(bp_ad *ad, int p)
{
    const bp_graph *g = ad->g;
    int uses = 0, ok = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const bp_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] != ad->pv[p])
                continue;
            uses++;
            if (!ad->live[i])
                continue;
            const bp_value *pv = &g->values[n->in[k]];
            const bp_value *y = &g->values[n->out[0]];
            if (!ad->dep[n->out[0]])
                continue; /* per-sample slices need a batch-major output */
            switch (n->op) {
            case BP_OP_CONV:
                ok = k == 1 || k == 2;
                break;
            case BP_OP_GEMM:
                ok = k == 1 || (k == 2 && (pv->rank < 2 || pv->dims[0] == 1));
                break;
            case BP_OP_MATMUL:
                ok = k == 1 && pv->rank <= 2;
                break;
            case BP_OP_ADD: case BP_OP_SUB: case BP_OP_MUL: case BP_OP_DIV:
                ok = pv->rank < y->rank || pv->dims[0] == 1;
                break;
            case BP_OP_BATCHNORM:
                ok = k == 1 || k == 2;
                break;
            default:
                ok = 0;
            }
        }
    }
    return uses == 1 && ok;
}

/* The logits are piecewise linear in p: along every live path from p, ops
 * are linear or piecewise linear in the reachable operand, and no bilinear
 * op sees p on both operands. */
static int piecewise_linear(bp_ad *ad, int p)
{
    const bp_graph *g = ad->g;
    char *m = ad->mask;
    memset(m, 0, (size_t)g->n_values);
    m[ad->pv[p]] = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        if (!ad->live[i])
            continue;
        const bp_node *n = &g->nodes[i];
        int any = 0;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && diff_slot(n, k) && m[n->in[k]])
                any = 1;
        if (!any)
            continue;
        m[n->out[0]] = 1;
        /* whether operand 0 / 1 (the bilinear pair, or Div's numerator and
         * denominator) depends on p */
        const int r0 = m[n->in[0]];
        const int r1 = n->n_in > 1 && n->in[1] >= 0 && m[n->in[1]];
        switch (n->op) {
        case BP_OP_CONV: case BP_OP_GEMM: case BP_OP_MATMUL: case BP_OP_MUL:
        case BP_OP_BATCHNORM:
            if (r0 && r1)
                return 0;
            break;
        case BP_OP_DIV:
            if (r1)
                return 0;
            break;
        case BP_OP_SIGMOID: case BP_OP_TANH: case BP_OP_SOFTMAX:
            return 0;
        default:
            break;
        }
    }
    return 1;
}

static int64_t node_work(const bp_graph *g, const bp_node *n)
{
    int64_t w = 1;
    if (n->op == BP_OP_CONV) {
        bp_conv_geom geo;
        if (bp_conv_geom_of(g, n, &geo) == BP_OK)
            w = bp_gconv_work(&geo);
    }
    if (n->op == BP_OP_MATMUL) {
        const bp_value *b = &g->values[n->in[1]];
        w = vnumel(b) + 1;
    }
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && g->values[n->in[k]].data &&
            vnumel(&g->values[n->in[k]]) + 1 > w)
            w = vnumel(&g->values[n->in[k]]) + 1;
    return w;
}

/* Allocates pass P: tables, the tangent and R-adjoint buffers of every
 * live output, the tangent column caches of convs with an active input. */
static int pass_init(bp_ad *ad, pass *P)
{
    const bp_graph *g = ad->g;
    const int nv = g->n_values, nn = g->n_nodes;
    memset(P, 0, sizeof *P);
    P->tp = calloc((size_t)nv + 1, sizeof *P->tp);
    P->dst = calloc((size_t)nv + 1, sizeof *P->dst);
    P->anz = calloc((size_t)nv + 1, 1);
    P->mask = calloc((size_t)nv + 1, 1);
    P->need = calloc((size_t)nv + 1, 1);
    P->tan = calloc((size_t)nv + 1, sizeof *P->tan);
    P->radj = calloc((size_t)nv + 1, sizeof *P->radj);
    P->colt = calloc((size_t)nn + 1, sizeof *P->colt);
    P->colt_ok = calloc((size_t)nn + 1, 1);
    P->work = malloc((size_t)ad->work_n * sizeof *P->work);
    P->wtbuf = calloc((size_t)ad->max_batch, sizeof *P->wtbuf);
    if (!P->tp || !P->dst || !P->anz || !P->mask || !P->need || !P->tan ||
        !P->radj || !P->colt || !P->colt_ok || !P->work || !P->wtbuf)
        return BP_ENOMEM;
    int64_t used = 0;
    for (int i = 0; i < nn; i++) {
        if (!ad->live[i])
            continue;
        /* sizes at max_batch: the graph's shapes are those of the last
         * batch */
        const bp_node *n = &g->nodes[i];
        const int v = n->out[0];
        const int64_t cnt = ad->cap[v];
        P->tan[v] = malloc((size_t)cnt * sizeof(double));
        P->radj[v] = malloc((size_t)cnt * sizeof(double));
        if (!P->tan[v] || !P->radj[v])
            return BP_ENOMEM;
        if (n->op != BP_OP_CONV || !ad->active[n->in[0]])
            continue;
        const int64_t sz = ad->colcap[i];
        if (used + sz > COL_BUDGET)
            continue;
        used += sz;
        if (!(P->colt[i] = malloc((size_t)sz * sizeof(double))))
            return BP_ENOMEM;
    }
    return BP_OK;
}

static void pass_free(const bp_ad *ad, pass *P)
{
    for (int v = 0; v < ad->g->n_values; v++) {
        if (P->tan)
            free(P->tan[v]);
        if (P->radj)
            free(P->radj[v]);
    }
    for (int i = 0; P->colt && i < ad->g->n_nodes; i++)
        free(P->colt[i]);
    free(P->tp);
    free(P->dst);
    free(P->anz);
    free(P->mask);
    free(P->need);
    free(P->tan);
    free(P->radj);
    free(P->colt);
    free(P->colt_ok);
    free(P->work);
    free(P->wtbuf);
    memset(P, 0, sizeof *P);
}

int bp_ad_new(bp_ad **out, bp_graph *g, const int *params, int n_params,
              int64_t max_batch)
{
    int st;
    if (n_params < 1)
        return bp_fail(BP_EINVAL, "%s: nothing to differentiate (no "
                       "parameters)", g->path);
    if (g->n_outputs < 1)
        return bp_fail(BP_EINVAL, "%s: the model has no output", g->path);
    bp_ad *ad = calloc(1, sizeof *ad);
    if (!ad)
        return BP_ENOMEM;
    ad->g = g;
    ad->max_batch = max_batch;
    ad->np = n_params;
    if ((st = bp_exec_new(&ad->ex, g, BP_F64, max_batch)))
        goto fail;
    const int nv = g->n_values, nn = g->n_nodes;
    ad->pv = malloc((size_t)n_params * sizeof *ad->pv);
    ad->pnumel = malloc((size_t)n_params * sizeof *ad->pnumel);
    ad->pidx = malloc((size_t)nv * sizeof *ad->pidx);
    ad->active = calloc((size_t)nv + 1, 1);
    ad->live = calloc((size_t)nn + 1, 1);
    ad->pl = calloc((size_t)n_params, 1);
    ad->gnok = calloc((size_t)n_params, 1);
    ad->adj = calloc((size_t)nv + 1, sizeof *ad->adj);
    ad->mask = calloc((size_t)nv + 1, 1);
    ad->dep = calloc((size_t)nv + 1, 1);
    ad->pgrad = calloc((size_t)n_params, sizeof *ad->pgrad);
    ad->target = calloc((size_t)max_batch, sizeof *ad->target);
    ad->colx = calloc((size_t)nn + 1, sizeof *ad->colx);
    ad->colx_ok = calloc((size_t)nn + 1, 1);
    ad->route = calloc((size_t)nn + 1, sizeof *ad->route);
    ad->route_ok = calloc((size_t)nn + 1, 1);
    ad->gram = calloc((size_t)nn + 1, sizeof *ad->gram);
    ad->gram_ok = calloc((size_t)nn + 1, 1);
    ad->cap = calloc((size_t)nv + 1, sizeof *ad->cap);
    ad->colcap = calloc((size_t)nn + 1, sizeof *ad->colcap);
    if (!ad->cap || !ad->colcap || !ad->pv || !ad->pnumel || !ad->pidx || !ad->active || !ad->live ||
        !ad->pl || !ad->gnok || !ad->adj || !ad->mask || !ad->dep ||
        !ad->pgrad || !ad->target || !ad->colx || !ad->colx_ok ||
        !ad->route || !ad->route_ok || !ad->gram || !ad->gram_ok) {
        st = BP_ENOMEM;
        goto fail;
    }
    for (int v = 0; v < nv; v++)
        ad->pidx[v] = -1;
    for (int p = 0; p < n_params; p++) {
        int v = params[p];
        if (v < 0 || v >= nv || !g->values[v].data ||
            (g->values[v].data->dtype != BP_F32 &&
             g->values[v].data->dtype != BP_F64)) {
            st = bp_fail(BP_EINVAL, "%s: parameter %d is not a float "
                         "initializer", g->path, p);
            goto fail;
        }
        if (ad->pidx[v] >= 0) {
            st = bp_fail(BP_EINVAL, "%s: parameter '%s' listed twice",
                         g->path, g->values[v].name);
            goto fail;
        }
        ad->pidx[v] = p;
        ad->pv[p] = v;
        ad->pnumel[p] = bp_tensor_numel(g->values[v].data);
        ad->active[v] = 1;
        ad->pgrad[p] = calloc((size_t)ad->pnumel[p] + 1, sizeof *ad->pgrad[p]);
        if (!ad->pgrad[p]) {
            st = BP_ENOMEM;
            goto fail;
        }
    }
    /* logits: output 0, or the input of a final Softmax over the classes */
    ad->logits = g->outputs[0];
    {
        int pr = g->values[ad->logits].producer;
        if (pr >= 0 && g->nodes[pr].op == BP_OP_SOFTMAX) {
            int64_t outer, len, inner;
            bp_softmax_split(g, &g->nodes[pr], &outer, &len, &inner);
            if (inner == 1 && g->values[ad->logits].rank == 2)
                ad->logits = g->nodes[pr].in[0];
        }
    }
    const bp_value *zv = &g->values[ad->logits];
    if (zv->rank != 2 || zv->dims[0] != max_batch) {
        st = bp_fail(BP_EINVAL, "%s: output '%s' must be logits of shape "
                     "(N, classes) for the cross-entropy loss", g->path,
                     g->values[g->outputs[0]].name);
        goto fail;
    }
    ad->C = zv->dims[1];
    /* active values, in topological order */
    for (int i = 0; i < nn; i++) {
        const bp_node *n = &g->nodes[i];
        const bp_value *y = &g->values[n->out[0]];
        int act = 0;
        /* an integer output (Shape) carries no derivative */
        if (y->dtype != BP_F32 && y->dtype != BP_F64)
            continue;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0 || !ad->active[v])
                continue;
            if (!diff_slot(n, k) || !op_differentiable(n->op)) {
                st = node_fail(g, n, BP_EUNSUPPORTED,
                               op_differentiable(n->op)
                                   ? "a parameter reaches an input that "
                                     "cannot be differentiated"
                                   : "a parameter reaches an op that cannot "
                                     "be differentiated");
                goto fail;
            }
            act = 1;
        }
        if (act)
            ad->active[n->out[0]] = 1;
    }
    /* live: active output that reaches the logits */
    {
        char *reach = ad->mask;
        memset(reach, 0, (size_t)nv);
        reach[ad->logits] = 1;
        for (int i = nn - 1; i >= 0; i--) {
            const bp_node *n = &g->nodes[i];
            if (!ad->active[n->out[0]] || !reach[n->out[0]])
                continue;
            ad->live[i] = 1;
            for (int k = 0; k < n->n_in; k++)
                if (n->in[k] >= 0 && diff_slot(n, k))
                    reach[n->in[k]] = 1;
        }
    }
    /* shared buffers: primal adjoints, caches; then the first pass */
    int64_t work = 1, used = 0;
    for (int i = 0; i < nn; i++) {
        if (!ad->live[i])
            continue;
        const bp_node *n = &g->nodes[i];
        int v = n->out[0];
        int64_t cnt = vnumel(&g->values[v]) + 1;
        ad->cap[v] = cnt;
        if (!(ad->adj[v] = malloc((size_t)cnt * sizeof(double)))) {
            st = BP_ENOMEM;
            goto fail;
        }
        int64_t w = node_work(g, n);
        work = w > work ? w : work;
        if (n->op == BP_OP_MAXPOOL &&
            !(ad->route[i] = malloc((size_t)cnt * sizeof **ad->route))) {
            st = BP_ENOMEM;
            goto fail;
        }
        bp_conv_geom geo;
        if (n->op != BP_OP_CONV || bp_conv_geom_of(g, n, &geo))
            continue;
        ad->colcap[i] = bp_gconv_col_size(&geo);
        if (!ad->active[n->in[1]])
            continue;
        if (bp_gconv_gram_pays(&geo) &&
            bp_gconv_gram_size(&geo) <= COL_BUDGET / 4 &&
            !(ad->gram[i] = malloc((size_t)bp_gconv_gram_size(&geo) *
                                   sizeof(double)))) {
            st = BP_ENOMEM;
            goto fail;
        }
        const int64_t sz = bp_gconv_col_size(&geo);
        if (used + sz > COL_BUDGET)
            continue;
        used += sz;
        if (!(ad->colx[i] = malloc((size_t)sz * sizeof(double)))) {
            st = BP_ENOMEM;
            goto fail;
        }
    }
    ad->work_n = work;
    ad->prob = malloc((size_t)(max_batch * ad->C + 1) * sizeof *ad->prob);
    ad->ps = calloc(1, sizeof *ad->ps);
    if (!ad->prob || !ad->ps) {
        st = BP_ENOMEM;
        goto fail;
    }
    ad->nthreads = 1;
    if ((st = pass_init(ad, &ad->ps[0])))
        goto fail;
    int sep = separable(ad);
    for (int p = 0; p < n_params; p++) {
        ad->pl[p] = (char)piecewise_linear(ad, p);
        ad->gnok[p] = (char)(sep && gn_supported(ad, p));
    }
    *out = ad;
    return BP_OK;
fail:
    bp_ad_free(&ad);
    return st;
}

int bp_ad_set_threads(bp_ad *ad, int n)
{
    if (n < 1)
        n = 1;
    if (n <= ad->nthreads)
        return BP_OK;
    pass *ps = realloc(ad->ps, (size_t)n * sizeof *ps);
    if (!ps)
        return BP_ENOMEM;
    ad->ps = ps;
    for (int t = ad->nthreads; t < n; t++) {
        int st = pass_init(ad, &ps[t]);
        if (st) {
            pass_free(ad, &ps[t]);
            return st;
        }
        ad->nthreads = t + 1;
    }
    return BP_OK;
}

void bp_ad_free(bp_ad **adp)
{
    if (!adp || !*adp)
        return;
    bp_ad *ad = *adp;
    const int nv = ad->g->n_values, nn = ad->g->n_nodes;
    for (int v = 0; ad->adj && v < nv; v++)
        free(ad->adj[v]);
    for (int p = 0; ad->pgrad && p < ad->np; p++)
        free(ad->pgrad[p]);
    for (int i = 0; i < nn; i++) {
        if (ad->colx)
            free(ad->colx[i]);
        if (ad->route)
            free(ad->route[i]);
        if (ad->gram)
            free(ad->gram[i]);
    }
    for (int t = 0; ad->ps && t < ad->nthreads; t++)
        pass_free(ad, &ad->ps[t]);
    free(ad->ps);
    free(ad->pv);
    free(ad->pnumel);
    free(ad->pidx);
    free(ad->active);
    free(ad->live);
    free(ad->pl);
    free(ad->gnok);
    free(ad->adj);
    free(ad->mask);
    free(ad->dep);
    free(ad->prob);
    free(ad->target);
    free(ad->pgrad);
    free(ad->colx);
    free(ad->colx_ok);
    free(ad->route);
    free(ad->route_ok);
    free(ad->gram);
    free(ad->gram_ok);
    free(ad->cap);
    free(ad->colcap);
    bp_exec_free(&ad->ex);
    free(ad);
    *adp = NULL;
}

int bp_ad_n_params(const bp_ad *ad) { return ad->np; }
int bp_ad_param_value(const bp_ad *ad, int p) { return ad->pv[p]; }
void bp_ad_param_changed(bp_ad *ad, int p)
{
    bp_exec_const_changed(ad->ex, ad->pv[p]);
}
int64_t bp_ad_param_numel(const bp_ad *ad, int p) { return ad->pnumel[p]; }
int64_t bp_ad_classes(const bp_ad *ad) { return ad->C; }
int bp_ad_logits(const bp_ad *ad) { return ad->logits; }
int bp_ad_piecewise_linear(const bp_ad *ad, int p) { return ad->pl[p]; }
int bp_ad_gn_ok(const bp_ad *ad, int p) { return ad->gnok[p]; }
double bp_ad_batch_loss(const bp_ad *ad) { return ad->loss; }
int64_t bp_ad_batch_correct(const bp_ad *ad) { return ad->correct; }

/* ---- batches, gradients, products ------------------------------------------------ */

/* The shared caches of the batch: input columns of convs whose weight is
 * differentiated, max-pool routes. */
static int fill_caches(bp_ad *ad)
{
    const bp_graph *g = ad->g;
    int st;
    for (int i = 0; i < g->n_nodes; i++) {
        const bp_node *n = &g->nodes[i];
        if (ad->colx[i]) {
            bp_conv_geom geo;
            if ((st = bp_conv_geom_of(g, n, &geo)))
                return st;
            bp_gconv_fill_col(ad->colx[i], VAL(n->in[0]), &geo);
            ad->colx_ok[i] = 1;
        }
        if (ad->route[i]) {
            bp_pool_geom geo;
            if ((st = bp_pool_geom_of(g, n, &geo)))
                return st;
            bp_g_maxpool_routes(ad->route[i], VAL(n->in[0]), &geo);
            ad->route_ok[i] = 1;
        }
    }
    return BP_OK;
}

/* Sample s's logits zs (C): its top-1 class (first maximum), its target
 * (targets[s], or the top-1 without targets) and cross-entropy; prob (C,
 * when not NULL) gets the softmax. */
static int sample_ce(const bp_graph *g, const double *zs, int64_t C, int64_t s,
                     const int64_t *targets, double *prob, int64_t *best_out,
                     int64_t *target, double *ce)
{
    int64_t best = 0;
    for (int64_t c = 0; c < C; c++) {
        if (!isfinite(zs[c]))
            return bp_fail(BP_EINVAL, "%s: logits of sample %lld are not "
                           "finite", g->path, (long long)s);
        if (zs[c] > zs[best])
            best = c;
    }
    double sum = 0;
    for (int64_t c = 0; c < C; c++) {
        double e = exp(zs[c] - zs[best]);
        if (prob)
            prob[c] = e;
        sum += e;
    }
    if (prob)
        for (int64_t c = 0; c < C; c++)
            prob[c] /= sum;
    int64_t t = targets ? targets[s] : best;
    if (t < 0 || t >= C)
        return bp_fail(BP_EINVAL, "autodiff: label %lld of sample %lld "
                       "outside 0..%lld", (long long)t, (long long)s,
                       (long long)C - 1);
    *best_out = best;
    *target = t;
    *ce = log(sum) + zs[best] - zs[t];
    return BP_OK;
}

int bp_ad_set_batch(bp_ad *ad, const double *x, const int64_t *labels,
                    int64_t n, double weight)
{
    const bp_graph *g = ad->g;
    pass *P = &ad->ps[0];
    int st;
    if (n < 1 || n > ad->max_batch)
        return bp_fail(BP_EINVAL, "autodiff: batch of %lld samples; expected "
                       "1 to %lld", (long long)n, (long long)ad->max_batch);
    const void *in[1] = {x};
    if (g->n_inputs != 1)
        return bp_fail(BP_EUNSUPPORTED, "%s: the model has %d inputs; "
                       "expected one", g->path, g->n_inputs);
    memset(ad->colx_ok, 0, (size_t)g->n_nodes);
    memset(ad->route_ok, 0, (size_t)g->n_nodes);
    memset(ad->gram_ok, 0, (size_t)g->n_nodes);
    if ((st = bp_exec_run(ad->ex, in, n)))
        return st;
    ad->n = n;
    ad->weight = weight;
    if ((st = fill_caches(ad)))
        return st;
    const int64_t C = ad->C;
    const double *z = VAL(ad->logits);
    ad->loss = 0;
    ad->correct = 0;
    for (int64_t s = 0; s < n; s++) {
        double *ps = ad->prob + s * C;
        int64_t best, t;
        double ce;
        if ((st = sample_ce(g, z + s * C, C, s, labels, ps, &best, &t, &ce)))
            return st;
        ad->target[s] = t;
        ad->loss += ce;
        ad->correct += best == t;
    }
    /* primal backward: adjoints of every active value, parameter gradients */
    for (int p = 0; p < ad->np; p++)
        memset(ad->pgrad[p], 0, (size_t)ad->pnumel[p] * sizeof *ad->pgrad[p]);
    setup_dst(ad, P, ad->adj, ad->active, ad->pgrad);
    for (int v = 0; v < g->n_values; v++)
        P->tp[v] = NULL;
    if (!P->dst[ad->logits])
        return BP_OK; /* no parameter reaches the logits */
    double *gz = P->dst[ad->logits];
    for (int64_t s = 0; s < n; s++)
        for (int64_t c = 0; c < C; c++)
            gz[s * C + c] = weight * (ad->prob[s * C + c] -
                                      (c == ad->target[s] ? 1.0 : 0.0));
    P->anz[ad->logits] = 1;
    P->gn = 0;
    return backward(ad, P, 0);
}

int bp_ad_forward_loss(bp_ad *ad, const double *x, const int64_t *targets,
                       int64_t n, double *loss, int64_t *top1)
{
    const bp_graph *g = ad->g;
    int st;
    if (n < 1 || n > ad->max_batch)
        return bp_fail(BP_EINVAL, "autodiff: batch of %lld samples; expected "
                       "1 to %lld", (long long)n, (long long)ad->max_batch);
    const void *in[1] = {x};
    ad->n = 0; /* the batch state no longer matches the executor's values */
    if ((st = bp_exec_run(ad->ex, in, n)))
        return st;
    const int64_t C = ad->C;
    const double *z = VAL(ad->logits);
    double sum_loss = 0;
    for (int64_t s = 0; s < n; s++) {
        int64_t best, t;
        double ce;
        if ((st = sample_ce(g, z + s * C, C, s, targets, NULL, &best, &t, &ce)))
            return st;
        sum_loss += ce;
        if (top1)
            top1[s] = best;
    }
    *loss = sum_loss;
    return BP_OK;
}

int bp_ad_grad(bp_ad *ad, double *const *grad)
{
    for (int p = 0; p < ad->np; p++)
        if (grad[p])
            bp_g_axpy(grad[p], 1.0, ad->pgrad[p], ad->pnumel[p]);
    return BP_OK;
}

/* One product in pass P. */
static int hvp_pass(bp_ad *ad, pass *P, const double *const *v,
                    double *const *hv)
{
    const bp_graph *g = ad->g;
    int st = BP_OK;
    /* the two parameter masks share the pass's value-sized scratch when
     * they fit (2 np <= n_values), else they go on the heap */
    char *vm = P->mask, *om = P->mask + ad->np;
    char *heap = NULL;
    if (2 * ad->np > g->n_values) {
        heap = malloc((size_t)(2 * ad->np));
        if (!heap)
            return BP_ENOMEM;
        vm = heap;
        om = heap + ad->np;
    }
    for (int p = 0; p < ad->np; p++) {
        vm[p] = v[p] != NULL;
        om[p] = hv[p] != NULL;
    }
    /* tangent pass over the closure of v's support; then the R-pass over the
     * closure of the wanted blocks (closure() overwrites the mask it gets,
     * so the masks are consumed first) */
    char *tmask = P->need;
    closure(ad, vm, tmask);
    for (int u = 0; u < g->n_values; u++) {
        P->tp[u] = NULL;
        if (ad->pidx[u] >= 0)
            P->tp[u] = (double *)v[ad->pidx[u]];
        else if (tmask[u] && P->tan[u])
            P->tp[u] = P->tan[u];
    }
    closure(ad, om, tmask);
    free(heap);
    memset(P->colt_ok, 0, (size_t)g->n_nodes);
    if (!P->tp[ad->logits])
        goto out; /* the direction does not move the logits: H v = 0 */
    for (int i = 0; i < g->n_nodes; i++) {
        if (!ad->live[i] || !P->tp[g->nodes[i].out[0]])
            continue;
        if ((st = node_jvp(ad, P, i)))
            goto out;
    }
    setup_dst(ad, P, P->radj, tmask, hv);
    if (!P->dst[ad->logits])
        goto out;
    {
        const int64_t C = ad->C;
        const double *dz = P->tp[ad->logits];
        double *rz = P->dst[ad->logits];
        for (int64_t s = 0; s < ad->n; s++) {
            const double *ps = ad->prob + s * C, *ds = dz + s * C;
            double m = bp_g_dot(ps, ds, C);
            for (int64_t c = 0; c < C; c++)
                rz[s * C + c] = ad->weight * ps[c] * (ds[c] - m);
        }
        P->anz[ad->logits] = 1;
    }
    P->gn = 0;
    st = backward(ad, P, 1);
out:
    for (int u = 0; u < g->n_values; u++)
        P->tp[u] = NULL;
    return st;
}

int bp_ad_hvp(bp_ad *ad, const double *const *v, double *const *hv)
{
    return hvp_pass(ad, &ad->ps[0], v, hv);
}

/* ---- threads ----------------------------------------------------------------------- */

/* Work items 0..count-1 split round-robin over the passes; item j always
 * gives the same bits whichever thread runs it (BLAS runs single-threaded
 * inside workers), so results do not depend on the thread count. */
typedef struct job {
    bp_ad *ad;
    int t, T, count;
    int (*item)(bp_ad *ad, pass *P, int j, void *arg);
    void *arg;
    int st;
    char msg[512];
} job;

static void *job_run(void *p)
{
    job *jb = p;
    for (int j = jb->t; j < jb->count && jb->st == BP_OK; j += jb->T) {
        jb->st = jb->item(jb->ad, &jb->ad->ps[jb->t], j, jb->arg);
        /* only the calling thread reports: stderr from one thread */
        if (jb->t == 0 && jb->ad->tick)
            jb->ad->tick(jb->ad->tick_ctx, j + 1, jb->count);
    }
    if (jb->st)
        snprintf(jb->msg, sizeof jb->msg, "%s", bp_errmsg());
    return NULL;
}

static int run_jobs(bp_ad *ad, int count,
                    int (*item)(bp_ad *ad, pass *P, int j, void *arg),
                    void *arg)
{
    int T = ad->nthreads < count ? ad->nthreads : count;
    if (T <= 1) {
        for (int j = 0; j < count; j++) {
            int st = item(ad, &ad->ps[0], j, arg);
            if (st)
                return st;
            if (ad->tick)
                ad->tick(ad->tick_ctx, j + 1, count);
        }
        return BP_OK;
    }
    job *jobs = calloc((size_t)T, sizeof *jobs);
    pthread_t *th = calloc((size_t)T, sizeof *th);
    if (!jobs || !th) {
        free(jobs);
        free(th);
        return BP_ENOMEM;
    }
    int blas = openblas_get_num_threads();
    openblas_set_num_threads(1);
    int started = 1;
    for (int t = 0; t < T; t++)
        jobs[t] = (job){ad, t, T, count, item, arg, BP_OK, ""};
    for (int t = 1; t < T; t++) {
        if (pthread_create(&th[t], NULL, job_run, &jobs[t]))
            break;
        started++;
    }
    /* items of threads that could not start run here */
    for (int t = started; t < T; t++)
        jobs[t].T = T, job_run(&jobs[t]);
    job_run(&jobs[0]);
    for (int t = 1; t < started; t++)
        pthread_join(th[t], NULL);
    openblas_set_num_threads(blas);
    int st = BP_OK;
    for (int t = 0; t < T && !st; t++)
        if ((st = jobs[t].st))
            bp_fail(st, "%s", jobs[t].msg);
    free(jobs);
    free(th);
    return st;
}

static int hvp_item(bp_ad *ad, pass *P, int j, void *arg)
{
    const bp_ad_dir *d = (const bp_ad_dir *)arg + j;
    return hvp_pass(ad, P, d->v, d->hv);
}

int bp_ad_hvp_many(bp_ad *ad, int k, const bp_ad_dir *dirs)
{
    return run_jobs(ad, k, hvp_item, (void *)dirs);
}

/* ---- Gauss-Newton traces -------------------------------------------------------------- */

typedef struct gn_arg {
    const char *want;
    double *trc;       /* (C, np) per-class contributions */
} gn_arg;

/* The adjoint of the logits for a Gauss-Newton pass of P over want (the
 * caller writes the seed into it), or NULL when want does not reach them. */
static double *gn_seed(bp_ad *ad, pass *P, const char *want)
{
    closure(ad, want, P->need);
    for (int u = 0; u < ad->g->n_values; u++)
        P->tp[u] = NULL;
    setup_dst(ad, P, P->radj, P->need, NULL);
    return P->dst[ad->logits];
}

/* The backward pass from the seed: tr[p] += sum_n wt_n ||grad_n||^2 for p
 * in want, with the per-sample weights in P->wtbuf. */
static int gn_backward(bp_ad *ad, pass *P, const char *want, double *tr)
{
    P->anz[ad->logits] = 1;
    P->gn = 1;
    P->gn_want = want;
    P->gn_tr = tr;
    P->wt = P->wtbuf;
    int st = backward(ad, P, 0);
    P->gn = 0;
    P->gn_want = NULL;
    P->gn_tr = NULL;
    return st;
}

static int gn_item(bp_ad *ad, pass *P, int c, void *arg)
{
    gn_arg *a = arg;
    const int64_t C = ad->C;
    double *seed = gn_seed(ad, P, a->want);
    if (!seed)
        return BP_OK;
    int any = 0;
    for (int64_t s = 0; s < ad->n; s++) {
        const double *ps = ad->prob + s * C;
        P->wtbuf[s] = ad->weight * ps[c];
        any |= P->wtbuf[s] != 0;
        for (int64_t j = 0; j < C; j++)
            seed[s * C + j] = (j == c ? 1.0 : 0.0) - ps[j];
    }
    if (!any)
        return BP_OK;
    return gn_backward(ad, P, a->want, a->trc + (int64_t)c * ad->np);
}

/* The Gram matrices of the wanted convs' inputs, shared by every class or
 * draw of the batch. */
static int gn_grams(bp_ad *ad, const char *want)
{
    const bp_graph *g = ad->g;
    for (int p = 0; p < ad->np; p++)
        if (want[p] && !ad->gnok[p])
            return bp_fail(BP_EUNSUPPORTED, "%s: parameter '%s': per-sample "
                           "gradients are not available for its consumer",
                           g->path, g->values[ad->pv[p]].name);
    for (int i = 0; i < g->n_nodes; i++) {
        const bp_node *n = &g->nodes[i];
        if (!ad->gram[i] || ad->gram_ok[i])
            continue;
        int p = ad->pidx[n->in[1]];
        if (p < 0 || !want[p])
            continue;
        bp_conv_geom geo;
        int st = bp_conv_geom_of(g, n, &geo);
        if (st)
            return st;
        bp_gconv_gram(ad->gram[i], VAL(n->in[0]), &geo, ad->ps[0].work, CX(i),
                      1);
        ad->gram_ok[i] = 1;
    }
    return BP_OK;
}

typedef struct gns_arg {
    const char *want;
    const double *signs; /* (k, n, C) */
    double *trk;         /* (k, np) per-draw sums */
} gns_arg;

/* Draw j of bp_ad_gn_sample: one backward pass seeded with M_n r_n. */
static int gns_item(bp_ad *ad, pass *P, int j, void *arg)
{
    gns_arg *a = arg;
    const int64_t C = ad->C;
    double *seed = gn_seed(ad, P, a->want);
    if (!seed)
        return BP_OK;
    const double *r = a->signs + (int64_t)j * ad->n * C;
    for (int64_t s = 0; s < ad->n; s++) {
        const double *ps = ad->prob + s * C, *rs = r + s * C;
        double *es = seed + s * C;
        /* M r = sqrt(p) . r - p (sqrt(p)^T r) */
        double dot = 0;
        for (int64_t c = 0; c < C; c++)
            dot += sqrt(ps[c]) * rs[c];
        for (int64_t c = 0; c < C; c++)
            es[c] = sqrt(ps[c]) * rs[c] - ps[c] * dot;
        P->wtbuf[s] = ad->weight;
    }
    return gn_backward(ad, P, a->want, a->trk + (int64_t)j * ad->np);
}

void bp_ad_set_tick(bp_ad *ad, void (*tick)(void *ctx, int64_t done,
                                            int64_t total), void *ctx)
{
    ad->tick = tick;
    ad->tick_ctx = ctx;
}

int bp_ad_gn_trace(bp_ad *ad, const char *want, double *tr)
{
    int st = gn_grams(ad, want);
    if (st)
        return st;
    double *trc = calloc((size_t)(ad->C * ad->np), sizeof *trc);
    if (!trc)
        return BP_ENOMEM;
    gn_arg a = {want, trc};
    st = run_jobs(ad, (int)ad->C, gn_item, &a);
    /* classes summed in order, whatever thread computed them */
    for (int64_t c = 0; st == BP_OK && c < ad->C; c++)
        for (int p = 0; p < ad->np; p++)
            if (want[p])
                tr[p] += trc[c * ad->np + p];
    free(trc);
    return st;
}

int bp_ad_gn_sample(bp_ad *ad, const char *want, int k, const double *signs,
                    double *tr)
{
    int st = gn_grams(ad, want);
    if (st)
        return st;
    double *trk = calloc((size_t)((int64_t)k * ad->np), sizeof *trk);
    if (!trk)
        return BP_ENOMEM;
    gns_arg a = {want, signs, trk};
    st = run_jobs(ad, k, gns_item, &a);
    for (int j = 0; st == BP_OK && j < k; j++)
        for (int p = 0; p < ad->np; p++)
            if (want[p])
                tr[(int64_t)j * ad->np + p] += trk[(int64_t)j * ad->np + p];
    free(trk);
    return st;
}

/* ---- cost model ------------------------------------------------------------------- */

/* Multiply-adds (per sample, at the current batch) of node i's forward. */
static double node_cost(const bp_graph *g, const bp_node *n)
{
    const bp_value *y = &g->values[n->out[0]];
    double ny = (double)vnumel(y) / (double)(g->batch ? g->batch : 1);
    switch (n->op) {
    case BP_OP_CONV: {
        const bp_value *w = &g->values[n->in[1]];
        return ny * (double)(vnumel(w) / (w->dims[0] ? w->dims[0] : 1));
    }
    case BP_OP_GEMM: {
        const bp_value *x = &g->values[n->in[0]];
        int ta = (int)bp_node_attr_int(n, "transA", 0);
        return ny * (double)x->dims[!ta];
    }
    case BP_OP_MATMUL: {
        const bp_value *x = &g->values[n->in[0]];
        return ny * (double)x->dims[x->rank - 1];
    }
    default:
        return ny;
    }
}

double bp_ad_hvp_cost(const bp_ad *ad, const char *vmask, const char *omask)
{
    bp_ad *m = (bp_ad *)ad; /* closure uses the scratch mask only */
    const bp_graph *g = ad->g;
    char *tn = malloc((size_t)g->n_values + 1);
    if (!tn)
        return INFINITY;
    closure(m, vmask, m->mask);
    memcpy(tn, m->mask, (size_t)g->n_values);
    closure(m, omask, m->mask);
    double cost = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (!ad->live[i])
            continue;
        const bp_node *n = &g->nodes[i];
        double c = node_cost(g, n);
        if (tn[n->out[0]])
            cost += c;              /* tangent */
        if (m->mask[n->out[0]])
            cost += 2 * c;          /* R-pass: both operands' VJPs */
    }
    free(tn);
    return cost;
}
