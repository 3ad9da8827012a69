/* check_qexec.c - the integer executor against its int64 reference.
 *
 * Random graphs (fixed seeds) cover every integer op the executor has:
 * convolutions of random geometry (stride, padding, dilation, groups, 1x1
 * direct rows, k not a multiple of 4) with bias, BatchNorm (negative gammas
 * included), ReLU / Clip, fused residual adds, a standalone add, max and
 * average pooling (both count_include_pad modes), global average pooling,
 * flattening with spatial extent, Gemm (transB 0/1, alpha, beta), MatMul, a
 * tensor read by two layers at different a_bits (a REQUANT copy), signed and
 * unsigned inputs, and an int32 output layer.  Plans draw w_bits and a_bits
 * from 2..8.  Every integer tensor of the fast executor must equal the
 * reference element by element, for every instruction set this CPU runs and
 * for one and two threads; so must the float outputs.  The bundled example
 * models are checked the same way, and so are the plan checks. */
#include "bitplan.h"
#include "plan.h"
#include "qcalib.h"
#include "qexec.h"
#include "qgraph.h"
#include "qref.h"
#include "qrun.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testrng.h"

/* ---- random values (tests/testrng.h) ------------------------------------- */

static double rng_gauss(rng *r)
{
    double u = rng_unit(r) + 1e-12, v = rng_unit(r);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* ---- building graphs -------------------------------------------------------- */

typedef struct gb {
    bp_graph *g;
    rng *r;
    int k;  /* counter for names */
} gb;

static int value(gb *b, const char *prefix)
{
    char name[64];
    int v;
    snprintf(name, sizeof name, "%s_%d", prefix, b->k++);
    ck_assert_int_eq(bp_graph_add_value(b->g, name, &v), BP_OK);
    return v;
}

/* A float32 constant of the given shape with N(0, sd) + mean values. */
static int constant(gb *b, const char *prefix, int rank, const int64_t *dims,
                    double mean, double sd)
{
    int v = value(b, prefix);
    bp_tensor *t;
    ck_assert_int_eq(bp_tensor_new(&t, BP_F32, rank, dims), BP_OK);
    for (int64_t i = 0; i < bp_tensor_numel(t); i++)
        ((float *)t->data)[i] = (float)(mean + sd * rng_gauss(b->r));
    b->g->values[v].data = t;
    b->g->values[v].dtype = BP_F32;
    b->g->values[v].rank = rank;
    memcpy(b->g->values[v].dims, dims, (size_t)rank * sizeof *dims);
    return v;
}

static bp_node *node(gb *b, bp_op op, int n_in, const int *in, int *out_v)
{
    char name[64];
    int o = value(b, "t");
    int idx;
    snprintf(name, sizeof name, "%s_%d", bp_op_name(op), b->k++);
    ck_assert_int_eq(bp_graph_add_node(b->g, op, name, n_in, in, 1, &o, &idx),
                     BP_OK);
    *out_v = o;
    return &b->g->nodes[idx];
}

static bp_attr *new_attr(bp_node *n, const char *name, bp_attr_type type)
{
    n->attrs = realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof *n->attrs);
    ck_assert_ptr_nonnull(n->attrs);
    bp_attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = strdup(name);
    a->type = type;
    return a;
}

static void attr_ints(bp_node *n, const char *name, int cnt, const int64_t *v)
{
    bp_attr *a = new_attr(n, name, BP_ATTR_INTS);
    a->n = cnt;
    a->ints = malloc((size_t)cnt * sizeof *a->ints);
    memcpy(a->ints, v, (size_t)cnt * sizeof *v);
}

static void attr_int(bp_node *n, const char *name, int64_t v)
{
    new_attr(n, name, BP_ATTR_INT)->i = v;
}

static void attr_float(bp_node *n, const char *name, double v)
{
    new_attr(n, name, BP_ATTR_FLOAT)->f = v;
}

/* Conv of x (c -> m channels) with random geometry fitting an h x w input;
 * returns the output value, bumping *h, *w. */
static int conv(gb *b, int x, int64_t c, int64_t m, int64_t *h, int64_t *w,
                int same, int group_ok)
{
    rng *r = b->r;
    int64_t kh = same ? 3 : rng_int(r, 1, 3), kw = same ? 3 : rng_int(r, 1, 3);
    int64_t sh = same ? 1 : rng_int(r, 1, 2), sw = same ? 1 : rng_int(r, 1, 2);
    int64_t dh = same ? 1 : rng_int(r, 1, 2), dw = same ? 1 : rng_int(r, 1, 2);
    int64_t pads[4] = {same ? 1 : rng_int(r, 0, kh - 1), same ? 1 : rng_int(r, 0, kw - 1),
                       same ? 1 : rng_int(r, 0, kh - 1), same ? 1 : rng_int(r, 0, kw - 1)};
    if ((*h + pads[0] + pads[2] - dh * (kh - 1) - 1) < 0)
        dh = 1, kh = 1, pads[0] = pads[2] = 0;
    if ((*w + pads[1] + pads[3] - dw * (kw - 1) - 1) < 0)
        dw = 1, kw = 1, pads[1] = pads[3] = 0;
    int64_t group = 1;
    if (group_ok && !same) {
        int64_t gs[3] = {1, 2, c};
        int64_t gsel = gs[rng_int(r, 0, 2)];
        if (c % gsel == 0 && m % gsel == 0)
            group = gsel;
    }
    int64_t wd[4] = {m, c / group, kh, kw}, bd[1] = {m};
    int wv = constant(b, "w", 4, wd, 0, 1.0 / sqrt((double)(c / group * kh * kw)));
    int has_bias = rng_int(r, 0, 1);
    int in[3] = {x, wv, has_bias ? constant(b, "b", 1, bd, 0, 0.2) : -1};
    int y;
    bp_node *n = node(b, BP_OP_CONV, has_bias ? 3 : 2, in, &y);
    int64_t ks[2] = {kh, kw}, st[2] = {sh, sw}, dl[2] = {dh, dw};
    attr_ints(n, "kernel_shape", 2, ks);
    attr_ints(n, "strides", 2, st);
    attr_ints(n, "dilations", 2, dl);
    attr_ints(n, "pads", 4, pads);
    attr_int(n, "group", group);
    *h = (*h + pads[0] + pads[2] - dh * (kh - 1) - 1) / sh + 1;
    *w = (*w + pads[1] + pads[3] - dw * (kw - 1) - 1) / sw + 1;
    return y;
}

static int batchnorm(gb *b, int x, int64_t c)
{
    int64_t d[1] = {c};
    int in[5] = {x, constant(b, "g", 1, d, 0.6, 0.5), constant(b, "be", 1, d, 0, 0.3),
                 constant(b, "mu", 1, d, 0, 0.3), -1};
    int var = constant(b, "var", 1, d, 1.0, 0.1);
    float *vd = b->g->values[var].data->data;
    for (int64_t i = 0; i < c; i++)
        vd[i] = fabsf(vd[i]) + 0.05f;
    in[4] = var;
    int y;
    node(b, BP_OP_BATCHNORM, 5, in, &y);
    return y;
}

static int act(gb *b, int x, int kind)
{
    int y;
    if (kind == 1) {
        node(b, BP_OP_RELU, 1, &x, &y);
        return y;
    }
    int64_t d0[1] = {1};
    int lo = constant(b, "lo", 0, d0, 0, 0), hi = constant(b, "hi", 0, d0, 0, 0);
    ((float *)b->g->values[lo].data->data)[0] = 0;
    ((float *)b->g->values[hi].data->data)[0] = 1.5f;
    int in[3] = {x, lo, hi};
    node(b, BP_OP_CLIP, 3, in, &y);
    return y;
}

static void set_in(gb *b, int in, int rank, const int64_t *dims)
{
    bp_graph *g = b->g;
    g->inputs = malloc(sizeof *g->inputs);
    g->inputs[0] = in;
    g->n_inputs = 1;
    bp_value *v = &g->values[in];
    v->is_input = 1;
    v->dtype = BP_F32;
    v->decl_rank = rank;
    memcpy(v->decl_dims, dims, (size_t)rank * sizeof *dims);
    v->decl_dims[0] = -1;
    g->opset = 13;
    snprintf(g->hash, sizeof g->hash, "%064d", 7);
}

static void set_out(gb *b, int out)
{
    bp_graph *g = b->g;
    g->outputs = malloc(sizeof *g->outputs);
    g->outputs[0] = out;
    g->n_outputs = 1;
}

/* The big random template (see the file comment). */
static bp_graph *random_cnn(rng *r, int64_t *in_dims)
{
    gb b = {NULL, r, 0};
    ck_assert_int_eq(bp_graph_new(&b.g, "random-cnn"), BP_OK);
    int64_t c = rng_int(r, 1, 6), h = rng_int(r, 3, 9), w = rng_int(r, 3, 9);
    int64_t dims[4] = {1, c, h, w};
    int x = value(&b, "input");
    set_in(&b, x, 4, dims);
    /* conv + [bn] + [act] */
    int64_t m1 = rng_int(r, 1, 20);
    int y = conv(&b, x, c, m1, &h, &w, 0, 1);
    if (rng_int(r, 0, 1))
        y = batchnorm(&b, y, m1);
    int a = (int)rng_int(r, 0, 2);
    if (a)
        y = act(&b, y, a);
    /* residual block: conv-bn + y -> relu (fused residual) */
    int z = conv(&b, y, m1, m1, &h, &w, 1, 0);
    z = batchnorm(&b, z, m1);
    int in2[2] = {z, y};
    int s;
    node(&b, BP_OP_ADD, 2, in2, &s);
    s = act(&b, s, 1);
    /* standalone add of a max pool and its input, relu fused */
    int p;
    bp_node *mp = node(&b, BP_OP_MAXPOOL, 1, &s, &p);
    int64_t k3[2] = {3, 3}, one[2] = {1, 1}, p1[4] = {1, 1, 1, 1};
    attr_ints(mp, "kernel_shape", 2, k3);
    attr_ints(mp, "strides", 2, one);
    attr_ints(mp, "pads", 4, p1);
    int in3[2] = {p, s};
    int s2;
    node(&b, BP_OP_ADD, 2, in3, &s2);
    s2 = act(&b, s2, 1);
    /* two layers read s2 (their plans may differ in a_bits); their sum is a
     * fused residual of two convs */
    int64_t m2 = rng_int(r, 1, 24);
    int64_t h2 = h, w2 = w;
    int u = conv(&b, s2, m1, m2, &h2, &w2, 1, 0);
    int v = conv(&b, s2, m1, m2, &h, &w, 1, 0);
    if (rng_int(r, 0, 1))
        v = batchnorm(&b, v, m2);
    int in4[2] = {u, v};
    int t;
    node(&b, BP_OP_ADD, 2, in4, &t);
    if (rng_int(r, 0, 1))
        t = act(&b, t, 1);
    /* random max pool (dilated) or average pool */
    int q;
    if (rng_int(r, 0, 1)) {
        int64_t kk[2] = {rng_int(r, 1, 3), rng_int(r, 1, 3)};
        int64_t st[2] = {rng_int(r, 1, 2), rng_int(r, 1, 2)};
        int64_t dl[2] = {rng_int(r, 1, 2), rng_int(r, 1, 2)};
        int64_t pd[4] = {rng_int(r, 0, kk[0] - 1), rng_int(r, 0, kk[1] - 1),
                         rng_int(r, 0, kk[0] - 1), rng_int(r, 0, kk[1] - 1)};
        if (h + pd[0] + pd[2] < dl[0] * (kk[0] - 1) + 1)
            dl[0] = 1, kk[0] = 1, pd[0] = pd[2] = 0;
        if (w + pd[1] + pd[3] < dl[1] * (kk[1] - 1) + 1)
            dl[1] = 1, kk[1] = 1, pd[1] = pd[3] = 0;
        bp_node *n = node(&b, BP_OP_MAXPOOL, 1, &t, &q);
        attr_ints(n, "kernel_shape", 2, kk);
        attr_ints(n, "strides", 2, st);
        attr_ints(n, "dilations", 2, dl);
        attr_ints(n, "pads", 4, pd);
    } else {
        int64_t kk[2] = {rng_int(r, 1, 3), rng_int(r, 1, 3)};
        int64_t st[2] = {rng_int(r, 1, 2), rng_int(r, 1, 2)};
        int64_t ph = rng_int(r, 0, kk[0] - 1), pw = rng_int(r, 0, kk[1] - 1);
        if (h + 2 * ph < kk[0])
            kk[0] = 1, ph = 0;
        if (w + 2 * pw < kk[1])
            kk[1] = 1, pw = 0;
        int64_t pd[4] = {ph, pw, ph, pw};
        bp_node *n = node(&b, BP_OP_AVERAGEPOOL, 1, &t, &q);
        attr_ints(n, "kernel_shape", 2, kk);
        attr_ints(n, "strides", 2, st);
        attr_ints(n, "pads", 4, pd);
        attr_int(n, "count_include_pad", rng_int(r, 0, 1));
    }
    /* flatten (with spatial extent: an NHWC -> C-order move) or GAP */
    int f;
    if (rng_int(r, 0, 1)) {
        bp_node *n = node(&b, BP_OP_FLATTEN, 1, &q, &f);
        attr_int(n, "axis", 1);
    } else {
        int gq;
        node(&b, BP_OP_GLOBALAVERAGEPOOL, 1, &q, &gq);
        bp_node *n = node(&b, BP_OP_FLATTEN, 1, &gq, &f);
        attr_int(n, "axis", 1);
    }
    ck_assert_int_eq(bp_graph_infer(b.g, 1), BP_OK);
    int64_t feat = b.g->values[f].dims[1];
    /* Gemm (transB random, alpha, beta), relu, MatMul -> output */
    int64_t n1 = rng_int(r, 1, 20), n2 = rng_int(r, 2, 10);
    int tb = (int)rng_int(r, 0, 1);
    int64_t wd[2] = {tb ? n1 : feat, tb ? feat : n1}, bd[1] = {n1};
    int in5[3] = {f, constant(&b, "gw", 2, wd, 0, 1 / sqrt((double)feat)),
                  constant(&b, "gb", 1, bd, 0, 0.2)};
    int gy;
    bp_node *gn = node(&b, BP_OP_GEMM, 3, in5, &gy);
    attr_int(gn, "transB", tb);
    attr_float(gn, "alpha", 0.5 + rng_unit(r));
    attr_float(gn, "beta", 0.5 + rng_unit(r));
    if (rng_int(r, 0, 1))
        gy = act(&b, gy, 1);
    int64_t md[2] = {n1, n2};
    int in6[2] = {gy, constant(&b, "mw", 2, md, 0, 1 / sqrt((double)n1))};
    int out;
    node(&b, BP_OP_MATMUL, 2, in6, &out);
    set_out(&b, out);
    memcpy(in_dims, dims, sizeof dims);
    ck_assert_int_eq(bp_graph_infer(b.g, 1), BP_OK);
    return b.g;
}

/* A plan with random bits for every layer of g. */
static bp_plan *random_plan(rng *r, bp_graph *g, int wlo, int whi, int alo,
                            int ahi)
{
    bp_layer *ls;
    int nl;
    ck_assert_int_eq(bp_graph_layers(g, &ls, &nl), BP_OK);
    bp_plan *p;
    ck_assert_int_eq(bp_plan_new(&p, nl, 0), BP_OK);
    p->model_sha256 = strdup(g->hash);
    for (int i = 0; i < nl; i++) {
        p->layers[i].name = strdup(ls[i].name);
        p->layers[i].w_bits = (int)rng_int(r, wlo, whi);
        p->layers[i].a_bits = (int)rng_int(r, alo, ahi);
    }
    free(ls);
    return p;
}

static int64_t tnumel(const bp_qtensor *t) { return t->h * t->w * t->c; }

/* Runs qm on x (n samples) in the executor for every ISA and thread count
 * and in the reference; every tensor and output must match exactly. */
static void compare(const bp_qmodel *qm, const float *x, int64_t n,
                    const char *what)
{
    bp_qref *ref;
    ck_assert_int_eq(bp_qref_new(&ref, qm, n), BP_OK);
    const float *in[1] = {x};
    ck_assert_int_eq(bp_qref_run(ref, in, n), BP_OK);
    bp_qk_isa saved = bp_qk_isa_get();
    for (int isa = 0; isa < BP_QK_ISA_COUNT; isa++) {
        if (bp_qk_isa_set((bp_qk_isa)isa))
            continue;
        for (int threads = 1; threads <= 2; threads++) {
            bp_qexec *ex;
            ck_assert_int_eq(bp_qexec_new(&ex, qm, n, threads), BP_OK);
            ck_assert_int_eq(bp_qexec_run(ex, in, n), BP_OK);
            for (int t = 0; t < qm->n_tensors; t++) {
                const bp_qtensor *q = &qm->t[t];
                const void *a = bp_qexec_tensor(ex, t);
                const int64_t *b = bp_qref_tensor(ref, t);
                for (int64_t i = 0; i < n * tnumel(q); i++) {
                    int64_t v = bp_qk_get(a, q->type, i);
                    /* plain ifs: a passing ck_assert writes a checkpoint */
                    if (v != b[i])
                        ck_abort_msg("%s: %s, %d threads: tensor %d element "
                                     "%lld: executor %lld, reference %lld", what,
                                     bp_qk_isa_name((bp_qk_isa)isa), threads, t,
                                     (long long)i, (long long)v, (long long)b[i]);
                    if (v < q->lo || v > q->hi)
                        ck_abort_msg("%s: tensor %d element %lld = %lld outside "
                                     "[%d, %d]", what, t, (long long)i,
                                     (long long)v, q->lo, q->hi);
                }
            }
            const bp_value *ov = &qm->g->values[qm->g->outputs[0]];
            int64_t on = 1;
            for (int d = 0; d < ov->rank; d++)
                on *= ov->dims[d];
            on = on / ov->dims[0] * n;
            const float *fo = bp_qexec_output(ex, 0), *ro = bp_qref_output(ref, 0);
            for (int64_t i = 0; i < on; i++)
                if (fo[i] != ro[i])
                    ck_abort_msg("%s: output %lld: %g vs %g", what, (long long)i,
                                 fo[i], ro[i]);
            bp_qexec_free(&ex);
        }
    }
    bp_qk_isa_set(saved);
    bp_qref_free(&ref);
}

static int count_ops(const bp_qmodel *qm, bp_qop_kind k)
{
    int c = 0;
    for (int i = 0; i < qm->n_ops; i++)
        c += qm->ops[i].kind == k;
    return c;
}

START_TEST(test_random_graphs)
{
    rng r = {0x5eed0000ULL + (uint64_t)_i};
    int64_t dims[4];
    bp_graph *g = random_cnn(&r, dims);
    int64_t n = rng_int(&r, 1, 5);
    int64_t per = dims[1] * dims[2] * dims[3];
    int64_t ncal = 24;
    float *cal = malloc((size_t)(ncal * per) * sizeof *cal);
    float *x = malloc((size_t)(n * per) * sizeof *x);
    int signed_in = _i % 2;
    for (int64_t i = 0; i < ncal * per; i++)
        cal[i] = (float)(signed_in ? rng_gauss(&r) : rng_unit(&r));
    for (int64_t i = 0; i < n * per; i++) /* a little outside the calibration */
        x[i] = (float)(signed_in ? 1.3 * rng_gauss(&r) : 1.2 * rng_unit(&r));
    bp_qcalib *qc;
    ck_assert_int_eq(bp_qcalib_new(&qc, g, cal, ncal, 8), BP_OK);
    for (int pl = 0; pl < 3; pl++) {
        bp_plan *p = random_plan(&r, g, 2, 8, 2, 8);
        bp_qopts o;
        bp_qopts_init(&o);
        o.method = (bp_calib_method)((_i + pl) % BP_CALIB_COUNT);
        bp_qmodel *qm;
        int st = bp_qmodel_new(&qm, g, p, qc, &o);
        ck_assert_msg(st == BP_OK, "%s", bp_errmsg());
        ck_assert_int_eq(count_ops(qm, BP_QOP_ADD), 1);
        ck_assert_int_ge(count_ops(qm, BP_QOP_LAYER), 5);
        ck_assert_int_eq(qm->t[qm->ops[0].out].type,
                         signed_in ? BP_QT_I8 : BP_QT_U8);
        /* the size is the documented formula */
        int64_t lb = 0;
        for (int i = 0; i < qm->n_layers; i++)
            lb += bp_qsize_layer(qm->layers[i].numel, qm->layers[i].m,
                                 qm->layers[i].w_bits);
        ck_assert_int_eq(lb, qm->layer_bytes);
        char what[64];
        snprintf(what, sizeof what, "graph %d plan %d", _i, pl);
        compare(qm, x, n, what);
        bp_qmodel_free(&qm);
        bp_plan_free(&p);
    }
    bp_qcalib_free(&qc);
    free(cal);
    free(x);
    bp_graph_free(&g);
}
END_TEST

/* A tensor read by two layers that want different a_bits gets a REQUANT
 * copy for the narrower one. */
START_TEST(test_requant_copy)
{
    rng r = {99};
    int64_t dims[4];
    bp_graph *g = random_cnn(&r, dims);
    int64_t per = dims[1] * dims[2] * dims[3];
    float *cal = malloc((size_t)(16 * per) * sizeof *cal);
    for (int64_t i = 0; i < 16 * per; i++)
        cal[i] = (float)rng_unit(&r);
    bp_qcalib *qc;
    ck_assert_int_eq(bp_qcalib_new(&qc, g, cal, 16, 16), BP_OK);
    bp_plan *p = random_plan(&r, g, 8, 8, 8, 8);
    /* layers 2 and 3 (in graph order) both read s2 */
    p->layers[3].a_bits = 3;
    bp_qmodel *qm;
    ck_assert_int_eq(bp_qmodel_new(&qm, g, p, qc, NULL), BP_OK);
    ck_assert_int_eq(count_ops(qm, BP_QOP_REQUANT), 1);
    compare(qm, cal, 4, "requant");
    bp_qmodel_free(&qm);
    bp_plan_free(&p);
    bp_qcalib_free(&qc);
    free(cal);
    bp_graph_free(&g);
}
END_TEST

/* ---- the example models --------------------------------------------------- */

static bp_tensor *load(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/%s", BP_SRCDIR, rel);
    bp_tensor *t;
    ck_assert_msg(bp_npy_load(&t, path) == BP_OK, "%s", bp_errmsg());
    return t;
}

static bp_graph *load_model(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/%s", BP_SRCDIR, rel);
    bp_graph *g;
    ck_assert_msg(bp_onnx_load(&g, path) == BP_OK, "%s", bp_errmsg());
    return g;
}

static const char *const models[2][3] = {
    {"cnn.onnx", "digits_calib_x.npy", "digits_test_x.npy"},
    {"mlp.onnx", "digits_calib_flat.npy", "digits_test_flat.npy"}};

START_TEST(test_examples_exact)
{
    bp_graph *g = load_model(models[_i][0]);
    bp_tensor *cal = load(models[_i][1]), *x = load(models[_i][2]);
    bp_qcalib *qc;
    ck_assert_int_eq(bp_qcalib_new(&qc, g, cal->data, cal->dims[0], 64), BP_OK);
    rng r = {1234 + (uint64_t)_i};
    for (int pl = 0; pl < 4; pl++) {
        bp_plan *p = pl == 0 ? random_plan(&r, g, 8, 8, 8, 8)
                             : random_plan(&r, g, 2, 8, 2, 8);
        bp_qmodel *qm;
        ck_assert_msg(bp_qmodel_new(&qm, g, p, qc, NULL) == BP_OK, "%s",
                      bp_errmsg());
        compare(qm, x->data, 64, models[_i][0]);
        bp_qmodel_free(&qm);
        bp_plan_free(&p);
    }
    bp_qcalib_free(&qc);
    bp_tensor_free(&cal);
    bp_tensor_free(&x);
    bp_graph_free(&g);
}
END_TEST

/* The all-8-bit plan keeps the float accuracy within 0.5 points on the
 * test set, with every calibration method. */
START_TEST(test_examples_w8a8_accuracy)
{
    bp_graph *g = load_model(models[_i][0]);
    bp_tensor *cal = load(models[_i][1]), *x = load(models[_i][2]);
    bp_tensor *y = load("digits_test_y.npy");
    bp_qcalib *qc;
    ck_assert_int_eq(bp_qcalib_new(&qc, g, cal->data, cal->dims[0], 64), BP_OK);
    int64_t n = x->dims[0], per = bp_tensor_numel(x) / n;
    bp_exec *fe;
    ck_assert_int_eq(bp_exec_new(&fe, g, BP_F32, n), BP_OK);
    const void *fin[1] = {x->data};
    ck_assert_int_eq(bp_exec_run(fe, fin, n), BP_OK);
    const float *fl = bp_exec_output(fe, 0);
    int fc = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < 10; k++)
            if (fl[i * 10 + k] > fl[i * 10 + best])
                best = k;
        fc += best == ((int64_t *)y->data)[i];
    }
    rng r = {1};
    bp_plan *p = random_plan(&r, g, 8, 8, 8, 8);
    for (int m = 0; m < BP_CALIB_COUNT; m++) {
        bp_qopts o;
        bp_qopts_init(&o);
        o.method = (bp_calib_method)m;
        bp_qmodel *qm;
        bp_qexec *ex;
        ck_assert_int_eq(bp_qmodel_new(&qm, g, p, qc, &o), BP_OK);
        ck_assert_int_eq(bp_qexec_new(&ex, qm, n, 0), BP_OK);
        const float *in[1] = {x->data};
        ck_assert_int_eq(bp_qexec_run(ex, in, n), BP_OK);
        const float *ql = bp_qexec_output(ex, 0);
        int qc_ = 0;
        for (int64_t i = 0; i < n; i++) {
            int best = 0;
            for (int k = 1; k < 10; k++)
                if (ql[i * 10 + k] > ql[i * 10 + best])
                    best = k;
            qc_ += best == ((int64_t *)y->data)[i];
        }
        double drop = 100.0 * (fc - qc_) / (double)n;
        ck_assert_msg(drop <= 0.5, "%s %s: drop %.2f points", models[_i][0],
                      bp_calib_method_name((bp_calib_method)m), drop);
        bp_qexec_free(&ex);
        bp_qmodel_free(&qm);
    }
    (void)per;
    bp_plan_free(&p);
    bp_exec_free(&fe);
    bp_qcalib_free(&qc);
    bp_tensor_free(&cal);
    bp_tensor_free(&x);
    bp_tensor_free(&y);
    bp_graph_free(&g);
}
END_TEST

/* ---- streaming runs ---------------------------------------------------------- */

/* A source over a tensor that records what it was asked for. */
typedef struct csrc {
    const float *x;
    const int64_t *y;
    int64_t per, max_count, reads;
} csrc;

static int csrc_read(void *ctx, int64_t start, int64_t count, float *x,
                     int64_t *labels)
{
    csrc *c = ctx;
    c->reads++;
    c->max_count = count > c->max_count ? count : c->max_count;
    memcpy(x, c->x + start * c->per, (size_t)(count * c->per) * sizeof *x);
    if (labels)
        memcpy(labels, c->y + start, (size_t)count * sizeof *labels);
    return BP_OK;
}

static int fail_read(void *ctx, int64_t start, int64_t count, float *x,
                     int64_t *labels)
{
    (void)ctx;
    (void)x;
    (void)labels;
    return start + count > 40 ? bp_fail(BP_EIO, "data.npy: changed under us")
                              : BP_OK;
}

/* Collects what bp_qrun_plan hands its sink; fails at call fail_at. */
typedef struct sinkbuf {
    float *rows;
    int64_t per, next, calls, fail_at;
} sinkbuf;

static int sink_collect(void *ctx, int64_t start, int64_t count, const float *y)
{
    sinkbuf *k = ctx;
    if (++k->calls == k->fail_at)
        return bp_fail(BP_EIO, "out.npy: disk full");
    ck_assert_int_eq(start, k->next); /* in order, nothing skipped */
    memcpy(k->rows + start * k->per, y, (size_t)(count * k->per) * sizeof *y);
    k->next = start + count;
    return BP_OK;
}

/* bp_qrun streams: it asks for at most one batch at a time, and its figures
 * equal sums taken here over the whole set in order (float model at the
 * same batch, integer model, top-1, cross-entropy, SQNR), for a set whose
 * size is not a multiple of the batch; its sink receives every sample's
 * integer output in order, equal to the executor's own; a second plan
 * reuses nothing stale; a source or sink error mid-way comes back as is. */
START_TEST(test_qrun_stream)
{
    bp_graph *g = load_model("cnn.onnx");
    bp_tensor *cal = load("digits_calib_x.npy"), *x = load("digits_test_x.npy");
    bp_tensor *y = load("digits_test_y.npy");
    const int64_t n = 103, b = 10, per = 64; /* 10 batches and 3 */
    csrc c = {x->data, y->data, per, 0, 0};
    bp_qrun_source src = {n, 1, csrc_read, &c};
    bp_qrun_opts o;
    bp_qrun_opts_init(&o);
    o.batch = b;
    o.threads = 1;
    sinkbuf sk = {malloc((size_t)n * 10 * sizeof(float)), 10, 0, 0, 0};
    o.sink = sink_collect;
    o.sink_ctx = &sk;
    bp_qrun *r;
    ck_assert_msg(bp_qrun_open(&r, g, &src, cal, &o) == BP_OK, "%s", bp_errmsg());
    ck_assert(isnan(bp_qrun_float_accuracy(r)));
    bp_qcalib *qc;
    ck_assert_int_eq(bp_qcalib_new(&qc, g, cal->data, cal->dims[0], 64), BP_OK);
    rng rr = {77};
    for (int pl = 0; pl < 2; pl++) {
        bp_plan *p = random_plan(&rr, g, 2, 8, 4, 8);
        c.max_count = c.reads = 0;
        sk.next = sk.calls = 0;
        bp_qrun_result R;
        ck_assert_msg(bp_qrun_plan(r, p, "p", &R) == BP_OK, "%s", bp_errmsg());
        ck_assert_int_eq(sk.next, n);
        ck_assert_int_eq(sk.calls, (n + b - 1) / b);
        ck_assert_int_eq(c.max_count, b);
        ck_assert_int_eq(c.reads, (n + b - 1) / b);
        /* the reference, over the whole set in order */
        bp_qmodel *qm;
        bp_qexec *ex;
        bp_exec *fe;
        ck_assert_int_eq(bp_qmodel_new(&qm, g, p, qc, NULL), BP_OK);
        ck_assert_int_eq(bp_qexec_new(&ex, qm, b, 1), BP_OK);
        ck_assert_int_eq(bp_exec_new(&fe, g, BP_F32, b), BP_OK);
        int64_t fc = 0, qc_ = 0, ag = 0;
        double fl = 0, ql = 0, sig = 0, noise = 0;
        for (int64_t s0 = 0; s0 < n; s0 += b) {
            int64_t nb = n - s0 < b ? n - s0 : b;
            const float *xin = (const float *)x->data + s0 * per;
            const void *fin[1] = {xin};
            const float *qin[1] = {xin};
            ck_assert_int_eq(bp_exec_run(fe, fin, nb), BP_OK);
            ck_assert_int_eq(bp_qexec_run(ex, qin, nb), BP_OK);
            const float *f = bp_exec_output(fe, 0), *q = bp_qexec_output(ex, 0);
            ck_assert(memcmp(q, sk.rows + s0 * 10, (size_t)nb * 10 * sizeof *q) == 0);
            for (int64_t i = 0; i < nb * 10; i++) {
                sig += (double)f[i] * f[i];
                noise += ((double)f[i] - q[i]) * ((double)f[i] - q[i]);
            }
            for (int64_t i = 0; i < nb; i++) {
                int64_t lab = ((const int64_t *)y->data)[s0 + i], fa = 0, qa = 0;
                double fm, qm_, fz = 0, qz = 0;
                for (int k = 1; k < 10; k++) {
                    fa = f[i * 10 + k] > f[i * 10 + fa] ? k : fa;
                    qa = q[i * 10 + k] > q[i * 10 + qa] ? k : qa;
                }
                fm = f[i * 10 + fa];
                qm_ = q[i * 10 + qa];
                for (int k = 0; k < 10; k++) {
                    fz += exp((double)f[i * 10 + k] - fm);
                    qz += exp((double)q[i * 10 + k] - qm_);
                }
                fl += log(fz) + fm - f[i * 10 + lab];
                ql += log(qz) + qm_ - q[i * 10 + lab];
                fc += fa == lab;
                qc_ += qa == lab;
                ag += fa == qa;
            }
        }
        ck_assert_int_eq(R.samples, n);
        ck_assert(R.float_accuracy == (double)fc / n);
        ck_assert(R.int_accuracy == (double)qc_ / n);
        ck_assert(R.agreement == (double)ag / n);
        ck_assert(R.float_loss == fl / n);
        ck_assert(R.int_loss == ql / n);
        ck_assert(R.sqnr_db == 10 * log10(sig / noise));
        ck_assert(bp_qrun_float_accuracy(r) == (double)fc / n);
        bp_exec_free(&fe);
        bp_qexec_free(&ex);
        bp_qmodel_free(&qm);
        bp_plan_free(&p);
    }
    bp_qrun_free(&r);
    /* calibration from the data: the first calib_samples, read in batches */
    o.sink = NULL;
    c.max_count = c.reads = 0;
    o.calib_samples = 25;
    ck_assert_int_eq(bp_qrun_open(&r, g, &src, NULL, &o), BP_OK);
    ck_assert(bp_qrun_calib_from_data(r));
    ck_assert_int_eq(bp_qrun_calib_samples(r), 25);
    ck_assert_int_eq(c.reads, 3);
    ck_assert_int_eq(c.max_count, b);
    bp_qrun_free(&r);
    /* a source that fails half-way */
    bp_qrun_source bad = {n, 0, fail_read, NULL};
    ck_assert_int_eq(bp_qrun_open(&r, g, &bad, cal, &o), BP_OK);
    bp_plan *p = random_plan(&rr, g, 8, 8, 8, 8);
    bp_qrun_result R;
    ck_assert_int_eq(bp_qrun_plan(r, p, "p", &R), BP_EIO);
    ck_assert_str_eq(bp_errmsg(), "data.npy: changed under us");
    bp_qrun_free(&r);
    /* a sink that fails at its third batch */
    sk.next = sk.calls = 0;
    sk.fail_at = 3;
    o.sink = sink_collect;
    ck_assert_int_eq(bp_qrun_open(&r, g, &src, cal, &o), BP_OK);
    ck_assert_int_eq(bp_qrun_plan(r, p, "p", &R), BP_EIO);
    ck_assert_str_eq(bp_errmsg(), "out.npy: disk full");
    ck_assert_int_eq(sk.calls, 3);
    free(sk.rows);
    bp_plan_free(&p);
    bp_qrun_free(&r);
    bp_qcalib_free(&qc);
    bp_tensor_free(&cal);
    bp_tensor_free(&x);
    bp_tensor_free(&y);
    bp_graph_free(&g);
}
END_TEST

/* bp_qmodel_ops lists what bp_qmodel_new builds, without plan or data. */
START_TEST(test_qmodel_ops)
{
    bp_graph *g = load_model("cnn.onnx");
    bp_tensor *cal = load("digits_calib_x.npy");
    bp_qcalib *qc;
    ck_assert_int_eq(bp_qcalib_new(&qc, g, cal->data, cal->dims[0], 64), BP_OK);
    rng rr = {5};
    bp_plan *p = random_plan(&rr, g, 8, 8, 8, 8);
    bp_qmodel *qm;
    ck_assert_int_eq(bp_qmodel_new(&qm, g, p, qc, NULL), BP_OK);
    bp_qop_info *ops;
    int n;
    ck_assert_msg(bp_qmodel_ops(g, &ops, &n) == BP_OK, "%s", bp_errmsg());
    ck_assert_int_eq(n, qm->n_ops);
    int residual = 0;
    for (int i = 0; i < n; i++) {
        const bp_qop *o = &qm->ops[i];
        ck_assert_int_eq(ops[i].kind, o->kind);
        int64_t ne_in = o->in >= 0 ? tnumel(&qm->t[o->in]) : 0;
        int64_t ne_out = o->out >= 0 ? tnumel(&qm->t[o->out]) : ne_in;
        if (o->kind == BP_QOP_LAYER) {
            ck_assert_int_eq(ops[i].layer, qm->layers[o->layer].index);
            ck_assert_int_eq(ops[i].residual, o->in2 >= 0);
            residual += ops[i].residual;
        }
        ck_assert_int_eq(ops[i].out_elements, ne_out);
        if (o->kind == BP_QOP_MAXPOOL || o->kind == BP_QOP_AVGPOOL ||
            o->kind == BP_QOP_DEQUANT)
            ck_assert_int_eq(ops[i].elements, ne_in);
        else
            ck_assert_int_eq(ops[i].elements, ne_out);
    }
    ck_assert_int_eq(residual, 2); /* res1b and down_proj take the adds */
    free(ops);
    bp_qmodel_free(&qm);
    bp_plan_free(&p);
    bp_qcalib_free(&qc);
    bp_tensor_free(&cal);
    bp_graph_free(&g);
}
END_TEST

/* ---- activation bytes per sample (the automatic --batch) ------------------- */

/* What the executors hold for max_batch b, minus what they hold for 1,
 * over b - 1: the bytes one sample adds, which the estimates made from the
 * graph alone must match exactly. */
static void check_sample_bytes(bp_graph *g, const bp_qmodel *qm, int requant)
{
    for (int d = 0; d < 2; d++) {
        bp_dtype dt = d ? BP_F64 : BP_F32;
        int64_t est;
        ck_assert_int_eq(bp_exec_sample_bytes(g, dt, &est), BP_OK);
        bp_exec *e1, *e3;
        ck_assert_int_eq(bp_exec_new(&e1, g, dt, 1), BP_OK);
        ck_assert_int_eq(bp_exec_new(&e3, g, dt, 3), BP_OK);
        ck_assert_int_eq(bp_exec_buffer_bytes(e3) - bp_exec_buffer_bytes(e1),
                         2 * est);
        bp_exec_free(&e1);
        bp_exec_free(&e3);
    }
    bp_qexec *q1, *q3;
    ck_assert_int_eq(bp_qexec_new(&q1, qm, 1, 1), BP_OK);
    ck_assert_int_eq(bp_qexec_new(&q3, qm, 3, 1), BP_OK);
    int64_t per = bp_qexec_sample_bytes(qm), skel;
    ck_assert_int_eq(bp_qexec_workspace_bytes(q3) - bp_qexec_workspace_bytes(q1),
                     2 * per);
    bp_qexec_free(&q1);
    bp_qexec_free(&q3);
    /* before any plan: exact unless the plan adds REQUANT copies */
    ck_assert_int_eq(bp_qexec_graph_sample_bytes(g, &skel), BP_OK);
    if (requant)
        ck_assert_int_lt(skel, per);
    else
        ck_assert_int_eq(skel, per);
}

START_TEST(test_sample_bytes_random)
{
    rng r = {900 + (uint64_t)_i};
    int64_t dims[4];
    bp_graph *g = random_cnn(&r, dims);
    int64_t numel = dims[1] * dims[2] * dims[3];
    float *cal = malloc((size_t)(4 * numel) * sizeof *cal);
    for (int64_t k = 0; k < 4 * numel; k++)
        cal[k] = (float)rng_gauss(&r);
    bp_qcalib *qc;
    ck_assert_int_eq(bp_qcalib_new(&qc, g, cal, 4, 4), BP_OK);
    for (int pl = 0; pl < 2; pl++) {
        bp_plan *p = random_plan(&r, g, 8, 8, pl ? 2 : 8, 8);
        bp_qmodel *qm;
        ck_assert_msg(bp_qmodel_new(&qm, g, p, qc, NULL) == BP_OK, "%s",
                      bp_errmsg());
        check_sample_bytes(g, qm, count_ops(qm, BP_QOP_REQUANT) > 0);
        bp_qmodel_free(&qm);
        bp_plan_free(&p);
    }
    bp_qcalib_free(&qc);
    free(cal);
    bp_graph_free(&g);
}
END_TEST

/* The examples keep the historical batch of 64: their outputs and every
 * golden file made at --batch 64 stay as they were. */
START_TEST(test_sample_bytes_examples)
{
    bp_graph *g = load_model(models[_i][0]);
    bp_tensor *cal = load(models[_i][1]);
    bp_qcalib *qc;
    ck_assert_int_eq(bp_qcalib_new(&qc, g, cal->data, cal->dims[0], 64), BP_OK);
    rng r = {77};
    bp_plan *p = random_plan(&r, g, 8, 8, 8, 8);
    bp_qmodel *qm;
    ck_assert_int_eq(bp_qmodel_new(&qm, g, p, qc, NULL), BP_OK);
    check_sample_bytes(g, qm, 0);
    int64_t fb, qb, rb;
    ck_assert_int_eq(bp_exec_sample_bytes(g, BP_F32, &fb), BP_OK);
    ck_assert_int_eq(bp_qexec_graph_sample_bytes(g, &qb), BP_OK);
    ck_assert_int_eq(bp_qrun_sample_bytes(g, &rb), BP_OK);
    /* the run's float and integer executors, its batch of samples, labels */
    ck_assert_int_eq(rb, fb + qb + bp_tensor_numel(cal) / cal->dims[0] * 4 + 8);
    ck_assert_int_eq(bp_auto_batch(fb), 64);
    ck_assert_int_eq(bp_auto_batch(rb), 64);
    bp_qmodel_free(&qm);
    bp_plan_free(&p);
    bp_qcalib_free(&qc);
    bp_tensor_free(&cal);
    bp_graph_free(&g);
}
END_TEST

/* A model of large activations (ResNet-18's stem at 224x224, 26 MB per
 * sample in float32) gets a smaller batch, computed by shape inference
 * alone: nothing of that size is allocated here. */
START_TEST(test_auto_batch_large)
{
    rng r = {3};
    gb b = {NULL, &r, 0};
    ck_assert_int_eq(bp_graph_new(&b.g, "wide"), BP_OK);
    int x = value(&b, "input");
    int64_t dims[4] = {1, 3, 224, 224}, wd[4] = {64, 3, 3, 3}, gd[2] = {10, 64};
    set_in(&b, x, 4, dims);
    int in[2] = {x, constant(&b, "w", 4, wd, 0, 0.2)};
    int y, a, gp, f, out;
    bp_node *n = node(&b, BP_OP_CONV, 2, in, &y);
    int64_t ks[2] = {3, 3}, pads[4] = {1, 1, 1, 1};
    attr_ints(n, "kernel_shape", 2, ks);
    attr_ints(n, "pads", 4, pads);
    node(&b, BP_OP_RELU, 1, &y, &a);
    node(&b, BP_OP_GLOBALAVERAGEPOOL, 1, &a, &gp);
    attr_int(node(&b, BP_OP_FLATTEN, 1, &gp, &f), "axis", 1);
    int in2[3] = {f, constant(&b, "gw", 2, gd, 0, 0.1), -1};
    attr_int(node(&b, BP_OP_GEMM, 2, in2, &out), "transB", 1);
    set_out(&b, out);
    /* input, conv, relu (64 x 224 x 224 each), pooled, flat, logits */
    int64_t hw = 224 * 224, act = 3 * hw + 2 * 64 * hw + 64 + 64 + 10;
    int64_t numel, fb, qb, rb;
    ck_assert_int_eq(bp_graph_act_numel(b.g, &numel), BP_OK);
    ck_assert_int_eq(numel, act);
    ck_assert_int_eq(bp_exec_sample_bytes(b.g, BP_F32, &fb), BP_OK);
    ck_assert_int_eq(fb, 4 * act);
    ck_assert_int_eq(bp_auto_batch(fb), BP_AUTO_BATCH_BYTES / (4 * act));
    ck_assert_int_eq(bp_auto_batch(fb), 10);
    /* integer: codes of the input and of the (ReLU-fused) conv output, the
     * pooled codes (which Flatten of a 1x1 map reads as they are), int32
     * logits and their floats */
    ck_assert_int_eq(bp_qexec_graph_sample_bytes(b.g, &qb), BP_OK);
    ck_assert_int_eq(qb, 3 * hw + 64 * hw + 64 + 4 * 10 + 4 * 10);
    ck_assert_int_eq(bp_qrun_sample_bytes(b.g, &rb), BP_OK);
    ck_assert_int_eq(rb, fb + qb + 3 * hw * 4 + 8);
    ck_assert_int_eq(bp_auto_batch(rb), 8);
    bp_graph_free(&b.g);
}
END_TEST

/* The rule at its edges. */
START_TEST(test_auto_batch_rule)
{
    ck_assert_int_eq(bp_auto_batch(0), BP_AUTO_BATCH_MAX);
    ck_assert_int_eq(bp_auto_batch(1), BP_AUTO_BATCH_MAX);
    ck_assert_int_eq(bp_auto_batch(BP_AUTO_BATCH_BYTES / 64), 64);
    ck_assert_int_eq(bp_auto_batch(BP_AUTO_BATCH_BYTES / 64 + 1), 63);
    ck_assert_int_eq(bp_auto_batch(BP_AUTO_BATCH_BYTES), 1);
    ck_assert_int_eq(bp_auto_batch(INT64_MAX), 1);
}
END_TEST

/* ---- plan checks ------------------------------------------------------------ */

START_TEST(test_plan_errors)
{
    bp_graph *g = load_model("cnn.onnx");
    bp_tensor *cal = load("digits_calib_x.npy");
    bp_qcalib *qc;
    ck_assert_int_eq(bp_qcalib_new(&qc, g, cal->data, 32, 32), BP_OK);
    rng r = {5};
    bp_qmodel *qm = NULL;
    bp_qopts o;
    bp_qopts_init(&o);
    o.plan_name = "p.json";

    bp_plan *p = random_plan(&r, g, 8, 8, 8, 8);
    free(p->model_sha256);
    p->model_sha256 = strdup("00ff");
    ck_assert_int_eq(bp_qmodel_new(&qm, g, p, qc, &o), BP_EINVAL);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "p.json"));
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "sha256"));
    bp_plan_free(&p);

    p = random_plan(&r, g, 8, 8, 8, 8);
    free(p->layers[2].name);
    p->layers[2].name = strdup("nope");
    ck_assert_int_eq(bp_qmodel_new(&qm, g, p, qc, &o), BP_EINVAL);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "'nope'"));
    ck_assert_int_eq(bp_qplan_check(g, p, "p.json"), BP_EINVAL);
    bp_plan_free(&p);

    for (int k = 0; k < 4; k++) {
        p = random_plan(&r, g, 8, 8, 8, 8);
        int bad[4] = {1, 9, 16, 0};
        if (k % 2)
            p->layers[k].a_bits = bad[k];
        else
            p->layers[k].w_bits = bad[k];
        ck_assert_int_eq(bp_qmodel_new(&qm, g, p, qc, &o), BP_EUNSUPPORTED);
        ck_assert_ptr_nonnull(strstr(bp_errmsg(), p->layers[k].name));
        bp_plan_free(&p);
    }
    ck_assert_ptr_null(qm);
    bp_qcalib_free(&qc);
    bp_tensor_free(&cal);
    bp_graph_free(&g);
}
END_TEST

/* An op the executor has no kernel for is refused, naming the node. */
START_TEST(test_unsupported_op)
{
    rng r = {11};
    gb b = {NULL, &r, 0};
    ck_assert_int_eq(bp_graph_new(&b.g, "sig"), BP_OK);
    int x = value(&b, "input");
    int64_t wd[2] = {4, 3}, dims[2] = {1, 4};
    set_in(&b, x, 2, dims);
    int in[2] = {x, constant(&b, "w", 2, wd, 0, 1)};
    int y, z;
    node(&b, BP_OP_MATMUL, 2, in, &y);
    node(&b, BP_OP_SIGMOID, 1, &y, &z);
    set_out(&b, z);
    ck_assert_int_eq(bp_graph_infer(b.g, 1), BP_OK);
    float cal[8] = {0.1f, -0.2f, 0.3f, 0.4f, 0.5f, 0.6f, -0.7f, 0.8f};
    bp_qcalib *qc;
    ck_assert_int_eq(bp_qcalib_new(&qc, b.g, cal, 2, 2), BP_OK);
    bp_plan *p = random_plan(&r, b.g, 8, 8, 8, 8);
    bp_qmodel *qm;
    ck_assert_int_eq(bp_qmodel_new(&qm, b.g, p, qc, NULL), BP_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "Sigmoid"));
    bp_plan_free(&p);
    bp_qcalib_free(&qc);
    bp_graph_free(&b.g);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("qexec");
    TCase *tc = tcase_create("exact");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_random_graphs, 0, 40);
    tcase_add_test(tc, test_requant_copy);
    tcase_add_loop_test(tc, test_examples_exact, 0, 2);
    tcase_add_loop_test(tc, test_examples_w8a8_accuracy, 0, 2);
    tcase_add_test(tc, test_qrun_stream);
    tcase_add_test(tc, test_qmodel_ops);
    tcase_add_loop_test(tc, test_sample_bytes_random, 0, 8);
    tcase_add_loop_test(tc, test_sample_bytes_examples, 0, 2);
    tcase_add_test(tc, test_auto_batch_large);
    tcase_add_test(tc, test_auto_batch_rule);
    tcase_add_test(tc, test_plan_errors);
    tcase_add_test(tc, test_unsupported_op);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
