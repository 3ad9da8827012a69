/* qprofile.c - measures the integer executor's layers and writes a table
 * profile with a fitted roofline fallback (see qprofile.h). */
#include "qprofile.h"
#include "atomic.h"
#include "../ilp/cost.h"   /* the cost model: one authority */
#include "qcalib.h"
#include "qexec.h"
#include "qgraph.h"
#include "qrun.h"
#include "shape.h"
#include "status.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
    int64_t wshape[4], in[3], out[3], group;
    int64_t macs, numel;
    int w_bits, residual;
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
    bp_conv_geom geo;
    if (nd->op == BP_OP_CONV && bp_conv_geom_of(g, nd, &geo) == BP_OK) {
        e->in[0] = geo.c, e->in[1] = geo.h, e->in[2] = geo.w;
        e->out[0] = geo.m, e->out[1] = geo.oh, e->out[2] = geo.ow;
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

/* ---- measuring graphs ------------------------------------------------------- */

/* One graph under measurement: its uniform plans at every width are timed
 * in several passes interleaved with the other graphs', so that a change of
 * load on the machine spreads over all of them instead of biasing a few. */
typedef struct gmeas {
    bp_graph *g;          /* owned when `grid` */
    int grid;             /* 0: a --model; 1: a layer of the grid (uint8
                             input); 2: the ops between layers */
    float *x;             /* 4 samples */
    bp_qcalib *qc;
    int n_ops;
    bp_qop_info *info;    /* the ops (bp_qmodel_ops order = the run's) */
    double *s[BP_QW_MAX_BITS + 1]; /* (n_ops x cap) seconds, per width
                                      (models: timed op by op) */
    double *whole[BP_QW_MAX_BITS + 1]; /* (cap) whole runs, per width */
    int n[BP_QW_MAX_BITS + 1];
    int cap;
    double t[BP_QW_MAX_BITS + 1];  /* whole run, per width (0: none) */
    double *q[BP_QW_MAX_BITS + 1]; /* (n_ops) median time of each op, its
                                      clock read taken off */
    bp_layer_facts *facts;         /* grid: the cost model's view of g */
    int n_facts;
} gmeas;

static void gm_free(gmeas *m)
{
    if (m->grid)
        bp_graph_free(&m->g);
    free(m->x);
    bp_qcalib_free(&m->qc);
    free(m->info);
    free(m->facts);
    for (int w = 0; w <= BP_QW_MAX_BITS; w++) {
        free(m->q[w]);
        free(m->s[w]);
        free(m->whole[w]);
    }
    memset(m, 0, sizeof *m);
}

/* Random inputs and calibration; grid graphs take |N(0,1)| inputs, so that
 * their layer reads uint8 codes like a layer after a ReLU does (most layers
 * of a network; a model's own first layer is measured with --model). */
static int gm_init(gmeas *m, bp_graph *g, int grid, int cap)
{
    int64_t per;
    memset(m, 0, sizeof *m);
    m->g = g;
    m->grid = grid;
    m->cap = cap;
    if (!(m->x = random_input(g, 4, &per)))
        return BP_ENOMEM;
    if (grid == 1)
        for (int64_t i = 0; i < 4 * per; i++)
            m->x[i] = fabsf(m->x[i]);
    bp_model_facts mf;
    int st = bp_qcalib_new(&m->qc, g, m->x, 4, 4);
    if (st || (st = bp_qmodel_ops(g, &m->info, &m->n_ops)) ||
        (grid == 1 && (st = bp_layer_facts_from_graph(g, &m->facts,
                                                      &m->n_facts, &mf))))
        return st;
    for (int w = 0; w <= BP_QW_MAX_BITS; w++)
        if (!(m->s[w] = malloc((size_t)(m->n_ops * cap + 1) * sizeof(double))) ||
            !(m->whole[w] = malloc((size_t)(cap + 1) * sizeof(double))))
            return BP_ENOMEM;
    return BP_OK;
}

/* Seconds one clock_gettime takes: the median of 9 rounds of 1000 calls.
 * Timed op by op, every op's time holds one clock read besides its work,
 * which a whole run (two reads in all) does not: about 24 ns on a 2-vCPU
 * KVM guest, a fifth of the example MLP's 0.45 us over its five ops, by
 * which the profiles over-predicted it (+28%, --model). */
static double clock_read_cost(void)
{
    double r[9];
    for (int k = 0; k < 9; k++) {
        struct timespec t0, t1, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < 1000; i++)
            clock_gettime(CLOCK_MONOTONIC, &t);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        r[k] = ((double)(t1.tv_sec - t0.tv_sec) +
                (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9) / 1001;
    }
    return bp_qrun_median(r, 9);
}

/* One pass at width w: warm-up runs, then `runs` runs timed op by op (each
 * op's time less clk, the clock read it holds) and as many whole runs. */
static int gm_pass(gmeas *m, int w, int runs, int threads, double clk)
{
    bp_plan *p = NULL;
    bp_qmodel *qm = NULL;
    bp_qexec *ex = NULL;
    double *one = NULL;
    int st;
    if ((st = uniform_plan(m->g, w, 8, &p)) ||
        (st = bp_qmodel_new(&qm, m->g, p, m->qc, NULL)) ||
        (st = bp_qexec_new(&ex, qm, 1, threads)))
        goto out;
    if (qm->n_ops != m->n_ops) {
        st = bp_fail(BP_EINTERNAL, "%s: %d ops at %d bits, %d planned",
                     m->g->path, qm->n_ops, w, m->n_ops);
        goto out;
    }
    one = malloc((size_t)(m->n_ops + 1) * sizeof *one);
    const float *in[1] = {m->x};
    if (!one) {
        st = BP_ENOMEM;
        goto out;
    }
    /* warm up for 2 ms at least: a new executor's idle worker threads spin
     * a while before they sleep, and slow a small layer on a shared core
     * meanwhile; `bitplan run` times after its pass over the data */
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    for (int k = 0; !st && k < 10000; k++) {
        st = bp_qexec_run(ex, in, 1);
        clock_gettime(CLOCK_MONOTONIC, &w1);
        if (k >= 1 && (double)(w1.tv_sec - w0.tv_sec) +
                          (double)(w1.tv_nsec - w0.tv_nsec) * 1e-9 > 2e-3)
            break;
    }
    for (int r = 0; r < runs && !st && m->n[w] < m->cap; r++) {
        int k = m->n[w]++;
        /* op by op: what the entries and the fit take */
        if ((st = bp_qexec_run_timed(ex, in, 1, one)))
            break;
        for (int i = 0; i < m->n_ops; i++)
            m->s[w][i * m->cap + k] = one[i] > clk ? one[i] - clk : 0;
        /* the whole run, what `bitplan run` times and the fit is fitted to */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        st = bp_qexec_run(ex, in, 1);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        m->whole[w][k] = (double)(t1.tv_sec - t0.tv_sec) +
                         (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    }
out:
    free(one);
    bp_qexec_free(&ex);
    bp_qmodel_free(&qm);
    bp_plan_free(&p);
    return st;
}

/* Times are the median of all runs, the passes pooled: the statistic
 * `bitplan run` reports, so that a profile predicts what run will measure.
 * The passes still matter: spread over the whole measurement, they give
 * every model the same mix of the machine's fast and slow spells.  The
 * median of the quietest pass, kept before, estimated the fast spells
 * alone: on a 2-vCPU VM that alternates between them (the example CNN: 23
 * and 40 us from one 50 ms window to the next), profiles under-predicted
 * run's medians by up to 48% on the example MLP and 24% on ResNet-18, and
 * by under 21% with the pooled median (bench_qexec, same runs).
 *
 * The whole-run time of m at every measured width, and for a model
 * its layers' entries, each its time plus that of the other ops run
 * since the previous layer (the last layer takes the trailing ones), so that
 * its entries at one width sum to its measured run. */
static int gm_collect(gmeas *m, const bp_qprofile_opts *o, elist *L,
                      FILE *log)
{
    bp_layer *ls = NULL;
    int nl = 0, st;
    if ((st = bp_graph_layers(m->g, &ls, &nl)))
        return st;
    for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS && !st; w++) {
        if (!(o->bits & (1u << w)) || !m->n[w])
            continue;
        m->t[w] = bp_qrun_median(m->whole[w], m->n[w]);
        if (!(m->q[w] = malloc((size_t)(m->n_ops + 1) * sizeof *m->q[w]))) {
            st = BP_ENOMEM;
            break;
        }
        for (int i = 0; i < m->n_ops; i++)
            m->q[w][i] = bp_qrun_median(m->s[w] + i * m->cap, m->n[w]);
        if (m->grid)
            continue;
        double carry = 0, layers = 0;
        entry *last = NULL;
        for (int i = 0; i < m->n_ops && !st; i++) {
            double t = m->q[w][i];
            const bp_qop_info *q = &m->info[i];
            if (q->kind != BP_QOP_LAYER) {
                carry += t;
                continue;
            }
            layers += t;
            entry *e = push(L);
            if (!e) {
                st = BP_ENOMEM;
                break;
            }
            fill_entry(e, m->g, &ls[q->layer]);
            snprintf(e->layer, sizeof e->layer, "%s", ls[q->layer].name);
            snprintf(e->sha, sizeof e->sha, "%s", m->g->hash);
            e->w_bits = w;
            e->residual = q->residual;
            e->kernel = t;
            e->latency = t + carry;
            carry = 0;
            last = e;
        }
        if (last)
            last->latency += carry;
        if (log) {
            double all = 0;
            for (int i = 0; i < m->n_ops; i++)
                all += m->q[w][i];
            fprintf(log, "  %s: weights %d bits: %.4g ms per sample "
                    "(whole run; its ops timed one by one %.4g ms, the "
                    "layers %.4g ms)\n", m->g->path, w, m->t[w] * 1e3,
                    all * 1e3, layers * 1e3);
        }
    }
    free(ls);
    return st;
}

/* ---- the grid ---------------------------------------------------------------- */

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

static int gnode(bp_graph *g, bp_op op, const char *name, int in0, int in1,
                 int *out, int *idx)
{
    int in[2] = {in0, in1}, st;
    if ((st = gvalue(g, name, out)))
        return st;
    return bp_graph_add_node(g, op, name, in1 >= 0 ? 2 : 1, in, 1, out, idx);
}

static int gconv(bp_graph *g, const char *name, int x, int64_t c, int64_t m,
                 int64_t k, int64_t s, int *y)
{
    char wn[64];
    int w, idx, st;
    int64_t wd[4] = {m, c, k, k}, ks[2] = {k, k}, ss[2] = {s, s};
    int64_t pd[4] = {k / 2, k / 2, k / 2, k / 2};
    snprintf(wn, sizeof wn, "%s.w", name);
    if ((st = gconst(g, wn, 4, wd, 0.2, &w)) ||
        (st = gnode(g, BP_OP_CONV, name, x, w, y, &idx)) ||
        (st = gints(&g->nodes[idx], "kernel_shape", 2, ks)) ||
        (st = gints(&g->nodes[idx], "strides", 2, ss)) ||
        (st = gints(&g->nodes[idx], "pads", 4, pd)))
        return st;
    return BP_OK;
}

/* The graph's one input x (1, c, h, h) or (1, c) and its outputs. */
static int gio(bp_graph *g, int x, int rank, int64_t c, int64_t h,
               const int *outs, int n_out)
{
    int64_t dims[4] = {-1, c, h, h};
    g->inputs = malloc(sizeof *g->inputs);
    g->outputs = malloc((size_t)n_out * sizeof *g->outputs);
    if (!g->inputs || !g->outputs)
        return BP_ENOMEM;
    g->inputs[0] = x;
    memcpy(g->outputs, outs, (size_t)n_out * sizeof *outs);
    g->n_inputs = 1;
    g->n_outputs = n_out;
    bp_value *iv = &g->values[x];
    iv->is_input = 1;
    iv->decl_rank = rank;
    memcpy(iv->decl_dims, dims, (size_t)rank * sizeof *dims);
    g->opset = 13;
    snprintf(g->hash, sizeof g->hash, "grid");
    return bp_graph_infer(g, 1);
}

/* One grid shape: a Conv (c x h x h -> m, k x k, stride s, pads k/2) or,
 * with k == 0, a Gemm (c -> m); with `res`, a residual block around it
 * (a 1 x 1 projection of the input with the same stride runs first, and the
 * Add fuses into the measured layer's epilogue, as in ResNet); then a ReLU
 * the layer fuses, so it writes uint8 codes through the usual epilogue;
 * with `next`, a second layer after it, so that layers are also timed
 * with a layer rather than the output's dequantization after them, as
 * inside a network. */
typedef struct gshape {
    int64_t c, h, m, k, s;
    int res;
    int64_t next;   /* > 0: a second layer follows, into this many channels
                       (3 x 3, stride 1, for a Conv) */
} gshape;

static int grid_graph(bp_graph **out, const gshape *q)
{
    bp_graph *g;
    int st = bp_graph_new(&g, "grid");
    if (st)
        return st;
    int x, y, r, w, idx;
    if ((st = gvalue(g, "input", &x)))
        goto fail;
    if (q->k > 0) {
        int proj = -1;
        if (q->res && (st = gconv(g, "proj", x, q->c, q->m, 1, q->s, &proj)))
            goto fail;
        if ((st = gconv(g, "conv", x, q->c, q->m, q->k, q->s, &y)))
            goto fail;
        if (q->res && (st = gnode(g, BP_OP_ADD, "add", y, proj, &y, NULL)))
            goto fail;
    } else {
        int64_t wd[2] = {q->c, q->m};
        if ((st = gconst(g, "w", 2, wd, 0.2, &w)) ||
            (st = gnode(g, BP_OP_MATMUL, "gemm", x, w, &y, &idx)))
            goto fail;
    }
    if ((st = gnode(g, BP_OP_RELU, "relu", y, -1, &r, NULL)))
        goto fail;
    if (q->next > 0 && q->k > 0) {
        if ((st = gconv(g, "conv2", r, q->m, q->next, 3, 1, &y)) ||
            (st = gnode(g, BP_OP_RELU, "relu2", y, -1, &r, NULL)))
            goto fail;
    } else if (q->next > 0) {
        int64_t wd[2] = {q->m, q->next};
        if ((st = gconst(g, "w2", 2, wd, 0.2, &w)) ||
            (st = gnode(g, BP_OP_MATMUL, "gemm2", r, w, &y, &idx)) ||
            (st = gnode(g, BP_OP_RELU, "relu2", y, -1, &r, NULL)))
            goto fail;
    }
    /* an Identity last, so that the layer's output is not the graph's: a
     * layer writing a graph output directly skips its requantising
     * epilogue (int32 out), which no layer inside a network does */
    int o;
    if ((st = gnode(g, BP_OP_IDENTITY, "id", r, -1, &o, NULL)) ||
        (st = gio(g, x, q->k > 0 ? 4 : 2, q->c, q->h, &o, 1)))
        goto fail;
    *out = g;
    return BP_OK;
fail:
    bp_graph_free(&g);
    return st;
}

/* The ops between layers, each on its own: x (c x h x h) -> Relu -> Add
 * (x, relu) -> MaxPool 3x3/2 -> Flatten -> output 1, and the pooled map ->
 * GlobalAveragePool -> output 2 (plus the input's Quantize and the two
 * Dequants). */
static int op_graph(bp_graph **out, int64_t c, int64_t h)
{
    bp_graph *g;
    int st = bp_graph_new(&g, "grid-ops");
    if (st)
        return st;
    int x, r, a, m, f, gp, idx;
    int64_t ks[2] = {3, 3}, ss[2] = {2, 2}, pd[4] = {1, 1, 1, 1};
    if ((st = gvalue(g, "input", &x)) ||
        (st = gnode(g, BP_OP_RELU, "relu", x, -1, &r, NULL)) ||
        (st = gnode(g, BP_OP_ADD, "add", x, r, &a, NULL)) ||
        (st = gnode(g, BP_OP_MAXPOOL, "pool", a, -1, &m, &idx)) ||
        (st = gints(&g->nodes[idx], "kernel_shape", 2, ks)) ||
        (st = gints(&g->nodes[idx], "strides", 2, ss)) ||
        (st = gints(&g->nodes[idx], "pads", 4, pd)) ||
        (st = gnode(g, BP_OP_FLATTEN, "flat", m, -1, &f, NULL)) ||
        (st = gnode(g, BP_OP_GLOBALAVERAGEPOOL, "gap", m, -1, &gp, NULL)))
        goto fail;
    int outs[2] = {f, gp};
    if ((st = gio(g, x, 4, c, h, outs, 2)))
        goto fail;
    *out = g;
    return BP_OK;
fail:
    bp_graph_free(&g);
    return st;
}

/* Layer shapes: those of small convolutional networks on 8x8 to 32x32
 * inputs and MLPs (where fixed costs dominate), and of ImageNet networks
 * (ResNet stages, stems, projections, classifiers).  Conv: c, h (= w), m,
 * k, stride, residual; Gemm: k, 0, n, 0, 0, 0. */
static const gshape grid_full[] = {
    {1, 8, 16, 3, 1, 0, 0}, {16, 8, 16, 3, 1, 1, 0}, {16, 8, 32, 3, 2, 1, 0},
    {32, 4, 32, 3, 1, 0, 0}, {8, 16, 8, 3, 1, 0, 0}, {3, 32, 16, 3, 1, 0, 0},
    {16, 32, 16, 3, 1, 1, 0}, {16, 32, 32, 3, 2, 0, 0}, {32, 16, 32, 3, 1, 0, 0},
    {32, 16, 64, 3, 2, 1, 0}, {64, 8, 64, 3, 1, 1, 0}, {32, 16, 64, 1, 2, 0, 0},
    {64, 8, 128, 3, 2, 0, 0}, {128, 4, 128, 3, 1, 0, 0}, {16, 32, 32, 1, 1, 0, 0},
    {32, 32, 32, 3, 1, 0, 0}, {64, 16, 64, 3, 1, 0, 0}, {4, 8, 8, 3, 1, 0, 0},
    {16, 14, 32, 5, 1, 0, 0}, {96, 14, 96, 1, 1, 0, 0},
    {3, 224, 64, 7, 2, 0, 0}, {64, 56, 64, 3, 1, 0, 0}, {64, 56, 64, 3, 1, 1, 0},
    {64, 28, 64, 3, 1, 0, 0}, {64, 56, 128, 3, 2, 1, 0}, {128, 28, 128, 3, 1, 0, 0},
    {128, 28, 256, 3, 2, 1, 0}, {256, 14, 256, 3, 1, 0, 0}, {256, 14, 256, 3, 1, 1, 0},
    {256, 14, 512, 3, 2, 0, 0}, {512, 7, 512, 3, 1, 0, 0}, {512, 7, 512, 3, 1, 1, 0},
    {64, 56, 256, 1, 1, 0, 0}, {256, 56, 64, 1, 1, 0, 0}, {512, 7, 512, 1, 1, 0, 0},
    {128, 28, 256, 1, 2, 0, 0}, {256, 14, 1024, 1, 1, 0, 0},
    {16, 0, 16, 0, 0, 0, 0}, {32, 0, 10, 0, 0, 0, 0}, {64, 0, 10, 0, 0, 0, 0},
    {64, 0, 32, 0, 0, 0, 0}, {64, 0, 128, 0, 0, 0, 0}, {128, 0, 64, 0, 0, 0, 0},
    {128, 0, 10, 0, 0, 0, 0}, {256, 0, 256, 0, 0, 0, 0}, {512, 0, 10, 0, 0, 0, 0},
    {784, 0, 128, 0, 0, 0, 0}, {256, 0, 512, 0, 0, 0, 0}, {512, 0, 1000, 0, 0, 0, 0},
    {1024, 0, 1024, 0, 0, 0, 0}, {2048, 0, 1000, 0, 0, 0, 0},
    /* two layers in a row */
    {1, 8, 16, 3, 1, 0, 16}, {16, 8, 32, 3, 2, 0, 32}, {3, 32, 32, 3, 1, 0, 32},
    {32, 8, 32, 1, 1, 0, 64}, {64, 28, 64, 3, 1, 0, 64}, {256, 14, 256, 1, 1, 0, 256},
    {64, 0, 128, 0, 0, 0, 64}, {128, 0, 64, 0, 0, 0, 10}, {32, 0, 64, 0, 0, 0, 10},
    {784, 0, 256, 0, 0, 0, 128}, {256, 0, 256, 0, 0, 0, 256},
    {512, 0, 512, 0, 0, 0, 10}, {512, 0, 1000, 0, 0, 0, 100}};
static const gshape grid_quick[] = {
    {16, 8, 16, 3, 1, 1, 0}, {32, 8, 32, 1, 1, 0, 0}, {64, 0, 32, 0, 0, 0, 0},
    {64, 0, 32, 0, 0, 0, 10}};
/* op graphs: c, h */
static const int64_t ops_full[][2] = {
    {8, 8}, {16, 16}, {32, 32}, {16, 64}, {64, 56}, {256, 14}, {3, 224},
    {64, 112}, {128, 56}, {32, 112}, {16, 224}};
static const int64_t ops_quick[][2] = {{8, 8}};

/* ---- the fits ---------------------------------------------------------------- */

typedef struct roof {
    double peak[BP_QW_MAX_BITS + 1]; /* ops/s by weight width */
    double bandwidth, overhead;
} roof;

/* The cost model's traffic of a layer at batch 1 (ilp/cost.h): packed
 * weights, 8 bytes per output channel, 8-bit activations in and out. */
static double moved_bytes(const bp_layer_facts *f, int w)
{
    return ceil((double)f->numel * w / 8) + 8.0 * (double)f->out_channels +
           (double)(f->in_numel + f->out_numel);
}

/* The plain roofline (for readers that do not know "layer_model"): the
 * highest rates of the one-layer grid models, their whole runs taken as
 * the layer's time (so the rates are, if anything, low). */
static void fit_roofline(const gmeas *M, int nm, const bp_qprofile_opts *o,
                         roof *r)
{
    memset(r, 0, sizeof *r);
    r->overhead = INFINITY;
    for (int i = 0; i < nm; i++)
        for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS; w++)
            if (M[i].n_facts == 1 && M[i].t[w] > 0 && M[i].t[w] < r->overhead)
                r->overhead = M[i].t[w];
    if (!isfinite(r->overhead))
        r->overhead = 0;
    r->overhead *= 0.5;
    for (int i = 0; i < nm; i++)
        for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS; w++) {
            const bp_layer_facts *f = M[i].facts;
            double t = M[i].t[w] - r->overhead;
            if (M[i].n_facts != 1 || !(t > 0))
                continue;
            double ops = 2.0 * (double)f->macs / t, bw = moved_bytes(f, w) / t;
            r->peak[w] = ops > r->peak[w] ? ops : r->peak[w];
            r->bandwidth = bw > r->bandwidth ? bw : r->bandwidth;
        }
    for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS; w++)
        if ((o->bits & (1u << w)) && r->peak[w] <= 0)
            r->peak[w] = 1e9;
    if (r->bandwidth <= 0)
        r->bandwidth = 1e9;
}

/* Solves G[P,P] z = h[P] for the passive set P (Gaussian elimination with
 * partial pivoting; A is n x (n + 1) scratch); 0 when singular. */
static int solve_passive(const double *G, const double *h, int n,
                         const int *passive, double *z, double *A, int *idx)
{
    int k = 0;
    for (int j = 0; j < n; j++)
        if (passive[j])
            idx[k++] = j;
    for (int r = 0; r < k; r++) {
        for (int c = 0; c < k; c++)
            A[r * (k + 1) + c] = G[idx[r] * n + idx[c]];
        A[r * (k + 1) + k] = h[idx[r]];
    }
#define AT(r, c) A[(r) * (k + 1) + (c)]
    for (int c = 0; c < k; c++) {
        int piv = c;
        for (int r = c + 1; r < k; r++)
            if (fabs(AT(r, c)) > fabs(AT(piv, c)))
                piv = r;
        if (fabs(AT(piv, c)) < 1e-12)
            return 0;
        for (int q = 0; q <= k; q++) {
            double t = AT(c, q);
            AT(c, q) = AT(piv, q);
            AT(piv, q) = t;
        }
        for (int r = c + 1; r < k; r++) {
            double f = AT(r, c) / AT(c, c);
            for (int q = c; q <= k; q++)
                AT(r, q) -= f * AT(c, q);
        }
    }
    for (int j = 0; j < n; j++)
        z[j] = 0;
    for (int r = k - 1; r >= 0; r--) {
        double v = AT(r, k);
        for (int q = r + 1; q < k; q++)
            v -= AT(r, q) * z[idx[q]];
        z[idx[r]] = v / AT(r, r);
    }
#undef AT
    return 1;
}

/* Non-negative least squares (Lawson and Hanson) of the m x n system
 * A x ~ b, rows weighted by 1 / b (relative errors: a 1 us run counts as
 * much as a 1 ms one).  Columns are scaled to unit norm first (the terms
 * span nine orders of magnitude).  x >= 0 always; columns that are all zero
 * get 0. */
static int nnls(const double *A, const double *b, int m, int n, double *x)
{
    size_t nn = (size_t)n;
    double *G = calloc(nn * nn + nn * (nn + 1) + 5 * nn + 1, sizeof *G);
    int *ix = malloc((2 * nn + 1) * sizeof *ix);
    if (!G || !ix) {
        free(G);
        free(ix);
        return BP_ENOMEM;
    }
    double *S = G + nn * nn, *h = S + nn * (nn + 1), *sc = h + nn,
           *z = sc + nn, *xs = z + nn, *wv = xs + nn;
    int *passive = ix, *idx = ix + nn;
    (void)wv;
    for (int j = 0; j < n; j++) {
        double s = 0;
        for (int i = 0; i < m; i++)
            s += (A[(size_t)i * nn + j] / b[i]) * (A[(size_t)i * nn + j] / b[i]);
        sc[j] = s > 0 ? 1 / sqrt(s) : 0;
        passive[j] = 0;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double aj = A[(size_t)i * nn + j] / b[i] * sc[j];
            if (aj == 0)
                continue;
            h[j] += aj;
            for (int k = 0; k < n; k++)
                G[j * n + k] += aj * (A[(size_t)i * nn + k] / b[i] * sc[k]);
        }
    for (int iter = 0; iter < 3 * n + 10; iter++) {
        double wmax = 1e-10;
        int jmax = -1;
        for (int j = 0; j < n; j++) {
            if (passive[j] || sc[j] == 0)
                continue;
            double w = h[j];
            for (int k = 0; k < n; k++)
                w -= G[j * n + k] * xs[k];
            if (w > wmax) {
                wmax = w;
                jmax = j;
            }
        }
        if (jmax < 0)
            break;
        passive[jmax] = 1;
        for (int inner = 0; inner < 3 * n + 10; inner++) {
            if (!solve_passive(G, h, n, passive, z, S, idx)) {
                passive[jmax] = 0;
                break;
            }
            int neg = 0;
            for (int j = 0; j < n; j++)
                neg |= passive[j] && z[j] <= 0;
            if (!neg) {
                memcpy(xs, z, nn * sizeof *xs);
                break;
            }
            double alpha = 1;
            for (int j = 0; j < n; j++)
                if (passive[j] && z[j] <= 0 && xs[j] - z[j] > 0 &&
                    xs[j] / (xs[j] - z[j]) < alpha)
                    alpha = xs[j] / (xs[j] - z[j]);
            for (int j = 0; j < n; j++) {
                xs[j] += alpha * (z[j] - xs[j]);
                if (passive[j] && xs[j] <= 1e-15) {
                    passive[j] = 0;
                    xs[j] = 0;
                }
            }
        }
    }
    for (int j = 0; j < n; j++)
        x[j] = xs[j] > 0 ? xs[j] * sc[j] : 0;
    free(G);
    free(ix);
    return BP_OK;
}

/* The fitted layer model (ilp/cost.h) and op costs: per regime, seconds,
 * per row element, per output, per residual output and per tile shared by
 * all widths, per MAC and per weight by width; per op kind and regime, seconds
 * and per element. */
typedef struct lfit {
    int have[2];                  /* regime seen in the grid */
    double base[2][5];
    double mac[2][BP_QW_MAX_BITS + 1], wt[2][BP_QW_MAX_BITS + 1];
    int have_op[BP_QOP_COUNT][2];
    double sec[BP_QOP_COUNT][2], per[BP_QOP_COUNT][2];
    int rows;
    double med_err, p90_err;
    double clk;                   /* the clock read taken off each op */
    int winograd;                 /* the kernels run 3x3 stride-1 layers by
                                     Winograd (bp_cost_lm_wino) */
    int widest;                   /* the widest width fitted: Winograd's
                                     int16 products take its per_mac */
} lfit;

static int op_parallel(bp_qop_kind k)
{
    return k == BP_QOP_QUANTIZE || k == BP_QOP_ADD || k == BP_QOP_RELU ||
           k == BP_QOP_REQUANT || k == BP_QOP_MAXPOOL || k == BP_QOP_AVGPOOL;
}

/* Layer f at width w as the fitted model prices it (ilp/cost.c). */
static double fitted_layer(const bp_layer_facts *f, int w, const lfit *F,
                           int threads)
{
    int par = threads > 1 && f->macs >= BP_QEXEC_PAR_MACS;
    double padded, rows, outs, tiles, wmacs;
    bp_cost_lm_terms(f, 1, bp_qk_tile_positions(w),
                     F->winograd && bp_cost_lm_wino(f, 1, w), &padded, &rows,
                     &outs, &tiles, &wmacs);
    return F->base[par][0] + F->base[par][4] * tiles + F->base[par][1] * rows +
           F->base[par][2] * outs + (f->residual ? F->base[par][3] * outs : 0) +
           F->mac[par][w] * padded + F->mac[par][F->widest] * wmacs +
           F->wt[par][w] * (double)f->numel;
}

/* The fitted whole run of grid model m at width w. */
static double fitted_run(const gmeas *m, int w, const lfit *F, int threads)
{
    double t = 0;
    for (int i = 0; i < m->n_facts; i++) {
        t += fitted_layer(&m->facts[i], w, F, threads);
    }
    for (int j = 0; j < m->n_ops; j++) {
        const bp_qop_info *q = &m->info[j];
        if (q->kind == BP_QOP_LAYER)
            continue;
        int pq = threads > 1 && op_parallel(q->kind) &&
                 q->out_elements >= BP_QEXEC_PAR_ELEMS;
        t += F->sec[q->kind][pq] + F->per[q->kind][pq] * (double)q->elements;
    }
    return t;
}

/* Columns of the layer fit: per regime 5 shared + 2 per width. */
#define LCOLS(nw) (5 + 2 * (nw))

static int op_regime(const bp_qop_info *q, int threads)
{
    return threads > 1 && op_parallel(q->kind) &&
           q->out_elements >= BP_QEXEC_PAR_ELEMS;
}

/* The first width measured (ops without weights do not depend on it). */
static int first_width(const gmeas *m)
{
    for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS; w++)
        if (m->q[w])
            return w;
    return 0;
}

/* Row of layer f at width slot k (of nw) into r (2 LCOLS): its terms, as
 * the cost model prices them. */
static void fit_row(const bp_layer_facts *f, int w, int k, int nw,
                    int threads, int winograd, double *r)
{
    memset(r, 0, (size_t)(2 * LCOLS(nw)) * sizeof *r);
    int par = threads > 1 && f->macs >= BP_QEXEC_PAR_MACS;
    double padded, rows, outs, tiles, wmacs, *c = r + par * LCOLS(nw);
    bp_cost_lm_terms(f, 1, bp_qk_tile_positions(w),
                     winograd && bp_cost_lm_wino(f, 1, w), &padded, &rows,
                     &outs, &tiles, &wmacs);
    c[0] = 1;
    c[1] = rows;
    c[2] = outs;
    c[3] = f->residual ? outs : 0;
    c[4] = tiles;
    c[5 + 2 * k] = padded;
    c[6 + 2 * k] = (double)f->numel;
    c[5 + 2 * (nw - 1)] += wmacs; /* the widest width's per_mac */
}

/* The fit, non-negative least squares on relative errors: the layer model
 * over every layer of the grid's layer models at every width (one- and
 * two-layer models: a layer followed by a layer, as inside a network, and
 * by the output's dequantization), and the op costs, per op kind and
 * regime, over the ops of the op models (each follows a cheap op, so its
 * clock holds its own work) and, for input quantization and output
 * dequantization, over the layer models' too. */
static int fit_grid(const gmeas *M, int nm, const bp_qprofile_opts *o,
                    lfit *F)
{
    memset(F, 0, sizeof *F);
    int widths[BP_QW_MAX_BITS + 1], nw = 0;
    for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS; w++)
        if (o->bits & (1u << w))
            widths[nw++] = w;
    F->winograd = bp_qk_wino_active();
    F->widest = nw ? widths[nw - 1] : BP_QW_MAX_BITS;
    int n = 2 * LCOLS(nw), rows = 0;
    for (int i = 0; i < nm; i++)
        if (M[i].grid)
            rows += M[i].n_ops * nw;
    size_t cap = (size_t)rows + 1;
    double *A = malloc(cap * (size_t)n * sizeof *A);
    double *b = malloc(cap * sizeof *b);
    double *err = malloc(cap * sizeof *err);
    double *x = calloc((size_t)n, sizeof *x);
    int st = A && b && err && x ? BP_OK : BP_ENOMEM;
    /* the op costs */
    for (int q = 0; !st && q < BP_QOP_COUNT; q++)
        for (int par = 0; !st && par < 2; par++) {
            int m = 0;
            /* the ends of a run, input quantisation and output
             * dequantisation, from the layer models too: their inputs are
             * those of real models (flat GEMM rows, dequantisation of
             * int32 per channel), which the op models' do not cover */
            int ends = q == BP_QOP_QUANTIZE || q == BP_QOP_DEQUANT;
            for (int i = 0; i < nm; i++) {
                int w = first_width(&M[i]);
                int use = M[i].grid == 2 || (M[i].grid == 1 && ends);
                for (int j = 0; use && w && j < M[i].n_ops; j++) {
                    const bp_qop_info *oi = &M[i].info[j];
                    if ((int)oi->kind != q || op_regime(oi, o->threads) != par ||
                        !(M[i].q[w][j] > 0))
                        continue;
                    A[2 * m] = 1;
                    A[2 * m + 1] = (double)oi->elements;
                    b[m++] = M[i].q[w][j];
                }
            }
            if (!m || (st = nnls(A, b, m, 2, x)))
                continue;
            F->have_op[q][par] = 1;
            F->sec[q][par] = x[0];
            F->per[q][par] = x[1];
        }
    /* the layer model */
    int m = 0;
    for (int i = 0; !st && i < nm; i++)
        for (int k = 0; k < nw; k++) {
            const gmeas *g = &M[i];
            if (g->grid != 1 || !g->q[widths[k]])
                continue;
            for (int j = 0; j < g->n_ops; j++) {
                int l = g->info[j].layer;
                if (g->info[j].kind != BP_QOP_LAYER || l < 0 ||
                    l >= g->n_facts || !(g->q[widths[k]][j] > 0))
                    continue;
                fit_row(&g->facts[l], widths[k], k, nw, o->threads,
                        F->winograd, A + (size_t)m * (size_t)n);
                b[m++] = g->q[widths[k]][j];
            }
        }
    memset(x, 0, (size_t)n * sizeof *x);
    if (!st && m)
        st = nnls(A, b, m, n, x);
    if (!st && m) {
        for (int par = 0; par < 2; par++) {
            const double *c = x + par * LCOLS(nw);
            for (int i = 0; i < m; i++)
                F->have[par] |= A[(size_t)i * (size_t)n + par * LCOLS(nw)] > 0;
            memcpy(F->base[par], c, sizeof F->base[par]);
            for (int k = 0; k < nw; k++) {
                F->mac[par][widths[k]] = c[5 + 2 * k];
                F->wt[par][widths[k]] = c[6 + 2 * k];
            }
        }
        /* how well it holds: the layers, each against its fit */
        for (int i = 0; i < m; i++) {
            double p = 0;
            for (int j = 0; j < n; j++)
                p += A[(size_t)i * (size_t)n + j] * x[j];
            err[i] = fabs(p / b[i] - 1);
        }
        F->rows = m;
        qsort(err, (size_t)m, sizeof *err, cmp_double);
        F->med_err = err[m / 2];
        F->p90_err = err[m * 9 / 10];
    }
    free(A);
    free(b);
    free(err);
    free(x);
    return st;
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

/* Writes b to path and frees it; a copy goes to *text when text is set. */
static int sflush(sbuf *b, const char *path, char **text)
{
    int st = b->oom ? BP_ENOMEM : bp_write_file_atomic(path, b->p, b->n);
    if (!st && text && !(*text = strndup(b->p, b->n)))
        st = bp_fail(BP_ENOMEM, "out of memory copying %s", path);
    free(b->p);
    memset(b, 0, sizeof *b);
    return st;
}

/* One op of grid model m at width w as the fit prices it. */
static double fitted_op(const gmeas *m, int j, int w, const lfit *F,
                        int threads)
{
    const bp_qop_info *q = &m->info[j];
    if (q->kind != BP_QOP_LAYER) {
        int pq = threads > 1 && op_parallel(q->kind) &&
                 q->out_elements >= BP_QEXEC_PAR_ELEMS;
        return F->sec[q->kind][pq] + F->per[q->kind][pq] * (double)q->elements;
    }
    if (q->layer < 0 || q->layer >= m->n_facts)
        return 0;
    return fitted_layer(&m->facts[q->layer], w, F, threads);
}

/* The fit against what it was fitted to, one CSV row per grid model, width
 * and op, and one for the model's whole run (op "run"): the model (its
 * layers' shape keys joined by " + ", or "ops CxH"), w_bits, op, measured
 * and fitted seconds, relative error. */
static int write_report(const char *path, const gmeas *M, int nm,
                        const lfit *F, const bp_qprofile_opts *o)
{
    char line[1024], what[768];
    sbuf b = {0};
    sput(&b, "model,w_bits,op,measured_s,fitted_s,error\n");
    for (int i = 0; i < nm; i++) {
        const gmeas *m = &M[i];
        if (!m->grid)
            continue;
        bp_layer *ls = NULL;
        int nl = 0;
        what[0] = 0;
        if (bp_graph_layers(m->g, &ls, &nl) == BP_OK)
            for (int j = 0; j < nl; j++) {
                char key[160];
                bp_qprofile_key(m->g, &ls[j], key, sizeof key);
                size_t u = strlen(what);
                snprintf(what + u, sizeof what - u, "%s%s", j ? " + " : "", key);
            }
        free(ls);
        if (!nl) {
            const bp_value *in = &m->g->values[m->g->inputs[0]];
            snprintf(what, sizeof what, "ops %lldx%lld",
                     (long long)in->decl_dims[1], (long long)in->decl_dims[2]);
        }
        for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS; w++) {
            if (!(m->t[w] > 0) || !m->q[w])
                continue;
            for (int j = 0; j < m->n_ops; j++) {
                double t = fitted_op(m, j, w, F, o->threads), q = m->q[w][j];
                snprintf(line, sizeof line, "\"%s\",%d,%s,%.6g,%.6g,%+.3f\n",
                         what, w, bp_qop_name(m->info[j].kind), q, t,
                         q > 0 ? t / q - 1 : 0);
                sput(&b, line);
            }
            double t = fitted_run(m, w, F, o->threads);
            snprintf(line, sizeof line, "\"%s\",%d,run,%.6g,%.6g,%+.3f\n", what,
                     w, m->t[w], t, t / m->t[w] - 1);
            sput(&b, line);
        }
    }
    return sflush(&b, path, NULL);
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

void bp_qprofile_roofline_path(const char *path, char *full, size_t n)
{
    char rel[1024];
    roofline_name(path, full, n, rel, sizeof rel);
}

/* The one writer of the profile format: bitplan's profile schema
 * (profiles/README.md, issue 4).  With model layers measured: a "table"
 * profile at path whose entries are those layers by name at a_bits 8
 * (which covers every narrower activation), and its "fallback", the
 * fitted roofline, as NAME-roofline.json beside it; without: the roofline
 * alone at path.  One table entry per line. */
/* The "layer_model" object of the roofline (ilp/cost.h). */
static cJSON *layer_model_json(const lfit *F, const bp_qprofile_opts *o,
                               int threads, int repeat, int passes)
{
    char src[1024];
    cJSON *lm = cJSON_CreateObject();
    snprintf(src, sizeof src, "bitplan profile --measure: non-negative least "
             "squares (relative errors) over the layers of the grid's small "
             "models (one or two layers each), timed op by op inside whole "
             "runs at batch 1 (%d runs in %d passes interleaved over all "
             "models, the median of all; each op's time less the clock read "
             "it holds, %.0f ns); the %d layers fit to a median "
             "error of %.1f%% (90%% within %.0f%%)", repeat, passes,
             F->clk * 1e9, F->rows, F->med_err * 100, F->p90_err * 100);
    cJSON_AddStringToObject(lm, "source", src);
    cJSON_AddNumberToObject(lm, "a_bits", 8);
    cJSON_AddNumberToObject(lm, "threads", threads);
    cJSON_AddBoolToObject(lm, "winograd", F->winograd);
    int par = F->have[1] ? 1 : 0;
    cJSON_AddNumberToObject(lm, "parallel_macs", par ? BP_QEXEC_PAR_MACS : 0);
    static const char *const names[2] = {"serial", "parallel"};
    for (int r = 0; r <= par; r++) {
        /* a regime without points (a --quick grid) takes the other's */
        int q = F->have[r] ? r : !r;
        cJSON *g = cJSON_AddObjectToObject(lm, names[r]);
        cJSON_AddNumberToObject(g, "seconds", F->base[q][0]);
        cJSON_AddNumberToObject(g, "per_tile", F->base[q][4]);
        cJSON_AddNumberToObject(g, "per_row_element", F->base[q][1]);
        cJSON_AddNumberToObject(g, "per_output", F->base[q][2]);
        cJSON_AddNumberToObject(g, "per_residual_output", F->base[q][3]);
        cJSON *bits = cJSON_AddArrayToObject(g, "bits");
        for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS; w++) {
            if (!(o->bits & (1u << w)))
                continue;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "w_bits", w);
            cJSON_AddNumberToObject(e, "tile_positions",
                                    bp_qk_tile_positions(w));
            cJSON_AddNumberToObject(e, "per_mac", F->mac[q][w]);
            cJSON_AddNumberToObject(e, "per_weight", F->wt[q][w]);
            cJSON_AddItemToArray(bits, e);
        }
    }
    return lm;
}

/* The "op_costs" object of the roofline (ilp/cost.h). */
static cJSON *op_costs_json(const lfit *F, int threads)
{
    cJSON *oc = cJSON_CreateObject();
    cJSON_AddStringToObject(oc, "source", "bitplan profile --measure: per op "
                            "kind and regime, non-negative least squares "
                            "(relative errors) over the ops of small models "
                            "(Quantize, Relu, Add, MaxPool 3x3/2, Flatten, "
                            "GlobalAveragePool, Dequant at eleven sizes; "
                            "Quantize and Dequant also from the layer "
                            "models), timed op by op inside whole runs at "
                            "batch 1");
    int any_par = 0;
    for (int k = 0; k < BP_QOP_COUNT; k++)
        any_par |= F->have_op[k][1];
    cJSON_AddNumberToObject(oc, "parallel_elements",
                            threads > 1 && any_par ? BP_QEXEC_PAR_ELEMS : 0);
    cJSON *ops = cJSON_AddArrayToObject(oc, "ops");
    for (int k = 0; k < BP_QOP_COUNT; k++) {
        if (k == BP_QOP_LAYER || (!F->have_op[k][0] && !F->have_op[k][1]))
            continue;
        int q = F->have_op[k][0] ? 0 : 1;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "op", bp_qop_name((bp_qop_kind)k));
        cJSON_AddNumberToObject(e, "seconds", F->sec[k][q]);
        cJSON_AddNumberToObject(e, "per_element", F->per[k][q]);
        if (F->have_op[k][1] && threads > 1) {
            cJSON *p = cJSON_AddObjectToObject(e, "parallel");
            cJSON_AddNumberToObject(p, "seconds", F->sec[k][1]);
            cJSON_AddNumberToObject(p, "per_element", F->per[k][1]);
        }
        cJSON_AddItemToArray(ops, e);
    }
    return oc;
}

static int write_profile(const char *path, const bp_qprofile_opts *o,
                         const elist *L, const roof *rf, const lfit *lf,
                         int threads, int repeat, int passes)
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
    skey(&b, "missing_bits", mb, 0);
    skey(&b, "layer_model", layer_model_json(lf, o, threads, repeat, passes), 0);
    skey(&b, "op_costs", op_costs_json(lf, threads), 1);
    sput(&b, "}\n");
    if ((st = sflush(&b, full, n_layers ? NULL : o->text)) || !n_layers)
        return st;
    /* the table */
    snprintf(src, sizeof src,
             "bitplan profile --measure: %s; every entry is a layer timed "
             "inside whole runs of its model (%d runs in passes, their "
             "median, less the clock read each op's time holds, %.0f ns), "
             "the time of "
             "the model's other ops (input quantization, pooling, output "
             "dequantization) added to the layer that consumes their result, "
             "so a model's entries at one width sum to its measured latency",
             desc, repeat, lf->clk * 1e9);
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
    return sflush(&b, path, o->text);
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
    int passes = repeat < 5 ? 1 : 5;
    int per_pass = (repeat + passes - 1) / passes;
    int threads = o->threads;
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c < 1 ? 1 : c > 64 ? 64 : (int)c;
    }
    bp_qprofile_opts oo = *o;
    oo.threads = threads;
    const gshape *grid = o->quick ? grid_quick : grid_full;
    int ng = o->quick ? (int)(sizeof grid_quick / sizeof grid_quick[0])
                      : (int)(sizeof grid_full / sizeof grid_full[0]);
    const int64_t(*og)[2] = o->quick ? ops_quick : ops_full;
    int nog = o->quick ? (int)(sizeof ops_quick / sizeof ops_quick[0])
                       : (int)(sizeof ops_full / sizeof ops_full[0]);
    int nm = o->n_models + ng + nog;
    gmeas *M = calloc((size_t)nm + 1, sizeof *M);
    elist L = {0};
    int st = M ? BP_OK : BP_ENOMEM;
    for (int i = 0; i < nm && !st; i++) {
        bp_graph *g = NULL;
        int kind = 0;
        if (i < o->n_models) {
            g = o->models[i];
        } else if (i < o->n_models + ng) {
            kind = 1;
            st = grid_graph(&g, &grid[i - o->n_models]);
        } else {
            kind = 2;
            const int64_t *q = og[i - o->n_models - ng];
            st = op_graph(&g, q[0], q[1]);
        }
        /* a failed grid_graph left g NULL; M[i] owns grid graphs */
        if (!st)
            st = gm_init(&M[i], g, kind, passes * per_pass);
    }
    double clk = clock_read_cost();
    for (int p = 0; p < passes && !st; p++) {
        if (log)
            fprintf(log, "pass %d/%d: %d models, %d layer shapes, %d op shapes, "
                    "%d threads\n", p + 1, passes, o->n_models, ng, nog, threads);
        for (int i = 0; i < nm && !st; i++)
            for (int w = BP_QW_MIN_BITS; w <= BP_QW_MAX_BITS && !st; w++)
                if (o->bits & (1u << w))
                    st = gm_pass(&M[i], w, per_pass, threads, clk);
    }
    for (int i = 0; i < nm && !st; i++)
        st = gm_collect(&M[i], &oo, &L, log);
    roof rf;
    lfit lf;
    if (!st && !(st = fit_grid(M, nm, &oo, &lf))) {
        lf.clk = clk;
        fit_roofline(M, nm, &oo, &rf);
        if (log)
            fprintf(log, "layer model: %d layers fitted, median error %.1f%%, "
                    "90%% within %.0f%%\n", lf.rows, lf.med_err * 100,
                    lf.p90_err * 100);
        st = write_profile(path, &oo, &L, &rf, &lf, threads, repeat, passes);
        if (!st && o->report)
            st = write_report(o->report, M, nm, &lf, &oo);
    }
    for (int i = 0; M && i < nm; i++)
        gm_free(&M[i]);
    free(M);
    free(L.e);
    return st;
}

/* ---- the reader ------------------------------------------------------------- */

int bp_qprofile_predict(const char *path, bp_graph *g, const bp_plan *plan,
                        double *seconds)
{
    bp_profile *prof = NULL;
    bp_layer_facts *f = NULL;
    bp_model_facts mf;
    int n = 0, st;
    if ((st = bp_profile_open(&prof, path)) ||
        (st = bp_layer_facts_from_graph(g, &f, &n, &mf)))
        goto out;
    if (!bp_profile_has_latency(prof)) {
        st = bp_fail(BP_EINVAL, "%s: the profile models no latency", path);
        goto out;
    }
    double total = 0;
    for (int i = 0; i < n && !st; i++) {
        int w = 8, a = 8;
        for (int j = 0; j < plan->n_layers; j++)
            if (plan->layers[j].name && !strcmp(plan->layers[j].name, f[i].name)) {
                w = plan->layers[j].w_bits;
                a = plan->layers[j].a_bits;
            }
        bp_cost c;
        if (!(st = bp_cost_eval(prof, &f[i], w, a, 1, &c)))
            total += c.latency_s;
    }
    if (!st)
        *seconds = total;
out:
    free(f);
    bp_profile_free(&prof);
    return st;
}
