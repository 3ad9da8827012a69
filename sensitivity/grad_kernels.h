/* grad_kernels.h - float64 derivative kernels for the autodiff: forward
 * tangents (JVPs) and vector-Jacobian products (VJPs) of the ops the float
 * executor runs, internal to libbitplan.
 *
 * Conventions: every kernel ACCUMULATES (y += ...) into its output, so that
 * several contributions (the operands of a bilinear op, the consumers of a
 * value) sum into one buffer without temporaries; callers zero outputs
 * first.  A NULL output means "not wanted" and a NULL tangent means "zero".
 * Tensors are contiguous, C order, NCHW, float64.  Kernels never allocate;
 * conv kernels take a workspace of bp_gconv_work() elements.  Convs and
 * matrix products go through CBLAS (cblas_dgemm). */
#ifndef BP_GRAD_KERNELS_H
#define BP_GRAD_KERNELS_H

#include <stdint.h>

#include "kernels.h"
#include "tensor.h"

/* ---- convolution ---------------------------------------------------------
 * Samples are processed in chunks whose im2col matrices sit side by side,
 * col (c/g*kh*kw, chunk*oh*ow), so that one GEMM covers a whole chunk
 * instead of one small GEMM per sample.
 *
 * Column cache: the kernels that read x through its im2col matrix take an
 * optional `col` buffer of bp_gconv_col_size() elements holding im2col(x)
 * for the whole batch.  With ready = 1 they read it; with ready = 0 they
 * fill it as they go (so the next call can read it); with col == NULL they
 * rebuild each chunk in the workspace.  The autodiff keeps one cache per
 * conv for the primal input and one for its tangent. */

/* Workspace elements the conv kernels below need for geometry g. */
int64_t bp_gconv_work(const bp_conv_geom *g);
/* Elements of a whole-batch column cache for geometry g. */
int64_t bp_gconv_col_size(const bp_conv_geom *g);

/* col (bp_gconv_col_size) = im2col of the whole batch x, the cache layout
 * the kernels read with ready = 1. */
void bp_gconv_fill_col(double *col, const double *x, const bp_conv_geom *g);

/* y (n,m,oh,ow) += conv(x (n,c,h,w), w (m,c/g,kh,kw)) */
void bp_gconv_fwd(double *y, const double *x, const double *w,
                  const bp_conv_geom *g, double *work, double *col, int ready);

/* dx (n,c,h,w) += conv_transpose(dy, w) + conv_transpose(dy2, w2): the VJP
 * for x, of one or two (dy2 == NULL or w2 == NULL: one) output adjoints
 * through one col2im. */
void bp_gconv_bwd_data(double *dx, const double *dy, const double *w,
                       const double *dy2, const double *w2,
                       const bp_conv_geom *g, double *work);

/* dw (m,c/g,kh,kw) += alpha * sum_n dy_n (*) x_n: the VJP for w */
void bp_gconv_bwd_weight(double *dw, const double *dy, const double *x,
                         double alpha, const bp_conv_geom *g, double *work,
                         double *col, int ready);

/* sum_n wt[n] * ||dW_n||^2 with dW_n the weight gradient of sample n alone
 * (dy_n (*) x_n): weighted per-sample squared gradient norms. */
double bp_gconv_sample_sqnorm(const double *wt, const double *dy,
                              const double *x, const bp_conv_geom *g,
                              double *work, double *col, int ready);

/* The same sum through Gram matrices, cheaper when oh*ow < c/g*kh*kw:
 * ||G_n C_n^T||^2 = <G_n^T G_n, C_n^T C_n> with C_n the im2col matrix of
 * sample n.  bp_gconv_gram fills A (n, group, npix, npix) with C_n^T C_n,
 * which does not depend on dy and so serves every pass over one batch;
 * work holds bp_gconv_work(g) elements. */
int bp_gconv_gram_pays(const bp_conv_geom *g);
int64_t bp_gconv_gram_size(const bp_conv_geom *g);
void bp_gconv_gram(double *A, const double *x, const bp_conv_geom *g,
                   double *work, double *col, int ready);
double bp_gconv_sample_sqnorm_gram(const double *wt, const double *dy,
                                   const double *A, const bp_conv_geom *g,
                                   double *work);

/* db (m) += sum over n, oh, ow of dy (n,m,oh,ow) */
void bp_gconv_bwd_bias(double *db, const double *dy, const bp_conv_geom *g);

/* ---- strided elementwise -------------------------------------------------- */

/* dst[sum_d i_d*dstr_d] += alpha * src[sum_d i_d*sstr_d] for every index i of
 * dims (rank <= BP_MAX_RANK).  Reductions (a stride of 0 in dst), broadcasts
 * (0 in src), transposes and slices are all this one loop. */
void bp_g_axpy_strided(double *dst, const int64_t *dstr, const double *src,
                       const int64_t *sstr, int rank, const int64_t *dims,
                       double alpha);

/* dst[i_dst] += alpha * a[i_a] * b[i_b] over dims, three stride sets; a or
 * b == NULL reads as 1. */
void bp_g_mul_strided(double *dst, const int64_t *dstr, const double *a,
                      const int64_t *astr, const double *b,
                      const int64_t *bstr, int rank, const int64_t *dims,
                      double alpha);

/* Div y = a / b over broadcast dims (y contiguous with strides ystr).
 * Tangent:   dy += da / b - a db / b^2
 * VJP:       ga += g / b;  gb -= g a / b^2
 * 2nd order: ga -= g db / b^2;  gb += -g da / b^2 + 2 g a db / b^3
 * Any pointer may be NULL (tangents: zero; outputs: not wanted). */
void bp_g_div_tangent(double *dy, const double *a, const int64_t *astr,
                      const double *b, const int64_t *bstr, const double *da,
                      const double *db, int rank, const int64_t *dims);
void bp_g_div_vjp(double *ga, double *gb, const double *g, const double *a,
                  const int64_t *astr, const double *b, const int64_t *bstr,
                  int rank, const int64_t *dims);
void bp_g_div_second(double *ga, double *gb, const double *g, const double *a,
                     const int64_t *astr, const double *b, const int64_t *bstr,
                     const double *da, const double *db, int rank,
                     const int64_t *dims);

/* ---- elementwise unary -----------------------------------------------------
 * f'(x) and f''(x) of the executor's unary ops, evaluated at the primal
 * input x (and output y, which sigmoid and tanh reuse).  Kinks of the
 * piecewise-linear ops follow the forward kernel's branches. */

/* dx_out (n) += g (n) * f'(x) */
void bp_g_unary_d1(double *out, const double *g, const double *x,
                   const double *y, int64_t n, bp_unop op, double p0,
                   double p1);
/* out (n) += g (n) * t (n) * f''(x): the second-order term of the R-pass */
void bp_g_unary_d2(double *out, const double *g, const double *t,
                   const double *x, const double *y, int64_t n, bp_unop op);

/* ---- softmax over the middle axis of (outer, len, inner) ------------------ */

/* dy += y * (dx - <y, dx>) */
void bp_g_softmax_jvp(double *dy, const double *y, const double *dx,
                      int64_t outer, int64_t len, int64_t inner);
/* gx += y * (g - <y, g>) */
void bp_g_softmax_vjp(double *gx, const double *y, const double *g,
                      int64_t outer, int64_t len, int64_t inner);
/* gx += dy * (g - <y, g>) - y * <dy, g>, with dy the output tangent: the
 * second-order term of the softmax VJP. */
void bp_g_softmax_second(double *gx, const double *y, const double *dy,
                         const double *g, int64_t outer, int64_t len,
                         int64_t inner);

/* ---- pools ---------------------------------------------------------------- */

/* Max pool routes through the window's first maximal tap, as the forward
 * kernel picks it.  fwd: dy (n,c,oh,ow) += dx[argmax]; bwd: gx[argmax] += g.
 * idx (n,c,oh,ow), when not NULL, caches the routes (offsets into x, -1 for
 * an empty window): read when ready, else filled. */
void bp_g_maxpool_routes(int64_t *idx, const double *x, const bp_pool_geom *g);
void bp_g_maxpool_fwd(double *dy, const double *x, const double *dx,
                      const bp_pool_geom *g, int64_t *idx, int ready);
void bp_g_maxpool_bwd(double *gx, const double *x, const double *gy,
                      const bp_pool_geom *g, int64_t *idx, int ready);
/* Average pool (linear): fwd dy += avgpool(dx); bwd gx += avgpool^T(gy) */
void bp_g_avgpool_fwd(double *dy, const double *dx, const bp_pool_geom *g);
void bp_g_avgpool_bwd(double *gx, const double *gy, const bp_pool_geom *g);

/* ---- batch norm (inference, per channel y = x k + t) ------------------------ */

/* k_c = scale_c / sqrt(var_c + eps) into k (c) */
void bp_g_bn_k(double *k, const double *scale, const double *var, double eps,
               int64_t c);

/* Plain vector helpers. */
double bp_g_dot(const double *a, const double *b, int64_t n);
void bp_g_axpy(double *y, double alpha, const double *x, int64_t n);

#endif
