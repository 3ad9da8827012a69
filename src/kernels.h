/* kernels.h - float reference kernels, in float32 and float64.
 *
 * Every kernel exists twice, bp_k_<name>_f32 and bp_k_<name>_f64, generated
 * from one template (kernels_impl.h) so that the executor (float32) and the
 * sensitivity stage (float64) run the same code.  Kernels take the output
 * first, then inputs, then geometry; all tensors are contiguous, C order,
 * NCHW.  Kernels never allocate and never fail: the executor validates
 * shapes before calling.  Conv and GEMM go through CBLAS (OpenBLAS). */
#ifndef BP_KERNELS_H
#define BP_KERNELS_H

#include <stdint.h>

/* 2-D convolution geometry (1-D convs use h = kh = oh = 1). */
typedef struct bp_conv_geom {
    int64_t n, c, h, w;        /* input (n, c, h, w) */
    int64_t m, kh, kw;         /* weight (m, c/group, kh, kw) */
    int64_t oh, ow;            /* output (n, m, oh, ow) */
    int64_t group;
    int64_t pad_t, pad_l;      /* leading pads (trailing pads only shape oh/ow) */
    int64_t stride_h, stride_w;
    int64_t dil_h, dil_w;
} bp_conv_geom;

/* Size in elements of the workspace bp_k_conv needs (im2col buffer). */
int64_t bp_conv_work(const bp_conv_geom *g);

/* 2-D pooling geometry. */
typedef struct bp_pool_geom {
    int64_t n, c, h, w;        /* input (n, c, h, w) */
    int64_t kh, kw;
    int64_t oh, ow;            /* output (n, c, oh, ow) */
    int64_t pad_t, pad_l;
    int64_t stride_h, stride_w;
    int64_t dil_h, dil_w;      /* MaxPool only */
    int count_include_pad;     /* AveragePool only */
} bp_pool_geom;

typedef enum bp_binop { BP_BIN_ADD, BP_BIN_SUB, BP_BIN_MUL, BP_BIN_DIV } bp_binop;
typedef enum bp_unop {
    BP_UN_RELU,       /* max(x, 0) */
    BP_UN_LEAKYRELU,  /* x >= 0 ? x : p0 * x */
    BP_UN_CLIP,       /* min(max(x, p0), p1) */
    BP_UN_SIGMOID,
    BP_UN_TANH,
    BP_UN_IDENTITY
} bp_unop;

#define BP_KERNEL_DECLS(T, S)                                                  \
    /* conv: x (n,c,h,w), w (m,c/g,kh,kw), b (m,) or NULL -> y (n,m,oh,ow);   \
     * work: bp_conv_work(g) elements */                                      \
    void bp_k_conv_##S(T *y, const T *x, const T *w, const T *b,               \
                       const bp_conv_geom *g, T *work);                        \
    /* gemm: A (m,k) or (k,m) if ta, B (k,n) or (n,k) if tb                    \
     * -> y (m,n) = alpha * op(A) op(B) + beta * y */                         \
    void bp_k_gemm_##S(T *y, const T *a, const T *b, int64_t m, int64_t n,     \
                       int64_t k, int ta, int tb, T alpha, T beta);            \
    /* broadcast binary: y (dims) = a op b, a and b read through strides in    \
     * elements per axis of y (0 on broadcast axes) */                        \
    void bp_k_binary_##S(T *y, const T *a, const int64_t *astr, const T *b,    \
                         const int64_t *bstr, int rank, const int64_t *dims,   \
                         bp_binop op);                                         \
    /* elementwise: y (n) = f(x (n)); y may equal x */                         \
    void bp_k_unary_##S(T *y, const T *x, int64_t n, bp_unop op, T p0, T p1);  \
    /* softmax over the middle axis: x (outer, len, inner) -> y, same shape */ \
    void bp_k_softmax_##S(T *y, const T *x, int64_t outer, int64_t len,        \
                          int64_t inner);                                      \
    /* max pool: x (n,c,h,w) -> y (n,c,oh,ow); padding never wins */           \
    void bp_k_maxpool_##S(T *y, const T *x, const bp_pool_geom *g);            \
    /* average pool: x (n,c,h,w) -> y (n,c,oh,ow) */                           \
    void bp_k_avgpool_##S(T *y, const T *x, const bp_pool_geom *g);            \
    /* mean over the middle axis: x (outer, len, inner) -> y (outer, inner);   \
     * GlobalAveragePool is (n*c, h*w, 1), ReduceMean loops over axes */       \
    void bp_k_mean_##S(T *y, const T *x, int64_t outer, int64_t len,           \
                       int64_t inner);                                         \
    /* inference batch norm: x (n,c,inner) -> y; per channel                  \
     * y = (x - mean) / sqrt(var + eps) * scale + bias; y may equal x */       \
    void bp_k_batchnorm_##S(T *y, const T *x, const T *scale, const T *bias,   \
                            const T *mean, const T *var, T eps, int64_t n,     \
                            int64_t c, int64_t inner);                         \
    /* transpose: x (dims) -> y with y axis i = x axis perm[i] */              \
    void bp_k_transpose_##S(T *y, const T *x, int rank, const int64_t *dims,   \
                            const int64_t *perm);

BP_KERNEL_DECLS(float, f32)
BP_KERNEL_DECLS(double, f64)

#endif
