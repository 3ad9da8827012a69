/* shape.c - shape inference, constant folding and the static evaluator of
 * shape arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as
 * torch.onnx.export writes for x.view(x.size(0), -1)).
 *
 * Inference is concrete: bp_graph_infer(g, batch) computes every value's
 * dims for that batch size, so int64 shape values can be evaluated exactly
 * and Reshape targets are known before any executor runs. */
#include "shape.h"
#include "movement.h"
#include "status.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int node_fail(const bp_graph *g, const bp_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int node_fail(const bp_graph *g, const bp_node *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bp_fail(BP_EINVAL, "%s: node '%s' (%s): %s", g->path, n->name,
                   bp_op_name(n->op), msg);
}

const bp_tensor *bp_value_const(const bp_graph *g, int v)
{
    if (v < 0)
        return NULL;
    return g->values[v].data ? g->values[v].data : g->values[v].known;
}

/* Element i as int64: exact for integer tensors, clamped (never undefined)
 * for floats that a hostile file may set to anything. */
static int64_t get_i64(const bp_tensor *t, int64_t i)
{
    if (t->dtype == BP_I64)
        return ((const int64_t *)t->data)[i];
    double v = bp_tensor_get(t, i);
    if (!(v == v))
        return 0;
    if (v >= 9.2e18)
        return INT64_MAX;
    if (v <= -9.2e18)
        return INT64_MIN;
    return (int64_t)v;
}

static const bp_value *in_val(const bp_graph *g, const bp_node *n, int k)
{
    return k < n->n_in && n->in[k] >= 0 ? &g->values[n->in[k]] : NULL;
}

static int64_t norm_axis(int64_t axis, int rank)
{
    return axis < 0 ? axis + rank : axis;
}

static int64_t numel_of(int rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    return n;
}

/* Reads an int64 list from an optional constant input (opset >= 13 style) or
 * an attribute (older opsets). Returns the count, -1 when neither exists,
 * -2 when the input exists but is not constant. */
static int ints_in_or_attr(const bp_graph *g, const bp_node *n, int k,
                           const char *attr, int64_t *out, int max)
{
    if (k < n->n_in && n->in[k] >= 0) {
        const bp_tensor *t = bp_value_const(g, n->in[k]);
        if (!t)
            return -2;
        int64_t cnt = bp_tensor_numel(t);
        if (cnt > max)
            return -3;
        for (int64_t i = 0; i < cnt; i++)
            out[i] = get_i64(t, i);
        return (int)cnt;
    }
    int c = bp_node_attr_ints(n, attr, out, max);
    return c > max ? -3 : c;
}

void bp_broadcast_strides(const bp_value *v, int rank, const int64_t *dims,
                          int64_t *str)
{
    int64_t s = 1;
    int off = rank - v->rank;
    for (int d = rank - 1; d >= 0; d--) {
        int vd = d - off;
        if (vd < 0 || v->dims[vd] == 1) {
            str[d] = 0;
        } else {
            str[d] = s;
        }
        if (vd >= 0)
            s *= v->dims[vd];
        (void)dims;
    }
}

static int broadcast(const bp_graph *g, const bp_node *n, bp_value *y)
{
    int rank = 0;
    int64_t dims[BP_MAX_RANK];
    for (int k = 0; k < n->n_in; k++) {
        const bp_value *v = in_val(g, n, k);
        if (v && v->rank > rank)
            rank = v->rank;
    }
    for (int d = 0; d < rank; d++)
        dims[d] = 1;
    for (int k = 0; k < n->n_in; k++) {
        const bp_value *v = in_val(g, n, k);
        if (!v)
            continue;
        for (int d = 0; d < v->rank; d++) {
            int64_t *o = &dims[rank - v->rank + d];
            int64_t x = v->dims[d];
            if (*o == 1)
                *o = x;
            else if (x != 1 && x != *o)
                return node_fail(g, n, "shapes do not broadcast (axis %d: "
                                 "%lld vs %lld)", d, (long long)*o,
                                 (long long)x);
        }
    }
    y->rank = rank;
    memcpy(y->dims, dims, sizeof dims);
    return BP_OK;
}

/* --- geometry ---------------------------------------------------------------- */

/* Output length of a window along one axis, and the resolved pads. */
static int window_out(int64_t in, int64_t k, int64_t s, int64_t d,
                      int64_t *pb, int64_t *pe, const char *auto_pad,
                      int ceil_mode, int64_t *out)
{
    int64_t eff = (k - 1) * d + 1;
    if (s < 1 || d < 1 || k < 1)
        return -1;
    if (auto_pad && (strcmp(auto_pad, "SAME_UPPER") == 0 ||
                     strcmp(auto_pad, "SAME_LOWER") == 0)) {
        int64_t o = (in + s - 1) / s;
        int64_t total = (o - 1) * s + eff - in;
        if (total < 0)
            total = 0;
        if (strcmp(auto_pad, "SAME_UPPER") == 0) {
            *pb = total / 2;
            *pe = total - *pb;
        } else {
            *pe = total / 2;
            *pb = total - *pe;
        }
    } else if (auto_pad && strcmp(auto_pad, "VALID") == 0) {
        *pb = *pe = 0;
    }
    int64_t span = in + *pb + *pe - eff;
    if (span < 0)
        return -1;
    int64_t o = ceil_mode ? (span + s - 1) / s + 1 : span / s + 1;
    /* the last window must start inside the input or its leading pad */
    if (ceil_mode && (o - 1) * s >= in + *pb)
        o--;
    *out = o;
    return 0;
}

/* strides, dilations and pads of a Conv or pool node with sp spatial axes,
 * right-aligned into 2-D arrays (pads: top, left, bottom, right). */
static int window_attrs(const bp_graph *g, const bp_node *n, int sp,
                        int64_t *st, int64_t *dl, int64_t *pads)
{
    int64_t tmp[8];
    int c;
    if ((c = bp_node_attr_ints(n, "strides", tmp, 8)) >= 0) {
        if (c != sp)
            return node_fail(g, n, "strides has %d entries", c);
        memcpy(st + 2 - sp, tmp, (size_t)sp * sizeof *tmp);
    }
    if ((c = bp_node_attr_ints(n, "dilations", tmp, 8)) >= 0) {
        if (c != sp)
            return node_fail(g, n, "dilations has %d entries", c);
        memcpy(dl + 2 - sp, tmp, (size_t)sp * sizeof *tmp);
    }
    if ((c = bp_node_attr_ints(n, "pads", tmp, 8)) >= 0) {
        if (c != 2 * sp)
            return node_fail(g, n, "pads has %d entries", c);
        for (int i = 0; i < sp; i++) {
            pads[2 - sp + i] = tmp[i];
            pads[2 + 2 - sp + i] = tmp[sp + i];
        }
    }
    for (int i = 0; i < 4; i++)
        if (pads[i] < 0)
            return node_fail(g, n, "negative pads are not supported");
    return BP_OK;
}

static const char *attr_str(const bp_node *n, const char *name)
{
    const bp_attr *a = bp_node_attr(n, name);
    return a && a->type == BP_ATTR_STRING ? a->s : NULL;
}

int bp_conv_geom_of(const bp_graph *g, const bp_node *n, bp_conv_geom *geo)
{
    const bp_value *x = in_val(g, n, 0), *w = in_val(g, n, 1);
    if (!x || !w)
        return node_fail(g, n, "needs inputs X and W");
    if ((x->rank != 4 && x->rank != 3) || w->rank != x->rank)
        return node_fail(g, n, "expected 1-D or 2-D convolution (input rank "
                         "3 or 4, weight of the same rank); got ranks %d "
                         "and %d", x->rank, w->rank);
    int sp = x->rank - 2;
    int64_t ks[2] = {1, 1}, st[2] = {1, 1}, dl[2] = {1, 1}, pads[4] = {0};
    int64_t tmp[8];
    int c, st_;
    if ((st_ = window_attrs(g, n, sp, st, dl, pads)))
        return st_;
    ks[0] = sp == 2 ? w->dims[2] : 1;
    ks[1] = w->dims[x->rank - 1];
    if ((c = bp_node_attr_ints(n, "kernel_shape", tmp, 8)) >= 0) {
        if (c != sp || tmp[sp - 1] != ks[1] || (sp == 2 && tmp[0] != ks[0]))
            return node_fail(g, n, "kernel_shape disagrees with the weight");
    }
    int64_t group = bp_node_attr_int(n, "group", 1);
    int64_t cin = x->dims[1];
    if (group < 1 || cin % group || w->dims[0] % group ||
        w->dims[1] * group != cin)
        return node_fail(g, n, "input has %lld channels, weight expects "
                         "%lld x group %lld", (long long)cin,
                         (long long)w->dims[1], (long long)group);
    geo->n = x->dims[0];
    geo->c = cin;
    geo->h = sp == 2 ? x->dims[2] : 1;
    geo->w = x->dims[x->rank - 1];
    geo->m = w->dims[0];
    geo->kh = ks[0];
    geo->kw = ks[1];
    geo->group = group;
    geo->stride_h = st[0];
    geo->stride_w = st[1];
    geo->dil_h = dl[0];
    geo->dil_w = dl[1];
    const char *ap = attr_str(n, "auto_pad");
    if (ap && strcmp(ap, "NOTSET") == 0)
        ap = NULL;
    if (window_out(geo->h, ks[0], st[0], dl[0], &pads[0], &pads[2], ap, 0,
                   &geo->oh) ||
        window_out(geo->w, ks[1], st[1], dl[1], &pads[1], &pads[3], ap, 0,
                   &geo->ow))
        return node_fail(g, n, "kernel larger than the padded input");
    geo->pad_t = pads[0];
    geo->pad_l = pads[1];
    if (n->n_in > 2 && n->in[2] >= 0) {
        const bp_value *b = in_val(g, n, 2);
        if (b->rank != 1 || b->dims[0] != geo->m)
            return node_fail(g, n, "bias must have shape (%lld)",
                             (long long)geo->m);
    }
    return BP_OK;
}

int bp_pool_geom_of(const bp_graph *g, const bp_node *n, bp_pool_geom *geo)
{
    const bp_value *x = in_val(g, n, 0);
    if (!x || (x->rank != 4 && x->rank != 3))
        return node_fail(g, n, "expected an input of rank 3 or 4");
    int sp = x->rank - 2;
    int64_t ks[2] = {1, 1}, st[2] = {1, 1}, dl[2] = {1, 1}, pads[4] = {0};
    int64_t tmp[8];
    int st_, c = bp_node_attr_ints(n, "kernel_shape", tmp, 8);
    if (c != sp)
        return node_fail(g, n, "kernel_shape must have %d entries", sp);
    memcpy(ks + 2 - sp, tmp, (size_t)sp * sizeof *tmp);
    if ((st_ = window_attrs(g, n, sp, st, dl, pads)))
        return st_;
    int ceil_mode = (int)bp_node_attr_int(n, "ceil_mode", 0);
    geo->n = x->dims[0];
    geo->c = x->dims[1];
    geo->h = sp == 2 ? x->dims[2] : 1;
    geo->w = x->dims[x->rank - 1];
    geo->kh = ks[0];
    geo->kw = ks[1];
    geo->stride_h = st[0];
    geo->stride_w = st[1];
    geo->dil_h = dl[0];
    geo->dil_w = dl[1];
    geo->count_include_pad = (int)bp_node_attr_int(n, "count_include_pad", 0);
    const char *ap = attr_str(n, "auto_pad");
    if (ap && strcmp(ap, "NOTSET") == 0)
        ap = NULL;
    if (window_out(geo->h, ks[0], st[0], dl[0], &pads[0], &pads[2], ap,
                   ceil_mode, &geo->oh) ||
        window_out(geo->w, ks[1], st[1], dl[1], &pads[1], &pads[3], ap,
                   ceil_mode, &geo->ow))
        return node_fail(g, n, "window larger than the padded input");
    if (pads[0] >= ks[0] * dl[0] || pads[1] >= ks[1] * dl[1])
        return node_fail(g, n, "pads must be smaller than the window");
    /* the average-pool kernel counts padded taps as if the trailing pads
     * equalled the leading ones */
    if (n->op == BP_OP_AVERAGEPOOL && geo->count_include_pad &&
        (pads[2] != pads[0] || pads[3] != pads[1]))
        return bp_fail(BP_EUNSUPPORTED, "%s: node '%s' (AveragePool): "
                       "count_include_pad with asymmetric pads is not "
                       "supported", g->path, n->name);
    geo->pad_t = pads[0];
    geo->pad_l = pads[1];
    return BP_OK;
}

void bp_softmax_split(const bp_graph *g, const bp_node *n, int64_t *outer,
                      int64_t *len, int64_t *inner)
{
    const bp_value *x = in_val(g, n, 0);
    int64_t axis = norm_axis(bp_node_attr_int(n, "axis", g->opset >= 13 ? -1 : 1),
                             x->rank);
    *outer = numel_of((int)axis, x->dims);
    if (g->opset >= 13) {
        *len = x->dims[axis];
        *inner = numel_of(x->rank - (int)axis - 1, x->dims + axis + 1);
    } else {
        /* before opset 13 the input is coerced to 2-D at axis */
        *len = numel_of(x->rank - (int)axis, x->dims + axis);
        *inner = 1;
    }
}

void bp_clip_bounds(const bp_graph *g, const bp_node *n, double *lo, double *hi)
{
    *lo = -INFINITY;
    *hi = INFINITY;
    if (g->opset < 11) {
        *lo = bp_node_attr_float(n, "min", -INFINITY);
        *hi = bp_node_attr_float(n, "max", INFINITY);
        return;
    }
    const bp_tensor *t;
    if ((t = bp_value_const(g, n->n_in > 1 ? n->in[1] : -1)))
        *lo = bp_tensor_get(t, 0);
    if ((t = bp_value_const(g, n->n_in > 2 ? n->in[2] : -1)))
        *hi = bp_tensor_get(t, 0);
}

int bp_reduce_axes(const bp_graph *g, const bp_node *n, int *mask)
{
    const bp_value *x = in_val(g, n, 0);
    int64_t axes[BP_MAX_RANK];
    int c = ints_in_or_attr(g, n, 1, "axes", axes, BP_MAX_RANK);
    if (c == -2)
        return node_fail(g, n, "axes must be a constant");
    if (c == -3)
        return node_fail(g, n, "too many axes");
    for (int d = 0; d < x->rank; d++)
        mask[d] = c <= 0 && !(c == 0 && bp_node_attr_int(n, "noop_with_empty_axes", 0));
    for (int i = 0; i < c; i++) {
        int64_t a = norm_axis(axes[i], x->rank);
        if (a < 0 || a >= x->rank)
            return node_fail(g, n, "axis %lld out of range", (long long)axes[i]);
        mask[a] = 1;
    }
    return BP_OK;
}

int64_t bp_node_axis(const bp_graph *g, const bp_node *n)
{
    const bp_value *x = in_val(g, n, 0);
    int64_t def = n->op == BP_OP_FLATTEN ? 1 : 0;
    int rank = x->rank;
    if (n->op == BP_OP_FLATTEN)
        rank = x->rank; /* axis may equal rank */
    return norm_axis(bp_node_attr_int(n, "axis", def), rank);
}

void bp_transpose_perm(const bp_graph *g, const bp_node *n, int64_t *perm)
{
    const bp_value *x = in_val(g, n, 0);
    if (bp_node_attr_ints(n, "perm", perm, BP_MAX_RANK) != x->rank)
        for (int d = 0; d < x->rank; d++)
            perm[d] = x->rank - 1 - d;
}

int bp_slice_params(const bp_graph *g, const bp_node *n, int64_t *start,
                    int64_t *step, int64_t *len)
{
    const bp_value *x = in_val(g, n, 0);
    int64_t s[BP_MAX_RANK], e[BP_MAX_RANK], ax[BP_MAX_RANK], sp[BP_MAX_RANK];
    int cs, ce, ca, cp;
    if (g->opset < 10) {
        cs = bp_node_attr_ints(n, "starts", s, BP_MAX_RANK);
        ce = bp_node_attr_ints(n, "ends", e, BP_MAX_RANK);
        ca = bp_node_attr_ints(n, "axes", ax, BP_MAX_RANK);
        cp = -1;
    } else {
        cs = ints_in_or_attr(g, n, 1, "", s, BP_MAX_RANK);
        ce = ints_in_or_attr(g, n, 2, "", e, BP_MAX_RANK);
        ca = ints_in_or_attr(g, n, 3, "", ax, BP_MAX_RANK);
        cp = ints_in_or_attr(g, n, 4, "", sp, BP_MAX_RANK);
    }
    if (cs < 0 || ce != cs || (ca >= 0 && ca != cs) || (cp >= 0 && cp != cs))
        return node_fail(g, n, "starts, ends, axes and steps must be "
                         "constants of equal length");
    int64_t ends[BP_MAX_RANK];
    for (int d = 0; d < x->rank; d++) {
        start[d] = 0;
        step[d] = 1;
        ends[d] = x->dims[d];
    }
    for (int i = 0; i < cs; i++) {
        int64_t a = ca >= 0 ? norm_axis(ax[i], x->rank) : i;
        if (a < 0 || a >= x->rank)
            return node_fail(g, n, "axis out of range");
        int64_t dim = x->dims[a], st = cp >= 0 ? sp[i] : 1;
        if (st == 0)
            return node_fail(g, n, "step 0");
        int64_t b = s[i], en = e[i];
        if (b < 0) b += dim;
        if (en < 0) en += dim;
        if (st > 0) {
            b = b < 0 ? 0 : b > dim ? dim : b;
            en = en < 0 ? 0 : en > dim ? dim : en;
        } else {
            b = b < 0 ? -1 : b > dim - 1 ? dim - 1 : b;
            en = en < -1 ? -1 : en > dim - 1 ? dim - 1 : en;
        }
        start[a] = b;
        step[a] = st;
        ends[a] = en;
    }
    for (int d = 0; d < x->rank; d++) {
        int64_t l = step[d] > 0 ? (ends[d] - start[d] + step[d] - 1) / step[d]
                                : (start[d] - ends[d] - step[d] - 1) / -step[d];
        len[d] = l < 0 ? 0 : l;
    }
    return BP_OK;
}

/* A Pad's pads list (attribute before opset 11, input 1 after) into p:
 * its length, or < 0 when it is not a constant of at most 2 * BP_MAX_RANK. */
static int pad_list(const bp_graph *g, const bp_node *n, int64_t *p)
{
    return g->opset < 11 ? bp_node_attr_ints(n, "pads", p, 2 * BP_MAX_RANK)
                         : ints_in_or_attr(g, n, 1, "", p, 2 * BP_MAX_RANK);
}

/* A Pad's fill value (attribute before opset 11, input 2 after, 0 when
 * absent); -1 when the input is not a constant. */
static int pad_value(const bp_graph *g, const bp_node *n, double *value)
{
    *value = g->opset < 11 ? bp_node_attr_float(n, "value", 0.0) : 0.0;
    const bp_tensor *v = bp_value_const(g, n->n_in > 2 ? n->in[2] : -1);
    if (v && bp_tensor_numel(v) >= 1)
        *value = bp_tensor_get(v, 0);
    else if (n->n_in > 2 && n->in[2] >= 0)
        return -1;
    return 0;
}

int bp_pad_params(const bp_graph *g, const bp_node *n, int64_t *begin,
                  int64_t *end, double *value)
{
    const bp_value *x = in_val(g, n, 0);
    int64_t p[2 * BP_MAX_RANK];
    const bp_attr *mode = bp_node_attr(n, "mode");
    if (mode && mode->type == BP_ATTR_STRING && strcmp(mode->s, "constant") != 0)
        return bp_fail(BP_EUNSUPPORTED, "%s: node '%s' (Pad): mode '%s' is not "
                       "supported; only constant padding", g->path, n->name,
                       mode->s);
    int c = pad_list(g, n, p);
    /* opset 18: pads for the listed axes only, the others unpadded */
    int64_t axes[BP_MAX_RANK];
    int na = x->rank;
    for (int d = 0; d < x->rank; d++)
        axes[d] = d;
    if (n->n_in > 3 && n->in[3] >= 0) {
        na = ints_in_or_attr(g, n, 3, "", axes, BP_MAX_RANK);
        if (na < 0)
            return node_fail(g, n, "axes must be a constant of at most %d "
                             "entries", x->rank);
        for (int k = 0; k < na; k++) {
            axes[k] += axes[k] < 0 ? x->rank : 0;
            if (axes[k] < 0 || axes[k] >= x->rank)
                return node_fail(g, n, "axis %lld is outside the input's %d "
                                 "axes", (long long)axes[k], x->rank);
        }
    }
    if (c != 2 * na)
        return node_fail(g, n, "pads must be a constant of %d entries", 2 * na);
    for (int d = 0; d < x->rank; d++)
        begin[d] = end[d] = 0;
    for (int k = 0; k < na; k++) {
        begin[axes[k]] = p[k];
        end[axes[k]] = p[na + k];
        if (p[k] < 0 || p[na + k] < 0)
            return bp_fail(BP_EUNSUPPORTED, "%s: node '%s' (Pad): negative "
                           "pads (cropping) are not supported", g->path, n->name);
    }
    if (pad_value(g, n, value))
        return node_fail(g, n, "constant_value must be a constant");
    return BP_OK;
}

/* --- per-op output shapes -------------------------------------------------- */

static int is_float(bp_dtype dt) { return dt == BP_F32 || dt == BP_F64; }

static int need_in(const bp_graph *g, const bp_node *n, int k)
{
    if (!in_val(g, n, k))
        return node_fail(g, n, "input %d is missing", k);
    return BP_OK;
}

static int infer_node(bp_graph *g, const bp_node *n)
{
    int st;
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0 && k > 0 && n->op != BP_OP_DROPOUT)
            return node_fail(g, n, "output %d ('%s') is not supported", k,
                             g->values[n->out[k]].name);
    if (n->n_out < 1 || n->out[0] < 0)
        return node_fail(g, n, "has no output");
    if ((st = need_in(g, n, 0)) && n->op != BP_OP_CONSTANT)
        return st;
    bp_value *y = &g->values[n->out[0]];
    const bp_value *x = in_val(g, n, 0);
    y->dtype = x->dtype;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof y->dims);
    int64_t tmp[BP_MAX_RANK * 2];

    switch (n->op) {
    case BP_OP_CONV: {
        bp_conv_geom geo;
        if ((st = need_in(g, n, 1)) || (st = bp_conv_geom_of(g, n, &geo)))
            return st;
        y->dims[1] = geo.m;
        if (x->rank == 4)
            y->dims[2] = geo.oh;
        y->dims[x->rank - 1] = geo.ow;
        break;
    }
    case BP_OP_GEMM: {
        if ((st = need_in(g, n, 1)))
            return st;
        const bp_value *b = in_val(g, n, 1);
        if (x->rank != 2 || b->rank != 2)
            return node_fail(g, n, "expected 2-D A and B; got ranks %d and %d",
                             x->rank, b->rank);
        int ta = (int)bp_node_attr_int(n, "transA", 0);
        int tb = (int)bp_node_attr_int(n, "transB", 0);
        int64_t m = x->dims[ta], k = x->dims[!ta];
        int64_t kb = b->dims[tb], nn = b->dims[!tb];
        if (k != kb)
            return node_fail(g, n, "A has %lld columns but B has %lld rows",
                             (long long)k, (long long)kb);
        y->dims[0] = m;
        y->dims[1] = nn;
        const bp_value *c = in_val(g, n, 2);
        if (c) {
            for (int d = 0; d < c->rank; d++) {
                int64_t want = y->dims[2 - c->rank + d];
                if (c->rank > 2 || (c->dims[d] != 1 && c->dims[d] != want))
                    return node_fail(g, n, "C does not broadcast to (%lld,%lld)",
                                     (long long)m, (long long)nn);
            }
        }
        break;
    }
    case BP_OP_MATMUL: {
        if ((st = need_in(g, n, 1)))
            return st;
        const bp_value *b = in_val(g, n, 1);
        if (x->rank < 1 || b->rank < 1)
            return node_fail(g, n, "scalar operands");
        int64_t ad[BP_MAX_RANK + 1], bd[BP_MAX_RANK + 1];
        int ar = x->rank, br = b->rank;
        memcpy(ad, x->dims, sizeof x->dims);
        memcpy(bd, b->dims, sizeof b->dims);
        if (ar == 1) { ad[1] = ad[0]; ad[0] = 1; ar = 2; }
        if (br == 1) { bd[1] = 1; br = 2; }
        if (ad[ar - 1] != bd[br - 2])
            return node_fail(g, n, "inner dimensions %lld and %lld differ",
                             (long long)ad[ar - 1], (long long)bd[br - 2]);
        int r = ar > br ? ar : br;
        if (r > BP_MAX_RANK)
            return node_fail(g, n, "rank too large");
        for (int d = 0; d < r - 2; d++) {
            int ia = d - (r - ar), ib = d - (r - br);
            int64_t da = ia >= 0 ? ad[ia] : 1, db = ib >= 0 ? bd[ib] : 1;
            if (da != db && da != 1 && db != 1)
                return node_fail(g, n, "batch dimensions do not broadcast");
            y->dims[d] = da == 1 ? db : da;
        }
        y->dims[r - 2] = ad[ar - 2];
        y->dims[r - 1] = bd[br - 1];
        y->rank = r;
        if (x->rank == 1) {
            y->dims[r - 2] = y->dims[r - 1];
            y->rank--;
        }
        if (b->rank == 1)
            y->rank--;
        break;
    }
    case BP_OP_ADD: case BP_OP_SUB: case BP_OP_MUL: case BP_OP_DIV:
        if ((st = need_in(g, n, 1)))
            return st;
        if (in_val(g, n, 1)->dtype != x->dtype)
            return node_fail(g, n, "operands have types %s and %s",
                             bp_dtype_name(x->dtype),
                             bp_dtype_name(in_val(g, n, 1)->dtype));
        if ((st = broadcast(g, n, y)))
            return st;
        break;
    case BP_OP_RELU: case BP_OP_LEAKYRELU: case BP_OP_CLIP: case BP_OP_SIGMOID:
    case BP_OP_TANH: case BP_OP_IDENTITY: case BP_OP_SOFTMAX:
        if (n->op == BP_OP_SOFTMAX && x->rank < 1)
            return node_fail(g, n, "scalar input");
        if (n->op == BP_OP_SOFTMAX) {
            int64_t a = norm_axis(bp_node_attr_int(n, "axis", g->opset >= 13 ? -1 : 1), x->rank);
            if (a < 0 || a >= x->rank)
                return node_fail(g, n, "axis out of range");
        }
        break;
    case BP_OP_DROPOUT:
        if (n->n_out > 1 && n->out[1] >= 0) {
            bp_value *mk = &g->values[n->out[1]];
            mk->dtype = BP_U8;
            mk->rank = x->rank;
            memcpy(mk->dims, x->dims, sizeof mk->dims);
        }
        break;
    case BP_OP_BATCHNORM:
        if (x->rank < 2)
            return node_fail(g, n, "input rank %d; expected at least 2", x->rank);
        for (int k = 1; k <= 4; k++) {
            const bp_value *p = in_val(g, n, k);
            if (!p || !p->data || p->rank != 1 || p->dims[0] != x->dims[1])
                return node_fail(g, n, "input %d must be a constant of shape "
                                 "(%lld)", k, (long long)x->dims[1]);
        }
        break;
    case BP_OP_MAXPOOL: case BP_OP_AVERAGEPOOL: {
        bp_pool_geom geo;
        if ((st = bp_pool_geom_of(g, n, &geo)))
            return st;
        if (x->rank == 4)
            y->dims[2] = geo.oh;
        y->dims[x->rank - 1] = geo.ow;
        break;
    }
    case BP_OP_GLOBALAVERAGEPOOL:
        if (x->rank < 3)
            return node_fail(g, n, "input rank %d; expected at least 3", x->rank);
        for (int d = 2; d < x->rank; d++)
            y->dims[d] = 1;
        break;
    case BP_OP_REDUCEMEAN: {
        int mask[BP_MAX_RANK];
        if ((st = bp_reduce_axes(g, n, mask)))
            return st;
        int keep = (int)bp_node_attr_int(n, "keepdims", 1), r = 0;
        for (int d = 0; d < x->rank; d++) {
            if (!mask[d])
                y->dims[r++] = x->dims[d];
            else if (keep)
                y->dims[r++] = 1;
        }
        y->rank = r;
        break;
    }
    case BP_OP_FLATTEN: {
        int64_t a = bp_node_axis(g, n);
        if (a < 0 || a > x->rank)
            return node_fail(g, n, "axis out of range");
        y->rank = 2;
        y->dims[0] = numel_of((int)a, x->dims);
        y->dims[1] = numel_of(x->rank - (int)a, x->dims + a);
        break;
    }
    case BP_OP_RESHAPE: {
        int c = ints_in_or_attr(g, n, 1, "shape", tmp, BP_MAX_RANK);
        if (c == -2)
            return node_fail(g, n, "the target shape is computed at run time; "
                             "bitplan needs it constant or derived from shapes");
        if (c < 0)
            return node_fail(g, n, "missing or too long target shape");
        int allowzero = (int)bp_node_attr_int(n, "allowzero", 0);
        int64_t known = 1, inferred = -1, total = numel_of(x->rank, x->dims);
        for (int d = 0; d < c; d++) {
            int64_t v = tmp[d];
            if (v == 0 && !allowzero) {
                if (d >= x->rank)
                    return node_fail(g, n, "shape entry 0 at axis %d beyond "
                                     "the input's rank", d);
                v = x->dims[d];
            }
            if (v == -1) {
                if (inferred >= 0)
                    return node_fail(g, n, "more than one -1 in the shape");
                inferred = d;
                continue;
            }
            if (v < 0)
                return node_fail(g, n, "negative shape entry %lld", (long long)v);
            y->dims[d] = v;
            known *= v;
        }
        if (inferred >= 0) {
            if (known == 0 || total % known)
                return node_fail(g, n, "cannot reshape %lld elements",
                                 (long long)total);
            y->dims[inferred] = total / known;
        } else if (known != total) {
            return node_fail(g, n, "cannot reshape %lld elements into %lld",
                             (long long)total, (long long)known);
        }
        y->rank = c;
        break;
    }
    case BP_OP_SQUEEZE: {
        int c = ints_in_or_attr(g, n, 1, "axes", tmp, BP_MAX_RANK);
        if (c == -2 || c == -3)
            return node_fail(g, n, "axes must be a constant");
        int mask[BP_MAX_RANK] = {0}, r = 0;
        for (int i = 0; i < c; i++) {
            int64_t a = norm_axis(tmp[i], x->rank);
            if (a < 0 || a >= x->rank || x->dims[a] != 1)
                return node_fail(g, n, "cannot squeeze axis %lld",
                                 (long long)tmp[i]);
            mask[a] = 1;
        }
        for (int d = 0; d < x->rank; d++)
            if (!(c > 0 ? mask[d] : x->dims[d] == 1))
                y->dims[r++] = x->dims[d];
        y->rank = r;
        break;
    }
    case BP_OP_UNSQUEEZE: {
        int c = ints_in_or_attr(g, n, 1, "axes", tmp, BP_MAX_RANK);
        if (c < 0)
            return node_fail(g, n, "axes must be a constant");
        int r = x->rank + c, mask[BP_MAX_RANK] = {0}, k = 0;
        if (r > BP_MAX_RANK)
            return node_fail(g, n, "result rank %d is too large", r);
        for (int i = 0; i < c; i++) {
            int64_t a = norm_axis(tmp[i], r);
            if (a < 0 || a >= r || mask[a])
                return node_fail(g, n, "bad axis %lld", (long long)tmp[i]);
            mask[a] = 1;
        }
        for (int d = 0; d < r; d++)
            y->dims[d] = mask[d] ? 1 : x->dims[k++];
        y->rank = r;
        break;
    }
    case BP_OP_TRANSPOSE: {
        int64_t perm[BP_MAX_RANK];
        int seen[BP_MAX_RANK] = {0};
        int c = bp_node_attr_ints(n, "perm", perm, BP_MAX_RANK);
        if (c >= 0 && c != x->rank)
            return node_fail(g, n, "perm has %d entries for rank %d", c, x->rank);
        bp_transpose_perm(g, n, perm);
        for (int d = 0; d < x->rank; d++) {
            if (perm[d] < 0 || perm[d] >= x->rank || seen[perm[d]]++)
                return node_fail(g, n, "perm is not a permutation");
            y->dims[d] = x->dims[perm[d]];
        }
        break;
    }
    case BP_OP_CONCAT: {
        int64_t a = norm_axis(bp_node_attr_int(n, "axis", 0), x->rank);
        if (!bp_node_attr(n, "axis") || a < 0 || a >= x->rank)
            return node_fail(g, n, "missing or out-of-range axis");
        y->dims[a] = 0;
        for (int k = 0; k < n->n_in; k++) {
            const bp_value *v = in_val(g, n, k);
            if (!v)
                return node_fail(g, n, "input %d is missing", k);
            if (v->rank != x->rank || v->dtype != x->dtype)
                return node_fail(g, n, "input %d has another rank or type", k);
            for (int d = 0; d < x->rank; d++)
                if (d != a && v->dims[d] != x->dims[d])
                    return node_fail(g, n, "input %d differs on axis %d", k, d);
            y->dims[a] += v->dims[a];
        }
        break;
    }
    case BP_OP_GATHER: {
        if ((st = need_in(g, n, 1)))
            return st;
        const bp_value *ix = in_val(g, n, 1);
        int64_t a = bp_node_axis(g, n);
        if (a < 0 || a >= x->rank)
            return node_fail(g, n, "axis out of range");
        if (ix->dtype != BP_I64 && ix->dtype != BP_I32)
            return node_fail(g, n, "indices must be int64 or int32");
        int r = x->rank - 1 + ix->rank, k = 0;
        if (r > BP_MAX_RANK)
            return node_fail(g, n, "result rank %d is too large", r);
        for (int d = 0; d < a; d++)
            y->dims[k++] = x->dims[d];
        for (int d = 0; d < ix->rank; d++)
            y->dims[k++] = ix->dims[d];
        for (int d = (int)a + 1; d < x->rank; d++)
            y->dims[k++] = x->dims[d];
        y->rank = r;
        break;
    }
    case BP_OP_SHAPE: {
        int64_t s = norm_axis(bp_node_attr_int(n, "start", 0), x->rank);
        int64_t e = bp_node_attr(n, "end")
                        ? norm_axis(bp_node_attr_int(n, "end", 0), x->rank)
                        : x->rank;
        s = s < 0 ? 0 : s > x->rank ? x->rank : s;
        e = e < 0 ? 0 : e > x->rank ? x->rank : e;
        y->dtype = BP_I64;
        y->rank = 1;
        y->dims[0] = e > s ? e - s : 0;
        break;
    }
    case BP_OP_CAST: {
        static const int onnx_to[] = {[1] = BP_F32, [2] = BP_U8, [3] = BP_I8,
                                      [6] = BP_I32, [7] = BP_I64, [9] = BP_U8,
                                      [11] = BP_F64};
        int64_t to = bp_node_attr_int(n, "to", 0);
        if (to < 1 || to > 11 || (!onnx_to[to] && to != 1))
            return node_fail(g, n, "cast to ONNX type %lld is not supported",
                             (long long)to);
        y->dtype = (bp_dtype)onnx_to[to];
        break;
    }
    case BP_OP_SLICE: {
        int64_t start[BP_MAX_RANK], step[BP_MAX_RANK];
        if ((st = bp_slice_params(g, n, start, step, y->dims)))
            return st;
        break;
    }
    case BP_OP_CONSTANTOFSHAPE: {
        const bp_tensor *s = bp_value_const(g, n->in[0]);
        if (!s || s->rank != 1 || s->dims[0] > BP_MAX_RANK)
            return node_fail(g, n, "the shape must be a constant vector");
        y->rank = (int)s->dims[0];
        for (int d = 0; d < y->rank; d++)
            y->dims[d] = ((const int64_t *)s->data)[d];
        const bp_attr *v = bp_node_attr(n, "value");
        y->dtype = v && v->t ? v->t->dtype : BP_F32;
        break;
    }
    case BP_OP_PAD: {
        int64_t b[BP_MAX_RANK], e[BP_MAX_RANK];
        double v;
        if ((st = bp_pad_params(g, n, b, e, &v)))
            return st;
        for (int d = 0; d < x->rank; d++)
            y->dims[d] = x->dims[d] + b[d] + e[d];
        break;
    }
    case BP_OP_CONSTANT:
    case BP_OP_COUNT:
        break;
    }
    int64_t numel;
    if (bp_shape_numel(y->rank, y->dims, &numel) ||
        numel > BP_MAX_TENSOR_BYTES / 8)
        return node_fail(g, n, "output shape is invalid or too large");
    switch (n->op) {
    case BP_OP_CONV: case BP_OP_GEMM: case BP_OP_MATMUL: case BP_OP_RELU:
    case BP_OP_LEAKYRELU: case BP_OP_CLIP: case BP_OP_SIGMOID: case BP_OP_TANH:
    case BP_OP_SOFTMAX: case BP_OP_MAXPOOL: case BP_OP_AVERAGEPOOL:
    case BP_OP_GLOBALAVERAGEPOOL: case BP_OP_REDUCEMEAN: case BP_OP_BATCHNORM:
        if (!is_float(x->dtype))
            return node_fail(g, n, "input '%s' has type %s; expected float",
                             x->name, bp_dtype_name(x->dtype));
        break;
    default:
        break;
    }
    return BP_OK;
}

/* --- static evaluation ------------------------------------------------------- */

int bp_eval_static(const bp_graph *g, const bp_node *n, bp_tensor **outs)
{
    const bp_value *yv = &g->values[n->out[0]];
    const bp_tensor *x = n->op == BP_OP_SHAPE ? NULL : bp_value_const(g, n->in[0]);
    bp_tensor *y = NULL;
    int st;

    switch (n->op) {
    case BP_OP_IDENTITY: case BP_OP_DROPOUT: case BP_OP_CAST: case BP_OP_SHAPE:
    case BP_OP_GATHER: case BP_OP_CONCAT: case BP_OP_UNSQUEEZE:
    case BP_OP_SQUEEZE: case BP_OP_RESHAPE: case BP_OP_FLATTEN: case BP_OP_SLICE:
    case BP_OP_TRANSPOSE: case BP_OP_ADD: case BP_OP_SUB: case BP_OP_MUL:
    case BP_OP_DIV: case BP_OP_CONSTANTOFSHAPE:
        break;
    default:
        return BP_EUNSUPPORTED;
    }
    if (n->op == BP_OP_DROPOUT && n->n_out > 1 && n->out[1] >= 0)
        return BP_EUNSUPPORTED;
    if ((st = bp_tensor_new(&y, yv->dtype, yv->rank, yv->dims)))
        return st;
    size_t es = bp_dtype_size(y->dtype);
    int64_t cnt = bp_tensor_numel(y);

    switch (n->op) {
    case BP_OP_SHAPE: {
        const bp_value *xv = &g->values[n->in[0]];
        int64_t s = norm_axis(bp_node_attr_int(n, "start", 0), xv->rank);
        s = s < 0 ? 0 : s;
        for (int64_t i = 0; i < cnt; i++)
            ((int64_t *)y->data)[i] = xv->dims[s + i];
        break;
    }
    case BP_OP_CAST:
        for (int64_t i = 0; i < cnt; i++) {
            if (y->dtype == BP_I64 && x->dtype == BP_I64)
                ((int64_t *)y->data)[i] = ((const int64_t *)x->data)[i];
            else
                bp_tensor_set(y, i, bp_tensor_get(x, i));
        }
        break;
    case BP_OP_GATHER: {
        const bp_tensor *ix = bp_value_const(g, n->in[1]);
        int64_t a = bp_node_axis(g, n), len = x->dims[a];
        int64_t nidx = bp_tensor_numel(ix);
        int64_t *idx = malloc((size_t)(nidx + 1) * sizeof *idx);
        if (!idx) {
            bp_tensor_free(&y);
            return BP_ENOMEM;
        }
        for (int64_t i = 0; i < nidx; i++) {
            idx[i] = get_i64(ix, i);
            if (idx[i] < 0)
                idx[i] += len;
            if (idx[i] < 0 || idx[i] >= len) {
                free(idx);
                bp_tensor_free(&y);
                return node_fail(g, n, "index out of range");
            }
        }
        bp_mv_gather(y->data, x->data, es, numel_of((int)a, x->dims), len,
                     numel_of(x->rank - (int)a - 1, x->dims + a + 1), idx, nidx);
        free(idx);
        break;
    }
    case BP_OP_CONCAT: {
        int64_t a = norm_axis(bp_node_attr_int(n, "axis", 0), yv->rank);
        int64_t outer = numel_of((int)a, yv->dims);
        int64_t inner = numel_of(yv->rank - (int)a - 1, yv->dims + a + 1);
        int64_t at = 0;
        for (int k = 0; k < n->n_in; k++) {
            const bp_tensor *t = bp_value_const(g, n->in[k]);
            bp_mv_concat(y->data, t->data, es, outer, t->dims[a], inner,
                         yv->dims[a], at);
            at += t->dims[a];
        }
        break;
    }
    case BP_OP_IDENTITY: case BP_OP_DROPOUT: case BP_OP_UNSQUEEZE:
    case BP_OP_SQUEEZE: case BP_OP_RESHAPE: case BP_OP_FLATTEN:
        memcpy(y->data, x->data, (size_t)cnt * es);
        break;
    case BP_OP_SLICE: {
        int64_t start[BP_MAX_RANK], step[BP_MAX_RANK], len[BP_MAX_RANK];
        if ((st = bp_slice_params(g, n, start, step, len))) {
            bp_tensor_free(&y);
            return st;
        }
        bp_mv_slice(y->data, x->data, es, x->rank, x->dims, len, start, step);
        break;
    }
    case BP_OP_TRANSPOSE: {
        int64_t perm[BP_MAX_RANK];
        bp_transpose_perm(g, n, perm);
        bp_mv_transpose(y->data, x->data, es, x->rank, x->dims, perm);
        break;
    }
    case BP_OP_ADD: case BP_OP_SUB: case BP_OP_MUL: case BP_OP_DIV: {
        const bp_value *av = &g->values[n->in[0]], *bv = &g->values[n->in[1]];
        const bp_tensor *b = bp_value_const(g, n->in[1]);
        int64_t as[BP_MAX_RANK], bs[BP_MAX_RANK], idx[BP_MAX_RANK] = {0};
        bp_broadcast_strides(av, yv->rank, yv->dims, as);
        bp_broadcast_strides(bv, yv->rank, yv->dims, bs);
        for (int64_t i = 0; i < cnt; i++) {
            int64_t oa = 0, ob = 0;
            for (int d = 0; d < yv->rank; d++) {
                oa += idx[d] * as[d];
                ob += idx[d] * bs[d];
            }
            if (y->dtype == BP_I64 || y->dtype == BP_I32) {
                int64_t p = get_i64(x, oa), q = get_i64(b, ob), r = 0;
                switch (n->op) {
                case BP_OP_ADD: r = p + q; break;
                case BP_OP_SUB: r = p - q; break;
                case BP_OP_MUL: r = p * q; break;
                default:
                    if (q == 0) {
                        bp_tensor_free(&y);
                        return node_fail(g, n, "integer division by zero");
                    }
                    r = p / q;
                }
                if (y->dtype == BP_I64)
                    ((int64_t *)y->data)[i] = r;
                else
                    bp_tensor_set(y, i, (double)r);
            } else {
                double p = bp_tensor_get(x, oa), q = bp_tensor_get(b, ob), r;
                switch (n->op) {
                case BP_OP_ADD: r = p + q; break;
                case BP_OP_SUB: r = p - q; break;
                case BP_OP_MUL: r = p * q; break;
                default: r = p / q;
                }
                bp_tensor_set(y, i, r);
            }
            for (int d = yv->rank - 1; d >= 0; d--) {
                if (++idx[d] < yv->dims[d])
                    break;
                idx[d] = 0;
            }
        }
        break;
    }
    case BP_OP_CONSTANTOFSHAPE: {
        const bp_attr *v = bp_node_attr(n, "value");
        if (v && v->t && bp_tensor_numel(v->t) >= 1)
            for (int64_t i = 0; i < cnt; i++)
                memcpy((char *)y->data + (size_t)i * es, v->t->data, es);
        break;
    }
    default:
        break;
    }
    outs[0] = y;
    return BP_OK;
}

/* --- folding and inference ---------------------------------------------------- */

static int all_inputs_static(const bp_graph *g, const bp_node *n, int known_ok)
{
    if (n->op == BP_OP_SHAPE) /* needs only the shape of its input */
        return known_ok || (n->in[0] >= 0 && g->values[n->in[0]].data);
    for (int k = 0; k < n->n_in; k++) {
        int v = n->in[k];
        if (v < 0)
            continue;
        if (!g->values[v].data && !(known_ok && g->values[v].known))
            return 0;
    }
    return 1;
}

static int is_graph_output(const bp_graph *g, int v)
{
    for (int o = 0; o < g->n_outputs; o++)
        if (g->outputs[o] == v)
            return 1;
    return 0;
}

/* A Pad that adds nothing, every pad 0 (torch exports avg_pool2d(x, 2)
 * with one, for count_include_pad), whatever its mode: its readers read its
 * input instead and it goes (1 is returned), or, as a graph output, it
 * becomes an Identity; so every stage (float, derivatives, integer) runs
 * the model. */
static int pad_noop(bp_graph *g, int i)
{
    bp_node *n = &g->nodes[i];
    int64_t p[2 * BP_MAX_RANK];
    int c = pad_list(g, n, p);
    if (c < 1)
        return 0;
    for (int k = 0; k < c; k++)
        if (p[k] != 0)
            return 0;
    int x = n->in[0], y = n->out[0];
    if (is_graph_output(g, y)) {
        n->op = BP_OP_IDENTITY;
        n->n_in = 1;
        return 0;
    }
    for (int j = 0; j < g->n_nodes; j++)
        for (int q = 0; q < g->nodes[j].n_in; q++)
            if (g->nodes[j].in[q] == y)
                g->nodes[j].in[q] = x;
    g->values[y].producer = -1; /* the value is left unread and unmade */
    n->n_in = 0; /* and the node reads nothing until it is dropped */
    return 1;
}

static bp_attr *find_attr(bp_node *n, const char *name)
{
    for (int a = 0; a < n->n_attrs; a++)
        if (!strcmp(n->attrs[a].name, name))
            return &n->attrs[a];
    return NULL;
}

/* Appends an integer attribute (INT: 0; INTS: n zeros) to n, or replaces
 * the one of that name; NULL when out of memory (n unchanged). */
static bp_attr *add_int_attr(bp_node *n, const char *name, bp_attr_type type,
                             int count)
{
    char *nm = strdup(name);
    int64_t *ints = type == BP_ATTR_INTS
                        ? calloc((size_t)count + 1, sizeof *ints) : NULL;
    bp_attr *at = find_attr(n, name);
    if (nm && (type != BP_ATTR_INTS || ints) && !at) {
        bp_attr *na = realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof *na);
        if (na) {
            n->attrs = na;
            at = &na[n->n_attrs++];
            memset(at, 0, sizeof *at);
        }
    }
    if (!nm || (type == BP_ATTR_INTS && !ints) || !at) {
        free(nm);
        free(ints);
        return NULL;
    }
    free(at->name);
    free(at->ints);
    at->name = nm;
    at->type = type;
    at->i = 0;
    at->ints = ints;
    at->n = type == BP_ATTR_INTS ? count : 0;
    return at;
}

/* A Pad of zeros on the spatial axes whose one reader is a Conv, or an
 * AveragePool that counts padding, with explicit pads: the reader takes the
 * padding into its own pads and reads the Pad's input; the Pad goes (1 is
 * returned).  A convolution pads with zeros itself, so the results are
 * identical, and the integer executor, which has no Pad kernel, runs it. */
static int pad_into_reader(bp_graph *g, int i)
{
    bp_node *p = &g->nodes[i];
    int64_t pads[2 * BP_MAX_RANK];
    int c = pad_list(g, p, pads);
    const bp_attr *mode = bp_node_attr(p, "mode");
    double value;
    if (c < 6 || c % 2 || (p->n_in > 3 && p->in[3] >= 0) ||
        (mode && mode->type == BP_ATTR_STRING && strcmp(mode->s, "constant")) ||
        pad_value(g, p, &value) || value != 0)
        return 0;
    int r = c / 2, k = r - 2;
    if (pads[0] || pads[1] || pads[r] || pads[r + 1])
        return 0;
    for (int d = 0; d < c; d++)
        if (pads[d] < 0)
            return 0;
    int y = p->out[0], reader = -1, uses = 0;
    if (is_graph_output(g, y))
        return 0;
    for (int j = 0; j < g->n_nodes; j++)
        for (int q = 0; q < g->nodes[j].n_in; q++)
            if (g->nodes[j].in[q] == y) {
                uses++;
                reader = j;
            }
    if (uses != 1)
        return 0;
    bp_node *n = &g->nodes[reader];
    const bp_attr *ap = bp_node_attr(n, "auto_pad");
    if (n->in[0] != y || (n->op != BP_OP_CONV && n->op != BP_OP_AVERAGEPOOL) ||
        (ap && !(ap->type == BP_ATTR_STRING && !strcmp(ap->s, "NOTSET"))))
        return 0;
    bp_attr *at = find_attr(n, "pads");
    if (at && (at->type != BP_ATTR_INTS || at->n != 2 * k))
        return 0;
    int unpadded = 1;
    for (int d = 0; at && d < at->n; d++)
        unpadded &= at->ints[d] == 0;
    /* a pool counts the Pad's zeros: with pads of its own it must count its
     * padding too, without, it may be told to (torch exports
     * count_include_pad=True as exactly such a Pad) */
    int cip = n->op == BP_OP_AVERAGEPOOL &&
              bp_node_attr_int(n, "count_include_pad", 0) == 1;
    if (n->op == BP_OP_AVERAGEPOOL && !cip && !unpadded)
        return 0;
    /* the pool kernels count padding only when it is the same on both
     * sides (bp_pool_geom_of): leave the Pad where folding would break that */
    for (int d = 0; n->op == BP_OP_AVERAGEPOOL && d < k; d++)
        if (pads[2 + d] + (at ? at->ints[d] : 0) !=
            pads[r + 2 + d] + (at ? at->ints[k + d] : 0))
            return 0;
    /* both added before either is written: an append moves n->attrs (and
     * a count_include_pad of 0 added, if the second fails, changes nothing) */
    if (n->op == BP_OP_AVERAGEPOOL && !cip &&
        !add_int_attr(n, "count_include_pad", BP_ATTR_INT, 0))
        return 0;
    if (!at && !add_int_attr(n, "pads", BP_ATTR_INTS, 2 * k))
        return 0;
    if (n->op == BP_OP_AVERAGEPOOL && !cip)
        find_attr(n, "count_include_pad")->i = 1;
    at = find_attr(n, "pads");
    for (int d = 0; d < k; d++) {
        at->ints[d] += pads[2 + d];
        at->ints[k + d] += pads[r + 2 + d];
    }
    n->in[0] = p->in[0];
    g->values[y].producer = -1; /* the value is left unread and unmade */
    p->n_in = 0;
    return 1;
}

int bp_graph_fold(bp_graph *g)
{
    int st;
    for (int v = 0; v < g->n_values; v++) {
        bp_value *val = &g->values[v];
        if (val->data) {
            val->dtype = val->data->dtype;
            val->rank = val->data->rank;
            memcpy(val->dims, val->data->dims, sizeof val->dims);
        }
    }
    char *dead = calloc((size_t)g->n_nodes + 1, 1);
    if (!dead)
        return BP_ENOMEM;
    for (int i = 0; i < g->n_nodes; i++) {
        bp_node *n = &g->nodes[i];
        if (n->op == BP_OP_CONSTANT) {
            dead[i] = 1;
            continue;
        }
        if (!all_inputs_static(g, n, 0))
            continue;
        if ((st = infer_node(g, n))) {
            free(dead);
            return st;
        }
        bp_tensor *out = NULL;
        st = bp_eval_static(g, n, &out);
        if (st == BP_EUNSUPPORTED)
            continue;
        if (st) {
            free(dead);
            return st;
        }
        bp_value *y = &g->values[n->out[0]];
        y->data = out;
        y->producer = -1;
        dead[i] = 1;
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (!dead[i] && g->nodes[i].op == BP_OP_PAD && pad_noop(g, i))
            dead[i] = 1;
    for (int i = 0; i < g->n_nodes; i++)
        if (!dead[i] && g->nodes[i].op == BP_OP_PAD && pad_into_reader(g, i))
            dead[i] = 1;
    /* drop folded nodes, keeping order and fixing producer indices */
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (dead[i]) {
            bp_node *n = &g->nodes[i];
            free(n->name);
            free(n->in);
            free(n->out);
            for (int a = 0; a < n->n_attrs; a++) {
                bp_attr *at = &n->attrs[a];
                free(at->name);
                free(at->ints);
                free(at->floats);
                free(at->s);
                for (int s = 0; at->strings && s < at->n; s++)
                    free(at->strings[s]);
                free(at->strings);
                bp_tensor_free(&at->t);
            }
            free(n->attrs);
            continue;
        }
        g->nodes[k] = g->nodes[i];
        for (int o = 0; o < g->nodes[k].n_out; o++)
            if (g->nodes[k].out[o] >= 0)
                g->values[g->nodes[k].out[o]].producer = k;
        k++;
    }
    g->n_nodes = k;
    free(dead);
    return BP_OK;
}

int bp_graph_infer(bp_graph *g, int64_t batch)
{
    int st;
    if (batch < 1)
        return bp_fail(BP_EINVAL, "%s: batch size must be at least 1", g->path);
    g->batch = 0;
    for (int v = 0; v < g->n_values; v++) {
        bp_value *val = &g->values[v];
        bp_tensor_free(&val->known);
        if (val->is_input) {
            val->rank = val->decl_rank;
            for (int d = 0; d < val->rank; d++)
                val->dims[d] = val->decl_dims[d] < 0 ? batch : val->decl_dims[d];
            if (val->decl_dims[0] >= 0 && val->decl_dims[0] != batch)
                return bp_fail(BP_EINVAL, "%s: input '%s' has a fixed batch "
                               "size of %lld (re-export with a dynamic axis 0)",
                               g->path, val->name, (long long)val->decl_dims[0]);
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        bp_node *n = &g->nodes[i];
        if ((st = infer_node(g, n)))
            return st;
        if (!all_inputs_static(g, n, 1))
            continue;
        bp_tensor *out = NULL;
        st = bp_eval_static(g, n, &out);
        if (st == BP_EUNSUPPORTED)
            continue;
        if (st)
            return st;
        g->values[n->out[0]].known = out;
    }
    for (int k = 0; k < g->n_outputs; k++)
        if (!is_float(g->values[g->outputs[k]].dtype))
            return bp_fail(BP_EUNSUPPORTED, "%s: graph output '%s' has type "
                           "%s; expected float", g->path,
                           g->values[g->outputs[k]].name,
                           bp_dtype_name(g->values[g->outputs[k]].dtype));
    g->batch = batch;
    return BP_OK;
}
