/* grad_kernels.c - float64 JVP / VJP kernels of the autodiff (see
 * grad_kernels.h for the conventions: accumulate, NULL = zero / unwanted). */
#include "grad_kernels.h"

#include <assert.h>
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* ---- convolution ----------------------------------------------------------- */

/* Target size (elements) of one chunk's im2col matrix plus its output
 * matrix: large enough that a chunk's GEMM runs near BLAS peak, small enough
 * that memory stays modest for large feature maps. */
#define GCONV_TARGET ((int64_t)1 << 21)

static int64_t conv_kk(const bp_conv_geom *g)
{
    return g->c / g->group * g->kh * g->kw;
}

/* Samples per chunk for geometry g (at least 1, at most g->n). */
static int64_t conv_chunk(const bp_conv_geom *g)
{
    const int64_t npix = g->oh * g->ow, mg = g->m / g->group;
    const int64_t per = (conv_kk(g) + mg) * npix;
    int64_t ch = per > 0 ? GCONV_TARGET / per : 1;
    if (ch < 1)
        ch = 1;
    if (ch > g->n)
        ch = g->n;
    return ch;
}

int64_t bp_gconv_work(const bp_conv_geom *g)
{
    const int64_t npix = g->oh * g->ow, mg = g->m / g->group;
    const int64_t kk = conv_kk(g);
    int64_t ch = conv_chunk(g);
    if (ch < 1)
        ch = 1;
    return (kk + mg) * npix * ch + mg * kk + 1;
}

int64_t bp_gconv_col_size(const bp_conv_geom *g)
{
    return g->n * g->group * conv_kk(g) * g->oh * g->ow + 1;
}

/* [*lo, *hi) = the o in [0, count) with 0 <= off + o * step < n (step > 0). */
static void span(int64_t off, int64_t step, int64_t n, int64_t count,
                 int64_t *lo, int64_t *hi)
{
    int64_t a = off >= 0 ? 0 : (-off + step - 1) / step;
    int64_t b = n - off <= 0 ? 0 : (n - off + step - 1) / step;
    if (b > count)
        b = count;
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

/* x (cg, h, w) of one sample and group -> col rows (cg*kh*kw) of npix
 * entries each, row stride ld: row (ci, ki, kj) holds tap (ki, kj) of channel
 * ci under every output position, 0 in padding.  Every entry is written
 * once: zeros only where a tap falls into padding. */
static void im2col(double *col, int64_t ld, const double *x, int64_t cg,
                   const bp_conv_geom *g)
{
    const int64_t h = g->h, w = g->w, oh = g->oh, ow = g->ow;
    const int64_t sh = g->stride_h, sw = g->stride_w;
    for (int64_t ci = 0; ci < cg; ci++) {
        const double *xc = x + ci * h * w;
        for (int64_t ki = 0; ki < g->kh; ki++) {
            const int64_t offh = ki * g->dil_h - g->pad_t;
            int64_t y0, y1;
            span(offh, sh, h, oh, &y0, &y1);
            for (int64_t kj = 0; kj < g->kw; kj++, col += ld) {
                const int64_t offw = kj * g->dil_w - g->pad_l;
                int64_t x0, x1;
                span(offw, sw, w, ow, &x0, &x1);
                memset(col, 0, (size_t)(y0 * ow) * sizeof *col);
                for (int64_t oy = y0; oy < y1; oy++) {
                    const double *xr = xc + (oy * sh + offh) * w + offw;
                    double *c = col + oy * ow;
                    for (int64_t ox = 0; ox < x0; ox++)
                        c[ox] = 0;
                    if (sw == 1)
                        memcpy(c + x0, xr + x0, (size_t)(x1 - x0) * sizeof *c);
                    else
                        for (int64_t ox = x0; ox < x1; ox++)
                            c[ox] = xr[ox * sw];
                    for (int64_t ox = x1; ox < ow; ox++)
                        c[ox] = 0;
                }
                memset(col + y1 * ow, 0, (size_t)((oh - y1) * ow) * sizeof *col);
            }
        }
    }
}

/* The adjoint of im2col: x (cg, h, w) += scatter of col. */
static void col2im(double *x, const double *col, int64_t ld, int64_t cg,
                   const bp_conv_geom *g)
{
    const int64_t h = g->h, w = g->w, oh = g->oh, ow = g->ow;
    const int64_t sh = g->stride_h, sw = g->stride_w;
    for (int64_t ci = 0; ci < cg; ci++) {
        double *xc = x + ci * h * w;
        for (int64_t ki = 0; ki < g->kh; ki++) {
            const int64_t offh = ki * g->dil_h - g->pad_t;
            int64_t y0, y1;
            span(offh, sh, h, oh, &y0, &y1);
            for (int64_t kj = 0; kj < g->kw; kj++, col += ld) {
                const int64_t offw = kj * g->dil_w - g->pad_l;
                int64_t x0, x1;
                span(offw, sw, w, ow, &x0, &x1);
                for (int64_t oy = y0; oy < y1; oy++) {
                    double *xr = xc + (oy * sh + offh) * w + offw;
                    const double *c = col + oy * ow;
                    if (sw == 1)
                        for (int64_t ox = x0; ox < x1; ox++)
                            xr[ox] += c[ox];
                    else
                        for (int64_t ox = x0; ox < x1; ox++)
                            xr[ox * sw] += c[ox];
                }
            }
        }
    }
}

/* col (kk, cnt*npix) for samples [n0, n0+cnt), group gi */
static void im2col_chunk(double *col, const double *x, int64_t n0,
                         int64_t cnt, int64_t gi, const bp_conv_geom *g)
{
    const int64_t cg = g->c / g->group, npix = g->oh * g->ow;
    for (int64_t s = 0; s < cnt; s++)
        im2col(col + s * npix, cnt * npix,
               x + ((n0 + s) * g->c + gi * cg) * g->h * g->w, cg, g);
}

/* The im2col matrix of chunk (n0, cnt), group gi: from the cache (filling it
 * first when not ready) or built in the workspace. */
static const double *chunk_col(const double *x, int64_t n0, int64_t cnt,
                               int64_t gi, const bp_conv_geom *g, double *work,
                               double *col, int ready)
{
    const int64_t kk = conv_kk(g), npix = g->oh * g->ow;
    if (!col) {
        im2col_chunk(work, x, n0, cnt, gi, g);
        return work;
    }
    double *c = col + n0 * g->group * kk * npix + gi * kk * cnt * npix;
    if (!ready)
        im2col_chunk(c, x, n0, cnt, gi, g);
    return c;
}

void bp_gconv_fill_col(double *col, const double *x, const bp_conv_geom *g)
{
    const int64_t ch = conv_chunk(g);
    for (int64_t n0 = 0; n0 < g->n; n0 += ch) {
        const int64_t cnt = g->n - n0 < ch ? g->n - n0 : ch;
        for (int64_t gi = 0; gi < g->group; gi++)
            (void)chunk_col(x, n0, cnt, gi, g, NULL, col, 0);
    }
}

/* yt (mg, cnt*npix) <- y (n, m, npix) rows of group gi */
static void gather_out(double *yt, const double *y, int64_t n0, int64_t cnt,
                       int64_t gi, const bp_conv_geom *g)
{
    const int64_t npix = g->oh * g->ow, mg = g->m / g->group;
    for (int64_t oc = 0; oc < mg; oc++)
        for (int64_t s = 0; s < cnt; s++)
            memcpy(yt + oc * cnt * npix + s * npix,
                   y + ((n0 + s) * g->m + gi * mg + oc) * npix,
                   (size_t)npix * sizeof *yt);
}

/* y (n, m, npix) += yt (mg, cnt*npix) */
static void scatter_out(double *y, const double *yt, int64_t n0, int64_t cnt,
                        int64_t gi, const bp_conv_geom *g)
{
    const int64_t npix = g->oh * g->ow, mg = g->m / g->group;
    for (int64_t oc = 0; oc < mg; oc++)
        for (int64_t s = 0; s < cnt; s++) {
            double *dst = y + ((n0 + s) * g->m + gi * mg + oc) * npix;
            const double *src = yt + oc * cnt * npix + s * npix;
            for (int64_t p = 0; p < npix; p++)
                dst[p] += src[p];
        }
}

void bp_gconv_fwd(double *y, const double *x, const double *w,
                  const bp_conv_geom *g, double *work, double *col, int ready)
{
    const int64_t npix = g->oh * g->ow, mg = g->m / g->group, kk = conv_kk(g);
    const int64_t ch = conv_chunk(g);
    if (g->n == 0 || npix == 0 || mg == 0 || kk == 0)
        return;
    double *yt = work + kk * npix * ch;
    for (int64_t n0 = 0; n0 < g->n; n0 += ch) {
        const int64_t cnt = g->n - n0 < ch ? g->n - n0 : ch;
        const int64_t ld = cnt * npix;
        assert(ld <= INT_MAX && kk <= INT_MAX);
        for (int64_t gi = 0; gi < g->group; gi++) {
            const double *c = chunk_col(x, n0, cnt, gi, g, work, col, ready);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mg,
                        (int)ld, (int)kk, 1.0, w + gi * mg * kk, (int)kk, c,
                        (int)ld, 0.0, yt, (int)ld);
            scatter_out(y, yt, n0, cnt, gi, g);
        }
    }
}

void bp_gconv_bwd_data(double *dx, const double *dy, const double *w,
                       const double *dy2, const double *w2,
                       const bp_conv_geom *g, double *work)
{
    const int64_t npix = g->oh * g->ow, mg = g->m / g->group, kk = conv_kk(g);
    const int64_t ch = conv_chunk(g), cg = g->c / g->group;
    if (g->n == 0 || npix == 0 || mg == 0 || kk == 0)
        return;
    double *col = work, *yt = work + kk * npix * ch;
    const int two = dy2 && w2;
    for (int64_t n0 = 0; n0 < g->n; n0 += ch) {
        const int64_t cnt = g->n - n0 < ch ? g->n - n0 : ch;
        const int64_t ld = cnt * npix;
        for (int64_t gi = 0; gi < g->group; gi++) {
            /* col (kk, ld) = w_g^T (kk, mg) @ yt (mg, ld) [+ w2_g^T yt2] */
            for (int t = 0; t < 1 + two; t++) {
                gather_out(yt, t ? dy2 : dy, n0, cnt, gi, g);
                cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kk,
                            (int)ld, (int)mg, 1.0, (t ? w2 : w) + gi * mg * kk,
                            (int)kk, yt, (int)ld, t ? 1.0 : 0.0, col, (int)ld);
            }
            for (int64_t s = 0; s < cnt; s++)
                col2im(dx + ((n0 + s) * g->c + gi * cg) * g->h * g->w,
                       col + s * npix, ld, cg, g);
        }
    }
}

void bp_gconv_bwd_weight(double *dw, const double *dy, const double *x,
                         double alpha, const bp_conv_geom *g, double *work,
                         double *col, int ready)
{
    const int64_t npix = g->oh * g->ow, mg = g->m / g->group, kk = conv_kk(g);
    const int64_t ch = conv_chunk(g);
    if (g->n == 0 || npix == 0 || mg == 0 || kk == 0)
        return;
    double *yt = work + kk * npix * ch;
    for (int64_t n0 = 0; n0 < g->n; n0 += ch) {
        const int64_t cnt = g->n - n0 < ch ? g->n - n0 : ch;
        const int64_t ld = cnt * npix;
        for (int64_t gi = 0; gi < g->group; gi++) {
            const double *c = chunk_col(x, n0, cnt, gi, g, work, col, ready);
            gather_out(yt, dy, n0, cnt, gi, g);
            /* dw_g (mg, kk) += alpha yt (mg, ld) @ col^T (ld, kk) */
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)mg,
                        (int)kk, (int)ld, alpha, yt, (int)ld, c, (int)ld,
                        1.0, dw + gi * mg * kk, (int)kk);
        }
    }
}

double bp_gconv_sample_sqnorm(const double *wt, const double *dy,
                              const double *x, const bp_conv_geom *g,
                              double *work, double *col, int ready)
{
    const int64_t npix = g->oh * g->ow, mg = g->m / g->group, kk = conv_kk(g);
    const int64_t ch = conv_chunk(g);
    double total = 0;
    if (g->n == 0 || npix == 0 || mg == 0 || kk == 0)
        return 0;
    double *yt = work + kk * npix * ch;
    double *tmp = yt + mg * npix * ch;
    for (int64_t n0 = 0; n0 < g->n; n0 += ch) {
        const int64_t cnt = g->n - n0 < ch ? g->n - n0 : ch;
        const int64_t ld = cnt * npix;
        for (int64_t gi = 0; gi < g->group; gi++) {
            const double *c = chunk_col(x, n0, cnt, gi, g, work, col, ready);
            gather_out(yt, dy, n0, cnt, gi, g);
            for (int64_t s = 0; s < cnt; s++) {
                const double wn = wt[n0 + s];
                if (wn == 0)
                    continue;
                /* dW_s (mg, kk) = yt_s (mg, npix) @ col_s^T (npix, kk) */
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)mg,
                            (int)kk, (int)npix, 1.0, yt + s * npix, (int)ld,
                            c + s * npix, (int)ld, 0.0, tmp, (int)kk);
                total += wn * bp_g_dot(tmp, tmp, mg * kk);
            }
        }
    }
    return total;
}

int bp_gconv_gram_pays(const bp_conv_geom *g)
{
    return g->oh * g->ow < conv_kk(g);
}

int64_t bp_gconv_gram_size(const bp_conv_geom *g)
{
    const int64_t npix = g->oh * g->ow;
    return g->n * g->group * npix * npix + 1;
}

void bp_gconv_gram(double *A, const double *x, const bp_conv_geom *g,
                   double *work, double *col, int ready)
{
    const int64_t npix = g->oh * g->ow, kk = conv_kk(g);
    const int64_t ch = conv_chunk(g);
    if (g->n == 0 || npix == 0 || kk == 0)
        return;
    for (int64_t n0 = 0; n0 < g->n; n0 += ch) {
        const int64_t cnt = g->n - n0 < ch ? g->n - n0 : ch;
        const int64_t ld = cnt * npix;
        for (int64_t gi = 0; gi < g->group; gi++) {
            const double *c = chunk_col(x, n0, cnt, gi, g, work, col, ready);
            for (int64_t s = 0; s < cnt; s++)
                /* A_s (npix, npix) = col_s^T (npix, kk) @ col_s (kk, npix) */
                cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)npix,
                            (int)npix, (int)kk, 1.0, c + s * npix, (int)ld,
                            c + s * npix, (int)ld, 0.0,
                            A + ((n0 + s) * g->group + gi) * npix * npix,
                            (int)npix);
        }
    }
}

double bp_gconv_sample_sqnorm_gram(const double *wt, const double *dy,
                                   const double *A, const bp_conv_geom *g,
                                   double *work)
{
    const int64_t npix = g->oh * g->ow, mg = g->m / g->group;
    double total = 0;
    if (g->n == 0 || npix == 0 || mg == 0)
        return 0;
    double *B = work;
    for (int64_t s = 0; s < g->n; s++) {
        if (wt[s] == 0)
            continue;
        double q = 0;
        for (int64_t gi = 0; gi < g->group; gi++) {
            /* B (npix, npix) = G^T G, G (mg, npix) the rows of sample s */
            const double *G = dy + (s * g->m + gi * mg) * npix;
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)npix,
                        (int)npix, (int)mg, 1.0, G, (int)npix, G, (int)npix,
                        0.0, B, (int)npix);
            q += bp_g_dot(B, A + (s * g->group + gi) * npix * npix,
                          npix * npix);
        }
        total += wt[s] * q;
    }
    return total;
}

void bp_gconv_bwd_bias(double *db, const double *dy, const bp_conv_geom *g)
{
    const int64_t npix = g->oh * g->ow;
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oc = 0; oc < g->m; oc++) {
            const double *r = dy + (n * g->m + oc) * npix;
            double s = 0;
            for (int64_t p = 0; p < npix; p++)
                s += r[p];
            db[oc] += s;
        }
}

/* ---- strided elementwise ------------------------------------------------------ */

/* Drops unit axes and merges neighbours that every stride set walks as one
 * flat axis; returns the merged rank (>= 1) into d and s[k] (k < ns). */
static int coalesce(int rank, const int64_t *dims, int ns,
                    const int64_t *const *sin, int64_t *d, int64_t (*s)[BP_MAX_RANK])
{
    int r = 0; /* innermost first, reversed below */
    for (int i = rank - 1; i >= 0; i--) {
        if (dims[i] == 1)
            continue;
        int merge = r > 0;
        for (int k = 0; merge && k < ns; k++)
            merge = sin[k][i] == s[k][r - 1] * d[r - 1];
        if (merge) {
            d[r - 1] *= dims[i];
            continue;
        }
        d[r] = dims[i];
        for (int k = 0; k < ns; k++)
            s[k][r] = sin[k][i];
        r++;
    }
    if (r == 0) {
        d[0] = 1;
        for (int k = 0; k < ns; k++)
            s[k][0] = 0;
        return 1;
    }
    for (int i = 0, j = r - 1; i < j; i++, j--) {
        int64_t t = d[i];
        d[i] = d[j];
        d[j] = t;
        for (int k = 0; k < ns; k++) {
            t = s[k][i];
            s[k][i] = s[k][j];
            s[k][j] = t;
        }
    }
    return r;
}

static int any_zero(int rank, const int64_t *dims)
{
    for (int i = 0; i < rank; i++)
        if (dims[i] == 0)
            return 1;
    return 0;
}

/* Odometer over the outer axes of (r, d) with three offset sets; the body
 * handles the innermost axis. */
#define ODOMETER3(r, d, s, o0, o1, o2, ...)                                    \
    do {                                                                        \
        int64_t idx_[BP_MAX_RANK] = {0};                                        \
        int64_t o0 = 0, o1 = 0, o2 = 0;                                         \
        for (;;) {                                                              \
            __VA_ARGS__;                                                        \
            int ax_ = (r) - 2;                                                  \
            for (; ax_ >= 0; ax_--) {                                           \
                o0 += s[0][ax_];                                                \
                o1 += s[1][ax_];                                                \
                o2 += s[2][ax_];                                                \
                if (++idx_[ax_] < d[ax_])                                       \
                    break;                                                      \
                o0 -= s[0][ax_] * d[ax_];                                       \
                o1 -= s[1][ax_] * d[ax_];                                       \
                o2 -= s[2][ax_] * d[ax_];                                       \
                idx_[ax_] = 0;                                                  \
            }                                                                   \
            if (ax_ < 0)                                                        \
                break;                                                          \
        }                                                                       \
    } while (0)

static const int64_t zero_str[BP_MAX_RANK];

void bp_g_axpy_strided(double *dst, const int64_t *dstr, const double *src,
                       const int64_t *sstr, int rank, const int64_t *dims,
                       double alpha)
{
    if (any_zero(rank, dims))
        return;
    int64_t d[BP_MAX_RANK], s[3][BP_MAX_RANK];
    const int64_t *sin[3] = {dstr, sstr, zero_str};
    const int r = coalesce(rank, dims, 3, sin, d, s);
    const int64_t inner = d[r - 1], ds = s[0][r - 1], ss = s[1][r - 1];
    ODOMETER3(r, d, s, od, os, ox, {
        (void)ox;
        double *y = dst + od;
        const double *x = src + os;
        if (ds == 1 && ss == 1)
            for (int64_t i = 0; i < inner; i++)
                y[i] += alpha * x[i];
        else if (ds == 0) {
            double acc = 0;
            for (int64_t i = 0; i < inner; i++)
                acc += x[i * ss];
            y[0] += alpha * acc;
        } else
            for (int64_t i = 0; i < inner; i++)
                y[i * ds] += alpha * x[i * ss];
    });
}

void bp_g_mul_strided(double *dst, const int64_t *dstr, const double *a,
                      const int64_t *astr, const double *b,
                      const int64_t *bstr, int rank, const int64_t *dims,
                      double alpha)
{
    if (!a && !b) {
        /* cannot happen in the autodiff; documented as reading 1 * 1 */
        static const double one = 1.0;
        bp_g_axpy_strided(dst, dstr, &one, zero_str, rank, dims, alpha);
        return;
    }
    if (!a || !b) {
        bp_g_axpy_strided(dst, dstr, a ? a : b, a ? astr : bstr, rank, dims,
                          alpha);
        return;
    }
    if (any_zero(rank, dims))
        return;
    int64_t d[BP_MAX_RANK], s[3][BP_MAX_RANK];
    const int64_t *sin[3] = {dstr, astr, bstr};
    const int r = coalesce(rank, dims, 3, sin, d, s);
    const int64_t inner = d[r - 1], ds = s[0][r - 1], as = s[1][r - 1],
                  bs = s[2][r - 1];
    ODOMETER3(r, d, s, od, oa, ob, {
        double *y = dst + od;
        const double *x = a + oa, *z = b + ob;
        if (ds == 1 && as == 1 && bs == 1)
            for (int64_t i = 0; i < inner; i++)
                y[i] += alpha * x[i] * z[i];
        else if (ds == 0) {
            double acc = 0;
            for (int64_t i = 0; i < inner; i++)
                acc += x[i * as] * z[i * bs];
            y[0] += alpha * acc;
        } else
            for (int64_t i = 0; i < inner; i++)
                y[i * ds] += alpha * x[i * as] * z[i * bs];
    });
}

/* Element-by-element odometer over (rank, dims) with the offsets of a and b
 * (broadcast strides) and of the contiguous output. */
#define DIV_LOOP(...)                                                          \
    do {                                                                        \
        if (any_zero(rank, dims))                                               \
            return;                                                             \
        int64_t idx_[BP_MAX_RANK] = {0}, total_ = 1;                            \
        for (int d_ = 0; d_ < rank; d_++)                                       \
            total_ *= dims[d_];                                                 \
        int64_t ia = 0, ib = 0;                                                 \
        for (int64_t iy = 0; iy < total_; iy++) {                               \
            __VA_ARGS__;                                                        \
            for (int d_ = rank - 1; d_ >= 0; d_--) {                            \
                ia += astr[d_];                                                 \
                ib += bstr[d_];                                                 \
                if (++idx_[d_] < dims[d_])                                      \
                    break;                                                      \
                ia -= astr[d_] * dims[d_];                                      \
                ib -= bstr[d_] * dims[d_];                                      \
                idx_[d_] = 0;                                                   \
            }                                                                   \
        }                                                                       \
    } while (0)

void bp_g_div_tangent(double *dy, const double *a, const int64_t *astr,
                      const double *b, const int64_t *bstr, const double *da,
                      const double *db, int rank, const int64_t *dims)
{
    DIV_LOOP({
        const double bv = b[ib];
        double t = 0;
        if (da)
            t += da[ia] / bv;
        if (db)
            t -= a[ia] * db[ib] / (bv * bv);
        dy[iy] += t;
    });
}

void bp_g_div_vjp(double *ga, double *gb, const double *g, const double *a,
                  const int64_t *astr, const double *b, const int64_t *bstr,
                  int rank, const int64_t *dims)
{
    DIV_LOOP({
        const double bv = b[ib], gv = g[iy];
        if (ga)
            ga[ia] += gv / bv;
        if (gb)
            gb[ib] -= gv * a[ia] / (bv * bv);
    });
}

void bp_g_div_second(double *ga, double *gb, const double *g, const double *a,
                     const int64_t *astr, const double *b, const int64_t *bstr,
                     const double *da, const double *db, int rank,
                     const int64_t *dims)
{
    DIV_LOOP({
        const double bv = b[ib], gv = g[iy], b2 = bv * bv;
        if (ga && db)
            ga[ia] -= gv * db[ib] / b2;
        if (gb) {
            double t = 0;
            if (da)
                t -= gv * da[ia] / b2;
            if (db)
                t += 2 * gv * a[ia] * db[ib] / (b2 * bv);
            gb[ib] += t;
        }
    });
}

/* ---- unary ---------------------------------------------------------------------- */

void bp_g_unary_d1(double *out, const double *g, const double *x,
                   const double *y, int64_t n, bp_unop op, double p0,
                   double p1)
{
    switch (op) {
    case BP_UN_RELU:
        /* derivative 0 at the kink, as torch's threshold_backward */
        for (int64_t i = 0; i < n; i++)
            out[i] += x[i] > 0 ? g[i] : 0;
        break;
    case BP_UN_LEAKYRELU:
        for (int64_t i = 0; i < n; i++)
            out[i] += x[i] > 0 ? g[i] : p0 * g[i];
        break;
    case BP_UN_CLIP:
        /* torch clamp_backward: the bounds themselves pass the gradient */
        for (int64_t i = 0; i < n; i++)
            out[i] += x[i] >= p0 && x[i] <= p1 ? g[i] : 0;
        break;
    case BP_UN_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            out[i] += g[i] * y[i] * (1 - y[i]);
        break;
    case BP_UN_TANH:
        for (int64_t i = 0; i < n; i++)
            out[i] += g[i] * (1 - y[i] * y[i]);
        break;
    case BP_UN_IDENTITY:
        for (int64_t i = 0; i < n; i++)
            out[i] += g[i];
        break;
    default:
        assert(!"unknown bp_unop");
    }
}

void bp_g_unary_d2(double *out, const double *g, const double *t,
                   const double *x, const double *y, int64_t n, bp_unop op)
{
    (void)x;
    switch (op) {
    case BP_UN_SIGMOID:
        for (int64_t i = 0; i < n; i++) {
            const double s = y[i];
            out[i] += g[i] * t[i] * s * (1 - s) * (1 - 2 * s);
        }
        break;
    case BP_UN_TANH:
        for (int64_t i = 0; i < n; i++) {
            const double th = y[i];
            out[i] += g[i] * t[i] * -2 * th * (1 - th * th);
        }
        break;
    default:
        break; /* piecewise linear: f'' = 0 almost everywhere */
    }
}

/* ---- softmax --------------------------------------------------------------------- */

void bp_g_softmax_jvp(double *dy, const double *y, const double *dx,
                      int64_t outer, int64_t len, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const int64_t base = o * len * inner + j;
            double s = 0;
            for (int64_t l = 0; l < len; l++)
                s += y[base + l * inner] * dx[base + l * inner];
            for (int64_t l = 0; l < len; l++) {
                const int64_t i = base + l * inner;
                dy[i] += y[i] * (dx[i] - s);
            }
        }
}

void bp_g_softmax_vjp(double *gx, const double *y, const double *g,
                      int64_t outer, int64_t len, int64_t inner)
{
    bp_g_softmax_jvp(gx, y, g, outer, len, inner); /* J is symmetric */
}

void bp_g_softmax_second(double *gx, const double *y, const double *dy,
                         const double *g, int64_t outer, int64_t len,
                         int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const int64_t base = o * len * inner + j;
            double yg = 0, dyg = 0;
            for (int64_t l = 0; l < len; l++) {
                const int64_t i = base + l * inner;
                yg += y[i] * g[i];
                dyg += dy[i] * g[i];
            }
            for (int64_t l = 0; l < len; l++) {
                const int64_t i = base + l * inner;
                gx[i] += dy[i] * (g[i] - yg) - y[i] * dyg;
            }
        }
}

/* ---- pools -------------------------------------------------------------------------- */

/* Offset in x (within one (n,c) plane) of the first maximal in-range tap of
 * output (oy, ox), or -1 when the window has no in-range tap. */
static int64_t max_tap(const double *xp, int64_t oy, int64_t ox,
                       const bp_pool_geom *g)
{
    const int64_t iy0 = oy * g->stride_h - g->pad_t;
    const int64_t ix0 = ox * g->stride_w - g->pad_l;
    int64_t ky0, ky1, kx0, kx1;
    span(iy0, g->dil_h, g->h, g->kh, &ky0, &ky1);
    span(ix0, g->dil_w, g->w, g->kw, &kx0, &kx1);
    double m = -INFINITY;
    int64_t at = -1;
    for (int64_t ky = ky0; ky < ky1; ky++) {
        const int64_t row = (iy0 + ky * g->dil_h) * g->w;
        for (int64_t kx = kx0; kx < kx1; kx++) {
            const int64_t off = row + ix0 + kx * g->dil_w;
            if (at < 0 || xp[off] > m) {
                m = xp[off];
                at = off;
            }
        }
    }
    return at;
}

/* Routes of every output: offset of its max tap in x, or -1. */
void bp_g_maxpool_routes(int64_t *idx, const double *x, const bp_pool_geom *g)
{
    const int64_t plane = g->h * g->w;
    for (int64_t p = 0; p < g->n * g->c; p++)
        for (int64_t oy = 0; oy < g->oh; oy++)
            for (int64_t ox = 0; ox < g->ow; ox++) {
                const int64_t at = max_tap(x + p * plane, oy, ox, g);
                *idx++ = at >= 0 ? p * plane + at : -1;
            }
}

void bp_g_maxpool_fwd(double *dy, const double *x, const double *dx,
                      const bp_pool_geom *g, int64_t *idx, int ready)
{
    const int64_t ny = g->n * g->c * g->oh * g->ow;
    if (idx) {
        if (!ready)
            bp_g_maxpool_routes(idx, x, g);
        for (int64_t o = 0; o < ny; o++)
            if (idx[o] >= 0)
                dy[o] += dx[idx[o]];
        return;
    }
    const int64_t plane = g->h * g->w;
    for (int64_t p = 0; p < g->n * g->c; p++)
        for (int64_t oy = 0; oy < g->oh; oy++)
            for (int64_t ox = 0; ox < g->ow; ox++, dy++) {
                const int64_t at = max_tap(x + p * plane, oy, ox, g);
                if (at >= 0)
                    *dy += dx[p * plane + at];
            }
}

void bp_g_maxpool_bwd(double *gx, const double *x, const double *gy,
                      const bp_pool_geom *g, int64_t *idx, int ready)
{
    const int64_t ny = g->n * g->c * g->oh * g->ow;
    if (idx) {
        if (!ready)
            bp_g_maxpool_routes(idx, x, g);
        for (int64_t o = 0; o < ny; o++)
            if (idx[o] >= 0)
                gx[idx[o]] += gy[o];
        return;
    }
    const int64_t plane = g->h * g->w;
    for (int64_t p = 0; p < g->n * g->c; p++)
        for (int64_t oy = 0; oy < g->oh; oy++)
            for (int64_t ox = 0; ox < g->ow; ox++, gy++) {
                const int64_t at = max_tap(x + p * plane, oy, ox, g);
                if (at >= 0)
                    gx[p * plane + at] += *gy;
            }
}

/* Window of output (oy, ox) in range, and the divisor the forward kernel
 * uses (see kernels_impl.h: symmetric padded extent with count_include_pad). */
static int64_t avg_window(int64_t oy, int64_t ox, const bp_pool_geom *g,
                          int64_t *iy0, int64_t *ix0, int64_t *ky0,
                          int64_t *ky1, int64_t *kx0, int64_t *kx1)
{
    int64_t py0, py1, px0, px1;
    *iy0 = oy * g->stride_h - g->pad_t;
    *ix0 = ox * g->stride_w - g->pad_l;
    span(*iy0, 1, g->h, g->kh, ky0, ky1);
    span(*iy0 + g->pad_t, 1, g->h + 2 * g->pad_t, g->kh, &py0, &py1);
    span(*ix0, 1, g->w, g->kw, kx0, kx1);
    span(*ix0 + g->pad_l, 1, g->w + 2 * g->pad_l, g->kw, &px0, &px1);
    return g->count_include_pad ? (py1 - py0) * (px1 - px0)
                                : (*ky1 - *ky0) * (*kx1 - *kx0);
}

void bp_g_avgpool_fwd(double *dy, const double *dx, const bp_pool_geom *g)
{
    const int64_t plane = g->h * g->w;
    for (int64_t p = 0; p < g->n * g->c; p++) {
        const double *xp = dx + p * plane;
        for (int64_t oy = 0; oy < g->oh; oy++)
            for (int64_t ox = 0; ox < g->ow; ox++, dy++) {
                int64_t iy0, ix0, ky0, ky1, kx0, kx1;
                const int64_t cnt = avg_window(oy, ox, g, &iy0, &ix0, &ky0,
                                               &ky1, &kx0, &kx1);
                if (cnt <= 0)
                    continue;
                double s = 0;
                for (int64_t ky = ky0; ky < ky1; ky++)
                    for (int64_t kx = kx0; kx < kx1; kx++)
                        s += xp[(iy0 + ky) * g->w + ix0 + kx];
                *dy += s / (double)cnt;
            }
    }
}

void bp_g_avgpool_bwd(double *gx, const double *gy, const bp_pool_geom *g)
{
    const int64_t plane = g->h * g->w;
    for (int64_t p = 0; p < g->n * g->c; p++) {
        double *xp = gx + p * plane;
        for (int64_t oy = 0; oy < g->oh; oy++)
            for (int64_t ox = 0; ox < g->ow; ox++, gy++) {
                int64_t iy0, ix0, ky0, ky1, kx0, kx1;
                const int64_t cnt = avg_window(oy, ox, g, &iy0, &ix0, &ky0,
                                               &ky1, &kx0, &kx1);
                if (cnt <= 0)
                    continue;
                const double v = *gy / (double)cnt;
                for (int64_t ky = ky0; ky < ky1; ky++)
                    for (int64_t kx = kx0; kx < kx1; kx++)
                        xp[(iy0 + ky) * g->w + ix0 + kx] += v;
            }
    }
}

/* ---- batch norm and vectors ------------------------------------------------------- */

void bp_g_bn_k(double *k, const double *scale, const double *var, double eps,
               int64_t c)
{
    for (int64_t i = 0; i < c; i++)
        k[i] = scale[i] / sqrt(var[i] + eps);
}

double bp_g_dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

void bp_g_axpy(double *y, double alpha, const double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}
