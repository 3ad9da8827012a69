/* check_sensfile.c - the sensitivity file: round trip (read, write, read,
 * write: byte-identical, every double exact), every field missing or
 * mistyped rejected with one line naming the file and field, and what the
 * writer refuses. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonmut.h"
#include "testfs.h"
#include "../sensitivity/sensfile.h"
#include "status.h"

#define SENS BP_SRCDIR "/tests/data/ilp/cnn_sens.json"

static void setup(void)
{
    testfs_setup("check_sensfile");
}

static void teardown(void)
{
    testfs_teardown();
}

START_TEST(test_load_example)
{
    bp_sens *s = NULL;
    ck_assert_int_eq(bp_sens_load(&s, SENS), BP_OK);
    ck_assert_int_eq(s->n_layers, 7);
    ck_assert_str_eq(s->layers[0].name, "stem.conv.weight");
    ck_assert_str_eq(s->layers[0].op, "Conv");
    ck_assert_int_eq(s->layers[0].numel, 144);
    ck_assert_int_eq(s->layers[0].macs, 9216);
    ck_assert_int_eq(s->layers[0].out_channels, 16);
    ck_assert_int_eq(s->layers[6].in_numel, 32);
    ck_assert(s->layers[0].has_bits[2] && s->layers[0].has_bits[8]);
    ck_assert(!s->layers[0].has_bits[7] && !s->layers[0].has_bits[1]);
    ck_assert_int_eq(s->float_params, 19994);
    ck_assert_int_eq(s->samples, 256);
    ck_assert_uint_eq(s->seed, 1);
    ck_assert_str_eq(s->stop_reason, "exact");
    ck_assert_ptr_nonnull(strstr(s->settings, "illustrative"));
    /* Omega = trace / numel * perturbation, as the file states it */
    const bp_sens_layer *l = &s->layers[3];
    ck_assert_double_eq_tol(l->omega[4],
                            l->trace / (double)l->numel * l->perturbation[4],
                            1e-15 * l->omega[4]);
    bp_sens_free(&s);
    ck_assert_ptr_null(s);
    bp_sens_free(&s);
    bp_sens_free(NULL);
}
END_TEST

START_TEST(test_round_trip)
{
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/a.json", tmpdir);
    snprintf(b, sizeof b, "%s/b.json", tmpdir);
    bp_sens *s = NULL, *t = NULL, *u = NULL;
    ck_assert_int_eq(bp_sens_load(&s, SENS), BP_OK);
    /* awkward doubles: 17 digits needed, subnormal, huge */
    s->layers[1].trace = 0.1 + 0.2;
    s->layers[1].perturbation[3] = 4.9406564584124654e-324;
    s->layers[2].omega[2] = 1.7976931348623157e308;
    s->layers[2].top_eig = NAN;
    s->seed = UINT64_C(18446744073709551557);
    s->loss = -0.0;
    ck_assert_int_eq(bp_sens_save(s, a), BP_OK);
    ck_assert_int_eq(bp_sens_load(&t, a), BP_OK);
    ck_assert_int_eq(bp_sens_save(t, b), BP_OK);
    char *ta = slurp(a), *tb = slurp(b);
    ck_assert_str_eq(ta, tb);
    free(ta);
    free(tb);
    ck_assert_int_eq(bp_sens_load(&u, b), BP_OK);
    ck_assert_int_eq(u->n_layers, s->n_layers);
    for (int i = 0; i < s->n_layers; i++) {
        const bp_sens_layer *x = &s->layers[i], *y = &u->layers[i];
        ck_assert_str_eq(x->name, y->name);
        ck_assert_int_eq(x->numel, y->numel);
        ck_assert_int_eq(x->macs, y->macs);
        ck_assert(x->trace == y->trace);
        ck_assert(x->trace_stderr == y->trace_stderr);
        ck_assert((isnan(x->top_eig) && isnan(y->top_eig)) ||
                  x->top_eig == y->top_eig);
        for (int bb = 1; bb <= BP_SENS_MAX_BITS; bb++) {
            ck_assert_int_eq(x->has_bits[bb], y->has_bits[bb]);
            if (x->has_bits[bb]) {
                ck_assert(x->perturbation[bb] == y->perturbation[bb]);
                ck_assert(x->omega[bb] == y->omega[bb]);
            }
        }
    }
    ck_assert_uint_eq(u->seed, UINT64_C(18446744073709551557));
    bp_sens_free(&s);
    bp_sens_free(&t);
    bp_sens_free(&u);
}
END_TEST

static int load_sens(const char *path)
{
    bp_sens *s = NULL;
    int st = bp_sens_load(&s, path);
    bp_sens_free(&s);
    return st;
}

START_TEST(test_every_field)
{
    static const char *const optional[] = {
        "format", "version", "model.float_params", "model.other_params",
        "model.const_bytes",
        "layers[0].macs", "layers[0].out_channels", "layers[0].in_numel",
        "layers[0].out_numel", "layers[0].omega.*", NULL};
    static const char *const skip[] = {"settings.*", NULL};
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/bad.json", tmpdir);
    int n = jsonmut_run(SENS, tmp, load_sens, optional, skip);
    ck_assert_int_gt(n, 60);
}
END_TEST

static void write_text(const char *path, const char *text);

/* loss_increase: optional as a whole, but when present exactly the
 * perturbation's keys, each a finite number (negative allowed: the measured
 * remainder of a smooth loss can dip below zero). */
START_TEST(test_loss_increase)
{
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/li.json", tmpdir);
    snprintf(b, sizeof b, "%s/li2.json", tmpdir);
    bp_sens *s = NULL, *t = NULL;
    ck_assert_int_eq(bp_sens_load(&s, SENS), BP_OK);
    for (int i = 0; i < s->n_layers; i++) {
        ck_assert(!s->layers[i].has_loss_increase);
        s->layers[i].has_loss_increase = 1;
        for (int bb = 1; bb <= BP_SENS_MAX_BITS; bb++)
            s->layers[i].loss_increase[bb] = (i == 1 && bb == 8)
                                                 ? -1.2345678901234567e-7
                                                 : 0.1 * bb + 1.0 / 3 + i;
    }
    ck_assert_int_eq(bp_sens_save(s, a), BP_OK);
    ck_assert_int_eq(bp_sens_load(&t, a), BP_OK);
    for (int i = 0; i < s->n_layers; i++) {
        ck_assert(t->layers[i].has_loss_increase);
        for (int bb = 1; bb <= BP_SENS_MAX_BITS; bb++)
            if (s->layers[i].has_bits[bb])
                ck_assert(t->layers[i].loss_increase[bb] ==
                          s->layers[i].loss_increase[bb]);
    }
    ck_assert_int_eq(bp_sens_save(t, b), BP_OK);
    char *ta = slurp(a), *tb = slurp(b);
    ck_assert_str_eq(ta, tb);
    ck_assert_ptr_nonnull(strstr(ta, "\"loss_increase\""));
    free(tb);
    static const char *const optional[] = {
        "format", "version", "model.float_params", "model.other_params",
        "model.const_bytes",
        "layers[0].macs", "layers[0].out_channels", "layers[0].in_numel",
        "layers[0].out_numel", "layers[0].omega.*", "layers[0].loss_increase",
        NULL};
    static const char *const skip[] = {"settings.*", NULL};
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/bad.json", tmpdir);
    ck_assert_int_gt(jsonmut_run(a, tmp, load_sens, optional, skip), 60);
    /* a key perturbation lacks, and a non-finite value */
    char *u = NULL;
    const char *at = strstr(ta, "\"loss_increase\"");
    ck_assert_ptr_nonnull(at);
    const char *k = strstr(at, "\"8\":");
    ck_assert_ptr_nonnull(k);
    size_t n = strlen(ta) + 8;
    u = malloc(n);
    snprintf(u, n, "%.*s\"9\":%s", (int)(k - ta), ta, k + 4);
    write_text(tmp, u);
    ck_assert_int_eq(load_sens(tmp), BP_EINVAL);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "loss_increase"));
    free(u);
    t->layers[0].loss_increase[4] = NAN;
    ck_assert_int_eq(bp_sens_save(t, b), BP_EINVAL);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "layers[0].loss_increase"));
    free(ta);
    bp_sens_free(&s);
    bp_sens_free(&t);
}
END_TEST

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void expect_bad(const char *text, const char *needle)
{
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/x.json", tmpdir);
    write_text(tmp, text);
    bp_sens *s = NULL;
    int st = bp_sens_load(&s, tmp);
    ck_assert_msg(st == BP_EINVAL, "accepted: %s", text);
    ck_assert_msg(strstr(bp_errmsg(), needle) != NULL, "'%s' lacks '%s'",
                  bp_errmsg(), needle);
    ck_assert_ptr_null(s);
}

/* text with the first `from` after `after` replaced by `to` (caller frees) */
static char *replace(const char *text, const char *after, const char *from,
                     const char *to)
{
    const char *a = strstr(text, after);
    ck_assert_ptr_nonnull(a);
    const char *p = strstr(a, from);
    ck_assert_ptr_nonnull(p);
    size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
    char *r = malloc(n);
    snprintf(r, n, "%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
    return r;
}

START_TEST(test_values)
{
    char *good = slurp(SENS), *t;
    t = replace(good, "\"perturbation\"", "\"8\": ", "\"9\": ");
    expect_bad(t, "no perturbation for 8 bits");   /* omega.8 dangling */
    free(t);
    t = replace(good, "\"perturbation\"", "\"2\": ", "\"2\": -");
    expect_bad(t, ">= 0");
    free(t);
    t = replace(good, "\"perturbation\"", "\"2\": ", "\"17\": ");
    expect_bad(t, "not a bit-width");
    free(t);
    t = replace(good, "\"perturbation\"", "\"2\": ", "\"02\": ");
    expect_bad(t, "not a bit-width");
    free(t);
    t = replace(good, "\"layers\"", "res1a.conv.weight", "stem.conv.weight");
    expect_bad(t, "names must be unique");
    free(t);
    t = replace(good, "\"layers\"", "\"numel\": 144", "\"numel\": 144.5");
    expect_bad(t, "layers[0].numel");
    free(t);
    t = replace(good, "\"layers\"", "\"numel\": 144", "\"numel\": 0");
    expect_bad(t, "layers[0].numel");
    free(t);
    t = replace(good, "\"seed\"", "1", "\"12x\"");
    expect_bad(t, "seed");
    free(t);
    t = replace(good, "\"format\"", "bitplan-sensitivity", "bitplan-plan");
    expect_bad(t, "format");
    free(t);
    expect_bad("{\"layers\": [", "not valid JSON");
    expect_bad("[1, 2]", "top level");
    expect_bad("{\"layers\": []}", "layers: 0 entries");
    free(good);
    bp_sens *s = NULL;
    ck_assert_int_eq(bp_sens_load(&s, "/nonexistent/s.json"), BP_EIO);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "/nonexistent/s.json"));
}
END_TEST

START_TEST(test_save_refuses)
{
    char out[300];
    snprintf(out, sizeof out, "%s/never.json", tmpdir);
    bp_sens *s = NULL;
    ck_assert_int_eq(bp_sens_load(&s, SENS), BP_OK);
    s->layers[2].trace = INFINITY;
    ck_assert_int_eq(bp_sens_save(s, out), BP_EINVAL);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "layers[2].trace.mean"));
    ck_assert_int_ne(access(out, F_OK), 0);
    s->layers[2].trace = 1;
    free(s->settings);
    s->settings = strdup("[1]");
    ck_assert_int_eq(bp_sens_save(s, out), BP_EINVAL);
    ck_assert_int_ne(access(out, F_OK), 0);
    bp_sens_free(&s);
    /* a new empty file: no layers */
    ck_assert_int_eq(bp_sens_new(&s, 0), BP_OK);
    ck_assert_int_eq(bp_sens_save(s, out), BP_EINVAL);
    bp_sens_free(&s);
    ck_assert_int_eq(bp_sens_new(&s, 2), BP_OK);
    ck_assert(isnan(s->layers[1].top_eig));
    bp_sens_free(&s);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("sensfile");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_load_example);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_every_field);
    tcase_add_test(tc, test_loss_increase);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_save_refuses);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
