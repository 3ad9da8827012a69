/* check_quant.c - unit tests of the quantizers (quant.h), dyadic numbers and
 * the packed weight layout (qkernels.h).
 *
 * Dyadic rescaling is checked against exact rational rounding computed a
 * different way (quotient and remainder of x * m by 2^s, round half up) on
 * edge cases: exact ties, values one below and above a tie, negative values,
 * the largest products, every shift, and saturating clamps.  Packing is
 * checked as a round trip for every width 2..8 and lengths that leave every
 * possible partial byte, and the blocked order as a permutation. */
#include "qkernels.h"
#include "qkernels_impl.h"
#include "quant.h"
#include "status.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testrng.h"

/* A check inside hot loops: a passing ck_assert writes a checkpoint. */
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            ck_abort_msg("check failed: %s", #cond);                           \
    } while (0)

/* round(p / 2^s) with ties up, from the floor quotient and remainder. */
static int64_t exact_round(int64_t p, int s)
{
    if (s == 0)
        return p;
    int64_t d = (int64_t)1 << s;
    int64_t q = p / d, r = p % d;
    if (r < 0) { /* make the remainder non-negative: floor division */
        q -= 1;
        r += d;
    }
    /* r / d >= 1/2  <=>  2r >= d */
    return q + (r >= d - r ? 1 : 0);
}

START_TEST(test_rshift_round_edges)
{
    for (int s = 1; s <= 62; s++) {
        int64_t d = (int64_t)1 << s, half = d / 2;
        int64_t cases[] = {0, 1, -1, half, -half, half - 1, -half + 1, half + 1,
                           -half - 1, d, -d, 3 * half, -3 * half, d - 1, -(d - 1)};
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            int64_t v = cases[i];
            /* the contract: |v| + 2^(s-1) < 2^63 */
            if (v > ((int64_t)1 << 62) || v < -((int64_t)1 << 62))
                continue;
            ck_assert_int_eq(bp_rshift_round(v, s), exact_round(v, s));
        }
        /* ties go up: +half -> 1, -half -> 0 */
        ck_assert_int_eq(bp_rshift_round(half, s), 1);
        ck_assert_int_eq(bp_rshift_round(-half, s), 0);
        ck_assert_int_eq(bp_rshift_round(-half - 1, s), -1);
        if (s < 62) {
            ck_assert_int_eq(bp_rshift_round(3 * half, s), 2);
            ck_assert_int_eq(bp_rshift_round(-3 * half, s), -1);
        }
    }
    ck_assert_int_eq(bp_rshift_round(-7, 0), -7);
}
END_TEST

START_TEST(test_dyadic_apply_random)
{
    rng r = {42};
    for (int i = 0; i < 200000; i++) {
        /* products up to 2^62: |x| < 2^31, m < 2^31 */
        int64_t x = rng_int(&r, -((int64_t)1 << 31) + 1, ((int64_t)1 << 31) - 1);
        if (i % 3 == 0)
            x = rng_int(&r, -300, 300);
        int32_t m = (int32_t)rng_int(&r, 0, ((int64_t)1 << 31) - 1);
        int s = (int)rng_int(&r, 0, 62);
        CHECK(bp_dyadic_apply(x, m, s) == exact_round(x * (int64_t)m, s));
    }
    /* the largest magnitudes */
    int64_t xm = ((int64_t)1 << 31) - 1;
    int32_t mm = INT32_MAX;
    for (int s = 0; s <= 62; s++) {
        ck_assert_int_eq(bp_dyadic_apply(xm, mm, s), exact_round(xm * mm, s));
        ck_assert_int_eq(bp_dyadic_apply(-xm, mm, s), exact_round(-xm * mm, s));
    }
}
END_TEST

START_TEST(test_dyadic_from)
{
    int32_t m;
    int s;
    rng r = {7};
    for (int i = 0; i < 100000; i++) {
        double ratio = ldexp(1.0 + (double)rng_int(&r, 0, 1 << 30) / (1 << 30),
                             (int)rng_int(&r, -31, 29));
        CHECK(bp_dyadic_from(ratio, &m, &s) == BP_OK);
        CHECK(m >= 1 << 30 && s >= 0 && s <= BP_DYADIC_MAX_SHIFT);
        double back = ldexp((double)m, -s);
        CHECK(fabs(back - ratio) <= ratio * 0x1p-31);
    }
    /* exact powers of two and simple ratios are exact */
    ck_assert_int_eq(bp_dyadic_from(1.0, &m, &s), BP_OK);
    ck_assert_double_eq(ldexp((double)m, -s), 1.0);
    ck_assert_int_eq(bp_dyadic_from(0.75, &m, &s), BP_OK);
    ck_assert_double_eq(ldexp((double)m, -s), 0.75);
    /* tiny ratios keep shift 62, zero is m = 0 */
    ck_assert_int_eq(bp_dyadic_from(1e-12, &m, &s), BP_OK);
    ck_assert_int_eq(s, 62);
    ck_assert_int_eq(bp_dyadic_from(0.0, &m, &s), BP_OK);
    ck_assert_int_eq(m, 0);
    ck_assert_int_eq(bp_dyadic_apply(12345, m, s), 0);
    /* rounding up to 2^31 carries into the exponent */
    ck_assert_int_eq(bp_dyadic_from(0.99999999999, &m, &s), BP_OK);
    ck_assert_int_eq(m, 1 << 30);
    ck_assert_int_eq(s, 30);
    /* out of range */
    ck_assert_int_eq(bp_dyadic_from(-1.0, &m, &s), BP_EINVAL);
    ck_assert_int_eq(bp_dyadic_from(NAN, &m, &s), BP_EINVAL);
    ck_assert_int_eq(bp_dyadic_from(INFINITY, &m, &s), BP_EINVAL);
    ck_assert_int_eq(bp_dyadic_from(4294967296.0, &m, &s), BP_EINVAL);
}
END_TEST

START_TEST(test_dyadic24)
{
    rng r = {8};
    uint32_t p;
    for (int i = 0; i < 100000; i++) {
        double ratio = ldexp(1.0 + (double)rng_int(&r, 0, 1 << 30) / (1 << 30),
                             (int)rng_int(&r, -38, 23));
        CHECK(bp_dyadic24_from(ratio, &p) == BP_OK);
        int32_t m = bp_dyadic24_m(p);
        int s = bp_dyadic24_s(p);
        CHECK(m >= 1 << 23 && m < 1 << 24 && s >= 0 && s <= 62);
        CHECK(fabs(ldexp((double)m, -s) - ratio) <= ratio * 0x1p-24);
    }
    ck_assert_int_eq(bp_dyadic24_from(0.375, &p), BP_OK);
    ck_assert_double_eq(ldexp((double)bp_dyadic24_m(p), -bp_dyadic24_s(p)), 0.375);
    ck_assert_int_eq(bp_dyadic24_from(1e-15, &p), BP_OK);
    ck_assert_int_eq(bp_dyadic24_s(p), 62);
    ck_assert_int_eq(bp_dyadic24_from(0.0, &p), BP_OK);
    ck_assert_int_eq(bp_dyadic24_m(p), 0);
    ck_assert_int_eq(bp_dyadic24_from(16777216.0, &p), BP_EINVAL);
    ck_assert_int_eq(bp_dyadic24_from(-0.5, &p), BP_EINVAL);
    /* the largest accumulator times the largest multiplier stays exact */
    ck_assert_int_eq(bp_dyadic_apply(INT32_MAX, (1 << 24) - 1, 62),
                     exact_round((int64_t)INT32_MAX * ((1 << 24) - 1), 62));
}
END_TEST

/* Requantising with a dyadic number equals rounding the exact rational
 * x * m / 2^s, including saturation of the clamp on both sides. */
START_TEST(test_requant_saturation)
{
    int32_t m;
    int s;
    ck_assert_int_eq(bp_dyadic_from(0.5, &m, &s), BP_OK);
    int8_t x[6] = {-128, -3, -1, 1, 3, 127};
    uint8_t y[6];
    bp_qk_requant(y, BP_QT_U8, x, BP_QT_I8, m, s, 6, 0, 255);
    /* -64 -> 0 (clamp), -1.5 -> -1 -> 0, -0.5 -> 0, 0.5 -> 1, 1.5 -> 2, 63.5 -> 64 */
    ck_assert_int_eq(y[0], 0);
    ck_assert_int_eq(y[1], 0);
    ck_assert_int_eq(y[2], 0);
    ck_assert_int_eq(y[3], 1);
    ck_assert_int_eq(y[4], 2);
    ck_assert_int_eq(y[5], 64);
    int8_t z[6];
    ck_assert_int_eq(bp_dyadic_from(3.0, &m, &s), BP_OK);
    bp_qk_requant(z, BP_QT_I8, x, BP_QT_I8, m, s, 6, -127, 127);
    ck_assert_int_eq(z[0], -127);
    ck_assert_int_eq(z[1], -9);
    ck_assert_int_eq(z[2], -3);
    ck_assert_int_eq(z[5], 127);
}
END_TEST

START_TEST(test_act_quantizer)
{
    int32_t lo, hi;
    bp_act_range(8, 0, &lo, &hi);
    ck_assert_int_eq(lo, 0);
    ck_assert_int_eq(hi, 255);
    bp_act_range(8, 1, &lo, &hi);
    ck_assert_int_eq(lo, -127);
    ck_assert_int_eq(hi, 127);
    bp_act_range(4, 1, &lo, &hi);
    ck_assert_int_eq(hi, 7);
    bp_act_range(2, 0, &lo, &hi);
    ck_assert_int_eq(hi, 3);
    /* half away from zero, clamped */
    ck_assert_int_eq(bp_act_quantize(2.5f, 1.0, -127, 127), 3);
    ck_assert_int_eq(bp_act_quantize(-2.5f, 1.0, -127, 127), -3);
    ck_assert_int_eq(bp_act_quantize(0.49999997f, 1.0, -127, 127), 0);
    ck_assert_int_eq(bp_act_quantize(1000.0f, 1.0, -127, 127), 127);
    ck_assert_int_eq(bp_act_quantize(-1000.0f, 1.0, 0, 255), 0);
    ck_assert_int_eq(bp_act_quantize(NAN, 1.0, -127, 127), 0);
    ck_assert_double_eq_tol(bp_act_scale(2.55, 8, 0), 0.01, 1e-15);
    ck_assert_double_eq(bp_act_scale(0.0, 8, 0), 1.0);
}
END_TEST

/* Mean squared error of quantizing x (n) with clip c at bits, unsigned. */
static double data_mse(const float *x, int n, double c, int bits)
{
    int32_t lo, hi;
    bp_act_range(bits, 0, &lo, &hi);
    double scale = bp_act_scale(c, bits, 0), e = 0;
    for (int i = 0; i < n; i++) {
        double d = bp_act_quantize(x[i], scale, lo, hi) * scale - x[i];
        e += d * d;
    }
    return e / n;
}

START_TEST(test_calibration_methods)
{
    enum { N = 100000 };
    float *x = malloc(N * sizeof *x);
    rng r = {3};
    /* half exact zeros (a ReLU), a bulk in [0, 1), a tail of outliers */
    for (int i = 0; i < N; i++)
        x[i] = i % 2 ? 0.0f : (float)((double)(rng_next(&r) >> 11) * 0x1.0p-53);
    for (int i = 0; i < 200; i += 2)
        x[i] = 2.0f + (float)i / 20;
    bp_act_hist h;
    bp_act_hist_init(&h, 12.0);
    bp_act_hist_add(&h, x, N);
    ck_assert_int_eq(h.count, N);
    ck_assert_int_eq(h.zeros, N / 2);
    for (int bits = 2; bits <= 8; bits += 2) {
        double mm = bp_act_clip(&h, BP_CALIB_MINMAX, bits, 0, 99.99);
        double pc = bp_act_clip(&h, BP_CALIB_PERCENTILE, bits, 0, 99.9);
        double ms = bp_act_clip(&h, BP_CALIB_MSE, bits, 0, 99.99);
        ck_assert_double_eq_tol(mm, 11.9, 1e-6);
        ck_assert_msg(pc >= 1.0 && pc < mm, "percentile clip %g", pc);
        /* MSE is what it says, on the data itself, within the histogram's
         * resolution */
        double em = data_mse(x, N, mm, bits), ep = data_mse(x, N, pc, bits);
        double es = data_mse(x, N, ms, bits);
        ck_assert_msg(es <= 1.02 * em && es <= 1.02 * ep,
                      "%d bits: mse clip %g err %g; minmax %g; percentile %g",
                      bits, ms, es, em, ep);
    }
    ck_assert_msg(bp_act_clip(&h, BP_CALIB_MSE, 2, 0, 99.99) <
                      bp_act_clip(&h, BP_CALIB_MSE, 8, 0, 99.99),
                  "fewer bits clip harder");
    /* an all-zero tensor */
    bp_act_hist z;
    bp_act_hist_init(&z, 0.0);
    bp_act_hist_add(&z, x + 1, 1);
    ck_assert_double_eq(bp_act_clip(&z, BP_CALIB_MSE, 8, 1, 99.99), 0.0);
    bp_calib_method m;
    ck_assert_int_eq(bp_calib_method_lookup("percentile", &m), BP_OK);
    ck_assert_int_eq(m, BP_CALIB_PERCENTILE);
    ck_assert_int_eq(bp_calib_method_lookup("kl", &m), BP_EINVAL);
    free(x);
}
END_TEST

START_TEST(test_pack_roundtrip)
{
    int bits = _i + 2; /* 2..8 */
    rng r = {100 + (uint64_t)bits};
    int lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
    enum { MAX = 1100 };
    int8_t *codes = malloc(MAX), *back = malloc(MAX);
    uint8_t *packed = malloc(MAX + 1);
    bp_qk_isa saved = bp_qk_isa_get();
    int vbmi = bp_qk_x86_vbmi_set(1);
    /* every kernel set; VNNI with and without VBMI where the CPU has it */
    for (int run = 0; run < 2 * BP_QK_ISA_COUNT; run++) {
        int isa = run / 2;
        if ((run % 2 && (isa != BP_QK_AVX512VNNI || !vbmi)) ||
            bp_qk_isa_set((bp_qk_isa)isa))
            continue;
        bp_qk_x86_vbmi_set(run % 2 == 0);
        for (int64_t n = 0; n <= 1030; n += n < 140 ? 1 : 67) {
            memset(packed, 0xAB, MAX + 1);
            for (int64_t i = 0; i < n; i++)
                codes[i] = (int8_t)rng_int(&r, lo, hi);
            if (n > 1) { /* the extremes */
                codes[0] = (int8_t)lo;
                codes[n - 1] = (int8_t)hi;
            }
            bp_qpack(packed, codes, n, bits);
            /* nothing written past the packed length */
            CHECK(packed[BP_QPACK_BYTES(n, bits)] == 0xAB);
            bp_qunpack(back, packed, n, bits);
            for (int64_t i = 0; i < n; i++) {
                CHECK(back[i] == codes[i]);
                CHECK(bp_qpack_get(packed, i, bits) == codes[i]);
            }
        }
    }
    bp_qk_isa_set(saved);
    bp_qk_x86_vbmi_set(vbmi);
    /* int4: two per byte, low nibble first */
    if (bits == 4) {
        int8_t c[4] = {-8, 7, 1, -1};
        uint8_t p[2];
        bp_qpack(p, c, 4, 4);
        ck_assert_int_eq(p[0], 0x78);
        ck_assert_int_eq(p[1], 0xF1);
    }
    free(codes);
    free(back);
    free(packed);
}
END_TEST

START_TEST(test_blocked_order_permutation)
{
    rng r = {9};
    for (int t = 0; t < 200; t++) {
        int64_t m = rng_int(&r, 1, 70), k = rng_int(&r, 1, 40);
        char *seen = calloc((size_t)(m * k), 1);
        for (int64_t row = 0; row < m; row++)
            for (int64_t kk = 0; kk < k; kk++) {
                int64_t i = bp_qw_index(m, k, row, kk);
                CHECK(i >= 0 && i < m * k && !seen[i]);
                seen[i] = 1;
            }
        free(seen);
    }
    /* a full block group is 16 channels x 4 k, channel-major */
    ck_assert_int_eq(bp_qw_index(32, 8, 0, 0), 0);
    ck_assert_int_eq(bp_qw_index(32, 8, 0, 3), 3);
    ck_assert_int_eq(bp_qw_index(32, 8, 1, 0), 4);
    ck_assert_int_eq(bp_qw_index(32, 8, 0, 4), 64);
    ck_assert_int_eq(bp_qw_index(32, 8, 16, 0), 128);
}
END_TEST

/* The shared weight quantizer is the definition the sensitivity stage
 * prices: symmetric per channel, max |w| maps to qmax, ties away from 0. */
START_TEST(test_weight_quantizer)
{
    float w[6] = {0.5f, -1.0f, 0.25f, 0.0f, 0.0f, 0.0f}; /* 2 channels x 3 */
    double s[2];
    int32_t q[6];
    ck_assert_int_eq(bp_quant_scales(s, w, 1, 2, 3, 4), BP_OK);
    ck_assert_double_eq(s[0], 1.0 / 7);
    ck_assert_double_eq(s[1], 1.0); /* a zero channel */
    bp_quant_codes(q, w, s, 1, 2, 3, 4);
    ck_assert_int_eq(q[0], 4); /* 3.5 -> 4 */
    ck_assert_int_eq(q[1], -7);
    ck_assert_int_eq(q[2], 2); /* 1.75 -> 2 */
    ck_assert_int_eq(q[3], 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_rshift_round_edges);
    tcase_add_test(tc, test_dyadic_apply_random);
    tcase_add_test(tc, test_dyadic_from);
    tcase_add_test(tc, test_dyadic24);
    tcase_add_test(tc, test_requant_saturation);
    tcase_add_test(tc, test_act_quantizer);
    tcase_add_test(tc, test_calibration_methods);
    tcase_add_loop_test(tc, test_pack_roundtrip, 0, 7);
    tcase_add_test(tc, test_blocked_order_permutation);
    tcase_add_test(tc, test_weight_quantizer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
