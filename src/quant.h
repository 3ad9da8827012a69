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
 * (K, N, 1).  bp_layer_channel_view() gives the split for a layer. */
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

#endif
