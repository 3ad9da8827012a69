/* graph.c - construction, lookup, topological order and teardown of the
 * graph IR (graph.h), plus the quantizable-layer listing every later stage
 * starts from. */
#include "graph.h"
#include "status.h"

#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {
    "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu",
    "LeakyRelu", "Clip", "Sigmoid", "Tanh", "Softmax", "MaxPool",
    "AveragePool", "GlobalAveragePool", "ReduceMean", "BatchNormalization",
    "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Concat",
    "Gather", "Identity", "Constant", "Dropout", "Shape", "Cast", "Slice",
    "ConstantOfShape", "Pad"};
_Static_assert(sizeof op_names / sizeof op_names[0] == BP_OP_COUNT,
               "op name table out of step with enum bp_op");

const char *bp_op_name(bp_op op)
{
    return (unsigned)op < BP_OP_COUNT ? op_names[op] : "?";
}

int bp_op_lookup(const char *name, bp_op *op)
{
    for (int i = 0; i < BP_OP_COUNT; i++)
        if (strcmp(op_names[i], name) == 0) {
            *op = (bp_op)i;
            return BP_OK;
        }
    return BP_EUNSUPPORTED;
}

/* --- name -> value index: open addressing, power-of-two capacity --------- */

struct bp_name_map {
    int cap;   /* slots */
    int *slot; /* value index + 1; 0 = empty */
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int map_insert(bp_graph *g, int index);

static int map_grow(bp_graph *g)
{
    struct bp_name_map *m = g->names;
    int old_cap = m->cap;
    int *old = m->slot;
    int cap = old_cap ? old_cap * 2 : 64;
    int *slot = calloc((size_t)cap, sizeof *slot);
    if (!slot)
        return BP_ENOMEM;
    m->slot = slot;
    m->cap = cap;
    for (int i = 0; i < old_cap; i++)
        if (old[i])
            map_insert(g, old[i] - 1);
    free(old);
    return BP_OK;
}

static int map_insert(bp_graph *g, int index)
{
    struct bp_name_map *m = g->names;
    uint64_t h = name_hash(g->values[index].name);
    for (int i = (int)(h & (uint64_t)(m->cap - 1));; i = (i + 1) & (m->cap - 1))
        if (!m->slot[i]) {
            m->slot[i] = index + 1;
            return BP_OK;
        }
}

int bp_graph_find(const bp_graph *g, const char *name)
{
    const struct bp_name_map *m = g->names;
    if (!m->cap)
        return -1;
    uint64_t h = name_hash(name);
    for (int i = (int)(h & (uint64_t)(m->cap - 1));; i = (i + 1) & (m->cap - 1)) {
        if (!m->slot[i])
            return -1;
        if (strcmp(g->values[m->slot[i] - 1].name, name) == 0)
            return m->slot[i] - 1;
    }
}

/* --- construction --------------------------------------------------------- */

int bp_graph_new(bp_graph **out, const char *path)
{
    bp_graph *g = calloc(1, sizeof *g);
    if (!g)
        return BP_ENOMEM;
    g->names = calloc(1, sizeof *g->names);
    g->path = strdup(path ? path : "");
    if (!g->names || !g->path) {
        bp_graph_free(&g);
        return BP_ENOMEM;
    }
    *out = g;
    return BP_OK;
}

int bp_graph_add_value(bp_graph *g, const char *name, int *index)
{
    if (bp_graph_find(g, name) >= 0)
        return bp_fail(BP_EINVAL, "%s: value '%s' is defined twice", g->path,
                       name);
    /* capacity doubles with the count: reallocate on powers of two */
    if ((g->n_values & (g->n_values - 1)) == 0) {
        size_t cap = g->n_values ? (size_t)g->n_values * 2 : 16;
        bp_value *v = realloc(g->values, cap * sizeof *v);
        if (!v)
            return BP_ENOMEM;
        g->values = v;
    }
    if ((g->n_values + 1) * 2 > g->names->cap && map_grow(g))
        return BP_ENOMEM;
    bp_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = strdup(name);
    if (!v->name)
        return BP_ENOMEM;
    v->producer = -1;
    v->dtype = BP_F32;
    map_insert(g, g->n_values);
    *index = g->n_values++;
    return BP_OK;
}

int bp_graph_add_node(bp_graph *g, bp_op op, const char *name, int n_in,
                      const int *in, int n_out, const int *out, int *index)
{
    if ((g->n_nodes & (g->n_nodes - 1)) == 0) {
        size_t cap = g->n_nodes ? (size_t)g->n_nodes * 2 : 16;
        bp_node *nn = realloc(g->nodes, cap * sizeof *nn);
        if (!nn)
            return BP_ENOMEM;
        g->nodes = nn;
    }
    bp_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->name = strdup(name);
    n->in = malloc((size_t)(n_in ? n_in : 1) * sizeof *n->in);
    n->out = malloc((size_t)(n_out ? n_out : 1) * sizeof *n->out);
    if (!n->name || !n->in || !n->out) {
        free(n->name);
        free(n->in);
        free(n->out);
        return BP_ENOMEM;
    }
    n->n_in = n_in;
    n->n_out = n_out;
    if (n_in)
        memcpy(n->in, in, (size_t)n_in * sizeof *in);
    if (n_out)
        memcpy(n->out, out, (size_t)n_out * sizeof *out);
    for (int i = 0; i < n_out; i++) {
        if (out[i] < 0)
            continue;
        bp_value *v = &g->values[out[i]];
        if (v->producer >= 0 || v->data || v->is_input) {
            free(n->name);
            free(n->in);
            free(n->out);
            return bp_fail(BP_EINVAL, "%s: node '%s' writes '%s', which is "
                           "already defined", g->path, name, v->name);
        }
        v->producer = g->n_nodes;
    }
    if (index)
        *index = g->n_nodes;
    g->n_nodes++;
    return BP_OK;
}

static void attr_clear(bp_attr *a)
{
    free(a->name);
    free(a->ints);
    free(a->floats);
    free(a->s);
    if (a->strings)
        for (int i = 0; i < a->n; i++)
            free(a->strings[i]);
    free(a->strings);
    bp_tensor_free(&a->t);
}

void bp_graph_free(bp_graph **gp)
{
    if (!gp || !*gp)
        return;
    bp_graph *g = *gp;
    for (int i = 0; i < g->n_values; i++) {
        free(g->values[i].name);
        bp_tensor_free(&g->values[i].data);
        bp_tensor_free(&g->values[i].known);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        bp_node *n = &g->nodes[i];
        free(n->name);
        free(n->in);
        free(n->out);
        for (int k = 0; k < n->n_attrs; k++)
            attr_clear(&n->attrs[k]);
        free(n->attrs);
    }
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    if (g->names)
        free(g->names->slot);
    free(g->names);
    free(g->path);
    free(g);
    *gp = NULL;
}

/* --- topological order (Kahn's algorithm, stable in file order) ----------- */

int bp_graph_toposort(bp_graph *g)
{
    int st = BP_OK;
    int n = g->n_nodes;
    int *pending = calloc((size_t)n + 1, sizeof *pending);
    int *order = malloc(((size_t)n + 1) * sizeof *order);
    char *done = calloc((size_t)g->n_values + 1, 1);
    bp_node *sorted = malloc(((size_t)n + 1) * sizeof *sorted);
    if (!pending || !order || !done || !sorted) {
        st = BP_ENOMEM;
        goto out;
    }
    for (int v = 0; v < g->n_values; v++) {
        const bp_value *val = &g->values[v];
        if (val->producer < 0 && !val->data && !val->is_input) {
            /* find a consumer to name in the message */
            for (int i = 0; i < n; i++)
                for (int k = 0; k < g->nodes[i].n_in; k++)
                    if (g->nodes[i].in[k] == v) {
                        st = bp_fail(BP_EINVAL, "%s: node '%s' reads '%s', "
                                     "which is no initializer, graph input or "
                                     "node output", g->path, g->nodes[i].name,
                                     val->name);
                        goto out;
                    }
        }
        done[v] = val->producer < 0;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            for (int o = 0; o < g->nodes[i].n_out; o++)
                if (g->nodes[i].in[k] >= 0 && g->nodes[i].in[k] == g->nodes[i].out[o]) {
                    st = bp_fail(BP_EINVAL, "%s: node '%s' reads its own "
                                 "output '%s'", g->path, g->nodes[i].name,
                                 g->values[g->nodes[i].in[k]].name);
                    goto out;
                }
    /* Repeated sweeps keep file order among ready nodes; graphs are small
     * enough that O(n * depth) is irrelevant next to loading them. */
    int placed = 0;
    char *used = calloc((size_t)n + 1, 1);
    if (!used) {
        st = BP_ENOMEM;
        goto out;
    }
    while (placed < n) {
        int progress = 0;
        for (int i = 0; i < n; i++) {
            if (used[i])
                continue;
            const bp_node *nd = &g->nodes[i];
            int ready = 1;
            for (int k = 0; k < nd->n_in && ready; k++)
                if (nd->in[k] >= 0 && !done[nd->in[k]])
                    ready = 0;
            if (!ready)
                continue;
            used[i] = 1;
            order[placed++] = i;
            for (int k = 0; k < nd->n_out; k++)
                if (nd->out[k] >= 0)
                    done[nd->out[k]] = 1;
            progress = 1;
        }
        if (!progress) {
            for (int i = 0; i < n; i++)
                if (!used[i]) {
                    st = bp_fail(BP_EINVAL, "%s: node '%s' is on a cycle (its "
                                 "inputs depend on its own output)", g->path,
                                 g->nodes[i].name);
                    break;
                }
            free(used);
            goto out;
        }
    }
    free(used);
    int *newpos = pending; /* reuse: old index -> new index */
    for (int i = 0; i < n; i++) {
        sorted[i] = g->nodes[order[i]];
        newpos[order[i]] = i;
    }
    memcpy(g->nodes, sorted, (size_t)n * sizeof *sorted);
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].producer >= 0)
            g->values[v].producer = newpos[g->values[v].producer];
out:
    free(pending);
    free(order);
    free(done);
    free(sorted);
    return st;
}

/* --- attributes ------------------------------------------------------------ */

const bp_attr *bp_node_attr(const bp_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0)
            return &n->attrs[i];
    return NULL;
}

int64_t bp_node_attr_int(const bp_node *n, const char *name, int64_t def)
{
    const bp_attr *a = bp_node_attr(n, name);
    return a && a->type == BP_ATTR_INT ? a->i : def;
}

double bp_node_attr_float(const bp_node *n, const char *name, double def)
{
    const bp_attr *a = bp_node_attr(n, name);
    return a && a->type == BP_ATTR_FLOAT ? a->f : def;
}

int bp_node_attr_ints(const bp_node *n, const char *name, int64_t *out,
                      int max)
{
    const bp_attr *a = bp_node_attr(n, name);
    if (!a || a->type != BP_ATTR_INTS)
        return -1;
    for (int i = 0; i < a->n && i < max; i++)
        out[i] = a->ints[i];
    return a->n;
}

/* --- activation size ------------------------------------------------------ */

int bp_graph_act_numel(bp_graph *g, int64_t *numel)
{
    int st = bp_graph_infer(g, 1);
    if (st)
        return st;
    int64_t sum = 0;
    for (int v = 0; v < g->n_values; v++) {
        const bp_value *val = &g->values[v];
        int64_t n;
        if (val->data || val->known || val->rank < 1 ||
            bp_shape_numel(val->rank, val->dims, &n) != BP_OK)
            continue;
        sum = n > INT64_MAX - sum ? INT64_MAX : sum + n;
    }
    *numel = sum;
    return BP_OK;
}

/* --- quantizable layers ---------------------------------------------------- */

int bp_graph_layers(bp_graph *g, bp_layer **layers, int *count)
{
    if (!g->batch) {
        int st = bp_graph_infer(g, 1);
        if (st)
            return st;
    }
    bp_layer *ls = calloc((size_t)g->n_nodes + 1, sizeof *ls);
    if (!ls)
        return BP_ENOMEM;
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const bp_node *n = &g->nodes[i];
        int w;
        if (n->op == BP_OP_CONV || n->op == BP_OP_GEMM)
            w = n->n_in > 1 ? n->in[1] : -1;
        else if (n->op == BP_OP_MATMUL) {
            /* x @ W with a constant W on the right is a layer; a constant
             * on the left only is unusual, and is not treated as one */
            w = n->n_in > 1 ? n->in[1] : -1;
        } else
            continue;
        if (w < 0 || !g->values[w].data)
            continue;
        const bp_value *wv = &g->values[w];
        bp_layer *l = &ls[k++];
        l->node = i;
        l->weight = w;
        l->bias = -1;
        if ((n->op == BP_OP_CONV || n->op == BP_OP_GEMM) && n->n_in > 2 &&
            n->in[2] >= 0 && g->values[n->in[2]].data)
            l->bias = n->in[2];
        l->name = wv->name;
        l->op = n->op;
        l->rank = wv->data->rank;
        memcpy(l->shape, wv->data->dims, sizeof l->shape);
        l->numel = bp_tensor_numel(wv->data);
        /* output channels: conv dim 0; Gemm: N (dim 0 when transB, else 1);
         * MatMul: last dim */
        if (n->op == BP_OP_CONV)
            l->out_channels = l->shape[0];
        else if (n->op == BP_OP_GEMM)
            l->out_channels = bp_node_attr_int(n, "transB", 0) ? l->shape[0]
                                                               : l->shape[1];
        else
            l->out_channels = l->shape[l->rank - 1];
        /* MACs per sample: every output element costs one dot product of
         * length numel / out_channels (per group for convs). */
        const bp_value *y = &g->values[n->out[0]];
        int64_t ynumel = 1;
        for (int d = 0; d < y->rank; d++)
            ynumel *= y->dims[d];
        int64_t dot = l->out_channels ? l->numel / l->out_channels : 0;
        l->macs = g->batch ? ynumel * dot / g->batch : 0;
    }
    *layers = ls;
    *count = k;
    return BP_OK;
}
