/* quant.h - the quantizers, defined once and shared by the sensitivity stage
 * (which prices ||Q_b(W) - W||^2) and the integer executor (which runs the
 * very same integers).
 *
 * Weights: symmetric, per output channel, b bits (1..16).  For b >= 2,
 * qmax = 2^(b-1) - 1, scale_c = max|W_c| / qmax, q = clamp(round(W / scale_c),
 * -qmax, qmax) with round() = half away from zero (deterministic on every
 * platform; no dependence on the FP rounding mode).  A channel of zeros gets
 * scale 1 and q = 0.  For b = 1 (sign quantization, XNOR-Net style):
 * scale_c = mean|W_c| and q = W >= 0 ? +1 : -1.
 *
 * A weight tensor is viewed as (outer, channels, inner) with the output
 * channel in the middle: Conv (M, C/g, kh, kw) is (1, M, C/g*kh*kw); Gemm
 * with transB (N, K) is (1, N, K); Gemm without transB and MatMul (K, N) are
 * (K, N, 1).  bp_layer_channel_view() gives the split for a layer.
 *
 * Activations (per tensor, calibrated): unsigned after ReLU (codes 0 ..
 * 2^b - 1), signed elsewhere (codes -(2^(b-1) - 1) .. 2^(b-1) - 1,
 * symmetric like the weights, no zero point), b = 2..8, always held in 8-bit
 * containers.  A tensor's clipping range c comes from a histogram of |x| over
 * the calibration data by one of three methods (min/max, percentile,
 * MSE-optimal); its scale is c / qmax and q = clamp(round(x / scale)) with the
 * same half-away-from-zero rounding as the weights.
 *
 * Dyadic numbers (HAWQ-V3): a real ratio r > 0 is carried as an int32
 * multiplier m and a shift s with r ~= m * 2^-s, m in [2^30, 2^31) unless r
 * is tiny; applying it to an integer x is rshift_round(x * m, s) in int64,
 * where rshift_round(v, s) = floor((v + 2^(s-1)) / 2^s) (round half up).  The
 * ratio is computed once in floating point when a model is built; everything
 * after that is integer arithmetic. */
#ifndef BP_QUANT_H
#define BP_QUANT_H

#include <stdint.h>

#include "graph.h"

#define BP_QUANT_MAX_BITS 16

/* The (outer, channels, inner) view of layer l's weight. */
void bp_layer_channel_view(const bp_graph *g, const bp_layer *l,
                           int64_t *outer, int64_t *channels, int64_t *inner);

/* Per-channel scales of w (outer, channels, inner) at `bits` into
 * scales (channels). BP_EINVAL when bits is outside 1..16. */
int bp_quant_scales(double *scales, const float *w, int64_t outer,
                    int64_t channels, int64_t inner, int bits);

/* Integer codes q (outer, channels, inner) of w with the given scales. */
void bp_quant_codes(int32_t *q, const float *w, const double *scales,
                    int64_t outer, int64_t channels, int64_t inner, int bits);

/* ||Q_b(W) - W||^2 summed over all elements, in double. */
int bp_quant_perturbation(double *out, const float *w, int64_t outer,
                          int64_t channels, int64_t inner, int bits);

/* Q_b(W) dequantized (scale * q) into wq, same layout as w. */
int bp_quant_dequant(float *wq, const float *w, int64_t outer,
                     int64_t channels, int64_t inner, int bits);

/* ---- activations ----------------------------------------------------------- */

#define BP_ACT_MIN_BITS 2
#define BP_ACT_MAX_BITS 8

/* Code range of a b-bit activation: [0, 2^b - 1] unsigned, [-qmax, qmax]
 * with qmax = 2^(b-1) - 1 signed.  bits must be 2..8. */
void bp_act_range(int bits, int is_signed, int32_t *lo, int32_t *hi);

/* Scale of a tensor clipped at |x| <= clip: clip / hi of bp_act_range; 1
 * when clip is 0 or not finite (an all-zero tensor). */
double bp_act_scale(double clip, int bits, int is_signed);

/* q = clamp(round_half_away(x / scale), lo, hi), in double. NaN gives 0.
 * Inline: it is the executor's only float step on the way in. */
static inline int32_t bp_act_quantize(float x, double scale, int32_t lo,
                                      int32_t hi)
{
    double v = (double)x / scale;
    if (!(v == v))
        return 0;
    if (v >= (double)hi)
        return hi;
    if (v <= (double)lo)
        return lo;
    /* round half away from zero without a libm call: the truncation t and
     * the fraction v - t are exact for |v| < 2^31 */
    int32_t t = (int32_t)v;
    double f = v - (double)t;
    return t + (f >= 0.5) - (f <= -0.5);
}

/* Calibration methods for the clipping range. */
typedef enum bp_calib_method {
    BP_CALIB_MINMAX = 0, /* c = max |x| */
    BP_CALIB_PERCENTILE, /* c = the p-th percentile of |x| (p = 99.99) */
    BP_CALIB_MSE,        /* c minimising E[(Q_c(x) - x)^2] */
    BP_CALIB_COUNT
} bp_calib_method;

/* The default method: the one that served best on the examples.  Over the
 * CNN and the MLP, each at 12 uniform plans from w8a8 down to w8a2 (24 runs
 * of `bitplan run` on the 500 test samples, ranges from the 256 calibration
 * samples), the mean increase of the test cross-entropy over float was
 * 0.0568 (min/max), 0.0484 (percentile 99.99) and 0.0445 (MSE), the mean
 * logit SQNR 20.5, 20.8 and 21.3 dB, the mean accuracy drop 1.62, 1.38 and
 * 1.49 points: MSE on the primary figure. */
#define BP_CALIB_DEFAULT BP_CALIB_MSE
#define BP_CALIB_PERCENTILE_DEFAULT 99.99

const char *bp_calib_method_name(bp_calib_method m);
/* "minmax", "percentile", "mse"; BP_EINVAL for anything else. */
int bp_calib_method_lookup(const char *name, bp_calib_method *m);

/* Histogram of |x| over [0, amax] in BP_ACT_HIST_BINS equal bins; exact
 * zeros are counted apart (they quantize without error). */
#define BP_ACT_HIST_BINS 2048
typedef struct bp_act_hist {
    double min, max;  /* of x itself */
    double amax;      /* upper edge of the bins (max |x| seen in pass 1) */
    int64_t count, zeros;
    int64_t bins[BP_ACT_HIST_BINS];
} bp_act_hist;

/* Empties h for values with |x| <= amax (known from a min/max pass). */
void bp_act_hist_init(bp_act_hist *h, double amax);
/* Adds n values; |x| above amax lands in the last bin. Non-finite values
 * are ignored. */
void bp_act_hist_add(bp_act_hist *h, const float *x, int64_t n);

/* The clipping value c > 0 (or 0 for an all-zero tensor) of method m for a
 * bits-wide tensor of the given signedness.  percentile in (0, 100] is used
 * by BP_CALIB_PERCENTILE only. */
double bp_act_clip(const bp_act_hist *h, bp_calib_method m, int bits,
                   int is_signed, double percentile);

/* ---- dyadic numbers -------------------------------------------------------- */

/* Largest shift a dyadic number uses: x * m stays below 2^62 for |x| < 2^31. */
#define BP_DYADIC_MAX_SHIFT 62

/* r ~= m * 2^-s with m in [2^30, 2^31) when r >= 2^-32, else s = 62 and m =
 * round(r * 2^62) (possibly 0).  BP_EINVAL when r is negative, not finite,
 * or >= 2^31 (no non-negative shift reaches it). */
int bp_dyadic_from(double r, int32_t *m, int *s);

/* floor((v + 2^(s-1)) / 2^s) for s in 1..62, v for s = 0; the caller keeps
 * |v| + 2^(s-1) below 2^63. Round half up, on an arithmetic shift. */
static inline int64_t bp_rshift_round(int64_t v, int s)
{
    return s > 0 ? (v + ((int64_t)1 << (s - 1))) >> s : v;
}

/* A layer's per-channel dyadic scale in 4 bytes: a 24-bit multiplier m in
 * [2^23, 2^24) (fewer bits only for tiny ratios) above an 8-bit shift s,
 * packed as m << 8 | s.  24 bits are a float32's precision: the rescale of
 * an int32 accumulator is off by at most 2^-24 of its value, far below half
 * an output step. */
#define BP_DYADIC24_MAX_SHIFT 62

/* r ~= m * 2^-s as above; BP_EINVAL for r negative, not finite or >= 2^24. */
int bp_dyadic24_from(double r, uint32_t *packed);

static inline int32_t bp_dyadic24_m(uint32_t p) { return (int32_t)(p >> 8); }
static inline int bp_dyadic24_s(uint32_t p) { return (int)(p & 0xFF); }

/* rshift_round(x * m, s): x scaled by the dyadic number (m, s). */
static inline int64_t bp_dyadic_apply(int64_t x, int32_t m, int s)
{
    return bp_rshift_round(x * (int64_t)m, s);
}

#endif
