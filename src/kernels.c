/* kernels.c - instantiates the float reference kernels for float32 and
 * float64 from the one template in kernels_impl.h, and sizes the conv
 * workspace.  Only this file (through the template) includes <cblas.h>. */
#include "kernels.h"

#include <float.h>

#define BP_T float
#define BP_S f32
#define BP_GEMM cblas_sgemm
#define BP_M(fn) fn##f
#define BP_LOWEST (-FLT_MAX)
#include "kernels_impl.h"

#define BP_T double
#define BP_S f64
#define BP_GEMM cblas_dgemm
#define BP_M(fn) fn
#define BP_LOWEST (-DBL_MAX)
#include "kernels_impl.h"

/* One im2col matrix (c/group*kh*kw, oh*ow), reused for every (sample,
 * group); pointwise convs read their input directly and need none, but the
 * count is at least 1 so callers can allocate it unconditionally. */
int64_t bp_conv_work(const bp_conv_geom *g)
{
    if (conv_pointwise(g))
        return 1;
    int64_t n = g->c / g->group * g->kh * g->kw * g->oh * g->ow;
    return n > 0 ? n : 1;
}
