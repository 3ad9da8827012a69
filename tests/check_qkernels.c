/* check_qkernels.c - the layer kernel and the input quantiser, directly,
 * against a naive int64 computation of the formulas in qkernels.h.
 *
 * check_qexec.c covers the kernels through random models; this file aims at
 * the kernel's own paths: 1x1 convolutions read in place, 3x3 and 7x7 ones
 * through the padded band, stride 2, padding, dilation, groups, rows whose
 * length is not a multiple of 4, channel counts that leave a partial block
 * or a lone block (no pair), position counts that leave a partial 12-row
 * tile (run 4 and 1 at a time), layers of several row chunks, every weight width 2..8 (packed
 * weights unpacked per block pair, from code offsets that do not start a
 * byte), signed and unsigned inputs, U8 / I8 / I32 outputs, the fused
 * residual branch, and work split by positions and by blocks as the
 * executor's threads split it; 3x3 stride-1 layers by Winograd on AVX2
 * (where it pays, and forced on every layer it can run: odd sides, two
 * samples, groups, several chunks, 1824 channels at the extremes, and 60
 * random small layers); the output dequantisation against ldexp.  Every instruction set this CPU runs must
 * give the same integers. */
#include "qkernels.h"
#include "qkernels_impl.h"
#include "quant.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "testrng.h"

/* One geometry: input (n, h, w, c) -> m channels, kernel kh x kw. */
typedef struct shape {
    int64_t n, h, w, c, m, kh, kw, stride, pad, dil, group;
} shape;

static const shape shapes[] = {
    /* n  h   w   c   m   kh kw s  p  d  g */
    {1, 9, 11, 64, 64, 1, 1, 1, 0, 1, 1},   /* 1x1 read in place */
    {2, 7, 7, 24, 40, 1, 1, 1, 0, 1, 1},    /* in place, partial block */
    {1, 12, 10, 16, 48, 1, 1, 2, 0, 1, 1},  /* 1x1 stride 2: 3 blocks */
    {1, 13, 11, 8, 32, 3, 3, 1, 1, 1, 1},   /* 3x3 pad 1, 143 positions */
    {2, 10, 9, 12, 17, 3, 3, 2, 1, 1, 1},   /* stride 2, 17 channels */
    {1, 7, 7, 40, 24, 3, 3, 1, 1, 1, 1},    /* 49 positions, 24 channels */
    {1, 23, 21, 3, 20, 7, 7, 2, 3, 1, 1},   /* 7x7 s2 p3 on 3 channels */
    {1, 9, 8, 5, 16, 3, 3, 1, 1, 1, 1},     /* k = 45: a k tail */
    {1, 11, 12, 8, 24, 3, 3, 1, 2, 2, 1},   /* dilation 2 */
    {1, 8, 9, 12, 20, 3, 3, 1, 1, 1, 2},    /* 2 groups of 6 -> 10 */
    {1, 28, 26, 64, 36, 3, 3, 1, 1, 1, 1},  /* several row chunks */
    {3, 1, 1, 70, 33, 1, 1, 1, 0, 1, 1},    /* a Gemm: rows (3, 70) */
    /* AVX2 runs 3x3 stride-1 layers by Winograd (qwino_avx2.c): */
    {1, 18, 18, 512, 16, 3, 3, 1, 1, 1, 1}, /* 81 tiles: two chunks of 64 */
    {2, 9, 7, 12, 20, 3, 3, 1, 1, 1, 1},    /* 2 samples, odd sides, 12 ch */
    {1, 12, 12, 16, 24, 3, 3, 1, 1, 1, 2},  /* 2 groups of 8 channels */
    {1, 14, 13, 8, 16, 3, 3, 1, 0, 1, 1},   /* no padding */
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

typedef struct lcase {
    bp_qk_layer a;
    int8_t *codes;   /* (group, mg, k) plain order */
    int8_t *blocked; /* the same, blocked */
    uint8_t *wpack;
    int32_t *bias, *bias_x;
    uint32_t *rq;
    uint8_t *x, *res;
    int64_t nx, ny;
} lcase;

/* 0: random codes; +1 / -1: every weight at the largest / most negative
 * code and every input at the largest byte the kernels multiply (255, or
 * 127 for int8 inputs, fed as 255 where they are shifted by 128): the sums
 * that byte products held in int16 must not saturate on. */
static int extreme;

static void lcase_make(lcase *L, const shape *s, int bits, int in_signed,
                       bp_qtype out, int residual, rng *r)
{
    memset(L, 0, sizeof *L);
    bp_qk_layer *a = &L->a;
    bp_conv_geom *g = &a->geo;
    g->n = s->n, g->h = s->h, g->w = s->w, g->c = s->c, g->m = s->m;
    g->kh = s->kh, g->kw = s->kw, g->group = s->group;
    g->pad_t = g->pad_l = s->pad;
    g->stride_h = g->stride_w = s->stride;
    g->dil_h = g->dil_w = s->dil;
    g->oh = (s->h + 2 * s->pad - s->dil * (s->kh - 1) - 1) / s->stride + 1;
    g->ow = (s->w + 2 * s->pad - s->dil * (s->kw - 1) - 1) / s->stride + 1;
    a->mg = s->m / s->group;
    a->cg = s->c / s->group;
    a->k = s->kh * s->kw * a->cg;
    a->kp = (a->k + 3) / 4 * 4;
    a->in_signed = in_signed;
    a->w_bits = bits;
    int64_t numel = s->m * a->k;
    L->codes = malloc((size_t)numel);
    L->blocked = malloc((size_t)numel);
    L->wpack = malloc((size_t)BP_QPACK_BYTES(numel, bits) + 1);
    L->bias = malloc((size_t)s->m * sizeof *L->bias);
    L->bias_x = malloc((size_t)s->m * sizeof *L->bias_x);
    L->rq = malloc((size_t)s->m * sizeof *L->rq);
    int qmax = (1 << (bits - 1)) - 1;
    for (int64_t c = 0; c < s->m; c++) {
        int64_t gi = c / a->mg, row = c % a->mg, sum = 0;
        for (int64_t kk = 0; kk < a->k; kk++) {
            int8_t q = (int8_t)rng_int(r, -qmax - 1, qmax);
            if (extreme)
                q = (int8_t)(extreme > 0 ? qmax : -qmax - 1);
            L->codes[c * a->k + kk] = q;
            L->blocked[gi * a->mg * a->k + bp_qw_index(a->mg, a->k, row, kk)] = q;
            sum += q;
        }
        L->bias[c] = (int32_t)rng_int(r, -(1 << 20), 1 << 20);
        L->bias_x[c] = (int32_t)(L->bias[c] - 128 * sum);
        /* shifts of 31-39 mostly; a quarter from 23 to the 62 cap, across
         * FAST_S = 25 of the AVX2 epilogue (ratios >= 0.5 saturate) */
        int wide = rng_int(r, 0, 3) == 0;
        double ratio = ldexp(1.0 + (double)rng_int(r, 0, 1000) / 1000,
                             wide ? (int)rng_int(r, -42, 1)
                                  : (int)rng_int(r, -16, -8));
        if (residual)
            ratio *= 65536;
        ck_assert_int_eq(bp_dyadic24_from(ratio, &L->rq[c]), 0);
    }
    bp_qpack(L->wpack, L->blocked, numel, bits);
    L->wpack[BP_QPACK_BYTES(numel, bits)] = 0;
    a->w = bits == 8 ? (const int8_t *)L->wpack : NULL;
    a->wpack = L->wpack;
    a->bias = L->bias;
    a->bias_x = L->bias_x;
    a->rq = L->rq;
    a->out_type = out;
    if (out == BP_QT_U8)
        a->lo = 0, a->hi = (int32_t)rng_int(r, 3, 255);
    else if (out == BP_QT_I8)
        a->lo = -127, a->hi = 127;
    else
        a->lo = -(1 << 30), a->hi = 1 << 30;
    L->nx = s->n * s->h * s->w * s->c;
    L->ny = s->n * g->oh * g->ow * s->m;
    L->x = malloc((size_t)L->nx + 64);
    for (int64_t i = 0; i < L->nx; i++)
        L->x[i] = extreme ? (in_signed ? 0x7F : 0xFF)
                          : (uint8_t)rng_int(r, 0, 255);
    if (residual) {
        a->residual = 1;
        a->res_type = rng_int(r, 0, 1) ? BP_QT_U8 : BP_QT_I8;
        /* as the executor makes them: bp_dyadic_from of 2^16 times the
         * ratio of the scales, here 2^-4 .. 2^7, so rs = 6 .. 17, across
         * the rs >= 10 of AVX2's 32-bit residual path */
        double q = ldexp(1.0 + (double)rng_int(r, 0, 1000) / 1000,
                         16 + (int)rng_int(r, -4, 7));
        ck_assert_int_eq(bp_dyadic_from(q, &a->rm, &a->rs), 0);
        a->frac = BP_QRES_FRAC;
        L->res = malloc((size_t)L->ny + 64);
        for (int64_t i = 0; i < L->ny; i++)
            L->res[i] = (uint8_t)rng_int(r, 0, 255);
        a->res = L->res;
    }
}

static void lcase_free(lcase *L)
{
    free(L->codes);
    free(L->blocked);
    free(L->wpack);
    free(L->bias);
    free(L->bias_x);
    free(L->rq);
    free(L->x);
    free(L->res);
}

static int64_t sat(int64_t v)
{
    return v > BP_QRES_SAT ? BP_QRES_SAT : v < -BP_QRES_SAT ? -BP_QRES_SAT : v;
}

/* Output element (p, c) by the formulas of qkernels.h, in int64. */
static int64_t naive(const lcase *L, int64_t p, int64_t c)
{
    const bp_qk_layer *a = &L->a;
    const bp_conv_geom *g = &a->geo;
    int64_t n = p / (g->oh * g->ow), oy = p / g->ow % g->oh, ox = p % g->ow;
    int64_t grp = c / a->mg, t = a->bias[c];
    for (int64_t ky = 0; ky < g->kh; ky++)
        for (int64_t kx = 0; kx < g->kw; kx++)
            for (int64_t ci = 0; ci < a->cg; ci++) {
                int64_t iy = oy * g->stride_h - g->pad_t + ky * g->dil_h;
                int64_t ix = ox * g->stride_w - g->pad_l + kx * g->dil_w;
                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                    continue;
                uint8_t b = L->x[((n * g->h + iy) * g->w + ix) * g->c +
                                 grp * a->cg + ci];
                int64_t xv = a->in_signed ? (int8_t)b : b;
                t += xv * L->codes[c * a->k + (ky * g->kw + kx) * a->cg + ci];
            }
    int64_t v;
    if (a->out_type == BP_QT_I32)
        v = t;
    else {
        v = bp_dyadic_apply(t, bp_dyadic24_m(a->rq[c]), bp_dyadic24_s(a->rq[c]));
        if (a->residual) {
            int64_t idx = p * g->m + c;
            int64_t rv = a->res_type == BP_QT_U8 ? L->res[idx] : (int8_t)L->res[idx];
            v = bp_rshift_round(sat(v) + sat(bp_dyadic_apply(rv, a->rm, a->rs)),
                                a->frac);
        }
    }
    return v < a->lo ? a->lo : v > a->hi ? a->hi : v;
}

/* Runs the layer as `parts` position ranges or block ranges (split), each
 * with its own scratch, like the executor's threads. */
static void run_split(void *y, const lcase *L, int parts, int by_blocks)
{
    const bp_qk_layer *a = &L->a;
    int64_t P = bp_qk_layer_positions(a), B = bp_qk_layer_blocks(a);
    size_t ss = bp_qk_layer_scratch(a);
    for (int part = 0; part < parts; part++) {
        void *scratch = calloc(1, ss);
        for (int64_t grp = 0; grp < a->geo.group; grp++) {
            if (by_blocks) {
                int64_t b0 = B * part / parts, b1 = B * (part + 1) / parts;
                if (b0 < b1)
                    bp_qk_layer_run(y, L->x, a, 0, P, grp, b0, b1, scratch);
            } else {
                int64_t p0 = P * part / parts, p1 = P * (part + 1) / parts;
                if (p0 < p1)
                    bp_qk_layer_run(y, L->x, a, p0, p1, grp, 0, B, scratch);
            }
        }
        free(scratch);
    }
}

START_TEST(test_layer_paths)
{
    const shape *s = &shapes[_i];
    rng r = {0xC0FFEEULL + (uint64_t)_i};
    bp_qk_isa saved = bp_qk_isa_get();
    for (int bits = 2; bits <= 8; bits++) {
        int in_signed = (int)rng_int(&r, 0, 1);
        bp_qtype out = (bp_qtype)((bits + _i) % 3);
        int residual = out != BP_QT_I32 && rng_int(&r, 0, 1);
        lcase L;
        lcase_make(&L, s, bits, in_signed, out, residual, &r);
        const bp_qk_layer *a = &L.a;
        int64_t P = bp_qk_layer_positions(a);
        int64_t *want = malloc((size_t)L.ny * sizeof *want);
        for (int64_t p = 0; p < P; p++)
            for (int64_t c = 0; c < a->geo.m; c++)
                want[p * a->geo.m + c] = naive(&L, p, c);
        size_t es = bp_qtype_size(out);
        void *y = malloc((size_t)L.ny * es + 64);
        for (int run = 0; run < BP_QK_ISA_COUNT + 1; run++) {
            /* the last run: AVX2 with Winograd on every layer it can
             * run, not only where it pays */
            int isa = run < BP_QK_ISA_COUNT ? run : BP_QK_AVX2;
            if (bp_qk_isa_set((bp_qk_isa)isa))
                continue;
            int wino = bp_qk_wino_set(run < BP_QK_ISA_COUNT ? 1 : 2);
            for (int mode = 0; mode < 4; mode++) {
                /* whole; 2 position ranges; 3 position ranges; 2 block
                 * ranges */
                memset(y, 0x5A, (size_t)L.ny * es);
                run_split(y, &L, mode == 0 ? 1 : mode == 2 ? 3 : 2, mode == 3);
                for (int64_t i = 0; i < L.ny; i++) {
                    int64_t v = bp_qk_get(y, out, i);
                    if (v != want[i])
                        ck_abort_msg("shape %d, w%d, %s input, out type %d%s, "
                                     "%s%s, mode %d: element %lld (p %lld, c "
                                     "%lld): kernel %lld, naive %lld", _i, bits,
                                     in_signed ? "int8" : "uint8", (int)out,
                                     residual ? ", residual" : "",
                                     bp_qk_isa_name((bp_qk_isa)isa),
                                     run < BP_QK_ISA_COUNT ? "" : " (Winograd forced)",
                                     mode,
                                     (long long)i, (long long)(i / a->geo.m),
                                     (long long)(i % a->geo.m), (long long)v,
                                     (long long)want[i]);
                }
            }
            bp_qk_wino_set(wino);
        }
        bp_qk_isa_set(saved);
        free(y);
        free(want);
        lcase_free(&L);
    }
}
END_TEST

/* Every width at the extremes (see `extreme`), int32 out so nothing
 * clamps: on a 3x3 layer of 64 channels (k = 576) and on a Gemm with a k
 * tail, every instruction set gives the naive sums. */
START_TEST(test_layer_extremes)
{
    static const shape ex[] = {
        {1, 6, 7, 64, 24, 3, 3, 1, 1, 1, 1},
        {2, 1, 1, 301, 20, 1, 1, 1, 0, 1, 1},
        /* Winograd on AVX2 at 36 tiles; and at 1824 channels, the most
         * whose 8-bit sums, 4x, fit int32 (its intermediate sums wrap) */
        {1, 12, 12, 64, 24, 3, 3, 1, 1, 1, 1},
        {1, 8, 8, 1824, 16, 3, 3, 1, 1, 1, 1},
    };
    rng r = {0xE77ULL};
    bp_qk_isa saved = bp_qk_isa_get();
    for (int si = 0; si < 4; si++)
        for (int bits = 2; bits <= 8; bits++)
            for (int sg = 0; sg < 2; sg++)
                for (int dir = -1; dir <= 1; dir += 2) {
                    lcase L;
                    extreme = dir;
                    lcase_make(&L, &ex[si], bits, sg, BP_QT_I32, 0, &r);
                    extreme = 0;
                    int64_t P = bp_qk_layer_positions(&L.a), M = L.a.geo.m;
                    int32_t *y = malloc((size_t)L.ny * sizeof *y);
                    for (int run = 0; run < BP_QK_ISA_COUNT + 1; run++) {
                        /* the last: AVX2, Winograd wherever it can run */
                        int isa = run < BP_QK_ISA_COUNT ? run : BP_QK_AVX2;
                        if (bp_qk_isa_set((bp_qk_isa)isa))
                            continue;
                        int wino = bp_qk_wino_set(run < BP_QK_ISA_COUNT ? 1 : 2);
                        memset(y, 0x5A, (size_t)L.ny * sizeof *y);
                        run_split(y, &L, 1, 0);
                        bp_qk_wino_set(wino);
                        for (int64_t p = 0; p < P; p++)
                            for (int64_t c = 0; c < M; c++)
                                ck_assert_msg(y[p * M + c] == naive(&L, p, c),
                                              "shape %d w%d %s weights %+d, %s: "
                                              "p %lld c %lld: %d, want %lld",
                                              si, bits, sg ? "int8" : "uint8", dir,
                                              bp_qk_isa_name((bp_qk_isa)isa),
                                              (long long)p, (long long)c,
                                              y[p * M + c],
                                              (long long)naive(&L, p, c));
                    }
                    bp_qk_isa_set(saved);
                    free(y);
                    lcase_free(&L);
                }
}
END_TEST

/* The requantising epilogue where its int64 products are largest: sums
 * near +-2^31 (biases of +-(2^31 - 2^24) over sums under 2^24) times
 * multipliers just under 2^24, at shifts 0, 7, 16, 23 and 24 (AVX2: sums
 * clamped to +-2^(s + 7) first), 25 and 26 (its fast path without the
 * clamp, whose values must not wrap), 40 and 62, one shift per 8
 * channels, and a group at shift 16 whose multipliers are tiny, which
 * bp_dyadic24_from never makes (AVX2: the 64-bit path); 8- and 4-bit
 * weights, uint8 and int8 out.  Up to shift 40 every value clamps, to the
 * side of its sign: a wrapped one would land on the other.  Then the same
 * with a residual add, whose branches saturate at +-2^30: the largest
 * residual multiplier at rs 10 (AVX2's 32-bit residual path at its bound)
 * and at rs 8 (the 64-bit path; in 32 bits the sum would wrap) on uint8
 * residuals, a typical and a tiny one on int8; residual codes at 0, the
 * largest and the most negative, or random. */
static const shape edge_g = {2, 1, 1, 70, 77, 1, 1, 1, 0, 1, 1};
static const int edge_shifts[] = {0, 7, 16, 23, 24, 25, 26, 40, 62, 16};

/* One case of test_epilogue_edges: rk < 0 plain, else residual kind rk */
static void epilogue_edge(int bits, bp_qtype ot, int rk, rng *r)
{
    static const struct { int32_t rm; int rs; } rres[] = {
        {INT32_MAX, 10}, {INT32_MAX, 8}, {(1 << 30) + 12345, 14}, {1 << 30, 40},
    };
    const shape *g = &edge_g;
    lcase L;
    lcase_make(&L, g, bits, 0, ot, rk >= 0, r);
    bp_qk_layer *a = &L.a;
    if (rk >= 0) {
        a->rm = rres[rk].rm;
        a->rs = rres[rk].rs;
        a->res_type = rk >= 2 ? BP_QT_I8 : BP_QT_U8;
        for (int64_t i = 0; i < L.ny; i++)
            switch (i % 4) {
            case 0: L.res[i] = 0; break;
            case 1: L.res[i] = rk >= 2 ? 0x7F : 0xFF; break;
            case 2: L.res[i] = 0x80; break;
            default: L.res[i] = (uint8_t)rng_int(r, 0, 255);
            }
    }
    for (int64_t c = 0; c < g->m; c++) {
        int64_t sum = 0;
        for (int64_t kk = 0; kk < a->k; kk++)
            sum += L.codes[c * a->k + kk];
        const int64_t big = (INT64_C(1) << 31) - (1 << 24);
        L.bias[c] = (int32_t)(c % 2 ? -big : big - 1);
        L.bias_x[c] = (int32_t)(L.bias[c] - 128 * sum);
        int64_t m = c / 8 == 9 ? 1 + c % 8 : (1 << 24) - 1 - c;
        L.rq[c] = (uint32_t)(m << 8 | edge_shifts[c / 8]);
    }
    int64_t P = bp_qk_layer_positions(a);
    uint8_t *y = malloc((size_t)L.ny + 64);
    bp_qk_isa saved = bp_qk_isa_get();
    for (int isa = 0; isa < BP_QK_ISA_COUNT; isa++) {
        if (bp_qk_isa_set((bp_qk_isa)isa))
            continue;
        memset(y, 0x5A, (size_t)L.ny);
        run_split(y, &L, 1, 0);
        for (int64_t p = 0; p < P; p++)
            for (int64_t c = 0; c < g->m; c++) {
                int64_t v = bp_qk_get(y, ot, p * g->m + c), want = naive(&L, p, c);
                ck_assert_msg(v == want,
                              "w%d out %d residual %d %s: p %lld c %lld "
                              "(shift %d): %lld, want %lld", bits, (int)ot, rk,
                              bp_qk_isa_name((bp_qk_isa)isa), (long long)p,
                              (long long)c, edge_shifts[c / 8], (long long)v,
                              (long long)want);
            }
    }
    bp_qk_isa_set(saved);
    free(y);
    lcase_free(&L);
}

START_TEST(test_epilogue_edges)
{
    rng r = {0xED6EULL};
    for (int bits = 4; bits <= 8; bits += 4)
        for (int ot = BP_QT_U8; ot <= BP_QT_I8; ot++)
            for (int rk = -1; rk < 4; rk++)
                epilogue_edge(bits, (bp_qtype)ot, rk, &r);
}
END_TEST

/* The input quantiser against bp_act_quantize: NaN, infinities, exact
 * halves, values past the range, NCHW -> NHWC for several channel counts,
 * in position ranges. */
START_TEST(test_quantize)
{
    static const int64_t cs[] = {1, 3, 5, 20}, hws[] = {1, 37, 130};
    rng r = {0xABCDULL};
    bp_qk_isa saved = bp_qk_isa_get();
    for (int ci = 0; ci < 4; ci++)
        for (int hi_ = 0; hi_ < 3; hi_++)
            for (int sg = 0; sg < 2; sg++) {
                int64_t n = 2, c = cs[ci], hw = hws[hi_], tot = n * c * hw;
                double scale = 0.0375 + 0.01 * (double)ci;
                int32_t lo = sg ? -127 : 0, hi = sg ? 127 : 255;
                float *x = malloc((size_t)tot * sizeof *x);
                for (int64_t i = 0; i < tot; i++) {
                    switch (rng_int(&r, 0, 7)) {
                    case 0: x[i] = NAN; break;
                    case 1: x[i] = rng_int(&r, 0, 1) ? INFINITY : -INFINITY; break;
                    case 2: /* an exact half step */
                        x[i] = (float)(((double)rng_int(&r, -300, 300) + 0.5) * scale);
                        break;
                    case 3: x[i] = (float)rng_int(&r, -1000, 1000); break;
                    default:
                        x[i] = (float)((double)rng_int(&r, -400000, 400000) * 1e-4);
                    }
                }
                uint8_t *want = malloc((size_t)tot), *y = malloc((size_t)tot);
                for (int64_t b = 0; b < n; b++)
                    for (int64_t ch = 0; ch < c; ch++)
                        for (int64_t p = 0; p < hw; p++)
                            want[(b * hw + p) * c + ch] = (uint8_t)bp_act_quantize(
                                x[(b * c + ch) * hw + p], scale, lo, hi);
                for (int isa = 0; isa < BP_QK_ISA_COUNT; isa++) {
                    if (bp_qk_isa_set((bp_qk_isa)isa))
                        continue;
                    memset(y, 0x5A, (size_t)tot);
                    int64_t cut = n * hw / 3;
                    bp_qk_quantize(y, sg ? BP_QT_I8 : BP_QT_U8, x, n, c, hw, scale,
                                   lo, hi, 0, cut);
                    bp_qk_quantize(y, sg ? BP_QT_I8 : BP_QT_U8, x, n, c, hw, scale,
                                   lo, hi, cut, n * hw);
                    for (int64_t i = 0; i < tot; i++)
                        if (y[i] != want[i])
                            ck_abort_msg("c %lld hw %lld %s, %s: element %lld: %d, "
                                         "want %d", (long long)c, (long long)hw,
                                         sg ? "int8" : "uint8",
                                         bp_qk_isa_name((bp_qk_isa)isa),
                                         (long long)i, y[i], want[i]);
                }
                bp_qk_isa_set(saved);
                free(x);
                free(want);
                free(y);
            }
}
END_TEST

/* The output dequantisation against ldexp, the reference's formula, over
 * the whole range of its operands: int32 extremes, multipliers up to
 * 2^24 - 1 and every shift 0..255; with it the other NHWC -> NCHW copies. */
START_TEST(test_dequant_ch)
{
    enum { N = 2, HW = 130, C = 256 }; /* HW: two pieces of 64 and a part */
    rng r = {0xDE0ULL};
    static int32_t x[N * HW * C];
    static uint32_t rq[C];
    static float y[N * HW * C];
    for (int ch = 0; ch < C; ch++) {
        int32_t m = ch % 3 == 0 ? (1 << 24) - 1 : (int32_t)rng_int(&r, 1, (1 << 24) - 1);
        rq[ch] = (uint32_t)m << 8 | (uint32_t)ch;
    }
    for (int i = 0; i < N * HW * C; i++)
        switch (i % 5) {
        case 0: x[i] = INT32_MIN; break;
        case 1: x[i] = INT32_MAX; break;
        case 2: x[i] = 0; break;
        default: x[i] = (int32_t)rng_int(&r, INT32_MIN, INT32_MAX);
        }
    bp_qk_dequant_ch(y, x, N, C, HW, rq);
    for (int b = 0; b < N; b++)
        for (int p = 0; p < HW; p++)
            for (int ch = 0; ch < C; ch++) {
                float want = (float)ldexp((double)x[(b * HW + p) * C + ch] *
                                              (double)bp_dyadic24_m(rq[ch]),
                                          -bp_dyadic24_s(rq[ch]));
                float got = y[(b * C + ch) * HW + p];
                ck_assert_msg(memcmp(&got, &want, sizeof got) == 0,
                              "b %d p %d ch %d: %a, want %a", b, p, ch,
                              (double)got, (double)want);
            }
    /* the other two NHWC -> NCHW copies take the same path */
    static uint8_t u[N * HW * C];
    static int32_t t[N * HW * C];
    for (int i = 0; i < N * HW * C; i++)
        u[i] = (uint8_t)rng_int(&r, 0, 255);
    bp_qk_dequant(y, u, BP_QT_U8, N, C, HW, 0.25f);
    bp_qk_to_nchw(t, x, sizeof *x, N, C, HW);
    for (int b = 0; b < N; b++)
        for (int p = 0; p < HW; p++)
            for (int ch = 0; ch < C; ch++) {
                int o = (b * C + ch) * HW + p, i = (b * HW + p) * C + ch;
                ck_assert_msg(y[o] == (float)u[i] * 0.25f && t[o] == x[i],
                              "b %d p %d ch %d: %g / %d, want %g / %d", b, p,
                              ch, (double)y[o], t[o], (double)u[i] * 0.25, x[i]);
            }
}
END_TEST

/* Two threads sharing a layer's blocks (bp_qk_layer_run_shared). */
typedef struct shared_arg {
    void *y;
    const lcase *L;
    int64_t grp;
    atomic_llong *next;
    void *scratch;
} shared_arg;

static void *shared_thread(void *p)
{
    shared_arg *s = p;
    bp_qk_layer_run_shared(s->y, s->L->x, &s->L->a, s->grp, s->next, s->scratch);
    return NULL;
}

static void run_shared(void *y, const lcase *L)
{
    size_t ss = bp_qk_layer_scratch(&L->a);
    void *sc[2] = {calloc(1, ss), calloc(1, ss)};
    for (int64_t grp = 0; grp < L->a.geo.group; grp++) {
        atomic_llong next;
        atomic_init(&next, 0);
        shared_arg arg[2] = {{y, L, grp, &next, sc[0]}, {y, L, grp, &next, sc[1]}};
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, shared_thread, &arg[1]), 0);
        shared_thread(&arg[0]);
        pthread_join(th, NULL);
    }
    free(sc[0]);
    free(sc[1]);
}

/* Winograd on AVX2 against the naive sums over 60 random small layers
 * (1-3 samples, sides 1-13, 4-48 input channels, 1-40 output channels,
 * padding 0-2, groups 1 or 2, every width, either input sign, all three
 * output types, residuals), forced onto every layer it can run and split
 * at random positions or blocks: the tile edges, partial blocks and
 * samples that share a tile row. */
START_TEST(test_winograd_random)
{
    bp_qk_isa saved = bp_qk_isa_get();
    if (bp_qk_isa_set(BP_QK_AVX2))
        return; /* no AVX2 here: nothing runs this path */
    rng r = {0x3141ULL};
    int wino = bp_qk_wino_set(2), ran = 0;
    for (int it = 0; it < 60; it++) {
        shape s = {0};
        s.n = rng_int(&r, 1, 3);
        s.h = rng_int(&r, 1, 13);
        s.w = rng_int(&r, 1, 13);
        s.group = rng_int(&r, 1, 2);
        s.c = 4 * rng_int(&r, 1, 12) * s.group;
        s.m = rng_int(&r, 1, 40) * s.group;
        s.kh = s.kw = 3;
        s.stride = s.dil = 1;
        s.pad = rng_int(&r, 0, 2);
        if (s.h + 2 * s.pad < 3 || s.w + 2 * s.pad < 3)
            s.pad = 2;
        int bits = (int)rng_int(&r, 2, 8), sg = (int)rng_int(&r, 0, 1);
        bp_qtype out = (bp_qtype)rng_int(&r, 0, 2);
        int res = out != BP_QT_I32 && rng_int(&r, 0, 1);
        lcase L;
        lcase_make(&L, &s, bits, sg, out, res, &r);
        const bp_qk_layer *a = &L.a;
        ck_assert(bp_qk_wino_ok(a));
        int64_t P = bp_qk_layer_positions(a), M = a->geo.m;
        size_t es = bp_qtype_size(out);
        void *y = malloc((size_t)L.ny * es + 64);
        memset(y, 0x5A, (size_t)L.ny * es);
        int parts = (int)rng_int(&r, 1, 3), by_blocks = (int)rng_int(&r, 0, 1);
        /* by_blocks 2: two threads taking blocks from one counter */
        if (by_blocks && bp_qk_layer_shared_ok(a) && rng_int(&r, 0, 1))
            by_blocks = 2;
        if (by_blocks == 2)
            run_shared(y, &L);
        else
            run_split(y, &L, parts, by_blocks);
        for (int64_t p = 0; p < P; p++)
            for (int64_t c = 0; c < M; c++)
                ck_assert_msg(bp_qk_get(y, out, p * M + c) == naive(&L, p, c),
                              "case %d (n %lld, %lldx%lld, c %lld, m %lld, pad "
                              "%lld, g %lld, w%d, %s, out %d%s, %d parts by %s): "
                              "p %lld c %lld: %lld, want %lld", it,
                              (long long)s.n, (long long)s.h, (long long)s.w,
                              (long long)s.c, (long long)s.m, (long long)s.pad,
                              (long long)s.group, bits, sg ? "int8" : "uint8",
                              (int)out, res ? ", residual" : "", parts,
                              by_blocks == 2 ? "shared blocks"
                              : by_blocks ? "blocks" : "positions", (long long)p,
                              (long long)c, (long long)bp_qk_get(y, out, p * M + c),
                              (long long)naive(&L, p, c));
        ran++;
        free(y);
        lcase_free(&L);
    }
    bp_qk_wino_set(wino);
    bp_qk_isa_set(saved);
    ck_assert_int_eq(ran, 60);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("qkernels");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_layer_paths, 0, N_SHAPES);
    tcase_add_test(tc, test_layer_extremes);
    tcase_add_test(tc, test_epilogue_edges);
    tcase_add_test(tc, test_quantize);
    tcase_add_test(tc, test_dequant_ch);
    tcase_add_test(tc, test_winograd_random);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
