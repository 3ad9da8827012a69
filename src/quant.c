/* quant.c - symmetric per-channel weight quantization (see quant.h for the
 * exact definition every stage relies on). */
#include "quant.h"
#include "status.h"

#include <math.h>
#include <stdlib.h>

void bp_layer_channel_view(const bp_graph *g, const bp_layer *l,
                           int64_t *outer, int64_t *channels, int64_t *inner)
{
    const bp_node *n = &g->nodes[l->node];
    int channel_first = n->op == BP_OP_CONV ||
                        (n->op == BP_OP_GEMM &&
                         bp_node_attr_int(n, "transB", 0));
    if (channel_first) {
        *outer = 1;
        *channels = l->shape[0];
        *inner = l->shape[0] ? l->numel / l->shape[0] : 0;
    } else {
        *channels = l->shape[l->rank - 1];
        *outer = *channels ? l->numel / *channels : 0;
        *inner = 1;
    }
}

static int64_t qmax_of(int bits) { return ((int64_t)1 << (bits - 1)) - 1; }

int bp_quant_scales(double *scales, const float *w, int64_t outer,
                    int64_t channels, int64_t inner, int bits)
{
    if (bits < 1 || bits > BP_QUANT_MAX_BITS)
        return bp_fail(BP_EINVAL, "weight bits %d outside 1..%d", bits,
                       BP_QUANT_MAX_BITS);
    for (int64_t c = 0; c < channels; c++) {
        double mx = 0, sum = 0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                double a = fabs((double)w[(o * channels + c) * inner + i]);
                mx = a > mx ? a : mx;
                sum += a;
            }
        double s = bits == 1 ? sum / (double)(outer * inner)
                             : mx / (double)qmax_of(bits);
        scales[c] = s > 0 ? s : 1.0;
    }
    return BP_OK;
}

void bp_quant_codes(int32_t *q, const float *w, const double *scales,
                    int64_t outer, int64_t channels, int64_t inner, int bits)
{
    int64_t qm = bits == 1 ? 1 : qmax_of(bits);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < channels; c++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t k = (o * channels + c) * inner + i;
                double v = (double)w[k];
                int64_t r;
                if (bits == 1)
                    r = v >= 0 ? 1 : -1;
                else {
                    r = (int64_t)round(v / scales[c]);
                    r = r > qm ? qm : r < -qm ? -qm : r;
                }
                q[k] = (int32_t)r;
            }
}

/* Quantizes w once, then accumulates the squared error into *sq and/or
 * writes the dequantized values into wq: the two public functions below
 * share it so that both see identical rounding. */
static int walk(const float *w, int64_t outer, int64_t channels, int64_t inner,
                int bits, double *sq, float *wq)
{
    int st;
    double *scales = malloc((size_t)(channels ? channels : 1) * sizeof *scales);
    int32_t *q = malloc((size_t)(outer * channels * inner + 1) * sizeof *q);
    if (!scales || !q) {
        free(scales);
        free(q);
        return BP_ENOMEM;
    }
    if ((st = bp_quant_scales(scales, w, outer, channels, inner, bits))) {
        free(scales);
        free(q);
        return st;
    }
    bp_quant_codes(q, w, scales, outer, channels, inner, bits);
    double acc = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < channels; c++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t k = (o * channels + c) * inner + i;
                double d = scales[c] * q[k];
                if (wq)
                    wq[k] = (float)d;
                acc += (d - w[k]) * (d - w[k]);
            }
    if (sq)
        *sq = acc;
    free(scales);
    free(q);
    return BP_OK;
}

int bp_quant_perturbation(double *out, const float *w, int64_t outer,
                          int64_t channels, int64_t inner, int bits)
{
    return walk(w, outer, channels, inner, bits, out, NULL);
}

int bp_quant_dequant(float *wq, const float *w, int64_t outer,
                     int64_t channels, int64_t inner, int bits)
{
    return walk(w, outer, channels, inner, bits, NULL, wq);
}
