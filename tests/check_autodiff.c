/* check_autodiff.c - the autodiff against finite differences, in float64.
 *
 * For every tiny per-op model in tests/data/sens (one model per
 * differentiable op or op variant, see make.py there):
 *  - gradient: the reverse-mode gradient of the mean cross-entropy w.r.t.
 *    every parameter (each float initializer at a differentiable input)
 *    against central finite differences of the loss, relative error (in the
 *    2-norm, per parameter tensor) at most 1e-6;
 *  - Hessian: the dense Hessian over all parameters built column by column
 *    from central differences of the analytic gradient, against bp_ad_hvp
 *    for random directions (relative error at most 1e-6), for products
 *    restricted to one block in and one block out, and for symmetry;
 *  - Gauss-Newton: where the logits are piecewise linear in a parameter,
 *    bp_ad_gn_trace equals the trace of that parameter's Hessian block.
 * Parameters are converted to float64 in the graph so that the finite
 * differences perturb exactly what the executor computes with. */
#include "autodiff.h"
#include "bitplan.h"
#include "rng.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const models[] = {
    "op_conv", "op_conv_strided", "op_conv1d", "op_conv_pointwise",
    "op_gemm_tb", "op_gemm_cmat", "op_gemm_ta", "op_gemm_act", "op_matmul",
    "op_matmul_3d", "op_matmul_batched", "op_matmul_act", "op_matmul_vec",
    "op_add", "op_sub", "op_mul", "op_div", "op_relu", "op_leakyrelu",
    "op_sigmoid", "op_tanh", "op_clip", "op_clip10", "op_softmax_inner",
    "op_softmax_last", "op_softmax11", "op_maxpool", "op_maxpool_s2",
    "op_maxpool_dil", "op_avgpool", "op_avgpool_cip", "op_gap",
    "op_reducemean", "op_batchnorm", "op_flatten", "op_squeeze",
    "op_transpose", "op_concat", "op_gather", "op_slice", "tiny_cnn",
    "tiny_tanh"};
#define N_MODELS ((int)(sizeof models / sizeof models[0]))

enum { NS = 4 }; /* samples */

typedef struct fixture {
    bp_graph *g;
    bp_ad *ad;
    int np;
    int *pv;
    int64_t *numel, total;
    double **theta; /* parameter data (float64, in the graph) */
    double *x;
    int64_t labels[NS];
} fixture;

static int diff_slot(const bp_node *n, int k)
{
    switch (n->op) {
    case BP_OP_CONV: case BP_OP_GEMM: case BP_OP_BATCHNORM:
        return k <= 2;
    case BP_OP_MATMUL: case BP_OP_ADD: case BP_OP_SUB: case BP_OP_MUL:
    case BP_OP_DIV:
        return k <= 1;
    case BP_OP_CONCAT:
        return 1;
    case BP_OP_CLIP: case BP_OP_RESHAPE: case BP_OP_SQUEEZE:
    case BP_OP_UNSQUEEZE: case BP_OP_SLICE: case BP_OP_GATHER:
        return k == 0;
    default:
        return k == 0;
    }
}

static void setup(fixture *f, const char *name)
{
    char path[1024];
    memset(f, 0, sizeof *f);
    snprintf(path, sizeof path, "%s/tests/data/sens/%s.onnx", BP_SRCDIR, name);
    int st = bp_onnx_load(&f->g, path);
    ck_assert_msg(st == BP_OK, "%s: %s", path, bp_errmsg());
    bp_graph *g = f->g;
    f->pv = calloc((size_t)g->n_values, sizeof *f->pv);
    char *seen = calloc((size_t)g->n_values, 1);
    for (int i = 0; i < g->n_nodes; i++) {
        const bp_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0 || seen[v] || !diff_slot(n, k) || !g->values[v].data ||
                g->values[v].data->dtype != BP_F32)
                continue;
            seen[v] = 1;
            f->pv[f->np++] = v;
        }
    }
    free(seen);
    ck_assert_int_gt(f->np, 0);
    f->numel = calloc((size_t)f->np, sizeof *f->numel);
    f->theta = calloc((size_t)f->np, sizeof *f->theta);
    for (int p = 0; p < f->np; p++) {
        bp_value *val = &g->values[f->pv[p]];
        bp_tensor *t = NULL;
        ck_assert_int_eq(bp_tensor_new(&t, BP_F64, val->data->rank,
                                       val->data->dims), BP_OK);
        f->numel[p] = bp_tensor_numel(t);
        for (int64_t i = 0; i < f->numel[p]; i++)
            ((double *)t->data)[i] = bp_tensor_get(val->data, i);
        bp_tensor_free(&val->data);
        /* the value keeps its declared float32 type, so shape inference's
         * operand-type checks still pass; the executor reads the data */
        val->data = t;
        f->theta[p] = t->data;
        f->total += f->numel[p];
    }
    st = bp_ad_new(&f->ad, g, f->pv, f->np, NS);
    ck_assert_msg(st == BP_OK, "%s: %s", name, bp_errmsg());
    const bp_value *in = &g->values[g->inputs[0]];
    int64_t per = 1;
    for (int d = 1; d < in->rank; d++)
        per *= in->dims[d];
    f->x = malloc((size_t)(NS * per) * sizeof *f->x);
    bp_rng r;
    bp_rng_seed(&r, 42, 0);
    for (int64_t i = 0; i < NS * per; i++)
        f->x[i] = bp_rng_normal(&r);
    for (int s = 0; s < NS; s++)
        f->labels[s] = (int64_t)(bp_rng_u64(&r) % (uint64_t)bp_ad_classes(f->ad));
}

static void teardown(fixture *f)
{
    bp_ad_free(&f->ad);
    bp_graph_free(&f->g);
    free(f->pv);
    free(f->numel);
    free(f->theta);
    free(f->x);
}

static double loss(fixture *f)
{
    int st = bp_ad_set_batch(f->ad, f->x, f->labels, NS, 1.0 / NS);
    ck_assert_msg(st == BP_OK, "%s", bp_errmsg());
    return bp_ad_batch_loss(f->ad) / NS;
}

/* flat gradient (total) at the current parameters */
static void grad(fixture *f, double *gflat)
{
    double **gp = calloc((size_t)f->np, sizeof *gp);
    memset(gflat, 0, (size_t)f->total * sizeof *gflat);
    int64_t off = 0;
    for (int p = 0; p < f->np; p++) {
        gp[p] = gflat + off;
        off += f->numel[p];
    }
    loss(f);
    ck_assert_int_eq(bp_ad_grad(f->ad, gp), BP_OK);
    free(gp);
}

static double *param_elem(fixture *f, int64_t j)
{
    for (int p = 0; p < f->np; p++) {
        if (j < f->numel[p])
            return &f->theta[p][j];
        j -= f->numel[p];
    }
    return NULL;
}

static double norm(const double *a, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * a[i];
    return sqrt(s);
}

static double rel_err(const double *a, const double *b, int64_t n)
{
    double d = 0;
    for (int64_t i = 0; i < n; i++)
        d += (a[i] - b[i]) * (a[i] - b[i]);
    double nb = norm(b, n);
    return sqrt(d) / (nb > 1e-300 ? nb : 1e-300);
}

START_TEST(test_gradient)
{
    fixture f;
    setup(&f, models[_i]);
    double *g = malloc((size_t)f.total * sizeof *g);
    double *fd = malloc((size_t)f.total * sizeof *fd);
    grad(&f, g);
    const double h = 1e-6;
    for (int64_t j = 0; j < f.total; j++) {
        double *t = param_elem(&f, j), t0 = *t;
        *t = t0 + h;
        double lp = loss(&f);
        *t = t0 - h;
        double lm = loss(&f);
        *t = t0;
        fd[j] = (lp - lm) / (2 * h);
    }
    int64_t off = 0;
    for (int p = 0; p < f.np; p++) {
        double e = rel_err(g + off, fd + off, f.numel[p]);
        if (getenv("BP_TEST_VERBOSE"))
            fprintf(stderr, "%-18s grad %-14s n=%-4lld |g| %.3e  rel %.2e\n",
                    models[_i], f.g->values[f.pv[p]].name,
                    (long long)f.numel[p], norm(fd + off, f.numel[p]), e);
        ck_assert_msg(e <= 1e-6 || norm(fd + off, f.numel[p]) < 1e-9,
                      "%s: gradient of '%s': relative error %.3g (|g| %.3g)",
                      models[_i], f.g->values[f.pv[p]].name, e,
                      norm(fd + off, f.numel[p]));
        off += f.numel[p];
    }
    free(g);
    free(fd);
    teardown(&f);
}
END_TEST

/* hv = H v over all parameters (flat), v flat */
static void hvp_flat(fixture *f, const double *v, double *hv, const char *vin,
                     const char *vout)
{
    const double **vp = calloc((size_t)f->np, sizeof *vp);
    double **hp = calloc((size_t)f->np, sizeof *hp);
    memset(hv, 0, (size_t)f->total * sizeof *hv);
    int64_t off = 0;
    for (int p = 0; p < f->np; p++) {
        if (!vin || vin[p])
            vp[p] = v + off;
        if (!vout || vout[p])
            hp[p] = hv + off;
        off += f->numel[p];
    }
    loss(f);
    int st = bp_ad_hvp(f->ad, vp, hp);
    ck_assert_msg(st == BP_OK, "%s", bp_errmsg());
    free(vp);
    free(hp);
}

START_TEST(test_hessian)
{
    fixture f;
    setup(&f, models[_i]);
    const int64_t P = f.total;
    double *H = malloc((size_t)(P * P) * sizeof *H);
    double *gp = malloc((size_t)P * sizeof *gp);
    double *gm = malloc((size_t)P * sizeof *gm);
    const double h = 1e-5;
    /* column j of H = (grad(theta + h e_j) - grad(theta - h e_j)) / 2h */
    for (int64_t j = 0; j < P; j++) {
        double *t = param_elem(&f, j), t0 = *t;
        *t = t0 + h;
        grad(&f, gp);
        *t = t0 - h;
        grad(&f, gm);
        *t = t0;
        for (int64_t i = 0; i < P; i++)
            H[i * P + j] = (gp[i] - gm[i]) / (2 * h);
    }
    double *v = malloc((size_t)P * sizeof *v), *hv = malloc((size_t)P * sizeof *hv);
    double *ref = malloc((size_t)P * sizeof *ref), *u = malloc((size_t)P * sizeof *u);
    double *hu = malloc((size_t)P * sizeof *hu);
    bp_rng r;
    bp_rng_seed(&r, 7, (uint64_t)_i);
    for (int rep = 0; rep < 3; rep++) {
        for (int64_t i = 0; i < P; i++)
            v[i] = bp_rng_normal(&r);
        hvp_flat(&f, v, hv, NULL, NULL);
        for (int64_t i = 0; i < P; i++) {
            double s = 0;
            for (int64_t j = 0; j < P; j++)
                s += H[i * P + j] * v[j];
            ref[i] = s;
        }
        double e = rel_err(hv, ref, P);
        if (getenv("BP_TEST_VERBOSE"))
            fprintf(stderr, "%-18s Hv P=%-4lld |Hv| %.3e  rel %.2e\n",
                    models[_i], (long long)P, norm(ref, P), e);
        ck_assert_msg(e <= 1e-6, "%s: Hv vs finite-difference Hessian: "
                      "relative error %.3g (|Hv| %.3g)", models[_i], e,
                      norm(ref, P));
        /* symmetry: <u, Hv> = <v, Hu> */
        for (int64_t i = 0; i < P; i++)
            u[i] = bp_rng_normal(&r);
        hvp_flat(&f, u, hu, NULL, NULL);
        double a = 0, b = 0, m = 0;
        for (int64_t i = 0; i < P; i++) {
            a += u[i] * hv[i];
            b += v[i] * hu[i];
            m += fabs(u[i] * hv[i]) + fabs(v[i] * hu[i]);
        }
        ck_assert_msg(fabs(a - b) <= 1e-12 * (m + 1e-300), "%s: <u,Hv> %.17g "
                      "vs <v,Hu> %.17g", models[_i], a, b);
    }
    /* restricted products: v on block p only, output block q only */
    char *vin = calloc((size_t)f.np, 1), *vout = calloc((size_t)f.np, 1);
    for (int p = 0; p < f.np; p++) {
        for (int q = 0; q < f.np; q++) {
            memset(vin, 0, (size_t)f.np);
            memset(vout, 0, (size_t)f.np);
            vin[p] = 1;
            vout[q] = 1;
            for (int64_t i = 0; i < P; i++)
                v[i] = bp_rng_normal(&r);
            hvp_flat(&f, v, hv, vin, vout);
            int64_t op = 0, oq = 0;
            for (int k = 0; k < p; k++)
                op += f.numel[k];
            for (int k = 0; k < q; k++)
                oq += f.numel[k];
            for (int64_t i = 0; i < f.numel[q]; i++) {
                double s = 0;
                for (int64_t j = 0; j < f.numel[p]; j++)
                    s += H[(oq + i) * P + op + j] * v[op + j];
                ref[i] = s;
            }
            double nr = norm(ref, f.numel[q]);
            double e = rel_err(hv + oq, ref, f.numel[q]);
            ck_assert_msg(e <= 1e-6 || nr < 1e-10, "%s: block (%s, %s): "
                          "relative error %.3g (|ref| %.3g)", models[_i],
                          f.g->values[f.pv[q]].name, f.g->values[f.pv[p]].name,
                          e, nr);
            /* nothing outside block q */
            for (int64_t i = 0; i < P; i++)
                if (i < oq || i >= oq + f.numel[q])
                    ck_assert(hv[i] == 0.0);
        }
    }
    /* Gauss-Newton trace where the block is piecewise linear */
    char *want = calloc((size_t)f.np, 1);
    double *tr = calloc((size_t)f.np, sizeof *tr);
    int64_t off = 0;
    for (int p = 0; p < f.np; p++) {
        if (bp_ad_piecewise_linear(f.ad, p) && bp_ad_gn_ok(f.ad, p))
            want[p] = 1;
    }
    loss(&f);
    ck_assert_int_eq(bp_ad_gn_trace(f.ad, want, tr), BP_OK);
    for (int p = 0; p < f.np; p++) {
        double t = 0, m = 0;
        for (int64_t i = 0; i < f.numel[p]; i++) {
            t += H[(off + i) * P + off + i];
            m += fabs(H[(off + i) * P + off + i]);
        }
        if (want[p])
            ck_assert_msg(fabs(tr[p] - t) <= 1e-6 * m + 1e-12,
                          "%s: GN trace of '%s' %.12g vs Hessian %.12g",
                          models[_i], f.g->values[f.pv[p]].name, tr[p], t);
        off += f.numel[p];
    }
    /* the output-space samples: the average over all 2^C sign vectors (the
     * same for every sample) is the Gauss-Newton trace itself, and one
     * draw per pattern gives the same bits with 1 thread or 3 */
    int64_t C = bp_ad_classes(f.ad);
    int any = 0;
    for (int p = 0; p < f.np; p++)
        any |= want[p];
    if (any && C <= 10) {
        int k = 1 << C;
        double *signs = malloc((size_t)(k * NS * C) * sizeof *signs);
        double *trk = calloc((size_t)k * f.np, sizeof *trk);
        double *trk3 = calloc((size_t)k * f.np, sizeof *trk3);
        for (int j = 0; j < k; j++)
            for (int s = 0; s < NS; s++)
                for (int64_t c = 0; c < C; c++)
                    signs[((int64_t)j * NS + s) * C + c] = j >> c & 1 ? -1 : 1;
        ck_assert_int_eq(bp_ad_gn_sample(f.ad, want, k, signs, trk), BP_OK);
        ck_assert_int_eq(bp_ad_set_threads(f.ad, 3), BP_OK);
        ck_assert_int_eq(bp_ad_gn_sample(f.ad, want, k, signs, trk3), BP_OK);
        ck_assert_int_eq(bp_ad_set_threads(f.ad, 1), BP_OK);
        ck_assert(memcmp(trk, trk3, (size_t)k * f.np * sizeof *trk) == 0);
        for (int p = 0; p < f.np; p++) {
            if (!want[p])
                continue;
            double m = 0, lo = INFINITY, hi = -INFINITY;
            for (int j = 0; j < k; j++) {
                double t = trk[(int64_t)j * f.np + p];
                m += t / k;
                lo = t < lo ? t : lo;
                hi = t > hi ? t : hi;
            }
            ck_assert_msg(fabs(m - tr[p]) <= 1e-9 * fabs(tr[p]) + 1e-14,
                          "%s: sampled GN trace of '%s' averages %.12g, exact "
                          "%.12g", models[_i], f.g->values[f.pv[p]].name, m,
                          tr[p]);
            ck_assert(lo >= 0);
            /* the draws do vary: each alone is only an estimate */
            ck_assert_msg(C < 2 || hi > lo, "%s: draws all equal", models[_i]);
        }
        free(signs);
        free(trk);
        free(trk3);
    }
    free(want);
    free(tr);
    free(vin);
    free(vout);
    free(H);
    free(gp);
    free(gm);
    free(v);
    free(hv);
    free(ref);
    free(u);
    free(hu);
    teardown(&f);
}
END_TEST

/* The piecewise-linear classification: which blocks the exact trace may
 * use. */
START_TEST(test_piecewise_linear)
{
    static const struct {
        const char *model, *param;
        int pl;
    } cases[] = {
        {"tiny_cnn", "c1.weight", 1}, {"tiny_cnn", "c2.weight", 1},
        {"tiny_cnn", "fc.weight", 1}, {"tiny_tanh", "fc1.weight", 0},
        {"tiny_tanh", "fc2.weight", 0}, {"tiny_tanh", "fc3.weight", 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fixture f;
        setup(&f, cases[c].model);
        int found = 0;
        for (int p = 0; p < f.np; p++)
            if (strcmp(f.g->values[f.pv[p]].name, cases[c].param) == 0) {
                found = 1;
                ck_assert_msg(bp_ad_piecewise_linear(f.ad, p) == cases[c].pl,
                              "%s %s", cases[c].model, cases[c].param);
                ck_assert(bp_ad_gn_ok(f.ad, p));
            }
        ck_assert_msg(found, "%s: no parameter %s", cases[c].model,
                      cases[c].param);
        teardown(&f);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("autodiff");
    TCase *tc = tcase_create("fd");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_gradient, 0, N_MODELS);
    tcase_add_loop_test(tc, test_hessian, 0, N_MODELS);
    tcase_add_test(tc, test_piecewise_linear);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
