/* qkernels_x86.c - the AVX-512 VNNI GEMM of the integer executor, compiled
 * with per-function target attributes and called only after a run-time CPU
 * check (bp_qk_isa_best), so the library still runs on any x86-64.
 *
 * vpdpbusd multiplies 4 unsigned activation bytes by 4 signed weight bytes
 * and adds the sum to an int32 lane, exactly (no saturation).  A 64-byte
 * weight vector holds 16 output channels x 4 k (the blocked order of
 * qkernels.h), and the 4 activation bytes of one position are broadcast, so
 * each accumulator lane is one output channel.  Signed activations are fed as
 * x + 128 and corrected by the per-channel constant 128 * sum_k w, which the
 * model folds into bias_x.  The epilogue (bias, dyadic requantisation, the
 * residual branch, clamping) runs on the accumulators in registers with the
 * same integer formulas as the portable code.
 *
 * oneDNN (libdnnl-dev) is not used, though it is faster on 8-bit layers:
 * measured back to back on ResNet-18's 3x3 layers, one thread, CPU time,
 * its brgconv (u8 x s8 -> s32) took 0.35-0.40 ms where these kernels take
 * 0.59-0.68 ms (about 290-330 against 180-195 GMAC/s).  Using it would need
 * an int32 pass for the bit-exact dyadic epilogue, its own copy of the
 * weights (counted as workspace), its OpenMP runtime run one thread per
 * pool thread, and it cannot read packed sub-8-bit weights, which these
 * kernels unpack per block pair next to their use.  Left for later; the
 * likelier own-code step is convolution without im2col and rows packed
 * 4-byte interleaved per tile (constant broadcast offsets: +20% on the
 * tile alone in a micro-benchmark). */
#include "qkernels_impl.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,bmi2")))

int bp_qk_x86_vnni_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni") &&
           __builtin_cpu_supports("bmi2");
}

/* One block of up to 16 output channels, with its epilogue constants. */
typedef struct blk {
    const int8_t *w;   /* the block's first k group */
    int64_t gs;        /* bytes per k group: 4 * mb */
    __mmask64 wmask;   /* 4 * mb bytes of a group */
    __mmask16 cmask;   /* mb lanes */
    int64_t c0;        /* first (global) channel */
    __m512i wt;        /* the k tail as one zero-padded group */
    __m512i bias;      /* int32 lanes */
    __m512i me, mo;    /* multipliers of even / odd lanes, as int64 */
    __m512i se, so;    /* shifts, int64 */
    __m512i re, ro;    /* rounding constants 2^(s-1) or 0, int64 */
} blk;

/* Per-layer constants of the epilogue. */
typedef struct epi {
    __m512i lo64, hi64, lo32, hi32;
    __m512i sat_lo, sat_hi;
    __m512i rm, rsh, rrnd; /* residual multiplier, shift, rounding (int64) */
    __m512i fsh, frnd;     /* frac shift and its rounding */
} epi;

static int64_t rnd_of(int s) { return s > 0 ? (int64_t)1 << (s - 1) : 0; }

TGT static void blk_setup(blk *b, const bp_qk_layer *a, int64_t grp,
                          int64_t blkno, const int8_t *wb, int xor80)
{
    const int64_t k = a->k, kt = k % 4, kf = k - kt;
    int64_t r0 = blkno * BP_QBLOCK;
    int64_t mb = a->mg - r0 < BP_QBLOCK ? a->mg - r0 : BP_QBLOCK;
    b->w = wb;
    b->gs = 4 * mb;
    b->wmask = mb == 16 ? ~(__mmask64)0 : (((__mmask64)1 << (4 * mb)) - 1);
    b->cmask = (__mmask16)((1u << mb) - 1);
    b->c0 = grp * a->mg + r0;
    /* the k tail (first convolutions: k = kh * kw * 3) is rare: bytewise */
    b->wt = _mm512_setzero_si512();
    if (kt) {
        int8_t tail[64] = {0};
        for (int64_t r = 0; r < mb; r++)
            for (int64_t j = 0; j < kt; j++)
                tail[r * 4 + j] = wb[kf * mb + r * kt + j];
        b->wt = _mm512_loadu_si512(tail);
    }
    /* The constants by masked vector loads, not channel by channel: at
     * batch 1 a block's products take about as long as a scalar setup of
     * its 16 channels did.  Lanes past mb load 0 (multiplier, shift and
     * rounding 0), as the scalar setup left them. */
    b->bias = _mm512_maskz_loadu_epi32(b->cmask,
                                       (xor80 ? a->bias_x : a->bias) + b->c0);
    if (a->out_type == BP_QT_I32) {
        b->me = b->mo = b->se = b->so = b->re = b->ro = _mm512_setzero_si512();
        return;
    }
    __m512i rq = _mm512_maskz_loadu_epi32(b->cmask, a->rq + b->c0);
    /* bp_dyadic24: multiplier m = rq >> 8 (under 2^24), shift s = rq & 255;
     * vpmuldq reads the low half of each int64 lane, so the even channels'
     * multipliers are in place and the odd ones a 32-bit shift away */
    __m512i m = _mm512_srli_epi32(rq, 8);
    __m512i sh = _mm512_and_si512(rq, _mm512_set1_epi32(0xFF));
    const __m512i lo32 = _mm512_set1_epi64(0xFFFFFFFF);
    const __m512i one = _mm512_set1_epi64(1);
    b->me = _mm512_and_si512(m, lo32);
    b->mo = _mm512_srli_epi64(m, 32);
    b->se = _mm512_and_si512(sh, lo32);
    b->so = _mm512_srli_epi64(sh, 32);
    /* 2^(s-1), and 0 at s = 0: the count s - 1 wraps to 2^64 - 1, which
     * vpsllvq turns into 0 */
    b->re = _mm512_sllv_epi64(one, _mm512_sub_epi64(b->se, one));
    b->ro = _mm512_sllv_epi64(one, _mm512_sub_epi64(b->so, one));
}

TGT static void epi_setup(epi *e, const bp_qk_layer *a)
{
    e->lo64 = _mm512_set1_epi64(a->lo);
    e->hi64 = _mm512_set1_epi64(a->hi);
    e->lo32 = _mm512_set1_epi32(a->lo);
    e->hi32 = _mm512_set1_epi32(a->hi);
    e->sat_lo = _mm512_set1_epi64(-BP_QRES_SAT);
    e->sat_hi = _mm512_set1_epi64(BP_QRES_SAT);
    e->rm = _mm512_set1_epi64(a->residual ? a->rm : 0);
    e->rsh = _mm512_set1_epi64(a->residual ? a->rs : 0);
    e->rrnd = _mm512_set1_epi64(a->residual ? rnd_of(a->rs) : 0);
    e->fsh = _mm512_set1_epi64(a->residual ? a->frac : 0);
    e->frnd = _mm512_set1_epi64(a->residual ? rnd_of(a->frac) : 0);
}

/* Stores the 16 channels of block b at position p. */
TGT static inline void store(void *y, const bp_qk_layer *a, const blk *b,
                             const epi *e, int64_t p, __m512i acc)
{
    const int64_t idx = p * a->geo.m + b->c0;
    __m512i t = _mm512_add_epi32(acc, b->bias);
    if (a->out_type == BP_QT_I32) {
        t = _mm512_max_epi32(_mm512_min_epi32(t, e->hi32), e->lo32);
        _mm512_mask_storeu_epi32((int32_t *)y + idx, b->cmask, t);
        return;
    }
    __m512i pe = _mm512_mul_epi32(t, b->me);
    __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(t, 32), b->mo);
    pe = _mm512_srav_epi64(_mm512_add_epi64(pe, b->re), b->se);
    po = _mm512_srav_epi64(_mm512_add_epi64(po, b->ro), b->so);
    if (a->residual) {
        __m128i rb = _mm_maskz_loadu_epi8(b->cmask,
                                          (const uint8_t *)a->res + idx);
        __m512i r = a->res_type == BP_QT_U8 ? _mm512_cvtepu8_epi32(rb)
                                            : _mm512_cvtepi8_epi32(rb);
        __m512i qe = _mm512_mul_epi32(r, e->rm);
        __m512i qo = _mm512_mul_epi32(_mm512_srli_epi64(r, 32), e->rm);
        qe = _mm512_srav_epi64(_mm512_add_epi64(qe, e->rrnd), e->rsh);
        qo = _mm512_srav_epi64(_mm512_add_epi64(qo, e->rrnd), e->rsh);
        pe = _mm512_max_epi64(_mm512_min_epi64(pe, e->sat_hi), e->sat_lo);
        po = _mm512_max_epi64(_mm512_min_epi64(po, e->sat_hi), e->sat_lo);
        qe = _mm512_max_epi64(_mm512_min_epi64(qe, e->sat_hi), e->sat_lo);
        qo = _mm512_max_epi64(_mm512_min_epi64(qo, e->sat_hi), e->sat_lo);
        pe = _mm512_add_epi64(pe, qe);
        po = _mm512_add_epi64(po, qo);
        pe = _mm512_srav_epi64(_mm512_add_epi64(pe, e->frnd), e->fsh);
        po = _mm512_srav_epi64(_mm512_add_epi64(po, e->frnd), e->fsh);
    }
    pe = _mm512_max_epi64(_mm512_min_epi64(pe, e->hi64), e->lo64);
    po = _mm512_max_epi64(_mm512_min_epi64(po, e->hi64), e->lo64);
    __m512i v = _mm512_mask_blend_epi32((__mmask16)0xAAAA, pe,
                                        _mm512_slli_epi64(po, 32));
    _mm_mask_storeu_epi8((uint8_t *)y + idx, b->cmask, _mm512_cvtepi32_epi8(v));
}

static inline int32_t ld32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* vpdpbusd in place.  GCC 12 does not tie the intrinsic's accumulator to its
 * output: it copies or spills every accumulator around each product, which
 * measured 90-130 GMAC/s on one core where the instruction alone sustains
 * about 280.  The asm form with a "+v" accumulator keeps the 24
 * accumulators of a tile in registers (the tile code below names them one
 * by one for the same reason: an array of vectors was not scalarised). */
#define DPBUSD(acc, x, w) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w))

/* Row i's 4 activation bytes at k group g, broadcast. */
#define BCAST(i, g) _mm512_set1_epi32(ld32(rows + (i) * ldr + 4 * (g)))

#define X12(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)
#define X4(M) M(0) M(1) M(2) M(3)
#define X1(M) M(0)

/* Tile of XN positions (12, 4 or 1) x 2 blocks (32 channels): at 12, 24
 * accumulators, 2 weight vectors, 1 broadcast; LOAD_MASK: the blocks may be
 * partial (masked loads). */
#define UK2(NAME, LOADW, XN)                                                   \
    TGT static void NAME(void *y, const uint8_t *rows, int64_t ldr, int64_t ni, \
                         int64_t p, const bp_qk_layer *a, const blk *bk,       \
                         int64_t ngroups, int tail, const epi *e)              \
    {                                                                          \
        _Pragma("GCC diagnostic push")                                         \
        _Pragma("GCC diagnostic ignored \"-Wshadow\"")                         \
        XN(D2)                                                                 \
        const int8_t *w0p = bk[0].w, *w1p = bk[1].w;                           \
        const int64_t gs0 = bk[0].gs, gs1 = bk[1].gs;                          \
        for (int64_t g = 0; g < ngroups; g++) {                                \
            __m512i w0 = LOADW(0, w0p), w1 = LOADW(1, w1p);                    \
            w0p += gs0;                                                        \
            w1p += gs1;                                                        \
            XN(S2)                                                             \
        }                                                                      \
        if (tail) {                                                            \
            const int64_t g = ngroups;                                         \
            __m512i w0 = bk[0].wt, w1 = bk[1].wt;                              \
            XN(S2)                                                             \
        }                                                                      \
        XN(O2)                                                                 \
        _Pragma("GCC diagnostic pop")                                          \
    }
#define D2(i) __m512i c##i##_0 = _mm512_setzero_si512(), c##i##_1 = c##i##_0;
#define S2(i)                                                                  \
    {                                                                          \
        __m512i xv = BCAST(i, g);                                              \
        DPBUSD(c##i##_0, xv, w0);                                              \
        DPBUSD(c##i##_1, xv, w1);                                              \
    }
#define O2(i)                                                                  \
    if (i < ni) {                                                              \
        store(y, a, &bk[0], e, p + i, c##i##_0);                               \
        store(y, a, &bk[1], e, p + i, c##i##_1);                               \
    }

/* Tile of XN positions x 1 block. */
#define UK1(NAME, LOADW, XN)                                                   \
    TGT static void NAME(void *y, const uint8_t *rows, int64_t ldr, int64_t ni, \
                         int64_t p, const bp_qk_layer *a, const blk *bk,       \
                         int64_t ngroups, int tail, const epi *e)              \
    {                                                                          \
        XN(D1)                                                                 \
        const int8_t *w0p = bk[0].w;                                           \
        const int64_t gs0 = bk[0].gs;                                          \
        for (int64_t g = 0; g < ngroups; g++) {                                \
            __m512i w0 = LOADW(0, w0p);                                        \
            w0p += gs0;                                                        \
            XN(S1)                                                             \
        }                                                                      \
        if (tail) {                                                            \
            const int64_t g = ngroups;                                         \
            __m512i w0 = bk[0].wt;                                             \
            XN(S1)                                                             \
        }                                                                      \
        XN(O1)                                                                 \
    }
#define D1(i) __m512i c##i##_0 = _mm512_setzero_si512();
#define S1(i)                                                                  \
    {                                                                          \
        __m512i xv = BCAST(i, g);                                              \
        DPBUSD(c##i##_0, xv, w0);                                              \
    }
#define O1(i)                                                                  \
    if (i < ni)                                                                \
        store(y, a, &bk[0], e, p + i, c##i##_0);

#define LOAD_FULL(j, ptr) _mm512_loadu_si512(ptr)
#define LOAD_MASK(j, ptr) _mm512_maskz_loadu_epi8(bk[j].wmask, ptr)

#define UK_ALL(N)                                                              \
    UK2(uk2_full##N, LOAD_FULL, X##N)                                          \
    UK2(uk2_mask##N, LOAD_MASK, X##N)                                          \
    UK1(uk1_full##N, LOAD_FULL, X##N)                                          \
    UK1(uk1_mask##N, LOAD_MASK, X##N)
UK_ALL(12)
UK_ALL(4)
UK_ALL(1)

typedef void (*ukfn)(void *y, const uint8_t *rows, int64_t ldr, int64_t ni,
                     int64_t p, const bp_qk_layer *a, const blk *bk,
                     int64_t ngroups, int tail, const epi *e);
/* [blocks - 1][partial][12, 4, 1 positions] */
static const ukfn uk_tab[2][2][3] = {
    {{uk1_full12, uk1_full4, uk1_full1}, {uk1_mask12, uk1_mask4, uk1_mask1}},
    {{uk2_full12, uk2_full4, uk2_full1}, {uk2_mask12, uk2_mask4, uk2_mask1}}};

#define TILE_I BP_QK_TILE

TGT void bp_qk_x86_gemm_vnni(void *y, const uint8_t *rows, int64_t ldr,
                             int64_t np, int64_t pc, const bp_qk_layer *a,
                             int64_t grp, int64_t b0, int64_t b1,
                             const int8_t *w0, int xor80)
{
    const int64_t ngroups = a->k / 4;
    const int tail = a->k % 4 != 0;
    epi e;
    epi_setup(&e, a);
    blk bk[2];
    for (int64_t b = b0; b < b1;) {
        int J = b1 - b < 2 ? 1 : 2;
        for (int j = 0; j < J; j++)
            blk_setup(&bk[j], a, grp, b + j,
                      w0 + (b + j - b0) * BP_QBLOCK * a->k, xor80);
        /* a partial block is the group's last: only its loads are masked */
        int full = bk[J - 1].cmask == 0xFFFF;
        const ukfn *f = uk_tab[J - 1][!full];
        /* whole tiles, then the rest 4 and 1 at a time: a batch-1 GEMV
         * multiplies its one position, not a tile of 12 (4 positions keep
         * up with a tile's rate while a block's weights stream from L2) */
        int64_t i0 = 0;
        for (; i0 + TILE_I <= np; i0 += TILE_I)
            f[0](y, rows + i0 * ldr, ldr, TILE_I, pc + i0, a, bk, ngroups,
                 tail, &e);
        for (; i0 + 4 <= np; i0 += 4)
            f[1](y, rows + i0 * ldr, ldr, 4, pc + i0, a, bk, ngroups, tail, &e);
        for (; i0 < np; i0++)
            f[2](y, rows + i0 * ldr, ldr, 1, pc + i0, a, bk, ngroups, tail, &e);
        b += J;
    }
}

/* 8 codes are `bits` bytes: pdep spreads them into the 8 bytes of a word,
 * then a borrow-free bytewise (x ^ s) - s sign-extends; whole 8-byte loads
 * while they stay inside the stream. */
__attribute__((target("bmi2"))) int64_t
bp_qk_x86_unpack_pdep(int8_t *dst, const uint8_t *src, int64_t i, int64_t n,
                      int bits)
{
    uint64_t field = (1ull << bits) - 1, mask = 0;
    for (int j = 0; j < 8; j++)
        mask |= field << (8 * j);
    const uint64_t S = 0x0101010101010101ull << (bits - 1);
    const uint64_t H = 0x8080808080808080ull;
    const int64_t bytes = BP_QPACK_BYTES(n, bits);
    for (; i + 8 <= n && i / 8 * bits + 8 <= bytes; i += 8) {
        uint64_t v;
        memcpy(&v, src + i / 8 * bits, 8);
        uint64_t y = _pdep_u64(v, mask) ^ S;
        uint64_t r = ((y | H) - S) ^ ((y ^ ~S) & H);
        memcpy(dst + i, &r, 8);
    }
    return i;
}

#define TGT_VBMI __attribute__((target("avx512f,avx512bw,avx512vbmi")))

static atomic_int vbmi_use = -1; /* -1: not yet detected */

static int vbmi_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vbmi");
}

int bp_qk_x86_vbmi_set(int on)
{
    int was = atomic_load(&vbmi_use);
    atomic_store(&vbmi_use, on && vbmi_available());
    return was < 0 ? vbmi_available() : was;
}

static int use_vbmi(void)
{
    int v = atomic_load(&vbmi_use);
    if (v < 0)
        atomic_store(&vbmi_use, v = vbmi_available());
    return v;
}

#define VB_I(b, j, t) (uint8_t)((j) * (b) + ((t) < (b) ? (t) : 0))
#define VB_L(b, j)                                                             \
    VB_I(b, j, 0), VB_I(b, j, 1), VB_I(b, j, 2), VB_I(b, j, 3), VB_I(b, j, 4), \
        VB_I(b, j, 5), VB_I(b, j, 6), VB_I(b, j, 7)
#define VB_IDX(b)                                                              \
    {VB_L(b, 0), VB_L(b, 1), VB_L(b, 2), VB_L(b, 3),                           \
     VB_L(b, 4), VB_L(b, 5), VB_L(b, 6), VB_L(b, 7)}
#define VB_C(b) 0, (b), 2 * (b), 3 * (b), 4 * (b), 5 * (b), 6 * (b), 7 * (b)
#define VB_CTL(b)                                                              \
    {VB_C(b), VB_C(b), VB_C(b), VB_C(b), VB_C(b), VB_C(b), VB_C(b), VB_C(b)}
/* the byte gather and bit offsets of 3, 5, 6 and 7 bits, as constants: built
 * per call, the tables cost as much as a block's unpacking at batch 1 */
static const uint8_t vb_idx[4][64] = {VB_IDX(3), VB_IDX(5), VB_IDX(6),
                                      VB_IDX(7)};
static const uint8_t vb_ctl[4][64] = {VB_CTL(3), VB_CTL(5), VB_CTL(6),
                                      VB_CTL(7)};

/* 64 codes of b bits (3, 5, 6 or 7) are 8 * b bytes, and the 8 codes of
 * 64-bit lane j are its bytes j * b .. j * b + b - 1: vpermb gathers those
 * into lane j, vpmultishiftqb takes byte t from bit t * b of the lane, and a
 * mask and (x ^ s) - s sign-extend: 5 instructions per 64 codes where the
 * shuffle-and-shift path takes about 15; the masked load reads no byte past
 * the step's.  The example MLP per sample (profile --measure, one run): 3, 5,
 * 6 and 7 bits 1.0-1.1 -> 0.71-0.73 us, as 4 bits (0.69; 8 bits 0.42). */
TGT_VBMI static int64_t unpack_vbmi(int8_t *dst, const uint8_t *src, int64_t n,
                                    int bits)
{
    const int k = bp_qk_odd_row(bits);
    const __m512i vidx = _mm512_loadu_si512(vb_idx[k]);
    const __m512i vctl = _mm512_loadu_si512(vb_ctl[k]);
    const __m512i m = _mm512_set1_epi8((char)((1 << bits) - 1));
    const __m512i s = _mm512_set1_epi8((char)(1 << (bits - 1)));
    const __mmask64 lm = ((__mmask64)1 << (8 * bits)) - 1;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i v = _mm512_maskz_loadu_epi8(lm, src + i / 8 * bits);
        v = _mm512_permutexvar_epi8(vidx, v);
        v = _mm512_and_si512(_mm512_multishift_epi64_epi8(vctl, v), m);
        v = _mm512_sub_epi8(_mm512_xor_si512(v, s), s);
        _mm512_storeu_si512(dst + i, v);
    }
    return i;
}

TGT int64_t bp_qk_x86_unpack(int8_t *dst, const uint8_t *src, int64_t n,
                            int bits)
{
    int64_t i = 0;
    if (bits == 4) {
        /* 32 bytes -> 64 codes: each byte becomes the 16-bit lane
         * [low nibble, high nibble], then 4-bit sign extension per byte */
        const __m512i m4 = _mm512_set1_epi16(0x0F), s8 = _mm512_set1_epi8(8);
        for (; i + 64 <= n; i += 64) {
            __m512i b = _mm512_cvtepu8_epi16(
                _mm256_loadu_si256((const __m256i *)(src + i / 2)));
            __m512i v = _mm512_or_si512(_mm512_and_si512(b, m4),
                                        _mm512_slli_epi16(_mm512_srli_epi16(b, 4), 8));
            v = _mm512_sub_epi8(_mm512_xor_si512(v, s8), s8);
            _mm512_storeu_si512(dst + i, v);
        }
    } else if (bits == 2) {
        /* 16 bytes -> 64 codes: byte b becomes the 32-bit lane of its four
         * 2-bit fields, then 2-bit sign extension per byte */
        const __m512i m2 = _mm512_set1_epi32(0x03030303), s2 = _mm512_set1_epi8(2);
        for (; i + 64 <= n; i += 64) {
            __m512i b = _mm512_cvtepu8_epi32(
                _mm_loadu_si128((const __m128i *)(src + i / 4)));
            __m512i v = _mm512_or_si512(
                _mm512_or_si512(b, _mm512_slli_epi32(b, 6)),
                _mm512_or_si512(_mm512_slli_epi32(b, 12), _mm512_slli_epi32(b, 18)));
            v = _mm512_and_si512(v, m2);
            v = _mm512_sub_epi8(_mm512_xor_si512(v, s2), s2);
            _mm512_storeu_si512(dst + i, v);
        }
    } else if (use_vbmi()) {
        i = unpack_vbmi(dst, src, n, bits);
        i = bp_qk_x86_unpack_pdep(dst, src, i, n, bits);
    } else {
        /* 3, 5, 6, 7 bits: each 128-bit lane takes 16 codes (2 * bits
         * bytes, loaded at their own offset); vpshufb puts the 16-bit window
         * holding code j into word j (codes 0-7 and 8-15 by two controls),
         * vpsrlvw aligns it, packus narrows both halves in order, and
         * (x ^ s) - s sign-extends: 64 codes per step */
        const int k = bp_qk_odd_row(bits);
        const __m128i ca = _mm_loadu_si128((const __m128i *)bp_qk_odd_bytes[k]);
        /* codes 8-15 of a lane: the next group's bytes, b further on */
        const __m128i cb = _mm_add_epi8(ca, _mm_set1_epi8((char)bits));
        const __m512i ctla = _mm512_broadcast_i32x4(ca);
        const __m512i ctlb = _mm512_broadcast_i32x4(cb);
        const __m512i shv = _mm512_broadcast_i32x4(
            _mm_loadu_si128((const __m128i *)bp_qk_odd_shift[k]));
        const __m512i m16 = _mm512_set1_epi16((short)((1 << bits) - 1));
        const __m512i sgn = _mm512_set1_epi8((char)(1 << (bits - 1)));
        const int64_t total = BP_QPACK_BYTES(n, bits);
        const int64_t b2 = 2 * bits;
        /* the last lane reads 16 bytes from 6 * bits past the step's start */
        for (; i + 64 <= n && i / 8 * bits + 3 * b2 + 16 <= total; i += 64) {
            const uint8_t *p = src + i / 8 * bits;
            __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p));
            v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + b2)), 1);
            v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 2 * b2)), 2);
            v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 3 * b2)), 3);
            __m512i a = _mm512_and_si512(_mm512_srlv_epi16(_mm512_shuffle_epi8(v, ctla), shv), m16);
            __m512i b = _mm512_and_si512(_mm512_srlv_epi16(_mm512_shuffle_epi8(v, ctlb), shv), m16);
            __m512i c = _mm512_packus_epi16(a, b);
            c = _mm512_sub_epi8(_mm512_xor_si512(c, sgn), sgn);
            _mm512_storeu_si512(dst + i, c);
        }
        i = bp_qk_x86_unpack_pdep(dst, src, i, n, bits);
    }
    return i;
}

/* bp_act_quantize on 8 lanes of doubles: the same division, the clamp
 * first (so the truncation stays in int32 range; hi and lo round to
 * themselves), then round half away from zero from the exact fraction; NaN
 * lanes give 0. */
TGT int64_t bp_qk_x86_quantize(uint8_t *dst, const float *x, int64_t n,
                               double scale, int32_t lo, int32_t hi)
{
    const __m512d vs = _mm512_set1_pd(scale), vlo = _mm512_set1_pd(lo),
                  vhi = _mm512_set1_pd(hi), half = _mm512_set1_pd(0.5),
                  mhalf = _mm512_set1_pd(-0.5);
    const __m256i one = _mm256_set1_epi32(1);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d v = _mm512_div_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), vs);
        __mmask8 nan = _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q);
        __m512d c = _mm512_min_pd(_mm512_max_pd(v, vlo), vhi);
        __m256i t = _mm512_cvttpd_epi32(c);
        __m512d f = _mm512_sub_pd(c, _mm512_cvtepi32_pd(t));
        t = _mm256_mask_add_epi32(t, _mm512_cmp_pd_mask(f, half, _CMP_GE_OQ), t,
                                  one);
        t = _mm256_mask_sub_epi32(t, _mm512_cmp_pd_mask(f, mhalf, _CMP_LE_OQ),
                                  t, one);
        t = _mm256_maskz_mov_epi32((__mmask8)~nan, t);
        _mm_storel_epi64((__m128i *)(dst + i), _mm256_cvtepi32_epi8(t));
    }
    return i;
}

#else /* not x86-64 GCC/Clang: the portable kernels only */

int bp_qk_x86_vnni_available(void) { return 0; }

int bp_qk_x86_vbmi_set(int on)
{
    (void)on;
    return 0;
}

int64_t bp_qk_x86_unpack(int8_t *dst, const uint8_t *src, int64_t n, int bits)
{
    (void)dst; (void)src; (void)n; (void)bits;
    return 0;
}

int64_t bp_qk_x86_unpack_pdep(int8_t *dst, const uint8_t *src, int64_t i,
                              int64_t n, int bits)
{
    (void)dst; (void)src; (void)n; (void)bits;
    return i;
}

int64_t bp_qk_x86_quantize(uint8_t *dst, const float *x, int64_t n,
                           double scale, int32_t lo, int32_t hi)
{
    (void)dst; (void)x; (void)n; (void)scale; (void)lo; (void)hi;
    return 0;
}

void bp_qk_x86_gemm_vnni(void *y, const uint8_t *rows, int64_t ldr, int64_t np,
                         int64_t pc, const bp_qk_layer *a, int64_t grp,
                         int64_t b0, int64_t b1, const int8_t *w0, int xor80)
{
    (void)y; (void)rows; (void)ldr; (void)np; (void)pc; (void)a; (void)grp;
    (void)b0; (void)b1; (void)w0; (void)xor80;
}

#endif
