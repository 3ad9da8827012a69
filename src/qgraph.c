/* qgraph.c - builds the quantized model: pattern matching of the float graph
 * into integer ops, bit-width assignment, scales from calibration, and the
 * integer parameters (packed weights, int32 biases, dyadic numbers).  See
 * qgraph.h for the rules. */
#include "qgraph.h"
#include "qkernels_impl.h"
#include "shape.h"
#include "status.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static const char *const qop_names[BP_QOP_COUNT] = {
    "Quantize", "Layer", "Add", "Relu", "MaxPool", "AvgPool", "Flatten",
    "Requant", "Dequant"};
_Static_assert(sizeof qop_names / sizeof qop_names[0] == BP_QOP_COUNT,
               "one name per integer op");

const char *bp_qop_name(bp_qop_kind k)
{
    return k >= 0 && k < BP_QOP_COUNT ? qop_names[k] : "?";
}

int64_t bp_qsize_layer(int64_t numel, int64_t out_channels, int w_bits)
{
    return BP_QPACK_BYTES(numel, w_bits) + 8 * out_channels;
}

void bp_qopts_init(bp_qopts *o)
{
    memset(o, 0, sizeof *o);
    o->method = BP_CALIB_DEFAULT;
    o->percentile = BP_CALIB_PERCENTILE_DEFAULT;
    o->plan_name = "plan";
}

/* A fused Conv/Gemm/MatMul chain, keyed by its layer node. */
typedef struct chain {
    int conv, bias_add, bn, add, act, last;
    int add_other;     /* value of the residual branch */
} chain;

/* Build-time extras per tensor and per op. */
typedef struct tinfo {
    int src;           /* member tensors: the tensor they derive from */
    int producer;      /* op writing it */
    int is_quant_in;   /* written by QUANTIZE */
} tinfo;

typedef struct oinfo {
    double act_lo, act_hi; /* fused ReLU / Clip bounds (reals) */
    int has_act;
    chain ch;          /* LAYER */
} oinfo;

typedef struct build {
    bp_graph *g;
    const bp_plan *plan;
    const bp_qcalib *calib;
    const bp_qopts *o;
    bp_qmodel *qm;
    bp_layer *gl;
    int ngl;
    int *layer_of_node;  /* (n_nodes) index in gl, or -1 */
    int *plan_of_layer;  /* (ngl) index in plan->layers */
    int *nuse;           /* (n_values) uses by non-static nodes */
    int *first_use;      /* (n_values) first such node */
    char *is_out;        /* (n_values) a graph output */
    int *fused_add;      /* (n_nodes) Add fused into this layer node, or -1 */
    char *claimed;       /* (n_nodes) */
    int *pending;        /* (n_nodes) layer node whose chain ends here, or -1 */
    chain *chains;       /* (n_nodes) */
    int cap_t, cap_o, cap_l;
    tinfo *ti;
    oinfo *oi;
} build;

static int node_static(const bp_graph *g, const bp_node *n)
{
    for (int k = 0; k < n->n_out; k++) {
        int v = n->out[k];
        if (v >= 0 && !g->values[v].data && !g->values[v].known)
            return 0;
    }
    return 1;
}

static int unsupported(build *b, int node, const char *fmt, const char *what)
{
    const bp_node *n = &b->g->nodes[node];
    return bp_fail(BP_EUNSUPPORTED, "%s: node '%s' (%s): %s%s", b->g->path,
                   n->name, bp_op_name(n->op), fmt, what ? what : "");
}

/* ---- tensors and ops ------------------------------------------------------- */

/* The (h, w, c) of one sample of value v in NHWC storage. */
static int storage_of(const bp_value *v, int64_t *h, int64_t *w, int64_t *c)
{
    switch (v->rank) {
    case 2: *h = 1; *w = 1; *c = v->dims[1]; return 0;
    case 3: *h = 1; *w = v->dims[2]; *c = v->dims[1]; return 0;
    case 4: *h = v->dims[2]; *w = v->dims[3]; *c = v->dims[1]; return 0;
    default: return -1;
    }
}

static int new_tensor(build *b, int value, bp_qtype type, int src, int *out)
{
    bp_qmodel *qm = b->qm;
    if (qm->n_tensors == b->cap_t) {
        int cap = b->cap_t ? 2 * b->cap_t : 16;
        bp_qtensor *t = realloc(qm->t, (size_t)cap * sizeof *t);
        tinfo *ti = realloc(b->ti, (size_t)cap * sizeof *ti);
        if (t)
            qm->t = t;
        if (ti)
            b->ti = ti;
        if (!t || !ti)
            return BP_ENOMEM;
        b->cap_t = cap;
    }
    int i = qm->n_tensors++;
    bp_qtensor *t = &qm->t[i];
    memset(t, 0, sizeof *t);
    const bp_value *v = &b->g->values[value];
    if (storage_of(v, &t->h, &t->w, &t->c))
        return BP_EUNSUPPORTED;
    t->type = type;
    t->value = value;
    t->root = src >= 0 ? qm->t[src].root : i;
    b->ti[i].src = src;
    b->ti[i].producer = -1;
    b->ti[i].is_quant_in = 0;
    *out = i;
    return BP_OK;
}

static int new_op(build *b, bp_qop_kind kind, int node, int in, int in2, int out,
                  int *index)
{
    bp_qmodel *qm = b->qm;
    if (qm->n_ops == b->cap_o) {
        int cap = b->cap_o ? 2 * b->cap_o : 16;
        bp_qop *o = realloc(qm->ops, (size_t)cap * sizeof *o);
        oinfo *oi = realloc(b->oi, (size_t)cap * sizeof *oi);
        if (o)
            qm->ops = o;
        if (oi)
            b->oi = oi;
        if (!o || !oi)
            return BP_ENOMEM;
        b->cap_o = cap;
    }
    int i = qm->n_ops++;
    bp_qop *o = &qm->ops[i];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->node = node;
    o->in = in;
    o->in2 = in2;
    o->out = out;
    o->layer = -1;
    o->io = -1;
    memset(&b->oi[i], 0, sizeof b->oi[i]);
    b->oi[i].act_lo = -INFINITY;
    b->oi[i].act_hi = INFINITY;
    if (out >= 0)
        b->ti[out].producer = i;
    if (index)
        *index = i;
    return BP_OK;
}

/* The tensor holding value v, or an error naming the node that reads it. */
static int tensor_of(build *b, int node, int v, int *t)
{
    if (v < 0 || b->qm->value_tensor[v] < 0) {
        const bp_value *val = v >= 0 ? &b->g->values[v] : NULL;
        if (val && (val->data || val->known)) {
            char shape[128], what[400];
            bp_shape_str(shape, sizeof shape, val->rank, val->dims);
            snprintf(what, sizeof what, "%s; the integer executor folds a "
                     "constant only into the layer before it, as a bias along "
                     "the channel axis ((C,1,1) or (1,C,1,1) after a Conv, (C,) "
                     "or (1,C) after a Gemm or MatMul)", shape);
            return unsupported(b, node, "a constant operand of shape ", what);
        }
        return unsupported(b, node, "its input is not an integer tensor", NULL);
    }
    *t = b->qm->value_tensor[v];
    return BP_OK;
}

/* ---- chains ---------------------------------------------------------------- */

static int sole_consumer(const build *b, int v, bp_op op)
{
    if (v < 0 || b->nuse[v] != 1 || b->is_out[v])
        return -1;
    int c = b->first_use[v];
    return b->g->nodes[c].op == op ? c : -1;
}

/* A constant v that adds one value per output channel to a layer's output
 * y: m elements, and under ONNX's broadcasting (dims aligned from the
 * right) every axis but the channel axis (1) of y of size 1.  (C,) on an
 * NCHW output lines up with W, not C: that is no bias. */
static const bp_tensor *per_channel_const(const bp_graph *g, int v, int64_t m,
                                          const bp_value *y)
{
    if (v < 0 || !g->values[v].data)
        return NULL;
    const bp_tensor *t = g->values[v].data;
    if (bp_tensor_numel(t) != m || t->rank > y->rank)
        return NULL;
    for (int i = 0; i < t->rank; i++) {
        int axis = y->rank - t->rank + i;
        if (t->dims[i] != (axis == 1 ? m : 1))
            return NULL;
    }
    return t;
}

static int bn_ok(const bp_graph *g, const bp_node *n)
{
    if (n->n_in < 5)
        return 0;
    for (int k = 1; k < 5; k++)
        if (n->in[k] < 0 || !g->values[n->in[k]].data)
            return 0;
    return 1;
}

/* The layer node whose chain would end in value v (through an optional BN). */
static int chain_head(const build *b, int v)
{
    const bp_graph *g = b->g;
    if (v < 0 || b->nuse[v] != 1 || b->is_out[v])
        return -1;
    int p = g->values[v].producer;
    if (p < 0)
        return -1;
    if (g->nodes[p].op == BP_OP_BATCHNORM) {
        int u = g->nodes[p].in[0];
        if (!bn_ok(g, &g->nodes[p]) || u < 0 || b->nuse[u] != 1 || b->is_out[u])
            return -1;
        p = g->values[u].producer;
        if (p < 0)
            return -1;
    }
    return b->layer_of_node[p] >= 0 ? p : -1;
}

static int same_dims(const bp_value *a, const bp_value *c)
{
    if (a->rank != c->rank)
        return 0;
    for (int d = 0; d < a->rank; d++)
        if (a->dims[d] != c->dims[d])
            return 0;
    return 1;
}

/* Residual adds: the later of the two layer chains that end in an Add takes
 * it (its int32 accumulator meets the other branch without a detour
 * through 8 bits). */
static void plan_adds(build *b)
{
    const bp_graph *g = b->g;
    for (int i = 0; i < g->n_nodes; i++) {
        const bp_node *n = &g->nodes[i];
        if (n->op != BP_OP_ADD || node_static(g, n) || n->n_in != 2)
            continue;
        int a0 = n->in[0], a1 = n->in[1];
        if (a0 < 0 || a1 < 0 || g->values[a0].data || g->values[a1].data ||
            !same_dims(&g->values[a0], &g->values[n->out[0]]) ||
            !same_dims(&g->values[a1], &g->values[n->out[0]]))
            continue;
        int h0 = chain_head(b, a0), h1 = chain_head(b, a1);
        int h = h0 > h1 ? h0 : h1;
        if (h >= 0 && b->fused_add[h] < 0)
            b->fused_add[h] = i;
    }
}

static int act_of(const build *b, const bp_node *n, double *lo, double *hi)
{
    if (n->op == BP_OP_RELU) {
        *lo = 0;
        *hi = INFINITY;
        return 1;
    }
    if (n->op == BP_OP_CLIP) {
        bp_clip_bounds(b->g, n, lo, hi);
        return 1;
    }
    return 0;
}

static chain make_chain(build *b, int conv)
{
    const bp_graph *g = b->g;
    chain c = {conv, -1, -1, -1, -1, conv, -1};
    int v = g->nodes[conv].out[0];
    int64_t m = b->gl[b->layer_of_node[conv]].out_channels;
    int nx;
    if ((nx = sole_consumer(b, v, BP_OP_ADD)) >= 0 &&
        g->nodes[nx].n_in == 2) {
        const bp_node *n = &g->nodes[nx];
        int other = n->in[0] == v ? n->in[1] : n->in[0];
        if (per_channel_const(g, other, m, &g->values[v]) &&
            same_dims(&g->values[v], &g->values[n->out[0]])) {
            c.bias_add = nx;
            v = n->out[0];
        }
    }
    if ((nx = sole_consumer(b, v, BP_OP_BATCHNORM)) >= 0 &&
        bn_ok(g, &g->nodes[nx]) && g->nodes[nx].in[0] == v) {
        c.bn = nx;
        v = g->nodes[nx].out[0];
    }
    if (b->fused_add[conv] >= 0 &&
        (nx = sole_consumer(b, v, BP_OP_ADD)) == b->fused_add[conv]) {
        const bp_node *n = &g->nodes[nx];
        c.add = nx;
        c.add_other = n->in[0] == v ? n->in[1] : n->in[0];
        v = n->out[0];
    }
    double lo, hi;
    if (v >= 0 && b->nuse[v] == 1 && !b->is_out[v] &&
        act_of(b, &g->nodes[b->first_use[v]], &lo, &hi)) {
        c.act = b->first_use[v];
        v = g->nodes[c.act].out[0];
    }
    int nodes[5] = {c.conv, c.bias_add, c.bn, c.add, c.act};
    for (int k = 0; k < 5; k++)
        if (nodes[k] > c.last)
            c.last = nodes[k];
    return c;
}

static int chain_out_value(const build *b, const chain *c)
{
    int last = c->act >= 0 ? c->act : c->add >= 0 ? c->add
               : c->bn >= 0 ? c->bn : c->bias_add >= 0 ? c->bias_add : c->conv;
    return b->g->nodes[last].out[0];
}

static int emit_chain(build *b, int conv)
{
    const bp_graph *g = b->g;
    const chain *c = &b->chains[conv];
    const bp_node *n = &g->nodes[conv];
    int st, x, res = -1, out, op;
    if ((st = tensor_of(b, conv, n->in[0], &x)))
        return st;
    if (c->add >= 0 && (st = tensor_of(b, c->add, c->add_other, &res)))
        return st;
    int yv = chain_out_value(b, c);
    double lo = -INFINITY, hi = INFINITY;
    int has_act = c->act >= 0 && act_of(b, &g->nodes[c->act], &lo, &hi);
    /* a graph output straight from the accumulators (int32, dequantized
     * per channel), unless a Clip bounds it: its bounds would differ per
     * channel there, so it goes through codes like any other tensor (a
     * ReLU's bound, 0, is the same in every channel) */
    int plain = !has_act || (lo == 0 && hi == INFINITY) ||
                (lo == -INFINITY && hi == INFINITY);
    int out_mode = c->add < 0 && b->is_out[yv] && b->nuse[yv] == 0 && plain;
    bp_qtype type = out_mode ? BP_QT_I32 : has_act && lo >= 0 ? BP_QT_U8
                                                              : BP_QT_I8;
    if ((st = new_tensor(b, yv, type, -1, &out)))
        return st == BP_EUNSUPPORTED
                   ? unsupported(b, c->last, "output of unsupported rank", NULL)
                   : st;
    if ((st = new_op(b, BP_QOP_LAYER, c->last, x, res, out, &op)))
        return st;
    b->oi[op].ch = *c;
    b->oi[op].has_act = has_act;
    b->oi[op].act_lo = lo;
    b->oi[op].act_hi = hi;
    b->qm->ops[op].layer = b->layer_of_node[conv];
    b->qm->value_tensor[yv] = out;
    return BP_OK;
}

/* ---- the walk ------------------------------------------------------------- */

static int emit_node(build *b, int i)
{
    bp_graph *g = b->g;
    const bp_node *n = &g->nodes[i];
    bp_qmodel *qm = b->qm;
    int st, x, x2, out, op;
    int yv = n->out[0];
    switch (n->op) {
    case BP_OP_ADD:
        if (n->n_in != 2)
            return unsupported(b, i, "expected two inputs", NULL);
        if ((st = tensor_of(b, i, n->in[0], &x)) ||
            (st = tensor_of(b, i, n->in[1], &x2)))
            return st;
        if (!same_dims(&g->values[n->in[0]], &g->values[yv]) ||
            !same_dims(&g->values[n->in[1]], &g->values[yv]))
            return unsupported(b, i, "broadcasting Add; the integer executor "
                               "adds tensors of equal shape", NULL);
        if ((st = new_tensor(b, yv, BP_QT_I8, -1, &out)) ||
            (st = new_op(b, BP_QOP_ADD, i, x, x2, out, NULL)))
            return st;
        qm->value_tensor[yv] = out;
        return BP_OK;
    case BP_OP_RELU: case BP_OP_CLIP: {
        double lo, hi;
        act_of(b, n, &lo, &hi);
        if ((st = tensor_of(b, i, n->in[0], &x)))
            return st;
        int p = b->ti[x].producer;
        int xv = n->in[0];
        if (p >= 0 && qm->t[x].root == x && !b->oi[p].has_act &&
            (qm->ops[p].kind == BP_QOP_ADD || qm->ops[p].kind == BP_QOP_AVGPOOL ||
             (qm->ops[p].kind == BP_QOP_LAYER && qm->t[x].type != BP_QT_I32)) &&
            b->nuse[xv] == 1 && !b->is_out[xv]) {
            /* fuse into the producer: its output becomes this op's */
            b->oi[p].has_act = 1;
            b->oi[p].act_lo = lo;
            b->oi[p].act_hi = hi;
            if (lo >= 0 && qm->t[x].type == BP_QT_I8)
                qm->t[x].type = BP_QT_U8;
            qm->t[x].value = yv;
            qm->value_tensor[yv] = x;
            return BP_OK;
        }
        if (qm->t[x].type == BP_QT_I32)
            return unsupported(b, i, "applies to a layer's int32 output", NULL);
        if ((st = new_tensor(b, yv, qm->t[x].type, x, &out)) ||
            (st = new_op(b, BP_QOP_RELU, i, x, -1, out, &op)))
            return st;
        b->oi[op].has_act = 1;
        b->oi[op].act_lo = lo;
        b->oi[op].act_hi = hi;
        qm->value_tensor[yv] = out;
        return BP_OK;
    }
    case BP_OP_MAXPOOL: case BP_OP_AVERAGEPOOL: case BP_OP_GLOBALAVERAGEPOOL: {
        if ((st = tensor_of(b, i, n->in[0], &x)))
            return st;
        if (qm->t[x].type == BP_QT_I32)
            return unsupported(b, i, "pools a layer's int32 output", NULL);
        if (n->n_out > 1 && n->out[1] >= 0 && b->nuse[n->out[1]])
            return unsupported(b, i, "the Indices output is not supported", NULL);
        bp_pool_geom geo;
        const bp_value *xv = &g->values[n->in[0]];
        if (n->op == BP_OP_GLOBALAVERAGEPOOL) {
            memset(&geo, 0, sizeof geo);
            geo.c = xv->dims[1];
            geo.h = xv->rank == 4 ? xv->dims[2] : 1;
            geo.w = xv->dims[xv->rank - 1];
            geo.kh = geo.h;
            geo.kw = geo.w;
            geo.oh = geo.ow = 1;
            geo.stride_h = geo.stride_w = geo.dil_h = geo.dil_w = 1;
            if (xv->rank != 3 && xv->rank != 4)
                return unsupported(b, i, "expected a rank-3 or rank-4 input",
                                   NULL);
        } else if ((st = bp_pool_geom_of(g, n, &geo))) {
            return st;
        }
        geo.n = 1;
        bp_qop_kind kind = n->op == BP_OP_MAXPOOL ? BP_QOP_MAXPOOL
                                                  : BP_QOP_AVGPOOL;
        if ((st = new_tensor(b, yv, qm->t[x].type,
                             kind == BP_QOP_MAXPOOL ? x : -1, &out)) ||
            (st = new_op(b, kind, i, x, -1, out, &op)))
            return st;
        qm->ops[op].pool = geo;
        qm->value_tensor[yv] = out;
        return BP_OK;
    }
    case BP_OP_FLATTEN: case BP_OP_RESHAPE: case BP_OP_SQUEEZE:
    case BP_OP_UNSQUEEZE: case BP_OP_IDENTITY: case BP_OP_DROPOUT: {
        if ((st = tensor_of(b, i, n->in[0], &x)))
            return st;
        const bp_value *xv = &g->values[n->in[0]], *y = &g->values[yv];
        const bp_qtensor *t = &qm->t[x];
        int64_t h, w, c;
        if (storage_of(y, &h, &w, &c))
            return unsupported(b, i, "output of unsupported rank", NULL);
        int alias = same_dims(xv, y) ||
                    (t->h * t->w == 1 && h * w == 1 && c == t->c);
        if (alias) {
            qm->value_tensor[yv] = x;
            return BP_OK;
        }
        if (y->rank == 2 && c == t->h * t->w * t->c && t->type != BP_QT_I32) {
            if ((st = new_tensor(b, yv, t->type, x, &out)) ||
                (st = new_op(b, BP_QOP_FLATTEN, i, x, -1, out, NULL)))
                return st;
            qm->value_tensor[yv] = out;
            return BP_OK;
        }
        return unsupported(b, i, "a reshape the integer executor cannot do "
                           "(it flattens to (N, features) or keeps the shape)",
                           NULL);
    }
    case BP_OP_CONV: case BP_OP_GEMM: case BP_OP_MATMUL:
        return unsupported(b, i, "its weight is not a constant", NULL);
    case BP_OP_BATCHNORM:
        return unsupported(b, i, "a BatchNormalization that does not follow "
                           "a layer it can fold into", NULL);
    default:
        return unsupported(b, i, "the integer executor has no kernel for ",
                           bp_op_name(n->op));
    }
}

static int walk(build *b)
{
    bp_graph *g = b->g;
    bp_qmodel *qm = b->qm;
    int st, t;
    for (int k = 0; k < g->n_inputs; k++) {
        int v = g->inputs[k];
        if (!b->nuse[v] && !b->is_out[v])
            continue;
        /* without calibration (bp_qmodel_ops) the type is moot */
        const bp_act_hist *h = b->calib ? bp_qcalib_hist(b->calib, v) : NULL;
        bp_qtype type = h && h->count && h->min >= 0 ? BP_QT_U8 : BP_QT_I8;
        if ((st = new_tensor(b, v, type, -1, &t)))
            return st == BP_EUNSUPPORTED
                       ? bp_fail(st, "%s: input '%s' has rank %d; the integer "
                                 "executor takes rank 2 to 4", g->path,
                                 g->values[v].name, g->values[v].rank)
                       : st;
        int op;
        if ((st = new_op(b, BP_QOP_QUANTIZE, -1, -1, -1, t, &op)))
            return st;
        qm->ops[op].io = k;
        b->ti[t].is_quant_in = 1;
        qm->value_tensor[v] = t;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const bp_node *n = &g->nodes[i];
        if (node_static(g, n))
            continue;
        if (b->claimed[i]) {
            if (b->pending[i] >= 0 && (st = emit_chain(b, b->pending[i])))
                return st;
            continue;
        }
        if (b->layer_of_node[i] >= 0) {
            chain c = make_chain(b, i);
            b->chains[i] = c;
            int nodes[4] = {c.bias_add, c.bn, c.add, c.act};
            for (int k = 0; k < 4; k++)
                if (nodes[k] >= 0)
                    b->claimed[nodes[k]] = 1;
            if (c.last == i) {
                if ((st = emit_chain(b, i)))
                    return st;
            } else {
                b->pending[c.last] = i;
            }
            continue;
        }
        if ((st = emit_node(b, i)))
            return st;
    }
    for (int k = 0; k < g->n_outputs; k++) {
        int v = g->outputs[k];
        t = qm->value_tensor[v];
        if (t < 0)
            return bp_fail(BP_EUNSUPPORTED, "%s: output '%s' is not computed by "
                           "the integer executor", g->path, g->values[v].name);
        int op;
        if ((st = new_op(b, BP_QOP_DEQUANT, -1, t, -1, -1, &op)))
            return st;
        qm->ops[op].io = k;
    }
    return BP_OK;
}

/* ---- bits, requant copies, scales ----------------------------------------- */

static int assign_bits(build *b)
{
    bp_qmodel *qm = b->qm;
    int st;
    int *want = calloc((size_t)qm->n_tensors + 1, sizeof *want);
    if (!want)
        return BP_ENOMEM;
    for (int i = 0; i < qm->n_ops; i++) {
        const bp_qop *o = &qm->ops[i];
        if (o->kind != BP_QOP_LAYER)
            continue;
        int r = qm->t[o->in].root, a = qm->layers[o->layer].a_bits;
        want[r] = a > want[r] ? a : want[r];
    }
    for (int t = 0; t < qm->n_tensors; t++) {
        bp_qtensor *q = &qm->t[t];
        q->bits = q->type == BP_QT_I32 ? 32 : want[q->root] ? want[q->root] : 8;
    }
    free(want);
    /* layers that asked for fewer bits than their input has read a copy */
    int n_old = qm->n_ops;
    bp_qop *old = qm->ops;
    oinfo *old_oi = b->oi;
    qm->ops = NULL;
    b->oi = NULL;
    qm->n_ops = 0;
    b->cap_o = 0;
    int (*made)[3] = calloc((size_t)n_old + 1, sizeof *made); /* src,bits,t */
    int n_made = 0;
    st = made ? BP_OK : BP_ENOMEM;
    for (int i = 0; !st && i < n_old; i++) {
        bp_qop o = old[i];
        if (o.kind == BP_QOP_LAYER) {
            int a = qm->layers[o.layer].a_bits;
            if (a < qm->t[o.in].bits) {
                int found = -1;
                for (int k = 0; k < n_made; k++)
                    if (made[k][0] == o.in && made[k][1] == a)
                        found = made[k][2];
                if (found < 0) {
                    const bp_qtensor src = qm->t[o.in];
                    int nt;
                    if ((st = new_tensor(b, qm->t[src.root].value, src.type, -1,
                                         &nt)))
                        break;
                    bp_qtensor *q = &qm->t[nt];
                    q->h = src.h;
                    q->w = src.w;
                    q->c = src.c;
                    q->bits = a;
                    if ((st = new_op(b, BP_QOP_REQUANT, o.node, o.in, -1, nt,
                                     NULL)))
                        break;
                    made[n_made][0] = o.in;
                    made[n_made][1] = a;
                    made[n_made][2] = nt;
                    n_made++;
                    found = nt;
                }
                o.in = found;
            }
        }
        int idx;
        if ((st = new_op(b, o.kind, o.node, o.in, o.in2, o.out, &idx)))
            break;
        qm->ops[idx] = o;
        b->oi[idx] = old_oi[i];
    }
    free(made);
    free(old);
    free(old_oi);
    return st;
}

static int32_t q_bound(double v, double scale, int32_t lo, int32_t hi)
{
    if (v == INFINITY)
        return hi;
    if (v == -INFINITY)
        return lo;
    return bp_act_quantize((float)v, scale, lo, hi);
}

static int assign_scales(build *b)
{
    bp_qmodel *qm = b->qm;
    const bp_graph *g = b->g;
    for (int t = 0; t < qm->n_tensors; t++) {
        bp_qtensor *q = &qm->t[t];
        if (q->type == BP_QT_I32) {
            q->scale = 0;
            q->lo = INT32_MIN;
            q->hi = INT32_MAX;
            int p = b->ti[t].producer;
            if (p >= 0 && b->oi[p].has_act && b->oi[p].act_lo >= 0)
                q->lo = 0;
            continue;
        }
        int is_signed = q->type == BP_QT_I8;
        if (q->root == t) {
            const bp_act_hist *h = bp_qcalib_hist(b->calib, q->value);
            if (!h)
                return bp_fail(BP_EINTERNAL, "%s: no calibration statistics "
                               "for '%s'", g->path, g->values[q->value].name);
            double clip = bp_act_clip(h, qm->method, q->bits, is_signed,
                                      qm->percentile);
            q->scale = bp_act_scale(clip, q->bits, is_signed);
            if (b->ti[t].is_quant_in) /* held as float32 by the model */
                q->scale = (double)(float)q->scale;
            bp_act_range(q->bits, is_signed, &q->lo, &q->hi);
        } else {
            const bp_qtensor *s = &qm->t[b->ti[t].src];
            q->scale = s->scale;
            q->bits = s->bits;
            q->lo = s->lo;
            q->hi = s->hi;
        }
        int p = b->ti[t].producer;
        if (p >= 0 && b->oi[p].has_act) {
            int32_t lo = q_bound(b->oi[p].act_lo, q->scale, q->lo, q->hi);
            int32_t hi = q_bound(b->oi[p].act_hi, q->scale, q->lo, q->hi);
            q->lo = lo > q->lo ? lo : q->lo;
            q->hi = hi < q->hi ? hi : q->hi;
        }
    }
    return BP_OK;
}

/* ---- integer parameters --------------------------------------------------- */

static int dyadic(build *b, int node, double r, int32_t *m, int *s)
{
    if (bp_dyadic_from(r, m, s)) {
        if (node < 0)
            return bp_fail(BP_EUNSUPPORTED, "%s: a rescale ratio of %g is "
                           "outside the dyadic range", b->g->path, r);
        const bp_node *n = &b->g->nodes[node];
        return bp_fail(BP_EUNSUPPORTED, "%s: node '%s' (%s): rescale ratio %g "
                       "outside the dyadic range [0, 2^31)", b->g->path,
                       n->name, bp_op_name(n->op), r);
    }
    return BP_OK;
}

static double cval(const bp_graph *g, int v, int64_t i)
{
    return bp_tensor_get(g->values[v].data, i);
}

static int build_layer(build *b, int opi)
{
    bp_graph *g = b->g;
    bp_qmodel *qm = b->qm;
    bp_qop *o = &qm->ops[opi];
    bp_qlayer *L = &qm->layers[o->layer];
    const bp_layer *l = &b->gl[L->index];
    const chain *c = &b->oi[opi].ch;
    const bp_node *n = &g->nodes[l->node];
    const bp_qtensor *x = &qm->t[o->in], *y = &qm->t[o->out];
    int st = BP_OK;
    int64_t numel = l->numel, M = l->out_channels;
    int64_t outer, chs, inner;
    bp_layer_channel_view(g, l, &outer, &chs, &inner);

    /* geometry, NHWC, per sample */
    bp_conv_geom geo;
    memset(&geo, 0, sizeof geo);
    double alpha = 1, beta = 1;
    if (n->op == BP_OP_CONV) {
        if ((st = bp_conv_geom_of(g, n, &geo)))
            return st;
    } else {
        const bp_value *xv = &g->values[n->in[0]];
        if (xv->rank != 2)
            return unsupported(b, l->node, "expected a 2-D input (N, features)",
                               NULL);
        if (n->op == BP_OP_GEMM) {
            if (bp_node_attr_int(n, "transA", 0))
                return unsupported(b, l->node, "transA=1 is not supported", NULL);
            alpha = bp_node_attr_float(n, "alpha", 1.0);
            beta = bp_node_attr_float(n, "beta", 1.0);
        }
        geo.c = xv->dims[1];
        geo.h = geo.w = geo.oh = geo.ow = 1;
        geo.m = M;
        geo.kh = geo.kw = 1;
        geo.group = 1;
        geo.stride_h = geo.stride_w = geo.dil_h = geo.dil_w = 1;
    }
    geo.n = 1;
    if (n->n_in > 2 && n->in[2] >= 0 && l->bias < 0)
        return unsupported(b, l->node, "its bias is not a constant", NULL);
    if (geo.c != x->c || geo.h != x->h || geo.w != x->w)
        return unsupported(b, l->node, "input shape does not match the weight",
                           NULL);
    const int64_t G = geo.group, Mg = M / G, Cg = geo.c / G;
    const int64_t K = numel / M;
    if (K > ((int64_t)1 << 30) / (255 * 127))
        return unsupported(b, l->node, "rows too long for exact int32 "
                           "accumulation", NULL);

    float *w = malloc((size_t)numel * sizeof *w);
    double *ws = malloc((size_t)M * sizeof *ws);
    int32_t *codes = malloc((size_t)numel * sizeof *codes);
    int8_t *blocked = malloc((size_t)numel);
    double *fb = calloc((size_t)M, sizeof *fb);
    double *sw = malloc((size_t)M * sizeof *sw);
    L->bias = malloc((size_t)M * sizeof *L->bias);
    L->bias_x = malloc((size_t)M * sizeof *L->bias_x);
    L->rq = malloc((size_t)M * sizeof *L->rq);
    L->acc_scale = malloc((size_t)M * sizeof *L->acc_scale);
    L->wpack_bytes = BP_QPACK_BYTES(numel, L->w_bits);
    L->wpack = malloc((size_t)L->wpack_bytes + 1);
    if (!w || !ws || !codes || !blocked || !fb || !sw || !L->bias ||
        !L->bias_x || !L->rq || !L->acc_scale || !L->wpack) {
        st = BP_ENOMEM;
        goto out;
    }
    const bp_tensor *wt = g->values[l->weight].data;
    for (int64_t i = 0; i < numel; i++)
        w[i] = (float)bp_tensor_get(wt, i);
    if ((st = bp_quant_scales(ws, w, outer, chs, inner, L->w_bits)))
        goto out;
    bp_quant_codes(codes, w, ws, outer, chs, inner, L->w_bits);

    /* float bias and the per-channel factor folded into the weight scale */
    for (int64_t ch = 0; ch < M; ch++) {
        double bias = 0;
        if (l->bias >= 0) {
            const bp_tensor *bt = g->values[l->bias].data;
            int64_t bn = bp_tensor_numel(bt);
            if (bn != M && bn != 1) {
                st = unsupported(b, l->node, "a bias that is not per channel",
                                 NULL);
                goto out;
            }
            bias = bp_tensor_get(bt, bn == 1 ? 0 : ch) * beta;
        }
        if (c->bias_add >= 0) {
            const bp_node *an = &g->nodes[c->bias_add];
            int v = g->values[an->in[0]].data ? an->in[0] : an->in[1];
            bias += cval(g, v, ch);
        }
        double f = alpha;
        if (c->bn >= 0) {
            const bp_node *bn = &g->nodes[c->bn];
            double eps = bp_node_attr_float(bn, "epsilon", 1e-5);
            double gam = cval(g, bn->in[1], ch), bet = cval(g, bn->in[2], ch);
            double mu = cval(g, bn->in[3], ch), var = cval(g, bn->in[4], ch);
            double a = gam / sqrt(var + eps);
            bias = (bias - mu) * a + bet;
            f *= a;
        }
        fb[ch] = bias;
        sw[ch] = ws[ch] * f;
    }

    /* codes -> (group, Mg, K) rows in (ky, kx, c) order, blocked; a negative
     * folded scale flips the channel's codes */
    int conv = n->op == BP_OP_CONV;
    int transb = n->op == BP_OP_GEMM && bp_node_attr_int(n, "transB", 0);
    for (int64_t m = 0; m < M; m++) {
        int flip = sw[m] < 0 ? -1 : 1;
        int zero = sw[m] == 0;
        int64_t gi = m / Mg, r = m % Mg, sum = 0;
        for (int64_t kk = 0; kk < K; kk++) {
            int64_t src;
            if (conv) {
                int64_t ci = kk % Cg, tap = kk / Cg;
                int64_t ky = tap / geo.kw, kx = tap % geo.kw;
                src = ((m * Cg + ci) * geo.kh + ky) * geo.kw + kx;
            } else if (transb) {
                src = m * K + kk;
            } else {
                src = kk * M + m;
            }
            int32_t q = zero ? 0 : flip * codes[src];
            sum += q;
            blocked[gi * Mg * K + bp_qw_index(Mg, K, r, kk)] = (int8_t)q;
        }
        double sa = x->scale * fabs(sw[m]);
        if (zero)
            sa = x->scale * ws[m];
        L->acc_scale[m] = sa;
        double bi = round(fb[m] / sa);
        if (!(fabs(bi) < BP_QRES_SAT)) {
            bi = bi > 0 ? (double)BP_QRES_SAT : -(double)BP_QRES_SAT;
            L->bias_saturated++;
        }
        L->bias[m] = (int32_t)bi;
        L->bias_x[m] = (int32_t)(L->bias[m] - 128 * sum);
        double ratio = y->type == BP_QT_I32 ? sa
                       : sa / y->scale * (o->in2 >= 0 ? ldexp(1, BP_QRES_FRAC) : 1);
        if (bp_dyadic24_from(ratio, &L->rq[m])) {
            st = unsupported(b, o->node, "a rescale ratio outside the dyadic "
                             "range [0, 2^24)", NULL);
            goto out;
        }
    }
    bp_qpack(L->wpack, blocked, numel, L->w_bits);
    L->wpack[L->wpack_bytes] = 0;

    if (o->in2 >= 0) {
        const bp_qtensor *r = &qm->t[o->in2];
        if (r->type == BP_QT_I32) {
            st = unsupported(b, o->node, "adds a layer's int32 output", NULL);
            goto out;
        }
        if ((st = dyadic(b, o->node, r->scale / y->scale * ldexp(1, BP_QRES_FRAC),
                         &o->m2, &o->s2)))
            goto out;
        o->frac = BP_QRES_FRAC;
    }
    o->lo = y->lo;
    o->hi = y->hi;
    L->numel = numel;
    L->m = M;
    L->group = G;
    L->macs = l->macs;
    bp_qk_layer *k = &L->k;
    memset(k, 0, sizeof *k);
    k->geo = geo;
    k->geo.m = M;
    k->mg = Mg;
    k->cg = Cg;
    k->k = K;
    k->kp = (K + 3) / 4 * 4;
    k->in_signed = x->type == BP_QT_I8;
    k->w = L->w_bits == 8 ? (const int8_t *)L->wpack : NULL;
    k->wpack = L->wpack;
    k->w_bits = L->w_bits;
    k->bias = L->bias;
    k->bias_x = L->bias_x;
    k->rq = L->rq;
    k->lo = y->lo;
    k->hi = y->hi;
    k->out_type = y->type;
    k->residual = o->in2 >= 0;
    if (k->residual) {
        k->res_type = qm->t[o->in2].type;
        k->rm = o->m2;
        k->rs = o->s2;
        k->frac = o->frac;
    }
out:
    free(w);
    free(ws);
    free(codes);
    free(blocked);
    free(fb);
    free(sw);
    return st;
}

/* The bytes of scales and dyadic numbers op o keeps (the per-graph part of
 * the size accounting in qgraph.h).  Geometry and tensor types only, so
 * bp_qmodel_ops reports the same figure before any calibration. */
static int64_t op_const_bytes(const bp_qmodel *qm, const bp_qop *o)
{
    switch (o->kind) {
    case BP_QOP_QUANTIZE: return 4;
    case BP_QOP_LAYER: return o->in2 >= 0 ? 5 : 0;
    case BP_QOP_ADD: return 10;
    case BP_QOP_REQUANT: return 5;
    case BP_QOP_DEQUANT: return qm->t[o->in].type == BP_QT_I32 ? 0 : 4;
    case BP_QOP_AVGPOOL: {
        /* one multiplier per distinct window count */
        const bp_pool_geom *pg = &o->pool;
        int64_t taps = pg->kh * pg->kw, n = 0;
        unsigned char *seen = calloc((size_t)taps + 1, 1);
        if (!seen)
            return -1;
        for (int64_t oy = 0; oy < pg->oh; oy++)
            for (int64_t ox = 0; ox < pg->ow; ox++) {
                int64_t cnt = bp_qk_pool_count(pg, oy, ox);
                if (cnt >= 1 && cnt <= taps && !seen[cnt]) {
                    seen[cnt] = 1;
                    n++;
                }
            }
        free(seen);
        return 5 * n;
    }
    default: return 0;
    }
}

static int build_params(build *b)
{
    bp_qmodel *qm = b->qm;
    int st;
    const double F = ldexp(1, BP_QRES_FRAC);
    for (int i = 0; i < qm->n_ops; i++) {
        bp_qop *o = &qm->ops[i];
        const bp_qtensor *y = o->out >= 0 ? &qm->t[o->out] : NULL;
        const bp_qtensor *x = o->in >= 0 ? &qm->t[o->in] : NULL;
        switch (o->kind) {
        case BP_QOP_QUANTIZE:
            o->fscale = (float)y->scale;
            o->lo = y->lo;
            o->hi = y->hi;
            break;
        case BP_QOP_LAYER:
            if ((st = build_layer(b, i)))
                return st;
            qm->layer_bytes += bp_qsize_layer(qm->layers[o->layer].numel,
                                              qm->layers[o->layer].m,
                                              qm->layers[o->layer].w_bits);
            break;
        case BP_QOP_ADD: {
            const bp_qtensor *x2 = &qm->t[o->in2];
            if ((st = dyadic(b, o->node, x->scale / y->scale * F, &o->m1, &o->s1)) ||
                (st = dyadic(b, o->node, x2->scale / y->scale * F, &o->m2, &o->s2)))
                return st;
            o->frac = BP_QRES_FRAC;
            o->lo = y->lo;
            o->hi = y->hi;
            break;
        }
        case BP_QOP_REQUANT:
            if ((st = dyadic(b, o->node, x->scale / y->scale, &o->m1, &o->s1)))
                return st;
            o->lo = y->lo;
            o->hi = y->hi;
            break;
        case BP_QOP_AVGPOOL: {
            bp_pool_geom *pg = &o->pool;
            int64_t taps = pg->kh * pg->kw;
            o->pm = calloc((size_t)taps + 1, sizeof *o->pm);
            o->ps = calloc((size_t)taps + 1, 1);
            if (!o->pm || !o->ps)
                return BP_ENOMEM;
            for (int64_t oy = 0; oy < pg->oh; oy++)
                for (int64_t ox = 0; ox < pg->ow; ox++) {
                    int64_t cnt = bp_qk_pool_count(pg, oy, ox);
                    if (cnt < 1 || cnt > taps || o->pm[cnt])
                        continue;
                    int s;
                    if ((st = dyadic(b, o->node,
                                     x->scale / ((double)cnt * y->scale),
                                     &o->pm[cnt], &s)))
                        return st;
                    o->ps[cnt] = (int8_t)s;
                    if (!o->pm[cnt]) /* a zero multiplier: mark as seen */
                        o->ps[cnt] = 0;
                    o->n_counts++;
                }
            o->lo = y->lo;
            o->hi = y->hi;
            break;
        }
        case BP_QOP_MAXPOOL: case BP_QOP_RELU: case BP_QOP_FLATTEN:
            o->lo = y->lo;
            o->hi = y->hi;
            break;
        case BP_QOP_DEQUANT:
            if (x->type == BP_QT_I32)
                o->layer = qm->ops[b->ti[o->in].producer].layer;
            else
                o->fscale = (float)x->scale;
            break;
        default:
            break;
        }
        int64_t cb = op_const_bytes(qm, o);
        if (cb < 0)
            return BP_ENOMEM;
        qm->overhead_bytes += cb;
    }
    qm->size_bytes = qm->layer_bytes + qm->overhead_bytes;
    return BP_OK;
}

/* ---- plan checks ----------------------------------------------------------- */

static int check_plan(build *b)
{
    const bp_plan *p = b->plan;
    const char *pn = b->o && b->o->plan_name ? b->o->plan_name : "plan";
    bp_graph *g = b->g;
    if (!p->model_sha256 || !*p->model_sha256)
        return bp_fail(BP_EINVAL, "%s: model.sha256 missing; expected the "
                       "SHA-256 of the model the plan was made for", pn);
    if (strcmp(p->model_sha256, g->hash) != 0)
        return bp_fail(BP_EINVAL, "%s: made for the model with sha256 %.16s..., "
                       "but %s has sha256 %.16s...; a plan applies only to its "
                       "own model", pn, p->model_sha256, g->path, g->hash);
    for (int i = 0; i < b->ngl; i++)
        b->plan_of_layer[i] = -1;
    for (int j = 0; j < p->n_layers; j++) {
        const bp_plan_layer *pl = &p->layers[j];
        int found = -1;
        for (int i = 0; i < b->ngl && found < 0; i++)
            if (pl->name && strcmp(pl->name, b->gl[i].name) == 0)
                found = i;
        if (found < 0)
            return bp_fail(BP_EINVAL, "%s: layers[%d] names '%s', which is not a "
                           "quantizable layer of %s", pn, j,
                           pl->name ? pl->name : "", g->path);
        if (b->plan_of_layer[found] >= 0)
            return bp_fail(BP_EINVAL, "%s: layers[%d]: layer '%s' appears twice",
                           pn, j, pl->name);
        b->plan_of_layer[found] = j;
        if (pl->w_bits < BP_QW_MIN_BITS || pl->w_bits > BP_QW_MAX_BITS)
            return bp_fail(BP_EUNSUPPORTED, "%s: layer '%s': w_bits %d; the "
                           "integer executor runs weights of %d to %d bits", pn,
                           pl->name, pl->w_bits, BP_QW_MIN_BITS, BP_QW_MAX_BITS);
        if (pl->a_bits < BP_ACT_MIN_BITS || pl->a_bits > BP_ACT_MAX_BITS)
            return bp_fail(BP_EUNSUPPORTED, "%s: layer '%s': a_bits %d; the "
                           "integer executor runs activations of %d to %d bits",
                           pn, pl->name, pl->a_bits, BP_ACT_MIN_BITS,
                           BP_ACT_MAX_BITS);
    }
    for (int i = 0; i < b->ngl; i++)
        if (b->plan_of_layer[i] < 0)
            return bp_fail(BP_EINVAL, "%s: no entry for layer '%s' of %s; a plan "
                           "gives bits for every layer", pn, b->gl[i].name,
                           g->path);
    return BP_OK;
}

/* ---- entry ----------------------------------------------------------------- */

int bp_qplan_check(bp_graph *g, const bp_plan *plan, const char *plan_name)
{
    build b;
    bp_qopts o;
    bp_qopts_init(&o);
    if (plan_name)
        o.plan_name = plan_name;
    memset(&b, 0, sizeof b);
    b.g = g;
    b.plan = plan;
    b.o = &o;
    int st = bp_graph_layers(g, &b.gl, &b.ngl);
    if (st)
        return st;
    b.plan_of_layer = malloc(((size_t)b.ngl + 1) * sizeof *b.plan_of_layer);
    st = b.plan_of_layer ? check_plan(&b) : BP_ENOMEM;
    free(b.plan_of_layer);
    free(b.gl);
    return st;
}

void bp_qmodel_free(bp_qmodel **qp)
{
    if (!qp || !*qp)
        return;
    bp_qmodel *qm = *qp;
    for (int i = 0; qm->layers && i < qm->n_layers; i++) {
        bp_qlayer *L = &qm->layers[i];
        free(L->wpack);
        free(L->bias);
        free(L->bias_x);
        free(L->rq);
        free(L->acc_scale);
    }
    for (int i = 0; qm->ops && i < qm->n_ops; i++) {
        free(qm->ops[i].pm);
        free(qm->ops[i].ps);
    }
    free(qm->layers);
    free(qm->ops);
    free(qm->t);
    free(qm->value_tensor);
    free(qm);
    *qp = NULL;
}

double bp_qmodel_bops(const bp_qmodel *qm)
{
    double s = 0;
    for (int i = 0; i < qm->n_layers; i++)
        s += (double)qm->layers[i].macs * qm->layers[i].w_bits *
             qm->layers[i].a_bits;
    return s;
}

/* The walk's tables for g (inferred at batch 1); plan may be NULL (no layer
 * bits: bp_qmodel_ops). */
static int build_init(build *b, bp_graph *g, const bp_plan *plan)
{
    int st;
    bp_qmodel *qm = b->qm;
    qm->g = g;
    if ((st = bp_graph_layers(g, &b->gl, &b->ngl)))
        return st;
    size_t nn = (size_t)g->n_nodes + 1, nv = (size_t)g->n_values + 1;
    b->layer_of_node = malloc(nn * sizeof *b->layer_of_node);
    b->plan_of_layer = malloc(((size_t)b->ngl + 1) * sizeof *b->plan_of_layer);
    b->nuse = calloc(nv, sizeof *b->nuse);
    b->first_use = malloc(nv * sizeof *b->first_use);
    b->is_out = calloc(nv, 1);
    b->fused_add = malloc(nn * sizeof *b->fused_add);
    b->claimed = calloc(nn, 1);
    b->pending = malloc(nn * sizeof *b->pending);
    b->chains = calloc(nn, sizeof *b->chains);
    qm->value_tensor = malloc(nv * sizeof *qm->value_tensor);
    qm->layers = calloc((size_t)b->ngl + 1, sizeof *qm->layers);
    if (!b->layer_of_node || !b->plan_of_layer || !b->nuse || !b->first_use ||
        !b->is_out || !b->fused_add || !b->claimed || !b->pending || !b->chains ||
        !qm->value_tensor || !qm->layers)
        return BP_ENOMEM;
    if (plan && (st = check_plan(b)))
        return st;
    for (int i = 0; i < g->n_nodes; i++)
        b->layer_of_node[i] = b->fused_add[i] = b->pending[i] = -1;
    for (int i = 0; i < b->ngl; i++)
        b->layer_of_node[b->gl[i].node] = i;
    for (int v = 0; v < g->n_values; v++) {
        b->first_use[v] = -1;
        qm->value_tensor[v] = -1;
    }
    for (int k = 0; k < g->n_outputs; k++)
        b->is_out[g->outputs[k]] = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        const bp_node *n = &g->nodes[i];
        if (node_static(g, n))
            continue;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0)
                continue;
            if (b->first_use[v] < 0)
                b->first_use[v] = i;
            b->nuse[v]++;
        }
    }
    qm->n_layers = b->ngl;
    for (int i = 0; i < b->ngl; i++) {
        bp_qlayer *L = &qm->layers[i];
        L->index = i;
        L->name = b->gl[i].name;
        L->node = b->gl[i].node;
        if (plan) {
            const bp_plan_layer *pl = &plan->layers[b->plan_of_layer[i]];
            L->w_bits = pl->w_bits;
            L->a_bits = pl->a_bits;
        }
    }
    plan_adds(b);
    return BP_OK;
}

static void build_fini(build *b)
{
    free(b->gl);
    free(b->layer_of_node);
    free(b->plan_of_layer);
    free(b->nuse);
    free(b->first_use);
    free(b->is_out);
    free(b->fused_add);
    free(b->claimed);
    free(b->pending);
    free(b->chains);
    free(b->ti);
    free(b->oi);
}

int bp_qmodel_new(bp_qmodel **out, bp_graph *g, const bp_plan *plan,
                  const bp_qcalib *calib, const bp_qopts *opts)
{
    bp_qopts def;
    if (!opts) {
        bp_qopts_init(&def);
        opts = &def;
    }
    int st;
    if ((st = bp_graph_infer(g, 1)))
        return st;
    build b;
    memset(&b, 0, sizeof b);
    b.g = g;
    b.plan = plan;
    b.calib = calib;
    b.o = opts;
    b.qm = calloc(1, sizeof *b.qm);
    if (!b.qm)
        return BP_ENOMEM;
    bp_qmodel *qm = b.qm;
    qm->method = opts->method;
    qm->percentile = opts->percentile > 0 ? opts->percentile
                                          : BP_CALIB_PERCENTILE_DEFAULT;
    if ((st = build_init(&b, g, plan)) || (st = walk(&b)) ||
        (st = assign_bits(&b)) || (st = assign_scales(&b)) ||
        (st = build_params(&b)))
        goto out;
out:
    build_fini(&b);
    if (st) {
        bp_qmodel_free(&b.qm);
        return st;
    }
    *out = qm;
    return BP_OK;
}

int bp_qmodel_skeleton(bp_qmodel **out, bp_graph *g)
{
    int st;
    if ((st = bp_graph_infer(g, 1)))
        return st;
    build b;
    bp_qopts o;
    bp_qopts_init(&o);
    memset(&b, 0, sizeof b);
    b.g = g;
    b.o = &o;
    b.qm = calloc(1, sizeof *b.qm);
    if (!b.qm)
        return BP_ENOMEM;
    st = build_init(&b, g, NULL);
    if (!st)
        st = walk(&b);
    build_fini(&b);
    if (st) {
        bp_qmodel_free(&b.qm);
        return st;
    }
    *out = b.qm;
    return BP_OK;
}

int bp_qmodel_ops(bp_graph *g, bp_qop_info **ops, int *n_ops)
{
    bp_qmodel *qm = NULL;
    int st = bp_qmodel_skeleton(&qm, g);
    if (st)
        return st;
    bp_qop_info *info = calloc((size_t)qm->n_ops + 1, sizeof *info);
    if (!info) {
        st = BP_ENOMEM;
        goto out;
    }
    for (int i = 0; i < qm->n_ops; i++) {
        const bp_qop *op = &qm->ops[i];
        const bp_qtensor *ti = op->in >= 0 ? &qm->t[op->in] : NULL;
        const bp_qtensor *to = op->out >= 0 ? &qm->t[op->out] : NULL;
        int64_t ne_in = ti ? ti->h * ti->w * ti->c : 0;
        int64_t ne_out = to ? to->h * to->w * to->c : 0;
        bp_qop_info *f = &info[i];
        f->kind = op->kind;
        f->layer = op->kind == BP_QOP_LAYER ? op->layer : -1;
        f->residual = op->kind == BP_QOP_LAYER && op->in2 >= 0;
        f->in_tensor = op->kind == BP_QOP_LAYER ? op->in : -1;
        f->in_root = op->kind == BP_QOP_LAYER ? qm->t[op->in].root : -1;
        switch (op->kind) {
        case BP_QOP_QUANTIZE: f->elements = ne_out; break;
        case BP_QOP_DEQUANT: f->elements = ne_in; ne_out = ne_in; break;
        case BP_QOP_MAXPOOL: case BP_QOP_AVGPOOL: f->elements = ne_in; break;
        default: f->elements = ne_out; break;
        }
        f->out_elements = ne_out;
        if ((f->const_bytes = op_const_bytes(qm, op)) < 0) {
            st = BP_ENOMEM;
            goto out;
        }
    }
    *ops = info;
    *n_ops = qm->n_ops;
    info = NULL;
out:
    free(info);
    bp_qmodel_free(&qm);
    return st;
}
