/* cost.c - bytes, BOPs and latency of one layer at one bit-width choice
 * (the model is written out in cost.h). */
#include "cost.h"
#include "status.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bp_layer_facts_from_graph(bp_graph *g, bp_layer_facts **out, int *n,
                              bp_model_facts *model)
{
    bp_layer *layers = NULL;
    int nl = 0, st;
    if ((st = bp_graph_layers(g, &layers, &nl)))
        return st;
    if (nl < 1) {
        free(layers);
        return bp_fail(BP_EINVAL, "%s: no quantizable layers (Conv, Gemm or "
                       "MatMul with a constant weight)", g->path);
    }
    bp_layer_facts *f = calloc((size_t)nl, sizeof *f);
    char *folded = calloc((size_t)g->n_values, 1);
    int *layer_of_node = malloc((size_t)g->n_nodes * sizeof *layer_of_node);
    if (!f || !folded || !layer_of_node) {
        free(f);
        free(folded);
        free(layer_of_node);
        free(layers);
        return bp_fail(BP_ENOMEM, "%s: out of memory", g->path);
    }
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
 * wider in both; by name first, then by shape.  0 when none applies. */
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
            return 1;
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
        if (table_lookup(p, l, w_bits, a_bits, &c.latency_s)) {
            *out = c;
            return BP_OK;
        }
        roof = p->fallback;
    }
    if (roof && roof->kind == BP_PROFILE_ROOFLINE &&
        (st = roofline(roof, l, w_bits, a_bits, batch, &c.latency_s)))
        return st;
    *out = c;
    return BP_OK;
}
