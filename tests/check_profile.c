/* check_profile.c - every shipped hardware profile validates (and is
 * documented), malformed profiles are refused field by field, --profile
 * names resolve, and the cost model prices choices as cost.h says. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../ilp/cost.h"
#include "jsonmut.h"
#include "testfs.h"
#include "../ilp/profile.h"
#include "status.h"

#define PROFILES BP_SRCDIR "/profiles"

static void setup(void)
{
    setenv("BITPLAN_PROFILE_PATH", PROFILES, 1);
    testfs_setup("check_profile");
}

static void teardown(void)
{
    testfs_teardown();
}

START_TEST(test_shipped_profiles_validate)
{
    DIR *d = opendir(PROFILES);
    ck_assert_ptr_nonnull(d);
    char *readme = slurp(PROFILES "/README.md");
    struct dirent *e;
    int count = 0, kinds[3] = {0};
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json"))
            continue;
        char path[512], stem[256];
        snprintf(path, sizeof path, "%s/%s", PROFILES, e->d_name);
        snprintf(stem, sizeof stem, "%.*s", (int)(n - 5), e->d_name);
        bp_profile *p = NULL;
        int st = bp_profile_load(&p, path);
        ck_assert_msg(st == BP_OK, "%s: %s", path, bp_errmsg());
        ck_assert_str_eq(p->name, stem);
        ck_assert_msg(strstr(readme, stem) != NULL,
                      "profiles/README.md does not describe %s", stem);
        kinds[p->kind]++;
        if (p->kind == BP_PROFILE_ROOFLINE) {
            /* every choice bitplan can make (1..16 bits) runs somewhere */
            const bp_profile_peak *pk;
            ck_assert_int_eq(bp_profile_native(p, 16, 16, &pk), BP_OK);
            ck_assert_int_eq(bp_profile_native(p, 1, 8, &pk), BP_OK);
            ck_assert(p->bytes_per_s > 0 && p->overhead_s >= 0);
        }
        if (p->kind == BP_PROFILE_TABLE) {
            ck_assert_ptr_nonnull(p->fallback);
            ck_assert(p->fallback->kind != BP_PROFILE_TABLE);
        }
        ck_assert_int_eq(bp_profile_has_latency(p),
                         p->kind != BP_PROFILE_BOPS);
        bp_profile_free(&p);
        ck_assert_ptr_null(p);
        count++;
    }
    closedir(d);
    free(readme);
    ck_assert_int_ge(count, 5);
    ck_assert_int_ge(kinds[BP_PROFILE_ROOFLINE], 4);
    ck_assert_int_ge(kinds[BP_PROFILE_TABLE], 1);
    ck_assert_int_eq(kinds[BP_PROFILE_BOPS], 1);
    /* the list, by name */
    const char *must[] = {"nvidia-t4", "nvidia-a100", "x86-avx512-vnni",
                          "arm-cortex-a76", "bops", NULL};
    for (int i = 0; must[i]; i++) {
        bp_profile *p = NULL;
        ck_assert_msg(bp_profile_open(&p, must[i]) == BP_OK, "%s: %s",
                      must[i], bp_errmsg());
        bp_profile_free(&p);
    }
}
END_TEST

START_TEST(test_find)
{
    char buf[4096];
    ck_assert_int_eq(bp_profile_find("nvidia-t4", buf, sizeof buf), BP_OK);
    ck_assert_ptr_nonnull(strstr(buf, "profiles/nvidia-t4.json"));
    ck_assert_int_eq(access(buf, R_OK), 0);
    ck_assert_int_eq(bp_profile_find("my/own.json", buf, sizeof buf), BP_OK);
    ck_assert_str_eq(buf, "my/own.json");
    ck_assert_int_eq(bp_profile_find("mine.json", buf, sizeof buf), BP_OK);
    ck_assert_str_eq(buf, "mine.json");
    ck_assert_int_eq(bp_profile_find("nvidia-t5", buf, sizeof buf), BP_EINVAL);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "profile 'nvidia-t5' not found"));
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "nvidia-t4"));
    ck_assert_ptr_null(strchr(bp_errmsg(), '\n'));
    ck_assert_int_eq(bp_profile_find("bad name", buf, sizeof buf), BP_EINVAL);
    ck_assert_int_eq(bp_profile_find("", buf, sizeof buf), BP_EINVAL);
    bp_profile *p = NULL;
    ck_assert_int_eq(bp_profile_open(&p, "/nonexistent/x.json"), BP_EIO);
    ck_assert_ptr_null(p);
    /* without the environment variable, the source tree still has them
     * (the build records it) */
    unsetenv("BITPLAN_PROFILE_PATH");
    ck_assert_int_eq(bp_profile_find("bops", buf, sizeof buf), BP_OK);
}
END_TEST

static int load_profile(const char *path)
{
    bp_profile *p = NULL;
    int st = bp_profile_load(&p, path);
    bp_profile_free(&p);
    return st;
}

START_TEST(test_every_field_roofline)
{
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/bad.json", tmpdir);
    int n = jsonmut_run(PROFILES "/nvidia-t4.json", tmp, load_profile, NULL,
                        NULL);
    ck_assert_int_gt(n, 30);
}
END_TEST

/* The measured profile's optional objects, field by field: every member of
 * "layer_model" and "op_costs" is checked, the objects themselves and an
 * op's "parallel" costs may be absent. */
START_TEST(test_every_field_fitted)
{
    static const char *const optional[] = {
        "layer_model", "op_costs", "op_costs.ops[2].parallel",
        "layer_model.serial.bits[0].tile_positions", "layer_model.winograd",
        NULL};
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/bad.json", tmpdir);
    int n = jsonmut_run(BP_SRCDIR "/tests/data/profiles/fitted.json", tmp,
                        load_profile, optional, NULL);
    ck_assert_int_gt(n, 40);
}
END_TEST

START_TEST(test_every_field_table)
{
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/bad.json", tmpdir);
    int n = jsonmut_run(PROFILES "/hawq-v3-resnet18-t4.json", tmp,
                        load_profile, NULL, NULL);
    ck_assert_int_gt(n, 15);
}
END_TEST

static void expect_bad(const char *text, const char *needle)
{
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/x.json", tmpdir);
    FILE *f = fopen(tmp, "w");
    fputs(text, f);
    fclose(f);
    bp_profile *p = NULL;
    ck_assert_msg(bp_profile_load(&p, tmp) == BP_EINVAL, "accepted %s", text);
    ck_assert_msg(strstr(bp_errmsg(), needle) != NULL, "'%s' lacks '%s'",
                  bp_errmsg(), needle);
    ck_assert_ptr_null(p);
}

#define HEAD "{\"format\":\"bitplan-profile\",\"version\":1,\"name\":\"x\"," \
             "\"description\":\"d\","
#define ROOF "\"kind\":\"roofline\",\"memory\":{\"bytes_per_s\":1e9,\"source\":\"s\"}," \
             "\"launch_overhead\":{\"seconds\":0,\"source\":\"s\"}," \
             "\"missing_bits\":{\"compute\":\"next-native\",\"storage\":\"packed\",\"source\":\"s\"},"

START_TEST(test_values)
{
    expect_bad(HEAD ROOF "\"peak_ops\":[{\"w_bits\":8,\"a_bits\":8,"
               "\"ops_per_s\":1e12,\"source\":\"\"}]}", "peak_ops[0].source");
    expect_bad(HEAD ROOF "\"peak_ops\":[{\"w_bits\":8,\"a_bits\":8,"
               "\"ops_per_s\":0,\"source\":\"s\"}]}", "> 0");
    expect_bad(HEAD ROOF "\"peak_ops\":[]}", "peak_ops: 0 entries");
    expect_bad(HEAD ROOF "\"peak_ops\":[{\"w_bits\":8,\"a_bits\":8,"
               "\"ops_per_s\":1,\"source\":\"s\"},{\"w_bits\":8,\"a_bits\":8,"
               "\"ops_per_s\":2,\"source\":\"s\"}]}", "also in peak_ops[0]");
    expect_bad(HEAD ROOF "\"peak_ops\":[{\"w_bits\":33,\"a_bits\":8,"
               "\"ops_per_s\":1,\"source\":\"s\"}]}", "peak_ops[0].w_bits");
    expect_bad(HEAD "\"kind\":\"magic\"}", "kind");
    expect_bad("{\"format\":\"bitplan-plan\"}", "format");
    expect_bad(HEAD "\"kind\":\"table\",\"source\":\"s\",\"fallback\":\"no-such\","
               "\"entries\":[{\"layer\":\"a\",\"w_bits\":4,\"a_bits\":4,"
               "\"latency_s\":1}]}", "fallback");
    expect_bad(HEAD "\"kind\":\"table\",\"source\":\"s\",\"fallback\":"
               "\"hawq-v3-resnet18-t4\",\"entries\":[{\"layer\":\"a\","
               "\"w_bits\":4,\"a_bits\":4,\"latency_s\":1}]}", "table profile");
    expect_bad(HEAD "\"kind\":\"table\",\"source\":\"s\",\"fallback\":\"bops\","
               "\"entries\":[{\"shape\":[3,0],\"w_bits\":4,\"a_bits\":4,"
               "\"latency_s\":1}]}", "entries[0].shape[1]");
    expect_bad(HEAD "\"kind\":\"table\",\"fallback\":\"bops\",\"entries\":"
               "[{\"layer\":\"a\",\"w_bits\":4,\"a_bits\":4,\"latency_s\":1}]}",
               "entries[0].source");
}
END_TEST

static bp_profile *open_p(const char *name)
{
    bp_profile *p = NULL;
    ck_assert_msg(bp_profile_open(&p, name) == BP_OK, "%s", bp_errmsg());
    return p;
}

START_TEST(test_cost_model)
{
    bp_layer_facts l = {0};
    l.name = "x.weight";
    l.numel = 1000;
    l.out_channels = 10;
    l.macs = 1000000000;     /* compute-bound on every profile */
    l.in_numel = 100;
    l.out_numel = 100;
    bp_cost c;
    bp_profile *t4 = open_p("nvidia-t4");
    /* bytes = ceil(numel*w/8) + 4*C scales + 4*C int32 bias */
    ck_assert_int_eq(bp_cost_eval(t4, &l, 3, 8, 1, &c), BP_OK);
    ck_assert(c.bytes == 375 + 80);
    ck_assert(c.bops == 1e9 * 24);
    /* 3 bits run at the next native format: INT8 on a T4 */
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + 2e9 / 130e12, 1e-18);
    ck_assert_int_eq(bp_cost_eval(t4, &l, 4, 4, 1, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + 2e9 / 260e12, 1e-18);
    ck_assert_int_eq(bp_cost_eval(t4, &l, 16, 16, 2, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + 4e9 / 65e12, 1e-18);
    /* memory-bound: a tiny-MAC layer pays its traffic */
    l.macs = 1;
    ck_assert_int_eq(bp_cost_eval(t4, &l, 4, 8, 1, &c), BP_OK);
    double traffic = 500 + 80 + 200 * 8 / 8.0;
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + traffic / 320e9, 1e-18);
    ck_assert_int_eq(bp_cost_eval(t4, &l, 17, 8, 1, &c), BP_EINVAL);
    bp_profile_free(&t4);
    l.macs = 1000000000;
    bp_profile *a100 = open_p("nvidia-a100");
    ck_assert_int_eq(bp_cost_eval(a100, &l, 1, 1, 1, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + 2e9 / 4992e12, 1e-18);
    bp_profile_free(&a100);
    bp_profile *bops = open_p("bops");
    ck_assert_int_eq(bp_cost_eval(bops, &l, 4, 8, 1, &c), BP_OK);
    ck_assert(isnan(c.latency_s));
    ck_assert(c.bops == 32e9);
    bp_profile_free(&bops);
}
END_TEST

/* The layer model and the op costs as cost.h writes them, on a grouped
 * convolution with a residual add in both regimes, and the ops charged to
 * it (a MaxPool on either side of parallel_elements, an op kind the
 * profile does not price). */
START_TEST(test_layer_model)
{
    bp_profile *p = NULL;
    ck_assert_msg(bp_profile_load(&p, BP_SRCDIR "/tests/data/profiles/fitted.json")
                  == BP_OK, "%s", bp_errmsg());
    ck_assert(p->lm.present);
    bp_op_fact ops[3] = {{"MaxPool", 800, 200}, {"MaxPool", 4000, 1000},
                         {"Requant", 100, 100}};
    bp_layer_facts l = {0};
    l.name = "g.weight";
    /* Conv 32 -> 48 channels, 4 groups, 3x3, on 6x6 outputs: K = 8*9 = 72,
     * per group 12 channels (padded to 16), 36 positions */
    l.numel = 48 * 8 * 9;
    l.out_channels = 48;
    l.group = 4;
    l.macs = 36 * 48 * 72;
    l.residual = 1;
    l.ops = ops;
    l.n_ops = 3;
    bp_cost c;
    /* 36 positions: tiles of 16 -> 48 rows, 3 tiles per 16-channel block */
    double padded = 48.0 * 72 * 4 * 16, rows = 36.0 * 72 * 4, outs = 36.0 * 48;
    double tiles = 3.0 * 4;
    double opc = (1e-6 + 1e-9 * 800) + (4e-6 + 1e-10 * 4000);
    /* 124416 MACs: parallel at batch 1 (>= 100000) */
    ck_assert_int_eq(bp_cost_eval(p, &l, 3, 8, 1, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + 2e-8 * tiles + 1e-12 * padded +
                            1e-11 * rows + 1e-11 * outs + 0 + 1e-11 * l.numel +
                            opc, 1e-18);
    ck_assert_int_eq(bp_cost_eval(p, &l, 8, 8, 1, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + 2e-8 * tiles + 5e-13 * padded +
                            1e-11 * rows + 1e-11 * outs + opc, 1e-18);
    /* half the MACs (18 positions: 2 tiles, 32 rows): the serial regime,
     * with its residual cost */
    l.macs = 36 * 48 * 72 / 2;
    l.numel = 48 * 8 * 9;
    padded = 32.0 * 72 * 4 * 16, rows /= 2, outs /= 2, tiles = 2.0 * 4;
    ck_assert_int_eq(bp_cost_eval(p, &l, 8, 8, 1, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 1e-6 + 1e-8 * tiles + 1e-12 * padded +
                            1e-10 * rows + 2e-10 * outs + 3e-10 * outs + opc,
                            1e-18);
    /* batch 4: 72 positions (5 tiles, 80 rows), the work x 4, the weights'
     * unpacking once; the first MaxPool now writes 800 elements per run:
     * still serial */
    ck_assert_int_eq(bp_cost_eval(p, &l, 4, 8, 4, &c), BP_OK);
    double opc4 = (1e-6 + 1e-9 * 3200) + (4e-6 + 1e-10 * 16000);
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + 2e-8 * 5 * 4 +
                            1e-12 * 80.0 * 72 * 4 * 16 + 1e-11 * 4 * rows +
                            1e-11 * 4 * outs + 1e-11 * l.numel + opc4, 1e-18);
    /* a GEMV (64 -> 10, one position) in the serial regime: 4-bit weights
     * run tiles of 4 positions (tile_positions), 8-bit ones of 16 (the
     * default), and either pays for a whole tile */
    bp_layer_facts v = {0};
    v.name = "fc.weight";
    v.numel = 640;
    v.out_channels = 10;
    v.group = 1;
    v.macs = 640;
    ck_assert_int_eq(bp_cost_eval(p, &v, 4, 8, 1, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 1e-6 + 1e-8 + 2e-12 * 4 * 64 * 16 +
                            1e-10 * 64 + 2e-10 * 10 + 1e-10 * 640, 1e-18);
    ck_assert_int_eq(bp_cost_eval(p, &v, 8, 8, 1, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 1e-6 + 1e-8 + 1e-12 * 16 * 64 * 16 +
                            1e-10 * 64 + 2e-10 * 10, 1e-18);
    /* a 3x3 stride-1 convolution, 64 -> 64 channels on 14x14 outputs, on a
     * profile that says "winograd": 7x7 tiles of 2x2, 16 products per tile
     * and channel pair at the widest width's per_mac (8 bits: 5e-13), 16
     * transformed inputs per tile and input channel as rows, a tile per 2x2
     * tile and 16 channels; parallel (7.2M MACs) */
    bp_layer_facts w3 = {0};
    w3.name = "w3.weight";
    w3.numel = 64 * 64 * 9;
    w3.out_channels = 64;
    w3.group = 1;
    w3.macs = 196LL * 64 * 576;
    w3.wino_cin = 64;
    w3.wino_tiles = 49;
    double wm = 49.0 * 16 * 64 * 64, wr = 49.0 * 16 * 64, wt = 49.0 * 4;
    ck_assert(p->lm.winograd);
    ck_assert_int_eq(bp_cost_eval(p, &w3, 8, 8, 1, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + 2e-8 * wt + 5e-13 * wm +
                            1e-11 * wr + 1e-11 * 196 * 64, 1e-18);
    /* 4-bit weights: 49 tiles x 64 channels < 4096, the direct GEMM (196
     * positions in tiles of 16 -> 208) */
    ck_assert_int_eq(bp_cost_eval(p, &w3, 4, 8, 1, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + 2e-8 * 13 * 4 +
                            1e-12 * 208.0 * 576 * 64 + 1e-11 * 196.0 * 576 +
                            1e-11 * 196 * 64 + 1e-11 * w3.numel, 1e-18);
    /* at batch 2 (98 tiles) Winograd again, its products at 8 bits' rate,
     * the unpacking of 4-bit weights as before */
    ck_assert_int_eq(bp_cost_eval(p, &w3, 4, 8, 2, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + 2e-8 * 2 * wt + 5e-13 * 2 * wm +
                            1e-11 * 2 * wr + 1e-11 * 2 * 196 * 64 +
                            1e-11 * w3.numel, 1e-18);
    /* without "winograd" the same layer is priced as a direct GEMM */
    p->lm.winograd = 0;
    ck_assert_int_eq(bp_cost_eval(p, &w3, 8, 8, 1, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + 2e-8 * 13 * 4 +
                            5e-13 * 208.0 * 576 * 64 + 1e-11 * 196.0 * 576 +
                            1e-11 * 196 * 64, 1e-18);
    p->lm.winograd = 1;
    /* activations wider than the model prices, weights wider than listed */
    ck_assert_int_eq(bp_cost_eval(p, &l, 8, 16, 1, &c), BP_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "layer_model"));
    ck_assert_int_eq(bp_cost_eval(p, &l, 9, 8, 1, &c), BP_EUNSUPPORTED);
    /* a profile without the objects prices as before: no op costs */
    bp_profile *t4 = open_p("nvidia-t4");
    ck_assert(!t4->lm.present && t4->n_op_costs == 0);
    bp_cost c2;
    ck_assert_int_eq(bp_cost_eval(t4, &l, 8, 8, 1, &c), BP_OK);
    l.n_ops = 0;
    ck_assert_int_eq(bp_cost_eval(t4, &l, 8, 8, 1, &c2), BP_OK);
    ck_assert(c.latency_s == c2.latency_s);
    bp_profile_free(&t4);
    bp_profile_free(&p);
}
END_TEST

START_TEST(test_table_lookup)
{
    bp_profile *t = open_p("hawq-v3-resnet18-t4");
    bp_layer_facts l = {0};
    bp_cost c;
    l.name = "layer1.0.conv1.weight";
    l.numel = 36864;
    l.out_channels = 64;
    l.macs = 115605504;
    ck_assert_int_eq(bp_cost_eval(t, &l, 4, 4, 1, &c), BP_OK);
    ck_assert(c.latency_s == 0.21094404e-3);
    /* W4A8 is not native on a T4: it runs as INT8 */
    ck_assert_int_eq(bp_cost_eval(t, &l, 4, 8, 1, &c), BP_OK);
    ck_assert(c.latency_s == 0.36189111e-3);
    /* narrower than measured: the fastest measured pair that covers it */
    ck_assert_int_eq(bp_cost_eval(t, &l, 2, 3, 1, &c), BP_OK);
    ck_assert(c.latency_s == 0.21094404e-3);
    /* wider than any entry, or an unknown layer: the roofline fallback */
    ck_assert_int_eq(bp_cost_eval(t, &l, 16, 16, 1, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + 2.0 * 115605504 / 65e12, 1e-15);
    l.name = "fc.weight";
    ck_assert_int_eq(bp_cost_eval(t, &l, 8, 8, 1, &c), BP_OK);
    ck_assert_double_eq_tol(c.latency_s, 5e-6 + 2.0 * 115605504 / 130e12, 1e-15);
    bp_profile_free(&t);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("profile");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_shipped_profiles_validate);
    tcase_add_test(tc, test_find);
    tcase_add_test(tc, test_every_field_roofline);
    tcase_add_test(tc, test_every_field_table);
    tcase_add_test(tc, test_every_field_fitted);
    tcase_add_test(tc, test_layer_model);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_cost_model);
    tcase_add_test(tc, test_table_lookup);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
