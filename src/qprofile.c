/* qprofile.c - measures the integer executor's layers and writes a table
 * profile with a fitted roofline fallback (see qprofile.h). */
#include "qprofile.h"
#include "atomic.h"
#include "qcalib.h"
#include "qexec.h"
#include "qgraph.h"
#include "shape.h"
#include "status.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void bp_qprofile_opts_init(bp_qprofile_opts *o)
{
    memset(o, 0, sizeof *o);
    o->repeat = 0;
    for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS; w++)
        o->bits |= 1u << w;
    o->name = "measured";
}

/* One measured layer. */
typedef struct entry {
    char op[8];
    char layer[128];      /* "" for grid shapes */
    char sha[65];
    char key[160];
    int rank;
    int64_t wshape[4], in[3], out[3], stride[2], pads[4], dil[2], group;
    int64_t macs, numel;
    int w_bits;
    double latency, kernel;
} entry;

typedef struct elist {
    entry *e;
    int n, cap;
} elist;

static entry *push(elist *l)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        entry *e = realloc(l->e, (size_t)cap * sizeof *e);
        if (!e)
            return NULL;
        l->e = e;
        l->cap = cap;
    }
    entry *e = &l->e[l->n++];
    memset(e, 0, sizeof *e);
    return e;
}

void bp_qprofile_key(const bp_graph *g, const bp_layer *l, char *buf, size_t n)
{
    const bp_node *nd = &g->nodes[l->node];
    if (nd->op == BP_OP_CONV) {
        bp_conv_geom geo;
        if (bp_conv_geom_of(g, nd, &geo) == BP_OK) {
            /* trailing pads only shape oh/ow: the output size says it */
            snprintf(buf, n, "Conv c%lldx%lldx%lld m%lld k%lldx%lld s%lldx%lld "
                     "p%lld,%lld o%lldx%lld d%lldx%lld g%lld",
                     (long long)geo.c, (long long)geo.h, (long long)geo.w,
                     (long long)geo.m, (long long)geo.kh, (long long)geo.kw,
                     (long long)geo.stride_h, (long long)geo.stride_w,
                     (long long)geo.pad_t, (long long)geo.pad_l,
                     (long long)geo.oh, (long long)geo.ow, (long long)geo.dil_h,
                     (long long)geo.dil_w, (long long)geo.group);
            return;
        }
    }
    int64_t k = l->out_channels ? l->numel / l->out_channels : 0;
    snprintf(buf, n, "Gemm k%lld n%lld", (long long)k,
             (long long)l->out_channels);
}

static void fill_entry(entry *e, const bp_graph *g, const bp_layer *l)
{
    const bp_node *nd = &g->nodes[l->node];
    snprintf(e->op, sizeof e->op, "%s", bp_op_name(nd->op));
    bp_qprofile_key(g, l, e->key, sizeof e->key);
    e->rank = l->rank > 4 ? 4 : l->rank;
    for (int d = 0; d < e->rank; d++)
        e->wshape[d] = l->shape[d];
    e->macs = l->macs;
    e->numel = l->numel;
    e->group = 1;
    e->stride[0] = e->stride[1] = e->dil[0] = e->dil[1] = 1;
    bp_conv_geom geo;
    if (nd->op == BP_OP_CONV && bp_conv_geom_of(g, nd, &geo) == BP_OK) {
        e->in[0] = geo.c, e->in[1] = geo.h, e->in[2] = geo.w;
        e->out[0] = geo.m, e->out[1] = geo.oh, e->out[2] = geo.ow;
        e->stride[0] = geo.stride_h, e->stride[1] = geo.stride_w;
        e->dil[0] = geo.dil_h, e->dil[1] = geo.dil_w;
        e->pads[0] = geo.pad_t, e->pads[1] = geo.pad_l;
        int64_t p[4];
        if (bp_node_attr_ints(nd, "pads", p, 4) == 4)
            e->pads[2] = p[2], e->pads[3] = p[3];
        e->group = geo.group;
    } else {
        int64_t k = l->out_channels ? l->numel / l->out_channels : 0;
        e->in[0] = k, e->in[1] = e->in[2] = 1;
        e->out[0] = l->out_channels, e->out[1] = e->out[2] = 1;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Random inputs for a graph with one input: n samples, N(0, 1). */
static float *random_input(bp_graph *g, int64_t n, int64_t *per)
{
    const bp_value *in = &g->values[g->inputs[0]];
    int64_t p = 1;
    for (int d = 1; d < in->decl_rank; d++)
        p *= in->decl_dims[d] > 0 ? in->decl_dims[d] : 1;
    float *x = malloc((size_t)(n * p + 1) * sizeof *x);
    if (!x)
        return NULL;
    uint64_t s = 0x1234567u;
    for (int64_t i = 0; i < n * p; i += 2) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = ((double)(s >> 11) + 0.5) * 0x1.0p-53;
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        double v = (double)(s >> 11) * 0x1.0p-53;
        double r = sqrt(-2 * log(u));
        x[i] = (float)(r * cos(6.283185307179586 * v));
        if (i + 1 < n * p)
            x[i + 1] = (float)(r * sin(6.283185307179586 * v));
    }
    *per = p;
    return x;
}

/* A uniform plan for g. */
static int uniform_plan(bp_graph *g, int w, int a, bp_plan **out)
{
    bp_layer *ls;
    int nl, st;
    if ((st = bp_graph_layers(g, &ls, &nl)))
        return st;
    bp_plan *p;
    if ((st = bp_plan_new(&p, nl, 0))) {
        free(ls);
        return st;
    }
    p->model_sha256 = strdup(g->hash);
    for (int i = 0; i < nl; i++) {
        p->layers[i].name = strdup(ls[i].name);
        p->layers[i].w_bits = w;
        p->layers[i].a_bits = a;
    }
    free(ls);
    *out = p;
    return BP_OK;
}

/* Times g at every weight width; one entry per layer and width. Layers of
 * models are timed in place; grid graphs contribute only the layers whose
 * index is in [first, last]. */
static int measure_graph(elist *L, bp_graph *g, const bp_qprofile_opts *o,
                         int repeat, int model, FILE *log)
{
    int st = BP_OK;
    int64_t per;
    float *x = random_input(g, 4, &per);
    bp_qcalib *qc = NULL;
    bp_layer *ls = NULL;
    int nl = 0;
    double *samples = NULL, *med = NULL;
    if (!x)
        return BP_ENOMEM;
    if ((st = bp_qcalib_new(&qc, g, x, 4, 4)) ||
        (st = bp_graph_layers(g, &ls, &nl)))
        goto out;
    for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS && !st; w++) {
        if (!(o->bits & (1u << w)))
            continue;
        bp_plan *p = NULL;
        bp_qmodel *qm = NULL;
        bp_qexec *ex = NULL;
        if ((st = uniform_plan(g, w, 8, &p)) ||
            (st = bp_qmodel_new(&qm, g, p, qc, NULL)) ||
            (st = bp_qexec_new(&ex, qm, 1, o->threads))) {
            bp_qmodel_free(&qm);
            bp_plan_free(&p);
            break;
        }
        int nops = qm->n_ops;
        samples = realloc(samples, (size_t)(nops * repeat) * sizeof *samples);
        med = realloc(med, (size_t)nops * sizeof *med);
        double *one = malloc((size_t)nops * sizeof *one);
        double *col = malloc((size_t)repeat * sizeof *col);
        const float *in[1] = {x};
        if (!samples || !med || !one || !col) {
            st = BP_ENOMEM;
        } else {
            for (int r = -2; r < repeat && !st; r++) { /* two warm-ups */
                st = bp_qexec_run_timed(ex, in, 1, one);
                if (r >= 0)
                    for (int i = 0; i < nops; i++)
                        samples[i * repeat + r] = one[i];
            }
            double total = 0, layers = 0;
            for (int i = 0; i < nops && !st; i++) {
                memcpy(col, samples + i * repeat, (size_t)repeat * sizeof *col);
                qsort(col, (size_t)repeat, sizeof *col, cmp_double);
                med[i] = col[repeat / 2];
                total += med[i];
                if (qm->ops[i].kind == BP_QOP_LAYER)
                    layers += med[i];
            }
            /* non-layer ops join the next layer (the last for trailing ones) */
            double carry = 0;
            entry *last = NULL;
            for (int i = 0; i < nops && !st; i++) {
                const bp_qop *op = &qm->ops[i];
                if (op->kind != BP_QOP_LAYER) {
                    if (model)
                        carry += med[i];
                    continue;
                }
                const bp_qlayer *ql = &qm->layers[op->layer];
                entry *e = push(L);
                if (!e) {
                    st = BP_ENOMEM;
                    break;
                }
                fill_entry(e, g, &ls[ql->index]);
                if (model) {
                    snprintf(e->layer, sizeof e->layer, "%s", ql->name);
                    snprintf(e->sha, sizeof e->sha, "%s", g->hash);
                }
                e->w_bits = w;
                e->kernel = med[i];
                e->latency = med[i] + carry;
                carry = 0;
                last = e;
            }
            if (last)
                last->latency += carry;
            if (log && model)
                fprintf(log, "  %s: weights %d bits: %.3f ms per sample "
                        "(layers alone %.3f ms)\n", g->path, w, total * 1e3,
                        layers * 1e3);
        }
        free(one);
        free(col);
        bp_qexec_free(&ex);
        bp_qmodel_free(&qm);
        bp_plan_free(&p);
    }
out:
    free(samples);
    free(med);
    free(ls);
    bp_qcalib_free(&qc);
    free(x);
    return st;
}

/* ---- single-layer graphs for the grid ------------------------------------ */

static int gvalue(bp_graph *g, const char *name, int *v)
{
    return bp_graph_add_value(g, name, v);
}

static bp_attr *gattr(bp_node *n, const char *name, bp_attr_type t)
{
    bp_attr *a = realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof *a);
    if (!a)
        return NULL;
    n->attrs = a;
    a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = strdup(name);
    a->type = t;
    return a;
}

static int gints(bp_node *n, const char *name, int cnt, const int64_t *v)
{
    bp_attr *a = gattr(n, name, BP_ATTR_INTS);
    if (!a || !a->name || !(a->ints = malloc((size_t)cnt * sizeof *v)))
        return BP_ENOMEM;
    a->n = cnt;
    memcpy(a->ints, v, (size_t)cnt * sizeof *v);
    return BP_OK;
}

static int gconst(bp_graph *g, const char *name, int rank, const int64_t *dims,
                  double sd, int *v)
{
    int st = gvalue(g, name, v);
    bp_tensor *t;
    if (st || (st = bp_tensor_new(&t, BP_F32, rank, dims)))
        return st;
    uint64_t s = 99;
    for (int64_t i = 0; i < bp_tensor_numel(t); i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        ((float *)t->data)[i] = (float)(sd * (((double)(s >> 11) * 0x1.0p-53) - 0.5));
    }
    g->values[*v].data = t;
    g->values[*v].rank = rank;
    memcpy(g->values[*v].dims, dims, (size_t)rank * sizeof *dims);
    return BP_OK;
}

/* input -> Conv (or Gemm) -> Relu -> Identity: the layer writes uint8 codes
 * through the same epilogue as inside a model. */
static int grid_graph(bp_graph **out, int conv, int64_t c, int64_t h, int64_t m,
                      int64_t k, int64_t s)
{
    bp_graph *g;
    int st = bp_graph_new(&g, "grid");
    if (st)
        return st;
    int x, w, y, r, o, idx;
    int64_t dims4[4] = {1, c, h, h}, dims2[2] = {1, c};
    if ((st = gvalue(g, "input", &x)))
        goto fail;
    if (conv) {
        int64_t wd[4] = {m, c, k, k};
        if ((st = gconst(g, "w", 4, wd, 0.2, &w)) ||
            (st = gvalue(g, "y", &y)))
            goto fail;
        int in[2] = {x, w};
        if ((st = bp_graph_add_node(g, BP_OP_CONV, "conv", 2, in, 1, &y, &idx)))
            goto fail;
        int64_t ks[2] = {k, k}, st2[2] = {s, s}, pd[4] = {k / 2, k / 2, k / 2, k / 2};
        if ((st = gints(&g->nodes[idx], "kernel_shape", 2, ks)) ||
            (st = gints(&g->nodes[idx], "strides", 2, st2)) ||
            (st = gints(&g->nodes[idx], "pads", 4, pd)))
            goto fail;
    } else {
        int64_t wd[2] = {c, m};
        if ((st = gconst(g, "w", 2, wd, 0.2, &w)) || (st = gvalue(g, "y", &y)))
            goto fail;
        int in[2] = {x, w};
        if ((st = bp_graph_add_node(g, BP_OP_MATMUL, "gemm", 2, in, 1, &y, &idx)))
            goto fail;
    }
    if ((st = gvalue(g, "r", &r)) || (st = gvalue(g, "out", &o)) ||
        (st = bp_graph_add_node(g, BP_OP_RELU, "relu", 1, &y, 1, &r, NULL)) ||
        (st = bp_graph_add_node(g, BP_OP_IDENTITY, "id", 1, &r, 1, &o, NULL)))
        goto fail;
    g->inputs = malloc(sizeof *g->inputs);
    g->outputs = malloc(sizeof *g->outputs);
    if (!g->inputs || !g->outputs) {
        st = BP_ENOMEM;
        goto fail;
    }
    g->inputs[0] = x;
    g->outputs[0] = o;
    g->n_inputs = g->n_outputs = 1;
    bp_value *iv = &g->values[x];
    iv->is_input = 1;
    iv->decl_rank = conv ? 4 : 2;
    memcpy(iv->decl_dims, conv ? dims4 : dims2, sizeof(int64_t) * (conv ? 4 : 2));
    iv->decl_dims[0] = -1;
    g->opset = 13;
    snprintf(g->hash, sizeof g->hash, "grid");
    if ((st = bp_graph_infer(g, 1)))
        goto fail;
    *out = g;
    return BP_OK;
fail:
    bp_graph_free(&g);
    return st;
}

/* conv: C, H(=W), M, k, stride; gemm: K, 1, N, 0, 0 */
static const int64_t grid_full[][5] = {
    {16, 32, 16, 3, 1}, {32, 16, 32, 3, 1}, {64, 56, 64, 3, 1},
    {64, 28, 64, 3, 1}, {128, 28, 128, 3, 1}, {256, 14, 256, 3, 1},
    {512, 7, 512, 3, 1}, {64, 56, 128, 3, 2}, {128, 28, 256, 3, 2},
    {256, 14, 512, 3, 2}, {64, 56, 256, 1, 1}, {256, 56, 64, 1, 1},
    {512, 7, 512, 1, 1}, {3, 224, 64, 7, 2},
    {64, 0, 128, 0, 0}, {128, 0, 64, 0, 0}, {512, 0, 1000, 0, 0},
    {1024, 0, 1024, 0, 0}, {2048, 0, 1000, 0, 0}};
static const int64_t grid_quick[][5] = {
    {16, 8, 16, 3, 1}, {32, 8, 32, 1, 1}, {64, 0, 32, 0, 0}};

static int measure_grid(elist *L, const bp_qprofile_opts *o, int repeat,
                        FILE *log)
{
    const int64_t(*grid)[5] = o->quick ? grid_quick : grid_full;
    int n = o->quick ? (int)(sizeof grid_quick / sizeof grid_quick[0])
                     : (int)(sizeof grid_full / sizeof grid_full[0]);
    for (int i = 0; i < n; i++) {
        bp_graph *g = NULL;
        int conv = grid[i][3] > 0;
        int st = grid_graph(&g, conv, grid[i][0], grid[i][1], grid[i][2],
                            grid[i][3], grid[i][4]);
        if (!st)
            st = measure_graph(L, g, o, repeat, 0, NULL);
        bp_graph_free(&g);
        if (st)
            return st;
        if (log)
            fprintf(log, "  grid %d/%d: %s\n", i + 1, n, L->e[L->n - 1].key);
    }
    return BP_OK;
}

/* ---- the roofline fit ------------------------------------------------------ */

typedef struct roof {
    double peak[BP_QW_MAX_BITS + 1]; /* ops/s by weight width */
    double bandwidth, overhead;
} roof;

static double moved_bytes(const entry *e, int w)
{
    double act = (double)(e->in[0] * e->in[1] * e->in[2] + e->out[0] * e->out[1] *
                                                             e->out[2]);
    return ceil((double)e->numel * w / 8) + act;
}

static void fit(const elist *L, const bp_qprofile_opts *o, roof *r)
{
    memset(r, 0, sizeof *r);
    r->overhead = INFINITY;
    for (int i = 0; i < L->n; i++)
        if (L->e[i].kernel < r->overhead)
            r->overhead = L->e[i].kernel;
    if (!isfinite(r->overhead))
        r->overhead = 0;
    r->overhead *= 0.5;
    for (int i = 0; i < L->n; i++) {
        const entry *e = &L->e[i];
        double t = e->kernel - r->overhead;
        if (t <= 0)
            continue;
        double ops = 2.0 * (double)e->macs / t;
        if (ops > r->peak[e->w_bits])
            r->peak[e->w_bits] = ops;
        double bw = moved_bytes(e, e->w_bits) / t;
        if (bw > r->bandwidth)
            r->bandwidth = bw;
    }
    for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS; w++)
        if ((o->bits & (1u << w)) && r->peak[w] <= 0)
            r->peak[w] = 1e9;
    if (r->bandwidth <= 0)
        r->bandwidth = 1e9;
}

static const char *cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return buf;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c += 2;
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, n, "%s", c);
            }
            break;
        }
    fclose(f);
    return buf;
}

static cJSON *ints_json(const int64_t *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
    return a;
}

/* Appends printf output to a growing buffer. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sput(sbuf *b, const char *s)
{
    size_t l = strlen(s);
    if (b->oom)
        return;
    if (b->n + l + 1 > b->cap) {
        size_t cap = (b->cap ? 2 * b->cap : 65536) + l;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, l + 1);
    b->n += l;
}

/* Prints item unformatted and frees it. */
static void sjson(sbuf *b, cJSON *item)
{
    char *t = cJSON_PrintUnformatted(item);
    if (t)
        sput(b, t);
    else
        b->oom = 1;
    free(t);
    cJSON_Delete(item);
}

/* The one writer of the profile format (documented in qprofile.h): header
 * fields one per line, one table entry per line. */
static int write_profile(const char *path, const bp_qprofile_opts *o,
                         const elist *L, const roof *rf, int threads,
                         int repeat)
{
    char cpu[256], src[1024];
    sbuf b = {0};
    snprintf(src, sizeof src,
             "bitplan profile --measure: integer executor on %s, %d threads, "
             "%s kernels, batch 1, median of %d runs; model layers timed "
             "inside whole-model runs (non-layer ops added to the layer that "
             "consumes them), grid shapes timed alone; a_bits do not change "
             "the kernels (8-bit containers), so every a_bits repeats the "
             "a_bits=8 measurement",
             cpu_model(cpu, sizeof cpu), threads,
             bp_qk_isa_name(bp_qk_isa_get()), repeat);
    sput(&b, "{\n\"name\": ");
    sjson(&b, cJSON_CreateString(o->name ? o->name : "measured"));
    sput(&b, ",\n\"kind\": \"table\",\n\"source\": ");
    sjson(&b, cJSON_CreateString(src));
    char line[128];
    snprintf(line, sizeof line, ",\n\"threads\": %d,\n\"isa\": \"%s\",\n"
             "\"batch\": 1,\n\"table\": [", threads,
             bp_qk_isa_name(bp_qk_isa_get()));
    sput(&b, line);
    int first = 1;
    for (int i = 0; i < L->n; i++) {
        const entry *e = &L->e[i];
        for (int a = BP_ACT_MIN_BITS; a <= BP_ACT_MAX_BITS; a++) {
            cJSON *t = cJSON_CreateObject();
            cJSON_AddStringToObject(t, "op", e->op);
            if (e->layer[0]) {
                cJSON_AddStringToObject(t, "layer", e->layer);
                cJSON_AddStringToObject(t, "model_sha256", e->sha);
            }
            cJSON_AddStringToObject(t, "key", e->key);
            cJSON_AddItemToObject(t, "shape", ints_json(e->wshape, e->rank));
            cJSON_AddItemToObject(t, "input", ints_json(e->in, 3));
            cJSON_AddItemToObject(t, "output", ints_json(e->out, 3));
            cJSON_AddItemToObject(t, "stride", ints_json(e->stride, 2));
            cJSON_AddItemToObject(t, "pads", ints_json(e->pads, 4));
            cJSON_AddItemToObject(t, "dilation", ints_json(e->dil, 2));
            cJSON_AddNumberToObject(t, "group", (double)e->group);
            cJSON_AddNumberToObject(t, "macs", (double)e->macs);
            cJSON_AddNumberToObject(t, "w_bits", e->w_bits);
            cJSON_AddNumberToObject(t, "a_bits", a);
            cJSON_AddNumberToObject(t, "latency_s", e->latency);
            cJSON_AddNumberToObject(t, "kernel_s", e->kernel);
            sput(&b, first ? "\n " : ",\n ");
            first = 0;
            sjson(&b, t);
        }
    }
    sput(&b, "\n],\n\"fallback\": ");
    cJSON *fb = cJSON_CreateObject();
    cJSON_AddStringToObject(fb, "kind", "roofline");
    cJSON_AddStringToObject(fb, "source",
                            "fitted from the table: overhead_s is half the "
                            "fastest layer; peak_ops (ops = 2 x MACs) per "
                            "weight width and bandwidth_bytes_s (packed "
                            "weights + int8 activations) are the highest "
                            "rates measured; latency = overhead_s + max(ops / "
                            "peak_ops, bytes / bandwidth_bytes_s)");
    cJSON *pk = cJSON_AddObjectToObject(fb, "peak_ops");
    for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS; w++)
        for (int a = BP_ACT_MIN_BITS; a <= BP_ACT_MAX_BITS && (o->bits & (1u << w)); a++) {
            char k[16];
            snprintf(k, sizeof k, "w%da%d", w, a);
            cJSON_AddNumberToObject(pk, k, rf->peak[w]);
        }
    cJSON_AddNumberToObject(fb, "bandwidth_bytes_s", rf->bandwidth);
    cJSON_AddNumberToObject(fb, "overhead_s", rf->overhead);
    sjson(&b, fb);
    sput(&b, "\n}\n");
    if (b.oom) {
        free(b.p);
        return BP_ENOMEM;
    }
    int st = bp_write_file_atomic(path, b.p, b.n);
    free(b.p);
    return st;
}

int bp_qprofile_measure(const char *path, const bp_qprofile_opts *o,
                        FILE *log)
{
    bp_qprofile_opts d;
    if (!o) {
        bp_qprofile_opts_init(&d);
        o = &d;
    }
    int repeat = o->repeat > 0 ? o->repeat : o->quick ? 3 : 15;
    int threads = o->threads;
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c < 1 ? 1 : c > 64 ? 64 : (int)c;
    }
    bp_qprofile_opts oo = *o;
    oo.threads = threads;
    elist L = {0};
    int st = BP_OK;
    for (int i = 0; i < o->n_models && !st; i++) {
        if (log)
            fprintf(log, "measuring %s\n", o->models[i]->path);
        st = measure_graph(&L, o->models[i], &oo, repeat, 1, log);
    }
    if (!st) {
        if (log)
            fprintf(log, "measuring the shape grid\n");
        st = measure_grid(&L, &oo, repeat, log);
    }
    roof rf;
    if (!st) {
        fit(&L, &oo, &rf);
        st = write_profile(path, &oo, &L, &rf, threads, repeat);
    }
    free(L.e);
    return st;
}

/* ---- the reader ------------------------------------------------------------- */

int bp_qprofile_predict(const char *path, bp_graph *g, const bp_plan *plan,
                        double *seconds)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bp_fail(BP_EIO, "%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)(len > 0 ? len : 0) + 1);
    if (!text) {
        fclose(f);
        return BP_ENOMEM;
    }
    size_t got = fread(text, 1, (size_t)(len > 0 ? len : 0), f);
    fclose(f);
    text[got] = 0;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return bp_fail(BP_EINVAL, "%s: not valid JSON", path);
    const cJSON *tab = cJSON_GetObjectItemCaseSensitive(root, "table");
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(root, "fallback");
    bp_layer *ls = NULL;
    int nl = 0, st;
    if ((st = bp_graph_layers(g, &ls, &nl))) {
        cJSON_Delete(root);
        return st;
    }
    double total = 0;
    for (int i = 0; i < nl && !st; i++) {
        int w = 8, a = 8;
        for (int j = 0; j < plan->n_layers; j++)
            if (plan->layers[j].name && strcmp(plan->layers[j].name, ls[i].name) == 0) {
                w = plan->layers[j].w_bits;
                a = plan->layers[j].a_bits;
            }
        char key[160];
        bp_qprofile_key(g, &ls[i], key, sizeof key);
        double by_layer = -1, by_key = -1;
        const cJSON *e;
        cJSON_ArrayForEach(e, tab) {
            const cJSON *wb = cJSON_GetObjectItemCaseSensitive(e, "w_bits");
            const cJSON *ab = cJSON_GetObjectItemCaseSensitive(e, "a_bits");
            const cJSON *lt = cJSON_GetObjectItemCaseSensitive(e, "latency_s");
            const cJSON *kt = cJSON_GetObjectItemCaseSensitive(e, "kernel_s");
            if (!cJSON_IsNumber(wb) || wb->valueint != w || !cJSON_IsNumber(ab) ||
                ab->valueint != a || !cJSON_IsNumber(lt))
                continue;
            const cJSON *ln = cJSON_GetObjectItemCaseSensitive(e, "layer");
            const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "model_sha256");
            const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "key");
            if (cJSON_IsString(ln) && cJSON_IsString(sh) &&
                strcmp(ln->valuestring, ls[i].name) == 0 &&
                strcmp(sh->valuestring, g->hash) == 0)
                by_layer = lt->valuedouble;
            else if (cJSON_IsString(k) && strcmp(k->valuestring, key) == 0 &&
                     by_key < 0)
                by_key = cJSON_IsNumber(kt) ? kt->valuedouble : lt->valuedouble;
        }
        if (by_layer >= 0)
            total += by_layer;
        else if (by_key >= 0)
            total += by_key;
        else {
            const cJSON *pk = cJSON_GetObjectItemCaseSensitive(fb, "peak_ops");
            char pkey[16];
            snprintf(pkey, sizeof pkey, "w%da%d", w, a);
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(pk, pkey);
            const cJSON *bw = cJSON_GetObjectItemCaseSensitive(fb, "bandwidth_bytes_s");
            const cJSON *ov = cJSON_GetObjectItemCaseSensitive(fb, "overhead_s");
            if (!cJSON_IsNumber(p) || !cJSON_IsNumber(bw) || !cJSON_IsNumber(ov)) {
                st = bp_fail(BP_EINVAL, "%s: no entry for layer '%s' at w%da%d "
                             "and no roofline fallback", path, ls[i].name, w, a);
                break;
            }
            double bytes = ceil((double)ls[i].numel * w / 8);
            double tc = 2.0 * (double)ls[i].macs / p->valuedouble;
            double tm = bytes / bw->valuedouble;
            total += ov->valuedouble + (tc > tm ? tc : tm);
        }
    }
    free(ls);
    cJSON_Delete(root);
    if (!st)
        *seconds = total;
    return st;
}
