/* qkernels.h - the integer kernels of bitplan's integer-only executor and the
 * packed weight layout they read.
 *
 * Activations are 8-bit codes (uint8 after ReLU, int8 elsewhere; narrower
 * widths live in the same containers) in NHWC order: a sample of a rank-4
 * value (C, H, W) is stored (H, W, C), a rank-2 value (F) as (1, 1, F), so
 * that a Gemm is a 1x1 convolution on a 1x1 image.  Outputs of the last
 * layer may be int32 (BP_QT_I32), dequantized per channel afterwards.
 *
 * Weights of a layer are an (M, K) matrix of b-bit codes per group: row r
 * is output channel r, K = kh*kw*(C/group) in (ky, kx, c) order, matching the
 * NHWC rows the convolution builds.  Within a group, rows are stored in
 * blocks of BP_QBLOCK channels; inside a block of mb rows, the K axis goes in
 * groups of BP_QKGROUP: group g holds codes (r, 4g..4g+3) for r = 0..mb-1,
 * and the last K % 4 codes of every row follow as one (mb, K % 4) tail.
 * bp_qw_index() is that permutation.  The codes then form one little-endian
 * bitstream of b bits each (two's complement), code i in bits [i*b, i*b+b):
 * int4 is two codes per byte (low nibble first), int2 four, int3 eight codes
 * in three bytes, int8 one byte.  A layer's packed weights are therefore
 * exactly ceil(M*K*b/8) bytes, with no padding.
 *
 * Every kernel exists as portable C; the layer GEMM also has an AVX-512 VNNI
 * and an AVX2 version chosen at run time (bp_qk_isa_set).  All produce identical
 * integers: every step is exact integer arithmetic with the same rounding.
 * Kernels take the output first, never allocate and never fail; the
 * executor validates shapes and ranges when it builds the model. */
#ifndef BP_QKERNELS_H
#define BP_QKERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* Element type of an integer tensor. */
typedef enum bp_qtype { BP_QT_U8 = 0, BP_QT_I8, BP_QT_I32 } bp_qtype;

/* ---- packed weights --------------------------------------------------------- */

#define BP_QBLOCK 16  /* output channels per block */
#define BP_QKGROUP 4  /* consecutive k per lane */

/* Bytes of n codes of b bits, packed. */
#define BP_QPACK_BYTES(n, bits) (((int64_t)(n) * (bits) + 7) / 8)
_Static_assert(BP_QPACK_BYTES(2, 4) == 1, "int4: two codes per byte");
_Static_assert(BP_QPACK_BYTES(4, 2) == 1, "int2: four codes per byte");
_Static_assert(BP_QPACK_BYTES(8, 3) == 3, "int3: eight codes in three bytes");
_Static_assert(BP_QPACK_BYTES(16, 8) == 16, "int8: one code per byte");
_Static_assert(BP_QBLOCK * BP_QKGROUP == 64, "a block group is one 64-byte vector");

/* Position of code (r, kk) of an (m, k) matrix in the blocked order. */
int64_t bp_qw_index(int64_t m, int64_t k, int64_t r, int64_t kk);

/* codes (n) -> dst (BP_QPACK_BYTES(n, bits)); codes must fit in bits (2..8). */
void bp_qpack(uint8_t *dst, const int8_t *codes, int64_t n, int bits);
/* src (BP_QPACK_BYTES(n, bits)) -> dst (n) int8 codes, sign-extended. */
void bp_qunpack(int8_t *dst, const uint8_t *src, int64_t n, int bits);
/* Code i of a packed stream, read bit by bit (the reference's reader). */
int bp_qpack_get(const uint8_t *src, int64_t i, int bits);

/* ---- instruction sets -------------------------------------------------------- */

typedef enum bp_qk_isa {
    BP_QK_PORTABLE = 0,
    BP_QK_AVX512VNNI, /* x86-64 with AVX-512 F/BW/VL and VNNI */
    BP_QK_AVX2,       /* x86-64 with AVX2 (int16 products, vpmaddwd) */
    BP_QK_ISA_COUNT
} bp_qk_isa;

/* The best instruction set this CPU runs (detected once). */
bp_qk_isa bp_qk_isa_best(void);
/* The one the kernels use now (default: bp_qk_isa_best()). */
bp_qk_isa bp_qk_isa_get(void);
/* Selects an instruction set; BP_EUNSUPPORTED when this CPU lacks it.  Not
 * to be changed while kernels run. */
int bp_qk_isa_set(bp_qk_isa isa);
const char *bp_qk_isa_name(bp_qk_isa isa);
/* Positions the GEMM of the current instruction set computes at once for
 * w_bits-bit weights, whether the layer has that many or fewer: the cost
 * model pads a layer's positions to it (profiles/README.md,
 * tile_positions).  1 on every instruction set now: the VNNI and AVX2
 * kernels run the positions of a partial tile in smaller steps (4 and 1,
 * or 1), so a batch-1 GEMV multiplies its one position. */
int bp_qk_tile_positions(int w_bits);

/* ---- layers: convolution / GEMM with the requantising epilogue ---------------- */

/* Fraction bits of the int32 intermediate of a residual add. */
#define BP_QRES_FRAC 16
/* Each residual branch is saturated to +-2^30 before the int32 add. */
#define BP_QRES_SAT ((int64_t)1 << 30)
/* Positions a GEMM tile may read past the last valid one. */
#define BP_QK_ROWPAD 16

/* One layer as the kernels see it.  For an output position p and channel c
 * (of group grp), with t = sum_k x[p,k] * w[c,k] + bias[c] exactly:
 *  - plain:    y = clamp(rshift_round(t * m[c], s[c]), lo, hi)
 *  - residual: v1 = sat(rshift_round(t * m[c], s[c])),
 *              v2 = sat(rshift_round(res[p,c] * rm, rs)),
 *              y = clamp(rshift_round(v1 + v2, frac), lo, hi)
 *    with sat() clamping to +-BP_QRES_SAT;
 *  - I32 out:  y = clamp(t, lo, hi) (dequantized later with m/s);
 * (m[c], s[c]) is the packed 24-bit dyadic scale rq[c] (quant.h).
 * Padding taps read code 0. */
typedef struct bp_qk_layer {
    bp_conv_geom geo;     /* NHWC input (n, h, w, c) -> (n, oh, ow, m) */
    int64_t mg, cg;       /* output / input channels per group */
    int64_t k, kp;        /* row length kh*kw*cg, and rounded up to 4 */
    int in_signed;        /* input is int8 (else uint8) */
    const int8_t *w;      /* (group, mg, k) codes in blocked order, int8;
                             NULL: unpack blocks from wpack as they are used */
    const uint8_t *wpack; /* the same codes packed at w_bits */
    int w_bits;
    const int32_t *bias;  /* (m) */
    const int32_t *bias_x;/* (m) bias - 128 * sum_k w: for signed inputs fed
                             as uint8 (x + 128) to unsigned-by-signed dots */
    const uint32_t *rq;   /* (m) dyadic scales, bp_dyadic24 packing */
    int32_t lo, hi;
    bp_qtype out_type;    /* U8, I8 or I32 */
    int residual;
    const void *res;      /* (n, oh, ow, m) residual codes */
    bp_qtype res_type;
    int32_t rm;
    int rs, frac;
} bp_qk_layer;

/* Output positions n*oh*ow and channel blocks per group of a layer. */
int64_t bp_qk_layer_positions(const bp_qk_layer *a);
int64_t bp_qk_layer_blocks(const bp_qk_layer *a);
/* Scratch bytes one bp_qk_layer_run call needs. */
size_t bp_qk_layer_scratch(const bp_qk_layer *a);
/* Positions packed per chunk: a run over at most this many positions reads
 * every weight block once, so unpacking blocks as they are used (w = NULL)
 * costs no more than unpacking the layer up front. */
int64_t bp_qk_layer_chunk(const bp_qk_layer *a);

/* Winograd's F(2x2, 3x3) on AVX2 (qwino_avx2.c), one rule for the kernels
 * and the cost model (ilp/cost.c):
 * bp_qk_wino_shape: a 3x3, stride-1, undilated convolution whose input
 * channels per group are a multiple of 4 (bp_qk_wino_geom), with sums
 * small enough that 4x them fit int32 (bp_qk_wino_bound);
 * bp_qk_wino_pays: then taken where it measured faster than the direct
 * GEMM (tiles: ceil(oh / 2) * ceil(ow / 2) per sample, times the batch;
 * one thread, Zen 3).  Its fixed costs (a weight transform per block and
 * chunk, 16 GEMM calls) need tiles x cg >= 1024 (8x8x16 -> 16: 0.86x;
 * 8x8x64 -> 64: 1.18x); weights of at most 5 bits, whose direct GEMM
 * multiplies bytes, need 32 tiles and 4096 (7x7x512 -> 512 at 4 bits:
 * 0.92x; 16x16x64 -> 64: 1.14x). */
static inline int bp_qk_wino_geom(const bp_conv_geom *g, int64_t cg)
{
    return g->kh == 3 && g->kw == 3 && g->stride_h == 1 && g->stride_w == 1 &&
           g->dil_h == 1 && g->dil_w == 1 && cg >= 4 && cg % 4 == 0;
}

/* 4 * 9 * cg * max|x| * max|w| < 2^31 */
static inline int bp_qk_wino_bound(int64_t cg, int w_bits, int in_signed)
{
    if (w_bits < 2 || w_bits > 8)
        return 0;
    int64_t mx = in_signed ? 128 : 255, mw = (int64_t)1 << (w_bits - 1);
    return 36 * cg * mx * mw < ((int64_t)1 << 31);
}

static inline int bp_qk_wino_shape(const bp_conv_geom *g, int64_t cg,
                                   int w_bits, int in_signed)
{
    return bp_qk_wino_geom(g, cg) && bp_qk_wino_bound(cg, w_bits, in_signed);
}

/* The 2x2 output tiles of a layer: ceil(oh / 2) * ceil(ow / 2) per sample,
 * times g->n. */
static inline int64_t bp_qk_wino_tiles(const bp_conv_geom *g)
{
    return g->n * ((g->oh + 1) / 2) * ((g->ow + 1) / 2);
}

static inline int bp_qk_wino_pays(int64_t tiles, int64_t cg, int w_bits)
{
    return w_bits >= 6 ? tiles * cg >= 1024 : tiles >= 32 && tiles * cg >= 4096;
}

/* 1 when the current instruction set runs such layers by Winograd (AVX2,
 * unless a test or bench turned it off). */
int bp_qk_wino_active(void);

/* Position ranges a run is best split at multiples of (any split gives
 * the same integers): 3x3 convolutions run by Winograd's algorithm on AVX2
 * compute 2x2 output tiles, so a split inside a pair of output rows
 * computes that pair twice. */
int64_t bp_qk_layer_unit(const bp_qk_layer *a);

/* 1 when threads should split this layer by channel blocks even where it
 * has positions enough: a Winograd layer with more output channels than
 * 2x2 tiles (ResNet-18's 14x14x256 at batch 1), whose weight transform,
 * done by every thread of a split by positions, outweighs its input's. */
int bp_qk_layer_by_blocks(const bp_qk_layer *a);

/* x (n, h, w, c) -> y (n, oh, ow, m): positions [p0, p1) of group grp,
 * channel blocks [b0, b1) of that group.  Disjoint ranges may run on
 * different threads at once, each with its own scratch. */
void bp_qk_layer_run(void *y, const void *x, const bp_qk_layer *a,
                     int64_t p0, int64_t p1, int64_t grp, int64_t b0,
                     int64_t b1, void *scratch);

/* ---- the other ops --------------------------------------------------------- */

/* max pool: x (n, h, w, c) -> y (n, oh, ow, c), codes of type t (U8 or I8);
 * padding never wins; clamp to [lo, hi].  Output rows [r0, r1) of the
 * n * oh rows. */
void bp_qk_maxpool(void *y, const void *x, bp_qtype t, const bp_pool_geom *g,
                   int32_t lo, int32_t hi, int64_t r0, int64_t r1);

/* average pool: x (n, h, w, c) -> y (n, oh, ow, c); for a window of cnt
 * counted taps (bp_pool_geom semantics) y = clamp(rshift_round(sum *
 * m[cnt], s[cnt]), lo, hi). Global average pooling is the h x w window.
 * Output rows [r0, r1) of the n * oh rows. */
void bp_qk_avgpool(void *y, bp_qtype ty, const void *x, bp_qtype tx,
                   const bp_pool_geom *g, const int32_t *m, const int8_t *s,
                   int32_t lo, int32_t hi, int64_t r0, int64_t r1);

/* y (n) = clamp(rshift_round(sat(rshift_round(a * ma, sa)) +
 *                            sat(rshift_round(b * mb, sb)), frac), lo, hi) */
void bp_qk_add(void *y, bp_qtype ty, const void *a, bp_qtype ta, int32_t ma,
               int sa, const void *b, bp_qtype tb, int32_t mb, int sb,
               int frac, int64_t n, int32_t lo, int32_t hi);

/* y (n) = clamp(rshift_round(x * m, s), lo, hi) */
void bp_qk_requant(void *y, bp_qtype ty, const void *x, bp_qtype tx, int32_t m,
                   int s, int64_t n, int32_t lo, int32_t hi);

/* y (n) = clamp(x, lo, hi): ReLU / Clip on codes, same scale. */
void bp_qk_clamp(void *y, bp_qtype ty, const void *x, bp_qtype tx, int64_t n,
                 int32_t lo, int32_t hi);

/* float x (n, c, hw) (NCHW) -> codes y (n, hw, c) (NHWC):
 * y = clamp(round_half_away(x / scale), lo, hi) (bp_act_quantize), for the
 * positions [r0, r1) of the n * hw. */
void bp_qk_quantize(void *y, bp_qtype ty, const float *x, int64_t n, int64_t c,
                    int64_t hw, double scale, int32_t lo, int32_t hi,
                    int64_t r0, int64_t r1);

/* codes x (n, hw, c) -> float y (n, c, hw): y = x * scale. */
void bp_qk_dequant(float *y, const void *x, bp_qtype tx, int64_t n, int64_t c,
                   int64_t hw, float scale);

/* int32 x (n, hw, c) -> float y (n, c, hw): y = x * m[c] * 2^-s[c] with
 * (m, s) the packed dyadic scales rq. */
void bp_qk_dequant_ch(float *y, const int32_t *x, int64_t n, int64_t c,
                      int64_t hw, const uint32_t *rq);

/* x (n, hw, c) -> y (n, c, hw) for es-byte elements: NHWC to C order, for
 * a Flatten of a tensor with spatial extent. */
void bp_qk_to_nchw(void *y, const void *x, size_t es, int64_t n, int64_t c,
                   int64_t hw);

/* Value of element i of an integer tensor of type t. */
static inline int32_t bp_qk_get(const void *x, bp_qtype t, int64_t i)
{
    switch (t) {
    case BP_QT_U8: return ((const uint8_t *)x)[i];
    case BP_QT_I8: return ((const int8_t *)x)[i];
    default: return ((const int32_t *)x)[i];
    }
}

static inline size_t bp_qtype_size(bp_qtype t) { return t == BP_QT_I32 ? 4 : 1; }

#endif
