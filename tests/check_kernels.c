/* check_kernels.c - unit tests of the float reference kernels (kernels.h).
 *
 * Every kernel is compared, in float32 and in float64, against a naive
 * direct-loop reference written here with double accumulation, on fixed
 * shapes chosen to hit each special case (groups, depthwise, dilation,
 * asymmetric pads, broadcasting of every kind, ceil-mode pools, ...) plus
 * shapes drawn from a fixed-seed PRNG.  Inputs are rounded to float32 once,
 * so both precisions see exactly the same values and the reference stays
 * exact in double.  Each test is a loop test: _i = 0 runs float32, 1 runs
 * float64.  The error bound is tol * mag + atol, where mag is the sum of the
 * magnitudes of the terms that make up an element (|ref| for single-rounding
 * ops), so a cancelling sum is not held to an impossible relative bound. */
#include "kernels.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testrng.h"

/* ---- random values (tests/testrng.h) ------------------------------------- */

/* n values uniform in [lo, hi), rounded to float32 */
static void fill(rng *r, double *v, int64_t n, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = (double)(float)(lo + (hi - lo) * rng_unit(r));
}

static double *dnew(int64_t n)
{
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* ---- buffers of the precision under test -------------------------------- */

/* A float32 or float64 copy of src (NaN everywhere when src is NULL, so an
 * output element the kernel forgets to write shows up). */
static void *tnew(int f64, const double *src, int64_t n)
{
    void *p = malloc((size_t)(n > 0 ? n : 1) * (f64 ? sizeof(double) : sizeof(float)));
    ck_assert_ptr_nonnull(p);
    for (int64_t i = 0; i < n; i++) {
        double v = src ? src[i] : NAN;
        if (f64)
            ((double *)p)[i] = v;
        else
            ((float *)p)[i] = (float)v;
    }
    return p;
}

static void tget(int f64, double *dst, const void *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = f64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

/* Calls bp_k_<name>_f64 or bp_k_<name>_f32; buffers are void *. */
#define KCALL(f64, name, ...)                                                  \
    do {                                                                       \
        if (f64)                                                               \
            bp_k_##name##_f64(__VA_ARGS__);                                    \
        else                                                                   \
            bp_k_##name##_f32(__VA_ARGS__);                                    \
    } while (0)

static double tol_of(int f64)
{
    return f64 ? 1e-12 : 1e-5;
}

/* |got - ref| <= tol * mag + atol element-wise (mag NULL: |ref|).  atol only
 * absorbs subnormal results. */
static void expect_close(int f64, const double *got, const double *ref,
                         const double *mag, int64_t n, double tol,
                         const char *what)
{
    const double atol = f64 ? 1e-300 : 1e-37;
    for (int64_t i = 0; i < n; i++) {
        double m = mag ? mag[i] : fabs(ref[i]);
        double err = fabs(got[i] - ref[i]);
        if (!(err <= tol * m + atol))
            ck_abort_msg("%s (%s): element %lld: got %.17g, want %.17g "
                         "(err %.3g, bound %.3g)",
                         what, f64 ? "f64" : "f32", (long long)i, got[i],
                         ref[i], err, tol * m + atol);
    }
}

/* ---- conv ---------------------------------------------------------------- */

typedef struct conv_case {
    int64_t n, c, h, w, m, kh, kw, group;
    int64_t pt, pl, pb, pr, sh, sw, dh, dw;
    int bias;
} conv_case;

static void conv_ref(double *y, double *mag, const double *x, const double *w,
                     const double *b, const bp_conv_geom *g)
{
    const int64_t cg = g->c / g->group, mg = g->m / g->group;
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oc = 0; oc < g->m; oc++)
            for (int64_t oy = 0; oy < g->oh; oy++)
                for (int64_t ox = 0; ox < g->ow; ox++) {
                    const int64_t gi = oc / mg;
                    double s = b ? b[oc] : 0, a = fabs(s);
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t ky = 0; ky < g->kh; ky++)
                            for (int64_t kx = 0; kx < g->kw; kx++) {
                                int64_t iy = oy * g->stride_h - g->pad_t + ky * g->dil_h;
                                int64_t ix = ox * g->stride_w - g->pad_l + kx * g->dil_w;
                                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                                    continue;
                                double t = x[((n * g->c + gi * cg + ci) * g->h + iy) * g->w + ix] *
                                           w[((oc * cg + ci) * g->kh + ky) * g->kw + kx];
                                s += t;
                                a += fabs(t);
                            }
                    int64_t o = ((n * g->m + oc) * g->oh + oy) * g->ow + ox;
                    y[o] = s;
                    mag[o] = a;
                }
}

static void run_conv(int f64, rng *r, conv_case cc, const char *what)
{
    bp_conv_geom g = {
        .n = cc.n, .c = cc.c, .h = cc.h, .w = cc.w, .m = cc.m,
        .kh = cc.kh, .kw = cc.kw, .group = cc.group,
        .pad_t = cc.pt, .pad_l = cc.pl,
        .stride_h = cc.sh, .stride_w = cc.sw, .dil_h = cc.dh, .dil_w = cc.dw,
    };
    g.oh = (cc.h + cc.pt + cc.pb - cc.dh * (cc.kh - 1) - 1) / cc.sh + 1;
    g.ow = (cc.w + cc.pl + cc.pr - cc.dw * (cc.kw - 1) - 1) / cc.sw + 1;
    ck_assert_msg(g.oh >= 1 && g.ow >= 1, "%s: bad test geometry", what);
    const int64_t nx = cc.n * cc.c * cc.h * cc.w;
    const int64_t nw = cc.m * (cc.c / cc.group) * cc.kh * cc.kw;
    const int64_t ny = cc.n * cc.m * g.oh * g.ow;
    double *x = dnew(nx), *w = dnew(nw), *b = dnew(cc.m);
    double *ref = dnew(ny), *mag = dnew(ny), *got = dnew(ny);
    fill(r, x, nx, -1, 1);
    fill(r, w, nw, -1, 1);
    fill(r, b, cc.m, -1, 1);
    conv_ref(ref, mag, x, w, cc.bias ? b : NULL, &g);

    const int64_t nwork = bp_conv_work(&g);
    ck_assert_int_ge(nwork, 1);
    void *tx = tnew(f64, x, nx), *tw = tnew(f64, w, nw), *tb = tnew(f64, b, cc.m);
    void *ty = tnew(f64, NULL, ny), *twork = tnew(f64, NULL, nwork);
    KCALL(f64, conv, ty, tx, tw, cc.bias ? tb : NULL, &g, twork);
    tget(f64, got, ty, ny);
    expect_close(f64, got, ref, mag, ny, tol_of(f64), what);
    free(tx), free(tw), free(tb), free(ty), free(twork);
    free(x), free(w), free(b), free(ref), free(mag), free(got);
}

START_TEST(test_conv)
{
    const int f64 = _i;
    rng r = {0x5eed0001};
    static const struct {
        const char *what;
        conv_case cc;
    } fixed[] = {
        /*               n  c  h  w   m kh kw g  pt pl pb pr sh sw dh dw bias */
        {"3x3 pad 1", {1, 3, 7, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
        {"groups", {2, 4, 6, 5, 6, 3, 2, 2, 1, 0, 0, 1, 1, 1, 1, 1, 1}},
        {"groups 4", {1, 8, 5, 5, 12, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
        {"depthwise", {2, 5, 8, 8, 5, 3, 3, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
        {"depthwise x2", {1, 4, 7, 6, 8, 3, 3, 4, 1, 1, 1, 1, 2, 2, 1, 1, 0}},
        {"dilation", {1, 3, 9, 10, 4, 3, 3, 1, 2, 2, 2, 2, 1, 1, 2, 2, 1}},
        {"dilation 2x3", {2, 2, 11, 12, 3, 3, 2, 1, 1, 3, 0, 1, 1, 1, 2, 3, 1}},
        {"stride 2", {2, 3, 9, 8, 4, 3, 3, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1}},
        {"stride 2x1", {1, 3, 8, 9, 2, 3, 3, 1, 1, 1, 0, 1, 2, 1, 1, 1, 1}},
        {"asym pads", {1, 3, 7, 6, 4, 3, 3, 1, 2, 0, 1, 3, 1, 1, 1, 1, 1}},
        {"asym pads s2", {2, 2, 9, 7, 3, 4, 3, 1, 0, 2, 3, 1, 2, 2, 1, 1, 1}},
        {"1x1", {2, 8, 5, 6, 4, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1}},
        {"1x1 groups", {2, 8, 5, 6, 6, 1, 1, 2, 0, 0, 0, 0, 1, 1, 1, 1, 0}},
        {"1x1 stride 2", {1, 6, 7, 8, 5, 1, 1, 1, 0, 0, 0, 0, 2, 2, 1, 1, 1}},
        {"1x1 trailing pad", {1, 4, 4, 5, 3, 1, 1, 1, 0, 0, 1, 2, 1, 1, 1, 1, 1}},
        {"1x1 leading pad", {1, 4, 4, 5, 3, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1}},
        {"no bias", {2, 3, 6, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0}},
        {"1-D", {2, 4, 1, 17, 5, 1, 5, 1, 0, 2, 0, 2, 1, 2, 1, 1, 1}},
        {"kernel = input", {2, 3, 5, 4, 7, 5, 4, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1}},
        {"pad > kernel", {1, 2, 3, 3, 2, 2, 2, 1, 3, 3, 3, 3, 2, 2, 1, 1, 1}},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        run_conv(f64, &r, fixed[i].cc, fixed[i].what);

    for (int t = 0; t < 12; t++) {
        conv_case cc;
        static const int64_t groups[] = {1, 1, 2, 3};
        cc.group = groups[rng_int(&r, 0, 3)];
        cc.c = cc.group * rng_int(&r, 1, 4);
        cc.m = cc.group * rng_int(&r, 1, 4);
        if (rng_int(&r, 0, 3) == 0)
            cc.group = cc.c; /* depthwise, channel multiplier m/c */
        if (cc.m % cc.group)
            cc.m = cc.group * rng_int(&r, 1, 2);
        cc.n = rng_int(&r, 1, 3);
        cc.kh = rng_int(&r, 1, 4);
        cc.kw = rng_int(&r, 1, 4);
        cc.dh = rng_int(&r, 1, 3);
        cc.dw = rng_int(&r, 1, 3);
        cc.sh = rng_int(&r, 1, 3);
        cc.sw = rng_int(&r, 1, 3);
        cc.pt = rng_int(&r, 0, cc.kh - 1);
        cc.pl = rng_int(&r, 0, cc.kw - 1);
        cc.pb = rng_int(&r, 0, cc.kh - 1);
        cc.pr = rng_int(&r, 0, cc.kw - 1);
        cc.h = cc.dh * (cc.kh - 1) + rng_int(&r, 1, 9);
        cc.w = cc.dw * (cc.kw - 1) + rng_int(&r, 1, 9);
        cc.bias = (int)rng_int(&r, 0, 1);
        char what[32];
        snprintf(what, sizeof what, "random conv %d", t);
        run_conv(f64, &r, cc, what);
    }
}
END_TEST

/* ---- gemm ---------------------------------------------------------------- */

static void run_gemm(int f64, rng *r, int64_t m, int64_t n, int64_t k, int ta,
                     int tb, double alpha, double beta, int nan_y)
{
    double *a = dnew(m * k), *b = dnew(k * n), *y0 = dnew(m * n);
    double *ref = dnew(m * n), *mag = dnew(m * n), *got = dnew(m * n);
    fill(r, a, m * k, -1, 1);
    fill(r, b, k * n, -1, 1);
    fill(r, y0, m * n, -1, 1);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0, sa = 0;
            for (int64_t l = 0; l < k; l++) {
                double t = (ta ? a[l * m + i] : a[i * k + l]) *
                           (tb ? b[j * k + l] : b[l * n + j]);
                s += t;
                sa += fabs(t);
            }
            double c = beta != 0 ? beta * y0[i * n + j] : 0;
            ref[i * n + j] = alpha * s + c;
            mag[i * n + j] = fabs(alpha) * sa + fabs(c);
        }
    void *tA = tnew(f64, a, m * k), *tB = tnew(f64, b, k * n);
    void *tY = tnew(f64, nan_y ? NULL : y0, m * n);
    KCALL(f64, gemm, tY, tA, tB, m, n, k, ta, tb, alpha, beta);
    tget(f64, got, tY, m * n);
    char what[96];
    snprintf(what, sizeof what, "gemm %lldx%lldx%lld ta %d tb %d alpha %g beta %g",
             (long long)m, (long long)n, (long long)k, ta, tb, alpha, beta);
    expect_close(f64, got, ref, mag, m * n, tol_of(f64), what);
    free(tA), free(tB), free(tY);
    free(a), free(b), free(y0), free(ref), free(mag), free(got);
}

START_TEST(test_gemm)
{
    const int f64 = _i;
    rng r = {0x5eed0002};
    static const double alphas[] = {1, 0.75, -1.5};
    static const double betas[] = {0, 1, -0.5};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int ia = 0; ia < 3; ia++)
                for (int ib = 0; ib < 3; ib++) {
                    int64_t m = rng_int(&r, 1, 40), n = rng_int(&r, 1, 40);
                    int64_t k = rng_int(&r, 1, 64);
                    run_gemm(f64, &r, m, n, k, ta, tb, alphas[ia], betas[ib], 0);
                }
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            run_gemm(f64, &r, 1, 1, 1, ta, tb, 1, 0, 0);
            run_gemm(f64, &r, 1, 37, 23, ta, tb, 1, 1, 0);  /* row vector */
            run_gemm(f64, &r, 29, 1, 31, ta, tb, 1, 0, 0);  /* column */
            run_gemm(f64, &r, 67, 45, 60, ta, tb, 1, 0.5, 0);
        }
}
END_TEST

/* beta == 0 must not read y (NaN there stays out); k == 0 leaves beta y. */
START_TEST(test_gemm_edges)
{
    const int f64 = _i;
    rng r = {0x5eed0003};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            run_gemm(f64, &r, 13, 17, 9, ta, tb, 1, 0, 1);

    double y0[6] = {1, -2, 3, 4, -5, 6}, got[6], ref[6];
    double dummy = 0;
    void *ty = tnew(f64, y0, 6), *td = tnew(f64, &dummy, 1);
    KCALL(f64, gemm, ty, td, td, 2, 3, 0, 0, 0, 1, -0.5);
    tget(f64, got, ty, 6);
    for (int i = 0; i < 6; i++)
        ref[i] = -0.5 * y0[i];
    expect_close(f64, got, ref, NULL, 6, tol_of(f64), "gemm k = 0, beta -0.5");
    free(ty);
    ty = tnew(f64, NULL, 6);
    KCALL(f64, gemm, ty, td, td, 2, 3, 0, 0, 0, 1, 0);
    tget(f64, got, ty, 6);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(got[i] == 0, "gemm k = 0, beta 0: y[%d] = %g", i, got[i]);
    free(ty), free(td);
}
END_TEST

/* ---- binary -------------------------------------------------------------- */

static double binop_ref(bp_binop op, double u, double v)
{
    switch (op) {
    case BP_BIN_ADD: return u + v;
    case BP_BIN_SUB: return u - v;
    case BP_BIN_MUL: return u * v;
    case BP_BIN_DIV: return u / v;
    }
    return NAN;
}

static const char *const binop_names[] = {"add", "sub", "mul", "div"};

/* Strides, per axis of y, of an operand of shape `shape` (1 on broadcast
 * axes) stored contiguously with its axes in the order `order` (outermost
 * first; NULL: natural order).  Returns its element count. */
static int64_t operand_strides(int rank, const int64_t *ydims,
                               const int64_t *shape, const int *order,
                               int64_t *str)
{
    int64_t st = 1;
    for (int k = rank - 1; k >= 0; k--) {
        int ax = order ? order[k] : k;
        str[ax] = shape[ax] == 1 && ydims[ax] != 1 ? 0 : st;
        st *= shape[ax];
    }
    return st;
}

/* y (ydims) = a (ash) op b (bsh) for every op; aorder stores a permuted (a
 * non-contiguous view); inplace makes y the buffer of a. */
static void run_binary(int f64, rng *r, int rank, const int64_t *ydims,
                       const int64_t *ash, const int64_t *bsh,
                       const int *aorder, int inplace, const char *what)
{
    int64_t as[8], bs[8];
    const int64_t na = operand_strides(rank, ydims, ash, aorder, as);
    const int64_t nb = operand_strides(rank, ydims, bsh, NULL, bs);
    int64_t ny = 1;
    for (int i = 0; i < rank; i++)
        ny *= ydims[i];
    if (inplace)
        ck_assert_int_eq(na, ny);
    for (int op = BP_BIN_ADD; op <= BP_BIN_DIV; op++) {
        double *a = dnew(na), *b = dnew(nb), *ref = dnew(ny), *got = dnew(ny);
        fill(r, a, na, -1, 1);
        fill(r, b, nb, -1, 1);
        for (int64_t i = 0; i < ny; i++) {
            int64_t rem = i, oa = 0, ob = 0;
            for (int ax = rank - 1; ax >= 0; ax--) {
                int64_t c = rem % ydims[ax];
                rem /= ydims[ax];
                oa += c * as[ax];
                ob += c * bs[ax];
            }
            ref[i] = binop_ref((bp_binop)op, a[oa], b[ob]);
        }
        void *ta = tnew(f64, a, na), *tb = tnew(f64, b, nb);
        void *ty = inplace ? ta : tnew(f64, NULL, ny);
        KCALL(f64, binary, ty, ta, as, tb, bs, rank, ydims, (bp_binop)op);
        tget(f64, got, ty, ny);
        char msg[96];
        snprintf(msg, sizeof msg, "binary %s %s", binop_names[op], what);
        /* a single rounding of exact float inputs: relative to |ref| */
        expect_close(f64, got, ref, NULL, ny, tol_of(f64), msg);
        if (!inplace)
            free(ty);
        free(ta), free(tb);
        free(a), free(b), free(ref), free(got);
    }
}

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})

START_TEST(test_binary)
{
    const int f64 = _i;
    rng r = {0x5eed0004};
    static const int64_t none[1] = {1};
    run_binary(f64, &r, 0, none, none, none, NULL, 0, "rank 0");
    run_binary(f64, &r, 4, DIMS(2, 3, 4, 5), DIMS(2, 3, 4, 5), DIMS(2, 3, 4, 5),
               NULL, 0, "same shape");
    run_binary(f64, &r, 4, DIMS(2, 3, 4, 5), DIMS(2, 3, 4, 5), DIMS(1, 1, 1, 1),
               NULL, 0, "scalar b");
    run_binary(f64, &r, 4, DIMS(2, 3, 4, 5), DIMS(1, 1, 1, 1), DIMS(2, 3, 4, 5),
               NULL, 0, "scalar a");
    run_binary(f64, &r, 4, DIMS(2, 6, 5, 7), DIMS(2, 6, 5, 7), DIMS(1, 6, 1, 1),
               NULL, 0, "channel vector b");
    run_binary(f64, &r, 4, DIMS(3, 4, 3, 3), DIMS(1, 4, 1, 1), DIMS(3, 4, 3, 3),
               NULL, 0, "channel vector a");
    run_binary(f64, &r, 3, DIMS(3, 5, 7), DIMS(3, 1, 7), DIMS(1, 5, 1), NULL, 0,
               "both sides (n,1,w) op (1,c,1)");
    run_binary(f64, &r, 3, DIMS(3, 5, 7), DIMS(1, 5, 1), DIMS(3, 1, 7), NULL, 0,
               "both sides (1,c,1) op (n,1,w)");
    run_binary(f64, &r, 2, DIMS(9, 33), DIMS(9, 33), DIMS(1, 33), NULL, 0,
               "last axis");
    run_binary(f64, &r, 2, DIMS(9, 33), DIMS(9, 1), DIMS(9, 33), NULL, 0,
               "row vector");
    run_binary(f64, &r, 1, DIMS(1000), DIMS(1000), DIMS(1000), NULL, 0,
               "rank 1");
    run_binary(f64, &r, 4, DIMS(1, 1, 1, 1), DIMS(1, 1, 1, 1), DIMS(1, 1, 1, 1),
               NULL, 0, "all ones");
    run_binary(f64, &r, 3, DIMS(4, 5, 6), DIMS(4, 5, 6), DIMS(4, 1, 6),
               (const int[]){2, 0, 1}, 0, "strided a");
    run_binary(f64, &r, 4, DIMS(2, 3, 4, 5), DIMS(2, 3, 4, 5), DIMS(1, 3, 1, 1),
               NULL, 1, "in place, y = a");
    run_binary(f64, &r, 8, DIMS(2, 1, 3, 2, 2, 1, 3, 2), DIMS(2, 1, 3, 1, 2, 1, 1, 2),
               DIMS(1, 1, 3, 2, 1, 1, 3, 1), NULL, 0, "rank 8");

    for (int t = 0; t < 20; t++) {
        int rank = (int)rng_int(&r, 1, 6);
        int64_t yd[8], ad[8], bd[8];
        int order[8];
        for (int i = 0; i < rank; i++) {
            yd[i] = rng_int(&r, 1, 5);
            ad[i] = rng_int(&r, 0, 2) ? yd[i] : 1;
            bd[i] = rng_int(&r, 0, 2) ? yd[i] : 1;
            order[i] = i;
        }
        int permuted = (int)rng_int(&r, 0, 1);
        for (int i = rank - 1; i > 0; i--) {
            int j = (int)rng_int(&r, 0, i);
            int tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        char what[32];
        snprintf(what, sizeof what, "random %d", t);
        run_binary(f64, &r, rank, yd, ad, bd, permuted ? order : NULL, 0, what);
    }
}
END_TEST

/* ---- unary --------------------------------------------------------------- */

static double unop_ref(bp_unop op, double x, double p0, double p1)
{
    switch (op) {
    case BP_UN_RELU: return x > 0 ? x : 0;
    case BP_UN_LEAKYRELU: return x >= 0 ? x : p0 * x;
    case BP_UN_CLIP: return fmin(fmax(x, p0), p1);
    case BP_UN_SIGMOID: return 1 / (1 + exp(-x));
    case BP_UN_TANH: return tanh(x);
    case BP_UN_IDENTITY: return x;
    }
    return NAN;
}

START_TEST(test_unary)
{
    const int f64 = _i;
    rng r = {0x5eed0005};
    static const struct {
        bp_unop op;
        double p0, p1;
        const char *what;
    } cases[] = {
        {BP_UN_RELU, 0, 0, "relu"},
        {BP_UN_LEAKYRELU, 0.125, 0, "leakyrelu 0.125"},
        {BP_UN_LEAKYRELU, 0.01f, 0, "leakyrelu 0.01"},
        {BP_UN_CLIP, -0.5, 0.75, "clip [-0.5, 0.75]"},
        {BP_UN_CLIP, 0, 6, "clip [0, 6]"},
        {BP_UN_CLIP, 1, -1, "clip min > max"},
        {BP_UN_SIGMOID, 0, 0, "sigmoid"},
        {BP_UN_TANH, 0, 0, "tanh"},
        {BP_UN_IDENTITY, 0, 0, "identity"},
    };
    static const double special[] = {0, -0.0, 1, -1, 20, -20, 50, -50,
                                     88, -88, 100, -100, 1000, -1000, 1e30, -1e30};
    const int64_t ns = (int64_t)(sizeof special / sizeof special[0]);
    const int64_t n = 1000 + ns;
    double *x = dnew(n), *ref = dnew(n), *got = dnew(n);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fill(&r, x, 1000, -10, 10);
        memcpy(x + 1000, special, sizeof special);
        for (int64_t i = 0; i < n; i++)
            ref[i] = unop_ref(cases[c].op, x[i], cases[c].p0, cases[c].p1);
        for (int inplace = 0; inplace < 2; inplace++) {
            void *tx = tnew(f64, x, n);
            void *ty = inplace ? tx : tnew(f64, NULL, n);
            KCALL(f64, unary, ty, tx, n, cases[c].op, cases[c].p0, cases[c].p1);
            tget(f64, got, ty, n);
            char what[64];
            snprintf(what, sizeof what, "%s%s", cases[c].what,
                     inplace ? " in place" : "");
            expect_close(f64, got, ref, NULL, n, tol_of(f64), what);
            if (!inplace)
                free(ty);
            free(tx);
        }
    }
    free(x), free(ref), free(got);
}
END_TEST

/* ---- softmax ------------------------------------------------------------- */

static void run_softmax(int f64, rng *r, int64_t outer, int64_t len,
                        int64_t inner, double lo, double hi, int inplace)
{
    const int64_t n = outer * len * inner;
    double *x = dnew(n), *ref = dnew(n), *got = dnew(n);
    fill(r, x, n, lo, hi);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const double *xs = x + o * len * inner + j;
            double *rs = ref + o * len * inner + j;
            double mx = -INFINITY, s = 0;
            for (int64_t l = 0; l < len; l++)
                mx = fmax(mx, xs[l * inner]);
            for (int64_t l = 0; l < len; l++)
                s += exp(xs[l * inner] - mx);
            for (int64_t l = 0; l < len; l++)
                rs[l * inner] = exp(xs[l * inner] - mx) / s;
        }
    void *tx = tnew(f64, x, n), *ty = inplace ? tx : tnew(f64, NULL, n);
    KCALL(f64, softmax, ty, tx, outer, len, inner);
    tget(f64, got, ty, n);
    char what[96];
    snprintf(what, sizeof what, "softmax (%lld,%lld,%lld) in [%g,%g)%s",
             (long long)outer, (long long)len, (long long)inner, lo, hi,
             inplace ? " in place" : "");
    expect_close(f64, got, ref, NULL, n, tol_of(f64), what);
    /* every row must still sum to one */
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            double s = 0;
            for (int64_t l = 0; l < len; l++)
                s += got[(o * len + l) * inner + j];
            ck_assert_msg(fabs(s - 1) <= 10 * tol_of(f64) * (double)len,
                          "%s: row sum %.17g", what, s);
        }
    if (!inplace)
        free(ty);
    free(tx), free(x), free(ref), free(got);
}

START_TEST(test_softmax)
{
    const int f64 = _i;
    rng r = {0x5eed0006};
    run_softmax(f64, &r, 3, 10, 1, -5, 5, 0);
    run_softmax(f64, &r, 2, 7, 5, -5, 5, 0);
    run_softmax(f64, &r, 2, 5, 300, -5, 5, 0);   /* inner crosses a chunk */
    run_softmax(f64, &r, 1, 1000, 1, -30, 30, 0);
    run_softmax(f64, &r, 4, 1, 3, -5, 5, 0);     /* len 1: all ones */
    run_softmax(f64, &r, 3, 12, 1, 1000, 1010, 0); /* exp(1000) overflows */
    run_softmax(f64, &r, 2, 9, 4, -1010, -1000, 0); /* exp(-1000) underflows */
    run_softmax(f64, &r, 2, 16, 3, 3e4, 3e4 + 60, 0);
    /* spread wider than exp's range: only the true max keeps every exp
     * argument <= 0 */
    run_softmax(f64, &r, 3, 12, 2, -800, 800, 0);
    run_softmax(f64, &r, 3, 12, 1, -800, 800, 0);
    run_softmax(f64, &r, 2, 6, 7, -5, 5, 1);
    for (int t = 0; t < 6; t++)
        run_softmax(f64, &r, rng_int(&r, 1, 4), rng_int(&r, 1, 40),
                    rng_int(&r, 1, 20), -20, 20, (int)rng_int(&r, 0, 1));
}
END_TEST

/* ---- pools --------------------------------------------------------------- */

typedef struct pool_case {
    int64_t n, c, h, w, kh, kw, pt, pl, pb, pr, sh, sw, dh, dw;
    int ceil, cip;
} pool_case;

/* Output extent as ONNX / PyTorch compute it; with ceil_mode the last window
 * must start inside the input or the leading pad (PyTorch's rule). */
static int64_t pool_out(int64_t h, int64_t k, int64_t pt, int64_t pb,
                        int64_t s, int64_t d, int ceil)
{
    int64_t span = h + pt + pb - d * (k - 1) - 1;
    int64_t o = (ceil ? (span + s - 1) / s : span / s) + 1;
    if (ceil && (o - 1) * s >= h + pt)
        o--;
    return o;
}

static void pool_geom(const pool_case *pc, bp_pool_geom *g, int maxpool)
{
    *g = (bp_pool_geom){
        .n = pc->n, .c = pc->c, .h = pc->h, .w = pc->w,
        .kh = pc->kh, .kw = pc->kw, .pad_t = pc->pt, .pad_l = pc->pl,
        .stride_h = pc->sh, .stride_w = pc->sw,
        /* avgpool ignores dilations: leave them 0 to prove it */
        .dil_h = maxpool ? pc->dh : 0, .dil_w = maxpool ? pc->dw : 0,
        .count_include_pad = pc->cip,
    };
    g->oh = pool_out(pc->h, pc->kh, pc->pt, pc->pb, pc->sh, maxpool ? pc->dh : 1, pc->ceil);
    g->ow = pool_out(pc->w, pc->kw, pc->pl, pc->pr, pc->sw, maxpool ? pc->dw : 1, pc->ceil);
}

static void run_pool(int f64, rng *r, const pool_case *pc, int maxpool,
                     const char *what)
{
    bp_pool_geom g;
    pool_geom(pc, &g, maxpool);
    ck_assert_msg(g.oh >= 1 && g.ow >= 1, "%s: bad test geometry", what);
    const int64_t dh = maxpool ? pc->dh : 1, dw = maxpool ? pc->dw : 1;
    const int64_t nx = g.n * g.c * g.h * g.w, ny = g.n * g.c * g.oh * g.ow;
    double *x = dnew(nx), *ref = dnew(ny), *mag = dnew(ny), *got = dnew(ny);
    fill(r, x, nx, -1, 1);
    for (int64_t p = 0; p < g.n * g.c; p++)
        for (int64_t oy = 0; oy < g.oh; oy++)
            for (int64_t ox = 0; ox < g.ow; ox++) {
                double mx = -INFINITY, s = 0, sa = 0;
                int64_t in = 0, padded = 0;
                for (int64_t ky = 0; ky < g.kh; ky++)
                    for (int64_t kx = 0; kx < g.kw; kx++) {
                        int64_t iy = oy * g.stride_h - g.pad_t + ky * dh;
                        int64_t ix = ox * g.stride_w - g.pad_l + kx * dw;
                        if (iy >= -pc->pt && iy < g.h + pc->pb &&
                            ix >= -pc->pl && ix < g.w + pc->pr)
                            padded++;
                        if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w)
                            continue;
                        double v = x[(p * g.h + iy) * g.w + ix];
                        mx = fmax(mx, v);
                        s += v;
                        sa += fabs(v);
                        in++;
                    }
                ck_assert_msg(in > 0, "%s: empty window", what);
                int64_t o = (p * g.oh + oy) * g.ow + ox;
                int64_t cnt = g.count_include_pad ? padded : in;
                ref[o] = maxpool ? mx : s / (double)cnt;
                mag[o] = maxpool ? 0 : sa / (double)cnt;
            }
    void *tx = tnew(f64, x, nx), *ty = tnew(f64, NULL, ny);
    if (maxpool)
        KCALL(f64, maxpool, ty, tx, &g);
    else
        KCALL(f64, avgpool, ty, tx, &g);
    tget(f64, got, ty, ny);
    /* max pool selects an input: exact */
    expect_close(f64, got, ref, mag, ny, maxpool ? 0 : tol_of(f64), what);
    free(tx), free(ty), free(x), free(ref), free(mag), free(got);
}

static const struct {
    const char *what;
    pool_case pc;
} pool_fixed[] = {
    /*                n  c  h   w  kh kw pt pl pb pr sh sw dh dw ceil cip */
    {"2x2 s2", {2, 3, 8, 8, 2, 2, 0, 0, 0, 0, 2, 2, 1, 1, 0, 0}},
    {"3x3 s2 pad 1", {1, 4, 9, 10, 3, 3, 1, 1, 1, 1, 2, 2, 1, 1, 0, 0}},
    {"3x3 s1 pad 1", {2, 2, 6, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}},
    {"ceil", {1, 3, 8, 7, 3, 3, 1, 1, 1, 1, 2, 2, 1, 1, 1, 0}},
    {"ceil no pad", {2, 2, 7, 6, 2, 3, 0, 0, 0, 0, 2, 2, 1, 1, 1, 0}},
    {"ceil pad 2", {1, 2, 10, 11, 5, 5, 2, 2, 2, 2, 3, 3, 1, 1, 1, 0}},
    {"rect stride", {1, 3, 9, 12, 3, 2, 1, 0, 1, 0, 3, 1, 1, 1, 0, 0}},
    {"global", {2, 3, 5, 6, 5, 6, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0}},
};

START_TEST(test_maxpool)
{
    const int f64 = _i;
    rng r = {0x5eed0007};
    for (size_t i = 0; i < sizeof pool_fixed / sizeof pool_fixed[0]; i++)
        run_pool(f64, &r, &pool_fixed[i].pc, 1, pool_fixed[i].what);
    static const struct {
        const char *what;
        pool_case pc;
    } extra[] = {
        {"dilation 2", {1, 3, 10, 10, 3, 3, 1, 1, 1, 1, 1, 1, 2, 2, 0, 0}},
        {"dilation 2x3 s2", {2, 2, 12, 13, 2, 3, 1, 2, 0, 1, 2, 2, 2, 3, 0, 0}},
        {"dilation ceil", {1, 2, 11, 9, 3, 2, 1, 1, 1, 1, 2, 2, 2, 2, 1, 0}},
        {"asym pads", {1, 3, 7, 8, 3, 3, 2, 0, 1, 2, 1, 1, 1, 1, 0, 0}},
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        run_pool(f64, &r, &extra[i].pc, 1, extra[i].what);
    for (int t = 0; t < 10; t++) {
        pool_case pc;
        pc.n = rng_int(&r, 1, 2);
        pc.c = rng_int(&r, 1, 3);
        pc.kh = rng_int(&r, 1, 4);
        pc.kw = rng_int(&r, 1, 4);
        pc.dh = rng_int(&r, 1, 2);
        pc.dw = rng_int(&r, 1, 2);
        pc.sh = rng_int(&r, 1, 3);
        pc.sw = rng_int(&r, 1, 3);
        /* pads below the kernel size keep every window non-empty */
        pc.pt = rng_int(&r, 0, pc.kh - 1);
        pc.pl = rng_int(&r, 0, pc.kw - 1);
        pc.pb = rng_int(&r, 0, pc.kh - 1);
        pc.pr = rng_int(&r, 0, pc.kw - 1);
        pc.h = pc.dh * (pc.kh - 1) + rng_int(&r, 1, 8);
        pc.w = pc.dw * (pc.kw - 1) + rng_int(&r, 1, 8);
        pc.ceil = (int)rng_int(&r, 0, 1);
        pc.cip = 0;
        char what[32];
        snprintf(what, sizeof what, "random maxpool %d", t);
        run_pool(f64, &r, &pc, 1, what);
    }
}
END_TEST

START_TEST(test_avgpool)
{
    const int f64 = _i;
    rng r = {0x5eed0008};
    for (int cip = 0; cip < 2; cip++) {
        for (size_t i = 0; i < sizeof pool_fixed / sizeof pool_fixed[0]; i++) {
            pool_case pc = pool_fixed[i].pc;
            pc.cip = cip;
            char what[64];
            snprintf(what, sizeof what, "avgpool %s cip %d", pool_fixed[i].what, cip);
            run_pool(f64, &r, &pc, 0, what);
        }
        for (int t = 0; t < 10; t++) {
            pool_case pc;
            pc.n = rng_int(&r, 1, 2);
            pc.c = rng_int(&r, 1, 3);
            pc.kh = rng_int(&r, 1, 4);
            pc.kw = rng_int(&r, 1, 4);
            pc.dh = pc.dw = 1;
            pc.sh = rng_int(&r, 1, 3);
            pc.sw = rng_int(&r, 1, 3);
            pc.pt = rng_int(&r, 0, pc.kh - 1);
            pc.pl = rng_int(&r, 0, pc.kw - 1);
            /* count_include_pad assumes symmetric pads (see kernels_impl.h) */
            pc.pb = cip ? pc.pt : rng_int(&r, 0, pc.kh - 1);
            pc.pr = cip ? pc.pl : rng_int(&r, 0, pc.kw - 1);
            pc.h = pc.kh + rng_int(&r, 0, 8);
            pc.w = pc.kw + rng_int(&r, 0, 8);
            pc.ceil = (int)rng_int(&r, 0, 1);
            pc.cip = cip;
            char what[48];
            snprintf(what, sizeof what, "random avgpool %d cip %d", t, cip);
            run_pool(f64, &r, &pc, 0, what);
        }
    }
}
END_TEST

/* Worked by hand after torch.nn.functional.avg_pool2d(x, (1,3), (1,2),
 * (0,1), ceil_mode=True, count_include_pad=...) on x = [[1,2,3,4]]: the last
 * window [3,6) holds one input and reaches past the padded extent [-1,5). */
START_TEST(test_avgpool_ceil_example)
{
    const int f64 = _i;
    const double x[4] = {1, 2, 3, 4};
    const double want[2][3] = {{1.5, 3, 4}, {1, 3, 2}};
    for (int cip = 0; cip < 2; cip++) {
        bp_pool_geom g = {.n = 1, .c = 1, .h = 1, .w = 4, .kh = 1, .kw = 3,
                          .oh = 1, .ow = 3, .pad_t = 0, .pad_l = 1,
                          .stride_h = 1, .stride_w = 2,
                          .count_include_pad = cip};
        double got[3];
        void *tx = tnew(f64, x, 4), *ty = tnew(f64, NULL, 3);
        KCALL(f64, avgpool, ty, tx, &g);
        tget(f64, got, ty, 3);
        expect_close(f64, got, want[cip], NULL, 3, tol_of(f64),
                     cip ? "avgpool ceil example, cip" : "avgpool ceil example");
        free(tx), free(ty);
    }
}
END_TEST

/* ---- mean ---------------------------------------------------------------- */

START_TEST(test_mean)
{
    const int f64 = _i;
    rng r = {0x5eed0009};
    static const int64_t shapes[][3] = {
        {6, 49, 1}, {2, 5, 7}, {3, 4, 600}, {1, 3000, 1}, {4, 1, 5}, {1, 7, 256},
    };
    for (int t = 0; t < 10; t++) {
        int64_t outer, len, inner;
        if (t < 6) {
            outer = shapes[t][0], len = shapes[t][1], inner = shapes[t][2];
        } else {
            outer = rng_int(&r, 1, 5), len = rng_int(&r, 1, 50);
            inner = rng_int(&r, 1, 300);
        }
        const int64_t nx = outer * len * inner, ny = outer * inner;
        double *x = dnew(nx), *ref = dnew(ny), *mag = dnew(ny), *got = dnew(ny);
        fill(&r, x, nx, -1, 1);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < inner; j++) {
                double s = 0, sa = 0;
                for (int64_t l = 0; l < len; l++) {
                    s += x[(o * len + l) * inner + j];
                    sa += fabs(x[(o * len + l) * inner + j]);
                }
                ref[o * inner + j] = s / (double)len;
                mag[o * inner + j] = sa / (double)len;
            }
        void *tx = tnew(f64, x, nx), *ty = tnew(f64, NULL, ny);
        KCALL(f64, mean, ty, tx, outer, len, inner);
        tget(f64, got, ty, ny);
        char what[64];
        snprintf(what, sizeof what, "mean (%lld,%lld,%lld)", (long long)outer,
                 (long long)len, (long long)inner);
        expect_close(f64, got, ref, mag, ny, tol_of(f64), what);
        free(tx), free(ty), free(x), free(ref), free(mag), free(got);
    }
}
END_TEST

/* ---- batchnorm ----------------------------------------------------------- */

START_TEST(test_batchnorm)
{
    const int f64 = _i;
    rng r = {0x5eed000a};
    static const int64_t shapes[][3] = {{2, 5, 13}, {1, 3, 1}, {3, 16, 49}, {1, 1, 100}};
    for (int t = 0; t < 4; t++) {
        const int64_t n = shapes[t][0], c = shapes[t][1], inner = shapes[t][2];
        const int64_t nx = n * c * inner;
        const double eps = (double)1e-5f;
        double *x = dnew(nx), *ref = dnew(nx), *mag = dnew(nx), *got = dnew(nx);
        double *sc = dnew(c), *bi = dnew(c), *mu = dnew(c), *va = dnew(c);
        fill(&r, x, nx, -3, 3);
        fill(&r, sc, c, -2, 2);
        fill(&r, bi, c, -1, 1);
        fill(&r, mu, c, -1, 1);
        fill(&r, va, c, 0.01, 4);
        for (int64_t i = 0; i < nx; i++) {
            int64_t ch = i / inner % c;
            double k = sc[ch] / sqrt(va[ch] + eps);
            ref[i] = (x[i] - mu[ch]) / sqrt(va[ch] + eps) * sc[ch] + bi[ch];
            /* the kernel folds to x k + (bias - mean k): bound by its terms */
            mag[i] = (fabs(x[i]) + fabs(mu[ch])) * fabs(k) + fabs(bi[ch]);
        }
        void *tsc = tnew(f64, sc, c), *tbi = tnew(f64, bi, c);
        void *tmu = tnew(f64, mu, c), *tva = tnew(f64, va, c);
        for (int inplace = 0; inplace < 2; inplace++) {
            void *tx = tnew(f64, x, nx), *ty = inplace ? tx : tnew(f64, NULL, nx);
            KCALL(f64, batchnorm, ty, tx, tsc, tbi, tmu, tva, eps, n, c, inner);
            tget(f64, got, ty, nx);
            char what[64];
            snprintf(what, sizeof what, "batchnorm (%lld,%lld,%lld)%s",
                     (long long)n, (long long)c, (long long)inner,
                     inplace ? " in place" : "");
            expect_close(f64, got, ref, mag, nx, tol_of(f64), what);
            if (!inplace)
                free(ty);
            free(tx);
        }
        free(tsc), free(tbi), free(tmu), free(tva);
        free(x), free(ref), free(mag), free(got), free(sc), free(bi), free(mu), free(va);
    }
}
END_TEST

/* ---- transpose ----------------------------------------------------------- */

static void run_transpose(int f64, rng *r, int rank, const int64_t *dims,
                          const int64_t *perm)
{
    int64_t nx = 1, xs[8], yd[8];
    for (int i = rank - 1; i >= 0; i--) {
        xs[i] = nx;
        nx *= dims[i];
    }
    for (int i = 0; i < rank; i++)
        yd[i] = dims[perm[i]];
    double *x = dnew(nx), *ref = dnew(nx), *got = dnew(nx);
    fill(r, x, nx, -1, 1);
    for (int64_t i = 0; i < nx; i++) {
        int64_t rem = i, off = 0;
        for (int ax = rank - 1; ax >= 0; ax--) {
            off += rem % yd[ax] * xs[perm[ax]];
            rem /= yd[ax];
        }
        ref[i] = x[off];
    }
    void *tx = tnew(f64, x, nx), *ty = tnew(f64, NULL, nx);
    KCALL(f64, transpose, ty, tx, rank, dims, perm);
    tget(f64, got, ty, nx);
    char what[128];
    int len = snprintf(what, sizeof what, "transpose dims");
    for (int i = 0; i < rank; i++)
        len += snprintf(what + len, sizeof what - (size_t)len, " %lld", (long long)dims[i]);
    len += snprintf(what + len, sizeof what - (size_t)len, " perm");
    for (int i = 0; i < rank; i++)
        len += snprintf(what + len, sizeof what - (size_t)len, " %lld", (long long)perm[i]);
    expect_close(f64, got, ref, NULL, nx, 0, what);
    free(tx), free(ty), free(x), free(ref), free(got);
}

START_TEST(test_transpose)
{
    const int f64 = _i;
    rng r = {0x5eed000b};
    /* every rank-4 permutation, on two shapes (one with a unit axis) */
    static const int64_t shapes4[][4] = {{2, 3, 4, 5}, {3, 1, 7, 6}};
    for (int s = 0; s < 2; s++)
        for (int code = 0; code < 256; code++) {
            int64_t perm[4];
            int seen = 0;
            for (int i = 0; i < 4; i++) {
                perm[i] = code >> (2 * i) & 3;
                seen |= 1 << perm[i];
            }
            if (seen == 15)
                run_transpose(f64, &r, 4, shapes4[s], perm);
        }
    run_transpose(f64, &r, 0, DIMS(1), DIMS(0));
    run_transpose(f64, &r, 1, DIMS(17), DIMS(0));
    run_transpose(f64, &r, 2, DIMS(70, 45), DIMS(1, 0));           /* tiles */
    run_transpose(f64, &r, 4, DIMS(1, 40, 33, 35), DIMS(0, 2, 3, 1)); /* NHWC */
    run_transpose(f64, &r, 4, DIMS(2, 33, 35, 40), DIMS(0, 3, 1, 2)); /* NCHW */
    run_transpose(f64, &r, 3, DIMS(4, 5, 6), DIMS(0, 1, 2));       /* identity */
    for (int t = 0; t < 10; t++) {
        int rank = (int)rng_int(&r, 1, 8);
        int64_t dims[8], perm[8];
        for (int i = 0; i < rank; i++) {
            dims[i] = rng_int(&r, 1, rank > 5 ? 3 : 6);
            perm[i] = i;
        }
        for (int i = rank - 1; i > 0; i--) {
            int j = (int)rng_int(&r, 0, i);
            int64_t tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        run_transpose(f64, &r, rank, dims, perm);
    }
}
END_TEST

/* ---- runner -------------------------------------------------------------- */

static Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("f32_f64");
    tcase_set_timeout(tc, 60);
    /* loop index 0: float32, 1: float64 */
    tcase_add_loop_test(tc, test_conv, 0, 2);
    tcase_add_loop_test(tc, test_gemm, 0, 2);
    tcase_add_loop_test(tc, test_gemm_edges, 0, 2);
    tcase_add_loop_test(tc, test_binary, 0, 2);
    tcase_add_loop_test(tc, test_unary, 0, 2);
    tcase_add_loop_test(tc, test_softmax, 0, 2);
    tcase_add_loop_test(tc, test_maxpool, 0, 2);
    tcase_add_loop_test(tc, test_avgpool, 0, 2);
    tcase_add_loop_test(tc, test_avgpool_ceil_example, 0, 2);
    tcase_add_loop_test(tc, test_mean, 0, 2);
    tcase_add_loop_test(tc, test_batchnorm, 0, 2);
    tcase_add_loop_test(tc, test_transpose, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(kernels_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
