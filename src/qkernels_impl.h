/* qkernels_impl.h - what the integer kernel files share internally: the
 * AVX-512 VNNI entry points (qkernels_x86.c), the AVX2 ones (qkernels_avx2.c)
 * and scalar helpers used by both
 * the portable and the vector code.  Not installed. */
#ifndef BP_QKERNELS_IMPL_H
#define BP_QKERNELS_IMPL_H

#include "qkernels.h"
#include "quant.h"

#include <stdatomic.h>

/* Positions per tile of the VNNI GEMM: tiles read rows up to the next
 * multiple of it (within BP_QK_ROWPAD). */
#define BP_QK_TILE 12
_Static_assert(BP_QK_TILE < BP_QK_ROWPAD, "a tile's excess rows fit the pad");
_Static_assert(48 % BP_QK_TILE == 0, "a tile height divides the chunk unit");

/* 1 when the CPU and OS run AVX-512 F/BW/VL with VNNI. */
int bp_qk_x86_vnni_available(void);

/* The GEMM and epilogue of bp_qk_layer_run for positions [pc, pc + np) from
 * rows (np + BP_QK_ROWPAD, ldr) uint8 (xor80: a signed input fed as x + 128,
 * compensated by bias_x), channel blocks [b0, b1) of group grp, whose int8
 * codes start at w0. */
void bp_qk_x86_gemm_vnni(void *y, const uint8_t *rows, int64_t ldr, int64_t np,
                         int64_t pc, const bp_qk_layer *a, int64_t grp,
                         int64_t b0, int64_t b1, const int8_t *w0, int xor80);

/* Unpacks the first codes of a b-bit stream with AVX-512 BW (4 and 2 bits)
 * or BMI2 (the other widths), in whole vectors / groups of 8 only; returns
 * how many it did (a multiple of 8).  The caller does the rest. */
int64_t bp_qk_x86_unpack(int8_t *dst, const uint8_t *src, int64_t n, int bits);

/* Whether bp_qk_x86_unpack uses AVX-512 VBMI (vpermb, vpmultishiftqb) for
 * 3, 5, 6 and 7 bits: on by default where the CPU runs it (Ice Lake, Zen 4
 * and later; not Cascade Lake, which has VNNI without it).  Sets it (on
 * only where available, for tests to reach both paths) and returns the
 * previous setting. */
int bp_qk_x86_vbmi_set(int on);

/* Codes [i, n) of a b-bit stream (b not 2, 4 or 8), 8 at a time with BMI2's
 * pdep, as far as whole 8-byte loads stay in the stream; returns the next
 * code to do.  Only where the CPU has BMI2. */
int64_t bp_qk_x86_unpack_pdep(int8_t *dst, const uint8_t *src, int64_t i,
                              int64_t n, int bits);

/* dst (n) = bp_act_quantize(x, scale, lo, hi) as bytes (int8 or uint8
 * codes), 8 at a time with AVX-512; returns how many it did (a multiple of
 * 8).  The caller does the rest. */
int64_t bp_qk_x86_quantize(uint8_t *dst, const float *x, int64_t n,
                           double scale, int32_t lo, int32_t hi);

/* The same with AVX2, for CPUs without AVX-512. */
int64_t bp_qk_avx2_quantize(uint8_t *dst, const float *x, int64_t n,
                            double scale, int32_t lo, int32_t hi);

/* Positions per tile of the AVX2 GEMM (rows read up to a multiple of it). */
#define BP_QK_AVX2_TILE 6
/* Positions per step of its 16-channel kernel on 8-bit weights (half a tile) */
#define BP_QK_AVX2_FULL_TILE 3
_Static_assert(BP_QK_AVX2_TILE % BP_QK_AVX2_FULL_TILE == 0, "steps fill a tile");
_Static_assert(BP_QK_TILE % BP_QK_AVX2_TILE == 0, "both tiles divide the chunk");

/* 1 when the CPU and OS run AVX2 and BMI2. */
int bp_qk_x86_avx2_available(void);

/* Row of the odd widths 3, 5, 6, 7 in the vector unpackers' constant
 * tables (one row per width, in that order). */
static inline int bp_qk_odd_row(int bits) { return bits == 3 ? 0 : bits - 4; }

/* Per odd width (row bp_qk_odd_row) and code t of a group of 8 (the
 * group's b bytes), the vector unpackers' constants: the two bytes that
 * hold code t (its bits start at t * b), the code's bit offset r in them,
 * and 2^(8 - r) (AVX2 shifts words by multiplying).  Constants, not built
 * per call: at batch 1 a block's unpacking is short enough for a table
 * built per call to cancel a vector path's gain (measured with VBMI). */
extern const int8_t bp_qk_odd_bytes[4][16];
extern const int16_t bp_qk_odd_shift[4][8];
extern const int16_t bp_qk_odd_mul[4][8];

/* bp_qk_x86_unpack's contract with AVX2 (every width 32 codes at a time;
 * 3, 5, 6 and 7 bits up to 8 - b bytes short of the stream's end) and
 * BMI2 (those last codes). */
int64_t bp_qk_avx2_unpack(int8_t *dst, const uint8_t *src, int64_t n, int bits);

/* Bytes of the int16 copy of one weight block bp_qk_avx2_gemm works in. */
size_t bp_qk_avx2_wbytes(const bp_qk_layer *a);

/* np rows of kp codes (uint8, or int8 when sign) at stride lds -> dst as
 * int16 in tiles of BP_QK_AVX2_TILE rows (zero rows up to a whole tile),
 * each tile's k groups of 4 interleaved: (tile, kp / 4, tile row, 4), so
 * that a tile reads one sequential stream. */
void bp_qk_avx2_widen_rows(int16_t *dst, const uint8_t *src, int64_t lds,
                           int64_t np, int64_t kp, int sign);

/* 1 when the AVX2 GEMM runs this layer on bytes (weights of at most 6
 * bits): its rows are then bp_qk_avx2_pack_rows8's, signed inputs fed as
 * x + 128 (xor80) against bias_x; else bp_qk_avx2_widen_rows'. */
int bp_qk_avx2_narrow(const bp_qk_layer *a);

/* np rows of kp uint8 codes at stride lds -> dst in the same tiled order as
 * bp_qk_avx2_widen_rows, as bytes. */
void bp_qk_avx2_pack_rows8(uint8_t *dst, const uint8_t *src, int64_t lds,
                           int64_t np, int64_t kp);

/* The GEMM and epilogue of bp_qk_layer_run for positions [pc, pc + np)
 * from rows in the tiled order above (int16, or uint8 when narrow),
 * channel blocks [b0, b1) of group grp whose int8 codes start at w0; wbuf
 * (bp_qk_avx2_wbytes) and acc ((np rounded up) x 16 int32) are scratch. */
void bp_qk_avx2_gemm(void *y, const void *rows, int64_t np, int64_t pc,
                     const bp_qk_layer *a, int64_t grp, int64_t b0, int64_t b1,
                     const int8_t *w0, void *wbuf, int32_t *acc, int xor80);

/* The int32 sums of one block of 16 channels, without bias or epilogue:
 * z (np, 16) = rows16 (np tiled as bp_qk_avx2_widen_rows', kp int16 each)
 * x w16 (bp_qk_avx2_wbytes' layout: [half][kp / 4][8 channels x 4]); acc
 * holds (np rounded up to a tile) x 32 int32 of partial sums.  Sums wrap
 * modulo 2^32. */
void bp_qk_avx2_gemm_i32(int32_t *z, const int16_t *rows16, int64_t np,
                         int64_t kp, const int16_t *w16, int32_t *acc);

/* The epilogue of the AVX2 GEMM on given sums: t (n, 16) int32 are the
 * products of n positions pos[i] and channels c0 .. c0 + mb - 1 (mb <= 16,
 * global channel numbers), to which bias[c] is added. */
void bp_qk_avx2_store_sums(void *y, const bp_qk_layer *a, const int32_t *bias,
                           int64_t c0, int64_t mb, const int64_t *pos,
                           const int32_t *t, int64_t n);

/* ---- Winograd F(2x2, 3x3) on AVX2 (qwino_avx2.c) ---- */

/* 1 when the AVX2 kernels run this layer by Winograd (bp_qk_wino_shape and
 * bp_qk_wino_pays, unless turned off). */
int bp_qk_wino_ok(const bp_qk_layer *a);
/* Scratch bytes of bp_qk_wino_run (0 when the layer is not one). */
size_t bp_qk_wino_scratch(const bp_qk_layer *a);
/* bp_qk_layer_run for such a layer on AVX2; with next, the blocks b0 +
 * (*next)++ while below b1 (threads taking blocks as they finish). */
void bp_qk_wino_run(void *y, const uint8_t *x, const bp_qk_layer *a,
                    int64_t p0, int64_t p1, int64_t grp, int64_t b0, int64_t b1,
                    atomic_llong *next, void *scratch);
/* 1 when all the layer's tiles are one chunk (its input transformed once
 * per call). */
int bp_qk_wino_one_chunk(const bp_qk_layer *a);

/* The blocks of group grp, all positions, taken one by one from *next by
 * the threads that call it with the same counter (0 at first): a thread
 * that runs slower takes fewer.  Only where bp_qk_layer_shared_ok. */
void bp_qk_layer_run_shared(void *y, const void *x, const bp_qk_layer *a,
                            int64_t grp, atomic_llong *next, void *scratch);
int bp_qk_layer_shared_ok(const bp_qk_layer *a);
/* The Winograd path off (0), on where it pays (1, the default) or on for
 * every layer it can run (2), for tests and benches; returns the previous
 * setting. */
int bp_qk_wino_set(int on);

/* The scalar epilogue of one output element, t = accumulator + bias. */
void bp_qk_epilogue(void *y, const bp_qk_layer *a, int64_t p, int64_t c,
                    int64_t t);

/* Counted taps of pool window (oy, ox) (the float kernel's rule). */
int64_t bp_qk_pool_count(const bp_pool_geom *g, int64_t oy, int64_t ox);

#endif
