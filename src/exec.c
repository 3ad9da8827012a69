/* exec.c - float32/float64 reference executor over the graph IR.
 *
 * One dispatch switch over bp_op; the numeric work is in kernels.c (twice
 * compiled, float and double) and the pure data movement in movement.c. */
#include "exec.h"
#include "kernels.h"
#include "movement.h"
#include "shape.h"
#include "status.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct bp_exec {
    bp_graph *g;
    bp_dtype dt;
    int64_t max_batch;
    void **val;        /* (n_values) buffer of each value in dt, or NULL */
    int64_t *cap;      /* (n_values) capacity in elements of owned buffers */
    char *owned;       /* (n_values) 1 when val[v] is ours to free */
    char *converted;   /* (n_values) 1 when a constant is already in dt */
    void *work;
    int64_t work_cap;
};

static int is_float(bp_dtype dt) { return dt == BP_F32 || dt == BP_F64; }

static int64_t vnumel(const bp_value *v)
{
    int64_t n = 1;
    for (int d = 0; d < v->rank; d++)
        n *= v->dims[d];
    return n;
}

static int node_unsupported(const bp_graph *g, const bp_node *n, const char *why)
{
    return bp_fail(BP_EUNSUPPORTED, "%s: node '%s' (%s): %s", g->path, n->name,
                   bp_op_name(n->op), why);
}

int64_t bp_exec_node_work(const bp_graph *g, int i)
{
    const bp_node *n = &g->nodes[i];
    if (n->op == BP_OP_CONV) {
        bp_conv_geom geo;
        if (bp_conv_geom_of(g, n, &geo) == BP_OK)
            return bp_conv_work(&geo);
    }
    if (n->op == BP_OP_REDUCEMEAN)
        return 2 * vnumel(&g->values[n->in[0]]);
    return 0;
}

/* Keeps value buffers in step with the current shapes; converts constants
 * (and float values known at inference) into dt. */
static int prepare(bp_exec *ex)
{
    bp_graph *g = ex->g;
    size_t es = bp_dtype_size(ex->dt);
    for (int v = 0; v < g->n_values; v++) {
        const bp_value *val = &g->values[v];
        const bp_tensor *c = val->data ? val->data : val->known;
        if (c && !is_float(c->dtype)) {
            if (ex->owned[v])
                free(ex->val[v]);
            ex->owned[v] = 0;
            ex->val[v] = c->data;
            continue;
        }
        if (c && c->dtype == ex->dt) {
            if (ex->owned[v])
                free(ex->val[v]);
            ex->owned[v] = 0;
            ex->val[v] = c->data;
            continue;
        }
        if (!c && !is_float(val->dtype))
            continue; /* unused integer value (e.g. a Dropout mask) */
        if (val->data && ex->converted[v])
            continue; /* constants never change: convert them once */
        int64_t n = vnumel(val);
        if (!ex->owned[v] || ex->cap[v] < n) {
            if (ex->owned[v])
                free(ex->val[v]);
            ex->val[v] = malloc((size_t)(n ? n : 1) * es);
            if (!ex->val[v]) {
                ex->owned[v] = 0;
                return BP_ENOMEM;
            }
            ex->owned[v] = 1;
            ex->cap[v] = n;
        }
        if (c) {
            ex->converted[v] = val->data != NULL;
            /* a float constant of the other precision: convert */
            for (int64_t i = 0; i < n; i++) {
                double x = bp_tensor_get(c, i);
                if (ex->dt == BP_F32)
                    ((float *)ex->val[v])[i] = (float)x;
                else
                    ((double *)ex->val[v])[i] = x;
            }
        }
    }
    int64_t work = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        int64_t w = bp_exec_node_work(g, i);
        if (w > work)
            work = w;
    }
    if (work > ex->work_cap) {
        free(ex->work);
        ex->work = malloc((size_t)work * es);
        if (!ex->work) {
            ex->work_cap = 0;
            return BP_ENOMEM;
        }
        ex->work_cap = work;
    }
    return BP_OK;
}

/* A node whose outputs are all constants or known needs no run. */
static int node_static(const bp_graph *g, const bp_node *n)
{
    for (int k = 0; k < n->n_out; k++) {
        int v = n->out[k];
        if (v >= 0 && !g->values[v].data && !g->values[v].known)
            return 0;
    }
    return 1;
}

static int check_runnable(const bp_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const bp_node *n = &g->nodes[i];
        if (node_static(g, n))
            continue;
        const bp_value *y = &g->values[n->out[0]];
        if (!is_float(y->dtype))
            return node_unsupported(g, n, "computes an integer tensor at run "
                                    "time; bitplan runs integer tensors only "
                                    "as shape arithmetic");
        switch (n->op) {
        case BP_OP_GATHER:
            if (!bp_value_const(g, n->in[1]))
                return node_unsupported(g, n, "indices must be constant");
            break;
        case BP_OP_CAST:
            if (!is_float(g->values[n->in[0]].dtype))
                return node_unsupported(g, n, "casts an integer tensor");
            break;
        case BP_OP_SHAPE: case BP_OP_CONSTANTOFSHAPE: case BP_OP_CONSTANT:
            return node_unsupported(g, n, "cannot be evaluated statically");
        default:
            break;
        }
        if (n->op == BP_OP_DROPOUT && n->n_in > 2 && n->in[2] >= 0) {
            /* opset 12+: training_mode, a bool; inference means false */
            const bp_tensor *t = bp_value_const(g, n->in[2]);
            if (!t || bp_tensor_numel(t) != 1 || bp_tensor_get(t, 0) != 0)
                return node_unsupported(g, n, "training_mode must be a "
                                        "constant false (inference)");
        }
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0 || (n->op == BP_OP_DROPOUT && k >= 1))
                continue;
            int needs_float = !(n->op == BP_OP_GATHER && k == 1) &&
                              !(n->op == BP_OP_RESHAPE && k == 1) &&
                              !((n->op == BP_OP_SLICE || n->op == BP_OP_PAD) && k >= 1) &&
                              !((n->op == BP_OP_SQUEEZE ||
                                 n->op == BP_OP_UNSQUEEZE ||
                                 n->op == BP_OP_REDUCEMEAN) && k == 1);
            if (needs_float && !is_float(g->values[v].dtype))
                return node_unsupported(g, n, "an input is an integer tensor");
        }
    }
    return BP_OK;
}

int bp_exec_new(bp_exec **out, bp_graph *g, bp_dtype dt, int64_t max_batch)
{
    int st;
    if (!is_float(dt) || max_batch < 1)
        return bp_fail(BP_EINVAL, "executor: dtype must be float32 or float64 "
                       "and the batch at least 1");
    if ((st = bp_graph_infer(g, max_batch)))
        return st;
    if ((st = check_runnable(g)))
        return st;
    bp_exec *ex = calloc(1, sizeof *ex);
    if (!ex)
        return BP_ENOMEM;
    ex->g = g;
    ex->dt = dt;
    ex->max_batch = max_batch;
    ex->val = calloc((size_t)g->n_values + 1, sizeof *ex->val);
    ex->cap = calloc((size_t)g->n_values + 1, sizeof *ex->cap);
    ex->owned = calloc((size_t)g->n_values + 1, 1);
    ex->converted = calloc((size_t)g->n_values + 1, 1);
    if (!ex->val || !ex->cap || !ex->owned || !ex->converted ||
        (st = prepare(ex))) {
        bp_exec_free(&ex);
        return st ? st : BP_ENOMEM;
    }
    *out = ex;
    return BP_OK;
}

void bp_exec_free(bp_exec **exp)
{
    if (!exp || !*exp)
        return;
    bp_exec *ex = *exp;
    for (int v = 0; ex->val && v < ex->g->n_values; v++)
        if (ex->owned && ex->owned[v])
            free(ex->val[v]);
    free(ex->val);
    free(ex->cap);
    free(ex->owned);
    free(ex->converted);
    free(ex->work);
    free(ex);
    *exp = NULL;
}

void bp_set_threads(int n)
{
    if (n > 0)
        openblas_set_num_threads(n);
}

int bp_get_threads(void)
{
    return openblas_get_num_threads();
}

void bp_exec_const_changed(bp_exec *ex, int v)
{
    if (v >= 0 && v < ex->g->n_values)
        ex->converted[v] = 0;
}

int64_t bp_exec_buffer_bytes(const bp_exec *ex)
{
    int64_t n = ex->work_cap;
    for (int v = 0; v < ex->g->n_values; v++)
        if (ex->owned[v])
            n += ex->cap[v];
    return n * (int64_t)bp_dtype_size(ex->dt);
}

int bp_exec_sample_bytes(bp_graph *g, bp_dtype dt, int64_t *bytes)
{
    int64_t n;
    int st = bp_graph_act_numel(g, &n);
    if (st)
        return st;
    int64_t rm = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == BP_OP_REDUCEMEAN) {
            int64_t w = bp_exec_node_work(g, i);
            rm = w > rm ? w : rm;
        }
    int64_t es = (int64_t)bp_dtype_size(dt);
    n = rm > INT64_MAX - n ? INT64_MAX : n + rm;
    *bytes = n > INT64_MAX / es ? INT64_MAX : n * es;
    return BP_OK;
}

int64_t bp_auto_batch(int64_t sample_bytes)
{
    if (sample_bytes < 1)
        return BP_AUTO_BATCH_MAX;
    int64_t fit = BP_AUTO_BATCH_BYTES / sample_bytes;
    return fit < 1 ? 1 : fit > BP_AUTO_BATCH_MAX ? BP_AUTO_BATCH_MAX : fit;
}

bp_dtype bp_exec_dtype(const bp_exec *ex) { return ex->dt; }
int64_t bp_exec_max_batch(const bp_exec *ex) { return ex->max_batch; }

const void *bp_exec_value(const bp_exec *ex, int v)
{
    return v >= 0 && v < ex->g->n_values ? ex->val[v] : NULL;
}

const void *bp_exec_output(const bp_exec *ex, int k)
{
    return k >= 0 && k < ex->g->n_outputs ? ex->val[ex->g->outputs[k]] : NULL;
}

int bp_exec_run(bp_exec *ex, const void *const *inputs, int64_t n)
{
    bp_graph *g = ex->g;
    int st;
    if (n < 1 || n > ex->max_batch)
        return bp_fail(BP_EINVAL, "executor: batch of %lld samples; expected "
                       "1 to %lld", (long long)n, (long long)ex->max_batch);
    if (g->batch != n && (st = bp_graph_infer(g, n)))
        return st;
    if ((st = prepare(ex)))
        return st;
    size_t es = bp_dtype_size(ex->dt);
    for (int k = 0; k < g->n_inputs; k++) {
        int v = g->inputs[k];
        memcpy(ex->val[v], inputs[k], (size_t)vnumel(&g->values[v]) * es);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        if (node_static(g, &g->nodes[i]))
            continue;
        if ((st = bp_exec_node(g, i, ex->dt, ex->val, ex->work)))
            return st;
    }
    return BP_OK;
}

/* --- the dispatch switch ------------------------------------------------------ */

#define DISPATCH(dt, name, ...)                                                 \
    do {                                                                        \
        if ((dt) == BP_F32)                                                     \
            bp_k_##name##_f32(__VA_ARGS__);                                     \
        else                                                                    \
            bp_k_##name##_f64(__VA_ARGS__);                                     \
    } while (0)

/* y (m, n) = broadcast of C (rank <= 2) */
static void fill_bias(void *y, const void *c, const bp_value *cv, int64_t m,
                      int64_t nn, size_t es)
{
    int64_t rs = 0, cs = 0;
    if (cv->rank == 2) {
        rs = cv->dims[0] == 1 ? 0 : cv->dims[1];
        cs = cv->dims[1] == 1 ? 0 : 1;
    } else if (cv->rank == 1) {
        cs = cv->dims[0] == 1 ? 0 : 1;
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < nn; j++)
            memcpy((char *)y + (size_t)(i * nn + j) * es,
                   (const char *)c + (size_t)(i * rs + j * cs) * es, es);
}

static void run_matmul(const bp_graph *g, const bp_node *n, bp_dtype dt,
                       void *const *val)
{
    const bp_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
    const bp_value *y = &g->values[n->out[0]];
    size_t es = bp_dtype_size(dt);
    int ar = a->rank, br = b->rank;
    int64_t M = ar == 1 ? 1 : a->dims[ar - 2], K = a->dims[ar - 1];
    int64_t N = br == 1 ? 1 : b->dims[br - 1];
    const char *A = val[n->in[0]], *B = val[n->in[1]];
    char *Y = val[n->out[0]];
    if (br <= 2) {
        /* x (..., M, K) @ W (K, N): one GEMM over all leading axes */
        int64_t rows = ar == 1 ? 1 : vnumel(a) / K;
        if (dt == BP_F32)
            bp_k_gemm_f32((float *)Y, (const float *)A, (const float *)B, rows,
                          N, K, 0, 0, 1.0f, 0.0f);
        else
            bp_k_gemm_f64((double *)Y, (const double *)A, (const double *)B,
                          rows, N, K, 0, 0, 1.0, 0.0);
        return;
    }
    /* batched: broadcast leading axes through an odometer */
    int r = y->rank + (ar == 1) + (br == 1);
    int lead = r - 2;
    int64_t ld[BP_MAX_RANK], as[BP_MAX_RANK], bs[BP_MAX_RANK], idx[BP_MAX_RANK] = {0};
    int64_t sa = M * K, sb = K * N, total = 1;
    for (int d = lead - 1; d >= 0; d--) {
        int ia = d - (lead - (ar - 2)), ib = d - (lead - (br - 2));
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        ld[d] = da > db ? da : db;
        as[d] = da == 1 ? 0 : sa;
        bs[d] = db == 1 ? 0 : sb;
        sa *= da;
        sb *= db;
        total *= ld[d];
    }
    for (int64_t t = 0; t < total; t++) {
        int64_t oa = 0, ob = 0;
        for (int d = 0; d < lead; d++) {
            oa += idx[d] * as[d];
            ob += idx[d] * bs[d];
        }
        if (dt == BP_F32)
            bp_k_gemm_f32((float *)(Y + (size_t)(t * M * N) * es),
                          (const float *)(A + (size_t)oa * es),
                          (const float *)(B + (size_t)ob * es), M, N, K, 0, 0,
                          1.0f, 0.0f);
        else
            bp_k_gemm_f64((double *)(Y + (size_t)(t * M * N) * es),
                          (const double *)(A + (size_t)oa * es),
                          (const double *)(B + (size_t)ob * es), M, N, K, 0, 0,
                          1.0, 0.0);
        for (int d = lead - 1; d >= 0; d--) {
            if (++idx[d] < ld[d])
                break;
            idx[d] = 0;
        }
    }
}

int bp_exec_node(const bp_graph *g, int i, bp_dtype dt, void *const *val,
                 void *work)
{
    const bp_node *n = &g->nodes[i];
    const bp_value *x = &g->values[n->in[0]];
    const bp_value *y = &g->values[n->out[0]];
    void *Y = val[n->out[0]];
    const void *X = val[n->in[0]];
    size_t es = bp_dtype_size(dt);
    int64_t ny = vnumel(y);
    int st;

    switch (n->op) {
    case BP_OP_CONV: {
        bp_conv_geom geo;
        if ((st = bp_conv_geom_of(g, n, &geo)))
            return st;
        const void *B = n->n_in > 2 && n->in[2] >= 0 ? val[n->in[2]] : NULL;
        DISPATCH(dt, conv, Y, X, val[n->in[1]], B, &geo, work);
        return BP_OK;
    }
    case BP_OP_GEMM: {
        const bp_value *b = &g->values[n->in[1]];
        int ta = (int)bp_node_attr_int(n, "transA", 0);
        int tb = (int)bp_node_attr_int(n, "transB", 0);
        double alpha = bp_node_attr_float(n, "alpha", 1.0);
        double beta = bp_node_attr_float(n, "beta", 1.0);
        int64_t m = y->dims[0], nn = y->dims[1], k = x->dims[!ta];
        int has_c = n->n_in > 2 && n->in[2] >= 0 && beta != 0.0;
        if (has_c)
            fill_bias(Y, val[n->in[2]], &g->values[n->in[2]], m, nn, es);
        (void)b;
        if (dt == BP_F32)
            bp_k_gemm_f32(Y, X, val[n->in[1]], m, nn, k, ta, tb, (float)alpha,
                          has_c ? (float)beta : 0.0f);
        else
            bp_k_gemm_f64(Y, X, val[n->in[1]], m, nn, k, ta, tb, alpha,
                          has_c ? beta : 0.0);
        return BP_OK;
    }
    case BP_OP_MATMUL:
        run_matmul(g, n, dt, val);
        return BP_OK;
    case BP_OP_ADD: case BP_OP_SUB: case BP_OP_MUL: case BP_OP_DIV: {
        int64_t as[BP_MAX_RANK], bs[BP_MAX_RANK];
        bp_broadcast_strides(x, y->rank, y->dims, as);
        bp_broadcast_strides(&g->values[n->in[1]], y->rank, y->dims, bs);
        bp_binop op = n->op == BP_OP_ADD ? BP_BIN_ADD
                      : n->op == BP_OP_SUB ? BP_BIN_SUB
                      : n->op == BP_OP_MUL ? BP_BIN_MUL : BP_BIN_DIV;
        DISPATCH(dt, binary, Y, X, as, val[n->in[1]], bs, y->rank, y->dims, op);
        return BP_OK;
    }
    case BP_OP_RELU: case BP_OP_LEAKYRELU: case BP_OP_CLIP: case BP_OP_SIGMOID:
    case BP_OP_TANH: {
        double p0 = 0, p1 = 0;
        bp_unop op = BP_UN_RELU;
        switch (n->op) {
        case BP_OP_LEAKYRELU:
            op = BP_UN_LEAKYRELU;
            p0 = bp_node_attr_float(n, "alpha", 0.01);
            break;
        case BP_OP_CLIP:
            op = BP_UN_CLIP;
            bp_clip_bounds(g, n, &p0, &p1);
            break;
        case BP_OP_SIGMOID: op = BP_UN_SIGMOID; break;
        case BP_OP_TANH: op = BP_UN_TANH; break;
        default: break;
        }
        if (dt == BP_F32)
            bp_k_unary_f32(Y, X, ny, op, (float)p0, (float)p1);
        else
            bp_k_unary_f64(Y, X, ny, op, p0, p1);
        return BP_OK;
    }
    case BP_OP_SOFTMAX: {
        int64_t outer, len, inner;
        bp_softmax_split(g, n, &outer, &len, &inner);
        DISPATCH(dt, softmax, Y, X, outer, len, inner);
        return BP_OK;
    }
    case BP_OP_MAXPOOL: case BP_OP_AVERAGEPOOL: {
        bp_pool_geom geo;
        if ((st = bp_pool_geom_of(g, n, &geo)))
            return st;
        if (n->op == BP_OP_MAXPOOL)
            DISPATCH(dt, maxpool, Y, X, &geo);
        else
            DISPATCH(dt, avgpool, Y, X, &geo);
        return BP_OK;
    }
    case BP_OP_GLOBALAVERAGEPOOL: {
        int64_t nc = x->dims[0] * x->dims[1];
        DISPATCH(dt, mean, Y, X, nc, vnumel(x) / (nc ? nc : 1), 1);
        return BP_OK;
    }
    case BP_OP_REDUCEMEAN: {
        int mask[BP_MAX_RANK];
        if ((st = bp_reduce_axes(g, n, mask)))
            return st;
        int64_t dims[BP_MAX_RANK];
        memcpy(dims, x->dims, sizeof dims);
        char *buf[2] = {work, (char *)work + (size_t)vnumel(x) * es};
        const void *src = X;
        int which = 0;
        memcpy(buf[0], X, (size_t)vnumel(x) * es);
        src = buf[0];
        for (int d = 0; d < x->rank; d++) {
            if (!mask[d])
                continue;
            int64_t outer = 1, inner = 1;
            for (int e = 0; e < d; e++)
                outer *= dims[e];
            for (int e = d + 1; e < x->rank; e++)
                inner *= dims[e];
            DISPATCH(dt, mean, (void *)buf[!which], src, outer, dims[d], inner);
            dims[d] = 1;
            which = !which;
            src = buf[which];
        }
        memcpy(Y, src, (size_t)ny * es);
        return BP_OK;
    }
    case BP_OP_BATCHNORM: {
        double eps = bp_node_attr_float(n, "epsilon", 1e-5);
        int64_t c = x->dims[1], inner = vnumel(x) / (x->dims[0] * c);
        if (dt == BP_F32)
            bp_k_batchnorm_f32(Y, X, val[n->in[1]], val[n->in[2]],
                               val[n->in[3]], val[n->in[4]], (float)eps,
                               x->dims[0], c, inner);
        else
            bp_k_batchnorm_f64(Y, X, val[n->in[1]], val[n->in[2]],
                               val[n->in[3]], val[n->in[4]], eps, x->dims[0],
                               c, inner);
        return BP_OK;
    }
    case BP_OP_FLATTEN: case BP_OP_RESHAPE: case BP_OP_SQUEEZE:
    case BP_OP_UNSQUEEZE: case BP_OP_IDENTITY: case BP_OP_DROPOUT:
        if (Y != X)
            memcpy(Y, X, (size_t)ny * es);
        return BP_OK;
    case BP_OP_CAST: /* float -> float: the executor holds both in dt */
        memcpy(Y, X, (size_t)ny * es);
        return BP_OK;
    case BP_OP_TRANSPOSE: {
        int64_t perm[BP_MAX_RANK];
        bp_transpose_perm(g, n, perm);
        bp_mv_transpose(Y, X, es, x->rank, x->dims, perm);
        return BP_OK;
    }
    case BP_OP_CONCAT: {
        int64_t a = bp_node_axis(g, n);
        int64_t outer = 1, inner = 1, at = 0;
        for (int d = 0; d < a; d++)
            outer *= y->dims[d];
        for (int d = (int)a + 1; d < y->rank; d++)
            inner *= y->dims[d];
        for (int k = 0; k < n->n_in; k++) {
            const bp_value *v = &g->values[n->in[k]];
            bp_mv_concat(Y, val[n->in[k]], es, outer, v->dims[a], inner,
                         y->dims[a], at);
            at += v->dims[a];
        }
        return BP_OK;
    }
    case BP_OP_GATHER: {
        const bp_tensor *ix = bp_value_const(g, n->in[1]);
        int64_t a = bp_node_axis(g, n), len = x->dims[a];
        int64_t nidx = bp_tensor_numel(ix), outer = 1, inner = 1;
        for (int d = 0; d < a; d++)
            outer *= x->dims[d];
        for (int d = (int)a + 1; d < x->rank; d++)
            inner *= x->dims[d];
        int64_t *idx = malloc((size_t)(nidx + 1) * sizeof *idx);
        if (!idx)
            return BP_ENOMEM;
        for (int64_t k = 0; k < nidx; k++) {
            idx[k] = ix->dtype == BP_I64 ? ((const int64_t *)ix->data)[k]
                                         : (int64_t)bp_tensor_get(ix, k);
            if (idx[k] < 0)
                idx[k] += len;
            if (idx[k] < 0 || idx[k] >= len) {
                free(idx);
                return bp_fail(BP_EINVAL, "%s: node '%s' (Gather): index out "
                               "of range", g->path, n->name);
            }
        }
        bp_mv_gather(Y, X, es, outer, len, inner, idx, nidx);
        free(idx);
        return BP_OK;
    }
    case BP_OP_SLICE: {
        int64_t start[BP_MAX_RANK], step[BP_MAX_RANK], len[BP_MAX_RANK];
        if ((st = bp_slice_params(g, n, start, step, len)))
            return st;
        bp_mv_slice(Y, X, es, x->rank, x->dims, len, start, step);
        return BP_OK;
    }
    case BP_OP_PAD: {
        int64_t b[BP_MAX_RANK], e[BP_MAX_RANK];
        double v;
        if ((st = bp_pad_params(g, n, b, e, &v)))
            return st;
        for (int64_t k = 0; k < ny; k++) {
            if (dt == BP_F32)
                ((float *)Y)[k] = (float)v;
            else
                ((double *)Y)[k] = v;
        }
        /* copy x row by row (rows = its last axis) into the interior */
        int r = x->rank;
        int64_t row = r ? x->dims[r - 1] : 1, rows = vnumel(x) / (row ? row : 1);
        int64_t idx[BP_MAX_RANK] = {0};
        for (int64_t k = 0; k < rows; k++) {
            int64_t off = 0;
            for (int d = 0; d < r; d++)
                off = off * y->dims[d] + (d == r - 1 ? b[d] : idx[d] + b[d]);
            memcpy((char *)Y + (size_t)off * es,
                   (const char *)X + (size_t)(k * row) * es, (size_t)row * es);
            for (int d = r - 2; d >= 0; d--) {
                if (++idx[d] < x->dims[d])
                    break;
                idx[d] = 0;
            }
        }
        return BP_OK;
    }
    default:
        return node_unsupported(g, n, "not executable");
    }
}
