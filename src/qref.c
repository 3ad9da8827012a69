/* qref.c - the int64 reference of the integer executor (see qref.h).  Every
 * formula here is written again from the definitions, deliberately sharing
 * no arithmetic helper with qkernels.c except the float quantizer of the
 * input (quant.h), which is the definition itself. */
#include "qref.h"
#include "status.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct bp_qref {
    const bp_qmodel *qm;
    int64_t max_batch;
    int64_t **buf;   /* (n_tensors) */
    float **out;     /* (n_outputs) */
};

static int64_t tnumel(const bp_qtensor *t) { return t->h * t->w * t->c; }

/* floor((v + 2^(s-1)) / 2^s) by floor division. */
static int64_t ref_round(int64_t v, int s)
{
    if (s == 0)
        return v;
    int64_t d = (int64_t)1 << s;
    int64_t num = v + d / 2;
    int64_t q = num / d;
    if (num % d != 0 && num < 0)
        q -= 1;
    return q;
}

static int64_t ref_dyadic(int64_t x, int32_t m, int s)
{
    return ref_round(x * (int64_t)m, s);
}

static int64_t ref_clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int64_t ref_sat(int64_t v)
{
    const int64_t s = (int64_t)1 << 30;
    return ref_clamp(v, -s, s);
}

/* Position of code (r, kk) of an (m, k) matrix in the blocked order,
 * written as "blocks before, groups before, rows before": see qkernels.h. */
static int64_t ref_index(int64_t m, int64_t k, int64_t r, int64_t kk)
{
    int64_t blk = r / 16, rr = r % 16;
    int64_t rows_in_blk = m - blk * 16 > 16 ? 16 : m - blk * 16;
    int64_t full = k / 4 * 4;
    int64_t off = blk * 16 * k;
    if (kk < full)
        return off + (kk / 4) * (rows_in_blk * 4) + rr * 4 + (kk % 4);
    return off + full * rows_in_blk + rr * (k - full) + (kk - full);
}

static int ref_code(const bp_qlayer *L, int64_t m, int64_t kk)
{
    int64_t Mg = L->k.mg, g = m / Mg, r = m % Mg;
    int64_t i = g * Mg * L->k.k + ref_index(Mg, L->k.k, r, kk);
    int bits = L->w_bits;
    unsigned v = 0;
    for (int j = 0; j < bits; j++) {
        int64_t bit = i * bits + j;
        v |= (unsigned)((L->wpack[bit / 8] >> (bit % 8)) & 1) << j;
    }
    int64_t sv = (int64_t)v;
    if (sv >= ((int64_t)1 << (bits - 1)))
        sv -= (int64_t)1 << bits;
    return (int)sv;
}

void bp_qref_free(bp_qref **rp)
{
    if (!rp || !*rp)
        return;
    bp_qref *r = *rp;
    for (int t = 0; r->buf && t < r->qm->n_tensors; t++)
        free(r->buf[t]);
    for (int k = 0; r->out && k < r->qm->g->n_outputs; k++)
        free(r->out[k]);
    free(r->buf);
    free(r->out);
    free(r);
    *rp = NULL;
}

int bp_qref_new(bp_qref **out, const bp_qmodel *qm, int64_t max_batch)
{
    bp_qref *r = calloc(1, sizeof *r);
    if (!r)
        return BP_ENOMEM;
    r->qm = qm;
    r->max_batch = max_batch;
    r->buf = calloc((size_t)qm->n_tensors + 1, sizeof *r->buf);
    r->out = calloc((size_t)qm->g->n_outputs + 1, sizeof *r->out);
    if (!r->buf || !r->out)
        goto fail;
    for (int t = 0; t < qm->n_tensors; t++)
        if (!(r->buf[t] = calloc((size_t)(max_batch * tnumel(&qm->t[t])) + 1,
                                 sizeof(int64_t))))
            goto fail;
    for (int i = 0; i < qm->n_ops; i++)
        if (qm->ops[i].kind == BP_QOP_DEQUANT &&
            !(r->out[qm->ops[i].io] = calloc(
                  (size_t)(max_batch * tnumel(&qm->t[qm->ops[i].in])) + 1,
                  sizeof(float))))
            goto fail;
    *out = r;
    return BP_OK;
fail:
    bp_qref_free(&r);
    return BP_ENOMEM;
}

static int ref_layer(bp_qref *r, const bp_qop *o, int64_t n)
{
    const bp_qmodel *qm = r->qm;
    const bp_qlayer *L = &qm->layers[o->layer];
    const bp_conv_geom *g = &L->k.geo;
    const bp_qtensor *yt = &qm->t[o->out];
    const int64_t *x = r->buf[o->in];
    int64_t *y = r->buf[o->out];
    const int64_t *res = o->in2 >= 0 ? r->buf[o->in2] : NULL;
    const int64_t M = L->m, Mg = L->k.mg, Cg = L->k.cg, K = L->k.k;
    /* the codes, read bit by bit once per run: (m, kk) */
    int32_t *wc = malloc((size_t)(M * K) * sizeof *wc);
    if (!wc)
        return BP_ENOMEM;
    for (int64_t m = 0; m < M; m++)
        for (int64_t kk = 0; kk < K; kk++)
            wc[m * K + kk] = ref_code(L, m, kk);
    for (int64_t b = 0; b < n; b++)
        for (int64_t oy = 0; oy < g->oh; oy++)
            for (int64_t ox = 0; ox < g->ow; ox++)
                for (int64_t m = 0; m < M; m++) {
                    int64_t grp = m / Mg, acc = 0;
                    for (int64_t ky = 0; ky < g->kh; ky++)
                        for (int64_t kx = 0; kx < g->kw; kx++) {
                            int64_t iy = oy * g->stride_h - g->pad_t + ky * g->dil_h;
                            int64_t ix = ox * g->stride_w - g->pad_l + kx * g->dil_w;
                            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                                continue;
                            for (int64_t ci = 0; ci < Cg; ci++) {
                                int64_t xv = x[((b * g->h + iy) * g->w + ix) * g->c +
                                               grp * Cg + ci];
                                acc += xv * wc[m * K + (ky * g->kw + kx) * Cg + ci];
                            }
                        }
                    int64_t t = acc + L->bias[m];
                    int64_t idx = ((b * g->oh + oy) * g->ow + ox) * M + m, v;
                    if (yt->type == BP_QT_I32) {
                        y[idx] = ref_clamp(t, o->lo, o->hi);
                        continue;
                    }
                    /* the packed scale: multiplier above, shift in the low byte */
                    v = ref_dyadic(t, (int32_t)(L->rq[m] / 256), (int)(L->rq[m] % 256));
                    if (res)
                        v = ref_round(ref_sat(v) + ref_sat(ref_dyadic(res[idx], o->m2,
                                                                      o->s2)),
                                      o->frac);
                    y[idx] = ref_clamp(v, o->lo, o->hi);
                }
    free(wc);
    return BP_OK;
}

/* Taps of window (oy, ox) that are counted (AveragePool semantics of the
 * float executor): inside the input, or inside the input padded
 * symmetrically by the leading pads when count_include_pad. */
static int64_t ref_count(const bp_pool_geom *g, int64_t oy, int64_t ox)
{
    int64_t cnt = 0;
    for (int64_t ky = 0; ky < g->kh; ky++)
        for (int64_t kx = 0; kx < g->kw; kx++) {
            int64_t iy = oy * g->stride_h - g->pad_t + ky;
            int64_t ix = ox * g->stride_w - g->pad_l + kx;
            if (g->count_include_pad)
                cnt += iy >= -g->pad_t && iy < g->h + g->pad_t &&
                       ix >= -g->pad_l && ix < g->w + g->pad_l;
            else
                cnt += iy >= 0 && iy < g->h && ix >= 0 && ix < g->w;
        }
    return cnt;
}

static void ref_pool(bp_qref *r, const bp_qop *o, int64_t n)
{
    const bp_pool_geom *g = &o->pool;
    const int64_t *x = r->buf[o->in];
    int64_t *y = r->buf[o->out];
    const int maxp = o->kind == BP_QOP_MAXPOOL;
    for (int64_t b = 0; b < n; b++)
        for (int64_t oy = 0; oy < g->oh; oy++)
            for (int64_t ox = 0; ox < g->ow; ox++)
                for (int64_t c = 0; c < g->c; c++) {
                    int64_t best = INT64_MIN, sum = 0, seen = 0;
                    for (int64_t ky = 0; ky < g->kh; ky++)
                        for (int64_t kx = 0; kx < g->kw; kx++) {
                            int64_t dh = maxp ? g->dil_h : 1, dw = maxp ? g->dil_w : 1;
                            int64_t iy = oy * g->stride_h - g->pad_t + ky * dh;
                            int64_t ix = ox * g->stride_w - g->pad_l + kx * dw;
                            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                                continue;
                            int64_t v = x[((b * g->h + iy) * g->w + ix) * g->c + c];
                            best = v > best ? v : best;
                            sum += v;
                            seen++;
                        }
                    int64_t idx = ((b * g->oh + oy) * g->ow + ox) * g->c + c, v;
                    if (maxp) {
                        v = seen ? best : 0;
                    } else {
                        int64_t cnt = ref_count(g, oy, ox);
                        v = cnt > 0 ? ref_dyadic(sum, o->pm[cnt], o->ps[cnt]) : 0;
                    }
                    y[idx] = ref_clamp(v, o->lo, o->hi);
                }
}

int bp_qref_run(bp_qref *r, const float *const *inputs, int64_t n)
{
    const bp_qmodel *qm = r->qm;
    if (n < 1 || n > r->max_batch)
        return bp_fail(BP_EINVAL, "reference: batch %lld out of range",
                       (long long)n);
    for (int i = 0; i < qm->n_ops; i++) {
        const bp_qop *o = &qm->ops[i];
        const bp_qtensor *ti = o->in >= 0 ? &qm->t[o->in] : NULL;
        const bp_qtensor *to = o->out >= 0 ? &qm->t[o->out] : NULL;
        int64_t *y = o->out >= 0 ? r->buf[o->out] : NULL;
        const int64_t *x = o->in >= 0 ? r->buf[o->in] : NULL;
        switch (o->kind) {
        case BP_QOP_QUANTIZE: {
            const float *in = inputs[o->io];
            int64_t hw = to->h * to->w, c = to->c;
            for (int64_t b = 0; b < n; b++)
                for (int64_t ch = 0; ch < c; ch++)
                    for (int64_t p = 0; p < hw; p++)
                        y[(b * hw + p) * c + ch] = bp_act_quantize(
                            in[(b * c + ch) * hw + p], (double)o->fscale, o->lo,
                            o->hi);
            break;
        }
        case BP_QOP_LAYER: {
            int st = ref_layer(r, o, n);
            if (st)
                return st;
            break;
        }
        case BP_QOP_ADD: {
            const int64_t *x2 = r->buf[o->in2];
            for (int64_t j = 0; j < n * tnumel(to); j++)
                y[j] = ref_clamp(ref_round(ref_sat(ref_dyadic(x[j], o->m1, o->s1)) +
                                           ref_sat(ref_dyadic(x2[j], o->m2, o->s2)),
                                           o->frac),
                                 o->lo, o->hi);
            break;
        }
        case BP_QOP_REQUANT:
            for (int64_t j = 0; j < n * tnumel(to); j++)
                y[j] = ref_clamp(ref_dyadic(x[j], o->m1, o->s1), o->lo, o->hi);
            break;
        case BP_QOP_RELU:
            for (int64_t j = 0; j < n * tnumel(to); j++)
                y[j] = ref_clamp(x[j], o->lo, o->hi);
            break;
        case BP_QOP_MAXPOOL: case BP_QOP_AVGPOOL:
            ref_pool(r, o, n);
            break;
        case BP_QOP_FLATTEN: {
            int64_t hw = ti->h * ti->w, c = ti->c;
            for (int64_t b = 0; b < n; b++)
                for (int64_t p = 0; p < hw; p++)
                    for (int64_t ch = 0; ch < c; ch++)
                        y[(b * c + ch) * hw + p] = x[(b * hw + p) * c + ch];
            break;
        }
        case BP_QOP_DEQUANT: {
            int64_t hw = ti->h * ti->w, c = ti->c;
            float *out = r->out[o->io];
            const bp_qlayer *L = ti->type == BP_QT_I32 ? &qm->layers[o->layer]
                                                       : NULL;
            for (int64_t b = 0; b < n; b++)
                for (int64_t p = 0; p < hw; p++)
                    for (int64_t ch = 0; ch < c; ch++) {
                        int64_t v = x[(b * hw + p) * c + ch];
                        out[(b * c + ch) * hw + p] =
                            L ? (float)ldexp((double)v * (double)(L->rq[ch] / 256),
                                             -(int)(L->rq[ch] % 256))
                              : (float)v * o->fscale;
                    }
            break;
        }
        default:
            return bp_fail(BP_EINTERNAL, "reference: op %d unknown", (int)o->kind);
        }
    }
    return BP_OK;
}

const int64_t *bp_qref_tensor(const bp_qref *r, int t)
{
    return t >= 0 && t < r->qm->n_tensors ? r->buf[t] : NULL;
}

const float *bp_qref_output(const bp_qref *r, int k)
{
    return k >= 0 && k < r->qm->g->n_outputs ? r->out[k] : NULL;
}
