/* kernels_impl.h - the body of every float reference kernel, written once.
 *
 * Not an ordinary header: kernels.c includes it once per element type, after
 * defining
 *   BP_T       the element type (float, double)
 *   BP_S       the name suffix (f32, f64)
 *   BP_GEMM    the CBLAS gemm for BP_T (cblas_sgemm, cblas_dgemm)
 *   BP_M(f)    the <math.h> function f for BP_T (BP_M(exp) is expf or exp)
 *   BP_LOWEST  the most negative finite BP_T
 * and it #undefs them at the end so that the next inclusion starts clean.
 * One body is what guarantees that the float32 executor and the float64
 * sensitivity stage compute the same thing.  The type-independent helpers
 * come first, guarded so that they are emitted once.  Reductions (softmax
 * sums, means, average pools) accumulate in double for both types. */

#ifndef BP_KERNELS_IMPL_ONCE
#define BP_KERNELS_IMPL_ONCE

#include "kernels.h"
#include "tensor.h"

#include <assert.h>
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#define BP_CAT_(a, b) a##b
#define BP_CAT(a, b) BP_CAT_(a, b)
/* BP_K(conv) is the public bp_k_conv_f32; BP_L(row) a file-local row_f32. */
#define BP_K(name) BP_CAT(bp_k_##name##_, BP_S)
#define BP_L(name) BP_CAT(name##_, BP_S)

/* Width of the inner-axis chunk whose partial results (running max, sums)
 * live on the stack, so that reductions over a middle axis stream through
 * contiguous rows instead of striding by `inner`. */
#define BP_CHUNK 256

/* [*lo, *hi) = the o in [0, count) with 0 <= off + o * step < n (step > 0).
 * Clipping a whole run of taps or output positions at once keeps bounds
 * tests out of the inner loops of im2col and the pools. */
static void span(int64_t off, int64_t step, int64_t n, int64_t count,
                 int64_t *lo, int64_t *hi)
{
    assert(step > 0);
    int64_t a = off >= 0 ? 0 : (-off + step - 1) / step;
    int64_t b = n - off <= 0 ? 0 : (n - off + step - 1) / step;
    if (b > count)
        b = count;
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

/* A 1x1, stride-1, unpadded conv whose output has the input's size reads its
 * input as the im2col matrix itself; bp_conv_work and the conv kernels must
 * agree on this test. */
static int conv_pointwise(const bp_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->stride_h == 1 && g->stride_w == 1 &&
           g->pad_t == 0 && g->pad_l == 0 && g->oh == g->h && g->ow == g->w;
}

/* Drops unit axes and merges neighbours that one flat stride walks for both
 * stride sets, so that e.g. (n,c,h,w) + (1,c,1,1) becomes (n, c, h*w) with a
 * broadcast inner axis and a contiguous tensor becomes one axis.  Writes the
 * merged axes to d, s0, s1 (outermost first) and returns their count, at
 * least 1.  No dim may be 0. */
static int coalesce(int rank, const int64_t *dims, const int64_t *s0in,
                    const int64_t *s1in, int64_t *d, int64_t *s0, int64_t *s1)
{
    int r = 0; /* built innermost first, reversed below */
    for (int i = rank - 1; i >= 0; i--) {
        if (dims[i] == 1)
            continue;
        if (r > 0 && s0in[i] == s0[r - 1] * d[r - 1] &&
            s1in[i] == s1[r - 1] * d[r - 1]) {
            d[r - 1] *= dims[i];
            continue;
        }
        d[r] = dims[i];
        s0[r] = s0in[i];
        s1[r] = s1in[i];
        r++;
    }
    if (r == 0) {
        d[0] = 1;
        s0[0] = s1[0] = 0;
        return 1;
    }
    for (int i = 0, j = r - 1; i < j; i++, j--) {
        int64_t t = d[i];
        d[i] = d[j];
        d[j] = t;
        t = s0[i];
        s0[i] = s0[j];
        s0[j] = t;
        t = s1[i];
        s1[i] = s1[j];
        s1[j] = t;
    }
    return r;
}

#endif /* BP_KERNELS_IMPL_ONCE */

#if !defined(BP_T) || !defined(BP_S) || !defined(BP_GEMM) || \
    !defined(BP_M) || !defined(BP_LOWEST)
#error "kernels_impl.h needs BP_T, BP_S, BP_GEMM, BP_M and BP_LOWEST"
#endif

/* ---- conv ---------------------------------------------------------------- */

/* x (cg, h, w) of one sample and group -> col (cg*kh*kw, oh*ow): row
 * (ci, ki, kj) holds tap (ki, kj) of channel ci under every output position,
 * 0 where the tap lands in padding. */
static void BP_L(im2col)(BP_T *col, const BP_T *x, int64_t cg,
                         const bp_conv_geom *g)
{
    const int64_t h = g->h, w = g->w, oh = g->oh, ow = g->ow;
    const int64_t sh = g->stride_h, sw = g->stride_w;
    for (int64_t ci = 0; ci < cg; ci++) {
        const BP_T *xc = x + ci * h * w;
        for (int64_t ki = 0; ki < g->kh; ki++) {
            const int64_t offh = ki * g->dil_h - g->pad_t;
            int64_t y0, y1;
            span(offh, sh, h, oh, &y0, &y1);
            for (int64_t kj = 0; kj < g->kw; kj++) {
                const int64_t offw = kj * g->dil_w - g->pad_l;
                int64_t x0, x1;
                span(offw, sw, w, ow, &x0, &x1);
                memset(col, 0, (size_t)(y0 * ow) * sizeof *col);
                for (int64_t oy = y0; oy < y1; oy++) {
                    BP_T *c = col + oy * ow;
                    /* row start is in range; offw joins the column index */
                    const BP_T *xr = xc + (oy * sh + offh) * w;
                    for (int64_t ox = 0; ox < x0; ox++)
                        c[ox] = 0;
                    if (sw == 1)
                        memcpy(c + x0, xr + x0 + offw,
                               (size_t)(x1 - x0) * sizeof *c);
                    else
                        for (int64_t ox = x0; ox < x1; ox++)
                            c[ox] = xr[ox * sw + offw];
                    for (int64_t ox = x1; ox < ow; ox++)
                        c[ox] = 0;
                }
                memset(col + y1 * ow, 0, (size_t)((oh - y1) * ow) * sizeof *col);
                col += oh * ow;
            }
        }
    }
}

/* x (n,c,h,w), w (m,c/g,kh,kw), b (m,) or NULL -> y (n,m,oh,ow).
 * Per (sample, group): y_g (m/g, oh*ow) = w_g (m/g, K) @ col (K, oh*ow),
 * K = c/g*kh*kw, with y_g preset to the bias and beta = 1 so the bias costs
 * no second pass. */
void BP_K(conv)(BP_T *y, const BP_T *x, const BP_T *w, const BP_T *b,
                const bp_conv_geom *g, BP_T *work)
{
    assert(g->group > 0 && g->c % g->group == 0 && g->m % g->group == 0);
    const int64_t cg = g->c / g->group, mg = g->m / g->group;
    const int64_t kk = cg * g->kh * g->kw, npix = g->oh * g->ow;
    const int pointwise = conv_pointwise(g);
    if (g->n == 0 || mg == 0 || npix == 0)
        return;
    assert(kk > 0 && kk <= INT_MAX && mg <= INT_MAX && npix <= INT_MAX);
    for (int64_t ni = 0; ni < g->n; ni++) {
        for (int64_t gi = 0; gi < g->group; gi++) {
            const BP_T *xg = x + (ni * g->c + gi * cg) * g->h * g->w;
            BP_T *yg = y + (ni * g->m + gi * mg) * npix;
            const BP_T *col = xg;
            if (!pointwise) {
                BP_L(im2col)(work, xg, cg, g);
                col = work;
            }
            BP_T beta = 0;
            if (b) {
                for (int64_t oc = 0; oc < mg; oc++) {
                    const BP_T bv = b[gi * mg + oc];
                    BP_T *yr = yg + oc * npix;
                    for (int64_t i = 0; i < npix; i++)
                        yr[i] = bv;
                }
                beta = 1;
            }
            BP_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)mg,
                    (blasint)npix, (blasint)kk, 1, w + gi * mg * kk,
                    (blasint)kk, col, (blasint)npix, beta, yg, (blasint)npix);
        }
    }
}

/* ---- gemm ---------------------------------------------------------------- */

/* A (m,k) or (k,m) if ta, B (k,n) or (n,k) if tb
 * -> y (m,n) = alpha op(A) op(B) + beta y.  As in BLAS, y is not read when
 * beta == 0 (NaN or garbage there does not leak into the result). */
void BP_K(gemm)(BP_T *y, const BP_T *a, const BP_T *b, int64_t m, int64_t n,
                int64_t k, int ta, int tb, BP_T alpha, BP_T beta)
{
    if (m == 0 || n == 0)
        return;
    if (k == 0) {
        /* BLAS rejects lda = 0; the product is empty, only beta y remains */
        for (int64_t i = 0; i < m * n; i++)
            y[i] = beta == 0 ? 0 : beta * y[i];
        return;
    }
    assert(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX);
    BP_GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
            tb ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n,
            (blasint)k, alpha, a, (blasint)(ta ? m : k), b,
            (blasint)(tb ? k : n), beta, y, (blasint)n);
}

/* ---- binary -------------------------------------------------------------- */

/* y (n) = a (n, stride sa) op b (n, stride sb).  The stride pairs that
 * broadcasting produces most (same-shape, scalar on either side) get loops
 * the compiler can vectorise. */
static void BP_L(binrow)(BP_T *y, const BP_T *a, int64_t sa, const BP_T *b,
                         int64_t sb, int64_t n, bp_binop op)
{
#define BP_BIN_ROW(E)                                                          \
    do {                                                                       \
        if (sa == 1 && sb == 1) {                                              \
            for (int64_t i = 0; i < n; i++) {                                  \
                const BP_T u = a[i], v = b[i];                                 \
                y[i] = (E);                                                    \
            }                                                                  \
        } else if (sa == 1 && sb == 0) {                                       \
            const BP_T v = b[0];                                               \
            for (int64_t i = 0; i < n; i++) {                                  \
                const BP_T u = a[i];                                           \
                y[i] = (E);                                                    \
            }                                                                  \
        } else if (sa == 0 && sb == 1) {                                       \
            const BP_T u = a[0];                                               \
            for (int64_t i = 0; i < n; i++) {                                  \
                const BP_T v = b[i];                                           \
                y[i] = (E);                                                    \
            }                                                                  \
        } else {                                                               \
            for (int64_t i = 0; i < n; i++) {                                  \
                const BP_T u = a[i * sa], v = b[i * sb];                       \
                y[i] = (E);                                                    \
            }                                                                  \
        }                                                                      \
    } while (0)
    switch (op) {
    case BP_BIN_ADD:
        BP_BIN_ROW(u + v);
        break;
    case BP_BIN_SUB:
        BP_BIN_ROW(u - v);
        break;
    case BP_BIN_MUL:
        BP_BIN_ROW(u * v);
        break;
    case BP_BIN_DIV:
        BP_BIN_ROW(u / v);
        break;
    default:
        assert(!"unknown bp_binop");
    }
#undef BP_BIN_ROW
}

/* a, b read through astr, bstr (elements per axis of y, 0 on broadcast axes)
 * -> y (dims), contiguous.  y may equal a (or b) only where that operand has
 * y's own contiguous layout: a broadcast operand must not be overwritten
 * while it is still being read. */
void BP_K(binary)(BP_T *y, const BP_T *a, const int64_t *astr, const BP_T *b,
                  const int64_t *bstr, int rank, const int64_t *dims,
                  bp_binop op)
{
    int64_t d[BP_MAX_RANK], sa[BP_MAX_RANK], sb[BP_MAX_RANK];
    int64_t idx[BP_MAX_RANK] = {0};
    assert(rank >= 0 && rank <= BP_MAX_RANK);
    for (int i = 0; i < rank; i++)
        if (dims[i] == 0)
            return;
    const int r = coalesce(rank, dims, astr, bstr, d, sa, sb);
    const int64_t inner = d[r - 1];
    int64_t oa = 0, ob = 0;
    for (;;) {
        BP_L(binrow)(y, a + oa, sa[r - 1], b + ob, sb[r - 1], inner, op);
        y += inner;
        int ax = r - 2;
        for (; ax >= 0; ax--) {
            oa += sa[ax];
            ob += sb[ax];
            if (++idx[ax] < d[ax])
                break;
            oa -= sa[ax] * d[ax];
            ob -= sb[ax] * d[ax];
            idx[ax] = 0;
        }
        if (ax < 0)
            break;
    }
}

/* ---- unary --------------------------------------------------------------- */

/* x (n) -> y (n); y may equal x.  The comparisons are written so that NaN
 * passes through every op rather than being clamped into a number. */
void BP_K(unary)(BP_T *y, const BP_T *x, int64_t n, bp_unop op, BP_T p0,
                 BP_T p1)
{
    switch (op) {
    case BP_UN_RELU:
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] < 0 ? 0 : x[i];
        break;
    case BP_UN_LEAKYRELU:
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] >= 0 ? x[i] : p0 * x[i];
        break;
    case BP_UN_CLIP:
        /* min(max(x, p0), p1): p0 > p1 gives p1 everywhere, as ONNX Clip */
        for (int64_t i = 0; i < n; i++) {
            const BP_T t = x[i] < p0 ? p0 : x[i];
            y[i] = t > p1 ? p1 : t;
        }
        break;
    case BP_UN_SIGMOID:
        /* exp of a non-positive argument only: no overflow, and no
         * 1 - tiny cancellation for large negative x */
        for (int64_t i = 0; i < n; i++) {
            const BP_T v = x[i];
            if (v >= 0) {
                y[i] = 1 / (1 + BP_M(exp)(-v));
            } else {
                const BP_T e = BP_M(exp)(v);
                y[i] = e / (1 + e);
            }
        }
        break;
    case BP_UN_TANH:
        for (int64_t i = 0; i < n; i++)
            y[i] = BP_M(tanh)(x[i]);
        break;
    case BP_UN_IDENTITY:
        if (y != x && n > 0)
            memmove(y, x, (size_t)n * sizeof *y);
        break;
    default:
        assert(!"unknown bp_unop");
    }
}

/* ---- softmax ------------------------------------------------------------- */

/* x (outer, len, inner) -> y, same shape, normalised over len; y may equal
 * x.  Subtracting the max keeps every exp argument <= 0, so large logits
 * cannot overflow. */
void BP_K(softmax)(BP_T *y, const BP_T *x, int64_t outer, int64_t len,
                   int64_t inner)
{
    if (len == 0 || inner == 0)
        return;
    for (int64_t o = 0; o < outer; o++) {
        const BP_T *xo = x + o * len * inner;
        BP_T *yo = y + o * len * inner;
        if (inner == 1) {
            /* softmax over the last axis: one contiguous row, no chunking */
            BP_T mx = xo[0];
            for (int64_t l = 1; l < len; l++)
                mx = xo[l] > mx ? xo[l] : mx;
            double sum = 0;
            for (int64_t l = 0; l < len; l++) {
                const BP_T e = BP_M(exp)(xo[l] - mx);
                yo[l] = e;
                sum += e;
            }
            const BP_T inv = (BP_T)(1.0 / sum);
            for (int64_t l = 0; l < len; l++)
                yo[l] *= inv;
            continue;
        }
        for (int64_t j0 = 0; j0 < inner; j0 += BP_CHUNK) {
            const int64_t nj = inner - j0 < BP_CHUNK ? inner - j0 : BP_CHUNK;
            BP_T mx[BP_CHUNK];
            double sum[BP_CHUNK];
            memcpy(mx, xo + j0, (size_t)nj * sizeof *mx);
            for (int64_t l = 1; l < len; l++) {
                const BP_T *xr = xo + l * inner + j0;
                for (int64_t j = 0; j < nj; j++)
                    mx[j] = xr[j] > mx[j] ? xr[j] : mx[j];
            }
            for (int64_t j = 0; j < nj; j++)
                sum[j] = 0;
            for (int64_t l = 0; l < len; l++) {
                const BP_T *xr = xo + l * inner + j0;
                BP_T *yr = yo + l * inner + j0;
                for (int64_t j = 0; j < nj; j++) {
                    const BP_T e = BP_M(exp)(xr[j] - mx[j]);
                    yr[j] = e;
                    sum[j] += e;
                }
            }
            BP_T inv[BP_CHUNK];
            for (int64_t j = 0; j < nj; j++)
                inv[j] = (BP_T)(1.0 / sum[j]);
            for (int64_t l = 0; l < len; l++) {
                BP_T *yr = yo + l * inner + j0;
                for (int64_t j = 0; j < nj; j++)
                    yr[j] *= inv[j];
            }
        }
    }
}

/* ---- pools --------------------------------------------------------------- */

/* x (n,c,h,w) -> y (n,c,oh,ow).  Only in-range taps compete, so padding
 * never wins; a window with no in-range tap (impossible for ONNX-valid pads,
 * which are smaller than the kernel) yields BP_LOWEST, as onnxruntime does. */
void BP_K(maxpool)(BP_T *y, const BP_T *x, const bp_pool_geom *g)
{
    const int64_t h = g->h, w = g->w;
    for (int64_t p = 0; p < g->n * g->c; p++) {
        const BP_T *xp = x + p * h * w;
        for (int64_t oy = 0; oy < g->oh; oy++) {
            const int64_t iy0 = oy * g->stride_h - g->pad_t;
            int64_t ky0, ky1;
            span(iy0, g->dil_h, h, g->kh, &ky0, &ky1);
            for (int64_t ox = 0; ox < g->ow; ox++) {
                const int64_t ix0 = ox * g->stride_w - g->pad_l;
                int64_t kx0, kx1;
                span(ix0, g->dil_w, w, g->kw, &kx0, &kx1);
                BP_T m = BP_LOWEST;
                for (int64_t ky = ky0; ky < ky1; ky++) {
                    const BP_T *xr = xp + (iy0 + ky * g->dil_h) * w;
                    for (int64_t kx = kx0; kx < kx1; kx++) {
                        const BP_T v = xr[ix0 + kx * g->dil_w];
                        m = v > m ? v : m;
                    }
                }
                *y++ = m;
            }
        }
    }
}

/* x (n,c,h,w) -> y (n,c,oh,ow); dil_h, dil_w are ignored (header: MaxPool
 * only), so a caller may leave them 0.
 * Divisor without count_include_pad: the in-range taps.  With it, ONNX and
 * PyTorch divide by the window clipped to the padded extent
 * [-pad_t, h + pad_bottom), which only matters for the last window under
 * ceil_mode.  pad_bottom / pad_right are not in bp_pool_geom, so this
 * assumes symmetric pads and clips to [-pad_t, h + pad_t) x
 * [-pad_l, w + pad_l): with count_include_pad and a trailing pad larger than
 * the leading one, windows reaching into the extra trailing pad are divided
 * by too few taps.  A window with no counted tap yields 0. */
void BP_K(avgpool)(BP_T *y, const BP_T *x, const bp_pool_geom *g)
{
    const int64_t h = g->h, w = g->w;
    for (int64_t p = 0; p < g->n * g->c; p++) {
        const BP_T *xp = x + p * h * w;
        for (int64_t oy = 0; oy < g->oh; oy++) {
            const int64_t iy0 = oy * g->stride_h - g->pad_t;
            int64_t ky0, ky1, py0, py1;
            span(iy0, 1, h, g->kh, &ky0, &ky1);
            span(iy0 + g->pad_t, 1, h + 2 * g->pad_t, g->kh, &py0, &py1);
            for (int64_t ox = 0; ox < g->ow; ox++) {
                const int64_t ix0 = ox * g->stride_w - g->pad_l;
                int64_t kx0, kx1, px0, px1;
                span(ix0, 1, w, g->kw, &kx0, &kx1);
                span(ix0 + g->pad_l, 1, w + 2 * g->pad_l, g->kw, &px0, &px1);
                double s = 0;
                for (int64_t ky = ky0; ky < ky1; ky++) {
                    const BP_T *xr = xp + (iy0 + ky) * w + ix0;
                    for (int64_t kx = kx0; kx < kx1; kx++)
                        s += xr[kx];
                }
                const int64_t cnt = g->count_include_pad
                                        ? (py1 - py0) * (px1 - px0)
                                        : (ky1 - ky0) * (kx1 - kx0);
                *y++ = cnt > 0 ? (BP_T)(s / (double)cnt) : 0;
            }
        }
    }
}

/* ---- mean ---------------------------------------------------------------- */

/* x (outer, len, inner) -> y (outer, inner); len == 0 gives NaN, the mean of
 * nothing. */
void BP_K(mean)(BP_T *y, const BP_T *x, int64_t outer, int64_t len,
                int64_t inner)
{
    for (int64_t o = 0; o < outer; o++) {
        const BP_T *xo = x + o * len * inner;
        BP_T *yo = y + o * inner;
        if (inner == 1) {
            double s = 0;
            for (int64_t l = 0; l < len; l++)
                s += xo[l];
            *yo = len > 0 ? (BP_T)(s / (double)len) : (BP_T)NAN;
            continue;
        }
        for (int64_t j0 = 0; j0 < inner; j0 += BP_CHUNK) {
            const int64_t nj = inner - j0 < BP_CHUNK ? inner - j0 : BP_CHUNK;
            double acc[BP_CHUNK];
            for (int64_t j = 0; j < nj; j++)
                acc[j] = 0;
            for (int64_t l = 0; l < len; l++) {
                const BP_T *xr = xo + l * inner + j0;
                for (int64_t j = 0; j < nj; j++)
                    acc[j] += xr[j];
            }
            for (int64_t j = 0; j < nj; j++)
                yo[j0 + j] = len > 0 ? (BP_T)(acc[j] / (double)len) : (BP_T)NAN;
        }
    }
}

/* ---- batchnorm ----------------------------------------------------------- */

/* x (n, c, inner) -> y; y may equal x.  Folded per channel to y = x k + t,
 * k = scale / sqrt(var + eps), t = bias - mean k: one multiply-add per
 * element. */
void BP_K(batchnorm)(BP_T *y, const BP_T *x, const BP_T *scale,
                     const BP_T *bias, const BP_T *mean, const BP_T *var,
                     BP_T eps, int64_t n, int64_t c, int64_t inner)
{
    for (int64_t ni = 0; ni < n; ni++) {
        for (int64_t ch = 0; ch < c; ch++) {
            const BP_T k = scale[ch] / BP_M(sqrt)(var[ch] + eps);
            const BP_T t = bias[ch] - mean[ch] * k;
            const BP_T *xr = x + (ni * c + ch) * inner;
            BP_T *yr = y + (ni * c + ch) * inner;
            for (int64_t i = 0; i < inner; i++)
                yr[i] = xr[i] * k + t;
        }
    }
}

/* ---- transpose ----------------------------------------------------------- */

/* x (dims) -> y with y axis i = x axis perm[i]; y must not overlap x.
 * After coalescing, when x's unit-stride axis is y's second-to-last, the last
 * two axes are copied in square tiles so that neither side strides through
 * memory a whole row at a time (NCHW <-> NHWC). */
void BP_K(transpose)(BP_T *y, const BP_T *x, int rank, const int64_t *dims,
                     const int64_t *perm)
{
    enum { TILE = 32 };
    int64_t xs[BP_MAX_RANK], yd[BP_MAX_RANK], ys[BP_MAX_RANK];
    int64_t d[BP_MAX_RANK], s[BP_MAX_RANK], s2[BP_MAX_RANK];
    int64_t idx[BP_MAX_RANK] = {0};
    assert(rank >= 0 && rank <= BP_MAX_RANK);
    int64_t st = 1;
    for (int i = rank - 1; i >= 0; i--) {
        if (dims[i] == 0)
            return;
        xs[i] = st;
        st *= dims[i];
    }
    for (int i = 0; i < rank; i++) {
        assert(perm[i] >= 0 && perm[i] < rank);
        yd[i] = dims[perm[i]];
        ys[i] = xs[perm[i]];
    }
    const int r = coalesce(rank, yd, ys, ys, d, s, s2);
    const int tiled = r >= 2 && s[r - 1] != 1 && s[r - 2] == 1;
    const int nb = tiled ? 2 : 1; /* trailing axes copied by one block */
    const int64_t cols = d[r - 1], sc = s[r - 1];
    const int64_t rows = tiled ? d[r - 2] : 1;
    int64_t off = 0;
    for (;;) {
        if (!tiled && sc == 1) {
            memcpy(y, x + off, (size_t)cols * sizeof *y);
        } else if (!tiled) {
            for (int64_t i = 0; i < cols; i++)
                y[i] = x[off + i * sc];
        } else {
            /* y (rows, cols) = x block with x stride 1 along rows, sc along
             * cols */
            for (int64_t r0 = 0; r0 < rows; r0 += TILE) {
                const int64_t r1 = rows - r0 < TILE ? rows : r0 + TILE;
                for (int64_t c0 = 0; c0 < cols; c0 += TILE) {
                    const int64_t c1 = cols - c0 < TILE ? cols : c0 + TILE;
                    for (int64_t cc = c0; cc < c1; cc++) {
                        const BP_T *xc = x + off + cc * sc;
                        for (int64_t rr = r0; rr < r1; rr++)
                            y[rr * cols + cc] = xc[rr];
                    }
                }
            }
        }
        y += rows * cols;
        int ax = r - nb - 1;
        for (; ax >= 0; ax--) {
            off += s[ax];
            if (++idx[ax] < d[ax])
                break;
            off -= s[ax] * d[ax];
            idx[ax] = 0;
        }
        if (ax < 0)
            break;
    }
}

#undef BP_T
#undef BP_S
#undef BP_GEMM
#undef BP_M
#undef BP_LOWEST
