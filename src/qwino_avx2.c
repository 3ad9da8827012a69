/* qwino_avx2.c - 3x3 stride-1 convolutions on AVX2 by Winograd's minimal
 * filtering F(2x2, 3x3) (Lavin and Gray, 2016), exact in integers.
 *
 * AVX2 has no exact 8-bit dot product (vpmaddubsw saturates), so its GEMM
 * multiplies int16 pairs with vpmaddwd: 16 products per instruction, about
 * what a float FMA pipe does, and the GEMM already runs near that rate.
 * Winograd's algorithm computes a 2x2 output tile of a 3x3 convolution with
 * 16 products per input channel instead of 36.  Its matrices have halves
 * in G; with G' = 2G every transform is an integer matrix and the result is
 * exactly 4x the convolution:
 *
 *   4 Y = A^T [ (G' g G'^T) . (B^T d B) ] A
 *
 * d is the tile's 4x4 input (uint8 or int8 codes: |B^T d B| <= 1020), g the
 * 3x3 weights (|G' g G'^T| <= 9 * 128 = 1152), so both fit int16 and
 * vpmaddwd's pair sums are exact.  The sums over channels and the output
 * transform run in int32 modulo 2^32; since 4 Y itself fits int32
 * (bp_qk_wino_ok), the wrapped arithmetic ends on its exact value, and
 * Y = (4 Y) >> 2 is the very accumulator the direct GEMM would have made:
 * the epilogue and the integers out are identical.
 *
 * Per chunk of tiles: the input transform writes 16 matrices V (tiles x
 * channels, int16, in the GEMM's tiled row order), then per block of 16
 * output channels the weight transform writes 16 matrices U (in the GEMM's
 * weight order), 16 GEMMs give Z = U V (int32), and the output transform
 * and the usual epilogue write the block's outputs.  Weights are
 * transformed per use rather than stored: kept for a whole network they
 * would take 3.6x the int8 weights' memory (ResNet-18: 34 MB), and a
 * 7x7x512 layer at batch 1 would stream 8.4 MB of them per run instead of
 * 2.4 MB of codes (not measured). */
#include "qkernels_impl.h"

#include <string.h>

static int wino_on = 1;

int bp_qk_wino_set(int on)
{
    int old = wino_on;
    wino_on = on < 0 ? 0 : on > 2 ? 2 : on;
    return old;
}

int bp_qk_wino_active(void)
{
    return wino_on && bp_qk_isa_get() == BP_QK_AVX2;
}

int bp_qk_wino_ok(const bp_qk_layer *a)
{
    const bp_conv_geom *g = &a->geo;
    return wino_on && a->k == 9 * a->cg &&
           bp_qk_wino_shape(g, a->cg, a->w_bits, a->in_signed) &&
           (wino_on == 2 ||
            bp_qk_wino_pays(bp_qk_wino_tiles(g), a->cg, a->w_bits));
}

/* Tiles per chunk: the 16 input matrices about 1 MiB.  Each block's
 * weights are transformed once per chunk, and a GEMM reads only its own
 * matrix (and U's, in L1): against 256 KiB chunks that stay in L2, 28x28
 * and 14x14 layers ran 10-15% faster (one thread, Zen 3). */
static int64_t chunk_tiles(const bp_qk_layer *a)
{
    int64_t t = 32768 / a->cg;
    return t < 16 ? 16 : t > 512 ? 512 : t;
}

static size_t al64(size_t n) { return (n + 63) / 64 * 64; }

/* scratch: zeros | V | U | Z | sums | positions | acc | block codes */
typedef struct wbufs {
    uint8_t *zeros;
    int16_t *v, *u;
    int32_t *z, *t;
    int64_t *pos;
    int32_t *acc;
    int8_t *codes;
    int64_t T, tpad;
    int64_t vs, us, zs; /* elements from one of the 16 matrices to the next */
} wbufs;

/* The 16 matrices of V, U and Z lie one cache line apart more than their
 * size: at a power-of-two distance (U: 16 KiB at 512 channels) the 16
 * stores or loads of one transform fell in one L1 set, and the weight
 * transform took 25% of the layer's time. */
#define SKEW 64

static size_t layout(const bp_qk_layer *a, uint8_t *base, wbufs *b)
{
    const int64_t T = chunk_tiles(a), tpad = (T + 5) / 6 * 6, cg = a->cg;
    const int64_t vs = tpad * cg + SKEW / 2, us = 16 * cg + SKEW / 2,
                  zs = T * 16 + SKEW / 4;
    const size_t sz[] = {
        al64((size_t)cg + 64),
        al64((size_t)(16 * vs) * 2),
        al64((size_t)(16 * us) * 2),
        al64((size_t)(16 * zs) * 4),
        al64((size_t)(4 * T * 16) * 4),
        al64((size_t)(4 * T) * 8),
        al64((size_t)(tpad + BP_QK_ROWPAD) * 32 * 4),
        al64((size_t)(BP_QBLOCK * a->k) + 16),
    };
    size_t off[8], total = 0;
    for (int i = 0; i < 8; i++) {
        off[i] = total;
        total += sz[i];
    }
    if (base) {
        b->zeros = base + off[0];
        b->v = (int16_t *)(base + off[1]);
        b->u = (int16_t *)(base + off[2]);
        b->z = (int32_t *)(base + off[3]);
        b->t = (int32_t *)(base + off[4]);
        b->pos = (int64_t *)(base + off[5]);
        b->acc = (int32_t *)(base + off[6]);
        b->codes = (int8_t *)(base + off[7]);
        b->T = T;
        b->tpad = tpad;
        b->vs = vs;
        b->us = us;
        b->zs = zs;
        memset(b->zeros, 0, sz[0]);
    }
    return total;
}

size_t bp_qk_wino_scratch(const bp_qk_layer *a)
{
    return bp_qk_wino_ok(a) ? layout(a, NULL, NULL) + 64 : 0;
}

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define TGT __attribute__((target("avx2")))

/* The 1-D transforms on 4 (or 3) vectors, in place into o[0..3]:
 * B^T: (x0 - x2, x1 + x2, x2 - x1, x1 - x3);
 * G':  (2 g0, g0 + g1 + g2, g0 - g1 + g2, 2 g2);
 * A^T: (z0 + z1 + z2, z1 - z2 - z3). */
#define BT16(o, x0, x1, x2, x3)                                                \
    do {                                                                       \
        __m256i x0_ = (x0), x1_ = (x1), x2_ = (x2), x3_ = (x3);                \
        (o)[0] = _mm256_sub_epi16(x0_, x2_);                                   \
        (o)[1] = _mm256_add_epi16(x1_, x2_);                                   \
        (o)[2] = _mm256_sub_epi16(x2_, x1_);                                   \
        (o)[3] = _mm256_sub_epi16(x1_, x3_);                                   \
    } while (0)
#define G16(o, g0, g1, g2)                                                     \
    do {                                                                       \
        __m256i g0_ = (g0), g1_ = (g1), g2_ = (g2);                            \
        __m256i s_ = _mm256_add_epi16(g0_, g2_);                               \
        (o)[0] = _mm256_add_epi16(g0_, g0_);                                   \
        (o)[1] = _mm256_add_epi16(s_, g1_);                                    \
        (o)[2] = _mm256_sub_epi16(s_, g1_);                                    \
        (o)[3] = _mm256_add_epi16(g2_, g2_);                                   \
    } while (0)
#define AT32(o0, o1, z0, z1, z2, z3)                                           \
    do {                                                                       \
        __m256i z1_ = (z1), z2_ = (z2);                                        \
        (o0) = _mm256_add_epi32(_mm256_add_epi32((z0), z1_), z2_);             \
        (o1) = _mm256_sub_epi32(_mm256_sub_epi32(z1_, z2_), (z3));             \
    } while (0)

/* 16 channels of one tile: d[r][q] the 4x4 taps (int16) -> V's 16 vectors */
TGT static inline void tile_in(__m256i v[16], const __m256i d[16])
{
    __m256i t[16];
    for (int q = 0; q < 4; q++) { /* columns: B^T d */
        __m256i o[4];
        BT16(o, d[q], d[4 + q], d[8 + q], d[12 + q]);
        for (int r = 0; r < 4; r++)
            t[4 * r + q] = o[r];
    }
    for (int r = 0; r < 4; r++) /* rows: (B^T d) B */
        BT16(v + 4 * r, t[4 * r], t[4 * r + 1], t[4 * r + 2], t[4 * r + 3]);
}

/* The 16 taps' pointers of tile t (zeros where it reads padding). */
static void tile_taps(const uint8_t **p, const wbufs *b, const uint8_t *x,
                      const bp_qk_layer *a, int64_t grp, int64_t t)
{
    const bp_conv_geom *g = &a->geo;
    const int64_t th = (g->oh + 1) / 2, tw = (g->ow + 1) / 2;
    const int64_t R = t / tw, tx = t % tw, n = R / th, ty = R % th;
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++) {
            int64_t iy = 2 * ty - g->pad_t + r, ix = 2 * tx - g->pad_l + q;
            p[4 * r + q] = iy < 0 || iy >= g->h || ix < 0 || ix >= g->w
                               ? b->zeros
                               : x + ((n * g->h + iy) * g->w + ix) * g->c +
                                     grp * a->cg;
        }
}

/* V's 16 vectors of channels [c, c + nc) (nc <= 16) of a tile */
TGT static inline void tile_vec(__m256i v[16], const uint8_t *const *p,
                                int64_t c, int64_t nc, int sgn)
{
    __m256i d[16];
    for (int j = 0; j < 16; j++) {
        __m128i s;
        if (nc == 16) {
            s = _mm_loadu_si128((const __m128i *)(p[j] + c));
        } else {
            uint8_t tmp[16] = {0};
            memcpy(tmp, p[j] + c, (size_t)nc);
            s = _mm_loadu_si128((const __m128i *)tmp);
        }
        d[j] = sgn ? _mm256_cvtepi8_epi16(s) : _mm256_cvtepu8_epi16(s);
    }
    tile_in(v, d);
}

/* Tiles [tc, tc + nt) of the layer's tile grid (ceil(oh/2) x ceil(ow/2)
 * per sample) -> V: matrix xi (of 16) holds row i (tile tc + i), column c
 * (input channel of group grp) at xi * vs + (i / 6) * 6 * cg +
 * (c / 4) * 24 + (i % 6) * 4 + c % 4, bp_qk_avx2_widen_rows' order.  Two
 * tiles at a time where they share a group of 6: their 4 channels of a
 * group are adjacent, so that one 16-byte store writes both where two
 * 8-byte ones did (56x56x64 and 28x28x128 layers: 2-3% faster). */
TGT static void input_transform(const wbufs *b, const uint8_t *x,
                                const bp_qk_layer *a, int64_t grp, int64_t tc,
                                int64_t nt)
{
    const int64_t cg = a->cg, vs = b->vs;
    const int sgn = a->in_signed;
    for (int64_t i = 0; i < nt;) {
        const int two = i % 2 == 0 && i + 1 < nt;
        const uint8_t *pa[16], *pb[16];
        tile_taps(pa, b, x, a, grp, tc + i);
        if (two)
            tile_taps(pb, b, x, a, grp, tc + i + 1);
        int16_t *dst = b->v + (i / 6) * 6 * cg + (i % 6) * 4;
        for (int64_t c = 0; c < cg; c += 16) {
            const int64_t nc = cg - c < 16 ? cg - c : 16;
            __m256i va[16], vb[16];
            tile_vec(va, pa, c, nc, sgn);
            if (two)
                tile_vec(vb, pb, c, nc, sgn);
            /* a vector is 4 groups of 4 channels, 8 bytes each */
            int16_t *o = dst + (c / 4) * 24;
            for (int xi = 0; xi < 16; xi++, o += vs) {
                if (two) {
                    __m256i lo = _mm256_unpacklo_epi64(va[xi], vb[xi]);
                    __m256i hi = _mm256_unpackhi_epi64(va[xi], vb[xi]);
                    _mm_storeu_si128((__m128i *)o, _mm256_castsi256_si128(lo));
                    if (nc > 4)
                        _mm_storeu_si128((__m128i *)(o + 24), _mm256_castsi256_si128(hi));
                    if (nc > 8)
                        _mm_storeu_si128((__m128i *)(o + 48), _mm256_extracti128_si256(lo, 1));
                    if (nc > 12)
                        _mm_storeu_si128((__m128i *)(o + 72), _mm256_extracti128_si256(hi, 1));
                    continue;
                }
                __m128i lo = _mm256_castsi256_si128(va[xi]);
                __m128i hi = _mm256_extracti128_si256(va[xi], 1);
                _mm_storel_epi64((__m128i *)o, lo);
                if (nc > 4)
                    _mm_storeh_pd((double *)(o + 24), _mm_castsi128_pd(lo));
                if (nc > 8)
                    _mm_storel_epi64((__m128i *)(o + 48), hi);
                if (nc > 12)
                    _mm_storeh_pd((double *)(o + 72), _mm_castsi128_pd(hi));
            }
        }
        i += two ? 2 : 1;
    }
}

/* U from a block's codes (mb rows, blocked order; k = 9 cg, so a group of
 * 4 k is 4 channels of one tap): matrix xi at xi * us, in the GEMM's
 * weight order [half][cg / 4][8 channels x 4], rows past mb zero.  Per
 * quarter of a group (4 rows x 4 channels, one vector per tap), so that
 * the taps stay in registers. */
TGT static void weight_transform(int16_t *u, int64_t us, const int8_t *wb,
                                 int64_t mb, int64_t cg)
{
    const int64_t G = cg / 4, ts = G * 4 * mb;
    for (int64_t c4 = 0; c4 < G; c4++) {
        const int8_t *s = wb + c4 * 4 * mb;
        int8_t tmp[9][64];
        if (mb < BP_QBLOCK) {
            memset(tmp, 0, sizeof tmp);
            for (int t = 0; t < 9; t++)
                memcpy(tmp[t], s + t * ts, (size_t)(4 * mb));
        }
        for (int q = 0; q < 4; q++) {
            __m256i w[9], r[12];
            for (int t = 0; t < 9; t++)
                w[t] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(
                    mb < BP_QBLOCK ? tmp[t] + 16 * q : s + t * ts + 16 * q)));
            for (int kx = 0; kx < 3; kx++) { /* G' g, column kx */
                __m256i o[4];
                G16(o, w[kx], w[3 + kx], w[6 + kx]);
                for (int i = 0; i < 4; i++)
                    r[3 * i + kx] = o[i];
            }
            int16_t *d = u + (q / 2) * G * 32 + c4 * 32 + (q % 2) * 16;
            for (int i = 0; i < 4; i++) { /* row i of (G' g) G'^T */
                __m256i o[4];
                G16(o, r[3 * i], r[3 * i + 1], r[3 * i + 2]);
                for (int j = 0; j < 4; j++)
                    _mm256_storeu_si256((__m256i *)(d + (4 * i + j) * us), o[j]);
            }
        }
    }
}

/* Z (16 matrices of nt x 16 int32, matrix xi at xi * zs) -> the sums
 * of the chunk's valid outputs in b->t, in the order of b->pos: per tile,
 * (A^T Z A) / 4 for its 4 outputs, those with mask bit dy * 2 + dx. */
TGT static void output_transform(const wbufs *b, const uint8_t *mask,
                                 int64_t nt)
{
    const int64_t zs = b->zs;
    int32_t *t = b->t;
    for (int64_t i = 0; i < nt; i++) {
        if (!mask[i])
            continue;
        __m256i y[2][4]; /* half, output dy * 2 + dx */
        for (int h = 0; h < 2; h++) {
            const int32_t *z = b->z + i * 16 + h * 8;
            __m256i m[16], r[8];
            for (int xi = 0; xi < 16; xi++)
                m[xi] = _mm256_loadu_si256((const __m256i *)(z + xi * zs));
            for (int q = 0; q < 4; q++) /* columns: A^T Z */
                AT32(r[q], r[4 + q], m[q], m[4 + q], m[8 + q], m[12 + q]);
            for (int dy = 0; dy < 2; dy++) /* rows: (A^T Z) A, then / 4 */
                AT32(y[h][2 * dy], y[h][2 * dy + 1], r[4 * dy], r[4 * dy + 1],
                     r[4 * dy + 2], r[4 * dy + 3]);
            for (int o = 0; o < 4; o++)
                y[h][o] = _mm256_srai_epi32(y[h][o], 2);
        }
        for (int o = 0; o < 4; o++) {
            if (!(mask[i] >> o & 1))
                continue;
            _mm256_storeu_si256((__m256i *)t, y[0][o]);
            _mm256_storeu_si256((__m256i *)(t + 8), y[1][o]);
            t += 16;
        }
    }
}

int bp_qk_wino_one_chunk(const bp_qk_layer *a)
{
    return bp_qk_wino_tiles(&a->geo) <= chunk_tiles(a);
}

void bp_qk_wino_run(void *y, const uint8_t *x, const bp_qk_layer *a,
                    int64_t p0, int64_t p1, int64_t grp, int64_t b0, int64_t b1,
                    atomic_llong *next, void *scratch)
{
    const bp_conv_geom *g = &a->geo;
    const int64_t oh = g->oh, ow = g->ow, ohw = oh * ow, cg = a->cg;
    const int64_t th = (oh + 1) / 2, tw = (ow + 1) / 2;
    uint8_t *base = scratch;
    base += (64 - (uintptr_t)base % 64) % 64;
    wbufs b;
    layout(a, base, &b);
    /* every tile row that holds a position of [p0, p1); outputs outside
     * the range are computed and not stored */
    const int64_t r0 = p0 / ohw * th + p0 % ohw / ow / 2;
    const int64_t r1 = (p1 - 1) / ohw * th + (p1 - 1) % ohw / ow / 2;
    uint8_t mask[512];
    _Static_assert(sizeof mask >= 512, "a mask per tile of a chunk");
    for (int64_t tc = r0 * tw; tc < (r1 + 1) * tw; tc += b.T) {
        const int64_t nt = (r1 + 1) * tw - tc < b.T ? (r1 + 1) * tw - tc : b.T;
        int64_t np = 0;
        for (int64_t i = 0; i < nt; i++) {
            const int64_t R = (tc + i) / tw, tx = (tc + i) % tw;
            const int64_t n = R / th, ty = R % th;
            mask[i] = 0;
            for (int o = 0; o < 4; o++) {
                int64_t oy = 2 * ty + o / 2, ox = 2 * tx + o % 2;
                int64_t p = n * ohw + oy * ow + ox;
                if (oy < oh && ox < ow && p >= p0 && p < p1) {
                    mask[i] |= (uint8_t)(1 << o);
                    b.pos[np++] = p;
                }
            }
        }
        input_transform(&b, x, a, grp, tc, nt);
        for (int64_t bk = next ? b0 + atomic_fetch_add(next, 1) : b0; bk < b1;
             bk = next ? b0 + atomic_fetch_add(next, 1) : bk + 1) {
            const int64_t rr = bk * BP_QBLOCK;
            const int64_t mb = a->mg - rr < BP_QBLOCK ? a->mg - rr : BP_QBLOCK;
            const int64_t start = (grp * a->mg + rr) * a->k;
            const int8_t *wb;
            if (a->w) {
                wb = a->w + start;
            } else {
                int64_t lead = start % 8;
                bp_qunpack(b.codes, a->wpack + (start - lead) / 8 * a->w_bits,
                           mb * a->k + lead, a->w_bits);
                wb = b.codes + lead;
            }
            weight_transform(b.u, b.us, wb, mb, cg);
            for (int xi = 0; xi < 16; xi++)
                bp_qk_avx2_gemm_i32(b.z + xi * b.zs, b.v + xi * b.vs, nt, cg,
                                    b.u + xi * b.us, b.acc);
            output_transform(&b, mask, nt);
            bp_qk_avx2_store_sums(y, a, a->bias, grp * a->mg + rr, mb, b.pos,
                                  b.t, np);
        }
    }
}

#else /* not x86-64 GCC/Clang: never called (bp_qk_wino_ok is checked with
       * the AVX2 instruction set selected) */

int bp_qk_wino_one_chunk(const bp_qk_layer *a)
{
    (void)a;
    return 0;
}

void bp_qk_wino_run(void *y, const uint8_t *x, const bp_qk_layer *a,
                    int64_t p0, int64_t p1, int64_t grp, int64_t b0, int64_t b1,
                    atomic_llong *next, void *scratch)
{
    (void)y; (void)x; (void)a; (void)p0; (void)p1; (void)grp; (void)b0;
    (void)b1; (void)next; (void)scratch;
}

#endif
