/* cost.c - bytes, BOPs and latency of one layer at one bit-width choice
 * (the model is written out in cost.h). */
#include "cost.h"
#include "qgraph.h"
#include "qkernels.h"
#include "shape.h"
#include "status.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The executor's ops of g (bp_qmodel_ops), leaving g inferred at the batch
 * it had.  *ops NULL and *n 0 when the executor cannot run g. */
static int executor_ops(bp_graph *g, bp_qop_info **ops, int *n)
{
    int64_t batch = g->batch;
    *ops = NULL;
    *n = 0;
    int st = bp_qmodel_ops(g, ops, n);
    if (st == BP_ENOMEM)
        return st;
    if (st) {
        *ops = NULL;
        *n = 0;
    }
    if (batch > 0 && g->batch != batch)
        return bp_graph_infer(g, batch);
    return BP_OK;
}

int bp_layer_facts_from_graph(bp_graph *g, bp_layer_facts **out, int *n,
                              bp_model_facts *model)
{
    bp_layer *layers = NULL;
    bp_qop_info *qops = NULL;
    int nl = 0, nq = 0, st;
    if ((st = executor_ops(g, &qops, &nq)))
        return st;
    if ((st = bp_graph_layers(g, &layers, &nl))) {
        free(qops);
        return st;
    }
    if (nl < 1) {
        free(layers);
        free(qops);
        return bp_fail(BP_EINVAL, "%s: no quantizable layers (Conv, Gemm or "
                       "MatMul with a constant weight)", g->path);
    }
    /* one block: the layers, then the op facts they point to */
    size_t head = ((size_t)nl * sizeof(bp_layer_facts) + 15) / 16 * 16;
    bp_layer_facts *f = calloc(1, head + ((size_t)nq + 1) * sizeof(bp_op_fact));
    char *folded = calloc((size_t)g->n_values, 1);
    int *layer_of_node = malloc((size_t)g->n_nodes * sizeof *layer_of_node);
    if (!f || !folded || !layer_of_node) {
        free(f);
        free(folded);
        free(layer_of_node);
        free(layers);
        free(qops);
        return bp_fail(BP_ENOMEM, "%s: out of memory", g->path);
    }
    bp_op_fact *of = (bp_op_fact *)((char *)f + head);
    for (int i = 0; i < g->n_nodes; i++)
        layer_of_node[i] = -1;
    int64_t batch = g->batch > 0 ? g->batch : 1;
    for (int i = 0; i < nl; i++) {
        const bp_layer *l = &layers[i];
        const bp_node *nd = &g->nodes[l->node];
        layer_of_node[l->node] = i;
        f[i].name = l->name;
        f[i].op = bp_op_name(l->op);
        f[i].numel = l->numel;
        f[i].out_channels = l->out_channels;
        f[i].macs = l->macs;
        f[i].rank = l->rank;
        memcpy(f[i].shape, l->shape, sizeof f[i].shape);
        f[i].group = 1;
        f[i].in_tensor = f[i].in_root = -1;
        bp_conv_geom geo;
        if (nd->op == BP_OP_CONV && bp_conv_geom_of(g, nd, &geo) == BP_OK) {
            f[i].group = geo.group;
            /* the bound on the sums waits for the width (bp_cost_lm_wino) */
            if (bp_qk_wino_geom(&geo, geo.c / geo.group)) {
                f[i].wino_cin = geo.c / geo.group;
                bp_conv_geom one = geo; /* per sample */
                one.n = 1;
                f[i].wino_tiles = bp_qk_wino_tiles(&one);
            }
        }
        const bp_value *x = nd->n_in > 0 && nd->in[0] >= 0
                                ? &g->values[nd->in[0]] : NULL;
        const bp_value *y = nd->n_out > 0 ? &g->values[nd->out[0]] : NULL;
        int64_t e;
        if (x && !x->data && x->rank >= 1 &&
            bp_shape_numel(x->rank, x->dims, &e) == BP_OK)
            f[i].in_numel = e / batch;
        if (y && y->rank >= 1 && bp_shape_numel(y->rank, y->dims, &e) == BP_OK)
            f[i].out_numel = e / batch;
        folded[l->weight] = 1;
        if (l->bias >= 0)
            folded[l->bias] = 1;
    }
    /* The ops between layers go to the layer that runs next (the last
     * layer takes the trailing ones), as `profile --measure --model`
     * charges them, so that the layers of a plan sum to the whole run. */
    int pending = 0, last = -1, nof = 0;
    int64_t const_bytes = 0;
    for (int k = 0; k < nq; k++) {
        const bp_qop_info *q = &qops[k];
        const_bytes += q->const_bytes;
        if (q->kind != BP_QOP_LAYER) {
            of[nof++] = (bp_op_fact){bp_qop_name(q->kind), q->elements,
                                     q->out_elements};
            pending++;
            continue;
        }
        if (q->layer < 0 || q->layer >= nl)
            continue;
        bp_layer_facts *lf = &f[q->layer];
        lf->residual = q->residual;
        lf->in_tensor = q->in_tensor;
        lf->in_root = q->in_root;
        lf->ops = of + nof - pending;
        lf->n_ops = pending;
        pending = 0;
        last = q->layer;
    }
    /* the trailing ops were appended right behind the last layer's own */
    if (last >= 0)
        f[last].n_ops += pending;
    free(qops);
    /* A BatchNorm right after a layer folds into its scale and bias. */
    for (int i = 0; i < g->n_nodes; i++) {
        const bp_node *nd = &g->nodes[i];
        if (nd->op != BP_OP_BATCHNORM || nd->n_in < 5 || nd->in[0] < 0)
            continue;
        int prod = g->values[nd->in[0]].producer;
        if (prod < 0 || layer_of_node[prod] < 0)
            continue;
        for (int k = 1; k < 5; k++)
            if (nd->in[k] >= 0)
                folded[nd->in[k]] = 1;
    }
    int64_t all = 0, other = 0;
    for (int v = 0; v < g->n_values; v++) {
        const bp_tensor *t = g->values[v].data;
        if (!t || (t->dtype != BP_F32 && t->dtype != BP_F64))
            continue;
        all += bp_tensor_numel(t);
        if (!folded[v])
            other += bp_tensor_numel(t);
    }
    free(folded);
    free(layer_of_node);
    free(layers);
    model->float_params = all;
    model->other_params = other;
    model->const_bytes = const_bytes;
    *out = f;
    *n = nl;
    return BP_OK;
}

/* Bytes of the weights at w bits, packed. */
static double packed_bytes(int64_t numel, int w)
{
    return ceil((double)numel * (double)w / 8.0);
}

static int roofline(const bp_profile *p, const bp_layer_facts *l, int w,
                    int a, int64_t batch, double *sec)
{
    const bp_profile_peak *pk;
    int st = bp_profile_native(p, w, a, &pk);
    if (st)
        return st;
    double b = (double)batch;
    double ops = 2.0 * (double)l->macs * b;
    double t_compute = ops / (pk->ops_per_s * p->compute_efficiency);
    int ws = p->storage_native ? (pk->w_bits > w ? pk->w_bits : w) : w;
    double traffic = packed_bytes(l->numel, ws) + 8.0 * (double)l->out_channels +
                     b * (double)(l->in_numel + l->out_numel) * a / 8.0;
    double t_mem = traffic / (p->bytes_per_s * p->memory_efficiency);
    *sec = p->overhead_s + (t_compute > t_mem ? t_compute : t_mem);
    return BP_OK;
}

static double ceil_to(double v, double m) { return ceil(v / m) * m; }

int bp_cost_lm_wino(const bp_layer_facts *l, int64_t batch, int w_bits)
{
    /* the geometry held (wino_tiles); the bound at this width, for uint8
     * inputs (the tighter; the facts do not know the sign) */
    return l->wino_tiles && bp_qk_wino_bound(l->wino_cin, w_bits, 0) &&
           bp_qk_wino_pays((batch > 0 ? batch : 1) * l->wino_tiles,
                           l->wino_cin, w_bits);
}

void bp_cost_lm_terms(const bp_layer_facts *l, int64_t batch, int tile,
                      int wino, double *padded_macs, double *rows,
                      double *outputs, double *tiles, double *wino_macs)
{
    double b = batch > 0 ? (double)batch : 1;
    double c = l->out_channels > 0 ? (double)l->out_channels : 1;
    double g = l->group > 0 ? (double)l->group : 1;
    double n = l->numel > 0 ? (double)l->numel : 1, macs = (double)l->macs;
    double pos = b * macs / n, kk = n / c;  /* positions, row length */
    *outputs = pos * c;
    *wino_macs = 0;
    if (wino) {
        /* F(2x2, 3x3): per 2x2 tile, 16 products per input channel and
         * output channel (blocks of 16), and 16 transformed inputs per
         * input channel in place of the gathered rows */
        double t = b * (double)l->wino_tiles, cin = (double)l->wino_cin;
        *padded_macs = 0;
        *wino_macs = t * 16 * cin * g * ceil_to(c / g, 16);
        *rows = t * 16 * cin * g;
        *tiles = t * g * ceil_to(c / g, 16) / 16;
        return;
    }
    /* the GEMM runs tiles of `tile` positions and 16 channels over rows
     * padded to groups of 4 (qkernels.h), whole tiles even when the layer
     * fills them partly: a GEMV (1 position) costs a whole tile's rows */
    double tp = tile > 0 ? (double)tile : 16;
    *padded_macs = ceil_to(pos, tp) * ceil_to(kk, 4) * g * ceil_to(c / g, 16);
    *rows = pos * kk * g;
    *tiles = ceil_to(pos, tp) / tp * g * ceil_to(c / g, 16) / 16;
}

/* The fitted layer model of a roofline (cost.h). */
static int layer_model(const bp_profile *p, const bp_layer_facts *l, int w,
                       int a, int64_t batch, double *sec)
{
    const bp_profile_layer_model *lm = &p->lm;
    double b = (double)batch;
    const bp_profile_lm_regime *r =
        lm->parallel_macs > 0 && (double)l->macs * b >= (double)lm->parallel_macs
            ? &lm->parallel : &lm->serial;
    const bp_profile_lm_bits *k = NULL;
    for (int i = 0; i < r->n_bits && !k; i++)
        if (r->bits[i].w_bits >= w)
            k = &r->bits[i];
    if (!k || a > lm->a_bits)
        return bp_fail(BP_EUNSUPPORTED, "%s: layer_model prices no choice of "
                       "%d-bit weights with %d-bit activations (widths up to "
                       "%d and %d)", p->path, w, a,
                       r->n_bits ? r->bits[r->n_bits - 1].w_bits : 0,
                       lm->a_bits);
    double padded, rows, outs, tiles, wmacs, n = (double)l->numel;
    bp_cost_lm_terms(l, batch, k->tile_positions,
                     lm->winograd && bp_cost_lm_wino(l, batch, w), &padded,
                     &rows, &outs, &tiles, &wmacs);
    /* Winograd's products are int16 ones at every width: the widest's */
    const bp_profile_lm_bits *kw = &r->bits[r->n_bits - 1];
    *sec = r->seconds + r->per_tile * tiles + k->per_mac * padded +
           kw->per_mac * wmacs +
           r->per_row_element * rows +
           r->per_output * outs +
           (l->residual ? r->per_residual_output * outs : 0) +
           k->per_weight * n;
    return BP_OK;
}

/* The ops charged to layer l on a profile with op costs (cost.h). */
static double ops_cost(const bp_profile *p, const bp_layer_facts *l,
                       int64_t batch)
{
    double t = 0, b = (double)batch;
    for (int i = 0; i < l->n_ops; i++) {
        const bp_op_fact *o = &l->ops[i];
        for (int k = 0; k < p->n_op_costs; k++) {
            const bp_profile_op_cost *c = &p->op_costs[k];
            if (strcmp(c->name, o->op) != 0)
                continue;
            int par = c->has_parallel && p->op_parallel_elements > 0 &&
                      (double)o->out_elements * b >=
                          (double)p->op_parallel_elements;
            t += par ? c->par_seconds + c->par_per_element * (double)o->elements * b
                     : c->seconds + c->per_element * (double)o->elements * b;
            break;
        }
    }
    return t;
}

static int shape_eq(const bp_profile_entry *e, const bp_layer_facts *l)
{
    if (e->rank != l->rank || l->rank == 0)
        return 0;
    for (int d = 0; d < l->rank; d++)
        if (e->shape[d] != l->shape[d])
            return 0;
    return 1;
}

/* The table's latency for (w,a): an exact entry, else the fastest entry
 * wider in both; by name first, then by shape.  0 when none applies; 1 by
 * name, 2 by shape. */
static int table_lookup(const bp_profile *p, const bp_layer_facts *l, int w,
                        int a, double *sec)
{
    for (int by_name = 1; by_name >= 0; by_name--) {
        const bp_profile_entry *best = NULL;
        for (int i = 0; i < p->n_entries; i++) {
            const bp_profile_entry *e = &p->entries[i];
            int match = by_name ? e->layer && !strcmp(e->layer, l->name)
                                : !e->layer && shape_eq(e, l);
            if (!match || e->w_bits < w || e->a_bits < a)
                continue;
            if (e->w_bits == w && e->a_bits == a) {
                best = e;
                break;
            }
            if (!best || e->latency_s < best->latency_s)
                best = e;
        }
        if (best) {
            *sec = best->latency_s;
            return by_name ? 1 : 2;
        }
    }
    return 0;
}

int bp_cost_eval(const bp_profile *p, const bp_layer_facts *l, int w_bits,
                 int a_bits, int64_t batch, bp_cost *out)
{
    if (w_bits < 1 || w_bits > 16 || a_bits < 1 || a_bits > 16)
        return bp_fail(BP_EINVAL, "%s: bits w%d a%d outside 1..16", l->name,
                       w_bits, a_bits);
    if (l->numel < 1 || l->macs < 0 || l->out_channels < 0 || batch < 1)
        return bp_fail(BP_EINVAL, "%s: numel %lld, macs %lld: expected "
                       "numel >= 1, macs >= 0", l->name, (long long)l->numel,
                       (long long)l->macs);
    bp_cost c;
    c.bytes = packed_bytes(l->numel, w_bits) + 8.0 * (double)l->out_channels;
    c.bops = (double)l->macs * w_bits * a_bits;
    c.latency_s = NAN;
    int st = BP_OK;
    const bp_profile *roof = p;
    if (p->kind == BP_PROFILE_TABLE) {
        int how = table_lookup(p, l, w_bits, a_bits, &c.latency_s);
        roof = p->fallback;
        if (how) {
            /* an entry by name holds its ops already (cost.h) */
            if (how == 2 && roof && roof->kind == BP_PROFILE_ROOFLINE)
                c.latency_s += ops_cost(roof, l, batch);
            *out = c;
            return BP_OK;
        }
    }
    if (roof && roof->kind == BP_PROFILE_ROOFLINE) {
        if (roof->lm.present)
            st = layer_model(roof, l, w_bits, a_bits, batch, &c.latency_s);
        else
            st = roofline(roof, l, w_bits, a_bits, batch, &c.latency_s);
        if (st)
            return st;
        c.latency_s += ops_cost(roof, l, batch);
    }
    *out = c;
    return BP_OK;
}
