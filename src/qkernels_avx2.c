/* qkernels_avx2.c - the AVX2 GEMM of the integer executor, for x86-64 CPUs
 * without AVX-512 VNNI (AMD Zen 1-3, Intel before Ice Lake).  Compiled with
 * per-function target attributes and called only after a run-time CPU check
 * (bp_qk_isa_best), like the VNNI code.
 *
 * AVX2's byte dot product, vpmaddubsw, saturates its int16 pair sums
 * (255 * 127 * 2 > 32767), so it cannot be bit-exact on 8-bit codes.  This
 * kernel widens both operands to int16 instead and multiplies with
 * vpmaddwd, whose int32 pair sums are exact: the activation rows once per
 * chunk (bp_qk_avx2_widen_rows), a block's weights once per use
 * (bp_qk_avx2_gemm), regrouped so that one 32-byte vector holds 4 output
 * channels x 4 k.  A broadcast of one position's 4 activations then yields
 * two int32 partial sums per channel (k 0-1 and k 2-3), added pairwise at
 * the end.  The tile is 6 positions x 8 channels: 12 accumulators, 2 weight
 * vectors and 1 broadcast of the 16 registers; blocks of more than 8
 * channels take 3 positions x 16 instead, the weights as memory operands
 * (full_run: 27 instructions per 192 products against 35; 2-6% faster per
 * layer, single thread, ResNet-18).  Wide layers run in K slices
 * whose weights (8 channels x 256 k, 4 KiB) stay in L1 while every tile of
 * the chunk passes over them; partial sums wait in the accumulator buffer.
 * The epilogue is the portable one's integer formula on 8 lanes, in int32
 * after one 64-bit product per branch wherever the values allow (store8;
 * with the executor's scales, every layer), else with 64-bit lanes
 * throughout (AVX2 has no 64-bit arithmetic shift or min/max: both are
 * built from compares).
 * Weights of at most 6 bits take the byte path instead (below).  oneDNN's
 * int8 convolutions on CPUs without VNNI multiply with vpmaddubsw too (its
 * guide, "Nuances of int8 computations", describes the saturation), so
 * they could not give these integers on 8-bit weights either.  3x3
 * stride-1 layers mostly go through qwino_avx2.c instead, which multiplies
 * Winograd-transformed int16 operands with this file's 16-channel kernel
 * (bp_qk_avx2_gemm_i32) and requantises with its epilogue
 * (bp_qk_avx2_store_sums). */
#include "qkernels_impl.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define TGT __attribute__((target("avx2,bmi2")))

int bp_qk_x86_avx2_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
}

/* 32 codes of b bits are 4 groups of 8 codes in b bytes each; one 128-bit
 * lane takes a group (8 bytes loaded, of which the codes use b): vpshufb
 * puts each code's two bytes in its word, vpmullw shifts the code to bit 8,
 * vpsrlw and a mask leave it, packus narrows (lanes loaded as groups 0, 2
 * and 1, 3 so that it lands them in order) and (x ^ s) - s sign-extends:
 * 16 instructions per 32 codes where BMI2's pdep takes about 36.  The last
 * load reads 8 - b bytes past the step: steps stop short of the stream's
 * end by that much, and pdep does the rest.  At 3 bits with these kernels
 * (on a Zen 5, 2 threads, batch 1): the example CNN 25 -> 14 us per sample
 * (8 bits: 14-20), the MLP 5-6 -> 2-3 us, ResNet-18 19.5 -> 11.9 ms (8
 * bits: 13.4). */
TGT static int64_t unpack_odd(int8_t *dst, const uint8_t *src, int64_t n,
                              int bits)
{
    const int k = bp_qk_odd_row(bits);
    const __m256i ctl = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)bp_qk_odd_bytes[k]));
    const __m256i mul = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)bp_qk_odd_mul[k]));
    const __m256i m = _mm256_set1_epi16((short)((1 << bits) - 1));
    const __m256i s = _mm256_set1_epi8((char)(1 << (bits - 1)));
    const int64_t total = BP_QPACK_BYTES(n, bits);
    int64_t i = 0;
    for (; i + 32 <= n && i / 8 * bits + 3 * bits + 8 <= total; i += 32) {
        const uint8_t *p = src + i / 8 * bits;
        __m256i a = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)p)),
            _mm_loadl_epi64((const __m128i *)(p + 2 * bits)), 1);
        __m256i b = _mm256_inserti128_si256(
            _mm256_castsi128_si256(
                _mm_loadl_epi64((const __m128i *)(p + bits))),
            _mm_loadl_epi64((const __m128i *)(p + 3 * bits)), 1);
        a = _mm256_mullo_epi16(_mm256_shuffle_epi8(a, ctl), mul);
        b = _mm256_mullo_epi16(_mm256_shuffle_epi8(b, ctl), mul);
        a = _mm256_and_si256(_mm256_srli_epi16(a, 8), m);
        b = _mm256_and_si256(_mm256_srli_epi16(b, 8), m);
        __m256i v = _mm256_packus_epi16(a, b);
        v = _mm256_sub_epi8(_mm256_xor_si256(v, s), s);
        _mm256_storeu_si256((__m256i *)(dst + i), v);
    }
    return i;
}

/* Packed codes -> int8: at batch 1 a late layer's weights are unpacked
 * once per 49 uses, so the portable byte-table loop cost as much as the
 * GEMM (ResNet-18 at 4 bits: 2.7 against 1.6 ms on its 7x7x512 layers). */
TGT int64_t bp_qk_avx2_unpack(int8_t *dst, const uint8_t *src, int64_t n,
                              int bits)
{
    int64_t i = 0;
    if (bits == 4) {
        /* 16 bytes -> 32 codes: byte b becomes the 16-bit lane [low nibble,
         * high nibble], then 4-bit sign extension per byte */
        const __m256i m4 = _mm256_set1_epi16(0x0F), s8 = _mm256_set1_epi8(8);
        for (; i + 32 <= n; i += 32) {
            __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(src + i / 2)));
            __m256i v = _mm256_or_si256(_mm256_and_si256(b, m4),
                                        _mm256_slli_epi16(_mm256_srli_epi16(b, 4), 8));
            v = _mm256_sub_epi8(_mm256_xor_si256(v, s8), s8);
            _mm256_storeu_si256((__m256i *)(dst + i), v);
        }
    } else if (bits == 2) {
        /* 8 bytes -> 32 codes: byte b becomes the 32-bit lane of its four
         * 2-bit fields, then 2-bit sign extension per byte */
        const __m256i m2 = _mm256_set1_epi32(0x03030303), s2 = _mm256_set1_epi8(2);
        for (; i + 32 <= n; i += 32) {
            __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(src + i / 4)));
            __m256i v = _mm256_or_si256(
                _mm256_or_si256(b, _mm256_slli_epi32(b, 6)),
                _mm256_or_si256(_mm256_slli_epi32(b, 12), _mm256_slli_epi32(b, 18)));
            v = _mm256_and_si256(v, m2);
            v = _mm256_sub_epi8(_mm256_xor_si256(v, s2), s2);
            _mm256_storeu_si256((__m256i *)(dst + i), v);
        }
    } else if (bits != 8) {
        i = unpack_odd(dst, src, n, bits);
        i = bp_qk_x86_unpack_pdep(dst, src, i, n, bits);
    }
    return i;
}

/* k groups of 4 per K slice */
#define KC 64
/* positions and channels per tile */
#define TP BP_QK_AVX2_TILE
#define TC 8

/* int16 weights of one block: [half][group][8 channels x 4 k] */
size_t bp_qk_avx2_wbytes(const bp_qk_layer *a)
{
    return (size_t)(2 * a->kp * TC * 2) + 64;
}

static inline int32_t ld32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

TGT void bp_qk_avx2_widen_rows(int16_t *dst, const uint8_t *src, int64_t lds,
                               int64_t np, int64_t kp, int sign)
{
    const int64_t G = kp / 4, pad = (np + TP - 1) / TP * TP;
    for (int64_t i = 0; i < pad; i++) {
        const uint8_t *s = src + i * lds;
        /* row i's group g goes to slot (i % TP) of tile i / TP's group g */
        int16_t *d = dst + (i / TP) * G * TP * 4 + (i % TP) * 4;
        int64_t g = 0;
        if (i >= np) {
            for (; g < G; g++)
                memset(d + g * TP * 4, 0, 4 * sizeof *d);
            continue;
        }
        for (; g + 4 <= G; g += 4) {
            __m128i b = _mm_loadu_si128((const __m128i *)(s + 4 * g));
            __m256i v = sign ? _mm256_cvtepi8_epi16(b) : _mm256_cvtepu8_epi16(b);
            __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
            _mm_storel_epi64((__m128i *)(d + g * TP * 4), lo);
            _mm_storeh_pd((double *)(d + (g + 1) * TP * 4), _mm_castsi128_pd(lo));
            _mm_storel_epi64((__m128i *)(d + (g + 2) * TP * 4), hi);
            _mm_storeh_pd((double *)(d + (g + 3) * TP * 4), _mm_castsi128_pd(hi));
        }
        for (; g < G; g++) { /* a group at a time: 3 instructions, not 8 */
            __m128i b = _mm_cvtsi32_si128(ld32(s + 4 * g));
            _mm_storel_epi64((__m128i *)(d + g * TP * 4),
                             sign ? _mm_cvtepi8_epi16(b) : _mm_cvtepu8_epi16(b));
        }
    }
}

/* 32-bit lanes [0, n) all ones, the rest zero: a maskload of n lanes */
TGT static inline __m256i first_lanes(int64_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 0 ? 0 : n > 8 ? 8 : n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Block codes (mb rows, blocked order of qkernels.h) -> w16, zero-padded
 * to 16 channels and kp. */
TGT static void widen_block(int16_t *w16, const int8_t *wb, int64_t mb,
                            int64_t k, int64_t kp)
{
    const int64_t kt = k % 4, kf = k - kt, G = kp / 4;
    int16_t *h0 = w16, *h1 = w16 + G * 32;
    if (mb == BP_QBLOCK) {
        for (int64_t g = 0; g < kf / 4; g++) {
            const int8_t *s = wb + g * 64;
            _mm256_storeu_si256((__m256i *)(h0 + g * 32),
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)s)));
            _mm256_storeu_si256((__m256i *)(h0 + g * 32 + 16),
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(s + 16))));
            _mm256_storeu_si256((__m256i *)(h1 + g * 32),
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(s + 32))));
            _mm256_storeu_si256((__m256i *)(h1 + g * 32 + 16),
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(s + 48))));
        }
    } else {
        /* a group's 4 * mb bytes, one 32-bit lane per channel: masked loads
         * of channels 0-7 and 8-15 (the output layers of 10 or 1000
         * classes end in such a block; byte by byte they cost more than
         * their GEMM) */
        const __m256i m0 = first_lanes(mb), m1 = first_lanes(mb - TC);
        for (int64_t g = 0; g < kf / 4; g++) {
            const int *s = (const int *)(wb + g * 4 * mb);
            __m256i v0 = _mm256_maskload_epi32(s, m0);
            __m256i v1 = _mm256_maskload_epi32(s + TC, m1);
            _mm256_storeu_si256((__m256i *)(h0 + g * 32),
                                _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v0)));
            _mm256_storeu_si256((__m256i *)(h0 + g * 32 + 16),
                                _mm256_cvtepi8_epi16(_mm256_extracti128_si256(v0, 1)));
            _mm256_storeu_si256((__m256i *)(h1 + g * 32),
                                _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v1)));
            _mm256_storeu_si256((__m256i *)(h1 + g * 32 + 16),
                                _mm256_cvtepi8_epi16(_mm256_extracti128_si256(v1, 1)));
        }
    }
    if (kt) {
        int64_t g = kf / 4;
        memset(h0 + g * 32, 0, 32 * sizeof *h0);
        memset(h1 + g * 32, 0, 32 * sizeof *h1);
        for (int64_t r = 0; r < mb; r++)
            for (int64_t j = 0; j < kt; j++)
                (r < TC ? h0 : h1)[g * 32 + (r % TC) * 4 + j] =
                    wb[kf * mb + r * kt + j];
    }
}

/* 64-bit lanes: arithmetic shift right by per-lane counts, min, max */
TGT static inline __m256i sra64(__m256i x, __m256i s)
{
    __m256i m = _mm256_cmpgt_epi64(_mm256_setzero_si256(), x);
    return _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(x, m), s), m);
}

TGT static inline __m256i min64(__m256i a, __m256i b)
{
    return _mm256_blendv_epi8(a, b, _mm256_cmpgt_epi64(a, b));
}

TGT static inline __m256i max64(__m256i a, __m256i b)
{
    return _mm256_blendv_epi8(a, b, _mm256_cmpgt_epi64(b, a));
}

/* rshift_round(x, s) on 64-bit lanes, with r = 2^(s-1) or 0 */
TGT static inline __m256i rsr64(__m256i x, __m256i r, __m256i s)
{
    return sra64(_mm256_add_epi64(x, r), s);
}

/* The epilogue constants of 8 channels: the int32 bias lanes, and per
 * 64-bit lane of the even [0] and odd [1] channels the multiplier, the
 * shift and its rounding constant 2^(s-1) (or 0). */
typedef struct ch8 {
    int64_t c0, nc;
    __m256i bias;
    __m256i m[2], s[2], rnd[2];
    /* fast: every shift in [FAST_S, 62], so that the rescaled value fits
     * int32 (|t * m| < 2^55); then kb = rnd + 2^62 (a logical shift of a
     * value made positive) and kc = 2^(62 - s) mod 2^32 per channel, the
     * bias that shift leaves in the low 32 bits */
    int fast;
    __m256i kb[2], kc;
    /* Smaller shifts take the same path after t is clamped to +-tb: tb =
     * 2^(s + 7) where s < 24, so that m >= 2^23 puts round(tb * m / 2^s)
     * = 2^7 m in [2^30, 2^31), past every output bound and the residual
     * saturation while still in int32, and a sum beyond tb ends there as
     * well; INT32_MAX (no clamp) where s >= 24.  clampok: every lane has
     * s >= 24 or m >= 2^23, always so for bp_dyadic24_from's scales.
     * fastres: clampok, and the layer's residual rescale fits the same
     * form (res_fits). */
    int clampok, fastres;
    __m256i tb, ntb;
} ch8;

/* The smallest shift of the fast epilogue: |t| <= 2^31 and m < 2^24, so
 * |round(t * m / 2^s)| <= 2^(55 - s) <= 2^30 */
#define FAST_S 25

/* The layer's constants, broadcast: q[] 64-bit lanes by the enum. */
enum { E_LO, E_HI, E_SATLO, E_SATHI, E_RM, E_RS, E_RRND, E_FS, E_FRND, E_N };
typedef struct epi8 {
    __m256i q[E_N];
    __m256i lo32, hi32;
    __m256i pick; /* byte 0 of each int32 lane to the lane's first 4 bytes */
    /* the residual branch in the fast form (ch8.fastres): kb and kc of its
     * one shift rs, that shift, the sum's rounding 2^(frac-1) and shift,
     * and the saturation bounds in int32 */
    __m256i rkb, rkc, rs, frnd, sat32, nsat32;
    __m128i fs;
} epi8;

static int64_t rnd_of(int s) { return s > 0 ? (int64_t)1 << (s - 1) : 0; }

/* The residual rescale res * rm / 2^rs in the fast form: |res| <= 255 and
 * rm < 2^31, so with rs >= 10 its value is within +-2^29 and the
 * saturation at 2^30 never acts; the main branch, saturated, is within
 * +-2^30, so their sum and the rounding constant of a fraction of at most
 * 29 bits stay in int32 (rs 9 would still fit, by 0.2%; at rs 8 the sum
 * can wrap, which test_epilogue_edges shows). */
static int res_fits(const bp_qk_layer *a)
{
    return a->rm >= 0 && a->rs >= 10 && a->rs <= 62 && a->frac >= 1 &&
           a->frac <= 29;
}

TGT static void ch8_setup(ch8 *h, const bp_qk_layer *a, const int32_t *bsrc,
                          int64_t c0, int64_t nc)
{
    /* vector loads, nc of 8 lanes: at batch 1 a GEMV's epilogue setup ran
     * once per 8 channels and cost more than its products, scalar */
    const __m256i mask = first_lanes(nc);
    const __m256i lo32 = _mm256_set1_epi64x(0xFFFFFFFF), one = _mm256_set1_epi64x(1);
    h->c0 = c0;
    h->nc = nc;
    h->bias = _mm256_maskload_epi32(bsrc + c0, mask);
    if (a->out_type == BP_QT_I32) {
        for (int j = 0; j < 2; j++)
            h->m[j] = h->s[j] = h->rnd[j] = _mm256_setzero_si256();
        h->fast = h->clampok = h->fastres = 0;
        return;
    }
    /* rq = m << 8 | s; _mm256_mul_epi32 reads the low 32 bits of each
     * 64-bit lane: the even channels in place, the odd ones shifted down */
    __m256i rq = _mm256_maskload_epi32((const int *)(a->rq + c0), mask);
    __m256i m = _mm256_srli_epi32(rq, 8);
    __m256i sh = _mm256_and_si256(rq, _mm256_set1_epi32(0xFF));
    h->m[0] = m;
    h->m[1] = _mm256_srli_epi64(m, 32);
    h->s[0] = _mm256_and_si256(sh, lo32);
    h->s[1] = _mm256_srli_epi64(sh, 32);
    for (int j = 0; j < 2; j++) /* 2^(s-1), or 0 when s = 0 */
        h->rnd[j] = _mm256_srli_epi64(_mm256_sllv_epi64(one, h->s[j]), 1);
    /* lanes past nc count as fast; shifts are at most 62 (quant.h) */
    __m256i slow = _mm256_and_si256(
        mask, _mm256_cmpgt_epi32(_mm256_set1_epi32(FAST_S), sh));
    h->fast = _mm256_testz_si256(slow, slow);
    const __m256i b62 = _mm256_set1_epi64x(INT64_C(1) << 62);
    for (int j = 0; j < 2; j++)
        h->kb[j] = _mm256_add_epi64(h->rnd[j], b62);
    /* vpsllvd counts of 32 or more give 0: 2^(62 - s) mod 2^32 */
    h->kc = _mm256_sllv_epi32(_mm256_set1_epi32(1),
                              _mm256_sub_epi32(_mm256_set1_epi32(62), sh));
    const __m256i s24 = _mm256_cmpgt_epi32(_mm256_set1_epi32(24), sh);
    h->tb = _mm256_blendv_epi8(
        _mm256_set1_epi32(INT32_MAX),
        _mm256_sllv_epi32(_mm256_set1_epi32(1),
                          _mm256_add_epi32(sh, _mm256_set1_epi32(7))), s24);
    __m256i bad = _mm256_and_si256(
        _mm256_and_si256(mask, s24),
        _mm256_cmpgt_epi32(_mm256_set1_epi32(1 << 23), m));
    h->ntb = _mm256_sub_epi32(_mm256_setzero_si256(), h->tb);
    h->clampok = _mm256_testz_si256(bad, bad);
    h->fastres = a->residual && h->clampok && res_fits(a);
}

TGT static void epi8_setup(epi8 *e, const bp_qk_layer *a)
{
    const int res = a->residual;
    const int64_t v[E_N] = {
        [E_LO] = a->lo, [E_HI] = a->hi,
        [E_SATLO] = -BP_QRES_SAT, [E_SATHI] = BP_QRES_SAT,
        [E_RM] = res ? a->rm : 0, [E_RS] = res ? a->rs : 0,
        [E_RRND] = res ? rnd_of(a->rs) : 0,
        [E_FS] = res ? a->frac : 0, [E_FRND] = res ? rnd_of(a->frac) : 0,
    };
    for (int j = 0; j < E_N; j++)
        e->q[j] = _mm256_set1_epi64x(v[j]);
    const int rf = res && res_fits(a);
    e->rkb = _mm256_set1_epi64x(rf ? rnd_of(a->rs) + (INT64_C(1) << 62) : 0);
    e->rkc = _mm256_set1_epi32(
        rf ? (int32_t)(uint32_t)((uint64_t)1 << (62 - a->rs)) : 0);
    e->frnd = _mm256_set1_epi32(rf ? (int32_t)rnd_of(a->frac) : 0);
    e->rs = _mm256_set1_epi64x(rf ? a->rs : 0);
    e->fs = _mm_cvtsi32_si128(rf ? a->frac : 0);
    e->sat32 = _mm256_set1_epi32((int32_t)BP_QRES_SAT);
    e->nsat32 = _mm256_set1_epi32(-(int32_t)BP_QRES_SAT);
    e->lo32 = _mm256_set1_epi32(a->lo);
    e->hi32 = _mm256_set1_epi32(a->hi);
    e->pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                               -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1,
                               -1, -1, -1, -1, -1, -1);
}

/* 64-bit lanes clamped to [q[lo], q[hi]] */
#define CLAMP64(x, lo, hi) max64(min64((x), e->q[hi]), e->q[lo])

/* The 8 residual codes at idx (nc of them) as int32 lanes */
TGT static inline __m256i res8(const bp_qk_layer *a, const ch8 *h, int64_t idx)
{
    uint8_t rb[8] = {0};
    const uint8_t *src = (const uint8_t *)a->res + idx;
    if (h->nc == TC)
        memcpy(rb, src, 8);
    else
        memcpy(rb, src, (size_t)h->nc);
    __m128i r8 = _mm_loadl_epi64((const __m128i *)rb);
    return a->res_type == BP_QT_U8 ? _mm256_cvtepu8_epi32(r8)
                                   : _mm256_cvtepi8_epi32(r8);
}

/* round(x * m / 2^s) of the even (xe) and odd (xo) 64-bit products, whose
 * values fit int32: (x + rnd + 2^62) >> s, logical, is round(x / 2^s) +
 * 2^(62 - s), so its low 32 bits less kc = 2^(62 - s) mod 2^32 are the
 * value; int32 lanes in channel order */
TGT static inline __m256i round32(__m256i xe, __m256i xo, __m256i kbe,
                                  __m256i kbo, __m256i se, __m256i so,
                                  __m256i kc)
{
    xe = _mm256_srlv_epi64(_mm256_add_epi64(xe, kbe), se);
    xo = _mm256_srlv_epi64(_mm256_add_epi64(xo, kbo), so);
    return _mm256_sub_epi32(
        _mm256_blend_epi32(xe, _mm256_slli_epi64(xo, 32), 0xAA), kc);
}

/* The rescaled values of 8 channels with 64-bit arithmetic throughout
 * (AVX2 has no 64-bit arithmetic shift or min/max: both are built from
 * compares): any shift, and the residual add; int32 lanes in channel
 * order, within [lo, hi]. */
TGT static inline __m256i slow8(const bp_qk_layer *a, const ch8 *h,
                                const epi8 *e, int64_t idx, __m256i pe,
                                __m256i po)
{
    pe = rsr64(pe, h->rnd[0], h->s[0]);
    po = rsr64(po, h->rnd[1], h->s[1]);
    if (a->residual) {
        __m256i r = res8(a, h, idx);
        __m256i qe = _mm256_mul_epi32(r, e->q[E_RM]);
        __m256i qo = _mm256_mul_epi32(_mm256_srli_epi64(r, 32), e->q[E_RM]);
        qe = CLAMP64(rsr64(qe, e->q[E_RRND], e->q[E_RS]), E_SATLO, E_SATHI);
        qo = CLAMP64(rsr64(qo, e->q[E_RRND], e->q[E_RS]), E_SATLO, E_SATHI);
        pe = CLAMP64(pe, E_SATLO, E_SATHI);
        po = CLAMP64(po, E_SATLO, E_SATHI);
        pe = rsr64(_mm256_add_epi64(pe, qe), e->q[E_FRND], e->q[E_FS]);
        po = rsr64(_mm256_add_epi64(po, qo), e->q[E_FRND], e->q[E_FS]);
    }
    pe = CLAMP64(pe, E_LO, E_HI);
    po = CLAMP64(po, E_LO, E_HI);
    return _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
}

/* The rescaled values of 8 channels within [lo, hi], for all but store8's
 * inline case (plain, shifts >= FAST_S): out of line, so that store8 stays
 * small enough to be inlined into the kernels (outlined, it had cost the
 * example CNN's first layer a fifth more time). */
__attribute__((noinline)) TGT static __m256i rescale8(const bp_qk_layer *a,
                                                      const ch8 *h,
                                                      const epi8 *e,
                                                      int64_t idx, __m256i t)
{
    if (!(a->residual ? h->fastres : h->clampok))
        return slow8(a, h, e, idx, _mm256_mul_epi32(t, h->m[0]),
                     _mm256_mul_epi32(_mm256_srli_epi64(t, 32), h->m[1]));
    /* the rescale in 32 bits (16 instructions where the 64-bit emulation
     * of slow8 takes 27; with the residual add about 30 against 70, which
     * had been a sixth of the example CNN's residual layers) */
    if (!h->fast)
        t = _mm256_max_epi32(_mm256_min_epi32(t, h->tb), h->ntb);
    __m256i v = round32(_mm256_mul_epi32(t, h->m[0]),
                        _mm256_mul_epi32(_mm256_srli_epi64(t, 32), h->m[1]),
                        h->kb[0], h->kb[1], h->s[0], h->s[1], h->kc);
    if (a->residual) {
        const __m256i r = res8(a, h, idx), rm = e->q[E_RM];
        __m256i v2 = round32(_mm256_mul_epi32(r, rm),
                             _mm256_mul_epi32(_mm256_srli_epi64(r, 32), rm),
                             e->rkb, e->rkb, e->rs, e->rs, e->rkc);
        v = _mm256_max_epi32(_mm256_min_epi32(v, e->sat32), e->nsat32);
        v = _mm256_add_epi32(_mm256_add_epi32(v, v2), e->frnd);
        v = _mm256_sra_epi32(v, e->fs);
    }
    return _mm256_max_epi32(_mm256_min_epi32(v, e->hi32), e->lo32);
}

/* Channels h->c0 .. + nc of position p from the int32 sums t (lanes). */
TGT static inline void store8(void *y, const bp_qk_layer *a, const ch8 *h,
                              const epi8 *e, int64_t p, __m256i t)
{
    const int64_t idx = p * a->geo.m + h->c0;
    t = _mm256_add_epi32(t, h->bias);
    if (a->out_type == BP_QT_I32) {
        t = _mm256_max_epi32(_mm256_min_epi32(t, e->hi32), e->lo32);
        if (h->nc == TC) {
            _mm256_storeu_si256((__m256i *)((int32_t *)y + idx), t);
        } else {
            int32_t tmp[8];
            _mm256_storeu_si256((__m256i *)tmp, t);
            memcpy((int32_t *)y + idx, tmp, (size_t)h->nc * sizeof *tmp);
        }
        return;
    }
    __m256i v;
    if (h->fast && !a->residual) {
        /* inline: the path of almost every plain layer */
        v = round32(_mm256_mul_epi32(t, h->m[0]),
                    _mm256_mul_epi32(_mm256_srli_epi64(t, 32), h->m[1]),
                    h->kb[0], h->kb[1], h->s[0], h->s[1], h->kc);
        v = _mm256_max_epi32(_mm256_min_epi32(v, e->hi32), e->lo32);
    } else {
        v = rescale8(a, h, e, idx, t);
    }
    /* byte 0 of each lane, in order; every value is within [lo, hi] */
    v = _mm256_shuffle_epi8(v, e->pick);
    v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
    uint8_t *dst = (uint8_t *)y + idx;
    if (h->nc == TC) {
        _mm_storel_epi64((__m128i *)dst, _mm256_castsi256_si128(v));
    } else {
        uint8_t tmp[8];
        _mm_storel_epi64((__m128i *)tmp, _mm256_castsi256_si128(v));
        memcpy(dst, tmp, (size_t)h->nc);
    }
}

/* acc lanes [c0 k01, c0 k23, c1.., c1.. | c2.., c3..] for channels 0-3
 * (lo) and 4-7 (hi) -> the 8 channels' sums in order */
TGT static inline __m256i fold(__m256i lo, __m256i hi)
{
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xD8);
}

#define X6(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define DECL(i) __m256i a##i##0, a##i##1;
#define ZERO(i) a##i##0 = _mm256_setzero_si256(); a##i##1 = a##i##0;
#define LOADACC(i)                                                             \
    a##i##0 = _mm256_loadu_si256((const __m256i *)(acc + (i0 + i) * 16));      \
    a##i##1 = _mm256_loadu_si256((const __m256i *)(acc + (i0 + i) * 16 + 8));
#define SAVEACC(i)                                                             \
    _mm256_storeu_si256((__m256i *)(acc + (i0 + i) * 16), a##i##0);            \
    _mm256_storeu_si256((__m256i *)(acc + (i0 + i) * 16 + 8), a##i##1);
#define STEP(i)                                                                \
    {                                                                          \
        __m256i x = _mm256_broadcastq_epi64(                                   \
            _mm_loadl_epi64((const __m128i *)(r + g * TP * 4 + (i) * 4)));       \
        a##i##0 = _mm256_add_epi32(a##i##0, _mm256_madd_epi16(x, w0));         \
        a##i##1 = _mm256_add_epi32(a##i##1, _mm256_madd_epi16(x, w1));         \
    }
#define OUT(i)                                                                 \
    if (i < ni)                                                                \
        store8(y, a, h, e, pc + i0 + i, fold(a##i##0, a##i##1));

/* The loop of every GEMM kernel below: K slices of KC groups (a slice's
 * weights stay in L1 while all the positions pass over them), positions
 * [i_begin, i_end) N at a time, their partial sums kept in registers
 * within a slice and in acc between slices, the epilogue after the last.
 * RT is the row type, XN repeats a macro N times, INNER runs a slice. */
#define SLICE_LOOP(RT, rows, N, XN, DECL_, ZERO_, LOAD_, INNER, OUT_, SAVE_)   \
    const int64_t kp = a->kp, G = kp / 4;                                      \
    for (int64_t g0 = 0; g0 < G; g0 += KC) {                                   \
        const int64_t g1 = G - g0 < KC ? G : g0 + KC;                          \
        const int first = g0 == 0, last = g1 == G;                             \
        for (int64_t i0 = i_begin; i0 < i_end; i0 += N) {                      \
            const int64_t ni = i_end - i0 < N ? i_end - i0 : N;                \
            /* within tile i0 / TP, from its row i0 % TP */                    \
            const RT *r = rows + (i0 / TP) * TP * kp + (i0 % TP) * 4;          \
            XN(DECL_)                                                          \
            if (first) {                                                       \
                XN(ZERO_)                                                      \
            } else {                                                           \
                XN(LOAD_)                                                      \
            }                                                                  \
            INNER                                                              \
            if (last) {                                                        \
                XN(OUT_)                                                       \
            } else {                                                           \
                XN(SAVE_)                                                      \
            }                                                                  \
        }                                                                      \
    }

/* Positions [i_begin, i_end) of rows16 (kp int16 each, in tiles of TP
 * rows) x the 8 channels of h whose weights are wh ([group][32]), N at a
 * time (XN repeats a macro N times): half_run takes whole tiles of 6, and
 * half_run1 the positions of a partial tile one by one, so that a GEMV at
 * batch 1 computes its one position and not a tile of 6. */
#define X1(M) M(0)
#define HALF_RUN(NAME, XN, N)                                                  \
    __attribute__((noinline)) TGT static void NAME(                            \
        void *y, const int16_t *rows16, int64_t i_begin, int64_t i_end,        \
        int64_t pc, const bp_qk_layer *a, const ch8 *h, const int16_t *wh,     \
        int32_t *acc, const epi8 *e)                                           \
    {                                                                          \
        SLICE_LOOP(int16_t, rows16, N, XN, DECL, ZERO, LOADACC,                \
            for (int64_t g = g0; g < g1; g++) {                                \
                __m256i w0 = _mm256_loadu_si256((const __m256i *)(wh + g * 32)); \
                __m256i w1 = _mm256_loadu_si256((const __m256i *)(wh + g * 32 + 16)); \
                XN(STEP)                                                       \
            }, OUT, SAVEACC)                                                   \
    }
HALF_RUN(half_run, X6, TP)
HALF_RUN(half_run1, X1, 1)

/* Both halves of a block at once: 3 positions x 16 channels, 12
 * accumulators and one broadcast, the weights read as memory operands of
 * vpmaddwd (held in registers they would need 4 more than AVX2 has): 27
 * instructions per 192 products where half_run takes 35.  Forced with asm
 * because compilers keep a vector loaded three times in a register and
 * spill.  Rows are half_run's 6-position tiles, taken as two halves. */
#define X3(M) M(0) M(1) M(2)
_Static_assert(BP_QK_AVX2_FULL_TILE == 3, "full_run's steps are X3");
#define DECL16(i) __m256i c##i##0, c##i##1, c##i##2, c##i##3;
#define ZERO16(i)                                                              \
    c##i##0 = _mm256_setzero_si256(); c##i##1 = c##i##0; c##i##2 = c##i##0;    \
    c##i##3 = c##i##0;
#define LOADACC16(i)                                                           \
    c##i##0 = _mm256_loadu_si256((const __m256i *)(acc + (i0 + i) * 32));      \
    c##i##1 = _mm256_loadu_si256((const __m256i *)(acc + (i0 + i) * 32 + 8));  \
    c##i##2 = _mm256_loadu_si256((const __m256i *)(acc + (i0 + i) * 32 + 16)); \
    c##i##3 = _mm256_loadu_si256((const __m256i *)(acc + (i0 + i) * 32 + 24));
#define SAVEACC16(i)                                                           \
    _mm256_storeu_si256((__m256i *)(acc + (i0 + i) * 32), c##i##0);            \
    _mm256_storeu_si256((__m256i *)(acc + (i0 + i) * 32 + 8), c##i##1);        \
    _mm256_storeu_si256((__m256i *)(acc + (i0 + i) * 32 + 16), c##i##2);       \
    _mm256_storeu_si256((__m256i *)(acc + (i0 + i) * 32 + 24), c##i##3);
#define MADDM(acc_, x, p)                                                      \
    {                                                                          \
        __m256i t_;                                                            \
        __asm__("vpmaddwd %1, %2, %0"                                          \
                : "=x"(t_)                                                     \
                : "m"(*(const __m256i *)(p)), "x"(x));                         \
        acc_ = _mm256_add_epi32(acc_, t_);                                     \
    }
#define STEP16(i)                                                              \
    {                                                                          \
        __m256i x = _mm256_broadcastq_epi64(                                   \
            _mm_loadl_epi64((const __m128i *)(r + g * TP * 4 + (i) * 4)));       \
        MADDM(c##i##0, x, w0 + g * 32)                                         \
        MADDM(c##i##1, x, w0 + g * 32 + 16)                                    \
        MADDM(c##i##2, x, w1 + g * 32)                                         \
        MADDM(c##i##3, x, w1 + g * 32 + 16)                                    \
    }
#define OUT16(i)                                                               \
    if (i < ni) {                                                              \
        store8(y, a, h0, e, pc + i0 + i, fold(c##i##0, c##i##1));              \
        store8(y, a, h1, e, pc + i0 + i, fold(c##i##2, c##i##3));              \
    }

/* Positions [i_begin, i_end) x the 16 channels of h0 and h1, whose
 * weights are w0 and w1 ([group][32] each), N at a time: full_run 3,
 * full_run1 the last one or two; acc holds 32 partial sums per position. */
#define FULL_RUN(NAME, XN, N)                                                  \
    __attribute__((noinline)) TGT static void NAME(                            \
        void *y, const int16_t *rows16, int64_t i_begin, int64_t i_end,        \
        int64_t pc, const bp_qk_layer *a, const ch8 *h0, const ch8 *h1,        \
        const int16_t *w0, const int16_t *w1, int32_t *acc, const epi8 *e)     \
    {                                                                          \
        SLICE_LOOP(int16_t, rows16, N, XN, DECL16, ZERO16, LOADACC16,          \
            for (int64_t g = g0; g < g1; g++) {                                \
                XN(STEP16)                                                     \
            }, OUT16, SAVEACC16)                                               \
    }
FULL_RUN(full_run, X3, BP_QK_AVX2_FULL_TILE)
FULL_RUN(full_run1, X1, 1)

/* The int32 sums of one 16-channel block, no epilogue: full_run's kernel
 * with bias 0 and no clamp (a layer of int32 output and m = 16). */
TGT void bp_qk_avx2_gemm_i32(int32_t *z, const int16_t *rows16, int64_t np,
                             int64_t kp, const int16_t *w16, int32_t *acc)
{
    static const int32_t zero[16];
    bp_qk_layer zl;
    memset(&zl, 0, sizeof zl);
    zl.geo.m = 16;
    zl.kp = kp;
    zl.out_type = BP_QT_I32;
    zl.lo = INT32_MIN;
    zl.hi = INT32_MAX;
    ch8 h0, h1;
    epi8 e;
    epi8_setup(&e, &zl);
    ch8_setup(&h0, &zl, zero, 0, TC);
    ch8_setup(&h1, &zl, zero, TC, TC);
    const int64_t n3 = np / BP_QK_AVX2_FULL_TILE * BP_QK_AVX2_FULL_TILE;
    const int16_t *w1 = w16 + kp / 4 * 32;
    full_run(z, rows16, 0, n3, 0, &zl, &h0, &h1, w16, w1, acc, &e);
    full_run1(z, rows16, n3, np, 0, &zl, &h0, &h1, w16, w1, acc, &e);
}

TGT void bp_qk_avx2_store_sums(void *y, const bp_qk_layer *a,
                               const int32_t *bias, int64_t c0, int64_t mb,
                               const int64_t *pos, const int32_t *t, int64_t n)
{
    ch8 h0, h1;
    epi8 e;
    epi8_setup(&e, a);
    ch8_setup(&h0, a, bias, c0, mb < TC ? mb : TC);
    if (mb > TC)
        ch8_setup(&h1, a, bias, c0 + TC, mb - TC);
    for (int64_t i = 0; i < n; i++) {
        const __m256i *v = (const __m256i *)(t + i * 16);
        store8(y, a, &h0, &e, pos[i], _mm256_loadu_si256(v));
        if (mb > TC)
            store8(y, a, &h1, &e, pos[i], _mm256_loadu_si256(v + 1));
    }
}

/* ---- weights of at most 6 bits: unsigned-by-signed byte products ------- */

/* vpmaddubsw's int16 pair sums are exact while |w| <= 64 (255 * 64 * 2 <
 * 2^15), and several can be added in int16 before vpmaddwd by ones widens
 * them: F groups of 4 k while F * 510 * 2^(b-1) < 2^15.  Per 8 channels x
 * 4 k that is one multiply plus 1/F of one, where the int16 path takes two
 * (4-bit weights: 1.8x fewer multiplies).  7-bit weights (F = 1) gain
 * nothing that way and lose the int16 path's register tiling: on ResNet-18
 * (AVX2 kernels on a Zen 5, 2 threads, three interleaved rounds) all-7-bit
 * took 25.5-27.4 ms on bytes and 14.6-18.5 ms on int16, as all-8-bit does
 * (13.8-18.8 ms); 6 bits (F = 2) tied and 5 bits were faster on bytes. */
int bp_qk_avx2_narrow(const bp_qk_layer *a) { return a->w_bits <= 6; }

static int flush_groups(int bits)
{
    int f = 32767 / (510 * (1 << (bits - 1)));
    return f < 1 ? 1 : f > 16 ? 16 : f;
}

TGT void bp_qk_avx2_pack_rows8(uint8_t *dst, const uint8_t *src, int64_t lds,
                               int64_t np, int64_t kp)
{
    const int64_t G = kp / 4, pad = (np + TP - 1) / TP * TP;
    for (int64_t i = 0; i < pad; i++) {
        uint8_t *d = dst + (i / TP) * G * TP * 4 + (i % TP) * 4;
        if (i >= np) {
            for (int64_t g = 0; g < G; g++)
                memset(d + g * TP * 4, 0, 4);
            continue;
        }
        const uint8_t *s = src + i * lds;
        for (int64_t g = 0; g < G; g++)
            memcpy(d + g * TP * 4, s + 4 * g, 4);
    }
}

/* Block codes -> [half][group][8 channels x 4 k] bytes, zero-padded. */
TGT static void group_block8(int8_t *w8, const int8_t *wb, int64_t mb, int64_t k,
                         int64_t kp)
{
    const int64_t kt = k % 4, kf = k - kt, G = kp / 4;
    if (mb == BP_QBLOCK) {
        /* a group's 64 bytes are channels 0-7 then 8-15 */
        for (int64_t g = 0; g < kf / 4; g++) {
            memcpy(w8 + g * 32, wb + g * 64, 32);
            memcpy(w8 + G * 32 + g * 32, wb + g * 64 + 32, 32);
        }
    } else {
        /* masked loads of channels 0-7 and 8-15, as in widen_block */
        const __m256i m0 = first_lanes(mb), m1 = first_lanes(mb - TC);
        for (int64_t g = 0; g < kf / 4; g++) {
            const int *s = (const int *)(wb + g * 4 * mb);
            _mm256_storeu_si256((__m256i *)(w8 + g * 32), _mm256_maskload_epi32(s, m0));
            _mm256_storeu_si256((__m256i *)(w8 + G * 32 + g * 32),
                                _mm256_maskload_epi32(s + TC, m1));
        }
    }
    if (kt) {
        memset(w8 + (kf / 4) * 32, 0, 32);
        memset(w8 + G * 32 + (kf / 4) * 32, 0, 32);
    }
    for (int64_t r = 0; r < mb && kt; r++)
        memcpy(w8 + (r / TC) * G * 32 + (kf / 4) * 32 + (r % TC) * 4,
               wb + kf * mb + r * kt, (size_t)kt);
}

#define DECL8(i) __m256i a##i, p##i;
#define ZERO8(i) a##i = _mm256_setzero_si256();
#define LOADACC8(i) a##i = _mm256_loadu_si256((const __m256i *)(acc + (i0 + i) * 8));
#define SAVEACC8(i) _mm256_storeu_si256((__m256i *)(acc + (i0 + i) * 8), a##i);
#define PZERO8(i) p##i = _mm256_setzero_si256();
#define STEP8(i)                                                               \
    p##i = _mm256_add_epi16(p##i, _mm256_maddubs_epi16(                        \
        _mm256_set1_epi32(ld32(r + gg * TP * 4 + (i) * 4)), w));
#define FLUSH8(i) a##i = _mm256_add_epi32(a##i, _mm256_madd_epi16(p##i, ones));
#define OUT8(i)                                                                \
    if (i < ni)                                                                \
        store8(y, a, h, e, pc + i0 + i, a##i);

/* As half_run, from uint8 rows and int8 weights, F groups per flush:
 * half_run8 whole tiles, half_run81 the positions of a partial one. */
#define HALF_RUN8(NAME, XN, N)                                                 \
    __attribute__((noinline)) TGT static void NAME(                            \
        void *y, const uint8_t *rows8, int64_t i_begin, int64_t i_end,         \
        int64_t pc, const bp_qk_layer *a, const ch8 *h, const int8_t *wh,      \
        int32_t *acc, const epi8 *e, int F)                                    \
    {                                                                          \
        const __m256i ones = _mm256_set1_epi16(1);                             \
        SLICE_LOOP(uint8_t, rows8, N, XN, DECL8, ZERO8, LOADACC8,              \
            for (int64_t g = g0; g < g1; g += F) {                             \
                const int64_t ge = g1 - g < F ? g1 : g + F;                    \
                XN(PZERO8)                                                     \
                for (int64_t gg = g; gg < ge; gg++) {                          \
                    __m256i w = _mm256_loadu_si256((const __m256i *)(wh + gg * 32)); \
                    XN(STEP8)                                                  \
                }                                                              \
                XN(FLUSH8)                                                     \
            }, OUT8, SAVEACC8)                                                 \
    }
HALF_RUN8(half_run8, X6, TP)
HALF_RUN8(half_run81, X1, 1)

TGT void bp_qk_avx2_gemm(void *y, const void *rows, int64_t np, int64_t pc,
                         const bp_qk_layer *a, int64_t grp, int64_t b0,
                         int64_t b1, const int8_t *w0, void *wbuf,
                         int32_t *acc, int xor80)
{
    const int64_t G = a->kp / 4;
    const int narrow = bp_qk_avx2_narrow(a), F = flush_groups(a->w_bits);
    /* whole steps, then the rest one position at a time */
    const int64_t n3 = np / BP_QK_AVX2_FULL_TILE * BP_QK_AVX2_FULL_TILE;
    const int64_t n6 = np / TP * TP;
    epi8 e;
    epi8_setup(&e, a);
    for (int64_t b = b0; b < b1; b++) {
        const int64_t r0 = b * BP_QBLOCK;
        const int64_t mb = a->mg - r0 < BP_QBLOCK ? a->mg - r0 : BP_QBLOCK;
        const int8_t *wb = w0 + (b - b0) * BP_QBLOCK * a->k;
        if (narrow)
            group_block8(wbuf, wb, mb, a->k, a->kp);
        else
            widen_block(wbuf, wb, mb, a->k, a->kp);
        if (!narrow && mb > TC) {
            ch8 h0, h1;
            const int32_t *bs = xor80 ? a->bias_x : a->bias;
            ch8_setup(&h0, a, bs, grp * a->mg + r0, TC);
            ch8_setup(&h1, a, bs, grp * a->mg + r0 + TC, mb - TC);
            const int16_t *w16 = wbuf;
            full_run(y, rows, 0, n3, pc, a, &h0, &h1, w16, w16 + G * 32, acc, &e);
            full_run1(y, rows, n3, np, pc, a, &h0, &h1, w16, w16 + G * 32, acc,
                      &e);
            continue;
        }
        for (int64_t hf = 0; hf * TC < mb; hf++) {
            ch8 h;
            int64_t nc = mb - hf * TC < TC ? mb - hf * TC : TC;
            ch8_setup(&h, a, xor80 ? a->bias_x : a->bias,
                      grp * a->mg + r0 + hf * TC, nc);
            if (narrow) {
                const int8_t *w8 = (const int8_t *)wbuf + hf * G * 32;
                half_run8(y, rows, 0, n6, pc, a, &h, w8, acc, &e, F);
                half_run81(y, rows, n6, np, pc, a, &h, w8, acc, &e, F);
            } else {
                const int16_t *w16 = (const int16_t *)wbuf + hf * G * 32;
                half_run(y, rows, 0, n6, pc, a, &h, w16, acc, &e);
                half_run1(y, rows, n6, np, pc, a, &h, w16, acc, &e);
            }
        }
    }
}

/* ---- input quantization ------------------------------------------------ */

/* bp_act_quantize 8 at a time, in double as it is: x / scale, clamped (NaN
 * clamps to lo, then is zeroed), truncated, and the half-away step added
 * from the exact fraction. */
TGT int64_t bp_qk_avx2_quantize(uint8_t *dst, const float *x, int64_t n,
                                double scale, int32_t lo, int32_t hi)
{
    const __m256d vs = _mm256_set1_pd(scale), vlo = _mm256_set1_pd(lo),
                  vhi = _mm256_set1_pd(hi), half = _mm256_set1_pd(0.5),
                  mhalf = _mm256_set1_pd(-0.5), one = _mm256_set1_pd(1.0);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i t[2];
        for (int h = 0; h < 2; h++) {
            __m256d v = _mm256_div_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * h)), vs);
            __m256d ord = _mm256_cmp_pd(v, v, _CMP_ORD_Q);
            __m256d c = _mm256_min_pd(_mm256_max_pd(v, vlo), vhi);
            __m256d tr = _mm256_round_pd(c, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            __m256d f = _mm256_sub_pd(c, tr);
            tr = _mm256_add_pd(tr, _mm256_and_pd(_mm256_cmp_pd(f, half, _CMP_GE_OQ), one));
            tr = _mm256_sub_pd(tr, _mm256_and_pd(_mm256_cmp_pd(f, mhalf, _CMP_LE_OQ), one));
            t[h] = _mm256_cvttpd_epi32(_mm256_and_pd(tr, ord));
        }
        /* every value is in [lo, hi], within int8 or uint8 */
        __m128i w = _mm_packs_epi32(t[0], t[1]);
        _mm_storel_epi64((__m128i *)(dst + i),
                         lo < 0 ? _mm_packs_epi16(w, w) : _mm_packus_epi16(w, w));
    }
    return i;
}

#else /* not x86-64 GCC/Clang */

int bp_qk_x86_avx2_available(void) { return 0; }

int64_t bp_qk_avx2_unpack(int8_t *dst, const uint8_t *src, int64_t n, int bits)
{
    (void)dst; (void)src; (void)n; (void)bits;
    return 0;
}

int64_t bp_qk_avx2_quantize(uint8_t *dst, const float *x, int64_t n,
                            double scale, int32_t lo, int32_t hi)
{
    (void)dst; (void)x; (void)n; (void)scale; (void)lo; (void)hi;
    return 0;
}

size_t bp_qk_avx2_wbytes(const bp_qk_layer *a)
{
    (void)a;
    return 0;
}

void bp_qk_avx2_widen_rows(int16_t *dst, const uint8_t *src, int64_t lds,
                           int64_t np, int64_t kp, int sign)
{
    (void)dst; (void)src; (void)lds; (void)np; (void)kp; (void)sign;
}

int bp_qk_avx2_narrow(const bp_qk_layer *a)
{
    (void)a;
    return 0;
}

void bp_qk_avx2_pack_rows8(uint8_t *dst, const uint8_t *src, int64_t lds,
                           int64_t np, int64_t kp)
{
    (void)dst; (void)src; (void)lds; (void)np; (void)kp;
}

void bp_qk_avx2_gemm(void *y, const void *rows, int64_t np, int64_t pc,
                     const bp_qk_layer *a, int64_t grp, int64_t b0, int64_t b1,
                     const int8_t *w0, void *wbuf, int32_t *acc, int xor80)
{
    (void)y; (void)rows; (void)np; (void)pc; (void)a; (void)grp; (void)b0;
    (void)b1; (void)w0; (void)wbuf; (void)acc; (void)xor80;
}

void bp_qk_avx2_gemm_i32(int32_t *z, const int16_t *rows16, int64_t np,
                         int64_t kp, const int16_t *w16, int32_t *acc)
{
    (void)z; (void)rows16; (void)np; (void)kp; (void)w16; (void)acc;
}

void bp_qk_avx2_store_sums(void *y, const bp_qk_layer *a, const int32_t *bias,
                           int64_t c0, int64_t mb, const int64_t *pos,
                           const int32_t *t, int64_t n)
{
    (void)y; (void)a; (void)bias; (void)c0; (void)mb; (void)pos; (void)t;
    (void)n;
}

#endif
