/* onnx.c - ONNX ModelProto -> bp_graph.
 *
 * Sizes in the file are checked against the bytes actually present before
 * any allocation: a tensor that declares 10^12 elements with 200 bytes of
 * data fails here, not in malloc. */
#include "onnx.h"
#include "hash.h"
#include "onnx.pb-c.h"
#include "status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_MODEL_BYTES ((int64_t)2 << 30) /* protobuf's own 2 GiB limit */

/* ONNX TensorProto.DataType -> bp_dtype */
static int map_dtype(int32_t t, bp_dtype *dt)
{
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: *dt = BP_F32; return 0;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: *dt = BP_F64; return 0;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: *dt = BP_I64; return 0;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: *dt = BP_I32; return 0;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: *dt = BP_U8; return 0;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: *dt = BP_U8; return 0;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: *dt = BP_I8; return 0;
    default: return -1;
    }
}

/* Converts a TensorProto into a new bp_tensor.  `what` names it in errors
 * ("initializer 'fc.weight'", "attribute 'value' of node 'Constant_3'"). */
static int load_tensor(const char *path, const char *what,
                       const Onnx__TensorProto *tp, bp_tensor **out)
{
    bp_dtype dt;
    if (tp->has_data_location &&
        tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return bp_fail(BP_EUNSUPPORTED, "%s: %s keeps its data in an external "
                       "file, which bitplan does not read; re-export with "
                       "the weights inside the model", path, what);
    if (map_dtype(tp->data_type, &dt))
        return bp_fail(BP_EUNSUPPORTED, "%s: %s has ONNX data type %d; "
                       "expected float, double, int64, int32, uint8, int8 or "
                       "bool", path, what, (int)tp->data_type);
    if (tp->n_dims > BP_MAX_RANK)
        return bp_fail(BP_EINVAL, "%s: %s has rank %zu; at most %d is "
                       "supported", path, what, tp->n_dims, BP_MAX_RANK);
    int64_t numel;
    if (bp_shape_numel((int)tp->n_dims, tp->dims, &numel))
        return bp_fail(BP_EINVAL, "%s: %s has an invalid shape (negative "
                       "or overflowing dims)", path, what);
    size_t es = bp_dtype_size(dt);
    size_t have; /* elements actually present in the file */
    const void *src = NULL;
    int typed = 0;
    if (tp->has_raw_data) {
        if (tp->raw_data.len % es)
            return bp_fail(BP_EINVAL, "%s: %s has %zu bytes of raw_data, not "
                           "a multiple of %zu", path, what, tp->raw_data.len, es);
        have = tp->raw_data.len / es;
        src = tp->raw_data.data;
    } else {
        typed = 1;
        switch (tp->data_type) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: have = tp->n_float_data; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: have = tp->n_double_data; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: have = tp->n_int64_data; break;
        default: have = tp->n_int32_data; break; /* int32, uint8, int8, bool */
        }
    }
    if ((int64_t)have != numel)
        return bp_fail(BP_EINVAL, "%s: %s declares %lld elements but holds "
                       "%zu", path, what, (long long)numel, have);
    bp_tensor *t;
    int st = bp_tensor_new(&t, dt, (int)tp->n_dims, tp->dims);
    if (st)
        return bp_fail(st, "%s: %s: %s", path, what, bp_errmsg());
    if (!typed) {
        /* raw_data is little-endian, as are the machines bitplan targets */
        memcpy(t->data, src, (size_t)numel * es);
    } else {
        for (int64_t i = 0; i < numel; i++) {
            switch (tp->data_type) {
            case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
                ((float *)t->data)[i] = tp->float_data[i]; break;
            case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
                ((double *)t->data)[i] = tp->double_data[i]; break;
            case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
                ((int64_t *)t->data)[i] = tp->int64_data[i]; break;
            default:
                bp_tensor_set(t, i, tp->int32_data[i]); break;
            }
        }
    }
    *out = t;
    return BP_OK;
}

static int copy_attr(const char *path, const char *node,
                     const Onnx__AttributeProto *ap, bp_attr *a)
{
    char what[512];
    a->name = strdup(ap->name ? ap->name : "");
    if (!a->name)
        return BP_ENOMEM;
    switch (ap->type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
        a->type = BP_ATTR_INT;
        a->i = ap->i;
        return BP_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
        a->type = BP_ATTR_FLOAT;
        a->f = ap->f;
        return BP_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        a->type = BP_ATTR_INTS;
        a->n = (int)ap->n_ints;
        a->ints = malloc((ap->n_ints + 1) * sizeof *a->ints);
        if (!a->ints)
            return BP_ENOMEM;
        if (ap->n_ints)
            memcpy(a->ints, ap->ints, ap->n_ints * sizeof *a->ints);
        return BP_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        a->type = BP_ATTR_FLOATS;
        a->n = (int)ap->n_floats;
        a->floats = malloc((ap->n_floats + 1) * sizeof *a->floats);
        if (!a->floats)
            return BP_ENOMEM;
        for (size_t i = 0; i < ap->n_floats; i++)
            a->floats[i] = ap->floats[i];
        return BP_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        a->type = BP_ATTR_STRING;
        a->s = malloc(ap->s.len + 1);
        if (!a->s)
            return BP_ENOMEM;
        if (ap->s.len)
            memcpy(a->s, ap->s.data, ap->s.len);
        a->s[ap->s.len] = '\0';
        return BP_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
        a->type = BP_ATTR_STRINGS;
        a->strings = calloc(ap->n_strings + 1, sizeof *a->strings);
        if (!a->strings)
            return BP_ENOMEM;
        for (size_t i = 0; i < ap->n_strings; i++) {
            a->strings[i] = malloc(ap->strings[i].len + 1);
            if (!a->strings[i])
                return BP_ENOMEM;
            a->n = (int)i + 1;
            memcpy(a->strings[i], ap->strings[i].data, ap->strings[i].len);
            a->strings[i][ap->strings[i].len] = '\0';
        }
        return BP_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
        a->type = BP_ATTR_TENSOR;
        if (!ap->t)
            return bp_fail(BP_EINVAL, "%s: attribute '%s' of node '%s' has "
                           "no tensor", path, a->name, node);
        snprintf(what, sizeof what, "attribute '%s' of node '%s'", a->name,
                 node);
        return load_tensor(path, what, ap->t, &a->t);
    default:
        /* graphs (If/Loop bodies) and sparse tensors: the op that carries
         * them is unsupported anyway; keep the name so the op check speaks */
        a->type = BP_ATTR_STRING;
        a->s = strdup("");
        return a->s ? BP_OK : BP_ENOMEM;
    }
}

/* Turns a Constant node's attribute into the value of its output. */
static int constant_value(const char *path, const bp_node *n, bp_tensor **out)
{
    const bp_attr *a = n->n_attrs ? &n->attrs[0] : NULL;
    if (!a)
        return bp_fail(BP_EINVAL, "%s: Constant node '%s' has no value",
                       path, n->name);
    int64_t one = 1, cnt = a->n;
    int st;
    if (a->type == BP_ATTR_TENSOR)
        return bp_tensor_clone(out, a->t);
    if (strcmp(a->name, "value_float") == 0 || strcmp(a->name, "value_int") == 0) {
        st = bp_tensor_new(out, a->type == BP_ATTR_FLOAT ? BP_F32 : BP_I64, 0, &one);
        if (!st)
            bp_tensor_set(*out, 0, a->type == BP_ATTR_FLOAT ? a->f : (double)a->i);
        if (!st && a->type == BP_ATTR_INT)
            ((int64_t *)(*out)->data)[0] = a->i;
        return st;
    }
    if (strcmp(a->name, "value_floats") == 0 || strcmp(a->name, "value_ints") == 0) {
        st = bp_tensor_new(out, a->type == BP_ATTR_FLOATS ? BP_F32 : BP_I64, 1, &cnt);
        for (int i = 0; !st && i < a->n; i++) {
            if (a->type == BP_ATTR_FLOATS)
                ((float *)(*out)->data)[i] = (float)a->floats[i];
            else
                ((int64_t *)(*out)->data)[i] = a->ints[i];
        }
        return st;
    }
    return bp_fail(BP_EUNSUPPORTED, "%s: Constant node '%s' uses attribute "
                   "'%s'; expected value, value_float(s) or value_int(s)",
                   path, n->name, a->name);
}

static int build(bp_graph *g, const Onnx__ModelProto *m)
{
    const char *path = g->path;
    int st;
    char what[512];
    const Onnx__GraphProto *gp = m->graph;
    if (!gp)
        return bp_fail(BP_EINVAL, "%s: the model has no graph", path);

    g->opset = -1;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const char *d = m->opset_import[i]->domain;
        if (!d || !*d || strcmp(d, "ai.onnx") == 0)
            g->opset = m->opset_import[i]->version;
    }
    if (g->opset < 0 && m->has_ir_version && m->ir_version >= 3)
        return bp_fail(BP_EINVAL, "%s: no opset_import for the default ONNX "
                       "domain", path);
    if (g->opset < 7 || g->opset > 18)
        return bp_fail(BP_EUNSUPPORTED, "%s: default-domain opset %lld; "
                       "bitplan reads opsets 7 to 18", path,
                       (long long)g->opset);

    /* initializers become constants */
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        int v;
        if (!tp->name || !*tp->name)
            return bp_fail(BP_EINVAL, "%s: initializer %zu has no name", path, i);
        if ((st = bp_graph_add_value(g, tp->name, &v)))
            return st;
        snprintf(what, sizeof what, "initializer '%s'", tp->name);
        if ((st = load_tensor(path, what, tp, &g->values[v].data)))
            return st;
        g->values[v].dtype = g->values[v].data->dtype;
    }
    if (gp->n_sparse_initializer)
        return bp_fail(BP_EUNSUPPORTED, "%s: sparse initializers are not "
                       "supported", path);

    /* graph inputs that are not initializers (older exporters list both) */
    g->inputs = malloc((gp->n_input + 1) * sizeof *g->inputs);
    if (!g->inputs)
        return BP_ENOMEM;
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || bp_graph_find(g, vi->name) >= 0)
            continue;
        int v;
        if ((st = bp_graph_add_value(g, vi->name, &v)))
            return st;
        bp_value *val = &g->values[v];
        val->is_input = 1;
        const Onnx__TypeProto *tp = vi->type;
        if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
            !tp->tensor_type->shape)
            return bp_fail(BP_EUNSUPPORTED, "%s: graph input '%s' is not a "
                           "tensor with a known rank", path, vi->name);
        const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
        if (map_dtype(tt->elem_type, &val->dtype))
            return bp_fail(BP_EUNSUPPORTED, "%s: graph input '%s' has ONNX "
                           "element type %d", path, vi->name, (int)tt->elem_type);
        if (tt->shape->n_dim > BP_MAX_RANK || tt->shape->n_dim < 1)
            return bp_fail(BP_EINVAL, "%s: graph input '%s' has rank %zu; "
                           "expected 1 to %d", path, vi->name, tt->shape->n_dim,
                           BP_MAX_RANK);
        val->decl_rank = (int)tt->shape->n_dim;
        for (size_t d = 0; d < tt->shape->n_dim; d++) {
            const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
            int64_t x = dim->value_case ==
                                ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                            ? dim->dim_value : -1;
            if (d > 0 && x < 0)
                return bp_fail(BP_EUNSUPPORTED, "%s: graph input '%s' has a "
                               "dynamic axis %zu; only the batch axis (0) may "
                               "be dynamic", path, vi->name, d);
            if (x == 0 || x > ((int64_t)1 << 40))
                return bp_fail(BP_EINVAL, "%s: graph input '%s' axis %zu has "
                               "size %lld", path, vi->name, d, (long long)x);
            val->decl_dims[d] = x;
        }
        g->inputs[g->n_inputs++] = v;
    }
    if (g->n_inputs == 0)
        return bp_fail(BP_EINVAL, "%s: the graph has no (non-initializer) "
                       "input", path);

    /* node outputs first, so inputs can refer to any of them */
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        for (size_t k = 0; k < np->n_output; k++) {
            if (!np->output[k][0])
                continue;
            int v;
            if ((st = bp_graph_add_value(g, np->output[k], &v)))
                return st;
        }
    }
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        char namebuf[64];
        const char *name = np->name;
        if (!name || !*name) {
            snprintf(namebuf, sizeof namebuf, "%s_%zu",
                     np->op_type ? np->op_type : "node", i);
            name = namebuf;
        }
        bp_op op;
        if (np->domain && *np->domain && strcmp(np->domain, "ai.onnx") != 0)
            return bp_fail(BP_EUNSUPPORTED, "%s: node '%s' uses op '%s' from "
                           "domain '%s'; only the default ONNX domain is "
                           "supported", path, name, np->op_type, np->domain);
        if (!np->op_type || bp_op_lookup(np->op_type, &op))
            return bp_fail(BP_EUNSUPPORTED, "%s: node '%s' has op type '%s', "
                           "which bitplan does not support", path, name,
                           np->op_type ? np->op_type : "");
        if (np->n_input > 64 || np->n_output > 16)
            return bp_fail(BP_EINVAL, "%s: node '%s' has %zu inputs and %zu "
                           "outputs", path, name, np->n_input, np->n_output);
        int in[64], outv[16];
        for (size_t k = 0; k < np->n_input; k++) {
            if (!np->input[k][0]) {
                in[k] = -1;
                continue;
            }
            in[k] = bp_graph_find(g, np->input[k]);
            if (in[k] < 0)
                return bp_fail(BP_EINVAL, "%s: node '%s' reads '%s', which is "
                               "no initializer, graph input or node output",
                               path, name, np->input[k]);
        }
        for (size_t k = 0; k < np->n_output; k++)
            outv[k] = np->output[k][0] ? bp_graph_find(g, np->output[k]) : -1;
        int idx;
        if ((st = bp_graph_add_node(g, op, name, (int)np->n_input, in,
                                    (int)np->n_output, outv, &idx)))
            return st;
        bp_node *n = &g->nodes[idx];
        n->attrs = calloc(np->n_attribute + 1, sizeof *n->attrs);
        if (!n->attrs)
            return BP_ENOMEM;
        for (size_t k = 0; k < np->n_attribute; k++) {
            n->n_attrs = (int)k + 1;
            if ((st = copy_attr(path, name, np->attribute[k], &n->attrs[k])))
                return st;
        }
    }

    g->outputs = malloc((gp->n_output + 1) * sizeof *g->outputs);
    if (!g->outputs)
        return BP_ENOMEM;
    for (size_t i = 0; i < gp->n_output; i++) {
        int v = gp->output[i]->name ? bp_graph_find(g, gp->output[i]->name) : -1;
        if (v < 0)
            return bp_fail(BP_EINVAL, "%s: graph output '%s' is not produced "
                           "by any node", path,
                           gp->output[i]->name ? gp->output[i]->name : "");
        g->outputs[g->n_outputs++] = v;
    }
    if (g->n_outputs == 0)
        return bp_fail(BP_EINVAL, "%s: the graph has no output", path);

    if ((st = bp_graph_toposort(g)))
        return st;
    /* Constant nodes become constants right away: folding and inference
     * then treat them like initializers. */
    for (int i = 0; i < g->n_nodes; i++) {
        bp_node *n = &g->nodes[i];
        if (n->op != BP_OP_CONSTANT)
            continue;
        if (n->n_out != 1 || n->out[0] < 0)
            return bp_fail(BP_EINVAL, "%s: Constant node '%s' must have one "
                           "output", path, n->name);
        bp_value *v = &g->values[n->out[0]];
        if ((st = constant_value(path, n, &v->data)))
            return st;
        v->dtype = v->data->dtype;
        v->producer = -1;
    }
    return BP_OK;
}

int bp_onnx_load_mem(bp_graph **out, const void *data, size_t len,
                     const char *name)
{
    bp_graph *g = NULL;
    int st = bp_graph_new(&g, name);
    if (st)
        return st;
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, data);
    if (!m) {
        bp_graph_free(&g);
        return bp_fail(BP_EINVAL, "%s: not a valid ONNX model (the protobuf "
                       "does not parse: truncated or not ONNX)", name);
    }
    bp_sha256 h;
    bp_sha256_init(&h);
    bp_sha256_update(&h, data, len);
    bp_sha256_hex(&h, g->hash);
    st = build(g, m);
    onnx__model_proto__free_unpacked(m, NULL);
    if (!st)
        st = bp_graph_fold(g);
    if (!st)
        st = bp_graph_infer(g, 1);
    if (st) {
        bp_graph_free(&g);
        return st;
    }
    *out = g;
    return BP_OK;
}

int bp_onnx_load(bp_graph **out, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bp_fail(BP_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return bp_fail(BP_EIO, "%s: not a regular file", path);
    }
    if (sb.st_size == 0 || sb.st_size > MAX_MODEL_BYTES) {
        fclose(f);
        return bp_fail(BP_EINVAL, "%s: %s; expected an ONNX model", path,
                       sb.st_size ? "larger than 2 GiB" : "empty file");
    }
    size_t len = (size_t)sb.st_size;
    void *buf = malloc(len);
    if (!buf) {
        fclose(f);
        return BP_ENOMEM;
    }
    size_t got = fread(buf, 1, len, f);
    fclose(f);
    if (got != len) {
        free(buf);
        return bp_fail(BP_EIO, "%s: read error", path);
    }
    int st = bp_onnx_load_mem(out, buf, len, path);
    free(buf);
    return st;
}
