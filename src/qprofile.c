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

/* The cost model's traffic of a layer at batch 1 (ilp/cost.h): packed
 * weights, 8 bytes per output channel, 8-bit activations in and out. */
static double moved_bytes(const entry *e, int w)
{
    double act = (double)(e->in[0] * e->in[1] * e->in[2] + e->out[0] * e->out[1] *
                                                             e->out[2]);
    return ceil((double)e->numel * w / 8) + 8.0 * (double)e->out[0] + act;
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

/* Appends text to a growing buffer. */
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

static void skey(sbuf *b, const char *key, cJSON *value, int last)
{
    sput(b, "\"");
    sput(b, key);
    sput(b, "\": ");
    sjson(b, value);
    sput(b, last ? "\n" : ",\n");
}

static int sflush(sbuf *b, const char *path)
{
    int st = b->oom ? BP_ENOMEM : bp_write_file_atomic(path, b->p, b->n);
    free(b->p);
    memset(b, 0, sizeof *b);
    return st;
}

/* The roofline next to a table: "DIR/NAME.json" -> "NAME-roofline.json". */
static void roofline_name(const char *path, char *full, size_t n, char *rel,
                          size_t nr)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t stem = strlen(base);
    if (stem > 5 && strcmp(base + stem - 5, ".json") == 0)
        stem -= 5;
    snprintf(rel, nr, "%.*s-roofline.json", (int)stem, base);
    snprintf(full, n, "%.*s%s", (int)(base - path), path, rel);
}

/* The one writer of the profile format: bitplan's profile schema
 * (profiles/README.md, issue 4).  With model layers measured: a "table"
 * profile at path whose entries are those layers by name at a_bits 8
 * (which covers every narrower activation), and its "fallback", the
 * fitted roofline, as NAME-roofline.json beside it; without: the roofline
 * alone at path.  One table entry per line. */
static int write_profile(const char *path, const bp_qprofile_opts *o,
                         const elist *L, const roof *rf, int threads,
                         int repeat)
{
    char cpu[256], src[1024], desc[512], full[4096], rel[1024], name[256];
    int n_layers = 0, st;
    for (int i = 0; i < L->n; i++)
        n_layers += L->e[i].layer[0] != 0;
    const char *isa = bp_qk_isa_name(bp_qk_isa_get());
    const char *pname = o->name ? o->name : "measured";
    cpu_model(cpu, sizeof cpu);
    snprintf(desc, sizeof desc, "bitplan's integer executor on %s, %d threads, "
             "%s kernels, batch 1", cpu, threads, isa);
    /* the roofline */
    sbuf b = {0};
    if (n_layers) {
        roofline_name(path, full, sizeof full, rel, sizeof rel);
        snprintf(name, sizeof name, "%s-roofline", pname);
    } else {
        snprintf(full, sizeof full, "%s", path);
        snprintf(name, sizeof name, "%s", pname);
    }
    sput(&b, "{\n");
    skey(&b, "format", cJSON_CreateString("bitplan-profile"), 0);
    skey(&b, "version", cJSON_CreateNumber(1), 0);
    skey(&b, "name", cJSON_CreateString(name), 0);
    skey(&b, "kind", cJSON_CreateString("roofline"), 0);
    skey(&b, "description", cJSON_CreateString(desc), 0);
    cJSON *peaks = cJSON_CreateArray();
    for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS; w++) {
        if (!(o->bits & (1u << w)))
            continue;
        cJSON *pk = cJSON_CreateObject();
        cJSON_AddNumberToObject(pk, "w_bits", w);
        cJSON_AddNumberToObject(pk, "a_bits", 8);
        cJSON_AddNumberToObject(pk, "ops_per_s", rf->peak[w]);
        snprintf(src, sizeof src, "bitplan profile --measure: the highest rate "
                 "(2 x MACs / s) of the measured convolution and GEMM shapes at "
                 "%d-bit weights, batch 1, median of %d runs (activations of "
                 "2 to 8 bits share the 8-bit kernels)", w, repeat);
        cJSON_AddStringToObject(pk, "source", src);
        cJSON_AddItemToArray(peaks, pk);
    }
    skey(&b, "peak_ops", peaks, 0);
    cJSON *mem = cJSON_CreateObject();
    cJSON_AddNumberToObject(mem, "bytes_per_s", rf->bandwidth);
    cJSON_AddStringToObject(mem, "source", "bitplan profile --measure: the "
                            "highest rate of packed weights + 8 bytes per "
                            "channel + int8 activations moved by a measured "
                            "layer");
    skey(&b, "memory", mem, 0);
    cJSON *ov = cJSON_CreateObject();
    cJSON_AddNumberToObject(ov, "seconds", rf->overhead);
    cJSON_AddStringToObject(ov, "source", "bitplan profile --measure: half "
                            "the time of the fastest measured layer");
    skey(&b, "launch_overhead", ov, 0);
    cJSON *mb = cJSON_CreateObject();
    cJSON_AddStringToObject(mb, "compute", "next-native");
    cJSON_AddStringToObject(mb, "storage", "packed");
    cJSON_AddStringToObject(mb, "source", "bitplan's executor keeps 2- to 8-bit "
                            "weights packed and unpacks them next to its int8 "
                            "GEMM; 2- to 7-bit activations live in 8-bit "
                            "containers");
    skey(&b, "missing_bits", mb, 1);
    sput(&b, "}\n");
    if ((st = sflush(&b, full)) || !n_layers)
        return st;
    /* the table */
    snprintf(src, sizeof src,
             "bitplan profile --measure: %s; every entry is a layer timed "
             "inside whole runs of its model (median of %d), the time of "
             "the model's other ops (input quantization, pooling, output "
             "dequantization) added to the layer that consumes their result, "
             "so a model's entries at one width sum to its measured latency",
             desc, repeat);
    sput(&b, "{\n");
    skey(&b, "format", cJSON_CreateString("bitplan-profile"), 0);
    skey(&b, "version", cJSON_CreateNumber(1), 0);
    skey(&b, "name", cJSON_CreateString(pname), 0);
    skey(&b, "kind", cJSON_CreateString("table"), 0);
    skey(&b, "description", cJSON_CreateString(desc), 0);
    skey(&b, "source", cJSON_CreateString(src), 0);
    skey(&b, "threads", cJSON_CreateNumber(threads), 0);
    skey(&b, "isa", cJSON_CreateString(isa), 0);
    skey(&b, "batch", cJSON_CreateNumber(1), 0);
    skey(&b, "fallback", cJSON_CreateString(rel), 0);
    sput(&b, "\"entries\": [");
    int first = 1;
    for (int i = 0; i < L->n; i++) {
        const entry *e = &L->e[i];
        if (!e->layer[0])
            continue;
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "layer", e->layer);
        cJSON_AddNumberToObject(t, "w_bits", e->w_bits);
        cJSON_AddNumberToObject(t, "a_bits", 8);
        cJSON_AddNumberToObject(t, "latency_s", e->latency);
        cJSON_AddNumberToObject(t, "kernel_s", e->kernel);
        cJSON_AddStringToObject(t, "op", e->op);
        cJSON_AddItemToObject(t, "shape", ints_json(e->wshape, e->rank));
        cJSON_AddStringToObject(t, "key", e->key);
        cJSON_AddNumberToObject(t, "macs", (double)e->macs);
        cJSON_AddStringToObject(t, "model_sha256", e->sha);
        sput(&b, first ? "\n " : ",\n ");
        first = 0;
        sjson(&b, t);
    }
    sput(&b, "\n]\n}\n");
    return sflush(&b, path);
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

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        bp_fail(BP_EIO, "%s: cannot open", path);
        return NULL;
    }
    sbuf b = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk - 1, f)) > 0) {
        chunk[got] = 0;
        sput(&b, chunk);
    }
    fclose(f);
    cJSON *root = b.p && !b.oom ? cJSON_Parse(b.p) : NULL;
    free(b.p);
    if (!root)
        bp_fail(BP_EINVAL, "%s: not valid JSON", path);
    return root;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The cost model's latency on a roofline (ilp/cost.h) at batch 1. */
static int roofline_latency(const cJSON *rf, const char *path, const bp_layer *l,
                            int64_t in, int64_t out, int w, int a, double *t)
{
    const cJSON *pk, *best = NULL;
    cJSON_ArrayForEach(pk, cJSON_GetObjectItemCaseSensitive(rf, "peak_ops")) {
        if (num(pk, "w_bits") >= w && num(pk, "a_bits") >= a &&
            (!best || num(pk, "ops_per_s") > num(best, "ops_per_s")))
            best = pk;
    }
    double bw = num(cJSON_GetObjectItemCaseSensitive(rf, "memory"), "bytes_per_s");
    double ov = num(cJSON_GetObjectItemCaseSensitive(rf, "launch_overhead"),
                    "seconds");
    if (!best || !(bw > 0) || !(ov >= 0))
        return bp_fail(BP_EINVAL, "%s: no peak_ops pair covers w%d a%d, or "
                       "memory / launch_overhead missing", path, w, a);
    double bytes = ceil((double)l->numel * w / 8) + 8.0 * (double)l->out_channels +
                   (double)(in + out) * a / 8;
    double tc = 2.0 * (double)l->macs / num(best, "ops_per_s"), tm = bytes / bw;
    *t = ov + (tc > tm ? tc : tm);
    return BP_OK;
}

int bp_qprofile_predict(const char *path, bp_graph *g, const bp_plan *plan,
                        double *seconds)
{
    cJSON *root = read_json(path), *fb = NULL;
    if (!root)
        return bp_errmsg()[0] ? BP_EINVAL : BP_ENOMEM;
    int st = BP_OK;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
    const cJSON *rfl = root, *entries = NULL;
    char fpath[4096] = "";
    if (cJSON_IsString(kind) && strcmp(kind->valuestring, "table") == 0) {
        entries = cJSON_GetObjectItemCaseSensitive(root, "entries");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "fallback");
        if (cJSON_IsString(f)) {
            const char *slash = strrchr(path, '/');
            if (f->valuestring[0] == '/' || !slash)
                snprintf(fpath, sizeof fpath, "%s", f->valuestring);
            else
                snprintf(fpath, sizeof fpath, "%.*s%s", (int)(slash + 1 - path),
                         path, f->valuestring);
            fb = read_json(fpath);
        }
        rfl = fb;
    }
    bp_layer *ls = NULL;
    int nl = 0;
    if ((st = bp_graph_layers(g, &ls, &nl))) {
        cJSON_Delete(root);
        cJSON_Delete(fb);
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
        /* the entry at exactly (w, a), else the fastest wider in both */
        double exact = -1, wider = -1;
        const cJSON *e;
        cJSON_ArrayForEach(e, entries) {
            const cJSON *ln = cJSON_GetObjectItemCaseSensitive(e, "layer");
            double ew = num(e, "w_bits"), ea = num(e, "a_bits"), t = num(e, "latency_s");
            if (!cJSON_IsString(ln) || strcmp(ln->valuestring, ls[i].name) ||
                !(t >= 0))
                continue;
            if (ew == w && ea == a)
                exact = t;
            else if (ew >= w && ea >= a && (wider < 0 || t < wider))
                wider = t;
        }
        if (exact >= 0 || wider >= 0) {
            total += exact >= 0 ? exact : wider;
            continue;
        }
        const bp_node *n = &g->nodes[ls[i].node];
        int64_t in = 1, out = 1;
        const bp_value *xv = &g->values[n->in[0]], *yv = &g->values[n->out[0]];
        for (int d = 1; d < xv->rank; d++)
            in *= xv->dims[d];
        for (int d = 1; d < yv->rank; d++)
            out *= yv->dims[d];
        double t = 0;
        if (!rfl)
            st = bp_fail(BP_EINVAL, "%s: no entry for layer '%s' and no "
                         "readable roofline fallback", path, ls[i].name);
        else if (!(st = roofline_latency(rfl, fb ? fpath : path, &ls[i], in, out,
                                         w, a, &t)))
            total += t;
    }
    free(ls);
    cJSON_Delete(root);
    cJSON_Delete(fb);
    if (!st)
        *seconds = total;
    return st;
}
