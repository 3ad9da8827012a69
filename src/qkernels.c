/* qkernels.c - portable C integer kernels, weight packing, and the run-time
 * choice of instruction set (the AVX-512 VNNI GEMM is in qkernels_x86.c, the
 * AVX2 one in qkernels_avx2.c).
 * See qkernels.h for the layouts and the exact arithmetic of each kernel. */
#include "qkernels.h"
#include "qkernels_impl.h"
#include "status.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

/* ---- packed weights --------------------------------------------------------- */

int64_t bp_qw_index(int64_t m, int64_t k, int64_t r, int64_t kk)
{
    int64_t r0 = r / BP_QBLOCK * BP_QBLOCK;
    int64_t mb = m - r0 < BP_QBLOCK ? m - r0 : BP_QBLOCK, rr = r - r0;
    int64_t kt = k % BP_QKGROUP, kf = k - kt, base = r0 * k;
    if (kk < kf)
        return base + kk / BP_QKGROUP * mb * BP_QKGROUP + rr * BP_QKGROUP +
               kk % BP_QKGROUP;
    return base + kf * mb + rr * kt + (kk - kf);
}

void bp_qpack(uint8_t *dst, const int8_t *codes, int64_t n, int bits)
{
    if (bits == 8) {
        memcpy(dst, codes, (size_t)n);
        return;
    }
    memset(dst, 0, (size_t)BP_QPACK_BYTES(n, bits));
    unsigned mask = (1u << bits) - 1;
    for (int64_t i = 0; i < n; i++) {
        int64_t bit = i * bits;
        unsigned v = (unsigned)(uint8_t)codes[i] & mask;
        unsigned off = (unsigned)(bit & 7);
        dst[bit >> 3] |= (uint8_t)(v << off);
        if (off + (unsigned)bits > 8)
            dst[(bit >> 3) + 1] |= (uint8_t)(v >> (8 - off));
    }
}

static int8_t sext(unsigned v, int bits)
{
    int sign = 1 << (bits - 1);
    return (int8_t)(((int)v ^ sign) - sign);
}

/* Per-byte tables for the 4- and 2-bit layouts: one load gives the two or
 * four sign-extended codes of a byte. */
static uint8_t tab4[256][2], tab2[256][4];
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

static void tab_init(void)
{
    for (unsigned b = 0; b < 256; b++) {
        tab4[b][0] = (uint8_t)sext(b & 15, 4);
        tab4[b][1] = (uint8_t)sext(b >> 4, 4);
        for (unsigned j = 0; j < 4; j++)
            tab2[b][j] = (uint8_t)sext((b >> (2 * j)) & 3, 2);
    }
}

/* 8 codes of B bits are B whole bytes, read as one little-endian word
 * (assembled byte by byte: endian-neutral, and one load for the compiler). */
#define UNPACK8(B)                                                              \
    static int64_t unpack8_##B(int8_t *dst, const uint8_t *src, int64_t n)     \
    {                                                                           \
        int64_t i = 0;                                                          \
        for (; i + 8 <= n; i += 8) {                                            \
            const uint8_t *p = src + i / 8 * B;                                 \
            uint64_t v = 0;                                                     \
            for (int j = 0; j < B; j++)                                         \
                v |= (uint64_t)p[j] << (8 * j);                                 \
            for (int j = 0; j < 8; j++)                                         \
                dst[i + j] = (int8_t)((int64_t)(v << (64 - B * (j + 1))) >>    \
                                      (64 - B));                                \
        }                                                                       \
        return i;                                                               \
    }
UNPACK8(3)
UNPACK8(5)
UNPACK8(6)
UNPACK8(7)

void bp_qunpack(int8_t *dst, const uint8_t *src, int64_t n, int bits)
{
    int64_t i = 0;
    if (bits == 8) {
        memcpy(dst, src, (size_t)n);
        return;
    }
    if (bp_qk_isa_get() == BP_QK_AVX512VNNI)
        i = bp_qk_x86_unpack(dst, src, n, bits);
    else if (bp_qk_isa_get() == BP_QK_AVX2)
        i = bp_qk_avx2_unpack(dst, src, n, bits);
    switch (bits) {
    case 4:
        pthread_once(&tab_once, tab_init);
        for (; i + 2 <= n; i += 2)
            memcpy(dst + i, tab4[src[i >> 1]], 2);
        break;
    case 2:
        pthread_once(&tab_once, tab_init);
        for (; i + 4 <= n; i += 4)
            memcpy(dst + i, tab2[src[i >> 2]], 4);
        break;
    case 3: i += unpack8_3(dst + i, src + i / 8 * 3, n - i); break;
    case 5: i += unpack8_5(dst + i, src + i / 8 * 5, n - i); break;
    case 6: i += unpack8_6(dst + i, src + i / 8 * 6, n - i); break;
    case 7: i += unpack8_7(dst + i, src + i / 8 * 7, n - i); break;
    default: break;
    }
    /* the last codes, bit by bit */
    for (; i < n; i++)
        dst[i] = (int8_t)bp_qpack_get(src, i, bits);
}

int bp_qpack_get(const uint8_t *src, int64_t i, int bits)
{
    unsigned v = 0;
    for (int j = 0; j < bits; j++) {
        int64_t bit = i * bits + j;
        v |= (unsigned)((src[bit >> 3] >> (bit & 7)) & 1) << j;
    }
    return sext(v, bits);
}

/* ---- constants of the vector unpackers (qkernels_impl.h) --------------------- */

#define OD_LO(b, t) ((t) * (b) / 8)
#define OD_B(b, t) OD_LO(b, t), OD_LO(b, t) + 1
#define OD_BYTES(b)                                                            \
    {OD_B(b, 0), OD_B(b, 1), OD_B(b, 2), OD_B(b, 3),                           \
     OD_B(b, 4), OD_B(b, 5), OD_B(b, 6), OD_B(b, 7)}
#define OD_EACH(F, b) {F(b, 0), F(b, 1), F(b, 2), F(b, 3),                     \
                       F(b, 4), F(b, 5), F(b, 6), F(b, 7)}
#define OD_S(b, t) (int16_t)((t) * (b) % 8)
#define OD_M(b, t) (int16_t)(1 << (8 - (t) * (b) % 8))
const int8_t bp_qk_odd_bytes[4][16] = {OD_BYTES(3), OD_BYTES(5), OD_BYTES(6),
                                       OD_BYTES(7)};
const int16_t bp_qk_odd_shift[4][8] = {OD_EACH(OD_S, 3), OD_EACH(OD_S, 5),
                                       OD_EACH(OD_S, 6), OD_EACH(OD_S, 7)};
const int16_t bp_qk_odd_mul[4][8] = {OD_EACH(OD_M, 3), OD_EACH(OD_M, 5),
                                     OD_EACH(OD_M, 6), OD_EACH(OD_M, 7)};

/* ---- instruction sets -------------------------------------------------------- */

static const char *const isa_names[BP_QK_ISA_COUNT] = {"portable",
                                                       "avx512-vnni", "avx2"};
static int isa_current = -1;

bp_qk_isa bp_qk_isa_best(void)
{
    static int best = -1;
    if (best < 0)
        best = bp_qk_x86_vnni_available()   ? BP_QK_AVX512VNNI
               : bp_qk_x86_avx2_available() ? BP_QK_AVX2
                                            : BP_QK_PORTABLE;
    return (bp_qk_isa)best;
}

bp_qk_isa bp_qk_isa_get(void)
{
    if (isa_current < 0)
        isa_current = bp_qk_isa_best();
    return (bp_qk_isa)isa_current;
}

int bp_qk_isa_set(bp_qk_isa isa)
{
    if (isa < 0 || isa >= BP_QK_ISA_COUNT)
        return bp_fail(BP_EINVAL, "instruction set %d unknown", (int)isa);
    if (isa == BP_QK_AVX512VNNI && !bp_qk_x86_vnni_available())
        return bp_fail(BP_EUNSUPPORTED, "this CPU lacks AVX-512 VNNI");
    if (isa == BP_QK_AVX2 && !bp_qk_x86_avx2_available())
        return bp_fail(BP_EUNSUPPORTED, "this CPU lacks AVX2 and BMI2");
    isa_current = isa;
    return BP_OK;
}

const char *bp_qk_isa_name(bp_qk_isa isa)
{
    return isa >= 0 && isa < BP_QK_ISA_COUNT ? isa_names[isa] : "?";
}

int bp_qk_tile_positions(int w_bits)
{
    /* every width and instruction set alike: VNNI runs whole tiles of 12
     * positions and the rest 4 and 1 at a time, AVX2 whole steps of 3 or 6
     * and the rest one at a time, the portable loops one at a time */
    (void)w_bits;
    return 1;
}

/* ---- layers ----------------------------------------------------------------- */

int64_t bp_qk_layer_positions(const bp_qk_layer *a)
{
    return a->geo.n * a->geo.oh * a->geo.ow;
}

int64_t bp_qk_layer_blocks(const bp_qk_layer *a)
{
    return (a->mg + BP_QBLOCK - 1) / BP_QBLOCK;
}

/* Positions per packed chunk: about 320 KiB of rows (with the band and a
 * weight panel, within a 1 MiB L2), a multiple of 48 (every tile height
 * divides it).  Every weight panel is read once per chunk, so the late
 * layers (7x7 positions of 4608 bytes) must fit one chunk: at 128 KiB their
 * 49 positions took two, and the weights were streamed twice. */
int64_t bp_qk_layer_chunk(const bp_qk_layer *a)
{
    int64_t c = (327680 / (a->kp ? a->kp : 1)) / BP_QK_TILE * BP_QK_TILE;
    return c < 48 ? 48 : c;
}

/* Blocks unpacked at a time when the weights are read packed. */
#define UNPACK_BLOCKS 2

static size_t band_bytes(const bp_qk_layer *a);

/* scratch: rows | unpacked weight blocks | padded input band */
static size_t rows_bytes(const bp_qk_layer *a)
{
    return (size_t)((bp_qk_layer_chunk(a) + BP_QK_ROWPAD) * a->kp) + 64;
}

static size_t wbuf_bytes(const bp_qk_layer *a)
{
    return (size_t)(UNPACK_BLOCKS * BP_QBLOCK * a->k) + 8 + 64;
}

/* AVX2 only: int16 rows | int16 weight block | partial sums (32 int32 per
 * position: a whole block's), 64-aligned */
static size_t al64(size_t n) { return (n + 63) / 64 * 64; }

static size_t avx2_rows_bytes(const bp_qk_layer *a)
{
    return al64((size_t)((bp_qk_layer_chunk(a) + BP_QK_ROWPAD) * a->kp) * 2);
}

static size_t avx2_acc_bytes(const bp_qk_layer *a)
{
    return al64((size_t)(bp_qk_layer_chunk(a) + BP_QK_ROWPAD) * 32 * 4);
}

static size_t avx2_bytes(const bp_qk_layer *a)
{
    if (bp_qk_isa_get() != BP_QK_AVX2)
        return 0;
    return avx2_rows_bytes(a) + al64(bp_qk_avx2_wbytes(a)) + avx2_acc_bytes(a) + 64;
}

/* Whether this layer runs by Winograd (qwino_avx2.c) on the current
 * instruction set. */
static int layer_wino(const bp_qk_layer *a)
{
    return bp_qk_isa_get() == BP_QK_AVX2 && bp_qk_wino_ok(a);
}

size_t bp_qk_layer_scratch(const bp_qk_layer *a)
{
    if (layer_wino(a))
        return bp_qk_wino_scratch(a);
    return rows_bytes(a) + wbuf_bytes(a) + band_bytes(a) + 64 + avx2_bytes(a);
}

int64_t bp_qk_layer_unit(const bp_qk_layer *a)
{
    return layer_wino(a) ? 2 * a->geo.ow : BP_QK_TILE;
}

int bp_qk_layer_shared_ok(const bp_qk_layer *a)
{
    return layer_wino(a) && bp_qk_wino_one_chunk(a);
}

void bp_qk_layer_run_shared(void *y, const void *x, const bp_qk_layer *a,
                            int64_t grp, atomic_llong *next, void *scratch)
{
    bp_qk_wino_run(y, x, a, 0, bp_qk_layer_positions(a), grp, 0,
                   bp_qk_layer_blocks(a), next, scratch);
}

int bp_qk_layer_by_blocks(const bp_qk_layer *a)
{
    /* per thread, a split by positions transforms every block's weights
     * (16 x cg x 16 values each) and its share of the input (16 x tiles x
     * cg); a split by blocks its share of the weights and all the input */
    return layer_wino(a) &&
           bp_qk_layer_blocks(a) * BP_QBLOCK > bp_qk_wino_tiles(&a->geo);
}

/* A 1x1, stride-1, unpadded conv (or a Gemm) reads its rows straight from
 * the input when they need no padding to a multiple of 4. */
static int layer_direct(const bp_qk_layer *a, int xor80)
{
    const bp_conv_geom *g = &a->geo;
    return !xor80 && g->kh == 1 && g->kw == 1 && g->stride_h == 1 &&
           g->stride_w == 1 && g->pad_t == 0 && g->pad_l == 0 &&
           g->oh == g->h && g->ow == g->w && a->cg % BP_QKGROUP == 0;
}

/* Copies and fills of a few bytes, inlined: the rows of small convolutions
 * are built from runs of 1 to 64 bytes, where a libc call costs more than
 * the copy. */
static inline void copy_small(uint8_t *dst, const uint8_t *src, int64_t n)
{
    for (; n >= 64; n -= 64, dst += 64, src += 64)
        memcpy(dst, src, 64);
    for (; n >= 16; n -= 16, dst += 16, src += 16)
        memcpy(dst, src, 16);
    if (n >= 8) {
        memcpy(dst, src, 8);
        n -= 8, dst += 8, src += 8;
    }
    if (n >= 4) {
        memcpy(dst, src, 4);
        n -= 4, dst += 4, src += 4;
    }
    if (n >= 2) {
        memcpy(dst, src, 2);
        n -= 2, dst += 2, src += 2;
    }
    if (n)
        *dst = *src;
}

/* dst = src ^ 0x80: int8 codes as uint8 x + 128 */
static inline void copy_xor(uint8_t *restrict dst, const uint8_t *restrict src,
                            int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            dst[i + j] = src[i + j] ^ 0x80;
    for (; i < n; i++)
        dst[i] = src[i] ^ 0x80;
}

static inline void fill_small(uint8_t *dst, uint8_t v, int64_t n)
{
    if (n > 64) {
        memset(dst, v, (size_t)n);
        return;
    }
    uint8_t pat[16];
    memset(pat, v, 16);
    for (; n >= 16; n -= 16, dst += 16)
        memcpy(dst, pat, 16);
    if (n >= 8) {
        memcpy(dst, pat, 8);
        n -= 8, dst += 8;
    }
    if (n >= 4) {
        memcpy(dst, pat, 4);
        n -= 4, dst += 4;
    }
    if (n >= 2) {
        memcpy(dst, pat, 2);
        n -= 2, dst += 2;
    }
    if (n)
        *dst = v;
}

/* The padded input band rows are copied from: columns from ix = -pad_l to
 * the last one any window reaches (at least the image), rows for at most
 * band_out_rows() output rows of one sample, group grp's channels only. */
static int64_t band_width(const bp_conv_geom *g)
{
    int64_t ixmax = (g->ow - 1) * g->stride_w - g->pad_l + (g->kw - 1) * g->dil_w;
    return (ixmax > g->w - 1 ? ixmax : g->w - 1) + g->pad_l + 1;
}

static int64_t band_out_rows(const bp_qk_layer *a)
{
    int64_t r = bp_qk_layer_chunk(a) / a->geo.ow + 2;
    return r < a->geo.oh ? r : a->geo.oh;
}

static size_t band_bytes(const bp_qk_layer *a)
{
    const bp_conv_geom *g = &a->geo;
    int64_t rows = (band_out_rows(a) - 1) * g->stride_h + (g->kh - 1) * g->dil_h + 1;
    return (size_t)(rows * band_width(g) * a->cg);
}

/* Rows of positions [p0, p0 + np) of group grp -> rows (np, kp): the
 * (ky, kx, c) taps of each output position, code 0 in the padding, zeros
 * past k; xor80 flips the sign bit (int8 x -> uint8 x + 128).  The input
 * rows a run of positions reads are first copied into a padded band (the
 * padding, the sign flip and the group's channels dealt with once), so that
 * every window is in bounds and its kw taps of one kernel row are kw * cg
 * contiguous bytes (without dilation). */
static void pack_rows(uint8_t *rows, const uint8_t *x, const bp_qk_layer *a,
                      int64_t p0, int64_t np, int64_t grp, int xor80,
                      uint8_t *band)
{
    /* geometry in locals: byte stores may alias anything behind a pointer */
    const int64_t cg = a->cg, c = a->geo.c, kp = a->kp, tail = a->kp - a->k;
    const int64_t h = a->geo.h, w = a->geo.w, oh = a->geo.oh, ow = a->geo.ow;
    const int64_t kh = a->geo.kh, kw = a->geo.kw;
    const int64_t sh = a->geo.stride_h, sw = a->geo.stride_w;
    const int64_t dh = a->geo.dil_h, dw = a->geo.dil_w;
    const int64_t pt = a->geo.pad_t, pl = a->geo.pad_l;
    const int64_t wb = band_width(&a->geo), rowb = wb * cg;
    const int64_t ohw = oh * ow, maxrows = band_out_rows(a), span = kw * cg;
    const uint8_t padv = xor80 ? 0x80 : 0;
    int64_t i = 0;
    while (i < np) {
        int64_t p = p0 + i, n = p / ohw, oya = p % ohw / ow;
        int64_t end = p0 + np, lim = n * ohw + (oya + maxrows) * ow;
        end = end < lim ? end : lim;
        end = end < (n + 1) * ohw ? end : (n + 1) * ohw;
        int64_t oyb = (end - 1 - n * ohw) / ow;
        int64_t iylo = oya * sh - pt, iyhi = oyb * sh - pt + (kh - 1) * dh;
        for (int64_t iy = iylo; iy <= iyhi; iy++) {
            uint8_t *br = band + (iy - iylo) * rowb;
            if (iy < 0 || iy >= h) {
                memset(br, padv, (size_t)rowb);
                continue;
            }
            memset(br, padv, (size_t)(pl * cg));
            uint8_t *mid = br + pl * cg;
            const uint8_t *src = x + ((n * h + iy) * w) * c + grp * cg;
            if (cg == c) {
                if (xor80)
                    copy_xor(mid, src, w * c);
                else
                    memcpy(mid, src, (size_t)(w * c));
            } else {
                for (int64_t ix = 0; ix < w; ix++) {
                    if (xor80)
                        copy_xor(mid + ix * cg, src + ix * c, cg);
                    else
                        copy_small(mid + ix * cg, src + ix * c, cg);
                }
            }
            int64_t right = wb - pl - w;
            if (right > 0)
                memset(mid + w * cg, padv, (size_t)(right * cg));
        }
        /* positions walk (oy, ox) by increments: no division per position */
        int64_t oy = oya, ox = p % ow;
        for (; p0 + i < end; i++, ox = ox + 1 == ow ? 0 : ox + 1,
                               oy = ox == 0 ? oy + 1 : oy) {
            uint8_t *dst = rows + i * kp;
            const uint8_t *base = band + (oy * sh - pt - iylo) * rowb + ox * sw * cg;
            for (int64_t ky = 0; ky < kh; ky++) {
                const uint8_t *sr = base + ky * dh * rowb;
                if (dw == 1) {
                    /* a whole 8 or 16 bytes, or 32-byte pieces: the excess
                     * (at most 31 bytes written, and read past the band)
                     * lands where the next copy, the tail fill or the next
                     * row goes, all inside the scratch's slack.  16-byte
                     * pieces in a loop of unknown count (copy_small) made
                     * this copy a quarter of a small layer's time; one or
                     * two 32-byte pieces per kernel row, 12% of the example
                     * CNN's 8x8x16 layers less */
                    if (span <= 8)
                        memcpy(dst, sr, 8);
                    else if (span <= 16)
                        memcpy(dst, sr, 16);
                    else
                        for (int64_t j = 0; j < span; j += 32)
                            memcpy(dst + j, sr + j, 32);
                    dst += span;
                } else {
                    for (int64_t kx = 0; kx < kw; kx++, dst += cg)
                        copy_small(dst, sr + kx * dw * cg, cg);
                }
            }
            if (tail) /* fewer than 4 bytes; the excess as above */
                memset(dst, 0, 4);
        }
    }
}

/* The epilogue of one output element, shared by the portable GEMM and the
 * tails of the vector one. */
static inline void epilogue(void *y, const bp_qk_layer *a, int64_t p, int64_t c,
                            int64_t t)
{
    int64_t idx = p * a->geo.m + c, v;
    if (a->out_type == BP_QT_I32) {
        v = t < a->lo ? a->lo : t > a->hi ? a->hi : t;
        ((int32_t *)y)[idx] = (int32_t)v;
        return;
    }
    v = bp_dyadic_apply(t, bp_dyadic24_m(a->rq[c]), bp_dyadic24_s(a->rq[c]));
    if (a->residual) {
        int64_t r = bp_qk_get(a->res, a->res_type, idx);
        int64_t v2 = bp_dyadic_apply(r, a->rm, a->rs);
        v = v > BP_QRES_SAT ? BP_QRES_SAT : v < -BP_QRES_SAT ? -BP_QRES_SAT : v;
        v2 = v2 > BP_QRES_SAT ? BP_QRES_SAT : v2 < -BP_QRES_SAT ? -BP_QRES_SAT : v2;
        v = bp_rshift_round(v + v2, a->frac);
    }
    v = v < a->lo ? a->lo : v > a->hi ? a->hi : v;
    if (a->out_type == BP_QT_U8)
        ((uint8_t *)y)[idx] = (uint8_t)v;
    else
        ((int8_t *)y)[idx] = (int8_t)v;
}

void bp_qk_epilogue(void *y, const bp_qk_layer *a, int64_t p, int64_t c,
                    int64_t t)
{
    epilogue(y, a, p, c, t);
}

#define GEMM_PORTABLE(NAME, XT)                                                 \
    static void NAME(void *y, const uint8_t *rows, int64_t ldr, int64_t np,    \
                     int64_t pc, const bp_qk_layer *a, int64_t grp,            \
                     int64_t b0, int64_t b1, const int8_t *w0)                  \
    {                                                                           \
        const int64_t k = a->k, kt = k % 4, kf = k - kt;                        \
        for (int64_t b = b0; b < b1; b++) {                                     \
            int64_t r0 = b * BP_QBLOCK;                                         \
            int64_t mb = a->mg - r0 < BP_QBLOCK ? a->mg - r0 : BP_QBLOCK;       \
            const int8_t *wb = w0 + (b - b0) * BP_QBLOCK * k;                   \
            int64_t c0 = grp * a->mg + r0;                                      \
            for (int64_t i = 0; i < np; i++) {                                  \
                const XT *x = (const XT *)(rows + i * ldr);                     \
                int32_t acc[BP_QBLOCK] = {0};                                   \
                for (int64_t g4 = 0; g4 < kf; g4 += 4) {                        \
                    const int8_t *wg = wb + g4 * mb;                            \
                    int32_t x0 = x[g4], x1 = x[g4 + 1], x2 = x[g4 + 2],         \
                            x3 = x[g4 + 3];                                     \
                    if (mb == BP_QBLOCK) /* a fixed trip count vectorizes */    \
                        for (int r = 0; r < BP_QBLOCK; r++)                     \
                            acc[r] += x0 * wg[4 * r] + x1 * wg[4 * r + 1] +     \
                                      x2 * wg[4 * r + 2] + x3 * wg[4 * r + 3];  \
                    else                                                        \
                        for (int64_t r = 0; r < mb; r++)                        \
                            acc[r] += x0 * wg[4 * r] + x1 * wg[4 * r + 1] +     \
                                      x2 * wg[4 * r + 2] + x3 * wg[4 * r + 3];  \
                }                                                               \
                for (int64_t r = 0; r < mb; r++)                                \
                    for (int64_t j = 0; j < kt; j++)                            \
                        acc[r] += (int32_t)x[kf + j] *                          \
                                  wb[kf * mb + r * kt + j];                     \
                for (int64_t r = 0; r < mb; r++)                                \
                    epilogue(y, a, pc + i, c0 + r,                              \
                             (int64_t)acc[r] + a->bias[c0 + r]);                \
            }                                                                   \
        }                                                                       \
    }

GEMM_PORTABLE(gemm_u8, uint8_t)
GEMM_PORTABLE(gemm_i8, int8_t)

/* The AVX2 kernel's buffers within the scratch (after the portable ones). */
typedef struct avx2_bufs {
    int16_t *rows16, *w16;
    int32_t *acc;
} avx2_bufs;

static void gemm(void *y, const uint8_t *rows, int64_t ldr, int64_t np,
                 int64_t pc, const bp_qk_layer *a, int64_t grp, int64_t b0,
                 int64_t b1, const int8_t *w0, int vnni, int xor80,
                 const avx2_bufs *v2)
{
    if (v2)
        bp_qk_avx2_gemm(y, v2->rows16, np, pc, a, grp, b0, b1, w0, v2->w16,
                        v2->acc, xor80);
    else if (vnni)
        bp_qk_x86_gemm_vnni(y, rows, ldr, np, pc, a, grp, b0, b1, w0, xor80);
    else if (a->in_signed)
        gemm_i8(y, rows, ldr, np, pc, a, grp, b0, b1, w0);
    else
        gemm_u8(y, rows, ldr, np, pc, a, grp, b0, b1, w0);
}

void bp_qk_layer_run(void *y, const void *xv, const bp_qk_layer *a,
                     int64_t p0, int64_t p1, int64_t grp, int64_t b0,
                     int64_t b1, void *scratch)
{
    const uint8_t *x = xv;
    if (layer_wino(a)) {
        bp_qk_wino_run(y, x, a, p0, p1, grp, b0, b1, NULL, scratch);
        return;
    }
    const int vnni = bp_qk_isa_get() == BP_QK_AVX512VNNI;
    const int narrow = bp_qk_isa_get() == BP_QK_AVX2 && bp_qk_avx2_narrow(a);
    /* byte products are unsigned x signed: int8 inputs go in as x + 128 */
    const int xor80 = (vnni || narrow) && a->in_signed;
    avx2_bufs v2b, *v2 = NULL;
    if (bp_qk_isa_get() == BP_QK_AVX2) {
        uint8_t *base = (uint8_t *)scratch + rows_bytes(a) + wbuf_bytes(a) +
                        band_bytes(a) + 64;
        base += (64 - (uintptr_t)base % 64) % 64;
        v2b.rows16 = (int16_t *)base;
        v2b.w16 = (int16_t *)(base + avx2_rows_bytes(a));
        v2b.acc = (int32_t *)(base + avx2_rows_bytes(a) + al64(bp_qk_avx2_wbytes(a)));
        v2 = &v2b;
    }
    const int direct = layer_direct(a, xor80);
    const int64_t chunk = bp_qk_layer_chunk(a);
    const int64_t ptotal = bp_qk_layer_positions(a);
    uint8_t *buf = scratch;
    for (int64_t pc = p0; pc < p1; pc += chunk) {
        int64_t np = p1 - pc < chunk ? p1 - pc : chunk;
        const uint8_t *rows;
        int64_t ldr;
        if (direct) {
            rows = x + pc * a->geo.c + grp * a->cg;
            ldr = a->geo.c;
            if (pc + np + BP_QK_ROWPAD > ptotal) {
                /* the last tile may read past the tensor: copy it */
                for (int64_t i = 0; i < np; i++)
                    memcpy(buf + i * a->kp, rows + i * ldr, (size_t)a->k);
                memset(buf + np * a->kp, 0, (size_t)(BP_QK_ROWPAD * a->kp));
                rows = buf;
                ldr = a->kp;
            }
        } else {
            pack_rows(buf, x, a, pc, np, grp, xor80,
                      buf + rows_bytes(a) + wbuf_bytes(a));
            /* tiles read up to the next multiple of BP_QK_TILE rows */
            int64_t pad = (np + BP_QK_TILE - 1) / BP_QK_TILE * BP_QK_TILE;
            memset(buf + np * a->kp, 0, (size_t)((pad - np) * a->kp));
            rows = buf;
            ldr = a->kp;
        }
        if (v2) {
            /* tiled rows once per chunk, zero up to a whole tile */
            if (narrow)
                bp_qk_avx2_pack_rows8((uint8_t *)v2->rows16, rows, ldr, np, a->kp);
            else
                bp_qk_avx2_widen_rows(v2->rows16, rows, ldr, np, a->kp,
                                      a->in_signed);
        }
        if (a->w) {
            gemm(y, rows, ldr, np, pc, a, grp, b0, b1,
                 a->w + (grp * a->mg + b0 * BP_QBLOCK) * a->k, vnni, xor80, v2);
            continue;
        }
        /* packed weights: unpack a few blocks at a time, next to their use */
        int8_t *wbuf = (int8_t *)(buf + rows_bytes(a));
        for (int64_t bb = b0; bb < b1; bb += UNPACK_BLOCKS) {
            int64_t be = b1 - bb < UNPACK_BLOCKS ? b1 : bb + UNPACK_BLOCKS;
            int64_t r1 = be * BP_QBLOCK < a->mg ? be * BP_QBLOCK : a->mg;
            int64_t start = (grp * a->mg + bb * BP_QBLOCK) * a->k;
            int64_t count = (r1 - bb * BP_QBLOCK) * a->k;
            /* 8 codes are w_bits whole bytes: unpack from the code before
             * start that begins a byte, and skip the lead */
            int64_t lead = start % 8;
            bp_qunpack(wbuf, a->wpack + (start - lead) / 8 * a->w_bits,
                       count + lead, a->w_bits);
            gemm(y, rows, ldr, np, pc, a, grp, bb, be, wbuf + lead, vnni, xor80,
                 v2);
        }
    }
}

/* ---- the other ops --------------------------------------------------------- */

static inline int32_t clamp32(int64_t v, int32_t lo, int32_t hi)
{
    return (int32_t)(v < lo ? lo : v > hi ? hi : v);
}

static inline void put(void *y, bp_qtype t, int64_t i, int32_t v)
{
    switch (t) {
    case BP_QT_U8: ((uint8_t *)y)[i] = (uint8_t)v; break;
    case BP_QT_I8: ((int8_t *)y)[i] = (int8_t)v; break;
    default: ((int32_t *)y)[i] = v; break;
    }
}

/* Element-wise max of n codes, in runs of 64 that the compiler vectorizes. */
static void max_u8(uint8_t *restrict a, const uint8_t *restrict b, int64_t n)
{
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 64; j++)
            a[i + j] = a[i + j] > b[i + j] ? a[i + j] : b[i + j];
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            a[i + j] = a[i + j] > b[i + j] ? a[i + j] : b[i + j];
    for (; i < n; i++)
        a[i] = a[i] > b[i] ? a[i] : b[i];
}

static void max_i8(int8_t *restrict a, const int8_t *restrict b, int64_t n)
{
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 64; j++)
            a[i + j] = a[i + j] > b[i + j] ? a[i + j] : b[i + j];
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            a[i + j] = a[i + j] > b[i + j] ? a[i + j] : b[i + j];
    for (; i < n; i++)
        a[i] = a[i] > b[i] ? a[i] : b[i];
}

void bp_qk_maxpool(void *y, const void *x, bp_qtype t, const bp_pool_geom *g,
                   int32_t lo, int32_t hi, int64_t r0, int64_t r1)
{
    const int64_t c = g->c;
    const int32_t tmin = t == BP_QT_U8 ? 0 : -128, tmax = t == BP_QT_U8 ? 255 : 127;
    uint8_t *yb = y;
    const uint8_t *xb = x;
    for (int64_t row = r0; row < r1; row++) {
        int64_t n = row / g->oh, oy = row % g->oh;
        for (int64_t ox = 0; ox < g->ow; ox++) {
            uint8_t *out = yb + ((n * g->oh + oy) * g->ow + ox) * c;
            int first = 1;
            for (int64_t ky = 0; ky < g->kh; ky++) {
                int64_t iy = oy * g->stride_h - g->pad_t + ky * g->dil_h;
                if (iy < 0 || iy >= g->h)
                    continue;
                for (int64_t kx = 0; kx < g->kw; kx++) {
                    int64_t ix = ox * g->stride_w - g->pad_l + kx * g->dil_w;
                    if (ix < 0 || ix >= g->w)
                        continue;
                    const uint8_t *in = xb + ((n * g->h + iy) * g->w + ix) * c;
                    if (first)
                        memcpy(out, in, (size_t)c);
                    else if (t == BP_QT_U8)
                        max_u8(out, in, c);
                    else
                        max_i8((int8_t *)out, (const int8_t *)in, c);
                    first = 0;
                }
            }
            if (first)
                memset(out, 0, (size_t)c);
            if (lo > tmin || hi < tmax)
                for (int64_t j = 0; j < c; j++)
                    put(out, t, j, clamp32(bp_qk_get(out, t, j), lo, hi));
        }
    }
}

/* [*lo, *hi) = taps k in [0, count) with 0 <= off + k < n */
static void span1(int64_t off, int64_t n, int64_t count, int64_t *lo,
                  int64_t *hi)
{
    int64_t a = off >= 0 ? 0 : -off, b = n - off;
    if (b > count)
        b = count;
    if (b < 0)
        b = 0;
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

int64_t bp_qk_pool_count(const bp_pool_geom *g, int64_t oy, int64_t ox)
{
    int64_t iy0 = oy * g->stride_h - g->pad_t, ix0 = ox * g->stride_w - g->pad_l;
    int64_t ky0, ky1, kx0, kx1;
    if (g->count_include_pad) {
        span1(iy0 + g->pad_t, g->h + 2 * g->pad_t, g->kh, &ky0, &ky1);
        span1(ix0 + g->pad_l, g->w + 2 * g->pad_l, g->kw, &kx0, &kx1);
    } else {
        span1(iy0, g->h, g->kh, &ky0, &ky1);
        span1(ix0, g->w, g->kw, &kx0, &kx1);
    }
    return (ky1 - ky0) * (kx1 - kx0);
}

static void sum_u8(int32_t *restrict s, const uint8_t *restrict x, int64_t n)
{
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 64; j++)
            s[i + j] += x[i + j];
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            s[i + j] += x[i + j];
    for (; i < n; i++)
        s[i] += x[i];
}

static void sum_i8(int32_t *restrict s, const int8_t *restrict x, int64_t n)
{
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 64; j++)
            s[i + j] += x[i + j];
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            s[i + j] += x[i + j];
    for (; i < n; i++)
        s[i] += x[i];
}

void bp_qk_avgpool(void *y, bp_qtype ty, const void *x, bp_qtype tx,
                   const bp_pool_geom *g, const int32_t *m, const int8_t *s,
                   int32_t lo, int32_t hi, int64_t r0, int64_t r1)
{
    const int64_t c = g->c;
    int32_t sum[256];
    for (int64_t row = r0; row < r1; row++) {
        int64_t n = row / g->oh, oy = row % g->oh;
        int64_t iy0 = oy * g->stride_h - g->pad_t, ky0, ky1;
        span1(iy0, g->h, g->kh, &ky0, &ky1);
        for (int64_t ox = 0; ox < g->ow; ox++) {
            int64_t ix0 = ox * g->stride_w - g->pad_l, kx0, kx1;
            span1(ix0, g->w, g->kw, &kx0, &kx1);
            int64_t cnt = bp_qk_pool_count(g, oy, ox);
            int64_t out = ((n * g->oh + oy) * g->ow + ox) * c;
            for (int64_t c0 = 0; c0 < c; c0 += 256) {
                int64_t cn = c - c0 < 256 ? c - c0 : 256;
                memset(sum, 0, sizeof sum);
                for (int64_t ky = ky0; ky < ky1; ky++)
                    for (int64_t kx = kx0; kx < kx1; kx++) {
                        int64_t in = ((n * g->h + iy0 + ky) * g->w + ix0 + kx) * c +
                                     c0;
                        if (tx == BP_QT_U8)
                            sum_u8(sum, (const uint8_t *)x + in, cn);
                        else
                            sum_i8(sum, (const int8_t *)x + in, cn);
                    }
                for (int64_t j = 0; j < cn; j++) {
                    int64_t v = cnt > 0 ? bp_dyadic_apply(sum[j], m[cnt], s[cnt])
                                        : 0;
                    put(y, ty, out + c0 + j, clamp32(v, lo, hi));
                }
            }
        }
    }
}

static inline int64_t sat_res(int64_t v)
{
    return v > BP_QRES_SAT ? BP_QRES_SAT : v < -BP_QRES_SAT ? -BP_QRES_SAT : v;
}

/* The element-wise ops on every pair of 8-bit types, written once: XT and YT
 * are the C types of the input and output codes. */
#define ELEMWISE(SX, XT, SY, YT)                                               \
    static void add_##SX##_##SY(YT *restrict y, const XT *restrict a,         \
                                const void *b, bp_qtype tb, int32_t ma,       \
                                int sa, int32_t mb, int sb, int frac,         \
                                int64_t n, int32_t lo, int32_t hi)            \
    {                                                                         \
        for (int64_t i = 0; i < n; i++) {                                     \
            int64_t va = sat_res(bp_dyadic_apply(a[i], ma, sa));              \
            int64_t vb = sat_res(bp_dyadic_apply(bp_qk_get(b, tb, i), mb, sb)); \
            y[i] = (YT)clamp32(bp_rshift_round(va + vb, frac), lo, hi);       \
        }                                                                     \
    }                                                                         \
    static void requant_##SX##_##SY(YT *restrict y, const XT *restrict x,     \
                                    int32_t m, int s, int64_t n, int32_t lo,  \
                                    int32_t hi)                               \
    {                                                                         \
        for (int64_t i = 0; i < n; i++) {                                     \
            int64_t v = bp_dyadic_apply(x[i], m, s);                          \
            y[i] = (YT)(v < lo ? lo : v > hi ? hi : v);                       \
        }                                                                     \
    }                                                                         \
    static void clamp_##SX##_##SY(YT *restrict y, const XT *restrict x,       \
                                  int64_t n, int32_t lo, int32_t hi)          \
    {                                                                         \
        for (int64_t i = 0; i < n; i++)                                       \
            y[i] = (YT)(x[i] < lo ? lo : x[i] > hi ? hi : x[i]);              \
    }

ELEMWISE(u8, uint8_t, u8, uint8_t)
ELEMWISE(u8, uint8_t, i8, int8_t)
ELEMWISE(i8, int8_t, u8, uint8_t)
ELEMWISE(i8, int8_t, i8, int8_t)

/* Dispatch on (tx, ty) for the 8-bit types. */
#define PICK(FN, tx, ty, ...)                                                 \
    do {                                                                      \
        if ((tx) == BP_QT_U8 && (ty) == BP_QT_U8)                             \
            FN##_u8_u8(__VA_ARGS__);                                          \
        else if ((tx) == BP_QT_U8)                                            \
            FN##_u8_i8(__VA_ARGS__);                                          \
        else if ((ty) == BP_QT_U8)                                            \
            FN##_i8_u8(__VA_ARGS__);                                          \
        else                                                                  \
            FN##_i8_i8(__VA_ARGS__);                                          \
    } while (0)

void bp_qk_add(void *y, bp_qtype ty, const void *a, bp_qtype ta, int32_t ma,
               int sa, const void *b, bp_qtype tb, int32_t mb, int sb,
               int frac, int64_t n, int32_t lo, int32_t hi)
{
    assert(ta != BP_QT_I32 && ty != BP_QT_I32);
    PICK(add, ta, ty, y, a, b, tb, ma, sa, mb, sb, frac, n, lo, hi);
}

void bp_qk_requant(void *y, bp_qtype ty, const void *x, bp_qtype tx, int32_t m,
                   int s, int64_t n, int32_t lo, int32_t hi)
{
    assert(tx != BP_QT_I32 && ty != BP_QT_I32);
    PICK(requant, tx, ty, y, x, m, s, n, lo, hi);
}

void bp_qk_clamp(void *y, bp_qtype ty, const void *x, bp_qtype tx, int64_t n,
                 int32_t lo, int32_t hi)
{
    assert(tx != BP_QT_I32 && ty != BP_QT_I32);
    PICK(clamp, tx, ty, y, x, n, lo, hi);
}

/* dst (n) = codes of x (n), contiguous. */
static void quantize_run(uint8_t *dst, const float *x, int64_t n, double scale,
                         int32_t lo, int32_t hi)
{
    int64_t i = 0;
    if (bp_qk_isa_get() == BP_QK_AVX512VNNI)
        i = bp_qk_x86_quantize(dst, x, n, scale, lo, hi);
    else if (bp_qk_isa_get() == BP_QK_AVX2)
        i = bp_qk_avx2_quantize(dst, x, n, scale, lo, hi);
    for (; i < n; i++)
        dst[i] = (uint8_t)bp_act_quantize(x[i], scale, lo, hi);
}

/* Positions per piece: the c planes of a piece are quantized contiguously
 * into a small buffer, then interleaved into NHWC. */
#define QPIECE 64

void bp_qk_quantize(void *y, bp_qtype ty, const float *x, int64_t n, int64_t c,
                    int64_t hw, double scale, int32_t lo, int32_t hi,
                    int64_t r0, int64_t r1)
{
    (void)n;
    (void)ty; /* int8 and uint8 codes are the same bytes */
    uint8_t *yb = y, tmp[16 * QPIECE];
    for (int64_t r = r0; r < r1;) {
        int64_t b = r / hw, p = r % hw;
        int64_t len = hw - p < r1 - r ? hw - p : r1 - r;
        const float *xs = x + b * c * hw + p;
        uint8_t *yo = yb + (b * hw + p) * c;
        if (hw == 1 || c == 1) {
            /* rows (n, c) or one plane: already in NHWC order */
            quantize_run(yo, xs, hw == 1 ? c : len, scale, lo, hi);
            r += len;
            continue;
        }
        /* pieces of QPIECE positions by up to 16 channels: each channel's
         * run quantized contiguously (vector code), then interleaved.
         * Element by element, inputs of more than 16 channels took 2-3 ns
         * per element against 0.4 (a scalar divide each). */
        for (int64_t q0 = 0; q0 < len; q0 += QPIECE) {
            int64_t m = len - q0 < QPIECE ? len - q0 : QPIECE;
            for (int64_t c0 = 0; c0 < c; c0 += 16) {
                int64_t cn = c - c0 < 16 ? c - c0 : 16;
                for (int64_t ch = 0; ch < cn; ch++)
                    quantize_run(tmp + ch * QPIECE, xs + (c0 + ch) * hw + q0,
                                 m, scale, lo, hi);
                uint8_t *yq = yo + q0 * c + c0;
                if (c == 3) /* RGB images: a fixed trip count unrolls */
                    for (int64_t q = 0; q < m; q++)
                        for (int ch = 0; ch < 3; ch++)
                            yq[q * 3 + ch] = tmp[ch * QPIECE + q];
                else
                    for (int64_t q = 0; q < m; q++)
                        for (int64_t ch = 0; ch < cn; ch++)
                            yq[q * c + ch] = tmp[ch * QPIECE + q];
            }
        }
        r += len;
    }
}

/* Visits the elements of an (n, hw, c) tensor for its (n, c, hw) copy: o
 * the destination index, i the source, ch the channel.  Positions go in
 * pieces of TPIECE, each piece channel by channel, so that the writes run
 * along rows and the piece's reads stay in L1: written position by
 * position, a copy whose rows are 4 KiB apart (hw = 1024 floats) hit one
 * cache set with every write (8.5 ns per element, measured). */
#define TPIECE 64
#define FOR_NHWC_TO_NCHW(n, c, hw, BODY)                                       \
    for (int64_t b_ = 0; b_ < (n); b_++)                                       \
        for (int64_t p0_ = 0; p0_ < (hw); p0_ += TPIECE) {                     \
            int64_t p1_ = (hw) - p0_ < TPIECE ? (hw) : p0_ + TPIECE;           \
            for (int64_t ch = 0; ch < (c); ch++)                               \
                for (int64_t p_ = p0_; p_ < p1_; p_++) {                       \
                    int64_t o = (b_ * (c) + ch) * (hw) + p_;                   \
                    int64_t i = (b_ * (hw) + p_) * (c) + ch;                   \
                    BODY;                                                      \
                }                                                              \
        }

void bp_qk_dequant(float *y, const void *x, bp_qtype tx, int64_t n, int64_t c,
                   int64_t hw, float scale)
{
    FOR_NHWC_TO_NCHW(n, c, hw, y[o] = (float)bp_qk_get(x, tx, i) * scale)
}

/* 2^-s for a dyadic shift (0..255), built from its bits: multiplying by it
 * is ldexp(v, -s) exactly (the products stay far above the subnormals), at
 * a fraction of a libm call per element, which measured 14% of the example
 * MLP's batch-1 run. */
static inline double pow2_neg(int s)
{
    uint64_t u = (uint64_t)(1023 - s) << 52;
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

void bp_qk_dequant_ch(float *y, const int32_t *x, int64_t n, int64_t c,
                      int64_t hw, const uint32_t *rq)
{
    FOR_NHWC_TO_NCHW(n, c, hw,
                     y[o] = (float)((double)x[i] * (double)bp_dyadic24_m(rq[ch]) *
                                    pow2_neg(bp_dyadic24_s(rq[ch]))))
}

void bp_qk_to_nchw(void *y, const void *x, size_t es, int64_t n, int64_t c,
                   int64_t hw)
{
    FOR_NHWC_TO_NCHW(n, c, hw,
                     memcpy((char *)y + (size_t)o * es,
                            (const char *)x + (size_t)i * es, es))
}
