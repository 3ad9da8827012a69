/* quant.c - symmetric per-channel weight quantization (see quant.h for the
 * exact definition every stage relies on). */
#include "quant.h"
#include "status.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- activations ----------------------------------------------------------- */

void bp_act_range(int bits, int is_signed, int32_t *lo, int32_t *hi)
{
    if (is_signed) {
        *hi = (int32_t)qmax_of(bits);
        *lo = -*hi;
    } else {
        *lo = 0;
        *hi = (int32_t)(((int64_t)1 << bits) - 1);
    }
}

double bp_act_scale(double clip, int bits, int is_signed)
{
    int32_t lo, hi;
    bp_act_range(bits, is_signed, &lo, &hi);
    if (!(clip > 0) || !isfinite(clip))
        return 1.0;
    return clip / (double)hi;
}

static const char *const calib_names[BP_CALIB_COUNT] = {"minmax", "percentile",
                                                        "mse"};

const char *bp_calib_method_name(bp_calib_method m)
{
    return m >= 0 && m < BP_CALIB_COUNT ? calib_names[m] : "?";
}

int bp_calib_method_lookup(const char *name, bp_calib_method *m)
{
    for (int i = 0; i < BP_CALIB_COUNT; i++)
        if (strcmp(name, calib_names[i]) == 0) {
            *m = (bp_calib_method)i;
            return BP_OK;
        }
    return bp_fail(BP_EINVAL, "calibration method '%s': expected minmax, "
                   "percentile or mse", name);
}

void bp_act_hist_init(bp_act_hist *h, double amax)
{
    memset(h, 0, sizeof *h);
    h->amax = amax > 0 && isfinite(amax) ? amax : 0;
    h->min = INFINITY;
    h->max = -INFINITY;
}

void bp_act_hist_add(bp_act_hist *h, const float *x, int64_t n)
{
    double inv = h->amax > 0 ? BP_ACT_HIST_BINS / h->amax : 0;
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        if (!isfinite(v))
            continue;
        h->min = v < h->min ? v : h->min;
        h->max = v > h->max ? v : h->max;
        h->count++;
        if (v == 0) {
            h->zeros++;
            continue;
        }
        double a = fabs(v) * inv;
        int64_t b = a >= BP_ACT_HIST_BINS ? BP_ACT_HIST_BINS - 1 : (int64_t)a;
        h->bins[b]++;
    }
}

/* Mean squared error of quantizing the histogram's values with step delta
 * and qmax levels above zero: each bin is taken as uniform, sampled at four
 * points, so that a step coarser than a bin is priced correctly. */
static double hist_mse(const bp_act_hist *h, double delta, double qmax)
{
    double w = h->amax / BP_ACT_HIST_BINS, err = 0;
    for (int i = 0; i < BP_ACT_HIST_BINS; i++) {
        if (!h->bins[i])
            continue;
        double e = 0;
        for (int t = 0; t < 4; t++) {
            double x = (i + (t + 0.5) / 4) * w;
            double q = round(x / delta);
            q = q > qmax ? qmax : q;
            e += (q * delta - x) * (q * delta - x);
        }
        err += (double)h->bins[i] * e / 4;
    }
    return err;
}

double bp_act_clip(const bp_act_hist *h, bp_calib_method m, int bits,
                   int is_signed, double percentile)
{
    if (h->amax <= 0 || h->count == h->zeros)
        return 0;
    int32_t lo, hi;
    bp_act_range(bits, is_signed, &lo, &hi);
    double w = h->amax / BP_ACT_HIST_BINS;
    switch (m) {
    case BP_CALIB_PERCENTILE: {
        double want = percentile / 100.0 * (double)h->count;
        int64_t cum = h->zeros;
        for (int i = 0; i < BP_ACT_HIST_BINS; i++) {
            cum += h->bins[i];
            if ((double)cum >= want)
                return (i + 1) * w;
        }
        return h->amax;
    }
    case BP_CALIB_MSE: {
        /* clipping points at bin edges: every 32nd edge from the top down to
         * 1/64 of the range, then every edge around the best of those */
        int best = BP_ACT_HIST_BINS;
        double best_err = INFINITY;
        for (int j = BP_ACT_HIST_BINS; j >= 32; j -= 32) {
            double e = hist_mse(h, j * w / hi, hi);
            if (e < best_err) {
                best_err = e;
                best = j;
            }
        }
        int lo_j = best - 31 < 1 ? 1 : best - 31;
        int hi_j = best + 31 > BP_ACT_HIST_BINS ? BP_ACT_HIST_BINS : best + 31;
        int coarse = best;
        for (int j = lo_j; j <= hi_j; j++) {
            if (j == coarse)
                continue;
            double e = hist_mse(h, j * w / hi, hi);
            if (e < best_err) {
                best_err = e;
                best = j;
            }
        }
        return best * w;
    }
    default: {
        double a = fabs(h->min) > fabs(h->max) ? fabs(h->min) : fabs(h->max);
        return a > 0 && isfinite(a) ? a : h->amax;
    }
    }
}

/* ---- dyadic numbers -------------------------------------------------------- */

_Static_assert((-5 >> 1) == -3, "bitplan needs an arithmetic right shift");

int bp_dyadic24_from(double r, uint32_t *packed)
{
    if (!(r >= 0) || !isfinite(r) || r >= 16777216.0)
        return bp_fail(BP_EINVAL, "dyadic ratio %g outside [0, 2^24)", r);
    int64_t m;
    int sh;
    if (r < 0x1p-39) { /* would need a shift past 62: keep 62, lose bits */
        m = llround(r * 0x1p62);
        sh = BP_DYADIC24_MAX_SHIFT;
    } else {
        int e;
        double f = frexp(r, &e); /* r = f * 2^e, f in [0.5, 1) */
        m = llround(f * 16777216.0);
        if (m == ((int64_t)1 << 24)) {
            m >>= 1;
            e++;
        }
        sh = 24 - e;
        if (sh < 0)
            return bp_fail(BP_EINVAL, "dyadic ratio %g outside [0, 2^24)", r);
    }
    *packed = (uint32_t)m << 8 | (uint32_t)sh;
    return BP_OK;
}

int bp_dyadic_from(double r, int32_t *m, int *s)
{
    if (!(r >= 0) || !isfinite(r) || r >= 2147483648.0)
        return bp_fail(BP_EINVAL, "dyadic ratio %g outside [0, 2^31)", r);
    if (r < 0x1p-32) {
        *m = (int32_t)llround(r * 0x1p62);
        *s = BP_DYADIC_MAX_SHIFT;
        return BP_OK;
    }
    int e;
    double f = frexp(r, &e); /* r = f * 2^e, f in [0.5, 1) */
    int64_t mm = llround(f * 2147483648.0);
    if (mm == ((int64_t)1 << 31)) {
        mm >>= 1;
        e++;
    }
    int sh = 31 - e;
    if (sh < 0) /* r in [2^31 - 0.5, 2^31): not representable with m < 2^31 */
        return bp_fail(BP_EINVAL, "dyadic ratio %g outside [0, 2^31)", r);
    *m = (int32_t)mm;
    *s = sh;
    return BP_OK;
}
